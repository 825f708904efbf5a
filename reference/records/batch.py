"""RecordBatch v2 (magic 2): the unit Kafka stores, replicates and serves.

Theory of operation
-------------------
Since KIP-98 (Kafka 0.11) every produce request, fetch response and log segment carries
*record batches*.  Each batch is a fixed 61-byte header followed by its records section::

    RecordBatch =>
      baseOffset           int64    offset  0   assigned by the leader (0 from a producer)
      batchLength          int32    offset  8   bytes after this field
      partitionLeaderEpoch int32    offset 12   stamped by the leader
      magic                int8     offset 16   2
      crc                  uint32   offset 17   CRC-32C of attributes .. end of batch
      attributes           int16    offset 21   see Attributes
      lastOffsetDelta      int32    offset 23   recordCount - 1
      baseTimestamp        int64    offset 27
      maxTimestamp         int64    offset 35   max record timestamp, or the LogAppendTime
      producerId           int64    offset 43   -1 when not idempotent
      producerEpoch        int16    offset 51
      baseSequence         int32    offset 53   sequence of the first record, -1 without a producer
      recordCount          int32    offset 57
      records              [Record] offset 61   compressed as a whole when attributes say so

The CRC covers the bytes from ``attributes`` to the end of the batch.  ``baseOffset`` and
``partitionLeaderEpoch`` lie *before* it, which is why the leader can assign offsets and stamp its
epoch in place (:func:`assign_offsets_in_place`) without recomputing the CRC, and without touching
a compressed records section.  Changing the timestamp type or the max timestamp (LogAppendTime)
does need a new CRC (:func:`set_max_timestamp_in_place`).

``batchLength`` is the size of everything after itself, so a batch occupies
``LOG_OVERHEAD + batchLength`` bytes and batches are simply concatenated in produce requests, fetch
responses and segment files.  :func:`iter_batches` walks such a buffer reading only headers; a
buffer may end inside a batch (a fetch response cut at ``max_bytes``, a log torn by a crash), and
the caller chooses whether that partial tail is an error (``allow_partial_tail``).  Log recovery
needs "how many leading bytes are whole, CRC-valid batches": :func:`valid_prefix_length`.

Records are decoded (and decompressed) only on demand: :meth:`RecordBatch.decode` for the full
value, :mod:`reference.records.record` for the varint layout of one record.  Header parsing, CRC
checking and in-place offset assignment do no per-record Python work.

Invariants kept by the encoder (:func:`build_batch`, :meth:`RecordBatch.encode`)
-------------------------------------------------------------------------------
* ``batchLength == len(batch) - 12`` and the CRC matches.
* ``lastOffsetDelta == recordCount - 1`` and record ``i`` has offset delta ``i``.
* ``maxTimestamp`` is the largest record timestamp (CreateTime) or the append time (LogAppendTime).

Decoding never trusts a length: every length is checked against the bytes actually present before
anything is sliced or allocated, and all failures are :mod:`reference.records.decode_errors`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final

import crc32c

from reference.records.compression import CompressionType, ReadableBuffer, compress, decompress
from reference.records.decode_errors import (
    CorruptBatchError,
    InvalidRecordsError,
    RecordsDecodeError,
    TruncatedBatchError,
    UnknownCompressionError,
    UnsupportedMagicError,
)
from reference.records.record import Header, Record, decode_records, encode_record, encode_records

__all__ = [
    "BASE_OFFSET",
    "BATCH_LENGTH",
    "PARTITION_LEADER_EPOCH",
    "MAGIC",
    "CRC",
    "ATTRIBUTES",
    "LAST_OFFSET_DELTA",
    "BASE_TIMESTAMP",
    "MAX_TIMESTAMP",
    "PRODUCER_ID",
    "PRODUCER_EPOCH",
    "BASE_SEQUENCE",
    "RECORD_COUNT",
    "RECORDS",
    "LOG_OVERHEAD",
    "RECORD_BATCH_OVERHEAD",
    "HEADER_SIZE_UP_TO_MAGIC",
    "MIN_BATCH_LENGTH",
    "CURRENT_MAGIC",
    "NO_PRODUCER_ID",
    "NO_PRODUCER_EPOCH",
    "NO_SEQUENCE",
    "NO_PARTITION_LEADER_EPOCH",
    "NO_TIMESTAMP",
    "Attributes",
    "TimestampType",
    "BatchHeader",
    "RecordsDecodeError",
    "TruncatedBatchError",
    "CorruptBatchError",
    "UnsupportedMagicError",
    "iter_batches",
    "valid_prefix_length",
    "crc_is_valid",
    "compute_crc",
    "assign_offsets_in_place",
    "set_max_timestamp_in_place",
    "increment_sequence",
    "decrement_sequence",
    "DEFAULT_MAX_UNCOMPRESSED_BYTES",
    "Header",
    "Record",
    "SimpleRecord",
    "RecordBatch",
    "iter_record_batches",
    "records_section",
    "attributes_for",
    "build_batch",
]

# --- Layout: byte offsets of each header field, from the start of the batch -------------------
BASE_OFFSET: Final = 0
BATCH_LENGTH: Final = 8
PARTITION_LEADER_EPOCH: Final = 12
MAGIC: Final = 16
CRC: Final = 17
ATTRIBUTES: Final = 21
LAST_OFFSET_DELTA: Final = 23
BASE_TIMESTAMP: Final = 27
MAX_TIMESTAMP: Final = 35
PRODUCER_ID: Final = 43
PRODUCER_EPOCH: Final = 51
BASE_SEQUENCE: Final = 53
RECORD_COUNT: Final = 57
RECORDS: Final = 61

LOG_OVERHEAD: Final = 12  # baseOffset + batchLength: the framing every message format shares
RECORD_BATCH_OVERHEAD: Final = RECORDS  # the v2 header, 61 bytes
HEADER_SIZE_UP_TO_MAGIC: Final = MAGIC + 1  # enough bytes to tell the message format
MIN_BATCH_LENGTH: Final = RECORD_BATCH_OVERHEAD - LOG_OVERHEAD  # smallest valid batchLength (49)
# Kafka's ByteBufferLogInputStream refuses a size below the smallest legacy (v0) record.
LEGACY_RECORD_OVERHEAD_V0: Final = 14

CURRENT_MAGIC: Final = 2

# --- Sentinels (Kafka's RecordBatch.NO_*) -------------------------------------------------------
NO_PRODUCER_ID: Final = -1
NO_PRODUCER_EPOCH: Final = -1
NO_SEQUENCE: Final = -1
NO_PARTITION_LEADER_EPOCH: Final = -1
NO_TIMESTAMP: Final = -1

_INT32_MAX: Final = 2**31 - 1

# The whole header in one struct, fields in wire order (big-endian, no padding).
_HEADER = struct.Struct(">qiibIhiqqqhii")
assert _HEADER.size == RECORD_BATCH_OVERHEAD
_INT64 = struct.Struct(">q")
_INT32 = struct.Struct(">i")
_UINT32 = struct.Struct(">I")
_INT16 = struct.Struct(">h")
_INT8 = struct.Struct(">b")


class Attributes:
    """Bits of the int16 ``attributes`` field (only the low byte is used)."""

    COMPRESSION_MASK: Final = 0x07  # bits 0-2: CompressionType id (5-7 are invalid)
    TIMESTAMP_TYPE: Final = 0x08  # bit 3: set = LogAppendTime, clear = CreateTime
    TRANSACTIONAL: Final = 0x10  # bit 4: part of a transaction (KIP-98)
    CONTROL: Final = 0x20  # bit 5: holds control records (transaction markers)
    DELETE_HORIZON: Final = 0x40  # bit 6: baseTimestamp is the delete horizon (KIP-534)


class TimestampType(IntEnum):
    """Which clock a batch's timestamps come from (``message.timestamp.type``)."""

    NO_TIMESTAMP_TYPE = -1
    CREATE_TIME = 0
    LOG_APPEND_TIME = 1

    @property
    def config_name(self) -> str:
        """The topic-config spelling: ``CreateTime`` or ``LogAppendTime``."""
        return {TimestampType.CREATE_TIME: "CreateTime", TimestampType.LOG_APPEND_TIME: "LogAppendTime"}.get(
            self, "NoTimestampType"
        )

    @classmethod
    def from_config(cls, value: str) -> TimestampType:
        """Parse ``message.timestamp.type`` (``CreateTime`` or ``LogAppendTime``)."""
        for member in (cls.CREATE_TIME, cls.LOG_APPEND_TIME):
            if member.config_name == value:
                return member
        raise ValueError(f"Unknown message.timestamp.type {value!r}; allowed: CreateTime, LogAppendTime")


