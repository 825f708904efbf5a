"""What a partition leader refuses, rewrites or reports about produced batches, and where it points
a client that asked the wrong broker: Produce (key 0), Fetch (key 1) and ListOffsets (key 2).

Every request here is built with refka's own codec (:func:`conformance.raw.call`) at each version
both the broker and the codec speak, so a broker that behaves at one version and not another is
caught.  The expected values are what Apache Kafka 4 answers; each is named beside the check:

* **Batch validation** (Kafka's ``LogValidator`` and ``ProduceRequest.validateRecords``): a batch
  whose ``recordCount`` disagrees with its offset range or its bytes, a magic 0/1 message set in
  Produce v3+, a client batch with the control bit (attributes bit 5), a producer id without a base
  sequence: INVALID_RECORD (87) with a null ``error_message`` (Kafka fills it only for refusals
  judged record by record).  A transactional batch without a ``transactional_id`` is refused whole;
  one with a ``transactional_id`` but producer id -1 is, as in Kafka, stored outside any transaction.
* **Timestamps** (``message.timestamp.before.max.ms`` / ``after.max.ms``, KIP-937): a record
  outside the window fails its batch with INVALID_TIMESTAMP (32) and, from Produce v8 (KIP-467),
  ``record_errors`` names each bad record by its index in the batch, with a message.
* **The topic's clock and codec**: ``message.timestamp.type=LogAppendTime`` answers the append time
  in ``log_append_time_ms`` and stores it as the batch's max timestamp with the timestamp-type bit;
  ``compression.type`` recompresses a batch into the topic's codec, except ``producer``, which keeps
  the client's.
* **acks=0**: the broker sends no response, so an error (an unknown partition, an invalid batch, a
  follower that does not lead the partition) can only be signalled by closing the connection
  (Kafka's ``KafkaApis.handleProduceRequest`` closes it "so the client notices").
* **ListOffsets**: MAX_TIMESTAMP (-3, v7+, KIP-734), EARLIEST_LOCAL (-4, v8+, KIP-405), a timestamp
  that falls between the records of one batch, and LATEST per isolation level (v2+, KIP-98): the
  high watermark for read_uncommitted, the last stable offset for read_committed.
* **Leader hints** (KIP-951): a Produce v10+ sent to a follower, and a Fetch v16+ sent to a broker
  without a replica, answer NOT_LEADER_OR_FOLLOWER (6) with the leader's id and epoch and its
  endpoint, at every such version.
"""

from __future__ import annotations

import struct
import time
import uuid
import zlib
from typing import Any

import pytest

from conformance import raw, speak
from reference.errors import Errors
from reference.protocol.apis import API_BY_KEY
from reference.records import batch as batch_layout
from reference.records.batch import RecordBatch, SimpleRecord, TimestampType, build_batch, iter_record_batches
from reference.records.compression import CompressionType

PRODUCE = API_BY_KEY[raw.PRODUCE]
FETCH = API_BY_KEY[raw.FETCH]
LIST_OFFSETS = API_BY_KEY[raw.LIST_OFFSETS]

MAX_TIMESTAMP = -3  # ListOffsetsRequest.MAX_TIMESTAMP (KIP-734)
EARLIEST_LOCAL_TIMESTAMP = -4  # ListOffsetsRequest.EARLIEST_LOCAL_TIMESTAMP (KIP-405)
HOUR_MS = 3_600_000
TRANSACTIONAL = batch_layout.Attributes.TRANSACTIONAL
CONTROL = batch_layout.Attributes.CONTROL


# ---------------------------------------------------------------- versions and requests
def _versions(capabilities, api, low: int, high: int | None = None) -> list[int]:
    """Every version of ``api`` from ``low`` (to ``high``) both the broker and the codec speak."""
    return speak.versions(capabilities, api.key, low, high)


def _produce_body(conn, topic: str, records: bytes, version: int, acks: int = -1, partition: int = 0,
                  transactional_id: str | None = None):
    request = PRODUCE.request
    if version >= 13:
        key = {"topic_id": _topic_uuid(conn, topic)}
    else:
        key = {"name": topic}
    partition_data = request.struct("PartitionProduceData").make(index=partition, records=records)
    topic_data = request.struct("TopicProduceData").make(partition_data=[partition_data], **key)
    return request.make(transactional_id=transactional_id, acks=acks, timeout_ms=30_000, topic_data=[topic_data])


