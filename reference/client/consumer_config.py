"""The consumer's configuration: Kafka's property names, defaults and validation rules.

As for the producer (``producer_config``), properties are given as Kafka spells them, as strings
or Python values; every bad value is a :class:`~reference.client.exceptions.ConfigException`
raised when the consumer is created, and unknown keys are logged and ignored (Java: "supplied but
isn't a known config").

Defaults are Apache Kafka 4.x's (``ConsumerConfig``): ``auto.offset.reset=latest``,
``enable.auto.commit=true`` (only with a ``group.id``), ``auto.commit.interval.ms=5000``,
``session.timeout.ms=45000`` (KIP-735), ``heartbeat.interval.ms=3000``,
``max.poll.interval.ms=300000``, ``partition.assignment.strategy=range,cooperative-sticky``
(Java's list; the first one all members support wins), ``isolation.level=read_uncommitted``,
``fetch.min.bytes=1``, ``fetch.max.wait.ms=500``, ``fetch.max.bytes=52428800``,
``max.partition.fetch.bytes=1048576``, ``max.poll.records=500``.

Rules kept here: ``group.protocol`` must be ``classic`` (refka has no KIP-848 consumer);
``heartbeat.interval.ms`` must be below ``session.timeout.ms``; ``group.instance.id`` needs a
``group.id``; ``auto.offset.reset`` is ``earliest``, ``latest`` or ``none``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .assignors import ASSIGNORS, JAVA_CLASS_NAMES
from .cluster import BrokerAddress
from .config import boolean, bootstrap_servers, integer, with_defaults
from .exceptions import ConfigException

READ_UNCOMMITTED = 0
READ_COMMITTED = 1
ISOLATION_LEVELS = {"read_uncommitted": READ_UNCOMMITTED, "read_committed": READ_COMMITTED}
OFFSET_RESET_POLICIES = ("earliest", "latest", "none")

DEFAULTS: dict[str, str] = {
    "bootstrap.servers": "",
    "client.id": "refka-consumer",
    "group.id": "",
    "group.instance.id": "",
    "group.protocol": "classic",
    "client.rack": "",
    "session.timeout.ms": "45000",
    "heartbeat.interval.ms": "3000",
    "max.poll.interval.ms": "300000",
    "partition.assignment.strategy": "range,cooperative-sticky",
    "enable.auto.commit": "true",
    "auto.commit.interval.ms": "5000",
    "auto.offset.reset": "latest",
    "isolation.level": "read_uncommitted",
    "fetch.min.bytes": "1",
    "fetch.max.wait.ms": "500",
    "fetch.max.bytes": "52428800",
    "max.partition.fetch.bytes": "1048576",
    "max.poll.records": "500",
    "request.timeout.ms": "30000",
    "retry.backoff.ms": "100",
    "metadata.max.age.ms": "300000",
    "default.api.timeout.ms": "60000",
    "check.crcs": "true",
    "allow.auto.create.topics": "true",
}


@dataclass(frozen=True)
class ConsumerConfig:
    bootstrap: tuple[BrokerAddress, ...]
    client_id: str
    group_id: str | None
    group_instance_id: str | None
    client_rack: str
    session_timeout_ms: int
    heartbeat_interval_ms: int
    max_poll_interval_ms: int
    assignors: tuple[str, ...]
    enable_auto_commit: bool
    auto_commit_interval_ms: int
    auto_offset_reset: str
    isolation_level: int
    fetch_min_bytes: int
    fetch_max_wait_ms: int
    fetch_max_bytes: int
    max_partition_fetch_bytes: int
    max_poll_records: int
    request_timeout_ms: int
    retry_backoff_ms: int
    metadata_max_age_ms: int
    default_api_timeout_ms: int
    check_crcs: bool

    @classmethod
    def from_properties(cls, properties: Mapping[str, object]) -> ConsumerConfig:
        values = with_defaults(properties, DEFAULTS)
        bootstrap = bootstrap_servers(values)
        if values["group.protocol"].lower() != "classic":
            raise ConfigException(f"invalid value {values['group.protocol']} for configuration group.protocol: "
                                  "refka's consumer speaks only the classic group protocol")
        group_id = values["group.id"] or None
        instance_id = values["group.instance.id"] or None
        if instance_id is not None and group_id is None:
            raise ConfigException("group.instance.id requires a group.id")
        assignors = tuple(JAVA_CLASS_NAMES.get(n.strip(), n.strip())
                          for n in values["partition.assignment.strategy"].split(",") if n.strip())
        unknown = [n for n in assignors if n not in ASSIGNORS]
        if unknown or not assignors:
            raise ConfigException(f"invalid value {values['partition.assignment.strategy']} for configuration "
                                  f"partition.assignment.strategy: known assignors are {', '.join(ASSIGNORS)}")
        reset = values["auto.offset.reset"].lower()
        if reset not in OFFSET_RESET_POLICIES:
            raise ConfigException(f"invalid value {values['auto.offset.reset']} for configuration "
                                  "auto.offset.reset: string must be one of: earliest, latest, none")
        isolation = ISOLATION_LEVELS.get(values["isolation.level"].lower())
        if isolation is None:
            raise ConfigException(f"invalid value {values['isolation.level']} for configuration isolation.level: "
                                  "string must be one of: read_uncommitted, read_committed")
        config = cls(
            bootstrap=bootstrap,
            client_id=values["client.id"],
            group_id=group_id,
            group_instance_id=instance_id,
            client_rack=values["client.rack"],
            session_timeout_ms=integer(values, "session.timeout.ms", 1),
            heartbeat_interval_ms=integer(values, "heartbeat.interval.ms", 1),
            max_poll_interval_ms=integer(values, "max.poll.interval.ms", 1),
            assignors=assignors,
            enable_auto_commit=boolean(values, "enable.auto.commit") and group_id is not None,
            auto_commit_interval_ms=integer(values, "auto.commit.interval.ms", 0),
            auto_offset_reset=reset,
            isolation_level=isolation,
            fetch_min_bytes=integer(values, "fetch.min.bytes", 0),
            fetch_max_wait_ms=integer(values, "fetch.max.wait.ms", 0),
            fetch_max_bytes=integer(values, "fetch.max.bytes", 0),
            max_partition_fetch_bytes=integer(values, "max.partition.fetch.bytes", 0),
            max_poll_records=integer(values, "max.poll.records", 1),
            request_timeout_ms=integer(values, "request.timeout.ms", 0),
            retry_backoff_ms=integer(values, "retry.backoff.ms", 0),
            metadata_max_age_ms=integer(values, "metadata.max.age.ms", 0),
            default_api_timeout_ms=integer(values, "default.api.timeout.ms", 0),
            check_crcs=boolean(values, "check.crcs"),
        )
        if config.heartbeat_interval_ms >= config.session_timeout_ms:
            raise ConfigException("heartbeat.interval.ms must be lower than session.timeout.ms")
        return config


