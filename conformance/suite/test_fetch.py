"""Fetch (API key 1) semantics checked on the wire: min bytes, max wait, ranges.

Every probe runs at each Fetch version both the broker and refka's codec speak (v4 first: the
first version with record batches v2 and an isolation level, and the oldest Kafka 4 serves), as a
consumer's sessionless fetch (:func:`conformance.speak.fetch`).  Beside the field a test is about,
each answer is checked for the fields a version adds, as Apache Kafka fills them for a consumer of a
topic with no transactions: ``last_stable_offset`` (v4) equal to the high watermark, no aborted
transactions, ``log_start_offset`` (v5), the top-level ``error_code`` and ``session_id`` 0 (v7, no
session asked for), ``preferred_read_replica`` -1 (v11, the leader itself).  The records that a
fetch reads are produced once, at the highest Produce version: that is setup, not the subject.

Waiting is checked without upper time limits: a broker that must answer "at once" is given a
max_wait_ms (FAR_MAX_WAIT_MS) far beyond the socket timeout, so holding the request for max_wait_ms
shows up as no answer at all; a broker that must wait is checked to answer no earlier than
max_wait_ms, which a correct broker never does.
"""

from __future__ import annotations

import time

import pytest

from conformance import raw, speak
from reference.errors import Errors

FAR_MAX_WAIT_MS = 120_000  # what a broker would hold a fetch for if it ignored available data
ANSWER_TIMEOUT_S = 60.0  # the socket timeout: half of FAR_MAX_WAIT_MS
MAX_WAIT_MS = 1000  # for the tests that check the broker does wait


def _connect(broker, topic):
    return broker.connect(broker.leader_address(topic), timeout=ANSWER_TIMEOUT_S)


def _fetch_versions(capabilities):
    return speak.versions(capabilities, raw.FETCH, 4)


def _produce(conn, capabilities, topic, batch):
    """Setup: append ``batch`` at the highest Produce version both sides speak."""
    version = speak.versions(capabilities, raw.PRODUCE, 3)[-1]
    produced = speak.produce(conn, topic, batch, version)
    assert produced is not None and produced.error_code == 0, f"setup Produce v{version}: {produced}"
    return produced


def _timed_fetch(conn, topic, version, **arguments):
    started = time.monotonic()
    try:
        result = speak.fetch(conn, topic, version, **arguments)
    except TimeoutError:
        pytest.fail(f"Fetch v{version}: no answer within {ANSWER_TIMEOUT_S:.0f} s ({arguments})")
    return result, time.monotonic() - started


def _observed(result, version: int) -> dict[str, object]:
    """What a test compares: error, record count, high watermark, and the fields ``version`` adds."""
    fields: dict[str, object] = {"error_code": result.error_code, "records": result.record_count,
                                 "high_watermark": result.high_watermark,
                                 "last_stable_offset": result.last_stable_offset,
                                 "aborted_transactions": result.aborted_transactions or []}
    if version >= 5:
        fields["log_start_offset"] = result.log_start_offset
    if version >= 7:
        fields["session"] = (result.fetch_error_code, result.session_id)
    if version >= 11:
        fields["preferred_read_replica"] = result.preferred_read_replica
    return fields


def _expected(version: int, records: int, high_watermark: int, log_start_offset: int = 0,
              error_code: int = 0) -> dict[str, object]:
    """The answer Kafka gives a consumer of a partition without transactions."""
    fields: dict[str, object] = {"error_code": error_code, "records": records, "high_watermark": high_watermark,
                                 "last_stable_offset": high_watermark, "aborted_transactions": []}
    if version >= 5:
        fields["log_start_offset"] = log_start_offset
    if version >= 7:
        fields["session"] = (0, 0)  # top-level error NONE, no session (none was asked for)
    if version >= 11:
        fields["preferred_read_replica"] = -1
    return fields


def test_fetch_waits_max_wait_on_empty_partition(topics, broker, capabilities):
    """Fetch max_wait_ms / min_bytes (consumer configs fetch.max.wait.ms, fetch.min.bytes): with no
    data the broker holds the request for max_wait_ms, then answers with no records."""
    topic = topics.create()
    conn = _connect(broker, topic)
    for version in _fetch_versions(capabilities):
        result, elapsed = _timed_fetch(conn, topic, version, offset=0, max_wait_ms=MAX_WAIT_MS, min_bytes=1)
        assert _observed(result, version) == _expected(version, 0, 0), f"Fetch v{version}: observed {result}"
        assert elapsed >= 0.9 * MAX_WAIT_MS / 1000, \
            f"Fetch v{version}: answered after {elapsed:.2f} s, before max_wait_ms={MAX_WAIT_MS}"


