"""OffsetCommit / OffsetFetch / OffsetDelete, retention, topic deletion, and restart by replay."""

from __future__ import annotations

from reference.broker.group import GroupCoordinator
from reference.broker.group.messages import (
    HeartbeatRequest,
    MemberIdentity,
    OffsetDeleteRequestTopic,
    OffsetFetchRequestGroup,
    OffsetFetchRequestTopic,
)
from reference.broker.group.state import GroupState
from reference.errors import Errors

from .harness import GROUP, Cluster, commit_errors

DAY_MS = 24 * 60 * 60 * 1_000


# --- the commit fence -----------------------------------------------------------------------------


def test_a_simple_consumer_commits_into_an_absent_group_which_then_exists_empty() -> None:
    cluster = Cluster()
    assert commit_errors(cluster.commit({("t", 0): 42})) == {"NONE"}
    assert cluster.committed() == {("t", 0): 42}
    group = cluster.coordinator.groups[GROUP]
    assert group.state is GroupState.EMPTY and group.protocol_type is None


def test_commits_from_the_current_generation_are_accepted_and_others_fenced() -> None:
    cluster = Cluster()
    (a, b), generation = cluster.stable_group(2)
    assert commit_errors(cluster.commit({("t", 0): 1}, a, generation)) == {"NONE"}
    assert commit_errors(cluster.commit({("t", 0): 2}, a, generation - 1)) == {"ILLEGAL_GENERATION"}
    assert commit_errors(cluster.commit({("t", 0): 3}, "nobody", generation)) == {"UNKNOWN_MEMBER_ID"}
    assert commit_errors(cluster.commit({("t", 0): 4})) == {"UNKNOWN_MEMBER_ID"}  # simple commit, busy group
    assert cluster.committed() == {("t", 0): 1}


def test_during_preparing_rebalance_the_previous_generation_may_still_commit() -> None:
    cluster = Cluster()
    (a, b), generation = cluster.stable_group(2)
    cluster.join(member_id=a)
    assert cluster.coordinator.groups[GROUP].state is GroupState.PREPARING_REBALANCE
    assert commit_errors(cluster.commit({("t", 0): 7}, b, generation)) == {"NONE"}


def test_during_completing_rebalance_a_commit_gets_rebalance_in_progress() -> None:
    cluster = Cluster()
    a, b = cluster.join_new(), cluster.join_new()
    cluster.settle(a, b)
    result = cluster.commit({("t", 0): 7}, a.join().member_id, a.join().generation_id)
    assert commit_errors(result) == {"REBALANCE_IN_PROGRESS"}


def test_a_commit_with_a_generation_to_an_unknown_group_depends_on_the_version() -> None:
    cluster = Cluster()
    assert commit_errors(cluster.commit({("t", 0): 1}, "m", 1, api_version=9)) == {"GROUP_ID_NOT_FOUND"}
    assert commit_errors(cluster.commit({("t", 0): 1}, "m", 1, api_version=8)) == {"ILLEGAL_GENERATION"}
    assert GROUP not in cluster.coordinator.groups


def test_a_static_member_committing_under_a_replaced_member_id_is_fenced() -> None:
    cluster = Cluster()
    reply = cluster.join(instance_id="i")
    cluster.settle(reply)
    old = reply.join().member_id
    cluster.sync(old, 1, {})
    cluster.join(instance_id="i")  # restarted: new member id
    assert commit_errors(cluster.commit({("t", 0): 1}, old, 1, instance_id="i")) == {"FENCED_INSTANCE_ID"}


def test_metadata_longer_than_offset_metadata_max_bytes_is_refused_per_partition() -> None:
    cluster = Cluster()
    assert commit_errors(cluster.commit({("t", 0): 1}, metadata="x" * 4096)) == {"NONE"}
    assert commit_errors(cluster.commit({("t", 0): 2}, metadata="x" * 4097)) == {"OFFSET_METADATA_TOO_LARGE"}
    assert cluster.committed() == {("t", 0): 1}


