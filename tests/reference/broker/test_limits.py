"""Kafka's per-request limits, asserted the same way on the reference broker and on Apache Kafka
4.3.1 (``kafka`` marker): message.max.bytes, offset.metadata.max.bytes, fetch response sizes and
socket.request.max.bytes."""

from __future__ import annotations

import socket
import struct
import time
import uuid

import pytest

from reference.protocol.apis import API_BY_NAME
from reference.records.batch import SimpleRecord, build_batch, iter_record_batches

from .conftest import RawClient

OFFSET_COMMIT = API_BY_NAME["OffsetCommit"]


def new_topic(client: RawClient) -> str:
    name = f"limits-{uuid.uuid4().hex[:10]}"
    assert client.create_topic(name).error_code == 0
    return name


def one_record_batch(value_size: int) -> bytes:
    return build_batch([SimpleRecord(value=b"v" * value_size, timestamp=int(time.time() * 1000))])


def test_a_batch_over_message_max_bytes_is_message_too_large(bootstrap: str) -> None:
    with RawClient(bootstrap, timeout=60) as client:
        topic = new_topic(client)
        for _ in range(100):  # Kafka's new partition may need a moment to get its leader
            answer = client.produce(topic, 0, one_record_batch(10))
            if answer.error_code == 0:
                break
            time.sleep(0.1)
        assert answer.error_code == 0
        assert client.produce(topic, 0, one_record_batch(1_048_588)).error_code == 10  # MESSAGE_TOO_LARGE
        assert client.produce(topic, 0, one_record_batch(1_000_000)).error_code == 0


def test_commit_metadata_over_offset_metadata_max_bytes_is_offset_metadata_too_large(bootstrap: str) -> None:
    group = f"limits-{uuid.uuid4().hex[:10]}"
    with RawClient(bootstrap, timeout=60) as client:
        topic = new_topic(client)
        client.await_coordinator(group)

        def commit(metadata: str) -> int:
            partition = OFFSET_COMMIT.request.struct("OffsetCommitRequestPartition").make(
                partition_index=0, committed_offset=0, committed_leader_epoch=-1, committed_metadata=metadata)
            body = client.call("OffsetCommit", 8, group_id=group, generation_id_or_member_epoch=-1, member_id="",
                               group_instance_id=None, topics=[OFFSET_COMMIT.request.struct(
                                   "OffsetCommitRequestTopic").make(name=topic, partitions=[partition])])
            return int(body.topics[0].partitions[0].error_code)

        assert commit("m" * 4097) == 12  # OFFSET_METADATA_TOO_LARGE
        assert commit("m" * 4096) == 0


def test_a_fetch_returns_at_least_one_whole_batch_and_otherwise_stays_within_max_bytes(bootstrap: str) -> None:
    """Fetch response sizes: ``max_bytes`` (and the partition's) bound the answer, except that the
    first batch is returned whole even when it is larger (KIP-74)."""
    with RawClient(bootstrap, timeout=60) as client:
        topic = new_topic(client)
        for _ in range(100):
            if client.produce(topic, 0, one_record_batch(20_000)).error_code == 0:
                break
            time.sleep(0.1)
        for _ in range(3):
            assert client.produce(topic, 0, one_record_batch(20_000)).error_code == 0
        small = client.fetch(topic, 0, 0, max_bytes=1)
        assert small.error_code == 0
        assert [b.base_offset for b in iter_record_batches(small.records)] == [0]
        some = client.fetch(topic, 0, 0, max_bytes=50_000)
        assert len(some.records) <= 50_000
        assert len(list(iter_record_batches(some.records))) == 2


def test_a_frame_over_socket_request_max_bytes_closes_the_connection_before_its_body(bootstrap: str) -> None:
    """``socket.request.max.bytes`` (100 MiB): the size prefix alone is refused; the broker does
    not wait for (or allocate) the body, it closes the connection."""
    host, _, port = bootstrap.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(struct.pack(">i", 104_857_601) + b"\0" * 16)
        assert sock.recv(4) == b""
    with socket.create_connection((host, int(port)), timeout=30) as sock:  # and it still serves others
        sock.sendall(struct.pack(">i", 104_857_600 - 1) + b"\0" * 16)
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(4)  # within the limit: the broker waits for the rest of the frame
