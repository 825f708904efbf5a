"""Config administration: DescribeConfigs (32), AlterConfigs (33), IncrementalAlterConfigs (44).

The config model itself is ``reference.broker.configs``; this module is what Kafka 4.3's broker and
controller do around it for TOPIC (2) and BROKER (4) resources, with the error each step gives
(checked against a live Kafka 4.3.1).  Every answer is per resource; one bad resource never fails
the others, with one exception copied from Kafka: a DescribeConfigs naming a resource type Kafka has
no rule for (anything but 2, 4, 8, 16, 32) fails every resource of the request with INVALID_REQUEST.

DescribeConfigs
  * TOPIC: an illegal name is INVALID_TOPIC_EXCEPTION; a missing topic UNKNOWN_TOPIC_OR_PARTITION
    with an empty message; otherwise every topic key (``ConfigurationKeys`` null or empty) or the
    named ones (unknown names are skipped).
  * BROKER: "" is the cluster-wide dynamic default (only keys set there); this node's id gives its
    whole configuration; a non-integer or another id is INVALID_REQUEST.

AlterConfigs (legacy: the keys sent replace the resource's whole dynamic set) and
IncrementalAlterConfigs (``ConfigOperation`` 0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT), in order:

  1. a resource named twice in one request: INVALID_REQUEST "Each resource must appear at most once.";
  2. a key twice in one resource: INVALID_REQUEST "Error due to duplicate config keys"; a null value
     (except with DELETE): INVALID_REQUEST "Null value not supported for : k";
  3. TOPIC: the operations (APPEND/SUBTRACT on a non-list key: INVALID_CONFIG; an unknown operation:
     UNKNOWN_SERVER_ERROR, as Kafka's controller fails on it), the name (""
     is INVALID_REQUEST, an illegal one INVALID_TOPIC_EXCEPTION), the resulting configs
     (INVALID_CONFIG), and only then whether the topic exists (UNKNOWN_TOPIC_OR_PARTITION);
  4. BROKER: the id, the operations (unknown: INVALID_REQUEST; APPEND/SUBTRACT on an unknown or
     non-list key: INVALID_CONFIG), the resulting dynamic layer (INVALID_REQUEST), then the ELR
     rules (KIP-966: ``min.insync.replicas`` cannot be set per broker, nor removed cluster-wide:
     INVALID_CONFIG);
  5. ``ValidateOnly`` stops here; otherwise the change is stored (topic overrides in the topic
     registry, broker layers in ``refka-broker-configs.json``) and every log is reconfigured.

What refka does not serve: BROKER_LOGGER (8), CLIENT_METRICS (16) and GROUP (32) resources are
answered with INVALID_REQUEST (Kafka serves them), and APPEND/SUBTRACT know only the broker keys in
refka's table (Kafka knows about 340).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...errors import ErrorCode, Errors, KafkaError
from ...protocol.apis import API_BY_KEY
from ...protocol.frames import Request
from ...protocol.schema import Data
from ..configs import (
    BROKER_BY_NAME,
    BROKER_DEFAULTS,
    DYNAMIC_CONFIG_FILE,
    TOPIC_BY_NAME,
    ConfigEntry,
    ConfigType,
    check_dynamic_broker_change,
    describe_broker_config,
    describe_topic_config,
    validate_topic_config,
)
from ..topic_names import validate_topic_name

if TYPE_CHECKING:
    from ..core import Broker

DESCRIBE_CONFIGS = API_BY_KEY[32]
ALTER_CONFIGS = API_BY_KEY[33]
INCREMENTAL_ALTER_CONFIGS = API_BY_KEY[44]
DESCRIBE_RESULT = DESCRIBE_CONFIGS.response.struct("DescribeConfigsResult")
DESCRIBED_CONFIG = DESCRIBE_CONFIGS.response.struct("DescribeConfigsResourceResult")
DESCRIBED_SYNONYM = DESCRIBE_CONFIGS.response.struct("DescribeConfigsSynonym")
ALTER_RESULT = ALTER_CONFIGS.response.struct("AlterConfigsResourceResponse")
INCREMENTAL_RESULT = INCREMENTAL_ALTER_CONFIGS.response.struct("AlterConfigsResourceResponse")

TOPIC, BROKER = 2, 4
RESOURCE_TYPES_KAFKA_KNOWS = frozenset({2, 4, 8, 16, 32})  # ConfigResource.Type ids

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
OPERATION_NAMES = {SET: "SET", DELETE: "DELETE", APPEND: "APPEND", SUBTRACT: "SUBTRACT"}

# Errors.INVALID_REQUEST's default message, which Kafka sends when it fails a whole request.
INVALID_REQUEST_MESSAGE = ("This most likely occurs because of a request being malformed by the client library "
                           "or the message was sent to an incompatible broker. See the broker logs for more details.")
ELR_BROKER_LEVEL = "Broker-level min.insync.replicas cannot be altered while ELR is enabled."
ELR_CLUSTER_REMOVAL = "Cluster-level min.insync.replicas cannot be removed while ELR is enabled."


@dataclass(frozen=True)
class Outcome:
    """One resource's answer: Kafka's ``ApiError``."""

    error: ErrorCode
    message: str | None = None


SUCCESS = Outcome(Errors.NONE)


# ---------------------------------------------------------------------------------------------------
# DescribeConfigs
# ---------------------------------------------------------------------------------------------------


def handle_describe_configs(broker: Broker, request: Request, now_ms: int) -> Data:
    body = request.body
    if any(resource.resource_type not in RESOURCE_TYPES_KAFKA_KNOWS for resource in body.resources):
        results = [DESCRIBE_RESULT.make(error_code=Errors.INVALID_REQUEST.code, error_message=INVALID_REQUEST_MESSAGE,
                                        resource_type=r.resource_type, resource_name=r.resource_name, configs=[])
                   for r in body.resources]
        return DESCRIBE_CONFIGS.response.make(results=results)
    include_documentation = body.include_documentation if request.version >= 3 else False
    results = [_describe_resource(broker, resource, body.include_synonyms, include_documentation)
               for resource in body.resources]
    return DESCRIBE_CONFIGS.response.make(results=results)


def _describe_resource(broker: Broker, resource: Data, include_synonyms: bool, include_documentation: bool) -> Data:
    result = DESCRIBE_RESULT.make(error_code=0, error_message="", resource_type=resource.resource_type,
                                  resource_name=resource.resource_name, configs=[])
    try:
        entries = _described_entries(broker, resource, include_synonyms, include_documentation)
    except KafkaError as refused:
        result.error_code, result.error_message = refused.error.code, refused.message
        return result
    if entries is None:
        result.error_code = Errors.UNKNOWN_TOPIC_OR_PARTITION.code
        return result
    result.configs = [_described(entry) for entry in entries]
    return result


def _described_entries(broker: Broker, resource: Data, include_synonyms: bool,
                       include_documentation: bool) -> list[ConfigEntry] | None:
    """The entries of one resource; None for a topic that does not exist."""
    name, keys = resource.resource_name, resource.configuration_keys
    if resource.resource_type == TOPIC:
        validate_topic_name(name)
        topic = broker.topics.get(name)
        if topic is None:
            return None
        return describe_topic_config(broker.config, topic.configs, keys, include_synonyms, include_documentation)
    if resource.resource_type == BROKER:
        if name == "":
            return describe_broker_config(broker.config, keys, include_synonyms, include_documentation,
                                          cluster_default=True)
        node_id = _broker_id(name, "Broker id must be an integer, but it is: ")
        if node_id != broker.node_id:
            raise KafkaError(Errors.INVALID_REQUEST,
                             f"Unexpected broker id, expected {broker.node_id} or empty string, but received {name}")
        return describe_broker_config(broker.config, keys, include_synonyms, include_documentation)
    raise KafkaError(Errors.INVALID_REQUEST, f"refka does not serve configs of resource type {resource.resource_type}")


def _described(entry: ConfigEntry) -> Data:
    return DESCRIBED_CONFIG.make(
        name=entry.name, value=entry.value, read_only=entry.read_only, config_source=int(entry.config_source),
        is_default=entry.is_default, is_sensitive=entry.is_sensitive,
        synonyms=[DESCRIBED_SYNONYM.make(name=s.name, value=s.value, source=int(s.source)) for s in entry.synonyms],
        config_type=int(entry.config_type), documentation=entry.documentation,
    )


def _broker_id(name: str, message: str) -> int:
    """Java's ``Integer.parseInt`` of a broker resource name."""
    stripped = name[1:] if name[:1] in "+-" else name
    if not stripped.isdecimal() or not -(1 << 31) <= int(name) < (1 << 31):
        raise KafkaError(Errors.INVALID_REQUEST, message + name)
    return int(name)


