"""The replicated log of a KRaft voter: ``__cluster_metadata-0`` on disk, with its snapshots.

Theory of operation
-------------------
Mirrors Kafka's ``KafkaMetadataLog`` (the ``ReplicatedLog`` of KafkaRaftClient): refka's
:class:`~reference.broker.log.log.PartitionLog` for the batches, the leader epoch cache for "where
did epoch E end", and the KIP-630 snapshot files (:mod:`.snapshot`) that stand for the log before
its start offset.  It answers the log questions the Raft rules ask, in Kafka's words:

* ``end_offset()`` -- (log end offset, epoch of the last batch); with an empty log, the epoch of the
  snapshot the log starts at, else 0.  Vote compares candidates by it.
* ``end_offset_for_epoch(E)`` -- the end of the largest epoch <= E here (OffsetForLeaderEpoch).
* ``validate_offset_and_epoch(offset, epoch)`` -- the leader's check of a Fetch position:
  *valid*; *diverging* with where the logs part; or *snapshot*, the follower must start from the
  latest snapshot (an empty follower while a snapshot exists, a position before the log start,
  or at the log start in another epoch than the oldest snapshot's).
* ``truncation_offset(diverging)`` -- where a follower cuts its log after a DivergingEpoch answer:
  ``min(its own end of that epoch, the leader's)``, never below the log start.

Invariants: the oldest snapshot kept is the one the log starts at (older ones are deleted); the
log start offset is never below it once the log was cleaned; the log's own invariants hold.  The
log start offset is not checkpointed: at open it resumes at the latest snapshot, whose state the
listener loads, so the log below it is never read again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from reference.broker.log.clock import Clock
from reference.broker.log.config import LogConfig
from reference.broker.log.log import PartitionLog
from reference.controller.raft_messages import METADATA_PARTITION, METADATA_TOPIC, OffsetAndEpoch
from reference.controller.snapshot import (
    SnapshotId,
    SnapshotReader,
    decode_snapshot,
    delete_snapshots_before,
    list_snapshots,
    read_snapshot,
    read_snapshot_chunk,
    write_snapshot,
    write_snapshot_bytes,
)
from reference.records.batch import RecordBatch, iter_record_batches

VALID, DIVERGING, SNAPSHOT = "valid", "diverging", "snapshot"


class MetadataLog:
    """``<log_dir>/__cluster_metadata-0``: the batches and the snapshots."""

    def __init__(self, log_dir: Path, config: LogConfig, clock: Clock) -> None:
        self.directory = log_dir / f"{METADATA_TOPIC}-{METADATA_PARTITION}"
        self.log = PartitionLog.open(self.directory, config, clock)
        self.latest_snapshot: SnapshotId | None = None
        snapshots = list_snapshots(self.directory)
        latest = snapshots[-1] if snapshots else None
        if latest is not None:
            if self.log.log_end_offset < latest.end_offset:  # crashed between download and truncation
                self.log.truncate_fully_and_start_at(latest.end_offset)
            self.log.update_high_watermark(latest.end_offset)
            if latest.end_offset > self.log.log_start_offset:
                self.log.delete_records(latest.end_offset)
            delete_snapshots_before(self.directory, latest)
        self.latest_snapshot = latest

    # -- offsets and epochs ---------------------------------------------------------------------------

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    def snapshot_at_log_start(self) -> SnapshotId | None:
        snapshot = self.latest_snapshot
        return snapshot if snapshot is not None and snapshot.end_offset == self.log.log_start_offset else None

    def last_fetched_epoch(self) -> int:
        """The epoch of the last batch (the snapshot's when the log is empty; 0 for a new log)."""
        if self.log.log_end_offset > self.log.log_start_offset:
            latest = self.log.latest_epoch
            if latest is not None:
                return latest
        at_start = self.snapshot_at_log_start()
        return at_start.epoch if at_start is not None else 0

    def end_offset(self) -> OffsetAndEpoch:
        return OffsetAndEpoch(self.log.log_end_offset, self.last_fetched_epoch())

    def end_offset_for_epoch(self, epoch: int) -> OffsetAndEpoch:
        """(end offset, epoch) of the largest epoch <= ``epoch`` in this log."""
        found = self.log.end_offset_for_epoch(epoch)
        at_start = self.snapshot_at_log_start()
        if found is None or (at_start is not None and found[0] < at_start.epoch):
            return OffsetAndEpoch(at_start.end_offset, at_start.epoch) if at_start else OffsetAndEpoch(self.log.log_start_offset, 0)
        return OffsetAndEpoch(found[1], found[0])

    def epoch_of(self, offset: int) -> int | None:
        return self.log.leader_epoch_cache.epoch_for_offset(offset)

    def validate_offset_and_epoch(self, offset: int, epoch: int) -> tuple[str, OffsetAndEpoch | None]:
        """Kafka's ``ReplicatedLog.validateOffsetAndEpoch`` (see the module docstring)."""
        latest = self.latest_snapshot
        if latest is not None and offset == 0 and latest.end_offset > 0:
            return SNAPSHOT, OffsetAndEpoch(latest.end_offset, latest.epoch)
        if self.log.log_start_offset == 0 and offset == 0:
            return VALID, None
        earliest = self.earliest_snapshot()
        if latest is not None and earliest is not None and (
            offset < self.log.log_start_offset
            or (offset == self.log.log_start_offset and epoch != earliest.epoch)
            or epoch < earliest.epoch
        ):
            return SNAPSHOT, OffsetAndEpoch(latest.end_offset, latest.epoch)
        end = self.end_offset_for_epoch(epoch)
        if end.epoch != epoch or end.offset < offset:
            return DIVERGING, end
        return VALID, None

    def truncation_offset(self, diverging: OffsetAndEpoch) -> int:
        """Where to truncate after a DivergingEpoch answer (Kafka's ``truncateToEndOffset``)."""
        local = self.log.end_offset_for_epoch(diverging.epoch)
        target = self.log.log_start_offset if local is None else min(local[1], diverging.offset)
        return max(target, self.log.log_start_offset)

    def batches(self, start: int, end: int) -> Iterator[RecordBatch]:
        """The whole batches holding offsets in ``[start, end)``, decoded, in order."""
        while start < end:
            data = self.log.read(start, 1 << 20, max_offset=end).records
            if not data:
                return
            for batch in iter_record_batches(data):
                if batch.last_offset >= start:
                    yield batch
                    start = batch.last_offset + 1

    # -- snapshots --------------------------------------------------------------------------------------

    def earliest_snapshot(self) -> SnapshotId | None:
        """The oldest snapshot the log still joins (Kafka deletes the ones below the log start)."""
        if self.latest_snapshot is None:
            return None
        start = self.log.log_start_offset
        return min((s for s in list_snapshots(self.directory) if s.end_offset >= start), default=None)

    def has_snapshot(self, snapshot_id: SnapshotId) -> bool:
        return snapshot_id in list_snapshots(self.directory)

    def create_snapshot(self, end_offset: int, records: list[bytes], now_ms: int) -> SnapshotId:
        """Write the snapshot of the state below ``end_offset``; its epoch is that of the record at
        ``end_offset - 1``, its header names that record's append time."""
        epoch = self.epoch_of(end_offset - 1)
        if epoch is None or end_offset <= self.log.log_start_offset:
            raise ValueError(f"offset {end_offset - 1} is not in the log (log start {self.log.log_start_offset})")
        snapshot_id = SnapshotId(end_offset, epoch)
        last_batch = next(self.batches(end_offset - 1, end_offset))
        write_snapshot(self.directory, snapshot_id, records, last_batch.max_timestamp, now_ms)
        if self.latest_snapshot is None or snapshot_id > self.latest_snapshot:
            self.latest_snapshot = snapshot_id
        return snapshot_id

    def delete_before_latest_snapshot(self) -> int:
        """Drop the log (and older snapshots) below the latest snapshot; returns the log start."""
        snapshot = self.latest_snapshot
        if snapshot is None or snapshot.end_offset <= self.log.log_start_offset:
            return self.log.log_start_offset
        self.log.delete_records(snapshot.end_offset)
        delete_snapshots_before(self.directory, snapshot)
        return self.log.log_start_offset

    def load_latest_snapshot(self) -> SnapshotReader | None:
        return read_snapshot(self.directory, self.latest_snapshot) if self.latest_snapshot is not None else None

    def snapshot_bytes(self, snapshot_id: SnapshotId) -> bytes:
        return (self.directory / snapshot_id.file_name).read_bytes()

    def read_snapshot_chunk(self, snapshot_id: SnapshotId, position: int, max_bytes: int) -> tuple[bytes, int]:
        return read_snapshot_chunk(self.directory, snapshot_id, position, max_bytes)

    def install_snapshot(self, snapshot_id: SnapshotId, content: bytes) -> SnapshotReader:
        """A snapshot fetched from the leader replaces the whole log: it starts again, empty, at the
        snapshot's end offset.  :class:`~.snapshot.CorruptSnapshotError` leaves everything as it was."""
        reader = decode_snapshot(snapshot_id, content)
        write_snapshot_bytes(self.directory, snapshot_id, content)
        self.latest_snapshot = snapshot_id
        self.log.truncate_fully_and_start_at(snapshot_id.end_offset)
        delete_snapshots_before(self.directory, snapshot_id)
        return reader

    # -- the rest ---------------------------------------------------------------------------------------

    def check_valid(self) -> None:
        self.log.check_valid()
        earliest = self.earliest_snapshot()
        assert earliest is None or earliest.end_offset >= self.log.log_start_offset

    def close(self) -> None:
        self.log.close()
