"""Transactions with real clients and real failures: confluent-kafka's transactional producer in a
consume-transform-produce loop (``send_offsets_to_transaction``) against the reference broker and
Apache Kafka 4.3.1; the reference killed with SIGKILL in the middle of a transaction; and Kafka's
``kafka-dump-log`` reading the segments and the aborted-transaction index the reference wrote."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reference.broker.embedded import EmbeddedBroker

from .conftest import RawClient
from .test_crash_recovery import BrokerProcess
from .test_transactions_wire import (
    add,
    batch,
    end,
    fetch,
    init,
    list_offset,
    new_topic,
    produce,
    wait_for_stable,
)

pytestmark = [pytest.mark.clients]


def read_all(bootstrap: str, topic: str, isolation: str, last: bytes, timeout: float = 30.0) -> list[bytes]:
    """Values of partition 0 from offset 0 as a consumer with ``isolation.level`` sees them, until
    ``last`` (committed after everything the test checks) arrives."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex[:6]}",
                         "isolation.level": isolation, "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while last not in values and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                values.append(message.value())
    finally:
        consumer.close()
    assert last in values, f"{isolation}: {last!r} never arrived; read {values}"
    return values


def committed_offset(bootstrap: str, group: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        return int(consumer.committed([TopicPartition(topic, 0)], timeout=20)[0].offset)
    finally:
        consumer.close()


def test_consume_transform_produce_commits_output_and_offsets_atomically(bootstrap: str) -> None:
    """Each input batch is turned into output in a transaction that also commits the group's input
    offsets (send_offsets_to_transaction).  The aborted round's output was written (read_uncommitted
    sees it) but is hidden from read_committed, and its offsets were not committed."""
    from confluent_kafka import Consumer, Producer

    with RawClient(bootstrap) as admin:
        source, sink = new_topic(admin), new_topic(admin)
    seed = Producer({"bootstrap.servers": bootstrap})
    for n in range(6):
        seed.produce(source, f"in-{n}".encode(), partition=0)
    assert seed.flush(20) == 0
    group = f"ctp-{uuid.uuid4().hex[:6]}"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    consumer.subscribe([source])
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"ctp-{uuid.uuid4().hex[:6]}"})
    producer.init_transactions(30)
    try:
        for commit in (True, False, True):
            received: list[Any] = []
            deadline = time.monotonic() + 30
            while len(received) < 2 and time.monotonic() < deadline:
                message = consumer.poll(0.2)
                if message is not None and not message.error():
                    received.append(message)
            assert len(received) == 2, "two input records per round"
            producer.begin_transaction()
            for message in received:
                producer.produce(sink, message.value().replace(b"in", b"out"), partition=0)
            producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                                 consumer.consumer_group_metadata(), 20)
            assert producer.flush(20) == 0
            if commit:
                producer.commit_transaction(30)
            else:
                producer.abort_transaction(30)
                consumer.seek(_partition_at(received[0]))  # reprocess the round, as an application would
        producer.begin_transaction()
        producer.produce(sink, b"end", partition=0)
        producer.commit_transaction(30)
    finally:
        consumer.close()
    uncommitted = read_all(bootstrap, sink, "read_uncommitted", b"end")
    committed = read_all(bootstrap, sink, "read_committed", b"end")
    assert uncommitted == [b"out-0", b"out-1", b"out-2", b"out-3", b"out-2", b"out-3", b"end"], \
        "the aborted round was written"
    assert committed == [b"out-0", b"out-1", b"out-2", b"out-3", b"end"], "and is hidden from read_committed"
    assert committed_offset(bootstrap, group, source) == 4, "only the committed rounds' offsets"


def _partition_at(message: Any) -> Any:
    from confluent_kafka import TopicPartition

    return TopicPartition(message.topic(), message.partition(), message.offset())


# -- crash recovery (the reference only) ---------------------------------------------------------------


