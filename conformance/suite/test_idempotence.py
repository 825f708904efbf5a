"""Idempotent producer (KIP-98, broker side: ProducerStateManager).

Transactions through clients (read_committed, offsets in a transaction, fencing) are in
test_transactions.py."""

from __future__ import annotations

import time

import pytest

from conformance import raw
from conformance.clients import Message
from reference import errors
from reference.errors import Errors


@pytest.fixture
def producer_session(topics, broker, capabilities):
    """A topic, a connection to its leader and a producer id from InitProducerId at the highest
    version both the broker and the suite speak (chosen from ApiVersions, as clients choose)."""
    capabilities.require_api(raw.INIT_PRODUCER_ID)
    version = raw.negotiate(capabilities.api_versions, raw.INIT_PRODUCER_ID)
    if version is None:
        pytest.skip("broker advertises no InitProducerId version the suite speaks (v0-v6)")
    topic = topics.create()
    conn = broker.leader(topic)
    ids = raw.init_producer_id_at(conn, version)
    deadline = time.monotonic() + 20
    while errors.lookup(ids.error_code).retriable and time.monotonic() < deadline:  # as clients do
        time.sleep(0.2)
        ids = raw.init_producer_id_at(conn, version)
    if ids.error_code != 0 or ids.producer_id < 0 or ids.producer_epoch < 0:
        raise raw.SetupFailed(f"InitProducerId v{version} without a transactional id answered {ids}")
    return topic, conn, ids


def _send(conn, topic, ids, sequence, count=1, epoch=None):
    records = [raw.Record(None, f"seq-{sequence + i}".encode()) for i in range(count)]
    batch = raw.record_batch(records, ids.producer_id, ids.producer_epoch if epoch is None else epoch, sequence)
    return raw.produce(conn, topic, 0, batch)


def _log_end(conn, topic):
    return raw.list_offset(conn, topic, 0, raw.LATEST_TIMESTAMP).offset


def test_duplicate_batch_is_not_appended_again(producer_session):
    """A retried batch (same producer id, epoch and sequence range) is acknowledged with its
    original offset and not appended a second time."""
    topic, conn, ids = producer_session
    first = _send(conn, topic, ids, 0, count=3)
    assert first.error_code == 0 and first.base_offset == 0
    retry = _send(conn, topic, ids, 0, count=3)
    assert (retry.error_code, retry.base_offset) == (0, 0), f"expected (0, 0), observed {retry}"
    assert _log_end(conn, topic) == 3, "the duplicate must not be appended"
    following = _send(conn, topic, ids, 3)
    assert (following.error_code, following.base_offset) == (0, 3)


def test_duplicate_of_older_batch_within_last_five(producer_session):
    """The broker remembers the last 5 batches per producer and partition: a duplicate of any of
    them is answered with its original offset."""
    topic, conn, ids = producer_session
    offsets = [_send(conn, topic, ids, sequence).base_offset for sequence in range(5)]
    assert offsets == [0, 1, 2, 3, 4]
    retry = _send(conn, topic, ids, 1)
    assert (retry.error_code, retry.base_offset) == (0, 1), f"expected (0, 1), observed {retry}"
    assert _log_end(conn, topic) == 5


def test_out_of_order_sequence(producer_session):
    """A sequence gap (next expected is last + 1): OUT_OF_ORDER_SEQUENCE_NUMBER (45), nothing appended."""
    topic, conn, ids = producer_session
    assert _send(conn, topic, ids, 0, count=2).error_code == 0
    gap = _send(conn, topic, ids, 5)
    assert gap.error_code == Errors.OUT_OF_ORDER_SEQUENCE_NUMBER.code, f"expected 45, observed {gap}"
    assert _log_end(conn, topic) == 2


def test_first_write_may_start_at_any_sequence(producer_session):
    """With no state for the producer on this partition the broker accepts any first sequence
    (state may have expired, producer.id.expiration.ms); the next must follow it."""
    topic, conn, ids = producer_session
    assert _send(conn, topic, ids, 7).error_code == 0
    assert _send(conn, topic, ids, 8).error_code == 0
    assert _send(conn, topic, ids, 10).error_code == Errors.OUT_OF_ORDER_SEQUENCE_NUMBER.code


def test_epoch_fencing(producer_session):
    """Producer epochs fence zombies: a higher epoch starting at sequence 0 is accepted; afterwards
    the old epoch gets INVALID_PRODUCER_EPOCH (47); a new epoch not starting at 0 gets
    OUT_OF_ORDER_SEQUENCE_NUMBER (45)."""
    topic, conn, ids = producer_session
    assert _send(conn, topic, ids, 0).error_code == 0
    bumped = ids.producer_epoch + 1
    assert _send(conn, topic, ids, 0, epoch=bumped).error_code == 0
    zombie = _send(conn, topic, ids, 1)
    assert zombie.error_code == Errors.INVALID_PRODUCER_EPOCH.code, f"expected 47, observed {zombie}"
    skipped = _send(conn, topic, ids, 3, epoch=bumped + 1)
    assert skipped.error_code == Errors.OUT_OF_ORDER_SEQUENCE_NUMBER.code, f"expected 45, observed {skipped}"
    assert _log_end(conn, topic) == 2


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
    stored = raw.fetch(broker.leader(topic), topic, 0, offset=0, max_wait_ms=100).batches
    assert sum(batch.record_count for batch in stored) == 30, f"observed {stored}"
    assert all(batch.producer_id >= 0 for batch in stored), f"a batch lost its producer id: {stored}"
    next_sequence: dict[int, int] = {}  # kcat runs one producer per record; the others one in all
    for batch in stored:
        expected = next_sequence.get(batch.producer_id, 0)
        assert batch.base_sequence == expected, f"producer {batch.producer_id}: expected sequence {expected}, " \
            f"observed {batch}"
        next_sequence[batch.producer_id] = expected + batch.record_count
