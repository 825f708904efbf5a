"""The simulator core: events in (time, sequence) order, real nodes that crash, restart and pause,
and messages that only move through the simulated network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import chaos.sim.cluster as sim_cluster
from chaos.sim.cluster import EventQueue, SimCluster
from reference.client.outbox import OutboundRequest, Outbox
from reference.node.broker_lifecycle import BrokerState
from reference.protocol.apis import API_BY_KEY


def running(cluster: SimCluster) -> bool:
    return all(node.broker_state is BrokerState.RUNNING for node in cluster.nodes.values()) \
        and cluster.raft_leader() is not None


def test_events_run_in_time_order_and_equal_times_in_the_order_scheduled() -> None:
    queue = EventQueue()
    ran: list[str] = []
    for at, name in ((20, "c"), (10, "a"), (20, "d"), (10, "b")):
        queue.push(at, name, lambda name=name: ran.append(name))  # type: ignore[misc]
    while len(queue):
        queue.pop().action()
    assert ran == ["a", "b", "c", "d"]


def test_a_crashed_node_is_gone_until_restarted_from_its_files_and_then_rejoins(tmp_path: Path) -> None:
    cluster = SimCluster(tmp_path, seed=4)
    assert cluster.run_until(lambda: running(cluster), 30_000)
    follower = next(node_id for node_id in cluster.nodes if node_id != cluster.raft_leader().node_id)  # type: ignore[union-attr]
    end_before = cluster.nodes[follower].raft.log_end_offset
    cluster.crash(follower)
    assert not cluster.is_up(follower)
    cluster.run_for(2_000)  # the others carry on; nothing reaches the dead node
    node = cluster.start(follower)
    assert cluster.incarnation[follower] == 1
    assert node.raft.log_end_offset >= end_before, "the metadata log came back from the node's files"
    assert cluster.run_until(lambda: node.broker_state is BrokerState.RUNNING, 30_000)


def test_a_paused_quorum_leader_is_replaced_and_steps_down_when_it_resumes(tmp_path: Path) -> None:
    cluster = SimCluster(tmp_path, seed=5)
    assert cluster.run_until(lambda: running(cluster), 30_000)
    old = cluster.raft_leader()
    assert old is not None
    epoch = old.raft.epoch
    cluster.pause(old.node_id)
    assert cluster.run_until(lambda: any(node.raft.epoch > epoch and node.raft.leader_id == node.node_id
                                         for node in cluster.nodes.values()), 30_000)
    assert old.raft.leader_id == old.node_id and old.raft.epoch == epoch, "paused: it has heard nothing"
    cluster.resume(old.node_id)
    assert cluster.run_until(lambda: old.raft.epoch > epoch and old.raft.leader_id != old.node_id, 10_000)


def test_a_one_way_cut_stops_messages_in_one_direction_only(tmp_path: Path) -> None:
    cluster = SimCluster(tmp_path, seed=6)
    assert cluster.run_until(lambda: running(cluster), 30_000)
    leader = cluster.raft_leader()
    assert leader is not None
    others = [node_id for node_id in cluster.nodes if node_id != leader.node_id]
    cluster.network.cut = {(leader.node_id, other) for other in others}  # the leader's answers are lost
    epoch = leader.raft.epoch
    assert cluster.run_until(lambda: any(cluster.nodes[other].raft.epoch > epoch for other in others), 30_000), \
        "followers that hear nothing from the leader elect another"



def test_a_request_is_sent_at_no_newer_version_than_its_max_version(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """As the socket transport does: the newest version both sides support, capped by the request's
    ``max_version`` (the consumer core caps requests whose newer versions name topics by id)."""
    metadata = API_BY_KEY[3]
    sent: list[int] = []
    encode = sim_cluster.encode_request

    def recording(api: Any, version: int, *rest: Any) -> Any:
        if api.key == metadata.key:
            sent.append(version)
        return encode(api, version, *rest)

    monkeypatch.setattr(sim_cluster, "encode_request", recording)
    cluster = SimCluster(tmp_path, seed=4)
    assert cluster.run_until(lambda: running(cluster), 30_000)
    client = _Client()
    cluster.clients.append(client)
    answered: list[object] = []
    for cap in (None, 4):
        body = metadata.request.make(topics=None, allow_auto_topic_creation=False)
        client.outbox.send(OutboundRequest(0, metadata.key, body, lambda answer, now: answered.append(answer),
                                           max_version=cap))
    assert cluster.run_until(lambda: len(answered) == 2, 5_000)
    newest = min(cluster.nodes[0].broker.supported_versions[metadata.key][1], metadata.request.valid.high)  # type: ignore[union-attr]
    assert sent[-2:] == [newest, 4] and newest > 4


class _Client:
    name = "versions"

    def __init__(self) -> None:
        self.outbox = Outbox()

    def poll(self, now_ms: int) -> None:
        pass


def test_a_node_restarted_after_a_snapshot_loads_it_and_the_probe_counts_it(tmp_path: Path) -> None:
    """KRaftNode loads its latest metadata snapshot while it is built, before the simulator's
    start hooks run: the coverage probe reads the node's own count, or a restart's load goes unseen."""
    from chaos.sim.probes import CoverageProbes

    cluster = SimCluster(tmp_path, seed=4, extra={"metadata.log.max.snapshot.interval.ms": "500"})
    probes = CoverageProbes({})
    cluster.started_hooks.append(probes.node_started)
    assert cluster.run_until(lambda: running(cluster), 30_000)
    cluster.run_for(2_000)  # committed batches after the interval: each node writes a snapshot
    follower = next(node_id for node_id in cluster.nodes if node_id != cluster.raft_leader().node_id)  # type: ignore[union-attr]
    cluster.crash(follower)
    node = cluster.start(follower)
    assert node.snapshots_loaded == 1
    assert probes.counts["snapshot-load"] == 1
