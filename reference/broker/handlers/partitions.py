"""Partition data APIs: Produce (0), Fetch (1), ListOffsets (2), DeleteRecords (21),
OffsetForLeaderEpoch (23).

Produce, as Kafka's ``KafkaApis.handleProduceRequest`` and ``ReplicaManager.appendRecords``:

* ``acks`` must be -1 (all in-sync replicas), 0 or 1, else every partition gets
  INVALID_REQUIRED_ACKS.  With ``acks=0`` nothing is answered: a request whose every partition
  succeeded gets no response, and one in which any partition failed (or that is refused whole)
  closes the connection, the only way left to tell the client (``KafkaApis`` "closing connection
  due to error during produce request ... with ack=0"; ``ProduceRequest.getErrorResponse`` is null
  for acks=0).
* Transactions: a request carrying a transactional batch without a ``transactional_id`` is
  refused whole, TRANSACTIONAL_ID_AUTHORIZATION_FAILED (53) for every partition, as Kafka's
  ``KafkaApis`` does.  A transactional batch is appended only if its partition is in the
  producer's open transaction (KIP-890 part 1 verification, ``TransactionService.verify_produce``:
  INVALID_TXN_STATE otherwise, TRANSACTION_ABORTABLE from v11); from Produce v12 (transaction
  version 2) the partition is added instead of verified.
* Each partition is judged on its own: unknown topic or partition (UNKNOWN_TOPIC_OR_PARTITION,
  or UNKNOWN_TOPIC_ID in v13+), a client writing to an internal topic (INVALID_TOPIC_EXCEPTION),
  ``acks=-1`` with fewer in-sync replicas than ``min.insync.replicas`` (NOT_ENOUGH_REPLICAS, nothing
  appended), then record validation and the producer-state check.  A duplicate of one of the last
  five batches of its producer is answered with success and the offsets it was first given.
* ``base_offset`` is the first offset assigned, ``log_append_time_ms`` is -1 unless the topic uses
  LogAppendTime, ``log_start_offset`` (v5+) is the partition's low watermark.  v8+ carries per-record
  errors (``record_errors``) and an ``error_message``, both only when records were judged one by
  one (Kafka's ``RecordValidationException``, the one case ``LogAppendResult`` marks
  ``hasCustomErrorMessage``); every other refusal (a bad batch header, a magic 0/1 message set, an
  unknown partition, ...) has ``error_message`` null.
* A broker that follows the partition answers NOT_LEADER_OR_FOLLOWER.  With ``acks=-1`` the answer
  waits (Kafka's ``DelayedProduce``, in ``replicas.produce_purgatory``) until the high watermark
  passes the last offset written to every partition that succeeded
  (``Partition.check_enough_replicas_reach_offset``): NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR
  is then below ``min.insync.replicas``, NOT_LEADER_OR_FOLLOWER if leadership moved meanwhile,
  REQUEST_TIMED_OUT for partitions still waiting after ``timeout_ms``.  The offsets are those the
  append assigned, whatever the error.  With one replica the HW is already there: no wait.

Fetch, as Kafka's ``KafkaApis.handleFetchRequest`` and ``ReplicaManager.fetchMessages``:

* Sessions (KIP-227, :mod:`reference.broker.fetch_session`): the request first becomes a fetch
  context from its ``session_id`` and ``session_epoch``.  A session error (FETCH_SESSION_ID_NOT_FOUND,
  INVALID_FETCH_SESSION_EPOCH, FETCH_SESSION_TOPIC_ID_ERROR) is answered at once with no
  partitions; otherwise the context says which partitions to read (an incremental fetch reads every
  partition of its session with the parameters cached there) and, once read, which to answer (an
  incremental response leaves out partitions with nothing new; a full fetch creates a session if
  the cache has room and answers its id, else 0).  Followers' sessions are privileged in the cache.
* Partitions the cluster metadata lacks are answered without a read (UNKNOWN_TOPIC_ID for an
  unknown id, UNKNOWN_TOPIC_OR_PARTITION otherwise), after the partitions read; they do not end a
  wait early.  A request with nothing left to read is answered at once.
* Per partition: the epoch check (KIP-320: a ``current_leader_epoch`` above ours is
  UNKNOWN_LEADER_EPOCH, below ours FENCED_LEADER_EPOCH), OFFSET_OUT_OF_RANGE outside
  ``[log start, log end]``, then whole stored batches below the high watermark (read_uncommitted)
  or the last stable offset (read_committed).  A consumer older than v11 must fetch from the leader
  (NOT_LEADER_OR_FOLLOWER); v11+ may read a follower up to its HW (KIP-392).
* A follower's fetch (``ReplicaState.ReplicaId`` >= 0 from v15, ``ReplicaId`` before) goes to the
  leader only (NOT_LEADER_OR_FOLLOWER), after the epoch check; from a broker not among the
  replicas it gets UNKNOWN_LEADER_EPOCH (NOT_LEADER_OR_FOLLOWER without an epoch).  It reads up to
  the log end offset, or gets a ``DivergingEpoch`` when its ``LastFetchedEpoch`` ends below its
  fetch offset here (KIP-595, ``Partition.read_for_follower``).  When the request arrives (not
  when a parked one is re-read) the leader records the follower's fetch offset, log start offset
  and broker epoch, which may grow the ISR and move the HW.
* Sizes: each partition reads at most ``partition_max_bytes`` and the response at most
  ``max_bytes``, except that the first partition with data returns at least one whole batch even if
  it is larger (so a consumer can always make progress).
* Waiting: if fewer than ``min_bytes`` are available and no partition has an error or a
  diverging epoch, the request is parked until enough data arrives (any append to one of its
  partitions, or a move of its HW, re-checks it) or ``max_wait_ms`` passes, then answered with
  what there is -- followers long-poll the same way.

ListOffsets (except for the debugging replica id -2) and OffsetForLeaderEpoch are answered by the
leader only (NOT_LEADER_OR_FOLLOWER), as Kafka's ``fetchOnlyFromLeader``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeGuard

from ... import guards
from ...errors import ErrorCode, Errors, KafkaError, lookup
from ...protocol.apis import API_BY_KEY
from ...protocol.frames import Request
from ...protocol.schema import Data, Struct
from ...records.batch import NO_PRODUCER_ID, RECORD_BATCH_OVERHEAD, BatchHeader
from ...records.decode_errors import RecordsDecodeError
from ...records.validation import RecordValidationError
from ..cluster_view import PartitionView
from ..core import NO_RESPONSE, CloseConnection
from ..fetch_session import (
    SESSIONS_FROM_VERSION,
    TOPIC_IDS_FROM_VERSION,
    ZERO_UUID,
    FetchContext,
    PartitionFetch,
    PartitionResult,
    SessionIdOutOfRange,
    TopicIdPartition,
    session_metadata,
)
from ..log.files import TopicPartition
from ..partition import ACKS_ALL, FetchIsolation, Partition
from ..pending import DelayedOperation, Pending

if TYPE_CHECKING:
    from ..core import Broker, Reply

PRODUCE = API_BY_KEY[0]
FETCH = API_BY_KEY[1]
LIST_OFFSETS = API_BY_KEY[2]
DELETE_RECORDS = API_BY_KEY[21]
OFFSET_FOR_LEADER_EPOCH = API_BY_KEY[23]

READ_COMMITTED = 1
UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1
DEBUGGING_REPLICA_ID = -2


def _topic_name(broker: Broker, name: str | None, topic_id: uuid.UUID, version: int, ids_from: int) -> str | None:
    """Requests from ``ids_from`` on name topics by id (KIP-516); before, by name."""
    if version < ids_from:
        return name
    topic = broker.topics.by_id(topic_id)
    return topic.name if topic is not None else None


def _unknown_topic(version: int, ids_from: int) -> int:
    return (Errors.UNKNOWN_TOPIC_ID if version >= ids_from else Errors.UNKNOWN_TOPIC_OR_PARTITION).code


def _check_leader_epoch(replica: Partition, requested: int) -> None:
    """KIP-320: a client that knows a different leader epoch must refresh its metadata first."""
    if requested == UNDEFINED_EPOCH or requested == replica.leader_epoch:
        return
    if requested > replica.leader_epoch:
        raise KafkaError(Errors.UNKNOWN_LEADER_EPOCH, f"epoch {requested} is newer than the leader's {replica.leader_epoch}")
    raise KafkaError(Errors.FENCED_LEADER_EPOCH, f"epoch {requested} is older than the leader's {replica.leader_epoch}")


# -- Produce (0) ---------------------------------------------------------------------------------

PRODUCE_TOPIC = PRODUCE.response.struct("TopicProduceResponse")
PRODUCE_PARTITION = PRODUCE.response.struct("PartitionProduceResponse")
RECORD_ERROR = PRODUCE.response.struct("BatchIndexAndErrorMessage")
TOPIC_IDS_IN_PRODUCE = 13
TRANSACTIONAL_ID_IN_PRODUCE = 3
TRANSACTION_ABORTABLE_IN_PRODUCE = 11  # KIP-890: a failed verification is TRANSACTION_ABORTABLE (120)
IMPLICIT_ADD_PARTITION_IN_PRODUCE = 12  # KIP-890 part 2: transaction version 2 producers
RACK_AWARE_REPLICA_SELECTOR = "org.apache.kafka.common.replica.RackAwareReplicaSelector"
LEADER_DISCOVERY_IN_PRODUCE = 10  # KIP-951: current_leader and node_endpoints
NOT_LEADER_ERRORS_IN_PRODUCE = frozenset({Errors.NOT_LEADER_OR_FOLLOWER.code})
PRODUCE_LEADER = PRODUCE.response.struct("LeaderIdAndEpoch")
PRODUCE_NODE_ENDPOINT = PRODUCE.response.struct("NodeEndpoint")


def handle_produce(broker: Broker, request: Request, now_ms: int) -> Reply:
    body = request.body
    version = request.version
    transactional_id = body.transactional_id if version >= TRANSACTIONAL_ID_IN_PRODUCE else None
    if transactional_id is None and _has_transactional_batch(body):
        if body.acks == 0:
            raise CloseConnection("Produce with acks=0 refused whole: a transactional batch without a transactional id")
        return _refuse_whole_produce(body, Errors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    remote = _remote_verifications(broker, body, version, transactional_id, now_ms)
    if not remote:
        return _handle_produce(broker, request, now_ms, transactional_id, {})
    # KIP-890 in a cluster: the coordinator is another node; answer once it has (Kafka parks the
    # append in AddPartitionsToTxnManager the same way).
    answered = Pending()
    verdicts: dict[tuple[str, int], ErrorCode] = {}

    def verified(key: tuple[str, int], error: ErrorCode) -> None:
        verdicts[key] = error
        if len(verdicts) < len(remote):
            return
        reply = _handle_produce(broker, request, broker.replicas.clock.now_ms, transactional_id, verdicts)
        if isinstance(reply, Pending):
            reply.on_done(answered.complete)
        else:
            answered.complete(reply)

    for key, pending in remote.items():
        pending.on_done(lambda error, key=key: verified(key, error))  # type: ignore[misc]
    return answered


def _remote_verifications(broker: Broker, body: Data, version: int, transactional_id: str | None,
                          now_ms: int) -> dict[tuple[str, int], Pending]:
    """The partitions whose transactional batch the coordinator's node must verify first (acks=0
    requests, which get no answer to wait with, are verified locally or not at all)."""
    if transactional_id is None or body.acks == 0:
        return {}
    asked: dict[tuple[str, int], Pending] = {}
    for topic in body.topic_data:
        name = _topic_name(broker, topic.name, topic.topic_id, version, TOPIC_IDS_IN_PRODUCE)
        for data in topic.partition_data:
            header = _first_header(data.records)
            if name is None or not _is_verified_transactional(header):
                continue
            if broker.transactions.needs_remote_verification(transactional_id, name, data.index,
                                                             header.producer_id, header.producer_epoch):
                asked[(name, data.index)] = broker.transactions.verify_remotely(
                    transactional_id, name, data.index, header.producer_id, header.producer_epoch,
                    implicit_add=version >= IMPLICIT_ADD_PARTITION_IN_PRODUCE,
                    abortable=version >= TRANSACTION_ABORTABLE_IN_PRODUCE, now_ms=now_ms)
    return asked


def _handle_produce(broker: Broker, request: Request, now_ms: int, transactional_id: str | None,
                    verdicts: dict[tuple[str, int], ErrorCode]) -> Reply:
    body = request.body
    version = request.version
    responses = []
    waiting: list[tuple[TopicPartition, Data, int]] = []  # acks=all: (partition, answer, required offset)
    for topic in body.topic_data:
        name = _topic_name(broker, topic.name, topic.topic_id, version, TOPIC_IDS_IN_PRODUCE)
        partitions = []
        for data in topic.partition_data:
            answer, required_offset = _produce_partition(broker, body.acks, name, data, version, now_ms,
                                                         transactional_id, verdicts.get((name or "", data.index)))
            partitions.append(answer)
            if name is not None and required_offset is not None:
                waiting.append((TopicPartition(name, data.index), answer, required_offset))
        responses.append(PRODUCE_TOPIC.make(name=topic.name, topic_id=topic.topic_id, partition_responses=partitions))
    if body.acks == 0:
        failed = {(topic.name, answer.index): lookup(answer.error_code).name
                  for topic in responses for answer in topic.partition_responses if answer.error_code != 0}
        if failed:  # the partitions that succeeded stay appended; only the client is told
            raise CloseConnection(f"error during Produce with acks=0: {failed}")
        no_response: Reply = NO_RESPONSE
        return no_response
    response = PRODUCE.response.make(responses=responses)
    if version >= LEADER_DISCOVERY_IN_PRODUCE:
        answered = [(_topic_name(broker, topic.name, topic.topic_id, version, TOPIC_IDS_IN_PRODUCE), answer.index, answer)
                    for topic, topic_answer in zip(body.topic_data, responses, strict=True)
                    for answer in topic_answer.partition_responses]
        response.node_endpoints = _point_to_current_leaders(
            broker, answered, NOT_LEADER_ERRORS_IN_PRODUCE, PRODUCE_LEADER, PRODUCE_NODE_ENDPOINT)
    if body.acks != ACKS_ALL or not waiting:
        return response
    return _wait_for_replicas(broker, response, waiting, body.timeout_ms, now_ms)


def _first_header(records: bytes | None) -> BatchHeader | None:
    if records is None or len(records) < RECORD_BATCH_OVERHEAD:
        return None
    try:
        return BatchHeader.decode(records, 0)
    except (RecordsDecodeError, ValueError):
        return None  # validation refuses it later with the right error


def _is_verified_transactional(header: BatchHeader | None) -> TypeGuard[BatchHeader]:
    """Whether KIP-890 verification applies: a transactional batch *with* a producer id.  Kafka
    (``ReplicaManager``) collects only batches with ``hasProducerId`` for verification, and its
    producer-state table ignores the rest, so a transactional batch with producer id -1 is appended
    without opening any transaction (checked against Kafka 4.3.1 at Produce v3-v13)."""
    return header is not None and header.is_transactional and header.producer_id != NO_PRODUCER_ID


def _has_transactional_batch(body: Data) -> bool:
    return any((header := _first_header(data.records)) is not None and header.is_transactional
               for topic in body.topic_data for data in topic.partition_data)


def _refuse_whole_produce(body: Data, error: ErrorCode) -> Data:
    return PRODUCE.response.make(responses=[
        PRODUCE_TOPIC.make(name=topic.name, topic_id=topic.topic_id, partition_responses=[
            PRODUCE_PARTITION.make(index=data.index, base_offset=-1, error_code=error.code)
            for data in topic.partition_data])
        for topic in body.topic_data])


def _verify_transaction(broker: Broker, transactional_id: str | None, topic: str, partition: int,
                        records: bytes | None, version: int, now_ms: int) -> None:
    """KIP-890: a transactional batch must belong to its producer's open transaction."""
    header = _first_header(records)
    if not _is_verified_transactional(header) or transactional_id is None:
        return
    error = broker.transactions.verify_produce(
        transactional_id, topic, partition, header.producer_id, header.producer_epoch,
        implicit_add=version >= IMPLICIT_ADD_PARTITION_IN_PRODUCE,
        abortable=version >= TRANSACTION_ABORTABLE_IN_PRODUCE, now_ms=now_ms)
    if error is not Errors.NONE:
        raise KafkaError(error, f"the partition is not in the transaction of {transactional_id!r}")