# ---------------------------------------------------------------------------------------------------
# AlterConfigs and IncrementalAlterConfigs
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One requested change; legacy AlterConfigs entries are SETs."""

    name: str
    operation: int
    value: str | None


def handle_alter_configs(broker: Broker, request: Request, now_ms: int) -> Data:
    body = request.body
    resources = [(r, [Change(c.name, SET, c.value) for c in r.configs]) for r in body.resources]
    outcomes = _alter_all(broker, resources, body.validate_only, incremental=False)
    return ALTER_CONFIGS.response.make(responses=[
        ALTER_RESULT.make(error_code=o.error.code, error_message=o.message, resource_type=r.resource_type,
                          resource_name=r.resource_name) for (r, _), o in zip(resources, outcomes, strict=True)])


def handle_incremental_alter_configs(broker: Broker, request: Request, now_ms: int) -> Data:
    body = request.body
    resources = [(r, [Change(c.name, c.config_operation, c.value) for c in r.configs]) for r in body.resources]
    outcomes = _alter_all(broker, resources, body.validate_only, incremental=True)
    return INCREMENTAL_ALTER_CONFIGS.response.make(responses=[
        INCREMENTAL_RESULT.make(error_code=o.error.code, error_message=o.message, resource_type=r.resource_type,
                                resource_name=r.resource_name) for (r, _), o in zip(resources, outcomes, strict=True)])


def _alter_all(broker: Broker, resources: list[tuple[Data, list[Change]]], validate_only: bool,
               incremental: bool) -> list[Outcome]:
    named = Counter((r.resource_type, r.resource_name) for r, _ in resources)
    outcomes = []
    for resource, changes in resources:
        if named[(resource.resource_type, resource.resource_name)] > 1:
            outcomes.append(Outcome(Errors.INVALID_REQUEST, "Each resource must appear at most once."))
            continue
        try:
            _alter_resource(broker, resource.resource_type, resource.resource_name, changes, validate_only, incremental)
        except KafkaError as refused:
            outcomes.append(Outcome(refused.error, refused.message))
            continue
        outcomes.append(SUCCESS)
    return outcomes


def _alter_resource(broker: Broker, resource_type: int, name: str, changes: list[Change], validate_only: bool,
                    incremental: bool) -> None:
    names = [change.name for change in changes]
    if len(set(names)) != len(names):
        raise KafkaError(Errors.INVALID_REQUEST, "Error due to duplicate config keys")
    nulls = [c.name for c in changes if c.value is None and c.operation != DELETE]
    if nulls:
        raise KafkaError(Errors.INVALID_REQUEST, "Null value not supported for : " + ", ".join(nulls))
    if resource_type == TOPIC:
        _alter_topic(broker, name, changes, validate_only, incremental)
    elif resource_type == BROKER:
        _alter_broker(broker, name, changes, validate_only, incremental)
    else:
        raise KafkaError(Errors.INVALID_REQUEST, f"Unknown resource type {resource_type}")


# -- topics ------------------------------------------------------------------------------------------


def _alter_topic(broker: Broker, name: str, changes: list[Change], validate_only: bool, incremental: bool) -> None:
    topic = broker.topics.get(name)
    current = dict(topic.configs) if topic is not None else {}
    if incremental:
        wanted = _apply_topic_operations(current, changes)
    else:
        wanted = {c.name: c.value for c in changes if c.value is not None}
    if name == "":
        raise KafkaError(Errors.INVALID_REQUEST, "Default topic resources are not allowed.")
    validate_topic_name(name)
    validate_topic_config(wanted, broker.config)
    if topic is None:
        raise KafkaError(Errors.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist.")
    if not validate_only and wanted != current:
        broker.topics.set_configs(name, wanted)


def _apply_topic_operations(current: Mapping[str, str], changes: list[Change]) -> dict[str, str]:
    """The controller's ``incrementalAlterConfigResource``: each operation on the stored strings."""
    result = dict(current)
    for change in changes:
        if change.operation == SET:
            result[change.name] = change.value or ""
        elif change.operation == DELETE:
            result.pop(change.name, None)
        elif change.operation in (APPEND, SUBTRACT):
            definition = TOPIC_BY_NAME.get(change.name)
            if definition is None or definition.type is not ConfigType.LIST:
                raise KafkaError(Errors.INVALID_CONFIG, f"Can't {OPERATION_NAMES[change.operation]} to key "
                                 f"{change.name} because its type is not LIST.")
            stored = result.get(change.name, definition.default)
            result[change.name] = _combine(stored, change.operation, change.value or "")
        else:
            raise KafkaError(Errors.UNKNOWN_SERVER_ERROR)  # Kafka's controller trips over the null OpType
    return result


