"""Broker-side validation of produced batches: every refusal with the code Kafka returns, and the
in-place versus rebuilt paths of offset assignment."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference.errors import ErrorCode, Errors, KafkaError
from reference.records import batch as layout
from reference.records.batch import (
    RECORDS,
    BatchHeader,
    Record,
    RecordBatch,
    SimpleRecord,
    TimestampType,
    build_batch,
    compute_crc,
    crc_is_valid,
)
from reference.records.compression import CompressionType, TopicCompressionType, compress
from reference.records.control import (
    ControlRecordType,
    EndTransactionMarker,
    build_end_transaction_marker_batch,
)
from reference.records.decode_errors import RecordsDecodeError
from reference.records.record import RecordColumns
from reference.records.validation import (
    RecordsOutcome,
    RecordValidationConfig,
    RecordValidationError,
    ValidatedBatch,
    records_outcome_from_bounds,
    records_outcome_record_by_record,
    validate_produce,
    validate_produce_partition,
    validate_records,
    validate_records_for_append,
)
from tests.reference.records.client_batches import aiokafka_batch, kafka_python_batch, sample_records

NOW = 1_700_000_000_000
CODECS = list(CompressionType)
COMPRESSED = [codec for codec in CompressionType if codec is not CompressionType.NONE]


def records(count: int = 5, *, timestamp: int = NOW, key: bytes | None = b"k") -> list[SimpleRecord]:
    return [SimpleRecord(b"value %d " % i * 10, key=key, timestamp=timestamp + i) for i in range(count)]


def produced(**options: object) -> bytes:
    """A batch as an idempotent producer sends it."""
    settings_: dict[str, object] = {"producer_id": 1000, "producer_epoch": 0, "base_sequence": 0}
    settings_.update(options)
    return build_batch(records(), **settings_)  # type: ignore[arg-type]


def append(
    raw: bytes | bytearray,
    config: RecordValidationConfig | None = None,
    *,
    version: int = 9,
    log_end_offset: int = 500,
    epoch: int = 7,
) -> ValidatedBatch:
    return validate_produce(
        raw,
        produce_version=version,
        config=config or RecordValidationConfig(),
        log_end_offset=log_end_offset,
        partition_leader_epoch=epoch,
        now_ms=NOW + 100,
    )


def refusal(call: Callable[[], object]) -> KafkaError:
    with pytest.raises(KafkaError) as raised:
        call()
    return raised.value


def code_of(call: Callable[[], object]) -> ErrorCode:
    return refusal(call).error


def with_crc(raw: bytearray) -> bytearray:
    struct.pack_into(">I", raw, layout.CRC, compute_crc(raw))
    return raw


def patched(raw: bytes, fmt: str, offset: int, value: int) -> bytearray:
    """A batch with one header field overwritten and its CRC recomputed."""
    changed = bytearray(raw)
    struct.pack_into(fmt, changed, offset, value)
    return with_crc(changed)


def raw_batch(
    batch_records: list[Record], *, compression: CompressionType = CompressionType.NONE, **fields: int
) -> bytes:
    """A batch with exactly these records (deltas as given), header fields overridable."""
    options: dict[str, object] = {
        "records": tuple(batch_records),
        "last_offset_delta": len(batch_records) - 1,
        "base_timestamp": NOW,
        "max_timestamp": NOW,
        "compression": compression,
    }
    options.update(fields)
    return RecordBatch(**options).encode()  # type: ignore[arg-type]


# --- stage 1: ProduceRequest.validateRecords ---------------------------------------------------


def test_a_partition_without_any_batch_is_refused_with_invalid_record() -> None:
    assert code_of(lambda: validate_produce_partition(b"", 9)) is Errors.INVALID_RECORD
    assert code_of(lambda: validate_produce_partition(produced()[:40], 9)) is Errors.INVALID_RECORD


def test_two_batches_for_one_partition_are_refused_with_invalid_record() -> None:
    """Produce v3+: exactly one record batch per partition."""
    error = refusal(lambda: append(produced() + produced()))
    assert error.error is Errors.INVALID_RECORD
    assert "exactly one record batch" in str(error)


def test_a_whole_batch_followed_by_a_partial_one_is_accepted_and_the_tail_dropped() -> None:
    """Kafka's iterator ignores a partial trailing batch and the log trims it."""
    whole = produced()
    result = append(whole + whole[:30])
    assert len(result.records) == len(whole)
    assert result.record_count == 5


