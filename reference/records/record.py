"""One record inside a RecordBatch v2, and the varints it is made of.

Theory of operation
-------------------
Inside a batch's (decompressed) records section, records follow one another with no index; each
starts with its own length, so a reader walks them one by one (KIP-98 record format)::

    Record =>
      length          varint    bytes from attributes to the end of the headers
      attributes      int8      unused, 0
      timestampDelta  varlong   timestamp - batch.baseTimestamp
      offsetDelta     varint    offset - batch.baseOffset (the i-th record has delta i)
      keyLength       varint    -1 = null key
      key             bytes
      valueLength     varint    -1 = null value
      value           bytes
      headersCount    varint
      Header =>
        headerKeyLength   varint  (never negative)
        headerKey         UTF-8 string
        headerValueLength varint  -1 = null value
        headerValue       bytes

``varint``/``varlong`` are zigzag-encoded base-128 integers, as in protocol buffers: at most 5
bytes for 32 bits, 10 bytes for 64 bits (longer is an error, as in Kafka's ``ByteUtils``).

Decoding follows Kafka's ``DefaultRecord.readFrom``: a record whose length runs past the section,
a negative header count or header-key length, a count larger than the bytes left, or a body whose
parsed size differs from its length is :class:`InvalidRecordsError`; a negative key or value
length reads as null.  :func:`decode_records` also enforces the batch's ``recordCount``: fewer
records than declared ("premature EOF") or bytes left over after them ("records still remaining")
are errors.  Nothing is allocated from a length before the bytes are known to be there.

Header keys are decoded with ``surrogateescape``, so even a key that is not valid UTF-8 re-encodes
to the same bytes.

Validation does not need the records themselves, only three facts per record: its offset delta,
its timestamp delta and whether its key is null.  :func:`scan_records` walks a section with the
same checks and the same errors as :func:`decode_records` and keeps those facts, column by column
(:class:`RecordColumns`), without building a :class:`Record` or copying a key, value or header.
It is the produce path's walk (a leader parses every record of every batch, as Kafka's
``LogValidator`` does); ``tests/reference/records/test_record.py`` holds it to
:func:`decode_records` on arbitrary bytes, error messages included.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from reference.records.compression import ReadableBuffer
from reference.records.decode_errors import InvalidRecordsError

_MAX_VARINT_BYTES: Final = 5
_MAX_VARLONG_BYTES: Final = 10


# --- varints ------------------------------------------------------------------------------------


def _read_unsigned(view: memoryview, position: int, max_bytes: int) -> tuple[int, int]:
    """Base-128 little-endian groups; returns (value, next position)."""
    value = 0
    shift = 0
    end = len(view)
    for index in range(max_bytes):
        if position + index >= end:
            raise InvalidRecordsError("varint runs past the end of the records")
        byte = view[position + index]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position + index + 1
        shift += 7
    raise InvalidRecordsError(f"varint is longer than {max_bytes} bytes")


def _unzigzag(value: int, bits: int) -> int:
    value &= (1 << bits) - 1  # Kafka accumulates in an int/long: excess high bits are dropped
    return (value >> 1) ^ -(value & 1)


def read_varint(view: memoryview, position: int) -> tuple[int, int]:
    """A zigzag varint (int32): ``(value, next position)``."""
    if position + 1 < len(view):
        first = view[position]
        if first < 0x80:  # one byte: -64..63, deltas and short lengths
            return (first >> 1) ^ -(first & 1), position + 1
        second = view[position + 1]
        if second < 0x80:  # two bytes: -8192..8191, e.g. the length of a 1 KiB value
            raw = (first & 0x7F) | (second << 7)
            return (raw >> 1) ^ -(raw & 1), position + 2
    elif position < len(view) and view[position] < 0x80:
        byte = view[position]
        return (byte >> 1) ^ -(byte & 1), position + 1
    raw, position = _read_unsigned(view, position, _MAX_VARINT_BYTES)
    return _unzigzag(raw, 32), position


def read_varlong(view: memoryview, position: int) -> tuple[int, int]:
    """A zigzag varlong (int64): ``(value, next position)``.  Same short forms as :func:`read_varint`."""
    if position + 1 < len(view):
        first = view[position]
        if first < 0x80:
            return (first >> 1) ^ -(first & 1), position + 1
        second = view[position + 1]
        if second < 0x80:
            raw = (first & 0x7F) | (second << 7)
            return (raw >> 1) ^ -(raw & 1), position + 2
    elif position < len(view) and view[position] < 0x80:
        byte = view[position]
        return (byte >> 1) ^ -(byte & 1), position + 1
    raw, position = _read_unsigned(view, position, _MAX_VARLONG_BYTES)
    return _unzigzag(raw, 64), position


_SINGLE_BYTES: Final = tuple(bytes((byte,)) for byte in range(256))


def write_varint(value: int) -> bytes:
    """Zigzag + base-128 encoding of a signed integer (int32 or int64 range)."""
    unsigned = (value << 1) ^ (value >> 63)
    # Short forms first: a producer writes six varints per record, nearly all of one or two bytes
    # (deltas, lengths up to 8 KiB); both are the general loop below unrolled.
    if 0 <= unsigned < 0x80:
        return _SINGLE_BYTES[unsigned]
    if 0 <= unsigned < 0x4000:
        return bytes(((unsigned & 0x7F) | 0x80, unsigned >> 7))
    unsigned &= (1 << 64) - 1
    out = bytearray()
    while unsigned >= 0x80:
        out.append((unsigned & 0x7F) | 0x80)
        unsigned >>= 7
    out.append(unsigned)
    return bytes(out)


# --- records ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Header:
    """A record header: a string key and a nullable byte value."""

    key: str
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Record:
    """One record as stored: positions relative to its batch's base offset and base timestamp."""

    offset_delta: int
    timestamp_delta: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...] = ()
    attributes: int = 0  # int8, unused by Kafka

    def offset(self, base_offset: int) -> int:
        return base_offset + self.offset_delta

    def timestamp(self, base_timestamp: int) -> int:
        return base_timestamp + self.timestamp_delta

    def encode(self) -> bytes:
        """The record's bytes, starting with its length varint."""
        return encode_record(
            self.offset_delta, self.timestamp_delta, self.key, self.value, self.headers, self.attributes
        )


