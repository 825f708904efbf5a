"""Broker-side validation of produced record batches, as Apache Kafka 4 does it.

Theory of operation
-------------------
A partition leader accepts a producer's records in three steps, each a stage of Kafka's own code;
every refusal is a :class:`~reference.errors.KafkaError` carrying the code Kafka returns in the
Produce response for that partition.

1. **Request shape** (:func:`validate_produce_partition`; Kafka's ``ProduceRequest.validateRecords``
   for Produce v3+).  The partition's records must hold at least one batch, the first batch must
   have magic 2, zstd needs Produce v7+ (KIP-110), and there must be *exactly one* batch.  Failures:
   ``INVALID_RECORD``; zstd below v7 ``UNSUPPORTED_COMPRESSION_TYPE``; framing that cannot be
   walked (size field below 14, magic byte outside 0..2) ``CORRUPT_MESSAGE``.

2. **Shallow checks of each whole batch** (Kafka's ``UnifiedLog.analyzeAndValidateRecords``).  In
   order: ``baseOffset`` must be 0 (``INVALID_RECORD``); the batch may not exceed the topic's
   ``max.message.bytes`` (``MESSAGE_TOO_LARGE``); the CRC-32C must match (``CORRUPT_MESSAGE``); the
   codec bits must name a codec.  Codec ids 5-7 make Kafka's ``CompressionType.forId`` throw an
   ``IllegalArgumentException``, which has no error code: Kafka answers ``UNKNOWN_SERVER_ERROR``, and
   so does refka.  A partial batch after the last whole one is ignored and not stored, as Kafka
   trims it.

3. **Deep validation and offset assignment** (Kafka's ``LogValidator``, origin = client):

   * batch: ``lastOffsetDelta + 1`` must be positive and equal ``recordCount`` (> 0); the control
     bit is refused (clients may not write transaction markers); a producer id requires
     ``baseSequence >= 0``.  All ``INVALID_RECORD``.
   * records are always decompressed and walked, as Kafka does: the record count must match the
     bytes exactly, every record must parse (``INVALID_RECORD``); a payload the codec rejects is
     ``UNKNOWN_SERVER_ERROR`` (Kafka wraps the codec's ``IOException`` in a ``KafkaException``, which
     has no code); a payload that decompresses beyond ``max_uncompressed_bytes`` is refused with
     ``INVALID_RECORD`` (a refka limit: Kafka has none).
   * each record: on a compacted topic (``cleanup.policy=compact``) the key is required
     (``INVALID_RECORD``); with ``message.timestamp.type=CreateTime`` a timestamp other than -1 must
     lie within ``[now - message.timestamp.before.max.ms, now + message.timestamp.after.max.ms]``;
     a producer may not itself send LogAppendTime batches to a LogAppendTime topic, nor -1
     timestamps in a LogAppendTime batch (both ``INVALID_TIMESTAMP``).  Record errors are collected
     for the whole batch and reported together (``RecordValidationError.record_errors``, the
     ``record_errors`` of Produce v8+): ``INVALID_TIMESTAMP`` if any is a timestamp error, else
     ``INVALID_RECORD``.

   The walk keeps only what these checks read (:func:`~reference.records.record.scan_records`:
   offset delta, timestamp delta, null key, per record; an uncompressed batch is walked where it
   lies, without a copy); records are decoded into values only for a batch that is rebuilt.  When
   every record passes, the timestamp checks and the max timestamp follow from the smallest and
   largest timestamp (:func:`records_outcome_from_bounds`); any doubt, and every refusal, goes
   record by record (:func:`records_outcome_record_by_record`), and a property test holds the
   two to the same answers.

   Then offsets are assigned.  Two paths, exactly Kafka's:

   * **in place** when the stored codec equals the batch's codec (``compression.type=producer``, or
     the same codec named explicitly), and for a compressed batch its offset deltas are 0..n-1:
     ``baseOffset`` := log end offset and ``partitionLeaderEpoch`` := the leader's epoch, both outside
     the CRC, so the (compressed) records section is stored byte for byte as the producer sent it.
     The header's ``maxTimestamp`` is set to the largest record timestamp (CreateTime) or to ``now``
     with the LogAppendTime bit (LogAppendTime); only if that changes a byte is the CRC recomputed.
   * **rebuilt** when the topic's codec differs (Kafka recompresses, e.g. a topic with
     ``compression.type=zstd`` receiving gzip) or a compressed batch's offset deltas are not
     0..n-1 (Kafka rewrites such batches rather than refusing them): a new batch with the topic's
     codec and timestamp type, offsets renumbered from the log end offset, each record's key,
     value, headers and timestamp kept, producer id/epoch/sequence and the transactional bit kept.
     A rebuilt batch larger than ``max.message.bytes`` is ``MESSAGE_TOO_LARGE``.

   Finally a batch larger than ``segment.bytes`` is ``RECORD_LIST_TOO_LARGE`` (``UnifiedLog.append``).

Note what Kafka does *not* check, so neither does refka: in an *uncompressed* batch, record offset
deltas are not compared with 0..n-1 (Kafka stores them as sent), and the header's
``baseTimestamp`` is not compared with the records.

Legacy message formats (magic 0 and 1): Kafka 4 removed Produce v0-v2, the only versions that
could carry them (KIP-896); a magic 0/1 message set inside Produce v3+ is refused with
``INVALID_RECORD`` ("only allowed to contain record batches with magic version 2").  refka does the
same in every path and never parses legacy message sets.

Sans-IO: the caller passes the clock (``now_ms``), the log end offset and the leader epoch; nothing
here touches a log.  Arithmetic on timestamps wraps at 64 bits as in Java.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from reference.errors import ErrorCode, Errors, KafkaError
from reference.records.batch import (
    DEFAULT_MAX_UNCOMPRESSED_BYTES,
    NO_TIMESTAMP,
    RECORDS,
    BatchHeader,
    RecordBatch,
    TimestampType,
    assign_offsets_in_place,
    crc_is_valid,
    iter_batches,
    set_max_timestamp_in_place,
)
from reference.records.compression import (
    CompressionType,
    ReadableBuffer,
    TopicCompressionType,
    decompress,
)
from reference.records.decode_errors import (
    DecompressionError,
    DecompressionLimitError,
    InvalidRecordsError,
    RecordsDecodeError,
    UnsupportedMagicError,
)
from reference.records.record import Record, RecordColumns, decode_records, scan_records

INT64_MAX: Final = 2**63 - 1
INT64_MIN: Final = -(2**63)
DEFAULT_MAX_MESSAGE_BYTES: Final = 1024 * 1024 + 12  # Kafka's LogConfig default: 1 MiB + LOG_OVERHEAD
DEFAULT_SEGMENT_BYTES: Final = 1024 * 1024 * 1024
ZSTD_MIN_PRODUCE_VERSION: Final = 7  # KIP-110
MIN_PRODUCE_VERSION_WITH_BATCH_RULES: Final = 3  # Produce v3 introduced RecordBatch v2 (KIP-98)


@dataclass(frozen=True, slots=True)
class RecordValidationConfig:
    """The topic configuration that validation reads (a slice of Kafka's ``LogConfig``)."""

    compression_type: TopicCompressionType = TopicCompressionType.PRODUCER  # compression.type
    compacted: bool = False  # cleanup.policy contains "compact"
    message_timestamp_type: TimestampType = TimestampType.CREATE_TIME  # message.timestamp.type
    message_timestamp_before_max_ms: int = INT64_MAX  # message.timestamp.before.max.ms
    message_timestamp_after_max_ms: int = INT64_MAX  # message.timestamp.after.max.ms
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES  # max.message.bytes
    segment_bytes: int = DEFAULT_SEGMENT_BYTES  # segment.bytes
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES  # refka's decompression bound
    topic_partition: str = ""  # "<topic>-<partition>": LogValidator names it in a keyless record's error


@dataclass(frozen=True, slots=True)
class RecordError:
    """One refused record: its index in the batch and why (Produce v8+ ``record_errors``)."""

    batch_index: int
    message: str


class RecordValidationError(KafkaError):
    """A batch refused because of some of its records; ``record_errors`` lists them all."""

    def __init__(self, error: ErrorCode, message: str, record_errors: list[RecordError]) -> None:
        super().__init__(error, message)
        self.record_errors = record_errors


@dataclass(frozen=True, slots=True)
class ValidatedBatch:
    """What the log appends, and what the producer-state table and the response need.

    ``records`` is the batch to append: the caller's own buffer, modified in place, when it was a
    writable ``bytearray``/``memoryview`` and the in-place path applied; otherwise a new buffer.
    """

    records: bytearray | memoryview | bytes
    header: BatchHeader  # the header as stored (offsets and epoch assigned)
    base_offset: int
    last_offset: int
    record_count: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    last_sequence: int  # base_sequence + count - 1, wrapping at 2^31-1; -1 without a sequence
    is_transactional: bool
    max_timestamp: int
    # Kafka's LogAppendInfo.shallowOffsetOfMaxTimestamp: the batch's last offset (-1 when no
    # record had a timestamp); this is what Kafka puts in the time index.
    shallow_offset_of_max_timestamp: int
    max_timestamp_offset_delta: int  # delta of the first record with max_timestamp (-1: none)
    log_append_time: int  # now_ms for a LogAppendTime topic, else -1
    source_compression: CompressionType
    compression: CompressionType  # the codec stored
    recompressed: bool  # True when the batch was rebuilt (sizes may differ from the request)

    @property
    def size_in_bytes(self) -> int:
        return len(self.records)


# --- Stage 1: the shape of a partition's records in a Produce request ---------------------------


def validate_produce_partition(records: ReadableBuffer, produce_version: int) -> BatchHeader | None:
    """Kafka's ``ProduceRequest.validateRecords``; returns the first batch's header.

    Below v3 Kafka checks nothing here and this returns None.  Kafka 4.0 never gets that far with
    Produce v0-v2: it advertises them in ApiVersions only so that librdkafka enables compression
    (KAFKA-18659) and refuses the requests themselves; that refusal belongs to the request layer.
    """
    if produce_version < MIN_PRODUCE_VERSION_WITH_BATCH_RULES:
        return None
    batches = iter_batches(records, allow_partial_tail=True)
    first = _next_batch_or_error(batches, produce_version)
    if first is None:
        raise KafkaError(
            Errors.INVALID_RECORD,
            f"Produce requests with version {produce_version} must have at least one record batch per partition",
        )
    header = first[1]
    if produce_version < ZSTD_MIN_PRODUCE_VERSION:
        if header.compression_id > CompressionType.ZSTD:
            # Reading the codec to look for zstd, Kafka's CompressionType.forId throws an
            # IllegalArgumentException, which has no error code.  (From v7 on the codec is first
            # read after the CRC check, in stage 2.)
            raise KafkaError(
                Errors.UNKNOWN_SERVER_ERROR, f"Unknown compression type id: {header.compression_id}"
            )
    if produce_version < ZSTD_MIN_PRODUCE_VERSION and header.compression is CompressionType.ZSTD:
        raise KafkaError(
            Errors.UNSUPPORTED_COMPRESSION_TYPE,
            f"Produce requests with version {produce_version} are not allowed to use ZStandard compression",
        )
    if _next_batch_or_error(batches, produce_version) is not None:
        raise KafkaError(
            Errors.INVALID_RECORD,
            f"Produce requests with version {produce_version} are only allowed to contain exactly one "
            "record batch per partition",
        )
    return header


def _next_batch_or_error(
    batches: Iterator[tuple[int, BatchHeader]], produce_version: int
) -> tuple[int, BatchHeader] | None:
    try:
        return next(batches, None)
    except UnsupportedMagicError as error:
        raise KafkaError(
            Errors.INVALID_RECORD,
            f"Produce requests with version {produce_version} are only allowed to contain record "
            "batches with magic version 2",
        ) from error
    except RecordsDecodeError as error:
        raise KafkaError(Errors.CORRUPT_MESSAGE, str(error)) from error


# --- Stages 2 and 3: validate the batch and assign offsets -------------------------------------


def validate_produce(
    records: ReadableBuffer,
    *,
    produce_version: int,
    config: RecordValidationConfig,
    log_end_offset: int,
    partition_leader_epoch: int,
    now_ms: int,
) -> ValidatedBatch:
    """All three stages for one partition of a Produce request, in Kafka's order."""
    validate_produce_partition(records, produce_version)
    return validate_records_for_append(
        records,
        config=config,
        log_end_offset=log_end_offset,
        partition_leader_epoch=partition_leader_epoch,
        now_ms=now_ms,
    )


def validate_records_for_append(
    records: ReadableBuffer,
    *,
    config: RecordValidationConfig,
    log_end_offset: int,
    partition_leader_epoch: int,
    now_ms: int,
) -> ValidatedBatch:
    """Stages 2 and 3 for a leader appending a client's records (origin = client).

    Raises :class:`KafkaError` (or its subclass :class:`RecordValidationError`) with Kafka's code.
    """
    buffer = _writable(records)
    positions = _shallow_validate(buffer, config)
    if not positions:
        raise KafkaError(Errors.INVALID_RECORD, "Record batch has no batches at all")
    if len(positions) > 1:
        raise KafkaError(Errors.INVALID_RECORD, "Compressed outer record has more than one batch")
    header, size = positions[0]
    batch_bytes = buffer if size == len(buffer) else memoryview(buffer)[:size]
    _validate_batch(header)
    source = header.compression
    target = config.compression_type.target_codec(source)
    section = _records_section(batch_bytes, header, config)
    outcome = validate_records(header, _scan(section, header), config, now_ms)
    in_place = source is target and (source is CompressionType.NONE or outcome.offset_deltas_are_sequential)
    if in_place:
        del section  # a view into the batch, which the in-place path writes
        validated = _assign_in_place(
            batch_bytes, header, outcome, config, log_end_offset, partition_leader_epoch, now_ms
        )
    else:
        stored_records = _decode(section, header)
        validated = _rebuild(
            header, stored_records, outcome, target, config, log_end_offset, partition_leader_epoch, now_ms
        )
    if validated.size_in_bytes > config.segment_bytes:
        raise KafkaError(
            Errors.RECORD_LIST_TOO_LARGE,
            f"Message batch size is {validated.size_in_bytes} bytes in append to partition, which exceeds "
            f"the maximum configured segment size of {config.segment_bytes}.",
        )
    return validated


def _writable(records: ReadableBuffer) -> bytearray | memoryview:
    """The caller's buffer when it can be modified in place, else a copy."""
    if isinstance(records, bytearray):
        return records
    if isinstance(records, memoryview) and not records.readonly:
        return records
    return bytearray(records)


def _shallow_validate(
    buffer: bytearray | memoryview, config: RecordValidationConfig
) -> list[tuple[BatchHeader, int]]:
    """Stage 2 over every whole batch (``UnifiedLog.analyzeAndValidateRecords``).

    Returns ``(header, end position)`` per batch; the bytes after the last one are a partial
    batch that is dropped."""
    found: list[tuple[BatchHeader, int]] = []
    try:
        for position, header in iter_batches(buffer, allow_partial_tail=True):
            _shallow_validate_batch(buffer, position, header, config)
            found.append((header, position + header.size_in_bytes))
    except UnsupportedMagicError as error:
        raise KafkaError(
            Errors.INVALID_RECORD,
            "Produce requests are only allowed to contain record batches with magic version 2",
        ) from error
    except RecordsDecodeError as error:
        raise KafkaError(Errors.CORRUPT_MESSAGE, str(error)) from error
    return found


def _shallow_validate_batch(
    buffer: bytearray | memoryview, position: int, header: BatchHeader, config: RecordValidationConfig
) -> None:
    if header.base_offset != 0:
        raise KafkaError(
            Errors.INVALID_RECORD,
            f"The baseOffset of the record batch in the append should be 0, but it is {header.base_offset}",
        )
    if header.size_in_bytes > config.max_message_bytes:
        raise KafkaError(
            Errors.MESSAGE_TOO_LARGE,
            f"The record batch size in the append is {header.size_in_bytes} bytes which exceeds the maximum "
            f"configured value of {config.max_message_bytes}.",
        )
    if not crc_is_valid(buffer, position):
        raise KafkaError(Errors.CORRUPT_MESSAGE, f"Record is corrupt (stored crc = {header.crc})")
    if header.compression_id > CompressionType.ZSTD:
        raise KafkaError(Errors.UNKNOWN_SERVER_ERROR, f"Unknown compression type id: {header.compression_id}")


def _validate_batch(header: BatchHeader) -> None:
    """LogValidator.validateBatch for a client's v2 batch."""
    count_from_offsets = header.last_offset_delta + 1
    if count_from_offsets <= 0:
        raise KafkaError(
            Errors.INVALID_RECORD,
            f"Batch has an invalid offset range: [{header.base_offset}, {header.last_offset}]",
        )
    if header.record_count <= 0:
        raise KafkaError(
            Errors.INVALID_RECORD, f"Invalid reported count for record batch: {header.record_count}"
        )
    if count_from_offsets != header.record_count:
        raise KafkaError(
            Errors.INVALID_RECORD,
            f"Inconsistent batch offset range [{header.base_offset}, {header.last_offset}] and count of "
            f"records {header.record_count}",
        )
    if header.is_control:
        raise KafkaError(Errors.INVALID_RECORD, "Clients are not allowed to write control records")
    if header.has_producer_id and header.base_sequence < 0:
        raise KafkaError(
            Errors.INVALID_RECORD,
            f"Invalid sequence number {header.base_sequence} in record batch with producerId {header.producer_id}",
        )


def _records_section(
    batch: bytearray | memoryview, header: BatchHeader, config: RecordValidationConfig
) -> ReadableBuffer:
    """The batch's records, decompressed; for an uncompressed batch a view of its own bytes (no copy)."""
    stored = memoryview(batch)[RECORDS:]
    try:
        if header.compression is CompressionType.NONE:
            if len(stored) > config.max_uncompressed_bytes:
                raise DecompressionLimitError(f"{len(stored)} bytes exceed the limit of {config.max_uncompressed_bytes}")
            return stored
        return decompress(header.compression, stored, config.max_uncompressed_bytes)
    except DecompressionLimitError as error:
        raise KafkaError(Errors.INVALID_RECORD, f"refka refuses the batch: {error}") from error
    except DecompressionError as error:
        raise KafkaError(
            Errors.UNKNOWN_SERVER_ERROR, f"Failed to decompress record stream: {error}"
        ) from error


def _scan(section: ReadableBuffer, header: BatchHeader) -> RecordColumns:
    """Walk every record (Kafka parses each one); a record that does not parse is INVALID_RECORD."""
    try:
        return scan_records(section, header.record_count)
    except InvalidRecordsError as error:
        raise KafkaError(Errors.INVALID_RECORD, str(error)) from error


def _decode(section: ReadableBuffer, header: BatchHeader) -> list[Record]:
    """The records themselves, for a batch that must be rebuilt (already scanned, so they parse)."""
    try:
        return decode_records(section, header.record_count)
    except InvalidRecordsError as error:
        raise KafkaError(Errors.INVALID_RECORD, str(error)) from error


@dataclass(frozen=True, slots=True)
class RecordsOutcome:
    """What the records of a valid batch tell the offset assignment."""

    max_timestamp: int
    max_timestamp_offset_delta: int  # of the first record with max_timestamp, -1 when none has one
    offset_deltas_are_sequential: bool  # 0..n-1, needed to keep a compressed batch in place


def validate_records(
    header: BatchHeader, records: RecordColumns, config: RecordValidationConfig, now_ms: int
) -> RecordsOutcome:
    """LogValidator.validateRecord for each record; all record errors are reported together.

    A batch whose every record is valid is answered from its extremes when that is exact
    (:func:`records_outcome_from_bounds`); otherwise, and always when something is wrong, each
    record is checked on its own (:func:`records_outcome_record_by_record`)."""
    outcome = records_outcome_from_bounds(header, records, config, now_ms)
    if outcome is not None:
        return outcome
    return records_outcome_record_by_record(header, records, config, now_ms)


def records_outcome_from_bounds(
    header: BatchHeader, records: RecordColumns, config: RecordValidationConfig, now_ms: int
) -> RecordsOutcome | None:
    """The outcome of a CreateTime batch from its smallest and largest timestamp, or None when
    that cannot decide: a null key on a compacted topic, a timestamp out of bounds, a LogAppendTime
    batch, or arithmetic that would wrap at 64 bits.  When it decides it agrees exactly with
    :func:`records_outcome_record_by_record` (a property test holds them together): every
    timestamp lies between the two extremes, and the bounds check is monotonic in between."""
    deltas = records.timestamp_deltas
    if not deltas or header.timestamp_type is not TimestampType.CREATE_TIME:
        return None
    if config.compacted and records.null_key_indexes:
        return None
    smallest_delta, largest_delta = min(deltas), max(deltas)
    earliest, latest = header.base_timestamp + smallest_delta, header.base_timestamp + largest_delta
    if earliest < INT64_MIN or latest > INT64_MAX:
        return None  # the record timestamps wrap as Java longs: record by record
    if config.message_timestamp_type is TimestampType.CREATE_TIME:
        oldest_age, newest_lead = now_ms - earliest, latest - now_ms
        if not (INT64_MIN < -newest_lead and oldest_age <= INT64_MAX):
            return None
        if oldest_age > config.message_timestamp_before_max_ms or newest_lead > config.message_timestamp_after_max_ms:
            return None
    sequential = records.offset_deltas == list(range(len(deltas)))
    if latest <= NO_TIMESTAMP:
        return RecordsOutcome(NO_TIMESTAMP, -1, sequential)
    return RecordsOutcome(latest, records.offset_deltas[deltas.index(largest_delta)], sequential)


def records_outcome_record_by_record(
    header: BatchHeader, records: RecordColumns, config: RecordValidationConfig, now_ms: int
) -> RecordsOutcome:
    """The plain rule, one record at a time (raises :class:`RecordValidationError`)."""
    errors: list[tuple[ErrorCode, RecordError]] = []
    max_timestamp = NO_TIMESTAMP
    max_timestamp_offset_delta = -1
    sequential = True
    null_keys = set(records.null_key_indexes)
    for index, (offset_delta, timestamp_delta) in enumerate(
        zip(records.offset_deltas, records.timestamp_deltas, strict=True)
    ):
        timestamp = record_timestamp(header, timestamp_delta)
        error = _validate_key(index in null_keys, index, config) or _validate_timestamp(
            header, offset_delta, timestamp, index, config, now_ms
        )
        if error is not None:
            errors.append(error)
            continue
        if timestamp > max_timestamp:
            max_timestamp, max_timestamp_offset_delta = timestamp, offset_delta
        if offset_delta != index:
            sequential = False
    if errors:
        _raise_record_errors(errors)
    return RecordsOutcome(max_timestamp, max_timestamp_offset_delta, sequential)


def record_timestamp(header: BatchHeader, timestamp_delta: int) -> int:
    """A record's timestamp as Kafka reads it: the batch's max timestamp for LogAppendTime
    batches, else ``baseTimestamp + timestampDelta`` (64-bit wrapping, as a Java long)."""
    if header.timestamp_type is TimestampType.LOG_APPEND_TIME:
        return header.max_timestamp
    return _int64(header.base_timestamp + timestamp_delta)


def _validate_key(key_is_null: bool, index: int, config: RecordValidationConfig) -> tuple[ErrorCode, RecordError] | None:
    if config.compacted and key_is_null:
        return Errors.INVALID_RECORD, RecordError(
            index, f"Compacted topic cannot accept message without key in topic partition {config.topic_partition}")
    return None


def _validate_timestamp(
    header: BatchHeader,
    offset_delta: int,
    timestamp: int,
    index: int,
    config: RecordValidationConfig,
    now_ms: int,
) -> tuple[ErrorCode, RecordError] | None:
    if config.message_timestamp_type is TimestampType.CREATE_TIME and timestamp != NO_TIMESTAMP:
        difference = _int64(now_ms - timestamp)
        too_old = difference > config.message_timestamp_before_max_ms
        too_new = _int64(-difference) > config.message_timestamp_after_max_ms
        if too_old or too_new:
            low = _int64(now_ms - config.message_timestamp_before_max_ms)
            high = _int64(now_ms + config.message_timestamp_after_max_ms)
            return Errors.INVALID_TIMESTAMP, RecordError(
                index,
                f"Timestamp {timestamp} of message with offset {header.base_offset + offset_delta} is "
                f"out of range. The timestamp should be within [{low}, {high}]",
            )
    elif header.timestamp_type is TimestampType.LOG_APPEND_TIME:
        return Errors.INVALID_TIMESTAMP, RecordError(
            index,
            "Invalid timestamp type in message. Producer should not set timestamp type to LogAppendTime.",
        )
    return None


def _raise_record_errors(errors: list[tuple[ErrorCode, RecordError]]) -> None:
    record_errors = [record_error for _, record_error in errors]
    if any(code is Errors.INVALID_TIMESTAMP for code, _ in errors):
        raise RecordValidationError(
            Errors.INVALID_TIMESTAMP,
            "One or more records have been rejected due to invalid timestamp",
            record_errors,
        )
    shown = ", ".join(
        f"RecordError(batchIndex={e.batch_index}, message='{e.message}')" for e in record_errors[:3]
    )
    raise RecordValidationError(
        Errors.INVALID_RECORD,
        f"One or more records have been rejected due to {len(record_errors)} record errors in total, and only "
        f"showing the first three errors at most: [{shown}]",
        record_errors,
    )


def _assign_in_place(
    batch: bytearray | memoryview,
    header: BatchHeader,
    outcome: RecordsOutcome,
    config: RecordValidationConfig,
    log_end_offset: int,
    partition_leader_epoch: int,
    now_ms: int,
) -> ValidatedBatch:
    """Offsets and epoch outside the CRC; max timestamp (and the CRC, if it changes) inside."""
    assign_offsets_in_place(batch, 0, log_end_offset, partition_leader_epoch)
    log_append = config.message_timestamp_type is TimestampType.LOG_APPEND_TIME
    max_timestamp = now_ms if log_append else outcome.max_timestamp
    set_max_timestamp_in_place(batch, 0, config.message_timestamp_type, max_timestamp)
    stored = BatchHeader.decode(batch)
    has_timestamp = (
        log_append or header.compression is not CompressionType.NONE or max_timestamp > NO_TIMESTAMP
    )
    return _result(
        batch,
        stored,
        max_timestamp=max_timestamp,
        shallow_offset_of_max_timestamp=stored.last_offset if has_timestamp else -1,
        max_timestamp_offset_delta=0 if log_append else outcome.max_timestamp_offset_delta,
        log_append_time=now_ms if log_append else NO_TIMESTAMP,
        source=header.compression,
        recompressed=False,
    )


def _rebuild(
    header: BatchHeader,
    records: list[Record],
    outcome: RecordsOutcome,
    target: CompressionType,
    config: RecordValidationConfig,
    log_end_offset: int,
    partition_leader_epoch: int,
    now_ms: int,
) -> ValidatedBatch:
    """A new batch with the topic's codec and timestamp type (LogValidator.buildRecordsAndAssignOffsets)."""
    timestamps = [record_timestamp(header, record.timestamp_delta) for record in records]
    log_append = config.message_timestamp_type is TimestampType.LOG_APPEND_TIME
    max_timestamp = now_ms if log_append else max([NO_TIMESTAMP, *timestamps])
    rebuilt = RecordBatch(
        records=tuple(
            Record(index, _int64(timestamp - timestamps[0]), record.key, record.value, record.headers)
            for index, (record, timestamp) in enumerate(zip(records, timestamps, strict=True))
        ),
        last_offset_delta=len(records) - 1,
        base_timestamp=timestamps[0],
        max_timestamp=max_timestamp,
        base_offset=log_end_offset,
        partition_leader_epoch=partition_leader_epoch,
        compression=target,
        timestamp_type=config.message_timestamp_type,
        is_transactional=header.is_transactional,
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
    ).encode()
    if len(rebuilt) > config.max_message_bytes:
        raise KafkaError(
            Errors.MESSAGE_TOO_LARGE,
            f"Message batch size is {len(rebuilt)} bytes in append to partition which exceeds the maximum "
            f"configured size of {config.max_message_bytes}.",
        )
    stored = BatchHeader.decode(rebuilt)
    max_delta = 0 if log_append else (timestamps.index(max_timestamp) if max_timestamp in timestamps else -1)
    return _result(
        rebuilt,
        stored,
        max_timestamp=max_timestamp,
        shallow_offset_of_max_timestamp=stored.last_offset,
        max_timestamp_offset_delta=max_delta,
        log_append_time=now_ms if log_append else NO_TIMESTAMP,
        source=header.compression,
        recompressed=True,
    )


def _result(
    records: bytearray | memoryview | bytes,
    stored: BatchHeader,
    *,
    max_timestamp: int,
    shallow_offset_of_max_timestamp: int,
    max_timestamp_offset_delta: int,
    log_append_time: int,
    source: CompressionType,
    recompressed: bool,
) -> ValidatedBatch:
    return ValidatedBatch(
        records=records,
        header=stored,
        base_offset=stored.base_offset,
        last_offset=stored.last_offset,
        record_count=stored.record_count,
        producer_id=stored.producer_id,
        producer_epoch=stored.producer_epoch,
        base_sequence=stored.base_sequence,
        last_sequence=stored.last_sequence,
        is_transactional=stored.is_transactional,
        max_timestamp=max_timestamp,
        shallow_offset_of_max_timestamp=shallow_offset_of_max_timestamp,
        max_timestamp_offset_delta=max_timestamp_offset_delta,
        log_append_time=log_append_time,
        source_compression=source,
        compression=stored.compression,
        recompressed=recompressed,
    )


def _int64(value: int) -> int:
    """Wrap to a signed 64-bit integer, as Java's long arithmetic does."""
    return (value + 2**63) % 2**64 - 2**63
