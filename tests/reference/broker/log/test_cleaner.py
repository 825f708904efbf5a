"""Compaction: newest record per key, tombstones until the delete horizon, batch structure kept."""

from __future__ import annotations

from pathlib import Path

from reference.broker.log.cleaner import clean_log
from reference.broker.log.clock import ManualClock
from reference.broker.log.config import LogConfig
from reference.broker.log.log import PartitionLog
from reference.records.batch import RecordBatch

from .helpers import T0, batch, decoded, open_log, read_all

COMPACT = LogConfig(segment_bytes=400, cleanup_policy=frozenset({"compact"}), delete_retention_ms=1000)


def _records(log: PartitionLog) -> list[tuple[int, bytes | None, bytes | None]]:
    found = []
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        batches = decoded(log.read(offset, 1 << 20).records)
        for b in batches:
            found.extend((b.record_offset(r), r.key, r.value) for r in b.records)
        offset = batches[-1].last_offset + 1
    return found


def _write(log: PartitionLog, pairs: list[tuple[bytes, bytes | None]]) -> None:
    for key, value in pairs:
        log.append_as_leader(batch(keys=[key], values=[value], timestamp=T0), 0)
    log.update_high_watermark(log.log_end_offset)


def test_compaction_keeps_the_newest_record_per_key_in_closed_segments(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", ManualClock(T0), COMPACT)
    _write(log, [(b"a", b"1"), (b"b", b"1"), (b"a", b"2"), (b"c", b"1"), (b"b", b"2"), (b"a", b"3")] * 3)
    log.roll()
    _write(log, [(b"c", b"new")])  # in the active segment: never cleaned
    stats = clean_log(log)
    assert stats.segments_cleaned >= 1
    assert _records(log) == [(15, b"c", b"1"), (16, b"b", b"2"), (17, b"a", b"3"), (18, b"c", b"new")]
    log.check_valid()


def test_compaction_keeps_offsets_and_each_surviving_batch_keeps_its_offset_range(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", ManualClock(T0), COMPACT)
    log.append_as_leader(batch(keys=[b"a", b"b", b"a"], values=[b"1", b"1", b"2"]), 0)
    log.append_as_leader(batch(keys=[b"b"], values=[b"2"]), 0)
    log.roll()
    log.update_high_watermark(log.log_end_offset)
    clean_log(log)
    first = decoded(log.read(0, 1 << 20).records)[0]
    assert (first.base_offset, first.last_offset_delta) == (0, 2)
    assert [(first.record_offset(r), r.key) for r in first.records] == [(2, b"a")]
    assert log.read(1, 1000).records  # a fetch at a removed offset finds the next surviving record
    log.check_valid()


def test_a_tombstone_survives_until_delete_retention_ms_after_the_first_cleaning(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log = open_log(tmp_path / "t-0", clock, COMPACT)
    _write(log, [(b"a", b"1"), (b"a", None), (b"b", b"1")])
    log.roll()
    clean_log(log)
    assert _records(log) == [(1, b"a", None), (2, b"b", b"1")]
    tombstone_batch = decoded(log.read(1, 1 << 20).records)[0]
    assert tombstone_batch.has_delete_horizon and tombstone_batch.base_timestamp == T0 + 1000
    assert tombstone_batch.record_timestamp(tombstone_batch.records[0]) == T0  # record time unchanged
    clock.advance(999)
    clean_log(log)
    assert (1, b"a", None) in _records(log)
    clock.advance(1)
    stats = clean_log(log)
    assert stats.tombstones_removed == 1
    assert _records(log) == [(2, b"b", b"1")]
    log.check_valid()


def test_the_last_batch_of_an_idempotent_producer_is_kept_empty(tmp_path: Path) -> None:
    log = open_log(tmp_path / "t-0", ManualClock(T0), COMPACT)
    log.append_as_leader(batch(keys=[b"a"], values=[b"1"], producer_id=9, producer_epoch=0, base_sequence=0), 0)
    log.append_as_leader(batch(keys=[b"a"], values=[b"2"]), 0)
    log.roll()
    log.update_high_watermark(log.log_end_offset)
    clean_log(log)
    kept = decoded(log.read(0, 1 << 20).records)
    assert [(b.base_offset, b.producer_id, len(b.records)) for b in kept] == [(0, 9, 0), (1, -1, 1)]
    log.close()
    again = open_log(tmp_path / "t-0", ManualClock(T0), COMPACT, had_clean_shutdown=True)
    entry = again.producer_state.last_entry(9)
    assert entry is not None and entry.last_seq == 0


def test_compaction_survives_restart_and_crash_between_swap_steps(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log = open_log(tmp_path / "t-0", clock, COMPACT)
    _write(log, [(b"k%d" % (n % 3), b"%d" % n) for n in range(12)])
    log.roll()
    clean_log(log)
    expected = _records(log)
    log.close()
    directory = tmp_path / "t-0"
    # Simulate a crash after the commit point: a complete .log.swap beside a stale .log.
    (directory / "00000000000000000000.log.swap").write_bytes((directory / "00000000000000000000.log").read_bytes())
    (directory / "00000000000000000000.log").write_bytes(b"stale, about to be replaced")
    (directory / "00000000000000000099.log.cleaned").write_bytes(b"half-written")
    again = open_log(directory, clock, COMPACT, had_clean_shutdown=True)
    assert _records(again) == expected
    assert not list(directory.glob("*.swap")) and not list(directory.glob("*.cleaned"))
    again.check_valid()


def test_compressed_batches_are_compacted_and_stay_compressed(tmp_path: Path) -> None:
    from reference.records.batch import SimpleRecord, build_batch
    from reference.records.compression import CompressionType

    log = open_log(tmp_path / "t-0", ManualClock(T0), COMPACT)
    records = [SimpleRecord(b"v%d" % n, b"k%d" % (n % 2), T0 + n) for n in range(6)]
    log.append_as_leader(build_batch(records, compression=CompressionType.GZIP), 0)
    log.roll()
    log.update_high_watermark(log.log_end_offset)
    clean_log(log)
    (only,) = [RecordBatch.decode(log.read(0, 1 << 20).records)]
    assert only.compression is CompressionType.GZIP
    assert [(only.record_offset(r), r.value) for r in only.records] == [(4, b"v4"), (5, b"v5")]
    assert read_all(log)[0].record_count == 2
