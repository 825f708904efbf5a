"""The network shell of a KRaft node: one asyncio server per listener, two outbound transports, a clock.

Theory of operation
-------------------
Everything Kafka-specific is in the sans-IO :class:`~reference.node.node.KRaftNode`; this module
moves bytes and time, reusing the broker's single-listener shell
(:class:`~reference.broker.server.BrokerServer`) for each listener:

1. **Listeners.**  Each entry of ``listeners`` gets a server.  A controller listener
   (``controller.listener.names``) answers with the node's :class:`~reference.node.node.ControllerApis`,
   any other with the broker.  Port 0 binds a free port; the bound address is what the broker
   registers, unless ``advertised.listeners`` names another.
2. **Outbound.**  Three :class:`~reference.client.transport.OutboxTransport`, one per plane of
   :mod:`reference.node.node`: the quorum and controller planes resolve a node id to its voter
   address (``controller.quorum.voters``); the broker plane to the endpoint a broker registered
   for the inter-broker listener (from the metadata image).
3. **Time.**  One timer task calls ``node.poll(now_ms)`` at the node's next deadline, and whenever
   a request was handled or an answer delivered (both can make a deadline earlier).
4. **Shutdown** (SIGTERM): a broker first asks the controller for a controlled shutdown, so its
   leaderships move away (waiting at most ``CONTROLLED_SHUTDOWN_TIMEOUT_S``); a leading voter
   resigns (EndQuorumEpoch) so the others elect at once; then the listeners close and every log is
   flushed and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ..broker.core import FrameServer
from ..broker.server import BrokerServer, wall_clock_ms
from ..client.transport import OutboxTransport
from .broker_lifecycle import BrokerState
from .node import ControllerApis, KRaftNode

log = logging.getLogger("refka.node.server")

CONTROLLED_SHUTDOWN_TIMEOUT_S = 10.0
TIMER_MAX_SLEEP_S = 1.0


class _ListenerCore:
    """What :class:`BrokerServer` needs from the core behind one listener; the node's clock is
    driven by :class:`NodeServer` itself, so this core's own poll does nothing."""

    def __init__(self, frames: FrameServer, node: KRaftNode, wake: asyncio.Event) -> None:
        self.frames = frames
        self.config = node.config
        self._wake = wake
        self.host, self.port = "", 0

    def handle_frame(self, payload: bytes | bytearray | memoryview, now_ms: int) -> Any:
        try:
            return self.frames.handle_frame(payload, now_ms)
        finally:
            self._wake.set()

    def set_listener(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    def poll(self, now_ms: int) -> None:
        """The node's timer task polls the node."""

    def next_deadline(self) -> int | None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.frames, name)


