"""RecordBatch v2: the header layout, walking concatenated batches, the CRC, in-place offset
assignment, whole-batch encode/decode compared byte for byte with real clients, and bad input."""

from __future__ import annotations

import gzip
import struct

import pytest
from aiokafka.record.default_records import DefaultRecordBatch as AiokafkaBatchReader
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch as KafkaPythonBatchReader

from reference.records import batch as layout
from reference.records.batch import (
    RECORD_BATCH_OVERHEAD,
    RECORDS,
    Attributes,
    BatchHeader,
    Header,
    RecordBatch,
    SimpleRecord,
    TimestampType,
    assign_offsets_in_place,
    build_batch,
    compute_crc,
    crc_is_valid,
    decrement_sequence,
    increment_sequence,
    iter_batches,
    iter_record_batches,
    set_max_timestamp_in_place,
    valid_prefix_length,
)
from reference.records.compression import CompressionType, compress_snappy_raw, decompress
from reference.records.decode_errors import (
    CorruptBatchError,
    DecompressionLimitError,
    RecordsDecodeError,
    TruncatedBatchError,
    UnknownCompressionError,
    UnsupportedMagicError,
)
from reference.records.record import encode_records
from tests.reference.records.client_batches import (
    ClientRecord,
    aiokafka_batch,
    kafka_python_batch,
    sample_records,
)

CODECS = list(CompressionType)


def simple_records(count: int = 5, size: int = 30) -> list[SimpleRecord]:
    return [
        SimpleRecord(value=b"v%d-" % index * size, key=b"k%d" % index, timestamp=1_000 + index)
        for index in range(count)
    ]


def sample_batch(**overrides: object) -> bytes:
    options: dict[str, object] = {"producer_id": 7, "producer_epoch": 2, "base_sequence": 10}
    options.update(overrides)
    return build_batch(simple_records(), **options)  # type: ignore[arg-type]


# --- layout -------------------------------------------------------------------------------------


def test_field_offsets_are_the_kafka_layout() -> None:
    """Each named offset points at its field in a header with distinct values."""
    header = BatchHeader(
        base_offset=0x0102030405060708,
        batch_length=49,
        partition_leader_epoch=0x11223344,
        magic=2,
        crc=0xA1B2C3D4,
        attributes=0x0017,
        last_offset_delta=0x21222324,
        base_timestamp=0x3132333435363738,
        max_timestamp=0x4142434445464748,
        producer_id=0x5152535455565758,
        producer_epoch=0x6162,
        base_sequence=0x71727374,
        record_count=0x01020304,
    )
    raw = header.encode()
    assert len(raw) == RECORD_BATCH_OVERHEAD == RECORDS == 61
    assert layout.LOG_OVERHEAD == 12
    assert struct.unpack_from(">q", raw, layout.BASE_OFFSET)[0] == header.base_offset
    assert struct.unpack_from(">i", raw, layout.BATCH_LENGTH)[0] == header.batch_length
    assert struct.unpack_from(">i", raw, layout.PARTITION_LEADER_EPOCH)[0] == header.partition_leader_epoch
    assert raw[layout.MAGIC] == 2
    assert struct.unpack_from(">I", raw, layout.CRC)[0] == header.crc
    assert struct.unpack_from(">h", raw, layout.ATTRIBUTES)[0] == header.attributes
    assert struct.unpack_from(">i", raw, layout.LAST_OFFSET_DELTA)[0] == header.last_offset_delta
    assert struct.unpack_from(">q", raw, layout.BASE_TIMESTAMP)[0] == header.base_timestamp
    assert struct.unpack_from(">q", raw, layout.MAX_TIMESTAMP)[0] == header.max_timestamp
    assert struct.unpack_from(">q", raw, layout.PRODUCER_ID)[0] == header.producer_id
    assert struct.unpack_from(">h", raw, layout.PRODUCER_EPOCH)[0] == header.producer_epoch
    assert struct.unpack_from(">i", raw, layout.BASE_SEQUENCE)[0] == header.base_sequence
    assert struct.unpack_from(">i", raw, layout.RECORD_COUNT)[0] == header.record_count
    assert BatchHeader.decode(raw) == header


