"""The consumer core driven without sockets: scripted broker answers, one rule per test.

Each test plays the broker's side of an exchange Kafka's protocol defines (MEMBER_ID_REQUIRED,
a heartbeat told REBALANCE_IN_PROGRESS or ILLEGAL_GENERATION, NOT_COORDINATOR, a fenced leader
epoch, a preferred read replica) and checks what the core sends next.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from reference.client.cluster import TopicPartition
from reference.client.consumer_config import ConsumerConfig
from reference.client.consumer_core import ConsumerCore
from reference.client.consumer_protocol import Assignment, decode_subscription, encode_assignment
from reference.client.outbox import OutboundRequest
from reference.client.subscriptions import FetchState
from reference.errors import Errors
from reference.protocol.apis import API_BY_KEY
from reference.protocol.schema import Data
from reference.records.batch import SimpleRecord, build_batch

TOPIC = "orders"
TOPIC_ID = uuid.UUID(int=7)
TP0 = TopicPartition(TOPIC, 0)
METADATA, FETCH, LIST_OFFSETS, OFFSET_COMMIT, OFFSET_FETCH, FIND_COORDINATOR = 3, 1, 2, 8, 9, 10
JOIN_GROUP, HEARTBEAT, SYNC_GROUP, OFFSET_FOR_LEADER_EPOCH = 11, 12, 14, 23
COORDINATOR_CONNECTION = 2**31 - 1 - 1

Handler = Callable[[OutboundRequest], Data | None]


def response(api_key: int, **fields: object) -> Data:
    return API_BY_KEY[api_key].response.make(**fields)


def struct(api_key: int, struct_name: str, **fields: object) -> Data:
    return API_BY_KEY[api_key].response.struct(struct_name).make(**fields)


def metadata_answer(leader: int = 1, leader_epoch: int = 0) -> Data:
    return response(METADATA, brokers=[struct(METADATA, "MetadataResponseBroker", node_id=n, host="h", port=9000 + n)
                                       for n in (1, 2)],
                    topics=[struct(METADATA, "MetadataResponseTopic", error_code=0, name=TOPIC, topic_id=TOPIC_ID,
                                   partitions=[struct(METADATA, "MetadataResponsePartition", error_code=0,
                                                      partition_index=0, leader_id=leader, leader_epoch=leader_epoch,
                                                      replica_nodes=[1, 2], isr_nodes=[1, 2])])])


def coordinator_answer(request: OutboundRequest) -> Data:
    return response(FIND_COORDINATOR, coordinators=[struct(FIND_COORDINATOR, "Coordinator", key="g", node_id=1,
                                                           host="h", port=9001, error_code=0)])


class ScriptedBroker:
    """Answers the core's requests with per-API handlers; a handler returning None holds it."""

    def __init__(self, core: ConsumerCore, handlers: dict[int, Handler]) -> None:
        self.core = core
        self.handlers = {METADATA: lambda r: metadata_answer(), FIND_COORDINATOR: coordinator_answer, **handlers}
        self.sent: list[OutboundRequest] = []
        self.held: list[OutboundRequest] = []
        self.now_ms = 1_000

    def run(self, rounds: int = 10, step_ms: int = 10) -> None:
        for _ in range(rounds):
            self.now_ms += step_ms
            self.core.poll(self.now_ms)
            for request in self.core.outbox.drain():
                self.sent.append(request)
                handler = self.handlers.get(request.api_key)
                answer = None if handler is None else handler(request)
                if answer is None:
                    self.held.append(request)
                else:
                    request.complete(answer, self.now_ms)

    def requests(self, api_key: int) -> list[OutboundRequest]:
        return [r for r in self.sent if r.api_key == api_key]


def group_core(**extra: object) -> ConsumerCore:
    core = ConsumerCore(ConsumerConfig.from_properties({
        "bootstrap.servers": "h:9001", "group.id": "g", "heartbeat.interval.ms": 100,
        "partition.assignment.strategy": "range", "enable.auto.commit": "false", **extra}))
    core.subscribe([TOPIC])
    return core


