"""An explicit-state, breadth-first model checker for refka's executable specifications.

Theory of operation
-------------------
A *model* (``spec.replication``, ``spec.idempotence``, ``spec.delivery``) is a set of immutable
state values, the initial states, and named *actions*: from a state, each action yields zero or
more :class:`Transition` values, each naming the action, its arguments and the next state.  A
model also names its *invariants*: properties, written out in words, that must hold in every
reachable state.

The checker visits every state reachable within the model's bounds, breadth first:

1. Each state is reduced to a *canonical key* by the model (``model.canonical``).  The key is
   what the checker hashes; two states with the same key are the same state to the checker.
   Models use it for symmetry (renaming replica ids does not change what can happen) and for
   abstraction (forgetting what cannot matter any more).
2. Breadth first means the first violation found is at the smallest depth, so the
   counterexample printed is a *shortest* one: no step in it can be removed.
3. A state with no transition at all that the model does not accept as final is a *deadlock*,
   reported like an invariant violation.
4. Every transition may name *situations* it reached ("a truncation of a non-empty suffix");
   the checker counts them.  A pass is only meaningful when the situations that make the
   invariants bite were reached: that is the non-vacuity report.

The checker keeps, for every key, the concrete state first reached and the transition that led
to it, so a counterexample is a real execution: a numbered list of steps, each followed by the
model's own rendering of the state (each replica's log, high watermark, epoch, ISR...).

What it deliberately does not do: liveness (only safety invariants), partial-order reduction
(models merge equivalent states themselves through ``canonical``), or parallel search.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

State = TypeVar("State")


@dataclass(frozen=True)
class Transition(Generic[State]):
    """One step a model can take: the action's name, its named arguments and the next state.

    ``note`` says what happened in Kafka's words ("rejected: NOT_ENOUGH_REPLICAS") and
    ``situations`` names the non-vacuity situations this step reached.
    """

    action: str
    args: tuple[tuple[str, object], ...]
    state: State
    note: str = ""
    situations: tuple[str, ...] = ()

    def arg(self, name: str) -> object:
        for key, value in self.args:
            if key == name:
                return value
        raise KeyError(name)

    def label(self) -> str:
        arguments = ", ".join(f"{key}={value}" for key, value in self.args)
        text = f"{self.action}({arguments})"
        return f"{text}: {self.note}" if self.note else text


@dataclass(frozen=True)
class Invariant(Generic[State]):
    """A named safety property: ``holds(state)`` must be true in every reachable state."""

    name: str
    description: str
    holds: Callable[[State], bool]


@dataclass(frozen=True)
class Situation:
    """A situation the search must reach for a pass to mean something.

    ``applies`` is false when the bounds make it unreachable by construction (no lossy crash
    can happen with ``lossy_crashes=0``); such a situation is reported but not required.
    """

    name: str
    description: str
    applies: bool = True


class Model(Protocol[State]):
    """What the checker needs from a model.  See ``spec.replication`` for a full example."""

    name: str
    variant: str

    @property
    def invariants(self) -> Sequence[Invariant[State]]: ...

    @property
    def situations(self) -> Sequence[Situation]: ...

    def initial_states(self) -> Iterable[State]: ...

    def transitions(self, state: State) -> Iterable[Transition[State]]: ...

    def canonical(self, state: State) -> Hashable: ...

    def is_final(self, state: State) -> bool: ...

    def render(self, state: State) -> str: ...

    def describe_bounds(self) -> str: ...


@dataclass(frozen=True)
class Step(Generic[State]):
    """One numbered line of a counterexample: the transition taken (None for the initial state)."""

    transition: Transition[State] | None
    state: State


@dataclass
class Statistics:
    states: int = 0
    transitions: int = 0
    depth: int = 0
    seconds: float = 0.0
    deadlocks: int = 0

    @property
    def states_per_second(self) -> float:
        return self.states / self.seconds if self.seconds > 0 else float(self.states)


@dataclass
class Result(Generic[State]):
    """The outcome of a check.  ``violated`` is empty when every invariant held."""

    model_name: str
    variant: str
    bounds: str
    statistics: Statistics
    coverage: dict[str, int]
    situations: Sequence[Situation]
    violated: tuple[str, ...] = ()
    trace: tuple[Step[State], ...] = ()
    complete: bool = True
    invariants: Sequence[Invariant[State]] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return not self.violated and self.complete

    @property
    def unreached(self) -> tuple[str, ...]:
        """Required situations the search never reached: a pass would be vacuous."""
        return tuple(s.name for s in self.situations if s.applies and self.coverage.get(s.name, 0) == 0)


DEADLOCK = "Deadlock"


def check(
    model: Model[State],
    *,
    max_states: int | None = None,
    only: Sequence[str] | None = None,
    progress: Callable[[Statistics], None] | None = None,
) -> Result[State]:
    """Visit every state reachable in ``model`` breadth first and check its invariants.

    Returns at the first state where an invariant fails (or a deadlock), with a shortest trace to
    it; otherwise after the whole bounded state space was visited.  ``only`` restricts the check
    to the named invariants; ``max_states`` stops the search early and marks the result
    incomplete.

    States are remembered by a 64-bit fingerprint of their canonical key, as TLC does; the chance
    that two of ``n`` distinct states share one is about ``n * n / 2**65`` (1e-6 at 5 million).
    """
    started = time.perf_counter()
    stats = Statistics()
    coverage = {situation.name: 0 for situation in model.situations}
    parents: dict[int, int | None] = {}
    frontier: deque[tuple[int, State, int]] = deque()
    invariants = tuple(model.invariants)
    if only:
        unknown = set(only) - {inv.name for inv in invariants}
        if unknown:
            raise ValueError(f"unknown invariant {', '.join(sorted(unknown))}")
        invariants = tuple(inv for inv in invariants if inv.name in only)

    def finish(violated: tuple[str, ...] = (), fingerprint: int | None = None,
               complete: bool = True) -> Result[State]:
        stats.seconds = time.perf_counter() - started
        trace = _replay(model, parents, fingerprint) if fingerprint is not None else ()
        return Result(model.name, model.variant, model.describe_bounds(), stats, coverage,
                      tuple(model.situations), violated, trace, complete, invariants)

    def broken(state: State) -> tuple[str, ...]:
        return tuple(inv.name for inv in invariants if not inv.holds(state))

    for state in model.initial_states():
        fingerprint = hash(model.canonical(state))
        if fingerprint in parents:
            continue
        parents[fingerprint] = None
        stats.states += 1
        if violated := broken(state):
            return finish(violated, fingerprint)
        frontier.append((fingerprint, state, 0))

    while frontier:
        fingerprint, state, depth = frontier.popleft()
        stats.depth = max(stats.depth, depth)
        any_transition = False
        for transition in model.transitions(state):
            any_transition = True
            stats.transitions += 1
            for name in transition.situations:
                coverage[name] = coverage.get(name, 0) + 1
            child = hash(model.canonical(transition.state))
            if child in parents:
                continue
            parents[child] = fingerprint
            stats.states += 1
            if violated := broken(transition.state):
                stats.depth = max(stats.depth, depth + 1)
                return finish(violated, child)
            frontier.append((child, transition.state, depth + 1))
            if max_states is not None and stats.states >= max_states:
                return finish(complete=False)
        if not any_transition and not model.is_final(state):
            stats.deadlocks += 1
            return finish((DEADLOCK,), fingerprint)
        if progress is not None and stats.states % 100_000 < 3:
            stats.seconds = time.perf_counter() - started
            progress(stats)
    return finish()


def _replay(model: Model[State], parents: Mapping[int, int | None], target: int) -> tuple[Step[State], ...]:
    """Rebuild a concrete execution to ``target`` from the fingerprints along its parent chain.

    Only fingerprints are stored, so the trace is found again: from a concrete initial state,
    each step takes the transition whose canonical key has the next fingerprint.  Symmetry makes
    this always possible: equivalent states have equivalent successors.
    """
    chain: list[int] = []
    cursor: int | None = target
    while cursor is not None:
        chain.append(cursor)
        cursor = parents[cursor]
    chain.reverse()
    state = next(s for s in model.initial_states() if hash(model.canonical(s)) == chain[0])
    steps: list[Step[State]] = [Step(None, state)]
    for fingerprint in chain[1:]:
        transition = next(t for t in model.transitions(state) if hash(model.canonical(t.state)) == fingerprint)
        state = transition.state
        steps.append(Step(transition, state))
    return tuple(steps)


def format_trace(model: Model[State], trace: Sequence[Step[State]]) -> str:
    """A counterexample as numbered, readable steps, each followed by the state it led to."""
    lines: list[str] = []
    for number, step in enumerate(trace):
        title = "initial state" if step.transition is None else step.transition.label()
        lines.append(f"{number:>2}. {title}")
        lines.extend("      " + line for line in model.render(step.state).splitlines())
    return "\n".join(lines)


def format_result(model: Model[State], result: Result[State]) -> str:
    """Everything ``refka spec check`` prints: verdict, trace, statistics and coverage."""
    stats = result.statistics
    lines = [f"model {result.model_name}, variant {result.variant}, bounds {result.bounds}"]
    if result.violated:
        described = {inv.name: inv.description for inv in result.invariants}
        for name in result.violated:
            lines.append(f"VIOLATED {name}: {described.get(name, 'no state may be without a next step')}")
        lines.append(f"shortest counterexample ({len(result.trace) - 1} steps):")
        lines.append(format_trace(model, result.trace))
    elif not result.complete:
        lines.append("INCOMPLETE: the state limit stopped the search before the bounds were exhausted")
    else:
        lines.append(f"all {len(result.invariants)} invariants hold within the bounds")
    lines.append(
        f"statistics: {stats.states} states, {stats.transitions} transitions, depth {stats.depth}, "
        f"{stats.seconds:.1f} s, {stats.states_per_second:,.0f} states/s"
    )
    lines.append("non-vacuity coverage (times each situation was reached):")
    for situation in result.situations:
        count = result.coverage.get(situation.name, 0)
        mark = "" if situation.applies else "  (not required for this variant and bounds)"
        if situation.applies and count == 0:
            mark = "  NOT REACHED: the pass is vacuous for this situation"
        lines.append(f"  {count:>9}  {situation.name}: {situation.description}{mark}")
    return "\n".join(lines)
