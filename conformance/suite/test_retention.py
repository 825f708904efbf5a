"""Retention (retention.ms, DeleteRecords) and compaction (cleanup.policy=compact).

The log start offset these tests move is read back at every ListOffsets version from v1 and every
Fetch version from v4 (``log_start_offset`` in the answer from v5, KIP-107) both the broker and
refka's codec speak; the keyless record a compacted topic refuses is offered at every Produce
version from v3.  Records written only to be expired, deleted or compacted are produced at the
highest Produce version, and DeleteRecords is spoken at one negotiated version: they are setup here
(``test_requests`` runs DeleteRecords at each version).
"""

from __future__ import annotations

import time

import pytest

from conformance import raw, speak
from reference.errors import Errors

WAIT_BUDGET_S = 30.0


def _list_versions(capabilities):
    return speak.versions(capabilities, raw.LIST_OFFSETS, 1)


def _earliest(conn, capabilities, topic, version=None):
    """The log start offset from ListOffsets EARLIEST (at the highest version unless told)."""
    version = _list_versions(capabilities)[-1] if version is None else version
    listed = speak.list_offsets(conn, topic, raw.EARLIEST_TIMESTAMP, version)
    assert listed.error_code == 0, f"ListOffsets v{version} EARLIEST: {listed}"
    return listed.offset


def _log_end(conn, capabilities, topic):
    version = _list_versions(capabilities)[-1]
    listed = speak.list_offsets(conn, topic, raw.LATEST_TIMESTAMP, version)
    assert listed.error_code == 0, f"ListOffsets v{version} LATEST: {listed}"
    return listed.offset


def _produce(conn, capabilities, topic, batch):
    """Setup: append ``batch`` at the highest Produce version both sides speak."""
    version = speak.versions(capabilities, raw.PRODUCE, 3)[-1]
    written = speak.produce(conn, topic, batch, version)
    assert written is not None and written.error_code == 0, f"Produce v{version}: {written}"
    return written


def test_time_retention_deletes_old_segments(topics, broker, capabilities):
    """retention.ms (topic config): closed segments whose newest record is older than retention.ms
    are deleted by the periodic retention check (log.retention.check.interval.ms); the log start
    offset moves forward. The active segment is never deleted."""
    interval = capabilities.broker_config_ms("log.retention.check.interval.ms")
    if interval is None or interval > WAIT_BUDGET_S * 1000 / 2:
        pytest.skip(f"broker retention check interval {interval} ms exceeds the {WAIT_BUDGET_S:.0f} s budget")
    topic = topics.create(configs={"retention.ms": "1000", "segment.ms": "100"})
    conn = broker.leader(topic)
    old = int(time.time() * 1000) - 10_000
    _produce(conn, capabilities, topic, raw.record_batch([raw.Record(None, b"old")] * 3, base_timestamp=old))
    time.sleep(0.3)
    _produce(conn, capabilities, topic, raw.record_batch([raw.Record(None, b"new")]))  # rolls the old segment
    deadline = time.monotonic() + WAIT_BUDGET_S
    while _earliest(conn, capabilities, topic) == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
        _produce(conn, capabilities, topic, raw.record_batch([raw.Record(None, b"tick")]))
    for version in _list_versions(capabilities):
        assert _earliest(conn, capabilities, topic, version) >= 3, \
            f"ListOffsets v{version}: expected the expired segment to be deleted"


def test_delete_records_moves_log_start(topics, broker, capabilities):
    """DeleteRecords (API 21, KIP-107) advances the log start offset and answers it as the low
    watermark; ListOffsets EARLIEST answers it, fetching below it is OFFSET_OUT_OF_RANGE (1),
    fetching at it returns the records from there to the log end and, from Fetch v5, the new
    log_start_offset."""
    version = raw.negotiate(capabilities.api_versions, raw.DELETE_RECORDS)
    if version is None:
        pytest.skip("broker advertises no DeleteRecords version the suite speaks (v0-v2)")
    topic = topics.create()
    conn = broker.leader(topic)
    for i in range(5):  # one batch per record, so that a fetch at offset 3 starts at a batch
        _produce(conn, capabilities, topic, raw.record_batch([raw.Record(None, f"{i}".encode())]))
    deleted = raw.delete_records(conn, topic, {0: 3}, version)
    assert deleted == {0: raw.DeletedRecords(0, 3)}, f"DeleteRecords v{version}: expected low watermark 3, observed {deleted}"
    for list_version in _list_versions(capabilities):
        assert _earliest(conn, capabilities, topic, list_version) == 3, f"ListOffsets v{list_version} EARLIEST"
    for fetch_version in speak.versions(capabilities, raw.FETCH, 4):
        below = speak.fetch(conn, topic, fetch_version, offset=1, max_wait_ms=100)
        assert (below.error_code, below.record_count) == (Errors.OFFSET_OUT_OF_RANGE.code, 0), \
            f"Fetch v{fetch_version} below the log start: observed {below}"
        remaining = speak.fetch(conn, topic, fetch_version, offset=3, max_wait_ms=100)
        observed = (remaining.error_code, [(b.base_offset, b.record_count) for b in remaining.batches])
        assert observed == (0, [(3, 1), (4, 1)]), f"Fetch v{fetch_version} at the log start: observed {remaining}"
        if fetch_version >= 5:
            assert remaining.log_start_offset == 3, f"Fetch v{fetch_version}: observed {remaining}"


