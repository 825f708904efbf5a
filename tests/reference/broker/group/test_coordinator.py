"""The classic group coordinator, scenario by scenario; every step ends with check_valid()."""

from __future__ import annotations

from reference.broker.group.messages import JoinGroupProtocol, MemberIdentity
from reference.broker.group.state import GroupState
from reference.errors import Errors

from .harness import GROUP, Cluster, range_protocol


def state(cluster: Cluster, group: str = GROUP) -> GroupState:
    return cluster.coordinator.groups[group].state


# --- KIP-394 member ids ---------------------------------------------------------------------------


def test_join_v4_without_member_id_gets_member_id_required_and_a_generated_id() -> None:
    cluster = Cluster()
    reply = cluster.join(api_version=4, client_id="app")
    assert reply.join().error is Errors.MEMBER_ID_REQUIRED
    assert reply.join().member_id == "app-m1"
    assert state(cluster) is GroupState.EMPTY  # the member is only pending so far


def test_join_v3_without_member_id_joins_at_once() -> None:
    cluster = Cluster()
    reply = cluster.join(api_version=3, client_id="app")
    assert not reply.done  # parked in the initial rebalance
    assert state(cluster) is GroupState.PREPARING_REBALANCE
    cluster.advance(3_000)
    assert reply.join().error is Errors.NONE and reply.join().member_id == "app-m1"


def test_a_pending_member_that_never_rejoins_is_forgotten_after_its_session_timeout() -> None:
    cluster = Cluster()
    first = cluster.join(session_timeout_ms=10_000)
    pending = first.join().member_id
    assert pending in cluster.coordinator.groups[GROUP].pending_join_members
    cluster.advance(10_000)
    assert pending not in cluster.coordinator.groups[GROUP].pending_join_members


def test_join_with_a_member_id_to_an_unknown_group_is_unknown_member_id() -> None:
    cluster = Cluster()
    assert cluster.join(member_id="ghost").join().error is Errors.UNKNOWN_MEMBER_ID
    assert GROUP not in cluster.coordinator.groups


# --- request validation ---------------------------------------------------------------------------


def test_session_timeout_outside_the_broker_bounds_is_invalid_session_timeout() -> None:
    cluster = Cluster()
    assert cluster.join(session_timeout_ms=5_999).join().error is Errors.INVALID_SESSION_TIMEOUT
    assert cluster.join(session_timeout_ms=1_800_001).join().error is Errors.INVALID_SESSION_TIMEOUT
    assert cluster.join(session_timeout_ms=6_000).join().error is Errors.MEMBER_ID_REQUIRED


def test_empty_group_id_is_invalid_group_id() -> None:
    cluster = Cluster()
    assert cluster.join(group="").join().error is Errors.INVALID_GROUP_ID
    assert cluster.sync("m", 1, group="").sync().error is Errors.INVALID_GROUP_ID
    assert cluster.heartbeat("m", 1, group="").error is Errors.INVALID_GROUP_ID


def test_a_member_with_another_protocol_type_or_no_common_protocol_is_inconsistent() -> None:
    cluster = Cluster()
    members, _ = cluster.stable_group(1)
    other_type = cluster.join(protocol_type="connect")
    assert other_type.join().error is Errors.INCONSISTENT_GROUP_PROTOCOL
    no_common = cluster.join(protocols=[JoinGroupProtocol("roundrobin", b"")])
    assert no_common.join().error is Errors.INCONSISTENT_GROUP_PROTOCOL
    assert state(cluster) is GroupState.STABLE


def test_a_first_member_without_protocols_is_inconsistent() -> None:
    cluster = Cluster()
    assert cluster.join(protocols=[]).join().error is Errors.INCONSISTENT_GROUP_PROTOCOL


def test_group_max_size_refuses_the_member_that_would_exceed_it() -> None:
    cluster = Cluster(group_max_size=2)
    members, _ = cluster.stable_group(2)
    third = cluster.join(api_version=3)
    assert third.join().error is Errors.GROUP_MAX_SIZE_REACHED
    assert len(cluster.coordinator.groups[GROUP].members) == 2


# --- a first rebalance ----------------------------------------------------------------------------


