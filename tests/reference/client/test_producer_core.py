"""The sans-IO producer core against a scripted broker: routing, retries, sequences, epoch bumps.

Each test plays the broker by hand: it takes the requests the core put in its outbox and answers
them with response bodies built from refka's schemas, at times it chooses.
"""

from __future__ import annotations

import uuid

import pytest

from reference.client.cluster import TopicPartition
from reference.client.delivery import RecordFuture, RecordMetadata
from reference.client.exceptions import ConfigException, NodeDisconnectedError, RequestTimedOutError
from reference.client.outbox import OutboundRequest
from reference.client.producer_config import ProducerConfig
from reference.client.producer_core import ProducerCore
from reference.errors import Errors, KafkaError
from reference.protocol.apis import API_BY_KEY
from reference.protocol.schema import Data
from reference.records.batch import RecordBatch, iter_record_batches

METADATA, PRODUCE, INIT_PRODUCER_ID = API_BY_KEY[3], API_BY_KEY[0], API_BY_KEY[22]
TOPIC = "orders"
TOPIC_ID = uuid.UUID(int=42)
PRODUCER_ID = 1000
Future = RecordFuture


def metadata_answer(leaders: dict[int, int], epoch: int = 0, topic_error: int = 0) -> Data:
    response = METADATA.response
    broker, topic, partition = (response.struct(n) for n in
                                ("MetadataResponseBroker", "MetadataResponseTopic", "MetadataResponsePartition"))
    partitions = [partition.make(partition_index=p, leader_id=leader, leader_epoch=epoch,
                                 replica_nodes=[1, 2], isr_nodes=[1, 2]) for p, leader in leaders.items()]
    return response.make(
        brokers=[broker.make(node_id=n, host="127.0.0.1", port=9000 + n) for n in (1, 2)],
        topics=[topic.make(error_code=topic_error, name=TOPIC, topic_id=TOPIC_ID,
                           partitions=[] if topic_error else partitions)])


def produce_answer(results: dict[int, tuple[int, int]], hint: tuple[int, int] | None = None) -> Data:
    """``results``: partition -> (error code, base offset)."""
    response = PRODUCE.response
    topic, partition, leader = (response.struct(n) for n in
                                ("TopicProduceResponse", "PartitionProduceResponse", "LeaderIdAndEpoch"))
    answers = []
    for index, (error_code, base_offset) in results.items():
        answer = partition.make(index=index, error_code=error_code, base_offset=base_offset)
        if hint is not None:
            answer.current_leader = leader.make(leader_id=hint[0], leader_epoch=hint[1])
        answers.append(answer)
    return response.make(responses=[topic.make(name=TOPIC, topic_id=TOPIC_ID, partition_responses=answers)])


class ScriptedBroker:
    """Plays the cluster for one core: hands out its requests and answers them."""

    def __init__(self, **properties: object) -> None:
        config = ProducerConfig.from_properties({"bootstrap.servers": "seed:9092", "linger.ms": 0, **properties})
        self.core = ProducerCore(config, now_ms=0)
        self.now_ms = 0
        self.waiting: list[OutboundRequest] = []

    def send(self, value: bytes, partition: int | None = 0, key: bytes | None = None) -> Future:
        future: Future = RecordFuture()
        self.core.send(TOPIC, value, key, partition, (), None, future, self.now_ms)
        return future

    def poll(self, advance_ms: int = 0) -> None:
        self.now_ms += advance_ms
        self.core.poll(self.now_ms)
        self.waiting += self.core.outbox.drain()

    def take(self, api_key: int) -> OutboundRequest:
        request = next(r for r in self.waiting if r.api_key == api_key)
        self.waiting.remove(request)
        return request

    def has(self, api_key: int) -> bool:
        return any(r.api_key == api_key for r in self.waiting)

    def start(self, leaders: dict[int, int] | None = None, leader_epoch: int = 0) -> None:
        """Answer the first Metadata and (if idempotent) InitProducerId."""
        self.core.metadata.add_topics([TOPIC])
        self.poll()
        self.take(3).complete(metadata_answer(leaders or {0: 1, 1: 1}, leader_epoch), self.now_ms)
        if self.core.config.idempotence:
            self.take(22).complete(INIT_PRODUCER_ID.response.make(producer_id=PRODUCER_ID, producer_epoch=0),
                                   self.now_ms)


def batches_of(request: OutboundRequest) -> dict[int, RecordBatch]:
    (topic,) = request.body.topic_data
    return {p.index: next(iter_record_batches(p.records)) for p in topic.partition_data}


