"""chaos/nemesis.py: which faults each nemesis injects and heals, on a recording stand-in cluster."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest

from chaos import nemesis
from chaos.cluster import blocked_pairs


class RecordingCluster:
    """Keeps the calls a nemesis makes; the leader of every partition is ``leader``."""

    def __init__(self, nodes: int = 3, leader: int | None = 2) -> None:
        self.ids = list(range(1, nodes + 1))
        self.leader = leader
        self.calls: list[tuple[Any, ...]] = []
        # what unclean-leader needs besides: the ISR shrinks to the leader as soon as its replication
        # is cut, and the leaders after a kill are ``leaders_after_kill`` in turn (the last one stays)
        self.isr: list[int] | None = None
        self.leaders_after_kill: list[int | None] = []
        self.election_answers: list[str] = []

    def node_ids(self) -> list[int]:
        return list(self.ids)

    def leader_of(self, topic: str, partition: int) -> int | None:
        return self.leader

    def topics(self) -> list[str]:
        return ["chaos"]

    def partitions_of(self, topic: str) -> list[int]:
        return [0, 1, 2]

    def kill(self, node_id: int) -> None:
        self.calls.append(("kill", node_id))
        if self.leaders_after_kill:
            self.leader_of = self._next_leader  # type: ignore[method-assign]

    def _next_leader(self, topic: str, partition: int) -> int | None:
        if len(self.leaders_after_kill) > 1:
            return self.leaders_after_kill.pop(0)
        return self.leaders_after_kill[0]

    def start_node(self, node_id: int, wait: bool = True) -> None:
        self.calls.append(("start_node", node_id))

    def pause(self, node_id: int) -> None:
        self.calls.append(("pause", node_id))

    def unpause(self, node_id: int) -> None:
        self.calls.append(("unpause", node_id))

    def restart(self, node_id: int, graceful: bool = True, wait: bool = True) -> None:
        self.calls.append(("restart", node_id, graceful))

    def partition(self, groups: Sequence[Sequence[int]]) -> None:
        self.calls.append(("partition", [list(group) for group in groups]))

    def isolate_clients(self, node_id: int) -> None:
        self.calls.append(("isolate_clients", node_id))

    def heal_network(self) -> None:
        self.calls.append(("heal_network",))

    def cut_replication(self, node_id: int) -> None:
        self.calls.append(("cut_replication", node_id))
        self.isr = [node_id]

    def isr_of(self, topic: str, partition: int) -> list[int] | None:
        return self.isr if self.isr is not None else list(self.ids)

    def elect_unclean_leader(self, topic: str, partition: int) -> str:
        self.calls.append(("elect_unclean_leader", topic, partition))
        return self.election_answers.pop(0) if self.election_answers else "NONE"


# ---------------------------------------------------------------- shapes
@pytest.mark.parametrize("nodes", [3, 5, 7])
def test_a_majority_partition_splits_into_a_strict_majority_and_the_rest(nodes: int) -> None:
    ids = list(range(1, nodes + 1))
    for seed in range(20):
        majority, minority = nemesis.partition_groups("majority", ids, random.Random(seed))
        assert len(majority) == nodes // 2 + 1 and sorted(majority + minority) == ids


@pytest.mark.parametrize("nodes", [3, 4, 5])
def test_a_bridge_has_exactly_one_node_in_both_halves_that_are_cut_apart(nodes: int) -> None:
    ids = list(range(1, nodes + 1))
    for seed in range(20):
        left, right = nemesis.partition_groups("bridge", ids, random.Random(seed))
        (bridge,) = set(left) & set(right)
        assert sorted(set(left) | set(right)) == ids
        cut = blocked_pairs([left, right], ids)
        assert cut and all(bridge not in pair for pair in cut)


def test_isolating_one_node_puts_it_alone() -> None:
    assert nemesis.partition_groups("one", [1, 2, 3], random.Random(0), isolated=3) == [[3], [1, 2]]


def test_the_same_seed_draws_the_same_partition() -> None:
    first = [nemesis.partition_groups("majority", [1, 2, 3, 4, 5], random.Random(42)) for _ in range(3)]
    assert first[0] == first[1] == first[2]


def test_shapes_need_enough_nodes() -> None:
    assert nemesis.shapes_for(1) == [] and nemesis.shapes_for(2) == ["one"]
    assert nemesis.shapes_for(3) == ["one", "majority", "bridge"]
    with pytest.raises(ValueError, match="needs at least 3 nodes"):
        nemesis.partition_groups("bridge", [1, 2], random.Random(0))


# ---------------------------------------------------------------- start and heal
def test_kill_sends_sigkill_and_heal_starts_the_same_node_once() -> None:
    cluster = RecordingCluster()
    kill = nemesis.build_nemeses(["kill"], cluster)[0]
    described = kill.start(random.Random(1))
    node = described["node"]
    assert described["signal"] == "SIGKILL" and cluster.calls == [("kill", node)]
    assert kill.heal() == {"heal": "start", "node": node}
    assert kill.heal() == {}
    assert cluster.calls == [("kill", node), ("start_node", node)]


def test_pause_is_healed_by_resuming_the_paused_node() -> None:
    cluster = RecordingCluster()
    pause = nemesis.build_nemesis("pause", cluster)
    node = pause.start(random.Random(3))["node"]
    pause.heal()
    assert cluster.calls == [("pause", node), ("unpause", node)]


def test_leader_targeted_faults_hit_the_leader_metadata_reports() -> None:
    cluster = RecordingCluster(leader=3)
    for seed in range(5):
        assert nemesis.build_nemesis("kill-leader", cluster).start(random.Random(seed))["node"] == 3
    described = nemesis.build_nemesis("partition-leader", cluster, topic="chaos").start(random.Random(0))
    assert described["groups"] == [[3], [1, 2]] and described["target"] == "leader"


def test_without_a_known_leader_the_fault_falls_back_to_a_random_node_and_says_so() -> None:
    cluster = RecordingCluster(leader=None)
    described = nemesis.build_nemesis("pause-leader", cluster).start(random.Random(0))
    assert described["target"] == "random (no leader known)" and described["node"] in (1, 2, 3)


def test_a_partition_is_healed_by_flushing_the_network() -> None:
    cluster = RecordingCluster(nodes=5)
    partition = nemesis.build_nemesis("partition", cluster)
    described = partition.start(random.Random(9))
    assert described["shape"] in nemesis.PARTITION_SHAPES
    assert cluster.calls == [("partition", described["groups"])]
    partition.heal()
    partition.heal()
    assert cluster.calls[1:] == [("heal_network",)]


def test_client_isolation_targets_one_broker() -> None:
    cluster = RecordingCluster()
    isolate = nemesis.build_nemesis("isolate-clients", cluster)
    node = isolate.start(random.Random(0))["node"]
    isolate.heal()
    assert cluster.calls == [("isolate_clients", node), ("heal_network",)]


def test_restart_is_graceful_and_rolling_restart_visits_every_node_once() -> None:
    cluster = RecordingCluster()
    nemesis.build_nemesis("restart", cluster).start(random.Random(0))
    assert cluster.calls[0][0] == "restart" and cluster.calls[0][2] is True
    cluster.calls.clear()
    described = nemesis.build_nemesis("rolling-restart", cluster).start(random.Random(0))
    assert sorted(described["order"]) == [1, 2, 3]
    assert cluster.calls == [("restart", node, True) for node in described["order"]]


# ---------------------------------------------------------------- names
def test_every_advertised_name_builds_on_three_nodes_with_its_own_name() -> None:
    built = nemesis.build_nemeses(list(nemesis.NEMESIS_NAMES), RecordingCluster())
    assert "unclean-leader" in nemesis.NEMESIS_NAMES
    assert [n.name for n in built] == list(nemesis.NEMESIS_NAMES)


def test_the_cli_list_is_trimmed_and_an_unknown_name_is_refused() -> None:
    assert [n.name for n in nemesis.build_nemeses([" kill", "pause ", ""], RecordingCluster())] == ["kill", "pause"]
    with pytest.raises(ValueError, match="unknown nemesis 'flood'"):
        nemesis.build_nemeses(["flood"], RecordingCluster())


def test_a_single_node_cannot_be_partitioned() -> None:
    with pytest.raises(ValueError, match="isolate-clients"):
        nemesis.build_nemeses(["partition"], RecordingCluster(nodes=1))
    assert [n.name for n in nemesis.build_nemeses(["kill", "pause", "restart"], RecordingCluster(nodes=1))] == [
        "kill", "pause", "restart"]


def test_descriptions_are_json() -> None:
    import json

    cluster = RecordingCluster()
    cluster.leaders_after_kill = [1]
    for built in nemesis.build_nemeses(list(nemesis.NEMESIS_NAMES), cluster):
        if isinstance(built, nemesis.UncleanLeader):
            built.sleep = lambda seconds: None
        json.dumps(built.start(random.Random(0)))
        json.dumps(built.heal())


# ---------------------------------------------------------------- unclean-leader
class FakeClock:
    """Time that moves only when the nemesis sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def unclean_leader(cluster: RecordingCluster, timing: nemesis.UncleanTiming | None = None,
                   clock: FakeClock | None = None) -> nemesis.UncleanLeader:
    clock = clock or FakeClock()
    target = nemesis.Target(cluster, leader=True, topic="chaos")
    return nemesis.UncleanLeader(cluster, target, timing, sleep=clock.sleep, clock=clock)


