"""Transaction APIs: AddPartitionsToTxn (24), AddOffsetsToTxn (25), EndTxn (26), WriteTxnMarkers (27),
TxnOffsetCommit (28), DescribeProducers (61), DescribeTransactions (65), ListTransactions (66).

The rules live in :mod:`reference.broker.txn.coordinator`; what the wire adds, as Kafka's
``KafkaApis`` does, checked against Apache Kafka 4.3.1 (tests/reference/broker/test_transactions_wire.py):

* PRODUCER_FENCED (90) exists from AddPartitionsToTxn v2, AddOffsetsToTxn v2 and EndTxn v2 on; older
  versions are told INVALID_PRODUCER_EPOCH (47).
* AddPartitionsToTxn up to v3 is the client's (one transaction): a partition of an unknown topic
  gets UNKNOWN_TOPIC_OR_PARTITION and then every other partition OPERATION_NOT_ATTEMPTED (55);
  otherwise the coordinator's one error is every partition's.  From v4 it is a broker's (KIP-890):
  several transactions, each verified (``VerifyOnly``) or added.
* EndTxn v5+ is transaction version 2 (KIP-890 part 2): the answer carries the producer id and
  epoch of the next transaction.
* TxnOffsetCommit goes to the group coordinator once the group's offsets partition is known to be
  in the transaction (KIP-890 verification as for Produce: INVALID_TXN_STATE before v4,
  TRANSACTION_ABORTABLE in v4, added implicitly from v5), asking the coordinator's node when it
  is another one, as for a Produce.
* DescribeTransactions answers TRANSACTIONAL_ID_NOT_FOUND (105) for an unknown id;
  ListTransactions returns the state filters it does not know in ``unknown_state_filters``;
  DescribeProducers lists each partition's producer-state table (leader only).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ...errors import ErrorCode, Errors, KafkaError
from ...protocol.apis import API_BY_KEY
from ...protocol.frames import Request
from ...protocol.schema import Data
from ..group.offsets import OffsetAndMetadata
from ..group_service import OFFSETS_TOPIC
from ..pending import Pending
from ..txn.coordinator import TRANSACTION_VERSION_2, EndTxnResult
from ..txn.state import TransactionState

if TYPE_CHECKING:
    from ..core import Broker

ADD_PARTITIONS = API_BY_KEY[24]
ADD_OFFSETS = API_BY_KEY[25]
END_TXN = API_BY_KEY[26]
WRITE_TXN_MARKERS = API_BY_KEY[27]
TXN_OFFSET_COMMIT = API_BY_KEY[28]
DESCRIBE_PRODUCERS = API_BY_KEY[61]
DESCRIBE_TRANSACTIONS = API_BY_KEY[65]
LIST_TRANSACTIONS = API_BY_KEY[66]

PRODUCER_FENCED_FROM = 2  # AddPartitionsToTxn, AddOffsetsToTxn, EndTxn
BROKER_ADD_PARTITIONS_FROM = 4  # KIP-890: the batched, broker-to-coordinator form
EPOCH_BUMP_END_TXN_FROM = 5  # KIP-890 part 2: transaction version 2
ABORTABLE_TXN_OFFSET_COMMIT_FROM = 4  # KIP-890: a failed verification is TRANSACTION_ABORTABLE
IMPLICIT_ADD_TXN_OFFSET_COMMIT_FROM = 5  # KIP-890 part 2: the offsets partition is added, not verified


def _fenced_for(version: int, error: ErrorCode, since: int = PRODUCER_FENCED_FROM) -> ErrorCode:
    return Errors.INVALID_PRODUCER_EPOCH if error is Errors.PRODUCER_FENCED and version < since else error


# -- AddPartitionsToTxn (24) -----------------------------------------------------------------------

ADD_TOPIC_RESULT = ADD_PARTITIONS.response.struct("AddPartitionsToTxnTopicResult")
ADD_PARTITION_RESULT = ADD_PARTITIONS.response.struct("AddPartitionsToTxnPartitionResult")
ADD_TXN_RESULT = ADD_PARTITIONS.response.struct("AddPartitionsToTxnResult")


def handle_add_partitions_to_txn(broker: Broker, request: Request, now_ms: int) -> Data | Pending:
    body = request.body
    if request.version >= BROKER_ADD_PARTITIONS_FROM:
        results = [_add_one_transaction(broker, txn.transactional_id, txn.producer_id, txn.producer_epoch,
                                        txn.topics, request.version, now_ms, verify_only=txn.verify_only)
                   for txn in body.transactions]
        return ADD_PARTITIONS.response.make(error_code=Errors.NONE.code, results_by_transaction=[
            ADD_TXN_RESULT.make(transactional_id=txn.transactional_id, topic_results=topics)
            for txn, topics in zip(body.transactions, results, strict=True)])
    transactional_id = body.v3_and_below_transactional_id
    error = broker.transactions.coordinator_error(transactional_id)
    topics = _add_one_transaction(broker, transactional_id, body.v3_and_below_producer_id,
                                  body.v3_and_below_producer_epoch, body.v3_and_below_topics, request.version, now_ms,
                                  refused=error)

    def answer(replicated: ErrorCode) -> Data:
        if replicated is not Errors.NONE:
            for topic in topics:
                for result in topic.results_by_partition:
                    result.partition_error_code = replicated.code
        return ADD_PARTITIONS.response.make(results_by_topic_v3_and_below=topics)

    return broker.transactions.answer_when_committed(transactional_id, Errors.NONE, answer, now_ms)


def _add_one_transaction(broker: Broker, transactional_id: str, producer_id: int, producer_epoch: int,
                         topics: list[Data], version: int, now_ms: int, verify_only: bool = False,
                         refused: ErrorCode = Errors.NONE) -> list[Data]:
    wanted = [(topic.name, partition) for topic in topics for partition in topic.partitions]
    unknown = {(name, p) for name, p in wanted if not _partition_exists(broker, name, p)}
    if refused is Errors.NONE:
        refused = broker.transactions.coordinator_error(transactional_id)
    errors: dict[tuple[str, int], ErrorCode]
    if refused is not Errors.NONE:
        errors = dict.fromkeys(wanted, refused)
    elif unknown:
        errors = {tp: Errors.UNKNOWN_TOPIC_OR_PARTITION if tp in unknown else Errors.OPERATION_NOT_ATTEMPTED
                  for tp in wanted}
    elif verify_only:
        errors = broker.transactions.coordinator.verify_partitions(transactional_id, producer_id, producer_epoch,
                                                                   wanted)
    else:
        error = broker.transactions.coordinator.add_partitions(transactional_id, producer_id, producer_epoch,
                                                               wanted, now_ms)
        errors = dict.fromkeys(wanted, error)
    by_topic: dict[str, list[Data]] = {}
    for (name, partition), error in errors.items():
        by_topic.setdefault(name, []).append(ADD_PARTITION_RESULT.make(
            partition_index=partition, partition_error_code=_fenced_for(version, error).code))
    return [ADD_TOPIC_RESULT.make(name=name, results_by_partition=results) for name, results in by_topic.items()]


def _partition_exists(broker: Broker, topic: str, partition: int) -> bool:
    registered = broker.topics.get(topic)
    return registered is not None and 0 <= partition < registered.partitions


# -- AddOffsetsToTxn (25) --------------------------------------------------------------------------


def handle_add_offsets_to_txn(broker: Broker, request: Request, now_ms: int) -> Data | Pending:
    body = request.body
    error = broker.transactions.coordinator_error(body.transactional_id)
    if error is Errors.NONE:
        broker.groups.ensure_offsets_topic()
        error = broker.transactions.coordinator.add_offsets(body.transactional_id, body.producer_id,
                                                            body.producer_epoch, body.group_id, now_ms)
    return broker.transactions.answer_when_committed(
        body.transactional_id, error,
        lambda code: ADD_OFFSETS.response.make(error_code=_fenced_for(request.version, code).code), now_ms)


# -- EndTxn (26) -----------------------------------------------------------------------------------


def handle_end_txn(broker: Broker, request: Request, now_ms: int) -> Data | Pending:
    body = request.body
    version = TRANSACTION_VERSION_2 if request.version >= EPOCH_BUMP_END_TXN_FROM else 0  # Kafka records 0 below v5
    error = broker.transactions.coordinator_error(body.transactional_id)
    result = EndTxnResult(error)
    if error is Errors.NONE:
        result = broker.transactions.coordinator.end_transaction(body.transactional_id, body.producer_id,
                                                                 body.producer_epoch, body.committed, version, now_ms)

    def answer(code: ErrorCode) -> Data:
        if code is not Errors.NONE:
            return END_TXN.response.make(error_code=_fenced_for(request.version, code).code)
        return END_TXN.response.make(error_code=code.code, producer_id=result.producer_id,
                                     producer_epoch=result.producer_epoch)

    return broker.transactions.answer_when_committed(body.transactional_id, result.error, answer, now_ms)


# -- WriteTxnMarkers (27) --------------------------------------------------------------------------

MARKER_RESULT = WRITE_TXN_MARKERS.response.struct("WritableTxnMarkerResult")
MARKER_TOPIC_RESULT = WRITE_TXN_MARKERS.response.struct("WritableTxnMarkerTopicResult")
MARKER_PARTITION_RESULT = WRITE_TXN_MARKERS.response.struct("WritableTxnMarkerPartitionResult")


def handle_write_txn_markers(broker: Broker, request: Request, now_ms: int) -> Data:
    """A coordinator's markers for partitions this broker leads (each appended on its own)."""
    results = []
    for marker in request.body.markers:
        topics = []
        for topic in marker.topics:
            partitions = []
            for index in topic.partition_indexes:
                error = broker.transactions.write_marker(topic.name, index, marker.producer_id,
                                                         marker.producer_epoch, marker.transaction_result,
                                                         marker.coordinator_epoch, now_ms)
                partitions.append(MARKER_PARTITION_RESULT.make(partition_index=index, error_code=error.code))
            topics.append(MARKER_TOPIC_RESULT.make(name=topic.name, partitions=partitions))
        results.append(MARKER_RESULT.make(producer_id=marker.producer_id, topics=topics))
    return WRITE_TXN_MARKERS.response.make(markers=results)


