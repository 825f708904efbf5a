"""Produce and fetch through real clients: round trip, ordering, record contents, acks, size limits."""

from __future__ import annotations

import pytest

from conformance import raw, speak
from conformance.clients import Message
from reference.errors import Errors


def test_round_trip_preserves_keys_values_and_offsets(client, topics, lacks):
    """Produce/Fetch round trip (protocol guide: Produce API key 0, Fetch API key 1): every
    acknowledged record is fetched back with its key and value, at the offset the broker gave it."""
    topic = topics.create(partitions=1)
    sent = [Message(f"k{i}".encode(), f"value-{i}".encode(), partition=0) for i in range(20)]
    deliveries = client.produce(topic, sent)
    assert [d.error for d in deliveries] == [None] * 20, f"expected 20 successful deliveries, observed {deliveries}"
    received = client.consume(topic, [0], count=20)
    assert [(m.key, m.value) for m in received] == [(m.key, m.value) for m in sent]
    assert [m.offset for m in received] == list(range(20)), "offsets of a fresh partition start at 0, contiguous"
    if "offsets" not in client.lacks:
        assert [d.offset for d in deliveries] == list(range(20)), "produce acknowledgements carry the offsets"


def test_per_partition_ordering(client, topics):
    """Kafka guarantees order within a partition (Kafka design doc, "Ordering"): records sent to
    one partition by one producer are fetched in send order, across three partitions."""
    topic = topics.create(partitions=3)
    sent = [Message(None, f"{p}:{i}".encode(), partition=p) for i in range(15) for p in range(3)]
    deliveries = client.produce(topic, sent)
    assert all(d.error is None for d in deliveries), deliveries
    received = client.consume(topic, [0, 1, 2], count=45)
    for p in range(3):
        values = [m.value for m in received if m.partition == p]
        assert values == [f"{p}:{i}".encode() for i in range(15)], f"partition {p} out of order: {values}"


def test_headers_round_trip(client, topics, lacks):
    """Record headers (KIP-82): ordered key/value pairs, repeated keys allowed, returned unchanged."""
    lacks("headers")
    topic = topics.create()
    headers = [("trace", b"abc"), ("trace", b"def"), ("empty", b"")]
    client.produce(topic, [Message(b"k", b"v", headers=headers, partition=0)])
    (received,) = client.consume(topic, [0], count=1)
    assert list(received.headers) == headers, f"expected {headers}, observed {received.headers}"


def test_null_header_value(client, topics, lacks):
    """KIP-82: a header value may be null (varint length -1) and is distinct from empty."""
    lacks("null_header_value")
    topic = topics.create()
    client.produce(topic, [Message(b"k", b"v", headers=[("n", None)], partition=0)])
    (received,) = client.consume(topic, [0], count=1)
    assert list(received.headers) == [("n", None)]


def test_null_key_and_null_value(client, topics):
    """Record format v2: key and value are nullable (varint length -1); a null value with a key is
    a tombstone (used by compaction, see log.cleanup.policy=compact)."""
    topic = topics.create()
    client.produce(topic, [Message(None, b"no-key", partition=0), Message(b"tomb", None, partition=0)])
    received = client.consume(topic, [0], count=2)
    assert [(m.key, m.value) for m in received] == [(None, b"no-key"), (b"tomb", None)]


def test_binary_key_and_value(client, topics, lacks):
    """Keys and values are opaque bytes: every byte value survives the round trip."""
    lacks("binary")
    topic = topics.create()
    payload = bytes(range(256))
    client.produce(topic, [Message(payload[::-1], payload, partition=0)])
    (received,) = client.consume(topic, [0], count=1)
    assert (received.key, received.value) == (payload[::-1], payload)


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks_levels_deliver(client, topics, acks):
    """Producer config acks=0/1/all (Produce request field "acks"): all three deliver the records;
    with acks=0 the broker sends no response, so the client cannot learn offsets."""
    topic = topics.create()
    sent = [Message(None, f"a{acks}-{i}".encode(), partition=0) for i in range(5)]
    deliveries = client.produce(topic, sent, acks=acks)
    assert all(d.error is None for d in deliveries), deliveries
    received = client.consume(topic, [0], count=5)
    assert [m.value for m in received] == [m.value for m in sent]


def _produce_versions(capabilities):
    """Every Produce version both sides speak from v3, the first that carries record batches v2."""
    return speak.versions(capabilities, raw.PRODUCE, 3)