def increment_sequence(sequence: int, increment: int) -> int:
    """``sequence + increment`` wrapping from 2^31-1 to 0 (Kafka's DefaultRecordBatch.incrementSequence)."""
    if sequence > _INT32_MAX - increment:
        return increment - (_INT32_MAX - sequence) - 1
    return sequence + increment


def decrement_sequence(sequence: int, decrement: int) -> int:
    """``sequence - decrement`` wrapping below 0 to 2^31-1 (DefaultRecordBatch.decrementSequence)."""
    if sequence < decrement:
        return _INT32_MAX - (decrement - sequence) + 1
    return sequence - decrement


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """The 61-byte v2 batch header, every field by its Kafka name."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @classmethod
    def decode(cls, buffer: ReadableBuffer, position: int = 0) -> BatchHeader:
        """Parse the header of the batch starting at ``position``.

        Checks only what is needed to read the fields safely: the 61 bytes are present, the magic
        byte is 2 and ``batchLength`` is at least the header's own size.  The batch body may be
        absent (use :func:`iter_batches` to require whole batches).

        Raises :class:`TruncatedBatchError` (fewer than 61 bytes), :class:`UnsupportedMagicError`
        (magic 0 or 1), :class:`CorruptBatchError` (other magic, batchLength below 49).
        """
        available = len(buffer) - position
        if position < 0 or available < RECORD_BATCH_OVERHEAD:
            _check_magic_if_present(buffer, position)
            raise TruncatedBatchError(
                f"a batch header needs {RECORD_BATCH_OVERHEAD} bytes, {max(available, 0)} available"
            )
        header = cls(*_HEADER.unpack_from(buffer, position))
        _check_magic(header.magic)
        if header.batch_length < MIN_BATCH_LENGTH:
            raise CorruptBatchError(
                f"batchLength {header.batch_length} is below the v2 minimum of {MIN_BATCH_LENGTH}"
            )
        return header

    def encode(self) -> bytes:
        """The 61 header bytes exactly as stored (including the stored CRC)."""
        return _HEADER.pack(
            self.base_offset,
            self.batch_length,
            self.partition_leader_epoch,
            self.magic,
            self.crc,
            self.attributes,
            self.last_offset_delta,
            self.base_timestamp,
            self.max_timestamp,
            self.producer_id,
            self.producer_epoch,
            self.base_sequence,
            self.record_count,
        )

    @property
    def size_in_bytes(self) -> int:
        """Bytes the whole batch occupies: ``LOG_OVERHEAD + batchLength``."""
        return LOG_OVERHEAD + self.batch_length

    @property
    def last_offset(self) -> int:
        """Offset of the batch's last record: ``baseOffset + lastOffsetDelta``."""
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        """The offset after this batch (``lastOffset + 1``)."""
        return self.last_offset + 1

    @property
    def compression_id(self) -> int:
        """The raw codec bits (0-7), for code that must not raise on 5-7."""
        return self.attributes & Attributes.COMPRESSION_MASK

    @property
    def compression(self) -> CompressionType:
        """The codec; raises :class:`UnknownCompressionError` for the unassigned ids 5-7."""
        codec_id = self.compression_id
        if codec_id > CompressionType.ZSTD:
            raise UnknownCompressionError(codec_id)
        return CompressionType(codec_id)

    @property
    def timestamp_type(self) -> TimestampType:
        """LogAppendTime when attribute bit 3 is set, else CreateTime."""
        if self.attributes & Attributes.TIMESTAMP_TYPE:
            return TimestampType.LOG_APPEND_TIME
        return TimestampType.CREATE_TIME

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & Attributes.TRANSACTIONAL)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & Attributes.CONTROL)

    @property
    def has_delete_horizon(self) -> bool:
        return bool(self.attributes & Attributes.DELETE_HORIZON)

    @property
    def has_producer_id(self) -> bool:
        """Idempotent or transactional: ``producerId`` is not -1."""
        return self.producer_id > NO_PRODUCER_ID

    @property
    def last_sequence(self) -> int:
        """Sequence of the last record, wrapping at 2^31-1; -1 when ``baseSequence`` is -1."""
        if self.base_sequence == NO_SEQUENCE:
            return NO_SEQUENCE
        return increment_sequence(self.base_sequence, self.last_offset_delta)


