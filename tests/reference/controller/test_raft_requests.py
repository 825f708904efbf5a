"""How one Raft node answers Vote, BeginQuorumEpoch, EndQuorumEpoch, Fetch and DescribeQuorum
(KafkaRaftClient's rules and error codes), driven directly through ``handle_request``."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from reference.broker.pending import Pending
from reference.client.outbox import Outbox
from reference.controller.control_records import build_control_batch, leader_change_message
from reference.controller.quorum_state import Role
from reference.controller.raft import (
    METADATA_TOPIC,
    METADATA_TOPIC_ID,
    ApiKey,
    NotLeaderError,
    RaftConfig,
    RaftNode,
    message_for,
)
from reference.errors import ErrorCode, Errors, by_name
from reference.protocol.schema import Data
from reference.records.batch import SimpleRecord, build_batch, iter_record_batches
from reference.records.control import ControlRecordType, decode_control_key
from tests.reference.controller.raft_network import START_MS, RaftNetwork

VOTERS = {1: ("localhost", 9001), 2: ("localhost", 9002), 3: ("localhost", 9003)}
CLUSTER = "test-cluster-id"


def make_node(tmp_path: Path, node_id: int = 1, voters: dict[int, tuple[str, int]] = VOTERS) -> RaftNode:
    return RaftNode(node_id, voters, tmp_path / f"node-{node_id}", CLUSTER, Outbox(), START_MS, RaftConfig(),
                    rng=random.Random(node_id))


def vote(node: RaftNode, candidate: int, epoch: int, last_epoch: int = 0, last_offset: int = 0, *,
         pre_vote: bool = False, cluster_id: str | None = CLUSTER, topic: str = METADATA_TOPIC, version: int = 2) -> Data:
    request, _ = message_for(ApiKey.VOTE)
    partition = request.struct("PartitionData").make(
        partition_index=0, replica_epoch=epoch, replica_id=candidate, last_offset_epoch=last_epoch,
        last_offset=last_offset, pre_vote=pre_vote,
    )
    body = request.make(cluster_id=cluster_id, voter_id=node.node_id,
                        topics=[request.struct("TopicData").make(topic_name=topic, partitions=[partition])])
    answer = node.handle_request(ApiKey.VOTE, version, body, START_MS)
    assert isinstance(answer, Data)
    return answer


def begin_quorum_epoch(node: RaftNode, leader: int, epoch: int, cluster_id: str | None = CLUSTER) -> Data:
    request, _ = message_for(ApiKey.BEGIN_QUORUM_EPOCH)
    partition = request.struct("PartitionData").make(partition_index=0, leader_id=leader, leader_epoch=epoch)
    body = request.make(cluster_id=cluster_id, voter_id=node.node_id,
                        topics=[request.struct("TopicData").make(topic_name=METADATA_TOPIC, partitions=[partition])])
    answer = node.handle_request(ApiKey.BEGIN_QUORUM_EPOCH, 1, body, START_MS)
    assert isinstance(answer, Data)
    return answer


def fetch(node: RaftNode, replica: int, epoch: int, offset: int, last_epoch: int, now_ms: int, *,
          max_wait_ms: int = 0, cluster_id: str | None = CLUSTER, version: int = 17,
          high_watermark: int | None = None) -> Data | Pending:
    """A Fetch at ``version``; ``high_watermark`` is the follower's (v18+; None: the field's default)."""
    request, _ = message_for(ApiKey.FETCH)
    partition = request.struct("FetchPartition").make(
        partition=0, current_leader_epoch=epoch, fetch_offset=offset, last_fetched_epoch=last_epoch,
        partition_max_bytes=1 << 20,
    )
    if high_watermark is not None:
        partition.high_watermark = high_watermark
    body = request.make(
        cluster_id=cluster_id, replica_state=request.struct("ReplicaState").make(replica_id=replica, replica_epoch=-1),
        max_wait_ms=max_wait_ms, min_bytes=0,
        topics=[request.struct("FetchTopic").make(topic_id=METADATA_TOPIC_ID, partitions=[partition])],
    )
    return node.handle_request(ApiKey.FETCH, version, body, now_ms)


def role_of(node: RaftNode) -> Role:
    """The node's role, read afresh (keeps mypy from narrowing a property across calls)."""
    return node.role


