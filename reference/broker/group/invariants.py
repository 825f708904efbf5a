"""The coordinator's invariants, as assertions (called by ``GroupCoordinator.check_valid``).

Each assertion message names the rule it checks.  The rules, in Kafka's words:

* Empty has no members, no leader and no selected protocol; CompletingRebalance and Stable have
  members, a leader that is one of them, a selected protocol all of them support, and a
  generation above 0.
* Every member shares the group's protocol type; the static-member index (group.instance.id ->
  member id, KIP-345) is exactly the static members; pending (KIP-394) ids are not members yet;
  members pending SyncGroup are members.
* No JoinGroup is parked outside PreparingRebalance; no SyncGroup is parked outside
  CompletingRebalance; nobody is pending SyncGroup outside a generation (Empty, PreparingRebalance).
* Timers refer to live things: a heartbeat timer to a member or pending member, the join timer to a
  group in PreparingRebalance, the sync timer to a group waiting for SyncGroups.
"""

from __future__ import annotations

from collections.abc import Hashable

from reference.broker.group.group import ClassicGroup
from reference.broker.group.state import GroupState


def check_group(group_id: str, group: ClassicGroup) -> None:
    where = f"group {group_id!r} in {group.state}"
    assert group.group_id == group_id, f"{where}: stored under the wrong id"
    assert not group.is_in(GroupState.DEAD), f"{where}: a Dead group is still registered"
    # Membership and leadership.
    if group.is_in(GroupState.EMPTY):
        assert not group.members, f"{where}: Empty but has members"
        assert group.leader_id is None, f"{where}: Empty but has a leader"
        assert group.protocol_name is None, f"{where}: Empty but has a selected protocol"
    if group.is_in(GroupState.COMPLETING_REBALANCE, GroupState.STABLE):
        assert group.members, f"{where}: no members"
    if group.members:
        assert group.leader_id in group.members, f"{where}: the leader is not a member"
        assert group.protocol_type is not None, f"{where}: members but no protocol type"
    for member_id, member in group.members.items():
        assert member.member_id == member_id, f"{where}: member stored under the wrong id"
        assert member.protocol_type == group.protocol_type, f"{where}: {member_id} has another protocol type"
        assert member_id not in group.pending_join_members, f"{where}: {member_id} both member and pending"
    statics = {
        m.group_instance_id: m.member_id for m in group.members.values() if m.group_instance_id is not None
    }
    assert statics == group.static_members, f"{where}: the static member index disagrees with the members"
    assert group.pending_sync_members <= set(group.members), f"{where}: a pending sync member is not a member"
    # Rebalance bookkeeping by state.
    if group.is_in(GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
        assert group.protocol_name is not None, f"{where}: no selected protocol"
        assert group.generation_id > 0, f"{where}: generation 0 after a rebalance"
        assert all(m.awaiting_join is None for m in group.members.values()), f"{where}: a JoinGroup is parked"
        assert group.leader_id is not None
        assert group.protocol_name in group.candidate_protocols(), (
            f"{where}: the selected protocol is not supported by all"
        )
    if group.is_in(GroupState.STABLE):
        assert all(m.awaiting_sync is None for m in group.members.values()), f"{where}: a SyncGroup is parked"
    if group.is_in(GroupState.PREPARING_REBALANCE, GroupState.EMPTY):
        assert all(m.awaiting_sync is None for m in group.members.values()), f"{where}: a SyncGroup is parked"
        assert not group.pending_sync_members, f"{where}: members pending sync outside a generation"


def check_timer(key: Hashable, groups: dict[str, ClassicGroup]) -> None:
    assert isinstance(key, tuple)
    if key[0] == "heartbeat":
        group = groups.get(key[1])
        assert group is not None, f"heartbeat timer {key} for a removed group"
        assert group.has_member(key[2]) or key[2] in group.pending_join_members, (
            f"heartbeat timer {key} for no member"
        )
    elif key[0] == "join":
        group = groups.get(key[1])
        assert group is not None and group.is_in(GroupState.PREPARING_REBALANCE), (
            f"join timer {key} outside PreparingRebalance"
        )
    elif key[0] == "sync":
        group = groups.get(key[1])
        assert group is not None and group.is_in(GroupState.COMPLETING_REBALANCE, GroupState.STABLE), (
            f"sync timer {key} in the wrong state"
        )
        assert group.pending_sync_members, f"sync timer {key} with nobody left to sync"
