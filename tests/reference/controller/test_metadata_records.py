"""Kafka's metadata records: refka's declarations match Kafka 4.3.1's, and every version round-trips.

The upstream definitions are read at test time from ``kafka-metadata-<version>.jar`` (the release
pinned in ``conformance/kafka-pom.xml``, cached by ``conformance.apache_kafka``), never from the
repository.  The comparison is per version and per field: present or not, its type (nested structs
recursively), nullable or not, tagged or not and its tag, the order of the untagged fields, and its
default.
"""

from __future__ import annotations

import json
import re
import uuid
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.apache_kafka import cache_root, pinned_version
from reference.controller import metadata_records as mr
from reference.controller.metadata_records import (
    RECORD_TYPES,
    MetadataRecord,
    MetadataRecordError,
    build_metadata_batch,
    decode_record,
    encode_record,
    iter_metadata_batch,
    make,
)
from reference.protocol.primitives import DecodeError, Writer, uuid_string
from reference.protocol.schema import Array, Data, Field, Message, Primitive, Struct, Versions
from reference.records.batch import NO_PRODUCER_ID, RecordBatch, TimestampType, build_batch
from reference.records.batch import SimpleRecord as PlainRecord

# -- Kafka's JSON, from the jar -------------------------------------------------------------------------

_COMMENT = re.compile(r"^\s*//.*$", re.MULTILINE)


def metadata_jar() -> Path:
    version = pinned_version()
    return cache_root() / f"kafka-{version}" / "libs" / f"kafka-metadata-{version}.jar"


def _jar_definitions() -> dict[str, dict[str, Any]]:
    jar = metadata_jar()
    if not jar.exists():
        return {}
    found = {}
    with zipfile.ZipFile(jar) as archive:
        for name in archive.namelist():
            if name.startswith("common/metadata/") and name.endswith(".json"):
                definition = json.loads(_COMMENT.sub("", archive.read(name).decode("utf-8")))
                found[definition["name"]] = definition
    return found


KAFKA_DEFINITIONS = _jar_definitions()
needs_jar = pytest.mark.skipif(not KAFKA_DEFINITIONS, reason=f"Kafka's metadata jar not found at {metadata_jar()} "
                               "(run `refka kafka start` once, or conformance.apache_kafka.resolve_libs())")


def _default_of(spec: dict[str, Any]) -> Any:
    """Kafka's default for a field, in the form refka's decoded values hold it."""
    type_name: str = spec["type"]
    raw = spec.get("default")
    if raw == "null":
        return None
    if type_name.startswith("[]"):
        return []
    if raw is None:
        return {"bool": False, "string": "", "bytes": b"", "uuid": mr.ZERO_UUID_TEXT, "float64": 0.0}.get(type_name, 0)
    if type_name == "bool":
        return raw == "true"
    if type_name == "string":
        return raw
    return int(raw, 0) if isinstance(raw, str) else int(raw)


def compare_fields(ours: list[Field], theirs: list[dict[str, Any]], version: int, where: str) -> list[str]:
    """Every metadata record version is flexible, so "tagged in this version" is just the tag range."""
    problems: list[str] = []
    if [f.name for f in ours] != [spec["name"] for spec in theirs]:
        problems.append(f"{where}: fields {[f.name for f in ours]} != Kafka's {[s['name'] for s in theirs]}")
        return problems
    for field, spec in zip(ours, theirs, strict=True):
        problems.extend(compare_field(field, spec, version, f"{where}.{field.name}"))
    return problems


