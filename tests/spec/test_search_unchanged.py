"""Speed work on the checker and the replication model changes nothing the checker finds.

The figures below were recorded with the checker and the replication model as they were before
the canonical key was rewritten for speed (tables built once, logs keyed as they are when no epoch
is renumbered), before the search paused the cycle collector, skipped the key of a child met
as a state already (the checker's rule 8), and before the faster ``_replace`` and ``Transition``.
The same bounds must still give the same number of distinct states, transitions, depth and
coverage, and every mutant the same violated invariants, counterexample length and state count:
a key that merged two states the old key kept apart, or split two it merged, or a search that
skipped a state, would move these numbers.

The key's later *reductions*, which do merge states on purpose, are switched off here
(:class:`~tests.spec.test_reductions.Unreduced`) so that these figures keep pinning the constant
factors; ``tests/spec/test_reductions.py`` proves each reduction and pins its own figures.
"""

from __future__ import annotations

import collections
import gc
import random
from collections.abc import Iterator
from typing import Any

import pytest

from spec.checker import Transition, check
from spec.replication import (
    GUARDS,
    Controller,
    Entry,
    Notification,
    Replica,
    ReplicationModel,
    ReplicationState,
)
from tests.spec.test_reductions import Unreduced

# guard -> (variant, violated invariants, counterexample steps, states searched)
MUTANTS = {
    "clean_election": ("kip-966", ("LeaderCompleteness", "StrongIsr"), 5, 218),
    "hw_waits_for_isr": ("kip-966", ("WeakIsr", "StrongIsr", "ValidHighWatermark", "AckedOnMinIsr"), 2, 12),
    "expand_needs_caught_up": ("kip-966", ("WeakIsr", "StrongIsr", "ValidHighWatermark"), 5, 205),
    "min_insync_replicas": ("kip-966", ("AckedOnMinIsr",), 3, 10),
    "truncate_by_leader_epoch": ("kip-966", ("WeakIsr", "StrongIsr", "ValidHighWatermark"), 6, 313),
    "match_epoch_lineage": ("kip-966", ("WeakIsr", "StrongIsr", "AckedOnMinIsr"), 9, 992),
    "fence_truncation_epoch": ("kip-966", ("WeakIsr", "StrongIsr"), 10, 3851),
    "fence_fetch_epoch": ("kip-966", ("EpochsMonotonic",), 7, 1614),
    "expand_after_epoch_start": ("kip-966", ("StrongIsr",), 8, 5427),
    "unclean_shutdown_leaves_isr": ("kip-966", ("LeaderCompleteness",), 6, 158),
    "elr_only_below_min_isr": ("kip-966", ("LeaderCompleteness",), 7, 3407),
    "maximal_isr_for_hw": ("kip-497", ("WeakIsr", "StrongIsr", "ValidHighWatermark"), 6, 33),
    "pending_removal_still_counted": ("kip-497", ("WeakIsr", "StrongIsr", "ValidHighWatermark", "AckedOnMinIsr"), 3, 11),
}


def test_every_replication_mutant_is_caught_by_the_same_counterexample_as_before() -> None:
    found = {}
    for guard, (variant, *_) in MUTANTS.items():  # as spec.mutants.run_mutant, on the unreduced key
        result = check(Unreduced(variant, dict(GUARDS[guard].witness), frozenset({guard})))
        found[guard] = (variant, result.violated, len(result.trace) - 1, result.statistics.states)
    assert found == MUTANTS


LOSSY = {"process_crashes": 0, "lossy_crashes": 1}
# (variant, bounds) -> (violated, counterexample steps, states, transitions, depth, coverage)
CHECKS: dict[tuple[str, tuple[tuple[str, int], ...]], tuple[tuple[str, ...], int, int, int, int, dict[str, int]]] = {
    ("truncate-to-hw", (("records", 1),)): (
        ("WeakIsr", "StrongIsr"), 6, 2667, 7076, 6,
        {"hw_with_isr": 12, "isr_reexpanded": 111, "leader_change_over_data": 102, "not_enough_replicas": 25,
         "truncated_suffix": 319}),
    ("kip-101", (("records", 1),)): (
        ("StrongIsr",), 8, 11101, 30458, 8,
        {"hw_with_isr": 156, "isr_reexpanded": 1318, "leader_change_over_data": 656, "not_enough_replicas": 232,
         "truncated_suffix": 753}),
    ("unclean", (("records", 1),)): (
        ("ConsistentRead",), 7, 4923, 12231, 7,
        {"hw_with_isr": 40, "isr_reexpanded": 316, "leader_change_over_data": 352, "not_enough_replicas": 103,
         "truncated_suffix": 254}),
    ("kip-320", (("records", 2), ("leader_changes", 1), *LOSSY.items())): (
        ("LeaderCompleteness",), 7, 2656, 5599, 7,
        {"hw_with_isr": 60, "isr_reexpanded": 293, "leader_change_over_data": 133, "lossy_crash": 1090,
         "not_enough_replicas": 77, "truncated_suffix": 224}),
    ("kip-966", (("records", 1), ("leader_changes", 1), *LOSSY.items())): (
        (), 0, 14261, 46006, 18,
        {"hw_with_isr": 952, "isr_reexpanded": 5444, "leader_change_over_data": 743, "lossy_crash": 2113,
         "not_enough_replicas": 54, "truncated_suffix": 734}),
    ("kip-497", (("records", 1), ("leader_changes", 0))): (
        (), 0, 1410, 3998, 18,
        {"hw_with_isr": 28, "hw_with_pending_isr": 26, "isr_reexpanded": 696, "not_enough_replicas": 22}),
}


