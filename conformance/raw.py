"""Raw Kafka protocol probes: just enough framing to ask a broker what clients hide from us.

Theory of operation
-------------------
Real clients smooth over the broker's exact answers: they retry, downgrade, or turn an error code
into an exception with a different name.  The conformance suite needs the bytes, so this module
speaks the wire protocol itself for the handful of requests the raw probes use.

This is a *private, minimal* helper.  It is isolated here so that it can be replaced by refka's own
codec (``reference.protocol``) once that exists; nothing outside this module knows how a request is
laid out.  The facts it encodes come from Kafka's protocol guide and the message definitions in
``clients/src/main/resources/common/message/*.json``:

* A request is ``int32 size`` + request header + body.  Request header v1 is ``api_key int16,
  api_version int16, correlation_id int32, client_id nullable int16-string``; header v2 (used by
  flexible versions) adds a tagged-field section.  ``client_id`` stays a classic string in both.
* A response is ``int32 size`` + response header + body.  Response header v0 is ``correlation_id``;
  v1 (flexible versions) adds tagged fields, *except* for ApiVersions, which always answers with
  header v0 so a client can read it before knowing anything (KIP-511).
* Flexible versions (KIP-482) use compact strings/bytes/arrays whose length is an unsigned varint
  holding ``length + 1`` (0 = null), and end every structure with a tagged-field section.
* A record batch (magic 2) is described in :func:`record_batch`.

Requests covered: ApiVersions v0 and v3, Metadata v4 and v7, InitProducerId v1, Produce v9 and v10
(flexible; v10 reads KIP-951's current_leader and node_endpoints), Fetch v4, v11 (leader epoch,
rack id, preferred read replica), v16 (topic ids; KIP-951 leader hints) and v7-v18 with a fetch
session (KIP-227), Metadata v12 for a topic id, ListOffsets v1 and v4, OffsetForLeaderEpoch v3, ElectLeaders v1, FindCoordinator v1, JoinGroup v5, SyncGroup v3, Heartbeat v3, OffsetCommit v7, OffsetFetch v5,
and arbitrary ``(api_key, version, body)`` frames for robustness probes.
Other helpers speak a range of versions (``SPOKEN_VERSIONS``: InitProducerId v0-v6, CreateTopics,
DeleteTopics, CreatePartitions, DescribeConfigs, IncrementalAlterConfigs, DeleteRecords, LeaveGroup,
DescribeGroups); the caller chooses one from the broker's ApiVersions with :func:`negotiate`.
:func:`call` (and :func:`send_body` / :func:`receive_body`) speak any API at any version through
refka's own codec, for tests that run at every version both sides support.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import crc32c

# ---------------------------------------------------------------- API keys used by the probes
PRODUCE = 0
FETCH = 1
LIST_OFFSETS = 2
METADATA = 3
OFFSET_COMMIT = 8
OFFSET_FETCH = 9
FIND_COORDINATOR = 10
JOIN_GROUP = 11
HEARTBEAT = 12
SYNC_GROUP = 14
API_VERSIONS = 18
INIT_PRODUCER_ID = 22
OFFSET_FOR_LEADER_EPOCH = 23
ELECT_LEADERS = 43

# ElectLeaders election types (KIP-460).
PREFERRED_ELECTION = 0
UNCLEAN_ELECTION = 1

# Record batch v2 attribute bits (DefaultRecordBatch).
COMPRESSION_NONE = 0
NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1

# ListOffsets special timestamps (ListOffsetsRequest.EARLIEST_TIMESTAMP / LATEST_TIMESTAMP).
LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2


class ConnectionClosed(Exception):
    """The broker closed the connection instead of answering (Kafka's answer to a frame it rejects)."""


# ---------------------------------------------------------------- primitive writer / reader
class Writer:
    """Appends Kafka primitive types to a byte buffer."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def int8(self, value: int) -> Writer:
        self.buffer += struct.pack(">b", value)
        return self

    def int16(self, value: int) -> Writer:
        self.buffer += struct.pack(">h", value)
        return self

    def int32(self, value: int) -> Writer:
        self.buffer += struct.pack(">i", value)
        return self

    def int64(self, value: int) -> Writer:
        self.buffer += struct.pack(">q", value)
        return self

    def uint32(self, value: int) -> Writer:
        self.buffer += struct.pack(">I", value)
        return self

    def boolean(self, value: bool) -> Writer:
        return self.int8(1 if value else 0)

    def uvarint(self, value: int) -> Writer:
        while True:
            low_bits = value & 0x7F
            value >>= 7
            if value:
                self.buffer.append(low_bits | 0x80)
            else:
                self.buffer.append(low_bits)
                return self

    def varint(self, value: int) -> Writer:
        """Signed zig-zag varint, as used inside records."""
        return self.uvarint((value << 1) ^ (value >> 63))

    def raw(self, data: bytes) -> Writer:
        self.buffer += data
        return self

    def string(self, value: str | None) -> Writer:
        if value is None:
            return self.int16(-1)
        encoded = value.encode()
        return self.int16(len(encoded)).raw(encoded)

    def compact_string(self, value: str | None) -> Writer:
        if value is None:
            return self.uvarint(0)
        encoded = value.encode()
        return self.uvarint(len(encoded) + 1).raw(encoded)

    def compact_bytes(self, value: bytes | None) -> Writer:
        if value is None:
            return self.uvarint(0)
        return self.uvarint(len(value) + 1).raw(value)

    def empty_tagged_fields(self) -> Writer:
        return self.uvarint(0)

    def int32_bytes(self, value: bytes | None) -> Writer:
        """Classic BYTES / NULLABLE_BYTES: int32 length (-1 null) then the bytes."""
        if value is None:
            return self.int32(-1)
        return self.int32(len(value)).raw(value)

    def bytes(self) -> bytes:
        return bytes(self.buffer)


class Reader:
    """Reads Kafka primitive types from a response body."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def _unpack(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.position)
        self.position += struct.calcsize(fmt)
        return int(value)

    def int8(self) -> int:
        return self._unpack(">b")

    def int16(self) -> int:
        return self._unpack(">h")

    def int32(self) -> int:
        return self._unpack(">i")

    def int64(self) -> int:
        return self._unpack(">q")

    def boolean(self) -> bool:
        return self.int8() != 0

    def uvarint(self) -> int:
        shift = 0
        value = 0
        while True:
            byte = self.data[self.position]
            self.position += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7

    def take(self, length: int) -> bytes:
        chunk = self.data[self.position : self.position + length]
        self.position += length
        return chunk

    def string(self) -> str | None:
        length = self.int16()
        return None if length < 0 else self.take(length).decode()

    def compact_string(self) -> str | None:
        length_plus_one = self.uvarint()
        return None if length_plus_one == 0 else self.take(length_plus_one - 1).decode()

    def int32_bytes(self) -> bytes | None:
        length = self.int32()
        return None if length < 0 else self.take(length)

    def array_length(self) -> int:
        return self.int32()

    def compact_array_length(self) -> int:
        """Element count of a compact array; -1 for null."""
        return self.uvarint() - 1

    def skip_tagged_fields(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self.take(self.uvarint())

    def remaining(self) -> int:
        return len(self.data) - self.position


# ---------------------------------------------------------------- connection
class Connection:
    """One TCP connection to a broker, sending size-prefixed requests and reading responses."""

    def __init__(self, host: str, port: int, timeout: float = 10.0, client_id: str = "refka-conformance"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.client_id = client_id
        self.correlation_id = 0

    @classmethod
    def to(cls, address: str, timeout: float = 10.0) -> Connection:
        host, _, port = address.rpartition(":")
        return cls(host, int(port), timeout)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, api_key: int, api_version: int, body: bytes, flexible: bool) -> int:
        """Send one request; returns its correlation id.  ``flexible`` selects request header v2."""
        self.correlation_id += 1
        header = Writer().int16(api_key).int16(api_version).int32(self.correlation_id).string(self.client_id)
        if flexible:
            header.empty_tagged_fields()
        frame = header.bytes() + body
        self.sock.sendall(struct.pack(">i", len(frame)) + frame)
        return self.correlation_id

    def _read_exactly(self, length: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < length:
            try:
                chunk = self.sock.recv(length - len(chunks))
            except ConnectionResetError as reset:
                raise ConnectionClosed("connection reset by broker") from reset
            if not chunk:
                raise ConnectionClosed("broker closed the connection")
            chunks += chunk
        return bytes(chunks)

    def receive(self, expected_correlation_id: int, flexible_header: bool) -> Reader:
        """Read one response frame; returns a Reader positioned at the start of the body."""
        (size,) = struct.unpack(">i", self._read_exactly(4))
        reader = Reader(self._read_exactly(size))
        correlation_id = reader.int32()
        if correlation_id != expected_correlation_id:
            raise AssertionError(f"correlation id {correlation_id}, expected {expected_correlation_id}")
        if flexible_header:
            reader.skip_tagged_fields()
        return reader

    def request(self, api_key: int, api_version: int, body: bytes, flexible: bool) -> Reader:
        correlation_id = self.send(api_key, api_version, body, flexible)
        # ApiVersions responses always use response header v0 (KIP-511).
        return self.receive(correlation_id, flexible_header=flexible and api_key != API_VERSIONS)


# ---------------------------------------------------------------- ApiVersions
@dataclass
class ApiVersionRange:
    api_key: int
    min_version: int
    max_version: int


@dataclass
class ApiVersionsResult:
    error_code: int
    apis: dict[int, ApiVersionRange]

    def supports(self, api_key: int, version: int | None = None) -> bool:
        advertised = self.apis.get(api_key)
        if advertised is None:
            return False
        return version is None or advertised.min_version <= version <= advertised.max_version


def api_versions(conn: Connection, version: int = 0) -> ApiVersionsResult:
    """ApiVersions v0 (empty body) or v3+ (client software name/version, flexible)."""
    flexible = version >= 3
    body = Writer()
    if flexible:
        body.compact_string("refka-conformance").compact_string("0.1").empty_tagged_fields()
    reader = conn.request(API_VERSIONS, version, body.bytes(), flexible)
    return _read_api_versions_body(reader, flexible)


def _read_api_versions_body(reader: Reader, flexible: bool) -> ApiVersionsResult:
    error_code = reader.int16()
    count = reader.compact_array_length() if flexible else reader.array_length()
    apis = {}
    for _ in range(max(count, 0)):
        entry = ApiVersionRange(reader.int16(), reader.int16(), reader.int16())
        if flexible:
            reader.skip_tagged_fields()
        apis[entry.api_key] = entry
    return ApiVersionsResult(error_code, apis)


def api_versions_raw_version(conn: Connection, version: int, body: bytes = b"") -> ApiVersionsResult:
    """Send ApiVersions at an arbitrary (possibly unknown) version and read the answer as v0.

    Kafka answers an ApiVersions request whose version it does not support with a v0 body carrying
    UNSUPPORTED_VERSION (35) and its API list, so the client can retry at a version both know.
    """
    correlation_id = conn.send(API_VERSIONS, version, body, flexible=version >= 3)
    return _read_api_versions_body(conn.receive(correlation_id, flexible_header=False), flexible=False)


# ---------------------------------------------------------------- Metadata v4
@dataclass
class BrokerInfo:
    node_id: int
    host: str
    port: int
    rack: str | None = None


@dataclass
class PartitionInfo:
    error_code: int
    partition: int
    leader: int
    replicas: list[int]
    isr: list[int]
    leader_epoch: int = -1  # Metadata v7+ (KIP-320); -1 when the version does not carry it


@dataclass
class TopicInfo:
    error_code: int
    name: str
    partitions: dict[int, PartitionInfo] = field(default_factory=dict)


@dataclass
class MetadataResult:
    brokers: dict[int, BrokerInfo]
    controller_id: int
    topics: dict[str, TopicInfo]


def _int32_array(reader: Reader) -> list[int]:
    return [reader.int32() for _ in range(reader.array_length())]


def metadata(conn: Connection, topics: list[str] | None = None, allow_auto_topic_creation: bool = False,
             version: int = 4) -> MetadataResult:
    """Metadata v4 or v7: ``topics`` None asks for all topics.  v5 adds each partition's
    offline_replicas and v7 its leader_epoch (KIP-320); the request body is the same."""
    if version not in (4, 7):
        raise ValueError("raw.metadata speaks Metadata v4 and v7")
    body = Writer()
    if topics is None:
        body.int32(-1)
    else:
        body.int32(len(topics))
        for name in topics:
            body.string(name)
    body.boolean(allow_auto_topic_creation)
    reader = conn.request(METADATA, version, body.bytes(), flexible=False)
    reader.int32()  # throttle_time_ms
    brokers = {}
    for _ in range(reader.array_length()):
        node_id, host, port = reader.int32(), reader.string() or "", reader.int32()
        brokers[node_id] = BrokerInfo(node_id, host, port, rack=reader.string())
    reader.string()  # cluster_id
    controller_id = reader.int32()
    result_topics = {}
    for _ in range(reader.array_length()):
        topic = TopicInfo(error_code=reader.int16(), name=reader.string() or "")
        reader.boolean()  # is_internal
        for _ in range(reader.array_length()):
            error_code, index, leader = reader.int16(), reader.int32(), reader.int32()
            leader_epoch = reader.int32() if version >= 7 else -1
            replicas, isr = _int32_array(reader), _int32_array(reader)
            if version >= 5:
                _int32_array(reader)  # offline_replicas
            partition = PartitionInfo(error_code, index, leader, replicas, isr, leader_epoch)
            topic.partitions[partition.partition] = partition
        result_topics[topic.name] = topic
    return MetadataResult(brokers, controller_id, result_topics)


# ---------------------------------------------------------------- InitProducerId v1
@dataclass
class ProducerIdAndEpoch:
    error_code: int
    producer_id: int
    producer_epoch: int


def init_producer_id(conn: Connection, transactional_id: str | None = None, timeout_ms: int = 60000) -> ProducerIdAndEpoch:
    body = Writer().string(transactional_id).int32(timeout_ms)
    reader = conn.request(INIT_PRODUCER_ID, 1, body.bytes(), flexible=False)
    reader.int32()  # throttle_time_ms
    return ProducerIdAndEpoch(reader.int16(), reader.int64(), reader.int16())


# ---------------------------------------------------------------- record batch v2
@dataclass
class Record:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)


def _encode_record(record: Record, offset_delta: int, timestamp_delta: int) -> bytes:
    """Record grammar: length varint, attributes int8, timestampDelta varint, offsetDelta varint,
    key (varint length, -1 null), value (same), headers count varint, [key, value] per header."""
    body = Writer().int8(0).varint(timestamp_delta).varint(offset_delta)
    for chunk in (record.key, record.value):
        if chunk is None:
            body.varint(-1)
        else:
            body.varint(len(chunk)).raw(chunk)
    body.varint(len(record.headers))
    for header_key, header_value in record.headers:
        encoded_key = header_key.encode()
        body.varint(len(encoded_key)).raw(encoded_key)
        if header_value is None:
            body.varint(-1)
        else:
            body.varint(len(header_value)).raw(header_value)
    payload = body.bytes()
    return Writer().varint(len(payload)).raw(payload).bytes()


def record_batch(
    records: list[Record],
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
    base_timestamp: int | None = None,
    attributes: int = COMPRESSION_NONE,
) -> bytes:
    """Build an uncompressed record batch, magic 2.

    Layout: baseOffset int64, batchLength int32 (bytes after this field), partitionLeaderEpoch
    int32, magic int8 = 2, crc uint32 (CRC-32C of everything after it), attributes int16,
    lastOffsetDelta int32, baseTimestamp int64, maxTimestamp int64, producerId int64,
    producerEpoch int16, baseSequence int32, recordCount int32, records.
    """
    timestamp = int(time.time() * 1000) if base_timestamp is None else base_timestamp
    encoded_records = b"".join(_encode_record(record, delta, 0) for delta, record in enumerate(records))
    after_crc = (
        Writer()
        .int16(attributes)
        .int32(len(records) - 1)  # lastOffsetDelta
        .int64(timestamp)  # baseTimestamp
        .int64(timestamp)  # maxTimestamp
        .int64(producer_id)
        .int16(producer_epoch)
        .int32(base_sequence)
        .int32(len(records))
        .raw(encoded_records)
        .bytes()
    )
    after_length = Writer().int32(-1).int8(2).uint32(crc32c.crc32c(after_crc)).raw(after_crc).bytes()
    return Writer().int64(0).int32(len(after_length)).raw(after_length).bytes()


# ---------------------------------------------------------------- Produce v9 (flexible)
@dataclass
class PartitionProduceResult:
    error_code: int
    base_offset: int
    log_start_offset: int
    error_message: str | None
    current_leader: tuple[int, int] | None = None  # v10+ tag 0: (leader_id, leader_epoch), KIP-951
    node_endpoints: dict[int, BrokerInfo] = field(default_factory=dict)  # v10+ response tag 0


def _read_tagged_fields(reader: Reader, readers: dict[int, object]) -> None:
    """A tagged-field section: each known tag's value is parsed by ``readers[tag](reader)``."""
    for _ in range(reader.uvarint()):
        tag, size = reader.uvarint(), reader.uvarint()
        value = Reader(reader.take(size))
        if tag in readers:
            readers[tag](value)  # type: ignore[operator]


def _read_node_endpoints(reader: Reader) -> dict[int, BrokerInfo]:
    endpoints = {}
    for _ in range(reader.compact_array_length()):
        node_id, host, port, rack = reader.int32(), reader.compact_string() or "", reader.int32(), reader.compact_string()
        reader.skip_tagged_fields()
        endpoints[node_id] = BrokerInfo(node_id, host, port, rack)
    return endpoints


def produce(
    conn: Connection,
    topic: str,
    partition: int,
    batch: bytes,
    acks: int = -1,
    timeout_ms: int = 10000,
    transactional_id: str | None = None,
    version: int = 9,
) -> PartitionProduceResult | None:
    """Produce v9 or v10 of one batch to one partition.  Returns None for acks=0 (Kafka sends no
    response).  v10 has the same request body; its response may carry the partition's
    ``current_leader`` and the leader's ``node_endpoints`` in tagged fields (KIP-951)."""
    if version not in (9, 10):
        raise ValueError("raw.produce speaks Produce v9 and v10")
    body = (
        Writer()
        .compact_string(transactional_id)
        .int16(acks)
        .int32(timeout_ms)
        .uvarint(1 + 1)  # one topic
        .compact_string(topic)
        .uvarint(1 + 1)  # one partition
        .int32(partition)
        .compact_bytes(batch)
        .empty_tagged_fields()  # partition
        .empty_tagged_fields()  # topic
        .empty_tagged_fields()  # request
        .bytes()
    )
    correlation_id = conn.send(PRODUCE, version, body, flexible=True)
    if acks == 0:
        return None
    reader = conn.receive(correlation_id, flexible_header=True)
    result = None
    for _ in range(reader.compact_array_length()):
        reader.compact_string()  # topic name
        for _ in range(reader.compact_array_length()):
            reader.int32()  # partition index
            error_code, base_offset = reader.int16(), reader.int64()
            reader.int64()  # log_append_time_ms
            log_start_offset = reader.int64()
            for _ in range(reader.compact_array_length()):
                reader.int32()  # batch_index
                reader.compact_string()  # batch_index_error_message
                reader.skip_tagged_fields()
            error_message = reader.compact_string()
            result = PartitionProduceResult(error_code, base_offset, log_start_offset, error_message)
            _read_tagged_fields(reader, {0: lambda tagged, r=result: setattr(
                r, "current_leader", (tagged.int32(), tagged.int32()))})
        reader.skip_tagged_fields()
    if result is None:
        raise AssertionError("Produce response carried no partition")
    reader.int32()  # throttle_time_ms
    _read_tagged_fields(reader, {0: lambda tagged: result.node_endpoints.update(_read_node_endpoints(tagged))})
    return result


# ---------------------------------------------------------------- ListOffsets v1
@dataclass
class ListedOffset:
    error_code: int
    timestamp: int
    offset: int


def list_offset(conn: Connection, topic: str, partition: int, timestamp: int) -> ListedOffset:
    """ListOffsets v1 for one partition (timestamp -1 latest, -2 earliest, else first offset at/after)."""
    body = (
        Writer().int32(-1).int32(1).string(topic).int32(1).int32(partition).int64(timestamp).bytes()  # replica_id=-1
    )
    reader = conn.request(LIST_OFFSETS, 1, body, flexible=False)
    result = None
    for _ in range(reader.array_length()):
        reader.string()
        for _ in range(reader.array_length()):
            reader.int32()
            result = ListedOffset(reader.int16(), reader.int64(), reader.int64())
    if result is None:
        raise AssertionError("ListOffsets response carried no partition")
    return result


# ---------------------------------------------------------------- Fetch v4
@dataclass
class BatchSummary:
    """The header fields of one fetched record batch (records are not decoded)."""

    base_offset: int
    last_offset: int
    record_count: int
    producer_id: int
    base_sequence: int


@dataclass
class FetchedPartition:
    error_code: int
    high_watermark: int
    batches: list[BatchSummary]

    @property
    def record_count(self) -> int:
        return sum(batch.record_count for batch in self.batches)


def _summarise_batches(records: bytes) -> list[BatchSummary]:
    """Walk the batch headers (see :func:`record_batch` for the layout); a partial trailing batch,
    which Kafka may return when it hits the size limit, is ignored."""
    batches = []
    position = 0
    while len(records) - position >= 61:  # 61 = size of the batch header
        base_offset, batch_length = struct.unpack_from(">qi", records, position)
        if len(records) - position < 12 + batch_length:
            break
        header = Reader(records[position + 12 : position + 12 + batch_length])
        header.int32()  # partitionLeaderEpoch
        header.int8()  # magic
        header.int32()  # crc
        header.int16()  # attributes
        last_offset_delta = header.int32()
        header.int64()  # baseTimestamp
        header.int64()  # maxTimestamp
        producer_id = header.int64()
        header.int16()  # producerEpoch
        base_sequence = header.int32()
        record_count = header.int32()
        batches.append(BatchSummary(base_offset, base_offset + last_offset_delta, record_count, producer_id, base_sequence))
        position += 12 + batch_length
    return batches


def summarise_batches(records: bytes) -> list[BatchSummary]:
    """The header of each whole batch in a Fetch answer's ``records``, for the probes that decode
    the rest of the answer with refka's codec (:func:`conformance.speak.fetch`)."""
    return _summarise_batches(records)


def fetch(conn: Connection, topic: str, partition: int, offset: int, max_wait_ms: int = 500,
          min_bytes: int = 1, max_bytes: int = 1024 * 1024) -> FetchedPartition:
    """Fetch v4 (read_uncommitted) of one partition (:func:`send_fetch`, then :func:`receive_fetch`)."""
    return receive_fetch(conn, send_fetch(conn, topic, partition, offset, max_wait_ms, min_bytes, max_bytes))


# ---------------------------------------------------------------- classic consumer group protocol
@dataclass
class Coordinator:
    error_code: int
    node_id: int
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def find_coordinator(conn: Connection, key: str, key_type: int = 0) -> Coordinator:
    """FindCoordinator v1 (key_type 0 = group, 1 = transaction)."""
    reader = conn.request(FIND_COORDINATOR, 1, Writer().string(key).int8(key_type).bytes(), flexible=False)
    reader.int32()  # throttle_time_ms
    error_code = reader.int16()
    reader.string()  # error_message
    return Coordinator(error_code, reader.int32(), reader.string() or "", reader.int32())


def group_coordinator(address: str, group_id: str, timeout: float = 20.0) -> Connection:
    """A connection to the group's coordinator once it answers for the group, retrying the
    retriable errors as a client does: COORDINATOR_NOT_AVAILABLE (15) while __consumer_offsets is
    being created, then NOT_COORDINATOR (16) or COORDINATOR_LOAD_IN_PROGRESS (14) while the named
    broker is still loading the group's offsets partition (Kafka can name itself a moment early).

    A group-level OffsetFetch of all topics is the probe. It only waits out those retriable
    answers: any other answer, or one this helper cannot read, is left for the tests to judge (one
    broker's quirk in OffsetFetch must not fail every group test)."""
    deadline = time.monotonic() + timeout
    while True:
        with Connection.to(address) as conn:
            found = find_coordinator(conn, group_id)
        code = found.error_code
        if code == 0:
            code = _probe_group_offsets(found.address, group_id)
            if code not in (14, 15, 16):
                return Connection(found.host, found.port)
        if code not in (14, 15, 16) or time.monotonic() > deadline:
            raise AssertionError(f"the coordinator of group {group_id!r} kept answering error {code}")
        time.sleep(0.2)


def _probe_group_offsets(address: str, group_id: str) -> int | None:
    """The group-level error of OffsetFetch v5 (all topics) at ``address``; None when unreadable."""
    try:
        with Connection.to(address) as conn:
            reader = conn.request(OFFSET_FETCH, 5, Writer().string(group_id).int32(-1).bytes(), flexible=False)
            reader.int32()  # throttle_time_ms
            for _ in range(reader.array_length()):  # every committed topic (none for a new group)
                reader.string()
                for _ in range(reader.array_length()):
                    reader.int32(), reader.int64(), reader.int32(), reader.string(), reader.int16()
            return reader.int16()
    except (OSError, ValueError, IndexError, struct.error, ConnectionClosed):
        return None


@dataclass
class JoinGroupResult:
    error_code: int
    generation_id: int
    protocol_name: str | None
    leader: str
    member_id: str
    members: list[str]


def join_group(conn: Connection, group_id: str, member_id: str = "", group_instance_id: str | None = None,
               session_timeout_ms: int = 10000, rebalance_timeout_ms: int = 10000,
               protocol_type: str = "consumer", protocols: Sequence[tuple[str, bytes]] = (("range", b""),)
               ) -> JoinGroupResult:
    """JoinGroup v5.  Since v4 a new dynamic member first gets MEMBER_ID_REQUIRED (79) with its id
    (KIP-394) and must join again with it; callers see that first answer as is."""
    body = (
        Writer().string(group_id).int32(session_timeout_ms).int32(rebalance_timeout_ms).string(member_id)
        .string(group_instance_id).string(protocol_type).int32(len(protocols))
    )
    for name, metadata_bytes in protocols:
        body.string(name).int32_bytes(metadata_bytes)
    reader = conn.request(JOIN_GROUP, 5, body.bytes(), flexible=False)
    reader.int32()  # throttle_time_ms
    error_code, generation_id = reader.int16(), reader.int32()
    protocol_name, leader, joined_member_id = reader.string(), reader.string() or "", reader.string() or ""
    members = []
    for _ in range(reader.array_length()):
        members.append(reader.string() or "")
        reader.string()  # group_instance_id
        reader.int32_bytes()  # metadata
    return JoinGroupResult(error_code, generation_id, protocol_name, leader, joined_member_id, members)


def sync_group(conn: Connection, group_id: str, generation_id: int, member_id: str,
               assignments: dict[str, bytes], group_instance_id: str | None = None) -> int:
    """SyncGroup v3; returns the error code."""
    body = Writer().string(group_id).int32(generation_id).string(member_id).string(group_instance_id)
    body.int32(len(assignments))
    for assigned_member, assignment in assignments.items():
        body.string(assigned_member).int32_bytes(assignment)
    reader = conn.request(SYNC_GROUP, 3, body.bytes(), flexible=False)
    reader.int32()  # throttle_time_ms
    return reader.int16()


def heartbeat(conn: Connection, group_id: str, generation_id: int, member_id: str,
              group_instance_id: str | None = None) -> int:
    """Heartbeat v3; returns the error code."""
    body = Writer().string(group_id).int32(generation_id).string(member_id).string(group_instance_id)
    reader = conn.request(HEARTBEAT, 3, body.bytes(), flexible=False)
    reader.int32()  # throttle_time_ms
    return reader.int16()


def offset_commit(conn: Connection, group_id: str, generation_id: int, member_id: str, topic: str,
                  offsets: dict[int, int], group_instance_id: str | None = None) -> dict[int, int]:
    """OffsetCommit v7 of ``{partition: offset}``; returns ``{partition: error_code}``.

    generation_id -1 with an empty member id is a "simple" commit outside any generation."""
    body = (
        Writer().string(group_id).int32(generation_id).string(member_id).string(group_instance_id)
        .int32(1).string(topic).int32(len(offsets))
    )
    for partition, offset in offsets.items():
        body.int32(partition).int64(offset).int32(-1).string(None)
    reader = conn.request(OFFSET_COMMIT, 7, body.bytes(), flexible=False)
    reader.int32()  # throttle_time_ms
    errors = {}
    for _ in range(reader.array_length()):
        reader.string()
        for _ in range(reader.array_length()):
            partition = reader.int32()
            errors[partition] = reader.int16()
    return errors


@dataclass
class CommittedOffset:
    offset: int
    error_code: int


def offset_fetch(conn: Connection, group_id: str, topic: str, partitions: Sequence[int]) -> dict[int, CommittedOffset]:
    """OffsetFetch v5; offset -1 means nothing committed."""
    return offset_fetch_with_group_error(conn, group_id, topic, partitions)[1]


def committed_offset(bootstrap: str, group_id: str, topic: str, partition: int = 0) -> CommittedOffset:
    """The group's committed offset of one partition, asked of the group's coordinator."""
    with group_coordinator(bootstrap.split(",")[0], group_id) as conn:
        return offset_fetch(conn, group_id, topic, [partition])[partition]


def committed_offset_once(bootstrap: str, group_id: str, topic: str, expected: int, timeout: float = 30.0,
                          partition: int = 0) -> CommittedOffset:
    """The group's committed offset once it is ``expected``, or the last answer after ``timeout``: a
    transaction's offsets are applied when its commit marker reaches __consumer_offsets, which may
    follow the EndTxn answer."""
    deadline = time.monotonic() + timeout
    while True:
        committed = committed_offset(bootstrap, group_id, topic, partition)
        if (committed.error_code, committed.offset) == (0, expected) or time.monotonic() > deadline:
            return committed
        time.sleep(0.1)


def offset_fetch_with_group_error(conn: Connection, group_id: str, topic: str, partitions: Sequence[int]
                                  ) -> tuple[int, dict[int, CommittedOffset]]:
    """OffsetFetch v5: (the group-level error code that v2+ carries after the topics, e.g.
    COORDINATOR_LOAD_IN_PROGRESS (14), and the per-partition answers)."""
    body = Writer().string(group_id).int32(1).string(topic).int32(len(partitions))
    for partition in partitions:
        body.int32(partition)
    reader = conn.request(OFFSET_FETCH, 5, body.bytes(), flexible=False)
    reader.int32()  # throttle_time_ms
    committed = {}
    for _ in range(reader.array_length()):
        reader.string()
        for _ in range(reader.array_length()):
            partition, offset = reader.int32(), reader.int64()
            reader.int32()  # committed_leader_epoch
            reader.string()  # metadata
            committed[partition] = CommittedOffset(offset, reader.int16())
    return reader.int16(), committed


# ---------------------------------------------------------------- leader epochs (KIP-320)
def list_offset_v4(conn: Connection, topic: str, partition: int, timestamp: int,
                   current_leader_epoch: int = -1) -> ListedOffset:
    """ListOffsets v4 for one partition, carrying the client's ``current_leader_epoch`` (-1: none)."""
    body = (
        Writer().int32(-1).int8(0)  # replica_id (consumer), isolation_level read_uncommitted
        .int32(1).string(topic).int32(1).int32(partition).int32(current_leader_epoch).int64(timestamp).bytes()
    )
    reader = conn.request(LIST_OFFSETS, 4, body, flexible=False)
    reader.int32()  # throttle_time_ms
    result = None
    for _ in range(reader.array_length()):
        reader.string()
        for _ in range(reader.array_length()):
            reader.int32()
            result = ListedOffset(reader.int16(), reader.int64(), reader.int64())
            reader.int32()  # leader_epoch
    if result is None:
        raise AssertionError("ListOffsets response carried no partition")
    return result


@dataclass
class FetchedPartitionV11(FetchedPartition):
    preferred_read_replica: int = -1  # KIP-392: -1 means "fetch from me"


def fetch_v11(conn: Connection, topic: str, partition: int, offset: int, current_leader_epoch: int = -1,
              rack_id: str = "", max_wait_ms: int = 100, max_bytes: int = 1024 * 1024) -> FetchedPartitionV11:
    """Sessionless Fetch v11 (session id 0, epoch -1) of one partition from a consumer: carries the
    ``current_leader_epoch`` (KIP-320) and the consumer's ``rack_id``; the answer may name a
    ``preferred_read_replica`` (KIP-392)."""
    body = (
        Writer().int32(-1).int32(max_wait_ms).int32(1).int32(max_bytes).int8(0)  # replica, wait, min, max, isolation
        .int32(0).int32(-1)  # session_id, session_epoch (FINAL_EPOCH: no session)
        .int32(1).string(topic).int32(1)
        .int32(partition).int32(current_leader_epoch).int64(offset).int64(-1).int32(max_bytes)
        .int32(0)  # forgotten_topics_data
        .string(rack_id).bytes()
    )
    reader = conn.request(FETCH, 11, body, flexible=False)
    reader.int32()  # throttle_time_ms
    reader.int16()  # top-level error_code (sessions only)
    reader.int32()  # session_id
    result = None
    for _ in range(reader.array_length()):
        reader.string()
        for _ in range(reader.array_length()):
            reader.int32()  # partition
            error_code, high_watermark = reader.int16(), reader.int64()
            reader.int64()  # last_stable_offset
            reader.int64()  # log_start_offset
            for _ in range(max(reader.array_length(), 0)):  # aborted transactions
                reader.int64()
                reader.int64()
            preferred_read_replica = reader.int32()
            records = reader.int32_bytes() or b""
            result = FetchedPartitionV11(error_code, high_watermark, _summarise_batches(records), preferred_read_replica)
    if result is None:
        raise AssertionError("Fetch response carried no partition")
    return result


@dataclass
class EpochEndOffset:
    error_code: int
    leader_epoch: int
    end_offset: int


def offset_for_leader_epoch(conn: Connection, topic: str, partition: int, leader_epoch: int,
                            current_leader_epoch: int = -1) -> EpochEndOffset:
    """OffsetForLeaderEpoch v3 from a consumer (replica_id -1): the end offset of ``leader_epoch``."""
    body = (
        Writer().int32(-1).int32(1).string(topic).int32(1)
        .int32(partition).int32(current_leader_epoch).int32(leader_epoch).bytes()
    )
    reader = conn.request(OFFSET_FOR_LEADER_EPOCH, 3, body, flexible=False)
    reader.int32()  # throttle_time_ms
    result = None
    for _ in range(reader.array_length()):
        reader.string()
        for _ in range(reader.array_length()):
            error_code = reader.int16()
            reader.int32()  # partition
            result = EpochEndOffset(error_code, reader.int32(), reader.int64())
    if result is None:
        raise AssertionError("OffsetForLeaderEpoch response carried no partition")
    return result


# ---------------------------------------------------------------- ElectLeaders v1 (KIP-460)
@dataclass
class ElectionResult:
    error_code: int  # top-level (v1+): e.g. CLUSTER_AUTHORIZATION_FAILED
    partitions: dict[int, tuple[int, str | None]]  # partition -> (error_code, error_message)


def elect_leaders(conn: Connection, topic: str, partitions: Sequence[int], election_type: int = PREFERRED_ELECTION,
                  timeout_ms: int = 30000) -> ElectionResult:
    """ElectLeaders v1 for partitions of one topic (``election_type`` 0 preferred, 1 unclean)."""
    body = Writer().int8(election_type).int32(1).string(topic).int32(len(partitions))
    for partition in partitions:
        body.int32(partition)
    body.int32(timeout_ms)
    reader = conn.request(ELECT_LEADERS, 1, body.bytes(), flexible=False)
    reader.int32()  # throttle_time_ms
    error_code = reader.int16()
    results = {}
    for _ in range(reader.array_length()):
        reader.string()
        for _ in range(reader.array_length()):
            partition = reader.int32()
            results[partition] = (reader.int16(), reader.string())
    return ElectionResult(error_code, results)


# ---------------------------------------------------------------- topic ids and Fetch v16 (KIP-516, KIP-951)
def _compact_int32_array(reader: Reader) -> list[int]:
    return [reader.int32() for _ in range(max(reader.compact_array_length(), 0))]


def topic_id(conn: Connection, topic: str) -> bytes:
    """The topic's 16-byte id from Metadata v12 (flexible; topic ids since v10, KIP-516)."""
    body = (
        Writer().uvarint(1 + 1).raw(bytes(16)).compact_string(topic).empty_tagged_fields()
        .boolean(False).boolean(False).empty_tagged_fields().bytes()  # auto-create, topic authorized ops
    )
    reader = conn.request(METADATA, 12, body, flexible=True)
    reader.int32()  # throttle_time_ms
    for _ in range(reader.compact_array_length()):  # brokers
        reader.int32()
        reader.compact_string()
        reader.int32()
        reader.compact_string()
        reader.skip_tagged_fields()
    reader.compact_string()  # cluster_id
    reader.int32()  # controller_id
    for _ in range(reader.compact_array_length()):
        error_code, name, identifier = reader.int16(), reader.compact_string(), reader.take(16)
        if name == topic:
            if error_code != 0:
                raise AssertionError(f"Metadata v12 for {topic}: error {error_code}")
            return identifier
        raise AssertionError(f"Metadata v12 answered topic {name}, asked {topic}")
    raise AssertionError(f"Metadata v12 carried no topic {topic}")


@dataclass
class FetchedPartitionV16(FetchedPartitionV11):
    current_leader: tuple[int, int] | None = None  # partition tag 1: (leader_id, leader_epoch), KIP-951
    node_endpoints: dict[int, BrokerInfo] = field(default_factory=dict)  # response tag 0 (v16+)


def fetch_v16(conn: Connection, topic_uuid: bytes, partition: int, offset: int, current_leader_epoch: int = -1,
              rack_id: str = "", max_wait_ms: int = 100, max_bytes: int = 1024 * 1024) -> FetchedPartitionV16:
    """Sessionless Fetch v16 (flexible, topics by id) of one partition from a consumer.  On
    NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH the answer may carry the partition's
    ``current_leader`` and the leader's ``node_endpoints`` (KIP-951)."""
    body = (
        Writer().int32(max_wait_ms).int32(1).int32(max_bytes).int8(0)  # wait, min, max bytes, isolation
        .int32(0).int32(-1)  # session_id, session_epoch (FINAL_EPOCH: no session)
        .uvarint(1 + 1).raw(topic_uuid).uvarint(1 + 1)
        .int32(partition).int32(current_leader_epoch).int64(offset).int32(-1).int64(-1).int32(max_bytes)
        .empty_tagged_fields()  # partition
        .empty_tagged_fields()  # topic
        .uvarint(0 + 1)  # forgotten_topics_data: empty
        .compact_string(rack_id)
        .empty_tagged_fields()  # request
        .bytes()
    )
    reader = conn.request(FETCH, 16, body, flexible=True)
    reader.int32()  # throttle_time_ms
    reader.int16()  # top-level error_code (sessions only)
    reader.int32()  # session_id
    result = None
    for _ in range(reader.compact_array_length()):
        reader.take(16)  # topic_id
        for _ in range(reader.compact_array_length()):
            reader.int32()  # partition
            error_code, high_watermark = reader.int16(), reader.int64()
            reader.int64()  # last_stable_offset
            reader.int64()  # log_start_offset
            for _ in range(max(reader.compact_array_length(), 0)):  # aborted transactions
                reader.int64()
                reader.int64()
                reader.skip_tagged_fields()
            preferred_read_replica = reader.int32()
            length_plus_one = reader.uvarint()
            records = reader.take(length_plus_one - 1) if length_plus_one else b""
            result = FetchedPartitionV16(error_code, high_watermark, _summarise_batches(records), preferred_read_replica)
            _read_tagged_fields(reader, {1: lambda tagged, r=result: setattr(
                r, "current_leader", (tagged.int32(), tagged.int32()))})
        reader.skip_tagged_fields()
    if result is None:
        raise AssertionError("Fetch response carried no partition")
    _read_tagged_fields(reader, {0: lambda tagged: result.node_endpoints.update(_read_node_endpoints(tagged))})
    return result


# ================================================================ versions chosen from ApiVersions
# The helpers below each speak a range of versions (SPOKEN_VERSIONS); a caller picks one with
# :func:`negotiate` from the range the broker advertises, as a client does, instead of pinning one
# that a broker might serve differently from the versions clients use.  Where the range crosses
# into flexible versions (KIP-482) the same helper writes compact strings and tagged fields.
LEAVE_GROUP = 13
DESCRIBE_GROUPS = 15
CREATE_TOPICS = 19
DELETE_TOPICS = 20
DELETE_RECORDS = 21
DESCRIBE_CONFIGS = 32
CREATE_PARTITIONS = 37
INCREMENTAL_ALTER_CONFIGS = 44

# API key -> (lowest, highest) version the helper speaks, and the first flexible version.
SPOKEN_VERSIONS: dict[int, tuple[int, int]] = {
    INIT_PRODUCER_ID: (0, 6),
    LEAVE_GROUP: (3, 5),  # v3+: a batch of members, each with its group.instance.id (KIP-345)
    DESCRIBE_GROUPS: (4, 6),  # v4+: each member's group.instance.id
    CREATE_TOPICS: (2, 7),
    DELETE_TOPICS: (1, 6),
    DELETE_RECORDS: (0, 2),
    DESCRIBE_CONFIGS: (1, 4),
    CREATE_PARTITIONS: (0, 3),
    INCREMENTAL_ALTER_CONFIGS: (0, 1),
}
FIRST_FLEXIBLE_VERSION: dict[int, int] = {
    INIT_PRODUCER_ID: 2, LEAVE_GROUP: 4, DESCRIBE_GROUPS: 5, CREATE_TOPICS: 5, DELETE_TOPICS: 4,
    DELETE_RECORDS: 2, DESCRIBE_CONFIGS: 4, CREATE_PARTITIONS: 2, INCREMENTAL_ALTER_CONFIGS: 1,
}


def negotiate(advertised: ApiVersionsResult, api_key: int) -> int | None:
    """The highest version of ``api_key`` that the broker advertises and this module speaks; None
    when the two ranges do not meet (the broker lacks what the helper can say)."""
    low, high = SPOKEN_VERSIONS[api_key]
    theirs = advertised.apis.get(api_key)
    if theirs is None:
        return None
    low, high = max(low, theirs.min_version), min(high, theirs.max_version)
    return high if low <= high else None


def is_flexible(api_key: int, version: int) -> bool:
    return version >= FIRST_FLEXIBLE_VERSION[api_key]


class SetupFailed(AssertionError):
    """The broker refused a step a test needs before it can check anything (creating its topic,
    reading a config).  The message starts with ``setup failed:`` and names the request and the
    broker's answer, so a report tells a broken setup from a broken behaviour."""

    def __init__(self, what: str) -> None:
        super().__init__(f"setup failed: {what}")


@dataclass
class ApiError:
    """An error code with the optional message Kafka sends beside it."""

    error_code: int
    error_message: str | None = None

    def __str__(self) -> str:
        from reference.errors import lookup

        text = str(lookup(self.error_code))
        return f"{text}: {self.error_message}" if self.error_message else text


# Classic or compact forms of the same field, chosen by the request's flexibility.
def _put_string(writer: Writer, value: str | None, flexible: bool) -> Writer:
    return writer.compact_string(value) if flexible else writer.string(value)


def _put_array_length(writer: Writer, count: int | None, flexible: bool) -> Writer:
    """An array's element count; None writes a null array."""
    if flexible:
        return writer.uvarint(0 if count is None else count + 1)
    return writer.int32(-1 if count is None else count)


def _put_tags(writer: Writer, flexible: bool) -> Writer:
    return writer.empty_tagged_fields() if flexible else writer


def _get_string(reader: Reader, flexible: bool) -> str | None:
    return reader.compact_string() if flexible else reader.string()


def _get_array_length(reader: Reader, flexible: bool) -> int:
    """An array's element count; -1 for a null array."""
    return reader.compact_array_length() if flexible else reader.array_length()


def _get_bytes(reader: Reader, flexible: bool) -> bytes | None:
    if not flexible:
        return reader.int32_bytes()
    length_plus_one = reader.uvarint()
    return None if length_plus_one == 0 else reader.take(length_plus_one - 1)


def _skip_tags(reader: Reader, flexible: bool) -> None:
    if flexible:
        reader.skip_tagged_fields()


# ---------------------------------------------------------------- InitProducerId v0-v6
def init_producer_id_at(conn: Connection, version: int, transactional_id: str | None = None,
                        timeout_ms: int = 60000, producer_id: int = -1, producer_epoch: int = -1
                        ) -> ProducerIdAndEpoch:
    """InitProducerId at ``version`` (flexible from v2).  v3+ carries the producer's current id and
    epoch (KIP-360, -1 for a new producer); v6 adds the two-phase-commit flags of KIP-939, sent
    false; its two extra response fields are read and dropped."""
    flexible = is_flexible(INIT_PRODUCER_ID, version)
    body = _put_string(Writer(), transactional_id, flexible).int32(timeout_ms)
    if version >= 3:
        body.int64(producer_id).int16(producer_epoch)
    if version >= 6:
        body.boolean(False).boolean(False)  # enable_2pc, keep_prepared_txn
    reader = conn.request(INIT_PRODUCER_ID, version, _put_tags(body, flexible).bytes(), flexible)
    reader.int32()  # throttle_time_ms
    return ProducerIdAndEpoch(reader.int16(), reader.int64(), reader.int16())


# ---------------------------------------------------------------- topics: CreateTopics, DeleteTopics, CreatePartitions
@dataclass
class NewTopic:
    name: str
    partitions: int = 1
    replication_factor: int = 1
    configs: dict[str, str | None] = field(default_factory=dict)


def create_topics(conn: Connection, topics: Sequence[NewTopic], version: int, timeout_ms: int = 20000,
                  validate_only: bool = False) -> dict[str, ApiError]:
    """CreateTopics v2-v7 (flexible from v5) without explicit replica assignments; returns each
    topic's error.  The controller places the replicas; any broker forwards the request to it."""
    flexible = is_flexible(CREATE_TOPICS, version)
    body = _put_array_length(Writer(), len(topics), flexible)
    for topic in topics:
        _put_string(body, topic.name, flexible).int32(topic.partitions).int16(topic.replication_factor)
        _put_array_length(body, 0, flexible)  # assignments
        _put_array_length(body, len(topic.configs), flexible)
        for name, value in topic.configs.items():
            _put_tags(_put_string(_put_string(body, name, flexible), value, flexible), flexible)
        _put_tags(body, flexible)
    _put_tags(body.int32(timeout_ms).boolean(validate_only), flexible)
    reader = conn.request(CREATE_TOPICS, version, body.bytes(), flexible)
    reader.int32()  # throttle_time_ms
    results = {}
    for _ in range(_get_array_length(reader, flexible)):
        name = _get_string(reader, flexible) or ""
        if version >= 7:
            reader.take(16)  # topic_id
        result = ApiError(reader.int16(), _get_string(reader, flexible))
        if version >= 5:
            reader.int32()  # num_partitions
            reader.int16()  # replication_factor
            for _ in range(_get_array_length(reader, flexible)):  # configs (null when not described)
                _get_string(reader, flexible)  # name
                _get_string(reader, flexible)  # value
                reader.boolean()  # read_only
                reader.int8()  # config_source
                reader.boolean()  # is_sensitive
                _skip_tags(reader, flexible)
        _skip_tags(reader, flexible)  # topic_config_error_code (tag 0) is not used
        results[name] = result
    return results


def delete_topics(conn: Connection, names: Sequence[str], version: int, timeout_ms: int = 20000
                  ) -> dict[str, ApiError]:
    """DeleteTopics v1-v6 by name (flexible from v4; v6 names topics in a struct beside a topic id,
    sent as zeros); returns each topic's error."""
    flexible = is_flexible(DELETE_TOPICS, version)
    body = _put_array_length(Writer(), len(names), flexible)
    for name in names:
        if version >= 6:
            _put_tags(_put_string(body, name, flexible).raw(bytes(16)), flexible)
        else:
            _put_string(body, name, flexible)
    _put_tags(body.int32(timeout_ms), flexible)
    reader = conn.request(DELETE_TOPICS, version, body.bytes(), flexible)
    reader.int32()  # throttle_time_ms
    results = {}
    for _ in range(_get_array_length(reader, flexible)):
        name = _get_string(reader, flexible) or ""
        if version >= 6:
            reader.take(16)  # topic_id
        error_code = reader.int16()
        message = _get_string(reader, flexible) if version >= 5 else None
        _skip_tags(reader, flexible)
        results[name] = ApiError(error_code, message)
    return results


def create_partitions(conn: Connection, topic: str, count: int, version: int, timeout_ms: int = 20000,
                      validate_only: bool = False) -> ApiError:
    """CreatePartitions v0-v3 (flexible from v2): grow ``topic`` to ``count`` partitions, replicas
    placed by the controller."""
    flexible = is_flexible(CREATE_PARTITIONS, version)
    body = _put_array_length(Writer(), 1, flexible)
    _put_string(body, topic, flexible).int32(count)
    _put_tags(_put_array_length(body, None, flexible), flexible)  # assignments: null
    _put_tags(body.int32(timeout_ms).boolean(validate_only), flexible)
    reader = conn.request(CREATE_PARTITIONS, version, body.bytes(), flexible)
    reader.int32()  # throttle_time_ms
    result = None
    for _ in range(_get_array_length(reader, flexible)):
        name = _get_string(reader, flexible)
        answer = ApiError(reader.int16(), _get_string(reader, flexible))
        _skip_tags(reader, flexible)
        if name == topic:
            result = answer
    if result is None:
        raise AssertionError(f"CreatePartitions response carried no result for {topic}")
    return result


# ---------------------------------------------------------------- configs: DescribeConfigs, IncrementalAlterConfigs
TOPIC_RESOURCE = 2  # ConfigResource.Type
BROKER_RESOURCE = 4
CONFIG_SET = 0  # IncrementalAlterConfigs operations (KIP-339)
CONFIG_DELETE = 1


@dataclass
class ConfigEntry:
    value: str | None
    read_only: bool
    config_source: int  # DescribeConfigs v1+: 1 dynamic topic, 4 static broker, 5 default, ...
    is_sensitive: bool


@dataclass
class DescribedConfigs:
    error: ApiError
    entries: dict[str, ConfigEntry]


def describe_configs(conn: Connection, resource_type: int, resource_name: str, version: int,
                     keys: Sequence[str] | None = None) -> DescribedConfigs:
    """DescribeConfigs v1-v4 (flexible from v4) of one resource: every config when ``keys`` is
    None, without synonyms or documentation."""
    flexible = is_flexible(DESCRIBE_CONFIGS, version)
    body = _put_array_length(Writer(), 1, flexible)
    _put_string(body.int8(resource_type), resource_name, flexible)
    _put_array_length(body, None if keys is None else len(keys), flexible)
    for key in keys or ():
        _put_string(body, key, flexible)
    _put_tags(body, flexible).boolean(False)  # include_synonyms
    if version >= 3:
        body.boolean(False)  # include_documentation
    reader = conn.request(DESCRIBE_CONFIGS, version, _put_tags(body, flexible).bytes(), flexible)
    reader.int32()  # throttle_time_ms
    result = None
    for _ in range(_get_array_length(reader, flexible)):
        error = ApiError(reader.int16(), _get_string(reader, flexible))
        reader.int8()  # resource_type
        name = _get_string(reader, flexible)
        entries = {}
        for _ in range(max(_get_array_length(reader, flexible), 0)):
            key = _get_string(reader, flexible) or ""
            value, read_only, source, sensitive = (_get_string(reader, flexible), reader.boolean(), reader.int8(),
                                                   reader.boolean())
            for _ in range(max(_get_array_length(reader, flexible), 0)):  # synonyms
                _get_string(reader, flexible)
                _get_string(reader, flexible)
                reader.int8()
                _skip_tags(reader, flexible)
            if version >= 3:
                reader.int8()  # config_type
                _get_string(reader, flexible)  # documentation
            _skip_tags(reader, flexible)
            entries[key] = ConfigEntry(value, read_only, source, sensitive)
        _skip_tags(reader, flexible)
        if name == resource_name:
            result = DescribedConfigs(error, entries)
    if result is None:
        raise AssertionError(f"DescribeConfigs response carried no result for {resource_name}")
    return result


def incremental_alter_configs(conn: Connection, resource_type: int, resource_name: str,
                              changes: Sequence[tuple[str, int, str | None]], version: int,
                              validate_only: bool = False) -> ApiError:
    """IncrementalAlterConfigs v0-v1 (flexible from v1) of one resource: ``changes`` are
    ``(name, operation, value)`` with CONFIG_SET / CONFIG_DELETE (KIP-339)."""
    flexible = is_flexible(INCREMENTAL_ALTER_CONFIGS, version)
    body = _put_array_length(Writer(), 1, flexible)
    _put_string(body.int8(resource_type), resource_name, flexible)
    _put_array_length(body, len(changes), flexible)
    for name, operation, value in changes:
        _put_tags(_put_string(_put_string(body, name, flexible).int8(operation), value, flexible), flexible)
    _put_tags(body, flexible)
    reader = conn.request(INCREMENTAL_ALTER_CONFIGS, version, _put_tags(body.boolean(validate_only), flexible).bytes(),
                          flexible)
    reader.int32()  # throttle_time_ms
    result = None
    for _ in range(_get_array_length(reader, flexible)):
        answer = ApiError(reader.int16(), _get_string(reader, flexible))
        reader.int8()  # resource_type
        answered = _get_string(reader, flexible)
        _skip_tags(reader, flexible)
        if answered == resource_name:
            result = answer
    if result is None:
        raise AssertionError(f"IncrementalAlterConfigs response carried no result for {resource_name}")
    return result


# ---------------------------------------------------------------- DeleteRecords (KIP-107)
@dataclass
class DeletedRecords:
    error_code: int
    low_watermark: int


def delete_records(conn: Connection, topic: str, offsets: dict[int, int], version: int, timeout_ms: int = 20000
                   ) -> dict[int, DeletedRecords]:
    """DeleteRecords v0-v2 (flexible from v2): delete ``{partition: before_offset}`` on the
    partitions' leader; returns each partition's error and new low watermark (log start offset)."""
    flexible = is_flexible(DELETE_RECORDS, version)
    body = _put_array_length(Writer(), 1, flexible)
    _put_array_length(_put_string(body, topic, flexible), len(offsets), flexible)
    for partition, offset in offsets.items():
        _put_tags(body.int32(partition).int64(offset), flexible)
    _put_tags(_put_tags(body, flexible).int32(timeout_ms), flexible)
    reader = conn.request(DELETE_RECORDS, version, body.bytes(), flexible)
    reader.int32()  # throttle_time_ms
    results = {}
    for _ in range(_get_array_length(reader, flexible)):
        _get_string(reader, flexible)
        for _ in range(_get_array_length(reader, flexible)):
            partition, low_watermark, error_code = reader.int32(), reader.int64(), reader.int16()
            _skip_tags(reader, flexible)
            results[partition] = DeletedRecords(error_code, low_watermark)
        _skip_tags(reader, flexible)
    return results


# ---------------------------------------------------------------- LeaveGroup, DescribeGroups
def leave_group(conn: Connection, group_id: str, members: Sequence[tuple[str, str | None]], version: int
                ) -> tuple[int, dict[str, int]]:
    """LeaveGroup v3-v5 (flexible from v4) of ``(member_id, group_instance_id)`` members; returns
    the top-level error and each member's error."""
    flexible = is_flexible(LEAVE_GROUP, version)
    body = _put_string(Writer(), group_id, flexible)
    _put_array_length(body, len(members), flexible)
    for member_id, instance_id in members:
        _put_string(_put_string(body, member_id, flexible), instance_id, flexible)
        if version >= 5:
            _put_string(body, "refka conformance", flexible)  # reason
        _put_tags(body, flexible)
    reader = conn.request(LEAVE_GROUP, version, _put_tags(body, flexible).bytes(), flexible)
    reader.int32()  # throttle_time_ms
    error_code = reader.int16()
    answers = {}
    for _ in range(_get_array_length(reader, flexible)):
        member_id = _get_string(reader, flexible) or ""
        _get_string(reader, flexible)  # group_instance_id
        answers[member_id] = reader.int16()
        _skip_tags(reader, flexible)
    return error_code, answers


@dataclass
class GroupMemberDescription:
    member_id: str
    group_instance_id: str | None
    client_id: str | None


@dataclass
class GroupDescription:
    error_code: int
    state: str | None
    protocol_type: str | None
    protocol: str | None
    members: list[GroupMemberDescription]


def describe_group(conn: Connection, group_id: str, version: int) -> GroupDescription:
    """DescribeGroups v4-v6 (flexible from v5) of one group, asked of its coordinator."""
    flexible = is_flexible(DESCRIBE_GROUPS, version)
    body = _put_string(_put_array_length(Writer(), 1, flexible), group_id, flexible).boolean(False)
    reader = conn.request(DESCRIBE_GROUPS, version, _put_tags(body, flexible).bytes(), flexible)
    reader.int32()  # throttle_time_ms
    result = None
    for _ in range(_get_array_length(reader, flexible)):
        error_code = reader.int16()
        if version >= 6:
            _get_string(reader, flexible)  # error_message
        name = _get_string(reader, flexible)
        state, protocol_type, protocol = (_get_string(reader, flexible), _get_string(reader, flexible),
                                          _get_string(reader, flexible))
        members = []
        for _ in range(max(_get_array_length(reader, flexible), 0)):
            member_id, instance_id = _get_string(reader, flexible) or "", _get_string(reader, flexible)
            client_id = _get_string(reader, flexible)
            _get_string(reader, flexible)  # client_host
            _get_bytes(reader, flexible)  # member_metadata
            _get_bytes(reader, flexible)  # member_assignment
            _skip_tags(reader, flexible)
            members.append(GroupMemberDescription(member_id, instance_id, client_id))
        reader.int32()  # authorized_operations
        _skip_tags(reader, flexible)
        if name == group_id:
            result = GroupDescription(error_code, state, protocol_type, protocol, members)
    if result is None:
        raise AssertionError(f"DescribeGroups response carried no group {group_id}")
    return result


# ---------------------------------------------------------------- Fetch v4 sent now, read later
def send_fetch(conn: Connection, topic: str, partition: int, offset: int, max_wait_ms: int = 500,
               min_bytes: int = 1, max_bytes: int = 1024 * 1024) -> int:
    """Send a Fetch v4 (read_uncommitted) of one partition without waiting for the answer (a fetch
    the broker parks until ``min_bytes`` arrive); returns its correlation id for :func:`receive_fetch`."""
    body = (
        Writer().int32(-1).int32(max_wait_ms).int32(min_bytes).int32(max_bytes).int8(0)
        .int32(1).string(topic).int32(1).int32(partition).int64(offset).int32(max_bytes).bytes()
    )
    return conn.send(FETCH, 4, body, flexible=False)


def receive_fetch(conn: Connection, correlation_id: int) -> FetchedPartition:
    """Read the Fetch v4 answer to :func:`send_fetch`."""
    reader = conn.receive(correlation_id, flexible_header=False)
    reader.int32()  # throttle_time_ms
    result = None
    for _ in range(reader.array_length()):
        reader.string()
        for _ in range(reader.array_length()):
            reader.int32()  # partition
            error_code, high_watermark = reader.int16(), reader.int64()
            reader.int64()  # last_stable_offset
            for _ in range(max(reader.array_length(), 0)):  # aborted transactions
                reader.int64()
                reader.int64()
            records = reader.int32_bytes() or b""
            result = FetchedPartition(error_code, high_watermark, _summarise_batches(records))
    if result is None:
        raise AssertionError("Fetch response carried no partition")
    return result


# ---------------------------------------------------------------- Fetch v7-v18 with a session (KIP-227)
FETCH_SESSION_VERSIONS = range(7, 19)  # what fetch_in_session can encode
FINAL_EPOCH = -1  # a full fetch that creates no session (and closes the one named)
INITIAL_EPOCH = 0  # a full fetch that asks for a session


@dataclass
class SessionFetchPartition:
    error_code: int
    high_watermark: int
    log_start_offset: int
    batches: list[BatchSummary]

    @property
    def record_count(self) -> int:
        return sum(batch.record_count for batch in self.batches)


@dataclass
class SessionFetchResult:
    """A Fetch response with its session fields; ``partitions`` in response order, keyed by
    (topic, partition) where topic is the name below v13 and the 16-byte id from v13."""

    error_code: int
    session_id: int
    partitions: dict[tuple[str | bytes, int], SessionFetchPartition]


def _fetch_array(writer: Writer, length: int, flexible: bool) -> None:
    if flexible:
        writer.uvarint(length + 1)
    else:
        writer.int32(length)


def _fetch_topic_key(writer: Writer, topic: str | bytes, version: int) -> None:
    """Topics by name up to v12 (a compact string from v12, flexible), by 16-byte id from v13."""
    if version >= 13:
        assert isinstance(topic, bytes) and len(topic) == 16, "Fetch v13+ names topics by id"
        writer.raw(topic)
    else:
        assert isinstance(topic, str), "Fetch before v13 names topics by name"
        writer.compact_string(topic) if version >= 12 else writer.string(topic)


def fetch_in_session(conn: Connection, version: int, session_id: int, epoch: int,
                     topics: Sequence[tuple[str | bytes, Sequence[tuple[int, int]]]],
                     forgotten: Sequence[tuple[str | bytes, Sequence[int]]] = (),
                     max_wait_ms: int = 0, min_bytes: int = 1, max_bytes: int = 1024 * 1024) -> SessionFetchResult:
    """A consumer's Fetch (read_uncommitted) at ``version`` 7-18 with ``session_id`` and ``epoch``:
    ``topics`` lists (topic, [(partition, fetch offset)]) to add or update, ``forgotten`` the
    partitions an incremental fetch removes from its session (``ForgottenTopicsData``)."""
    assert version in FETCH_SESSION_VERSIONS
    flexible = version >= 12
    body = Writer()
    if version < 15:
        body.int32(-1)  # replica_id: a consumer (from v15 in the ReplicaState tagged field, default -1)
    body.int32(max_wait_ms).int32(min_bytes).int32(max_bytes).int8(0).int32(session_id).int32(epoch)
    _fetch_array(body, len(topics), flexible)
    for topic, partitions in topics:
        _fetch_topic_key(body, topic, version)
        _fetch_array(body, len(partitions), flexible)
        for partition, offset in partitions:
            body.int32(partition)
            if version >= 9:
                body.int32(-1)  # current_leader_epoch: unknown
            body.int64(offset)
            if version >= 12:
                body.int32(-1)  # last_fetched_epoch
            body.int64(-1).int32(max_bytes)  # log_start_offset (followers only), partition_max_bytes
            if flexible:
                body.empty_tagged_fields()
        if flexible:
            body.empty_tagged_fields()
    _fetch_array(body, len(forgotten), flexible)
    for topic, partition_indexes in forgotten:
        _fetch_topic_key(body, topic, version)
        _fetch_array(body, len(partition_indexes), flexible)
        for partition in partition_indexes:
            body.int32(partition)
        if flexible:
            body.empty_tagged_fields()
    if version >= 11:
        body.compact_string("") if flexible else body.string("")  # rack_id
    if flexible:
        body.empty_tagged_fields()
    reader = conn.request(FETCH, version, body.bytes(), flexible=flexible)
    return _read_session_fetch(reader, version)


def _read_session_fetch(reader: Reader, version: int) -> SessionFetchResult:
    flexible = version >= 12
    array_length = reader.compact_array_length if flexible else reader.array_length
    reader.int32()  # throttle_time_ms
    result = SessionFetchResult(reader.int16(), reader.int32(), {})
    for _ in range(array_length()):
        if version >= 13:
            topic: str | bytes = reader.take(16)
        else:
            topic = (reader.compact_string() if flexible else reader.string()) or ""
        for _ in range(array_length()):
            partition, error_code, high_watermark = reader.int32(), reader.int16(), reader.int64()
            reader.int64()  # last_stable_offset
            log_start_offset = reader.int64()
            for _ in range(max(array_length(), 0)):  # aborted transactions
                reader.int64()
                reader.int64()
                if flexible:
                    reader.skip_tagged_fields()
            if version >= 11:
                reader.int32()  # preferred_read_replica
            if flexible:
                length_plus_one = reader.uvarint()
                records = reader.take(length_plus_one - 1) if length_plus_one else b""
                reader.skip_tagged_fields()
            else:
                records = reader.int32_bytes() or b""
            result.partitions[(topic, partition)] = SessionFetchPartition(
                error_code, high_watermark, log_start_offset, _summarise_batches(records))
        if flexible:
            reader.skip_tagged_fields()
    if flexible:
        reader.skip_tagged_fields()
    return result


# ---------------------------------------------------------------- ListOffsets with an isolation level (KIP-98)
READ_UNCOMMITTED = 0
READ_COMMITTED = 1


def list_offset_isolated(conn: Connection, topic: str, partition: int, timestamp: int, isolation_level: int,
                         current_leader_epoch: int = -1) -> ListedOffset:
    """ListOffsets v4 for one partition at ``isolation_level``: with READ_COMMITTED, LATEST answers
    the last stable offset (below the first record of any open transaction) instead of the high
    watermark."""
    body = (
        Writer().int32(-1).int8(isolation_level)  # replica_id (consumer)
        .int32(1).string(topic).int32(1).int32(partition).int32(current_leader_epoch).int64(timestamp).bytes()
    )
    reader = conn.request(LIST_OFFSETS, 4, body, flexible=False)
    reader.int32()  # throttle_time_ms
    result = None
    for _ in range(reader.array_length()):
        reader.string()
        for _ in range(reader.array_length()):
            reader.int32()
            result = ListedOffset(reader.int16(), reader.int64(), reader.int64())
            reader.int32()  # leader_epoch
    if result is None:
        raise AssertionError("ListOffsets response carried no partition")
    return result


# ---------------------------------------------------------------- any API at any version, through refka's codec
# The hand-written helpers above each speak one or a few versions.  These two speak every version
# of every API that ``reference.protocol`` declares, so a test can run at each version the broker
# advertises; the body is a ``reference.protocol.schema.Data`` built with ``Message.make``.
def send_body(conn: Connection, api_key: int, version: int, body: Any) -> int:
    """Send ``body`` as request ``api_key`` v``version``; returns the correlation id."""
    from reference.protocol.apis import API_BY_KEY

    message = API_BY_KEY[api_key].request
    return conn.send(api_key, version, message.encode(body, version), flexible=message.is_flexible(version))


def receive_body(conn: Connection, api_key: int, version: int, correlation_id: int) -> Any:
    """Read the answer to :func:`send_body` and decode it as response ``api_key`` v``version``."""
    from reference.protocol.apis import API_BY_KEY

    message = API_BY_KEY[api_key].response
    flexible_header = message.is_flexible(version) and api_key != API_VERSIONS
    reader = conn.receive(correlation_id, flexible_header)
    return message.decode(reader.data[reader.position:], version)


def call(conn: Connection, api_key: int, version: int, body: Any) -> Any:
    """One request and its decoded answer, at any version refka's codec declares."""
    return receive_body(conn, api_key, version, send_body(conn, api_key, version, body))
