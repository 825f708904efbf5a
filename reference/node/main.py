"""``refka broker --config server.properties``: run a node configured as Kafka configures one.

With ``process.roles`` set the node runs in KRaft mode (:mod:`reference.node.server`); without it,
as refka's single-node broker listening on the first listener.  ``--set KEY=VALUE`` overrides the
file, ``--data-dir`` overrides ``log.dirs``.  SIGTERM or SIGINT shuts down cleanly (controlled
shutdown first, in KRaft mode).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from ..broker.configs import ConfigError
from ..broker.server import wall_clock_ms
from ..cli import CommandError
from .config import NodeConfigError, node_config, read_properties

log = logging.getLogger("refka.node")


def run_from_properties(path: Path, overrides: dict[str, str], data_dir: Path | None) -> int:
    try:
        settings = read_properties(path)
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error}") from error
    except NodeConfigError as error:
        raise CommandError(str(error)) from error
    settings.update(overrides)
    if data_dir is not None:
        settings["log.dirs"] = str(data_dir)
    try:
        config = node_config(settings)
    except NodeConfigError as error:
        raise CommandError(str(error)) from error
    if not config.is_kraft:
        return _run_single_node(settings, config.listeners[0].host or "0.0.0.0", config.listeners[0].port)
    from .node import KRaftNode
    from .server import serve_node

    try:
        node = KRaftNode(settings, wall_clock_ms())
    except (NodeConfigError, ConfigError) as error:
        raise CommandError(str(error)) from error
    asyncio.run(_until_signal(lambda stop: serve_node(node, stop)))
    log.info("clean shutdown complete")
    return 0


def _run_single_node(settings: dict[str, str], host: str, port: int) -> int:
    from ..broker.configs import BrokerConfig
    from ..broker.core import Broker
    from ..broker.server import serve

    log_dirs = settings.get("log.dirs") or settings.get("log.dir") or "/tmp/kafka-logs"
    try:
        broker = Broker(BrokerConfig(settings), Path(log_dirs.split(",")[0]), wall_clock_ms())
    except ConfigError as error:
        raise CommandError(str(error)) from error
    asyncio.run(_until_signal(lambda stop: serve(broker, host, port, stop)))
    return 0


async def _until_signal(run: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await run(stop)
    except OSError as error:
        raise CommandError(f"cannot listen: {error}") from error