def test_attribute_bits_are_named() -> None:
    header = BatchHeader.decode(sample_batch(compression=CompressionType.LZ4, transactional=True))
    assert header.compression is CompressionType.LZ4
    assert header.attributes & Attributes.COMPRESSION_MASK == 3
    assert header.is_transactional and not header.is_control and not header.has_delete_horizon
    assert header.timestamp_type is TimestampType.CREATE_TIME
    lat = BatchHeader.decode(sample_batch(timestamp_type=TimestampType.LOG_APPEND_TIME, log_append_time=5))
    assert lat.attributes & Attributes.TIMESTAMP_TYPE and lat.timestamp_type is TimestampType.LOG_APPEND_TIME
    assert lat.max_timestamp == 5


def test_header_derived_properties() -> None:
    raw = sample_batch(base_offset=100)
    header = BatchHeader.decode(raw)
    assert header.size_in_bytes == len(raw) == header.batch_length + 12
    assert (header.last_offset_delta, header.record_count) == (4, 5)
    assert (header.last_offset, header.next_offset) == (104, 105)
    assert header.last_sequence == 14 and header.has_producer_id


def test_codec_ids_5_to_7_raise_unknown_compression() -> None:
    raw = bytearray(sample_batch())
    raw[layout.ATTRIBUTES + 1] = 0x05
    header = BatchHeader.decode(raw)
    assert header.compression_id == 5
    with pytest.raises(UnknownCompressionError):
        _ = header.compression


@pytest.mark.parametrize(
    ("base", "increment", "expected"),
    [(0, 4, 4), (2**31 - 1, 1, 0), (2**31 - 3, 9, 6), (2**31 - 1, 0, 2**31 - 1), (2**31 - 2, 1, 2**31 - 1)],
)
def test_sequences_wrap_from_int32_max_to_zero(base: int, increment: int, expected: int) -> None:
    """Kafka's DefaultRecordBatch.incrementSequence / decrementSequence."""
    assert increment_sequence(base, increment) == expected
    assert decrement_sequence(expected, increment) == base


def test_last_sequence_wraps_and_is_minus_one_without_a_sequence() -> None:
    assert BatchHeader.decode(sample_batch(base_sequence=2**31 - 2)).last_sequence == 2
    assert BatchHeader.decode(build_batch(simple_records())).last_sequence == -1


# --- walking a buffer of batches ------------------------------------------------------------------


def test_iter_batches_yields_each_position_and_header() -> None:
    first, second, third = (
        sample_batch(base_offset=0),
        sample_batch(base_offset=5),
        sample_batch(base_offset=10),
    )
    buffer = first + second + third
    found = [(position, header.base_offset) for position, header in iter_batches(buffer)]
    assert found == [(0, 0), (len(first), 5), (len(first) + len(second), 10)]


@pytest.mark.parametrize("cut", [1, 11, 12, 16, 17, 60, 61, 62, -1])
def test_a_partial_tail_stops_cleanly_or_raises_truncated(cut: int) -> None:
    whole = sample_batch()
    buffer = whole + whole[:cut]
    assert [position for position, _ in iter_batches(buffer, allow_partial_tail=True)] == [0]
    with pytest.raises(TruncatedBatchError):
        list(iter_batches(buffer))


def test_empty_buffer_has_no_batches() -> None:
    assert list(iter_batches(b"")) == []


def test_a_size_below_fourteen_is_corrupt_as_in_kafka() -> None:
    raw = bytearray(sample_batch())
    struct.pack_into(">i", raw, layout.BATCH_LENGTH, 13)
    with pytest.raises(CorruptBatchError, match="minimum record overhead"):
        list(iter_batches(raw, allow_partial_tail=True))


