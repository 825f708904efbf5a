"""The consumer group protocol of KIP-848 (ConsumerGroupHeartbeat, ConsumerGroupDescribe), where advertised.

KIP-848 moves assignment into the group coordinator.  A member sends ConsumerGroupHeartbeat (68)
with its member epoch (0 to join, -1 to leave, -2 for a static member leaving to come back) and,
the first time, its subscription and rebalance timeout; the coordinator answers its epoch and,
when it changed, the partitions the member may use now.  A partition moving between members is
first taken from its owner, and given to the new one only once the owner's heartbeat no longer
reports it: the protocol never lets two members own a partition at once.  OffsetCommit v9+ carries
the member epoch in place of the classic generation.

Every probe speaks through refka's codec (:mod:`conformance.speak`) at each version of the API that
the broker advertises and the codec declares, so a broker without KIP-848 (the reference broker
today) skips each test with a reason naming the missing API, discovered from ApiVersions.  The codes,
epochs and fields asserted are Apache Kafka's (4.3, KRaft), observed on the wire.

How the tests wait: assignment is asynchronous (Kafka recomputes a group's target assignment at
most every ``group.consumer.assignment.interval.ms``), so a test heartbeats until what it expects
arrives, bounded by a number of heartbeats (:data:`MAX_ROUNDS`), never by a clock.  Heartbeats are
paced at a fifth of that interval, read from the broker's configs when it reports it.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

from conformance import raw, speak
from reference.errors import Errors, by_name

CONSUMER_GROUP_HEARTBEAT, CONSUMER_GROUP_DESCRIBE, OFFSET_COMMIT = 68, 69, 8

# MemberEpoch values with a meaning of their own (ConsumerGroupHeartbeatRequest).
JOIN_EPOCH = 0
LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2

# KIP-848's codes beside the classic ones (Kafka's Errors.java).
FENCED_MEMBER_EPOCH = by_name["FENCED_MEMBER_EPOCH"].code  # 110
UNSUPPORTED_ASSIGNOR = by_name["UNSUPPORTED_ASSIGNOR"].code  # 112
STALE_MEMBER_EPOCH = by_name["STALE_MEMBER_EPOCH"].code  # 113

# The first version in which the client must generate its member id (KIP-1082).
CLIENT_MEMBER_ID_VERSION = 1
# The first OffsetCommit version in which GenerationIdOrMemberEpoch may be a KIP-848 member epoch.
MEMBER_EPOCH_COMMIT_VERSION = 9
# ConsumerGroupDescribe v1 tells a consumer-protocol member (1) from a classic one (0) (KIP-1099).
CONSUMER_MEMBER_TYPE = 1

PARTITIONS = 4
REBALANCE_TIMEOUT_MS = 30_000
ASSIGNOR = "uniform"  # one of KIP-848's two built-in server assignors (the other is "range")
MAX_ROUNDS = 100  # heartbeats (of each member) before a test gives up waiting for an assignment
QUIET_ROUNDS = 15  # heartbeats over which a test checks that nothing moves


@pytest.fixture(scope="module", autouse=True)
def group_coordinator_ready(bootstrap):
    """The first group request on a fresh cluster creates __consumer_offsets; wait for it once."""
    raw.group_coordinator(bootstrap.split(",")[0], "refka-conformance-warmup", timeout=60).close()


def _client_member_id() -> str:
    """A member id as a KIP-1082 client makes one: a random UUID, in Kafka's base64 form."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def _pace_s(capabilities) -> float:
    """Seconds between two heartbeat rounds: a fifth of the broker's assignment interval (KIP-848
    batches target assignment computations), 0.1 s when the broker does not report it."""
    interval = capabilities.broker_configs.get("group.consumer.assignment.interval.ms")
    return max(0.05, int(interval) / 5000) if interval and interval.isdigit() else 0.1


def _partitions(assignment) -> set[int]:
    return {p for topic in assignment.topic_partitions for p in topic.partitions}


