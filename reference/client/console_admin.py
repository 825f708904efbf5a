"""What ``refka topics``, ``refka groups`` and ``refka configs`` share: connecting and failing.

The three tools take Kafka's own connection flags -- ``--bootstrap-server HOST:PORT[,...]`` and
``--command-config FILE`` (admin client properties, one ``key=value`` a line, ``#`` comments) --
and fail the way ``refka produce`` does: a usage error is a :class:`~reference.cli.CommandError`
(one line, exit 2); a failure Kafka names (TOPIC_ALREADY_EXISTS, NON_EMPTY_GROUP, a broker that
cannot be reached within ``default.api.timeout.ms``) is one line naming Kafka's error, exit 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from ..cli import CommandError
from ..errors import KafkaError
from .admin import Admin
from .exceptions import ConfigException

# A console tool should not hang for Java's 60 s when nothing answers.
CONSOLE_API_TIMEOUT_MS = "15000"


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap-server", required=True, metavar="HOST:PORT[,HOST:PORT]",
                        help="the broker(s) to connect to")
    parser.add_argument("--command-config", metavar="FILE",
                        help="admin client properties (default.api.timeout.ms, request.timeout.ms, ...)")


def read_properties(path: str) -> dict[str, str]:
    """A Java-style properties file (``key=value`` or ``key: value``; ``#``/``!`` comments)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as error:
        raise CommandError(f"cannot read --command-config {path}: {error.strerror}") from error
    properties = {}
    for line in lines:
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        cut = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
        if cut <= 0:
            raise CommandError(f"--command-config {path}: expected key=value, got {line!r}")
        properties[line[:cut].strip()] = line[cut + 1:].strip()
    return properties


def open_admin(args: argparse.Namespace, client_id: str) -> Admin:
    properties = {"bootstrap.servers": args.bootstrap_server, "client.id": client_id,
                  "default.api.timeout.ms": CONSOLE_API_TIMEOUT_MS}
    if args.command_config:
        properties.update(read_properties(args.command_config))
    try:
        return Admin(properties)
    except ConfigException as error:
        raise CommandError(str(error)) from error


def run_with_admin(args: argparse.Namespace, tool: str, work: Callable[[Admin], int]) -> int:
    """Open an admin client, run ``work`` with it, close it; a KafkaError becomes one line, exit 1."""
    admin = open_admin(args, f"refka-{tool}")
    try:
        return work(admin)
    except KafkaError as error:
        print(f"refka {tool}: {error}", file=sys.stderr)
        return 1
    finally:
        admin.close()


def split_config_list(text: str) -> list[str]:
    """``a=1,b=[x,y],c=2`` -> ``["a=1", "b=[x,y]", "c=2"]``: commas inside brackets stay (Kafka's
    syntax for list values in ``--add-config``)."""
    items, depth, current = [], 0, ""
    for char in text:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    return [item.strip() for item in items if item.strip()]


def table(rows: list[list[str]], widths: list[int]) -> str:
    """Left-aligned columns, each at least ``widths[i]`` wide and one space apart (the last one is
    not padded), as Kafka's tools print them."""
    sizes = [max([w] + [len(row[i]) for row in rows]) for i, w in enumerate(widths)]
    lines = []
    for row in rows:
        cells = [cell.ljust(sizes[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        lines.append(" ".join(cells))
    return "\n".join(lines)