def test_a_v2_batch_smaller_than_its_header_is_corrupt() -> None:
    raw = bytearray(sample_batch())
    struct.pack_into(">i", raw, layout.BATCH_LENGTH, 30)
    with pytest.raises(CorruptBatchError):
        list(iter_batches(raw, allow_partial_tail=True))


@pytest.mark.parametrize("magic", [3, 99, -1])
def test_a_magic_byte_outside_0_to_2_is_corrupt(magic: int) -> None:
    raw = bytearray(sample_batch())
    struct.pack_into(">b", raw, layout.MAGIC, magic)
    with pytest.raises(CorruptBatchError, match="Invalid magic"):
        list(iter_batches(raw))


@pytest.mark.parametrize("magic", [0, 1])
def test_legacy_message_sets_are_refused_as_unsupported_magic(magic: int) -> None:
    """Kafka 4 reads only magic 2: a magic 0 or 1 message set raises UnsupportedMagicError."""
    legacy = struct.pack(">qiIbb", 0, 16, 0, magic, 0) + b"\xff\xff\xff\xff" + b"\x00\x00\x00\x02ab"
    with pytest.raises(UnsupportedMagicError) as raised:
        list(iter_batches(legacy))
    assert raised.value.magic == magic
    with pytest.raises(UnsupportedMagicError):
        RecordBatch.decode(legacy)


def test_valid_prefix_length_stops_before_a_torn_tail() -> None:
    whole = sample_batch()
    assert valid_prefix_length(whole * 2 + whole[:40]) == 2 * len(whole)
    assert valid_prefix_length(whole * 3) == 3 * len(whole)


def test_valid_prefix_length_stops_before_a_batch_with_a_bad_crc() -> None:
    whole = sample_batch()
    buffer = bytearray(whole * 3)
    buffer[len(whole) + RECORDS + 3] ^= 0xFF  # corrupt the second batch's records
    assert valid_prefix_length(buffer) == len(whole)
    assert valid_prefix_length(buffer, check_crc=False) == 3 * len(whole)


def test_valid_prefix_length_stops_before_garbage() -> None:
    whole = sample_batch()
    assert valid_prefix_length(whole + b"\x00" * 12 + whole) == len(whole)


# --- CRC and in-place changes -----------------------------------------------------------------------


def test_crc_is_crc32c_from_attributes_to_the_end() -> None:
    raw = sample_batch()
    header = BatchHeader.decode(raw)
    assert crc_is_valid(raw)
    assert compute_crc(raw) == header.crc


def test_any_flipped_byte_under_the_crc_is_detected() -> None:
    raw = sample_batch()
    for position in range(layout.ATTRIBUTES, len(raw)):
        corrupted = bytearray(raw)
        corrupted[position] ^= 0x01
        assert not crc_is_valid(corrupted), position


def test_base_offset_and_leader_epoch_are_outside_the_crc() -> None:
    raw = bytearray(sample_batch())
    for position in range(layout.BASE_OFFSET, layout.BATCH_LENGTH):
        raw[position] ^= 0xFF
    for position in range(layout.PARTITION_LEADER_EPOCH, layout.MAGIC):
        raw[position] ^= 0xFF
    assert crc_is_valid(raw)


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec.name)
def test_assigning_offsets_in_place_keeps_the_crc_and_the_compressed_records(codec: CompressionType) -> None:
    """Leader's fast path: only baseOffset and partitionLeaderEpoch change; records untouched."""
    original = sample_batch(compression=codec)
    buffer = bytearray(original + original)
    second = len(original)
    assign_offsets_in_place(buffer, second, base_offset=1234, partition_leader_epoch=9)
    header = BatchHeader.decode(buffer, second)
    assert (header.base_offset, header.partition_leader_epoch, header.last_offset) == (1234, 9, 1238)
    assert crc_is_valid(buffer, second)
    assert buffer[second + RECORDS :] == original[RECORDS:]
    assert buffer[second + layout.MAGIC :] == original[layout.MAGIC :]
    assert bytes(buffer[:second]) == original
    decoded = RecordBatch.decode(buffer, second)
    assert [decoded.record_offset(record) for record in decoded.records] == list(range(1234, 1239))


