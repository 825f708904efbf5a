"""A recording TCP proxy for golden-frame tests: real clients on one side, a real broker on the other.

Theory of operation
-------------------
Every Kafka frame in either direction is ``INT32 size`` followed by ``size`` bytes.  The proxy
accepts client connections, opens one connection to the broker per client connection, and copies
bytes both ways while cutting each stream into frames:

* **client -> broker**: every request frame is recorded as an :class:`Exchange`, keyed by its
  correlation id, and forwarded unchanged.  Only the fixed start of the header (api key, api
  version, correlation id) is read here, so pairing works even for a frame refka cannot decode;
  judging the codec is the test's job.
* **broker -> client**: a response frame starts with the correlation id of its request (both
  response header versions do).  The proxy pairs it with the pending request on the same
  connection, which tells the API key and version needed to decode it, and records the original
  bytes.  A request that gets no answer (Produce with acks=0) keeps ``response = None``.
* **advertised addresses**: Metadata, FindCoordinator and DescribeCluster responses name broker
  hosts and ports; clients connect there after bootstrap.  The proxy decodes those responses with
  refka's codec, replaces each broker address by a proxy listener for it (opened on demand), and
  re-encodes.  The bytes recorded are the ones the broker sent, before rewriting.

The pure functions below (:func:`split_frames`, :func:`reencode_request`,
:func:`reencode_response`, :func:`rewrite_advertised_addresses`) are the codec checks and the
rewriting; the threads only move bytes.  Nothing is written to disk.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from reference.errors import Errors
from reference.protocol.apis import API_BY_KEY, API_BY_NAME, Api
from reference.protocol.frames import decode_request, decode_response, encode_request, encode_response
from reference.protocol.schema import Data

SIZE_PREFIX = struct.Struct(">i")
# The start of every request header (v1 and v2): RequestApiKey, RequestApiVersion, CorrelationId.
REQUEST_HEADER_START = struct.Struct(">hhi")
CORRELATION_ID = struct.Struct(">i")
API_VERSIONS = API_BY_NAME["ApiVersions"]
MAX_FRAME_BYTES = 256 * 1024 * 1024

Address = tuple[str, int]


# ---------------------------------------------------------------- frames and codec checks
def split_frames(buffer: bytearray) -> list[bytes]:
    """Remove every whole frame from the front of ``buffer`` and return them, size prefix included."""
    frames = []
    while len(buffer) >= SIZE_PREFIX.size:
        (size,) = SIZE_PREFIX.unpack_from(buffer, 0)
        if not 0 <= size <= MAX_FRAME_BYTES:
            raise ValueError(f"implausible frame size {size}")
        end = SIZE_PREFIX.size + size
        if len(buffer) < end:
            break
        frames.append(bytes(buffer[:end]))
        del buffer[:end]
    return frames


@dataclass
class Exchange:
    """One request frame and, once it arrives, the response frame the broker sent for it."""

    connection: int
    api_key: int
    api_version: int
    correlation_id: int
    request: bytes  # with size prefix
    response: bytes | None = None  # with size prefix, exactly as the broker sent it

    @property
    def api_name(self) -> str:
        api = API_BY_KEY.get(self.api_key)
        return api.name if api is not None else f"key {self.api_key}"

    @property
    def response_version(self) -> int:
        """The version the response body is written in (see :func:`response_body_version`)."""
        assert self.response is not None
        return response_body_version(self.api_key, self.api_version, self.response[SIZE_PREFIX.size :])


def response_body_version(api_key: int, request_version: int, payload: bytes) -> int:
    """A response body is written in its request's version, with one exception (KIP-511).

    A broker that does not know the ApiVersions version asked for answers with a v0 body holding
    UNSUPPORTED_VERSION, so the client can retry lower.  ApiVersions responses always use response
    header v0 (correlation id only), and the body starts with the error code.
    """
    if api_key == API_VERSIONS.key and len(payload) >= CORRELATION_ID.size + 2:
        (error_code,) = struct.unpack_from(">h", payload, CORRELATION_ID.size)
        if error_code == Errors.UNSUPPORTED_VERSION.code:
            return 0
    return request_version


def peek_request_header(frame: bytes) -> tuple[int, int, int]:
    """(api key, api version, correlation id) of a request frame with its size prefix."""
    return REQUEST_HEADER_START.unpack_from(frame, SIZE_PREFIX.size)


def reencode_request(frame: bytes) -> bytes:
    """Decode a request frame with refka's codec and encode it again (size prefix included)."""
    request = decode_request(frame[SIZE_PREFIX.size :])
    header = request.header
    return encode_request(request.api, header.api_version, header.correlation_id, header.client_id, request.body)


def decode_response_frame(api: Api, version: int, frame: bytes) -> tuple[int, Data]:
    return decode_response(api, version, frame[SIZE_PREFIX.size :])


def reencode_response(api_key: int, version: int, frame: bytes) -> bytes:
    """Decode a response frame of ``(api_key, version)`` and encode it again (size prefix included)."""
    api = API_BY_KEY[api_key]
    correlation_id, body = decode_response_frame(api, version, frame)
    return encode_response(api, version, correlation_id, body)


def first_difference(left: bytes, right: bytes) -> int | None:
    """The first offset where two byte strings differ (the shorter length if one is a prefix)."""
    for offset, (a, b) in enumerate(zip(left, right, strict=False)):
        if a != b:
            return offset
    return None if len(left) == len(right) else min(len(left), len(right))


# ---------------------------------------------------------------- advertised addresses
AddressMap = Callable[[Address], Address]


