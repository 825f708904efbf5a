"""Consumer groups (classic protocol, KIP-62/KIP-345/KIP-394): membership, assignment, offsets."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conformance import raw
from conformance.clients import ClientLacks, Message
from reference.errors import Errors


@pytest.fixture(scope="module", autouse=True)
def group_coordinator_ready(bootstrap):
    """The first group request on a fresh cluster creates __consumer_offsets (50 partitions);
    wait for a coordinator once so that timing in the tests below is about the group protocol."""
    raw.group_coordinator(bootstrap.split(",")[0], "refka-conformance-warmup", timeout=60).close()


def _member(client, topic, group, config=None):
    try:
        return client.group_member(topic, group, config)
    except ClientLacks as missing:
        pytest.skip(str(missing))


def _poll_all_until(members, predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for member in members:
            member.poll(0.1)
        if predicate():
            return True
    return False


def test_join_assigns_all_partitions_and_consumes(client, topics):
    """JoinGroup/SyncGroup: a lone member of a new group is assigned every partition of its
    subscription and consumes what was produced."""
    topic = topics.create(partitions=2)
    client.produce(topic, [Message(None, f"{p}".encode(), partition=p) for p in (0, 1)])
    member = _member(client, topic, topics.name("group"))
    try:
        received = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(received) < 2:
            received.extend(member.poll(0.2))
        assert member.assignment() == {0, 1}, f"expected {{0, 1}}, observed {member.assignment()}"
        assert sorted(m.value for m in received) == [b"0", b"1"]
    finally:
        member.close()


# Members in the tests below ask for a session timeout far longer than any wait for a rebalance,
# so that only the behaviour under test (a LeaveGroup, a static rejoin) can explain a rebalance
# within the wait: a member that is merely gone would keep its place until the session expires.
LONG_SESSION_MS = 60_000
REBALANCE_WAIT_S = 20.0
SESSION_TIMEOUT_KEY = {"kafka-python": "session_timeout_ms", "aiokafka": "session_timeout_ms",
                       "confluent-kafka": "session.timeout.ms", "refka": "session.timeout.ms"}


def _long_session(client, capabilities):
    """Client config for LONG_SESSION_MS, or a skip when the client has no group adapter or the
    broker caps sessions below it (group.max.session.timeout.ms)."""
    if client.name not in SESSION_TIMEOUT_KEY:
        pytest.skip(f"{client.name} has no group consumer adapter")
    cap = capabilities.broker_config_ms("group.max.session.timeout.ms")
    if cap is not None and cap < LONG_SESSION_MS:
        pytest.skip(f"group.max.session.timeout.ms is {cap} ms, below the {LONG_SESSION_MS} ms these tests need")
    return {SESSION_TIMEOUT_KEY[client.name]: LONG_SESSION_MS}


def _describe(bootstrap, capabilities, group):
    version = raw.negotiate(capabilities.api_versions, raw.DESCRIBE_GROUPS)
    if version is None:
        pytest.skip("broker advertises no DescribeGroups version the suite speaks (v4-v6)")
    with raw.group_coordinator(bootstrap.split(",")[0], group) as conn:
        return raw.describe_group(conn, group, version)


def test_rebalance_on_join_and_leave(client, topics, capabilities, bootstrap):
    """Rebalance protocol: a second member joining splits the partitions between both (no partition
    owned twice); when it leaves (LeaveGroup on close) the first member owns them all again at
    once, long before the leaver's session could have expired, and the group lists one member."""
    config = _long_session(client, capabilities)
    topic = topics.create(partitions=2)
    group = topics.name("group")
    first = _member(client, topic, group, config)
    second = None
    try:
        assert _poll_all_until([first], lambda: first.assignment() == {0, 1}), first.assignment()
        second = _member(client, topic, group, config)
        split = _poll_all_until([first, second], lambda: len(first.assignment()) == 1
                                and len(second.assignment()) == 1
                                and first.assignment() | second.assignment() == {0, 1})
        assert split, f"expected one partition each, observed {first.assignment()} / {second.assignment()}"
        assert len(_describe(bootstrap, capabilities, group).members) == 2
        second.close()
        second = None
        assert _poll_all_until([first], lambda: first.assignment() == {0, 1}, timeout=REBALANCE_WAIT_S), \
            f"expected {{0, 1}} after the leave, observed {first.assignment()}"
        described = _describe(bootstrap, capabilities, group)
        assert (described.state, len(described.members)) == ("Stable", 1), f"observed {described}"
    finally:
        first.close()
        if second is not None:
            second.close()


