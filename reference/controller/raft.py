"""KRaft's Raft layer: one voter replicating ``__cluster_metadata``, without sockets or clocks.

Theory of operation
-------------------
Mirrors Kafka's ``KafkaRaftClient`` (KIP-595 quorum, KIP-996 pre-vote, KIP-630 snapshots) for a
static voter set (``controller.quorum.voters``, ``kraft.version`` 0).  The node is sans-IO:

* requests from other voters arrive through :meth:`RaftNode.handle_request` as decoded bodies and
  are answered with a body, or with a :class:`~reference.broker.pending.Pending` for a Fetch that
  long-polls;
* requests to other voters leave through the :class:`~reference.client.outbox.Outbox`; their
  answers come back through the request's callbacks;
* time arrives as ``now_ms`` on every call; :meth:`RaftNode.poll` fires the timers and
  :meth:`RaftNode.next_deadline` says when it next needs to be called.

The log is refka's on-disk :class:`~reference.broker.log.log.PartitionLog` in
``<log_dir>/__cluster_metadata-0`` (topic id ``AAAAAAAAAAAAAAAAAAAAAQ``), beside the
``quorum-state`` file (:mod:`.quorum_state`) and the snapshots (:mod:`.snapshot`).  Roles and their
legal changes are the table in :mod:`.quorum_state`.

Rules (the tests name them):

1. **Elections.**  A follower that hears nothing from its leader for
   ``controller.quorum.fetch.timeout.ms``, or an unattached voter whose randomised election timer
   (``controller.quorum.election.timeout.ms`` plus a random part as large) expires, becomes
   *Prospective* and sends Vote with ``PreVote`` (v2) carrying its *current* epoch.  Only after a
   majority grants the pre-vote does it bump the epoch, vote for itself (persisted) and send real
   Votes.  A voter grants a pre-vote when the candidate's log is at least as up to date and it has
   not fetched successfully from a leader since it began following it; so a partitioned node
   rejoining cannot bump the epoch of a healthy quorum.  A lost pre-vote returns the node to the
   leader it remembers (or to Unattached).  A rejected Candidate backs off
   (``controller.quorum.election.backoff.max.ms``, binary exponential) before trying again.
2. **One vote per epoch**, written to ``quorum-state`` before the Vote response is returned.  A
   vote is granted only if ``(LastOffsetEpoch, LastOffset)`` is not behind the voter's own
   ``(last epoch, log end offset)``.
3. **A new leader** appends a LeaderChangeMessage control batch in its epoch, sends
   BeginQuorumEpoch to every voter until each acknowledges (a Fetch counts), and advances the
   high watermark only past that batch: the HW is the offset that a majority of voters' fetch
   offsets (the leader's LEO counts) has reached, and only once it is above the epoch start offset
   (a leader commits entries of earlier epochs only by committing one of its own).
4. **Followers fetch** (Fetch v17) with ``FetchOffset`` = LEO and ``LastFetchedEpoch`` = the epoch
   of their last batch.  The leader checks the pair against its own log: a mismatch is answered
   with ``DivergingEpoch`` (epoch, end offset) and the follower truncates to where the logs agree
   (never below its HW); a position before the leader's log start is answered with ``SnapshotId``.
   Otherwise the leader returns records and its HW; the follower sets its HW to
   ``min(leader HW, own LEO)``.  A Fetch with nothing to return waits in purgatory until the
   leader appends, its HW moves, or ``MaxWaitMs`` (500 ms, Kafka's ``fetchMaxWaitMs``) passes.
5. **Errors**, as KafkaRaftClient returns them: a ``ClusterId`` that is not ours is
   ``INCONSISTENT_CLUSTER_ID`` (top level); another topic or partition is ``INVALID_REQUEST``;
   an epoch below ours is ``FENCED_LEADER_EPOCH``; a Fetch whose ``CurrentLeaderEpoch`` is above
   ours is ``UNKNOWN_LEADER_EPOCH``, and to a non-leader ``NOT_LEADER_OR_FOLLOWER``; a Vote,
   BeginQuorumEpoch or EndQuorumEpoch from a node outside the configured voters is
   ``INCONSISTENT_VOTER_SET``.  Every answer carries the leader and epoch the node knows, and a
   response with a higher epoch or a newly known leader moves the receiver there.
6. **Graceful resignation** (:meth:`RaftNode.resign`): the leader becomes Resigned and sends
   EndQuorumEpoch listing the voters most caught up first; a follower named at position ``i``
   waits ``election.backoff.max.ms >> (n - 1) << (i - 1)`` (0 for the first) before its
   pre-vote.  A leader that has not heard fetches from a majority for 1.5 x the fetch timeout
   resigns too (Kafka's check-quorum).
7. **Restart** reads ``quorum-state``: a voter keeps its vote and epoch, a former leader comes back
   Resigned in its epoch; the log is recovered; the latest snapshot is loaded into the listener and
   the committed log after it is replayed once the HW is known again.
8. **Snapshots** (KIP-630): the listener asks :meth:`RaftNode.create_snapshot` for an offset at
   or below the HW; :meth:`RaftNode.delete_log_before_latest_snapshot` then drops the log before
   it (refka's stand-in for ``metadata.max.retention.*``).  A follower sent a ``SnapshotId``
   downloads it with FetchSnapshot (key 59), installs it, loads it into its listener and fetches
   the log from its end offset.
9. **The listener** gets each committed data batch once, in offset order
   (:meth:`RaftListener.handle_commit`); control batches are the Raft layer's own and are not
   passed on.  It hears every change of (leader, epoch) (``handle_leader_change``).

Invariants (:meth:`RaftNode.check_valid`): the node's role, epoch, leader and vote agree with the
table (a leader voted for itself and leads; a follower's leader is another voter);
``log_start_offset <= high_watermark <= log_end_offset``; the epoch is at least the epoch of the
last batch in the log; a leader's log ends in its own epoch, after its epoch start offset; the
listener has been given exactly the batches below the HW; the log keeps its own invariants.

Left out: dynamic quorum membership (KIP-853: AddRaftVoter, RemoveRaftVoter, UpdateRaftVoter,
VotersRecord and KRaftVersionRecord in the log), observers beyond being listed in DescribeQuorum,
``controller.quorum.append.linger.ms`` batching (each :meth:`RaftNode.append` is one batch).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Protocol

from reference.broker.log.clock import ManualClock
from reference.broker.log.config import LogConfig
from reference.broker.log.log import PartitionLog
from reference.broker.pending import DelayedOperation, Pending, Purgatory
from reference.client.outbox import OutboundRequest, Outbox
from reference.controller.control_records import build_control_batch, leader_change_message
from reference.controller.quorum_state import (
    NO_LEADER,
    NOT_VOTED,
    QUORUM_STATE_FILE,
    ElectionState,
    Event,
    FileQuorumStateStore,
    IllegalTransitionError,
    Role,
    next_role,
)
from reference.controller.snapshot import (
    CommittedBatch,
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
from reference.errors import ErrorCode, Errors, by_name, lookup
from reference.protocol.apis import API_BY_KEY
from reference.protocol.messages import fetch_snapshot
from reference.protocol.primitives import METADATA_TOPIC_UUID
from reference.protocol.schema import Data, Message
from reference.records.batch import SimpleRecord, build_batch, iter_record_batches
from reference.records.control import ControlRecordType

__all__ = [
    "ApiKey",
    "CommittedBatch",
    "NotLeaderError",
    "RaftConfig",
    "RaftListener",
    "RaftNode",
    "RaftStateError",
    "SnapshotId",
    "SnapshotReader",
]

METADATA_TOPIC = "__cluster_metadata"
METADATA_PARTITION = 0
METADATA_TOPIC_ID = METADATA_TOPIC_UUID  # "AAAAAAAAAAAAAAAAAAAAAQ", fixed by Kafka

# Errors of the registry that its attribute table does not spell out yet.
INCONSISTENT_VOTER_SET: ErrorCode = by_name["INCONSISTENT_VOTER_SET"]
INCONSISTENT_CLUSTER_ID: ErrorCode = by_name["INCONSISTENT_CLUSTER_ID"]
SNAPSHOT_NOT_FOUND: ErrorCode = by_name["SNAPSHOT_NOT_FOUND"]
POSITION_OUT_OF_RANGE: ErrorCode = by_name["POSITION_OUT_OF_RANGE"]

RETRY_BACKOFF_BASE_MS = 50  # KafkaRaftClient's base for the binary exponential election backoff
MAX_FETCH_SIZE_BYTES = 8 * 1024 * 1024  # KafkaRaftClient.MAX_FETCH_SIZE_BYTES
MAX_SNAPSHOT_CHUNK_BYTES = 8 * 1024 * 1024
FETCH_MAX_WAIT_MS = 500  # KafkaRaftClient's fetchMaxWaitMs
_FETCH_WATCH_KEY = "metadata-log"  # purgatory key of parked Fetches


class ApiKey(IntEnum):
    """The APIs a KRaft voter serves and sends."""

    FETCH = 1
    VOTE = 52
    BEGIN_QUORUM_EPOCH = 53
    END_QUORUM_EPOCH = 54
    DESCRIBE_QUORUM = 55
    FETCH_SNAPSHOT = 59


# The versions this node sends (the newest refka declares; Kafka 4.3 sends the same).
SEND_VERSION: dict[ApiKey, int] = {
    ApiKey.FETCH: 17,
    ApiKey.VOTE: 2,
    ApiKey.BEGIN_QUORUM_EPOCH: 1,
    ApiKey.END_QUORUM_EPOCH: 1,
    ApiKey.FETCH_SNAPSHOT: 1,
}


def message_for(api_key: int) -> tuple[Message, Message]:
    """``(request, response)`` schemas of a Raft API (FetchSnapshot is not in the registry yet)."""
    if api_key == ApiKey.FETCH_SNAPSHOT:
        return fetch_snapshot.REQUEST, fetch_snapshot.RESPONSE
    api = API_BY_KEY[api_key]
    return api.request, api.response


@dataclass(frozen=True)
class RaftConfig:
    """The ``controller.quorum.*`` settings, with Kafka's keys and defaults."""

    election_timeout_ms: int = 1000  # controller.quorum.election.timeout.ms
    fetch_timeout_ms: int = 2000  # controller.quorum.fetch.timeout.ms
    election_backoff_max_ms: int = 1000  # controller.quorum.election.backoff.max.ms
    request_timeout_ms: int = 2000  # controller.quorum.request.timeout.ms
    retry_backoff_ms: int = 20  # controller.quorum.retry.backoff.ms
    fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS  # not configurable in Kafka
    log_config: LogConfig = field(default_factory=LogConfig)  # metadata.log.segment.bytes etc.

    @property
    def check_quorum_timeout_ms(self) -> int:
        """A leader resigns if a majority has not fetched within this (Kafka: 1.5 x fetch timeout)."""
        return self.fetch_timeout_ms * 3 // 2