def _check_magic(magic: int) -> None:
    """Kafka 4 reads only magic 2; 0 and 1 are legacy formats, anything else is corrupt."""
    if magic == CURRENT_MAGIC:
        return
    if magic in (0, 1):
        raise UnsupportedMagicError(magic)
    raise CorruptBatchError(f"Invalid magic found in record: {magic}")


def _check_magic_if_present(buffer: ReadableBuffer, position: int) -> None:
    if 0 <= position and len(buffer) - position >= HEADER_SIZE_UP_TO_MAGIC:
        _check_magic(_INT8.unpack_from(buffer, position + MAGIC)[0])


def _next_batch_size(buffer: ReadableBuffer, position: int) -> int | None:
    """Size of the batch at ``position``, or None when its framing is not all in the buffer.

    Mirrors Kafka's ``ByteBufferLogInputStream.nextBatchSize``: a size below 14 (the smallest
    legacy record) or a magic byte outside 0..2 is corrupt.  The framing (offset, size) is the same
    for every message format, so a legacy (magic 0/1) batch is still framed here; it is refused
    when its header is read (:func:`_check_whole_batch`).
    """
    remaining = len(buffer) - position
    if remaining < LOG_OVERHEAD:
        return None
    batch_length: int = _INT32.unpack_from(buffer, position + BATCH_LENGTH)[0]
    if batch_length < LEGACY_RECORD_OVERHEAD_V0:
        raise CorruptBatchError(
            f"Record size {batch_length} is less than the minimum record overhead ({LEGACY_RECORD_OVERHEAD_V0})"
        )
    if remaining < HEADER_SIZE_UP_TO_MAGIC:
        return None
    magic: int = _INT8.unpack_from(buffer, position + MAGIC)[0]
    if magic < 0 or magic > CURRENT_MAGIC:
        raise CorruptBatchError(f"Invalid magic found in record: {magic}")
    return LOG_OVERHEAD + batch_length


