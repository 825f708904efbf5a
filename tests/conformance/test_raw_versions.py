"""The suite's version-ranged raw helpers against refka's schema codec, version by version.

Each helper in ``conformance.raw.SPOKEN_VERSIONS`` writes a request that
``reference.protocol``'s schemas (checked against Kafka's golden frames elsewhere) decode to the
fields meant, with no byte left over, and reads a response that those schemas encode.  Two
independent encodings agreeing at every version is what lets the suite pick any version the broker
advertises.
"""

from __future__ import annotations

import pytest

from conformance import raw
from reference.protocol.apis import API_BY_KEY
from reference.protocol.primitives import Reader as SchemaReader


class ScriptedConnection:
    """Stands in for ``raw.Connection``: records the request, answers a prepared response body."""

    def __init__(self, response_body: bytes) -> None:
        self.response_body = response_body
        self.sent: tuple[int, int, bytes, bool] | None = None

    def request(self, api_key: int, version: int, body: bytes, flexible: bool) -> raw.Reader:
        self.sent = (api_key, version, body, flexible)
        return raw.Reader(self.response_body)


def _exchange(api_key, version, response_fields, call):
    """Run ``call(conn)`` against a response made of ``response_fields``; returns (what the helper
    returned, the request as refka's schema decodes it)."""
    api = API_BY_KEY[api_key]
    conn = ScriptedConnection(api.response.encode(api.response.make(**response_fields), version))
    returned = call(conn)
    assert conn.sent is not None
    sent_key, sent_version, body, flexible = conn.sent
    assert (sent_key, sent_version, flexible) == (api_key, version, api.request.is_flexible(version))
    reader = SchemaReader(body)
    decoded = api.request.decode(reader, version)
    assert reader.remaining() == 0, f"{api.name} v{version}: {reader.remaining()} bytes left after decoding"
    return returned, decoded


def _versions(api_key):
    low, high = raw.SPOKEN_VERSIONS[api_key]
    return list(range(low, high + 1))


def test_negotiate_picks_the_highest_common_version():
    advertised = raw.ApiVersionsResult(0, {22: raw.ApiVersionRange(22, 3, 5), 19: raw.ApiVersionRange(19, 0, 1)})
    assert raw.negotiate(advertised, raw.INIT_PRODUCER_ID) == 5
    assert raw.negotiate(advertised, raw.CREATE_TOPICS) is None, "ranges 0-1 and 2-7 do not meet"
    assert raw.negotiate(advertised, raw.DELETE_TOPICS) is None, "not advertised"


def test_setup_failed_says_so():
    failure = raw.SetupFailed("CreateTopics v7 of 't' answered INVALID_CONFIG(40)")
    assert isinstance(failure, AssertionError)
    assert str(failure) == "setup failed: CreateTopics v7 of 't' answered INVALID_CONFIG(40)"


@pytest.mark.parametrize("version", _versions(raw.INIT_PRODUCER_ID))
def test_init_producer_id(version):
    returned, sent = _exchange(raw.INIT_PRODUCER_ID, version, {"producer_id": 7, "producer_epoch": 2},
                               lambda conn: raw.init_producer_id_at(conn, version, "txn", 1234, 5, 1))
    assert returned == raw.ProducerIdAndEpoch(0, 7, 2)
    assert (sent.transactional_id, sent.transaction_timeout_ms) == ("txn", 1234)
    if version >= 3:
        assert (sent.producer_id, sent.producer_epoch) == (5, 1)


@pytest.mark.parametrize("version", _versions(raw.CREATE_TOPICS))
def test_create_topics(version):
    response = API_BY_KEY[raw.CREATE_TOPICS].response
    result = response.struct("CreatableTopicResult").make(name="t", error_code=40, error_message="bad")
    returned, sent = _exchange(raw.CREATE_TOPICS, version, {"topics": [result]}, lambda conn: raw.create_topics(
        conn, [raw.NewTopic("t", 3, 2, {"retention.ms": "1", "x": None})], version, timeout_ms=500))
    assert returned == {"t": raw.ApiError(40, "bad")}
    (topic,) = sent.topics
    assert (topic.name, topic.num_partitions, topic.replication_factor, sent.timeout_ms) == ("t", 3, 2, 500)
    assert [(c.name, c.value) for c in topic.configs] == [("retention.ms", "1"), ("x", None)]


@pytest.mark.parametrize("version", _versions(raw.DELETE_TOPICS))
def test_delete_topics(version):
    response = API_BY_KEY[raw.DELETE_TOPICS].response
    result = response.struct("DeletableTopicResult").make(name="t", error_code=3)
    returned, sent = _exchange(raw.DELETE_TOPICS, version, {"responses": [result]},
                               lambda conn: raw.delete_topics(conn, ["t"], version, timeout_ms=500))
    assert returned == {"t": raw.ApiError(3, None)}
    names = [t.name for t in sent.topics] if version >= 6 else list(sent.topic_names)
    assert (names, sent.timeout_ms) == (["t"], 500)