def _topic_uuid(conn, topic: str) -> uuid.UUID:
    """The topic's id (Metadata v12), for the versions that name topics by id (KIP-516)."""
    return uuid.UUID(bytes=raw.topic_id(conn, topic))


def _produce(conn, topic: str, records: bytes, version: int, **options):
    """One partition's answer to a Produce at ``version`` (acks=all unless told)."""
    answer = raw.call(conn, raw.PRODUCE, version, _produce_body(conn, topic, records, version, **options))
    (topic_answer,) = answer.responses
    (partition_answer,) = topic_answer.partition_responses
    return answer, partition_answer


def _refusal(partition_answer) -> dict[str, Any]:
    """The fields of a refused partition that a client reads."""
    return {"error_code": partition_answer.error_code, "base_offset": partition_answer.base_offset,
            "record_errors": [(e.batch_index, e.batch_index_error_message) for e in partition_answer.record_errors],
            "error_message": partition_answer.error_message}


def _fetch_batches(conn, capabilities, topic: str, offset: int = 0) -> list[RecordBatch]:
    """Every whole batch of partition 0 from ``offset``, fetched by topic name (Fetch v4-v12)."""
    version = _versions(capabilities, FETCH, 4, 12)[-1]
    request = FETCH.request
    partition = request.struct("FetchPartition").make(partition=0, fetch_offset=offset, partition_max_bytes=1 << 20)
    body = request.make(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20,
                        topics=[request.struct("FetchTopic").make(topic=topic, partitions=[partition])])
    answer = raw.call(conn, raw.FETCH, version, body)
    (partition_answer,) = answer.responses[0].partitions
    assert partition_answer.error_code == 0, f"Fetch v{version} of {topic}: {partition_answer}"
    return list(iter_record_batches(bytes(partition_answer.records or b"")))


def _list_offset(conn, topic: str, timestamp: int, version: int, isolation_level: int = 0):
    request = LIST_OFFSETS.request
    partition = request.struct("ListOffsetsPartition").make(partition_index=0, timestamp=timestamp)
    body = request.make(replica_id=-1, isolation_level=isolation_level, timeout_ms=30_000,
                        topics=[request.struct("ListOffsetsTopic").make(name=topic, partitions=[partition])])
    answer = raw.call(conn, raw.LIST_OFFSETS, version, body)
    return answer.topics[0].partitions[0]


def _batch(*values: bytes, timestamps: list[int] | None = None, **options) -> bytes:
    now = int(time.time() * 1000)
    stamps = timestamps or [now] * len(values)
    return build_batch([SimpleRecord(value=v, timestamp=t) for v, t in zip(values, stamps, strict=True)], **options)


def _patched(batch: bytes, **fields: int) -> bytes:
    """``batch`` with header fields overwritten (``record_count``, ``attributes``, ...) and its CRC
    recomputed, so only the named disagreement remains."""
    layout = {"record_count": (batch_layout.RECORD_COUNT, ">i"), "attributes": (batch_layout.ATTRIBUTES, ">h"),
              "last_offset_delta": (batch_layout.LAST_OFFSET_DELTA, ">i"),
              "producer_id": (batch_layout.PRODUCER_ID, ">q"), "producer_epoch": (batch_layout.PRODUCER_EPOCH, ">h"),
              "base_sequence": (batch_layout.BASE_SEQUENCE, ">i")}
    patched = bytearray(batch)
    for name, value in fields.items():
        position, fmt = layout[name]
        struct.pack_into(fmt, patched, position, value)
    struct.pack_into(">I", patched, batch_layout.CRC, batch_layout.compute_crc(patched))
    return bytes(patched)


def _legacy_message(magic: int, value: bytes) -> bytes:
    """One message of the pre-KIP-98 formats (magic 0 or 1), in a message set of one entry::

        offset int64, message_size int32, crc uint32 (CRC-32 of what follows), magic int8,
        attributes int8, [timestamp int64 (magic 1)], key bytes (int32 length), value bytes
    """
    body = struct.pack(">bb", magic, 0) + (struct.pack(">q", int(time.time() * 1000)) if magic == 1 else b"")
    body += struct.pack(">i", -1) + struct.pack(">i", len(value)) + value
    message = struct.pack(">I", zlib.crc32(body)) + body
    return struct.pack(">qi", 0, len(message)) + message


