"""Dynamic configs as ConfigRecords: Kafka's ``ConfigurationControlManager`` (topics and brokers).

Theory of operation
-------------------
Dynamic configs live in the metadata log as ``ConfigRecord(resource_type, resource_name, name,
value)``; a null value deletes the key.  Resource types handled here: TOPIC (2) and BROKER (4,
resource name a broker id, or "" for the cluster-wide default).

IncrementalAlterConfigs (key 44) applies per key an operation: SET (0), DELETE (1), APPEND (2) and
SUBTRACT (3), the last two only for LIST keys ("Can't APPEND to key k because its type is not
LIST.", INVALID_CONFIG).  AlterConfigs (key 33, "legacy") replaces the resource's whole set: keys it
does not name are deleted.  Kafka writes a record for every key whose value changes, and for BROKER
resources for every key named even when unchanged (KAFKA-14136: it makes brokers reload).

Validation of the resource's resulting set, in Kafka's order:

* the resource exists: a TOPIC must (UNKNOWN_TOPIC_OR_PARTITION "The topic 't' does not exist.");
  a BROKER name is "" or an integer (INVALID_REQUEST "Invalid broker name x") naming a registered
  broker or this controller (BROKER_ID_NOT_REGISTERED "No node with id N found.");
* TOPIC values: :func:`reference.broker.configs.validate_topic_config` (INVALID_CONFIG);
* BROKER values: :func:`reference.broker.configs.check_dynamic_broker_change` (INVALID_REQUEST, as
  Kafka's broker wraps the ``ConfigException``);
* a resource named twice in one request: INVALID_REQUEST "Duplicate resource." (ControllerApis).

``validate_only`` runs every check and writes nothing (the functions here return the records a
real run would write; the quorum controller checks their number, then drops them).

KIP-966: with eligible leader replicas on, a change of ``min.insync.replicas`` invalidates the
ELRs it was computed against, so each such ConfigRecord is followed by a ClearElrRecord: for the
topic when the change is a topic's, for every topic (topic name "") when it is a broker-level one
(``createClearElrRecordsAsNeeded``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..broker.configs import (
    BROKER_BY_NAME,
    TOPIC_BY_NAME,
    ConfigDefinition,
    ConfigType,
    check_dynamic_broker_change,
    validate_topic_config,
)
from ..errors import Errors, KafkaError, by_name
from ..protocol.messages import alter_configs as alter_configs_api
from ..protocol.messages import incremental_alter_configs as incremental_api
from ..protocol.schema import Data
from .controller_config import ControllerConfig, elr_enabled
from .metadata_records import CONFIG_RESOURCE_BROKER, CONFIG_RESOURCE_TOPIC, MetadataRecord, make

if TYPE_CHECKING:
    from .image import MetadataImage

BROKER_ID_NOT_REGISTERED = by_name["BROKER_ID_NOT_REGISTERED"]

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3  # AlterConfigOp.OpType ids
OP_NAMES = {SET: "SET", DELETE: "DELETE", APPEND: "APPEND", SUBTRACT: "SUBTRACT"}

INCREMENTAL_RESULT = incremental_api.RESPONSE.struct("AlterConfigsResourceResponse")
LEGACY_RESULT = alter_configs_api.RESPONSE.struct("AlterConfigsResourceResponse")


def config_record(resource_type: int, resource_name: str, name: str, value: str | None) -> MetadataRecord:
    return make("ConfigRecord", resource_type=resource_type, resource_name=resource_name, name=name, value=value)


def clear_elr_records(image: MetadataImage, records: list[MetadataRecord]) -> list[MetadataRecord]:
    """The ClearElrRecords a batch of ConfigRecords calls for (see the module docstring)."""
    if not elr_enabled(image):
        return []
    return [make("ClearElrRecord", topic_name=record.data.resource_name
                 if record.data.resource_type == CONFIG_RESOURCE_TOPIC else "")
            for record in records if record.name == "ConfigRecord" and record.data.name == "min.insync.replicas"]


def _definition(resource_type: int, key: str) -> ConfigDefinition | None:
    return (TOPIC_BY_NAME if resource_type == CONFIG_RESOURCE_TOPIC else BROKER_BY_NAME).get(key)


def _default_of(resource_type: int, key: str) -> str | None:
    definition = _definition(resource_type, key)
    return definition.default if definition is not None else None


def _apply_op(resource_type: int, key: str, op: int, op_value: str | None, current: str | None) -> str | None:
    if op == SET:
        return op_value
    if op == DELETE:
        return None
    if op in (APPEND, SUBTRACT):
        definition = _definition(resource_type, key)
        if definition is None or definition.type is not ConfigType.LIST:
            raise KafkaError(Errors.INVALID_CONFIG,
                             f"Can't {OP_NAMES[op]} to key {key} because its type is not LIST.")
        base = current if current is not None else _default_of(resource_type, key)
        parts = [part for part in (base or "").split(",") if part]
        for item in (op_value or "").split(","):
            if op == APPEND and item not in parts:
                parts.append(item)
            elif op == SUBTRACT and item in parts:
                parts.remove(item)
        return ",".join(parts)
    raise KafkaError(Errors.INVALID_REQUEST, f"Unknown alter config operation {op}")


def check_resource_exists(image: MetadataImage, config: ControllerConfig, resource_type: int, name: str) -> None:
    """QuorumController's ``ConfigResourceExistenceChecker``."""
    if resource_type == CONFIG_RESOURCE_TOPIC:
        if name not in image.topics:
            raise KafkaError(Errors.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist.")
    elif resource_type == CONFIG_RESOURCE_BROKER and name != "":
        try:
            node_id = int(name)
        except ValueError:
            raise KafkaError(Errors.INVALID_REQUEST, f"Invalid broker name {name}") from None
        if node_id not in image.brokers and node_id != config.node_id and node_id not in image.controllers:
            raise KafkaError(BROKER_ID_NOT_REGISTERED, f"No node with id {node_id} found.")


def validate_resource(image: MetadataImage, config: ControllerConfig, resource_type: int, name: str,
                      resulting: Mapping[str, str], *, newly_created: bool = False) -> None:
    """Kafka's ``validateAlterConfig``: the whole resulting set, then existence (unless new)."""
    if resource_type == CONFIG_RESOURCE_TOPIC:
        validate_topic_config(resulting, config.broker_config(image))
    elif resource_type == CONFIG_RESOURCE_BROKER:
        check_dynamic_broker_change(resulting, per_broker=name != "")
    else:
        raise KafkaError(Errors.INVALID_REQUEST, f"Unsupported resource type {resource_type}")
    if not newly_created:
        check_resource_exists(image, config, resource_type, name)


def incremental_changes(image: MetadataImage, config: ControllerConfig, resource_type: int, name: str,
                        operations: list[tuple[str, int, str | None]], *,
                        newly_created: bool = False) -> list[MetadataRecord]:
    """The ConfigRecords for ``(key, op, value)`` operations on one resource; raises KafkaError."""
    current = dict(image.configs.get((resource_type, name), {}))
    resulting = dict(current)
    records = []
    for key, op, op_value in operations:
        new_value = _apply_op(resource_type, key, op, op_value, resulting.get(key))
        if new_value != current.get(key) or resource_type == CONFIG_RESOURCE_BROKER:
            records.append(config_record(resource_type, name, key, new_value))
        if new_value is None:
            resulting.pop(key, None)
        else:
            resulting[key] = new_value
    validate_resource(image, config, resource_type, name, resulting, newly_created=newly_created)
    return records


def incremental_alter_configs(image: MetadataImage, config: ControllerConfig,
                              request: Data) -> tuple[list[MetadataRecord], Data]:
    """IncrementalAlterConfigs (44): per-resource results; records only for resources that pass."""
    counts = Counter((resource.resource_type, resource.resource_name) for resource in request.resources)
    records: list[MetadataRecord] = []
    results = []
    for resource in request.resources:
        result = INCREMENTAL_RESULT.make(resource_type=resource.resource_type,
                                         resource_name=resource.resource_name, error_message=None)
        results.append(result)
        try:
            if counts[(resource.resource_type, resource.resource_name)] > 1:
                raise KafkaError(Errors.INVALID_REQUEST, "Duplicate resource.")
            operations = [(c.name, c.config_operation, c.value) for c in resource.configs]
            records += incremental_changes(image, config, resource.resource_type, resource.resource_name,
                                           operations)
        except KafkaError as refused:
            result.error_code, result.error_message = refused.error.code, refused.message
    records += clear_elr_records(image, records)
    return records, incremental_api.RESPONSE.make(responses=results)


def legacy_alter_configs(image: MetadataImage, config: ControllerConfig,
                         request: Data) -> tuple[list[MetadataRecord], Data]:
    """AlterConfigs (33): each resource's set replaced by the request's, absent keys deleted."""
    counts = Counter((resource.resource_type, resource.resource_name) for resource in request.resources)
    records: list[MetadataRecord] = []
    results = []
    for resource in request.resources:
        kind, name = resource.resource_type, resource.resource_name
        result = LEGACY_RESULT.make(resource_type=kind, resource_name=name, error_message=None)
        results.append(result)
        try:
            if counts[(kind, name)] > 1:
                raise KafkaError(Errors.INVALID_REQUEST, "Duplicate resource.")
            current = image.configs.get((kind, name), {})
            wanted = {c.name: c.value for c in resource.configs}
            changed = [config_record(kind, name, key, value) for key, value in wanted.items()
                       if value != current.get(key) or kind == CONFIG_RESOURCE_BROKER]
            deleted = [config_record(kind, name, key, None) for key in current if key not in wanted]
            resulting = {key: value for key, value in wanted.items() if value is not None}
            validate_resource(image, config, kind, name, resulting)
            records += changed + deleted
        except KafkaError as refused:
            result.error_code, result.error_message = refused.error.code, refused.message
    records += clear_elr_records(image, records)
    return records, alter_configs_api.RESPONSE.make(responses=results)
