"""The assignors against the assignments Java's assignor tests expect, and the ConsumerProtocol bytes.

Expected assignments are the ones asserted in Apache Kafka's ``RangeAssignorTest``,
``RoundRobinAssignorTest`` and ``AbstractStickyAssignorTest`` / ``CooperativeStickyAssignorTest``
(facts about Java's behaviour, re-expressed here).
"""

from __future__ import annotations

import struct

import pytest

from reference.client.assignors import (
    CooperativeStickyAssignor,
    RangeAssignor,
    RoundRobinAssignor,
    StickyAssignor,
    check_valid,
    decode_sticky_user_data,
    encode_sticky_user_data,
    make_assignor,
)
from reference.client.consumer_protocol import (
    Assignment,
    Subscription,
    decode_assignment,
    decode_subscription,
    encode_assignment,
    encode_subscription,
)


def sub(*topics: str, owned: tuple[tuple[str, int], ...] = (), generation: int = -1,
        instance: str | None = None, user_data: bytes | None = None) -> Subscription:
    return Subscription(tuple(topics), user_data, owned, generation, None, instance)


def parts(result: dict[str, Assignment]) -> dict[str, list[tuple[str, int]]]:
    return {member: list(a.partitions) for member, a in result.items()}


# -- range ----------------------------------------------------------------------------------------


def test_range_gives_the_first_members_one_extra_partition_per_topic() -> None:
    result = RangeAssignor().assign({"t1": 3, "t2": 3}, {"consumer1": sub("t1", "t2"), "consumer2": sub("t1", "t2")})
    assert parts(result) == {"consumer1": [("t1", 0), ("t1", 1), ("t2", 0), ("t2", 1)],
                             "consumer2": [("t1", 2), ("t2", 2)]}


def test_range_assigns_each_topic_among_its_own_subscribers() -> None:
    result = RangeAssignor().assign({"topic1": 3, "topic2": 2}, {
        "consumer1": sub("topic1"), "consumer2": sub("topic1", "topic2"), "consumer3": sub("topic1")})
    assert parts(result) == {"consumer1": [("topic1", 0)],
                             "consumer2": [("topic1", 1), ("topic2", 0), ("topic2", 1)],
                             "consumer3": [("topic1", 2)]}


def test_range_with_more_members_than_partitions_leaves_the_last_ones_empty() -> None:
    result = RangeAssignor().assign({"t": 1}, {"consumer1": sub("t"), "consumer2": sub("t")})
    assert parts(result) == {"consumer1": [("t", 0)], "consumer2": []}


def test_static_members_are_ordered_by_group_instance_id_before_member_ids() -> None:
    """Java's MemberInfo order: a static member's place does not depend on its random member id."""
    subscriptions = {"zzz-member": sub("t", instance="instance-a"), "aaa-member": sub("t", instance="instance-b"),
                     "bbb-dynamic": sub("t")}
    result = RangeAssignor().assign({"t": 3}, subscriptions)
    assert parts(result) == {"zzz-member": [("t", 0)], "aaa-member": [("t", 1)], "bbb-dynamic": [("t", 2)]}


# -- round robin ----------------------------------------------------------------------------------


def test_roundrobin_deals_partitions_of_sorted_topics_in_turn() -> None:
    result = RoundRobinAssignor().assign({"t1": 3, "t2": 3}, {"consumer1": sub("t1", "t2"), "consumer2": sub("t1", "t2")})
    assert parts(result) == {"consumer1": [("t1", 0), ("t1", 2), ("t2", 1)],
                             "consumer2": [("t1", 1), ("t2", 0), ("t2", 2)]}


def test_roundrobin_skips_members_not_subscribed_to_the_topic() -> None:
    result = RoundRobinAssignor().assign({"topic1": 3, "topic2": 2}, {
        "consumer1": sub("topic1"), "consumer2": sub("topic1", "topic2"), "consumer3": sub("topic1")})
    assert parts(result) == {"consumer1": [("topic1", 0)],
                             "consumer2": [("topic1", 1), ("topic2", 0), ("topic2", 1)],
                             "consumer3": [("topic1", 2)]}


# -- sticky and cooperative-sticky -----------------------------------------------------------------


