"""The log of one partition replica: its segments, offsets, leader epochs and producer state.

Theory of operation
-------------------
Mirrors Kafka's ``UnifiedLog`` with ``LocalLog`` and ``LogLoader`` (no tiered storage).  The log is
a directory ``<topic>-<partition>`` holding an ordered list of segments (:mod:`.segment`); only the
last one, the *active* segment, takes appends.  Its offsets, all named as in Kafka:

* ``log_start_offset`` -- the first offset a consumer may fetch (the low watermark).  Raised by
  retention, by DeleteRecords and by truncation, never lowered except by a full truncation.
* ``log_end_offset`` (LEO) -- the offset the next appended record gets.
* ``high_watermark`` (HW) -- records below it are committed; consumers read only below it.  The log
  only stores it and keeps it within ``[log_start_offset, log_end_offset]``; *advancing* it is the
  partition's job (:mod:`reference.broker.partition`), an explicit step so replication slots in.
* ``last_stable_offset`` (LSO) -- ``min(first unstable offset, HW)``: below it every transaction is
  decided and its marker replicated; read_committed consumers read only below it.  The first
  unstable offset is the producer-state table's (rules 6-8 of :mod:`.producer_state`).
* ``recovery_point`` -- everything below it has been fsynced; recovery starts there.

Rules:

1. **Append as leader** (``append_as_leader``, origin CLIENT): under the partition lock, assign
   offsets from the LEO and stamp the leader epoch in place (outside the CRC, so the stored bytes
   stay valid; in the caller's buffer when it is writable -- the caller hands it over -- else in a
   copy); roll first if the active segment must roll; ask the producer-state table whether a
   batch is a duplicate (then answer the original offsets and append nothing) or breaks the
   sequence/epoch rules (raise); write; record a new epoch start in the leader epoch cache; update
   the producer state and the LEO.  The duplicate answer and the append are one atomic step.
2. **Append as follower** takes the offsets given (they must not go below the LEO) and skips the
   sequence checks, as Kafka's replication origin does.
3. **Read** (``read``): whole stored batches, starting with the one containing ``fetch_offset``
   (which may begin before it), bounded by ``max_bytes`` except for the first batch
   (minOneMessage), and exposing only batches below ``max_offset`` (HW or LSO).  A fetch offset
   below the log start offset or above the LEO is ``OFFSET_OUT_OF_RANGE``.
4. **Retention** (``delete_old_segments``), oldest segment first, never the active segment's data
   nor anything at or above the HW: segments wholly below the log start offset (after
   DeleteRecords); with ``cleanup.policy`` containing ``delete`` also segments whose largest
   timestamp is older than ``retention.ms`` and the oldest segments while the log is larger than
   ``retention.bytes``.  Deleting raises the log start offset to the next segment's base offset.
5. **Truncation** (``truncate_to``) removes every batch at or above an offset (rounded down to a
   batch boundary), truncates the epoch cache and rebuilds the producer state; a follower does this
   after OffsetForLeaderEpoch.
6. **Transaction markers** (control batches from the coordinator) end a producer's transaction;
   an ABORT marker adds an entry to the active segment's aborted-transaction index
   (``<base>.txnindex``, :mod:`.txn_index`) before the transaction stops being ongoing.  A
   read_committed read (``read`` with ``aborted_transactions=True``) answers the entries of every
   segment from the fetch offset's that overlap the records returned.
7. **Recovery** (``open``): leftovers of an interrupted compaction are finished or removed; every
   segment gets its indexes checked (a missing or corrupt index is rebuilt); after an unclean
   shutdown (no ``.kafka_cleanshutdown`` in the log dir) every segment from the one holding the
   recovery point on is validated batch by batch (length, magic, CRC, offsets) and the first bad
   batch and everything after it are removed.  The epoch cache is truncated to the recovered LEO
   and the producer state is rebuilt from the newest snapshot plus the batches after it; replayed
   ABORT markers that the aborted-transaction index lacks (a crash before it was written) are
   indexed again, and open transactions are ongoing again (the snapshot keeps their first offset).

Flush policy: like Kafka's defaults (``flush.messages`` = ``flush.ms`` = Long.MAX_VALUE), an append
is not fsynced.  A write is in the OS page cache as soon as ``write`` returns, so an acknowledged
batch survives ``kill -9`` of the broker; surviving power loss is replication's job.  Segments are
fsynced when they roll (Kafka does this asynchronously; refka synchronously) and on clean
shutdown, and each fsync advances the recovery point; a flush that covers a segment created since
the last one also fsyncs the directory, so that the new file's name survives a power loss.
Honouring ``flush.messages``/``flush.ms`` when set is implemented (``maybe_flush`` is for the
broker's scheduler).

Invariants (``check_valid``): segment base offsets increase and segments do not overlap; each
segment keeps its own invariants; ``log_start_offset <= high_watermark <= log_end_offset``;
``recovery_point <= log_end_offset``; the epoch cache is monotonic and does not start past the LEO;
the producer state is valid and covers exactly the log.
"""

from __future__ import annotations