def test_setting_log_append_time_recomputes_the_crc() -> None:
    buffer = bytearray(sample_batch(compression=CompressionType.ZSTD))
    assert set_max_timestamp_in_place(buffer, 0, TimestampType.LOG_APPEND_TIME, 99_999)
    header = BatchHeader.decode(buffer)
    assert header.timestamp_type is TimestampType.LOG_APPEND_TIME and header.max_timestamp == 99_999
    assert crc_is_valid(buffer)
    decoded = RecordBatch.decode(buffer)
    assert {decoded.record_timestamp(record) for record in decoded.records} == {99_999}


def test_setting_an_unchanged_max_timestamp_writes_nothing() -> None:
    original = sample_batch()
    buffer = bytearray(original)
    assert not set_max_timestamp_in_place(buffer, 0, TimestampType.CREATE_TIME, 1_004)
    assert bytes(buffer) == original


def test_crc_of_a_partial_batch_raises_truncated() -> None:
    with pytest.raises(TruncatedBatchError):
        crc_is_valid(sample_batch()[:-1])


# --- whole batches ------------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec.name)
def test_build_batch_lays_out_records_like_memory_records_builder(codec: CompressionType) -> None:
    raw = build_batch(simple_records(), compression=codec, base_offset=50, partition_leader_epoch=4)
    decoded = RecordBatch.decode(raw)
    assert decoded.compression is codec
    assert (decoded.base_offset, decoded.partition_leader_epoch, decoded.last_offset_delta) == (50, 4, 4)
    assert [record.offset_delta for record in decoded.records] == [0, 1, 2, 3, 4]
    assert decoded.base_timestamp == 1_000 and decoded.max_timestamp == 1_004
    assert [decoded.record_timestamp(record) for record in decoded.records] == [
        1_000,
        1_001,
        1_002,
        1_003,
        1_004,
    ]
    assert [record.value for record in decoded.records] == [record.value for record in simple_records()]
    assert decoded.encode() == raw


def test_build_batch_refuses_an_empty_batch_and_a_transaction_without_producer() -> None:
    with pytest.raises(ValueError, match="at least one record"):
        build_batch([])
    with pytest.raises(ValueError, match="producer id"):
        build_batch(simple_records(), transactional=True)


def to_refka_records(
    records: list[ClientRecord],
) -> list[tuple[int, bytes | None, bytes | None, tuple[Header, ...]]]:
    return [(r.timestamp, r.key, r.value, tuple(Header(k, v) for k, v in r.headers)) for r in records]


def from_batch(batch: RecordBatch) -> list[tuple[int, bytes | None, bytes | None, tuple[Header, ...]]]:
    return [(batch.record_timestamp(r), r.key, r.value, r.headers) for r in batch.records]


@pytest.mark.parametrize(
    "codec", [CompressionType.NONE, CompressionType.SNAPPY, CompressionType.LZ4, CompressionType.ZSTD]
)
def test_aiokafka_batches_decode_and_re_encode_to_identical_bytes(codec: CompressionType) -> None:
    """aiokafka's in-process builder: decode its batch, encode it with refka, same bytes."""
    records = sample_records()
    theirs = aiokafka_batch(records, codec=codec, producer_id=3, producer_epoch=1, base_sequence=77)
    decoded = RecordBatch.decode(theirs)
    assert decoded.compression is codec
    assert from_batch(decoded) == to_refka_records(records)
    assert (decoded.producer_id, decoded.producer_epoch, decoded.base_sequence) == (3, 1, 77)
    assert decoded.encode() == theirs


