"""``refka sim``: run the deterministic simulator -- one seed, a swarm of seeds, or shrink a failure.

Usage::

    refka sim [run] --seed S [--nodes N] [--duration SIM_SECONDS] [--no-swarm] [--schedule JSON]
    refka sim swarm --seeds K [--first S] [--jobs J] [--nodes N] [--duration SIM_SECONDS]
    refka sim ... --group-consumers N    # also a consumer group reading the acks=all topic
    refka sim shrink --seed S [...]      # run S, and if it fails shrink its faults and clients
    refka sim mutants [--seeds K] [--first S] [--guard-off GUARD ...] [--shrink-runs R]

``run`` prints the seed, the fault mix and schedule, the invariants' results, the checker's
verdict, the coverage probes and the digest of the event trace (the same seed and code give the
same digest); a failing run prints the command that replays it.  ``swarm`` runs seeds
``first .. first+K-1`` (each drawing its own fault mix) on ``--jobs`` processes and sums them up.
``mutants`` switches off each implementation guard in turn (:mod:`chaos.sim.mutants`): at most
``--seeds`` seeds per guard, the first failure shrunk, printed as a table; the unmodified code
runs the same seeds first.
Exit status: 0 every run passed (mutants: every guard caught, the baseline passed), 1 a run
failed (mutants: a guard survived or the baseline failed); 2 is a usage error, as everywhere in
``refka``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from reference.guards import KNOWN_GUARDS

from .clients import BrokenConnections
from .faults import schedule_from_json, schedule_to_json
from .invariants import INVARIANTS
from .mutants import MUTANT_SETTINGS, format_table, run_all
from .run import SimConfig, SimResult, simulate
from .shrink import describe, shrink


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=("run", "swarm", "shrink", "mutants"), default="run")
    parser.add_argument("--seed", type=int, default=1, help="the seed of the run (run, shrink)")
    parser.add_argument("--seeds", type=int, default=20, help="how many seeds (swarm; mutants: the bound per guard)")
    parser.add_argument("--first", type=int, default=1, help="the first seed (swarm, mutants)")
    parser.add_argument("--jobs", type=int, default=1, help="processes for a swarm")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--duration", type=float, default=20.0, help="simulated seconds of the safety phase")
    parser.add_argument("--no-swarm", action="store_true", help="the default fault mix instead of a drawn one")
    parser.add_argument("--schedule", help="a JSON fault schedule to replay instead of drawing one")
    parser.add_argument("--verbose", action="store_true", help="log the nodes, with simulated time")
    parser.add_argument("--guard-off", action="append", choices=sorted(KNOWN_GUARDS), metavar="GUARD",
                        help="switch this implementation guard off (reference/guards.py; repeatable); "
                             "mutants: the guards to try, one at a time (default every guard)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
                        help="a node setting over the simulator's own (e.g. replica.fetch.max.bytes=1; repeatable)")
    parser.add_argument("--shrink-runs", type=int, default=40, help="mutants: simulations to shrink each failure")
    # A shrunk run's clients, as its replay command gives them (drawn from the seed when absent):
    parser.add_argument("--producer-restarts", metavar="MS,MS,...",
                        help="when new idempotent producer instances take over ('' for never)")
    parser.add_argument("--broken-connections", metavar="RATE,READ_FIRST,MAX_DELAY_MS",
                        help="how the idempotent producer's connections break ('0,0,0' for never)")
    parser.add_argument("--no-acks1-producer", action="store_true", help="run without the acks=1 producer")
    parser.add_argument("--no-power-loss", action="store_true",
                        help="draw no power loss (a third of the seeds draw one: chaos/sim/faults.py)")
    parser.add_argument("--group-consumers", type=int, default=0, metavar="N",
                        help="members of a consumer group reading the acks=all topic, committing what they process")
    parser.add_argument("--consumer-restarts", metavar="MS:leave|die,...",
                        help="when a group member is replaced ('' for never; drawn from the seed when absent)")


def _settings(args: argparse.Namespace) -> dict[str, str]:
    settings = dict(MUTANT_SETTINGS) if args.action == "mutants" else {}
    for setting in getattr(args, "settings", None) or ():
        key, equals, value = setting.partition("=")
        if not equals:
            raise SystemExit(f"refka sim: --set {setting!r}: expected KEY=VALUE")
        settings[key.strip()] = value.strip()
    return settings


def _producer_faults(args: argparse.Namespace) -> tuple[tuple[int, ...] | None, BrokenConnections | None]:
    restarts, broken = getattr(args, "producer_restarts", None), getattr(args, "broken_connections", None)
    try:
        times = None if restarts is None else tuple(int(at) for at in restarts.split(",") if at.strip())
        if broken is None:
            return times, None
        rate, read_first, max_delay = broken.split(",")
        return times, BrokenConnections(float(rate), float(read_first), int(max_delay))
    except ValueError:
        raise SystemExit(f"refka sim: --producer-restarts {restarts!r} / --broken-connections {broken!r}: "
                         "expected MS,MS,... and RATE,READ_FIRST,MAX_DELAY_MS") from None


def _consumer_restarts(args: argparse.Namespace) -> tuple[tuple[int, bool], ...] | None:
    text = getattr(args, "consumer_restarts", None)
    if text is None:
        return None
    restarts = []
    for item in filter(str.strip, text.split(",")):
        at, _, how = item.partition(":")
        if how.strip() not in ("leave", "die") or not at.strip().isdigit():
            raise SystemExit(f"refka sim: --consumer-restarts {text!r}: expected MS:leave or MS:die, comma-separated")
        restarts.append((int(at), how.strip() == "leave"))
    return tuple(restarts)


def _config(args: argparse.Namespace, seed: int) -> SimConfig:
    restarts, broken = _producer_faults(args)
    return SimConfig(node_settings=_settings(args), seed=seed, nodes=args.nodes, duration_ms=int(args.duration * 1000), swarm=not args.no_swarm,
                     faults=schedule_from_json(args.schedule) if args.schedule else None,
                     producer_restarts=restarts, broken_connections=broken,
                     acks1_producer=not getattr(args, "no_acks1_producer", False),
                     power_losses=not getattr(args, "no_power_loss", False),
                     group_consumers=getattr(args, "group_consumers", 0),
                     consumer_restarts=_consumer_restarts(args),
                     guards_off=frozenset(args.guard_off or ()) if args.action != "mutants" else frozenset(),
                     log_stream=sys.stderr if getattr(args, "verbose", False) and args.action != "swarm" else None)


def replay_command(result: SimResult) -> str:
    config = result.config
    return (f"refka sim run --seed {config.seed} --nodes {config.nodes} --duration {config.duration_ms / 1000:g} "
            f"--schedule '{schedule_to_json(result.faults)}'"
            + "".join(f" --guard-off {guard}" for guard in sorted(config.guards_off))
            + "".join(f" --set {key}={value}" for key, value in sorted(config.node_settings.items()))
            + ("" if config.power_losses else " --no-power-loss")
            + _client_flags(config))


def _client_flags(config: SimConfig) -> str:
    """The flags of a run whose clients were given rather than drawn (a shrunk run's)."""
    flags = ""
    if config.producer_restarts is not None:
        flags += f" --producer-restarts '{','.join(str(at) for at in config.producer_restarts)}'"
    if (broken := config.broken_connections) is not None:
        flags += f" --broken-connections {broken.rate:g},{broken.read_first:g},{broken.max_delay_ms}"
    flags += f" --group-consumers {config.group_consumers}" if config.group_consumers else ""
    if config.consumer_restarts is not None:
        restarts = ",".join(f"{at}:{'leave' if clean else 'die'}" for at, clean in config.consumer_restarts)
        flags += f" --consumer-restarts '{restarts}'"
    return flags + ("" if config.acks1_producer else " --no-acks1-producer")


def report(result: SimResult, out: Any = None) -> None:
    out = out or sys.stdout
    config = result.config
    print(f"seed {config.seed}: {config.nodes} nodes, safety phase {config.duration_ms} ms", file=out)
    if result.profile is not None:
        print(f"fault mix: {result.profile.describe()}", file=out)
    print(f"faults ({len(result.faults)}):", file=out)
    for fault in result.faults:
        print(f"  {fault.describe()}", file=out)
    print(f"events {result.events}, messages {result.messages}, simulated {result.simulated_ms / 1000:.1f} s "
          f"in {result.wall_seconds:.1f} s ({result.events / max(result.wall_seconds, 1e-9):.0f} events/s)", file=out)
    violated = {violation.invariant: violation for violation in result.violations}
    print("invariants:", file=out)
    for name in (*INVARIANTS, *sorted(set(violated) - set(INVARIANTS))):
        line = violated[name].describe() if name in violated else "ok"
        print(f"  {name:28} {line}", file=out)
    for label, verdict in (("checker (sim-all, idempotent acks=all)", result.verdict),
                           ("checker (sim-one, acks=1, not judged)", result.acks1_verdict)):
        if verdict is not None:
            reasons = f" ({'; '.join(verdict.reasons)})" if verdict.reasons else ""
            print(f"{label}: {verdict.verdict}{reasons}; {verdict.stats.get('acknowledged')} acknowledged", file=out)
    print("coverage: " + ", ".join(f"{name}={count}" for name, count in result.coverage.items()), file=out)
    print(f"digest {result.digest}", file=out)
    if result.failed:
        print(f"FAILED ({result.failure}); replay with:\n  {replay_command(result)}", file=out)
    else:
        print("PASSED", file=out)


def _one(config: SimConfig) -> SimResult:
    result = simulate(config)
    result.trace = None
    return result


def swarm(configs: list[SimConfig], jobs: int, out: Any = None) -> list[SimResult]:
    out = out or sys.stdout
    started = time.perf_counter()
    results: list[SimResult] = []
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            for result in pool.map(_one, configs):
                results.append(result)
                _progress(result, len(results), len(configs), out)
    else:
        for config in configs:
            results.append(_one(config))
            _progress(results[-1], len(results), len(configs), out)
    elapsed = time.perf_counter() - started
    coverage: Counter[str] = Counter()
    for result in results:
        coverage.update({name: count for name, count in result.coverage.items()})
    failed = [result for result in results if result.failed]
    events = sum(result.events for result in results)
    print(f"\n{len(results)} seeds, {len(failed)} failed, {elapsed:.1f} s: {len(results) / elapsed:.2f} seeds/s, "
          f"{events / elapsed:.0f} events/s", file=out)
    print("coverage over the swarm (total / seeds that saw it):", file=out)
    for name in sorted(coverage):
        seen = sum(1 for result in results if result.coverage.get(name))
        print(f"  {name:32} {coverage[name]:6} / {seen}", file=out)
    for result in failed:
        print(f"FAILED seed {result.config.seed} ({result.failure}): {replay_command(result)}", file=out)
    return results


def _progress(result: SimResult, done: int, total: int, out: Any) -> None:
    status = f"FAILED {result.failure}" if result.failed else "ok"
    print(f"[{done}/{total}] seed {result.config.seed}: {status}, {len(result.faults)} faults, "
          f"{result.events} events, {result.wall_seconds:.1f} s", file=out, flush=True)


def run_mutants(args: argparse.Namespace) -> int:
    seeds = list(range(args.first, args.first + args.seeds))
    baseline, outcomes = run_all(_config(args, args.first), seeds, args.guard_off or list(KNOWN_GUARDS), args.jobs,
                                 args.shrink_runs)
    broken = [result for result in baseline if result.failed]
    print(f"\nbaseline (guards on), seeds {seeds[0]}..{seeds[-1]}: "
          + (", ".join(f"seed {r.config.seed} FAILED {r.failure}" for r in broken) if broken else "all passed"))
    print(format_table(outcomes))
    for outcome in outcomes:
        if outcome.shrunk is not None:
            print(f"\n{outcome.guard} switched off, {describe(outcome.shrunk)}\n"
                  f"replay with:\n  {replay_command(outcome.shrunk.result)}")
    survivors = [outcome.guard for outcome in outcomes if not outcome.caught]
    if survivors:
        print(f"\nSURVIVORS within {len(seeds)} seeds: {', '.join(survivors)}")
    return 1 if survivors or broken else 0


def run(args: argparse.Namespace) -> int:
    if args.action == "mutants":
        return run_mutants(args)
    if args.action == "swarm":
        results = swarm([_config(args, seed) for seed in range(args.first, args.first + args.seeds)], args.jobs)
        return 1 if any(result.failed for result in results) else 0
    result = simulate(_config(args, args.seed))
    report(result)
    if args.action == "shrink" and result.failed:
        shrunk = shrink(result)
        print(describe(shrunk))
        print(f"replay the minimal run with:\n  {replay_command(shrunk.result)}")
    return 1 if result.failed else 0