# Every check on one process; the parallel search on the power-loss one (it gives the serial
# search's answer by construction, which tests/spec/test_checker.py shows in general).
@pytest.mark.parametrize(("variant", "bounds", "workers"),
                         [(variant, bounds, 1) for variant, bounds in sorted(CHECKS)]
                         + [("kip-966", (("records", 1), ("leader_changes", 1), *LOSSY.items()), 2)])
def test_a_check_searches_the_same_states_as_before(variant: str, bounds: tuple[tuple[str, int], ...],
                                                   workers: int) -> None:
    violated, steps, states, transitions, depth, coverage = CHECKS[variant, bounds]
    result = check(Unreduced(variant, dict(bounds)), workers=workers)
    assert (result.violated, len(result.trace) - 1 if result.trace else 0, result.statistics.states) == \
        (violated, steps, states)
    if not violated:  # a stopped search counts transitions up to the stop, not the whole space
        assert (result.statistics.transitions, result.statistics.depth) == (transitions, depth)
        assert {name: count for name, count in result.coverage.items() if count} == coverage


# --- the faster _replace ---------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [Replica, Notification, Controller, ReplicationState])
def test_the_quick_replace_gives_what_the_standard_one_gives_and_refuses_unknown_fields(cls: Any) -> None:
    state = next(iter(ReplicationModel("kip-966").initial_states()))
    value: Any = {Replica: state.replicas[0], Notification: next(iter(state.notifications)),
             Controller: state.controller, ReplicationState: state}[cls]
    standard: Any = collections.namedtuple(cls.__name__, cls._fields)(*value)
    for position, name in enumerate(cls._fields):
        replaced = value._replace(**{name: "changed"})
        assert type(replaced) is cls
        assert tuple(replaced) == tuple(standard._replace(**{name: "changed"}))
        assert replaced[position] == "changed"
    both = value._replace(**{cls._fields[0]: 1, cls._fields[-1]: 2})
    assert tuple(both) == tuple(standard._replace(**{cls._fields[0]: 1, cls._fields[-1]: 2}))
    with pytest.raises(ValueError, match="unexpected field names"):
        value._replace(no_such_field=1)


# --- the canonical key's shortcut ------------------------------------------------------------------

def _walk(model: ReplicationModel, seed: int, steps: int) -> Iterator[ReplicationState]:
    rng = random.Random(seed)
    state = next(iter(model.initial_states()))
    for _ in range(steps):
        yield state
        moves: list[Transition[ReplicationState]] = list(model.transitions(state))
        if not moves:
            return
        state = rng.choice(moves).state


def _epochs_shifted(state: ReplicationState, by: int) -> ReplicationState:
    """The same state with every leader epoch, in logs, replicas, controller and notifications,
    raised by ``by``: epochs are only compared, so nothing the model can do changes."""
    replicas = tuple(
        rep._replace(leader_epoch=rep.leader_epoch + by,
                     log=tuple(Entry(e.leader_epoch + by, e.record) for e in rep.log))
        for rep in state.replicas)
    controller = state.controller._replace(leader_epoch=state.controller.leader_epoch + by)
    notifications = frozenset(n._replace(leader_epoch=n.leader_epoch + by) for n in state.notifications)
    return state._replace(replicas=replicas, controller=controller, notifications=notifications)


@pytest.mark.parametrize("variant", ["kip-320", "kip-966", "kip-497"])
def test_a_log_keyed_as_it_is_and_a_renumbered_log_give_the_same_key(variant: str) -> None:
    """When the epochs in a state are already 0, 1, 2, ... the key takes each log as it is; shifted
    epochs are renumbered instead.  Both ways must give one key, and states the walk tells apart
    keep different keys."""
    model = ReplicationModel(variant, {"records": 2, "leader_changes": 2, "process_crashes": 1, "lossy_crashes": 1})
    shortcut_taken = 0
    for seed in range(30):
        states = list(_walk(model, seed, 30))
        for state in states:
            key = model.canonical(state)
            shortcut_taken += model._epoch_ranks(state, model._live_notifications(state))[1]
            assert model.canonical(_epochs_shifted(state, 5)) == key
        keys = {model.canonical(state) for state in states}
        assert len(keys) == len({model.canonical(_epochs_shifted(state, 7)) for state in states})
    assert shortcut_taken > 100


# --- the cycle collector ---------------------------------------------------------------------------

class _Probe:
    """A one-state model that records whether the cycle collector was on while it was searched."""

    name, variant = "probe", "default"
    invariants = situations = ()

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.collector_on: list[bool] = []

    def initial_states(self) -> Iterator[int]:
        yield 0

    def transitions(self, state: int) -> Iterator[Transition[int]]:
        self.collector_on.append(gc.isenabled())
        if self.fail:
            raise RuntimeError("the model failed")
        return iter(())

    def canonical(self, state: int) -> int:
        return state

    def is_final(self, state: int) -> bool:
        return True

    def render(self, state: int) -> str:
        return str(state)

    def describe_bounds(self) -> str:
        return ""


def test_the_search_pauses_the_cycle_collector_and_restores_it_even_when_the_model_raises() -> None:
    assert gc.isenabled()
    probe = _Probe()
    check(probe)
    assert probe.collector_on == [False] and gc.isenabled()
    failing = _Probe(fail=True)
    with pytest.raises(RuntimeError, match="the model failed"):
        check(failing)
    assert failing.collector_on == [False] and gc.isenabled()
    gc.disable()
    try:
        check(_Probe())
        assert not gc.isenabled()  # a caller's choice is left as it was
    finally:
        gc.enable()
