"""Whose bytes an append writes: a leader stamps offsets into a writable buffer the caller hands
over (the produce path's request frame reaches the file with no copy in between), copies a
read-only one first, and a follower writes what it was given untouched."""

from __future__ import annotations

from pathlib import Path

from reference.broker.log.clock import ManualClock
from reference.records.batch import BatchHeader

from .helpers import batch, open_log


def test_a_writable_buffer_is_stamped_in_place_and_is_what_the_file_holds(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", ManualClock())
    log.append_as_leader(batch(3), 0)  # offsets 0-2, so the next batch does not start at 0
    handed_over = bytearray(batch(2))
    info = log.append_as_leader(handed_over, 7)
    stamped = BatchHeader.decode(handed_over, 0)
    assert (stamped.base_offset, stamped.partition_leader_epoch) == (3, 7) == (info.first_offset, 7)
    log.update_high_watermark(log.log_end_offset)
    assert log.read(3, 1 << 20).records == bytes(handed_over)


def test_a_writable_view_of_a_larger_frame_is_stamped_in_place(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", ManualClock())
    log.append_as_leader(batch(1), 0)
    frame = bytearray(b"\xff" * 16) + bytearray(batch(2))  # a request frame: other bytes, then the batch
    log.append_as_leader(memoryview(frame)[16:], 4)
    assert BatchHeader.decode(frame, 16).base_offset == 1
    assert frame[:16] == b"\xff" * 16


def test_read_only_bytes_are_copied_before_the_offsets_are_written(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", ManualClock())
    log.append_as_leader(batch(2), 0)
    original = batch(1)
    log.append_as_leader(original, 5)
    assert original == batch(1)  # untouched: base offset 0, epoch -1 as built
    log.update_high_watermark(log.log_end_offset)
    assert BatchHeader.decode(log.read(2, 1 << 20).records, 0).base_offset == 2


def test_a_follower_appends_a_read_only_view_as_the_leader_stamped_it(tmp_path: Path) -> None:
    leader = open_log(tmp_path / "leader-0", ManualClock())
    follower = open_log(tmp_path / "follower-0", ManualClock())
    for count in (2, 3):
        leader.append_as_leader(batch(count), 1)
    leader.update_high_watermark(leader.log_end_offset)
    fetched = leader.read(0, 1 << 20).records
    follower.append_as_follower(memoryview(bytes(fetched)))
    follower.update_high_watermark(follower.log_end_offset)
    assert follower.read(0, 1 << 20).records == fetched
