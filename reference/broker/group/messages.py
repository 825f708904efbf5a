"""Inputs and outputs of the group coordinator: plain dataclasses with Kafka's field names.

The field names are those of Kafka's request/response JSON schemas (``JoinGroupRequest.json``, ...)
in snake_case, so the protocol layer maps them one to one.  Only the fields the coordinator reads
or answers are here (no throttle times, no tagged fields).  ``api_version`` is carried where the
coordinator's behaviour depends on it:

* JoinGroup v0 has no rebalance timeout (the session timeout stands in), v4+ requires a known
  member id (KIP-394: MEMBER_ID_REQUIRED), v5+ carries ``group_instance_id`` (KIP-345), v9+ lets a
  rejoining static leader skip the assignment (``skip_assignment``).
* SyncGroup v5+ carries ``protocol_type`` / ``protocol_name``, checked against the group's.
* LeaveGroup v3+ carries a batch of members; before v3 the single member's error is the
  response's top-level error.
* OffsetCommit v9+ answers GROUP_ID_NOT_FOUND (older: ILLEGAL_GENERATION) for an unknown group.
* DescribeGroups v6+ answers GROUP_ID_NOT_FOUND for an unknown group (KIP-1043).

Errors are :class:`reference.errors.ErrorCode` values; ``Errors.NONE`` means success.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from reference.errors import ErrorCode, Errors

UNKNOWN_MEMBER_ID = ""  # Kafka's JoinGroupRequest.UNKNOWN_MEMBER_ID
NO_GENERATION = -1
NO_OFFSET = -1
NO_LEADER_EPOCH = -1


# --- JoinGroup (API key 11) ----------------------------------------------------------------------


@dataclass(frozen=True)
class JoinGroupProtocol:
    name: str
    metadata: bytes


@dataclass
class JoinGroupRequest:
    group_id: str
    session_timeout_ms: int
    member_id: str
    protocol_type: str
    protocols: list[JoinGroupProtocol]
    rebalance_timeout_ms: int = -1
    group_instance_id: str | None = None
    reason: str | None = None
    api_version: int = 9
    client_id: str = ""
    client_host: str = ""


@dataclass(frozen=True)
class JoinGroupMember:
    member_id: str
    group_instance_id: str | None
    metadata: bytes


@dataclass
class JoinGroupResult:
    error: ErrorCode
    member_id: str
    generation_id: int = NO_GENERATION
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    skip_assignment: bool = False
    members: list[JoinGroupMember] = field(default_factory=list)


# --- SyncGroup (API key 14) ----------------------------------------------------------------------


@dataclass(frozen=True)
class SyncGroupAssignment:
    member_id: str
    assignment: bytes


@dataclass
class SyncGroupRequest:
    group_id: str
    generation_id: int
    member_id: str
    group_instance_id: str | None = None
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignments: list[SyncGroupAssignment] = field(default_factory=list)
    api_version: int = 5


@dataclass
class SyncGroupResult:
    error: ErrorCode
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


# --- Heartbeat (API key 12) ----------------------------------------------------------------------


@dataclass
class HeartbeatRequest:
    group_id: str
    generation_id: int
    member_id: str
    group_instance_id: str | None = None
    api_version: int = 4


@dataclass
class HeartbeatResult:
    error: ErrorCode


# --- LeaveGroup (API key 13) ---------------------------------------------------------------------


@dataclass(frozen=True)
class MemberIdentity:
    member_id: str
    group_instance_id: str | None = None
    reason: str | None = None


@dataclass
class LeaveGroupRequest:
    group_id: str
    members: list[MemberIdentity]
    api_version: int = 5


@dataclass(frozen=True)
class LeaveGroupMemberResult:
    member_id: str
    group_instance_id: str | None
    error: ErrorCode


@dataclass
class LeaveGroupResult:
    error: ErrorCode
    members: list[LeaveGroupMemberResult] = field(default_factory=list)


# --- DescribeGroups (15), ListGroups (16), DeleteGroups (42) -------------------------------------


@dataclass(frozen=True)
class DescribedGroupMember:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    member_metadata: bytes
    member_assignment: bytes


@dataclass
class DescribedGroup:
    group_id: str
    group_state: str
    error: ErrorCode = Errors.NONE
    protocol_type: str = ""
    protocol_data: str = ""
    members: list[DescribedGroupMember] = field(default_factory=list)


@dataclass(frozen=True)
class ListedGroup:
    group_id: str
    protocol_type: str
    group_state: str
    group_type: str = "classic"


@dataclass(frozen=True)
class DeletableGroupResult:
    group_id: str
    error: ErrorCode


# --- OffsetCommit (API key 8) --------------------------------------------------------------------


@dataclass(frozen=True)
class OffsetCommitRequestPartition:
    partition_index: int
    committed_offset: int
    committed_leader_epoch: int = NO_LEADER_EPOCH
    committed_metadata: str | None = ""


@dataclass(frozen=True)
class OffsetCommitRequestTopic:
    name: str
    partitions: list[OffsetCommitRequestPartition]
    topic_id: uuid.UUID | None = None  # v10+ (or resolved by the broker): kept in the record


@dataclass
class OffsetCommitRequest:
    group_id: str
    topics: list[OffsetCommitRequestTopic]
    generation_id_or_member_epoch: int = NO_GENERATION
    member_id: str = UNKNOWN_MEMBER_ID
    group_instance_id: str | None = None
    retention_time_ms: int = -1  # v2-v4 only; -1 = broker default (offsets.retention.minutes)
    api_version: int = 9


@dataclass(frozen=True)
class OffsetCommitResponsePartition:
    partition_index: int
    error: ErrorCode


@dataclass(frozen=True)
class OffsetCommitResponseTopic:
    name: str
    partitions: list[OffsetCommitResponsePartition]


@dataclass
class OffsetCommitResult:
    topics: list[OffsetCommitResponseTopic]


# --- OffsetFetch (API key 9) ---------------------------------------------------------------------


@dataclass(frozen=True)
class OffsetFetchRequestTopic:
    name: str
    partition_indexes: list[int]


@dataclass(frozen=True)
class OffsetFetchRequestGroup:
    group_id: str
    topics: list[OffsetFetchRequestTopic] | None = None  # None = every committed partition


@dataclass(frozen=True)
class OffsetFetchResponsePartition:
    partition_index: int
    committed_offset: int
    committed_leader_epoch: int = NO_LEADER_EPOCH
    metadata: str = ""
    error: ErrorCode = Errors.NONE


@dataclass(frozen=True)
class OffsetFetchResponseTopic:
    name: str
    partitions: list[OffsetFetchResponsePartition]


@dataclass
class OffsetFetchResponseGroup:
    group_id: str
    topics: list[OffsetFetchResponseTopic]
    error: ErrorCode = Errors.NONE


# --- OffsetDelete (API key 47) -------------------------------------------------------------------


@dataclass(frozen=True)
class OffsetDeleteRequestTopic:
    name: str
    partition_indexes: list[int]


@dataclass(frozen=True)
class OffsetDeleteResponsePartition:
    partition_index: int
    error: ErrorCode


@dataclass(frozen=True)
class OffsetDeleteResponseTopic:
    name: str
    partitions: list[OffsetDeleteResponsePartition]


@dataclass
class OffsetDeleteResult:
    error: ErrorCode
    topics: list[OffsetDeleteResponseTopic] = field(default_factory=list)
