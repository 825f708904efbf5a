"""Admin APIs: CreateTopics (19), DeleteTopics (20), CreatePartitions (37), DescribeConfigs (32),
IncrementalAlterConfigs (44), with the exact error codes Kafka returns for invalid requests.

Every request goes through :mod:`conformance.raw` at the highest version both the broker and the
suite speak, so what is checked is the broker's answer, not a client's own validation or parsing
(a client may refuse a topic name or a config key before sending anything).
"""

from __future__ import annotations

import time

import pytest

from conformance import raw
from reference.errors import Errors

DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs ConfigSource of a topic-level override


def _version(capabilities, api_key, name):
    version = raw.negotiate(capabilities.api_versions, api_key)
    if version is None:
        low, high = raw.SPOKEN_VERSIONS[api_key]
        pytest.skip(f"broker advertises no {name} version the suite speaks (v{low}-v{high})")
    return version


def _bootstrap(bootstrap):
    return raw.Connection.to(bootstrap.split(",")[0].strip(), timeout=30)


def _create(bootstrap, capabilities, name, partitions=1, replication_factor=1, configs=None):
    version = _version(capabilities, raw.CREATE_TOPICS, "CreateTopics")
    with _bootstrap(bootstrap) as conn:
        answers = raw.create_topics(conn, [raw.NewTopic(name, partitions, replication_factor, configs or {})], version)
    assert name in answers, f"CreateTopics v{version} answered no result for {name!r}: {answers}"
    return answers[name]


def _metadata(bootstrap, topic):
    with _bootstrap(bootstrap) as conn:
        return raw.metadata(conn, [topic]).topics[topic]


def _assert_not_created(bootstrap, topic):
    state = _metadata(bootstrap, topic)
    assert state.error_code == Errors.UNKNOWN_TOPIC_OR_PARTITION.code, f"a refused topic exists: {state}"


def test_create_topic_then_already_exists(topics, bootstrap, capabilities):
    """CreateTopics creates the partitions asked for; creating it again: TOPIC_ALREADY_EXISTS (36)."""
    topic = topics.create(partitions=3)
    assert sorted(_metadata(bootstrap, topic).partitions) == [0, 1, 2]
    again = _create(bootstrap, capabilities, topic)
    assert again.error_code == Errors.TOPIC_ALREADY_EXISTS.code, f"expected 36, observed {again}"


@pytest.mark.parametrize("name", ["bad name", "..", "x" * 250, "a/b"])
def test_invalid_topic_name(topics, bootstrap, capabilities, name):
    """Topic names: [a-zA-Z0-9._-], at most 249 characters, not "." or "..":
    otherwise INVALID_TOPIC_EXCEPTION (17)."""
    answer = _create(bootstrap, capabilities, name)
    assert answer.error_code == Errors.INVALID_TOPIC_EXCEPTION.code, f"expected 17, observed {answer}"


def test_invalid_partition_count(topics, bootstrap, capabilities):
    """num_partitions must be positive (or -1 for the broker default): 0 gives INVALID_PARTITIONS
    (37) and no topic."""
    name = topics.name()
    answer = _create(bootstrap, capabilities, name, partitions=0)
    assert answer.error_code == Errors.INVALID_PARTITIONS.code, f"expected 37, observed {answer}"
    _assert_not_created(bootstrap, name)


def test_replication_factor_above_broker_count(topics, bootstrap, capabilities):
    """A replication factor larger than the number of brokers: INVALID_REPLICATION_FACTOR (38) and
    no topic."""
    name = topics.name()
    answer = _create(bootstrap, capabilities, name, replication_factor=capabilities.broker_count + 1)
    assert answer.error_code == Errors.INVALID_REPLICATION_FACTOR.code, f"expected 38, observed {answer}"
    _assert_not_created(bootstrap, name)


@pytest.mark.parametrize("configs", [{"cleanup.policy": "bogus"}, {"no.such.config": "1"},
                                     {"retention.ms": "not-a-number"}])
def test_invalid_topic_config(topics, bootstrap, capabilities, configs):
    """Unknown config keys or invalid values in CreateTopics: INVALID_CONFIG (40) and no topic."""
    name = topics.name()
    answer = _create(bootstrap, capabilities, name, configs=configs)
    assert answer.error_code == Errors.INVALID_CONFIG.code, f"expected 40, observed {answer}"
    _assert_not_created(bootstrap, name)


