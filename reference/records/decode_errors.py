"""Typed errors raised by the record-batch decoders.

Every decoder in :mod:`reference.records` turns any byte string into either a value or one of the
exceptions below; nothing else escapes (no ``struct.error``, ``IndexError``, ``MemoryError``).  The
classes are sorted by *who is at fault and what Kafka would say*, so that the broker's validation
(:mod:`reference.records.validation`) can translate them into Kafka error codes in one place:

=============================  ==========================================  ========================
exception                      meaning                                     Kafka's answer to a client
=============================  ==========================================  ========================
``TruncatedBatchError``        the buffer ends inside a batch              partial tail is dropped
``CorruptBatchError``          impossible length / magic byte / CRC        ``CORRUPT_MESSAGE``
``UnsupportedMagicError``      a legacy (magic 0 or 1) message set         ``INVALID_RECORD``
``UnknownCompressionError``    codec bits 5, 6 or 7                        ``UNKNOWN_SERVER_ERROR``
``InvalidRecordsError``        records inside the batch are malformed      ``INVALID_RECORD``
``DecompressionError``         the compressed payload does not decompress  ``UNKNOWN_SERVER_ERROR``
``DecompressionLimitError``    it decompresses past the allowed size       refka: ``INVALID_RECORD``
=============================  ==========================================  ========================
"""

from __future__ import annotations


class RecordsDecodeError(ValueError):
    """Base class: these bytes are not a well-formed RecordBatch v2 (or records inside one)."""


class TruncatedBatchError(RecordsDecodeError):
    """The buffer ends before the batch does (a partial batch at the tail of a fetch or a log)."""


class CorruptBatchError(RecordsDecodeError):
    """A batch header that no correct writer produces: size below the minimum, magic out of range,
    or a CRC mismatch.  Kafka raises ``CorruptRecordException`` (``CORRUPT_MESSAGE``)."""


class UnsupportedMagicError(RecordsDecodeError):
    """A legacy message set (magic 0 or 1).  refka, like Kafka 4, only speaks RecordBatch v2."""

    def __init__(self, magic: int, message: str | None = None) -> None:
        super().__init__(message or f"message format with magic {magic} is not supported (only magic 2)")
        self.magic = magic


class UnknownCompressionError(RecordsDecodeError):
    """The codec bits of the attributes hold 5, 6 or 7, which name no codec."""

    def __init__(self, codec_id: int) -> None:
        super().__init__(f"Unknown compression type id: {codec_id}")
        self.codec_id = codec_id


class InvalidRecordsError(RecordsDecodeError):
    """The records inside a batch are malformed: a bad varint, a length running past the end, a
    record count that does not match the bytes.  Kafka raises ``InvalidRecordException``."""


class DecompressionError(RecordsDecodeError):
    """The codec library rejected the compressed payload."""


class DecompressionLimitError(DecompressionError):
    """The payload decompresses to more than the caller's ``max_output`` bytes (a decompression
    bomb, or simply more than refka accepts); decoding stopped before allocating it."""
