"""Request validation the broker answers exactly as Apache Kafka 4.3.1 does (issue #13, breadth).

Each case runs against the reference broker and, with the ``kafka`` marker, against Apache Kafka,
with the same assertion: duplicates and mutually exclusive fields in the admin APIs, ApiVersions'
KIP-511 checks, Metadata v10-11 given topic ids, DeleteRecords on a compacted topic, sensitive
broker configs and DescribeGroups v6 for an unknown group.
"""

from __future__ import annotations

import random
import struct
import time
import uuid

from reference.broker.configs import BrokerConfig, describe_broker_config
from reference.controller import topic_control
from reference.protocol.apis import API_BY_NAME
from reference.protocol.frames import decode_response
from reference.records.batch import SimpleRecord, build_batch

from .conftest import RawClient

CREATE_TOPICS = API_BY_NAME["CreateTopics"].request
DELETE_TOPICS = API_BY_NAME["DeleteTopics"].request
CREATE_PARTITIONS = API_BY_NAME["CreatePartitions"].request
METADATA = API_BY_NAME["Metadata"].request
DELETE_RECORDS = API_BY_NAME["DeleteRecords"].request
NO_ID = uuid.UUID(int=0)

INVALID_REQUEST, UNKNOWN_TOPIC_OR_PARTITION, POLICY_VIOLATION = 42, 3, 44


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_create_topics_assignments_beside_counts_name_the_field(bootstrap: str) -> None:
    assignment = CREATE_TOPICS.struct("CreatableReplicaAssignment").make(partition_index=0, broker_ids=[0])
    answers = []
    with RawClient(bootstrap) as client:
        for partitions, replication_factor in ((1, 1), (-1, 1), (1, -1)):
            topic = CREATE_TOPICS.struct("CreatableTopic").make(
                name=_name("assigned"), num_partitions=partitions, replication_factor=replication_factor,
                assignments=[assignment])
            (result,) = client.call("CreateTopics", 7, topics=[topic], timeout_ms=10000, validate_only=True).topics
            answers.append((result.error_code, result.error_message))
    prefix = "A manual partition assignment was specified, but "
    assert answers == [(INVALID_REQUEST, prefix + "replication factor was not set to -1."),
                       (INVALID_REQUEST, prefix + "replication factor was not set to -1."),
                       (INVALID_REQUEST, prefix + "numPartitions was not set to -1.")]


def test_delete_topics_duplicate_name_is_answered_once_and_deletes_nothing(bootstrap: str) -> None:
    topic = _name("dup-delete")
    with RawClient(bootstrap) as client:
        assert client.create_topic(topic).error_code == 0
        state = DELETE_TOPICS.struct("DeleteTopicState")
        v6 = client.call("DeleteTopics", 6, timeout_ms=10000, topics=[state.make(name=topic), state.make(name=topic)])
        v4 = client.call("DeleteTopics", 4, timeout_ms=10000, topic_names=[topic, topic])
        listed = client.call("Metadata", 12, allow_auto_topic_creation=False,
                             topics=[METADATA.struct("MetadataRequestTopic").make(name=topic)])
    assert [(r.name, r.error_code, r.error_message) for r in v6.responses] == [
        (topic, INVALID_REQUEST, "Duplicate topic name.")]
    assert [(r.name, r.error_code) for r in v4.responses] == [(topic, INVALID_REQUEST)]
    assert listed.topics[0].error_code == 0, "a topic named twice in DeleteTopics was deleted"


def test_create_partitions_duplicate_and_unknown_topic_messages(bootstrap: str) -> None:
    topic, missing = _name("dup-grow"), _name("missing")
    entry = CREATE_PARTITIONS.struct("CreatePartitionsTopic")
    with RawClient(bootstrap) as client:
        assert client.create_topic(topic).error_code == 0
        body = client.call("CreatePartitions", 3, timeout_ms=10000, validate_only=True, topics=[
            entry.make(name=topic, count=2, assignments=None), entry.make(name=topic, count=3, assignments=None),
            entry.make(name=missing, count=2, assignments=None)])
    assert sorted((r.name, r.error_code, r.error_message) for r in body.results) == sorted([
        (topic, INVALID_REQUEST, "Duplicate topic name."), (missing, UNKNOWN_TOPIC_OR_PARTITION, None)])


def test_controller_create_partitions_of_unknown_topic_has_no_message() -> None:
    """The KRaft controller's path (reference clusters) answers like the single node's."""
    from reference.controller.image import MetadataImage

    request = CREATE_PARTITIONS.make(timeout_ms=1000, validate_only=False, topics=[
        CREATE_PARTITIONS.struct("CreatePartitionsTopic").make(name="absent", count=2, assignments=None)])
    records, answer = topic_control.create_partitions(MetadataImage(), None, random.Random(1), request)  # type: ignore[arg-type]
    assert records == []
    assert [(r.error_code, r.error_message) for r in answer.results] == [(UNKNOWN_TOPIC_OR_PARTITION, None)]


