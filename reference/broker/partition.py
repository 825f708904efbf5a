"""Kafka's ``Partition``: leader epoch, in-sync replicas, high watermark, stable offset.

Theory of operation
-------------------
Mirrors Kafka's ``Partition`` and ``Replica`` (core/cluster): the replication state of one
partition on one broker, above its log (``reference.broker.log``, which is storage only).  A
partition is a replica from the first day, even on one node, so that replication slots in without
a rewrite.  The broker's ``ReplicaManager`` applies the controller's metadata to it
(:meth:`Partition.make_leader`, :meth:`Partition.make_follower`); this module never sends
anything itself: an ISR change is handed to an :class:`AlterPartitionSender` and its answer comes
back through :meth:`Partition.handle_alter_partition_response`.

State kept here (the log keeps the offsets themselves):

* ``leader_epoch``, ``leader_id``, ``partition_epoch`` and the assigned ``replicas``, as the last
  metadata said.  A partition change whose partition epoch is older than ours is ignored.
* Becoming leader of a *new* leader epoch records in the leader epoch cache that the epoch starts
  at the current log end offset (``leader_epoch_start_offset``; Kafka's
  ``maybeAssignEpochStartOffset``) and resets every follower's fetch state: ISR members count as
  caught up now, and no follower's log end offset is known until it fetches in the new epoch.
  (Kafka keeps the offsets when the same broker is re-elected; refka forgets them every epoch, as
  ``spec/replication.py`` does -- stricter, since the HW then waits for the next fetches.)
* Becoming follower stops serving produces (NOT_LEADER_OR_FOLLOWER) and forgets the ISR.
* On the leader, per follower (:class:`FollowerFetchState`, Kafka's ``ReplicaState``): its log end
  offset (the offset of its last fetch), log start offset, broker epoch, last fetch time, and
  ``last_caught_up_time_ms`` -- the latest time at which the follower had fetched up to the
  leader's log end offset as it was at its previous fetch.
* The ISR as a small state machine (Kafka's ``PartitionState``), changed only through the
  controller (AlterPartition, api 56, KIP-497):

  ===========================  ============================================  ====================
  state                        ISR / maximal ISR                             leaves on
  ===========================  ============================================  ====================
  ``CommittedPartitionState``  isr / isr                                     expand, shrink
  ``PendingExpandIsr``         committed isr / committed isr + the new one   answer, new metadata
  ``PendingShrinkIsr``         committed isr / committed isr                 answer, new metadata
  ===========================  ============================================  ====================

  Expand: a follower outside the ISR whose log end offset reached the high watermark *and* the
  start offset of the current leader epoch (so it holds everything committed, and nothing of an
  older leader's divergent tail).  Shrink: an ISR follower that has not been caught up for
  ``replica.lag.time.max.ms`` (30 s), checked by :meth:`maybe_shrink_isr` from the broker's
  poll.  One change at a time; while it is in flight the *maximal* ISR is used for the high
  watermark and for acks=all, which is safe either way.  The answer's ISR and partition epoch
  become committed; an error is handled as Kafka's ``handleAlterPartitionError``:
  OPERATION_NOT_ATTEMPTED and INELIGIBLE_REPLICA return to the last committed state;
  FENCED_LEADER_EPOCH, INVALID_UPDATE_VERSION, UNKNOWN_TOPIC_OR_PARTITION, UNKNOWN_TOPIC_ID,
  INVALID_REQUEST and NEW_LEADER_ELECTED keep the pending state until new metadata arrives; any
  other error is retried.  A partition without a sender (one node, or a storage test) never
  changes its ISR by itself and counts no follower outside its ISR for the high watermark.
  Kafka's leader also keeps fenced or shutting-down brokers, and fetches carrying an outdated
  broker epoch, out of the ISR from its metadata cache; refka's partition has no such cache and
  leaves that to the controller, which answers INELIGIBLE_REPLICA (KIP-903: the broker epochs go
  with the proposed ISR).
* The high watermark (:meth:`maybe_increment_high_watermark`) is the smallest log end offset
  among the leader and the followers of the maximal ISR -- and of followers outside it that are
  caught up and could join it -- never lower than before, and it does not move at all while the
  committed ISR is smaller than the effective ``min.insync.replicas`` (``min(min.insync.replicas,
  replication factor)``; Kafka since 3.7).  On one node that is the leader's own LEO, reached through
  the same explicit step a replicated leader takes after each append and each follower fetch.
* acks=all: NOT_ENOUGH_REPLICAS before the append when the committed ISR is smaller than the
  effective ``min.insync.replicas`` (so acks=all succeeds on a topic of replication factor 1 with
  ``min.insync.replicas=2``, as Apache Kafka 4.3.1 answers it).  Afterwards
  :meth:`check_enough_replicas_reach_offset` answers whether the high watermark passed the
  request's last offset, with NOT_ENOUGH_REPLICAS_AFTER_APPEND if the maximal ISR is then below
  the minimum (Kafka's ``checkEnoughReplicasReachOffset``).  Since the HW stands still below the
  minimum, a request whose ISR shrank while it waited normally times out instead.
* ``last_stable_offset`` -- the log's LSO: ``min(first unstable offset, HW)`` (transactions).

Reads follow Kafka's fetch isolation: a follower reads up to the LEO, a consumer up to the HW
(``read_uncommitted``) or the LSO (``read_committed``).  A follower's fetch names the epoch of its
last fetched batch (KIP-595 ``LastFetchedEpoch``); if that epoch ends, in the leader's epoch cache,
below the fetch offset the follower is answered with a ``DivergingEpoch`` and no records
(:meth:`read_for_follower`).  ListOffsets ``latest`` answers the HW or LSO for consumers (Kafka's
``Partition.fetchOffsetForTimestamp``), and offsets found by timestamp at or beyond that bound are
not returned.

Invariants (:meth:`check_valid`, named as in ``spec/replication.py`` where they are the same
property seen from one broker): **LeaderInIsr** -- a leader is in its own ISR;
**ValidHighWatermark** -- ``log_start_offset <= last_stable_offset <= high_watermark <=
log_end_offset``, and on a leader no follower has fetched past the leader's log end offset (that
every live ISR member holds the HW needs the other brokers' logs: the model checks that);
**EpochsMonotonic** -- the leader epoch cache increases and a leader's latest cached epoch is not
above its leader epoch; **IsrWithinReplicas** -- the ISR names assigned replicas
only and a pending expansion adds a replica outside the committed ISR.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Protocol

from reference import guards
from reference.broker.log.log import (
    LATEST_TIMESTAMP,
    FetchDataInfo,
    LogAppendInfo,
    LogStartOffsetIncrementReason,
    PartitionLog,
    TimestampAndOffset,
)
from reference.broker.log.producer_state import AppendOrigin
from reference.errors import ErrorCode, Errors, KafkaError
from reference.records.batch import NO_TIMESTAMP, iter_batches

UNKNOWN_OFFSET = -1  # Kafka's UnifiedLog.UnknownOffset: a follower that has not fetched
UNDEFINED_EPOCH = -1
INITIAL_PARTITION_EPOCH = 0  # Kafka's LeaderAndIsr.InitialPartitionEpoch
DEFAULT_REPLICA_LAG_TIME_MAX_MS = 30_000  # replica.lag.time.max.ms
ACKS_ALL = -1


# A deliberate fault for the chaos harness (``refka chaos run --workload transactional --unsafe
# read-committed-at-hw``), never for use: with REFKA_UNSAFE_TXN=read-committed-at-hw in the broker's
# environment, read_committed fetches are served like read_uncommitted ones (up to the high watermark,
# no aborted-transaction list), so consumers see open and aborted transactions.  Read once at import.
UNSAFE_TXN_ENV = "REFKA_UNSAFE_TXN"
UNSAFE_READ_COMMITTED_AT_HW = os.environ.get(UNSAFE_TXN_ENV) == "read-committed-at-hw"


class FetchIsolation(enum.Enum):
    """How far a read may see: Kafka's ``FetchIsolation``."""

    LOG_END = "log_end"  # followers
    HIGH_WATERMARK = "high_watermark"  # consumers, isolation.level=read_uncommitted
    TXN_COMMITTED = "txn_committed"  # consumers, isolation.level=read_committed


