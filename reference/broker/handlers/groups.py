"""Consumer-group APIs: the wire side of the group coordinator.

Each handler translates a decoded request into the coordinator's plain request value
(``reference.broker.group.messages``), asks the coordinator, and translates the answer back into
the response of the request's version.  The rules themselves (generations, fencing, rebalances)
live in the coordinator; what lives here is only what the wire versions change:

* FindCoordinator v0-3 asks for one key and answers at the top level; v4+ (KIP-699) asks for a
  batch of keys and answers per key.  Key type 0 is a group; 1 a transactional id, for which this
  broker has no coordinator yet (COORDINATOR_NOT_AVAILABLE, which clients retry).
  In a cluster each group key is answered with the leader of its ``__consumer_offsets``
  partition, or COORDINATOR_NOT_AVAILABLE while there is none (``GroupService.find_coordinator``).
* JoinGroup and SyncGroup answer later: the handler returns a Pending the coordinator completes.
* OffsetCommit, Heartbeat, LeaveGroup, DeleteGroups and OffsetDelete are write operations: they
  are answered once the group's partition has committed what was written
  (``GroupService.when_committed``; at once on one node).  If that fails, the response carries
  Kafka's mapping of the failure (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, ...) where the API
  reports errors: every partition (OffsetCommit), every group (DeleteGroups), the top level (the
  others).
* LeaveGroup before v3 names one member and reports its error at the top level.
* OffsetFetch v8+ asks for several groups at once; before v8, for one at the top level.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ...errors import ErrorCode, Errors
from ...protocol.apis import API_BY_KEY
from ...protocol.frames import Request
from ...protocol.primitives import ZERO_UUID
from ...protocol.schema import Data
from ..group import messages as m
from ..group.completion import WriteCompletion, all_of, append_error_to_response_error
from ..pending import Pending

if TYPE_CHECKING:
    from ..core import Broker

FIND_COORDINATOR = API_BY_KEY[10]
JOIN_GROUP = API_BY_KEY[11]
HEARTBEAT = API_BY_KEY[12]
LEAVE_GROUP = API_BY_KEY[13]
SYNC_GROUP = API_BY_KEY[14]
DESCRIBE_GROUPS = API_BY_KEY[15]
LIST_GROUPS = API_BY_KEY[16]
OFFSET_COMMIT = API_BY_KEY[8]
OFFSET_FETCH = API_BY_KEY[9]
DELETE_GROUPS = API_BY_KEY[42]
OFFSET_DELETE = API_BY_KEY[47]

KEY_TYPE_GROUP = 0
KEY_TYPE_TRANSACTION = 1
TOPIC_IDS_IN_OFFSET_COMMIT = 10
NULLABLE_PROTOCOL_NAME_VERSION = 7  # JoinGroup v7+: the protocol name may be null (KIP-559)


def _when_committed(completion: WriteCompletion, answer: Callable[[ErrorCode], Data]) -> Data | Pending:
    """``answer(error)`` once ``completion`` is done -- now, or as a Pending.  ``error`` is NONE or
    the failure as Kafka's coordinator reports it (``append_error_to_response_error``)."""
    if completion.error is not None:
        return answer(append_error_to_response_error(completion.error))
    pending = Pending()
    completion.on_done(lambda error, _: pending.complete(answer(append_error_to_response_error(error))))
    return pending


# -- FindCoordinator (10) ------------------------------------------------------------------------


def handle_find_coordinator(broker: Broker, request: Request, now_ms: int) -> Data:
    body = request.body
    keys = list(body.coordinator_keys) if request.version >= 4 else [body.key]
    answers: list[tuple[ErrorCode, tuple[int, str, int]]] = []
    for key in keys:
        if body.key_type == KEY_TYPE_GROUP:
            broker.groups.tick(now_ms)
            error, endpoint = broker.groups.find_coordinator(key, now_ms)
        elif body.key_type == KEY_TYPE_TRANSACTION:
            error, endpoint = broker.transactions.find_coordinator(key, now_ms)
        else:
            error, endpoint = Errors.COORDINATOR_NOT_AVAILABLE, None
        answers.append((error, endpoint if endpoint is not None else (-1, "", -1)))

    def message(error: ErrorCode) -> str | None:
        return None if error is Errors.NONE else "The coordinator is not available."

    if request.version >= 4:
        entry = FIND_COORDINATOR.response.struct("Coordinator")
        return FIND_COORDINATOR.response.make(coordinators=[
            entry.make(key=key, node_id=node_id, host=host, port=port, error_code=error.code,
                       error_message=message(error))
            for key, (error, (node_id, host, port)) in zip(keys, answers, strict=True)
        ])
    error, (node_id, host, port) = answers[0]
    return FIND_COORDINATOR.response.make(error_code=error.code, error_message=message(error),
                                          node_id=node_id, host=host, port=port)


