"""Kafka's primitive wire types: fixed-width integers, varints, strings, bytes, UUIDs.

Theory of operation
-------------------
Every Kafka request and response is a sequence of the primitive types defined in the protocol
guide (https://kafka.apache.org/protocol#protocol_types).  This module reads them from a buffer
(:class:`Reader`) and writes them to a growing ``bytearray`` (:class:`Writer`).  It knows nothing
of messages or versions: ``reference.protocol.schema`` composes these calls into messages.

The grammar, all big-endian::

    INT8 INT16 INT32 INT64          signed two's complement, 1/2/4/8 bytes
    UINT16 UINT32                   unsigned, 2/4 bytes
    FLOAT64                         IEEE 754 binary64
    BOOLEAN                         one byte, 0 = false, anything else = true
    UNSIGNED_VARINT                 7 bits per byte, low groups first, high bit = "more follows";
                                    at most 5 bytes for a 32-bit value
    VARINT / VARLONG                zigzag-encoded (0,-1,1,-2,... -> 0,1,2,3,...) unsigned varint;
                                    at most 5 / 10 bytes
    UUID                            16 bytes
    STRING / NULLABLE_STRING        INT16 length (-1 = null), UTF-8 bytes
    COMPACT_STRING                  UNSIGNED_VARINT (length + 1; 0 = null), UTF-8 bytes
    BYTES / NULLABLE_BYTES          INT32 length (-1 = null), bytes
    COMPACT_BYTES                   UNSIGNED_VARINT (length + 1; 0 = null), bytes

Invariants kept against hostile input
-------------------------------------
* A read never goes past ``end``: a short buffer raises :class:`DecodeError`, never IndexError.
* No allocation is sized by an untrusted length before that many bytes are known to be present:
  every length is checked against :meth:`Reader.remaining` first.  Kafka does the same
  (``ByteBufferAccessor`` refuses an array count larger than the bytes left).
* A varint longer than its type allows is an error, so a run of 0xFF bytes cannot loop forever.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import uuid

_INT8 = struct.Struct(">b")
_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_INT64 = struct.Struct(">q")
_UINT16 = struct.Struct(">H")
_UINT32 = struct.Struct(">I")
_FLOAT64 = struct.Struct(">d")

MAX_VARINT_BYTES = 5
MAX_VARLONG_BYTES = 10

ZERO_UUID = uuid.UUID(int=0)
METADATA_TOPIC_UUID = uuid.UUID(int=1)  # the id of KRaft's __cluster_metadata topic


def uuid_string(value: uuid.UUID) -> str:
    """Kafka's text form of a UUID: base64url of the 16 bytes, without padding (22 characters)."""
    return base64.urlsafe_b64encode(value.bytes).decode("ascii").rstrip("=")


def random_uuid_string(seed: int | None = None) -> str:
    """A fresh id in text form, as Kafka's ``Uuid.randomUuid`` makes cluster and topic ids.

    Kafka draws again for the two reserved values and for any id whose text starts with ``-``:
    the storage tool's argument parser would read ``--cluster-id -abc...`` as a missing value and
    an option (about one id in 64 starts that way).  A ``seed`` makes the id reproducible: the
    draws are then hashes of the seed and an attempt counter.
    """
    attempt = 0
    while True:
        if seed is None:
            value = uuid.uuid4()
        else:
            value = uuid.UUID(bytes=hashlib.sha256(f"{seed}/{attempt}".encode()).digest()[:16])
            attempt += 1
        text = uuid_string(value)
        if value not in (ZERO_UUID, METADATA_TOPIC_UUID) and not text.startswith("-"):
            return text


class DecodeError(ValueError):
    """The bytes are not a valid encoding of what was asked for (truncated, oversized, malformed).

    Raised by every decoder in refka for bad input; never an IndexError or struct.error.
    """


