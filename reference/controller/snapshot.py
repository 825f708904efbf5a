"""KRaft snapshots (KIP-630): files that stand for a prefix of the metadata log.

Theory of operation
-------------------
Mirrors Kafka's ``Snapshots``, ``SnapshotPath``, ``RecordsSnapshotWriter`` and
``RecordsSnapshotReader``.  A snapshot holds the state the listener built from the committed log
below an offset, so the log before it can be deleted and a new voter can start from it instead of
replaying everything.

* **Identity.** A :class:`SnapshotId` is ``(end_offset, epoch)``: the snapshot covers offsets
  ``< end_offset``, and ``epoch`` is the epoch of the record at ``end_offset - 1``.  The id must be
  at or below the high watermark: only committed state is ever snapshotted.
* **File.** ``<20-digit end offset>-<10-digit epoch>.checkpoint`` in the partition directory
  (``__cluster_metadata-0``).  Written as ``….checkpoint.part``, fsynced and renamed, so a crash
  leaves no half snapshot; leftover ``.part`` files are removed when the directory is listed
  at start, as Kafka does.
* **Content.** Ordinary record batches, offsets counting from 0 in the file, each stamped with the
  snapshot's epoch and the time of writing (checked byte for byte against a Kafka 4.3.1
  ``bootstrap.checkpoint``)::

      control batch  SnapshotHeaderRecord {Version 0, LastContainedLogTimestamp}
      data batches   the listener's records
      control batch  SnapshotFooterRecord {Version 0}

  A reader rejects (:class:`CorruptSnapshotError`) a file that does not start with a header or
  end with a footer.  With ``kraft.version`` 1 Kafka also puts KRaftVersionRecord and VotersRecord
  in the header batch; refka's static quorum does not.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from reference import durability
from reference.controller.control_records import (
    SNAPSHOT_FOOTER_RECORD,
    SNAPSHOT_FOOTER_VERSION,
    SNAPSHOT_HEADER_RECORD,
    SNAPSHOT_HEADER_VERSION,
    build_control_batch,
    decode_value,
)
from reference.records.batch import RecordBatch, SimpleRecord, build_batch, iter_record_batches
from reference.records.control import ControlRecordType, decode_control_key

SUFFIX = ".checkpoint"
PARTIAL_SUFFIX = ".checkpoint.part"
DELETED_SUFFIX = ".checkpoint.deleted"
MAX_RECORDS_PER_BATCH = 1000  # how many listener records one snapshot batch holds


@dataclass(frozen=True, order=True)
class SnapshotId:
    """Kafka's ``OffsetAndEpoch`` naming a snapshot: covers offsets below ``end_offset``."""

    end_offset: int
    epoch: int

    @property
    def file_name(self) -> str:
        return f"{self.end_offset:020d}-{self.epoch:010d}{SUFFIX}"

    @classmethod
    def from_file_name(cls, name: str) -> SnapshotId | None:
        """Parse a ``.checkpoint`` file name; None for anything else."""
        if not name.endswith(SUFFIX):
            return None
        stem = name[: -len(SUFFIX)]
        offset, dash, epoch = stem.partition("-")
        if not dash or len(offset) != 20 or len(epoch) != 10 or not (offset.isdigit() and epoch.isdigit()):
            return None
        return cls(int(offset), int(epoch))


@dataclass(frozen=True)
class CommittedBatch:
    """One batch of record values as handed to a Raft listener: base offset, epoch, values."""

    base_offset: int
    epoch: int
    records: tuple[bytes, ...]
    append_timestamp: int = -1

    @property
    def last_offset(self) -> int:
        return self.base_offset + len(self.records) - 1


class CorruptSnapshotError(ValueError):
    """A snapshot file without its header or footer, or with undecodable batches."""


@dataclass
class SnapshotReader:
    """A loaded snapshot: its id, the header's timestamp, and the listener's batches in order."""

    snapshot_id: SnapshotId
    last_contained_log_timestamp: int
    batches: list[CommittedBatch] = field(default_factory=list)

    @property
    def records(self) -> list[bytes]:
        return [value for batch in self.batches for value in batch.records]


def list_snapshots(directory: Path) -> list[SnapshotId]:
    """The complete snapshots in ``directory``, oldest first; removes leftover partial files."""
    found: list[SnapshotId] = []
    if not directory.exists():
        return found
    for path in directory.iterdir():
        if path.name.endswith(PARTIAL_SUFFIX) or path.name.endswith(DELETED_SUFFIX):
            path.unlink(missing_ok=True)
            continue
        snapshot_id = SnapshotId.from_file_name(path.name)
        if snapshot_id is not None:
            found.append(snapshot_id)
    return sorted(found)


