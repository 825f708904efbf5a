"""The broker's sans-IO core, driven with real request frames and a fake clock (no sockets)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reference.broker.configs import BrokerConfig
from reference.broker.core import NO_RESPONSE, Broker, CloseConnection
from reference.broker.pending import Pending
from reference.errors import Errors
from reference.protocol.apis import API_BY_NAME
from reference.protocol.frames import decode_response, encode_request
from reference.protocol.schema import Data
from reference.records.batch import SimpleRecord, build_batch, iter_record_batches
from reference.records.compression import CompressionType

START_MS = 1_700_000_000_000


class Harness:
    """A broker plus helpers to send it one request and decode the answer."""

    def __init__(self, data_dir: Path, **config: str) -> None:
        self.data_dir = data_dir
        self.config = {"node.id": "1", "group.initial.rebalance.delay.ms": "0", **config}
        self.now_ms = START_MS
        self.broker = Broker(BrokerConfig(self.config), data_dir, self.now_ms)
        self.broker.set_listener("127.0.0.1", 9092)
        self.correlation_id = 0

    def frame(self, api_name: str, version: int, **fields: Any) -> bytes:
        api = API_BY_NAME[api_name]
        self.correlation_id += 1
        return encode_request(api, version, self.correlation_id, "test", api.request.make(**fields))[4:]

    def send(self, api_name: str, version: int, **fields: Any) -> Any:
        """The raw reply: response bytes, a Pending, or NO_RESPONSE."""
        return self.broker.handle_frame(self.frame(api_name, version, **fields), self.now_ms)

    def call(self, api_name: str, version: int, **fields: Any) -> Data:
        reply = self.send(api_name, version, **fields)
        if isinstance(reply, Pending):
            assert reply.done, f"{api_name} is still waiting"
            reply = reply.result
        return self.decode(api_name, version, reply)

    def decode(self, api_name: str, version: int, reply: bytes, correlation_id: int | None = None) -> Data:
        answered, body = decode_response(API_BY_NAME[api_name], version, reply[4:])
        assert answered == (self.correlation_id if correlation_id is None else correlation_id)
        return body

    def advance(self, delta_ms: int) -> None:
        self.now_ms += delta_ms
        self.broker.poll(self.now_ms)

    def restart(self) -> None:
        self.broker.shutdown()
        self.broker = Broker(BrokerConfig(self.config), self.data_dir, self.now_ms)
        self.broker.set_listener("127.0.0.1", 9092)

    # -- conveniences -------------------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int = 1, **configs: str) -> Data:
        api = API_BY_NAME["CreateTopics"]
        topic = api.request.struct("CreatableTopic").make(
            name=name, num_partitions=partitions, replication_factor=1,
            configs=[api.request.struct("CreatableTopicConfig").make(name=k.replace("_", "."), value=v)
                     for k, v in configs.items()])
        return self.call("CreateTopics", 7, topics=[topic], timeout_ms=1000)

    def produce(self, topic: str, partition: int, records: bytes, acks: int = -1, version: int = 9) -> Data:
        api = API_BY_NAME["Produce"]
        data = api.request.struct("PartitionProduceData").make(index=partition, records=records)
        return self.call("Produce", version, acks=acks, timeout_ms=1000, topic_data=[
            api.request.struct("TopicProduceData").make(name=topic, partition_data=[data])])

    def fetch_request(self, topic: str, partition: int, offset: int, *, min_bytes: int = 1,
                      max_wait_ms: int = 0, version: int = 12) -> dict[str, Any]:
        api = API_BY_NAME["Fetch"]
        wanted = api.request.struct("FetchPartition").make(partition=partition, fetch_offset=offset,
                                                          partition_max_bytes=1 << 20)
        return {"max_wait_ms": max_wait_ms, "min_bytes": min_bytes, "max_bytes": 50 << 20,
                "topics": [api.request.struct("FetchTopic").make(topic=topic, partitions=[wanted])]}


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path / "broker")
    yield h
    h.broker.shutdown()


def batch(*values: bytes, key: bytes | None = b"k", producer_id: int = -1, producer_epoch: int = -1,
          base_sequence: int = -1, compression: CompressionType = CompressionType.NONE) -> bytes:
    return build_batch([SimpleRecord(value=v, key=key, timestamp=START_MS) for v in values],
                       producer_id=producer_id, producer_epoch=producer_epoch, base_sequence=base_sequence,
                       compression=compression)


def partition_result(produce_response: Data) -> Data:
    return produce_response.responses[0].partition_responses[0]


# -- ApiVersions and framing ---------------------------------------------------------------------


def test_api_versions_lists_what_the_broker_serves(harness: Harness) -> None:
    body = harness.call("ApiVersions", 3, client_software_name="t", client_software_version="1")
    ranges = {k.api_key: (k.min_version, k.max_version) for k in body.api_keys}
    assert body.error_code == 0
    assert ranges[0] == (0, 13) and ranges[1] == (4, 18) and ranges[18] == (0, 4)
    assert set(ranges) == set(harness.broker.handlers)


def test_an_unknown_api_versions_version_gets_a_v0_answer_with_unsupported_version(harness: Harness) -> None:
    """KIP-511: the client can read a v0 body whatever it sent, and retries with a version from
    the one range listed, ApiVersions' own (Apache Kafka lists no other API in this answer)."""
    frame = struct.pack(">hhih", 18, 99, 7, -1)
    reply = harness.broker.handle_frame(frame, harness.now_ms)
    correlation_id, body = decode_response(API_BY_NAME["ApiVersions"], 0, reply[4:])
    assert correlation_id == 7
    assert body.error_code == Errors.UNSUPPORTED_VERSION.code
    assert [k.api_key for k in body.api_keys] == [18]


