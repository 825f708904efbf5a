"""ListOffsets (API key 2) and the consumer's auto.offset.reset policy.

The ListOffsets probes run at every version both the broker and refka's codec speak from v1 (v0
answers a list of offsets per partition, another layout; Kafka 4 serves v1 and up), through
:func:`conformance.speak.list_offsets`.  Each answer is checked whole: error, offset, timestamp
(-1 for the EARLIEST and LATEST markers, the record's own for a lookup by time) and, from v4
(KIP-320), the leader epoch of the partition, which must be the one Metadata reports.  The
records are produced once, at the highest Produce version: that is setup, not the subject.
"""

from __future__ import annotations

import time

import pytest

from conformance import raw, speak
from conformance.clients import ClientLacks, Message
from reference.errors import Errors

NO_TIMESTAMP = -1  # ListOffsetsResponse.UNKNOWN_TIMESTAMP
NO_OFFSET = -1  # ListOffsetsResponse.UNKNOWN_OFFSET


def _produce_timestamped(conn, capabilities, topic, base_timestamp):
    version = speak.versions(capabilities, raw.PRODUCE, 3)[-1]
    for i in range(3):
        batch = raw.record_batch([raw.Record(None, f"r{i}".encode())], base_timestamp=base_timestamp + 1000 * i)
        result = speak.produce(conn, topic, batch, version)
        assert result is not None and result.error_code == 0, f"setup Produce v{version}: {result}"


def _leader_epoch(conn, capabilities, topic) -> int:
    """The partition's leader epoch as Metadata (v7+, KIP-320) reports it."""
    version = speak.versions(capabilities, raw.METADATA, 7)[-1]
    (described,) = speak.metadata(conn, [topic], version).topics
    (partition,) = described.partitions
    return int(partition.leader_epoch)


def _listed(conn, topic, timestamp, version, partition=0):
    """(error, offset, timestamp[, leader_epoch from v4]) of one ListOffsets answer."""
    found = speak.list_offsets(conn, topic, timestamp, version, partition)
    answer = (found.error_code, found.offset, found.timestamp)
    return answer + (found.leader_epoch,) if version >= 4 else answer


def _expected(version, offset, timestamp=NO_TIMESTAMP, epoch=0, error_code=0):
    answer = (error_code, offset, timestamp)
    return answer + (epoch,) if version >= 4 else answer


def test_list_offsets_earliest_and_latest(topics, broker, capabilities):
    """ListOffsets with timestamp -2 (EARLIEST) returns the log start offset and -1 (LATEST) the
    log end offset (high watermark for read_uncommitted), with timestamp -1."""
    topic = topics.create()
    conn = broker.leader(topic)
    epoch = _leader_epoch(conn, capabilities, topic)
    for version in speak.versions(capabilities, raw.LIST_OFFSETS, 1):
        assert _listed(conn, topic, raw.EARLIEST_TIMESTAMP, version) == _expected(version, 0, epoch=epoch), \
            f"ListOffsets v{version} EARLIEST of an empty partition"
        assert _listed(conn, topic, raw.LATEST_TIMESTAMP, version) == _expected(version, 0, epoch=epoch), \
            f"ListOffsets v{version} LATEST of an empty partition"
    _produce_timestamped(conn, capabilities, topic, int(time.time() * 1000) - 60_000)
    for version in speak.versions(capabilities, raw.LIST_OFFSETS, 1):
        assert _listed(conn, topic, raw.EARLIEST_TIMESTAMP, version) == _expected(version, 0, epoch=epoch), \
            f"ListOffsets v{version} EARLIEST of three records"
        assert _listed(conn, topic, raw.LATEST_TIMESTAMP, version) == _expected(version, 3, epoch=epoch), \
            f"ListOffsets v{version} LATEST of three records"


def test_list_offsets_by_timestamp(topics, broker, capabilities):
    """ListOffsets by timestamp (KIP-79): the earliest offset whose timestamp is >= the target,
    with that record's timestamp; offset -1 and timestamp -1 when no record is that recent."""
    topic = topics.create()
    conn = broker.leader(topic)
    base = int(time.time() * 1000) - 60_000
    _produce_timestamped(conn, capabilities, topic, base)
    epoch = _leader_epoch(conn, capabilities, topic)
    for version in speak.versions(capabilities, raw.LIST_OFFSETS, 1):
        observed = [_listed(conn, topic, target, version) for target in (base, base + 500, base + 2000, base + 10_000)]
        assert observed == [_expected(version, 0, base, epoch), _expected(version, 1, base + 1000, epoch),
                            _expected(version, 2, base + 2000, epoch),
                            _expected(version, NO_OFFSET, NO_TIMESTAMP, epoch=-1)], \
            f"ListOffsets v{version} at base, +500, +2000, +10000 ms"


def test_list_offsets_unknown_partition(topics, broker, capabilities):
    """ListOffsets for a partition that does not exist: UNKNOWN_TOPIC_OR_PARTITION (3), offset,
    timestamp and leader epoch -1."""
    topic = topics.create()
    conn = broker.leader(topic)
    for version in speak.versions(capabilities, raw.LIST_OFFSETS, 1):
        assert _listed(conn, topic, raw.LATEST_TIMESTAMP, version, partition=5) == \
            _expected(version, NO_OFFSET, epoch=-1, error_code=Errors.UNKNOWN_TOPIC_OR_PARTITION.code), \
            f"ListOffsets v{version}: expected UNKNOWN_TOPIC_OR_PARTITION(3) with no offset"


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
