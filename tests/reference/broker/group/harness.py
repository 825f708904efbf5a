"""A fake clock, a recording writer and small request builders for the coordinator tests."""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass, field

from reference.broker.group import GroupCoordinator, GroupCoordinatorConfig
from reference.broker.group.completion import WriteCompletion
from reference.broker.group.messages import (
    HeartbeatRequest,
    HeartbeatResult,
    JoinGroupProtocol,
    JoinGroupRequest,
    JoinGroupResult,
    LeaveGroupRequest,
    LeaveGroupResult,
    MemberIdentity,
    OffsetCommitRequest,
    OffsetCommitRequestPartition,
    OffsetCommitRequestTopic,
    OffsetCommitResult,
    SyncGroupAssignment,
    SyncGroupRequest,
    SyncGroupResult,
)

GROUP = "group-a"


def subscription(*topics: str, version: int = 0) -> bytes:
    """A ConsumerProtocolSubscription: version, topics, null user data."""
    body = struct.pack(">hi", version, len(topics))
    for topic in topics:
        encoded = topic.encode()
        body += struct.pack(">h", len(encoded)) + encoded
    return body + struct.pack(">i", -1)


def range_protocol(*topics: str) -> list[JoinGroupProtocol]:
    return [JoinGroupProtocol("range", subscription(*topics))]


@dataclass
class Recorder:
    """The ``writer``: keeps every appended record, in order, with its partition."""

    appended: list[tuple[int, bytes, bytes | None]] = field(default_factory=list)

    def append(self, partition: int, records: list[tuple[bytes, bytes | None]], now_ms: int) -> WriteCompletion:
        """Keep the records; on one node with no replication they are committed at once."""
        self.appended += [(partition, key, value) for key, value in records]
        return WriteCompletion.committed(now_ms)

    def records(self) -> list[tuple[bytes, bytes | None]]:
        return [(key, value) for _, key, value in self.appended]


@dataclass
class Reply:
    """A parked answer: ``value`` stays None until the coordinator calls back; twice is an error."""

    value: JoinGroupResult | SyncGroupResult | None = None
    calls: int = 0

    def __call__(self, result: JoinGroupResult | SyncGroupResult) -> None:
        self.calls += 1
        assert self.calls == 1, "a request was answered twice"
        self.value = result

    @property
    def done(self) -> bool:
        return self.value is not None

    def join(self) -> JoinGroupResult:
        assert isinstance(self.value, JoinGroupResult), f"no JoinGroup answer yet: {self.value}"
        return self.value

    def sync(self) -> SyncGroupResult:
        assert isinstance(self.value, SyncGroupResult), f"no SyncGroup answer yet: {self.value}"
        return self.value


