"""Real Kafka clients against the reference broker: what "compatible" means, client by client.

Each of kafka-python, confluent-kafka (librdkafka), aiokafka and kcat (librdkafka's command-line
tool) produces with acks 0, 1 and all and with every codec, keyed and unkeyed, and reads back from
earliest and from latest; the exact contents and the per-partition order are checked.  The Python
clients also split six partitions among three group members, rebalance when one leaves, and
resume from offsets committed before a broker restart.  Raw-protocol tests cover what no client
lets us force: a resent idempotent batch, sequence gaps, a stale producer epoch, malformed frames,
and Kafka's error codes for invalid topic names and configs.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from reference.broker.embedded import EmbeddedBroker
from reference.errors import Errors
from reference.records.batch import SimpleRecord, build_batch

from .conftest import RawClient

pytestmark = pytest.mark.clients

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
ACKS = ["0", "1", "all"]
PARTITIONS = 3
RECORDS_PER_KIND = 8  # keyed and unkeyed each
_topic_counter = itertools.count()


def new_topic(bootstrap: str, prefix: str, partitions: int = PARTITIONS) -> str:
    name = f"{prefix}-{next(_topic_counter)}-{int(time.time() * 1000) % 10_000_000}"
    with RawClient(bootstrap) as client:
        assert client.create_topic(name, partitions).error_code == 0
    return name


def wait_until(condition: Callable[[], bool], timeout: float = 20.0, step: Callable[[], object] | None = None,
               what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if step is not None:
            step()
        if condition():
            return
        if step is None:
            time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# -- what was sent, what was read ------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """One record as the producer saw it: partition and offset when the client reported them."""

    key: bytes | None
    value: bytes
    partition: int | None = None
    offset: int | None = None


@dataclass(frozen=True)
class Read:
    partition: int
    offset: int
    key: bytes | None
    value: bytes


def records_to_send(tag: str) -> list[tuple[bytes | None, bytes]]:
    """Keyed records (four keys, so several partitions) then unkeyed ones, all values unique."""
    keyed = [(f"key{i % 4}".encode(), f"{tag}-keyed-{i}".encode()) for i in range(RECORDS_PER_KIND)]
    unkeyed = [(None, f"{tag}-plain-{i}".encode()) for i in range(RECORDS_PER_KIND)]
    return keyed + unkeyed


def check_read_back(sent: list[Sent], read: list[Read], acks: str) -> None:
    """Exact contents; per partition, records appear in send order at the acknowledged offsets."""
    assert sorted(r.value for r in read) == sorted(s.value for s in sent), "contents differ"
    by_value = {s.value: (index, s) for index, s in enumerate(sent)}
    partitions_of_key: dict[bytes, set[int]] = {}
    for partition in {r.partition for r in read}:
        in_partition = sorted((r for r in read if r.partition == partition), key=lambda r: r.offset)
        send_order = [by_value[r.value][0] for r in in_partition]
        assert send_order == sorted(send_order), f"partition {partition} is out of send order"
        offsets = [r.offset for r in in_partition]
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets))), "offsets are not contiguous"
    for r in read:
        original = by_value[r.value][1]
        assert r.key == original.key
        if original.partition is not None:
            assert r.partition == original.partition
        if original.offset is not None and acks != "0":
            assert r.offset == original.offset
        if r.key is not None:
            partitions_of_key.setdefault(r.key, set()).add(r.partition)
    assert all(len(p) == 1 for p in partitions_of_key.values()), "one key landed in two partitions"


# -- confluent-kafka ------------------------------------------------------------------------------


def ck_produce(bootstrap: str, topic: str, acks: str, codec: str, records: list[tuple[bytes | None, bytes]],
               **extra: Any) -> list[Sent]:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": acks, "compression.type": codec,
                         "linger.ms": 5, "enable.idempotence": acks == "all", **extra})
    reports: dict[bytes, Sent] = {}

    def delivered(error: Any, message: Any) -> None:
        assert error is None, error
        reports[message.value()] = Sent(message.key(), message.value(), message.partition(),
                                        message.offset() if acks != "0" else None)

    for key, value in records:
        producer.produce(topic, key=key, value=value, on_delivery=delivered)
    assert producer.flush(20) == 0
    return [reports[value] for _key, value in records]


def ck_read(bootstrap: str, topic: str, count: int, partitions: int = PARTITIONS,
            from_end: bool = False, then: Callable[[], None] | None = None) -> list[Read]:
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{topic}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 100,
                         "enable.partition.eof": then is not None})
    start = OFFSET_END if from_end else OFFSET_BEGINNING
    consumer.assign([TopicPartition(topic, p, start) for p in range(partitions)])
    read: list[Read] = []
    try:
        if then is not None:  # the start position must be resolved before new records arrive
            at_end: set[int] = set()

            def note_end() -> None:
                message = consumer.poll(0.05)
                if message is not None and message.error() and message.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition())

            wait_until(lambda: len(at_end) == partitions, step=note_end, what="the end of every partition")
            then()
        deadline = time.monotonic() + 20
        while len(read) < count and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            read.append(Read(message.partition(), message.offset(), message.key(), message.value()))
    finally:
        consumer.close()
    return read


Produce = Callable[[str, str, str, str, list[tuple[bytes | None, bytes]]], list[Sent]]
ReadBack = Callable[..., list[Read]]


def produce_and_read_back_with_every_acks(bootstrap: str, prefix: str, codec: str,
                                          produce: Produce, read: ReadBack) -> None:
    """One topic per acks setting: what was sent is read back, at the offsets reported."""
    for acks in ACKS:
        topic = new_topic(bootstrap, f"{prefix}-{codec}-{acks}")
        sent = produce(bootstrap, topic, acks, codec, records_to_send(f"{codec}{acks}"))
        check_read_back(sent, read(bootstrap, topic, len(sent)), acks)


def read_from_latest(bootstrap: str, prefix: str, codec: str, produce: Produce, read: ReadBack) -> None:
    """A consumer positioned at the end sees only what is produced after it got there."""
    topic = new_topic(bootstrap, f"{prefix}-latest")
    produce(bootstrap, topic, "all", "none", records_to_send("old"))
    new: list[Sent] = []
    received = read(bootstrap, topic, 2 * RECORDS_PER_KIND, from_end=True, then=lambda: new.extend(
        produce(bootstrap, topic, "all", codec, records_to_send("new"))))
    check_read_back(new, received, "all")


@pytest.mark.parametrize("codec", CODECS)
def test_confluent_kafka_produces_and_reads_back_with_every_acks(broker: EmbeddedBroker, codec: str) -> None:
    produce_and_read_back_with_every_acks(broker.bootstrap, "ck", codec, ck_produce, ck_read)


def test_confluent_kafka_reads_from_latest(broker: EmbeddedBroker) -> None:
    read_from_latest(broker.bootstrap, "ck", "lz4", ck_produce, ck_read)


# -- kafka-python ---------------------------------------------------------------------------------


def kp_produce(bootstrap: str, topic: str, acks: str, codec: str,
               records: list[tuple[bytes | None, bytes]]) -> list[Sent]:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=acks if acks == "all" else int(acks),
                             compression_type=None if codec == "none" else codec, linger_ms=5,
                             enable_idempotence=acks == "all")
    try:
        futures = [producer.send(topic, key=key, value=value) for key, value in records]
        producer.flush(20)
        sent = []
        for (key, value), future in zip(records, futures, strict=True):
            metadata = future.get(10)
            sent.append(Sent(key, value, metadata.partition, metadata.offset if acks != "0" else None))
    finally:
        producer.close(5)
    return sent


def kp_read(bootstrap: str, topic: str, count: int, partitions: int = PARTITIONS,
            from_end: bool = False, then: Callable[[], None] | None = None) -> list[Read]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100)
    wanted = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(wanted)
    read: list[Read] = []
    try:
        if from_end:
            consumer.seek_to_end(*wanted)
        else:
            consumer.seek_to_beginning(*wanted)
        if then is not None:
            for tp in wanted:
                consumer.position(tp)  # blocks until the offset is resolved
            then()
        deadline = time.monotonic() + 20
        while len(read) < count and time.monotonic() < deadline:
            for messages in consumer.poll(timeout_ms=200).values():
                read.extend(Read(m.partition, m.offset, m.key, m.value) for m in messages)
    finally:
        consumer.close()
    return read


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_produces_and_reads_back_with_every_acks(broker: EmbeddedBroker, codec: str) -> None:
    produce_and_read_back_with_every_acks(broker.bootstrap, "kp", codec, kp_produce, kp_read)


def test_kafka_python_reads_from_latest(broker: EmbeddedBroker) -> None:
    read_from_latest(broker.bootstrap, "kp", "gzip", kp_produce, kp_read)


# -- aiokafka -------------------------------------------------------------------------------------


async def aio_produce(bootstrap: str, topic: str, acks: str, codec: str,
                      records: list[tuple[bytes | None, bytes]]) -> list[Sent]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=acks if acks == "all" else int(acks),
                                compression_type=None if codec == "none" else codec, linger_ms=5,
                                enable_idempotence=acks == "all")
    await producer.start()
    try:
        futures = [await producer.send(topic, key=key, value=value) for key, value in records]
        sent = []
        for (key, value), future in zip(records, futures, strict=True):
            metadata = await future  # None for acks=0: aiokafka then reports nothing
            sent.append(Sent(key, value) if metadata is None else
                        Sent(key, value, metadata.partition, metadata.offset if acks != "0" else None))
    finally:
        await producer.stop()
    return sent


async def aio_read(bootstrap: str, topic: str, count: int, partitions: int = PARTITIONS,
                   from_end: bool = False, then: Callable[[], Any] | None = None) -> list[Read]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100)
    await consumer.start()
    wanted = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(wanted)
    read: list[Read] = []
    try:
        if from_end:
            await consumer.seek_to_end(*wanted)
        else:
            await consumer.seek_to_beginning(*wanted)
        if then is not None:
            for tp in wanted:
                await consumer.position(tp)
            await then()
        deadline = time.monotonic() + 20
        while len(read) < count and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=200)).values():
                read.extend(Read(m.partition, m.offset, m.key, m.value) for m in messages)
    finally:
        await consumer.stop()
    return read


@pytest.mark.parametrize("codec", CODECS)
def test_aiokafka_produces_and_reads_back_with_every_acks(broker: EmbeddedBroker, codec: str) -> None:
    async def scenario() -> None:
        for acks in ACKS:
            topic = new_topic(broker.bootstrap, f"aio-{codec}-{acks}")
            sent = await aio_produce(broker.bootstrap, topic, acks, codec, records_to_send(f"{codec}{acks}"))
            check_read_back(sent, await aio_read(broker.bootstrap, topic, len(sent)), acks)

    asyncio.run(scenario())


def test_aiokafka_reads_from_latest(broker: EmbeddedBroker) -> None:
    async def scenario() -> None:
        topic = new_topic(broker.bootstrap, "aio-latest")
        await aio_produce(broker.bootstrap, topic, "all", "none", records_to_send("old"))
        new: list[Sent] = []

        async def produce_new() -> None:
            new.extend(await aio_produce(broker.bootstrap, topic, "all", "snappy", records_to_send("new")))

        read = await aio_read(broker.bootstrap, topic, 2 * RECORDS_PER_KIND, from_end=True, then=produce_new)
        check_read_back(new, read, "all")

    asyncio.run(scenario())


# -- kcat -----------------------------------------------------------------------------------------

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
needs_kcat = pytest.mark.skipif(KCAT is None, reason="kcat is not installed (Debian package kcat)")
KCAT_FORMAT = "%p\t%o\t%k\t%s\n"


def kcat_produce(bootstrap: str, topic: str, acks: str, codec: str,
                 records: list[tuple[bytes | None, bytes]]) -> list[Sent]:
    """kcat reports no offsets: the check relies on send order and on keys sticking to a partition."""
    assert KCAT is not None
    for keyed in (True, False):
        lines = b"".join((key + b":" + value if keyed else value) + b"\n"
                         for key, value in records if (key is not None) == keyed)
        command = [KCAT, "-P", "-b", bootstrap, "-t", topic, "-z", codec, "-X", f"acks={acks}",
                   "-X", "linger.ms=5"] + (["-K", ":"] if keyed else [])
        subprocess.run(command, input=lines, check=True, timeout=30, capture_output=True)
    return [Sent(key, value) for key, value in records]


def kcat_read(bootstrap: str, topic: str, count: int) -> list[Read]:
    assert KCAT is not None
    result = subprocess.run([KCAT, "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q",
                             "-c", str(count), "-f", KCAT_FORMAT], check=True, timeout=30, capture_output=True)
    return [parse_kcat_line(line) for line in result.stdout.splitlines()]


def parse_kcat_line(line: bytes) -> Read:
    partition, offset, key, value = line.split(b"\t")
    return Read(int(partition), int(offset), key or None, value)


@needs_kcat
@pytest.mark.parametrize("codec", CODECS)
def test_kcat_produces_and_reads_back_with_every_acks(broker: EmbeddedBroker, codec: str) -> None:
    produce_and_read_back_with_every_acks(broker.bootstrap, "kcat", codec, kcat_produce, kcat_read)


@needs_kcat
def test_kcat_reads_from_latest(broker: EmbeddedBroker) -> None:
    assert KCAT is not None
    topic = new_topic(broker.bootstrap, "kcat-latest")
    kcat_produce(broker.bootstrap, topic, "all", "none", records_to_send("old"))
    new_records = records_to_send("new")
    reader = subprocess.Popen([KCAT, "-C", "-b", broker.bootstrap, "-t", topic, "-o", "end",
                               "-c", str(len(new_records)), "-f", KCAT_FORMAT],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert reader.stderr is not None
        reached = set()  # kcat says "Reached end of topic T [p] at offset N" once positioned
        while len(reached) < PARTITIONS:
            line = reader.stderr.readline()
            assert line, "kcat exited before reaching the end of every partition"
            if b"Reached end of topic" in line:
                reached.add(line.split(b"[")[1].split(b"]")[0])
        sent = kcat_produce(broker.bootstrap, topic, "all", "zstd", new_records)
        out, _ = reader.communicate(timeout=20)
    finally:
        reader.kill()
        reader.wait()
    check_read_back(sent, [parse_kcat_line(line) for line in out.splitlines()], "all")


# -- consumer groups ------------------------------------------------------------------------------

GROUP_PARTITIONS = 6


def assert_split(assignments: list[set[int]], members: int) -> None:
    assert len(assignments) == members
    assert all(len(a) == GROUP_PARTITIONS // members for a in assignments), assignments
    assert set().union(*assignments) == set(range(GROUP_PARTITIONS)), assignments


def is_split(assignments: list[set[int]]) -> bool:
    try:
        assert_split(assignments, len(assignments))
    except AssertionError:
        return False
    return True


def test_confluent_kafka_group_splits_six_partitions_and_rebalances(broker: EmbeddedBroker) -> None:
    from confluent_kafka import Consumer

    topic = new_topic(broker.bootstrap, "ck-group", GROUP_PARTITIONS)
    consumers = [Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"g-{topic}",
                           "session.timeout.ms": 6000, "heartbeat.interval.ms": 200,
                           "partition.assignment.strategy": "range", "enable.auto.commit": False})
                 for _ in range(3)]
    try:
        for consumer in consumers:
            consumer.subscribe([topic])

        def assignments() -> list[set[int]]:
            return [{tp.partition for tp in c.assignment()} for c in consumers]

        def poll_all() -> None:
            for consumer in consumers:
                consumer.poll(0.05)

        wait_until(lambda: is_split(assignments()), step=poll_all, what="three members with two partitions each")
        assert_split(assignments(), 3)
        consumers.pop().close()  # LeaveGroup: the others rebalance at once
        wait_until(lambda: is_split(assignments()), step=poll_all, what="two members with three partitions each")
        assert_split(assignments(), 2)
    finally:
        for consumer in consumers:
            consumer.close()


# kafka-python 3.0 group members: a poll that times out while the member's JoinGroup/SyncGroup is
# in flight throws the answer away and joins again on the next poll, so on a loaded machine short
# polls can rebalance forever; polls this long let the exchange finish inside one.
GROUP_POLL_MS = 500


def kafka_python_group_consumer(topic: str, **settings: Any) -> Any:
    """A subscribed kafka-python group member that knows its topic's partitions before it joins.

    As ``conformance.clients._KafkaPythonMember`` does: kafka-python 3.0 fills the partition
    snapshot the group leader assigns from only with a metadata answer that arrives after
    ``subscribe()``; a leader that joins before it assigns nothing (and logs "No partition metadata
    for topic").  Looking the topics up after subscribing fills it first.
    """
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(**settings)
    consumer.subscribe([topic])
    consumer.topics()
    return consumer


class KafkaPythonMember(threading.Thread):
    """A kafka-python group member polling in its own thread (the client is not thread-safe)."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.group = bootstrap, topic, group
        self.partitions: set[int] = set()
        self.leave = threading.Event()

    def run(self) -> None:
        consumer = kafka_python_group_consumer(self.topic, bootstrap_servers=self.bootstrap, group_id=self.group,
                                               session_timeout_ms=6000, heartbeat_interval_ms=200,
                                               enable_auto_commit=False, fetch_max_wait_ms=100)
        try:
            while not self.leave.is_set():
                consumer.poll(timeout_ms=GROUP_POLL_MS)
                self.partitions = {tp.partition for tp in consumer.assignment()}
        finally:
            consumer.close()


def test_kafka_python_group_splits_six_partitions_and_rebalances(broker: EmbeddedBroker) -> None:
    topic = new_topic(broker.bootstrap, "kp-group", GROUP_PARTITIONS)
    members = [KafkaPythonMember(broker.bootstrap, topic, f"g-{topic}") for _ in range(3)]
    for member in members:
        member.start()
    try:
        wait_until(lambda: is_split([m.partitions for m in members]), timeout=30,
                   what="three members with two partitions each")
        assert_split([m.partitions for m in members], 3)
        leaving = members.pop()
        leaving.leave.set()
        leaving.join(10)
        wait_until(lambda: is_split([m.partitions for m in members]), timeout=30,
                   what="two members with three partitions each")
        assert_split([m.partitions for m in members], 2)
    finally:
        for member in members:
            member.leave.set()
        for member in members:
            member.join(10)


def test_aiokafka_group_splits_six_partitions_and_rebalances(broker: EmbeddedBroker) -> None:
    from aiokafka import AIOKafkaConsumer

    async def scenario() -> None:
        topic = new_topic(broker.bootstrap, "aio-group", GROUP_PARTITIONS)
        consumers = [AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=f"g-{topic}",
                                      session_timeout_ms=6000, heartbeat_interval_ms=200,
                                      enable_auto_commit=False) for _ in range(3)]
        for consumer in consumers:
            await consumer.start()
        try:
            async def wait_split(members: int) -> None:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    if is_split([{tp.partition for tp in c.assignment()} for c in consumers]):
                        break
                    await asyncio.sleep(0.05)
                assert_split([{tp.partition for tp in c.assignment()} for c in consumers], members)

            await wait_split(3)
            await consumers.pop().stop()
            await wait_split(2)
        finally:
            for consumer in consumers:
                await consumer.stop()

    asyncio.run(scenario())