def _check_whole_batch(buffer: ReadableBuffer, position: int) -> int:
    """Size of the batch at ``position``, which must be whole and a v2 batch of at least 61 bytes.

    Raises :class:`TruncatedBatchError`, :class:`CorruptBatchError` or :class:`UnsupportedMagicError`.
    """
    size = _next_batch_size(buffer, position)
    if size is None or size > len(buffer) - position:
        raise TruncatedBatchError(f"the batch at position {position} is not whole in the buffer")
    _check_magic(_INT8.unpack_from(buffer, position + MAGIC)[0])
    if size < RECORD_BATCH_OVERHEAD:
        raise CorruptBatchError(
            f"Record batch is corrupt (the size {size} is smaller than the minimum allowed overhead "
            f"{RECORD_BATCH_OVERHEAD})"
        )
    return size


def iter_batches(
    buffer: ReadableBuffer, *, allow_partial_tail: bool = False
) -> Iterator[tuple[int, BatchHeader]]:
    """Yield ``(position, header)`` for each whole batch in a buffer of concatenated batches.

    Reads headers only (no CRC check, no records).  At the end of the buffer:

    * ``allow_partial_tail=False`` (segment reads that must be whole): a tail of 1..N bytes that
      is not a whole batch raises :class:`TruncatedBatchError`;
    * ``allow_partial_tail=True`` (produce requests, fetch responses, log recovery): iteration
      stops cleanly before the partial batch, as Kafka's ``ByteBufferLogInputStream`` does.

    A malformed whole batch raises :class:`CorruptBatchError` (size below the header, magic outside
    0..2) or :class:`UnsupportedMagicError` (magic 0 or 1) either way.
    """
    position = 0
    end = len(buffer)
    while position < end:
        size = _next_batch_size(buffer, position)
        if size is None or size > end - position:
            if allow_partial_tail:
                return
            raise TruncatedBatchError(
                f"partial batch at position {position}: {end - position} bytes of "
                f"{'an unknown number' if size is None else size}"
            )
        _check_whole_batch(buffer, position)
        yield position, BatchHeader.decode(buffer, position)
        position += size


