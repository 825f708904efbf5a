"""Topics and partitions created and deleted: Kafka's ``ReplicationControlManager`` (part).

Theory of operation
-------------------
CreateTopics (key 19), as Kafka 4.3's ControllerApis and ReplicationControlManager decide it, in
this order:

1. A name given twice: INVALID_REQUEST "Duplicate topic name.", answered once, not created.
2. The whole request: if the partitions it asks for add up to more than 10,000 (``num.partitions``
   for -1, the assignment count for manual assignments), every topic is refused with
   POLICY_VIOLATION "Excessively large number of partitions per request."
   (``validateTotalNumberOfPartitions``).  Kafka sums in a Java ``int``: a sum that wraps passes,
   and the placer then fails to allocate room for the huge topic, so every topic gets
   UNKNOWN_SERVER_ERROR (refka answers the same without trying).  Independently, an operation whose records would exceed
   ``MAX_RECORDS_PER_USER_OP`` (10,000) fails whole with POLICY_VIOLATION "Unable to perform
   excessively large batch operation." (the quorum controller checks that for every operation).
3. Per topic: a legal name (INVALID_TOPIC_EXCEPTION, ``Topic.validate``), no '.'/'_' collision with
   an existing topic (INVALID_TOPIC_EXCEPTION), not existing (TOPIC_ALREADY_EXISTS), configs without
   null values and valid (INVALID_CONFIG).
4. Shape: manual assignments need NumPartitions and ReplicationFactor -1 (INVALID_REQUEST), each a
   non-empty list of distinct registered brokers of one common size, partitions numbered 0..n-1
   (INVALID_REPLICA_ASSIGNMENT), not all fenced or shutting down (INVALID_REPLICA_ASSIGNMENT);
   otherwise ReplicationFactor and NumPartitions are -1 or positive (INVALID_REPLICATION_FACTOR,
   INVALID_PARTITIONS) and the placer finds replicas (INVALID_REPLICATION_FACTOR "Unable to replicate
   the partition N time(s): ...").
5. Records: TopicRecord, then the topic's ConfigRecords (and, with ELR on, a ClearElrRecord after a
   ``min.insync.replicas``, as Kafka writes it), then one PartitionRecord per partition with
   ISR = the active replicas, leader = the first of them, epochs 0.  ``validate_only`` writes none,
   but the record cap applies to the records it would have written, as in Kafka.

CreatePartitions (key 37): UNKNOWN_TOPIC_OR_PARTITION; INVALID_PARTITIONS for no increase; manual
assignments must number exactly the added partitions and match the replication factor
(INVALID_REPLICA_ASSIGNMENT).  DeleteTopics (key 20): TOPIC_DELETION_DISABLED for every topic when
``delete.topic.enable`` is false; a name and an id together, or a duplicated name or id,
INVALID_REQUEST; UNKNOWN_TOPIC_OR_PARTITION / UNKNOWN_TOPIC_ID; one RemoveTopicRecord per topic (the
topic's partitions and configs go with it).
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from typing import TYPE_CHECKING

from ..broker.configs import describe_topic_config
from ..broker.topic_names import METADATA_TOPIC, collides_with, validate_topic_name
from ..errors import ErrorCode, Errors, KafkaError
from ..protocol.messages import create_partitions as create_partitions_api
from ..protocol.messages import create_topics as create_topics_api
from ..protocol.messages import delete_topics as delete_topics_api
from ..protocol.primitives import ZERO_UUID, uuid_string
from ..protocol.schema import Data
from .config_control import SET, clear_elr_records, incremental_changes
from .controller_config import MAX_RECORDS_PER_USER_OP, ControllerConfig
from .image import MIGRATING_DIRECTORY
from .metadata_records import CONFIG_RESOURCE_TOPIC, MetadataRecord, make, uuid_text
from .replica_placement import UsableBroker, invalid_replication_factor, place_replicas
from .replication_control import is_active, uuid_from_text

if TYPE_CHECKING:
    from .image import MetadataImage

CREATED = create_topics_api.RESPONSE.struct("CreatableTopicResult")
CREATED_CONFIG = create_topics_api.RESPONSE.struct("CreatableTopicConfigs")
DELETED = delete_topics_api.RESPONSE.struct("DeletableTopicResult")
PARTITIONS_RESULT = create_partitions_api.RESPONSE.struct("CreatePartitionsTopicResult")

TOO_MANY_PARTITIONS = "Excessively large number of partitions per request."
UNASSIGNED_DIRECTORY = uuid_string(uuid.UUID(int=1))  # DirectoryId.UNASSIGNED: the broker picks the log dir


def new_topic_id(image: MetadataImage, rng: random.Random) -> str:
    """Kafka's ``Uuid.randomUuid``: random, never the reserved ids nor text starting with '-'."""
    while True:
        value = uuid.UUID(int=rng.getrandbits(128), version=4)
        text = uuid_string(value)
        if value.int > 1 and not text.startswith("-") and text not in image.topics_by_id:
            return text


