"""``refka storage format``: prepare a node's log directory, as ``kafka-storage format`` does.

    refka storage format --cluster-id ID --config server.properties [--ignore-formatted]

A KRaft node refuses to start on an unformatted directory: ``meta.properties`` names the cluster
the directory belongs to (every node of a cluster is formatted with the same id, so a node can
never join the wrong cluster), the node id, and the directory's own id (KIP-858), which the broker
registers with the controller.  ``refka storage random-uuid`` prints a fresh cluster id.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli import CommandError
from ..protocol.primitives import random_uuid_string
from .config import NodeConfigError, read_properties
from .node import META_PROPERTIES, format_log_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fmt = actions.add_parser("format", help="write meta.properties into every log directory of a node")
    fmt.add_argument("--cluster-id", required=True, help="the cluster id (refka storage random-uuid makes one)")
    fmt.add_argument("--config", required=True, type=Path, help="the node's server.properties")
    fmt.add_argument("--ignore-formatted", action="store_true", help="leave an already formatted directory alone")
    actions.add_parser("random-uuid", help="print a new cluster id")


def run(args: argparse.Namespace) -> int:
    if args.action == "random-uuid":
        print(random_uuid_string())
        return 0
    try:
        settings = read_properties(args.config)
    except (OSError, NodeConfigError) as error:
        raise CommandError(f"cannot read {args.config}: {error}") from error
    log_dirs = [Path(entry) for entry in (settings.get("log.dirs") or settings.get("log.dir") or "").split(",") if entry]
    if "metadata.log.dir" in settings:
        log_dirs.insert(0, Path(settings["metadata.log.dir"]))
    if not log_dirs:
        raise CommandError(f"{args.config} sets neither log.dirs nor log.dir")
    node_id = int(settings.get("node.id", "-1"))
    for log_dir in log_dirs:
        if (log_dir / META_PROPERTIES).exists():
            if args.ignore_formatted:
                continue
            raise CommandError(f"{log_dir} is already formatted (use --ignore-formatted to skip it)")
        format_log_dir(log_dir, args.cluster_id, node_id)
        print(f"formatted {log_dir}")
    return 0
