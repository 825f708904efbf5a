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

The checker keeps, for every key's fingerprint, the fingerprint of the state it was first reached
from.  A counterexample is found again by replaying that chain through the model from an initial
state, so it is a real execution: a numbered list of steps, each followed by the model's own
rendering of the state (each replica's log, high watermark, epoch, ISR...).

Parallel search (``workers > 1``)
---------------------------------
The parallel search gives the serial one's answer, only sooner: the same verdict, the same states,
transitions and coverage on a pass, and on a failure the very counterexample the serial search
prints.  Three rules make it so:

5. *Level-synchronous.*  Every state at depth ``d`` is expanded before any state at depth
   ``d + 1``; the workers meet at a barrier after each level.  A violation is therefore still met
   at the smallest depth, and the counterexample is still a shortest one.
6. *Serial discovery order.*  Each state of a level has a *rank*: its position in the order the
   serial search would have discovered it.  A worker reports, for each state it expanded (in rank
   order), the fingerprints of the children it had not seen before, in transition order.  The
   coordinator walks the level by rank and claims each fingerprint not yet visited: the first
   claim is exactly the serial search's first discovery, so every state gets the same parent, the
   new level the same ranks, and a violation, a deadlock or the ``max_states`` limit is met at the
   same state as in the serial search.
7. *Fork, not spawn.*  Models hold closures and lambdas and cannot be pickled; a forked worker
   inherits the model object, and with it the interpreter's string-hash seed, so
   ``hash(model.canonical(state))`` gives the same fingerprint in every process.  Where the
   ``fork`` start method is missing (Windows) only ``workers=1`` is available.

The coordinator (the calling process) holds the fingerprint-to-parent table, the statistics and
the coverage totals; it never runs the model.  A worker holds concrete states only for its share
of the current level, plus the children it generated from them until they are claimed.  One level:

a. *expand*: each worker runs every transition of its states, counts coverage, and sends the
   coordinator the child fingerprints (integers only, never states) and any deadlock.  It leaves
   out children in the current or the previous level, whose fingerprints every worker is sent:
   most duplicates are there, and their states need not be kept until the claim;
b. *claim*: the coordinator claims fingerprints in rank order (rule 6) and tells each worker which
   of its children it now owns, and with which rank;
c. *balance*: a worker owns only children it generated, and one initial state would leave all but
   one worker idle, so the coordinator deals the claimed states evenly: a worker with more than
   its share pickles the surplus states and the coordinator forwards them;
d. *check*: each worker checks the invariants on its new share, reporting its lowest-ranked
   violation; the coordinator stops at the first level with a violation or a deadlock, and
   rebuilds the trace itself from the parent table.

The coordinator's share of the work is a dictionary lookup per child and the pickling of the few
states handed over; the model's transitions, canonical keys and invariants, almost all of the
time, are split evenly.  The parent table is in one process and each concrete state in one
worker, but each worker is a whole interpreter and holds a level of children until the claim:
together the processes use up to about twice the serial search's memory.  When the search stops
early, the workers have already expanded the whole last level, so transitions and coverage count
all of it.

Keys not computed twice
-----------------------
8. A child *equal* to a state already met needs no key: the key is a function of the state, so
   that key is visited already.  Computing a key was two fifths of a search of the replication
   model, and more than two steps in five there lead to a state another step of the same or
   the previous level led to (independent steps taken in either order, a step undoing another);
   so the search remembers the hash of every child of those two levels and computes the key of
   a child only at its first meeting, and skips a step that returns its own state.  States,
   transitions, coverage and traces are exactly those of the search without it.  Two different
   children of those levels sharing a hash would skip one of them, odds of the same kind as a
   fingerprint collision (see ``check``) and smaller, over two levels instead of the whole search.
   States must therefore be hashable values, as the keys are.

The search pauses Python's cycle collector while it runs (states are acyclic values, freed by
reference counting; the collector would only walk the live frontier again and again).

What it deliberately does not do: liveness (only safety invariants), or partial-order reduction
(models merge equivalent states themselves through ``canonical``).
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import time
import traceback
from array import array
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, NoReturn, Protocol, TypeVar, cast