def test_the_first_rebalance_waits_the_initial_delay_then_elects_a_leader_and_syncs() -> None:
    cluster = Cluster()
    a, b = cluster.join_new(), cluster.join_new()
    cluster.advance(2_999)
    assert not a.done and not b.done
    cluster.advance(1)
    # The delay was extended once (b arrived during it): nothing yet.
    assert not a.done
    cluster.advance(3_000)
    leader, follower = a.join(), b.join()
    assert leader.generation_id == follower.generation_id == 1
    assert leader.leader == follower.leader == leader.member_id
    assert [m.member_id for m in leader.members] == [leader.member_id, follower.member_id]
    assert follower.members == []
    assert leader.protocol_name == "range" and leader.protocol_type == "consumer"
    assert state(cluster) is GroupState.COMPLETING_REBALANCE

    follower_sync = cluster.sync(follower.member_id, 1)
    assert not follower_sync.done  # followers wait for the leader's assignment
    leader_sync = cluster.sync(leader.member_id, 1, {leader.member_id: b"A", follower.member_id: b"B"})
    assert leader_sync.sync().assignment == b"A"
    assert follower_sync.sync().assignment == b"B"
    assert follower_sync.sync().protocol_name == "range"
    assert state(cluster) is GroupState.STABLE


def test_the_initial_delay_is_extended_while_members_keep_arriving_but_not_past_the_rebalance_timeout() -> (
    None
):
    cluster = Cluster()
    first = cluster.join_new(rebalance_timeout_ms=10_000)
    replies = [first]
    for _ in range(5):  # a new member every 2.5 s
        cluster.advance(2_500)
        if first.done:
            break
        replies.append(cluster.join_new(rebalance_timeout_ms=10_000))
    # Delay 3 s, extended while the 7 s that remain last: the phase closes by 3 + 7 = 10 s.
    cluster.advance(10_000 - 2_500 * (len(replies) - 1))
    assert first.done
    assert first.join().generation_id == 1


def test_a_leader_sync_without_an_assignment_for_someone_gives_it_an_empty_assignment() -> None:
    cluster = Cluster()
    a, b = cluster.join_new(), cluster.join_new()
    cluster.advance(6_000)
    follower = cluster.sync(b.join().member_id, 1)
    cluster.sync(a.join().member_id, 1, {a.join().member_id: b"A"})
    assert follower.sync().error is Errors.NONE and follower.sync().assignment == b""


# --- heartbeats and sessions ----------------------------------------------------------------------


def test_heartbeats_are_answered_by_state_and_generation() -> None:
    cluster = Cluster()
    (a, b), generation = cluster.stable_group(2)
    assert cluster.heartbeat(a, generation).error is Errors.NONE
    assert cluster.heartbeat(a, generation + 1).error is Errors.ILLEGAL_GENERATION
    assert cluster.heartbeat("nobody", generation).error is Errors.UNKNOWN_MEMBER_ID
    assert cluster.heartbeat(a, generation, group="no-such-group").error is Errors.UNKNOWN_MEMBER_ID
    cluster.join(member_id=a)  # the leader rejoins: a rebalance starts
    assert cluster.heartbeat(b, generation).error is Errors.REBALANCE_IN_PROGRESS


def test_a_member_that_misses_its_session_timeout_is_removed_and_the_group_rebalances() -> None:
    cluster = Cluster()
    (a, b), generation = cluster.stable_group(2)
    for _ in range(5):  # a keeps heartbeating, b is silent
        cluster.advance(3_000)
        cluster.heartbeat(a, generation)
    group = cluster.coordinator.groups[GROUP]
    assert b not in group.members
    assert group.state is GroupState.PREPARING_REBALANCE
    assert cluster.heartbeat(a, generation).error is Errors.REBALANCE_IN_PROGRESS
    rejoin = cluster.join(member_id=a)
    assert rejoin.join().generation_id == generation + 1  # a was the last one missing
    assert [m.member_id for m in rejoin.join().members] == [a]


def test_members_that_do_not_rejoin_within_the_rebalance_timeout_are_removed() -> None:
    cluster = Cluster()
    (a, b, c), generation = cluster.stable_group(3)
    rejoin_a = cluster.join(member_id=a, rebalance_timeout_ms=30_000)
    for _ in range(10):  # b heartbeats (so its session lives) but never rejoins; c is silent
        cluster.advance(3_000)
        cluster.heartbeat(b, generation)
    cluster.advance(1_000)
    result = rejoin_a.join()
    assert result.error is Errors.NONE and result.generation_id == generation + 1
    assert set(cluster.coordinator.groups[GROUP].members) == {a}