# -- JoinGroup (11), SyncGroup (14), Heartbeat (12), LeaveGroup (13) -------------------------------


def handle_join_group(broker: Broker, request: Request, now_ms: int) -> Pending:
    body = request.body
    broker.groups.tick(now_ms)
    join = m.JoinGroupRequest(
        group_id=body.group_id, session_timeout_ms=body.session_timeout_ms, member_id=body.member_id,
        protocol_type=body.protocol_type,
        protocols=[m.JoinGroupProtocol(p.name, p.metadata) for p in body.protocols],
        rebalance_timeout_ms=body.rebalance_timeout_ms if request.version >= 1 else body.session_timeout_ms,
        group_instance_id=body.group_instance_id, reason=body.reason, api_version=request.version,
        client_id=request.header.client_id or "", client_host="/127.0.0.1",
    )
    pending = Pending()
    member = JOIN_GROUP.response.struct("JoinGroupResponseMember")

    nullable_protocol = request.version >= NULLABLE_PROTOCOL_NAME_VERSION

    def respond(result: m.JoinGroupResult) -> None:
        protocol_name = result.protocol_name if nullable_protocol else result.protocol_name or ""
        pending.complete(JOIN_GROUP.response.make(
            error_code=result.error.code, generation_id=result.generation_id,
            protocol_type=result.protocol_type, protocol_name=protocol_name,
            leader=result.leader, skip_assignment=result.skip_assignment, member_id=result.member_id,
            members=[member.make(member_id=x.member_id, group_instance_id=x.group_instance_id, metadata=x.metadata)
                     for x in result.members],
        ))

    broker.groups.coordinator.join(join, now_ms, respond)
    return pending


def handle_sync_group(broker: Broker, request: Request, now_ms: int) -> Pending:
    body = request.body
    broker.groups.tick(now_ms)
    sync = m.SyncGroupRequest(
        group_id=body.group_id, generation_id=body.generation_id, member_id=body.member_id,
        group_instance_id=body.group_instance_id, protocol_type=body.protocol_type,
        protocol_name=body.protocol_name,
        assignments=[m.SyncGroupAssignment(a.member_id, a.assignment) for a in body.assignments],
        api_version=request.version,
    )
    pending = Pending()

    def respond(result: m.SyncGroupResult) -> None:
        pending.complete(SYNC_GROUP.response.make(
            error_code=result.error.code, protocol_type=result.protocol_type,
            protocol_name=result.protocol_name, assignment=result.assignment,
        ))

    broker.groups.coordinator.sync(sync, now_ms, respond)
    return pending


def handle_heartbeat(broker: Broker, request: Request, now_ms: int) -> Data | Pending:
    body = request.body
    broker.groups.tick(now_ms)
    result = broker.groups.coordinator.heartbeat(m.HeartbeatRequest(
        group_id=body.group_id, generation_id=body.generation_id, member_id=body.member_id,
        group_instance_id=body.group_instance_id, api_version=request.version,
    ), now_ms)
    return _when_committed(
        broker.groups.when_committed(body.group_id, now_ms),
        lambda error: HEARTBEAT.response.make(error_code=(result.error if error is Errors.NONE else error).code),
    )