# ---------------------------------------------------------------- a group seen through the protocol
@dataclass
class Member:
    """One member as the coordinator last described it to itself: its id, epoch and the partitions
    it may use (``owned``, which its next heartbeat reports, as a real consumer's does), and the
    partitions its last heartbeat reported (``reported``): a revoked partition is still the
    member's until a heartbeat no longer reports it."""

    label: str
    member_id: str
    instance_id: str | None = None
    epoch: int = JOIN_EPOCH
    owned: set[int] = field(default_factory=set)
    reported: set[int] = field(default_factory=set)
    epochs: list[int] = field(default_factory=list)  # every epoch the coordinator answered


class Group:
    """A KIP-848 group driven over one connection to its coordinator at one version.

    After every answer it checks the protocol's invariant: no partition is held by two members at
    once, a member holding what it was last assigned and what its last heartbeat still reported
    (so a partition may go to a new owner only after the old one reported giving it up).
    ``history`` keeps the heartbeats for failure messages."""

    def __init__(self, conn: raw.Connection, group_id: str, version: int, topic: str, topic_id: uuid.UUID,
                 pace_s: float) -> None:
        self.conn, self.group_id, self.version = conn, group_id, version
        self.topic, self.topic_id, self.pace_s = topic, topic_id, pace_s
        self.members: dict[str, Member] = {}
        self.history: list[str] = []

    def heartbeat(self, **fields: Any) -> Any:
        request = speak.body(CONSUMER_GROUP_HEARTBEAT, group_id=self.group_id, **fields)
        return raw.call(self.conn, CONSUMER_GROUP_HEARTBEAT, self.version, request)

    def owned(self, partitions: Iterable[int]) -> list[Any]:
        return [speak.item(CONSUMER_GROUP_HEARTBEAT, "TopicPartitions", topic_id=self.topic_id,
                           partitions=sorted(partitions))]

    def join(self, label: str, instance_id: str | None = None, **overrides: Any) -> Member:
        """The first heartbeat: epoch 0, the full subscription, an empty owned list.  From v1 the
        member names itself; in v0 it leaves the id empty and the coordinator chooses one."""
        member_id = _client_member_id() if self.version >= CLIENT_MEMBER_ID_VERSION else ""
        fields = dict(member_id=member_id, member_epoch=JOIN_EPOCH, instance_id=instance_id,
                      rebalance_timeout_ms=REBALANCE_TIMEOUT_MS, subscribed_topic_names=[self.topic],
                      server_assignor=ASSIGNOR, topic_partitions=[])
        answer = self.heartbeat(**(fields | overrides))
        self._record(label, JOIN_EPOCH, answer)
        assert answer.error_code == 0, f"v{self.version}: {label} joining: {self._error(answer)}"
        if member_id:
            assert answer.member_id == member_id, \
                f"v{self.version}: the coordinator answered member id {answer.member_id!r} to {member_id!r}"
        else:
            assert answer.member_id, f"v{self.version}: no member id generated for an empty one"
        member = Member(label, answer.member_id, instance_id)
        self.members[label] = member
        self._update(member, answer)
        return member

    def beat(self, member: Member) -> Any:
        """A heartbeat at the member's epoch, reporting what it owns (the rest unchanged: null)."""
        member.reported = set(member.owned)
        answer = self.heartbeat(member_id=member.member_id, member_epoch=member.epoch,
                                topic_partitions=self.owned(member.owned))
        self._record(member.label, member.epoch, answer)
        assert answer.error_code == 0, f"v{self.version}: heartbeat of {member.label}: {self._error(answer)}"
        self._update(member, answer)
        return answer

    def leave(self, member: Member, epoch: int = LEAVE_EPOCH) -> Any:
        answer = self.heartbeat(member_id=member.member_id, member_epoch=epoch, instance_id=member.instance_id)
        self._record(member.label, epoch, answer)
        del self.members[member.label]
        return answer

    def beat_until(self, members: list[Member], done: Callable[..., bool], what: str) -> None:
        """Heartbeat every member in turn until ``done(*members)``, at most MAX_ROUNDS rounds."""
        for _ in range(MAX_ROUNDS):
            if done(*members):
                return
            time.sleep(self.pace_s)
            for member in members:
                self.beat(member)
        assert done(*members), f"v{self.version}: after {MAX_ROUNDS} heartbeats of each member, {what}: {self.story()}"

    def describe(self, version: int) -> Any:
        answer = raw.call(self.conn, CONSUMER_GROUP_DESCRIBE, version,
                          speak.body(CONSUMER_GROUP_DESCRIBE, group_ids=[self.group_id]))
        assert [g.group_id for g in answer.groups] == [self.group_id], f"described {answer.groups}"
        return answer.groups[0]

    def story(self) -> str:
        return "\n  " + "\n  ".join(self.history[-30:])

    def _update(self, member: Member, answer: Any) -> None:
        member.epoch = answer.member_epoch
        member.epochs.append(answer.member_epoch)
        if answer.assignment is not None:
            assert {t.topic_id for t in answer.assignment.topic_partitions} <= {self.topic_id}, \
                f"v{self.version}: {member.label} assigned a topic it does not subscribe to: {answer.assignment}"
            member.owned = _partitions(answer.assignment)
        held = member.owned | member.reported
        for other in self.members.values():
            both = (other.owned | other.reported) & held
            if other is not member and both:
                raise AssertionError(f"v{self.version}: partitions {sorted(both)} held by both {other.label} and "
                                     f"{member.label} (assigned or still reported owned): {self.story()}")

    def _record(self, label: str, epoch: int, answer: Any) -> None:
        assignment = None if answer.assignment is None else sorted(_partitions(answer.assignment))
        self.history.append(f"{label} at epoch {epoch} -> error {answer.error_code}, epoch {answer.member_epoch}, "
                            f"assignment {assignment}")

    @staticmethod
    def _error(answer: Any) -> str:
        return f"error {answer.error_code} ({answer.error_message})"


