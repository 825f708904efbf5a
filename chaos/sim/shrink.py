"""Shrinking: a failing run's fault schedule reduced to a minimal one that still fails the same way.

Theory of operation
-------------------
A failing seed comes with a schedule of perhaps dozens of faults, most of them irrelevant.
:func:`shrink` looks for a smaller schedule that fails with the *same* first failure (the same
invariant name, or the same checker verdict), replaying each candidate with the same seed and
configuration -- so everything else about the run (node timers, network draws) stays as close
to the original as the changed schedule allows.  Three passes, repeated until none helps:

1. **ddmin** (Zeller and Hildebrandt's delta debugging) over the list of faults: try removing
   each of ``n`` chunks (and keeping each chunk alone); on success continue from the smaller
   list, else double ``n``; it ends *1-minimal*: removing any single fault makes the run pass.
2. **Shorter faults**: halve each fault's duration while the run still fails.
3. **Shorter run**: cut the safety phase to just after the last fault heals.

The result replays from its own description (:func:`chaos.sim.faults.schedule_to_json` plus the
seed), and :func:`describe` prints it like the model checker's counterexample: one fault a line.
Each candidate is a whole simulation, so shrinking costs one run per candidate tried; a budget
of runs bounds it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

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
                   liveness=failing.config.liveness and not safety_failure)
    if base.liveness != failing.config.liveness:
        found = fails(base)
        if found is None:
            base = replace(base, liveness=True)
        else:
            best = found
    while True:
        before = (len(best.faults), sum(f.duration_ms for f in best.faults), best.config.duration_ms)
        best = _ddmin(best, base, fails)
        best = _shorten_faults(best, fails)
        best = _shorten_run(best, fails)
        base = best.config
        after = (len(best.faults), sum(f.duration_ms for f in best.faults), best.config.duration_ms)
        if after == before or runs >= max_runs:
            return Shrunk(failing, best, runs)


def _with(config: SimConfig, faults: list[Fault]) -> SimConfig:
    return replace(config, faults=list(faults))


def _ddmin(best: SimResult, base: SimConfig, fails: Callable[[SimConfig], SimResult | None]) -> SimResult:
    """Zeller's ddmin: try each chunk alone, then each complement, at finer and finer chunks."""
    faults = list(best.faults)
    if faults and (found := fails(_with(base, []))) is not None:
        return found  # it fails without any fault at all
    chunks = 2
    while len(faults) >= 2:
        size = -(-len(faults) // chunks)  # ceiling
        parts = [faults[i:i + size] for i in range(0, len(faults), size)]
        complements = [([fault for other in parts if other is not part for fault in other], max(chunks - 1, 2))
                       for part in parts] if len(parts) > 2 else []
        candidates = [(part, 2) for part in parts] + complements  # Zeller's order: subsets, then complements
        for candidate, next_chunks in candidates:
            found = fails(_with(base, candidate))
            if found is not None:
                best, faults, chunks = found, candidate, next_chunks
                break
        else:
            if chunks >= len(faults):
                return best
            chunks = min(len(faults), chunks * 2)
    return best


def _shorten_faults(best: SimResult, fails: Callable[[SimConfig], SimResult | None]) -> SimResult:
    faults = list(best.faults)
    for index in range(len(faults)):
        while faults[index].duration_ms > 100:
            shorter = [*faults[:index], replace(faults[index], duration_ms=faults[index].duration_ms // 2),
                       *faults[index + 1:]]
            found = fails(_with(best.config, shorter))
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
    lines += [f"  => {violation.describe()}" for violation in result.violations[:1]]
    if not result.violations and result.verdict is not None:
        lines.append(f"  => checker: {result.verdict.verdict} ({'; '.join(result.verdict.reasons)})")
    return "\n".join(lines)