import bisect
import enum
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from reference import durability
from reference.broker.log import dir_failure, files
from reference.broker.log.clock import Clock
from reference.broker.log.config import LogConfig
from reference.broker.log.epoch_cache import LeaderEpochFileCache
from reference.broker.log.index import CorruptIndexError
from reference.broker.log.producer_state import AppendOrigin, ProducerAppendInfo, ProducerStateManager
from reference.broker.log.segment import BatchLocation, LogSegment
from reference.broker.log.txn_index import AbortedTxn, TransactionIndex
from reference.errors import Errors, KafkaError
from reference.records.batch import (
    NO_TIMESTAMP,
    BatchHeader,
    RecordBatch,
    assign_offsets_in_place,
    iter_batches,
    iter_record_batches,
)
from reference.records.control import EndTransactionMarker, decode_end_transaction_marker
from reference.records.decode_errors import InvalidRecordsError, RecordsDecodeError
from reference.records.validation import ValidatedBatch

# ListOffsets special timestamps (Kafka's ListOffsetsRequest).
LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL_TIMESTAMP = -4
LATEST_TIERED_TIMESTAMP = -5


class LogStartOffsetIncrementReason(enum.Enum):
    SEGMENT_DELETION = "segment deletion"
    CLIENT_RECORD_DELETION = "client delete records request"
    LEADER_OFFSET_INCREMENTED = "leader offset increment"


@dataclass(frozen=True)
class LogAppendInfo:
    """What an append did, as the produce response needs it."""

    first_offset: int
    last_offset: int
    max_timestamp: int
    log_append_time: int
    log_start_offset: int
    record_count: int
    duplicate: bool = False


@dataclass(frozen=True)
class FetchDataInfo:
    """The result of a read: the stored bytes of whole batches (possibly empty)."""

    fetch_offset: int
    records: bytes
    first_batch_base_offset: int | None = None
    aborted_transactions: tuple[AbortedTxn, ...] = ()  # read_committed: those overlapping the records


@dataclass(frozen=True)
class TimestampAndOffset:
    """A ListOffsets answer: record timestamp (-1 for the special queries), offset, epoch."""

    timestamp: int
    offset: int
    leader_epoch: int | None


def _buffer_for_append(records: bytes | bytearray | memoryview) -> bytearray | memoryview:
    """What a leader append writes offsets and the leader epoch into (rule 1): the caller's own
    buffer when it is writable, else a copy.  A writable buffer is handed over: the produce path's
    is the request frame itself (or the batch validation rebuilt), read by no one after the append,
    so a produced batch goes from the socket to the file without being copied in between."""
    if isinstance(records, bytearray) or (isinstance(records, memoryview) and not records.readonly):
        return records
    return bytearray(records)


