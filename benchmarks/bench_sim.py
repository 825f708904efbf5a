"""A swarm of the deterministic simulator: seeds per second, events per second, coverage, failures.

Runs seeds ``--first .. --first+--seeds-1`` of ``refka sim`` (each draws its own fault mix: swarm
testing) on ``--jobs`` processes, with the invariants after every event, a liveness phase and the
history checker, and prints per seed one line, then the totals and the coverage table summed over
the swarm.  A failing seed is printed with the command that replays it.  Exit 1 if any seed failed.

Figures, 7 December 2026, 2 shared cores (load average about 9 from other work), 3 nodes, 20
simulated seconds of faults per seed, ``--jobs 2``: see the report of the first landing (issue #10).

Run:  python benchmarks/bench_sim.py [--seeds 50] [--first 1] [--jobs 2] [--duration 20] [--nodes 3]
"""

from __future__ import annotations

import argparse
import sys

from chaos.sim.cli import swarm
from chaos.sim.run import SimConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--first", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--duration", type=float, default=20.0, help="simulated seconds of faults per seed")
    parser.add_argument("--nodes", type=int, default=3)
    args = parser.parse_args(argv)
    configs = [SimConfig(seed=seed, nodes=args.nodes, duration_ms=int(args.duration * 1000))
               for seed in range(args.first, args.first + args.seeds)]
    results = swarm(configs, args.jobs)
    return 1 if any(result.failed for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