_NULL_LENGTH: Final = b"\x01"  # write_varint(-1): a null key, value or header value


def encode_record(
    offset_delta: int,
    timestamp_delta: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[Header] = (),
    attributes: int = 0,
) -> bytes:
    """One record's bytes in the grammar above, starting with its length varint.

    The only record encoder: :meth:`Record.encode` calls it, and so does the batch builder, for
    each record a producer appends, without building a :class:`Record` first.
    """
    body = b"".join(
        (
            _SINGLE_BYTES[attributes & 0xFF],
            write_varint(timestamp_delta),
            write_varint(offset_delta),
            _NULL_LENGTH if key is None else write_varint(len(key)) + key,
            _NULL_LENGTH if value is None else write_varint(len(value)) + value,
            write_varint(len(headers)),
        )
    )
    if headers:
        body += b"".join(_encode_header(header) for header in headers)
    return write_varint(len(body)) + body


def _encode_nullable_bytes(data: bytes | None) -> bytes:
    if data is None:
        return _NULL_LENGTH
    return write_varint(len(data)) + data


def _encode_header(header: Header) -> bytes:
    key = header.key.encode("utf-8", "surrogateescape")
    return write_varint(len(key)) + key + _encode_nullable_bytes(header.value)


def encode_records(records: Iterable[Record]) -> bytes:
    """The uncompressed records section: the records back to back."""
    return b"".join(record.encode() for record in records)


