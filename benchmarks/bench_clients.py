"""Produce and consume throughput of the reference client next to kafka-python, aiokafka and confluent-kafka.

What is measured, per client, against one broker in one run:

* **produce**: ``--records`` records of ``--value-size`` bytes (a 16-byte key each) sent to a
  fresh ``--partitions``-partition topic with the client's ordinary asynchronous API (send, then
  flush / wait for every delivery).  The clock runs from the first send until every record is
  acknowledged; creating the client and its first metadata request are outside it (a warm-up
  record to the topic is sent and acknowledged before the clock starts).
* **consume**: the same topic read back from the beginning with a manually assigned consumer
  (no group), from ``assign`` until every record has been handed to the application.

Each client runs in a process of its own, one after the other, so that no client inherits
another's threads, imports or heap.  aiokafka ships Cython extensions for its record codec and
uses them when they are built; the row ``aiokafka-pure`` is the same client with
``AIOKAFKA_NO_EXTENSIONS=1``, its pure-Python path.  kafka-python and refka are pure Python.

All clients use the same settings so that the comparison is about the client: ``acks=all``,
idempotence off (kafka-python and aiokafka default to off), ``linger.ms=5``, 64 KiB batches, no
compression.  Consumers use their defaults.

The broker: ``--bootstrap-server`` for any broker; otherwise the reference broker is started as
its own process (``reference.bench.reference_broker``) so that it never shares an interpreter --
and its GIL -- with the pure-Python clients under test.

Figures are records/s and MB/s of values; the ratio column compares each client with the
reference client (> 1: that client is faster).  The machine matters: run it two or three times.

Run:  python benchmarks/bench_clients.py [--records 50000] [--value-size 100] [--partitions 3]
                                         [--clients refka,kafka-python,aiokafka,aiokafka-pure,confluent-kafka]
                                         [--bootstrap-server HOST:PORT]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

CLIENTS = ("refka", "kafka-python", "aiokafka", "aiokafka-pure", "confluent-kafka")
PURE_PYTHON = ("kafka-python", "aiokafka-pure")
LINGER_MS = 5
BATCH_BYTES = 65536
MB = 1_000_000


@dataclass
class Workload:
    bootstrap: str
    topic: str
    partitions: int
    records: int
    value: bytes

    def keys(self) -> Iterator[bytes]:
        return (b"key-%012d" % i for i in range(self.records))


@dataclass
class Figures:
    client: str
    produce_s: float
    consume_s: float
    records: int
    value_size: int

    def rate(self, seconds: float) -> float:
        return self.records / seconds if seconds > 0 else float("inf")


# ---------------------------------------------------------------- refka
def refka_produce(work: Workload) -> float:
    from reference.client.producer import Producer

    with Producer({"bootstrap.servers": work.bootstrap, "acks": "all", "enable.idempotence": "false",
                   "linger.ms": LINGER_MS, "batch.size": BATCH_BYTES}) as producer:
        producer.send(work.topic, b"warm-up", partition=0).result(30)
        start = time.perf_counter()
        for key in work.keys():
            producer.send(work.topic, work.value, key=key)
        if producer.flush(300) != 0:
            raise RuntimeError("refka: records unacknowledged after 300 s")
        return time.perf_counter() - start


def refka_consume(work: Workload) -> float:
    from reference.client.consumer import Consumer, TopicPartition

    wanted = work.records + 1  # the warm-up record too
    with Consumer({"bootstrap.servers": work.bootstrap, "auto.offset.reset": "earliest",
                   "enable.auto.commit": "false"}) as consumer:
        start = time.perf_counter()
        consumer.assign([TopicPartition(work.topic, p) for p in range(work.partitions)])
        received = 0
        while received < wanted:
            received += len(consumer.poll(1.0))
        return time.perf_counter() - start


# ---------------------------------------------------------------- kafka-python
def kafka_python_produce(work: Workload) -> float:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=work.bootstrap, acks="all", enable_idempotence=False,
                             linger_ms=LINGER_MS, batch_size=BATCH_BYTES)
    try:
        producer.send(work.topic, b"warm-up", partition=0).get(30)
        start = time.perf_counter()
        futures = [producer.send(work.topic, work.value, key=key) for key in work.keys()]
        producer.flush(300)
        for future in futures:
            future.get(0)  # raises a failed delivery
        return time.perf_counter() - start
    finally:
        producer.close(5)


def kafka_python_consume(work: Workload) -> float:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=work.bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest")
    try:
        start = time.perf_counter()
        consumer.assign([TopicPartition(work.topic, p) for p in range(work.partitions)])
        received = 0
        while received < work.records + 1:
            received += sum(len(records) for records in consumer.poll(timeout_ms=1000).values())
        return time.perf_counter() - start
    finally:
        consumer.close()


# ---------------------------------------------------------------- aiokafka
def aiokafka_produce(work: Workload) -> float:
    return asyncio.run(_aiokafka_produce(work))


async def _aiokafka_produce(work: Workload) -> float:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=work.bootstrap, acks="all", enable_idempotence=False,
                                linger_ms=LINGER_MS, max_batch_size=BATCH_BYTES)
    await producer.start()
    try:
        await (await producer.send(work.topic, b"warm-up", partition=0))
        start = time.perf_counter()
        futures = [await producer.send(work.topic, work.value, key=key) for key in work.keys()]
        await asyncio.gather(*futures)
        return time.perf_counter() - start
    finally:
        await producer.stop()


def aiokafka_consume(work: Workload) -> float:
    return asyncio.run(_aiokafka_consume(work))


async def _aiokafka_consume(work: Workload) -> float:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=work.bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        start = time.perf_counter()
        consumer.assign([TopicPartition(work.topic, p) for p in range(work.partitions)])
        received = 0
        while received < work.records + 1:
            batches = await consumer.getmany(timeout_ms=1000)
            received += sum(len(records) for records in batches.values())
        return time.perf_counter() - start
    finally:
        await consumer.stop()


# ---------------------------------------------------------------- confluent-kafka
def confluent_produce(work: Workload) -> float:
    from confluent_kafka import Producer

    failures: list[Any] = []

    def on_delivery(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(error)

    producer = Producer({"bootstrap.servers": work.bootstrap, "acks": "all", "enable.idempotence": False,
                         "linger.ms": LINGER_MS, "batch.size": BATCH_BYTES})
    producer.produce(work.topic, b"warm-up", partition=0, on_delivery=on_delivery)
    producer.flush(30)
    start = time.perf_counter()
    for key in work.keys():
        while True:
            try:
                producer.produce(work.topic, work.value, key=key, on_delivery=on_delivery)
                break
            except BufferError:  # the local queue is full: serve delivery reports, then retry
                producer.poll(0.01)
        producer.poll(0)
    if producer.flush(300) != 0 or failures:
        raise RuntimeError(f"confluent-kafka: {failures[:3]} or records unacknowledged after 300 s")
    return time.perf_counter() - start


def confluent_consume(work: Workload) -> float:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": work.bootstrap, "group.id": "bench-clients-unused",
                         "enable.auto.commit": False, "enable.partition.eof": False})
    try:
        start = time.perf_counter()
        consumer.assign([TopicPartition(work.topic, p, OFFSET_BEGINNING) for p in range(work.partitions)])
        received = 0
        while received < work.records + 1:
            received += sum(1 for message in consumer.consume(1000, 1.0) if not message.error())
        return time.perf_counter() - start
    finally:
        consumer.close()


RUNNERS: dict[str, tuple[Callable[[Workload], float], Callable[[Workload], float]]] = {
    "refka": (refka_produce, refka_consume),
    "kafka-python": (kafka_python_produce, kafka_python_consume),
    "aiokafka": (aiokafka_produce, aiokafka_consume),
    "aiokafka-pure": (aiokafka_produce, aiokafka_consume),  # run with AIOKAFKA_NO_EXTENSIONS=1
    "confluent-kafka": (confluent_produce, confluent_consume),
}


# ---------------------------------------------------------------- the run
def create_topic(bootstrap: str, partitions: int) -> str:
    from reference.client.admin import Admin
    from reference.client.admin_core import NewTopic

    name = f"bench-clients-{uuid.uuid4().hex[:12]}"
    with Admin({"bootstrap.servers": bootstrap}) as admin:
        admin.create_topics([NewTopic(name, partitions, 1)])
    return name


def measure(client: str, bootstrap: str, partitions: int, records: int, value_size: int) -> Figures:
    """Run one client's two phases in a child process (``--one CLIENT``) and read its figures."""
    environment = dict(os.environ)
    if client == "aiokafka-pure":
        environment["AIOKAFKA_NO_EXTENSIONS"] = "1"
    command = [sys.executable, __file__, "--one", client, "--bootstrap-server", bootstrap,
               "--partitions", str(partitions), "--records", str(records), "--value-size", str(value_size)]
    done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{client} failed: {done.stderr[-2000:]}")
    seconds = json.loads(done.stdout.strip().splitlines()[-1])
    return Figures(client, seconds["produce_s"], seconds["consume_s"], records, value_size)


