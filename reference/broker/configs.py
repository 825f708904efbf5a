"""Broker and topic configuration: Kafka's config definitions kept as data, and how values resolve.

Theory of operation
-------------------
Apache Kafka describes every configuration key with a ``ConfigDef`` entry: a type, a default, a
validator and documentation.  This module keeps the same facts as two tables of
:class:`ConfigDefinition` rows, :data:`TOPIC_CONFIGS` (every topic-level key of Kafka 4.x, in the
order Kafka defines them) and :data:`BROKER_CONFIGS` (the subset of broker keys the reference
broker uses or that feed topic defaults; Kafka 4.3 describes about 340 broker keys, refka 80 or so).

Four rules carry most of the behaviour, and each is Kafka's:

1. **Parsing** (``ConfigDef.parseType``).  A value arrives as a string.  Numbers, booleans,
   strings and lists are first stripped of leading and trailing characters up to ``' '`` (Java's
   ``String.trim``).  INT, SHORT and LONG accept an optional sign and decimal digits only
   (``1_000`` and ``0x10`` are refused: "Not a number of type LONG"); BOOLEAN is ``true`` or
   ``false`` in any case; DOUBLE follows Java's ``Double.parseDouble`` (``0.5d``, ``1e-5``,
   ``NaN``, ``0x1p-1``); LIST splits on commas with surrounding blanks and, since Kafka 4.2
   (KIP-1161), keeps each entry once.  A bad value is reported as
   ``Invalid value <v> for configuration <key>: <reason>`` (Kafka's ``ConfigException``).
2. **Canonical form** (``ConfigDef.convertToString``).  DescribeConfigs and the partition log see
   the parsed value written back: ``" 007 "`` becomes ``7``, ``TRUE`` becomes ``true``,
   ``0.0009`` becomes ``9.0E-4`` (Java's ``Double.toString``).  Stored overrides keep the string
   the client sent, as Kafka's metadata log does.
3. **Precedence** (KIP-226).  A broker key's value comes from, highest first: a dynamic per-broker
   setting, a dynamic cluster-wide default, the static setting (``--set``), Kafka's default.  Some
   keys have lower-precedence synonyms: ``log.retention.ms`` over ``log.retention.minutes`` over
   ``log.retention.hours``; ``log.roll.ms`` over ``log.roll.hours``; ``log.flush.interval.ms``
   over ``log.flush.scheduler.interval.ms``.  A topic key's value is the topic's override, else its
   broker synonym (``retention.ms`` <- ``log.retention.ms``), else the topic default.
4. **Description** (``ConfigHelper`` in Kafka's broker).  Each described key lists its synonyms,
   highest precedence first, each with a :class:`ConfigSource`; the entry's source is the first
   synonym's.  Kafka builds the broker part of that list by collecting every synonym that has a
   value and then dropping entries until the first one named like the key itself; so
   ``retention.ms`` on a broker that only sets ``log.retention.hours`` reports source
   DEFAULT_CONFIG and no synonyms although its value comes from the hours.  refka keeps that quirk.

Error codes (Kafka 4.3, checked against a live broker): a bad topic config is INVALID_CONFIG (40)
in CreateTopics, AlterConfigs and IncrementalAlterConfigs; a bad *broker* value in the config APIs is
INVALID_REQUEST (42), because Kafka's broker wraps the ``ConfigException``.

ELR (KIP-966): a Kafka 4.x cluster with eligible leader replicas enabled writes a cluster-wide
``min.insync.replicas`` (the broker's own value) into its metadata before enabling the feature, so
every topic reports ``min.insync.replicas`` with source DYNAMIC_DEFAULT_BROKER_CONFIG.  A
:class:`BrokerConfig` made with ``elr_enabled=True`` (the default) starts the same way.

Invariants: every value stored in a :class:`BrokerConfig` layer parses under its definition; every
override returned by :func:`validate_topic_config` parses and passes its validator.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import IntEnum
from pathlib import Path
from typing import Protocol

from reference import durability

from ..errors import Errors, KafkaError
from .log.config import LogConfig

# ---------------------------------------------------------------------------------------------------
# Wire enums
# ---------------------------------------------------------------------------------------------------


class ConfigType(IntEnum):
    """DescribeConfigsResponse ``ConfigType`` (v3+, KIP-569)."""

    UNKNOWN = 0
    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7
    CLASS = 8
    PASSWORD = 9


class ConfigSource(IntEnum):
    """DescribeConfigsResponse ``ConfigSource`` (v1+): where an effective value came from."""

    UNKNOWN = 0
    DYNAMIC_TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5
    DYNAMIC_BROKER_LOGGER_CONFIG = 6
    CLIENT_METRICS_CONFIG = 7
    GROUP_CONFIG = 8


class ConfigError(ValueError):
    """A value Kafka's ``ConfigDef`` refuses; ``str()`` is Kafka's one-line message."""


def _invalid(key: str, shown: object, reason: str) -> ConfigError:
    return ConfigError(f"Invalid value {shown} for configuration {key}: {reason}")


# ---------------------------------------------------------------------------------------------------
# Java-compatible parsing and printing
# ---------------------------------------------------------------------------------------------------

Parsed = bool | int | float | str | list[str]

INT_RANGE = (-(1 << 31), (1 << 31) - 1)
SHORT_RANGE = (-(1 << 15), (1 << 15) - 1)
LONG_RANGE = (-(1 << 63), (1 << 63) - 1)
LONG_MAX = LONG_RANGE[1]
INT_MAX = INT_RANGE[1]

_INTEGER = re.compile(r"[+-]?\d+")  # Java's parseInt/parseLong accept any Unicode decimal digit
_DECIMAL_DOUBLE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fFdD]?")
_HEX_DOUBLE = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+[fFdD]?")
_SPECIAL_DOUBLE = {"NaN": math.nan, "Infinity": math.inf, "+Infinity": math.inf, "-Infinity": -math.inf,
                   "+NaN": math.nan, "-NaN": math.nan}
_LIST_SEPARATOR = re.compile(r"\s*,\s*")


def java_trim(value: str) -> str:
    """``String.trim()``: strips characters up to U+0020 at both ends (not other Unicode space)."""
    start, end = 0, len(value)
    while start < end and value[start] <= " ":
        start += 1
    while end > start and value[end - 1] <= " ":
        end -= 1
    return value[start:end]


def java_double_to_string(number: float) -> str:
    """``Double.toString``: plain notation in [1e-3, 1e7), else ``d.dddE<exp>``; shortest digits."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number == 0:
        return "-0.0" if math.copysign(1.0, number) < 0 else "0.0"
    sign = "-" if number < 0 else ""
    digits_tuple = Decimal(repr(abs(number))).normalize().as_tuple()
    digits = "".join(str(d) for d in digits_tuple.digits)
    exponent = int(digits_tuple.exponent) + len(digits) - 1  # value = d.ddd * 10**exponent
    if -3 <= exponent < 7:
        if exponent >= 0:
            whole = digits[: exponent + 1].ljust(exponent + 1, "0")
            fraction = digits[exponent + 1:] or "0"
        else:
            whole, fraction = "0", "0" * (-exponent - 1) + digits
        return f"{sign}{whole}.{fraction}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{exponent}"