def decode_record(view: memoryview, position: int) -> tuple[Record, int]:
    """Decode the record starting at ``position``; returns ``(record, next position)``."""
    body_length, body_start = read_varint(view, position)
    if body_length < 0 or body_length > len(view) - body_start:
        raise InvalidRecordsError(
            f"Invalid record size: expected {body_length} bytes in record payload, "
            f"{len(view) - body_start} remaining"
        )
    body_end = body_start + body_length
    body = view[:body_end]  # the record may not read past its own length
    if body_start >= body_end:
        raise InvalidRecordsError("record body is empty")
    attributes = body[body_start]
    timestamp_delta, cursor = read_varlong(body, body_start + 1)
    offset_delta, cursor = read_varint(body, cursor)
    key, cursor = _read_nullable_bytes(body, cursor)
    value, cursor = _read_nullable_bytes(body, cursor)
    headers, cursor = _read_headers(body, cursor)
    if cursor != body_end:
        raise InvalidRecordsError(
            f"Invalid record size: expected to read {body_length} bytes in record payload, "
            f"but instead read {cursor - body_start}"
        )
    return Record(offset_delta, timestamp_delta, key, value, headers, attributes), body_end


def _read_nullable_bytes(view: memoryview, position: int) -> tuple[bytes | None, int]:
    length, position = read_varint(view, position)
    if length < 0:
        return None, position
    if length > len(view) - position:
        raise InvalidRecordsError(f"length {length} runs past the end of the record")
    return bytes(view[position : position + length]), position + length


def _read_headers(view: memoryview, position: int) -> tuple[tuple[Header, ...], int]:
    count, position = read_varint(view, position)
    if count < 0:
        raise InvalidRecordsError(f"Found invalid number of record headers {count}")
    if count > len(view) - position:
        raise InvalidRecordsError(
            f"Found invalid number of record headers. {count} is larger than the remaining size of the buffer"
        )
    headers = []
    for _ in range(count):
        key_length, position = read_varint(view, position)
        if key_length < 0:
            raise InvalidRecordsError(f"Invalid negative header key size {key_length}")
        if key_length > len(view) - position:
            raise InvalidRecordsError(f"header key length {key_length} runs past the end of the record")
        key = bytes(view[position : position + key_length]).decode("utf-8", "surrogateescape")
        value, position = _read_nullable_bytes(view, position + key_length)
        headers.append(Header(key, value))
    return tuple(headers), position


def iter_records(section: ReadableBuffer, record_count: int) -> Iterator[Record]:
    """Yield the ``record_count`` records of an uncompressed records section, checking that the
    section holds exactly that many (Kafka's ``DefaultRecordBatch.RecordIterator``)."""
    if record_count < 0:
        raise InvalidRecordsError(f"Found invalid record count {record_count} in magic v2 batch")
    if record_count == 0:
        return  # Kafka does not look at the section of an empty batch (e.g. emptied by compaction)
    view = memoryview(section)
    position = 0
    for _ in range(record_count):
        if position >= len(view):
            raise InvalidRecordsError("Incorrect declared batch size, premature EOF reached")
        record, position = decode_record(view, position)
        yield record
    if position != len(view):
        raise InvalidRecordsError("Incorrect declared batch size, records still remaining in file")


def decode_records(section: ReadableBuffer, record_count: int) -> list[Record]:
    """All records of an uncompressed records section (see :func:`iter_records`)."""
    return list(iter_records(section, record_count))


# --- scanning: what validation needs, without decoding --------------------------------------------


@dataclass(slots=True)
class RecordColumns:
    """Per record, in order: what broker-side validation reads (see :func:`scan_records`)."""

    offset_deltas: list[int]
    timestamp_deltas: list[int]
    null_key_indexes: list[int]  # positions (0-based) of the records whose key is null

    def __len__(self) -> int:
        return len(self.offset_deltas)

    @classmethod
    def of(cls, records: Iterable[Record]) -> RecordColumns:
        """The columns of records already decoded (what :func:`scan_records` must agree with)."""
        columns = cls([], [], [])
        for index, record in enumerate(records):
            columns.offset_deltas.append(record.offset_delta)
            columns.timestamp_deltas.append(record.timestamp_delta)
            if record.key is None:
                columns.null_key_indexes.append(index)
        return columns


