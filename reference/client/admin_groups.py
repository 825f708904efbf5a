"""Consumer-group operations of the admin client, as generators of requests (see ``admin_core``).

Theory of operation
-------------------
A classic consumer group lives on one broker, its *coordinator*: the leader of the
``__consumer_offsets`` partition the group id hashes to.  FindCoordinator (key_type 0) names it;
every request about the group goes there (``AdminCore.send_to_coordinator``).

* **List** -- ListGroups asks *each* broker, which lists only the groups it coordinates; the
  answers are merged.  States come from v4 on, group types from v5 on (KIP-848).
* **Describe** -- DescribeGroups gives the state, the assignor and per member its client id, host
  and assignment.  The assignment bytes are opaque to the broker; for ``protocol_type
  "consumer"`` they are a ``ConsumerProtocolAssignment``, decoded here::

      version:INT16  assigned_partitions:[topic:STRING  partitions:[INT32]]  user_data:NULLABLE_BYTES

  (non-flexible in every version; versions 0-3 share this prefix).  An unknown group is
  GROUP_ID_NOT_FOUND (69) from DescribeGroups v6; before v6 it is described as "Dead" with no
  error, which refka reports as GROUP_ID_NOT_FOUND too, so both versions read the same.
* **Offsets and lag** -- OffsetFetch gives the committed offsets, ListOffsets (LATEST, -1) at each
  leader the log end offsets; lag = log end - committed (kafka-consumer-groups' LAG column).
* **Reset offsets** -- only for a group with no members: Kafka's tool refuses otherwise ("can only
  be reset if the group is inactive"), and so does this operation, raising NON_EMPTY_GROUP (68).
  The new offsets are committed with OffsetCommit as a "simple consumer" (generation -1, empty
  member id), which the coordinator accepts only for a group with no members.  Targets follow
  kafka-consumer-groups: ``--to-offset`` and ``--shift-by`` are clamped to [log start, log end];
  ``--to-datetime`` takes the first offset at or after the time, or the log end if there is none.
* **Delete** -- DeleteGroups: NON_EMPTY_GROUP (68) while members remain, GROUP_ID_NOT_FOUND (69).
  OffsetDelete removes some partitions' offsets: GROUP_SUBSCRIBED_TO_TOPIC (86) if a member still
  consumes the topic.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import Errors, KafkaError, lookup
from ..protocol.schema import Data
from .admin_core import (
    COORDINATOR_ERRORS,
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    TRANSPORT_ERRORS,
    ZERO_UUID,
    AdminCore,
    Backoff,
    Call,
    Operation,
    _make,
    _struct,
    error_codes,
    raise_error,
)
from .cluster import BrokerAddress, TopicPartition

OFFSET_COMMIT_KEY = 8
OFFSET_FETCH_KEY = 9
FIND_COORDINATOR_KEY = 10
DESCRIBE_GROUPS_KEY = 15
LIST_GROUPS_KEY = 16
DELETE_GROUPS_KEY = 42
OFFSET_DELETE_KEY = 47
GROUP_KEY_TYPE = 0  # FindCoordinator key_type: 0 = consumer group, 1 = transaction
NO_OFFSET = -1  # OffsetFetch: nothing committed for the partition
INACTIVE_STATES = frozenset({"Empty", "Dead"})


# -- results ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupListing:
    group_id: str
    protocol_type: str  # "consumer" for consumer groups, "" for offsets-only groups
    state: str  # "" before ListGroups v4
    group_type: str  # "classic" or "consumer" (KIP-848), "" before v5


@dataclass(frozen=True)
class MemberDescription:
    member_id: str
    group_instance_id: str | None  # static membership (KIP-345)
    client_id: str
    host: str
    assignment: tuple[TopicPartition, ...]


@dataclass(frozen=True)
class GroupDescription:
    group_id: str
    state: str  # Empty, PreparingRebalance, CompletingRebalance, Stable, Dead
    protocol_type: str
    protocol: str  # the assignor the group chose, e.g. "range"
    members: tuple[MemberDescription, ...]


@dataclass(frozen=True)
class PartitionLag:
    """One row of ``kafka-consumer-groups --describe``."""

    partition: TopicPartition
    committed_offset: int | None  # None: nothing committed
    log_end_offset: int
    member: MemberDescription | None

    @property
    def lag(self) -> int | None:
        return None if self.committed_offset is None else self.log_end_offset - self.committed_offset


@dataclass(frozen=True)
class ToEarliest:
    pass


@dataclass(frozen=True)
class ToLatest:
    pass


@dataclass(frozen=True)
class ToOffset:
    offset: int


@dataclass(frozen=True)
class ShiftBy:
    shift: int


@dataclass(frozen=True)
class ToDatetime:
    timestamp_ms: int


ResetSpec = ToEarliest | ToLatest | ToOffset | ShiftBy | ToDatetime


# -- ConsumerProtocolAssignment --------------------------------------------------------------------


def decode_consumer_assignment(data: bytes | None) -> tuple[TopicPartition, ...]:
    """The partitions of a ConsumerProtocolAssignment (grammar in the module docstring); empty for
    an empty or undecodable one (a member between rebalances has no assignment yet)."""
    if not data:
        return ()
    try:
        position = 2  # version:INT16; every version starts with the same fields
        (topic_count,) = struct.unpack_from(">i", data, position)
        position += 4
        assigned = []
        for _ in range(max(topic_count, 0)):
            (length,) = struct.unpack_from(">h", data, position)
            position += 2
            topic = bytes(data[position:position + length]).decode("utf-8")
            position += length
            (partition_count,) = struct.unpack_from(">i", data, position)
            position += 4
            for _ in range(max(partition_count, 0)):
                (partition,) = struct.unpack_from(">i", data, position)
                position += 4
                assigned.append(TopicPartition(topic, partition))
        return tuple(sorted(assigned, key=lambda tp: (tp.topic, tp.partition)))
    except (struct.error, UnicodeDecodeError):
        return ()


# -- routing to the coordinator --------------------------------------------------------------------


def find_coordinator(core: AdminCore, group_id: str) -> Operation[int]:
    """The coordinator's node id (its address goes into the metadata cache)."""
    while True:
        body = _make(FIND_COORDINATOR_KEY, key=group_id, key_type=GROUP_KEY_TYPE, coordinator_keys=[group_id])
        response = yield from core.send_any(FIND_COORDINATOR_KEY, body)
        answer = response.coordinators[0] if response.get("coordinators") else response
        error = lookup(answer.error_code)
        if error is Errors.NONE:
            core.metadata.brokers.setdefault(answer.node_id, BrokerAddress(answer.node_id, answer.host, answer.port))
            return int(answer.node_id)
        if not error.retriable:  # COORDINATOR_NOT_AVAILABLE while __consumer_offsets is created
            raise_error(answer.error_code, answer.get("error_message"), f"group {group_id}")
        yield Backoff(core.retry_backoff_ms)


