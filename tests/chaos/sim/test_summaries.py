"""The checker's log summaries are exact: extended after appends, reread after any other change.

The invariant checker reads each replica's log after every event; to stay linear it extends a
summary by the batches appended since it was read, and trusts that only while the log's
``rewrites`` counter has not moved.  These tests pin both halves: which log operations move the
counter (all but an append), and that a summary always equals a fresh full read -- in particular
after a truncation followed by appends that restore the same LEO and size with other records,
the case a cache keyed on the log's extent would miss."""

from __future__ import annotations

from pathlib import Path

from chaos.sim.invariants import LogSummary, _Summaries
from reference.broker.log.cleaner import clean_log
from reference.broker.log.clock import ManualClock
from reference.broker.log.config import LogConfig
from reference.broker.log.log import LogStartOffsetIncrementReason, PartitionLog
from reference.records.batch import SimpleRecord, build_batch

T0 = 1_700_000_000_000


def _append(log: PartitionLog, value: str, epoch: int = 0, key: bytes = b"k") -> None:
    log.append_as_leader(build_batch([SimpleRecord(value.encode(), key, T0)]), epoch)


def _open(path: Path, config: LogConfig | None = None) -> PartitionLog:
    return PartitionLog.open(path, config or LogConfig(), ManualClock(T0))


def _fresh(log: PartitionLog) -> LogSummary | None:
    return _Summaries().of(log, values=True)


def _same(a: LogSummary | None, b: LogSummary | None) -> bool:
    assert a is not None and b is not None
    return ((a.log_start_offset, a.log_end_offset, a.batches, a.values, a.ordered, a.epoch_drop)
            == (b.log_start_offset, b.log_end_offset, b.batches, b.values, b.ordered, b.epoch_drop))


def test_every_change_but_an_append_moves_the_rewrites_counter(tmp_path: Path) -> None:
    log = _open(tmp_path / "t-0", LogConfig(segment_bytes=300))
    for n in range(12):
        before = log.rewrites
        _append(log, f"v{n}")
        assert log.rewrites == before, "an append at the end is no rewrite"
    assert len(log.segments) > 2
    log.update_high_watermark(log.log_end_offset)
    assert log.rewrites == before, "nor is a new high watermark"

    before = log.rewrites
    log.truncate_to(log.log_end_offset)  # nothing at or above the LEO: nothing removed
    assert log.rewrites == before
    log.truncate_to(log.log_end_offset - 1)
    assert log.rewrites > before

    before = log.rewrites
    log.maybe_increment_log_start_offset(2, LogStartOffsetIncrementReason.CLIENT_RECORD_DELETION)
    assert log.rewrites > before

    before = log.rewrites
    log.update_high_watermark(log.log_end_offset)
    log.delete_records(log.segments[1].base_offset + 1)  # drops the first segment
    assert log.rewrites > before

    before = log.rewrites
    log.truncate_fully_and_start_at(100)
    assert log.rewrites > before


def test_a_compaction_swap_moves_the_rewrites_counter(tmp_path: Path) -> None:
    log = _open(tmp_path / "t-0", LogConfig(segment_bytes=300, cleanup_policy=frozenset({"compact"})))
    for n in range(12):
        _append(log, f"v{n}")  # one key: compaction keeps the newest only
    log.roll()
    log.update_high_watermark(log.log_end_offset)
    before = log.rewrites
    assert clean_log(log).segments_cleaned > 0
    assert log.rewrites > before


def test_a_summary_extended_after_appends_equals_a_full_read(tmp_path: Path) -> None:
    log = _open(tmp_path / "t-0", LogConfig(segment_bytes=300))
    summaries = _Summaries()
    first = summaries.of(log, values=True)
    for n in range(10):
        _append(log, f"v{n}", epoch=n // 3)
        extended = summaries.of(log, values=True)
        assert extended is not None and first is not None and extended.serial != first.serial
        assert _same(extended, _fresh(log))
    assert summaries.of(log, values=True) is extended, "nothing changed: the same summary"


def test_a_truncation_then_appends_to_the_same_extent_is_seen(tmp_path: Path) -> None:
    """Same LEO, same log start, same size in bytes, other records: the summary must change."""
    log = _open(tmp_path / "t-0")
    summaries = _Summaries()
    for n in range(5):
        _append(log, f"a{n}")
    before = summaries.of(log, values=True)
    assert before is not None
    extent = (log.log_start_offset, log.log_end_offset, log.size_in_bytes)
    log.truncate_to(3)
    _append(log, "b3")
    _append(log, "b4")
    assert (log.log_start_offset, log.log_end_offset, log.size_in_bytes) == extent
    after = summaries.of(log, values=True)
    assert after is not None and after.value_at(3) == "b3" and after.value_at(4) == "b4"
    assert before.value_at(3) == "a3"
    assert _same(after, _fresh(log))


def test_an_epoch_drop_is_seen_in_an_extension_and_below_bisects_like_a_filter(tmp_path: Path) -> None:
    log = _open(tmp_path / "t-0")
    summaries = _Summaries()
    for epoch in (0, 1, 1, 2):
        _append(log, f"e{epoch}", epoch)
    summary = summaries.of(log)
    assert summary is not None and not summary.epoch_drop and summary.ordered
    for start in range(-1, 6):
        for end in range(-1, 6):
            assert summary.below(end, start) == tuple(b for b in summary.batches if start <= b[0] < end)
    log.append_as_follower(build_batch([SimpleRecord(b"x", b"k", T0)], base_offset=4, partition_leader_epoch=1))
    dropped = summaries.of(log)
    assert dropped is not None and dropped.epoch_drop