class Cluster:
    """One coordinator driven by a fake clock; every step ends with ``check_valid()``."""

    def __init__(self, **config: int) -> None:
        self.now = 1_000_000
        self.writer = Recorder()
        self.config = GroupCoordinatorConfig(**config)
        counter = itertools.count(1)
        self.coordinator = GroupCoordinator(
            self.writer, self.config, member_id_suffix=lambda: f"m{next(counter)}"
        )

    def check(self) -> None:
        self.coordinator.check_valid()

    def advance(self, ms: int) -> None:
        """Move the clock forward, waking the coordinator at each deadline on the way."""
        target = self.now + ms
        while (deadline := self.coordinator.next_deadline()) is not None and deadline <= target:
            self.now = max(self.now, deadline)
            self.coordinator.poll(self.now)
            self.check()
        self.now = target
        self.coordinator.poll(self.now)
        self.check()

    def settle(self, *replies: Reply, limit_ms: int = 600_000) -> None:
        """Advance the clock a second at a time until every reply has its answer."""
        waited = 0
        while not all(reply.done for reply in replies):
            assert waited < limit_ms, "the coordinator never answered"
            self.advance(1_000)
            waited += 1_000

    # --- requests ---

    def join(
        self,
        member_id: str = "",
        group: str = GROUP,
        protocols: list[JoinGroupProtocol] | None = None,
        session_timeout_ms: int = 10_000,
        rebalance_timeout_ms: int = 30_000,
        instance_id: str | None = None,
        api_version: int = 9,
        client_id: str = "client",
        protocol_type: str = "consumer",
    ) -> Reply:
        reply = Reply()
        request = JoinGroupRequest(
            group_id=group,
            session_timeout_ms=session_timeout_ms,
            rebalance_timeout_ms=rebalance_timeout_ms,
            member_id=member_id,
            protocol_type=protocol_type,
            protocols=protocols if protocols is not None else range_protocol("t"),
            group_instance_id=instance_id,
            api_version=api_version,
            client_id=client_id,
            client_host="/127.0.0.1",
        )
        self.coordinator.join(request, self.now, reply)
        self.check()
        return reply

    def join_new(self, **kwargs: object) -> Reply:
        """KIP-394 dance: JoinGroup with no id, get MEMBER_ID_REQUIRED, rejoin with the given id."""
        first = self.join(**kwargs)  # type: ignore[arg-type]
        assert first.join().error.name == "MEMBER_ID_REQUIRED"
        return self.join(member_id=first.join().member_id, **kwargs)  # type: ignore[arg-type]

    def sync(
        self,
        member_id: str,
        generation_id: int,
        assignments: dict[str, bytes] | None = None,
        group: str = GROUP,
        instance_id: str | None = None,
        protocol_type: str | None = None,
        protocol_name: str | None = None,
    ) -> Reply:
        reply = Reply()
        request = SyncGroupRequest(
            group_id=group,
            generation_id=generation_id,
            member_id=member_id,
            group_instance_id=instance_id,
            protocol_type=protocol_type,
            protocol_name=protocol_name,
            assignments=[SyncGroupAssignment(m, a) for m, a in (assignments or {}).items()],
        )
        self.coordinator.sync(request, self.now, reply)
        self.check()
        return reply

    def heartbeat(
        self, member_id: str, generation_id: int, group: str = GROUP, instance_id: str | None = None
    ) -> HeartbeatResult:
        result = self.coordinator.heartbeat(
            HeartbeatRequest(group, generation_id, member_id, instance_id), self.now
        )
        self.check()
        return result

    def leave(self, *members: MemberIdentity, group: str = GROUP, api_version: int = 5) -> LeaveGroupResult:
        result = self.coordinator.leave(LeaveGroupRequest(group, list(members), api_version), self.now)
        self.check()
        return result

    def commit(
        self,
        offsets: dict[tuple[str, int], int],
        member_id: str = "",
        generation_id: int = -1,
        group: str = GROUP,
        metadata: str = "",
        api_version: int = 9,
        instance_id: str | None = None,
        retention_time_ms: int = -1,
    ) -> OffsetCommitResult:
        by_topic: dict[str, list[OffsetCommitRequestPartition]] = {}
        for (topic, partition), offset in offsets.items():
            by_topic.setdefault(topic, []).append(
                OffsetCommitRequestPartition(partition, offset, committed_metadata=metadata)
            )
        request = OffsetCommitRequest(
            group_id=group,
            topics=[OffsetCommitRequestTopic(topic, partitions) for topic, partitions in by_topic.items()],
            generation_id_or_member_epoch=generation_id,
            member_id=member_id,
            group_instance_id=instance_id,
            retention_time_ms=retention_time_ms,
            api_version=api_version,
        )
        result = self.coordinator.commit_offsets(request, self.now)
        self.check()
        return result

    def committed(self, group: str = GROUP) -> dict[tuple[str, int], int]:
        return {
            (topic, partition): offset.committed_offset
            for topic, partitions in self.coordinator.offsets.group_offsets(group).items()
            for partition, offset in partitions.items()
        }

    def stable_group(self, count: int, group: str = GROUP) -> tuple[list[str], int]:
        """Form a Stable group of ``count`` dynamic members; returns (member ids, generation)."""
        replies = [self.join_new(group=group) for _ in range(count)]
        self.settle(*replies)
        results = [reply.join() for reply in replies]
        generation = results[0].generation_id
        leader = results[0].leader
        member_ids = [result.member_id for result in results]
        assignments = {member_id: f"assignment-of-{member_id}".encode() for member_id in member_ids}
        syncs = [
            self.sync(member_id, generation, assignments if member_id == leader else None, group=group)
            for member_id in member_ids
        ]
        assert all(reply.sync().error.name == "NONE" for reply in syncs)
        return member_ids, generation


def commit_errors(result: OffsetCommitResult) -> set[str]:
    return {partition.error.name for topic in result.topics for partition in topic.partitions}