def test_a_follower_that_does_not_sync_within_the_rebalance_timeout_is_removed() -> None:
    cluster = Cluster()
    a, b = cluster.join_new(rebalance_timeout_ms=20_000), cluster.join_new(rebalance_timeout_ms=20_000)
    cluster.advance(6_000)
    leader = a.join().member_id
    sync = cluster.sync(leader, 1, {leader: b"A"})
    assert sync.sync().error is Errors.NONE
    for _ in range(7):
        cluster.advance(3_000)
        cluster.heartbeat(leader, 1)
        cluster.heartbeat(b.join().member_id, 1)
    assert b.join().member_id not in cluster.coordinator.groups[GROUP].members
    assert state(cluster) is GroupState.PREPARING_REBALANCE


def test_a_new_member_parked_in_a_long_join_phase_is_dropped_after_the_join_timeout() -> None:
    cluster = Cluster(group_new_member_join_timeout_ms=60_000)
    (a,), generation = cluster.stable_group(1)
    newcomer = cluster.join_new(rebalance_timeout_ms=300_000)
    for _ in range(20):  # a heartbeats but does not rejoin: the join phase lasts up to 300 s
        assert not newcomer.done
        cluster.advance(3_000)
        cluster.heartbeat(a, generation)
    assert newcomer.join().error is Errors.UNKNOWN_MEMBER_ID
    assert set(cluster.coordinator.groups[GROUP].members) == {a}


# --- SyncGroup errors -----------------------------------------------------------------------------


def test_sync_errors() -> None:
    cluster = Cluster()
    (a, b), generation = cluster.stable_group(2)
    assert cluster.sync(a, generation + 1).sync().error is Errors.ILLEGAL_GENERATION
    assert cluster.sync("nobody", generation).sync().error is Errors.UNKNOWN_MEMBER_ID
    assert (
        cluster.sync(a, generation, protocol_type="connect").sync().error
        is Errors.INCONSISTENT_GROUP_PROTOCOL
    )
    assert (
        cluster.sync(a, generation, protocol_name="roundrobin").sync().error
        is Errors.INCONSISTENT_GROUP_PROTOCOL
    )
    ok = cluster.sync(a, generation, protocol_type="consumer", protocol_name="range").sync()
    assert ok.error is Errors.NONE and ok.assignment == f"assignment-of-{a}".encode()
    cluster.join(member_id=a)
    assert cluster.sync(b, generation).sync().error is Errors.REBALANCE_IN_PROGRESS
    assert cluster.sync(a, 1, group="no-such-group").sync().error is Errors.UNKNOWN_MEMBER_ID


def test_a_rebalance_during_completing_rebalance_answers_parked_syncs_with_rebalance_in_progress() -> None:
    cluster = Cluster()
    _a, b = cluster.join_new(), cluster.join_new()
    cluster.advance(6_000)
    follower_sync = cluster.sync(b.join().member_id, 1)
    changed = cluster.join(member_id=b.join().member_id, protocols=range_protocol("t", "u"))
    assert follower_sync.sync().error is Errors.REBALANCE_IN_PROGRESS
    assert not changed.done
    assert state(cluster) is GroupState.PREPARING_REBALANCE


# --- rejoining --------------------------------------------------------------------------------------


def test_a_follower_rejoining_with_the_same_metadata_in_stable_gets_the_current_generation() -> None:
    cluster = Cluster()
    (a, b), generation = cluster.stable_group(2)
    again = cluster.join(member_id=b)
    assert again.join().generation_id == generation and again.join().members == []
    assert state(cluster) is GroupState.STABLE


def test_a_follower_rejoining_with_new_metadata_triggers_a_rebalance() -> None:
    cluster = Cluster()
    (a, b), generation = cluster.stable_group(2)
    cluster.join(member_id=b, protocols=range_protocol("t", "u"))
    assert state(cluster) is GroupState.PREPARING_REBALANCE
    leader = cluster.join(member_id=a)
    assert leader.join().generation_id == generation + 1
    assert cluster.coordinator.groups[GROUP].subscribed_topics == {"t", "u"}


