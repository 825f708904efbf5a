"""Replication between three real broker cores: follower fetchers, ISR changes, high watermark,
acks=all, truncation and failover, at the wire (see ``replication_cluster`` for the transport)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from reference.broker.partition import Partition
from reference.broker.pending import Pending
from reference.broker.replica_fetcher import ReplicaState
from reference.errors import Errors
from reference.protocol.apis import API_BY_NAME
from reference.protocol.frames import decode_response, encode_request
from reference.protocol.schema import Data

from .log.helpers import batch, decoded
from .replication_cluster import Cluster, ProduceCall

LAG_TIME_MS = 30_000  # replica.lag.time.max.ms
FETCH = API_BY_NAME["Fetch"]


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    return Cluster(tmp_path)


def records(replica: Partition) -> list[tuple[int, int, bytes | None]]:
    """(offset, leader epoch, value) of every record in the replica's log."""
    log = replica.log
    found: list[tuple[int, int, bytes | None]] = []
    if log.log_end_offset == log.log_start_offset:
        return found
    for stored in decoded(log.read(log.log_start_offset, 1 << 20, log.log_end_offset).records):
        found += [(stored.record_offset(r), stored.partition_leader_epoch, r.value) for r in stored.records]
    return found


def value(name: str) -> bytes:
    return batch(value=name.encode())


def call_done(call: ProduceCall) -> Callable[[], bool]:
    return lambda: call.done


def caught_up(cluster: Cluster, topic: str, brokers: tuple[int, ...] = (1, 2, 3)) -> bool:
    leader = cluster.record(topic).leader
    end = cluster.replica(leader, topic).log_end_offset
    high_watermark = cluster.replica(leader, topic).high_watermark
    return all(cluster.replica(b, topic).log_end_offset == end and cluster.replica(b, topic).high_watermark
               == high_watermark for b in brokers)


def test_followers_fetch_the_leaders_batches_with_their_offsets_epochs_and_high_watermark(cluster: Cluster) -> None:
    cluster.create_topic("t", [1, 2, 3])
    for name in ("a", "b", "c"):
        assert cluster.produce(1, "t", value(name), acks=1).partition.error_code == 0
    cluster.run_until(lambda: caught_up(cluster, "t") and cluster.replica(1, "t").high_watermark == 3)
    expected = [(0, 0, b"a"), (1, 0, b"b"), (2, 0, b"c")]
    assert [records(cluster.replica(b, "t")) for b in (1, 2, 3)] == [expected] * 3
    for broker_id in (1, 2, 3):
        cluster.replica(broker_id, "t").check_valid()


def test_acks_all_is_answered_only_once_both_followers_have_the_batch(cluster: Cluster) -> None:
    cluster.create_topic("t", [1, 2, 3])
    cluster.isolated = {3}
    call = cluster.produce(1, "t", value("a"), acks=-1)
    cluster.settle(5_000)  # well inside replica.lag.time.max.ms: 3 stays in the ISR
    assert not call.done
    assert cluster.replica(2, "t").log_end_offset == 1 and cluster.replica(3, "t").log_end_offset == 0
    assert cluster.replica(1, "t").high_watermark == 0
    cluster.isolated = set()
    cluster.run_until(lambda: call.done)
    assert call.partition.error_code == 0 and call.partition.base_offset == 0
    assert cluster.replica(2, "t").log_end_offset == cluster.replica(3, "t").log_end_offset == 1


def test_a_lagging_follower_leaves_the_isr_after_the_lag_time_and_rejoins_once_caught_up(cluster: Cluster) -> None:
    cluster.create_topic("t", [1, 2, 3], configs={"min.insync.replicas": "2"})
    cluster.isolated = {3}
    call = cluster.produce(1, "t", value("a"), acks=-1, timeout_ms=3 * LAG_TIME_MS)
    cluster.settle(LAG_TIME_MS - 5_000)
    assert cluster.record("t").isr == [1, 2, 3] and not call.done  # not shrunk before the lag time
    cluster.run_until(lambda: cluster.record("t").isr == [1, 2], max_ms=20_000)
    assert cluster.replica(1, "t").isr == {1, 2}
    cluster.run_until(lambda: call.done)  # the HW no longer waits for 3
    assert call.partition.error_code == 0
    assert cluster.replica(3, "t").log_end_offset == 0
    later = cluster.produce(1, "t", value("b"), acks=-1)
    cluster.run_until(lambda: later.done)
    assert later.partition.error_code == 0

    cluster.isolated = set()
    cluster.run_until(lambda: cluster.record("t").isr == [1, 2, 3])
    assert cluster.replica(1, "t").isr == {1, 2, 3}
    assert cluster.replica(3, "t").log_end_offset >= cluster.replica(1, "t").high_watermark == 2
    cluster.replica(1, "t").check_valid()