class NodeServer:
    def __init__(self, node: KRaftNode) -> None:
        self.node = node
        self._wake = asyncio.Event()
        self._servers: list[tuple[str, BrokerServer, _ListenerCore]] = []
        self._transports: list[OutboxTransport] = []
        self._timer: asyncio.Task[None] | None = None

    @property
    def addresses(self) -> dict[str, tuple[str, int]]:
        """Listener name -> bound (host, port)."""
        return {name: (server.host, server.port) for name, server, _ in self._servers}

    async def start(self) -> None:
        node = self.node
        controller_names = set(node.node.controller_listener_names)
        for listener in node.node.listeners:
            if listener.name in controller_names:
                if not node.node.is_controller:
                    continue
                frames: FrameServer = ControllerApis(node)
            else:
                if node.broker is None:
                    continue
                frames = node.broker
            core = _ListenerCore(frames, node, self._wake)
            server = BrokerServer(core, listener.host or "0.0.0.0", listener.port)  # type: ignore[arg-type]
            await server.start()
            self._servers.append((listener.name, server, core))
            log.info("node %d: listener %s on %s:%d", node.node_id, listener.name, server.host, server.port)
        self._transports.append(OutboxTransport(node.raft_outbox, self._voter_address,
                                                f"refka-raft-{node.node_id}", wall_clock_ms, self._wake.set))
        self._transports.append(OutboxTransport(node.controller_outbox, self._voter_address,
                                                f"refka-controller-{node.node_id}", wall_clock_ms, self._wake.set))
        if node.broker is not None:
            self._advertise_broker()
            self._transports.append(OutboxTransport(node.broker.outbox, self._broker_address,
                                                    f"refka-broker-{node.node_id}", wall_clock_ms, self._wake.set))
            self._transports.append(OutboxTransport(node.broker.txn_outbox, self._broker_address,
                                                    f"refka-txn-{node.node_id}", wall_clock_ms, self._wake.set))
        for transport in self._transports:
            await transport.start()
        self._timer = asyncio.create_task(self._run_timer(), name=f"refka-node-{node.node_id}-timer")

    def _advertise_broker(self) -> None:
        """The broker's own address (what its Metadata says) and the listeners it registers."""
        node = self.node
        assert node.broker is not None
        advertised: list[tuple[str, str, int]] = []
        for name, server, _core in self._servers:
            if name in node.node.controller_listener_names:
                continue
            host, port = node.node.advertised.get(name, (server.host, server.port))
            if not host or host == "0.0.0.0":
                host = "127.0.0.1"
            advertised.append((name, host, port or server.port))
        inter_broker = node.node.inter_broker_listener_name or advertised[0][0]
        for name, host, port in advertised:
            if name == inter_broker:
                node.broker.host, node.broker.port = host, port
        node.start_lifecycle(advertised, wall_clock_ms())

    def _voter_address(self, node_id: int) -> tuple[str, int] | None:
        voter = self.node.node.voter(node_id)
        return (voter.host, voter.port) if voter is not None else None

    def _broker_address(self, node_id: int) -> tuple[str, int] | None:
        assert self.node.broker is not None
        endpoint = self.node.broker.cluster.broker(node_id)
        if endpoint is None:  # fenced brokers are left out of the view, but their followers still fetch
            registration = self.node.image.brokers.get(node_id)
            listener = self.node.node.inter_broker_listener_name
            for entry in registration.listeners if registration is not None else []:
                if entry.name == listener:
                    return entry.host, entry.port
            return None
        return endpoint.host, endpoint.port

    async def _run_timer(self) -> None:
        while True:
            now = wall_clock_ms()
            try:
                self.node.poll(now)
            except Exception:  # a bug in a timeout path must not stop the clock
                log.exception("node %d: error while polling", self.node.node_id)
            deadline = self.node.next_deadline()
            timeout = TIMER_MAX_SLEEP_S if deadline is None else max(0.0, min(TIMER_MAX_SLEEP_S,
                                                                           (deadline - wall_clock_ms()) / 1000))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def controlled_shutdown(self) -> None:
        """Ask the controller to move this broker's leaderships away, then resign the quorum."""
        node = self.node
        if node.lifecycle is not None and node.lifecycle.state in (BrokerState.RUNNING, BrokerState.RECOVERY):
            node.lifecycle.begin_controlled_shutdown(wall_clock_ms())
            self._wake.set()
            deadline = asyncio.get_running_loop().time() + CONTROLLED_SHUTDOWN_TIMEOUT_S
            while node.broker_state is not BrokerState.SHUTTING_DOWN:
                if asyncio.get_running_loop().time() > deadline:
                    log.warning("node %d: controlled shutdown not granted in time; stopping anyway", node.node_id)
                    break
                await asyncio.sleep(0.05)
        if node.raft.leader_id == node.node_id:
            with contextlib.suppress(Exception):
                node.raft.resign(wall_clock_ms())
                self._wake.set()
                await asyncio.sleep(0.2)  # let EndQuorumEpoch leave

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        for _name, server, _core in self._servers:
            await server.stop()
        for transport in self._transports:
            await transport.stop()
        self.node.shutdown()


async def serve_node(node: KRaftNode, stop: asyncio.Event) -> None:
    """Run ``node`` until ``stop`` is set, then shut down cleanly."""
    server = NodeServer(node)
    await server.start()
    try:
        await stop.wait()
        await server.controlled_shutdown()
    finally:
        await server.stop()