def scan_records(section: ReadableBuffer, record_count: int) -> RecordColumns:
    """Walk an uncompressed records section as :func:`iter_records` does (same checks, same
    :class:`InvalidRecordsError` messages) and return each record's offset delta, timestamp delta
    and null-key flag.  Nothing is copied out of ``section``.

    Two walks give one answer: :func:`scan_common_records`, a single loop for the shapes producers
    write, answers when the section is all such records; anything else (a long varint, a damaged
    record, a count that does not match) is walked again by :func:`scan_records_plain`, which
    raises the exact error.  The fast walk never raises and never accepts what the plain one
    refuses (tests hold the two together)."""
    columns = scan_common_records(section, record_count)
    if columns is not None:
        return columns
    return scan_records_plain(section, record_count)


def scan_common_records(section: ReadableBuffer, record_count: int) -> RecordColumns | None:
    """The columns of a section of ordinary records, or None to have the plain walk decide.

    Ordinary: every varint of one or two bytes except the timestamp delta (up to three: a batch
    spanning 17 minutes), no headers or headers the plain skip handles, and exactly
    ``record_count`` records filling the section.  This is :func:`_scan_record` with its calls
    inlined -- a produced batch of 1 KiB records is walked about four times faster -- so every
    check there has its twin here, answering None where that one raises."""
    view = memoryview(section)
    end = len(view)
    if record_count <= 0 or record_count > end:
        return None
    offset_deltas: list[int] = []
    timestamp_deltas: list[int] = []
    null_key_indexes: list[int] = []
    add_offset, add_timestamp = offset_deltas.append, timestamp_deltas.append
    position = 0
    try:  # IndexError: a varint ran off the section -- the plain walk names it
        for index in range(record_count):
            # length (the body's size in bytes)
            byte = view[position]
            if byte < 0x80:
                raw, cursor = byte, position + 1
            else:
                second = view[position + 1]
                if second >= 0x80:
                    return None
                raw, cursor = (byte & 0x7F) | (second << 7), position + 2
            length = (raw >> 1) ^ -(raw & 1)
            body_end = cursor + length
            if length <= 0 or body_end > end:
                return None
            cursor += 1  # attributes
            # timestampDelta (varlong)
            byte = view[cursor]
            if byte < 0x80:
                raw, cursor = byte, cursor + 1
            else:
                second = view[cursor + 1]
                if second < 0x80:
                    raw, cursor = (byte & 0x7F) | (second << 7), cursor + 2
                else:
                    third = view[cursor + 2]
                    if third >= 0x80:
                        return None
                    raw, cursor = (byte & 0x7F) | ((second & 0x7F) << 7) | (third << 14), cursor + 3
            add_timestamp((raw >> 1) ^ -(raw & 1))
            # offsetDelta
            byte = view[cursor]
            if byte < 0x80:
                raw, cursor = byte, cursor + 1
            else:
                second = view[cursor + 1]
                if second >= 0x80:
                    return None
                raw, cursor = (byte & 0x7F) | (second << 7), cursor + 2
            add_offset((raw >> 1) ^ -(raw & 1))
            # keyLength and key
            byte = view[cursor]
            if byte < 0x80:
                raw, cursor = byte, cursor + 1
            else:
                second = view[cursor + 1]
                if second >= 0x80:
                    return None
                raw, cursor = (byte & 0x7F) | (second << 7), cursor + 2
            key_length = (raw >> 1) ^ -(raw & 1)
            if key_length < 0:
                null_key_indexes.append(index)
            elif key_length > body_end - cursor:
                return None
            else:
                cursor += key_length
            # valueLength and value
            byte = view[cursor]
            if byte < 0x80:
                raw, cursor = byte, cursor + 1
            else:
                second = view[cursor + 1]
                if second >= 0x80:
                    return None
                raw, cursor = (byte & 0x7F) | (second << 7), cursor + 2
            value_length = (raw >> 1) ^ -(raw & 1)
            if value_length > 0:
                if value_length > body_end - cursor:
                    return None
                cursor += value_length
            # headersCount (0, the common case) or headers
            if cursor < body_end and view[cursor] == 0:
                cursor += 1
            else:  # past the body too: the plain skip raises, so the plain walk decides
                cursor = _skip_headers(view[:body_end], cursor)
            if cursor != body_end:
                return None
            position = body_end
    except (IndexError, InvalidRecordsError):
        return None
    if position != end:
        return None
    return RecordColumns(offset_deltas, timestamp_deltas, null_key_indexes)


