"""The records the group coordinator writes to ``__consumer_offsets``, byte for byte as Kafka 4.x.

Theory of operation
-------------------
Kafka keeps consumer groups in an ordinary compacted topic, ``__consumer_offsets``.  Every state
change worth surviving a restart becomes one record there; on start the coordinator reads the
topic from the beginning and *replays* the records to rebuild its memory.  Compaction keeps the
newest record per key, and a record with a null value (a *tombstone*) deletes its key.

The classic protocol uses two record kinds.  Their schemas live in Apache Kafka at
``group-coordinator/src/main/resources/common/message/{OffsetCommit,GroupMetadata}{Key,Value}.json``;
the framing is ``CoordinatorRecordSerde``::

    record key   = record_type:INT16  key fields      (record_type 0 or 1: offset commit,
                                                       record_type 2: group metadata)
    record value = value_version:INT16  value fields  (absent, i.e. null, for a tombstone)

Key fields (never flexible, the same for every version)::

    OffsetCommitKey   = group:STRING  topic:STRING  partition:INT32
    GroupMetadataKey  = group:STRING

Value fields, by version (``v4`` is the first flexible version: compact strings/bytes/arrays and a
tagged-field section closing every struct)::

    OffsetCommitValue v0  = offset:INT64  metadata:STRING  commit_timestamp:INT64
                      v1  = offset:INT64  metadata:STRING  commit_timestamp:INT64  expire_timestamp:INT64
                      v2  = as v0
                      v3  = offset:INT64  leader_epoch:INT32  metadata:STRING  commit_timestamp:INT64
                      v4  = as v3, flexible, with tagged field 0: topic_id:UUID (omitted when unknown)

    GroupMetadataValue    = protocol_type:STRING  generation:INT32  protocol:NULLABLE_STRING
                            leader:NULLABLE_STRING  [current_state_timestamp:INT64   v2+]
                            members:ARRAY(MemberMetadata)
    MemberMetadata        = member_id:STRING  [group_instance_id:NULLABLE_STRING   v3+]
                            client_id:STRING  client_host:STRING
                            [rebalance_timeout:INT32   v1+]  session_timeout:INT32
                            subscription:BYTES  assignment:BYTES

Which versions Kafka 4.x writes (``GroupCoordinatorRecordHelpers``): keys with record type 1
(offset commit) and 2 (group metadata); ``OffsetCommitValue`` v3, or v1 when the commit carried a
retention time (OffsetCommit v2-v4 ``retention_time_ms``, which sets ``expire_timestamp``);
``GroupMetadataValue`` v3.  Apache Kafka 4.3 writes ``OffsetCommitValue`` **v4** (the first
flexible version) and puts the committed topic's id in tagged field 0 when it knows it; Kafka 4.0
wrote v3 (``GroupCoordinatorRecordHelpers.offsetCommitValueVersion``).  refka follows 4.3, checked
byte for byte against records a 4.3.1 broker wrote (see the tests).  Every version is read, so a
log written by an older broker replays too.

Which partition of ``__consumer_offsets`` holds a group: ``Utils.abs(groupId.hashCode()) %
offsets.topic.num.partitions`` (``GroupCoordinatorService.partitionFor``).  Java's
``String.hashCode`` runs over UTF-16 code units with 32-bit wrap-around, and Kafka's ``Utils.abs``
maps ``Integer.MIN_VALUE`` to 0; :func:`java_string_hash_code` and :func:`partition_for` reproduce
both exactly.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from reference.protocol.primitives import DecodeError, Reader, Writer

# Record types: the INT16 that opens every key (Kafka's CoordinatorRecordType ids).
OFFSET_COMMIT_RECORD_TYPES = (0, 1)
OFFSET_COMMIT_RECORD_TYPE = 1
GROUP_METADATA_RECORD_TYPE = 2

# Value versions Kafka 4.x writes.
OFFSET_COMMIT_VALUE_VERSION = 4
OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRE_TIMESTAMP = 1
GROUP_METADATA_VALUE_VERSION = 3
FIRST_FLEXIBLE_VERSION = 4
HIGHEST_VALUE_VERSION = 4

NO_TIMESTAMP = -1
NO_LEADER_EPOCH = -1
TOPIC_ID_TAG = 0  # OffsetCommitValue v4+ tagged field


class UnknownRecordTypeError(DecodeError):
    """A key whose record type is not one the classic coordinator writes (0, 1 or 2)."""


@dataclass(frozen=True)
class OffsetCommitKey:
    group: str
    topic: str
    partition: int


@dataclass(frozen=True)
class OffsetCommitValue:
    offset: int
    metadata: str
    commit_timestamp: int
    leader_epoch: int = NO_LEADER_EPOCH  # v3+
    expire_timestamp: int = NO_TIMESTAMP  # v1 only
    topic_id: uuid.UUID | None = None  # v4+, tagged field 0

    def version(self) -> int:
        """The version Kafka 4.x writes this value with."""
        if self.expire_timestamp != NO_TIMESTAMP:
            return OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRE_TIMESTAMP
        return OFFSET_COMMIT_VALUE_VERSION


@dataclass(frozen=True)
class GroupMetadataKey:
    group: str


@dataclass(frozen=True)
class MemberMetadata:
    member_id: str
    client_id: str
    client_host: str
    session_timeout: int
    subscription: bytes
    assignment: bytes
    rebalance_timeout: int = -1  # v1+
    group_instance_id: str | None = None  # v3+


@dataclass(frozen=True)
class GroupMetadataValue:
    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    current_state_timestamp: int = NO_TIMESTAMP  # v2+
    members: tuple[MemberMetadata, ...] = field(default_factory=tuple)


RecordKey = OffsetCommitKey | GroupMetadataKey
RecordValue = OffsetCommitValue | GroupMetadataValue


# --- partitioning --------------------------------------------------------------------------------


def java_string_hash_code(text: str) -> int:
    """Java's ``String.hashCode``: ``s[0]*31^(n-1) + ... + s[n-1]`` over UTF-16 code units, int32."""
    utf16 = text.encode("utf-16-be", "surrogatepass")
    hash_code = 0
    for index in range(0, len(utf16), 2):
        code_unit = (utf16[index] << 8) | utf16[index + 1]
        hash_code = (31 * hash_code + code_unit) & 0xFFFFFFFF
    return hash_code - (1 << 32) if hash_code >= (1 << 31) else hash_code