def test_the_protocol_supported_by_all_with_the_most_votes_is_selected() -> None:
    cluster = Cluster()
    both = [JoinGroupProtocol("roundrobin", b"rr"), JoinGroupProtocol("range", b"r")]
    range_first = [JoinGroupProtocol("range", b"r"), JoinGroupProtocol("roundrobin", b"rr")]
    replies = [
        cluster.join_new(protocols=both),
        cluster.join_new(protocols=range_first),
        cluster.join_new(protocols=range_first),
    ]
    cluster.advance(10_000)
    assert {reply.join().protocol_name for reply in replies} == {"range"}
    assert [m.metadata for m in replies[0].join().members] == [b"r", b"r", b"r"]


# --- LeaveGroup -----------------------------------------------------------------------------------


def test_a_member_that_leaves_triggers_a_rebalance_and_the_rest_form_a_new_generation() -> None:
    cluster = Cluster()
    (a, b), generation = cluster.stable_group(2)
    result = cluster.leave(MemberIdentity(b))
    assert result.error is Errors.NONE and result.members[0].error is Errors.NONE
    assert state(cluster) is GroupState.PREPARING_REBALANCE
    rejoin = cluster.join(member_id=a)
    assert rejoin.join().generation_id == generation + 1 and rejoin.join().leader == a


def test_the_last_member_leaving_makes_the_group_empty_and_that_is_persisted() -> None:
    cluster = Cluster()
    (a,), generation = cluster.stable_group(1)
    cluster.leave(MemberIdentity(a))
    assert state(cluster) is GroupState.EMPTY
    group = cluster.coordinator.groups[GROUP]
    assert group.generation_id == generation + 1 and group.leader_id is None


def test_leave_v0_reports_the_member_error_at_top_level() -> None:
    cluster = Cluster()
    cluster.stable_group(1)
    assert cluster.leave(MemberIdentity("nobody"), api_version=0).error is Errors.UNKNOWN_MEMBER_ID
    assert cluster.leave(MemberIdentity("nobody"), api_version=3).error is Errors.NONE
    assert cluster.leave(MemberIdentity("x"), group="no-such-group").error is Errors.UNKNOWN_MEMBER_ID


def test_leave_v3_removes_a_batch_of_static_members_by_instance_id() -> None:
    cluster = Cluster()
    replies = [cluster.join(instance_id=f"i{n}") for n in range(3)]
    cluster.settle(*replies)
    leader = replies[0].join().member_id
    cluster.sync(leader, 1, {})
    result = cluster.leave(MemberIdentity("", "i1"), MemberIdentity("", "i2"), MemberIdentity("", "unknown"))
    assert [m.error for m in result.members] == [Errors.NONE, Errors.NONE, Errors.UNKNOWN_MEMBER_ID]
    assert set(cluster.coordinator.groups[GROUP].static_members) == {"i0"}


# --- KIP-345 static membership ----------------------------------------------------------------------


def test_a_static_member_joins_without_member_id_required() -> None:
    cluster = Cluster()
    reply = cluster.join(instance_id="instance-1")
    cluster.advance(3_000)
    assert reply.join().error is Errors.NONE
    assert reply.join().member_id == "instance-1-m1"


def test_a_restarted_static_member_replaces_its_old_id_without_rebalance_and_the_old_id_is_fenced() -> None:
    cluster = Cluster()
    leader_reply = cluster.join(instance_id="i-leader")
    follower_reply = cluster.join(instance_id="i-follower")
    cluster.settle(leader_reply, follower_reply)
    leader, old_follower = leader_reply.join().member_id, follower_reply.join().member_id
    cluster.sync(old_follower, 1)
    cluster.sync(leader, 1, {leader: b"L", old_follower: b"F"})
    assert state(cluster) is GroupState.STABLE
    written_before = len(cluster.writer.appended)

    restarted = cluster.join(instance_id="i-follower")
    new_follower = restarted.join().member_id
    assert restarted.join().error is Errors.NONE and new_follower != old_follower
    assert restarted.join().generation_id == 1
    assert state(cluster) is GroupState.STABLE  # no rebalance
    assert len(cluster.writer.appended) == written_before + 1  # the new member id is persisted
    assert cluster.sync(new_follower, 1, instance_id="i-follower").sync().assignment == b"F"
    assert cluster.heartbeat(old_follower, 1, instance_id="i-follower").error is Errors.FENCED_INSTANCE_ID
    assert cluster.sync(old_follower, 1, instance_id="i-follower").sync().error is Errors.FENCED_INSTANCE_ID