def test_unclean_leader_cuts_replication_waits_for_an_isr_of_one_then_kills_the_leader() -> None:
    cluster = RecordingCluster(leader=2)
    described = unclean_leader(cluster).start(random.Random(0))
    assert cluster.calls == [("cut_replication", 2), ("kill", 2)]
    assert described["node"] == 2 and described["target"] == "leader" and described["topic"] == "chaos"
    assert described["isr_at_kill"] == [2] and described["isr_alone_after_s"] == 0.0
    assert described["alone_s"] == nemesis.UncleanTiming().alone


def test_unclean_leader_kills_anyway_when_the_isr_does_not_shrink_and_says_so() -> None:
    class StubbornIsr(RecordingCluster):
        def cut_replication(self, node_id: int) -> None:
            self.calls.append(("cut_replication", node_id))

    clock = FakeClock()
    described = unclean_leader(StubbornIsr(leader=3), nemesis.UncleanTiming(isr_shrink_timeout=10.0), clock
                               ).start(random.Random(0))
    assert described["isr_alone_after_s"] is None and described["isr_at_kill"] == [1, 2, 3]
    assert described["alone_s"] == 0.0 and clock.now >= 10.0


def test_unclean_leader_heal_keeps_the_controllers_own_election_and_restarts_the_old_leader_last() -> None:
    cluster = RecordingCluster(leader=2)
    cluster.leaders_after_kill = [2, None, 3]  # still the dead leader, then none, then 3 (unclean, by the controller)
    fault = unclean_leader(cluster)
    fault.start(random.Random(0))
    healed = fault.heal()
    assert healed == {"heal": "network, election, start", "node": 2, "new_leader": 3, "elected_by": "controller"}
    assert cluster.calls == [("cut_replication", 2), ("kill", 2), ("heal_network",), ("start_node", 2)]
    assert fault.heal() == {}