def _point_to_current_leaders(broker: Broker, answered: list[tuple[str | None, int, Data]], errors: frozenset[int],
                              leader_struct: Struct, endpoint_struct: Struct) -> list[Data]:
    """KIP-951: a partition answered with one of ``errors`` names the leader this broker knows, with
    its epoch in ``current_leader``; the leaders' addresses are returned for ``node_endpoints``, so
    the client need not ask Metadata before retrying (Produce v10+: NOT_LEADER_OR_FOLLOWER; Fetch
    v16+: also FENCED_LEADER_EPOCH)."""
    leaders: dict[int, Data] = {}
    views: dict[str, dict[int, PartitionView]] = {}
    for name, partition, answer in answered:
        if name is None or answer.error_code not in errors:
            continue
        if name not in views:
            views[name] = {view.partition_index: view for view in broker.cluster.partitions(name) or []}
        view = views[name].get(partition)
        endpoint = broker.cluster.broker(view.leader_id) if view is not None and view.leader_id >= 0 else None
        if view is None or endpoint is None:
            continue
        answer.current_leader = leader_struct.make(leader_id=view.leader_id, leader_epoch=view.leader_epoch)
        leaders[endpoint.node_id] = endpoint_struct.make(node_id=endpoint.node_id, host=endpoint.host,
                                                         port=endpoint.port, rack=endpoint.rack)
    return [leaders[node_id] for node_id in sorted(leaders)]