# -- TxnOffsetCommit (28) --------------------------------------------------------------------------

TXN_COMMIT_TOPIC = TXN_OFFSET_COMMIT.response.struct("TxnOffsetCommitResponseTopic")
TXN_COMMIT_PARTITION = TXN_OFFSET_COMMIT.response.struct("TxnOffsetCommitResponsePartition")


def handle_txn_offset_commit(broker: Broker, request: Request, now_ms: int) -> Data | Pending:
    body = request.body
    partition = broker.groups.coordinator.partition_for(body.group_id)
    implicit_add = request.version >= IMPLICIT_ADD_TXN_OFFSET_COMMIT_FROM
    abortable = request.version >= ABORTABLE_TXN_OFFSET_COMMIT_FROM
    if broker.transactions.needs_remote_verification(body.transactional_id, OFFSETS_TOPIC, partition,
                                                     body.producer_id, body.producer_epoch):
        # In a cluster the transaction's coordinator may be another node: ask it first, as for a
        # Produce.  From v5 (transaction version 2) this is what puts the offsets partition into
        # the transaction: skipped, the coordinator would end the transaction without a marker
        # there and the pending offsets would stay pending.
        answered = Pending()
        verdict = broker.transactions.verify_remotely(
            body.transactional_id, OFFSETS_TOPIC, partition, body.producer_id, body.producer_epoch,
            implicit_add=implicit_add, abortable=abortable, now_ms=now_ms)
        verdict.on_done(lambda error: answered.complete(
            _commit_transactional_offsets(broker, body, error, broker.replicas.clock.now_ms)))
        return answered
    error = broker.transactions.verify_produce(
        body.transactional_id, OFFSETS_TOPIC, partition, body.producer_id, body.producer_epoch,
        implicit_add=implicit_add, abortable=abortable, now_ms=now_ms)
    return _commit_transactional_offsets(broker, body, error, now_ms)


