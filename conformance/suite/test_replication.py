"""Replication: ISR, min.insync.replicas with acks=all, leader failover (multi-node tests)."""

from __future__ import annotations

import time

import pytest

from conformance import raw
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
    leader is one of them (invariant LeaderInIsr)."""
    capabilities.require_brokers(3)
    topic = topics.create(partitions=3, replication_factor=3)
    for partition in range(3):
        deadline = time.monotonic() + 15
        state = _partition(bootstrap, topic, partition)
        while len(state.isr) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
            state = _partition(bootstrap, topic, partition)
        assert len(set(state.replicas)) == 3
        assert set(state.isr) == set(state.replicas), f"partition {partition}: {state}"
        assert state.leader in state.isr


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
    acks=all is still there at the offset it was given, and producing continues at the next offset."""
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
        fetched = raw.fetch(new_conn, topic, 0, offset=0, max_wait_ms=100)
        assert fetched.error_code == 0
        offsets = [batch.base_offset for batch in fetched.batches if batch.record_count == 1]
        assert offsets == acknowledged + [written.base_offset], f"acknowledged records lost: {fetched}"
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
    min.insync.replicas=3 acks=all then fails with NOT_ENOUGH_REPLICAS (19) while acks=1 works."""
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
        accepted = raw.produce(conn, topic, 0, raw.record_batch([raw.Record(None, b"one")]), acks=1)
        assert accepted.error_code == 0
    finally:
        _restart_and_wait_isr(cluster_control, follower, bootstrap, topic, 3)
