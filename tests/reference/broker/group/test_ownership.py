"""The coordinator serves only the __consumer_offsets partitions it leads, and answers a write
only once it is committed.  Every step ends with check_valid()."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest

from reference.broker.group import GroupCoordinator, records
from reference.broker.group.completion import WriteCompletion, append_error_to_response_error
from reference.broker.group.messages import MemberIdentity, OffsetFetchRequestGroup, OffsetFetchRequestTopic
from reference.broker.group.ownership import (
    CoordinatorState,
    IllegalOwnershipTransition,
    PartitionOwnership,
)
from reference.broker.group.state import GroupState
from reference.errors import ErrorCode, Errors

from .harness import GROUP, Cluster, commit_errors

PARTITIONS = 4
OTHER_GROUP = next(g for g in (f"group-{i}" for i in range(100))
                   if records.partition_for(g, PARTITIONS) != records.partition_for(GROUP, PARTITIONS))
OWN_PARTITION = records.partition_for(GROUP, PARTITIONS)
OTHER_PARTITION = records.partition_for(OTHER_GROUP, PARTITIONS)


@dataclass
class HeldWriter:
    """A writer whose appends stay uncommitted until the test completes them (or refuses them)."""

    appended: list[tuple[int, bytes, bytes | None]] = field(default_factory=list)
    pending: list[WriteCompletion] = field(default_factory=list)
    hold: bool = False
    refuse_with: ErrorCode | None = None

    def append(self, partition: int, encoded: list[tuple[bytes, bytes | None]], now_ms: int) -> WriteCompletion:
        if self.refuse_with is not None:
            return WriteCompletion.failed(self.refuse_with, now_ms)
        self.appended += [(partition, key, value) for key, value in encoded]
        if not self.hold:
            return WriteCompletion.committed(now_ms)
        completion = WriteCompletion()
        self.pending.append(completion)
        return completion

    def records_of(self, partition: int) -> list[tuple[bytes, bytes | None]]:
        return [(key, value) for p, key, value in self.appended if p == partition]

    def complete_all(self, error: ErrorCode, now_ms: int) -> None:
        pending, self.pending = self.pending, []
        for completion in pending:
            completion.complete(error, now_ms)


def tracking_cluster() -> tuple[Cluster, HeldWriter]:
    """A Cluster whose coordinator owns nothing until told it leads a partition."""
    cluster = Cluster(offsets_topic_num_partitions=PARTITIONS)
    writer = HeldWriter()
    counter = itertools.count(1)
    cluster.writer = writer  # type: ignore[assignment]
    cluster.coordinator = GroupCoordinator(
        writer, cluster.config, member_id_suffix=lambda: f"m{next(counter)}", tracks_leadership=True
    )
    return cluster, writer


def lead(cluster: Cluster, partition: int, epoch: int = 1, loaded: list[tuple[bytes, bytes | None]] | None = None) -> None:
    assert cluster.coordinator.on_became_leader(partition, epoch)
    cluster.coordinator.complete_load(partition, loaded or [], cluster.now)
    cluster.check()


def fetch_error(cluster: Cluster, group: str = GROUP) -> ErrorCode:
    return cluster.coordinator.fetch_offsets([OffsetFetchRequestGroup(group, None)])[0].error


def every_api_error(cluster: Cluster, group: str = GROUP) -> dict[str, ErrorCode]:
    """The error each classic-group API answers for ``group`` (a fresh member, generation 1)."""
    coordinator = cluster.coordinator
    return {
        "JoinGroup": cluster.join(group=group).join().error,
        "SyncGroup": cluster.sync("m", 1, group=group).sync().error,
        "Heartbeat": cluster.heartbeat("m", 1, group=group).error,
        "LeaveGroup": cluster.leave(MemberIdentity("m"), group=group).error,
        "OffsetCommit": cluster.commit({("t", 0): 1}, group=group).topics[0].partitions[0].error,
        "OffsetFetch": fetch_error(cluster, group),
        "DescribeGroups": coordinator.describe_groups([group])[0].error,
        "DeleteGroups": coordinator.delete_groups([group], cluster.now)[0].error,
        "OffsetDelete": coordinator.delete_offsets(group, [], cluster.now).error,
    }


# --- who serves what --------------------------------------------------------------------------------


def test_a_coordinator_answers_not_coordinator_for_a_group_whose_partition_it_does_not_lead() -> None:
    cluster, writer = tracking_cluster()
    assert set(every_api_error(cluster).values()) == {Errors.NOT_COORDINATOR}
    assert writer.appended == []  # nothing was written for a group it does not own
    lead(cluster, OTHER_PARTITION)
    assert set(every_api_error(cluster).values()) == {Errors.NOT_COORDINATOR}


def test_while_its_partition_loads_a_group_gets_coordinator_load_in_progress() -> None:
    cluster, _ = tracking_cluster()
    assert cluster.coordinator.on_became_leader(OWN_PARTITION, 1)
    assert cluster.coordinator.ownership is not None
    assert cluster.coordinator.ownership.state_of(OWN_PARTITION) is CoordinatorState.LOADING
    errors = every_api_error(cluster)
    # Kafka answers a heartbeat "blindly" while loading, so the member keeps its session.
    assert errors.pop("Heartbeat") is Errors.NONE
    assert set(errors.values()) == {Errors.COORDINATOR_LOAD_IN_PROGRESS}
    assert cluster.coordinator.list_groups_error() is Errors.COORDINATOR_LOAD_IN_PROGRESS
    cluster.coordinator.complete_load(OWN_PARTITION, [], cluster.now)
    assert cluster.coordinator.list_groups_error() is Errors.NONE
    assert cluster.join(api_version=4).join().error is Errors.MEMBER_ID_REQUIRED


def test_a_new_leader_serves_the_group_state_and_offsets_of_the_partition_log() -> None:
    old, old_writer = tracking_cluster()
    lead(old, OWN_PARTITION)
    members, generation = old.stable_group(2)
    assert commit_errors(old.commit({("t", 0): 42, ("t", 1): 7}, members[0], generation)) == {"NONE"}

    new, _ = tracking_cluster()
    new.now = old.now
    lead(new, OWN_PARTITION, loaded=old_writer.records_of(OWN_PARTITION))
    assert new.committed() == {("t", 0): 42, ("t", 1): 7}
    group = new.coordinator.groups[GROUP]
    assert group.state is GroupState.STABLE and group.generation_id == generation
    assert sorted(group.members) == sorted(members)
    assert new.heartbeat(members[1], generation).error is Errors.NONE


def test_resigning_answers_parked_requests_not_coordinator_and_forgets_the_partition() -> None:
    cluster, _ = tracking_cluster()
    lead(cluster, OWN_PARTITION)
    lead(cluster, OTHER_PARTITION)
    members, generation = cluster.stable_group(2)
    cluster.commit({("t", 0): 5}, members[0], generation)
    cluster.stable_group(1, group=OTHER_GROUP)
    rejoin = cluster.join(members[0])  # a rejoin starts a rebalance; it waits for the other member
    assert not rejoin.done

    assert cluster.coordinator.on_resigned(OWN_PARTITION, 2, cluster.now)
    cluster.check()
    assert rejoin.join().error is Errors.NOT_COORDINATOR
    assert GROUP not in cluster.coordinator.groups and cluster.committed() == {}
    assert fetch_error(cluster) is Errors.NOT_COORDINATOR
    assert [g.group_id for g in cluster.coordinator.list_groups()] == [OTHER_GROUP]  # the other stays


def test_resigning_answers_a_parked_sync_group_not_coordinator() -> None:
    cluster, _ = tracking_cluster()
    lead(cluster, OWN_PARTITION)
    first, second = cluster.join_new(), cluster.join_new()
    cluster.settle(first, second)
    follower = next(r.join() for r in (first, second) if r.join().member_id != r.join().leader)
    parked = cluster.sync(follower.member_id, follower.generation_id)
    assert not parked.done
    cluster.coordinator.on_resigned(OWN_PARTITION, None, cluster.now)  # None: the topic was deleted
    cluster.check()
    assert parked.sync().error is Errors.NOT_COORDINATOR


def test_leadership_events_of_an_older_epoch_are_ignored() -> None:
    cluster, _ = tracking_cluster()
    lead(cluster, OWN_PARTITION, epoch=5)
    members, _ = cluster.stable_group(1)
    assert not cluster.coordinator.on_became_leader(OWN_PARTITION, 5)  # a repeat: no reload
    assert not cluster.coordinator.on_resigned(OWN_PARTITION, 4, cluster.now)  # an older term's
    assert cluster.coordinator.groups[GROUP].has_member(members[0])
    assert cluster.coordinator.on_resigned(OWN_PARTITION, 6, cluster.now)
    assert cluster.coordinator.coordinator_error(GROUP) is Errors.NOT_COORDINATOR


def test_a_failed_load_leaves_the_partition_failed_until_a_newer_epoch_loads_it() -> None:
    cluster, _ = tracking_cluster()
    assert cluster.coordinator.on_became_leader(OWN_PARTITION, 1)
    cluster.coordinator.fail_load(OWN_PARTITION, cluster.now)
    assert cluster.coordinator.coordinator_error(GROUP) is Errors.NOT_COORDINATOR
    lead(cluster, OWN_PARTITION, epoch=2)
    assert cluster.coordinator.coordinator_error(GROUP) is Errors.NONE


def test_list_groups_lists_only_groups_of_partitions_it_leads() -> None:
    cluster, writer = tracking_cluster()
    lead(cluster, OWN_PARTITION)
    lead(cluster, OTHER_PARTITION)
    cluster.stable_group(1)
    cluster.stable_group(1, group=OTHER_GROUP)
    assert {g.group_id for g in cluster.coordinator.list_groups()} == {GROUP, OTHER_GROUP}
    cluster.coordinator.on_resigned(OTHER_PARTITION, 2, cluster.now)
    assert {g.group_id for g in cluster.coordinator.list_groups()} == {GROUP}


def test_the_ownership_table_refuses_illegal_transitions() -> None:
    ownership = PartitionOwnership()
    with pytest.raises(IllegalOwnershipTransition, match="loaded is illegal in state None"):
        ownership.loaded(0)
    ownership.became_leader(0, 1)
    ownership.loaded(0)
    with pytest.raises(IllegalOwnershipTransition, match="load-failed is illegal in state Active"):
        ownership.load_failed(0)


# --- writes answer when committed ------------------------------------------------------------------


def test_the_leaders_assignment_is_handed_out_only_once_its_write_is_committed() -> None:
    cluster, writer = tracking_cluster()
    lead(cluster, OWN_PARTITION)
    first, second = cluster.join_new(), cluster.join_new()
    cluster.settle(first, second)
    leader = next(r.join() for r in (first, second) if r.join().member_id == r.join().leader)
    follower = next(r.join() for r in (first, second) if r.join().member_id != r.join().leader)
    writer.hold = True
    parked = cluster.sync(follower.member_id, follower.generation_id)
    leader_sync = cluster.sync(leader.member_id, leader.generation_id,
                               {leader.member_id: b"L", follower.member_id: b"F"})
    assert not leader_sync.done and not parked.done
    assert cluster.coordinator.groups[GROUP].state is GroupState.COMPLETING_REBALANCE
    writer.complete_all(Errors.NONE, cluster.now)
    cluster.check()
    assert (leader_sync.sync().assignment, parked.sync().assignment) == (b"L", b"F")
    assert cluster.coordinator.groups[GROUP].state is GroupState.STABLE


def test_a_failed_assignment_write_answers_kafkas_mapped_error_and_rebalances() -> None:
    cluster, writer = tracking_cluster()
    lead(cluster, OWN_PARTITION)
    (only,) = [cluster.join_new()]
    cluster.settle(only)
    writer.hold = True
    sync = cluster.sync(only.join().member_id, only.join().generation_id, {only.join().member_id: b"A"})
    writer.complete_all(Errors.NOT_ENOUGH_REPLICAS, cluster.now)
    cluster.check()
    assert sync.sync().error is Errors.COORDINATOR_NOT_AVAILABLE
    assert cluster.coordinator.groups[GROUP].state is GroupState.PREPARING_REBALANCE


def test_a_new_group_whose_first_write_is_refused_is_forgotten() -> None:
    cluster, writer = tracking_cluster()
    lead(cluster, OWN_PARTITION)
    writer.refuse_with = Errors.NOT_LEADER_OR_FOLLOWER
    assert cluster.join().join().error is Errors.NOT_COORDINATOR
    assert GROUP not in cluster.coordinator.groups


def test_a_refused_offset_commit_leaves_the_offsets_unchanged() -> None:
    cluster, writer = tracking_cluster()
    lead(cluster, OWN_PARTITION)
    cluster.commit({("t", 0): 1})
    writer.refuse_with = Errors.NOT_ENOUGH_REPLICAS
    cluster.commit({("t", 0): 2})
    assert cluster.committed() == {("t", 0): 1}
    fetched = cluster.coordinator.fetch_offsets([OffsetFetchRequestGroup(GROUP, [OffsetFetchRequestTopic("t", [0])])])
    assert fetched[0].topics[0].partitions[0].committed_offset == 1


@pytest.mark.parametrize(("append_error", "answered"), [
    (Errors.NOT_ENOUGH_REPLICAS, Errors.COORDINATOR_NOT_AVAILABLE),
    (Errors.UNKNOWN_TOPIC_OR_PARTITION, Errors.COORDINATOR_NOT_AVAILABLE),
    (Errors.REQUEST_TIMED_OUT, Errors.COORDINATOR_NOT_AVAILABLE),
    (Errors.NOT_LEADER_OR_FOLLOWER, Errors.NOT_COORDINATOR),
    (Errors.KAFKA_STORAGE_ERROR, Errors.NOT_COORDINATOR),
    (Errors.MESSAGE_TOO_LARGE, Errors.UNKNOWN_SERVER_ERROR),
    (Errors.RECORD_LIST_TOO_LARGE, Errors.UNKNOWN_SERVER_ERROR),
    (Errors.NOT_COORDINATOR, Errors.NOT_COORDINATOR),
    (Errors.NONE, Errors.NONE),
])
def test_append_errors_are_mapped_as_kafkas_coordinator_maps_them(append_error: ErrorCode, answered: ErrorCode) -> None:
    assert append_error_to_response_error(append_error) is answered
