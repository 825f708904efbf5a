"""Fetch (API key 1) semantics checked on the wire: min bytes, max wait, ranges.

Waiting is checked without upper time limits: a broker that must answer "at once" is given a
max_wait_ms (FAR_MAX_WAIT_MS) far beyond the socket timeout, so holding the request for max_wait_ms
shows up as no answer at all; a broker that must wait is checked to answer no earlier than
max_wait_ms, which a correct broker never does.
"""

from __future__ import annotations

import time

import pytest

from conformance import raw
from reference.errors import Errors

FAR_MAX_WAIT_MS = 120_000  # what a broker would hold a fetch for if it ignored available data
ANSWER_TIMEOUT_S = 60.0  # the socket timeout: half of FAR_MAX_WAIT_MS
MAX_WAIT_MS = 1000  # for the tests that check the broker does wait


def _connect(broker, topic):
    return broker.connect(broker.leader_address(topic), timeout=ANSWER_TIMEOUT_S)


def _timed_fetch(conn, topic, **arguments):
    started = time.monotonic()
    try:
        result = raw.fetch(conn, topic, 0, **arguments)
    except TimeoutError:
        pytest.fail(f"no Fetch answer within {ANSWER_TIMEOUT_S:.0f} s ({arguments})")
    return result, time.monotonic() - started


def test_fetch_waits_max_wait_on_empty_partition(topics, broker):
    """Fetch max_wait_ms / min_bytes (consumer configs fetch.max.wait.ms, fetch.min.bytes): with no
    data the broker holds the request for max_wait_ms, then answers with no records."""
    topic = topics.create()
    result, elapsed = _timed_fetch(_connect(broker, topic), topic, offset=0, max_wait_ms=MAX_WAIT_MS, min_bytes=1)
    assert (result.error_code, result.record_count) == (0, 0), f"observed {result}"
    assert elapsed >= 0.9 * MAX_WAIT_MS / 1000, f"answered after {elapsed:.2f} s, before max_wait_ms={MAX_WAIT_MS}"


def test_fetch_answers_at_once_when_min_bytes_available(topics, broker):
    """fetch.min.bytes=1: data already present satisfies the request immediately, whatever
    max_wait_ms says (here 120 s: holding the fetch that long leaves it unanswered)."""
    topic = topics.create()
    conn = _connect(broker, topic)
    assert raw.produce(conn, topic, 0, raw.record_batch([raw.Record(None, b"ready")])).error_code == 0
    result, _ = _timed_fetch(conn, topic, offset=0, max_wait_ms=FAR_MAX_WAIT_MS, min_bytes=1)
    assert (result.error_code, result.record_count) == (0, 1), f"observed {result}"


def test_fetch_returns_partial_data_after_max_wait(topics, broker):
    """When fetch.min.bytes is not reached the broker waits max_wait_ms for more, then answers with
    what it has."""
    topic = topics.create()
    conn = _connect(broker, topic)
    assert raw.produce(conn, topic, 0, raw.record_batch([raw.Record(None, b"small")])).error_code == 0
    result, elapsed = _timed_fetch(conn, topic, offset=0, max_wait_ms=MAX_WAIT_MS, min_bytes=1024 * 1024)
    assert (result.error_code, result.record_count) == (0, 1), f"observed {result}"
    assert elapsed >= 0.9 * MAX_WAIT_MS / 1000, f"answered after {elapsed:.2f} s, before max_wait_ms={MAX_WAIT_MS}"


def test_fetch_wakes_up_when_data_arrives(topics, broker):
    """A fetch parked in purgatory (no data, min_bytes=1, max_wait_ms=120 s) completes as soon as
    data arrives, and its answer carries the new record."""
    topic = topics.create()
    address = broker.leader_address(topic)
    waiting = broker.connect(address, timeout=ANSWER_TIMEOUT_S)
    parked = raw.send_fetch(waiting, topic, 0, offset=0, max_wait_ms=FAR_MAX_WAIT_MS, min_bytes=1)
    time.sleep(0.3)  # let the fetch reach the broker first (if it arrived later it would find the data)
    produced = raw.produce(broker.connect(address), topic, 0, raw.record_batch([raw.Record(None, b"wake")]))
    assert produced.error_code == 0 and produced.base_offset == 0, f"observed {produced}"
    try:
        result = raw.receive_fetch(waiting, parked)
    except TimeoutError:
        pytest.fail(f"the parked fetch was not answered within {ANSWER_TIMEOUT_S:.0f} s of new data")
    assert (result.error_code, result.record_count) == (0, 1), f"expected the new record, observed {result}"
    assert result.batches[0].base_offset == 0 and result.high_watermark == 1, f"observed {result}"


def test_fetch_beyond_log_end_is_out_of_range(topics, broker):
    """Fetching an offset past the log end: OFFSET_OUT_OF_RANGE (1)."""
    topic = topics.create()
    conn = broker.leader(topic)
    assert raw.produce(conn, topic, 0, raw.record_batch([raw.Record(None, b"one")])).error_code == 0
    result = raw.fetch(conn, topic, 0, offset=50, max_wait_ms=100)
    assert result.error_code == Errors.OFFSET_OUT_OF_RANGE.code, f"expected 1, observed {result.error_code}"


def test_fetch_at_log_end_is_empty_not_error(topics, broker):
    """Fetching exactly at the log end is valid: no error, no records (a consumer caught up)."""
    topic = topics.create()
    conn = broker.leader(topic)
    assert raw.produce(conn, topic, 0, raw.record_batch([raw.Record(None, b"one")])).error_code == 0
    result = raw.fetch(conn, topic, 0, offset=1, max_wait_ms=100)
    assert (result.error_code, result.record_count, result.high_watermark) == (0, 0, 1)


def test_fetch_from_middle_of_batch_covers_offset(topics, broker):
    """Fetching from an offset inside a batch returns data covering that offset (Kafka returns the
    whole batch; clients skip the records before the fetch offset)."""
    topic = topics.create()
    conn = broker.leader(topic)
    batch = raw.record_batch([raw.Record(None, f"{i}".encode()) for i in range(5)])
    assert raw.produce(conn, topic, 0, batch).error_code == 0
    result = raw.fetch(conn, topic, 0, offset=2, max_wait_ms=100)
    assert result.error_code == 0 and result.batches, f"observed {result}"
    first = result.batches[0]
    assert first.base_offset <= 2 <= first.last_offset, f"observed batches {result.batches}"
