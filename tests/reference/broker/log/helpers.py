"""Shared builders for the storage tests: batches, a log on a manual clock, and reading back."""

from __future__ import annotations

from pathlib import Path

from reference.broker.log.clock import ManualClock
from reference.broker.log.config import LogConfig
from reference.broker.log.log import PartitionLog
from reference.records.batch import (
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    NO_SEQUENCE,
    BatchHeader,
    RecordBatch,
    SimpleRecord,
    build_batch,
    iter_batches,
)

T0 = 1_700_000_000_000


def batch(
    count: int = 1,
    *,
    timestamp: int = T0,
    key: bytes | None = b"key",
    value: bytes | None = b"value",
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
    keys: list[bytes | None] | None = None,
    values: list[bytes | None] | None = None,
) -> bytes:
    """One batch of ``count`` records (or of ``keys``/``values``), timestamps from ``timestamp``."""
    keys = keys if keys is not None else [key] * count
    values = values if values is not None else [value] * len(keys)
    records = [SimpleRecord(v, k, timestamp + n) for n, (k, v) in enumerate(zip(keys, values, strict=True))]
    return build_batch(
        records, producer_id=producer_id, producer_epoch=producer_epoch, base_sequence=base_sequence
    )


def headers(records: bytes) -> list[BatchHeader]:
    return [header for _, header in iter_batches(records)]


def decoded(records: bytes) -> list[RecordBatch]:
    return [RecordBatch.decode(records, position) for position, _ in iter_batches(records)]


def open_log(directory: Path, clock: ManualClock, config: LogConfig | None = None, **kwargs: object) -> PartitionLog:
    return PartitionLog.open(directory, config or LogConfig(), clock, **kwargs)  # type: ignore[arg-type]


def read_all(log: PartitionLog) -> list[BatchHeader]:
    """Every batch header from the log start offset to the LEO, following segments."""
    found: list[BatchHeader] = []
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        data = log.read(offset, 1 << 30, log.log_end_offset).records
        if not data:
            break
        found.extend(headers(data))
        offset = found[-1].next_offset
    return found