def _log_end_offset(conn, topic: str) -> int:
    return raw.list_offset(conn, topic, 0, raw.LATEST_TIMESTAMP).offset


# ---------------------------------------------------------------- batch validation
INVALID_BATCHES = {
    # lastOffsetDelta says 2 records, recordCount 3: "Inconsistent batch offset range ... and count of records".
    "count_above_offset_range": lambda: _patched(_batch(b"a", b"b"), record_count=3),
    # recordCount and lastOffsetDelta both say 3, the bytes hold 2 records.
    "count_above_records": lambda: _patched(_batch(b"a", b"b"), record_count=3, last_offset_delta=2),
    # recordCount and lastOffsetDelta both say 1, the bytes hold 2 records.
    "count_below_records": lambda: _patched(_batch(b"a", b"b"), record_count=1, last_offset_delta=0),
    # KIP-896: Produce v3+ carries record batches of magic 2 only.
    "magic_0_message_set": lambda: _legacy_message(0, b"legacy"),
    "magic_1_message_set": lambda: _legacy_message(1, b"legacy"),
    # Transaction markers are written by the coordinator; a client batch may not set the control bit.
    "control_bit": lambda: _patched(_batch(b"a"), attributes=CONTROL),
    # A producer id with baseSequence -1: an idempotent batch must carry its sequence.
    "producer_id_without_sequence": lambda: _patched(_batch(b"a"), producer_id=4242, producer_epoch=0),
}


@pytest.mark.parametrize("case", sorted(INVALID_BATCHES))
def test_invalid_batch_is_refused_at_every_version(case, topics, broker, capabilities):
    """Each malformed batch is refused with Kafka's code and nothing is appended, at every Produce
    version: INVALID_RECORD (87) for a record count that disagrees with the offset range or with the
    records, a magic 0/1 message set, a client batch with the control bit, a producer id without a
    base sequence.  The answer carries base_offset -1, no record_errors and no error_message: these
    refusals concern the batch, not one record of it."""
    topic = topics.create()
    conn = broker.leader(topic)
    records = INVALID_BATCHES[case]()
    observed = {}
    for version in _versions(capabilities, PRODUCE, 3):
        observed[version] = _refusal(_produce(conn, topic, records, version)[1])
    refused = {"error_code": Errors.INVALID_RECORD.code, "base_offset": -1, "record_errors": [], "error_message": None}
    assert observed == dict.fromkeys(observed, refused)
    assert _log_end_offset(conn, topic) == 0, "a refused batch was appended"


def test_transactional_batch_without_transactional_id(topics, broker, capabilities):
    """A batch with the transactional bit (attributes bit 4) in a Produce that names no
    transactional_id is refused as a whole with TRANSACTIONAL_ID_AUTHORIZATION_FAILED (53): the
    broker authorises transactional writes by transactional id, and there is none."""
    topic = topics.create()
    conn = broker.leader(topic)
    records = _patched(_batch(b"a"), attributes=TRANSACTIONAL)
    observed = {version: _refusal(_produce(conn, topic, records, version)[1])["error_code"]
                for version in _versions(capabilities, PRODUCE, 3)}
    assert observed == dict.fromkeys(observed, Errors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code)
    assert _log_end_offset(conn, topic) == 0


def test_transactional_batch_without_producer_id_is_stored_outside_any_transaction(topics, broker, capabilities):
    """Kafka's quirk, kept: with a transactional_id but producer id -1, a transactional batch is
    appended at every Produce version.  Transaction verification (KIP-890) and the producer-state
    table only look at batches that have a producer id, so no transaction is opened: the batch is
    stored with its transactional bit and producer id -1, and the last stable offset
    (read_committed LATEST) moves with the high watermark."""
    topic = topics.create()
    conn = broker.leader(topic)
    records = _patched(_batch(b"a"), attributes=TRANSACTIONAL)
    versions = _versions(capabilities, PRODUCE, 3)
    observed = {version: (lambda p: (p.error_code, p.base_offset))(
        _produce(conn, topic, records, version, transactional_id="conformance-without-producer-id")[1])
        for version in versions}
    assert observed == {version: (0, index) for index, version in enumerate(versions)}
    stable = raw.list_offset_isolated(conn, topic, 0, raw.LATEST_TIMESTAMP, raw.READ_COMMITTED)
    assert (stable.error_code, stable.offset) == (0, len(versions))
    stored = [(b.is_transactional, b.producer_id) for b in _fetch_batches(conn, capabilities, topic)]
    assert stored == [(True, -1)] * len(versions)


