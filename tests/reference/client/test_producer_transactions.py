"""The reference producer's transactions against the reference broker and Apache Kafka.

Records are read back with confluent-kafka (librdkafka), a client refka did not write, at both
isolation levels: an aborted transaction is first shown to be *written* (a read_uncommitted
reader sees it) before it is shown to be hidden from read_committed readers (issue #11's rule),
and "hidden" is only claimed once a read_committed reader has read past it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from reference.broker.embedded import EmbeddedBroker
from reference.client.exceptions import ProducerFencedError
from reference.client.producer import Producer
from reference.errors import Errors

from ..node.readback import read_everything

pytestmark = pytest.mark.clients
PARTITIONS = 2


@pytest.fixture(scope="module")
def reference_broker() -> Iterator[str]:
    # Timed-out transactions are looked for every 500 ms instead of Kafka's 10 s, to keep the
    # timeout test short; the rule tested is the same.
    embedded = EmbeddedBroker(config={"auto.create.topics.enable": "false",
                                      "transaction.abort.timed.out.transaction.cleanup.interval.ms": "500"})
    yield embedded.start()
    embedded.stop()


@pytest.fixture
def topic(bootstrap: str) -> str:
    name = f"txn-{time.time_ns()}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, PARTITIONS, 1)])[name].result(30)
    return name


def transactional_producer(bootstrap: str, transactional_id: str, **properties: object) -> Producer:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id, **properties})
    producer.init_transactions(30)
    return producer


def end_offset(bootstrap: str, topic: str, partition: int, isolation_level: str) -> int:
    """ListOffsets(latest) at ``isolation_level``: the high watermark, or the last stable offset."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "end-offsets", "isolation.level": isolation_level})
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)[1])
    finally:
        consumer.close()


def wait_until_stable(bootstrap: str, topic: str) -> None:
    """EndTxn is answered before the markers are written (they are asynchronous in Kafka): wait
    until every partition's last stable offset has caught up with its high watermark."""
    deadline = time.monotonic() + 30
    for partition in range(PARTITIONS):
        while (end_offset(bootstrap, topic, partition, "read_committed")
               < end_offset(bootstrap, topic, partition, "read_uncommitted")) and time.monotonic() < deadline:
            time.sleep(0.2)


def read_values(bootstrap: str, topic: str, isolation_level: str) -> list[bytes]:
    """Every value of the topic a reader at ``isolation_level`` gets, up to the end of each
    partition, once no transaction is open or completing."""
    wait_until_stable(bootstrap, topic)
    return sorted(read_everything(bootstrap, topic, PARTITIONS, 30, isolation_level))


def transaction(producer: Producer, topic: str, values: list[bytes]) -> None:
    producer.begin_transaction()
    for index, value in enumerate(values):
        producer.send(topic, value, partition=index % PARTITIONS)


def test_a_committed_transaction_is_visible_to_read_committed(bootstrap: str, topic: str) -> None:
    producer = transactional_producer(bootstrap, topic)
    try:
        transaction(producer, topic, [b"one", b"two", b"three"])
        producer.commit_transaction(30)
    finally:
        producer.close()
    assert read_values(bootstrap, topic, "read_committed") == [b"one", b"three", b"two"]


def test_an_aborted_transaction_is_written_but_hidden_from_read_committed(bootstrap: str, topic: str) -> None:
    producer = transactional_producer(bootstrap, topic)
    try:
        transaction(producer, topic, [b"aborted-1", b"aborted-2"])
        assert producer.flush(30) == 0  # written to the log before the abort
        producer.abort_transaction(30)
        transaction(producer, topic, [b"after-1", b"after-2"])  # a reader must get past the aborted ones
        producer.commit_transaction(30)
    finally:
        producer.close()
    assert read_values(bootstrap, topic, "read_uncommitted") == [b"aborted-1", b"aborted-2", b"after-1", b"after-2"]
    assert read_values(bootstrap, topic, "read_committed") == [b"after-1", b"after-2"]


def committed_offset(bootstrap: str, group_id: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id, "enable.auto.commit": False})
    try:
        (answer,) = consumer.committed([TopicPartition(topic, 0)], timeout=30)
        return int(answer.offset)
    finally:
        consumer.close()


