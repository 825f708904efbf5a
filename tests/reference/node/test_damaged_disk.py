"""A node that comes back with a damaged data disk recovers from the other replicas, on the
reference cluster exactly as on Apache Kafka.

The damage is done while the node is down (SIGKILL, so no clean-shutdown marker either):

* ``wiped``: every partition directory and checkpoint file of the node's log directory is deleted;
  ``meta.properties`` and the metadata log (``__cluster_metadata-0``) survive, as when a data disk is
  replaced but the node's identity and its KRaft state are kept. (Wiping the metadata log of a voter
  in a static quorum is unsafe in Kafka too: the node could vote twice in one epoch; KIP-853's
  directory ids are Kafka's answer, out of scope here.)
* ``truncated``: the newest segment of each of the topic's partitions loses the second half of its
  bytes, a torn tail in the middle of a batch.

What must happen, as Kafka does it: the node, fenced and out of every ISR while it is down, recreates
or recovers its logs on restart, fetches what it lacks from the leader, and rejoins the ISR only once
caught up. Nothing acknowledged with acks=all is lost and nothing is duplicated: once it is back in the
ISR its partner is killed, so that every record is read from the damaged node's own copy.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conformance.apache_kafka import KafkaCluster
from conformance.fixtures import free_port_block
from reference.node.cluster import ReferenceCluster
from reference.node.local_cluster import LocalCluster
from reference.records.batch import iter_record_batches

from ..broker.conftest import RawClient

pytestmark = [pytest.mark.slow, pytest.mark.clients]
TOPIC = "damaged"
PARTITIONS = 2
FAST_FAILURE_DETECTION = {"broker.session.timeout.ms": "3000", "broker.heartbeat.interval.ms": "500",
                          "replica.lag.time.max.ms": "5000"}
KEPT_ON_A_WIPED_DISK = {"meta.properties", "bootstrap.checkpoint", "__cluster_metadata-0"}


@pytest.fixture(params=[
    pytest.param(("reference", "wiped"), id="reference-wiped"),
    pytest.param(("reference", "truncated"), id="reference-truncated"),
    pytest.param(("kafka", "wiped"), id="kafka-wiped", marks=pytest.mark.kafka),
])
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[LocalCluster, str]]:
    kind, damage = request.param
    peer = ReferenceCluster if kind == "reference" else KafkaCluster
    cluster = peer(nodes=3, base_port=free_port_block(6), data_dir=tmp_path / kind, config=FAST_FAILURE_DETECTION)
    cluster.start(timeout=120)
    try:
        yield cluster, damage
    finally:
        cluster.stop()


def produce(bootstrap: str, values: list[bytes]) -> None:
    """Send ``values`` idempotently with acks=all and require every one acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "message.timeout.ms": 60000, "linger.ms": 5})
    failed: list[str] = []
    for value in values:
        while True:
            try:
                producer.produce(TOPIC, value, partition=int(value) % PARTITIONS,
                                 on_delivery=lambda error, _message: error and failed.append(str(error)))
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(90) == 0, "some writes were never answered"
    assert not failed, failed[:5]


def describe(admin: AdminClient) -> dict[int, tuple[int, list[int]]]:
    """partition -> (leader, ISR) as the cluster's metadata says."""
    topic = admin.list_topics(TOPIC, timeout=10).topics[TOPIC]
    return {p.id: (p.leader, sorted(p.isrs)) for p in topic.partitions.values()}


def wait_until(condition, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def damage(log_dir: Path, how: str) -> None:
    if how == "wiped":
        for entry in log_dir.iterdir():
            if entry.name not in KEPT_ON_A_WIPED_DISK:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        return
    for partition in range(PARTITIONS):
        segments = sorted((log_dir / f"{TOPIC}-{partition}").glob("*.log"))
        newest = segments[-1]
        size = newest.stat().st_size
        assert size > 1000, f"{newest} holds too little to tear ({size} bytes)"
        with newest.open("r+b") as segment:
            segment.truncate(size // 2 + 7)  # mid-batch: the recovery must cut back to a whole batch


def read_replica(address: str, partition: int) -> tuple[list[bytes], int]:
    """The values in one node's copy of a partition (up to its high watermark), and that mark."""
    values: list[bytes] = []
    offset, high_watermark = 0, -1
    with RawClient(address) as client:
        while True:
            answer = client.fetch(TOPIC, partition, offset)
            assert answer.error_code == 0, f"the replica at {address} answered error {answer.error_code}"
            high_watermark = answer.high_watermark
            batches = list(iter_record_batches(answer.records or b""))
            for batch in batches:
                values += [record.value for record in batch.records if batch.record_offset(record) >= offset]
            if not batches or batches[-1].last_offset + 1 >= high_watermark:
                return values, high_watermark
            offset = batches[-1].last_offset + 1


def test_a_node_back_with_a_damaged_disk_catches_up_and_keeps_every_acknowledged_record(
        case: tuple[LocalCluster, str]) -> None:
    """Two replicas, the damaged node and a partner; the third node only keeps the quorum. The
    damaged node must be whole again when it rejoins the ISR: the partner is then killed, the
    damaged node becomes the only leader candidate, and every acknowledged record is read from it."""
    cluster, how = case
    victim, partner = 0, 1
    bootstrap = cluster.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replica_assignment=[[victim, partner]] * PARTITIONS,
                                  config={"min.insync.replicas": "1"})])[TOPIC].result(30)
    wait_until(lambda: all(isr == [victim, partner] for _, isr in describe(admin).values()), 60, "a full ISR")
    first = [str(i).encode() for i in range(20000)]
    produce(bootstrap, first)

    cluster.kill(victim)
    damage(cluster.log_dir(victim), how)
    wait_until(lambda: all(isr == [partner] for _, isr in describe(admin).values()), 60,
               f"node {victim} to leave every ISR")
    second = [str(i).encode() for i in range(20000, 30000)]
    produce(bootstrap, second)  # acknowledged by the partner alone (min.insync.replicas 1)
    cluster.restart(victim, timeout=120)
    wait_until(lambda: all(isr == [victim, partner] for _, isr in describe(admin).values()), 90,
               f"node {victim} to rejoin every ISR after catching up")

    cluster.kill(partner)  # now only the damaged node holds the data
    wait_until(lambda: all(leader == victim for leader, _ in describe(admin).values()), 60,
               f"node {victim} to lead every partition")
    acknowledged = first + second
    for partition in range(PARTITIONS):
        expected = [value for value in acknowledged if int(value) % PARTITIONS == partition]
        values, high_watermark = read_replica(cluster.address(victim), partition)
        assert values == expected, (
            f"node {victim}'s copy of partition {partition} (high watermark {high_watermark}) differs: "
            f"{len(values)} values, {len(set(expected) - set(values))} acknowledged ones missing, "
            f"{len(values) - len(set(values))} duplicated")