# ---------------------------------------------------------------- timestamps (KIP-937, per-record errors KIP-467)
def test_timestamps_outside_the_topic_window_fail_with_per_record_errors(topics, broker, capabilities):
    """With message.timestamp.before.max.ms / after.max.ms of one hour, a batch whose records 1 and
    2 are two hours in the past and in the future is refused with INVALID_TIMESTAMP (32), base_offset
    -1, record_errors naming batch indexes 1 and 2, each with a message quoting that record's
    timestamp, and the error_message "One or more records have been rejected due to invalid
    timestamp"; nothing is appended.  The record inside the window does not make the batch pass."""
    hour = str(HOUR_MS)
    topic = topics.create(configs={"message.timestamp.before.max.ms": hour, "message.timestamp.after.max.ms": hour})
    conn = broker.leader(topic)
    for version in _versions(capabilities, PRODUCE, 8):
        now = int(time.time() * 1000)
        stamps = [now, now - 2 * HOUR_MS, now + 2 * HOUR_MS]
        answer = _produce(conn, topic, _batch(b"in", b"early", b"late", timestamps=stamps), version)[1]
        refusal = _refusal(answer)
        indexes = [index for index, _ in refusal["record_errors"]]
        assert (refusal["error_code"], refusal["base_offset"], indexes) == (Errors.INVALID_TIMESTAMP.code, -1, [1, 2]), \
            f"Produce v{version}: {refusal}"
        for (index, message), stamp in zip(refusal["record_errors"], stamps[1:], strict=True):
            assert message is not None and message.startswith(
                f"Timestamp {stamp} of message with offset {index} is out of range."), f"v{version}: {message!r}"
        assert refusal["error_message"] == "One or more records have been rejected due to invalid timestamp", \
            f"v{version}: {refusal}"
    assert _log_end_offset(conn, topic) == 0


def test_log_append_time_topic_answers_and_stores_the_append_time(topics, broker, capabilities):
    """message.timestamp.type=LogAppendTime: Produce answers log_append_time_ms (not -1) at every
    version, the fetched batch carries the LogAppendTime bit (attributes bit 3) with that time as
    its max timestamp, and each record reads back with it, whatever CreateTime the client sent."""
    topic = topics.create(configs={"message.timestamp.type": "LogAppendTime"})
    conn = broker.leader(topic)
    sent_time = 1_600_000_000_000  # 2020: far from any append time
    answered = {}
    for version in _versions(capabilities, PRODUCE, 3):
        partition = _produce(conn, topic, _batch(b"v", timestamps=[sent_time]), version)[1]
        assert partition.error_code == 0, f"Produce v{version}: {partition}"
        answered[partition.base_offset] = partition.log_append_time_ms
    stored = {b.base_offset: (b.timestamp_type, b.max_timestamp, [b.record_timestamp(r) for r in b.records])
              for b in _fetch_batches(conn, capabilities, topic)}
    assert stored == {offset: (TimestampType.LOG_APPEND_TIME, at, [at]) for offset, at in answered.items()}
    assert all(at > sent_time for at in answered.values()), f"log_append_time_ms: {answered}"


def test_create_time_topic_answers_no_append_time(topics, broker, capabilities):
    """message.timestamp.type=CreateTime (the default): log_append_time_ms is -1 at every version
    and the stored batch keeps the client's timestamps."""
    topic = topics.create()
    conn = broker.leader(topic)
    sent_time = int(time.time() * 1000) - 60_000
    answered = {}
    for version in _versions(capabilities, PRODUCE, 3):
        partition = _produce(conn, topic, _batch(b"v", timestamps=[sent_time]), version)[1]
        answered[version] = (partition.error_code, partition.log_append_time_ms)
    assert answered == dict.fromkeys(answered, (0, -1))
    stored = [(b.timestamp_type, b.max_timestamp) for b in _fetch_batches(conn, capabilities, topic)]
    assert stored == [(TimestampType.CREATE_TIME, sent_time)] * len(answered)