def test_commits_after_the_group_emptied_are_accepted_from_simple_consumers() -> None:
    cluster = Cluster()
    (a,), _ = cluster.stable_group(1)
    cluster.leave(MemberIdentity(a))
    assert commit_errors(cluster.commit({("t", 0): 9})) == {"NONE"}


# --- OffsetFetch ----------------------------------------------------------------------------------


def test_offset_fetch_returns_listed_partitions_with_minus_one_when_none_and_everything_when_unlisted() -> (
    None
):
    cluster = Cluster()
    cluster.commit({("t", 0): 10, ("t", 1): 11, ("u", 0): 12}, metadata="m")
    cluster.commit({("x", 0): 99}, group="other")
    listed, everything, other, unknown = cluster.coordinator.fetch_offsets(
        [
            OffsetFetchRequestGroup(GROUP, [OffsetFetchRequestTopic("t", [0, 5])]),
            OffsetFetchRequestGroup(GROUP, None),
            OffsetFetchRequestGroup("other", None),
            OffsetFetchRequestGroup("unknown", [OffsetFetchRequestTopic("t", [0])]),
        ]
    )
    assert [(p.partition_index, p.committed_offset, p.metadata) for p in listed.topics[0].partitions] == [
        (0, 10, "m"),
        (5, -1, ""),
    ]
    assert {
        (t.name, p.partition_index): p.committed_offset for t in everything.topics for p in t.partitions
    } == {
        ("t", 0): 10,
        ("t", 1): 11,
        ("u", 0): 12,
    }
    assert other.topics[0].partitions[0].committed_offset == 99
    assert unknown.error is Errors.NONE and unknown.topics[0].partitions[0].committed_offset == -1


# --- OffsetDelete ---------------------------------------------------------------------------------


def test_offset_delete_refuses_subscribed_topics_and_deletes_the_others() -> None:
    cluster = Cluster()
    (a,), generation = cluster.stable_group(1)  # subscribed to "t"
    cluster.commit({("t", 0): 1, ("old", 0): 2}, a, generation)
    result = cluster.coordinator.delete_offsets(
        GROUP, [OffsetDeleteRequestTopic("t", [0]), OffsetDeleteRequestTopic("old", [0])], cluster.now
    )
    cluster.check()
    assert result.error is Errors.NONE
    assert [(t.name, t.partitions[0].error) for t in result.topics] == [
        ("t", Errors.GROUP_SUBSCRIBED_TO_TOPIC),
        ("old", Errors.NONE),
    ]
    assert cluster.committed() == {("t", 0): 1}


def test_offset_delete_on_an_unknown_group_and_on_a_busy_non_consumer_group() -> None:
    cluster = Cluster()
    assert cluster.coordinator.delete_offsets("nope", [], cluster.now).error is Errors.GROUP_ID_NOT_FOUND
    reply = cluster.join_new(protocol_type="connect")
    cluster.settle(reply)
    assert cluster.coordinator.delete_offsets(GROUP, [], cluster.now).error is Errors.NON_EMPTY_GROUP


# --- retention (KIP-211) and topic deletion -------------------------------------------------------


def test_offsets_of_an_active_consumer_group_never_expire_for_subscribed_topics() -> None:
    cluster = Cluster(offsets_retention_minutes=1, offsets_retention_check_interval_ms=10_000)
    (a,), generation = cluster.stable_group(1)
    cluster.commit({("t", 0): 5, ("unsubscribed", 0): 6}, a, generation)
    for _ in range(36):  # three minutes of heartbeats
        cluster.advance(5_000)
        assert cluster.heartbeat(a, generation).error is Errors.NONE
    # A Stable consumer group keeps what it consumes; offsets of other topics expire.
    assert cluster.committed() == {("t", 0): 5}


def test_offsets_expire_once_the_group_has_been_empty_for_the_retention_period_and_the_group_goes() -> None:
    cluster = Cluster()
    (a,), generation = cluster.stable_group(1)
    cluster.commit({("t", 0): 5}, a, generation)
    cluster.advance(6 * DAY_MS)  # no heartbeats: a is removed, the group is Empty from here on
    assert cluster.coordinator.groups[GROUP].state is GroupState.EMPTY
    assert cluster.committed() == {("t", 0): 5}
    cluster.advance(DAY_MS + 600_000)
    assert cluster.committed() == {}
    assert GROUP not in cluster.coordinator.groups


