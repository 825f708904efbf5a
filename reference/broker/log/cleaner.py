"""Log compaction (``cleanup.policy=compact``): keep the newest record per key.

Theory of operation
-------------------
Mirrors Kafka's ``LogCleaner``/``Cleaner`` in a simplified, single-pass form.  One call to
:func:`clean_log` does:

1. **Cleanable range.**  Only closed segments whose every offset is below the *first uncleanable
   offset* -- the smaller of the active segment's base offset and the last stable offset (the high
   watermark, or the first offset of a transaction not yet decided) -- are
   rewritten; with ``min.compaction.lag.ms`` a segment whose newest record is younger than the lag
   also stops the range.  The active segment is never touched.
2. **Offset map.**  Scan the cleanable range and remember, for every key, the offset of its newest
   record (Kafka's ``OffsetMap``).  Keys that reappear only in the uncleanable part do not count,
   as in Kafka: the older record is kept until the newer one becomes cleanable.
3. **Rewrite** each cleanable segment, batch by batch.  A record survives if it is the newest for
   its key; records without a key are dropped (Kafka counts them as invalid).  A *tombstone* (null
   value) survives until its batch's delete horizon (KIP-534): the first cleaning that keeps a
   tombstone writes the batch with the ``DELETE_HORIZON`` attribute and ``baseTimestamp = now +
   delete.retention.ms``; a later cleaning after that time drops the tombstone.  So a consumer that
   reads from the start within ``delete.retention.ms`` of the cleaning still sees the delete.
4. **Batch structure is kept.**  A surviving batch keeps its base offset, *its offset range*
   (``lastOffsetDelta``), producer id, epoch, base sequence, partition leader epoch, codec,
   timestamp type and transactional flag; only its records section shrinks, and a batch whose
   records all survive with no horizon to set is copied byte for byte.  A batch left with no records
   is dropped, except the newest batch of a producer id the partition still tracks, which is kept
   empty (Kafka's ``RETAIN_EMPTY``) so that the producer state rebuilt from the log after a restart
   still knows the producer's last sequence.  Keeping the offset range is refka's simplification:
   Kafka's rewrite shortens a partially kept batch to its last kept record; either way offsets
   never change and a fetch at any offset still finds the next surviving record.
5. **Swap.**  The rewritten segment is built in ``<partition>/cleaning/``, fsynced, then moved into
   the partition directory as ``<base>.index.swap``, ``<base>.timeindex.swap`` and finally
   ``<base>.log.swap`` -- the commit point -- and renamed over the originals.  A crash before the
   commit point leaves the old segment; after it, loading finishes the renames
   (``log._finish_interrupted_swaps``).

Transactions (Kafka's ``CleanedTransactionMetadata``, :class:`TransactionTracker`):

6. **Aborted records go.**  The records of an aborted transaction (a range of the
   aborted-transaction index: a producer id, its first offset, its ABORT marker's offset) neither
   count in the offset map nor survive the rewrite, so an aborted record never hides the committed
   record of its key.
7. **A marker goes last, and late.**  A COMMIT or ABORT marker is what tells a read_committed
   consumer the verdict on the batches before it, so it must outlive every batch of its
   transaction.  The cleaner walks the batches in offset order, remembering per producer whether
   it has seen a batch of the transaction now open; at the marker, a transaction with a batch
   seen in *this* cleaning keeps its marker (and, for an ABORT, its ``.txnindex`` entry).  A
   marker whose transaction has no batch left is treated like a tombstone: the first cleaning
   gives its batch a delete horizon (``now + delete.retention.ms``), a cleaning after the horizon
   removes it -- so a consumer reading within ``delete.retention.ms`` still sees the verdict.
8. **The transaction index follows.**  Each rewritten segment gets a rewritten ``.txnindex``
   holding only the aborted transactions whose marker was kept because data of theirs was seen:
   an entry whose marker is gone would make a read_committed consumer skip that producer's later,
   committed batches while it waits for an ABORT marker that no longer exists.

Simplified away: ``min.cleanable.dirty.ratio`` (the broker decides when to call; every call cleans
the whole cleanable range rather than only the dirty part), the cleaner's own checkpoint file
(``cleaner-offset-checkpoint``), grouping several small segments into one, and the I/O throttle.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from reference.broker.log import files
from reference.broker.log.checkpoint import fsync_directory
from reference.broker.log.log import PartitionLog
from reference.broker.log.segment import BatchLocation, LogSegment
from reference.broker.log.txn_index import AbortedTxn, write_entries
from reference.records.batch import BatchHeader, RecordBatch
from reference.records.control import ControlRecordType, decode_control_key
from reference.records.record import Record

CLEANING_DIRECTORY = "cleaning"


@dataclass
class CleanerStats:
    """What one cleaning did."""

    segments_cleaned: int = 0
    records_removed: int = 0
    tombstones_removed: int = 0
    batches_removed: int = 0
    markers_removed: int = 0
    bytes_before: int = 0
    bytes_after: int = 0


def cleanable_segments(log: PartitionLog, now_ms: int) -> list[LogSegment]:
    """Rule 1: the closed segments wholly below the first uncleanable offset."""
    first_uncleanable = min(log.active_segment.base_offset, log.last_stable_offset)
    lag = log.config.min_compaction_lag_ms
    found = []
    for segment in log.segments[:-1]:
        if segment.next_offset > first_uncleanable:
            break
        if lag > 0 and segment.size and now_ms - segment.largest_timestamp < lag:
            break
        found.append(segment)
    return found


def _decode(segment: LogSegment, location: BatchLocation) -> RecordBatch:
    return RecordBatch.decode(segment.read_bytes(location.position, location.header.size_in_bytes), 0)


AbortedRanges = dict[int, list[tuple[int, int]]]  # producer id -> [(first offset, marker offset)]


def _ranges(aborted: list[AbortedTxn]) -> AbortedRanges:
    ranges: AbortedRanges = {}
    for txn in aborted:
        ranges.setdefault(txn.producer_id, []).append((txn.first_offset, txn.last_offset))
    return ranges


def _is_aborted(header: BatchHeader, aborted: AbortedRanges) -> bool:
    """A transactional data batch inside one of its producer's aborted transactions."""
    if not header.is_transactional or header.is_control:
        return False
    return any(first <= header.base_offset <= last for first, last in aborted.get(header.producer_id, ()))


