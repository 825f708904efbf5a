"""A KRaft broker forwards metadata changes to the active controller and relays its answer."""

from __future__ import annotations

from reference.client.outbox import Outbox
from reference.errors import Errors
from reference.node.forwarder import RETRY_BACKOFF_MS, ControllerForwarder
from reference.protocol.apis import API_BY_KEY
from reference.protocol.frames import Request, RequestHeader

CREATE_TOPICS = API_BY_KEY[19]


def create_topics_request(timeout_ms: int = 1000) -> Request:
    topic = CREATE_TOPICS.request.struct("CreatableTopic")
    body = CREATE_TOPICS.request.make(topics=[topic.make(name="orders", num_partitions=3, replication_factor=3,
                                                         assignments=[], configs=[])],
                                      timeout_ms=timeout_ms, validate_only=False)
    return Request(RequestHeader(19, 7, 11, "client"), CREATE_TOPICS, body)


def answer(code: int) -> object:
    result = CREATE_TOPICS.response.struct("CreatableTopicResult")
    return CREATE_TOPICS.response.make(topics=[result.make(name="orders", error_code=code, error_message=None)])


def outcome(pending: object) -> list[object]:
    seen: list[object] = []
    pending.on_done(seen.append)  # type: ignore[attr-defined]
    return seen


def test_the_request_goes_to_the_active_controller_in_the_clients_version_and_the_answer_comes_back() -> None:
    outbox = Outbox()
    forwarder = ControllerForwarder(outbox, lambda: 2)
    seen = outcome(forwarder.forward(create_topics_request(), 0))
    (sent,) = outbox.drain()
    assert (sent.destination, sent.api_key, sent.version) == (2, 19, 7)
    assert sent.body.topics[0].name == "orders"
    sent.complete(answer(Errors.NONE.code), 5)
    assert [result.topics[0].error_code for result in seen] == [Errors.NONE.code]


def test_not_controller_is_retried_at_the_next_leader_after_a_backoff() -> None:
    outbox = Outbox()
    controller = [2]
    forwarder = ControllerForwarder(outbox, lambda: controller[0])
    seen = outcome(forwarder.forward(create_topics_request(), 0))
    outbox.drain()[0].complete(answer(Errors.NOT_CONTROLLER.code), 10)
    assert seen == [] and forwarder.next_deadline() == 10 + RETRY_BACKOFF_MS
    controller[0] = 3
    forwarder.poll(10 + RETRY_BACKOFF_MS)
    (retry,) = outbox.drain()
    assert retry.destination == 3
    retry.complete(answer(Errors.TOPIC_ALREADY_EXISTS.code), 200)
    assert [result.topics[0].error_code for result in seen] == [Errors.TOPIC_ALREADY_EXISTS.code]


def test_without_a_controller_until_the_requests_timeout_every_topic_gets_request_timed_out() -> None:
    outbox = Outbox()
    forwarder = ControllerForwarder(outbox, lambda: None)
    seen = outcome(forwarder.forward(create_topics_request(timeout_ms=300), 0))
    now = 0
    while not seen and now < 10_000:
        now = forwarder.next_deadline() or now + 1
        forwarder.poll(now)
    assert len(outbox) == 0
    assert [(result.topics[0].name, result.topics[0].error_code) for result in seen] == [
        ("orders", Errors.REQUEST_TIMED_OUT.code)]
    assert now <= 300


def test_automatic_creation_sends_one_create_topics_and_does_not_wait() -> None:
    outbox = Outbox()
    forwarder = ControllerForwarder(outbox, lambda: 1)
    forwarder.create_topic("events", 0)
    forwarder.create_topic("events", 1)
    (sent,) = outbox.drain()
    assert sent.body.topics[0].name == "events" and sent.body.topics[0].num_partitions == -1
    sent.complete(answer(Errors.NONE.code), 2)
    forwarder.create_topic("events", 3)
    assert len(outbox.drain()) == 1, "after the answer a later request may ask again"
