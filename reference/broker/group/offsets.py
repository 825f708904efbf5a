"""Committed offsets: the store, the commit fence and the retention rule (Kafka's OffsetMetadataManager).

Theory of operation
-------------------
A committed offset is kept per (group, topic, partition) as :class:`OffsetAndMetadata`.  The store
changes *only* by replaying ``OffsetCommitKey``/``OffsetCommitValue`` records (a tombstone deletes),
on the live path exactly as when loading ``__consumer_offsets`` at start, so the two cannot drift.

**Who may commit** (``ClassicGroup.validateOffsetCommit``, checked in this order):

1. Dead group: COORDINATOR_NOT_AVAILABLE.
2. ``generation_id < 0`` and the group is Empty: accepted.  This is the "simple" consumer (manual
   assignment, or the admin client) committing into a group nobody is a member of.
3. Otherwise, when a generation, a member id or an instance id is given, the member must be known
   (UNKNOWN_MEMBER_ID; FENCED_INSTANCE_ID when the instance id now belongs to another member id)
   and the generation must be the group's (ILLEGAL_GENERATION).
4. Neither given and the group is not Empty: UNKNOWN_MEMBER_ID.
5. CompletingRebalance: REBALANCE_IN_PROGRESS -- the member has its new generation but not its
   assignment yet.  (PreparingRebalance accepts commits from the *previous* generation, so
   members can commit before they rejoin.)

An unknown group accepts a commit with ``generation_id < 0`` (a simple group is created);
otherwise it answers GROUP_ID_NOT_FOUND from OffsetCommit v9, ILLEGAL_GENERATION before.
Per partition, metadata longer than ``offset.metadata.max.bytes`` (4096, counted in UTF-16 code
units, Java's ``String.length``) gets OFFSET_METADATA_TOO_LARGE; the other partitions commit.

**Retention** (``offsets.retention.minutes``, default 7 days; KIP-211, Kafka 2.1+), checked every
``offsets.retention.check.interval.ms``:

* a commit that carried ``retention_time_ms`` (OffsetCommit v2-v4) expires at its own
  ``expire_timestamp``;
* a group *with* a protocol type that is Empty: every offset expires once the group has been
  Empty for the retention period (counted from ``current_state_timestamp``);
* a Stable consumer group whose subscription is known: offsets of topics it no longer subscribes
  to expire ``retention`` after their commit;
* a group *without* protocol type (simple consumers): each offset ``retention`` after its commit;
* anything else (a rebalancing group, an active non-consumer group): nothing expires.

When every offset of an Empty group has expired, the group itself is deleted (GroupMetadata
tombstone) and becomes Dead.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from reference.broker.group import records
from reference.broker.group.group import ClassicGroup
from reference.broker.group.state import GroupState
from reference.errors import ErrorCode, Errors


@dataclass(frozen=True)
class OffsetAndMetadata:
    committed_offset: int
    leader_epoch: int  # -1 = none
    metadata: str
    commit_timestamp_ms: int
    expire_timestamp_ms: int | None = None
    topic_id: uuid.UUID | None = None

    @classmethod
    def from_record(cls, value: records.OffsetCommitValue) -> OffsetAndMetadata:
        return cls(
            committed_offset=value.offset,
            leader_epoch=value.leader_epoch,
            metadata=value.metadata,
            commit_timestamp_ms=value.commit_timestamp,
            expire_timestamp_ms=None
            if value.expire_timestamp == records.NO_TIMESTAMP
            else value.expire_timestamp,
            topic_id=value.topic_id,
        )

    def to_record(self) -> records.OffsetCommitValue:
        return records.OffsetCommitValue(
            offset=self.committed_offset,
            metadata=self.metadata,
            commit_timestamp=self.commit_timestamp_ms,
            leader_epoch=self.leader_epoch,
            expire_timestamp=records.NO_TIMESTAMP
            if self.expire_timestamp_ms is None
            else self.expire_timestamp_ms,
            topic_id=self.topic_id,
        )


class OffsetStore:
    """group -> topic -> partition -> OffsetAndMetadata; empty levels are pruned."""

    def __init__(self) -> None:
        self._offsets: dict[str, dict[str, dict[int, OffsetAndMetadata]]] = {}

    def get(self, group_id: str, topic: str, partition: int) -> OffsetAndMetadata | None:
        return self._offsets.get(group_id, {}).get(topic, {}).get(partition)

    def put(self, group_id: str, topic: str, partition: int, offset: OffsetAndMetadata) -> None:
        self._offsets.setdefault(group_id, {}).setdefault(topic, {})[partition] = offset

    def remove(self, group_id: str, topic: str, partition: int) -> None:
        topics = self._offsets.get(group_id)
        if topics is None or topic not in topics:
            return
        topics[topic].pop(partition, None)
        if not topics[topic]:
            del topics[topic]
        if not topics:
            del self._offsets[group_id]

    def group_offsets(self, group_id: str) -> dict[str, dict[int, OffsetAndMetadata]]:
        """A copy of one group's offsets by topic and partition."""
        return {topic: dict(partitions) for topic, partitions in self._offsets.get(group_id, {}).items()}

    def entries(self) -> Iterator[tuple[str, str, int, OffsetAndMetadata]]:
        for group_id, topics in list(self._offsets.items()):
            for topic, partitions in list(topics.items()):
                for partition, offset in list(partitions.items()):
                    yield group_id, topic, partition, offset

    def has_group(self, group_id: str) -> bool:
        return group_id in self._offsets

    def snapshot(self) -> dict[tuple[str, str, int], OffsetAndMetadata]:
        return {(group, topic, partition): offset for group, topic, partition, offset in self.entries()}