@pytest.fixture
def consumer_groups(bootstrap, capabilities, topics):
    """``consumer_groups(version)``: a new group at that version over a new topic of PARTITIONS
    partitions, talking to the group's coordinator (closed at the end of the test)."""
    connections: list[raw.Connection] = []
    pace_s = _pace_s(capabilities)

    def make(version: int, partitions: int = PARTITIONS) -> Group:
        topic = topics.create(partitions=partitions)
        with raw.Connection.to(bootstrap.split(",")[0].strip()) as conn:
            topic_id = uuid.UUID(bytes=raw.topic_id(conn, topic))
        group_id = topics.name(f"g848-v{version}")
        conn = raw.group_coordinator(bootstrap.split(",")[0], group_id, timeout=60)
        connections.append(conn)
        return Group(conn, group_id, version, topic, topic_id, pace_s)

    yield make
    for conn in connections:
        conn.close()


def _versions(capabilities, api_key: int, first: int = 0) -> list[int]:
    """The versions of a KIP-848 API to probe (:func:`conformance.speak.versions`); a broker that
    does not advertise the API at all skips the test with a reason naming it."""
    if capabilities.api_versions.apis.get(api_key) is None:
        pytest.skip(f"broker does not advertise {speak.api(api_key).name} (API {api_key}, KIP-848)")
    return speak.versions(capabilities, api_key, first)


def _heartbeat_versions(capabilities, first: int = 0) -> list[int]:
    return _versions(capabilities, CONSUMER_GROUP_HEARTBEAT, first)


def _describe_versions(capabilities) -> list[int]:
    return _versions(capabilities, CONSUMER_GROUP_DESCRIBE)


# ---------------------------------------------------------------- joining, rebalancing, leaving
def test_join_assigns_every_partition(consumer_groups, capabilities):
    """A lone member joining at epoch 0 is answered an epoch > 0 and, over heartbeats, every
    partition of its subscribed topic; v1 echoes the member id the client generated (KIP-1082), v0
    generates one for an empty id.  The epoch then stays put while nothing changes."""
    for version in _heartbeat_versions(capabilities):
        group = consumer_groups(version)
        member = group.join("a")
        assert member.epoch > 0, f"v{version}: joined at epoch {member.epoch}: {group.story()}"
        group.beat_until([member], lambda m: m.owned == set(range(PARTITIONS)),
                         f"the lone member does not own all {PARTITIONS} partitions")
        settled = member.epoch
        for _ in range(3):
            answer = group.beat(member)
            assert (answer.member_epoch, answer.assignment) == (settled, None), \
                f"v{version}: an idle heartbeat changed the epoch or resent the assignment: {group.story()}"


