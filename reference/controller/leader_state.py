"""What a KRaft leader knows about the other replicas while it leads one epoch.

Theory of operation
-------------------
Mirrors Kafka's ``LeaderState``.  It exists from the moment a candidate wins until the node leaves
the epoch, and keeps:

* each voter's and observer's **fetch offset** (the offset of its last valid Fetch: its log
  matches the leader's below it), with the time of that fetch and the last time it had caught up
  with the leader's log end (KIP-836, reported by DescribeQuorum);
* the **epoch start offset**: the leader's log end offset when it won, where its
  LeaderChangeMessage goes;
* which voters have **acknowledged** the epoch (answered BeginQuorumEpoch, or fetched);
* the **check-quorum timer**: reset whenever a majority of voters (the leader counts) has fetched
  since the last reset; when it expires, after 1.5 x ``controller.quorum.fetch.timeout.ms``, the
  leader resigns, since it may be cut off from a majority that has elected someone else.

The high watermark rule (KIP-595): sort the voters' offsets (the leader's own log end offset
included) in descending order; the one at index ``voters // 2`` is reached by a majority.  It
becomes the HW only if it is above the epoch start offset, i.e. once the leader's own
LeaderChangeMessage is committed: entries of earlier epochs are committed only through one of the
leader's own (Raft's "Figure 8" safety rule).

Observers (replicas outside the voter set, broker-only nodes) are tracked from their first Fetch,
for DescribeQuorum only: their offsets never enter the HW, their fetches never reset the
check-quorum timer, and they are never sent BeginQuorumEpoch nor named as preferred successors.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ReplicaProgress:
    """One replica as the leader sees it (-1: not heard from in this epoch)."""

    end_offset: int = -1
    last_fetch_ms: int = -1
    last_caught_up_ms: int = -1


@dataclass
class LeaderState:
    local_id: int
    voters: list[int]
    epoch: int
    epoch_start_offset: int
    check_quorum_deadline: int
    check_quorum_timeout_ms: int
    replicas: dict[int, ReplicaProgress] = field(default_factory=dict)
    observers: dict[int, ReplicaProgress] = field(default_factory=dict)
    acknowledged: set[int] = field(default_factory=set)
    fetched_since_check: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.replicas = {voter: ReplicaProgress() for voter in self.voters if voter != self.local_id}

    @property
    def majority(self) -> int:
        return len(self.voters) // 2 + 1

    def update_replica(self, replica_id: int, fetch_offset: int, leader_end_offset: int, now_ms: int) -> bool:
        """Record a valid Fetch at ``fetch_offset``; True when the replica is a voter (so the HW
        may move).  A fetching voter has acknowledged the epoch and counts for check-quorum."""
        is_voter = replica_id in self.replicas
        progress = self.replicas[replica_id] if is_voter else self.observers.setdefault(replica_id, ReplicaProgress())
        progress.end_offset = fetch_offset
        progress.last_fetch_ms = now_ms
        if fetch_offset >= leader_end_offset:
            progress.last_caught_up_ms = now_ms
        if is_voter:
            self.acknowledged.add(replica_id)
            self.fetched_since_check.add(replica_id)
            if len(self.fetched_since_check) + 1 >= self.majority:
                self.fetched_since_check = set()
                self.check_quorum_deadline = now_ms + self.check_quorum_timeout_ms
        return is_voter

    def majority_offset(self, leader_end_offset: int) -> int | None:
        """The offset a majority of voters has reached, if it is past the epoch start offset."""
        offsets = sorted([leader_end_offset, *(progress.end_offset for progress in self.replicas.values())], reverse=True)
        candidate = offsets[len(self.voters) // 2]
        return candidate if candidate > self.epoch_start_offset else None

    def preferred_successors(self) -> list[int]:
        """The other voters, most caught up first (for EndQuorumEpoch)."""
        return sorted(self.replicas, key=lambda voter: (-self.replicas[voter].end_offset, voter))
