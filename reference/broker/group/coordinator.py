"""The classic-protocol group coordinator: membership, rebalances, offsets, persistence.

Theory of operation
-------------------
This is Kafka's group coordinator for the *classic* rebalance protocol (JoinGroup, SyncGroup,
Heartbeat, LeaveGroup; ``GroupMetadataManager`` and ``OffsetMetadataManager`` in Kafka's
``group-coordinator`` module) as a sans-IO core.  It owns no socket and no clock:

* every method takes ``now_ms``;
* :meth:`GroupCoordinator.next_deadline` says when something times out, and
  :meth:`GroupCoordinator.poll` runs whatever is due (session expiry, rebalance timeout, the
  initial rebalance delay, the SyncGroup deadline, offset retention);
* a JoinGroup or SyncGroup whose answer must wait is *parked*: its ``respond`` callback is kept
  and called when the rebalance gets there -- maybe during a later request, maybe in ``poll``;
* everything Kafka writes to ``__consumer_offsets`` is handed, encoded exactly as Kafka encodes
  it (:mod:`reference.broker.group.records`), to the injected ``writer.append(partition,
  records)``; :meth:`GroupCoordinator.load` replays such records at start.

A rebalance, step by step (the state names are :class:`~reference.broker.group.state.GroupState`):

1. A member sends JoinGroup with an empty member id.  From JoinGroup v4 (KIP-394) it first gets
   MEMBER_ID_REQUIRED and a generated id (``client_id-<uuid>``), and must send JoinGroup again
   with that id (until then it is a *pending* member, dropped after its session timeout).  A
   static member (KIP-345, ``group.instance.id``, v5+) skips this step.
2. A new member, the leader rejoining, or a member rejoining with changed protocols *triggers a
   rebalance*: Empty/Stable/CompletingRebalance -> PreparingRebalance.  Parked SyncGroups get
   REBALANCE_IN_PROGRESS; heartbeats answer REBALANCE_IN_PROGRESS so members rejoin.
3. The join phase closes when every member has rejoined, or when the rebalance timeout (the largest
   ``rebalance_timeout_ms`` of the members) expires; dynamic members that did not rejoin are
   removed.  The first rebalance of an Empty group instead waits
   ``group.initial.rebalance.delay.ms`` (3 s), extended by that much again each time a new member
   arrived meanwhile, but never past the rebalance timeout.
4. Closing the join phase bumps ``generation_id``, selects the protocol (a vote among the protocols
   every member supports) and answers every parked JoinGroup; the *leader*'s answer lists all
   members with their metadata.  -> CompletingRebalance.  Every member must send SyncGroup within
   the rebalance timeout, else it is removed and the group rebalances again.
5. Followers' SyncGroups are parked.  The leader's SyncGroup carries the assignment: it is written
   (GroupMetadataValue), every parked SyncGroup is answered with its member's share, -> Stable.
6. Members heartbeat within ``session_timeout_ms`` (bounded by ``group.min.session.timeout.ms`` /
   ``group.max.session.timeout.ms``, else INVALID_SESSION_TIMEOUT); a member that misses it is
   removed and the group rebalances.  A static member that restarts rejoins with an empty member
   id and *replaces* its old member id (requests under the old id get FENCED_INSTANCE_ID); if the
   group is Stable and the selected protocol does not change, no rebalance happens.

What is persisted, as Kafka persists it: a GroupMetadataValue when a group is created by
JoinGroup, when a generation's assignment is stored, when a static member is replaced without
rebalance, and when a rebalance leaves the group Empty; an OffsetCommitValue per committed
partition; tombstones for deleted offsets and groups.  The offset store changes only by replaying
records (also on the live path), so :meth:`load` of the emitted records rebuilds the same offsets.
A loaded group with members is Stable with its stored assignment; its members must heartbeat
within their session timeout from the load, as after a coordinator failover in Kafka.

Ownership and commits (a cluster).  The coordinator of a group is the leader of the group's
``__consumer_offsets`` partition.  Built with ``tracks_leadership=True``, the coordinator serves a
group only while its partition is ACTIVE in :mod:`reference.broker.group.ownership`:
:meth:`on_became_leader` -> LOADING (requests get COORDINATOR_LOAD_IN_PROGRESS, except Heartbeat,
which Kafka answers NONE), :meth:`complete_load` replays the partition's log -> ACTIVE, and
:meth:`on_resigned` unloads it (parked JoinGroups of a rebalancing group and parked SyncGroups get
NOT_COORDINATOR; the groups and offsets are forgotten).  Any request for a group of a partition
not led here gets NOT_COORDINATOR, in the place each API reports errors; ListGroups lists the led
partitions' groups only, and fails with COORDINATOR_LOAD_IN_PROGRESS while one of them loads.
Without ``tracks_leadership`` (one node) every partition is ACTIVE from the start.
Every write returns a :class:`~reference.broker.group.completion.WriteCompletion`.  As in Kafka,
the leader's assignment is handed out (and the group becomes Stable) only when its write is
committed; if the write fails, pending SyncGroups get the mapped error and the group rebalances.
A write the log refuses outright is not applied to memory (Kafka reverts its snapshot), and a new
group whose first record is refused is forgotten.  Answers to the other writes (OffsetCommit,
Heartbeat, LeaveGroup, DeleteGroups, OffsetDelete) are held by the broker's service until their
partition commits (``GroupService.when_committed``).

Where refka knowingly differs from Kafka: reads (OffsetFetch, DescribeGroups, ListGroups) see
the latest state, including writes not yet committed (Kafka reads at the last committed
offset); a write that fails after it reached the log (timeout) is not undone in memory; member
ids use an injectable suffix generator (default ``uuid4``) so that tests are reproducible; protocol-vote ties are broken by vote order
instead of hash order; a commit that writes nothing does not create a "simple" group (Kafka
keeps an unpersisted empty group in memory).  As in Kafka, a parked request is left unanswered
when its member is removed by LeaveGroup or superseded by a newer JoinGroup from the same member
(the client's request timeout ends it) -- except parked JoinGroups of removed members, which
Kafka answers with UNKNOWN_MEMBER_ID, and so does refka.

Invariants: :meth:`GroupCoordinator.check_valid` asserts the rules listed in
:mod:`reference.broker.group.invariants`; the tests call it after every step.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable, Iterable
from typing import Protocol

from reference.broker.group import records
from reference.broker.group.completion import WriteCompletion, append_error_to_response_error
from reference.broker.group.config import GroupCoordinatorConfig
from reference.broker.group.group import ClassicGroup, Member
from reference.broker.group.invariants import check_group, check_timer
from reference.broker.group.messages import (
    UNKNOWN_MEMBER_ID,
    DeletableGroupResult,
    DescribedGroup,
    DescribedGroupMember,
    HeartbeatRequest,
    HeartbeatResult,
    JoinGroupRequest,
    JoinGroupResult,
    LeaveGroupMemberResult,
    LeaveGroupRequest,
    LeaveGroupResult,
    ListedGroup,
    OffsetCommitRequest,
    OffsetCommitResponsePartition,
    OffsetCommitResponseTopic,
    OffsetCommitResult,
    OffsetDeleteRequestTopic,
    OffsetDeleteResponsePartition,
    OffsetDeleteResponseTopic,
    OffsetDeleteResult,
    OffsetFetchRequestGroup,
    OffsetFetchResponseGroup,
    OffsetFetchResponsePartition,
    OffsetFetchResponseTopic,
    SyncGroupRequest,
    SyncGroupResult,
)
from reference.broker.group.offsets import (
    OffsetAndMetadata,
    OffsetStore,
    is_expired,
    java_string_length,
    validate_member,
    validate_offset_commit,
)
from reference.broker.group.ownership import CoordinatorState, PartitionOwnership
from reference.broker.group.state import GroupEvent, GroupState, accepts
from reference.broker.group.timers import Timers
from reference.errors import ErrorCode, Errors

EncodedRecord = tuple[bytes, bytes | None]
JoinCallback = Callable[[JoinGroupResult], None]
SyncCallback = Callable[[SyncGroupResult], None]

# JoinGroup versions that change behaviour (JoinGroupRequest.requiresKnownMemberId,
# supportsSkippingAssignment).
JOIN_REQUIRES_KNOWN_MEMBER_ID_VERSION = 4
JOIN_SKIP_ASSIGNMENT_VERSION = 9
OFFSET_COMMIT_GROUP_ID_NOT_FOUND_VERSION = 9
DESCRIBE_GROUPS_GROUP_ID_NOT_FOUND_VERSION = 6
LEAVE_GROUP_BATCH_VERSION = 3

EXPIRE_OFFSETS_TIMER = ("expire-offsets",)


class RecordWriter(Protocol):
    """Where records for ``__consumer_offsets`` go (the broker appends them to that partition).

    The returned completion completes once the records are committed (the partition's high
    watermark passed them) or failed; see :mod:`reference.broker.group.completion`.
    """

    def append(self, partition: int, records: list[EncodedRecord], now_ms: int) -> WriteCompletion: ...


def _heartbeat_timer(group_id: str, member_id: str) -> Hashable:
    return ("heartbeat", group_id, member_id)


def _join_timer(group_id: str) -> Hashable:
    return ("join", group_id)


def _sync_timer(group_id: str) -> Hashable:
    return ("sync", group_id)


class GroupCoordinator:
    def __init__(
        self,
        writer: RecordWriter,
        config: GroupCoordinatorConfig | None = None,
        member_id_suffix: Callable[[], str] = lambda: str(uuid.uuid4()),
        *,
        tracks_leadership: bool = False,
    ) -> None:
        """``tracks_leadership=False`` (one node): every partition is ours from the start.  True (a
        cluster): none is until :meth:`on_became_leader` and :meth:`complete_load` say so."""
        self.config = config or GroupCoordinatorConfig()
        self.groups: dict[str, ClassicGroup] = {}
        self.offsets = OffsetStore()
        self.ownership: PartitionOwnership | None = PartitionOwnership() if tracks_leadership else None
        self._writer = writer
        self.member_id_suffix = member_id_suffix
        self._timers = Timers()

    # ============================================================================================
    # Time
    # ============================================================================================

    def next_deadline(self) -> int | None:
        """The earliest ``now_ms`` at which :meth:`poll` has something to do (None: nothing pending)."""
        return self._timers.next_deadline()

    def poll(self, now_ms: int) -> None:
        """Run every timeout due at ``now_ms``, earliest first (a run may schedule more)."""
        self._ensure_offset_expiration_scheduled(now_ms)
        while (action := self._timers.pop_due(now_ms)) is not None:
            action(now_ms)

    def _ensure_offset_expiration_scheduled(self, now_ms: int) -> None:
        if self._timers.deadline_of(EXPIRE_OFFSETS_TIMER) is None:
            self._timers.schedule(
                EXPIRE_OFFSETS_TIMER,
                now_ms + self.config.offsets_retention_check_interval_ms,
                self._expire_offsets_tick,
            )

    def _expire_offsets_tick(self, now_ms: int) -> None:
        self.expire_offsets(now_ms)
        self._ensure_offset_expiration_scheduled(now_ms)

    def _schedule_heartbeat(self, group: ClassicGroup, member_id: str, deadline_ms: int) -> None:
        group_id = group.group_id
        self._timers.schedule(
            _heartbeat_timer(group_id, member_id),
            deadline_ms,
            lambda now_ms: self._expire_heartbeat(group_id, member_id, now_ms),
        )

    def _reschedule_heartbeat(self, group: ClassicGroup, member: Member, now_ms: int) -> None:
        self._schedule_heartbeat(group, member.member_id, now_ms + member.session_timeout_ms)

    # ============================================================================================
    # Persistence
    # ============================================================================================

    def partition_for(self, group_id: str) -> int:
        return records.partition_for(group_id, self.config.offsets_topic_num_partitions)

    def _append(
        self, group_id: str, pairs: list[tuple[records.RecordKey, records.RecordValue | None]], now_ms: int
    ) -> WriteCompletion:
        if not pairs:
            return WriteCompletion.committed(now_ms)
        encoded = [records.encode_record(k, v) for k, v in pairs]
        return self._writer.append(self.partition_for(group_id), encoded, now_ms)

    def _write_group_metadata(
        self, group: ClassicGroup, assignment: dict[str, bytes], now_ms: int
    ) -> WriteCompletion:
        key = records.GroupMetadataKey(group.group_id)
        return self._append(group.group_id, [(key, group.to_record_value(assignment))], now_ms)

    def load(self, encoded: Iterable[EncodedRecord], now_ms: int) -> None:
        """Rebuild groups and offsets from ``__consumer_offsets`` records, then arm the timers.

        Records of one group must come in log order.  Every loaded member gets a session timeout
        starting at ``now_ms`` (Kafka's ``onLoaded``).
        """
        for key_bytes, value_bytes in encoded:
            key, value = records.decode_record(key_bytes, value_bytes)
            self._replay(key, value, now_ms)
        self._on_loaded(list(self.groups.values()), now_ms)

    def apply_records(self, encoded: Iterable[EncodedRecord], now_ms: int) -> None:
        """Replay records already in the log (a committed transaction's offsets) into memory."""
        for key_bytes, value_bytes in encoded:
            key, value = records.decode_record(key_bytes, value_bytes)
            self._replay(key, value, now_ms)

    def _on_loaded(self, groups: list[ClassicGroup], now_ms: int) -> None:
        for group in groups:
            for member in group.members.values():
                self._reschedule_heartbeat(group, member, now_ms)
            if len(group.members) > self.config.group_max_size:
                self._prepare_rebalance(group, now_ms)
        self._ensure_offset_expiration_scheduled(now_ms)

    def _replay(self, key: records.RecordKey, value: records.RecordValue | None, now_ms: int) -> None:
        if isinstance(key, records.OffsetCommitKey):
            if value is None:
                self.offsets.remove(key.group, key.topic, key.partition)
                return
            assert isinstance(value, records.OffsetCommitValue)
            if key.group not in self.groups:  # a "simple" group: offsets without membership
                self.groups[key.group] = ClassicGroup(key.group, current_state_timestamp=now_ms)
            self.offsets.put(key.group, key.topic, key.partition, OffsetAndMetadata.from_record(value))
        elif value is None:
            self._remove_group(key.group, now_ms)
        else:
            assert isinstance(value, records.GroupMetadataValue)
            self.groups[key.group] = ClassicGroup.from_record_value(key.group, value)

    def _append_and_replay(
        self, group_id: str, pairs: list[tuple[records.RecordKey, records.RecordValue | None]], now_ms: int
    ) -> WriteCompletion:
        """Write, then apply to memory -- unless the append was refused (nothing reached the log)."""
        completion = self._append(group_id, pairs, now_ms)
        if completion.done and not completion.succeeded:
            return completion
        for key, value in pairs:
            self._replay(key, value, now_ms)
        return completion

    def _remove_group(self, group_id: str, now_ms: int) -> None:
        group = self.groups.pop(group_id, None)
        if group is None:
            return
        group.transition(GroupEvent.GROUP_REMOVED, now_ms)
        self._timers.cancel(_join_timer(group_id))
        self._timers.cancel(_sync_timer(group_id))
        for member_id in [*group.members, *group.pending_join_members]:
            self._timers.cancel(_heartbeat_timer(group_id, member_id))

    # ============================================================================================
    # Ownership of __consumer_offsets partitions (see reference.broker.group.ownership)
    # ============================================================================================

    def coordinator_error(self, group_id: str) -> ErrorCode:
        """NONE if this coordinator serves ``group_id`` now; else what a request for it is told."""
        if self.ownership is None:
            return Errors.NONE
        state = self.ownership.state_of(self.partition_for(group_id))
        if state is CoordinatorState.ACTIVE:
            return Errors.NONE
        if state is CoordinatorState.LOADING:
            return Errors.COORDINATOR_LOAD_IN_PROGRESS
        return Errors.NOT_COORDINATOR

    def _require_ownership(self) -> PartitionOwnership:
        if self.ownership is None:
            raise RuntimeError("this coordinator owns every partition (tracks_leadership=False)")
        return self.ownership

    def on_became_leader(self, partition: int, leader_epoch: int) -> bool:
        """This broker leads ``partition`` from ``leader_epoch`` on: -> LOADING.

        Returns True when the caller must now read the partition's log and pass it to
        :meth:`complete_load`; False when the event was stale or the partition is already ours.
        """
        return self._require_ownership().became_leader(partition, leader_epoch)

    def complete_load(self, partition: int, encoded: Iterable[EncodedRecord], now_ms: int) -> None:
        """Replay ``partition``'s records (in log order), then serve its groups: LOADING -> ACTIVE."""
        ownership = self._require_ownership()
        if ownership.state_of(partition) is not CoordinatorState.LOADING:
            return  # resigned while loading: nothing to serve
        for key_bytes, value_bytes in encoded:
            key, value = records.decode_record(key_bytes, value_bytes)
            if self.partition_for(key.group) == partition:  # a record of another partition is foreign
                self._replay(key, value, now_ms)
        ownership.loaded(partition)
        self._on_loaded([g for g_id, g in self.groups.items() if self.partition_for(g_id) == partition], now_ms)

    def fail_load(self, partition: int, now_ms: int) -> None:
        """Loading failed: forget what was replayed; LOADING -> FAILED (a newer epoch retries)."""
        self._require_ownership().load_failed(partition)
        self._unload_partition(partition, now_ms)

    def on_resigned(self, partition: int, leader_epoch: int | None, now_ms: int) -> bool:
        """Another broker leads ``partition`` (``leader_epoch`` None: the topic is gone): unload it.

        Parked JoinGroups and SyncGroups of its groups are answered NOT_COORDINATOR, so that their
        members look for the new coordinator.  Returns whether anything was unloaded.
        """
        if not self._require_ownership().resigned(partition, leader_epoch):
            return False
        self._unload_partition(partition, now_ms)
        return True

    def _unload_partition(self, partition: int, now_ms: int) -> None:
        for group_id in [g for g in self.groups if self.partition_for(g) == partition]:
            group = self.groups[group_id]
            for member in group.members.values():
                if group.is_in(GroupState.PREPARING_REBALANCE):
                    group.complete_join(member, JoinGroupResult(Errors.NOT_COORDINATOR, member_id=member.member_id))
                elif group.is_in(GroupState.COMPLETING_REBALANCE, GroupState.STABLE):
                    group.complete_sync(member, SyncGroupResult(Errors.NOT_COORDINATOR))
            for topic, partitions in self.offsets.group_offsets(group_id).items():
                for index in list(partitions):
                    self.offsets.remove(group_id, topic, index)
            self._remove_group(group_id, now_ms)

    # ============================================================================================
    # JoinGroup
    # ============================================================================================

    def join(self, request: JoinGroupRequest, now_ms: int, respond: JoinCallback) -> None:
        """Handle JoinGroup; ``respond`` is called exactly once, now or when the join phase closes."""
        self._ensure_offset_expiration_scheduled(now_ms)
        if request.group_id == "":
            respond(JoinGroupResult(Errors.INVALID_GROUP_ID, member_id=request.member_id))
            return
        if not (
            self.config.group_min_session_timeout_ms
            <= request.session_timeout_ms
            <= self.config.group_max_session_timeout_ms
        ):
            respond(JoinGroupResult(Errors.INVALID_SESSION_TIMEOUT, member_id=request.member_id))
            return
        if (error := self.coordinator_error(request.group_id)) is not Errors.NONE:
            respond(JoinGroupResult(error, member_id=UNKNOWN_MEMBER_ID))
            return
        group = self.groups.get(request.group_id)
        is_unknown_member = request.member_id == UNKNOWN_MEMBER_ID
        if group is None:
            if not is_unknown_member:
                respond(JoinGroupResult(Errors.UNKNOWN_MEMBER_ID, member_id=request.member_id))
                return
            group = ClassicGroup(request.group_id, current_state_timestamp=now_ms)
            self.groups[group.group_id] = group
            # Kafka commits a new group to the log at once (an empty GroupMetadataValue); if the log
            # refuses it, the group is forgotten again and the member told why.
            written = self._write_group_metadata(group, {}, now_ms)
            if written.error is not None and written.error is not Errors.NONE:
                self._remove_group(group.group_id, now_ms)
                respond(JoinGroupResult(append_error_to_response_error(written.error), member_id=UNKNOWN_MEMBER_ID))
                return
        if not self._accepts_joining_member(group, request.member_id):
            self._drop_member(group, request.member_id)
            respond(JoinGroupResult(Errors.GROUP_MAX_SIZE_REACHED, member_id=UNKNOWN_MEMBER_ID))
        elif is_unknown_member:
            self._join_new_member(group, request, now_ms, respond)
        else:
            self._join_existing_member(group, request, now_ms, respond)

    def _accepts_joining_member(self, group: ClassicGroup, member_id: str) -> bool:
        """group.max.size: new members are refused once the group is full (GROUP_MAX_SIZE_REACHED)."""
        if group.is_in(GroupState.EMPTY, GroupState.DEAD):
            return True
        if group.is_in(GroupState.PREPARING_REBALANCE):
            # Counting members that already rejoined lets the last rejoining members be refused
            # when group.max.size was lowered.
            member = group.members.get(member_id)
            if member is not None and member.awaiting_join is not None:
                return True
            return group.awaiting_join_count() < self.config.group_max_size
        return group.has_member(member_id) or len(group.members) < self.config.group_max_size

    def _drop_member(self, group: ClassicGroup, member_id: str) -> None:
        group.remove(member_id)
        self._timers.cancel(_heartbeat_timer(group.group_id, member_id))
        if not group.pending_sync_members:
            self._timers.cancel(_sync_timer(group.group_id))

    @staticmethod
    def _rebalance_timeout(request: JoinGroupRequest) -> int:
        """JoinGroup v0 has no rebalance timeout: the session timeout stands in (as in Kafka)."""
        if request.api_version == 0 or request.rebalance_timeout_ms < 0:
            return request.session_timeout_ms
        return request.rebalance_timeout_ms

    def _join_new_member(
        self, group: ClassicGroup, request: JoinGroupRequest, now_ms: int, respond: JoinCallback
    ) -> None:
        if group.is_in(GroupState.DEAD):
            respond(JoinGroupResult(Errors.COORDINATOR_NOT_AVAILABLE, member_id=UNKNOWN_MEMBER_ID))
            return
        if not group.supports_protocols(request.protocol_type, {p.name for p in request.protocols}):
            respond(JoinGroupResult(Errors.INCONSISTENT_GROUP_PROTOCOL, member_id=UNKNOWN_MEMBER_ID))
            return
        prefix = request.group_instance_id if request.group_instance_id is not None else request.client_id
        new_member_id = f"{prefix}-{self.member_id_suffix()}"
        if request.group_instance_id is not None:
            existing = group.static_member_id(request.group_instance_id)
            if existing is not None:
                self._replace_static_member(group, request, existing, new_member_id, now_ms, respond)
            else:
                self._add_member(group, request, new_member_id, now_ms, respond)
        elif request.api_version >= JOIN_REQUIRES_KNOWN_MEMBER_ID_VERSION:
            # KIP-394: hand out the id, remember it as pending, and let the member come back with it.
            group.pending_join_members.add(new_member_id)
            self._schedule_heartbeat(group, new_member_id, now_ms + request.session_timeout_ms)
            respond(JoinGroupResult(Errors.MEMBER_ID_REQUIRED, member_id=new_member_id))
        else:
            self._add_member(group, request, new_member_id, now_ms, respond)

    def _join_existing_member(
        self, group: ClassicGroup, request: JoinGroupRequest, now_ms: int, respond: JoinCallback
    ) -> None:
        member_id = request.member_id
        if group.is_in(GroupState.DEAD):
            respond(JoinGroupResult(Errors.COORDINATOR_NOT_AVAILABLE, member_id=member_id))
            return
        if not group.supports_protocols(request.protocol_type, {p.name for p in request.protocols}):
            respond(JoinGroupResult(Errors.INCONSISTENT_GROUP_PROTOCOL, member_id=member_id))
            return
        if member_id in group.pending_join_members:
            self._add_member(group, request, member_id, now_ms, respond)
            return
        error = validate_member(group, member_id, request.group_instance_id)
        if error is not Errors.NONE:
            respond(JoinGroupResult(error, member_id=member_id))
            return
        member = group.members[member_id]
        if group.is_in(GroupState.PREPARING_REBALANCE):
            self._update_member(group, member, request, now_ms, respond)
        elif group.is_in(GroupState.COMPLETING_REBALANCE):
            if member.matches(request.protocols):
                # A retry of a JoinGroup whose answer was lost: answer again with this generation.
                respond(self._join_result(group, member, with_members=group.is_leader(member_id)))
            else:
                self._update_member(group, member, request, now_ms, respond)
        elif group.is_in(GroupState.STABLE):
            if group.is_leader(member_id) or not member.matches(request.protocols):
                # The leader rejoins to force a new assignment (e.g. topic metadata changed).
                self._update_member(group, member, request, now_ms, respond)
            else:
                respond(self._join_result(group, member, with_members=False))
        else:
            respond(JoinGroupResult(Errors.UNKNOWN_MEMBER_ID, member_id=member_id))

    def _join_result(self, group: ClassicGroup, member: Member, with_members: bool) -> JoinGroupResult:
        return JoinGroupResult(
            error=Errors.NONE,
            member_id=member.member_id,
            generation_id=group.generation_id,
            protocol_type=group.protocol_type,
            protocol_name=group.protocol_name,
            leader=group.leader_id or "",
            members=group.join_members() if with_members else [],
        )

    def _add_member(
        self,
        group: ClassicGroup,
        request: JoinGroupRequest,
        member_id: str,
        now_ms: int,
        respond: JoinCallback,
    ) -> None:
        member = Member(
            member_id=member_id,
            group_instance_id=request.group_instance_id,
            client_id=request.client_id,
            client_host=request.client_host,
            rebalance_timeout_ms=self._rebalance_timeout(request),
            session_timeout_ms=request.session_timeout_ms,
            protocol_type=request.protocol_type,
            protocols=list(request.protocols),
            awaiting_join=respond,
            is_new=True,
        )
        if group.is_in(GroupState.PREPARING_REBALANCE) and group.previous_state is GroupState.EMPTY:
            group.new_member_added = True  # extends the initial rebalance delay
        group.add(member)
        # A parked new member cannot heartbeat; it is dropped if the join phase outlasts this.
        self._schedule_heartbeat(group, member_id, now_ms + self.config.group_new_member_join_timeout_ms)
        self._maybe_prepare_rebalance_or_complete_join(group, now_ms)

    def _update_member(
        self,
        group: ClassicGroup,
        member: Member,
        request: JoinGroupRequest,
        now_ms: int,
        respond: JoinCallback,
    ) -> None:
        member.protocols = list(request.protocols)
        member.rebalance_timeout_ms = self._rebalance_timeout(request)
        member.session_timeout_ms = request.session_timeout_ms
        member.awaiting_join = respond
        self._maybe_prepare_rebalance_or_complete_join(group, now_ms)

    def _replace_static_member(
        self,
        group: ClassicGroup,
        request: JoinGroupRequest,
        old_member_id: str,
        new_member_id: str,
        now_ms: int,
        respond: JoinCallback,
    ) -> None:
        """KIP-345: a static member rejoins with an unknown member id and takes its old place."""
        assert request.group_instance_id is not None
        previous_leader = group.leader_id or ""
        self._timers.cancel(_heartbeat_timer(group.group_id, old_member_id))
        member = group.replace_static_member(request.group_instance_id, old_member_id, new_member_id)
        # The old id no longer owes a SyncGroup; if it was the last one, the sync timer goes too.
        self._remove_pending_sync_member(group, old_member_id)
        self._reschedule_heartbeat(group, member, now_ms)
        member.protocols = list(request.protocols)
        member.rebalance_timeout_ms = self._rebalance_timeout(request)
        member.session_timeout_ms = request.session_timeout_ms
        member.awaiting_join = respond
        if group.is_in(GroupState.STABLE):
            if group.protocol_name == group.select_protocol():
                # Nothing the assignment depends on changed: persist the new member id, no rebalance.
                assignment = {m.member_id: m.assignment for m in group.members.values()}
                self._write_group_metadata(group, assignment, now_ms)
                self._answer_replaced_static_member(group, member, request, previous_leader)
            else:
                self._maybe_prepare_rebalance_or_complete_join(group, now_ms)
        elif group.is_in(GroupState.COMPLETING_REBALANCE):
            # The leader may be assigning to the old member id: start over.
            self._prepare_rebalance(group, now_ms)
        else:
            self._maybe_complete_join_phase(group, now_ms)

    def _answer_replaced_static_member(
        self, group: ClassicGroup, member: Member, request: JoinGroupRequest, previous_leader: str
    ) -> None:
        if request.api_version >= JOIN_SKIP_ASSIGNMENT_VERSION:
            # v9+: a static leader learns it leads, gets the members, and is told not to reassign.
            is_leader = group.is_leader(member.member_id)
            result = self._join_result(group, member, with_members=is_leader)
            result.skip_assignment = is_leader
        else:
            # Older clients are told the *previous* leader id, so a rejoining static leader acts as
            # a follower and does not compute a new assignment.
            result = self._join_result(group, member, with_members=False)
            result.leader = previous_leader
        group.complete_join(member, result)

    # --- rebalance mechanics ---------------------------------------------------------------------

    def _maybe_prepare_rebalance_or_complete_join(self, group: ClassicGroup, now_ms: int) -> None:
        if accepts(group.state, GroupEvent.REBALANCE_TRIGGERED):
            self._prepare_rebalance(group, now_ms)
        else:
            self._maybe_complete_join_phase(group, now_ms)

    def _prepare_rebalance(self, group: ClassicGroup, now_ms: int) -> None:
        if group.is_in(GroupState.COMPLETING_REBALANCE):
            self._reset_and_propagate_assignment_error(group, Errors.REBALANCE_IN_PROGRESS, now_ms)
        group.pending_sync_members.clear()
        self._timers.cancel(_sync_timer(group.group_id))
        initial_rebalance = group.is_in(GroupState.EMPTY)
        if initial_rebalance:
            delay_ms = self.config.group_initial_rebalance_delay_ms
            remaining_ms = max(group.rebalance_timeout_ms() - delay_ms, 0)
            self._schedule_initial_rebalance(group, now_ms + delay_ms, delay_ms, remaining_ms)
        group.transition(GroupEvent.REBALANCE_TRIGGERED, now_ms)
        if not initial_rebalance:
            self._maybe_complete_join_else_schedule(group, now_ms)

    def _schedule_initial_rebalance(
        self, group: ClassicGroup, deadline_ms: int, delay_ms: int, remaining_ms: int
    ) -> None:
        group_id = group.group_id
        self._timers.schedule(
            _join_timer(group_id),
            deadline_ms,
            lambda now_ms: self._complete_initial_rebalance_or_extend(
                group_id, delay_ms, remaining_ms, now_ms
            ),
        )

    def _complete_initial_rebalance_or_extend(
        self, group_id: str, delay_ms: int, remaining_ms: int, now_ms: int
    ) -> None:
        group = self.groups.get(group_id)
        if group is None:
            return
        if group.new_member_added and remaining_ms != 0:
            group.new_member_added = False
            new_delay_ms = min(self.config.group_initial_rebalance_delay_ms, remaining_ms)
            new_remaining_ms = max(remaining_ms - delay_ms, 0)
            self._schedule_initial_rebalance(group, now_ms + new_delay_ms, new_delay_ms, new_remaining_ms)
        else:
            self._complete_join(group, now_ms)

    def _maybe_complete_join_else_schedule(self, group: ClassicGroup, now_ms: int) -> None:
        if group.has_all_members_joined():
            self._complete_join(group, now_ms)
        else:
            self._schedule_join_timeout(group, now_ms)

    def _schedule_join_timeout(self, group: ClassicGroup, now_ms: int) -> None:
        group_id = group.group_id
        self._timers.schedule(
            _join_timer(group_id),
            now_ms + group.rebalance_timeout_ms(),
            lambda t: self._complete_join_by_id(group_id, t),
        )

    def _complete_join_by_id(self, group_id: str, now_ms: int) -> None:
        group = self.groups.get(group_id)
        if group is not None:
            self._complete_join(group, now_ms)

    def _maybe_complete_join_phase(self, group: ClassicGroup, now_ms: int) -> None:
        if not group.is_in(GroupState.PREPARING_REBALANCE):
            return
        if group.previous_state is GroupState.EMPTY:
            return  # the initial rebalance closes on its delay timer only
        if group.has_all_members_joined():
            self._complete_join(group, now_ms)

    def _complete_join(self, group: ClassicGroup, now_ms: int) -> None:
        """Close the join phase: drop dynamic members that did not rejoin, start the next generation."""
        self._timers.cancel(_join_timer(group.group_id))
        for member in group.not_yet_rejoined():
            if not member.is_static:
                self._drop_member(group, member.member_id)
        if group.is_in(GroupState.DEAD):
            return
        if not group.elect_joined_leader() and group.members:
            # Only static members that have not rejoined are left: wait for them (or their
            # session timeouts) one more rebalance timeout.
            self._schedule_join_timeout(group, now_ms)
            return
        group.init_next_generation(now_ms)
        if group.is_in(GroupState.EMPTY):
            self._write_group_metadata(group, {}, now_ms)
            return
        for member in group.members.values():
            group.complete_join(
                member, self._join_result(group, member, with_members=group.is_leader(member.member_id))
            )
            self._reschedule_heartbeat(group, member, now_ms)
            member.is_new = False
            group.pending_sync_members.add(member.member_id)
        self._schedule_sync_timeout(group, now_ms)

    def _schedule_sync_timeout(self, group: ClassicGroup, now_ms: int) -> None:
        group_id, generation_id = group.group_id, group.generation_id
        self._timers.schedule(
            _sync_timer(group_id),
            now_ms + group.rebalance_timeout_ms(),
            lambda t: self._expire_pending_sync(group_id, generation_id, t),
        )

    def _expire_pending_sync(self, group_id: str, generation_id: int, now_ms: int) -> None:
        """Members that did not send SyncGroup within the rebalance timeout are removed."""
        group = self.groups.get(group_id)
        if group is None or group.generation_id != generation_id:
            return
        if group.is_in(GroupState.COMPLETING_REBALANCE, GroupState.STABLE) and group.pending_sync_members:
            for member_id in sorted(group.pending_sync_members):
                self._drop_member(group, member_id)
            self._prepare_rebalance(group, now_ms)

    def _expire_heartbeat(self, group_id: str, member_id: str, now_ms: int) -> None:
        """A member's session timeout (or a pending/new member's join timeout) ran out."""
        group = self.groups.get(group_id)
        if group is None or group.is_in(GroupState.DEAD):
            return
        if member_id in group.pending_join_members:
            group.remove(member_id)
            if group.is_in(GroupState.PREPARING_REBALANCE) and group.has_all_members_joined():
                self._complete_join(group, now_ms)
            return
        member = group.members.get(member_id)
        if member is not None and not member.has_satisfied_heartbeat():
            self._remove_member_and_rebalance(group, member, now_ms)

    def _remove_member_and_rebalance(self, group: ClassicGroup, member: Member, now_ms: int) -> None:
        group.complete_join(member, JoinGroupResult(Errors.UNKNOWN_MEMBER_ID, member_id=UNKNOWN_MEMBER_ID))
        self._drop_member(group, member.member_id)
        if group.is_in(GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._maybe_prepare_rebalance_or_complete_join(group, now_ms)
        elif group.is_in(GroupState.PREPARING_REBALANCE) and group.has_all_members_joined():
            self._complete_join(group, now_ms)

    def _reset_and_propagate_assignment_error(
        self, group: ClassicGroup, error: ErrorCode, now_ms: int
    ) -> None:
        for member in group.members.values():
            member.assignment = b""
        self._propagate_assignment(group, error, now_ms)

    def _propagate_assignment(self, group: ClassicGroup, error: ErrorCode, now_ms: int) -> None:
        ok = error is Errors.NONE
        for member in group.members.values():
            result = SyncGroupResult(
                error=error,
                protocol_type=group.protocol_type if ok else None,
                protocol_name=group.protocol_name if ok else None,
                assignment=member.assignment,
            )
            if group.complete_sync(member, result):
                self._reschedule_heartbeat(group, member, now_ms)

    # ============================================================================================
    # SyncGroup, Heartbeat, LeaveGroup
    # ============================================================================================

    def sync(self, request: SyncGroupRequest, now_ms: int, respond: SyncCallback) -> None:
        """Handle SyncGroup; a follower's answer waits for the leader's assignment."""
        if request.group_id == "":
            respond(SyncGroupResult(Errors.INVALID_GROUP_ID))
            return
        if (error := self.coordinator_error(request.group_id)) is not Errors.NONE:
            respond(SyncGroupResult(error))
            return
        group = self.groups.get(request.group_id)
        if group is None or group.is_in(GroupState.EMPTY):
            respond(SyncGroupResult(Errors.UNKNOWN_MEMBER_ID))
            return
        error = self._validate_sync(group, request)
        if error is not Errors.NONE:
            respond(SyncGroupResult(error))
        elif group.is_in(GroupState.PREPARING_REBALANCE):
            respond(SyncGroupResult(Errors.REBALANCE_IN_PROGRESS))
        elif group.is_in(GroupState.COMPLETING_REBALANCE):
            group.members[request.member_id].awaiting_sync = respond
            self._remove_pending_sync_member(group, request.member_id)
            if group.is_leader(request.member_id):
                self._store_assignment(group, request, now_ms)
        else:  # Stable: hand out the stored assignment
            self._remove_pending_sync_member(group, request.member_id)
            member = group.members[request.member_id]
            respond(SyncGroupResult(Errors.NONE, group.protocol_type, group.protocol_name, member.assignment))

    def _validate_sync(self, group: ClassicGroup, request: SyncGroupRequest) -> ErrorCode:
        if group.is_in(GroupState.DEAD):
            return Errors.COORDINATOR_NOT_AVAILABLE
        error = validate_member(group, request.member_id, request.group_instance_id)
        if error is not Errors.NONE:
            return error
        if request.generation_id != group.generation_id:
            return Errors.ILLEGAL_GENERATION
        # SyncGroup v5+: the protocol type and name, when given, must be the group's.
        if request.protocol_type is not None and request.protocol_type != group.protocol_type:
            return Errors.INCONSISTENT_GROUP_PROTOCOL
        if request.protocol_name is not None and request.protocol_name != group.protocol_name:
            return Errors.INCONSISTENT_GROUP_PROTOCOL
        return Errors.NONE

    def _store_assignment(self, group: ClassicGroup, request: SyncGroupRequest, now_ms: int) -> None:
        """Write the leader's assignment; hand it out only once the write is committed (as Kafka)."""
        given = {entry.member_id: entry.assignment for entry in request.assignments}
        assignment = {member_id: given.get(member_id, b"") for member_id in group.members}
        generation_id = group.generation_id
        self._write_group_metadata(group, assignment, now_ms).on_done(
            lambda error, done_ms: self._on_assignment_written(group, generation_id, assignment, error, done_ms)
        )

    def _on_assignment_written(
        self, group: ClassicGroup, generation_id: int, assignment: dict[str, bytes], error: ErrorCode, now_ms: int
    ) -> None:
        # The group may have moved on while the write was pending (another rebalance, an unload).
        if self.groups.get(group.group_id) is not group or group.generation_id != generation_id:
            return
        if not group.is_in(GroupState.COMPLETING_REBALANCE):
            return
        if error is not Errors.NONE:
            self._reset_and_propagate_assignment_error(group, append_error_to_response_error(error), now_ms)
            self._maybe_prepare_rebalance_or_complete_join(group, now_ms)
            return
        for member in group.members.values():
            member.assignment = assignment.get(member.member_id, b"")
        self._propagate_assignment(group, Errors.NONE, now_ms)
        group.transition(GroupEvent.ASSIGNMENT_STORED, now_ms)

    def _remove_pending_sync_member(self, group: ClassicGroup, member_id: str) -> None:
        group.pending_sync_members.discard(member_id)
        if not group.pending_sync_members:
            self._timers.cancel(_sync_timer(group.group_id))

    def heartbeat(self, request: HeartbeatRequest, now_ms: int) -> HeartbeatResult:
        if request.group_id == "":
            return HeartbeatResult(Errors.INVALID_GROUP_ID)
        if (error := self.coordinator_error(request.group_id)) is not Errors.NONE:
            # While the group loads Kafka answers NONE ("blindly"): the member keeps its session.
            return HeartbeatResult(Errors.NONE if error is Errors.COORDINATOR_LOAD_IN_PROGRESS else error)
        group = self.groups.get(request.group_id)
        if group is None:
            return HeartbeatResult(Errors.UNKNOWN_MEMBER_ID)
        if group.is_in(GroupState.DEAD):
            return HeartbeatResult(Errors.COORDINATOR_NOT_AVAILABLE)
        error = validate_member(group, request.member_id, request.group_instance_id)
        if error is not Errors.NONE:
            return HeartbeatResult(error)
        if request.generation_id != group.generation_id:
            return HeartbeatResult(Errors.ILLEGAL_GENERATION)
        if group.is_in(GroupState.EMPTY):
            return HeartbeatResult(Errors.UNKNOWN_MEMBER_ID)
        self._reschedule_heartbeat(group, group.members[request.member_id], now_ms)
        if group.is_in(GroupState.PREPARING_REBALANCE):
            return HeartbeatResult(Errors.REBALANCE_IN_PROGRESS)
        return HeartbeatResult(Errors.NONE)

    def leave(self, request: LeaveGroupRequest, now_ms: int) -> LeaveGroupResult:
        """Handle LeaveGroup: one member (v0-v2) or a batch, by member id or by instance id (v3+)."""
        if request.group_id == "":
            return LeaveGroupResult(Errors.INVALID_GROUP_ID)
        if (error := self.coordinator_error(request.group_id)) is not Errors.NONE:
            return LeaveGroupResult(error)
        group = self.groups.get(request.group_id)
        if group is None:
            return LeaveGroupResult(Errors.UNKNOWN_MEMBER_ID)
        if group.is_in(GroupState.DEAD):
            return LeaveGroupResult(Errors.COORDINATOR_NOT_AVAILABLE)
        results = [
            self._leave_one(group, identity.member_id, identity.group_instance_id)
            for identity in request.members
        ]
        if any(result.error is Errors.NONE for result in results):
            if group.is_in(GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
                self._maybe_prepare_rebalance_or_complete_join(group, now_ms)
            elif group.is_in(GroupState.PREPARING_REBALANCE):
                self._maybe_complete_join_phase(group, now_ms)
        if request.api_version < LEAVE_GROUP_BATCH_VERSION:
            # Before v3 the response has no member list: the single member's error is the error.
            first_error = results[0].error if results else Errors.NONE
            return LeaveGroupResult(first_error, results)
        return LeaveGroupResult(Errors.NONE, results)

    def _leave_one(
        self, group: ClassicGroup, member_id: str, group_instance_id: str | None
    ) -> LeaveGroupMemberResult:
        if member_id == UNKNOWN_MEMBER_ID:
            # Administrative removal of a static member by its instance id alone.
            current = group.static_member_id(group_instance_id) if group_instance_id is not None else None
            if current is None:
                return LeaveGroupMemberResult(member_id, group_instance_id, Errors.UNKNOWN_MEMBER_ID)
            self._remove_leaving_member(group, current)
            return LeaveGroupMemberResult(member_id, group_instance_id, Errors.NONE)
        if member_id in group.pending_join_members:
            self._drop_member(group, member_id)
            return LeaveGroupMemberResult(member_id, group_instance_id, Errors.NONE)
        error = validate_member(group, member_id, group_instance_id)
        if error is Errors.NONE:
            self._remove_leaving_member(group, member_id)
        return LeaveGroupMemberResult(member_id, group_instance_id, error)

    def _remove_leaving_member(self, group: ClassicGroup, member_id: str) -> None:
        member = group.members[member_id]
        group.complete_join(member, JoinGroupResult(Errors.UNKNOWN_MEMBER_ID, member_id=UNKNOWN_MEMBER_ID))
        self._drop_member(group, member_id)

    # ============================================================================================
    # DescribeGroups, ListGroups, DeleteGroups
    # ============================================================================================

    def describe_groups(self, group_ids: list[str], api_version: int = 5) -> list[DescribedGroup]:
        return [self._describe(group_id, api_version) for group_id in group_ids]

    def _describe(self, group_id: str, api_version: int) -> DescribedGroup:
        if (error := self.coordinator_error(group_id)) is not Errors.NONE:
            return DescribedGroup(group_id, "", error=error)
        group = self.groups.get(group_id)
        if group is None:
            error = (
                Errors.GROUP_ID_NOT_FOUND
                if api_version >= DESCRIBE_GROUPS_GROUP_ID_NOT_FOUND_VERSION
                else Errors.NONE
            )
            return DescribedGroup(group_id, str(GroupState.DEAD), error=error)
        stable = group.is_in(GroupState.STABLE)
        members = [
            DescribedGroupMember(
                member_id=member.member_id,
                group_instance_id=member.group_instance_id,
                client_id=member.client_id,
                client_host=member.client_host,
                member_metadata=member.metadata(group.protocol_name) if stable else b"",
                member_assignment=member.assignment,
            )
            for member in group.members.values()
        ]
        return DescribedGroup(
            group_id=group_id,
            group_state=str(group.state),
            protocol_type=group.protocol_type or "",
            protocol_data=(group.protocol_name or "") if stable else "",
            members=members,
        )

    def list_groups(self, states_filter: Iterable[str] = ()) -> list[ListedGroup]:
        """ListGroups; ``states_filter`` (v4+, KIP-518) matches state names case-insensitively."""
        wanted = {state.strip().lower() for state in states_filter}
        return [
            ListedGroup(group.group_id, group.protocol_type or "", str(group.state))
            for group in self.groups.values()
            if (not wanted or str(group.state).lower() in wanted)
            and self.coordinator_error(group.group_id) is Errors.NONE
        ]

    def list_groups_error(self) -> ErrorCode:
        """ListGroups asks every partition this broker leads: one still loading fails the whole
        request with COORDINATOR_LOAD_IN_PROGRESS; partitions it does not lead are skipped."""
        if self.ownership is not None and self.ownership.loading_partitions():
            return Errors.COORDINATOR_LOAD_IN_PROGRESS
        return Errors.NONE

    def delete_groups(self, group_ids: list[str], now_ms: int) -> list[DeletableGroupResult]:
        """DeleteGroups: only Empty groups (NON_EMPTY_GROUP); offsets go with them."""
        return [self._delete_group(group_id, now_ms) for group_id in group_ids]

    def _delete_group(self, group_id: str, now_ms: int) -> DeletableGroupResult:
        if (error := self.coordinator_error(group_id)) is not Errors.NONE:
            return DeletableGroupResult(group_id, error)
        group = self.groups.get(group_id)
        if group is None or group.is_in(GroupState.DEAD):
            return DeletableGroupResult(group_id, Errors.GROUP_ID_NOT_FOUND)
        if not group.is_in(GroupState.EMPTY):
            return DeletableGroupResult(group_id, Errors.NON_EMPTY_GROUP)
        pairs: list[tuple[records.RecordKey, records.RecordValue | None]] = [
            (records.OffsetCommitKey(group_id, topic, partition), None)
            for topic, partitions in self.offsets.group_offsets(group_id).items()
            for partition in partitions
        ]
        pairs.append((records.GroupMetadataKey(group_id), None))
        self._append_and_replay(group_id, pairs, now_ms)
        return DeletableGroupResult(group_id, Errors.NONE)

    # ============================================================================================
    # OffsetCommit, OffsetFetch, OffsetDelete, retention
    # ============================================================================================

    def commit_offsets(self, request: OffsetCommitRequest, now_ms: int) -> OffsetCommitResult:
        self._ensure_offset_expiration_scheduled(now_ms)
        if (error := self.coordinator_error(request.group_id)) is not Errors.NONE:
            return _commit_result_with_error(request, error)
        error = self._validate_commit(request)
        if error is not Errors.NONE:
            return _commit_result_with_error(request, error)
        group = self.groups.get(request.group_id)
        if group is not None and group.is_in(GroupState.STABLE, GroupState.PREPARING_REBALANCE):
            # A commit from a member keeps its session alive, as a heartbeat does.
            self._reschedule_heartbeat(group, group.members[request.member_id], now_ms)
        # Java long arithmetic: a huge retention wraps (Kafka 4.3.1 accepts Long.MAX_VALUE; found by refka fuzz)
        expire_timestamp = (None if request.retention_time_ms == -1
                            else (now_ms + request.retention_time_ms + (1 << 63)) % (1 << 64) - (1 << 63))
        pairs: list[tuple[records.RecordKey, records.RecordValue | None]] = []
        topics: list[OffsetCommitResponseTopic] = []
        for topic in request.topics:
            partitions: list[OffsetCommitResponsePartition] = []
            for partition in topic.partitions:
                metadata = partition.committed_metadata
                if (
                    metadata is not None
                    and java_string_length(metadata) > self.config.offset_metadata_max_bytes
                ):
                    partitions.append(
                        OffsetCommitResponsePartition(
                            partition.partition_index, Errors.OFFSET_METADATA_TOO_LARGE
                        )
                    )
                    continue
                offset = OffsetAndMetadata(
                    committed_offset=partition.committed_offset,
                    leader_epoch=partition.committed_leader_epoch,
                    metadata=metadata or "",
                    commit_timestamp_ms=now_ms,
                    expire_timestamp_ms=expire_timestamp,
                    topic_id=topic.topic_id,
                )
                pairs.append(
                    (
                        records.OffsetCommitKey(request.group_id, topic.name, partition.partition_index),
                        offset.to_record(),
                    )
                )
                partitions.append(OffsetCommitResponsePartition(partition.partition_index, Errors.NONE))
            topics.append(OffsetCommitResponseTopic(topic.name, partitions))
        # Whether the write gets committed is the caller's to wait for (GroupService.when_committed).
        self._append_and_replay(request.group_id, pairs, now_ms)
        return OffsetCommitResult(topics)

    def _validate_commit(self, request: OffsetCommitRequest) -> ErrorCode:
        group = self.groups.get(request.group_id)
        if group is None:
            if request.generation_id_or_member_epoch < 0:
                return Errors.NONE  # a simple group; it comes into being with its first offset
            if request.api_version >= OFFSET_COMMIT_GROUP_ID_NOT_FOUND_VERSION:
                return Errors.GROUP_ID_NOT_FOUND
            return Errors.ILLEGAL_GENERATION
        return validate_offset_commit(
            group, request.member_id, request.group_instance_id, request.generation_id_or_member_epoch
        )

    def fetch_offsets(self, requests: list[OffsetFetchRequestGroup]) -> list[OffsetFetchResponseGroup]:
        """OffsetFetch for one group (v0-v7) or several (v8+); ``topics=None`` asks for everything."""
        return [self._fetch_group(request) for request in requests]

    def _fetch_group(self, request: OffsetFetchRequestGroup) -> OffsetFetchResponseGroup:
        if (error := self.coordinator_error(request.group_id)) is not Errors.NONE:
            return OffsetFetchResponseGroup(request.group_id, [], error)
        group = self.groups.get(request.group_id)
        known = group is not None and not group.is_in(GroupState.DEAD)
        stored = self.offsets.group_offsets(request.group_id) if known else {}
        if request.topics is None:
            topics = [
                OffsetFetchResponseTopic(
                    topic, [_fetched(index, offset) for index, offset in partitions.items()]
                )
                for topic, partitions in stored.items()
            ]
            return OffsetFetchResponseGroup(request.group_id, topics)
        topics = [
            OffsetFetchResponseTopic(
                topic.name,
                [_fetched(index, stored.get(topic.name, {}).get(index)) for index in topic.partition_indexes],
            )
            for topic in request.topics
        ]
        return OffsetFetchResponseGroup(request.group_id, topics)

    def delete_offsets(
        self, group_id: str, topics: list[OffsetDeleteRequestTopic], now_ms: int
    ) -> OffsetDeleteResult:
        """OffsetDelete (KIP-496): only for topics the group does not consume."""
        if (error := self.coordinator_error(group_id)) is not Errors.NONE:
            return OffsetDeleteResult(error)
        group = self.groups.get(group_id)
        if group is None or group.is_in(GroupState.DEAD):
            return OffsetDeleteResult(Errors.GROUP_ID_NOT_FOUND)
        if not group.is_in(GroupState.EMPTY) and not group.uses_consumer_protocol():
            return OffsetDeleteResult(Errors.NON_EMPTY_GROUP)
        pairs: list[tuple[records.RecordKey, records.RecordValue | None]] = []
        results: list[OffsetDeleteResponseTopic] = []
        for topic in topics:
            error = (
                Errors.GROUP_SUBSCRIBED_TO_TOPIC if group.is_subscribed_to_topic(topic.name) else Errors.NONE
            )
            results.append(
                OffsetDeleteResponseTopic(
                    topic.name, [OffsetDeleteResponsePartition(i, error) for i in topic.partition_indexes]
                )
            )
            if error is Errors.NONE:
                pairs += [
                    (records.OffsetCommitKey(group_id, topic.name, index), None)
                    for index in topic.partition_indexes
                    if self.offsets.get(group_id, topic.name, index) is not None
                ]
        self._append_and_replay(group_id, pairs, now_ms)
        return OffsetDeleteResult(Errors.NONE, results)

    def expire_offsets(self, now_ms: int) -> None:
        """Offset retention (offsets.retention.minutes, KIP-211); also run by :meth:`poll`."""
        for group_id in list(self.groups):
            group = self.groups[group_id]
            stored = self.offsets.group_offsets(group_id)
            expired: list[tuple[records.RecordKey, records.RecordValue | None]] = []
            for topic, partitions in stored.items():
                for partition, offset in partitions.items():
                    if is_expired(group, topic, offset, now_ms, self.config.offsets_retention_ms):
                        expired.append((records.OffsetCommitKey(group_id, topic, partition), None))
            everything_expired = len(expired) == sum(len(partitions) for partitions in stored.values())
            if everything_expired and group.is_in(GroupState.EMPTY):
                expired.append((records.GroupMetadataKey(group_id), None))
            self._append_and_replay(group_id, expired, now_ms)

    def on_topics_deleted(self, topics: Iterable[str], now_ms: int) -> None:
        """A deleted topic takes every group's committed offsets for it along (tombstones)."""
        deleted = set(topics)
        by_group: dict[str, list[tuple[records.RecordKey, records.RecordValue | None]]] = {}
        for group_id, topic, partition, _ in self.offsets.entries():
            if topic in deleted:
                by_group.setdefault(group_id, []).append(
                    (records.OffsetCommitKey(group_id, topic, partition), None)
                )
        for group_id, pairs in by_group.items():
            self._append_and_replay(group_id, pairs, now_ms)

    # ============================================================================================
    # Invariants
    # ============================================================================================

    def check_valid(self) -> None:
        """Assert every invariant of every group; raises AssertionError naming the broken rule."""
        for group_id, group in self.groups.items():
            check_group(group_id, group)
        for group_id, _, _, _ in self.offsets.entries():
            assert group_id in self.groups, f"offsets of {group_id!r} belong to no group"
        for key in self._timers.keys():
            check_timer(key, self.groups)


def _fetched(partition_index: int, offset: OffsetAndMetadata | None) -> OffsetFetchResponsePartition:
    if offset is None:
        return OffsetFetchResponsePartition(partition_index, committed_offset=-1)
    return OffsetFetchResponsePartition(
        partition_index,
        committed_offset=offset.committed_offset,
        committed_leader_epoch=offset.leader_epoch,
        metadata=offset.metadata,
    )


def _commit_result_with_error(request: OffsetCommitRequest, error: ErrorCode) -> OffsetCommitResult:
    return OffsetCommitResult(
        [
            OffsetCommitResponseTopic(
                topic.name,
                [OffsetCommitResponsePartition(p.partition_index, error) for p in topic.partitions],
            )
            for topic in request.topics
        ]
    )
