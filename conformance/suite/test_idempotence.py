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
    capabilities.require_api(raw.INIT_PRODUCER_ID)
    topic = topics.create()
    conn = broker.leader(topic)
    ids = raw.init_producer_id(conn)
    deadline = time.monotonic() + 20
    while errors.lookup(ids.error_code).retriable and time.monotonic() < deadline:  # as clients do
        time.sleep(0.2)
        ids = raw.init_producer_id(conn)
    assert ids.error_code == 0 and ids.producer_id >= 0 and ids.producer_epoch >= 0, ids
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
               "confluent-kafka": {"enable.idempotence": True}, "kcat": {"enable.idempotence": "true"}}


def test_idempotent_client_writes_exactly_once(client, topics, capabilities):
    """enable.idempotence=true (KIP-98; default on since Kafka 3.0, KIP-679): the client obtains a
    producer id with InitProducerId and every record is written exactly once, in order."""
    capabilities.require_api(raw.INIT_PRODUCER_ID)
    topic = topics.create()
    sent = [Message(None, f"i{i}".encode(), partition=0) for i in range(30)]
    deliveries = client.produce(topic, sent, acks="all", config=IDEMPOTENCE[client.name])
    assert all(d.error is None for d in deliveries), deliveries
    received = client.consume(topic, [0], count=30, timeout=10)
    assert [m.value for m in received] == [m.value for m in sent]


def test_transactional_producer_fenced_by_newer_instance(topics, capabilities, bootstrap):
    """Transactional fencing (KIP-98, transactional.id): InitProducerId by a second producer with the
    same transactional.id bumps the epoch, and the first producer can no longer commit
    (PRODUCER_FENCED / INVALID_PRODUCER_EPOCH)."""
    capabilities.require_transactions()
    from confluent_kafka import KafkaException, Producer

    topic = topics.create()
    transactional_id = topics.name("txn")
    settings = {"bootstrap.servers": bootstrap, "transactional.id": transactional_id}
    first = Producer(settings)
    first.init_transactions(20)
    first.begin_transaction()
    first.produce(topic, b"from-first", partition=0)
    first.flush(10)
    second = Producer(settings)
    second.init_transactions(20)
    with pytest.raises(KafkaException) as fenced:
        first.commit_transaction(10)
    error = fenced.value.args[0]
    assert error.fatal() or "fenced" in str(error).lower(), f"expected a fencing error, observed {error}"
    second.begin_transaction()
    second.produce(topic, b"from-second", partition=0)
    second.commit_transaction(20)


def test_read_committed_hides_aborted_records(topics, capabilities, bootstrap):
    """isolation.level=read_committed (KIP-98): records of an aborted transaction are never
    returned; committed ones are."""
    capabilities.require_transactions()
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic = topics.create()
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": topics.name("txn")})
    producer.init_transactions(20)
    producer.begin_transaction()
    producer.produce(topic, b"aborted", partition=0)
    producer.abort_transaction(20)
    producer.begin_transaction()
    producer.produce(topic, b"committed", partition=0)
    producer.commit_transaction(20)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topics.name("g"),
                         "isolation.level": "read_committed", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    values = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not values:
        message = consumer.poll(0.2)
        if message is not None and not message.error():
            values.append(message.value())
    consumer.close()
    assert values == [b"committed"], f"expected only the committed record, observed {values}"