def _produce_partition(
    broker: Broker, acks: int, topic: str | None, data: Data, version: int, now_ms: int,
    transactional_id: str | None = None, verdict: ErrorCode | None = None,
) -> tuple[Data, int | None]:
    """One partition's answer, and the offset the HW must reach before acks=all answers it."""
    answer = PRODUCE_PARTITION.make(index=data.index, base_offset=-1)
    appending = False  # set while the failure would be the append's own (see _log_start_of_failure)
    try:
        if acks not in (ACKS_ALL, 0, 1):
            raise KafkaError(Errors.INVALID_REQUIRED_ACKS, f"Invalid required acks {acks}")
        if topic is None:
            answer.error_code = _unknown_topic(version, TOPIC_IDS_IN_PRODUCE)
            return answer, None
        registered = broker.topics.get(topic)
        if registered is not None and registered.is_internal:
            raise KafkaError(Errors.INVALID_TOPIC_EXCEPTION, f"Cannot append to internal topic {topic}")
        appending = True
        broker.replicas.check_append_allowed(topic, data.index, acks)
        if data.records is None:
            raise KafkaError(Errors.INVALID_RECORD, "Produce request has no records for the partition")
        appending = False  # KIP-890 verification comes before the append in Kafka
        if verdict is not None and verdict is not Errors.NONE:  # the coordinator's node said no
            raise KafkaError(verdict, f"the partition is not in the transaction of {transactional_id!r}")
        if verdict is None:
            _verify_transaction(broker, transactional_id, topic, data.index, data.records, version, now_ms)
        appending = True
        validated, info = broker.replicas.append_from_client(topic, data.index, data.records, version, now_ms,
                                                             required_acks=acks)
    except RecordValidationError as refused:
        answer.error_code = refused.error.code
        answer.error_message = refused.message
        answer.record_errors = [RECORD_ERROR.make(batch_index=e.batch_index, batch_index_error_message=e.message)
                                for e in refused.record_errors]
        answer.log_start_offset = _log_start_of_failure(broker, topic, data.index, refused.error)
        return answer, None
    except KafkaError as refused:
        answer.error_code = refused.error.code  # error_message stays null: see the module docstring
        if appending:
            answer.log_start_offset = _log_start_of_failure(broker, topic, data.index, refused.error)
        return answer, None
    answer.base_offset = info.first_offset
    answer.log_append_time_ms = validated.log_append_time if validated.log_append_time >= 0 else -1
    answer.log_start_offset = info.log_start_offset
    return answer, info.last_offset + 1


