"""Which ``__consumer_offsets`` partitions this coordinator serves: a small state machine per partition.

Theory of operation
-------------------
In a cluster, the coordinator of a group is the leader of partition
``abs(java_hash(group_id)) % offsets.topic.num.partitions`` of ``__consumer_offsets``.  Kafka's
``CoordinatorRuntime`` keeps one context per partition it was told to lead, and only that context's
state decides how a request for one of its groups is answered:

=========  =====================================================  ==============================
state      meaning                                                a request for one of its groups
=========  =====================================================  ==============================
(none)     this broker does not lead the partition                NOT_COORDINATOR (16)
LOADING    became leader; replaying the partition's log           COORDINATOR_LOAD_IN_PROGRESS (14)
ACTIVE     loaded; serves and writes the partition's groups       served
FAILED     loading failed; a newer leader epoch retries           NOT_COORDINATOR (16)
=========  =====================================================  ==============================

Events: ``BECAME_LEADER`` (the replica became leader, with its leader epoch), ``LOADED``,
``LOAD_FAILED``, ``RESIGNED`` (another broker leads now, or the partition is gone; the context is
dropped, which Kafka calls CLOSED).  The transitions are the table :data:`TRANSITIONS`; any other
pair raises :class:`IllegalOwnershipTransition`.

Epoch rules (Kafka's ``scheduleLoadOperation`` / ``scheduleUnloadOperation``): a became-leader
event whose epoch is not newer than the context's is ignored (a stale or repeated notification);
a newer one while LOADING or ACTIVE only records the epoch -- the state is already the leader's.  A
resignation is applied when it names no epoch (the topic was deleted) or an epoch newer than the
context's, so that a late resignation of an old term cannot unload a newer leadership.

Refka loads synchronously (the log is local), so LOADING lasts only inside
``GroupService.on_became_leader``; it is still a state of its own, answered with its own error,
so that loading can become asynchronous without changing what clients see.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class CoordinatorState(enum.Enum):
    LOADING = "Loading"
    ACTIVE = "Active"
    FAILED = "Failed"

    def __str__(self) -> str:
        return self.value


class OwnershipEvent(enum.Enum):
    BECAME_LEADER = "became-leader"
    LOADED = "loaded"
    LOAD_FAILED = "load-failed"


# (state before or None when there is no context, event) -> state after.  RESIGNED is not in the
# table: from any state it drops the context.
TRANSITIONS: dict[tuple[CoordinatorState | None, OwnershipEvent], CoordinatorState] = {
    (None, OwnershipEvent.BECAME_LEADER): CoordinatorState.LOADING,
    (CoordinatorState.FAILED, OwnershipEvent.BECAME_LEADER): CoordinatorState.LOADING,
    (CoordinatorState.LOADING, OwnershipEvent.BECAME_LEADER): CoordinatorState.LOADING,
    (CoordinatorState.ACTIVE, OwnershipEvent.BECAME_LEADER): CoordinatorState.ACTIVE,
    (CoordinatorState.LOADING, OwnershipEvent.LOADED): CoordinatorState.ACTIVE,
    (CoordinatorState.LOADING, OwnershipEvent.LOAD_FAILED): CoordinatorState.FAILED,
}


class IllegalOwnershipTransition(Exception):
    def __init__(self, partition: int, state: CoordinatorState | None, event: OwnershipEvent) -> None:
        super().__init__(f"__consumer_offsets-{partition}: {event.value} is illegal in state {state}")
        self.partition = partition
        self.state = state
        self.event = event


@dataclass
class PartitionContext:
    """What the coordinator knows about one partition it was told to lead."""

    state: CoordinatorState
    leader_epoch: int


class PartitionOwnership:
    """The contexts of the partitions this broker leads, keyed by partition number."""

    def __init__(self) -> None:
        self.contexts: dict[int, PartitionContext] = {}

    def state_of(self, partition: int) -> CoordinatorState | None:
        context = self.contexts.get(partition)
        return None if context is None else context.state

    def became_leader(self, partition: int, leader_epoch: int) -> bool:
        """Apply BECAME_LEADER; True when the partition must now be loaded."""
        context = self.contexts.get(partition)
        if context is not None and leader_epoch <= context.leader_epoch:
            return False  # not newer than what we know: ignored, as in Kafka
        state = None if context is None else context.state
        new_state = self._next(partition, state, OwnershipEvent.BECAME_LEADER)
        self.contexts[partition] = PartitionContext(new_state, leader_epoch)
        return state in (None, CoordinatorState.FAILED)

    def loaded(self, partition: int) -> None:
        self._apply(partition, OwnershipEvent.LOADED)

    def load_failed(self, partition: int) -> None:
        self._apply(partition, OwnershipEvent.LOAD_FAILED)

    def resigned(self, partition: int, leader_epoch: int | None) -> bool:
        """Apply RESIGNED; True when a context was dropped (its groups must be unloaded)."""
        context = self.contexts.get(partition)
        if context is None:
            return False
        if leader_epoch is not None and leader_epoch <= context.leader_epoch:
            return False  # a resignation from an older term than the leadership we hold
        del self.contexts[partition]
        return True

    def loading_partitions(self) -> list[int]:
        return sorted(p for p, c in self.contexts.items() if c.state is CoordinatorState.LOADING)

    def _apply(self, partition: int, event: OwnershipEvent) -> None:
        context = self.contexts.get(partition)
        state = None if context is None else context.state
        new_state = self._next(partition, state, event)
        assert context is not None  # every legal non-BECAME_LEADER event starts from a context
        context.state = new_state

    @staticmethod
    def _next(partition: int, state: CoordinatorState | None, event: OwnershipEvent) -> CoordinatorState:
        new_state = TRANSITIONS.get((state, event))
        if new_state is None:
            raise IllegalOwnershipTransition(partition, state, event)
        return new_state