def valid_prefix_length(buffer: ReadableBuffer, *, check_crc: bool = True) -> int:
    """Length of the longest prefix of ``buffer`` made of whole, well-formed (and, by default,
    CRC-valid) v2 batches.  Log recovery truncates a segment to this length."""
    valid = 0
    try:
        for position, header in iter_batches(buffer, allow_partial_tail=True):
            if check_crc and not crc_is_valid(buffer, position):
                break
            valid = position + header.size_in_bytes
    except RecordsDecodeError:
        pass
    return valid


def compute_crc(buffer: ReadableBuffer, position: int = 0) -> int:
    """CRC-32C of the batch at ``position``, over ``attributes`` to the batch's end."""
    size = _check_whole_batch(buffer, position)
    return int(crc32c.crc32c(memoryview(buffer)[position + ATTRIBUTES : position + size]))


def crc_is_valid(buffer: ReadableBuffer, position: int = 0) -> bool:
    """Whether the stored CRC of the batch at ``position`` matches its contents.

    Raises :class:`TruncatedBatchError` when the batch is not whole in the buffer, and the other
    :class:`RecordsDecodeError` subclasses when its framing (size, magic) is malformed.
    """
    computed = compute_crc(buffer, position)
    (stored,) = _UINT32.unpack_from(buffer, position + CRC)
    return bool(computed == stored)


def assign_offsets_in_place(
    buffer: bytearray | memoryview, position: int, base_offset: int, partition_leader_epoch: int
) -> None:
    """Write ``baseOffset`` and ``partitionLeaderEpoch`` of the batch at ``position``.

    Both fields are outside the CRC, so the CRC stays valid and a compressed records section is
    not touched: this is how a leader appends a producer's batch (LogValidator's in-place path).
    Record offsets are ``baseOffset + offsetDelta``, so they move with it.
    """
    _INT64.pack_into(buffer, position + BASE_OFFSET, base_offset)
    _INT32.pack_into(buffer, position + PARTITION_LEADER_EPOCH, partition_leader_epoch)


def set_max_timestamp_in_place(
    buffer: bytearray | memoryview, position: int, timestamp_type: TimestampType, max_timestamp: int
) -> bool:
    """Set the timestamp-type bit and ``maxTimestamp`` of the batch at ``position``.

    Both are inside the CRC, so the CRC is recomputed, but only when something changes (Kafka's
    ``DefaultRecordBatch.setMaxTimestamp``).  Returns whether the batch was rewritten.  Used for
    ``message.timestamp.type=LogAppendTime`` (stamp the append time) and to correct a CreateTime
    batch whose header disagrees with its records.
    """
    (attributes,) = _INT16.unpack_from(buffer, position + ATTRIBUTES)
    (current_max,) = _INT64.unpack_from(buffer, position + MAX_TIMESTAMP)
    if timestamp_type is TimestampType.LOG_APPEND_TIME:
        new_attributes = attributes | Attributes.TIMESTAMP_TYPE
    else:
        new_attributes = attributes & ~Attributes.TIMESTAMP_TYPE
    if new_attributes == attributes and current_max == max_timestamp:
        return False
    _INT16.pack_into(buffer, position + ATTRIBUTES, new_attributes)
    _INT64.pack_into(buffer, position + MAX_TIMESTAMP, max_timestamp)
    _UINT32.pack_into(buffer, position + CRC, compute_crc(buffer, position))
    return True


# --- Whole batches with their records --------------------------------------------------------

# How far refka lets one batch's records section decompress (a decompression bomb is an error,
# not an out-of-memory).  Kafka itself has no such bound; see compression.py.
DEFAULT_MAX_UNCOMPRESSED_BYTES: Final = 64 * 1024 * 1024


