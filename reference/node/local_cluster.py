"""A cluster of local node processes on 127.0.0.1, remembered in ``cluster.json``.

Theory of operation
-------------------
Both peers of the conformance suite are run the same way: Apache Kafka (``refka kafka start``,
``conformance.apache_kafka``) and refka's own replicated cluster (``refka cluster start``,
``reference.node.cluster``).  This module is what they share; each subclass says how to prepare a
node's files and which command runs it.

1. **Ports.**  Node *i* (0-based) serves clients on ``base_port + i`` and its controller listener
   on ``base_port + N + i``, all on 127.0.0.1.  Every node is a combined broker+controller node and
   the voters are all N nodes, as ``refka kafka start`` has always done.
2. **Run.**  Each node is a process in its own session (it outlives the command that started it)
   logging to ``<data-dir>/node-<i>/server.log``.
3. **Ready.**  Start returns once every node answers a Metadata request listing every live node.
4. **State.**  ``<data-dir>/cluster.json`` records the kind of cluster, node ids, pids and ports, so
   ``stop``, ``kill NODE`` and ``restart NODE`` -- from the command line, or from the suite's
   node-control fault tests through :func:`attach_cluster` -- find the processes again.

Stopping is SIGTERM (a clean shutdown) and SIGKILL after a timeout; ``kill`` is SIGKILL at once,
as a crash would be.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Self

from ..cli import CommandError
from ..protocol.apis import API_BY_KEY
from ..protocol.frames import SIZE_PREFIX, decode_response, encode_request
from ..protocol.primitives import random_uuid_string

STATE_FILE = "cluster.json"
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0
METADATA = API_BY_KEY[3]
METADATA_VERSION = 12  # flexible, topic ids; every Kafka 4 broker and refka serve it


@dataclass
class NodeState:
    """What cluster.json remembers about one node."""

    node_id: int
    port: int
    controller_port: int
    pid: int | None = None


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def metadata_broker_count(host: str, port: int, timeout: float = 2.0) -> int | None:
    """How many brokers a node lists in Metadata (no topics), or None if it does not answer."""
    body = METADATA.request.make(topics=[], allow_auto_topic_creation=False)
    frame = encode_request(METADATA, METADATA_VERSION, 1, "refka-cluster", body)
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.sendall(frame)
            (size,) = SIZE_PREFIX.unpack(_read_exactly(conn, 4))
            _, response = decode_response(METADATA, METADATA_VERSION, _read_exactly(conn, size))
    except (OSError, ValueError):
        return None
    return len(response.brokers)


def _read_exactly(conn: socket.socket, count: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < count:
        chunk = conn.recv(count - len(chunks))
        if not chunk:
            raise ConnectionError("closed")
        chunks += chunk
    return bytes(chunks)


def node_properties(node: NodeState, nodes: Sequence[NodeState], log_dir: Path) -> dict[str, str]:
    """server.properties of one combined broker+controller node of an N-node local cluster.

    Kafka's keys, valid for both peers: internal topics replicated min(N, 3) times with a minimum
    ISR of min(N, 2); small segments and indexes; retention checks and the cleaner every second (the
    suite discovers those intervals and never relies on them for correctness).  Node *i* sits in
    rack ``r<i>`` with Kafka's rack-aware replica selector, so that a consumer naming a rack is sent
    to a same-rack follower (KIP-392 fetch from follower)."""
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
        "broker.rack": f"r{node.node_id}",
        "replica.selector.class": "org.apache.kafka.common.replica.RackAwareReplicaSelector",
    }



def write_properties(path: Path, properties: dict[str, str]) -> None:
    """A Java properties file, one ``key=value`` a line."""
    path.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))


class LocalCluster:
    """N combined nodes on 127.0.0.1; subclasses prepare and launch one node."""

    KIND = "local"
    DISPLAY = "local"  # how messages name the cluster: "Kafka", "reference"
    PROCESS_MARKER = b""  # a byte string found in a live node's command line

    def __init__(self, nodes: int = 1, base_port: int = 19092, data_dir: str | Path | None = None,
                 config: dict[str, str] | None = None) -> None:
        if nodes < 1:
            raise CommandError("--nodes must be at least 1")
        self.data_dir = Path(data_dir or f"/tmp/refka-{self.KIND}-{nodes}")
        self.extra_config = dict(config or {})
        self.nodes = [NodeState(i, base_port + i, base_port + nodes + i) for i in range(nodes)]
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    # ------------------------------------------------------------ what a subclass says
    def _format(self, node: NodeState, cluster_id: str) -> None:
        """Format ``node``'s log directory for ``cluster_id`` (``meta.properties``), as
        ``kafka-storage format`` does; called once, before its first start."""
        raise NotImplementedError

    def _command(self, node: NodeState) -> list[str]:
        """The command that runs ``node`` in the foreground."""
        raise NotImplementedError

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

    def config_path(self, node_id: int) -> Path:
        return self.node_dir(node_id) / "server.properties"

    def log_dir(self, node_id: int) -> Path:
        return self.node_dir(node_id) / "data"

    def cluster_id(self) -> str:
        """The cluster's id, drawn once and kept in ``<data-dir>/cluster-id``."""
        cluster_id_file = self.data_dir / "cluster-id"
        if not cluster_id_file.exists():
            cluster_id_file.write_text(random_uuid_string() + "\n")
        return cluster_id_file.read_text().strip()

    def _prepare(self) -> None:
        """Write every node's server.properties (the shared :func:`node_properties` plus the caller's
        settings) and format each log directory the first time."""
        cluster_id = self.cluster_id()
        for node in self.nodes:
            self.node_dir(node.node_id).mkdir(parents=True, exist_ok=True)
            properties = node_properties(node, self.nodes, self.log_dir(node.node_id))
            properties.update(self.extra_config)
            write_properties(self.config_path(node.node_id), properties)
            if not (self.log_dir(node.node_id) / "meta.properties").exists():
                self._format(node, cluster_id)

    def voters(self) -> str:
        """``controller.quorum.voters`` of the cluster: every node is a voter."""
        return ",".join(f"{node.node_id}@127.0.0.1:{node.controller_port}" for node in self.nodes)

    def _save_state(self) -> None:
        state = {"kind": self.KIND, "bootstrap_servers": self.bootstrap_servers,
                 "nodes": [asdict(node) for node in self.nodes]}
        (self.data_dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

    @classmethod
    def attach(cls, data_dir: str | Path) -> Self:
        """The cluster recorded in ``data_dir/cluster.json`` (for stop, kill, restart)."""
        state_path = Path(data_dir) / STATE_FILE
        if not state_path.exists():
            raise CommandError(f"no {cls.DISPLAY} cluster recorded in {data_dir} ({STATE_FILE} missing)")
        state = json.loads(state_path.read_text())
        nodes = [NodeState(**node) for node in state["nodes"]]
        cluster = cls(nodes=len(nodes), base_port=nodes[0].port, data_dir=data_dir)
        cluster.nodes = nodes
        return cluster

    # ------------------------------------------------------------ lifecycle
    def start(self, timeout: float = READY_TIMEOUT_S) -> str:
        """Prepare (first time), start every node, wait for Metadata; returns the bootstrap servers."""
        self._check_layout()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for node in self.nodes:
            if self.alive(node.node_id):
                raise CommandError(f"node {node.node_id} already running (pid {node.pid}); stop the cluster first")
            if port_open(node.port) or port_open(node.controller_port):
                raise CommandError(f"port {node.port} or {node.controller_port} already in use on 127.0.0.1")
        self._prepare()
        for node in self.nodes:
            self._launch(node)
        self._save_state()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()  # a half-started cluster would outlive its caller, holding ports and memory
            raise
        return self.bootstrap_servers

    def _check_layout(self) -> None:
        """Refuse to reuse a data directory laid out for a different cluster shape."""
        state_path = self.data_dir / STATE_FILE
        if not state_path.exists():
            return
        recorded = [NodeState(**node) for node in json.loads(state_path.read_text())["nodes"]]
        if [(n.port, n.controller_port) for n in recorded] != [(n.port, n.controller_port) for n in self.nodes]:
            raise CommandError(f"{self.data_dir} holds a cluster with another shape; stop it and remove the directory")
        for node, old in zip(self.nodes, recorded, strict=True):
            node.pid = old.pid

    def _launch(self, node: NodeState) -> None:
        self.node_dir(node.node_id).mkdir(parents=True, exist_ok=True)
        log = open(self.log_file(node.node_id), "ab")
        process = subprocess.Popen(self._command(node), stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
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
                brokers = metadata_broker_count("127.0.0.1", node.port)
                if brokers is not None and brokers >= len(live):
                    break
                if time.monotonic() > deadline:
                    raise CommandError(f"node {node_id} did not answer Metadata within {timeout:.0f}s; "
                                       f"see {self.log_file(node_id)}")
                time.sleep(0.5)

    def _last_log_line(self, node_id: int) -> str:
        with contextlib.suppress(OSError):
            lines = self.log_file(node_id).read_text(errors="replace").strip().splitlines()
            errors = [line for line in lines if " ERROR " in line or "Exception" in line or "Error" in line]
            return (errors or lines or ["(empty log)"])[-1][:300]
        return "(no log)"

    def _adopt_recorded_pids(self) -> None:
        """Another process (the suite's node-control fixture) may have restarted nodes of this
        cluster: ``cluster.json`` then names processes this object did not start.  Take them over,
        so that a stop stops what really runs."""
        state_path = self.data_dir / STATE_FILE
        if not state_path.exists():
            return
        for recorded in json.loads(state_path.read_text())["nodes"]:
            node = self.nodes[recorded["node_id"]]
            if recorded["pid"] is not None and recorded["pid"] != node.pid:
                ended = self.processes.pop(node.node_id, None)  # our handle is of a process that has ended
                if ended is not None:
                    ended.poll()  # reap it
                node.pid = recorded["pid"]

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM every node, SIGKILL whatever is still alive after ``timeout`` seconds."""
        self._adopt_recorded_pids()
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
        self._launch(node)
        self._save_state()
        self.wait_ready(timeout, node_ids=[node_id])

    def alive(self, node_id: int) -> bool:
        """Is the node's process running?  Uses our own child handle when we started it."""
        process = self.processes.get(node_id)
        if process is not None:
            return process.poll() is None
        pid = self.nodes[node_id].pid
        if pid is None:
            return False
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                return self.PROCESS_MARKER in cmdline.read()
        except OSError:
            return False

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
            process = self.processes.pop(node.node_id, None)
            if process is not None:
                process.poll()

    def running_nodes(self) -> list[NodeState]:
        return [node for node in self.nodes if self.alive(node.node_id)]

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def cluster_kind(data_dir: str | Path) -> str:
    """The kind recorded in ``cluster.json`` ("kafka" for files written before kinds existed)."""
    state_path = Path(data_dir) / STATE_FILE
    if not state_path.exists():
        raise CommandError(f"no cluster recorded in {data_dir} ({STATE_FILE} missing)")
    return str(json.loads(state_path.read_text()).get("kind", "kafka"))