State = TypeVar("State")


class Transition(NamedTuple, Generic[State]):
    """One step a model can take: the action's name, its named arguments and the next state.

    ``note`` says what happened in Kafka's words ("rejected: NOT_ENOUGH_REPLICAS") and
    ``situations`` names the non-vacuity situations this step reached.  A NamedTuple, not a
    frozen dataclass: a search builds one per step, and a frozen dataclass's constructor (a
    guarded ``setattr`` per field) cost more than twice as much.
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
    """How much a check did; ``workers`` is the number of processes that searched."""

    states: int = 0
    transitions: int = 0
    depth: int = 0
    seconds: float = 0.0
    deadlocks: int = 0
    workers: int = 1

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


def fork_available() -> bool:
    """Whether this platform can fork workers (rule 7); without it only ``workers=1`` runs."""
    return "fork" in multiprocessing.get_all_start_methods()


def default_workers() -> int:
    """The CPUs this process may use, at most 8; 1 where workers cannot be forked."""
    if not fork_available():
        return 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(usable, 8))


def check(
    model: Model[State],
    *,
    max_states: int | None = None,
    only: Sequence[str] | None = None,
    progress: Callable[[Statistics], None] | None = None,
    workers: int = 1,
) -> Result[State]:
    """Visit every state reachable in ``model`` breadth first and check its invariants.

    Returns at the first state where an invariant fails (or a deadlock), with a shortest trace to
    it; otherwise after the whole bounded state space was visited.  ``only`` restricts the check
    to the named invariants; ``max_states`` stops the search early and marks the result
    incomplete.  ``progress`` is called with the statistics so far, now and then.

    ``workers > 1`` forks that many worker processes (see "Parallel search" above) and returns
    the same verdict, counterexample, state count and, on a pass, the same transition count and
    coverage as ``workers=1``.  When the search stops early (violation, deadlock or
    ``max_states``) the state count still matches the serial search exactly, but transitions and
    coverage include the whole last level, which the workers expanded before the stop.  States
    that a worker hands to another are pickled, so the parallel search needs picklable states
    (NamedTuples and frozen dataclasses defined at module level are).  ``progress`` is then
    called once per level.  Raises ``ValueError`` for ``workers < 1``, or ``workers > 1`` where
    fork is unavailable; an exception raised by the model in a worker is raised again here, with
    the worker's traceback as its cause.

    States are remembered by a 64-bit fingerprint of their canonical key, as TLC does; the chance
    that two of ``n`` distinct states share one is about ``n * n / 2**65`` (1e-6 at 5 million).
    """
    invariants = _selected_invariants(model, only)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    if workers > 1 and not fork_available():
        raise ValueError("a parallel check needs the fork start method, unavailable here: use workers=1")
    with _cycle_collector_paused():
        if workers > 1:
            return _ParallelSearch(model, invariants, max_states, progress, workers).run()
        return _serial_check(model, invariants, max_states, progress)


@contextlib.contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the search, and restore it after.

    The search allocates millions of small tuples and keeps a whole level of states alive.  Each
    automatic collection walks the tracked objects still alive, the frontier, and finds nothing
    to free: states are immutable values without reference cycles, freed by reference counting
    alone.  Measured, that walk was a tenth of a search's time.  Cycles a model might make are
    collected as usual once the search returns (in a worker, when the process ends).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _selected_invariants(model: Model[State], only: Sequence[str] | None) -> tuple[Invariant[State], ...]:
    invariants = tuple(model.invariants)
    if only:
        unknown = set(only) - {inv.name for inv in invariants}
        if unknown:
            raise ValueError(f"unknown invariant {', '.join(sorted(unknown))}")
        invariants = tuple(inv for inv in invariants if inv.name in only)
    return invariants


def _broken(invariants: Sequence[Invariant[State]], state: State) -> tuple[str, ...]:
    return tuple(inv.name for inv in invariants if not inv.holds(state))


def _serial_check(
    model: Model[State],
    invariants: tuple[Invariant[State], ...],
    max_states: int | None,
    progress: Callable[[Statistics], None] | None,
) -> Result[State]:
    started = time.perf_counter()
    stats = Statistics()
    coverage = {situation.name: 0 for situation in model.situations}
    parents: dict[int, int | None] = {}
    frontier: deque[tuple[int, State, int]] = deque()

    def finish(violated: tuple[str, ...] = (), fingerprint: int | None = None,
               complete: bool = True) -> Result[State]:
        stats.seconds = time.perf_counter() - started
        trace = _replay(model, parents, fingerprint) if fingerprint is not None else ()
        return Result(model.name, model.variant, model.describe_bounds(), stats, coverage,
                      tuple(model.situations), violated, trace, complete, invariants)

    for state in model.initial_states():
        fingerprint = hash(model.canonical(state))
        if fingerprint in parents:
            continue
        parents[fingerprint] = None
        stats.states += 1
        if violated := _broken(invariants, state):
            return finish(violated, fingerprint)
        frontier.append((fingerprint, state, 0))

    # Rule 8: the states (not keys) met as children of the level being expanded and of the one
    # before, by their hash; a child met there again already has its key in ``parents``.
    met: set[int] = set()
    met_before: set[int] = set()
    level_depth = 0
    while frontier:
        fingerprint, state, depth = frontier.popleft()
        if depth != level_depth:
            met_before, met, level_depth = met, set(), depth
        stats.depth = max(stats.depth, depth)
        any_transition = False
        for transition in model.transitions(state):
            any_transition = True
            stats.transitions += 1
            for name in transition.situations:
                coverage[name] = coverage.get(name, 0) + 1
            if transition.state is state:
                continue  # a step that changes nothing: the state itself, visited
            raw = hash(transition.state)
            if raw in met or raw in met_before:
                continue
            met.add(raw)
            child = hash(model.canonical(transition.state))
            if child in parents:
                continue
            parents[child] = fingerprint
            stats.states += 1
            if violated := _broken(invariants, transition.state):
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


# --- parallel search: messages ------------------------------------------------------------------
# The coordinator sends Expand, Keep, Take and Stop; a worker answers Expanded, Gave and Checked,
# or Failed when the model raised.  Fingerprints travel as array("q") (hash() is a C long).


class _Owned(NamedTuple, Generic[State]):
    """A state a worker owns: its rank in the level (rule 6), its fingerprint, the state itself."""

    rank: int
    fingerprint: int
    state: State


class _Expand(NamedTuple):
    """Expand every owned state of the current level."""


class _Expanded(NamedTuple):
    """New child fingerprints, grouped by parent: ``per_parent[i]`` children of the i-th owned
    state in rank order, in transition order.  ``deadlock`` is the rank of the first owned state
    with no transition that is not final; expansion stops there."""

    children: array[int]
    per_parent: array[int]
    transitions: int
    coverage: dict[str, int]
    deadlock: int | None


class _Keep(NamedTuple):
    """Which children (indices into ``_Expanded.children``) the worker won, with their ranks;
    ``handovers`` lists (worker, count) to give away, taken from the end of the won states."""

    won: array[int]
    ranks: array[int]
    handovers: list[tuple[int, int]]


class _Gave(NamedTuple):
    """Pickled lists of ``_Owned`` states, per receiving worker."""

    parcels: dict[int, bytes]


class _Take(NamedTuple):
    """States handed over by other workers; after taking them, check the invariants.  ``level``
    is the fingerprints of the whole new level, for the worker's duplicate filter."""

    parcels: list[bytes]
    level: array[int]