def attributes_for(
    compression: CompressionType,
    timestamp_type: TimestampType,
    *,
    transactional: bool = False,
    control: bool = False,
    delete_horizon: bool = False,
) -> int:
    """The attributes int16 for these properties (Kafka's ``DefaultRecordBatch.computeAttributes``)."""
    attributes = int(compression) & Attributes.COMPRESSION_MASK
    if timestamp_type is TimestampType.LOG_APPEND_TIME:
        attributes |= Attributes.TIMESTAMP_TYPE
    if transactional:
        attributes |= Attributes.TRANSACTIONAL
    if control:
        attributes |= Attributes.CONTROL
    if delete_horizon:
        attributes |= Attributes.DELETE_HORIZON
    return attributes


@dataclass(frozen=True, slots=True)
class RecordBatch:
    """A decoded batch: its header fields (without the derived length and CRC) and its records.

    ``encode()`` computes ``batchLength``, ``recordCount`` and the CRC, compresses the records
    section with ``compression`` and returns the wire bytes.  ``last_offset_delta`` is kept as
    stored because compaction may leave a batch with fewer records than its offset range.
    """

    records: tuple[Record, ...]
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    base_offset: int = 0
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH
    compression: CompressionType = CompressionType.NONE
    timestamp_type: TimestampType = TimestampType.CREATE_TIME
    is_transactional: bool = False
    is_control: bool = False
    has_delete_horizon: bool = False
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH
    base_sequence: int = NO_SEQUENCE

    @property
    def attributes(self) -> int:
        return attributes_for(
            self.compression,
            self.timestamp_type,
            transactional=self.is_transactional,
            control=self.is_control,
            delete_horizon=self.has_delete_horizon,
        )

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    def record_offset(self, record: Record) -> int:
        return self.base_offset + record.offset_delta

    def record_timestamp(self, record: Record) -> int:
        """A record's timestamp: the append time for LogAppendTime batches, else base + delta."""
        if self.timestamp_type is TimestampType.LOG_APPEND_TIME:
            return self.max_timestamp
        return self.base_timestamp + record.timestamp_delta

    def encode(self) -> bytes:
        """The batch's wire bytes (records compressed with ``compression``)."""
        return _frame_records(
            encode_records(self.records),
            record_count=len(self.records),
            compression=self.compression,
            attributes=self.attributes,
            last_offset_delta=self.last_offset_delta,
            base_timestamp=self.base_timestamp,
            max_timestamp=self.max_timestamp,
            base_offset=self.base_offset,
            partition_leader_epoch=self.partition_leader_epoch,
            producer_id=self.producer_id,
            producer_epoch=self.producer_epoch,
            base_sequence=self.base_sequence,
        )

    @classmethod
    def decode(
        cls,
        buffer: ReadableBuffer,
        position: int = 0,
        *,
        verify_crc: bool = True,
        max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
    ) -> RecordBatch:
        """Decode (and decompress) the whole batch at ``position``.

        Raises a :class:`RecordsDecodeError` subclass for anything malformed: a partial batch,
        a bad header, a CRC mismatch (when ``verify_crc``), an unknown codec, a payload that does
        not decompress or decompresses past ``max_uncompressed_bytes``, malformed records.
        """
        size = _check_whole_batch(buffer, position)
        header = BatchHeader.decode(buffer, position)
        if verify_crc and not crc_is_valid(buffer, position):
            raise CorruptBatchError(
                f"Record is corrupt (stored crc = {header.crc}, computed crc = "
                f"{compute_crc(buffer, position)})"
            )
        return cls.from_header(
            header, records_section(buffer, position, size, header, max_uncompressed_bytes)
        )

    @classmethod
    def from_header(cls, header: BatchHeader, records: Sequence[Record]) -> RecordBatch:
        return cls(
            records=tuple(records),
            last_offset_delta=header.last_offset_delta,
            base_timestamp=header.base_timestamp,
            max_timestamp=header.max_timestamp,
            base_offset=header.base_offset,
            partition_leader_epoch=header.partition_leader_epoch,
            compression=header.compression,
            timestamp_type=header.timestamp_type,
            is_transactional=header.is_transactional,
            is_control=header.is_control,
            has_delete_horizon=header.has_delete_horizon,
            producer_id=header.producer_id,
            producer_epoch=header.producer_epoch,
            base_sequence=header.base_sequence,
        )


