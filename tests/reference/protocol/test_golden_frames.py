"""Golden frames: what real clients and a real broker put on the wire round-trips through refka's codec.

Each real client (confluent-kafka / librdkafka, kafka-python, aiokafka) runs a short, ordinary
session through :class:`~tests.reference.protocol.golden.RecordingProxy` placed in front of Apache
Kafka: create a topic with its admin client and read its configuration; produce keyed records with
every compression codec (idempotent producers); consume them in a group (join, sync, heartbeats,
offset fetch, list offsets, fetch) and commit; write one record and the group's offsets in a
transaction; leave the group; list and describe groups; add a partition; delete the topic.

Every frame captured in either direction must decode with refka's codec and encode again to the
identical bytes, and every record batch in the Produce requests must decode (CRC checked,
decompressed) to the keys sent with its codec.  The set of APIs each client exercised is checked
against a minimum, so a session that silently did less fails instead of passing on fewer frames;
the versions each client chose are printed (``pytest -s``).

The broker is the Apache Kafka peer at ``$REFKA_KAFKA_BOOTSTRAP`` when that is set and answers
(``refka kafka start`` prints it); otherwise the test starts its own
1-node peer with :class:`conformance.apache_kafka.KafkaCluster` (Java 17 and Maven needed).
"""

from __future__ import annotations

import asyncio
import functools
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from reference.errors import Errors
from reference.protocol.apis import API_BY_KEY, API_BY_NAME
from reference.protocol.frames import decode_request, encode_request, encode_response
from reference.protocol.schema import Data
from reference.records.batch import RecordBatch, iter_batches

from .golden import (
    SIZE_PREFIX,
    Address,
    Exchange,
    RecordingProxy,
    decode_response_frame,
    first_difference,
    reencode_request,
    reencode_response,
    response_body_version,
    rewrite_advertised_addresses,
    split_frames,
)

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
RECORDS_PER_CODEC = 3
SESSION_TIMEOUT_S = 20.0
TRANSACTIONAL_KEY = b"transactional"  # the one record the consume-transform-produce step writes
HEARTBEAT_INTERVAL_MS = 100  # short, so that a few-second session sends Heartbeats

# APIs every session must have exercised in both directions (request and its response).
COMMON_APIS = {
    "ApiVersions", "Metadata", "CreateTopics", "DescribeConfigs", "DeleteTopics", "InitProducerId",
    "Produce", "FindCoordinator", "JoinGroup", "SyncGroup", "Heartbeat", "OffsetFetch",
    "ListOffsets", "Fetch", "OffsetCommit", "LeaveGroup",
    "AddPartitionsToTxn", "AddOffsetsToTxn", "TxnOffsetCommit", "EndTxn", "ListGroups", "DescribeGroups",
    "CreatePartitions",
}
REQUIRED_APIS = {
    "confluent-kafka": COMMON_APIS | {"DeleteGroups", "IncrementalAlterConfigs", "DeleteRecords"},
    "kafka-python": COMMON_APIS | {"OffsetDelete", "DeleteGroups", "DescribeCluster", "IncrementalAlterConfigs",
                                   "DeleteRecords", "DescribeProducers", "ListTransactions", "DescribeTransactions"},
    "aiokafka": COMMON_APIS | {"AlterConfigs", "DeleteRecords"},
}
# Which APIs a session speaks in flexible versions (KIP-482), so that between them the clients
# exercise both encodings: confluent-kafka and kafka-python use flexible versions on the data path;
# aiokafka keeps to non-flexible versions everywhere except DeleteRecords, whose only version it
# sends is v2, flexible.
FLEXIBLE_DATA_PATH = {"Produce", "Fetch", "Metadata"}
AIOKAFKA_FLEXIBLE_APIS = {"DeleteRecords"}

# API keys a client may use against Apache Kafka that refka does not declare (so its broker does not
# advertise them and the client falls back to a declared API).  Their frames are not judged here;
# any other undeclared key fails the test.
UNDECLARED_APIS = {
    69: "ConsumerGroupDescribe (KIP-848): librdkafka's describe_consumer_groups tries it first",
}


# ---------------------------------------------------------------- the broker
def _answers_api_versions(address: Address) -> bool:
    """Whether a Kafka broker answers an ApiVersions v0 request at ``address`` (refka's codec)."""
    api = API_BY_NAME["ApiVersions"]
    frame = encode_request(api, 0, 1, "refka-golden-probe", api.request.make())
    try:
        with socket.create_connection(address, timeout=2) as sock:
            sock.sendall(frame)
            buffer = bytearray()
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                data = sock.recv(65536)
                if not data:
                    return False
                buffer += data
                frames = split_frames(buffer)
                if frames:
                    _, body = decode_response_frame(api, 0, frames[0])
                    return body.error_code == 0 and bool(body.api_keys)
    except (OSError, ValueError):
        return False
    return False