def test_metadata_v10_with_a_topic_id_refuses_every_topic(bootstrap: str) -> None:
    topic = _name("ids")
    entry = METADATA.struct("MetadataRequestTopic")
    with RawClient(bootstrap) as client:
        assert client.create_topic(topic).error_code == 0
        topic_id = client.call("Metadata", 12, allow_auto_topic_creation=False,
                               topics=[entry.make(name=topic)]).topics[0].topic_id
        for version in (10, 11):
            body = client.call("Metadata", version, allow_auto_topic_creation=False, topics=[
                entry.make(name="", topic_id=topic_id), entry.make(name=topic, topic_id=NO_ID)])
            assert sorted((t.name, t.error_code, len(t.partitions)) for t in body.topics) == [
                ("", INVALID_REQUEST, 0), (topic, INVALID_REQUEST, 0)], f"v{version}"


def test_api_versions_refuses_invalid_client_software_with_no_apis(bootstrap: str) -> None:
    with RawClient(bootstrap) as client:
        for name, version in (("bad name!", "1"), ("refka", "1.0 beta"), ("", "1"), ("-refka", "1"), ("refka", "1.")):
            body = client.call("ApiVersions", 3, client_software_name=name, client_software_version=version)
            assert (body.error_code, body.api_keys) == (INVALID_REQUEST, []), (name, version)
        valid = client.call("ApiVersions", 3, client_software_name="refka-client.x", client_software_version="1.2-3")
    assert valid.error_code == 0 and valid.api_keys


def test_api_versions_unsupported_version_lists_only_api_versions(bootstrap: str) -> None:
    """KIP-511: the v0-layout fallback carries ApiVersions' own range and no other."""
    client_id = b"refka-test"
    # Request header v2 (a version above 3 is read as flexible): client id, then no tagged fields.
    header = struct.pack(">hhih", 18, 999, 7, len(client_id)) + client_id + b"\x00"
    with RawClient(bootstrap) as client:
        own = next(a for a in client.call("ApiVersions", 0).api_keys if a.api_key == 18)
        client.sock.sendall(struct.pack(">i", len(header)) + header)
        (size,) = struct.unpack(">i", client.read_exactly(4))
        correlation_id, body = decode_response(API_BY_NAME["ApiVersions"], 0, client.read_exactly(size))
    assert (correlation_id, body.error_code) == (7, 35)
    assert [(a.api_key, a.min_version, a.max_version) for a in body.api_keys] == [(18, own.min_version, own.max_version)]


def _produce_when_led(client: RawClient, topic: str, batch: bytes) -> None:
    """Kafka names a new partition's leader a moment after CreateTopics answers: retry while the
    answer is NOT_LEADER_OR_FOLLOWER (6) or UNKNOWN_TOPIC_OR_PARTITION (3), as a producer does."""
    deadline = time.monotonic() + 30
    while (code := client.produce(topic, 0, batch).error_code) in (3, 6) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert code == 0, f"produce to {topic} answered {code}"


def test_delete_records_on_a_compacted_topic_is_a_policy_violation(bootstrap: str) -> None:
    compacted, both = _name("compact"), _name("compact-delete")
    partition = DELETE_RECORDS.struct("DeleteRecordsPartition")
    answers = {}
    with RawClient(bootstrap) as client:
        for topic, policy in ((compacted, "compact"), (both, "compact,delete")):
            assert client.create_topic(topic, configs={"cleanup.policy": policy}).error_code == 0
            for i in range(3):
                batch = build_batch([SimpleRecord(key=b"k", value=f"v{i}".encode(), timestamp=1_700_000_000_000)])
                _produce_when_led(client, topic, batch)
            body = client.call("DeleteRecords", 2, timeout_ms=10000, topics=[
                DELETE_RECORDS.struct("DeleteRecordsTopic").make(name=topic, partitions=[
                    partition.make(partition_index=0, offset=1)])])
            result = body.topics[0].partitions[0]
            answers[policy] = (result.low_watermark, result.error_code)
    assert answers == {"compact": (-1, POLICY_VIOLATION), "compact,delete": (1, 0)}


def test_password_broker_configs_are_described_sensitive_and_null() -> None:
    config = BrokerConfig({"node.id": "1", "ssl.keystore.password": "secret"})
    entries = {e.name: e for e in describe_broker_config(
        config, ["ssl.keystore.password", "ssl.key.password", "ssl.truststore.password", "sasl.jaas.config"],
        include_synonyms=True)}
    assert {name: (e.value, e.is_sensitive) for name, e in entries.items()} == {
        "ssl.keystore.password": (None, True), "ssl.key.password": (None, True),
        "ssl.truststore.password": (None, True), "sasl.jaas.config": (None, True)}
    assert all(s.value is None for s in entries["ssl.keystore.password"].synonyms), "a secret leaked in a synonym"


def test_describe_groups_v6_unknown_group_message(bootstrap: str) -> None:
    group = _name("no-such-group")
    with RawClient(bootstrap) as client:
        client.await_coordinator(group)
        (described,) = client.call("DescribeGroups", 6, groups=[group], include_authorized_operations=False).groups
    assert (described.error_code, described.error_message, described.group_state) == (
        69, f"Group {group} not found.", "Dead")