def test_fetch_answers_at_once_when_min_bytes_available(topics, broker, capabilities):
    """fetch.min.bytes=1: data already present satisfies the request immediately, whatever
    max_wait_ms says (here 120 s: holding the fetch that long leaves it unanswered)."""
    topic = topics.create()
    conn = _connect(broker, topic)
    _produce(conn, capabilities, topic, raw.record_batch([raw.Record(None, b"ready")]))
    for version in _fetch_versions(capabilities):
        result, _ = _timed_fetch(conn, topic, version, offset=0, max_wait_ms=FAR_MAX_WAIT_MS, min_bytes=1)
        assert _observed(result, version) == _expected(version, 1, 1), f"Fetch v{version}: observed {result}"


def test_fetch_returns_partial_data_after_max_wait(topics, broker, capabilities):
    """When fetch.min.bytes is not reached the broker waits max_wait_ms for more, then answers with
    what it has."""
    topic = topics.create()
    conn = _connect(broker, topic)
    _produce(conn, capabilities, topic, raw.record_batch([raw.Record(None, b"small")]))
    for version in _fetch_versions(capabilities):
        result, elapsed = _timed_fetch(conn, topic, version, offset=0, max_wait_ms=MAX_WAIT_MS, min_bytes=1024 * 1024)
        assert _observed(result, version) == _expected(version, 1, 1), f"Fetch v{version}: observed {result}"
        assert elapsed >= 0.9 * MAX_WAIT_MS / 1000, \
            f"Fetch v{version}: answered after {elapsed:.2f} s, before max_wait_ms={MAX_WAIT_MS}"


def test_fetch_wakes_up_when_data_arrives(topics, broker, capabilities):
    """A fetch parked in purgatory (no data past its offset, min_bytes=1, max_wait_ms=120 s)
    completes as soon as data arrives, and its answer carries the new record.  Each version parks at
    the log end the previous one left (offset n for the n-th version)."""
    topic = topics.create()
    address = broker.leader_address(topic)
    waiting = broker.connect(address, timeout=ANSWER_TIMEOUT_S)
    producer = broker.connect(address)
    for log_end, version in enumerate(_fetch_versions(capabilities)):
        parked = speak.send_fetch(waiting, topic, version, offset=log_end, max_wait_ms=FAR_MAX_WAIT_MS, min_bytes=1)
        time.sleep(0.3)  # let the fetch reach the broker first (if it arrived later it would find the data)
        produced = _produce(producer, capabilities, topic, raw.record_batch([raw.Record(None, b"wake")]))
        assert produced.base_offset == log_end, f"observed {produced}"
        try:
            result = speak.receive_fetch(waiting, version, parked)
        except TimeoutError:
            pytest.fail(f"Fetch v{version}: the parked fetch was not answered within {ANSWER_TIMEOUT_S:.0f} s of new data")
        assert _observed(result, version) == _expected(version, 1, log_end + 1), \
            f"Fetch v{version}: expected the new record, observed {result}"
        assert result.batches[0].base_offset == log_end, f"Fetch v{version}: observed {result.batches}"


def test_fetch_beyond_log_end_is_out_of_range(topics, broker, capabilities):
    """Fetching an offset past the log end: OFFSET_OUT_OF_RANGE (1), with no records."""
    topic = topics.create()
    conn = broker.leader(topic)
    _produce(conn, capabilities, topic, raw.record_batch([raw.Record(None, b"one")]))
    for version in _fetch_versions(capabilities):
        result = speak.fetch(conn, topic, version, offset=50, max_wait_ms=100)
        assert (result.error_code, result.record_count) == (Errors.OFFSET_OUT_OF_RANGE.code, 0), \
            f"Fetch v{version}: expected OFFSET_OUT_OF_RANGE(1), observed {result}"


def test_fetch_at_log_end_is_empty_not_error(topics, broker, capabilities):
    """Fetching exactly at the log end is valid: no error, no records (a consumer caught up)."""
    topic = topics.create()
    conn = broker.leader(topic)
    _produce(conn, capabilities, topic, raw.record_batch([raw.Record(None, b"one")]))
    for version in _fetch_versions(capabilities):
        result = speak.fetch(conn, topic, version, offset=1, max_wait_ms=100)
        assert _observed(result, version) == _expected(version, 0, 1), f"Fetch v{version}: observed {result}"


def test_fetch_from_middle_of_batch_covers_offset(topics, broker, capabilities):
    """Fetching from an offset inside a batch returns data covering that offset (Kafka returns the
    whole batch; clients skip the records before the fetch offset)."""
    topic = topics.create()
    conn = broker.leader(topic)
    _produce(conn, capabilities, topic, raw.record_batch([raw.Record(None, f"{i}".encode()) for i in range(5)]))
    for version in _fetch_versions(capabilities):
        result = speak.fetch(conn, topic, version, offset=2, max_wait_ms=100)
        assert _observed(result, version) == _expected(version, 5, 5), f"Fetch v{version}: observed {result}"
        first = result.batches[0]
        assert first.base_offset <= 2 <= first.last_offset, f"Fetch v{version}: observed batches {result.batches}"
