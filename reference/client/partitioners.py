"""Partitioners: which partition a record goes to, exactly as the real clients decide.

Theory of operation
-------------------
A record's key decides its partition, and that choice is a *cross-client contract*: a record
keyed ``user-42`` written by a Java service and one written by a librdkafka (confluent-kafka)
service must land together, or a consumer that relies on per-key order sees the key split.  So
every partitioner here is named as its client names it and computes the same number.

Java (``org.apache.kafka.clients.producer``), ``partitioner.class`` unset -- the default:

* key present: ``toPositive(murmur2(key)) % numPartitions`` where ``toPositive(n) = n &
  0x7fffffff`` (a mask, not ``abs``: ``abs(-2**31)`` would stay negative) and ``murmur2`` is
  Kafka's ``Utils.murmur2`` (seed ``0x9747b28c``, little-endian 4-byte words);
* key absent: the *uniform sticky* partitioner (KIP-794, Kafka 3.3): keep sending to one
  partition until about ``batch.size`` bytes went there, then switch to another chosen at random
  (KIP-794 also weighs the choice by queue sizes when ``partitioner.adaptive.partitioning.enable``;
  refka chooses uniformly among partitions that have a leader, and says so).

librdkafka (``partitioner`` property), keys hashed over their bytes, result ``mod`` the partition
count:

================== ====================================== =======================================
name               key present                            key absent (null) / empty
================== ====================================== =======================================
``random``         random                                 random
``consistent``     ``crc32(key) % n``                     ``crc32(b"") % n`` = partition 0
``consistent_random`` ``crc32(key) % n`` (the default)    random
``murmur2``        ``(murmur2(key) & 0x7fffffff) % n``    murmur2 of the empty key
``murmur2_random`` as ``murmur2`` (Java-compatible)       random
``fnv1a``          ``abs(int32(fnv1a_32(key)) rem n)``    fnv1a of the empty key
``fnv1a_random``   as ``fnv1a``                           random
================== ====================================== =======================================

The FNV-1a placement follows Sarama (Go), which librdkafka copies for compatibility: the hash is
read as a *signed* 32-bit number, C's remainder (which keeps the dividend's sign) is taken, and
its absolute value is the partition -- not the unsigned remainder, and not Java's sign mask.
(librdkafka treats an *empty* key like a null one for ``consistent_random``; for the others only
a null key is "absent".)  ``crc32`` is zlib's (IEEE 802.3, as librdkafka's ``rd_crc32``);
``murmur2`` and FNV-1a (32-bit: offset basis ``0x811c9dc5``, prime ``0x01000193``) are written
out below because they are short and are the thing being taught.

Every partitioner is a function ``(key, partition_count, available) -> partition``; ``available``
lists the partitions that currently have a leader (random choices use them when there are any,
as both clients do).  Only the sticky one keeps state, so it is a small class.
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable, Sequence

MURMUR2_SEED = 0x9747B28C
MURMUR2_M = 0x5BD1E995
MURMUR2_R = 24
FNV1A_OFFSET_BASIS = 0x811C9DC5
FNV1A_PRIME = 0x01000193
UINT32 = 0xFFFFFFFF
POSITIVE_MASK = 0x7FFFFFFF  # Kafka's Utils.toPositive

Partitioner = Callable[[bytes | None, int, Sequence[int]], int]
_LITTLE_ENDIAN_WORD = struct.Struct("<I")


def _to_int32(value: int) -> int:
    value &= UINT32
    return value - (1 << 32) if value & 0x80000000 else value


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2``: MurmurHash2, 32-bit, as a signed Java ``int``."""
    length = len(data)
    h = (MURMUR2_SEED ^ length) & UINT32
    whole_words = length - length % 4
    for (k,) in _LITTLE_ENDIAN_WORD.iter_unpack(data[:whole_words]):  # each 4-byte word as an unsigned int
        k = (k * MURMUR2_M) & UINT32
        k ^= k >> MURMUR2_R
        k = (k * MURMUR2_M) & UINT32
        h = (h * MURMUR2_M) & UINT32
        h ^= k
    tail = data[whole_words:]  # the last 1-3 bytes, mixed in from the highest down
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if len(tail) >= 1:
        h ^= tail[0]
        h = (h * MURMUR2_M) & UINT32
    h ^= h >> 13
    h = (h * MURMUR2_M) & UINT32
    h ^= h >> 15
    return _to_int32(h)


def to_positive(value: int) -> int:
    """Kafka's ``Utils.toPositive``: clear the sign bit (not ``abs``)."""
    return value & POSITIVE_MASK


def fnv1a(data: bytes) -> int:
    """32-bit FNV-1a, unsigned (librdkafka's ``rd_fnv1a``)."""
    h = FNV1A_OFFSET_BASIS
    for byte in data:
        h ^= byte
        h = (h * FNV1A_PRIME) & UINT32
    return h


def fnv1a_partition(key: bytes, partition_count: int) -> int:
    """Sarama's (and librdkafka's) placement: ``abs(int32(hash) rem n)`` with C's truncating rem."""
    signed = _to_int32(fnv1a(key))
    remainder = abs(signed) % partition_count  # C's % truncates toward zero: |a| rem n, sign dropped
    return remainder


