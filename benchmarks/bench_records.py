"""Decode-and-validate throughput of produce requests, per codec.

What is measured: a whole Produce v9 request frame carrying one partition's batch, as a producer
sends it (16 KiB of records per batch: 16 records with 1 KiB values, an idempotent producer):
the frame decoded by ``reference.protocol.frames.decode_request``, then its records passed
through ``reference.records.validation.validate_produce``: request-shape checks, CRC-32C,
decompression, parsing every record, per-record key/timestamp checks, and in-place offset
assignment (topic ``compression.type=producer``) or recompression (``--topic-compression``).

For comparison, the "header path" row times what a follower or log recovery does per batch:
walk the header, check the CRC, assign the offset in place (no record is parsed).

Throughput is given in wire MB/s (the batch bytes as sent, compressed), in uncompressed MB/s
(the records section before compression) and in batches/s.

Run:  python benchmarks/bench_records.py [--seconds 2] [--topic-compression producer]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from reference.protocol.apis import API_BY_NAME
from reference.protocol.frames import decode_request, encode_request
from reference.records.batch import (
    SimpleRecord,
    assign_offsets_in_place,
    build_batch,
    crc_is_valid,
    iter_batches,
)
from reference.records.compression import CompressionType, TopicCompressionType
from reference.records.validation import RecordValidationConfig, validate_produce

RECORDS_PER_BATCH = 16
VALUE_SIZE = 1024
NOW_MS = 1_700_000_000_000
MB = 1_000_000


def sample_value(rng: random.Random) -> bytes:
    """About 1 KiB of JSON-like text: compressible, but not a run of one byte."""
    words = ["order", "user", "amount", "currency", "EUR", "USD", "status", "shipped", "pending", "sku"]
    parts: list[str] = []
    while sum(len(part) for part in parts) < VALUE_SIZE:
        parts.append(f'"{rng.choice(words)}":"{rng.choice(words)}-{rng.randrange(10**6)}",')
    return "".join(parts).encode()[:VALUE_SIZE]


def sample_batch(codec: CompressionType, rng: random.Random) -> bytes:
    records = [
        SimpleRecord(sample_value(rng), key=b"key-%d" % rng.randrange(1000), timestamp=NOW_MS + index)
        for index in range(RECORDS_PER_BATCH)
    ]
    return build_batch(records, compression=codec, producer_id=1, producer_epoch=0, base_sequence=0)


def produce_frame(batch: bytes) -> bytes:
    """A Produce v9 request (acks=all) for one partition, without its size prefix."""
    api = API_BY_NAME["Produce"]
    partition = api.request.struct("PartitionProduceData").make(index=0, records=batch)
    topic = api.request.struct("TopicProduceData").make(name="bench", partition_data=[partition])
    body = api.request.make(acks=-1, timeout_ms=30000, topic_data=[topic])
    return encode_request(api, 9, 1, "bench", body)[4:]


def run_for(seconds: float, operation: Callable[[], object]) -> tuple[int, float]:
    """Call ``operation`` repeatedly for about ``seconds``; returns (calls, elapsed seconds)."""
    calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(20):
            operation()
        calls += 20
        now = time.perf_counter()
        if now >= deadline:
            return calls, now - start


def header_path(batch: bytes) -> None:
    buffer = bytearray(batch)
    for position, _header in iter_batches(buffer):
        if not crc_is_valid(buffer, position):
            raise AssertionError("bad CRC")
        assign_offsets_in_place(buffer, position, 1000, 3)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="time per codec (default 2)")
    parser.add_argument(
        "--topic-compression",
        default="producer",
        choices=[member.value for member in TopicCompressionType],
        help="the topic's compression.type (default producer: in-place path)",
    )
    arguments = parser.parse_args()
    config = RecordValidationConfig(compression_type=TopicCompressionType(arguments.topic_compression))
    rng = random.Random(42)
    uncompressed_size = len(sample_batch(CompressionType.NONE, random.Random(42)))

    print(
        f"decode_request + validate_produce: {RECORDS_PER_BATCH} x {VALUE_SIZE} B records per batch, "
        f"compression.type={config.compression_type.value}, {arguments.seconds:g} s per row"
    )
    print(f"{'codec':<8} {'batch bytes':>11} {'wire MB/s':>10} {'uncompressed MB/s':>17} {'batches/s':>10}")
    for codec in CompressionType:
        batch = sample_batch(codec, rng)
        frame = produce_frame(batch)

        def validate(frame: bytes = frame) -> object:
            request = decode_request(frame)
            records = request.body.topic_data[0].partition_data[0].records
            return validate_produce(
                records,
                produce_version=9,
                config=config,
                log_end_offset=1000,
                partition_leader_epoch=3,
                now_ms=NOW_MS,
            )

        validate()  # fail fast if the batch is refused
        calls, elapsed = run_for(arguments.seconds, validate)
        rate = calls / elapsed
        print(
            f"{codec.name:<8} {len(batch):>11} {rate * len(batch) / MB:>10.1f} "
            f"{rate * uncompressed_size / MB:>17.1f} {rate:>10.0f}"
        )

    batch = sample_batch(CompressionType.NONE, rng)
    calls, elapsed = run_for(arguments.seconds, lambda: header_path(batch))
    rate = calls / elapsed
    print(
        f"{'header path (iter + CRC + in-place offsets), NONE':<50} {rate * len(batch) / MB:>9.1f} MB/s {rate:>9.0f}/s"
    )


if __name__ == "__main__":
    main()
