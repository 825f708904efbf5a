"""Topic administration: CreateTopics (19), DeleteTopics (20), CreatePartitions (37),
DescribeCluster (60).

The checks themselves live in the topic registry (``reference.broker.topics``); what the wire adds,
as Kafka's controller applies it:

* A name that appears twice in one CreateTopics, DeleteTopics or CreatePartitions request is
  refused with INVALID_REQUEST "Duplicate topic name.", answered once, and nothing is created or
  deleted for it (DeleteTopics v6+: the same for an id given twice, "Duplicate topic id.").
* CreateTopics with explicit ``assignments`` takes the partition count and replication factor from
  them; a replication factor or a count other than -1 beside them is INVALID_REQUEST, naming the
  field (the replication factor is checked first).  Every broker id in an assignment
  must exist (INVALID_REPLICA_ASSIGNMENT).
* ``validate_only`` runs every check and creates nothing.
* From v5 the CreateTopics answer carries the new topic's partition count, replication factor and
  its configs as DescribeConfigs would show them (KIP-525); v7 adds its id.
* DeleteTopics deletes internal topics too (Apache Kafka 4.3 does: deleting ``__consumer_offsets``
  succeeds, and the offsets topic is recreated by the next FindCoordinator).

Size caps (Kafka's quorum controller; each answer checked against Apache Kafka 4.3.1)
-----------------------------------------------------------------------------------
One request must not make the broker create an unbounded number of partitions (and so of log
files).  Kafka's controller caps one user operation at ``MAX_RECORDS_PER_USER_OP`` = 10,000
metadata records and, before that, one CreateTopics at ``MAX_PARTITIONS_PER_BATCH`` = 10,000
partitions:

1. CreateTopics, before any per-topic check: the partitions asked for (a count, ``-1`` counting as
   ``num.partitions``, or the number of assignments; zero and negative counts add nothing) are
   summed in a Java ``int``.  Above 10,000 every topic of the request is answered
   ``44 POLICY_VIOLATION`` "Excessively large number of partitions per request.".  A sum that
   wraps past 2^31 slips through that check in Kafka, which then fails placing the partitions:
   every topic is answered ``-1 UNKNOWN_SERVER_ERROR`` with no message, and so it is here.
2. CreateTopics, after the per-topic checks: each topic that passed them costs one TopicRecord,
   one PartitionRecord per partition and one ConfigRecord per config it sets.  When the request's
   total exceeds 10,000 records (even with ``validate_only``), every topic is answered
   ``44 POLICY_VIOLATION`` "Unable to perform excessively large batch operation." and nothing is
   created.
3. CreatePartitions: each new partition is one record, counted across the request in order.  The
   topic that would take the total past 10,000 is answered ``-1 UNKNOWN_SERVER_ERROR`` with no
   message; the topics before it (and after it, if they fit) are served.  Kafka 4.3.1 also keeps
   the records that topic had written before the cap was hit (a topic grown from 1 to 5,000
   partitions while answered with an error); refka adds nothing to a refused topic.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ...controller.topic_control import as_java_int, requested_partitions
from ...errors import Errors, KafkaError
from ...protocol.apis import API_BY_KEY
from ...protocol.frames import Request
from ...protocol.primitives import ZERO_UUID
from ...protocol.schema import Data
from ..configs import describe_topic_config

if TYPE_CHECKING:
    from ..core import Broker

CREATE_TOPICS = API_BY_KEY[19]
DELETE_TOPICS = API_BY_KEY[20]
CREATE_PARTITIONS = API_BY_KEY[37]
DESCRIBE_CLUSTER = API_BY_KEY[60]

MAX_RECORDS_PER_USER_OP = 10_000  # QuorumController: metadata records one user operation may write
MAX_PARTITIONS_PER_BATCH = 10_000  # ReplicationControlManager: partitions one CreateTopics may ask for
EXCESSIVE_PARTITIONS = "Excessively large number of partitions per request."
EXCESSIVE_BATCH = "Unable to perform excessively large batch operation."

CREATED = CREATE_TOPICS.response.struct("CreatableTopicResult")
CREATED_CONFIG = CREATE_TOPICS.response.struct("CreatableTopicConfigs")
DELETED = DELETE_TOPICS.response.struct("DeletableTopicResult")
PARTITIONS_RESULT = CREATE_PARTITIONS.response.struct("CreatePartitionsTopicResult")
CLUSTER_BROKER = DESCRIBE_CLUSTER.response.struct("DescribeClusterBroker")


def _once_each(entries: list[Data]) -> Iterator[tuple[Data, bool]]:
    """Each named entry once, with whether its name appeared more than once in the request
    (Kafka answers a duplicated name once, with INVALID_REQUEST)."""
    counts = Counter(entry.name for entry in entries)
    answered: set[str] = set()
    for entry in entries:
        if entry.name not in answered:
            answered.add(entry.name)
            yield entry, counts[entry.name] > 1


def handle_create_topics(broker: Broker, request: Request, now_ms: int) -> Data:
    body = request.body
    refusal = _partitions_requested_refusal(body.topics, broker.config.get_int("num.partitions"))
    if refusal is not None:
        return CREATE_TOPICS.response.make(topics=[
            CREATED.make(name=topic.name, topic_id=ZERO_UUID, configs=[], error_code=refusal.error.code,
                         error_message=refusal.message)
            for topic, _ in _once_each(body.topics)])
    checked_topics: list[tuple[Data, Data, int, int, dict[str, str | None]]] = []
    results = []
    records = 0
    for topic, duplicated in _once_each(body.topics):
        result = CREATED.make(name=topic.name, topic_id=ZERO_UUID, configs=[], error_message=None)
        results.append(result)
        try:
            if duplicated:
                raise KafkaError(Errors.INVALID_REQUEST, "Duplicate topic name.")
            partitions, replication_factor = _shape(broker, topic)
            configs = {c.name: c.value for c in topic.configs}
            partitions, replication_factor, _ = broker.topics.check_new_topic(
                topic.name, partitions, replication_factor, configs)
        except KafkaError as refused:
            result.error_code, result.error_message = refused.error.code, refused.message
            continue
        records += 1 + partitions + len(configs)  # TopicRecord, PartitionRecords, ConfigRecords
        checked_topics.append((topic, result, partitions, replication_factor, configs))
    if records > MAX_RECORDS_PER_USER_OP:
        for result in results:
            result.error_code, result.error_message = Errors.POLICY_VIOLATION.code, EXCESSIVE_BATCH
        return CREATE_TOPICS.response.make(topics=results)
    for topic, result, partitions, replication_factor, configs in checked_topics:
        try:
            if body.validate_only:
                partitions, replication_factor, checked = broker.topics.check_new_topic(
                    topic.name, partitions, replication_factor, configs)
            else:
                created = broker.topics.create(topic.name, partitions, replication_factor, configs)
                partitions, replication_factor, checked = created.partitions, created.replication_factor, created.configs
                result.topic_id = created.topic_id
        except KafkaError as refused:
            result.error_code, result.error_message = refused.error.code, refused.message
            continue
        result.num_partitions = partitions
        result.replication_factor = replication_factor
        result.configs = [
            CREATED_CONFIG.make(name=entry.name, value=entry.value, read_only=entry.read_only,
                                config_source=entry.config_source, is_sensitive=entry.is_sensitive)
            for entry in describe_topic_config(broker.config, checked, None, False, False, as_created=True)
        ]
    return CREATE_TOPICS.response.make(topics=results)


def _partitions_requested_refusal(topics: list[Data], default_partitions: int) -> KafkaError | None:
    """Kafka's ``validateTotalNumberOfPartitions``, its ``int`` arithmetic included (rule 1 above);
    the sum is the controller's (``reference.controller.topic_control``), so both paths count alike."""
    requested = requested_partitions(topics, default_partitions)
    if as_java_int(requested) > MAX_PARTITIONS_PER_BATCH:
        return KafkaError(Errors.POLICY_VIOLATION, EXCESSIVE_PARTITIONS)
    if requested > MAX_PARTITIONS_PER_BATCH:  # wrapped past 2^31: Kafka fails placing them
        return KafkaError(Errors.UNKNOWN_SERVER_ERROR, None)
    return None