class PartitionLog:
    """A partition's on-disk log; construct with :meth:`open`."""

    def __init__(self, directory: Path, config: LogConfig, clock: Clock) -> None:
        self.directory = directory
        self.topic_partition = files.TopicPartition.from_directory_name(directory.name)
        self.config = config
        self.clock = clock
        self.segments: list[LogSegment] = []
        self.log_start_offset = 0
        self.high_watermark = 0
        self.recovery_point = 0
        self.leader_epoch_cache = LeaderEpochFileCache(directory / files.LEADER_EPOCH_CHECKPOINT)
        self.producer_state = ProducerStateManager(directory, config.producer_id_expiration_ms)
        self._txn_indexes: dict[int, TransactionIndex] = {}  # segment base offset -> its .txnindex
        self.recovered_bytes_truncated = 0
        self._lock = threading.RLock()
        self._unflushed_messages = 0
        self._last_flush_ms = clock.milliseconds()
        # Bumped by every change other than an append at the log end: a truncation, a full
        # truncation, a raised log start offset, deleted segments, a compaction swap.  While it
        # stays the same, the batches below an earlier LEO are still the ones read then, so an
        # observer (the simulator's invariant checker) may extend what it read instead of
        # rereading the whole log.
        self.rewrites = 0

    # -- opening (rule 6) ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: Path,
        config: LogConfig,
        clock: Clock,
        *,
        recovery_point: int = 0,
        log_start_offset: int = 0,
        high_watermark: int | None = None,
        had_clean_shutdown: bool = False,
    ) -> PartitionLog:
        """Open (creating if needed) the partition directory and load or recover its log.

        ``recovery_point``, ``log_start_offset`` and ``high_watermark`` come from the log dir's
        checkpoint files; ``had_clean_shutdown`` from its ``.kafka_cleanshutdown`` marker."""
        directory.mkdir(parents=True, exist_ok=True)
        log = cls(directory, config, clock)
        log._load(recovery_point, log_start_offset, had_clean_shutdown)
        log.high_watermark = log._clamp_high_watermark(high_watermark if high_watermark is not None else 0)
        log.producer_state.on_high_watermark_updated(log.high_watermark)
        return log

    def _load(self, recovery_point_checkpoint: int, log_start_checkpoint: int, had_clean_shutdown: bool) -> None:
        now = self.clock.milliseconds()
        _finish_interrupted_swaps(self.directory)
        cut = False
        for path in sorted(self.directory.iterdir()):
            if files.is_offset_named(path, files.LOG_SUFFIX):
                base_offset = files.offset_from_file(path)
                if cut:  # after a crash, nothing after a cut in the middle can be trusted
                    for suffix in files.SEGMENT_SUFFIXES:
                        (self.directory / (files.filename_prefix(base_offset) + suffix)).unlink(missing_ok=True)
                    continue
                segment, truncated = self._load_segment(base_offset, now)
                self.segments.append(segment)
                cut = truncated > 0 and not had_clean_shutdown
            elif files.is_offset_named(path, files.INDEX_SUFFIX) or files.is_offset_named(path, files.TIME_INDEX_SUFFIX):
                if not files.log_file(self.directory, files.offset_from_file(path)).exists():
                    path.unlink(missing_ok=True)  # an orphaned index, as Kafka removes them
        if not had_clean_shutdown:
            self._recover_unflushed(recovery_point_checkpoint)
        if self.segments and self.segments[-1].next_offset < log_start_checkpoint:
            for segment in self.segments:  # files were removed behind our back: start over
                segment.delete()
            self.segments = []
        if not self.segments:
            self.segments.append(LogSegment(self.directory, log_start_checkpoint, self.config, now))
        log_end = self.log_end_offset
        self.recovery_point = log_end if had_clean_shutdown else min(recovery_point_checkpoint, log_end)
        self.log_start_offset = max(log_start_checkpoint, self.segments[0].base_offset)
        self.leader_epoch_cache.truncate_from_end(log_end)
        self.leader_epoch_cache.truncate_from_start(self.log_start_offset)
        self._rebuild_producer_state(log_end)

    def _load_segment(self, base_offset: int, now_ms: int) -> tuple[LogSegment, int]:
        segment = LogSegment(self.directory, base_offset, self.config, now_ms)
        index_missing = not files.index_file(self.directory, base_offset).stat().st_size and segment.size > 0
        try:
            if index_missing:
                raise CorruptIndexError("missing offset index")
            segment.offset_index.sanity_check(segment.size)
            if not segment.load_without_recovery():
                raise CorruptIndexError("the segment does not end with a whole batch")
            segment.time_index.sanity_check(segment.next_offset)
        except CorruptIndexError:
            truncated = segment.recover(self._assign_epoch_while_recovering)
            self.recovered_bytes_truncated += truncated
            return segment, truncated
        return segment, 0

    def _recover_unflushed(self, recovery_point: int) -> None:
        """Validate every segment from the one holding the recovery point; cut at the first bad batch."""
        first = max(0, bisect.bisect_right([s.base_offset for s in self.segments], recovery_point) - 1)
        for position, segment in enumerate(self.segments[first:], start=first):
            truncated = segment.recover(self._assign_epoch_while_recovering)
            self.recovered_bytes_truncated += truncated
            if truncated > 0:
                for later in self.segments[position + 1 :]:
                    later.delete()
                del self.segments[position + 1 :]
                return

    def _assign_epoch_while_recovering(self, header: BatchHeader) -> None:
        latest = self.leader_epoch_cache.latest_epoch
        if header.partition_leader_epoch >= 0 and (latest is None or header.partition_leader_epoch > latest):
            self.leader_epoch_cache.assign(header.partition_leader_epoch, header.base_offset)

    def _rebuild_producer_state(self, log_end_offset: int) -> None:
        """Load the newest snapshot at or below ``log_end_offset`` and replay the batches after it."""
        state = self.producer_state
        self._txn_index(self.active_segment).truncate_to(log_end_offset)  # entries of batches a crash cut off
        state.load_latest_snapshot(self.log_start_offset, log_end_offset, self.clock.milliseconds())
        start = state.map_end_offset
        for segment in self.segments[self._floor_segment_index(start):]:
            first = segment.translate_offset(start)
            if first is None:
                continue
            for location in segment.batches_from(first.position):
                header = location.header
                if header.base_offset >= log_end_offset:
                    break
                if header.last_offset < start or not header.has_producer_id:
                    continue
                markers = self._markers_at(segment, location)
                pending = state.validate_batches([header], AppendOrigin.REPLICATION, markers)
                state.update_all(pending)
                self._complete_transactions(pending.values())
        state.update_map_end_offset(log_end_offset)
        state.on_high_watermark_updated(self.high_watermark)
        state.take_snapshot()

    @staticmethod
    def _markers_at(segment: LogSegment, location: BatchLocation) -> dict[int, EndTransactionMarker]:
        """The transaction marker a stored control batch carries, keyed by its offset (or nothing)."""
        header = location.header
        if not (header.is_control and header.is_transactional):
            return {}
        data = segment.read_bytes(location.position, header.size_in_bytes)
        return _decode_markers(data, [header])

    # -- transactions (rule 6) ------------------------------------------------------------------------

    def _txn_index(self, segment: LogSegment) -> TransactionIndex:
        index = self._txn_indexes.get(segment.base_offset)
        if index is None:
            index = TransactionIndex(files.txn_index_file(self.directory, segment.base_offset))
            self._txn_indexes[segment.base_offset] = index
        return index

    def _complete_transactions(self, appended: Iterable[ProducerAppendInfo]) -> None:
        """Index the aborted transactions the appended markers ended, then end them (Kafka's order:
        the LSO recorded for an entry is computed while the transaction is still ongoing)."""
        state = self.producer_state
        for info in appended:
            for completed in info.completed_transactions:
                if completed.is_aborted:
                    segment = self.segments[self._floor_segment_index(completed.last_offset)]
                    index = self._txn_index(segment)
                    if completed.last_offset > index.last_offset:  # a replay may find it indexed already
                        index.append(AbortedTxn(completed.producer_id, completed.first_offset,
                                                completed.last_offset, state.last_stable_offset_after(completed)))
                state.complete_txn(completed)

    def collect_aborted_transactions(self, fetch_offset: int, upper_bound_offset: int) -> list[AbortedTxn]:
        """Aborted transactions overlapping ``[fetch_offset, upper_bound_offset)`` (Kafka's
        ``collectAbortedTransactions``): from the segment holding ``fetch_offset`` to the last."""
        with self._lock:
            found: list[AbortedTxn] = []
            for segment in self.segments[self._floor_segment_index(fetch_offset):]:
                if segment.base_offset >= upper_bound_offset:
                    break
                found.extend(self._txn_index(segment).collect(fetch_offset, upper_bound_offset))
            return found

    def _forget_txn_indexes(self) -> None:
        """Segments were deleted, truncated or swapped (compaction): reload the indexes from their
        files when next used.  Every path that removes or rewrites stored batches comes here, so it
        also counts a rewrite."""
        self._txn_indexes = {}
        self.rewrites += 1

    def _batches_from(self, offset: int) -> Iterator[BatchLocation]:
        for segment in self.segments[self._floor_segment_index(offset) :]:
            start = segment.translate_offset(offset)
            if start is not None:
                yield from segment.batches_from(start.position)

    # -- offsets ------------------------------------------------------------------------------------

    @property
    def lock(self) -> threading.RLock:
        """The partition lock: appends, reads and maintenance (retention, cleaning) take it."""
        return self._lock

    @property
    def active_segment(self) -> LogSegment:
        return self.segments[-1]

    @property
    def log_end_offset(self) -> int:
        return self.active_segment.next_offset

    @property
    def last_stable_offset(self) -> int:
        """``min(first unstable offset, HW)`` (Kafka's ``UnifiedLog.lastStableOffset``); a first
        unstable offset below the log start (retention, DeleteRecords) counts as the log start."""
        unstable = self.producer_state.first_unstable_offset
        if unstable is None:
            return self.high_watermark
        return min(max(unstable, self.log_start_offset), self.high_watermark)

    @property
    def size_in_bytes(self) -> int:
        return sum(segment.size for segment in self.segments)

    def _clamp_high_watermark(self, offset: int) -> int:
        return min(max(offset, self.log_start_offset), self.log_end_offset)

    def update_high_watermark(self, offset: int) -> int:
        """Set the HW, clamped to ``[log_start_offset, log_end_offset]``; returns the new HW.

        Called by the replica when the ISR's progress allows (on one node: after each append)."""
        with self._lock:
            self.high_watermark = self._clamp_high_watermark(offset)
            self.producer_state.on_high_watermark_updated(self.high_watermark)
            return self.high_watermark

    def _floor_segment_index(self, offset: int) -> int:
        return max(0, bisect.bisect_right([segment.base_offset for segment in self.segments], offset) - 1)

    # -- appending (rules 1, 2) ------------------------------------------------------------------------

    def append_as_leader(
        self, records: bytes | bytearray | memoryview, leader_epoch: int, origin: AppendOrigin = AppendOrigin.CLIENT
    ) -> LogAppendInfo:
        """Append validated batches, assigning offsets from the LEO and stamping ``leader_epoch``.

        Raises :class:`KafkaError` with OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH or
        RECORD_LIST_TOO_LARGE (larger than ``segment.bytes``); nothing is appended then."""
        return self._append(_buffer_for_append(records), origin, leader_epoch)

    def append_validated(self, validated: ValidatedBatch, leader_epoch: int) -> LogAppendInfo:
        """Append what :func:`reference.records.validation.validate_records_for_append` produced.

        Call both under :attr:`lock` so the LEO the validator assigned from is still the LEO (the
        offsets are assigned again here in any case); the LogAppendTime it chose is answered."""
        info = self._append(_buffer_for_append(validated.records), AppendOrigin.CLIENT, leader_epoch)
        if info.duplicate:
            return info
        return replace(info, log_append_time=validated.log_append_time)

    def append_as_follower(self, records: bytes | bytearray | memoryview) -> LogAppendInfo:
        """Append batches with the offsets and epochs the leader gave them (rule 2); nothing is
        written into ``records``, so even a read-only view is appended as it is."""
        return self._append(records, AppendOrigin.REPLICATION, None)

    def _append(self, buffer: bytes | bytearray | memoryview, origin: AppendOrigin, leader_epoch: int | None) -> LogAppendInfo:
        """Rules 1 and 2.  An OSError (a full disk) takes the log directory offline and is raised as
        KAFKA_STORAGE_ERROR (:mod:`.dir_failure`); so is any append to an offline directory."""
        dir_failure.check_online(self.directory.parent)
        try:
            return self._append_online(buffer, origin, leader_epoch)
        except OSError as error:
            raise dir_failure.mark_offline(self.directory.parent, error) from error

    def _append_online(self, buffer: bytes | bytearray | memoryview, origin: AppendOrigin, leader_epoch: int | None) -> LogAppendInfo:
        with self._lock:
            now = self.clock.milliseconds()
            try:
                positions = [position for position, _ in iter_batches(buffer)]
            except RecordsDecodeError as error:
                raise KafkaError(Errors.CORRUPT_MESSAGE, str(error)) from error
            if not positions:
                raise KafkaError(Errors.INVALID_RECORD, "an append needs at least one batch")
            headers = self._assign_offsets(buffer, positions, leader_epoch)
            if len(buffer) > self.config.segment_bytes:
                raise KafkaError(
                    Errors.RECORD_LIST_TOO_LARGE,
                    f"{len(buffer)} bytes exceed segment.bytes {self.config.segment_bytes}",
                )
            if origin is AppendOrigin.CLIENT:
                duplicate = self._find_duplicate(headers)
                if duplicate is not None:
                    return duplicate
            markers = _decode_markers(buffer, headers)
            pending = self.producer_state.validate_batches(headers, origin, markers)
            max_timestamp = max(header.max_timestamp for header in headers)
            if self.active_segment.should_roll(self.config, len(buffer), max_timestamp, headers[-1].last_offset, now):
                self._roll(now)
            for header in headers:
                if header.partition_leader_epoch >= 0:
                    self.leader_epoch_cache.assign(header.partition_leader_epoch, header.base_offset)
            self.active_segment.append(buffer, headers)
            self.producer_state.update_all(pending)
            self._complete_transactions(pending.values())
            self.producer_state.update_map_end_offset(self.log_end_offset)
            self.high_watermark = self._clamp_high_watermark(self.high_watermark)
            self.producer_state.on_high_watermark_updated(self.high_watermark)
            record_count = sum(header.last_offset_delta + 1 for header in headers)
            self._unflushed_messages += record_count
            if self._unflushed_messages >= self.config.flush_messages:
                self.flush()
            return LogAppendInfo(
                first_offset=headers[0].base_offset,
                last_offset=headers[-1].last_offset,
                max_timestamp=max_timestamp,
                log_append_time=NO_TIMESTAMP,
                log_start_offset=self.log_start_offset,
                record_count=record_count,
            )

    def _assign_offsets(self, buffer: bytes | bytearray | memoryview, positions: list[int], leader_epoch: int | None) -> list[BatchHeader]:
        if leader_epoch is None:
            headers = [BatchHeader.decode(buffer, position) for position in positions]
            if headers[0].base_offset < self.log_end_offset:
                raise ValueError(f"follower append at {headers[0].base_offset} is below the LEO {self.log_end_offset}")
            return headers
        if isinstance(buffer, bytes):  # _buffer_for_append gave every leader append a writable buffer
            raise TypeError("a leader append needs a writable buffer")
        next_offset = self.log_end_offset
        headers = []
        for position in positions:
            assign_offsets_in_place(buffer, position, next_offset, leader_epoch)
            header = BatchHeader.decode(buffer, position)
            headers.append(header)
            next_offset = header.next_offset
        return headers

    def _find_duplicate(self, headers: list[BatchHeader]) -> LogAppendInfo | None:
        for header in headers:
            if not header.has_producer_id:
                continue
            original = self.producer_state.find_duplicate(header)
            if original is not None:
                return LogAppendInfo(
                    first_offset=original.first_offset,
                    last_offset=original.last_offset,
                    max_timestamp=original.timestamp,
                    log_append_time=NO_TIMESTAMP,
                    log_start_offset=self.log_start_offset,
                    record_count=original.offset_delta + 1,
                    duplicate=True,
                )
        return None

    # -- rolling ------------------------------------------------------------------------------------

    def roll(self) -> LogSegment:
        """Start a new active segment at the LEO (also what a too-old or too-full segment triggers)."""
        with self._lock:
            return self._roll(self.clock.milliseconds())

    def _roll(self, now_ms: int) -> LogSegment:
        active = self.active_segment
        new_base = self.log_end_offset
        if active.base_offset == new_base:
            return active  # already empty at the LEO
        active.on_become_inactive()
        segment = LogSegment(self.directory, new_base, self.config, now_ms)
        self.segments.append(segment)
        self.producer_state.update_map_end_offset(new_base)
        self.producer_state.take_snapshot()
        self.flush(new_base)
        return segment

    # -- reading (rule 3) --------------------------------------------------------------------------------

    def read(
        self, fetch_offset: int, max_bytes: int, max_offset: int | None = None, min_one_message: bool = True,
        aborted_transactions: bool = False,
    ) -> FetchDataInfo:
        """Whole batches from ``fetch_offset`` below ``max_offset`` (default: the LEO); with
        ``aborted_transactions`` (read_committed) also the aborted transactions they overlap.

        Raises :class:`KafkaError` OFFSET_OUT_OF_RANGE outside ``[log_start_offset, log_end_offset]``,
        KAFKA_STORAGE_ERROR when the log directory is offline."""
        dir_failure.check_online(self.directory.parent)
        with self._lock:
            log_end = self.log_end_offset
            if fetch_offset < self.log_start_offset or fetch_offset > log_end:
                raise KafkaError(
                    Errors.OFFSET_OUT_OF_RANGE,
                    f"offset {fetch_offset} is outside [{self.log_start_offset}, {log_end}] of {self.topic_partition}",
                )
            upper = log_end if max_offset is None else min(max_offset, log_end)
            if fetch_offset >= upper:
                return FetchDataInfo(fetch_offset, b"")
            for segment in self.segments[self._floor_segment_index(fetch_offset) :]:
                found = segment.read(fetch_offset, max_bytes, upper, min_one_message)
                if found is not None:
                    aborted: tuple[AbortedTxn, ...] = ()
                    if aborted_transactions and found.records:
                        end = max(header.next_offset for _, header in iter_batches(found.records))
                        aborted = tuple(self.collect_aborted_transactions(fetch_offset, end))
                    return FetchDataInfo(fetch_offset, found.records, found.first.header.base_offset, aborted)
            return FetchDataInfo(fetch_offset, b"")

    # -- ListOffsets ---------------------------------------------------------------------------------

    def fetch_offset_by_timestamp(self, target_timestamp: int) -> TimestampAndOffset | None:
        """ListOffsets for one partition: the special timestamps, or the first record at or after
        ``target_timestamp`` (None when every record is older)."""
        with self._lock:
            cache = self.leader_epoch_cache
            if target_timestamp in (EARLIEST_TIMESTAMP, EARLIEST_LOCAL_TIMESTAMP):
                earliest = cache.earliest_entry()
                epoch = earliest.epoch if earliest and earliest.start_offset <= self.log_start_offset else None
                return TimestampAndOffset(NO_TIMESTAMP, self.log_start_offset, epoch)
            if target_timestamp == LATEST_TIMESTAMP:
                return TimestampAndOffset(NO_TIMESTAMP, self.log_end_offset, cache.latest_epoch)
            if target_timestamp == LATEST_TIERED_TIMESTAMP:
                return TimestampAndOffset(NO_TIMESTAMP, -1, -1)
            if target_timestamp == MAX_TIMESTAMP:
                return self._offset_of_max_timestamp()
            return self._search_timestamp(target_timestamp)

    def _offset_of_max_timestamp(self) -> TimestampAndOffset | None:
        segment = max(self.segments, key=lambda s: s.max_timestamp_and_offset.timestamp)
        largest = segment.max_timestamp_and_offset
        if largest.timestamp < 0:
            return None
        start = segment.offset_index.lookup(largest.offset).position
        for location in segment.batches_from(start):
            if location.header.max_timestamp == largest.timestamp:
                for offset, timestamp in self._record_timestamps(segment, location):
                    if timestamp == largest.timestamp:
                        return TimestampAndOffset(timestamp, offset, _epoch_or_none(location.header))
        return None

    def _search_timestamp(self, target: int) -> TimestampAndOffset | None:
        for segment in self.segments:
            if segment.max_timestamp_and_offset.timestamp < target:
                continue
            indexed = segment.time_index.lookup(target)
            start = segment.offset_index.lookup(max(indexed.offset, self.log_start_offset)).position
            for location in segment.batches_from(start):
                if location.header.max_timestamp < target:
                    continue
                for offset, timestamp in self._record_timestamps(segment, location):
                    if timestamp >= target and offset >= self.log_start_offset:
                        return TimestampAndOffset(timestamp, offset, _epoch_or_none(location.header))
            return None
        return None

    @staticmethod
    def _record_timestamps(segment: LogSegment, location: BatchLocation) -> list[tuple[int, int]]:
        data = segment.read_bytes(location.position, location.header.size_in_bytes)
        batch = RecordBatch.decode(data, 0, verify_crc=False)
        return [(batch.record_offset(record), batch.record_timestamp(record)) for record in batch.records]

    # -- leader epochs ------------------------------------------------------------------------------

    @property
    def latest_epoch(self) -> int | None:
        return self.leader_epoch_cache.latest_epoch

    def maybe_assign_epoch_start_offset(self, leader_epoch: int, start_offset: int) -> None:
        with self._lock:
            self.leader_epoch_cache.assign(leader_epoch, start_offset)

    def end_offset_for_epoch(self, leader_epoch: int) -> tuple[int, int] | None:
        """OffsetForLeaderEpoch: ``(epoch, end offset)``, or None when the cache cannot say."""
        with self._lock:
            epoch, offset = self.leader_epoch_cache.end_offset_for(leader_epoch, self.log_end_offset)
            return None if offset == -1 else (epoch, offset)

    # -- log start offset, retention (rule 4) ------------------------------------------------------------

    def maybe_increment_log_start_offset(self, new_log_start_offset: int, reason: LogStartOffsetIncrementReason) -> bool:
        """Raise the log start offset (DeleteRecords, retention); above the HW is OFFSET_OUT_OF_RANGE."""
        with self._lock:
            if new_log_start_offset > self.high_watermark:
                raise KafkaError(
                    Errors.OFFSET_OUT_OF_RANGE,
                    f"cannot move the log start offset to {new_log_start_offset} past the HW {self.high_watermark}",
                )
            if new_log_start_offset <= self.log_start_offset:
                return False
            self.log_start_offset = new_log_start_offset
            self.rewrites += 1
            self.leader_epoch_cache.truncate_from_start(new_log_start_offset)
            if self.producer_state.map_end_offset < new_log_start_offset:
                self.producer_state.update_map_end_offset(new_log_start_offset)
            return True

    def delete_records(self, offset: int) -> int:
        """DeleteRecords: raise the low watermark to ``offset`` and drop segments wholly below it."""
        with self._lock:
            self.maybe_increment_log_start_offset(offset, LogStartOffsetIncrementReason.CLIENT_RECORD_DELETION)
            self._delete_old_segments(self._below_log_start)
            return self.log_start_offset

    def delete_old_segments(self) -> int:
        """Apply retention (rule 4) at the clock's current time; returns the segments deleted."""
        with self._lock:
            deleted = self._delete_old_segments(self._below_log_start)
            if self.config.delete_enabled:
                deleted += self._delete_retention_bytes_breached()
                deleted += self._delete_retention_ms_breached()
            return deleted

    def _below_log_start(self, segment: LogSegment, following: LogSegment | None) -> bool:
        return following is not None and following.base_offset <= self.log_start_offset

    def _delete_retention_ms_breached(self) -> int:
        retention_ms = self.config.retention_ms
        if retention_ms < 0:
            return 0
        now = self.clock.milliseconds()
        return self._delete_old_segments(lambda segment, _: now - segment.largest_timestamp > retention_ms)

    def _delete_retention_bytes_breached(self) -> int:
        retention_bytes = self.config.retention_bytes
        excess = self.size_in_bytes - retention_bytes
        if retention_bytes < 0 or excess < 0:
            return 0

        def over_size(segment: LogSegment, _: LogSegment | None) -> bool:
            nonlocal excess
            if excess - segment.size < 0:
                return False
            excess -= segment.size
            return True

        return self._delete_old_segments(over_size)

    def _delete_old_segments(self, predicate: Callable[[LogSegment, LogSegment | None], bool]) -> int:
        deletable: list[LogSegment] = []
        for position, segment in enumerate(self.segments):
            following = self.segments[position + 1] if position + 1 < len(self.segments) else None
            upper = following.base_offset if following else self.log_end_offset
            if following is None and segment.size == 0:
                break
            if not (self.high_watermark >= upper and predicate(segment, following)):
                break
            deletable.append(segment)
        if not deletable:
            return 0
        if len(deletable) == len(self.segments):
            self._roll(self.clock.milliseconds())
        new_start = self.segments[len(deletable)].base_offset
        self.maybe_increment_log_start_offset(new_start, LogStartOffsetIncrementReason.SEGMENT_DELETION)
        for segment in deletable:
            segment.delete()
        del self.segments[: len(deletable)]
        self._forget_txn_indexes()
        self.producer_state.delete_snapshots_outside(self.segments[0].base_offset, self.log_end_offset)
        return len(deletable)

    # -- truncation (rule 5) --------------------------------------------------------------------------

    def truncate_to(self, target_offset: int) -> bool:
        """Remove everything at or above ``target_offset``; returns whether anything was removed."""
        if target_offset < 0:
            raise ValueError(f"cannot truncate to a negative offset {target_offset}")
        with self._lock:
            if target_offset >= self.log_end_offset:
                self.leader_epoch_cache.truncate_from_end(self.log_end_offset)
                return False
            if self.segments[0].base_offset > target_offset:
                self.truncate_fully_and_start_at(target_offset)
                return True
            now = self.clock.milliseconds()
            while self.segments[-1].base_offset > target_offset:
                self.segments.pop().delete()
            self.active_segment.truncate_to(target_offset, now)
            self._forget_txn_indexes()
            self._txn_index(self.active_segment).truncate_to(target_offset)
            log_end = self.log_end_offset
            self.leader_epoch_cache.truncate_from_end(log_end)
            self.log_start_offset = min(self.log_start_offset, log_end)
            self._rebuild_producer_state(log_end)
            self.high_watermark = self._clamp_high_watermark(self.high_watermark)
            self.recovery_point = min(self.recovery_point, log_end)
            return True

    def truncate_fully_and_start_at(self, new_offset: int) -> None:
        """Delete every segment and restart the log, empty, at ``new_offset``."""
        with self._lock:
            for segment in self.segments:
                segment.delete()
            self._forget_txn_indexes()
            self.segments = [LogSegment(self.directory, new_offset, self.config, self.clock.milliseconds())]
            self.leader_epoch_cache.clear()
            self.producer_state.truncate_fully_and_start_at(new_offset)
            self.log_start_offset = self.high_watermark = self.recovery_point = new_offset

    # -- durability ------------------------------------------------------------------------------------

    def flush(self, up_to_offset: int | None = None) -> None:
        """fsync every segment holding offsets below ``up_to_offset`` (default: all); advance the
        recovery point to it."""
        with self._lock:
            offset = self.log_end_offset if up_to_offset is None else min(up_to_offset, self.log_end_offset)
            flushed = [segment for segment in self.segments
                       if segment.base_offset < offset and segment.next_offset > self.recovery_point]
            for segment in flushed:
                segment.flush()
            # A segment created since the last flush has a name the directory has not made durable
            # yet: without this a power loss may drop the whole fsynced file (Kafka's LocalLog.flush
            # fsyncs the directory the same way).
            if any(segment.base_offset >= self.recovery_point for segment in flushed):
                durability.fsync_directory(self.directory)
            self.recovery_point = max(self.recovery_point, offset)
            self._unflushed_messages = 0
            self._last_flush_ms = self.clock.milliseconds()

    def maybe_flush(self) -> bool:
        """Flush if ``flush.ms`` has passed since the last flush (for the broker's scheduler)."""
        with self._lock:
            if self.clock.milliseconds() - self._last_flush_ms >= self.config.flush_ms and self._unflushed_messages:
                self.flush()
                return True
            return False

    def remove_expired_producers(self) -> list[int]:
        with self._lock:
            return self.producer_state.remove_expired_producers(self.clock.milliseconds())

    def close(self) -> None:
        """Clean close: snapshot the producer state at the LEO, flush everything, close the files."""
        with self._lock:
            self.producer_state.update_map_end_offset(self.log_end_offset)
            self.producer_state.take_snapshot(sync=True)
            self.active_segment.on_become_inactive()
            self.flush()
            for segment in self.segments:
                segment.close()

    def close_without_flush(self) -> None:
        """Close the files as a crash would leave them (tests use it to simulate kill -9)."""
        for segment in self.segments:
            segment.close()

    # -- invariants ----------------------------------------------------------------------------------

    def check_valid(self) -> None:
        """Assert every invariant of the module docstring (scans all segments)."""
        with self._lock:
            assert self.segments, "a log always has an active segment"
            for earlier, later in zip(self.segments, self.segments[1:], strict=False):
                assert earlier.base_offset < later.base_offset, "segment base offsets increase"
                assert earlier.next_offset <= later.base_offset, "segments do not overlap"
            for segment in self.segments:
                segment.check_valid()
            assert self.segments[0].base_offset <= self.log_start_offset, "log start is inside the log"
            assert self.log_start_offset <= self.high_watermark <= self.log_end_offset, (
                f"log start {self.log_start_offset} <= HW {self.high_watermark} <= LEO {self.log_end_offset}"
            )
            assert self.recovery_point <= self.log_end_offset, "recovery point <= LEO"
            self.leader_epoch_cache.check_valid()
            latest = self.leader_epoch_cache.latest_entry()
            assert latest is None or latest.start_offset <= self.log_end_offset, "epoch cache ends within the log"
            self.producer_state.check_valid()
            assert self.producer_state.map_end_offset == self.log_end_offset, "producer state covers the log"
            for segment in self.segments:
                index = self._txn_index(segment)
                index.check_valid()
                assert all(segment.base_offset <= e.last_offset < segment.next_offset for e in index.entries), \
                    "an aborted transaction is indexed in the segment holding its marker"