def _log_end(conn, capabilities, topic):
    """The partition's log end offset, from ListOffsets LATEST at the highest version both speak."""
    version = speak.versions(capabilities, raw.LIST_OFFSETS, 1)[-1]
    listed = speak.list_offsets(conn, topic, raw.LATEST_TIMESTAMP, version)
    assert listed.error_code == 0, f"ListOffsets v{version}: {listed}"
    return listed.offset


def test_acks_zero_gets_no_response(topics, broker, capabilities):
    """Produce with acks=0: "the server will not send any response" (protocol guide, Produce), at
    every version from v3; the next request on the same connection is answered normally, and each
    record was appended all the same."""
    topic = topics.create()
    conn = broker.leader(topic)
    conn.sock.settimeout(1.0)
    versions = _produce_versions(capabilities)
    for version in versions:
        assert speak.produce(conn, topic, raw.record_batch([raw.Record(None, b"x")]), version, acks=0) is None
        answered = raw.api_versions(conn, 0)  # would read a stray Produce response if one had been sent
        assert answered.error_code == 0, f"after Produce v{version} acks=0: ApiVersions error {answered.error_code}"
    conn.sock.settimeout(10.0)
    assert _log_end(conn, capabilities, topic) == len(versions), "every acks=0 record is appended"


def test_invalid_required_acks(topics, broker, capabilities):
    """acks outside {-1, 0, 1} is answered with INVALID_REQUIRED_ACKS (21), no offsets, and nothing
    is appended."""
    topic = topics.create()
    conn = broker.leader(topic)
    for version in _produce_versions(capabilities):
        result = speak.produce(conn, topic, raw.record_batch([raw.Record(None, b"x")]), version, acks=2)
        assert result is not None
        assert speak.produce_answer(result, version) == \
            speak.produce_expected(version, error_code=Errors.INVALID_REQUIRED_ACKS.code), \
            f"Produce v{version}: expected INVALID_REQUIRED_ACKS(21), observed {result}"
    assert _log_end(conn, capabilities, topic) == 0


def test_message_too_large_exact_code(topics, broker, capabilities):
    """A batch larger than the topic's max.message.bytes is rejected with MESSAGE_TOO_LARGE (10)
    and nothing is appended."""
    topic = topics.create(configs={"max.message.bytes": "2048"})
    conn = broker.leader(topic)
    for version in _produce_versions(capabilities):
        result = speak.produce(conn, topic, raw.record_batch([raw.Record(None, b"x" * 8000)]), version)
        assert result is not None
        assert speak.produce_answer(result, version) == \
            speak.produce_expected(version, error_code=Errors.MESSAGE_TOO_LARGE.code), \
            f"Produce v{version}: expected MESSAGE_TOO_LARGE(10), observed {result}"
    assert _log_end(conn, capabilities, topic) == 0


def test_message_too_large_surfaces_in_client(client, topics):
    """max.message.bytes (topic config): a client whose own limit allows the record still gets the
    broker's MESSAGE_TOO_LARGE as a delivery failure, not a silent drop."""
    topic = topics.create(configs={"max.message.bytes": "2048"})
    config = {
        "kafka-python": {"max_request_size": 10_000_000},
        "aiokafka": {"max_request_size": 10_000_000},
        "confluent-kafka": {"message.max.bytes": 10_000_000},
        "kcat": {"message.max.bytes": 10_000_000},
        "refka": {"max.request.size": 10_000_000},
    }[client.name]
    (delivery,) = client.produce(topic, [Message(None, b"x" * 8000, partition=0)], config=config, timeout=10)
    if client.name == "kcat":  # kcat reports librdkafka's text for the broker's code, not the code
        assert delivery.error is not None and LIBRDKAFKA_MESSAGE_TOO_LARGE in delivery.error, \
            f"expected {LIBRDKAFKA_MESSAGE_TOO_LARGE!r}, observed {delivery}"
    else:
        assert delivery.error_code == Errors.MESSAGE_TOO_LARGE.code, f"expected MESSAGE_TOO_LARGE(10), observed {delivery}"


# rd_kafka_err2str() of error 10 as the broker sent it (librdkafka prefixes broker errors "Broker: ").
LIBRDKAFKA_MESSAGE_TOO_LARGE = "Broker: Message size too large"
