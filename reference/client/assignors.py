"""Partition assignors: how a consumer group's leader divides partitions among the members.

Theory of operation
-------------------
In the classic group protocol the *broker* only picks a leader and an assignor name both sides
support; the leader consumer computes the whole assignment (Java's ``ConsumerPartitionAssignor``)
and sends it in SyncGroup.  To share a group with Java and librdkafka consumers, refka's assignors
use the same names and, for the same input, give the same answer:

``range`` (Java's ``RangeAssignor``, the default in Java with ``cooperative-sticky``)
    Per topic: the members subscribed to it, sorted (:func:`member_order`); with P partitions
    and C members, member i gets the contiguous range starting at ``(P // C) * i + min(i, P % C)``
    of length ``P // C`` plus one for the first ``P % C`` members.
``roundrobin`` (``RoundRobinAssignor``)
    Every partition of every subscribed topic, topics sorted by name, partitions ascending, dealt
    in turn to the sorted members, skipping a member not subscribed to the partition's topic.
``sticky`` (``StickyAssignor``, eager) and ``cooperative-sticky`` (``CooperativeStickyAssignor``,
KIP-429)
    Balanced like round robin, but each member keeps what it owned where balance allows.  When
    every member subscribes to the same topics, Java's *constrained* algorithm: with
    ``min_quota = P // C`` and ``max_quota = ceil(P / C)``, and ``P % C`` members allowed to hold
    ``max_quota``, each member keeps up to its quota of its owned partitions (the rest are
    revoked), then the unowned partitions (topics sorted, partitions ascending) fill first the
    members under ``min_quota``, then up to ``P % C`` members to ``max_quota``.  Otherwise a
    general balance: owned partitions kept, the rest to the eligible member with the fewest,
    then single moves from the fullest to the emptiest eligible member while that narrows the
    gap.
    Ownership (``member_ownership``): a member's claim counts only from the highest generation
    in the group (a member that missed a rebalance owns nothing); a partition two members claim
    in the same generation belongs to neither.
    ``cooperative-sticky`` then withholds every partition moving from one owner to another:
    the owner revokes it after this rebalance and rejoins, and the second rebalance hands it
    over -- so no partition is ever owned by two members at once and the others keep consuming.

Invariants every assignor keeps (checked by :func:`check_valid`): every partition of every
subscribed topic is assigned to at most one member (exactly one, except partitions withheld by
``cooperative-sticky``), and only to a member subscribed to its topic.

Known differences from Java: where Java iterates a ``HashMap`` of member ids (the order in which
sticky's constrained step lets members keep ``max_quota``), refka uses sorted member ids; the
general (unequal subscriptions) sticky step is a simpler balance than Java's ``generalAssign``.
Both still satisfy the invariants and Kafka's balance and stickiness properties, and rack-aware
assignment (KIP-881) is not implemented (``client.rack`` is sent, racks are ignored).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..protocol.primitives import Reader, Writer
from ..protocol.schema import INT32, STRING, Array, Field, Struct
from .consumer_protocol import Assignment, Partition, Subscription

DEFAULT_GENERATION = -1
_GENERATION = struct.Struct(">i")

# StickyAssignorUserData (no version prefix): v0 = PreviousAssignment; v1 adds Generation.
_STICKY_TOPIC = Struct("TopicAssignment", [Field("Topic", STRING), Field("Partitions", Array(INT32))])
_STICKY_USER_DATA_V1 = Struct("StickyAssignorUserData", [
    Field("PreviousAssignment", Array(_STICKY_TOPIC)),
    Field("Generation", INT32),
])


@dataclass(frozen=True)
class MemberData:
    """What the sticky assignors read from one subscription: owned partitions and generation."""

    owned: tuple[Partition, ...]
    generation: int  # DEFAULT_GENERATION when the member does not say


def member_order(member_id: str, subscription: Subscription) -> tuple[int, str]:
    """Java's ``MemberInfo`` order: members with a ``group.instance.id`` first, by that id; then
    the others by member id."""
    if subscription.group_instance_id is not None:
        return 0, subscription.group_instance_id
    return 1, member_id


def _sorted_members(subscriptions: Mapping[str, Subscription]) -> list[str]:
    return sorted(subscriptions, key=lambda m: member_order(m, subscriptions[m]))


def _all_partitions(partitions_per_topic: Mapping[str, int], topics: Iterable[str]) -> list[Partition]:
    return [(topic, p) for topic in sorted(set(topics)) if topic in partitions_per_topic
            for p in range(partitions_per_topic[topic])]


class Assignor:
    """The interface: a name, the rebalance protocol, user data, and ``assign``."""

    name = ""
    cooperative = False  # KIP-429: revoke only what moves, and rejoin

    def subscription_user_data(self, owned: Iterable[Partition], generation: int) -> bytes | None:
        return None

    def assign(self, partitions_per_topic: Mapping[str, int],
               subscriptions: Mapping[str, Subscription]) -> dict[str, Assignment]:
        """``partitions_per_topic``: the partition count of every subscribed topic that exists."""
        raise NotImplementedError


class RangeAssignor(Assignor):
    name = "range"

    def assign(self, partitions_per_topic: Mapping[str, int],
               subscriptions: Mapping[str, Subscription]) -> dict[str, Assignment]:
        assigned: dict[str, list[Partition]] = {member: [] for member in subscriptions}
        members = _sorted_members(subscriptions)
        topics = sorted({t for s in subscriptions.values() for t in s.topics if t in partitions_per_topic})
        for topic in topics:
            consumers = [m for m in members if topic in subscriptions[m].topics]
            count = partitions_per_topic[topic]
            per_consumer, extra = divmod(count, len(consumers))
            for index, member in enumerate(consumers):
                start = per_consumer * index + min(index, extra)
                length = per_consumer + (1 if index < extra else 0)
                assigned[member].extend((topic, p) for p in range(start, start + length))
        return {member: Assignment(tuple(ps)) for member, ps in assigned.items()}


class RoundRobinAssignor(Assignor):
    name = "roundrobin"

    def assign(self, partitions_per_topic: Mapping[str, int],
               subscriptions: Mapping[str, Subscription]) -> dict[str, Assignment]:
        assigned: dict[str, list[Partition]] = {member: [] for member in subscriptions}
        members = _sorted_members(subscriptions)
        every_topic = {t for s in subscriptions.values() for t in s.topics}
        turn = 0
        for topic, partition in _all_partitions(partitions_per_topic, every_topic):
            while topic not in subscriptions[members[turn % len(members)]].topics:
                turn += 1
            assigned[members[turn % len(members)]].append((topic, partition))
            turn += 1
        return {member: Assignment(tuple(ps)) for member, ps in assigned.items()}


# -- sticky ------------------------------------------------------------------------------------------


def encode_sticky_user_data(owned: Iterable[Partition], generation: int) -> bytes:
    by_topic: dict[str, list[int]] = {}
    for topic, partition in sorted(owned):
        by_topic.setdefault(topic, []).append(partition)
    writer = Writer()
    _STICKY_USER_DATA_V1.write(writer, _STICKY_USER_DATA_V1.make(
        previous_assignment=[_STICKY_TOPIC.make(topic=t, partitions=ps) for t, ps in by_topic.items()],
        generation=generation), 0, False)
    return writer.getvalue()


def decode_sticky_user_data(data: bytes | None) -> MemberData:
    """v1 (with a generation), else v0 (previous assignment only); empty -> owns nothing."""
    if not data:
        return MemberData((), DEFAULT_GENERATION)
    reader = Reader(data)
    topics = [_STICKY_TOPIC.read(reader, 0, False) for _ in range(reader.array_length())]
    owned = tuple((t.topic, p) for t in topics for p in t.partitions)
    generation = reader.int32() if reader.remaining() >= 4 else DEFAULT_GENERATION
    return MemberData(owned, generation)


def member_ownership(member_data: Mapping[str, MemberData],
                     partitions_per_topic: Mapping[str, int]) -> dict[Partition, str]:
    """The validated previous owner of each partition (see the module's rules on ownership)."""
    max_generation = max((d.generation for d in member_data.values()), default=DEFAULT_GENERATION)
    claims: dict[Partition, list[str]] = {}
    for member in sorted(member_data):
        data = member_data[member]
        if data.generation < max_generation:
            continue  # it missed a rebalance: what it claims may already be someone else's
        for topic, partition in data.owned:
            if 0 <= partition < partitions_per_topic.get(topic, 0):
                claims.setdefault((topic, partition), []).append(member)
    return {tp: owners[0] for tp, owners in claims.items() if len(owners) == 1}


class StickyAssignor(Assignor):
    name = "sticky"

    def subscription_user_data(self, owned: Iterable[Partition], generation: int) -> bytes | None:
        return encode_sticky_user_data(owned, generation)

    def member_data(self, subscription: Subscription) -> MemberData:
        # Eager: the previous assignment travels in the user data (owned partitions are revoked
        # before the join, so OwnedPartitions is empty).
        return decode_sticky_user_data(subscription.user_data)

    def assign(self, partitions_per_topic: Mapping[str, int],
               subscriptions: Mapping[str, Subscription]) -> dict[str, Assignment]:
        data = {member: self.member_data(s) for member, s in subscriptions.items()}
        owners = member_ownership(data, partitions_per_topic)
        topic_sets = {frozenset(t for t in s.topics if t in partitions_per_topic) for s in subscriptions.values()}
        if len(topic_sets) == 1:
            assigned = _constrained_assign(partitions_per_topic, subscriptions, owners)
        else:
            assigned = _general_assign(partitions_per_topic, subscriptions, owners)
        assigned = self.adjust(assigned, owners)
        return {member: Assignment(tuple(sorted(ps))) for member, ps in assigned.items()}

    def adjust(self, assigned: dict[str, list[Partition]], owners: Mapping[Partition, str]) -> dict[str, list[Partition]]:
        return assigned


class CooperativeStickyAssignor(StickyAssignor):
    name = "cooperative-sticky"
    cooperative = True

    def subscription_user_data(self, owned: Iterable[Partition], generation: int) -> bytes | None:
        return _GENERATION.pack(generation)  # for readers of subscriptions older than v2

    def member_data(self, subscription: Subscription) -> MemberData:
        if subscription.generation_id >= 0:  # subscription v2+ carries the generation itself
            return MemberData(subscription.owned_partitions, subscription.generation_id)
        data = subscription.user_data
        generation = _GENERATION.unpack_from(data)[0] if data and len(data) >= 4 else DEFAULT_GENERATION
        return MemberData(subscription.owned_partitions, generation)

    def adjust(self, assigned: dict[str, list[Partition]], owners: Mapping[Partition, str]) -> dict[str, list[Partition]]:
        """KIP-429: a partition moving between members is withheld until its owner revoked it."""
        return {member: [tp for tp in ps if owners.get(tp, member) == member] for member, ps in assigned.items()}


def java_string_hash(text: str) -> int:
    """Java's ``String.hashCode`` (UTF-16 code units, int32 arithmetic)."""
    value = 0
    data = text.encode("utf-16-be")
    for index in range(0, len(data), 2):
        value = (31 * value + int.from_bytes(data[index:index + 2], "big")) & 0xFFFFFFFF
    return value


def java_hash_map_order(keys: Iterable[str]) -> list[str]:
    """The order in which a ``java.util.HashMap`` filled with ``keys`` (default capacity 16, load
    factor 0.75) iterates them: by bucket ``(h ^ h >>> 16) & (capacity - 1)``, then insertion
    order (here: sorted) within a bucket.  Java's sticky assignor walks its members in this order."""
    ordered = sorted(keys)
    capacity = 16
    while len(ordered) > capacity * 3 // 4:
        capacity *= 2

    def bucket(key: str) -> int:
        h = java_string_hash(key)
        return (h ^ (h >> 16)) & (capacity - 1)

    return sorted(ordered, key=bucket)  # a stable sort keeps insertion order within a bucket


def _constrained_assign(partitions_per_topic: Mapping[str, int], subscriptions: Mapping[str, Subscription],
                        owners: Mapping[Partition, str]) -> dict[str, list[Partition]]:
    """Java's ``ConstrainedAssignmentBuilder`` (without racks); see the module docstring."""
    members = java_hash_map_order(subscriptions)
    topics = {t for s in subscriptions.values() for t in s.topics}
    every_partition = _all_partitions(partitions_per_topic, topics)
    min_quota, expected_over_min = divmod(len(every_partition), len(members))
    max_quota = min_quota + (1 if expected_over_min else 0)
    over_min = 0
    assigned: dict[str, list[Partition]] = {m: [] for m in members}
    under_min: list[str] = []
    exactly_min: list[str] = []
    owned_by: dict[str, list[Partition]] = {m: [] for m in members}
    for tp, owner in owners.items():
        owned_by[owner].append(tp)
    # Step 1: each member keeps its owned partitions (lowest partition numbers first), up to its quota.
    for member in members:
        owned = sorted(owned_by[member], key=lambda tp: (tp[1], tp[0]))
        if len(owned) < min_quota:
            assigned[member].extend(owned)
            under_min.append(member)
        elif len(owned) >= max_quota and over_min < expected_over_min:
            over_min += 1
            if over_min == expected_over_min:
                exactly_min.clear()
            assigned[member].extend(owned[:max_quota])
        else:
            assigned[member].extend(owned[:min_quota])
            if over_min < expected_over_min:
                exactly_min.append(member)
    taken = {tp for ps in assigned.values() for tp in ps}
    unassigned = [tp for tp in every_partition if tp not in taken]
    under_min.sort()
    exactly_min.sort()
    # Step 2: round robin over the members under min_quota; once none is left, members at
    # min_quota take one more each (up to max_quota), first come first served.
    index = 0
    for tp in unassigned:
        if index < len(under_min):
            member = under_min[index]
        elif not under_min:
            if not exactly_min:
                raise AssertionError("no member left to assign to: the quotas are wrong")
            member = exactly_min.pop(0)
        else:
            index = 0
            member = under_min[0]
        assigned[member].append(tp)
        count = len(assigned[member])
        if count == min_quota and member in under_min:
            del under_min[index]
            exactly_min.append(member)
        else:
            if count == max_quota:
                over_min += 1
            if member in under_min:
                index += 1
    return assigned


def _general_assign(partitions_per_topic: Mapping[str, int], subscriptions: Mapping[str, Subscription],
                    owners: Mapping[Partition, str]) -> dict[str, list[Partition]]:
    members = sorted(subscriptions)
    eligible = {m: {t for t in subscriptions[m].topics if t in partitions_per_topic} for m in members}
    assigned: dict[str, list[Partition]] = {m: [] for m in members}
    for tp, owner in sorted(owners.items()):
        if tp[0] in eligible[owner]:
            assigned[owner].append(tp)
    taken = {tp for ps in assigned.values() for tp in ps}
    every_topic = {t for s in subscriptions.values() for t in s.topics}
    candidates = {tp: [m for m in members if tp[0] in eligible[m]]
                  for tp in _all_partitions(partitions_per_topic, every_topic)}
    for tp in sorted((tp for tp in candidates if tp not in taken), key=lambda tp: (len(candidates[tp]), tp)):
        member = min(candidates[tp], key=lambda m: (len(assigned[m]), m))
        assigned[member].append(tp)
    while True:  # move one partition at a time from the fullest to the emptiest eligible member
        moved = False
        for giver in sorted(members, key=lambda m: (-len(assigned[m]), m)):
            for tp in sorted(assigned[giver], reverse=True):
                takers = [m for m in candidates[tp] if len(assigned[m]) + 1 < len(assigned[giver])]
                if takers:
                    taker = min(takers, key=lambda m: (len(assigned[m]), m))
                    assigned[giver].remove(tp)
                    assigned[taker].append(tp)
                    moved = True
                    break
            if moved:
                break
        if not moved:
            return assigned


ASSIGNORS: dict[str, type[Assignor]] = {
    cls.name: cls for cls in (RangeAssignor, RoundRobinAssignor, StickyAssignor, CooperativeStickyAssignor)
}

# Java's class names are accepted too, so a Java consumer's configuration carries over.
JAVA_CLASS_NAMES = {
    "org.apache.kafka.clients.consumer.RangeAssignor": "range",
    "org.apache.kafka.clients.consumer.RoundRobinAssignor": "roundrobin",
    "org.apache.kafka.clients.consumer.StickyAssignor": "sticky",
    "org.apache.kafka.clients.consumer.CooperativeStickyAssignor": "cooperative-sticky",
}


def make_assignor(name: str) -> Assignor:
    """Raises KeyError for an unknown assignor name."""
    return ASSIGNORS[JAVA_CLASS_NAMES.get(name, name)]()


def check_valid(partitions_per_topic: Mapping[str, int], subscriptions: Mapping[str, Subscription],
                assignment: Mapping[str, Assignment], complete: bool = True) -> None:
    """Assert the invariants in the module's theory of operation (for tests)."""
    seen: dict[Partition, str] = {}
    for member, member_assignment in assignment.items():
        for tp in member_assignment.partitions:
            assert tp not in seen, f"{tp} assigned to both {seen[tp]} and {member}"
            assert tp[0] in subscriptions[member].topics, f"{tp} assigned to {member}, not subscribed to it"
            seen[tp] = member
    if complete:
        every_topic = {t for s in subscriptions.values() for t in s.topics}
        missing = set(_all_partitions(partitions_per_topic, every_topic)) - set(seen)
        assert not missing, f"unassigned: {sorted(missing)}"