# ---------------------------------------------------------------- the topic's compression.type
@pytest.mark.parametrize(("topic_codec", "sent", "stored"), [
    ("gzip", CompressionType.NONE, CompressionType.GZIP),
    ("zstd", CompressionType.GZIP, CompressionType.ZSTD),
    ("uncompressed", CompressionType.LZ4, CompressionType.NONE),
    ("producer", CompressionType.LZ4, CompressionType.LZ4),
    ("producer", CompressionType.NONE, CompressionType.NONE),
])
def test_topic_compression_type_decides_the_stored_codec(topic_codec, sent, stored, topics, broker, capabilities):
    """compression.type names the codec a topic stores: a batch sent with another codec is
    recompressed (its records kept, offsets assigned from the log end), and ``producer`` keeps the
    client's codec.  Fetched back, the batch's attributes (bits 0-2) name the stored codec."""
    version = _versions(capabilities, PRODUCE, 7)[-1]  # zstd needs Produce v7 and Fetch v10 (KIP-110)
    topic = topics.create(configs={"compression.type": topic_codec})
    conn = broker.leader(topic)
    values = [b"first" * 20, b"second" * 20]
    partition = _produce(conn, topic, _batch(*values, compression=sent), version)[1]
    assert (partition.error_code, partition.base_offset) == (0, 0), f"Produce v{version}: {partition}"
    fetched = [(b.base_offset, b.compression, [r.value for r in b.records])
               for b in _fetch_batches(conn, capabilities, topic)]
    assert fetched == [(0, stored, values)]


# ---------------------------------------------------------------- acks=0
@pytest.mark.parametrize("failure", ["unknown_partition", "invalid_record"])
def test_failed_acks_zero_produce_closes_the_connection(failure, topics, broker, capabilities):
    """acks=0: the broker never answers, so when the write fails it closes the connection, the only
    signal the client gets.  A successful acks=0 produce on the same connection is followed by an
    answered ApiVersions; after the failing one the connection is closed instead."""
    version = _versions(capabilities, PRODUCE, 3)[-1]
    topic = topics.create(partitions=1)
    conn = broker.leader(topic)
    raw.send_body(conn, raw.PRODUCE, version, _produce_body(conn, topic, _batch(b"ok"), version, acks=0))
    assert raw.api_versions(conn, 0).error_code == 0, "a successful acks=0 produce must leave the connection open"
    partition, records = (7, _batch(b"lost")) if failure == "unknown_partition" else \
        (0, _patched(_batch(b"lost"), attributes=CONTROL))
    raw.send_body(conn, raw.PRODUCE, version, _produce_body(conn, topic, records, version, acks=0,
                                                            partition=partition))
    with pytest.raises(raw.ConnectionClosed):
        raw.api_versions(conn, 0)
        pytest.fail("the connection stayed open after a failed acks=0 produce: ApiVersions was answered")
    with raw.Connection.to(broker.leader_address(topic)) as fresh:
        assert _log_end_offset(fresh, topic) == 1, "only the successful acks=0 record is in the log"


def test_acks_zero_produce_to_a_follower_closes_the_connection(topics, capabilities, bootstrap):
    """acks=0 sent to a follower: the write fails with NOT_LEADER_OR_FOLLOWER, which acks=0 cannot
    carry, so the follower closes the connection (the client then refreshes its metadata)."""
    capabilities.require_brokers(2)
    version = _versions(capabilities, PRODUCE, 3)[-1]
    topic = topics.create(replication_factor=2)
    state = _partition_state(bootstrap.split(",")[0], topic)
    follower_address = capabilities.broker_addresses[next(r for r in state.replicas if r != state.leader)]
    _wait_until(lambda: _partition_state(follower_address, topic).leader_epoch == state.leader_epoch,
                "the follower to learn the leader epoch")
    with raw.Connection.to(follower_address) as conn:
        raw.send_body(conn, raw.PRODUCE, version, _produce_body(conn, topic, _batch(b"misdirected"), version, acks=0))
        with pytest.raises(raw.ConnectionClosed):
            raw.api_versions(conn, 0)
            pytest.fail("the follower kept the connection open after a failed acks=0 produce: ApiVersions was answered")
    with raw.Connection.to(capabilities.broker_addresses[state.leader]) as conn:
        assert _log_end_offset(conn, topic) == 0