def measure_here(client: str, bootstrap: str, partitions: int, records: int, value_size: int) -> dict[str, float]:
    work = Workload(bootstrap, create_topic(bootstrap, partitions), partitions, records, b"v" * value_size)
    produce, consume = RUNNERS[client]
    produce_s = produce(work)
    return {"produce_s": produce_s, "consume_s": consume(work)}


def format_table(results: list[Figures]) -> str:
    reference = next((r for r in results if r.client == "refka"), None)
    lines = [f"{'client':<16} {'produce rec/s':>14} {'MB/s':>7} {'x refka':>8}   "
             f"{'consume rec/s':>14} {'MB/s':>7} {'x refka':>8}"]
    for r in results:
        produce_rate, consume_rate = r.rate(r.produce_s), r.rate(r.consume_s)
        produce_ratio = f"{produce_rate / reference.rate(reference.produce_s):.2f}" if reference else "-"
        consume_ratio = f"{consume_rate / reference.rate(reference.consume_s):.2f}" if reference else "-"
        lines.append(f"{r.client:<16} {produce_rate:>14,.0f} {produce_rate * r.value_size / MB:>7.1f} "
                     f"{produce_ratio:>8}   {consume_rate:>14,.0f} {consume_rate * r.value_size / MB:>7.1f} "
                     f"{consume_ratio:>8}")
    return "\n".join(lines)