def _combine(stored: str | None, operation: int, value: str) -> str:
    """APPEND adds each comma-separated part not yet present; SUBTRACT removes one occurrence of
    each.  Parts are compared as stored, blanks included, as Kafka compares them."""
    parts = [part for part in (stored or "").split(",") if part]
    for part in _java_split(value):
        if operation == APPEND and part not in parts:
            parts.append(part)
        elif operation == SUBTRACT and part in parts:
            parts.remove(part)
    return ",".join(parts)


def _java_split(value: str) -> list[str]:
    """``String.split(",")``: trailing empty parts are dropped."""
    parts = value.split(",")
    while parts and parts[-1] == "":
        parts.pop()
    return parts


# -- brokers -----------------------------------------------------------------------------------------


def _alter_broker(broker: Broker, name: str, changes: list[Change], validate_only: bool, incremental: bool) -> None:
    per_broker = name != ""
    if per_broker:
        node_id = _broker_id(name, "Node id must be an integer, but it is: ")
        if node_id != broker.node_id:
            raise KafkaError(Errors.INVALID_REQUEST, f"Unexpected broker id, expected {broker.node_id}, but received {name}")
    current = broker.config.dynamic_layer(per_broker)
    if incremental:
        wanted = _apply_broker_operations(current, changes)
    else:
        wanted = {c.name: c.value for c in changes if c.value is not None}
    check_dynamic_broker_change(wanted, per_broker)
    _check_elr(broker, per_broker, changes, current, wanted)
    if not validate_only:
        broker.config.replace_dynamic_layer(per_broker, wanted)
        broker.config.save_dynamic(broker.data_dir / DYNAMIC_CONFIG_FILE)
        for topic in broker.topics:  # broker defaults feed every topic's log config
            broker.topics.set_configs(topic.name, topic.configs)