@pytest.mark.parametrize("codec", [CompressionType.NONE, CompressionType.GZIP])
def test_kafka_python_batches_decode_and_re_encode_to_identical_bytes(codec: CompressionType) -> None:
    """kafka-python 3's builder.  A gzip stream carries its own timestamp and level, so for gzip
    the header fields under the CRC and the decompressed records section are compared byte for
    byte, and refka's re-encoding decodes to the same batch."""
    records = sample_records()
    theirs = kafka_python_batch(records, codec=codec, producer_id=9, producer_epoch=0, base_sequence=0)
    decoded = RecordBatch.decode(theirs)
    assert decoded.compression is codec
    assert from_batch(decoded) == to_refka_records(records)
    ours = decoded.encode()
    if codec is CompressionType.NONE:
        assert ours == theirs
    else:
        assert encode_records(decoded.records) == gzip.decompress(theirs[RECORDS:])
        assert RecordBatch.decode(ours) == decoded
        assert ours[layout.MAGIC : layout.CRC] == theirs[layout.MAGIC : layout.CRC]
        assert ours[layout.ATTRIBUTES : RECORDS] == theirs[layout.ATTRIBUTES : RECORDS]


def test_aiokafka_gzip_batches_decode_to_the_same_records() -> None:
    records = sample_records()
    theirs = aiokafka_batch(records, codec=CompressionType.GZIP)
    decoded = RecordBatch.decode(theirs)
    assert decoded.compression is CompressionType.GZIP
    assert encode_records(decoded.records) == gzip.decompress(theirs[RECORDS:])
    assert from_batch(decoded) == to_refka_records(records)


def test_transactional_batches_from_aiokafka_round_trip() -> None:
    theirs = aiokafka_batch(
        sample_records(3), producer_id=5, producer_epoch=2, base_sequence=0, transactional=True
    )
    decoded = RecordBatch.decode(theirs)
    assert decoded.is_transactional and not decoded.is_control
    assert decoded.encode() == theirs


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec.name)
def test_client_readers_read_refka_batches(codec: CompressionType) -> None:
    """The other direction: aiokafka's (and, for none/gzip, kafka-python's) reader parses our
    batches, validates our CRC and sees our records."""
    raw = build_batch(
        [
            SimpleRecord(b"value-%d" % i * 20, key=b"k", timestamp=10 + i, headers=(Header("h", b"x"),))
            for i in range(6)
        ],
        compression=codec,
        producer_id=1,
        producer_epoch=0,
        base_sequence=5,
    )
    readers = [AiokafkaBatchReader]
    if codec in (CompressionType.NONE, CompressionType.GZIP):
        readers.append(KafkaPythonBatchReader)
    for reader in readers:
        batch = reader(raw)
        assert batch.validate_crc()
        assert [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in batch] == [
            (i, 10 + i, b"k", b"value-%d" % i * 20, [("h", b"x")]) for i in range(6)
        ]


def test_raw_snappy_batches_as_librdkafka_writes_them_decode() -> None:
    """librdkafka compresses a batch as one raw snappy block (no xerial header)."""
    template = RecordBatch.decode(build_batch(simple_records(), compression=CompressionType.SNAPPY))
    section = compress_snappy_raw(encode_records(template.records))
    raw = bytearray(template.encode()[:RECORDS] + section)
    struct.pack_into(">i", raw, layout.BATCH_LENGTH, len(raw) - 12)
    struct.pack_into(">I", raw, layout.CRC, compute_crc(raw))
    decoded = RecordBatch.decode(raw)
    assert decoded.records == template.records


def test_iter_record_batches_decodes_a_fetch_response_and_skips_its_partial_tail() -> None:
    first = build_batch(simple_records(), base_offset=0)
    second = build_batch(simple_records(), base_offset=5, compression=CompressionType.LZ4)
    batches = list(iter_record_batches(first + second + second[:20]))
    assert [batch.base_offset for batch in batches] == [0, 5]


def test_decode_refuses_a_bad_crc_unless_told_not_to_check() -> None:
    raw = bytearray(sample_batch())
    raw[-2] ^= 0x01  # a byte of the last record's value
    with pytest.raises(CorruptBatchError, match="crc"):
        RecordBatch.decode(raw)
    RecordBatch.decode(raw, verify_crc=False)