@contextlib.contextmanager
def broker(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    from reference.bench import reference_broker

    with reference_broker(1) as target:
        yield target.bootstrap


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--bootstrap-server", help="the broker to use (default: start the reference broker)")
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--clients", default=",".join(CLIENTS), help=f"comma-separated among {', '.join(CLIENTS)}")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process measuring one client
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure_here(args.one, args.bootstrap_server, args.partitions, args.records,
                                      args.value_size)))
        return 0
    names = [name.strip() for name in args.clients.split(",") if name.strip()]
    unknown = [name for name in names if name not in RUNNERS]
    if unknown:
        parser.error(f"unknown client(s) {unknown}; known: {', '.join(CLIENTS)}")
    results = []
    with broker(args.bootstrap_server) as bootstrap:
        print(f"broker {bootstrap}: {args.records} records of {args.value_size} bytes, "
              f"{args.partitions} partitions", file=sys.stderr)
        for name in names:
            results.append(measure(name, bootstrap, args.partitions, args.records, args.value_size))
            print(f"  {name}: produce {results[-1].produce_s:.2f} s, consume {results[-1].consume_s:.2f} s",
                  file=sys.stderr)
    print(format_table(results))
    reference = next((r for r in results if r.client == "refka"), None)
    pure_python = [r for r in results if r.client in PURE_PYTHON]
    if reference and pure_python:
        faster = all(reference.rate(reference.produce_s) > r.rate(r.produce_s)
                     and reference.rate(reference.consume_s) > r.rate(r.consume_s) for r in pure_python)
        print(f"\nrefka faster than the pure-Python clients ({', '.join(r.client for r in pure_python)}) "
              f"in both directions: {'yes' if faster else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