def send_to_coordinator(core: AdminCore, group_id: str, api_key: int, body: Data) -> Operation[Data]:
    while True:
        node = yield from find_coordinator(core, group_id)
        try:
            response = yield from core.send(node, api_key, body)
        except TRANSPORT_ERRORS:
            yield Backoff(core.retry_backoff_ms)
            continue
        if error_codes(response) & COORDINATOR_ERRORS:
            yield Backoff(core.retry_backoff_ms)
            continue
        return response


# -- operations ------------------------------------------------------------------------------------


def list_groups(core: AdminCore) -> Operation[list[GroupListing]]:
    """Every group of the cluster: ListGroups at each broker, merged and sorted by id."""
    if not core.metadata.brokers:
        yield from core.fetch_metadata([])
    calls = [Call(node, LIST_GROUPS_KEY, _make(LIST_GROUPS_KEY, states_filter=[], types_filter=[]),
                  core.request_timeout_ms) for node in sorted(core.metadata.brokers)]
    outcomes = yield from core.send_all(calls)
    groups: dict[str, GroupListing] = {}
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            raise outcome
        raise_error(outcome.error_code, None, "ListGroups")
        for g in outcome.groups:
            groups[g.group_id] = GroupListing(g.group_id, g.protocol_type, g.get("group_state", ""),
                                              g.get("group_type", ""))
    return [groups[name] for name in sorted(groups)]


def describe_group(core: AdminCore, group_id: str) -> Operation[GroupDescription]:
    """DescribeGroups at the coordinator; GROUP_ID_NOT_FOUND (69) for a group that does not exist."""
    body = _make(DESCRIBE_GROUPS_KEY, groups=[group_id], include_authorized_operations=False)
    response = yield from send_to_coordinator(core, group_id, DESCRIBE_GROUPS_KEY, body)
    (group,) = response.groups
    raise_error(group.error_code, group.get("error_message"), f"group {group_id}")
    if group.group_state == "Dead":
        raise KafkaError(Errors.GROUP_ID_NOT_FOUND, f"group {group_id}: Group {group_id} not found.")
    members = tuple(MemberDescription(
        m.member_id, m.get("group_instance_id"), m.client_id, m.client_host,
        decode_consumer_assignment(m.member_assignment) if group.protocol_type == "consumer" else ())
        for m in group.members)
    return GroupDescription(group.group_id, group.group_state, group.protocol_type, group.protocol_data, members)