def _shape(broker: Broker, topic: Data) -> tuple[int, int]:
    """(partitions, replication factor) from the counts, or from explicit assignments."""
    if not topic.assignments:
        return topic.num_partitions, topic.replication_factor
    # Kafka's controller checks the replication factor first, then the count, naming the field.
    if topic.replication_factor != -1:
        raise KafkaError(Errors.INVALID_REQUEST,
                         "A manual partition assignment was specified, but replication factor was not set to -1.")
    if topic.num_partitions != -1:
        raise KafkaError(Errors.INVALID_REQUEST,
                         "A manual partition assignment was specified, but numPartitions was not set to -1.")
    for assignment in topic.assignments:
        unknown = [b for b in assignment.broker_ids if b != broker.node_id]
        if unknown or not assignment.broker_ids:
            raise KafkaError(Errors.INVALID_REPLICA_ASSIGNMENT,
                             f"The manual partition assignment includes broker(s) {unknown} that are not registered.")
    indexes = sorted(a.partition_index for a in topic.assignments)
    if indexes != list(range(len(indexes))):
        raise KafkaError(Errors.INVALID_REPLICA_ASSIGNMENT, "Partitions must be numbered 0 to n-1.")
    return len(indexes), len(topic.assignments[0].broker_ids)


def handle_delete_topics(broker: Broker, request: Request, now_ms: int) -> Data:
    body = request.body
    if request.version >= 6:
        wanted = [(t.name, t.topic_id) for t in body.topics]
    else:
        wanted = [(name, ZERO_UUID) for name in body.topic_names]
    names = Counter(name for name, _ in wanted if name is not None)
    ids = Counter(topic_id for name, topic_id in wanted if name is None)
    responses = []
    answered: set[tuple[str | None, uuid.UUID]] = set()
    for name, topic_id in wanted:
        if (name, topic_id) in answered:  # a name or id given twice is answered once, and refused
            continue
        answered.add((name, topic_id))
        result = DELETED.make(name=name, topic_id=topic_id)
        try:
            if name is not None and topic_id != ZERO_UUID:
                raise KafkaError(Errors.INVALID_REQUEST, "You may not specify both topic name and topic id.")
            if (names[name] if name is not None else ids[topic_id]) > 1:
                raise KafkaError(Errors.INVALID_REQUEST,
                                 "Duplicate topic name." if name is not None else "Duplicate topic id.")
            if name is None:
                found = broker.topics.by_id(topic_id)
                if found is None:
                    raise KafkaError(Errors.UNKNOWN_TOPIC_ID, "This server does not host this topic ID.")
                name = result.name = found.name
            registered = broker.topics.get(name)
            if registered is None:
                raise KafkaError(Errors.UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic-partition.")
            if not broker.config.get_bool("delete.topic.enable"):
                raise KafkaError(Errors.TOPIC_DELETION_DISABLED, "Topic deletion is disabled.")
            result.topic_id = registered.topic_id
            broker.topics.delete(name)
        except KafkaError as refused:
            result.error_code, result.error_message = refused.error.code, refused.message
        responses.append(result)
    return DELETE_TOPICS.response.make(responses=responses)


def handle_create_partitions(broker: Broker, request: Request, now_ms: int) -> Data:
    body = request.body
    results = []
    records = 0  # one PartitionRecord per new partition, counted across the request (rule 3 above)
    for topic, duplicated in _once_each(body.topics):
        result = PARTITIONS_RESULT.make(name=topic.name)
        try:
            if duplicated:
                raise KafkaError(Errors.INVALID_REQUEST, "Duplicate topic name.")
            if broker.topics.get(topic.name) is None:  # Kafka answers an unknown topic without a message
                raise KafkaError(Errors.UNKNOWN_TOPIC_OR_PARTITION, None)
            registered = broker.topics.check_partition_increase(topic.name, topic.count)
            added = topic.count - registered.partitions
            if topic.assignments is not None and len(topic.assignments) != added:
                raise KafkaError(Errors.INVALID_REPLICA_ASSIGNMENT,
                                 f"Attempted to add {added} additional partition(s), but only "
                                 f"{len(topic.assignments)} assignment(s) were specified.")
            if records + added > MAX_RECORDS_PER_USER_OP:
                raise KafkaError(Errors.UNKNOWN_SERVER_ERROR, None)
            records += added
            if not body.validate_only:
                broker.topics.add_partitions(topic.name, topic.count)
        except KafkaError as refused:
            result.error_code, result.error_message = refused.error.code, refused.message
        results.append(result)
    return CREATE_PARTITIONS.response.make(results=results)


def handle_describe_cluster(broker: Broker, request: Request, now_ms: int) -> Data:
    return DESCRIBE_CLUSTER.response.make(
        endpoint_type=request.body.endpoint_type,
        cluster_id=broker.cluster_id,
        controller_id=broker.node_id,
        brokers=[CLUSTER_BROKER.make(broker_id=broker.node_id, host=broker.host, port=broker.port, rack=None)],
    )
