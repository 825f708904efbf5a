"""``refka bench``: produce and consume throughput, produce latency and memory of a broker, side by
side with Apache Kafka and with any other broker, in one run on one machine.

What is measured, with confluent-kafka (librdkafka) as the client, against each target in turn:

* produce, acks=1 and acks=all: 1 KiB values (``--value-size``), one partition, no compression,
  ``linger.ms=5`` (acks=all with idempotence, as clients default to since KIP-679); records are
  sent as fast as the client accepts them for ``--seconds``, then flushed.  Throughput counts
  acknowledged records over the time from the first send to the last acknowledgement.  Latency is
  per record, from ``produce()`` to its delivery report, under that full load (as Kafka's
  ``ProducerPerformance`` reports it), so it is mostly time queued in the client;
* paced produce, acks=1 and acks=all: the same at ``--latency-rate`` records/s (default 1000) for
  at most 5 s, which no broker here saturates, so p50/p99 there is the broker's own latency.
  Every produce phase starts after one uncounted record is acknowledged, so the client's start-up
  (metadata, its producer id) is not in the figures;
* consume: a consumer assigned to the acks=1 topic reads every record from offset 0 (bounded by
  ``--seconds``);
* memory: the peak resident set (``VmHWM`` in ``/proc/PID/status``) of each broker process this
  command started, read after the last phase, so it is the peak under that load; for a cluster,
  the largest node's.  Not known for a ``--bootstrap-server`` (not a process started here).

Fairness on a shared machine: every target is started first, then they take turns phase by phase,
the order reversed from one phase to the next (:func:`taking_turns`), so a change in the machine's
load falls on both sides of a ratio instead of on whichever target ran second.

Targets: the reference broker (a ``refka broker`` subprocess on a fresh data dir, or with
``--nodes 3`` a ``ReferenceCluster``), Apache Kafka (``--kafka-bootstrap``, else a private cluster
of ``--nodes`` started through ``conformance.apache_kafka.KafkaCluster``), and every
``--bootstrap-server [NAME=]HOST:PORT``.  With ``--nodes 3`` every topic has replication factor 3,
so acks=all waits for two followers.  Ratios are target / Apache Kafka, measured in this run.

Output: the table on stdout, a Markdown report (``--report``) with the command, the machine and
the table, and a plot of the same figures (``--plot``, PNG, matplotlib).  A progress bar (tqdm)
counts phases on stderr.  ``benchmarks/bench_broker.py`` is the same measurement as a plain script.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import os
import platform
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reference.node.local_cluster import LocalCluster

MB = 1_000_000
MIB = 1024 * 1024
PHASES = ("produce acks=1", "produce acks=all", "paced acks=1", "paced acks=all", "consume")
PACED_SECONDS_MAX = 5.0


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


@dataclass
class Target:
    """A broker (or cluster) being measured: where to reach it and, if started here, its processes."""

    name: str
    bootstrap: str
    pids: list[int] = field(default_factory=list)

    def peak_rss_bytes(self) -> int | None:
        """The largest ``VmHWM`` among the processes (None when none is known or readable)."""
        peaks = [peak for peak in (peak_rss_of(pid) for pid in self.pids) if peak is not None]
        return max(peaks, default=None)


@dataclass
class Result:
    name: str
    phases: dict[str, Figures]
    peak_rss_bytes: int | None


def peak_rss_of(pid: int) -> int | None:
    """``VmHWM`` (peak resident set size) of a live process, from ``/proc/PID/status``."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # reported in kB
    return None


# -- brokers ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_metadata(bootstrap: str, timeout: float = 60.0) -> None:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(KafkaException):
            admin.list_topics(timeout=2)
            return
        time.sleep(0.2)
    raise RuntimeError(f"no broker answers on {bootstrap}")


@contextlib.contextmanager
def reference_broker(nodes: int = 1) -> Iterator[Target]:
    """The reference broker as its own process (1 node) or a ``ReferenceCluster``, on free ports."""
    if nodes > 1:
        with local_cluster("reference", nodes) as target:
            yield target
        return
    data_dir = Path(tempfile.mkdtemp(prefix="refka-bench-"))
    bootstrap = f"127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "reference", "broker", "--listen", bootstrap,
               "--data-dir", str(data_dir), "--log-level", "WARNING"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        wait_for_metadata(bootstrap)
        yield Target("reference", bootstrap, [process.pid])
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.contextmanager
def apache_kafka(bootstrap: str | None, nodes: int = 1) -> Iterator[Target]:
    """``bootstrap`` if given (nothing started, memory unknown), else a private Kafka cluster."""
    if bootstrap:
        yield Target("kafka", bootstrap)
        return
    with local_cluster("kafka", nodes) as target:
        yield target