def encode_snapshot(snapshot_id: SnapshotId, records: list[bytes], last_contained_log_timestamp: int,
                    timestamp: int | None = None) -> bytes:
    """The bytes of a snapshot file: header batch, data batches, footer batch.  Every batch carries
    ``timestamp`` (the time of writing; default: ``last_contained_log_timestamp``), the header's
    value the append time of the last log record the snapshot contains."""
    epoch = snapshot_id.epoch
    written_at = last_contained_log_timestamp if timestamp is None else timestamp
    header = SNAPSHOT_HEADER_RECORD.make(
        version=SNAPSHOT_HEADER_VERSION, last_contained_log_timestamp=last_contained_log_timestamp
    )
    parts = [
        build_control_batch(
            ControlRecordType.SNAPSHOT_HEADER, header, timestamp=written_at,
            base_offset=0, partition_leader_epoch=epoch,
        )
    ]
    next_offset = 1
    for start in range(0, len(records), MAX_RECORDS_PER_BATCH):
        chunk = records[start : start + MAX_RECORDS_PER_BATCH]
        parts.append(
            build_batch(
                (SimpleRecord(value, timestamp=written_at) for value in chunk),
                base_offset=next_offset,
                partition_leader_epoch=epoch,
            )
        )
        next_offset += len(chunk)
    footer = SNAPSHOT_FOOTER_RECORD.make(version=SNAPSHOT_FOOTER_VERSION)
    parts.append(
        build_control_batch(
            ControlRecordType.SNAPSHOT_FOOTER, footer, timestamp=written_at,
            base_offset=next_offset, partition_leader_epoch=epoch,
        )
    )
    return b"".join(parts)


def write_snapshot_bytes(directory: Path, snapshot_id: SnapshotId, content: bytes) -> Path:
    """Store complete snapshot bytes durably: ``.part`` file, fsync, rename, directory fsync."""
    path = directory / snapshot_id.file_name
    partial = directory / (path.name[: -len(SUFFIX)] + PARTIAL_SUFFIX)
    durability.write_atomically(path, content, temporary=partial)
    return path


def write_snapshot(
    directory: Path, snapshot_id: SnapshotId, records: list[bytes], last_contained_log_timestamp: int,
    timestamp: int | None = None,
) -> Path:
    """Write the snapshot ``snapshot_id`` holding ``records``; returns its path."""
    content = encode_snapshot(snapshot_id, records, last_contained_log_timestamp, timestamp)
    return write_snapshot_bytes(directory, snapshot_id, content)


def decode_snapshot(snapshot_id: SnapshotId, content: bytes) -> SnapshotReader:
    """Parse snapshot bytes; :class:`CorruptSnapshotError` without header or footer."""
    try:
        batches = list(iter_record_batches(content, allow_partial_tail=False))
    except ValueError as error:
        raise CorruptSnapshotError(f"snapshot {snapshot_id}: {error}") from error
    if len(batches) < 2:
        raise CorruptSnapshotError(f"snapshot {snapshot_id} has no header and footer")
    header_batch, footer_batch = batches[0], batches[-1]
    if _control_type(header_batch) is not ControlRecordType.SNAPSHOT_HEADER:
        raise CorruptSnapshotError(f"snapshot {snapshot_id} does not start with a SnapshotHeaderRecord")
    if _control_type(footer_batch) is not ControlRecordType.SNAPSHOT_FOOTER:
        raise CorruptSnapshotError(f"snapshot {snapshot_id} does not end with a SnapshotFooterRecord")
    header_value = header_batch.records[0].value or b""
    header = decode_value(SNAPSHOT_HEADER_RECORD, header_value)
    reader = SnapshotReader(snapshot_id, int(header.last_contained_log_timestamp))
    for batch in batches[1:-1]:
        if batch.is_control:
            continue
        values = tuple(record.value or b"" for record in batch.records)
        reader.batches.append(CommittedBatch(batch.base_offset, batch.partition_leader_epoch, values, batch.max_timestamp))
    return reader


def read_snapshot(directory: Path, snapshot_id: SnapshotId) -> SnapshotReader:
    return decode_snapshot(snapshot_id, (directory / snapshot_id.file_name).read_bytes())


def read_snapshot_chunk(directory: Path, snapshot_id: SnapshotId, position: int, max_bytes: int) -> tuple[bytes, int]:
    """``(bytes from position, total size)`` for FetchSnapshot."""
    path = directory / snapshot_id.file_name
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        file.seek(position)
        return file.read(max(0, max_bytes)), size


def delete_snapshots_before(directory: Path, keep: SnapshotId) -> None:
    """Remove every snapshot older than ``keep`` (Kafka keeps the ones the log still needs;
    refka's log never starts before its latest snapshot once it has cleaned, so older ones go)."""
    for snapshot_id in list_snapshots(directory):
        if snapshot_id < keep:
            (directory / snapshot_id.file_name).unlink(missing_ok=True)


def _control_type(batch: RecordBatch) -> ControlRecordType | None:
    if not batch.is_control or not batch.records:
        return None
    return decode_control_key(batch.records[0].key)
