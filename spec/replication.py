"""Executable model of Kafka's partition replication: leaders, followers, ISR, high watermark.

Theory of operation
-------------------
One partition, replicated on ``replicas`` brokers.  Each replica keeps a log of
``(offset, leader epoch, record id)`` entries (the offset is the position in the log), a high
watermark, the leader epoch it last heard of and whom
it believes to be the leader.  A replica that believes itself leader also keeps its own view of
the ISR and, per follower, the offset of that follower's last fetch in the current epoch.

The controller holds the truth: leader, leader epoch, ISR (and, for KIP-966, the ELR).  It speaks
to replicas through LeaderAndIsr *notifications*, kept as an unordered set: a replica may apply
any notification with a newer epoch than its own, in any order, at any time, or never; so
notifications are delayed, reordered, duplicated and lost without further machinery.

Actions (each a named step; guards are checked where the rule is written in Kafka):

* ``ElectLeader``: the controller picks a live replica from the ISR (clean election), bumps the
  leader epoch and notifies.  With ``unclean`` any live replica may be chosen when no ISR member
  is alive (``unclean.leader.election.enable``); with KIP-966 an ELR member when the ISR is empty.
* ``ControllerShrinkIsr``: the controller removes a crashed broker (session expiry), bumping the
  epoch; removing the leader leaves the partition leaderless.
* ``BecomeLeader`` / ``BecomeFollower``: a replica applies a notification.  A follower truncates:
  to its high watermark (before KIP-101), to the end offset the leader reports for the follower's
  last epoch (KIP-101, OffsetForLeaderEpoch), to the end of the longest epoch both logs share
  (KIP-279), and only against a leader that is in the notified epoch (KIP-320,
  FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH).
* ``LeaderShrinkIsr`` / ``LeaderExpandIsr``: the true leader (the controller's leader in the
  controller's epoch) changes the ISR, as AlterPartition does; shrinking needs a lagging
  follower, expanding a caught-up one.  In every variant but ``kip-497`` the controller commits
  the change in the same step.
* ``kip-497`` keeps the change in flight (KIP-497's AlterIsr, now AlterPartition): the leader
  only *proposes* the new ISR (one request at a time) and ``AlterPartition`` is the controller
  committing it later, or refusing it when the leader's epoch or ISR is no longer the
  controller's (FENCED_LEADER_EPOCH, INVALID_UPDATE_VERSION).  Meanwhile the controller elects
  from the committed ISR, so the leader computes the high watermark over the *maximal* ISR: the
  committed ISR plus the pending additions (``maximal_isr_for_hw``), still counting a pending
  removal (``pending_removal_still_counted``).  The min.insync.replicas check uses the committed
  ISR, as Kafka's does.
* ``Produce``: a replica that believes it leads appends a record, with acks 0, 1 or all; with
  acks=all and fewer than ``min.insync.replicas`` in its ISR it answers NOT_ENOUGH_REPLICAS.
* ``FollowerFetch``: a follower fetches from its leader; the leader records the fetch offset,
  the follower appends what follows and takes ``min(leader high watermark, its end offset)``.
  ``FollowerFetchLost``: the leader handles the request, which adds the follower to the ISR,
  but the response is lost.
* ``AdvanceHighWatermark``: the leader moves its high watermark to the smallest fetch offset of
  its ISR; waiting acks=all produce requests below it are answered (or failed with
  NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR is below ``min.insync.replicas``).
* ``Crash`` (a process crash keeps the page cache; a power loss keeps only what was flushed) and
  ``Restart``.  There is no separate ``Flush`` step and no flushed offset: a power loss keeps *any*
  prefix of the log, chosen at the crash.  Whatever was fsynced is a prefix of the log, so this
  covers every flush schedule at once (Kafka fsyncs only when a segment rolls unless ``flush.*``
  is set), and a pass holds whatever the flush policy.  It spares the search the interleavings of
  flushes with everything else, which multiply the state space by the flushed offsets.

Ghost state records history, so invariants judge against it and not against what the logs hold
now: the records acknowledged with acks=all, the prefix a consumer has read, whether a read ever
conflicted with an earlier one, and whether an acknowledgement was ever given while fewer than
``min.insync.replicas`` replicas held the record.

Simplifications, chosen because they do not remove any failure the variants are about:
a fetch is one atomic request/response; becoming follower includes the OffsetForLeaderEpoch
round trip; a leader forgets a follower's fetch offset when the follower crashes (its fetch
session is gone); a restarted broker accepts only the controller's current notification or newer
(stale requests died with its connections), and a broker the controller still names leader
restarts only after the controller has handled its failure (moved leadership away).  Epochs are compared, never counted, so their numbers mean nothing beyond order.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from typing import NamedTuple

from reference import errors
from reference.errors import Errors
from spec.checker import Invariant, Situation, Transition
from spec.model import BoundSpec, Guard, SpecError, parse_bounds, quick_replace

NO_REPLICA = -1
NOT_FETCHED = -1
NO_EPOCH = -1  # a crashed replica's epoch in the canonical key: its restart replaces the epoch anyway


class Entry(NamedTuple):
    """One record in a replica's log; its offset is its position in the log."""

    leader_epoch: int
    record: int


@quick_replace
class Replica(NamedTuple):
    log: tuple[Entry, ...] = ()
    high_watermark: int = 0
    leader: int = NO_REPLICA
    leader_epoch: int = -1
    isr: frozenset[int] = frozenset()
    fetched: tuple[int, ...] = ()
    alive: bool = True
    lost_data: bool = False
    pending_isr: frozenset[int] | None = None  # kip-497: the ISR an in-flight AlterPartition proposes

    @property
    def log_end_offset(self) -> int:
        return len(self.log)


@quick_replace
class Notification(NamedTuple):
    """A LeaderAndIsr request from the controller."""

    leader: int
    leader_epoch: int
    isr: frozenset[int]


@quick_replace
class Controller(NamedTuple):
    leader: int
    leader_epoch: int
    isr: frozenset[int]
    elr: frozenset[int] = frozenset()


class PendingAck(NamedTuple):
    """An acks=all produce request waiting in the leader's purgatory for the high watermark."""

    record: int
    leader: int


@quick_replace
class ReplicationState(NamedTuple):
    replicas: tuple[Replica, ...]
    controller: Controller
    notifications: frozenset[Notification]
    pending: frozenset[PendingAck] = frozenset()
    acknowledged: frozenset[int] = frozenset()
    consumed: tuple[int, ...] = ()
    inconsistent_read: bool = False
    acknowledged_below_min_isr: bool = False
    records_sent: int = 0
    leader_changes: int = 0
    process_crashes: int = 0
    lossy_crashes: int = 0


# --- variants and guards ----------------------------------------------------------------------

BASE_GUARDS = ("clean_election", "hw_waits_for_isr", "expand_needs_caught_up", "min_insync_replicas")
KIP_101 = BASE_GUARDS + ("truncate_by_leader_epoch",)
KIP_279 = KIP_101 + ("match_epoch_lineage",)
KIP_320 = KIP_279 + ("fence_truncation_epoch", "fence_fetch_epoch", "expand_after_epoch_start")
KIP_966 = KIP_320 + ("unclean_shutdown_leaves_isr", "elr_only_below_min_isr")
ALTER_PARTITION_GUARDS = ("maximal_isr_for_hw", "pending_removal_still_counted")
KIP_497 = KIP_320 + ALTER_PARTITION_GUARDS