@needs_kcat
def test_kcat_balanced_consumers_split_six_partitions_and_rebalance(broker: EmbeddedBroker) -> None:
    """kcat -G prints "% Group G rebalanced (memberid M): assigned: T [0], T [3]" on stderr."""
    assert KCAT is not None
    topic = new_topic(broker.bootstrap, "kcat-group", GROUP_PARTITIONS)
    members = [KcatMember(KCAT, broker.bootstrap, topic, f"g-{topic}") for _ in range(3)]
    try:
        wait_until(lambda: is_split([m.partitions for m in members]), timeout=30,
                   what="three kcat members with two partitions each")
        assert_split([m.partitions for m in members], 3)
        members.pop().stop()
        wait_until(lambda: is_split([m.partitions for m in members]), timeout=30,
                   what="two kcat members with three partitions each")
        assert_split([m.partitions for m in members], 2)
    finally:
        for member in members:
            member.stop()


class KcatMember:
    def __init__(self, kcat: str, bootstrap: str, topic: str, group: str) -> None:
        self.partitions: set[int] = set()
        self.process = subprocess.Popen(
            [kcat, "-b", bootstrap, "-G", group, "-X", "session.timeout.ms=6000",
             "-X", "heartbeat.interval.ms=200", "-X", "partition.assignment.strategy=range", topic],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.reader.start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if b"rebalanced" in line and b"assigned:" in line:
                listed = line.split(b"assigned:", 1)[1]
                self.partitions = {int(part.split(b"]")[0]) for part in listed.split(b"[")[1:]}
            elif b"rebalanced" in line and b"revoked" in line:
                self.partitions = set()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # kcat closes the consumer: LeaveGroup
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# -- commit, restart, resume ----------------------------------------------------------------------

COMMIT_TOPIC_RECORDS = 10  # per partition, two partitions
SYNC_COMMIT_OFFSET = 4  # partition 0, committed synchronously
ASYNC_COMMIT_OFFSET = 7  # partition 1, committed asynchronously


def fill_commit_topic(bootstrap: str, prefix: str) -> str:
    topic = new_topic(bootstrap, prefix, 2)
    with RawClient(bootstrap) as client:
        for partition in range(2):
            records = [SimpleRecord(value=f"p{partition}-{i}".encode(), timestamp=int(time.time() * 1000))
                       for i in range(COMMIT_TOPIC_RECORDS)]
            assert client.produce(topic, partition, build_batch(records)).error_code == 0
    return topic


def expected_after_commit() -> list[tuple[int, int, bytes]]:
    return sorted([(0, i, f"p0-{i}".encode()) for i in range(SYNC_COMMIT_OFFSET, COMMIT_TOPIC_RECORDS)]
                  + [(1, i, f"p1-{i}".encode()) for i in range(ASYNC_COMMIT_OFFSET, COMMIT_TOPIC_RECORDS)])


def test_confluent_kafka_resumes_from_committed_offsets_after_a_restart(own_broker: EmbeddedBroker) -> None:
    from confluent_kafka import Consumer, TopicPartition

    topic = fill_commit_topic(own_broker.bootstrap, "ck-commit")
    config = {"bootstrap.servers": own_broker.bootstrap, "group.id": f"g-{topic}", "enable.auto.commit": False,
              "auto.offset.reset": "earliest", "session.timeout.ms": 6000, "heartbeat.interval.ms": 200}
    consumer = Consumer(config)
    consumer.subscribe([topic])
    seen = 0
    deadline = time.monotonic() + 20
    while seen < 2 * COMMIT_TOPIC_RECORDS and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        seen += message is not None and not message.error()
    assert seen == 2 * COMMIT_TOPIC_RECORDS
    consumer.commit(offsets=[TopicPartition(topic, 0, SYNC_COMMIT_OFFSET)], asynchronous=False)
    committed_async: list[Any] = []
    consumer_async = Consumer({**config, "on_commit": lambda error, parts: committed_async.append((error, parts))})
    consumer.close()
    consumer_async.subscribe([topic])
    wait_until(lambda: len(consumer_async.assignment()) == 2, step=lambda: consumer_async.poll(0.1),
               what="the second consumer's assignment")
    consumer_async.commit(offsets=[TopicPartition(topic, 1, ASYNC_COMMIT_OFFSET)], asynchronous=True)
    wait_until(lambda: bool(committed_async), step=lambda: consumer_async.poll(0.1), what="the async commit")
    assert committed_async[0][0] is None
    consumer_async.close()

    own_broker.restart()

    resumed = Consumer(config)
    resumed.subscribe([topic])
    read: list[tuple[int, int, bytes]] = []
    deadline = time.monotonic() + 20
    try:
        while len(read) < len(expected_after_commit()) and time.monotonic() < deadline:
            message = resumed.poll(0.2)
            if message is not None and not message.error():
                read.append((message.partition(), message.offset(), message.value()))
        resumed.poll(0.5)  # nothing more may come
    finally:
        resumed.close()
    assert sorted(read) == expected_after_commit()


def test_kafka_python_resumes_from_committed_offsets_after_a_restart(own_broker: EmbeddedBroker) -> None:
    from kafka import TopicPartition
    from kafka.structs import OffsetAndMetadata

    topic = fill_commit_topic(own_broker.bootstrap, "kp-commit")
    settings = {"bootstrap_servers": own_broker.bootstrap, "group_id": f"g-{topic}", "enable_auto_commit": False,
                "auto_offset_reset": "earliest", "session_timeout_ms": 6000, "heartbeat_interval_ms": 200,
                "fetch_max_wait_ms": 100}
    consumer = kafka_python_group_consumer(topic, **settings)
    seen = 0
    deadline = time.monotonic() + 20
    while seen < 2 * COMMIT_TOPIC_RECORDS and time.monotonic() < deadline:
        seen += sum(len(batch) for batch in consumer.poll(timeout_ms=GROUP_POLL_MS).values())
    assert seen == 2 * COMMIT_TOPIC_RECORDS
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    consumer.commit({p0: OffsetAndMetadata(SYNC_COMMIT_OFFSET, "", -1)})
    answers: list[Any] = []
    consumer.commit_async({p1: OffsetAndMetadata(ASYNC_COMMIT_OFFSET, "", -1)},
                          callback=lambda offsets, response: answers.append(response))
    wait_until(lambda: bool(answers), step=lambda: consumer.poll(timeout_ms=50), what="the async commit")
    assert not isinstance(answers[0], Exception), answers[0]
    consumer.close()

    own_broker.restart()

    resumed = kafka_python_group_consumer(topic, **settings)
    read: list[tuple[int, int, bytes]] = []
    deadline = time.monotonic() + 20
    try:
        while len(read) < len(expected_after_commit()) and time.monotonic() < deadline:
            for messages in resumed.poll(timeout_ms=GROUP_POLL_MS).values():
                read.extend((m.partition, m.offset, m.value) for m in messages)
        for messages in resumed.poll(timeout_ms=300).values():
            read.extend((m.partition, m.offset, m.value) for m in messages)
    finally:
        resumed.close()
    assert sorted(read) == expected_after_commit()


def test_aiokafka_resumes_from_committed_offsets_after_a_restart(own_broker: EmbeddedBroker) -> None:
    """aiokafka's commit is a coroutine; the "async" commit runs as a task awaited later."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topic = fill_commit_topic(own_broker.bootstrap, "aio-commit")
    settings = {"bootstrap_servers": own_broker.bootstrap, "group_id": f"g-{topic}", "enable_auto_commit": False,
                "auto_offset_reset": "earliest", "session_timeout_ms": 6000, "heartbeat_interval_ms": 200,
                "fetch_max_wait_ms": 100}

    async def commit_phase() -> None:
        consumer = AIOKafkaConsumer(topic, **settings)
        await consumer.start()
        try:
            seen = 0
            deadline = time.monotonic() + 20
            while seen < 2 * COMMIT_TOPIC_RECORDS and time.monotonic() < deadline:
                seen += sum(len(m) for m in (await consumer.getmany(timeout_ms=200)).values())
            assert seen == 2 * COMMIT_TOPIC_RECORDS
            await consumer.commit({TopicPartition(topic, 0): SYNC_COMMIT_OFFSET})
            background = asyncio.ensure_future(consumer.commit({TopicPartition(topic, 1): ASYNC_COMMIT_OFFSET}))
            await consumer.getmany(timeout_ms=50)
            await background
        finally:
            await consumer.stop()

    async def resume_phase() -> list[tuple[int, int, bytes]]:
        consumer = AIOKafkaConsumer(topic, **settings)
        await consumer.start()
        read: list[tuple[int, int, bytes]] = []
        try:
            deadline = time.monotonic() + 20
            while len(read) < len(expected_after_commit()) and time.monotonic() < deadline:
                for messages in (await consumer.getmany(timeout_ms=200)).values():
                    read.extend((m.partition, m.offset, m.value) for m in messages)
            for messages in (await consumer.getmany(timeout_ms=300)).values():
                read.extend((m.partition, m.offset, m.value) for m in messages)
        finally:
            await consumer.stop()
        return read

    asyncio.run(commit_phase())
    own_broker.restart()
    assert sorted(asyncio.run(resume_phase())) == expected_after_commit()


# -- idempotent producer, raw protocol ------------------------------------------------------------


def init_producer_id(client: RawClient, producer_id: int = -1, producer_epoch: int = -1) -> tuple[int, int]:
    body = client.call("InitProducerId", 4, transactional_id=None, transaction_timeout_ms=60000,
                       producer_id=producer_id, producer_epoch=producer_epoch)
    assert body.error_code == 0
    return body.producer_id, body.producer_epoch


def idempotent_batch(values: list[bytes], producer_id: int, epoch: int, sequence: int) -> bytes:
    now = int(time.time() * 1000)
    return build_batch([SimpleRecord(value=v, key=b"k", timestamp=now) for v in values],
                       producer_id=producer_id, producer_epoch=epoch, base_sequence=sequence)


def test_a_resent_idempotent_batch_gets_its_original_offsets(broker: EmbeddedBroker) -> None:
    topic = new_topic(broker.bootstrap, "idem", 1)
    with RawClient(broker.bootstrap) as client:
        producer_id, epoch = init_producer_id(client)
        batches = [idempotent_batch([f"v{i}a".encode(), f"v{i}b".encode()], producer_id, epoch, 2 * i)
                   for i in range(5)]
        first_offsets = [client.produce(topic, 0, b).base_offset for b in batches]
        assert first_offsets == [0, 2, 4, 6, 8]
        for original, resent in zip(first_offsets, batches, strict=True):  # all five are in the window
            answer = client.produce(topic, 0, resent)
            assert (answer.error_code, answer.base_offset) == (0, original)
        assert client.fetch(topic, 0, 0).high_watermark == 10


def test_a_resent_idempotent_batch_is_recognised_after_a_restart(own_broker: EmbeddedBroker) -> None:
    """Producer state is rebuilt from snapshots and the log, so deduplication survives a restart."""
    topic = new_topic(own_broker.bootstrap, "idem-restart", 1)
    with RawClient(own_broker.bootstrap) as client:
        producer_id, epoch = init_producer_id(client)
        batch = idempotent_batch([b"once"], producer_id, epoch, 0)
        assert client.produce(topic, 0, batch).base_offset == 0
    own_broker.restart()
    with RawClient(own_broker.bootstrap) as client:
        answer = client.produce(topic, 0, batch)
        assert (answer.error_code, answer.base_offset) == (0, 0)
        assert client.fetch(topic, 0, 0).high_watermark == 1


def test_a_sequence_gap_and_a_stale_epoch_are_refused(broker: EmbeddedBroker) -> None:
    topic = new_topic(broker.bootstrap, "idem-bad", 1)
    with RawClient(broker.bootstrap) as client:
        producer_id, epoch = init_producer_id(client)
        assert client.produce(topic, 0, idempotent_batch([b"a"], producer_id, epoch, 0)).error_code == 0
        gap = client.produce(topic, 0, idempotent_batch([b"gap"], producer_id, epoch, 5))
        assert gap.error_code == Errors.OUT_OF_ORDER_SEQUENCE_NUMBER.code
        # An idempotent (non-transactional) producer bumps its epoch itself after such an error
        # (KIP-360); the broker takes a higher epoch starting again at sequence 0.  (InitProducerId
        # without a transactional id always hands out a new producer id, in Kafka as here.)
        bumped_epoch = epoch + 1
        assert client.produce(topic, 0, idempotent_batch([b"b"], producer_id, bumped_epoch, 0)).error_code == 0
        stale = client.produce(topic, 0, idempotent_batch([b"stale"], producer_id, epoch, 1))
        assert stale.error_code == Errors.INVALID_PRODUCER_EPOCH.code
        assert client.fetch(topic, 0, 0).high_watermark == 2


# -- bad input ------------------------------------------------------------------------------------


def closed_by_broker(sock: socket.socket) -> bool:
    sock.settimeout(10)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


BAD_FRAMES = {
    # Metadata v0 whose topic array claims 1000 names and carries none
    "malformed": struct.pack(">i", 14) + struct.pack(">hhihi", 3, 0, 1, -1, 1000),
    "unknown api key": struct.pack(">ihhih", 10, 9999, 0, 1, -1),
    "oversized size prefix": struct.pack(">i", 0x7FFF_FFF0),
    "negative size prefix": struct.pack(">i", -5),
}


def test_bad_frames_close_only_their_own_connection(broker: EmbeddedBroker) -> None:
    from confluent_kafka import Producer

    topic = new_topic(broker.bootstrap, "bad-input", 1)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 1})
    delivered: list[int] = []
    failures: list[Any] = []

    def report(error: Any, message: Any) -> None:
        (failures if error else delivered).append(error or message.offset())

    def produce(count: int) -> None:
        for i in range(count):
            producer.produce(topic, value=f"v{len(delivered)}-{i}".encode(), on_delivery=report)
        producer.flush(10)

    produce(5)
    bystander = RawClient(broker.bootstrap)  # an idle connection that must survive too
    for name, frame in BAD_FRAMES.items():
        with socket.create_connection((broker.host, broker.port), timeout=10) as bad:
            bad.sendall(frame)
            assert closed_by_broker(bad), name
        produce(5)
    assert not failures
    assert sorted(delivered) == list(range(5 * (len(BAD_FRAMES) + 1)))
    assert bystander.call("ApiVersions", 0).error_code == 0
    bystander.close()


# Verified against Apache Kafka 4.3.1 (see the kafka-marked comparison below).
INVALID_TOPICS: list[tuple[str, int, dict[str, str], int]] = [
    ("", 1, {}, Errors.INVALID_TOPIC_EXCEPTION.code),
    (".", 1, {}, Errors.INVALID_TOPIC_EXCEPTION.code),
    ("..", 1, {}, Errors.INVALID_TOPIC_EXCEPTION.code),
    ("a" * 250, 1, {}, Errors.INVALID_TOPIC_EXCEPTION.code),
    ("bad/name", 1, {}, Errors.INVALID_TOPIC_EXCEPTION.code),
    ("bad name", 1, {}, Errors.INVALID_TOPIC_EXCEPTION.code),
    ("ok-topic", 0, {}, Errors.INVALID_PARTITIONS.code),
    ("ok-topic", 1, {"cleanup.policy": "bogus"}, Errors.INVALID_CONFIG.code),
    ("ok-topic", 1, {"retention.ms": "abc"}, Errors.INVALID_CONFIG.code),
    ("ok-topic", 1, {"no.such.config": "1"}, Errors.INVALID_CONFIG.code),
    ("ok-topic", 1, {"min.insync.replicas": "0"}, Errors.INVALID_CONFIG.code),
    ("ok-topic", 1, {"segment.bytes": "10"}, Errors.INVALID_CONFIG.code),
    ("ok-topic", 1, {"compression.type": "brotli"}, Errors.INVALID_CONFIG.code),
    ("a" * 249, 1, {}, Errors.NONE.code),
]


def create_topic_codes(bootstrap: str) -> list[int]:
    with RawClient(bootstrap) as client:
        return [client.create_topic(name, partitions, configs, validate_only=True).error_code
                for name, partitions, configs, _code in INVALID_TOPICS]


def test_invalid_topic_names_and_configs_get_kafkas_error_codes(broker: EmbeddedBroker) -> None:
    assert create_topic_codes(broker.bootstrap) == [code for *_rest, code in INVALID_TOPICS]


def test_a_topic_name_colliding_on_dot_and_underscore_is_refused(broker: EmbeddedBroker) -> None:
    suffix = next(_topic_counter)
    with RawClient(broker.bootstrap) as client:
        assert client.create_topic(f"collide.{suffix}").error_code == 0
        assert client.create_topic(f"collide_{suffix}").error_code == Errors.INVALID_TOPIC_EXCEPTION.code
        assert client.create_topic(f"collide.{suffix}").error_code == Errors.TOPIC_ALREADY_EXISTS.code


@pytest.mark.kafka
@pytest.mark.xdist_group("apache-kafka-peer")
def test_create_topics_error_codes_match_apache_kafka(broker: EmbeddedBroker, kafka_peer: tuple[str, int]) -> None:
    """Invalid names, partition counts and configs get the codes Apache Kafka gives, asked live."""
    host, port = kafka_peer
    assert create_topic_codes(broker.bootstrap) == create_topic_codes(f"{host}:{port}")