def test_commit_then_fetch_offsets(client, topics, bootstrap):
    """OffsetCommit/OffsetFetch: offsets a member commits are what OffsetFetch returns for the
    group (the next offset to consume, i.e. last consumed + 1)."""
    topic = topics.create(partitions=1)
    group = topics.name("group")
    client.produce(topic, [Message(None, f"{i}".encode(), partition=0) for i in range(5)])
    member = _member(client, topic, group)
    try:
        received = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(received) < 5:
            received.extend(member.poll(0.2))
        assert len(received) == 5
        member.commit()
    finally:
        member.close()
    with raw.group_coordinator(bootstrap.split(",")[0], group) as conn:
        committed = raw.offset_fetch(conn, group, topic, [0])
    assert committed[0].error_code == 0 and committed[0].offset == 5, f"expected offset 5, observed {committed}"


def test_static_member_rejoins_without_rebalance(client, topics, capabilities, bootstrap):
    """KIP-345 static membership: a member with group.instance.id that closes without leaving stays
    in the group; coming back with the same id it replaces its old self and gets the same
    partitions at once, although the old member's session has not expired; the group still has
    that one member."""
    key = {"kafka-python": "group_instance_id", "aiokafka": "group_instance_id",
           "confluent-kafka": "group.instance.id", "refka": "group.instance.id"}.get(client.name)
    if key is None:
        pytest.skip(f"{client.name} has no group consumer adapter")
    config = {key: "static-1", **_long_session(client, capabilities)}
    topic = topics.create(partitions=2)
    group = topics.name("group")
    try:
        member = _member(client, topic, group, config)
    except TypeError as unsupported:
        pytest.skip(f"{client.name} does not support group.instance.id: {unsupported}")
    try:
        assert _poll_all_until([member], lambda: member.assignment() == {0, 1}), member.assignment()
    finally:
        member.close()
    gone = _describe(bootstrap, capabilities, group)
    if not gone.members:
        pytest.skip(f"{client.name} sends LeaveGroup on close even as a static member: nothing to rejoin")
    assert [m.group_instance_id for m in gone.members] == ["static-1"], f"observed {gone}"
    again = _member(client, topic, group, config)
    try:
        assert _poll_all_until([again], lambda: again.assignment() == {0, 1}, timeout=REBALANCE_WAIT_S), \
            again.assignment()
        back = _describe(bootstrap, capabilities, group)
        assert [m.group_instance_id for m in back.members] == ["static-1"], f"observed {back}"
        assert back.members[0].member_id != gone.members[0].member_id, "the rejoin replaces the old member id"
    finally:
        again.close()


# ---------------------------------------------------------------- raw group protocol probes
def _join(conn, group, instance_id=None, session_timeout_ms=10000):
    """Join as a new member, answering KIP-394's MEMBER_ID_REQUIRED round trip for dynamic members."""
    first = raw.join_group(conn, group, group_instance_id=instance_id, session_timeout_ms=session_timeout_ms)
    if first.error_code == Errors.MEMBER_ID_REQUIRED.code:
        first = raw.join_group(conn, group, member_id=first.member_id, group_instance_id=instance_id,
                               session_timeout_ms=session_timeout_ms)
    return first


def _join_and_sync(conn, group, instance_id=None, session_timeout_ms=10000):
    joined = _join(conn, group, instance_id, session_timeout_ms)
    assert joined.error_code == 0, f"JoinGroup failed with {joined.error_code}"
    synced = raw.sync_group(conn, group, joined.generation_id, joined.member_id, {joined.member_id: b""},
                            group_instance_id=instance_id)
    assert synced == 0, f"SyncGroup failed with {synced}"
    return joined