def handle_leave_group(broker: Broker, request: Request, now_ms: int) -> Data | Pending:
    body = request.body
    broker.groups.tick(now_ms)
    if request.version >= 3:
        members = [m.MemberIdentity(x.member_id, x.group_instance_id, x.reason) for x in body.members]
    else:
        members = [m.MemberIdentity(body.member_id)]
    result = broker.groups.coordinator.leave(m.LeaveGroupRequest(body.group_id, members, request.version), now_ms)
    response = LEAVE_GROUP.response.struct("MemberResponse")

    def answer(error: ErrorCode) -> Data:
        if error is not Errors.NONE:
            return LEAVE_GROUP.response.make(error_code=error.code, members=[])
        return LEAVE_GROUP.response.make(
            error_code=result.error.code,
            members=[response.make(member_id=x.member_id, group_instance_id=x.group_instance_id,
                                   error_code=x.error.code)
                     for x in result.members],
        )

    return _when_committed(broker.groups.when_committed(body.group_id, now_ms), answer)


# -- DescribeGroups (15), ListGroups (16), DeleteGroups (42) ---------------------------------------


def handle_describe_groups(broker: Broker, request: Request, now_ms: int) -> Data:
    described = broker.groups.coordinator.describe_groups(list(request.body.groups), request.version)
    group = DESCRIBE_GROUPS.response.struct("DescribedGroup")
    member = DESCRIBE_GROUPS.response.struct("DescribedGroupMember")
    return DESCRIBE_GROUPS.response.make(groups=[
        group.make(
            error_code=g.error.code, error_message=_describe_error_message(g.group_id, g.error),
            group_id=g.group_id, group_state=g.group_state, protocol_type=g.protocol_type,
            protocol_data=g.protocol_data,
            members=[member.make(member_id=x.member_id, group_instance_id=x.group_instance_id,
                                 client_id=x.client_id, client_host=x.client_host,
                                 member_metadata=x.member_metadata, member_assignment=x.member_assignment)
                     for x in g.members],
        )
        for g in described
    ])


def _describe_error_message(group_id: str, error: ErrorCode) -> str | None:
    """DescribeGroups v6 (KIP-1043): an unknown group is GROUP_ID_NOT_FOUND with Kafka's
    "Group G not found."; other errors carry their name."""
    if error is Errors.NONE:
        return None
    if error is Errors.GROUP_ID_NOT_FOUND:
        return f"Group {group_id} not found."
    return error.name


def handle_list_groups(broker: Broker, request: Request, now_ms: int) -> Data:
    body = request.body
    states = body.states_filter if request.version >= 4 else []
    types = {t.lower() for t in body.types_filter} if request.version >= 5 else set()
    error = broker.groups.coordinator.list_groups_error()
    listed = broker.groups.coordinator.list_groups(states) if error is Errors.NONE else []
    entry = LIST_GROUPS.response.struct("ListedGroup")
    return LIST_GROUPS.response.make(error_code=error.code, groups=[
        entry.make(group_id=g.group_id, protocol_type=g.protocol_type, group_state=g.group_state,
                   group_type=g.group_type)
        for g in listed
        if not types or g.group_type.lower() in types
    ])


def handle_delete_groups(broker: Broker, request: Request, now_ms: int) -> Data | Pending:
    broker.groups.tick(now_ms)
    results = broker.groups.coordinator.delete_groups(list(request.body.groups_names), now_ms)
    entry = DELETE_GROUPS.response.struct("DeletableGroupResult")
    # Each group is answered when its own partition has committed; the response waits for all.
    written = [broker.groups.when_committed(r.group_id, now_ms) for r in results]

    def answer(_: ErrorCode) -> Data:
        errors = [append_error_to_response_error(w.error) if w.error is not None else Errors.UNKNOWN_SERVER_ERROR
                  for w in written]
        return DELETE_GROUPS.response.make(results=[
            entry.make(group_id=r.group_id, error_code=(r.error if error is Errors.NONE else error).code)
            for r, error in zip(results, errors, strict=True)
        ])

    return _when_committed(all_of(written, now_ms), answer)


# -- OffsetCommit (8), OffsetFetch (9), OffsetDelete (47) ------------------------------------------


def _topic_name(broker: Broker, name: str, topic_id: object) -> str | None:
    """OffsetCommit/OffsetFetch v10 name topics by id; older versions by name."""
    if name:
        return name
    topic = broker.topics.by_id(topic_id)  # type: ignore[arg-type]
    return topic.name if topic is not None else None


