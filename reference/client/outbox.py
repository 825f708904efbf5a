"""Requests a sans-IO core wants sent to another node, and how their answers come back.

Theory of operation
-------------------
A broker is not only a server.  A follower fetches from its partition's leader, a KRaft voter asks
the others for votes, a broker registers with and heartbeats to the active controller, a leader
asks the controller to change an ISR (AlterPartition).  Kafka does this with ``NetworkClient``
inside ``InterBrokerSendThread``s; refka's cores do it without a socket or a clock:

1. A core puts an :class:`OutboundRequest` in its :class:`Outbox`: the destination node id, the
   API, the request body, an optional version (``None``: the newest version both sides support,
   found by the connection's ApiVersions exchange), a timeout, and two callbacks.
2. A transport -- the asyncio one (``reference.client.transport``) or the deterministic simulator
   -- drains the outbox (:meth:`Outbox.drain`), sends each request over its connection to the
   destination, and later calls exactly one of :meth:`OutboundRequest.complete` (the response
   body) or :meth:`OutboundRequest.fail` (the connection failed or the request timed out).  Both
   take ``now_ms`` from the transport, since the core has no clock.
3. Callbacks run inside the transport's call, on the core's thread, like a request handler.

Invariants: a request is delivered to its callbacks at most once (a second ``complete`` or
``fail`` is ignored, so a late answer after a timeout cannot be handled twice); a core never
blocks waiting for an answer; requests to one destination are sent in the order they were put in
the outbox.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..protocol.schema import Data

ResponseCallback = Callable[[Data, int], None]
FailureCallback = Callable[[Exception, int], None]


def _ignore_failure(error: Exception, now_ms: int) -> None:
    """The default failure callback: a request whose answer nobody needs (it will be retried)."""


@dataclass(eq=False)
class OutboundRequest:
    """One request to another node; the transport calls ``complete`` or ``fail`` once."""

    destination: int  # node id
    api_key: int
    body: Data
    on_response: ResponseCallback
    on_failure: FailureCallback = _ignore_failure
    version: int | None = None  # None: the newest version both sides support
    max_version: int | None = None  # with version None: no newer than this (e.g. the last one naming topics)
    timeout_ms: int = 30_000  # Kafka's request.timeout.ms for inter-broker requests
    done: bool = field(default=False, init=False)

    def complete(self, response: Data, now_ms: int) -> None:
        if self.done:
            return
        self.done = True
        self.on_response(response, now_ms)

    def fail(self, error: Exception, now_ms: int) -> None:
        if self.done:
            return
        self.done = True
        self.on_failure(error, now_ms)


class Outbox:
    """Requests waiting for a transport, oldest first."""

    def __init__(self) -> None:
        self._queue: list[OutboundRequest] = []
        self.listeners: list[Callable[[], Any]] = []  # told when a request is added (wake the transport)

    def __len__(self) -> int:
        return len(self._queue)

    def send(self, request: OutboundRequest) -> OutboundRequest:
        self._queue.append(request)
        for listener in self.listeners:
            listener()
        return request

    def drain(self) -> list[OutboundRequest]:
        """Take every waiting request (the transport now owns them)."""
        taken, self._queue = self._queue, []
        return taken
