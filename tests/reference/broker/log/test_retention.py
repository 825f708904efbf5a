"""Retention by time and size, DeleteRecords, and truncation: whole segments, log start offset."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference.broker.log.clock import ManualClock
from reference.broker.log.config import LogConfig
from reference.broker.log.log import EARLIEST_TIMESTAMP, PartitionLog
from reference.errors import Errors, KafkaError

from .helpers import T0, batch, headers, open_log, read_all

SIZE = len(batch(5))


def _log(tmp_path: Path, clock: ManualClock, **config: object) -> PartitionLog:
    log = open_log(tmp_path / "t-0", clock, LogConfig(segment_bytes=2 * SIZE, **config))  # type: ignore[arg-type]
    for n in range(7):  # 7 batches of 5 -> segments [0,10) [10,20) [20,30) [30,35)
        log.append_as_leader(batch(5, timestamp=T0 + 1000 * n), 0)
    log.update_high_watermark(log.log_end_offset)
    return log


def test_retention_ms_deletes_closed_segments_whose_newest_record_is_too_old(tmp_path: Path) -> None:
    clock = ManualClock(T0 + 3000)
    log = _log(tmp_path, clock, retention_ms=2000)
    assert log.delete_old_segments() == 0  # newest record of [0,10) is T0+1004: 1996 ms old
    clock.now_ms = T0 + 1004 + 2001
    assert log.delete_old_segments() == 1
    assert log.log_start_offset == 10
    assert [segment.base_offset for segment in log.segments] == [10, 20, 30]
    assert not (tmp_path / "t-0" / "00000000000000000000.log").exists()
    log.check_valid()


def test_retention_never_deletes_the_last_segment_but_rolls_to_empty_it(tmp_path: Path) -> None:
    clock = ManualClock(T0 + 10**9)
    log = _log(tmp_path, clock, retention_ms=1)
    assert log.delete_old_segments() == 4
    assert log.log_start_offset == log.log_end_offset == 35
    assert [segment.base_offset for segment in log.segments] == [35]
    assert log.read(35, 1000).records == b""
    log.check_valid()


def test_retention_bytes_deletes_oldest_segments_until_the_log_fits(tmp_path: Path) -> None:
    log = _log(tmp_path, ManualClock(T0), retention_bytes=3 * SIZE)
    assert log.delete_old_segments() == 2  # 7 batches -> drop two 2-batch segments, 3 batches remain
    assert log.size_in_bytes == 3 * SIZE
    assert log.log_start_offset == 20
    log.check_valid()


def test_retention_does_not_apply_to_a_compact_only_topic(tmp_path: Path) -> None:
    log = _log(tmp_path, ManualClock(T0 + 10**9), retention_ms=1, cleanup_policy=frozenset({"compact"}))
    assert log.delete_old_segments() == 0


def test_retention_stops_at_the_high_watermark(tmp_path: Path) -> None:
    log = _log(tmp_path, ManualClock(T0 + 10**9), retention_ms=1)
    log.update_high_watermark(15)
    assert log.delete_old_segments() == 1
    assert log.log_start_offset == 10


def test_delete_records_advances_the_log_start_offset_and_drops_whole_segments(tmp_path: Path) -> None:
    log = _log(tmp_path, ManualClock(T0))
    assert log.delete_records(23) == 23
    assert [segment.base_offset for segment in log.segments] == [20, 30]
    assert log.fetch_offset_by_timestamp(EARLIEST_TIMESTAMP).offset == 23  # type: ignore[union-attr]
    assert headers(log.read(23, 1000).records)[0].base_offset == 20
    log.check_valid()


def test_delete_records_past_the_high_watermark_is_out_of_range(tmp_path: Path) -> None:
    log = _log(tmp_path, ManualClock(T0))
    log.update_high_watermark(12)
    with pytest.raises(KafkaError) as raised:
        log.delete_records(13)
    assert raised.value.error == Errors.OFFSET_OUT_OF_RANGE


def test_log_start_offset_survives_restart_through_its_checkpoint_value(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log = _log(tmp_path, clock)
    log.delete_records(23)
    log.close()
    again = open_log(tmp_path / "t-0", clock, LogConfig(segment_bytes=2 * SIZE), log_start_offset=23, had_clean_shutdown=True)
    assert again.log_start_offset == 23


def test_truncate_to_removes_later_segments_and_batches(tmp_path: Path) -> None:
    log = _log(tmp_path, ManualClock(T0))
    assert log.truncate_to(17)  # the batch 15-19 holds 17: it goes too
    assert log.log_end_offset == 15
    assert log.high_watermark == 15
    assert [h.base_offset for h in read_all(log)] == [0, 5, 10]
    assert [segment.base_offset for segment in log.segments] == [0, 10]
    assert log.append_as_leader(batch(1), 1).first_offset == 15
    log.check_valid()


def test_truncate_below_the_first_segment_restarts_the_log(tmp_path: Path) -> None:
    log = _log(tmp_path, ManualClock(T0))
    log.delete_records(20)
    log.truncate_to(5)
    assert log.log_start_offset == log.log_end_offset == 5
    log.check_valid()


def test_timestamp_lookup_finds_the_first_record_at_or_after_the_target(tmp_path: Path) -> None:
    log = _log(tmp_path, ManualClock(T0))
    found = log.fetch_offset_by_timestamp(T0 + 2002)
    assert found is not None and (found.offset, found.timestamp) == (12, T0 + 2002)
    found = log.fetch_offset_by_timestamp(T0 + 2100)  # between batches: the next batch's first record
    assert found is not None and (found.offset, found.timestamp) == (15, T0 + 3000)
    assert log.fetch_offset_by_timestamp(T0 + 10**6) is None
    maximum = log.fetch_offset_by_timestamp(-3)
    assert maximum is not None and (maximum.offset, maximum.timestamp) == (34, T0 + 6004)
