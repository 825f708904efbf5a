"""Whole quorums of RaftNodes on the deterministic in-test network (see ``raft_network.py``), which
checks ElectionSafety, HighWatermarkMonotonic, LogMatching, LeaderCompleteness and the listeners
after every step.  A failing randomized run replays from the seed in its name."""

from __future__ import annotations

import random
import shutil
from functools import partial
from pathlib import Path

import pytest

from reference.controller.quorum_state import Role
from reference.controller.raft import RaftConfig
from reference.records.batch import iter_record_batches
from tests.reference.controller.raft_network import RaftNetwork

VALUES = [f"record-{index}".encode() for index in range(20)]


def append_and_commit(network: RaftNetwork, values: list[bytes]) -> int:
    last = network.append(values)
    assert last is not None, "no leader to append to"
    assert network.run_until(lambda: network.committed_everywhere(last), 30_000), list(network.nodes.values())
    return last


def values_of(network: RaftNetwork, node_id: int) -> list[bytes]:
    return network.listeners[node_id].values()


def committed_on_every_node(network: RaftNetwork, value: bytes) -> bool:
    return all(value in values_of(network, node_id) for node_id in network.nodes)


# -- the basic cases -------------------------------------------------------------------------------------


def test_three_voters_elect_one_leader_replicate_and_commit(tmp_path: Path) -> None:
    network = RaftNetwork(tmp_path, [1, 2, 3], seed=1)
    leader = network.elect()
    assert sum(node.role is Role.LEADER for node in network.nodes.values()) == 1
    for value in VALUES[:5]:
        append_and_commit(network, [value])
    for node_id in network.nodes:
        assert values_of(network, node_id) == VALUES[:5]
        assert network.listeners[node_id].leader_changes[-1] == (leader.node_id, leader.epoch)


def test_single_voter_quorum_commits_alone(tmp_path: Path) -> None:
    network = RaftNetwork(tmp_path, [1], seed=2)
    leader = network.elect(max_ms=1)  # a lone voter does not wait for an election timeout
    last = leader.append(VALUES[:3], network.now)
    assert leader.high_watermark == last + 1
    assert values_of(network, 1) == VALUES[:3]


def test_leader_crash_leads_to_reelection_without_losing_committed_entries(tmp_path: Path) -> None:
    network = RaftNetwork(tmp_path, [1, 2, 3], seed=3)
    old = network.elect()
    append_and_commit(network, VALUES[:3])
    network.crash(old.node_id)
    new = network.elect()
    assert new.node_id != old.node_id and new.epoch > old.epoch
    append_and_commit(network, VALUES[3:5])
    network.restart(old.node_id)
    assert network.run_until(lambda: network.committed_everywhere(network.nodes[new.node_id].log_end_offset - 1))
    for node_id in network.nodes:
        assert values_of(network, node_id) == VALUES[:5]


def test_a_partitioned_minority_node_rejoins_without_disrupting_the_leader(tmp_path: Path) -> None:
    """KIP-996: cut off for five fetch timeouts, the node keeps asking for pre-votes that the others,
    fetching happily from their leader, refuse; it never bumps the epoch, so rejoining changes nothing."""
    network = RaftNetwork(tmp_path, [1, 2, 3], seed=4)
    leader = network.elect()
    epoch = leader.epoch
    append_and_commit(network, [b"before"])  # every log now ends at the same (epoch, offset)
    lonely = next(node_id for node_id in network.nodes if node_id != leader.node_id)
    network.isolate(lonely)
    network.run_for(5 * network.config.fetch_timeout_ms)
    assert network.nodes[lonely].epoch == epoch
    assert network.nodes[lonely].role is Role.PROSPECTIVE or network.nodes[lonely].role is Role.FOLLOWER
    network.heal()  # its log is as long as the others': only their fetching makes them refuse
    network.run_for(3 * network.config.fetch_timeout_ms)
    assert network.stable_leader() is leader and leader.epoch == epoch
    assert all(node.epoch == epoch for node in network.nodes.values())
    append_and_commit(network, VALUES[:2])
    assert values_of(network, lonely) == [b"before", *VALUES[:2]]