VARIANTS: dict[str, tuple[str, ...]] = {
    "truncate-to-hw": BASE_GUARDS,
    "kip-101": KIP_101,
    "kip-279": KIP_279,
    "kip-320": KIP_320,
    "kip-966": KIP_966,
    "unclean": KIP_320,
    "kip-497": KIP_497,
}

VARIANT_SUMMARIES = {
    "truncate-to-hw": "before KIP-101: a follower truncates to its own high watermark",
    "kip-101": "KIP-101: truncate to the leader's end offset for the follower's last epoch",
    "kip-279": "KIP-279: truncate to the end of the last epoch both logs share",
    "kip-320": "KIP-320 (default): truncation and fetches fenced by the current leader epoch",
    "kip-966": "KIP-966: eligible leader replicas; unclean shutdowns leave the ISR",
    "unclean": "kip-320 with unclean.leader.election.enable=true",
    "kip-497": "kip-320 with the ISR change in flight: the leader proposes, the controller commits later",
}

GUARDS: dict[str, Guard] = {
    guard.name: guard
    for guard in (
        Guard("clean_election", "the controller elects a leader only from the ISR",
              "a replica missing acknowledged records becomes leader",
              {"replicas": 3, "records": 1, "leader_changes": 1, "process_crashes": 0}),
        Guard("hw_waits_for_isr", "the high watermark is the smallest fetch offset of the ISR",
              "a record is acknowledged before the ISR holds it",
              {"replicas": 2, "records": 1, "leader_changes": 1, "process_crashes": 0}),
        Guard("expand_needs_caught_up", "a follower joins the ISR only once it has fetched up to the high watermark",
              "a lagging replica in the ISR is elected and committed records vanish",
              {"replicas": 3, "records": 1, "leader_changes": 1, "process_crashes": 0, "acks": "1"}),
        Guard("min_insync_replicas",
              "acks=all is refused (NOT_ENOUGH_REPLICAS, NOT_ENOUGH_REPLICAS_AFTER_APPEND) while the ISR is "
              "below min.insync.replicas; with KIP-966 the high watermark does not advance either",
              "an acks=all acknowledgement backed by fewer than min.insync.replicas copies",
              {"replicas": 2, "records": 1, "leader_changes": 0, "process_crashes": 0}),
        Guard("truncate_by_leader_epoch", "a new follower truncates by leader epoch (KIP-101), not to its high watermark",
              "a restarted follower drops committed records and is elected (KIP-101 scenario 1)",
              {"replicas": 2, "records": 1, "leader_changes": 1, "process_crashes": 1}),
        Guard("match_epoch_lineage", "truncation finds the last epoch both logs share (KIP-279)",
              "logs diverge after two fast leader changes (KAFKA-6361)",
              {"replicas": 2, "records": 3, "leader_changes": 2, "process_crashes": 0}),
        Guard("fence_truncation_epoch",
              "OffsetForLeaderEpoch is answered only by a leader in the follower's new epoch (KIP-320)",
              "a follower truncates against a deposed leader's log",
              {"replicas": 3, "records": 1, "leader_changes": 2, "process_crashes": 0}),
        Guard("fence_fetch_epoch", "a follower fetches only from a leader in its own epoch (KIP-320, FENCED_LEADER_EPOCH)",
              "a follower that skipped a truncation appends on top of a diverged log",
              {"replicas": 3, "records": 2, "leader_changes": 2, "process_crashes": 0}),
        Guard("expand_after_epoch_start",
              "a follower joins the ISR only once it has fetched up to the start of the leader's epoch (KIP-320)",
              "a replica that never saw the previous leader's committed tail enters the ISR",
              {"replicas": 3, "records": 2, "leader_changes": 2, "process_crashes": 0}),
        Guard("unclean_shutdown_leaves_isr",
              "a broker restarting after a power loss is removed from the ISR and ELR (KIP-966)",
              "the last replica standing loses its unflushed tail and is elected again",
              {"replicas": 2, "records": 1, "leader_changes": 1, "process_crashes": 0, "lossy_crashes": 1},
              "kip-966"),
        Guard("elr_only_below_min_isr",
              "only replicas removed while the ISR is below min.insync.replicas join the ELR (KIP-966)",
              "an ELR member that missed committed records is elected",
              {"replicas": 3, "records": 1, "leader_changes": 1, "process_crashes": 2, "lossy_crashes": 0},
              "kip-966"),
        Guard("maximal_isr_for_hw",
              "while an ISR expansion is in flight the high watermark also waits for the replica being added "
              "(the maximal ISR, KIP-497)",
              "the controller commits the expansion after the leader advanced the high watermark without the "
              "new member: an ISR member lacks a record below the high watermark",
              {"replicas": 2, "records": 1, "leader_changes": 0, "process_crashes": 0},
              "kip-497"),
        Guard("pending_removal_still_counted",
              "while an ISR shrink is in flight the high watermark still waits for the replica being removed",
              "a record is acknowledged without the follower the controller still counts in the ISR",
              {"replicas": 2, "records": 1, "leader_changes": 0, "process_crashes": 0}, "kip-497"),
    )
}

BOUNDS = (
    BoundSpec("replicas", 3, "brokers holding the partition", minimum=1),
    BoundSpec("records", 2, "produce requests sent in total"),
    BoundSpec("leader_changes", 2, "elections after the first"),
    BoundSpec("process_crashes", 1, "crashes that keep the page cache"),
    BoundSpec("lossy_crashes", 0, "power losses that drop an unflushed tail of the log"),
    BoundSpec("min_insync_replicas", 2, "min.insync.replicas", minimum=1),
    BoundSpec("acks", "all", "acks of each produce request (mixed: each request picks 0, 1 or all)",
              choices=("all", "1", "0", "mixed")),
)

SITUATIONS = (
    ("hw_with_isr", "a high watermark above 0 with two or more ISR members"),
    ("truncated_suffix", "a follower truncated a non-empty suffix of its log"),
    ("leader_change_over_data", "a leader change over a non-empty log"),
    ("isr_reexpanded", "the ISR shrank and was expanded again"),
    ("lossy_crash", "a power loss dropped unflushed records"),
    ("not_enough_replicas", "a NOT_ENOUGH_REPLICAS reject"),
    ("hw_with_pending_isr", "the high watermark advanced while an ISR change was in flight"),
)


class _Renaming(NamedTuple):
    """One renaming of replica ids, as the canonical key applies it (``perm[old id]`` is the new id).

    ``new_id`` renames an id and leaves NO_REPLICA alone; ``masks`` maps every replica-set bit mask
    to the renamed one; ``in_new_order`` turns a tuple indexed by old id (the replicas, a leader's
    fetch offsets) into the tuple indexed by new id.
    """

    new_id: Mapping[int, int]
    masks: tuple[int, ...]
    in_new_order: Callable[[Sequence[Hashable]], tuple[Hashable, ...]]

    @classmethod
    def of(cls, perm: tuple[int, ...]) -> _Renaming:
        count = len(perm)
        old_id = [0] * count  # the inverse renaming: which old id takes each new id
        for old, new in enumerate(perm):
            old_id[new] = old
        new_id = {NO_REPLICA: NO_REPLICA, **dict(enumerate(perm))}
        masks = tuple(sum(1 << perm[m] for m in range(count) if mask >> m & 1) for mask in range(1 << count))
        # itemgetter of one index returns the item, not a 1-tuple; one replica is never renamed
        in_new_order = operator.itemgetter(*old_id) if count > 1 else tuple
        return cls(new_id, masks, in_new_order)


