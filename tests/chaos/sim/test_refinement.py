"""The simulated cluster refines spec/replication.py: every event is a model step, a short run of
them, or a stutter (chaos/sim/refinement.py), under produce, crash, restart, network cuts and time.

The rules stay inside what the model describes, and the restrictions are the model's:

* a crashed node restarts only once the controller has fenced it (its session expired), so the
  controller has handled its failure.  The model's controller removes a broker from the ISR only
  while it is down (``ControllerShrinkIsr``); KRaft also does it when a broker re-registers with a
  new incarnation before its session expired, while the broker is already up again: the model has
  no step for that (a shrink, so harmless to safety, but no refinement);
* the quorum leader (the active controller) is not crashed: a decision it appended before the
  crash may be committed by its successor after it, and the model's controller decides and
  commits in one step -- its ``AlterPartition`` needs the proposing leader alive when it commits,
  which KRaft does not (the proposing leader may have crashed since);
* a partition leader is not crashed while its AlterPartition is in flight: the model's Crash
  drops the proposal with the leader, KRaft's controller still handles a request already sent and
  commits it after the crash;
* a node is cut off from the others for less than ``broker.session.timeout.ms`` minus four
  heartbeat intervals (a heartbeat lost in the cut is retried only after its timeout), and the
  heartbeats get through again before the next cut, for the same reason: the controller would
  fence a live broker, which the model's controller does not do;
* the cluster is formatted with ``eligible.leader.replicas.version=0``
  (:func:`~chaos.sim.refinement.without_eligible_leader_replicas`).

Planted bugs: a guard of the implementation that the model also has, switched off, makes some
event a step the model does not allow.  The machine finds ``hw_waits_for_isr`` and
``min_insync_replicas`` (the latter with min.insync.replicas = 3, so one replica down is below
it) by itself; ``expand_needs_caught_up`` needs a follower cut off while the producer sends and
then 30 s for its lost Fetch to time out, which the machine rarely draws, so a scripted run of the
machine's own rules shows it, and the same run with the guard on refines.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from chaos.history import HistoryWriter
from chaos.sim.clients import SimAdmin, SimClock, SimProducer
from chaos.sim.cluster import SimCluster
from chaos.sim.refinement import (
    RefinementError,
    ReplicationRefinement,
    model_for,
    without_eligible_leader_replicas,
)
from chaos.sim.run import NODE_SETTINGS
from reference import guards
from reference.controller.image import MetadataImage

TOPIC = "refined"
NODES = 3
MIN_INSYNC_REPLICAS = 2
SESSION_TIMEOUT_MS = int(NODE_SETTINGS["broker.session.timeout.ms"])
HEARTBEAT_MS = int(NODE_SETTINGS["broker.heartbeat.interval.ms"])
# A heartbeat lost in a cut is sent again only after its request timeout (two intervals), so a
# broker cut off for c ms may go c + 4 intervals without a heartbeat; it must stay below the
# session timeout, or the controller fences a live broker (see the module docstring).
LONGEST_CUT_MS = SESSION_TIMEOUT_MS - 4 * HEARTBEAT_MS - 200
# A follower cut off for longer than this leaves the ISR (the leader's LeaderShrinkIsr) and joins
# it again after the cut (LeaderExpandIsr), so cuts exercise both.
SETTINGS = {**NODE_SETTINGS, "replica.lag.time.max.ms": "400"}
BOOTSTRAP_MS = 60_000


def committed_image(cluster: SimCluster) -> MetadataImage:
    """The newest metadata a node has replayed: committed, unlike the active controller's own image."""
    return max((node.image for node in cluster.nodes.values()), key=lambda image: image.offset)


def topic_ready(cluster: SimCluster) -> bool:
    """The partition exists with every replica in the ISR, and every replica knows the first epoch."""
    image = committed_image(cluster)
    registration = image.topics[TOPIC].partitions.get(0) if image is not None and TOPIC in image.topics else None
    if registration is None or registration.leader < 0 or len(registration.isr) < NODES:
        return False
    for node in cluster.nodes.values():
        partition = node.broker.replicas.get(TOPIC, 0) if node.broker else None
        if partition is None or partition.leader_epoch != registration.leader_epoch:
            return False
    return True


def full_isr(cluster: SimCluster) -> bool:
    registration = committed_image(cluster).topics[TOPIC].partitions[0]
    return len(registration.isr) == NODES


def alter_partition_in_flight(cluster: SimCluster, node_id: int) -> bool:
    node = cluster.nodes.get(node_id)
    partition = node.broker.replicas.get(TOPIC, 0) if node is not None and node.broker else None
    return partition is not None and partition.partition_state.is_inflight


