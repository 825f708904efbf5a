"""The replication model: each variant's historical counterexample, and passes where Kafka is safe."""

from __future__ import annotations

import random

import pytest

from spec.checker import check, format_result
from spec.replication import Notification, ReplicationModel, ReplicationState


def _bounds(replicas: int, records: int, leader_changes: int, process_crashes: int = 0,
            lossy_crashes: int = 0) -> dict[str, int | str]:
    return {"replicas": replicas, "records": records, "leader_changes": leader_changes,
            "process_crashes": process_crashes, "lossy_crashes": lossy_crashes}


def test_truncate_to_hw_a_restarted_follower_drops_an_acknowledged_record_and_is_elected() -> None:
    """Before KIP-101: 2 replicas, 1 record, 1 leader change, 1 restart."""
    model = ReplicationModel("truncate-to-hw", _bounds(2, 1, 1, process_crashes=1))
    first = check(model)
    assert "StrongIsr" in first.violated and len(first.trace) - 1 == 6
    assert first.trace[-1].transition is not None and first.trace[-1].transition.action == "BecomeFollower"
    loss = check(model, only=["LeaderCompleteness"])
    assert loss.violated == ("LeaderCompleteness",)
    assert len(loss.trace) - 1 == 7
    assert sorted(s.transition.action for s in loss.trace[1:]) == sorted([  # type: ignore[union-attr]
        "Produce", "FollowerFetch", "AdvanceHighWatermark", "Crash", "Restart", "BecomeFollower", "ElectLeader"])
    assert loss.trace[-1].state.controller.leader == 1 and not loss.trace[-1].state.replicas[1].log


def test_kip_101_logs_diverge_below_the_high_watermark_after_two_fast_leader_changes() -> None:
    """KAFKA-6361: 2 replicas, 3 records, 2 leader changes."""
    result = check(ReplicationModel("kip-101", _bounds(2, 3, 2)), only=["LogMatching"])
    assert result.violated == ("LogMatching",)
    assert len(result.trace) - 1 == 10
    assert sum(1 for s in result.trace[1:] if s.transition and s.transition.action == "ElectLeader") == 2


def test_kip_279_a_follower_truncates_against_a_deposed_leader() -> None:
    """3 replicas, 1 record, 2 leader changes: a stale notification points at a leader no longer in
    charge.  (The variant's overall shortest counterexample is KAFKA-7128, below; this one breaks
    the leader's own ISR view, which KAFKA-7128 does not.)"""
    result = check(ReplicationModel("kip-279", _bounds(3, 1, 2)), only=["WeakIsr"])
    assert result.violated == ("WeakIsr",)
    assert len(result.trace) - 1 == 9
    final = result.trace[-1].state
    assert final.controller.leader == 0
    truncations = [s for s in result.trace if s.transition and s.transition.action == "BecomeFollower"]
    assert truncations and truncations[-1].transition.arg("epoch") < final.controller.leader_epoch  # type: ignore[union-attr,operator]


def test_kafka_7128_a_follower_whose_fetch_response_was_lost_joins_the_isr_below_the_epoch_start() -> None:
    """Before KIP-320's epoch-start rule: a new leader with a lagging high watermark adds a follower
    on the strength of a fetch request whose response never arrived; the deposed leader then
    commits a record that ISR member does not hold."""
    result = check(ReplicationModel("kip-279", _bounds(3, 1, 2)))
    assert "StrongIsr" in result.violated and "WeakIsr" not in result.violated
    assert len(result.trace) - 1 == 8
    actions = [s.transition.action for s in result.trace[1:] if s.transition]
    assert actions[-2:] == ["FollowerFetchLost", "AdvanceHighWatermark"]
    assert check(ReplicationModel("kip-320", _bounds(3, 1, 2))).passed


def test_unclean_election_exposes_then_loses_a_record() -> None:
    result = check(ReplicationModel("unclean", _bounds(2, 1, 1, process_crashes=1)))
    assert "ConsistentRead" in result.violated
    assert len(result.trace) - 1 == 6
    elections = [s.transition.note for s in result.trace if s.transition and s.transition.action == "ElectLeader"]
    assert elections and elections[-1].startswith("unclean")