def join_ok(member_id: str = "m-1", generation: int = 1) -> Handler:
    def handle(request: OutboundRequest) -> Data:
        members = [struct(JOIN_GROUP, "JoinGroupResponseMember", member_id=member_id,
                          metadata=request.body.protocols[0].metadata)]
        return response(JOIN_GROUP, error_code=0, generation_id=generation, protocol_name="range",
                        leader=member_id, member_id=member_id, members=members)
    return handle


def sync_ok(request: OutboundRequest) -> Data:
    assignment = request.body.assignments[0].assignment if request.body.assignments else b""
    return response(SYNC_GROUP, error_code=0, assignment=assignment)


def no_commits(request: OutboundRequest) -> Data:
    topic = struct(OFFSET_FETCH, "OffsetFetchResponseTopic", name=TOPIC, partitions=[
        struct(OFFSET_FETCH, "OffsetFetchResponsePartition", partition_index=0, committed_offset=-1, error_code=0)])
    group = struct(OFFSET_FETCH, "OffsetFetchResponseGroup", group_id="g", topics=[
        struct(OFFSET_FETCH, "OffsetFetchResponseTopics", name=TOPIC, partitions=[
            struct(OFFSET_FETCH, "OffsetFetchResponsePartitions", partition_index=0, committed_offset=-1,
                   error_code=0)])])
    return response(OFFSET_FETCH, topics=[topic], groups=[group])


def stable_broker(core: ConsumerCore, **handlers: Handler) -> ScriptedBroker:
    broker = ScriptedBroker(core, {JOIN_GROUP: join_ok(), SYNC_GROUP: sync_ok, HEARTBEAT: lambda r: response(
        HEARTBEAT, error_code=0), OFFSET_FETCH: no_commits, **{int(k): v for k, v in handlers.items()}})
    broker.run()
    return broker


def ack_listener(core: ConsumerCore) -> list[tuple[str, frozenset[TopicPartition]]]:
    calls = core.take_listener_calls()
    if calls:
        core.ack_listener_calls(calls[-1].seq)
    return [(c.kind, c.partitions) for c in calls]


def test_member_id_required_makes_the_member_join_again_with_the_id_it_was_given() -> None:
    core = group_core()
    first_join = True

    def join(request: OutboundRequest) -> Data:
        nonlocal first_join
        if first_join:
            first_join = False
            assert request.body.member_id == ""
            return response(JOIN_GROUP, error_code=Errors.MEMBER_ID_REQUIRED.code, member_id="given-id")
        return join_ok("given-id")(request)

    broker = stable_broker(core, **{str(JOIN_GROUP): join})
    assert [r.body.member_id for r in broker.requests(JOIN_GROUP)] == ["", "given-id"]
    assert core.assignment() == {TP0} and ack_listener(core) == [("assigned", frozenset({TP0}))]
    subscription = decode_subscription(broker.requests(JOIN_GROUP)[1].body.protocols[0].metadata)
    assert subscription.topics == (TOPIC,)


def test_an_eager_member_told_to_rebalance_revokes_before_it_joins_again() -> None:
    core = group_core()
    broker = stable_broker(core)
    ack_listener(core)
    broker.handlers[HEARTBEAT] = lambda r: response(HEARTBEAT, error_code=Errors.REBALANCE_IN_PROGRESS.code)
    broker.run(rounds=30)
    assert len(broker.requests(JOIN_GROUP)) == 1  # waiting for the application's poll
    assert ack_listener(core) == [("revoked", frozenset({TP0}))]
    broker.handlers[HEARTBEAT] = lambda r: response(HEARTBEAT, error_code=0)
    broker.run()
    joins = broker.requests(JOIN_GROUP)
    assert len(joins) == 2 and joins[1].body.member_id == "m-1"
    assert ack_listener(core) == [("assigned", frozenset({TP0}))]


