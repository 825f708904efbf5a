"""``refka consume``: records from a topic to stdout, like ``kafka-console-consumer``.

    refka consume --bootstrap-server HOST:PORT --topic T [--group G] [--from-beginning]
                  [--max-messages N] [--timeout-ms MS] [--partition P [--offset O]]
                  [--property print.key=true --property key.separator=:]
                  [--consumer-property KEY=VALUE ...] [--isolation-level read_committed]

Each record is one line, written as Kafka's ``DefaultMessageFormatter`` writes it: optional
fields first, each followed by ``key.separator`` (a tab by default) -- ``CreateTime:<ms>``
(``print.timestamp``), ``Partition:<p>`` (``print.partition``), ``Offset:<o>``
(``print.offset``), the headers as ``k:v,k2:v2`` (``print.headers``), the key (``print.key``) --
then the value (``print.value``, on by default) and ``line.separator``; a null key or value
prints ``null``.

Without ``--group`` the tool joins a fresh group ``console-consumer-<n>`` with auto commit off,
so it leaves no offsets behind; ``--partition`` reads one partition by manual assignment from
``--offset`` (``earliest``, ``latest`` -- the default -- or a number).  ``--from-beginning``
starts a partition without a committed offset at its beginning.  ``--timeout-ms`` ends the tool
when no record came for that long; ``--max-messages`` after that many.  At the end it prints
"Processed a total of N messages" on stderr, as Kafka's does; errors are one line on stderr and
a non-zero exit status (2 for usage errors, 1 for a Kafka error).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from typing import TextIO

from ..cli import CommandError, parse_assignments
from ..errors import KafkaError
from .consumer import Consumer, ConsumerRecord, TopicPartition
from .exceptions import ConfigException

FORMATTER_PROPERTIES = {"print.timestamp", "print.key", "print.value", "print.partition", "print.offset",
                        "print.headers", "key.separator", "line.separator", "headers.separator", "null.literal"}
TIMESTAMP_TYPES = {0: "CreateTime", 1: "LogAppendTime"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap-server", required=True, metavar="HOST:PORT[,HOST:PORT]")
    parser.add_argument("--topic", required=True, help="the topic to consume from")
    parser.add_argument("--group", help="the consumer group to join (offsets are committed there)")
    parser.add_argument("--from-beginning", action="store_true",
                        help="start at the earliest offset when the group has none committed")
    parser.add_argument("--max-messages", type=int, metavar="N", help="exit after N records")
    parser.add_argument("--timeout-ms", type=int, metavar="MS", help="exit when no record came for MS ms")
    parser.add_argument("--partition", type=int, metavar="P", help="read only partition P (no group)")
    parser.add_argument("--offset", default=None, metavar="OFFSET",
                        help="with --partition: earliest, latest (default) or an offset")
    parser.add_argument("--property", "--formatter-property", dest="property", action="append", default=[],
                        metavar="KEY=VALUE", help="a formatter property: print.key, key.separator, ...")
    parser.add_argument("--consumer-property", action="append", default=[], metavar="KEY=VALUE",
                        help="a consumer configuration (auto.offset.reset, fetch.max.wait.ms, ...)")
    parser.add_argument("--isolation-level", choices=("read_uncommitted", "read_committed"))


def _flag(formatter: dict[str, str], name: str, default: bool = False) -> bool:
    return formatter.get(name, str(default)).lower() == "true"


def consumer_properties(args: argparse.Namespace) -> dict[str, object]:
    if args.offset is not None and args.partition is None:
        raise CommandError("the --offset option requires --partition")
    if args.offset is not None and args.from_beginning:
        raise CommandError("options --from-beginning and --offset cannot be used together")
    if args.group is not None and args.partition is not None:
        raise CommandError("options --group and --partition cannot be used together")
    properties: dict[str, object] = {"bootstrap.servers": args.bootstrap_server, "client.id": "console-consumer"}
    properties.update(parse_assignments(args.consumer_property, "--consumer-property"))
    if args.group is not None:
        properties["group.id"] = args.group
    elif args.partition is None and "group.id" not in properties:
        properties["group.id"] = f"console-consumer-{random.randrange(100_000)}"
        properties.setdefault("enable.auto.commit", "false")
    if args.from_beginning:
        properties["auto.offset.reset"] = "earliest"
    if args.isolation_level:
        properties["isolation.level"] = args.isolation_level
    return properties


def run(args: argparse.Namespace) -> int:
    formatter = parse_assignments(args.property, "--property")
    unknown = set(formatter) - FORMATTER_PROPERTIES
    if unknown:
        raise CommandError(f"unknown --property {', '.join(sorted(unknown))}; "
                           f"known: {', '.join(sorted(FORMATTER_PROPERTIES))}")
    if args.max_messages is not None and args.max_messages < 0:
        raise CommandError("--max-messages must not be negative")
    try:
        consumer = Consumer(consumer_properties(args))
    except ConfigException as error:
        raise CommandError(str(error)) from error
    try:
        return consume(consumer, args, formatter, sys.stdout)
    except KafkaError as error:
        print(f"refka consume: {error}", file=sys.stderr)
        return 1


def consume(consumer: Consumer, args: argparse.Namespace, formatter: dict[str, str], out: TextIO) -> int:
    processed = 0
    try:
        if args.partition is not None:
            tp = TopicPartition(args.topic, args.partition)
            consumer.assign([tp])
            offset = (args.offset or ("earliest" if args.from_beginning else "latest")).lower()
            if offset == "earliest":
                consumer.seek_to_beginning([tp])
            elif offset == "latest":
                consumer.seek_to_end([tp])
            elif offset.isdigit():
                consumer.seek(tp, int(offset))
            else:
                raise CommandError(f"the --offset must be earliest, latest or a non-negative number, not {args.offset!r}")
        else:
            consumer.subscribe([args.topic])
        last_record = time.monotonic()
        while args.max_messages is None or processed < args.max_messages:
            wait = 0.5
            if args.timeout_ms is not None:
                left = args.timeout_ms / 1000 - (time.monotonic() - last_record)
                if left <= 0:
                    break
                wait = min(wait, left)
            records = consumer.poll(wait)
            if records:
                last_record = time.monotonic()
            for index, record in enumerate(records):
                if args.max_messages is not None and processed >= args.max_messages:
                    _rewind(consumer, records[index:])  # the group's offsets stop after the last printed
                    break
                out.write(format_record(record, formatter))
                processed += 1
            out.flush()
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
        print(f"Processed a total of {processed} messages", file=sys.stderr)
    return 0


def _rewind(consumer: Consumer, unprinted: list[ConsumerRecord]) -> None:
    first: dict[TopicPartition, int] = {}
    for record in unprinted:
        first.setdefault(TopicPartition(record.topic, record.partition), record.offset)
    for tp, offset in first.items():
        consumer.seek(tp, offset)


def format_record(record: ConsumerRecord, formatter: dict[str, str]) -> str:
    """One record as Kafka's DefaultMessageFormatter prints it."""
    separator = formatter.get("key.separator", "\t")
    null = formatter.get("null.literal", "null")
    fields = []
    if _flag(formatter, "print.timestamp"):
        fields.append(f"{TIMESTAMP_TYPES.get(record.timestamp_type, 'NoTimestampType')}:{record.timestamp}")
    if _flag(formatter, "print.partition"):
        fields.append(f"Partition:{record.partition}")
    if _flag(formatter, "print.offset"):
        fields.append(f"Offset:{record.offset}")
    if _flag(formatter, "print.headers"):
        headers = formatter.get("headers.separator", ",").join(
            f"{k}:{null if v is None else v.decode(errors='replace')}" for k, v in record.headers)
        fields.append(headers or "NO_HEADERS")
    if _flag(formatter, "print.key"):
        fields.append(null if record.key is None else record.key.decode(errors="replace"))
    if _flag(formatter, "print.value", default=True):
        fields.append(null if record.value is None else record.value.decode(errors="replace"))
    return separator.join(fields) + formatter.get("line.separator", "\n")
