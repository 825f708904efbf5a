"""``refka produce``: lines from stdin to a topic, like ``kafka-console-producer``.

    refka produce --bootstrap-server HOST:PORT --topic T [--property parse.key=true]
                  [--property key.separator=:] [--producer-property KEY=VALUE ...]
                  [--compression-type none|gzip|snappy|lz4|zstd]

Each line (without its line ending) is one record's value.  With ``parse.key=true`` the text
before the first ``key.separator`` (a tab by default, as Kafka's ``LineMessageReader``) is the
key; a line without the separator stops the tool, as Kafka's does ("No key separator found on
line number N").  ``--compression-codec`` is accepted as Kafka's older spelling.

The tool waits for every record's outcome before exiting.  A bad argument, a bad line, a record
that failed (unknown topic, a broker that is gone, ...) is reported as one line on stderr naming
Kafka's error, and the exit status is non-zero (2 for usage errors, 1 for failed records).
"""

from __future__ import annotations

import argparse
import sys
from typing import BinaryIO

from ..cli import CommandError, parse_assignments
from ..errors import KafkaError
from .exceptions import ConfigException
from .producer import Producer, RecordMetadata

READER_PROPERTIES = {"parse.key", "key.separator", "ignore.error"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap-server", required=True, metavar="HOST:PORT[,HOST:PORT]",
                        help="the broker(s) to connect to")
    parser.add_argument("--topic", required=True, help="the topic to produce to")
    parser.add_argument("--property", "--reader-property", dest="property", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="a line-reader property: parse.key, key.separator, ignore.error")
    parser.add_argument("--producer-property", action="append", default=[], metavar="KEY=VALUE",
                        help="a producer configuration (acks, linger.ms, enable.idempotence, ...)")
    parser.add_argument("--compression-type", "--compression-codec", dest="compression_type",
                        help="none, gzip, snappy, lz4 or zstd")


def run(args: argparse.Namespace) -> int:
    reader = parse_assignments(args.property, "--property")
    unknown = set(reader) - READER_PROPERTIES
    if unknown:
        raise CommandError(f"unknown --property {', '.join(sorted(unknown))}; known: {', '.join(sorted(READER_PROPERTIES))}")
    properties: dict[str, object] = {"bootstrap.servers": args.bootstrap_server, "client.id": "console-producer"}
    properties.update(parse_assignments(args.producer_property, "--producer-property"))
    if args.compression_type:
        properties["compression.type"] = args.compression_type
    try:
        producer = Producer(properties)
    except ConfigException as error:
        raise CommandError(str(error)) from error
    return produce_lines(producer, args.topic, sys.stdin.buffer, reader)


def produce_lines(producer: Producer, topic: str, lines: BinaryIO, reader: dict[str, str]) -> int:
    """Send every line; returns the exit status (0 when every record was written)."""
    parse_key = reader.get("parse.key", "false").lower() == "true"
    separator = reader.get("key.separator", "\t").encode()
    ignore_error = reader.get("ignore.error", "false").lower() == "true"
    failures: list[Exception] = []

    def delivered(error: Exception | None, metadata: RecordMetadata | None) -> None:
        if error is not None:
            failures.append(error)

    try:
        for number, raw in enumerate(lines, start=1):
            line = raw.rstrip(b"\r\n") if raw.endswith(b"\n") else raw
            key = None
            if parse_key:
                key, found, value = line.partition(separator)
                if not found:
                    if ignore_error:
                        key, value = None, line
                    else:
                        raise CommandError(f"No key separator found on line number {number}: '{line.decode(errors='replace')}'")
            else:
                value = line
            producer.send(topic, value, key=key, on_delivery=delivered)
    finally:
        producer.close()
    if failures:
        first = failures[0]
        reason = str(first) if isinstance(first, KafkaError) else f"{type(first).__name__}: {first}"
        more = f" ({len(failures) - 1} more records failed)" if len(failures) > 1 else ""
        print(f"refka produce: {reason}{more}", file=sys.stderr)
        return 1
    return 0
