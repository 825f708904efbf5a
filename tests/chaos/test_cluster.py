"""chaos/cluster.py: addresses, partition rules and broker configuration, then real containers."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from chaos import cluster as chaos_cluster
from chaos import engine, images
from chaos.cluster import ClusterError, DockerCluster


# ---------------------------------------------------------------- planning, no engine
def test_nodes_get_fixed_addresses_after_the_gateway() -> None:
    addresses = chaos_cluster.plan_addresses("172.28.0.0/24", 3, "refka-chaos-x")
    assert [(a.node_id, a.ip, a.container_name) for a in addresses] == [
        (1, "172.28.0.11", "refka-chaos-x-n1"), (2, "172.28.0.12", "refka-chaos-x-n2"),
        (3, "172.28.0.13", "refka-chaos-x-n3")]
    assert addresses[0].bootstrap == "172.28.0.11:9092"
    assert chaos_cluster.gateway_of("172.28.0.0/24") == "172.28.0.1"


def test_too_many_nodes_for_the_subnet_are_refused() -> None:
    with pytest.raises(ClusterError, match="do not fit"):
        chaos_cluster.plan_addresses("172.28.0.0/28", 5, "x")


def test_disjoint_groups_cut_every_pair_across_them() -> None:
    assert chaos_cluster.blocked_pairs([[1], [2, 3]], [1, 2, 3]) == {frozenset({1, 2}), frozenset({1, 3})}
    assert chaos_cluster.blocked_pairs([[1, 2, 3]], [1, 2, 3]) == set()


def test_a_bridge_node_talks_to_both_halves_which_cannot_talk_to_each_other() -> None:
    pairs = chaos_cluster.blocked_pairs([[1, 2, 3], [3, 4, 5]], [1, 2, 3, 4, 5])
    assert pairs == {frozenset({a, b}) for a in (1, 2) for b in (4, 5)}


def test_a_node_in_no_group_is_cut_off_and_an_unknown_node_is_an_error() -> None:
    assert chaos_cluster.blocked_pairs([[1, 2]], [1, 2, 3]) == {frozenset({1, 3}), frozenset({2, 3})}
    with pytest.raises(ClusterError, match=r"unknown nodes \[9\]"):
        chaos_cluster.blocked_pairs([[1], [9]], [1, 2])


def test_drop_rules_cut_both_directions_and_heal_flushes_both_chains() -> None:
    assert chaos_cluster.drop_rules(["172.28.0.12"]) == [
        ["iptables", "-w", "-A", "INPUT", "-s", "172.28.0.12", "-j", "DROP"],
        ["iptables", "-w", "-A", "OUTPUT", "-d", "172.28.0.12", "-j", "DROP"]]
    assert {tuple(rule[-2:]) for rule in chaos_cluster.HEAL_RULES} == {("-F", "INPUT"), ("-F", "OUTPUT")}


def test_kafka_nodes_list_every_voter_and_advertise_their_own_address() -> None:
    addresses = chaos_cluster.plan_addresses("172.28.0.0/24", 3, "c")
    env = chaos_cluster.node_environment("kafka", addresses[1], addresses, "cid",
                                         {"unclean.leader.election.enable": "true"})
    assert env["KAFKA_NODE_ID"] == "2" and env["KAFKA_ADVERTISED_HOST"] == "172.28.0.12"
    assert env["KAFKA_QUORUM_VOTERS"] == "1@172.28.0.11:9093,2@172.28.0.12:9093,3@172.28.0.13:9093"
    settings = dict(line.split("=", 1) for line in env["KAFKA_SETTINGS"].splitlines())
    assert settings["offsets.topic.replication.factor"] == "3"
    assert settings["transaction.state.log.min.isr"] == "2"
    assert settings["unclean.leader.election.enable"] == "true"


def test_a_single_kafka_node_sizes_internal_topics_to_one_replica() -> None:
    settings = chaos_cluster.kafka_settings(1)
    assert settings["offsets.topic.replication.factor"] == "1" and settings["transaction.state.log.min.isr"] == "1"


def test_the_reference_node_gets_its_settings_one_a_line() -> None:
    node = chaos_cluster.plan_addresses("172.28.0.0/24", 1, "c")[0]
    env = chaos_cluster.node_environment("reference", node, [node], "cid", {"num.partitions": "3"})
    assert env == {"NODE_ID": "1", "ADVERTISED_HOST": "172.28.0.11", "BROKER_SETTINGS": "num.partitions=3"}


def test_the_cluster_id_is_a_kraft_id_fixed_by_the_seed() -> None:
    assert chaos_cluster.new_cluster_id(7) == chaos_cluster.new_cluster_id(7)
    assert chaos_cluster.new_cluster_id(7) != chaos_cluster.new_cluster_id(8)
    assert len(chaos_cluster.new_cluster_id(None)) == 22


def test_a_replicated_reference_node_is_configured_as_a_kraft_voter_like_a_kafka_node() -> None:
    addresses = chaos_cluster.plan_addresses("172.30.0.0/24", 3, "n")
    single = chaos_cluster.node_environment("reference", addresses[0], addresses[:1], "id")
    assert "QUORUM_VOTERS" not in single
    env = chaos_cluster.node_environment("reference", addresses[1], addresses, "the-cluster-id")
    kafka = chaos_cluster.node_environment("kafka", addresses[1], addresses, "the-cluster-id")
    assert env["QUORUM_VOTERS"] == kafka["KAFKA_QUORUM_VOTERS"] and env["CLUSTER_ID"] == "the-cluster-id"
    assert "broker.session.timeout.ms=3000" in env["BROKER_SETTINGS"].splitlines()
    with pytest.raises(ClusterError, match="unknown target"):
        DockerCluster(None, "redpanda", 1)  # type: ignore[arg-type]


# ---------------------------------------------------------------- real containers
# One subnet per cluster a test starts: the reference cluster (a module fixture) and the Kafka
# cluster may be alive at the same time on the same engine, and a cluster removes leftovers of its
# own subnet when it starts.
# Under pytest-xdist the module fixture can be set up on more than one worker at once (seen in CI
# despite the xdist_group), so each worker gets a subnet, and with it a network, of its own.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
TEST_SUBNET = f"172.28.{240 + _WORKER % 10}.0/24"
KAFKA_TEST_SUBNET = "172.28.251.0/24"


def _client_or_skip():  # type: ignore[no-untyped-def]
    if not engine.engine_available():
        pytest.skip("no docker engine")
    client = engine.ensure_engine(install=False)
    engine.build_base_image(client, log=lambda line: None)
    return client


def _produce(bootstrap: str, topic: str, count: int) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "log_level": 0})
    for index in range(count):
        producer.produce(topic, key=str(index % 3), value=str(index))
    assert producer.flush(20) == 0


def _read_all(bootstrap: str, topic: str, partitions: int, expected: int) -> list[str]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "check", "enable.auto.commit": False,
                         "log_level": 0})
    consumer.assign([TopicPartition(topic, partition, 0) for partition in range(partitions)])
    values: list[str] = []
    deadline = time.monotonic() + 60  # generous: a restarted broker on a loaded machine
    while len(values) < expected and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is not None and message.error() is None:
            values.append(message.value().decode())
    consumer.close()
    return values


@pytest.fixture(scope="module")
def reference_cluster() -> Iterator[DockerCluster]:
    client = _client_or_skip()
    built = images.ensure_image(client, "reference", log=lambda line: None)
    cluster = DockerCluster(client, "reference", 1, subnet=TEST_SUBNET, image=built.tag)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.xdist_group("docker")
def test_a_killed_reference_broker_comes_back_with_its_log(reference_cluster: DockerCluster) -> None:
    cluster = reference_cluster
    assert cluster.bootstrap_servers() == TEST_SUBNET.replace(".0/24", ".11:9092")
    cluster.create_topic("chaos", 3, 1, timeout=90.0)  # generous: the engine shares 2 cores with the suite
    assert cluster.leader_of("chaos", 0) == 1 and cluster.partitions_of("chaos") == [0, 1, 2]
    _produce(cluster.bootstrap_servers(), "chaos", 60)
    cluster.kill(1)
    assert cluster.status(1) == "exited"
    cluster.start_node(1)
    cluster.restart(1, graceful=True)
    read = sorted(_read_all(cluster.bootstrap_servers(), "chaos", 3, 60), key=int)
    missing = sorted(set(range(60)) - {int(value) for value in read})
    assert read == [str(i) for i in range(60)], f"missing {missing}, read {len(read)} values"


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.xdist_group("docker")
def test_isolated_clients_and_a_paused_broker_get_no_answer_until_healed(reference_cluster: DockerCluster) -> None:
    cluster = reference_cluster
    cluster.create_topic("faults", 1, 1)
    cluster.isolate_clients(1)
    assert cluster.leader_of("faults", 0) is None
    cluster.heal_network()
    assert cluster.leader_of("faults", 0) == 1
    cluster.pause(1)
    assert cluster.status(1) == "paused" and cluster.leader_of("faults", 0) is None
    cluster.unpause(1)
    assert cluster.leader_of("faults", 0) == 1


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.kafka
@pytest.mark.xdist_group("docker")
def test_a_three_node_kafka_cluster_fails_over_when_the_leader_is_cut_off() -> None:
    client = _client_or_skip()
    built = images.ensure_image(client, "kafka", log=lambda line: None)
    cluster = DockerCluster(client, "kafka", 3, subnet=KAFKA_TEST_SUBNET, seed=1, image=built.tag,
                            broker_config={"broker.session.timeout.ms": "4000",
                                           "broker.heartbeat.interval.ms": "500"})
    try:
        cluster.start()
        cluster.create_topic("chaos", 1, 3, {"min.insync.replicas": "2"})
        # The broker answering Metadata may not have the new topic's leader yet (its metadata lags
        # the controller's by a fetch): ask until it does, as a client would.
        deadline = time.monotonic() + 30
        while (old_leader := cluster.leader_of("chaos", 0)) is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert old_leader in (1, 2, 3)
        others = [node for node in cluster.node_ids() if node != old_leader]
        assert cluster.partition([[old_leader], others]) == {frozenset({old_leader, n}) for n in others}
        deadline = time.monotonic() + 60
        new_leader = old_leader
        while new_leader in (old_leader, None) and time.monotonic() < deadline:
            time.sleep(1)
            new_leader = _leader_seen_from(cluster, others[0])
        assert new_leader in others, f"no failover away from {old_leader}"
        cluster.heal_network()
        _produce(cluster.bootstrap_servers(), "chaos", 30)
        assert len(_read_all(cluster.bootstrap_servers(), "chaos", 1, 30)) == 30
    finally:
        cluster.stop()
    assert not client.networks.list(names=[cluster.network_name])


def _leader_seen_from(cluster: DockerCluster, node_id: int) -> int | None:
    """The leader of chaos/0 as one particular broker reports it (the cut-off one still says itself)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": cluster.address(node_id).bootstrap, "log_level": 0})
    try:
        metadata = admin.list_topics("chaos", timeout=3)
    except Exception:
        return None
    leader = metadata.topics["chaos"].partitions[0].leader
    return int(leader) if leader >= 0 else None


def test_a_replication_cut_drops_only_the_inter_broker_port_both_ways_and_spares_the_controller() -> None:
    rules = chaos_cluster.replication_drop_rules(["172.28.0.12"])
    assert rules == [
        ["iptables", "-w", "-A", "INPUT", "-s", "172.28.0.12", "-p", "tcp", "--dport", "9092", "-j", "DROP"],
        ["iptables", "-w", "-A", "INPUT", "-s", "172.28.0.12", "-p", "tcp", "--sport", "9092", "-j", "DROP"],
        ["iptables", "-w", "-A", "OUTPUT", "-d", "172.28.0.12", "-p", "tcp", "--dport", "9092", "-j", "DROP"],
        ["iptables", "-w", "-A", "OUTPUT", "-d", "172.28.0.12", "-p", "tcp", "--sport", "9092", "-j", "DROP"],
    ]
    assert not any(str(chaos_cluster.CONTROLLER_PORT) in rule for rule in rules)
    assert len(chaos_cluster.replication_drop_rules(["172.28.0.13", "172.28.0.12"])) == 8