def error_of(future: Future) -> KafkaError:
    error = future.exception(timeout=0)
    assert isinstance(error, KafkaError), error
    return error


def test_each_partition_numbers_its_batches_from_zero_by_record_count() -> None:
    broker = ScriptedBroker()
    broker.start()
    broker.send(b"a")
    broker.send(b"b")
    broker.send(b"c", partition=1)
    broker.poll()
    first = broker.take(0)
    assert {p: (b.producer_id, b.base_sequence, len(b.records)) for p, b in batches_of(first).items()} == {
        0: (PRODUCER_ID, 0, 2), 1: (PRODUCER_ID, 0, 1)}
    first.complete(produce_answer({0: (0, 10), 1: (0, 20)}), broker.now_ms)
    broker.send(b"d")
    broker.poll()
    assert batches_of(broker.take(0))[0].base_sequence == 2


def test_a_lost_answer_is_resent_byte_for_byte_and_a_duplicate_answer_completes_the_record() -> None:
    broker = ScriptedBroker()
    broker.start()
    future = broker.send(b"once")
    broker.poll()
    sent = broker.take(0)
    original = sent.body.topic_data[0].partition_data[0].records
    sent.fail(RequestTimedOutError("the answer was lost"), broker.now_ms)
    assert not future.done()
    broker.poll(advance_ms=100)  # retry.backoff.ms
    assert not broker.has(0), "a lost request is not resent before the metadata is refreshed"
    broker.take(3).complete(metadata_answer({0: 1, 1: 1}), broker.now_ms)
    broker.poll()
    resent = broker.take(0)
    assert resent.body.topic_data[0].partition_data[0].records == original
    resent.complete(produce_answer({0: (Errors.DUPLICATE_SEQUENCE_NUMBER.code, -1)}), broker.now_ms)
    assert future.done() and future.exception() is None


def test_out_of_order_on_the_oldest_batch_fails_it_and_bumps_the_epoch() -> None:
    broker = ScriptedBroker()
    broker.start()
    lost = broker.send(b"x")
    broker.poll()
    broker.take(0).complete(produce_answer({0: (Errors.OUT_OF_ORDER_SEQUENCE_NUMBER.code, -1)}), broker.now_ms)
    assert error_of(lost).error is Errors.OUT_OF_ORDER_SEQUENCE_NUMBER
    later = broker.send(b"y")
    broker.poll()
    assert not broker.has(0), "nothing is sent under the old epoch once a bump is due"
    bump = broker.take(22)
    assert (bump.body.producer_id, bump.body.producer_epoch) == (PRODUCER_ID, 0)  # KIP-360: the current ones
    bump.complete(INIT_PRODUCER_ID.response.make(producer_id=PRODUCER_ID, producer_epoch=1), broker.now_ms)
    broker.poll()
    request = broker.take(0)
    assert (batches_of(request)[0].producer_epoch, batches_of(request)[0].base_sequence) == (1, 0)
    request.complete(produce_answer({0: (0, 5)}), broker.now_ms)
    assert later.result(timeout=0).offset == 5


def test_out_of_order_behind_a_retried_batch_is_retried_not_failed() -> None:
    broker = ScriptedBroker(**{"max.in.flight.requests.per.connection": 5, "batch.size": 100})
    broker.start()
    first, second = broker.send(b"1" * 60), broker.send(b"2" * 60)  # two batches: batch.size is small
    broker.poll()
    one = broker.take(0)
    broker.poll()
    two = broker.take(0)
    assert [batches_of(r)[0].base_sequence for r in (one, two)] == [0, 1]
    one.fail(NodeDisconnectedError(1, "connection reset"), broker.now_ms)
    two.complete(produce_answer({0: (Errors.OUT_OF_ORDER_SEQUENCE_NUMBER.code, -1)}), broker.now_ms)
    assert not second.done()
    broker.poll(advance_ms=100)
    broker.take(3).complete(metadata_answer({0: 1, 1: 1}), broker.now_ms)  # refreshed after the disconnect
    broker.poll()
    again = broker.take(0)
    assert batches_of(again)[0].base_sequence == 0
    broker.poll()
    assert not broker.has(0), "a retried batch waits until the one before it is answered"
    again.complete(produce_answer({0: (0, 7)}), broker.now_ms)
    broker.poll()
    broker.take(0).complete(produce_answer({0: (0, 8)}), broker.now_ms)
    assert (first.result(timeout=0).offset, second.result(timeout=0).offset) == (7, 8)