class _Violation(NamedTuple):
    """A state breaking invariants; ordered by rank, so the smallest is the serial search's first."""

    rank: int
    fingerprint: int
    violated: tuple[str, ...]


class _Checked(NamedTuple):
    """The lowest-ranked owned state breaking an invariant, if any."""

    violation: _Violation | None


class _Stop(NamedTuple):
    """The search is over: return."""


class _Failed(NamedTuple):
    """The model raised in a worker: the exception (pickled when it can be) and its traceback."""

    exception: bytes | None
    description: str
    traceback: str


class _RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, chained as the cause of its re-raise."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f"\n\"\"\"\n{self.text}\"\"\""


def _failure(error: BaseException) -> _Failed:
    text = traceback.format_exc()
    payload: bytes | None
    try:
        payload = pickle.dumps(error)
        pickle.loads(payload)  # an exception class with a custom __init__ may not rebuild
    except Exception:
        payload = None
    return _Failed(payload, f"{type(error).__name__}: {error}", text)


def _raise_failure(worker: int, failure: _Failed) -> NoReturn:
    error: BaseException
    if failure.exception is not None:
        error = pickle.loads(failure.exception)
    else:
        error = RuntimeError(f"checker worker {worker} raised {failure.description}")
    raise error from _RemoteTraceback(failure.traceback)


