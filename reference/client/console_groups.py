"""``refka groups``: list, describe, reset and delete consumer groups, like ``kafka-consumer-groups``.

    refka groups --bootstrap-server B --list
    refka groups --bootstrap-server B --describe --group G
    refka groups --bootstrap-server B --reset-offsets --group G (--topic T[:P,P...] ... | --all-topics)
                 (--to-earliest | --to-latest | --to-offset N | --shift-by N | --to-datetime TIME)
                 [--execute | --dry-run]
    refka groups --bootstrap-server B --delete --group G [--group G2 ...]
    refka groups --bootstrap-server B --delete-offsets --group G --topic T[:P,...]

``--describe`` prints kafka-consumer-groups' columns: GROUP TOPIC PARTITION CURRENT-OFFSET
LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID, one row per partition a member owns or the group
has an offset for, ``-`` where there is nothing; a group without members gets the line
"Consumer group 'G' has no active members." on stderr first.  ``--reset-offsets`` without
``--execute`` is a dry run, as in Kafka, and prints GROUP TOPIC PARTITION NEW-OFFSET.  Resetting
a group that has members fails with NON_EMPTY_GROUP.  ``--to-datetime`` takes Kafka's formats
(``YYYY-MM-DDTHH:mm:SS[.sss]`` with an optional ``Z`` or ``+HH:MM`` offset; local time without).
"""

from __future__ import annotations

import argparse
import datetime
import sys

from ..cli import CommandError
from .admin import Admin
from .admin_groups import PartitionLag, ResetSpec, ShiftBy, ToDatetime, ToEarliest, ToLatest, ToOffset
from .cluster import TopicPartition
from .console_admin import add_connection_arguments, run_with_admin, table

DESCRIBE_HEADER = ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID",
                   "HOST", "CLIENT-ID"]
DESCRIBE_WIDTHS = [0, 0, 10, 15, 15, 15, 15, 15, 0]  # Kafka's minimum column widths
RESET_HEADER = ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]
RESET_WIDTHS = [0, 0, 10, 0]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_connection_arguments(parser)
    actions = parser.add_mutually_exclusive_group(required=True)
    actions.add_argument("--list", action="store_true", help="list every consumer group")
    actions.add_argument("--describe", action="store_true", help="offsets, lag and members of a group")
    actions.add_argument("--reset-offsets", action="store_true", help="move a group's committed offsets")
    actions.add_argument("--delete", action="store_true", help="delete groups that have no members")
    actions.add_argument("--delete-offsets", action="store_true", help="delete a group's offsets of a topic")
    parser.add_argument("--group", action="append", default=[], help="the group id")
    parser.add_argument("--topic", action="append", default=[], metavar="T[:P,P...]",
                        help="a topic, or some of its partitions (--reset-offsets, --delete-offsets)")
    parser.add_argument("--all-topics", action="store_true", help="--reset-offsets: every topic the group has offsets for")
    targets = parser.add_mutually_exclusive_group()
    targets.add_argument("--to-earliest", action="store_true")
    targets.add_argument("--to-latest", action="store_true")
    targets.add_argument("--to-offset", type=int, metavar="N")
    targets.add_argument("--shift-by", type=int, metavar="N")
    targets.add_argument("--to-datetime", metavar="YYYY-MM-DDTHH:mm:SS.sss")
    run_mode = parser.add_mutually_exclusive_group()
    run_mode.add_argument("--execute", action="store_true", help="commit the new offsets")
    run_mode.add_argument("--dry-run", action="store_true", help="only print them (the default)")


def run(args: argparse.Namespace) -> int:
    if not args.list and not args.group:
        raise CommandError("--group is required unless --list")
    if (args.describe or args.reset_offsets or args.delete_offsets) and len(args.group) != 1:
        raise CommandError("give exactly one --group")
    spec = reset_spec(args) if args.reset_offsets else None
    if args.reset_offsets and not args.topic and not args.all_topics:
        raise CommandError("--reset-offsets needs --topic or --all-topics")
    if args.delete_offsets and not args.topic:
        raise CommandError("--delete-offsets needs --topic")
    return run_with_admin(args, "groups", lambda admin: _dispatch(admin, args, spec))


