"""A broker registers, is unfenced once caught up, heartbeats, and shuts down under control."""

from __future__ import annotations

import pytest

from reference.client.outbox import OutboundRequest, Outbox
from reference.errors import Errors
from reference.node.broker_lifecycle import (
    BROKER_HEARTBEAT,
    BROKER_REGISTRATION,
    BrokerLifecycleManager,
    BrokerState,
    Event,
    IllegalTransition,
    RegistrationInfo,
)

INFO = RegistrationInfo(1, "cluster-a", [("PLAINTEXT", "127.0.0.1", 9092)], "rack-a", {"metadata.version": (7, 30)}, [])


class Harness:
    def __init__(self) -> None:
        self.outbox = Outbox()
        self.controller: int | None = 3
        self.offset = -1
        self.manager = BrokerLifecycleManager(INFO, self.outbox, lambda: self.controller, lambda: self.offset,
                                              heartbeat_interval_ms=2000, now_ms=0)

    def sent(self, now_ms: int) -> OutboundRequest:
        self.manager.poll(now_ms)
        (request,) = self.outbox.drain()
        return request


def registration_answer(epoch: int, error: int = 0) -> object:
    return BROKER_REGISTRATION.response.make(error_code=error, broker_epoch=epoch)


def heartbeat_answer(fenced: bool, shut_down: bool = False, error: int = 0) -> object:
    return BROKER_HEARTBEAT.response.make(error_code=error, is_caught_up=not fenced, is_fenced=fenced,
                                          should_shut_down=shut_down)


def test_registration_names_the_broker_and_its_epoch_comes_only_from_the_answer() -> None:
    harness = Harness()
    request = harness.sent(0)
    assert (request.destination, request.api_key) == (3, BROKER_REGISTRATION.key)
    assert request.body.broker_id == 1 and request.body.cluster_id == "cluster-a" and request.body.rack == "rack-a"
    assert [(entry.name, entry.port) for entry in request.body.listeners] == [("PLAINTEXT", 9092)]
    assert harness.manager.broker_epoch == -1
    request.complete(registration_answer(42), 5)
    assert harness.manager.state is BrokerState.RECOVERY and harness.manager.broker_epoch == 42


def test_a_fenced_broker_asks_to_stay_fenced_until_it_has_replayed_its_registration() -> None:
    harness = Harness()
    harness.sent(0).complete(registration_answer(42), 0)
    heartbeat = harness.sent(0)
    assert heartbeat.api_key == BROKER_HEARTBEAT.key and heartbeat.body.want_fence
    heartbeat.complete(heartbeat_answer(fenced=True), 0)
    assert harness.manager.state is BrokerState.RECOVERY
    harness.offset = 42
    heartbeat = harness.sent(1000)
    assert not heartbeat.body.want_fence and heartbeat.body.current_metadata_offset == 42
    heartbeat.complete(heartbeat_answer(fenced=False), 1000)
    assert harness.manager.state is BrokerState.RUNNING and not harness.manager.is_fenced


def test_a_running_broker_heartbeats_every_interval_and_only_one_request_is_in_flight() -> None:
    harness = Harness()
    harness.offset = 42
    harness.sent(0).complete(registration_answer(42), 0)
    harness.sent(0).complete(heartbeat_answer(fenced=False), 0)
    harness.manager.poll(1999)
    assert len(harness.outbox) == 0
    heartbeat = harness.sent(2000)
    harness.manager.poll(5000)
    assert len(harness.outbox) == 0, "a second heartbeat while one is in flight"
    heartbeat.fail(ConnectionError("gone"), 5000)
    assert harness.manager.next_deadline() == 5100


def test_no_known_controller_means_waiting_not_sending() -> None:
    harness = Harness()
    harness.controller = None
    harness.manager.poll(0)
    assert len(harness.outbox) == 0 and harness.manager.next_deadline() == 100


def test_stale_broker_epoch_sends_the_broker_back_to_register() -> None:
    harness = Harness()
    harness.offset = 42
    harness.sent(0).complete(registration_answer(42), 0)
    harness.sent(0).complete(heartbeat_answer(fenced=False, error=Errors.STALE_BROKER_EPOCH.code), 0)
    assert harness.manager.state is BrokerState.STARTING and harness.manager.broker_epoch == -1
    assert harness.sent(0).api_key == BROKER_REGISTRATION.key


def test_controlled_shutdown_asks_until_the_controller_grants_it() -> None:
    harness = Harness()
    harness.offset = 42
    harness.sent(0).complete(registration_answer(42), 0)
    harness.sent(0).complete(heartbeat_answer(fenced=False), 0)
    harness.manager.begin_controlled_shutdown(10)
    heartbeat = harness.sent(10)
    assert heartbeat.body.want_shut_down
    heartbeat.complete(heartbeat_answer(fenced=False, shut_down=False), 10)
    assert harness.manager.state is BrokerState.PENDING_CONTROLLED_SHUTDOWN
    harness.sent(300).complete(heartbeat_answer(fenced=True, shut_down=True), 300)
    assert harness.manager.state is BrokerState.SHUTTING_DOWN and harness.manager.next_deadline() is None


def test_an_illegal_transition_names_state_and_event() -> None:
    harness = Harness()
    with pytest.raises(IllegalTransition, match="STARTING cannot handle the event 'unfenced'"):
        harness.manager._move(Event.UNFENCED)