def java_abs(value: int) -> int:
    """Kafka's ``Utils.abs``: like Math.abs, but ``Integer.MIN_VALUE`` maps to 0, not to itself."""
    return 0 if value == -(1 << 31) else abs(value)


def partition_for(group_id: str, num_partitions: int) -> int:
    """The ``__consumer_offsets`` partition that holds ``group_id``."""
    return java_abs(java_string_hash_code(group_id)) % num_partitions


# --- keys ----------------------------------------------------------------------------------------


def encode_key(key: RecordKey) -> bytes:
    writer = Writer()
    if isinstance(key, OffsetCommitKey):
        writer.int16(OFFSET_COMMIT_RECORD_TYPE)
        writer.string(key.group)
        writer.string(key.topic)
        writer.int32(key.partition)
    else:
        writer.int16(GROUP_METADATA_RECORD_TYPE)
        writer.string(key.group)
    return writer.getvalue()


def decode_key(data: bytes) -> RecordKey:
    """Decode a record key; raises :class:`UnknownRecordTypeError` for record types above 2."""
    reader = Reader(data)
    record_type = reader.int16()
    if record_type in OFFSET_COMMIT_RECORD_TYPES:
        key: RecordKey = OffsetCommitKey(
            group=_required(reader.string()), topic=_required(reader.string()), partition=reader.int32()
        )
    elif record_type == GROUP_METADATA_RECORD_TYPE:
        key = GroupMetadataKey(group=_required(reader.string()))
    else:
        raise UnknownRecordTypeError(f"record type {record_type} is not a classic-group record")
    _expect_end(reader)
    return key


# --- OffsetCommitValue ---------------------------------------------------------------------------


def encode_offset_commit_value(value: OffsetCommitValue, version: int | None = None) -> bytes:
    version = value.version() if version is None else version
    _check_version(version)
    flexible = version >= FIRST_FLEXIBLE_VERSION
    writer = Writer()
    writer.int16(version)
    writer.int64(value.offset)
    if version >= 3:
        writer.int32(value.leader_epoch)
    writer.string(value.metadata, compact=flexible)
    writer.int64(value.commit_timestamp)
    if version == 1:
        writer.int64(value.expire_timestamp)
    if flexible:
        if value.topic_id is None or value.topic_id.int == 0:
            writer.unsigned_varint(0)  # no tagged fields
        else:
            writer.unsigned_varint(1)
            writer.unsigned_varint(TOPIC_ID_TAG)
            writer.unsigned_varint(16)
            writer.uuid(value.topic_id)
    return writer.getvalue()


def decode_offset_commit_value(data: bytes) -> OffsetCommitValue:
    reader = Reader(data)
    version = reader.int16()
    _check_version(version)
    flexible = version >= FIRST_FLEXIBLE_VERSION
    offset = reader.int64()
    leader_epoch = reader.int32() if version >= 3 else NO_LEADER_EPOCH
    metadata = _required(reader.string(compact=flexible))
    commit_timestamp = reader.int64()
    expire_timestamp = reader.int64() if version == 1 else NO_TIMESTAMP
    topic_id: uuid.UUID | None = None
    if flexible:
        tagged = _read_tagged_fields(reader)
        if TOPIC_ID_TAG in tagged:
            topic_id = Reader(tagged[TOPIC_ID_TAG]).uuid()
    _expect_end(reader)
    return OffsetCommitValue(
        offset=offset,
        metadata=metadata,
        commit_timestamp=commit_timestamp,
        leader_epoch=leader_epoch,
        expire_timestamp=expire_timestamp,
        topic_id=topic_id,
    )


# --- GroupMetadataValue --------------------------------------------------------------------------