# The append failures Kafka's ReplicaManager answers without the log start offset (-1): the
# partition is not here or not led here, or the batch was refused before its records were read.
NO_LOG_START_OFFSET_IN_FAILURE = frozenset({
    Errors.UNKNOWN_TOPIC_OR_PARTITION, Errors.NOT_LEADER_OR_FOLLOWER, Errors.MESSAGE_TOO_LARGE,
    Errors.RECORD_LIST_TOO_LARGE, Errors.CORRUPT_MESSAGE, Errors.KAFKA_STORAGE_ERROR, Errors.UNKNOWN_TOPIC_ID,
})


def _log_start_of_failure(broker: Broker, topic: str | None, partition: int, error: ErrorCode) -> int:
    """What a refused append answers in ``log_start_offset`` (Produce v5+): -1 for the failures
    above, else the partition's log start offset, as Kafka's ``processFailedRecord`` does for a
    record validation error, NOT_ENOUGH_REPLICAS, a producer epoch or sequence error, ...
    Failures before the append (acks, an internal topic, KIP-890 verification) are -1 too."""
    replica = broker.replicas.get(topic, partition) if topic is not None else None
    if error in NO_LOG_START_OFFSET_IN_FAILURE or replica is None:
        return -1
    return replica.log.log_start_offset


