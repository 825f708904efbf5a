"""Produce and consume throughput and produce latency of the reference broker, next to Apache Kafka.

What is measured, with confluent-kafka (librdkafka) as the client, against each broker in turn:

* produce, acks=1 and acks=all: 1 KiB values (``--value-size``), one partition, no compression,
  ``linger.ms=5``; records are sent as fast as the client accepts them for ``--seconds``, then
  flushed.  Throughput counts acknowledged records over the time from the first send to the last
  acknowledgement.  Latency is per record, from ``produce()`` to its delivery report, under that
  full load (as Kafka's ``ProducerPerformance`` reports it), so it is mostly time queued in the
  client;
* paced produce, acks=1 and acks=all: the same at ``--latency-rate`` records/s (default 1000) for
  at most 5 s, which neither broker saturates, so p50/p99 there is the broker's own latency;
* consume: a consumer assigned to the acks=1 topic reads every record from offset 0 (bounded by
  ``--seconds``).

The reference broker runs as a ``refka broker`` subprocess on a fresh data dir.  Apache Kafka is
``--kafka-bootstrap`` if given, else a 1-node cluster started through
``conformance.apache_kafka.KafkaCluster`` (Java 17 + Maven needed) and stopped at the end.
With ``--nodes 3`` both are 3-node KRaft clusters (``refka cluster``'s ``ReferenceCluster`` and
``KafkaCluster``) and every topic has replication factor 3, so acks=all waits for two followers.
Each figure is printed for both brokers with the ratio reference / Kafka.

Run:  python benchmarks/bench_broker.py [--seconds 10] [--nodes 1|3] [--kafka-bootstrap 127.0.0.1:19092] [--no-kafka]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

MB = 1_000_000


@dataclass
class Figures:
    """One phase's results; ``None`` where a figure does not apply."""

    records: int
    seconds: float
    bytes: int
    p50_ms: float | None = None
    p99_ms: float | None = None

    @property
    def mb_per_s(self) -> float:
        return self.bytes / MB / self.seconds if self.seconds else 0.0

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


# -- brokers ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_metadata(bootstrap: str, timeout: float = 60.0) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(KafkaException):
            admin.list_topics(timeout=2)
            return
        time.sleep(0.2)
    raise RuntimeError(f"no broker answers on {bootstrap}")


@contextlib.contextmanager
def reference_broker(nodes: int = 1) -> Iterator[str]:
    if nodes > 1:
        with local_cluster("reference", nodes) as bootstrap:
            yield bootstrap
        return
    data_dir = Path(tempfile.mkdtemp(prefix="refka-bench-"))
    bootstrap = f"127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "reference", "broker", "--listen", bootstrap,
               "--data-dir", str(data_dir), "--log-level", "WARNING"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        wait_for_metadata(bootstrap)
        yield bootstrap
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.contextmanager
def apache_kafka(bootstrap: str | None, nodes: int = 1) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    with local_cluster("kafka", nodes) as started:
        yield started