@pytest.fixture(scope="module")
def broker(kafka_peer: Address) -> Address:
    """The Apache Kafka broker behind the proxy (see ``kafka_peer`` in tests/conftest.py)."""
    assert _answers_api_versions(kafka_peer), f"the Kafka peer at {kafka_peer} does not answer ApiVersions"
    return kafka_peer


# ---------------------------------------------------------------- client sessions
@dataclass(frozen=True)
class Session:
    bootstrap: str
    topic: str
    group: str

    def key(self, codec: str, index: int) -> bytes:
        return f"{codec}-{index}".encode()

    def value(self, codec: str, index: int) -> bytes:
        return f"value {index} compressed with {codec} ".encode() * 4

    @property
    def transactional_id(self) -> str:
        return f"{self.group}-transactional"

    @property
    def expected_keys(self) -> set[bytes]:
        return {self.key(codec, i) for codec in CODECS for i in range(RECORDS_PER_CODEC)}


def confluent_kafka_session(session: Session) -> None:
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import (
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        NewPartitions,
        NewTopic,
    )

    admin = AdminClient({"bootstrap.servers": session.bootstrap})
    admin.create_topics([NewTopic(session.topic, num_partitions=1, replication_factor=1)])[session.topic].result(10)
    for future in admin.describe_configs([ConfigResource("topic", session.topic)]).values():
        future.result(10)
    for codec in CODECS:
        producer = Producer({"bootstrap.servers": session.bootstrap, "compression.type": codec,
                             "enable.idempotence": True, "linger.ms": 5})
        for i in range(RECORDS_PER_CODEC):
            producer.produce(session.topic, key=session.key(codec, i), value=session.value(codec, i))
        assert producer.flush(10) == 0, f"{codec}: records left unsent"
    consumer = Consumer({"bootstrap.servers": session.bootstrap, "group.id": session.group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS})
    consumer.subscribe([session.topic])
    received: set[bytes] = set()
    next_offset = 0
    deadline = time.monotonic() + SESSION_TIMEOUT_S
    while received != session.expected_keys and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is None:
            continue
        if message.error():
            raise KafkaException(message.error())
        key, offset = message.key(), message.offset()
        assert key is not None and offset is not None
        received.add(key)
        next_offset = offset + 1
    _poll_for_heartbeats(lambda: consumer.poll(0.1))
    consumer.commit(asynchronous=False)
    # consume-transform-produce: one record and the group's offsets in one transaction
    producer = Producer({"bootstrap.servers": session.bootstrap, "transactional.id": session.transactional_id})
    producer.init_transactions(10)
    producer.begin_transaction()
    producer.produce(session.topic, key=TRANSACTIONAL_KEY, value=b"written in a transaction")
    producer.send_offsets_to_transaction([TopicPartition(session.topic, 0, next_offset)],
                                         consumer.consumer_group_metadata(), 10)
    producer.commit_transaction(10)
    consumer.close()
    assert received == session.expected_keys
    admin.list_consumer_groups().result(10)
    admin.describe_consumer_groups([session.group])[session.group].result(10)
    admin.delete_consumer_groups([session.group])[session.group].result(10)
    retention = ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)
    for future in admin.incremental_alter_configs([ConfigResource("topic", session.topic,
                                                                  incremental_configs=[retention])]).values():
        future.result(10)
    for future in admin.delete_records([TopicPartition(session.topic, 0, 1)]).values():
        future.result(10)
    admin.create_partitions([NewPartitions(session.topic, 2)])[session.topic].result(10)
    admin.delete_topics([session.topic])[session.topic].result(10)