def test_client_must_generate_member_id(consumer_groups, capabilities):
    """From v1 the member id is the client's to generate (KIP-1082): joining with an empty one is
    INVALID_REQUEST (42) with "MemberId can't be empty."."""
    for version in _heartbeat_versions(capabilities, CLIENT_MEMBER_ID_VERSION):
        group = consumer_groups(version)
        answer = group.heartbeat(member_id="", member_epoch=JOIN_EPOCH, rebalance_timeout_ms=REBALANCE_TIMEOUT_MS,
                                 subscribed_topic_names=[group.topic], topic_partitions=[])
        assert (answer.error_code, answer.error_message) == (Errors.INVALID_REQUEST.code, "MemberId can't be empty."), \
            f"v{version}: observed error {answer.error_code} ({answer.error_message})"


def test_second_member_gets_partitions_only_after_revocation(consumer_groups, capabilities):
    """A second member joins: over heartbeats the first gives up half of the partitions and the
    second receives them, each ending with two (uniform assignor, four partitions) and at a higher
    epoch.  At no point does the protocol assign one partition to both members: the newcomer gets a
    partition only after the first member's heartbeat stopped reporting it."""
    for version in _heartbeat_versions(capabilities):
        group = consumer_groups(version)
        first = group.join("first")
        group.beat_until([first], lambda m: m.owned == set(range(PARTITIONS)), "the first member owns not all")
        epoch_alone = first.epoch
        second = group.join("second")
        group.beat_until([first, second], lambda a, b: len(a.owned) == len(b.owned) == PARTITIONS // 2,
                         "the partitions are not split two and two")
        assert first.owned | second.owned == set(range(PARTITIONS)), f"v{version}: {group.story()}"
        assert first.epoch > epoch_alone and second.epoch > epoch_alone, \
            f"v{version}: epochs did not rise past {epoch_alone} with the rebalance: {group.story()}"


def test_leave_gives_the_remaining_member_everything(consumer_groups, capabilities):
    """A member leaving with epoch -1 is answered epoch -1 and no error; the remaining member then
    gets every partition, at a higher epoch.  Leaving again is UNKNOWN_MEMBER_ID (25).  When the last
    member leaves, ConsumerGroupDescribe shows the group "Empty", with no members."""
    for version in _heartbeat_versions(capabilities):
        group = consumer_groups(version)
        stays, goes = group.join("stays"), group.join("goes")
        group.beat_until([stays, goes], lambda a, b: len(a.owned) == len(b.owned) == PARTITIONS // 2,
                         "the partitions are not split two and two")
        epoch_before = stays.epoch
        left = group.leave(goes)
        assert (left.error_code, left.member_epoch) == (0, LEAVE_EPOCH), \
            f"v{version}: leaving answered error {left.error_code}, epoch {left.member_epoch}"
        group.beat_until([stays], lambda m: m.owned == set(range(PARTITIONS)),
                         "the remaining member did not get every partition")
        assert stays.epoch > epoch_before, f"v{version}: epoch did not rise past {epoch_before}: {group.story()}"
        again = group.heartbeat(member_id=goes.member_id, member_epoch=LEAVE_EPOCH)
        assert again.error_code == Errors.UNKNOWN_MEMBER_ID.code, \
            f"v{version}: leaving twice answered error {again.error_code} ({again.error_message})"
        group.leave(stays)
        for describe_version in _describe_versions(capabilities):
            described = group.describe(describe_version)
            assert (described.error_code, described.group_state, described.members) == (0, "Empty", []), \
                f"v{version}: the group after its last member left: {described}"