def handle_offset_commit(broker: Broker, request: Request, now_ms: int) -> Data | Pending:
    body = request.body
    broker.groups.tick(now_ms)
    topics: list[m.OffsetCommitRequestTopic] = []
    unknown: list[Data] = []
    for topic in body.topics:
        name = _topic_name(broker, topic.name, topic.topic_id)
        if name is None:
            unknown.append(topic)
            continue
        topics.append(m.OffsetCommitRequestTopic(name, [
            m.OffsetCommitRequestPartition(p.partition_index, p.committed_offset, p.committed_leader_epoch,
                                           p.committed_metadata)
            for p in topic.partitions
        ], topic_id=topic.topic_id if request.version >= TOPIC_IDS_IN_OFFSET_COMMIT else None))
    result = broker.groups.coordinator.commit_offsets(m.OffsetCommitRequest(
        group_id=body.group_id, topics=topics, generation_id_or_member_epoch=body.generation_id_or_member_epoch,
        member_id=body.member_id, group_instance_id=body.group_instance_id,
        retention_time_ms=body.retention_time_ms, api_version=request.version,
    ), now_ms)
    topic_entry = OFFSET_COMMIT.response.struct("OffsetCommitResponseTopic")
    partition_entry = OFFSET_COMMIT.response.struct("OffsetCommitResponsePartition")
    ids = {t.name: t.topic_id for t in broker.topics}

    def failed(error: ErrorCode) -> Data:
        """Kafka's OffsetCommitRequest.getErrorResponse: every partition asked for gets ``error``."""
        return OFFSET_COMMIT.response.make(topics=[
            topic_entry.make(name=t.name, topic_id=t.topic_id, partitions=[
                partition_entry.make(partition_index=p.partition_index, error_code=error.code) for p in t.partitions
            ])
            for t in body.topics
        ])

    answered = [
        topic_entry.make(name=t.name, topic_id=ids.get(t.name), partitions=[
            partition_entry.make(partition_index=p.partition_index, error_code=p.error.code) for p in t.partitions
        ])
        for t in result.topics
    ]
    answered += [
        topic_entry.make(name=t.name, topic_id=t.topic_id, partitions=[
            partition_entry.make(partition_index=p.partition_index, error_code=Errors.UNKNOWN_TOPIC_ID.code)
            for p in t.partitions
        ])
        for t in unknown
    ]
    return _when_committed(
        broker.groups.when_committed(body.group_id, now_ms),
        lambda error: OFFSET_COMMIT.response.make(topics=answered) if error is Errors.NONE else failed(error),
    )


def handle_offset_fetch(broker: Broker, request: Request, now_ms: int) -> Data:
    body = request.body
    unknown_ids: list[list[Data]] = []  # per asked group: v10 topics named by an id no topic has
    if request.version >= 8:
        asked = []
        for g in body.groups:
            topics: list[m.OffsetFetchRequestTopic] | None = None if g.topics is None else []
            unknown_ids.append([])
            for t in g.topics or []:
                name = _topic_name(broker, t.name, t.topic_id)
                if name is None and request.version >= TOPIC_IDS_IN_OFFSET_COMMIT:
                    unknown_ids[-1].append(t)
                else:
                    assert topics is not None
                    topics.append(m.OffsetFetchRequestTopic(name or "", list(t.partition_indexes)))
            asked.append(m.OffsetFetchRequestGroup(g.group_id, topics))
    else:
        asked = [m.OffsetFetchRequestGroup(body.group_id, None if body.topics is None else [
            m.OffsetFetchRequestTopic(t.name, list(t.partition_indexes)) for t in body.topics
        ])]
    answered = broker.groups.coordinator.fetch_offsets(asked)
    if request.version >= REQUIRE_STABLE_FROM and body.require_stable:
        answered = [_unstable_marked(broker, group) for group in answered]
    if request.version >= 8:
        return _offset_fetch_groups(broker, answered, unknown_ids)
    group = answered[0]
    topic_entry = OFFSET_FETCH.response.struct("OffsetFetchResponseTopic")
    partition_entry = OFFSET_FETCH.response.struct("OffsetFetchResponsePartition")
    return OFFSET_FETCH.response.make(
        error_code=group.error.code,
        topics=[topic_entry.make(name=t.name, partitions=[
            partition_entry.make(partition_index=p.partition_index, committed_offset=p.committed_offset,
                                 committed_leader_epoch=p.committed_leader_epoch, metadata=p.metadata,
                                 error_code=p.error.code)
            for p in t.partitions
        ]) for t in group.topics],
    )