def test_decode_bounds_decompression_per_batch() -> None:
    raw = build_batch([SimpleRecord(b"\0" * 100_000)], compression=CompressionType.ZSTD)
    assert len(raw) < 200
    with pytest.raises(DecompressionLimitError):
        RecordBatch.decode(raw, max_uncompressed_bytes=50_000)


# --- bad input ----------------------------------------------------------------------------------------


def decode_everything(data: bytes | bytearray) -> None:
    """Run every decoder over ``data``; each returns or raises RecordsDecodeError."""
    for call in (
        lambda: BatchHeader.decode(data),
        lambda: list(iter_batches(data)),
        lambda: list(iter_batches(data, allow_partial_tail=True)),
        lambda: valid_prefix_length(data),
        lambda: crc_is_valid(data),
        lambda: RecordBatch.decode(data, max_uncompressed_bytes=1 << 16),
        lambda: RecordBatch.decode(data, verify_crc=False, max_uncompressed_bytes=1 << 16),
        lambda: list(iter_record_batches(data, verify_crc=False, max_uncompressed_bytes=1 << 16)),
    ):
        try:
            call()
        except RecordsDecodeError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_decode_or_raise_a_records_decode_error(data: bytes) -> None:
    decode_everything(data)


@st.composite
def plausible_headers(draw: st.DrawFn) -> bytes:
    """Random bytes behind a header that passes the framing checks, so decoding goes deep."""
    body = draw(st.binary(max_size=300))
    fields = draw(
        st.tuples(
            st.integers(-(2**15), 2**15 - 1),  # attributes
            st.integers(-3, 20),  # last offset delta
            st.integers(-3, 20),  # record count
        )
    )
    raw = bytearray(
        BatchHeader(0, 49 + len(body), 0, 2, 0, fields[0], fields[1], 0, 0, -1, -1, -1, fields[2]).encode()
        + body
    )
    struct.pack_into(">I", raw, layout.CRC, compute_crc(raw))
    return bytes(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plausible_headers())
def test_random_records_sections_behind_valid_headers_decode_or_raise(data: bytes) -> None:
    decode_everything(data)


@settings(max_examples=300, deadline=None)
@given(
    codec=st.sampled_from(CODECS),
    mutations=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.none() | st.integers(0, 10_000),
)
def test_mutated_client_batches_decode_or_raise(
    codec: CompressionType, mutations: list[tuple[int, int]], cut: int | None
) -> None:
    """A valid batch in each codec with bytes overwritten (CRC left as is, and recomputed so the
    damage reaches the decompressor and the record decoder), optionally cut short."""
    data = bytearray(build_batch(simple_records(8), compression=codec, producer_id=1, base_sequence=0))
    for position, byte in mutations:
        data[position % len(data)] = byte
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    decode_everything(data)
    if len(data) >= RECORDS:
        try:
            struct.pack_into(">I", data, layout.CRC, compute_crc(data))
        except RecordsDecodeError:
            return
        decode_everything(data)


@settings(max_examples=50, deadline=None)
@given(
    codec=st.sampled_from(CODECS),
    values=st.lists(st.none() | st.binary(max_size=64), min_size=1, max_size=10),
    timestamps=st.lists(st.integers(-1, 2**40), min_size=10, max_size=10),
)
def test_built_batches_round_trip(
    codec: CompressionType, values: list[bytes | None], timestamps: list[int]
) -> None:
    records = [SimpleRecord(value, key=value, timestamp=timestamps[i]) for i, value in enumerate(values)]
    raw = build_batch(records, compression=codec)
    decoded = RecordBatch.decode(raw)
    assert [(decoded.record_timestamp(r), r.key, r.value) for r in decoded.records] == [
        (r.timestamp, r.key, r.value) for r in records
    ]
    assert decoded.encode() == raw
    assert decompress(codec, raw[RECORDS:], 1 << 20) == encode_records(decoded.records)
