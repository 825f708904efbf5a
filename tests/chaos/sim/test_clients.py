"""The simulated idempotent producer keeps Kafka's producer rules (chaos/sim/clients.py), driven
without a cluster: its outbox is read, and its requests are answered or failed by hand."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import cast

from chaos.history import HistoryWriter
from chaos.sim.clients import MAX_IN_FLIGHT, PRODUCE, SimClock, SimProducer
from reference.client.outbox import OutboundRequest
from reference.errors import Errors
from reference.protocol.schema import Data
from reference.records.batch import iter_batches

LEADER = 0


def _producer(now: list[int]) -> SimProducer:
    history = HistoryWriter(None, clock=SimClock(lambda: now[0]))
    producer = SimProducer("p", "t", 1, [LEADER], random.Random(1), history, acks=-1, idempotent=True,
                           producer_id=7, producer_epoch=0, max_in_flight=MAX_IN_FLIGHT)
    producer.metadata.leaders, producer.metadata.stale = {0: LEADER}, False
    return producer


def _past_the_first_batch(producer: SimProducer) -> None:
    """Send the epoch's first batch (it goes alone), answer it at offset 0, and let the rest go."""
    producer.poll(0)
    _answer(_sent(producer)[0][0], offset=0)
    producer.poll(10)


def _sends(producer: SimProducer, count: int) -> None:
    for _ in range(count):
        producer._invoke(0)


def _sent(producer: SimProducer) -> list[tuple[OutboundRequest, int, int]]:
    """The Produce requests in the outbox: (request, producer epoch, base sequence)."""
    sent = []
    for request in producer.outbox.drain():
        if request.api_key != PRODUCE.key:
            continue  # a Metadata refresh after a failure
        records = request.body.topic_data[0].partition_data[0].records
        (_, header), = iter_batches(records)
        sent.append((request, header.producer_epoch, header.base_sequence))
    return sent


def _completed(producer: SimProducer) -> list[str]:
    """The values of the sends the history says were acknowledged, in the order it says so."""
    return [event.value["value"] for event in producer.history.events if event.f == "send" and event.type == "ok"]


def _answer(request: OutboundRequest, error: int = 0, offset: int = -1, now_ms: int = 0) -> None:
    partition = SimpleNamespace(error_code=error, base_offset=offset)
    answer = SimpleNamespace(responses=[SimpleNamespace(partition_responses=[partition])])
    request.complete(cast(Data, answer), now_ms)


def test_the_first_batch_goes_alone_then_five_batches_fly_with_consecutive_sequences() -> None:
    now = [0]
    producer = _producer(now)
    _sends(producer, 8)
    producer.poll(0)
    first = _sent(producer)
    assert [(epoch, sequence) for _, epoch, sequence in first] == [(0, 0)]
    producer.poll(10)
    assert _sent(producer) == [], "nothing follows the first batch of an epoch until it is answered"
    _answer(first[0][0], offset=0)
    producer.poll(20)
    assert [sequence for _, _, sequence in _sent(producer)] == [1, 2, 3, 4, 5]


def test_a_retry_keeps_its_epoch_and_sequence_and_goes_alone() -> None:
    now = [0]
    producer = _producer(now)
    _sends(producer, 6)
    _past_the_first_batch(producer)
    in_flight = _sent(producer)
    in_flight[0][0].fail(TimeoutError("no answer"), 20)  # sequence 1: outcome unknown
    producer.poll(20 + 1_000)
    assert [(epoch, sequence) for _, epoch, sequence in _sent(producer)] == [(0, 1)]
    assert _completed(producer) == ["p-0"]


def test_answers_that_overtake_each_other_complete_in_send_order() -> None:
    now = [0]
    producer = _producer(now)
    _sends(producer, 3)
    _past_the_first_batch(producer)
    second, third = (request for request, _, _ in _sent(producer))
    _answer(third, offset=2)
    assert _completed(producer) == ["p-0"], "the later answer waits for the earlier"
    _answer(second, offset=1)
    assert _completed(producer) == ["p-0", "p-1", "p-2"]
    assert [(ack.value, ack.offset, ack.sequence) for ack in producer.acknowledged] == [
        ("p-0", 0, 0), ("p-2", 2, 2), ("p-1", 1, 1)], "the invariants hear of each answer as it arrives"


def test_the_oldest_batch_refused_out_of_order_bumps_the_epoch_and_numbers_again_from_zero() -> None:
    """KIP-360: the broker has a gap before the oldest unanswered batch; a later batch refused so
    only waits for an earlier one, and does not bump."""
    now = [0]
    producer = _producer(now)
    _sends(producer, 3)
    _past_the_first_batch(producer)
    second, third = (request for request, _, _ in _sent(producer))
    _answer(third, error=Errors.OUT_OF_ORDER_SEQUENCE_NUMBER.code)
    assert not any(state.needs_bump for state in producer.state.values())
    _answer(second, error=Errors.OUT_OF_ORDER_SEQUENCE_NUMBER.code)
    producer.poll(1_000)
    assert producer.producer_epoch == 1
    assert [e.f for e in producer.history.events].count("epoch-bump") == 1
    producer.poll(1_010)
    assert [(epoch, sequence) for _, epoch, sequence in _sent(producer)] == [(1, 0)]


def test_a_superseded_instance_retries_what_it_numbered_and_stops_when_fenced() -> None:
    now = [0]
    producer = _producer(now)
    _sends(producer, 2)
    producer.poll(0)
    (first, _, _), = _sent(producer)
    producer.replaced()
    first.fail(TimeoutError("no answer"), 10)
    producer.poll(1_000)
    (retry, epoch, sequence), = _sent(producer)
    assert (epoch, sequence) == (0, 0), "the zombie retries its batch unchanged, and numbers no new one"
    _answer(retry, error=Errors.INVALID_PRODUCER_EPOCH.code)
    assert producer.fenced and producer.outstanding == 0
    producer.poll(2_000)
    assert _sent(producer) == []