@contextlib.contextmanager
def local_cluster(kind: str, nodes: int) -> Iterator[str]:
    """A private N-node cluster of Apache Kafka or of the reference broker, on free ports."""
    from conformance.apache_kafka import KafkaCluster
    from conformance.fixtures import free_port_block
    from reference.node.cluster import ReferenceCluster

    data_dir = Path(tempfile.mkdtemp(prefix=f"refka-bench-{kind}-"))
    make = KafkaCluster if kind == "kafka" else ReferenceCluster
    cluster = make(nodes=nodes, base_port=free_port_block(2 * nodes), data_dir=data_dir,
                   config={"log.segment.bytes": str(256 * 1024 * 1024)})
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def create_topic(bootstrap: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    brokers = len(admin.list_topics(timeout=30).brokers)
    for future in admin.create_topics([NewTopic(name, 1, min(brokers, 3))]).values():
        future.result(30)
    deadline = time.monotonic() + 30  # every broker learns the topic from the metadata log
    while time.monotonic() < deadline:
        partitions = admin.list_topics(name, timeout=10).topics[name].partitions
        if partitions and all(p.leader >= 0 and len(p.isrs) == min(brokers, 3) for p in partitions.values()):
            return
        time.sleep(0.2)


# -- phases ----------------------------------------------------------------------------------------


def produce_phase(bootstrap: str, topic: str, acks: str, seconds: float, value_size: int,
                  rate: float | None = None) -> Figures:
    """Send for ``seconds``, as fast as the client takes records or at ``rate`` records/s."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5,
                         "enable.idempotence": acks == "all", "compression.type": "none"})
    value = os.urandom(value_size)
    latencies_ms: list[float] = []
    failures = 0
    last_ack = 0.0

    def delivered(error: Any, _message: Any, sent_at: float) -> None:
        nonlocal failures, last_ack
        last_ack = time.perf_counter()
        if error is not None:
            failures += 1
        else:
            latencies_ms.append((last_ack - sent_at) * 1000)

    started = time.perf_counter()
    stop_sending = started + seconds
    sent = 0
    while time.perf_counter() < stop_sending:
        sent_at = time.perf_counter()
        if rate is not None and sent >= (sent_at - started) * rate:
            producer.poll(0.0005)
            continue
        try:
            producer.produce(topic, value=value,
                             on_delivery=lambda e, m, t=sent_at: delivered(e, m, t))  # type: ignore[misc]
        except BufferError:
            producer.poll(0.01)
            continue
        sent += 1
        producer.poll(0)
    producer.flush(60)
    if failures:
        print(f"  warning: {failures} records failed", file=sys.stderr)
    latencies_ms.sort()
    return Figures(records=len(latencies_ms), seconds=last_ack - started, bytes=len(latencies_ms) * value_size,
                   p50_ms=statistics.median(latencies_ms),
                   p99_ms=latencies_ms[min(len(latencies_ms) - 1, int(len(latencies_ms) * 0.99))])


def consume_phase(bootstrap: str, topic: str, expected: int, seconds: float) -> Figures:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4()}",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    records = size = 0
    started = first = time.perf_counter()
    deadline = started + max(seconds, 1.0)
    try:
        while records < expected and time.perf_counter() < deadline:
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                if message.error():
                    continue
                if records == 0:
                    first = time.perf_counter()
                records += 1
                size += len(message.value() or b"")
    finally:
        consumer.close()
    elapsed = time.perf_counter() - first
    return Figures(records=records, seconds=elapsed, bytes=size)


def run_all(bootstrap: str, seconds: float, value_size: int, latency_rate: float) -> dict[str, Figures]:
    wait_for_metadata(bootstrap)
    suffix = uuid.uuid4().hex[:8]
    results: dict[str, Figures] = {}
    for acks in ("1", "all"):
        topic = f"bench-acks-{acks}-{suffix}"
        create_topic(bootstrap, topic)
        results[f"produce acks={acks}"] = produce_phase(bootstrap, topic, acks, seconds, value_size)
    for acks in ("1", "all"):
        topic = f"bench-latency-{acks}-{suffix}"
        create_topic(bootstrap, topic)
        results[f"paced acks={acks}"] = produce_phase(bootstrap, topic, acks, min(seconds, 5.0), value_size,
                                                      rate=latency_rate)
    consume_topic = f"bench-acks-1-{suffix}"
    results["consume"] = consume_phase(bootstrap, consume_topic, results["produce acks=1"].records, seconds)
    return results


# -- report ----------------------------------------------------------------------------------------


def ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or theirs == 0:
        return "-"
    return f"{ours / theirs:.2f}"


def print_report(reference: dict[str, Figures], kafka: dict[str, Figures] | None) -> None:
    header = f"{'phase':<18}{'figure':<12}{'reference':>12}{'kafka':>12}{'ref/kafka':>11}"
    print(header)
    print("-" * len(header))
    for phase, ours in reference.items():
        theirs = kafka[phase] if kafka else None
        rows: list[tuple[str, float | None, float | None, str]] = [
            ("MB/s", ours.mb_per_s, theirs.mb_per_s if theirs else None, "{:.1f}"),
            ("records/s", ours.records_per_s, theirs.records_per_s if theirs else None, "{:.0f}"),
        ]
        if ours.p50_ms is not None:
            rows += [("p50 ms", ours.p50_ms, theirs.p50_ms if theirs else None, "{:.1f}"),
                     ("p99 ms", ours.p99_ms, theirs.p99_ms if theirs else None, "{:.1f}")]
        for figure, mine, other, fmt in rows:
            shown_other = "-" if other is None else fmt.format(other)
            print(f"{phase:<18}{figure:<12}{fmt.format(mine):>12}{shown_other:>12}{ratio(mine, other):>11}")
    print()
    for name, results in (("reference", reference), ("kafka", kafka or {})):
        for phase, figures in results.items():
            print(f"{name} {phase}: {figures.records} records in {figures.seconds:.1f} s")


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
    with reference_broker(args.nodes) as bootstrap:
        print(f"reference broker on {bootstrap}", file=sys.stderr)
        reference = run_all(bootstrap, args.seconds, args.value_size, args.latency_rate)
    kafka = None
    if not args.no_kafka:
        with apache_kafka(args.kafka_bootstrap, args.nodes) as bootstrap:
            print(f"Apache Kafka on {bootstrap}", file=sys.stderr)
            kafka = run_all(bootstrap, args.seconds, args.value_size, args.latency_rate)
    print_report(reference, kafka)
    return 0


if __name__ == "__main__":
    sys.exit(main())