def _parse_integer(key: str, raw: str, trimmed: str, type_: ConfigType) -> int:
    bounds = {ConfigType.INT: INT_RANGE, ConfigType.SHORT: SHORT_RANGE, ConfigType.LONG: LONG_RANGE}[type_]
    if _INTEGER.fullmatch(trimmed):
        number = int(trimmed)
        if bounds[0] <= number <= bounds[1]:
            return number
    raise _invalid(key, raw, f"Not a number of type {type_.name}")


def _parse_double(key: str, raw: str, trimmed: str) -> float:
    if trimmed in _SPECIAL_DOUBLE:
        return _SPECIAL_DOUBLE[trimmed]
    if _DECIMAL_DOUBLE.fullmatch(trimmed):
        return float(trimmed.rstrip("fFdD"))
    if _HEX_DOUBLE.fullmatch(trimmed):
        return float.fromhex(trimmed.rstrip("fFdD"))
    raise _invalid(key, raw, "Not a number of type DOUBLE")


def _parse_list(trimmed: str) -> list[str]:
    if not trimmed:
        return []
    entries = _LIST_SEPARATOR.split(trimmed)
    return list(dict.fromkeys(entries))  # KIP-1161: each entry once, first occurrence kept


def parse_value(key: str, type_: ConfigType, raw: str) -> Parsed:
    """``ConfigDef.parseType``: the typed value of ``raw``; raises :class:`ConfigError`."""
    trimmed = java_trim(raw)
    if type_ is ConfigType.BOOLEAN:
        if trimmed.lower() in ("true", "false"):
            return trimmed.lower() == "true"
        raise _invalid(key, raw, "Expected value to be either true or false")
    if type_ in (ConfigType.INT, ConfigType.SHORT, ConfigType.LONG):
        return _parse_integer(key, raw, trimmed, type_)
    if type_ is ConfigType.DOUBLE:
        return _parse_double(key, raw, trimmed)
    if type_ is ConfigType.LIST:
        return _parse_list(trimmed)
    return trimmed  # STRING, PASSWORD, CLASS (refka loads no classes)


def format_value(type_: ConfigType, value: Parsed) -> str:
    """``ConfigDef.convertToString``: the canonical string of a parsed value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) or type_ is ConfigType.DOUBLE:
        return java_double_to_string(float(value))  # type: ignore[arg-type]
    if isinstance(value, list):
        return ",".join(value)
    return str(value)


def _shown(value: Parsed) -> str:
    """How a parsed value appears inside Kafka's message (Java ``toString``)."""
    if isinstance(value, list):
        return "[" + ", ".join(value) + "]"
    return format_value(ConfigType.DOUBLE if isinstance(value, float) else ConfigType.STRING, value)


# ---------------------------------------------------------------------------------------------------
# Validators (ConfigDef.Range, ValidString, ValidList and two of Kafka's own)
# ---------------------------------------------------------------------------------------------------


class Validator(Protocol):
    def check(self, key: str, value: Parsed) -> None: ...


@dataclass(frozen=True)
class Range:
    """``ConfigDef.Range``: ``atLeast(min)`` or ``between(min, max)``; NaN passes, as in Java."""

    min: int | None = None
    max: int | None = None

    def check(self, key: str, value: Parsed) -> None:
        number = float(value)  # type: ignore[arg-type]
        if self.min is not None and number < self.min:
            raise _invalid(key, _shown(value), f"Value must be at least {self.min}")
        if self.max is not None and number > self.max:
            raise _invalid(key, _shown(value), f"Value must be no more than {self.max}")


def at_least(minimum: int) -> Range:
    return Range(min=minimum)


@dataclass(frozen=True)
class OneOf:
    """``ConfigDef.ValidString.in(...)``: case-sensitive, in Kafka's listing order."""

    values: tuple[str, ...]

    def check(self, key: str, value: Parsed) -> None:
        if value not in self.values:
            raise _invalid(key, value, "String must be one of: " + ", ".join(self.values))


@dataclass(frozen=True)
class ListOf:
    """``ConfigDef.ValidList`` (KIP-1161 form): no empty entries; each entry among ``values``."""

    values: tuple[str, ...]

    def check(self, key: str, value: Parsed) -> None:
        assert isinstance(value, list)
        if any(entry == "" for entry in value):
            raise ConfigError(f"Configuration '{key}' values must not be empty.")
        for entry in value:
            OneOf(self.values).check(key, entry)


@dataclass(frozen=True)
class GzipLevel:
    """``CompressionType.GZIP.levelValidator``: 1..9, or -1 for zlib's default."""

    def check(self, key: str, value: Parsed) -> None:
        if value != -1 and not 1 <= value <= 9:  # type: ignore[operator]
            raise _invalid(key, value, "Value must be between 1 and 9 or equal to -1")


_REPLICA_PAIR = re.compile(r"[0-9]+:[0-9]+")


@dataclass(frozen=True)
class ThrottledReplicas:
    """``ThrottledReplicaListValidator``: ``*`` or ``partition:broker`` pairs."""

    def check(self, key: str, value: Parsed) -> None:
        assert isinstance(value, list)
        if value == ["*"] or all(_REPLICA_PAIR.fullmatch(entry) for entry in value):
            return
        raise _invalid(key, _shown(value), f"{key} must be the literal '*' or a list of replicas in the "
                       "following format: [partitionId]:[brokerId],[partitionId]:[brokerId],...")


# ---------------------------------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigDefinition:
    """One row of a config table.

    ``default`` is Kafka's default in canonical string form (None: no default).  ``synonym`` (topic
    keys) is the broker key that supplies the topic's default.  ``dynamic`` (broker keys) means
    AlterConfigs may change it; DescribeConfigs reports the others as read-only.  ``per_broker``
    keys may be set for one broker but not as a cluster-wide default.  ``internal`` keys are
    accepted but never described.
    """

    name: str
    type: ConfigType
    default: str | None
    doc: str
    validator: Validator | None = None
    synonym: str | None = None
    dynamic: bool = False
    per_broker: bool = False
    internal: bool = False

    @property
    def sensitive(self) -> bool:
        return self.type is ConfigType.PASSWORD

    def parse(self, raw: str) -> Parsed:
        """Parse and validate ``raw``; raises :class:`ConfigError` with Kafka's message."""
        value = parse_value(self.name, self.type, raw)
        if self.validator is not None:
            self.validator.check(self.name, value)
        return value

    def canonical(self, raw: str) -> str:
        return format_value(self.type, self.parse(raw))


