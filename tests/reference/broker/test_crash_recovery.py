"""kill -9 the reference broker (a real ``refka broker`` process) and check what it serves after.

The contract (Kafka's, for one node): a record acknowledged with acks=all is in the log after any
crash; offsets stay contiguous; recovery truncates a torn or corrupt tail of the active segment,
so no consumer is ever served a partial or corrupt batch.  Every fetched batch is decoded here with
its CRC-32C checked.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reference.records.batch import RecordBatch, SimpleRecord, build_batch, iter_batches

from .conftest import RawClient

pytestmark = [pytest.mark.clients, pytest.mark.slow]

PARTITIONS = 2
SEGMENT_BYTES = "20000"  # small segments: the crash finds several closed ones and an active one


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class BrokerProcess:
    """``refka broker`` in a subprocess on a fixed port and data dir, so it can be killed and restarted."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [sys.executable, "-m", "reference.cli", "broker", "--listen", self.bootstrap,
                   "--data-dir", str(self.data_dir), "--log-level", "WARNING",
                   "--set", "group.initial.rebalance.delay.ms=0"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the broker exited during start-up"
            try:
                with RawClient(self.bootstrap, timeout=2) as client:
                    if client.call("ApiVersions", 0).error_code == 0:
                        return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("the broker did not start")

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def broker_process(tmp_path: Path) -> Iterator[BrokerProcess]:
    broker = BrokerProcess(tmp_path / "data")
    broker.start()
    yield broker
    broker.stop()


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    with RawClient(bootstrap) as client:
        answer = client.create_topic(name, partitions, {"internal.segment.bytes": SEGMENT_BYTES})
        assert answer.error_code == 0, answer.error_message


def read_partition(bootstrap: str, topic: str, partition: int) -> tuple[list[RecordBatch], int]:
    """Every batch from offset 0, each whole and CRC-checked; and the high watermark."""
    batches: list[RecordBatch] = []
    offset = 0
    with RawClient(bootstrap) as client:
        while True:
            answer = client.fetch(topic, partition, offset, max_bytes=8 << 20)
            assert answer.error_code == 0
            records = answer.records or b""
            # A response far below max_bytes holds whole batches only: no torn tail is served.
            positions = list(iter_batches(records, allow_partial_tail=False))
            for position, _header in positions:
                batches.append(RecordBatch.decode(records, position, verify_crc=True))
            if not positions or batches[-1].last_offset + 1 >= answer.high_watermark:
                return batches, answer.high_watermark
            offset = batches[-1].last_offset + 1


def check_contiguous(batches: list[RecordBatch], high_watermark: int) -> dict[int, bytes | None]:
    """Offsets 0..high_watermark-1, each exactly once, batch after batch; offset -> value."""
    values: dict[int, bytes | None] = {}
    expected_base = 0
    for batch in batches:
        assert batch.base_offset == expected_base, "a gap or an overlap between batches"
        for record in batch.records:
            values[batch.record_offset(record)] = record.value
        expected_base = batch.last_offset + 1
    assert expected_base == high_watermark
    assert sorted(values) == list(range(high_watermark))
    return values


def test_kill_9_while_producing_with_acks_all_loses_nothing_acknowledged(broker_process: BrokerProcess) -> None:
    from confluent_kafka import Producer

    topic = "crash"
    create_topic(broker_process.bootstrap, topic, PARTITIONS)
    acknowledged: dict[tuple[int, int], bytes] = {}

    def delivered(error: Any, message: Any) -> None:
        if error is None:
            acknowledged[(message.partition(), message.offset())] = message.value()

    producer = Producer({"bootstrap.servers": broker_process.bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 2, "batch.num.messages": 50,
                         "message.timeout.ms": 3000})
    killer = threading.Timer(1.5, broker_process.kill)
    killer.start()
    sequence = 0
    stop_at = time.monotonic() + 2.0
    while time.monotonic() < stop_at:  # keep writing through the kill
        try:
            producer.produce(topic, key=f"k{sequence % 7}".encode(), value=f"value-{sequence}".encode(),
                             on_delivery=delivered)
            sequence += 1
        except BufferError:
            pass
        producer.poll(0.001 if sequence % 20 else 0)
    killer.join()
    producer.purge()
    producer.flush(1)
    del producer  # no retry may reach the restarted broker
    assert len(acknowledged) > 100, "the producer barely got going before the kill"

    broker_process.start()
    seen_values: list[bytes | None] = []
    for partition in range(PARTITIONS):
        batches, high_watermark = read_partition(broker_process.bootstrap, topic, partition)
        values = check_contiguous(batches, high_watermark)
        for (acked_partition, offset), value in acknowledged.items():
            if acked_partition == partition:
                assert values.get(offset) == value, f"acknowledged record {partition}@{offset} is lost"
        seen_values.extend(values.values())
    assert len(seen_values) == len(set(seen_values)), "a record was written twice"


def active_segment(data_dir: Path, topic: str, partition: int) -> Path:
    return max((data_dir / f"{topic}-{partition}").glob("*.log"))


def test_a_segment_truncated_mid_batch_is_recovered_to_its_last_whole_batch(broker_process: BrokerProcess) -> None:
    topic = "torn"
    create_topic(broker_process.bootstrap, topic, 1)
    now = int(time.time() * 1000)
    with RawClient(broker_process.bootstrap) as client:
        for index in range(200):
            records = [SimpleRecord(value=f"b{index}-r{r}".encode() * 5, key=b"k", timestamp=now) for r in range(3)]
            answer = client.produce(topic, 0, build_batch(records), acks=-1)
            assert (answer.error_code, answer.base_offset) == (0, 3 * index)
    broker_process.kill()

    segment = active_segment(broker_process.data_dir, topic, 0)
    contents = segment.read_bytes()
    whole = list(iter_batches(contents))
    assert len(whole) >= 2 and len(list(segment.parent.glob("*.log"))) > 1, "expected several segments"
    last_position, last_header = whole[-1]
    torn_size = last_position + last_header.size_in_bytes // 2
    with segment.open("r+b") as handle:
        handle.truncate(torn_size)
    for index_file in (segment.with_suffix(".index"), segment.with_suffix(".timeindex")):
        index_file.unlink(missing_ok=True)  # recovery rebuilds them

    broker_process.start()
    batches, high_watermark = read_partition(broker_process.bootstrap, topic, 0)
    values = check_contiguous(batches, high_watermark)
    assert high_watermark == last_header.base_offset == 3 * 199
    assert values[high_watermark - 1] == b"b198-r2" * 5
    assert segment.stat().st_size == last_position
    with RawClient(broker_process.bootstrap) as client:  # the log goes on from the cut
        answer = client.produce(topic, 0, build_batch([SimpleRecord(value=b"after", timestamp=now)]))
        assert (answer.error_code, answer.base_offset) == (0, high_watermark)
        with_index = client.fetch(topic, 0, high_watermark - 3)  # served through the rebuilt index
        assert [r.value for b in [RecordBatch.decode(with_index.records)] for r in b.records][0] == b"b198-r0" * 5
