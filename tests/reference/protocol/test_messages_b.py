"""Round trips of every version of the APIs with keys 24 and above (batch B).

For each declared version of each request and response, a value with a non-default value in every
field present in that version (see ``conftest.sample_value``) is encoded, decoded and encoded again:
the two encodings are the same bytes, the decoded value equals the original, and decoding uses up
the whole body.  The same holds with every nullable field set to null.  For the APIs kafka-python
implements, its own codec (an independent implementation) reads refka's bytes and writes back the
very same bytes.  A few tests then pin behaviour a reader of these schemas should know: tagged
fields at their default are not written, removed versions are refused, absent fields decode to
Kafka's defaults.
"""

from __future__ import annotations

import uuid
from typing import Any

import kafka.protocol.admin
import kafka.protocol.consumer
import kafka.protocol.producer
import pytest

from reference.protocol.apis import API_BY_KEY
from reference.protocol.primitives import DecodeError, Writer
from reference.protocol.schema import Data, Message

from .conftest import message_versions, null_every_nullable, round_trip, sample_value

BATCH_B_KEYS = [24, 25, 26, 27, 28, 32, 33, 37, 42, 43, 44, 47, 52, 53, 54, 55, 56, 60, 61, 62, 63, 65, 66]
# The replication and KRaft APIs: kafka-python does not implement them.
NOT_IN_KAFKA_PYTHON = {52, 53, 54, 56, 62, 63}




def test_every_batch_b_api_is_registered() -> None:
    """Every API of batch B is in the registry under its key."""
    assert set(BATCH_B_KEYS) <= set(API_BY_KEY), f"missing: {sorted(set(BATCH_B_KEYS) - set(API_BY_KEY))}"


@pytest.mark.parametrize(("message", "version"), message_versions(BATCH_B_KEYS))
def test_every_field_survives_around_trip(message: Message, version: int) -> None:
    """A value with every field of the version set survives encode -> decode -> encode unchanged."""
    round_trip(message, sample_value(message, version), version)



def _with_nullable_fields(cases: list[Any]) -> list[Any]:
    """The (message, version) cases in which at least one field may be null."""
    kept = []
    for case in cases:
        message, version = case.values
        probe = sample_value(message, version)  # arrays of structs hold elements to look into
        if null_every_nullable(message.body, probe, version, message.is_flexible(version)):
            kept.append(case)
    return kept


@pytest.mark.parametrize(("message", "version"), _with_nullable_fields(message_versions(BATCH_B_KEYS)))
def test_nulls_survive_around_trip(message: Message, version: int) -> None:
    """Every nullable field set to null survives the round trip (and the rest is still set)."""
    value = sample_value(message, version)
    assert null_every_nullable(message.body, value, version, message.is_flexible(version)) > 0
    round_trip(message, value, version)


def _kafka_python_class(name: str) -> Any:
    for package in (kafka.protocol.admin, kafka.protocol.consumer, kafka.protocol.producer):
        if hasattr(package, name):
            return getattr(package, name)
    raise AssertionError(f"kafka-python has no class {name}")


KAFKA_PYTHON_KEYS = [key for key in BATCH_B_KEYS if key not in NOT_IN_KAFKA_PYTHON]


@pytest.mark.parametrize(("message", "version"), message_versions(KAFKA_PYTHON_KEYS))
def test_kafka_python_reads_and_rewrites_the_same_bytes(message: Message, version: int) -> None:
    """kafka-python's codec decodes refka's encoding and re-encodes it to identical bytes."""
    encoded = message.encode(sample_value(message, version), version)
    theirs = _kafka_python_class(message.name).decode(encoded, version=version)
    # kafka-python's decode() builds the object without __init__, leaving unset the header slot
    # that its encode() consults.
    theirs._header = None
    assert theirs.encode(version=version) == encoded


# -- behaviour worth pinning -----------------------------------------------------------------------

HEARTBEAT = API_BY_KEY[63].request


def _heartbeat(**fields: Any) -> Data:
    return HEARTBEAT.make(broker_id=1, broker_epoch=7, current_metadata_offset=42, **fields)


def test_a_tagged_field_at_its_default_is_not_written() -> None:
    """BrokerHeartbeat v2 with no offline dirs and null cordoned dirs ends with an empty tag section."""
    plain = HEARTBEAT.encode(_heartbeat(), 2)
    assert plain.endswith(b"\x00")  # tagged-field count 0
    assert HEARTBEAT.decode(plain, 2).cordoned_log_dirs is None


def test_an_empty_list_differs_from_null_for_a_tagged_field() -> None:
    """CordonedLogDirs defaults to null, so an empty list is a value and is written as tag 1."""
    encoded = HEARTBEAT.encode(_heartbeat(cordoned_log_dirs=[]), 2)
    plain = HEARTBEAT.encode(_heartbeat(), 2)
    tail = Writer()
    for number in (1, 1, 1, 1):  # one tagged field; tag 1; 1 byte; compact array length 0 + 1
        tail.unsigned_varint(number)
    assert encoded == plain[:-1] + tail.getvalue()
    assert HEARTBEAT.decode(encoded, 2).cordoned_log_dirs == []


def test_a_tagged_field_is_ignored_before_its_version() -> None:
    """OfflineLogDirs is tagged from v1: in v0 it is not written even when set."""
    with_dirs = _heartbeat(offline_log_dirs=[uuid.UUID(int=1)])
    assert HEARTBEAT.encode(with_dirs, 0) == HEARTBEAT.encode(_heartbeat(), 0)


def test_absent_fields_decode_to_kafkas_defaults() -> None:
    """A DescribeCluster v0 response carries no EndpointType: decoding yields 1 (brokers)."""
    response = API_BY_KEY[60].response
    decoded = response.decode(response.encode(response.make(cluster_id="c"), 0), 0)
    assert decoded.endpoint_type == 1
    assert decoded.controller_id == -1
    assert decoded.cluster_authorized_operations == -(2**31)  # not requested


def test_add_partitions_to_txn_switches_shape_at_v4() -> None:
    """Up to v3 the request is one client transaction; from v4 a broker batches several."""
    request = API_BY_KEY[24].request
    topic = request.struct("AddPartitionsToTxnTopic").make(name="t", partitions=[0, 1])
    client = request.make(v3_and_below_transactional_id="tx", v3_and_below_producer_id=5,
                          v3_and_below_topics=[topic])
    assert request.decode(request.encode(client, 3), 3) == client
    assert request.decode(request.encode(client, 4), 4).v3_and_below_topics == []  # not on the wire


@pytest.mark.parametrize(("key", "removed_version"), [(32, 0), (27, 0), (56, 1)])
def test_versions_removed_in_kafka_4_are_refused(key: int, removed_version: int) -> None:
    """DescribeConfigs v0, WriteTxnMarkers v0 and AlterPartition v0-1 are gone since Kafka 4.0."""
    request = API_BY_KEY[key].request
    with pytest.raises(DecodeError, match="has no version"):
        request.decode(b"\x00" * 16, removed_version)
    with pytest.raises(ValueError, match="has no version"):
        request.encode(request.make(), removed_version)