def compare_field(ours: Field, spec: dict[str, Any], version: int, where: str) -> list[str]:
    their_present = version in Versions.parse(spec.get("versions", "0+"))
    their_tagged = "tag" in spec and version in Versions.parse(spec.get("taggedVersions", "none"))
    our_present = version in ours.version_range
    our_tagged = ours.tag is not None and version in ours.tagged_range
    if (their_present, their_tagged) != (our_present, our_tagged):
        return [f"{where} v{version}: (present, tagged) {(our_present, our_tagged)} != Kafka's "
                f"{(their_present, their_tagged)}"]
    if not their_present:
        return []
    problems = []
    if their_tagged and spec["tag"] != ours.tag:
        problems.append(f"{where}: tag {ours.tag} != Kafka's {spec['tag']}")
    their_nullable = version in Versions.parse(spec.get("nullableVersions", "none"))
    if their_nullable != (version in ours.nullable_range):
        problems.append(f"{where} v{version}: nullable {not their_nullable} != Kafka's {their_nullable}")
    if ours.flexible_versions is not None:
        problems.append(f"{where}: a per-field flexibleVersions Kafka does not declare")
    type_name: str = spec["type"]
    our_type = ours.type
    if type_name.startswith("[]"):
        if not isinstance(our_type, Array):
            return problems + [f"{where}: Kafka's type is {type_name}, ours {our_type!r}"]
        our_type = our_type.element
    element_name = type_name.removeprefix("[]")
    if "fields" in spec:
        if not isinstance(our_type, Struct):
            return problems + [f"{where}: Kafka's type is the struct {element_name}, ours {our_type!r}"]
        if our_type.name != element_name:
            problems.append(f"{where}: struct named {our_type.name}, Kafka's {element_name}")
        problems.extend(compare_fields(list(our_type.fields), spec["fields"], version, where))
    elif our_type.kafka_name != element_name:
        problems.append(f"{where}: type {our_type.kafka_name} != Kafka's {element_name}")
    if ours.default_value() != _default_of(spec):
        problems.append(f"{where}: default {ours.default_value()!r} != Kafka's {_default_of(spec)!r}")
    return problems


def compare(message: Message, definition: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    if definition.get("type") != "metadata":
        problems.append(f"{message.name}: Kafka's type is {definition.get('type')}")
    if message.api_key != definition["apiKey"]:
        problems.append(f"{message.name}: api key {message.api_key} != Kafka's {definition['apiKey']}")
    their_valid = Versions.parse(definition["validVersions"])
    if (message.valid.low, message.valid.high) != (their_valid.low, their_valid.high):
        problems.append(f"{message.name}: valid versions {message.valid} != Kafka's {their_valid}")
        return problems
    their_flexible = Versions.parse(definition["flexibleVersions"])
    assert message.valid.high is not None
    for version in range(message.valid.low, message.valid.high + 1):
        if (version in their_flexible) != message.is_flexible(version):
            problems.append(f"{message.name} v{version}: flexible differs from Kafka's")
        problems.extend(compare_fields(list(message.fields), definition["fields"], version, message.name))
    return problems


@needs_jar
@pytest.mark.parametrize("message", [pytest.param(m, id=m.name) for m in RECORD_TYPES])
def test_declared_record_matches_kafkas_definition(message: Message) -> None:
    """Every version of every declared record matches Kafka 4.3.1's JSON field by field."""
    definition = KAFKA_DEFINITIONS.get(message.name)
    assert definition is not None, f"Kafka defines no metadata record {message.name}"
    problems = compare(message, definition)
    assert not problems, "\n".join(problems)


@needs_jar
def test_every_metadata_record_kafka_defines_is_declared() -> None:
    """All of Kafka's metadata record types are declared, so any Kafka metadata log decodes."""
    assert sorted(KAFKA_DEFINITIONS) == sorted(m.name for m in RECORD_TYPES)


@needs_jar
def test_the_comparison_catches_a_wrong_declaration() -> None:
    """The parity check is not vacuous: a tag, a default and a version range that differ are reported."""
    from reference.protocol.schema import INT8, INT32
    wrong = Message("BrokerRegistrationChangeRecord", 17, "0-3", "0+", fields=[
        Field("BrokerId", INT32),
        Field("BrokerEpoch", INT32),  # Kafka: int64
        Field("Fenced", INT8, tag=1, tagged_versions="0+"),  # Kafka: tag 0
        Field("InControlledShutdown", INT8, versions="2+", tag=1, tagged_versions="2+"),  # Kafka: 1+
        *mr.BROKER_REGISTRATION_CHANGE_RECORD.fields[4:],
    ])
    problems = "\n".join(compare(wrong, KAFKA_DEFINITIONS["BrokerRegistrationChangeRecord"]))
    assert "BrokerEpoch: type int32 != Kafka's int64" in problems
    assert "Fenced: tag 1 != Kafka's 0" in problems
    assert "InControlledShutdown v1" in problems


def test_the_contracts_record_types_are_declared() -> None:
    """The records the quorum controller writes are all here (no jar needed)."""
    required = {"RegisterBrokerRecord", "UnregisterBrokerRecord", "TopicRecord", "PartitionRecord",
                "PartitionChangeRecord", "ConfigRecord", "FenceBrokerRecord", "UnfenceBrokerRecord",
                "RemoveTopicRecord", "FeatureLevelRecord", "ProducerIdsRecord", "BrokerRegistrationChangeRecord",
                "RegisterControllerRecord", "ClearElrRecord", "NoOpRecord"}
    assert required <= set(mr.RECORD_TYPE_BY_NAME)


# -- round trips, every record and version --------------------------------------------------------------

_INTS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}