def test_illegal_generation_loses_the_partitions_and_joins_as_a_new_member() -> None:
    core = group_core()
    broker = stable_broker(core)
    ack_listener(core)
    broker.handlers[HEARTBEAT] = lambda r: response(HEARTBEAT, error_code=Errors.ILLEGAL_GENERATION.code)
    broker.run(rounds=30)
    assert ack_listener(core) == [("lost", frozenset({TP0}))]
    broker.handlers[HEARTBEAT] = lambda r: response(HEARTBEAT, error_code=0)
    broker.run()
    assert broker.requests(JOIN_GROUP)[-1].body.member_id == ""


def test_not_coordinator_sends_the_member_to_find_the_coordinator_again() -> None:
    core = group_core()
    broker = stable_broker(core)
    lookups = len(broker.requests(FIND_COORDINATOR))
    broker.handlers[HEARTBEAT] = lambda r: response(HEARTBEAT, error_code=Errors.NOT_COORDINATOR.code)
    broker.run(rounds=30, step_ms=20)
    assert len(broker.requests(FIND_COORDINATOR)) > lookups
    assert all(r.destination == COORDINATOR_CONNECTION for r in broker.requests(HEARTBEAT))


def test_coordinator_load_in_progress_is_retried() -> None:
    core = group_core()
    answers = iter([Errors.COORDINATOR_LOAD_IN_PROGRESS.code, 0])

    def join(request: OutboundRequest) -> Data:
        code = next(answers)
        return response(JOIN_GROUP, error_code=code) if code else join_ok()(request)

    broker = ScriptedBroker(core, {JOIN_GROUP: join, SYNC_GROUP: sync_ok, OFFSET_FETCH: no_commits})
    broker.run(rounds=30, step_ms=20)
    assert len(broker.requests(JOIN_GROUP)) == 2 and core.assignment() == {TP0}


# -- fetching -------------------------------------------------------------------------------------


def manual_core(**extra: object) -> ConsumerCore:
    core = ConsumerCore(ConsumerConfig.from_properties({"bootstrap.servers": "h:9001", **extra}))
    core.assign([TP0])
    return core


def fetch_answer(error: Errors | None = None, records: bytes | None = None, preferred: int = -1,
                 high_watermark: int = 10) -> Handler:
    def handle(request: OutboundRequest) -> Data:
        partition = struct(FETCH, "PartitionData", partition_index=0, error_code=0 if error is None else error.code,
                           high_watermark=high_watermark, records=records, preferred_read_replica=preferred)
        return response(FETCH, error_code=0, session_id=0, responses=[
            struct(FETCH, "FetchableTopicResponse", topic=TOPIC, topic_id=TOPIC_ID, partitions=[partition])])
    return handle


def fetch_offsets(request: OutboundRequest) -> list[int]:
    return [p.fetch_offset for t in request.body.topics for p in t.partitions]


def test_a_fenced_leader_epoch_refreshes_metadata_and_a_truncated_log_moves_the_position_back() -> None:
    """KIP-320: after the leader changes, the consumer asks where its last epoch ended; the new
    leader's log ends at 3, below the position 5, so the consumer continues from 3."""
    core = manual_core()
    core.seek(TP0, 0)
    batch = build_batch([SimpleRecord(f"r{i}".encode(), timestamp=1) for i in range(5)], partition_leader_epoch=0)
    broker = ScriptedBroker(core, {FETCH: fetch_answer(records=batch)})
    broker.run(rounds=3)
    assert [r.offset for r in core.take_records(100, broker.now_ms)] == [0, 1, 2, 3, 4]
    broker.handlers[FETCH] = fetch_answer(Errors.FENCED_LEADER_EPOCH)
    broker.handlers[METADATA] = lambda r: metadata_answer(leader=2, leader_epoch=1)
    broker.handlers[OFFSET_FOR_LEADER_EPOCH] = lambda r: response(OFFSET_FOR_LEADER_EPOCH, topics=[
        struct(OFFSET_FOR_LEADER_EPOCH, "OffsetForLeaderTopicResult", topic=TOPIC, partitions=[
            struct(OFFSET_FOR_LEADER_EPOCH, "EpochEndOffset", error_code=0, partition=0, leader_epoch=0,
                   end_offset=3)])])
    broker.run(rounds=30, step_ms=50)
    validation = broker.requests(OFFSET_FOR_LEADER_EPOCH)
    assert validation and validation[0].destination == 2
    asked = validation[0].body.topics[0].partitions[0]
    assert (asked.leader_epoch, asked.current_leader_epoch) == (0, 1)
    assert core.position(TP0) == 3
    assert fetch_offsets(broker.requests(FETCH)[-1]) == [3]