# --- parallel search: the worker ----------------------------------------------------------------


class _Worker(Generic[State]):
    """One worker's share of the search: its states of the current level, then their children."""

    def __init__(self, model: Model[State], invariants: Sequence[Invariant[State]],
                 frontier: list[_Owned[State]], level: Iterable[int]) -> None:
        self.model = model
        self.invariants = invariants
        self.frontier = frontier
        self.children: array[int] = array("q")
        self.child_states: list[State] = []
        # The fingerprints of the current and the previous level, whoever owns them.  A child is
        # most often a duplicate of a state in one of these two levels; such children are not
        # sent (the coordinator would find them visited) and their states are not kept.
        self.current_level: set[int] = set(level)
        self.previous_level: set[int] = set()
        self.met: set[int] = set()  # rule 8: hashes of the children of the last expansion

    def expand(self) -> _Expanded:
        model = self.model
        current, previous = self.current_level, self.previous_level
        seen: set[int] = set()  # children already sent in this level
        children: array[int] = array("q")
        per_parent: array[int] = array("q")
        child_states: list[State] = []
        transitions = 0
        coverage: dict[str, int] = {}
        deadlock: int | None = None
        frontier, self.frontier = deque(self.frontier), []
        # Rule 8, as in the serial search: children this worker met in this and the last expansion.
        met: set[int] = set()
        met_before, self.met = self.met, met
        while frontier:
            owned = frontier.popleft()  # an expanded state is dropped at once, as in the serial search
            new_children = 0
            any_transition = False
            for transition in model.transitions(owned.state):
                any_transition = True
                transitions += 1
                for name in transition.situations:
                    coverage[name] = coverage.get(name, 0) + 1
                if transition.state is owned.state:
                    continue  # a step that changes nothing: the state itself, visited
                raw = hash(transition.state)
                if raw in met or raw in met_before:
                    continue
                met.add(raw)
                child = hash(model.canonical(transition.state))
                if child in seen or child in current or child in previous:
                    continue
                seen.add(child)
                children.append(child)
                child_states.append(transition.state)
                new_children += 1
            per_parent.append(new_children)
            if not any_transition and not model.is_final(owned.state):
                deadlock = owned.rank
                break
        self.children, self.child_states = children, child_states
        return _Expanded(children, per_parent, transitions, coverage, deadlock)

    def keep(self, message: _Keep) -> _Gave:
        owned = [_Owned(rank, self.children[index], self.child_states[index])
                 for index, rank in zip(message.won, message.ranks, strict=True)]
        self.children, self.child_states = array("q"), []
        parcels: dict[int, bytes] = {}
        for receiver, count in message.handovers:
            parcels[receiver] = pickle.dumps(owned[len(owned) - count:], pickle.HIGHEST_PROTOCOL)
            del owned[len(owned) - count:]
        self.frontier = owned
        return _Gave(parcels)

    def take(self, message: _Take) -> _Checked:
        self.previous_level, self.current_level = self.current_level, set(message.level)
        for parcel in message.parcels:
            self.frontier.extend(pickle.loads(parcel))
        # Kept and received states are each in rank order: sorting merges the runs.
        self.frontier.sort(key=lambda owned: owned.rank)
        for owned in self.frontier:
            if violated := _broken(self.invariants, owned.state):
                return _Checked(_Violation(owned.rank, owned.fingerprint, violated))
        return _Checked(None)