def test_a_divergent_uncommitted_tail_is_truncated(tmp_path: Path) -> None:
    network = RaftNetwork(tmp_path, [1, 2, 3], seed=5)
    old = network.elect()
    append_and_commit(network, [b"committed"])
    network.isolate(old.node_id)
    old.append([b"lost-1", b"lost-2"], network.now)  # never reaches a majority
    stale_end = old.log_end_offset
    assert network.run_until(lambda: any(
        node.role is Role.LEADER and node.epoch > old.epoch for node in network.nodes.values()
    ))
    new = next(node for node in network.nodes.values() if node.role is Role.LEADER and node.epoch > old.epoch)
    append_and_commit_values = network.append([b"after"])
    assert append_and_commit_values is not None
    network.heal()
    assert network.run_until(lambda: network.committed_everywhere(new.log_end_offset - 1))
    assert stale_end > 2 and old.log_end_offset == new.log_end_offset
    stored = old.log.read(0, 1 << 20).records
    assert [record.value for batch in iter_record_batches(stored) if not batch.is_control
            for record in batch.records] == [b"committed", b"after"]
    for node_id in network.nodes:
        assert values_of(network, node_id) == [b"committed", b"after"]


def test_restarting_every_node_keeps_the_committed_entries(tmp_path: Path) -> None:
    network = RaftNetwork(tmp_path, [1, 2, 3], seed=6)
    first = network.elect()
    append_and_commit(network, VALUES[:4])
    for node_id in list(network.nodes):
        network.crash(node_id)
    for node_id in network.voters:
        network.start(node_id)
    second = network.elect()
    assert second.epoch > first.epoch
    append_and_commit(network, VALUES[4:5])
    for node_id in network.nodes:
        assert values_of(network, node_id) == VALUES[:5]


def test_graceful_resignation_hands_over_to_the_most_caught_up_voter_before_any_timeout(tmp_path: Path) -> None:
    network = RaftNetwork(tmp_path, [1, 2, 3], seed=7)
    old = network.elect()
    ahead, behind = [node_id for node_id in sorted(network.nodes) if node_id != old.node_id]
    network.cut.add((old.node_id, behind))  # `behind` stops hearing the leader's answers
    append_and_commit_ahead = network.append(VALUES[:3])
    assert append_and_commit_ahead is not None
    assert network.run_until(lambda: network.nodes[ahead].high_watermark > append_and_commit_ahead)
    network.heal()
    old.resign(network.now)
    assert old.role is Role.RESIGNED
    assert network.run_until(
        lambda: network.stable_leader() is not None, max_ms=network.config.fetch_timeout_ms - 1
    ), "EndQuorumEpoch should start the election before any fetch timeout"
    leader = network.stable_leader()
    assert leader is not None and leader.node_id == ahead


def test_a_leader_cut_off_from_the_majority_resigns_after_the_check_quorum_timeout(tmp_path: Path) -> None:
    network = RaftNetwork(tmp_path, [1, 2, 3], seed=8)
    old = network.elect()
    network.isolate(old.node_id)
    network.run_for(network.config.check_quorum_timeout_ms + network.config.fetch_max_wait_ms + 10)
    assert old.role is not Role.LEADER
    with pytest.raises(Exception, match="not the leader"):
        old.append([b"x"], network.now)


# -- snapshots (KIP-630) ------------------------------------------------------------------------------------


def snapshot_everywhere(network: RaftNetwork, *, delete_log: bool) -> None:
    for node_id, node in network.nodes.items():
        node.create_snapshot(node.high_watermark, values_of(network, node_id), network.now)
        if delete_log:
            node.delete_log_before_latest_snapshot()


def test_a_snapshot_is_written_and_loaded_at_restart(tmp_path: Path) -> None:
    network = RaftNetwork(tmp_path, [1, 2, 3], seed=9)
    network.elect()
    append_and_commit(network, VALUES[:5])
    snapshot_everywhere(network, delete_log=True)
    ends = {node_id: node.high_watermark for node_id, node in network.nodes.items()}
    last_commit = network.listeners[1].committed[-1]
    append_and_commit(network, VALUES[5:7])
    for node_id in list(network.nodes):
        network.crash(node_id)
    for node_id in network.voters:
        node = network.start(node_id)
        snapshot = network.listeners[node_id].snapshot
        assert snapshot is not None and snapshot.records == VALUES[:5]
        assert node.log_start_offset == ends[node_id] == snapshot.snapshot_id.end_offset
        assert snapshot.last_contained_log_timestamp == last_commit.append_timestamp
    network.elect()
    append_and_commit(network, VALUES[7:8])
    for node_id in network.nodes:
        assert values_of(network, node_id) == VALUES[:8]