def test_unclean_election_with_min_insync_replicas_1_loses_an_acknowledged_record() -> None:
    """min.insync.replicas=1 lets the leader acknowledge r0 alone once B left the ISR; the leader
    crashes, B is elected uncleanly without r0, and the old leader truncates on rejoining: no
    replica holds an acknowledged record.  The first symptom is the elected leader missing it."""
    bounds = {**_bounds(2, 1, 1, process_crashes=1), "min_insync_replicas": 1}
    model = ReplicationModel("unclean", bounds)
    first = check(model)
    assert first.violated == ("LeaderCompleteness",) and len(first.trace) - 1 == 5
    result = check(model, only=["NoCommittedRecordLost"])
    print(format_result(model, result))
    assert result.violated == ("NoCommittedRecordLost",)
    assert len(result.trace) - 1 == 8
    notes = [s.transition.label() for s in result.trace[1:]]  # type: ignore[union-attr]
    assert "ElectLeader(replica=1): unclean election, epoch 1" in notes
    assert notes[-1] == "BecomeFollower(replica=0, epoch=1): truncate to offset 0, dropping 1"
    final = result.trace[-1].state
    assert final.acknowledged == {0} and all(not rep.log for rep in final.replicas)
    assert check(ReplicationModel("kip-320", bounds)).passed  # the same bounds, clean elections only


def test_kip_320_loses_an_acknowledged_record_after_a_power_loss() -> None:
    model = ReplicationModel("kip-320", _bounds(2, 1, 1, lossy_crashes=1))
    result = check(model, only=["NoCommittedRecordLost"])
    assert result.violated == ("NoCommittedRecordLost",)
    assert len(result.trace) - 1 == 8


def test_kip_966_closes_the_power_loss_hole_at_the_same_bounds() -> None:
    result = check(ReplicationModel("kip-966", _bounds(2, 1, 1, lossy_crashes=1)))
    assert result.passed, result.violated
    assert result.coverage["lossy_crash"] > 0


@pytest.mark.parametrize("variant", ["kip-320", "kip-966"])
def test_the_default_and_kip_966_pass_at_small_bounds_with_every_situation_reached(variant: str) -> None:
    result = check(ReplicationModel(variant, _bounds(2, 2, 2, process_crashes=1)))
    assert result.passed, result.violated
    assert result.unreached == ()


@pytest.mark.slow
def test_the_default_passes_with_three_replicas_one_record_and_a_crash() -> None:
    result = check(ReplicationModel("kip-320", _bounds(3, 1, 1, process_crashes=1)))
    assert result.passed, result.violated
    assert result.unreached == ()


def test_symmetry_merges_states_that_differ_only_by_replica_names() -> None:
    model = ReplicationModel("kip-320", _bounds(3, 1, 1))
    state = next(iter(model.initial_states()))
    elect_b = next(t for t in model.elect_leader(state) if t.arg("replica") == 1)
    elect_c = next(t for t in model.elect_leader(state) if t.arg("replica") == 2)
    assert model.canonical(elect_b.state) == model.canonical(elect_c.state)
    assert model.canonical(elect_b.state) != model.canonical(state)


def test_a_produce_below_min_insync_replicas_is_refused_with_not_enough_replicas() -> None:
    model = ReplicationModel("kip-320", _bounds(2, 1, 0))
    state = next(iter(model.initial_states()))
    shrink = next(model.leader_shrink_isr(state))
    refusal = next(model.produce(shrink.state))
    assert refusal.note == "rejected: NOT_ENOUGH_REPLICAS"
    assert refusal.state == shrink.state


def _random_walk(model: ReplicationModel, seed: int, steps: int) -> list[ReplicationState]:
    rng = random.Random(seed)
    state = next(iter(model.initial_states()))
    seen = [state]
    for _ in range(steps):
        options = list(model.transitions(state))
        if not options:
            break
        state = rng.choice(options).state
        seen.append(state)
    return seen


def _forgetful_twins(model: ReplicationModel, state: ReplicationState) -> list[ReplicationState]:
    """The same state with what the canonical key forgets changed: a crashed replica's epoch, and
    an added notification that no replica can ever apply (older than every live replica's epoch
    and than the controller's)."""
    twins = []
    for r, replica in enumerate(state.replicas):
        if not replica.alive:
            replicas = list(state.replicas)
            replicas[r] = replica._replace(leader_epoch=replica.leader_epoch - 3)
            twins.append(state._replace(replicas=tuple(replicas)))
    floor = min([rep.leader_epoch for rep in state.replicas if rep.alive] + [state.controller.leader_epoch - 1])
    dead_letter = Notification(0, floor, frozenset({0}))
    if dead_letter not in state.notifications:
        twins.append(state._replace(notifications=state.notifications | {dead_letter}))
    return twins


