"""``refka configs``: describe and alter topic and broker configs, like ``kafka-configs``.

    refka configs --bootstrap-server B --entity-type topics|brokers (--entity-name X | --entity-default)
                  --describe [--all]
    refka configs --bootstrap-server B --entity-type topics|brokers (--entity-name X | --entity-default)
                  --alter [--add-config K=V[,K=V...]] [--delete-config K[,K...]]

``--describe`` prints, as Kafka does, "Dynamic configs for topic T are:" (or "broker N", or
"Default configs for brokers in the cluster are:") and then one line per config set dynamically
-- with ``--all``, "All configs for ..." and every config -- as
``  name=value sensitive=false synonyms={SOURCE:name=value, ...}``.  A sensitive value is never
sent by the broker and is printed as ``null``.  ``--alter`` uses IncrementalAlterConfigs (SET for
``--add-config``, DELETE for ``--delete-config``); a list value is written in brackets,
``--add-config cleanup.policy=[compact,delete]``.
"""

from __future__ import annotations

import argparse

from ..cli import CommandError
from .admin import Admin
from .admin_core import AlterConfigOp, ConfigEntry, ConfigResource, ConfigSource, ResourceType
from .console_admin import add_connection_arguments, run_with_admin, split_config_list

ENTITY_TYPES = {"topics": ResourceType.TOPIC, "brokers": ResourceType.BROKER}
DYNAMIC_SOURCES = {
    ResourceType.TOPIC: {ConfigSource.DYNAMIC_TOPIC_CONFIG},
    ResourceType.BROKER: {ConfigSource.DYNAMIC_BROKER_CONFIG, ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_connection_arguments(parser)
    parser.add_argument("--entity-type", required=True, choices=sorted(ENTITY_TYPES))
    names = parser.add_mutually_exclusive_group(required=True)
    names.add_argument("--entity-name", help="a topic name or a broker id")
    names.add_argument("--entity-default", action="store_true", help="the cluster-wide broker default")
    actions = parser.add_mutually_exclusive_group(required=True)
    actions.add_argument("--describe", action="store_true")
    actions.add_argument("--alter", action="store_true")
    parser.add_argument("--all", action="store_true", help="--describe: every config, not only dynamic ones")
    parser.add_argument("--add-config", action="append", default=[], metavar="K=V[,K=V]")
    parser.add_argument("--delete-config", action="append", default=[], metavar="K[,K]")


def run(args: argparse.Namespace) -> int:
    resource_type = ENTITY_TYPES[args.entity_type]
    if args.entity_default and resource_type is not ResourceType.BROKER:
        raise CommandError("--entity-default is only for --entity-type brokers")
    resource = ConfigResource(resource_type, "" if args.entity_default else args.entity_name)
    operations = alter_operations(args.add_config, args.delete_config) if args.alter else []
    if args.alter and not operations:
        raise CommandError("--alter needs --add-config or --delete-config")
    return run_with_admin(args, "configs", lambda admin: _dispatch(admin, args, resource, operations))


def alter_operations(added: list[str], deleted: list[str]) -> list[tuple[str, AlterConfigOp, str | None]]:
    operations: list[tuple[str, AlterConfigOp, str | None]] = []
    for text in added:
        for item in split_config_list(text):
            name, separator, value = item.partition("=")
            if not separator or not name:
                raise CommandError(f"--add-config expects K=V, got {item!r}")
            if value.startswith("[") and value.endswith("]"):
                value = value[1:-1]
            operations.append((name.strip(), AlterConfigOp.SET, value))
    for text in deleted:
        operations.extend((name, AlterConfigOp.DELETE, None) for name in split_config_list(text))
    return operations


def _subject(resource: ConfigResource) -> str:
    if resource.type is ResourceType.BROKER and not resource.name:
        return "brokers in the cluster"
    return f"{'topic' if resource.type is ResourceType.TOPIC else 'broker'} {resource.name}"


def _dispatch(admin: Admin, args: argparse.Namespace, resource: ConfigResource,
              operations: list[tuple[str, AlterConfigOp, str | None]]) -> int:
    if args.alter:
        admin.incremental_alter_configs(resource, operations)
        what = "default config for brokers in the cluster" if not resource.name else f"config for {_subject(resource)}"
        print(f"Completed updating {what}.")
        return 0
    entries = admin.describe_configs(resource)
    if not args.all:
        entries = [e for e in entries if e.source in DYNAMIC_SOURCES[resource.type]]
    kind = "All" if args.all else ("Default" if not resource.name else "Dynamic")
    print(f"{kind} configs for {_subject(resource)} are:")
    for entry in entries:
        print("  " + format_entry(entry))
    return 0


def format_entry(entry: ConfigEntry) -> str:
    synonyms = ", ".join(f"{source.name}:{name}={_text(value)}" for name, value, source in entry.synonyms)
    return f"{entry.name}={_text(entry.value)} sensitive={str(entry.is_sensitive).lower()} synonyms={{{synonyms}}}"


def _text(value: str | None) -> str:
    return "null" if value is None else value
