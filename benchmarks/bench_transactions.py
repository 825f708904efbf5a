"""Transactional produce throughput of the reference broker next to Apache Kafka, in the same run.

One confluent-kafka transactional producer (``transactional.id``, acks=all, idempotent) writes
transactions of ``--records`` records of ``--value-size`` bytes, spread round-robin over the
topic's partitions, and commits each (begin, produce, ``commit_transaction``: AddPartitionsToTxn,
Produce, EndTxn, then the coordinator's WriteTxnMarkers to every partition), one transaction at a
time, for ``--seconds``.  Each broker is a single node started here on free ports, one after the
other, so they never share the two cores: the reference broker as a process of its own
(``python -m reference broker``), Kafka through ``conformance.apache_kafka.KafkaCluster``.

Sanity check, per target: the partitions' high watermarks must add up to the records plus one
commit marker per partition per transaction (every transaction touches every partition when it
has at least as many records as there are partitions).

Run:  python benchmarks/bench_transactions.py [--seconds 20] [--records 100] [--value-size 1024]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from conformance.apache_kafka import KafkaCluster
from conformance.fixtures import free_port_block

TOPIC = "bench-transactions"
PARTITIONS = 3


@dataclass
class Figures:
    transactions: int
    records: int
    seconds: float
    commit_ms: list[float]
    high_watermarks: int

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds

    @property
    def mib_per_second(self) -> float:
        return self.records_per_second * VALUE_SIZE[0] / 2**20


VALUE_SIZE = [1024]  # set from --value-size, for Figures.mib_per_second


def wait_until_answering(bootstrap: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=2)
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise


@contextmanager
def reference_broker() -> Iterator[str]:
    port = free_port_block(1)
    with tempfile.TemporaryDirectory(prefix="refka-bench-txn-") as data_dir:
        process = subprocess.Popen([sys.executable, "-m", "reference", "broker", "--listen", f"127.0.0.1:{port}",
                                    "--data-dir", data_dir, "--node-id", "1"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            bootstrap = f"127.0.0.1:{port}"
            wait_until_answering(bootstrap)
            yield bootstrap
        finally:
            process.terminate()
            process.wait(30)


@contextmanager
def apache_kafka() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="refka-bench-txn-kafka-") as data_dir:
        cluster = KafkaCluster(nodes=1, base_port=free_port_block(2), data_dir=Path(data_dir))
        cluster.start()
        try:
            yield f"127.0.0.1:{cluster.nodes[0].port}"
        finally:
            cluster.stop()


def measure(bootstrap: str, seconds: float, records: int, value_size: int) -> Figures:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)], operation_timeout=30)[TOPIC].result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "bench-transactions",
                         "acks": "all", "enable.idempotence": True, "linger.ms": 5,
                         "batch.size": 1_000_000})
    producer.init_transactions(30)
    value = b"x" * value_size
    commit_ms: list[float] = []

    def one_transaction() -> None:
        producer.begin_transaction()
        for n in range(records):
            producer.produce(TOPIC, value=value, partition=n % PARTITIONS)
        started = time.perf_counter()
        producer.commit_transaction(30)
        commit_ms.append((time.perf_counter() - started) * 1000)

    one_transaction()  # warm-up: coordinator lookup, partitions' leaders, the first batches
    commit_ms.clear()
    transactions = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        one_transaction()
        transactions += 1
    elapsed = time.perf_counter() - start
    high = sum(_watermark(bootstrap, partition)[1] for partition in range(PARTITIONS))
    return Figures(transactions, transactions * records, elapsed, commit_ms, high)


def _watermark(bootstrap: str, partition: int) -> tuple[int, int]:
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-transactions"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, partition), timeout=10)
        return int(low), int(high)
    finally:
        consumer.close()


def report(name: str, figures: Figures, records: int) -> str:
    expected = (figures.transactions + 1) * (records + PARTITIONS)  # with the warm-up transaction
    check = "ok" if figures.high_watermarks == expected else f"MISMATCH (expected {expected})"
    p50 = statistics.median(figures.commit_ms)
    p99 = sorted(figures.commit_ms)[int(0.99 * (len(figures.commit_ms) - 1))]
    return (f"{name:<10} {figures.transactions / figures.seconds:8.1f} txn/s {figures.records_per_second:9.0f} rec/s "
            f"{figures.mib_per_second:7.2f} MiB/s  commit p50 {p50:6.1f} ms p99 {p99:6.1f} ms  "
            f"({figures.transactions} txns in {figures.seconds:.1f} s; high watermarks {figures.high_watermarks}: {check})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--records", type=int, default=100, help="records per transaction")
    parser.add_argument("--value-size", type=int, default=1024)
    args = parser.parse_args(argv)
    VALUE_SIZE[0] = args.value_size
    results: dict[str, Figures] = {}
    with reference_broker() as bootstrap:
        results["reference"] = measure(bootstrap, args.seconds, args.records, args.value_size)
    with apache_kafka() as bootstrap:
        results["kafka"] = measure(bootstrap, args.seconds, args.records, args.value_size)
    print(f"transactions of {args.records} records of {args.value_size} B, {PARTITIONS} partitions, one producer, "
          f"{args.seconds:.0f} s each")
    for name, figures in results.items():
        print(report(name, figures, args.records))
    ratio = results["reference"].records_per_second / results["kafka"].records_per_second
    print(f"reference / kafka throughput: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