def values_of(field_type: Any, nullable: bool, version: int) -> st.SearchStrategy[Any]:
    """Values a field of this type may hold on the wire in ``version``."""
    if isinstance(field_type, Array):
        strategy: st.SearchStrategy[Any] = st.lists(values_of(field_type.element, False, version), max_size=4)
    elif isinstance(field_type, Struct):
        strategy = data_of(field_type, version)
    else:
        assert isinstance(field_type, Primitive)
        name = field_type.kafka_name
        if name in _INTS:
            bits = _INTS[name]
            strategy = st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        else:
            strategy = {
                "bool": st.booleans(),
                "uint16": st.integers(0, 65535),
                "float64": st.floats(allow_nan=False),
                "string": st.text(max_size=20),
                "bytes": st.binary(max_size=20),
                "uuid": st.uuids().map(uuid_string),
            }[name]
    return st.none() | strategy if nullable else strategy


def data_of(struct: Struct, version: int) -> st.SearchStrategy[Data]:
    """A complete value of ``struct`` in ``version``: fields absent from it at their defaults."""
    present = {
        f.attribute: values_of(f.type, version in f.nullable_range, version)
        for f in struct.fields if version in f.version_range
    }
    return st.fixed_dictionaries(present).map(lambda values: struct.make(**values))


EVERY_VERSION = [
    pytest.param(message, version, id=f"{message.name}-v{version}")
    for message in RECORD_TYPES
    for version in range(message.valid.low, (message.valid.high or 0) + 1)
]


@pytest.mark.parametrize(("message", "version"), EVERY_VERSION)
@settings(max_examples=30, deadline=None)
@given(st.data())
def test_every_version_of_every_record_round_trips(message: Message, version: int, data: st.DataObject) -> None:
    """A record encodes to bytes that decode to the same record, and re-encode to the same bytes."""
    record = MetadataRecord(message.name, version, data.draw(data_of(message.body, version)))
    value = encode_record(record)
    decoded = decode_record(value)
    assert decoded == record
    assert encode_record(decoded) == value


def test_a_record_value_is_frame_version_api_key_version_then_the_body() -> None:
    """AbstractApiMessageSerde's layout, byte for byte: FeatureLevelRecord metadata.version=30."""
    value = encode_record(make("FeatureLevelRecord", name="metadata.version", feature_level=30))
    expected = (bytes([1, 12, 0])  # frame version 1, api key 12, version 0 (unsigned varints)
                + bytes([len("metadata.version") + 1]) + b"metadata.version"  # COMPACT_STRING
                + (30).to_bytes(2, "big")  # FeatureLevel int16
                + bytes([0]))  # no tagged fields
    assert value == expected


