"""One chaos run, start to verdict: topic, workload, scheduled faults, heal, final read, judgement.

Theory of operation
-------------------
The runner knows nothing about docker.  It drives any :class:`Cluster` (the docker one in
``chaos.cluster``, or :class:`LocalCluster`, an in-process reference broker for tests) and any
list of :class:`Nemesis` objects (``chaos.nemesis``, or :class:`LocalRestart` here).  A run is:

1. create the workload's topic (replication factor 3 and ``min.insync.replicas=2``, or 1 and 1 on
   fewer than three nodes);
2. start the producers and consumers of ``chaos.workload``;
3. until ``duration`` runs out: wait a quiet interval, pick a nemesis with the seeded RNG, start
   its fault, hold it, heal it -- one fault at a time, each recorded in ``faults.jsonl`` with its
   start and end on the history's clock.  Nemeses are drawn from a shuffled bag (each one once,
   in a seeded order, before any repeats), so a short run still exercises every nemesis it names;
4. heal everything (also on error or Ctrl-C), stop the producers (their last delivery reports
   arrive within ``delivery.timeout.ms``), let the consumers catch up, stop them;
5. the final read; then ``chaos.checker`` judges ``history.jsonl`` and ``chaos.report`` writes
   ``verdict.json``, ``summary.txt`` and ``timeline.png``.

Besides the history, a run keeps what is needed to *explain* a verdict afterwards: the clients'
librdkafka log (``client.log``, see ``chaos.workload.ClientLog``), open from topic creation to the
end of the final read, and, when the cluster can give them (:class:`BrokerLogs`: the docker
cluster can, the in-process one cannot), each broker's own log as ``broker-<node id>.log``, saved
before the cluster is torn down, also when the run fails.

The schedule depends only on the seed (which nemesis, when, for how long); what the faults hit
(``leader_of`` at that moment) and the clients' timing do not replay exactly -- real brokers are
not simulated.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from . import report
from .checker import Verdict, check
from .history import FAULTS_FILE, HISTORY_FILE, Clock, FaultLog, HistoryWriter
from .workload import CLIENT_LOG_FILE, ClientLog, Counters, Workload, WorkloadConfig, topic_settings

RUN_FILE = "run.json"
VERDICT_FILE = "verdict.json"
BROKER_LOG_LINES = 1_000_000  # per node: a 60-120 s Kafka run writes a few thousand lines


class Cluster(Protocol):
    """What the runner needs from a cluster (docker containers, or one broker in-process)."""

    def bootstrap_servers(self) -> str: ...

    def node_ids(self) -> list[int]: ...

    def leader_of(self, topic: str, partition: int) -> int | None: ...

    def create_topic(self, name: str, partitions: int, replication_factor: int, configs: dict[str, str]) -> None: ...

    def stop(self) -> None: ...


@runtime_checkable
class BrokerLogs(Protocol):
    """A cluster whose brokers' logs can be read (``chaos.cluster.DockerCluster``: the containers' output)."""

    def node_ids(self) -> list[int]: ...

    def logs(self, node_id: int, lines: int = 50) -> str: ...


def broker_log_name(node_id: int) -> str:
    return f"broker-{node_id}.log"


def save_broker_logs(cluster: object, out_dir: Path, lines: int = BROKER_LOG_LINES) -> dict[str, Path]:
    """Write each node's log to ``out_dir/broker-<id>.log``; nothing if the cluster keeps no logs.

    Best effort: a node whose log cannot be read gets a file saying why, and the run goes on."""
    if not isinstance(cluster, BrokerLogs):
        return {}
    saved: dict[str, Path] = {}
    try:
        node_ids = cluster.node_ids()
    except Exception:  # an engine that stopped answering: there is nothing to save
        return saved
    for node_id in node_ids:
        path = out_dir / broker_log_name(node_id)
        try:
            text = cluster.logs(node_id, lines)
        except Exception as error:
            text = f"(could not read the log of node {node_id}: {error!r})"
        path.write_text(text + "\n", encoding="utf-8")
        saved[path.name] = path
    return saved


class Nemesis(Protocol):
    """A kind of fault: ``start`` injects one (and describes it, for faults.jsonl), ``heal`` undoes it."""

    name: str

    def start(self, rng: random.Random) -> dict[str, Any]: ...

    def heal(self) -> object: ...  # None, or a description of what was undone


# -- a cluster without docker ---------------------------------------------------------------------


def _admin(bootstrap: str) -> Any:
    from confluent_kafka.admin import AdminClient

    from .workload import client_logger

    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "reconnect.backoff.max.ms": 1000,
                              "logger": client_logger("admin")}
    return AdminClient(config)


def leader_from_metadata(bootstrap: str, topic: str, partition: int, timeout: float = 5.0) -> int | None:
    """The partition's leader as Metadata reports it (None if unknown or unreachable)."""
    from confluent_kafka import KafkaException

    try:
        metadata = _admin(bootstrap).list_topics(topic, timeout=timeout)
    except KafkaException:
        return None
    described = metadata.topics.get(topic)
    if described is None or partition not in described.partitions:
        return None
    leader = described.partitions[partition].leader
    return None if leader < 0 else int(leader)


