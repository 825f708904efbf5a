"""Kafka's own Java clients (VerifiableProducer / VerifiableConsumer / TransactionalMessageCopier from
kafka-tools) as peers."""

from __future__ import annotations

import shutil

import pytest

from conformance import raw
from conformance.clients import make_client


@pytest.fixture(scope="module")
def java_tools():
    if shutil.which("java") is None or shutil.which("mvn") is None:
        pytest.skip("Java 17 and Maven are needed to run Kafka's Java tools")
    from conformance.apache_kafka import KafkaTools

    return KafkaTools()


def test_java_verifiable_producer_and_consumer(java_tools, topics, bootstrap):
    """The Java client (acks=all, idempotent by default since KIP-679) produces 200 records and a
    Java group consumer reads all of them back."""
    topic = topics.create(partitions=2)
    produced = java_tools.verifiable_producer(bootstrap, topic, 200)
    acked = [e for e in produced.json_events() if e.get("name") == "producer_send_success"]
    assert len(acked) == 200, f"expected 200 acknowledged sends, observed {len(acked)}: {produced.stderr[-400:]}"
    consumed = java_tools.verifiable_consumer(bootstrap, topic, topics.name("group"), 200)
    records = sum(int(e.get("count", 0)) for e in consumed.json_events() if e.get("name") == "records_consumed")
    assert records == 200, f"expected 200 consumed records, observed {records}: {consumed.stderr[-400:]}"


COPIED = 500  # records the transactional copier copies
COPY_TRANSACTION_SIZE = 10  # at most this many per transaction: 50 or more transactions in all


def test_java_transactional_message_copier(java_tools, topics, bootstrap, capabilities):
    """Kafka's TransactionalMessageCopier (the Java client's consume-transform-produce loop from
    Kafka's transaction system tests) copies 500 records with random aborts: read_committed, the
    output holds each input value exactly once; read_uncommitted it holds those and possibly aborted
    copies of them, nothing else; the group's committed offset on the input partition is 500.

    Whether an aborted transaction leaves records in the log is up to timing: the producer drops the
    batches it has not sent yet when it aborts, and with transaction version 2 (KIP-890, Kafka 4.x)
    no AddPartitionsToTxn holds them back first, so a run may abort often and write no aborted
    record at all.  The test therefore cannot demand aborted copies; when there are some, the
    read_committed check above is what proves them hidden."""
    capabilities.require_transactions()
    source, sink, group = topics.create(), topics.create(), topics.name("group")
    produced = java_tools.verifiable_producer(bootstrap, source, COPIED)
    acked = [e for e in produced.json_events() if e.get("name") == "producer_send_success"]
    assert len(acked) == COPIED, f"expected {COPIED} acknowledged sends, observed {len(acked)}: {produced.stderr[-400:]}"
    copied = java_tools.transactional_message_copier(bootstrap, source, sink, topics.name("txn"), group, COPIED,
                                                     transaction_size=COPY_TRANSACTION_SIZE, random_aborts=True,
                                                     use_group_metadata=True, timeout=180)
    assert copied.returncode == 0, f"the copier failed ({copied.returncode}): {copied.stderr[-800:]}"
    reader = make_client("confluent-kafka", bootstrap)  # an independent (librdkafka) reader
    try:
        inputs = [m.value for m in reader.consume(source, [0], count=COPIED, timeout=30)]
        assert len(inputs) == COPIED and len(set(inputs)) == COPIED, f"the input is not {COPIED} distinct values"
        committed = [m.value for m in reader.consume(sink, [0], count=COPIED, timeout=30,
                                                     isolation_level="read_committed")]
        duplicated = sorted({value for value in committed if committed.count(value) > 1})
        assert not duplicated, f"read_committed, these values were copied more than once: {duplicated[:20]}"
        assert sorted(committed) == sorted(inputs), f"read_committed, the output lacks " \
            f"{sorted(set(inputs) - set(committed))[:20]} and has extra {sorted(set(committed) - set(inputs))[:20]}"
        everything = [m.value for m in reader.consume(sink, [0], count=3 * COPIED, timeout=30,
                                                      isolation_level="read_uncommitted")]
        assert len(everything) >= COPIED and set(everything) == set(inputs), \
            f"read_uncommitted, {len(everything)} records: values other than the input's " \
            f"{sorted(set(everything) - set(inputs))[:20]}, input values missing {sorted(set(inputs) - set(everything))[:20]}"
    finally:
        reader.close()
    offset = raw.committed_offset_once(bootstrap, group, source, COPIED)
    assert (offset.error_code, offset.offset) == (0, COPIED), f"expected offset {COPIED} committed, observed {offset}"
