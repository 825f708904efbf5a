"""The transactional producer without I/O: the state table, error classes and the two invariants.

Each test plays the cluster by hand through a :class:`ProducerCore` with ``transactional.id``:
it takes the requests the core and its transaction manager put in the outbox and answers them.
"""

from __future__ import annotations

import pytest

from reference.client.cluster import TopicPartition
from reference.client.coordinator import ConsumerGroupMetadata
from reference.client.delivery import RecordFuture
from reference.client.exceptions import (
    ConfigException,
    ProducerFencedError,
    TransactionAbortedError,
    TransactionStateError,
)
from reference.client.outbox import OutboundRequest
from reference.client.producer_config import ProducerConfig
from reference.client.producer_core import ProducerCore
from reference.client.transaction_manager import (
    TRANSITIONS,
    Event,
    Outcome,
    TransactionManager,
    TransactionState,
    classify,
)
from reference.errors import ErrorCode, Errors, KafkaError, by_name
from reference.protocol.apis import API_BY_KEY
from reference.protocol.schema import Data
from reference.records.batch import iter_record_batches
from tests.reference.client.test_producer_core import TOPIC, metadata_answer, produce_answer

PRODUCE, METADATA, FIND_COORDINATOR, INIT_PRODUCER_ID = 0, 3, 10, 22
ADD_PARTITIONS, ADD_OFFSETS, END_TXN, TXN_OFFSET_COMMIT = 24, 25, 26, 28
TRANSACTIONAL_ID = "payments"
PRODUCER_ID = 4000
S, E = TransactionState, Event
Future = RecordFuture


def answer(api_key: int, **fields: object) -> Data:
    return API_BY_KEY[api_key].response.make(**fields)


def coordinator_answer(node_id: int = 2, error: ErrorCode = Errors.NONE) -> Data:
    coordinator = API_BY_KEY[FIND_COORDINATOR].response.struct("Coordinator")
    return answer(FIND_COORDINATOR, coordinators=[coordinator.make(
        key=TRANSACTIONAL_ID, node_id=node_id, host="127.0.0.1", port=9000 + node_id, error_code=error.code)])


def add_partitions_answer(partitions: dict[int, ErrorCode]) -> Data:
    response = API_BY_KEY[ADD_PARTITIONS].response
    topic, partition = (response.struct(n) for n in ("AddPartitionsToTxnTopicResult",
                                                     "AddPartitionsToTxnPartitionResult"))
    return response.make(results_by_topic_v3_and_below=[topic.make(name=TOPIC, results_by_partition=[
        partition.make(partition_index=p, partition_error_code=e.code) for p, e in partitions.items()])])


class Cluster:
    """Plays the brokers for one transactional core."""

    def __init__(self, **properties: object) -> None:
        config = ProducerConfig.from_properties({"bootstrap.servers": "seed:9092", "linger.ms": 0,
                                                 "transactional.id": TRANSACTIONAL_ID, **properties})
        self.core = ProducerCore(config, now_ms=0)
        assert self.core.transactions is not None
        self.manager: TransactionManager = self.core.transactions
        self.now_ms = 0
        self.waiting: list[OutboundRequest] = []

    def poll(self, advance_ms: int = 0) -> None:
        self.now_ms += advance_ms
        self.core.poll(self.now_ms)
        self.waiting += self.core.outbox.drain()

    def has(self, api_key: int) -> bool:
        return any(r.api_key == api_key for r in self.waiting)

    def take(self, api_key: int) -> OutboundRequest:
        self.poll()
        request = next((r for r in self.waiting if r.api_key == api_key), None)
        assert request is not None, f"no request {api_key} among {[r.api_key for r in self.waiting]}"
        self.waiting.remove(request)
        return request

    def reply(self, api_key: int, body: Data) -> OutboundRequest:
        request = self.take(api_key)
        request.complete(body, self.now_ms)
        self.poll()
        return request

    def initialize(self, epoch: int = 0) -> None:
        self.core.metadata.add_topics([TOPIC])
        result = self.manager.init_transactions()
        self.reply(METADATA, metadata_answer({0: 1, 1: 1}))
        self.reply(FIND_COORDINATOR, coordinator_answer())
        self.reply(INIT_PRODUCER_ID, answer(INIT_PRODUCER_ID, producer_id=PRODUCER_ID, producer_epoch=epoch))
        assert result.done() and result.exception() is None

    def send(self, value: bytes, partition: int = 0) -> Future:
        future: Future = RecordFuture()
        self.manager.check_send_allowed()
        self.core.send(TOPIC, value, None, partition, (), None, future, self.now_ms)
        return future

    def in_transaction_with_partition(self, *partitions: int) -> list[Future]:
        """READY -> IN_TRANSACTION, one record per partition, the partitions added."""
        self.manager.begin_transaction()
        futures = [self.send(b"v%d" % p, p) for p in partitions]
        self.reply(ADD_PARTITIONS, add_partitions_answer({p: Errors.NONE for p in partitions}))
        return futures