def _wait_for_replicas(
    broker: Broker, response: Data, waiting: list[tuple[TopicPartition, Data, int]], timeout_ms: int, now_ms: int
) -> Data | Pending:
    """acks=all (Kafka's ``DelayedProduce``): answer once every appended partition's HW passed its
    last offset, or at ``timeout_ms`` with REQUEST_TIMED_OUT for those still waiting."""
    acks_pending = list(waiting)

    def attempt(now: int, expired: bool) -> Data | None:
        for entry in list(acks_pending):
            topic_partition, answer, required_offset = entry
            replica = broker.replicas.get(topic_partition.topic, topic_partition.partition)
            if replica is None:
                reached, error = False, Errors.UNKNOWN_TOPIC_OR_PARTITION
            else:
                reached, error = replica.check_enough_replicas_reach_offset(required_offset)
            if reached or error != Errors.NONE:
                answer.error_code = error.code
                acks_pending.remove(entry)
        if acks_pending and not expired:
            return None
        for _, answer, _ in acks_pending:
            answer.error_code = Errors.REQUEST_TIMED_OUT.code
        return response

    operation = DelayedOperation(now_ms + max(0, timeout_ms), attempt, [tp for tp, _, _ in waiting])
    pending = broker.replicas.produce_purgatory.park(operation, now_ms)
    return pending.result if pending.done else pending


# -- Fetch (1) -----------------------------------------------------------------------------------

FETCH_TOPIC = FETCH.response.struct("FetchableTopicResponse")
FETCH_PARTITION = FETCH.response.struct("PartitionData")
TOPIC_IDS_IN_FETCH = TOPIC_IDS_FROM_VERSION


FETCH_EPOCH_END_OFFSET = FETCH.response.struct("EpochEndOffset")
FETCH_ABORTED = FETCH.response.struct("AbortedTransaction")
FETCH_LEADER = FETCH.response.struct("LeaderIdAndEpoch")
FETCH_NODE_ENDPOINT = FETCH.response.struct("NodeEndpoint")
LEADER_DISCOVERY_IN_FETCH = 16  # KIP-951
NOT_LEADER_ERRORS_IN_FETCH = frozenset({Errors.NOT_LEADER_OR_FOLLOWER.code, Errors.FENCED_LEADER_EPOCH.code})
REPLICA_STATE_FROM = 15  # KIP-903: the follower's id and broker epoch move into ReplicaState
FOLLOWER_FETCH_FROM_FOLLOWERS = 11  # KIP-392: from v11 a consumer may read a follower


@dataclass(frozen=True)
class FollowerFetch:
    """Who sends a follower's Fetch: its broker id and broker epoch (-1 before v15)."""

    replica_id: int
    broker_epoch: int


def follower_of(request: Request) -> FollowerFetch | None:
    """The follower a Fetch comes from, or None for a consumer (Kafka's ``FetchRequest.replicaId``)."""
    body = request.body
    if request.version >= REPLICA_STATE_FROM:
        replica_id, broker_epoch = body.replica_state.replica_id, body.replica_state.replica_epoch
    else:
        replica_id, broker_epoch = body.replica_id, -1
    return FollowerFetch(replica_id, broker_epoch) if replica_id >= 0 else None


ReadPartition = tuple[TopicIdPartition, PartitionFetch]
AnsweredPartition = tuple[TopicIdPartition, Data]


def handle_fetch(broker: Broker, request: Request, now_ms: int) -> Reply:
    """Kafka's ``KafkaApis.handleFetchRequest``: the request becomes a fetch context (full,
    incremental, sessionless or a session error: :mod:`reference.broker.fetch_session`), the
    context's partitions are read -- at once, or when ``min_bytes`` are there or ``max_wait_ms``
    passed -- and the context decides what the response carries."""
    body = request.body
    follower = follower_of(request)
    session_id, epoch = session_metadata(request.version, body.session_id, body.session_epoch)
    try:
        context = broker.fetch_sessions.new_context(
            request.version, session_id, epoch, follower is not None, _requested_partitions(broker, request),
            _forgotten_partitions(broker, request), _topic_name_by_id(broker), now_ms)
    except SessionIdOutOfRange:
        return _whole_request_error(request, Errors.UNKNOWN_SERVER_ERROR)
    erroneous, interesting = _check_in_metadata(broker, context.partitions())
    first_read = [True]  # a follower's fetch state is recorded once, when the request arrives

    def attempt(now: int, expired: bool) -> Data | None:
        record_follower = follower is not None and first_read[0]
        first_read[0] = False
        answers, total_bytes, answer_now = _read_fetch(broker, request, follower, interesting, record_follower, now)
        if expired or answer_now or not interesting or total_bytes >= body.min_bytes or body.max_wait_ms <= 0:
            return _fetch_response(broker, request, context, answers + erroneous, now)
        return None

    watched = [TopicPartition(str(wanted.topic), wanted.partition) for wanted, _ in interesting]
    operation = DelayedOperation(now_ms + max(0, body.max_wait_ms), attempt, watched)
    return broker.fetch_purgatory.park(operation, now_ms)


def _requested_partitions(broker: Broker, request: Request) -> dict[TopicIdPartition, PartitionFetch]:
    """The request's partitions in order (Kafka's ``FetchRequest.fetchData``): a partition named
    twice keeps its first place and its last parameters."""
    wanted: dict[TopicIdPartition, PartitionFetch] = {}
    for topic in request.body.topics:
        topic_id, name = _fetch_topic(broker, topic, request.version)
        for partition in topic.partitions:
            wanted[TopicIdPartition(topic_id, name, partition.partition)] = PartitionFetch(
                fetch_offset=partition.fetch_offset, log_start_offset=partition.log_start_offset,
                partition_max_bytes=partition.partition_max_bytes,
                current_leader_epoch=partition.current_leader_epoch, last_fetched_epoch=partition.last_fetched_epoch)
    return wanted


