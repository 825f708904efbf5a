"""Record-batch compression: the five codecs of the attributes field, and the topic's
``compression.type``.

Theory of operation
-------------------
A RecordBatch v2 compresses only its *records section* (the bytes after the 61-byte header); the
codec is named by bits 0-2 of the batch attributes (:class:`CompressionType`).  The bytes each
codec produces are the ones Apache Kafka's Java client writes and its broker reads
(``org.apache.kafka.common.compress``):

* ``GZIP`` (1): a gzip stream (RFC 1952).  Kafka's reader is ``GZIPInputStream``, which also reads
  several concatenated gzip members.  Kafka's default level is zlib's default (6).
* ``SNAPPY`` (2): Kafka's Java client writes the *xerial* framing of ``snappy-java``'s
  ``SnappyOutputStream``: a 16-byte header ``\\x82SNAPPY\\x00`` + int32 version (1) + int32
  minimum compatible version (1), then blocks of ``int32 compressed_length`` + one *raw* snappy
  block, each block holding at most 32 KiB of input.  librdkafka writes plain *raw* snappy (one
  block, no header), and ``SnappyInputStream`` reads both: when the first 8 bytes are not the
  xerial magic it decodes the whole payload as raw snappy.  :func:`decompress` does the same;
  :func:`compress` writes the xerial framing, as the Java client and a recompressing broker do.
  (Google's "snappy framing format", which ``cramjam.snappy.compress`` writes, is *not* used by
  Kafka.)
* ``LZ4`` (3): an LZ4 *frame* (KIP-57) with independent blocks of at most 64 KiB and no content
  size.  Kafka's ``Lz4BlockInputStream`` refuses linked blocks, so :func:`compress` writes
  independent ones.  Kafka's default level is 9 (KIP-390).
* ``ZSTD`` (4): a zstd frame (KIP-110; Produce v7+ / Fetch v10+).  Kafka's default level is 3.

Decompression is bounded.  A batch's compressed payload is untrusted: a few kilobytes of zeros
compressed with zstd can expand to gigabytes.  :func:`decompress` never allocates more than
``max_output + 1`` bytes of output: snappy declares its block length in a preamble that is checked
before allocating, and gzip/lz4/zstd decompress into a buffer of bounded size (growing it up to the
limit, starting from a size hint) and stop as soon as it would overflow.  Overflowing raises
:class:`~reference.records.decode_errors.DecompressionLimitError`; any other codec failure raises
:class:`~reference.records.decode_errors.DecompressionError`.  Apache Kafka has no such limit (it
streams); the limit is refka's protection, chosen by the caller.

Topic configuration ``compression.type`` (:class:`TopicCompressionType`) is a different vocabulary:
``producer`` (keep the batch's own codec), ``uncompressed``, ``gzip``, ``snappy``, ``lz4``, ``zstd``
(Kafka's ``BrokerCompressionType``).  :meth:`TopicCompressionType.target_codec` says which codec the
broker stores a batch with.

The codec work is done by ``cramjam`` (Rust): no compression loop runs in Python.
"""

from __future__ import annotations

import struct
from enum import IntEnum, StrEnum
from typing import Final, TypeAlias

import cramjam

from reference.records.decode_errors import DecompressionError, DecompressionLimitError

# Anything that exposes the buffer protocol and can be sliced (what the codec library accepts).
ReadableBuffer: TypeAlias = bytes | bytearray | memoryview


class CompressionType(IntEnum):
    """The codec id held in bits 0-2 of the batch attributes (Kafka's ``CompressionType``)."""

    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4

    @property
    def config_name(self) -> str:
        """The name Kafka uses for this codec in configuration (``none``, ``gzip``, ...)."""
        return self.name.lower()


