"""One classic group: its members, generation, leader and protocol (Kafka's ``ClassicGroup``).

Theory of operation
-------------------
This module holds the *data* of a group and the rules that only need the group itself:

* **Membership.**  ``members`` maps member id to :class:`Member` in join order.  A static member
  (KIP-345, ``group.instance.id``) is also indexed in ``static_members`` (instance id -> member
  id).  ``pending_join_members`` are member ids handed out with MEMBER_ID_REQUIRED (KIP-394) whose
  owner has not yet rejoined with them; they are not members yet.
* **Leader.**  The first member added becomes leader; when the leader is removed the next member in
  join order takes over.  When a join phase closes without the leader having rejoined, a member that
  did rejoin is elected (``elect_joined_leader``).
* **Protocol.**  The first member fixes the group's ``protocol_type`` (e.g. ``"consumer"``).  A
  member may join only if it shares the type and supports at least one protocol every current
  member supports (else INCONSISTENT_GROUP_PROTOCOL).  When a generation starts, every member votes
  for the first protocol in *its own* preference order that all members support, and the protocol
  with the most votes wins (``select_protocol``).  Kafka breaks ties by hash-map order; refka picks
  the tied protocol voted for first, in member join order, so the outcome is deterministic.
* **Subscribed topics.**  For ``protocol_type == "consumer"`` the coordinator parses each member's
  subscription (ConsumerProtocolSubscription, read as v0: ``version:INT16 topics:[STRING] ...``) to
  know which topics the group consumes: OffsetDelete refuses those (GROUP_SUBSCRIBED_TO_TOPIC).
* **Parked requests.**  ``Member.awaiting_join`` / ``awaiting_sync`` hold the callback of a JoinGroup
  or SyncGroup whose answer is delayed; ``complete_join`` / ``complete_sync`` answer and clear it.
* **State.**  ``transition`` applies a row of :data:`reference.broker.group.state.TRANSITIONS` and
  stamps ``current_state_timestamp`` (kept in GroupMetadataValue; offset retention counts from it
  once the group is Empty, KIP-211).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from reference.broker.group import records
from reference.broker.group.messages import (
    JoinGroupMember,
    JoinGroupProtocol,
    JoinGroupResult,
    SyncGroupResult,
)
from reference.broker.group.state import GroupEvent, GroupState, next_state
from reference.errors import Errors

CONSUMER_PROTOCOL_TYPE = "consumer"

JoinCallback = Callable[[JoinGroupResult], None]
SyncCallback = Callable[[SyncGroupResult], None]


@dataclass
class Member:
    """A member of a classic group (Kafka's ``ClassicGroupMember``)."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocol_type: str
    protocols: list[JoinGroupProtocol]  # in the member's order of preference
    assignment: bytes = b""
    awaiting_join: JoinCallback | None = None
    awaiting_sync: SyncCallback | None = None
    is_new: bool = False  # joined in this rebalance and not yet told the outcome

    @property
    def is_static(self) -> bool:
        return self.group_instance_id is not None

    def protocol_names(self) -> list[str]:
        return [protocol.name for protocol in self.protocols]

    def metadata(self, protocol_name: str | None) -> bytes:
        for protocol in self.protocols:
            if protocol.name == protocol_name:
                return protocol.metadata
        return b""

    def matches(self, protocols: list[JoinGroupProtocol]) -> bool:
        """Same protocols, same metadata, same order: a rejoin that changes nothing."""
        return protocols == self.protocols

    def vote(self, candidates: set[str]) -> str:
        for name in self.protocol_names():
            if name in candidates:
                return name
        raise ValueError(f"member {self.member_id} supports none of {sorted(candidates)}")

    def has_satisfied_heartbeat(self) -> bool:
        """A new member must be answered before its join timeout; others are excused while parked."""
        if self.is_new:
            return False
        return self.awaiting_join is not None or self.awaiting_sync is not None


@dataclass
class ClassicGroup:
    group_id: str
    state: GroupState = GroupState.EMPTY
    previous_state: GroupState = GroupState.DEAD
    current_state_timestamp: int | None = None
    protocol_type: str | None = None
    protocol_name: str | None = None
    generation_id: int = 0
    leader_id: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)  # group.instance.id -> member id
    pending_join_members: set[str] = field(default_factory=set)
    pending_sync_members: set[str] = field(default_factory=set)
    subscribed_topics: set[str] | None = None
    new_member_added: bool = False  # a member joined during the initial (delayed) rebalance

    # --- state ---

    def transition(self, event: GroupEvent, now_ms: int) -> None:
        target = next_state(self.group_id, self.state, event)
        self.previous_state = self.state
        self.state = target
        self.current_state_timestamp = now_ms

    def is_in(self, *states: GroupState) -> bool:
        return self.state in states

    # --- membership ---

    def add(self, member: Member) -> None:
        if member.group_instance_id is not None:
            if member.group_instance_id in self.static_members:
                raise ValueError(f"static member {member.group_instance_id} is already in the group")
            self.static_members[member.group_instance_id] = member.member_id
        if not self.members:
            self.protocol_type = member.protocol_type
        if member.protocol_type != self.protocol_type:
            raise ValueError("a member's protocol type must be the group's")
        if self.leader_id is None:
            self.leader_id = member.member_id
        self.members[member.member_id] = member
        self.pending_join_members.discard(member.member_id)

    def remove(self, member_id: str) -> Member | None:
        removed = self.members.pop(member_id, None)
        if removed is not None and removed.group_instance_id is not None:
            self.static_members.pop(removed.group_instance_id, None)
        if self.leader_id == member_id:
            self.leader_id = next(iter(self.members), None)
        self.pending_join_members.discard(member_id)
        self.pending_sync_members.discard(member_id)
        return removed

    def replace_static_member(self, group_instance_id: str, old_member_id: str, new_member_id: str) -> Member:
        """Give ``group_instance_id`` a new member id; parked requests of the old id are fenced."""
        old = self.members.pop(old_member_id)
        self.complete_join(old, JoinGroupResult(error=Errors.FENCED_INSTANCE_ID, member_id=old_member_id))
        self.complete_sync(old, SyncGroupResult(error=Errors.FENCED_INSTANCE_ID))
        new = Member(
            member_id=new_member_id,
            group_instance_id=old.group_instance_id,
            client_id=old.client_id,
            client_host=old.client_host,
            rebalance_timeout_ms=old.rebalance_timeout_ms,
            session_timeout_ms=old.session_timeout_ms,
            protocol_type=old.protocol_type,
            protocols=old.protocols,
            assignment=old.assignment,
        )
        self.members[new_member_id] = new
        if self.leader_id == old_member_id:
            self.leader_id = new_member_id
        self.static_members[group_instance_id] = new_member_id
        self.pending_sync_members.discard(old_member_id)
        return new

    def has_member(self, member_id: str) -> bool:
        return member_id in self.members

    def is_leader(self, member_id: str) -> bool:
        return self.leader_id == member_id

    def static_member_id(self, group_instance_id: str) -> str | None:
        return self.static_members.get(group_instance_id)

    def awaiting_join_count(self) -> int:
        return sum(1 for member in self.members.values() if member.awaiting_join is not None)

    def has_all_members_joined(self) -> bool:
        return self.awaiting_join_count() == len(self.members) and not self.pending_join_members

    def not_yet_rejoined(self) -> list[Member]:
        return [member for member in self.members.values() if member.awaiting_join is None]

    def rebalance_timeout_ms(self) -> int:
        """The longest rebalance timeout of any member (0 for no members), as Kafka uses."""
        return max((member.rebalance_timeout_ms for member in self.members.values()), default=0)

    def elect_joined_leader(self) -> bool:
        """Make sure the leader is a member that rejoined; False if no member rejoined at all."""
        if self.leader_id is None:
            return False
        if self.members[self.leader_id].awaiting_join is not None:
            return True
        for member in self.members.values():
            if member.awaiting_join is not None:
                self.leader_id = member.member_id
                return True
        return False

    # --- protocols ---

    def supports_protocols(self, protocol_type: str, protocol_names: set[str]) -> bool:
        if self.state is GroupState.EMPTY:
            return protocol_type != "" and bool(protocol_names)
        if self.protocol_type != protocol_type:
            return False
        return bool(protocol_names & self.candidate_protocols())

    def candidate_protocols(self) -> set[str]:
        """Protocols every member supports."""
        names = [set(member.protocol_names()) for member in self.members.values()]
        return set.intersection(*names) if names else set()

    def select_protocol(self) -> str:
        candidates = self.candidate_protocols()
        votes: dict[str, int] = {}
        for member in self.members.values():
            choice = member.vote(candidates)
            votes[choice] = votes.get(choice, 0) + 1
        return max(votes, key=lambda name: votes[name])  # first maximum in vote order

    def uses_consumer_protocol(self) -> bool:
        return self.protocol_type == CONSUMER_PROTOCOL_TYPE

    def compute_subscribed_topics(self) -> set[str] | None:
        if not self.uses_consumer_protocol():
            return None
        if not self.members:
            return set()
        if self.protocol_name is None:
            return None
        topics: set[str] = set()
        for member in self.members.values():
            parsed = consumer_subscription_topics(member.metadata(self.protocol_name))
            if parsed is None:
                return None
            topics |= parsed
        return topics

    def is_subscribed_to_topic(self, topic: str) -> bool:
        if self.subscribed_topics is None:
            return self.uses_consumer_protocol()  # unknown subscription: assume subscribed
        return topic in self.subscribed_topics

    def init_next_generation(self, now_ms: int) -> None:
        """Close the join phase: bump the generation, pick the protocol, move on."""
        self.generation_id += 1
        if self.members:
            self.protocol_name = self.select_protocol()
            self.subscribed_topics = self.compute_subscribed_topics()
            self.transition(GroupEvent.JOIN_COMPLETED, now_ms)
        else:
            self.protocol_name = None
            self.subscribed_topics = self.compute_subscribed_topics()
            self.transition(GroupEvent.JOIN_COMPLETED_EMPTY, now_ms)
        self.pending_sync_members.clear()

    # --- parked requests ---

    def complete_join(self, member: Member, result: JoinGroupResult) -> bool:
        respond = member.awaiting_join
        if respond is None:
            return False
        member.awaiting_join = None
        respond(result)
        return True

    def complete_sync(self, member: Member, result: SyncGroupResult) -> bool:
        respond = member.awaiting_sync
        if respond is None:
            return False
        member.awaiting_sync = None
        respond(result)
        return True

    def join_members(self) -> list[JoinGroupMember]:
        """What the leader receives in its JoinGroup response: every member with its metadata."""
        return [
            JoinGroupMember(member.member_id, member.group_instance_id, member.metadata(self.protocol_name))
            for member in self.members.values()
        ]

    # --- records ---

    def to_record_value(self, assignment: dict[str, bytes]) -> records.GroupMetadataValue:
        """The GroupMetadataValue Kafka writes for this group with the given assignment."""
        members = tuple(
            records.MemberMetadata(
                member_id=member.member_id,
                group_instance_id=member.group_instance_id,
                client_id=member.client_id,
                client_host=member.client_host,
                rebalance_timeout=member.rebalance_timeout_ms,
                session_timeout=member.session_timeout_ms,
                subscription=member.metadata(self.protocol_name),
                assignment=assignment.get(member.member_id, b""),
            )
            for member in self.members.values()
        )
        return records.GroupMetadataValue(
            protocol_type=self.protocol_type or "",
            generation=self.generation_id,
            protocol=self.protocol_name,
            leader=self.leader_id,
            current_state_timestamp=(
                records.NO_TIMESTAMP if self.current_state_timestamp is None else self.current_state_timestamp
            ),
            members=members,
        )

    @classmethod
    def from_record_value(cls, group_id: str, value: records.GroupMetadataValue) -> ClassicGroup:
        """A loaded group: Empty without members, else Stable with the stored assignment."""
        group = cls(
            group_id=group_id,
            state=GroupState.STABLE if value.members else GroupState.EMPTY,
            generation_id=value.generation,
            protocol_type=value.protocol_type or None,
            protocol_name=value.protocol,
            current_state_timestamp=(
                None
                if value.current_state_timestamp == records.NO_TIMESTAMP
                else value.current_state_timestamp
            ),
        )
        for stored in value.members:
            group.add(
                Member(
                    member_id=stored.member_id,
                    group_instance_id=stored.group_instance_id,
                    client_id=stored.client_id,
                    client_host=stored.client_host,
                    rebalance_timeout_ms=(
                        stored.session_timeout if stored.rebalance_timeout == -1 else stored.rebalance_timeout
                    ),
                    session_timeout_ms=stored.session_timeout,
                    protocol_type=value.protocol_type,
                    protocols=[JoinGroupProtocol(value.protocol or "", stored.subscription)],
                    assignment=stored.assignment,
                )
            )
        group.leader_id = value.leader
        group.subscribed_topics = group.compute_subscribed_topics()
        return group


def consumer_subscription_topics(metadata: bytes) -> set[str] | None:
    """Topics of a ConsumerProtocolSubscription, read as its v0 prefix; None if it does not parse.

    Grammar (every version starts this way)::

        version:INT16  topics:INT32 count, then count x (INT16 length, UTF-8 bytes)  ...
    """
    try:
        position = 2  # skip the version
        (count,) = struct.unpack_from(">i", metadata, position)
        position += 4
        if count < 0 or count > len(metadata):
            return None
        topics: set[str] = set()
        for _ in range(count):
            (length,) = struct.unpack_from(">h", metadata, position)
            position += 2
            if length < 0 or position + length > len(metadata):
                return None
            topics.add(metadata[position : position + length].decode("utf-8"))
            position += length
        return topics
    except (struct.error, UnicodeDecodeError):
        return None