def reset_spec(args: argparse.Namespace) -> ResetSpec:
    if args.to_earliest:
        return ToEarliest()
    if args.to_latest:
        return ToLatest()
    if args.to_offset is not None:
        return ToOffset(args.to_offset)
    if args.shift_by is not None:
        return ShiftBy(args.shift_by)
    if args.to_datetime is not None:
        return ToDatetime(parse_datetime(args.to_datetime))
    raise CommandError("--reset-offsets needs one of --to-earliest, --to-latest, --to-offset, --shift-by, --to-datetime")


def parse_datetime(text: str) -> int:
    """Milliseconds since the epoch of a kafka-consumer-groups ``--to-datetime`` value."""
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise CommandError(f"--to-datetime expects YYYY-MM-DDTHH:mm:SS.sss, got {text!r}") from error
    return int(moment.timestamp() * 1000)


def parse_topic_partitions(admin: Admin, topics: list[str]) -> list[TopicPartition]:
    """``T`` (every partition of T) or ``T:0,2`` (those partitions)."""
    partitions: list[TopicPartition] = []
    for entry in topics:
        name, _, listed = entry.partition(":")
        if listed:
            try:
                partitions.extend(TopicPartition(name, int(p)) for p in listed.split(","))
            except ValueError as error:
                raise CommandError(f"--topic expects T or T:P,P..., got {entry!r}") from error
        else:
            (described,) = admin.describe_topics([name])
            partitions.extend(TopicPartition(name, p.partition) for p in described.partitions)
    return partitions


def _dispatch(admin: Admin, args: argparse.Namespace, spec: ResetSpec | None) -> int:
    if args.list:
        for group in admin.list_groups():
            print(group.group_id)
    elif args.describe:
        print(describe(admin, args.group[0]))
    elif args.reset_offsets:
        assert spec is not None
        (group_id,) = args.group
        partitions = (sorted(admin.committed_offsets(group_id), key=lambda tp: (tp.topic, tp.partition))
                      if args.all_topics else parse_topic_partitions(admin, args.topic))
        if not args.execute and not args.dry_run:
            print("WARN: No action will be performed as the --execute option is missing. "
                  "Add --dry-run to say so explicitly, or --execute to commit the new offsets.", file=sys.stderr)
        targets = admin.reset_offsets(group_id, partitions, spec, execute=args.execute)
        rows = [RESET_HEADER] + [[group_id, tp.topic, str(tp.partition), str(offset)]
                                 for tp, offset in sorted(targets.items(), key=lambda i: (i[0].topic, i[0].partition))]
        print()
        print(table(rows, RESET_WIDTHS))
    elif args.delete:
        admin.delete_groups(args.group)
        quoted = ", ".join(f"'{g}'" for g in args.group)
        print(f"Deletion of requested consumer groups ({quoted}) was successful.")
    elif args.delete_offsets:
        (group_id,) = args.group
        partitions = parse_topic_partitions(admin, args.topic)
        admin.delete_group_offsets(group_id, partitions)
        rows = [["TOPIC", "PARTITION", "STATUS"]] + [[tp.topic, str(tp.partition), "Successful"] for tp in partitions]
        print(f"Request succeeded for deleting offsets from group {group_id}.")
        print(table(rows, [0, 10, 0]))
    return 0


def describe(admin: Admin, group_id: str) -> str:
    """The ``--describe`` table (see the module docstring)."""
    description, lags = admin.describe_offsets(group_id)
    if description is None or not description.members:
        print(f"Consumer group '{group_id}' has no active members.", file=sys.stderr)
    elif description.state in ("PreparingRebalance", "CompletingRebalance"):
        print(f"Warning: Consumer group '{group_id}' is rebalancing.", file=sys.stderr)
    rows = [DESCRIBE_HEADER] + [_row(group_id, lag) for lag in lags]
    return "\n" + table(rows, DESCRIBE_WIDTHS)


def _row(group_id: str, lag: PartitionLag) -> list[str]:
    member = lag.member
    return [group_id, lag.partition.topic, str(lag.partition.partition),
            "-" if lag.committed_offset is None else str(lag.committed_offset), str(lag.log_end_offset),
            "-" if lag.lag is None else str(lag.lag),
            member.member_id if member else "-", member.host if member else "-", member.client_id if member else "-"]