@pytest.mark.parametrize("magic", [0, 1])
def test_a_legacy_message_set_is_refused_with_invalid_record(magic: int) -> None:
    """Kafka 4 only takes magic 2 (Produce v3+); magic 0/1 gets INVALID_RECORD, not a crash."""
    legacy = struct.pack(">qiIbb", 0, 16, 0, magic, 0) + b"\xff\xff\xff\xff" + b"\x00\x00\x00\x02ab"
    error = refusal(lambda: append(legacy))
    assert error.error is Errors.INVALID_RECORD
    assert "magic version 2" in str(error)
    assert (
        code_of(
            lambda: validate_records_for_append(
                legacy,
                config=RecordValidationConfig(),
                log_end_offset=0,
                partition_leader_epoch=0,
                now_ms=NOW,
            )
        )
        is Errors.INVALID_RECORD
    )


@pytest.mark.parametrize("magic", [3, 127, -1])
def test_an_impossible_magic_byte_is_refused_with_corrupt_message(magic: int) -> None:
    raw = bytearray(produced())
    struct.pack_into(">b", raw, layout.MAGIC, magic)
    assert code_of(lambda: append(raw)) is Errors.CORRUPT_MESSAGE


def test_a_batch_length_below_the_minimum_is_refused_with_corrupt_message() -> None:
    raw = bytearray(produced())
    struct.pack_into(">i", raw, layout.BATCH_LENGTH, 10)
    assert code_of(lambda: append(raw)) is Errors.CORRUPT_MESSAGE


def test_zstd_before_produce_v7_is_refused_with_unsupported_compression_type() -> None:
    raw = produced(compression=CompressionType.ZSTD)
    assert code_of(lambda: append(raw, version=6)) is Errors.UNSUPPORTED_COMPRESSION_TYPE
    assert append(raw, version=7).compression is CompressionType.ZSTD


def test_produce_versions_below_3_are_not_checked_at_the_request_level() -> None:
    assert validate_produce_partition(produced() + produced(), 2) is None


# --- stage 2: UnifiedLog.analyzeAndValidateRecords ---------------------------------------------


def test_a_base_offset_other_than_zero_is_refused_with_invalid_record() -> None:
    raw = produced(base_offset=3)
    assert code_of(lambda: append(raw)) is Errors.INVALID_RECORD


def test_a_batch_over_max_message_bytes_is_refused_with_message_too_large() -> None:
    raw = produced()
    assert code_of(lambda: append(raw, RecordValidationConfig(max_message_bytes=len(raw) - 1))) is (
        Errors.MESSAGE_TOO_LARGE
    )
    assert append(raw, RecordValidationConfig(max_message_bytes=len(raw))).record_count == 5


def test_a_crc_mismatch_is_refused_with_corrupt_message() -> None:
    raw = bytearray(produced())
    raw[-3] ^= 0x10
    assert code_of(lambda: append(raw)) is Errors.CORRUPT_MESSAGE


def test_the_base_offset_is_checked_before_the_crc_as_in_kafka() -> None:
    raw = bytearray(produced(base_offset=1))
    raw[-3] ^= 0x10
    assert code_of(lambda: append(raw)) is Errors.INVALID_RECORD


@pytest.mark.parametrize("codec_id", [5, 6, 7])
def test_codec_ids_above_4_get_unknown_server_error_as_from_kafka(codec_id: int) -> None:
    """Kafka's CompressionType.forId throws IllegalArgumentException, which has no error code."""
    raw = patched(produced(), ">h", layout.ATTRIBUTES, codec_id)
    assert code_of(lambda: append(raw)) is Errors.UNKNOWN_SERVER_ERROR
    assert code_of(lambda: append(raw, version=5)) is Errors.UNKNOWN_SERVER_ERROR