@pytest.mark.parametrize("frame", [
    struct.pack(">hhih", 9999, 0, 1, -1),  # unknown API key
    struct.pack(">hhih", 3, 99, 1, -1),  # Metadata at a version nobody declares
    struct.pack(">hhih", 0, 1, 1, -1),  # Produce v1: advertised range, but message format v0/v1 is gone
    b"\x00",  # not even a header
])
def test_frames_kafka_refuses_close_the_connection(harness: Harness, frame: bytes) -> None:
    with pytest.raises(CloseConnection):
        harness.broker.handle_frame(frame, harness.now_ms)


# -- Produce and Fetch ----------------------------------------------------------------------------


def test_produce_then_fetch_returns_the_stored_batch(harness: Harness) -> None:
    assert harness.create_topic("t").topics[0].error_code == 0
    first = partition_result(harness.produce("t", 0, batch(b"a", b"b")))
    second = partition_result(harness.produce("t", 0, batch(b"c")))
    assert (first.error_code, first.base_offset) == (0, 0)
    assert (second.error_code, second.base_offset) == (0, 2)
    body = harness.call("Fetch", 12, **harness.fetch_request("t", 0, 0))
    answer = body.responses[0].partitions[0]
    assert answer.high_watermark == 3
    values = [r.value for b in iter_record_batches(answer.records) for r in b.records]
    assert values == [b"a", b"b", b"c"]


def test_acks_zero_is_never_answered(harness: Harness) -> None:
    harness.create_topic("t")
    api = API_BY_NAME["Produce"]
    data = api.request.struct("PartitionProduceData").make(index=0, records=batch(b"x"))
    reply = harness.send("Produce", 9, acks=0, timeout_ms=1000,
                         topic_data=[api.request.struct("TopicProduceData").make(name="t", partition_data=[data])])
    assert reply is NO_RESPONSE
    assert harness.broker.replicas.require("t", 0).log_end_offset == 1


def test_invalid_acks_and_unknown_partitions_get_their_error_codes(harness: Harness) -> None:
    harness.create_topic("t")
    assert partition_result(harness.produce("t", 0, batch(b"x"), acks=2)).error_code == Errors.INVALID_REQUIRED_ACKS.code
    assert partition_result(harness.produce("t", 5, batch(b"x"))).error_code == Errors.UNKNOWN_TOPIC_OR_PARTITION.code
    assert partition_result(harness.produce("nope", 0, batch(b"x"))).error_code == Errors.UNKNOWN_TOPIC_OR_PARTITION.code


def test_acks_all_compares_the_isr_with_min_insync_replicas_capped_at_the_replication_factor(harness: Harness) -> None:
    """Kafka 4.3's effectiveMinIsr: with one replica, min.insync.replicas=2 cannot be met and is not
    asked for (Apache Kafka 4.3.1 acknowledges this write; the refusal with more replicas than
    in-sync ones is tested in tests/reference/broker/test_replication.py)."""
    harness.create_topic("t", min_insync_replicas="2")
    result = partition_result(harness.produce("t", 0, batch(b"x"), acks=-1))
    assert result.error_code == Errors.NONE.code
    replica = harness.broker.replicas.require("t", 0)
    assert replica.effective_min_isr == 1 and replica.min_insync_replicas == 2


def test_a_retried_idempotent_batch_gets_its_original_offset(harness: Harness) -> None:
    """A duplicate within the last five batches of a producer is answered with its first offsets."""
    harness.create_topic("t")
    ids = harness.call("InitProducerId", 4, transactional_id=None, transaction_timeout_ms=60000)
    pid, epoch = ids.producer_id, ids.producer_epoch
    first = batch(b"a", producer_id=pid, producer_epoch=epoch, base_sequence=0)
    assert partition_result(harness.produce("t", 0, first)).base_offset == 0
    assert partition_result(harness.produce("t", 0, batch(b"b", producer_id=pid, producer_epoch=epoch,
                                                           base_sequence=1))).base_offset == 1
    retried = partition_result(harness.produce("t", 0, first))
    assert (retried.error_code, retried.base_offset) == (0, 0)
    assert harness.broker.replicas.require("t", 0).log_end_offset == 2
    gap = partition_result(harness.produce("t", 0, batch(b"c", producer_id=pid, producer_epoch=epoch, base_sequence=5)))
    assert gap.error_code == Errors.OUT_OF_ORDER_SEQUENCE_NUMBER.code