def test_a_restarted_static_leader_is_told_to_skip_the_assignment_from_join_v9() -> None:
    cluster = Cluster()
    leader_reply = cluster.join(instance_id="i-leader")
    cluster.advance(3_000)
    cluster.sync(leader_reply.join().member_id, 1, {})
    restarted = cluster.join(instance_id="i-leader", api_version=9).join()
    assert restarted.skip_assignment and restarted.leader == restarted.member_id
    assert [m.member_id for m in restarted.members] == [restarted.member_id]
    older = cluster.join(instance_id="i-leader", api_version=5).join()
    assert not older.skip_assignment and older.leader == restarted.member_id  # the previous leader id
    assert older.members == []


def test_static_members_that_miss_a_rebalance_stay_until_their_session_times_out() -> None:
    cluster = Cluster()
    a = cluster.join(instance_id="ia", session_timeout_ms=60_000)
    b = cluster.join(instance_id="ib", session_timeout_ms=60_000)
    cluster.settle(a, b)
    a_id, b_id = a.join().member_id, b.join().member_id
    cluster.sync(b_id, 1)
    cluster.sync(a_id, 1, {})
    rejoin = cluster.join(member_id=a_id, instance_id="ia", session_timeout_ms=60_000)
    cluster.advance(30_000)  # rebalance timeout: b is static, so it is kept
    assert rejoin.join().generation_id == 2
    assert b_id in cluster.coordinator.groups[GROUP].members


# --- Describe, List, Delete ------------------------------------------------------------------------


def test_describe_groups_shows_metadata_only_when_stable() -> None:
    cluster = Cluster()
    (a, _b), _ = cluster.stable_group(2)
    [described] = cluster.coordinator.describe_groups([GROUP])
    assert described.group_state == "Stable" and described.protocol_data == "range"
    assert described.members[0].member_metadata != b"" and described.members[0].member_assignment != b""
    cluster.join(member_id=a)
    [rebalancing] = cluster.coordinator.describe_groups([GROUP])
    assert rebalancing.group_state == "PreparingRebalance" and rebalancing.protocol_data == ""
    assert rebalancing.members[0].member_metadata == b""


def test_describe_an_unknown_group_is_dead_and_from_v6_group_id_not_found() -> None:
    coordinator = Cluster().coordinator
    [old] = coordinator.describe_groups(["nope"], api_version=5)
    [new] = coordinator.describe_groups(["nope"], api_version=6)
    assert (old.group_state, old.error) == ("Dead", Errors.NONE)
    assert (new.group_state, new.error) == ("Dead", Errors.GROUP_ID_NOT_FOUND)


def test_list_groups_filters_by_state_case_insensitively() -> None:
    cluster = Cluster()
    cluster.stable_group(1, group="stable-one")
    cluster.commit({("t", 0): 5}, group="simple-one")
    listed = {g.group_id: g for g in cluster.coordinator.list_groups()}
    assert listed["stable-one"].group_state == "Stable" and listed["stable-one"].protocol_type == "consumer"
    assert listed["simple-one"].group_state == "Empty" and listed["simple-one"].protocol_type == ""
    assert [g.group_id for g in cluster.coordinator.list_groups(["empty"])] == ["simple-one"]
    assert [g.group_id for g in cluster.coordinator.list_groups(["STABLE", "dead"])] == ["stable-one"]


def test_delete_groups_deletes_only_empty_groups_with_their_offsets() -> None:
    cluster = Cluster()
    cluster.stable_group(1, group="busy")
    cluster.commit({("t", 0): 5}, group="idle")
    results = cluster.coordinator.delete_groups(["busy", "idle", "never"], cluster.now)
    cluster.check()
    assert [r.error for r in results] == [Errors.NON_EMPTY_GROUP, Errors.NONE, Errors.GROUP_ID_NOT_FOUND]
    assert "idle" not in cluster.coordinator.groups and cluster.committed("idle") == {}
    _, tombstone_key, tombstone_value = cluster.writer.appended[-1]
    assert tombstone_value is None
