"""Recovery on start: torn or corrupt tails are cut, complete batches kept, indexes rebuilt."""

from __future__ import annotations

import os
from pathlib import Path

from reference.broker.log.clock import ManualClock
from reference.broker.log.config import LogConfig
from reference.broker.log.log import PartitionLog

from .helpers import T0, batch, open_log, read_all

CONFIG = LogConfig(segment_bytes=10 * len(batch(3)), index_interval_bytes=200)


def _write_batches(directory: Path, clock: ManualClock, count: int) -> PartitionLog:
    log = open_log(directory, clock, CONFIG)
    for n in range(count):
        log.append_as_leader(batch(3, timestamp=T0 + n, value=b"v%d" % n), leader_epoch=0)
    log.update_high_watermark(log.log_end_offset)
    return log


def _crash(log: PartitionLog) -> None:
    """What kill -9 leaves: written bytes are in the page cache, nothing else happens."""
    log.close_without_flush()


def _assert_contiguous(log: PartitionLog, expected_end: int) -> None:
    offsets = [offset for header in read_all(log) for offset in range(header.base_offset, header.next_offset)]
    assert offsets == list(range(expected_end))
    assert log.log_end_offset == expected_end
    log.check_valid()


def test_after_kill_every_written_batch_is_still_there(tmp_path: Path) -> None:
    clock = ManualClock()
    log = _write_batches(tmp_path / "t-0", clock, 25)
    _crash(log)
    again = open_log(tmp_path / "t-0", clock, CONFIG, recovery_point=0)
    _assert_contiguous(again, 75)
    assert again.recovered_bytes_truncated == 0


def test_segment_cut_mid_batch_by_hand_loses_only_the_torn_batch(tmp_path: Path) -> None:
    clock = ManualClock()
    log = _write_batches(tmp_path / "t-0", clock, 25)
    active = log.active_segment.log_path
    _crash(log)
    os.truncate(active, active.stat().st_size - 7)
    again = open_log(tmp_path / "t-0", clock, CONFIG)
    _assert_contiguous(again, 72)
    assert again.recovered_bytes_truncated == len(batch(3, value=b"v24")) - 7
    info = again.append_as_leader(batch(1), 0)  # appends continue right after the last whole batch
    assert info.first_offset == 72
    _assert_contiguous(again, 73)


def test_a_flipped_byte_fails_the_crc_and_cuts_the_log_there(tmp_path: Path) -> None:
    clock = ManualClock()
    log = _write_batches(tmp_path / "t-0", clock, 5)
    path = log.active_segment.log_path
    _crash(log)
    data = bytearray(path.read_bytes())
    data[sum(len(batch(3, value=b"v%d" % n)) for n in range(3)) + 70] ^= 0xFF  # inside the records of the fourth batch
    path.write_bytes(bytes(data))
    again = open_log(tmp_path / "t-0", clock, CONFIG)
    _assert_contiguous(again, 9)


def test_zeros_after_the_last_batch_are_removed(tmp_path: Path) -> None:
    clock = ManualClock()
    log = _write_batches(tmp_path / "t-0", clock, 4)
    path = log.active_segment.log_path
    _crash(log)
    with open(path, "ab") as handle:
        handle.write(bytes(100))
    again = open_log(tmp_path / "t-0", clock, CONFIG)
    _assert_contiguous(again, 12)
    assert path.stat().st_size == sum(len(batch(3, value=b"v%d" % n)) for n in range(4))


def test_corruption_in_an_older_unflushed_segment_removes_all_later_segments(tmp_path: Path) -> None:
    clock = ManualClock()
    log = _write_batches(tmp_path / "t-0", clock, 25)  # 3 segments of 10 batches (30 offsets)
    first_path = log.segments[0].log_path
    _crash(log)
    os.truncate(first_path, first_path.stat().st_size - 1)
    again = open_log(tmp_path / "t-0", clock, CONFIG, recovery_point=0)
    _assert_contiguous(again, 27)
    assert [segment.base_offset for segment in again.segments] == [0]