# ---------------------------------------------------------------- ListOffsets sentinels
def _produce_stamped(conn, capabilities, topic: str, *batches: list[int]) -> None:
    version = _versions(capabilities, PRODUCE, 3)[-1]
    for stamps in batches:
        values = [f"t{stamp}".encode() for stamp in stamps]
        partition = _produce(conn, topic, _batch(*values, timestamps=stamps), version)[1]
        assert partition.error_code == 0, partition


def test_list_offsets_max_timestamp(topics, broker, capabilities):
    """ListOffsets MAX_TIMESTAMP (-3, v7+, KIP-734) answers the offset and timestamp of the record
    with the largest timestamp, even when that record sits in the middle of an earlier batch; on an
    empty partition, offset -1 and timestamp -1."""
    versions = _versions(capabilities, LIST_OFFSETS, 7)
    topic = topics.create()
    conn = broker.leader(topic)
    empty = {v: (lambda p: (p.error_code, p.offset, p.timestamp))(_list_offset(conn, topic, MAX_TIMESTAMP, v))
             for v in versions}
    assert empty == dict.fromkeys(versions, (0, -1, -1))
    base = int(time.time() * 1000) - 60_000
    _produce_stamped(conn, capabilities, topic, [base, base + 5000, base + 2000], [base + 1000, base + 3000])
    found = {v: (lambda p: (p.error_code, p.offset, p.timestamp))(_list_offset(conn, topic, MAX_TIMESTAMP, v))
             for v in versions}
    assert found == dict.fromkeys(versions, (0, 1, base + 5000))


def test_list_offsets_earliest_local(topics, broker, capabilities):
    """ListOffsets EARLIEST_LOCAL (-4, v8+, KIP-405): without tiered storage the earliest offset
    held locally is the log start offset, 0 for a new topic, with its timestamp field as Kafka
    answers it."""
    versions = _versions(capabilities, LIST_OFFSETS, 8)
    topic = topics.create()
    conn = broker.leader(topic)
    _produce_stamped(conn, capabilities, topic, [int(time.time() * 1000)])
    found = {v: (lambda p: (p.error_code, p.offset, p.timestamp))(_list_offset(conn, topic, EARLIEST_LOCAL_TIMESTAMP, v))
             for v in versions}
    assert found == dict.fromkeys(versions, (0, 0, -1))


def test_list_offsets_timestamp_between_records_of_one_batch(topics, broker, capabilities):
    """A ListOffsets timestamp that falls between two records of one batch answers the first record
    at or after it (its own offset and timestamp, not the batch's), at every version; a timestamp
    after every record answers offset -1 and timestamp -1."""
    versions = _versions(capabilities, LIST_OFFSETS, 1)
    topic = topics.create()
    conn = broker.leader(topic)
    base = int(time.time() * 1000) - 60_000
    _produce_stamped(conn, capabilities, topic, [base, base + 1000, base + 2000])

    def lookup(target: int) -> dict[int, tuple[int, int, int]]:
        return {v: (lambda p: (p.error_code, p.offset, p.timestamp))(_list_offset(conn, topic, target, v))
                for v in versions}

    assert lookup(base + 500) == dict.fromkeys(versions, (0, 1, base + 1000))
    assert lookup(base + 1000) == dict.fromkeys(versions, (0, 1, base + 1000))
    assert lookup(base + 2001) == dict.fromkeys(versions, (0, -1, -1))


# ---------------------------------------------------------------- ListOffsets isolation levels (KIP-98)
ADD_PARTITIONS_TO_TXN = API_BY_KEY[24]
END_TXN = API_BY_KEY[26]
RETRIABLE_COORDINATOR_ERRORS = {Errors.COORDINATOR_LOAD_IN_PROGRESS.code, Errors.COORDINATOR_NOT_AVAILABLE.code,
                                Errors.NOT_COORDINATOR.code, Errors.CONCURRENT_TRANSACTIONS.code}