def test_not_leader_with_a_kip_951_hint_retries_at_the_new_leader_without_asking_for_metadata() -> None:
    broker = ScriptedBroker()
    broker.start(leaders={0: 1})
    future = broker.send(b"v")
    broker.poll()
    request = broker.take(0)
    assert request.destination == 1
    request.complete(produce_answer({0: (Errors.NOT_LEADER_OR_FOLLOWER.code, -1)}, hint=(2, 1)), broker.now_ms)
    broker.poll(advance_ms=100)
    assert not broker.has(3)
    retry = broker.take(0)
    assert retry.destination == 2
    retry.complete(produce_answer({0: (0, 3)}), broker.now_ms)
    assert future.result(timeout=0) == RecordMetadata(TOPIC, 0, 3, 0)


def test_not_leader_without_a_hint_refreshes_metadata_and_follows_the_new_leader() -> None:
    broker = ScriptedBroker()
    broker.start(leaders={0: 1})
    broker.send(b"v")
    broker.poll()
    broker.take(0).complete(produce_answer({0: (Errors.NOT_LEADER_OR_FOLLOWER.code, -1)}), broker.now_ms)
    broker.poll(advance_ms=100)
    broker.take(3).complete(metadata_answer({0: 2}, epoch=1), broker.now_ms)
    broker.poll()
    assert broker.take(0).destination == 2


def test_a_stale_metadata_answer_cannot_move_a_leader_back() -> None:
    broker = ScriptedBroker()
    broker.start(leaders={0: 2}, leader_epoch=5)
    broker.core.metadata.update(metadata_answer({0: 1}, epoch=4), broker.now_ms)
    assert broker.core.metadata.leader(TopicPartition(TOPIC, 0)) == 2


def test_a_topic_the_cluster_does_not_have_fails_with_unknown_topic_after_max_block_ms() -> None:
    broker = ScriptedBroker(**{"max.block.ms": 1000})
    future = broker.send(b"v", partition=None)
    broker.poll()
    broker.take(3).complete(metadata_answer({}, topic_error=Errors.UNKNOWN_TOPIC_OR_PARTITION.code), broker.now_ms)
    broker.poll(advance_ms=999)
    assert not future.done()
    broker.poll(advance_ms=1)
    assert error_of(future).error is Errors.UNKNOWN_TOPIC_OR_PARTITION


def test_retriable_errors_are_retried_only_within_delivery_timeout_ms() -> None:
    broker = ScriptedBroker(**{"delivery.timeout.ms": 40_000, "request.timeout.ms": 30_000})
    broker.start()
    future = broker.send(b"v")
    broker.poll()
    broker.take(0).complete(produce_answer({0: (Errors.NOT_ENOUGH_REPLICAS.code, -1)}), broker.now_ms)
    broker.poll(advance_ms=100)
    broker.take(0).fail(RequestTimedOutError("no answer"), broker.now_ms + 40_000)
    assert isinstance(future.exception(timeout=0), RequestTimedOutError)


def test_acks_zero_resolves_records_without_offsets() -> None:
    broker = ScriptedBroker(acks=0)
    broker.start()
    future = broker.send(b"v")
    broker.poll()
    request = broker.take(0)
    assert request.body.acks == 0 and batches_of(request)[0].producer_id == -1
    request.complete(PRODUCE.response.make(), broker.now_ms)  # what the transport delivers for acks=0
    assert future.result(timeout=0).offset == -1


def test_a_record_larger_than_max_request_size_fails_at_once() -> None:
    broker = ScriptedBroker(**{"max.request.size": 100})
    assert error_of(broker.send(b"v" * 200)).error is Errors.MESSAGE_TOO_LARGE


@pytest.mark.parametrize("properties, message", [
    ({"acks": "2"}, "acks"),
    ({"enable.idempotence": "true", "acks": "1"}, "idempotent"),
    ({"compression.type": "brotli"}, "compression.type"),
    ({"linger.ms": "soon"}, "linger.ms"),
    ({"partitioner": "mod"}, "partitioner"),
    ({"bootstrap.servers": "nohost"}, "HOST:PORT"),
    ({"delivery.timeout.ms": "1000"}, "delivery.timeout.ms"),
])
def test_bad_configuration_is_a_config_exception_naming_the_property(properties: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigException, match=message) as raised:
        ProducerConfig.from_properties({"bootstrap.servers": "h:1", **properties})
    assert raised.value.error is Errors.INVALID_CONFIG


def test_idempotence_left_at_its_default_is_switched_off_by_acks_1() -> None:
    assert not ProducerConfig.from_properties({"bootstrap.servers": "h:1", "acks": "1"}).idempotence
    assert ProducerConfig.from_properties({"bootstrap.servers": "h:1"}).idempotence


