"""The network shell's limits: max.connections, max.connections.per.ip, idle connections, accept
back-off with rate-limited logging, and a clean SIGTERM while descriptors are exhausted.

Kafka's behaviour these mirror was checked live against Apache Kafka 4.3.1 (see the theory of
operation in ``reference/broker/server.py``); the subprocess tests lower RLIMIT_NOFILE of the
broker process only, never of pytest.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reference.broker.embedded import EmbeddedBroker
from reference.broker.log.checkpoint import CLEAN_SHUTDOWN_FILE
from reference.broker.server import RateLimitedLog
from reference.protocol.apis import API_BY_NAME
from reference.protocol.frames import encode_request
from reference.records.batch import SimpleRecord, build_batch, iter_record_batches

API_VERSIONS = API_BY_NAME["ApiVersions"]


def api_versions_frame() -> bytes:
    return encode_request(API_VERSIONS, 0, 1, "refka-test", API_VERSIONS.request.make())


def answers(sock: socket.socket, timeout: float = 10.0) -> bool:
    """Send ApiVersions v0; True when an answer comes, False when the broker closed the socket."""
    sock.settimeout(timeout)
    try:
        sock.sendall(api_versions_frame())
        header = sock.recv(4)
    except ConnectionError:
        return False
    if len(header) < 4:
        return False
    (size,) = struct.unpack(">i", header)
    while size > 0:
        chunk = sock.recv(size)
        if not chunk:
            return False
        size -= len(chunk)
    return True


def connect(bootstrap: str) -> socket.socket:
    host, _, port = bootstrap.rpartition(":")
    return socket.create_connection((host, int(port)), timeout=10)


@pytest.fixture
def limited_broker(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(data_dir=tmp_path / "broker", config=dict(request.param)) as embedded:
        yield embedded


@pytest.mark.parametrize("limited_broker", [{"max.connections": "2"}], indirect=True)
def test_max_connections_holds_new_clients_in_the_backlog_until_a_slot_frees(limited_broker: EmbeddedBroker) -> None:
    first, second = connect(limited_broker.bootstrap), connect(limited_broker.bootstrap)
    assert answers(first) and answers(second)
    third = connect(limited_broker.bootstrap)  # the kernel completes the handshake; the broker waits
    third.sendall(api_versions_frame())
    third.settimeout(0.5)
    with pytest.raises(TimeoutError):
        third.recv(4)  # not answered while two connections are held (Kafka 4.3.1 does the same)
    first.close()
    third.settimeout(10)
    assert len(third.recv(4)) == 4  # accepted and answered once a slot is free
    second.close()
    third.close()


@pytest.mark.parametrize("limited_broker", [{"max.connections.per.ip": "2"}], indirect=True)
def test_max_connections_per_ip_closes_the_extra_connection_and_serves_the_others(
        limited_broker: EmbeddedBroker) -> None:
    held = [connect(limited_broker.bootstrap) for _ in range(2)]
    assert all(answers(sock) for sock in held)
    extra = connect(limited_broker.bootstrap)
    assert not answers(extra)
    assert answers(held[0])
    held[1].close()
    for _ in range(100):  # the broker notices the close asynchronously
        retry = connect(limited_broker.bootstrap)
        if answers(retry):
            break
        retry.close()
    else:
        pytest.fail("a freed per-ip slot was never reused")
    for sock in [*held, extra, retry]:
        sock.close()


@pytest.mark.parametrize("limited_broker", [{"connections.max.idle.ms": "300"}], indirect=True)
def test_a_client_trickling_a_partial_frame_is_closed_after_connections_max_idle_ms(
        limited_broker: EmbeddedBroker) -> None:
    slow = connect(limited_broker.bootstrap)
    slow.sendall(api_versions_frame()[:6])  # size prefix and half a header, then silence
    slow.settimeout(30)
    assert slow.recv(4) == b""  # closed by the broker
    other = connect(limited_broker.bootstrap)
    assert answers(other)
    other.close()


@pytest.mark.parametrize("limited_broker", [{}], indirect=True)
def test_a_flood_of_idle_and_half_sent_connections_does_not_starve_another_client(
        limited_broker: EmbeddedBroker) -> None:
    flood = [connect(limited_broker.bootstrap) for _ in range(300)]
    for sock in flood[::2]:
        sock.sendall(api_versions_frame()[:7])  # half a request each, never finished
    other = connect(limited_broker.bootstrap)
    assert answers(other)
    assert answers(flood[1])  # an idle member of the flood is served when it asks
    for sock in [*flood, other]:
        sock.close()


def test_a_repeating_failure_is_logged_once_then_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limited = RateLimitedLog(logging.getLogger("test.ratelimit"), "cannot accept", 10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.ratelimit"):
        for step in range(1000):  # 1,000 failures over 25 seconds
            now[0] = step * 0.025
            limited.failure(OSError(24, "Too many open files"))
        limited.recovered()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4  # the first failure, two summaries (t=10 s, t=20 s), the recovery
    assert "failures in the last 10 s" in lines[1]
    assert "working again" in lines[-1]


# -- a subprocess broker with few descriptors ---------------------------------------------------------


def _start_broker(data_dir: Path, nofile: int, log_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    def lower_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    out = open(log_path, "wb")  # noqa: SIM115 - owned by the process
    process = subprocess.Popen(
        [sys.executable, "-m", "reference.cli", "broker", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir)],
        stdout=out, stderr=subprocess.STDOUT, preexec_fn=lower_limit)
    for _ in range(600):
        text = log_path.read_text(errors="replace")
        if "listening on" in text:
            port = int(text.split("listening on ", 1)[1].split()[0].rsplit(":", 1)[1])
            return process, port
        if process.poll() is not None:
            pytest.fail(f"the broker exited: {text}")
        time.sleep(0.05)
    process.kill()
    pytest.fail("the broker did not start")


def _open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/fd")
def test_sigterm_while_out_of_descriptors_shuts_down_cleanly(tmp_path: Path) -> None:
    """With RLIMIT_NOFILE=64, clients open connections until accept fails with EMFILE.  The broker
    keeps serving what it holds, logs the failure a bounded number of times, and SIGTERM still
    brings a clean shutdown (exit 0, clean-shutdown marker written)."""
    log_path = tmp_path / "broker.log"
    process, port = _start_broker(tmp_path / "data", nofile=64, log_path=log_path)
    clients: list[socket.socket] = []
    try:
        served = socket.create_connection(("127.0.0.1", port), timeout=10)
        assert answers(served)
        for _ in range(100):  # more than the broker can hold; the rest wait in the backlog
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        for _ in range(600):
            if "cannot accept connections" in log_path.read_text(errors="replace"):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the broker never ran out of descriptors")
        assert _open_descriptors(process.pid) <= 64
        assert answers(served)  # an established connection is still served
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        for sock in clients:
            sock.close()
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log_path.read_text(errors="replace")
    assert "clean shutdown complete" in text
    assert text.count("cannot accept connections") <= 5  # rate-limited, not one line per attempt
    assert "Traceback" not in text
    assert (tmp_path / "data" / CLEAN_SHUTDOWN_FILE).exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/fd")
def test_partitions_beyond_the_descriptor_limit_are_served_within_the_budget(tmp_path: Path) -> None:
    """600 partitions are 1,800 segment files; with RLIMIT_NOFILE=256 the broker keeps at most 128
    of them open (half the limit), creates them all, stores and serves a record in each, and still
    accepts connections."""
    from .conftest import RawClient

    log_path = tmp_path / "broker.log"
    process, port = _start_broker(tmp_path / "data", nofile=256, log_path=log_path)
    try:
        bootstrap = f"127.0.0.1:{port}"
        with RawClient(bootstrap, timeout=120) as client:
            assert client.create_topic("wide", partitions=600).error_code == 0
            for partition in range(0, 600, 7):
                record = build_batch([SimpleRecord(value=f"p{partition}".encode(), timestamp=1_700_000_000_000)])
                assert client.produce("wide", partition, record).error_code == 0
            assert _open_descriptors(process.pid) <= 256
            for partition in range(0, 600, 7):
                fetched = client.fetch("wide", partition, 0)
                assert fetched.error_code == 0
                (stored,) = iter_record_batches(fetched.records)
                assert stored.records[0].value == f"p{partition}".encode()
        with connect(bootstrap) as fresh:
            assert answers(fresh)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "Too many open files" not in log_path.read_text(errors="replace")


def test_a_consumer_that_stops_reading_stalls_only_its_own_connection(tmp_path: Path) -> None:
    """Fairness: a client that asks for far more than the socket buffers hold and never reads
    keeps the broker writing to it, on that connection only; a producer on another connection is
    answered, and its record is stored.  (A shell that wrote with a blocking call, or served
    connections one after another, would hang here until the socket timeout.)"""
    from .conftest import RawClient

    with EmbeddedBroker(data_dir=tmp_path / "data") as embedded, RawClient(embedded.bootstrap, timeout=60) as producer:
        assert producer.create_topic("fair").error_code == 0
        value = b"v" * 100_000
        for _ in range(10):  # about 9 MB, in batches under max.message.bytes
            batch = build_batch([SimpleRecord(value=value, timestamp=1_700_000_000_000)] * 9)
            assert producer.produce("fair", 0, batch).error_code == 0
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        host, _, port = embedded.bootstrap.rpartition(":")
        slow.connect((host, int(port)))
        try:
            fetch = API_BY_NAME["Fetch"]
            wanted = fetch.request.struct("FetchPartition").make(partition=0, fetch_offset=0,
                                                                 partition_max_bytes=16 << 20)
            request = fetch.request.make(replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=16 << 20,
                                         isolation_level=0, session_id=0, session_epoch=-1,
                                         topics=[fetch.request.struct("FetchTopic").make(topic="fair", partitions=[wanted])])
            for correlation_id in range(20):  # about 180 MB of answers, pipelined
                slow.sendall(encode_request(fetch, 12, correlation_id, "slow-consumer", request))
            slow.settimeout(60)
            assert len(slow.recv(4)) > 0  # the broker is writing to the slow consumer, and stays stuck there
            record = build_batch([SimpleRecord(value=b"still served", timestamp=1_700_000_000_000)])
            answer = producer.produce("fair", 0, record, acks=1)
            assert (answer.error_code, answer.base_offset) == (0, 90)
            fetched = producer.fetch("fair", 0, 90)
            assert [r.value for b in iter_record_batches(fetched.records) for r in b.records] == [b"still served"]
        finally:
            slow.close()
