"""The records of ``__transaction_state``, byte for byte as Kafka 4.x writes them.

Theory of operation
-------------------
The transaction coordinator keeps one record per transactional id in ``__transaction_state``
(compacted: the newest record per key wins, a null value deletes the id).  Both halves are
version-prefixed (Kafka's ``MessageUtil.toVersionPrefixedBytes``); the schemas are Kafka's
``TransactionLogKey.json`` and ``TransactionLogValue.json`` (transaction-coordinator module)::

    key   = version:INT16 (0)  transactional_id:STRING

    value = version:INT16 (0 or 1; 1 is flexible)
            producer_id:INT64  producer_epoch:INT16  transaction_timeout_ms:INT32
            transaction_status:INT8                       (the state id, :mod:`.state`)
            transaction_partitions:NULLABLE ARRAY(topic:STRING  partition_ids:ARRAY(INT32))
            transaction_last_update_timestamp_ms:INT64  transaction_start_timestamp_ms:INT64
            v1 tagged fields: 0 previous_producer_id:INT64 (default -1)
                              1 next_producer_id:INT64     (default -1)
                              2 client_transaction_version:INT16 (default 0)

Kafka writes value version 1 when the cluster's ``transaction.version`` is 1 or more (4.x
clusters start at 2), and a null partition list for the Empty state (Kafka's
``TransactionLog.valueToBytes``).  Both versions are read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reference.protocol.primitives import Reader, Writer
from reference.protocol.schema import INT8, INT16, INT32, INT64, STRING, Array, Field, Struct

from .state import TransactionState

KEY_VERSION = 0
VALUE_VERSION = 1  # transaction.version >= 1
FIRST_FLEXIBLE_VALUE_VERSION = 1
NO_PRODUCER_ID = -1

PARTITIONS_SCHEMA = Struct("PartitionsSchema", [
    Field("Topic", STRING),
    Field("PartitionIds", Array(INT32)),
])

KEY_SCHEMA = Struct("TransactionLogKey", [Field("TransactionalId", STRING)])


VALUE_SCHEMA = Struct("TransactionLogValue", [
    Field("ProducerId", INT64),
    Field("PreviousProducerId", INT64, versions="1+", tag=0, tagged_versions="1+", default=-1),
    Field("NextProducerId", INT64, versions="1+", tag=1, tagged_versions="1+", default=-1),
    Field("ProducerEpoch", INT16),
    Field("TransactionTimeoutMs", INT32),
    Field("TransactionStatus", INT8),
    Field("TransactionPartitions", Array(PARTITIONS_SCHEMA), nullable="0+"),
    Field("TransactionLastUpdateTimestampMs", INT64),
    Field("TransactionStartTimestampMs", INT64),
    Field("ClientTransactionVersion", INT16, versions="1+", tag=2, tagged_versions="1+", default=0),
])


@dataclass(frozen=True)
class TransactionLogValue:
    """One transactional id's state as the log records it."""

    producer_id: int
    producer_epoch: int
    transaction_timeout_ms: int
    state: TransactionState
    partitions: dict[str, list[int]] = field(default_factory=dict)  # topic -> partition ids
    last_update_timestamp_ms: int = -1
    start_timestamp_ms: int = -1
    previous_producer_id: int = NO_PRODUCER_ID
    next_producer_id: int = NO_PRODUCER_ID
    client_transaction_version: int = 0


def encode_key(transactional_id: str) -> bytes:
    writer = Writer()
    writer.int16(KEY_VERSION)
    KEY_SCHEMA.write(writer, KEY_SCHEMA.make(transactional_id=transactional_id), KEY_VERSION, False)
    return writer.getvalue()


def decode_key(data: bytes) -> str:
    reader = Reader(data)
    version = reader.int16()
    if version != KEY_VERSION:
        raise ValueError(f"unknown TransactionLogKey version {version}")
    return str(KEY_SCHEMA.read(reader, version, False).transactional_id)


def encode_value(value: TransactionLogValue, version: int = VALUE_VERSION) -> bytes:
    partitions = None if value.state is TransactionState.EMPTY else [
        PARTITIONS_SCHEMA.make(topic=topic, partition_ids=list(ids)) for topic, ids in value.partitions.items()]
    data = VALUE_SCHEMA.make(
        producer_id=value.producer_id, previous_producer_id=value.previous_producer_id,
        next_producer_id=value.next_producer_id, producer_epoch=value.producer_epoch,
        transaction_timeout_ms=value.transaction_timeout_ms, transaction_status=value.state.id,
        transaction_partitions=partitions,
        transaction_last_update_timestamp_ms=value.last_update_timestamp_ms,
        transaction_start_timestamp_ms=value.start_timestamp_ms,
        client_transaction_version=value.client_transaction_version)
    writer = Writer()
    writer.int16(version)
    VALUE_SCHEMA.write(writer, data, version, version >= FIRST_FLEXIBLE_VALUE_VERSION)
    return writer.getvalue()


def decode_value(data: bytes | None) -> TransactionLogValue | None:
    """The value, or None for a tombstone (the id expired)."""
    if data is None:
        return None
    reader = Reader(data)
    version = reader.int16()
    if version < 0:
        raise ValueError(f"invalid TransactionLogValue version {version}")
    version = min(version, VALUE_VERSION)  # a newer version reads its known fields, as Kafka does
    decoded = VALUE_SCHEMA.read(reader, version, version >= FIRST_FLEXIBLE_VALUE_VERSION)
    partitions = {p.topic: list(p.partition_ids) for p in decoded.transaction_partitions or []}
    return TransactionLogValue(
        producer_id=decoded.producer_id, producer_epoch=decoded.producer_epoch,
        transaction_timeout_ms=decoded.transaction_timeout_ms,
        state=TransactionState.from_id(decoded.transaction_status), partitions=partitions,
        last_update_timestamp_ms=decoded.transaction_last_update_timestamp_ms,
        start_timestamp_ms=decoded.transaction_start_timestamp_ms,
        previous_producer_id=decoded.get("previous_producer_id", NO_PRODUCER_ID),
        next_producer_id=decoded.get("next_producer_id", NO_PRODUCER_ID),
        client_transaction_version=decoded.get("client_transaction_version", 0))
