"""Produce and consume throughput and produce latency of the reference broker, next to Apache Kafka.

The measurement itself lives in :mod:`reference.bench` (``refka bench``, which adds other targets,
a Markdown report, a plot and the brokers' peak memory); this script prints the same table for
the reference broker and Apache Kafka only, with nothing written to disk.  See that module for
what each phase measures.

Run:  python benchmarks/bench_broker.py [--seconds 10] [--nodes 1|3] [--kafka-bootstrap 127.0.0.1:19092] [--no-kafka]
"""

from __future__ import annotations

import argparse
import sys

from reference.bench import Result, apache_kafka, format_table, reference_broker, run_all


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
    results = []
    with reference_broker(args.nodes) as target:
        print(f"reference broker on {target.bootstrap}", file=sys.stderr)
        phases = run_all(target.bootstrap, args.seconds, args.value_size, args.latency_rate)
        results.append(Result("reference", phases, target.peak_rss_bytes()))
    if not args.no_kafka:
        with apache_kafka(args.kafka_bootstrap, args.nodes) as target:
            print(f"Apache Kafka on {target.bootstrap}", file=sys.stderr)
            phases = run_all(target.bootstrap, args.seconds, args.value_size, args.latency_rate)
            results.append(Result("kafka", phases, target.peak_rss_bytes()))
    print(format_table(results))
    print()
    for result in results:
        for phase, figures in result.phases.items():
            print(f"{result.name} {phase}: {figures.records} records in {figures.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
