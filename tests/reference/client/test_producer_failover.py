"""The idempotent reference producer loses and duplicates nothing when a partition leader is killed.

A 3-node reference cluster (RF 3, min.insync.replicas 2); the producer sends unique values with
acks=all while the leader of partition 0 is SIGKILLed and later restarted.  Afterwards every
value the producer saw acknowledged must be in the log exactly once (Kafka's replication system
test judges the same way), and no record may have failed: the retries ride out the election.
"""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from reference.client.producer import Producer, RecordMetadata
from reference.node.cluster import ReferenceCluster

from ..node.readback import read_everything

pytestmark = [pytest.mark.slow, pytest.mark.clients]
TOPIC = "client-failover"
PARTITIONS = 3


class Load:
    """Sends unique values from a thread until stopped; records every outcome."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.acknowledged: list[bytes] = []
        self.failed: list[str] = []
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _delivered(self, value: bytes) -> object:
        def callback(error: Exception | None, metadata: RecordMetadata | None) -> None:
            if error is None:
                self.acknowledged.append(value)
            else:
                self.failed.append(f"{value!r}: {error}")
        return callback

    def _run(self) -> None:
        while not self._stop.is_set():
            value = f"v{self.sent}".encode()
            self.producer.send(TOPIC, value, on_delivery=self._delivered(value))  # type: ignore[arg-type]
            self.sent += 1
            time.sleep(0.002)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.producer.flush(120)


def test_killing_the_leader_mid_stream_loses_and_duplicates_nothing(reference_cluster: ReferenceCluster) -> None:
    bootstrap = reference_cluster.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 3, config={"min.insync.replicas": "2"})])[TOPIC].result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    with Load(producer) as load:
        time.sleep(2)
        leader = admin.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions[0].leader
        before = len(load.acknowledged)
        reference_cluster.kill(leader)
        time.sleep(6)  # fenced after broker.session.timeout.ms; leaders move; the load goes on
        assert len(load.acknowledged) > before, f"nothing was acknowledged while node {leader} was down"
        reference_cluster.restart(leader, timeout=60)
        time.sleep(2)
    producer.close(60)
    assert not load.failed, load.failed[:5]
    assert len(load.acknowledged) == load.sent
    values = read_everything(bootstrap, TOPIC, PARTITIONS)
    lost = set(load.acknowledged) - set(values)
    assert not lost, f"{len(lost)} acknowledged records lost, e.g. {sorted(lost)[:5]}"
    assert len(values) == len(set(values)), f"{len(values) - len(set(values))} records written twice"