@pytest.mark.parametrize("variant", ["kip-320", "kip-966", "truncate-to-hw"])
def test_what_the_canonical_key_forgets_changes_no_next_step_and_no_invariant(variant: str) -> None:
    """The reductions are sound: a state and its twin have the same key, the same invariants, and
    successors with the same keys, all along random walks through crashes and elections."""
    model = ReplicationModel(variant, _bounds(3, 2, 2, process_crashes=1, lossy_crashes=1 if variant == "kip-966" else 0))
    compared = 0
    for seed in range(40):
        for state in _random_walk(model, seed, 40):
            for twin in _forgetful_twins(model, state):
                compared += 1
                assert model.canonical(twin) == model.canonical(state)
                assert [inv.holds(twin) for inv in model.invariants] == [inv.holds(state) for inv in model.invariants]
                assert sorted(map(repr, (model.canonical(t.state) for t in model.transitions(twin)))) == \
                    sorted(map(repr, (model.canonical(t.state) for t in model.transitions(state))))
    assert compared > 100  # the walks did reach crashed replicas and stale epochs


def test_the_key_keeps_a_notification_a_lagging_replica_can_still_apply() -> None:
    model = ReplicationModel("kip-320", _bounds(3, 1, 2))
    state = next(iter(model.initial_states()))
    elect_b = next(t for t in model.elect_leader(state) if t.arg("replica") == 1).state
    elect_c = next(t for t in model.elect_leader(elect_b) if t.arg("replica") == 2).state
    # Nobody applied B's epoch yet: that notification is live, and dropping it changes the key.
    pending_b = next(n for n in elect_c.notifications if n.leader == 1)
    assert model.canonical(elect_c._replace(notifications=elect_c.notifications - {pending_b})) != model.canonical(elect_c)


# --- kip-497: the ISR change in flight ------------------------------------------------------------

def test_kip_497_with_alter_partition_in_flight_passes_and_advances_the_hw_during_a_pending_change() -> None:
    result = check(ReplicationModel("kip-497", {"replicas": 2}))
    assert result.passed, result.violated
    assert result.unreached == ()
    assert result.coverage["hw_with_pending_isr"] > 0


def test_kip_497_without_the_maximal_isr_an_expansion_commits_after_the_hw_passed_the_new_member() -> None:
    """The leader proposes adding B (caught up to the HW 0; the fetch response is lost), advances
    the HW to 1 over the committed ISR {A} alone (r0 is exposed to consumers; its acks=all producer
    is refused, the committed ISR being below min.insync.replicas), then the controller commits
    {A,B}: an ISR member lacks a record below the high watermark, and the controller may elect it."""
    from spec.replication import GUARDS

    model = ReplicationModel("kip-497", GUARDS["maximal_isr_for_hw"].witness, frozenset({"maximal_isr_for_hw"}))
    result = check(model)
    print(format_result(model, result))
    assert result.violated == ("WeakIsr", "StrongIsr", "ValidHighWatermark")
    assert len(result.trace) - 1 == 6
    labels = [s.transition.label() for s in result.trace[1:]]  # type: ignore[union-attr]
    assert labels[3:] == ["FollowerFetchLost(follower=1, leader=0): fetch offset 0 handled, ISR expanded, response lost",
                          "AdvanceHighWatermark(leader=0): high watermark 0 -> 1, r0: NOT_ENOUGH_REPLICAS_AFTER_APPEND",
                          "AlterPartition(leader=0): ISR {A} -> {A,B} committed"]
    assert check(ReplicationModel("kip-497", GUARDS["maximal_isr_for_hw"].witness)).passed


def test_kip_497_a_proposed_shrink_does_not_count_until_the_controller_commits_it() -> None:
    from spec.replication import GUARDS

    bounds = GUARDS["pending_removal_still_counted"].witness
    result = check(ReplicationModel("kip-497", bounds, frozenset({"pending_removal_still_counted"})))
    assert "AckedOnMinIsr" in result.violated and "ValidHighWatermark" in result.violated
    assert len(result.trace) - 1 == 3
    final = result.trace[-1].state
    assert final.controller.isr == {0, 1} and final.replicas[0].pending_isr == frozenset({0})
    assert check(ReplicationModel("kip-497", bounds)).passed
