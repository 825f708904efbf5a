"""A KRaft broker forwards what only the active controller may decide.

Theory of operation
-------------------
In a KRaft cluster, clients talk to brokers only.  A request that changes cluster metadata --
CreateTopics, DeleteTopics, CreatePartitions, AlterConfigs, IncrementalAlterConfigs, ElectLeaders
-- is decided by the active controller, and DescribeQuorum (``kafka-metadata-quorum``) is answered
by it, so the broker that receives it passes it on and relays
the answer (Kafka's ``ForwardingManager``; Kafka wraps the request in an Envelope (KIP-590) to
carry the client's principal, refka has no authentication and sends the request itself, in the
client's own version, so the answer fits the client without translation).

1. The request goes to the voter currently known as the Raft leader, through the node's controller
   outbox (the transport resolves the voter's controller listener).
2. If no leader is known, the connection fails, or the controller answers NOT_CONTROLLER (it lost
   leadership on the way), the broker tries again after ``RETRY_BACKOFF_MS``, until the request's
   own ``timeout_ms`` (or ``request.timeout.ms``) has passed; then every entity of the request is
   answered with REQUEST_TIMED_OUT.
3. Automatic topic creation (Metadata for an unknown topic, FindCoordinator before
   ``__consumer_offsets`` exists) sends a CreateTopics of its own and does not wait for it: the
   client asks again and finds the topic once the controller's records reach this broker.

Invariants: each forwarded request is answered exactly once; a retry never outlives the request's
deadline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..broker.pending import Pending
from ..client.outbox import OutboundRequest, Outbox
from ..errors import Errors
from ..protocol.apis import API_BY_KEY
from ..protocol.frames import Request
from ..protocol.schema import Data
from .error_responses import BUILDERS, error_response

log = logging.getLogger("refka.node.forwarder")

CREATE_TOPICS = API_BY_KEY[19]
RETRY_BACKOFF_MS = 100
DEFAULT_TIMEOUT_MS = 30_000


@dataclass
class _Forwarded:
    request: Request
    pending: Pending
    deadline_ms: int
    retry_at_ms: int | None = None


def _mentions_not_controller(response: Data) -> bool:
    """Did the controller refuse because it is not (or no longer) the active one?"""
    code = Errors.NOT_CONTROLLER.code
    if getattr(response, "error_code", None) == code:
        return True
    for name in ("topics", "responses", "results"):
        entries = getattr(response, name, None)
        if entries and all(getattr(entry, "error_code", None) == code for entry in entries):
            return True
    return False


class ControllerForwarder:
    forwarded_apis = frozenset(BUILDERS)
    # APIs a broker serves only by forwarding, with the versions Kafka 4.3's brokers advertise.
    forwarded_only_versions = {43: (0, 2), 55: (0, 2)}  # ElectLeaders, DescribeQuorum

    def __init__(self, outbox: Outbox, active_controller: Callable[[], int | None]) -> None:
        self.outbox = outbox
        self.active_controller = active_controller
        self._waiting: list[_Forwarded] = []  # requests waiting to be retried
        self._creating: set[str] = set()  # auto-created topics with a CreateTopics in flight

    # -- forwarding ------------------------------------------------------------------------------------

    def forward(self, request: Request, now_ms: int) -> Pending:
        timeout = getattr(request.body, "timeout_ms", DEFAULT_TIMEOUT_MS) or DEFAULT_TIMEOUT_MS
        forwarded = _Forwarded(request, Pending(), now_ms + max(timeout, RETRY_BACKOFF_MS))
        self._send(forwarded, now_ms)
        return forwarded.pending

    def _send(self, forwarded: _Forwarded, now_ms: int) -> None:
        controller = self.active_controller()
        if controller is None:
            self._retry_later(forwarded, now_ms)
            return
        request = forwarded.request

        def on_response(response: Data, at_ms: int) -> None:
            if _mentions_not_controller(response):
                self._retry_later(forwarded, at_ms)
            else:
                forwarded.pending.complete(response)

        def on_failure(error: Exception, at_ms: int) -> None:
            log.info("forwarding %s to controller %d failed: %s", request.api.name, controller, error)
            self._retry_later(forwarded, at_ms)

        self.outbox.send(OutboundRequest(controller, request.api.key, request.body, on_response, on_failure,
                                         version=request.version,
                                         timeout_ms=max(1, forwarded.deadline_ms - now_ms)))

    def _retry_later(self, forwarded: _Forwarded, now_ms: int) -> None:
        if now_ms + RETRY_BACKOFF_MS >= forwarded.deadline_ms:
            forwarded.pending.complete(error_response(
                forwarded.request.api.key, forwarded.request.body, Errors.REQUEST_TIMED_OUT,
                "The controller did not answer in time."))
            return
        forwarded.retry_at_ms = now_ms + RETRY_BACKOFF_MS
        self._waiting.append(forwarded)

    # -- automatic topic creation ------------------------------------------------------------------------

    def create_topic(self, name: str, now_ms: int, partitions: int = -1, replication_factor: int = -1,
                     configs: dict[str, str] | None = None) -> None:
        """Ask the controller to create ``name`` (-1: the cluster's defaults), without waiting."""
        controller = self.active_controller()
        if name in self._creating or controller is None:
            return
        self._creating.add(name)
        topic = CREATE_TOPICS.request.struct("CreatableTopic")
        config = CREATE_TOPICS.request.struct("CreatableTopicConfig")
        body = CREATE_TOPICS.request.make(
            topics=[topic.make(name=name, num_partitions=partitions, replication_factor=replication_factor,
                               assignments=[], configs=[config.make(name=key, value=value)
                                                        for key, value in (configs or {}).items()])],
            timeout_ms=DEFAULT_TIMEOUT_MS, validate_only=False)

        def done(*_: object) -> None:
            self._creating.discard(name)

        self.outbox.send(OutboundRequest(controller, CREATE_TOPICS.key, body, done, done))

    # -- time --------------------------------------------------------------------------------------------

    def poll(self, now_ms: int) -> None:
        due = [forwarded for forwarded in self._waiting if (forwarded.retry_at_ms or 0) <= now_ms]
        self._waiting = [forwarded for forwarded in self._waiting if forwarded not in due]
        for forwarded in due:
            self._send(forwarded, now_ms)

    def next_deadline(self) -> int | None:
        return min((forwarded.retry_at_ms or 0 for forwarded in self._waiting), default=None)
