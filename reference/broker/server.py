"""The broker's network shell: asyncio sockets around the sans-IO :class:`~reference.broker.core.Broker`.

Theory of operation
-------------------
Everything Kafka-specific happens in the core; this module only moves bytes and time:

1. Framing.  A request is ``INT32 size`` + payload, received by
   :class:`~reference.broker.connection.FrameConnection` with ``recv_into`` straight into the
   ``bytearray`` the core decodes (and a produced batch is validated, given its offsets and
   appended from), with no copy on the way.  A size below 0 or above ``socket.request.max.bytes``
   (default 100 MiB) closes the connection before anything is read, as Kafka's ``NetworkReceive``
   does, and a frame's buffer grows only as its bytes arrive, so one client cannot make the broker
   allocate a huge buffer.
2. Order.  Requests on one connection are handled one at a time and answered in order.  Kafka does
   the same by muting a channel while its request is in flight.  A long-polling Fetch therefore
   delays only the requests behind it on its own connection; other connections carry on, and so
   do they while a client that stops reading leaves its answers unsent (writes wait per
   connection, for its socket to drain).
3. Replies.  The core returns a response body, a :class:`~reference.broker.pending.Pending` that
   completes later, or ``NO_RESPONSE`` (a Produce with ``acks=0``, which Kafka never answers).
4. Errors.  The core raises :class:`~reference.broker.core.CloseConnection` where Kafka closes the
   connection (a frame it cannot parse, an unknown API key, an unsupported version of anything but
   ApiVersions).  Only that connection is closed.  A bug while handling one request is logged and
   closes that connection only: the broker never crashes for one bad client.
5. Time.  A single timer task asks the core for its next deadline and calls ``poll(now_ms)`` then,
   which expires delayed fetches, session timeouts and rebalance timeouts.

Limits (Kafka's ``SocketServer`` / ``ConnectionQuotas``; behaviour checked against Apache Kafka 4.3.1)
---------------------------------------------------------------------------------------------------
6. ``max.connections``.  While the broker holds that many connections the acceptor stops
   accepting: new connections wait in the kernel's listen backlog, unanswered, and the first of
   them is accepted when a connection closes.  (Kafka 4.3.1 with ``max.connections=3``: a fourth
   client's ApiVersions gets no answer until one of the three disconnects.)
7. ``max.connections.per.ip``.  A connection from an address that already holds that many is
   accepted and closed at once, as Kafka's ``TooManyConnectionsException`` path does (the client
   sees its connection reset).  Both limits are read at each accept, so a dynamic change applies
   to the next connection.
8. In flight and queued.  Kafka mutes a channel while its request is in flight, so a connection
   has at most one request being handled; here a connection reads its next request only after
   answering the previous one, so requests in flight are at most one per connection, and the
   requests held in memory at most ``max.connections``, each at most ``socket.request.max.bytes``.
   ``queued.max.requests`` bounds Kafka's hand-off queue between network and request threads;
   the reference broker handles a request on the thread that read it and has no such queue.
9. Slow senders.  A connection on which no byte arrives for ``connections.max.idle.ms`` (Kafka's
   idle-connection reaper, default 10 minutes) is closed, whether it is between requests or in
   the middle of one, so a client that opens connections and trickles partial frames holds them
   no longer than that, and never more than ``max.connections.per.ip`` of them per address.
10. Running out of descriptors.  An ``accept`` that fails for want of a resource (EMFILE, ENFILE,
    ENOBUFS, ENOMEM) does not spin: the acceptor waits, from 10 ms doubling to 1 s, or until a
    connection closes and frees a descriptor, and tries again.  It logs the first failure once,
    then at most one summary line per ``ACCEPT_FAILURE_LOG_INTERVAL_S`` with the count, and a line
    when accepting works again.  Established connections keep being served meanwhile.
11. Shutdown in every state.  SIGTERM reaches the loop through its wakeup pipe, which exists before
    the descriptors run out; :meth:`BrokerServer.stop` closes the listener, cancels the acceptor
    (also while it backs off or waits for a connection slot) and every connection, and *waits*
    for their sockets to be closed, so the descriptors are free again when the core then writes
    its checkpoints and clean-shutdown markers.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import time
from collections import Counter
from collections.abc import Callable

from .connection import FrameConnection, RequestTooLarge
from .core import NO_RESPONSE, Broker, CloseConnection
from .pending import Pending

log = logging.getLogger("refka.broker.server")

# accept() failures that mean "out of a resource, try again later" rather than a broken listener.
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
ACCEPT_BACKOFF_MIN_S = 0.01
ACCEPT_BACKOFF_MAX_S = 1.0
ACCEPT_FAILURE_LOG_INTERVAL_S = 10.0
LISTEN_BACKLOG = 128


class RateLimitedLog:
    """Log a repeating failure once, then one summary per interval, then its recovery.

    ``clock`` is injectable (seconds, monotonic) so the rule is testable without waiting."""

    def __init__(self, logger: logging.Logger, what: str, interval_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.what = what
        self.interval_s = interval_s
        self.clock = clock
        self.failures = 0  # since the last line written
        self.failing = False
        self._last_line_at = 0.0

    def failure(self, error: BaseException) -> None:
        now = self.clock()
        self.failures += 1
        if not self.failing:
            self.failing = True
            self._last_line_at = now
            self.logger.error("%s: %s; backing off (logged once per %.0f s while it lasts)",
                              self.what, error, self.interval_s)
            self.failures = 0
        elif now - self._last_line_at >= self.interval_s:
            self.logger.error("%s: %d failures in the last %.0f s, latest: %s",
                              self.what, self.failures, now - self._last_line_at, error)
            self._last_line_at = now
            self.failures = 0

    def recovered(self) -> None:
        if self.failing:
            self.logger.warning("%s: working again (%d failures since the last report)", self.what, self.failures)
            self.failing = False
            self.failures = 0


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


class BrokerServer:
    """Serves one :class:`Broker` on a TCP listener until :meth:`stop`."""

    def __init__(self, broker: Broker, host: str = "127.0.0.1", port: int = 9092) -> None:
        self.broker = broker
        self.host = host
        self.port = port
        self._listener: socket.socket | None = None
        self._acceptor_task: asyncio.Task[None] | None = None
        self._timer_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._connections: dict[asyncio.Task[None], str] = {}  # connection task -> peer address
        self._connections_per_ip: Counter[str] = Counter()
        self._connection_closed = asyncio.Event()  # a slot and a descriptor were freed
        self._accept_failures = RateLimitedLog(log, "cannot accept connections", ACCEPT_FAILURE_LOG_INTERVAL_S)
        self._refusals = RateLimitedLog(log, "refusing connections over max.connections.per.ip",
                                        ACCEPT_FAILURE_LOG_INTERVAL_S)
        self.accepting_paused = False  # True while max.connections holds the acceptor back

    @property
    def max_request_bytes(self) -> int:
        return self.broker.config.get_int("socket.request.max.bytes")

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def start(self) -> tuple[str, int]:
        listener = socket.create_server((self.host, self.port), backlog=LISTEN_BACKLOG)
        listener.setblocking(False)
        self._listener = listener
        sockname = listener.getsockname()
        self.host, self.port = sockname[0], sockname[1]
        self.broker.set_listener(self.host, self.port)
        self._acceptor_task = asyncio.create_task(self._run_acceptor())
        self._timer_task = asyncio.create_task(self._run_timer())
        log.info("listening on %s:%d", self.host, self.port)
        return self.host, self.port

    async def stop(self) -> None:
        """Stop accepting, close every connection and wait until their sockets are closed."""
        tasks: list[asyncio.Task[None]] = [t for t in (self._acceptor_task, self._timer_task) if t is not None]
        tasks += list(self._connections)
        for task in tasks:
            task.cancel()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        # the connection tasks close their writers in ``finally``; wait for them (bounded)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await asyncio.gather(*tasks, return_exceptions=True)
        self._acceptor_task = self._timer_task = None

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

    # -- accepting ----------------------------------------------------------------------------------

    async def _run_acceptor(self) -> None:
        assert self._listener is not None
        loop = asyncio.get_running_loop()
        backoff = ACCEPT_BACKOFF_MIN_S
        while True:
            await self._wait_for_connection_slot()
            try:
                client, address = await loop.sock_accept(self._listener)
            except OSError as error:
                if error.errno not in RESOURCE_ERRNOS:
                    raise
                self._accept_failures.failure(error)
                await self._wait_for_closed_connection(backoff)
                backoff = min(backoff * 2, ACCEPT_BACKOFF_MAX_S)
                continue
            backoff = ACCEPT_BACKOFF_MIN_S
            self._accept_failures.recovered()
            ip = str(address[0])
            if self._connections_per_ip[ip] >= self.broker.config.get_int("max.connections.per.ip"):
                self._refusals.failure(ConnectionRefusedError(f"{ip} holds {self._connections_per_ip[ip]}"))
                client.close()
                continue
            self._refusals.recovered()
            task = asyncio.create_task(self._serve_socket(client, address))
            self._connections[task] = ip
            self._connections_per_ip[ip] += 1
            task.add_done_callback(self._forget_connection)

    async def _wait_for_connection_slot(self) -> None:
        """``max.connections``: hold the acceptor (clients wait in the listen backlog) while full."""
        while len(self._connections) >= self.broker.config.get_int("max.connections"):
            self.accepting_paused = True
            await self._wait_for_closed_connection(ACCEPT_BACKOFF_MAX_S)
        self.accepting_paused = False

    async def _wait_for_closed_connection(self, timeout_s: float) -> None:
        self._connection_closed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._connection_closed.wait()

    def _forget_connection(self, task: asyncio.Task[None]) -> None:
        ip = self._connections.pop(task, None)
        if ip is not None:
            self._connections_per_ip[ip] -= 1
            if self._connections_per_ip[ip] <= 0:
                del self._connections_per_ip[ip]
        self._connection_closed.set()

    # -- connections --------------------------------------------------------------------------------

    async def _serve_socket(self, client: socket.socket, address: object) -> None:
        loop = asyncio.get_running_loop()
        limit = self.max_request_bytes  # a static config (Kafka reads it at start-up): once per connection
        try:
            _, connection = await loop.connect_accepted_socket(lambda: FrameConnection(lambda: limit), sock=client)
        except OSError as error:  # e.g. out of memory for the transport
            log.warning("dropping connection from %s: %s", address, error)
            client.close()
            return
        await self._serve_connection(connection)

    async def _serve_connection(self, connection: FrameConnection) -> None:
        peer = connection.peer
        try:
            await self._request_loop(connection, peer)
        except ConnectionError:
            pass  # the client went away
        except RequestTooLarge as refused:
            log.warning("closing %s: %s", peer, refused)
        except TimeoutError:
            log.info("closing %s: idle for connections.max.idle.ms", peer)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("closing connection from %s after an internal error", peer)
        finally:
            with contextlib.suppress(Exception):
                await connection.close()

    async def _request_loop(self, connection: FrameConnection, peer: object) -> None:
        idle_s = self.broker.config.get_long("connections.max.idle.ms") / 1000  # static, as in Kafka
        while True:
            # The frame is a bytearray the socket filled (reference.broker.connection): the core
            # decodes it in place, and a produced batch gets its offsets inside it.
            payload = await connection.next_frame(idle_s)
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
            await connection.send(reply)

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
