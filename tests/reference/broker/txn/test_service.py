"""The transaction coordinator inside the sans-IO broker core, on a fake clock: ``__transaction_state``
is written and replayed on restart, a transaction older than its timeout is aborted by ``poll`` and
an idle transactional id dropped, each on its own configurable interval, markers reach the data partitions and ``__consumer_offsets``, and ApiVersions advertises the APIs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reference.broker.txn.service import TRANSACTION_STATE_TOPIC
from reference.broker.txn.state import TransactionState
from reference.protocol.apis import API_BY_NAME
from reference.records.batch import SimpleRecord, build_batch, iter_record_batches
from reference.records.control import decode_end_transaction_marker

from ..test_core import START_MS, Harness

TXN = "txn-1"
ABORT_TIMED_OUT_INTERVAL_MS = 10_000  # transaction.abort.timed.out.transaction.cleanup.interval.ms, Kafka's default


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path / "broker")
    yield h
    h.broker.shutdown()


def begin(h: Harness, topic: str, timeout_ms: int = 60_000) -> tuple[int, int]:
    found = h.call("FindCoordinator", 4, key_type=1, coordinator_keys=[TXN]).coordinators[0]
    assert (found.error_code, found.node_id) == (0, 1)
    ids = h.call("InitProducerId", 4, transactional_id=TXN, transaction_timeout_ms=timeout_ms)
    assert ids.error_code == 0
    entry = API_BY_NAME["AddPartitionsToTxn"].request.struct("AddPartitionsToTxnTopic").make(name=topic, partitions=[0])
    added = h.call("AddPartitionsToTxn", 3, v3_and_below_transactional_id=TXN, v3_and_below_producer_id=ids.producer_id,
                   v3_and_below_producer_epoch=ids.producer_epoch, v3_and_below_topics=[entry])
    assert added.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code == 0
    records = build_batch([SimpleRecord(b"v", None, START_MS)], producer_id=ids.producer_id,
                          producer_epoch=ids.producer_epoch, base_sequence=0, transactional=True)
    api = API_BY_NAME["Produce"]
    answer = h.call("Produce", 9, transactional_id=TXN, acks=-1, timeout_ms=1000, topic_data=[
        api.request.struct("TopicProduceData").make(name=topic, partition_data=[
            api.request.struct("PartitionProduceData").make(index=0, records=records)])])
    assert answer.responses[0].partition_responses[0].error_code == 0
    return ids.producer_id, ids.producer_epoch


def markers(h: Harness, topic: str, partition: int = 0) -> list[tuple[int, int, bool]]:
    found = []
    for chunk in h.broker.replicas.read_all(topic, partition):
        for stored in iter_record_batches(chunk):
            if stored.is_control:
                found.append((stored.producer_id, stored.producer_epoch, decode_end_transaction_marker(stored).is_commit))
    return found


def test_the_transaction_apis_are_advertised(harness: Harness) -> None:
    advertised = {k.api_key: (k.min_version, k.max_version) for k in harness.call("ApiVersions", 3, client_software_name="refka-test",
                                                                          client_software_version="1.0").api_keys}
    assert {key: advertised.get(key) for key in (24, 25, 26, 27, 28, 61, 65, 66)} == {
        24: (0, 5), 25: (0, 4), 26: (0, 5), 27: (1, 2), 28: (0, 5), 61: (0, 0), 65: (0, 0), 66: (0, 2)}


def test_a_transaction_older_than_its_timeout_is_aborted_by_poll(harness: Harness) -> None:
    harness.create_topic("t")
    pid, epoch = begin(harness, "t", timeout_ms=15_000)
    replica = harness.broker.replicas.require("t", 0)
    assert replica.last_stable_offset == 0
    harness.advance(ABORT_TIMED_OUT_INTERVAL_MS)
    assert markers(harness, "t") == [], "not yet timed out"
    harness.advance(ABORT_TIMED_OUT_INTERVAL_MS)
    assert markers(harness, "t") == [(pid, epoch + 1, False)], "aborted with the fenced epoch"
    assert replica.last_stable_offset == replica.high_watermark == 2
    state = harness.broker.transactions.coordinator.transactions[TXN]
    assert (state.state, state.producer_epoch) == (TransactionState.COMPLETE_ABORT, epoch + 1)


def test_timeouts_and_id_expiry_are_checked_on_their_own_configured_intervals(tmp_path: Path) -> None:
    """Kafka runs two timers: aborting timed-out transactions every
    transaction.abort.timed.out.transaction.cleanup.interval.ms, dropping idle transactional ids every
    transaction.remove.expired.transaction.cleanup.interval.ms.  With the first at 1 s and the second at
    1 min, a 2 s transaction is aborted within seconds while its id, idle past
    transactional.id.expiration.ms, survives until the expiry timer runs."""
    h = Harness(tmp_path / "broker", **{"transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
                                        "transaction.remove.expired.transaction.cleanup.interval.ms": "60000",
                                        "transactional.id.expiration.ms": "5000"})
    try:
        h.create_topic("t")
        pid, epoch = begin(h, "t", timeout_ms=2_000)
        h.advance(3_000)
        assert markers(h, "t") == [(pid, epoch + 1, False)], "aborted on the 1 s timer"
        h.advance(10_000)
        assert TXN in h.broker.transactions.coordinator.transactions, "idle past expiry, but the expiry timer has not run"
        h.advance(50_000)
        assert TXN not in h.broker.transactions.coordinator.transactions, "dropped when the 60 s expiry timer ran"
    finally:
        h.broker.shutdown()


def test_the_coordinator_state_survives_a_restart(harness: Harness) -> None:
    harness.create_topic("t")
    pid, epoch = begin(harness, "t")
    harness.restart()
    state = harness.broker.transactions.coordinator.transactions[TXN]
    assert (state.state, state.producer_id, state.producer_epoch, state.partitions) == (
        TransactionState.ONGOING, pid, epoch, {("t", 0)})
    ended = harness.call("EndTxn", 3, transactional_id=TXN, producer_id=pid, producer_epoch=epoch, committed=True)
    assert ended.error_code == 0
    assert markers(harness, "t") == [(pid, epoch, True)]
    assert TRANSACTION_STATE_TOPIC in harness.broker.topics


def test_a_read_committed_fetch_waiting_for_data_is_answered_when_the_marker_moves_the_lso(harness: Harness) -> None:
    harness.create_topic("t")
    pid, epoch = begin(harness, "t")
    request = harness.fetch_request("t", 0, 0, min_bytes=1, max_wait_ms=5_000)
    parked = harness.send("Fetch", 12, replica_id=-1, isolation_level=1, session_id=0, session_epoch=-1, **request)
    assert not parked.done, "nothing is stable yet"
    correlation_id = harness.correlation_id
    harness.call("EndTxn", 3, transactional_id=TXN, producer_id=pid, producer_epoch=epoch, committed=True)
    assert parked.done
    answer = harness.decode("Fetch", 12, parked.result, correlation_id).responses[0].partitions[0]
    assert (answer.last_stable_offset, list(answer.aborted_transactions)) == (2, [])
    assert answer.records
