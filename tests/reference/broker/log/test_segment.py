"""Segments: files named by base offset, sparse indexing, rolling, reading whole batches."""

from __future__ import annotations

from pathlib import Path

from reference.broker.log.clock import ManualClock
from reference.broker.log.config import LogConfig
from reference.broker.log.index import TimestampOffset

from .helpers import T0, batch, headers, open_log


def test_segment_files_are_named_by_20_digit_base_offset(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log = open_log(tmp_path / "orders-3", clock, LogConfig(segment_bytes=300))
    for _ in range(6):
        log.append_as_leader(batch(3), leader_epoch=0)
    names = sorted(path.name for path in (tmp_path / "orders-3").iterdir() if path.suffix == ".log")
    assert names[0] == "00000000000000000000.log"
    assert all(len(name) == len("00000000000000000000.log") for name in names)
    assert [int(name[:20]) for name in names] == [segment.base_offset for segment in log.segments]
    log.check_valid()


def test_segment_rolls_when_segment_bytes_would_be_exceeded(tmp_path: Path) -> None:
    one = len(batch(3))
    log = open_log(tmp_path / "t-0", ManualClock(), LogConfig(segment_bytes=2 * one + 1))
    for _ in range(5):
        log.append_as_leader(batch(3), 0)
    assert [segment.base_offset for segment in log.segments] == [0, 6, 12]
    assert all(segment.size <= 2 * one + 1 for segment in log.segments)


def test_segment_rolls_when_new_batch_is_segment_ms_after_first_batch_timestamp(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log = open_log(tmp_path / "t-0", clock, LogConfig(segment_ms=1000))
    log.append_as_leader(batch(1, timestamp=T0), 0)
    log.append_as_leader(batch(1, timestamp=T0 + 1000), 0)  # exactly segment.ms: no roll
    assert len(log.segments) == 1
    log.append_as_leader(batch(1, timestamp=T0 + 1001), 0)
    assert [segment.base_offset for segment in log.segments] == [0, 2]


def test_segment_rolls_when_offset_index_is_full(tmp_path: Path) -> None:
    one = len(batch(1))
    config = LogConfig(index_interval_bytes=1, segment_index_bytes=8 * 2)  # two offset-index entries
    log = open_log(tmp_path / "t-0", ManualClock(), config)
    for _ in range(8):
        log.append_as_leader(batch(1), 0)
    assert len(log.segments) > 1
    assert all(segment.offset_index.entries <= 2 for segment in log.segments)
    assert one > 1
    log.check_valid()


def test_index_entry_is_added_after_index_interval_bytes_and_points_at_a_batch_start(tmp_path: Path) -> None:
    one = len(batch(2))
    log = open_log(tmp_path / "t-0", ManualClock(), LogConfig(index_interval_bytes=2 * one))
    for _ in range(10):
        log.append_as_leader(batch(2), 0)
    index = log.active_segment.offset_index
    # Kafka indexes a batch once *more than* index.interval.bytes were appended since the last entry.
    assert [index.entry(n).position for n in range(index.entries)] == [3 * one, 6 * one, 9 * one]
    assert [index.entry(n).offset for n in range(index.entries)] == [7, 13, 19]  # the batch's last offset
    log.check_valid()


def test_time_index_maps_largest_timestamp_so_far_to_its_batch(tmp_path: Path) -> None:
    one = len(batch(1))
    log = open_log(tmp_path / "t-0", ManualClock(), LogConfig(index_interval_bytes=one - 1))
    for timestamp in (T0 + 50, T0 + 10, T0 + 60, T0 + 20):
        log.append_as_leader(batch(1, timestamp=timestamp), 0)
    time_index = log.active_segment.time_index
    entries = [time_index.entry(n) for n in range(time_index.entries)]
    assert entries == [TimestampOffset(T0 + 50, 0), TimestampOffset(T0 + 60, 2)]


def test_reopened_segment_finds_its_next_offset_and_max_timestamp(tmp_path: Path) -> None:
    clock = ManualClock()
    log = open_log(tmp_path / "t-0", clock, LogConfig(index_interval_bytes=100))
    for n in range(20):
        log.append_as_leader(batch(2, timestamp=T0 + n), 0)
    log.close()
    again = open_log(tmp_path / "t-0", clock, LogConfig(index_interval_bytes=100), had_clean_shutdown=True)
    assert again.log_end_offset == 40
    assert again.active_segment.max_timestamp_and_offset == TimestampOffset(T0 + 19 + 1, 39)
    again.check_valid()


def test_stored_batch_keeps_its_bytes_except_offset_and_leader_epoch(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", ManualClock())
    log.append_as_leader(batch(1), 0)
    produced = batch(3, value=b"payload")
    log.append_as_leader(produced, leader_epoch=7)
    stored = log.read(1, 10_000).records
    assert stored[12:16] == (7).to_bytes(4, "big")  # partitionLeaderEpoch stamped
    assert stored[0:8] == (1).to_bytes(8, "big")  # baseOffset assigned
    assert stored[8:12] + stored[16:] == produced[8:12] + produced[16:]  # everything else as received
    assert headers(stored)[0].crc == headers(produced)[0].crc
