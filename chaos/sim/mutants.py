"""``refka sim mutants``: switch off the implementation's guards one at a time; the simulator must notice.

Theory of operation
-------------------
``refka spec mutants`` shows, in the models, that every guard is needed: without it an invariant
breaks.  This does the same to the real broker and controller.  Each check site of a guard in
``reference/`` reads ``if guards.on("name")`` under the spec's name (:mod:`reference.guards`
lists them).  For each guard:

1. Run seeds ``first, first+1, ...`` (each drawing its own fault mix, as ``refka sim swarm``) with
   that guard -- and only it -- switched off in the simulating process
   (``SimConfig.guards_off``), and stop at the first seed that fails.
2. Shrink that run (:mod:`chaos.sim.shrink`) to a minimal fault schedule that fails the same way.
3. A guard no seed within the bound catches is a *survivor*: either the guard is not needed, or
   the simulator's fault mix and clients never create the situation it protects against.  Both
   are worth knowing, and the command exits 1.

Mutant runs (and their baseline) use :data:`MUTANT_SETTINGS` over the simulator's node settings:
``replica.fetch.max.bytes=1`` makes a follower fetch one batch per request, so one that fell
behind stays behind for many fetches.  With the default 1 MiB a follower catches up in a single
fetch, and the guards about lagging followers (``expand_needs_caught_up``, ``clean_election``,
...) then protect a window one message long that the fault mix almost never hits.

What catches the producer's guards: the simulated idempotent producer (:mod:`chaos.sim.clients`)
keeps five batches in flight per partition, retries with the original epoch and sequence, meets
broken connections whose requests the broker handles late (zombie requests), and is replaced on
some seeds by a new instance with the next epoch.  So ``sequence_check`` sees a later batch before
an earlier one, ``five_batch_window`` a retry of a batch that is not the last, and
``epoch_fencing`` a late batch of a replaced instance; the idempotence invariants of
:mod:`chaos.sim.invariants` (and ``AckedOnMinIsr`` for ``min_insync_replicas``) notice.

What catches ``expand_after_epoch_start`` (KIP-320, KAFKA-7128): the fault draw's
*failover-while-lagging* shape (:func:`chaos.sim.faults.draw_failover_while_lagging`).  A node
paused long enough to leave the ISR resumes just after the leader was isolated (its links lossy
just before, so the follower that takes over has not heard the last high watermark); the new
leader's high watermark lags its log end, and the resumed follower, catching up a batch per
fetch, is proposed for the ISR at an offset between the two, lacking records the old leader
acknowledged (``IsrJoinHoldsAcknowledged``; ``StrongIsr`` too when the controller adds it before
its next fetch answer arrives, the old leader still presuming it leads).  The coverage probe
``follower-between-hw-and-epoch`` counts the moments where the rule decides.

What catches ``unclean_shutdown_leaves_isr`` (KIP-966): a power loss (:mod:`chaos.sim.disk`)
in the fault draw's *lost tail, then failover* shape (:func:`chaos.sim.faults.draw_lost_tail_failover`).
With the other follower out of the ISR, a follower of the ISR loses power and its unflushed tail;
fenced, it moves to the ELR, boots and registers without a clean-shutdown epoch; then the leader
is isolated.  Without the rule the follower stays in the ELR and is elected without records that were
acknowledged (LeaderCompleteness) -- when the power loss happened to cut that partition's
acknowledged tail, which it does on about half the shapes.

What catches ``match_epoch_lineage`` (KIP-279): the *leader without the follower's epoch* shape
(:func:`chaos.sim.faults.draw_leader_without_the_followers_epoch`): a follower holds records of
an epoch its next leader never had, starting below that leader's end of the epoch they share.
Without the rule the follower truncates only to the KIP-101 point, keeps its own newer-epoch
records, and every Fetch it sends names that epoch again and is answered with the same diverging
epoch: it never appends and never rejoins the ISR.  Nothing unsafe happens -- the leader takes no
fetch offset from a diverging fetch -- so the run fails as ``Liveness``.  The probe
``truncation-kip279-differs-from-kip101`` counts the moments the two rules disagree.

Known survivor, and what would catch it:

* ``fence_fetch_epoch``: switched off, it lets the model's EpochsMonotonic harm through in the
  real code (tests/chaos/sim/test_guard_situations.py drives it on real brokers: a broker whose
  metadata lags two leader changes copies records of the newer epoch and then leads the middle one,
  leaving epochs ``0, 2, 1`` in its log).  The swarm does not reach it: with three combined nodes
  metadata arrives through Raft in order, and no drawn fault delays it by seconds while data
  fetches keep flowing (the probe ``fetch-from-older-epoch`` fired on 1 of 200 seeds, harmlessly).
  The harm one might guess first -- a stale follower counted as caught up -- is stopped by a second
  check: a diverging last fetched epoch gets the epoch's end, not records, and moves no fetch offset.

The unmodified code runs on the same seeds first (the *baseline*): a failure there would make
every mutant's result meaningless, so it is reported, and also makes the command exit 1.
The bound is on seeds tried per guard; simulated seconds per seed come from the configuration.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from reference.guards import KNOWN_GUARDS

from .run import SimConfig, SimResult, simulate
from .shrink import Shrunk, shrink

MUTANT_SETTINGS = {"replica.fetch.max.bytes": "1"}  # one batch per fetch (min_one_message)


@dataclass
class MutantOutcome:
    guard: str
    seeds_tried: int
    failing: SimResult | None  # the first failing run, None if the mutant survived
    shrunk: Shrunk | None
    wall_seconds: float

    @property
    def caught(self) -> bool:
        return self.failing is not None


def _run(config: SimConfig) -> SimResult:
    result = simulate(config)
    result.trace = None
    return result


def first_failure(configs: list[SimConfig], jobs: int = 1,
                  progress: Callable[[SimResult], None] | None = None) -> tuple[SimResult | None, int]:
    """The first failing run of ``configs`` in order and how many seeds were run to find it.

    With ``jobs`` > 1 the seeds run in batches of ``jobs``; the earliest failing seed of the first
    batch holding one is returned, so the answer does not depend on ``jobs``."""
    tried = 0
    pool = ProcessPoolExecutor(jobs) if jobs > 1 else None
    try:
        for start in range(0, len(configs), max(jobs, 1)):
            batch = configs[start:start + max(jobs, 1)]
            results = list(pool.map(_run, batch)) if pool is not None else [_run(config) for config in batch]
            tried += len(batch)
            for result in results:
                if progress is not None:
                    progress(result)
            failing = [result for result in results if result.failed]
            if failing:
                return failing[0], tried
    finally:
        if pool is not None:
            pool.shutdown()
    return None, tried


def run_mutant(guard: str, base: SimConfig, seeds: Iterable[int], jobs: int = 1, shrink_runs: int = 40,
               progress: Callable[[SimResult], None] | None = None) -> MutantOutcome:
    """Switch ``guard`` off and run ``seeds`` until one fails; shrink that one."""
    if guard not in KNOWN_GUARDS:
        raise ValueError(f"unknown guard {guard!r}")
    started = time.perf_counter()
    configs = [replace(base, seed=seed, guards_off=frozenset({guard})) for seed in seeds]
    failing, tried = first_failure(configs, jobs, progress)
    shrunk = shrink(failing, max_runs=shrink_runs) if failing is not None and shrink_runs > 0 else None
    return MutantOutcome(guard, tried, failing, shrunk, time.perf_counter() - started)


def format_table(outcomes: list[MutantOutcome]) -> str:
    """A table like ``refka spec mutants``: which invariant caught each guard's absence, and where."""
    lines = ["| guard switched off | caught by invariant | seed | seeds tried | events | faults | "
             "shrunk faults | shrunk events |",
             "|---|---|---|---|---|---|---|---|"]
    for outcome in outcomes:
        failing, shrunk = outcome.failing, outcome.shrunk
        if failing is None:
            lines.append(f"| {outcome.guard} | SURVIVED | - | {outcome.seeds_tried} | - | - | - | - |")
            continue
        minimal = shrunk.result if shrunk is not None else failing
        lines.append(f"| {outcome.guard} | {failing.failure} | {failing.config.seed} | {outcome.seeds_tried} | "
                     f"{failing.events} | {len(failing.faults)} | {len(minimal.faults)} | {minimal.events} |")
    return "\n".join(lines)