# -- the state table -----------------------------------------------------------------------------------

# The transitions of Java's TransactionManager (isTransitionValid) that refka keeps, as events: the
# specification TRANSITIONS must match.
KAFKA_TRANSITIONS = {
    (S.UNINITIALIZED, E.INIT_TRANSACTIONS): S.INITIALIZING,
    (S.INITIALIZING, E.PRODUCER_ID_RECEIVED): S.READY,
    (S.READY, E.BEGIN_TRANSACTION): S.IN_TRANSACTION,
    (S.IN_TRANSACTION, E.COMMIT_TRANSACTION): S.COMMITTING_TRANSACTION,
    (S.IN_TRANSACTION, E.ABORT_TRANSACTION): S.ABORTING_TRANSACTION,
    (S.IN_TRANSACTION, E.ABORTABLE_ERROR): S.ABORTABLE_ERROR,
    (S.COMMITTING_TRANSACTION, E.TRANSACTION_ENDED): S.READY,
    (S.COMMITTING_TRANSACTION, E.ABORTABLE_ERROR): S.ABORTABLE_ERROR,
    (S.ABORTING_TRANSACTION, E.TRANSACTION_ENDED): S.READY,
    (S.ABORTING_TRANSACTION, E.BUMP_EPOCH): S.INITIALIZING,
    (S.ABORTABLE_ERROR, E.ABORT_TRANSACTION): S.ABORTING_TRANSACTION,
    (S.ABORTABLE_ERROR, E.ABORTABLE_ERROR): S.ABORTABLE_ERROR,
    **{(state, E.FATAL_ERROR): S.FATAL_ERROR for state in TransactionState},
}
EVERY_PAIR = [(state, event) for state in TransactionState for event in Event]


@pytest.mark.parametrize(("state", "event"), EVERY_PAIR, ids=[f"{s}-{e.name}" for s, e in EVERY_PAIR])
def test_every_state_and_event_either_moves_as_in_kafka_or_raises_naming_both(state: TransactionState,
                                                                               event: Event) -> None:
    manager = Cluster().manager
    manager.state = state
    target = KAFKA_TRANSITIONS.get((state, event))
    if target is not None:
        manager._transition(event)
        assert manager.state is target
    else:
        with pytest.raises(TransactionStateError) as refused:
            manager._transition(event)
        assert str(state) in str(refused.value) and str(event) in str(refused.value)
        assert manager.state is state


def test_a_fatal_error_is_reachable_from_every_state_and_left_by_none() -> None:
    assert all(row.get(E.FATAL_ERROR) is S.FATAL_ERROR for row in TRANSITIONS.values())
    assert set(TRANSITIONS[S.FATAL_ERROR].values()) == {S.FATAL_ERROR}


def test_the_happy_path_visits_the_states_in_kafkas_order() -> None:
    cluster = Cluster()
    seen = [cluster.manager.state]
    cluster.initialize()
    seen.append(cluster.manager.state)
    cluster.in_transaction_with_partition(0)
    seen.append(cluster.manager.state)
    result = cluster.manager.begin_commit()
    seen.append(cluster.manager.state)
    cluster.reply(PRODUCE, produce_answer({0: (0, 0)}))
    cluster.reply(END_TXN, answer(END_TXN, error_code=0))
    seen.append(cluster.manager.state)
    assert result.done() and result.exception() is None
    assert seen == [S.UNINITIALIZED, S.READY, S.IN_TRANSACTION, S.COMMITTING_TRANSACTION, S.READY]


# -- the protocol --------------------------------------------------------------------------------------