def _rewrite_metadata(body: Data, proxy_for: AddressMap) -> None:
    for broker in body.brokers:
        broker.host, broker.port = proxy_for((broker.host, broker.port))


def _rewrite_find_coordinator(body: Data, proxy_for: AddressMap) -> None:
    # v0-3 answer one key at the top level, v4+ a list of coordinators; an error answer has no
    # broker (node id -1, port -1) and is left alone.
    if body.node_id >= 0 and body.port > 0:
        body.host, body.port = proxy_for((body.host, body.port))
    for coordinator in body.coordinators:
        if coordinator.node_id >= 0 and coordinator.port > 0:
            coordinator.host, coordinator.port = proxy_for((coordinator.host, coordinator.port))


REWRITERS: dict[int, Callable[[Data, AddressMap], None]] = {
    API_BY_NAME["Metadata"].key: _rewrite_metadata,
    API_BY_NAME["FindCoordinator"].key: _rewrite_find_coordinator,
    API_BY_NAME["DescribeCluster"].key: _rewrite_metadata,
}


def rewrite_advertised_addresses(api_key: int, version: int, frame: bytes, proxy_for: AddressMap) -> bytes:
    """The response frame with every advertised broker address replaced by ``proxy_for(address)``."""
    rewrite = REWRITERS.get(api_key)
    if rewrite is None:
        return frame
    api = API_BY_KEY[api_key]
    correlation_id, body = decode_response_frame(api, version, frame)
    rewrite(body, proxy_for)
    return encode_response(api, version, correlation_id, body)


# ---------------------------------------------------------------- the proxy (threads)
@dataclass
class _Listener:
    upstream: Address
    server: socket.socket
    address: Address


@dataclass
class RecordingProxy:
    """Listens on 127.0.0.1 for each upstream broker, records every exchange, rewrites addresses.

    Use as a context manager; ``bootstrap`` is the address to give clients.  ``exchanges`` holds
    every request seen, in arrival order; ``errors`` any failure inside the proxy threads (a
    response that could not be rewritten, an unpaired response), which a test should assert empty.
    """

    upstream: Address
    exchanges: list[Exchange] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: dict[Address, _Listener] = {}
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._connections = 0
        self._closed = False

    @property
    def bootstrap(self) -> str:
        host, port = self.proxy_for(self.upstream)
        return f"{host}:{port}"

    def __enter__(self) -> RecordingProxy:
        self.proxy_for(self.upstream)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def proxy_for(self, upstream: Address) -> Address:
        """The proxy address standing for ``upstream``, opening a listener the first time."""
        with self._lock:
            listener = self._listeners.get(upstream)
            if listener is None:
                server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                server.bind(("127.0.0.1", 0))
                server.listen(16)
                listener = _Listener(upstream, server, server.getsockname())
                self._listeners[upstream] = listener
                self._start(self._accept_loop, listener)
            return listener.address

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sockets = [listener.server for listener in self._listeners.values()] + self._sockets
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _start(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name=f"golden-proxy-{len(self._threads)}")
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self, listener: _Listener) -> None:
        while True:
            try:
                client, _ = listener.server.accept()
            except OSError:
                return
            try:
                broker = socket.create_connection(listener.upstream, timeout=10)
                broker.settimeout(None)
            except OSError as error:
                self.errors.append(f"cannot reach {listener.upstream}: {error}")
                client.close()
                continue
            with self._lock:
                if self._closed:
                    client.close()
                    broker.close()
                    return
                self._connections += 1
                connection = self._connections
                self._sockets += [client, broker]
            pending: dict[int, Exchange] = {}  # this connection's requests awaiting an answer
            self._start(self._pump, client, broker, functools.partial(self._record_request, connection, pending))
            self._start(self._pump, broker, client, functools.partial(self._record_response, pending))

    def _pump(self, source: socket.socket, sink: socket.socket, on_frame: Callable[[bytes], bytes]) -> None:
        """Copy frames from ``source`` to ``sink`` through ``on_frame``; when either side ends, end both."""
        buffer = bytearray()
        try:
            while data := _receive(source):
                buffer += data
                for frame in split_frames(buffer):
                    sink.sendall(on_frame(frame))
        except OSError:
            pass
        except (ValueError, struct.error) as error:
            self.errors.append(f"the stream is not a sequence of Kafka frames: {error}")
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _record_request(self, connection: int, pending: dict[int, Exchange], frame: bytes) -> bytes:
        api_key, api_version, correlation_id = peek_request_header(frame)
        exchange = Exchange(connection, api_key, api_version, correlation_id, frame)
        with self._lock:
            self.exchanges.append(exchange)
            pending[correlation_id] = exchange  # before the broker can answer it
        return frame

    def _record_response(self, pending: dict[int, Exchange], frame: bytes) -> bytes:
        (correlation_id,) = CORRELATION_ID.unpack_from(frame, SIZE_PREFIX.size)
        with self._lock:
            exchange = pending.pop(correlation_id, None)
        if exchange is None:
            self.errors.append(f"response with correlation id {correlation_id} matches no request")
            return frame
        exchange.response = frame
        try:
            return rewrite_advertised_addresses(exchange.api_key, exchange.response_version, frame, self.proxy_for)
        except Exception as error:  # recorded for the test to report; the client gets the original
            self.errors.append(f"{exchange.api_name} v{exchange.api_version}: cannot rewrite addresses: {error!r}")
            return frame


def _receive(sock: socket.socket) -> bytes:
    try:
        return sock.recv(256 * 1024)
    except OSError:
        return b""

