"""The sparse ``.index`` and ``.timeindex`` files: Kafka's layouts, lookups, truncation, sanity."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from reference.broker.log.index import (
    NO_TIMESTAMP,
    CorruptIndexError,
    OffsetIndex,
    OffsetPosition,
    TimeIndex,
    TimestampOffset,
)


def test_offset_index_file_holds_relative_offset_and_position_as_two_int32(tmp_path: Path) -> None:
    index = OffsetIndex(tmp_path / "x.index", base_offset=100, max_index_size=80)
    index.append(105, 4200)
    index.append(130, 9000)
    index.close()
    assert (tmp_path / "x.index").read_bytes() == struct.pack(">iiii", 5, 4200, 30, 9000)


def test_offset_index_lookup_returns_greatest_entry_at_or_below_target(tmp_path: Path) -> None:
    index = OffsetIndex(tmp_path / "x.index", 100, 80)
    index.append(105, 4200)
    index.append(130, 9000)
    assert index.lookup(99) == OffsetPosition(100, 0)
    assert index.lookup(104) == OffsetPosition(100, 0)
    assert index.lookup(105) == OffsetPosition(105, 4200)
    assert index.lookup(129) == OffsetPosition(105, 4200)
    assert index.lookup(10_000) == OffsetPosition(130, 9000)


def test_offset_index_reloads_from_file_and_truncates(tmp_path: Path) -> None:
    index = OffsetIndex(tmp_path / "x.index", 0, 80)
    for n in range(1, 6):
        index.append(n * 10, n * 1000)
    index.close()
    again = OffsetIndex(tmp_path / "x.index", 0, 80)
    assert again.entries == 5
    again.truncate_to(30)  # removes the entry for 30 and everything larger
    assert [again.entry(n).offset for n in range(again.entries)] == [10, 20]
    assert (tmp_path / "x.index").stat().st_size == 16


def test_offset_index_is_full_at_segment_index_bytes(tmp_path: Path) -> None:
    index = OffsetIndex(tmp_path / "x.index", 0, max_index_size=16)
    index.append(1, 10)
    index.append(2, 20)
    assert index.is_full
    with pytest.raises(ValueError):
        index.append(3, 30)


def test_offset_index_sanity_check_rejects_partial_entry_and_disorder(tmp_path: Path) -> None:
    path = tmp_path / "x.index"
    path.write_bytes(struct.pack(">ii", 5, 100) + b"\x00\x00\x00")
    with pytest.raises(CorruptIndexError):
        OffsetIndex(path, 0, 80).sanity_check(log_size=1000)
    path.write_bytes(struct.pack(">iiii", 5, 100, 3, 200))
    with pytest.raises(CorruptIndexError):
        OffsetIndex(path, 0, 80).sanity_check(log_size=1000)
    path.write_bytes(struct.pack(">ii", 5, 5000))
    with pytest.raises(CorruptIndexError):
        OffsetIndex(path, 0, 80).sanity_check(log_size=1000)


def test_time_index_appends_only_larger_timestamps_and_looks_up_floor(tmp_path: Path) -> None:
    index = TimeIndex(tmp_path / "x.timeindex", 50, 120)
    index.maybe_append(1000, 55)
    index.maybe_append(1000, 57)  # not larger: ignored, as in Kafka
    index.maybe_append(2000, 60)
    assert index.entries == 2
    assert index.lookup(999) == TimestampOffset(NO_TIMESTAMP, 50)
    assert index.lookup(1500) == TimestampOffset(1000, 55)
    assert index.lookup(2000) == TimestampOffset(2000, 60)
    index.close()
    assert (tmp_path / "x.timeindex").read_bytes() == struct.pack(">qiqi", 1000, 5, 2000, 10)


def test_time_index_reserves_its_last_slot_for_the_roll_entry(tmp_path: Path) -> None:
    index = TimeIndex(tmp_path / "x.timeindex", 0, max_index_size=36)  # three entries
    index.maybe_append(1, 1)
    index.maybe_append(2, 2)
    assert index.is_full
    index.maybe_append(3, 3, skip_full_check=True)
    assert index.entries == 3


def test_empty_time_index_last_entry_is_no_timestamp_at_base_offset(tmp_path: Path) -> None:
    assert TimeIndex(tmp_path / "x.timeindex", 7, 120).last_entry() == TimestampOffset(NO_TIMESTAMP, 7)