def test_the_preferred_read_replica_serves_the_next_fetches() -> None:
    """KIP-392: the leader names replica 2 (closest to client.rack); fetches go there."""
    core = manual_core(**{"client.rack": "rack-b"})
    core.seek(TP0, 0)
    broker = ScriptedBroker(core, {FETCH: fetch_answer(preferred=2)})
    broker.run(rounds=4)
    destinations = [r.destination for r in broker.requests(FETCH)]
    assert destinations[0] == 1 and set(destinations[1:]) == {2}
    assert broker.requests(FETCH)[0].body.rack_id == "rack-b"


def test_out_of_range_resets_by_policy_and_none_reports_an_error() -> None:
    core = manual_core(**{"auto.offset.reset": "earliest"})
    core.seek(TP0, 50)
    broker = ScriptedBroker(core, {FETCH: fetch_answer(Errors.OFFSET_OUT_OF_RANGE), LIST_OFFSETS: lambda r: response(
        LIST_OFFSETS, topics=[struct(LIST_OFFSETS, "ListOffsetsTopicResponse", name=TOPIC, partitions=[
            struct(LIST_OFFSETS, "ListOffsetsPartitionResponse", partition_index=0, error_code=0, offset=7)])])})
    broker.run(rounds=3)
    earliest = broker.requests(LIST_OFFSETS)[0].body.topics[0].partitions[0]
    assert earliest.timestamp == -2 and core.position(TP0) == 7
    strict = manual_core(**{"auto.offset.reset": "none"})
    strict.seek(TP0, 50)
    ScriptedBroker(strict, {FETCH: fetch_answer(Errors.OFFSET_OUT_OF_RANGE)}).run(rounds=3)
    assert [type(e).__name__ for e in strict.take_errors()] == ["NoOffsetForPartitionError"]
    assert strict.subscriptions.state(TP0).state is FetchState.AWAIT_RESET


def test_a_seek_while_a_fetch_is_in_flight_discards_its_answer() -> None:
    core = manual_core()
    core.seek(TP0, 0)
    batch = build_batch([SimpleRecord(b"old", timestamp=1)])
    broker = ScriptedBroker(core, {})
    broker.run(rounds=3)
    (fetch,) = broker.held
    core.seek(TP0, 40)
    fetch.complete(fetch_answer(records=batch)(fetch), broker.now_ms)
    assert core.take_records(10, broker.now_ms) == [] and core.position(TP0) == 40


def test_the_leader_assigns_with_the_chosen_protocol_in_consumer_protocol_bytes() -> None:
    core = group_core()
    broker = stable_broker(core)
    (sync,) = broker.requests(SYNC_GROUP)
    assert [a.member_id for a in sync.body.assignments] == ["m-1"]
    assert sync.body.assignments[0].assignment == encode_assignment(Assignment(((TOPIC, 0),)))