class ReplicationModel:
    """The replication model for one variant, bounds and set of disabled guards."""

    name = "replication"

    def __init__(self, variant: str = "kip-320", bounds: Mapping[str, int | str] | None = None,
                 disabled: frozenset[str] = frozenset()) -> None:
        if variant not in VARIANTS:
            raise SpecError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
        unknown = disabled - set(VARIANTS[variant])
        if unknown:
            raise SpecError(f"variant {variant} has no guard {', '.join(sorted(unknown))}")
        self.variant = variant
        self.bounds = parse_bounds(BOUNDS, bounds or {})
        self.replica_count = int(self.bounds["replicas"])
        self.max_records = int(self.bounds["records"])
        self.max_leader_changes = int(self.bounds["leader_changes"])
        self.max_process_crashes = int(self.bounds["process_crashes"])
        self.max_lossy_crashes = int(self.bounds["lossy_crashes"])
        self.min_isr = int(self.bounds["min_insync_replicas"])
        acks = str(self.bounds["acks"])
        self.acks_choices: tuple[str, ...] = ("0", "1", "all") if acks == "mixed" else (acks,)
        self.guards = frozenset(VARIANTS[variant]) - disabled
        self.disabled = disabled
        self.elr_enabled = variant == "kip-966"
        self.unclean_enabled = variant == "unclean"
        self.isr_in_flight = variant == "kip-497"
        self.ids = tuple(range(self.replica_count))
        self.permutations = tuple(itertools.permutations(self.ids))
        # The canonical key's tables, built once: every renaming of replica ids, and the bit mask
        # of every replica set (sets are renamed as masks, by table lookup).
        # Keyed by the order the replicas are listed in (old ids, new id 0 first).
        self._renamings = {order: _Renaming.of(self._renaming(order)) for order in self.permutations}
        self._masks: dict[frozenset[int], int] = {
            frozenset(m for m in self.ids if mask >> m & 1): mask for mask in range(1 << self.replica_count)
        }

    def guarded(self, name: str) -> bool:
        return name in self.guards

    def describe_bounds(self) -> str:
        text = " ".join(f"{k}={v}" for k, v in self.bounds.items())
        if self.disabled:
            text += " without " + ",".join(sorted(self.disabled))
        return text

    # --- initial state ------------------------------------------------------------------------

    def initial_states(self) -> Iterator[ReplicationState]:
        """Replica 0 leads at epoch 0 with every replica in the ISR, and everyone knows it."""
        everyone = frozenset(self.ids)
        first = Notification(0, 0, everyone)
        replicas = tuple(
            Replica(leader=0, leader_epoch=0, isr=everyone if i == 0 else frozenset(),
                    fetched=self._no_fetches() if i == 0 else ())
            for i in self.ids
        )
        yield ReplicationState(replicas, Controller(0, 0, everyone), frozenset({first}))

    def _no_fetches(self) -> tuple[int, ...]:
        return (NOT_FETCHED,) * self.replica_count

    # --- helpers --------------------------------------------------------------------------------

    def presumes_leadership(self, state: ReplicationState, r: int) -> bool:
        replica = state.replicas[r]
        return replica.alive and replica.leader == r

    def is_true_leader(self, state: ReplicationState, r: int) -> bool:
        c = state.controller
        return self.presumes_leadership(state, r) and c.leader == r and state.replicas[r].leader_epoch == c.leader_epoch

    @staticmethod
    def _with(state: ReplicationState, r: int, replica: Replica) -> tuple[Replica, ...]:
        replicas = list(state.replicas)
        replicas[r] = replica
        return tuple(replicas)

    def _notify(self, state: ReplicationState, controller: Controller) -> frozenset[Notification]:
        """Add the controller's new decision and drop notifications no replica can still accept."""
        fresh = Notification(controller.leader, controller.leader_epoch, controller.isr)
        floor = min(
            (rep.leader_epoch if rep.alive else controller.leader_epoch - 1) for rep in state.replicas
        )
        kept = {n for n in state.notifications if n.leader_epoch > floor}
        kept.add(fresh)
        return frozenset(kept)

    @staticmethod
    def _epoch_starts(log: Sequence[Entry]) -> list[tuple[int, int]]:
        """The leader-epoch cache derived from a log: (epoch, first offset) in log order."""
        starts: list[tuple[int, int]] = []
        for offset, entry in enumerate(log):
            if not starts or starts[-1][0] != entry.leader_epoch:
                starts.append((entry.leader_epoch, offset))
        return starts

    def _leader_epoch_cache(self, state: ReplicationState, leader: int) -> list[tuple[int, int]]:
        """A leader also caches its own epoch from the offset where it started leading."""
        replica = state.replicas[leader]
        starts = self._epoch_starts(replica.log)
        if self.presumes_leadership(state, leader) and (not starts or starts[-1][0] != replica.leader_epoch):
            starts.append((replica.leader_epoch, replica.log_end_offset))
        return starts

    def _truncation_offset(self, state: ReplicationState, follower: int, leader: int) -> int:
        """Where a new follower truncates to, by the variant's rule."""
        mine = state.replicas[follower]
        if not self.guarded("truncate_by_leader_epoch"):
            return min(mine.high_watermark, mine.log_end_offset)
        if not mine.log:
            return 0
        my_epoch = mine.log[-1].leader_epoch
        cache = self._leader_epoch_cache(state, leader)
        leader_end = state.replicas[leader].log_end_offset
        if not self.guarded("match_epoch_lineage"):
            # KIP-101: OffsetForLeaderEpoch(my last epoch) -> end offset, or UNDEFINED -> my HW.
            answer: int | None = None
            if cache and cache[-1][0] == my_epoch:
                answer = leader_end
            else:
                answer = next((start for epoch, start in cache if epoch > my_epoch), None)
            if answer is None:
                return min(mine.high_watermark, mine.log_end_offset)
            return min(answer, mine.log_end_offset)
        # KIP-279: the leader answers with the largest epoch <= mine it knows and where it ends;
        # the follower truncates to the smaller of that and its own end of that epoch, and asks
        # again with its new last epoch until both name the same epoch.
        log = mine.log
        while log:
            my_epoch = log[-1].leader_epoch
            known = [(epoch, start) for epoch, start in cache if epoch <= my_epoch]
            if not known:
                return min(cache[0][1] if cache else 0, len(log))
            epoch, _ = known[-1]
            later = [start for e, start in cache if e > epoch]
            leader_epoch_end = later[0] if later else leader_end
            own_later = [start for e, start in self._epoch_starts(log) if e > epoch]
            own_epoch_end = own_later[0] if own_later else len(log)
            offset = min(leader_epoch_end, own_epoch_end, len(log))
            if epoch == my_epoch or offset == len(log):
                return offset
            log = log[:offset]
        return 0

    # --- actions --------------------------------------------------------------------------------

    def transitions(self, state: ReplicationState) -> Iterator[Transition[ReplicationState]]:
        yield from self.elect_leader(state)
        yield from self.controller_shrink_isr(state)
        yield from self.apply_notification(state)
        yield from self.leader_shrink_isr(state)
        yield from self.leader_expand_isr(state)
        yield from self.produce(state)
        yield from self.follower_fetch(state)
        yield from self.advance_high_watermark(state)
        yield from self.alter_partition(state)
        yield from self.crash(state)
        yield from self.restart(state)

    def elect_leader(self, state: ReplicationState) -> Iterator[Transition[ReplicationState]]:
        """ElectLeader: the controller picks a new leader and bumps the leader epoch."""
        if state.leader_changes >= self.max_leader_changes:
            return
        c = state.controller
        alive = [r for r in self.ids if state.replicas[r].alive and r != c.leader]
        for r in alive:
            isr, elr, kind = c.isr, c.elr, "clean"
            if r in c.isr:
                pass
            elif self.elr_enabled and r in c.elr and not any(state.replicas[m].alive for m in c.isr):
                isr, elr, kind = frozenset({r}), c.elr - {r}, "from ELR"
            elif self.unclean_enabled and not any(state.replicas[m].alive for m in c.isr):
                isr, elr, kind = frozenset({r}), frozenset(), "unclean"
            elif not self.guarded("clean_election"):
                isr, kind = c.isr | {r}, "outside the ISR"
            else:
                continue
            controller = Controller(r, c.leader_epoch + 1, isr, elr)
            situations = ("leader_change_over_data",) if state.replicas[r].log else ()
            yield Transition(
                "ElectLeader", (("replica", r),),
                state._replace(controller=controller, notifications=self._notify(state, controller),
                        leader_changes=state.leader_changes + 1),
                f"{kind} election, epoch {controller.leader_epoch}", situations)

    def controller_shrink_isr(self, state: ReplicationState) -> Iterator[Transition[ReplicationState]]:
        """ControllerShrinkIsr: a crashed broker's session expired; the controller drops it."""
        c = state.controller
        for r in sorted(c.isr):
            if state.replicas[r].alive:
                continue
            isr = c.isr - {r}
            if not isr and not self.elr_enabled:
                isr = c.isr  # the last ISR member stays; the partition goes offline
            elr = c.elr
            if self.elr_enabled:
                elr = self._elr_after_shrink(c, isr, r)
            if (isr, elr) == (c.isr, c.elr) and c.leader != r:
                continue  # already handled: nothing left to change
            if c.leader != r:
                # A follower leaves: no leader change, so no new epoch; the leader learns the new
                # ISR with the metadata update (as under KRaft, where only the partition epoch moves).
                # The leader reads its partition's metadata in order: when it takes up leadership of
                # this epoch it sees this ISR too, so the pending notification of the epoch carries
                # it.  (A leader acting on the older ISR would have its AlterPartition refused for a
                # stale partition epoch: nothing it could do with the older view takes effect.)
                current = frozenset(n._replace(isr=isr) if n.leader_epoch == c.leader_epoch else n
                                    for n in state.notifications)
                next_state = state._replace(controller=Controller(c.leader, c.leader_epoch, isr, elr),
                                            notifications=current)
                if c.leader != NO_REPLICA and self.is_true_leader(state, c.leader):
                    # New metadata replaces the leader's ISR state; an AlterPartition in flight was
                    # built on the old partition epoch and will be refused: drop it.
                    leader_replica = state.replicas[c.leader]._replace(isr=isr, pending_isr=None)
                    next_state = next_state._replace(replicas=self._with(state, c.leader, leader_replica))
                yield Transition("ControllerShrinkIsr", (("replica", r),), next_state, "follower removed")
                continue
            controller = Controller(NO_REPLICA, c.leader_epoch + 1, isr, elr)
            yield Transition("ControllerShrinkIsr", (("replica", r),),
                             state._replace(controller=controller, notifications=self._notify(state, controller)),
                             f"leader removed, partition offline, epoch {controller.leader_epoch}")

    def _elr_after_shrink(self, c: Controller, isr: frozenset[int], removed: int) -> frozenset[int]:
        """KIP-966: a replica leaving an ISR that is then below min.insync.replicas joins the ELR."""
        if not self.guarded("elr_only_below_min_isr"):
            return c.elr | {removed}  # mutant: every leaver is eligible, even one that lags
        if len(isr) >= self.min_isr:
            return frozenset()  # the ISR alone guarantees durability: no ELR needed
        return c.elr | {removed}  # the HW could not advance without it: it holds every committed record

    def apply_notification(self, state: ReplicationState) -> Iterator[Transition[ReplicationState]]:
        """BecomeLeader / BecomeFollower: a replica applies a newer LeaderAndIsr request."""
        oldest_first = sorted(state.notifications, key=lambda n: n.leader_epoch)  # once, for every replica
        for r in self.ids:
            replica = state.replicas[r]
            if not replica.alive:
                continue
            for n in oldest_first:
                if n.leader_epoch <= replica.leader_epoch:
                    continue
                if n.leader == r:
                    yield self._become_leader(state, r, n)
                else:
                    step = self._become_follower(state, r, n)
                    if step is not None:
                        yield step

    def _become_leader(self, state: ReplicationState, r: int, n: Notification) -> Transition[ReplicationState]:
        replica = state.replicas[r]._replace(leader=r, leader_epoch=n.leader_epoch, isr=n.isr,
                          fetched=self._no_fetches(), pending_isr=None)
        return Transition("BecomeLeader", (("replica", r), ("epoch", n.leader_epoch)),
                          state._replace(replicas=self._with(state, r, replica)))

    def _become_follower(self, state: ReplicationState, r: int, n: Notification) -> Transition[ReplicationState] | None:
        replica = state.replicas[r]
        # A replica that leaves leadership drops its purgatory; the set is rebuilt only when it
        # holds a request of this replica's.
        pending = state.pending
        if any(p.leader == r for p in pending):
            pending = frozenset(p for p in pending if p.leader != r)
        if n.leader == NO_REPLICA:
            follower = replica._replace(leader=NO_REPLICA, leader_epoch=n.leader_epoch, isr=frozenset(), fetched=(),
                                        pending_isr=None)
            return Transition("BecomeFollower", (("replica", r), ("epoch", n.leader_epoch)),
                              state._replace(replicas=self._with(state, r, follower), pending=pending), "no leader")
        if self.guarded("truncate_by_leader_epoch"):
            # OffsetForLeaderEpoch goes to the named leader; a non-leader answers NOT_LEADER_OR_FOLLOWER.
            if not self.presumes_leadership(state, n.leader):
                return None
            if self.guarded("fence_truncation_epoch") and state.replicas[n.leader].leader_epoch != n.leader_epoch:
                return None  # FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH: retry later
        offset = self._truncation_offset(state, r, n.leader)
        truncated = replica.log_end_offset - offset
        follower = replica._replace(log=replica.log[:offset],
            high_watermark=min(replica.high_watermark, offset), leader=n.leader,
            leader_epoch=n.leader_epoch, isr=frozenset(), fetched=(), pending_isr=None)
        note = f"truncate to offset {offset}" + (f", dropping {truncated}" if truncated else "")
        return Transition("BecomeFollower", (("replica", r), ("epoch", n.leader_epoch)),
                          state._replace(replicas=self._with(state, r, follower), pending=pending), note,
                          ("truncated_suffix",) if truncated else ())

    def _set_isr(self, state: ReplicationState, leader: int, isr: frozenset[int], elr: frozenset[int]) -> ReplicationState:
        if self.isr_in_flight:  # kip-497: only proposed; AlterPartition commits it later
            return state._replace(replicas=self._with(state, leader, state.replicas[leader]._replace(pending_isr=isr)))
        replica = state.replicas[leader]._replace(isr=isr)
        controller = state.controller._replace(isr=isr, elr=elr)
        return state._replace(replicas=self._with(state, leader, replica), controller=controller)

    def leader_shrink_isr(self, state: ReplicationState) -> Iterator[Transition[ReplicationState]]:
        """LeaderShrinkIsr: the leader drops a follower that lags its end offset (AlterPartition)."""
        for leader in self.ids:
            if not self.is_true_leader(state, leader):
                continue
            me = state.replicas[leader]
            if me.pending_isr is not None:
                continue  # one AlterPartition in flight at a time
            for f in sorted(me.isr - {leader}):
                if me.fetched[f] >= me.log_end_offset:
                    continue
                isr = me.isr - {f}
                elr = self._elr_after_shrink(state.controller, isr, f) if self.elr_enabled else frozenset()
                yield Transition("LeaderShrinkIsr", (("leader", leader), ("follower", f)),
                                 self._set_isr(state, leader, isr, elr))

    def leader_expand_isr(self, state: ReplicationState) -> Iterator[Transition[ReplicationState]]:
        """LeaderExpandIsr: a follower that caught up joins the ISR again."""
        for leader in self.ids:
            if not self.is_true_leader(state, leader):
                continue
            for f in self.ids:
                expanded = self._expanded(state, leader, f)
                if expanded is not None:
                    yield Transition("LeaderExpandIsr", (("leader", leader), ("follower", f)), expanded,
                                     situations=("isr_reexpanded",))

    def _expanded(self, state: ReplicationState, leader: int, f: int) -> ReplicationState | None:
        """The state after ``leader`` adds ``f`` to the ISR, or None when its guards refuse."""
        me = state.replicas[leader]
        if f in me.isr or me.fetched[f] == NOT_FETCHED or me.pending_isr is not None:
            return None
        if self.guarded("expand_needs_caught_up") and me.fetched[f] < me.high_watermark:
            return None
        if self.guarded("expand_after_epoch_start") and me.fetched[f] < self._leader_epoch_cache(state, leader)[-1][1]:
            return None
        isr = me.isr | {f}
        elr = state.controller.elr - {f}
        if len(isr) >= self.min_isr and self.guarded("elr_only_below_min_isr"):
            elr = frozenset()
        next_state = self._set_isr(state, leader, isr, elr if self.elr_enabled else frozenset())
        follower = next_state.replicas[f]
        if follower.lost_data:
            next_state = next_state._replace(replicas=self._with(next_state, f, follower._replace(lost_data=False)))
        return next_state

    def produce(self, state: ReplicationState) -> Iterator[Transition[ReplicationState]]:
        """Produce: a replica that believes it leads appends the next record."""
        if state.records_sent >= self.max_records:
            return
        record = state.records_sent
        for leader in self.ids:
            if not self.presumes_leadership(state, leader):
                continue
            me = state.replicas[leader]
            for acks in self.acks_choices:
                args = (("leader", leader), ("acks", acks))
                if acks == "all" and self.guarded("min_insync_replicas") and len(me.isr) < self.min_isr:
                    # Nothing changes: the producer will retry the same record later.
                    yield Transition("Produce", args, state,
                                     f"rejected: {Errors.NOT_ENOUGH_REPLICAS.name}", ("not_enough_replicas",))
                    continue
                appended = me._replace(log=me.log + (Entry(me.leader_epoch, record),))
                pending = state.pending | {PendingAck(record, leader)} if acks == "all" else state.pending
                acknowledged = state.acknowledged
                yield Transition("Produce", args,
                                 state._replace(replicas=self._with(state, leader, appended), pending=pending,
                                         acknowledged=acknowledged, records_sent=record + 1),
                                 f"record r{record} appended at offset {me.log_end_offset}")

    def follower_fetch(self, state: ReplicationState) -> Iterator[Transition[ReplicationState]]:
        """FollowerFetch: fetch from the believed leader; the response carries its high watermark."""
        for f in self.ids:
            me = state.replicas[f]
            leader = me.leader
            if not me.alive or leader in (NO_REPLICA, f) or not self.presumes_leadership(state, leader):
                continue
            source = state.replicas[leader]
            if self.guarded("fence_fetch_epoch") and source.leader_epoch != me.leader_epoch:
                continue  # FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH
            log = me.log
            if f not in source.isr and len(log) <= source.log_end_offset and self.is_true_leader(state, leader):
                # The leader handles the request: it learns that the follower holds everything
                # below its fetch offset and, that being enough, adds it to the ISR; then the
                # response is lost (the leader failed or the connection broke before sending it).
                # The ISR now holds a replica that has only what it had before (KAFKA-7128).  Only
                # modelled when the request changes the ISR: otherwise the leader learns no more
                # than the next fetch tells it.
                fetched = list(source.fetched)
                fetched[f] = len(log)
                informed = state._replace(replicas=self._with(state, leader, source._replace(fetched=tuple(fetched))))
                expanded = self._expanded(informed, leader, f)
                if expanded is not None:
                    yield Transition("FollowerFetchLost", (("follower", f), ("leader", leader)), expanded,
                                     f"fetch offset {len(log)} handled, ISR expanded, response lost",
                                     ("isr_reexpanded",))
            note = ""
            situations: tuple[str, ...] = ()
            if len(log) > source.log_end_offset:  # OFFSET_OUT_OF_RANGE: reset to the leader's end
                log = log[: source.log_end_offset]
                note = f"{Errors.OFFSET_OUT_OF_RANGE.name}: truncate to {source.log_end_offset}; "
                situations = ("truncated_suffix",)
            fetch_offset = len(log)
            new_log = log + source.log[fetch_offset:]
            if new_log == me.log and source.fetched[f] == len(new_log) and \
                    me.high_watermark == min(source.high_watermark, len(new_log)):
                continue  # nothing would change
            follower = me._replace(log=new_log,
                               high_watermark=min(source.high_watermark, len(new_log)))
            fetched = list(source.fetched)
            fetched[f] = len(new_log)  # the follower's next fetch, already on its way, reports this
            replicas = list(state.replicas)
            replicas[f] = follower
            replicas[leader] = source._replace(fetched=tuple(fetched))
            note += f"fetch offset {fetch_offset}, +{len(new_log) - len(log)} records"
            yield Transition("FollowerFetch", (("follower", f), ("leader", leader)),
                             state._replace(replicas=tuple(replicas)), note, situations)

    def advance_high_watermark(self, state: ReplicationState) -> Iterator[Transition[ReplicationState]]:
        """AdvanceHighWatermark: to the smallest fetch offset of the ISR; answer waiting producers."""
        for leader in self.ids:
            if not self.presumes_leadership(state, leader):
                continue
            me = state.replicas[leader]
            if self.guarded("hw_waits_for_isr"):
                offsets = [me.log_end_offset if m == leader else me.fetched[m] for m in self._isr_for_hw(me)]
                target = min(offsets)
            else:
                target = me.log_end_offset
            if target <= me.high_watermark:
                continue
            if self.elr_enabled and self.guarded("min_insync_replicas") and len(me.isr) < self.min_isr:
                continue  # KIP-966: the high watermark waits for min.insync.replicas
            yield self._advance_to(state, leader, target)

    def _isr_for_hw(self, me: Replica) -> frozenset[int]:
        """The members the high watermark waits for: the ISR, or under kip-497 the maximal ISR."""
        if me.pending_isr is None:
            return me.isr
        isr = me.isr
        if self.guarded("maximal_isr_for_hw"):
            isr = isr | me.pending_isr  # a member being added counts already
        if not self.guarded("pending_removal_still_counted"):
            isr = isr & me.pending_isr  # mutant: a member being removed no longer counts
        return isr

    def alter_partition(self, state: ReplicationState) -> Iterator[Transition[ReplicationState]]:
        """AlterPartition (kip-497): the controller handles the leader's proposed ISR."""
        c = state.controller
        for leader in self.ids:
            me = state.replicas[leader]
            if me.pending_isr is None or not me.alive:
                continue
            args = (("leader", leader),)
            if not self.is_true_leader(state, leader) or me.isr != c.isr:
                refused = me._replace(pending_isr=None)
                # A deposed leader's request is fenced by its epoch; one built on an ISR the controller
                # has since changed, by its partition epoch (INVALID_UPDATE_VERSION).
                error = Errors.FENCED_LEADER_EPOCH.name if not self.is_true_leader(state, leader) else \
                    errors.by_name["INVALID_UPDATE_VERSION"].name
                yield Transition("AlterPartition", args, state._replace(replicas=self._with(state, leader, refused)),
                                 f"refused: {error}")
                continue
            isr = me.pending_isr
            committed = me._replace(isr=isr, pending_isr=None)
            next_state = state._replace(replicas=self._with(state, leader, committed), controller=c._replace(isr=isr))
            # Those notifications of this epoch not yet applied carry the committed ISR (as ControllerShrinkIsr).
            next_state = next_state._replace(notifications=frozenset(
                n._replace(isr=isr) if n.leader_epoch == c.leader_epoch else n for n in state.notifications))
            situations = ("isr_reexpanded",) if isr > c.isr else ()
            yield Transition("AlterPartition", args, next_state, f"ISR {_names(c.isr)} -> {_names(isr)} committed",
                             situations)

    def _advance_to(self, state: ReplicationState, leader: int, target: int) -> Transition[ReplicationState]:
        me = state.replicas[leader]
        committed = {entry.record for entry in me.log[:target]}
        answered = {p for p in state.pending if p.leader == leader and p.record in committed}
        acknowledged = state.acknowledged
        below_min = state.acknowledged_below_min_isr
        notes = [f"high watermark {me.high_watermark} -> {target}"]
        for p in sorted(answered, key=lambda p: p.record):
            if self.guarded("min_insync_replicas") and len(me.isr) < self.min_isr:
                notes.append(f"r{p.record}: {Errors.NOT_ENOUGH_REPLICAS_AFTER_APPEND.name}")
                continue
            acknowledged = acknowledged | {p.record}
            copies = sum(1 for rep in state.replicas if any(e.record == p.record for e in rep.log))
            below_min = below_min or copies < self.min_isr
            notes.append(f"r{p.record} acknowledged")
        read = tuple(entry.record for entry in me.log[:target])
        consumed, inconsistent = state.consumed, state.inconsistent_read
        shorter, longer = sorted((read, consumed), key=len)
        if longer[: len(shorter)] != shorter:
            inconsistent = True
        else:
            consumed = longer
        replicas = self._with(state, leader, me._replace(high_watermark=target))
        situations: tuple[str, ...] = ("hw_with_isr",) if len(me.isr) >= 2 else ()
        if me.pending_isr is not None:
            situations += ("hw_with_pending_isr",)
        return Transition("AdvanceHighWatermark", (("leader", leader),),
                          state._replace(replicas=replicas, pending=state.pending - answered,
                                  acknowledged=acknowledged, acknowledged_below_min_isr=below_min,
                                  consumed=consumed, inconsistent_read=inconsistent),
                          ", ".join(notes), situations)

    def crash(self, state: ReplicationState) -> Iterator[Transition[ReplicationState]]:
        """Crash: a process crash (page cache survives) or a power loss that keeps ``kept`` records.

        A power loss that would keep the whole log is a process crash as far as the log goes, so a
        power loss always drops at least one record."""
        for r in self.ids:
            replica = state.replicas[r]
            if not replica.alive:
                continue
            kinds: list[int | None] = []  # None: process crash; k: power loss keeping k records
            if state.process_crashes < self.max_process_crashes:
                kinds.append(None)
            if state.lossy_crashes < self.max_lossy_crashes:
                kinds.extend(range(replica.log_end_offset))
            for kept in kinds:
                lossy = kept is not None
                log = replica.log if kept is None else replica.log[:kept]
                crashed = replica._replace(log=log, alive=False, leader=NO_REPLICA, isr=frozenset(), fetched=(),
                                  pending_isr=None,
                                  high_watermark=min(replica.high_watermark, len(log)),
                                  lost_data=replica.lost_data or len(log) < replica.log_end_offset)
                replicas = list(state.replicas)
                replicas[r] = crashed
                for other in self.ids:  # the crashed follower's fetch session is gone
                    peer = replicas[other]
                    if peer.fetched and peer.fetched[r] != NOT_FETCHED:
                        fetched = list(peer.fetched)
                        fetched[r] = NOT_FETCHED
                        replicas[other] = peer._replace(fetched=tuple(fetched))
                next_state = state._replace(replicas=tuple(replicas), pending=frozenset(p for p in state.pending if p.leader != r),
                    process_crashes=state.process_crashes + (0 if lossy else 1),
                    lossy_crashes=state.lossy_crashes + (1 if lossy else 0))
                lost = replica.log_end_offset - len(log)
                situations = ("lossy_crash",) if lossy and lost else ()
                args: tuple[tuple[str, object], ...] = (("replica", r), ("power_loss", lossy))
                if kept is not None:
                    args += (("kept", kept),)
                yield Transition("Crash", args, next_state,
                                 f"lost {lost} unflushed records" if lossy else "page cache kept", situations)

    def restart(self, state: ReplicationState) -> Iterator[Transition[ReplicationState]]:
        """Restart: the broker comes back and waits for the controller's LeaderAndIsr."""
        c = state.controller
        for r in self.ids:
            replica = state.replicas[r]
            if replica.alive or c.leader == r:
                continue  # a former leader re-registers only after the controller handled its failure
            floor = c.leader_epoch - 1
            restarted = replica._replace(alive=True, leader=NO_REPLICA, leader_epoch=floor)
            next_state = state._replace(replicas=self._with(state, r, restarted))
            note = ""
            if self.elr_enabled and replica.lost_data and self.guarded("unclean_shutdown_leaves_isr"):
                isr, elr = c.isr - {r}, c.elr - {r}
                if isr != c.isr or elr != c.elr:
                    leader = NO_REPLICA if c.leader == r else c.leader
                    controller = Controller(leader, c.leader_epoch + 1, isr, elr)
                    next_state = next_state._replace(controller=controller,
                                         notifications=self._notify(next_state, controller))
                    note = "unclean shutdown: removed from ISR and ELR"
            yield Transition("Restart", (("replica", r),), next_state, note)

    # --- checker interface --------------------------------------------------------------------

    def is_final(self, state: ReplicationState) -> bool:
        return True

    def canonical(self, state: ReplicationState) -> Hashable:
        """One key per class of equivalent states.

        Four reductions, all sound because the model never looks at what they forget:

        * symmetry: replica ids are names, so renaming them does not change what can happen.  The
          key is the smallest encoding over the renamings that list replicas in order of their
          id-free signature (ties are tried in every order);
        * epochs are only compared, so they are renumbered densely in order of size;
        * dead letters are dropped: a notification no replica can ever apply again
          (:meth:`_live_notifications`), and a crashed replica's epoch, which its restart replaces;
        * dead fetch offsets are forgotten: a deposed leader's offsets for followers outside its
          ISR, which no later step reads (:meth:`_fetch_offsets_read`; 9% fewer states in the
          default check, 3% with a power loss; proved in ``tests/spec/test_reductions.py``).

        This is a large share of the checker's time, so it is written for speed: every renaming
        and every replica set's bit mask are tabled once (:class:`_Renaming`), so renaming a set or
        reordering a tuple by id is a lookup; and when the epochs are already 0, 1, 2, ... (most
        states) a log is its own key, an ``Entry`` being a tuple equal to its renumbered copy.
        ``tests/spec/test_search_unchanged.py`` pins the states searched to the plain key's (with
        the dead fetch offsets kept, as that key kept them).
        """
        live = self._live_notifications(state)
        epochs, dense = self._epoch_ranks(state, live)
        c = state.controller
        c_leader, c_isr, c_elr = c.leader, c.isr, c.elr
        signatures = [
            (rep.log, rep.high_watermark, rep.leader_epoch if rep.alive else NO_EPOCH, rep.alive, rep.leader == r,
             rep.leader == NO_REPLICA, r == c_leader, r in c_isr, r in c_elr, rep.lost_data)
            for r, rep in enumerate(state.replicas)
        ]
        order = sorted(self.ids, key=signatures.__getitem__)
        groups: list[list[int]] = []
        for r in order:
            if groups and signatures[groups[-1][0]] == signatures[r]:
                groups[-1].append(r)
            else:
                groups.append([r])
        fetch_offsets = self._fetch_offsets_read(state)
        if len(groups) == self.replica_count:  # no ties, the usual case: one renaming to try
            return self._encode(state, self._renamings[tuple(order)], epochs, dense, live, fetch_offsets)
        arrangements = itertools.product(*(itertools.permutations(g) for g in groups))
        return min(self._encode(state, self._renamings[tuple(itertools.chain.from_iterable(a))],  # type: ignore[type-var]
                                epochs, dense, live, fetch_offsets)
                   for a in arrangements)

    def _renaming(self, order: Iterable[int]) -> tuple[int, ...]:
        """The new id of each old id when the replicas are listed in ``order``."""
        perm = [0] * self.replica_count
        for new_id, old_id in enumerate(order):
            perm[old_id] = new_id
        return tuple(perm)

    def _live_notifications(self, state: ReplicationState) -> list[Notification]:
        """The notifications some replica can still apply, now or later.

        A live replica applies one newer than its epoch, and its epoch only grows while it lives; a
        crashed replica restarts at the controller's epoch minus one, so only the controller's
        current notification can reach it.  Any other notification is a dead letter forever.
        """
        current = floor = state.controller.leader_epoch
        for rep in state.replicas:
            if rep.alive and rep.leader_epoch < floor:
                floor = rep.leader_epoch
        return [n for n in state.notifications if n.leader_epoch > floor or n.leader_epoch >= current]

    @staticmethod
    def _epoch_ranks(state: ReplicationState, live: Sequence[Notification]) -> tuple[dict[int, int], bool]:
        """Each epoch the key keeps, renumbered by rank; and whether that renumbering changes
        nothing (the epochs are already 0, 1, 2, ...), so that logs can be keyed as they are."""
        values = {entry.leader_epoch for rep in state.replicas for entry in rep.log}
        values.update([rep.leader_epoch for rep in state.replicas if rep.alive])
        values.update([n.leader_epoch for n in live])
        values.add(state.controller.leader_epoch)
        ordered = sorted(values)
        dense = ordered[0] == 0 and ordered[-1] == len(ordered) - 1  # distinct integers: exactly 0..n-1
        return {epoch: rank for rank, epoch in enumerate(ordered)}, dense

    def _fetch_offsets_read(self, state: ReplicationState) -> list[tuple[int, ...]]:
        """Each replica's fetch offsets as far as a later step can read them.

        Only a replica that presumes leadership has fetch offsets.  A *deposed* one (it presumes,
        but is not the controller's leader in the controller's epoch) stays deposed until it applies
        a notification, which replaces its offsets: the controller's epoch never goes back, and its
        leader changes only with a new epoch.  A deposed leader can no longer expand or shrink its
        ISR (those steps need the true leader), so it reads a fetch offset only to advance its high
        watermark, over its ISR (under kip-497 also the members its pending AlterPartition names).
        The offsets of the other followers are dead: the key keeps them as never fetched.  (The one
        other read, FollowerFetch's "nothing would change", decides only whether a step to a state
        with the same key is taken.)
        """
        offsets: list[tuple[int, ...]] = []
        for r, rep in enumerate(state.replicas):
            fetched = rep.fetched
            if fetched and not self.is_true_leader(state, r):
                read = rep.isr if rep.pending_isr is None else rep.isr | rep.pending_isr
                fetched = tuple([offset if m in read else NOT_FETCHED for m, offset in enumerate(fetched)])
            offsets.append(fetched)
        return offsets

    def _encode(self, state: ReplicationState, renaming: _Renaming, epochs: Mapping[int, int], dense: bool,
                live: Sequence[Notification], fetch_offsets: Sequence[tuple[int, ...]]) -> Hashable:
        new_id, renamed_masks, in_new_order = renaming
        masks = self._masks
        slots: list[Hashable] = []
        for rep, fetched in zip(state.replicas, fetch_offsets, strict=True):
            # An Entry is a tuple: when no epoch is renumbered the log is its own key.
            log = rep.log if dense else tuple([(epochs[e.leader_epoch], e.record) for e in rep.log])
            pending = -1 if rep.pending_isr is None else renamed_masks[masks[rep.pending_isr]]
            slots.append((log, rep.high_watermark, new_id[rep.leader], epochs[rep.leader_epoch] if rep.alive else NO_EPOCH,
                          renamed_masks[masks[rep.isr]], in_new_order(fetched) if fetched else (),
                          rep.alive, rep.lost_data, pending))
        c = state.controller
        notifications = sorted([(new_id[n.leader], epochs[n.leader_epoch], renamed_masks[masks[n.isr]]) for n in live])
        return (
            in_new_order(slots),
            (new_id[c.leader], epochs[c.leader_epoch], renamed_masks[masks[c.isr]], renamed_masks[masks[c.elr]]),
            tuple(notifications),
            tuple(sorted([(p.record, new_id[p.leader]) for p in state.pending])),
            tuple(sorted(state.acknowledged)), state.consumed, state.inconsistent_read,
            state.acknowledged_below_min_isr, state.records_sent, state.leader_changes, state.process_crashes,
            state.lossy_crashes,
        )

    def render(self, state: ReplicationState) -> str:
        c = state.controller
        lines = [
            f"controller: leader {_name(c.leader)}, epoch {c.leader_epoch}, ISR {_names(c.isr)}"
            + (f", ELR {_names(c.elr)}" if self.elr_enabled else "")
        ]
        for r, rep in enumerate(state.replicas):
            if not rep.alive:
                role = "CRASHED"
            elif rep.leader == r:
                role = f"leader, ISR {_names(rep.isr)}"
                if rep.pending_isr is not None:
                    role += f" (proposed {_names(rep.pending_isr)})"
            elif rep.leader == NO_REPLICA:
                role = "no leader known"
            else:
                role = f"follows {_name(rep.leader)}"
            log = " ".join(f"r{e.record}@e{e.leader_epoch}" for e in rep.log) or "(empty)"
            lines.append(f"{_name(r)}: epoch {rep.leader_epoch}, {role}; HW {rep.high_watermark}; log [{log}]")
        ghost = f"acknowledged {{{', '.join(f'r{x}' for x in sorted(state.acknowledged))}}}"
        ghost += f"; consumed [{' '.join(f'r{x}' for x in state.consumed)}]"
        lines.append(ghost)
        return "\n".join(lines)

    # --- invariants -----------------------------------------------------------------------------

    @property
    def invariants(self) -> tuple[Invariant[ReplicationState], ...]:
        return (
            Invariant("NoCommittedRecordLost",
                      "every record acknowledged with acks=all is still in the log of at least one replica",
                      self.no_committed_record_lost),
            Invariant("LeaderCompleteness",
                      "the controller's leader, when alive, holds every record acknowledged with acks=all",
                      self.leader_completeness),
            Invariant("ConsistentRead",
                      "a consumer never reads a record that later disappears or changes: what was read is a "
                      "prefix of the current leader's log",
                      self.consistent_read),
            Invariant("LogMatching", "any two replicas agree on every offset below the smaller of their high watermarks",
                      self.log_matching),
            Invariant("WeakIsr", "every live member of a leader's own ISR view agrees with it below its high watermark",
                      self.weak_isr),
            Invariant("StrongIsr", "every live member of the controller's ISR agrees with any presumed leader below "
                      "that leader's high watermark", self.strong_isr),
            Invariant("ValidHighWatermark", "every live member of the controller's ISR holds at least as many "
                      "records as the true leader's high watermark", self.valid_high_watermark),
            Invariant("LeaderInIsr", "the controller's leader is none or a member of the controller's ISR",
                      self.leader_in_isr),
            Invariant("EpochsMonotonic", "leader epochs never decrease along any log", self.epochs_monotonic),
            Invariant("AckedOnMinIsr", "an acks=all acknowledgement is only given while at least "
                      "min.insync.replicas replicas hold the record", self.acked_on_min_isr),
        )

    def no_committed_record_lost(self, state: ReplicationState) -> bool:
        held = {e.record for rep in state.replicas for e in rep.log}
        return state.acknowledged <= held

    def leader_completeness(self, state: ReplicationState) -> bool:
        leader = state.controller.leader
        if leader == NO_REPLICA or not state.replicas[leader].alive:
            return True
        return state.acknowledged <= {e.record for e in state.replicas[leader].log}

    def consistent_read(self, state: ReplicationState) -> bool:
        if state.inconsistent_read:
            return False
        leader = state.controller.leader
        if leader == NO_REPLICA or not self.is_true_leader(state, leader):
            return True
        log = state.replicas[leader].log
        return tuple(e.record for e in log[: len(state.consumed)]) == state.consumed

    @staticmethod
    def _agree(a: Replica, b: Replica, below: int) -> bool:
        return len(b.log) >= below and a.log[:below] == b.log[:below]

    def log_matching(self, state: ReplicationState) -> bool:
        reps = state.replicas
        for a, b in itertools.combinations(reps, 2):
            below = min(a.high_watermark, b.high_watermark, len(a.log), len(b.log))
            if a.log[:below] != b.log[:below]:
                return False
        return True

    def _isr_agrees(self, state: ReplicationState, leader: int, members: frozenset[int]) -> bool:
        me = state.replicas[leader]
        for m in members:
            other = state.replicas[m]
            if other.alive and not other.lost_data and not self._agree(me, other, me.high_watermark):
                return False
        return True

    def weak_isr(self, state: ReplicationState) -> bool:
        return all(self._isr_agrees(state, r, state.replicas[r].isr)
                   for r in self.ids if self.presumes_leadership(state, r))

    def strong_isr(self, state: ReplicationState) -> bool:
        return all(self._isr_agrees(state, r, state.controller.isr)
                   for r in self.ids if self.presumes_leadership(state, r))

    def valid_high_watermark(self, state: ReplicationState) -> bool:
        leader = state.controller.leader
        if leader == NO_REPLICA or not self.is_true_leader(state, leader):
            return True
        hw = state.replicas[leader].high_watermark
        return all(state.replicas[m].log_end_offset >= hw for m in state.controller.isr
                   if state.replicas[m].alive and not state.replicas[m].lost_data)

    def leader_in_isr(self, state: ReplicationState) -> bool:
        c = state.controller
        return c.leader == NO_REPLICA or c.leader in c.isr

    def epochs_monotonic(self, state: ReplicationState) -> bool:
        return all(all(a.leader_epoch <= b.leader_epoch for a, b in itertools.pairwise(rep.log))
                   for rep in state.replicas)

    def acked_on_min_isr(self, state: ReplicationState) -> bool:
        return not state.acknowledged_below_min_isr

    @property
    def situations(self) -> tuple[Situation, ...]:
        applies = {
            "lossy_crash": self.max_lossy_crashes > 0,
            "not_enough_replicas": "all" in self.acks_choices and self.replica_count >= self.min_isr > 1,
            "leader_change_over_data": self.max_leader_changes > 0 and self.max_records > 0,
            "hw_with_isr": self.replica_count >= 2 and self.max_records > 0,
            "truncated_suffix": self.replica_count >= 2 and self.max_records > 0 and self.max_leader_changes > 0,
            "isr_reexpanded": self.replica_count >= 2,
            "hw_with_pending_isr": self.isr_in_flight and self.replica_count >= 2 and self.max_records > 0,
        }
        return tuple(Situation(name, text, applies[name]) for name, text in SITUATIONS)


def _name(r: int) -> str:
    return "none" if r == NO_REPLICA else "ABCDEFGH"[r]


def _names(members: frozenset[int]) -> str:
    return "{" + ",".join(_name(m) for m in sorted(members)) + "}"
