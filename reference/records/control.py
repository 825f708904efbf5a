"""Control records: transaction markers (KIP-98) and the other control types.

Theory of operation
-------------------
A *control batch* has attribute bit 5 (``Attributes.CONTROL``) set.  Only the broker writes them;
a client that sends one gets ``INVALID_RECORD`` (see :mod:`reference.records.validation`).  Each
control record identifies itself by its key::

    ControlRecordKey => version int16 (0), type int16

Types (Kafka's ``ControlRecordType``): 0 ABORT, 1 COMMIT (transaction markers), 2 LEADER_CHANGE,
3 SNAPSHOT_HEADER, 4 SNAPSHOT_FOOTER, 5 KRAFT_VERSION, 6 KRAFT_VOTERS (KRaft's own log); any other
id reads as UNKNOWN (-1) and is ignored by consumers.

When a transaction ends, the transaction coordinator asks each partition leader (WriteTxnMarkers)
to append an *end transaction marker*: a control batch of one record, transactional, carrying the
producer's id and epoch and ``baseSequence = -1``, uncompressed, CreateTime, whose value is::

    EndTxnMarkerValue => version int16 (0), coordinatorEpoch int32

A read_committed consumer uses ABORT markers to drop the aborted records of that producer, and
both isolation levels skip control batches when handing records to the application.

Decoding follows Kafka: a key shorter than 4 bytes or with a negative version, a marker value
shorter than 6 bytes or with a negative version, is :class:`InvalidRecordsError`; a newer
(positive) version is read as version 0.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from reference.records.batch import (
    NO_PARTITION_LEADER_EPOCH,
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    NO_SEQUENCE,
    RecordBatch,
    TimestampType,
)
from reference.records.compression import CompressionType
from reference.records.decode_errors import InvalidRecordsError
from reference.records.record import Record

CONTROL_RECORD_KEY_VERSION: Final = 0
END_TXN_MARKER_VERSION: Final = 0
_KEY = struct.Struct(">hh")  # version, type
_END_TXN_VALUE = struct.Struct(">hi")  # version, coordinator epoch


class ControlRecordType(IntEnum):
    """The ``type`` field of a control record key."""

    UNKNOWN = -1
    ABORT = 0
    COMMIT = 1
    LEADER_CHANGE = 2
    SNAPSHOT_HEADER = 3
    SNAPSHOT_FOOTER = 4
    KRAFT_VERSION = 5
    KRAFT_VOTERS = 6

    @classmethod
    def from_type_id(cls, type_id: int) -> ControlRecordType:
        """Any id Kafka does not define reads as UNKNOWN, which consumers skip."""
        try:
            return cls(type_id)
        except ValueError:
            return cls.UNKNOWN


def encode_control_key(control_type: ControlRecordType) -> bytes:
    if control_type is ControlRecordType.UNKNOWN:
        raise ValueError("Cannot serialize UNKNOWN control record type")
    return _KEY.pack(CONTROL_RECORD_KEY_VERSION, control_type)


def decode_control_key(key: bytes | None) -> ControlRecordType:
    """The control type named by a control record's key."""
    if key is None or len(key) < _KEY.size:
        found = 0 if key is None else len(key)
        raise InvalidRecordsError(
            f"Invalid value size found for end control record key. Must have at least {_KEY.size} bytes, "
            f"but found only {found}"
        )
    version, type_id = _KEY.unpack_from(key)
    if version < 0:
        raise InvalidRecordsError(
            f"Invalid version found for control record: {version}. May indicate data corruption"
        )
    return ControlRecordType.from_type_id(type_id)


@dataclass(frozen=True, slots=True)
class EndTransactionMarker:
    """A COMMIT or ABORT marker and the epoch of the coordinator that wrote it."""

    control_type: ControlRecordType
    coordinator_epoch: int

    def __post_init__(self) -> None:
        if self.control_type not in (ControlRecordType.ABORT, ControlRecordType.COMMIT):
            raise ValueError(f"Invalid control record type for end transaction marker {self.control_type!r}")

    @property
    def is_commit(self) -> bool:
        return self.control_type is ControlRecordType.COMMIT

    def key(self) -> bytes:
        return encode_control_key(self.control_type)

    def value(self) -> bytes:
        return _END_TXN_VALUE.pack(END_TXN_MARKER_VERSION, self.coordinator_epoch)

    @classmethod
    def from_record(cls, record: Record) -> EndTransactionMarker:
        """Decode a marker from a control record; InvalidRecordsError when it is not one."""
        control_type = decode_control_key(record.key)
        if control_type not in (ControlRecordType.ABORT, ControlRecordType.COMMIT):
            raise InvalidRecordsError(
                f"Invalid control record type for end transaction marker {control_type!r}"
            )
        value = record.value
        if value is None or len(value) < _END_TXN_VALUE.size:
            found = 0 if value is None else len(value)
            raise InvalidRecordsError(
                "Invalid value size found for end transaction marker. Must have at least "
                f"{_END_TXN_VALUE.size} bytes, but found only {found}"
            )
        version, coordinator_epoch = _END_TXN_VALUE.unpack_from(value)
        if version < 0:
            raise InvalidRecordsError(
                f"Invalid version found for end transaction marker: {version}. May indicate data corruption"
            )
        return cls(control_type, coordinator_epoch)


def build_control_batch_of(
    key: bytes,
    value: bytes,
    *,
    timestamp: int,
    base_offset: int = 0,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    is_transactional: bool = False,
) -> bytes:
    """A control batch of one control record: uncompressed, CreateTime, no sequence.  Transaction
    markers are transactional and carry their producer; KRaft's own control records
    (:mod:`reference.controller.control_records`) carry none."""
    batch = RecordBatch(
        records=(Record(offset_delta=0, timestamp_delta=0, key=key, value=value),),
        last_offset_delta=0,
        base_timestamp=timestamp,
        max_timestamp=timestamp,
        base_offset=base_offset,
        partition_leader_epoch=partition_leader_epoch,
        compression=CompressionType.NONE,
        timestamp_type=TimestampType.CREATE_TIME,
        is_transactional=is_transactional,
        is_control=True,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=NO_SEQUENCE,
    )
    return batch.encode()


def build_end_transaction_marker_batch(
    marker: EndTransactionMarker,
    *,
    producer_id: int,
    producer_epoch: int,
    timestamp: int,
    base_offset: int = 0,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
) -> bytes:
    """The control batch a partition leader appends for WriteTxnMarkers (Kafka's
    ``MemoryRecords.withEndTransactionMarker``): one record, transactional, control, no sequence."""
    return build_control_batch_of(marker.key(), marker.value(), timestamp=timestamp, base_offset=base_offset,
                                  partition_leader_epoch=partition_leader_epoch, producer_id=producer_id,
                                  producer_epoch=producer_epoch, is_transactional=True)


def decode_end_transaction_marker(batch: RecordBatch) -> EndTransactionMarker:
    """The marker carried by a decoded control batch (its first record)."""
    if not batch.is_control:
        raise InvalidRecordsError("not a control batch")
    if not batch.records:
        raise InvalidRecordsError("control batch holds no record")
    return EndTransactionMarker.from_record(batch.records[0])