def fenced(cluster: SimCluster, node_id: int) -> bool:
    registration = committed_image(cluster).brokers.get(node_id)
    return registration is None or registration.fenced


class ClusterRefinesModel(RuleBasedStateMachine):
    """One partition on three nodes; the step check watches every event."""

    min_insync_replicas = MIN_INSYNC_REPLICAS

    @initialize(seed=st.integers(0, 2**16))
    def start(self, seed: int) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="refka-refinement-"))
        with without_eligible_leader_replicas():
            self.cluster = SimCluster(self.root, NODES, extra=dict(SETTINGS), seed=seed)
            admin = SimAdmin(list(range(NODES)), random.Random(seed),
                             {TOPIC: (1, NODES, {"min.insync.replicas": str(self.min_insync_replicas)})})
            self.cluster.clients.append(admin)
            assert self.cluster.run_until(lambda: admin.done and topic_ready(self.cluster), BOOTSTRAP_MS)
        self.cluster.clients.remove(admin)
        history = HistoryWriter(None, clock=SimClock(lambda: self.cluster.now_ms))
        self.producer = SimProducer("producer", TOPIC, 1, list(range(NODES)), random.Random(seed), history,
                                    acks=-1, idempotent=True, interval_ms=200)
        self.cluster.clients.append(self.producer)
        self.producer.sending = True  # from the start: records flow unless a rule stops them
        self.check = ReplicationRefinement(self.cluster, TOPIC, 0, model_for(NODES, self.min_insync_replicas))
        self.check.install()
        self.check.note(f"seed {seed}: {TOPIC} ready")
        self.crashed: set[int] = set()

    def run(self, ms: int) -> None:
        self.cluster.run_for(ms)

    @rule(sending=st.booleans(), ms=st.integers(20, 400))
    def producer_sends(self, sending: bool, ms: int) -> None:
        """The idempotent acks=all producer starts (or stops) sending a record every 200 ms; it goes
        on through the rules that follow, crashes and cuts included."""
        self.check.note(f"producer {'sends' if sending else 'stops'}, then {ms} ms")
        self.producer.sending = sending
        self.run(ms)

    @rule(ms=st.integers(10, 4_000))
    def advance_time(self, ms: int) -> None:
        self.check.note(f"advance {ms} ms")
        self.run(ms)

    @precondition(lambda self: not self.crashed)
    @rule()
    def wait_for_full_isr(self) -> None:
        """Run until every replica is back in the ISR (a follower whose Fetch was lost in a cut
        fetches again only after ``request.timeout.ms``, 30 s), at most 40 s."""
        self.check.note("wait for the full ISR")
        self.cluster.run_until(lambda: full_isr(self.cluster), 40_000)

    @precondition(lambda self: not self.crashed)
    @rule(node=st.integers(0, NODES - 1), ms=st.integers(10, 1_000))
    def crash(self, node: int, ms: int) -> None:
        """Any node but the quorum leader, and not a leader with an ISR change in flight (see the
        module docstring)."""
        quorum_leader = self.cluster.newest_raft_leader()
        if quorum_leader is not None and quorum_leader.node_id == node or alter_partition_in_flight(self.cluster, node):
            return
        self.check.note(f"crash node {node}, then {ms} ms")
        self.cluster.crash(node)
        self.crashed.add(node)
        self.run(ms)

    @precondition(lambda self: bool(self.crashed))
    @rule(ms=st.integers(10, 1_000))
    def restart(self, ms: int) -> None:
        """Once the controller has fenced the crashed node (see the module docstring)."""
        (node,) = self.crashed
        self.cluster.run_until(lambda: fenced(self.cluster, node), 4 * SESSION_TIMEOUT_MS)
        if not fenced(self.cluster, node):
            return  # no active controller to fence it (the quorum lost its majority meanwhile)
        self.check.note(f"restart node {node}, then {ms} ms")
        with without_eligible_leader_replicas():
            self.cluster.start(node)
        self.crashed.discard(node)
        self.run(ms)

    @rule(node=st.integers(0, NODES - 1), ms=st.integers(10, LONGEST_CUT_MS))
    def cut_off(self, node: int, ms: int) -> None:
        """The node is cut off from the other nodes (not from the producer) for ``ms``, then healed."""
        others = [other for other in range(NODES) if other != node]
        cuts = {(node, other) for other in others} | {(other, node) for other in others}
        self.check.note(f"cut node {node} off for {ms} ms")
        self.cluster.network.cut |= cuts
        self.run(ms)
        self.cluster.network.cut -= cuts
        self.run(4 * HEARTBEAT_MS)  # heartbeats get through again before anything else is cut

    def teardown(self) -> None:
        if hasattr(self, "cluster"):
            for node in list(self.cluster.nodes.values()):
                node.shutdown()
        if hasattr(self, "root"):
            shutil.rmtree(self.root, ignore_errors=True)