class Reader:
    """Reads primitive types from ``buffer[position:end]``, advancing ``position``.

    ``share_records``: record sets (:meth:`records`) come back as views of ``buffer`` instead of
    copies.  A broker sets it on a request frame it owns: a produced batch is then validated and
    given its offsets where it arrived, and reaches the log without a copy.
    """

    __slots__ = ("buffer", "position", "end", "share_records")

    def __init__(self, buffer: bytes | bytearray | memoryview, position: int = 0, end: int | None = None):
        self.buffer = memoryview(buffer).cast("B") if not isinstance(buffer, bytes) else buffer
        self.position = position
        self.end = len(buffer) if end is None else end
        self.share_records = False

    def remaining(self) -> int:
        return self.end - self.position

    def _advance(self, size: int) -> int:
        """Reserve ``size`` bytes and return where they start."""
        start = self.position
        if size < 0 or start + size > self.end:
            raise DecodeError(f"need {size} bytes at position {start}, only {self.end - start} left")
        self.position = start + size
        return start

    def int8(self) -> int:
        return int(_INT8.unpack_from(self.buffer, self._advance(1))[0])

    def int16(self) -> int:
        return int(_INT16.unpack_from(self.buffer, self._advance(2))[0])

    def int32(self) -> int:
        return int(_INT32.unpack_from(self.buffer, self._advance(4))[0])

    def int64(self) -> int:
        return int(_INT64.unpack_from(self.buffer, self._advance(8))[0])

    def uint16(self) -> int:
        return int(_UINT16.unpack_from(self.buffer, self._advance(2))[0])

    def uint32(self) -> int:
        return int(_UINT32.unpack_from(self.buffer, self._advance(4))[0])

    def float64(self) -> float:
        return float(_FLOAT64.unpack_from(self.buffer, self._advance(8))[0])

    def boolean(self) -> bool:
        return self.int8() != 0

    def unsigned_varint(self, max_bytes: int = MAX_VARINT_BYTES) -> int:
        value = 0
        shift = 0
        for _ in range(max_bytes):
            byte = self.buffer[self._advance(1)]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
        raise DecodeError(f"varint longer than {max_bytes} bytes at position {self.position}")

    def varint(self) -> int:
        raw = self.unsigned_varint(MAX_VARINT_BYTES)
        if raw > 0xFFFFFFFF:
            raise DecodeError("varint does not fit in 32 bits")
        return (raw >> 1) ^ -(raw & 1)

    def varlong(self) -> int:
        raw = self.unsigned_varint(MAX_VARLONG_BYTES)
        if raw > 0xFFFFFFFFFFFFFFFF:
            raise DecodeError("varlong does not fit in 64 bits")
        return (raw >> 1) ^ -(raw & 1)

    def uuid(self) -> uuid.UUID:
        start = self._advance(16)
        return uuid.UUID(bytes=bytes(self.buffer[start : start + 16]))

    def raw(self, size: int) -> bytes:
        start = self._advance(size)
        return bytes(self.buffer[start : start + size])

    # -- length-prefixed forms -------------------------------------------------------------

    def _length(self, compact: bool, wide: bool) -> int:
        """A length prefix: -1 means null.  Compact lengths are stored plus one."""
        if compact:
            return self.unsigned_varint() - 1
        return self.int32() if wide else self.int16()

    def _checked_length(self, length: int, what: str) -> int:
        if length < -1:
            raise DecodeError(f"negative {what} length {length}")
        if length > self.remaining():
            raise DecodeError(f"{what} length {length} exceeds the {self.remaining()} bytes left")
        return length

    def string(self, compact: bool = False) -> str | None:
        length = self._checked_length(self._length(compact, wide=False), "string")
        if length == -1:
            return None
        start = self._advance(length)
        try:
            return str(self.buffer[start : start + length], "utf-8")
        except UnicodeDecodeError as error:
            raise DecodeError(f"string at position {start} is not UTF-8") from error

    def bytes_(self, compact: bool = False) -> bytes | None:
        length = self._checked_length(self._length(compact, wide=True), "bytes")
        if length == -1:
            return None
        return self.raw(length)

    def records(self, compact: bool = False) -> bytes | memoryview | None:
        """A record set (nullable bytes): a copy, or with ``share_records`` a view of the buffer."""
        if not self.share_records:
            return self.bytes_(compact)
        length = self._checked_length(self._length(compact, wide=True), "bytes")
        if length == -1:
            return None
        start = self._advance(length)
        return memoryview(self.buffer)[start : start + length]

    def array_length(self, compact: bool = False) -> int:
        """An array's element count (-1 for null), refused when it cannot fit in what is left.

        Every element takes at least one byte on the wire, except structs with no fields in
        non-flexible versions; Kafka bounds the count by the bytes left all the same.
        """
        return self._checked_length(self._length(compact, wide=True), "array")


class Writer:
    """Appends primitive types to a ``bytearray``."""

    __slots__ = ("buffer",)

    def __init__(self) -> None:
        self.buffer = bytearray()

    def getvalue(self) -> bytes:
        return bytes(self.buffer)

    def int8(self, value: int) -> None:
        self.buffer += _INT8.pack(value)

    def int16(self, value: int) -> None:
        self.buffer += _INT16.pack(value)

    def int32(self, value: int) -> None:
        self.buffer += _INT32.pack(value)

    def int64(self, value: int) -> None:
        self.buffer += _INT64.pack(value)

    def uint16(self, value: int) -> None:
        self.buffer += _UINT16.pack(value)

    def uint32(self, value: int) -> None:
        self.buffer += _UINT32.pack(value)

    def float64(self, value: float) -> None:
        self.buffer += _FLOAT64.pack(value)

    def boolean(self, value: bool) -> None:
        self.buffer.append(1 if value else 0)

    def unsigned_varint(self, value: int) -> None:
        if value < 0:
            raise ValueError(f"unsigned varint cannot hold {value}")
        while value >= 0x80:
            self.buffer.append((value & 0x7F) | 0x80)
            value >>= 7
        self.buffer.append(value)

    def varint(self, value: int) -> None:
        self.unsigned_varint(((value << 1) ^ (value >> 31)) & 0xFFFFFFFF)

    def varlong(self, value: int) -> None:
        self.unsigned_varint(((value << 1) ^ (value >> 63)) & 0xFFFFFFFFFFFFFFFF)

    def uuid(self, value: uuid.UUID) -> None:
        self.buffer += value.bytes

    def raw(self, data: bytes | bytearray | memoryview) -> None:
        self.buffer += data

    def _length(self, length: int, compact: bool, wide: bool) -> None:
        if compact:
            self.unsigned_varint(length + 1)
        elif wide:
            self.int32(length)
        else:
            self.int16(length)

    def string(self, value: str | None, compact: bool = False) -> None:
        if value is None:
            self._length(-1, compact, wide=False)
            return
        encoded = value.encode("utf-8")
        self._length(len(encoded), compact, wide=False)
        self.buffer += encoded

    def bytes_(self, value: bytes | bytearray | memoryview | None, compact: bool = False) -> None:
        if value is None:
            self._length(-1, compact, wide=True)
            return
        self._length(len(value), compact, wide=True)
        self.buffer += value

    def array_length(self, length: int, compact: bool = False) -> None:
        self._length(length, compact, wide=True)


def size_of_unsigned_varint(value: int) -> int:
    """How many bytes :meth:`Writer.unsigned_varint` uses for ``value``."""
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size