def default_directory(image: MetadataImage, broker_id: int) -> str:
    """``ClusterControlManager.defaultDir``: the broker's only log dir; UNASSIGNED when it has
    several (the broker chooses) or is unknown; MIGRATING when it registered none."""
    registration = image.brokers.get(broker_id)
    if registration is None:
        return UNASSIGNED_DIRECTORY
    directories = registration.log_dirs
    if not directories:
        return MIGRATING_DIRECTORY
    return directories[0] if len(directories) == 1 else UNASSIGNED_DIRECTORY


def usable_brokers(image: MetadataImage) -> list[UsableBroker]:
    """Registered brokers not in controlled shutdown (``BrokerHeartbeatManager.usableBrokers``)."""
    return [UsableBroker(b.broker_id, b.rack, b.fenced) for b in image.brokers.values()
            if not b.in_controlled_shutdown]


def partition_record(image: MetadataImage, topic_id: str, partition_id: int, replicas: list[int],
                     isr: list[int]) -> MetadataRecord:
    return make("PartitionRecord", partition_id=partition_id, topic_id=topic_id, replicas=list(replicas),
                isr=list(isr), removing_replicas=[], adding_replicas=[], leader=isr[0],
                leader_recovery_state=0, leader_epoch=0, partition_epoch=0,
                directories=[default_directory(image, b) for b in replicas])


# -- CreateTopics (19) ---------------------------------------------------------------------------------


def requested_partitions(topics: list[Data], default_partitions: int) -> int:
    """The partitions a CreateTopics asks for: explicit assignments, else the count (-1: the default)."""
    total = 0
    for topic in topics:
        if topic.assignments:
            total += len(topic.assignments)
        elif topic.num_partitions == -1:
            total += default_partitions
        elif topic.num_partitions > 0:
            total += topic.num_partitions
    return total


def as_java_int(value: int) -> int:
    """``value`` as Java's 32-bit ``int`` arithmetic leaves it (it wraps past 2^31 - 1)."""
    return (value + (1 << 31)) % (1 << 32) - (1 << 31)


def total_requested_partitions(topics: list[Data], default_partitions: int) -> int:
    """``validateTotalNumberOfPartitions``'s sum over the request, in a Java ``int`` (it wraps)."""
    return as_java_int(requested_partitions(topics, default_partitions))


def _refuse_every_topic(request: Data, error: ErrorCode, message: str | None) -> Data:
    answered = dict.fromkeys(topic.name for topic in request.topics)
    return create_topics_api.RESPONSE.make(topics=[
        CREATED.make(name=name, topic_id=ZERO_UUID, error_code=error.code, error_message=message, configs=[])
        for name in answered])


def create_topics(image: MetadataImage, config: ControllerConfig, rng: random.Random, request: Data,
                  version: int) -> tuple[list[MetadataRecord], Data]:
    counts = Counter(topic.name for topic in request.topics)
    unique = [topic for topic in request.topics if counts[topic.name] == 1]
    if total_requested_partitions(unique, config.num_partitions) > MAX_RECORDS_PER_USER_OP:
        return [], _refuse_every_topic(request, Errors.POLICY_VIOLATION, TOO_MANY_PARTITIONS)
    if any(not topic.assignments and topic.num_partitions > MAX_RECORDS_PER_USER_OP for topic in unique):
        # Only a sum that wrapped gets here; Kafka's placer then fails to allocate its result list,
        # an internal error that fails the whole request.
        return [], _refuse_every_topic(request, Errors.UNKNOWN_SERVER_ERROR, None)
    records: list[MetadataRecord] = []
    results = []
    answered_names: set[str] = set()
    for topic in request.topics:
        if topic.name in answered_names:
            continue
        answered_names.add(topic.name)
        result = CREATED.make(name=topic.name, topic_id=ZERO_UUID, error_message=None, configs=[])
        results.append(result)
        try:
            if counts[topic.name] > 1:
                raise KafkaError(Errors.INVALID_REQUEST, "Duplicate topic name.")
            records += _create_topic(image, config, rng, topic, result)
        except KafkaError as refused:
            result.error_code, result.error_message = refused.error.code, refused.message
    return records, create_topics_api.RESPONSE.make(topics=results)


