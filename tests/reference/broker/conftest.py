"""Shared fixtures for the tests that drive the reference broker over real sockets.

``RawClient`` speaks Kafka's wire protocol with refka's own codec (``reference.protocol``), for
the checks no client library lets us make: resending a batch byte for byte, sending a bad frame,
decoding every stored batch with its CRC.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reference.broker.embedded import EmbeddedBroker
from reference.protocol.apis import API_BY_NAME
from reference.protocol.frames import decode_response, encode_request
from reference.protocol.schema import Data

# Fast group protocol for tests: no initial rebalance delay, short minimum session timeout.
FAST_BROKER_CONFIG = {
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "1000",
    "num.partitions": "1",
}


class RawClient:
    """One connection; ``call`` sends a request built from named fields and decodes the answer."""

    def __init__(self, bootstrap: str, timeout: float = 10.0) -> None:
        host, _, port = bootstrap.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.correlation_id = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, api_name: str, version: int, **fields: Any) -> int:
        api = API_BY_NAME[api_name]
        self.correlation_id += 1
        self.sock.sendall(encode_request(api, version, self.correlation_id, "refka-test", api.request.make(**fields)))
        return self.correlation_id

    def receive(self, api_name: str, version: int, correlation_id: int) -> Data:
        (size,) = struct.unpack(">i", self.read_exactly(4))
        answered, body = decode_response(API_BY_NAME[api_name], version, self.read_exactly(size))
        assert answered == correlation_id
        return body

    def call(self, api_name: str, version: int, **fields: Any) -> Data:
        return self.receive(api_name, version, self.send(api_name, version, **fields))

    def read_exactly(self, length: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < length:
            chunk = self.sock.recv(length - len(chunks))
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            chunks += chunk
        return bytes(chunks)

    # -- conveniences ----------------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int = 1, configs: dict[str, str] | None = None,
                     validate_only: bool = False) -> Data:
        api = API_BY_NAME["CreateTopics"]
        topic = api.request.struct("CreatableTopic").make(
            name=name, num_partitions=partitions, replication_factor=1,
            configs=[api.request.struct("CreatableTopicConfig").make(name=k, value=v)
                     for k, v in (configs or {}).items()])
        return self.call("CreateTopics", 5, topics=[topic], timeout_ms=10000,
                         validate_only=validate_only).topics[0]

    def await_coordinator(self, group: str, timeout: float = 30.0) -> None:
        """Wait until this broker coordinates ``group`` and has loaded its offsets partition.

        Kafka creates ``__consumer_offsets`` on the first FindCoordinator (COORDINATOR_NOT_AVAILABLE
        until then), and may name itself coordinator a moment before its coordinator has loaded the
        partition: group requests then answer the retriable NOT_COORDINATOR (16) or
        COORDINATOR_LOAD_IN_PROGRESS (14), which a client retries. A group-level OffsetFetch is the
        harmless probe; the test's own requests come after it succeeds.
        """
        api = API_BY_NAME["OffsetFetch"]
        probe = api.request.struct("OffsetFetchRequestGroup").make(group_id=group, topics=None)
        deadline = time.monotonic() + timeout
        while True:
            found = self.call("FindCoordinator", 4, key_type=0, coordinator_keys=[group]).coordinators[0]
            code = found.error_code
            if code == 0:
                code = self.call("OffsetFetch", 8, require_stable=False, groups=[probe]).groups[0].error_code
                if code == 0:
                    return
            if code not in (14, 15, 16) or time.monotonic() > deadline:
                raise AssertionError(f"group {group!r} has no loaded coordinator here (error {code})")
            time.sleep(0.2)

    def produce(self, topic: str, partition: int, records: bytes, acks: int = -1) -> Data:
        api = API_BY_NAME["Produce"]
        data = api.request.struct("PartitionProduceData").make(index=partition, records=records)
        body = self.call("Produce", 9, acks=acks, timeout_ms=10000, topic_data=[
            api.request.struct("TopicProduceData").make(name=topic, partition_data=[data])])
        return body.responses[0].partition_responses[0]

    def fetch(self, topic: str, partition: int, offset: int, max_bytes: int = 1 << 20) -> Data:
        api = API_BY_NAME["Fetch"]
        wanted = api.request.struct("FetchPartition").make(
            partition=partition, fetch_offset=offset, partition_max_bytes=max_bytes)
        body = self.call("Fetch", 12, replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=max_bytes,
                         isolation_level=0, session_id=0, session_epoch=-1,
                         topics=[api.request.struct("FetchTopic").make(topic=topic, partitions=[wanted])])
        return body.responses[0].partitions[0]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One embedded broker shared by a test module (each test uses its own topics)."""
    data_dir: Path = tmp_path_factory.mktemp("broker")
    with EmbeddedBroker(data_dir=data_dir, config=dict(FAST_BROKER_CONFIG)) as embedded:
        yield embedded


@pytest.fixture(params=["refka", pytest.param("kafka", marks=[pytest.mark.kafka,
                                                             pytest.mark.xdist_group("apache-kafka-peer")])])
def bootstrap(request: pytest.FixtureRequest, broker: EmbeddedBroker) -> Iterator[str]:
    """The same test against the module's reference broker and against the Apache Kafka peer
    (Kafka is the ground truth: a test that compares behaviours asks for this fixture)."""
    if request.param == "kafka":
        host, port = request.getfixturevalue("kafka_peer")
        yield f"{host}:{port}"
    else:
        yield broker.bootstrap


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker for one test, which may restart it."""
    with EmbeddedBroker(data_dir=tmp_path / "broker", config=dict(FAST_BROKER_CONFIG)) as embedded:
        yield embedded
