"""``refka cluster``: a replicated reference cluster of N combined KRaft nodes on 127.0.0.1.

    refka cluster start --nodes 3 [--base-port P] [--data-dir DIR] [--set key=value ...]
    refka cluster stop --data-dir DIR
    refka cluster kill NODE --data-dir DIR       # SIGKILL, as a crash
    refka cluster restart NODE --data-dir DIR    # start it again, wait until it answers

The same shape as ``refka kafka start`` (``reference.node.local_cluster``): node *i* serves clients
on ``base_port + i`` and its controller listener on ``base_port + N + i``; every node is a combined
``process.roles=broker,controller`` node and a voter; ``<data-dir>/cluster.json`` records pids and
ports, so the conformance suite's node-control tests drive this cluster exactly as they drive
Apache Kafka.  Each node is ``refka broker --config <data-dir>/node-<i>/server.properties``, a
plain Kafka properties file written from the same combined-node properties as the Kafka peer's,
plus ``--set`` overrides.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import CommandError, parse_assignments
from .local_cluster import LocalCluster, NodeState
from .node import format_log_dir

DEFAULT_BASE_PORT = 29092
DEFAULT_DATA_DIR = "/tmp/refka-cluster"


class ReferenceCluster(LocalCluster):
    """N combined reference nodes (``refka broker --config ...`` processes)."""

    KIND = "reference"
    DISPLAY = "reference"
    PROCESS_MARKER = b"\0reference\0broker\0"  # the node command line: python -m reference broker ...

    def __init__(self, nodes: int = 1, base_port: int = DEFAULT_BASE_PORT, data_dir: str | Path | None = None,
                 config: dict[str, str] | None = None) -> None:
        super().__init__(nodes, base_port, data_dir or f"{DEFAULT_DATA_DIR}-{nodes}", config)

    def _format(self, node: NodeState, cluster_id: str) -> None:
        format_log_dir(self.log_dir(node.node_id), cluster_id, node.node_id)

    def _command(self, node: NodeState) -> list[str]:
        return [sys.executable, "-m", "reference", "broker", "--config", str(self.config_path(node.node_id))]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    start = actions.add_parser("start", help="start N combined KRaft reference nodes on 127.0.0.1")
    start.add_argument("--nodes", type=int, default=3, help="number of broker+controller nodes (default 3)")
    start.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT,
                       help="client port of node 0; node i listens on BASE+i, its controller on BASE+N+i")
    start.add_argument("--data-dir", help=f"where logs and state live (default {DEFAULT_DATA_DIR}-N)")
    start.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="a Kafka config for every node (repeatable)")
    for name, text in (("stop", "stop every node (SIGTERM, then SIGKILL)"),
                       ("kill", "SIGKILL one node"), ("restart", "start one node again and wait for it")):
        action = actions.add_parser(name, help=text)
        if name != "stop":
            action.add_argument("node", type=int, help="node id")
        action.add_argument("--data-dir", required=True, help="the cluster's data directory")


def run(args: argparse.Namespace) -> int:
    if args.action == "start":
        cluster = ReferenceCluster(nodes=args.nodes, base_port=args.base_port, data_dir=args.data_dir,
                                   config=parse_assignments(args.set, "--set"))
        print(cluster.start())
        return 0
    cluster = ReferenceCluster.attach(args.data_dir)
    if args.action == "stop":
        cluster.stop()
        print(f"stopped the reference cluster in {args.data_dir}")
    elif args.node not in {node.node_id for node in cluster.nodes}:
        raise CommandError(f"no node {args.node} in the cluster in {args.data_dir}")
    elif args.action == "kill":
        cluster.kill(args.node)
    else:
        cluster.restart(args.node)
    return 0
