"""The default partitioners of the clients, written out so tests can predict where a key lands.

* Java's default partitioner, and kafka-python's and aiokafka's ``DefaultPartitioner``:
  ``toPositive(murmur2(key_bytes)) % partition_count`` (``org.apache.kafka.common.utils.Utils.murmur2``,
  seed 0x9747b28c, ``toPositive`` = ``& 0x7fffffff``).
* librdkafka's default ``partitioner=consistent_random`` (confluent-kafka, kcat):
  ``crc32(key) % partition_count`` for a non-empty key, a random partition for a null/empty key.
  ``partitioner=murmur2_random`` reproduces the Java placement for keyed records.
"""

from __future__ import annotations

import zlib

MURMUR2_SEED = 0x9747B28C
MURMUR2_M = 0x5BD1E995
MURMUR2_R = 24
MASK32 = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 (signed result, as Java's int)."""
    length = len(data)
    h = (MURMUR2_SEED ^ length) & MASK32
    for start in range(0, length - length % 4, 4):
        k = int.from_bytes(data[start:start + 4], "little")
        k = (k * MURMUR2_M) & MASK32
        k ^= k >> MURMUR2_R
        k = (k * MURMUR2_M) & MASK32
        h = (h * MURMUR2_M) & MASK32
        h ^= k
    tail = data[length - length % 4:]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if len(tail) >= 1:
        h ^= tail[0]
        h = (h * MURMUR2_M) & MASK32
    h ^= h >> 13
    h = (h * MURMUR2_M) & MASK32
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def java_default_partition(key: bytes, partition_count: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partition_count


def librdkafka_consistent_partition(key: bytes, partition_count: int) -> int:
    return zlib.crc32(key) % partition_count