def test_the_leader_rebalances_when_a_topic_gains_partitions() -> None:
    core = group_core(**{"metadata.max.age.ms": 1000})
    broker = stable_broker(core)
    ack_listener(core)
    assert len(broker.requests(JOIN_GROUP)) == 1

    def two_partitions(request: OutboundRequest) -> Data:
        answer = metadata_answer()
        first = answer.topics[0].partitions[0]
        answer.topics[0].partitions.append(struct(METADATA, "MetadataResponsePartition", error_code=0,
                                                  partition_index=1, leader_id=1, leader_epoch=0,
                                                  replica_nodes=first.replica_nodes, isr_nodes=first.isr_nodes))
        return answer

    broker.handlers[METADATA] = two_partitions
    broker.run(rounds=40, step_ms=50)  # metadata.max.age.ms passes: the new count is seen
    ack_listener(core)  # the eager revocation before the new join
    broker.run(rounds=5)
    assert len(broker.requests(JOIN_GROUP)) == 2
    assert core.assignment() == {TP0, TopicPartition(TOPIC, 1)}


def test_an_application_that_stops_polling_leaves_the_group_and_rejoins_when_it_polls_again() -> None:
    """max.poll.interval.ms: the member leaves (LeaveGroup) and joins again on the next poll,
    after on_partitions_lost -- its partitions were free for others meanwhile."""
    core = group_core(**{"max.poll.interval.ms": 1000})
    broker = stable_broker(core)
    ack_listener(core)
    core.take_records(10, broker.now_ms)
    broker.handlers[13] = lambda r: response(13, error_code=0)  # LeaveGroup
    broker.run(rounds=50, step_ms=30)  # 1.5 s without an application poll
    (leave,) = broker.requests(13)
    assert leave.body.members[0].member_id == "m-1"
    assert len(broker.requests(JOIN_GROUP)) == 1  # no join until the application is back
    core.take_records(10, broker.now_ms)
    broker.run(rounds=3)
    assert ack_listener(core) == [("lost", frozenset({TP0}))]
    broker.run(rounds=3)
    assert [r.body.member_id for r in broker.requests(JOIN_GROUP)] == ["", ""]  # "m-1" is gone: a new member


# -- commits --------------------------------------------------------------------------------------


def commit_answer(*codes: int) -> Handler:
    remaining = list(codes)

    def handle(request: OutboundRequest) -> Data:
        code = remaining.pop(0) if remaining else 0
        return response(OFFSET_COMMIT, topics=[struct(OFFSET_COMMIT, "OffsetCommitResponseTopic", name=TOPIC, partitions=[
            struct(OFFSET_COMMIT, "OffsetCommitResponsePartition", partition_index=0, error_code=code)])])
    return handle


def test_a_synchronous_commit_retries_a_loading_coordinator_and_sends_the_generation() -> None:
    core = group_core()
    broker = stable_broker(core, **{str(OFFSET_COMMIT): commit_answer(Errors.COORDINATOR_LOAD_IN_PROGRESS.code)})
    future = core.commit({TP0: 12}, broker.now_ms, timeout_ms=5000, retry=True)
    broker.run(rounds=30, step_ms=20)
    assert future.result(timeout=0) == {TP0: 12}
    commits = broker.requests(OFFSET_COMMIT)
    assert len(commits) == 2
    assert (commits[0].body.generation_id_or_member_epoch, commits[0].body.member_id) == (1, "m-1")


def test_a_commit_from_a_member_the_group_forgot_fails_and_the_member_rejoins() -> None:
    core = group_core()
    broker = stable_broker(core, **{str(OFFSET_COMMIT): commit_answer(Errors.UNKNOWN_MEMBER_ID.code)})
    ack_listener(core)
    future = core.commit({TP0: 12}, broker.now_ms, timeout_ms=5000, retry=True)
    broker.run(rounds=5)
    assert type(future.exception(timeout=0)).__name__ == "CommitFailedError"
    assert ack_listener(core) == [("lost", frozenset({TP0}))]
    broker.run(rounds=5)
    assert broker.requests(JOIN_GROUP)[-1].body.member_id == ""