def _transaction_coordinator(bootstrap: str, transactional_id: str, init_version: int):
    """A connection to the transaction coordinator and a producer id and epoch from it, retrying
    what a client retries while ``__transaction_state`` is created and loaded."""
    deadline = time.monotonic() + 30
    while True:
        with raw.Connection.to(bootstrap.split(",")[0]) as conn:
            found = raw.find_coordinator(conn, transactional_id, key_type=1)
        code = found.error_code
        if code == 0:
            coordinator = raw.Connection(found.host, found.port)
            ids = raw.init_producer_id_at(coordinator, init_version, transactional_id)
            if ids.error_code == 0:
                return coordinator, ids
            coordinator.close()
            code = ids.error_code
        if code not in RETRIABLE_COORDINATOR_ERRORS or time.monotonic() > deadline:
            raise raw.SetupFailed(f"FindCoordinator/InitProducerId for transactional id {transactional_id!r} "
                                  f"answered error {code}")
        time.sleep(0.2)


def _txn_call(coordinator, api, low: int, high: int, capabilities, **fields):
    version = _versions(capabilities, api, low, high)[-1]
    return raw.call(coordinator, api.key, version, api.request.make(**fields))


def test_list_offsets_latest_is_the_last_stable_offset_for_read_committed(topics, broker, capabilities, bootstrap):
    """ListOffsets LATEST at every version from v2 (which added isolation_level): read_uncommitted
    answers the high watermark, read_committed the last stable offset, the first offset of the
    transaction still open (records 0 and 2 are plain, 1 is transactional).  Once the transaction
    is aborted, the LSO moves past its marker to the high watermark."""
    capabilities.require_transactions()
    versions = _versions(capabilities, LIST_OFFSETS, 2)
    init_version = raw.negotiate(capabilities.api_versions, raw.INIT_PRODUCER_ID)
    if init_version is None:
        pytest.skip("the broker advertises no InitProducerId version this suite speaks")
    topic = topics.create()
    conn = broker.leader(topic)
    transactional_id = f"{topic}-txn"
    coordinator, ids = _transaction_coordinator(bootstrap, transactional_id, init_version)
    try:
        # The classic (transaction version 1) flow: AddPartitionsToTxn v0-v3 names the partition first.
        added = _txn_call(coordinator, ADD_PARTITIONS_TO_TXN, 0, 3, capabilities,
                          v3_and_below_transactional_id=transactional_id, v3_and_below_producer_id=ids.producer_id,
                          v3_and_below_producer_epoch=ids.producer_epoch, v3_and_below_topics=[
                              ADD_PARTITIONS_TO_TXN.request.struct("AddPartitionsToTxnTopic").make(
                                  name=topic, partitions=[0])])
        errors = [p.partition_error_code for t in added.results_by_topic_v3_and_below for p in t.results_by_partition]
        assert errors == [0], f"AddPartitionsToTxn: {added}"
        produce_version = _versions(capabilities, PRODUCE, 3, 11)[-1]
        transactional = build_batch([SimpleRecord(value=b"open", timestamp=int(time.time() * 1000))],
                                    producer_id=ids.producer_id, producer_epoch=ids.producer_epoch, base_sequence=0,
                                    transactional=True)
        for records, transactional_id_field in ((_batch(b"plain-0"), None), (transactional, transactional_id),
                                                (_batch(b"plain-2"), None)):
            answer = _produce(conn, topic, records, produce_version, transactional_id=transactional_id_field)[1]
            assert answer.error_code == 0, f"Produce v{produce_version}: {answer}"

        def latest(isolation_level: int) -> dict[int, tuple[int, int]]:
            return {v: (lambda p: (p.error_code, p.offset))(
                _list_offset(conn, topic, raw.LATEST_TIMESTAMP, v, isolation_level)) for v in versions}

        assert latest(raw.READ_UNCOMMITTED) == dict.fromkeys(versions, (0, 3))
        assert latest(raw.READ_COMMITTED) == dict.fromkeys(versions, (0, 1))
        ended = _txn_call(coordinator, END_TXN, 0, 4, capabilities, transactional_id=transactional_id,
                          producer_id=ids.producer_id, producer_epoch=ids.producer_epoch, committed=False)
        assert ended.error_code == 0, f"EndTxn: {ended}"
    finally:
        coordinator.close()
    # The coordinator writes the abort marker (offset 3) after answering EndTxn.
    _wait_until(lambda: latest(raw.READ_COMMITTED) == dict.fromkeys(versions, (0, 4)),
                "read_committed LATEST to reach the high watermark after the abort marker")
    assert latest(raw.READ_UNCOMMITTED) == dict.fromkeys(versions, (0, 4))