def _create_topic(image: MetadataImage, config: ControllerConfig, rng: random.Random, topic: Data,
                  result: Data) -> list[MetadataRecord]:
    name = topic.name
    validate_topic_name(name)
    if name == METADATA_TOPIC:
        raise KafkaError(Errors.INVALID_REQUEST, f"Creation of internal topic {METADATA_TOPIC} is prohibited.")
    if name in image.topics:
        raise KafkaError(Errors.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
    clash = collides_with(name, image.topics.keys())
    if clash is not None:
        raise KafkaError(Errors.INVALID_TOPIC_EXCEPTION, f"Topic '{name}' collides with existing topic: {clash}")
    nulls = [c.name for c in topic.configs if c.value is None]
    if nulls:
        raise KafkaError(Errors.INVALID_CONFIG, "Null value not supported for topic configs: " + ",".join(nulls))
    config_records = incremental_changes(image, config, CONFIG_RESOURCE_TOPIC, name,
                                         [(c.name, SET, c.value) for c in topic.configs], newly_created=True)
    config_records += clear_elr_records(image, config_records)
    assignments = _topic_assignments(image, config, rng, topic)
    topic_id = new_topic_id(image, rng)
    records = [make("TopicRecord", name=name, topic_id=topic_id), *config_records]
    for partition_id, (replicas, isr) in enumerate(assignments):
        records.append(partition_record(image, topic_id, partition_id, replicas, isr))
    overrides = {c.name: c.value for c in topic.configs}
    result.topic_id = uuid_from_text(topic_id)
    result.num_partitions = len(assignments)
    result.replication_factor = len(assignments[0][0])
    result.configs = [
        CREATED_CONFIG.make(name=entry.name, value=entry.value, read_only=entry.read_only,
                            config_source=entry.config_source, is_sensitive=entry.is_sensitive)
        for entry in sorted(describe_topic_config(config.broker_config(image), overrides, as_created=True),
                            key=lambda entry: entry.name)
    ]
    return records


def _topic_assignments(image: MetadataImage, config: ControllerConfig, rng: random.Random,
                       topic: Data) -> list[tuple[list[int], list[int]]]:
    """(replicas, ISR) per partition, from the manual assignments or the placer."""
    if topic.assignments:
        if topic.replication_factor != -1:
            raise KafkaError(Errors.INVALID_REQUEST, "A manual partition assignment was specified, but "
                             "replication factor was not set to -1.")
        if topic.num_partitions != -1:
            raise KafkaError(Errors.INVALID_REQUEST, "A manual partition assignment was specified, but "
                             "numPartitions was not set to -1.")
        by_index: dict[int, tuple[list[int], list[int]]] = {}
        replication_factor: int | None = None
        for assignment in topic.assignments:
            if assignment.partition_index in by_index:
                raise KafkaError(Errors.INVALID_REPLICA_ASSIGNMENT, "Found multiple manual partition "
                                 f"assignments for partition {assignment.partition_index}")
            replicas = list(assignment.broker_ids)
            validate_manual_assignment(image, replicas, replication_factor)
            replication_factor = len(replicas)
            isr = [b for b in replicas if is_active(image, b)]
            if not isr:
                raise KafkaError(Errors.INVALID_REPLICA_ASSIGNMENT, "All brokers specified in the manual "
                                 f"partition assignment for partition {assignment.partition_index} are fenced "
                                 "or in controlled shutdown.")
            by_index[assignment.partition_index] = (replicas, isr)
        if sorted(by_index) != list(range(len(by_index))):
            raise KafkaError(Errors.INVALID_REPLICA_ASSIGNMENT,
                             "partitions should be a consecutive 0-based integer sequence")
        return [by_index[index] for index in range(len(by_index))]
    if topic.replication_factor < -1 or topic.replication_factor == 0:
        raise KafkaError(Errors.INVALID_REPLICATION_FACTOR,
                         "Replication factor must be larger than 0, or -1 to use the default value.")
    if topic.num_partitions < -1 or topic.num_partitions == 0:
        raise KafkaError(Errors.INVALID_PARTITIONS, "Number of partitions was set to an invalid non-positive value.")
    partitions = config.num_partitions if topic.num_partitions == -1 else topic.num_partitions
    replication_factor = (config.default_replication_factor if topic.replication_factor == -1
                          else topic.replication_factor)
    return _placed(image, rng, partitions, replication_factor)


def _placed(image: MetadataImage, rng: random.Random, partitions: int,
            replication_factor: int) -> list[tuple[list[int], list[int]]]:
    try:
        placements = place_replicas(usable_brokers(image), partitions, replication_factor, rng)
    except KafkaError as refused:
        raise invalid_replication_factor(
            f"Unable to replicate the partition {replication_factor} time(s): {refused.message}") from refused
    assignments = []
    for replicas in placements:
        isr = [b for b in replicas if is_active(image, b)]
        if not isr:  # every usable broker fenced or shutting down
            raise invalid_replication_factor(
                f"Unable to replicate the partition {replication_factor} time(s): All brokers are currently "
                "fenced or in controlled shutdown.")
        assignments.append((replicas, isr))
    return assignments


def validate_manual_assignment(image: MetadataImage, replicas: list[int], replication_factor: int | None) -> None:
    """``ReplicationControlManager.validateManualPartitionAssignment``."""
    if not replicas:
        raise KafkaError(Errors.INVALID_REPLICA_ASSIGNMENT,
                         "The manual partition assignment includes an empty replica list.")
    previous = None
    for broker_id in sorted(replicas):
        if broker_id not in image.brokers:
            raise KafkaError(Errors.INVALID_REPLICA_ASSIGNMENT, f"The manual partition assignment includes "
                             f"broker {broker_id}, but no such broker is registered.")
        if broker_id == previous:
            raise KafkaError(Errors.INVALID_REPLICA_ASSIGNMENT, f"The manual partition assignment includes the "
                             f"broker {broker_id} more than once.")
        previous = broker_id
    if replication_factor is not None and len(replicas) != replication_factor:
        raise KafkaError(Errors.INVALID_REPLICA_ASSIGNMENT, f"The manual partition assignment includes a "
                         f"partition with {len(replicas)} replica(s), but this is not consistent with previous "
                         f"partitions, which have {replication_factor} replica(s).")


# -- CreatePartitions (37) -------------------------------------------------------------------------------


def create_partitions(image: MetadataImage, config: ControllerConfig, rng: random.Random,
                      request: Data) -> tuple[list[MetadataRecord], Data]:
    """CreatePartitions (37).  The records of all topics share one list bounded at
    ``MAX_RECORDS_PER_USER_OP``; Kafka adds to it topic by topic and the topic that overflows it
    fails with UNKNOWN_SERVER_ERROR (its ``BoundedListTooLongException`` is not an API error), as
    does every later topic with records to add.  (Kafka keeps the overflowing topic's records
    written before the overflow; refka writes none of that topic's records.)"""
    counts = Counter(topic.name for topic in request.topics)
    records: list[MetadataRecord] = []
    full = False
    results = []
    answered: set[str] = set()
    for topic in request.topics:
        if topic.name in answered:
            continue
        answered.add(topic.name)
        result = PARTITIONS_RESULT.make(name=topic.name, error_message=None)
        results.append(result)
        try:
            if counts[topic.name] > 1:
                raise KafkaError(Errors.INVALID_REQUEST, "Duplicate topic name.")
            added = _create_partitions(image, rng, topic)
            if full or len(records) + len(added) > MAX_RECORDS_PER_USER_OP:
                full = True
                raise KafkaError(Errors.UNKNOWN_SERVER_ERROR, None)
            records += added
        except KafkaError as refused:
            result.error_code, result.error_message = refused.error.code, refused.message
    return records, create_partitions_api.RESPONSE.make(results=results)


def _create_partitions(image: MetadataImage, rng: random.Random, request: Data) -> list[MetadataRecord]:
    topic = image.topics.get(request.name)
    if topic is None:  # Kafka 4.3.1 answers this one without a message (DeleteTopics sets one)
        raise KafkaError(Errors.UNKNOWN_TOPIC_OR_PARTITION, None)
    existing = len(topic.partitions)
    if request.count == existing:
        raise KafkaError(Errors.INVALID_PARTITIONS, f"Topic already has {existing} partition(s).")
    if request.count < existing:
        raise KafkaError(Errors.INVALID_PARTITIONS, f"The topic {request.name} currently has {existing} "
                         f"partition(s); {request.count} would not be an increase.")
    additional = request.count - existing
    replication_factor = len(topic.partitions[min(topic.partitions)].replicas)
    if request.assignments is not None:
        if len(request.assignments) != additional:
            raise KafkaError(Errors.INVALID_REPLICA_ASSIGNMENT, f"Attempted to add {additional} additional "
                             f"partition(s), but only {len(request.assignments)} assignment(s) were specified.")
        assignments = []
        for offset, assignment in enumerate(request.assignments):
            replicas = list(assignment.broker_ids)
            validate_manual_assignment(image, replicas, replication_factor)
            isr = [b for b in replicas if is_active(image, b)]
            if not isr:
                raise KafkaError(Errors.INVALID_REPLICA_ASSIGNMENT, "All brokers specified in the manual "
                                 f"partition assignment for partition {existing + offset} are fenced or in "
                                 "controlled shutdown.")
            assignments.append((replicas, isr))
    else:
        assignments = _placed(image, rng, additional, replication_factor)
    return [partition_record(image, topic.topic_id, existing + offset, replicas, isr)
            for offset, (replicas, isr) in enumerate(assignments)]


# -- DeleteTopics (20) -----------------------------------------------------------------------------------


def delete_topics(image: MetadataImage, config: ControllerConfig, request: Data,
                  version: int) -> tuple[list[MetadataRecord], Data]:
    """DeleteTopics (20), with ControllerApis' request checks: deletion disabled answers every
    topic (TOPIC_DELETION_DISABLED from v3); a name and an id both given, or a name or id given
    twice, is INVALID_REQUEST (answered once)."""
    if version >= 6:
        wanted = [(t.name, t.topic_id) for t in request.topics]
    else:
        wanted = [(name, ZERO_UUID) for name in request.topic_names]
    names = Counter(name for name, _ in wanted if name is not None)
    ids = Counter(topic_id for name, topic_id in wanted if name is None)
    records: list[MetadataRecord] = []
    results = []
    answered: set[tuple[str | None, uuid.UUID]] = set()
    for name, topic_id in wanted:
        if (name, topic_id) in answered:
            continue
        answered.add((name, topic_id))
        result = DELETED.make(name=name, topic_id=topic_id)
        results.append(result)
        try:
            if not config.delete_topic_enable:
                if version < 3:
                    raise KafkaError(Errors.INVALID_REQUEST, "This version does not support topic deletion.")
                raise KafkaError(Errors.TOPIC_DELETION_DISABLED, "Topic deletion is disabled.")
            if name is not None and topic_id != ZERO_UUID:
                raise KafkaError(Errors.INVALID_REQUEST, "You may not specify both topic name and topic id.")
            if (names[name] if name is not None else ids[topic_id]) > 1:
                raise KafkaError(Errors.INVALID_REQUEST,
                                 "Duplicate topic name." if name is not None else "Duplicate topic id.")
            records += _delete_topic(image, name, topic_id, result)
        except KafkaError as refused:
            result.error_code, result.error_message = refused.error.code, refused.message
    return records, delete_topics_api.RESPONSE.make(responses=results)


def _delete_topic(image: MetadataImage, name: str | None, topic_id: uuid.UUID, result: Data) -> list[MetadataRecord]:
    if name is None:
        found = image.topics_by_id.get(uuid_text(topic_id))
        if found is None:
            raise KafkaError(Errors.UNKNOWN_TOPIC_ID, "This server does not host this topic ID.")
        name = result.name = found.name
    topic = image.topics.get(name)
    if topic is None:
        raise KafkaError(Errors.UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic-partition.")
    result.topic_id = uuid_from_text(topic.topic_id)
    return [make("RemoveTopicRecord", topic_id=topic.topic_id)]
