"""``refka broker``: run the reference broker in the foreground.

    refka broker --listen 127.0.0.1:9092 --data-dir DIR [--node-id 1] [--set key=value ...]

Logs readable lines to stderr.  SIGTERM or SIGINT shuts down cleanly: connections closed, every
log flushed and closed, checkpoints and the clean-shutdown marker written, so the next start
skips recovery.  Kafka's config keys and defaults apply (``--set num.partitions=3``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from ..cli import CommandError, parse_assignments
from .configs import BrokerConfig, ConfigError
from .core import Broker
from .server import serve, wall_clock_ms


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", default="127.0.0.1:9092", metavar="HOST:PORT",
                        help="address to listen on (default 127.0.0.1:9092)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="log directory (created if missing); default: log.dirs of --config")
    parser.add_argument("--config", type=Path, default=None, metavar="FILE",
                        help="a Kafka server.properties; with process.roles set the node runs in KRaft mode")
    parser.add_argument("--node-id", type=int, default=1, help="node.id (default 1)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a Kafka broker config, e.g. --set num.partitions=3 (repeatable)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def parse_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise CommandError(f"--listen expects HOST:PORT, got {value!r}")
    return host, int(port)


def parse_settings(pairs: list[str], node_id: int) -> dict[str, str]:
    return {"node.id": str(node_id), **parse_assignments(pairs, "--set")}


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.config is not None:
        from ..node.main import run_from_properties

        return run_from_properties(args.config, parse_assignments(args.set, "--set"), args.data_dir)
    if args.data_dir is None:
        raise CommandError("--data-dir is required (or --config with log.dirs)")
    host, port = parse_listen(args.listen)
    try:
        config = BrokerConfig(parse_settings(args.set, args.node_id))
    except ConfigError as error:
        raise CommandError(str(error)) from error
    try:
        broker = Broker(config, args.data_dir, wall_clock_ms())
    except OSError as error:
        raise CommandError(f"cannot use data dir {args.data_dir}: {error}") from error
    asyncio.run(_serve_until_signal(broker, host, port))
    return 0


async def _serve_until_signal(broker: Broker, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await serve(broker, host, port, stop)
    except OSError as error:
        raise CommandError(f"cannot listen on {host}:{port}: {error}") from error
    logging.getLogger("refka.broker").info("clean shutdown complete")