def test_a_follower_with_a_divergent_tail_truncates_it_and_takes_the_new_leaders_records(cluster: Cluster) -> None:
    cluster.create_topic("t", [1, 2, 3])
    cluster.produce(1, "t", value("a"), acks=-1)
    cluster.run_until(lambda: caught_up(cluster, "t"))
    cluster.isolated = {1}  # 1 takes two writes nobody replicates
    assert cluster.produce(1, "t", value("lost-1"), acks=1).partition.error_code == 0
    assert cluster.produce(1, "t", value("lost-2"), acks=1).partition.error_code == 0
    cluster.elect("t", 2, isr=[2, 3])
    assert cluster.produce(2, "t", value("b"), acks=1).partition.base_offset == 1
    cluster.isolated = set()
    cluster.run_until(lambda: caught_up(cluster, "t"))
    expected = [(0, 0, b"a"), (1, 1, b"b")]
    assert [records(cluster.replica(b, "t")) for b in (1, 2, 3)] == [expected] * 3
    assert cluster.replica(1, "t").log.leader_epoch_cache.entries == cluster.replica(2, "t").log.leader_epoch_cache.entries
    for broker_id in (1, 2, 3):
        cluster.replica(broker_id, "t").check_valid()


def test_leader_changes_keep_every_record_acknowledged_with_acks_all(cluster: Cluster) -> None:
    cluster.create_topic("t", [1, 2, 3], configs={"min.insync.replicas": "2"})
    acknowledged: dict[int, bytes] = {}
    leaders = [1, 2, 3, 1]
    for round_number, leader in enumerate(leaders):
        if round_number:
            cluster.elect("t", leader)
        for n in range(3):
            payload = f"r{round_number}-{n}".encode()
            call = cluster.produce(leader, "t", batch(value=payload), acks=-1)
            cluster.run_until(call_done(call))
            assert call.partition.error_code == 0
            acknowledged[call.partition.base_offset] = payload
        # an unacknowledged tail on the leader that is about to be deposed
        cluster.isolated = {1, 2, 3} - {leader}
        orphan = cluster.produce(leader, "t", batch(value=b"orphan"), acks=-1, timeout_ms=1_000)
        cluster.run_until(call_done(orphan))
        assert orphan.partition.error_code == Errors.REQUEST_TIMED_OUT.code
        cluster.isolated = set()
    cluster.elect("t", 2)
    cluster.run_until(lambda: caught_up(cluster, "t"))
    for broker_id in (1, 2, 3):
        held = {offset: stored for offset, _, stored in records(cluster.replica(broker_id, "t"))}
        assert all(held.get(offset) == payload for offset, payload in acknowledged.items()), broker_id
        assert b"orphan" not in held.values()
        cluster.replica(broker_id, "t").check_valid()


def test_idempotent_deduplication_survives_a_failover(cluster: Cluster) -> None:
    cluster.create_topic("t", [1, 2, 3])
    first = batch(value=b"once", producer_id=4000, producer_epoch=0, base_sequence=0)
    call = cluster.produce(1, "t", first, acks=-1)
    cluster.run_until(lambda: call.done and caught_up(cluster, "t"))
    assert call.partition.base_offset == 0
    cluster.elect("t", 2)
    retry = cluster.produce(2, "t", first, acks=-1)  # the producer did not see the answer: it resends
    cluster.run_until(lambda: retry.done)
    assert retry.partition.error_code == 0 and retry.partition.base_offset == 0
    assert cluster.replica(2, "t").log_end_offset == 1
    gap = cluster.produce(2, "t", batch(value=b"gap", producer_id=4000, producer_epoch=0, base_sequence=5))
    assert gap.partition.error_code == Errors.OUT_OF_ORDER_SEQUENCE_NUMBER.code
    following = cluster.produce(2, "t", batch(value=b"next", producer_id=4000, producer_epoch=0, base_sequence=1))
    cluster.run_until(lambda: following.done)
    assert following.partition.error_code == 0 and following.partition.base_offset == 1


