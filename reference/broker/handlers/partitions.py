"""Partition data APIs: Produce (0), Fetch (1), ListOffsets (2), DeleteRecords (21),
OffsetForLeaderEpoch (23).

Produce, as Kafka's ``KafkaApis.handleProduceRequest`` and ``ReplicaManager.appendRecords``:

* ``acks`` must be -1 (all in-sync replicas), 0 or 1, else every partition gets
  INVALID_REQUIRED_ACKS.  With ``acks=0`` nothing is answered at all, whatever happened.
* Each partition is judged on its own: unknown topic or partition (UNKNOWN_TOPIC_OR_PARTITION,
  or UNKNOWN_TOPIC_ID in v13+), a client writing to an internal topic (INVALID_TOPIC_EXCEPTION),
  ``acks=-1`` with fewer in-sync replicas than ``min.insync.replicas`` (NOT_ENOUGH_REPLICAS, nothing
  appended), then record validation and the producer-state check.  A duplicate of one of the last
  five batches of its producer is answered with success and the offsets it was first given.
* ``base_offset`` is the first offset assigned, ``log_append_time_ms`` is -1 unless the topic uses
  LogAppendTime, ``log_start_offset`` (v5+) is the partition's low watermark.  v8+ carries per-record
  errors (``record_errors``) and an ``error_message``.

Fetch, as Kafka's ``ReplicaManager.fetchMessages``:

* Sessions (KIP-227): this broker keeps none.  A request with session id 0 is a full fetch and the
  answer's session id 0 tells the client that no session was created; a request naming a session
  gets FETCH_SESSION_ID_NOT_FOUND, after which clients fall back to full fetches.
* Per partition: the epoch check (KIP-320: a ``current_leader_epoch`` above ours is
  UNKNOWN_LEADER_EPOCH, below ours FENCED_LEADER_EPOCH), OFFSET_OUT_OF_RANGE outside
  ``[log start, log end]``, then whole stored batches below the high watermark (read_uncommitted)
  or the last stable offset (read_committed).
* Sizes: each partition reads at most ``partition_max_bytes`` and the response at most
  ``max_bytes``, except that the first partition with data returns at least one whole batch even if
  it is larger (so a consumer can always make progress).
* Waiting: if fewer than ``min_bytes`` are available and no partition has an error, the request
  is parked until enough data arrives (any append to one of its partitions re-checks it) or
  ``max_wait_ms`` passes, then answered with what there is.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from ...errors import Errors, KafkaError
from ...protocol.apis import API_BY_KEY
from ...protocol.frames import Request
from ...protocol.schema import Data
from ...records.validation import RecordValidationError
from ..core import NO_RESPONSE
from ..log.files import TopicPartition
from ..partition import FetchIsolation, Partition
from ..pending import DelayedOperation

if TYPE_CHECKING:
    from ..core import Broker, Reply

PRODUCE = API_BY_KEY[0]
FETCH = API_BY_KEY[1]
LIST_OFFSETS = API_BY_KEY[2]
DELETE_RECORDS = API_BY_KEY[21]
OFFSET_FOR_LEADER_EPOCH = API_BY_KEY[23]

ACKS_ALL = -1
READ_COMMITTED = 1
NO_SESSION = 0
UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1


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


def handle_produce(broker: Broker, request: Request, now_ms: int) -> Reply:
    body = request.body
    version = request.version
    responses = []
    for topic in body.topic_data:
        name = _topic_name(broker, topic.name, topic.topic_id, version, TOPIC_IDS_IN_PRODUCE)
        partitions = [_produce_partition(broker, body.acks, name, p, version, now_ms) for p in topic.partition_data]
        responses.append(PRODUCE_TOPIC.make(name=topic.name, topic_id=topic.topic_id, partition_responses=partitions))
    if body.acks == 0:
        no_response: Reply = NO_RESPONSE
        return no_response
    return PRODUCE.response.make(responses=responses)


def _produce_partition(broker: Broker, acks: int, topic: str | None, data: Data, version: int, now_ms: int) -> Data:
    answer = PRODUCE_PARTITION.make(index=data.index, base_offset=-1)
    try:
        if acks not in (ACKS_ALL, 0, 1):
            raise KafkaError(Errors.INVALID_REQUIRED_ACKS, f"Invalid required acks {acks}")
        if topic is None:
            answer.error_code = _unknown_topic(version, TOPIC_IDS_IN_PRODUCE)
            return answer
        registered = broker.topics.get(topic)
        if registered is not None and registered.is_internal:
            raise KafkaError(Errors.INVALID_TOPIC_EXCEPTION, f"Cannot append to internal topic {topic}")
        replica = broker.replicas.require(topic, data.index)
        if acks == ACKS_ALL:
            min_insync = int(broker.replicas.topic_config(topic)["min.insync.replicas"])
            if len(replica.isr) < min_insync:
                raise KafkaError(Errors.NOT_ENOUGH_REPLICAS,
                                 f"The size of the current ISR {sorted(replica.isr)} is insufficient to satisfy "
                                 f"the min.isr requirement of {min_insync} for partition {topic}-{data.index}")
        if data.records is None:
            raise KafkaError(Errors.INVALID_RECORD, "Produce request has no records for the partition")
        validated, info = broker.replicas.append_from_client(topic, data.index, data.records, version, now_ms)
    except RecordValidationError as refused:
        answer.error_code = refused.error.code
        answer.error_message = refused.message
        answer.record_errors = [RECORD_ERROR.make(batch_index=e.batch_index, batch_index_error_message=e.message)
                                for e in refused.record_errors]
        return answer
    except KafkaError as refused:
        answer.error_code = refused.error.code
        answer.error_message = refused.message
        return answer
    answer.base_offset = info.first_offset
    answer.log_append_time_ms = validated.log_append_time if validated.log_append_time >= 0 else -1
    answer.log_start_offset = info.log_start_offset
    return answer


# -- Fetch (1) -----------------------------------------------------------------------------------

FETCH_TOPIC = FETCH.response.struct("FetchableTopicResponse")
FETCH_PARTITION = FETCH.response.struct("PartitionData")
TOPIC_IDS_IN_FETCH = 13


def handle_fetch(broker: Broker, request: Request, now_ms: int) -> Reply:
    body = request.body
    if request.version >= 7 and body.session_id != NO_SESSION:
        return FETCH.response.make(error_code=Errors.FETCH_SESSION_ID_NOT_FOUND.code, session_id=NO_SESSION,
                                   responses=[])
    watched = []
    for topic in body.topics:
        name = _topic_name(broker, topic.topic, topic.topic_id, request.version, TOPIC_IDS_IN_FETCH)
        if name is not None:
            watched += [TopicPartition(name, p.partition) for p in topic.partitions]

    def attempt(now: int, expired: bool) -> Data | None:
        response, total_bytes, has_error = _read_fetch(broker, request)
        if expired or has_error or total_bytes >= body.min_bytes or body.max_wait_ms <= 0:
            return response
        return None

    operation = DelayedOperation(now_ms + max(0, body.max_wait_ms), attempt, watched)
    return broker.fetch_purgatory.park(operation, now_ms)


def _read_fetch(broker: Broker, request: Request) -> tuple[Data, int, bool]:
    body = request.body
    isolation = FetchIsolation.TXN_COMMITTED if body.isolation_level == READ_COMMITTED else FetchIsolation.HIGH_WATERMARK
    remaining = body.max_bytes
    total = 0
    has_error = False
    responses = []
    for topic in body.topics:
        name = _topic_name(broker, topic.topic, topic.topic_id, request.version, TOPIC_IDS_IN_FETCH)
        partitions = []
        for wanted in topic.partitions:
            answer = _fetch_partition(broker, name, wanted, isolation, max(0, remaining), total == 0, request.version)
            size = len(answer.records or b"")
            total += size
            remaining -= size
            has_error = has_error or answer.error_code != Errors.NONE.code
            partitions.append(answer)
        responses.append(FETCH_TOPIC.make(topic=topic.topic, topic_id=topic.topic_id, partitions=partitions))
    return FETCH.response.make(error_code=Errors.NONE.code, session_id=NO_SESSION, responses=responses), total, has_error


def _fetch_partition(
    broker: Broker, topic: str | None, wanted: Data, isolation: FetchIsolation, budget: int, first: bool, version: int
) -> Data:
    answer = FETCH_PARTITION.make(
        partition_index=wanted.partition, high_watermark=-1, last_stable_offset=-1, log_start_offset=-1,
        aborted_transactions=[] if isolation is FetchIsolation.TXN_COMMITTED else None, records=b"",
    )
    if topic is None:
        answer.error_code = _unknown_topic(version, TOPIC_IDS_IN_FETCH)
        return answer
    try:
        replica = broker.replicas.require(topic, wanted.partition)
        _check_leader_epoch(replica, wanted.current_leader_epoch)
        answer.high_watermark = replica.high_watermark
        answer.last_stable_offset = replica.last_stable_offset
        answer.log_start_offset = replica.log_start_offset
        limit = min(wanted.partition_max_bytes, budget)
        data = replica.read(wanted.fetch_offset, limit, isolation, min_one_message=first)
        answer.records = data.records
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
    topics = []
    for topic in body.topics:
        partitions = [_list_offset(broker, topic.name, p, isolation) for p in topic.partitions]
        topics.append(LIST_TOPIC.make(name=topic.name, partitions=partitions))
    return LIST_OFFSETS.response.make(topics=topics)


def _list_offset(broker: Broker, topic: str, wanted: Data, isolation: FetchIsolation | None) -> Data:
    answer = LIST_PARTITION.make(partition_index=wanted.partition_index, timestamp=-1, offset=-1, leader_epoch=-1)
    try:
        replica = broker.replicas.require(topic, wanted.partition_index)
        _check_leader_epoch(replica, wanted.current_leader_epoch)
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
                found = replica.last_offset_for_leader_epoch(wanted.leader_epoch)
                if found is not None:
                    answer.leader_epoch, answer.end_offset = found
            except KafkaError as refused:
                answer.error_code = refused.error.code
            partitions.append(answer)
        topics.append(EPOCH_TOPIC.make(topic=topic.topic, partitions=partitions))
    return OFFSET_FOR_LEADER_EPOCH.response.make(topics=topics)