# -- followers as the leader sees them -----------------------------------------------------------


@dataclass
class FollowerFetchState:
    """What the leader knows of one follower from its fetches (Kafka's ``Replica``/``ReplicaState``)."""

    broker_id: int
    log_end_offset: int = UNKNOWN_OFFSET
    log_start_offset: int = UNKNOWN_OFFSET
    last_fetch_leader_log_end_offset: int = 0  # the leader's LEO when the last fetch arrived
    last_fetch_time_ms: int = 0
    last_caught_up_time_ms: int = 0
    broker_epoch: int | None = None  # from the fetch's ReplicaState (KIP-903)

    def is_caught_up(self, leader_end_offset: int, now_ms: int, max_lag_ms: int) -> bool:
        """In sync: at the leader's end now, or caught up within the last ``max_lag_ms``."""
        return leader_end_offset == self.log_end_offset or now_ms - self.last_caught_up_time_ms <= max_lag_ms

    def update_fetch_state(
        self, fetch_offset: int, log_start_offset: int, now_ms: int, leader_end_offset: int, broker_epoch: int
    ) -> None:
        """A fetch at ``fetch_offset`` arrived: the follower holds everything below it.

        It was caught up now if it fetched the leader's current end, or caught up at its previous
        fetch if it now fetched at least what the leader had then (Kafka's
        ``updateFetchStateOrThrow``)."""
        if fetch_offset >= leader_end_offset:
            self.last_caught_up_time_ms = max(self.last_caught_up_time_ms, now_ms)
        elif fetch_offset >= self.last_fetch_leader_log_end_offset:
            self.last_caught_up_time_ms = max(self.last_caught_up_time_ms, self.last_fetch_time_ms)
        self.log_start_offset = log_start_offset
        self.log_end_offset = fetch_offset
        self.last_fetch_leader_log_end_offset = max(leader_end_offset, self.last_fetch_leader_log_end_offset)
        self.last_fetch_time_ms = now_ms
        self.broker_epoch = broker_epoch

    def reset(self, now_ms: int, leader_end_offset: int, is_new_leader: bool, in_sync: bool) -> None:
        """A new leader epoch begins on the leader (Kafka's ``resetReplicaState``)."""
        self.last_caught_up_time_ms = now_ms if in_sync else 0
        if is_new_leader:
            self.log_end_offset = self.log_start_offset = UNKNOWN_OFFSET
            self.last_fetch_leader_log_end_offset = UNKNOWN_OFFSET
            self.last_fetch_time_ms = 0
            self.broker_epoch = None
        else:
            self.last_fetch_leader_log_end_offset = leader_end_offset
            self.last_fetch_time_ms = now_ms if in_sync else 0