def _commit_transactional_offsets(broker: Broker, body: Data, error: ErrorCode, now_ms: int) -> Data:
    """The group coordinator's part, once the offsets partition is known to be in the transaction."""
    if error is Errors.NONE:
        offsets = [(topic.name, p.partition_index,
                    OffsetAndMetadata(committed_offset=p.committed_offset, leader_epoch=p.committed_leader_epoch,
                                      metadata=p.committed_metadata or "", commit_timestamp_ms=now_ms))
                   for topic in body.topics for p in topic.partitions]
        error = broker.groups.txn_offset_commit(body.group_id, body.producer_id, body.producer_epoch,
                                                body.generation_id, body.member_id, body.group_instance_id,
                                                offsets, now_ms)
    return TXN_OFFSET_COMMIT.response.make(topics=[
        TXN_COMMIT_TOPIC.make(name=topic.name, partitions=[
            TXN_COMMIT_PARTITION.make(partition_index=p.partition_index, error_code=error.code)
            for p in topic.partitions])
        for topic in body.topics])


# -- DescribeProducers (61) ------------------------------------------------------------------------

PRODUCERS_TOPIC = DESCRIBE_PRODUCERS.response.struct("TopicResponse")
PRODUCERS_PARTITION = DESCRIBE_PRODUCERS.response.struct("PartitionResponse")
PRODUCER_STATE = DESCRIBE_PRODUCERS.response.struct("ProducerState")


