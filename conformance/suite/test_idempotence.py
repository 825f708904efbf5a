"""Idempotent producer (KIP-98, broker side: ProducerStateManager) and transactional fencing."""

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


def _transactional_producer(bootstrap, transactional_id):
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id})
    producer.init_transactions(20)
    return producer


def _transaction(producer, topic, values, commit):
    """One transaction of ``values`` on partition 0, flushed (written to the log) before it ends."""
    producer.begin_transaction()
    for value in values:
        producer.produce(topic, value, partition=0)
    assert producer.flush(10) == 0, "the transaction's records were not written before it ended"
    if commit:
        producer.commit_transaction(20)
    else:
        producer.abort_transaction(20)


def _read_until(bootstrap, topic, isolation_level, last_value, timeout=20.0):
    """Values of partition 0 from offset 0, as a consumer with ``isolation.level`` sees them,
    until ``last_value`` (a committed record written after everything the test checks) arrives."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-{isolation_level}",
                         "isolation.level": isolation_level, "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    values = []
    deadline = time.monotonic() + timeout
    try:
        while last_value not in values and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                values.append(message.value())
    finally:
        consumer.close()
    assert last_value in values, f"{isolation_level}: {last_value!r} not read within {timeout:.0f} s, read {values}"
    return values


def test_transactional_producer_fenced_by_newer_instance(topics, capabilities, bootstrap):
    """Transactional fencing (KIP-98, transactional.id): InitProducerId by a second producer with the
    same transactional.id bumps the epoch and aborts the first producer's open transaction; the
    first producer's commit then fails with a fatal fencing error (librdkafka: _FENCED, which it
    raises for the coordinator's PRODUCER_FENCED / INVALID_PRODUCER_EPOCH), its record stays in
    the log (read_uncommitted) but is aborted (read_committed), and the second producer commits."""
    capabilities.require_transactions()
    from confluent_kafka import KafkaError, KafkaException

    topic = topics.create()
    transactional_id = topics.name("txn")
    first = _transactional_producer(bootstrap, transactional_id)
    first.begin_transaction()
    first.produce(topic, b"from-first", partition=0)
    assert first.flush(10) == 0, "the first producer's record was not written"
    second = _transactional_producer(bootstrap, transactional_id)
    with pytest.raises(KafkaException) as fenced:
        first.commit_transaction(10)
    error = fenced.value.args[0]
    assert (error.code(), error.fatal()) == (KafkaError._FENCED, True), f"expected a fatal _FENCED, observed {error}"
    _transaction(second, topic, [b"from-second"], commit=True)
    assert _read_until(bootstrap, topic, "read_uncommitted", b"from-second") == [b"from-first", b"from-second"]
    assert _read_until(bootstrap, topic, "read_committed", b"from-second") == [b"from-second"]


def _one_producer(orders):
    """A scenario of successive transactions by one producer: ``orders`` is (values, commit) pairs."""

    def run(bootstrap, topic, transactional_id, conn):
        producer = _transactional_producer(bootstrap, transactional_id)
        for values, commit in orders:
            _transaction(producer, topic, values, commit)
        return producer

    return run


def _interleaved(bootstrap, topic, transactional_id, conn):
    """Producer A writes and keeps its transaction open while producer B commits; then A aborts.
    While A is open, the last stable offset (ListOffsets read_committed) stays at A's first record."""
    first = _transactional_producer(bootstrap, transactional_id + "-a")
    second = _transactional_producer(bootstrap, transactional_id + "-b")
    first.begin_transaction()
    first.produce(topic, b"a-aborted", partition=0)
    assert first.flush(10) == 0
    _transaction(second, topic, [b"b-committed"], commit=True)
    stable = raw.list_offset_isolated(conn, topic, 0, raw.LATEST_TIMESTAMP, raw.READ_COMMITTED)
    assert (stable.error_code, stable.offset) == (0, 0), f"expected the open transaction's offset 0, observed {stable}"
    first.abort_transaction(20)
    return second


TRANSACTION_ORDERS = {
    "abort-then-commit": (_one_producer([([b"a1"], False), ([b"c1"], True)]), [b"a1", b"c1"], [b"c1"]),
    "commit-then-abort": (_one_producer([([b"c1"], True), ([b"a1"], False)]), [b"c1", b"a1"], [b"c1"]),
    "abort-abort-commit": (_one_producer([([b"a1", b"a2"], False), ([b"a3"], False), ([b"c1", b"c2"], True)]),
                           [b"a1", b"a2", b"a3", b"c1", b"c2"], [b"c1", b"c2"]),
    "commit-abort-commit": (_one_producer([([b"c1"], True), ([b"a1", b"a2"], False), ([b"c2"], True)]),
                            [b"c1", b"a1", b"a2", b"c2"], [b"c1", b"c2"]),
    "interleaved": (_interleaved, [b"a-aborted", b"b-committed"], [b"b-committed"]),
}


@pytest.mark.parametrize("order", list(TRANSACTION_ORDERS))
def test_read_committed_hides_aborted_records(topics, capabilities, bootstrap, broker, order):
    """isolation.level=read_committed (KIP-98): records of an aborted transaction are never
    returned, committed ones are, in several orders of commits and aborts, and with an aborted
    transaction interleaved with another producer's committed one.  A read_uncommitted reader sees
    every record, which proves the aborted ones were written."""
    capabilities.require_transactions()
    capabilities.require_api(raw.LIST_OFFSETS, 4)
    scenario, written, committed = TRANSACTION_ORDERS[order]
    topic = topics.create()
    producer = scenario(bootstrap, topic, topics.name("txn"), broker.leader(topic))
    _transaction(producer, topic, [b"end"], commit=True)  # everything before it is decided
    uncommitted = _read_until(bootstrap, topic, "read_uncommitted", b"end")
    assert uncommitted == written + [b"end"], f"expected every written record, observed {uncommitted}"
    visible = _read_until(bootstrap, topic, "read_committed", b"end")
    assert visible == committed + [b"end"], f"expected only the committed records, observed {visible}"
