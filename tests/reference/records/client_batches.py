"""Record batches built in-process by real Kafka client libraries, for byte-exact comparisons.

* aiokafka 0.14 (``aiokafka.record.default_records.DefaultRecordBatchBuilder``) compresses every
  codec with cramjam: gzip (stdlib ``gzip``, level 9, with a timestamp in its header), snappy
  (xerial framing), lz4 (frame, independent blocks, level 9), zstd (level 3).
* kafka-python 3 (``kafka.record.default_records.DefaultRecordBatchBuilder``) needs the optional
  python-snappy / lz4 / zstandard packages for those codecs, which refka does not install, so it
  is used for NONE and GZIP only.

Both builders fall back to an uncompressed batch when compression does not shrink the records,
so the payloads here are compressible.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.record.default_records import DefaultRecordBatchBuilder as AiokafkaBuilder
from kafka.record.default_records import DefaultRecordBatchBuilder as KafkaPythonBuilder


@dataclass(frozen=True)
class ClientRecord:
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


def sample_records(count: int = 40) -> list[ClientRecord]:
    """Keys sometimes null, values sometimes null, headers sometimes present, increasing times."""
    return [
        ClientRecord(
            offset=index,
            timestamp=1_700_000_000_000 + 7 * index,
            key=None if index % 3 == 0 else b"key-%d" % index,
            value=None if index % 11 == 5 else b"value %d " % index * (index % 7 + 1),
            headers=[]
            if index % 2
            else [("trace", b"abc%d" % index), ("empty", None), ("\u00e9t\u00e9", b"")],
        )
        for index in range(count)
    ]


def aiokafka_batch(
    records: list[ClientRecord],
    *,
    codec: int = 0,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    transactional: bool = False,
) -> bytes:
    builder = AiokafkaBuilder(
        magic=2,
        compression_type=codec,
        is_transactional=int(transactional),
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        batch_size=1 << 24,
    )
    for record in records:
        builder.append(
            record.offset,
            timestamp=record.timestamp,
            key=record.key,
            value=record.value,
            headers=record.headers,
        )
    return bytes(builder.build())


def kafka_python_batch(
    records: list[ClientRecord],
    *,
    codec: int = 0,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    transactional: bool = False,
) -> bytes:
    builder = KafkaPythonBuilder(
        magic=2,
        compression_type=codec,
        is_transactional=transactional,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        batch_size=1 << 24,
    )
    for record in records:
        builder.append(record.offset, record.timestamp, record.key, record.value, record.headers)
    return bytes(builder.build())
