"""A reference consumer and Kafka's Java consumer in one group (the classic protocol).

Kafka's ``ConsoleConsumer --group`` (the kafka-clients jar the project caches) and a reference
:class:`~reference.client.consumer.Consumer` subscribe to one two-partition topic, on Apache Kafka
and on the reference broker.  Both speak the range assignor first (Java's default list is
``range, cooperative-sticky``, and so is refka's), so whichever is the leader must hand each member
one partition; every record is then read exactly once, by the member owning its partition.
No assertion depends on time: waits poll until a condition holds and fail with what was seen.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from reference.broker.embedded import EmbeddedBroker
from reference.client.consumer import Consumer, ConsumerRecord
from reference.client.producer import Producer

pytestmark = [pytest.mark.clients, pytest.mark.slow]
PER_PARTITION = 20
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"


@pytest.fixture(scope="module")
def reference_broker() -> Iterator[str]:
    with EmbeddedBroker(config={"group.initial.rebalance.delay.ms": "0"}) as embedded:
        yield embedded.bootstrap


class JavaConsoleConsumer:
    """``ConsoleConsumer --group`` in a subprocess; a thread collects its (partition, value) lines."""

    def __init__(self, bootstrap: str, topic: str, group: str, max_messages: int) -> None:
        from conformance.apache_kafka import classpath, log4j_config, require_java, resolve_libs

        command = [require_java(), "-Xmx256m", f"-Dlog4j2.configurationFile={log4j_config()}",
                   "-cp", classpath(resolve_libs()), CONSOLE_CONSUMER, "--bootstrap-server", bootstrap,
                   "--topic", topic, "--group", group, "--from-beginning", "--max-messages", str(max_messages),
                   "--property", "print.partition=true",
                   "--consumer-property", "heartbeat.interval.ms=500",
                   "--consumer-property", "session.timeout.ms=10000"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        stdin=subprocess.DEVNULL)
        self.records: list[tuple[int, bytes]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            label, _, value = line.rstrip("\n").partition("\t")
            if label.startswith("Partition:"):
                self.records.append((int(label.removeprefix("Partition:")), value.encode()))

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
        _, stderr = self.process.communicate(timeout=30)
        self._reader.join(10)
        return stderr[-2000:]


def _topic(bootstrap: str) -> str:
    name = f"java-mixed-{time.time_ns()}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, 2, 1)])[name].result(30)
    return name


def test_a_reference_consumer_and_the_java_consumer_share_a_group(bootstrap: str) -> None:
    if shutil.which("java") is None or shutil.which("mvn") is None:
        pytest.skip("Java 17 and Maven are needed to run Kafka's Java consumer")
    topic, group = _topic(bootstrap), f"java-mixed-{time.time_ns()}"
    ours = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                     "heartbeat.interval.ms": 500, "session.timeout.ms": 10000, "enable.auto.commit": "false"})
    ours.subscribe([topic])
    java = JavaConsoleConsumer(bootstrap, topic, group, PER_PARTITION)
    seen: list[ConsumerRecord] = []
    try:
        deadline = time.monotonic() + 90  # a JVM start and two rebalances on a shared machine
        while len(ours.assignment()) != 1:
            assert time.monotonic() < deadline, f"no split: refka holds {ours.assignment()}"
            assert java.process.poll() is None, f"the Java consumer exited: {java.stop()}"
            seen.extend(ours.poll(0.1))
        (mine,) = ours.assignment()
        with Producer({"bootstrap.servers": bootstrap}) as producer:
            for partition in (0, 1):
                for i in range(PER_PARTITION):
                    producer.send(topic, f"p{partition}-{i}".encode(), partition=partition)
            assert producer.flush(30) == 0
        written = {f"p{p}-{i}".encode() for p in (0, 1) for i in range(PER_PARTITION)}
        while len(seen) < PER_PARTITION or len(java.records) < PER_PARTITION:
            assert time.monotonic() < deadline + 60, \
                f"records missing: refka {len(seen)}, java {len(java.records)}; {java.stop()}"
            seen.extend(ours.poll(0.1))
        assert {r.partition for r in seen} == {mine.partition}, "refka read a partition it does not own"
        assert {p for p, _ in java.records} == {1 - mine.partition}, "java read refka's partition"
        ours_values = [r.value for r in seen]
        java_values = [value for _, value in java.records]
        assert len(ours_values) == len(set(ours_values)) == PER_PARTITION
        assert len(java_values) == len(set(java_values)) == PER_PARTITION
        assert set(ours_values) | set(java_values) == written
    finally:
        ours.close()
        java.stop()