# -- the ISR state machine -------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CommittedPartitionState:
    """The ISR as the controller last confirmed it; no change in flight."""

    isr: frozenset[int]
    is_inflight = False

    @property
    def maximal_isr(self) -> frozenset[int]:
        return self.isr


@dataclass(frozen=True, eq=False)
class PendingExpandIsr:
    """An AlterPartition adding ``new_in_sync_replica_id`` is in flight."""

    new_in_sync_replica_id: int
    sent_isr: frozenset[int]
    leader_epoch: int
    partition_epoch: int
    last_committed_state: CommittedPartitionState
    is_inflight = True

    @property
    def isr(self) -> frozenset[int]:
        return self.last_committed_state.isr

    @property
    def maximal_isr(self) -> frozenset[int]:
        """Assume the addition already: a larger ISR only makes the HW and acks=all stricter."""
        return self.isr | {self.new_in_sync_replica_id}


@dataclass(frozen=True, eq=False)
class PendingShrinkIsr:
    """An AlterPartition removing ``out_of_sync_replica_ids`` is in flight."""

    out_of_sync_replica_ids: frozenset[int]
    sent_isr: frozenset[int]
    leader_epoch: int
    partition_epoch: int
    last_committed_state: CommittedPartitionState
    is_inflight = True

    @property
    def isr(self) -> frozenset[int]:
        return self.last_committed_state.isr

    @property
    def maximal_isr(self) -> frozenset[int]:
        """Not assumed before it is confirmed: a smaller ISR could advance the HW wrongly."""
        if not guards.on("pending_removal_still_counted"):  # spec guard pending_removal_still_counted
            return self.sent_isr
        return self.isr


PendingPartitionChange = PendingExpandIsr | PendingShrinkIsr
PartitionState = CommittedPartitionState | PendingPartitionChange

# AlterPartition answers after which the partition waits for new metadata (Kafka's
# handleAlterPartitionError); OPERATION_NOT_ATTEMPTED and INELIGIBLE_REPLICA go back to the last
# committed state; every other error is retried.
_REVERT_TO_COMMITTED = frozenset({"OPERATION_NOT_ATTEMPTED", "INELIGIBLE_REPLICA"})
_AWAIT_METADATA = frozenset({
    "UNKNOWN_TOPIC_OR_PARTITION", "UNKNOWN_TOPIC_ID", "FENCED_LEADER_EPOCH", "INVALID_UPDATE_VERSION",
    "INVALID_REQUEST", "NEW_LEADER_ELECTED",
})


class AlterPartitionSender(Protocol):
    """Where a leader's ISR change goes: the broker's AlterPartition manager."""

    def submit(self, partition: Partition, change: PendingPartitionChange) -> None: ...


@dataclass(frozen=True)
class FollowerRead:
    """What the leader answers one partition of a follower's Fetch."""

    records: bytes
    diverging_epoch: tuple[int, int] | None  # (epoch, end offset) where the follower's log diverges
    high_watermark: int
    log_start_offset: int
    log_end_offset: int
    last_stable_offset: int


class _FollowerLogEndOffsets(MutableMapping[int, int]):
    """``follower_log_end_offsets``: each follower's fetch offset in this epoch (0 before it
    fetched, as the replication model's NOT_FETCHED reads), backed by the fetch states."""

    def __init__(self, followers: dict[int, FollowerFetchState]) -> None:
        self._followers = followers

    def __getitem__(self, broker_id: int) -> int:
        return max(self._followers[broker_id].log_end_offset, 0)

    def __setitem__(self, broker_id: int, offset: int) -> None:
        self._followers.setdefault(broker_id, FollowerFetchState(broker_id)).log_end_offset = offset

    def __delitem__(self, broker_id: int) -> None:
        del self._followers[broker_id]

    def __iter__(self) -> Iterator[int]:
        return iter(self._followers)

    def __len__(self) -> int:
        return len(self._followers)


