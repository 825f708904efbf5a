"""The ConsumerProtocol: what consumers put in JoinGroup's metadata and SyncGroup's assignment.

Theory of operation
-------------------
The group coordinator does not understand consumer subscriptions.  JoinGroup carries, per
assignor a member supports, an opaque ``Metadata`` byte string, and the leader's SyncGroup
carries an opaque ``Assignment`` per member; only the *consumers* read them.  For consumer groups
(``ProtocolType`` "consumer") every client -- Java, librdkafka, refka -- writes them in Kafka's
ConsumerProtocol, a versioned, non-flexible layout preceded by its version as an INT16::

    Subscription v0-3 = version:INT16
        Topics:           [STRING]
        UserData:         NULLABLE_BYTES        -- assignor specific (sticky: previous assignment)
        OwnedPartitions:  [Topic:STRING Partitions:[INT32]]   -- v1+ (KIP-429)
        GenerationId:     INT32 (default -1)    -- v2+ (KIP-792)
        RackId:           NULLABLE_STRING       -- v3+ (KIP-881)

    Assignment v0-3 = version:INT16
        AssignedPartitions: [Topic:STRING Partitions:[INT32]]
        UserData:           NULLABLE_BYTES

Rules (Java's ``ConsumerProtocol``): refka writes version 3; a reader accepts any version >= 0
and reads a *newer* one as the newest it knows (fields are only ever appended, so the prefix it
understands is still valid and trailing bytes are ignored); a negative version is a
:class:`~reference.protocol.schema.DecodeError`-like ``ValueError``.  Because every client keeps
this layout, one group can mix refka, confluent-kafka and Java consumers on a common assignor.

The sticky assignor's UserData (``StickyAssignorUserData``, for members that cannot send
OwnedPartitions) and the cooperative-sticky one (just the generation, INT32) are in
:mod:`reference.client.assignors`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..protocol.primitives import Reader, Writer
from ..protocol.schema import BYTES, INT32, STRING, Array, Data, Field, Message, Struct

CONSUMER_PROTOCOL_TYPE = "consumer"  # JoinGroup's ProtocolType for consumer groups
CONSUMER_PROTOCOL_VERSION = 3  # the newest layout refka writes and reads

_TOPIC_PARTITION = Struct("TopicPartition", [
    Field("Topic", STRING),
    Field("Partitions", Array(INT32)),
])

SUBSCRIPTION = Message(
    "ConsumerProtocolSubscription", api_key=-1, valid_versions="0-3", flexible_versions="none",
    fields=[
        Field("Topics", Array(STRING)),
        Field("UserData", BYTES, nullable="0+", default=None),
        Field("OwnedPartitions", Array(_TOPIC_PARTITION), versions="1+", ignorable=True),
        Field("GenerationId", INT32, versions="2+", default=-1, ignorable=True),
        Field("RackId", STRING, versions="3+", nullable="3+", default=None, ignorable=True),
    ],
)

ASSIGNMENT = Message(
    "ConsumerProtocolAssignment", api_key=-1, valid_versions="0-3", flexible_versions="none",
    fields=[
        Field("AssignedPartitions", Array(_TOPIC_PARTITION)),
        Field("UserData", BYTES, nullable="0+", default=None),
    ],
)

# A partition as the assignors see it: (topic, partition).  Tuples sort as Java's comparators do.
Partition = tuple[str, int]


@dataclass(frozen=True)
class Subscription:
    """One member's subscription as the leader reads it from JoinGroup."""

    topics: tuple[str, ...]
    user_data: bytes | None = None
    owned_partitions: tuple[Partition, ...] = ()
    generation_id: int = -1
    rack_id: str | None = None
    group_instance_id: str | None = None  # from JoinGroup, not from the bytes


@dataclass(frozen=True)
class Assignment:
    partitions: tuple[Partition, ...] = ()
    user_data: bytes | None = None


def _group_by_topic(partitions: Iterable[Partition]) -> list[Data]:
    by_topic: dict[str, list[int]] = {}
    for topic, partition in sorted(partitions):
        by_topic.setdefault(topic, []).append(partition)
    return [_TOPIC_PARTITION.make(topic=topic, partitions=ps) for topic, ps in by_topic.items()]


def _flatten(groups: Iterable[Data]) -> tuple[Partition, ...]:
    return tuple((group.topic, p) for group in groups for p in group.partitions)


def _read_version(data: bytes) -> tuple[int, Reader]:
    reader = Reader(data)
    version = reader.int16()
    if version < 0:
        raise ValueError(f"unsupported ConsumerProtocol version {version}")
    return min(version, CONSUMER_PROTOCOL_VERSION), reader


def encode_subscription(subscription: Subscription, version: int = CONSUMER_PROTOCOL_VERSION) -> bytes:
    writer = Writer()
    writer.int16(version)
    body = SUBSCRIPTION.make(
        topics=sorted(subscription.topics), user_data=subscription.user_data,
        owned_partitions=_group_by_topic(subscription.owned_partitions),
        generation_id=subscription.generation_id, rack_id=subscription.rack_id)
    SUBSCRIPTION.write(body, version, writer)
    return writer.getvalue()


def decode_subscription(data: bytes, group_instance_id: str | None = None) -> Subscription:
    version, reader = _read_version(data)
    body = SUBSCRIPTION.decode(reader, version)
    return Subscription(tuple(body.topics), body.user_data, _flatten(body.owned_partitions),
                        body.generation_id, body.rack_id, group_instance_id)


def encode_assignment(assignment: Assignment, version: int = CONSUMER_PROTOCOL_VERSION) -> bytes:
    writer = Writer()
    writer.int16(version)
    body = ASSIGNMENT.make(assigned_partitions=_group_by_topic(assignment.partitions),
                           user_data=assignment.user_data)
    ASSIGNMENT.write(body, version, writer)
    return writer.getvalue()


def decode_assignment(data: bytes | None) -> Assignment:
    """An empty or null assignment (a member the leader gave nothing) is an empty Assignment."""
    if not data:
        return Assignment()
    version, reader = _read_version(data)
    body = ASSIGNMENT.decode(reader, version)
    return Assignment(_flatten(body.assigned_partitions), body.user_data)


def partitions_by_topic(partitions: Iterable[Partition]) -> Mapping[str, list[int]]:
    grouped: dict[str, list[int]] = {}
    for topic, partition in sorted(partitions):
        grouped.setdefault(topic, []).append(partition)
    return grouped
