"""``refka conform``: run the conformance suite against a broker and write the matrix.

    refka conform [--bootstrap-server HOST:PORT | --apache-kafka N | --reference-cluster N | --peers [LIST]]
                  [--clients kafka-python,confluent-kafka,aiokafka] [--report DIR]
                  [--cluster-state FILE | --node-control CMD] [--compare EARLIER_REPORT]
                  [-- extra pytest arguments]

Without ``--bootstrap-server`` the embedded reference broker
(``reference.broker.embedded.EmbeddedBroker``) is started for the run.  ``--apache-kafka N``
starts a private N-node Apache Kafka cluster on free ports instead (``conformance.apache_kafka``),
gives the suite its ``cluster.json`` so the fault tests can stop and restart nodes, and stops it
afterwards: the ground-truth run that CI makes.  ``--reference-cluster N`` does the same with a
private N-node replicated reference cluster (``reference.node.cluster``), so the suite, its
node-control fault tests included, runs against both peers the same way.  The suite itself runs in
a child ``python -m pytest -p conformance.plugin --pyargs conformance.suite`` process, writing
JUnit XML (``junit.xml``), the per-test JSON (``results.json``) and then ``matrix.md`` and
``matrix.html`` into the report directory, beside ``target.json`` (the target's ApiVersions and
cluster id, the clients' versions: :mod:`conformance.target_info`).  The last line printed is the one-line summary.
Exit status: 0 only when no test failed or errored.  Before each test ``conformance.liveness``
checks that the target still answers; once it does not, the remaining tests are "not run".

``--peers kafka,reference,kfake,tansu`` runs all of the above against each broker in turn
(:mod:`conformance.peers`) and writes one matrix with a column per broker; there the exit status is
1 only when the Kafka or the reference column fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from conformance.report import compare_runs, comparison_markdown, load_results, write_reports
from conformance.target_info import describe_run
from reference.cli import CommandError
from reference.node.local_cluster import LocalCluster


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--bootstrap-server", help="broker under test (default: start the embedded reference broker)")
    where.add_argument("--apache-kafka", type=int, metavar="N",
                       help="start a private N-node Apache Kafka cluster and run the suite against it")
    where.add_argument("--reference-cluster", type=int, metavar="N",
                       help="start a private N-node replicated reference cluster and run the suite against it")
    where.add_argument("--peers", nargs="?", const="kafka,reference,kfake,tansu", metavar="LIST",
                       help="run the suite against each of kafka,reference,kfake,tansu (default all; kfake and "
                            "tansu are built and cached on first use) and write one matrix, peers.md/html")
    parser.add_argument("--clients", default=None,
                        help="comma-separated clients (kafka-python, confluent-kafka, aiokafka, kcat, refka); default all")
    parser.add_argument("--report", default="reports/conformance", help="directory for junit.xml and the matrix (default reports/conformance)")
    parser.add_argument("--cluster-state", default=None,
                        help="cluster.json of a local Apache Kafka cluster the fault tests may stop and restart")
    parser.add_argument("--node-control", default=None, metavar="CMD",
                        help="command that kills or restarts node N of the cluster under test, for the fault tests: "
                             "'docker {action} kafka-{node}', or CMD run as 'CMD kill|restart N' "
                             "(conformance/node_control.py)")
    parser.add_argument("--compare", default=None, metavar="EARLIER",
                        help="an earlier run's report directory (or its results.json): write comparison.md, "
                             "what newly fails, newly passes, appeared or went, and print its summary line")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: passed to pytest")


# The embedded reference broker runs with the same speed settings as the Apache Kafka peer
# (conformance.apache_kafka): time-based housekeeping every second, no initial rebalance delay.
# Tests read these values from the broker, so they change how long tests wait, never what passes.
EMBEDDED_BROKER_CONFIG = {
    "group.initial.rebalance.delay.ms": "0",
    "log.segment.bytes": str(8 * 1024 * 1024),
    "log.cleaner.backoff.ms": "1000",
    "log.retention.check.interval.ms": "1000",
}


@contextlib.contextmanager
def apache_kafka(nodes: int, report_dir: Path | None = None) -> Iterator[tuple[str, str]]:
    """A private Apache Kafka cluster for one run: (bootstrap servers, cluster.json path)."""
    from conformance.apache_kafka import KafkaCluster

    with private_cluster(KafkaCluster, nodes, "kafka", report_dir) as started:
        yield started


@contextlib.contextmanager
def reference_cluster(nodes: int, report_dir: Path | None = None) -> Iterator[tuple[str, str]]:
    """A private replicated reference cluster for one run: (bootstrap servers, cluster.json path)."""
    from reference.node.cluster import ReferenceCluster

    with private_cluster(ReferenceCluster, nodes, "reference", report_dir) as started:
        yield started


@contextlib.contextmanager
def private_cluster(make: Callable[..., LocalCluster], nodes: int, name: str,
                    report_dir: Path | None = None) -> Iterator[tuple[str, str]]:
    """Start a local cluster on free ports in a temporary directory; stop it afterwards, keeping
    each node's log as ``<report_dir>/nodes/node-<id>.log`` (the directory itself goes)."""
    import tempfile

    from conformance.fixtures import free_port_block
    from reference.node.local_cluster import STATE_FILE

    with tempfile.TemporaryDirectory(prefix=f"refka-conform-{name}-") as data_dir:
        cluster = make(nodes=nodes, base_port=free_port_block(2 * nodes), data_dir=data_dir)
        bootstrap = cluster.start()
        try:
            yield bootstrap, str(Path(data_dir) / STATE_FILE)
        finally:
            cluster.stop()
            if report_dir is not None:
                (report_dir / "nodes").mkdir(parents=True, exist_ok=True)
                for node in cluster.nodes:
                    if cluster.log_file(node.node_id).exists():
                        shutil.copyfile(cluster.log_file(node.node_id), report_dir / "nodes" / f"node-{node.node_id}.log")


