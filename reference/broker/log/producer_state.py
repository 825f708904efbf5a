"""The idempotent producer's state table of one partition: epochs, sequences, the last five batches.

Theory of operation
-------------------
Mirrors Kafka's ``ProducerStateManager``, ``ProducerAppendInfo`` and ``ProducerStateEntry``
(storage/internals/log; KIP-98 idempotence, KIP-360 epoch bumps, KIP-854 expiry).  A producer with
``enable.idempotence`` gets a producer id and epoch (InitProducerId) and numbers the records it
sends to each partition: a batch carries ``baseSequence`` and covers sequences ``baseSequence ..
baseSequence + lastOffsetDelta`` (wrapping from 2^31-1 to 0).  The leader keeps, per producer id:

* the producer epoch it last saw,
* metadata of the last five batches it appended (``NUM_BATCHES_TO_RETAIN``): last sequence, last
  offset, offset delta (so first sequence and first offset follow), max timestamp,
* the last timestamp (for expiry), the coordinator epoch and the first offset of an open
  transaction (placeholders until transactions arrive).

Before appending a batch from a client the leader decides, in this order (tests carry these names):

1. **Duplicate.** Same epoch as the entry, and first and last sequence equal to one of the five
   cached batches: the batch is *not* appended; the producer is answered with success and the
   offsets the original got (UnifiedLog answers the cached ``firstOffset``/``lastOffset``).
2. **Fenced epoch.** Epoch lower than the entry's: ``INVALID_PRODUCER_EPOCH`` (47).  Kafka answers
   47 on every Produce version since 2.7 (KAFKA-10687, part of KIP-588, made Produce answer only
   ``INVALID_PRODUCER_EPOCH`` here);
   ``PRODUCER_FENCED`` (90) comes only from the transaction coordinator (InitProducerId v4+,
   EndTxn/AddPartitionsToTxn/AddOffsetsToTxn v2+, downgraded to 47 for older versions).
3. **New epoch.** Epoch higher than the entry's: the first sequence must be 0, else
   ``OUT_OF_ORDER_SEQUENCE_NUMBER`` (45).  Appending it forgets the cached batches of the old epoch.
4. **Same epoch.** The first sequence must be the last sequence + 1 (0 after 2^31-1), else
   ``OUT_OF_ORDER_SEQUENCE_NUMBER`` -- a gap, or a retry of a batch older than the five cached ones.
5. **Unknown producer.** No entry (never written here, or expired -- Kafka 4 keeps a producer whose
   batches retention deleted until it expires): any
   sequence is accepted and starts the entry.

Batches that arrive by replication (``AppendOrigin.REPLICATION``) skip the sequence checks and only
move the state forward; that is also how the table is rebuilt from the log on start.

Transactions (KIP-98; Kafka's ``ongoingTxns``/``unreplicatedTxns``):

6. **A transaction starts** in this partition with the producer's first transactional batch after
   its last marker: the entry's ``current_txn_first_offset`` becomes that batch's base offset and the
   table lists it as *ongoing*.  A client's non-transactional batch while its transaction is open is
   ``INVALID_TXN_STATE`` (48).
7. **A marker ends it** (a control batch, written by the coordinator through WriteTxnMarkers): its
   epoch may not be older than the entry's (``INVALID_PRODUCER_EPOCH``), its coordinator epoch not
   older than the last marker's (``TRANSACTION_COORDINATOR_FENCED``); a newer epoch is adopted (the
   KIP-890 bump).  The transaction becomes a :class:`CompletedTxn` spanning ``first offset ..
   marker offset``; it stays *unreplicated* until the high watermark passes the marker.
8. The **first unstable offset** is the first offset of the oldest ongoing or unreplicated
   transaction; the log's last stable offset is ``min(first unstable offset, high watermark)``.

Persistence: :meth:`ProducerStateManager.take_snapshot` writes ``<offset>.snapshot`` in the
partition directory (the state as of that offset: the log takes one on every segment roll and on
clean shutdown).  On start the log loads the newest valid snapshot at or below its end offset and
replays the batches after it, so deduplication survives a restart, including ``kill -9`` (after
which the batches since the last roll are replayed).  Truncating the log reloads from a snapshot at
or below the truncation point and replays, which removes state beyond it.

Snapshot file layout (Kafka's ``ProducerSnapshot`` v1, all big-endian)::

    version int16 (=1) | crc uint32 (CRC-32C of everything after it)
    | count int32 | count x ( producerId int64 | epoch int16 | lastSequence int32 | lastOffset int64
                            | offsetDelta int32 | timestamp int64 | coordinatorEpoch int32
                            | currentTxnFirstOffset int64 )

Kafka writes one entry per producer, holding only its newest batch; so Kafka forgets four of the
five cached batches across a restart.  refka writes one entry per *cached batch*, oldest first,
newest last.  Kafka's reader keeps the last entry it reads for a producer id, so it still sees
exactly what Kafka would have written; refka's reader appends the entries of one producer in order
and so restores the whole five-batch window.

Expiry (``producer.id.expiration.ms``, default one day, KIP-854): a producer with no open
transaction whose last batch timestamp is that old is dropped by :meth:`remove_expired_producers`.
Like Kafka, the timestamp is the batch's max timestamp (the producer's clock).

Invariants (``check_valid``): at most five cached batches per producer; their last offsets
increase; consecutive cached batches are in sequence; every cached offset is below the map end
offset.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import crc32c

from reference import durability, guards
from reference.broker.log import files
from reference.errors import Errors, KafkaError
from reference.records.batch import (
    NO_PRODUCER_EPOCH,
    NO_SEQUENCE,
    NO_TIMESTAMP,
    BatchHeader,
    decrement_sequence,
)
from reference.records.control import EndTransactionMarker

NUM_BATCHES_TO_RETAIN = 5
INT32_MAX = (1 << 31) - 1
DEFAULT_PRODUCER_ID_EXPIRATION_MS = 24 * 60 * 60 * 1000

SNAPSHOT_VERSION = 1
_SNAPSHOT_PREFIX = struct.Struct(">hI")  # version, crc
_SNAPSHOT_COUNT = struct.Struct(">i")
_SNAPSHOT_ENTRY = struct.Struct(">qhiqiqiq")
_CRC_START = _SNAPSHOT_PREFIX.size  # the CRC covers the bytes after version and crc


class AppendOrigin(enum.Enum):
    """Who is appending: clients get every check, replication and the coordinator fewer."""

    CLIENT = "client"
    REPLICATION = "replication"
    COORDINATOR = "coordinator"


class CorruptSnapshotError(Exception):
    """A snapshot file fails its version, length or CRC check; it is deleted and an older one used."""


@dataclass(frozen=True)
class BatchMetadata:
    """What the table remembers of one appended batch."""

    last_seq: int
    last_offset: int
    offset_delta: int
    timestamp: int

    @property
    def first_seq(self) -> int:
        return decrement_sequence(self.last_seq, self.offset_delta)

    @property
    def first_offset(self) -> int:
        return self.last_offset - self.offset_delta


@dataclass(frozen=True)
class CompletedTxn:
    """A transaction of one producer in this partition, ended by the marker at ``last_offset``."""

    producer_id: int
    first_offset: int
    last_offset: int
    is_aborted: bool


@dataclass
class ProducerStateEntry:
    """The state of one producer id in this partition."""

    producer_id: int
    producer_epoch: int = NO_PRODUCER_EPOCH
    batches: list[BatchMetadata] = field(default_factory=list)
    coordinator_epoch: int = -1
    last_timestamp: int = NO_TIMESTAMP
    current_txn_first_offset: int | None = None

    @property
    def is_empty(self) -> bool:
        return not self.batches

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else NO_SEQUENCE

    @property
    def last_data_offset(self) -> int:
        return self.batches[-1].last_offset if self.batches else -1

    def copy(self) -> ProducerStateEntry:
        return replace(self, batches=list(self.batches))

    def find_duplicate(self, producer_epoch: int, first_seq: int, last_seq: int) -> BatchMetadata | None:
        """Rule 1: the cached batch with exactly this epoch and sequence range, if any."""
        if producer_epoch != self.producer_epoch:
            return None
        # spec guard five_batch_window: every cached batch, not only the last, answers a retry.
        cached = self.batches if guards.on("five_batch_window") else self.batches[-1:]
        for batch in cached:
            if batch.first_seq == first_seq and batch.last_seq == last_seq:
                return batch
        return None

    def maybe_update_epoch(self, producer_epoch: int) -> None:
        """A new epoch forgets the cached batches of the old one (rule 3)."""
        if producer_epoch != self.producer_epoch:
            self.batches.clear()
            self.producer_epoch = producer_epoch

    def add_batch(self, producer_epoch: int, batch: BatchMetadata) -> None:
        self.maybe_update_epoch(producer_epoch)
        if len(self.batches) == NUM_BATCHES_TO_RETAIN:
            del self.batches[0]
        self.batches.append(batch)
        self.last_timestamp = batch.timestamp


def in_sequence(last_seq: int, next_seq: int) -> bool:
    """``next_seq`` follows ``last_seq``, wrapping from 2^31-1 to 0 (rule 4)."""
    return next_seq == last_seq + 1 or (next_seq == 0 and last_seq == INT32_MAX)


class ProducerAppendInfo:
    """Validates one producer's batches of an append against its state and accumulates the update.

    It works on a copy of the entry, so nothing changes unless the log calls
    :meth:`ProducerStateManager.update` after the batches are written."""

    def __init__(self, producer_id: int, current: ProducerStateEntry, origin: AppendOrigin) -> None:
        self.producer_id = producer_id
        self.origin = origin
        self._current = current
        self._updated = replace(current.copy(), batches=[])
        self.started_transactions: list[int] = []  # first offsets of transactions begun here (rule 6)
        self.completed_transactions: list[CompletedTxn] = []  # ended by a marker here (rule 7)

    def append_data_batch(
        self, producer_epoch: int, first_seq: int, last_seq: int, timestamp: int, first_offset: int, last_offset: int,
        is_transactional: bool = False,
    ) -> None:
        """Check rules 2-6 for one batch (raising :class:`KafkaError`), then remember it."""
        self._check_epoch(producer_epoch, first_offset)
        if self.origin is AppendOrigin.CLIENT:
            self._check_sequence(producer_epoch, first_seq, first_offset)
        if is_transactional and self._updated.current_txn_first_offset is None:
            self._updated.current_txn_first_offset = first_offset
            self.started_transactions.append(first_offset)
        elif not is_transactional and self._updated.current_txn_first_offset is not None \
                and self.origin is AppendOrigin.CLIENT:
            raise KafkaError(Errors.INVALID_TXN_STATE,
                             f"Expected transactional write from producer {self.producer_id} at offset {first_offset}")
        self._updated.add_batch(
            producer_epoch, BatchMetadata(last_seq, last_offset, last_offset - first_offset, timestamp)
        )

    def append_end_txn_marker(
        self, is_commit: bool, producer_epoch: int, coordinator_epoch: int, offset: int, timestamp: int
    ) -> CompletedTxn:
        """Rule 7: a COMMIT or ABORT marker at ``offset`` ends the producer's transaction."""
        if producer_epoch < self._updated.producer_epoch and self.origin is not AppendOrigin.REPLICATION:
            raise KafkaError(Errors.INVALID_PRODUCER_EPOCH,
                             f"marker epoch {producer_epoch} of producer {self.producer_id} at offset {offset} is "
                             f"older than the last seen epoch {self._updated.producer_epoch}")
        if coordinator_epoch < self._updated.coordinator_epoch and self.origin is not AppendOrigin.REPLICATION:
            raise KafkaError(Errors.TRANSACTION_COORDINATOR_FENCED,
                             f"marker of coordinator epoch {coordinator_epoch} for producer {self.producer_id} is "
                             f"older than {self._updated.coordinator_epoch}")
        first = self._updated.current_txn_first_offset
        completed = CompletedTxn(self.producer_id, offset if first is None else first, offset, not is_commit)
        self._updated.maybe_update_epoch(producer_epoch)
        self._updated.coordinator_epoch = coordinator_epoch
        self._updated.current_txn_first_offset = None
        self._updated.last_timestamp = timestamp
        self.completed_transactions.append(completed)
        return completed

    def _check_epoch(self, producer_epoch: int, offset: int) -> None:
        if (producer_epoch < self._updated.producer_epoch and self.origin is not AppendOrigin.REPLICATION
                and guards.on("epoch_fencing")):  # spec guard epoch_fencing
            raise KafkaError(
                Errors.INVALID_PRODUCER_EPOCH,
                f"epoch {producer_epoch} of producer {self.producer_id} at offset {offset} is older than "
                f"the last seen epoch {self._updated.producer_epoch}",
            )

    def _check_sequence(self, producer_epoch: int, first_seq: int, offset: int) -> None:
        if producer_epoch != self._updated.producer_epoch:
            if first_seq != 0 and self._updated.producer_epoch != NO_PRODUCER_EPOCH:
                raise KafkaError(
                    Errors.OUT_OF_ORDER_SEQUENCE_NUMBER,
                    f"new epoch {producer_epoch} of producer {self.producer_id} must start at sequence 0, "
                    f"got {first_seq}",
                )
            return
        if not self._updated.is_empty:
            current_last_seq = self._updated.last_seq
        elif producer_epoch == self._current.producer_epoch:
            current_last_seq = self._current.last_seq
        else:
            current_last_seq = NO_SEQUENCE
        unknown_producer = self._current.producer_epoch == NO_PRODUCER_EPOCH
        in_order = unknown_producer or in_sequence(current_last_seq, first_seq)
        if not in_order and guards.on("sequence_check"):  # spec guard sequence_check
            raise KafkaError(
                Errors.OUT_OF_ORDER_SEQUENCE_NUMBER,
                f"producer {self.producer_id} at offset {offset}: sequence {first_seq} does not follow "
                f"{current_last_seq}",
            )

    def to_entry(self) -> ProducerStateEntry:
        return self._updated