def test_unknown_producer_id_bumps_the_epoch_and_resends_the_batch_from_sequence_zero() -> None:
    broker = ScriptedBroker()
    broker.start()
    future = broker.send(b"v")
    broker.poll()
    broker.take(0).complete(produce_answer({0: (Errors.UNKNOWN_PRODUCER_ID.code, -1)}), broker.now_ms)
    assert not future.done(), "the broker forgot the producer; the record is not lost"
    broker.poll(advance_ms=100)
    broker.take(22).complete(INIT_PRODUCER_ID.response.make(producer_id=PRODUCER_ID, producer_epoch=1), broker.now_ms)
    broker.poll()
    request = broker.take(0)
    assert (batches_of(request)[0].producer_epoch, batches_of(request)[0].base_sequence) == (1, 0)
    request.complete(produce_answer({0: (0, 0)}), broker.now_ms)
    assert future.result(timeout=0).offset == 0


def test_a_non_retriable_topic_error_fails_the_record_at_once() -> None:
    broker = ScriptedBroker()
    future = broker.send(b"v", partition=None)
    broker.poll()
    broker.take(3).complete(metadata_answer({}, topic_error=Errors.INVALID_TOPIC_EXCEPTION.code), broker.now_ms)
    assert error_of(future).error is Errors.INVALID_TOPIC_EXCEPTION


def test_null_key_records_stick_to_one_partition_until_batch_size_bytes() -> None:
    broker = ScriptedBroker(**{"batch.size": 1000, "linger.ms": 10_000})
    broker.start(leaders={p: 1 for p in range(7)})
    for _ in range(9):  # 9 x ~121 bytes: the switch comes after the 9th record's bytes are counted
        broker.send(b"v" * 100, partition=None)
    partitions = [b.tp.partition for b in broker.core.accumulator.batches() for _ in b.records]
    assert len(partitions) == 9 and len(set(partitions)) == 1
    broker.send(b"v" * 100, partition=None)
    assert len({b.tp for b in broker.core.accumulator.batches()}) == 2, "the 10th record moved on"


def test_random_choices_follow_the_latest_metadata_to_the_partitions_that_have_a_leader() -> None:
    """The partitioner's list of partitions with a leader is kept between records; a metadata
    answer in which partition 0 lost its leader must reach the very next choice."""
    broker = ScriptedBroker(partitioner="random", **{"linger.ms": 10_000})
    broker.start(leaders={0: 1, 1: 1})
    for _ in range(40):
        broker.send(b"v", partition=None)
    assert {b.tp.partition for b in broker.core.accumulator.batches()} == {0, 1}
    broker.core.metadata.request_update()
    broker.poll(advance_ms=1000)
    broker.take(3).complete(metadata_answer({0: -1, 1: 1}, epoch=1), broker.now_ms)
    before = {b.tp.partition: len(b.records) for b in broker.core.accumulator.batches()}
    for _ in range(40):
        broker.send(b"v", partition=None)
    after = {b.tp.partition: len(b.records) for b in broker.core.accumulator.batches()}
    assert after[0] == before[0] and after[1] == before[1] + 40


def test_records_sent_before_the_metadata_wait_in_order_without_rescanning_the_queue() -> None:
    """Records sent before the topic's metadata is known wait in one queue; sending one must not walk
    the queue (50,000 sends before the first answer made that quadratic: the producer stalled past
    max.block.ms).  Once the answer arrives they go to their partitions in send order."""
    broker = ScriptedBroker(**{"enable.idempotence": False, "acks": 1})
    scans = 0
    original = broker.core._partition_waiting

    def counting(now_ms: int) -> None:
        nonlocal scans
        scans += 1
        original(now_ms)

    broker.core._partition_waiting = counting  # type: ignore[method-assign]
    futures = [broker.send(f"v{i}".encode(), partition=i % 2) for i in range(200)]
    assert scans == 0, "a send to a topic without metadata re-scanned the waiting records"
    broker.poll()
    broker.take(3).complete(metadata_answer({0: 1, 1: 1}), broker.now_ms)
    broker.poll()
    produced = broker.take(0)
    batches = batches_of(produced)
    assert [[r.value for r in batches[p].records] for p in (0, 1)] == [
        [f"v{i}".encode() for i in range(p, 200, 2)] for p in (0, 1)]
    produced.complete(produce_answer({0: (0, 0), 1: (0, 0)}), broker.now_ms)
    assert all(f.done() and f.exception(timeout=0) is None for f in futures)