def _forgotten_partitions(broker: Broker, request: Request) -> list[TopicIdPartition]:
    """``ForgottenTopicsData`` (v7+): partitions an incremental fetch drops from its session."""
    if request.version < SESSIONS_FROM_VERSION:
        return []
    return [TopicIdPartition(*_fetch_topic(broker, topic, request.version), partition)
            for topic in request.body.forgotten_topics_data for partition in topic.partitions]


def _fetch_topic(broker: Broker, topic: Data, version: int) -> tuple[uuid.UUID, str | None]:
    """(topic id, name) of a request's topic: by id from v13 (name None if unknown), else by name."""
    if version < TOPIC_IDS_IN_FETCH:
        return ZERO_UUID, topic.topic
    return topic.topic_id, _topic_name(broker, None, topic.topic_id, version, TOPIC_IDS_IN_FETCH)


def _topic_name_by_id(broker: Broker) -> Callable[[uuid.UUID], str | None]:
    def name(topic_id: uuid.UUID) -> str | None:
        topic = broker.topics.by_id(topic_id)
        return topic.name if topic is not None else None

    return name


def _check_in_metadata(broker: Broker, partitions: list[ReadPartition]) -> tuple[list[AnsweredPartition],
                                                                                  list[ReadPartition]]:
    """Split off the partitions answered without a read (KafkaApis' ``erroneous``): an unknown topic
    id (UNKNOWN_TOPIC_ID) or a partition the cluster metadata lacks (UNKNOWN_TOPIC_OR_PARTITION).
    They come after the partitions read in the response, and never end a wait early."""
    erroneous, interesting = [], []
    for wanted, fetch in partitions:
        if wanted.topic is None:
            erroneous.append((wanted, _fetch_error_answer(wanted.partition, Errors.UNKNOWN_TOPIC_ID)))
            continue
        registered = broker.topics.get(wanted.topic)
        if registered is None or not 0 <= wanted.partition < registered.partitions:
            erroneous.append((wanted, _fetch_error_answer(wanted.partition, Errors.UNKNOWN_TOPIC_OR_PARTITION)))
            continue
        interesting.append((wanted, fetch))
    return erroneous, interesting


def _fetch_error_answer(partition: int, error: ErrorCode) -> Data:
    """Kafka's ``FetchResponse.partitionResponse``: the error and nothing known about the log."""
    return FETCH_PARTITION.make(partition_index=partition, error_code=error.code, high_watermark=-1,
                                last_stable_offset=-1, log_start_offset=-1, aborted_transactions=None, records=b"")


def _whole_request_error(request: Request, error: ErrorCode) -> Data:
    """Kafka's ``FetchRequest.getErrorResponse`` (an unexpected exception): the error at the top,
    the request's session id echoed; below v13 also every requested partition with the error."""
    responses = []
    if request.version < TOPIC_IDS_IN_FETCH:
        responses = [FETCH_TOPIC.make(topic=topic.topic, topic_id=topic.topic_id,
                                      partitions=[_fetch_error_answer(p.partition, error) for p in topic.partitions])
                     for topic in request.body.topics]
    return FETCH.response.make(error_code=error.code, session_id=request.body.session_id, responses=responses)


def _read_fetch(
    broker: Broker, request: Request, follower: FollowerFetch | None, partitions: list[ReadPartition],
    record_follower: bool, now_ms: int,
) -> tuple[list[AnsweredPartition], int, bool]:
    """Read every partition: (answers, bytes read, whether to answer now: an error, a divergence
    or a preferred read replica)."""
    body = request.body
    if follower is not None:
        isolation = FetchIsolation.LOG_END
    elif body.isolation_level == READ_COMMITTED:
        isolation = FetchIsolation.TXN_COMMITTED
    else:
        isolation = FetchIsolation.HIGH_WATERMARK
    rack_id = body.rack_id if request.version >= FOLLOWER_FETCH_FROM_FOLLOWERS else ""
    remaining = body.max_bytes
    total = 0
    answer_now = False
    answers = []
    for wanted, fetch in partitions:
        topic = str(wanted.topic)
        budget, first = max(0, remaining), total == 0
        if follower is not None:
            answer = _fetch_partition_for_follower(broker, topic, wanted.partition, fetch, follower, record_follower,
                                                   budget, first, now_ms)
        else:
            answer = _fetch_partition(broker, topic, wanted.partition, fetch, isolation, budget, first,
                                      request.version, rack_id, now_ms)
        size = len(answer.records or b"")
        total += size
        remaining -= size
        diverging = answer.diverging_epoch is not None and answer.diverging_epoch.epoch >= 0
        redirected = answer.preferred_read_replica >= 0  # KIP-392: answered at once, as Kafka does
        answer_now = answer_now or answer.error_code != Errors.NONE.code or diverging or redirected
        answers.append((wanted, answer))
    return answers, total, answer_now


def _fetch_response(broker: Broker, request: Request, context: FetchContext, answers: list[AnsweredPartition],
                    now_ms: int) -> Data:
    """The response the context builds from every partition's answer; KIP-951 leader hints (v16+)
    are worked out over all answers, before an incremental context leaves out unchanged ones."""
    node_endpoints = []
    if request.version >= LEADER_DISCOVERY_IN_FETCH:
        node_endpoints = _point_to_current_leaders(
            broker, [(wanted.topic, wanted.partition, answer) for wanted, answer in answers],
            NOT_LEADER_ERRORS_IN_FETCH, FETCH_LEADER, FETCH_NODE_ENDPOINT)
    answered = context.respond(answers, _partition_result, now_ms)
    response = FETCH.response.make(error_code=answered.error.code, session_id=answered.session_id,
                                   responses=_response_topics(answered.partitions))
    if request.version >= LEADER_DISCOVERY_IN_FETCH:
        response.node_endpoints = node_endpoints
    return response


