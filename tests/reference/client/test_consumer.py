"""The reference consumer against real brokers: the embedded reference broker and Apache Kafka.

Records are written by the reference producer (every codec) or confluent-kafka; groups mix
reference consumers with confluent-kafka's (librdkafka) consumer.  No assertion depends on time:
waits poll until a condition holds and fail with what was seen if it never does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from reference.broker.embedded import EmbeddedBroker
from reference.client.consumer import (
    Consumer,
    ConsumerRecord,
    NoOffsetForPartitionError,
    RebalanceListener,
    TopicPartition,
)
from reference.client.producer import Producer

pytestmark = pytest.mark.clients
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
FAST_GROUP = {"heartbeat.interval.ms": 200, "session.timeout.ms": 10000, "auto.offset.reset": "earliest"}


@pytest.fixture(scope="module")
def reference_broker() -> Iterator[str]:
    embedded = EmbeddedBroker(config={"auto.create.topics.enable": "false", "group.initial.rebalance.delay.ms": "0"})
    yield embedded.start()
    embedded.stop()


REFKA = [sys.executable, "-c", "import sys; from reference.cli import main; sys.exit(main())"]


def new_topic(bootstrap: str, prefix: str, partitions: int) -> str:
    name = f"{prefix}-{time.time_ns()}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)
    return name


def produce(bootstrap: str, topic: str, count: int, codec: str = "none", prefix: str = "v") -> list[bytes]:
    values = [f"{prefix}-{codec}-{i}".encode() for i in range(count)]
    with Producer({"bootstrap.servers": bootstrap, "compression.type": codec, "linger.ms": 5}) as producer:
        for i, value in enumerate(values):
            producer.send(topic, value, key=f"key-{i}".encode())
        assert producer.flush(30) == 0
    return values


def consumer(bootstrap: str, group: str | None, **extra: object) -> Consumer:
    properties: dict[str, object] = {"bootstrap.servers": bootstrap, **FAST_GROUP, **extra}
    if group is not None:
        properties["group.id"] = group
    return Consumer(properties)


def poll_until(consumers: list[Consumer], done: Callable[[], bool], seen: dict[int, list[ConsumerRecord]],
               what: str, deadline_s: float = 45.0) -> None:
    """Poll every consumer in turn until ``done()``; records land in ``seen[index]``."""
    deadline = time.monotonic() + deadline_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {what}; assignments {[c.assignment() for c in consumers]}, "
                                 f"records per consumer {[len(seen.get(i, [])) for i in range(len(consumers))]}")
        for index, member in enumerate(consumers):
            seen.setdefault(index, []).extend(member.poll(0.05))


def values(records: list[ConsumerRecord]) -> list[bytes]:
    return [r.value for r in records if r.value is not None]


def test_every_codec_is_read_back_and_a_restart_resumes_at_the_committed_offset(bootstrap: str) -> None:
    topic = new_topic(bootstrap, "consume-all", 3)
    written = [v for codec in CODECS for v in produce(bootstrap, topic, 40, codec)]
    group = f"resume-{time.time_ns()}"
    first = consumer(bootstrap, group, **{"enable.auto.commit": "false", "max.poll.records": 25})
    seen: dict[int, list[ConsumerRecord]] = {}
    first.subscribe([topic])
    poll_until([first], lambda: len(seen.get(0, [])) >= 100, seen, "100 records")
    first.commit_sync()
    part_one = seen[0]
    committed = first.committed([TopicPartition(topic, p) for p in range(3)])
    assert sum(o or 0 for o in committed.values()) == len(part_one)  # one commit per record returned
    first.close()

    second = consumer(bootstrap, group, **{"enable.auto.commit": "false"})
    second.subscribe([topic])
    rest: dict[int, list[ConsumerRecord]] = {}
    poll_until([second], lambda: len(part_one) + len(rest.get(0, [])) >= len(written), rest, "the rest")
    second.close()
    everything = values(part_one) + values(rest[0])
    assert sorted(everything) == sorted(written)  # nothing lost, nothing twice
    for record in part_one + rest[0]:  # offsets per partition are dense and increasing
        assert record.topic == topic and record.key is not None and record.key.startswith(b"key-")


def test_three_members_split_the_partitions_and_two_take_over_when_one_leaves(bootstrap: str) -> None:
    topic = new_topic(bootstrap, "split", 6)
    group = f"split-{time.time_ns()}"
    members = [consumer(bootstrap, group) for _ in range(3)]
    seen: dict[int, list[ConsumerRecord]] = {}
    for member in members:
        member.subscribe([topic])

    def split_evenly() -> bool:
        owned = [m.assignment() for m in members]
        return all(len(o) == 2 for o in owned) and len(set().union(*owned)) == 6

    poll_until(members, split_evenly, seen, "six partitions split two by two")
    members[2].close()
    survivors = members[:2]

    def taken_over() -> bool:
        owned = [m.assignment() for m in survivors]
        return sum(len(o) for o in owned) == 6 and len(set().union(*owned)) == 6

    poll_until(survivors, taken_over, seen, "the survivors owning all six")
    written = produce(bootstrap, topic, 60)
    after: dict[int, list[ConsumerRecord]] = {}
    poll_until(survivors, lambda: sum(len(r) for r in after.values()) >= 60, after, "60 records")
    assert sorted(values(after[0] + after[1])) == sorted(written)
    for member in survivors:
        member.close()


@pytest.mark.parametrize("strategy", ["range", "roundrobin", "cooperative-sticky"])
def test_a_mixed_group_with_a_confluent_kafka_consumer(bootstrap: str, strategy: str) -> None:
    """librdkafka and refka read each other's ConsumerProtocol bytes: whichever is the leader,
    both end with two partitions each and every record is read once."""
    topic = new_topic(bootstrap, "mixed", 4)
    group = f"mixed-{time.time_ns()}"
    ours = consumer(bootstrap, group, **{"partition.assignment.strategy": strategy})
    ours.subscribe([topic])
    theirs = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                                       "partition.assignment.strategy": strategy, "auto.offset.reset": "earliest",
                                       "heartbeat.interval.ms": 200})
    theirs_records: list[bytes] = []

    def poll_theirs() -> None:
        message = theirs.poll(0.05)
        if message is not None and not message.error():
            theirs_records.append(message.value())

    theirs.subscribe([topic])
    seen: dict[int, list[ConsumerRecord]] = {}
    deadline = time.monotonic() + 45

    def split() -> bool:
        mine = ours.assignment()
        other = {TopicPartition(tp.topic, tp.partition) for tp in theirs.assignment()}
        return len(mine) == 2 and len(other) == 2 and not mine & other

    while not split():
        assert time.monotonic() < deadline, f"no split: ours {ours.assignment()}, theirs {theirs.assignment()}"
        seen.setdefault(0, []).extend(ours.poll(0.05))
        poll_theirs()
    written = produce(bootstrap, topic, 80)
    while len(seen.get(0, [])) + len(theirs_records) < 80:
        assert time.monotonic() < deadline + 30, "records missing"
        seen.setdefault(0, []).extend(ours.poll(0.05))
        poll_theirs()
    assert sorted(values(seen[0]) + theirs_records) == sorted(written)
    ours.close()
    theirs.close()


class Recorder(RebalanceListener):
    def __init__(self) -> None:
        self.calls: list[tuple[str, frozenset[TopicPartition]]] = []

    def on_partitions_revoked(self, partitions: set[TopicPartition]) -> None:
        self.calls.append(("revoked", frozenset(partitions)))

    def on_partitions_assigned(self, partitions: set[TopicPartition]) -> None:
        self.calls.append(("assigned", frozenset(partitions)))


def test_cooperative_sticky_keeps_the_partitions_that_do_not_move(bootstrap: str) -> None:
    topic = new_topic(bootstrap, "cooperative", 4)
    group = f"cooperative-{time.time_ns()}"
    strategy = {"partition.assignment.strategy": "cooperative-sticky"}
    first, listener = consumer(bootstrap, group, **strategy), Recorder()
    first.subscribe([topic], listener)
    seen: dict[int, list[ConsumerRecord]] = {}
    poll_until([first], lambda: len(first.assignment()) == 4, seen, "the first member owning all four")
    before = first.assignment()
    second = consumer(bootstrap, group, **strategy)
    second.subscribe([topic])
    pair = [first, second]
    poll_until(pair, lambda: len(first.assignment()) == 2 and len(second.assignment()) == 2, seen, "a 2/2 split")
    kept = first.assignment()
    assert kept < before and not kept & second.assignment()
    revoked = [partitions for kind, partitions in listener.calls if kind == "revoked"]
    assert revoked == [frozenset(before - kept)]  # only what moved; never everything (that is eager)
    for member in pair:
        member.close()


def test_manual_assignment_seek_pause_resume_and_positions(bootstrap: str) -> None:
    topic = new_topic(bootstrap, "manual", 1)
    produce(bootstrap, topic, 20)
    tp = TopicPartition(topic, 0)
    reader = consumer(bootstrap, None)
    reader.assign([tp])
    reader.seek_to_end([tp])
    assert reader.position(tp) == 20
    reader.seek(tp, 5)
    seen: dict[int, list[ConsumerRecord]] = {}
    poll_until([reader], lambda: len(seen.get(0, [])) >= 15, seen, "offsets 5..19")
    assert [r.offset for r in seen[0]] == list(range(5, 20))
    reader.pause([tp])
    produce(bootstrap, topic, 5, prefix="late")
    assert reader.poll(1.0) == []  # paused: nothing, though records wait
    reader.resume([tp])
    late: dict[int, list[ConsumerRecord]] = {}
    poll_until([reader], lambda: len(late.get(0, [])) >= 5, late, "the late records")
    assert [r.offset for r in late[0]] == list(range(20, 25))
    reader.seek(tp, 1_000)  # beyond the log end: OFFSET_OUT_OF_RANGE, then auto.offset.reset=earliest
    again: dict[int, list[ConsumerRecord]] = {}
    poll_until([reader], lambda: len(again.get(0, [])) >= 1, again, "a reset to the beginning")
    assert again[0][0].offset == 0
    reader.close()


def test_no_committed_offset_and_reset_none_is_an_error_from_poll(bootstrap: str) -> None:
    topic = new_topic(bootstrap, "reset-none", 1)
    strict = consumer(bootstrap, f"none-{time.time_ns()}", **{"auto.offset.reset": "none"})
    strict.subscribe([topic])
    deadline = time.monotonic() + 30
    with pytest.raises(NoOffsetForPartitionError):
        while time.monotonic() < deadline:
            strict.poll(0.1)
    strict.close()


@pytest.mark.kafka
@pytest.mark.xdist_group("apache-kafka-peer")
def test_fetch_sessions_go_incremental_against_kafka(kafka_peer: tuple[str, int]) -> None:
    """Kafka serves KIP-227 sessions: one full fetch opens it, the following ones are incremental."""
    bootstrap = f"{kafka_peer[0]}:{kafka_peer[1]}"
    topic = new_topic(bootstrap, "sessions", 3)
    reader = consumer(bootstrap, None, **{"fetch.max.wait.ms": 50})
    reader.assign([TopicPartition(topic, p) for p in range(3)])
    reader.seek_to_beginning()
    seen: dict[int, list[ConsumerRecord]] = {}
    for round_number in range(3):
        produce(bootstrap, topic, 10, prefix=f"round{round_number}")
        poll_until([reader], lambda n=round_number: len(seen.get(0, [])) >= 10 * (n + 1), seen, "the round")
    sessions = list(reader.core.fetcher.sessions.values())
    assert len(sessions) == 1 and sessions[0].session_id != 0
    assert sessions[0].full_requests == 1 and sessions[0].incremental_requests >= 2
    reader.close()


def test_refka_consume_prints_what_refka_produce_wrote(bootstrap: str) -> None:
    topic = new_topic(bootstrap, "console", 2)
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    produced = subprocess.run(
        [*REFKA, "produce", "--bootstrap-server", bootstrap, "--topic", topic,
         "--property", "parse.key=true", "--property", "key.separator=:"],
        input=b"a:1\nb:2\nc:3\nd:4\n", capture_output=True, timeout=60, env=environment)
    assert produced.returncode == 0, produced.stderr
    consumed = subprocess.run(
        [*REFKA, "consume", "--bootstrap-server", bootstrap, "--topic", topic,
         "--from-beginning", "--max-messages", "4", "--group", f"console-{time.time_ns()}",
         "--property", "print.key=true", "--property", "key.separator=:"],
        capture_output=True, timeout=60, env=environment)
    assert consumed.returncode == 0, consumed.stderr
    assert sorted(consumed.stdout.decode().splitlines()) == ["a:1", "b:2", "c:3", "d:4"]
    assert b"Processed a total of 4 messages" in consumed.stderr


def test_refka_consume_reports_a_bad_argument_in_one_line(reference_broker: str) -> None:
    result = subprocess.run(
        [*REFKA, "consume", "--bootstrap-server", reference_broker, "--topic", "t",
         "--offset", "3"], capture_output=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.decode().strip().count("\n") == 0 and "--partition" in result.stderr.decode()


def test_a_static_member_that_comes_back_gets_its_partitions_without_a_rebalance(bootstrap: str) -> None:
    """KIP-345: closing a static member sends no LeaveGroup; the same group.instance.id joining
    again within session.timeout.ms takes its old assignment and the other member never rebalances."""
    topic = new_topic(bootstrap, "static", 4)
    group = f"static-{time.time_ns()}"
    static = {"group.instance.id": "static-a", "partition.assignment.strategy": "range"}
    first = consumer(bootstrap, group, **static)
    other = consumer(bootstrap, group, **{"partition.assignment.strategy": "range"})
    for member in (first, other):
        member.subscribe([topic])
    seen: dict[int, list[ConsumerRecord]] = {}
    poll_until([first, other], lambda: len(first.assignment()) == 2 and len(other.assignment()) == 2, seen, "a split")
    owned, rebalances = first.assignment(), other.core.coordinator.rebalances
    first.close()
    again = consumer(bootstrap, group, **static)
    again.subscribe([topic])
    poll_until([again, other], lambda: again.assignment() == owned, seen, "the old assignment back")
    for _ in range(10):  # heartbeats pass; the other member stays in its generation
        other.poll(0.05)
    assert other.core.coordinator.rebalances == rebalances and len(other.assignment()) == 2
    for member in (again, other):
        member.close()


def test_auto_commit_commits_consumed_positions_and_close_commits_the_rest(bootstrap: str) -> None:
    topic = new_topic(bootstrap, "auto-commit", 2)
    produce(bootstrap, topic, 30)
    group = f"auto-{time.time_ns()}"
    partitions = [TopicPartition(topic, p) for p in range(2)]
    ticking = consumer(bootstrap, group, **{"auto.commit.interval.ms": 50})
    ticking.subscribe([topic])
    seen: dict[int, list[ConsumerRecord]] = {}
    poll_until([ticking], lambda: len(seen.get(0, [])) >= 30, seen, "30 records")
    ends = {tp: ticking.position(tp) for tp in partitions}

    def committed_all() -> bool:
        return ticking.committed(partitions) == ends

    poll_until([ticking], committed_all, seen, "the interval's commit of every position")
    ticking.close()
    produce(bootstrap, topic, 10, prefix="more")
    closing = consumer(bootstrap, group, **{"auto.commit.interval.ms": 600_000})
    closing.subscribe([topic])
    more: dict[int, list[ConsumerRecord]] = {}
    poll_until([closing], lambda: len(more.get(0, [])) >= 10, more, "the 10 newer records only")
    assert sorted(values(more[0])) == sorted(f"more-none-{i}".encode() for i in range(10))
    closing.close()  # the interval never came: close commits
    checker = consumer(bootstrap, group)
    checker.subscribe([topic])
    poll_until([checker], lambda: len(checker.assignment()) == 2, {}, "an assignment")
    assert sum(o or 0 for o in checker.committed(partitions).values()) == 40
    checker.close()


def test_read_committed_skips_aborted_transactions(bootstrap: str) -> None:
    topic = new_topic(bootstrap, "transactions", 1)
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "transactional.id": f"tx-{time.time_ns()}"})
    producer.init_transactions(30)
    for outcome, count in (("commit", 5), ("abort", 4), ("commit", 3)):
        producer.begin_transaction()
        for i in range(count):
            producer.produce(topic, f"{outcome}-{count}-{i}".encode())
        assert producer.flush(30) == 0  # written before the outcome: an abort must leave records behind
        if outcome == "commit":
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)
    tp = TopicPartition(topic, 0)  # offsets: 0-4, COMMIT 5, 6-9 aborted, ABORT 10, 11-13, COMMIT 14
    for level, expected in (("read_committed", 8), ("read_uncommitted", 12)):
        reader = consumer(bootstrap, None, **{"isolation.level": level})
        reader.assign([tp])
        reader.seek_to_beginning([tp])
        seen: dict[int, list[ConsumerRecord]] = {}
        poll_until([reader], lambda r=reader: r.position(tp) >= 15, seen, f"the end of the log under {level}")
        assert len(seen.get(0, [])) == expected, [r.value for r in seen.get(0, [])]
        assert all(b"abort" not in v for v in values(seen.get(0, []))) or level == "read_uncommitted"
        reader.close()


@pytest.mark.kafka
@pytest.mark.xdist_group("apache-kafka-peer")
def test_refka_consume_prints_what_kafka_console_consumer_prints(kafka_peer: tuple[str, int]) -> None:
    """Kafka's own ConsoleConsumer and ``refka consume`` read the same records with every print.*
    property on: the lines must be identical (DefaultMessageFormatter's layout, null, NO_HEADERS)."""
    from conformance.apache_kafka import KafkaTools

    bootstrap = f"{kafka_peer[0]}:{kafka_peer[1]}"
    topic = new_topic(bootstrap, "formatter", 1)
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
    now_ms = int(time.time() * 1000)
    producer.produce(topic, b"v1", key=b"k1", headers=[("h1", b"x"), ("h2", None)], timestamp=now_ms - 2)
    producer.produce(topic, None, key=None, timestamp=now_ms - 1)
    producer.produce(topic, b"v3", key=b"k3", timestamp=now_ms)
    assert producer.flush(30) == 0
    arguments = ["--bootstrap-server", bootstrap, "--topic", topic, "--partition", "0", "--offset", "earliest",
                 "--max-messages", "3", "--timeout-ms", "30000"]
    for name in ("print.timestamp", "print.partition", "print.offset", "print.headers", "print.key"):
        arguments += ["--property", f"{name}=true"]
    arguments += ["--property", "key.separator=|"]
    kafka = KafkaTools().run("org.apache.kafka.tools.consumer.ConsoleConsumer", arguments, timeout=90)
    kafka_lines = [line for line in kafka.stdout.splitlines() if line.startswith("CreateTime:")]
    ours = subprocess.run([*REFKA, "consume", *arguments], capture_output=True, text=True, timeout=60)
    assert ours.returncode == 0, ours.stderr
    assert len(kafka_lines) == 3, kafka.stdout[-2000:]
    assert ours.stdout.splitlines() == kafka_lines


def test_the_applications_mistakes_are_typed_errors_before_anything_is_sent() -> None:
    from reference.client.consumer import ConfigException, SubscriptionError

    with pytest.raises(ConfigException, match="auto.offset.reset"):
        Consumer({"bootstrap.servers": "127.0.0.1:1", "auto.offset.reset": "sometimes"})
    with pytest.raises(ConfigException, match="heartbeat.interval.ms"):
        Consumer({"bootstrap.servers": "127.0.0.1:1", "group.id": "g", "heartbeat.interval.ms": 50000})
    with pytest.raises(ConfigException, match="group.protocol"):
        Consumer({"bootstrap.servers": "127.0.0.1:1", "group.protocol": "consumer"})
    lonely = Consumer({"bootstrap.servers": "127.0.0.1:1"})
    with pytest.raises(SubscriptionError, match="not subscribed"):
        lonely.poll(0)
    with pytest.raises(ConfigException, match="group.id"):
        lonely.subscribe(["t"])
    lonely.assign([TopicPartition("t", 0)])
    with pytest.raises(SubscriptionError, match="no current assignment"):
        lonely.position(TopicPartition("t", 1))
    lonely.close()
    grouped = Consumer({"bootstrap.servers": "127.0.0.1:1", "group.id": "g"})
    grouped.assign([TopicPartition("t", 0)])
    with pytest.raises(SubscriptionError, match="mutually exclusive"):
        grouped.subscribe(["t"])
    grouped.close(timeout=1)


def test_committed_offsets_of_topics_the_consumer_never_fetched(bootstrap: str) -> None:
    """commit_sync/committed for a topic this consumer neither subscribed to nor assigned: its
    metadata has no topic id, so OffsetCommit/OffsetFetch go at v9, naming the topic (v10 would
    send the zero id and be answered UNKNOWN_TOPIC_ID until the timeout)."""
    topic = new_topic(bootstrap, "committed-cold", 2)
    produce(bootstrap, topic, 4)
    group = f"{topic}-group"
    writer = consumer(bootstrap, group)
    try:
        assert writer.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=20) == {
            TopicPartition(topic, 0): None, TopicPartition(topic, 1): None}
        writer.commit_sync({TopicPartition(topic, 1): 3}, timeout=20)
    finally:
        writer.close()
    reader = consumer(bootstrap, group)
    try:
        assert reader.committed([TopicPartition(topic, 1)], timeout=20) == {TopicPartition(topic, 1): 3}
    finally:
        reader.close()
