"""The reference consumer follows a leader change: nothing acknowledged is missed, nothing read twice.

A 3-node cluster (RF 3, min.insync.replicas 2), the reference cluster and Apache Kafka; a group
consumer reads while the reference producer writes, and the broker leading partition 0 is
SIGKILLed (it may also be the group coordinator).  The consumer must re-route its fetches (a
lost connection, NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH, new metadata, KIP-320
validation against the new leader) and its group traffic, and end with every acknowledged value
exactly once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from conformance.apache_kafka import KafkaCluster
from conformance.fixtures import free_port_block
from reference.client.consumer import Consumer, TopicPartition
from reference.client.producer import Producer, RecordMetadata
from reference.node.cluster import ReferenceCluster

pytestmark = [pytest.mark.slow, pytest.mark.clients]
TOPIC = "consumer-failover"


@pytest.fixture(scope="module", params=["reference", pytest.param("kafka", marks=[pytest.mark.kafka])])
def cluster(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceCluster | KafkaCluster]:
    """One 3-node cluster per kind for the module; node i sits in rack r<i> with Kafka's
    RackAwareReplicaSelector (``reference.node.local_cluster.node_properties``)."""
    started: ReferenceCluster | KafkaCluster
    tmp_path = tmp_path_factory.mktemp(request.param)
    if request.param == "reference":
        started = ReferenceCluster(nodes=3, base_port=free_port_block(6), data_dir=tmp_path / "cluster",
                                   config={"broker.session.timeout.ms": "3000", "broker.heartbeat.interval.ms": "500",
                                           "replica.lag.time.max.ms": "5000"})
    else:
        started = KafkaCluster(nodes=3, base_port=free_port_block(6), data_dir=tmp_path / "kafka")
    started.start(timeout=120)
    yield started
    started.stop()


class Writer:
    """Sends unique values from a thread until stopped; keeps the acknowledged ones."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.acknowledged: set[bytes] = set()
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            value = f"v{self.sent}".encode()

            def delivered(error: Exception | None, metadata: RecordMetadata | None, value: bytes = value) -> None:
                if error is None:
                    self.acknowledged.add(value)

            self.producer.send(TOPIC, value, on_delivery=delivered)
            self.sent += 1
            time.sleep(0.003)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.producer.close(120)


def test_a_consumer_naming_a_rack_fetches_from_the_follower_there(cluster: ReferenceCluster | KafkaCluster) -> None:
    """KIP-392: the leader answers with PreferredReadReplica (the replica in the consumer's
    client.rack); the consumer fetches from it and still reads every record."""
    bootstrap = cluster.bootstrap_servers
    topic = f"rack-{time.time_ns()}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 3)])[topic].result(60)
    deadline = time.monotonic() + 30
    while (partition := admin.list_topics(topic, timeout=10).topics[topic].partitions.get(0)) is None \
            or partition.leader < 0 or len(partition.isrs) < 3:  # the new topic reaches every broker's metadata
        assert time.monotonic() < deadline, f"partition 0 of {topic} never got a leader and a full ISR"
        time.sleep(0.1)
    follower = next(r for r in partition.replicas if r != partition.leader)
    with Producer({"bootstrap.servers": bootstrap}) as producer:
        for i in range(50):
            producer.send(topic, f"r{i}".encode())
    reader = Consumer({"bootstrap.servers": bootstrap, "client.rack": f"r{follower}", "fetch.max.wait.ms": 100})
    tp = TopicPartition(topic, 0)
    reader.assign([tp])
    reader.seek_to_beginning([tp])
    seen: list[bytes] = []
    deadline = time.monotonic() + 60
    while len(seen) < 50:
        assert time.monotonic() < deadline, f"read {len(seen)} of 50"
        seen.extend(r.value for r in reader.poll(0.2) if r.value is not None)
    state = reader.core.subscriptions.state(tp)
    fetched_from = set(reader.core.fetcher.sessions)
    reader.close()
    assert sorted(seen) == sorted(f"r{i}".encode() for i in range(50))
    assert state.preferred_read_replica == follower and follower in fetched_from


def test_a_consumer_reads_on_across_a_killed_leader(cluster: ReferenceCluster | KafkaCluster) -> None:
    bootstrap = cluster.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, 3, 3, config={"min.insync.replicas": "2"})])[TOPIC].result(60)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "failover", "auto.offset.reset": "earliest",
                         "heartbeat.interval.ms": 300, "session.timeout.ms": 10000, "metadata.max.age.ms": 2000})
    consumer.subscribe([TOPIC])
    writer = Writer(Producer({"bootstrap.servers": bootstrap, "linger.ms": 5}))
    writer.start()
    seen: list[bytes] = []

    def read_until(condition: object, what: str, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while not condition():  # type: ignore[operator]
            assert time.monotonic() < deadline, f"never {what}: read {len(seen)}, acknowledged {len(writer.acknowledged)}"
            seen.extend(r.value for r in consumer.poll(0.1) if r.value is not None)

    try:
        read_until(lambda: len(seen) >= 200, "read 200 records")
        leader = admin.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions[0].leader
        cluster.kill(leader)
        acknowledged_at_kill = len(writer.acknowledged)
        read_until(lambda: len(writer.acknowledged) > acknowledged_at_kill + 300 and len(seen) > acknowledged_at_kill + 200,
                   "read on after the kill")
        cluster.restart(leader, timeout=120)
    finally:
        writer.stop()
    read_until(lambda: writer.acknowledged <= set(seen), "read every acknowledged record")
    consumer.close()
    assert len(seen) == len(set(seen)), f"{len(seen) - len(set(seen))} records read twice"
