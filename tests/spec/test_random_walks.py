"""Hypothesis random walks: each model stepped far beyond its exhaustive bounds, invariants checked
after every step.  The machine picks one of the model's enabled transitions by index, so the same
machine can later drive an implementation side by side: each transition names its action and
arguments (``Produce(leader=0, acks=all)``), which is what an implementation step needs."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from spec.delivery import DeliveryModel
from spec.idempotence import IdempotenceModel
from spec.replication import ReplicationModel

WALK = settings(max_examples=20, stateful_step_count=50, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def walker(model: Any) -> type[RuleBasedStateMachine]:
    class Walk(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.state = next(iter(model.initial_states()))
            self.steps: list[str] = []

        @initialize()
        def start(self) -> None:
            self.state = next(iter(model.initial_states()))

        @rule(data=st.data())
        def step(self, data: st.DataObject) -> None:
            choices = list(model.transitions(self.state))
            if not choices:
                assert model.is_final(self.state)
                return
            chosen = choices[data.draw(st.integers(0, len(choices) - 1), label="transition")]
            self.steps.append(chosen.label())
            self.state = chosen.state

        @invariant()
        def invariants_hold(self) -> None:
            broken = [inv.name for inv in model.invariants if not inv.holds(self.state)]
            assert not broken, f"{broken} after {self.steps}"

    return Walk


ReplicationWalk = walker(ReplicationModel("kip-320", {"replicas": 3, "records": 6, "leader_changes": 6,
                                                      "process_crashes": 3}))
# One power loss at most: with min.insync.replicas=2 a record may be acknowledged while it sits
# unflushed in exactly two page caches, and two power losses then drop every copy -- a loss no
# replication protocol that does not fsync can prevent (Kafka's guarantee needs a majority of the
# ISR's disks to survive).  A walk found that trace; the exhaustive check has the same boundary.
Kip966Walk = walker(ReplicationModel("kip-966", {"replicas": 3, "records": 5, "leader_changes": 5,
                                                 "process_crashes": 2, "lossy_crashes": 1}))
IdempotenceWalk = walker(IdempotenceModel("default", {"records": 8, "window": 5, "losses": 5, "failovers": 3}))
AtLeastOnceWalk = walker(DeliveryModel("at-least-once", {"records": 6, "consumers": 3, "rebalances": 6, "crashes": 3}))
AtMostOnceWalk = walker(DeliveryModel("at-most-once", {"records": 6, "consumers": 3, "rebalances": 6, "crashes": 3}))

TestReplicationWalk = ReplicationWalk.TestCase
TestReplicationWalk.settings = WALK
TestKip966Walk = Kip966Walk.TestCase
TestKip966Walk.settings = WALK
TestIdempotenceWalk = IdempotenceWalk.TestCase
TestIdempotenceWalk.settings = WALK
TestAtLeastOnceWalk = AtLeastOnceWalk.TestCase
TestAtLeastOnceWalk.settings = WALK
TestAtMostOnceWalk = AtMostOnceWalk.TestCase
TestAtMostOnceWalk.settings = WALK


def test_a_walk_of_a_broken_variant_is_caught_by_the_same_machine() -> None:
    """The machine is not vacuous: walking the pre-KIP-101 variant along the known bad path fails."""
    model = ReplicationModel("truncate-to-hw", {"replicas": 2, "records": 1, "leader_changes": 1,
                                                "process_crashes": 1})
    state = next(iter(model.initial_states()))
    path = ["Produce", "FollowerFetch", "AdvanceHighWatermark", "Crash", "Restart", "BecomeFollower"]
    for action in path:
        state = next(t for t in model.transitions(state) if t.action == action and
                     (action != "Crash" or t.arg("replica") == 1)).state
    assert not model.strong_isr(state)
