"""The group coordinator in a cluster: it serves the __consumer_offsets partitions this broker leads,
answers writes once the high watermark passes them, and FindCoordinator names partition leaders.

Each test drives a real broker core (real logs, real request frames, a fake clock) whose group
service is in replicated mode: the test plays the cluster integration -- it says which partitions
this broker leads, who leads the others, and when followers have caught up (the high watermark the
service sees is held back until then).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reference.broker.cluster_view import BrokerEndpoint, PartitionView
from reference.broker.configs import BrokerConfig
from reference.broker.core import Broker
from reference.broker.group import records
from reference.broker.group_service import (
    OFFSETS_TOPIC,
    OFFSETS_TOPIC_CONFIGS,
    CallablePlacement,
    ClusterViewPlacement,
    GroupService,
    HighWatermarkWatchers,
)
from reference.broker.log.files import TopicPartition
from reference.broker.log.log import LogAppendInfo
from reference.broker.pending import Pending
from reference.broker.replica_manager import ReplicaManager
from reference.errors import ErrorCode, Errors, KafkaError
from reference.protocol.apis import API_BY_NAME
from reference.protocol.frames import Request, RequestHeader, decode_response, encode_request
from reference.protocol.schema import Data
from tests.reference.node.harness import SimulatedCluster
from tests.reference.node.test_kraft_node import running

START_MS = 1_700_000_000_000
PARTITIONS = 4
NODE_ID = 1
GROUP = "group-a"
GROUP_PARTITION = records.partition_for(GROUP, PARTITIONS)


@dataclass
class ReplicaOffsets:
    high_watermark: int
    log_end_offset: int


@dataclass
class HeldBackReplicas:
    """The broker's replica manager, except that the high watermark of a held partition stays where
    it was when the hold began -- as if a follower in the ISR had not fetched yet."""

    real: ReplicaManager
    held: dict[int, int] = field(default_factory=dict)  # partition -> the high watermark it stays at
    refuse_with: ErrorCode | None = None

    def append_internal(self, topic: str, partition: int, batch: bytes, now_ms: int) -> LogAppendInfo:
        if self.refuse_with is not None:
            raise KafkaError(self.refuse_with)
        return self.real.append_internal(topic, partition, batch, now_ms)

    def read_all(self, topic: str, partition: int) -> Iterator[bytes]:
        return self.real.read_all(topic, partition)

    def get(self, topic: str, partition: int) -> ReplicaOffsets | None:
        replica = self.real.get(topic, partition)
        if replica is None:
            return None
        high_watermark = self.held.get(partition, replica.high_watermark)
        return ReplicaOffsets(min(high_watermark, replica.high_watermark), replica.log_end_offset)

    def hold(self, partition: int) -> None:
        self.held[partition] = self.real.require(OFFSETS_TOPIC, partition).high_watermark


class Node:
    """One broker whose group service runs in replicated mode, driven by the test."""

    def __init__(self, data_dir: Path, create_offsets_topic: bool = True) -> None:
        config = {"node.id": str(NODE_ID), "group.initial.rebalance.delay.ms": "0",
                  "offsets.topic.num.partitions": str(PARTITIONS)}
        self.now_ms = START_MS
        self.broker = Broker(BrokerConfig(config), data_dir, self.now_ms)
        self.broker.set_listener("127.0.0.1", 9092)
        if create_offsets_topic:  # what the controller would have done
            self.broker.topics.create(OFFSETS_TOPIC, PARTITIONS, 1, OFFSETS_TOPIC_CONFIGS)
        self.leaders: dict[int, tuple[int, str, int]] = {}
        self.create_requests: list[tuple[int, int]] = []
        self.replicas = HeldBackReplicas(self.broker.replicas)
        placement = CallablePlacement(self.leaders.get, lambda n, rf, now: self.create_requests.append((n, rf)))
        self.service = GroupService(self.broker, self.now_ms, placement=placement, replicas=self.replicas)
        self.broker.groups = self.service
        self.correlation_id = 0

    # -- the integration's side ----------------------------------------------------------------------

    def lead(self, partition: int, epoch: int) -> None:
        self.leaders[partition] = (NODE_ID, "127.0.0.1", 9092)
        self.service.on_became_leader(partition, epoch, self.now_ms)

    def resign(self, partition: int, epoch: int) -> None:
        self.leaders[partition] = (2, "10.0.0.2", 9093)
        self.service.on_resigned(partition, epoch, self.now_ms)

    def followers_catch_up(self, partition: int) -> None:
        """The hold ends: the replica side reports the partition's real high watermark."""
        self.replicas.held.pop(partition, None)
        high_watermark = self.broker.replicas.require(OFFSETS_TOPIC, partition).high_watermark
        self.service.high_watermarks.on_high_watermark(TopicPartition(OFFSETS_TOPIC, partition), high_watermark,
                                                       self.now_ms)

    # -- requests ------------------------------------------------------------------------------------

    def send(self, api_name: str, version: int, **fields: Any) -> Any:
        api = API_BY_NAME[api_name]
        self.correlation_id += 1
        frame = encode_request(api, version, self.correlation_id, "test", api.request.make(**fields))[4:]
        return self.broker.handle_frame(frame, self.now_ms)

    def decode(self, api_name: str, version: int, reply: bytes) -> Data:
        _, body = decode_response(API_BY_NAME[api_name], version, reply[4:])
        return body

    def call(self, api_name: str, version: int, **fields: Any) -> Data:
        reply = self.send(api_name, version, **fields)
        if isinstance(reply, Pending):
            assert reply.done, f"{api_name} is still waiting"
            reply = reply.result
        return self.decode(api_name, version, reply)

    def advance(self, delta_ms: int) -> None:
        self.now_ms += delta_ms
        self.broker.poll(self.now_ms)

    def commit(self, offset: int, group: str = GROUP, member_id: str = "", generation: int = -1) -> Any:
        api = API_BY_NAME["OffsetCommit"]
        partition = api.request.struct("OffsetCommitRequestPartition").make(
            partition_index=0, committed_offset=offset, committed_metadata="")
        topic = api.request.struct("OffsetCommitRequestTopic").make(name="t", partitions=[partition])
        return self.send("OffsetCommit", 8, group_id=group, generation_id_or_member_epoch=generation,
                         member_id=member_id, topics=[topic])

    def fetch(self, group: str = GROUP) -> tuple[int, int]:
        """(group error code, committed offset of t-0) from OffsetFetch v8."""
        api = API_BY_NAME["OffsetFetch"]
        topic = api.request.struct("OffsetFetchRequestTopics").make(name="t", partition_indexes=[0])
        asked = api.request.struct("OffsetFetchRequestGroup").make(group_id=group, topics=[topic])
        answered = self.call("OffsetFetch", 8, groups=[asked]).groups[0]
        offset = answered.topics[0].partitions[0].committed_offset if answered.topics else -1
        return answered.error_code, offset

    def stable_group(self) -> tuple[str, int]:
        """One member joins and syncs; returns (member id, generation)."""
        api = API_BY_NAME["JoinGroup"]
        protocol = api.request.struct("JoinGroupRequestProtocol").make(name="range", metadata=b"")
        joining = self.send("JoinGroup", 3, group_id=GROUP, session_timeout_ms=10_000, rebalance_timeout_ms=10_000,
                            member_id="", protocol_type="consumer", protocols=[protocol])
        self.advance(1)  # the initial rebalance delay (0 ms) runs out
        assert isinstance(joining, Pending) and joining.done
        joined = self.decode("JoinGroup", 3, joining.result)
        sync_api = API_BY_NAME["SyncGroup"]
        assignment = sync_api.request.struct("SyncGroupRequestAssignment").make(member_id=joined.member_id,
                                                                                assignment=b"A")
        synced = self.send("SyncGroup", 1, group_id=GROUP, generation_id=joined.generation_id,
                           member_id=joined.member_id, assignments=[assignment])
        assert isinstance(synced, Pending) and synced.done
        assert self.decode("SyncGroup", 1, synced.result).error_code == Errors.NONE.code
        return joined.member_id, joined.generation_id