class TopicCompressionType(StrEnum):
    """The values of the topic (and broker) configuration ``compression.type``."""

    PRODUCER = "producer"
    UNCOMPRESSED = "uncompressed"
    GZIP = "gzip"
    SNAPPY = "snappy"
    LZ4 = "lz4"
    ZSTD = "zstd"

    @classmethod
    def from_config(cls, value: str) -> TopicCompressionType:
        """Parse a configuration value, case-insensitively as Kafka does.

        Raises ``ValueError`` naming the allowed values for anything else.
        """
        try:
            return cls(value.lower())
        except ValueError:
            allowed = ", ".join(member.value for member in cls)
            raise ValueError(f"Unknown compression.type {value!r}; allowed: {allowed}") from None

    def target_codec(self, producer_codec: CompressionType) -> CompressionType:
        """The codec the broker stores a batch with, given the codec the producer used."""
        if self is TopicCompressionType.PRODUCER:
            return producer_codec
        if self is TopicCompressionType.UNCOMPRESSED:
            return CompressionType.NONE
        return CompressionType[self.name]


# Kafka's default levels (KIP-390): gzip = zlib default, lz4 = 9, zstd = 3.
GZIP_LEVEL: Final = 6
LZ4_LEVEL: Final = 9
ZSTD_LEVEL: Final = 3

# snappy-java's SnappyOutputStream framing ("xerial"), as Kafka's Java client writes it.
XERIAL_MAGIC: Final = b"\x82SNAPPY\x00"
XERIAL_VERSION: Final = 1
XERIAL_MIN_COMPATIBLE_VERSION: Final = 1
XERIAL_HEADER: Final = XERIAL_MAGIC + struct.pack(">ii", XERIAL_VERSION, XERIAL_MIN_COMPATIBLE_VERSION)
XERIAL_BLOCK_SIZE: Final = 32 * 1024
_XERIAL_BLOCK_LENGTH = struct.Struct(">i")

# First guess for the output size of gzip/lz4/zstd; doubled (x4) until max_output + 1.
_MIN_OUTPUT_GUESS: Final = 64 * 1024
# The message cramjam's ``decompress_into`` gives when the output buffer is full (Rust's write_all).
_OUTPUT_FULL: Final = "failed to write whole buffer"


def compress(codec: CompressionType, data: ReadableBuffer) -> bytes:
    """Compress a records section with ``codec``, in the format Kafka's Java client writes."""
    if codec is CompressionType.NONE:
        return bytes(data)
    if codec is CompressionType.GZIP:
        return bytes(cramjam.gzip.compress(data, level=GZIP_LEVEL))
    if codec is CompressionType.SNAPPY:
        return compress_snappy_xerial(data)
    if codec is CompressionType.LZ4:
        compressor = cramjam.lz4.Compressor(level=LZ4_LEVEL, content_checksum=False, block_linked=False)
        compressor.compress(data)
        return bytes(compressor.finish())
    if codec is CompressionType.ZSTD:
        return bytes(cramjam.zstd.compress(data, level=ZSTD_LEVEL))
    raise ValueError(f"not a codec: {codec!r}")


def compress_snappy_xerial(data: ReadableBuffer) -> bytes:
    """snappy-java's framing: the 16-byte header, then (int32 length, raw block) per 32 KiB."""
    view = memoryview(data)
    parts = [XERIAL_HEADER]
    for start in range(0, len(view), XERIAL_BLOCK_SIZE):
        block = bytes(cramjam.snappy.compress_raw(view[start : start + XERIAL_BLOCK_SIZE]))
        parts.append(_XERIAL_BLOCK_LENGTH.pack(len(block)))
        parts.append(block)
    return b"".join(parts)


def compress_snappy_raw(data: ReadableBuffer) -> bytes:
    """One raw snappy block, as librdkafka writes a snappy batch."""
    return bytes(cramjam.snappy.compress_raw(data))


def decompress(codec: CompressionType, data: ReadableBuffer, max_output: int) -> bytes:
    """Decompress a records section, refusing to produce more than ``max_output`` bytes.

    Raises :class:`DecompressionLimitError` when the output would exceed ``max_output`` and
    :class:`DecompressionError` when the payload is not valid for ``codec``.
    """
    if codec is CompressionType.NONE:
        if len(data) > max_output:
            raise DecompressionLimitError(f"{len(data)} bytes exceed the limit of {max_output}")
        return bytes(data)
    if codec is CompressionType.SNAPPY:
        return decompress_snappy(data, max_output)
    if codec in (CompressionType.GZIP, CompressionType.LZ4, CompressionType.ZSTD):
        return _decompress_streaming_codec(codec, data, max_output)
    raise ValueError(f"not a codec: {codec!r}")


