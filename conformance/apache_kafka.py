"""Apache Kafka as a local peer: the ground truth the conformance suite is checked against.

Theory of operation
-------------------
``refka kafka start --nodes N`` runs a real Apache Kafka cluster on loopback so that every
conformance test can first be proven right against Kafka itself.

1. **Resolve.**  The release is pinned in ``kafka-pom.xml`` (package data beside this module).
   ``mvn dependency:copy-dependencies`` copies the broker (``kafka_2.13``) and the tools
   (``kafka-tools``) with their dependencies into ``$REFKA_CACHE/kafka-<version>/libs``
   (``REFKA_CACHE`` defaults to ``~/.cache/refka``).  A lock file serialises racing processes and a
   ``.complete`` marker makes the step idempotent: jars are copied into a temporary directory that
   is renamed into place only when Maven succeeded.
2. **Format.**  Every node is a combined ``process.roles=broker,controller`` node (KRaft) and the
   controller quorum is all N nodes (static ``controller.quorum.voters``).  Storage is formatted
   once with ``kafka.tools.StorageTool format`` and a fresh cluster id; a later start of the same
   data directory reuses it.
3. **Ports.**  Node *i* (0-based) serves clients on ``base_port + i`` and its controller listener
   on ``base_port + N + i``, all on 127.0.0.1.
4. **Run.**  Each node is a Java 17 process with a small heap (``-Xms256m -Xmx512m``), small
   segments and indexes, ``offsets.topic.replication.factor`` and
   ``transaction.state.log.replication.factor`` = min(N, 3), their min ISR = min(N, 2), and
   ``group.initial.rebalance.delay.ms=0``.  Automatic topic creation keeps Kafka's default (on).
   Retention checks and the log cleaner run every second so that retention and compaction tests
   finish quickly on this peer; the tests themselves discover those intervals from the broker and
   never depend on them for correctness.  Processes run in their own session, outlive the command
   that started them, and log to ``<data-dir>/node-<i>/server.log``.
5. **Ready.**  Start returns once every node answers a Metadata request listing all N brokers.
6. **State.**  ``<data-dir>/cluster.json`` records node ids, pids and ports, so ``refka kafka stop``
   (SIGTERM, then SIGKILL after a timeout) and the Python API can find the processes again.

The Java tools shipped in those jars (``VerifiableProducer``, ``VerifiableConsumer``,
``ProducerPerformance``, ``ConsumerPerformance``) are real Java clients; :class:`KafkaTools` runs
them against any broker.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from conformance import raw
from reference.cli import CommandError
from reference.protocol.primitives import random_uuid_string

POM_RESOURCE = "kafka-pom.xml"
LOG4J_RESOURCE = "kafka-log4j2.properties"
KAFKA_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
DEFAULT_BASE_PORT = 19092
DEFAULT_DATA_DIR = "/tmp/refka-kafka"
STATE_FILE = "cluster.json"
JVM_HEAP = ["-Xms256m", "-Xmx512m"]
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0
MINIMUM_JAVA = 17


# ---------------------------------------------------------------- prerequisites and jars
def require_tool(name: str, what_to_install: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise CommandError(f"`{name}` not found: install {what_to_install}")
    return path


def require_java() -> str:
    java = require_tool("java", f"a Java {MINIMUM_JAVA}+ runtime (e.g. apt-get install openjdk-17-jre-headless)")
    version_text = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    found = re.search(r'version "(\d+)', version_text)
    if found is None or int(found.group(1)) < MINIMUM_JAVA:
        raise CommandError(f"Java {MINIMUM_JAVA}+ needed, found: {version_text.splitlines()[0] if version_text else '?'}")
    return java


def pinned_version() -> str:
    """The Kafka release pinned in kafka-pom.xml (its ``kafka.version`` property)."""
    text = resources.files("conformance").joinpath(POM_RESOURCE).read_text()
    found = ElementTree.fromstring(text).find("{http://maven.apache.org/POM/4.0.0}properties/"
                                              "{http://maven.apache.org/POM/4.0.0}kafka.version")
    if found is None or not found.text:
        raise RuntimeError("kafka-pom.xml has no kafka.version property")
    return found.text.strip()


def cache_root() -> Path:
    return Path(os.environ.get("REFKA_CACHE") or Path.home() / ".cache" / "refka")


def resolve_libs(version: str | None = None) -> Path:
    """Directory holding every jar of the pinned Kafka release; downloads it once with Maven."""
    version = version or pinned_version()
    home = cache_root() / f"kafka-{version}"
    libs = home / "libs"
    if (home / ".complete").exists():
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a racing process waits here, then sees .complete
        if (home / ".complete").exists():
            return libs
        mvn = require_tool("mvn", "Apache Maven (e.g. apt-get install maven)")
        staging = Path(tempfile.mkdtemp(prefix="libs-", dir=home))
        with resources.as_file(resources.files("conformance").joinpath(POM_RESOURCE)) as pom:
            done = subprocess.run(
                [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
                 f"-DoutputDirectory={staging}"],
                capture_output=True, text=True,
            )
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            last_line = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["?"]
            raise CommandError(f"mvn could not resolve Apache Kafka {version}: {last_line[0]}")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        (home / ".complete").write_text(version + "\n")
    return libs


def classpath(libs: Path) -> str:
    return str(libs / "*")


def log4j_config() -> Path:
    with resources.as_file(resources.files("conformance").joinpath(LOG4J_RESOURCE)) as path:
        return Path(path)


# ---------------------------------------------------------------- one node
@dataclass
class NodeState:
    """What cluster.json remembers about one node."""

    node_id: int
    port: int
    controller_port: int
    pid: int | None = None


def node_properties(node: NodeState, nodes: Sequence[NodeState], log_dir: Path) -> dict[str, str]:
    """server.properties of one combined broker+controller node."""
    count = len(nodes)
    voters = ",".join(f"{other.node_id}@127.0.0.1:{other.controller_port}" for other in nodes)
    return {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.network.threads": "2",
        "num.io.threads": "4",
        "background.threads": "4",
        "offsets.topic.replication.factor": str(min(count, 3)),
        "transaction.state.log.replication.factor": str(min(count, 3)),
        "transaction.state.log.min.isr": str(min(count, 2)),
        "share.coordinator.state.topic.replication.factor": str(min(count, 3)),
        "share.coordinator.state.topic.min.isr": str(min(count, 2)),
        "group.initial.rebalance.delay.ms": "0",
        "log.segment.bytes": str(8 * 1024 * 1024),
        "log.index.size.max.bytes": str(1024 * 1024),
        "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        "log.cleaner.backoff.ms": "1000",
        "log.retention.check.interval.ms": "1000",
        "log.initial.task.delay.ms": "0",
    }


def write_properties(path: Path, properties: dict[str, str]) -> None:
    path.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))


def process_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return KAFKA_MAIN.encode() in cmdline.read()
    except OSError:
        return False


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


# ---------------------------------------------------------------- the cluster
class KafkaCluster:
    """N combined KRaft nodes of Apache Kafka on 127.0.0.1.

    >>> cluster = KafkaCluster(nodes=1, base_port=19092, data_dir="/tmp/refka-kafka-1")
    >>> cluster.start(); cluster.bootstrap_servers   # doctest: +SKIP
    '127.0.0.1:19092'
    """

    def __init__(self, nodes: int = 1, base_port: int = DEFAULT_BASE_PORT, data_dir: str | Path | None = None,
                 config: dict[str, str] | None = None) -> None:
        if nodes < 1:
            raise CommandError("--nodes must be at least 1")
        self.data_dir = Path(data_dir or f"{DEFAULT_DATA_DIR}-{nodes}")
        self.extra_config = dict(config or {})
        self.nodes = [NodeState(i, base_port + i, base_port + nodes + i) for i in range(nodes)]
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.libs: Path | None = None

    # ------------------------------------------------------------ addresses and files
    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def address(self, node_id: int) -> str:
        return f"127.0.0.1:{self.nodes[node_id].port}"

    def node_dir(self, node_id: int) -> Path:
        return self.data_dir / f"node-{node_id}"

    def log_file(self, node_id: int) -> Path:
        return self.node_dir(node_id) / "server.log"

    def _save_state(self) -> None:
        state = {"bootstrap_servers": self.bootstrap_servers, "nodes": [asdict(node) for node in self.nodes]}
        (self.data_dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

    @classmethod
    def attach(cls, data_dir: str | Path) -> KafkaCluster:
        """The cluster recorded in ``data_dir/cluster.json`` (for stop, kill, restart)."""
        state_path = Path(data_dir) / STATE_FILE
        if not state_path.exists():
            raise CommandError(f"no Kafka cluster recorded in {data_dir} ({STATE_FILE} missing)")
        state = json.loads(state_path.read_text())
        nodes = [NodeState(**node) for node in state["nodes"]]
        cluster = cls(nodes=len(nodes), base_port=nodes[0].port, data_dir=data_dir)
        cluster.nodes = nodes
        return cluster

    # ------------------------------------------------------------ lifecycle
    def start(self, timeout: float = READY_TIMEOUT_S) -> str:
        """Format (first time), start every node, wait for Metadata; returns the bootstrap servers."""
        java = require_java()
        self.libs = resolve_libs()
        self._check_layout()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for node in self.nodes:
            if process_alive(node.pid):
                raise CommandError(f"node {node.node_id} already running (pid {node.pid}); run `refka kafka stop`")
            if port_open(node.port) or port_open(node.controller_port):
                raise CommandError(f"port {node.port} or {node.controller_port} already in use on 127.0.0.1")
        self._format(java)
        for node in self.nodes:
            self._launch(java, node)
        self._save_state()
        self.wait_ready(timeout)
        return self.bootstrap_servers

    def _check_layout(self) -> None:
        """Refuse to reuse a data directory formatted for a different cluster shape."""
        state_path = self.data_dir / STATE_FILE
        if not state_path.exists():
            return
        recorded = [NodeState(**node) for node in json.loads(state_path.read_text())["nodes"]]
        if [(n.port, n.controller_port) for n in recorded] != [(n.port, n.controller_port) for n in self.nodes]:
            raise CommandError(f"{self.data_dir} holds a cluster with another shape; stop it and remove the directory")
        for node, old in zip(self.nodes, recorded, strict=True):
            node.pid = old.pid

    def _config_path(self, node_id: int) -> Path:
        return self.node_dir(node_id) / "server.properties"

    def _format(self, java: str) -> None:
        cluster_id_file = self.data_dir / "cluster-id"
        if not cluster_id_file.exists():
            cluster_id_file.write_text(random_uuid_string() + "\n")
        cluster_id = cluster_id_file.read_text().strip()
        for node in self.nodes:
            self.node_dir(node.node_id).mkdir(parents=True, exist_ok=True)
            properties = node_properties(node, self.nodes, self.node_dir(node.node_id) / "data")
            properties.update(self.extra_config)
            write_properties(self._config_path(node.node_id), properties)
            if (self.node_dir(node.node_id) / "data" / "meta.properties").exists():
                continue
            done = subprocess.run(
                [java, "-Xmx256m", f"-Dlog4j2.configurationFile={log4j_config()}", "-cp", classpath(self._libs()),
                 STORAGE_TOOL, "format", "--cluster-id", cluster_id, "--config", str(self._config_path(node.node_id))],
                capture_output=True, text=True,
            )
            if done.returncode != 0:
                raise CommandError(f"formatting node {node.node_id} failed: {(done.stdout + done.stderr).strip()[-300:]}")

    def _libs(self) -> Path:
        if self.libs is None:
            self.libs = resolve_libs()
        return self.libs

    def _launch(self, java: str, node: NodeState) -> None:
        log = open(self.log_file(node.node_id), "ab")
        command = [java, *JVM_HEAP, "-XX:+UseG1GC", "-Djava.awt.headless=true",
                   f"-Dlog4j2.configurationFile={log4j_config()}",
                   f"-Dkafka.logs.dir={self.node_dir(node.node_id)}",
                   "-cp", classpath(self._libs()), KAFKA_MAIN, str(self._config_path(node.node_id))]
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        log.close()
        self.processes[node.node_id] = process
        node.pid = process.pid

    def wait_ready(self, timeout: float = READY_TIMEOUT_S, node_ids: Sequence[int] | None = None) -> None:
        """Block until each node (default: all) answers Metadata listing every live node."""
        deadline = time.monotonic() + timeout
        wanted = list(node_ids) if node_ids is not None else [node.node_id for node in self.nodes]
        live = [node for node in self.nodes if self.alive(node.node_id)]
        for node_id in wanted:
            node = self.nodes[node_id]
            while True:
                if not self.alive(node_id):
                    raise CommandError(f"node {node_id} exited during startup; see {self.log_file(node_id)}: "
                                       f"{self._last_log_line(node_id)}")
                if self._answers_metadata(node, len(live)):
                    break
                if time.monotonic() > deadline:
                    raise CommandError(f"node {node_id} did not answer Metadata within {timeout:.0f}s; "
                                       f"see {self.log_file(node_id)}")
                time.sleep(0.5)

    @staticmethod
    def _answers_metadata(node: NodeState, brokers_expected: int) -> bool:
        try:
            with raw.Connection("127.0.0.1", node.port, timeout=2.0) as conn:
                return len(raw.metadata(conn, topics=[]).brokers) >= brokers_expected
        except (OSError, raw.ConnectionClosed, AssertionError):
            return False

    def _last_log_line(self, node_id: int) -> str:
        with contextlib.suppress(OSError):
            lines = self.log_file(node_id).read_text(errors="replace").strip().splitlines()
            errors = [line for line in lines if " ERROR " in line or "Exception" in line]
            return (errors or lines or ["(empty log)"])[-1][:300]
        return "(no log)"

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM every node, SIGKILL whatever is still alive after ``timeout`` seconds."""
        running = [node for node in self.nodes if self.alive(node.node_id)]
        for node in running:
            self._signal(node, signal.SIGTERM)
        self._wait_exit(running, timeout)
        for node in running:
            node.pid = None
        if self.data_dir.exists():
            self._save_state()

    def kill(self, node_id: int) -> None:
        """Hard-stop one node (SIGKILL), as a crash would."""
        node = self.nodes[node_id]
        if self.alive(node_id):
            self._signal(node, signal.SIGKILL)
            self._wait_exit([node], STOP_TIMEOUT_S)
        node.pid = None
        self._save_state()

    def terminate(self, node_id: int, timeout: float = STOP_TIMEOUT_S) -> None:
        """Clean shutdown of one node (SIGTERM, SIGKILL after ``timeout``)."""
        node = self.nodes[node_id]
        if self.alive(node_id):
            self._signal(node, signal.SIGTERM)
            self._wait_exit([node], timeout)
        node.pid = None
        self._save_state()

    def restart(self, node_id: int, timeout: float = READY_TIMEOUT_S) -> None:
        """Start one stopped node again and wait until it answers Metadata."""
        node = self.nodes[node_id]
        if self.alive(node_id):
            self.terminate(node_id)
        self._launch(require_java(), node)
        self._save_state()
        self.wait_ready(timeout, node_ids=[node_id])

    def alive(self, node_id: int) -> bool:
        """Is the node's process running?  Uses our own child handle when we started it."""
        process = self.processes.get(node_id)
        if process is not None:
            return process.poll() is None
        return process_alive(self.nodes[node_id].pid)

    def _signal(self, node: NodeState, signum: int) -> None:
        if node.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(node.pid, signum)

    def _wait_exit(self, nodes: Sequence[NodeState], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for node in nodes:
            while self.alive(node.node_id):
                if time.monotonic() > deadline:
                    self._signal(node, signal.SIGKILL)
                    deadline = time.monotonic() + 5
                time.sleep(0.1)
            self._reap(node)

    def _reap(self, node: NodeState) -> None:
        process = self.processes.pop(node.node_id, None)
        if process is not None:
            process.poll()

    def __enter__(self) -> KafkaCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------- Kafka's own Java clients
@dataclass
class ToolResult:
    returncode: int
    stdout: str
    stderr: str

    def json_events(self) -> list[dict[str, object]]:
        """The JSON lines that the verifiable producer/consumer print, one event each."""
        events = []
        for line in self.stdout.splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    events.append(json.loads(line))
        return events


class KafkaTools:
    """Runs Kafka's command-line Java clients (from the resolved jars) against any broker."""

    VERIFIABLE_PRODUCER = "org.apache.kafka.tools.VerifiableProducer"
    VERIFIABLE_CONSUMER = "org.apache.kafka.tools.VerifiableConsumer"
    PRODUCER_PERFORMANCE = "org.apache.kafka.tools.ProducerPerformance"
    CONSUMER_PERFORMANCE = "org.apache.kafka.tools.ConsumerPerformance"

    def __init__(self, libs: Path | None = None) -> None:
        self.java = require_java()
        self.libs = libs or resolve_libs()

    def run(self, main_class: str, arguments: Sequence[str], timeout: float = 120.0) -> ToolResult:
        command = [self.java, "-Xmx256m", f"-Dlog4j2.configurationFile={log4j_config()}",
                   "-Dlog4j2.level=WARN", "-cp", classpath(self.libs), main_class, *arguments]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        return ToolResult(done.returncode, done.stdout, done.stderr)

    def verifiable_producer(self, bootstrap: str, topic: str, max_messages: int, acks: str = "-1",
                            extra: Sequence[str] = ()) -> ToolResult:
        return self.run(self.VERIFIABLE_PRODUCER, ["--bootstrap-server", bootstrap, "--topic", topic,
                                                   "--max-messages", str(max_messages), "--acks", acks, *extra])

    def verifiable_consumer(self, bootstrap: str, topic: str, group_id: str, max_messages: int,
                            extra: Sequence[str] = ()) -> ToolResult:
        return self.run(self.VERIFIABLE_CONSUMER, ["--bootstrap-server", bootstrap, "--topic", topic,
                                                   "--group-id", group_id, "--max-messages", str(max_messages),
                                                   "--reset-policy", "earliest", "--verbose", *extra])

    def producer_performance(self, bootstrap: str, topic: str, num_records: int, record_size: int = 100,
                             throughput: int = -1, producer_props: Sequence[str] = ()) -> ToolResult:
        return self.run(self.PRODUCER_PERFORMANCE, ["--bootstrap-server", bootstrap, "--topic", topic,
                                                    "--num-records", str(num_records), "--record-size",
                                                    str(record_size), "--throughput", str(throughput),
                                                    *(["--producer-props", *producer_props] if producer_props else [])])

    def consumer_performance(self, bootstrap: str, topic: str, num_records: int, timeout_ms: int = 30000) -> ToolResult:
        return self.run(self.CONSUMER_PERFORMANCE, ["--bootstrap-server", bootstrap, "--topic", topic,
                                                    "--num-records", str(num_records), "--timeout", str(timeout_ms)])


# ---------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    start = actions.add_parser("start", help="format and start N combined KRaft nodes on 127.0.0.1")
    start.add_argument("--nodes", type=int, default=1, help="number of broker+controller nodes (default 1)")
    start.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT,
                       help="client port of node 0; node i listens on BASE+i, its controller on BASE+N+i")
    start.add_argument("--data-dir", help=f"where logs and state live (default {DEFAULT_DATA_DIR}-N)")
    stop = actions.add_parser("stop", help="stop the cluster recorded in the data directory")
    stop.add_argument("--data-dir", default=None, help=f"default {DEFAULT_DATA_DIR}-1")
    actions.add_parser("resolve", help="download the pinned Kafka jars into the cache and print their directory")


def run(args: argparse.Namespace) -> int:
    if args.action == "resolve":
        print(resolve_libs())
        return 0
    if args.action == "start":
        cluster = KafkaCluster(nodes=args.nodes, base_port=args.base_port, data_dir=args.data_dir)
        bootstrap = cluster.start()
        print(bootstrap)
        return 0
    data_dir = args.data_dir or f"{DEFAULT_DATA_DIR}-1"
    KafkaCluster.attach(data_dir).stop()
    print(f"stopped the Kafka cluster in {data_dir}")
    return 0


def iter_running_nodes(cluster: KafkaCluster) -> Iterator[NodeState]:
    return (node for node in cluster.nodes if cluster.alive(node.node_id))
