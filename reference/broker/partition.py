"""Kafka's ``Partition``: leader epoch, in-sync replicas, high watermark, stable offset.

Theory of operation
-------------------
Mirrors Kafka's ``Partition`` (core/cluster): the replication state of one partition on one broker,
above its log (``reference.broker.log``, which is storage only).  A partition is a replica from the
first day, even on one node, so that replication slots in without a rewrite.

State kept here (the log keeps the offsets themselves):

* ``leader_epoch`` -- the epoch of the current leadership.  ``make_leader`` records in the leader
  epoch cache that this epoch starts at the current log end offset (Kafka's
  ``Partition.makeLeader`` -> ``maybeAssignEpochStartOffset``).
* ``isr`` and the log end offset each follower last fetched from (``follower_log_end_offsets``).
* The high watermark is advanced by :meth:`maybe_increment_high_watermark` to the smallest log end
  offset among the in-sync replicas -- with no followers that is the leader's own LEO, so on one
  node the HW follows the LEO, but through the same explicit step a replicated leader takes after
  each append and each follower fetch.
* ``last_stable_offset`` -- equal to the HW until transactions exist.

Reads follow Kafka's fetch isolation: a follower reads up to the LEO, a consumer up to the HW
(``read_uncommitted``) or the LSO (``read_committed``).  ListOffsets ``latest`` answers the HW or
LSO for consumers (Kafka's ``Partition.fetchOffsetForTimestamp``), and offsets found by timestamp
at or beyond that bound are not returned.

Invariants (``check_valid``): the leader is in its own ISR; ``log_start_offset <= last_stable_offset
<= high_watermark <= log_end_offset``; every follower LEO is <= the leader's; the latest cached
epoch is <= the current leader epoch.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from reference.broker.log.log import (
    LATEST_TIMESTAMP,
    FetchDataInfo,
    LogAppendInfo,
    PartitionLog,
    TimestampAndOffset,
)
from reference.broker.log.producer_state import AppendOrigin
from reference.errors import Errors, KafkaError
from reference.records.batch import NO_TIMESTAMP


class FetchIsolation(enum.Enum):
    """How far a read may see: Kafka's ``FetchIsolation``."""

    LOG_END = "log_end"  # followers
    HIGH_WATERMARK = "high_watermark"  # consumers, isolation.level=read_uncommitted
    TXN_COMMITTED = "txn_committed"  # consumers, isolation.level=read_committed


