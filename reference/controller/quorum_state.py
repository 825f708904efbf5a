"""The roles of a KRaft voter, the table of legal role changes, and the ``quorum-state`` file.

Theory of operation
-------------------
Mirrors Kafka's ``QuorumState`` and ``FileQuorumStateStore`` (KIP-595, with KIP-996's Prospective
role).  A voter is always in exactly one :class:`Role`, in one epoch:

* ``UNATTACHED`` -- knows an epoch but no leader; may have cast its one binding vote of the epoch.
* ``PROSPECTIVE`` -- its fetch or election timer expired; it asks for *pre-votes* without bumping
  the epoch (KIP-996), so a node cut off from a healthy leader cannot disturb it.
* ``CANDIDATE`` -- a majority granted pre-votes; it bumped the epoch, voted for itself, asks for votes.
* ``LEADER`` -- a majority voted for it in this epoch; it appends and decides the high watermark.
* ``FOLLOWER`` -- knows the leader of its epoch and fetches from it.
* ``RESIGNED`` -- was leader of this epoch and stepped down (graceful shutdown, lost quorum, or a
  restart: a leader always restarts resigned, so it can neither vote nor lead twice in one epoch).

A node outside ``controller.quorum.voters`` (a ``process.roles=broker`` node) is an *observer*
(Kafka's ``QuorumState.isObserver``): it replicates the log but never votes nor stands, so it is
only ever ``UNATTACHED`` (looking for the leader) or ``FOLLOWER``; its table is
:data:`OBSERVER_TRANSITIONS`, the voters' table without the election rows.

The transitions are data (:data:`TRANSITIONS`, role x event -> role), as in Kafka's ``QuorumState``
comment.  The node decides *which* event happened; this table decides whether the change is legal.
An illegal one raises :class:`IllegalTransitionError` naming the role and the event: it is always a
bug in the caller, never a remote node's fault.

Rules the node keeps around the table (same words as ``RaftNode.check_valid``):

1. The epoch never decreases; ``HIGHER_EPOCH`` and ``LEADER_DISCOVERED`` may raise it, only
   ``PRE_VOTE_WON`` adds exactly one, every other event keeps it.
2. One binding vote per epoch: ``voted_id`` is set once per epoch and written to ``quorum-state``
   *before* the Vote response leaves the node.
3. A leader has voted for itself; a follower's leader is another voter.

The ``quorum-state`` file
-------------------------
One line of JSON in the partition directory (``__cluster_metadata-0/quorum-state``), Kafka's
``QuorumStateData`` (kafka-raft ``common/message/QuorumStateData.json``) at data version 0, the
version Kafka writes with ``kraft.version`` 0 (a static voter set)::

    {"clusterId":"","leaderId":1,"leaderEpoch":5,"votedId":-1,"appliedOffset":0,
     "currentVoters":[{"voterId":1},{"voterId":2},{"voterId":3}],"data_version":0}

An observer writes the same document (Kafka's ``QuorumState`` persists every durable transition,
observer or not): the epoch and leader it knows, ``votedId`` -1, and ``currentVoters`` the
configured voter set, which does not include the observer itself.

Version 1 (``kraft.version`` 1) drops ``clusterId``/``appliedOffset``/``currentVoters`` and adds
``votedDirectoryId``; it is read, never written.  A write goes to ``quorum-state.tmp``, is
fsynced and renamed over the file, so a crash leaves the old or the new state, never half of one.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from pathlib import Path

from reference import durability

QUORUM_STATE_FILE = "quorum-state"
NO_LEADER = -1  # Kafka's sentinel for "no leader known" and "not voted"
NOT_VOTED = -1
QUORUM_STATE_DATA_VERSION = 0
SUPPORTED_DATA_VERSIONS = (0, 1)


class Role(enum.Enum):
    UNATTACHED = "Unattached"
    PROSPECTIVE = "Prospective"
    CANDIDATE = "Candidate"
    LEADER = "Leader"
    FOLLOWER = "Follower"
    RESIGNED = "Resigned"


class Event(enum.Enum):
    HIGHER_EPOCH = "learned of an election with a higher epoch, leader unknown"
    LEADER_DISCOVERED = "learned the leader of the current or a higher epoch"
    VOTE_GRANTED = "granted its binding vote to a candidate"
    FETCH_TIMEOUT = "heard nothing from the leader for controller.quorum.fetch.timeout.ms"
    ELECTION_TIMEOUT = "its election timer expired"
    ELECTION_LOST = "lost or timed out an election and knows no leader"
    RETURN_TO_LEADER = "lost or timed out a pre-vote and remembers the leader of its epoch"
    PRE_VOTE_WON = "a majority granted its pre-vote"
    VOTE_WON = "a majority granted its vote"
    RESIGN = "stepped down (graceful shutdown or lost the quorum)"


_U, _P, _C, _L, _F, _R = Role.UNATTACHED, Role.PROSPECTIVE, Role.CANDIDATE, Role.LEADER, Role.FOLLOWER, Role.RESIGNED

# role -> event -> new role.  Read as Kafka's QuorumState comment: "Follower transitions to
# Prospective after expiration of the fetch timeout", and so on.
TRANSITIONS: dict[Role, dict[Event, Role]] = {
    _U: {
        Event.HIGHER_EPOCH: _U,
        Event.VOTE_GRANTED: _U,
        Event.ELECTION_TIMEOUT: _P,
        Event.LEADER_DISCOVERED: _F,
    },
    _P: {
        Event.HIGHER_EPOCH: _U,
        Event.VOTE_GRANTED: _P,
        Event.PRE_VOTE_WON: _C,
        Event.ELECTION_LOST: _U,
        Event.RETURN_TO_LEADER: _F,
        Event.LEADER_DISCOVERED: _F,
    },
    _C: {
        Event.HIGHER_EPOCH: _U,
        Event.ELECTION_TIMEOUT: _P,
        Event.ELECTION_LOST: _P,
        Event.VOTE_WON: _L,
        Event.LEADER_DISCOVERED: _F,
    },
    _L: {
        Event.HIGHER_EPOCH: _U,
        Event.RESIGN: _R,
        Event.LEADER_DISCOVERED: _F,  # only with a higher epoch: one leader per epoch
    },
    _F: {
        Event.HIGHER_EPOCH: _U,
        Event.FETCH_TIMEOUT: _P,
        Event.LEADER_DISCOVERED: _F,  # only with a higher epoch
    },
    _R: {
        Event.HIGHER_EPOCH: _U,
        Event.ELECTION_TIMEOUT: _U,  # moves to the next epoch, leader unknown
        Event.LEADER_DISCOVERED: _F,  # only with a higher epoch
    },
}


# An observer's table: it learns epochs and leaders from the voters' answers, and that is all.  A
# silent leader does not make it Prospective (it asks the voters who leads instead), so there is no
# FETCH_TIMEOUT row.
OBSERVER_TRANSITIONS: dict[Role, dict[Event, Role]] = {
    _U: {
        Event.HIGHER_EPOCH: _U,
        Event.LEADER_DISCOVERED: _F,
    },
    _F: {
        Event.HIGHER_EPOCH: _U,
        Event.LEADER_DISCOVERED: _F,  # only with a higher epoch
    },
}


class IllegalTransitionError(RuntimeError):
    """A role change the table does not allow (always a bug in the caller)."""

    def __init__(self, role: Role, event: Event) -> None:
        super().__init__(f"illegal transition: {role.value} cannot handle {event.name} ({event.value})")
        self.role = role
        self.event = event


def next_role(role: Role, event: Event, *, observer: bool = False) -> Role:
    """The role after ``event`` in ``role`` (of an observer when ``observer``);
    :class:`IllegalTransitionError` if not in the table."""
    table = OBSERVER_TRANSITIONS if observer else TRANSITIONS
    try:
        return table[role][event]
    except KeyError:
        raise IllegalTransitionError(role, event) from None


# -- the quorum-state file ------------------------------------------------------------------------


@dataclass(frozen=True)
class ElectionState:
    """What survives a restart: the epoch, the leader known in it, the vote cast in it."""

    epoch: int
    leader_id: int = NO_LEADER
    voted_id: int = NOT_VOTED

    @property
    def has_leader(self) -> bool:
        return self.leader_id != NO_LEADER

    @property
    def has_voted(self) -> bool:
        return self.voted_id != NOT_VOTED


class CorruptQuorumStateError(ValueError):
    """The ``quorum-state`` file does not parse or has an unsupported ``data_version``."""


class FileQuorumStateStore:
    """Reads and atomically rewrites ``<partition dir>/quorum-state``."""

    def __init__(self, path: Path, voters: list[int]) -> None:
        self.path = path
        self.voters = sorted(voters)

    def read(self) -> ElectionState | None:
        """The stored election state, or None when the file does not exist yet."""
        if not self.path.exists():
            return None
        line = self.path.read_text(encoding="utf-8").split("\n", 1)[0]
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise CorruptQuorumStateError(f"{self.path}: {error}") from error
        if not isinstance(data, dict) or "data_version" not in data:
            raise CorruptQuorumStateError(f"{self.path}: no data_version field in {line!r}")
        if data["data_version"] not in SUPPORTED_DATA_VERSIONS:
            raise CorruptQuorumStateError(f"{self.path}: data_version {data['data_version']} is not supported")
        return ElectionState(
            epoch=int(data.get("leaderEpoch", -1)),
            leader_id=int(data.get("leaderId", NO_LEADER)),
            voted_id=int(data.get("votedId", NOT_VOTED)),
        )

    def write(self, state: ElectionState) -> None:
        """Write ``state`` durably (tmp file, fsync, rename), at data version 0."""
        document = {
            "clusterId": "",
            "leaderId": state.leader_id,
            "leaderEpoch": state.epoch,
            "votedId": state.voted_id,
            "appliedOffset": 0,
            "currentVoters": [{"voterId": voter} for voter in self.voters],
            "data_version": QUORUM_STATE_DATA_VERSION,
        }
        durability.write_atomically(self.path, json.dumps(document, separators=(",", ":")).encode("utf-8"))