def test_compacted_topic_rejects_null_key(topics, broker, capabilities):
    """cleanup.policy=compact needs a key on every record: a batch with a keyless record is
    rejected whole with INVALID_RECORD (87) (LogValidator, "Compacted topic cannot accept message
    without key"); from Produce v8 (KIP-467) the answer names the record by its index, with that
    text, and nothing is appended."""
    topic = topics.create(configs={"cleanup.policy": "compact"})
    conn = broker.leader(topic)
    keyless = f"Compacted topic cannot accept message without key in topic partition {topic}-0"
    for version in speak.versions(capabilities, raw.PRODUCE, 3):
        result = speak.produce(conn, topic, raw.record_batch([raw.Record(b"k", b"keyed"), raw.Record(None, b"no-key")]),
                               version)
        assert result is not None
        # Kafka answers the log start offset (0) with a batch refused record by record, and sums the
        # record errors up in error_message (ReplicaManager, RecordValidationException).
        assert speak.produce_answer(result, version) == speak.produce_expected(
            version, error_code=Errors.INVALID_RECORD.code, log_start_offset=0, record_errors=[(1, keyless)],
            error_message="One or more records have been rejected due to 1 record errors in total, and only showing "
                          f"the first three errors at most: [RecordError(batchIndex=1, message='{keyless}')]"), \
            f"Produce v{version}: expected INVALID_RECORD(87) naming record 1, observed {result}"
    assert _log_end(conn, capabilities, topic) == 0


def test_compaction_keeps_latest_value_per_key(topics, bootstrap, broker, capabilities):
    """Log compaction (cleanup.policy=compact, min.cleanable.dirty.ratio, segment.ms): after the
    cleaner runs, closed segments keep only the latest record per key, in offset order, offsets
    unchanged; a tombstone's older values are removed."""
    backoff = capabilities.broker_config_ms("log.cleaner.backoff.ms")
    if capabilities.broker_configs.get("log.cleaner.enable") == "false":
        pytest.skip("broker has log.cleaner.enable=false")
    if backoff is None or backoff > WAIT_BUDGET_S * 1000 / 2:
        pytest.skip(f"broker log cleaner backoff {backoff} ms exceeds the {WAIT_BUDGET_S:.0f} s budget")
    topic = topics.create(configs={"cleanup.policy": "compact", "segment.ms": "100",
                                   "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "86400000"})
    conn = broker.leader(topic)
    records = [raw.Record(key.encode(), f"{key}{round_number}".encode()) for round_number in range(3)
               for key in ("a", "b", "c")] + [raw.Record(b"b", None)]  # the last one a tombstone for b
    for record in records:
        _produce(conn, capabilities, topic, raw.record_batch([record]))
    from kafka import KafkaConsumer, TopicPartition

    deadline = time.monotonic() + WAIT_BUDGET_S
    observed: list[tuple[bytes | None, bytes | None, int]] = []
    while time.monotonic() < deadline:
        time.sleep(1.0)
        _produce(conn, capabilities, topic, raw.record_batch([raw.Record(b"roll", b"x")]))  # roll the segment
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                 consumer_timeout_ms=1500)
        consumer.assign([TopicPartition(topic, 0)])
        observed = [(r.key, r.value, r.offset) for r in consumer if r.key != b"roll"]
        consumer.close()
        if observed and len(observed) <= 3:  # an empty read (a slow consumer) is not a cleaned log
            break
    assert [(k, v) for k, v, _ in observed] == [(b"a", b"a2"), (b"c", b"c2"), (b"b", None)], \
        f"observed {observed}"
    assert [offset for *_, offset in observed] == [6, 8, 9], "compaction keeps original offsets"