@contextlib.contextmanager
def target(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    try:
        from reference.broker.embedded import EmbeddedBroker  # type: ignore[import-not-found]
    except ImportError as missing:
        raise CommandError("the embedded reference broker (reference/broker/embedded.py) is not available "
                           "yet; pass --bootstrap-server HOST:PORT") from missing
    embedded = EmbeddedBroker(config=EMBEDDED_BROKER_CONFIG)
    bootstrap_address = embedded.start()
    try:
        yield bootstrap_address
    finally:
        embedded.stop()


def pytest_command(bootstrap: str, report_dir: Path, clients: str | None, cluster_state: str | None,
                   extra: list[str], node_control: str | None = None) -> list[str]:
    command = [sys.executable, "-m", "pytest", "-p", "conformance.plugin", "-p", "conformance.liveness",
               "-p", "no:cacheprovider",
               "--pyargs", "conformance.suite", "--bootstrap-server", bootstrap,
               "--junitxml", str(report_dir / "junit.xml"), "--results-json", str(report_dir / "results.json"),
               "-q", "-rN"]
    if clients:
        command += ["--clients", clients]
    if cluster_state:
        command += ["--cluster-state", cluster_state]
    if node_control:
        command += ["--node-control", node_control]
    return command + [arg for arg in extra if arg != "--"]


def _stop_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM (a CI timeout, ``kill``) unwinds like Ctrl-C, so the private cluster is stopped."""
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    if args.peers:
        from conformance.peers.run import run_peers

        return run_peers(args)
    report_dir = Path(args.report)
    report_dir.mkdir(parents=True, exist_ok=True)
    results_json = report_dir / "results.json"
    earlier = _earlier_results(args.compare, results_json)
    results_json.unlink(missing_ok=True)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        cluster_state = args.cluster_state
        if args.apache_kafka:
            bootstrap, cluster_state = stack.enter_context(apache_kafka(args.apache_kafka, report_dir))
        elif args.reference_cluster:
            bootstrap, cluster_state = stack.enter_context(reference_cluster(args.reference_cluster, report_dir))
        else:
            bootstrap = stack.enter_context(target(args.bootstrap_server))
        command = pytest_command(bootstrap, report_dir, args.clients, cluster_state, list(args.pytest_args),
                                 args.node_control)
        (report_dir / "target.json").write_text(json.dumps(describe_run(bootstrap), indent=1))
        completed = subprocess.run(command)
    if not results_json.exists():
        raise CommandError(f"pytest exited with status {completed.returncode} before writing results")
    matrix, summary = write_reports(results_json, report_dir, time.monotonic() - started)
    print(f"matrix: {report_dir / 'matrix.md'}, {report_dir / 'matrix.html'}; junit: {report_dir / 'junit.xml'}")
    if earlier is not None:
        comparison = compare_runs(earlier, load_results(results_json))
        (report_dir / "comparison.md").write_text(comparison_markdown(comparison, args.compare))
        print(comparison.summary(args.compare))
    print(with_exit_status(summary, completed.returncode))
    return 1 if matrix.failed or completed.returncode not in (0, 5) else 0


# pytest's exit statuses that mean the suite itself did not run as asked (1 is failed tests, which
# the summary already counts; 5 is nothing selected, e.g. by -k).
PYTEST_BROKEN_RUN = {2: "interrupted, or a test module failed to import", 3: "internal error", 4: "usage error"}


def with_exit_status(summary: str, returncode: int) -> str:
    """The summary line, unless pytest says the run broke: then a FAILED line naming why, so a
    module that does not import is never reported as "conformance OK" over the tests that did."""
    if returncode not in PYTEST_BROKEN_RUN:
        return summary
    counts = summary.split(": ", 1)[-1]
    return f"conformance FAILED: pytest exited with status {returncode} ({PYTEST_BROKEN_RUN[returncode]}); {counts}"


def _earlier_results(path: str | None, results_json: Path) -> list[dict[str, Any]] | None:
    """The earlier run named by ``--compare``, read before this run overwrites its own report (the
    two may be the same directory: comparing with the previous run in place)."""
    if path is None:
        return None
    try:
        return load_results(Path(path))
    except (OSError, ValueError, KeyError) as unreadable:
        raise CommandError(f"--compare {path}: {unreadable}") from unreadable