def test_init_transactions_finds_the_coordinator_by_transactional_id_then_asks_it_for_a_producer_id() -> None:
    cluster = Cluster(**{"transaction.timeout.ms": 12345})
    cluster.core.metadata.add_topics([TOPIC])
    cluster.manager.init_transactions()
    cluster.reply(METADATA, metadata_answer({0: 1}))
    lookup = cluster.take(FIND_COORDINATOR)
    assert (lookup.body.key_type, lookup.body.coordinator_keys) == (1, [TRANSACTIONAL_ID])
    lookup.complete(coordinator_answer(node_id=2), cluster.now_ms)
    init = cluster.take(INIT_PRODUCER_ID)
    assert init.destination == 2
    assert (init.body.transactional_id, init.body.transaction_timeout_ms) == (TRANSACTIONAL_ID, 12345)
    init.complete(answer(INIT_PRODUCER_ID, producer_id=PRODUCER_ID, producer_epoch=3), cluster.now_ms)
    assert (cluster.core.producer_id, cluster.core.producer_epoch) == (PRODUCER_ID, 3)
    assert cluster.manager.state is S.READY


def test_no_batch_of_a_partition_is_sent_before_add_partitions_to_txn_added_it() -> None:
    cluster = Cluster()
    cluster.initialize()
    cluster.manager.begin_transaction()
    cluster.send(b"first")
    cluster.poll(advance_ms=10)
    add = cluster.take(ADD_PARTITIONS)
    assert not cluster.has(PRODUCE)
    assert [(t.name, list(t.partitions)) for t in add.body.v3_and_below_topics] == [(TOPIC, [0])]
    assert add.version == 3 and add.destination == 2
    add.complete(add_partitions_answer({0: Errors.NONE}), cluster.now_ms)
    produce = cluster.take(PRODUCE)
    assert produce.body.transactional_id == TRANSACTIONAL_ID and produce.version == 11
    batch = next(iter_record_batches(produce.body.topic_data[0].partition_data[0].records))
    assert batch.is_transactional and batch.producer_id == PRODUCER_ID


def test_end_txn_is_sent_only_after_every_batch_of_the_transaction_is_acknowledged() -> None:
    cluster = Cluster()
    cluster.initialize()
    (future,) = cluster.in_transaction_with_partition(0)
    produce = cluster.take(PRODUCE)
    result = cluster.manager.begin_commit()
    cluster.poll(advance_ms=1000)
    assert not cluster.has(END_TXN)
    produce.complete(produce_answer({0: (0, 7)}), cluster.now_ms)
    end = cluster.take(END_TXN)
    assert future.result(0).offset == 7
    assert (end.body.committed, end.body.producer_id, end.version) == (True, PRODUCER_ID, 4)
    end.complete(answer(END_TXN, error_code=0), cluster.now_ms)
    assert result.done() and result.exception() is None


def test_an_empty_transaction_ends_without_end_txn() -> None:
    cluster = Cluster()
    cluster.initialize()
    cluster.manager.begin_transaction()
    result = cluster.manager.begin_commit()
    cluster.poll()
    assert result.done() and not cluster.has(END_TXN) and cluster.manager.state is S.READY


def test_offsets_go_through_add_offsets_to_txn_then_txn_offset_commit_at_the_group_coordinator() -> None:
    cluster = Cluster()
    cluster.initialize()
    cluster.manager.begin_transaction()
    group = ConsumerGroupMetadata("readers", generation_id=4, member_id="m-1")
    result = cluster.manager.send_offsets_to_transaction({TopicPartition(TOPIC, 0): 42}, group)
    add = cluster.take(ADD_OFFSETS)
    assert (add.body.group_id, add.destination) == ("readers", 2)
    add.complete(answer(ADD_OFFSETS, error_code=0), cluster.now_ms)
    lookup = cluster.take(FIND_COORDINATOR)
    assert (lookup.body.key_type, lookup.body.coordinator_keys) == (0, ["readers"])
    lookup.complete(coordinator_answer(node_id=1), cluster.now_ms)
    commit = cluster.take(TXN_OFFSET_COMMIT)
    assert commit.destination == 1 and commit.version == 4
    assert (commit.body.generation_id, commit.body.member_id) == (4, "m-1")
    assert [(p.partition_index, p.committed_offset) for p in commit.body.topics[0].partitions] == [(0, 42)]
    assert not result.done()  # done only once the group coordinator has the offsets
    response = API_BY_KEY[TXN_OFFSET_COMMIT].response
    commit.complete(response.make(topics=[response.struct("TxnOffsetCommitResponseTopic").make(
        name=TOPIC, partitions=[response.struct("TxnOffsetCommitResponsePartition").make(
            partition_index=0, error_code=0)])]), cluster.now_ms)
    assert result.done() and result.exception() is None
    cluster.manager.begin_commit()
    assert cluster.take(END_TXN).body.committed is True  # the group was added: EndTxn is due