def kafka_python_session(session: Session) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
    from kafka.structs import OffsetAndMetadata, TopicPartition

    admin = KafkaAdminClient(bootstrap_servers=session.bootstrap)
    admin.create_topics([NewTopic(session.topic, num_partitions=1, replication_factor=1)])
    admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, session.topic)])
    for codec in CODECS:
        producer = KafkaProducer(bootstrap_servers=session.bootstrap, linger_ms=5,
                                 compression_type=None if codec == "none" else codec)
        for i in range(RECORDS_PER_CODEC):
            producer.send(session.topic, key=session.key(codec, i), value=session.value(codec, i))
        producer.flush(10)
        producer.close()
    consumer = KafkaConsumer(session.topic, bootstrap_servers=session.bootstrap, group_id=session.group,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS)
    received: set[bytes] = set()
    next_offset = 0
    deadline = time.monotonic() + SESSION_TIMEOUT_S
    while received != session.expected_keys and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            received.update(record.key for record in records)
            next_offset = records[-1].offset + 1
    _poll_for_heartbeats(lambda: consumer.poll(timeout_ms=100))
    consumer.commit()
    producer = KafkaProducer(bootstrap_servers=session.bootstrap, transactional_id=session.transactional_id)
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(session.topic, key=TRANSACTIONAL_KEY, value=b"written in a transaction")
    producer.send_offsets_to_transaction({TopicPartition(session.topic, 0): OffsetAndMetadata(next_offset, "", -1)},
                                         consumer.group_metadata())
    producer.commit_transaction()
    producer.close()
    consumer.close()
    assert received == session.expected_keys
    admin.list_groups()
    admin.describe_groups([session.group])
    admin.delete_group_offsets(session.group, [TopicPartition(session.topic, 0)])
    admin.delete_groups([session.group])
    admin.describe_cluster()
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, session.topic, configs={"retention.ms": "3600000"})])
    admin.delete_records({TopicPartition(session.topic, 0): 1})
    admin.describe_producers([TopicPartition(session.topic, 0)])
    admin.list_transactions()
    admin.describe_transactions([session.transactional_id])
    admin.create_partitions({session.topic: NewPartitions(2)})
    admin.delete_topics([session.topic])
    admin.close()


def aiokafka_session(session: Session) -> None:
    asyncio.run(_aiokafka_session(session))


async def _aiokafka_session(session: Session) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic, RecordsToDelete
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=session.bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(session.topic, num_partitions=1, replication_factor=1)])
    await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, session.topic)])
    for codec in CODECS:
        producer = AIOKafkaProducer(bootstrap_servers=session.bootstrap, linger_ms=5, enable_idempotence=True,
                                    compression_type=None if codec == "none" else codec)
        await producer.start()
        try:
            sent = [await producer.send(session.topic, key=session.key(codec, i), value=session.value(codec, i))
                    for i in range(RECORDS_PER_CODEC)]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()
    consumer = AIOKafkaConsumer(session.topic, bootstrap_servers=session.bootstrap, group_id=session.group,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS)
    await consumer.start()
    received: set[bytes] = set()
    next_offset = 0
    try:
        deadline = time.monotonic() + SESSION_TIMEOUT_S
        while received != session.expected_keys and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                received.update(record.key for record in records)
                next_offset = records[-1].offset + 1
        await asyncio.sleep(4 * HEARTBEAT_INTERVAL_MS / 1000)
        await consumer.commit()
        producer = AIOKafkaProducer(bootstrap_servers=session.bootstrap, transactional_id=session.transactional_id)
        await producer.start()
        try:
            async with producer.transaction():
                await producer.send_and_wait(session.topic, key=TRANSACTIONAL_KEY, value=b"written in a transaction")
                await producer.send_offsets_to_transaction({TopicPartition(session.topic, 0): next_offset},
                                                           session.group)
        finally:
            await producer.stop()
    finally:
        await consumer.stop()
    assert received == session.expected_keys
    await admin.list_consumer_groups()
    await admin.describe_consumer_groups([session.group])
    await admin.describe_cluster()
    await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, session.topic,
                                              configs={"retention.ms": "3600000"})])
    await admin.delete_records({TopicPartition(session.topic, 0): RecordsToDelete(before_offset=1)})
    await admin.create_partitions({session.topic: NewPartitions(2)})
    await admin.delete_topics([session.topic])
    await admin.close()


def _poll_for_heartbeats(poll: Callable[[], object]) -> None:
    """Keep a consumer polling for a few heartbeat intervals, so that it sends Heartbeats."""
    until = time.monotonic() + 4 * HEARTBEAT_INTERVAL_MS / 1000
    while time.monotonic() < until:
        poll()


CLIENT_SESSIONS: dict[str, Callable[[Session], None]] = {
    "confluent-kafka": confluent_kafka_session,
    "kafka-python": kafka_python_session,
    "aiokafka": aiokafka_session,
}


# ---------------------------------------------------------------- judging the capture
def round_trip_failures(exchanges: list[Exchange]) -> list[str]:
    """Every captured frame that does not decode and re-encode to the identical bytes, described."""
    failures = []
    for exchange in exchanges:
        if exchange.api_key in UNDECLARED_APIS:
            continue
        label = f"{exchange.api_name} v{exchange.api_version} (correlation id {exchange.correlation_id})"
        failures += _compare(f"{label} request", exchange.request, functools.partial(reencode_request, exchange.request))
        if exchange.response is not None:
            reencode = functools.partial(reencode_response, exchange.api_key, exchange.response_version,
                                         exchange.response)
            failures += _compare(f"{label} response", exchange.response, reencode)
    return failures


