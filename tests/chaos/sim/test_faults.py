"""Fault schedules: drawn per seed (swarm testing), replayable from JSON, injected as network cuts,
crashes and pauses that heal."""

from __future__ import annotations

import random
from pathlib import Path

from chaos.sim.faults import (
    BROKER_SESSION_TIMEOUT_MS,
    FOLLOWER,
    KINDS,
    LEADER,
    OTHER_FOLLOWER,
    REPLICA_LAG_TIME_MAX_MS,
    Fault,
    FaultInjector,
    draw_failover_while_lagging,
    draw_independent_faults,
    draw_profile,
    draw_schedule,
    schedule_from_json,
    schedule_to_json,
)
from chaos.sim.network import Network


def test_each_seed_draws_its_own_fault_mix_and_the_same_seed_the_same_one() -> None:
    profiles = [draw_profile(random.Random(seed)) for seed in range(40)]
    assert len({profile.kinds for profile in profiles}) > 10, "the mixes differ from seed to seed"
    assert {kind for profile in profiles for kind in profile.kinds} == set(KINDS)
    assert draw_profile(random.Random(3)) == draw_profile(random.Random(3))


def test_a_schedule_stays_inside_the_safety_phase_and_uses_only_the_profile_kinds() -> None:
    """... followed, in some of the mixes that pause or isolate nodes, by the failover-while-lagging
    shape (in some of those that neither crash, pause nor isolate, by the leader-without-the-
    follower's-epoch shape), drawn last: the rest of the schedule is what the seed drew without it."""
    shaped = 0
    for seed in range(20):
        rng, again = random.Random(seed), random.Random(seed)
        profile = draw_profile(rng)
        assert draw_profile(again) == profile
        faults = draw_schedule(rng, profile, nodes=3, duration_ms=20_000)
        independent = draw_independent_faults(again, profile, 3, 20_000)
        assert faults[:len(independent)] == independent
        assert all(0 < fault.at_ms < 20_000 and fault.kind in profile.kinds for fault in independent)
        assert all(node in (LEADER, FOLLOWER, OTHER_FOLLOWER, 0, 1, 2) for fault in faults for node in fault.nodes)
        shape = faults[len(independent):]
        if shape:
            shaped += 1
            # the failover-while-lagging shape, or (mixes that neither crash, pause nor isolate) the
            # leader-without-the-follower's-epoch one
            kinds = {"pause", "isolate", "lossy"} if {"pause", "isolate"} & set(profile.kinds) else {"pause", "crash", "lossy"}
            assert "crash" not in profile.kinds or {"pause", "isolate"} & set(profile.kinds)
            assert shape[0].kind == "pause" and {fault.kind for fault in shape} <= kinds
            assert all(0 < fault.at_ms < 20_000 for fault in shape)
    assert 0 < shaped < 20, "some seeds draw the shape, not all"


def test_a_schedule_replays_from_its_json() -> None:
    faults = draw_schedule(random.Random(9), draw_profile(random.Random(9)), 3, 30_000)
    assert schedule_from_json(schedule_to_json(faults)) == faults


def test_the_failover_while_lagging_shape_fences_a_paused_node_and_isolates_the_leader_just_before_it_resumes() -> None:
    for seed in range(20):
        faults = draw_failover_while_lagging(random.Random(seed), 3, 20_000)
        assert faults and len(faults) % 4 == 0 and all(0 < fault.at_ms < 20_000 for fault in faults)
        for pause, lossy_leader, isolate, delays in zip(*[iter(faults)] * 4, strict=True):
            assert pause.kind == "pause" and pause.nodes[0] in (0, 1, 2)
            assert pause.duration_ms > max(REPLICA_LAG_TIME_MAX_MS, BROKER_SESSION_TIMEOUT_MS), "long enough to be fenced"
            resumes = pause.at_ms + pause.duration_ms
            assert isolate.kind == "isolate" and isolate.nodes == (LEADER,)
            assert resumes - 400 <= isolate.at_ms <= resumes, "the leader is cut off just before the node resumes"
            assert isolate.duration_ms > BROKER_SESSION_TIMEOUT_MS, "long enough to be replaced"
            assert isolate.at_ms + BROKER_SESSION_TIMEOUT_MS < 20_000, "and replaced within the phase"
            assert lossy_leader.kind == "lossy" and lossy_leader.nodes == (LEADER,) and lossy_leader.loss > 0
            assert lossy_leader.at_ms + lossy_leader.duration_ms == isolate.at_ms
            assert delays.kind == "lossy" and delays.nodes == pause.nodes and delays.loss == 0 and delays.jitter_ms > 0
            assert delays.at_ms == isolate.at_ms


def test_no_failover_while_lagging_shape_fits_in_ten_seconds() -> None:
    assert all(draw_failover_while_lagging(random.Random(seed), 3, 10_000) == [] for seed in range(50))


