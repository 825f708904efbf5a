"""Produce and consume throughput and produce latency of the reference broker, next to Apache Kafka.

The measurement itself lives in :mod:`reference.bench` (``refka bench``, which adds other targets,
a Markdown report and a plot): this script runs the same measurement -- both brokers started
first, then taking turns phase by phase -- for the reference broker and Apache Kafka only, and
prints the table with nothing written to disk.  See that module for what each phase measures.

Run:  python benchmarks/bench_broker.py [--seconds 10] [--nodes 1|3] [--kafka-bootstrap 127.0.0.1:19092] [--no-kafka]
"""

from __future__ import annotations

import argparse
import sys

from reference.bench import StartTarget, apache_kafka, format_table, measure, reference_broker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each produce phase")
    parser.add_argument("--value-size", type=int, default=1024)
    parser.add_argument("--latency-rate", type=float, default=1000.0,
                        help="records/s of the paced phases, whose latency is the broker's, not the queue's")
    parser.add_argument("--kafka-bootstrap", help="an Apache Kafka to compare with (default: start one)")
    parser.add_argument("--no-kafka", action="store_true", help="measure the reference broker only")
    parser.add_argument("--nodes", type=int, default=1, help="1 (default) or 3: clusters of that size, RF min(N, 3)")
    args = parser.parse_args(argv)
    targets: list[tuple[str, StartTarget]] = [("reference", lambda: reference_broker(args.nodes))]
    if not args.no_kafka:
        targets.append(("kafka", lambda: apache_kafka(args.kafka_bootstrap, args.nodes)))
    # the same measurement as `refka bench`: both started first, then taking turns phase by phase
    results = measure(targets, args.seconds, args.value_size, args.latency_rate,
                      lambda name, what: print(f"{name}: {what}", file=sys.stderr))
    print(format_table(results))
    print()
    for result in results:
        for phase, figures in result.phases.items():
            print(f"{result.name} {phase}: {figures.records} records in {figures.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
