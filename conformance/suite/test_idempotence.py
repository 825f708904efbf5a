"""Idempotent producer (KIP-98, broker side: ProducerStateManager).

The raw scenarios run at every Produce version from v3 (the first with record batches v2, which
carry the producer id, epoch and base sequence) that both the broker and refka's codec speak, each
version on its own partition of one topic with a producer id of its own.  InitProducerId is setup, spoken
at the highest version both sides speak.

Transactions through clients (read_committed, offsets in a transaction, fencing) are in
test_transactions.py."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from conformance import raw, speak
from conformance.clients import Message
from reference import errors
from reference.errors import Errors


@dataclass
class Lane:
    """One Produce version's own partition and producer id, so that each version replays the
    scenario from a clean producer state."""

    version: int
    partition: int
    conn: raw.Connection
    ids: raw.ProducerIdAndEpoch


@pytest.fixture
def producer_session(topics, broker, capabilities):
    """A topic with one partition per Produce version both sides speak from v3 (record batches v2,
    which carry the producer id and sequence), a connection to each partition's leader, and for
    each a producer id of its own from InitProducerId at the highest version both the broker and
    the suite speak (chosen from ApiVersions, as clients choose)."""
    capabilities.require_api(raw.INIT_PRODUCER_ID)
    version = raw.negotiate(capabilities.api_versions, raw.INIT_PRODUCER_ID)
    if version is None:
        pytest.skip("broker advertises no InitProducerId version the suite speaks (v0-v6)")
    produce_versions = speak.versions(capabilities, raw.PRODUCE, 3)
    topic = topics.create(partitions=len(produce_versions))
    lanes = []
    for partition, produce_version in enumerate(produce_versions):
        conn = broker.leader(topic, partition)
        lanes.append(Lane(produce_version, partition, conn, _producer_id(conn, version)))
    return topic, lanes


def _producer_id(conn, version):
    ids = raw.init_producer_id_at(conn, version)
    deadline = time.monotonic() + 20
    while errors.lookup(ids.error_code).retriable and time.monotonic() < deadline:  # as clients do
        time.sleep(0.2)
        ids = raw.init_producer_id_at(conn, version)
    if ids.error_code != 0 or ids.producer_id < 0 or ids.producer_epoch < 0:
        raise raw.SetupFailed(f"InitProducerId v{version} without a transactional id answered {ids}")
    return ids


def _send(lane, topic, sequence, count=1, epoch=None):
    ids = lane.ids
    records = [raw.Record(None, f"seq-{sequence + i}".encode()) for i in range(count)]
    batch = raw.record_batch(records, ids.producer_id, ids.producer_epoch if epoch is None else epoch, sequence)
    return speak.produce(lane.conn, topic, batch, lane.version, partition=lane.partition)


def _log_end(lane, topic, capabilities):
    version = speak.versions(capabilities, raw.LIST_OFFSETS, 1)[-1]
    return speak.list_offsets(lane.conn, topic, raw.LATEST_TIMESTAMP, version, partition=lane.partition).offset


def test_duplicate_batch_is_not_appended_again(producer_session, capabilities):
    """A retried batch (same producer id, epoch and sequence range) is acknowledged with its
    original offset and not appended a second time, at every Produce version from v3."""
    topic, lanes = producer_session
    for lane in lanes:
        first = _send(lane, topic, 0, count=3)
        assert (first.error_code, first.base_offset) == (0, 0), f"Produce v{lane.version}: {first}"
        retry = _send(lane, topic, 0, count=3)
        assert (retry.error_code, retry.base_offset) == (0, 0), f"Produce v{lane.version}: expected (0, 0), observed {retry}"
        assert _log_end(lane, topic, capabilities) == 3, f"Produce v{lane.version}: the duplicate must not be appended"
        following = _send(lane, topic, 3)
        assert (following.error_code, following.base_offset) == (0, 3), f"Produce v{lane.version}: {following}"


def test_duplicate_of_older_batch_within_last_five(producer_session, capabilities):
    """The broker remembers the last 5 batches per producer and partition: a duplicate of any of
    them is answered with its original offset, at every Produce version from v3."""
    topic, lanes = producer_session
    for lane in lanes:
        offsets = [_send(lane, topic, sequence).base_offset for sequence in range(5)]
        assert offsets == [0, 1, 2, 3, 4], f"Produce v{lane.version}"
        retry = _send(lane, topic, 1)
        assert (retry.error_code, retry.base_offset) == (0, 1), f"Produce v{lane.version}: expected (0, 1), observed {retry}"
        assert _log_end(lane, topic, capabilities) == 5, f"Produce v{lane.version}"


def test_out_of_order_sequence(producer_session, capabilities):
    """A sequence gap (next expected is last + 1): OUT_OF_ORDER_SEQUENCE_NUMBER (45), nothing
    appended, at every Produce version from v3."""
    topic, lanes = producer_session
    for lane in lanes:
        first = _send(lane, topic, 0, count=2)
        assert first.error_code == 0, f"Produce v{lane.version}: {first}"
        gap = _send(lane, topic, 5)
        assert gap.error_code == Errors.OUT_OF_ORDER_SEQUENCE_NUMBER.code, \
            f"Produce v{lane.version}: expected 45, observed {gap}"
        assert _log_end(lane, topic, capabilities) == 2, f"Produce v{lane.version}"


def test_first_write_may_start_at_any_sequence(producer_session):
    """With no state for the producer on this partition the broker accepts any first sequence
    (state may have expired, producer.id.expiration.ms); the next must follow it.  At every
    Produce version from v3."""
    topic, lanes = producer_session
    for lane in lanes:
        codes = [_send(lane, topic, sequence).error_code for sequence in (7, 8, 10)]
        assert codes == [0, 0, Errors.OUT_OF_ORDER_SEQUENCE_NUMBER.code], f"Produce v{lane.version}: {codes}"


def test_epoch_fencing(producer_session, capabilities):
    """Producer epochs fence zombies: a higher epoch starting at sequence 0 is accepted; afterwards
    the old epoch gets INVALID_PRODUCER_EPOCH (47); a new epoch not starting at 0 gets
    OUT_OF_ORDER_SEQUENCE_NUMBER (45).  At every Produce version from v3."""
    topic, lanes = producer_session
    for lane in lanes:
        first = _send(lane, topic, 0)
        assert first.error_code == 0, f"Produce v{lane.version}: {first}"
        bumped = lane.ids.producer_epoch + 1
        fresh = _send(lane, topic, 0, epoch=bumped)
        assert fresh.error_code == 0, f"Produce v{lane.version}: {fresh}"
        zombie = _send(lane, topic, 1)
        assert zombie.error_code == Errors.INVALID_PRODUCER_EPOCH.code, \
            f"Produce v{lane.version}: expected 47, observed {zombie}"
        skipped = _send(lane, topic, 3, epoch=bumped + 1)
        assert skipped.error_code == Errors.OUT_OF_ORDER_SEQUENCE_NUMBER.code, \
            f"Produce v{lane.version}: expected 45, observed {skipped}"
        assert _log_end(lane, topic, capabilities) == 2, f"Produce v{lane.version}"


IDEMPOTENCE = {"kafka-python": {"enable_idempotence": True}, "aiokafka": {"enable_idempotence": True},
               "confluent-kafka": {"enable.idempotence": True}, "kcat": {"enable.idempotence": "true"},
               "refka": {"enable.idempotence": "true"}}


def test_idempotent_client_writes_exactly_once(client, topics, capabilities, broker):
    """enable.idempotence=true (KIP-98; default on since Kafka 3.0, KIP-679): the client obtains a
    producer id with InitProducerId and every record is written exactly once, in order; the log
    keeps a producer id on every batch, and each producer's batches number their records from
    sequence 0 on without gaps."""
    capabilities.require_api(raw.INIT_PRODUCER_ID)
    topic = topics.create()
    sent = [Message(None, f"i{i}".encode(), partition=0) for i in range(30)]
    deliveries = client.produce(topic, sent, acks="all", config=IDEMPOTENCE[client.name])
    assert all(d.error is None for d in deliveries), deliveries
    received = client.consume(topic, [0], count=30, timeout=10)
    assert [m.value for m in received] == [m.value for m in sent]
    fetch_version = speak.versions(capabilities, raw.FETCH, 4)[-1]
    stored = speak.fetch(broker.leader(topic), topic, fetch_version, offset=0, max_wait_ms=100).batches
    assert sum(batch.record_count for batch in stored) == 30, f"observed {stored}"
    assert all(batch.producer_id >= 0 for batch in stored), f"a batch lost its producer id: {stored}"
    next_sequence: dict[int, int] = {}  # kcat runs one producer per record; the others one in all
    for batch in stored:
        expected = next_sequence.get(batch.producer_id, 0)
        assert batch.base_sequence == expected, f"producer {batch.producer_id}: expected sequence {expected}, " \
            f"observed {batch}"
        next_sequence[batch.producer_id] = expected + batch.record_count