@contextlib.contextmanager
def local_cluster(kind: str, nodes: int) -> Iterator[Target]:
    """A private N-node cluster of Apache Kafka or of the reference broker, on free ports."""
    from conformance.apache_kafka import KafkaCluster
    from reference.node.cluster import ReferenceCluster

    # imported by name: conformance/ is not type-checked strictly, reference/ is
    free_port_block = importlib.import_module("conformance.fixtures").free_port_block

    data_dir = Path(tempfile.mkdtemp(prefix=f"refka-bench-{kind}-"))
    make: type[LocalCluster] = KafkaCluster if kind == "kafka" else ReferenceCluster
    cluster = make(nodes=nodes, base_port=free_port_block(2 * nodes), data_dir=data_dir,
                   config={"log.segment.bytes": str(256 * 1024 * 1024)})
    try:
        bootstrap = cluster.start()
        yield Target(kind, bootstrap, [node.pid for node in cluster.nodes if node.pid is not None])
    finally:
        cluster.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def create_topic(bootstrap: str, name: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

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
    from confluent_kafka import Producer

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

    def report_to(sent_at: float) -> Callable[[Any, Any], None]:
        return lambda error, message: delivered(error, message, sent_at)

    # One record first, not counted: the client's metadata and (for acks=all) its producer id are
    # then in place, so the figures are the broker's steady state, not the client's start-up.
    producer.produce(topic, value=value)
    producer.flush(60)
    started = time.perf_counter()
    stop_sending = started + seconds
    sent = 0
    while time.perf_counter() < stop_sending:
        sent_at = time.perf_counter()
        if rate is not None and sent >= (sent_at - started) * rate:
            producer.poll(0.0005)
            continue
        try:
            producer.produce(topic, value=value, on_delivery=report_to(sent_at))
        except BufferError:
            producer.poll(0.01)
            continue
        sent += 1
        producer.poll(0)
    producer.flush(60)
    if failures:
        print(f"  warning: {failures} records failed", file=sys.stderr)
    if not latencies_ms:
        return Figures(records=0, seconds=0.0, bytes=0)
    latencies_ms.sort()
    return Figures(records=len(latencies_ms), seconds=last_ack - started, bytes=len(latencies_ms) * value_size,
                   p50_ms=statistics.median(latencies_ms),
                   p99_ms=latencies_ms[min(len(latencies_ms) - 1, int(len(latencies_ms) * 0.99))])


def consume_phase(bootstrap: str, topic: str, expected: int, seconds: float) -> Figures:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

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


class Session:
    """The phases against one broker, one at a time, so that several brokers can take turns."""

    def __init__(self, bootstrap: str, seconds: float, value_size: int, latency_rate: float) -> None:
        wait_for_metadata(bootstrap)
        self.bootstrap, self.seconds, self.value_size, self.latency_rate = bootstrap, seconds, value_size, latency_rate
        self.suffix = uuid.uuid4().hex[:8]
        self.results: dict[str, Figures] = {}

    def run_phase(self, phase: str) -> Figures:
        """One of :data:`PHASES`; consume reads what "produce acks=1" wrote, so it comes after it."""
        kind, _, acks = phase.partition(" acks=")
        if kind == "produce":
            topic = f"bench-acks-{acks}-{self.suffix}"
            create_topic(self.bootstrap, topic)
            figures = produce_phase(self.bootstrap, topic, acks, self.seconds, self.value_size)
        elif kind == "paced":
            topic = f"bench-latency-{acks}-{self.suffix}"
            create_topic(self.bootstrap, topic)
            figures = produce_phase(self.bootstrap, topic, acks, min(self.seconds, PACED_SECONDS_MAX),
                                    self.value_size, rate=self.latency_rate)
        elif phase == "consume":
            figures = consume_phase(self.bootstrap, f"bench-acks-1-{self.suffix}",
                                    self.results["produce acks=1"].records, self.seconds)
        else:
            raise ValueError(f"unknown phase {phase!r}")
        self.results[phase] = figures
        return figures


StartTarget = Callable[[], contextlib.AbstractContextManager[Target]]


def measure(targets: list[tuple[str, StartTarget]], seconds: float, value_size: int, latency_rate: float,
            told: Callable[[str, str], None] = lambda name, what: None) -> list[Result]:
    """Start every target, then run each phase of :data:`PHASES` on each, the targets taking turns
    (:func:`taking_turns`); ``told(name, what)`` hears of each start and each phase done."""
    with contextlib.ExitStack() as stack:
        started: dict[str, tuple[Target, Session]] = {}
        for name, start in targets:
            told(name, "starting")
            target = stack.enter_context(start())
            started[name] = (target, Session(target.bootstrap, seconds, value_size, latency_rate))
        for phase, order in zip(PHASES, taking_turns(list(started)), strict=True):
            for name in order:
                started[name][1].run_phase(phase)
                told(name, f"{phase} done")
        return [Result(name, session.results, target.peak_rss_bytes()) for name, (target, session) in started.items()]


def taking_turns(names: list[str]) -> list[list[str]]:
    """The order the targets run each phase in: as listed for the first phase, reversed for the
    next, and so on, so that no target always goes first."""
    return [list(names) if index % 2 == 0 else list(reversed(names)) for index in range(len(PHASES))]


# -- report ----------------------------------------------------------------------------------------


def ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or theirs == 0:
        return "-"
    return f"{ours / theirs:.2f}"


Row = tuple[str, str, list[float | None], str]  # phase, figure, one value per result, format


def table_rows(results: list[Result]) -> list[Row]:
    """Every figure of every phase, one value per result (None where it does not apply)."""
    rows: list[Row] = []
    for phase in PHASES:
        figures = [result.phases.get(phase) for result in results]
        rows.append((phase, "MB/s", [f.mb_per_s if f else None for f in figures], "{:.1f}"))
        rows.append((phase, "records/s", [f.records_per_s if f else None for f in figures], "{:.0f}"))
        if phase != "consume":
            rows.append((phase, "p50 ms", [f.p50_ms if f else None for f in figures], "{:.1f}"))
            rows.append((phase, "p99 ms", [f.p99_ms if f else None for f in figures], "{:.1f}"))
    rows.append(("memory", "peak RSS MiB",
                 [r.peak_rss_bytes / MIB if r.peak_rss_bytes is not None else None for r in results], "{:.0f}"))
    return rows


def _shown(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def _ratio_columns(results: list[Result]) -> tuple[int | None, list[int]]:
    """Which result is Kafka (the yardstick) and which results get a ratio column."""
    kafka = next((index for index, result in enumerate(results) if result.name == "kafka"), None)
    others = [index for index, result in enumerate(results) if index != kafka] if kafka is not None else []
    return kafka, others


def format_table(results: list[Result]) -> str:
    """The plain-text table printed on stdout."""
    kafka, others = _ratio_columns(results)
    header = f"{'phase':<18}{'figure':<14}" + "".join(f"{r.name:>12}" for r in results)
    header += "".join(f"{results[i].name + '/kafka':>18}" for i in others)
    lines = [header, "-" * len(header)]
    for phase, figure, values, fmt in table_rows(results):
        line = f"{phase:<18}{figure:<14}" + "".join(f"{_shown(v, fmt):>12}" for v in values)
        line += "".join(f"{ratio(values[i], values[kafka]):>18}" for i in others if kafka is not None)
        lines.append(line)
    return "\n".join(lines)


def format_markdown(results: list[Result], settings: dict[str, str], command: str, plot: Path | None) -> str:
    """The Markdown report: how it was run, where, and the table with ratios to Kafka."""
    kafka, others = _ratio_columns(results)
    lines = ["# refka bench", "",
             f"- command: `{command}`",
             f"- date (UTC): {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M')}",
             f"- machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
             f"{platform.system()} {platform.release()}"]
    lines += [f"- {key}: {value}" for key, value in settings.items()]
    if others:
        lines += ["", "Ratios are the target's figure over Apache Kafka's, measured in this run: above 1 is "
                  "better for throughput, below 1 is better for latency and memory."]
    lines.append("")
    columns = ["phase", "figure", *[r.name for r in results], *[f"{results[i].name}/kafka" for i in others]]
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "|".join(["---", "---"] + ["---:"] * (len(columns) - 2)) + "|")
    for phase, figure, values, fmt in table_rows(results):
        cells = [phase, figure, *[_shown(v, fmt) for v in values]]
        cells += [ratio(values[i], values[kafka]) for i in others if kafka is not None]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Records and seconds per phase:", ""]
    for result in results:
        for phase, figures in result.phases.items():
            lines.append(f"- {result.name} {phase}: {figures.records} records in {figures.seconds:.1f} s")
    if plot is not None:
        lines += ["", f"![figures]({plot.name})"]
    return "\n".join(lines) + "\n"


def write_plot(results: list[Result], path: Path) -> None:
    """Bars per target: throughput (MB/s), paced p99 latency (ms) and peak RSS (MiB)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: list[tuple[str, list[str], Callable[[Result, str], float | None]]] = [
        ("throughput, MB/s", ["produce acks=1", "produce acks=all", "consume"],
         lambda r, p: r.phases[p].mb_per_s if p in r.phases else None),
        ("paced produce p99, ms", ["paced acks=1", "paced acks=all"],
         lambda r, p: r.phases[p].p99_ms if p in r.phases else None),
        ("broker peak RSS, MiB", ["memory"],
         lambda r, p: r.peak_rss_bytes / MIB if r.peak_rss_bytes is not None else None),
    ]
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
    width = 0.8 / max(len(results), 1)
    for axis, (title, groups, value_of) in zip(axes, panels, strict=True):
        for index, result in enumerate(results):
            values = [value_of(result, group) or 0.0 for group in groups]
            positions = [g + index * width for g in range(len(groups))]
            axis.bar(positions, values, width, label=result.name)
        axis.set_xticks([g + width * (len(results) - 1) / 2 for g in range(len(groups))], groups, fontsize=8)
        axis.set_title(title)
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


# -- the command -----------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each produce phase (default 10)")
    parser.add_argument("--value-size", type=int, default=1024, help="bytes per record value (default 1024)")
    parser.add_argument("--latency-rate", type=float, default=1000.0,
                        help="records/s of the paced phases, whose latency is the broker's, not the queue's")
    parser.add_argument("--nodes", type=int, default=1, choices=(1, 3),
                        help="1 (default) or 3: clusters of that size, replication factor min(N, 3)")
    parser.add_argument("--kafka-bootstrap", help="an Apache Kafka to compare with (default: start one)")
    parser.add_argument("--no-kafka", action="store_true", help="do not measure Apache Kafka")
    parser.add_argument("--no-reference", action="store_true", help="do not measure the reference broker")
    parser.add_argument("--bootstrap-server", action="append", default=[], metavar="[NAME=]HOST:PORT",
                        help="also measure this broker (repeatable)")
    parser.add_argument("--report", type=Path, default=Path("bench-report.md"),
                        help="where the Markdown report goes (default bench-report.md)")
    parser.add_argument("--plot", type=Path, help="where the plot goes (default: the report's name with .png)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _targets(args: argparse.Namespace) -> list[tuple[str, StartTarget]]:
    targets: list[tuple[str, StartTarget]] = []
    if not args.no_reference:
        targets.append(("reference", lambda: reference_broker(args.nodes)))
    if not args.no_kafka:
        targets.append(("kafka", lambda: apache_kafka(args.kafka_bootstrap, args.nodes)))
    for index, spec in enumerate(args.bootstrap_server):
        name, _, address = spec.rpartition("=")
        name = name or f"broker-{index + 1}"

        @contextlib.contextmanager
        def external(name: str = name, address: str = address) -> Iterator[Target]:
            yield Target(name, address)

        targets.append((name, external))
    return targets


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from reference.cli import CommandError

    targets = _targets(args)
    if not targets:
        raise CommandError("nothing to measure: every target is switched off")
    with tqdm(total=len(targets) * len(PHASES), unit="phase", disable=args.no_progress, file=sys.stderr) as bar:
        def told(name: str, what: str) -> None:
            bar.set_description(f"{name}: {what}")
            if what.endswith(" done"):
                bar.update(1)

        results = measure(targets, args.seconds, args.value_size, args.latency_rate, told)
    print(format_table(results))
    plot = args.plot or args.report.with_suffix(".png")
    write_plot(results, plot)
    settings = {"seconds per produce phase": f"{args.seconds:g}", "value size": f"{args.value_size} B",
                "paced rate": f"{args.latency_rate:g} records/s", "nodes": str(args.nodes),
                "targets": ", ".join(result.name for result in results)}
    command = "refka bench " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["bench"] else "refka bench"
    args.report.write_text(format_markdown(results, settings, command, plot))
    print(f"report: {args.report}  plot: {plot}", file=sys.stderr)
    return 0
