"""Partition leader elections and ISR/ELR changes: Kafka's ``PartitionChangeBuilder`` (KIP-966).

Theory of operation
-------------------
Every change to a partition's leadership or in-sync set, whatever asked for it (a leader's
AlterPartition, a broker fenced or shutting down, an ElectLeaders request, the periodic preferred
leader rebalance) goes through one function, :func:`build_partition_change`.  It takes the
partition as registered, the *target* ISR the caller wants and the kind of election, and answers
with the fields of one ``PartitionChangeRecord`` that differ from the registration, or ``None``
when nothing would change (Kafka's ``changeRecordIsNoOp``).  The record's sentinels are Kafka's:
a null list is "unchanged", leader ``-2`` (NO_LEADER_CHANGE) is "unchanged", ``-1`` (NO_LEADER) is
"no leader"; leader recovery state ``-1`` is "unchanged".

The steps, in Kafka 4.3's order (``PartitionChangeBuilder.build``):

1. **ELR** (only when the ``eligible.leader.replicas.version`` feature is >= 1).  If the target
   ISR has at least ``min.insync.replicas`` members (capped at the replication factor) the ELR and
   the last known ELR are cleared.  Otherwise every member of the *current* ISR or ELR that is not
   in the target ISR (and did not shut down uncleanly) becomes an *eligible leader replica*: it
   had every committed record when it left the ISR, because nothing could commit without
   ``min.insync.replicas`` acknowledgements after that.
2. **Election**.  A valid new leader is a live replica (``is_acceptable_leader``) that is in the
   target ISR, or, when the target ISR is empty, in the ELR.

   * PREFERRED: the first replica in assignment order if valid; else keep the current leader if
     still valid; else the first other valid replica.
   * ONLINE / UNCLEAN: keep the current leader if still valid; else the first valid replica in
     assignment order.
   * Then, with ELR on, the *last known leader* (``last_known_elr`` holding exactly one broker,
     KIP-966 "balanced recovery") if ISR and ELR are both empty and it is alive.
   * Then, for UNCLEAN only (``unclean.leader.election.enable``), the first live replica at all.

   Electing an ELR member makes the ISR ``[leader]`` and removes it from the ELR (a clean
   election).  An unclean election, or electing the last known leader, also sets the ISR to
   ``[leader]`` and marks the leader RECOVERING (KIP-704): it may lack committed records.
3. An unclean election clears the ELR and last known ELR (they promised nothing any more).
4. The ISR is written when it differs (an empty ISR only when ELR is on: without ELR the last
   replica standing stays in the ISR as the leaderless partition's only hope).
5. The last known leader (ELR on): when the partition loses its leader and no last known leader is
   recorded, ``last_known_elr = [old leader]``; when a new leader is elected, it is cleared.

What is not here: reassignment (adding/removing replicas) and directory (JBOD) changes; targets
for replicas, removing, adding and directories are always the current ones.

Invariants of a result applied to a valid registration (checked by ``MetadataImage.check_valid``):
leader is -1 or in the ISR; ISR is a subset of the replicas; ELR is disjoint from the ISR.

``tests/reference/controller/test_elections_against_kafka.py`` runs thousands of random cases
through this function and through Kafka 4.3.1's own ``PartitionChangeBuilder`` and requires the
same record from both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from reference import guards

NO_LEADER = -1  # LeaderConstants.NO_LEADER
NO_LEADER_CHANGE = -2  # LeaderConstants.NO_LEADER_CHANGE
RECOVERED = 0  # LeaderRecoveryState.RECOVERED
RECOVERING = 1  # LeaderRecoveryState.RECOVERING: chosen by unclean election, may miss records
RECOVERY_NO_CHANGE = -1  # LeaderRecoveryState.NO_CHANGE in a PartitionChangeRecord


class Election(Enum):
    """Kafka's ``PartitionChangeBuilder.Election``."""

    PREFERRED = "preferred"  # prefer replicas[0] if it is a valid leader
    ONLINE = "online"  # keep the partition online with a leader from the ISR (or ELR)
    UNCLEAN = "unclean"  # as ONLINE, then any live replica: committed records may be lost