def handle_describe_producers(broker: Broker, request: Request, now_ms: int) -> Data:
    topics = []
    for topic in request.body.topics:
        partitions = []
        for index in topic.partition_indexes:
            answer = PRODUCERS_PARTITION.make(partition_index=index, active_producers=[])
            try:
                replica = broker.replicas.require(topic.name, index)
                replica.require_leader()
                answer.active_producers = [
                    PRODUCER_STATE.make(
                        producer_id=entry.producer_id, producer_epoch=entry.producer_epoch,
                        last_sequence=entry.last_seq, last_timestamp=entry.last_timestamp,
                        coordinator_epoch=entry.coordinator_epoch,
                        current_txn_start_offset=-1 if entry.current_txn_first_offset is None
                        else entry.current_txn_first_offset)
                    for entry in replica.log.producer_state.producers.values()]
            except KafkaError as refused:
                answer.error_code = refused.error.code
                answer.error_message = refused.message
            partitions.append(answer)
        topics.append(PRODUCERS_TOPIC.make(name=topic.name, partitions=partitions))
    return DESCRIBE_PRODUCERS.response.make(topics=topics)


# -- DescribeTransactions (65) ---------------------------------------------------------------------

DESCRIBED = DESCRIBE_TRANSACTIONS.response.struct("TransactionState")
DESCRIBED_TOPIC = DESCRIBE_TRANSACTIONS.response.struct("TopicData")


def handle_describe_transactions(broker: Broker, request: Request, now_ms: int) -> Data:
    states = []
    for transactional_id in request.body.transactional_ids:
        metadata = broker.transactions.coordinator.transactions.get(transactional_id)
        refused = broker.transactions.coordinator_error(transactional_id)
        if refused is not Errors.NONE:
            states.append(DESCRIBED.make(transactional_id=transactional_id, error_code=refused.code, topics=[]))
        elif metadata is None or metadata.state is TransactionState.DEAD:
            states.append(DESCRIBED.make(transactional_id=transactional_id,
                                         error_code=Errors.TRANSACTIONAL_ID_NOT_FOUND.code, topics=[]))
        else:
            by_topic: dict[str, list[int]] = {}
            for name, partition in sorted(metadata.partitions):
                by_topic.setdefault(name, []).append(partition)
            states.append(DESCRIBED.make(
                transactional_id=transactional_id, transaction_state=metadata.state.state_name,
                transaction_timeout_ms=metadata.timeout_ms, transaction_start_time_ms=metadata.start_timestamp_ms,
                producer_id=metadata.producer_id, producer_epoch=metadata.producer_epoch,
                topics=[DESCRIBED_TOPIC.make(topic=name, partitions=ids) for name, ids in by_topic.items()]))
    return DESCRIBE_TRANSACTIONS.response.make(transaction_states=states)


# -- ListTransactions (66) -------------------------------------------------------------------------

LISTED = LIST_TRANSACTIONS.response.struct("TransactionState")


def handle_list_transactions(broker: Broker, request: Request, now_ms: int) -> Data:
    body = request.body
    states = {TransactionState.from_name(name) for name in body.state_filters} - {None}
    unknown = [name for name in body.state_filters if TransactionState.from_name(name) is None]
    producer_ids = set(body.producer_id_filters)
    duration = body.get("duration_filter", -1)
    pattern = body.get("transactional_id_pattern")
    matcher = re.compile(pattern) if pattern else None
    listed = []
    for metadata in broker.transactions.coordinator.transactions.values():
        if metadata.state is TransactionState.DEAD:
            continue
        if states and metadata.state not in states:
            continue
        if producer_ids and metadata.producer_id not in producer_ids:
            continue
        if duration >= 0 and (metadata.start_timestamp_ms < 0 or now_ms - metadata.start_timestamp_ms < duration):
            continue
        if matcher is not None and not matcher.fullmatch(metadata.transactional_id):
            continue
        listed.append(LISTED.make(transactional_id=metadata.transactional_id, producer_id=metadata.producer_id,
                                  transaction_state=metadata.state.state_name))
    return LIST_TRANSACTIONS.response.make(error_code=Errors.NONE.code, unknown_state_filters=unknown,
                                           transaction_states=listed)