BOOL, STR, INT, SHORT, LONG, DOUBLE, LIST, PASSWORD = (
    ConfigType.BOOLEAN, ConfigType.STRING, ConfigType.INT, ConfigType.SHORT, ConfigType.LONG, ConfigType.DOUBLE,
    ConfigType.LIST, ConfigType.PASSWORD)
C = ConfigDefinition

COMPRESSION_TYPES = ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")
TIMESTAMP_TYPES = ("CreateTime", "LogAppendTime")
CLEANUP_POLICIES = ("compact", "delete")
SEGMENT_BYTES_MINIMUM = 1024 * 1024  # Kafka 4.0 raised segment.bytes' floor to 1 MiB

# Kafka's LogConfig, in its definition order (which is also the order values are validated in).
TOPIC_CONFIGS: tuple[ConfigDefinition, ...] = (
    C("segment.bytes", INT, "1073741824", "Size at which the active segment file is closed and a new one started.",
      at_least(SEGMENT_BYTES_MINIMUM), "log.segment.bytes"),
    C("segment.ms", LONG, "604800000", "Age after which the active segment is rolled even if it is not full.",
      at_least(1), "log.roll.ms"),
    C("segment.jitter.ms", LONG, "0", "Largest random amount taken off the roll time so segments do not all roll at once.",
      at_least(0), "log.roll.jitter.ms"),
    C("segment.index.bytes", INT, "10485760", "Maximum size of a segment's offset index and time index files.",
      at_least(4), "log.index.size.max.bytes"),
    C("flush.messages", LONG, str(LONG_MAX), "Number of messages written after which the log is forced to disk.",
      at_least(1), "log.flush.interval.messages"),
    C("flush.ms", LONG, str(LONG_MAX), "Time after which unflushed data is forced to disk.",
      at_least(0), "log.flush.interval.ms"),
    C("retention.bytes", LONG, "-1", "Size a partition may reach before its oldest segments are deleted; -1 is no limit.",
      None, "log.retention.bytes"),
    C("retention.ms", LONG, "604800000", "Age after which closed segments are deleted under the delete policy; -1 keeps them.",
      at_least(-1), "log.retention.ms"),
    C("max.message.bytes", INT, "1048588", "Largest record batch, after compression, the topic accepts.",
      at_least(0), "message.max.bytes"),
    C("index.interval.bytes", INT, "4096", "Bytes of log written between two entries of the sparse offset index.",
      at_least(0), "log.index.interval.bytes"),
    C("delete.retention.ms", LONG, "86400000", "How long tombstones stay in a compacted log after being cleaned.",
      at_least(0), "log.cleaner.delete.retention.ms"),
    C("min.compaction.lag.ms", LONG, "0", "Minimum age of a record before the cleaner may compact it away.",
      at_least(0), "log.cleaner.min.compaction.lag.ms"),
    C("max.compaction.lag.ms", LONG, str(LONG_MAX), "Maximum time a record may stay uncompacted in a compacted log.",
      at_least(1), "log.cleaner.max.compaction.lag.ms"),
    C("file.delete.delay.ms", LONG, "60000", "Delay between marking a segment deleted and removing its files.",
      at_least(0), "log.segment.delete.delay.ms"),
    C("min.cleanable.dirty.ratio", DOUBLE, "0.5", "Share of the log that must be uncleaned before the cleaner runs on it.",
      Range(0, 1), "log.cleaner.min.cleanable.ratio"),
    C("cleanup.policy", LIST, "delete", "What happens to old segments: delete them, compact them by key, or both.",
      ListOf(CLEANUP_POLICIES), "log.cleanup.policy"),
    C("unclean.leader.election.enable", BOOL, "false", "Whether a replica outside the ISR may become leader, losing data.",
      None, "unclean.leader.election.enable"),
    C("min.insync.replicas", INT, "1", "In-sync replicas needed for an acks=all write to succeed.",
      at_least(1), "min.insync.replicas"),
    C("compression.type", STR, "producer", "Codec batches are stored with; 'producer' keeps the producer's codec.",
      OneOf(COMPRESSION_TYPES), "compression.type"),
    C("compression.gzip.level", INT, "-1", "Level used when the broker compresses with gzip.",
      GzipLevel(), "compression.gzip.level"),
    C("compression.lz4.level", INT, "9", "Level used when the broker compresses with lz4.",
      Range(1, 17), "compression.lz4.level"),
    C("compression.zstd.level", INT, "3", "Level used when the broker compresses with zstd.",
      Range(-131072, 22), "compression.zstd.level"),
    C("preallocate", BOOL, "false", "Whether segment files are preallocated on disk when created.",
      None, "log.preallocate"),
    C("message.timestamp.type", STR, "CreateTime", "Whether record timestamps are the producer's or the broker's append time.",
      OneOf(TIMESTAMP_TYPES), "log.message.timestamp.type"),
    C("message.timestamp.before.max.ms", LONG, str(LONG_MAX), "How far in the past a CreateTime timestamp may be.",
      at_least(0), "log.message.timestamp.before.max.ms"),
    C("message.timestamp.after.max.ms", LONG, "3600000", "How far in the future a CreateTime timestamp may be.",
      at_least(0), "log.message.timestamp.after.max.ms"),
    C("leader.replication.throttled.replicas", LIST, "", "Replicas whose replication is throttled on the leader side ('*' for all).",
      ThrottledReplicas()),
    C("follower.replication.throttled.replicas", LIST, "", "Replicas whose replication is throttled on the follower side ('*' for all).",
      ThrottledReplicas()),
    C("remote.storage.enable", BOOL, "false", "Whether the topic uses tiered storage (refka has none)."),
    C("local.retention.ms", LONG, "-2", "Local retention time with tiered storage; -2 means use retention.ms.",
      at_least(-2), "log.local.retention.ms"),
    C("local.retention.bytes", LONG, "-2", "Local retention size with tiered storage; -2 means use retention.bytes.",
      at_least(-2), "log.local.retention.bytes"),
    C("remote.log.copy.disable", BOOL, "false", "Whether tiered data becomes read-only (no more uploads)."),
    C("remote.log.delete.on.disable", BOOL, "false", "Whether tiered data is deleted when tiered storage is turned off."),
    # Kafka 4.x's internal override of segment.bytes' floor, used by tests; accepted, never described.
    C("internal.segment.bytes", INT, None, "Segment size that bypasses segment.bytes' minimum (tests only).",
      internal=True),
)

