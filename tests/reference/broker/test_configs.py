"""Broker and topic configs: defaults, precedence, validation messages and describe output.

Expected strings are what Apache Kafka 4.3.1 answered to the same inputs (CreateTopics with
validate_only, DescribeConfigs with synonyms), recorded from a live broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference.broker.configs import (
    BROKER_CONFIGS,
    TOPIC_CONFIGS,
    BrokerConfig,
    ConfigError,
    ConfigSource,
    ConfigType,
    Synonym,
    check_dynamic_broker_change,
    describe_broker_config,
    describe_topic_config,
    effective_topic_config,
    java_double_to_string,
    log_config_for,
    validate_topic_config,
)
from reference.errors import Errors, KafkaError

KAFKA_4_TOPIC_KEYS = {
    "cleanup.policy", "compression.gzip.level", "compression.lz4.level", "compression.type",
    "compression.zstd.level", "delete.retention.ms", "file.delete.delay.ms", "flush.messages", "flush.ms",
    "follower.replication.throttled.replicas", "index.interval.bytes", "leader.replication.throttled.replicas",
    "local.retention.bytes", "local.retention.ms", "max.compaction.lag.ms", "max.message.bytes",
    "message.timestamp.after.max.ms", "message.timestamp.before.max.ms", "message.timestamp.type",
    "min.cleanable.dirty.ratio", "min.compaction.lag.ms", "min.insync.replicas", "preallocate",
    "remote.log.copy.disable", "remote.log.delete.on.disable", "remote.storage.enable", "retention.bytes",
    "retention.ms", "segment.bytes", "segment.index.bytes", "segment.jitter.ms", "segment.ms",
    "unclean.leader.election.enable",
}


def refused(overrides: dict[str, str | None]) -> KafkaError:
    with pytest.raises(KafkaError) as caught:
        validate_topic_config(overrides)
    return caught.value


# -- the tables ---------------------------------------------------------------------------------------


def test_topic_table_has_exactly_kafka_4s_described_keys() -> None:
    described = {d.name for d in TOPIC_CONFIGS if not d.internal}
    assert described == KAFKA_4_TOPIC_KEYS


def test_every_default_parses_under_its_own_definition() -> None:
    for definition in TOPIC_CONFIGS + BROKER_CONFIGS:
        if definition.default is not None:
            assert definition.canonical(definition.default) == definition.default, definition.name


def test_topic_defaults_of_a_plain_broker() -> None:
    effective = effective_topic_config(BrokerConfig(), {})
    assert effective["retention.ms"] == "604800000"
    assert effective["segment.bytes"] == "1073741824"
    assert effective["segment.index.bytes"] == "10485760"
    assert effective["max.message.bytes"] == "1048588"
    assert effective["cleanup.policy"] == "delete"
    assert effective["message.timestamp.after.max.ms"] == "3600000"  # Kafka 4.0's new default
    assert effective["flush.ms"] == str((1 << 63) - 1)
    assert effective["leader.replication.throttled.replicas"] == ""


def test_broker_defaults() -> None:
    config = BrokerConfig()
    assert config.get_int("num.partitions") == 1
    assert config.get_int("default.replication.factor") == 1
    assert config.get_bool("auto.create.topics.enable") is True
    assert config.get_int("message.max.bytes") == 1048588
    assert config.get_int("socket.request.max.bytes") == 104857600
    assert config.get_int("offsets.topic.num.partitions") == 50
    assert config.get_int("offsets.retention.minutes") == 10080
    assert config.get_int("group.initial.rebalance.delay.ms") == 3000
    assert config.get_int("fetch.max.bytes") == 57671680
    assert config.get_list("log.cleanup.policy") == ["delete"]
    assert config.get_double("log.cleaner.min.cleanable.ratio") == 0.5
    assert config.get_int("node.id") == 1  # refka's default; Kafka has none


# -- precedence ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("settings", "retention_ms"), [
    ({}, "604800000"),
    ({"log.retention.hours": "1"}, "3600000"),
    ({"log.retention.hours": "1", "log.retention.minutes": "2"}, "120000"),
    ({"log.retention.hours": "1", "log.retention.minutes": "2", "log.retention.ms": "5"}, "5"),
    ({"log.retention.ms": "-7"}, "-1"),  # any negative retention means "forever"
])
def test_retention_ms_wins_over_minutes_over_hours(settings: dict[str, str], retention_ms: str) -> None:
    config = BrokerConfig(settings)
    assert config.get("log.retention.ms") == retention_ms
    assert effective_topic_config(config, {})["retention.ms"] == retention_ms


def test_roll_hours_and_flush_scheduler_feed_the_topic_keys() -> None:
    config = BrokerConfig({"log.roll.hours": "2", "log.flush.scheduler.interval.ms": "500"})
    effective = effective_topic_config(config, {})
    assert effective["segment.ms"] == "7200000"
    assert effective["flush.ms"] == "500"


def test_dynamic_layers_win_over_static_and_topic_overrides_win_over_all() -> None:
    config = BrokerConfig({"log.segment.bytes": "2097152"})
    config.replace_dynamic_layer(False, {"log.segment.bytes": "3145728"})
    assert config.get_int("log.segment.bytes") == 3145728
    config.replace_dynamic_layer(True, {"log.segment.bytes": "4194304"})
    assert config.get_int("log.segment.bytes") == 4194304
    assert effective_topic_config(config, {"segment.bytes": "1048576"})["segment.bytes"] == "1048576"


def test_unknown_broker_keys_are_kept_and_bad_known_values_refused() -> None:
    config = BrokerConfig({"advertised.host": "example", "some.plugin.key": "x"})
    assert config.get("some.plugin.key") == "x"
    with pytest.raises(ConfigError) as caught:
        BrokerConfig({"log.retention.ms": "abc"})
    assert str(caught.value) == "Invalid value abc for configuration log.retention.ms: Not a number of type LONG"
    with pytest.raises(ConfigError, match="num.partitions: Value must be at least 1"):
        BrokerConfig({"num.partitions": "0"})


def test_dynamic_layers_survive_a_save_and_load(tmp_path: Path) -> None:
    config = BrokerConfig()
    config.replace_dynamic_layer(True, {"log.retention.ms": "1000"})
    config.save_dynamic(tmp_path / "dynamic.json")
    restored = BrokerConfig()
    restored.load_dynamic(tmp_path / "dynamic.json")
    assert restored.get("log.retention.ms") == "1000"
    assert restored.dynamic_default == {"min.insync.replicas": "1"}


# -- topic validation: codes and messages as Kafka 4.3.1 sends them ---------------------------------


@pytest.mark.parametrize(("overrides", "message"), [
    ({"nosuch.key": "1"}, "Unknown topic config name: nosuch.key"),
    ({"log.retention.ms": "1000"}, "Unknown topic config name: log.retention.ms"),
    ({"message.format.version": "3.0"}, "Unknown topic config name: message.format.version"),
    ({"retention.ms": None}, "Null value not supported for topic configs: retention.ms"),
    ({"retention.ms": "abc"}, "Invalid value abc for configuration retention.ms: Not a number of type LONG"),
    ({"retention.ms": "1.5"}, "Invalid value 1.5 for configuration retention.ms: Not a number of type LONG"),
    ({"retention.ms": "1_000"}, "Invalid value 1_000 for configuration retention.ms: Not a number of type LONG"),
    ({"retention.ms": "0x10"}, "Invalid value 0x10 for configuration retention.ms: Not a number of type LONG"),
    ({"retention.ms": ""}, "Invalid value  for configuration retention.ms: Not a number of type LONG"),
    ({"retention.ms": "-5"}, "Invalid value -5 for configuration retention.ms: Value must be at least -1"),
    ({"segment.bytes": "99999999999"},
     "Invalid value 99999999999 for configuration segment.bytes: Not a number of type INT"),
    ({"segment.bytes": "1048575"},
     "Invalid value 1048575 for configuration segment.bytes: Value must be at least 1048576"),
    ({"cleanup.policy": "foo"},
     "Invalid value foo for configuration cleanup.policy: String must be one of: compact, delete"),
    ({"cleanup.policy": "Compact"},
     "Invalid value Compact for configuration cleanup.policy: String must be one of: compact, delete"),
    ({"cleanup.policy": "compact,,delete"}, "Configuration 'cleanup.policy' values must not be empty."),
    ({"compression.type": "brotli"}, "Invalid value brotli for configuration compression.type: String must be "
                                     "one of: uncompressed, zstd, lz4, snappy, gzip, producer"),
    ({"message.timestamp.type": "Foo"}, "Invalid value Foo for configuration message.timestamp.type: String "
                                        "must be one of: CreateTime, LogAppendTime"),
    ({"min.insync.replicas": "0"}, "Invalid value 0 for configuration min.insync.replicas: Value must be at least 1"),
    ({"preallocate": "yes"}, "Invalid value yes for configuration preallocate: Expected value to be either true or false"),
    ({"min.cleanable.dirty.ratio": "1.5"},
     "Invalid value 1.5 for configuration min.cleanable.dirty.ratio: Value must be no more than 1"),
    ({"min.cleanable.dirty.ratio": "5."},
     "Invalid value 5.0 for configuration min.cleanable.dirty.ratio: Value must be no more than 1"),
    ({"min.cleanable.dirty.ratio": "nan"},
     "Invalid value nan for configuration min.cleanable.dirty.ratio: Not a number of type DOUBLE"),
    ({"min.cleanable.dirty.ratio": "-Infinity"},
     "Invalid value -Infinity for configuration min.cleanable.dirty.ratio: Value must be at least 0"),
    ({"compression.gzip.level": "0"},
     "Invalid value 0 for configuration compression.gzip.level: Value must be between 1 and 9 or equal to -1"),
    ({"compression.lz4.level": "18"},
     "Invalid value 18 for configuration compression.lz4.level: Value must be no more than 17"),
    ({"compression.zstd.level": "-131073"},
     "Invalid value -131073 for configuration compression.zstd.level: Value must be at least -131072"),
    ({"leader.replication.throttled.replicas": " 0 : 1 "},
     "Invalid value [0 : 1] for configuration leader.replication.throttled.replicas: "
     "leader.replication.throttled.replicas must be the literal '*' or a list of replicas in the following "
     "format: [partitionId]:[brokerId],[partitionId]:[brokerId],..."),
    ({"local.retention.ms": "-3"}, "Invalid value -3 for configuration local.retention.ms: Value must be at least -2"),
    ({"min.compaction.lag.ms": "10", "max.compaction.lag.ms": "5"},
     "conflict topic config setting min.compaction.lag.ms (10) > max.compaction.lag.ms (5)"),
    ({"remote.storage.enable": "true"}, "Tiered Storage functionality is disabled in the broker. "
                                        "Topic cannot be configured with remote log storage."),
    ({"retention.ms": "abc", "nosuch": "1"}, "Unknown topic config name: nosuch"),  # names before values
])
def test_bad_topic_configs_are_invalid_config_with_kafkas_message(
    overrides: dict[str, str | None], message: str
) -> None:
    error = refused(overrides)
    assert error.error is Errors.INVALID_CONFIG
    assert error.message == message


def test_values_are_checked_in_kafkas_definition_order() -> None:
    error = refused({"retention.ms": "abc", "segment.bytes": "1"})
    assert error.message is not None and error.message.startswith("Invalid value 1 for configuration segment.bytes")


@pytest.mark.parametrize("overrides", [
    {"retention.ms": " 1000 "}, {"retention.ms": "+5"}, {"retention.ms": "007"}, {"retention.ms": "\u0663"},
    {"preallocate": "TRUE"}, {"compression.type": " gzip "}, {"cleanup.policy": ""},
    {"cleanup.policy": "compact,compact"}, {"cleanup.policy": " compact , delete "},
    {"min.cleanable.dirty.ratio": "NaN"}, {"min.cleanable.dirty.ratio": "0.5d"},
    {"min.cleanable.dirty.ratio": "0x1p-1"}, {"min.cleanable.dirty.ratio": ".5"},
    {"leader.replication.throttled.replicas": "*"}, {"follower.replication.throttled.replicas": "0:1,1:2"},
    {"min.insync.replicas": "2"}, {"internal.segment.bytes": "100"}, {"retention.bytes": "-100"},
])
def test_values_kafka_accepts_are_returned_as_given(overrides: dict[str, str]) -> None:
    assert validate_topic_config(overrides) == overrides


# -- canonical values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "raw", "canonical"), [
    ("retention.ms", " 007 ", "7"), ("max.message.bytes", "+12", "12"), ("retention.bytes", "\u0663", "3"),
    ("preallocate", "TRUE", "true"), ("compression.type", " gzip ", "gzip"),
    ("cleanup.policy", "compact, compact ,delete", "compact,delete"),
    ("leader.replication.throttled.replicas", " 0:1 , 1:2 ", "0:1,1:2"),
    ("min.cleanable.dirty.ratio", "1e-5", "1.0E-5"), ("min.cleanable.dirty.ratio", "0.0009", "9.0E-4"),
    ("min.cleanable.dirty.ratio", "1.0E-3", "0.001"), ("min.cleanable.dirty.ratio", "1", "1.0"),
    ("min.cleanable.dirty.ratio", "0.1234567890123", "0.1234567890123"), ("min.cleanable.dirty.ratio", "NaN", "NaN"),
])
def test_described_values_are_kafkas_canonical_strings(key: str, raw: str, canonical: str) -> None:
    assert effective_topic_config(BrokerConfig(), {key: raw})[key] == canonical


@pytest.mark.parametrize(("number", "text"), [
    (1.7976931348623157e308, "1.7976931348623157E308"), (0.5, "0.5"), (1e7, "1.0E7"), (9999999.0, "9999999.0"),
    (123.456, "123.456"), (-0.0, "-0.0"), (0.0, "0.0"), (float("inf"), "Infinity"), (1e-3, "0.001"),
])
def test_doubles_print_like_java(number: float, text: str) -> None:
    assert java_double_to_string(number) == text


# -- DescribeConfigs shape -------------------------------------------------------------------------------


def test_a_topic_with_no_overrides_describes_every_key_with_kafkas_sources_and_types() -> None:
    config = BrokerConfig({"log.segment.bytes": "8388608"})
    entries = {e.name: e for e in describe_topic_config(config, {}, None, True, True)}
    assert set(entries) == KAFKA_4_TOPIC_KEYS
    segment = entries["segment.bytes"]
    assert (segment.value, segment.config_source, segment.config_type) == (
        "8388608", ConfigSource.STATIC_BROKER_CONFIG, ConfigType.INT)
    assert segment.synonyms == [Synonym("log.segment.bytes", "8388608", ConfigSource.STATIC_BROKER_CONFIG),
                                Synonym("log.segment.bytes", "1073741824", ConfigSource.DEFAULT_CONFIG)]
    # ELR: the cluster-wide min.insync.replicas written at bootstrap
    assert entries["min.insync.replicas"].synonyms == [
        Synonym("min.insync.replicas", "1", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG),
        Synonym("min.insync.replicas", "1", ConfigSource.DEFAULT_CONFIG)]
    # Kafka drops synonyms up to the first one named like the broker key: none are left here
    assert entries["retention.ms"].synonyms == [] and entries["retention.ms"].config_source is ConfigSource.DEFAULT_CONFIG
    assert entries["leader.replication.throttled.replicas"].synonyms == []
    assert all(not e.read_only and not e.is_sensitive and e.documentation for e in entries.values())


def test_a_topic_override_comes_first_in_canonical_form() -> None:
    entries = describe_topic_config(BrokerConfig(), {"cleanup.policy": " compact , delete "},
                                    ["cleanup.policy", "nosuch"], True, False)
    assert len(entries) == 1
    (entry,) = entries
    assert entry.value == "compact,delete" and entry.config_source is ConfigSource.DYNAMIC_TOPIC_CONFIG
    assert entry.synonyms == [Synonym("cleanup.policy", "compact,delete", ConfigSource.DYNAMIC_TOPIC_CONFIG),
                              Synonym("log.cleanup.policy", "delete", ConfigSource.DEFAULT_CONFIG)]
    assert entry.documentation is None and not entry.is_default


def test_retention_from_hours_is_reported_with_kafkas_quirk() -> None:
    (entry,) = describe_topic_config(BrokerConfig({"log.retention.hours": "24"}), {}, ["retention.ms"], True)
    assert entry.value == "86400000"
    assert entry.config_source is ConfigSource.DEFAULT_CONFIG and entry.synonyms == []
    (entry,) = describe_topic_config(BrokerConfig({"log.retention.ms": "5"}), {}, ["retention.ms"], True)
    assert entry.synonyms == [Synonym("log.retention.ms", "5", ConfigSource.STATIC_BROKER_CONFIG),
                              Synonym("log.retention.hours", "168", ConfigSource.DEFAULT_CONFIG)]


def test_synonyms_are_left_out_unless_asked_for() -> None:
    (entry,) = describe_topic_config(BrokerConfig(), {"retention.ms": "1"}, ["retention.ms"], False)
    assert entry.synonyms == [] and entry.config_source is ConfigSource.DYNAMIC_TOPIC_CONFIG


def test_creation_answers_show_overrides_as_written() -> None:
    (entry,) = describe_topic_config(BrokerConfig(), {"retention.ms": " 1000 "}, ["retention.ms"], as_created=True)
    assert entry.value == " 1000 "


def test_broker_description_marks_static_keys_read_only_and_keeps_own_values() -> None:
    config = BrokerConfig({"node.id": "0", "log.retention.hours": "24", "advertised.host": "h"})
    entries = {e.name: e for e in describe_broker_config(config, None, True)}
    assert entries["num.partitions"].read_only and not entries["log.retention.ms"].read_only
    assert entries["log.retention.ms"].value is None and entries["log.retention.ms"].synonyms == []
    assert entries["log.retention.hours"].value == "24"
    assert entries["log.retention.hours"].synonyms == [
        Synonym("log.retention.hours", "24", ConfigSource.STATIC_BROKER_CONFIG),
        Synonym("log.retention.hours", "168", ConfigSource.DEFAULT_CONFIG)]
    assert entries["node.id"].synonyms == [Synonym("node.id", "0", ConfigSource.STATIC_BROKER_CONFIG)]
    assert entries["offsets.topic.replication.factor"].config_type is ConfigType.SHORT
    assert entries["advertised.host"].config_type is ConfigType.UNKNOWN  # an unknown static key is listed too


def test_cluster_default_description_lists_only_the_dynamic_default_layer() -> None:
    entries = describe_broker_config(BrokerConfig(), None, True, cluster_default=True)
    assert [(e.name, e.value, e.config_source, e.synonyms) for e in entries] == [
        ("min.insync.replicas", "1", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG,
         [Synonym("min.insync.replicas", "1", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG)])]
    assert describe_broker_config(BrokerConfig(elr_enabled=False), None, cluster_default=True) == []


# -- dynamic broker changes -------------------------------------------------------------------------------


@pytest.mark.parametrize(("props", "per_broker", "message"), [
    ({"num.partitions": "3"}, True, "Cannot update these configs dynamically: [num.partitions]"),
    ({"log.retention.ms": "abc"}, True, "Invalid value abc for configuration log.retention.ms: Not a number of type LONG"),
    ({"log.segment.bytes": "10"}, True,
     "Invalid value 10 for configuration log.segment.bytes: Value must be at least 1048576"),
    ({"message.max.bytes": "-5"}, True, "Invalid value -5 for configuration message.max.bytes: Value must be at least 0"),
    ({"listeners": "PLAINTEXT://:1"}, False,
     "Cannot update these configs at default cluster level, broker id must be specified: [listeners]"),
])
def test_bad_dynamic_broker_changes_are_invalid_request(props: dict[str, str], per_broker: bool, message: str) -> None:
    with pytest.raises(KafkaError) as caught:
        check_dynamic_broker_change(props, per_broker)
    assert caught.value.error is Errors.INVALID_REQUEST and caught.value.message == message


def test_unknown_and_topic_keys_pass_as_dynamic_broker_changes() -> None:
    check_dynamic_broker_change({"nosuch.thing": "1", "retention.ms": "1000", "log.retention.ms": "-5"}, True)


# -- the partition log's view -----------------------------------------------------------------------------


def test_log_config_follows_overrides_and_broker_defaults() -> None:
    config = BrokerConfig({"log.retention.minutes": "1", "log.segment.bytes": "2097152"})
    log_config = log_config_for(config, {"cleanup.policy": "compact,delete", "segment.index.bytes": "4096"})
    assert log_config.retention_ms == 60_000
    assert log_config.segment_bytes == 2097152
    assert log_config.segment_index_bytes == 4096
    assert log_config.compact_enabled and log_config.delete_enabled


def test_internal_segment_bytes_and_an_empty_cleanup_policy() -> None:
    log_config = log_config_for(BrokerConfig(), {"internal.segment.bytes": "1000", "cleanup.policy": ""})
    assert log_config.segment_bytes == 1000
    assert not log_config.compact_enabled and not log_config.delete_enabled
