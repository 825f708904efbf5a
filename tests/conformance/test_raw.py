"""The private raw-protocol helper: record batches and primitives match Kafka's encoding."""

from __future__ import annotations

import struct

import crc32c

from conformance import raw
from conformance.partitioners import java_default_partition, murmur2


def test_record_batch_header_fields_and_crc():
    batch = raw.record_batch([raw.Record(b"k", b"v"), raw.Record(None, None)], producer_id=7, producer_epoch=1,
                             base_sequence=3, base_timestamp=1000)
    base_offset, batch_length, leader_epoch, magic, crc = struct.unpack_from(">qiibI", batch)
    assert (base_offset, leader_epoch, magic) == (0, -1, 2)
    assert batch_length == len(batch) - 12
    assert crc == crc32c.crc32c(batch[21:]), "CRC-32C covers attributes to the end"
    (summary,) = raw._summarise_batches(batch)
    assert (summary.last_offset, summary.record_count, summary.producer_id, summary.base_sequence) == (1, 2, 7, 3)


def test_record_batch_decodes_with_kafka_python():
    from kafka.record.default_records import DefaultRecordBatch

    batch = raw.record_batch([raw.Record(b"key", b"value", [("h", b"1")]), raw.Record(None, None)],
                             base_timestamp=5000)
    decoded = list(DefaultRecordBatch(bytearray(batch)))
    assert [(r.key, r.value, list(r.headers)) for r in decoded] == [(b"key", b"value", [("h", b"1")]),
                                                                   (None, None, [])]
    assert DefaultRecordBatch(bytearray(batch)).validate_crc()


def test_varints_zigzag():
    assert raw.Writer().varint(-1).bytes() == b"\x01"
    assert raw.Writer().varint(1).bytes() == b"\x02"
    assert raw.Writer().uvarint(300).bytes() == b"\xac\x02"
    assert raw.Reader(b"\xac\x02").uvarint() == 300


def test_compact_string_null_and_value():
    assert raw.Writer().compact_string(None).bytes() == b"\x00"
    assert raw.Reader(raw.Writer().compact_string("abc").bytes()).compact_string() == "abc"


def test_murmur2_matches_kafka_and_kafka_python():
    from kafka.partitioner.default import murmur2 as kafka_python_murmur2

    assert murmur2(b"21") == -973932308  # value from Kafka's UtilsTest
    for key in (b"", b"a", b"ab", b"abc", b"abcd", b"abcde", bytes(range(50))):
        assert murmur2(key) & 0xFFFFFFFF == kafka_python_murmur2(key) & 0xFFFFFFFF
    assert 0 <= java_default_partition(b"21", 6) < 6