BROKER_CONFIGS: tuple[ConfigDefinition, ...] = (
    # -- identity and listeners --
    C("node.id", INT, None, "The id of this node in the cluster."),
    C("broker.id", INT, "-1", "Legacy name of the node id; follows node.id."),
    C("process.roles", LIST, None, "The roles this node plays: broker, controller or both.",
      ListOf(("broker", "controller"))),
    C("listeners", LIST, "PLAINTEXT://:9092", "Addresses the node listens on, as NAME://host:port.",
      dynamic=True, per_broker=True),
    C("advertised.listeners", LIST, None, "Addresses given to clients when they differ from the listeners.",
      per_broker=True),
    C("listener.security.protocol.map", STR,
      "SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT",
      "Security protocol used by each listener name.", dynamic=True, per_broker=True),
    C("inter.broker.listener.name", STR, None, "Listener brokers use to talk to each other."),
    # -- KRaft: the controller quorum this node belongs to or talks to (KIP-595, KIP-853) --
    C("controller.quorum.voters", LIST, "", "The static voter set, as id@host:port entries."),
    C("controller.quorum.bootstrap.servers", LIST, "", "Controller endpoints to discover the quorum from."),
    C("controller.listener.names", LIST, None, "Listener names used by the controller."),
    C("controller.quorum.election.timeout.ms", INT, "1000", "How long a voter waits for a leader before an election."),
    C("controller.quorum.fetch.timeout.ms", INT, "2000", "How long a follower waits for the leader before an election."),
    C("controller.quorum.election.backoff.max.ms", INT, "1000", "Longest random backoff before a new election."),
    C("controller.quorum.request.timeout.ms", INT, "2000", "How long a quorum request waits for its answer."),
    C("controller.quorum.retry.backoff.ms", INT, "20", "Backoff before a failed quorum request is retried."),
    C("broker.session.timeout.ms", INT, "9000", "Heartbeat silence after which the controller fences a broker."),
    C("broker.heartbeat.interval.ms", INT, "2000", "How often a broker heartbeats to the controller."),
    C("broker.rack", STR, None, "The rack of this broker, for rack-aware replica placement."),
    C("auto.leader.rebalance.enable", BOOL, "true", "Whether the controller moves leadership back to preferred replicas."),
    C("leader.imbalance.check.interval.seconds", LONG, "300", "How often the controller checks leader balance.",
      at_least(1)),
    C("leader.imbalance.per.broker.percentage", INT, "10", "Imbalance tolerated before a preferred election."),
    C("replica.selector.class", STR, None, "Chooses the replica a consumer fetches from (KIP-392); "
      "org.apache.kafka.common.replica.RackAwareReplicaSelector sends it to its own rack."),
    C("metadata.log.dir", STR, None, "Directory of the __cluster_metadata log (default: the first log dir)."),
    # KIP-630: a node snapshots its metadata image when either limit is reached (0 ms: no time limit).
    C("metadata.log.max.record.bytes.between.snapshots", LONG, str(20 * 1024 * 1024),
      "Committed metadata bytes after the latest snapshot that make the node write a new one.", at_least(1)),
    C("metadata.log.max.snapshot.interval.ms", LONG, "3600000",
      "Time after the latest snapshot when committed metadata not in it makes the node write a new one.",
      at_least(0)),
    C("log.dir", LIST, "/tmp/kafka-logs", "Log directory used when log.dirs is not set."),
    C("log.dirs", LIST, None, "Directories holding the partition logs."),
    # -- topics --
    C("num.partitions", INT, "1", "Partitions of a topic created without a partition count.", at_least(1)),
    C("default.replication.factor", INT, "1", "Replication factor of topics created without one."),
    C("auto.create.topics.enable", BOOL, "true", "Whether Metadata for an unknown topic creates it."),
    C("delete.topic.enable", BOOL, "true", "Whether DeleteTopics is allowed."),
    C("min.insync.replicas", INT, "1", "Default of the topic key min.insync.replicas.", at_least(1), dynamic=True),
    C("unclean.leader.election.enable", BOOL, "false", "Default of unclean.leader.election.enable.", dynamic=True),
    C("compression.type", STR, "producer", "Default of compression.type.", OneOf(COMPRESSION_TYPES), dynamic=True),
    C("compression.gzip.level", INT, "-1", "Default of compression.gzip.level.", GzipLevel(), dynamic=True),
    C("compression.lz4.level", INT, "9", "Default of compression.lz4.level.", Range(1, 17), dynamic=True),
    C("compression.zstd.level", INT, "3", "Default of compression.zstd.level.", Range(-131072, 22), dynamic=True),
    # -- requests --
    C("message.max.bytes", INT, "1048588", "Default of max.message.bytes: largest record batch accepted.",
      at_least(0), dynamic=True),
    C("socket.request.max.bytes", INT, "104857600", "Largest request frame; a bigger one closes the connection.",
      at_least(1)),
    C("socket.send.buffer.bytes", INT, "102400", "SO_SNDBUF of client sockets; -1 uses the OS default."),
    C("socket.receive.buffer.bytes", INT, "102400", "SO_RCVBUF of client sockets; -1 uses the OS default."),
    C("queued.max.requests", INT, "500", "Requests queued before the network threads stop reading.", at_least(1)),
    C("request.timeout.ms", INT, "30000", "How long the broker waits for answers to its own requests."),
    C("num.io.threads", INT, "8", "Threads that handle requests.", at_least(1), dynamic=True),
    C("num.network.threads", INT, "3", "Threads that read and write sockets.", at_least(1), dynamic=True),
    C("max.connections", INT, str(INT_MAX), "Connections the broker accepts in total.", at_least(0), dynamic=True),
    C("max.connections.per.ip", INT, str(INT_MAX), "Connections the broker accepts from one address.",
      at_least(0), dynamic=True),
    C("connections.max.idle.ms", LONG, "600000", "Silence after which a client connection is closed."),
    C("fetch.max.bytes", INT, "57671680", "Most bytes one Fetch response carries.", at_least(1024)),
    C("max.incremental.fetch.session.cache.slots", INT, "1000", "Fetch sessions (KIP-227) the broker keeps, "
      "split evenly over 8 cache shards (slots // 8 each).", at_least(0)),
    C("replica.fetch.max.bytes", INT, "1048576", "Bytes a follower fetches per partition.", at_least(0)),
    C("replica.fetch.response.max.bytes", INT, "10485760", "Bytes a follower's whole Fetch response may carry.",
      at_least(0)),
    C("replica.fetch.wait.max.ms", INT, "500", "How long the leader may hold a follower's Fetch (long poll)."),
    C("replica.fetch.min.bytes", INT, "1", "Bytes a follower's Fetch waits for before it is answered."),
    C("replica.fetch.backoff.ms", INT, "1000", "How long a follower waits after a fetch error.", at_least(0)),
    C("replica.lag.time.max.ms", LONG, "30000", "How long a follower may lag before it leaves the ISR."),
    # -- log segments and retention --
    C("log.segment.bytes", INT, "1073741824", "Default of segment.bytes.", at_least(SEGMENT_BYTES_MINIMUM), dynamic=True),
    C("log.roll.ms", LONG, None, "Default of segment.ms; wins over log.roll.hours.", dynamic=True),
    C("log.roll.hours", INT, "168", "Default of segment.ms in hours, used when log.roll.ms is unset.", at_least(1)),
    C("log.roll.jitter.ms", LONG, None, "Default of segment.jitter.ms; wins over log.roll.jitter.hours.", dynamic=True),
    C("log.roll.jitter.hours", INT, "0", "Default of segment.jitter.ms in hours.", at_least(0)),
    C("log.retention.ms", LONG, None, "Default of retention.ms; wins over the minutes and hours keys.", dynamic=True),
    C("log.retention.minutes", INT, None, "Default of retention.ms in minutes; wins over the hours key."),
    C("log.retention.hours", INT, "168", "Default of retention.ms in hours, the lowest-precedence retention key."),
    C("log.retention.bytes", LONG, "-1", "Default of retention.bytes.", dynamic=True),
    C("log.retention.check.interval.ms", LONG, "300000", "How often the broker looks for segments to delete.",
      at_least(1)),
    C("log.cleanup.policy", LIST, "delete", "Default of cleanup.policy.", ListOf(CLEANUP_POLICIES), dynamic=True),
    C("log.index.interval.bytes", INT, "4096", "Default of index.interval.bytes.", at_least(0), dynamic=True),
    C("log.index.size.max.bytes", INT, "10485760", "Default of segment.index.bytes.", at_least(4), dynamic=True),
    C("log.flush.interval.messages", LONG, str(LONG_MAX), "Default of flush.messages.", at_least(1), dynamic=True),
    C("log.flush.interval.ms", LONG, None, "Default of flush.ms; falls back to log.flush.scheduler.interval.ms.",
      dynamic=True),
    C("log.flush.scheduler.interval.ms", LONG, str(LONG_MAX), "How often the flusher checks logs; lowest flush.ms default."),
    C("log.segment.delete.delay.ms", LONG, "60000", "Default of file.delete.delay.ms.", at_least(0), dynamic=True),
    C("log.preallocate", BOOL, "false", "Default of preallocate.", dynamic=True),
    C("log.message.timestamp.type", STR, "CreateTime", "Default of message.timestamp.type.",
      OneOf(TIMESTAMP_TYPES), dynamic=True),
    C("log.message.timestamp.before.max.ms", LONG, str(LONG_MAX), "Default of message.timestamp.before.max.ms.",
      at_least(0), dynamic=True),
    C("log.message.timestamp.after.max.ms", LONG, "3600000", "Default of message.timestamp.after.max.ms.",
      at_least(0), dynamic=True),
    C("log.local.retention.ms", LONG, "-2", "Default of local.retention.ms.", at_least(-2), dynamic=True),
    C("log.local.retention.bytes", LONG, "-2", "Default of local.retention.bytes.", at_least(-2), dynamic=True),
    # -- log cleaner --
    C("log.cleaner.enable", BOOL, "true", "Whether the log cleaner runs (compacted topics need it)."),
    C("log.cleaner.backoff.ms", LONG, "15000", "Pause of the cleaner when no log needs cleaning.", at_least(0), dynamic=True),
    C("log.cleaner.delete.retention.ms", LONG, "86400000", "Default of delete.retention.ms.", at_least(0), dynamic=True),
    C("log.cleaner.min.compaction.lag.ms", LONG, "0", "Default of min.compaction.lag.ms.", at_least(0), dynamic=True),
    C("log.cleaner.max.compaction.lag.ms", LONG, str(LONG_MAX), "Default of max.compaction.lag.ms.",
      at_least(1), dynamic=True),
    C("log.cleaner.min.cleanable.ratio", DOUBLE, "0.5", "Default of min.cleanable.dirty.ratio.", Range(0, 1), dynamic=True),
    # -- consumer groups and offsets --
    C("offsets.topic.num.partitions", INT, "50", "Partitions of __consumer_offsets.", at_least(1)),
    C("offsets.topic.replication.factor", SHORT, "3", "Replication factor of __consumer_offsets.", at_least(1)),
    C("offsets.topic.segment.bytes", INT, "104857600", "segment.bytes of __consumer_offsets.", at_least(1)),
    C("offsets.retention.minutes", INT, "10080", "How long committed offsets of an empty group are kept.",
      at_least(1)),
    C("offsets.retention.check.interval.ms", LONG, "600000", "How often expired offsets are looked for.",
      at_least(1)),
    C("offsets.commit.timeout.ms", INT, "5000", "How long an offset commit waits for its write.", at_least(1)),
    C("offset.metadata.max.bytes", INT, "4096", "Largest metadata string an offset commit may carry."),
    C("group.initial.rebalance.delay.ms", INT, "3000", "Wait for more members before the first rebalance of a group."),
    C("group.min.session.timeout.ms", INT, "6000", "Smallest session timeout a member may ask for."),
    C("group.max.session.timeout.ms", INT, "1800000", "Largest session timeout a member may ask for."),
    C("group.max.size", INT, str(INT_MAX), "Most members a classic group may have.", at_least(1)),
    C("group.coordinator.rebalance.protocols", LIST, "classic,consumer,streams",
      "Group protocols the coordinator serves (refka serves classic)."),
    # -- producers and transactions --
    C("producer.id.expiration.ms", INT, "86400000", "Idle time after which a producer id's state is dropped.",
      at_least(1), dynamic=True),
    C("producer.id.expiration.check.interval.ms", INT, "600000",
      "How often partition leaders drop producer ids idle for producer.id.expiration.ms.", at_least(1)),
    C("transactional.id.expiration.ms", INT, "604800000", "Idle time after which a transactional id is dropped.",
      at_least(1)),
    C("transaction.max.timeout.ms", INT, "900000", "Largest transaction timeout a producer may ask for.",
      at_least(1)),
    C("transaction.abort.timed.out.transaction.cleanup.interval.ms", INT, "10000",
      "How often the transaction coordinator aborts transactions open longer than their timeout.", at_least(1)),
    C("transaction.remove.expired.transaction.cleanup.interval.ms", INT, "3600000",
      "How often the transaction coordinator drops transactional ids idle for transactional.id.expiration.ms.",
      at_least(1)),
    C("transaction.state.log.num.partitions", INT, "50", "Partitions of __transaction_state.", at_least(1)),
    C("transaction.state.log.replication.factor", SHORT, "3", "Replication factor of __transaction_state.",
      at_least(1)),
    C("transaction.state.log.min.isr", INT, "2", "min.insync.replicas of __transaction_state.", at_least(1)),
    # -- secrets (type PASSWORD): DescribeConfigs lists them with is_sensitive true and a null value,
    # set or not, so that a secret never crosses the wire.  refka speaks PLAINTEXT only and uses none
    # of them; they are here so that a client that reads them sees what Kafka shows.  The listener's
    # TLS keys and JAAS config may be changed per broker at run time, the others are read-only. --
    C("ssl.keystore.password", PASSWORD, None, "Password of the TLS key store.", dynamic=True, per_broker=True),
    C("ssl.key.password", PASSWORD, None, "Password of the private key in the TLS key store.",
      dynamic=True, per_broker=True),
    C("ssl.keystore.key", PASSWORD, None, "Private key in PEM form, instead of a key store file.",
      dynamic=True, per_broker=True),
    C("ssl.keystore.certificate.chain", PASSWORD, None, "Certificate chain in PEM form, instead of a key store file.",
      dynamic=True, per_broker=True),
    C("ssl.truststore.password", PASSWORD, None, "Password of the TLS trust store.", dynamic=True, per_broker=True),
    C("ssl.truststore.certificates", PASSWORD, None, "Trusted certificates in PEM form, instead of a trust store file.",
      dynamic=True, per_broker=True),
    C("sasl.jaas.config", PASSWORD, None, "JAAS login context for SASL connections.", dynamic=True, per_broker=True),
    C("delegation.token.secret.key", PASSWORD, None, "Secret used to sign delegation tokens."),
    C("sasl.oauthbearer.client.credentials.client.secret", PASSWORD, None,
      "OAuth client secret used by the broker's own OAUTHBEARER logins."),
    C("sasl.oauthbearer.assertion.private.key.passphrase", PASSWORD, None,
      "Passphrase of the private key that signs OAUTHBEARER JWT assertions."),
)