def _partition_result(answer: Data) -> PartitionResult:
    """What a fetch session compares of one partition's answer."""
    diverging = answer.diverging_epoch
    return PartitionResult(
        records_size=len(answer.records or b""), high_watermark=answer.high_watermark,
        log_start_offset=answer.log_start_offset, error=lookup(answer.error_code),
        preferred_read_replica=answer.preferred_read_replica,
        diverging_epoch=diverging.epoch if diverging is not None else -1)


def _response_topics(partitions: list[AnsweredPartition]) -> list[Data]:
    """Partitions grouped by topic in order; a topic appears again when its partitions are not
    adjacent (Kafka's ``FetchResponse.toMessage``)."""
    topics: list[Data] = []
    previous: TopicIdPartition | None = None
    for wanted, answer in partitions:
        same_topic = previous is not None and (
            previous.topic_id == wanted.topic_id if previous.topic_id != ZERO_UUID else previous.topic == wanted.topic)
        if same_topic:
            topics[-1].partitions.append(answer)
        else:
            topics.append(FETCH_TOPIC.make(topic=wanted.topic or "", topic_id=wanted.topic_id, partitions=[answer]))
        previous = wanted
    return topics


def _fetch_answer(partition: int, isolation: FetchIsolation) -> Data:
    return FETCH_PARTITION.make(
        partition_index=partition, high_watermark=-1, last_stable_offset=-1, log_start_offset=-1,
        aborted_transactions=[] if isolation is FetchIsolation.TXN_COMMITTED else None, records=b"",
    )


def _fetch_partition(
    broker: Broker, topic: str, partition: int, wanted: PartitionFetch, isolation: FetchIsolation, budget: int,
    first: bool, version: int, rack_id: str = "", now_ms: int = 0,
) -> Data:
    answer = _fetch_answer(partition, isolation)
    try:
        replica = broker.replicas.require(topic, partition)
        _check_leader_epoch(replica, wanted.current_leader_epoch)
        if version < FOLLOWER_FETCH_FROM_FOLLOWERS and not replica.is_leader:
            raise KafkaError(Errors.NOT_LEADER_OR_FOLLOWER, f"broker {broker.node_id} does not lead {topic}-{partition}")
        answer.high_watermark = replica.high_watermark
        answer.last_stable_offset = replica.last_stable_offset
        answer.log_start_offset = replica.log_start_offset
        preferred = _preferred_read_replica(broker, replica, wanted.fetch_offset, rack_id, now_ms)
        if preferred is not None:  # KIP-392: no records, only where to fetch from
            answer.preferred_read_replica = preferred
            return answer
        limit = min(wanted.partition_max_bytes, budget)
        data = replica.read(wanted.fetch_offset, limit, isolation, min_one_message=first)
        answer.records = data.records
        if isolation is FetchIsolation.TXN_COMMITTED:
            answer.aborted_transactions = [FETCH_ABORTED.make(producer_id=aborted.producer_id,
                                                              first_offset=aborted.first_offset)
                                           for aborted in data.aborted_transactions]
    except KafkaError as refused:
        answer.error_code = refused.error.code
    return answer


def _preferred_read_replica(broker: Broker, replica: Partition, fetch_offset: int, rack_id: str,
                            now_ms: int) -> int | None:
    """KIP-392 with Kafka's ``RackAwareReplicaSelector`` (``replica.selector.class``): a consumer
    in another rack than the leader is sent to an in-sync follower of its own rack that holds the
    fetch offset, the most caught-up one first.  None: the leader serves the fetch itself."""
    if (not rack_id or not replica.is_leader
            or broker.config.get("replica.selector.class") != RACK_AWARE_REPLICA_SELECTOR
            or rack_id == broker.config.get("broker.rack")):
        return None
    candidates = []
    for follower in replica.followers.values():
        endpoint = broker.cluster.broker(follower.broker_id)
        if (endpoint is not None and endpoint.rack == rack_id and follower.broker_id in replica.isr
                and follower.log_start_offset <= fetch_offset <= follower.log_end_offset):
            lag_ms = now_ms - follower.last_caught_up_time_ms
            candidates.append((-follower.log_end_offset, lag_ms, follower.broker_id))
    return min(candidates)[2] if candidates else None


def _fetch_partition_for_follower(
    broker: Broker, topic: str, partition: int, wanted: PartitionFetch, follower: FollowerFetch,
    record_follower: bool, budget: int, first: bool, now_ms: int,
) -> Data:
    """One partition of a follower's fetch, as Kafka's ``Partition.fetchRecords`` for followers."""
    answer = _fetch_answer(partition, FetchIsolation.LOG_END)
    try:
        replica = broker.replicas.require(topic, partition)
        if guards.on("fence_fetch_epoch"):  # spec guard fence_fetch_epoch (KIP-320)
            _check_leader_epoch(replica, wanted.current_leader_epoch)
        if not replica.is_leader:
            raise KafkaError(Errors.NOT_LEADER_OR_FOLLOWER, f"broker {broker.node_id} does not lead {topic}-{partition}")
        replica.require_follower(follower.replica_id, wanted.current_leader_epoch)
        read = replica.read_for_follower(wanted.fetch_offset, wanted.last_fetched_epoch,
                                         min(wanted.partition_max_bytes, budget), min_one_message=first)
        answer.high_watermark = read.high_watermark
        answer.last_stable_offset = read.last_stable_offset
        answer.log_start_offset = read.log_start_offset
        answer.records = read.records
        if read.diverging_epoch is not None:
            epoch, end_offset = read.diverging_epoch
            answer.diverging_epoch = FETCH_EPOCH_END_OFFSET.make(epoch=epoch, end_offset=end_offset)
        elif record_follower:
            broker.replicas.clock.now_ms = now_ms
            replica.update_follower_fetch_state(follower.replica_id, wanted.fetch_offset, wanted.log_start_offset,
                                                now_ms, read.log_end_offset, follower.broker_epoch)
    except KafkaError as refused:
        answer.error_code = refused.error.code
    return answer