def test_a_fetch_waits_for_min_bytes_until_data_arrives(harness: Harness) -> None:
    harness.create_topic("t")
    reply = harness.send("Fetch", 12, **harness.fetch_request("t", 0, 0, min_bytes=1, max_wait_ms=500))
    assert isinstance(reply, Pending) and not reply.done
    fetch_correlation_id = harness.correlation_id
    harness.produce("t", 0, batch(b"late"))
    assert reply.done
    body = harness.decode("Fetch", 12, reply.result, fetch_correlation_id)
    assert body.responses[0].partitions[0].high_watermark == 1


def test_a_fetch_with_nothing_to_read_is_answered_empty_at_max_wait(harness: Harness) -> None:
    harness.create_topic("t")
    reply = harness.send("Fetch", 12, **harness.fetch_request("t", 0, 0, min_bytes=1, max_wait_ms=500))
    assert isinstance(reply, Pending)
    harness.advance(499)
    assert not reply.done
    harness.advance(1)
    assert reply.done
    assert harness.decode("Fetch", 12, reply.result).responses[0].partitions[0].records == b""


def test_fetch_out_of_range_and_fenced_epochs(harness: Harness) -> None:
    harness.create_topic("t")
    body = harness.call("Fetch", 12, **harness.fetch_request("t", 0, 10))
    assert body.responses[0].partitions[0].error_code == Errors.OFFSET_OUT_OF_RANGE.code
    request = harness.fetch_request("t", 0, 0)
    request["topics"][0].partitions[0].current_leader_epoch = 5
    body = harness.call("Fetch", 12, **request)
    assert body.responses[0].partitions[0].error_code == Errors.UNKNOWN_LEADER_EPOCH.code


def test_list_offsets_earliest_latest_and_by_timestamp(harness: Harness) -> None:
    harness.create_topic("t")
    harness.produce("t", 0, build_batch([SimpleRecord(value=b"a", timestamp=START_MS),
                                         SimpleRecord(value=b"b", timestamp=START_MS + 10)]))
    api = API_BY_NAME["ListOffsets"]

    def offset_of(timestamp: int) -> int:
        wanted = api.request.struct("ListOffsetsPartition").make(partition_index=0, timestamp=timestamp)
        body = harness.call("ListOffsets", 7, replica_id=-1, topics=[
            api.request.struct("ListOffsetsTopic").make(name="t", partitions=[wanted])])
        return int(body.topics[0].partitions[0].offset)

    assert offset_of(-2) == 0
    assert offset_of(-1) == 2
    assert offset_of(START_MS + 5) == 1
    assert offset_of(START_MS + 100) == -1


def test_metadata_auto_creates_a_topic_when_allowed(harness: Harness) -> None:
    api = API_BY_NAME["Metadata"]
    wanted = api.request.struct("MetadataRequestTopic")
    body = harness.call("Metadata", 12, topics=[wanted.make(name="auto")], allow_auto_topic_creation=True)
    topic = body.topics[0]
    assert topic.error_code == 0 and len(topic.partitions) == 1 and topic.partitions[0].leader_id == 1
    body = harness.call("Metadata", 12, topics=[wanted.make(name="other")], allow_auto_topic_creation=False)
    assert body.topics[0].error_code == Errors.UNKNOWN_TOPIC_OR_PARTITION.code


def test_records_and_committed_offsets_survive_a_restart(harness: Harness) -> None:
    harness.create_topic("t")
    harness.produce("t", 0, batch(b"a"))
    api = API_BY_NAME["OffsetCommit"]
    partition = api.request.struct("OffsetCommitRequestPartition").make(partition_index=0, committed_offset=1,
                                                                        committed_metadata="")
    commit = harness.call("OffsetCommit", 8, group_id="g", generation_id_or_member_epoch=-1, member_id="",
                          topics=[api.request.struct("OffsetCommitRequestTopic").make(name="t", partitions=[partition])])
    assert commit.topics[0].partitions[0].error_code == 0
    harness.restart()
    assert harness.broker.replicas.require("t", 0).log_end_offset == 1
    fetch_api = API_BY_NAME["OffsetFetch"]
    body = harness.call("OffsetFetch", 7, group_id="g", topics=[
        fetch_api.request.struct("OffsetFetchRequestTopic").make(name="t", partition_indexes=[0])])
    assert body.topics[0].partitions[0].committed_offset == 1


def test_a_topic_named_twice_in_create_topics_is_answered_once_with_invalid_request(harness: Harness) -> None:
    """Apache Kafka 4.3 answers a duplicated name once, INVALID_REQUEST, and creates nothing."""
    api = API_BY_NAME["CreateTopics"]
    topic = api.request.struct("CreatableTopic").make(name="twice", num_partitions=1, replication_factor=1)
    body = harness.call("CreateTopics", 7, topics=[topic, topic], timeout_ms=1000)
    assert [(t.name, t.error_code) for t in body.topics] == [("twice", Errors.INVALID_REQUEST.code)]
    assert "twice" not in harness.broker.topics