def test_sticky_balances_a_fresh_group_like_java() -> None:
    result = StickyAssignor().assign({"t1": 3, "t2": 3}, {"consumer1": sub("t1", "t2"), "consumer2": sub("t1", "t2")})
    assert parts(result) == {"consumer1": [("t1", 0), ("t1", 2), ("t2", 1)],
                             "consumer2": [("t1", 1), ("t2", 0), ("t2", 2)]}


def test_sticky_with_unequal_subscriptions_gives_constrained_partitions_first() -> None:
    result = StickyAssignor().assign({"topic1": 3, "topic2": 2}, {
        "consumer1": sub("topic1"), "consumer2": sub("topic1", "topic2"), "consumer3": sub("topic1")})
    assert parts(result) == {"consumer1": [("topic1", 0), ("topic1", 2)],
                             "consumer2": [("topic2", 0), ("topic2", 1)],
                             "consumer3": [("topic1", 1)]}


def test_sticky_keeps_owned_partitions_when_a_member_joins() -> None:
    owned = (("t", 0), ("t", 1), ("t", 2))
    subscriptions = {"consumer1": sub("t", user_data=encode_sticky_user_data(owned, 1)), "consumer2": sub("t")}
    assert parts(StickyAssignor().assign({"t": 3}, subscriptions)) == {
        "consumer1": [("t", 0), ("t", 1)], "consumer2": [("t", 2)]}


def test_cooperative_sticky_withholds_a_partition_until_its_owner_revoked_it() -> None:
    """KIP-429: first rebalance -- consumer1 keeps two, t-2 goes to nobody; second rebalance
    (consumer1 no longer owns t-2) -- consumer2 gets it."""
    assignor = CooperativeStickyAssignor()
    first = assignor.assign({"t": 3}, {"consumer1": sub("t", owned=(("t", 0), ("t", 1), ("t", 2)), generation=1),
                                       "consumer2": sub("t")})
    assert parts(first) == {"consumer1": [("t", 0), ("t", 1)], "consumer2": []}
    check_valid({"t": 3}, {"consumer1": sub("t"), "consumer2": sub("t")}, first, complete=False)
    second = assignor.assign({"t": 3}, {"consumer1": sub("t", owned=(("t", 0), ("t", 1)), generation=2),
                                        "consumer2": sub("t", generation=2)})
    assert parts(second) == {"consumer1": [("t", 0), ("t", 1)], "consumer2": [("t", 2)]}


def test_ownership_from_an_older_generation_does_not_count() -> None:
    """A member that missed a rebalance claims partitions someone newer owns: the newer wins."""
    result = CooperativeStickyAssignor().assign({"t": 2}, {
        "consumer1": sub("t", owned=(("t", 0), ("t", 1)), generation=1),
        "consumer2": sub("t", owned=(("t", 0),), generation=2)})
    assert parts(result) == {"consumer1": [("t", 1)], "consumer2": [("t", 0)]}


@pytest.mark.parametrize("name", ["range", "roundrobin", "sticky", "cooperative-sticky"])
@pytest.mark.parametrize("members,partitions", [(1, 5), (3, 7), (5, 3), (4, 16)])
def test_every_assignor_assigns_every_partition_exactly_once(name: str, members: int, partitions: int) -> None:
    subscriptions = {f"member-{i}": sub("a", "b") for i in range(members)}
    result = make_assignor(name).assign({"a": partitions, "b": partitions + 1}, subscriptions)
    check_valid({"a": partitions, "b": partitions + 1}, subscriptions, result)
    sizes = [len(a.partitions) for a in result.values()]
    assert max(sizes) - min(sizes) <= (1 if name != "range" else 2)


def test_java_class_names_select_the_same_assignors() -> None:
    assert make_assignor("org.apache.kafka.clients.consumer.CooperativeStickyAssignor").name == "cooperative-sticky"


# -- the ConsumerProtocol bytes ---------------------------------------------------------------------


def test_subscription_v3_round_trips_with_owned_partitions_generation_and_rack() -> None:
    original = Subscription(("b", "a"), b"\x00\x00\x00\x05", (("a", 1), ("a", 0), ("b", 2)), 5, "rack-1")
    decoded = decode_subscription(encode_subscription(original))
    assert decoded == Subscription(("a", "b"), b"\x00\x00\x00\x05", (("a", 0), ("a", 1), ("b", 2)), 5, "rack-1")


