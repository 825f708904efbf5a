"""A sans-IO Kafka client connection: requests in, bytes out; bytes in, responses out.

Theory of operation
-------------------
Every piece of refka that talks to a broker -- a follower fetching from its leader, a KRaft voter
asking for votes, a broker heartbeating to the controller, the reference client -- speaks through
one :class:`KafkaConnection`.  Like h11's ``Connection`` it owns no socket and reads no clock: the
caller feeds it the bytes it received (:meth:`~KafkaConnection.receive_data`) and writes out the
bytes it asks to send (:meth:`~KafkaConnection.data_to_send`).  The asyncio transport
(``reference.client.transport``) and the deterministic simulator are two such callers.

The wire grammar it keeps (Kafka's protocol guide, KIP-482, KIP-511)::

    request frame  = size:INT32  request_header  body
    request_header = api_key:INT16 api_version:INT16 correlation_id:INT32 client_id:NULLABLE_STRING
                     [tagged_fields]            -- header v2, for flexible API versions only
    response frame = size:INT32  response_header  body
    response_header= correlation_id:INT32
                     [tagged_fields]            -- header v1, for flexible API versions only,
                                                   never for ApiVersions (always v0, KIP-511)

``client_id`` keeps the INT16 length in header v2 (a broker reads it before it knows the
version); ``reference.protocol.headers`` and ``frames`` implement both headers, used here as is.

Rules
-----
1. **Correlation ids.**  Each request gets the next int32 id when it is submitted; after
   2**31-1 comes -2**31, as Java's ``int`` overflow gives (refka has no SASL, so Kafka's reserved
   range near the top is not skipped).  Ids are unique among requests awaiting answers.
2. **Order.**  A Kafka broker answers the requests of one connection in the order it received
   them (it mutes the channel while one is in flight).  So the answer to read next always belongs
   to the *oldest* request in flight; any other correlation id is a :class:`RemoteProtocolError`.
   Produce with ``acks=0`` gets no answer at all: it is sent with ``expect_response=False`` and
   never enters :attr:`~KafkaConnection.in_flight`.
3. **Negotiation (ApiVersions).**  The first request on a connection is ApiVersions at the newest
   version refka knows (v4), carrying ``ClientSoftwareName``/``Version`` from v3 on.  If the broker
   does not know that version it answers with a *v0* body, ``UNSUPPORTED_VERSION`` (35) and the
   range of ApiVersions itself (KIP-511; Kafka lists no other API there); the client decodes it as v0 (the response header is v0 either way) and
   retries at the broker's highest ApiVersions version (v0 if the list lacks it), as Kafka's
   ``NetworkClient.handleApiVersionsResponse`` does.  refka also stops if that retry would not be
   lower than the version just refused, so a broken peer cannot loop it.  Any other error ends
   the connection.
4. **Versions.**  Once the broker's ranges are known, a request asked for with ``version=None``
   goes at the highest version both sides serve (refka's side: the request schema's valid
   versions).  An explicit version outside the broker's range, an API the broker does not list,
   or no common version raises :class:`UnsupportedVersionError`.  Requests submitted while
   negotiating are *held* and encoded when negotiation finishes, in submission order; one that
   then has no usable version comes back as a :class:`RequestFailed` event.
5. **Limits.**  A response size below 0 or above ``max_response_bytes`` is refused before any
   byte of it is buffered (Kafka's Java clients read without a limit; the broker applies
   ``socket.request.max.bytes``, 100 MiB, to requests, and refka uses the same bound here so a
   corrupt size cannot make a node allocate gigabytes).
6. **Failure is final.**  After a remote protocol error (or a failed negotiation) the connection
   is in ``ERROR`` and refuses every operation but :meth:`~KafkaConnection.close`; the requests
   still awaiting answers will never get them, and :meth:`~KafkaConnection.close` lists them.

The states and the events that move between them are the table :data:`TRANSITIONS`; an operation
with no entry raises :class:`ConnectionStateError` naming the state and the event.

Reading error codes inside response bodies is not this module's job: the one translation from an
``error_code`` to an exception is :func:`reference.client.exceptions.error_from_code`.
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from dataclasses import dataclass

from ..errors import Errors, KafkaError
from ..protocol.apis import API_BY_KEY, Api
from ..protocol.frames import SIZE_PREFIX, decode_response, encode_request
from ..protocol.headers import API_VERSIONS_KEY
from ..protocol.schema import Data
from .exceptions import (
    ConnectionStateError,
    LocalProtocolError,
    RemoteProtocolError,
    UnsupportedVersionError,
    error_from_code,
)

PRODUCE_KEY = 0
INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)
DEFAULT_MAX_RESPONSE_BYTES = 104_857_600  # socket.request.max.bytes' default, 100 MiB
CLIENT_SOFTWARE_NAME = "refka"
CLIENT_SOFTWARE_VERSION = "0.1.0"  # must match [a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])? (KIP-511)

_CORRELATION_ID = struct.Struct(">i")  # the first field of both response header versions


# -- the state machine, as data ---------------------------------------------------------------------


class State(enum.Enum):
    NEGOTIATING = "NEGOTIATING"  # ApiVersions in flight; other requests are held
    READY = "READY"  # the broker's ranges are known; requests go out as submitted
    ERROR = "ERROR"  # the peer broke the protocol or negotiation failed; only close() is allowed
    CLOSED = "CLOSED"

    def __str__(self) -> str:
        return self.value


class Event(enum.Enum):
    SEND = "send"  # submit a request
    RECEIVE = "receive data"
    NEGOTIATED = "finish negotiation"  # an ApiVersions answer without error
    FAIL = "fail"  # a remote protocol error or a failed negotiation
    CLOSE = "close"

    def __str__(self) -> str:
        return self.value


TRANSITIONS: dict[State, dict[Event, State]] = {
    State.NEGOTIATING: {
        Event.SEND: State.NEGOTIATING, Event.RECEIVE: State.NEGOTIATING,
        Event.NEGOTIATED: State.READY, Event.FAIL: State.ERROR, Event.CLOSE: State.CLOSED,
    },
    State.READY: {
        Event.SEND: State.READY, Event.RECEIVE: State.READY,
        Event.FAIL: State.ERROR, Event.CLOSE: State.CLOSED,
    },
    State.ERROR: {Event.CLOSE: State.CLOSED},
    State.CLOSED: {Event.CLOSE: State.CLOSED},
}


# -- what the connection hands back ----------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    """A decoded answer to the request with ``correlation_id``."""

    correlation_id: int
    api_key: int
    version: int  # the version the body was decoded at (v0 for a KIP-511 fallback)
    body: Data


@dataclass(frozen=True)
class RequestFailed:
    """A request held during negotiation that could not be sent once the broker's ranges came."""

    correlation_id: int
    api_key: int
    error: Exception