@pytest.mark.parametrize("wipe_disk", [False, True], ids=["lagging-follower", "new-empty-node"])
def test_a_follower_below_the_log_start_fetches_the_snapshot(tmp_path: Path, wipe_disk: bool) -> None:
    network = RaftNetwork(tmp_path, [1, 2, 3], seed=10)
    leader = network.elect()
    lagging = next(node_id for node_id in sorted(network.nodes) if node_id != leader.node_id)
    network.crash(lagging)
    append_and_commit(network, VALUES[:6])
    snapshot_everywhere(network, delete_log=True)
    assert leader.log_start_offset > 0
    if wipe_disk:
        shutil.rmtree(tmp_path / f"node-{lagging}")
    follower = network.start(lagging)
    assert network.run_until(lambda: follower.high_watermark >= leader.high_watermark)
    snapshot = network.listeners[lagging].snapshot
    assert snapshot is not None and snapshot.records == VALUES[:6]
    assert follower.latest_snapshot_id == leader.latest_snapshot_id
    append_and_commit(network, VALUES[6:7])
    assert values_of(network, lagging) == VALUES[:7]


# -- randomized: many seeds, faults everywhere ------------------------------------------------------------


# Timeouts a few times the network delay (1-5 ms): elections race with replication all the time.
SHORT_TIMEOUTS = RaftConfig(election_timeout_ms=15, fetch_timeout_ms=30, election_backoff_max_ms=20,
                            request_timeout_ms=25, retry_backoff_ms=2, fetch_max_wait_ms=8)


def chaos_run(tmp_path: Path, seed: int, voters: int, duration_ms: int = 20_000, config: RaftConfig | None = None,
              observers: int = 0) -> None:
    """Crashes, restarts, partitions, drops, appends and snapshots at random; the network checks the
    safety properties at every step; at the end, healed, the quorum must elect, commit, and agree.
    ``observers`` nodes outside the voter set suffer the same faults."""
    rng = random.Random(seed)
    observer_ids = tuple(range(voters + 1, voters + observers + 1))
    network = RaftNetwork(tmp_path, list(range(1, voters + 1)), seed, drop_rate=rng.choice([0.0, 0.01, 0.05]),
                          config=config or RaftConfig(), observer_ids=observer_ids)
    appended = 0
    end = network.now + duration_ms
    while network.now < end:
        dice = rng.random()
        victim = rng.choice(network.members)
        if dice < 0.02:
            if victim in network.nodes and len(network.nodes) > 1:
                network.crash(victim)
            elif victim not in network.nodes:
                network.start(victim)
        elif dice < 0.04:
            network.heal()
            network.partition(set(rng.sample(network.members, rng.randint(1, len(network.members) - 1))))
        elif dice < 0.07:
            network.heal()
        elif dice < 0.09 and victim in network.nodes:
            node = network.nodes[victim]
            if node.high_watermark > node.log_start_offset:
                node.create_snapshot(node.high_watermark, values_of(network, victim), network.now)
                if rng.random() < 0.7:
                    node.delete_log_before_latest_snapshot()
        elif dice < 0.3 and network.leader() is not None:
            appended += 1
            network.append([f"{seed}-{appended}".encode()])
        network.run_for(rng.randint(1, 300))
    network.heal()
    network.drop_rate = 0.0
    for node_id in network.members:
        if node_id not in network.nodes:
            network.start(node_id)
    for attempt in range(10):  # an append can be lost to a last re-election; retry until one commits
        network.elect(max_ms=120_000)
        final = f"final-{attempt}".encode()
        network.append([final])
        if network.run_until(partial(committed_on_every_node, network, final), 10_000):
            break
    else:
        raise AssertionError(f"nothing committed after healing (seed {seed}): {list(network.nodes.values())}")
    reference = values_of(network, 1)
    assert reference[-1] == final
    for node_id in network.nodes:
        assert values_of(network, node_id) == reference, f"seed {seed}: node {node_id} disagrees"


@pytest.mark.parametrize("seed", range(24))
def test_randomized_faults_three_voters(tmp_path: Path, seed: int) -> None:
    chaos_run(tmp_path, seed, voters=3)


@pytest.mark.parametrize("seed", range(100, 106))
def test_randomized_faults_five_voters(tmp_path: Path, seed: int) -> None:
    chaos_run(tmp_path, seed, voters=5)


@pytest.mark.parametrize("seed", range(200, 212))
def test_randomized_faults_short_timeouts(tmp_path: Path, seed: int) -> None:
    chaos_run(tmp_path, seed, voters=3, duration_ms=5_000, config=SHORT_TIMEOUTS)
