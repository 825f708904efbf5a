"""The classic group's state machine, kept as a table.

Theory of operation
-------------------
A classic consumer group (Kafka's ``ClassicGroupState``) is always in one of five states:

* **Empty** -- no members.  The group may still own committed offsets (a "simple" group that only
  commits, or a consumer group whose members all left).  A JoinGroup starts a rebalance.
* **PreparingRebalance** -- a rebalance was triggered; JoinGroup requests are parked until every
  known member has rejoined or the rebalance timeout expires.
* **CompletingRebalance** -- the join phase closed, a new generation exists, the leader was told
  the members; the group waits for the leader's SyncGroup carrying the assignment.
* **Stable** -- the assignment is stored and handed out; members heartbeat.
* **Dead** -- the group was deleted (DeleteGroups, or its offsets expired while Empty); final.

The transitions are the rows of :data:`TRANSITIONS`; nothing else changes a group's state.  They
are Kafka's ``validPreviousStates`` table read the other way round, with the *cause* named::

    Empty               --rebalance triggered-->    PreparingRebalance
    PreparingRebalance  --join completed-->          CompletingRebalance   (at least one member)
    PreparingRebalance  --join completed empty-->    Empty                 (every member left)
    CompletingRebalance --assignment stored-->       Stable                (leader's SyncGroup)
    CompletingRebalance --rebalance triggered-->     PreparingRebalance
    Stable              --rebalance triggered-->     PreparingRebalance
    any state           --group removed-->           Dead

"Rebalance triggered" covers every cause Kafka has: a new member joins, the leader rejoins, a
member rejoins with different metadata, a member leaves or misses its session timeout, a member
misses the SyncGroup deadline.  An event a state has no row for raises
:class:`IllegalGroupTransition`, which names both; the coordinator never catches it, so a broken
rule shows up as a failing test rather than as a group in an impossible state.
"""

from __future__ import annotations

import enum


class GroupState(enum.Enum):
    """The five states; ``.value`` is Kafka's spelling, as DescribeGroups and ListGroups report it."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"

    def __str__(self) -> str:
        return self.value


class GroupEvent(enum.Enum):
    REBALANCE_TRIGGERED = "rebalance triggered"
    JOIN_COMPLETED = "join completed"
    JOIN_COMPLETED_EMPTY = "join completed empty"
    ASSIGNMENT_STORED = "assignment stored"
    GROUP_REMOVED = "group removed"

    def __str__(self) -> str:
        return self.value


TRANSITIONS: dict[GroupState, dict[GroupEvent, GroupState]] = {
    GroupState.EMPTY: {
        GroupEvent.REBALANCE_TRIGGERED: GroupState.PREPARING_REBALANCE,
        GroupEvent.GROUP_REMOVED: GroupState.DEAD,
    },
    GroupState.PREPARING_REBALANCE: {
        GroupEvent.JOIN_COMPLETED: GroupState.COMPLETING_REBALANCE,
        GroupEvent.JOIN_COMPLETED_EMPTY: GroupState.EMPTY,
        GroupEvent.GROUP_REMOVED: GroupState.DEAD,
    },
    GroupState.COMPLETING_REBALANCE: {
        GroupEvent.ASSIGNMENT_STORED: GroupState.STABLE,
        GroupEvent.REBALANCE_TRIGGERED: GroupState.PREPARING_REBALANCE,
        GroupEvent.GROUP_REMOVED: GroupState.DEAD,
    },
    GroupState.STABLE: {
        GroupEvent.REBALANCE_TRIGGERED: GroupState.PREPARING_REBALANCE,
        GroupEvent.GROUP_REMOVED: GroupState.DEAD,
    },
    GroupState.DEAD: {
        GroupEvent.GROUP_REMOVED: GroupState.DEAD,
    },
}


class IllegalGroupTransition(RuntimeError):
    """``event`` has no row in :data:`TRANSITIONS` for ``state``: a coordinator bug, not bad input."""

    def __init__(self, group_id: str, state: GroupState, event: GroupEvent) -> None:
        super().__init__(f"group {group_id!r}: no transition from {state} on '{event}'")
        self.group_id = group_id
        self.state = state
        self.event = event


def next_state(group_id: str, state: GroupState, event: GroupEvent) -> GroupState:
    """The state ``event`` leads to from ``state``; raises :class:`IllegalGroupTransition`."""
    target = TRANSITIONS[state].get(event)
    if target is None:
        raise IllegalGroupTransition(group_id, state, event)
    return target


def accepts(state: GroupState, event: GroupEvent) -> bool:
    """Whether ``state`` has a row for ``event`` (Kafka's ``canRebalance`` is ``accepts(s, REBALANCE_TRIGGERED)``)."""
    return event in TRANSITIONS[state]


def transition_lines() -> list[str]:
    """The table as ``"From --event--> To"`` lines, for documentation drawn from the data itself."""
    return [
        f"{state} --{event}--> {target}"
        for state, row in TRANSITIONS.items()
        for event, target in row.items()
    ]
