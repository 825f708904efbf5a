"""Reads: whole stored batches, the first one possibly starting before the fetch offset, the
minOneMessage rule, the max-offset (high watermark) cap, out-of-range offsets."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference.broker.log.clock import ManualClock
from reference.broker.log.config import LogConfig
from reference.errors import Errors, KafkaError

from .helpers import batch, headers, open_log


@pytest.fixture
def log_of_five_batches(tmp_path: Path):  # type: ignore[no-untyped-def]
    log = open_log(tmp_path / "t-0", ManualClock(), LogConfig(segment_bytes=2 * len(batch(4)) + 1))
    for _ in range(5):
        log.append_as_leader(batch(4), 0)  # offsets 0-3, 4-7, ... 16-19, two batches per segment
    log.update_high_watermark(log.log_end_offset)
    return log


def test_fetch_in_the_middle_of_a_batch_returns_the_whole_batch(log_of_five_batches) -> None:  # type: ignore[no-untyped-def]
    found = headers(log_of_five_batches.read(6, 10_000).records)
    assert found[0].base_offset == 4 and found[0].last_offset == 7


def test_read_returns_whole_batches_within_max_bytes(log_of_five_batches) -> None:  # type: ignore[no-untyped-def]
    size = len(batch(4))
    data = log_of_five_batches.read(0, 2 * size + size // 2).records
    assert len(data) == 2 * size
    assert [h.base_offset for h in headers(data)] == [0, 4]


def test_read_does_not_cross_into_the_next_segment(log_of_five_batches) -> None:  # type: ignore[no-untyped-def]
    data = log_of_five_batches.read(0, 1 << 20).records
    assert [h.base_offset for h in headers(data)] == [0, 4]  # a read serves one segment, as in Kafka


def test_first_batch_is_returned_even_if_larger_than_max_bytes_min_one_message(log_of_five_batches) -> None:  # type: ignore[no-untyped-def]
    data = log_of_five_batches.read(8, max_bytes=1).records
    assert [h.base_offset for h in headers(data)] == [8]


def test_without_min_one_message_a_too_small_max_bytes_reads_nothing(log_of_five_batches) -> None:  # type: ignore[no-untyped-def]
    assert log_of_five_batches.read(8, max_bytes=1, min_one_message=False).records == b""


def test_max_offset_caps_the_read_at_the_high_watermark(log_of_five_batches) -> None:  # type: ignore[no-untyped-def]
    log = log_of_five_batches
    assert [h.base_offset for h in headers(log.read(8, 1 << 20, max_offset=12).records)] == [8]
    assert log.read(12, 1 << 20, max_offset=12).records == b""
    assert log.read(8, 1 << 20, max_offset=10).records == b""  # the batch 8-11 is not wholly below 10


def test_fetch_at_the_log_end_offset_is_empty_and_beyond_it_is_out_of_range(log_of_five_batches) -> None:  # type: ignore[no-untyped-def]
    log = log_of_five_batches
    assert log.read(20, 1000).records == b""
    with pytest.raises(KafkaError) as raised:
        log.read(21, 1000)
    assert raised.value.error == Errors.OFFSET_OUT_OF_RANGE


def test_fetch_below_the_log_start_offset_is_out_of_range(log_of_five_batches) -> None:  # type: ignore[no-untyped-def]
    log = log_of_five_batches
    log.delete_records(6)
    with pytest.raises(KafkaError) as raised:
        log.read(5, 1000)
    assert raised.value.error == Errors.OFFSET_OUT_OF_RANGE
    assert headers(log.read(6, 1000).records)[0].base_offset == 4  # the batch holding 6 starts before it


def test_a_validated_batch_from_the_records_validator_is_appended_with_its_log_append_time(tmp_path: Path) -> None:
    from reference.records.batch import TimestampType
    from reference.records.validation import RecordValidationConfig, validate_records_for_append

    clock = ManualClock()
    log = open_log(tmp_path / "t-0", clock)
    log.append_as_leader(batch(2), 0)
    config = RecordValidationConfig(message_timestamp_type=TimestampType.LOG_APPEND_TIME)
    with log.lock:
        validated = validate_records_for_append(
            bytearray(batch(3)), config=config, log_end_offset=log.log_end_offset,
            partition_leader_epoch=4, now_ms=clock.milliseconds(),
        )
        info = log.append_validated(validated, leader_epoch=4)
    assert (info.first_offset, info.last_offset, info.log_append_time) == (2, 4, clock.milliseconds())
    stored = headers(log.read(2, 1000).records)[0]
    assert stored.max_timestamp == clock.milliseconds() and stored.partition_leader_epoch == 4
    log.check_valid()
