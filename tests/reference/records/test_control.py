"""Control records: transaction markers as the partition leader writes them."""

from __future__ import annotations

import pytest
from aiokafka.record.control_record import ABORT_MARKER, COMMIT_MARKER
from aiokafka.record.control_record import ControlRecord as AiokafkaControlRecord
from aiokafka.record.default_records import DefaultRecordBatch as AiokafkaBatchReader
from hypothesis import given
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch as KafkaPythonBatchReader

from reference.records.batch import NO_SEQUENCE, BatchHeader, RecordBatch, crc_is_valid
from reference.records.control import (
    ControlRecordType,
    EndTransactionMarker,
    build_end_transaction_marker_batch,
    decode_control_key,
    decode_end_transaction_marker,
    encode_control_key,
)
from reference.records.decode_errors import InvalidRecordsError
from reference.records.record import Record


def commit_marker_batch() -> bytes:
    return build_end_transaction_marker_batch(
        EndTransactionMarker(ControlRecordType.COMMIT, coordinator_epoch=17),
        producer_id=4000,
        producer_epoch=3,
        timestamp=1_700_000_000_000,
        base_offset=42,
        partition_leader_epoch=5,
    )


def test_control_key_is_version_then_type_as_int16s() -> None:
    assert encode_control_key(ControlRecordType.ABORT) == b"\x00\x00\x00\x00"
    assert encode_control_key(ControlRecordType.COMMIT) == b"\x00\x00\x00\x01"


def test_marker_value_is_version_then_coordinator_epoch() -> None:
    marker = EndTransactionMarker(ControlRecordType.ABORT, coordinator_epoch=0x01020304)
    assert marker.value() == b"\x00\x00\x01\x02\x03\x04"


def test_a_marker_batch_is_one_transactional_control_record_without_sequence() -> None:
    raw = commit_marker_batch()
    header = BatchHeader.decode(raw)
    assert crc_is_valid(raw)
    assert header.is_control and header.is_transactional
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (4000, 3, NO_SEQUENCE)
    assert (header.base_offset, header.partition_leader_epoch, header.record_count) == (42, 5, 1)
    marker = decode_end_transaction_marker(RecordBatch.decode(raw))
    assert marker == EndTransactionMarker(ControlRecordType.COMMIT, 17) and marker.is_commit


@pytest.mark.parametrize("control_type", [ControlRecordType.ABORT, ControlRecordType.COMMIT])
def test_kafka_python_reads_our_markers_as_control_records(control_type: ControlRecordType) -> None:
    raw = build_end_transaction_marker_batch(
        EndTransactionMarker(control_type, 1), producer_id=1, producer_epoch=0, timestamp=5
    )
    batch = KafkaPythonBatchReader(raw)
    assert batch.is_control_batch and batch.validate_crc()
    (record,) = list(batch)
    assert record.type == control_type
    assert record.commit == (control_type is ControlRecordType.COMMIT)


@pytest.mark.parametrize(
    ("control_type", "expected"),
    [(ControlRecordType.ABORT, ABORT_MARKER), (ControlRecordType.COMMIT, COMMIT_MARKER)],
)
def test_aiokafka_reads_our_markers_as_its_abort_and_commit_markers(
    control_type: ControlRecordType, expected: AiokafkaControlRecord
) -> None:
    raw = build_end_transaction_marker_batch(
        EndTransactionMarker(control_type, 1), producer_id=1, producer_epoch=0, timestamp=5
    )
    batch = AiokafkaBatchReader(raw)
    assert batch.is_control_batch and batch.validate_crc()
    (record,) = list(batch)
    assert AiokafkaControlRecord.parse(record.key) == expected


def test_unknown_control_types_read_as_unknown() -> None:
    assert decode_control_key(b"\x00\x00\x00\x63") is ControlRecordType.UNKNOWN
    assert decode_control_key(b"\x00\x00\x00\x02") is ControlRecordType.LEADER_CHANGE


def test_a_newer_key_version_is_read_as_version_zero() -> None:
    assert decode_control_key(b"\x00\x07\x00\x01") is ControlRecordType.COMMIT


@pytest.mark.parametrize("key", [None, b"", b"\x00\x00\x00", b"\xff\xff\x00\x01"])
def test_a_short_or_negative_version_key_is_invalid(key: bytes | None) -> None:
    with pytest.raises(InvalidRecordsError):
        decode_control_key(key)


@pytest.mark.parametrize("value", [None, b"\x00\x00\x00\x00\x00", b"\xff\xff\x00\x00\x00\x01"])
def test_a_short_or_negative_version_marker_value_is_invalid(value: bytes | None) -> None:
    record = Record(0, 0, encode_control_key(ControlRecordType.ABORT), value)
    with pytest.raises(InvalidRecordsError):
        EndTransactionMarker.from_record(record)


def test_a_marker_must_be_commit_or_abort() -> None:
    with pytest.raises(ValueError, match="end transaction marker"):
        EndTransactionMarker(ControlRecordType.LEADER_CHANGE, 0)
    record = Record(0, 0, encode_control_key(ControlRecordType.LEADER_CHANGE), b"\x00\x00\x00\x00\x00\x00")
    with pytest.raises(InvalidRecordsError):
        EndTransactionMarker.from_record(record)


def test_a_plain_batch_carries_no_marker() -> None:
    batch = RecordBatch.decode(commit_marker_batch())
    plain = RecordBatch(
        records=batch.records, last_offset_delta=0, base_timestamp=0, max_timestamp=0, is_control=False
    )
    with pytest.raises(InvalidRecordsError, match="not a control batch"):
        decode_end_transaction_marker(plain)


@given(st.binary(max_size=12), st.binary(max_size=12))
def test_any_key_and_value_decode_or_raise_invalid_records(key: bytes, value: bytes) -> None:
    try:
        EndTransactionMarker.from_record(Record(0, 0, key, value))
    except InvalidRecordsError:
        pass