def test_subscription_v0_bytes_as_an_old_client_writes_them() -> None:
    """version INT16 0, topics [STRING], user data NULLABLE_BYTES -- nothing else."""
    data = struct.pack(">h", 0) + struct.pack(">i", 1) + struct.pack(">h", 1) + b"t" + struct.pack(">i", -1)
    assert decode_subscription(data) == Subscription(("t",), None, (), -1, None)
    assert encode_subscription(Subscription(("t",)), version=0) == data


def test_a_newer_subscription_version_is_read_as_the_newest_known() -> None:
    """Fields are only appended: a v4 reader's prefix is v3 (Java's checkSubscriptionVersion)."""
    v3 = encode_subscription(Subscription(("t",), None, (("t", 0),), 7, None))
    v4 = struct.pack(">h", 4) + v3[2:] + b"\x01\x02future field"
    assert decode_subscription(v4) == decode_subscription(v3)


def test_assignment_round_trips_and_an_empty_one_is_empty() -> None:
    assignment = Assignment((("a", 0), ("a", 3), ("b", 1)), None)
    assert decode_assignment(encode_assignment(assignment)) == assignment
    assert decode_assignment(b"") == Assignment()


def test_sticky_user_data_v1_and_v0() -> None:
    data = encode_sticky_user_data([("t", 1), ("t", 0)], 9)
    assert decode_sticky_user_data(data).owned == (("t", 0), ("t", 1))
    assert decode_sticky_user_data(data).generation == 9
    assert decode_sticky_user_data(data[:-4]).generation == -1  # v0: no generation


# -- Java's constrained-assignment vectors (AbstractStickyAssignorTest), owned partitions at generation 1 --

TWO_TOPICS = ["topic1", "topic2"]


def owning(*owned: tuple[str, int]) -> Subscription:
    return sub(*TWO_TOPICS, owned=tuple(owned), generation=1)


def test_members_are_walked_in_java_hash_map_order() -> None:
    """Java iterates a HashMap of member ids: for these ids, consumer3, consumer2, consumer1."""
    from reference.client.assignors import java_hash_map_order, java_string_hash
    assert java_string_hash("hello") == 99162322  # "hello".hashCode() in Java
    assert java_hash_map_order(["consumer1", "consumer2", "consumer3"]) == ["consumer3", "consumer2", "consumer1"]


def test_a_member_owning_min_quota_is_topped_up_to_max_quota() -> None:
    result = CooperativeStickyAssignor().assign({"topic1": 2, "topic2": 3}, {
        "consumer1": owning(("topic1", 0), ("topic2", 1)), "consumer2": owning(("topic1", 1), ("topic2", 2))})
    assert parts(result) == {"consumer1": [("topic1", 0), ("topic2", 0), ("topic2", 1)],
                             "consumer2": [("topic1", 1), ("topic2", 2)]}


def test_more_members_owning_max_quota_than_may_keep_it() -> None:
    subscriptions = {"consumer1": owning(("topic1", 0), ("topic2", 0)),
                     "consumer2": owning(("topic1", 1), ("topic2", 1)), "consumer3": owning()}
    sticky = StickyAssignor().assign({"topic1": 2, "topic2": 2}, {
        m: sub(*TWO_TOPICS, user_data=encode_sticky_user_data(s.owned_partitions, 1)) for m, s in subscriptions.items()})
    assert parts(sticky) == {"consumer1": [("topic1", 0)], "consumer2": [("topic1", 1), ("topic2", 1)],
                             "consumer3": [("topic2", 0)]}
    cooperative = CooperativeStickyAssignor().assign({"topic1": 2, "topic2": 2}, subscriptions)
    assert parts(cooperative)["consumer3"] == []  # topic2-0 moves from consumer1: withheld this round


def test_all_members_under_min_quota() -> None:
    result = CooperativeStickyAssignor().assign({"topic1": 2, "topic2": 3}, {
        "consumer1": owning(("topic1", 0)), "consumer2": owning(("topic1", 1)), "consumer3": owning()})
    assert parts(result) == {"consumer1": [("topic1", 0), ("topic2", 1)],
                             "consumer2": [("topic1", 1), ("topic2", 2)], "consumer3": [("topic2", 0)]}