def encode_group_metadata_value(
    value: GroupMetadataValue, version: int = GROUP_METADATA_VALUE_VERSION
) -> bytes:
    _check_version(version)
    flexible = version >= FIRST_FLEXIBLE_VERSION
    writer = Writer()
    writer.int16(version)
    writer.string(value.protocol_type, compact=flexible)
    writer.int32(value.generation)
    writer.string(value.protocol, compact=flexible)
    writer.string(value.leader, compact=flexible)
    if version >= 2:
        writer.int64(value.current_state_timestamp)
    writer.array_length(len(value.members), compact=flexible)
    for member in value.members:
        _encode_member(writer, member, version)
    if flexible:
        writer.unsigned_varint(0)
    return writer.getvalue()


def _encode_member(writer: Writer, member: MemberMetadata, version: int) -> None:
    flexible = version >= FIRST_FLEXIBLE_VERSION
    writer.string(member.member_id, compact=flexible)
    if version >= 3:
        writer.string(member.group_instance_id, compact=flexible)
    writer.string(member.client_id, compact=flexible)
    writer.string(member.client_host, compact=flexible)
    if version >= 1:
        writer.int32(member.rebalance_timeout)
    writer.int32(member.session_timeout)
    writer.bytes_(member.subscription, compact=flexible)
    writer.bytes_(member.assignment, compact=flexible)
    if flexible:
        writer.unsigned_varint(0)


def decode_group_metadata_value(data: bytes) -> GroupMetadataValue:
    reader = Reader(data)
    version = reader.int16()
    _check_version(version)
    flexible = version >= FIRST_FLEXIBLE_VERSION
    protocol_type = _required(reader.string(compact=flexible))
    generation = reader.int32()
    protocol = reader.string(compact=flexible)
    leader = reader.string(compact=flexible)
    current_state_timestamp = reader.int64() if version >= 2 else NO_TIMESTAMP
    member_count = reader.array_length(compact=flexible)
    members = tuple(_decode_member(reader, version) for _ in range(max(member_count, 0)))
    if flexible:
        _skip_tagged_fields(reader)
    _expect_end(reader)
    return GroupMetadataValue(
        protocol_type=protocol_type,
        generation=generation,
        protocol=protocol,
        leader=leader,
        current_state_timestamp=current_state_timestamp,
        members=members,
    )


def _decode_member(reader: Reader, version: int) -> MemberMetadata:
    flexible = version >= FIRST_FLEXIBLE_VERSION
    member_id = _required(reader.string(compact=flexible))
    group_instance_id = reader.string(compact=flexible) if version >= 3 else None
    client_id = _required(reader.string(compact=flexible))
    client_host = _required(reader.string(compact=flexible))
    rebalance_timeout = reader.int32() if version >= 1 else -1
    session_timeout = reader.int32()
    subscription = _required_bytes(reader.bytes_(compact=flexible))
    assignment = _required_bytes(reader.bytes_(compact=flexible))
    if flexible:
        _skip_tagged_fields(reader)
    return MemberMetadata(
        member_id=member_id,
        group_instance_id=group_instance_id,
        client_id=client_id,
        client_host=client_host,
        rebalance_timeout=rebalance_timeout,
        session_timeout=session_timeout,
        subscription=subscription,
        assignment=assignment,
    )


# --- whole records -------------------------------------------------------------------------------


def encode_record(key: RecordKey, value: RecordValue | None) -> tuple[bytes, bytes | None]:
    """One ``(key, value)`` pair for ``__consumer_offsets``; ``value=None`` is a tombstone."""
    if value is None:
        return encode_key(key), None
    if isinstance(value, OffsetCommitValue):
        return encode_key(key), encode_offset_commit_value(value)
    return encode_key(key), encode_group_metadata_value(value)


def decode_record(key: bytes, value: bytes | None) -> tuple[RecordKey, RecordValue | None]:
    decoded_key = decode_key(key)
    if value is None:
        return decoded_key, None
    if isinstance(decoded_key, OffsetCommitKey):
        return decoded_key, decode_offset_commit_value(value)
    return decoded_key, decode_group_metadata_value(value)


# --- helpers -------------------------------------------------------------------------------------


def _check_version(version: int) -> None:
    if not 0 <= version <= HIGHEST_VALUE_VERSION:
        raise DecodeError(f"value version {version} is outside 0..{HIGHEST_VALUE_VERSION}")


def _read_tagged_fields(reader: Reader) -> dict[int, bytes]:
    """The tagged-field section: count, then (tag, size, bytes) each; unknown tags are kept raw."""
    fields: dict[int, bytes] = {}
    for _ in range(reader.unsigned_varint()):
        tag = reader.unsigned_varint()
        fields[tag] = reader.raw(reader.unsigned_varint())
    return fields


def _skip_tagged_fields(reader: Reader) -> None:
    _read_tagged_fields(reader)


def _expect_end(reader: Reader) -> None:
    if reader.remaining() != 0:
        raise DecodeError(f"{reader.remaining()} unexpected trailing bytes")


def _required(text: str | None) -> str:
    if text is None:
        raise DecodeError("a non-nullable string field is null")
    return text


def _required_bytes(data: bytes | None) -> bytes:
    if data is None:
        raise DecodeError("a non-nullable bytes field is null")
    return data
