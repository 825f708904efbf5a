"""Partitioners place keys exactly where the Java client and librdkafka put them.

The hash functions are checked against published vectors (Kafka's ``UtilsTest.testMurmur2``, the
FNV-1a reference values); the placements against the real clients: librdkafka (confluent-kafka)
with each ``partitioner`` setting and Kafka's own console producer (Java's default partitioner),
both writing keyed records to a 7-partition topic of the embedded reference broker, read back.
"""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from reference.broker.embedded import EmbeddedBroker
from reference.client.partitioners import (
    LIBRDKAFKA_PARTITIONERS,
    KeyedPartitioner,
    StickyPartitioner,
    crc32,
    fnv1a,
    java_key_partition,
    murmur2,
    to_positive,
)

PARTITIONS = 7
KEYS = [f"key-{i}".encode() for i in range(150)] + [b"", b"\xff\x00\x80", "éèê".encode(), b"x" * 37]

# Kafka's clients/src/test/java/.../utils/UtilsTest.java, testMurmur2 (facts, not code).
KAFKA_MURMUR2_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def test_murmur2_matches_kafkas_own_test_vectors() -> None:
    for data, expected in KAFKA_MURMUR2_VECTORS.items():
        assert murmur2(data) == expected, data


def test_to_positive_masks_the_sign_bit_rather_than_taking_abs() -> None:
    assert to_positive(-(2**31)) == 0  # abs() would leave it negative in Java
    assert to_positive(-1) == 2**31 - 1
    assert to_positive(-973932308) == -973932308 & 0x7FFFFFFF


def test_fnv1a_matches_the_reference_vectors() -> None:
    assert fnv1a(b"") == 0x811C9DC5  # the offset basis
    assert fnv1a(b"a") == 0xE40C292C
    assert fnv1a(b"foobar") == 0xBF9CF968


def test_consistent_maps_a_null_key_to_the_crc_of_nothing() -> None:
    assert crc32(b"") == 0
    assert KeyedPartitioner("consistent").partition("t", None, PARTITIONS, range(PARTITIONS)) == 0


def test_random_variants_spread_null_keys_over_available_partitions_only() -> None:
    for name in ("random", "consistent_random", "murmur2_random", "fnv1a_random"):
        chosen = {KeyedPartitioner(name).partition("t", None, PARTITIONS, [2, 5]) for _ in range(200)}
        assert chosen == {2, 5}, name


def test_sticky_partitioner_keeps_a_partition_for_batch_size_bytes_then_switches() -> None:
    sticky = StickyPartitioner(batch_size=100, rng=random.Random(7))
    first = sticky.partition("t", None, PARTITIONS, range(PARTITIONS))
    for _ in range(3):
        assert sticky.partition("t", None, PARTITIONS, range(PARTITIONS)) == first
        sticky.record_appended("t", first, 30)
    sticky.record_appended("t", first, 30)  # 120 bytes >= batch.size
    assert sticky.partition("t", None, PARTITIONS, range(PARTITIONS)) != first


def test_sticky_partitioner_hashes_keys_with_murmur2() -> None:
    sticky = StickyPartitioner(batch_size=100)
    for key in KEYS:
        assert sticky.partition("t", key, PARTITIONS, range(PARTITIONS)) == to_positive(murmur2(key)) % PARTITIONS


# -- against the real clients ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    embedded = EmbeddedBroker()
    yield embedded.start()
    embedded.stop()


def create_topic(bootstrap: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, PARTITIONS, 1)])[name].result(30)


def placements(bootstrap: str, topic: str, expected: int) -> dict[bytes, int]:
    """Read the topic back: key -> the partition it was stored in."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "placements", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    found: dict[bytes, int] = {}
    deadline = time.monotonic() + 30
    while len(found) < expected and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            found[message.key() or b""] = message.partition()
    consumer.close()
    assert len(found) == expected, f"read {len(found)} of {expected} keys back"
    return found


@pytest.mark.clients
@pytest.mark.parametrize("name", sorted(n for n in LIBRDKAFKA_PARTITIONERS if n != "random"))
def test_keys_land_where_librdkafka_puts_them(broker: str, name: str) -> None:
    topic = f"placement-{name}"
    create_topic(broker, topic)
    producer = Producer({"bootstrap.servers": broker, "partitioner": name, "linger.ms": 5})
    keys = [k for k in KEYS if k]  # librdkafka's *_random variants treat an empty key as absent
    for key in keys:
        producer.produce(topic, b"v", key=key)
    assert producer.flush(30) == 0
    ours = KeyedPartitioner(name)
    expected = {key: ours.partition(topic, key, PARTITIONS, range(PARTITIONS)) for key in keys}
    assert placements(broker, topic, len(keys)) == expected


@pytest.mark.kafka
def test_keys_land_where_the_java_client_puts_them(broker: str) -> None:
    from conformance.apache_kafka import classpath, log4j_config, require_java, resolve_libs

    topic = "placement-java"
    create_topic(broker, topic)
    keys = [f"key-{i}" for i in range(150)] + ["éèê", "x" * 37]
    lines = "".join(f"{key}:v\n" for key in keys)
    done = subprocess.run(
        [require_java(), "-Xmx256m", f"-Dlog4j2.configurationFile={log4j_config()}", "-cp",
         classpath(resolve_libs()), "org.apache.kafka.tools.ConsoleProducer", "--bootstrap-server", broker,
         "--topic", topic, "--property", "parse.key=true", "--property", "key.separator=:"],
        input=lines.encode(), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    found = placements(broker, topic, len(keys))
    assert found == {key.encode(): java_key_partition(key.encode(), PARTITIONS) for key in keys}
