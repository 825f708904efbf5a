"""Separate brokers and controllers: three ``process.roles=controller`` voters run the quorum and
the controller, two ``process.roles=broker`` nodes learn the metadata as Raft observers, register,
are unfenced and host the partitions."""

from __future__ import annotations

from pathlib import Path

from reference.controller.quorum_state import Role
from reference.node.broker_lifecycle import BrokerState
from reference.protocol.apis import API_BY_KEY
from reference.protocol.frames import decode_response

from .harness import SimulatedCluster
from .test_kraft_node import create_topic

CREATE_TOPICS = API_BY_KEY[19]
CONTROLLERS = [0, 1, 2]
BROKERS = [3, 4]
ROLES = ["controller"] * len(CONTROLLERS) + ["broker"] * len(BROKERS)


def split_cluster(tmp_path: Path) -> SimulatedCluster:
    return SimulatedCluster(tmp_path, nodes=len(ROLES), roles=ROLES)


def brokers_running(cluster: SimulatedCluster) -> bool:
    """Both brokers RUNNING, and every node's committed image knows exactly them, unfenced."""
    return all(cluster.nodes[broker].broker_state is BrokerState.RUNNING for broker in BROKERS) and all(
        sorted(node.image.brokers) == BROKERS and not any(registration.fenced for registration in node.image.brokers.values())
        for node in cluster.nodes.values())


def test_controllers_have_no_broker_and_brokers_are_observers(tmp_path: Path) -> None:
    cluster = split_cluster(tmp_path)
    for node_id in CONTROLLERS:
        node = cluster.nodes[node_id]
        assert node.broker is None and node.controller is not None and node.raft.is_voter
    for node_id in BROKERS:
        node = cluster.nodes[node_id]
        assert node.broker is not None and node.controller is None and not node.raft.is_voter
    leader = cluster.run_until(lambda: cluster.leader() is not None) is not None and cluster.leader()
    assert leader and leader.node_id in CONTROLLERS
    cluster.run_until(lambda: all(cluster.nodes[broker].raft.role is Role.FOLLOWER for broker in BROKERS))
    for broker in BROKERS:
        assert cluster.nodes[broker].raft.leader_id == leader.node_id


def test_brokers_register_and_are_unfenced_through_the_controller_quorum(tmp_path: Path) -> None:
    cluster = split_cluster(tmp_path)
    cluster.run_until(lambda: brokers_running(cluster))
    for node in cluster.nodes.values():
        assert node.image.features.get("metadata.version") == 30
    for broker in BROKERS:
        assert cluster.nodes[broker].raft.voted_id is None, "an observer never votes"


def test_a_topic_is_placed_on_the_brokers_only(tmp_path: Path) -> None:
    cluster = split_cluster(tmp_path)
    cluster.run_until(lambda: brokers_running(cluster))
    answers = create_topic(cluster, via=BROKERS[0], name="orders", partitions=2, replication_factor=2)
    cluster.run_until(lambda: bool(answers))
    _, response = decode_response(CREATE_TOPICS, 7, answers[0][4:])  # type: ignore[index]
    assert [(topic.name, topic.error_code, topic.num_partitions) for topic in response.topics] == [("orders", 0, 2)]
    cluster.run_until(lambda: all("orders" in node.image.topics for node in cluster.nodes.values()))
    cluster.run_until(lambda: all(
        len(registration.isr) == 2 for registration in cluster.nodes[BROKERS[1]].image.topics["orders"].partitions.values()))
    for node in cluster.nodes.values():
        for registration in node.image.topics["orders"].partitions.values():
            assert sorted(registration.replicas) == BROKERS and registration.leader in BROKERS
    for broker in BROKERS:
        node = cluster.nodes[broker]
        assert node.broker is not None and node.broker.topics.get("orders") is not None
    leaders = {registration.leader for registration in cluster.nodes[BROKERS[0]].image.topics["orders"].partitions.values()}
    assert leaders == set(BROKERS), "two partitions on two brokers: one leader each"


def test_brokers_follow_a_new_active_controller(tmp_path: Path) -> None:
    cluster = split_cluster(tmp_path)
    cluster.run_until(lambda: brokers_running(cluster))
    old = cluster.leader()
    assert old is not None
    cluster.crash(old.node_id)
    cluster.run_until(lambda: cluster.leader() is not None)
    new = cluster.leader()
    assert new is not None and new.node_id != old.node_id
    cluster.run_until(lambda: all(cluster.nodes[broker].raft.leader_id == new.node_id for broker in BROKERS))
    answers = create_topic(cluster, via=BROKERS[1], name="after", partitions=1, replication_factor=2)
    cluster.run_until(lambda: bool(answers))
    cluster.run_until(lambda: all("after" in cluster.nodes[broker].image.topics for broker in BROKERS))