class TransactionTracker:
    """Rules 6-8 while one cleaning walks the log in offset order (Kafka's ``CleanedTransactionMetadata``).

    ``pending`` are the log's aborted transactions by first offset; one becomes *open* for its
    producer once the walk reaches its first offset, and closes at its producer's next ABORT
    marker.  A transactional data batch of a producer with an open aborted transaction belongs to
    it; any other transactional data batch belongs to a committed transaction (the cleanable range
    ends at the last stable offset, so every transaction in it is decided)."""

    def __init__(self, aborted: list[AbortedTxn]) -> None:
        self._pending = sorted(aborted, key=lambda txn: txn.first_offset, reverse=True)  # pop() = next
        self._open_aborted: dict[int, AbortedTxn] = {}
        self._aborted_with_data_seen: set[int] = set()  # producers whose open aborted txn had a batch here
        self._committed_with_data_seen: set[int] = set()

    def _open_up_to(self, offset: int) -> None:
        while self._pending and self._pending[-1].first_offset <= offset:
            txn = self._pending.pop()
            self._open_aborted.setdefault(txn.producer_id, txn)

    def on_data_batch(self, header: BatchHeader) -> bool:
        """Note a data batch; True when it belongs to an aborted transaction (rule 6)."""
        self._open_up_to(header.last_offset)
        if not header.is_transactional:
            return False
        if header.producer_id in self._open_aborted:
            self._aborted_with_data_seen.add(header.producer_id)
            return True
        self._committed_with_data_seen.add(header.producer_id)
        return False

    def on_control_batch(self, batch: RecordBatch) -> tuple[bool, AbortedTxn | None]:
        """Note a control batch: (may it go once its delete horizon has passed, the ``.txnindex``
        entry to keep for it) -- rules 7 and 8."""
        self._open_up_to(batch.last_offset)
        if not batch.records:
            return True, None  # a marker already emptied by an earlier cleaning
        control_type = decode_control_key(batch.records[0].key)
        producer_id = batch.producer_id
        if control_type is ControlRecordType.ABORT:
            txn = self._open_aborted.pop(producer_id, None)
            if txn is not None and producer_id in self._aborted_with_data_seen:
                self._aborted_with_data_seen.discard(producer_id)
                return False, txn
            return True, None
        if control_type is ControlRecordType.COMMIT:
            data_seen = producer_id in self._committed_with_data_seen
            self._committed_with_data_seen.discard(producer_id)
            return not data_seen, None
        return False, None  # other control records are not the transaction cleaner's business


