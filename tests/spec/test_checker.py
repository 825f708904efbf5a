"""The checker: breadth-first search, shortest counterexamples, deadlocks and non-vacuity, and the
parallel search giving the serial search's answer."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import spec.checker
from spec.checker import (
    DEADLOCK,
    Invariant,
    Model,
    Result,
    Situation,
    Transition,
    _plan_handovers,
    check,
    format_result,
)
from spec.registry import MODELS

S = TypeVar("S")


@dataclass
class Counter:
    """A toy model: a counter that may add 1 or 2 up to a limit; 'odd' is reached at 1, 3..."""

    limit: int
    forbidden: int = -1
    final_only_at_limit: bool = False
    name: str = "counter"
    variant: str = "toy"

    @property
    def invariants(self) -> tuple[Invariant[int], ...]:
        return (Invariant("NotForbidden", "the counter never equals the forbidden value", lambda s: s != self.forbidden),)

    @property
    def situations(self) -> tuple[Situation, ...]:
        return (Situation("odd", "an odd value"), Situation("never", "never reached", applies=False))

    def initial_states(self) -> Iterator[int]:
        yield 0

    def transitions(self, state: int) -> Iterator[Transition[int]]:
        for step in (1, 2):
            if state + step <= self.limit:
                yield Transition("Add", (("amount", step),), state + step,
                                 situations=("odd",) if (state + step) % 2 else ())

    def canonical(self, state: int) -> int:
        return state

    def is_final(self, state: int) -> bool:
        return not self.final_only_at_limit or state == self.limit

    def render(self, state: int) -> str:
        return f"value {state}"

    def describe_bounds(self) -> str:
        return f"limit={self.limit}"


def test_a_passing_model_visits_every_state_and_counts_situations() -> None:
    result = check(Counter(limit=6))
    assert result.passed
    assert result.statistics.states == 7
    assert result.coverage["odd"] > 0
    assert result.unreached == ()


def test_the_counterexample_is_a_shortest_one() -> None:
    """6 is reachable in 3 steps (2+2+2), never fewer; BFS must not return a longer path."""
    result = check(Counter(limit=10, forbidden=6))
    assert result.violated == ("NotForbidden",)
    assert len(result.trace) - 1 == 3
    assert [step.state for step in result.trace] == [0, 2, 4, 6]


def test_a_state_without_successors_that_is_not_final_is_a_deadlock() -> None:
    model = Counter(limit=3, final_only_at_limit=True)
    model.limit = 3
    result = check(model)
    assert result.passed  # 3 is final; nothing else is a dead end
    stuck = Counter(limit=3, final_only_at_limit=True)
    stuck.is_final = lambda state: False  # type: ignore[method-assign]
    assert check(stuck).violated == (DEADLOCK,)


def test_the_report_prints_numbered_steps_statistics_and_coverage() -> None:
    model = Counter(limit=10, forbidden=3)
    text = format_result(model, check(model))
    assert "VIOLATED NotForbidden" in text
    assert " 1. Add(amount=" in text
    assert "states/s" in text
    assert "odd: an odd value" in text
    assert "not required" in text


def test_a_state_limit_marks_the_result_incomplete() -> None:
    result = check(Counter(limit=100), max_states=5)
    assert not result.complete and not result.passed


@dataclass
class KeyCountingLattice:
    """The lattice, recording every state the checker asks a key for."""

    lattice: Lattice
    keyed: list[tuple[int, int]]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.lattice, name)

    def canonical(self, state: tuple[int, int]) -> tuple[int, int]:
        self.keyed.append(state)
        return self.lattice.canonical(state)


def test_a_child_equal_to_a_state_met_before_is_not_keyed_again() -> None:
    """Rule 8: in the lattice a point is reached by two steps, from the left and from below, in
    the same level; the key is computed at its first meeting only, and the search finds the
    same states, transitions and coverage as it does with a key per step (counted by hand)."""
    model = KeyCountingLattice(Lattice(limit=5), [])
    result = check(model)
    assert len(model.keyed) == len(set(model.keyed))  # no state keyed twice
    assert len(model.keyed) < 1 + result.statistics.transitions  # fewer keys than steps
    # The 21 points x <= y <= 5 are expanded: the 15 below the limit take 2 steps, the 5 on it
    # but (5, 5) take 1; the 5 diagonal points below the limit reach 'diagonal' twice each.
    assert (result.statistics.states, result.statistics.transitions, result.coverage["diagonal"]) == (21, 35, 10)


# --- parallel search ----------------------------------------------------------------------------
# check(..., workers=N) must give the serial search's answer: the same verdict, state count and
# depth, the same counterexample step for step, and on a pass the same transitions and coverage.



def _differences(serial: Result[Any], parallel: Result[Any]) -> list[str]:
    """Everything the parallel search reports differently from the serial one."""
    compared: list[tuple[str, object, object]] = [
        ("verdict", serial.violated, parallel.violated),
        ("complete", serial.complete, parallel.complete),
        ("states", serial.statistics.states, parallel.statistics.states),
        ("depth", serial.statistics.depth, parallel.statistics.depth),
        ("deadlocks", serial.statistics.deadlocks, parallel.statistics.deadlocks),
        ("trace", [(s.transition, s.state) for s in serial.trace], [(s.transition, s.state) for s in parallel.trace]),
    ]
    if serial.passed:
        compared += [("transitions", serial.statistics.transitions, parallel.statistics.transitions),
                     ("coverage", serial.coverage, parallel.coverage)]
    return [f"{what}: serial {a!r}, parallel {b!r}" for what, a, b in compared if a != b]


def _replays(model: Model[S], result: Result[S]) -> bool:
    """Each step of the trace is a transition the model offers from the step before."""
    if not result.trace or result.trace[0].state not in list(model.initial_states()):
        return False
    return all(step.transition is not None and step.transition in list(model.transitions(before.state))
               and step.transition.state == step.state
               for before, step in zip(result.trace, result.trace[1:], strict=False))


@dataclass
class Lattice:
    """A toy model with merging paths and a symmetry: (x, y) steps to (x+1, y) or (x, y+1) up to a
    limit, and (x, y) is the same state as (y, x).  'diagonal' is reached whenever x == y."""

    limit: int
    forbidden: tuple[int, int] | None = None
    name: str = "lattice"
    variant: str = "toy"

    @property
    def invariants(self) -> tuple[Invariant[tuple[int, int]], ...]:
        return (Invariant("NotForbidden", "never at the forbidden point",
                          lambda s: self.forbidden is None or sorted(s) != sorted(self.forbidden)),)

    @property
    def situations(self) -> tuple[Situation, ...]:
        return (Situation("diagonal", "x == y"),)

    def initial_states(self) -> Iterator[tuple[int, int]]:
        yield (0, 0)

    def transitions(self, state: tuple[int, int]) -> Iterator[Transition[tuple[int, int]]]:
        x, y = state
        for axis, point in (("x", (x + 1, y)), ("y", (x, y + 1))):
            if max(point) <= self.limit:
                yield Transition("Step", (("axis", axis),), point, situations=("diagonal",) if x == y else ())

    def canonical(self, state: tuple[int, int]) -> tuple[int, int]:
        return (min(state), max(state))

    def is_final(self, state: tuple[int, int]) -> bool:
        return True

    def render(self, state: tuple[int, int]) -> str:
        return f"at {state}"

    def describe_bounds(self) -> str:
        return f"limit={self.limit}"


@dataclass
class Graph:
    """A toy model read from an explicit directed graph: node ``n`` steps to ``edges[n]`` in order."""

    edges: list[list[int]]
    initial: list[int]
    bad: frozenset[int]
    final: frozenset[int]
    name: str = "graph"
    variant: str = "toy"

    @property
    def invariants(self) -> tuple[Invariant[int], ...]:
        return (Invariant("NotBad", "never on a bad node", lambda s: s not in self.bad),)

    @property
    def situations(self) -> tuple[Situation, ...]:
        return (Situation("even", "stepped to an even node"),)

    def initial_states(self) -> Iterator[int]:
        yield from self.initial

    def transitions(self, state: int) -> Iterator[Transition[int]]:
        for target in self.edges[state]:
            yield Transition("Step", (("to", target),), target, situations=("even",) if target % 2 == 0 else ())

    def canonical(self, state: int) -> int:
        return state

    def is_final(self, state: int) -> bool:
        return state in self.final

    def render(self, state: int) -> str:
        return f"node {state}"

    def describe_bounds(self) -> str:
        return f"{len(self.edges)} nodes"


@st.composite
def graphs(draw: st.DrawFn) -> Graph:
    """Random graphs: a few sinks (deadlocks unless final), a few bad nodes, 1 to 3 initial nodes."""
    size = draw(st.integers(1, 40))
    node = st.integers(0, size - 1)
    edges = draw(st.lists(st.lists(node, min_size=1, max_size=3), min_size=size, max_size=size))
    for sink in draw(st.sets(node, max_size=4)):
        edges[sink] = []
    bad, not_final = draw(st.sets(node, max_size=5)), draw(st.sets(node, max_size=4))
    return Graph(edges, draw(st.lists(node, min_size=1, max_size=3)), frozenset(bad),
                 frozenset(range(size)) - not_final)


def _children() -> set[int]:
    return {process.pid for process in multiprocessing.active_children() if process.pid is not None}


@settings(max_examples=40, deadline=None)
@given(model=graphs(), workers=st.integers(2, 3), max_states=st.none() | st.integers(1, 30))
def test_the_parallel_search_gives_the_serial_answer_on_any_graph(model: Graph, workers: int,
                                                                  max_states: int | None) -> None:
    """Verdict, states, depth, deadlocks, the very same trace, and on a pass transitions and
    coverage; also when a deadlock, a violation or the state limit stops the search mid-level."""
    serial = check(model, max_states=max_states)
    parallel = check(model, max_states=max_states, workers=workers)
    assert _differences(serial, parallel) == []


@pytest.mark.parametrize("edges, bad, expected", [
    ([[1, 2, 3, 4], [], [], [], []], {2, 3, 4}, [0, 2]),  # 3 and 4 are handed to the second worker
    ([[1, 2], [], [3], []], {3}, [0, 1]),  # the serial search meets the deadlock at 1 first...
    ([[2, 1], [], [3], []], {3}, [0, 2, 3]),  # ...and here the violation below 2 first
])
def test_the_first_stop_in_serial_order_is_reported(edges: list[list[int]], bad: set[int],
                                                    expected: list[int]) -> None:
    """Several workers may find a violation or a deadlock in the same level; the one the serial
    search meets first wins: the lowest rank, and a deadlock only before the violating child's parent."""
    model = Graph(edges, [0], frozenset(bad), frozenset(bad))
    serial, parallel = check(model), check(model, workers=2)
    assert [step.state for step in serial.trace] == expected
    assert _differences(serial, parallel) == []