def test_an_asynchronous_commit_is_tried_once() -> None:
    core = group_core()
    broker = stable_broker(core, **{str(OFFSET_COMMIT): commit_answer(Errors.COORDINATOR_LOAD_IN_PROGRESS.code)})
    future = core.commit({TP0: 3}, broker.now_ms, timeout_ms=5000, retry=False)
    broker.run(rounds=10)
    assert future.exception(timeout=0) is not None and len(broker.requests(OFFSET_COMMIT)) == 1


# -- pipelining ------------------------------------------------------------------------------------


def test_a_partition_with_buffered_records_is_left_out_of_fetches_until_the_application_takes_them() -> None:
    """Fetch pipelining: the next Fetch goes out at once for the other partitions; the buffered one
    is forgotten from the KIP-227 session and comes back once drained."""
    tp1 = TopicPartition(TOPIC, 1)
    core = ConsumerCore(ConsumerConfig.from_properties({"bootstrap.servers": "h:9001"}))
    core.assign([TP0, tp1])
    core.seek(TP0, 0)
    core.seek(tp1, 0)
    batch = build_batch([SimpleRecord(b"x", timestamp=1)])

    def two_partitions(request: OutboundRequest) -> Data:
        answer = metadata_answer()
        first = answer.topics[0].partitions[0]
        answer.topics[0].partitions.append(struct(METADATA, "MetadataResponsePartition", error_code=0,
                                                  partition_index=1, leader_id=1, leader_epoch=0,
                                                  replica_nodes=first.replica_nodes, isr_nodes=first.isr_nodes))
        return answer

    sessions = iter(range(100, 200))

    def fetch(request: OutboundRequest) -> Data:
        partitions = [p.partition for t in request.body.topics for p in t.partitions]
        data = [struct(FETCH, "PartitionData", partition_index=0, error_code=0, high_watermark=1, records=batch)] \
            if 0 in partitions and request.body.session_epoch == 0 else []
        return response(FETCH, error_code=0, session_id=next(sessions) if request.body.session_epoch == 0 else
                        request.body.session_id, responses=[struct(FETCH, "FetchableTopicResponse", topic=TOPIC,
                                                                   topic_id=TOPIC_ID, partitions=data)])

    broker = ScriptedBroker(core, {METADATA: two_partitions, FETCH: fetch})
    broker.run(rounds=4)
    fetches = broker.requests(FETCH)
    assert len(fetches) >= 3  # pipelined: no waiting for the application between fetches
    full, incremental = fetches[0].body, fetches[1].body
    assert full.session_epoch == 0 and {p.partition for t in full.topics for p in t.partitions} == {0, 1}
    assert incremental.session_epoch == 1 and [t.partitions for t in incremental.forgotten_topics_data] == [[0]]
    assert [r.value for r in core.take_records(10, broker.now_ms)] == [b"x"]
    sent_before = len(broker.requests(FETCH))
    broker.run(rounds=1)
    back = broker.requests(FETCH)[sent_before].body
    assert [(p.partition, p.fetch_offset) for t in back.topics for p in t.partitions] == [(0, 1)]


def test_without_a_group_an_assigned_partition_starts_from_auto_offset_reset() -> None:
    """No group.id: there is no committed offset to fetch, so a manually assigned partition goes
    straight to auto.offset.reset (a ListOffsets for the earliest offset, -2), as Java's
    resetInitializingPositions does; no FindCoordinator or OffsetFetch is sent."""
    core = ConsumerCore(ConsumerConfig.from_properties({"bootstrap.servers": "h:9001",
                                                        "auto.offset.reset": "earliest"}))
    core.assign([TP0])
    broker = ScriptedBroker(core, {})
    broker.run()
    (list_offsets,) = broker.requests(LIST_OFFSETS)
    assert [p.timestamp for t in list_offsets.body.topics for p in t.partitions] == [-2]
    assert not broker.requests(FIND_COORDINATOR) and not broker.requests(OFFSET_FETCH)
    assert core.subscriptions.state(TP0).state is FetchState.AWAIT_RESET
