"""A broker's life as the controller sees it: register, catch up, unfence, heartbeat, shut down.

Theory of operation
-------------------
Mirrors Kafka's ``BrokerLifecycleManager`` (KIP-631).  A KRaft broker is only a broker once the
active controller has registered it and let it out of the fence; it stays one only while it
heartbeats.  The states, and what moves the broker between them:

==========================  =====================================  ===============================
state                       what the broker sends                  leaves when
==========================  =====================================  ===============================
STARTING                    BrokerRegistration (62), retried       the controller answers with a
                                                                   broker epoch -> RECOVERY
RECOVERY                    BrokerHeartbeat (63), want_fence       heartbeat answer ``is_fenced``
                            until it has replayed the metadata     false -> RUNNING
                            log up to its own registration
RUNNING                     BrokerHeartbeat every                  shutdown requested ->
                            ``broker.heartbeat.interval.ms``       PENDING_CONTROLLED_SHUTDOWN
PENDING_CONTROLLED_SHUTDOWN BrokerHeartbeat with want_shut_down    ``should_shut_down`` -> SHUTTING_DOWN
SHUTTING_DOWN               nothing                                (final)
==========================  =====================================  ===============================

The heartbeat carries ``current_metadata_offset``, how far this broker has replayed the committed
metadata; the controller unfences a broker whose offset has reached its registration record (so a
broker never leads a partition it has not heard about).  A controller that stops answering, or
answers NOT_CONTROLLER, is forgotten: the next request goes to whichever voter is then known as
the leader.  STALE_BROKER_EPOCH or an unknown registration sends the broker back to STARTING
(Kafka re-registers after the controller fenced and forgot it).  A missed session does not stop the
broker: the controller fences it, and it is unfenced again once heartbeats resume.

The controlled shutdown (``want_shut_down``) lets the controller move every leadership away
first, so a clean stop loses no availability; a broker whose controller is gone waits no longer
than its deadline and stops anyway.

Invariant: at most one registration or heartbeat is in flight; a broker epoch only comes from a
successful registration answer.
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from ..client.outbox import OutboundRequest, Outbox
from ..errors import Errors
from ..protocol.apis import API_BY_KEY
from ..protocol.schema import Data

log = logging.getLogger("refka.node.lifecycle")

BROKER_REGISTRATION = API_BY_KEY[62]
BROKER_HEARTBEAT = API_BY_KEY[63]
PLAINTEXT = 0  # SecurityProtocol id
RETRY_BACKOFF_MS = 100


class BrokerState(enum.Enum):
    STARTING = "STARTING"
    RECOVERY = "RECOVERY"
    RUNNING = "RUNNING"
    PENDING_CONTROLLED_SHUTDOWN = "PENDING_CONTROLLED_SHUTDOWN"
    SHUTTING_DOWN = "SHUTTING_DOWN"


class Event(enum.Enum):
    REGISTERED = "registered"
    UNFENCED = "unfenced"
    FENCED = "fenced"
    FORGOTTEN = "forgotten"  # STALE_BROKER_EPOCH: register again
    SHUTDOWN_REQUESTED = "shutdown requested"
    SHUTDOWN_GRANTED = "shutdown granted"


S, E = BrokerState, Event
TRANSITIONS: dict[BrokerState, dict[Event, BrokerState]] = {
    S.STARTING: {E.REGISTERED: S.RECOVERY, E.SHUTDOWN_REQUESTED: S.SHUTTING_DOWN},
    S.RECOVERY: {E.UNFENCED: S.RUNNING, E.FORGOTTEN: S.STARTING, E.FENCED: S.RECOVERY,
                 E.SHUTDOWN_REQUESTED: S.PENDING_CONTROLLED_SHUTDOWN},
    S.RUNNING: {E.FENCED: S.RECOVERY, E.FORGOTTEN: S.STARTING, E.UNFENCED: S.RUNNING,
                E.SHUTDOWN_REQUESTED: S.PENDING_CONTROLLED_SHUTDOWN},
    S.PENDING_CONTROLLED_SHUTDOWN: {E.SHUTDOWN_GRANTED: S.SHUTTING_DOWN, E.FENCED: S.PENDING_CONTROLLED_SHUTDOWN,
                                    E.UNFENCED: S.PENDING_CONTROLLED_SHUTDOWN,
                                    E.FORGOTTEN: S.SHUTTING_DOWN, E.SHUTDOWN_REQUESTED: S.PENDING_CONTROLLED_SHUTDOWN},
    S.SHUTTING_DOWN: {},
}


class IllegalTransition(RuntimeError):
    def __init__(self, state: BrokerState, event: Event) -> None:
        super().__init__(f"a broker in state {state.value} cannot handle the event {event.value!r}")


@dataclass(frozen=True)
class RegistrationInfo:
    """What the broker tells the controller about itself."""

    broker_id: int
    cluster_id: str
    listeners: list[tuple[str, str, int]]  # (name, host, port) as advertised
    rack: str | None
    features: dict[str, tuple[int, int]]  # feature -> (min, max) supported
    log_dir_ids: list[uuid.UUID]
    previous_broker_epoch: int = -1  # from a clean shutdown's marker; -1 after a crash (KIP-966)


class BrokerLifecycleManager:
    def __init__(self, info: RegistrationInfo, outbox: Outbox, active_controller: Callable[[], int | None],
                 metadata_offset: Callable[[], int], heartbeat_interval_ms: int, now_ms: int) -> None:
        self.info = info
        self.outbox = outbox
        self.active_controller = active_controller
        self.metadata_offset = metadata_offset
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.incarnation_id = uuid.uuid4()  # new every process start
        self.state = BrokerState.STARTING
        self.broker_epoch = -1
        self.is_fenced = True
        self._in_flight = False
        self._next_send_ms = now_ms
        self.on_state_change: Callable[[BrokerState], None] = lambda state: None

    def _move(self, event: Event) -> None:
        new_state = TRANSITIONS[self.state].get(event)
        if new_state is None:
            raise IllegalTransition(self.state, event)
        if new_state is not self.state:
            log.info("broker %d: %s -> %s (%s)", self.info.broker_id, self.state.value, new_state.value, event.value)
            self.state = new_state
            self.on_state_change(new_state)

    # -- time ------------------------------------------------------------------------------------------

    def next_deadline(self) -> int | None:
        if self._in_flight or self.state is BrokerState.SHUTTING_DOWN:
            return None
        return self._next_send_ms

    def poll(self, now_ms: int) -> None:
        if self._in_flight or self.state is BrokerState.SHUTTING_DOWN or now_ms < self._next_send_ms:
            return
        controller = self.active_controller()
        if controller is None:
            self._next_send_ms = now_ms + RETRY_BACKOFF_MS
            return
        if self.state is BrokerState.STARTING:
            self._send(controller, BROKER_REGISTRATION.key, self._registration(), self._on_registration)
        else:
            self._send(controller, BROKER_HEARTBEAT.key, self._heartbeat(), self._on_heartbeat)

    def begin_controlled_shutdown(self, now_ms: int) -> None:
        self._move(Event.SHUTDOWN_REQUESTED)
        self._next_send_ms = now_ms

    # -- requests ----------------------------------------------------------------------------------------

    def _send(self, controller: int, api_key: int, body: Data, on_response: Callable[[Data, int], None]) -> None:
        self._in_flight = True
        self.outbox.send(OutboundRequest(controller, api_key, body, on_response, self._on_failure,
                                         timeout_ms=self.heartbeat_interval_ms * 2))

    def _registration(self) -> Data:
        listener = BROKER_REGISTRATION.request.struct("Listener")
        feature = BROKER_REGISTRATION.request.struct("Feature")
        return BROKER_REGISTRATION.request.make(
            broker_id=self.info.broker_id, cluster_id=self.info.cluster_id, incarnation_id=self.incarnation_id,
            listeners=[listener.make(name=name, host=host, port=port, security_protocol=PLAINTEXT)
                       for name, host, port in self.info.listeners],
            features=[feature.make(name=name, min_supported_version=low, max_supported_version=high)
                      for name, (low, high) in sorted(self.info.features.items())],
            rack=self.info.rack, is_migrating_zk_broker=False, log_dirs=self.info.log_dir_ids,
            previous_broker_epoch=self.info.previous_broker_epoch,
        )

    def _heartbeat(self) -> Data:
        return BROKER_HEARTBEAT.request.make(
            broker_id=self.info.broker_id, broker_epoch=self.broker_epoch,
            current_metadata_offset=self.metadata_offset(),
            want_fence=self.state is BrokerState.RECOVERY and self.metadata_offset() < self.broker_epoch,
            want_shut_down=self.state is BrokerState.PENDING_CONTROLLED_SHUTDOWN, offline_log_dirs=[],
        )

    def _on_failure(self, error: Exception, now_ms: int) -> None:
        log.info("broker %d: %s to the controller failed: %s", self.info.broker_id,
                 "registration" if self.state is BrokerState.STARTING else "heartbeat", error)
        self._in_flight = False
        self._next_send_ms = now_ms + RETRY_BACKOFF_MS

    def _on_registration(self, response: Data, now_ms: int) -> None:
        self._in_flight = False
        if response.error_code != Errors.NONE.code:
            log.info("broker %d: registration refused with error %d", self.info.broker_id, response.error_code)
            self._next_send_ms = now_ms + RETRY_BACKOFF_MS
            return
        if self.state is not BrokerState.STARTING:
            return  # a shutdown started while the registration was in flight
        self.broker_epoch = response.broker_epoch
        self._move(Event.REGISTERED)
        self._next_send_ms = now_ms  # the first heartbeat at once

    def _on_heartbeat(self, response: Data, now_ms: int) -> None:
        self._in_flight = False
        code = response.error_code
        if code == Errors.STALE_BROKER_EPOCH.code or code == Errors.BROKER_ID_NOT_REGISTERED.code:
            self.broker_epoch = -1
            self._move(Event.FORGOTTEN)
            self._next_send_ms = now_ms
            return
        if code != Errors.NONE.code:
            self._next_send_ms = now_ms + RETRY_BACKOFF_MS
            return
        self.is_fenced = response.is_fenced
        if self.state is BrokerState.PENDING_CONTROLLED_SHUTDOWN and response.should_shut_down:
            self._move(Event.SHUTDOWN_GRANTED)
            return
        self._move(Event.FENCED if response.is_fenced else Event.UNFENCED)
        interval = self.heartbeat_interval_ms
        if self.state is BrokerState.RECOVERY or self.state is BrokerState.PENDING_CONTROLLED_SHUTDOWN:
            interval = min(interval, 200)  # catch-up and shutdown progress are polled quickly
        self._next_send_ms = now_ms + interval