def commit_error(node: Node, reply: Any) -> int:
    if isinstance(reply, Pending):
        assert reply.done
        reply = reply.result
    return int(node.decode("OffsetCommit", 8, reply).topics[0].partitions[0].error_code)


# --- writes answer when committed ------------------------------------------------------------------


def test_an_offset_commit_is_answered_only_after_the_high_watermark_passes_it(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.lead(GROUP_PARTITION, 1)
    node.replicas.hold(GROUP_PARTITION)
    reply = node.commit(7)
    assert isinstance(reply, Pending) and not reply.done  # written, not yet committed
    node.advance(1_000)
    assert not reply.done
    node.followers_catch_up(GROUP_PARTITION)
    assert commit_error(node, reply) == Errors.NONE.code
    assert node.fetch() == (Errors.NONE.code, 7)


def test_a_commit_that_outlives_its_leadership_fails_with_not_coordinator(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.lead(GROUP_PARTITION, 1)
    node.replicas.hold(GROUP_PARTITION)
    reply = node.commit(7)
    node.resign(GROUP_PARTITION, 2)
    assert commit_error(node, reply) == Errors.NOT_COORDINATOR.code
    assert node.fetch()[0] == Errors.NOT_COORDINATOR.code


def test_a_commit_not_committed_within_offsets_commit_timeout_gets_coordinator_not_available(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.lead(GROUP_PARTITION, 1)
    node.replicas.hold(GROUP_PARTITION)
    reply = node.commit(7)
    node.advance(4_999)
    assert not reply.done
    node.advance(1)  # offsets.commit.timeout.ms (5 s): REQUEST_TIMED_OUT, which clients see as 15
    assert commit_error(node, reply) == Errors.COORDINATOR_NOT_AVAILABLE.code


def test_a_refused_append_is_answered_with_kafkas_mapping_and_changes_nothing(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.lead(GROUP_PARTITION, 1)
    assert commit_error(node, node.commit(3)) == Errors.NONE.code
    node.replicas.refuse_with = Errors.NOT_ENOUGH_REPLICAS
    assert commit_error(node, node.commit(4)) == Errors.COORDINATOR_NOT_AVAILABLE.code
    node.replicas.refuse_with = Errors.NOT_LEADER_OR_FOLLOWER
    assert commit_error(node, node.commit(5)) == Errors.NOT_COORDINATOR.code
    node.replicas.refuse_with = None
    assert node.fetch() == (Errors.NONE.code, 3)


def test_a_heartbeat_waits_for_what_the_partition_wrote_before_it(tmp_path: Path) -> None:
    """Kafka answers every write operation, even one that writes nothing, at the last written offset."""
    node = Node(tmp_path)
    node.lead(GROUP_PARTITION, 1)
    member_id, generation = node.stable_group()
    node.replicas.hold(GROUP_PARTITION)
    node.commit(9, member_id=member_id, generation=generation)
    heartbeat = node.send("Heartbeat", 1, group_id=GROUP, generation_id=generation, member_id=member_id)
    assert isinstance(heartbeat, Pending) and not heartbeat.done
    node.followers_catch_up(GROUP_PARTITION)
    assert node.decode("Heartbeat", 1, heartbeat.result).error_code == Errors.NONE.code


# --- leadership moves ----------------------------------------------------------------------------


def test_a_broker_that_loses_and_regains_leadership_serves_the_state_of_its_log(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.lead(GROUP_PARTITION, 1)
    member_id, generation = node.stable_group()
    assert commit_error(node, node.commit(11, member_id=member_id, generation=generation)) == Errors.NONE.code

    node.resign(GROUP_PARTITION, 2)
    heartbeat = node.call("Heartbeat", 1, group_id=GROUP, generation_id=generation, member_id=member_id)
    assert heartbeat.error_code == Errors.NOT_COORDINATOR.code
    assert node.call("DescribeGroups", 1, groups=[GROUP]).groups[0].error_code == Errors.NOT_COORDINATOR.code
    assert node.call("ListGroups", 1).groups == []
    assert node.fetch()[0] == Errors.NOT_COORDINATOR.code

    node.lead(GROUP_PARTITION, 3)
    described = node.call("DescribeGroups", 1, groups=[GROUP]).groups[0]
    assert (described.error_code, described.group_state) == (Errors.NONE.code, "Stable")
    assert [m.member_id for m in described.members] == [member_id]
    assert node.fetch() == (Errors.NONE.code, 11)
    heartbeat = node.call("Heartbeat", 1, group_id=GROUP, generation_id=generation, member_id=member_id)
    assert heartbeat.error_code == Errors.NONE.code


def test_a_second_broker_that_becomes_leader_serves_what_the_first_one_committed(tmp_path: Path) -> None:
    first = Node(tmp_path / "first")
    first.lead(GROUP_PARTITION, 1)
    assert commit_error(first, first.commit(21)) == Errors.NONE.code
    second = Node(tmp_path / "second")
    for chunk in first.broker.replicas.read_all(OFFSETS_TOPIC, GROUP_PARTITION):  # "replication"
        second.broker.replicas.append_internal(OFFSETS_TOPIC, GROUP_PARTITION, chunk, second.now_ms)
    assert second.fetch()[0] == Errors.NOT_COORDINATOR.code
    first.resign(GROUP_PARTITION, 2)
    second.lead(GROUP_PARTITION, 2)
    assert second.fetch() == (Errors.NONE.code, 21)
    assert first.fetch()[0] == Errors.NOT_COORDINATOR.code


def test_requests_while_a_partition_loads_get_coordinator_load_in_progress(tmp_path: Path) -> None:
    node = Node(tmp_path)
    assert node.service.coordinator.on_became_leader(GROUP_PARTITION, 1)  # loading, not loaded yet
    assert commit_error(node, node.commit(1)) == Errors.COORDINATOR_LOAD_IN_PROGRESS.code
    assert node.call("ListGroups", 1).error_code == Errors.COORDINATOR_LOAD_IN_PROGRESS.code
    node.service.coordinator.complete_load(GROUP_PARTITION, [], node.now_ms)
    assert commit_error(node, node.commit(1)) == Errors.NONE.code


# --- FindCoordinator -------------------------------------------------------------------------------


def test_find_coordinator_asks_for_the_offsets_topic_and_answers_15_until_a_leader_exists(tmp_path: Path) -> None:
    node = Node(tmp_path, create_offsets_topic=False)
    body = node.call("FindCoordinator", 3, key=GROUP, key_type=0)
    assert (body.error_code, body.node_id) == (Errors.COORDINATOR_NOT_AVAILABLE.code, -1)
    assert node.create_requests == [(PARTITIONS, 3)]  # offsets.topic.replication.factor defaults to 3
    node.broker.topics.create(OFFSETS_TOPIC, PARTITIONS, 1, OFFSETS_TOPIC_CONFIGS)
    body = node.call("FindCoordinator", 3, key=GROUP, key_type=0)
    assert body.error_code == Errors.COORDINATOR_NOT_AVAILABLE.code  # no leader yet
    assert node.create_requests == [(PARTITIONS, 3)]


def test_find_coordinator_names_the_leader_of_each_groups_partition(tmp_path: Path) -> None:
    node = Node(tmp_path)
    other = next(g for g in (f"g{i}" for i in range(100)) if records.partition_for(g, PARTITIONS) != GROUP_PARTITION)
    node.leaders[GROUP_PARTITION] = (1, "127.0.0.1", 9092)
    node.leaders[records.partition_for(other, PARTITIONS)] = (2, "10.0.0.2", 9093)
    body = node.call("FindCoordinator", 4, key_type=0, coordinator_keys=[GROUP, other])
    assert [(c.key, c.error_code, c.node_id, c.host, c.port) for c in body.coordinators] == [
        (GROUP, 0, 1, "127.0.0.1", 9092), (other, 0, 2, "10.0.0.2", 9093)]
    body = node.call("FindCoordinator", 2, key=other, key_type=0)
    assert (body.error_code, body.node_id, body.host, body.port) == (0, 2, "10.0.0.2", 9093)


# --- the high-watermark hook on its own ------------------------------------------------------------


def test_high_watermark_watchers_complete_writes_in_order_and_ignore_other_topics() -> None:
    watchers = HighWatermarkWatchers(timeout_ms=5_000)
    first, second = watchers.watch(0, 10, START_MS), watchers.watch(0, 20, START_MS)
    other_partition = watchers.watch(1, 10, START_MS)
    watchers.on_high_watermark(TopicPartition("t", 0), 100, START_MS)  # not __consumer_offsets
    assert not first.done
    watchers.on_high_watermark(TopicPartition(OFFSETS_TOPIC, 0), 15, START_MS)
    assert (first.error, second.done, other_partition.done) == (Errors.NONE, False, False)
    assert watchers.watch(0, 15, START_MS).succeeded  # already committed: completes at once
    watchers.expire(START_MS + 5_000)
    assert (second.error, other_partition.error) == (Errors.REQUEST_TIMED_OUT, Errors.REQUEST_TIMED_OUT)
    assert watchers.next_deadline() is None


def test_the_cluster_view_placement_answers_the_alive_leader_of_the_partition() -> None:
    @dataclass
    class FakeView:
        leaders: dict[int, int]
        alive: dict[int, BrokerEndpoint]

        def partitions(self, topic: str) -> list[PartitionView] | None:
            if topic != OFFSETS_TOPIC:
                return None
            return [PartitionView(p, leader, 1, [leader], [leader]) for p, leader in self.leaders.items()]

        def broker(self, node_id: int) -> BrokerEndpoint | None:
            return self.alive.get(node_id)

    view = FakeView({0: 2, 1: -1, 2: 3}, {2: BrokerEndpoint(2, "10.0.0.2", 9093)})
    placement = ClusterViewPlacement(lambda: view, lambda *_: None)  # type: ignore[arg-type, return-value]
    assert placement.leader_of(0) == (2, "10.0.0.2", 9093)
    assert placement.leader_of(1) is None  # no leader
    assert placement.leader_of(2) is None  # its leader is not alive
    assert placement.leader_of(3) is None  # no such partition


# --- end to end in a simulated KRaft cluster -------------------------------------------------------


def _cluster_call(cluster: SimulatedCluster, via: int, name: str, version: int, **fields: Any) -> Data:
    api = API_BY_NAME[name]
    broker = cluster.nodes[via].broker
    assert broker is not None
    reply = broker.handle(Request(RequestHeader(api.key, version, 1, "test"), api, api.request.make(**fields)),
                          cluster.now_ms)
    answers: list[bytes] = []
    if isinstance(reply, Pending):
        reply.on_done(answers.append)
        cluster.run_until(lambda: bool(answers), limit_ms=20_000)
        reply = answers[0]
    return decode_response(api, version, reply[4:])[1]


def _coordinator_of(cluster: SimulatedCluster, via: int, group: str) -> int | None:
    body = _cluster_call(cluster, via, "FindCoordinator", 3, key=group, key_type=0)
    return int(body.node_id) if body.error_code == Errors.NONE.code else None


def test_in_a_kraft_cluster_the_coordinator_follows_offsets_topic_leadership(tmp_path: Path) -> None:
    """Three KRaft nodes (the node integration calls the service's leadership hooks): the commit is
    answered by the partition leader once replicated, and after that leader crashes the new leader
    of the partition serves the committed offset from its copy of the log."""
    cluster = SimulatedCluster(tmp_path, extra={"offsets.topic.num.partitions": "3"})
    cluster.run_until(lambda: running(cluster))
    assert _coordinator_of(cluster, 1, GROUP) is None  # COORDINATOR_NOT_AVAILABLE: topic being created
    cluster.run_until(lambda: all(OFFSETS_TOPIC in node.image.topics for node in cluster.nodes.values())
                      and _coordinator_of(cluster, 1, GROUP) is not None)
    coordinator = _coordinator_of(cluster, 1, GROUP)
    assert coordinator is not None
    cluster.run_until(lambda: cluster.nodes[coordinator].broker.groups.coordinator  # type: ignore[union-attr]
                      .coordinator_error(GROUP) is Errors.NONE)
    commit_api = API_BY_NAME["OffsetCommit"]
    partition = commit_api.request.struct("OffsetCommitRequestPartition").make(
        partition_index=0, committed_offset=5, committed_metadata="")
    topic = commit_api.request.struct("OffsetCommitRequestTopic").make(name="t", partitions=[partition])
    other = next(node_id for node_id in cluster.nodes if node_id != coordinator)
    for via, expected in ((other, Errors.NOT_COORDINATOR), (coordinator, Errors.NONE)):
        answer = _cluster_call(cluster, via, "OffsetCommit", 8, group_id=GROUP, generation_id_or_member_epoch=-1,
                               member_id="", topics=[topic])
        assert answer.topics[0].partitions[0].error_code == expected.code

    cluster.crash(coordinator)
    cluster.run_until(lambda: _coordinator_of(cluster, other, GROUP) not in (None, coordinator))
    successor = _coordinator_of(cluster, other, GROUP)
    assert successor is not None
    cluster.run_until(lambda: cluster.nodes[successor].broker.groups.coordinator  # type: ignore[union-attr]
                      .coordinator_error(GROUP) is Errors.NONE)
    fetch_api = API_BY_NAME["OffsetFetch"]
    asked = fetch_api.request.struct("OffsetFetchRequestTopic").make(name="t", partition_indexes=[0])
    fetched = _cluster_call(cluster, successor, "OffsetFetch", 7, group_id=GROUP, topics=[asked])
    assert (fetched.error_code, fetched.topics[0].partitions[0].committed_offset) == (Errors.NONE.code, 5)