class RegisteredPartition(Protocol):
    """What the builder reads of a partition (``image.PartitionRegistration`` has it)."""

    replicas: list[int]
    isr: list[int]
    leader: int
    leader_recovery_state: int
    elr: list[int]
    last_known_elr: list[int]


@dataclass
class PartitionChange:
    """The fields of one PartitionChangeRecord; defaults are the record's "unchanged" sentinels."""

    isr: list[int] | None = None
    leader: int = NO_LEADER_CHANGE
    leader_recovery_state: int = RECOVERY_NO_CHANGE
    eligible_leader_replicas: list[int] | None = None
    last_known_elr: list[int] | None = None

    def is_no_op(self) -> bool:
        return (self.isr is None and self.leader == NO_LEADER_CHANGE
                and self.leader_recovery_state == RECOVERY_NO_CHANGE
                and self.eligible_leader_replicas is None and self.last_known_elr is None)

    def record_fields(self) -> dict[str, Any]:
        """The changed fields as keyword arguments for ``make("PartitionChangeRecord", ...)``."""
        fields: dict[str, Any] = {}
        if self.isr is not None:
            fields["isr"] = list(self.isr)
        if self.leader != NO_LEADER_CHANGE:
            fields["leader"] = self.leader
        if self.leader_recovery_state != RECOVERY_NO_CHANGE:
            fields["leader_recovery_state"] = self.leader_recovery_state
        if self.eligible_leader_replicas is not None:
            fields["eligible_leader_replicas"] = list(self.eligible_leader_replicas)
        if self.last_known_elr is not None:
            fields["last_known_elr"] = list(self.last_known_elr)
        return fields


@dataclass(frozen=True)
class _ElectionResult:
    node: int
    unclean: bool


def build_partition_change(
    partition: RegisteredPartition,
    *,
    is_acceptable_leader: Callable[[int], bool],
    min_isr: int,
    elr_enabled: bool,
    target_isr: Sequence[int] | None = None,
    election: Election = Election.ONLINE,
    unclean_shutdown_replicas: Sequence[int] = (),
    target_leader_recovery_state: int | None = None,
) -> PartitionChange | None:
    """The change that moves ``partition`` to ``target_isr`` (default: its ISR) and elects a leader.

    ``is_acceptable_leader(broker)`` says whether a broker may lead now (registered, unfenced, not
    shutting down).  ``min_isr`` is the topic's effective ``min.insync.replicas`` (already capped
    at the replication factor).  Returns None when the record would change nothing.
    """
    builder = _Builder(partition, is_acceptable_leader, min_isr, elr_enabled, election,
                       list(partition.isr if target_isr is None else target_isr),
                       list(unclean_shutdown_replicas))
    return builder.build(target_leader_recovery_state)