del BOOL, STR, INT, SHORT, LONG, DOUBLE, LIST, PASSWORD, C

TOPIC_BY_NAME: dict[str, ConfigDefinition] = {d.name: d for d in TOPIC_CONFIGS}
BROKER_BY_NAME: dict[str, ConfigDefinition] = {d.name: d for d in BROKER_CONFIGS}
BROKER_DEFAULTS: dict[str, str] = {d.name: d.default for d in BROKER_CONFIGS if d.default is not None}

# DynamicBrokerConfig.brokerConfigSynonyms: the keys that set the same value, highest first.
BROKER_SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = (
    ("log.retention.ms", "log.retention.minutes", "log.retention.hours"),
    ("log.roll.ms", "log.roll.hours"),
    ("log.roll.jitter.ms", "log.roll.jitter.hours"),
    ("log.flush.interval.ms", "log.flush.scheduler.interval.ms"),
)
_MS_PER_UNIT = {"log.retention.minutes": 60_000, "log.retention.hours": 3_600_000,
                "log.roll.hours": 3_600_000, "log.roll.jitter.hours": 3_600_000}


def broker_synonyms(name: str) -> tuple[str, ...]:
    """Every broker key that sets ``name``'s value, highest precedence first (``name`` included)."""
    for group in BROKER_SYNONYM_GROUPS:
        if name in group:
            return group
    return (name,)