def _decode_markers(buffer: bytes | bytearray | memoryview, headers: list[BatchHeader]) -> dict[int, EndTransactionMarker]:
    """The transaction markers among ``headers`` (control + transactional batches of ``buffer``),
    keyed by base offset; a control batch that is not a marker (KRaft's own) is left out."""
    if not any(header.is_control and header.is_transactional for header in headers):
        return {}
    markers: dict[int, EndTransactionMarker] = {}
    for batch in iter_record_batches(buffer, allow_partial_tail=False, verify_crc=False):
        if batch.is_control and batch.is_transactional:
            try:
                markers[batch.base_offset] = decode_end_transaction_marker(batch)
            except InvalidRecordsError:
                continue
    return markers


def _epoch_or_none(header: BatchHeader) -> int | None:
    return header.partition_leader_epoch if header.partition_leader_epoch >= 0 else None


def _finish_interrupted_swaps(directory: Path) -> None:
    """Complete or discard a compaction interrupted by a crash (see :mod:`.cleaner`).

    A ``<base>.log.swap`` file is the commit point: if it exists, every ``<base>.*.swap`` is renamed
    into place.  Otherwise leftover ``.swap``/``.cleaned``/``.deleted`` files are discarded."""
    shutil.rmtree(directory / "cleaning", ignore_errors=True)  # the cleaner's scratch space
    committed = {
        files.offset_from_file(path)
        for path in directory.iterdir()
        if path.name.endswith(files.LOG_SUFFIX + files.SWAP_SUFFIX)
    }
    log_swaps_last = sorted(directory.iterdir(), key=lambda path: (path.name.endswith(files.LOG_SUFFIX + files.SWAP_SUFFIX), path.name))
    for path in log_swaps_last:
        if path.suffix == files.SWAP_SUFFIX and files.offset_from_file(path) in committed:
            path.replace(path.with_suffix(""))
        elif path.suffix in (files.SWAP_SUFFIX, files.CLEANED_SUFFIX, files.DELETED_SUFFIX):
            path.unlink()
