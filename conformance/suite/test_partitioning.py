"""Keyed partitioning: where each client's default partitioner puts a keyed record.

The broker stores records in the partition the client chose, so these tests check that the
placement observed by a fetch is the one each client documents:
Java (KIP-480 keeps murmur2 for keyed records), kafka-python, aiokafka and refka use murmur2;
librdkafka (confluent-kafka, kcat) defaults to ``partitioner=consistent_random`` (CRC32); refka
also takes librdkafka's partitioner names.
"""

from __future__ import annotations

import pytest

from conformance.clients import Message
from conformance.partitioners import java_default_partition, librdkafka_consistent_partition

PARTITIONS = 6
DEFAULT_PLACEMENT = {
    "kafka-python": java_default_partition,
    "aiokafka": java_default_partition,
    "confluent-kafka": librdkafka_consistent_partition,
    "kcat": librdkafka_consistent_partition,
    "refka": java_default_partition,
}


def _placement(client, topic, keys):
    received = client.consume(topic, list(range(PARTITIONS)), count=len(keys))
    return {m.key: m.partition for m in received}


def test_default_partitioner_placement(client, topics):
    """Keyed records land where the client's default partitioner says: murmur2 (Java's
    DefaultPartitioner: toPositive(murmur2(key)) % partitions) or librdkafka's consistent_random
    (crc32(key) % partitions). The two disagree for most keys."""
    topic = topics.create(partitions=PARTITIONS)
    keys = [f"key-{i}".encode() for i in range(24)]
    deliveries = client.produce(topic, [Message(k, k) for k in keys])
    assert all(d.error is None for d in deliveries), deliveries
    expected = {k: DEFAULT_PLACEMENT[client.name](k, PARTITIONS) for k in keys}
    observed = _placement(client, topic, keys)
    assert observed == expected, f"expected {expected}, observed {observed}"


def test_librdkafka_murmur2_random_matches_java(client, topics):
    """librdkafka's partitioner=murmur2_random places keyed records exactly as Java's default
    (refka's producer takes librdkafka's partitioner names too)."""
    if client.name not in ("confluent-kafka", "kcat", "refka"):
        pytest.skip(f"partitioner=murmur2_random is a librdkafka setting; {client.name} already uses murmur2")
    topic = topics.create(partitions=PARTITIONS)
    keys = [f"key-{i}".encode() for i in range(24)]
    client.produce(topic, [Message(k, k) for k in keys], config={"partitioner": "murmur2_random"})
    expected = {k: java_default_partition(k, PARTITIONS) for k in keys}
    assert _placement(client, topic, keys) == expected


def test_same_key_same_partition(client, topics):
    """Records with one key always go to one partition (the basis of per-key ordering)."""
    topic = topics.create(partitions=PARTITIONS)
    client.produce(topic, [Message(b"stable-key", f"{i}".encode()) for i in range(10)])
    received = client.consume(topic, list(range(PARTITIONS)), count=10)
    assert len(received) == 10
    assert len({m.partition for m in received}) == 1
    assert [m.value for m in received] == [f"{i}".encode() for i in range(10)]
