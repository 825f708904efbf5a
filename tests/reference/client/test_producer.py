"""The reference producer against real brokers: the embedded reference broker and Apache Kafka.

Records are read back with confluent-kafka (librdkafka), a client refka did not write, and every
record is checked: key, value, headers, and the partition and offset its future reported.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from reference.broker.embedded import EmbeddedBroker
from reference.client.exceptions import NodeDisconnectedError, RequestTimedOutError
from reference.client.outbox import OutboundRequest
from reference.client.partitioners import java_key_partition
from reference.client.producer import Producer, ProducerClosedError, RecordMetadata
from reference.errors import Errors, KafkaError
from reference.protocol.schema import Data

pytestmark = pytest.mark.clients
PARTITIONS = 3
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


@pytest.fixture(scope="module")
def reference_broker() -> Iterator[str]:
    embedded = EmbeddedBroker(config={"auto.create.topics.enable": "false"})
    yield embedded.start()
    embedded.stop()


def create_topic(bootstrap: str, name: str, partitions: int = PARTITIONS) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)


def read_back(bootstrap: str, topic: str, expected: int, partitions: int = PARTITIONS) -> list[tuple[int, int, bytes | None, bytes | None, list[tuple[str, bytes]]]]:
    """Every record of the topic as (partition, offset, key, value, headers), read with librdkafka."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "read-back", "enable.auto.commit": False,
                         "enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    found = []
    ended: set[int] = set()
    deadline = time.monotonic() + 30
    while (len(found) < expected or len(ended) < partitions) and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            if message.error().code() == -191:  # _PARTITION_EOF
                ended.add(message.partition())
            continue
        found.append((message.partition(), message.offset(), message.key(), message.value(),
                      list(message.headers() or [])))
    consumer.close()
    return found


def unique_topic(prefix: str) -> str:
    return f"{prefix}-{time.time_ns()}"


@pytest.mark.parametrize("acks", ["0", "1", "all"])
@pytest.mark.parametrize("codec", CODECS)
def test_every_record_arrives_with_each_acks_and_codec(bootstrap: str, acks: str, codec: str) -> None:
    topic = unique_topic(f"produce-{codec}-{acks}")
    create_topic(bootstrap, topic)
    records = [(f"key-{i}".encode(), f"value-{i}-".encode() * (i % 7 + 1)) for i in range(300)]
    with Producer({"bootstrap.servers": bootstrap, "acks": acks, "compression.type": codec,
                   "linger.ms": 10}) as producer:
        futures = [producer.send(topic, value, key=key, headers=[("n", str(i).encode())])
                   for i, (key, value) in enumerate(records)]
        assert producer.flush(30) == 0
    written = [future.result(timeout=0) for future in futures]
    stored = read_back(bootstrap, topic, len(records))
    assert sorted((key, value) for _, _, key, value, _ in stored) == sorted(records)
    by_key = {key: (partition, offset, headers) for partition, offset, key, _, headers in stored}
    for i, ((key, _), metadata) in enumerate(zip(records, written, strict=True)):
        partition, offset, headers = by_key[key]
        assert metadata.partition == partition == java_key_partition(key, PARTITIONS)  # Java's default placement
        assert headers == [("n", str(i).encode())]
        assert metadata.offset == (offset if acks != "0" else -1)


def test_a_dropped_answer_is_retried_without_writing_the_record_twice(bootstrap: str) -> None:
    """The broker writes the batch but its answer is lost; the idempotent retry is recognised."""
    topic = unique_topic("idempotent-retry")
    create_topic(bootstrap, topic, partitions=1)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    dropped: list[OutboundRequest] = []
    original_send = producer.core.outbox.send

    def drop_first_produce_answer(request: OutboundRequest) -> OutboundRequest:
        if request.api_key == 0 and not dropped:
            dropped.append(request)
            on_failure = request.on_failure

            def lose_answer(body: Data, now_ms: int) -> None:  # the broker did write it
                on_failure(RequestTimedOutError("answer dropped by the test"), now_ms)

            request.on_response = lose_answer
        return original_send(request)

    producer.core.outbox.send = drop_first_produce_answer  # type: ignore[method-assign]
    futures = [producer.send(topic, f"v{i}".encode()) for i in range(5)]
    producer.close(30)
    assert dropped, "no Produce request went out"
    offsets = [future.result(timeout=0).offset for future in futures]
    stored = read_back(bootstrap, topic, 5, partitions=1)
    assert [value for _, _, _, value, _ in stored] == [f"v{i}".encode() for i in range(5)], "lost or duplicated"
    assert offsets == [offset for _, offset, _, _, _ in stored]