def test_static_member_leaves_and_returns(consumer_groups, capabilities):
    """A static member (InstanceId, KIP-345) leaving with epoch -2 is answered epoch -2; it keeps
    its partitions while away (the other member is not given them, and ConsumerGroupDescribe lists
    it at epoch -2 with its assignment).  Rejoining under the same instance id with a new member id
    gets the same partitions back and retires the old id (UNKNOWN_MEMBER_ID, 25).  Leaving with
    -1 instead hands its partitions to the other member."""
    for version in _heartbeat_versions(capabilities):
        group = consumer_groups(version)
        dynamic, static = group.join("dynamic"), group.join("static", instance_id="instance-1")
        group.beat_until([dynamic, static], lambda a, b: len(a.owned) == len(b.owned) == PARTITIONS // 2,
                         "the partitions are not split two and two")
        kept, dynamic_owned = set(static.owned), set(dynamic.owned)
        left = group.leave(static, STATIC_LEAVE_EPOCH)
        assert (left.error_code, left.member_epoch) == (0, STATIC_LEAVE_EPOCH), \
            f"v{version}: a static leave answered error {left.error_code}, epoch {left.member_epoch}"
        for _ in range(QUIET_ROUNDS):
            time.sleep(group.pace_s)
            group.beat(dynamic)
            assert dynamic.owned == dynamic_owned, \
                f"v{version}: the away static member's partitions moved: {group.story()}"
        for describe_version in _describe_versions(capabilities):
            away = {m.instance_id: m for m in group.describe(describe_version).members}.get("instance-1")
            assert away is not None and away.member_epoch == STATIC_LEAVE_EPOCH \
                and _partitions(away.assignment) == kept, f"v{version}: the away static member: {away}"

        returned = group.join("static again", instance_id="instance-1")
        group.beat_until([dynamic, returned], lambda _, r, kept=kept: r.owned == kept,
                         "the static member did not get its partitions back")
        stale = group.heartbeat(member_id=static.member_id, member_epoch=returned.epoch)
        assert stale.error_code == Errors.UNKNOWN_MEMBER_ID.code, \
            f"v{version}: the replaced member id answered error {stale.error_code} ({stale.error_message})"

        left = group.leave(returned, LEAVE_EPOCH)
        assert (left.error_code, left.member_epoch) == (0, LEAVE_EPOCH), f"v{version}: {left}"
        group.beat_until([dynamic], lambda m: m.owned == set(range(PARTITIONS)),
                         "a static member leaving with -1 did not hand its partitions over")


# ---------------------------------------------------------------- error paths
def test_unknown_member_is_refused(consumer_groups, capabilities):
    """A heartbeat at an epoch > 0 from a member id the group does not know is UNKNOWN_MEMBER_ID
    (25), with a message."""
    for version in _heartbeat_versions(capabilities):
        group = consumer_groups(version)
        member = group.join("a")
        answer = group.heartbeat(member_id=_client_member_id(), member_epoch=member.epoch)
        assert answer.error_code == Errors.UNKNOWN_MEMBER_ID.code and answer.error_message, \
            f"v{version}: observed error {answer.error_code} ({answer.error_message})"


@pytest.mark.parametrize("which", ["older", "greater"])
def test_wrong_member_epoch_is_fenced(consumer_groups, capabilities, which):
    """A known member heartbeating at an epoch other than its current one is FENCED_MEMBER_EPOCH
    (110), with a message: it must give up its partitions and rejoin at 0.  The older epoch is one
    the member really had before a second member's arrival moved it on; the greater one was never
    given."""
    for version in _heartbeat_versions(capabilities):
        group = consumer_groups(version)
        member = group.join("a")
        if which == "older":
            other = group.join("b")
            group.beat_until([member, other], lambda a, _: a.epoch > a.epochs[0], "the first member's epoch stayed")
            wrong = member.epochs[0]
        else:
            wrong = member.epoch + 1
        answer = group.heartbeat(member_id=member.member_id, member_epoch=wrong)
        assert answer.error_code == FENCED_MEMBER_EPOCH and answer.error_message, \
            f"v{version}: epoch {wrong} for {member.epoch}: observed error {answer.error_code} " \
            f"({answer.error_message}): {group.story()}"


# What a joining heartbeat leaves out -> the fields sent instead, and Kafka's message.
FIRST_HEARTBEAT_GAPS = {
    "no-subscription": ({"subscribed_topic_names": None},
                        "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining."),
    "no-rebalance-timeout": ({"rebalance_timeout_ms": -1}, "RebalanceTimeoutMs must be provided in first request."),
    "no-owned-partitions": ({"topic_partitions": None}, "TopicPartitions must be empty when (re-)joining."),
    "empty-group-id": ({"group_id": ""}, "GroupId can't be empty."),
}


