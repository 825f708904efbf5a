"""KRaft metadata records in Apache Kafka's own formats, their log framing and their batches.

Theory of operation
-------------------
The metadata log ``__cluster_metadata`` (KIP-500, KIP-631) is an ordinary Kafka log: RecordBatch
v2 batches, each record with a null key and a value holding exactly one *metadata record*.  Kafka
declares each record type once, in a JSON file shipped in ``kafka-metadata-<version>.jar`` under
``common/metadata/*.json`` (``"type": "metadata"``, an ``apiKey``, ``validVersions``, every
version flexible).  The declarations below say the same things in refka's schema DSL
(:mod:`reference.protocol.schema`), every record Kafka 4.3.1 defines, every version; the parity
test (``tests/reference/controller/test_metadata_records.py``) compares them field by field with
the jar's JSON.  A record's *api key* is its type; it shares nothing with the request api keys.

The value of one log record (Kafka's ``AbstractApiMessageSerde``, used by ``MetadataRecordSerde``)::

    MetadataRecordValue =>
      frame_version  UNSIGNED_VARINT   always 1 (0 was KRaft's 2.8 preview and is refused)
      api_key        UNSIGNED_VARINT   the record type: 0 RegisterBrokerRecord, 2 TopicRecord, ...
      version        UNSIGNED_VARINT   the record's schema version
      record         the record body in that version (flexible: compact types, tagged fields)

Reading refuses what Kafka's serde refuses: frame version 0 or any other than 1, a type or
version above 32767, an unknown type, a version the type does not define, and any byte left over
after the body ("garbage after" the record).

Batches (Kafka's ``raft/internals/BatchBuilder``): magic 2, no producer id, CreateTime,
``baseTimestamp == maxTimestamp ==`` the append time, every record's timestamp delta 0 and its key
null, ``partitionLeaderEpoch`` = the Raft epoch of the leader that wrote it.  Compression is off
(Kafka's default for the metadata log).  Control batches (LeaderChangeMessage, snapshot header and
footer, KRaftVersion, Voters) share the log but belong to the Raft layer; iterating a batch here
skips them.

Which versions refka writes
---------------------------
refka announces ``metadata.version`` **4.3-IV0 (feature level 30)**, the latest production level of
Apache Kafka 4.3.1 (``MetadataVersion.latestProduction()``); 4.4-IV0 (31) exists in 4.3.1 but is not
production.  At level 30 Kafka writes (``MetadataVersion.registerBrokerRecordVersion()`` and friends,
checked against the 4.3.1 jars): RegisterBrokerRecord v4 (cordoned log dirs, KIP-1066),
PartitionRecord v2 and PartitionChangeRecord v2 (eligible leader replicas, KIP-966),
RegisterControllerRecord v0, and v0 of every single-version record.  BrokerRegistrationChangeRecord's
version follows its content, as in Kafka's ``ReplicationControlManager``: v0 to fence or unfence, v1
for controlled shutdown, v2 for a change of log directories, v3 for cordoned log directories.
:func:`make` picks that version when none is given.  Kafka 4.x expresses fencing with
BrokerRegistrationChangeRecord; FenceBrokerRecord and UnfenceBrokerRecord still decode and replay.

UUIDs are carried as text: the attribute of a ``uuid`` field holds Kafka's own spelling of a
``Uuid`` (22 characters of base64url without padding, ``Uuid.toString()``), the form DumpLogSegments
prints and the image keys topics by.  :func:`make` also accepts a :class:`uuid.UUID` or its
canonical hyphenated text and normalises it.

Invariants: ``decode_record(encode_record(r)) == r`` for every record whose fields exist in its
version (values of fields absent from the version are refused on encode, as Kafka's generated
``write`` refuses a non-default value there); a batch decodes to the records it was built from, at
``base_offset + i``.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from reference.protocol.primitives import ZERO_UUID, DecodeError, Reader, Writer, uuid_string
from reference.protocol.schema import (
    BOOL,
    BYTES,
    FLOAT64,
    INT8,
    INT16,
    INT32,
    INT64,
    STRING,
    UINT16,
    Array,
    Data,
    Field,
    Message,
    Primitive,
    Struct,
)
from reference.records.batch import (
    SimpleRecord,
    TimestampType,
    build_batch,
    iter_record_batches,
)
from reference.records.compression import CompressionType

# -- the metadata.version refka announces -----------------------------------------------------------

METADATA_VERSION_FEATURE: Final = "metadata.version"
METADATA_VERSION: Final = 30  # 4.3-IV0, MetadataVersion.LATEST_PRODUCTION of Kafka 4.3.1
METADATA_VERSION_NAME: Final = "4.3-IV0"

# -- uuid as Kafka's text -----------------------------------------------------------------------------

ZERO_UUID_TEXT: Final = uuid_string(ZERO_UUID)  # "AAAAAAAAAAAAAAAAAAAAAA", Uuid.ZERO_UUID


def uuid_text(value: str | uuid.UUID) -> str:
    """Kafka's text for a UUID given as :class:`uuid.UUID`, canonical text or Kafka's own text.

    Raises ``ValueError`` for anything else.
    """
    if isinstance(value, uuid.UUID):
        return uuid_string(value)
    if len(value) == 22:
        try:
            raw = base64.urlsafe_b64decode(value + "==")
        except (binascii.Error, ValueError) as error:
            raise ValueError(f"not a Kafka Uuid: {value!r}") from error
        if len(raw) != 16 or uuid_string(uuid.UUID(bytes=raw)) != value:
            raise ValueError(f"not a Kafka Uuid: {value!r}")
        return value
    return uuid_string(uuid.UUID(value))


def _read_uuid_text(reader: Reader) -> str:
    return uuid_string(reader.uuid())


def _write_uuid_text(writer: Writer, value: str | uuid.UUID) -> None:
    writer.uuid(uuid.UUID(bytes=base64.urlsafe_b64decode(uuid_text(value) + "==")))


# Kafka's ``uuid`` on the wire (16 bytes), held as Kafka's text in decoded values.
UUID_TEXT = Primitive("uuid", ZERO_UUID_TEXT, _read_uuid_text, _write_uuid_text)


def _record(name: str, api_key: int, valid_versions: str, fields: list[Field]) -> Message:
    """A metadata record type: every version of every metadata record is flexible ("0+")."""
    return Message(name, api_key=api_key, valid_versions=valid_versions, flexible_versions="0+",
                   fields=fields)


# -- the records: cluster membership ------------------------------------------------------------------

# Written when a broker registers (BrokerRegistration, KIP-631); its offset becomes the broker epoch.
# v1 InControlledShutdown, v2 IsMigratingZkBroker, v3 LogDirs (KIP-858), v4 CordonedLogDirs (KIP-1066).
REGISTER_BROKER_RECORD = _record("RegisterBrokerRecord", 0, "0-4", [
    Field("BrokerId", INT32),
    Field("IsMigratingZkBroker", BOOL, versions="2+", default=False),
    Field("IncarnationId", UUID_TEXT),  # random per process start
    Field("BrokerEpoch", INT64),
    Field("EndPoints", Array(Struct("BrokerEndpoint", [
        Field("Name", STRING),  # the listener name
        Field("Host", STRING),
        Field("Port", UINT16),
        Field("SecurityProtocol", INT16),  # 0 PLAINTEXT, 1 SSL, 2 SASL_PLAINTEXT, 3 SASL_SSL
    ]))),
    Field("Features", Array(Struct("BrokerFeature", [
        Field("Name", STRING),
        Field("MinSupportedVersion", INT16),
        Field("MaxSupportedVersion", INT16),
    ]))),
    Field("Rack", STRING, nullable="0+"),  # null: no rack
    Field("Fenced", BOOL, default=True),  # a new registration starts fenced
    Field("InControlledShutdown", BOOL, versions="1+", default=False),
    Field("LogDirs", Array(UUID_TEXT), versions="3+", tag=0, tagged_versions="3+"),
    Field("CordonedLogDirs", Array(UUID_TEXT), versions="4+", nullable="4+", tag=1, tagged_versions="4+",
          default=None),
])

UNREGISTER_BROKER_RECORD = _record("UnregisterBrokerRecord", 1, "0", [
    Field("BrokerId", INT32),
    Field("BrokerEpoch", INT64),
])

FENCE_BROKER_RECORD = _record("FenceBrokerRecord", 7, "0", [
    Field("Id", INT32),
    Field("Epoch", INT64),  # must match the registration's broker epoch
])

UNFENCE_BROKER_RECORD = _record("UnfenceBrokerRecord", 8, "0", [
    Field("Id", INT32),
    Field("Epoch", INT64),
])

# A change to a registration, every change a tagged field whose default means "no change".
BROKER_REGISTRATION_CHANGE_RECORD = _record("BrokerRegistrationChangeRecord", 17, "0-3", [
    Field("BrokerId", INT32),
    Field("BrokerEpoch", INT64),
    Field("Fenced", INT8, tag=0, tagged_versions="0+"),  # -1 unfence, 0 no change, 1 fence
    Field("InControlledShutdown", INT8, versions="1+", tag=1, tagged_versions="1+"),  # 0 no change, 1 in it
    Field("LogDirs", Array(UUID_TEXT), versions="2+", tag=2, tagged_versions="2+"),  # [] = no change
    Field("CordonedLogDirs", Array(UUID_TEXT), versions="3+", nullable="3+", tag=3, tagged_versions="3+",
          default=None),  # null = no change
])

# A controller's registration (KIP-919); controllers have no epoch and are never fenced.
REGISTER_CONTROLLER_RECORD = _record("RegisterControllerRecord", 27, "0", [
    Field("ControllerId", INT32),
    Field("IncarnationId", UUID_TEXT),
    Field("ZkMigrationReady", BOOL),
    Field("EndPoints", Array(Struct("ControllerEndpoint", [
        Field("Name", STRING),
        Field("Host", STRING),
        Field("Port", UINT16),
        Field("SecurityProtocol", INT16),
    ]))),
    Field("Features", Array(Struct("ControllerFeature", [
        Field("Name", STRING),
        Field("MinSupportedVersion", INT16),
        Field("MaxSupportedVersion", INT16),
    ]))),
])

# -- topics and partitions ------------------------------------------------------------------------------

TOPIC_RECORD = _record("TopicRecord", 2, "0", [
    Field("Name", STRING),
    Field("TopicId", UUID_TEXT),
])

# A new partition, complete.  v1 Directories (KIP-858), v2 ELR and last known ELR (KIP-966).
PARTITION_RECORD = _record("PartitionRecord", 3, "0-2", [
    Field("PartitionId", INT32, default=-1),
    Field("TopicId", UUID_TEXT),
    Field("Replicas", Array(INT32)),  # in preferred order: replicas[0] is the preferred leader
    Field("Isr", Array(INT32)),
    Field("RemovingReplicas", Array(INT32)),
    Field("AddingReplicas", Array(INT32)),
    Field("Leader", INT32, default=-1),  # -1: no leader
    Field("LeaderRecoveryState", INT8, tag=0, tagged_versions="0+", default=0),  # 1: recovering (unclean)
    Field("LeaderEpoch", INT32, default=-1),
    Field("PartitionEpoch", INT32, default=-1),
    Field("Directories", Array(UUID_TEXT), versions="1+"),  # one per replica, in the same order
    Field("EligibleLeaderReplicas", Array(INT32), versions="2+", nullable="2+", tag=1, tagged_versions="2+",
          default=None),
    Field("LastKnownElr", Array(INT32), versions="2+", nullable="2+", tag=2, tagged_versions="2+",
          default=None),
])

# A change to a partition: every changeable field is tagged and its default means "unchanged"
# (null lists, Leader -2 = NO_LEADER_CHANGE, LeaderRecoveryState -1 = NO_CHANGE).
NO_LEADER: Final = -1
NO_LEADER_CHANGE: Final = -2
LEADER_RECOVERY_NO_CHANGE: Final = -1

PARTITION_CHANGE_RECORD = _record("PartitionChangeRecord", 5, "0-2", [
    Field("PartitionId", INT32, default=-1),
    Field("TopicId", UUID_TEXT),
    Field("Isr", Array(INT32), nullable="0+", tag=0, tagged_versions="0+", default=None),
    Field("Leader", INT32, tag=1, tagged_versions="0+", default=NO_LEADER_CHANGE),
    Field("Replicas", Array(INT32), nullable="0+", tag=2, tagged_versions="0+", default=None),
    Field("RemovingReplicas", Array(INT32), nullable="0+", tag=3, tagged_versions="0+", default=None),
    Field("AddingReplicas", Array(INT32), nullable="0+", tag=4, tagged_versions="0+", default=None),
    Field("LeaderRecoveryState", INT8, tag=5, tagged_versions="0+", default=LEADER_RECOVERY_NO_CHANGE),
    Field("Directories", Array(UUID_TEXT), versions="1+", nullable="1+", tag=8, tagged_versions="1+",
          default=None),
    Field("EligibleLeaderReplicas", Array(INT32), versions="2+", nullable="2+", tag=6, tagged_versions="2+",
          default=None),
    Field("LastKnownElr", Array(INT32), versions="2+", nullable="2+", tag=7, tagged_versions="2+",
          default=None),
])

REMOVE_TOPIC_RECORD = _record("RemoveTopicRecord", 9, "0", [
    Field("TopicId", UUID_TEXT),  # its partitions and its configs go with it
])

# Clears the ELR and last known ELR of one topic's partitions, or of all when TopicName is "".
CLEAR_ELR_RECORD = _record("ClearElrRecord", 28, "0", [
    Field("TopicName", STRING),
])

# -- configs, features, producer ids --------------------------------------------------------------------

CONFIG_RESOURCE_TOPIC: Final = 2  # ConfigResource.Type ids used in ConfigRecord.ResourceType
CONFIG_RESOURCE_BROKER: Final = 4
CONFIG_RESOURCE_BROKER_LOGGER: Final = 8
CONFIG_RESOURCE_CLIENT_METRICS: Final = 16
CONFIG_RESOURCE_GROUP: Final = 32

CONFIG_RECORD = _record("ConfigRecord", 4, "0", [
    Field("ResourceType", INT8),
    Field("ResourceName", STRING),  # a topic name, a broker id, or "" for the cluster-wide default
    Field("Name", STRING),
    Field("Value", STRING, nullable="0+"),  # null: delete the key
])

# The first record of a new log or snapshot names the metadata.version needed to read it; the
# record's own version is frozen at 0 for that reason.  Level 0 removes a feature.
FEATURE_LEVEL_RECORD = _record("FeatureLevelRecord", 12, "0", [
    Field("Name", STRING),
    Field("FeatureLevel", INT16),
])

PRODUCER_IDS_RECORD = _record("ProducerIdsRecord", 15, "0", [
    Field("BrokerId", INT32),  # the broker the block went to
    Field("BrokerEpoch", INT64, default=-1),
    Field("NextProducerId", INT64),  # the first id of the next block to hand out
])

# Written by an active controller that has nothing else to write, to advance the high watermark
# (KIP-835).
NO_OP_RECORD = _record("NoOpRecord", 20, "0", [])

# -- security: ACLs, SCRAM credentials, delegation tokens, client quotas ----------------------------------

ACCESS_CONTROL_ENTRY_RECORD = _record("AccessControlEntryRecord", 18, "0", [
    Field("Id", UUID_TEXT),
    Field("ResourceType", INT8),
    Field("ResourceName", STRING),
    Field("PatternType", INT8),
    Field("Principal", STRING),
    Field("Host", STRING),
    Field("Operation", INT8),
    Field("PermissionType", INT8),
])

REMOVE_ACCESS_CONTROL_ENTRY_RECORD = _record("RemoveAccessControlEntryRecord", 19, "0", [
    Field("Id", UUID_TEXT),
])

USER_SCRAM_CREDENTIAL_RECORD = _record("UserScramCredentialRecord", 11, "0", [
    Field("Name", STRING),
    Field("Mechanism", INT8),
    Field("Salt", BYTES),
    Field("StoredKey", BYTES),
    Field("ServerKey", BYTES),
    Field("Iterations", INT32),
])

REMOVE_USER_SCRAM_CREDENTIAL_RECORD = _record("RemoveUserScramCredentialRecord", 22, "0", [
    Field("Name", STRING),
    Field("Mechanism", INT8),
])

DELEGATION_TOKEN_RECORD = _record("DelegationTokenRecord", 10, "0", [
    Field("Owner", STRING),
    Field("Requester", STRING),
    Field("Renewers", Array(STRING)),
    Field("IssueTimestamp", INT64),
    Field("MaxTimestamp", INT64),
    Field("ExpirationTimestamp", INT64),
    Field("TokenId", STRING),
])

REMOVE_DELEGATION_TOKEN_RECORD = _record("RemoveDelegationTokenRecord", 26, "0", [
    Field("TokenId", STRING),
])

CLIENT_QUOTA_RECORD = _record("ClientQuotaRecord", 14, "0", [
    Field("Entity", Array(Struct("EntityData", [
        Field("EntityType", STRING),
        Field("EntityName", STRING, nullable="0+"),  # null: the default entity
    ]))),
    Field("Key", STRING),
    Field("Value", FLOAT64),
    Field("Remove", BOOL),
])

# -- ZooKeeper migration (kept so logs migrated under 3.x still read) and metadata transactions (KIP-868) --

ZK_MIGRATION_STATE_RECORD = _record("ZkMigrationStateRecord", 21, "0", [
    Field("ZkMigrationState", INT8),
])

BEGIN_TRANSACTION_RECORD = _record("BeginTransactionRecord", 23, "0", [
    Field("Name", STRING, nullable="0+", tag=0, tagged_versions="0+", default=None),
])

END_TRANSACTION_RECORD = _record("EndTransactionRecord", 24, "0", [])

ABORT_TRANSACTION_RECORD = _record("AbortTransactionRecord", 25, "0", [
    Field("Reason", STRING, nullable="0+", tag=0, tagged_versions="0+", default=None),
])

# -- the registry ----------------------------------------------------------------------------------------

RECORD_TYPES: Final[tuple[Message, ...]] = (
    REGISTER_BROKER_RECORD, UNREGISTER_BROKER_RECORD, TOPIC_RECORD, PARTITION_RECORD, CONFIG_RECORD,
    PARTITION_CHANGE_RECORD, FENCE_BROKER_RECORD, UNFENCE_BROKER_RECORD, REMOVE_TOPIC_RECORD,
    DELEGATION_TOKEN_RECORD, USER_SCRAM_CREDENTIAL_RECORD, FEATURE_LEVEL_RECORD, CLIENT_QUOTA_RECORD,
    PRODUCER_IDS_RECORD, BROKER_REGISTRATION_CHANGE_RECORD, ACCESS_CONTROL_ENTRY_RECORD,
    REMOVE_ACCESS_CONTROL_ENTRY_RECORD, NO_OP_RECORD, ZK_MIGRATION_STATE_RECORD,
    REMOVE_USER_SCRAM_CREDENTIAL_RECORD, BEGIN_TRANSACTION_RECORD, END_TRANSACTION_RECORD,
    ABORT_TRANSACTION_RECORD, REMOVE_DELEGATION_TOKEN_RECORD, REGISTER_CONTROLLER_RECORD, CLEAR_ELR_RECORD,
)
RECORD_TYPE_BY_NAME: Final[Mapping[str, Message]] = {message.name: message for message in RECORD_TYPES}
RECORD_TYPE_BY_API_KEY: Final[Mapping[int, Message]] = {message.api_key: message for message in RECORD_TYPES}

# The version Kafka 4.3.1 writes at METADATA_VERSION, for types with more than one version.
# (BrokerRegistrationChangeRecord is chosen by content: see written_version.)
_WRITTEN_AT_METADATA_VERSION: Final[Mapping[str, int]] = {
    "RegisterBrokerRecord": 4,  # registerBrokerRecordVersion() at 4.3-IV0
    "PartitionRecord": 2,  # partitionRecordVersion()
    "PartitionChangeRecord": 2,  # partitionChangeRecordVersion()
}


def written_version(name: str, fields: Mapping[str, Any]) -> int:
    """The version Kafka 4.3.1 writes record ``name`` at, at ``metadata.version`` 4.3-IV0.

    BrokerRegistrationChangeRecord: the lowest version holding its change (v0 fence/unfence, v1
    controlled shutdown, v2 log dirs, v3 cordoned log dirs), as ReplicationControlManager does.
    """
    if name == "BrokerRegistrationChangeRecord":
        if fields.get("cordoned_log_dirs") is not None:
            return 3
        if fields.get("log_dirs"):
            return 2
        if fields.get("in_controlled_shutdown", 0) != 0:
            return 1
        return 0
    return _WRITTEN_AT_METADATA_VERSION.get(name, 0)


# -- one record -----------------------------------------------------------------------------------------


class MetadataRecordError(DecodeError):
    """A log record value that is not a metadata record Kafka's MetadataRecordSerde would read
    (Kafka's ``MetadataParseException``)."""


@dataclass(frozen=True)
class MetadataRecord:
    """One metadata record: its type (Kafka's record name), schema version and field values."""

    name: str  # Kafka's record name, e.g. "PartitionRecord"
    version: int  # the record's schema version
    data: Data  # attributes in snake_case (Kafka's JSON field names); uuids as Kafka's text

    @property
    def api_key(self) -> int:
        return record_type(self.name).api_key


def record_type(name: str) -> Message:
    """The schema of record type ``name``; ``ValueError`` if Kafka defines no such record."""
    try:
        return RECORD_TYPE_BY_NAME[name]
    except KeyError:
        raise ValueError(f"no metadata record named {name!r}") from None


def make(name: str, /, version: int | None = None, **fields: Any) -> MetadataRecord:
    """A record of type ``name``: the given fields, every other field at its schema default.

    ``name`` is positional-only, so records with a field called Name (TopicRecord, ConfigRecord,
    FeatureLevelRecord, ...) take it as a keyword: ``make("TopicRecord", name="orders", ...)``.
    ``version`` None is the version refka writes (the one Kafka 4.3.1 writes at
    ``metadata.version`` 4.3-IV0).  UUID fields accept Kafka's text, canonical text or a
    :class:`uuid.UUID` and hold Kafka's text.  Raises ``ValueError`` for an unknown record or a
    version it does not define, ``TypeError`` for a field it does not have.
    """
    message = record_type(name)
    chosen = written_version(name, fields) if version is None else version
    if chosen not in message.valid:
        raise ValueError(f"{name} has no version {chosen} (valid: {message.valid})")
    data = message.make(**fields)
    _normalise_uuids(message.body, data)
    return MetadataRecord(name, chosen, data)


def _normalise_uuids(struct: Struct, data: Data) -> None:
    for f in struct.fields:
        value = getattr(data, f.attribute)
        if value is None:
            continue
        if f.type is UUID_TEXT:
            setattr(data, f.attribute, uuid_text(value))
        elif isinstance(f.type, Array) and f.type.element is UUID_TEXT:
            setattr(data, f.attribute, [uuid_text(item) for item in value])
        elif isinstance(f.type, Array) and isinstance(f.type.element, Struct):
            for item in value:
                _normalise_uuids(f.type.element, item)


def _check_fields_exist(message: Message, data: Data, version: int) -> None:
    """A non-default value in a field absent from ``version`` would be lost: refuse it, as Kafka's
    generated ``write`` does with ``UnsupportedVersionException`` (ignorable fields excepted)."""
    for f in message.fields:
        if version in f.version_range or f.ignorable:
            continue
        if getattr(data, f.attribute, f.default_value()) != f.default_value():
            raise ValueError(f"{message.name} v{version} has no field {f.name} to carry "
                             f"{getattr(data, f.attribute)!r}")


FRAME_VERSION: Final = 1  # AbstractApiMessageSerde.DEFAULT_FRAME_VERSION
_SHORT_MAX: Final = 32767


def encode_record(record: MetadataRecord) -> bytes:
    """The value of one log record in a ``__cluster_metadata`` batch (frame, type, version, body)."""
    message = record_type(record.name)
    if record.version not in message.valid:
        raise ValueError(f"{record.name} has no version {record.version} (valid: {message.valid})")
    _check_fields_exist(message, record.data, record.version)
    writer = Writer()
    writer.unsigned_varint(FRAME_VERSION)
    writer.unsigned_varint(message.api_key)
    writer.unsigned_varint(record.version)
    message.write(record.data, record.version, writer)
    return writer.getvalue()


def _read_short(reader: Reader, what: str) -> int:
    value = reader.unsigned_varint()
    if value > _SHORT_MAX:
        raise MetadataRecordError(f"Value for {what} was too large.")
    return value


def decode_record(value: bytes | bytearray | memoryview) -> MetadataRecord:
    """Read one record value; :class:`MetadataRecordError` (a ``DecodeError``) for anything Kafka's
    MetadataRecordSerde refuses, ``DecodeError`` for a malformed body."""
    reader = Reader(value)
    frame_version = _read_short(reader, "frame version")
    if frame_version == 0:
        raise MetadataRecordError("metadata record with frame version 0 (KRaft's 2.8 preview) is not readable")
    if frame_version != FRAME_VERSION:
        raise MetadataRecordError(f"unknown frame version {frame_version} (only {FRAME_VERSION} is supported)")
    api_key = _read_short(reader, "type")
    version = _read_short(reader, "version")
    message = RECORD_TYPE_BY_API_KEY.get(api_key)
    if message is None:
        raise MetadataRecordError(f"unknown metadata record type {api_key}")
    if version not in message.valid:
        raise MetadataRecordError(f"{message.name} has no version {version} (valid: {message.valid})")
    data = message.decode(reader, version)
    if reader.remaining():
        raise MetadataRecordError(f"Found {reader.remaining()} byte(s) of garbage after {message.name}")
    return MetadataRecord(message.name, version, data)


# -- batches ----------------------------------------------------------------------------------------------


def build_metadata_batch(records: list[MetadataRecord], base_offset: int, leader_epoch: int,
                         timestamp_ms: int) -> bytes:
    """One RecordBatch v2 holding ``records`` at ``base_offset``, ``base_offset + 1``, ... as Kafka's
    Raft BatchBuilder lays it out (null keys, timestamp deltas 0, no producer, no compression).

    ``leader_epoch`` is the partition leader epoch (the Raft epoch).  ``ValueError`` when empty.
    """
    if not records:
        raise ValueError("a metadata batch needs at least one record")
    return build_batch(
        [SimpleRecord(value=encode_record(record), key=None, timestamp=timestamp_ms) for record in records],
        base_offset=base_offset,
        partition_leader_epoch=leader_epoch,
        compression=CompressionType.NONE,
        timestamp_type=TimestampType.CREATE_TIME,
        base_timestamp=timestamp_ms,
    )


def iter_metadata_batch(batch: bytes | bytearray | memoryview) -> Iterator[tuple[int, MetadataRecord]]:
    """``(offset, record)`` for every metadata record in the batch(es) of ``batch``.

    Control batches (the Raft layer's) are skipped.  A torn or corrupt batch raises a
    ``RecordsDecodeError``; a value that is not a metadata record raises :class:`MetadataRecordError`;
    a record without a value is a ``MetadataRecordError`` too.
    """
    for decoded in iter_record_batches(batch, allow_partial_tail=False):
        if decoded.is_control:
            continue
        for record in decoded.records:
            offset = decoded.record_offset(record)
            if record.value is None:
                raise MetadataRecordError(f"metadata record at offset {offset} has no value")
            yield offset, decode_record(record.value)
