"""The situations behind the two guards the swarm catches least: the fault shape that makes the
swarm reach the first, and both driven step by step on real broker cores (tests/reference/broker/replication_cluster.py: three brokers, a fake controller that
publishes to the brokers we name, a manual clock), each with its guard on and off.

* ``match_epoch_lineage`` (KIP-279): without it the real code does not lose records -- the next
  Fetch names the follower's last epoch again and the leader answers the same diverging epoch
  (KIP-595's check on every fetch) -- but the follower never gets past it: a livelock that keeps
  it out of the ISR for good (what ``refka sim`` reports as ``Liveness``).
* ``fence_fetch_epoch`` (KIP-320): a follower fetching in an older epoch than its leader's with a
  log that diverges is answered with the diverging epoch and not counted as caught up (KIP-595
  again: no ISR expansion or high watermark from it); what the guard alone prevents is the
  model's EpochsMonotonic counterexample -- a broker that copied records of a newer epoch and
  then, its metadata one step behind, leads an epoch between.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from chaos.sim.faults import (
    FOLLOWER,
    LEADER,
    LEADER_CRASH_STEP_MS,
    OTHER_FOLLOWER,
    draw_failover_while_lagging,
    draw_independent_faults,
    draw_leader_without_the_followers_epoch,
    draw_profile,
    draw_schedule,
)
from reference import guards
from reference.broker.core import Broker
from reference.records.batch import iter_batches
from tests.reference.broker.log.helpers import batch
from tests.reference.broker.replication_cluster import Cluster

TOPIC = "t"
A, B, C = 1, 2, 3  # broker ids


def epochs(broker: Broker) -> list[int]:
    """The partition leader epoch of every batch of ``t-0`` on ``broker``, in log order."""
    log = broker.replicas.require(TOPIC, 0).log
    data = log.read(log.log_start_offset, 1 << 30, log.log_end_offset).records if log.log_end_offset else b""
    return [header.partition_leader_epoch for _, header in iter_batches(bytes(data))]


def produce(cluster: Cluster, broker_id: int, count: int) -> None:
    """``count`` acks=1 batches to ``broker_id``, each answered (appended) at once."""
    for _ in range(count):
        call = cluster.produce(broker_id, TOPIC, batch(1), acks=1)
        cluster.deliver()
        assert call.done and call.partition.error_code == 0


def exchange(cluster: Cluster, round_trips: int) -> bool:
    """Like ``Cluster.deliver`` but for at most ``round_trips`` rounds (a livelocked follower fetches
    again at once, for ever); True if the brokers fell quiet."""
    for _ in range(round_trips):
        requests = [(source, request) for source, broker in list(cluster.brokers.items())
                    for request in broker.outbox.drain()]
        if not requests:
            return True
        for source, request in requests:
            cluster._deliver(source, request)
        cluster._publish_committed()
    return False


def set_leader(cluster: Cluster, leader: int, isr: list[int], publish_to: list[int]) -> None:
    """The controller elects ``leader`` in the next leader epoch; only ``publish_to`` hear of it
    (the others' metadata lags)."""
    record = cluster.record(TOPIC)
    record.leader, record.isr = leader, list(isr)
    record.leader_epoch += 1
    record.partition_epoch += 1
    cluster.publish(TOPIC, to=publish_to)


# -- match_epoch_lineage -------------------------------------------------------------------------


def lineage_situation(cluster: Cluster) -> None:
    """B leads epoch 1 from a shorter epoch-0 log than C's, C never fetches from it, and C leads
    epoch 2 without epoch 1 (the situation of the swarm's probe truncation-kip279-differs-from-kip101):

    epoch 0, leader A: 2 batches everywhere, then 3 more that C copies and B (cut off) does not;
    epoch 1, leader B (A crashed; C's metadata lags, so it keeps fetching from A): 4 batches on B;
    epoch 2, leader C (B crashed): 1 batch; B restarts and follows C."""
    cluster.create_topic(TOPIC, [A, B, C])
    produce(cluster, A, 2)
    cluster.settle(500)
    cluster.isolated.add(B)
    produce(cluster, A, 3)
    cluster.settle(500)
    cluster.isolated.discard(B)
    cluster.crash(A)
    set_leader(cluster, B, [B, C], publish_to=[B])
    produce(cluster, B, 4)
    cluster.crash(B)
    set_leader(cluster, C, [C], publish_to=[C])
    produce(cluster, C, 1)
    cluster.start(B)
    cluster.publish(TOPIC, to=[B])


@pytest.mark.parametrize("guard_on", [True, False])
def test_without_the_epoch_lineage_rule_a_follower_keeps_an_epoch_its_leader_never_had_and_livelocks(
        tmp_path: Path, guard_on: bool) -> None:
    """C's epoch 0 ends at 5, B's at 2, and B holds epoch 1 at 2..5.  C answers B's Fetch (last
    epoch 1) with "epoch 0 ends at 5".  KIP-279 stops at B's own end of epoch 0 (2) and B then
    copies C's log; KIP-101's rule keeps B's epoch-1 batches below 5, the next Fetch names epoch 1
    again, gets the same answer, and so on for ever: B never appends, never rejoins the ISR."""
    cluster = Cluster(tmp_path)
    lineage_situation(cluster)
    with guards.switch_off(set() if guard_on else {"match_epoch_lineage"}):
        quiet = exchange(cluster, 200)
    leader, follower = cluster.brokers[C], cluster.brokers[B]
    if guard_on:
        assert quiet and epochs(follower) == epochs(leader) == [0, 0, 0, 0, 0, 2]
    else:
        assert not quiet, "the follower is still fetching after 200 round trips"
        assert epochs(follower) == [0, 0, 1, 1, 1], "kept epoch 1 below C's end of epoch 0 (5)"
        assert epochs(leader) == [0, 0, 0, 0, 0, 2]
        assert B not in leader.replicas.require(TOPIC, 0).isr


# -- fence_fetch_epoch ---------------------------------------------------------------------------


def test_without_the_fetch_fence_a_broker_a_step_behind_in_metadata_writes_an_older_epoch_after_a_newer(
        tmp_path: Path) -> None:
    """The model's counterexample (spec/replication.py, EpochsMonotonic) in the real code: the
    controller moves leadership to B (epoch 1) and back to A (epoch 2) while B's metadata still says
    epoch 0, leader A.  Unfenced, B's Fetch in epoch 0 is served by A in epoch 2 and B copies
    epoch-2 batches; then B's metadata catches up one step, B leads epoch 1 and appends after
    them.  Fenced, B copies nothing until it learns epoch 2."""
    logs = {}
    for guard_on in (True, False):
        cluster = Cluster(tmp_path / str(guard_on))
        with guards.switch_off(set() if guard_on else {"fence_fetch_epoch"}):
            cluster.create_topic(TOPIC, [A, B, C])
            produce(cluster, A, 2)
            cluster.settle(500)
            set_leader(cluster, B, [A, B, C], publish_to=[C])
            epoch_1 = cluster.record(TOPIC).partition_epoch
            set_leader(cluster, A, [A, B, C], publish_to=[A, C])
            produce(cluster, A, 2)
            cluster.settle(500)
            cluster.brokers[B].replicas.apply_partition_state(TOPIC, 0, [A, B, C], [A, B, C], B, 1, epoch_1,
                                                              cluster.now_ms)
            produce(cluster, B, 1)  # a producer whose metadata also says epoch 1
            logs[guard_on] = epochs(cluster.brokers[B])
    assert logs[True] == [0, 0, 1]
    assert logs[False] == [0, 0, 2, 2, 1], "epoch 1 written after epoch 2 (EpochsMonotonic)"


def test_a_follower_fetching_in_an_older_epoch_with_a_diverging_log_is_not_counted_as_caught_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The harm the fence is often credited with, which the real code prevents a second way.  B
    (still in epoch 0, following A) fetches from A re-elected in epoch 2 after A truncated its
    epoch-0 tail as C's follower in epoch 1; B's log still holds that tail.  Unfenced, A answers
    with the diverging epoch (KIP-595: B's last epoch 0 ends at 2 on A, B fetches at 4) and does
    not take B's fetch offset, so no ISR expansion and no high watermark rest on a log that is not
    a prefix of A's; B truncates to 2, copies A's log, and only then counts as caught up."""
    cluster = Cluster(tmp_path)
    cluster.create_topic(TOPIC, [A, B, C])
    produce(cluster, A, 2)
    cluster.settle(500)
    cluster.isolated.add(C)
    produce(cluster, A, 2)  # epoch 0 up to offset 4 on A and B only
    cluster.settle(500)
    cluster.isolated = {B}
    set_leader(cluster, C, [A, C], publish_to=[A, C])  # B's metadata stays at epoch 0, leader A
    cluster.settle(500)  # A follows C and truncates its epoch 0 to offset 2
    produce(cluster, C, 1)
    cluster.settle(500)
    set_leader(cluster, A, [A, C], publish_to=[A, C])
    leader = cluster.brokers[A].replicas.require(TOPIC, 0)
    assert epochs(cluster.brokers[A]) == [0, 0, 1] and epochs(cluster.brokers[B]) == [0, 0, 0, 0]
    assert leader.leader_epoch == 2 and cluster.brokers[B].replicas.require(TOPIC, 0).leader_epoch == 0
    taken: list[int] = []  # the fetch offsets of B that A takes as B's log end
    update = leader.update_follower_fetch_state

    def recorded(replica_id: int, fetch_offset: int, *args: object) -> None:
        if replica_id == B:
            taken.append(fetch_offset)
        update(replica_id, fetch_offset, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(leader, "update_follower_fetch_state", recorded)
    with guards.switch_off({"fence_fetch_epoch"}):
        cluster.isolated.clear()
        cluster.settle(2_000)
    assert taken and taken[0] == 2 and 4 not in taken, taken
    assert epochs(cluster.brokers[B]) == [0, 0, 1] and B in leader.isr


# -- the swarm's shape for match_epoch_lineage (chaos/sim/faults.py) --------------------------------


def test_the_shape_crashes_the_leader_as_a_paused_follower_resumes_then_whoever_leads_next() -> None:
    drawn = 0
    for seed in range(60):
        faults = draw_leader_without_the_followers_epoch(random.Random(seed), 20_000)
        if not faults:
            continue
        drawn += 1
        pause, first, lossy, *attempts = faults
        assert pause.kind == "pause" and pause.nodes[0] in (FOLLOWER, OTHER_FOLLOWER)
        assert first.kind == "crash" and first.nodes == (LEADER,)
        assert 0 <= pause.at_ms + pause.duration_ms - first.at_ms <= 300, "crashed just before the follower resumes"
        assert lossy.kind == "lossy" and lossy.nodes == (FOLLOWER, OTHER_FOLLOWER) and 0.3 <= lossy.loss <= 0.5
        assert attempts and all(a.kind == "crash" and a.nodes == (LEADER,) for a in attempts)
        assert attempts[0].at_ms == first.at_ms + 2_500
        assert all(b.at_ms - a.at_ms == LEADER_CRASH_STEP_MS for a, b in zip(attempts, attempts[1:], strict=False))
        assert first.at_ms + first.duration_ms > attempts[-1].at_ms, "the old leader stays down through them"
        assert attempts[-1].at_ms < 20_000
    assert drawn > 40
    assert all(draw_leader_without_the_followers_epoch(random.Random(seed), 5_000) == [] for seed in range(30))


def test_the_shape_is_drawn_last_for_mixes_without_crashes_pauses_or_isolations_and_leaves_the_rest_alone() -> None:
    with_shape = 0
    for seed in range(200):
        rng = random.Random(f"faults/{seed}")
        profile = draw_profile(rng)
        faults = draw_schedule(rng, profile, 3, 20_000)
        before = random.Random(f"faults/{seed}")
        draw_profile(before)
        earlier = draw_independent_faults(before, profile, 3, 20_000)
        if {"isolate", "pause"} & set(profile.kinds) and before.random() < 0.75:
            earlier += draw_failover_while_lagging(before, 3, 20_000)
        assert faults[:len(earlier)] == earlier
        shape = faults[len(earlier):]
        assert not shape or not {"crash", "pause", "isolate"} & set(profile.kinds)
        with_shape += bool(shape)
    assert 10 <= with_shape <= 40