def _serve(model: Model[State], invariants: Sequence[Invariant[State]], frontier: list[_Owned[State]],
           level: Iterable[int], connection: multiprocessing.connection.Connection,
           inherited: Sequence[multiprocessing.connection.Connection]) -> None:
    """A worker process's main loop: answer the coordinator until Stop or a closed pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for other in inherited:  # the coordinator's ends: a worker must see EOF when it dies
        other.close()
    gc.freeze()  # the collector leaves the heap inherited by fork alone, so its pages stay shared
    gc.disable()  # as in the coordinator (_cycle_collector_paused); the process ends with the search
    worker = _Worker(model, invariants, frontier, level)
    try:
        while True:
            try:
                message = connection.recv()
            except EOFError:
                return
            if isinstance(message, _Expand):
                connection.send(worker.expand())
            elif isinstance(message, _Keep):
                connection.send(worker.keep(message))
            elif isinstance(message, _Take):
                connection.send(worker.take(message))
            else:
                return
    except Exception as error:
        try:
            connection.send(_failure(error))
        except OSError:
            pass


# --- parallel search: the coordinator -----------------------------------------------------------


def _plan_handovers(won: Sequence[int]) -> list[list[tuple[int, int]]]:
    """Even out the workers' shares: per worker, the (receiver, count) pairs it hands over.

    Every worker ends with ``total // n`` states, or one more: the ``total % n`` extra states stay
    with the workers that won the most, so that as few states as possible are pickled.
    """
    total, workers = sum(won), len(won)
    target = [total // workers] * workers
    for worker in sorted(range(workers), key=lambda w: -won[w])[: total % workers]:
        target[worker] += 1
    surplus = [(w, won[w] - target[w]) for w in range(workers) if won[w] > target[w]]
    deficit = [(w, target[w] - won[w]) for w in range(workers) if won[w] < target[w]]
    plan: list[list[tuple[int, int]]] = [[] for _ in won]
    while surplus and deficit:
        (giver, extra), (receiver, need) = surplus[-1], deficit[-1]
        count = min(extra, need)
        plan[giver].append((receiver, count))
        surplus[-1], deficit[-1] = (giver, extra - count), (receiver, need - count)
        if extra == count:
            surplus.pop()
        if need == count:
            deficit.pop()
    return plan


class _Claim(NamedTuple):
    """The outcome of claiming one level: per worker the indices of the children it won and their
    new ranks; the new level's fingerprints by rank; whether ``max_states`` stopped the claim."""

    won: list[array[int]]
    ranks: list[array[int]]
    fingerprints: array[int]
    limit_reached: bool


_Reply = TypeVar("_Reply", _Expanded, _Gave, _Checked)