def test_from_produce_v7_the_crc_is_checked_before_the_codec_id() -> None:
    raw = patched(produced(), ">h", layout.ATTRIBUTES, 6)
    raw[-3] ^= 0x10
    assert code_of(lambda: append(raw, version=7)) is Errors.CORRUPT_MESSAGE
    assert code_of(lambda: append(raw, version=6)) is Errors.UNKNOWN_SERVER_ERROR


# --- stage 3: LogValidator.validateBatch ---------------------------------------------------------


def test_last_offset_delta_must_equal_record_count_minus_one() -> None:
    raw = patched(produced(), ">i", layout.LAST_OFFSET_DELTA, 3)
    error = refusal(lambda: append(raw))
    assert error.error is Errors.INVALID_RECORD and "Inconsistent batch offset range" in str(error)


def test_a_negative_offset_range_is_refused_with_invalid_record() -> None:
    raw = patched(produced(), ">i", layout.LAST_OFFSET_DELTA, -1)
    assert "invalid offset range" in str(refusal(lambda: append(raw)))


def test_a_batch_claiming_zero_records_is_refused_with_invalid_record() -> None:
    raw = patched(produced(), ">i", layout.RECORD_COUNT, 0)
    error = refusal(lambda: append(raw))
    assert error.error is Errors.INVALID_RECORD


def test_a_batch_with_the_control_bit_from_a_client_is_refused_with_invalid_record() -> None:
    marker = build_end_transaction_marker_batch(
        EndTransactionMarker(ControlRecordType.COMMIT, 0), producer_id=1000, producer_epoch=0, timestamp=NOW
    )
    error = refusal(lambda: append(marker))
    assert error.error is Errors.INVALID_RECORD and "control records" in str(error)


def test_a_producer_id_without_a_base_sequence_is_refused_with_invalid_record() -> None:
    raw = produced(base_sequence=-1)
    error = refusal(lambda: append(raw))
    assert error.error is Errors.INVALID_RECORD and "Invalid sequence number -1" in str(error)


def test_no_producer_id_needs_no_sequence() -> None:
    raw = build_batch(records())
    assert append(raw).last_sequence == -1


# --- stage 3: the records ------------------------------------------------------------------------


def test_records_section_shorter_than_the_count_is_refused_with_invalid_record() -> None:
    two_records = raw_batch([Record(0, 0, b"k", b"a"), Record(1, 0, b"k", b"b")])
    raw = patched(
        bytes(patched(two_records, ">i", layout.RECORD_COUNT, 3)), ">i", layout.LAST_OFFSET_DELTA, 2
    )
    error = refusal(lambda: append(raw))
    assert error.error is Errors.INVALID_RECORD and "premature EOF" in str(error)


def test_bytes_after_the_last_record_are_refused_with_invalid_record() -> None:
    raw = with_crc(bytearray(raw_batch([Record(0, 0, b"k", b"a")]) + b"\x00\x00"))
    struct.pack_into(">i", raw, layout.BATCH_LENGTH, len(raw) - 12)
    raw = with_crc(raw)
    assert "records still remaining" in str(refusal(lambda: append(raw)))


@pytest.mark.parametrize("codec", COMPRESSED, ids=lambda codec: codec.name)
def test_a_payload_that_does_not_decompress_gets_unknown_server_error_as_from_kafka(
    codec: CompressionType,
) -> None:
    """Kafka wraps the codec's IOException in a KafkaException, which has no error code."""
    header = BatchHeader.decode(produced(compression=codec))
    raw = bytearray(header.encode() + b"\x00garbage that no codec accepts\x00" * 2)
    struct.pack_into(">i", raw, layout.BATCH_LENGTH, len(raw) - 12)
    assert code_of(lambda: append(with_crc(raw))) is Errors.UNKNOWN_SERVER_ERROR


def test_a_decompression_bomb_is_refused_with_invalid_record_without_inflating_it() -> None:
    bomb = build_batch(
        [SimpleRecord(b"\0" * 2_000_000, key=b"k", timestamp=NOW)],
        compression=CompressionType.ZSTD,
        producer_id=1,
        producer_epoch=0,
        base_sequence=0,
    )
    config = RecordValidationConfig(max_uncompressed_bytes=1 << 20)
    error = refusal(lambda: append(bomb, config))
    assert error.error is Errors.INVALID_RECORD and "refka" in str(error)