def test_segments_below_the_recovery_point_are_trusted(tmp_path: Path) -> None:
    clock = ManualClock()
    log = _write_batches(tmp_path / "t-0", clock, 25)
    recovery_point = log.recovery_point
    assert recovery_point == 60  # rolls fsync the old segment and move the recovery point
    _crash(log)
    again = open_log(tmp_path / "t-0", clock, CONFIG, recovery_point=recovery_point)
    _assert_contiguous(again, 75)
    assert again.recovery_point == 60


def test_clean_shutdown_skips_recovery_but_a_hand_cut_tail_is_still_removed(tmp_path: Path) -> None:
    clock = ManualClock()
    log = _write_batches(tmp_path / "t-0", clock, 12)
    path = log.active_segment.log_path
    log.close()
    os.truncate(path, path.stat().st_size - 5)
    again = open_log(tmp_path / "t-0", clock, CONFIG, had_clean_shutdown=True, recovery_point=36)
    _assert_contiguous(again, 33)


def test_corrupt_index_is_rebuilt(tmp_path: Path) -> None:
    clock = ManualClock()
    log = _write_batches(tmp_path / "t-0", clock, 25)
    first = log.segments[0]
    expected = [first.offset_index.entry(n) for n in range(first.offset_index.entries)]
    assert expected
    log.close()
    first.offset_index.path.write_bytes(b"\x00\x00\x00\x09\x7f\xff\xff\xff\x00")  # junk, bad length
    again = open_log(tmp_path / "t-0", clock, CONFIG, had_clean_shutdown=True, recovery_point=75)
    rebuilt = again.segments[0].offset_index
    assert [rebuilt.entry(n) for n in range(rebuilt.entries)] == expected
    _assert_contiguous(again, 75)


def test_missing_index_and_time_index_are_rebuilt(tmp_path: Path) -> None:
    clock = ManualClock()
    log = _write_batches(tmp_path / "t-0", clock, 25)
    first = log.segments[0]
    expected_time = [first.time_index.entry(n) for n in range(first.time_index.entries)]
    log.close()
    first.offset_index.path.unlink()
    first.time_index.path.unlink()
    again = open_log(tmp_path / "t-0", clock, CONFIG, had_clean_shutdown=True, recovery_point=75)
    rebuilt = again.segments[0]
    assert rebuilt.offset_index.entries > 0
    assert [rebuilt.time_index.entry(n) for n in range(rebuilt.time_index.entries)] == expected_time
    assert again.fetch_offset_by_timestamp(T0 + 7) is not None
    _assert_contiguous(again, 75)


def test_recovery_rebuilds_the_leader_epoch_cache_from_batches(tmp_path: Path) -> None:
    clock = ManualClock()
    log = open_log(tmp_path / "t-0", clock, CONFIG)
    for epoch in (0, 0, 3, 3, 5):
        log.append_as_leader(batch(2), epoch)
    _crash(log)
    (tmp_path / "t-0" / "leader-epoch-checkpoint").unlink()
    again = open_log(tmp_path / "t-0", clock, CONFIG)
    assert [(e.epoch, e.start_offset) for e in again.leader_epoch_cache.entries] == [(0, 0), (3, 4), (5, 8)]


def test_flush_messages_fsyncs_and_advances_the_recovery_point(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", ManualClock(), LogConfig(flush_messages=6))
    log.append_as_leader(batch(3), 0)
    assert log.recovery_point == 0  # Kafka's default flush policy: no fsync per append
    log.append_as_leader(batch(3), 0)
    assert log.recovery_point == 6


def test_flush_ms_flushes_when_the_scheduler_asks_after_the_interval(tmp_path: Path) -> None:
    clock = ManualClock()
    log = open_log(tmp_path / "t-0", clock, LogConfig(flush_ms=1000))
    log.append_as_leader(batch(3), 0)
    assert not log.maybe_flush()
    clock.advance(1000)
    assert log.maybe_flush()
    assert log.recovery_point == 3