def test_delete_topic(topics, bootstrap, capabilities):
    """DeleteTopics removes the topic from metadata; deleting an unknown topic:
    UNKNOWN_TOPIC_OR_PARTITION (3)."""
    version = _version(capabilities, raw.DELETE_TOPICS, "DeleteTopics")
    topic = topics.create()
    missing = topics.name("missing")
    with _bootstrap(bootstrap) as conn:
        deleted = raw.delete_topics(conn, [topic], version)
        unknown = raw.delete_topics(conn, [missing], version)
    assert deleted.get(topic) == raw.ApiError(0, None), f"DeleteTopics v{version}: observed {deleted}"
    assert unknown.get(missing) is not None and unknown[missing].error_code == \
        Errors.UNKNOWN_TOPIC_OR_PARTITION.code, f"expected 3, observed {unknown}"
    # In a cluster the deletion reaches the other brokers through the metadata log a moment later.
    deadline = time.monotonic() + 15
    while _metadata(bootstrap, topic).error_code == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _metadata(bootstrap, topic).error_code == Errors.UNKNOWN_TOPIC_OR_PARTITION.code


def _partitions_with_leaders(bootstrap, topic, count, timeout=20.0):
    deadline = time.monotonic() + timeout
    state = _metadata(bootstrap, topic)
    while time.monotonic() < deadline and not (len(state.partitions) == count
                                               and all(p.leader >= 0 for p in state.partitions.values())):
        time.sleep(0.2)
        state = _metadata(bootstrap, topic)
    return state


def test_create_partitions(topics, bootstrap, capabilities):
    """CreatePartitions grows a topic (Metadata then lists the new partitions with leaders); asking
    for fewer or the same count: INVALID_PARTITIONS (37), the count unchanged."""
    version = _version(capabilities, raw.CREATE_PARTITIONS, "CreatePartitions")
    topic = topics.create(partitions=1)
    with _bootstrap(bootstrap) as conn:
        grown = raw.create_partitions(conn, topic, 3, version)
        assert grown.error_code == 0, f"CreatePartitions v{version} to 3: observed {grown}"
        state = _partitions_with_leaders(bootstrap, topic, 3)
        assert sorted(state.partitions) == [0, 1, 2], f"observed {state}"
        shrink = raw.create_partitions(conn, topic, 2, version)
        same = raw.create_partitions(conn, topic, 3, version)
    assert (shrink.error_code, same.error_code) == (Errors.INVALID_PARTITIONS.code,) * 2, \
        f"expected 37 for 2 and for 3 partitions, observed {shrink} and {same}"
    assert sorted(_metadata(bootstrap, topic).partitions) == [0, 1, 2]


def _topic_config(bootstrap, capabilities, topic):
    version = _version(capabilities, raw.DESCRIBE_CONFIGS, "DescribeConfigs")
    with _bootstrap(bootstrap) as conn:
        described = raw.describe_configs(conn, raw.TOPIC_RESOURCE, topic, version)
    assert described.error.error_code == 0, f"DescribeConfigs v{version} of {topic}: observed {described.error}"
    return described.entries


def _alter(bootstrap, capabilities, topic, name, value):
    version = _version(capabilities, raw.INCREMENTAL_ALTER_CONFIGS, "IncrementalAlterConfigs")
    with _bootstrap(bootstrap) as conn:
        return raw.incremental_alter_configs(conn, raw.TOPIC_RESOURCE, topic, [(name, raw.CONFIG_SET, value)], version)


def test_describe_and_alter_configs(topics, bootstrap, capabilities):
    """DescribeConfigs returns a topic's overrides (source DYNAMIC_TOPIC_CONFIG, 1) and defaults;
    IncrementalAlterConfigs (KIP-339) changes one key and leaves the others."""
    topic = topics.create(configs={"retention.ms": "123456"})
    described = _topic_config(bootstrap, capabilities, topic)
    retention = described.get("retention.ms")
    assert retention is not None and (retention.value, retention.config_source) == ("123456", DYNAMIC_TOPIC_CONFIG), \
        f"observed {retention}"
    assert described["cleanup.policy"].value == "delete"
    outcome = _alter(bootstrap, capabilities, topic, "segment.ms", "600000")
    assert outcome.error_code == 0, f"observed {outcome}"
    # In a cluster the change reaches the other brokers through the metadata log, a moment later;
    # DescribeConfigs may be answered by one that has not applied it yet.
    deadline = time.monotonic() + 15
    after = _topic_config(bootstrap, capabilities, topic)
    while after["segment.ms"].value != "600000" and time.monotonic() < deadline:
        time.sleep(0.2)
        after = _topic_config(bootstrap, capabilities, topic)
    assert (after["segment.ms"].value, after["retention.ms"].value) == ("600000", "123456")


def test_alter_config_invalid_value(topics, bootstrap, capabilities):
    """IncrementalAlterConfigs with an invalid value: INVALID_CONFIG (40), config unchanged."""
    topic = topics.create(configs={"retention.ms": "123456"})
    outcome = _alter(bootstrap, capabilities, topic, "retention.ms", "abc")
    assert outcome.error_code == Errors.INVALID_CONFIG.code, f"expected INVALID_CONFIG(40), observed {outcome}"
    assert _topic_config(bootstrap, capabilities, topic)["retention.ms"].value == "123456"