def test_tagged_fields_at_their_default_are_not_written() -> None:
    """A PartitionChangeRecord that only shrinks the ISR carries one tagged field (tag 0, Isr)."""
    topic_id = uuid_string(uuid.UUID(int=7))
    value = encode_record(make("PartitionChangeRecord", partition_id=3, topic_id=topic_id, isr=[1, 2]))
    body = Writer()
    body.int32(3)
    body.uuid(uuid.UUID(int=7))
    body.unsigned_varint(1)  # one tagged field
    body.unsigned_varint(0)  # tag 0: Isr
    body.unsigned_varint(1 + 4 + 4)  # its size: compact array length, two int32
    body.unsigned_varint(3)
    body.int32(1)
    body.int32(2)
    assert value == bytes([1, 5, 2]) + body.getvalue()


# -- make(): defaults, versions, uuids --------------------------------------------------------------------


def test_make_uses_schema_defaults_and_kafkas_sentinels() -> None:
    change = make("PartitionChangeRecord", partition_id=0, topic_id=mr.ZERO_UUID_TEXT)
    assert change.data.isr is None and change.data.replicas is None  # null = unchanged
    assert change.data.leader == mr.NO_LEADER_CHANGE == -2
    assert change.data.leader_recovery_state == -1
    registration = make("RegisterBrokerRecord", broker_id=1)
    assert registration.data.fenced is True  # a broker registers fenced
    assert registration.data.rack == ""  # Kafka declares no default: the generated default is ""


def test_make_writes_the_versions_kafka_writes_at_metadata_version_4_3_iv0() -> None:
    assert (mr.METADATA_VERSION, mr.METADATA_VERSION_NAME) == (30, "4.3-IV0")
    assert make("RegisterBrokerRecord").version == 4
    assert make("PartitionRecord").version == 2
    assert make("PartitionChangeRecord").version == 2
    assert make("RegisterControllerRecord").version == 0
    assert make("FeatureLevelRecord").version == 0
    assert make("BrokerRegistrationChangeRecord", fenced=1).version == 0
    assert make("BrokerRegistrationChangeRecord", fenced=-1).version == 0
    assert make("BrokerRegistrationChangeRecord", in_controlled_shutdown=1).version == 1
    assert make("BrokerRegistrationChangeRecord", log_dirs=[mr.ZERO_UUID_TEXT]).version == 2
    assert make("BrokerRegistrationChangeRecord", cordoned_log_dirs=[]).version == 3
    assert make("PartitionRecord", version=0).version == 0


def test_make_takes_a_field_called_name_as_a_keyword() -> None:
    assert make("TopicRecord", name="orders").data.name == "orders"
    assert make("ConfigRecord", name="retention.ms", value="1").data.name == "retention.ms"


def test_make_refuses_unknown_records_versions_and_fields() -> None:
    with pytest.raises(ValueError, match="no metadata record"):
        make("IsrChangeRecord")
    with pytest.raises(ValueError, match="no version 3"):
        make("PartitionRecord", version=3)
    with pytest.raises(TypeError, match="no field"):
        make("TopicRecord", partitions=3)


def test_uuids_are_held_as_kafkas_text_whatever_form_they_are_given_in() -> None:
    value = uuid.UUID("9d5c3e2a-1f4b-4c8e-8a7d-2b6f0e1c3d4a")
    text = uuid_string(value)
    assert len(text) == 22
    for given_as in (value, str(value), text):
        assert make("TopicRecord", name="t", topic_id=given_as).data.topic_id == text
    assert make("PartitionRecord", directories=[value]).data.directories == [text]
    with pytest.raises(ValueError):
        make("TopicRecord", name="t", topic_id="not-a-uuid")


def test_a_value_in_a_field_the_version_lacks_is_refused_on_encode() -> None:
    """Kafka's generated write refuses it too: the ELR would silently vanish from a v1 record."""
    record = make("PartitionRecord", version=1, replicas=[1], eligible_leader_replicas=[1])
    with pytest.raises(ValueError, match="EligibleLeaderReplicas"):
        encode_record(record)
    assert decode_record(encode_record(make("PartitionRecord", version=1, replicas=[1]))).version == 1