def _compare(label: str, original: bytes, reencode: Callable[[], bytes]) -> list[str]:
    try:
        again = reencode()
    except Exception as error:
        return [f"{label}: {error!r}"]
    offset = first_difference(original, again)
    if offset is None:
        return []
    return [f"{label}: {len(original)} bytes captured, {len(again)} re-encoded, first difference at byte {offset}"]


def produced_keys_by_codec(exchanges: list[Exchange]) -> dict[str, set[bytes]]:
    """codec -> record keys, from every record batch of every Produce request, each decoded by refka.

    Decoding checks each batch's CRC-32C and decompresses it, so this proves refka reads what
    each real client writes with each codec.
    """
    produce = API_BY_NAME["Produce"]
    keys: dict[str, set[bytes]] = {}
    for exchange in exchanges:
        if exchange.api_key != produce.key:
            continue
        body = decode_request(exchange.request[SIZE_PREFIX.size :]).body
        for topic in body.topic_data:
            for partition in topic.partition_data:
                for position, _ in iter_batches(partition.records):
                    batch = RecordBatch.decode(partition.records, position)
                    codec = keys.setdefault(batch.compression.config_name, set())
                    codec.update(record.key for record in batch.records if record.key is not None)
    return keys


def exercised(exchanges: list[Exchange]) -> dict[str, set[int]]:
    """API name -> versions seen with both a request and its response."""
    versions: dict[str, set[int]] = {}
    for exchange in exchanges:
        if exchange.response is not None:
            versions.setdefault(exchange.api_name, set()).add(exchange.api_version)
    return versions


# ---------------------------------------------------------------- the golden-frame test
@pytest.mark.kafka
@pytest.mark.clients
@pytest.mark.xdist_group("apache-kafka-peer")  # one peer per worker at most; share it under --dist loadgroup
@pytest.mark.parametrize("client", list(CLIENT_SESSIONS))
def test_every_frame_of_a_client_session_round_trips_byte_for_byte(client: str, broker: Address) -> None:
    """Requests as the client wrote them and responses as Kafka wrote them re-encode identically."""
    suffix = uuid.uuid4().hex[:8]
    with RecordingProxy(broker) as proxy:
        session = Session(proxy.bootstrap, topic=f"golden-{client}-{suffix}", group=f"golden-{client}-{suffix}")
        CLIENT_SESSIONS[client](session)
    assert proxy.errors == []

    failures = round_trip_failures(proxy.exchanges)
    assert failures == [], f"{len(failures)} of {len(proxy.exchanges)} exchanges do not round-trip"

    versions = exercised(proxy.exchanges)
    summary = ", ".join(f"{name} v{sorted(vs)}" for name, vs in sorted(versions.items()))
    print(f"\n{client}: {len(proxy.exchanges)} exchanges: {summary}")
    missing = REQUIRED_APIS[client] - set(versions)
    assert not missing, f"{client} session exercised no {sorted(missing)}; it did: {summary}"
    flexible_apis = {e.api_name for e in proxy.exchanges
                     if e.api_key in API_BY_KEY and API_BY_KEY[e.api_key].request.is_flexible(e.api_version)}
    if client == "aiokafka":
        assert flexible_apis == AIOKAFKA_FLEXIBLE_APIS
    else:
        assert flexible_apis >= FLEXIBLE_DATA_PATH
    expected_keys = {codec: {session.key(codec, i) for i in range(RECORDS_PER_CODEC)} for codec in CODECS}
    expected_keys["none"].add(TRANSACTIONAL_KEY)
    assert produced_keys_by_codec(proxy.exchanges) == expected_keys


# ---------------------------------------------------------------- the harness itself (no broker)
METADATA = API_BY_NAME["Metadata"]
FIND_COORDINATOR = API_BY_NAME["FindCoordinator"]


def _metadata_response(version: int, brokers: list[Address]) -> Data:
    broker = METADATA.response.struct("MetadataResponseBroker")
    return METADATA.response.make(
        brokers=[broker.make(node_id=node_id, host=host, port=port) for node_id, (host, port) in enumerate(brokers)],
        cluster_id="golden", controller_id=0,
    )


