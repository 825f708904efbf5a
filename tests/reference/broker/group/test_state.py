"""The group state table: Kafka's transitions and nothing else."""

from __future__ import annotations

import pytest

from reference.broker.group.group import ClassicGroup
from reference.broker.group.state import (
    TRANSITIONS,
    GroupEvent,
    GroupState,
    IllegalGroupTransition,
    next_state,
    transition_lines,
)

# Kafka's ClassicGroupState.validPreviousStates, target -> allowed sources.
KAFKA_VALID_PREVIOUS_STATES = {
    GroupState.EMPTY: {GroupState.PREPARING_REBALANCE},
    GroupState.PREPARING_REBALANCE: {GroupState.STABLE, GroupState.COMPLETING_REBALANCE, GroupState.EMPTY},
    GroupState.COMPLETING_REBALANCE: {GroupState.PREPARING_REBALANCE},
    GroupState.STABLE: {GroupState.COMPLETING_REBALANCE},
    GroupState.DEAD: set(GroupState),
}


def test_the_table_allows_exactly_kafka_s_transitions() -> None:
    sources: dict[GroupState, set[GroupState]] = {state: set() for state in GroupState}
    for source, row in TRANSITIONS.items():
        for target in row.values():
            sources[target].add(source)
    assert sources == KAFKA_VALID_PREVIOUS_STATES


def test_an_illegal_transition_raises_a_typed_error_naming_state_and_event() -> None:
    with pytest.raises(IllegalGroupTransition) as raised:
        next_state("g", GroupState.STABLE, GroupEvent.ASSIGNMENT_STORED)
    assert raised.value.state is GroupState.STABLE and raised.value.event is GroupEvent.ASSIGNMENT_STORED
    assert "Stable" in str(raised.value) and "assignment stored" in str(raised.value)


def test_a_group_transition_stamps_the_state_timestamp() -> None:
    group = ClassicGroup("g")
    group.transition(GroupEvent.REBALANCE_TRIGGERED, now_ms=42)
    assert (group.previous_state, group.state, group.current_state_timestamp) == (
        GroupState.EMPTY,
        GroupState.PREPARING_REBALANCE,
        42,
    )
    with pytest.raises(IllegalGroupTransition):
        group.transition(GroupEvent.ASSIGNMENT_STORED, now_ms=43)


def test_the_documentation_lines_come_from_the_table() -> None:
    assert "Empty --rebalance triggered--> PreparingRebalance" in transition_lines()
    assert len(transition_lines()) == sum(len(row) for row in TRANSITIONS.values())