@pytest.fixture
def broker_process(tmp_path: Path) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path / "data")
    process.start()
    yield process
    process.stop()


@pytest.mark.slow
def test_kill_9_mid_transaction_keeps_the_transaction_open_and_the_aborted_index(
        broker_process: BrokerProcess) -> None:
    """After SIGKILL: the committed and aborted transactions are still decided (the aborted one is
    listed for read_committed readers), the open one still holds the last stable offset and is
    still Ongoing at the coordinator, which can then abort it."""
    with RawClient(broker_process.bootstrap) as client:
        topic = new_topic(client)
        txn, pid, epoch = _producer(client)
        assert add(client, txn, pid, epoch, topic) == [0]
        assert produce(client, topic, batch(pid, epoch, 0, [b"aborted"]), txn) == 0  # 0
        assert end(client, txn, pid, epoch, False).error_code == 0  # 1
        open_txn, open_pid, open_epoch = _producer(client)
        assert add(client, open_txn, open_pid, open_epoch, topic) == [0]
        assert produce(client, topic, batch(open_pid, open_epoch, 0, [b"open"]), open_txn) == 0  # 2
        assert list_offset(client, topic, -1, 1) == (0, 2)
    broker_process.kill()
    broker_process.start()
    with RawClient(broker_process.bootstrap) as client:
        assert list_offset(client, topic, -1, 0) == (0, 3)
        assert list_offset(client, topic, -1, 1) == (0, 2), "the open transaction still holds the LSO"
        described = client.call("DescribeTransactions", 0, transactional_ids=[open_txn]).transaction_states[0]
        assert (described.error_code, described.transaction_state) == (0, "Ongoing")
        read = fetch(client, topic, 1)
        assert [(a.producer_id, a.first_offset) for a in read.aborted_transactions] == [(pid, 0)]
        assert end(client, open_txn, open_pid, open_epoch, False).error_code == 0
        assert wait_for_stable(client, topic) == 4
        decided = fetch(client, topic, 1)
        assert [(a.producer_id, a.first_offset) for a in decided.aborted_transactions] == [(pid, 0), (open_pid, 2)]


def _producer(client: RawClient) -> tuple[str, int, int]:
    txn = f"t-{uuid.uuid4().hex[:10]}"
    answer = init(client, txn)
    assert answer.error_code == 0, answer
    return txn, answer.producer_id, answer.producer_epoch


# -- Kafka's kafka-dump-log reads what the reference wrote ------------------------------------------------

DUMP_LOG = "org.apache.kafka.tools.DumpLogSegments"


@pytest.mark.kafka
@pytest.mark.slow
def test_kafka_dump_log_reads_markers_and_the_aborted_transaction_index(tmp_path: Path) -> None:
    from conformance.apache_kafka import KafkaTools

    tools = KafkaTools()
    with EmbeddedBroker(data_dir=tmp_path / "broker", config={"num.partitions": "1"}) as embedded:
        with RawClient(embedded.bootstrap) as client:
            topic = new_topic(client)
            txn, pid, epoch = _producer(client)
            assert add(client, txn, pid, epoch, topic) == [0]
            assert produce(client, topic, batch(pid, epoch, 0, [b"a", b"b"]), txn) == 0
            assert end(client, txn, pid, epoch, False).error_code == 0
    directory = tmp_path / "broker" / f"{topic}-0"
    log, index = directory / "00000000000000000000.log", directory / "00000000000000000000.txnindex"
    result = tools.run(DUMP_LOG, ["--files", f"{log},{index}", "--print-data-log"], timeout=90)
    assert result.returncode == 0, result.stderr[-1500:]
    output = result.stdout
    assert "isTransactional: true" in output and "isControl: true" in output, output
    assert "endTxnMarker: ABORT coordinatorEpoch: 0" in output, output
    assert f"producerId: {pid} firstOffset: 0 lastOffset: 2 lastStableOffset: 3" in output, output
