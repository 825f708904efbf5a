"""Raft observers (rule 10 of ``reference/controller/raft.py``): nodes outside the voter set that
replicate ``__cluster_metadata`` -- Kafka's ``process.roles=broker`` nodes.  They follow the leader,
commit the same batches, find a new leader through the voters, and never count for the majority."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from reference.client.outbox import Outbox
from reference.controller import raft_messages as messages
from reference.controller.quorum_state import Role
from reference.controller.raft import ApiKey, RaftConfig, RaftNode
from reference.protocol.schema import Data
from tests.reference.controller.raft_network import START_MS, RaftNetwork
from tests.reference.controller.test_raft_cluster import (
    SHORT_TIMEOUTS,
    append_and_commit,
    chaos_run,
    values_of,
)
from tests.reference.controller.test_raft_requests import (
    CLUSTER,
    VOTERS,
    begin_quorum_epoch,
    describe_quorum,
    partition_of,
    vote,
)

VALUES = [f"record-{index}".encode() for index in range(10)]
OBSERVERS = (4, 5)


def network_with_observers(tmp_path: Path, seed: int, config: RaftConfig | None = None) -> RaftNetwork:
    return RaftNetwork(tmp_path, [1, 2, 3], seed, observer_ids=OBSERVERS, config=config)


def follows(network: RaftNetwork, node_id: int, leader: RaftNode) -> bool:
    node = network.nodes[node_id]
    return node.role is Role.FOLLOWER and node.leader_id == leader.node_id and node.epoch == leader.epoch


def test_observers_follow_the_leader_and_commit_the_same_batches(tmp_path: Path) -> None:
    network = network_with_observers(tmp_path, seed=1)
    leader = network.elect()  # every node, observers included, follows it in its epoch
    for observer in OBSERVERS:
        assert not network.nodes[observer].is_voter
        assert network.listeners[observer].leader_changes[-1] == (leader.node_id, leader.epoch)
    append_and_commit(network, VALUES[:3])
    append_and_commit(network, VALUES[3:5])
    for node_id in network.nodes:
        assert values_of(network, node_id) == VALUES[:5]


def test_the_leader_lists_observers_in_describe_quorum_but_not_as_voters(tmp_path: Path) -> None:
    network = network_with_observers(tmp_path, seed=2)
    leader = network.elect()
    append_and_commit(network, VALUES[:2])
    network.run_for(600)  # one more fetch round reports the final offsets
    partition = partition_of(describe_quorum(leader, network.now))
    assert sorted(voter.replica_id for voter in partition.current_voters) == [1, 2, 3]
    assert sorted(observer.replica_id for observer in partition.observers) == list(OBSERVERS)
    assert all(observer.log_end_offset == leader.log_end_offset for observer in partition.observers)


def test_observers_are_never_counted_for_the_high_watermark(tmp_path: Path) -> None:
    """Two of three voters down: the leader and both observers hold the batch, four nodes of five,
    yet it is not committed -- only voters make a majority."""
    network = network_with_observers(tmp_path, seed=3)
    leader = network.elect()
    append_and_commit(network, VALUES[:1])
    for voter in sorted(network.voters):
        if voter != leader.node_id:
            network.crash(voter)
    last = network.append(VALUES[1:2])
    assert last is not None
    network.run_for(2_000)  # below the check-quorum timeout: the leader still leads
    assert leader.role is Role.LEADER
    for observer in OBSERVERS:
        assert network.nodes[observer].log_end_offset > last, "the observers fetched the batch"
    for node_id in [leader.node_id, *OBSERVERS]:
        assert network.nodes[node_id].high_watermark <= last
        assert values_of(network, node_id) == VALUES[:1]


def test_an_observer_finds_the_new_leader_after_the_leader_crashes(tmp_path: Path) -> None:
    network = network_with_observers(tmp_path, seed=4)
    old = network.elect()
    append_and_commit(network, VALUES[:2])
    network.crash(old.node_id)
    new = network.elect()
    assert new.node_id != old.node_id and new.epoch > old.epoch
    assert all(follows(network, observer, new) for observer in OBSERVERS)
    append_and_commit(network, VALUES[2:4])
    for observer in OBSERVERS:
        assert values_of(network, observer) == VALUES[:4]


def test_an_observer_truncates_the_uncommitted_tail_it_fetched_from_a_deposed_leader(tmp_path: Path) -> None:
    """Cut off with the old leader, observer 4 fetches batches that never commit; once it finds the
    new leader, DivergingEpoch makes it truncate them, and it commits what the quorum committed."""
    network = network_with_observers(tmp_path, seed=8)
    old = network.elect()
    append_and_commit(network, [b"committed"])
    network.partition({old.node_id, 4})
    old.append([b"lost-1", b"lost-2"], network.now)  # never reaches a majority of voters
    observer = network.nodes[4]
    assert network.run_until(lambda: observer.log_end_offset == old.log_end_offset)
    assert network.run_until(lambda: any(
        node.role is Role.LEADER and node.epoch > old.epoch for node in network.nodes.values()))
    new = next(node for node in network.nodes.values() if node.role is Role.LEADER and node.epoch > old.epoch)
    assert network.append([b"after"]) is not None
    network.heal()
    assert network.run_until(lambda: network.committed_everywhere(new.log_end_offset - 1))
    assert observer.log_end_offset == new.log_end_offset
    assert values_of(network, 4) == [b"committed", b"after"]


def test_an_observer_never_stands_for_election_even_cut_off(tmp_path: Path) -> None:
    network = network_with_observers(tmp_path, seed=5)
    leader = network.elect()
    network.isolate(4)
    network.run_for(20_000)  # ten fetch timeouts
    observer = network.nodes[4]
    assert observer.epoch == leader.epoch and observer.voted_id is None
    assert observer.role in (Role.FOLLOWER, Role.UNATTACHED)
    assert network.leader() is leader and leader.epoch == observer.epoch  # the voters did not notice
    network.heal()
    assert network.run_until(lambda: follows(network, 4, leader))
    append_and_commit(network, VALUES[:1])


def test_an_observer_below_the_log_start_downloads_the_snapshot(tmp_path: Path) -> None:
    network = network_with_observers(tmp_path, seed=6)
    leader = network.elect()
    network.crash(4)
    append_and_commit(network, VALUES[:6])
    for node_id, node in network.nodes.items():
        node.create_snapshot(node.high_watermark, values_of(network, node_id), network.now)
        node.delete_log_before_latest_snapshot()
    assert leader.log_start_offset > 0
    shutil.rmtree(tmp_path / "node-4")  # a new, empty broker
    observer = network.start(4)
    assert network.run_until(lambda: observer.high_watermark >= leader.high_watermark)
    snapshot = network.listeners[4].snapshot
    assert snapshot is not None and snapshot.records == VALUES[:6]
    append_and_commit(network, VALUES[6:7])
    assert values_of(network, 4) == VALUES[:7]


def test_an_observer_restarts_following_the_leader_it_knew(tmp_path: Path) -> None:
    """Kafka writes ``quorum-state`` for observers too: the epoch and leader, votedId -1, and the
    voter set, which does not include the observer."""
    network = network_with_observers(tmp_path, seed=7)
    leader = network.elect()
    append_and_commit(network, VALUES[:2])
    state = json.loads((tmp_path / "node-5" / "__cluster_metadata-0" / "quorum-state").read_text())
    assert (state["leaderId"], state["leaderEpoch"], state["votedId"]) == (leader.node_id, leader.epoch, -1)
    assert [voter["voterId"] for voter in state["currentVoters"]] == [1, 2, 3]
    restarted = network.restart(5)
    assert restarted.role is Role.FOLLOWER and restarted.leader_id == leader.node_id
    assert network.run_until(lambda: values_of(network, 5) == VALUES[:2])


# -- requests a voter may send, answered by an observer ---------------------------------------------------


def make_observer(tmp_path: Path) -> RaftNode:
    return RaftNode(9, VOTERS, tmp_path / "node-9", CLUSTER, Outbox(), START_MS, RaftConfig(), rng=random.Random(9))


def end_quorum_epoch(node: RaftNode, leader: int, epoch: int) -> Data:
    body = messages.end_quorum_epoch_request(CLUSTER, leader, epoch, [1, 2, 3])
    answer = node.handle_request(ApiKey.END_QUORUM_EPOCH, 1, body, START_MS)
    assert isinstance(answer, Data)
    return answer


def test_an_observer_answers_vote_and_epoch_announcements_inconsistent_voter_set(tmp_path: Path) -> None:
    observer = make_observer(tmp_path)
    assert observer.role is Role.UNATTACHED and not observer.is_voter
    for answer in (vote(observer, 1, 1), vote(observer, 1, 1, pre_vote=True),
                   begin_quorum_epoch(observer, 1, 1), end_quorum_epoch(observer, 1, 1)):
        partition = partition_of(answer)
        assert partition.error_code == messages.INCONSISTENT_VOTER_SET.code
    assert observer.epoch == 0 and observer.voted_id is None and observer.role is Role.UNATTACHED


def test_an_observer_with_no_leader_asks_the_voters_in_turn(tmp_path: Path) -> None:
    observer = make_observer(tmp_path)
    outbox = observer.outbox
    assert observer.next_deadline() == START_MS, "it asks at once"
    observer.poll(START_MS)
    asked = []
    for _ in range(3):
        requests = outbox.drain()
        assert [request.api_key for request in requests] == [ApiKey.FETCH]
        asked.append(requests[0].destination)
        requests[0].fail(ConnectionError("down"), START_MS)
    assert asked == [1, 2, 3]
    assert outbox.drain() == [], "every voter is backing off"
    assert observer.next_deadline() == START_MS + observer.config.retry_backoff_ms
    observer.poll(START_MS + observer.config.retry_backoff_ms)
    assert [request.destination for request in outbox.drain()] == [1]


# -- randomized, with observers ---------------------------------------------------------------------------


def test_randomized_faults_with_observers(tmp_path: Path) -> None:
    for seed in range(300, 304):
        chaos_run(tmp_path / str(seed), seed, voters=3, observers=2)


def test_randomized_faults_with_observers_short_timeouts(tmp_path: Path) -> None:
    for seed in range(310, 314):
        chaos_run(tmp_path / str(seed), seed, voters=3, observers=2, duration_ms=5_000, config=SHORT_TIMEOUTS)