def _nothing() -> None:
    """The default delayed-operations hook: nobody waits."""


@dataclass(eq=False)
class Partition:
    """One partition as this broker holds it: its log plus leadership and ISR state."""

    log: PartitionLog
    broker_id: int
    leader_epoch: int = -1
    leader_id: int | None = None
    partition_epoch: int = INITIAL_PARTITION_EPOCH
    replicas: list[int] = field(default_factory=list)
    partition_state: PartitionState = field(default_factory=lambda: CommittedPartitionState(frozenset()))
    followers: dict[int, FollowerFetchState] = field(default_factory=dict)
    leader_epoch_start_offset: int | None = None
    min_insync_replicas: int = 1  # the topic's min.insync.replicas
    replica_lag_time_max_ms: int = DEFAULT_REPLICA_LAG_TIME_MAX_MS
    alter_partition: AlterPartitionSender | None = None  # None: this node changes no ISR by itself
    # Kafka's isReplicaIsrEligible (KIP-903): the broker is registered, unfenced and not shutting
    # down, as this broker's metadata says.  A fenced follower neither joins the ISR nor holds
    # the high watermark back while it is "caught up" within replica.lag.time.max.ms.
    replica_eligible: Callable[[int], bool] = lambda broker_id: True
    delayed_operations: Callable[[], None] = _nothing  # Kafka's tryCompleteDelayedRequests

    @property
    def is_leader(self) -> bool:
        return self.leader_id == self.broker_id

    @property
    def isr(self) -> set[int]:
        """The committed ISR (assigning one replaces the state, as metadata would)."""
        return set(self.partition_state.isr)

    @isr.setter
    def isr(self, members: set[int]) -> None:
        self.partition_state = CommittedPartitionState(frozenset(members))

    @property
    def maximal_isr(self) -> frozenset[int]:
        return self.partition_state.maximal_isr

    @property
    def follower_log_end_offsets(self) -> MutableMapping[int, int]:
        return _FollowerLogEndOffsets(self.followers)

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

    @property
    def effective_min_isr(self) -> int:
        """``min(min.insync.replicas, replication factor)`` (Kafka's ``effectiveMinIsr``)."""
        return min(self.min_insync_replicas, len(self.followers) + 1)

    @property
    def is_under_min_isr(self) -> bool:
        return self.is_leader and len(self.partition_state.isr) < self.effective_min_isr

    def _now(self, now_ms: int | None) -> int:
        return self.log.clock.milliseconds() if now_ms is None else now_ms

    # -- leadership (metadata applied) -----------------------------------------------------------

    def make_leader(
        self,
        leader_epoch: int,
        isr: set[int] | frozenset[int] | None = None,
        replicas: list[int] | None = None,
        partition_epoch: int | None = None,
        now_ms: int | None = None,
    ) -> bool:
        """Lead ``leader_epoch`` with ``isr`` (default: this broker alone) over ``replicas``.

        Returns whether this broker became leader (it was not before).  A ``partition_epoch``
        older than ours is ignored (returns False); an older leader epoch raises
        FENCED_LEADER_EPOCH.  Without ``partition_epoch`` the current one is kept."""
        if partition_epoch is not None and partition_epoch < self.partition_epoch:
            return False
        if leader_epoch < self.leader_epoch:
            raise KafkaError(Errors.FENCED_LEADER_EPOCH, f"epoch {leader_epoch} < current {self.leader_epoch}")
        now = self._now(now_ms)
        in_sync = frozenset(isr or ()) | {self.broker_id}
        assigned = list(replicas) if replicas is not None else sorted(set(self.replicas) | in_sync)
        is_new_leader = not self.is_leader
        self._update_assignment_and_isr(assigned, in_sync, is_leader=True)
        if leader_epoch > self.leader_epoch:
            start = self.log.log_end_offset
            self.log.maybe_assign_epoch_start_offset(leader_epoch, start)
            for follower in self.followers.values():  # forgotten even when re-elected, see above
                follower.reset(now, start, True, follower.broker_id in in_sync)
            self.leader_epoch = leader_epoch
            self.leader_epoch_start_offset = start
        if partition_epoch is not None:
            self.partition_epoch = partition_epoch
        self.leader_id = self.broker_id
        if self.maybe_increment_high_watermark(now):
            self.delayed_operations()
        return is_new_leader

    def make_follower(
        self,
        leader_epoch: int,
        leader_id: int | None,
        replicas: list[int] | None = None,
        partition_epoch: int | None = None,
        now_ms: int | None = None,
    ) -> bool:
        """Follow ``leader_id`` (None or -1: no leader) in ``leader_epoch``.

        Returns whether the leader epoch is new (the fetcher must restart); a ``partition_epoch``
        older than ours is ignored (returns False).  Produces are refused from now on and acks=all
        requests waiting here are answered NOT_LEADER_OR_FOLLOWER."""
        if partition_epoch is not None and partition_epoch < self.partition_epoch:
            return False
        is_new_leader_epoch = leader_epoch > self.leader_epoch
        self.leader_id = leader_id
        self.leader_epoch = leader_epoch
        self.leader_epoch_start_offset = None
        if partition_epoch is not None:
            self.partition_epoch = partition_epoch
        self._update_assignment_and_isr(list(replicas) if replicas is not None else self.replicas, frozenset(),
                                        is_leader=False)
        self.delayed_operations()
        return is_new_leader_epoch

    def _update_assignment_and_isr(self, replicas: list[int], isr: frozenset[int], is_leader: bool) -> None:
        self.replicas = replicas
        if is_leader:
            wanted = [replica for replica in replicas if replica != self.broker_id]
            for replica in wanted:
                self.followers.setdefault(replica, FollowerFetchState(replica))
            for gone in set(self.followers) - set(wanted):
                del self.followers[gone]
        else:
            self.followers.clear()
        self.partition_state = CommittedPartitionState(isr)

    def require_leader(self) -> None:
        """NOT_LEADER_OR_FOLLOWER unless this broker leads the partition."""
        self._require_leader()

    def _require_leader(self) -> None:
        if not self.is_leader:
            raise KafkaError(Errors.NOT_LEADER_OR_FOLLOWER,
                             f"broker {self.broker_id} does not lead {self.log.topic_partition.directory_name}")

    def check_current_leader_epoch(self, requested: int) -> None:
        """KIP-320: a request naming another leader epoch must refresh its metadata first."""
        if requested == UNDEFINED_EPOCH or requested == self.leader_epoch:
            return
        if requested > self.leader_epoch:
            raise KafkaError(Errors.UNKNOWN_LEADER_EPOCH, f"epoch {requested} is newer than ours {self.leader_epoch}")
        raise KafkaError(Errors.FENCED_LEADER_EPOCH, f"epoch {requested} is older than ours {self.leader_epoch}")

    # -- the high watermark ---------------------------------------------------------------------

    def maybe_increment_high_watermark(self, now_ms: int | None = None) -> bool:
        """Move the HW up to the smallest LEO of the maximal ISR; returns whether it moved."""
        if self.is_under_min_isr and guards.on("min_insync_replicas"):  # spec guard min_insync_replicas (KIP-966)
            return False
        now = self._now(now_ms)
        leader_end_offset = self.log.log_end_offset
        new_high_watermark = leader_end_offset
        # spec guard maximal_isr_for_hw: a replica being added (KIP-497) holds the HW back too.
        waits_for_joining = guards.on("maximal_isr_for_hw")
        maximal_isr = self.maximal_isr if waits_for_joining else self.partition_state.isr
        waits_for_isr = guards.on("hw_waits_for_isr")  # spec guard hw_waits_for_isr
        for follower in self.followers.values():
            if waits_for_isr and follower.log_end_offset < new_high_watermark and (
                follower.broker_id in maximal_isr
                or (waits_for_joining and self._should_wait_to_join_isr(follower, leader_end_offset, now))
            ):
                new_high_watermark = follower.log_end_offset
        if new_high_watermark <= self.log.high_watermark:
            return False
        self.log.update_high_watermark(new_high_watermark)
        return True

    def _should_wait_to_join_isr(self, follower: FollowerFetchState, leader_end_offset: int, now_ms: int) -> bool:
        """A caught-up follower about to join the ISR holds the HW back, so it can catch up to it
        (a follower that has not fetched in this epoch is not caught up, whatever the time)."""
        return (self.alter_partition is not None and follower.log_end_offset != UNKNOWN_OFFSET
                and follower.is_caught_up(leader_end_offset, now_ms, self.replica_lag_time_max_ms)
                and self.replica_eligible(follower.broker_id))

    def update_follower_fetch_state(
        self,
        follower_id: int,
        log_end_offset: int,
        log_start_offset: int = UNKNOWN_OFFSET,
        now_ms: int | None = None,
        leader_end_offset: int | None = None,
        broker_epoch: int = -1,
    ) -> bool:
        """A follower fetched from ``log_end_offset``: it has everything below it.

        Then the ISR may expand and the HW advance; returns whether the HW moved (waiting
        requests have been told through ``delayed_operations``)."""
        now = self._now(now_ms)
        follower = self.followers.get(follower_id)
        if follower is None:  # no metadata named it (storage tests): it becomes a replica
            follower = self.followers[follower_id] = FollowerFetchState(follower_id)
            self.replicas = [*self.replicas, follower_id]
        previous = follower.log_end_offset
        end = self.log.log_end_offset if leader_end_offset is None else leader_end_offset
        follower.update_fetch_state(log_end_offset, log_start_offset, now, end, broker_epoch)
        self.maybe_expand_isr(follower)
        moved = previous != follower.log_end_offset and self.maybe_increment_high_watermark(now)
        if moved:
            self.delayed_operations()
        return moved

    # -- ISR changes (AlterPartition) -----------------------------------------------------------

    def maybe_expand_isr(self, follower: FollowerFetchState) -> None:
        """Propose adding a follower that has caught up with the current epoch."""
        state = self.partition_state
        if (self.alter_partition is None or not self.is_leader or not isinstance(state, CommittedPartitionState)
                or follower.broker_id in state.isr or not self._is_follower_in_sync(follower)
                or not self.replica_eligible(follower.broker_id)):
            return
        change = PendingExpandIsr(follower.broker_id, state.isr | {follower.broker_id}, self.leader_epoch,
                                  self.partition_epoch, state)
        self.partition_state = change
        self.alter_partition.submit(self, change)

    def _is_follower_in_sync(self, follower: FollowerFetchState) -> bool:
        """LEO >= HW and >= the start of the current leader epoch (Kafka's ``isFollowerInSync``)."""
        start = self.leader_epoch_start_offset
        if start is None:
            return False
        # spec guard expand_needs_caught_up: it holds every committed record ...
        reached_high_watermark = follower.log_end_offset >= self.log.high_watermark
        # ... and spec guard expand_after_epoch_start (KIP-320): nothing of an older, diverged epoch
        reached_epoch_start = follower.log_end_offset >= start
        return ((reached_high_watermark or not guards.on("expand_needs_caught_up"))
                and (reached_epoch_start or not guards.on("expand_after_epoch_start")))

    def out_of_sync_replicas(self, now_ms: int) -> frozenset[int]:
        """ISR followers not caught up within ``replica.lag.time.max.ms`` (none while a change is in flight)."""
        state = self.partition_state
        if state.is_inflight:
            return frozenset()
        leader_end_offset = self.log.log_end_offset
        lagging = set()
        for replica in state.isr - {self.broker_id}:
            follower = self.followers.get(replica)
            if follower is None or not follower.is_caught_up(leader_end_offset, now_ms, self.replica_lag_time_max_ms):
                lagging.add(replica)
        return frozenset(lagging)

    def maybe_shrink_isr(self, now_ms: int) -> bool:
        """Propose removing lagging followers; returns whether a change was sent."""
        state = self.partition_state
        if self.alter_partition is None or not self.is_leader or not isinstance(state, CommittedPartitionState):
            return False
        lagging = self.out_of_sync_replicas(now_ms)
        if not lagging:
            return False
        change = PendingShrinkIsr(lagging, state.isr - lagging, self.leader_epoch, self.partition_epoch, state)
        self.partition_state = change
        self.alter_partition.submit(self, change)
        return True

    def broker_epoch_of(self, replica_id: int) -> int:
        """The broker epoch a follower fetched with (-1 when unknown), for NewIsrWithEpochs."""
        follower = self.followers.get(replica_id)
        return follower.broker_epoch if follower is not None and follower.broker_epoch is not None else -1

    def handle_alter_partition_response(
        self,
        change: PendingPartitionChange,
        error: ErrorCode,
        leader_epoch: int = UNDEFINED_EPOCH,
        isr: frozenset[int] | None = None,
        partition_epoch: int = INITIAL_PARTITION_EPOCH,
        now_ms: int | None = None,
    ) -> bool:
        """Apply the controller's answer to ``change``; returns whether to send it again.

        An answer to a change that is no longer ours (new metadata came first) is ignored."""
        if self.partition_state is not change:
            return False
        if error != Errors.NONE:
            if error.name in _REVERT_TO_COMMITTED:
                self.partition_state = change.last_committed_state
                return False
            return error.name not in _AWAIT_METADATA
        if leader_epoch != self.leader_epoch or partition_epoch < self.partition_epoch:
            return False  # a stale answer: stay pending until metadata says what happened
        self.partition_state = CommittedPartitionState(frozenset(isr or ()))
        self.partition_epoch = partition_epoch
        if self.maybe_increment_high_watermark(now_ms):
            self.delayed_operations()
        return False

    # -- produce -------------------------------------------------------------------------------

    def check_append_allowed(self, required_acks: int) -> None:
        """Kafka's checks before a leader append: NOT_LEADER_OR_FOLLOWER, then for acks=all
        NOT_ENOUGH_REPLICAS when the committed ISR is smaller than the effective
        ``min.insync.replicas``."""
        self._require_leader()
        if (required_acks == ACKS_ALL and len(self.partition_state.isr) < self.effective_min_isr
                and guards.on("min_insync_replicas")):  # spec guard min_insync_replicas
            raise KafkaError(
                Errors.NOT_ENOUGH_REPLICAS,
                f"The size of the current ISR {sorted(self.partition_state.isr)} is insufficient to satisfy the "
                f"min.isr requirement of {self.effective_min_isr} for partition "
                f"{self.log.topic_partition.directory_name}",
            )

    def append_records_to_leader(
        self, records: bytes | bytearray | memoryview, origin: AppendOrigin = AppendOrigin.CLIENT,
        required_acks: int = 1,
    ) -> LogAppendInfo:
        """Append as the leader of the current epoch, then advance the HW (the explicit step).

        Raises NOT_LEADER_OR_FOLLOWER on a follower and, for acks=all, NOT_ENOUGH_REPLICAS when
        the ISR is smaller than the effective ``min.insync.replicas`` (nothing is appended)."""
        self.check_append_allowed(required_acks)
        info = self.log.append_as_leader(records, self.leader_epoch, origin)
        self.maybe_increment_high_watermark()
        return info

    def check_enough_replicas_reach_offset(self, required_offset: int) -> tuple[bool, ErrorCode]:
        """acks=all: has the HW reached ``required_offset`` (the last offset + 1)?

        ``(True, NONE)`` when it has with enough replicas, ``(True,
        NOT_ENOUGH_REPLICAS_AFTER_APPEND)`` when the maximal ISR is below the minimum,
        ``(False, NONE)`` while waiting, ``(False, NOT_LEADER_OR_FOLLOWER)`` once not leader."""
        if not self.is_leader:
            return False, Errors.NOT_LEADER_OR_FOLLOWER
        if self.log.high_watermark < required_offset:
            return False, Errors.NONE
        if self.effective_min_isr <= len(self.maximal_isr) or not guards.on("min_insync_replicas"):
            return True, Errors.NONE
        return True, Errors.NOT_ENOUGH_REPLICAS_AFTER_APPEND

    # -- follower side ---------------------------------------------------------------------------

    def append_records_to_follower(self, records: bytes | bytearray) -> LogAppendInfo:
        """Append what the leader sent, with its offsets and epochs (producer state follows).

        If the log is empty at its start offset and the first batch straddles it (the leader's
        log start moved into that batch), the log restarts at the batch's base offset, as Kafka
        does for an ``UnexpectedAppendOffsetException``."""
        first = next(iter(iter_batches(records)), None)
        end = self.log.log_end_offset
        if (first is not None and first[1].base_offset < end and end == self.log.log_start_offset
                and first[1].last_offset >= end):
            self.log.truncate_fully_and_start_at(first[1].base_offset)
        return self.log.append_as_follower(records)

    def update_follower_high_watermark(self, leader_high_watermark: int) -> bool:
        """A follower's HW is ``min(leader HW, own LEO)``; returns whether it changed."""
        before = self.log.high_watermark
        return self.log.update_high_watermark(min(leader_high_watermark, self.log.log_end_offset)) != before

    def maybe_increment_log_start_offset(self, leader_log_start_offset: int) -> bool:
        """Follow the leader's log start offset up (never past our own HW)."""
        target = min(leader_log_start_offset, self.log.high_watermark)
        return self.log.maybe_increment_log_start_offset(target, LogStartOffsetIncrementReason.LEADER_OFFSET_INCREMENTED)

    def truncate_to(self, offset: int) -> None:
        self.log.truncate_to(offset)

    def truncate_fully_and_start_at(self, offset: int) -> None:
        self.log.truncate_fully_and_start_at(offset)

    # -- reads -------------------------------------------------------------------------------------

    def read(self, fetch_offset: int, max_bytes: int, isolation: FetchIsolation, min_one_message: bool = True) -> FetchDataInfo:
        max_offset = {
            FetchIsolation.LOG_END: self.log.log_end_offset,
            FetchIsolation.HIGH_WATERMARK: self.log.high_watermark,
            FetchIsolation.TXN_COMMITTED: self.log.last_stable_offset,
        }[isolation]
        if UNSAFE_READ_COMMITTED_AT_HW and isolation is FetchIsolation.TXN_COMMITTED:  # see UNSAFE_TXN_ENV
            max_offset, isolation = self.log.high_watermark, FetchIsolation.HIGH_WATERMARK
        return self.log.read(fetch_offset, max_bytes, max_offset, min_one_message,
                             aborted_transactions=isolation is FetchIsolation.TXN_COMMITTED)

    def require_follower(self, replica_id: int, current_leader_epoch: int) -> FollowerFetchState:
        """The fetching follower must be an assigned replica (Kafka's ``followerReplicaOrThrow``):
        else UNKNOWN_LEADER_EPOCH when the fetch names an epoch (retry: metadata may lag), else
        NOT_LEADER_OR_FOLLOWER."""
        follower = self.followers.get(replica_id)
        if follower is not None:
            return follower
        error = Errors.NOT_LEADER_OR_FOLLOWER if current_leader_epoch == UNDEFINED_EPOCH else Errors.UNKNOWN_LEADER_EPOCH
        raise KafkaError(error, f"replica {replica_id} is not assigned {self.log.topic_partition.directory_name} "
                                f"in leader epoch {self.leader_epoch}")

    def read_for_follower(
        self, fetch_offset: int, last_fetched_epoch: int, max_bytes: int, min_one_message: bool = True
    ) -> FollowerRead:
        """A follower's read (Kafka's ``readRecords``): up to the LEO, or a ``DivergingEpoch``.

        With ``last_fetched_epoch`` (not -1): OFFSET_OUT_OF_RANGE if our epoch cache cannot say
        where that epoch ends or the fetch offset is below our log start; a diverging epoch if
        our largest epoch <= it is smaller, or ends before the fetch offset."""
        log = self.log
        high_watermark, log_start, log_end = log.high_watermark, log.log_start_offset, log.log_end_offset
        stable = log.last_stable_offset
        if last_fetched_epoch != UNDEFINED_EPOCH:
            found = log.end_offset_for_epoch(last_fetched_epoch)
            if found is None:
                raise KafkaError(Errors.OFFSET_OUT_OF_RANGE,
                                 f"cannot tell where epoch {last_fetched_epoch} ends in {log.topic_partition.directory_name}")
            if fetch_offset < log_start:
                raise KafkaError(Errors.OFFSET_OUT_OF_RANGE, f"offset {fetch_offset} is below the log start {log_start}")
            epoch, end_offset = found
            if epoch < last_fetched_epoch or end_offset < fetch_offset:
                return FollowerRead(b"", (epoch, end_offset), high_watermark, log_start, log_end, stable)
        data = log.read(fetch_offset, max_bytes, log_end, min_one_message)
        return FollowerRead(data.records, None, high_watermark, log_start, log_end, stable)

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
        """DeleteRecords: -1 means "up to the high watermark"; returns the new low watermark.
        Only a log whose cleanup.policy includes ``delete`` may lose records this way: on a
        compact-only topic the newest value of every key must survive, so Kafka refuses with
        POLICY_VIOLATION before looking at the offset."""
        self._require_leader()
        if not self.log.config.delete_enabled:
            raise KafkaError(Errors.POLICY_VIOLATION, "Records of partitions of a compacted topic cannot be deleted")
        target = self.log.high_watermark if offset == -1 else offset
        if target < 0 or target > self.log.high_watermark:
            raise KafkaError(Errors.OFFSET_OUT_OF_RANGE, f"cannot delete records up to {offset}")
        return self.log.delete_records(target)

    # -- invariants ----------------------------------------------------------------------------------

    def check_valid(self) -> None:
        """Raise AssertionError naming the first invariant of the module docstring that fails."""
        self.log.check_valid()
        state = self.partition_state
        if self.is_leader:
            _require(self.broker_id in state.isr, "LeaderInIsr", f"{self.broker_id} not in {sorted(state.isr)}")
        _require(self.log_start_offset <= self.last_stable_offset <= self.high_watermark <= self.log_end_offset,
                 "ValidHighWatermark", f"log start {self.log_start_offset} <= LSO {self.last_stable_offset} <= "
                 f"HW {self.high_watermark} <= LEO {self.log_end_offset}")
        if self.is_leader:
            for follower in self.followers.values():
                _require(follower.log_end_offset <= self.log_end_offset, "ValidHighWatermark",
                         f"follower {follower.broker_id} fetched past our LEO {self.log_end_offset}")
            latest = self.log.latest_epoch
            _require(latest is None or latest <= self.leader_epoch, "EpochsMonotonic",
                     f"cached epoch {latest} above the leader epoch {self.leader_epoch}")
        if self.replicas:
            _require(state.maximal_isr <= set(self.replicas) | {self.broker_id}, "IsrWithinReplicas",
                     f"ISR {sorted(state.maximal_isr)} outside replicas {self.replicas}")
        if isinstance(state, PendingExpandIsr):
            _require(state.new_in_sync_replica_id not in state.isr, "IsrWithinReplicas",
                     f"expanding by {state.new_in_sync_replica_id}, already in {sorted(state.isr)}")


def _require(condition: bool, invariant: str, detail: str) -> None:
    if not condition:
        raise AssertionError(f"{invariant}: {detail}")


__all__ = [
    "ACKS_ALL",
    "AlterPartitionSender",
    "CommittedPartitionState",
    "FetchIsolation",
    "FollowerFetchState",
    "FollowerRead",
    "Partition",
    "PartitionState",
    "PendingExpandIsr",
    "PendingPartitionChange",
    "PendingShrinkIsr",
]
