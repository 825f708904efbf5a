"""The broker's group coordinator, driven side by side with the delivery model.

Theory of operation
-------------------
``spec.delivery`` says what a consumer group may do to one partition's committed offset: the
coordinator bumps the generation and hands the partition to a live member (Rebalance), members
learn the outcome late (Join), commits carry the sender's generation and arrive delayed and
reordered, and a commit from a stale generation is refused (``generation_fencing``).
``reference.broker.group.GroupCoordinator`` is what the broker does (sans-IO: every request takes
``now_ms``, parked JoinGroup/SyncGroup answers arrive through callbacks).  This test walks the
model as ``test_random_walks`` does, picking one enabled transition by index, and applies every
step to one coordinator as Kafka consumers would drive it.  After every step it compares what a
client can observe:

* the generation: the JoinGroup answer a member reads at its Join is the model's generation (plus
  one: the model's generation 0 is the coordinator's first, generation 1), and a Heartbeat with
  the generation a member believes in answers NONE exactly when the model says that member is
  current, ILLEGAL_GENERATION otherwise;
* who owns the partition: the assignment a member reads in its SyncGroup answer at its Join, and
  the stored assignments DescribeGroups shows (exactly the model's owner holds the partition);
* the error code of every OffsetCommit: NONE where the model accepts the commit; where the model's
  guard refuses it, the code Kafka names for the way the sender is stale -- ILLEGAL_GENERATION if
  its member id is still current, FENCED_INSTANCE_ID if its ``group.instance.id`` now belongs to a
  newer incarnation, UNKNOWN_MEMBER_ID if its session expired;
* the committed offset: OffsetFetch answers the model's committed offset (-1 while nothing was
  committed), and an owner's Join starts from what OffsetFetch answers.

Mapping, model action -> requests to the coordinator (consumer ``c<m>`` is model member ``m``,
a static member with ``group.instance.id = "c<m>"``, KIP-345):

==========================  ================================================================
initial state               every consumer joins; the first generation gives the partition to
                            ``c0``; the answers wait for each member's Join
Rebalance(owner)            one full rebalance, driven until the next generation is Stable.
                            Its trigger is drawn: either every live consumer rejoins with new
                            subscription user data (a metadata change, as a join or leave
                            would), or -- when some member is down -- the clock runs past
                            ``session.timeout.ms`` while the live consumers heartbeat, so the
                            down members expire and the coordinator itself starts the
                            rebalance.  Every live consumer rejoins (a restarted one with its
                            instance id), followers send SyncGroup, the leader's assignor gives
                            the partition to ``c<owner>``.  Optionally some in-flight commits
                            arrive during the join phase (PreparingRebalance): in the model they
                            are HandleCommit steps just before the Rebalance
Join(m)                     the consumer reads the JoinGroup/SyncGroup answers of the last
                            rebalance (its heartbeat thread took part, its poll loop had not
                            looked yet); a consumer restarted since then sends JoinGroup with
                            its instance id, which replaces its old member id without a
                            rebalance, then SyncGroup.  The owner then sends OffsetFetch
Process(m) / CommitOffset   an OffsetCommit with the member id and generation the consumer
                            holds, sent now and delivered at the model's HandleCommit
HandleCommit                the OffsetCommit arrives
Crash(m)                    the process dies: no more heartbeats; its sent commits stay in flight
Restart(m)                  a new process, no member id yet
==========================  ================================================================

Where the two differ in granularity, not in behaviour:

1. **A Join never starts a rebalance in the model.**  In Kafka that holds for a static member
   whose session has not expired (KIP-345); a dynamic member, or a static one that expired, starts
   a rebalance by joining, which the model writes as a Rebalance step of its own.  So consumers
   are static, rebalances wait ``rebalance.timeout.ms`` for down members instead of removing them
   (unless the drawn trigger is session expiry), and the walk takes a Join of an expired member
   only after a Rebalance brought it back in.
2. **REBALANCE_IN_PROGRESS never reaches a commit here.**  The coordinator checks the generation
   before the state, so a stale commit during CompletingRebalance gets ILLEGAL_GENERATION; only a
   commit with the *new* generation before SyncGroup gets REBALANCE_IN_PROGRESS, and a consumer
   commits only once SyncGroup answered (the model's Join).
3. **Identical commits are one message in the model** (``commits`` is a set).  They come from two
   incarnations of one member in one generation; the test delivers the later request (the earlier
   one died with its process).

Findings, each reproduced by a test of its own at the end of this file:

* **Model vs implementation.**  The model fences commits by generation alone; the coordinator
  also fences by member id, so a commit sent by a member's previous incarnation and delivered
  after the restarted member rejoined the *same* generation is FENCED_INSTANCE_ID although the
  model accepts it.  The walk leaves that one delivery out (:meth:`Bridge.realizable`, as it leaves
  out the Joins of point 1); every other step the model offers is taken.
* **Implementation (fixed).**  Replacing a static member that was the last one pending SyncGroup
  left the sync timer armed with nobody to sync, which the coordinator's own ``check_valid``
  forbids; ``_replace_static_member`` now disarms it, and a regression test keeps it so.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from reference.broker.group import GroupCoordinator
from reference.broker.group.messages import (
    NO_GENERATION,
    UNKNOWN_MEMBER_ID,
    JoinGroupProtocol,
    JoinGroupResult,
    OffsetCommitRequest,
    OffsetFetchRequestGroup,
    OffsetFetchRequestTopic,
)
from reference.errors import ErrorCode, Errors
from spec.checker import Transition, check
from spec.delivery import GUARDS, UNKNOWN, Commit, DeliveryModel, DeliveryState
from tests.reference.broker.group.harness import Cluster, Reply, commit_errors, range_protocol

GROUP = "delivery"
TOPIC = "t"
PARTITION = 0
SESSION_TIMEOUT_MS = 10_000
REBALANCE_TIMEOUT_MS = 5_000  # shorter than the session: a rebalance waiting for a down member ends first
TICK_MS = 1_000  # the clock step while a rebalance or a session expiry is being waited out
GENERATION_OFFSET = 1  # the model's generation 0 is the coordinator's first generation, 1
MAX_JOIN_ROUNDS = 3  # a restarted consumer's JoinGroup, then its rejoin with new metadata
WAIT_LIMIT_TICKS = (SESSION_TIMEOUT_MS + 2 * REBALANCE_TIMEOUT_MS) // TICK_MS + 2


# --- the consumer protocol's byte formats (ConsumerProtocolSubscription / Assignment, v0) ----------


def subscription(user_data: bytes) -> bytes:
    """version:INT16, topics:[STRING], user_data:BYTES (the rebalance epoch, so a rejoin differs)."""
    topic = TOPIC.encode()
    return struct.pack(">hih", 0, 1, len(topic)) + topic + struct.pack(">i", len(user_data)) + user_data


def assignment(partitions: Sequence[int]) -> bytes:
    """version:INT16, assigned partitions:[topic:STRING, partitions:[INT32]], user_data:BYTES (null)."""
    topic = TOPIC.encode()
    body = struct.pack(">hih", 0, 1, len(topic)) + topic + struct.pack(">i", len(partitions))
    body += b"".join(struct.pack(">i", p) for p in partitions)
    return body + struct.pack(">i", -1)


def assigned_partitions(data: bytes) -> list[int]:
    """The partitions of ``TOPIC`` in a ConsumerProtocolAssignment (an empty one assigns nothing)."""
    if not data:
        return []
    _, topic_count = struct.unpack_from(">hi", data, 0)
    position, partitions = 6, []
    for _ in range(topic_count):
        (length,) = struct.unpack_from(">h", data, position)
        topic = data[position + 2 : position + 2 + length].decode()
        position += 2 + length
        (count,) = struct.unpack_from(">i", data, position)
        numbers = list(struct.unpack_from(f">{count}i", data, position + 4))
        position += 4 + 4 * count
        if topic == TOPIC:
            partitions += numbers
    return partitions


# --- the coordinator, its invariants checked after every request ---------------------------------------

class CheckedCluster(Cluster):
    """The group tests' fake clock and writer, with ``check_valid()`` after every request and clock
    step; ``seen`` collects what the walk observed."""

    def __init__(self, seen: list[str]) -> None:
        super().__init__()
        self.seen = seen

    def check(self) -> None:
        self.coordinator.check_valid()


# --- consumers and their requests -------------------------------------------------------------------


@dataclass
class Consumer:
    """One incarnation of a model member: a consumer process with ``group.instance.id``.

    As in Kafka's consumer there are two layers.  The group protocol layer (heartbeat thread)
    holds ``member_id`` and the answers of the rebalance it last took part in; the application
    (poll loop) holds ``generation``, the one it read at its last Join and tags commits with.  The
    model's ``Member.generation`` mirrors the application's."""

    instance_id: str
    member_id: str = UNKNOWN_MEMBER_ID
    held_join: Reply | None = None  # answers the poll loop has not read yet
    held_sync: Reply | None = None
    generation: int = NO_GENERATION

    def joined_next_generation(self, previous: int) -> bool:
        reply = self.held_join
        return reply is not None and reply.done and reply.join().generation_id > previous


def answered(consumer: Consumer) -> JoinGroupResult:
    """The JoinGroup answer a consumer holds (its rebalance's join phase has closed)."""
    assert consumer.held_join is not None, f"{consumer.instance_id} sent no JoinGroup"
    return consumer.held_join.join()


def number(transition: Transition[DeliveryState], name: str) -> int:
    value = transition.arg(name)
    assert isinstance(value, int), f"{transition.label()}: {name} is not a number"
    return value


@dataclass(frozen=True)
class SentCommit:
    """An OffsetCommit as its sender built it; it reaches the coordinator at HandleCommit."""

    member_id: str
    instance_id: str
    generation: int
    offset: int


class Disagreement(AssertionError):
    """The coordinator answered something the model does not allow (or cannot follow)."""

    def __init__(self, step: str, what: str, model: object, coordinator: object, steps: Sequence[str]) -> None:
        history = "\n".join(f"  {number}. {label}" for number, label in enumerate(steps, 1))
        super().__init__(f"after {step}: {what}: model {model!r}, coordinator {coordinator!r}\nsteps:\n{history}")
        self.step = step
        self.what = what
        self.model = model
        self.coordinator = coordinator


# --- the bridge: model steps as coordinator requests -----------------------------------------------


class Bridge:
    """One coordinator and one consumer per model member, kept in step with the model's state."""

    def __init__(self, model: DeliveryModel, coordinator_class: type[GroupCoordinator] = GroupCoordinator) -> None:
        self.model = model
        self.state: DeliveryState = next(iter(model.initial_states()))
        self.seen: list[str] = []  # situations reached, for Hypothesis' statistics and the scenarios
        self.cluster = CheckedCluster(self.seen)
        suffixes = itertools.count(1)
        self.cluster.coordinator = coordinator_class(
            self.cluster.writer, self.cluster.config, member_id_suffix=lambda: f"m{next(suffixes)}"
        )
        self.consumers: list[Consumer | None] = [Consumer(f"c{m}") for m in range(model.consumers)]
        self.in_flight: dict[Commit, SentCommit] = {}
        self.generation = 0  # the coordinator's: 0 until the group's first generation
        self.epoch = 0  # subscription user data: a new value makes a rejoin a metadata change
        self.steps: list[str] = []
        self.label = "initial state"
        self._rebalance_to(owner=0, expire_sessions=False, early=(), model_step=False)
        self.check_observables()

    # -- what the walk may take ---------------------------------------------------------------

    def realizable(self, transition: Transition[DeliveryState]) -> bool:
        """Whether Kafka can take this model step from here (module docstring, points 1 and the finding)."""
        if transition.action == "Join":
            consumer = self.consumer(number(transition, "member"))
            return consumer.held_join is not None or consumer.instance_id in self.registered()
        if transition.action == "HandleCommit":
            commit = self.delivered(transition)
            sent = self.in_flight[commit]
            replaced = self.registered().get(sent.instance_id) != sent.member_id
            return not (replaced and commit.generation == self.state.generation)
        return True

    def realizable_transitions(self) -> list[Transition[DeliveryState]]:
        return [t for t in self.model.transitions(self.state) if self.realizable(t)]

    def take(self, action: str, **args: int) -> Transition[DeliveryState]:
        """The one enabled transition ``action`` with these arguments."""
        matches = [t for t in self.model.transitions(self.state)
                   if t.action == action and all(t.arg(k) == v for k, v in args.items())]
        assert len(matches) == 1, f"{action}{args}: {[t.label() for t in matches]}"
        return matches[0]

    # -- applying one step ----------------------------------------------------------------------

    def apply(self, transition: Transition[DeliveryState], expire_sessions: bool = False,
              early: Sequence[Commit] = ()) -> None:
        """Take ``transition`` on both sides, then compare what clients observe."""
        self.label = transition.label()
        if transition.action == "Rebalance":
            self._rebalance_to(number(transition, "owner"), expire_sessions, early)
        else:
            self.steps.append(self.label)
            step = {
                "Join": self._join,
                "Process": self._send_commit,
                "CommitOffset": self._send_commit,
                "HandleCommit": self._handle_commit,
                "Crash": self._crash,
                "Restart": self._restart,
            }[transition.action]
            step(transition)
            self.state = transition.state
        self.check_observables()

    def _crash(self, transition: Transition[DeliveryState]) -> None:
        self.consumers[number(transition, "member")] = None

    def _restart(self, transition: Transition[DeliveryState]) -> None:
        member = number(transition, "member")
        self.consumers[member] = Consumer(f"c{member}")

    def _send_commit(self, transition: Transition[DeliveryState]) -> None:
        if transition.action == "Process" and self.model.commit_first:
            return  # at-most-once: the commit was sent (and answered) before processing
        member = number(transition, "member")
        offset = number(transition, "offset")
        processing = transition.action == "Process"
        # The model's ghost: the last offset the member had processed when it sent the commit.
        commit = Commit(offset + 1 if processing else offset, self.state.members[member].generation, member,
                        offset if processing else offset - 2)
        assert commit in transition.state.commits
        consumer = self.consumer(member)
        self.expect("the generation the commit is tagged with", commit.generation + GENERATION_OFFSET,
                    consumer.generation)
        # A commit equal to one still in flight is the same message to the model (docstring, point 3).
        self.in_flight[commit] = SentCommit(consumer.member_id, consumer.instance_id, consumer.generation,
                                            commit.offset)

    def _handle_commit(self, transition: Transition[DeliveryState], commit: Commit | None = None) -> None:
        commit = self.delivered(transition) if commit is None else commit
        sent = self.in_flight.pop(commit)
        refused = "stale_commit_refused" in transition.situations
        expected = self.fencing_error(sent) if refused else Errors.NONE
        result = self.cluster.commit({(TOPIC, PARTITION): sent.offset}, sent.member_id, sent.generation,
                                     group=GROUP, instance_id=sent.instance_id)
        (error,) = commit_errors(result)
        self.seen.append(f"OffsetCommit answered {error}")
        self.expect(f"the error of OffsetCommit {commit}", expected.name, error)

    def fencing_error(self, sent: SentCommit) -> ErrorCode:
        """The code Kafka gives a stale commit, by how its sender is stale (offsets.validate_offset_commit)."""
        current = self.registered().get(sent.instance_id)
        if current is None:
            return Errors.UNKNOWN_MEMBER_ID  # its session expired
        if current != sent.member_id:
            return Errors.FENCED_INSTANCE_ID  # a newer incarnation took the instance id (KIP-345)
        return Errors.ILLEGAL_GENERATION  # the model's word: same member, older generation

    def _join(self, transition: Transition[DeliveryState]) -> None:
        member = number(transition, "member")
        consumer = self.consumer(member)
        if consumer.held_join is None:  # restarted since the last rebalance
            self._rejoin_as_static_member(consumer)
        assert consumer.held_join is not None and consumer.held_sync is not None
        join, sync = consumer.held_join.join(), consumer.held_sync.sync()
        joined = transition.state.members[member]
        self.expect("the JoinGroup error", "NONE", join.error.name)
        self.expect("the generation a member learns", joined.generation + GENERATION_OFFSET, join.generation_id)
        self.expect("the SyncGroup error", "NONE", sync.error.name)
        owns = PARTITION in assigned_partitions(sync.assignment)
        self.expect(f"whether c{member} owns the partition", joined.owns, owns)
        consumer.generation, consumer.held_join, consumer.held_sync = join.generation_id, None, None
        if owns:
            fetched = self.fetch_committed()
            position = 0 if fetched == -1 else fetched  # auto.offset.reset=earliest: nothing is deleted
            self.expect("the offset the owner starts from", joined.position, position)

    def _rejoin_as_static_member(self, consumer: Consumer) -> None:
        """KIP-345: JoinGroup with the instance id and no member id replaces the old member id."""
        reply = self._send_join(consumer)
        self.seen.append("a restarted static member rejoins its generation")
        if not reply.done:
            raise Disagreement(self.label, "a restarted static member's JoinGroup was parked (a rebalance)",
                               "answered at once", "parked", self.steps)
        consumer.member_id = reply.join().member_id
        consumer.held_join = reply
        consumer.held_sync = self.cluster.sync(consumer.member_id, reply.join().generation_id, group=GROUP,
                                               instance_id=consumer.instance_id)
        if not consumer.held_sync.done:
            raise Disagreement(self.label, "a restarted static member's SyncGroup was parked",
                               "answered at once", "parked", self.steps)

    # -- a rebalance, driven until the next generation is Stable ---------------------------------

    def _rebalance_to(self, owner: int, expire_sessions: bool, early: Sequence[Commit],
                      model_step: bool = True) -> None:
        assert not (expire_sessions and early), "commits arrive in a join phase the bridge starts itself"
        previous = self.generation
        running = [c for c in self.consumers if c is not None]
        for consumer in running:  # answers the poll loop never read are superseded
            consumer.held_join = consumer.held_sync = None
        if expire_sessions:
            self._wait_for_a_session_to_expire(running, previous)
        participants = self._participants_in_join_order()
        early_steps = self._early_commit_steps(early)
        if early_steps and not self._first_join_is_parked(participants):
            self._deliver(early_steps)  # no join phase to arrive in: arrive just before it
            early_steps = []
        self.epoch += 1
        for _ in range(MAX_JOIN_ROUNDS):
            for consumer in participants:
                self._join_round(consumer, previous)
                if early_steps:
                    self.expect("the group state after the first JoinGroup", "PreparingRebalance",
                                self.group_state())
                    self.seen.append("commits arrive during PreparingRebalance")
                    self._deliver(early_steps)
                    early_steps = []
            if any(c.held_join is not None and not c.held_join.done for c in participants):
                break
            if all(c.joined_next_generation(previous) for c in participants):
                break
            self.epoch += 1  # only restarted members replaced their old ids: now change the metadata
        self._wait_for_join_phase(participants, previous)
        if model_step:
            self.steps.append(self.label)
            self.state = self._rebalance_transition(owner).state
        self.generation = self.state.generation + GENERATION_OFFSET  # one rebalance, one generation
        for consumer in participants:
            answer = answered(consumer)
            self.expect(f"the JoinGroup error of {consumer.instance_id}", "NONE", answer.error.name)
            self.expect(f"the generation {consumer.instance_id} joined", self.generation, answer.generation_id)
            consumer.member_id = answer.member_id  # a new static member learns its id here
        self._sync(participants, owner)

    def _participants_in_join_order(self) -> list[Consumer]:
        """Every running consumer.  A new static member joins first (its JoinGroup starts the
        rebalance), then members with a member id, last restarted members that replace their
        old member id: so no JoinGroup closes the join phase before every participant sent one,
        and a commit can arrive before any old member id is replaced."""
        registered = self.registered()

        def order(consumer: Consumer) -> int:
            if consumer.member_id != UNKNOWN_MEMBER_ID:
                return 1
            return 2 if consumer.instance_id in registered else 0

        return sorted((c for c in self.consumers if c is not None), key=order)

    def _first_join_is_parked(self, participants: list[Consumer]) -> bool:
        """Whether the first JoinGroup starts a join phase that stays open (others must rejoin)."""
        first, registered = participants[0], self.registered()
        if first.member_id != UNKNOWN_MEMBER_ID:
            return len(registered) > 1
        return first.instance_id not in registered  # a replacement in a Stable group starts nothing

    def _early_commit_steps(self, early: Sequence[Commit]) -> list[tuple[Commit, Transition[DeliveryState]]]:
        """Model HandleCommit steps taken just before the Rebalance, in this order."""
        steps = []
        for commit in early:
            transition = next(t for t in self.model.handle_commit(self.state) if self.delivered(t) == commit)
            steps.append((commit, transition))
            self.state = transition.state  # the next one is enabled from here
        return steps

    def _deliver(self, steps: list[tuple[Commit, Transition[DeliveryState]]]) -> None:
        for commit, transition in steps:
            self.steps.append(transition.label())
            self._handle_commit(transition, commit)

    def _rebalance_transition(self, owner: int) -> Transition[DeliveryState]:
        return next(t for t in self.model.rebalance(self.state) if t.arg("owner") == owner)

    def _send_join(self, consumer: Consumer) -> Reply:
        return self.cluster.join(
            member_id=consumer.member_id, group=GROUP,
            protocols=[JoinGroupProtocol("range", subscription(b"epoch-%d" % self.epoch))],
            session_timeout_ms=SESSION_TIMEOUT_MS, rebalance_timeout_ms=REBALANCE_TIMEOUT_MS,
            instance_id=consumer.instance_id,
        )

    def _join_round(self, consumer: Consumer, previous: int) -> None:
        """(Re)join unless parked or already in the next generation; an answer in the old one
        (a restarted member replaced in a Stable group) means rejoin with the new member id."""
        reply = consumer.held_join
        if reply is not None and (not reply.done or consumer.joined_next_generation(previous)):
            return
        if reply is not None:
            answer = reply.join()
            self.expect(f"the JoinGroup error of {consumer.instance_id}", "NONE", answer.error.name)
            consumer.member_id = answer.member_id
        consumer.held_join = self._send_join(consumer)
        if consumer.held_join.done and consumer.held_join.join().error is Errors.NONE:
            consumer.member_id = consumer.held_join.join().member_id

    def _wait_for_a_session_to_expire(self, participants: list[Consumer], previous: int) -> None:
        """The clock runs while the live consumers heartbeat; a down member's session expires."""
        for _ in range(WAIT_LIMIT_TICKS):
            self.cluster.advance(TICK_MS)
            answers = {self.cluster.heartbeat(c.member_id, previous, GROUP, c.instance_id).error
                       for c in participants if c.member_id != UNKNOWN_MEMBER_ID}
            if answers - {Errors.NONE, Errors.REBALANCE_IN_PROGRESS}:
                raise Disagreement(self.label, "a live consumer's heartbeat", "NONE", answers, self.steps)
            if Errors.REBALANCE_IN_PROGRESS in answers:
                self.seen.append("a session expired")
                return
        raise Disagreement(self.label, "a down member's session expiry", "a rebalance", "none", self.steps)

    def _wait_for_join_phase(self, participants: list[Consumer], previous: int) -> None:
        """Parked JoinGroups are answered when the join phase closes: at once, or after
        ``rebalance.timeout.ms`` when a down member never rejoins."""
        for _ in range(WAIT_LIMIT_TICKS):
            if all(c.joined_next_generation(previous) for c in participants):
                return
            self.cluster.advance(TICK_MS)
        raise Disagreement(self.label, "the join phase", "closed", self.group_state(), self.steps)

    def _sync(self, participants: list[Consumer], owner: int) -> None:
        """Followers' SyncGroups park; the leader's assignor gives the partition to ``c<owner>``."""
        leader_id = answered(participants[0]).leader
        leader = next((c for c in participants if c.member_id == leader_id), None)
        if leader is None:
            raise Disagreement(self.label, "the leader", "a live consumer", leader_id, self.steps)
        members = answered(leader).members
        owner_instance = f"c{owner}"
        assignments = {m.member_id: assignment([PARTITION] if m.group_instance_id == owner_instance else [])
                       for m in members}
        for consumer in sorted(participants, key=lambda c: c is leader):
            consumer.held_sync = self.cluster.sync(
                consumer.member_id, self.generation, assignments if consumer is leader else None,
                group=GROUP, instance_id=consumer.instance_id)
        for consumer in participants:
            assert consumer.held_sync is not None
            if not consumer.held_sync.done:
                raise Disagreement(self.label, "SyncGroup after the leader's", "answered", "parked", self.steps)
            self.expect(f"the SyncGroup error of {consumer.instance_id}", "NONE", consumer.held_sync.sync().error.name)

    # -- observing --------------------------------------------------------------------------------

    def check_observables(self) -> None:
        described = self.cluster.coordinator.describe_groups([GROUP])[0]
        self.expect("the group state between steps", "Stable", described.group_state)
        owners = sorted(m.group_instance_id or "" for m in described.members
                        if PARTITION in assigned_partitions(m.member_assignment))
        self.expect("who owns the partition (DescribeGroups)", [f"c{self.state.owner}"], owners)
        self.expect("the committed offset (OffsetFetch)",
                    self.state.committed if self.state.committed > 0 else -1, self.fetch_committed())
        for m, member in enumerate(self.state.members):
            consumer = self.consumers[m]
            self.expect(f"whether c{m} runs", member.alive, consumer is not None)
            if consumer is None:
                continue
            expected_generation = (NO_GENERATION if member.generation == UNKNOWN
                                   else member.generation + GENERATION_OFFSET)
            self.expect(f"the generation c{m} believes in", expected_generation, consumer.generation)
            if member.generation != UNKNOWN:
                current = member.generation == self.state.generation
                answer = self.cluster.heartbeat(consumer.member_id, consumer.generation, GROUP, consumer.instance_id)
                self.expect(f"c{m}'s Heartbeat with its generation",
                            "NONE" if current else "ILLEGAL_GENERATION", answer.error.name)

    def can_expire_a_session(self) -> bool:
        """Some member's process died or restarted (its session can expire) while a running one
        heartbeats (so the group does not go Empty, which would take a generation of its own)."""
        running = {c.instance_id: c.member_id for c in self.consumers if c is not None}
        registered = self.registered()
        down = any(running.get(instance) != member_id for instance, member_id in registered.items())
        return down and any(member_id != UNKNOWN_MEMBER_ID for member_id in running.values())

    def fetch_committed(self) -> int:
        request = OffsetFetchRequestGroup(GROUP, [OffsetFetchRequestTopic(TOPIC, [PARTITION])])
        (group,) = self.cluster.coordinator.fetch_offsets([request])
        return group.topics[0].partitions[0].committed_offset

    def registered(self) -> dict[str, str]:
        """group.instance.id -> member id of the group's members, as DescribeGroups lists them."""
        described = self.cluster.coordinator.describe_groups([GROUP])[0]
        return {m.group_instance_id: m.member_id for m in described.members if m.group_instance_id is not None}

    def group_state(self) -> str:
        return self.cluster.coordinator.describe_groups([GROUP])[0].group_state

    def consumer(self, member: int) -> Consumer:
        consumer = self.consumers[member]
        assert consumer is not None, f"c{member} is down"
        return consumer

    def delivered(self, transition: Transition[DeliveryState]) -> Commit:
        (commit,) = self.state.commits - transition.state.commits
        return commit

    def expect(self, what: str, model: object, coordinator: object) -> None:
        if model != coordinator:
            raise Disagreement(self.label, what, model, coordinator, self.steps)


# --- the walk ---------------------------------------------------------------------------------------


class CoordinatorWithoutGenerationFence(GroupCoordinator):
    """A planted bug: OffsetCommit no longer checks the generation (ILLEGAL_GENERATION)."""

    def _validate_commit(self, request: OffsetCommitRequest) -> ErrorCode:
        error = super()._validate_commit(request)
        return Errors.NONE if error is Errors.ILLEGAL_GENERATION else error


def walker(model: DeliveryModel, coordinator_class: type[GroupCoordinator] = GroupCoordinator
           ) -> type[RuleBasedStateMachine]:
    """A walk of ``model`` (one realizable transition per step, picked by index, as in
    ``test_random_walks``) with a :class:`Bridge` to a coordinator of ``coordinator_class``."""

    class CoordinatorAgainstModel(RuleBasedStateMachine):
        bridge: Bridge

        @initialize()
        def start(self) -> None:
            self.bridge = Bridge(model, coordinator_class)

        @rule(data=st.data())
        def step(self, data: st.DataObject) -> None:
            try:
                self._step(data)
            finally:
                for situation in self.bridge.seen:
                    event(situation)
                self.bridge.seen.clear()

        def _step(self, data: st.DataObject) -> None:
            choices = self.bridge.realizable_transitions()
            for transition in model.transitions(self.bridge.state):
                if transition not in choices:
                    self.bridge.seen.append(f"left out: {transition.action}")
            if not choices:
                return
            chosen = choices[data.draw(st.integers(0, len(choices) - 1), label="transition")]
            self.bridge.seen.append(chosen.action)
            if chosen.action != "Rebalance":
                self.bridge.apply(chosen)
                return
            expire = data.draw(st.booleans(), label="trigger by session expiry") and self.bridge.can_expire_a_session()
            early: list[Commit] = []
            if not expire:
                candidates = sorted(self.bridge.delivered(t) for t in self.bridge.realizable_transitions()
                                    if t.action == "HandleCommit")
                if candidates:
                    early = data.draw(st.lists(st.sampled_from(candidates), unique=True, max_size=2),
                                      label="commits arriving in the join phase")
            self.bridge.apply(chosen, expire_sessions=expire, early=early)

        @invariant()
        def model_invariants_hold(self) -> None:
            broken = [inv.name for inv in model.invariants if not inv.holds(self.bridge.state)]
            assert not broken, f"{broken} after {self.bridge.steps}"

    return CoordinatorAgainstModel


BOUNDS = {"records": 4, "consumers": 3, "rebalances": 6, "crashes": 3}
WALK = settings(max_examples=60, stateful_step_count=50, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

AtLeastOnceAgainstCoordinator = walker(DeliveryModel("at-least-once", BOUNDS))
AtMostOnceAgainstCoordinator = walker(DeliveryModel("at-most-once", BOUNDS))
TestAtLeastOnceAgainstCoordinator = AtLeastOnceAgainstCoordinator.TestCase
TestAtLeastOnceAgainstCoordinator.settings = WALK
TestAtMostOnceAgainstCoordinator = AtMostOnceAgainstCoordinator.TestCase
TestAtMostOnceAgainstCoordinator.settings = WALK


# --- scenarios: each kind of refusal reached on purpose ----------------------------------------------


def play(bridge: Bridge, *steps: tuple[str, dict[str, int]]) -> None:
    for action, args in steps:
        bridge.apply(bridge.take(action, **args))


def test_a_zombie_that_missed_a_rebalance_gets_illegal_generation() -> None:
    """c0 processes, the partition moves to c1, c0's commit arrives: its member id is still
    current (its heartbeat thread rejoined), its generation is not."""
    bridge = Bridge(DeliveryModel("at-least-once", {"records": 2, "consumers": 2, "rebalances": 1, "crashes": 0}))
    play(bridge, ("Join", {"member": 0}), ("Process", {"member": 0}), ("Rebalance", {"owner": 1}))
    bridge.apply(bridge.take("HandleCommit", member=0))
    assert "OffsetCommit answered ILLEGAL_GENERATION" in bridge.seen
    assert bridge.state.committed == 0 and bridge.fetch_committed() == -1


def test_a_commit_in_the_join_phase_from_the_current_generation_is_accepted() -> None:
    """In PreparingRebalance the generation has not moved yet: the owner's commit still counts."""
    bridge = Bridge(DeliveryModel("at-least-once", {"records": 2, "consumers": 2, "rebalances": 1, "crashes": 0}))
    play(bridge, ("Join", {"member": 0}), ("Process", {"member": 0}))
    (commit,) = bridge.state.commits
    bridge.apply(bridge.take("Rebalance", owner=1), early=[commit])
    assert bridge.state.committed == 1 and bridge.fetch_committed() == 1
    assert "HandleCommit(member=0, offset=1): committed offset 0 -> 1" in bridge.steps
    assert "commits arrive during PreparingRebalance" in bridge.seen


def test_a_crashed_members_commit_after_its_session_expired_gets_unknown_member_id() -> None:
    """c0 commits and dies; its session expires and the partition moves; then the commit arrives.
    Restarted, c0 can join only through the next rebalance (a Join would start one in Kafka)."""
    bridge = Bridge(DeliveryModel("at-least-once", {"records": 2, "consumers": 2, "rebalances": 2, "crashes": 1}))
    play(bridge, ("Join", {"member": 0}), ("Process", {"member": 0}), ("Crash", {"member": 0}))
    bridge.apply(bridge.take("Rebalance", owner=1), expire_sessions=True)
    assert "c0" not in bridge.registered()
    bridge.apply(bridge.take("HandleCommit", member=0))  # the model refuses; Kafka: UNKNOWN_MEMBER_ID
    assert "OffsetCommit answered UNKNOWN_MEMBER_ID" in bridge.seen
    play(bridge, ("Restart", {"member": 0}))
    assert not bridge.realizable(bridge.take("Join", member=0))
    bridge.apply(bridge.take("Rebalance", owner=0))
    play(bridge, ("Join", {"member": 0}))
    assert "c0" in bridge.registered()


def test_a_restarted_static_member_rejoins_its_generation_and_keeps_the_partition() -> None:
    """KIP-345: c0 dies before its commit arrives and comes back within its session; the old
    commit still counts (same member id until the rejoin), and the new c0 starts from it."""
    bridge = Bridge(DeliveryModel("at-least-once", {"records": 2, "consumers": 2, "rebalances": 0, "crashes": 1}))
    play(bridge, ("Join", {"member": 0}), ("Process", {"member": 0}), ("Crash", {"member": 0}),
         ("Restart", {"member": 0}), ("HandleCommit", {"member": 0}), ("Join", {"member": 0}))
    assert "a restarted static member rejoins its generation" in bridge.seen
    assert bridge.state.members[0].owns and bridge.state.members[0].position == 1


def test_a_zombie_from_a_previous_incarnation_gets_fenced_instance_id() -> None:
    """c0 commits and dies, restarts and rejoins; a rebalance follows; the old commit arrives:
    stale for the model, FENCED_INSTANCE_ID for Kafka (its instance id has a new member id)."""
    bridge = Bridge(DeliveryModel("at-least-once", {"records": 2, "consumers": 2, "rebalances": 1, "crashes": 1}))
    play(bridge, ("Join", {"member": 0}), ("Process", {"member": 0}), ("Crash", {"member": 0}),
         ("Restart", {"member": 0}), ("Join", {"member": 0}), ("Rebalance", {"owner": 1}),
         ("HandleCommit", {"member": 0}))
    assert "OffsetCommit answered FENCED_INSTANCE_ID" in bridge.seen
    assert bridge.state.committed == 0


# --- non-vacuity: planted wrong expectations are caught ----------------------------------------------


def test_the_checkers_counterexample_without_generation_fencing_is_refused_by_the_coordinator() -> None:
    """The model without ``generation_fencing`` accepts the zombie's commit on the checker's own
    shortest counterexample; the coordinator answers ILLEGAL_GENERATION, and the bridge says so."""
    guard = GUARDS["generation_fencing"]
    mutant = DeliveryModel("at-most-once", guard.witness, frozenset({"generation_fencing"}))
    result = check(mutant)
    assert result.violated == ("NoDuplicate",)
    bridge = Bridge(mutant)
    with pytest.raises(Disagreement) as caught:
        for step in result.trace[1:]:
            assert step.transition is not None
            chosen = next(t for t in bridge.model.transitions(bridge.state) if t.state == step.state)
            bridge.apply(chosen)
    assert caught.value.step == "HandleCommit(member=0, offset=1): committed offset 0 -> 1"
    assert (caught.value.model, caught.value.coordinator) == ("NONE", "ILLEGAL_GENERATION")


def test_a_coordinator_that_does_not_check_the_generation_is_caught_by_the_walk() -> None:
    machine = walker(DeliveryModel("at-least-once", BOUNDS), CoordinatorWithoutGenerationFence)
    with pytest.raises(Disagreement) as caught:
        run_state_machine_as_test(machine, settings=settings(
            max_examples=200, stateful_step_count=30, deadline=None, database=None, report_multiple_bugs=False,
            phases=[Phase.generate], suppress_health_check=list(HealthCheck)))
    assert caught.value.what.startswith("the error of OffsetCommit")
    assert (caught.value.model, caught.value.coordinator) == ("ILLEGAL_GENERATION", "NONE")


# --- finding ------------------------------------------------------------------------------------------


def test_finding_a_commit_from_a_replaced_incarnation_is_accepted_by_the_model_and_fenced_by_the_coordinator(
) -> None:
    """FINDING (model vs implementation).  c0 commits offset 1 in generation 0 and dies; it restarts
    and rejoins generation 0 as the same static member (no rebalance: KIP-345); then the old commit
    arrives.  The model checks only the generation and accepts it; the coordinator checks the
    member id too and answers FENCED_INSTANCE_ID, as Kafka does.  The walk leaves this delivery
    out (``Bridge.realizable``); when the model learns member fencing, this test must change."""
    bridge = Bridge(DeliveryModel("at-least-once", {"records": 2, "consumers": 1, "rebalances": 0, "crashes": 1}))
    play(bridge, ("Join", {"member": 0}), ("Process", {"member": 0}), ("Crash", {"member": 0}),
         ("Restart", {"member": 0}), ("Join", {"member": 0}))
    handle = bridge.take("HandleCommit", member=0)
    assert not bridge.realizable(handle)
    assert "stale_commit_refused" not in handle.situations  # the model accepts: committed 0 -> 1
    with pytest.raises(Disagreement) as caught:
        bridge.apply(handle)
    assert (caught.value.model, caught.value.coordinator) == ("NONE", "FENCED_INSTANCE_ID")


def test_replacing_the_last_member_pending_sync_disarms_the_sync_timer() -> None:
    """Regression (found by the walk).  Two static members form a generation; the leader syncs, the
    other's process dies before its SyncGroup, restarts within its session and rejoins with its
    instance id (KIP-345: a replacement, no rebalance).  The old member id no longer owes a
    SyncGroup, so the sync timer must go with it: ``check_valid`` (``invariants.check_timer``)
    forbids a sync timer with nobody left to sync."""
    cluster = Cluster()
    first = cluster.join(instance_id="a", rebalance_timeout_ms=REBALANCE_TIMEOUT_MS)
    second = cluster.join(instance_id="b", rebalance_timeout_ms=REBALANCE_TIMEOUT_MS)
    cluster.settle(first, second)
    leader, generation = first.join().member_id, first.join().generation_id
    assert first.join().leader == leader
    cluster.sync(leader, generation, {leader: b"", second.join().member_id: b""}, instance_id="a")
    cluster.join(instance_id="b", rebalance_timeout_ms=REBALANCE_TIMEOUT_MS, protocols=range_protocol("t"))
    group = cluster.coordinator.groups["group-a"]
    assert not group.pending_sync_members
    assert ("sync", "group-a") not in set(cluster.coordinator._timers.keys())
    cluster.coordinator.check_valid()