class ProducerStateManager:
    """The per-partition table of producer states, its snapshots and its rebuild rules."""

    def __init__(self, directory: Path, producer_id_expiration_ms: int = DEFAULT_PRODUCER_ID_EXPIRATION_MS) -> None:
        self.directory = directory
        self.producer_id_expiration_ms = producer_id_expiration_ms
        self.producers: dict[int, ProducerStateEntry] = {}
        self.map_end_offset = 0
        self.last_snapshot_offset = 0
        self.ongoing_txns: dict[int, int] = {}  # first offset -> producer id (rule 6)
        self.unreplicated_txns: dict[int, CompletedTxn] = {}  # first offset -> ended, marker above the HW

    # -- the append path -----------------------------------------------------------------------------

    def last_entry(self, producer_id: int) -> ProducerStateEntry | None:
        return self.producers.get(producer_id)

    def find_duplicate(self, header: BatchHeader) -> BatchMetadata | None:
        """Rule 1 for a client batch: the cached batch it repeats, if any."""
        entry = self.producers.get(header.producer_id)
        if entry is None:
            return None
        return entry.find_duplicate(header.producer_epoch, header.base_sequence, header.last_sequence)

    def prepare_update(self, producer_id: int, origin: AppendOrigin) -> ProducerAppendInfo:
        current = self.producers.get(producer_id) or ProducerStateEntry(producer_id)
        return ProducerAppendInfo(producer_id, current, origin)

    def update(self, append_info: ProducerAppendInfo) -> None:
        """Make a validated append's state current (after the batches are in the log).

        Transactions the append started become ongoing; those it ended stay ongoing until the
        log calls :meth:`complete_txn` (after indexing an aborted one)."""
        for first_offset in append_info.started_transactions:
            self.ongoing_txns[first_offset] = append_info.producer_id
        updated = append_info.to_entry()
        current = self.producers.get(append_info.producer_id)
        if current is None:
            self.producers[append_info.producer_id] = updated
            return
        current.maybe_update_epoch(updated.producer_epoch)
        for batch in updated.batches:
            current.add_batch(updated.producer_epoch, batch)
        current.coordinator_epoch = updated.coordinator_epoch
        current.current_txn_first_offset = updated.current_txn_first_offset
        current.last_timestamp = updated.last_timestamp

    def update_all(self, pending: dict[int, ProducerAppendInfo]) -> None:
        for append_info in pending.values():
            self.update(append_info)

    def validate_batches(
        self, batches: Iterable[BatchHeader], origin: AppendOrigin, markers: Mapping[int, EndTransactionMarker] = {}
    ) -> dict[int, ProducerAppendInfo]:
        """Run rules 2-7 over the producer batches of one append (offsets already assigned).

        ``markers`` maps the base offset of each transaction marker batch to its decoded marker;
        other control batches are ignored."""
        pending: dict[int, ProducerAppendInfo] = {}
        for header in batches:
            if not header.has_producer_id:
                continue
            marker = markers.get(header.base_offset) if header.is_control else None
            if header.is_control and marker is None:
                continue
            info = pending.get(header.producer_id) or self.prepare_update(header.producer_id, origin)
            pending[header.producer_id] = info
            if marker is not None:
                info.append_end_txn_marker(marker.is_commit, header.producer_epoch, marker.coordinator_epoch,
                                           header.base_offset, header.max_timestamp)
                continue
            info.append_data_batch(
                header.producer_epoch,
                header.base_sequence,
                header.last_sequence,
                header.max_timestamp,
                header.base_offset,
                header.last_offset,
                header.is_transactional,
            )
        return pending

    # -- transactions (rules 6-8) ----------------------------------------------------------------------

    def last_stable_offset_after(self, completed: CompletedTxn) -> int:
        """Kafka's ``lastStableOffset(completedTxn)``: the first offset of the oldest transaction of
        another producer still open, else the offset after the marker (for the aborted index)."""
        others = [first for first, producer_id in self.ongoing_txns.items() if producer_id != completed.producer_id]
        return min(others) if others else completed.last_offset + 1

    def complete_txn(self, completed: CompletedTxn) -> None:
        """The marker is in the log (and an aborted transaction indexed): no longer ongoing."""
        self.ongoing_txns.pop(completed.first_offset, None)
        self.unreplicated_txns[completed.first_offset] = completed

    def on_high_watermark_updated(self, high_watermark: int) -> None:
        """Ended transactions whose marker is below the high watermark are stable (rule 8)."""
        for first_offset, completed in list(self.unreplicated_txns.items()):
            if completed.last_offset < high_watermark:
                del self.unreplicated_txns[first_offset]

    @property
    def first_unstable_offset(self) -> int | None:
        """The first offset of the oldest transaction not yet decided and replicated (rule 8)."""
        return min([*self.ongoing_txns, *self.unreplicated_txns], default=None)

    def _rebuild_ongoing_txns(self) -> None:
        self.ongoing_txns = {entry.current_txn_first_offset: producer_id for producer_id, entry in self.producers.items()
                             if entry.current_txn_first_offset is not None}
        self.unreplicated_txns = {}

    def update_map_end_offset(self, offset: int) -> None:
        self.map_end_offset = offset

    # -- expiry ----------------------------------------------------------------------------------------

    def is_expired(self, entry: ProducerStateEntry, now_ms: int) -> bool:
        return entry.current_txn_first_offset is None and now_ms - entry.last_timestamp >= self.producer_id_expiration_ms

    def remove_expired_producers(self, now_ms: int) -> list[int]:
        """Drop producers idle for ``producer.id.expiration.ms``; returns their ids."""
        expired = [pid for pid, entry in self.producers.items() if self.is_expired(entry, now_ms)]
        for producer_id in expired:
            del self.producers[producer_id]
        return expired

    # -- snapshots -------------------------------------------------------------------------------------

    def snapshot_offsets(self) -> list[int]:
        """Offsets of the snapshot files present, ascending."""
        if not self.directory.exists():
            return []
        return sorted(
            files.offset_from_file(path)
            for path in self.directory.iterdir()
            if files.is_offset_named(path, files.SNAPSHOT_SUFFIX)
        )

    def take_snapshot(self, sync: bool = False) -> Path | None:
        """Write the table as of ``map_end_offset`` if it moved past the last snapshot (Kafka's rule)."""
        if self.map_end_offset <= self.last_snapshot_offset:
            return None
        path = files.snapshot_file(self.directory, self.map_end_offset)
        write_snapshot(path, self.producers.values(), sync)
        self.last_snapshot_offset = self.map_end_offset
        return path

    def delete_snapshot(self, offset: int) -> None:
        files.snapshot_file(self.directory, offset).unlink(missing_ok=True)

    def delete_snapshots_outside(self, log_start_offset: int, log_end_offset: int) -> None:
        """Kafka keeps snapshots in ``(log start, log end]``; others can never be loaded again."""
        for offset in self.snapshot_offsets():
            if offset > log_end_offset or offset < log_start_offset:
                self.delete_snapshot(offset)

    def load_latest_snapshot(self, log_start_offset: int, log_end_offset: int, now_ms: int) -> None:
        """Reset the table to the newest valid snapshot within the log (or to empty at log start).

        Corrupt snapshots are deleted and the next older one tried, as in Kafka."""
        self.producers = {}
        self.delete_snapshots_outside(log_start_offset, log_end_offset)
        for offset in reversed(self.snapshot_offsets()):
            try:
                entries = read_snapshot(files.snapshot_file(self.directory, offset))
            except CorruptSnapshotError:
                self.delete_snapshot(offset)
                continue
            self.producers = {pid: entry for pid, entry in entries.items() if not self.is_expired(entry, now_ms)}
            self.map_end_offset = self.last_snapshot_offset = offset
            self._rebuild_ongoing_txns()
            return
        self.map_end_offset = self.last_snapshot_offset = log_start_offset
        self._rebuild_ongoing_txns()

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Forget everything and every snapshot (the log was emptied and restarts at ``offset``)."""
        self.producers = {}
        self.ongoing_txns = {}
        self.unreplicated_txns = {}
        for snapshot_offset in self.snapshot_offsets():
            self.delete_snapshot(snapshot_offset)
        self.map_end_offset = offset
        self.last_snapshot_offset = 0

    def check_valid(self) -> None:
        for producer_id, entry in self.producers.items():
            assert entry.producer_id == producer_id
            assert len(entry.batches) <= NUM_BATCHES_TO_RETAIN, f"producer {producer_id} caches at most five batches"
            pairs = list(zip(entry.batches, entry.batches[1:], strict=False))
            assert all(a.last_offset < b.last_offset for a, b in pairs), f"producer {producer_id} offsets increase"
            assert all(in_sequence(a.last_seq, b.first_seq) for a, b in pairs), f"producer {producer_id} in sequence"
            assert all(b.last_offset < self.map_end_offset for b in entry.batches), "cached batches lie in the log"
            if entry.current_txn_first_offset is not None:
                assert self.ongoing_txns.get(entry.current_txn_first_offset) == producer_id, \
                    f"producer {producer_id}'s open transaction is listed as ongoing"
        assert len(self.ongoing_txns) == sum(e.current_txn_first_offset is not None for e in self.producers.values()), \
            "every ongoing transaction belongs to a producer with an open transaction"


def _entry_records(entry: ProducerStateEntry) -> list[tuple[int, int, int, int, int, int, int, int]]:
    txn_first = -1 if entry.current_txn_first_offset is None else entry.current_txn_first_offset
    if not entry.batches:
        return [(entry.producer_id, entry.producer_epoch, NO_SEQUENCE, -1, 0, entry.last_timestamp,
                 entry.coordinator_epoch, txn_first)]
    records = []
    for n, batch in enumerate(entry.batches):
        newest = n == len(entry.batches) - 1
        timestamp = entry.last_timestamp if newest else batch.timestamp
        records.append((entry.producer_id, entry.producer_epoch, batch.last_seq, batch.last_offset,
                        batch.offset_delta, timestamp, entry.coordinator_epoch, txn_first))
    return records


def encode_snapshot(entries: Iterable[ProducerStateEntry]) -> bytes:
    """The snapshot bytes (layout in the module docstring)."""
    rows = [row for entry in entries for row in _entry_records(entry)]
    body = _SNAPSHOT_COUNT.pack(len(rows)) + b"".join(_SNAPSHOT_ENTRY.pack(*row) for row in rows)
    return _SNAPSHOT_PREFIX.pack(SNAPSHOT_VERSION, crc32c.crc32c(body)) + body


def decode_snapshot(data: bytes) -> dict[int, ProducerStateEntry]:
    """Producer entries from snapshot bytes; raises :class:`CorruptSnapshotError`."""
    if len(data) < _SNAPSHOT_PREFIX.size + _SNAPSHOT_COUNT.size:
        raise CorruptSnapshotError(f"snapshot of {len(data)} bytes is too short")
    version, stored_crc = _SNAPSHOT_PREFIX.unpack_from(data, 0)
    if version != SNAPSHOT_VERSION:
        raise CorruptSnapshotError(f"unknown snapshot version {version}")
    if crc32c.crc32c(data[_CRC_START:]) != stored_crc:
        raise CorruptSnapshotError("snapshot CRC does not match")
    (count,) = _SNAPSHOT_COUNT.unpack_from(data, _CRC_START)
    if count < 0 or len(data) != _CRC_START + _SNAPSHOT_COUNT.size + count * _SNAPSHOT_ENTRY.size:
        raise CorruptSnapshotError(f"snapshot length does not match its {count} entries")
    entries: dict[int, ProducerStateEntry] = {}
    rows = _SNAPSHOT_ENTRY.iter_unpack(data[_CRC_START + _SNAPSHOT_COUNT.size :])
    for producer_id, epoch, last_seq, last_offset, offset_delta, timestamp, coordinator_epoch, txn_first in rows:
        entry = entries.setdefault(producer_id, ProducerStateEntry(producer_id))
        entry.producer_epoch = epoch
        entry.coordinator_epoch = coordinator_epoch
        entry.current_txn_first_offset = txn_first if txn_first >= 0 else None
        if last_offset >= 0:
            entry.add_batch(epoch, BatchMetadata(last_seq, last_offset, offset_delta, timestamp))
        entry.last_timestamp = timestamp
    return entries


def write_snapshot(path: Path, entries: Iterable[ProducerStateEntry], sync: bool) -> None:
    """Write a snapshot file; a crash mid-write leaves a file whose CRC fails, so it is skipped."""
    data = encode_snapshot(entries)
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        if sync:
            durability.fsync(handle)


def read_snapshot(path: Path) -> dict[int, ProducerStateEntry]:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CorruptSnapshotError(f"cannot read {path}: {error}") from error
    return decode_snapshot(data)