@pytest.mark.parametrize("version", _versions(raw.CREATE_PARTITIONS))
def test_create_partitions(version):
    response = API_BY_KEY[raw.CREATE_PARTITIONS].response
    result = response.struct("CreatePartitionsTopicResult").make(name="t", error_code=37, error_message="no")
    returned, sent = _exchange(raw.CREATE_PARTITIONS, version, {"results": [result]},
                               lambda conn: raw.create_partitions(conn, "t", 4, version, validate_only=True))
    assert returned == raw.ApiError(37, "no")
    (topic,) = sent.topics
    assert (topic.name, topic.count, topic.assignments, sent.validate_only) == ("t", 4, None, True)


@pytest.mark.parametrize("version", _versions(raw.DESCRIBE_CONFIGS))
def test_describe_configs(version):
    response = API_BY_KEY[raw.DESCRIBE_CONFIGS].response
    entry = response.struct("DescribeConfigsResourceResult").make(name="retention.ms", value="5", read_only=False,
                                                                  config_source=1, is_sensitive=False)
    result = response.struct("DescribeConfigsResult").make(error_code=0, error_message=None, resource_type=2,
                                                           resource_name="t",
                                                           configs=[entry])
    returned, sent = _exchange(raw.DESCRIBE_CONFIGS, version, {"results": [result]},
                               lambda conn: raw.describe_configs(conn, raw.TOPIC_RESOURCE, "t", version, ["retention.ms"]))
    assert returned == raw.DescribedConfigs(raw.ApiError(0, None), {"retention.ms": raw.ConfigEntry("5", False, 1, False)})
    (resource,) = sent.resources
    assert (resource.resource_type, resource.resource_name, resource.configuration_keys) == (2, "t", ["retention.ms"])


@pytest.mark.parametrize("version", _versions(raw.INCREMENTAL_ALTER_CONFIGS))
def test_incremental_alter_configs(version):
    response = API_BY_KEY[raw.INCREMENTAL_ALTER_CONFIGS].response
    result = response.struct("AlterConfigsResourceResponse").make(error_code=40, error_message="bad", resource_type=2,
                                                                  resource_name="t")
    returned, sent = _exchange(raw.INCREMENTAL_ALTER_CONFIGS, version, {"responses": [result]},
                               lambda conn: raw.incremental_alter_configs(
                                   conn, raw.TOPIC_RESOURCE, "t", [("segment.ms", raw.CONFIG_SET, "9")], version))
    assert returned == raw.ApiError(40, "bad")
    (resource,) = sent.resources
    assert [(c.name, c.config_operation, c.value) for c in resource.configs] == [("segment.ms", 0, "9")]


@pytest.mark.parametrize("version", _versions(raw.DELETE_RECORDS))
def test_delete_records(version):
    response = API_BY_KEY[raw.DELETE_RECORDS].response
    partition = response.struct("DeleteRecordsPartitionResult").make(partition_index=0, low_watermark=3, error_code=0)
    topic = response.struct("DeleteRecordsTopicResult").make(name="t", partitions=[partition])
    returned, sent = _exchange(raw.DELETE_RECORDS, version, {"topics": [topic]},
                               lambda conn: raw.delete_records(conn, "t", {0: 3}, version, timeout_ms=500))
    assert returned == {0: raw.DeletedRecords(0, 3)}
    (wanted,) = sent.topics
    assert [(p.partition_index, p.offset) for p in wanted.partitions] == [(0, 3)] and sent.timeout_ms == 500


@pytest.mark.parametrize("version", _versions(raw.LEAVE_GROUP))
def test_leave_group(version):
    response = API_BY_KEY[raw.LEAVE_GROUP].response
    member = response.struct("MemberResponse").make(member_id="m", group_instance_id="i", error_code=25)
    returned, sent = _exchange(raw.LEAVE_GROUP, version, {"error_code": 0, "members": [member]},
                               lambda conn: raw.leave_group(conn, "g", [("m", "i")], version))
    assert returned == (0, {"m": 25})
    assert sent.group_id == "g" and [(m.member_id, m.group_instance_id) for m in sent.members] == [("m", "i")]


@pytest.mark.parametrize("version", _versions(raw.DESCRIBE_GROUPS))
def test_describe_group(version):
    response = API_BY_KEY[raw.DESCRIBE_GROUPS].response
    member = response.struct("DescribedGroupMember").make(member_id="m", group_instance_id="i", client_id="c",
                                                          client_host="/h", member_metadata=b"md",
                                                          member_assignment=b"as")
    group = response.struct("DescribedGroup").make(error_code=0, group_id="g", group_state="Stable",
                                                   protocol_type="consumer", protocol_data="range", members=[member])
    returned, sent = _exchange(raw.DESCRIBE_GROUPS, version, {"groups": [group]},
                               lambda conn: raw.describe_group(conn, "g", version))
    assert returned == raw.GroupDescription(0, "Stable", "consumer", "range",
                                            [raw.GroupMemberDescription("m", "i", "c")])
    assert list(sent.groups) == ["g"]