# Derandomized: the same runs every time, so the suite's verdict does not depend on luck (a
# longer random hunt is `run_state_machine_as_test(ClusterRefinesModel, settings=...)` by hand).
RUNS = settings(max_examples=8, stateful_step_count=12, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

HUNT = settings(RUNS, max_examples=30, phases=[Phase.generate])


class EveryReplicaRequired(ClusterRefinesModel):
    """min.insync.replicas = 3: one replica out of the ISR, and acks=all must be refused."""

    min_insync_replicas = NODES


@pytest.mark.parametrize("guard, machine", [
    ("hw_waits_for_isr", ClusterRefinesModel),
    ("min_insync_replicas", EveryReplicaRequired),
])
def test_refinement_catches_a_switched_off_guard(guard: str, machine: type[ClusterRefinesModel]) -> None:
    """The implementation's guard switched off (the model keeps it): some event is no model step."""
    with guards.switch_off([guard]), pytest.raises(RefinementError, match="no run of at most"):
        run_state_machine_as_test(machine, settings=HUNT)


def lagging_follower_rejoins(machine: ClusterRefinesModel) -> None:
    """A follower (neither the partition's leader nor the quorum's) is cut off while the producer
    sends, leaves the ISR, and after the cut fetches again from behind the high watermark."""
    machine.start(seed=3)
    machine.producer_sends(sending=True, ms=300)
    leader = committed_image(machine.cluster).topics[TOPIC].partitions[0].leader
    quorum_leader = machine.cluster.newest_raft_leader()
    follower = next(n for n in range(NODES) if n != leader and (quorum_leader is None or n != quorum_leader.node_id)
                    ) if quorum_leader is None or quorum_leader.node_id != leader else (leader + 1) % NODES
    machine.cut_off(node=follower, ms=LONGEST_CUT_MS)
    machine.wait_for_full_isr()


@pytest.mark.parametrize("guard_off", [False, True])
def test_refinement_catches_a_follower_let_into_the_isr_before_it_caught_up(guard_off: bool) -> None:
    """expand_needs_caught_up switched off: the follower rejoins the ISR below the high watermark,
    which no LeaderExpandIsr of the model allows; with the guard on, the same run refines."""
    machine = ClusterRefinesModel()
    try:
        if not guard_off:
            lagging_follower_rejoins(machine)
            assert machine.check.model_steps.get("LeaderExpandIsr", 0) >= 1, machine.check.model_steps
            return
        with guards.switch_off(["expand_needs_caught_up"]), pytest.raises(RefinementError, match="LeaderExpandIsr|no run"):
            lagging_follower_rejoins(machine)
    finally:
        machine.teardown()


ClusterRefinesModel.TestCase.settings = RUNS
TestClusterRefinesModel = ClusterRefinesModel.TestCase


def test_a_leader_failover_and_return_refines_the_model_step_by_step() -> None:
    """Not vacuous: a run through a failover, a restart and an ISR shrink and re-expansion is
    matched with elections, a truncating and fetching follower, ISR changes both ways, a crash
    and a restart -- not only with stutters."""
    machine = ClusterRefinesModel()
    try:
        machine.start(seed=7)
        machine.advance_time(ms=1_000)
        image = committed_image(machine.cluster)
        leader = image.topics[TOPIC].partitions[0].leader
        quorum_leader = machine.cluster.newest_raft_leader()
        if quorum_leader is not None and quorum_leader.node_id == leader:
            machine.cut_off(node=leader, ms=LONGEST_CUT_MS)  # the quorum moves on; the leader stays
            machine.advance_time(ms=3_000)
        machine.crash(node=leader, ms=1_000)
        assert machine.crashed == {leader}, "the partition leader was crashed"
        machine.restart(ms=1_000)
        follower = next(n for n in range(NODES) if n != committed_image(machine.cluster).topics[TOPIC].partitions[0].leader)
        machine.cut_off(node=follower, ms=LONGEST_CUT_MS)
        machine.wait_for_full_isr()
        used = machine.check.model_steps
    finally:
        machine.teardown()
    expected = {"Produce", "FollowerFetch", "AdvanceHighWatermark", "ElectLeader", "BecomeLeader", "BecomeFollower",
                "AlterPartition", "LeaderExpandIsr", "Crash", "Restart"}
    assert expected <= set(used), f"model steps taken: {used}"