def records_section(
    buffer: ReadableBuffer,
    position: int,
    size: int,
    header: BatchHeader,
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
) -> list[Record]:
    """Decompress and decode the records of the whole batch at ``position`` (``size`` bytes)."""
    if header.record_count < 0:
        raise InvalidRecordsError(f"Found invalid record count {header.record_count} in magic v2 batch")
    stored = memoryview(buffer)[position + RECORDS : position + size]
    section = decompress(header.compression, stored, max_uncompressed_bytes)
    return decode_records(section, header.record_count)


def iter_record_batches(
    buffer: ReadableBuffer,
    *,
    allow_partial_tail: bool = True,
    verify_crc: bool = True,
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
) -> Iterator[RecordBatch]:
    """Decode every whole batch of a fetch response or segment (a partial tail is skipped by
    default, as a consumer does)."""
    for position, _header in iter_batches(buffer, allow_partial_tail=allow_partial_tail):
        yield RecordBatch.decode(
            buffer, position, verify_crc=verify_crc, max_uncompressed_bytes=max_uncompressed_bytes
        )


@dataclass(frozen=True, slots=True)
class SimpleRecord:
    """What a producer appends (Kafka's ``SimpleRecord``): absolute timestamp, key, value, headers."""

    value: bytes | None
    key: bytes | None = None
    timestamp: int = NO_TIMESTAMP
    headers: tuple[Header, ...] = field(default=())


def build_batch(
    records: Iterable[SimpleRecord],
    *,
    base_offset: int = 0,
    compression: CompressionType = CompressionType.NONE,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
    transactional: bool = False,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    timestamp_type: TimestampType = TimestampType.CREATE_TIME,
    base_timestamp: int | None = None,
    log_append_time: int | None = None,
) -> bytes:
    """Encode ``records`` as one batch, the way Kafka's ``MemoryRecordsBuilder`` lays it out.

    Record ``i`` gets offset delta ``i``; ``baseTimestamp`` defaults to the first record's
    timestamp; ``maxTimestamp`` is the largest record timestamp, or ``log_append_time`` for a
    LogAppendTime batch.  Raises ``ValueError`` for an empty batch or a transactional batch
    without a producer id.
    """
    simple = list(records)
    if not simple:
        raise ValueError("a record batch needs at least one record")
    if transactional and producer_id == NO_PRODUCER_ID:
        raise ValueError("a transactional batch needs a producer id")
    base = simple[0].timestamp if base_timestamp is None else base_timestamp
    max_timestamp = max(record.timestamp for record in simple)
    if timestamp_type is TimestampType.LOG_APPEND_TIME and log_append_time is not None:
        max_timestamp = log_append_time
    # Each record straight to its bytes (no Record objects): a producer builds every batch it sends.
    section = b"".join(
        encode_record(index, record.timestamp - base, record.key, record.value, record.headers)
        for index, record in enumerate(simple)
    )
    return _frame_records(
        section,
        record_count=len(simple),
        compression=compression,
        attributes=attributes_for(compression, timestamp_type, transactional=transactional),
        last_offset_delta=len(simple) - 1,
        base_timestamp=base,
        max_timestamp=max_timestamp,
        base_offset=base_offset,
        partition_leader_epoch=partition_leader_epoch,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
    )


def _frame_records(
    section: bytes,
    *,
    record_count: int,
    compression: CompressionType,
    attributes: int,
    last_offset_delta: int,
    base_timestamp: int,
    max_timestamp: int,
    base_offset: int,
    partition_leader_epoch: int,
    producer_id: int,
    producer_epoch: int,
    base_sequence: int,
) -> bytes:
    """Compress an encoded records section and put the 61-byte header before it: the one place
    that fills in ``batchLength`` and computes the CRC, once per batch."""
    compressed = compress(compression, section)
    batch = bytearray(RECORD_BATCH_OVERHEAD + len(compressed))
    _HEADER.pack_into(
        batch,
        0,
        base_offset,
        len(batch) - LOG_OVERHEAD,
        partition_leader_epoch,
        CURRENT_MAGIC,
        0,  # CRC, filled in below
        attributes,
        last_offset_delta,
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        record_count,
    )
    batch[RECORDS:] = compressed
    _UINT32.pack_into(batch, CRC, compute_crc(batch))
    return bytes(batch)
