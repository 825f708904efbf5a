"""Shrinking: a failing run's fault schedule reduced to a minimal one that still fails the same way.

Theory of operation
-------------------
A failing seed comes with a schedule of perhaps dozens of faults, most of them irrelevant, and
with clients that may not matter either.  :func:`shrink` looks for a smaller run that fails
with the *same* first failure (the same invariant name, or the same checker verdict), replaying
each candidate with the same seed and configuration -- so everything else about the run (node
timers, network draws) stays as close to the original as the changed schedule allows.  The
idempotent producer's own faults, drawn from the seed in a swarm, are first pinned to what the
failing run used, so that they become part of the run's description and can be taken away.
Four passes, repeated until none helps:

1. **ddmin** (Zeller and Hildebrandt's delta debugging) over the list of faults: try removing
   each of ``n`` chunks (and keeping each chunk alone); on success continue from the smaller
   list, else double ``n``; it ends *1-minimal*: removing any single fault makes the run pass.
2. **Fewer clients**: without the acks=1 producer; the idempotent producer's connections no
   longer breaking; ddmin over the times a new producer instance takes over, then over the
   group consumers' restarts.
3. **Shorter faults**: halve each fault's duration while the run still fails.
4. **Shorter run**: cut the safety phase to just after the last fault heals.

The result replays from its own description (:func:`chaos.sim.faults.schedule_to_json`, the
producer's faults and the seed: ``refka sim run`` takes each as a flag), and :func:`describe`
prints it like the model checker's counterexample: one fault a line.
Each candidate is a whole simulation, so shrinking costs one run per candidate tried; a budget
of runs bounds it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from .clients import BrokenConnections
from .faults import Fault
from .run import SimConfig, SimResult, simulate

Runner = Callable[[SimConfig], SimResult]


@dataclass
class Shrunk:
    original: SimResult
    result: SimResult  # the smallest failing run found
    runs: int  # simulations run while shrinking

    @property
    def config(self) -> SimConfig:
        return self.result.config


def shrink(failing: SimResult, runner: Runner = simulate, max_runs: int = 200) -> Shrunk:
    """The smallest schedule found (within ``max_runs`` runs) failing like ``failing``."""
    if not failing.failed:
        raise ValueError("only a failing run can be shrunk")
    target = failing.failure
    runs = 0
    best = failing

    def fails(config: SimConfig) -> SimResult | None:
        nonlocal runs
        if runs >= max_runs:
            return None
        runs += 1
        result = runner(config)
        return result if result.failed and result.failure == target else None

    # An invariant broken in the safety phase needs no liveness phase to be seen again: candidates
    # stop when the safety phase ends (a Liveness or checker failure needs whole runs).  One broken
    # only while healing (a restarted node truncating, say) shows when the safety-only replay passes.
    safety_failure = bool(failing.violations) and target != "Liveness"
    base = replace(failing.config, faults=list(failing.faults), keep_trace=False,
                   liveness=failing.config.liveness and not safety_failure,
                   producer_restarts=failing.producer_restarts, broken_connections=failing.broken_connections,
                   consumer_restarts=failing.consumer_restarts if failing.config.group_consumers else None)
    if base.liveness != failing.config.liveness:
        found = fails(base)
        if found is None:
            base = replace(base, liveness=True)
        else:
            best = found
    if best is failing:  # every pass starts from the pinned description, not from the drawn one
        best = replace(failing, config=base)
    while True:
        before = _size(best)
        best = _ddmin(best, list(best.faults), partial(_with_faults, base), fails)
        best = _fewer_clients(best, fails)
        best = _shorten_faults(best, fails)
        best = _shorten_run(best, fails)
        base = best.config
        if _size(best) == before or runs >= max_runs:
            return Shrunk(failing, best, runs)


def _with_faults(config: SimConfig, faults: list[Fault]) -> SimConfig:
    return replace(config, faults=list(faults))


def _size(result: SimResult) -> tuple[int, ...]:
    """What shrinking makes smaller; a pass that leaves all of it unchanged did not help."""
    config = result.config
    return (len(result.faults), len(result.producer_restarts), len(result.consumer_restarts),
            int(result.broken_connections.rate > 0),
            int(config.acks1_producer), sum(f.duration_ms for f in result.faults), config.duration_ms)


def _ddmin(best: SimResult, items: list[Any], config_of: Callable[[list[Any]], SimConfig],
           fails: Callable[[SimConfig], SimResult | None]) -> SimResult:
    """Zeller's ddmin over ``items`` (faults, or a producer's restart times): try each chunk alone,
    then each complement, at finer and finer chunks; ``config_of`` makes the run of a subset."""
    if items and (found := fails(config_of([]))) is not None:
        return found  # it fails without any of them at all
    chunks = 2
    while len(items) >= 2:
        size = -(-len(items) // chunks)  # ceiling
        parts = [items[i:i + size] for i in range(0, len(items), size)]
        complements = [([item for other in parts if other is not part for item in other], max(chunks - 1, 2))
                       for part in parts] if len(parts) > 2 else []
        candidates = [(part, 2) for part in parts] + complements  # Zeller's order: subsets, then complements
        for candidate, next_chunks in candidates:
            found = fails(config_of(candidate))
            if found is not None:
                best, items, chunks = found, candidate, next_chunks
                break
        else:
            if chunks >= len(items):
                return best
            chunks = min(len(items), chunks * 2)
    return best


def _fewer_clients(best: SimResult, fails: Callable[[SimConfig], SimResult | None]) -> SimResult:
    """Without the acks=1 producer, without the idempotent producer's broken connections, with
    as few of its new instances as still fail."""
    if best.config.acks1_producer and (found := fails(replace(best.config, acks1_producer=False))) is not None:
        best = found
    if best.broken_connections.rate > 0 and \
            (found := fails(replace(best.config, broken_connections=BrokenConnections()))) is not None:
        best = found
    config = best.config
    best = _ddmin(best, list(best.producer_restarts), lambda times: replace(config, producer_restarts=tuple(times)),
                  fails)
    if not best.config.group_consumers:
        return best
    config = best.config
    return _ddmin(best, list(best.consumer_restarts), lambda times: replace(config, consumer_restarts=tuple(times)),
                  fails)


def _shorten_faults(best: SimResult, fails: Callable[[SimConfig], SimResult | None]) -> SimResult:
    faults = list(best.faults)
    for index in range(len(faults)):
        while faults[index].duration_ms > 100:
            shorter = [*faults[:index], replace(faults[index], duration_ms=faults[index].duration_ms // 2),
                       *faults[index + 1:]]
            found = fails(replace(best.config, faults=shorter))
            if found is None:
                break
            best, faults = found, shorter
    return best


def _shorten_run(best: SimResult, fails: Callable[[SimConfig], SimResult | None]) -> SimResult:
    end = max((fault.at_ms + fault.duration_ms for fault in best.faults), default=0) + 1_000
    if end >= best.config.duration_ms:
        return best
    found = fails(replace(best.config, duration_ms=end))
    return found if found is not None else best


def describe(shrunk: Shrunk) -> str:
    """The minimal failing run, printed like a counterexample."""
    result, config = shrunk.result, shrunk.config
    lines = [f"minimal failing run ({shrunk.runs} runs to shrink {len(shrunk.original.faults)} faults "
             f"to {len(result.faults)}): seed {config.seed}, {config.nodes} nodes, "
             f"safety phase {config.duration_ms} ms",
             *(f"  {number}. {fault.describe()}" for number, fault in enumerate(result.faults, 1))]
    lines += [f"  producer: a new instance takes over at +{at}ms" for at in result.producer_restarts]
    if result.broken_connections.rate > 0:
        lines.append(f"  producer: {describe_broken(result.broken_connections)}")
    lines += [f"  consumer: a member {'leaves' if clean else 'dies'} at +{at}ms and a new one joins"
              for at, clean in result.consumer_restarts]
    if not config.acks1_producer:
        lines.append("  (no acks=1 producer)")
    lines += [f"  => {violation.describe()}" for violation in result.violations[:1]]
    if not result.violations and result.verdict is not None:
        lines.append(f"  => checker: {result.verdict.verdict} ({'; '.join(result.verdict.reasons)})")
    return "\n".join(lines)


def describe_broken(broken: BrokenConnections) -> str:
    return (f"connections break under {broken.rate:.0%} of Produce requests, {broken.read_first:.0%} of them "
            f"read by the broker first and handled up to {broken.max_delay_ms}ms late")