def partition_of(answer: Data) -> Data:
    topics = answer.topics if hasattr(answer, "topics") else answer.responses
    partition: Data = topics[0].partitions[0]
    return partition


def elected(tmp_path: Path, seed: int = 7) -> tuple[RaftNetwork, RaftNode]:
    network = RaftNetwork(tmp_path, [1, 2, 3], seed)
    return network, network.elect()


# -- Vote ---------------------------------------------------------------------------------------------


def test_vote_is_granted_once_per_epoch_and_persisted_before_the_answer(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    answer = vote(node, candidate=2, epoch=5)
    assert partition_of(answer).vote_granted
    assert node.epoch == 5 and node.voted_id == 2
    stored = json.loads((node.directory / "quorum-state").read_text())
    assert stored["leaderEpoch"] == 5 and stored["votedId"] == 2
    assert not partition_of(vote(node, candidate=3, epoch=5)).vote_granted
    assert partition_of(vote(node, candidate=2, epoch=5)).vote_granted  # a retry of the same vote


def test_a_restarted_voter_keeps_its_vote(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    vote(node, candidate=2, epoch=5)
    node.close()
    restarted = make_node(tmp_path)
    assert restarted.epoch == 5 and restarted.voted_id == 2
    assert not partition_of(vote(restarted, candidate=3, epoch=5)).vote_granted


def test_vote_is_refused_to_a_candidate_whose_log_is_behind(tmp_path: Path) -> None:
    network, leader = elected(tmp_path)
    network.append([b"a"])
    network.run_until(lambda: network.committed_everywhere(1))
    follower = next(node for node in network.nodes.values() if node is not leader)
    last_epoch, end = leader.epoch, follower.log_end_offset  # (epoch, LEO) of the follower: 2 batches
    assert not partition_of(vote(follower, 3, leader.epoch + 1, last_epoch, end - 1)).vote_granted
    assert not partition_of(vote(follower, 3, leader.epoch + 2, last_epoch - 1, end + 5)).vote_granted
    assert partition_of(vote(follower, 3, leader.epoch + 3, last_epoch, end)).vote_granted


def test_pre_vote_does_not_change_epoch_or_vote(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    answer = vote(node, candidate=2, epoch=4, pre_vote=True)
    assert partition_of(answer).vote_granted
    assert node.epoch == 0 and node.voted_id is None
    assert json.loads((node.directory / "quorum-state").read_text())["leaderEpoch"] == 0


def test_a_follower_that_fetched_from_its_leader_refuses_pre_votes(tmp_path: Path) -> None:
    network, leader = elected(tmp_path)
    network.run_for(1000)
    follower = next(node for node in network.nodes.values() if node is not leader)
    end, epoch = follower.log_end_offset, follower.epoch
    answer = vote(follower, candidate=6 - leader.node_id - follower.node_id, epoch=epoch, last_epoch=epoch,
                  last_offset=end, pre_vote=True)
    assert partition_of(answer).error_code == 0 and not partition_of(answer).vote_granted
    assert partition_of(answer).leader_id == leader.node_id


@pytest.mark.parametrize(
    ("candidate", "epoch", "last_epoch", "error"),
    [
        (2, 1, 0, Errors.FENCED_LEADER_EPOCH),  # an epoch below ours
        (9, 5, 0, by_name["INCONSISTENT_VOTER_SET"]),  # not a configured voter
        (2, 5, 5, Errors.INVALID_REQUEST),  # a last epoch that is not below the candidate's epoch
    ],
)
def test_vote_partition_errors(tmp_path: Path, candidate: int, epoch: int, last_epoch: int, error: ErrorCode) -> None:
    node = make_node(tmp_path)
    vote(node, candidate=2, epoch=3)  # now in epoch 3
    assert partition_of(vote(node, candidate, epoch, last_epoch)).error_code == error.code


def test_vote_with_another_cluster_id_is_inconsistent_cluster_id(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    answer = vote(node, candidate=2, epoch=3, cluster_id="another-cluster")
    assert answer.error_code == by_name["INCONSISTENT_CLUSTER_ID"].code
    assert node.epoch == 0


def test_vote_for_another_topic_is_invalid_request(tmp_path: Path) -> None:
    assert vote(make_node(tmp_path), 2, 3, topic="orders").error_code == Errors.INVALID_REQUEST.code


# -- BeginQuorumEpoch ------------------------------------------------------------------------------------


def test_begin_quorum_epoch_makes_the_voter_follow_the_new_leader(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    answer = begin_quorum_epoch(node, leader=3, epoch=4)
    assert partition_of(answer).error_code == 0
    assert node.role is Role.FOLLOWER and node.leader_id == 3 and node.epoch == 4
    assert partition_of(begin_quorum_epoch(node, leader=2, epoch=3)).error_code == Errors.FENCED_LEADER_EPOCH.code
    assert node.leader_id == 3


# -- Fetch ------------------------------------------------------------------------------------------------


def test_new_leader_writes_leader_change_message_first_in_its_epoch(tmp_path: Path) -> None:
    _, leader = elected(tmp_path)
    data = leader.log.read(0, 1 << 20).records
    first = next(iter_record_batches(data))
    assert first.is_control and first.partition_leader_epoch == leader.epoch
    assert decode_control_key(first.records[0].key) is ControlRecordType.LEADER_CHANGE


def test_fetch_errors_follow_the_leader_epoch_rules(tmp_path: Path) -> None:
    network, leader = elected(tmp_path)
    epoch = leader.epoch
    follower = next(node for node in network.nodes.values() if node is not leader)
    assert partition_of(fetch(leader, 2, epoch - 1, 0, 0, network.now)).error_code == Errors.FENCED_LEADER_EPOCH.code  # type: ignore[arg-type]
    assert partition_of(fetch(leader, 2, epoch + 1, 0, 0, network.now)).error_code == Errors.UNKNOWN_LEADER_EPOCH.code  # type: ignore[arg-type]
    answer = fetch(follower, 2, epoch, 0, 0, network.now)
    assert isinstance(answer, Data)
    assert partition_of(answer).error_code == Errors.NOT_LEADER_OR_FOLLOWER.code
    assert partition_of(answer).current_leader.leader_id == leader.node_id
    wrong_cluster = fetch(leader, 2, epoch, 0, 0, network.now, cluster_id="x")
    assert isinstance(wrong_cluster, Data) and wrong_cluster.error_code == by_name["INCONSISTENT_CLUSTER_ID"].code


def test_fetch_with_a_diverging_last_epoch_is_answered_with_diverging_epoch(tmp_path: Path) -> None:
    network, leader = elected(tmp_path)
    network.append([b"a"])
    # The follower claims 5 records written in epoch 0, which the leader's log never had.
    answer = fetch(leader, 2, leader.epoch, 5, 0, network.now)
    assert isinstance(answer, Data)
    diverging = partition_of(answer).diverging_epoch
    assert (diverging.epoch, diverging.end_offset) == (0, 0)
    assert not partition_of(answer).records


def test_fetch_long_polls_until_the_leader_appends(tmp_path: Path) -> None:
    network, leader = elected(tmp_path)
    network.run_for(100)
    end = leader.log_end_offset
    answer = fetch(leader, 2, leader.epoch, end, leader.epoch, network.now, max_wait_ms=500)
    assert isinstance(answer, Pending) and not answer.done
    leader.append([b"new"], network.now)
    assert answer.done
    records = partition_of(answer.result).records
    assert [record.value for batch in iter_record_batches(records) for record in batch.records] == [b"new"]


def test_a_parked_fetch_is_answered_empty_after_max_wait(tmp_path: Path) -> None:
    network, leader = elected(tmp_path)
    network.crash(next(node_id for node_id in network.nodes if node_id != leader.node_id))
    end = leader.log_end_offset
    answer = fetch(leader, 2, leader.epoch, end, leader.epoch, network.now, max_wait_ms=500)
    assert isinstance(answer, Pending)
    leader.poll(network.now + 499)
    assert not answer.done
    leader.poll(network.now + 500)
    assert answer.done and not partition_of(answer.result).records


def leader_alone_with_an_entry(tmp_path: Path) -> tuple[RaftNetwork, RaftNode, list[int], int]:
    """An elected leader whose followers crashed after it appended one entry (at the returned
    offset), which therefore is not committed."""
    network, leader = elected(tmp_path)
    followers = [node_id for node_id in network.nodes if node_id != leader.node_id]
    for node_id in followers:
        network.crash(node_id)
    offset = leader.append([b"alone"], network.now)
    network.run_for(500)
    return network, leader, followers, offset


def test_a_fetch_is_answered_at_once_when_the_follower_does_not_know_the_high_watermark(tmp_path: Path) -> None:
    """KIP-1166: from Fetch v18 the follower sends the HW it knows; a leader whose HW is above it
    answers at once even with no records to send (the fetch that commits an entry tells the
    follower so in the same round trip).  A follower that knows the HW, or one on v17, waits."""
    network, leader, followers, offset = leader_alone_with_an_entry(tmp_path)
    old = leader.high_watermark
    assert old <= offset
    at_once = fetch(leader, followers[0], leader.epoch, offset + 1, leader.epoch, network.now, max_wait_ms=500,
                    version=18, high_watermark=old)
    assert isinstance(at_once, Data), "the fetch that moved the HW past the follower's must not wait"
    assert partition_of(at_once).high_watermark == offset + 1 and not partition_of(at_once).records
    knows = fetch(leader, followers[0], leader.epoch, offset + 1, leader.epoch, network.now, max_wait_ms=500,
                  version=18, high_watermark=offset + 1)
    assert isinstance(knows, Pending) and not knows.done
    unknown = fetch(leader, followers[0], leader.epoch, offset + 1, leader.epoch, network.now, max_wait_ms=500,
                    version=18, high_watermark=-1)
    assert isinstance(unknown, Data) and partition_of(unknown).high_watermark == offset + 1
    before_v18 = fetch(leader, followers[0], leader.epoch, offset + 1, leader.epoch, network.now, max_wait_ms=500)
    assert isinstance(before_v18, Pending) and not before_v18.done


def test_high_watermark_needs_a_majority_of_voters(tmp_path: Path) -> None:
    network, leader, followers, offset = leader_alone_with_an_entry(tmp_path)
    assert leader.high_watermark <= offset
    answer = fetch(leader, followers[0], leader.epoch, offset + 1, leader.epoch, network.now)
    assert isinstance(answer, Data)
    assert leader.high_watermark == offset + 1
    assert partition_of(answer).high_watermark == offset + 1


def test_append_on_a_follower_raises_not_leader_error(tmp_path: Path) -> None:
    network, leader = elected(tmp_path)
    follower = next(node for node in network.nodes.values() if node is not leader)
    with pytest.raises(NotLeaderError) as raised:
        follower.append([b"x"], network.now)
    assert raised.value.leader_id == leader.node_id and raised.value.epoch == leader.epoch


# -- DescribeQuorum ----------------------------------------------------------------------------------------


def describe_quorum(node: RaftNode, now_ms: int, topic: str = METADATA_TOPIC) -> Data:
    request, _ = message_for(ApiKey.DESCRIBE_QUORUM)
    body = request.make(topics=[request.struct("TopicData").make(
        topic_name=topic, partitions=[request.struct("PartitionData").make(partition_index=0)])])
    answer = node.handle_request(ApiKey.DESCRIBE_QUORUM, 2, body, now_ms)
    assert isinstance(answer, Data)
    return answer


def test_describe_quorum_on_the_leader_lists_voters_and_their_offsets(tmp_path: Path) -> None:
    network, leader = elected(tmp_path)
    last = network.append([b"a", b"b"])
    assert last is not None and network.run_until(lambda: network.committed_everywhere(last))
    network.run_for(600)  # one more fetch round reports the followers' final offsets
    partition = partition_of(describe_quorum(leader, network.now))
    assert partition.error_code == 0 and partition.leader_id == leader.node_id
    assert partition.high_watermark == leader.high_watermark
    assert sorted(voter.replica_id for voter in partition.current_voters) == [1, 2, 3]
    assert all(voter.log_end_offset == leader.log_end_offset for voter in partition.current_voters)
    follower = next(node for node in network.nodes.values() if node is not leader)
    assert partition_of(describe_quorum(follower, network.now)).error_code == Errors.NOT_LEADER_OR_FOLLOWER.code
    assert partition_of(describe_quorum(leader, network.now, "orders")).error_code == Errors.UNKNOWN_TOPIC_OR_PARTITION.code


# -- a leader commits earlier epochs only through its own (KIP-595, Raft's Figure 8) --------------------


def answer_votes(node: RaftNode, granted_by: int, now_ms: int) -> None:
    """Grant every Vote (or pre-vote) waiting in the node's outbox, as voter ``granted_by``."""
    _, response = message_for(ApiKey.VOTE)
    for request in node.outbox.drain():
        if request.api_key != ApiKey.VOTE or request.destination != granted_by:
            continue
        partition = response.struct("PartitionData").make(
            partition_index=0, error_code=0, leader_id=-1, leader_epoch=node.epoch, vote_granted=True
        )
        request.complete(response.make(topics=[response.struct("TopicData").make(
            topic_name=METADATA_TOPIC, partitions=[partition])]), now_ms)


def test_a_new_leader_does_not_commit_an_earlier_epochs_entry_before_one_of_its_own(tmp_path: Path) -> None:
    node = make_node(tmp_path, node_id=2)
    begin_quorum_epoch(node, leader=1, epoch=1)
    # Leader 1 replicated a LeaderChangeMessage and "x" to node 2, and then vanished uncommitted.
    fetch_request = next(request for request in node.outbox.drain() if request.api_key == ApiKey.FETCH)
    old_entries = build_control_batch(
        ControlRecordType.LEADER_CHANGE, leader_change_message(1, [1, 2, 3], [1, 2]), timestamp=0,
        base_offset=0, partition_leader_epoch=1,
    ) + build_batch([SimpleRecord(b"x", timestamp=0)], base_offset=1, partition_leader_epoch=1)
    _, fetch_response = message_for(ApiKey.FETCH)
    data = fetch_response.struct("PartitionData").make(
        partition_index=0, high_watermark=0, records=old_entries,
        current_leader=fetch_response.struct("LeaderIdAndEpoch").make(leader_id=1, leader_epoch=1),
    )
    fetch_request.complete(fetch_response.make(responses=[fetch_response.struct("FetchableTopicResponse").make(
        topic_id=METADATA_TOPIC_ID, partitions=[data])]), START_MS)
    assert node.log_end_offset == 2 and node.high_watermark == 0
    # Node 2's fetch timer expires; node 3 grants its pre-vote and then its vote: node 2 leads epoch 2.
    now = START_MS + RaftConfig().fetch_timeout_ms
    node.poll(now)
    answer_votes(node, granted_by=3, now_ms=now)
    answer_votes(node, granted_by=3, now_ms=now)
    assert node.role is Role.LEADER and node.epoch == 2 and node.log_end_offset == 3
    # Node 3 has "x" (offset 1) but not the new LeaderChangeMessage: "x" is on a majority, yet
    # committing it now could lose it to a node with a longer epoch-1 log; the HW must wait.
    fetch(node, 3, 2, 2, 1, now)
    assert node.high_watermark == 0
    fetch(node, 3, 2, 3, 2, now)
    assert node.high_watermark == 3


# -- the fetch timeout starts a pre-vote ----------------------------------------------------------------------


def test_a_follower_that_hears_nothing_for_the_fetch_timeout_asks_for_pre_votes_in_its_epoch(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    begin_quorum_epoch(node, leader=3, epoch=4)
    node.outbox.drain()  # its Fetch to leader 3 is never answered
    node.poll(START_MS + RaftConfig().fetch_timeout_ms - 1)
    assert role_of(node) is Role.FOLLOWER
    node.poll(START_MS + RaftConfig().fetch_timeout_ms)
    assert role_of(node) is Role.PROSPECTIVE and node.epoch == 4 and node.voted_id is None
    votes = [request for request in node.outbox.drain() if request.api_key == ApiKey.VOTE]
    assert sorted(request.destination for request in votes) == [2, 3]
    for request in votes:
        partition = request.body.topics[0].partitions[0]
        assert partition.pre_vote and partition.replica_epoch == 4 and request.version == 2


# -- FetchSnapshot ----------------------------------------------------------------------------------------------


def fetch_snapshot(node: RaftNode, epoch: int, end_offset: int, snapshot_epoch: int, position: int,
                   max_bytes: int = 1 << 20) -> Data:
    request, _ = message_for(ApiKey.FETCH_SNAPSHOT)
    partition = request.struct("PartitionSnapshot").make(
        partition=0, current_leader_epoch=epoch, position=position,
        snapshot_id=request.struct("SnapshotId").make(end_offset=end_offset, epoch=snapshot_epoch),
    )
    body = request.make(cluster_id=CLUSTER, replica_id=2, max_bytes=max_bytes, topics=[
        request.struct("TopicSnapshot").make(name=METADATA_TOPIC, partitions=[partition])])
    answer = node.handle_request(ApiKey.FETCH_SNAPSHOT, 1, body, START_MS)
    assert isinstance(answer, Data)
    return answer


def test_fetch_snapshot_serves_chunks_and_reports_unknown_snapshots_and_positions(tmp_path: Path) -> None:
    network, leader = elected(tmp_path)
    last = network.append([b"a", b"b"])
    assert last is not None and network.run_until(lambda: network.committed_everywhere(last))
    snapshot = leader.create_snapshot(leader.high_watermark, [b"a", b"b"], network.now)
    size = (leader.directory / snapshot.file_name).stat().st_size
    first = partition_of(fetch_snapshot(leader, leader.epoch, snapshot.end_offset, snapshot.epoch, 0, max_bytes=10))
    assert first.error_code == 0 and first.size == size and first.position == 0 and len(first.unaligned_records) == 10
    rest = partition_of(fetch_snapshot(leader, leader.epoch, snapshot.end_offset, snapshot.epoch, 10))
    assert first.unaligned_records + rest.unaligned_records == (leader.directory / snapshot.file_name).read_bytes()
    unknown = partition_of(fetch_snapshot(leader, leader.epoch, snapshot.end_offset + 1, snapshot.epoch, 0))
    assert unknown.error_code == by_name["SNAPSHOT_NOT_FOUND"].code
    beyond = partition_of(fetch_snapshot(leader, leader.epoch, snapshot.end_offset, snapshot.epoch, size))
    assert beyond.error_code == by_name["POSITION_OUT_OF_RANGE"].code
    stale = partition_of(fetch_snapshot(leader, leader.epoch - 1, snapshot.end_offset, snapshot.epoch, 0))
    assert stale.error_code == Errors.FENCED_LEADER_EPOCH.code


def test_snapshot_above_the_high_watermark_is_refused(tmp_path: Path) -> None:
    network, leader = elected(tmp_path)
    with pytest.raises(ValueError, match="above the high watermark"):
        leader.create_snapshot(leader.high_watermark + 1, [], network.now)


def test_a_candidate_that_learned_the_leader_of_its_epoch_restarts_as_its_follower(tmp_path: Path) -> None:
    """quorum-state then holds both ``votedId`` = itself and ``leaderId``: the leader wins, else the
    node would ask for votes in an epoch whose entries its log already holds."""
    node = make_node(tmp_path)
    now = START_MS + 2 * RaftConfig().election_timeout_ms
    node.poll(now)
    answer_votes(node, granted_by=2, now_ms=now)  # the pre-vote
    assert role_of(node) is Role.CANDIDATE and node.epoch == 1 and node.voted_id == 1
    begin_quorum_epoch(node, leader=3, epoch=1)
    assert role_of(node) is Role.FOLLOWER and node.voted_id == 1
    node.close()
    restarted = make_node(tmp_path)
    assert restarted.role is Role.FOLLOWER and restarted.leader_id == 3 and restarted.epoch == 1
