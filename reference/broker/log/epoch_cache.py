"""The leader epoch cache of one partition: which leader epoch began at which offset.

Theory of operation
-------------------
Mirrors Kafka's ``LeaderEpochFileCache`` (KIP-101, KIP-279).  Every batch a leader appends carries
that leader's epoch in ``partitionLeaderEpoch``; the first offset written in each epoch is recorded
here and persisted in ``leader-epoch-checkpoint`` (``epoch start_offset`` lines).  A follower that
restarts, or a new leader's old followers, ask "where did your epoch E end?"
(OffsetForLeaderEpoch) and truncate their log to that offset instead of to their high watermark,
which is what lost acknowledged records before KIP-101.

Rules (numbered as tests name them):

1. ``assign(epoch, start_offset)`` appends an entry when the epoch is new or the same epoch starts
   earlier; entries that would break monotonicity (an epoch >= the new one, or a start offset >=
   the new one) are removed first.  Epochs and offsets are never negative.
2. ``end_offset_for(requested, log_end_offset)`` answers OffsetForLeaderEpoch:

   * requested is UNDEFINED (-1), or larger than every known epoch: ``(-1, -1)``;
   * requested is the latest epoch: ``(requested, log_end_offset)``;
   * requested is older than every known epoch: ``(requested, first entry's start offset)``;
   * otherwise ``(largest known epoch <= requested, start offset of the next larger epoch)``.

3. ``truncate_from_end(end_offset)`` drops entries starting at or after ``end_offset`` (log
   truncation); ``truncate_from_start(start_offset)`` drops entries wholly before the new log start
   offset and moves the last dropped one up to it (retention, DeleteRecords).

Invariant (``check_valid``): epochs and start offsets both strictly increase.

Kafka flushes the checkpoint asynchronously after truncations; refka writes it synchronously every
time the cache changes (simpler, and the file is tiny).
"""

from __future__ import annotations

from pathlib import Path

from reference.broker.log.checkpoint import EpochEntry, leader_epoch_checkpoint

UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1


class LeaderEpochFileCache:
    """Epoch -> start offset, kept sorted and mirrored to ``leader-epoch-checkpoint``."""

    def __init__(self, checkpoint_path: Path) -> None:
        self._checkpoint = leader_epoch_checkpoint(checkpoint_path)
        self._entries: list[EpochEntry] = []
        for entry in self._checkpoint.read():
            self._assign(entry)

    # -- queries --------------------------------------------------------------------------------

    @property
    def entries(self) -> list[EpochEntry]:
        return list(self._entries)

    def latest_entry(self) -> EpochEntry | None:
        return self._entries[-1] if self._entries else None

    def earliest_entry(self) -> EpochEntry | None:
        return self._entries[0] if self._entries else None

    @property
    def latest_epoch(self) -> int | None:
        latest = self.latest_entry()
        return latest.epoch if latest else None

    def epoch_for_offset(self, offset: int) -> int | None:
        """The epoch in which ``offset`` was written, if the cache knows it."""
        found: int | None = None
        for entry in self._entries:
            if entry.start_offset > offset:
                break
            found = entry.epoch
        return found

    def end_offset_for(self, requested_epoch: int, log_end_offset: int) -> tuple[int, int]:
        """``(epoch, end offset)`` for OffsetForLeaderEpoch (rule 2); ``(-1, -1)`` when unknown."""
        undefined = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
        if requested_epoch == UNDEFINED_EPOCH or not self._entries:
            return undefined
        if requested_epoch == self._entries[-1].epoch:
            return requested_epoch, log_end_offset
        higher = next((entry for entry in self._entries if entry.epoch > requested_epoch), None)
        if higher is None:
            return undefined
        floor = [entry for entry in self._entries if entry.epoch <= requested_epoch]
        if not floor:
            return requested_epoch, higher.start_offset
        return floor[-1].epoch, higher.start_offset

    # -- updates --------------------------------------------------------------------------------

    def assign(self, epoch: int, start_offset: int) -> None:
        """Record that ``epoch`` began at ``start_offset`` (rule 1); persists on change."""
        if self._assign(EpochEntry(epoch, start_offset)):
            self.flush()

    def _assign(self, entry: EpochEntry) -> bool:
        if entry.epoch < 0 or entry.start_offset < 0:
            raise ValueError(f"invalid leader epoch entry {entry}")
        latest = self.latest_entry()
        if latest is not None and latest.epoch == entry.epoch and latest.start_offset <= entry.start_offset:
            return False
        while self._entries and (
            self._entries[-1].epoch >= entry.epoch or self._entries[-1].start_offset >= entry.start_offset
        ):
            self._entries.pop()
        self._entries.append(entry)
        return True

    def truncate_from_end(self, end_offset: int) -> None:
        """Drop entries whose start offset is >= ``end_offset`` (rule 3)."""
        if end_offset < 0:
            return
        kept = [entry for entry in self._entries if entry.start_offset < end_offset]
        if len(kept) != len(self._entries):
            self._entries = kept
            self.flush()

    def truncate_from_start(self, start_offset: int) -> None:
        """Drop entries before ``start_offset``, keeping the epoch in force there (rule 3)."""
        removed = [entry for entry in self._entries if entry.start_offset <= start_offset]
        if not removed:
            return
        kept = [entry for entry in self._entries if entry.start_offset > start_offset]
        self._entries = [EpochEntry(removed[-1].epoch, start_offset), *kept]
        if removed != [self._entries[0]]:
            self.flush()

    def clear(self) -> None:
        self._entries = []
        self.flush()

    def flush(self) -> None:
        self._checkpoint.write(self._entries)

    def check_valid(self) -> None:
        pairs = list(zip(self._entries, self._entries[1:], strict=False))
        assert all(a.epoch < b.epoch for a, b in pairs), f"epochs increase: {self._entries}"
        assert all(a.start_offset < b.start_offset for a, b in pairs), f"epoch start offsets increase: {self._entries}"
