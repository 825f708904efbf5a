"""Replication: ISR, min.insync.replicas with acks=all, leader failover (multi-node tests).

What a test reads back about the partition is read at every version both the broker and refka's
codec speak: Metadata (v0 on) for replicas and ISR, Fetch (v4 on) for the records that survived a
failover, Produce (v3 on) for NOT_ENOUGH_REPLICAS.  The records written before a failover, and the
waits for the ISR to change, use one version: they are setup.
"""

from __future__ import annotations

import time
import uuid

import pytest

from conformance import raw, speak
from reference.errors import Errors


def _partition(bootstrap, topic, partition=0):
    """The partition's state from the first bootstrap broker that answers (some may be down)."""
    for address in bootstrap.split(","):
        try:
            with raw.Connection.to(address, timeout=3) as conn:
                return raw.metadata(conn, [topic], version=7).topics[topic].partitions[partition]
        except (OSError, raw.ConnectionClosed):
            continue
    raise AssertionError("no bootstrap broker answered Metadata")


def test_replicas_and_isr_of_new_topic(topics, capabilities, bootstrap):
    """A topic created with replication factor 3 has 3 distinct replicas, all in sync, and the
    leader is one of them (invariant LeaderInIsr), as every Metadata version both sides speak
    reports it; versions that add a field agree on it: no offline replicas (v5+), one leader epoch
    (v7+), the topic's id (v10+)."""
    capabilities.require_brokers(3)
    topic = topics.create(partitions=3, replication_factor=3)
    for partition in range(3):
        deadline = time.monotonic() + 15
        state = _partition(bootstrap, topic, partition)
        while len(state.isr) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
            state = _partition(bootstrap, topic, partition)
    with raw.Connection.to(bootstrap.split(",")[0].strip()) as conn:
        topic_id = uuid.UUID(bytes=raw.topic_id(conn, topic))
        epochs: dict[int, set[int]] = {0: set(), 1: set(), 2: set()}
        for version in speak.versions(capabilities, raw.METADATA):
            (described,) = speak.metadata(conn, [topic], version).topics
            assert (described.error_code, described.name) == (0, topic), f"Metadata v{version}: {described}"
            if version >= 10:
                assert described.topic_id == topic_id, f"Metadata v{version}: topic id {described.topic_id}"
            assert sorted(p.partition_index for p in described.partitions) == [0, 1, 2], f"Metadata v{version}"
            for state in described.partitions:
                where = f"Metadata v{version} partition {state.partition_index}: {state}"
                assert state.error_code == 0, where
                assert len(set(state.replica_nodes)) == 3, where
                assert set(state.isr_nodes) == set(state.replica_nodes), where
                assert state.leader_id in state.isr_nodes, where
                if version >= 5:
                    assert state.offline_replicas == [], where
                if version >= 7:
                    epochs[state.partition_index].add(state.leader_epoch)
        assert all(len(seen) <= 1 and min(seen, default=0) >= 0 for seen in epochs.values()), \
            f"leader epochs by partition across Metadata versions: {epochs}"


def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _restart_and_wait_isr(cluster_control, node_id, bootstrap, topic, replicas):
    cluster_control.restart(node_id)
    _wait_for(lambda: len(_partition(bootstrap, topic).isr) == replicas, 60, "the restarted replica to rejoin the ISR")


@pytest.mark.slow
def test_leader_failover_keeps_acknowledged_records(topics, capabilities, cluster_control, bootstrap, broker):
    """Leader failover (KRaft controller elects a new leader from the ISR): after the leader is
    killed, a surviving ISR member leads with a higher leader epoch, every record acknowledged with
    acks=all is still there at the offset it was given (read at every Fetch version from v4), and
    producing continues at the next offset."""
    capabilities.require_brokers(3)
    topic = topics.create(replication_factor=3, configs={"min.insync.replicas": "2"})
    _wait_for(lambda: len(_partition(bootstrap, topic).isr) == 3, 20, "a full ISR")
    before = _partition(bootstrap, topic)
    conn = broker.leader(topic)
    acknowledged = []
    for i in range(10):
        result = raw.produce(conn, topic, 0, raw.record_batch([raw.Record(None, f"before-{i}".encode())]))
        assert result.error_code == 0
        acknowledged.append(result.base_offset)
    assert acknowledged == list(range(10))
    cluster_control.kill(before.leader)
    try:
        after = _wait_for(lambda: (lambda p: p if p.leader not in (-1, before.leader) else None)(
            _partition(bootstrap, topic)), _failover_timeout_s(capabilities), "a new leader")
        assert after.leader in before.isr, f"new leader {after.leader} was not in the ISR {before.isr}"
        assert after.leader_epoch > before.leader_epoch, f"leader epoch {before.leader_epoch} -> {after.leader_epoch}"
        new_conn = broker.leader(topic)
        # The new leader may take a moment to serve the partition after Metadata names it; only a
        # successful answer ends the wait.
        written = _wait_for(lambda: (lambda r: r if r.error_code == 0 else None)(raw.produce(
            new_conn, topic, 0, raw.record_batch([raw.Record(None, b"after")]))), 30,
            "a successful produce on the new leader")
        assert written.base_offset == len(acknowledged), f"expected offset {len(acknowledged)}, observed {written}"
        for version in speak.versions(capabilities, raw.FETCH, 4):
            fetched = speak.fetch(new_conn, topic, version, offset=0, max_wait_ms=100)
            offsets = [batch.base_offset for batch in fetched.batches if batch.record_count == 1]
            assert (fetched.error_code, offsets) == (0, acknowledged + [written.base_offset]), \
                f"Fetch v{version} from the new leader: acknowledged records lost: {fetched}"
    finally:
        _restart_and_wait_isr(cluster_control, before.leader, bootstrap, topic, 3)