# -- errors, by who can do what about them ---------------------------------------------------------------


@pytest.mark.parametrize(("error", "outcome"), [
    (Errors.COORDINATOR_LOAD_IN_PROGRESS, Outcome.RETRY),
    (Errors.CONCURRENT_TRANSACTIONS, Outcome.RETRY),
    (Errors.NOT_COORDINATOR, Outcome.FIND_COORDINATOR),
    (Errors.COORDINATOR_NOT_AVAILABLE, Outcome.FIND_COORDINATOR),
    (Errors.PRODUCER_FENCED, Outcome.FATAL),
    (Errors.INVALID_PRODUCER_EPOCH, Outcome.FATAL),
    (Errors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, Outcome.FATAL),
    (Errors.INVALID_TXN_STATE, Outcome.FATAL),
    (Errors.TRANSACTION_ABORTABLE, Outcome.ABORTABLE),
    (by_name["TOPIC_AUTHORIZATION_FAILED"], Outcome.ABORTABLE),
])
def test_coordinator_errors_are_classified_as_kafka_does(error: ErrorCode, outcome: Outcome) -> None:
    assert classify(error) is outcome


def test_concurrent_transactions_is_retried_after_the_backoff_and_not_before() -> None:
    cluster = Cluster(**{"retry.backoff.ms": 100})
    cluster.initialize()
    cluster.manager.begin_transaction()
    cluster.send(b"x")
    cluster.reply(ADD_PARTITIONS, add_partitions_answer({0: Errors.CONCURRENT_TRANSACTIONS}))
    cluster.poll(advance_ms=99)
    assert not cluster.has(ADD_PARTITIONS) and not cluster.has(PRODUCE)
    cluster.poll(advance_ms=1)
    assert cluster.has(ADD_PARTITIONS) and cluster.manager.state is S.IN_TRANSACTION


def test_not_coordinator_sends_the_producer_to_find_its_coordinator_again() -> None:
    cluster = Cluster()
    cluster.initialize()
    cluster.manager.begin_transaction()
    cluster.send(b"x")
    cluster.reply(ADD_PARTITIONS, add_partitions_answer({0: Errors.NOT_COORDINATOR}))
    cluster.poll(advance_ms=1000)
    cluster.reply(FIND_COORDINATOR, coordinator_answer(node_id=1))
    assert cluster.take(ADD_PARTITIONS).destination == 1


@pytest.mark.parametrize("error", [Errors.PRODUCER_FENCED, Errors.INVALID_PRODUCER_EPOCH,
                                   Errors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED])
