"""The broker's network shell: asyncio sockets around the sans-IO :class:`~reference.broker.core.Broker`.

Theory of operation
-------------------
Everything Kafka-specific happens in the core; this module only moves bytes and time:

1. Framing.  A request is ``INT32 size`` + payload.  A size below 0 or above
   ``socket.request.max.bytes`` (default 100 MiB) closes the connection before anything is read,
   as Kafka's ``NetworkReceive`` does, so one client cannot make the broker allocate a huge buffer.
2. Order.  Requests on one connection are handled one at a time and answered in order.  Kafka does
   the same by muting a channel while its request is in flight.  A long-polling Fetch therefore
   delays only the requests behind it on its own connection; other connections carry on.
3. Replies.  The core returns a response body, a :class:`~reference.broker.pending.Pending` that
   completes later, or ``NO_RESPONSE`` (a Produce with ``acks=0``, which Kafka never answers).
4. Errors.  The core raises :class:`~reference.broker.core.CloseConnection` where Kafka closes the
   connection (a frame it cannot parse, an unknown API key, an unsupported version of anything but
   ApiVersions).  Only that connection is closed.  A bug while handling one request is logged and
   closes that connection only: the broker never crashes for one bad client.
5. Time.  A single timer task asks the core for its next deadline and calls ``poll(now_ms)`` then,
   which expires delayed fetches, session timeouts and rebalance timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time

from .core import NO_RESPONSE, Broker, CloseConnection
from .pending import Pending

log = logging.getLogger("refka.broker.server")

_SIZE = struct.Struct(">i")


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


class BrokerServer:
    """Serves one :class:`Broker` on a TCP listener until :meth:`stop`."""

    def __init__(self, broker: Broker, host: str = "127.0.0.1", port: int = 9092) -> None:
        self.broker = broker
        self.host = host
        self.port = port
        self._server: asyncio.AbstractServer | None = None
        self._timer_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def max_request_bytes(self) -> int:
        return self.broker.config.get_int("socket.request.max.bytes")

    async def start(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve_connection, self.host, self.port)
        sockname = self._server.sockets[0].getsockname()
        self.host, self.port = sockname[0], sockname[1]
        self.broker.set_listener(self.host, self.port)
        self._timer_task = asyncio.create_task(self._run_timer())
        log.info("listening on %s:%d", self.host, self.port)
        return self.host, self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._timer_task is not None:
            self._timer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer_task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        self._server = None

    # -- time ---------------------------------------------------------------------------------------

    async def _run_timer(self) -> None:
        while True:
            deadline = self.broker.next_deadline()
            timeout = None if deadline is None else max(0.0, (deadline - wall_clock_ms()) / 1000)
            self._wake.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 a cancel that lands while wait_for is
            # timing out comes back as TimeoutError, which would be swallowed here and keep the
            # clock running after stop() cancelled it.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0 if timeout is None else min(timeout, 1.0)):
                    await self._wake.wait()
            try:
                self.broker.poll(wall_clock_ms())
            except Exception:  # a bug in a timeout path must not stop the clock
                log.exception("error while expiring delayed operations")

    # -- connections --------------------------------------------------------------------------------

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = writer.get_extra_info("peername")
        try:
            await self._request_loop(reader, writer, peer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("closing connection from %s after an internal error", peer)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _request_loop(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: object
    ) -> None:
        while True:
            (size,) = _SIZE.unpack(await reader.readexactly(4))
            if size < 0 or size > self.max_request_bytes:
                log.warning("closing %s: request of %d bytes (socket.request.max.bytes=%d)",
                            peer, size, self.max_request_bytes)
                return
            payload = await reader.readexactly(size)
            try:
                reply = self.broker.handle_frame(payload, wall_clock_ms())
            except CloseConnection as reason:
                log.info("closing %s: %s", peer, reason)
                return
            self._wake.set()
            if reply is NO_RESPONSE:
                continue
            if isinstance(reply, Pending):
                reply = await self._wait(reply)
            if isinstance(reply, CloseConnection):
                log.info("closing %s: %s", peer, reply)
                return
            writer.write(reply)
            await writer.drain()

    async def _wait(self, pending: Pending) -> bytes | CloseConnection:
        future: asyncio.Future[bytes | CloseConnection] = asyncio.get_running_loop().create_future()

        def resolve(result: bytes | CloseConnection) -> None:
            if not future.done():
                future.set_result(result)

        pending.on_done(resolve)
        self._wake.set()
        return await future


async def serve(broker: Broker, host: str, port: int, stop: asyncio.Event) -> None:
    """Run ``broker`` on ``host:port`` until ``stop`` is set, then shut down cleanly."""
    server = BrokerServer(broker, host, port)
    await server.start()
    try:
        await stop.wait()
    finally:
        await server.stop()
        broker.shutdown()