def create_topic_with_admin(bootstrap: str, name: str, partitions: int, replication_factor: int,
                            configs: dict[str, str], timeout: float = 30.0) -> None:
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    admin = _admin(bootstrap)  # kept alive until the answer: a collected client cancels its requests
    future = admin.create_topics(
        [NewTopic(name, partitions, replication_factor, config=configs)], operation_timeout=timeout)[name]
    future.result(timeout)


class LocalCluster:
    """One reference broker in this process (``EmbeddedBroker``): the pipeline without docker."""

    def __init__(self, data_dir: Path | None = None, config: dict[str, str] | None = None) -> None:
        from reference.broker.embedded import EmbeddedBroker

        self.broker = EmbeddedBroker(data_dir=data_dir, config=config)
        self.broker.start()
        self.running = True

    def bootstrap_servers(self) -> str:
        return self.broker.bootstrap

    def node_ids(self) -> list[int]:
        metadata = _admin(self.bootstrap_servers()).list_topics(timeout=10)
        return sorted(int(node) for node in metadata.brokers)

    def leader_of(self, topic: str, partition: int) -> int | None:
        return leader_from_metadata(self.bootstrap_servers(), topic, partition) if self.running else None

    def create_topic(self, name: str, partitions: int, replication_factor: int, configs: dict[str, str]) -> None:
        create_topic_with_admin(self.bootstrap_servers(), name, partitions, replication_factor, configs)

    def stop(self) -> None:
        self.running = False
        self.broker.close()


class LocalRestart:
    """Graceful restart of the in-process broker: ``start`` stops it (data and port kept), ``heal`` starts it."""

    name = "restart"

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster

    def start(self, rng: random.Random) -> dict[str, Any]:
        self.cluster.broker.stop()
        self.cluster.running = False
        return {"action": "graceful stop", "bootstrap": self.cluster.bootstrap_servers()}

    def heal(self) -> None:
        if not self.cluster.running:
            self.cluster.broker.start()
            self.cluster.running = True


# -- the run --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunConfig:
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    duration: float = 60.0  # seconds of load with faults
    seed: int = 0
    nodes: int = 1
    target: str = "local"
    quiet: tuple[float, float] = (5.0, 10.0)  # seconds between faults (uniform): time for groups to re-form
    fault_length: tuple[float, float] = (2.0, 6.0)  # seconds a fault lasts (uniform)
    catch_up: float = 3.0  # seconds the consumers keep reading after the producers stop


@dataclass(frozen=True)
class Progress:
    elapsed: float
    duration: float
    counters: Counters
    faults: int
    active: str | None  # the nemesis currently in effect


@dataclass
class RunResult:
    verdict: Verdict
    out_dir: Path
    files: dict[str, Path]
    workload_errors: list[str]