@dataclass
class Partition:
    """One partition as this broker holds it: its log plus leadership state."""

    log: PartitionLog
    broker_id: int
    leader_epoch: int = -1
    leader_id: int | None = None
    isr: set[int] = field(default_factory=set)
    follower_log_end_offsets: dict[int, int] = field(default_factory=dict)

    @property
    def is_leader(self) -> bool:
        return self.leader_id == self.broker_id

    @property
    def high_watermark(self) -> int:
        return self.log.high_watermark

    @property
    def last_stable_offset(self) -> int:
        return self.log.last_stable_offset

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    # -- leadership ------------------------------------------------------------------------------

    def make_leader(self, leader_epoch: int, isr: set[int] | None = None) -> None:
        """Become leader for ``leader_epoch``: the epoch starts at the current LEO."""
        if leader_epoch < self.leader_epoch:
            raise KafkaError(Errors.FENCED_LEADER_EPOCH, f"epoch {leader_epoch} < current {self.leader_epoch}")
        self.leader_epoch = leader_epoch
        self.leader_id = self.broker_id
        self.isr = set(isr) if isr else {self.broker_id}
        self.isr.add(self.broker_id)
        self.follower_log_end_offsets = {replica: 0 for replica in self.isr if replica != self.broker_id}
        self.log.maybe_assign_epoch_start_offset(leader_epoch, self.log.log_end_offset)
        self.maybe_increment_high_watermark()

    def make_follower(self, leader_epoch: int, leader_id: int) -> None:
        self.leader_epoch = leader_epoch
        self.leader_id = leader_id
        self.isr = set()
        self.follower_log_end_offsets = {}

    def _require_leader(self) -> None:
        if not self.is_leader:
            raise KafkaError(Errors.NOT_LEADER_OR_FOLLOWER, f"broker {self.broker_id} does not lead {self.log.topic_partition}")

    # -- the high watermark --------------------------------------------------------------------------

    def maybe_increment_high_watermark(self) -> bool:
        """Move the HW up to the smallest LEO in the ISR; returns whether it moved."""
        candidates = [self.log.log_end_offset] + [
            offset for replica, offset in self.follower_log_end_offsets.items() if replica in self.isr
        ]
        new_high_watermark = min(candidates)
        if new_high_watermark <= self.log.high_watermark:
            return False
        self.log.update_high_watermark(new_high_watermark)
        return True

    def update_follower_fetch_state(self, follower_id: int, log_end_offset: int) -> None:
        """A follower fetched from ``log_end_offset``: it has everything below it."""
        self.follower_log_end_offsets[follower_id] = log_end_offset
        self.maybe_increment_high_watermark()

    # -- produce, fetch, list offsets --------------------------------------------------------------------

    def append_records_to_leader(self, records: bytes | bytearray, origin: AppendOrigin = AppendOrigin.CLIENT) -> LogAppendInfo:
        """Append as the leader of the current epoch, then advance the HW (the explicit step)."""
        self._require_leader()
        info = self.log.append_as_leader(records, self.leader_epoch, origin)
        self.maybe_increment_high_watermark()
        return info

    def read(self, fetch_offset: int, max_bytes: int, isolation: FetchIsolation, min_one_message: bool = True) -> FetchDataInfo:
        max_offset = {
            FetchIsolation.LOG_END: self.log.log_end_offset,
            FetchIsolation.HIGH_WATERMARK: self.log.high_watermark,
            FetchIsolation.TXN_COMMITTED: self.log.last_stable_offset,
        }[isolation]
        return self.log.read(fetch_offset, max_bytes, max_offset, min_one_message)

    def fetch_offset_for_timestamp(self, timestamp: int, isolation: FetchIsolation | None) -> TimestampAndOffset | None:
        """ListOffsets: ``isolation`` None means a follower/admin (Kafka's "no isolation level")."""
        last_fetchable = {
            None: self.log.log_end_offset,
            FetchIsolation.LOG_END: self.log.log_end_offset,
            FetchIsolation.HIGH_WATERMARK: self.log.high_watermark,
            FetchIsolation.TXN_COMMITTED: self.log.last_stable_offset,
        }[isolation]
        if timestamp == LATEST_TIMESTAMP:
            epoch = self.leader_epoch if self.leader_epoch >= 0 else self.log.latest_epoch
            return TimestampAndOffset(NO_TIMESTAMP, last_fetchable, epoch)
        found = self.log.fetch_offset_by_timestamp(timestamp)
        if found is not None and found.offset >= last_fetchable and found.timestamp != NO_TIMESTAMP:
            return None
        return found

    def last_offset_for_leader_epoch(self, leader_epoch: int) -> tuple[int, int] | None:
        """OffsetForLeaderEpoch: ``(epoch, end offset)`` or None (UNDEFINED)."""
        return self.log.end_offset_for_epoch(leader_epoch)

    def delete_records(self, offset: int) -> int:
        """DeleteRecords: -1 means "up to the high watermark"; returns the new low watermark."""
        self._require_leader()
        target = self.log.high_watermark if offset == -1 else offset
        if target < 0 or target > self.log.high_watermark:
            raise KafkaError(Errors.OFFSET_OUT_OF_RANGE, f"cannot delete records up to {offset}")
        return self.log.delete_records(target)

    def check_valid(self) -> None:
        self.log.check_valid()
        if self.is_leader:
            assert self.broker_id in self.isr, "the leader is in its own ISR"
            assert all(offset <= self.log.log_end_offset for offset in self.follower_log_end_offsets.values())
        assert self.log.log_start_offset <= self.last_stable_offset <= self.high_watermark <= self.log_end_offset
        latest = self.log.latest_epoch
        if self.is_leader:
            assert latest is None or latest <= self.leader_epoch, "no batch carries an epoch above the leader's"