REQUIRE_STABLE_FROM = 7  # KIP-447


def _unstable_marked(broker: Broker, group: m.OffsetFetchResponseGroup) -> m.OffsetFetchResponseGroup:
    """KIP-447 ``require_stable``: a partition an open transaction has offsets for is answered
    UNSTABLE_OFFSET_COMMIT (88, retriable) with offset -1, as Kafka 4.3.1 does."""
    pending = broker.groups.pending_transactional_offsets(group.group_id)
    if not pending:
        return group
    group.topics = [m.OffsetFetchResponseTopic(t.name, [
        m.OffsetFetchResponsePartition(p.partition_index, -1, error=Errors.UNSTABLE_OFFSET_COMMIT)
        if (t.name, p.partition_index) in pending else p for p in t.partitions]) for t in group.topics]
    return group


def _offset_fetch_groups(broker: Broker, answered: list[m.OffsetFetchResponseGroup],
                         unknown_ids: list[list[Data]]) -> Data:
    """v8+ answers; a v10 topic id no topic has is answered per partition with UNKNOWN_TOPIC_ID
    (100), offset -1, as Apache Kafka 4.3.1 does (found by ``refka fuzz``: it used to crash)."""
    group_entry = OFFSET_FETCH.response.struct("OffsetFetchResponseGroup")
    topic_entry = OFFSET_FETCH.response.struct("OffsetFetchResponseTopics")
    partition_entry = OFFSET_FETCH.response.struct("OffsetFetchResponsePartitions")
    ids = {t.name: t.topic_id for t in broker.topics}

    def unknown_topics(index: int, group: m.OffsetFetchResponseGroup) -> list[Data]:
        if group.error.code != Errors.NONE.code or index >= len(unknown_ids):
            return []
        return [topic_entry.make(name="", topic_id=t.topic_id, partitions=[
            partition_entry.make(partition_index=index, committed_offset=-1, committed_leader_epoch=-1,
                                 metadata="", error_code=Errors.UNKNOWN_TOPIC_ID.code)
            for index in t.partition_indexes
        ]) for t in unknown_ids[index]]

    return OFFSET_FETCH.response.make(groups=[
        group_entry.make(group_id=g.group_id, error_code=g.error.code, topics=[
            topic_entry.make(name=t.name, topic_id=ids.get(t.name, ZERO_UUID), partitions=[
                partition_entry.make(partition_index=p.partition_index, committed_offset=p.committed_offset,
                                     committed_leader_epoch=p.committed_leader_epoch, metadata=p.metadata,
                                     error_code=p.error.code)
                for p in t.partitions
            ])
            for t in g.topics
        ] + unknown_topics(index, g))
        for index, g in enumerate(answered)
    ])


def handle_offset_delete(broker: Broker, request: Request, now_ms: int) -> Data | Pending:
    body = request.body
    broker.groups.tick(now_ms)
    topics = [m.OffsetDeleteRequestTopic(t.name, [p.partition_index for p in t.partitions]) for t in body.topics]
    result = broker.groups.coordinator.delete_offsets(body.group_id, topics, now_ms)
    topic_entry = OFFSET_DELETE.response.struct("OffsetDeleteResponseTopic")
    partition_entry = OFFSET_DELETE.response.struct("OffsetDeleteResponsePartition")

    def answer(error: ErrorCode) -> Data:
        if error is not Errors.NONE:
            return OFFSET_DELETE.response.make(error_code=error.code, topics=[])
        return OFFSET_DELETE.response.make(error_code=result.error.code, topics=[
            topic_entry.make(name=t.name, partitions=[
                partition_entry.make(partition_index=p.partition_index, error_code=p.error.code)
                for p in t.partitions
            ])
            for t in result.topics
        ])

    return _when_committed(broker.groups.when_committed(body.group_id, now_ms), answer)