def test_a_compacted_topic_refuses_records_without_key_and_lists_them() -> None:
    batch = build_batch(
        [
            SimpleRecord(b"a", key=b"k", timestamp=NOW),
            SimpleRecord(b"b", timestamp=NOW),
            SimpleRecord(b"c", timestamp=NOW),
        ]
    )
    error = refusal(lambda: append(batch, RecordValidationConfig(compacted=True)))
    assert isinstance(error, RecordValidationError)
    assert error.error is Errors.INVALID_RECORD
    assert [record_error.batch_index for record_error in error.record_errors] == [1, 2]
    assert "Compacted topic cannot accept message without key" in error.record_errors[0].message
    assert append(batch).record_count == 3  # the same batch is fine on a delete topic


def test_a_timestamp_older_than_before_max_ms_is_refused_with_invalid_timestamp() -> None:
    config = RecordValidationConfig(message_timestamp_before_max_ms=1_000)
    old = build_batch(records(timestamp=NOW + 100 - 1_001))
    error = refusal(lambda: append(old, config))
    assert isinstance(error, RecordValidationError) and error.error is Errors.INVALID_TIMESTAMP
    assert [record_error.batch_index for record_error in error.record_errors] == [0]
    just_in = build_batch(records(timestamp=NOW + 100 - 1_000))
    assert append(just_in, config).record_count == 5


def test_a_timestamp_newer_than_after_max_ms_is_refused_with_invalid_timestamp() -> None:
    config = RecordValidationConfig(message_timestamp_after_max_ms=1_000)
    future = build_batch(records(timestamp=NOW + 100 + 997))
    error = refusal(lambda: append(future, config))
    assert isinstance(error, RecordValidationError) and error.error is Errors.INVALID_TIMESTAMP
    assert [record_error.batch_index for record_error in error.record_errors] == [4]


def test_records_without_timestamp_pass_the_bounds_under_create_time() -> None:
    config = RecordValidationConfig(message_timestamp_before_max_ms=0, message_timestamp_after_max_ms=0)
    result = append(build_batch(records(timestamp=-1)[:1]), config)
    assert result.max_timestamp == -1 and result.shallow_offset_of_max_timestamp == -1


def test_a_producer_sending_log_append_time_to_a_log_append_time_topic_gets_invalid_timestamp() -> None:
    raw = build_batch(records(), timestamp_type=TimestampType.LOG_APPEND_TIME, log_append_time=NOW)
    config = RecordValidationConfig(message_timestamp_type=TimestampType.LOG_APPEND_TIME)
    assert code_of(lambda: append(raw, config)) is Errors.INVALID_TIMESTAMP


def test_timestamp_errors_win_over_key_errors() -> None:
    config = RecordValidationConfig(compacted=True, message_timestamp_before_max_ms=10)
    raw = build_batch([SimpleRecord(b"a", timestamp=NOW), SimpleRecord(b"b", key=b"k", timestamp=1)])
    error = refusal(lambda: append(raw, config))
    assert isinstance(error, RecordValidationError) and error.error is Errors.INVALID_TIMESTAMP
    assert [record_error.batch_index for record_error in error.record_errors] == [0, 1]


# --- offset assignment: in place ------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec.name)
def test_same_codec_assigns_offsets_in_place_and_keeps_the_payload_untouched(codec: CompressionType) -> None:
    original = produced(compression=codec)
    buffer = bytearray(original)
    result = append(buffer, log_end_offset=500, epoch=7)
    assert result.records is buffer  # appended from the request's own buffer
    assert not result.recompressed and result.compression is codec
    assert (result.base_offset, result.last_offset, result.header.partition_leader_epoch) == (500, 504, 7)
    assert bytes(buffer[layout.MAGIC :]) == original[layout.MAGIC :]  # CRC and records untouched
    assert crc_is_valid(buffer)
    assert (result.producer_id, result.producer_epoch, result.base_sequence, result.last_sequence) == (
        1000,
        0,
        0,
        4,
    )
    assert (
        result.max_timestamp,
        result.shallow_offset_of_max_timestamp,
        result.max_timestamp_offset_delta,
    ) == (
        NOW + 4,
        504,
        4,
    )