# ---------------------------------------------------------------- leader hints (KIP-951)
def _partition_state(address: str, topic: str) -> raw.PartitionInfo:
    with raw.Connection.to(address) as conn:
        return raw.metadata(conn, [topic], version=7).topics[topic].partitions[0]


def _wait_until(condition, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout:.0f} s")
        time.sleep(0.1)


def _hints(answer, partition_answer, leader: int) -> tuple[int, tuple[int, int], tuple[str, int] | None]:
    endpoint = next(((e.host, e.port) for e in answer.node_endpoints if e.node_id == leader), None)
    current = partition_answer.current_leader
    return partition_answer.error_code, (current.leader_id, current.leader_epoch), endpoint


def test_follower_answers_produce_with_the_leader_at_every_version(topics, capabilities, bootstrap):
    """KIP-951: a follower that receives Produce v10+ answers NOT_LEADER_OR_FOLLOWER (6) with the
    leader's id and epoch in current_leader and the leader's host and port in node_endpoints, at
    every Produce version from 10; nothing is appended."""
    capabilities.require_brokers(2)
    versions = _versions(capabilities, PRODUCE, 10)
    topic = topics.create(replication_factor=2)
    state = _partition_state(bootstrap.split(",")[0], topic)
    follower = next(r for r in state.replicas if r != state.leader)
    follower_address = capabilities.broker_addresses[follower]
    _wait_until(lambda: _partition_state(follower_address, topic).leader_epoch == state.leader_epoch,
                "the follower to learn the leader epoch")
    leader_host, _, leader_port = capabilities.broker_addresses[state.leader].rpartition(":")
    with raw.Connection.to(follower_address) as conn:
        observed = {v: _hints(*_produce(conn, topic, _batch(b"misdirected"), v), state.leader) for v in versions}
    expected = (Errors.NOT_LEADER_OR_FOLLOWER.code, (state.leader, state.leader_epoch), (leader_host, int(leader_port)))
    assert observed == dict.fromkeys(versions, expected)
    with raw.Connection.to(capabilities.broker_addresses[state.leader]) as conn:
        assert _log_end_offset(conn, topic) == 0


def test_bystander_answers_fetch_with_the_leader_at_every_version(topics, capabilities, bootstrap):
    """KIP-951: a broker holding no replica of the partition answers Fetch v16+ (topics by id) with
    NOT_LEADER_OR_FOLLOWER (6), the leader's id and epoch in current_leader and its endpoint in
    node_endpoints, at every Fetch version from 16."""
    capabilities.require_brokers(2)
    versions = _versions(capabilities, FETCH, 16)
    topic = topics.create(replication_factor=1)
    state = _partition_state(bootstrap.split(",")[0], topic)
    bystander = next(node for node in capabilities.broker_addresses if node not in state.replicas)
    address = capabilities.broker_addresses[bystander]
    _wait_until(lambda: _partition_state(address, topic).leader == state.leader,
                "the bystander to know the partition's leader")
    leader_host, _, leader_port = capabilities.broker_addresses[state.leader].rpartition(":")
    request = FETCH.request
    with raw.Connection.to(address) as conn:
        topic_uuid = _topic_uuid(conn, topic)
        observed = {}
        for version in versions:
            partition = request.struct("FetchPartition").make(partition=0, fetch_offset=0, partition_max_bytes=1 << 20,
                                                               current_leader_epoch=state.leader_epoch)
            body = request.make(max_wait_ms=0, min_bytes=0, topics=[
                request.struct("FetchTopic").make(topic_id=topic_uuid, partitions=[partition])])
            answer = raw.call(conn, raw.FETCH, version, body)
            observed[version] = _hints(answer, answer.responses[0].partitions[0], state.leader)
    expected = (Errors.NOT_LEADER_OR_FOLLOWER.code, (state.leader, state.leader_epoch), (leader_host, int(leader_port)))
    assert observed == dict.fromkeys(versions, expected)