@pytest.mark.parametrize("gap", list(FIRST_HEARTBEAT_GAPS))
def test_first_heartbeat_needs_its_fields(consumer_groups, capabilities, gap):
    """The joining heartbeat must carry a group id, a subscription, a rebalance timeout and an
    empty owned-partitions list: without one it is INVALID_REQUEST (42) with a message naming it."""
    missing, message = FIRST_HEARTBEAT_GAPS[gap]
    for version in _heartbeat_versions(capabilities):
        group = consumer_groups(version)
        fields = dict(group_id=group.group_id, member_id=_client_member_id(), member_epoch=JOIN_EPOCH,
                      rebalance_timeout_ms=REBALANCE_TIMEOUT_MS, subscribed_topic_names=[group.topic],
                      topic_partitions=[]) | missing
        answer = raw.call(group.conn, CONSUMER_GROUP_HEARTBEAT, version, speak.body(CONSUMER_GROUP_HEARTBEAT, **fields))
        assert (answer.error_code, answer.error_message) == (Errors.INVALID_REQUEST.code, message), \
            f"v{version}: observed error {answer.error_code} ({answer.error_message})"


def test_unknown_server_assignor_is_refused(consumer_groups, capabilities):
    """Joining with a ServerAssignor the broker does not have is UNSUPPORTED_ASSIGNOR (112), with a
    message; the member is not admitted."""
    for version in _heartbeat_versions(capabilities):
        group = consumer_groups(version)
        answer = group.heartbeat(member_id=_client_member_id(), member_epoch=JOIN_EPOCH,
                                 rebalance_timeout_ms=REBALANCE_TIMEOUT_MS, subscribed_topic_names=[group.topic],
                                 topic_partitions=[], server_assignor="no-such-assignor")
        assert answer.error_code == UNSUPPORTED_ASSIGNOR and answer.error_message, \
            f"v{version}: observed error {answer.error_code} ({answer.error_message})"
        described = group.describe(_describe_versions(capabilities)[-1])
        assert described.error_code == Errors.GROUP_ID_NOT_FOUND.code, \
            f"v{version}: the refused member created the group: {described}"


def _classic_group(bootstrap, group_id, protocol_type):
    """A classic group with one member (JoinGroup, then SyncGroup), its protocol metadata empty."""
    with raw.group_coordinator(bootstrap.split(",")[0], group_id, timeout=60) as conn:
        joined = raw.join_group(conn, group_id, protocol_type=protocol_type, session_timeout_ms=60_000)
        if joined.error_code == Errors.MEMBER_ID_REQUIRED.code:  # KIP-394: join again with the id given
            joined = raw.join_group(conn, group_id, member_id=joined.member_id, protocol_type=protocol_type,
                                    session_timeout_ms=60_000)
        if joined.error_code != 0:
            raise raw.SetupFailed(f"JoinGroup v5 of the classic group {group_id!r} answered {joined.error_code}")
        synced = raw.sync_group(conn, group_id, joined.generation_id, joined.member_id, {joined.member_id: b""})
        if synced != 0:
            raise raw.SetupFailed(f"SyncGroup v3 of the classic group {group_id!r} answered {synced}")