# ---------------------------------------------------------------------------------------------------
# Broker configuration
# ---------------------------------------------------------------------------------------------------

REFKA_DEFAULTS = {"node.id": "1"}  # Kafka requires node.id; refka's CLI defaults it to 1


@dataclass(frozen=True)
class Synonym:
    name: str
    value: str | None
    source: ConfigSource


class BrokerConfig:
    """A broker's configuration in Kafka's four layers (KIP-226), highest precedence first:
    ``dynamic_broker`` (AlterConfigs on this node), ``dynamic_default`` (AlterConfigs on the
    cluster default, resource name ""), ``static`` (``--set``), then the table's defaults.

    Unknown keys are kept (Kafka warns and carries on); a bad value of a known key raises
    :class:`ConfigError` naming key and value.
    """

    def __init__(self, overrides: Mapping[str, str] | None = None, *, elr_enabled: bool = True) -> None:
        static = dict(REFKA_DEFAULTS)
        static.update(overrides or {})
        for key, raw in static.items():
            definition = BROKER_BY_NAME.get(key)
            if definition is not None:
                definition.parse(raw)
        self.static: dict[str, str] = static
        self.dynamic_default: dict[str, str] = {}
        self.dynamic_broker: dict[str, str] = {}
        self.elr_enabled = elr_enabled
        if elr_enabled:  # the controller's ELR safety record: cluster-wide min.insync.replicas
            self.dynamic_default["min.insync.replicas"] = self.static_value("min.insync.replicas") or "1"

    # -- layers ------------------------------------------------------------------------------------

    def layers(self) -> tuple[tuple[ConfigSource, Mapping[str, str]], ...]:
        return (
            (ConfigSource.DYNAMIC_BROKER_CONFIG, self.dynamic_broker),
            (ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG, self.dynamic_default),
            (ConfigSource.STATIC_BROKER_CONFIG, self.static),
            (ConfigSource.DEFAULT_CONFIG, BROKER_DEFAULTS),
        )

    def static_value(self, key: str) -> str | None:
        if key in self.static:
            return self.static[key]
        definition = BROKER_BY_NAME.get(key)
        return definition.default if definition else None

    def raw(self, key: str) -> str | None:
        """The highest-precedence value set for ``key`` itself (synonyms not consulted)."""
        for _source, layer in self.layers():
            if key in layer:
                return layer[key]
        return None

    def synonyms(self, key: str) -> list[Synonym]:
        """Kafka's ``configSynonyms``: every set synonym, layer by layer, dropped up to ``key``."""
        names = broker_synonyms(key)
        found = [Synonym(name, layer[name], source)
                 for source, layer in self.layers() for name in names if name in layer]
        while found and found[0].name != key:
            found.pop(0)
        return found

    # -- dynamic layers (AlterConfigs / IncrementalAlterConfigs on BROKER resources) ----------------

    def dynamic_layer(self, per_broker: bool) -> dict[str, str]:
        """A copy of the per-broker (``per_broker``) or cluster-default dynamic settings."""
        return dict(self.dynamic_broker if per_broker else self.dynamic_default)

    def replace_dynamic_layer(self, per_broker: bool, values: Mapping[str, str]) -> None:
        """Install a validated dynamic layer (see :func:`check_dynamic_broker_change`)."""
        if per_broker:
            self.dynamic_broker = dict(values)
        else:
            self.dynamic_default = dict(values)

    def save_dynamic(self, path: Path) -> None:
        """Persist both dynamic layers (Kafka keeps them as ConfigRecords in its metadata log);
        written to a temporary file, fsynced and renamed, so a crash leaves old or new."""
        document = {"version": 1, "broker": self.dynamic_broker, "cluster_default": self.dynamic_default}
        durability.write_atomically(path, json.dumps(document, indent=1, sort_keys=True).encode("utf-8"),
                                    temporary=path.with_suffix(".tmp"))

    def load_dynamic(self, path: Path) -> None:
        """Restore the dynamic layers saved by :meth:`save_dynamic`, if the file exists."""
        if path.exists():
            document = json.loads(path.read_text("utf-8"))
            self.dynamic_broker = dict(document["broker"])
            self.dynamic_default = dict(document["cluster_default"])

    # -- typed access ------------------------------------------------------------------------------

    def get(self, key: str) -> str | None:
        """The effective value of ``key`` in canonical form; None when unset and without default.

        The synonym keys resolve as Kafka does: ``log.retention.ms`` answers with the minutes or
        hours converted to milliseconds when it is not set itself (a negative result is -1)."""
        group = broker_synonyms(key)
        if group[0] == key and len(group) > 1:
            return self._resolve_group(group)
        raw = self.raw(key)
        if raw is None:
            return None
        definition = BROKER_BY_NAME.get(key)
        return definition.canonical(raw) if definition else raw

    def _resolve_group(self, group: tuple[str, ...]) -> str | None:
        for name in group:
            raw = self.raw(name)
            if raw is None:
                continue
            number = int(BROKER_BY_NAME[name].canonical(raw)) * _MS_PER_UNIT.get(name, 1)
            if group[0] == "log.retention.ms" and number < 0:
                number = -1
            return str(number)
        return None

    def _require(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise ConfigError(f'Missing required configuration "{key}" which has no default value.')
        return value

    def get_int(self, key: str) -> int:
        return int(self._require(key))

    def get_long(self, key: str) -> int:
        return int(self._require(key))

    def get_double(self, key: str) -> float:
        return float(self._require(key))

    def get_bool(self, key: str) -> bool:
        return self._require(key).lower() == "true"

    def get_list(self, key: str) -> list[str]:
        return _parse_list(java_trim(self._require(key)))


DYNAMIC_CONFIG_FILE = "refka-broker-configs.json"


def check_dynamic_broker_change(props: Mapping[str, str], per_broker: bool) -> None:
    """Kafka's ``DynamicBrokerConfig.validate``: the whole dynamic layer a change would leave.

    Raises ``KafkaError(INVALID_REQUEST)``: a known key that is not dynamic ("Cannot update these
    configs dynamically: [k]"), a bad value (the ``ConfigException`` message), or, at the cluster
    level, a per-broker key ("Cannot update these configs at default cluster level, broker id must
    be specified: [k]").  Unknown keys pass, as in Kafka."""
    static_only = sorted(k for k in props if k in BROKER_BY_NAME and not BROKER_BY_NAME[k].dynamic)
    if static_only:
        raise KafkaError(Errors.INVALID_REQUEST, "Cannot update these configs dynamically: " + _java_set(static_only))
    for key, raw in props.items():
        definition = BROKER_BY_NAME.get(key)
        if definition is not None:
            try:
                definition.parse(raw)
            except ConfigError as error:
                raise KafkaError(Errors.INVALID_REQUEST, str(error)) from error
    per_broker_only = sorted(k for k in props if k in BROKER_BY_NAME and BROKER_BY_NAME[k].per_broker)
    if per_broker_only and not per_broker:
        raise KafkaError(Errors.INVALID_REQUEST, "Cannot update these configs at default cluster level, broker id "
                         "must be specified: " + _java_set(per_broker_only))


def _java_set(names: Iterable[str]) -> str:
    return "[" + ", ".join(names) + "]"


# ---------------------------------------------------------------------------------------------------
# Topic configuration
# ---------------------------------------------------------------------------------------------------

TIERED_STORAGE_DISABLED = ("Tiered Storage functionality is disabled in the broker. "
                           "Topic cannot be configured with remote log storage.")


def _config_error(message: str) -> KafkaError:
    return KafkaError(Errors.INVALID_CONFIG, message)


def validate_topic_config(
    overrides: Mapping[str, str | None], broker: BrokerConfig | None = None
) -> dict[str, str]:
    """Kafka's topic config validation (``ControllerConfigurationValidator`` + ``LogConfig.validate``).

    Returns the overrides as given (Kafka stores the client's strings).  Raises ``KafkaError``
    INVALID_CONFIG, checking in Kafka's order: null values ("Null value not supported for topic
    configs: k"), unknown names ("Unknown topic config name: k"), each value in definition order
    ("Invalid value v for configuration k: reason"), min.compaction.lag.ms <= max.compaction.lag.ms,
    then remote.storage.enable (refka, like a broker without tiered storage, refuses it).
    """
    nulls = [key for key, value in overrides.items() if value is None]
    if nulls:
        raise _config_error("Null value not supported for topic configs: " + ",".join(nulls))
    for key in overrides:
        if key not in TOPIC_BY_NAME:
            raise _config_error(f"Unknown topic config name: {key}")
    parsed: dict[str, Parsed] = {}
    for definition in TOPIC_CONFIGS:
        raw = overrides.get(definition.name)
        if raw is not None:
            try:
                parsed[definition.name] = definition.parse(raw)
            except ConfigError as error:
                raise _config_error(str(error)) from error
    effective = effective_topic_config(broker or BrokerConfig(), {k: v for k, v in overrides.items() if v is not None})
    min_lag, max_lag = int(effective["min.compaction.lag.ms"]), int(effective["max.compaction.lag.ms"])
    if min_lag > max_lag:
        raise _config_error(f"conflict topic config setting min.compaction.lag.ms ({min_lag}) > "
                            f"max.compaction.lag.ms ({max_lag})")
    if parsed.get("remote.storage.enable") is True:
        raise _config_error(TIERED_STORAGE_DISABLED)
    return {key: value for key, value in overrides.items() if value is not None}


def _broker_default_for(broker: BrokerConfig, definition: ConfigDefinition) -> str | None:
    """The topic key's default as the broker supplies it (``KafkaConfig.extractLogConfigMap``)."""
    if definition.synonym is None:
        return None
    value = broker.get(definition.synonym)
    if value is None:
        return None
    return definition.canonical(value)


def effective_topic_config(broker: BrokerConfig, overrides: Mapping[str, str]) -> dict[str, str]:
    """Every described topic key with its value in canonical form: the topic's override, else the
    broker synonym's value, else Kafka's topic default."""
    effective: dict[str, str] = {}
    for definition in TOPIC_CONFIGS:
        if definition.internal:
            continue
        raw = overrides.get(definition.name)
        if raw is not None:
            effective[definition.name] = definition.canonical(raw)
            continue
        from_broker = _broker_default_for(broker, definition)
        effective[definition.name] = from_broker if from_broker is not None else (definition.default or "")
    return effective


@dataclass(frozen=True)
class ConfigEntry:
    """One ``DescribeConfigsResourceResult``."""

    name: str
    value: str | None
    read_only: bool
    is_default: bool
    config_source: ConfigSource
    is_sensitive: bool
    synonyms: list[Synonym] = field(default_factory=list)
    config_type: ConfigType = ConfigType.UNKNOWN
    documentation: str | None = None


def _wanted(keys: Sequence[str] | None) -> set[str] | None:
    """Kafka treats a null and an empty key list alike: every key."""
    return set(keys) if keys else None


def _topic_synonyms(broker: BrokerConfig, definition: ConfigDefinition, overrides: Mapping[str, str],
                    value: str | None) -> list[Synonym]:
    found: list[Synonym] = []
    if definition.name in overrides:
        found.append(Synonym(definition.name, value, ConfigSource.DYNAMIC_TOPIC_CONFIG))
    if definition.synonym is not None:
        found.extend(broker.synonyms(definition.synonym))
    return found


def describe_topic_config(
    broker: BrokerConfig,
    overrides: Mapping[str, str],
    keys: Sequence[str] | None = None,
    include_synonyms: bool = False,
    include_documentation: bool = False,
    *,
    as_created: bool = False,
) -> list[ConfigEntry]:
    """DescribeConfigs for a TOPIC resource, entry by entry as Kafka's ``createTopicConfigEntry``.

    ``as_created``: the form of the CreateTopics v5+ answer (KIP-525), where Kafka's controller
    reports each override as the client wrote it (``" 1000 "``, ``TRUE``) instead of canonically."""
    wanted = _wanted(keys)
    effective = effective_topic_config(broker, overrides)
    if as_created:
        effective.update({key: value for key, value in overrides.items() if key in effective})
    entries = []
    for definition in TOPIC_CONFIGS:
        if definition.internal or (wanted is not None and definition.name not in wanted):
            continue
        value = None if definition.sensitive else effective[definition.name]
        synonyms = _topic_synonyms(broker, definition, overrides, value)
        source = synonyms[0].source if synonyms else ConfigSource.DEFAULT_CONFIG
        entries.append(ConfigEntry(
            name=definition.name, value=value, read_only=False,
            is_default=source is ConfigSource.DEFAULT_CONFIG, config_source=source,
            is_sensitive=definition.sensitive, synonyms=synonyms if include_synonyms else [],
            config_type=definition.type, documentation=definition.doc if include_documentation else None,
        ))
    return entries


def _broker_entry(broker: BrokerConfig, name: str, value: str | None, synonyms: list[Synonym],
                  include_synonyms: bool, include_documentation: bool) -> ConfigEntry:
    definition = BROKER_BY_NAME.get(name)
    sensitive = definition.sensitive if definition else False
    source = synonyms[0].source if synonyms else ConfigSource.DEFAULT_CONFIG
    return ConfigEntry(
        name=name, value=None if sensitive else value,
        read_only=not (definition and definition.dynamic), is_default=source is ConfigSource.DEFAULT_CONFIG,
        config_source=source, is_sensitive=sensitive,
        synonyms=[replace(s, value=None) if sensitive else s for s in synonyms] if include_synonyms else [],
        config_type=definition.type if definition else ConfigType.UNKNOWN,
        documentation=(definition.doc if definition else None) if include_documentation else None,
    )


def describe_broker_config(
    broker: BrokerConfig,
    keys: Sequence[str] | None = None,
    include_synonyms: bool = False,
    include_documentation: bool = False,
    *,
    cluster_default: bool = False,
) -> list[ConfigEntry]:
    """DescribeConfigs for a BROKER resource: this node's configuration (the keys of
    :data:`BROKER_CONFIGS` plus unknown static keys), or with ``cluster_default`` (resource name
    "") only the keys set as dynamic cluster defaults, with only that layer as synonyms."""
    wanted = _wanted(keys)
    if cluster_default:
        names: Iterable[str] = list(broker.dynamic_default)
    else:
        names = [d.name for d in BROKER_CONFIGS if not d.internal]
        names += [key for key in broker.static if key not in BROKER_BY_NAME]
    entries = []
    for name in names:
        if wanted is not None and name not in wanted:
            continue
        synonyms = broker.synonyms(name)
        if cluster_default:
            synonyms = [s for s in synonyms if s.source is ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG]
            value: str | None = broker.dynamic_default[name]
        else:
            value = _own_value(broker, name)
        entries.append(_broker_entry(broker, name, value, synonyms, include_synonyms, include_documentation))
    return entries


def _own_value(broker: BrokerConfig, name: str) -> str | None:
    """A key's own value, synonyms not consulted: DescribeConfigs shows ``log.retention.ms`` as
    null when only ``log.retention.hours`` is set.  Unknown keys keep their string."""
    raw = broker.raw(name)
    definition = BROKER_BY_NAME.get(name)
    return raw if raw is None or definition is None else definition.canonical(raw)


# ---------------------------------------------------------------------------------------------------
# The partition log's view
# ---------------------------------------------------------------------------------------------------

_LOG_KEYS = ("segment.bytes", "segment.ms", "segment.index.bytes", "index.interval.bytes", "retention.ms",
             "retention.bytes", "delete.retention.ms", "min.cleanable.dirty.ratio", "min.compaction.lag.ms",
             "flush.messages", "flush.ms", "max.message.bytes")


def log_config_for(broker: BrokerConfig, overrides: Mapping[str, str]) -> LogConfig:
    """The partition log's :class:`LogConfig` for a topic with ``overrides``.

    ``internal.segment.bytes``, when set, replaces ``segment.bytes`` (Kafka's ``LogConfig.segmentSize``).
    An empty ``cleanup.policy`` (allowed since Kafka 4.2) neither deletes nor compacts."""
    effective = effective_topic_config(broker, overrides)
    properties = {key: effective[key] for key in _LOG_KEYS}
    internal_segment = overrides.get("internal.segment.bytes")
    if internal_segment is not None:
        properties["segment.bytes"] = TOPIC_BY_NAME["internal.segment.bytes"].canonical(internal_segment)
    properties["producer.id.expiration.ms"] = str(broker.get_int("producer.id.expiration.ms"))
    policies = effective["cleanup.policy"]
    if policies:
        properties["cleanup.policy"] = policies
    config = LogConfig.from_properties(properties)
    return config if policies else replace(config, cleanup_policy=frozenset())