# -- ListOffsets (2) -----------------------------------------------------------------------------

LIST_TOPIC = LIST_OFFSETS.response.struct("ListOffsetsTopicResponse")
LIST_PARTITION = LIST_OFFSETS.response.struct("ListOffsetsPartitionResponse")
EARLIEST_TIMESTAMP = -2
EARLIEST_LOCAL_TIMESTAMP = -4
LATEST_TIERED_TIMESTAMP = -5
CONSUMER_REPLICA_ID = -1


def handle_list_offsets(broker: Broker, request: Request, now_ms: int) -> Data:
    body = request.body
    if body.replica_id != CONSUMER_REPLICA_ID and body.replica_id >= 0:
        isolation = None  # a follower or a debug tool: up to the log end
    elif body.isolation_level == READ_COMMITTED:
        isolation = FetchIsolation.TXN_COMMITTED
    else:
        isolation = FetchIsolation.HIGH_WATERMARK
    leader_only = body.replica_id != DEBUGGING_REPLICA_ID
    topics = []
    for topic in body.topics:
        partitions = [_list_offset(broker, topic.name, p, isolation, leader_only) for p in topic.partitions]
        topics.append(LIST_TOPIC.make(name=topic.name, partitions=partitions))
    return LIST_OFFSETS.response.make(topics=topics)


def _list_offset(broker: Broker, topic: str, wanted: Data, isolation: FetchIsolation | None, leader_only: bool) -> Data:
    answer = LIST_PARTITION.make(partition_index=wanted.partition_index, timestamp=-1, offset=-1, leader_epoch=-1)
    try:
        replica = broker.replicas.require(topic, wanted.partition_index)
        _check_leader_epoch(replica, wanted.current_leader_epoch)
        if leader_only:
            replica.require_leader()
        timestamp = wanted.timestamp
        if timestamp in (EARLIEST_TIMESTAMP, EARLIEST_LOCAL_TIMESTAMP):
            offset = replica.log_start_offset
            epoch = replica.log.leader_epoch_cache.epoch_for_offset(offset)
            answer.offset, answer.leader_epoch = offset, epoch if epoch is not None else -1
        elif timestamp == LATEST_TIERED_TIMESTAMP:
            pass  # no tiered storage: offset -1, as Kafka answers without remote storage
        else:
            found = replica.fetch_offset_for_timestamp(timestamp, isolation)
            if found is not None:
                answer.timestamp, answer.offset = found.timestamp, found.offset
                answer.leader_epoch = found.leader_epoch if found.leader_epoch is not None else -1
    except KafkaError as refused:
        answer.error_code = refused.error.code
    return answer


# -- DeleteRecords (21) --------------------------------------------------------------------------

DELETE_TOPIC = DELETE_RECORDS.response.struct("DeleteRecordsTopicResult")
DELETE_PARTITION = DELETE_RECORDS.response.struct("DeleteRecordsPartitionResult")


def handle_delete_records(broker: Broker, request: Request, now_ms: int) -> Data:
    topics = []
    for topic in request.body.topics:
        partitions = []
        for wanted in topic.partitions:
            answer = DELETE_PARTITION.make(partition_index=wanted.partition_index, low_watermark=-1)
            try:
                replica = broker.replicas.require(topic.name, wanted.partition_index)
                answer.low_watermark = replica.delete_records(wanted.offset)
            except KafkaError as refused:
                answer.error_code = refused.error.code
            partitions.append(answer)
        topics.append(DELETE_TOPIC.make(name=topic.name, partitions=partitions))
    return DELETE_RECORDS.response.make(topics=topics)


# -- OffsetForLeaderEpoch (23) -------------------------------------------------------------------

EPOCH_TOPIC = OFFSET_FOR_LEADER_EPOCH.response.struct("OffsetForLeaderTopicResult")
EPOCH_END_OFFSET = OFFSET_FOR_LEADER_EPOCH.response.struct("EpochEndOffset")


def handle_offset_for_leader_epoch(broker: Broker, request: Request, now_ms: int) -> Data:
    """The end offset of a leader epoch (KIP-101): a consumer (KIP-320) or follower checks its log."""
    topics = []
    for topic in request.body.topics:
        partitions = []
        for wanted in topic.partitions:
            answer = EPOCH_END_OFFSET.make(partition=wanted.partition, leader_epoch=UNDEFINED_EPOCH,
                                           end_offset=UNDEFINED_OFFSET)
            try:
                replica = broker.replicas.require(topic.topic, wanted.partition)
                _check_leader_epoch(replica, wanted.current_leader_epoch)
                replica.require_leader()
                found = replica.last_offset_for_leader_epoch(wanted.leader_epoch)
                if found is not None:
                    answer.leader_epoch, answer.end_offset = found
            except KafkaError as refused:
                answer.error_code = refused.error.code
            partitions.append(answer)
        topics.append(EPOCH_TOPIC.make(topic=topic.topic, partitions=partitions))
    return OFFSET_FOR_LEADER_EPOCH.response.make(topics=topics)