@pytest.mark.parametrize("protocol_type", ["consumer", "connect"])
def test_classic_group_is_not_a_consumer_group(bootstrap, capabilities, topics, protocol_type):
    """A ConsumerGroupHeartbeat joining a non-empty classic group that cannot be converted (its
    member's metadata is not a consumer subscription, or its protocol type is not "consumer") is
    GROUP_ID_NOT_FOUND (69), with a message; ConsumerGroupDescribe of a classic group is also
    GROUP_ID_NOT_FOUND, "Group <id> is not a consumer group."."""
    heartbeat_versions = _heartbeat_versions(capabilities)
    topic = topics.create(partitions=1)
    group_id = topics.name(f"classic-{protocol_type}")
    _classic_group(bootstrap, group_id, protocol_type)
    with raw.group_coordinator(bootstrap.split(",")[0], group_id, timeout=60) as conn:
        for version in heartbeat_versions:
            answer = raw.call(conn, CONSUMER_GROUP_HEARTBEAT, version, speak.body(
                CONSUMER_GROUP_HEARTBEAT, group_id=group_id, member_id=_client_member_id(), member_epoch=JOIN_EPOCH,
                rebalance_timeout_ms=REBALANCE_TIMEOUT_MS, subscribed_topic_names=[topic], topic_partitions=[]))
            assert answer.error_code == Errors.GROUP_ID_NOT_FOUND.code and answer.error_message, \
                f"v{version}: observed error {answer.error_code} ({answer.error_message})"
        for version in _describe_versions(capabilities):
            described = raw.call(conn, CONSUMER_GROUP_DESCRIBE, version,
                                 speak.body(CONSUMER_GROUP_DESCRIBE, group_ids=[group_id])).groups
            assert [(g.group_id, g.error_code, g.error_message) for g in described] == [
                (group_id, Errors.GROUP_ID_NOT_FOUND.code, f"Group {group_id} is not a consumer group.")], \
                f"ConsumerGroupDescribe v{version}: observed {described}"


# ---------------------------------------------------------------- ConsumerGroupDescribe
def test_describe_shows_members_and_assignments(consumer_groups, capabilities):
    """ConsumerGroupDescribe of a settled one-member group: "Stable", group epoch = assignment
    epoch = the member's epoch, the assignor asked for, and the member with its client id, host,
    subscription, and an assignment equal to its target assignment, topics named and by id; v1
    marks it a consumer-protocol member (KIP-1099)."""
    version = _heartbeat_versions(capabilities)[-1]
    describe_versions = _describe_versions(capabilities)
    group = consumer_groups(version)
    member = group.join("a")
    group.beat_until([member], lambda m: m.owned == set(range(PARTITIONS)), "the lone member owns not all")
    everything = [(group.topic_id, group.topic, list(range(PARTITIONS)))]
    for describe_version in describe_versions:
        described = group.describe(describe_version)
        assert (described.error_code, described.group_state, described.group_epoch, described.assignment_epoch,
                described.assignor_name) == (0, "Stable", member.epoch, member.epoch, ASSIGNOR), \
            f"v{describe_version}: {described}"
        assert len(described.members) == 1, f"v{describe_version}: {described.members}"
        entry = described.members[0]
        assert (entry.member_id, entry.instance_id, entry.member_epoch, entry.client_id,
                entry.subscribed_topic_names) == (member.member_id, None, member.epoch, group.conn.client_id,
                                                  [group.topic]), f"v{describe_version}: {entry}"
        assert "127.0.0.1" in entry.client_host, f"v{describe_version}: client host {entry.client_host!r}"
        for name, assignment in (("assignment", entry.assignment), ("target assignment", entry.target_assignment)):
            assert [(t.topic_id, t.topic_name, sorted(t.partitions)) for t in assignment.topic_partitions] == \
                everything, f"v{describe_version}: {name} {assignment}"
        if describe_version >= 1:
            assert entry.member_type == CONSUMER_MEMBER_TYPE, f"v{describe_version}: member type {entry.member_type}"


def test_describe_unknown_group(bootstrap, capabilities, topics):
    """ConsumerGroupDescribe of a group nobody created, asked of its coordinator: GROUP_ID_NOT_FOUND
    (69), "Group <id> not found.", in that group's entry; asked of a broker that does not coordinate
    it (a cluster of two or more): NOT_COORDINATOR (16)."""
    describe_versions = _describe_versions(capabilities)
    unknown = topics.name("g848-unknown")
    request = speak.body(CONSUMER_GROUP_DESCRIBE, group_ids=[unknown])
    with raw.group_coordinator(bootstrap.split(",")[0], unknown, timeout=60) as conn:
        for version in describe_versions:
            described = [(g.group_id, g.error_code, g.error_message)
                         for g in raw.call(conn, CONSUMER_GROUP_DESCRIBE, version, request).groups]
            assert described == [(unknown, Errors.GROUP_ID_NOT_FOUND.code, f"Group {unknown} not found.")], \
                f"v{version}: observed {described}"
    with raw.Connection.to(bootstrap.split(",")[0].strip()) as conn:
        coordinator = raw.find_coordinator(conn, unknown).node_id
    others = [address for node, address in capabilities.broker_addresses.items() if node != coordinator]
    if not others:
        return  # one broker: it coordinates every group
    with raw.Connection.to(others[0]) as conn:
        for version in describe_versions:
            described = [(g.group_id, g.error_code) for g in raw.call(conn, CONSUMER_GROUP_DESCRIBE, version,
                                                                      request).groups]
            assert described == [(unknown, Errors.NOT_COORDINATOR.code)], \
                f"v{version} asked of a broker other than the coordinator ({coordinator}): observed {described}"