def test_a_fatal_answer_to_end_txn_fails_the_commit_and_every_later_call(error: ErrorCode) -> None:
    cluster = Cluster()
    cluster.initialize()
    cluster.in_transaction_with_partition(0)
    result = cluster.manager.begin_commit()
    cluster.reply(PRODUCE, produce_answer({0: (0, 0)}))
    cluster.reply(END_TXN, answer(END_TXN, error_code=error.code))
    failure = result.exception(0)
    assert isinstance(failure, KafkaError) and failure.error is error
    assert isinstance(failure, ProducerFencedError) == (error is not Errors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    assert cluster.manager.state is S.FATAL_ERROR
    with pytest.raises(KafkaError):
        cluster.manager.begin_transaction()
    with pytest.raises(KafkaError):
        cluster.manager.check_send_allowed()


def test_produce_fenced_is_fatal_but_invalid_producer_epoch_from_a_leader_is_abortable() -> None:
    fenced, expired = Cluster(), Cluster()
    for cluster, error in ((fenced, Errors.PRODUCER_FENCED), (expired, Errors.INVALID_PRODUCER_EPOCH)):
        cluster.initialize()
        cluster.in_transaction_with_partition(0)
        cluster.reply(PRODUCE, produce_answer({0: (error.code, -1)}))
    assert fenced.manager.state is S.FATAL_ERROR
    assert isinstance(fenced.manager.last_error, ProducerFencedError)
    assert expired.manager.state is S.ABORTABLE_ERROR  # KIP-588: the coordinator timed the transaction out


def test_after_an_abortable_error_commit_raises_and_abort_fails_unsent_records_then_bumps_the_epoch() -> None:
    cluster = Cluster()
    cluster.initialize(epoch=5)
    (failed,) = cluster.in_transaction_with_partition(0)
    cluster.reply(PRODUCE, produce_answer({0: (Errors.INVALID_RECORD.code, -1)}))
    assert cluster.manager.state is S.ABORTABLE_ERROR
    with pytest.raises(KafkaError) as refused:
        cluster.manager.begin_commit()
    assert refused.value.error is Errors.INVALID_RECORD
    assert cluster.manager.state is S.ABORTABLE_ERROR  # unchanged by the refusal
    unsent: Future = RecordFuture()
    cluster.core.send(TOPIC, b"late", None, 1, (), None, unsent, cluster.now_ms)  # queued behind the error
    result = cluster.manager.begin_abort()
    cluster.poll()
    assert isinstance(unsent.exception(0), KafkaError) and unsent.exception(0).error is Errors.INVALID_RECORD
    assert not cluster.has(PRODUCE)
    end = cluster.take(END_TXN)
    assert end.body.committed is False
    end.complete(answer(END_TXN, error_code=0), cluster.now_ms)
    # KIP-360: the failed batch had sequence 0, so the next transaction needs a new epoch first.
    bump = cluster.take(INIT_PRODUCER_ID)
    assert (bump.body.producer_id, bump.body.producer_epoch) == (PRODUCER_ID, 5)
    assert not result.done() and cluster.manager.state is S.INITIALIZING
    bump.complete(answer(INIT_PRODUCER_ID, producer_id=PRODUCER_ID, producer_epoch=6), cluster.now_ms)
    assert result.done() and result.exception() is None and cluster.manager.state is S.READY
    assert isinstance(failed.exception(0), KafkaError)
    # The next transaction starts clean: its own abort is a plain one, not the old error again.
    cluster.manager.begin_transaction()
    fresh = cluster.send(b"fresh", partition=1)
    cluster.manager.begin_abort()
    cluster.poll()
    assert isinstance(fresh.exception(0), TransactionAbortedError)


def test_send_outside_a_transaction_is_refused_by_name() -> None:
    cluster = Cluster()
    cluster.initialize()
    with pytest.raises(TransactionStateError, match="cannot send in state READY"):
        cluster.manager.check_send_allowed()


@pytest.mark.parametrize("conflict", [{"enable.idempotence": "false"}, {"acks": "1"},
                                      {"max.in.flight.requests.per.connection": "6"}])
def test_a_transactional_id_requires_idempotence_and_refuses_what_conflicts_with_it(conflict: dict[str, str]) -> None:
    with pytest.raises(ConfigException):
        ProducerConfig.from_properties({"bootstrap.servers": "seed:9092", "transactional.id": "t", **conflict})
    quietly = ProducerConfig.from_properties({"bootstrap.servers": "seed:9092", **conflict})
    assert not quietly.idempotence  # without a transactional id the same settings only switch it off


def test_abort_fails_records_not_yet_sent_with_transaction_aborted() -> None:
    cluster = Cluster()
    cluster.initialize()
    cluster.in_transaction_with_partition(0)
    sent = cluster.take(PRODUCE)
    unsent = cluster.send(b"never sent", partition=0)  # behind the batch in flight
    result = cluster.manager.begin_abort()
    cluster.poll()
    assert isinstance(unsent.exception(0), TransactionAbortedError)
    assert not cluster.has(END_TXN)  # the batch on the wire must be answered first
    sent.complete(produce_answer({0: (0, 0)}), cluster.now_ms)
    cluster.reply(END_TXN, answer(END_TXN, error_code=0))
    assert result.done() and cluster.manager.state is S.READY