class _Builder:
    def __init__(self, partition: RegisteredPartition, is_acceptable_leader: Callable[[int], bool],
                 min_isr: int, elr_enabled: bool, election: Election, target_isr: list[int],
                 unclean_shutdown_replicas: list[int]) -> None:
        self.partition = partition
        self.is_acceptable_leader = is_acceptable_leader
        self.min_isr = min_isr
        self.elr_enabled = elr_enabled
        self.election = election
        self.target_isr = target_isr
        self.target_elr = list(partition.elr)
        self.target_last_known_elr = list(partition.last_known_elr)
        self.unclean_shutdown_replicas = unclean_shutdown_replicas

    def build(self, target_leader_recovery_state: int | None) -> PartitionChange | None:
        change = PartitionChange()
        self._populate_target_elr()
        self._try_election(change)
        self._update_record_elr(change)
        if (change.isr is None and (self.target_isr or self.elr_enabled)
                and self.target_isr != list(self.partition.isr)):
            change.isr = list(self.target_isr)
        self._update_last_known_leader(change)
        if (target_leader_recovery_state is not None
                and target_leader_recovery_state != self.partition.leader_recovery_state):
            change.leader_recovery_state = target_leader_recovery_state
        return None if change.is_no_op() else change

    # -- step 1: eligible leader replicas --------------------------------------------------------

    def _populate_target_elr(self) -> None:
        if not self.elr_enabled:
            return
        # spec guard elr_only_below_min_isr (KIP-966): at min.insync.replicas or more, a replica
        # leaving the ISR may miss records committed after it left, so it is no ELR member.
        if len(self.target_isr) >= self.min_isr and guards.on("elr_only_below_min_isr"):
            self.target_elr = []
            self.target_last_known_elr = []
            return
        in_target_isr = set(self.target_isr)
        candidates = _ordered_union(self.target_elr, self.partition.isr)
        self.target_elr = [r for r in candidates
                           if r not in in_target_isr and r not in self.unclean_shutdown_replicas]
        with_last_known = _ordered_union(candidates, self.target_last_known_elr)
        self.target_last_known_elr = [r for r in with_last_known
                                      if r not in in_target_isr and r not in self.target_elr]

    # -- step 2: the election ---------------------------------------------------------------------

    def _is_valid_new_leader(self, replica: int) -> bool:
        eligible = replica in self.target_isr or (not self.target_isr and replica in self.target_elr)
        if not guards.on("clean_election"):  # spec guard clean_election: without it, any live replica
            eligible = True
        return eligible and self.is_acceptable_leader(replica)

    def _elect(self) -> _ElectionResult:
        replicas = list(self.partition.replicas)
        current = self.partition.leader
        if self.election is Election.PREFERRED:
            if replicas and self._is_valid_new_leader(replicas[0]):
                return _ElectionResult(replicas[0], False)
            if self._is_valid_new_leader(current):
                return _ElectionResult(current, False)
            others = replicas[1:]
        else:
            if self._is_valid_new_leader(current):
                return _ElectionResult(current, False)
            others = replicas
        for replica in others:
            if self._is_valid_new_leader(replica):
                return _ElectionResult(replica, False)
        if self._can_elect_last_known_leader():
            return _ElectionResult(self.partition.last_known_elr[0], True)
        if self.election is Election.UNCLEAN:
            for replica in replicas:
                if self.is_acceptable_leader(replica):
                    return _ElectionResult(replica, True)
        return _ElectionResult(NO_LEADER, False)

    def _can_elect_last_known_leader(self) -> bool:
        """KIP-966 balanced recovery: the last leader of a partition whose ISR and ELR emptied."""
        if not self.elr_enabled or self.target_elr or self.target_isr:
            return False
        if len(self.partition.last_known_elr) != 1:
            return False
        return self.is_acceptable_leader(self.partition.last_known_elr[0])

    def _try_election(self, change: PartitionChange) -> None:
        result = self._elect()
        if result.node == self.partition.leader:
            return
        if result.node in self.target_elr:
            self.target_isr = [result.node]
            self.target_elr = [r for r in self.target_elr if r != result.node]
        elif result.node >= 0 and result.node not in self.target_isr and not result.unclean:
            # Only with spec guard clean_election off: the model's mutant adds the leader to the ISR.
            self.target_isr = sorted({*self.target_isr, result.node})
            change.isr = list(self.target_isr)
        change.leader = result.node
        if result.unclean:
            change.isr = [result.node]  # data may be lost: the new leader's log is the truth now
            if self.partition.leader_recovery_state != RECOVERING:
                change.leader_recovery_state = RECOVERING

    # -- steps 3 and 5: ELR fields of the record -----------------------------------------------------

    def _update_record_elr(self, change: PartitionChange) -> None:
        clean_election = change.isr is None
        if not clean_election or not self.elr_enabled:
            self.target_elr = []
            self.target_last_known_elr = []
        if self.target_elr != list(self.partition.elr):
            change.eligible_leader_replicas = list(self.target_elr)
        # The last known ELR holds the last known leader (Kafka's default
        # useLastKnownLeaderInBalancedRecovery); _update_last_known_leader maintains it.

    def _update_last_known_leader(self, change: PartitionChange) -> None:
        if not self.elr_enabled:
            return
        if change.leader == NO_LEADER and not self.partition.last_known_elr:
            change.last_known_elr = [self.partition.leader]  # the partition just lost its leader
        elif change.leader >= 0 and self.partition.last_known_elr:
            change.last_known_elr = []  # it has a leader again


def _ordered_union(first: Sequence[int], second: Sequence[int]) -> list[int]:
    """``first`` then the members of ``second`` not in it, each once (Kafka uses a HashSet; the
    order here is deterministic: sorted, as a Java HashSet of small Integers iterates)."""
    return sorted(set(first) | set(second))