def test_member_id_required_for_new_dynamic_member(bootstrap, topics):
    """KIP-394: JoinGroup v4+ from a new member with an empty member id is answered with
    MEMBER_ID_REQUIRED (79) and a broker-assigned member id to rejoin with."""
    group = topics.name("group")
    with raw.group_coordinator(bootstrap.split(",")[0], group) as conn:
        first = raw.join_group(conn, group)
        assert first.error_code == Errors.MEMBER_ID_REQUIRED.code, f"expected 79, observed {first.error_code}"
        assert first.member_id, "the answer carries the member id to use"
        second = raw.join_group(conn, group, member_id=first.member_id)
        assert second.error_code == 0 and second.member_id == first.member_id
        assert second.leader == first.member_id and second.generation_id >= 1


def test_generation_fencing_on_commit_and_heartbeat(bootstrap, topics):
    """OffsetCommit and Heartbeat are fenced by generation: a stale generation gets
    ILLEGAL_GENERATION (22), an unknown member id UNKNOWN_MEMBER_ID (25)."""
    topic = topics.create()
    group = topics.name("group")
    with raw.group_coordinator(bootstrap.split(",")[0], group) as conn:
        joined = _join_and_sync(conn, group)
        generation, member = joined.generation_id, joined.member_id
        assert raw.heartbeat(conn, group, generation, member) == 0
        assert raw.offset_commit(conn, group, generation, member, topic, {0: 1}) == {0: 0}
        stale = raw.offset_commit(conn, group, generation + 1, member, topic, {0: 2})
        assert stale == {0: Errors.ILLEGAL_GENERATION.code}, f"expected ILLEGAL_GENERATION, observed {stale}"
        unknown = raw.offset_commit(conn, group, generation, "no-such-member", topic, {0: 3})
        assert unknown == {0: Errors.UNKNOWN_MEMBER_ID.code}, f"expected UNKNOWN_MEMBER_ID, observed {unknown}"
        assert raw.heartbeat(conn, group, generation + 1, member) == Errors.ILLEGAL_GENERATION.code
        assert raw.offset_fetch(conn, group, topic, [0])[0].offset == 1, "fenced commits must not be stored"


def test_simple_commit_for_group_without_members(bootstrap, topics):
    """A "simple" commit (generation -1, empty member id) is allowed for a group with no members;
    the committed offset is then returned by OffsetFetch."""
    topic = topics.create()
    group = topics.name("group")
    with raw.group_coordinator(bootstrap.split(",")[0], group) as conn:
        assert raw.offset_commit(conn, group, -1, "", topic, {0: 42}) == {0: 0}
        assert raw.offset_fetch(conn, group, topic, [0])[0].offset == 42
    other = topics.name("other")
    with raw.group_coordinator(bootstrap.split(",")[0], other) as conn:
        assert raw.offset_fetch(conn, other, topic, [0])[0].offset == -1, "nothing committed for another group"


def test_session_timeout_expires_silent_member(bootstrap, topics):
    """session.timeout.ms (KIP-62): a member that stops heartbeating is removed after its session
    timeout; its next heartbeat gets UNKNOWN_MEMBER_ID (25)."""
    group = topics.name("group")
    with raw.group_coordinator(bootstrap.split(",")[0], group) as conn:
        joined = _join_and_sync(conn, group, session_timeout_ms=6000)
        alive = raw.heartbeat(conn, group, joined.generation_id, joined.member_id)
        assert alive == 0, f"a member within its session: expected NONE(0), observed {alive}"
        time.sleep(8.0)
        answer = raw.heartbeat(conn, group, joined.generation_id, joined.member_id)
    assert answer == Errors.UNKNOWN_MEMBER_ID.code, f"expected UNKNOWN_MEMBER_ID(25), observed {answer}"


def test_invalid_session_timeout(bootstrap, topics):
    """JoinGroup with a session timeout below group.min.session.timeout.ms: INVALID_SESSION_TIMEOUT (26)."""
    group = topics.name("group")
    with raw.group_coordinator(bootstrap.split(",")[0], group) as conn:
        answer = raw.join_group(conn, group, session_timeout_ms=1)
    assert answer.error_code == Errors.INVALID_SESSION_TIMEOUT.code, f"expected 26, observed {answer.error_code}"


