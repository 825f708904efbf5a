"""Admin APIs: CreateTopics (19), DeleteTopics (20), CreatePartitions (37), DescribeConfigs (32),
IncrementalAlterConfigs (44), with the exact error codes Kafka returns for invalid requests."""

from __future__ import annotations

import re
import time

import pytest
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaError

from conformance import raw
from reference.errors import Errors


def _create_error(admin, topics, name, **spec):
    try:
        admin.create_topics({name: spec}, timeout_ms=10000)
    except KafkaError as error:
        return error.errno
    return 0


def _metadata(bootstrap, topic):
    with raw.Connection.to(bootstrap.split(",")[0]) as conn:
        return raw.metadata(conn, [topic]).topics[topic]


def test_create_topic_then_already_exists(admin, topics, bootstrap):
    """CreateTopics creates the partitions asked for; creating it again: TOPIC_ALREADY_EXISTS (36)."""
    topic = topics.create(partitions=3)
    assert sorted(_metadata(bootstrap, topic).partitions) == [0, 1, 2]
    assert _create_error(admin, topics, topic, num_partitions=1, replication_factor=1) == \
        Errors.TOPIC_ALREADY_EXISTS.code


@pytest.mark.parametrize("name", ["bad name", "..", "x" * 250, "a/b"])
def test_invalid_topic_name(admin, topics, name):
    """Topic names: [a-zA-Z0-9._-], at most 249 characters, not "." or "..":
    otherwise INVALID_TOPIC_EXCEPTION (17)."""
    assert _create_error(admin, topics, name, num_partitions=1, replication_factor=1) == \
        Errors.INVALID_TOPIC_EXCEPTION.code


def test_invalid_partition_count(admin, topics):
    """num_partitions must be positive (or -1 for the broker default): 0 gives INVALID_PARTITIONS (37)."""
    assert _create_error(admin, topics, topics.name(), num_partitions=0, replication_factor=1) == \
        Errors.INVALID_PARTITIONS.code


def test_replication_factor_above_broker_count(admin, topics, capabilities):
    """A replication factor larger than the number of brokers: INVALID_REPLICATION_FACTOR (38)."""
    assert _create_error(admin, topics, topics.name(), num_partitions=1,
                         replication_factor=capabilities.broker_count + 1) == Errors.INVALID_REPLICATION_FACTOR.code


@pytest.mark.parametrize("configs", [{"cleanup.policy": "bogus"}, {"no.such.config": "1"},
                                     {"retention.ms": "not-a-number"}])
def test_invalid_topic_config(admin, topics, configs):
    """Unknown config keys or invalid values in CreateTopics: INVALID_CONFIG (40)."""
    assert _create_error(admin, topics, topics.name(), num_partitions=1, replication_factor=1,
                         configs=configs) == Errors.INVALID_CONFIG.code


def test_delete_topic(admin, topics, bootstrap):
    """DeleteTopics removes the topic from metadata; deleting an unknown topic:
    UNKNOWN_TOPIC_OR_PARTITION (3)."""
    topic = topics.create()
    admin.delete_topics([topic], timeout_ms=10000)
    deadline = time.monotonic() + 15
    while _metadata(bootstrap, topic).error_code == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _metadata(bootstrap, topic).error_code == Errors.UNKNOWN_TOPIC_OR_PARTITION.code
    with pytest.raises(KafkaError) as missing:
        admin.delete_topics([topics.name("missing")], timeout_ms=10000)
    assert missing.value.errno == Errors.UNKNOWN_TOPIC_OR_PARTITION.code


def test_create_partitions(admin, topics):
    """CreatePartitions grows a topic; asking for fewer or the same count: INVALID_PARTITIONS (37)."""
    topic = topics.create(partitions=1)
    admin.create_partitions({topic: 3}, timeout_ms=10000)
    topics.wait_for_leaders(topic, 3)
    with pytest.raises(KafkaError) as shrink:
        admin.create_partitions({topic: 2}, timeout_ms=10000)
    assert shrink.value.errno == Errors.INVALID_PARTITIONS.code


def _topic_config(admin, topic):
    response = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
    return {name: entry.get("value") for name, entry in response["topic"][topic].items()}


def test_describe_and_alter_configs(admin, topics):
    """DescribeConfigs returns a topic's overrides and defaults; IncrementalAlterConfigs (KIP-339)
    changes one key and leaves the others."""
    topic = topics.create(configs={"retention.ms": "123456"})
    described = _topic_config(admin, topic)
    assert described["retention.ms"] == "123456"
    assert described["cleanup.policy"] == "delete"
    outcome = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"segment.ms": "600000"})],
                                  incremental=True)
    assert _alter_error(outcome, topic) == 0, outcome
    # In a cluster the change reaches the other brokers through the metadata log, a moment later;
    # DescribeConfigs may be answered by one that has not applied it yet.
    deadline = time.monotonic() + 15
    after = _topic_config(admin, topic)
    while after["segment.ms"] != "600000" and time.monotonic() < deadline:
        time.sleep(0.2)
        after = _topic_config(admin, topic)
    assert (after["segment.ms"], after["retention.ms"]) == ("600000", "123456")


def test_alter_config_invalid_value(admin, topics):
    """IncrementalAlterConfigs with an invalid value: INVALID_CONFIG (40), config unchanged."""
    topic = topics.create()
    outcome = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "abc"})],
                                  incremental=True)
    assert _alter_error(outcome, topic) == Errors.INVALID_CONFIG.code, f"expected INVALID_CONFIG(40), observed {outcome}"
    assert _topic_config(admin, topic)["retention.ms"] != "abc"


def _alter_error(outcome, topic):
    """kafka-python reports each resource as "OK" or "[Error N] Name: message"."""
    text = str(outcome["topic"][topic])
    found = re.match(r"\[Error (-?\d+)\]", text)
    return int(found.group(1)) if found else 0