def scan_records_plain(section: ReadableBuffer, record_count: int) -> RecordColumns:
    """:func:`scan_records` one field at a time, raising :func:`decode_records`'s errors."""
    columns = RecordColumns([], [], [])
    if record_count < 0:
        raise InvalidRecordsError(f"Found invalid record count {record_count} in magic v2 batch")
    view = memoryview(section)
    end = len(view)
    position = 0
    for index in range(record_count):
        if position >= end:
            raise InvalidRecordsError("Incorrect declared batch size, premature EOF reached")
        position = _scan_record(view, position, index, columns)
    if record_count and position != end:
        raise InvalidRecordsError("Incorrect declared batch size, records still remaining in file")
    return columns


def _scan_record(view: memoryview, position: int, index: int, columns: RecordColumns) -> int:
    """:func:`decode_record` without the values: appends to ``columns``, returns the next position."""
    body_length, body_start = read_varint(view, position)
    if body_length < 0 or body_length > len(view) - body_start:
        raise InvalidRecordsError(
            f"Invalid record size: expected {body_length} bytes in record payload, "
            f"{len(view) - body_start} remaining"
        )
    body_end = body_start + body_length
    body = view[:body_end]  # the record may not read past its own length
    if body_start >= body_end:
        raise InvalidRecordsError("record body is empty")
    timestamp_delta, cursor = read_varlong(body, body_start + 1)  # after the attributes byte
    offset_delta, cursor = read_varint(body, cursor)
    key_length, cursor = read_varint(body, cursor)
    cursor = _skip(key_length, cursor, body_end)
    value_length, cursor = read_varint(body, cursor)
    cursor = _skip(value_length, cursor, body_end)
    if cursor < body_end and body[cursor] == 0:  # headersCount 0, the common case
        cursor += 1
    else:
        cursor = _skip_headers(body, cursor)
    if cursor != body_end:
        raise InvalidRecordsError(
            f"Invalid record size: expected to read {body_length} bytes in record payload, "
            f"but instead read {cursor - body_start}"
        )
    columns.offset_deltas.append(offset_delta)
    columns.timestamp_deltas.append(timestamp_delta)
    if key_length < 0:
        columns.null_key_indexes.append(index)
    return body_end


def _skip(length: int, position: int, end: int) -> int:
    """The position after a nullable byte string of ``length`` (negative: null, nothing follows)."""
    if length > end - position:
        raise InvalidRecordsError(f"length {length} runs past the end of the record")
    return position + length if length > 0 else position


def _skip_headers(view: memoryview, position: int) -> int:
    """:func:`_read_headers` without building headers; returns the position after them."""
    count, position = read_varint(view, position)
    if count == 0:
        return position
    if count < 0:
        raise InvalidRecordsError(f"Found invalid number of record headers {count}")
    if count > len(view) - position:
        raise InvalidRecordsError(
            f"Found invalid number of record headers. {count} is larger than the remaining size of the buffer"
        )
    for _ in range(count):
        key_length, position = read_varint(view, position)
        if key_length < 0:
            raise InvalidRecordsError(f"Invalid negative header key size {key_length}")
        if key_length > len(view) - position:
            raise InvalidRecordsError(f"header key length {key_length} runs past the end of the record")
        value_length, position = read_varint(view, position + key_length)
        position = _skip(value_length, position, len(view))
    return position