def test_acks_all_is_refused_before_the_append_when_the_isr_is_below_min_insync_replicas(cluster: Cluster) -> None:
    cluster.create_topic("t", [1, 2, 3], configs={"min.insync.replicas": "2"})
    cluster.isolated = {2, 3}
    cluster.run_until(lambda: cluster.record("t").isr == [1], max_ms=2 * LAG_TIME_MS)
    refused = cluster.produce(1, "t", value("a"), acks=-1)
    assert refused.partition.error_code == Errors.NOT_ENOUGH_REPLICAS.code
    assert cluster.replica(1, "t").log_end_offset == 0  # nothing appended
    accepted = cluster.produce(1, "t", value("a"), acks=1)
    assert accepted.partition.error_code == 0
    assert cluster.replica(1, "t").high_watermark == 0  # under min ISR the HW does not move (Kafka 3.7+)


def test_an_isr_shrinking_below_min_insync_replicas_while_acks_all_waits_never_acknowledges(cluster: Cluster) -> None:
    """Kafka 4.3 keeps the HW still while the ISR is below ``min.insync.replicas``, so a waiting
    acks=all request is not acknowledged: it times out.  NOT_ENOUGH_REPLICAS_AFTER_APPEND needs the
    HW to have passed the offset with the maximal ISR below the minimum, which a single-threaded
    broker reaches only through metadata (``test_partition``); in Kafka it is a thread race."""
    cluster.create_topic("t", [1, 2, 3], configs={"min.insync.replicas": "2"})
    cluster.isolated = {2, 3}
    call = cluster.produce(1, "t", value("a"), acks=-1, timeout_ms=2 * LAG_TIME_MS)
    cluster.run_until(lambda: cluster.record("t").isr == [1], max_ms=2 * LAG_TIME_MS)
    assert not call.done
    cluster.run_until(lambda: call.done)
    assert call.partition.error_code == Errors.REQUEST_TIMED_OUT.code
    assert cluster.replica(1, "t").high_watermark == 0


def test_the_acks_all_purgatory_answers_not_leader_when_leadership_moves(cluster: Cluster) -> None:
    cluster.create_topic("t", [1, 2, 3])
    cluster.isolated = {2, 3}
    call = cluster.produce(1, "t", value("a"), acks=-1)
    assert not call.done
    cluster.elect("t", 2, isr=[2, 3])
    assert call.done and call.partition.error_code == Errors.NOT_LEADER_OR_FOLLOWER.code
    follower = cluster.produce(1, "t", value("b"), acks=1)
    assert follower.partition.error_code == Errors.NOT_LEADER_OR_FOLLOWER.code


def _follower_fetch(cluster: Cluster, to: int, replica_id: int, current_leader_epoch: int, fetch_offset: int = 0,
                    last_fetched_epoch: int = -1, version: int = 16) -> Data:
    topic_id = cluster.brokers[to].topics.get("t").topic_id  # type: ignore[union-attr]
    body = FETCH.request.make(
        replica_id=replica_id, replica_state=FETCH.request.struct("ReplicaState").make(replica_id=replica_id,
                                                                                        replica_epoch=100 + replica_id),
        max_wait_ms=0, min_bytes=1, topics=[FETCH.request.struct("FetchTopic").make(topic="t", topic_id=topic_id,
            partitions=[FETCH.request.struct("FetchPartition").make(
                partition=0, current_leader_epoch=current_leader_epoch, fetch_offset=fetch_offset,
                last_fetched_epoch=last_fetched_epoch, partition_max_bytes=1 << 20)])],
        forgotten_topics_data=[])
    reply = cluster.brokers[to].handle_frame(encode_request(FETCH, version, 7, "test", body)[4:], cluster.now_ms)
    assert isinstance(reply, Pending) and reply.done, "a fetch with max_wait_ms=0 is answered at once"
    reply = reply.result
    _, response = decode_response(FETCH, version, reply[4:])
    answer: Data = response.responses[0].partitions[0]
    return answer