@pytest.mark.parametrize("codec", COMPRESSED, ids=lambda codec: codec.name)
def test_naming_the_producers_codec_on_the_topic_is_also_in_place(codec: CompressionType) -> None:
    original = produced(compression=codec)
    result = append(
        original, RecordValidationConfig(compression_type=TopicCompressionType(codec.config_name))
    )
    assert not result.recompressed
    assert bytes(result.records[RECORDS:]) == original[RECORDS:]


def test_read_only_input_is_copied_before_offsets_are_written() -> None:
    original = produced()
    result = append(original)
    assert result.records is not original
    assert BatchHeader.decode(original).base_offset == 0


def test_log_append_time_is_stamped_in_place_with_a_new_crc() -> None:
    original = produced(compression=CompressionType.LZ4)
    config = RecordValidationConfig(message_timestamp_type=TimestampType.LOG_APPEND_TIME)
    result = append(original, config)
    header = result.header
    assert header.timestamp_type is TimestampType.LOG_APPEND_TIME and header.max_timestamp == NOW + 100
    assert crc_is_valid(result.records) and not result.recompressed
    assert bytes(result.records[RECORDS:]) == original[RECORDS:]
    assert (result.max_timestamp, result.log_append_time) == (NOW + 100, NOW + 100)
    assert result.shallow_offset_of_max_timestamp == result.last_offset
    decoded = RecordBatch.decode(result.records)
    assert {decoded.record_timestamp(record) for record in decoded.records} == {NOW + 100}


def test_a_wrong_max_timestamp_in_the_header_is_corrected_as_kafka_does() -> None:
    raw = patched(produced(), ">q", layout.MAX_TIMESTAMP, 5)
    result = append(raw)
    assert result.header.max_timestamp == NOW + 4 and crc_is_valid(result.records)


def test_uncompressed_batches_keep_their_offset_deltas_as_sent() -> None:
    """Kafka does not compare an uncompressed batch's offset deltas with 0..n-1."""
    raw = raw_batch(
        [Record(0, 0, b"k", b"a"), Record(7, 0, b"k", b"b")], producer_id=1, producer_epoch=0, base_sequence=0
    )
    result = append(raw)
    assert not result.recompressed
    decoded = RecordBatch.decode(result.records)
    assert [record.offset_delta for record in decoded.records] == [0, 7]


# --- offset assignment: rebuilt ------------------------------------------------------------------


@pytest.mark.parametrize("source", CODECS, ids=lambda codec: codec.name)
@pytest.mark.parametrize("topic", list(TopicCompressionType)[1:], ids=lambda topic: topic.value)
def test_a_topic_codec_other_than_the_batches_recompresses(
    source: CompressionType, topic: TopicCompressionType
) -> None:
    original = produced(compression=source, transactional=True)
    result = append(original, RecordValidationConfig(compression_type=topic))
    target = topic.target_codec(source)
    assert result.compression is target and result.source_compression is source
    assert result.recompressed == (target is not source)
    decoded = RecordBatch.decode(result.records)
    before = RecordBatch.decode(original)
    assert [(r.key, r.value, r.headers) for r in decoded.records] == [
        (r.key, r.value, r.headers) for r in before.records
    ]
    assert [decoded.record_timestamp(r) for r in decoded.records] == [
        before.record_timestamp(r) for r in before.records
    ]
    assert (decoded.base_offset, decoded.partition_leader_epoch) == (500, 7)
    assert (decoded.producer_id, decoded.producer_epoch, decoded.base_sequence) == (1000, 0, 0)
    assert decoded.is_transactional


