"""Three combined KRaft nodes: a controller is elected, brokers register and are unfenced,
topics created through any broker reach every broker's metadata."""

from __future__ import annotations

from pathlib import Path

from reference.node.broker_lifecycle import BrokerState
from reference.protocol.apis import API_BY_KEY
from reference.protocol.frames import Request, RequestHeader, decode_response

from .harness import SimulatedCluster

CREATE_TOPICS = API_BY_KEY[19]
METADATA = API_BY_KEY[3]


def running(cluster: SimulatedCluster) -> bool:
    """Every broker RUNNING, and every node's committed image knows them all unfenced."""
    return all(node.broker_state is BrokerState.RUNNING and len(node.image.brokers) == len(cluster.nodes)
               and not any(registration.fenced for registration in node.image.brokers.values())
               for node in cluster.nodes.values())


def test_a_new_cluster_elects_an_active_controller_bootstraps_and_unfences_every_broker(tmp_path: Path) -> None:
    cluster = SimulatedCluster(tmp_path)
    cluster.run_until(lambda: cluster.leader() is not None)
    cluster.run_until(lambda: running(cluster))
    for node in cluster.nodes.values():
        assert node.image.features.get("metadata.version") == 30
        assert sorted(node.image.brokers) == [0, 1, 2]
        assert not any(registration.fenced for registration in node.image.brokers.values())


def create_topic(cluster: SimulatedCluster, via: int, name: str, partitions: int, replication_factor: int) -> list[object]:
    topic = CREATE_TOPICS.request.struct("CreatableTopic")
    body = CREATE_TOPICS.request.make(topics=[topic.make(name=name, num_partitions=partitions,
                                                         replication_factor=replication_factor,
                                                         assignments=[], configs=[])],
                                      timeout_ms=30000, validate_only=False)
    broker = cluster.nodes[via].broker
    assert broker is not None
    answers: list[object] = []
    reply = broker.handle(Request(RequestHeader(19, 7, 1, "test"), CREATE_TOPICS, body), cluster.now_ms)
    reply.on_done(answers.append)
    return answers


def test_create_topics_through_a_broker_is_decided_by_the_controller_and_reaches_every_broker(tmp_path: Path) -> None:
    cluster = SimulatedCluster(tmp_path)
    cluster.run_until(lambda: running(cluster))
    answers = create_topic(cluster, via=1, name="orders", partitions=3, replication_factor=3)
    cluster.run_until(lambda: bool(answers))
    _, response = decode_response(CREATE_TOPICS, 7, answers[0][4:])  # type: ignore[index]
    assert [(topic.name, topic.error_code, topic.num_partitions) for topic in response.topics] == [("orders", 0, 3)]
    # Committed means a majority has it; every broker learns it from the next fetch.
    cluster.run_until(lambda: all("orders" in node.image.topics for node in cluster.nodes.values()))
    for node in cluster.nodes.values():
        topic = node.image.topics["orders"]
        assert sorted(topic.partitions) == [0, 1, 2]
        for registration in topic.partitions.values():
            assert sorted(registration.replicas) == [0, 1, 2] and registration.leader in registration.isr
        assert node.broker is not None and node.broker.topics.get("orders") is not None
    leaders = {registration.leader for registration in cluster.nodes[0].image.topics["orders"].partitions.values()}
    assert len(leaders) == 3, "three partitions on three brokers: one leader each"


def test_producer_ids_come_from_controller_blocks_so_two_brokers_never_hand_out_the_same(tmp_path: Path) -> None:
    """Each broker counted on its own before: two idempotent producers got the same id and the
    leader dropped the second one's first batch as a duplicate.  Blocks come from the controller."""
    from reference.errors import Errors, KafkaError

    cluster = SimulatedCluster(tmp_path)
    cluster.run_until(lambda: running(cluster))
    handed_out: dict[int, list[int]] = {0: [], 1: [], 2: []}

    def take(node_id: int) -> bool:
        broker = cluster.nodes[node_id].broker
        assert broker is not None
        try:
            handed_out[node_id].append(broker.producer_ids.init_producer_id(None)[0])
            return True
        except KafkaError as error:  # no block yet: the client retries, as with Kafka
            assert error.error is Errors.COORDINATOR_LOAD_IN_PROGRESS
            return False

    for node_id in handed_out:
        cluster.run_until(lambda node_id=node_id: take(node_id))  # type: ignore[misc]
        for _ in range(5):
            assert take(node_id)
    every = [producer_id for ids in handed_out.values() for producer_id in ids]
    assert len(every) == len(set(every)) == 18
    assert all(ids == sorted(ids) for ids in handed_out.values())