def test_follower_fetches_are_fenced_by_leader_epoch_and_replica_set_at_the_wire(cluster: Cluster) -> None:
    cluster.create_topic("t", [1, 2, 3])
    cluster.produce(1, "t", value("a"), acks=-1)
    cluster.elect("t", 1)  # leader epoch 1 on broker 1
    assert _follower_fetch(cluster, 1, 2, current_leader_epoch=0).error_code == Errors.FENCED_LEADER_EPOCH.code
    assert _follower_fetch(cluster, 1, 2, current_leader_epoch=2).error_code == Errors.UNKNOWN_LEADER_EPOCH.code
    assert _follower_fetch(cluster, 2, 3, current_leader_epoch=1).error_code == Errors.NOT_LEADER_OR_FOLLOWER.code
    assert _follower_fetch(cluster, 1, 7, current_leader_epoch=1).error_code == Errors.UNKNOWN_LEADER_EPOCH.code
    assert _follower_fetch(cluster, 1, 7, current_leader_epoch=-1, version=14).error_code == \
        Errors.NOT_LEADER_OR_FOLLOWER.code
    diverging = _follower_fetch(cluster, 1, 2, current_leader_epoch=1, fetch_offset=5, last_fetched_epoch=0)
    assert diverging.error_code == 0 and (diverging.diverging_epoch.epoch, diverging.diverging_epoch.end_offset) == (0, 1)
    assert diverging.records in (b"", None)
    ok = _follower_fetch(cluster, 1, 2, current_leader_epoch=1, fetch_offset=0, last_fetched_epoch=-1)
    assert ok.error_code == 0 and [r.value for b in decoded(ok.records) for r in b.records] == [b"a"]


def test_a_follower_fenced_by_a_newer_epoch_waits_for_metadata_then_follows_the_new_leader(cluster: Cluster) -> None:
    cluster.create_topic("t", [1, 2, 3])
    cluster.run_until(lambda: caught_up(cluster, "t"))
    record = cluster.record("t")
    record.leader, record.leader_epoch, record.partition_epoch = 2, 1, 1
    cluster.publish("t", to=[1, 2])  # broker 3 misses the change: it still fetches from 1 in epoch 0
    cluster.produce(2, "t", value("a"), acks=1)
    cluster.settle(3_000)
    fetch_state = cluster.brokers[3].replicas.fetchers.fetch_state(cluster.replica(3, "t").log.topic_partition)
    assert fetch_state is not None and fetch_state.state is ReplicaState.FAILED
    assert cluster.replica(3, "t").log_end_offset == 0
    cluster.publish("t", to=[3])
    cluster.run_until(lambda: caught_up(cluster, "t"))
    assert records(cluster.replica(3, "t")) == [(0, 1, b"a")]


def test_a_restarted_follower_catches_up_from_its_log_end(cluster: Cluster) -> None:
    cluster.create_topic("t", [1, 2, 3])
    for name in ("a", "b"):
        cluster.produce(1, "t", value(name), acks=-1)
    cluster.run_until(lambda: caught_up(cluster, "t"))
    cluster.crash(3)
    cluster.produce(1, "t", value("c"), acks=1)
    cluster.start(3)
    cluster.publish("t", to=[3])
    cluster.run_until(lambda: caught_up(cluster, "t"))
    assert [v for _, _, v in records(cluster.replica(3, "t"))] == [b"a", b"b", b"c"]


@pytest.mark.parametrize("seed", range(12))
def test_random_faults_and_clean_elections_never_lose_an_acknowledged_record(tmp_path: Path, seed: int) -> None:
    """A seeded walk: produces with acks=all and acks=1, brokers cut off and healed, time passing
    past the lag time, clean elections of a reachable ISR member, a controller that sits on
    AlterPartition requests for a while (pending ISR changes); after every step the replication
    model's invariants hold on the real cores, and every acks=all acknowledgement stays."""
    rng = random.Random(seed)
    cluster = Cluster(tmp_path)
    cluster.create_topic("t", [1, 2, 3], configs={"min.insync.replicas": "2"})
    acknowledged: dict[int, bytes] = {}
    waiting: list[tuple[ProduceCall, bytes]] = []
    for step in range(80):
        action = rng.choice(["produce", "produce", "produce-acks-1", "cut", "heal", "wait", "wait", "elect",
                             "hold-controller", "release-controller"])
        leader = cluster.record("t").leader
        if action.startswith("produce"):
            payload = f"s{seed}-{step}".encode()
            call = cluster.produce(leader, "t", batch(value=payload), acks=1 if action == "produce-acks-1" else -1,
                                   timeout_ms=5_000)
            if action == "produce":
                waiting.append((call, payload))
        elif action == "cut" and len(cluster.isolated) < 2:
            cluster.isolated.add(rng.choice([1, 2, 3]))
        elif action == "heal":
            cluster.isolated = set()
        elif action == "wait":
            cluster.settle(rng.choice([200, 2_000, 40_000]), step_ms=200)
        elif action == "elect":
            candidates = [b for b in cluster.record("t").isr if b not in cluster.isolated]
            if candidates:
                cluster.elect("t", rng.choice(candidates))
        elif action == "hold-controller":  # ISR changes stay pending for a while
            cluster.controller.hold = True
        elif action == "release-controller":
            cluster.controller.release(cluster.now_ms)
        cluster.deliver()
        for call, payload in list(waiting):
            if call.done:
                waiting.remove((call, payload))
                if call.partition.error_code == 0:
                    acknowledged[call.partition.base_offset] = payload
        cluster.check_invariants("t", acknowledged)
    cluster.isolated = set()
    cluster.controller.release(cluster.now_ms)
    cluster.run_until(lambda: caught_up(cluster, "t") and not any(not call.done for call, _ in waiting))
    cluster.check_invariants("t", acknowledged)