# -- what decoding refuses (MetadataRecordSerde's rules) --------------------------------------------------


@pytest.mark.parametrize(("value", "message"), [
    (bytes([0, 12, 0]), "frame version 0"),
    (bytes([2, 12, 0]), "unknown frame version 2"),
    (bytes([1, 6, 0, 0]), "unknown metadata record type 6"),
    (bytes([1, 3, 3, 0]), "PartitionRecord has no version 3"),
    (bytes([1, 0x80, 0x80, 0x02, 0]), "type was too large"),
])
def test_decoding_refuses_what_kafkas_serde_refuses(value: bytes, message: str) -> None:
    with pytest.raises(MetadataRecordError, match=message):
        decode_record(value)


def test_bytes_after_the_record_are_garbage() -> None:
    value = encode_record(make("NoOpRecord"))
    with pytest.raises(MetadataRecordError, match="1 byte\\(s\\) of garbage after NoOpRecord"):
        decode_record(value + b"\x00")


def test_a_truncated_record_is_a_decode_error() -> None:
    value = encode_record(make("TopicRecord", name="orders", topic_id=uuid.UUID(int=5)))
    for cut in range(len(value)):
        with pytest.raises(DecodeError):
            decode_record(value[:cut])


# -- batches -----------------------------------------------------------------------------------------------


def test_a_metadata_batch_is_laid_out_as_kafkas_raft_batch_builder_does() -> None:
    records = [make("FeatureLevelRecord", name="metadata.version", feature_level=30), make("NoOpRecord")]
    batch = RecordBatch.decode(build_metadata_batch(records, base_offset=40, leader_epoch=7, timestamp_ms=1234))
    assert (batch.base_offset, batch.partition_leader_epoch, batch.last_offset_delta) == (40, 7, 1)
    assert (batch.base_timestamp, batch.max_timestamp) == (1234, 1234)
    assert batch.timestamp_type is TimestampType.CREATE_TIME
    assert batch.producer_id == NO_PRODUCER_ID and not batch.is_transactional and not batch.is_control
    assert [(r.key, r.timestamp_delta, r.offset_delta) for r in batch.records] == [(None, 0, 0), (None, 0, 1)]
    assert [decode_record(r.value) for r in batch.records if r.value is not None] == records


def test_iterating_a_batch_gives_each_record_with_its_offset() -> None:
    records = [make("TopicRecord", name=f"t{i}", topic_id=uuid.UUID(int=i + 1)) for i in range(3)]
    built = build_metadata_batch(records, base_offset=100, leader_epoch=1, timestamp_ms=0)
    assert list(iter_metadata_batch(built)) == [(100, records[0]), (101, records[1]), (102, records[2])]
    more = build_metadata_batch([make("NoOpRecord")], base_offset=103, leader_epoch=2, timestamp_ms=0)
    assert [offset for offset, _ in iter_metadata_batch(built + more)] == [100, 101, 102, 103]


def test_control_batches_are_skipped() -> None:
    """LeaderChangeMessage and the snapshot markers belong to the Raft layer: only data batches yield."""
    first = RecordBatch.decode(build_metadata_batch([make("NoOpRecord")], base_offset=0, leader_epoch=1,
                                                    timestamp_ms=0))
    as_control = replace(first, is_control=True).encode()
    data = build_metadata_batch([make("NoOpRecord")], base_offset=1, leader_epoch=1, timestamp_ms=0)
    assert [offset for offset, _ in iter_metadata_batch(as_control + data)] == [1]


def test_a_record_that_is_not_a_metadata_record_is_refused() -> None:
    batch = build_batch([PlainRecord(value=b"\x01\x63\x00", timestamp=0)])
    with pytest.raises(MetadataRecordError):
        list(iter_metadata_batch(batch))
    with pytest.raises(ValueError, match="at least one record"):
        build_metadata_batch([], base_offset=0, leader_epoch=0, timestamp_ms=0)
