"""What a consumer reads and where it is: subscription, assignment and each partition's position.

Theory of operation
-------------------
Java's ``SubscriptionState`` as plain data.  A consumer is in one of three modes: nothing, a
*subscription* to topics (the group coordinator assigns partitions, ``subscribe``), or a *manual
assignment* (``assign``); mixing them is the caller's error (Java's ``IllegalStateException``,
here :class:`SubscriptionError`).

Each assigned partition has a fetch state (Java's ``FetchStates``), as a table
(:data:`FETCH_TRANSITIONS`); an illegal move raises :class:`SubscriptionError` naming both:

    INITIALIZING      no position yet: ask the group for the committed offset (OffsetFetch)
    AWAIT_RESET       use auto.offset.reset: ListOffsets earliest (-2) or latest (-1)
    AWAIT_VALIDATION  the leader changed since the position was taken: OffsetForLeaderEpoch
                      checks that the log was not truncated under it (KIP-320)
    FETCHING          the position is valid; Fetch from it

A :class:`Position` is the next offset to read, the leader epoch of the record before it
(``offset_epoch``, -1 when unknown) and the leader epoch the position was last validated
against (``leader_epoch``).  Invariants: only FETCHING partitions are fetched; a position exists
in FETCHING and AWAIT_VALIDATION; paused partitions keep their position but are not fetched;
``pending_revocation`` partitions are neither fetched nor returned by poll.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .cluster import TopicPartition
from .exceptions import LocalProtocolError


class SubscriptionError(LocalProtocolError):
    """The caller mixed subscribe() and assign(), used a partition it is not assigned, or polled
    with neither (Java's ``IllegalStateException``): the application's own mistake."""


class FetchState(enum.Enum):
    INITIALIZING = "INITIALIZING"
    AWAIT_RESET = "AWAIT_RESET"
    AWAIT_VALIDATION = "AWAIT_VALIDATION"
    FETCHING = "FETCHING"


FETCH_TRANSITIONS: dict[FetchState, frozenset[FetchState]] = {
    FetchState.INITIALIZING: frozenset(FetchState),
    FetchState.AWAIT_RESET: frozenset({FetchState.AWAIT_RESET, FetchState.FETCHING, FetchState.AWAIT_VALIDATION}),
    FetchState.AWAIT_VALIDATION: frozenset(FetchState),
    FetchState.FETCHING: frozenset(FetchState),
}


@dataclass(frozen=True)
class Position:
    offset: int
    offset_epoch: int = -1  # the leader epoch of the record at offset - 1, when known
    leader_epoch: int = -1  # the partition's leader epoch when this position was validated


@dataclass
class PartitionState:
    state: FetchState = FetchState.INITIALIZING
    position: Position | None = None
    paused: bool = False
    pending_revocation: bool = False
    high_watermark: int = -1
    last_stable_offset: int = -1
    log_start_offset: int = -1
    preferred_read_replica: int | None = None  # KIP-392
    preferred_read_replica_expires_ms: int = 0
    retry_at_ms: int = 0  # no OffsetFetch/ListOffsets/validation before this time
    request_in_flight: bool = False
    reset_policy: str | None = None  # set by seek_to_beginning/end; else the configured one

    def move_to(self, state: FetchState) -> None:
        if state not in FETCH_TRANSITIONS[self.state]:
            raise SubscriptionError(f"cannot move from {self.state.value} to {state.value}")
        self.state = state

    def seek(self, position: Position, validate: bool = False) -> None:
        self.move_to(FetchState.AWAIT_VALIDATION if validate else FetchState.FETCHING)
        self.position = position
        self.request_in_flight = False
        self.preferred_read_replica = None

    @property
    def fetchable(self) -> bool:
        return self.state is FetchState.FETCHING and not self.paused and not self.pending_revocation


class SubscriptionState:
    """The consumer's subscription and per-partition states (see the module docstring)."""

    def __init__(self) -> None:
        self.topics: frozenset[str] = frozenset()  # subscribe(): the topics of the subscription
        self.manual = False  # assign() was used
        self.assignment: dict[TopicPartition, PartitionState] = {}

    @property
    def subscribed(self) -> bool:
        return bool(self.topics)

    def subscribe(self, topics: frozenset[str]) -> None:
        if self.manual:
            raise SubscriptionError("subscription to topics and manual partition assignment are mutually exclusive")
        self.topics = topics

    def assign_manually(self, partitions: set[TopicPartition]) -> None:
        if self.subscribed:
            raise SubscriptionError("subscription to topics and manual partition assignment are mutually exclusive")
        self.manual = bool(partitions)
        self.set_assignment(partitions)

    def unsubscribe(self) -> None:
        self.topics = frozenset()
        self.manual = False
        self.assignment.clear()

    def set_assignment(self, partitions: set[TopicPartition]) -> None:
        """Keep the states of partitions still assigned; new ones start INITIALIZING."""
        self.assignment = {tp: self.assignment.get(tp) or PartitionState() for tp in sorted(
            partitions, key=lambda tp: (tp.topic, tp.partition))}

    def state(self, tp: TopicPartition) -> PartitionState:
        found = self.assignment.get(tp)
        if found is None:
            raise SubscriptionError(f"no current assignment for partition {tp}")
        return found

    def consumed_positions(self) -> dict[TopicPartition, Position]:
        """What a commit of "everything consumed" commits: each positioned partition's position."""
        return {tp: s.position for tp, s in self.assignment.items() if s.position is not None}
