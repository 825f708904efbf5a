"""The broker's sans-IO core: bytes of a request in, bytes of a response (now or later) out.

Theory of operation
-------------------
A Kafka broker is, seen from a client, a function from request frames to response frames plus a
few clocks.  This module is that function, with no socket and no clock of its own:

* :meth:`Broker.handle_frame` decodes a frame (``reference.protocol.frames``), checks the version
  against the ranges the broker advertises in ApiVersions, calls the handler for the API
  (``reference.broker.handlers``) and encodes what it returns.  A handler returns a response body,
  a :class:`~reference.broker.pending.Pending` body, or :data:`NO_RESPONSE`.
* :meth:`Broker.poll` is given the time from outside; it expires delayed fetches and the group
  coordinator's timers.  :meth:`Broker.next_deadline` says when to call it next.

What Kafka does with a frame it will not serve, and so what this core does:

================================================  =============================================
the frame                                         the answer
================================================  =============================================
bytes that do not parse                           close the connection (``CloseConnection``)
unknown API key                                   close the connection
ApiVersions with a version the broker lacks       a v0 body: UNSUPPORTED_VERSION + the API list
any other API at a version outside the range      close the connection
================================================  =============================================

The parts the handlers work with are attributes of :class:`Broker`: ``config`` (broker configs),
``topics`` (the topic registry), ``replicas`` (the partitions this node hosts), ``groups`` (the
group coordinator), ``transactions`` (the transaction coordinator), ``producer_ids`` (the producer
id allocator), ``fetch_sessions`` (KIP-227 fetch sessions) and ``fetch_purgatory``.

A broker also *sends* requests: to partition leaders (follower fetches), to the controller
(registration, heartbeats, AlterPartition) and, as a KRaft voter, to the other voters.  Those go
into ``outbox`` (:mod:`reference.client.outbox`); a transport sends them and hands the answers
back through each request's callbacks, with the time, so this core stays without sockets and
clocks in both directions.

Invariants: every request that gets a response gets exactly one, with the request's correlation
id and in the request's API version; a handler's exception other than a ``KafkaError`` is a bug,
logged and answered by closing that one connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..client.outbox import Outbox
from ..errors import Errors
from ..protocol.apis import API_BY_KEY
from ..protocol.frames import (
    Request,
    UnknownApiKey,
    UnsupportedApiVersion,
    decode_request,
    encode_response,
)
from ..protocol.primitives import DecodeError, random_uuid_string
from ..protocol.schema import Data
from .cluster_view import BrokerEndpoint, ClusterView, SingleNodeView
from .configs import DYNAMIC_CONFIG_FILE, BrokerConfig
from .fetch_session import FetchSessionCache
from .pending import Pending, Purgatory

if TYPE_CHECKING:
    from ..controller.features import FinalizedFeatures
    from .topics import Topic

log = logging.getLogger("refka.broker")

API_VERSIONS_KEY = 18


class _NoResponse:
    def __repr__(self) -> str:
        return "NO_RESPONSE"


NO_RESPONSE: Any = _NoResponse()
"""What a handler returns when Kafka sends nothing back (Produce with acks=0)."""


class CloseConnection(Exception):
    """Kafka closes the connection here; the reason is logged."""


Reply = Data | Pending | _NoResponse
Handler = Callable[["Broker", Request, int], Reply]


class Forwarder(Protocol):
    """Where a KRaft broker sends the requests only the active controller may decide."""

    forwarded_apis: frozenset[int]

    def forward(self, request: Request, now_ms: int) -> Pending: ...

    def create_topic(self, name: str, now_ms: int) -> None: ...


class FrameServer:
    """Frames in, frames out: what every listener's request handling shares (Kafka's
    ``RequestChannel`` + ``KafkaApis.handle`` dispatch).  A subclass says which APIs it serves
    (``supported_versions``, :meth:`serves`), how (:meth:`serve`) and what its ApiVersions says."""

    supported_versions: dict[int, tuple[int, int]]

    def serves(self, api_key: int) -> bool:
        raise NotImplementedError

    def serve(self, request: Request, now_ms: int) -> Reply:
        raise NotImplementedError

    def api_versions_body(self, error: int = Errors.NONE.code) -> Data:
        raise NotImplementedError

    # -- requests ------------------------------------------------------------------------------------

    def handle_frame(self, payload: bytes | bytearray | memoryview, now_ms: int) -> bytes | Pending | Any:
        """Answer one request frame (without its size prefix)."""
        try:
            request = decode_request(payload)
        except UnsupportedApiVersion as unsupported:
            if unsupported.header.api_key == API_VERSIONS_KEY:
                return self._api_versions_fallback(unsupported.header.correlation_id)
            raise CloseConnection(str(unsupported)) from unsupported
        except UnknownApiKey as unknown:
            raise CloseConnection(str(unknown)) from unknown
        except DecodeError as malformed:
            raise CloseConnection(f"malformed request: {malformed}") from malformed
        return self.handle(request, now_ms)

    def handle(self, request: Request, now_ms: int) -> bytearray | Pending | Any:
        """Answer a decoded request: response bytes, a Pending of them, or NO_RESPONSE."""
        api_key = request.header.api_key
        low, high = self.supported_versions.get(api_key, (0, -1))
        if not self.serves(api_key) or not low <= request.version <= high:
            if api_key == API_VERSIONS_KEY:
                return self._api_versions_fallback(request.header.correlation_id)
            raise CloseConnection(f"{request.api.name} v{request.version} is not served")
        reply = self.serve(request, now_ms)
        if reply is NO_RESPONSE:
            return NO_RESPONSE
        if isinstance(reply, Pending):
            encoded = Pending()
            reply.on_done(lambda body: encoded.complete(self._encode_later(request, body)))
            return encoded
        assert isinstance(reply, Data)
        return self._encode(request, reply)

    def _encode_later(self, request: Request, body: Data) -> bytearray | CloseConnection:
        """Encode a delayed answer.  It completes inside another request's handling (a JoinGroup
        answered when the last member joins), so a failure here must stay with its own connection."""
        try:
            return self._encode(request, body)
        except Exception as error:
            log.exception("cannot encode the delayed %s v%d answer", request.api.name, request.version)
            return CloseConnection(f"internal error encoding {request.api.name}: {error}")

    def _encode(self, request: Request, body: Data) -> bytearray:
        return encode_response(request.api, request.version, request.header.correlation_id, body)

    def _api_versions_fallback(self, correlation_id: int) -> bytearray:
        """KIP-511: an ApiVersions version we lack is answered in v0 with UNSUPPORTED_VERSION and
        one range only, ApiVersions' own, from which the client picks a version to retry with (as
        Kafka does: it lists no other API to a request it cannot read)."""
        api = API_BY_KEY[API_VERSIONS_KEY]
        body = self.api_versions_body(Errors.UNSUPPORTED_VERSION.code)
        body.api_keys = [entry for entry in body.api_keys if entry.api_key == API_VERSIONS_KEY]
        return encode_response(api, 0, correlation_id, body)


class Broker(FrameServer):
    """One broker node: its state and the request handlers that act on it."""

    def __init__(self, config: BrokerConfig, data_dir: str | Path, now_ms: int) -> None:
        from . import handlers
        from .group_service import GroupService
        from .producer_ids import ProducerIdManager
        from .replica_manager import ReplicaManager
        from .topics import TopicRegistry
        from .txn.service import TransactionService

        self.config = config
        self.node_id = config.get_int("node.id")
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.cluster_id = _load_or_create_cluster_id(self.data_dir)
        config.load_dynamic(self.data_dir / DYNAMIC_CONFIG_FILE)  # AlterConfigs changes survive restarts
        self.host = "127.0.0.1"
        self.port = 9092
        self.fetch_purgatory = Purgatory()
        # KIP-227 fetch sessions, bounded by max.incremental.fetch.session.cache.slots.
        self.fetch_sessions = FetchSessionCache(config.get_int("max.incremental.fetch.session.cache.slots"))
        self.outbox = Outbox()  # requests to other nodes (the replica fetchers'), sent by the transport
        # The transaction coordinator's WriteTxnMarkers and a leader's AddPartitionsToTxn checks go on
        # connections of their own (Kafka's TransactionMarkerChannelManager and AddPartitionsToTxnManager
        # have their own network clients): a node answers a connection's requests in order, so on the
        # replica fetchers' connections they would wait behind a parked Fetch (replica.fetch.wait.max.ms).
        self.txn_outbox = Outbox()
        # KRaft mode (``process.roles`` set): topics come from the controller's committed metadata.
        self.kraft_mode = bool(config.get("process.roles"))
        self.topics = TopicRegistry(self.data_dir, config, persist=not self.kraft_mode)
        self.replicas = ReplicaManager(self, now_ms)
        self.producer_ids = ProducerIdManager(self.data_dir)
        self.groups = GroupService(self, now_ms)
        self.transactions = TransactionService(self, now_ms)
        self.cluster: ClusterView = SingleNodeView(self._own_endpoint, self._leader_epoch, self._partition_count)
        # In a KRaft cluster, requests that change metadata go to the active controller (Kafka's
        # ForwardingManager); the node sets this.  None: single-node mode, this broker decides.
        self.forwarder: Forwarder | None = None
        self.handlers: dict[int, Handler] = handlers.HANDLERS
        self.supported_versions: dict[int, tuple[int, int]] = handlers.SUPPORTED_VERSIONS
        # The KIP-584 feature levels ApiVersions advertises: a fixed table on one node; in a KRaft
        # cluster the node's metadata publisher replaces them with each image's.
        self.finalized_features: FinalizedFeatures = handlers.api_versions.initial_features(config, self.kraft_mode)

    # -- lifecycle -----------------------------------------------------------------------------------

    def set_listener(self, host: str, port: int) -> None:
        """Where clients reach this broker: what Metadata and FindCoordinator advertise.

        ``advertised.listeners`` (``PLAINTEXT://host:port``) wins over the bound address, as in
        Kafka, so a broker in a container can advertise the name clients resolve."""
        self.host, self.port = host, port
        advertised = self.config.get("advertised.listeners")
        if advertised:
            address = advertised.split(",")[0].split("://", 1)[-1]
            advertised_host, _, advertised_port = address.rpartition(":")
            self.host = advertised_host or host
            if advertised_port.isdigit() and int(advertised_port) != 0:
                self.port = int(advertised_port)

    def _own_endpoint(self) -> BrokerEndpoint:
        return BrokerEndpoint(self.node_id, self.host, self.port, self.config.get("broker.rack"))

    def _leader_epoch(self, topic: str, partition: int) -> int | None:
        replica = self.replicas.get(topic, partition)
        return replica.leader_epoch if replica is not None else None

    def _partition_count(self, topic: str) -> int | None:
        registered = self.topics.get(topic)
        return registered.partitions if registered is not None else None

    def auto_create_topic(self, name: str, now_ms: int) -> Topic | None:
        """Create a topic a client asked about (``auto.create.topics.enable``).  On one node it exists
        at once; in a cluster the controller creates it, so None is returned until it appears."""
        if self.forwarder is None:
            return self.topics.create(name, -1, -1, {})
        self.forwarder.create_topic(name, now_ms)
        return None

    def shutdown(self) -> None:
        """Clean shutdown: flush and close every log, write the clean-shutdown markers."""
        self.groups.shutdown()
        self.replicas.shutdown()

    # -- requests ------------------------------------------------------------------------------------

    def serves(self, api_key: int) -> bool:
        forwarded = self.forwarder is not None and api_key in self.forwarder.forwarded_apis
        return api_key in self.handlers or forwarded

    def serve(self, request: Request, now_ms: int) -> Reply:
        """Call the API's handler, or forward to the controller what only it may decide (KRaft)."""
        if self.forwarder is not None and request.header.api_key in self.forwarder.forwarded_apis:
            return self.forwarder.forward(request, now_ms)
        return self.handlers[request.header.api_key](self, request, now_ms)

    def api_versions_body(self, error: int = Errors.NONE.code) -> Data:
        from .handlers.api_versions import api_versions_body

        return api_versions_body(self, error=error)

    # -- time ----------------------------------------------------------------------------------------

    def poll(self, now_ms: int) -> None:
        """Let time pass: expire delayed fetches, group timers, retention."""
        self.fetch_purgatory.expire(now_ms)
        self.groups.poll(now_ms)
        self.transactions.poll(now_ms)
        self.replicas.poll(now_ms)

    def next_deadline(self) -> int | None:
        deadlines = [d for d in (self.fetch_purgatory.next_deadline(), self.groups.next_deadline(),
                                 self.transactions.next_deadline(), self.replicas.next_deadline()) if d is not None]
        return min(deadlines, default=None)


def _load_or_create_cluster_id(data_dir: Path) -> str:
    """Kafka keeps the cluster id in ``meta.properties`` in every log dir; so does refka."""
    meta = data_dir / "meta.properties"
    if meta.exists():
        for line in meta.read_text().splitlines():
            if line.startswith("cluster.id="):
                return line.split("=", 1)[1].strip()
    cluster_id = random_uuid_string()
    meta.write_text(f"version=1\ncluster.id={cluster_id}\n")
    return cluster_id