def decompress_snappy(data: ReadableBuffer, max_output: int) -> bytes:
    """Read xerial-framed snappy when the xerial magic is present, raw snappy otherwise."""
    view = memoryview(data)
    if len(view) >= len(XERIAL_HEADER) and bytes(view[: len(XERIAL_MAGIC)]) == XERIAL_MAGIC:
        return _decompress_xerial(view[len(XERIAL_HEADER) :], max_output)
    return _decompress_raw_snappy_block(view, max_output)


def _decompress_xerial(blocks: memoryview, max_output: int) -> bytes:
    """Each block is ``int32 length`` + a raw snappy block; the lengths are checked against the
    remaining input and the decompressed sizes against the remaining budget."""
    parts: list[bytes] = []
    produced = 0
    position = 0
    while position < len(blocks):
        if len(blocks) - position < _XERIAL_BLOCK_LENGTH.size:
            raise DecompressionError("xerial snappy: truncated block length")
        (length,) = _XERIAL_BLOCK_LENGTH.unpack_from(blocks, position)
        position += _XERIAL_BLOCK_LENGTH.size
        if length < 0 or length > len(blocks) - position:
            raise DecompressionError(f"xerial snappy: block length {length} runs past the payload")
        block = _decompress_raw_snappy_block(blocks[position : position + length], max_output - produced)
        parts.append(block)
        produced += len(block)
        position += length
    return b"".join(parts)


def _decompress_raw_snappy_block(block: memoryview, max_output: int) -> bytes:
    """A raw snappy block starts with its uncompressed length (a varint): check it, then inflate."""
    try:
        declared = int(cramjam.snappy.decompress_raw_len(block))
    except cramjam.DecompressionError as error:
        raise DecompressionError(f"snappy: {error}") from error
    if declared > max_output:
        raise DecompressionLimitError(f"snappy block declares {declared} bytes, limit is {max_output}")
    output = bytearray(declared)
    try:
        written = int(cramjam.snappy.decompress_raw_into(block, output))
    except cramjam.DecompressionError as error:
        raise DecompressionError(f"snappy: {error}") from error
    if written != declared:
        raise DecompressionError(f"snappy block declared {declared} bytes but produced {written}")
    return bytes(output)


def _decompress_streaming_codec(codec: CompressionType, data: ReadableBuffer, max_output: int) -> bytes:
    """gzip, lz4 and zstd: decompress into a bounded buffer; grow it (x4) only up to the limit."""
    library = {CompressionType.GZIP: cramjam.gzip, CompressionType.LZ4: cramjam.lz4}.get(codec, cramjam.zstd)
    ceiling = max_output + 1  # one byte more than allowed tells "too large" from "exactly the limit"
    capacity = min(ceiling, _initial_output_guess(codec, data))
    while True:
        output = bytearray(capacity)
        try:
            written = int(library.decompress_into(data, output))
        except cramjam.DecompressionError as error:
            if _OUTPUT_FULL not in str(error):
                raise DecompressionError(f"{codec.config_name}: {error}") from error
            if capacity >= ceiling:
                raise DecompressionLimitError(
                    f"{codec.config_name} payload decompresses past the limit of {max_output} bytes"
                ) from None
            capacity = min(ceiling, capacity * 4)
            continue
        if written > max_output:
            raise DecompressionLimitError(
                f"{codec.config_name} payload decompresses past the limit of {max_output} bytes"
            )
        return bytes(memoryview(output)[:written])


def _initial_output_guess(codec: CompressionType, data: ReadableBuffer) -> int:
    """A first output size: gzip's trailer states the size (mod 2^32) of its last member, which is
    exact for the single-member streams every client writes; otherwise 4x the input."""
    guess = max(_MIN_OUTPUT_GUESS, 4 * len(data))
    if codec is CompressionType.GZIP and len(data) >= 18:
        (declared,) = struct.unpack_from("<I", data, len(data) - 4)
        guess = max(guess, declared + 1)
    return guess
