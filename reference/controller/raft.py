"""KRaft's Raft layer: one voter or observer replicating ``__cluster_metadata``, without sockets or clocks.

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
legal changes are the table in :mod:`.quorum_state`; the log questions (end offset, where an epoch
ends, is a fetch position valid) are :mod:`.metadata_log`'s; the request and response layouts are
in :mod:`.raft_messages`; what a leader tracks of the other replicas is :mod:`.leader_state`.

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
   (a leader commits entries of earlier epochs only by committing one of its own).  An offset
   counts only once it is on disk: the leader flushes its log after each append, a voter after
   each append of fetched records (KafkaRaftClient does the same), so a committed record survives
   a power loss of any minority.
4. **Followers fetch** (Fetch v18) with ``FetchOffset`` = LEO, ``LastFetchedEpoch`` = the epoch
   of their last batch and ``HighWatermark`` = the HW they know (-1 if none, KIP-1166).  The
   leader checks the offset and epoch against its own log: a mismatch is answered with
   ``DivergingEpoch`` (epoch, end offset) and the follower truncates to where the logs agree
   (never below its HW); a position before the leader's log start is answered with ``SnapshotId``.
   Otherwise the leader returns records and its HW; the follower sets its HW to
   ``min(leader HW, own LEO)``.  A Fetch with nothing to return waits in purgatory until the
   leader appends, its HW moves, or ``MaxWaitMs`` (500 ms, Kafka's ``fetchMaxWaitMs``) passes --
   unless the leader's HW is above the one the follower sent: the fetch that moved the HW is
   answered at once, so the follower (and its broker's metadata) learns of a commit in one round
   trip, not after ``MaxWaitMs``.
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
   Resigned in its epoch, a node that knew the leader of its epoch follows it, a candidate that did
   not is a candidate again; the log is recovered; the log start offset resumes at the latest
   snapshot, which is loaded into the listener, and the committed log after it is replayed once the
   HW is known again (the HW itself is not persisted: it is learned from the leader, as in Kafka).
8. **Snapshots** (KIP-630): the listener asks :meth:`RaftNode.create_snapshot` for an offset at
   or below the HW; :meth:`RaftNode.delete_log_before_latest_snapshot` then drops the log before
   it (refka's stand-in for ``metadata.max.retention.*``).  A follower sent a ``SnapshotId``
   downloads it with FetchSnapshot (key 59), installs it, loads it into its listener and fetches
   the log from its end offset.
9. **The listener** gets each committed data batch once, in offset order
   (:meth:`RaftListener.handle_commit`); control batches are the Raft layer's own and are not
   passed on.  It hears every change of (leader, epoch) (``handle_leader_change``); a new leader
   hears of itself while its log still ends at the epoch start offset, where its
   LeaderChangeMessage goes right after.
10. **Observers** (a node not in ``controller.quorum.voters``: a ``process.roles=broker`` node,
   Kafka's ``isObserver``) replicate the log without a say in it.  They are only ever Unattached or
   Follower (``OBSERVER_TRANSITIONS``), never start a pre-vote and answer Vote, BeginQuorumEpoch
   and EndQuorumEpoch ``INCONSISTENT_VOTER_SET``, as Kafka's ``validateVoterOnlyRequest`` does.
   Knowing no leader, or when the leader has been silent for the fetch timeout or its last request
   failed, an observer sends its Fetch to the voters in turn, one request at a time, and asks a
   voter that answered with an error again only after ``controller.quorum.retry.backoff.ms``
   (Kafka's ``maybeSendAnyVoterFetch``): a voter that does not lead answers
   ``NOT_LEADER_OR_FOLLOWER`` or ``FENCED_LEADER_EPOCH`` with the leader and epoch it knows, and
   the observer follows that leader.  Having no election timer, an observer fails its own requests
   after ``controller.quorum.request.timeout.ms``.  Otherwise it fetches as a follower does
   (truncation, HW, snapshots, the listener) and keeps ``quorum-state`` as a voter does, with no
   vote.  The leader lists observers in DescribeQuorum but counts only voters for the HW and for
   check-quorum (:mod:`.leader_state`).

Invariants (:meth:`RaftNode.check_valid`): the node's role, epoch, leader and vote agree with the
table (a leader voted for itself and leads; a follower's leader is another voter; an observer is
Unattached or Follower);
``log_start_offset <= high_watermark <= log_end_offset``; the epoch is at least the epoch of the
last batch in the log; a leader's log ends in its own epoch, after its epoch start offset; the
listener has been given exactly the batches below the HW; the log keeps its own invariants.

Left out: dynamic quorum membership (KIP-853: AddRaftVoter, RemoveRaftVoter, UpdateRaftVoter,
VotersRecord and KRaftVersionRecord in the log), so an observer cannot be promoted;
``controller.quorum.append.linger.ms`` batching (each :meth:`RaftNode.append` is one batch).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from reference.broker.log.clock import ManualClock
from reference.broker.log.config import LogConfig
from reference.broker.pending import DelayedOperation, Pending, Purgatory
from reference.client.outbox import OutboundRequest, Outbox
from reference.controller import raft_messages as messages
from reference.controller.control_records import build_control_batch, leader_change_message
from reference.controller.leader_state import LeaderState, ReplicaProgress
from reference.controller.metadata_log import DIVERGING, SNAPSHOT, VALID, MetadataLog
from reference.controller.quorum_state import (
    NO_LEADER,
    NOT_VOTED,
    OBSERVER_TRANSITIONS,
    QUORUM_STATE_FILE,
    ElectionState,
    Event,
    FileQuorumStateStore,
    IllegalTransitionError,
    Role,
    next_role,
)
from reference.controller.raft_messages import (
    INCONSISTENT_VOTER_SET,
    METADATA_TOPIC,
    METADATA_TOPIC_ID,
    POSITION_OUT_OF_RANGE,
    SEND_VERSION,
    SNAPSHOT_NOT_FOUND,
    ApiKey,
    OffsetAndEpoch,
    ReplicaDescription,
    message_for,
)
from reference.controller.snapshot import CommittedBatch, SnapshotId, SnapshotReader
from reference.errors import ErrorCode, Errors, lookup
from reference.protocol.schema import Data
from reference.records.batch import SimpleRecord, build_batch
from reference.records.control import ControlRecordType

__all__ = [
    "METADATA_TOPIC",
    "METADATA_TOPIC_ID",
    "ApiKey",
    "CommittedBatch",
    "NotLeaderError",
    "RaftConfig",
    "RaftListener",
    "RaftNode",
    "RaftStateError",
    "SnapshotId",
    "SnapshotReader",
    "message_for",
]

RETRY_BACKOFF_BASE_MS = 50  # KafkaRaftClient's base for the binary exponential election backoff
MAX_FETCH_SIZE_BYTES = 8 * 1024 * 1024  # KafkaRaftClient.MAX_FETCH_SIZE_BYTES
MAX_SNAPSHOT_CHUNK_BYTES = 8 * 1024 * 1024
FETCH_MAX_WAIT_MS = 500  # KafkaRaftClient's fetchMaxWaitMs
_FETCH_WATCH_KEY = "metadata-log"  # purgatory key of parked Fetches


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
class _SnapshotDownload:
    snapshot_id: SnapshotId
    content: bytearray = field(default_factory=bytearray)


def _snapshot_of(pair: OffsetAndEpoch) -> SnapshotId:
    return SnapshotId(pair.offset, pair.epoch)


def _pair_of(snapshot_id: SnapshotId) -> OffsetAndEpoch:
    return OffsetAndEpoch(snapshot_id.end_offset, snapshot_id.epoch)


class RaftNode:
    """One KRaft voter, or an observer when ``node_id`` is not in ``voters``; see the module
    docstring for the rules it keeps."""

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
        if not voters:
            raise ValueError("a Raft node needs at least one voter to replicate from")
        self.node_id = node_id
        self.voters = dict(voters)
        self.is_voter = node_id in voters  # False: an observer (rule 10)
        self._next_voter_index = 0  # an observer asks the voters in turn, starting here
        self.cluster_id = cluster_id
        self.outbox = outbox
        self.config = config or RaftConfig()
        self.listener = listener
        self.rng = rng or random.Random()
        self._clock = ManualClock(now_ms)
        self.metadata_log = MetadataLog(log_dir, self.config.log_config, self._clock)
        self.log = self.metadata_log.log  # the PartitionLog of __cluster_metadata-0
        self.directory = self.metadata_log.directory
        self._store = FileQuorumStateStore(self.directory / QUORUM_STATE_FILE, list(voters))
        self._purgatory = Purgatory()
        self._waking_fetches = False
        self._wake_fetches_again = False
        self._in_flight: dict[int, OutboundRequest] = {}
        self._sent_at: dict[int, int] = {}  # when the request in flight to each node left
        self._retry_after: dict[int, int] = {}
        self._generation = 0  # bumped at every transition; stale answers only teach epochs
        self._election = _Election()
        self._deadline = now_ms  # the role's timer: election, fetch, check-quorum or resign
        self._has_fetched_from_leader = False
        self._leader_state: LeaderState | None = None
        self._acknowledged: set[int] = set()  # voters that answered our EndQuorumEpoch (Resigned)
        self._preferred_successors: list[int] = []
        self._download: _SnapshotDownload | None = None
        self._last_notified: tuple[int | None, int] | None = None
        self._last_written: ElectionState | None = None
        self._high_watermark = self.log.high_watermark  # the latest snapshot's end, or the log start
        self._high_watermark_known = False  # see high_watermark_known
        self._next_commit_offset = self._high_watermark
        snapshot = self.metadata_log.load_latest_snapshot()
        if snapshot is not None and self.listener is not None:
            self.listener.handle_load_snapshot(snapshot)
        self._role, self._epoch, self._leader_id, self._voted_id = Role.UNATTACHED, 0, NO_LEADER, NOT_VOTED
        self._initialize_role(now_ms)

    # -- start (rule 7) -------------------------------------------------------------------------------

    def _initialize_role(self, now_ms: int) -> None:
        stored = self._store.read()
        log_epoch = self._last_epoch()
        if stored is None or stored.epoch < log_epoch:
            self._enter(Role.UNATTACHED, max(log_epoch, 0), NO_LEADER, NOT_VOTED, now_ms)
        elif not self.is_voter:  # an observer (perhaps a voter once): follow the leader it knew
            following = stored.has_leader and stored.leader_id in self.voters
            role = Role.FOLLOWER if following else Role.UNATTACHED
            self._enter(role, stored.epoch, stored.leader_id if following else NO_LEADER, NOT_VOTED, now_ms)
        elif stored.leader_id == self.node_id:
            self._enter(Role.RESIGNED, stored.epoch, self.node_id, stored.voted_id, now_ms)
        elif stored.has_leader and stored.leader_id in self.voters:
            self._enter(Role.FOLLOWER, stored.epoch, stored.leader_id, stored.voted_id, now_ms)
        elif stored.voted_id == self.node_id:  # a candidate that had not learned of a leader
            self._enter(Role.CANDIDATE, stored.epoch, NO_LEADER, self.node_id, now_ms)
            self._election.granted.add(self.node_id)
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
    def high_watermark_known(self) -> bool:
        """False until this node knows the quorum's high watermark in its current epoch state: as a
        leader, once a majority has reached its log in its epoch (until then its Fetch answers say
        -1, as Kafka's do); as a follower, once a Fetch answer's HW is known and within its own log
        (before that its HW is capped by how far it has replicated, and at start it is only its
        latest snapshot's end).  Kafka's ``RaftClient.highWatermark()`` is empty until then, and
        its ``MetadataLoader`` publishes nothing before reaching it."""
        return self._high_watermark_known

    def _known_high_watermark(self) -> int:
        """The HW as Fetch carries it, either way (a leader's answer, a follower's v18 request): -1
        while it is not known (:attr:`high_watermark_known`)."""
        return self._high_watermark if self._high_watermark_known else -1

    @property
    def delivered_end_offset(self) -> int:
        """The listener has been given every committed data batch below this offset.  It trails
        the high watermark while :meth:`RaftListener.handle_commit` calls are under way (a listener
        that reads the HW inside ``handle_commit`` would see commits it has not been given yet)."""
        return self._next_commit_offset

    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    @property
    def latest_snapshot_id(self) -> SnapshotId | None:
        return self.metadata_log.latest_snapshot

    @property
    def majority(self) -> int:
        return len(self.voters) // 2 + 1

    def _last_epoch(self) -> int:
        return self.metadata_log.last_fetched_epoch()

    def _end_offset(self) -> OffsetAndEpoch:
        """(log end offset, last epoch): what Vote compares."""
        return self.metadata_log.end_offset()

    def _remote_voters(self) -> list[int]:
        return sorted(voter for voter in self.voters if voter != self.node_id)

    # -- transitions -------------------------------------------------------------------------------------

    def _transition(self, event: Event, now_ms: int, *, epoch: int | None = None, leader_id: int = NO_LEADER,
                    voted_id: int | None = None) -> None:
        """Apply ``event``: the table picks the role, the caller gives the new election state."""
        role = next_role(self._role, event, observer=not self.is_voter)
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
        self._high_watermark_known = False  # each epoch state learns the HW anew (Kafka's EpochState)
        self._generation += 1
        self._in_flight.clear()
        self._retry_after.clear()
        self._election = _Election()
        self._download = None
        self._leader_state = None
        self._acknowledged = set()
        if role is not Role.RESIGNED:  # Kafka's Resigned is a soft state: a restart re-derives it
            self._persist()
        if role is Role.UNATTACHED and (len(self.voters) == 1 or not self.is_voter):
            self._deadline = now_ms  # a lone voter elects itself at once; an observer asks who leads
        elif role in (Role.UNATTACHED, Role.PROSPECTIVE, Role.CANDIDATE, Role.RESIGNED):
            self._deadline = now_ms + self._random_election_timeout()
        elif role is Role.FOLLOWER:
            self._deadline = now_ms + self.config.fetch_timeout_ms
            self._has_fetched_from_leader = False
        if was_leader:
            self._wake_parked_fetches(now_ms)  # parked fetches answer NOT_LEADER_OR_FOLLOWER now
        if role is not Role.LEADER:  # a new leader announces itself once its state is set up
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
        if not self.is_voter:
            self._time_out_requests(now_ms)
        poll_by_role = _POLL_BY_ROLE if self.is_voter else _OBSERVER_POLL_BY_ROLE
        poll_by_role[self._role](self, now_ms)

    def next_deadline(self) -> int | None:
        """The earliest time :meth:`poll` has something to do (None: nothing scheduled)."""
        if self._leader_state is not None:
            deadlines = [self._leader_state.check_quorum_deadline]
        elif self.is_voter or self._deadline > self._clock.now_ms:
            deadlines = [self._deadline]  # the election, fetch or resignation timer
        elif not self._in_flight and any(voter not in self._retry_after for voter in self.voters):
            deadlines = [self._clock.now_ms]  # an observer searching for the leader can ask a voter now
        else:
            deadlines = []  # a searching observer waits for an answer or a backoff (below)
        if self._election.backing_off_until is not None:
            deadlines.append(self._election.backing_off_until)
        deadlines.extend(self._retry_after.values())
        parked = self._purgatory.next_deadline()
        if parked is not None:
            deadlines.append(parked)
        if not self.is_voter:
            deadlines.extend(self._sent_at[node] + self.config.request_timeout_ms for node in self._in_flight)
        return min(deadlines, default=None)

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

    def _time_out_requests(self, now_ms: int) -> None:
        """An observer fails its own requests after ``controller.quorum.request.timeout.ms`` (Kafka's
        ``RequestManager.hasRequestTimedOut``): a voter has its fetch timer to leave a silent leader,
        an observer only this, or it would wait forever on a Fetch parked by a leader that died.  A
        late answer to a failed request is ignored (the outbox's once-only rule)."""
        for destination, request in list(self._in_flight.items()):
            if now_ms - self._sent_at[destination] >= self.config.request_timeout_ms:
                request.fail(TimeoutError(f"no answer from node {destination} within the request timeout"), now_ms)

    def _poll_observer_unattached(self, now_ms: int) -> None:
        self._ask_any_voter(now_ms)

    def _poll_observer_follower(self, now_ms: int) -> None:
        """Kafka's ``pollFollowerAsObserver``: fetch from the leader while it answers; once it has
        been silent for the fetch timeout, or its last request failed, ask the voters who leads."""
        leader = self._leader_id
        if now_ms >= self._deadline or self._retry_after.get(leader, 0) > now_ms:
            self._ask_any_voter(now_ms)
        elif self._can_send(leader, now_ms):
            if self._download is not None:
                self._send_fetch_snapshot(now_ms)
            else:
                self._send_fetch(now_ms)

    def _poll_leader(self, now_ms: int) -> None:
        state = self._leader_state
        assert state is not None
        if now_ms >= state.check_quorum_deadline:  # no majority fetched within the check-quorum timeout
            self._resign(now_ms, preferred=[])
            return
        for voter in self._remote_voters():
            if voter not in state.acknowledged and self._can_send(voter, now_ms):
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
                body = messages.vote_request(self.cluster_id, voter, self.node_id, self._epoch, self._end_offset(), pre_vote)
                self._send(voter, ApiKey.VOTE, body, now_ms, self._handle_vote_response)

    def _handle_vote_request(self, version: int, body: Data, now_ms: int) -> Data:
        partition, top_error = messages.single_partition(body, self.cluster_id)
        if top_error is not None:
            return messages.top_level_error(ApiKey.VOTE, top_error)
        candidate_id, candidate_epoch = partition.replica_id, partition.replica_epoch
        pre_vote = version >= 2 and bool(partition.pre_vote)
        candidate_end = OffsetAndEpoch(partition.last_offset, partition.last_offset_epoch)
        if (candidate_end.offset < 0 or candidate_end.epoch < 0 or candidate_end.epoch > candidate_epoch
                or (not pre_vote and candidate_end.epoch == candidate_epoch)):
            return self._vote_response(Errors.INVALID_REQUEST, False)
        if candidate_epoch < self._epoch:
            return self._vote_response(Errors.FENCED_LEADER_EPOCH, False)
        if not self.is_voter or candidate_id not in self.voters or candidate_id == self.node_id:
            return self._vote_response(INCONSISTENT_VOTER_SET, False)
        if not pre_vote and candidate_epoch > self._epoch:
            self._transition(Event.HIGHER_EPOCH, now_ms, epoch=candidate_epoch)
        own = self._end_offset()
        log_up_to_date = (candidate_end.epoch, candidate_end.offset) >= (own.epoch, own.offset)
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
        return messages.vote_response(error, self._leader_id, self._epoch, granted)

    def _handle_vote_response(self, body: Data, now_ms: int, generation: int, source: int) -> None:
        partition = messages.response_partition(body)
        if partition is None:
            return
        error = lookup(partition.error_code)
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
        """Set up the leader's state, tell the listener (the log ends at the epoch start offset,
        where the LeaderChangeMessage now goes), append it, announce the epoch to the voters."""
        self._leader_state = LeaderState(
            local_id=self.node_id, voters=sorted(self.voters), epoch=self._epoch,
            epoch_start_offset=self.log.log_end_offset,
            check_quorum_deadline=now_ms + self.config.check_quorum_timeout_ms,
            check_quorum_timeout_ms=self.config.check_quorum_timeout_ms,
        )
        self._notify_leader_change()
        message = leader_change_message(self.node_id, list(self.voters), granting)
        batch = build_control_batch(
            ControlRecordType.LEADER_CHANGE, message, timestamp=now_ms, partition_leader_epoch=self._epoch
        )
        self.log.append_as_leader(batch, self._epoch)
        self.log.flush()  # the leader counts its own log end toward the HW only once it is durable
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
        # Kafka's KafkaRaftClient flushes the leader's log before its own end offset counts toward
        # the majority: a voter that lost power must not have counted records it no longer holds.
        self.log.flush()
        self._update_leader_high_watermark(now_ms)
        self._wake_parked_fetches(now_ms)
        return info.last_offset

    def resign(self, now_ms: int) -> None:
        """Graceful shutdown of a leader: Resigned, EndQuorumEpoch to the others (rule 6)."""
        self._clock.now_ms = now_ms
        if self._role is not Role.LEADER or self._leader_state is None:
            raise NotLeaderError(self.node_id, self.leader_id, self._epoch)
        self._resign(now_ms, preferred=self._leader_state.preferred_successors())

    def _resign(self, now_ms: int, preferred: list[int]) -> None:
        self._preferred_successors = preferred
        self._transition(Event.RESIGN, now_ms, leader_id=self.node_id, voted_id=self._voted_id)
        for voter in self._remote_voters():
            if self._can_send(voter, now_ms):
                self._send_end_quorum_epoch(voter, now_ms)

    def _update_leader_high_watermark(self, now_ms: int) -> None:
        """Rule 3: the offset a majority of voters has reached, once past the epoch start offset."""
        assert self._leader_state is not None
        candidate = self._leader_state.majority_offset(self.log.log_end_offset)
        if candidate is not None and candidate > self._high_watermark:
            self._high_watermark_known = True
            self._set_high_watermark(candidate)
            self._wake_parked_fetches(now_ms)

    def _set_high_watermark(self, offset: int) -> None:
        if offset <= self._high_watermark:
            return
        self._high_watermark = offset
        self.log.update_high_watermark(offset)
        self._deliver_commits()

    def _send_begin_quorum_epoch(self, voter: int, now_ms: int) -> None:
        body = messages.begin_quorum_epoch_request(self.cluster_id, voter, self.node_id, self._epoch)
        self._send(voter, ApiKey.BEGIN_QUORUM_EPOCH, body, now_ms, self._handle_begin_quorum_epoch_response)

    def _handle_begin_quorum_epoch_request(self, version: int, body: Data, now_ms: int) -> Data:
        partition, top_error = messages.single_partition(body, self.cluster_id)
        if top_error is not None:
            return messages.top_level_error(ApiKey.BEGIN_QUORUM_EPOCH, top_error)
        leader_id, leader_epoch = partition.leader_id, partition.leader_epoch
        if leader_epoch < self._epoch:
            return self._quorum_epoch_response(ApiKey.BEGIN_QUORUM_EPOCH, Errors.FENCED_LEADER_EPOCH)
        if not self.is_voter or leader_id not in self.voters or leader_id == self.node_id:
            return self._quorum_epoch_response(ApiKey.BEGIN_QUORUM_EPOCH, INCONSISTENT_VOTER_SET)
        self._maybe_transition(leader_id, leader_epoch, now_ms)
        return self._quorum_epoch_response(ApiKey.BEGIN_QUORUM_EPOCH, Errors.NONE)

    def _quorum_epoch_response(self, api_key: ApiKey, error: ErrorCode) -> Data:
        return messages.quorum_epoch_response(api_key, error, self._leader_id, self._epoch)

    def _handle_begin_quorum_epoch_response(self, body: Data, now_ms: int, generation: int, source: int) -> None:
        partition = messages.response_partition(body)
        if partition is None:
            return
        error = lookup(partition.error_code)
        if self._handle_common_response(error, partition.leader_id, partition.leader_epoch, now_ms) is not None:
            return
        if generation == self._generation and self._leader_state is not None and error is Errors.NONE:
            self._leader_state.acknowledged.add(source)

    def _send_end_quorum_epoch(self, voter: int, now_ms: int) -> None:
        body = messages.end_quorum_epoch_request(self.cluster_id, self.node_id, self._epoch, self._preferred_successors)
        self._send(voter, ApiKey.END_QUORUM_EPOCH, body, now_ms, self._handle_end_quorum_epoch_response)

    def _handle_end_quorum_epoch_request(self, version: int, body: Data, now_ms: int) -> Data:
        partition, top_error = messages.single_partition(body, self.cluster_id)
        if top_error is not None:
            return messages.top_level_error(ApiKey.END_QUORUM_EPOCH, top_error)
        leader_id, leader_epoch = partition.leader_id, partition.leader_epoch
        if leader_epoch < self._epoch:
            return self._quorum_epoch_response(ApiKey.END_QUORUM_EPOCH, Errors.FENCED_LEADER_EPOCH)
        if not self.is_voter or leader_id not in self.voters:
            return self._quorum_epoch_response(ApiKey.END_QUORUM_EPOCH, INCONSISTENT_VOTER_SET)
        self._maybe_transition(leader_id, leader_epoch, now_ms)
        if self._role is Role.FOLLOWER and self._leader_id == leader_id:
            preferred = messages.preferred_successors(partition, version)
            self._deadline = min(self._deadline, now_ms + self._end_epoch_backoff(preferred))
            # The leader said it is gone: a pre-vote need no longer be refused on its account.
            self._has_fetched_from_leader = False
        return self._quorum_epoch_response(ApiKey.END_QUORUM_EPOCH, Errors.NONE)

    def _handle_end_quorum_epoch_response(self, body: Data, now_ms: int, generation: int, source: int) -> None:
        partition = messages.response_partition(body)
        if partition is None:
            return
        error = lookup(partition.error_code)
        if self._handle_common_response(error, partition.leader_id, partition.leader_epoch, now_ms) is not None:
            return
        if generation == self._generation and self._role is Role.RESIGNED and error is Errors.NONE:
            self._acknowledged.add(source)

    # -- Fetch, leader side (rule 4) ----------------------------------------------------------------------

    def _handle_fetch_request(self, version: int, body: Data, now_ms: int) -> Data | Pending:
        partition, top_error = messages.fetch_partition(body, version, self.cluster_id)
        if top_error is not None:
            return messages.top_level_error(ApiKey.FETCH, top_error)
        replica_id = messages.fetch_replica_id(body, version)
        if (body.max_wait_ms < 0 or partition.fetch_offset < 0 or partition.last_fetched_epoch < 0
                or partition.last_fetched_epoch > partition.current_leader_epoch):
            return self._fetch_error(Errors.INVALID_REQUEST)
        answer = self._try_complete_fetch(replica_id, partition, now_ms)
        data = answer.responses[0].partitions[0]
        # KIP-1166: a follower that does not know the HW this answer carries gets it at once, not
        # after MaxWaitMs (Fetch v18 sends the follower's HW; before v18 it reads as Long.MAX_VALUE).
        if (data.error_code != 0 or data.records or body.max_wait_ms == 0
                or messages.diverging_epoch(data) is not None or messages.snapshot_id(data) is not None
                or partition.high_watermark < data.high_watermark):
            return answer
        parked_high_watermark, parked_generation = self._high_watermark, self._generation

        def try_complete(now: int, expired: bool) -> Data | None:
            changed = (self._generation != parked_generation or self._high_watermark != parked_high_watermark
                       or self.log.log_end_offset > partition.fetch_offset)
            if expired or changed:
                return self._try_complete_fetch(replica_id, partition, now)
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

    def _validate_leader_only(self, request_epoch: int) -> ErrorCode | None:
        """Kafka's ``validateLeaderOnlyRequest``."""
        if request_epoch < self._epoch:
            return Errors.FENCED_LEADER_EPOCH
        if request_epoch > self._epoch:
            return Errors.UNKNOWN_LEADER_EPOCH
        if self._role is not Role.LEADER:
            return Errors.NOT_LEADER_OR_FOLLOWER
        return None

    def _fetch_error(self, error: ErrorCode) -> Data:
        return messages.fetch_response(error, self._leader_id, self._epoch, log_start_offset=self.log.log_start_offset)

    def _try_complete_fetch(self, replica_id: int, partition: Data, now_ms: int) -> Data:
        error = self._validate_leader_only(partition.current_leader_epoch)
        if error is not None:
            return self._fetch_error(error)
        fetch_offset = partition.fetch_offset
        kind, offset_and_epoch = self.metadata_log.validate_offset_and_epoch(fetch_offset, partition.last_fetched_epoch)
        records = b""
        if kind == VALID:
            max_bytes = max(1, min(partition.partition_max_bytes, MAX_FETCH_SIZE_BYTES))
            records = self.log.read(fetch_offset, max_bytes).records
            self._update_replica_state(replica_id, fetch_offset, now_ms)
        return messages.fetch_response(
            Errors.NONE, self._leader_id, self._epoch,
            high_watermark=self._known_high_watermark(),
            log_start_offset=self.log.log_start_offset, records=records,
            diverging=offset_and_epoch if kind == DIVERGING else None,
            snapshot=offset_and_epoch if kind == SNAPSHOT else None,
        )

    def _update_replica_state(self, replica_id: int, fetch_offset: int, now_ms: int) -> None:
        state = self._leader_state
        if state is None or replica_id < 0 or replica_id == self.node_id:
            return
        if state.update_replica(replica_id, fetch_offset, self.log.log_end_offset, now_ms):
            self._update_leader_high_watermark(now_ms)

    # -- Fetch, follower side (rule 4) --------------------------------------------------------------------

    def _send_fetch(self, now_ms: int, destination: int | None = None) -> None:
        """Fetch from the leader, or (an observer looking for it) from ``destination``."""
        body = messages.fetch_request(
            self.cluster_id, self.node_id, self._epoch, self.log.log_end_offset, self._last_epoch(),
            self.log.log_start_offset, self.config.fetch_max_wait_ms, MAX_FETCH_SIZE_BYTES,
            high_watermark=self._known_high_watermark(),
        )
        if destination is None:
            self._send(self._leader_id, ApiKey.FETCH, body, now_ms, self._handle_fetch_response)
        else:
            self._send(destination, ApiKey.FETCH, body, now_ms, self._handle_any_voter_fetch_response)

    def _ask_any_voter(self, now_ms: int) -> None:
        """Rule 10, Kafka's ``maybeSendAnyVoterFetch``: with nothing in flight, Fetch from the next
        voter in turn that is not backing off."""
        if self._in_flight:
            return
        voters = sorted(self.voters)
        for turn in range(len(voters)):
            voter = voters[(self._next_voter_index + turn) % len(voters)]
            if self._can_send(voter, now_ms):
                self._next_voter_index = (self._next_voter_index + turn + 1) % len(voters)
                self._send_fetch(now_ms, destination=voter)
                return

    def _handle_any_voter_fetch_response(self, body: Data, now_ms: int, generation: int, source: int) -> None:
        """A voter that does not lead answers at once, with the leader it knows: ask it again only
        after ``controller.quorum.retry.backoff.ms``, so the search does not spin."""
        partition = messages.fetch_response_partition(body)
        if partition is not None and partition.error_code != Errors.NONE.code:
            self._retry_after[source] = now_ms + self.config.retry_backoff_ms
        self._handle_fetch_response(body, now_ms, generation, source)

    def _handle_fetch_response(self, body: Data, now_ms: int, generation: int, source: int) -> None:
        partition = messages.fetch_response_partition(body)
        if partition is None:
            self._retry_after[source] = now_ms + self.config.retry_backoff_ms
            return
        error = lookup(partition.error_code)
        leader = partition.current_leader
        if self._handle_common_response(error, leader.leader_id, leader.leader_epoch, now_ms) is not None:
            return
        if generation != self._generation or self._role is not Role.FOLLOWER or source != self._leader_id:
            return
        if error is not Errors.NONE:
            self._retry_after[source] = now_ms + self.config.retry_backoff_ms
            return
        diverging, snapshot = messages.diverging_epoch(partition), messages.snapshot_id(partition)
        if diverging is not None:
            self._truncate_to_diverging(diverging)
        elif snapshot is not None:
            self._on_snapshot_id(_snapshot_of(snapshot), source, now_ms)
        else:
            if partition.records:
                self.log.append_as_follower(partition.records)
                if self.node_id in self.voters:
                    # Durable before the next Fetch reports the new end offset to the leader, which
                    # counts it toward the high watermark (Kafka flushes a voter's log here too).
                    self.log.flush()
            if partition.high_watermark >= 0:
                # Known once our log holds everything the leader has committed: a HW capped by our
                # own shorter log is only how far we have replicated.
                self._high_watermark_known = self._high_watermark_known or \
                    partition.high_watermark <= self.log.log_end_offset
                self._set_high_watermark(min(partition.high_watermark, self.log.log_end_offset))
        self._has_fetched_from_leader = True
        self._deadline = now_ms + self.config.fetch_timeout_ms

    def _truncate_to_diverging(self, diverging: OffsetAndEpoch) -> None:
        """Truncate to where this log and the leader's agree -- never below the high watermark."""
        target = self.metadata_log.truncation_offset(diverging)
        if target < self._high_watermark:
            raise RaftStateError(
                f"node {self.node_id}: leader asked to truncate to {target}, below the high watermark {self._high_watermark}"
            )
        self.log.truncate_to(target)

    # -- snapshots (rule 8) -----------------------------------------------------------------------------------

    def create_snapshot(self, end_offset: int, records: list[bytes], now_ms: int) -> SnapshotId:
        """Write the snapshot of the committed state below ``end_offset`` (at or below the HW, on a
        batch boundary: a committed batch's last offset + 1); its epoch is the epoch of the record
        at ``end_offset - 1``.  Raises ``ValueError`` for an offset above the HW or not above the
        log start offset."""
        self._clock.now_ms = now_ms
        if end_offset > self._high_watermark:
            raise ValueError(f"snapshot end offset {end_offset} is above the high watermark {self._high_watermark}")
        if end_offset <= self.log.log_start_offset:
            raise ValueError(f"snapshot end offset {end_offset} is not above the log start offset {self.log.log_start_offset}")
        return self.metadata_log.create_snapshot(end_offset, records, now_ms)

    def delete_log_before_latest_snapshot(self) -> int:
        """Drop the log below the latest snapshot (Kafka does it under ``metadata.max.retention.*``);
        returns the new log start offset."""
        return self.metadata_log.delete_before_latest_snapshot()

    def _on_snapshot_id(self, snapshot_id: SnapshotId, source: int, now_ms: int) -> None:
        """The leader answered a Fetch with the snapshot to start from."""
        latest = self.metadata_log.latest_snapshot
        if snapshot_id == latest and self.log.log_end_offset == snapshot_id.end_offset:
            self._retry_after[source] = now_ms + self.config.retry_backoff_ms  # already installed
        elif snapshot_id == latest:  # already here: install our own copy
            content = self.metadata_log.snapshot_bytes(snapshot_id)
            self._install_snapshot(_SnapshotDownload(snapshot_id, bytearray(content)))
        else:
            self._download = _SnapshotDownload(snapshot_id)

    def _send_fetch_snapshot(self, now_ms: int) -> None:
        assert self._download is not None
        body = messages.fetch_snapshot_request(
            self.cluster_id, self.node_id, self._epoch, _pair_of(self._download.snapshot_id),
            len(self._download.content), MAX_SNAPSHOT_CHUNK_BYTES,
        )
        self._send(self._leader_id, ApiKey.FETCH_SNAPSHOT, body, now_ms, self._handle_fetch_snapshot_response)

    def _handle_fetch_snapshot_request(self, version: int, body: Data, now_ms: int) -> Data:
        partition, top_error = messages.single_partition(body, self.cluster_id, "name")
        if top_error is not None:
            return messages.top_level_error(ApiKey.FETCH_SNAPSHOT, top_error)
        wanted = OffsetAndEpoch(partition.snapshot_id.end_offset, partition.snapshot_id.epoch)
        error = self._validate_leader_only(partition.current_leader_epoch)
        if error is None and not self.metadata_log.has_snapshot(_snapshot_of(wanted)):
            error = SNAPSHOT_NOT_FOUND
        if error is not None:
            return messages.fetch_snapshot_response(error, self._leader_id, self._epoch, wanted)
        chunk, size = self.metadata_log.read_snapshot_chunk(
            _snapshot_of(wanted), max(partition.position, 0), min(body.max_bytes, MAX_SNAPSHOT_CHUNK_BYTES)
        )
        if partition.position < 0 or partition.position >= size:
            return messages.fetch_snapshot_response(POSITION_OUT_OF_RANGE, self._leader_id, self._epoch, wanted)
        return messages.fetch_snapshot_response(
            Errors.NONE, self._leader_id, self._epoch, wanted, size=size, position=partition.position, chunk=chunk
        )

    def _handle_fetch_snapshot_response(self, body: Data, now_ms: int, generation: int, source: int) -> None:
        partition = messages.response_partition(body, "name")
        if partition is None:
            return
        error = lookup(partition.error_code)
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

    def _install_snapshot(self, download: _SnapshotDownload) -> None:
        """A downloaded snapshot replaces the log below its end offset and the listener's state."""
        end_offset = download.snapshot_id.end_offset
        if end_offset < self._high_watermark:
            raise RaftStateError(f"snapshot {download.snapshot_id} ends below the high watermark {self._high_watermark}")
        reader = self.metadata_log.install_snapshot(download.snapshot_id, bytes(download.content))
        self._download = None
        self._high_watermark = end_offset
        self._next_commit_offset = end_offset
        if self.listener is not None:
            self.listener.handle_load_snapshot(reader)

    # -- DescribeQuorum ---------------------------------------------------------------------------------

    def _handle_describe_quorum_request(self, version: int, body: Data, now_ms: int) -> Data:
        if not messages.is_metadata_partition_only(body):
            return messages.describe_quorum_unknown_partitions(body)
        state = self._leader_state
        if self._role is not Role.LEADER or state is None:
            return messages.describe_quorum_response(Errors.NOT_LEADER_OR_FOLLOWER, self.voters)

        def row(replica_id: int, progress: ReplicaProgress) -> ReplicaDescription:
            return ReplicaDescription(replica_id, progress.end_offset, progress.last_fetch_ms, progress.last_caught_up_ms)

        own = ReplicaDescription(self.node_id, self.log.log_end_offset, now_ms, now_ms)
        return messages.describe_quorum_response(
            Errors.NONE, self.voters, leader_id=self.node_id, epoch=self._epoch, high_watermark=self._high_watermark,
            voters=[own] + [row(voter, progress) for voter, progress in sorted(state.replicas.items())],
            observers=[row(observer, progress) for observer, progress in sorted(state.observers.items())],
        )

    # -- requests in ----------------------------------------------------------------------------------------

    def handle_request(self, api_key: int, version: int, body: Data, now_ms: int) -> Data | Pending:
        """Answer a request from another node (or an admin, for DescribeQuorum); ``ValueError`` for
        an API the Raft layer does not serve."""
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

    # -- requests out --------------------------------------------------------------------------------------

    def _can_send(self, destination: int, now_ms: int) -> bool:
        """One request in flight per destination (Kafka's RequestManager), none while backing off."""
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
        self._sent_at[destination] = now_ms
        self.outbox.send(request)

    def _handle_common_response(self, error: ErrorCode, leader_id: int, epoch: int, now_ms: int) -> bool | None:
        """Kafka's ``maybeHandleCommonResponse``: True when the answer was fully handled here, None
        when the API's own handler should look at it."""
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
        for batch in self.metadata_log.batches(self._next_commit_offset, self._high_watermark):
            if batch.last_offset < self._next_commit_offset:
                continue  # delivered already, by a commit the listener's own append set off
            if not batch.is_control and self.listener is not None:
                values = tuple(record.value or b"" for record in batch.records)
                self.listener.handle_commit(
                    CommittedBatch(batch.base_offset, batch.partition_leader_epoch, values, batch.max_timestamp)
                )
            self._next_commit_offset = max(self._next_commit_offset, batch.last_offset + 1)

    # -- invariants -----------------------------------------------------------------------------------------

    def check_valid(self) -> None:
        """Assert the invariants of the module docstring."""
        role = self._role
        assert self._epoch >= 0
        if not self.is_voter:
            assert role in OBSERVER_TRANSITIONS, f"an observer is Unattached or Follower, not {role.value}"
            assert self._voted_id == NOT_VOTED, "an observer never votes"
        if role is Role.LEADER:
            assert self._leader_id == self.node_id and self._voted_id == self.node_id, "a leader voted for itself"
            assert self._leader_state is not None and self._leader_state.epoch == self._epoch
            assert self.log.latest_epoch == self._epoch, "a leader's log ends in its own epoch"
            assert self._leader_state.epoch_start_offset < self.log.log_end_offset, "the LeaderChangeMessage is in the log"
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
        self.metadata_log.check_valid()

    def close(self) -> None:
        """Clean shutdown of the log files (the quorum-state file is always current)."""
        self.metadata_log.close()

    def __repr__(self) -> str:
        kind = "" if self.is_voter else " observer"
        return (f"<RaftNode {self.node_id}{kind} {self._role.value} epoch={self._epoch} leader={self.leader_id} "
                f"voted={self.voted_id} LEO={self.log.log_end_offset} HW={self._high_watermark}>")


_POLL_BY_ROLE: dict[Role, Callable[[RaftNode, int], None]] = {
    Role.UNATTACHED: RaftNode._poll_unattached,
    Role.PROSPECTIVE: RaftNode._poll_prospective,
    Role.CANDIDATE: RaftNode._poll_candidate,
    Role.LEADER: RaftNode._poll_leader,
    Role.FOLLOWER: RaftNode._poll_follower,
    Role.RESIGNED: RaftNode._poll_resigned,
}

_OBSERVER_POLL_BY_ROLE: dict[Role, Callable[[RaftNode, int], None]] = {
    Role.UNATTACHED: RaftNode._poll_observer_unattached,
    Role.FOLLOWER: RaftNode._poll_observer_follower,
}