def committed_offsets(core: AdminCore, group_id: str) -> Operation[dict[TopicPartition, int]]:
    """Every committed offset of the group (OffsetFetch with topics null: all of them)."""
    names = yield from core.topic_names_by_id()  # OffsetFetch v10 answers with topic ids
    body = _make(OFFSET_FETCH_KEY, group_id=group_id, topics=None, require_stable=False, groups=[
        _struct(OFFSET_FETCH_KEY, "OffsetFetchRequestGroup", group_id=group_id, topics=None)])
    response = yield from send_to_coordinator(core, group_id, OFFSET_FETCH_KEY, body)
    if response.get("groups"):
        (group,) = response.groups
        raise_error(group.error_code, None, f"group {group_id}")
        topics = group.topics
    else:
        raise_error(response.get("error_code", 0), None, f"group {group_id}")
        topics = response.topics
    offsets: dict[TopicPartition, int] = {}
    for topic in topics:
        name = topic.get("name") or names.get(topic.get("topic_id", ZERO_UUID), "")
        for p in topic.partitions:
            tp = TopicPartition(name, p.partition_index)
            raise_error(p.error_code, None, f"partition {tp}")
            if p.committed_offset != NO_OFFSET and name:
                offsets[tp] = p.committed_offset
    return offsets


def describe_offsets(core: AdminCore, group_id: str) -> Operation[tuple[GroupDescription | None, list[PartitionLag]]]:
    """The rows of ``kafka-consumer-groups --describe``: every partition that a member is assigned
    or that has a committed offset, with its log end offset and lag.  The description is None for a
    group that has only committed offsets and no record of members (never described as a group)."""
    try:
        description: GroupDescription | None = yield from describe_group(core, group_id)
    except KafkaError as error:
        if error.error is not Errors.GROUP_ID_NOT_FOUND:
            raise
        description = None
    committed = yield from committed_offsets(core, group_id)
    if description is None and not committed:
        raise KafkaError(Errors.GROUP_ID_NOT_FOUND, f"group {group_id}: Group {group_id} not found.")
    owner = {tp: m for m in (description.members if description else ()) for tp in m.assignment}
    partitions = sorted(set(committed) | set(owner), key=lambda tp: (tp.topic, tp.partition))
    ends = yield from core.list_offsets({tp: LATEST_TIMESTAMP for tp in partitions})
    rows = [PartitionLag(tp, committed.get(tp), ends[tp][0], owner.get(tp)) for tp in partitions]
    return description, rows


def reset_offsets(core: AdminCore, group_id: str, partitions: Iterable[TopicPartition], spec: ResetSpec,
                  execute: bool) -> Operation[dict[TopicPartition, int]]:
    """The new offset of each partition; committed only when ``execute`` (else a dry run).
    NON_EMPTY_GROUP (68) if the group has members; UNKNOWN_TOPIC_OR_PARTITION (3)."""
    try:
        description = yield from describe_group(core, group_id)
        if description.state not in INACTIVE_STATES:
            raise KafkaError(Errors.NON_EMPTY_GROUP, (
                f"Assignments can only be reset if the group '{group_id}' is inactive, "
                f"but the current state is {description.state}."))
    except KafkaError as error:
        if error.error is not Errors.GROUP_ID_NOT_FOUND:
            raise
    wanted = sorted(set(partitions), key=lambda tp: (tp.topic, tp.partition))
    targets = yield from _reset_targets(core, group_id, wanted, spec)
    if execute:
        yield from commit_offsets(core, group_id, targets)
    return targets


def _reset_targets(core: AdminCore, group_id: str, partitions: Sequence[TopicPartition],
                   spec: ResetSpec) -> Operation[dict[TopicPartition, int]]:
    if isinstance(spec, ToEarliest | ToLatest):
        stamp = EARLIEST_TIMESTAMP if isinstance(spec, ToEarliest) else LATEST_TIMESTAMP
        found = yield from core.list_offsets({tp: stamp for tp in partitions})
        return {tp: found[tp][0] for tp in partitions}
    earliest = yield from core.list_offsets({tp: EARLIEST_TIMESTAMP for tp in partitions})
    latest = yield from core.list_offsets({tp: LATEST_TIMESTAMP for tp in partitions})

    def clamp(tp: TopicPartition, offset: int) -> int:
        return max(earliest[tp][0], min(latest[tp][0], offset))

    if isinstance(spec, ToOffset):
        return {tp: clamp(tp, spec.offset) for tp in partitions}
    if isinstance(spec, ShiftBy):
        committed = yield from committed_offsets(core, group_id)
        missing = [str(tp) for tp in partitions if tp not in committed]
        if missing:
            raise KafkaError(Errors.INVALID_REQUEST, (
                f"cannot shift the offset of {', '.join(missing)}: the group has no committed offset there"))
        return {tp: clamp(tp, committed[tp] + spec.shift) for tp in partitions}
    by_time = yield from core.list_offsets({tp: spec.timestamp_ms for tp in partitions})
    return {tp: by_time[tp][0] if by_time[tp][0] >= 0 else latest[tp][0] for tp in partitions}


