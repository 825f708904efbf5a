"""The asyncio transport of an :class:`~reference.client.outbox.Outbox`: one connection per node.

Theory of operation
-------------------
A sans-IO core (the broker, a KRaft voter) puts :class:`~reference.client.outbox.OutboundRequest`
objects in its outbox and never waits.  :class:`OutboxTransport` is the thin asyncio shell that
sends them, the counterpart of Kafka's ``NetworkClient`` driven by an ``InterBrokerSendThread``.
All the protocol logic (framing, correlation ids, ApiVersions negotiation) is in
:class:`~reference.client.connection.KafkaConnection`; this module only moves bytes and time.

1. **Wake-up.**  The transport registers a listener on ``outbox.listeners``; each new request
   wakes a pump task that drains the outbox.  Listeners run on the event loop's thread (the core
   runs there too); the transport is not thread-safe.
2. **One connection per node, opened lazily.**  The first request to a node resolves its address
   (``resolve_address(node_id)``; ``None`` fails the request at once with
   :class:`UnknownNodeError`) and opens an asyncio stream.  Requests to a node go out in the order
   they were put in the outbox; those submitted while the connection negotiates are held by the
   connection, not reordered.
3. **Exactly one callback per request.**  The answer is delivered with ``request.complete(body,
   now_ms)``; a failure with ``request.fail(error, now_ms)``, where ``error`` is typed:

   * :class:`NodeDisconnectedError` (``NETWORK_EXCEPTION``, retriable) when the connection
     cannot be opened or closes, or the peer breaks the protocol; every request sent or waiting
     on that connection fails with it;
   * :class:`RequestTimedOutError` (``REQUEST_TIMED_OUT``, retriable) ``timeout_ms`` after the
     request was taken from the outbox.  As in Kafka's ``NetworkClient``, a timeout of a request
     on the wire also closes its connection (answers come in order, so a connection with a lost
     answer is no use), failing the others in flight with :class:`NodeDisconnectedError`;
   * :class:`UnsupportedVersionError` when the broker serves no usable version.

   ``OutboundRequest`` ignores a second ``complete``/``fail``, and a closed connection delivers
   nothing, so a late answer after a timeout is never handled twice.  Produce with ``acks=0``
   (never answered, by Kafka's rule) is completed with an empty ProduceResponse once written.
4. **Reconnect backoff** (Kafka's ``reconnect.backoff.ms`` = 50 and ``reconnect.backoff.max.ms``
   = 1000): after the n-th consecutive failure of a node's connection, the next attempt waits
   ``min(50 * 2**(n-1), 1000)`` ms from the failure.  A connection that completes negotiation
   resets the count.  Kafka adds +/-20% random jitter; refka leaves it out so that runs repeat.
   A connection attempt itself is bounded by ``socket.connection.setup.timeout.ms`` (10 s).
5. **Time.**  ``now_ms`` given to callbacks comes from ``clock_ms``; the core has no clock.  After
   every callback ``on_delivered`` is called so the server can re-arm its timer.
6. **Robustness.**  A bug in a callback is logged and does not stop the transport.

:func:`send_once` is the one-shot form for tools and tests: connect, negotiate, one request, close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import KafkaError
from ..protocol.apis import API_BY_KEY
from ..protocol.schema import Data
from .connection import PRODUCE_KEY, KafkaConnection, RequestFailed, Response, State
from .exceptions import (
    LocalProtocolError,
    NodeDisconnectedError,
    RemoteProtocolError,
    RequestTimedOutError,
    UnknownNodeError,
)
from .outbox import OutboundRequest, Outbox

log = logging.getLogger("refka.client.transport")

RECONNECT_BACKOFF_MS = 50  # reconnect.backoff.ms
RECONNECT_BACKOFF_MAX_MS = 1000  # reconnect.backoff.max.ms
CONNECTION_SETUP_TIMEOUT_MS = 10_000  # socket.connection.setup.timeout.ms
READ_CHUNK = 256 * 1024  # a fetched megabyte in four reads, not sixteen

AddressResolver = Callable[[int], tuple[str, int] | None]


def reconnect_backoff_ms(failures: int, initial_ms: int = RECONNECT_BACKOFF_MS,
                         max_ms: int = RECONNECT_BACKOFF_MAX_MS) -> int:
    """How long to wait before connecting again after ``failures`` consecutive failures (rule 4)."""
    if failures <= 0:
        return 0
    return int(min(initial_ms * 2 ** (failures - 1), max_ms))


def _expects_response(request: OutboundRequest) -> bool:
    """Kafka answers every request except Produce with ``acks=0``."""
    return not (request.api_key == PRODUCE_KEY and request.body.get("acks") == 0)


@dataclass(eq=False)
class _NodeChannel:
    """Everything the transport keeps about one destination node."""

    node_id: int
    waiting: deque[OutboundRequest] = field(default_factory=deque)  # no connection to hand them to yet
    sent: dict[int, OutboundRequest] = field(default_factory=dict)  # correlation id -> request
    # Produce with acks=0: done once its bytes are written (Java completes it on the completed
    # send), not while the connection still holds it during ApiVersions negotiation.
    unwritten: list[OutboundRequest] = field(default_factory=list)
    connection: KafkaConnection | None = None
    writer: asyncio.StreamWriter | None = None
    task: asyncio.Task[None] | None = None  # connects, then reads until the connection ends
    failures: int = 0  # consecutive connection failures
    retry_at_ms: int = 0  # no new connection attempt before this time


class OutboxTransport:
    """Sends an outbox's requests over asyncio streams (see the module's theory of operation)."""

    def __init__(
        self,
        outbox: Outbox,
        resolve_address: AddressResolver,
        client_id: str | None,
        clock_ms: Callable[[], int],
        on_delivered: Callable[[], None] | None = None,
        reconnect_backoff_ms: int = RECONNECT_BACKOFF_MS,
        reconnect_backoff_max_ms: int = RECONNECT_BACKOFF_MAX_MS,
        connection_setup_timeout_ms: int = CONNECTION_SETUP_TIMEOUT_MS,
    ) -> None:
        self.outbox = outbox
        self.resolve_address = resolve_address
        self.client_id = client_id
        self.clock_ms = clock_ms
        self.on_delivered = on_delivered
        self.reconnect_backoff_ms = reconnect_backoff_ms
        self.reconnect_backoff_max_ms = reconnect_backoff_max_ms
        self.connection_setup_timeout_ms = connection_setup_timeout_ms
        self._channels: dict[int, _NodeChannel] = {}
        self._timers: dict[OutboundRequest, asyncio.TimerHandle] = {}
        self._wake = asyncio.Event()
        self._pump_task: asyncio.Task[None] | None = None
        self._running = False

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self._running = True
        self.outbox.listeners.append(self._wake.set)
        self._pump_task = asyncio.create_task(self._pump(), name="refka-outbox-pump")
        self._wake.set()  # requests put in before start

    async def stop(self) -> None:
        """Stop sending; requests already taken from the outbox fail with NodeDisconnectedError
        (those still in the outbox stay there)."""
        self._running = False
        with contextlib.suppress(ValueError):
            self.outbox.listeners.remove(self._wake.set)
        tasks = [t for t in [self._pump_task] + [c.task for c in self._channels.values()] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._pump_task = None
        for channel in self._channels.values():
            channel.task = None
            self._disconnect(channel, ConnectionError("the transport stopped"), backoff=False)
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def connection(self, node_id: int) -> KafkaConnection | None:
        """The current connection to ``node_id``, if any (for inspection and tests)."""
        channel = self._channels.get(node_id)
        return None if channel is None else channel.connection

    def reconnect_at_ms(self, node_id: int) -> int | None:
        """When the next connection attempt to ``node_id`` may start (after a failure's backoff)."""
        channel = self._channels.get(node_id)
        return None if channel is None or channel.failures == 0 else channel.retry_at_ms

    # -- taking requests from the outbox ------------------------------------------------------------

    async def _pump(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            for request in self.outbox.drain():
                try:
                    self._dispatch(request)
                except Exception:  # a bug here must not stop the transport
                    log.exception("dispatching a request to node %d", request.destination)

    def _dispatch(self, request: OutboundRequest) -> None:
        if self.resolve_address(request.destination) is None:
            self._fail(request, UnknownNodeError(request.destination))
            return
        self._timers[request] = asyncio.get_running_loop().call_later(
            request.timeout_ms / 1000, self._expire, request)
        channel = self._channels.setdefault(request.destination, _NodeChannel(request.destination))
        if channel.connection is not None:
            self._send(channel, request)
            self._flush(channel)
        else:
            channel.waiting.append(request)
            self._ensure_connecting(channel)

    def _ensure_connecting(self, channel: _NodeChannel) -> None:
        if channel.task is None and self._running:
            delay_ms = max(0, channel.retry_at_ms - self.clock_ms())
            channel.task = asyncio.create_task(self._run_connection(channel, delay_ms),
                                               name=f"refka-connection-{channel.node_id}")

    # -- one connection's life ----------------------------------------------------------------------

    async def _run_connection(self, channel: _NodeChannel, delay_ms: int) -> None:
        try:
            if delay_ms > 0:
                await asyncio.sleep(delay_ms / 1000)  # reconnect.backoff.ms
            if not channel.waiting:
                return  # everything timed out during the backoff
            reader = await self._connect(channel)
            if reader is not None:
                await self._read_until_closed(channel, reader)
        finally:
            if channel.task is asyncio.current_task():
                channel.task = None
                if channel.waiting:  # requests that came while this attempt was ending
                    self._ensure_connecting(channel)

    async def _connect(self, channel: _NodeChannel) -> asyncio.StreamReader | None:
        address = self.resolve_address(channel.node_id)
        try:
            if address is None:
                raise UnknownNodeError(channel.node_id)
            async with asyncio.timeout(self.connection_setup_timeout_ms / 1000):
                reader, writer = await asyncio.open_connection(*address)
        except (OSError, TimeoutError, UnknownNodeError) as error:
            log.info("connection to node %d at %s failed: %s", channel.node_id, address, error)
            self._disconnect(channel, error)
            return None
        channel.connection = KafkaConnection(self.client_id)
        channel.writer = writer
        waiting, channel.waiting = channel.waiting, deque()
        for request in waiting:
            self._send(channel, request)
        self._flush(channel)
        return reader

    async def _read_until_closed(self, channel: _NodeChannel, reader: asyncio.StreamReader) -> None:
        connection = channel.connection
        assert connection is not None
        try:
            while True:
                data = await reader.read(READ_CHUNK)
                if not data:
                    raise ConnectionError("closed by the peer")
                events = connection.receive_data(data)
                self._flush(channel)
                if connection.state is State.READY:
                    channel.failures = 0  # Kafka resets the backoff once a connection is ready
                self._deliver(channel, events)
        except RemoteProtocolError as error:
            log.warning("node %d broke the protocol: %s", channel.node_id, error)
            self._deliver(channel, error.responses)
            self._disconnect(channel, error)
        except Exception as error:  # OSError, ConnectionError, a failed negotiation (KafkaError)
            if channel.connection is connection:
                self._disconnect(channel, error)

    # -- sending and delivering ---------------------------------------------------------------------

    def _send(self, channel: _NodeChannel, request: OutboundRequest) -> None:
        connection = channel.connection
        assert connection is not None
        if request.done:
            return  # timed out before its connection was ready
        expects_response = _expects_response(request)
        try:
            correlation_id = connection.send(request.api_key, request.body, request.version, expects_response,
                                             max_version=request.max_version)
        except (KafkaError, LocalProtocolError) as error:  # UnsupportedVersionError, a body that does not encode
            self._fail(request, error)
            return
        if expects_response:
            channel.sent[correlation_id] = request
        else:
            channel.unwritten.append(request)

    def _flush(self, channel: _NodeChannel) -> None:
        if channel.connection is not None and channel.writer is not None:
            data = channel.connection.data_to_send()
            if data:
                channel.writer.write(data)
            if channel.unwritten and channel.connection.state is State.READY:  # nothing is held back
                written, channel.unwritten = channel.unwritten, []
                for request in written:
                    self._complete(request, API_BY_KEY[PRODUCE_KEY].response.make())

    def _deliver(self, channel: _NodeChannel, events: list[Response | RequestFailed]) -> None:
        for event in events:
            request = channel.sent.pop(event.correlation_id, None)
            if request is None:
                continue
            if isinstance(event, Response):
                self._complete(request, event.body)
            else:
                self._fail(request, event.error)

    def _complete(self, request: OutboundRequest, body: Data) -> None:
        self._cancel_timer(request)
        try:
            request.complete(body, self.clock_ms())
        except Exception:
            log.exception("response callback of %s to node %d", _name(request), request.destination)
        self._delivered()

    def _fail(self, request: OutboundRequest, error: Exception) -> None:
        self._cancel_timer(request)
        try:
            request.fail(error, self.clock_ms())
        except Exception:
            log.exception("failure callback of %s to node %d", _name(request), request.destination)
        self._delivered()

    def _delivered(self) -> None:
        if self.on_delivered is not None:
            try:
                self.on_delivered()
            except Exception:
                log.exception("on_delivered")

    def _cancel_timer(self, request: OutboundRequest) -> None:
        timer = self._timers.pop(request, None)
        if timer is not None:
            timer.cancel()

    # -- failures ----------------------------------------------------------------------------------

    def _expire(self, request: OutboundRequest) -> None:
        """``timeout_ms`` passed without an answer (request.timeout.ms)."""
        self._timers.pop(request, None)
        if request.done:
            return
        channel = self._channels[request.destination]
        on_the_wire = any(sent is request for sent in channel.sent.values())
        if request in channel.waiting:
            channel.waiting.remove(request)
        for correlation_id, sent in list(channel.sent.items()):
            if sent is request:
                del channel.sent[correlation_id]
        self._fail(request, RequestTimedOutError(
            f"{_name(request)} to node {request.destination} after {request.timeout_ms} ms"))
        if on_the_wire:  # Kafka disconnects: the answers behind the lost one would be out of order
            self._disconnect(channel, TimeoutError(f"{_name(request)} timed out"))

    def _disconnect(self, channel: _NodeChannel, cause: BaseException, backoff: bool = True) -> None:
        """Close the node's connection and fail everything sent or waiting on it."""
        if channel.connection is not None and channel.connection.state is not State.CLOSED:
            channel.connection.close()
        channel.connection = None
        if channel.writer is not None:
            channel.writer.close()
            channel.writer = None
        if channel.task is not None and channel.task is not asyncio.current_task():
            channel.task.cancel()
            channel.task = None
        if backoff:
            channel.failures += 1
            channel.retry_at_ms = self.clock_ms() + reconnect_backoff_ms(
                channel.failures, self.reconnect_backoff_ms, self.reconnect_backoff_max_ms)
        lost = list(channel.sent.values()) + channel.unwritten + list(channel.waiting)
        channel.sent.clear()
        channel.unwritten = []
        channel.waiting.clear()
        for request in lost:
            self._fail(request, _disconnection_error(channel.node_id, cause))


def _disconnection_error(node_id: int, cause: BaseException) -> Exception:
    """What a request lost with its connection fails with: the broker's own refusal when the
    negotiation failed (e.g. UNSUPPORTED_VERSION), else a retriable NodeDisconnectedError."""
    if isinstance(cause, KafkaError):
        return cause
    error = NodeDisconnectedError(node_id, str(cause) or type(cause).__name__)
    error.__cause__ = cause
    return error


def _name(request: OutboundRequest) -> str:
    api = API_BY_KEY.get(request.api_key)
    return api.name if api is not None else f"API {request.api_key}"


async def send_once(host: str, port: int, api_key: int, body: Data, version: int | None = None,
                    timeout_ms: int = 30_000, client_id: str | None = "refka") -> Data:
    """Connect, negotiate, send one request and return its response body.

    Raises :class:`NodeDisconnectedError` if the connection fails or closes first,
    :class:`RequestTimedOutError` after ``timeout_ms``, :class:`UnsupportedVersionError` when
    no version fits, :class:`RemoteProtocolError` for a broken answer.
    """
    connection = KafkaConnection(client_id)
    expects_response = not (api_key == PRODUCE_KEY and body.get("acks") == 0)
    correlation_id = connection.send(api_key, body, version, expects_response)
    try:
        async with asyncio.timeout(timeout_ms / 1000):
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError as error:
                raise NodeDisconnectedError(None, f"{host}:{port}: {error}") from error
            try:
                return await _exchange(connection, correlation_id, expects_response, reader, writer)
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
    except TimeoutError as error:
        raise RequestTimedOutError(f"no answer from {host}:{port} within {timeout_ms} ms") from error


async def _exchange(connection: KafkaConnection, correlation_id: int, expects_response: bool,
                    reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Data:
    writer.write(connection.data_to_send())
    while True:
        data = await reader.read(READ_CHUNK)
        if not data:
            raise NodeDisconnectedError(None, "closed before answering")
        events = connection.receive_data(data)
        writer.write(connection.data_to_send())
        for event in events:
            if event.correlation_id != correlation_id:
                continue
            if isinstance(event, RequestFailed):
                raise event.error
            return event.body
        if not expects_response and connection.state is State.READY:
            await writer.drain()
            return API_BY_KEY[PRODUCE_KEY].response.make()
