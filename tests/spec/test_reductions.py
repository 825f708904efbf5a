"""The replication key's reductions are sound: each merges only states no later step tells apart.

A reduction makes the canonical key forget something, so the checker visits fewer states.  It is
sound when two states with the same key have the same invariant verdicts and the same successor
keys (a bisimulation), since then every execution of one is matched, step for step, by an
execution of the other: the same violations are reachable at the same depths, so every verdict and
every shortest counterexample's length stay as they were.  Each reduction is shown here three
ways: states that differ only in what it forgets are checked for exactly that property, every
guard mutant is caught by a counterexample as short as without the reduction, and whole checks
give the same verdict with no more states.  (``tests/spec/test_search_unchanged.py`` runs the
unreduced key, :class:`Unreduced`, against figures pinned before any reduction.)

The reduction so far: a *deposed* leader's fetch offsets for followers outside its ISR are dead
(``ReplicationModel._fetch_offsets_read``).
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Iterator

import pytest

from spec.checker import check
from spec.mutants import run_mutants
from spec.registry import entry
from spec.replication import GUARDS, NOT_FETCHED, ReplicationModel, ReplicationState


class Unreduced(ReplicationModel):
    """The replication model whose key keeps every fetch offset (the key before the reduction)."""

    def _fetch_offsets_read(self, state: ReplicationState) -> list[tuple[int, ...]]:
        return [rep.fetched for rep in state.replicas]


def _walk(model: ReplicationModel, seed: int, steps: int) -> Iterator[ReplicationState]:
    rng = random.Random(seed)
    state = next(iter(model.initial_states()))
    for _ in range(steps):
        yield state
        moves = list(model.transitions(state))
        if not moves:
            return
        state = rng.choice(moves).state


def _fetch_offsets_redrawn(state: ReplicationState, rng: random.Random) -> ReplicationState | None:
    """The state with every leader's fetch offsets (but its own) redrawn at random."""
    replicas = list(state.replicas)
    for r, rep in enumerate(replicas):
        if rep.fetched:
            fetched = [offset if m == r else rng.choice([NOT_FETCHED, *range(len(rep.log) + 1)])
                       for m, offset in enumerate(rep.fetched)]
            replicas[r] = rep._replace(fetched=tuple(fetched))
    return None if tuple(replicas) == state.replicas else state._replace(replicas=tuple(replicas))


def _successor_keys(model: ReplicationModel, state: ReplicationState) -> set[Hashable]:
    """The keys one step away, and the state's own: a step back to an equal key is no step."""
    return {model.canonical(t.state) for t in model.transitions(state)} | {model.canonical(state)}


@pytest.mark.parametrize("variant", ["truncate-to-hw", "kip-320", "kip-966", "kip-497"])
def test_fetch_offsets_the_key_forgets_change_no_successor_and_no_invariant(variant: str) -> None:
    """Redraw the leaders' fetch offsets: whenever the key stays the same, the keys one step away
    and every invariant's verdict stay the same too, so the key forgot only offsets no later
    step reads; and it does forget some (a deposed leader's), or it would reduce nothing."""
    model = ReplicationModel(variant, {"records": 2, "leader_changes": 2, "process_crashes": 1, "lossy_crashes": 1})
    rng = random.Random(variant)
    merged = 0
    for seed in range(60):
        for state in _walk(model, seed, 40):
            for _ in range(3):
                other = _fetch_offsets_redrawn(state, rng)
                if other is None or model.canonical(other) != model.canonical(state):
                    continue
                merged += 1
                assert _successor_keys(model, other) == _successor_keys(model, state)
                assert [inv.holds(other) for inv in model.invariants] == [inv.holds(state) for inv in model.invariants]
    assert merged > 50  # the walks do depose leaders that hold such offsets


# guard -> states the reduced key searches before the mutant's counterexample (unreduced: see
# tests/spec/test_search_unchanged.py)
REDUCED_MUTANT_STATES = {
    "clean_election": 206, "hw_waits_for_isr": 12, "expand_needs_caught_up": 194, "min_insync_replicas": 10,
    "truncate_by_leader_epoch": 313, "match_epoch_lineage": 992, "fence_truncation_epoch": 3530,
    "fence_fetch_epoch": 1567, "expand_after_epoch_start": 5200, "unclean_shutdown_leaves_isr": 158,
    "elr_only_below_min_isr": 3325, "maximal_isr_for_hw": 33, "pending_removal_still_counted": 11,
}


def test_every_mutant_is_caught_by_as_short_a_counterexample_in_no_more_states() -> None:
    reduced = {r.guard.name: r for r in run_mutants(entry("replication"))}
    assert set(reduced) == set(GUARDS)
    for name, result in reduced.items():
        plain = check(Unreduced(result.variant, dict(GUARDS[name].witness), frozenset({name})))
        assert (result.violated, result.steps) == (plain.violated, len(plain.trace) - 1), name
        assert result.states <= plain.statistics.states, name
    assert {name: r.states for name, r in reduced.items()} == REDUCED_MUTANT_STATES


# (variant, bounds) -> (states with the reduction, states without)
CHECKS = {
    ("kip-320", (("records", 1),)): (83358, 91703),
    ("kip-966", (("records", 1), ("leader_changes", 1), ("process_crashes", 0), ("lossy_crashes", 1))):
        (13296, 14261),
    ("kip-497", (("records", 1), ("leader_changes", 1))): (27912, 30809),
    ("kip-101", (("records", 1),)): (10787, 11101),
}


@pytest.mark.parametrize(("variant", "bounds"), sorted(CHECKS))
def test_a_check_gives_the_same_verdict_and_counterexample_length_in_no_more_states(
        variant: str, bounds: tuple[tuple[str, int], ...]) -> None:
    reduced = check(ReplicationModel(variant, dict(bounds)))
    plain = check(Unreduced(variant, dict(bounds)))
    assert (reduced.violated, len(reduced.trace)) == (plain.violated, len(plain.trace))
    assert reduced.unreached == plain.unreached
    assert (reduced.statistics.states, plain.statistics.states) == CHECKS[variant, bounds]