def _call(cluster: Cluster, broker_id: int, api_name: str, version: int, **fields: object) -> Data:
    api = API_BY_NAME[api_name]
    reply = cluster.brokers[broker_id].handle_frame(
        encode_request(api, version, 9, "client", api.request.make(**fields))[4:], cluster.now_ms)
    if isinstance(reply, Pending):
        assert reply.done
        reply = reply.result
    _, body = decode_response(api, version, reply[4:])
    return body


def test_old_consumers_offsets_and_epoch_queries_must_go_to_the_leader_new_consumers_may_read_followers(
    cluster: Cluster,
) -> None:
    cluster.create_topic("t", [1, 2, 3])
    cluster.produce(1, "t", value("a"), acks=-1)
    cluster.run_until(lambda: caught_up(cluster, "t"))

    def consumer_fetch(broker_id: int, version: int) -> Data:
        topic_id = cluster.brokers[broker_id].topics.get("t").topic_id  # type: ignore[union-attr]
        body = _call(cluster, broker_id, "Fetch", version, max_wait_ms=0, min_bytes=1, topics=[
            FETCH.request.struct("FetchTopic").make(topic="t", topic_id=topic_id, partitions=[
                FETCH.request.struct("FetchPartition").make(partition=0, fetch_offset=0,
                                                            partition_max_bytes=1 << 20)])],
            forgotten_topics_data=[])
        answer: Data = body.responses[0].partitions[0]
        return answer

    assert consumer_fetch(2, 10).error_code == Errors.NOT_LEADER_OR_FOLLOWER.code
    from_follower = consumer_fetch(2, 12)  # KIP-392: up to the follower's own HW
    assert from_follower.error_code == 0 and from_follower.high_watermark == 1
    assert [r.value for b in decoded(from_follower.records) for r in b.records] == [b"a"]
    list_offsets = API_BY_NAME["ListOffsets"]
    for broker_id, expected in ((2, Errors.NOT_LEADER_OR_FOLLOWER.code), (1, 0)):
        body = _call(cluster, broker_id, "ListOffsets", 7, replica_id=-1, isolation_level=0, topics=[
            list_offsets.request.struct("ListOffsetsTopic").make(name="t", partitions=[
                list_offsets.request.struct("ListOffsetsPartition").make(partition_index=0, timestamp=-1)])])
        assert body.topics[0].partitions[0].error_code == expected
    epochs = API_BY_NAME["OffsetForLeaderEpoch"]
    for broker_id, expected in ((3, Errors.NOT_LEADER_OR_FOLLOWER.code), (1, 0)):
        body = _call(cluster, broker_id, "OffsetForLeaderEpoch", 4, replica_id=-1, topics=[
            epochs.request.struct("OffsetForLeaderTopic").make(topic="t", partitions=[
                epochs.request.struct("OffsetForLeaderPartition").make(partition=0, leader_epoch=0)])])
        assert body.topics[0].partitions[0].error_code == expected


def test_the_brokers_own_appends_can_wait_for_replication_like_acks_all(cluster: Cluster) -> None:
    cluster.create_topic("t", [1, 2, 3])
    cluster.isolated = {2, 3}
    info = cluster.brokers[1].replicas.append_internal("t", 0, value("commit"), cluster.now_ms)
    replicated = cluster.brokers[1].replicas.await_replication("t", 0, info.last_offset + 1, 30_000, cluster.now_ms)
    cluster.settle(2_000)
    assert not replicated.done
    cluster.isolated = set()
    cluster.run_until(lambda: replicated.done)
    assert replicated.result == Errors.NONE
    assert cluster.replica(2, "t").log_end_offset == cluster.replica(3, "t").log_end_offset == 1
