"""DescribeConfigs, AlterConfigs and IncrementalAlterConfigs through the broker's sans-IO core.

Each expected (error code, message) pair is what Apache Kafka 4.3.1 answered to the same request,
recorded from a live broker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reference.broker.configs import DYNAMIC_CONFIG_FILE, BrokerConfig
from reference.broker.core import Broker
from reference.protocol.apis import API_BY_NAME
from reference.protocol.frames import decode_response, encode_request
from reference.protocol.schema import Data

NODE = 1
INVALID_REQUEST_DEFAULT = ("This most likely occurs because of a request being malformed by the client library or "
                           "the message was sent to an incompatible broker. See the broker logs for more details.")


class ConfigClient:
    """A broker plus one call per config API, each returning decoded response bodies."""

    def __init__(self, data_dir: Path) -> None:
        self.broker = Broker(BrokerConfig({"node.id": str(NODE)}), data_dir, 1_700_000_000_000)
        self.broker.set_listener("127.0.0.1", 9092)

    def call(self, api_name: str, version: int, **fields: Any) -> Data:
        api = API_BY_NAME[api_name]
        frame = encode_request(api, version, 7, "test", api.request.make(**fields))[4:]
        reply = self.broker.handle_frame(frame, 1_700_000_000_000)
        assert isinstance(reply, (bytes, bytearray))
        correlation_id, body = decode_response(api, version, reply[4:])
        assert correlation_id == 7
        return body

    def create_topic(self, name: str, **configs: str) -> None:
        api = API_BY_NAME["CreateTopics"]
        topic = api.request.struct("CreatableTopic").make(
            name=name, num_partitions=1, replication_factor=1,
            configs=[api.request.struct("CreatableTopicConfig").make(name=k, value=v) for k, v in configs.items()])
        result = self.call("CreateTopics", 7, topics=[topic], timeout_ms=1000).topics[0]
        assert result.error_code == 0, result.error_message

    def describe(self, resources: list[tuple[int, str, list[str] | None]], version: int = 4,
                 synonyms: bool = True, documentation: bool = False) -> list[Data]:
        struct = API_BY_NAME["DescribeConfigs"].request.struct("DescribeConfigsResource")
        body = self.call("DescribeConfigs", version, include_synonyms=synonyms, include_documentation=documentation,
                         resources=[struct.make(resource_type=t, resource_name=n, configuration_keys=k)
                                    for t, n, k in resources])
        return list(body.results)

    def describe_one(self, resource_type: int, name: str, keys: list[str] | None = None) -> dict[str, Data]:
        (result,) = self.describe([(resource_type, name, keys)])
        assert result.error_code == 0, result.error_message
        return {c.name: c for c in result.configs}

    def alter(self, resource_type: int, name: str, configs: dict[str, str | None], validate_only: bool = False,
              version: int = 2) -> tuple[int, str | None]:
        api = API_BY_NAME["AlterConfigs"]
        resource = api.request.struct("AlterConfigsResource").make(
            resource_type=resource_type, resource_name=name,
            configs=[api.request.struct("AlterableConfig").make(name=k, value=v) for k, v in configs.items()])
        (response,) = self.call("AlterConfigs", version, resources=[resource], validate_only=validate_only).responses
        assert (response.resource_type, response.resource_name) == (resource_type, name)
        return response.error_code, response.error_message

    def incremental(self, resource_type: int, name: str, changes: list[tuple[str, int, str | None]],
                    validate_only: bool = False, version: int = 1) -> tuple[int, str | None]:
        api = API_BY_NAME["IncrementalAlterConfigs"]
        resource = api.request.struct("AlterConfigsResource").make(
            resource_type=resource_type, resource_name=name,
            configs=[api.request.struct("AlterableConfig").make(name=k, config_operation=op, value=v)
                     for k, op, v in changes])
        body = self.call("IncrementalAlterConfigs", version, resources=[resource], validate_only=validate_only)
        (response,) = body.responses
        return response.error_code, response.error_message


TOPIC, BROKER = 2, 4
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


@pytest.fixture
def client(tmp_path: Path) -> ConfigClient:
    configs = ConfigClient(tmp_path)
    configs.create_topic("orders")
    return configs


# -- DescribeConfigs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_describing_a_topic_lists_its_33_keys(client: ConfigClient, version: int) -> None:
    (result,) = client.describe([(TOPIC, "orders", None)], version=version, documentation=True)
    assert (result.error_code, result.error_message) == (0, "")
    configs = {c.name: c for c in result.configs}
    assert len(configs) == 33
    assert configs["retention.ms"].value == "604800000" and configs["retention.ms"].config_source == 5
    assert [(s.name, s.value, s.source) for s in configs["min.insync.replicas"].synonyms] == [
        ("min.insync.replicas", "1", 3), ("min.insync.replicas", "1", 5)]
    if version >= 3:
        assert configs["retention.ms"].config_type == 5 and configs["retention.ms"].documentation


def test_an_empty_key_list_means_every_key_and_unknown_keys_are_skipped(client: ConfigClient) -> None:
    assert len(client.describe_one(TOPIC, "orders", [])) == 33
    assert list(client.describe_one(TOPIC, "orders", ["segment.ms", "nosuch"])) == ["segment.ms"]


@pytest.mark.parametrize(("name", "code", "message"), [
    ("missing", 3, ""),
    ("bad name!", 17, "Topic name is invalid: 'bad name!' contains one or more characters other than ASCII "
                      "alphanumerics, '.', '_' and '-'"),
    ("", 17, "Topic name is invalid: the empty string is not allowed"),
    (".", 17, "Topic name is invalid: '.' is not allowed"),
])
def test_describing_a_missing_or_illegal_topic_fails_that_resource_only(
    client: ConfigClient, name: str, code: int, message: str
) -> None:
    missing, found = client.describe([(TOPIC, name, None), (TOPIC, "orders", ["retention.ms"])])
    assert (missing.error_code, missing.error_message, missing.configs) == (code, message, [])
    assert found.error_code == 0 and len(found.configs) == 1


def test_describing_brokers(client: ConfigClient) -> None:
    own = client.describe_one(BROKER, str(NODE), ["num.partitions", "log.retention.ms"])
    assert own["num.partitions"].read_only and own["num.partitions"].value == "1"
    assert own["log.retention.ms"].value is None and not own["log.retention.ms"].read_only
    cluster = client.describe_one(BROKER, "")
    assert list(cluster) == ["min.insync.replicas"] and cluster["min.insync.replicas"].config_source == 3
    other, not_a_number = client.describe([(BROKER, "7", None), (BROKER, "abc", None)])
    assert (other.error_code, other.error_message) == (
        42, f"Unexpected broker id, expected {NODE} or empty string, but received 7")
    assert (not_a_number.error_code, not_a_number.error_message) == (42, "Broker id must be an integer, but it is: abc")


def test_a_resource_type_kafka_does_not_know_fails_the_whole_request(client: ConfigClient) -> None:
    results = client.describe([(TOPIC, "orders", None), (9, "x", None)])
    assert [(r.error_code, r.error_message, len(r.configs)) for r in results] == [
        (42, INVALID_REQUEST_DEFAULT, 0), (42, INVALID_REQUEST_DEFAULT, 0)]


# -- AlterConfigs (legacy) --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1, 2])
def test_legacy_alter_replaces_the_whole_override_set(client: ConfigClient, version: int) -> None:
    assert client.alter(TOPIC, "orders", {"retention.ms": " 1000 ", "cleanup.policy": "compact"}, version=version) == (0, None)
    described = client.describe_one(TOPIC, "orders", ["retention.ms", "cleanup.policy"])
    assert described["retention.ms"].value == "1000" and described["retention.ms"].config_source == 1
    assert client.alter(TOPIC, "orders", {"segment.ms": "100000"}, version=version) == (0, None)
    described = client.describe_one(TOPIC, "orders", ["retention.ms", "segment.ms"])
    assert described["retention.ms"].config_source == 5 and described["segment.ms"].value == "100000"
    assert client.broker.topics.get("orders").configs == {"segment.ms": "100000"}  # type: ignore[union-attr]


def test_validate_only_changes_nothing(client: ConfigClient) -> None:
    assert client.alter(TOPIC, "orders", {"retention.ms": "1000"}, validate_only=True) == (0, None)
    assert client.incremental(TOPIC, "orders", [("segment.ms", SET, "5000")], validate_only=True) == (0, None)
    assert client.broker.topics.get("orders").configs == {}  # type: ignore[union-attr]


@pytest.mark.parametrize(("name", "configs", "expected"), [
    ("orders", {"nosuch": "1"}, (40, "Unknown topic config name: nosuch")),
    ("orders", {"retention.ms": "abc"}, (40, "Invalid value abc for configuration retention.ms: Not a number of type LONG")),
    ("orders", {"retention.ms": None}, (42, "Null value not supported for : retention.ms")),
    ("missing", {"retention.ms": "1"}, (3, "The topic 'missing' does not exist.")),
    ("missing", {"nosuch": "1"}, (40, "Unknown topic config name: nosuch")),  # configs are checked first
    ("bad name!", {"retention.ms": "1"}, (17, "Topic name is invalid: 'bad name!' contains one or more characters "
                                              "other than ASCII alphanumerics, '.', '_' and '-'")),
    ("", {"retention.ms": "1"}, (42, "Default topic resources are not allowed.")),
])
def test_legacy_alter_errors_on_topics(client: ConfigClient, name: str, configs: dict[str, str | None],
                                       expected: tuple[int, str]) -> None:
    assert client.alter(TOPIC, name, configs) == expected


def test_duplicate_keys_and_unknown_resource_types(client: ConfigClient) -> None:
    api = API_BY_NAME["AlterConfigs"]
    config = api.request.struct("AlterableConfig")
    resource = api.request.struct("AlterConfigsResource")
    body = client.call("AlterConfigs", 2, validate_only=True, resources=[
        resource.make(resource_type=TOPIC, resource_name="orders",
                      configs=[config.make(name="retention.ms", value="1"), config.make(name="retention.ms", value="2")]),
        resource.make(resource_type=9, resource_name="orders", configs=[]),
        resource.make(resource_type=8, resource_name="1", configs=[]),
    ])
    assert [(r.error_code, r.error_message) for r in body.responses] == [
        (42, "Error due to duplicate config keys"), (42, "Unknown resource type 9"), (42, "Unknown resource type 8")]


def test_a_resource_named_twice_is_refused_both_times(client: ConfigClient) -> None:
    api = API_BY_NAME["IncrementalAlterConfigs"]
    resource = api.request.struct("AlterConfigsResource")
    body = client.call("IncrementalAlterConfigs", 1, validate_only=False, resources=[
        resource.make(resource_type=TOPIC, resource_name="orders", configs=[]),
        resource.make(resource_type=TOPIC, resource_name="orders", configs=[])])
    assert [(r.error_code, r.error_message) for r in body.responses] == [
        (42, "Each resource must appear at most once.")] * 2


# -- IncrementalAlterConfigs on topics --------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1])
def test_append_and_subtract_on_a_list_key(client: ConfigClient, version: int) -> None:
    assert client.incremental(TOPIC, "orders", [("cleanup.policy", APPEND, "compact")], version=version) == (0, None)
    assert client.describe_one(TOPIC, "orders", ["cleanup.policy"])["cleanup.policy"].value == "delete,compact"
    assert client.incremental(TOPIC, "orders", [("cleanup.policy", SUBTRACT, "delete")], version=version) == (0, None)
    assert client.describe_one(TOPIC, "orders", ["cleanup.policy"])["cleanup.policy"].value == "compact"
    assert client.incremental(TOPIC, "orders", [("cleanup.policy", DELETE, None)], version=version) == (0, None)
    described = client.describe_one(TOPIC, "orders", ["cleanup.policy"])["cleanup.policy"]
    assert (described.value, described.config_source) == ("delete", 5)


def test_set_keeps_the_other_overrides(client: ConfigClient) -> None:
    client.incremental(TOPIC, "orders", [("retention.ms", SET, "1000")])
    client.incremental(TOPIC, "orders", [("segment.ms", SET, "2000")])
    assert client.broker.topics.get("orders").configs == {"retention.ms": "1000", "segment.ms": "2000"}  # type: ignore[union-attr]


@pytest.mark.parametrize(("name", "changes", "expected"), [
    ("orders", [("nosuch", SET, "1")], (40, "Unknown topic config name: nosuch")),
    ("orders", [("nosuch", DELETE, None)], (0, None)),
    ("orders", [("retention.ms", SET, "abc")], (40, "Invalid value abc for configuration retention.ms: Not a number of type LONG")),
    ("orders", [("retention.ms", APPEND, "1")], (40, "Can't APPEND to key retention.ms because its type is not LIST.")),
    ("orders", [("retention.ms", SUBTRACT, "1")], (40, "Can't SUBTRACT to key retention.ms because its type is not LIST.")),
    ("orders", [("nosuch", APPEND, "1")], (40, "Can't APPEND to key nosuch because its type is not LIST.")),
    ("orders", [("cleanup.policy", APPEND, "foo")],
     (40, "Invalid value foo for configuration cleanup.policy: String must be one of: compact, delete")),
    ("orders", [("retention.ms", SET, None)], (42, "Null value not supported for : retention.ms")),
    ("orders", [("retention.ms", SET, "1"), ("retention.ms", SET, "2")], (42, "Error due to duplicate config keys")),
    ("orders", [("retention.ms", 7, "1")], (-1, None)),
    ("orders", [("min.compaction.lag.ms", SET, "10"), ("max.compaction.lag.ms", SET, "5")],
     (40, "conflict topic config setting min.compaction.lag.ms (10) > max.compaction.lag.ms (5)")),
    ("missing", [("retention.ms", SET, "1")], (3, "The topic 'missing' does not exist.")),
    ("missing", [("retention.ms", SET, "abc")],
     (40, "Invalid value abc for configuration retention.ms: Not a number of type LONG")),
])
def test_incremental_alter_errors_on_topics(client: ConfigClient, name: str, changes: list[tuple[str, int, str | None]],
                                            expected: tuple[int, str | None]) -> None:
    assert client.incremental(TOPIC, name, changes) == expected


def test_a_topic_change_reconfigures_its_log(client: ConfigClient) -> None:
    client.incremental(TOPIC, "orders", [("retention.ms", SET, "1234")])
    assert client.broker.replicas.topic_config("orders")["retention.ms"] == "1234"


# -- brokers ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "changes", "expected"), [
    ("1", [("num.partitions", SET, "3")], (42, "Cannot update these configs dynamically: [num.partitions]")),
    ("", [("num.partitions", SET, "3")], (42, "Cannot update these configs dynamically: [num.partitions]")),
    ("1", [("nosuch.thing", SET, "1")], (0, None)),
    ("1", [("num.partitions", DELETE, None)], (0, None)),
    ("1", [("log.retention.ms", SET, "abc")],
     (42, "Invalid value abc for configuration log.retention.ms: Not a number of type LONG")),
    ("1", [("log.retention.ms", APPEND, "1")], (40, "Config value append is not allowed for config key: log.retention.ms")),
    ("1", [("log.retention.ms", SUBTRACT, "1")],
     (40, "Config value subtract is not allowed for config key: log.retention.ms")),
    ("1", [("nosuch.thing", APPEND, "1")], (40, "Unknown config name: nosuch.thing")),
    ("1", [("log.cleanup.policy", APPEND, "compact")], (0, None)),
    ("1", [("log.retention.ms", 7, "1")], (42, "Unknown operations type 7")),
    ("7", [("log.retention.ms", SET, "1")], (42, f"Unexpected broker id, expected {NODE}, but received 7")),
    ("abc", [("log.retention.ms", SET, "1")], (42, "Node id must be an integer, but it is: abc")),
    ("", [("listeners", SET, "PLAINTEXT://:1")],
     (42, "Cannot update these configs at default cluster level, broker id must be specified: [listeners]")),
    ("", [("min.insync.replicas", SET, "0")],
     (42, "Invalid value 0 for configuration min.insync.replicas: Value must be at least 1")),
    ("1", [("min.insync.replicas", SET, "2")], (40, "Broker-level min.insync.replicas cannot be altered while ELR is enabled.")),
    ("", [("min.insync.replicas", DELETE, None)],
     (40, "Cluster-level min.insync.replicas cannot be removed while ELR is enabled.")),
    ("", [("min.insync.replicas", SET, "2")], (0, None)),
])
def test_incremental_alter_on_brokers(client: ConfigClient, name: str, changes: list[tuple[str, int, str | None]],
                                      expected: tuple[int, str | None]) -> None:
    assert client.incremental(BROKER, name, changes, validate_only=True) == expected


def test_legacy_alter_of_the_cluster_default_must_keep_min_insync_replicas(client: ConfigClient) -> None:
    assert client.alter(BROKER, "", {"log.retention.ms": "1000"}, validate_only=True) == (
        40, "Cluster-level min.insync.replicas cannot be removed while ELR is enabled.")
    assert client.alter(BROKER, "", {"log.retention.ms": "1000", "min.insync.replicas": "1"}) == (0, None)
    assert client.broker.config.dynamic_default == {"log.retention.ms": "1000", "min.insync.replicas": "1"}


def test_a_dynamic_broker_default_reaches_topics_and_is_persisted(client: ConfigClient) -> None:
    assert client.incremental(BROKER, str(NODE), [("log.retention.ms", SET, "5000")]) == (0, None)
    own = client.describe_one(BROKER, str(NODE), ["log.retention.ms"])["log.retention.ms"]
    assert (own.value, own.config_source) == ("5000", 2)
    topic = client.describe_one(TOPIC, "orders", ["retention.ms"])["retention.ms"]
    assert (topic.value, topic.config_source) == ("5000", 2)
    assert [(s.name, s.value, s.source) for s in topic.synonyms] == [
        ("log.retention.ms", "5000", 2), ("log.retention.hours", "168", 5)]
    assert client.broker.replicas.topic_config("orders")["retention.ms"] == "5000"
    saved = json.loads((client.broker.data_dir / DYNAMIC_CONFIG_FILE).read_text())
    assert saved["broker"] == {"log.retention.ms": "5000"}