@pytest.mark.parametrize("codec", COMPRESSED, ids=lambda codec: codec.name)
def test_compressed_batches_with_gaps_in_offset_deltas_are_rebuilt_not_refused(
    codec: CompressionType,
) -> None:
    raw = raw_batch(
        [Record(0, 0, b"k", b"a"), Record(5, 1, b"k", b"b")],
        compression=codec,
        producer_id=1,
        producer_epoch=0,
        base_sequence=0,
    )
    result = append(raw)
    assert result.recompressed and result.compression is codec
    decoded = RecordBatch.decode(result.records)
    assert [record.offset_delta for record in decoded.records] == [0, 1]
    assert [record.value for record in decoded.records] == [b"a", b"b"]


def test_a_rebuilt_batch_over_max_message_bytes_is_refused_with_message_too_large() -> None:
    compressed = produced(compression=CompressionType.GZIP)
    config = RecordValidationConfig(
        compression_type=TopicCompressionType.UNCOMPRESSED, max_message_bytes=len(compressed) + 10
    )
    assert code_of(lambda: append(compressed, config)) is Errors.MESSAGE_TOO_LARGE


def test_rebuilding_for_a_log_append_time_topic_stamps_the_append_time() -> None:
    config = RecordValidationConfig(
        compression_type=TopicCompressionType.ZSTD, message_timestamp_type=TimestampType.LOG_APPEND_TIME
    )
    result = append(produced(), config)
    assert result.recompressed and result.header.timestamp_type is TimestampType.LOG_APPEND_TIME
    assert result.header.max_timestamp == NOW + 100 == result.max_timestamp


def test_a_batch_larger_than_segment_bytes_is_refused_with_record_list_too_large() -> None:
    raw = produced()
    assert code_of(lambda: append(raw, RecordValidationConfig(segment_bytes=len(raw) - 1))) is (
        Errors.RECORD_LIST_TOO_LARGE
    )


def test_the_last_sequence_wraps_past_int32_max() -> None:
    result = append(produced(base_sequence=2**31 - 2))
    assert (result.base_sequence, result.last_sequence) == (2**31 - 2, 2)


# --- batches from real clients -------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec.name)
def test_batches_built_by_aiokafka_are_accepted_in_place(codec: CompressionType) -> None:
    raw = aiokafka_batch(sample_records(), codec=codec, producer_id=3, producer_epoch=0, base_sequence=0)
    result = append(raw)
    assert not result.recompressed and result.record_count == 40 and result.compression is codec


@pytest.mark.parametrize("codec", [CompressionType.NONE, CompressionType.GZIP], ids=lambda codec: codec.name)
def test_batches_built_by_kafka_python_are_accepted_in_place(codec: CompressionType) -> None:
    raw = kafka_python_batch(sample_records(), codec=codec, producer_id=3, producer_epoch=0, base_sequence=0)
    result = append(raw)
    assert not result.recompressed and result.record_count == 40


# --- bad input -----------------------------------------------------------------------------------


def validate_anything(data: bytes | bytearray, config: RecordValidationConfig) -> None:
    try:
        append(data, config)
    except KafkaError:
        pass


CONFIGS = st.builds(
    RecordValidationConfig,
    compression_type=st.sampled_from(list(TopicCompressionType)),
    compacted=st.booleans(),
    message_timestamp_type=st.sampled_from([TimestampType.CREATE_TIME, TimestampType.LOG_APPEND_TIME]),
    max_uncompressed_bytes=st.just(1 << 16),
)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300), config=CONFIGS)
def test_any_bytes_validate_or_raise_a_kafka_error(data: bytes, config: RecordValidationConfig) -> None:
    validate_anything(data, config)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    codec=st.sampled_from(CODECS),
    mutations=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=3),
    fix_crc=st.booleans(),
    config=CONFIGS,
)
def test_mutated_batches_validate_or_raise_a_kafka_error(
    codec: CompressionType, mutations: list[tuple[int, int]], fix_crc: bool, config: RecordValidationConfig
) -> None:
    raw = bytearray(produced(compression=codec))
    for position, byte in mutations:
        raw[position % len(raw)] = byte
    if fix_crc:
        try:
            raw = with_crc(raw)
        except RecordsDecodeError:  # the framing itself is broken now: validate it as it is
            pass
    validate_anything(raw, config)