def test_a_partition_left_leaderless_gets_an_unclean_elect_leaders_before_the_old_leader_returns() -> None:
    cluster = RecordingCluster(leader=1)
    cluster.leaders_after_kill = [None] * 40 + [2]
    cluster.election_answers = ["ELECTION_NOT_NEEDED"]
    fault = unclean_leader(cluster, nemesis.UncleanTiming(controller_election=2.0, poll=0.5))
    fault.start(random.Random(0))
    healed = fault.heal()
    assert healed["elected_by"] == "ElectLeaders UNCLEAN" and healed["new_leader"] == 2
    assert "ELECTION_NOT_NEEDED" in healed["elect_leaders_answers"]
    elections = [index for index, call in enumerate(cluster.calls) if call[0] == "elect_unclean_leader"]
    assert elections and cluster.calls[elections[0]][1] == "chaos"
    assert cluster.calls.index(("start_node", 1)) > elections[-1] > cluster.calls.index(("heal_network",))


def test_an_election_that_never_comes_is_reported_and_the_old_leader_still_restarts() -> None:
    cluster = RecordingCluster(leader=1)
    cluster.leaders_after_kill = [None]
    fault = unclean_leader(cluster, nemesis.UncleanTiming(controller_election=1.0, election_timeout=3.0))
    fault.start(random.Random(0))
    healed = fault.heal()
    assert healed["new_leader"] is None and healed["elected_by"] == "ElectLeaders UNCLEAN"
    assert cluster.calls[-1] == ("start_node", 1)


def test_unclean_leader_without_a_known_leader_injects_nothing() -> None:
    cluster = RecordingCluster(leader=None)
    fault = unclean_leader(cluster)
    assert fault.start(random.Random(0))["skipped"] == "no leader known"
    assert fault.heal() == {} and cluster.calls == []