def run_all(base: SimConfig, seeds: list[int], guards: list[str], jobs: int = 1, shrink_runs: int = 40,
            out: Any = None) -> tuple[list[SimResult], list[MutantOutcome]]:
    """The baseline on ``seeds``, then every guard of ``guards``; prints progress to ``out``."""
    out = out or sys.stdout

    def progress(label: str) -> Callable[[SimResult], None]:
        def show(result: SimResult) -> None:
            status = f"FAILED {result.failure}" if result.failed else "ok"
            print(f"  [{label}] seed {result.config.seed}: {status}, {len(result.faults)} faults, "
                  f"{result.events} events, {result.wall_seconds:.1f} s", file=out, flush=True)
        return show

    print(f"baseline: the unmodified code on seeds {seeds[0]}..{seeds[-1]}", file=out, flush=True)
    baseline: list[SimResult] = []
    configs = [replace(base, seed=seed, guards_off=frozenset()) for seed in seeds]
    for start in range(0, len(configs), max(jobs, 1)):
        batch = configs[start:start + max(jobs, 1)]
        if jobs > 1:
            with ProcessPoolExecutor(jobs) as pool:
                results = list(pool.map(_run, batch))
        else:
            results = [_run(config) for config in batch]
        for result in results:
            progress("baseline")(result)
        baseline += results
    outcomes = []
    for guard in guards:
        print(f"mutant: {guard} switched off", file=out, flush=True)
        outcomes.append(run_mutant(guard, base, seeds, jobs, shrink_runs, progress(guard)))
    return baseline, outcomes