def build_offset_map(segments: list[LogSegment], aborted: AbortedRanges | None = None) -> dict[bytes, int]:
    """Rule 2: key -> offset of its newest record in ``segments`` (aborted records left out)."""
    newest: dict[bytes, int] = {}
    for segment in segments:
        for location in segment.batches_from(0):
            if location.header.is_control or _is_aborted(location.header, aborted or {}):
                continue
            batch = _decode(segment, location)
            for record in batch.records:
                if record.key is not None:
                    newest[record.key] = batch.record_offset(record)
    return newest


def _last_batch_of_tracked_producer(log: PartitionLog, header: BatchHeader) -> bool:
    if not header.has_producer_id:
        return False
    entry = log.producer_state.last_entry(header.producer_id)
    return entry is not None and header.base_offset <= entry.last_data_offset <= header.last_offset


def _filter_batch(
    log: PartitionLog, batch: RecordBatch, header: BatchHeader, newest: dict[bytes, int], now_ms: int, stats: CleanerStats
) -> RecordBatch | None:
    """Rules 3 and 4 for one batch: the batch to write (None to drop it)."""
    horizon_passed = batch.has_delete_horizon and now_ms >= batch.base_timestamp
    kept: list[Record] = []
    for record in batch.records:
        offset = batch.record_offset(record)
        if record.key is None or newest.get(record.key) != offset:
            stats.records_removed += 1
        elif record.value is None and horizon_passed:
            stats.records_removed += 1
            stats.tombstones_removed += 1
        else:
            kept.append(record)
    needs_horizon = not batch.has_delete_horizon and any(record.value is None for record in kept)
    if len(kept) == len(batch.records) and not needs_horizon:
        return batch
    if not kept and not _last_batch_of_tracked_producer(log, header):
        stats.batches_removed += 1
        return None
    if needs_horizon:
        return _with_delete_horizon(batch, kept, now_ms + log.config.delete_retention_ms)
    return replace(batch, records=tuple(kept))


def _with_delete_horizon(batch: RecordBatch, records: list[Record], horizon: int) -> RecordBatch:
    """The batch with the ``DELETE_HORIZON`` attribute: its base timestamp becomes the horizon, so each
    record's timestamp delta is re-based to keep the record's own timestamp (KIP-534)."""
    rebased = [replace(record, timestamp_delta=batch.record_timestamp(record) - horizon) for record in records]
    return replace(batch, records=tuple(rebased), base_timestamp=horizon, has_delete_horizon=True)


def _clean_marker(
    log: PartitionLog, batch: RecordBatch, tracker: TransactionTracker, now_ms: int, stats: CleanerStats,
    kept_aborted: list[AbortedTxn],
) -> RecordBatch | None:
    """Rules 7 and 8 for one control batch: the batch to write (None to drop it)."""
    may_go, index_entry = tracker.on_control_batch(batch)
    if index_entry is not None:
        kept_aborted.append(index_entry)
    if not may_go:
        return batch
    if not batch.has_delete_horizon:
        return _with_delete_horizon(batch, list(batch.records), now_ms + log.config.delete_retention_ms)
    if now_ms < batch.base_timestamp:
        return batch
    stats.batches_removed += 1
    stats.markers_removed += 1
    return None


