"""ListOffsets (API key 2) and the consumer's auto.offset.reset policy."""

from __future__ import annotations

import time

import pytest

from conformance import raw
from conformance.clients import ClientLacks, Message
from reference.errors import Errors


def _produce_timestamped(conn, topic, base_timestamp):
    for i in range(3):
        batch = raw.record_batch([raw.Record(None, f"r{i}".encode())], base_timestamp=base_timestamp + 1000 * i)
        result = raw.produce(conn, topic, 0, batch)
        assert result is not None and result.error_code == 0, result


def test_list_offsets_earliest_and_latest(topics, broker):
    """ListOffsets with timestamp -2 (EARLIEST) returns the log start offset and -1 (LATEST) the
    log end offset (high watermark for read_uncommitted)."""
    topic = topics.create()
    conn = broker.leader(topic)
    assert raw.list_offset(conn, topic, 0, raw.EARLIEST_TIMESTAMP).offset == 0
    assert raw.list_offset(conn, topic, 0, raw.LATEST_TIMESTAMP).offset == 0
    _produce_timestamped(conn, topic, int(time.time() * 1000) - 60_000)
    assert raw.list_offset(conn, topic, 0, raw.EARLIEST_TIMESTAMP).offset == 0
    assert raw.list_offset(conn, topic, 0, raw.LATEST_TIMESTAMP).offset == 3


def test_list_offsets_by_timestamp(topics, broker):
    """ListOffsets by timestamp (KIP-79): the earliest offset whose timestamp is >= the target;
    offset -1 when no record is that recent."""
    topic = topics.create()
    conn = broker.leader(topic)
    base = int(time.time() * 1000) - 60_000
    _produce_timestamped(conn, topic, base)
    assert raw.list_offset(conn, topic, 0, base).offset == 0
    assert raw.list_offset(conn, topic, 0, base + 500).offset == 1
    found = raw.list_offset(conn, topic, 0, base + 2000)
    assert (found.offset, found.timestamp) == (2, base + 2000)
    assert raw.list_offset(conn, topic, 0, base + 10_000).offset == -1


def test_list_offsets_unknown_partition(topics, broker):
    """ListOffsets for a partition that does not exist: UNKNOWN_TOPIC_OR_PARTITION (3)."""
    topic = topics.create()
    result = raw.list_offset(broker.leader(topic), topic, 5, raw.LATEST_TIMESTAMP)
    assert result.error_code == Errors.UNKNOWN_TOPIC_OR_PARTITION.code, result


RESET_KEY = {"kafka-python": "auto_offset_reset", "aiokafka": "auto_offset_reset",
             "confluent-kafka": "auto.offset.reset", "refka": "auto.offset.reset"}


def _member(client, topic, group, reset):
    if client.name not in RESET_KEY:
        pytest.skip(f"{client.name} has no group consumer adapter")
    if client.name == "confluent-kafka" and reset == "none":
        reset = "error"  # librdkafka's spelling of the Java client's "none"
    try:
        return client.group_member(topic, group, {RESET_KEY[client.name]: reset})
    except ClientLacks as missing:
        pytest.skip(str(missing))


def _poll_until(member, predicate, timeout=15.0):
    received = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate(received):
        received.extend(member.poll(0.2))
    return received


def test_auto_offset_reset_earliest(client, topics):
    """auto.offset.reset=earliest: a group with no committed offset starts at the log start."""
    topic = topics.create()
    client_produce_ok(client, topic, [b"old-1", b"old-2"])
    member = _member(client, topic, topics.name("group"), "earliest")
    try:
        received = _poll_until(member, lambda r: len(r) >= 2)
        assert [m.value for m in received] == [b"old-1", b"old-2"]
    finally:
        member.close()


def test_auto_offset_reset_latest(client, topics):
    """auto.offset.reset=latest: a group with no committed offset starts at the log end, so only
    records produced after it joined are consumed."""
    topic = topics.create()
    client_produce_ok(client, topic, [b"old"])
    member = _member(client, topic, topics.name("group"), "latest")
    try:
        _poll_until(member, lambda r: bool(member.assignment()), timeout=20)
        _poll_until(member, lambda r: False, timeout=1.5)  # let the reset position be resolved
        client_produce_ok(client, topic, [b"new"])
        received = _poll_until(member, lambda r: len(r) >= 1)
        assert [m.value for m in received] == [b"new"]
    finally:
        member.close()


# What each client raises for auto.offset.reset=none without a committed offset: (exception type
# name, text the adapter puts in it).  confluent-kafka's adapter raises RuntimeError for exactly
# the _AUTO_OFFSET_RESET event (see conformance.clients._ConfluentMember).
NO_OFFSET_ERROR = {"kafka-python": ("NoOffsetForPartitionError", ""), "aiokafka": ("NoOffsetForPartitionError", ""),
                   "confluent-kafka": ("RuntimeError", "code=_AUTO_OFFSET_RESET"),
                   "refka": ("NoOffsetForPartitionError", "")}


def test_auto_offset_reset_none(client, topics, bootstrap):
    """auto.offset.reset=none: OffsetFetch answers offset -1 (nothing committed) for the group's
    partition, and the consumer then raises its no-offset error instead of choosing a position."""
    topic = topics.create()
    client_produce_ok(client, topic, [b"x"])
    group = topics.name("group")
    member = _member(client, topic, group, "none")
    error = None
    try:
        deadline = time.monotonic() + 15
        received = []
        while time.monotonic() < deadline and error is None:
            try:
                received.extend(member.poll(0.2))
            except Exception as raised:  # each client raises its own NoOffsetForPartition error
                error = raised
        assert not received, f"expected no records, observed {received}"
        with raw.group_coordinator(bootstrap.split(",")[0], group) as conn:
            committed = raw.offset_fetch(conn, group, topic, [0])
        assert committed == {0: raw.CommittedOffset(-1, 0)}, f"expected offset -1 without error, observed {committed}"
        expected_type, expected_text = NO_OFFSET_ERROR[client.name]
        assert error is not None and type(error).__name__ == expected_type and expected_text in str(error), \
            f"expected {expected_type} {expected_text}, observed {error!r}"
    finally:
        member.close()


def client_produce_ok(client, topic, values):
    deliveries = client.produce(topic, [Message(None, v, partition=0) for v in values])
    assert all(d.error is None for d in deliveries), deliveries
