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
3. **Run.**  Ports, processes, readiness and ``cluster.json`` are those of every local cluster
   (``reference.node.local_cluster``, shared with ``refka cluster``).  Each node is a Java 17
   process with a small heap (``-Xms256m -Xmx512m``) and the shared combined-node properties
   (``reference.node.local_cluster.node_properties``).  Automatic topic creation keeps Kafka's default (on).

The Java tools shipped in those jars (``VerifiableProducer``, ``VerifiableConsumer``,
``ProducerPerformance``, ``ConsumerPerformance``, and ``TransactionalMessageCopier``, the
consume-transform-produce loop of Kafka's own transaction system tests) are real Java clients;
:class:`KafkaTools` runs them against any broker.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from reference.cli import CommandError
from reference.node.local_cluster import LocalCluster, NodeState

POM_RESOURCE = "kafka-pom.xml"
LOG4J_RESOURCE = "kafka-log4j2.properties"
KAFKA_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
DEFAULT_BASE_PORT = 19092
DEFAULT_DATA_DIR = "/tmp/refka-kafka"
JVM_HEAP = ["-Xms256m", "-Xmx512m"]
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
# ---------------------------------------------------------------- the cluster
class KafkaCluster(LocalCluster):
    """N combined KRaft nodes of Apache Kafka on 127.0.0.1.

    >>> cluster = KafkaCluster(nodes=1, base_port=19092, data_dir="/tmp/refka-kafka-1")
    >>> cluster.start(); cluster.bootstrap_servers   # doctest: +SKIP
    '127.0.0.1:19092'
    """

    KIND = "kafka"
    DISPLAY = "Kafka"
    PROCESS_MARKER = KAFKA_MAIN.encode()

    def __init__(self, nodes: int = 1, base_port: int = DEFAULT_BASE_PORT, data_dir: str | Path | None = None,
                 config: dict[str, str] | None = None) -> None:
        super().__init__(nodes, base_port, data_dir or f"{DEFAULT_DATA_DIR}-{nodes}", config)
        self.libs: Path | None = None

    def _format(self, node: NodeState, cluster_id: str) -> None:
        """``kafka.tools.StorageTool format`` on the node's server.properties."""
        done = subprocess.run(
            [require_java(), "-Xmx256m", f"-Dlog4j2.configurationFile={log4j_config()}", "-cp", classpath(self._libs()),
             STORAGE_TOOL, "format", "--cluster-id", cluster_id, "--config", str(self.config_path(node.node_id))],
            capture_output=True, text=True,
        )
        if done.returncode != 0:
            raise CommandError(f"formatting node {node.node_id} failed: {(done.stdout + done.stderr).strip()[-300:]}")

    def _libs(self) -> Path:
        if self.libs is None:
            self.libs = resolve_libs()
        return self.libs

    def _command(self, node: NodeState) -> list[str]:
        return [require_java(), *JVM_HEAP, "-XX:+UseG1GC", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={log4j_config()}",
                f"-Dkafka.logs.dir={self.node_dir(node.node_id)}",
                "-cp", classpath(self._libs()), KAFKA_MAIN, str(self.config_path(node.node_id))]


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
    TRANSACTIONAL_MESSAGE_COPIER = "org.apache.kafka.tools.TransactionalMessageCopier"

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

    def transactional_message_copier(self, bootstrap: str, input_topic: str, output_topic: str,
                                     transactional_id: str, group_id: str, max_messages: int,
                                     input_partition: int = 0, transaction_size: int = 200,
                                     random_aborts: bool = False, use_group_metadata: bool = False,
                                     timeout: float = 300.0) -> ToolResult:
        """Copies ``max_messages`` records of one input partition to the output topic (same partition
        number), one transaction per poll of at most ``transaction_size`` records, with the consumed
        positions committed for ``group_id`` inside each transaction (sendOffsetsToTransaction; with
        ``use_group_metadata`` the KIP-447 form that passes the consumer's group metadata).  With
        ``random_aborts`` about one transaction in three is aborted instead and the consumer rewinds
        to the group's committed offset, so those records are copied again by a later transaction.
        Exits 0 once every record is copied; prints a JSON status line per poll."""
        arguments = ["--broker-list", bootstrap, "--input-topic", input_topic, "--input-partition",
                     str(input_partition), "--output-topic", output_topic, "--transactional-id", transactional_id,
                     "--consumer-group", group_id, "--max-messages", str(max_messages),
                     "--transaction-size", str(transaction_size)]
        if random_aborts:
            arguments.append("--enable-random-aborts")
        if use_group_metadata:
            arguments.append("--use-group-metadata")
        return self.run(self.TRANSACTIONAL_MESSAGE_COPIER, arguments, timeout)


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