class RaftListener(Protocol):
    """What the state machine above the log (the quorum controller) is told."""

    def handle_commit(self, batch: CommittedBatch) -> None: ...

    def handle_load_snapshot(self, reader: SnapshotReader) -> None: ...

    def handle_leader_change(self, leader_id: int | None, epoch: int) -> None: ...


class NotLeaderError(Exception):
    """:meth:`RaftNode.append` on a node that is not the leader (Kafka's NotLeaderException)."""

    def __init__(self, node_id: int, leader_id: int | None, epoch: int) -> None:
        super().__init__(f"node {node_id} is not the leader of epoch {epoch} (leader: {leader_id})")
        self.leader_id = leader_id
        self.epoch = epoch


class RaftStateError(RuntimeError):
    """A message contradicts what Raft guarantees (two leaders in one epoch, truncation below the
    high watermark): always a bug, never retried."""


@dataclass
class _Election:
    """Votes counted in a Prospective (pre-vote) or Candidate round."""

    granted: set[int] = field(default_factory=set)
    rejected: set[int] = field(default_factory=set)
    backing_off_until: int | None = None


@dataclass
class _ReplicaProgress:
    """What a leader knows of one replica (Kafka's ``LeaderState.ReplicaState``)."""

    end_offset: int = -1
    last_fetch_ms: int = -1
    last_caught_up_ms: int = -1


@dataclass
class _SnapshotDownload:
    snapshot_id: SnapshotId
    content: bytearray = field(default_factory=bytearray)


