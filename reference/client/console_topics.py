"""``refka topics``: create, list, describe, alter and delete topics, like ``kafka-topics``.

    refka topics --bootstrap-server B --create --topic T [--partitions N] [--replication-factor R]
                 [--config K=V ...] [--if-not-exists]
    refka topics --bootstrap-server B --list [--exclude-internal]
    refka topics --bootstrap-server B --describe [--topic T[,T...]]
    refka topics --bootstrap-server B --alter --topic T --partitions N [--if-exists]
    refka topics --bootstrap-server B --delete --topic T[,T...] [--if-exists]

``--describe`` prints Kafka's layout: per topic one line
``Topic: T<TAB>TopicId: ID<TAB>PartitionCount: N<TAB>ReplicationFactor: R<TAB>Configs: k=v,...``
(the configs whose value is not the default), then per partition
``<TAB>Topic: T<TAB>Partition: P<TAB>Leader: L<TAB>Replicas: a,b<TAB>Isr: a,b<TAB>Elr: N/A<TAB>LastKnownElr: N/A``.
Leader is ``none`` for a partition without one.  refka learns partitions from Metadata, which
does not carry KIP-966's eligible leader replicas, so Elr is ``N/A`` -- what kafka-topics prints
when it cannot learn them either.  Topic ids are printed as Kafka prints a ``Uuid``: URL-safe
base64 without padding.  Partitions left without a live replica are listed with
``--unavailable-partitions``, as in Kafka.
"""

from __future__ import annotations

import argparse
import base64
import uuid
from collections.abc import Callable

from ..cli import CommandError, parse_assignments
from ..errors import Errors, KafkaError
from .admin import Admin
from .admin_core import ConfigResource, ConfigSource, NewTopic, ResourceType, TopicDescription
from .console_admin import add_connection_arguments, run_with_admin

ACTIONS = ("create", "list", "describe", "alter", "delete")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_connection_arguments(parser)
    actions = parser.add_mutually_exclusive_group(required=True)
    for action in ACTIONS:
        actions.add_argument(f"--{action}", action="store_true", help=f"{action} topics")
    parser.add_argument("--topic", help="the topic (comma-separated names for --describe and --delete)")
    parser.add_argument("--partitions", type=int, help="number of partitions (--create, --alter)")
    parser.add_argument("--replication-factor", type=int, help="replicas per partition (--create)")
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                        help="a topic configuration (--create)")
    parser.add_argument("--if-not-exists", action="store_true", help="--create: no error if the topic exists")
    parser.add_argument("--if-exists", action="store_true", help="--alter/--delete: no error if it does not")
    parser.add_argument("--exclude-internal", action="store_true", help="leave out internal topics")
    parser.add_argument("--unavailable-partitions", action="store_true",
                        help="--describe: only partitions whose leader is not available")


def run(args: argparse.Namespace) -> int:
    if (args.create or args.alter or args.delete) and not args.topic:
        raise CommandError("--topic is required with --create, --alter and --delete")
    if args.alter and args.partitions is None:
        raise CommandError("--alter needs --partitions (refka topics alters only the partition count)")
    configs = parse_assignments(args.config, "--config")
    return run_with_admin(args, "topics", lambda admin: _dispatch(admin, args, configs))


def _dispatch(admin: Admin, args: argparse.Namespace, configs: dict[str, str]) -> int:
    names = [name.strip() for name in (args.topic or "").split(",") if name.strip()]
    if args.create:
        new_topic = NewTopic(args.topic, -1 if args.partitions is None else args.partitions,
                             -1 if args.replication_factor is None else args.replication_factor, configs)
        try:
            admin.create_topics([new_topic])
        except KafkaError as error:
            if args.if_not_exists and error.error is Errors.TOPIC_ALREADY_EXISTS:
                return 0
            raise
        print(f"Created topic {args.topic}.")
    elif args.list:
        for name in admin.list_topics(include_internal=not args.exclude_internal):
            print(name)
    elif args.describe:
        topics = admin.describe_topics(names or None)
        for topic in topics:
            if topic.is_internal and args.exclude_internal:
                continue
            print(describe_topic(admin, topic, args.unavailable_partitions))
    elif args.alter:
        _tolerating_absence(args.if_exists, lambda: admin.create_partitions({args.topic: args.partitions}))
    elif args.delete:
        _tolerating_absence(args.if_exists, lambda: admin.delete_topics(names))
    return 0


def _tolerating_absence(if_exists: bool, action: Callable[[], object]) -> None:
    try:
        action()
    except KafkaError as error:
        if not (if_exists and error.error is Errors.UNKNOWN_TOPIC_OR_PARTITION):
            raise


def kafka_uuid(value: uuid.UUID) -> str:
    """A topic id as Kafka prints it (``Uuid.toString``): URL-safe base64, no padding."""
    return base64.urlsafe_b64encode(value.bytes).decode().rstrip("=")


def describe_topic(admin: Admin, topic: TopicDescription, unavailable_only: bool = False) -> str:
    configs = admin.describe_configs(ConfigResource(ResourceType.TOPIC, topic.name))
    overridden = ",".join(f"{c.name}={c.value}" for c in configs if c.source is not ConfigSource.DEFAULT_CONFIG)
    replication_factor = len(topic.partitions[0].replicas) if topic.partitions else 0
    lines = [f"Topic: {topic.name}\tTopicId: {kafka_uuid(topic.topic_id)}\tPartitionCount: {len(topic.partitions)}"
             f"\tReplicationFactor: {replication_factor}\tConfigs: {overridden}"]
    for p in topic.partitions:
        if unavailable_only and p.leader >= 0:
            continue
        leader = str(p.leader) if p.leader >= 0 else "none"
        lines.append(f"\tTopic: {topic.name}\tPartition: {p.partition}\tLeader: {leader}"
                     f"\tReplicas: {','.join(map(str, p.replicas))}\tIsr: {','.join(map(str, p.isr))}"
                     f"\tElr: N/A\tLastKnownElr: N/A")
    return "\n".join(lines)