@settings(max_examples=50, deadline=None)
@given(codec=st.sampled_from(COMPRESSED), body=st.binary(max_size=200))
def test_random_compressed_payloads_behind_a_valid_header_validate_or_raise(
    codec: CompressionType, body: bytes
) -> None:
    header = BatchHeader.decode(produced(compression=codec))
    for payload in (body, compress(codec, body)):
        raw = bytearray(header.encode() + payload)
        struct.pack_into(">i", raw, layout.BATCH_LENGTH, len(raw) - 12)
        validate_anything(with_crc(raw), RecordValidationConfig())


# --- the records' outcome from their extremes, held to the record-by-record rule ------------------

INT64_BOUNDS = st.integers(-(2**63), 2**63 - 1)
NEAR_NOW = st.integers(NOW - 10_000, NOW + 10_000)


def outcome_or_error(rule: Callable[[], object]) -> object:
    try:
        return rule()
    except RecordValidationError as refused:
        return ("refused", refused.error, [(e.batch_index, e.message) for e in refused.record_errors])


@settings(max_examples=500, deadline=None)
@given(
    base_timestamp=NEAR_NOW | INT64_BOUNDS | st.sampled_from([-1, 0, 2**63 - 1, -(2**63)]),
    timestamp_deltas=st.lists(st.integers(-5_000, 5_000) | INT64_BOUNDS | st.just(-1), min_size=1, max_size=8),
    offset_deltas_in_order=st.booleans(),
    null_keys=st.sets(st.integers(0, 7)),
    log_append_time_batch=st.booleans(),
    topic_timestamp_type=st.sampled_from([TimestampType.CREATE_TIME, TimestampType.LOG_APPEND_TIME]),
    compacted=st.booleans(),
    before_max_ms=st.sampled_from([0, 1_000, 3_600_000, 2**63 - 1]),
    after_max_ms=st.sampled_from([0, 1_000, 3_600_000, 2**63 - 1]),
    now_ms=NEAR_NOW | INT64_BOUNDS,
)
def test_the_outcome_from_the_extremes_is_the_record_by_record_outcome_whenever_it_decides(
    base_timestamp: int, timestamp_deltas: list[int], offset_deltas_in_order: bool, null_keys: set[int],
    log_append_time_batch: bool, topic_timestamp_type: TimestampType, compacted: bool,
    before_max_ms: int, after_max_ms: int, now_ms: int,
) -> None:
    count = len(timestamp_deltas)
    header = BatchHeader(
        base_offset=0, batch_length=100, partition_leader_epoch=0, magic=2, crc=0,
        attributes=layout.Attributes.TIMESTAMP_TYPE if log_append_time_batch else 0,
        last_offset_delta=count - 1, base_timestamp=base_timestamp, max_timestamp=base_timestamp,
        producer_id=-1, producer_epoch=-1, base_sequence=-1, record_count=count,
    )
    columns = RecordColumns(
        offset_deltas=list(range(count)) if offset_deltas_in_order else list(range(count))[::-1],
        timestamp_deltas=timestamp_deltas,
        null_key_indexes=sorted(index for index in null_keys if index < count),
    )
    config = RecordValidationConfig(
        compacted=compacted, message_timestamp_type=topic_timestamp_type,
        message_timestamp_before_max_ms=before_max_ms, message_timestamp_after_max_ms=after_max_ms,
    )
    plain = outcome_or_error(lambda: records_outcome_record_by_record(header, columns, config, now_ms))
    from_bounds = records_outcome_from_bounds(header, columns, config, now_ms)
    if from_bounds is not None:
        assert from_bounds == plain
    assert outcome_or_error(lambda: validate_records(header, columns, config, now_ms)) == plain


def test_a_batch_of_ordinary_records_is_decided_from_its_extremes() -> None:
    """The shortcut is taken on the common batch (else the property above would hold vacuously)."""
    header = BatchHeader.decode(produced())
    columns = RecordColumns(list(range(5)), [0, 1, 2, 3, 4], [])
    outcome = records_outcome_from_bounds(header, columns, RecordValidationConfig(), NOW)
    assert outcome == RecordsOutcome(max_timestamp=NOW + 4, max_timestamp_offset_delta=4,
                                     offset_deltas_are_sequential=True)