# ---------------------------------------------------------------- OffsetCommit with a member epoch
def _commit(group: Group, version: int, member_id: str, epoch: int, offset: int) -> list[int]:
    request = speak.body(OFFSET_COMMIT, group_id=group.group_id, generation_id_or_member_epoch=epoch,
                         member_id=member_id, topics=[speak.item(
                             OFFSET_COMMIT, "OffsetCommitRequestTopic", name=group.topic, topic_id=group.topic_id,
                             partitions=[speak.item(OFFSET_COMMIT, "OffsetCommitRequestPartition", partition_index=0,
                                                    committed_offset=offset, committed_metadata="")])])
    answer = raw.call(group.conn, OFFSET_COMMIT, version, request)
    return [p.error_code for t in answer.topics for p in t.partitions]


def test_offset_commit_checks_member_epoch(consumer_groups, capabilities, bootstrap):
    """OffsetCommit v9+ from a KIP-848 member carries its member epoch: the current one is accepted
    (and the offset stored), a smaller or greater one is STALE_MEMBER_EPOCH (113) and stores
    nothing, an unknown member id is UNKNOWN_MEMBER_ID (25)."""
    heartbeat_version = _heartbeat_versions(capabilities)[-1]
    commit_versions = speak.versions(capabilities, OFFSET_COMMIT, MEMBER_EPOCH_COMMIT_VERSION)
    group = consumer_groups(heartbeat_version)
    member = group.join("a")
    group.beat_until([member], lambda m: m.owned == set(range(PARTITIONS)), "the lone member owns not all")
    for number, version in enumerate(commit_versions):
        accepted = 10 * (number + 1)
        assert _commit(group, version, member.member_id, member.epoch, accepted) == [0], \
            f"OffsetCommit v{version} at the member's epoch {member.epoch}"
        for wrong in (member.epoch - 1, member.epoch + 1):
            assert _commit(group, version, member.member_id, wrong, accepted + 1) == [STALE_MEMBER_EPOCH], \
                f"OffsetCommit v{version} at epoch {wrong}, the member's being {member.epoch}"
        assert _commit(group, version, _client_member_id(), member.epoch, accepted + 2) == [
            Errors.UNKNOWN_MEMBER_ID.code], f"OffsetCommit v{version} from an unknown member"
        committed = raw.committed_offset(bootstrap, group.group_id, group.topic, 0)
        assert (committed.error_code, committed.offset) == (0, accepted), \
            f"OffsetCommit v{version}: committed {accepted}, then refused commits; OffsetFetch reads {committed}"


def test_member_commit_below_v9_is_unsupported(consumer_groups, capabilities):
    """A KIP-848 member committing with OffsetCommit below v9 (which cannot carry a member epoch)
    is UNSUPPORTED_VERSION (35), whatever the generation it gives."""
    heartbeat_version = _heartbeat_versions(capabilities)[-1]
    commit_versions = speak.versions(capabilities, OFFSET_COMMIT, 0, MEMBER_EPOCH_COMMIT_VERSION - 1)
    group = consumer_groups(heartbeat_version)
    member = group.join("a")
    for version in commit_versions:
        assert _commit(group, version, member.member_id, member.epoch, 5) == [Errors.UNSUPPORTED_VERSION.code], \
            f"OffsetCommit v{version} from member {member.member_id} at epoch {member.epoch}"