def validate_offset_commit(
    group: ClassicGroup, member_id: str, group_instance_id: str | None, generation_id: int
) -> ErrorCode:
    """The commit fence for an existing group (rules 1-5 of the module docstring)."""
    if group.is_in(GroupState.DEAD):
        return Errors.COORDINATOR_NOT_AVAILABLE
    if generation_id < 0 and group.is_in(GroupState.EMPTY):
        return Errors.NONE
    if generation_id >= 0 or member_id != "" or group_instance_id is not None:
        member_error = validate_member(group, member_id, group_instance_id)
        if member_error is not Errors.NONE:
            return member_error
        if generation_id != group.generation_id:
            return Errors.ILLEGAL_GENERATION
    elif not group.is_in(GroupState.EMPTY):
        return Errors.UNKNOWN_MEMBER_ID
    if group.is_in(GroupState.COMPLETING_REBALANCE):
        return Errors.REBALANCE_IN_PROGRESS
    return Errors.NONE


def validate_member(group: ClassicGroup, member_id: str, group_instance_id: str | None) -> ErrorCode:
    """Kafka's ``validateMember``: is this (member id, instance id) a current member? (KIP-345)"""
    if group_instance_id is not None:
        current = group.static_member_id(group_instance_id)
        if current is None:
            return Errors.UNKNOWN_MEMBER_ID
        if current != member_id:
            return Errors.FENCED_INSTANCE_ID
    if not group.has_member(member_id):
        return Errors.UNKNOWN_MEMBER_ID
    return Errors.NONE


def java_string_length(text: str) -> int:
    """``String.length()`` in Java: UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def expiration_base(group: ClassicGroup, offset: OffsetAndMetadata) -> int | None:
    """The time retention counts from for ``offset`` in ``group``, or None if it cannot expire now."""
    if group.protocol_type is None:
        return offset.commit_timestamp_ms
    if group.is_in(GroupState.EMPTY):
        return (
            offset.commit_timestamp_ms
            if group.current_state_timestamp is None
            else group.current_state_timestamp
        )
    if (
        group.uses_consumer_protocol()
        and group.subscribed_topics is not None
        and group.is_in(GroupState.STABLE)
    ):
        return offset.commit_timestamp_ms
    return None


def is_expired(
    group: ClassicGroup, topic: str, offset: OffsetAndMetadata, now_ms: int, retention_ms: int
) -> bool:
    if group.protocol_type is not None and group.is_subscribed_to_topic(topic):
        return False
    base = expiration_base(group, offset)
    if base is None:
        return False
    if offset.expire_timestamp_ms is not None:
        return now_ms >= offset.expire_timestamp_ms
    return now_ms - base >= retention_ms