class _Schedule:
    """Runs the nemeses one fault at a time on the seeded schedule, in its own thread."""

    def __init__(self, nemeses: Sequence[Nemesis], config: RunConfig, faults: FaultLog) -> None:
        self.nemeses = list(nemeses)
        self.config = config
        self.faults = faults
        self.rng = random.Random(config.seed)
        self.stopping = threading.Event()
        self.active: str | None = None
        self.thread = threading.Thread(target=self._run, name="chaos-nemesis", daemon=True)

    def _run(self) -> None:
        if not self.nemeses:
            return
        bag: list[Nemesis] = []
        while not self.stopping.wait(self.rng.uniform(*self.config.quiet)):
            if not bag:
                bag = self.rng.sample(self.nemeses, len(self.nemeses))
            nemesis = bag.pop()
            length = self.rng.uniform(*self.config.fault_length)
            index = self.faults.begin(nemesis.name, {})  # the window opens when we start injecting
            try:
                description = nemesis.start(self.rng)
            except Exception as error:  # a fault that could not start is still recorded
                description = {"error": f"start failed: {error!r}"}
            self.faults.describe(index, description)
            self.active = nemesis.name
            self.stopping.wait(length)
            healed = self._heal(nemesis)
            if isinstance(healed, dict) and healed:
                self.faults.describe(index, {**description, "heal": healed})
            self.faults.end(index)
            self.active = None

    @staticmethod
    def _heal(nemesis: Nemesis) -> object:
        for attempt in range(3):
            try:
                return nemesis.heal()
            except Exception:
                if attempt == 2:
                    raise
                time.sleep(1)
        return None

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(120)
        for nemesis in self.nemeses:  # every fault healed, whatever happened
            self._heal(nemesis)


def run(cluster: Cluster, nemeses: Sequence[Nemesis], config: RunConfig, out_dir: Path,
        on_progress: Callable[[Progress], None] | None = None) -> RunResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {name: out_dir / name for name in (HISTORY_FILE, FAULTS_FILE, RUN_FILE, VERDICT_FILE,
                                                report.SUMMARY_FILE, report.TIMELINE_FILE, CLIENT_LOG_FILE)}
    clock = Clock()
    history = HistoryWriter(files[HISTORY_FILE], clock)
    faults = FaultLog(files[FAULTS_FILE], clock)
    client_log = ClientLog(files[CLIENT_LOG_FILE], clock)
    metadata = {"target": config.target, "nodes": config.nodes, "seed": config.seed, "duration": config.duration,
                "nemeses": [n.name for n in nemeses], "workload": asdict(config.workload),
                "started": clock.wall()}
    try:
        replication_factor, topic_configs = topic_settings(config.workload, config.nodes)
        cluster.create_topic(config.workload.topic, config.workload.partitions, replication_factor, topic_configs)
        metadata["topic"] = {"replication_factor": replication_factor, "configs": topic_configs}
        workload = Workload(config.workload, cluster.bootstrap_servers(), history, config.seed)
        schedule = _Schedule(nemeses, config, faults)
        try:
            workload.start()
            schedule.thread.start()
            _wait(config, workload, schedule, faults, on_progress)
        finally:
            schedule.stop()
            faults.write()
            workload.stop_producers()
            time.sleep(config.catch_up)
            workload.stop_consumers()
        workload.final_read()
    finally:
        history.close()
        client_log.close()
        files.update(save_broker_logs(cluster, out_dir))
    metadata["client_log"] = {"bytes": client_log.bytes_written, "lines_dropped": client_log.lines_dropped}
    errors = workload.errors()
    verdict = check(history.events, config.workload.name)
    metadata["workload_errors"] = errors
    files[RUN_FILE].write_text(json.dumps(metadata, indent=2) + "\n")
    write_outputs(out_dir, verdict, history.events, faults.faults, metadata)
    return RunResult(verdict, out_dir, files, errors)


def _wait(config: RunConfig, workload: Workload, schedule: _Schedule, faults: FaultLog,
          on_progress: Callable[[Progress], None] | None) -> None:
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < config.duration:
        if on_progress is not None:
            on_progress(Progress(elapsed, config.duration, workload.counters, len(faults.faults), schedule.active))
        time.sleep(min(0.5, max(0.0, config.duration - elapsed)))
    if on_progress is not None:
        on_progress(Progress(config.duration, config.duration, workload.counters, len(faults.faults), None))


def write_outputs(out_dir: Path, verdict: Verdict, events: Sequence[Any], faults: Sequence[Any],
                  metadata: dict[str, Any]) -> None:
    """verdict.json, summary.txt and timeline.png from a judged history."""
    (out_dir / VERDICT_FILE).write_text(json.dumps(verdict.to_dict(), indent=2) + "\n")
    (out_dir / report.SUMMARY_FILE).write_text(report.summary(verdict, faults, metadata))
    report.plot_timeline(events, faults, out_dir / report.TIMELINE_FILE,
                         title=f"{metadata.get('target', '?')} / {verdict.workload}: {verdict.verdict}")
