"""Metadata (3): the brokers, the controller, and every requested topic's partitions and leaders.

Rules, as Kafka applies them:

* ``topics`` null (v1+) or empty (v0) asks for every topic; internal topics are listed with
  ``is_internal`` set.
* A topic that does not exist is created when ``auto.create.topics.enable`` is true and the
  request allows it (``allow_auto_topic_creation``, always true before v4) and its name is valid;
  otherwise it is answered with UNKNOWN_TOPIC_OR_PARTITION, or INVALID_TOPIC_EXCEPTION for an
  invalid name.  Apache Kafka 4 creates the topic asynchronously and answers the first request
  with UNKNOWN_TOPIC_OR_PARTITION; a single reference node creates it at once and answers with it.
* Topic ids (v10+) and lookups by id (v12+; UNKNOWN_TOPIC_ID when unknown).  A v10-11 request
  that gives any topic id is answered INVALID_REQUEST for every topic it names.
* Brokers, the controller id and each partition's leader, leader epoch (v7+), replicas, ISR and
  offline replicas (v5+) come from the broker's view of the cluster (``broker.cluster``,
  :mod:`reference.broker.cluster_view`): on one node this node leads everything; in a KRaft cluster
  the metadata image says.  A partition without a leader is LEADER_NOT_AVAILABLE with leader -1.
* In a KRaft cluster an unknown topic is created by the controller: the broker forwards a
  CreateTopics and answers UNKNOWN_TOPIC_OR_PARTITION until the topic reaches its metadata.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from ...errors import Errors, KafkaError
from ...protocol.apis import API_BY_KEY
from ...protocol.frames import Request
from ...protocol.primitives import ZERO_UUID
from ...protocol.schema import Data

if TYPE_CHECKING:
    from ..core import Broker
    from ..topics import Topic

API = API_BY_KEY[3]
BROKER = API.response.struct("MetadataResponseBroker")
TOPIC = API.response.struct("MetadataResponseTopic")
PARTITION = API.response.struct("MetadataResponsePartition")

AUTHORIZED_OPERATIONS_OMITTED = -2147483648  # Integer.MIN_VALUE: "not requested"


def handle_metadata(broker: Broker, request: Request, now_ms: int) -> Data:
    body = request.body
    wanted = body.topics
    if request.version == 0 and not wanted:
        wanted = None  # v0: an empty list means all topics
    allow_create = body.allow_auto_topic_creation if request.version >= 4 else True
    if wanted is None:
        topics = [topic_metadata(broker, topic) for topic in broker.topics]
    elif request.version < 12 and any(entry.topic_id != ZERO_UUID for entry in wanted):
        # v10-11 carry topic ids but cannot look topics up by them: Kafka 4.3.1 answers every topic
        # of such a request INVALID_REQUEST, under the name given ("" for none; a null name once
        # crashed the encoder, found by refka fuzz), even the ones asked for by name alone.
        topics = [_topic_error(Errors.INVALID_REQUEST.code, entry.name or "", entry.topic_id) for entry in wanted]
    else:
        topics = [
            _topic_error(Errors.INVALID_REQUEST.code, "", entry.topic_id) if entry.name is None and request.version < 12
            else lookup_or_create(broker, entry.name, entry.topic_id, allow_create, now_ms)
            for entry in wanted
        ]
    return API.response.make(
        brokers=[BROKER.make(node_id=endpoint.node_id, host=endpoint.host, port=endpoint.port, rack=endpoint.rack)
                 for endpoint in broker.cluster.alive_brokers()],
        cluster_id=broker.cluster_id,
        controller_id=broker.cluster.controller_id(),
        topics=topics,
        cluster_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED,
    )


def lookup_or_create(broker: Broker, name: str | None, topic_id: uuid.UUID, allow_create: bool, now_ms: int) -> Data:
    if name is None:
        topic = broker.topics.by_id(topic_id)
        if topic is None:
            return _topic_error(Errors.UNKNOWN_TOPIC_ID.code, None, topic_id)
        return topic_metadata(broker, topic)
    topic = broker.topics.get(name)
    if topic is not None:
        return topic_metadata(broker, topic)
    if allow_create and broker.config.get_bool("auto.create.topics.enable"):
        try:
            topic = broker.auto_create_topic(name, now_ms)
        except KafkaError as error:
            return _topic_error(error.error.code, name, ZERO_UUID)
        if topic is not None:
            return topic_metadata(broker, topic)
    try:
        from ..topic_names import validate_topic_name

        validate_topic_name(name)
    except KafkaError as error:
        return _topic_error(error.error.code, name, ZERO_UUID)
    return _topic_error(Errors.UNKNOWN_TOPIC_OR_PARTITION.code, name, ZERO_UUID)


def _topic_error(code: int, name: str | None, topic_id: uuid.UUID) -> Data:
    return TOPIC.make(error_code=code, name=name, topic_id=topic_id, is_internal=False, partitions=[],
                      topic_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED)


def topic_metadata(broker: Broker, topic: Topic) -> Data:
    partitions = [
        PARTITION.make(
            error_code=(Errors.NONE if view.leader_id >= 0 else Errors.LEADER_NOT_AVAILABLE).code,
            partition_index=view.partition_index, leader_id=view.leader_id, leader_epoch=view.leader_epoch,
            replica_nodes=view.replica_nodes, isr_nodes=view.isr_nodes, offline_replicas=view.offline_replicas,
        )
        for view in broker.cluster.partitions(topic.name) or []
    ]
    return TOPIC.make(error_code=Errors.NONE.code, name=topic.name, topic_id=topic.topic_id,
                      is_internal=topic.is_internal, partitions=partitions,
                      topic_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED)