def _rewrite_segment(
    log: PartitionLog, segment: LogSegment, newest: dict[bytes, int], scratch: Path, now_ms: int, stats: CleanerStats,
    tracker: TransactionTracker,
) -> LogSegment:
    """Rules 3, 4 and 6-8 for one segment: the cleaned ``.log`` (with its indexes) and ``.txnindex`` in ``scratch``."""
    cleaned = LogSegment(scratch, segment.base_offset, log.config, now_ms)
    kept_aborted: list[AbortedTxn] = []
    for location in segment.batches_from(0):
        header = location.header
        kept: RecordBatch | None
        if header.is_control:
            batch = _decode(segment, location)
            kept = _clean_marker(log, batch, tracker, now_ms, stats, kept_aborted)
        elif tracker.on_data_batch(header) and not _last_batch_of_tracked_producer(log, header):
            stats.batches_removed += 1
            stats.records_removed += header.last_offset_delta + 1
            continue
        else:
            batch = _decode(segment, location)
            kept = _filter_batch(log, batch, header, newest, now_ms, stats)
        if kept is None:
            continue
        data = segment.read_bytes(location.position, header.size_in_bytes) if kept is batch else kept.encode()
        cleaned.append(data, [BatchHeader.decode(data, 0)])
    cleaned.on_become_inactive()
    cleaned.flush()
    cleaned.close()
    txn_index = scratch / (files.filename_prefix(segment.base_offset) + files.TXN_INDEX_SUFFIX)
    write_entries(txn_index, kept_aborted)
    txn_index.touch()  # even empty: swapping it in replaces the old segment's entries
    return cleaned


def _swap_in(log: PartitionLog, position: int, scratch: Path, now_ms: int) -> None:
    """Rule 5: move the cleaned files in with ``.swap`` names, the ``.log.swap`` last, then rename."""
    old = log.segments[position]
    prefix = files.filename_prefix(old.base_offset)
    order = (files.INDEX_SUFFIX, files.TIME_INDEX_SUFFIX, files.TXN_INDEX_SUFFIX, files.LOG_SUFFIX)
    for suffix in order:
        os.replace(scratch / (prefix + suffix), log.directory / (prefix + suffix + files.SWAP_SUFFIX))
    fsync_directory(log.directory)
    old.close()
    for suffix in order:
        os.replace(log.directory / (prefix + suffix + files.SWAP_SUFFIX), log.directory / (prefix + suffix))
    fsync_directory(log.directory)
    reopened = LogSegment(log.directory, old.base_offset, log.config, now_ms)
    reopened.load_without_recovery()
    log.segments[position] = reopened


def clean_log(log: PartitionLog) -> CleanerStats:
    """Compact ``log`` once (rules 1-5) at its clock's time; returns what was done."""
    stats = CleanerStats()
    with log.lock:
        now_ms = log.clock.milliseconds()
        segments = cleanable_segments(log, now_ms)
        if not segments:
            return stats
        aborted = log.collect_aborted_transactions(log.log_start_offset, log.log_end_offset)
        newest = build_offset_map(segments, _ranges(aborted))
        tracker = TransactionTracker(aborted)
        scratch = log.directory / CLEANING_DIRECTORY
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        for segment in segments:
            stats.bytes_before += segment.size
            cleaned = _rewrite_segment(log, segment, newest, scratch, now_ms, stats, tracker)
            stats.bytes_after += cleaned.size
            _swap_in(log, log.segments.index(segment), scratch, now_ms)
            stats.segments_cleaned += 1
        log._forget_txn_indexes()  # reread the rewritten .txnindex files when next asked
        shutil.rmtree(scratch, ignore_errors=True)
    return stats