def test_static_member_replaced_old_id_fenced(bootstrap, topics):
    """KIP-345: a JoinGroup with a known group.instance.id and a new member id replaces the old
    member without a new generation; the old member id is then fenced with FENCED_INSTANCE_ID (82)."""
    group = topics.name("group")
    with raw.group_coordinator(bootstrap.split(",")[0], group) as conn:
        original = _join_and_sync(conn, group, instance_id="instance-a")
        replacement = raw.join_group(conn, group, group_instance_id="instance-a")
        assert replacement.error_code == 0, f"static rejoin failed with {replacement.error_code}"
        assert replacement.member_id != original.member_id
        assert replacement.generation_id == original.generation_id, "no rebalance for a static rejoin"
        fenced = raw.heartbeat(conn, group, original.generation_id, original.member_id, "instance-a")
    assert fenced == Errors.FENCED_INSTANCE_ID.code, f"expected FENCED_INSTANCE_ID(82), observed {fenced}"


def test_leave_group_rebalances_the_remaining_members(bootstrap, topics, capabilities):
    """LeaveGroup (v3+, by member): the leaving member is removed at once and the group rebalances:
    the remaining member's next heartbeat gets REBALANCE_IN_PROGRESS (27), and its rejoin opens a
    new generation with itself as the only member.  Sessions are far longer than the test, so
    nothing but the LeaveGroup can explain the rebalance."""
    version = raw.negotiate(capabilities.api_versions, raw.LEAVE_GROUP)
    if version is None:
        pytest.skip("broker advertises no LeaveGroup version the suite speaks (v3-v5)")
    group = topics.name("group")
    session = LONG_SESSION_MS
    address = bootstrap.split(",")[0]
    with raw.group_coordinator(address, group) as first, raw.group_coordinator(address, group) as second, \
            ThreadPoolExecutor(max_workers=1) as pool:
        alone = _join_and_sync(first, group, session_timeout_ms=session)
        joining = pool.submit(_join, second, group, None, session)  # answered once the first rejoins
        rebalancing = _wait_for_heartbeat(first, group, alone, Errors.REBALANCE_IN_PROGRESS.code)
        assert rebalancing == Errors.REBALANCE_IN_PROGRESS.code, \
            f"a second member joining: expected 27, observed {rebalancing}"
        both = raw.join_group(first, group, member_id=alone.member_id, session_timeout_ms=session)
        joined = joining.result(30)
        assert (both.error_code, joined.error_code) == (0, 0), f"observed {both} / {joined}"
        assert both.generation_id == joined.generation_id > alone.generation_id
        assert sorted(both.members) == sorted([alone.member_id, joined.member_id]), f"observed {both}"
        leader_sync = raw.sync_group(first, group, both.generation_id, alone.member_id,
                                     {member: b"" for member in both.members})
        follower_sync = raw.sync_group(second, group, joined.generation_id, joined.member_id, {})
        assert (leader_sync, follower_sync) == (0, 0)
        assert raw.heartbeat(first, group, both.generation_id, alone.member_id) == 0

        left = raw.leave_group(second, group, [(joined.member_id, None)], version)
        assert left == (0, {joined.member_id: 0}), f"LeaveGroup v{version}: observed {left}"
        after_leave = raw.heartbeat(first, group, both.generation_id, alone.member_id)
        assert after_leave == Errors.REBALANCE_IN_PROGRESS.code, \
            f"the heartbeat right after the leave: expected REBALANCE_IN_PROGRESS(27), observed {after_leave}"
        again = raw.join_group(first, group, member_id=alone.member_id, session_timeout_ms=session)
        assert again.error_code == 0 and again.generation_id > both.generation_id, f"observed {again}"
        assert again.members == [alone.member_id], f"expected only the remaining member, observed {again}"


def _wait_for_heartbeat(conn, group, joined, expected, timeout=15.0):
    """Heartbeat until the answer is ``expected`` (a JoinGroup sent from another thread reaches the
    coordinator at some point); returns the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer = raw.heartbeat(conn, group, joined.generation_id, joined.member_id)
        if answer == expected or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)