class RaftNode:
    """One KRaft voter; see the module docstring for the rules it keeps."""

    def __init__(
        self,
        node_id: int,
        voters: dict[int, tuple[str, int]],
        log_dir: Path,
        cluster_id: str,
        outbox: Outbox,
        now_ms: int,
        config: RaftConfig | None = None,
        listener: RaftListener | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        if node_id not in voters:
            raise ValueError(f"node {node_id} is not one of the voters {sorted(voters)} (observers are not supported)")
        self.node_id = node_id
        self.voters = dict(voters)
        self.cluster_id = cluster_id
        self.outbox = outbox
        self.config = config or RaftConfig()
        self.listener = listener
        self.rng = rng or random.Random()
        self._clock = ManualClock(now_ms)
        self.directory = log_dir / f"{METADATA_TOPIC}-{METADATA_PARTITION}"
        self.log = PartitionLog.open(self.directory, self.config.log_config, self._clock)
        self._store = FileQuorumStateStore(self.directory / QUORUM_STATE_FILE, list(voters))
        self._purgatory = Purgatory()
        self._in_flight: dict[int, OutboundRequest] = {}
        self._retry_after: dict[int, int] = {}
        self._generation = 0  # bumped at every transition; stale answers only teach epochs
        self._election = _Election()
        self._deadline = now_ms  # the role's timer: election, fetch, check-quorum or resign
        self._has_fetched_from_leader = False
        self._epoch_start_offset = -1
        self._replicas: dict[int, _ReplicaProgress] = {}
        self._observers: dict[int, _ReplicaProgress] = {}
        self._acknowledged: set[int] = set()
        self._fetched_since_check: set[int] = set()
        self._preferred_successors: list[int] = []
        self._download: _SnapshotDownload | None = None
        self._last_notified: tuple[int | None, int] | None = None
        self._last_written: ElectionState | None = None
        self._waking_fetches = False
        self._wake_fetches_again = False
        self._latest_snapshot: SnapshotId | None = None
        self._latest_snapshot = self._load_snapshots()
        self._high_watermark = self.log.high_watermark
        self._next_commit_offset = self._high_watermark
        if self._latest_snapshot is not None and self.listener is not None:
            self.listener.handle_load_snapshot(read_snapshot(self.directory, self._latest_snapshot))
        self._role, self._epoch, self._leader_id, self._voted_id = Role.UNATTACHED, 0, NO_LEADER, NOT_VOTED
        self._initialize_role(now_ms)

    # -- start (rule 7) -------------------------------------------------------------------------------

    def _load_snapshots(self) -> SnapshotId | None:
        snapshots = list_snapshots(self.directory)
        latest = snapshots[-1] if snapshots else None
        if latest is not None and self.log.log_end_offset < latest.end_offset:
            self.log.truncate_fully_and_start_at(latest.end_offset)
        start = max(self.log.log_start_offset, latest.end_offset if latest else 0)
        self.log.update_high_watermark(start)
        if start > self.log.log_start_offset:
            # The log start offset is not checkpointed: it resumes at the latest snapshot, whose
            # state the listener loads, so the log below it is never read again.
            self.log.delete_records(start)
        return latest

    def _initialize_role(self, now_ms: int) -> None:
        stored = self._store.read()
        log_epoch = self._last_epoch()
        if stored is None or stored.epoch < log_epoch:
            self._enter(Role.UNATTACHED, max(log_epoch, 0), NO_LEADER, NOT_VOTED, now_ms)
        elif stored.leader_id == self.node_id:
            self._enter(Role.RESIGNED, stored.epoch, self.node_id, stored.voted_id, now_ms)
        elif stored.voted_id == self.node_id:
            self._enter(Role.CANDIDATE, stored.epoch, NO_LEADER, self.node_id, now_ms)
            self._election.granted.add(self.node_id)
        elif stored.has_leader and stored.leader_id in self.voters:
            self._enter(Role.FOLLOWER, stored.epoch, stored.leader_id, stored.voted_id, now_ms)
        else:
            self._enter(Role.UNATTACHED, stored.epoch, NO_LEADER, stored.voted_id, now_ms)

    # -- public state ---------------------------------------------------------------------------------

    @property
    def role(self) -> Role:
        return self._role

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def leader_id(self) -> int | None:
        return None if self._leader_id == NO_LEADER else self._leader_id

    @property
    def voted_id(self) -> int | None:
        return None if self._voted_id == NOT_VOTED else self._voted_id

    @property
    def high_watermark(self) -> int:
        return self._high_watermark

    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    @property
    def latest_snapshot_id(self) -> SnapshotId | None:
        return self._latest_snapshot

    @property
    def majority(self) -> int:
        return len(self.voters) // 2 + 1

    def _last_epoch(self) -> int:
        """The epoch of the last batch in the log (the snapshot's epoch when the log is empty, else 0)."""
        if self.log.log_end_offset > self.log.log_start_offset:
            latest = self.log.latest_epoch
            if latest is not None:
                return latest
        at_start = self._latest_snapshot_at_log_start()
        return at_start.epoch if at_start is not None else 0

    def _latest_snapshot_at_log_start(self) -> SnapshotId | None:
        snapshot = self._latest_snapshot
        if snapshot is not None and snapshot.end_offset == self.log.log_start_offset:
            return snapshot
        return None

    def _remote_voters(self) -> list[int]:
        return sorted(voter for voter in self.voters if voter != self.node_id)

    # -- transitions -------------------------------------------------------------------------------------

    def _transition(self, event: Event, now_ms: int, *, epoch: int | None = None, leader_id: int = NO_LEADER,
                    voted_id: int | None = None) -> None:
        """Apply ``event``: the table picks the role, the caller gives the new election state."""
        role = next_role(self._role, event)
        epoch = self._epoch if epoch is None else epoch
        if epoch < self._epoch:
            raise IllegalTransitionError(self._role, event)
        if event is Event.LEADER_DISCOVERED and epoch == self._epoch and self._role in (Role.FOLLOWER, Role.LEADER, Role.RESIGNED):
            raise IllegalTransitionError(self._role, event)  # one leader per epoch
        if voted_id is None:
            voted_id = self._voted_id if epoch == self._epoch else NOT_VOTED
        self._enter(role, epoch, leader_id, voted_id, now_ms)

    def _enter(self, role: Role, epoch: int, leader_id: int, voted_id: int, now_ms: int) -> None:
        was_leader = self._role is Role.LEADER
        self._role, self._epoch, self._leader_id, self._voted_id = role, epoch, leader_id, voted_id
        self._generation += 1
        self._in_flight.clear()
        self._retry_after.clear()
        self._election = _Election()
        self._download = None
        if role is not Role.RESIGNED:  # Kafka's Resigned is a soft state: a restart re-derives it
            self._persist()
        if role is Role.UNATTACHED and len(self.voters) == 1:
            self._deadline = now_ms  # a lone voter elects itself at once, as Kafka's does
        elif role in (Role.UNATTACHED, Role.PROSPECTIVE, Role.CANDIDATE, Role.RESIGNED):
            self._deadline = now_ms + self._random_election_timeout()
        elif role is Role.FOLLOWER:
            self._deadline = now_ms + self.config.fetch_timeout_ms
            self._has_fetched_from_leader = False
        elif role is Role.LEADER:
            self._deadline = now_ms + self.config.check_quorum_timeout_ms
        if role is not Role.RESIGNED:
            self._acknowledged = set()
        if was_leader and role is not Role.LEADER:
            self._wake_parked_fetches(now_ms)  # parked fetches answer NOT_LEADER_OR_FOLLOWER now
        self._notify_leader_change()

    def _persist(self) -> None:
        state = ElectionState(self._epoch, self._leader_id, self._voted_id)
        if state != self._last_written:
            self._store.write(state)
            self._last_written = state

    def _notify_leader_change(self) -> None:
        current = (self.leader_id, self._epoch)
        if current != self._last_notified:
            self._last_notified = current
            if self.listener is not None:
                self.listener.handle_leader_change(*current)

    def _random_election_timeout(self) -> int:
        timeout = self.config.election_timeout_ms
        return timeout + self.rng.randrange(timeout) if timeout > 0 else 0

    def _election_backoff(self, retries: int) -> int:
        """Kafka's binaryExponentialElectionBackoffMs."""
        spread = 2 << min(20, max(retries, 1) - 1)
        return min(RETRY_BACKOFF_BASE_MS * self.rng.randrange(spread), self.config.election_backoff_max_ms)

    def _end_epoch_backoff(self, preferred: list[int]) -> int:
        """Kafka's strictExponentialElectionBackoffMs for this node's place in ``preferred``."""
        maximum = self.config.election_backoff_max_ms
        if self.node_id not in preferred:
            return maximum
        position = preferred.index(self.node_id)
        if position == 0:
            return 0
        base = maximum >> (len(preferred) - 1)
        return min(maximum, base << (position - 1))

    def _maybe_transition(self, leader_id: int, epoch: int, now_ms: int) -> None:
        """Move to what a request or response says (Kafka's ``maybeTransition``)."""
        if leader_id == self.node_id:
            leader_id = NO_LEADER  # only this node can tell itself it leads
        if epoch == self._epoch and leader_id != NO_LEADER and self._leader_id not in (NO_LEADER, leader_id):
            raise RaftStateError(
                f"node {self.node_id}: leader {leader_id} in epoch {epoch}, but {self._leader_id} leads it"
            )
        if epoch > self._epoch:
            if leader_id != NO_LEADER:
                self._transition(Event.LEADER_DISCOVERED, now_ms, epoch=epoch, leader_id=leader_id)
            else:
                self._transition(Event.HIGHER_EPOCH, now_ms, epoch=epoch)
        elif leader_id != NO_LEADER and self._leader_id == NO_LEADER:
            self._transition(Event.LEADER_DISCOVERED, now_ms, leader_id=leader_id)

    # -- the clock ----------------------------------------------------------------------------------------

    def poll(self, now_ms: int) -> None:
        """Fire due timers and send what the role needs to send."""
        self._clock.now_ms = now_ms
        self._retry_after = {node: at for node, at in self._retry_after.items() if at > now_ms}
        self._expire_parked_fetches(now_ms)
        handler = _POLL_BY_ROLE[self._role]
        handler(self, now_ms)

    def next_deadline(self) -> int | None:
        """The earliest time :meth:`poll` has something to do (None: nothing scheduled)."""
        deadlines = [self._deadline]
        if self._election.backing_off_until is not None:
            deadlines.append(self._election.backing_off_until)
        deadlines.extend(self._retry_after.values())
        parked = self._purgatory.next_deadline()
        if parked is not None:
            deadlines.append(parked)
        return min(deadlines)

    def _poll_unattached(self, now_ms: int) -> None:
        if now_ms >= self._deadline:
            self._transition(Event.ELECTION_TIMEOUT, now_ms)
            self._start_pre_vote(now_ms)

    def _poll_prospective(self, now_ms: int) -> None:
        if now_ms >= self._deadline:
            self._lose_pre_vote(now_ms)
            return
        self._send_votes(now_ms, pre_vote=True)

    def _poll_candidate(self, now_ms: int) -> None:
        backoff = self._election.backing_off_until
        if now_ms >= self._deadline or (backoff is not None and now_ms >= backoff):
            self._transition(Event.ELECTION_TIMEOUT, now_ms)
            self._start_pre_vote(now_ms)
            return
        if backoff is None:
            self._send_votes(now_ms, pre_vote=False)

    def _poll_follower(self, now_ms: int) -> None:
        if now_ms >= self._deadline:
            self._transition(Event.FETCH_TIMEOUT, now_ms, leader_id=self._leader_id)
            self._start_pre_vote(now_ms)
            return
        if self._can_send(self._leader_id, now_ms):
            if self._download is not None:
                self._send_fetch_snapshot(now_ms)
            else:
                self._send_fetch(now_ms)

    def _poll_leader(self, now_ms: int) -> None:
        if now_ms >= self._deadline:  # no majority fetched within the check-quorum timeout
            self._resign(now_ms, preferred=[])
            return
        for voter in self._remote_voters():
            if voter not in self._acknowledged and self._can_send(voter, now_ms):
                self._send_begin_quorum_epoch(voter, now_ms)

    def _poll_resigned(self, now_ms: int) -> None:
        if now_ms >= self._deadline:
            self._transition(Event.ELECTION_TIMEOUT, now_ms, epoch=self._epoch + 1)
            return
        for voter in self._remote_voters():
            if voter not in self._acknowledged and self._can_send(voter, now_ms):
                self._send_end_quorum_epoch(voter, now_ms)

    # -- elections (rules 1, 2) ---------------------------------------------------------------------------

    def _start_pre_vote(self, now_ms: int) -> None:
        """Now Prospective: count our own pre-vote and ask the others (KIP-996)."""
        self._election.granted.add(self.node_id)
        if not self._maybe_win_pre_vote(now_ms):
            self._send_votes(now_ms, pre_vote=True)

    def _maybe_win_pre_vote(self, now_ms: int) -> bool:
        if len(self._election.granted) < self.majority:
            return False
        self._transition(Event.PRE_VOTE_WON, now_ms, epoch=self._epoch + 1, voted_id=self.node_id)
        self._election.granted.add(self.node_id)
        if not self._maybe_become_leader(now_ms):
            self._send_votes(now_ms, pre_vote=False)
        return True

    def _lose_pre_vote(self, now_ms: int) -> None:
        if self._leader_id != NO_LEADER:
            self._transition(Event.RETURN_TO_LEADER, now_ms, leader_id=self._leader_id)
        else:
            self._transition(Event.ELECTION_LOST, now_ms)

    def _vote_rejected_by_majority(self) -> bool:
        return len(self._election.rejected) > len(self.voters) - self.majority

    def _maybe_become_leader(self, now_ms: int) -> bool:
        if len(self._election.granted) < self.majority:
            return False
        granting = sorted(self._election.granted)
        self._transition(Event.VOTE_WON, now_ms, leader_id=self.node_id, voted_id=self.node_id)
        self._on_become_leader(granting, now_ms)
        return True

    def _send_votes(self, now_ms: int, *, pre_vote: bool) -> None:
        for voter in self._remote_voters():
            answered = voter in self._election.granted or voter in self._election.rejected
            if not answered and self._can_send(voter, now_ms):
                self._send(voter, ApiKey.VOTE, self._vote_request(voter, pre_vote), now_ms, self._handle_vote_response)

    def _vote_request(self, voter: int, pre_vote: bool) -> Data:
        request, _ = message_for(ApiKey.VOTE)
        partition = request.struct("PartitionData").make(
            partition_index=METADATA_PARTITION,
            replica_epoch=self._epoch,
            replica_id=self.node_id,
            last_offset_epoch=self._last_epoch(),
            last_offset=self.log.log_end_offset,
            pre_vote=pre_vote,
        )
        topic = request.struct("TopicData").make(topic_name=METADATA_TOPIC, partitions=[partition])
        return request.make(cluster_id=self.cluster_id, voter_id=voter, topics=[topic])

    def _handle_vote_request(self, version: int, body: Data, now_ms: int) -> Data:
        _, response = message_for(ApiKey.VOTE)
        partition, top_error = self._single_partition(body, "topic_name")
        if top_error is not None:
            return response.make(error_code=top_error.code)
        candidate_id = partition.replica_id
        candidate_epoch = partition.replica_epoch
        pre_vote = bool(partition.get("pre_vote", False)) and version >= 2
        last_epoch, last_offset = partition.last_offset_epoch, partition.last_offset
        if last_offset < 0 or last_epoch < 0 or last_epoch > candidate_epoch or (not pre_vote and last_epoch == candidate_epoch):
            return self._vote_response(Errors.INVALID_REQUEST, False)
        if candidate_epoch < self._epoch:
            return self._vote_response(Errors.FENCED_LEADER_EPOCH, False)
        if candidate_id not in self.voters or candidate_id == self.node_id:
            return self._vote_response(INCONSISTENT_VOTER_SET, False)
        if not pre_vote and candidate_epoch > self._epoch:
            self._transition(Event.HIGHER_EPOCH, now_ms, epoch=candidate_epoch)
        log_up_to_date = (last_epoch, last_offset) >= (self._last_epoch(), self.log.log_end_offset)
        granted = self._can_grant_vote(candidate_id, candidate_epoch, log_up_to_date, pre_vote)
        if granted and not pre_vote and self._voted_id == NOT_VOTED:
            # Rule 2: the vote is on disk before the answer leaves.
            self._transition(Event.VOTE_GRANTED, now_ms, leader_id=self._leader_id, voted_id=candidate_id)
        return self._vote_response(Errors.NONE, granted)

    def _can_grant_vote(self, candidate_id: int, candidate_epoch: int, log_up_to_date: bool, pre_vote: bool) -> bool:
        """Kafka's ``EpochState.canGrantVote`` for each role."""
        if pre_vote and candidate_epoch > self._epoch:
            return log_up_to_date  # nothing is known of that epoch yet
        role = self._role
        if pre_vote:
            if role is Role.FOLLOWER:
                return log_up_to_date and not self._has_fetched_from_leader
            if role is Role.LEADER:
                return False
            return log_up_to_date
        if role in (Role.UNATTACHED, Role.PROSPECTIVE):
            if self._leader_id != NO_LEADER:
                return False
            if self._voted_id != NOT_VOTED:
                return self._voted_id == candidate_id
            return log_up_to_date
        return False  # a follower, candidate, leader or resigned leader of this epoch has voted

    def _vote_response(self, error: ErrorCode, granted: bool) -> Data:
        _, response = message_for(ApiKey.VOTE)
        partition = response.struct("PartitionData").make(
            partition_index=METADATA_PARTITION, error_code=error.code, leader_id=self._leader_id,
            leader_epoch=self._epoch, vote_granted=granted,
        )
        topic = response.struct("TopicData").make(topic_name=METADATA_TOPIC, partitions=[partition])
        return response.make(error_code=0, topics=[topic])

    def _handle_vote_response(self, body: Data, now_ms: int, generation: int, source: int) -> None:
        partition = self._response_partition(body, "topic_name")
        if partition is None:
            return
        error = _error(partition.error_code)
        if self._handle_common_response(error, partition.leader_id, partition.leader_epoch, now_ms) is not None:
            return
        if generation != self._generation or error is not Errors.NONE:
            return
        election = self._election
        (election.granted if partition.vote_granted else election.rejected).add(source)
        if self._role is Role.PROSPECTIVE:
            if not self._maybe_win_pre_vote(now_ms) and self._vote_rejected_by_majority():
                self._lose_pre_vote(now_ms)
        elif self._role is Role.CANDIDATE:
            if not self._maybe_become_leader(now_ms) and self._vote_rejected_by_majority():
                if election.backing_off_until is None:
                    election.backing_off_until = now_ms + self._election_backoff(1)

    # -- leadership (rules 3, 6) ------------------------------------------------------------------------------

    def _on_become_leader(self, granting: list[int], now_ms: int) -> None:
        self._epoch_start_offset = self.log.log_end_offset
        self._replicas = {voter: _ReplicaProgress() for voter in self._remote_voters()}
        self._observers = {}
        self._fetched_since_check = set()
        message = leader_change_message(self.node_id, list(self.voters), granting)
        batch = build_control_batch(
            ControlRecordType.LEADER_CHANGE, message, timestamp=now_ms, partition_leader_epoch=self._epoch
        )
        self.log.append_as_leader(batch, self._epoch)
        self._update_leader_high_watermark(now_ms)
        for voter in self._remote_voters():
            if self._can_send(voter, now_ms):
                self._send_begin_quorum_epoch(voter, now_ms)

    def append(self, records: list[bytes], now_ms: int) -> int:
        """Append ``records`` as one batch in the leader's epoch; returns the last offset.

        Raises :class:`NotLeaderError` on a node that is not the leader, ``ValueError`` when
        ``records`` is empty."""
        self._clock.now_ms = now_ms
        if self._role is not Role.LEADER:
            raise NotLeaderError(self.node_id, self.leader_id, self._epoch)
        if not records:
            raise ValueError("an append needs at least one record")
        batch = build_batch((SimpleRecord(value, timestamp=now_ms) for value in records), partition_leader_epoch=self._epoch)
        info = self.log.append_as_leader(batch, self._epoch)
        self._update_leader_high_watermark(now_ms)
        self._wake_parked_fetches(now_ms)
        return info.last_offset

    def resign(self, now_ms: int) -> None:
        """Graceful shutdown of a leader: Resigned, EndQuorumEpoch to the others (rule 6)."""
        self._clock.now_ms = now_ms
        if self._role is not Role.LEADER:
            raise NotLeaderError(self.node_id, self.leader_id, self._epoch)
        by_progress = sorted(self._replicas, key=lambda voter: (-self._replicas[voter].end_offset, voter))
        self._resign(now_ms, preferred=by_progress)

    def _resign(self, now_ms: int, preferred: list[int]) -> None:
        self._preferred_successors = preferred
        self._transition(Event.RESIGN, now_ms, leader_id=self.node_id, voted_id=self._voted_id)
        self._acknowledged = set()
        for voter in self._remote_voters():
            if self._can_send(voter, now_ms):
                self._send_end_quorum_epoch(voter, now_ms)

    def _update_leader_high_watermark(self, now_ms: int) -> None:
        """Rule 3: the offset a majority of voters has reached, once past the epoch start offset."""
        offsets = [self.log.log_end_offset] + [progress.end_offset for progress in self._replicas.values()]
        offsets.sort(reverse=True)
        candidate = offsets[len(self.voters) // 2]
        if candidate > self._epoch_start_offset and candidate > self._high_watermark:
            self._set_high_watermark(candidate)
            self._wake_parked_fetches(now_ms)

    def _set_high_watermark(self, offset: int) -> None:
        if offset <= self._high_watermark:
            return
        self._high_watermark = offset
        self.log.update_high_watermark(offset)
        self._deliver_commits()

    def _send_begin_quorum_epoch(self, voter: int, now_ms: int) -> None:
        request, _ = message_for(ApiKey.BEGIN_QUORUM_EPOCH)
        partition = request.struct("PartitionData").make(
            partition_index=METADATA_PARTITION, leader_id=self.node_id, leader_epoch=self._epoch
        )
        topic = request.struct("TopicData").make(topic_name=METADATA_TOPIC, partitions=[partition])
        body = request.make(cluster_id=self.cluster_id, voter_id=voter, topics=[topic], leader_endpoints=[])
        self._send(voter, ApiKey.BEGIN_QUORUM_EPOCH, body, now_ms, self._handle_begin_quorum_epoch_response)

    def _handle_begin_quorum_epoch_request(self, version: int, body: Data, now_ms: int) -> Data:
        _, response = message_for(ApiKey.BEGIN_QUORUM_EPOCH)
        partition, top_error = self._single_partition(body, "topic_name")
        if top_error is not None:
            return response.make(error_code=top_error.code)
        leader_id, leader_epoch = partition.leader_id, partition.leader_epoch
        if leader_epoch < self._epoch:
            return self._quorum_epoch_response(response, Errors.FENCED_LEADER_EPOCH)
        if leader_id not in self.voters or leader_id == self.node_id:
            return self._quorum_epoch_response(response, INCONSISTENT_VOTER_SET)
        self._maybe_transition(leader_id, leader_epoch, now_ms)
        return self._quorum_epoch_response(response, Errors.NONE)

    def _quorum_epoch_response(self, response: Message, error: ErrorCode) -> Data:
        partition = response.struct("PartitionData").make(
            partition_index=METADATA_PARTITION, error_code=error.code, leader_id=self._leader_id, leader_epoch=self._epoch
        )
        topic = response.struct("TopicData").make(topic_name=METADATA_TOPIC, partitions=[partition])
        return response.make(error_code=0, topics=[topic])

    def _handle_begin_quorum_epoch_response(self, body: Data, now_ms: int, generation: int, source: int) -> None:
        partition = self._response_partition(body, "topic_name")
        if partition is None:
            return
        error = _error(partition.error_code)
        if self._handle_common_response(error, partition.leader_id, partition.leader_epoch, now_ms) is not None:
            return
        if generation == self._generation and self._role is Role.LEADER and error is Errors.NONE:
            self._acknowledged.add(source)

    def _send_end_quorum_epoch(self, voter: int, now_ms: int) -> None:
        request, _ = message_for(ApiKey.END_QUORUM_EPOCH)
        candidates = [request.struct("ReplicaInfo").make(candidate_id=voter_id) for voter_id in self._preferred_successors]
        partition = request.struct("PartitionData").make(
            partition_index=METADATA_PARTITION, leader_id=self.node_id, leader_epoch=self._epoch,
            preferred_successors=list(self._preferred_successors), preferred_candidates=candidates,
        )
        topic = request.struct("TopicData").make(topic_name=METADATA_TOPIC, partitions=[partition])
        body = request.make(cluster_id=self.cluster_id, topics=[topic], leader_endpoints=[])
        self._send(voter, ApiKey.END_QUORUM_EPOCH, body, now_ms, self._handle_end_quorum_epoch_response)

    def _handle_end_quorum_epoch_request(self, version: int, body: Data, now_ms: int) -> Data:
        _, response = message_for(ApiKey.END_QUORUM_EPOCH)
        partition, top_error = self._single_partition(body, "topic_name")
        if top_error is not None:
            return response.make(error_code=top_error.code)
        leader_id, leader_epoch = partition.leader_id, partition.leader_epoch
        if leader_epoch < self._epoch:
            return self._quorum_epoch_response(response, Errors.FENCED_LEADER_EPOCH)
        if leader_id not in self.voters:
            return self._quorum_epoch_response(response, INCONSISTENT_VOTER_SET)
        self._maybe_transition(leader_id, leader_epoch, now_ms)
        if self._role is Role.FOLLOWER and self._leader_id == leader_id:
            if version >= 1:
                preferred = [candidate.candidate_id for candidate in partition.preferred_candidates]
            else:
                preferred = list(partition.preferred_successors)
            self._deadline = min(self._deadline, now_ms + self._end_epoch_backoff(preferred))
            # The leader said it is gone: a pre-vote need no longer be refused on its account.
            self._has_fetched_from_leader = False
        return self._quorum_epoch_response(response, Errors.NONE)

    def _handle_end_quorum_epoch_response(self, body: Data, now_ms: int, generation: int, source: int) -> None:
        partition = self._response_partition(body, "topic_name")
        if partition is None:
            return
        error = _error(partition.error_code)
        if self._handle_common_response(error, partition.leader_id, partition.leader_epoch, now_ms) is not None:
            return
        if generation == self._generation and self._role is Role.RESIGNED and error is Errors.NONE:
            self._acknowledged.add(source)

    # -- Fetch, leader side (rule 4) ----------------------------------------------------------------------

    def _handle_fetch_request(self, version: int, body: Data, now_ms: int) -> Data | Pending:
        _, response = message_for(ApiKey.FETCH)
        if body.get("cluster_id") is not None and body.cluster_id != self.cluster_id:
            return response.make(error_code=INCONSISTENT_CLUSTER_ID.code, responses=[])
        topics = body.topics
        if len(topics) != 1 or len(topics[0].partitions) != 1 or not self._is_metadata_topic(topics[0], version):
            return response.make(error_code=Errors.INVALID_REQUEST.code, responses=[])
        partition = topics[0].partitions[0]
        if partition.partition != METADATA_PARTITION:
            return response.make(error_code=Errors.INVALID_REQUEST.code, responses=[])
        replica_id = body.replica_state.replica_id if version >= 15 else body.replica_id
        if (body.max_wait_ms < 0 or partition.fetch_offset < 0 or partition.last_fetched_epoch < 0
                or partition.last_fetched_epoch > partition.current_leader_epoch):
            return self._fetch_response(version, Errors.INVALID_REQUEST)
        answer = self._try_complete_fetch(version, replica_id, partition, now_ms)
        data = answer.responses[0].partitions[0]
        if (data.error_code != 0 or data.records or body.max_wait_ms == 0
                or data.diverging_epoch.epoch >= 0 or data.snapshot_id.epoch >= 0):
            return answer
        parked_high_watermark = self._high_watermark
        parked_generation = self._generation

        def try_complete(now: int, expired: bool) -> Data | None:
            changed = (self._generation != parked_generation or self._high_watermark != parked_high_watermark
                       or self.log.log_end_offset > partition.fetch_offset)
            if expired or changed:
                return self._try_complete_fetch(version, replica_id, partition, now)
            return None

        operation = DelayedOperation(now_ms + body.max_wait_ms, try_complete, [_FETCH_WATCH_KEY])
        return self._purgatory.park(operation, now_ms)

    def _wake_parked_fetches(self, now_ms: int) -> None:
        """Let parked Fetches see new data, a new HW or a new role.  Completing one may move the HW
        and wake the others again; the purgatory is not re-entrant, so nested wakes are queued."""
        if self._waking_fetches:
            self._wake_fetches_again = True
            return
        self._waking_fetches = True
        try:
            self._wake_fetches_again = True
            while self._wake_fetches_again:
                self._wake_fetches_again = False
                self._purgatory.check(_FETCH_WATCH_KEY, now_ms)
        finally:
            self._waking_fetches = False

    def _expire_parked_fetches(self, now_ms: int) -> None:
        if self._waking_fetches:
            return
        self._waking_fetches = True
        try:
            self._purgatory.expire(now_ms)
        finally:
            self._waking_fetches = False
        if self._wake_fetches_again:
            self._wake_parked_fetches(now_ms)

    def _is_metadata_topic(self, topic: Data, version: int) -> bool:
        if version >= 13:
            return bool(topic.topic_id == METADATA_TOPIC_ID)
        return bool(topic.topic == METADATA_TOPIC)

    def _validate_leader_only(self, request_epoch: int) -> ErrorCode | None:
        """Kafka's ``validateLeaderOnlyRequest``."""
        if request_epoch < self._epoch:
            return Errors.FENCED_LEADER_EPOCH
        if request_epoch > self._epoch:
            return Errors.UNKNOWN_LEADER_EPOCH
        if self._role is not Role.LEADER:
            return Errors.NOT_LEADER_OR_FOLLOWER
        return None

    def _try_complete_fetch(self, version: int, replica_id: int, partition: Data, now_ms: int) -> Data:
        error = self._validate_leader_only(partition.current_leader_epoch)
        if error is not None:
            return self._fetch_response(version, error)
        fetch_offset, last_fetched_epoch = partition.fetch_offset, partition.last_fetched_epoch
        kind, offset_and_epoch = self._validate_offset_and_epoch(fetch_offset, last_fetched_epoch)
        records = b""
        if kind == "valid":
            max_bytes = max(1, min(partition.partition_max_bytes, MAX_FETCH_SIZE_BYTES))
            records = self.log.read(fetch_offset, max_bytes).records
            self._update_replica_state(replica_id, fetch_offset, now_ms)
        return self._fetch_response(
            version, Errors.NONE, records=records,
            diverging=offset_and_epoch if kind == "diverging" else None,
            snapshot=offset_and_epoch if kind == "snapshot" else None,
        )

    def _validate_offset_and_epoch(self, offset: int, epoch: int) -> tuple[str, SnapshotId | None]:
        """Kafka's ``ReplicatedLog.validateOffsetAndEpoch``: "valid", ("diverging", where the logs
        part), or ("snapshot", the snapshot to fetch instead)."""
        log_start = self.log.log_start_offset
        snapshot = self._latest_snapshot
        if offset == 0 and snapshot is not None and snapshot.end_offset > 0:
            return "snapshot", snapshot  # an empty follower starts from the snapshot
        if log_start == 0 and offset == 0:
            return "valid", None
        earliest = self._earliest_snapshot()
        if earliest is not None and (
            offset < log_start or (offset == log_start and epoch != earliest.epoch) or epoch < earliest.epoch
        ):
            return "snapshot", snapshot
        end = self._end_offset_for_epoch(epoch)
        if end.epoch != epoch or end.end_offset < offset:
            return "diverging", end
        return "valid", None

    def _earliest_snapshot(self) -> SnapshotId | None:
        snapshots = list_snapshots(self.directory) if self._latest_snapshot is not None else []
        return snapshots[0] if snapshots else None

    def _end_offset_for_epoch(self, epoch: int) -> SnapshotId:
        """(end offset, epoch) of the largest epoch <= ``epoch`` in this log, as a SnapshotId pair."""
        found = self.log.end_offset_for_epoch(epoch)
        start_epoch = self._latest_snapshot_at_log_start()
        if found is None or (start_epoch is not None and found[0] < start_epoch.epoch):
            if start_epoch is not None:
                return SnapshotId(start_epoch.end_offset, start_epoch.epoch)
            return SnapshotId(self.log.log_start_offset, 0)
        return SnapshotId(found[1], found[0])

    def _update_replica_state(self, replica_id: int, fetch_offset: int, now_ms: int) -> None:
        if replica_id < 0 or replica_id == self.node_id:
            return
        progress = self._replicas.get(replica_id)
        if progress is None:
            progress = self._observers.setdefault(replica_id, _ReplicaProgress())
        progress.end_offset = fetch_offset
        progress.last_fetch_ms = now_ms
        if fetch_offset >= self.log.log_end_offset:
            progress.last_caught_up_ms = now_ms
        if replica_id in self._replicas:
            self._acknowledged.add(replica_id)  # fetching from us means it knows we lead
            self._fetched_since_check.add(replica_id)
            if len(self._fetched_since_check) + 1 >= self.majority:  # Kafka's check-quorum timer
                self._fetched_since_check = set()
                self._deadline = now_ms + self.config.check_quorum_timeout_ms
            self._update_leader_high_watermark(now_ms)

    def _fetch_response(
        self, version: int, error: ErrorCode, *, records: bytes = b"",
        diverging: SnapshotId | None = None, snapshot: SnapshotId | None = None,
    ) -> Data:
        _, response = message_for(ApiKey.FETCH)
        partition = response.struct("PartitionData").make(
            partition_index=METADATA_PARTITION,
            error_code=error.code,
            high_watermark=self._high_watermark if error is Errors.NONE else -1,
            last_stable_offset=-1,
            log_start_offset=self.log.log_start_offset,
            diverging_epoch=response.struct("EpochEndOffset").make(
                epoch=diverging.epoch if diverging else -1, end_offset=diverging.end_offset if diverging else -1
            ),
            current_leader=response.struct("LeaderIdAndEpoch").make(leader_id=self._leader_id, leader_epoch=self._epoch),
            snapshot_id=response.struct("SnapshotId").make(
                end_offset=snapshot.end_offset if snapshot else -1, epoch=snapshot.epoch if snapshot else -1
            ),
            aborted_transactions=None,
            records=records,
        )
        topic = response.struct("FetchableTopicResponse").make(
            topic=METADATA_TOPIC, topic_id=METADATA_TOPIC_ID, partitions=[partition]
        )
        return response.make(error_code=0, session_id=0, responses=[topic])

    # -- Fetch, follower side (rule 4) --------------------------------------------------------------------

    def _send_fetch(self, now_ms: int) -> None:
        request, _ = message_for(ApiKey.FETCH)
        partition = request.struct("FetchPartition").make(
            partition=METADATA_PARTITION,
            current_leader_epoch=self._epoch,
            fetch_offset=self.log.log_end_offset,
            last_fetched_epoch=self._last_epoch(),
            log_start_offset=self.log.log_start_offset,
            partition_max_bytes=MAX_FETCH_SIZE_BYTES,
        )
        topic = request.struct("FetchTopic").make(topic=METADATA_TOPIC, topic_id=METADATA_TOPIC_ID, partitions=[partition])
        body = request.make(
            cluster_id=self.cluster_id,
            replica_id=self.node_id,
            replica_state=request.struct("ReplicaState").make(replica_id=self.node_id, replica_epoch=-1),
            max_wait_ms=self.config.fetch_max_wait_ms,
            min_bytes=0,
            max_bytes=MAX_FETCH_SIZE_BYTES,
            topics=[topic],
            forgotten_topics_data=[],
        )
        self._send(self._leader_id, ApiKey.FETCH, body, now_ms, self._handle_fetch_response)

    def _handle_fetch_response(self, body: Data, now_ms: int, generation: int, source: int) -> None:
        if body.error_code != 0 or len(body.responses) != 1 or len(body.responses[0].partitions) != 1:
            self._retry_after[source] = now_ms + self.config.retry_backoff_ms
            return
        partition = body.responses[0].partitions[0]
        error = _error(partition.error_code)
        leader = partition.current_leader
        if self._handle_common_response(error, leader.leader_id, leader.leader_epoch, now_ms) is not None:
            return
        if generation != self._generation or self._role is not Role.FOLLOWER:
            return
        if error is not Errors.NONE:
            self._retry_after[source] = now_ms + self.config.retry_backoff_ms
            return
        if partition.diverging_epoch.epoch >= 0:
            self._truncate_to_diverging(partition.diverging_epoch.epoch, partition.diverging_epoch.end_offset)
        elif partition.snapshot_id.epoch >= 0 and partition.snapshot_id.end_offset >= 0:
            snapshot_id = SnapshotId(partition.snapshot_id.end_offset, partition.snapshot_id.epoch)
            if snapshot_id == self._latest_snapshot:  # already here: install our own copy
                content = (self.directory / snapshot_id.file_name).read_bytes()
                self._install_snapshot(_SnapshotDownload(snapshot_id, bytearray(content)))
            else:
                self._download = _SnapshotDownload(snapshot_id)
        else:
            if partition.records:
                self.log.append_as_follower(partition.records)
            if partition.high_watermark >= 0:
                self._set_high_watermark(min(partition.high_watermark, self.log.log_end_offset))
        self._has_fetched_from_leader = True
        self._deadline = now_ms + self.config.fetch_timeout_ms
        self._poll_follower(now_ms)

    def _truncate_to_diverging(self, epoch: int, end_offset: int) -> None:
        """Truncate to where this log and the leader's agree (Kafka's ``truncateToEndOffset``)."""
        local = self.log.end_offset_for_epoch(epoch)
        target = self.log.log_start_offset if local is None else min(local[1], end_offset)
        target = max(target, self.log.log_start_offset)
        if target < self._high_watermark:
            raise RaftStateError(
                f"node {self.node_id}: leader asked to truncate to {target}, below the high watermark {self._high_watermark}"
            )
        self.log.truncate_to(target)

    # -- snapshots (rule 8) -----------------------------------------------------------------------------------

    def create_snapshot(self, end_offset: int, records: list[bytes], now_ms: int) -> SnapshotId:
        """Write the snapshot of the committed state below ``end_offset`` (at or below the HW, on a
        batch boundary); its epoch is the epoch of the record at ``end_offset - 1``."""
        self._clock.now_ms = now_ms
        if end_offset > self._high_watermark:
            raise ValueError(f"snapshot end offset {end_offset} is above the high watermark {self._high_watermark}")
        if end_offset <= self.log.log_start_offset:
            raise ValueError(f"snapshot end offset {end_offset} is not above the log start offset {self.log.log_start_offset}")
        epoch = self._epoch_of_offset(end_offset - 1)
        snapshot_id = SnapshotId(end_offset, epoch)
        write_snapshot(self.directory, snapshot_id, records, now_ms)
        if self._latest_snapshot is None or snapshot_id > self._latest_snapshot:
            self._latest_snapshot = snapshot_id
        return snapshot_id

    def _epoch_of_offset(self, offset: int) -> int:
        found = self.log.leader_epoch_cache.epoch_for_offset(offset)
        if found is None:
            raise ValueError(f"no epoch is known for offset {offset}")
        return found

    def delete_log_before_latest_snapshot(self) -> int:
        """Drop the log below the latest snapshot (Kafka does it under ``metadata.max.retention.*``);
        returns the new log start offset."""
        snapshot = self._latest_snapshot
        if snapshot is None or snapshot.end_offset <= self.log.log_start_offset:
            return self.log.log_start_offset
        self.log.delete_records(snapshot.end_offset)
        delete_snapshots_before(self.directory, snapshot)
        return self.log.log_start_offset

    def _send_fetch_snapshot(self, now_ms: int) -> None:
        assert self._download is not None
        request = fetch_snapshot.REQUEST
        snapshot_id = self._download.snapshot_id
        partition = request.struct("PartitionSnapshot").make(
            partition=METADATA_PARTITION,
            current_leader_epoch=self._epoch,
            snapshot_id=request.struct("SnapshotId").make(end_offset=snapshot_id.end_offset, epoch=snapshot_id.epoch),
            position=len(self._download.content),
        )
        topic = request.struct("TopicSnapshot").make(name=METADATA_TOPIC, partitions=[partition])
        body = request.make(cluster_id=self.cluster_id, replica_id=self.node_id, max_bytes=MAX_SNAPSHOT_CHUNK_BYTES, topics=[topic])
        self._send(self._leader_id, ApiKey.FETCH_SNAPSHOT, body, now_ms, self._handle_fetch_snapshot_response)

    def _handle_fetch_snapshot_request(self, version: int, body: Data, now_ms: int) -> Data:
        response = fetch_snapshot.RESPONSE
        if body.get("cluster_id") is not None and body.cluster_id != self.cluster_id:
            return response.make(error_code=INCONSISTENT_CLUSTER_ID.code, topics=[])
        partition, top_error = self._single_partition(body, "name")
        if top_error is not None:
            return response.make(error_code=top_error.code, topics=[])
        snapshot_id = SnapshotId(partition.snapshot_id.end_offset, partition.snapshot_id.epoch)
        error = self._validate_leader_only(partition.current_leader_epoch)
        chunk, size = b"", 0
        if error is None and snapshot_id not in list_snapshots(self.directory):
            error = SNAPSHOT_NOT_FOUND
        if error is None:
            chunk, size = read_snapshot_chunk(self.directory, snapshot_id, partition.position,
                                              min(body.max_bytes, MAX_SNAPSHOT_CHUNK_BYTES))
            if partition.position < 0 or partition.position >= size:
                error, chunk = POSITION_OUT_OF_RANGE, b""
        data = response.struct("PartitionSnapshot").make(
            index=METADATA_PARTITION,
            error_code=(error or Errors.NONE).code,
            snapshot_id=response.struct("SnapshotId").make(end_offset=snapshot_id.end_offset, epoch=snapshot_id.epoch),
            current_leader=response.struct("LeaderIdAndEpoch").make(leader_id=self._leader_id, leader_epoch=self._epoch),
            size=size,
            position=partition.position,
            unaligned_records=chunk,
        )
        topic = response.struct("TopicSnapshot").make(name=METADATA_TOPIC, partitions=[data])
        return response.make(error_code=0, topics=[topic])

    def _handle_fetch_snapshot_response(self, body: Data, now_ms: int, generation: int, source: int) -> None:
        partition = self._response_partition(body, "name")
        if partition is None:
            return
        error = _error(partition.error_code)
        leader = partition.current_leader
        if self._handle_common_response(error, leader.leader_id, leader.leader_epoch, now_ms) is not None:
            return
        download = self._download
        if generation != self._generation or self._role is not Role.FOLLOWER or download is None:
            return
        if error is not Errors.NONE:
            self._download = None  # SNAPSHOT_NOT_FOUND and the like: fetch again from the log
            self._retry_after[source] = now_ms + self.config.retry_backoff_ms
            return
        if partition.position != len(download.content):
            return
        download.content.extend(partition.unaligned_records or b"")
        self._has_fetched_from_leader = True
        self._deadline = now_ms + self.config.fetch_timeout_ms
        if len(download.content) >= partition.size:
            self._install_snapshot(download)
        self._poll_follower(now_ms)

    def _install_snapshot(self, download: _SnapshotDownload) -> None:
        """A downloaded snapshot replaces the log below its end offset and the listener's state."""
        content = bytes(download.content)
        reader = decode_snapshot(download.snapshot_id, content)
        write_snapshot_bytes(self.directory, download.snapshot_id, content)
        self._latest_snapshot = download.snapshot_id
        self._download = None
        end_offset = download.snapshot_id.end_offset
        if end_offset < self._high_watermark:
            raise RaftStateError(f"snapshot {download.snapshot_id} ends below the high watermark {self._high_watermark}")
        self.log.truncate_fully_and_start_at(end_offset)
        delete_snapshots_before(self.directory, download.snapshot_id)
        self._high_watermark = end_offset
        self._next_commit_offset = end_offset
        if self.listener is not None:
            self.listener.handle_load_snapshot(reader)

    # -- DescribeQuorum ---------------------------------------------------------------------------------

    def _handle_describe_quorum_request(self, version: int, body: Data, now_ms: int) -> Data:
        _, response = message_for(ApiKey.DESCRIBE_QUORUM)
        topics = body.topics
        if len(topics) != 1 or topics[0].topic_name != METADATA_TOPIC or [p.partition_index for p in topics[0].partitions] != [0]:
            return response.make(error_code=0, topics=[
                response.struct("TopicData").make(topic_name=topic.topic_name, partitions=[
                    response.struct("PartitionData").make(
                        partition_index=p.partition_index, error_code=Errors.UNKNOWN_TOPIC_OR_PARTITION.code,
                        leader_id=-1, leader_epoch=-1, high_watermark=-1, current_voters=[], observers=[],
                    ) for p in topic.partitions
                ]) for topic in topics
            ], nodes=[])
        if self._role is not Role.LEADER:
            data = response.struct("PartitionData").make(
                partition_index=METADATA_PARTITION, error_code=Errors.NOT_LEADER_OR_FOLLOWER.code,
                leader_id=-1, leader_epoch=-1, high_watermark=-1, current_voters=[], observers=[],
            )
        else:
            state = response.struct("ReplicaState")

            def describe(replica_id: int, progress: _ReplicaProgress) -> Data:
                return state.make(replica_id=replica_id, log_end_offset=progress.end_offset,
                                  last_fetch_timestamp=progress.last_fetch_ms, last_caught_up_timestamp=progress.last_caught_up_ms)

            own = _ReplicaProgress(self.log.log_end_offset, now_ms, now_ms)
            voters = [describe(self.node_id, own)] + [describe(v, p) for v, p in sorted(self._replicas.items())]
            observers = [describe(o, p) for o, p in sorted(self._observers.items())]
            data = response.struct("PartitionData").make(
                partition_index=METADATA_PARTITION, error_code=0, leader_id=self.node_id, leader_epoch=self._epoch,
                high_watermark=self._high_watermark, current_voters=voters, observers=observers,
            )
        nodes = [
            response.struct("Node").make(node_id=voter, listeners=[
                response.struct("Listener").make(name="CONTROLLER", host=host, port=port)
            ]) for voter, (host, port) in sorted(self.voters.items())
        ]
        return response.make(error_code=0, topics=[response.struct("TopicData").make(topic_name=METADATA_TOPIC, partitions=[data])], nodes=nodes)

    # -- requests in ----------------------------------------------------------------------------------------

    def handle_request(self, api_key: int, version: int, body: Data, now_ms: int) -> Data | Pending:
        """Answer a request from another node (or an admin, for DescribeQuorum)."""
        self._clock.now_ms = now_ms
        handlers: dict[int, Callable[[int, Data, int], Data | Pending]] = {
            ApiKey.VOTE: self._handle_vote_request,
            ApiKey.BEGIN_QUORUM_EPOCH: self._handle_begin_quorum_epoch_request,
            ApiKey.END_QUORUM_EPOCH: self._handle_end_quorum_epoch_request,
            ApiKey.FETCH: self._handle_fetch_request,
            ApiKey.DESCRIBE_QUORUM: self._handle_describe_quorum_request,
            ApiKey.FETCH_SNAPSHOT: self._handle_fetch_snapshot_request,
        }
        handler = handlers.get(api_key)
        if handler is None:
            raise ValueError(f"the Raft layer does not serve API key {api_key}")
        answer = handler(version, body, now_ms)
        self.poll(now_ms)
        return answer

    def _single_partition(self, body: Data, topic_name_attribute: str) -> tuple[Data, ErrorCode | None]:
        """The one metadata partition of a Vote/BeginQuorumEpoch/EndQuorumEpoch/FetchSnapshot request."""
        if body.get("cluster_id") is not None and body.cluster_id != self.cluster_id:
            return Data(), INCONSISTENT_CLUSTER_ID
        topics = body.topics
        if (len(topics) != 1 or getattr(topics[0], topic_name_attribute) != METADATA_TOPIC
                or len(topics[0].partitions) != 1):
            return Data(), Errors.INVALID_REQUEST
        partition = topics[0].partitions[0]
        index = partition.get("partition_index", partition.get("partition"))
        if index != METADATA_PARTITION:
            return Data(), Errors.INVALID_REQUEST
        return partition, None

    # -- requests out --------------------------------------------------------------------------------------

    def _can_send(self, destination: int, now_ms: int) -> bool:
        return (destination != NO_LEADER and destination not in self._in_flight
                and self._retry_after.get(destination, 0) <= now_ms)

    def _send(self, destination: int, api_key: ApiKey, body: Data, now_ms: int,
              handler: Callable[[Data, int, int, int], None]) -> None:
        generation = self._generation
        request: OutboundRequest

        def on_response(response: Data, now: int) -> None:
            self._clock.now_ms = now
            if self._in_flight.get(destination) is request:
                del self._in_flight[destination]
                if api_key not in (ApiKey.FETCH, ApiKey.FETCH_SNAPSHOT):
                    # Votes and epoch announcements are resent only while unanswered; pace them.
                    self._retry_after[destination] = now + self.config.retry_backoff_ms
            handler(response, now, generation, destination)
            self.poll(now)

        def on_failure(error: Exception, now: int) -> None:
            self._clock.now_ms = now
            if self._in_flight.get(destination) is request:
                del self._in_flight[destination]
                self._retry_after[destination] = now + self.config.retry_backoff_ms
            self.poll(now)

        request = OutboundRequest(
            destination=destination, api_key=int(api_key), body=body, on_response=on_response,
            on_failure=on_failure, version=SEND_VERSION[api_key], timeout_ms=self.config.request_timeout_ms,
        )
        self._in_flight[destination] = request
        self.outbox.send(request)

    def _response_partition(self, body: Data, topic_name_attribute: str) -> Data | None:
        if body.error_code != 0:
            return None  # INCONSISTENT_CLUSTER_ID and the like: nothing to learn, retried later
        topics = body.topics
        if len(topics) != 1 or getattr(topics[0], topic_name_attribute) != METADATA_TOPIC or len(topics[0].partitions) != 1:
            return None
        partition: Data = topics[0].partitions[0]
        return partition

    def _handle_common_response(self, error: ErrorCode, leader_id: int, epoch: int, now_ms: int) -> bool | None:
        """Kafka's ``maybeHandleCommonResponse``: True/False when the answer was fully handled here,
        None when the API's own handler should look at it."""
        if epoch < self._epoch or error is Errors.UNKNOWN_LEADER_EPOCH:
            return True  # we are ahead: the answer is stale
        if epoch > self._epoch or error in (Errors.FENCED_LEADER_EPOCH, Errors.NOT_LEADER_OR_FOLLOWER):
            self._maybe_transition(leader_id, epoch, now_ms)
            return True
        if leader_id >= 0 and leader_id != self.node_id and self._leader_id == NO_LEADER:
            self._maybe_transition(leader_id, epoch, now_ms)
            return None if error is Errors.NONE else True
        if error is Errors.INVALID_REQUEST:
            raise RaftStateError(f"node {self.node_id} sent a request that was answered INVALID_REQUEST")
        return None

    # -- the listener ----------------------------------------------------------------------------------------

    def _deliver_commits(self) -> None:
        """Hand every committed data batch below the HW to the listener, once, in order (rule 9)."""
        self._next_commit_offset = max(self._next_commit_offset, self.log.log_start_offset)
        while self._next_commit_offset < self._high_watermark:
            data = self.log.read(self._next_commit_offset, 1 << 20, max_offset=self._high_watermark)
            if not data.records:
                break
            for batch in iter_record_batches(data.records):
                if batch.last_offset < self._next_commit_offset:
                    continue
                if not batch.is_control and self.listener is not None:
                    values = tuple(record.value or b"" for record in batch.records)
                    self.listener.handle_commit(
                        CommittedBatch(batch.base_offset, batch.partition_leader_epoch, values, batch.max_timestamp)
                    )
                self._next_commit_offset = batch.last_offset + 1

    # -- invariants -----------------------------------------------------------------------------------------

    def check_valid(self) -> None:
        """Assert the invariants of the module docstring."""
        role = self._role
        assert self._epoch >= 0
        if role is Role.LEADER:
            assert self._leader_id == self.node_id and self._voted_id == self.node_id, "a leader voted for itself"
            assert self.log.latest_epoch == self._epoch, "a leader's log ends in its own epoch"
            assert self._epoch_start_offset < self.log.log_end_offset, "the LeaderChangeMessage is in the log"
        elif role is Role.FOLLOWER:
            assert self._leader_id in self.voters and self._leader_id != self.node_id, "a follower follows another voter"
        elif role is Role.CANDIDATE:
            assert self._voted_id == self.node_id and self._leader_id == NO_LEADER, "a candidate voted for itself"
        elif role is Role.RESIGNED:
            assert self._leader_id == self.node_id
        else:
            assert self._leader_id != self.node_id
        assert self.log.log_start_offset <= self._high_watermark <= self.log.log_end_offset, (
            f"log start {self.log.log_start_offset} <= HW {self._high_watermark} <= LEO {self.log.log_end_offset}"
        )
        assert self._last_epoch() <= self._epoch, f"log epoch {self._last_epoch()} <= epoch {self._epoch}"
        assert self._next_commit_offset == max(self._high_watermark, self.log.log_start_offset), (
            f"the listener has seen every batch below the HW: next {self._next_commit_offset}, HW {self._high_watermark}"
        )
        self.log.check_valid()

    def close(self) -> None:
        """Clean shutdown of the log files (the quorum-state file is always current)."""
        self.log.close()

    def __repr__(self) -> str:
        return (f"<RaftNode {self.node_id} {self._role.value} epoch={self._epoch} leader={self.leader_id} "
                f"voted={self.voted_id} LEO={self.log.log_end_offset} HW={self._high_watermark}>")


_POLL_BY_ROLE: dict[Role, Callable[[RaftNode, int], None]] = {
    Role.UNATTACHED: RaftNode._poll_unattached,
    Role.PROSPECTIVE: RaftNode._poll_prospective,
    Role.CANDIDATE: RaftNode._poll_candidate,
    Role.LEADER: RaftNode._poll_leader,
    Role.FOLLOWER: RaftNode._poll_follower,
    Role.RESIGNED: RaftNode._poll_resigned,
}


def _error(code: int) -> ErrorCode:
    return lookup(code)