@pytest.mark.parametrize("workers", [2, 3])
def test_parallel_and_serial_agree_exactly_on_passing_models(workers: int) -> None:
    replication = MODELS["replication"].build(
        "kip-320", {"replicas": 2, "records": 2, "leader_changes": 1, "process_crashes": 1}, frozenset())
    models: list[Model[Any]] = [Lattice(limit=40), replication]
    for model in models:
        serial, parallel = check(model), check(model, workers=workers)
        assert serial.passed and parallel.passed
        assert _differences(serial, parallel) == []
        assert parallel.statistics.workers == workers and "with" in format_result(model, parallel)


def test_a_planted_bug_in_the_discovery_order_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Non-vacuity of the agreement tests: workers that report children in reverse transition
    order visit the same states, but a parent is no longer the serial search's first discoverer,
    so the counterexample differs (with the same length).  A diamond: 0 -> 1 -> 3 and 0 -> 2 -> 3."""

    @dataclass
    class Reversed:
        model: Graph

        def __getattr__(self, name: str) -> object:
            return getattr(self.model, name)

        def transitions(self, state: int) -> list[Transition[int]]:
            return list(self.model.transitions(state))[::-1]

    expand = spec.checker._Worker.expand

    def expand_reversed(self: spec.checker._Worker[object]) -> object:
        if not isinstance(self.model, Reversed):
            self.model = Reversed(self.model)  # type: ignore[arg-type, assignment]
        return expand(self)

    model = Graph(edges=[[1, 2], [3], [3], []], initial=[0], bad=frozenset({3}), final=frozenset({3}))
    serial = check(model)
    assert [step.state for step in serial.trace] == [0, 1, 3]
    assert _differences(serial, check(model, workers=2)) == []
    monkeypatch.setattr(spec.checker._Worker, "expand", expand_reversed)
    planted = check(model, workers=2)
    assert [step.state for step in planted.trace] == [0, 2, 3]
    assert [line.split(":")[0] for line in _differences(serial, planted)] == ["trace"]


def test_a_parallel_counterexample_is_the_serial_one_and_replays() -> None:
    """truncate-to-hw at its smallest bounds (2 replicas, 1 record, 1 leader change, 1 restart)."""
    model = MODELS["replication"].build(
        "truncate-to-hw", {"replicas": 2, "records": 1, "leader_changes": 1, "process_crashes": 1}, frozenset())
    for only in (None, ["LeaderCompleteness"]):
        serial, parallel = check(model, only=only), check(model, only=only, workers=2)
        assert parallel.violated and len(parallel.trace) == len(serial.trace) == (7 if only is None else 8)
        assert _replays(model, parallel)
        assert _differences(serial, parallel) == []
    lattice = Lattice(limit=10, forbidden=(3, 5))
    result = check(lattice, workers=3)
    assert result.violated == ("NotForbidden",) and len(result.trace) - 1 == 8
    assert _replays(lattice, result)


def test_a_deadlock_is_found_in_parallel() -> None:
    stuck = Counter(limit=5, final_only_at_limit=True)
    stuck.is_final = lambda state: False  # type: ignore[method-assign]
    result = check(stuck, workers=2)
    assert result.violated == (DEADLOCK,) and [step.state for step in result.trace] == [0, 1, 3, 5]


def test_the_state_limit_stops_the_parallel_search_at_the_same_count() -> None:
    before = _children()
    serial, parallel = check(Lattice(limit=40), max_states=100), check(Lattice(limit=40), max_states=100, workers=2)
    assert not parallel.complete and parallel.statistics.states == serial.statistics.states == 100
    assert _differences(serial, parallel) == [] and _children() == before


@dataclass
class Exploding(Lattice):
    """Lattice whose transitions fail at depth ``at``, in a worker (the parent only makes (0, 0))."""

    at: int = 3
    how: str = "raise"

    def transitions(self, state: tuple[int, int]) -> Iterator[Transition[tuple[int, int]]]:
        if sum(state) == self.at:
            if self.how == "exit":
                os._exit(3)
            raise ZeroDivisionError(f"model bug at {state}")
        return super().transitions(state)


@pytest.mark.timeout(60)
def test_an_exception_in_a_worker_is_raised_in_the_parent_with_its_traceback() -> None:
    before = _children()
    with pytest.raises(ZeroDivisionError, match="model bug at") as raised:
        check(Exploding(limit=10), workers=2)
    assert "in transitions" in str(raised.value.__cause__)  # the worker's own traceback
    assert _children() == before  # every worker was reaped


@pytest.mark.timeout(60)
def test_a_worker_that_dies_is_reported_not_waited_for() -> None:
    before = _children()
    with pytest.raises(RuntimeError, match=r"exited unexpectedly \(exit code 3\)"):
        check(Exploding(limit=10, how="exit"), workers=2)
    assert _children() == before


@pytest.mark.timeout(60)
def test_workers_are_gone_after_a_pass_a_violation_and_an_interrupt() -> None:
    before = _children()
    check(Lattice(limit=10), workers=2)
    check(Lattice(limit=10, forbidden=(2, 2)), workers=2)
    assert _children() == before

    def interrupt(statistics: spec.checker.Statistics) -> None:
        if statistics.depth == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        check(Lattice(limit=10), workers=2, progress=interrupt)
    assert _children() == before


def test_progress_is_reported_once_per_level() -> None:
    depths: list[int] = []
    check(Lattice(limit=6), workers=2, progress=lambda statistics: depths.append(statistics.depth))
    assert depths == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 12]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=6))
def test_handovers_even_out_the_shares_and_move_only_the_surplus(won: Sequence[int]) -> None:
    plan = _plan_handovers(won)
    shares = list(won)
    givers = {giver for giver, handovers in enumerate(plan) if handovers}
    for giver, handovers in enumerate(plan):
        for receiver, count in handovers:
            assert count > 0 and receiver not in givers
            shares[giver] -= count
            shares[receiver] += count
    assert max(shares) - min(shares) <= 1 and sum(shares) == sum(won)
    moved = sum(count for handovers in plan for _, count in handovers)
    assert moved <= sum(max(0, w - sum(won) // len(won)) for w in won)  # only states above a fair share move


def test_bad_worker_counts_are_refused_and_the_default_is_the_usable_cpus_up_to_8() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        check(Counter(limit=3), workers=0)
    assert 1 <= spec.checker.default_workers() <= min(8, os.cpu_count() or 1)


def test_the_command_line_takes_workers_and_refuses_bad_values(capsys: pytest.CaptureFixture[str]) -> None:
    from reference.cli import main

    argv = ["spec", "check", "replication", "--variant", "truncate-to-hw", "--bound", "replicas=2",
            "--bound", "records=1", "--bound", "leader_changes=1", "--bound", "process_crashes=1"]
    assert main([*argv, "--workers", "2"]) == 1
    out = capsys.readouterr().out
    assert "with 2 workers" in out and " 6. BecomeFollower(replica=1, epoch=0)" in out
    for bad in ("0", "two"):
        assert main([*argv, "--workers", bad]) == 2
        err = capsys.readouterr().err
        assert "--workers must be a positive integer" in err and err.count("\n") == 1
