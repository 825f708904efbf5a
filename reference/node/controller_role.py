"""The controller side of a KRaft node: serve the quorum, and be the active controller when elected.

Theory of operation
-------------------
Mirrors Kafka's ``ControllerServer`` with its ``ControllerApis`` and the event loop of its
``QuorumController``.  A node with the controller role listens on its controller listener
(``controller.listener.names``) and answers two kinds of requests there:

* **Quorum requests** -- Vote, BeginQuorumEpoch, EndQuorumEpoch, Fetch and FetchSnapshot of the
  ``__cluster_metadata`` partition, DescribeQuorum -- go to the Raft layer
  (:class:`~reference.controller.raft.RaftNode`) on every voter.
* **Controller requests** -- BrokerRegistration, BrokerHeartbeat, AlterPartition, and what brokers
  forward (CreateTopics, DeleteTopics, CreatePartitions, AlterConfigs, IncrementalAlterConfigs,
  ElectLeaders) -- only the *active* controller serves: the voter the Raft layer elected leader.
  Every other voter answers NOT_CONTROLLER, and the broker retries elsewhere.

The active controller runs in three steps, the life of Kafka's ``QuorumController``:

===========  ==============================================================================
state        meaning
===========  ==============================================================================
INACTIVE     this node is not the Raft leader: controller requests get NOT_CONTROLLER
LOADING      elected, but the high watermark has not yet passed this epoch's LeaderChange
             batch: the committed image may still miss records of earlier leaders, so
             decisions would be made on a stale image; requests get NOT_CONTROLLER
ACTIVE       the committed image is complete; the quorum controller decides on a copy of it
===========  ==============================================================================

An operation returns records and a response.  Records are appended to the metadata log as one
batch (atomically, in order); the response is sent only once the high watermark passes the batch
-- a broker never hears "created" for a topic that a new leader could still forget.  An operation
without records (a heartbeat that changes nothing) is answered at once.  Losing leadership fails
every waiting answer with NOT_CONTROLLER; the speculative image is thrown away and rebuilt from the
committed one the next time this node wins.

Invariants: only a Raft leader appends; a response is sent only for committed records; the
quorum controller's image equals the committed image plus the records of this epoch not yet
committed.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..broker.pending import Pending
from ..controller.controller_config import ControllerConfig, ControllerResult
from ..controller.image import MetadataImage
from ..controller.metadata_records import encode_record
from ..controller.raft import NotLeaderError, RaftNode
from ..errors import Errors
from ..protocol.apis import API_BY_KEY
from ..protocol.schema import Data
from .error_responses import error_response

log = logging.getLogger("refka.node.controller")

POLL_INTERVAL_MS = 250  # how often session expiry and elections are checked
QUORUM_APIS = frozenset({1, 52, 53, 54, 55, 59})  # Fetch, Vote, Begin/EndQuorumEpoch, DescribeQuorum, FetchSnapshot
# BrokerRegistration, BrokerHeartbeat, AlterPartition, AllocateProducerIds, and what brokers forward:
# CreateTopics, DeleteTopics, CreatePartitions, AlterConfigs, IncrementalAlterConfigs, ElectLeaders.
CONTROLLER_APIS = frozenset({62, 63, 56, 67, 19, 20, 37, 33, 44, 43})


class ControllerState(enum.Enum):
    INACTIVE = "INACTIVE"
    LOADING = "LOADING"
    ACTIVE = "ACTIVE"


@dataclass
class _Waiting:
    offset: int  # the answer goes out once the high watermark passes this offset
    pending: Pending
    response: Data | None
    api_key: int  # what to answer NOT_CONTROLLER to if leadership is lost first
    body: Data | None


class ControllerRole:
    def __init__(self, raft: RaftNode, config: ControllerConfig, committed_image: Callable[[], MetadataImage],
                 make_controller: Callable[[ControllerConfig, MetadataImage], Any]) -> None:
        self.raft = raft
        self.config = config
        self.committed_image = committed_image
        self.make_controller = make_controller
        self.state = ControllerState.INACTIVE
        self.controller: Any = None  # the QuorumController while ACTIVE
        self._epoch_start_offset = -1
        self._waiting: list[_Waiting] = []
        self._next_poll_ms = 0

    # -- leadership --------------------------------------------------------------------------------------

    def on_leader_change(self, leader_id: int | None, epoch: int) -> None:
        if leader_id == self.raft.node_id:
            self.state = ControllerState.LOADING
            self._epoch_start_offset = self.raft.log_end_offset  # the LeaderChange batch goes here
            log.info("node %d won epoch %d; loading until the high watermark passes offset %d",
                     self.raft.node_id, epoch, self._epoch_start_offset)
            return
        if self.state is not ControllerState.INACTIVE:
            log.info("node %d is no longer the active controller (epoch %d, leader %s)",
                     self.raft.node_id, epoch, leader_id)
        self.state = ControllerState.INACTIVE
        self.controller = None
        waiting, self._waiting = self._waiting, []
        for entry in waiting:
            if entry.body is not None:
                entry.pending.complete(not_controller_response(entry.api_key, entry.body))

    def on_commit(self, now_ms: int) -> None:
        """The high watermark moved: finish loading, and answer operations that are now committed."""
        # The committed image is complete once the listener was given every batch below this epoch's
        # LeaderChange: the Raft layer's delivered end, not its HW, which runs ahead during delivery.
        delivered = self.raft.delivered_end_offset
        if self.state is ControllerState.LOADING and delivered > self._epoch_start_offset:
            self.controller = self.make_controller(self.config, self.committed_image().copy())
            self.state = ControllerState.ACTIVE
            log.info("node %d is the active controller", self.raft.node_id)
            if not self.committed_image().features:  # a new cluster: finalize its features first
                self._catch_up_offsets()
                self._append(self.controller.bootstrap(), now_ms, None)
        ready = [entry for entry in self._waiting if entry.offset < delivered]
        self._waiting = [entry for entry in self._waiting if entry.offset >= delivered]
        for entry in ready:
            entry.pending.complete(entry.response)

    # -- requests ----------------------------------------------------------------------------------------

    def handle(self, api_key: int, version: int, body: Data, now_ms: int) -> Data | Pending:
        """A controller request (not a quorum request); NOT_CONTROLLER unless ACTIVE."""
        if self.state is not ControllerState.ACTIVE:
            return not_controller_response(api_key, body)
        self._catch_up_offsets()
        result: ControllerResult = self.controller.handle(api_key, version, body, now_ms)
        return self._append(result, now_ms, (api_key, body))

    def _catch_up_offsets(self) -> None:
        """The Raft layer writes control batches of its own (LeaderChange): the controller's next
        record goes at the log's end, so a broker epoch is the real offset of its registration."""
        if self.controller.next_offset < self.raft.log_end_offset:
            self.controller.advance_to(self.raft.log_end_offset)

    def _append(self, result: ControllerResult, now_ms: int, request: tuple[int, Data] | None) -> Data | Pending:
        """Append the operation's records; the answer waits for them to commit."""
        api_key, body = request if request is not None else (-1, None)
        if not result.records:
            if result.response is None:
                return Pending()
            if not self._waiting:  # nothing uncommitted: the answer rests on committed state only
                return result.response
            # Kafka's QuorumController: an operation that writes nothing was still decided on the
            # in-memory state, which may hold uncommitted records; its answer waits for the newest
            # of them to commit (and becomes NOT_CONTROLLER if leadership is lost first).  Answering
            # at once could tell a leader INVALID_UPDATE_VERSION for a partition epoch that a
            # failover then discards, and it would wait for that metadata forever (found by refka sim).
            pending = Pending()
            newest = max(entry.offset for entry in self._waiting)
            self._waiting.append(_Waiting(newest, pending, result.response, api_key, body))
            return pending
        try:
            offset = self.raft.append([encode_record(record) for record in result.records], now_ms)
        except NotLeaderError:
            self.on_leader_change(self.raft.leader_id, self.raft.epoch)
            return not_controller_response(api_key, body) if body is not None else Pending()
        pending = Pending()
        self._waiting.append(_Waiting(offset, pending, result.response, api_key, body))
        self.on_commit(now_ms)  # a single voter commits at once
        return pending

    # -- time ----------------------------------------------------------------------------------------------

    def poll(self, now_ms: int) -> None:
        """The controller's periodic tasks (session expiry, elections), every ``POLL_INTERVAL_MS``."""
        if self.state is not ControllerState.ACTIVE or now_ms < self._next_poll_ms:
            return
        self._next_poll_ms = now_ms + POLL_INTERVAL_MS
        self._catch_up_offsets()
        result = self.controller.poll(now_ms)
        if result.records:
            self._append(result, now_ms, None)

    def next_deadline(self) -> int | None:
        return self._next_poll_ms if self.state is ControllerState.ACTIVE else None


def not_controller_response(api_key: int, body: Data) -> Data:
    """NOT_CONTROLLER in the shape of the request's response (Kafka's getErrorResponse)."""
    api = API_BY_KEY[api_key]
    if api_key in (62, 63, 56, 67):  # registration, heartbeat, AlterPartition, producer ids: one top-level error
        return api.response.make(error_code=Errors.NOT_CONTROLLER.code)
    return error_response(api_key, body, Errors.NOT_CONTROLLER)