ConnectionEvent = Response | RequestFailed


@dataclass(frozen=True)
class InFlightRequest:
    """A request that is on the wire (or held, with ``version`` possibly ``None``)."""

    correlation_id: int
    api_key: int
    version: int | None
    internal: bool = False  # the connection's own ApiVersions exchange


@dataclass(frozen=True)
class _HeldRequest:
    correlation_id: int
    api: Api
    body: Data
    version: int | None
    max_version: int | None = None


def _kafka_range(api: Api) -> tuple[int, int]:
    """The request versions refka can encode for ``api``: its schema's valid versions."""
    high = api.request.valid.high
    assert high is not None, f"{api.name} declares no highest version"
    return api.request.valid.low, high


class KafkaConnection:
    """One client connection to one broker, without I/O (see the module's theory of operation)."""

    def __init__(
        self,
        client_id: str | None = "refka",
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        first_correlation_id: int = 0,
    ) -> None:
        self.client_id = client_id
        self.max_response_bytes = max_response_bytes
        self.state = State.NEGOTIATING
        self.broker_versions: dict[int, tuple[int, int]] | None = None  # api key -> (min, max)
        self.api_versions_response: Data | None = None  # the accepted answer, features included
        self._next_correlation_id = first_correlation_id
        self._outgoing = bytearray()
        self._incoming = bytearray()
        self._in_flight: deque[InFlightRequest] = deque()
        self._held: list[_HeldRequest] = []
        self._send_api_versions(_kafka_range(API_BY_KEY[API_VERSIONS_KEY])[1])

    # -- the public surface ----------------------------------------------------------------------

    @property
    def in_flight(self) -> tuple[InFlightRequest, ...]:
        """Requests sent and awaiting an answer, oldest first (the order answers must come in)."""
        return tuple(self._in_flight)

    @property
    def held(self) -> tuple[InFlightRequest, ...]:
        """Requests submitted during negotiation, not yet encoded, in submission order."""
        return tuple(InFlightRequest(h.correlation_id, h.api.key, h.version) for h in self._held)

    def send(self, api_key: int, body: Data, version: int | None = None, expect_response: bool = True,
             max_version: int | None = None) -> int:
        """Submit a request; returns its correlation id.

        Raises :class:`UnsupportedVersionError` when the version cannot be used (immediately if
        the broker's ranges are known, else for refka's own range only), and
        :class:`LocalProtocolError` for an unknown API, a body that does not encode, or an
        ``expect_response`` that contradicts the request (only Produce with ``acks=0`` gets no
        answer).
        """
        self._transition(Event.SEND)
        api = API_BY_KEY.get(api_key)
        if api is None:
            raise LocalProtocolError(f"refka has no schema for API key {api_key}")
        no_answer = api_key == PRODUCE_KEY and body.get("acks") == 0
        if expect_response == no_answer:
            raise LocalProtocolError(
                f"{api.name}: expect_response={expect_response} but Kafka "
                f"{'never answers' if no_answer else 'always answers'} this request")
        low, high = _kafka_range(api)
        if version is not None and not low <= version <= high:
            raise UnsupportedVersionError(f"refka knows {api.name} v{low}-v{high}, not v{version}")
        if self.state is State.NEGOTIATING:
            correlation_id = self._allocate_correlation_id()
            self._held.append(_HeldRequest(correlation_id, api, body, version, max_version))
            return correlation_id
        return self._encode(api, body, self.api_version(api_key, version, max_version), None)

    def data_to_send(self) -> bytes:
        """The bytes to write to the socket now (the outgoing buffer is emptied)."""
        data, self._outgoing = bytes(self._outgoing), bytearray()
        return data

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[ConnectionEvent]:
        """Feed received bytes; returns the answers (and held-request failures) they complete.

        Receiving can make bytes to send (a KIP-511 retry, the held requests once negotiation
        is over): call :meth:`data_to_send` after every call.

        Raises :class:`RemoteProtocolError` (its ``responses`` attribute holds the answers decoded
        from the same bytes before the fault) or, if negotiation fails, the
        :class:`~reference.errors.KafkaError` the broker's error code names.  Either way the
        connection is then in ``ERROR``.
        """
        self._transition(Event.RECEIVE)
        self._incoming += data
        events: list[ConnectionEvent] = []
        try:
            while (payload := self._next_frame()) is not None:
                events.extend(self._handle_frame(payload))
        except RemoteProtocolError as error:
            self._transition(Event.FAIL)
            error.responses = events
            raise
        except KafkaError:
            self._transition(Event.FAIL)
            raise
        return events

    def api_version(self, api_key: int, version: int | None = None, max_version: int | None = None) -> int:
        """The version a request of ``api_key`` goes at: ``version`` checked, or the highest common
        one (no higher than ``max_version`` when given: a body that only older versions can carry,
        such as topics named where the newest versions want topic ids)."""
        api = API_BY_KEY.get(api_key)
        if api is None:
            raise LocalProtocolError(f"refka has no schema for API key {api_key}")
        if self.broker_versions is None:
            raise ConnectionStateError(self.state, "choose a version before negotiation")
        broker_range = self.broker_versions.get(api_key)
        if broker_range is None:
            raise UnsupportedVersionError(f"the broker does not serve {api.name}")
        low, high = _kafka_range(api)
        common_low, common_high = max(low, broker_range[0]), min(high, broker_range[1])
        if version is None and max_version is not None:
            common_high = min(common_high, max_version)
        if version is None:
            if common_low > common_high:
                raise UnsupportedVersionError(
                    f"{api.name}: refka knows v{low}-v{high}, the broker v{broker_range[0]}-v{broker_range[1]}")
            return common_high
        if not common_low <= version <= common_high:
            raise UnsupportedVersionError(
                f"{api.name} v{version}: the broker serves v{broker_range[0]}-v{broker_range[1]}")
        return version

    def close(self) -> tuple[InFlightRequest, ...]:
        """Close the connection; returns the caller's requests that will never be answered
        (in flight, then held), so a transport can fail them."""
        self._transition(Event.CLOSE)
        lost = tuple(r for r in self._in_flight if not r.internal) + self.held
        self._in_flight.clear()
        self._held.clear()
        self._outgoing.clear()
        self._incoming.clear()
        return lost

    # -- state -----------------------------------------------------------------------------------

    def _transition(self, event: Event) -> None:
        new_state = TRANSITIONS[self.state].get(event)
        if new_state is None:
            raise ConnectionStateError(self.state, event)
        self.state = new_state

    # -- outgoing --------------------------------------------------------------------------------

    def _allocate_correlation_id(self) -> int:
        correlation_id = self._next_correlation_id
        self._next_correlation_id = INT32_MIN if correlation_id == INT32_MAX else correlation_id + 1
        return correlation_id

    def _encode(self, api: Api, body: Data, version: int, correlation_id: int | None,
                internal: bool = False) -> int:
        """Append the frame to the outgoing bytes; in flight unless Kafka sends no answer."""
        if correlation_id is None:
            correlation_id = self._allocate_correlation_id()
        try:
            frame = encode_request(api, version, correlation_id, self.client_id, body)
        except (AttributeError, TypeError, ValueError, struct.error) as error:
            raise LocalProtocolError(f"{api.name} v{version} body does not encode: {error}") from error
        self._outgoing += frame
        if not (api.key == PRODUCE_KEY and body.get("acks") == 0):
            self._in_flight.append(InFlightRequest(correlation_id, api.key, version, internal))
        return correlation_id

    def _send_api_versions(self, version: int) -> None:
        api = API_BY_KEY[API_VERSIONS_KEY]
        body = api.request.make(client_software_name=CLIENT_SOFTWARE_NAME,
                                client_software_version=CLIENT_SOFTWARE_VERSION)
        self._encode(api, body, version, None, internal=True)

    def _release_held(self) -> list[ConnectionEvent]:
        """Negotiation is over: encode the held requests in submission order."""
        failures: list[ConnectionEvent] = []
        held, self._held = self._held, []
        for request in held:
            try:
                version = self.api_version(request.api.key, request.version, request.max_version)
                self._encode(request.api, request.body, version, request.correlation_id)
            except (KafkaError, LocalProtocolError) as error:
                failures.append(RequestFailed(request.correlation_id, request.api.key, error))
        return failures

    # -- incoming --------------------------------------------------------------------------------

    def _next_frame(self) -> bytes | None:
        """The next complete frame's payload, or None until more bytes arrive."""
        if len(self._incoming) < SIZE_PREFIX.size:
            return None
        (size,) = SIZE_PREFIX.unpack_from(self._incoming)
        if size < 0 or size > self.max_response_bytes:
            raise RemoteProtocolError(f"response size {size} outside 0..{self.max_response_bytes}")
        end = SIZE_PREFIX.size + size
        if len(self._incoming) < end:
            return None
        with memoryview(self._incoming) as view:  # one copy (a slice of a bytearray is a copy too)
            payload = bytes(view[SIZE_PREFIX.size:end])
        del self._incoming[:end]
        return payload

    def _handle_frame(self, payload: bytes) -> list[ConnectionEvent]:
        if len(payload) < _CORRELATION_ID.size:
            raise RemoteProtocolError(f"a {len(payload)}-byte response has no room for a correlation id")
        (correlation_id,) = _CORRELATION_ID.unpack_from(payload)
        if not self._in_flight:
            raise RemoteProtocolError(f"a response with correlation id {correlation_id}, nothing in flight")
        oldest = self._in_flight[0]
        if correlation_id != oldest.correlation_id:
            raise RemoteProtocolError(
                f"a response with correlation id {correlation_id} while the oldest request in flight "
                f"is {oldest.correlation_id}: Kafka answers in order")
        self._in_flight.popleft()
        assert oldest.version is not None
        response = self._decode(oldest, payload)
        if oldest.internal:
            return self._on_api_versions(oldest, response.body)
        return [response]

    def _decode(self, request: InFlightRequest, payload: bytes) -> Response:
        api = API_BY_KEY[request.api_key]
        assert request.version is not None
        try:
            _, body = decode_response(api, request.version, payload)
            return Response(request.correlation_id, api.key, request.version, body)
        except ValueError as error:  # DecodeError, or bytes that are not UTF-8
            if api.key == API_VERSIONS_KEY and request.version > 0:
                return self._decode_api_versions_v0(request, payload, error)
            raise RemoteProtocolError(f"{api.name} v{request.version} response does not decode: {error}") from error

    def _decode_api_versions_v0(self, request: InFlightRequest, payload: bytes, first: Exception) -> Response:
        """KIP-511: a broker that does not know our ApiVersions version answers with a v0 body."""
        api = API_BY_KEY[API_VERSIONS_KEY]
        try:
            _, body = decode_response(api, 0, payload)
        except ValueError as error:
            raise RemoteProtocolError(
                f"ApiVersions v{request.version} response decodes neither as v{request.version} "
                f"({first}) nor as v0 ({error})") from error
        return Response(request.correlation_id, api.key, 0, body)

    def _on_api_versions(self, request: InFlightRequest, body: Data) -> list[ConnectionEvent]:
        """The answer to the connection's own ApiVersions: finish, retry lower, or fail (rule 3)."""
        assert request.version is not None
        if body.error_code == Errors.UNSUPPORTED_VERSION.code and request.version > 0:
            broker_max = next((k.max_version for k in body.api_keys if k.api_key == API_VERSIONS_KEY), 0)
            retry = min(broker_max, _kafka_range(API_BY_KEY[API_VERSIONS_KEY])[1])
            if retry >= request.version:
                raise UnsupportedVersionError(
                    f"the broker refused ApiVersions v{request.version} yet lists up to v{broker_max}")
            self._send_api_versions(retry)
            return []
        error = error_from_code(body.error_code)
        if error is not None:
            raise error
        self.api_versions_response = body
        self.broker_versions = {k.api_key: (k.min_version, k.max_version) for k in body.api_keys}
        self._transition(Event.NEGOTIATED)
        return self._release_held()