def commit_offsets(core: AdminCore, group_id: str, offsets: Mapping[TopicPartition, int]) -> Operation[None]:
    """OffsetCommit as a simple consumer (generation -1, no member): Kafka's
    ``alterConsumerGroupOffsets``.  The coordinator refuses it while the group has members."""
    topic_ids: dict[str, uuid.UUID] = {}
    if offsets:
        yield from core.fetch_metadata(sorted({tp.topic for tp in offsets}))
        topic_ids = {name: core.metadata.topic_id(name) for name in {tp.topic for tp in offsets}}
    topics: dict[str, list[Data]] = {}
    for tp, offset in sorted(offsets.items(), key=lambda item: (item[0].topic, item[0].partition)):
        topics.setdefault(tp.topic, []).append(_struct(
            OFFSET_COMMIT_KEY, "OffsetCommitRequestPartition", partition_index=tp.partition,
            committed_offset=offset, committed_leader_epoch=-1, commit_timestamp=-1, committed_metadata=""))
    body = _make(OFFSET_COMMIT_KEY, group_id=group_id, generation_id_or_member_epoch=-1, member_id="",
                 group_instance_id=None, retention_time_ms=-1, topics=[
                     _struct(OFFSET_COMMIT_KEY, "OffsetCommitRequestTopic", name=name,
                             topic_id=topic_ids.get(name, ZERO_UUID), partitions=parts)
                     for name, parts in topics.items()])
    response = yield from send_to_coordinator(core, group_id, OFFSET_COMMIT_KEY, body)
    names = {topic_id: name for name, topic_id in topic_ids.items()}
    for topic in response.topics:
        name = topic.get("name") or names.get(topic.get("topic_id", ZERO_UUID), "?")
        for p in topic.partitions:
            raise_error(p.error_code, None, f"group {group_id} partition {name}-{p.partition_index}")


def delete_groups(core: AdminCore, group_ids: Sequence[str]) -> Operation[None]:
    """DeleteGroups at each group's coordinator; NON_EMPTY_GROUP (68), GROUP_ID_NOT_FOUND (69)."""
    for group_id in group_ids:
        response = yield from send_to_coordinator(core, group_id, DELETE_GROUPS_KEY,
                                                  _make(DELETE_GROUPS_KEY, groups_names=[group_id]))
        for result in response.results:
            raise_error(result.error_code, None, f"group {result.group_id}")


def delete_group_offsets(core: AdminCore, group_id: str, partitions: Iterable[TopicPartition]) -> Operation[None]:
    """OffsetDelete (KIP-496); GROUP_SUBSCRIBED_TO_TOPIC (86) while a member consumes the topic."""
    topics: dict[str, list[Data]] = {}
    for tp in sorted(set(partitions), key=lambda tp: (tp.topic, tp.partition)):
        topics.setdefault(tp.topic, []).append(
            _struct(OFFSET_DELETE_KEY, "OffsetDeleteRequestPartition", partition_index=tp.partition))
    body = _make(OFFSET_DELETE_KEY, group_id=group_id, topics=[
        _struct(OFFSET_DELETE_KEY, "OffsetDeleteRequestTopic", name=name, partitions=parts)
        for name, parts in topics.items()])
    response = yield from send_to_coordinator(core, group_id, OFFSET_DELETE_KEY, body)
    raise_error(response.error_code, None, f"group {group_id}")
    for topic in response.topics:
        for p in topic.partitions:
            raise_error(p.error_code, None, f"group {group_id} partition {topic.name}-{p.partition_index}")


__all__ = [
    "GroupDescription", "GroupListing", "MemberDescription", "PartitionLag", "ResetSpec",
    "ShiftBy", "ToDatetime", "ToEarliest", "ToLatest", "ToOffset", "commit_offsets", "committed_offsets",
    "decode_consumer_assignment", "delete_group_offsets", "delete_groups", "describe_group",
    "describe_offsets", "find_coordinator", "list_groups", "reset_offsets",
]