def _failover_timeout_s(capabilities):
    """How long a dead broker can keep its place: the controller fences it after
    ``broker.session.timeout.ms`` and a leader drops a lagging follower after
    ``replica.lag.time.max.ms`` (both read from the broker), plus 30 s for a busy machine."""
    session = capabilities.broker_config_ms("broker.session.timeout.ms")
    lag = capabilities.broker_config_ms("replica.lag.time.max.ms")
    if session is None or lag is None:
        pytest.skip("broker does not report broker.session.timeout.ms and replica.lag.time.max.ms")
    return max(session, lag) / 1000 + 30


@pytest.mark.slow
def test_isr_shrink_blocks_acks_all(topics, capabilities, cluster_control, bootstrap, broker):
    """When a follower dies the ISR shrinks (broker fenced by the controller); with
    min.insync.replicas=3 acks=all then fails with NOT_ENOUGH_REPLICAS (19) and nothing appended,
    while acks=1 works, at every Produce version from v3."""
    capabilities.require_brokers(3)
    topic = topics.create(replication_factor=3, configs={"min.insync.replicas": "3"})
    state = _wait_for(lambda: (lambda p: p if len(p.isr) == 3 else None)(_partition(bootstrap, topic)), 20,
                      "a full ISR")
    follower = next(r for r in state.replicas if r != state.leader)
    conn = broker.leader(topic)
    assert raw.produce(conn, topic, 0, raw.record_batch([raw.Record(None, b"full")])).error_code == 0
    cluster_control.kill(follower)
    try:
        # Ask the leader itself: it applies the ISR change from the metadata log, perhaps after others.
        leader_address = broker.leader_address(topic)
        _wait_for(lambda: follower not in _partition(leader_address, topic).isr, _failover_timeout_s(capabilities),
                  "the ISR to shrink")
        # The metadata answer can show the shrink a moment before the leader's partition applies
        # it; a request appended in that moment waits for the dead follower and times out
        # (REQUEST_TIMED_OUT, 7).  That, and only that, is retried: once the shrink is in effect
        # the answer must be NOT_ENOUGH_REPLICAS.
        deadline = time.monotonic() + 60
        while True:
            refused = raw.produce(conn, topic, 0, raw.record_batch([raw.Record(None, b"all")]), acks=-1,
                                  timeout_ms=3000)
            if refused.error_code != Errors.REQUEST_TIMED_OUT.code or time.monotonic() > deadline:
                break
        assert refused.error_code == Errors.NOT_ENOUGH_REPLICAS.code, f"expected 19, observed {refused}"
        # A request answered REQUEST_TIMED_OUT above was appended (only its replication timed out),
        # and ListOffsets answers the high watermark, which may not have caught up with it yet; so
        # the log end is learned from an acks=1 append, and every later offset follows from it.
        mark = raw.produce(conn, topic, 0, raw.record_batch([raw.Record(None, b"mark")]), acks=1)
        assert mark.error_code == 0, f"acks=1 with a shrunk ISR: {mark}"
        for version in speak.versions(capabilities, raw.PRODUCE, 3):
            refused = speak.produce(conn, topic, raw.record_batch([raw.Record(None, b"all")]), version, timeout_ms=3000)
            assert refused is not None
            # Kafka refuses before appending (Partition.appendRecordsToLeader) yet answers the
            # partition's log start offset, 0 here.
            assert speak.produce_answer(refused, version) == speak.produce_expected(
                version, error_code=Errors.NOT_ENOUGH_REPLICAS.code, log_start_offset=0), \
                f"Produce v{version} acks=all: {refused}"
        # The NOT_ENOUGH_REPLICAS refusals appended nothing: the acks=1 appends take the offsets
        # right after the mark.
        for offset, version in enumerate(speak.versions(capabilities, raw.PRODUCE, 3), start=mark.base_offset + 1):
            accepted = speak.produce(conn, topic, raw.record_batch([raw.Record(None, b"one")]), version, acks=1)
            assert accepted is not None and (accepted.error_code, accepted.base_offset) == (0, offset), \
                f"Produce v{version} acks=1: expected offset {offset}, observed {accepted}"
    finally:
        _restart_and_wait_isr(cluster_control, follower, bootstrap, topic, 3)
