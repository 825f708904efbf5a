"""The leader epoch cache and its ``leader-epoch-checkpoint`` file (KIP-101, KIP-279)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference.broker.log.checkpoint import CorruptCheckpointError, EpochEntry, OffsetCheckpointFile
from reference.broker.log.epoch_cache import LeaderEpochFileCache
from reference.broker.log.files import TopicPartition


def cache_with(tmp_path: Path, *entries: tuple[int, int]) -> LeaderEpochFileCache:
    cache = LeaderEpochFileCache(tmp_path / "leader-epoch-checkpoint")
    for epoch, start in entries:
        cache.assign(epoch, start)
    return cache


def test_checkpoint_is_kafkas_text_format_and_round_trips(tmp_path: Path) -> None:
    cache_with(tmp_path, (0, 0), (2, 15), (5, 40))
    assert (tmp_path / "leader-epoch-checkpoint").read_text() == "0\n3\n0 0\n2 15\n5 40\n"
    reloaded = LeaderEpochFileCache(tmp_path / "leader-epoch-checkpoint")
    assert reloaded.entries == [EpochEntry(0, 0), EpochEntry(2, 15), EpochEntry(5, 40)]


def test_reassigning_the_latest_epoch_at_a_later_offset_changes_nothing(tmp_path: Path) -> None:
    cache = cache_with(tmp_path, (1, 10), (1, 20))
    assert cache.entries == [EpochEntry(1, 10)]


def test_an_entry_that_breaks_monotonicity_removes_the_conflicting_ones(tmp_path: Path) -> None:
    cache = cache_with(tmp_path, (1, 10), (3, 20), (4, 30))
    cache.assign(5, 25)
    assert cache.entries == [EpochEntry(1, 10), EpochEntry(3, 20), EpochEntry(5, 25)]
    cache.check_valid()


def test_end_offset_for_the_latest_epoch_is_the_log_end_offset(tmp_path: Path) -> None:
    assert cache_with(tmp_path, (1, 0), (3, 20)).end_offset_for(3, 57) == (3, 57)


def test_end_offset_for_an_older_epoch_is_the_start_of_the_next_one(tmp_path: Path) -> None:
    assert cache_with(tmp_path, (1, 0), (3, 20), (6, 40)).end_offset_for(3, 57) == (3, 40)


def test_end_offset_for_an_unknown_epoch_between_known_ones_answers_the_floor_epoch(tmp_path: Path) -> None:
    assert cache_with(tmp_path, (1, 0), (3, 20), (6, 40)).end_offset_for(4, 57) == (3, 40)


def test_end_offset_for_an_epoch_older_than_all_is_the_first_start_offset(tmp_path: Path) -> None:
    assert cache_with(tmp_path, (2, 5), (3, 20)).end_offset_for(1, 57) == (1, 5)


def test_end_offset_for_undefined_or_future_epoch_is_undefined(tmp_path: Path) -> None:
    cache = cache_with(tmp_path, (2, 5), (3, 20))
    assert cache.end_offset_for(-1, 57) == (-1, -1)
    assert cache.end_offset_for(9, 57) == (-1, -1)


def test_end_offset_from_an_empty_cache_is_undefined(tmp_path: Path) -> None:
    assert cache_with(tmp_path).end_offset_for(0, 5) == (-1, -1)


def test_truncate_from_end_drops_epochs_starting_at_or_after_the_offset(tmp_path: Path) -> None:
    cache = cache_with(tmp_path, (1, 0), (3, 20), (6, 40))
    cache.truncate_from_end(20)
    assert cache.entries == [EpochEntry(1, 0)]
    assert LeaderEpochFileCache(tmp_path / "leader-epoch-checkpoint").entries == [EpochEntry(1, 0)]


def test_truncate_from_start_keeps_the_epoch_in_force_at_the_new_start(tmp_path: Path) -> None:
    cache = cache_with(tmp_path, (1, 0), (3, 20), (6, 40))
    cache.truncate_from_start(25)
    assert cache.entries == [EpochEntry(3, 25), EpochEntry(6, 40)]


def test_epoch_for_offset(tmp_path: Path) -> None:
    cache = cache_with(tmp_path, (1, 0), (3, 20))
    assert [cache.epoch_for_offset(o) for o in (0, 19, 20, 99)] == [1, 1, 3, 3]


def test_offset_checkpoint_file_format_and_round_trip(tmp_path: Path) -> None:
    checkpoint = OffsetCheckpointFile(tmp_path / "replication-offset-checkpoint")
    checkpoint.write({TopicPartition("orders", 1): 42, TopicPartition("my-topic", 0): 7})
    assert (tmp_path / "replication-offset-checkpoint").read_text() == "0\n2\nmy-topic 0 7\norders 1 42\n"
    assert checkpoint.read() == {TopicPartition("orders", 1): 42, TopicPartition("my-topic", 0): 7}


def test_a_checkpoint_with_a_wrong_count_is_corrupt(tmp_path: Path) -> None:
    (tmp_path / "recovery-point-offset-checkpoint").write_text("0\n3\norders 1 42\n")
    with pytest.raises(CorruptCheckpointError):
        OffsetCheckpointFile(tmp_path / "recovery-point-offset-checkpoint").read()
