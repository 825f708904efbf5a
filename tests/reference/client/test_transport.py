"""The asyncio outbox transport against the real reference broker (and one Apache Kafka check)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reference.broker.embedded import EmbeddedBroker
from reference.client.connection import KafkaConnection, State
from reference.client.exceptions import (
    NodeDisconnectedError,
    RequestTimedOutError,
    UnknownNodeError,
    raise_for_error,
)
from reference.client.outbox import OutboundRequest, Outbox
from reference.client.transport import OutboxTransport, reconnect_backoff_ms, send_once
from reference.errors import KafkaError
from reference.protocol.apis import API_BY_NAME
from reference.protocol.schema import Data
from reference.records.batch import SimpleRecord, build_batch, iter_record_batches

NODE = 1
WAIT_SECONDS = 20.0


def clock_ms() -> int:
    return int(time.time() * 1000)


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` on the event loop, at most WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass
class Outcome:
    """What the transport delivered for one request."""

    responses: list[tuple[Data, int]] = field(default_factory=list)
    failures: list[tuple[Exception, int]] = field(default_factory=list)

    @property
    def delivered(self) -> int:
        return len(self.responses) + len(self.failures)

    def body(self) -> Data:
        assert not self.failures, self.failures
        assert len(self.responses) == 1
        return self.responses[0][0]


class Harness:
    """An outbox, its transport, and helpers to put requests in and wait for their outcomes."""

    def __init__(self, addresses: dict[int, tuple[str, int]]) -> None:
        self.outbox = Outbox()
        self.addresses = addresses
        self.delivered_calls = 0
        self.transport = OutboxTransport(self.outbox, addresses.get, "refka-test", clock_ms, self._on_delivered)

    def _on_delivered(self) -> None:
        self.delivered_calls += 1

    def send(self, api_name: str, body: Data, destination: int = NODE, timeout_ms: int = 10_000,
             version: int | None = None) -> Outcome:
        outcome = Outcome()
        self.outbox.send(OutboundRequest(
            destination, API_BY_NAME[api_name].key, body,
            on_response=lambda body, now_ms: outcome.responses.append((body, now_ms)),
            on_failure=lambda error, now_ms: outcome.failures.append((error, now_ms)),
            version=version, timeout_ms=timeout_ms))
        return outcome

    async def call(self, api_name: str, body: Data, **kwargs: Any) -> Data:
        outcome = self.send(api_name, body, **kwargs)
        await wait_until(lambda: outcome.delivered > 0, f"the {api_name} answer")
        return outcome.body()


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 60))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    config = {"num.partitions": "1", "group.initial.rebalance.delay.ms": "0"}
    with EmbeddedBroker(data_dir=tmp_path / "broker", config=config) as embedded:
        yield embedded


def metadata() -> Data:
    return API_BY_NAME["Metadata"].request.make(topics=None)


def create_topic(name: str) -> Data:
    api = API_BY_NAME["CreateTopics"]
    topic = api.request.struct("CreatableTopic").make(name=name, num_partitions=1, replication_factor=1)
    return api.request.make(topics=[topic], timeout_ms=10_000)


def produce(topic: str, topic_id: Any, values: list[bytes]) -> Data:
    api = API_BY_NAME["Produce"]
    records = build_batch([SimpleRecord(value, timestamp=clock_ms()) for value in values])
    partition = api.request.struct("PartitionProduceData").make(index=0, records=records)
    return api.request.make(acks=-1, timeout_ms=10_000, topic_data=[
        api.request.struct("TopicProduceData").make(name=topic, topic_id=topic_id, partition_data=[partition])])


def fetch(topic: str, topic_id: Any, offset: int, max_wait_ms: int = 0) -> Data:
    api = API_BY_NAME["Fetch"]
    wanted = api.request.struct("FetchPartition").make(partition=0, fetch_offset=offset,
                                                      partition_max_bytes=1 << 20)
    return api.request.make(replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=1, max_bytes=1 << 20,
                            isolation_level=0, session_id=0, session_epoch=-1, topics=[
                                api.request.struct("FetchTopic").make(topic=topic, topic_id=topic_id,
                                                                      partitions=[wanted])])


async def create(harness: Harness, topic: str) -> Any:
    created = (await harness.call("CreateTopics", create_topic(topic))).topics[0]
    raise_for_error(created.error_code, created.error_message)
    return created.topic_id


# -- requests through the transport --------------------------------------------------------------


def test_api_versions_metadata_create_topics_produce_and_fetch_travel_through_the_transport(
        broker: EmbeddedBroker) -> None:
    async def scenario() -> None:
        harness = Harness({NODE: (broker.host, broker.port)})
        await harness.transport.start()
        try:
            versions = await harness.call("ApiVersions", API_BY_NAME["ApiVersions"].request.make(
                client_software_name="refka-test", client_software_version="1.0"))  # v3+: KIP-511 names required
            assert versions.error_code == 0 and any(k.api_key == 0 for k in versions.api_keys)
            described = await harness.call("Metadata", metadata())
            assert [b.port for b in described.brokers] == [broker.port]

            topic_id = await create(harness, "through-transport")
            written = (await harness.call("Produce", produce("through-transport", topic_id, [b"a", b"b"])))
            partition = written.responses[0].partition_responses[0]
            raise_for_error(partition.error_code)
            assert partition.base_offset == 0

            fetched = (await harness.call("Fetch", fetch("through-transport", topic_id, 0))).responses[0]
            records = [r.value for batch in iter_record_batches(fetched.partitions[0].records)
                       for r in batch.records]
            assert records == [b"a", b"b"]

            connection = harness.transport.connection(NODE)
            assert connection is not None and connection.state is State.READY
            assert connection.api_version(API_BY_NAME["Fetch"].key) == 18  # highest common version
            assert harness.delivered_calls == 5  # on_delivered after each of the five callbacks
        finally:
            await harness.transport.stop()

    run(scenario)


def test_requests_to_one_node_are_sent_in_outbox_order_on_one_connection(broker: EmbeddedBroker) -> None:
    async def scenario() -> None:
        harness = Harness({NODE: (broker.host, broker.port)})
        await harness.transport.start()
        try:
            topic_id = await create(harness, "ordered")
            connection = harness.transport.connection(NODE)
            outcomes = [harness.send("Produce", produce("ordered", topic_id, [str(i).encode()])) for i in range(5)]
            await wait_until(lambda: all(o.delivered for o in outcomes), "five produce answers")
            for i, outcome in enumerate(outcomes):
                assert outcome.body().responses[0].partition_responses[0].base_offset == i
            assert harness.transport.connection(NODE) is connection  # one connection, reused
        finally:
            await harness.transport.stop()

    run(scenario)


def test_a_request_to_a_node_without_a_known_address_fails_with_a_retriable_error() -> None:
    async def scenario() -> None:
        harness = Harness({})
        await harness.transport.start()
        try:
            outcome = harness.send("Metadata", metadata(), destination=7)
            await wait_until(lambda: outcome.delivered > 0, "the failure")
            ((error, _),) = outcome.failures
            assert isinstance(error, UnknownNodeError) and isinstance(error, NodeDisconnectedError)
            assert error.error.retriable and error.node_id == 7
            assert outcome.responses == []
        finally:
            await harness.transport.stop()

    run(scenario)


def test_a_stopped_broker_fails_the_requests_in_flight_and_a_later_request_reconnects(
        broker: EmbeddedBroker) -> None:
    async def scenario() -> None:
        harness = Harness({NODE: (broker.host, broker.port)})
        await harness.transport.start()
        try:
            topic_id = await create(harness, "restarting")
            first_connection = harness.transport.connection(NODE)
            # A long poll on an empty partition stays in flight until the broker goes away.
            long_poll = harness.send("Fetch", fetch("restarting", topic_id, 0, max_wait_ms=30_000),
                                     timeout_ms=40_000)
            await wait_until(lambda: first_connection is not None and len(first_connection.in_flight) == 1,
                             "the long poll on the wire")
            await asyncio.to_thread(broker.stop)
            await wait_until(lambda: long_poll.delivered > 0, "the long poll's failure")
            ((error, _),) = long_poll.failures
            assert isinstance(error, NodeDisconnectedError) and error.error.retriable

            await asyncio.to_thread(broker.start)  # same data directory, same port
            described = await harness.call("Metadata", metadata())
            assert [b.port for b in described.brokers] == [broker.port]
            assert harness.transport.connection(NODE) is not first_connection  # a new connection
        finally:
            await harness.transport.stop()

    run(scenario)


def test_a_timed_out_request_fails_once_and_its_late_answer_is_not_delivered(broker: EmbeddedBroker) -> None:
    async def scenario() -> None:
        harness = Harness({NODE: (broker.host, broker.port)})
        await harness.transport.start()
        try:
            topic_id = await create(harness, "late")
            first_connection = harness.transport.connection(NODE)
            # The broker answers this empty long poll after 2.5 s; the request gives up after 0.3 s.
            late = harness.send("Fetch", fetch("late", topic_id, 0, max_wait_ms=2_500), timeout_ms=300)
            await wait_until(lambda: late.delivered > 0, "the timeout")
            ((error, _),) = late.failures
            assert isinstance(error, RequestTimedOutError) and error.error.retriable
            # Kafka closes a connection whose request timed out; the next request uses a new one.
            # It also waits 2.5 s, so when it is answered the first one's answer time has passed.
            after = harness.send("Fetch", fetch("late", topic_id, 0, max_wait_ms=2_500), timeout_ms=10_000)
            await wait_until(lambda: after.delivered > 0, "the second long poll")
            assert after.body().responses[0].partitions[0].error_code == 0
            assert harness.transport.connection(NODE) is not first_connection
            assert late.responses == [] and len(late.failures) == 1
        finally:
            await harness.transport.stop()

    run(scenario)


def test_a_bug_in_a_callback_is_logged_and_the_transport_carries_on(
        broker: EmbeddedBroker, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        harness = Harness({NODE: (broker.host, broker.port)})
        await harness.transport.start()
        try:
            def broken(body: Data, now_ms: int) -> None:
                raise RuntimeError("bug in a core")

            harness.outbox.send(OutboundRequest(NODE, API_BY_NAME["Metadata"].key, metadata(), broken))
            await wait_until(lambda: "bug in a core" in caplog.text, "the logged bug")
            described = await harness.call("Metadata", metadata())
            assert described.brokers
        finally:
            await harness.transport.stop()

    with caplog.at_level(logging.ERROR, logger="refka.client.transport"):
        run(scenario)


def test_reconnect_backoff_doubles_from_50_ms_up_to_1000_ms() -> None:
    assert [reconnect_backoff_ms(n) for n in range(0, 8)] == [0, 50, 100, 200, 400, 800, 1000, 1000]


def test_each_failed_connection_doubles_the_wait_before_the_next_attempt() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        refused = probe.getsockname()[1]

    async def scenario() -> None:
        harness = Harness({NODE: ("127.0.0.1", refused)})
        harness.transport.clock_ms = lambda: 1_000_000  # a still clock: the waits are real sleeps
        await harness.transport.start()
        try:
            for expected_backoff in (50, 100, 200):
                outcome = harness.send("Metadata", metadata())
                await wait_until(lambda: outcome.delivered > 0, "the refused connection")  # noqa: B023
                ((error, now_ms),) = outcome.failures
                assert isinstance(error, NodeDisconnectedError)
                assert harness.transport.reconnect_at_ms(NODE) == now_ms + expected_backoff
        finally:
            await harness.transport.stop()

    run(scenario)


def test_send_once_answers_and_reports_a_refused_connection_as_node_disconnected(broker: EmbeddedBroker) -> None:
    body = asyncio.run(send_once(broker.host, broker.port, API_BY_NAME["Metadata"].key, metadata()))
    assert [b.port for b in body.brokers] == [broker.port]
    port = broker.port
    broker.stop()
    with pytest.raises(NodeDisconnectedError):
        asyncio.run(send_once("127.0.0.1", port, API_BY_NAME["Metadata"].key, metadata(), timeout_ms=5_000))


# -- against Apache Kafka ------------------------------------------------------------------------


@pytest.mark.kafka
@pytest.mark.xdist_group("apache-kafka-peer")
def test_negotiation_with_apache_kafka_stays_within_its_ranges(kafka_peer: tuple[str, int]) -> None:
    host, port = kafka_peer

    async def scenario() -> None:
        harness = Harness({NODE: (host, port)})
        await harness.transport.start()
        try:
            described = await harness.call("Metadata", metadata())
            assert described.brokers and described.cluster_id
            cluster = await harness.call("DescribeCluster", API_BY_NAME["DescribeCluster"].request.make())
            raise_for_error(cluster.error_code, cluster.error_message)
            assert [b.port for b in cluster.brokers] == [b.port for b in described.brokers]

            connection = harness.transport.connection(NODE)
            assert isinstance(connection, KafkaConnection) and connection.broker_versions is not None
            for name in ("Metadata", "DescribeCluster", "Fetch", "Produce", "ApiVersions"):
                api = API_BY_NAME[name]
                low, high = connection.broker_versions[api.key]
                chosen = connection.api_version(api.key)
                assert low <= chosen <= high, name
                assert chosen == min(high, api.request.valid.high or high), name
        finally:
            await harness.transport.stop()

    try:
        run(scenario)
    except KafkaError as error:  # keep the broker's own words in the failure
        raise AssertionError(f"Apache Kafka refused: {error}") from error