class _ParallelSearch(Generic[State]):
    """The coordinator: the parent table, statistics and coverage; the workers do the model work.

    For the current level it knows each state's fingerprint and owner by rank
    (``level_fingerprints``, ``level_owners``), which is all rule 6 needs.
    """

    def __init__(self, model: Model[State], invariants: tuple[Invariant[State], ...],
                 max_states: int | None, progress: Callable[[Statistics], None] | None,
                 workers: int) -> None:
        self.model = model
        self.invariants = invariants
        self.max_states = max_states
        self.progress = progress
        self.worker_count = workers
        self.started = time.perf_counter()
        self.stats = Statistics(workers=workers)
        self.coverage = {situation.name: 0 for situation in model.situations}
        self.parents: dict[int, int | None] = {}
        self.level_fingerprints: array[int] = array("q")
        self.level_owners: array[int] = array("H")
        self.connections: list[multiprocessing.connection.Connection] = []
        self.processes: list[multiprocessing.process.BaseProcess] = []

    def run(self) -> Result[State]:
        initial: list[_Owned[State]] = []
        for state in self.model.initial_states():
            fingerprint = hash(self.model.canonical(state))
            if fingerprint in self.parents:
                continue
            self.parents[fingerprint] = None
            self.stats.states += 1
            if violated := _broken(self.invariants, state):
                return self.finish(violated, fingerprint)
            initial.append(_Owned(len(initial), fingerprint, state))
        clean = False
        try:
            self.start_workers(initial)
            result = self.search()
            clean = True
            return result
        finally:
            self.stop_workers(clean)

    def start_workers(self, initial: list[_Owned[State]]) -> None:
        """Fork the workers, dealing the initial states round-robin."""
        context = multiprocessing.get_context("fork")
        level = [owned.fingerprint for owned in initial]
        for worker in range(self.worker_count):
            ours, theirs = context.Pipe()
            share = [owned for owned in initial if owned.rank % self.worker_count == worker]
            process = context.Process(
                target=_serve, name=f"refka-checker-{worker}", daemon=True,
                args=(self.model, self.invariants, share, level, theirs, [*self.connections, ours]))
            process.start()
            theirs.close()  # only the worker holds its end: EOF here when it dies
            self.connections.append(ours)
            self.processes.append(process)
        for owned in initial:
            self.level_fingerprints.append(owned.fingerprint)
            self.level_owners.append(owned.rank % self.worker_count)

    def search(self) -> Result[State]:
        """Expand, claim, balance and check, one level at a time (rules 5 and 6)."""
        while self.level_fingerprints:
            expanded = self.exchange([_Expand()] * self.worker_count, _Expanded)
            for reply in expanded:
                self.stats.transitions += reply.transitions
                for name, count in reply.coverage.items():
                    self.coverage[name] = self.coverage.get(name, 0) + count
            deadlocks = [reply.deadlock for reply in expanded if reply.deadlock is not None]
            deadlock = min(deadlocks) if deadlocks else None
            states_before = self.stats.states
            claimed = self.claim(expanded, deadlock)
            owners, checked = self.hand_out(claimed)
            violations = [reply.violation for reply in checked if reply.violation is not None]
            if violations:
                first = min(violations)
                self.stats.states = states_before + first.rank + 1  # what the serial search had seen
                self.stats.depth += 1
                return self.finish(first.violated, first.fingerprint)
            if claimed.limit_reached:
                return self.finish(complete=False)
            if deadlock is not None:
                self.stats.deadlocks += 1
                return self.finish((DEADLOCK,), self.level_fingerprints[deadlock])
            self.level_fingerprints, self.level_owners = claimed.fingerprints, owners
            if claimed.fingerprints:
                self.stats.depth += 1
            if self.progress is not None:
                self.stats.seconds = time.perf_counter() - self.started
                self.progress(self.stats)
        return self.finish()

    def claim(self, expanded: Sequence[_Expanded], deadlock: int | None) -> _Claim:
        """Walk the level in rank order and claim every child fingerprint not yet visited.

        This is the serial search's discovery order (rule 6): parents by rank, each parent's
        children in transition order.  States after a deadlocked one are not walked (the serial
        search stops there), and claiming stops at ``max_states``.
        """
        won: list[array[int]] = [array("q") for _ in expanded]
        ranks: list[array[int]] = [array("q") for _ in expanded]
        fingerprints: array[int] = array("q")
        next_child = [0] * len(expanded)
        next_parent = [0] * len(expanded)
        parents, stats, limit = self.parents, self.stats, self.max_states
        walked = len(self.level_fingerprints) if deadlock is None else deadlock
        for rank in range(walked):
            worker = self.level_owners[rank]
            reply = expanded[worker]
            first = next_child[worker]
            next_child[worker] += reply.per_parent[next_parent[worker]]
            next_parent[worker] += 1
            parent = self.level_fingerprints[rank]
            for index in range(first, next_child[worker]):
                child = reply.children[index]
                if child in parents:
                    continue
                parents[child] = parent
                won[worker].append(index)
                ranks[worker].append(len(fingerprints))
                fingerprints.append(child)
                stats.states += 1
                if limit is not None and stats.states >= limit:
                    return _Claim(won, ranks, fingerprints, True)
        return _Claim(won, ranks, fingerprints, False)

    def hand_out(self, claimed: _Claim) -> tuple[array[int], list[_Checked]]:
        """Tell each worker what it won, even the shares out, and have the invariants checked.

        Returns the owner of every rank of the new level and the workers' check results.
        """
        plan = _plan_handovers([len(won) for won in claimed.won])
        owners: array[int] = array("H", bytes(2 * len(claimed.fingerprints)))
        for worker, ranks in enumerate(claimed.ranks):
            kept = list(ranks)
            for rank in kept:
                owners[rank] = worker
            for receiver, count in plan[worker]:  # as _Worker.keep does: from the end
                for rank in kept[len(kept) - count:]:
                    owners[rank] = receiver
                del kept[len(kept) - count:]
        gave = self.exchange([_Keep(won, ranks, handovers) for won, ranks, handovers
                              in zip(claimed.won, claimed.ranks, plan, strict=True)], _Gave)
        parcels: list[list[bytes]] = [[] for _ in gave]
        for reply in gave:
            for receiver, parcel in reply.parcels.items():
                parcels[receiver].append(parcel)
        return owners, self.exchange([_Take(received, claimed.fingerprints) for received in parcels], _Checked)

    def exchange(self, messages: Sequence[object], reply_type: type[_Reply]) -> list[_Reply]:
        """Send each worker its message and wait for all replies, raising a worker's failure."""
        for worker, (connection, message) in enumerate(zip(self.connections, messages, strict=True)):
            try:
                connection.send(message)
            except OSError:
                self.lost(worker)
        replies: dict[int, _Reply] = {}
        waiting = {connection: worker for worker, connection in enumerate(self.connections)}
        while waiting:
            for ready in multiprocessing.connection.wait(list(waiting)):
                worker = waiting.pop(cast(multiprocessing.connection.Connection, ready))
                try:
                    reply = cast(multiprocessing.connection.Connection, ready).recv()
                except EOFError:
                    self.lost(worker)
                if isinstance(reply, _Failed):
                    _raise_failure(worker, reply)
                if not isinstance(reply, reply_type):
                    raise RuntimeError(f"checker worker {worker} answered {reply!r}")
                replies[worker] = reply
        return [replies[worker] for worker in range(self.worker_count)]

    def lost(self, worker: int) -> NoReturn:
        process = self.processes[worker]
        process.join(timeout=1)
        raise RuntimeError(f"checker worker {worker} exited unexpectedly (exit code {process.exitcode})")

    def stop_workers(self, clean: bool) -> None:
        """Stop every worker: by message after a search, by SIGTERM after an error or Ctrl-C."""
        for connection in self.connections:
            if clean:
                try:
                    connection.send(_Stop())
                except OSError:
                    pass
            connection.close()
        for process in self.processes:
            process.join(timeout=10 if clean else 0)
            if process.is_alive():
                process.terminate()
                process.join()
            process.close()

    def finish(self, violated: tuple[str, ...] = (), fingerprint: int | None = None,
               complete: bool = True) -> Result[State]:
        self.stats.seconds = time.perf_counter() - self.started
        trace = _replay(self.model, self.parents, fingerprint) if fingerprint is not None else ()
        return Result(self.model.name, self.model.variant, self.model.describe_bounds(), self.stats,
                      self.coverage, tuple(self.model.situations), violated, trace, complete, self.invariants)


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
        + (f" with {stats.workers} workers" if stats.workers > 1 else "")
    )
    lines.append("non-vacuity coverage (times each situation was reached):")
    for situation in result.situations:
        count = result.coverage.get(situation.name, 0)
        mark = "" if situation.applies else "  (not required for this variant and bounds)"
        if situation.applies and count == 0:
            mark = "  NOT REACHED: the pass is vacuous for this situation"
        lines.append(f"  {count:>9}  {situation.name}: {situation.description}{mark}")
    return "\n".join(lines)
