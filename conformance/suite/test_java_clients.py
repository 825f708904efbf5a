"""Kafka's own Java clients (VerifiableProducer / VerifiableConsumer from kafka-tools) as peers."""

from __future__ import annotations

import shutil

import pytest


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
