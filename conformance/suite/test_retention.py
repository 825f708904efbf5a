"""Retention (retention.ms, DeleteRecords) and compaction (cleanup.policy=compact)."""

from __future__ import annotations

import time

import pytest

from conformance import raw
from reference.errors import Errors

WAIT_BUDGET_S = 30.0


def _earliest(conn, topic):
    return raw.list_offset(conn, topic, 0, raw.EARLIEST_TIMESTAMP).offset


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
    written = raw.produce(conn, topic, 0, raw.record_batch([raw.Record(None, b"old")] * 3, base_timestamp=old))
    assert written.error_code == 0, f"observed {written}"
    time.sleep(0.3)
    rolled = raw.produce(conn, topic, 0, raw.record_batch([raw.Record(None, b"new")]))  # rolls the old segment
    assert rolled.error_code == 0, f"observed {rolled}"
    deadline = time.monotonic() + WAIT_BUDGET_S
    while _earliest(conn, topic) == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
        raw.produce(conn, topic, 0, raw.record_batch([raw.Record(None, b"tick")]))
    assert _earliest(conn, topic) >= 3, "expected the expired segment to be deleted"


def test_delete_records_moves_log_start(topics, broker, capabilities):
    """DeleteRecords (API 21, KIP-107) advances the log start offset and answers it as the low
    watermark; fetching below it is OFFSET_OUT_OF_RANGE (1), fetching at it returns the records
    from there to the log end."""
    version = raw.negotiate(capabilities.api_versions, raw.DELETE_RECORDS)
    if version is None:
        pytest.skip("broker advertises no DeleteRecords version the suite speaks (v0-v2)")
    topic = topics.create()
    conn = broker.leader(topic)
    for i in range(5):  # one batch per record, so that a fetch at offset 3 starts at a batch
        assert raw.produce(conn, topic, 0, raw.record_batch([raw.Record(None, f"{i}".encode())])).error_code == 0
    deleted = raw.delete_records(conn, topic, {0: 3}, version)
    assert deleted == {0: raw.DeletedRecords(0, 3)}, f"DeleteRecords v{version}: expected low watermark 3, observed {deleted}"
    assert _earliest(conn, topic) == 3
    assert raw.fetch(conn, topic, 0, offset=1, max_wait_ms=100).error_code == Errors.OFFSET_OUT_OF_RANGE.code
    remaining = raw.fetch(conn, topic, 0, offset=3, max_wait_ms=100)
    assert (remaining.error_code, [(b.base_offset, b.record_count) for b in remaining.batches]) == (0, [(3, 1), (4, 1)]), \
        f"observed {remaining}"


def test_compacted_topic_rejects_null_key(topics, broker):
    """cleanup.policy=compact needs a key on every record: a keyless record is rejected with
    INVALID_RECORD (87) (LogValidator, "Compacted topic cannot accept message without key")."""
    topic = topics.create(configs={"cleanup.policy": "compact"})
    result = raw.produce(broker.leader(topic), topic, 0, raw.record_batch([raw.Record(None, b"no-key")]))
    assert result is not None and result.error_code == Errors.INVALID_RECORD.code, f"expected 87, observed {result}"


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
        written = raw.produce(conn, topic, 0, raw.record_batch([record]))
        assert written.error_code == 0, f"observed {written}"
    from kafka import KafkaConsumer, TopicPartition

    deadline = time.monotonic() + WAIT_BUDGET_S
    observed: list[tuple[bytes | None, bytes | None, int]] = []
    while time.monotonic() < deadline:
        time.sleep(1.0)
        raw.produce(conn, topic, 0, raw.record_batch([raw.Record(b"roll", b"x")]))  # roll the segment
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