def test_split_frames_returns_whole_frames_and_keeps_a_partial_tail() -> None:
    first, second = b"\x00\x00\x00\x02ab", b"\x00\x00\x00\x03cde"
    buffer = bytearray(first + second[:5])
    assert split_frames(buffer) == [first]
    assert buffer == bytearray(second[:5])
    buffer += second[5:]
    assert split_frames(buffer) == [second]
    assert buffer == bytearray()


def test_split_frames_refuses_a_negative_size() -> None:
    with pytest.raises(ValueError):
        split_frames(bytearray(b"\xff\xff\xff\xfe"))


def test_a_frame_with_a_byte_the_codec_does_not_read_is_reported() -> None:
    frame = encode_request(METADATA, 12, 7, "golden", METADATA.request.make(topics=None))
    padded = SIZE_PREFIX.pack(len(frame) - SIZE_PREFIX.size + 1) + frame[SIZE_PREFIX.size :] + b"\x00"
    exchanges = [Exchange(1, METADATA.key, 12, 7, frame), Exchange(1, METADATA.key, 12, 8, padded)]
    failures = round_trip_failures(exchanges)
    assert len(failures) == 1
    assert "correlation id 8" in failures[0]
    assert f"{len(padded)} bytes captured, {len(frame)} re-encoded" in failures[0]


def test_an_unsupported_api_versions_answer_is_read_as_version_0() -> None:
    """KIP-511: a broker answers an ApiVersions version it does not know with a v0 body."""
    api_versions = API_BY_NAME["ApiVersions"]
    body = api_versions.response.make(error_code=Errors.UNSUPPORTED_VERSION.code)
    frame = encode_response(api_versions, 0, 3, body)
    assert response_body_version(api_versions.key, 4, frame[SIZE_PREFIX.size :]) == 0
    assert reencode_response(api_versions.key, 0, frame) == frame


@pytest.mark.parametrize("version", [0, 3, 4, 6])
def test_find_coordinator_addresses_are_rewritten_in_every_layout(version: int) -> None:
    response = FIND_COORDINATOR.response
    if version < 4:
        body = response.make(node_id=2, host="broker-2", port=9092)
    else:
        coordinator = response.struct("Coordinator")
        body = response.make(coordinators=[
            coordinator.make(key="group", node_id=2, host="broker-2", port=9092),
            coordinator.make(key="lost", node_id=-1, host="", port=-1, error_code=15),
        ])
    frame = encode_response(FIND_COORDINATOR, version, 5, body)
    rewritten = rewrite_advertised_addresses(FIND_COORDINATOR.key, version, frame, lambda _: ("127.0.0.1", 1234))
    _, decoded = decode_response_frame(FIND_COORDINATOR, version, rewritten)
    if version < 4:
        assert (decoded.host, decoded.port) == ("127.0.0.1", 1234)
    else:
        assert [(c.host, c.port) for c in decoded.coordinators] == [("127.0.0.1", 1234), ("", -1)]


def test_the_proxy_records_the_original_exchange_and_points_clients_at_itself() -> None:
    """A scripted broker answers one Metadata request naming itself and a second broker."""
    version = 12
    with socket.create_server(("127.0.0.1", 0)) as fake_broker:
        upstream: Address = fake_broker.getsockname()
        answer = encode_response(METADATA, version, 42, _metadata_response(version, [upstream, ("127.0.0.1", 1)]))

        def serve_one() -> None:
            connection, _ = fake_broker.accept()
            with connection:
                buffer = bytearray()
                while not split_frames(buffer):
                    buffer += connection.recv(65536)
                connection.sendall(answer)

        server = threading.Thread(target=serve_one, daemon=True)
        server.start()
        request = encode_request(METADATA, version, 42, "golden", METADATA.request.make(topics=None))
        with RecordingProxy(upstream) as proxy:
            proxy_host, _, proxy_port = proxy.bootstrap.rpartition(":")
            with socket.create_connection((proxy_host, int(proxy_port)), timeout=5) as client:
                client.sendall(request)
                buffer = bytearray()
                while not (frames := split_frames(buffer)):
                    buffer += client.recv(65536)
        server.join(timeout=5)

    assert proxy.errors == []
    assert [(e.api_key, e.api_version, e.correlation_id) for e in proxy.exchanges] == [(METADATA.key, version, 42)]
    assert proxy.exchanges[0].request == request
    assert proxy.exchanges[0].response == answer  # recorded before rewriting
    _, seen_by_client = decode_response_frame(METADATA, version, frames[0])
    addresses = [(broker.host, broker.port) for broker in seen_by_client.brokers]
    assert addresses[0] == (proxy_host, int(proxy_port))
    assert addresses[1][0] == "127.0.0.1" and addresses[1][1] not in (1, int(proxy_port))