def _apply_broker_operations(current: Mapping[str, str], changes: list[Change]) -> dict[str, str]:
    """The broker's ``prepareIncrementalConfigs``."""
    for change in changes:
        if change.operation not in OPERATION_NAMES:
            raise KafkaError(Errors.INVALID_REQUEST, f"Unknown operations type {change.operation}")
    result = dict(current)
    for change in changes:
        if change.operation == SET:
            result[change.name] = change.value or ""
        elif change.operation == DELETE:
            result.pop(change.name, None)
        else:
            verb = "append" if change.operation == APPEND else "subtract"
            definition = BROKER_BY_NAME.get(change.name)
            if definition is None:
                raise KafkaError(Errors.INVALID_CONFIG, f"Unknown config name: {change.name}")
            if definition.type is not ConfigType.LIST:
                raise KafkaError(Errors.INVALID_CONFIG,
                                 f"Config value {verb} is not allowed for config key: {change.name}")
            stored = result.get(change.name, BROKER_DEFAULTS.get(change.name))
            result[change.name] = _combine(stored, change.operation, change.value or "")
    return result


def _check_elr(broker: Broker, per_broker: bool, changes: list[Change], current: Mapping[str, str],
               wanted: Mapping[str, str]) -> None:
    """KIP-966: with ELR on, the cluster-wide min.insync.replicas is the only one, and it stays."""
    if not broker.config.elr_enabled:
        return
    key = "min.insync.replicas"
    if per_broker and (any(c.name == key for c in changes) or (key in current and key not in wanted)):
        raise KafkaError(Errors.INVALID_CONFIG, ELR_BROKER_LEVEL)
    if not per_broker and key in current and key not in wanted:
        raise KafkaError(Errors.INVALID_CONFIG, ELR_CLUSTER_REMOVAL)
