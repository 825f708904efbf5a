"""The __consumer_offsets record formats, against bytes an Apache Kafka 4.3.1 broker wrote."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference.broker.group import records
from reference.protocol.primitives import DecodeError

# The log of one kafka-python consumer group ("refka-oracle-g": join, rejoin, commit offset 6 of
# refka-oracle-t/0, leave) as written to __consumer_offsets partition 34 by Kafka 4.3.1.  Hex of
# (key, value) per record; value None would be a tombstone.
ORACLE_RECORDS = [
    (
        "0002000e7265666b612d6f7261636c652d67",
        "0003000000000000ffffffff000001a1ffd016b700000000",
    ),
    (
        "0002000e7265666b612d6f7261636c652d67",
        "00030008636f6e73756d657200000001000572616e676500386b61666b612d707974686f6e2d332e302e31322d643838"
        "39633738372d613830312d346135622d613562342d383261313537646532356234000001a1ffd016bb0000000100386b"
        "61666b612d707974686f6e2d332e302e31322d64383839633738372d613830312d346135622d613562342d3832613135"
        "37646532356234ffff00136b61666b612d707974686f6e2d332e302e3132000a2f3132372e302e302e31000493e00000"
        "afc80000001a000000000001000e7265666b612d6f7261636c652d74000000000000000a00000000000000000000",
    ),
    (
        "0002000e7265666b612d6f7261636c652d67",
        "00030008636f6e73756d657200000002000572616e676500386b61666b612d707974686f6e2d332e302e31322d643838"
        "39633738372d613830312d346135622d613562342d383261313537646532356234000001a1ffd017250000000100386b"
        "61666b612d707974686f6e2d332e302e31322d64383839633738372d613830312d346135622d613562342d3832613135"
        "37646532356234ffff00136b61666b612d707974686f6e2d332e302e3132000a2f3132372e302e302e31000493e00000"
        "afc80000001a000000000001000e7265666b612d6f7261636c652d740000000000000022000000000001000e7265666b"
        "612d6f7261636c652d74000000010000000000000000",
    ),
    (
        "0001000e7265666b612d6f7261636c652d67000e7265666b612d6f7261636c652d7400000000",
        "000400000000000000060000000001000001a1ffd01743010010d099fc02c42d42319d90314c16844a3d",
    ),
    (
        "0002000e7265666b612d6f7261636c652d67",
        "00030008636f6e73756d657200000003ffffffff000001a1ffd0174a00000000",
    ),
]


def test_java_string_hash_code_matches_java() -> None:
    assert records.java_string_hash_code("") == 0
    assert records.java_string_hash_code("hello") == 99162322
    assert records.java_string_hash_code("polygenelubricants") == -(2**31)  # Integer.MIN_VALUE
    # Outside the BMP Java hashes the two UTF-16 surrogates: 0xD83D * 31 + 0xDE00.
    assert records.java_string_hash_code("\U0001f600") == 0xD83D * 31 + 0xDE00


def test_partition_for_uses_kafka_s_abs_so_min_value_lands_on_partition_zero() -> None:
    assert records.partition_for("polygenelubricants", 50) == 0
    assert records.partition_for("hello", 50) == 99162322 % 50
    assert records.partition_for("refka-oracle-g", 50) == 34  # where Kafka 4.3.1 wrote it


def test_kafka_written_records_decode_and_reencode_byte_for_byte() -> None:
    for key_hex, value_hex in ORACLE_RECORDS:
        key, value = bytes.fromhex(key_hex), bytes.fromhex(value_hex)
        assert records.encode_record(*records.decode_record(key, value)) == (key, value)


def test_kafka_written_records_mean_what_the_consumer_did() -> None:
    decoded = [records.decode_record(bytes.fromhex(k), bytes.fromhex(v)) for k, v in ORACLE_RECORDS]
    created, first, second, commit, left = decoded
    assert created == (
        records.GroupMetadataKey("refka-oracle-g"),
        records.GroupMetadataValue("", 0, None, None, created[1].current_state_timestamp, ()),  # type: ignore[union-attr]
    )
    assert isinstance(first[1], records.GroupMetadataValue) and first[1].generation == 1
    assert first[1].protocol_type == "consumer" and first[1].protocol == "range"
    assert first[1].members[0].member_id == first[1].leader
    assert commit[0] == records.OffsetCommitKey("refka-oracle-g", "refka-oracle-t", 0)
    assert isinstance(commit[1], records.OffsetCommitValue)
    assert (commit[1].offset, commit[1].leader_epoch, commit[1].metadata) == (6, 0, "")
    assert commit[1].topic_id == uuid.UUID("d099fc02-c42d-4231-9d90-314c16844a3d")
    assert commit[1].version() == 4
    assert isinstance(left[1], records.GroupMetadataValue)
    assert (left[1].generation, left[1].protocol, left[1].leader, left[1].members) == (3, None, None, ())


def test_offset_commit_key_and_value_by_hand() -> None:
    key = records.encode_key(records.OffsetCommitKey("g", "t", 7))
    assert key == b"\x00\x01" + b"\x00\x01g" + b"\x00\x01t" + b"\x00\x00\x00\x07"
    value = records.OffsetCommitValue(offset=42, metadata="m", commit_timestamp=1000, leader_epoch=3)
    assert records.encode_offset_commit_value(value) == (
        b"\x00\x04"
        + (42).to_bytes(8, "big")
        + (3).to_bytes(4, "big")
        + b"\x02m"
        + (1000).to_bytes(8, "big")
        + b"\x00"
    )
    with_expiry = records.OffsetCommitValue(42, "m", 1000, leader_epoch=3, expire_timestamp=5000)
    assert records.encode_offset_commit_value(with_expiry) == (
        b"\x00\x01"
        + (42).to_bytes(8, "big")
        + b"\x00\x01m"
        + (1000).to_bytes(8, "big")
        + (5000).to_bytes(8, "big")
    )


def test_a_tombstone_has_no_value() -> None:
    key, value = records.encode_record(records.GroupMetadataKey("g"), None)
    assert value is None and records.decode_record(key, None) == (records.GroupMetadataKey("g"), None)


def test_unknown_record_types_and_truncated_values_are_decode_errors() -> None:
    with pytest.raises(records.UnknownRecordTypeError):
        records.decode_key(b"\x00\x03\x00\x01g")
    with pytest.raises(DecodeError):
        records.decode_offset_commit_value(b"\x00\x03\x00\x00")
    with pytest.raises(DecodeError):
        records.decode_group_metadata_value(b"\x00\x09")


texts = st.text(max_size=12)
members = st.builds(
    records.MemberMetadata,
    member_id=texts,
    client_id=texts,
    client_host=texts,
    session_timeout=st.integers(0, 2**31 - 1),
    subscription=st.binary(max_size=20),
    assignment=st.binary(max_size=20),
    rebalance_timeout=st.integers(-1, 2**31 - 1),
    group_instance_id=st.none() | texts,
)


@given(
    version=st.integers(0, 4),
    value=st.builds(
        records.GroupMetadataValue,
        protocol_type=texts,
        generation=st.integers(0, 2**31 - 1),
        protocol=st.none() | texts,
        leader=st.none() | texts,
        current_state_timestamp=st.integers(-1, 2**62),
        members=st.lists(members, max_size=3).map(tuple),
    ),
)
def test_group_metadata_values_round_trip_at_every_version(
    version: int, value: records.GroupMetadataValue
) -> None:
    decoded = records.decode_group_metadata_value(records.encode_group_metadata_value(value, version))
    # Fields a version lacks come back as their defaults.
    expected_members = tuple(
        records.MemberMetadata(
            member_id=m.member_id,
            client_id=m.client_id,
            client_host=m.client_host,
            session_timeout=m.session_timeout,
            subscription=m.subscription,
            assignment=m.assignment,
            rebalance_timeout=m.rebalance_timeout if version >= 1 else -1,
            group_instance_id=m.group_instance_id if version >= 3 else None,
        )
        for m in value.members
    )
    timestamp = value.current_state_timestamp if version >= 2 else records.NO_TIMESTAMP
    assert decoded == records.GroupMetadataValue(
        value.protocol_type, value.generation, value.protocol, value.leader, timestamp, expected_members
    )


@given(
    version=st.integers(0, 4),
    offset=st.integers(-1, 2**63 - 1),
    epoch=st.integers(-1, 2**31 - 1),
    metadata=texts,
    timestamp=st.integers(0, 2**62),
    topic_id=st.none() | st.uuids(),
)
def test_offset_commit_values_round_trip_at_every_version(
    version: int, offset: int, epoch: int, metadata: str, timestamp: int, topic_id: uuid.UUID | None
) -> None:
    value = records.OffsetCommitValue(offset, metadata, timestamp, epoch, timestamp + 1, topic_id)
    decoded = records.decode_offset_commit_value(records.encode_offset_commit_value(value, version))
    assert decoded.offset == offset and decoded.metadata == metadata and decoded.commit_timestamp == timestamp
    assert decoded.leader_epoch == (epoch if version >= 3 else -1)
    assert decoded.expire_timestamp == (timestamp + 1 if version == 1 else -1)
    assert decoded.topic_id == (topic_id if version >= 4 and topic_id is not None and topic_id.int else None)
