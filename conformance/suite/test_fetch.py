"""Fetch (API key 1) semantics checked on the wire: min bytes, max wait, ranges."""

from __future__ import annotations

import time

from conformance import raw
from reference.errors import Errors


def _timed_fetch(conn, topic, **arguments):
    started = time.monotonic()
    result = raw.fetch(conn, topic, 0, **arguments)
    return result, time.monotonic() - started


def test_fetch_waits_max_wait_on_empty_partition(topics, broker):
    """Fetch max_wait_ms / min_bytes (consumer configs fetch.max.wait.ms, fetch.min.bytes): with no
    data the broker holds the request for max_wait_ms, then answers with no records."""
    topic = topics.create()
    result, elapsed = _timed_fetch(broker.leader(topic), topic, offset=0, max_wait_ms=1000, min_bytes=1)
    assert result.error_code == 0 and result.record_count == 0
    assert 0.8 <= elapsed <= 5.0, f"expected about 1 s of waiting, observed {elapsed:.2f} s"


def test_fetch_answers_at_once_when_min_bytes_available(topics, broker):
    """fetch.min.bytes=1: data already present satisfies the request immediately."""
    topic = topics.create()
    conn = broker.leader(topic)
    raw.produce(conn, topic, 0, raw.record_batch([raw.Record(None, b"ready")]))
    result, elapsed = _timed_fetch(conn, topic, offset=0, max_wait_ms=5000, min_bytes=1)
    assert result.record_count == 1
    assert elapsed < 2.5, f"expected an immediate answer, observed {elapsed:.2f} s"


def test_fetch_returns_partial_data_after_max_wait(topics, broker):
    """When fetch.min.bytes is not reached the broker still answers after max_wait_ms with what it
    has."""
    topic = topics.create()
    conn = broker.leader(topic)
    raw.produce(conn, topic, 0, raw.record_batch([raw.Record(None, b"small")]))
    result, elapsed = _timed_fetch(conn, topic, offset=0, max_wait_ms=1000, min_bytes=1024 * 1024)
    assert result.record_count == 1
    assert 0.8 <= elapsed <= 5.0, f"expected about 1 s of waiting, observed {elapsed:.2f} s"


def test_fetch_wakes_up_when_data_arrives(topics, broker):
    """A fetch parked in purgatory completes as soon as min_bytes arrive, before max_wait_ms."""
    topic = topics.create()
    address = broker.leader_address(topic)
    waiting = broker.connect(address)
    waiting.send(raw.FETCH, 4, raw.Writer().int32(-1).int32(8000).int32(1).int32(1 << 20).int8(0).int32(1)
                 .string(topic).int32(1).int32(0).int64(0).int32(1 << 20).bytes(), flexible=False)
    started = time.monotonic()
    time.sleep(0.3)
    raw.produce(broker.connect(address), topic, 0, raw.record_batch([raw.Record(None, b"wake")]))
    waiting.receive(waiting.correlation_id, flexible_header=False)
    assert time.monotonic() - started < 5.0, "the parked fetch waited for max_wait_ms despite new data"


def test_fetch_beyond_log_end_is_out_of_range(topics, broker):
    """Fetching an offset past the log end: OFFSET_OUT_OF_RANGE (1)."""
    topic = topics.create()
    conn = broker.leader(topic)
    raw.produce(conn, topic, 0, raw.record_batch([raw.Record(None, b"one")]))
    result = raw.fetch(conn, topic, 0, offset=50, max_wait_ms=100)
    assert result.error_code == Errors.OFFSET_OUT_OF_RANGE.code, f"expected 1, observed {result.error_code}"


def test_fetch_at_log_end_is_empty_not_error(topics, broker):
    """Fetching exactly at the log end is valid: no error, no records (a consumer caught up)."""
    topic = topics.create()
    conn = broker.leader(topic)
    raw.produce(conn, topic, 0, raw.record_batch([raw.Record(None, b"one")]))
    result = raw.fetch(conn, topic, 0, offset=1, max_wait_ms=100)
    assert (result.error_code, result.record_count, result.high_watermark) == (0, 0, 1)


def test_fetch_from_middle_of_batch_covers_offset(topics, broker):
    """Fetching from an offset inside a batch returns data covering that offset (Kafka returns the
    whole batch; clients skip the records before the fetch offset)."""
    topic = topics.create()
    conn = broker.leader(topic)
    raw.produce(conn, topic, 0, raw.record_batch([raw.Record(None, f"{i}".encode()) for i in range(5)]))
    result = raw.fetch(conn, topic, 0, offset=2, max_wait_ms=100)
    assert result.error_code == 0 and result.batches
    first = result.batches[0]
    assert first.base_offset <= 2 <= first.last_offset, f"observed batches {result.batches}"