def test_simple_group_offsets_expire_retention_after_their_commit() -> None:
    cluster = Cluster(offsets_retention_minutes=10)
    cluster.commit({("t", 0): 1})
    cluster.advance(5 * 60_000)
    cluster.commit({("t", 1): 2})
    cluster.advance(5 * 60_000 + 600_000)  # t-0 is 20 min old, t-1 15 min: both gone
    assert cluster.committed() == {}
    cluster.commit({("t", 0): 3})
    cluster.advance(600_000)  # 10 min: expired at the next check
    cluster.advance(600_000)
    assert cluster.committed() == {}


def test_a_commit_with_retention_time_expires_at_its_own_expire_timestamp() -> None:
    cluster = Cluster()
    cluster.commit({("t", 0): 1}, retention_time_ms=60_000, api_version=4)
    cluster.advance(600_000)
    assert cluster.committed() == {}


def test_deleting_a_topic_deletes_every_group_s_offsets_for_it() -> None:
    cluster = Cluster()
    cluster.commit({("gone", 0): 1, ("kept", 0): 2}, group="g1")
    cluster.commit({("gone", 3): 1}, group="g2")
    cluster.coordinator.on_topics_deleted(["gone"], cluster.now)
    cluster.check()
    assert cluster.committed("g1") == {("kept", 0): 2} and cluster.committed("g2") == {}


# --- persistence ----------------------------------------------------------------------------------


def test_every_record_goes_to_the_partition_of_its_group() -> None:
    cluster = Cluster()
    cluster.stable_group(1, group="alpha")
    cluster.commit({("t", 0): 1}, group="beta")
    partitions = {partition for partition, _, _ in cluster.writer.appended}
    assert partitions == {
        cluster.coordinator.partition_for("alpha"),
        cluster.coordinator.partition_for("beta"),
    }


def test_committed_offsets_and_a_stable_group_survive_a_restart() -> None:
    cluster = Cluster()
    (a, b), generation = cluster.stable_group(2)
    cluster.commit({("t", 0): 100, ("t", 1): 200}, a, generation)
    cluster.commit({("x", 0): 1}, group="simple")

    restarted = GroupCoordinator(Cluster().writer, cluster.config)
    restarted.load(cluster.writer.records(), cluster.now)
    restarted.check_valid()
    assert restarted.offsets.snapshot() == cluster.coordinator.offsets.snapshot()
    group = restarted.groups[GROUP]
    assert group.state is GroupState.STABLE and group.generation_id == generation
    assert list(group.members) == [a, b] and group.leader_id == a
    assert group.members[b].assignment == f"assignment-of-{b}".encode()
    assert restarted.groups["simple"].state is GroupState.EMPTY


def test_after_a_restart_members_that_do_not_heartbeat_are_removed() -> None:
    cluster = Cluster()
    (a, b), generation = cluster.stable_group(2)
    restarted = GroupCoordinator(Cluster().writer, cluster.config)
    restarted.load(cluster.writer.records(), cluster.now)
    assert restarted.next_deadline() == cluster.now + 10_000  # session timeouts count from the load
    restarted.heartbeat(HeartbeatRequest(GROUP, generation, a), cluster.now + 9_000)
    restarted.poll(cluster.now + 10_000)
    restarted.check_valid()
    group = restarted.groups[GROUP]
    assert group.state is GroupState.PREPARING_REBALANCE and list(group.members) == [a]


def test_a_deleted_group_stays_deleted_after_a_restart() -> None:
    cluster = Cluster()
    cluster.commit({("t", 0): 1})
    cluster.coordinator.delete_groups([GROUP], cluster.now)
    restarted = GroupCoordinator(Cluster().writer, cluster.config)
    restarted.load(cluster.writer.records(), cluster.now)
    assert GROUP not in restarted.groups and restarted.offsets.snapshot() == {}