def test_a_lossy_fault_on_one_node_affects_every_link_to_and_from_it() -> None:
    cluster = FakeCluster()
    FaultInjector(cluster, [Fault(10, "lossy", 100, (1,), 0.5, 0.0, 7, False)], start_ms=0)  # type: ignore[arg-type]
    cluster.run(10)
    assert set(cluster.network.faults) == {(0, 1), (1, 0), (1, 2), (2, 1)}
    assert all(faults.loss == 0.5 and faults.jitter_ms == 7 for faults in cluster.network.faults.values())
    cluster.run(110)
    assert cluster.network.faults == {}


class FakeCluster:
    """What the injector touches: nodes up or down, paused, the network and the event queue."""

    def __init__(self, count: int = 3) -> None:
        self.count = count
        self.now_ms = 0
        self.network = Network(random.Random(0))
        self.up = set(range(count))
        self.paused: set[int] = set()
        self.events: list[tuple[int, str, object]] = []
        self.log: list[str] = []

    def at(self, at_ms: int, label: str, action: object) -> None:
        self.events.append((at_ms, label, action))
        self.events.sort(key=lambda event: event[0])

    def run(self, until_ms: int) -> None:
        while self.events and self.events[0][0] <= until_ms:
            at, _label, action = self.events.pop(0)
            self.now_ms = at
            action()  # type: ignore[operator]

    def is_up(self, node: int) -> bool:
        return node in self.up

    def crash(self, node: int) -> None:
        self.up.discard(node)
        self.log.append(f"crash {node}")

    def start(self, node: int) -> None:
        self.up.add(node)
        self.log.append(f"start {node}")

    def pause(self, node: int) -> None:
        self.paused.add(node)

    def resume(self, node: int) -> None:
        self.paused.discard(node)


def inject(faults: list[Fault], leader: int = 0) -> tuple[FakeCluster, FaultInjector]:
    cluster = FakeCluster()
    injector = FaultInjector(cluster, faults, 0, lambda: leader)  # type: ignore[arg-type]
    return cluster, injector


def test_a_crash_restarts_the_node_when_it_heals_and_a_crash_of_a_down_node_does_nothing() -> None:
    cluster, _ = inject([Fault(10, "crash", 100, (LEADER,)), Fault(20, "crash", 500, (2,))], leader=2)
    cluster.run(15)
    assert cluster.up == {0, 1}
    cluster.run(200)
    assert cluster.up == {0, 1, 2} and cluster.log == ["crash 2", "start 2"]
    cluster.run(1000)
    assert cluster.log == ["crash 2", "start 2"], "the second crash found node 2 down and left it alone"


def test_a_pause_holds_the_node_until_it_heals() -> None:
    cluster, _ = inject([Fault(10, "pause", 100, (1,))])
    cluster.run(50)
    assert cluster.paused == {1}
    cluster.run(200)
    assert cluster.paused == set()


def test_partition_shapes_cut_the_links_they_name() -> None:
    shapes = {
        "isolate": (Fault(0, "isolate", 10, (1,)), {(1, 0), (0, 1), (1, 2), (2, 1)}),
        "split": (Fault(0, "split", 10, (0,)), {(0, 1), (1, 0), (0, 2), (2, 0)}),
        "bridge": (Fault(0, "bridge", 10, (1, 0)), {(0, 2), (2, 0)}),  # 1 talks to both sides
        "one-way": (Fault(0, "one-way", 10, (2, 0)), {(2, 0)}),
    }
    for name, (fault, cuts) in shapes.items():
        cluster, _ = inject([fault])
        cluster.run(5)
        assert cluster.network.cut == cuts, name
        cluster.run(20)
        assert cluster.network.cut == set(), f"{name} heals"


def test_overlapping_partitions_cut_the_union_and_heal_one_at_a_time() -> None:
    cluster, _ = inject([Fault(0, "one-way", 100, (0, 1)), Fault(10, "one-way", 20, (1, 2))])
    cluster.run(15)
    assert cluster.network.cut == {(0, 1), (1, 2)}
    cluster.run(50)
    assert cluster.network.cut == {(0, 1)}


def test_a_lossy_fault_sets_its_rates_on_the_links_it_names() -> None:
    cluster, _ = inject([Fault(0, "lossy", 10, (0, 1), loss=0.5, duplicate=0.1, jitter_ms=7, reorder=True)])
    cluster.run(1)
    assert set(cluster.network.faults) == {(0, 1), (1, 0)}
    assert cluster.network.faults[(0, 1)].loss == 0.5 and cluster.network.faults[(1, 0)].jitter_ms == 7
    cluster.run(20)
    assert cluster.network.faults == {}


def test_heal_all_ends_every_fault_and_stops_the_ones_still_to_come(tmp_path: Path) -> None:
    cluster, injector = inject([Fault(0, "crash", 1000, (1,)), Fault(500, "isolate", 100, (2,))])
    cluster.run(10)
    injector.heal_all()
    assert cluster.up == {0, 1, 2}
    cluster.run(2000)
    assert cluster.network.cut == set() and cluster.log == ["crash 1", "start 1"]