def test_offsets_sent_to_a_transaction_are_committed_only_with_it(bootstrap: str, topic: str) -> None:
    group_id = f"{topic}-group"
    producer = transactional_producer(bootstrap, topic)
    try:
        transaction(producer, topic, [b"x"])
        producer.send_offsets_to_transaction({(topic, 0): 5}, group_id, 30)
        producer.abort_transaction(30)
        assert committed_offset(bootstrap, group_id, topic) < 0  # nothing committed (OFFSET_INVALID)
        transaction(producer, topic, [b"y"])
        producer.send_offsets_to_transaction({(topic, 0): 7}, group_id, 30)
        producer.commit_transaction(30)
    finally:
        producer.close()
    assert committed_offset(bootstrap, group_id, topic) == 7


def test_a_second_instance_of_the_transactional_id_fences_the_first(bootstrap: str, topic: str) -> None:
    first = transactional_producer(bootstrap, topic)
    second = None
    try:
        transaction(first, topic, [b"zombie"])
        assert first.flush(30) == 0
        second = transactional_producer(bootstrap, topic)  # bumps the epoch, aborts the open transaction
        with pytest.raises(ProducerFencedError):
            first.commit_transaction(30)
        with pytest.raises(ProducerFencedError):  # fatal: every later call says so too
            first.begin_transaction()
        transaction(second, topic, [b"successor"])
        second.commit_transaction(30)
    finally:
        first.close()
        if second is not None:
            second.close()
    assert read_values(bootstrap, topic, "read_uncommitted") == [b"successor", b"zombie"]
    assert read_values(bootstrap, topic, "read_committed") == [b"successor"]


def last_stable_offset(bootstrap: str, topic: str) -> int:
    return end_offset(bootstrap, topic, 0, "read_committed")


def test_the_coordinator_aborts_a_transaction_that_outlives_its_timeout(bootstrap: str, topic: str) -> None:
    producer = transactional_producer(bootstrap, topic, **{"transaction.timeout.ms": 1000})
    try:
        producer.begin_transaction()
        producer.send(topic, b"too-slow", partition=0)
        assert producer.flush(30) == 0
        assert last_stable_offset(bootstrap, topic) == 0  # the open transaction holds the LSO back
        deadline = time.monotonic() + 90  # Kafka looks for timed-out transactions every 10 s
        while last_stable_offset(bootstrap, topic) == 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert last_stable_offset(bootstrap, topic) == 2  # the record and the coordinator's abort marker
        # The coordinator bumped the epoch when it aborted (transaction version 1): to the producer
        # that is fencing, as Java's ProducerFencedException says too.
        with pytest.raises(ProducerFencedError) as failure:
            producer.commit_transaction(30)
        assert failure.value.error is Errors.PRODUCER_FENCED
    finally:
        producer.close()
    assert read_values(bootstrap, topic, "read_uncommitted") == [b"too-slow"]
    assert read_values(bootstrap, topic, "read_committed") == []


def test_a_group_member_commits_through_the_transaction_and_a_stale_generation_is_refused(
        bootstrap: str, topic: str) -> None:
    """Consume-transform-produce with the member's own identity (``Consumer.group_metadata()``,
    KIP-447): offsets sent with the current generation commit with the transaction; offsets sent
    with a generation the group has left behind are refused (ILLEGAL_GENERATION), so a zombie
    member's transaction cannot move the group's offsets."""
    from reference.client.consumer import Consumer as RefkaConsumer
    from reference.client.coordinator import ConsumerGroupMetadata
    from reference.errors import KafkaError

    group_id = f"{topic}-members"
    member = RefkaConsumer({"bootstrap.servers": bootstrap, "group.id": group_id, "enable.auto.commit": False,
                            "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    producer = transactional_producer(bootstrap, topic)
    try:
        member.subscribe([topic])
        deadline = time.monotonic() + 60
        while not member.assignment() and time.monotonic() < deadline:
            member.poll(0.2)
        identity = member.group_metadata()
        assert identity.group_id == group_id and identity.generation_id >= 1 and identity.member_id, identity
        transaction(producer, topic, [b"out"])
        producer.send_offsets_to_transaction({(topic, 0): 1}, identity, 30)
        producer.commit_transaction(30)
        assert committed_offset(bootstrap, group_id, topic) == 1

        stale = ConsumerGroupMetadata(group_id, identity.generation_id + 5, identity.member_id)
        transaction(producer, topic, [b"zombie-out"])
        with pytest.raises(KafkaError) as refused:
            producer.send_offsets_to_transaction({(topic, 0): 9}, stale, 30)
            producer.commit_transaction(30)
        assert refused.value.error is Errors.ILLEGAL_GENERATION, refused.value
        producer.abort_transaction(30)
    finally:
        producer.close()
        member.close()
    assert committed_offset(bootstrap, group_id, topic) == 1