def crc32(data: bytes) -> int:
    """CRC-32 (IEEE), unsigned, as librdkafka's ``rd_crc32``."""
    return zlib.crc32(data) & UINT32


def _random_partition(partition_count: int, available: Sequence[int]) -> int:
    if available:
        return random.choice(list(available))
    return random.randrange(partition_count)


# -- librdkafka's partitioners ----------------------------------------------------------------------


def random_partitioner(key: bytes | None, partition_count: int, available: Sequence[int]) -> int:
    return _random_partition(partition_count, available)


def consistent(key: bytes | None, partition_count: int, available: Sequence[int]) -> int:
    return crc32(key or b"") % partition_count


def consistent_random(key: bytes | None, partition_count: int, available: Sequence[int]) -> int:
    if not key:  # null *and* empty keys are spread at random
        return _random_partition(partition_count, available)
    return crc32(key) % partition_count


def murmur2_partitioner(key: bytes | None, partition_count: int, available: Sequence[int]) -> int:
    return to_positive(murmur2(key or b"")) % partition_count


def murmur2_random(key: bytes | None, partition_count: int, available: Sequence[int]) -> int:
    if key is None:
        return _random_partition(partition_count, available)
    return to_positive(murmur2(key)) % partition_count


def fnv1a_partitioner(key: bytes | None, partition_count: int, available: Sequence[int]) -> int:
    return fnv1a_partition(key or b"", partition_count)


def fnv1a_random(key: bytes | None, partition_count: int, available: Sequence[int]) -> int:
    if key is None:
        return _random_partition(partition_count, available)
    return fnv1a_partition(key, partition_count)


LIBRDKAFKA_PARTITIONERS: dict[str, Partitioner] = {
    "random": random_partitioner,
    "consistent": consistent,
    "consistent_random": consistent_random,
    "murmur2": murmur2_partitioner,
    "murmur2_random": murmur2_random,
    "fnv1a": fnv1a_partitioner,
    "fnv1a_random": fnv1a_random,
}


# -- Java's default ---------------------------------------------------------------------------------


def java_key_partition(key: bytes, partition_count: int) -> int:
    """Where Java's default partitioner puts a record with a key (``BuiltInPartitioner``)."""
    return to_positive(murmur2(key)) % partition_count


class StickyPartitioner:
    """Java's default partitioner: murmur2 for keys, KIP-794 uniform sticky for null keys.

    Per topic it remembers the partition null-key records currently stick to and how many bytes
    went there; :meth:`record_appended` is called with each record's size, and after
    ``batch_size`` bytes the next null-key record picks a new partition (a different one when
    there is a choice).
    """

    def __init__(self, batch_size: int, rng: random.Random | None = None) -> None:
        self.batch_size = batch_size
        self._rng = rng or random.Random()
        self._sticky: dict[str, int] = {}  # topic -> partition
        self._produced_bytes: dict[str, int] = {}  # topic -> bytes sent to the sticky partition

    def partition(self, topic: str, key: bytes | None, partition_count: int, available: Sequence[int]) -> int:
        if key is not None:
            return java_key_partition(key, partition_count)
        current = self._sticky.get(topic)
        if current is None or current >= partition_count or self._produced_bytes.get(topic, 0) >= self.batch_size:
            current = self._next_partition(current, partition_count, available)
            self._sticky[topic] = current
            self._produced_bytes[topic] = 0
        return current

    def record_appended(self, topic: str, partition: int, size_in_bytes: int) -> None:
        """Count a null-key record's bytes toward the sticky partition (KIP-794's switch rule)."""
        if self._sticky.get(topic) == partition:
            self._produced_bytes[topic] = self._produced_bytes.get(topic, 0) + size_in_bytes

    def _next_partition(self, previous: int | None, partition_count: int, available: Sequence[int]) -> int:
        choices = list(available) or list(range(partition_count))
        if len(choices) > 1 and previous in choices:
            choices.remove(previous)
        return self._rng.choice(choices)


class KeyedPartitioner:
    """A librdkafka partitioner by name, with the same interface as :class:`StickyPartitioner`."""

    def __init__(self, name: str) -> None:
        if name not in LIBRDKAFKA_PARTITIONERS:
            raise ValueError(f"unknown partitioner {name!r}; known: {', '.join(LIBRDKAFKA_PARTITIONERS)}")
        self.name = name
        self._function = LIBRDKAFKA_PARTITIONERS[name]

    def partition(self, topic: str, key: bytes | None, partition_count: int, available: Sequence[int]) -> int:
        return self._function(key, partition_count, available)

    def record_appended(self, topic: str, partition: int, size_in_bytes: int) -> None:
        """Stateless: nothing to count."""


JAVA_DEFAULT = "default"  # refka's name for Java's built-in partitioner (partitioner.class unset)


def make_partitioner(name: str, batch_size: int) -> StickyPartitioner | KeyedPartitioner:
    """``default`` (Java's built-in) or one of librdkafka's names; ``ValueError`` otherwise."""
    if name == JAVA_DEFAULT:
        return StickyPartitioner(batch_size)
    return KeyedPartitioner(name)