def test_an_invalid_topic_name_fails_the_record_with_invalid_topic_exception(bootstrap: str) -> None:
    with Producer({"bootstrap.servers": bootstrap, "max.block.ms": 5000}) as producer:
        future = producer.send("no spaces allowed", b"v")
        error = future.exception(timeout=30)
    assert isinstance(error, KafkaError) and error.error is Errors.INVALID_TOPIC_EXCEPTION


def test_a_topic_the_broker_does_not_create_fails_with_unknown_topic_or_partition(reference_broker: str) -> None:
    with Producer({"bootstrap.servers": reference_broker, "max.block.ms": 1000}) as producer:
        error = producer.send(unique_topic("missing"), b"v").exception(timeout=30)
    assert isinstance(error, KafkaError) and error.error is Errors.UNKNOWN_TOPIC_OR_PARTITION


def test_a_broker_that_is_not_there_fails_the_record_with_a_network_error() -> None:
    with Producer({"bootstrap.servers": "127.0.0.1:9", "max.block.ms": 500}) as producer:
        error = producer.send("t", b"v").exception(timeout=30)
    assert isinstance(error, NodeDisconnectedError)


def test_delivery_callbacks_see_the_same_outcome_as_futures(bootstrap: str) -> None:
    topic = unique_topic("callbacks")
    create_topic(bootstrap, topic)
    seen: list[tuple[Exception | None, RecordMetadata | None]] = []
    with Producer({"bootstrap.servers": bootstrap}) as producer:
        future = producer.send(topic, b"v", on_delivery=lambda error, metadata: seen.append((error, metadata)))
        producer.flush(30)
    assert seen == [(None, future.result(timeout=0))]


# -- the console tool ---------------------------------------------------------------------------------


def refka_produce(*arguments: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "reference", "produce", *arguments], input=stdin,
                          capture_output=True, timeout=120)


def test_console_producer_sends_keyed_lines(bootstrap: str) -> None:
    topic = unique_topic("console")
    create_topic(bootstrap, topic)
    done = refka_produce("--bootstrap-server", bootstrap, "--topic", topic, "--property", "parse.key=true",
                         "--property", "key.separator=:", "--compression-type", "lz4",
                         "--producer-property", "acks=1", stdin=b"k1:v1\nk2:v:2\r\n:empty key\n")
    assert done.returncode == 0, done.stderr
    stored = read_back(bootstrap, topic, 3)
    assert sorted((key, value) for _, _, key, value, _ in stored) == [(b"", b"empty key"), (b"k1", b"v1"),
                                                                      (b"k2", b"v:2")]


def test_console_producer_reports_a_line_without_separator_as_one_line() -> None:
    done = refka_produce("--bootstrap-server", "127.0.0.1:9", "--topic", "t", "--property", "parse.key=true",
                         stdin=b"no separator here\n")
    assert done.returncode == 2
    assert done.stderr.decode().strip().splitlines() == [
        "refka produce: No key separator found on line number 1: 'no separator here'"]


def test_console_producer_reports_an_unreachable_broker_as_one_line() -> None:
    done = refka_produce("--bootstrap-server", "127.0.0.1:9", "--topic", "t",
                         "--producer-property", "max.block.ms=500", stdin=b"v\n")
    assert done.returncode == 1
    (line,) = done.stderr.decode().strip().splitlines()
    assert line.startswith("refka produce: NETWORK_EXCEPTION(13)") and "127.0.0.1:9" in line


def test_console_producer_reports_a_bad_property_as_one_line() -> None:
    done = refka_produce("--bootstrap-server", "127.0.0.1:9", "--topic", "t",
                         "--producer-property", "acks=2", stdin=b"")
    assert done.returncode == 2
    (line,) = done.stderr.decode().strip().splitlines()
    assert line.startswith("refka produce: INVALID_CONFIG(40): invalid value 2 for configuration acks")


def test_send_after_close_is_refused_and_bad_record_types_are_type_errors() -> None:
    producer = Producer({"bootstrap.servers": "127.0.0.1:9"})
    with pytest.raises(TypeError, match="value must be bytes"):
        producer.send("t", "text")  # type: ignore[arg-type]
    producer.close()
    with pytest.raises(ProducerClosedError):
        producer.send("t", b"v")


def test_flush_that_runs_out_of_time_says_how_many_records_are_unanswered() -> None:
    """flush(timeout) returns the number of records sent before it that still have no outcome
    (librdkafka's contract); a broker that never answers leaves all of them unanswered."""
    from conformance.fixtures import free_port_block

    with Producer({"bootstrap.servers": f"127.0.0.1:{free_port_block(1)}", "max.block.ms": 60000}) as producer:
        futures = [producer.send("nowhere", b"v%d" % i) for i in range(3)]
        assert producer.flush(0.3) == 3
        assert not any(future.done() for future in futures)
        producer.close(0)
