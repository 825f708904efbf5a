"""Group membership and offsets: the consumer's side of the classic group protocol (sans-IO).

Theory of operation
-------------------
Java's ``AbstractCoordinator`` + ``ConsumerCoordinator`` as one object driven by
:meth:`ConsumerCoordinator.poll` with the time.  The member's states, as data
(:data:`MEMBER_TRANSITIONS`; an illegal move raises :class:`MemberStateError`)::

    UNJOINED --send JoinGroup--> PREPARING_REBALANCE --joined, send SyncGroup--> COMPLETING_REBALANCE
       ^                               |  (MEMBER_ID_REQUIRED, UNKNOWN_MEMBER_ID,  |
       |                               |   coordinator errors: back, and again)     |  synced
       +-------------------------------+--------------------------------------------+---> STABLE
       +------------------- heartbeat REBALANCE_IN_PROGRESS, rejoin requested ---------------+

1. **Coordinator.**  FindCoordinator (key type 0, the group id) names the broker; it is reached
   on a connection of its own (node id ``2**31 - 1 - broker id``, as Java does) so a JoinGroup
   that waits for the rebalance or a heartbeat never queues behind a long-polling Fetch.
   NOT_COORDINATOR (16) and COORDINATOR_NOT_AVAILABLE (15) in any answer, or a lost
   connection, forget it; COORDINATOR_LOAD_IN_PROGRESS (14) retries after ``retry.backoff.ms``.
2. **Join.**  JoinGroup carries, per configured assignor, the subscription in the
   ConsumerProtocol (topics, owned partitions, generation, rack; the assignor's user data).
   MEMBER_ID_REQUIRED (79, KIP-394): the broker gave a member id; join again at once with it.
   UNKNOWN_MEMBER_ID (25): forget the member id and join afresh.  A ``group.instance.id``
   makes the member *static* (KIP-345): it keeps its assignment across restarts within the
   session timeout and does not send LeaveGroup on close.  FENCED_INSTANCE_ID (82) is fatal.
3. **Assign.**  The leader (``Leader`` == own member id) runs the chosen assignor over every
   member's subscription -- after its metadata knows every subscribed topic -- and sends the
   result in SyncGroup; the others send an empty SyncGroup.  SyncGroup REBALANCE_IN_PROGRESS
   (27): join again; ILLEGAL_GENERATION (22) / UNKNOWN_MEMBER_ID: reset and join again.
4. **Revocation.**  Eager assignors (range, roundrobin, sticky) revoke *everything* owned before
   joining.  Cooperative ones (KIP-429) keep what they own while joining; after SyncGroup the
   partitions no longer assigned are revoked and the member joins again so they can move.
   Revoking is three steps, in order: commit their positions (auto commit only), run
   ``on_partitions_revoked`` on the application's thread (the join waits for it, as Java's
   waits for ``poll``), then drop them.  After a reset generation (heartbeat or commit says
   ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID) the partitions are *lost*: no commit,
   ``on_partitions_lost``.  Invariant: a partition being revoked is neither fetched nor returned.
5. **Heartbeat** every ``heartbeat.interval.ms`` while STABLE.  REBALANCE_IN_PROGRESS: rejoin.
6. **Offsets** -- committing them and reading the committed ones -- are
   :class:`~reference.client.offsets.GroupOffsets`' rules, driven from :meth:`poll` over the
   coordinator connection; a commit answered ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID resets the
   generation here (rule 4: the partitions are lost).
7. **Metadata changes.**  The leader remembers the partition counts it assigned; when a metadata
   update shows another count for one of the group's topics (partitions added, a topic created
   or deleted) it asks for a rebalance, as Java's ``assignmentSnapshot`` check does.

8. **Liveness of the application.**  A member whose application has not called ``poll`` for
   ``max.poll.interval.ms`` leaves the group (LeaveGroup; a static member only forgets its
   generation), so its partitions go to members that make progress; the next ``poll`` joins
   again, after ``on_partitions_lost``.

Not implemented: regex subscriptions, rack-aware assignment.
"""

from __future__ import annotations

import concurrent.futures
import enum
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import Errors, KafkaError, by_name, lookup
from ..protocol.apis import API_BY_KEY
from ..protocol.schema import Data
from .assignors import Assignor, make_assignor
from .cluster import ClusterMetadata, TopicPartition
from .consumer_config import ConsumerConfig
from .consumer_protocol import (
    CONSUMER_PROTOCOL_TYPE,
    Subscription,
    decode_assignment,
    decode_subscription,
    encode_assignment,
    encode_subscription,
)
from .fetcher import Fetcher
from .offsets import CommitFuture, GroupOffsets
from .outbox import OutboundRequest, Outbox
from .subscriptions import SubscriptionState

log = logging.getLogger("refka.client.consumer")

FIND_COORDINATOR_KEY = 10
JOIN_GROUP_KEY, HEARTBEAT_KEY, LEAVE_GROUP_KEY, SYNC_GROUP_KEY = 11, 12, 13, 14
COORDINATOR_CONNECTION_BASE = 2**31 - 1  # coordinator connection id = base - broker id
NO_GENERATION = -1
GROUP_KEY_TYPE = 0

COORDINATOR_GONE = frozenset({Errors.NOT_COORDINATOR, Errors.COORDINATOR_NOT_AVAILABLE})
RESET_GENERATION = frozenset({Errors.ILLEGAL_GENERATION, Errors.UNKNOWN_MEMBER_ID})
FATAL_GROUP_ERRORS = frozenset({
    Errors.FENCED_INSTANCE_ID, Errors.INCONSISTENT_GROUP_PROTOCOL, Errors.INVALID_SESSION_TIMEOUT,
    Errors.GROUP_MAX_SIZE_REACHED, by_name["GROUP_AUTHORIZATION_FAILED"], Errors.INVALID_GROUP_ID,
    Errors.UNSUPPORTED_VERSION,
})

@dataclass(frozen=True)
class ConsumerGroupMetadata:
    """A member's group identity as the consumer hands it to a transactional producer
    (``Consumer.group_metadata()``, Java's ``groupMetadata()``), for TxnOffsetCommit v3+ (KIP-447):
    with it the group coordinator fences a zombie whose generation is gone (ILLEGAL_GENERATION,
    UNKNOWN_MEMBER_ID) instead of letting its transaction commit offsets."""

    group_id: str
    generation_id: int = NO_GENERATION
    member_id: str = ""
    group_instance_id: str | None = None


class MemberStateError(Exception):
    def __init__(self, state: object, event: str) -> None:
        super().__init__(f"cannot {event} in state {state}")


class MemberState(enum.Enum):
    UNJOINED = "UNJOINED"
    PREPARING_REBALANCE = "PREPARING_REBALANCE"
    COMPLETING_REBALANCE = "COMPLETING_REBALANCE"
    STABLE = "STABLE"


MEMBER_TRANSITIONS: dict[MemberState, dict[str, MemberState]] = {
    MemberState.UNJOINED: {"send join": MemberState.PREPARING_REBALANCE, "reset": MemberState.UNJOINED},
    MemberState.PREPARING_REBALANCE: {"joined": MemberState.COMPLETING_REBALANCE, "reset": MemberState.UNJOINED},
    MemberState.COMPLETING_REBALANCE: {"synced": MemberState.STABLE, "reset": MemberState.UNJOINED},
    MemberState.STABLE: {"reset": MemberState.UNJOINED},
}


@dataclass(eq=False)
class _Revocation:
    partitions: frozenset[TopicPartition]
    lost: bool
    rejoin_after: bool
    commit: CommitFuture | None = None
    callback_seq: int = -1


@dataclass(frozen=True)
class ListenerCall:
    """A rebalance-listener call for the application's thread: ``kind`` is revoked, assigned, lost."""

    seq: int
    kind: str
    partitions: frozenset[TopicPartition]


@dataclass
class _PendingLeaderAssignment:
    members: list[Data]
    protocol: str
    metadata_mark: int  # assign once the metadata has been updated after this many updates


class ConsumerCoordinator:
    def __init__(self, config: ConsumerConfig, metadata: ClusterMetadata, subscriptions: SubscriptionState,
                 fetcher: Fetcher, outbox: Outbox, on_error: Callable[[Exception], None]) -> None:
        self.config = config
        self.group_id = config.group_id
        self.metadata = metadata
        self.subscriptions = subscriptions
        self.fetcher = fetcher
        self.outbox = outbox
        self.on_error = on_error
        self.assignors: dict[str, Assignor] = {name: make_assignor(name) for name in config.assignors}
        self.state = MemberState.UNJOINED
        self.member_id = ""
        self.generation_id = NO_GENERATION
        self.protocol_name: str | None = None
        self.leader_id = ""
        self.coordinator_id: int | None = None  # the broker's node id
        self._coordinator_address: tuple[str, int] | None = None
        self._lookup_in_flight = False
        self._lookup_retry_at_ms = 0
        self._lookup_failures = 0
        self.rejoin_needed = True
        self._join_retry_at_ms = 0
        self._pending_assignment: _PendingLeaderAssignment | None = None
        self._heartbeat_in_flight = False
        self._next_heartbeat_ms = 0
        self._revocation: _Revocation | None = None
        self.offsets = GroupOffsets(self)
        self.listener_calls: deque[ListenerCall] = deque()
        self._listener_seq = 0
        self.listener_acked = 0
        self.previous_assignment: frozenset[TopicPartition] = frozenset()
        self.rebalances = 0  # completed SyncGroups, for tests and logs
        self.assignment_snapshot: dict[str, int | None] | None = None  # rule 7: the leader's view
        self.last_application_poll_ms: int | None = None  # rule 8; None until the first poll
        self._poll_timeout_expired = False
        self.on_listener_call: Callable[[], None] = lambda: None

    # -- state ---------------------------------------------------------------------------------------

    def _transition(self, event: str) -> None:
        new_state = MEMBER_TRANSITIONS[self.state].get(event)
        if new_state is None:
            raise MemberStateError(self.state, event)
        self.state = new_state

    @property
    def cooperative(self) -> bool:
        assignor = self.assignors.get(self.protocol_name or "") or next(iter(self.assignors.values()))
        return assignor.cooperative

    @property
    def stable(self) -> bool:
        """A member with an assignment from the current generation (offsets may be committed)."""
        return self.state is MemberState.STABLE

    @property
    def coordinator_connection(self) -> int | None:
        return None if self.coordinator_id is None else COORDINATOR_CONNECTION_BASE - self.coordinator_id

    def coordinator_address(self, connection_id: int) -> tuple[str, int] | None:
        return self._coordinator_address if connection_id == self.coordinator_connection else None

    def group_metadata(self) -> ConsumerGroupMetadata:
        assert self.group_id is not None
        return ConsumerGroupMetadata(self.group_id, self.generation_id, self.member_id, self.config.group_instance_id)

    def coordinator_unknown(self, why: object) -> None:
        if self.coordinator_id is not None:
            log.info("group coordinator %d of %s is unavailable: %s", self.coordinator_id, self.group_id, why)
        self.coordinator_id = None
        self._coordinator_address = None

    # -- one round -----------------------------------------------------------------------------------

    def poll(self, now_ms: int) -> None:
        if self.group_id is None:
            return
        self.offsets.expire_commits(now_ms)
        if self.coordinator_id is None:
            self._lookup_coordinator(now_ms)
            return
        self.offsets.send_commits(now_ms)
        self.offsets.fetch_committed_offsets(now_ms)
        if self.subscriptions.subscribed:
            self._check_poll_interval(now_ms)
            self._advance_revocation(now_ms)
            self._maybe_assign_as_leader(now_ms)
            self._maybe_join(now_ms)
            self._maybe_heartbeat(now_ms)
        self.offsets.maybe_auto_commit(now_ms)

    def next_wakeup_ms(self, now_ms: int) -> int | None:
        times = [self._lookup_retry_at_ms, self._join_retry_at_ms, *self.offsets.wakeup_times()]
        if self.state is MemberState.STABLE and not self._heartbeat_in_flight:
            times.append(self._next_heartbeat_ms)
        if self.last_application_poll_ms is not None and not self._poll_timeout_expired:
            times.append(self.last_application_poll_ms + self.config.max_poll_interval_ms + 1)
        return min((t for t in times if t > now_ms), default=None)

    # -- rule 1: the coordinator ---------------------------------------------------------------------

    def _lookup_coordinator(self, now_ms: int) -> None:
        if self._lookup_in_flight or now_ms < self._lookup_retry_at_ms:
            return
        self._lookup_in_flight = True
        request = API_BY_KEY[FIND_COORDINATOR_KEY].request
        body = request.make(key=self.group_id, key_type=GROUP_KEY_TYPE, coordinator_keys=[self.group_id])
        self.outbox.send(OutboundRequest(self.metadata.any_node(self._lookup_failures), FIND_COORDINATOR_KEY, body,
                                         self._on_find_coordinator, self._on_find_coordinator_failure,
                                         timeout_ms=self.config.request_timeout_ms))

    def _on_find_coordinator(self, body: Data, now_ms: int) -> None:
        self._lookup_in_flight = False
        answer = body.coordinators[0] if body.get("coordinators") else body
        error = lookup(answer.error_code)
        if error is not Errors.NONE:
            if error in FATAL_GROUP_ERRORS:
                self.on_error(KafkaError(error, f"FindCoordinator for group {self.group_id}"))
            self._lookup_retry_at_ms = now_ms + self.config.retry_backoff_ms
            self.metadata.request_update()
            return
        self.coordinator_id = answer.node_id
        self._coordinator_address = (answer.host, answer.port)
        log.info("group %s: coordinator is node %d (%s:%d)", self.group_id, answer.node_id, answer.host, answer.port)

    def _on_find_coordinator_failure(self, error: Exception, now_ms: int) -> None:
        self._lookup_in_flight = False
        self._lookup_failures += 1  # ask another broker next time
        self._lookup_retry_at_ms = now_ms + self.config.retry_backoff_ms
        self.metadata.request_update()

    def send(self, api_key: int, body: Data, on_response: Callable[[Data, int], None],
              on_failure: Callable[[Exception, int], None], timeout_ms: int | None = None,
              max_version: int | None = None) -> None:
        connection = self.coordinator_connection
        assert connection is not None
        self.outbox.send(OutboundRequest(connection, api_key, body, on_response, on_failure, max_version=max_version,
                                         timeout_ms=timeout_ms or self.config.request_timeout_ms))

    # -- rules 2 and 3: join and sync ----------------------------------------------------------------

    def request_rejoin(self, why: str) -> None:
        if not self.rejoin_needed:
            log.info("group %s: rejoining (%s)", self.group_id, why)
        self.rejoin_needed = True

    def reset_generation(self, why: str) -> None:
        log.info("group %s: resetting the generation (%s)", self.group_id, why)
        self.member_id = ""
        self.generation_id = NO_GENERATION
        if self.state is not MemberState.UNJOINED:
            self._transition("reset")
        self.request_rejoin(why)

    def application_polled(self, now_ms: int) -> None:
        """Rule 8: the application called ``poll``; after an expiry, join again."""
        self.last_application_poll_ms = now_ms
        if self._poll_timeout_expired:
            self._poll_timeout_expired = False
            self.request_rejoin("the application polls again")

    def _check_poll_interval(self, now_ms: int) -> None:
        last = self.last_application_poll_ms
        if last is None or self._poll_timeout_expired or now_ms - last <= self.config.max_poll_interval_ms:
            return
        if self.state is MemberState.UNJOINED and not self.member_id:
            return
        log.warning("group %s: consumer poll timeout has expired (no poll for %d ms > max.poll.interval.ms); "
                    "leaving the group", self.group_id, now_ms - last)
        self._poll_timeout_expired = True
        self.leave_group("consumer poll timeout has expired")

    def _maybe_join(self, now_ms: int) -> None:
        if not self.rejoin_needed or self._revocation is not None or now_ms < self._join_retry_at_ms:
            return
        if self._poll_timeout_expired:
            return
        if self.state in (MemberState.PREPARING_REBALANCE, MemberState.COMPLETING_REBALANCE):
            return
        owned = frozenset(self.subscriptions.assignment)
        if owned and self.generation_id == NO_GENERATION:
            self._start_revocation(owned, now_ms, lost=True, rejoin_after=True)  # the generation was reset
            return
        if owned and not self.cooperative:
            self._start_revocation(owned, now_ms, lost=False, rejoin_after=True)  # eager: revoke all first
            return
        if self.state is MemberState.STABLE:
            self._transition("reset")
        self._send_join_group()

    def _subscription_bytes(self, assignor: Assignor) -> bytes:
        owned = sorted((tp.topic, tp.partition) for tp in self.subscriptions.assignment)
        previous = sorted((tp.topic, tp.partition) for tp in self.previous_assignment)
        subscription = Subscription(
            tuple(sorted(self.subscriptions.topics)),
            assignor.subscription_user_data(previous if not assignor.cooperative else owned, self.generation_id),
            tuple(owned), self.generation_id, self.config.client_rack or None)
        return encode_subscription(subscription)

    def _send_join_group(self) -> None:
        self._transition("send join")
        self.rejoin_needed = False
        self.metadata.add_topics(self.subscriptions.topics)
        request = API_BY_KEY[JOIN_GROUP_KEY].request
        protocol = request.struct("JoinGroupRequestProtocol")
        body = request.make(
            group_id=self.group_id, session_timeout_ms=self.config.session_timeout_ms,
            rebalance_timeout_ms=self.config.max_poll_interval_ms, member_id=self.member_id,
            group_instance_id=self.config.group_instance_id, protocol_type=CONSUMER_PROTOCOL_TYPE,
            protocols=[protocol.make(name=name, metadata=self._subscription_bytes(assignor))
                       for name, assignor in self.assignors.items()],
            reason="rebalance requested by the consumer")
        timeout = max(self.config.request_timeout_ms, self.config.max_poll_interval_ms + 5000)
        self.send(JOIN_GROUP_KEY, body, self._on_join_group, self._on_join_failure, timeout)

    def _on_join_failure(self, error: Exception, now_ms: int) -> None:
        self.coordinator_unknown(error)
        self._back_to_unjoined(now_ms)

    def _back_to_unjoined(self, now_ms: int, backoff: bool = True) -> None:
        if self.state is not MemberState.UNJOINED:
            self._transition("reset")
        self.rejoin_needed = True
        self._join_retry_at_ms = now_ms + (self.config.retry_backoff_ms if backoff else 0)

    def _on_join_group(self, body: Data, now_ms: int) -> None:
        if self.state is not MemberState.PREPARING_REBALANCE:
            return
        error = lookup(body.error_code)
        if error is Errors.MEMBER_ID_REQUIRED:
            self.member_id = body.member_id
            self._back_to_unjoined(now_ms, backoff=False)
            return
        if error is Errors.UNKNOWN_MEMBER_ID:
            self.member_id = ""
            self._back_to_unjoined(now_ms, backoff=False)
            return
        if error in COORDINATOR_GONE:
            self.coordinator_unknown(error)
        if error in FATAL_GROUP_ERRORS:
            self.on_error(KafkaError(error, f"JoinGroup of group {self.group_id}"))
        if error is not Errors.NONE:
            self._back_to_unjoined(now_ms)
            return
        self.member_id = body.member_id
        self.generation_id = body.generation_id
        self.protocol_name = body.protocol_name
        self.leader_id = body.leader
        self._transition("joined")
        if body.leader == body.member_id and not body.get("skip_assignment", False):
            topics = set()
            for member in body.members:
                topics |= set(decode_subscription(member.metadata).topics)
            self.metadata.add_topics(topics)
            if any(t not in self.metadata.topics and t not in self.metadata.topic_errors for t in topics):
                self.metadata.request_update()
                self._pending_assignment = _PendingLeaderAssignment(list(body.members), body.protocol_name,
                                                                    self.metadata.updates)
                return
            self._send_sync_group(self._assign(list(body.members), body.protocol_name))
        else:
            self._send_sync_group([])

    def _maybe_assign_as_leader(self, now_ms: int) -> None:
        pending = self._pending_assignment
        if pending is None:
            return
        if self.state is not MemberState.COMPLETING_REBALANCE:
            self._pending_assignment = None  # the rebalance it belonged to is over
            return
        if self.metadata.updates <= pending.metadata_mark:
            return
        self._pending_assignment = None
        self._send_sync_group(self._assign(pending.members, pending.protocol))

    def _assign(self, members: list[Data], protocol: str) -> list[Data]:
        assignor = self.assignors[protocol]
        subscriptions = {m.member_id: decode_subscription(m.metadata, m.get("group_instance_id")) for m in members}
        partitions_per_topic = {t: count for t in {t for s in subscriptions.values() for t in s.topics}
                                if (count := self.metadata.partition_count(t)) is not None}
        self.assignment_snapshot = {t: partitions_per_topic.get(t) for t in {t for s in subscriptions.values()
                                                                             for t in s.topics}}
        result = assignor.assign(partitions_per_topic, subscriptions)
        log.info("group %s: leader assigned with %s: %s", self.group_id, protocol,
                 {m: list(a.partitions) for m, a in result.items()})
        assignment = API_BY_KEY[SYNC_GROUP_KEY].request.struct("SyncGroupRequestAssignment")
        return [assignment.make(member_id=m, assignment=encode_assignment(a)) for m, a in result.items()]

    def _send_sync_group(self, assignments: list[Data]) -> None:
        body = API_BY_KEY[SYNC_GROUP_KEY].request.make(
            group_id=self.group_id, generation_id=self.generation_id, member_id=self.member_id,
            group_instance_id=self.config.group_instance_id, protocol_type=CONSUMER_PROTOCOL_TYPE,
            protocol_name=self.protocol_name, assignments=assignments)
        timeout = max(self.config.request_timeout_ms, self.config.max_poll_interval_ms + 5000)
        self.send(SYNC_GROUP_KEY, body, self._on_sync_group, self._on_join_failure, timeout)

    def _on_sync_group(self, body: Data, now_ms: int) -> None:
        if self.state is not MemberState.COMPLETING_REBALANCE:
            return
        error = lookup(body.error_code)
        if error in RESET_GENERATION:
            self.reset_generation(f"SyncGroup: {error.name}")
            return
        if error in COORDINATOR_GONE:
            self.coordinator_unknown(error)
        if error in FATAL_GROUP_ERRORS:
            self.on_error(KafkaError(error, f"SyncGroup of group {self.group_id}"))
        if error is not Errors.NONE:
            self._back_to_unjoined(now_ms, backoff=error is not Errors.REBALANCE_IN_PROGRESS)
            return
        self._transition("synced")
        self.rebalances += 1
        self._next_heartbeat_ms = now_ms + self.config.heartbeat_interval_ms
        assigned = frozenset(TopicPartition(t, p) for t, p in decode_assignment(body.assignment).partitions
                             if t in self.subscriptions.topics)
        self._apply_assignment(assigned, now_ms)

    def in_stable_generation(self) -> bool:
        """A member of a generation the group still has, not rebalancing (partitions are revoked,
        not lost, when it leaves)."""
        return self.state is MemberState.STABLE and self.generation_id != NO_GENERATION and not self.rejoin_needed

    def check_metadata(self) -> None:
        """Rule 7: after a metadata update, a leader whose topics changed asks for a rebalance."""
        if self.assignment_snapshot is None or self.leader_id != self.member_id or self.state is not MemberState.STABLE:
            return
        current = {t: self.metadata.partition_count(t) for t in self.assignment_snapshot}
        if current != self.assignment_snapshot:
            self.assignment_snapshot = None
            self.request_rejoin(f"the partition counts of the group's topics changed to {current}")

    def _apply_assignment(self, assigned: frozenset[TopicPartition], now_ms: int) -> None:
        owned = frozenset(self.subscriptions.assignment)
        log.info("group %s generation %d: member %s assigned %s", self.group_id, self.generation_id,
                 self.member_id, sorted(map(str, assigned)))
        self.previous_assignment = assigned
        if self.cooperative:
            revoked = owned - assigned
            self.subscriptions.set_assignment(set(assigned | revoked))
            self._queue_listener_call("assigned", assigned - owned)
            if revoked:
                self._start_revocation(revoked, now_ms, lost=False, rejoin_after=True)
        else:
            self.subscriptions.set_assignment(set(assigned))
            self._queue_listener_call("assigned", assigned)

    # -- rule 4: revocation --------------------------------------------------------------------------

    def _queue_listener_call(self, kind: str, partitions: frozenset[TopicPartition]) -> int:
        self._listener_seq += 1
        self.listener_calls.append(ListenerCall(self._listener_seq, kind, partitions))
        self.on_listener_call()
        return self._listener_seq

    def _start_revocation(self, partitions: frozenset[TopicPartition], now_ms: int, lost: bool,
                          rejoin_after: bool) -> None:
        log.info("group %s: %s %s", self.group_id, "lost" if lost else "revoking", sorted(map(str, partitions)))
        revocation = self._revocation = _Revocation(partitions, lost, rejoin_after)
        for tp in partitions:
            self.subscriptions.state(tp).pending_revocation = True
            self.fetcher.drop_buffered(tp)
        positions = {tp: p for tp, p in self.subscriptions.consumed_positions().items() if tp in partitions}
        if not lost and self.config.enable_auto_commit and positions:
            revocation.commit = self.offsets.commit(positions, now_ms + self.config.request_timeout_ms, retry=True,
                                            during_revocation=True)

    def _advance_revocation(self, now_ms: int) -> None:
        revocation = self._revocation
        if revocation is None:
            return
        if revocation.commit is not None and not revocation.commit.done():
            return
        if revocation.callback_seq < 0:
            revocation.callback_seq = self._queue_listener_call("lost" if revocation.lost else "revoked",
                                                                revocation.partitions)
            return
        if self.listener_acked < revocation.callback_seq:
            return
        remaining = set(self.subscriptions.assignment) - revocation.partitions
        self.subscriptions.set_assignment(remaining)
        self._revocation = None
        if revocation.rejoin_after:
            self.request_rejoin("partitions revoked")

    def ack_listener_calls(self, seq: int) -> None:
        self.listener_acked = max(self.listener_acked, seq)

    # -- rule 5: heartbeats --------------------------------------------------------------------------

    def _maybe_heartbeat(self, now_ms: int) -> None:
        if self.state is not MemberState.STABLE or self._heartbeat_in_flight or now_ms < self._next_heartbeat_ms:
            return
        self._heartbeat_in_flight = True
        self._next_heartbeat_ms = now_ms + self.config.heartbeat_interval_ms
        generation = self.generation_id
        body = API_BY_KEY[HEARTBEAT_KEY].request.make(
            group_id=self.group_id, generation_id=generation, member_id=self.member_id,
            group_instance_id=self.config.group_instance_id)

        def on_response(response: Data, now_ms: int) -> None:
            self._heartbeat_in_flight = False
            error = lookup(response.error_code)
            if error is Errors.NONE or generation != self.generation_id:
                return
            if error is Errors.REBALANCE_IN_PROGRESS:
                self.request_rejoin("the group is rebalancing")
            elif error in RESET_GENERATION:
                self.reset_generation(f"Heartbeat: {error.name}")
            elif error in COORDINATOR_GONE:
                self.coordinator_unknown(error)
            elif error in FATAL_GROUP_ERRORS:
                self.on_error(KafkaError(error, f"Heartbeat of group {self.group_id}"))

        def on_failure(error: Exception, now_ms: int) -> None:
            self._heartbeat_in_flight = False
            self.coordinator_unknown(error)

        self.send(HEARTBEAT_KEY, body, on_response, on_failure)

    # -- leaving -------------------------------------------------------------------------------------

    def leave_group(self, reason: str) -> concurrent.futures.Future[None] | None:
        """LeaveGroup, unless static (KIP-345) or not a member; the future resolves on the answer."""
        if self.group_id is None or not self.member_id or self.config.group_instance_id is not None \
                or self.coordinator_id is None:  # rule 2: a static member is remembered by its instance id
            self._forget_membership()
            return None
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        request = API_BY_KEY[LEAVE_GROUP_KEY].request
        body = request.make(group_id=self.group_id, member_id=self.member_id, members=[
            request.struct("MemberIdentity").make(member_id=self.member_id, group_instance_id=None, reason=reason)])

        def settle(*_: object) -> None:
            if not future.done():
                future.set_result(None)

        self.send(LEAVE_GROUP_KEY, body, settle, settle)
        self._forget_membership()
        return future

    def _forget_membership(self) -> None:
        self.member_id = ""
        self.generation_id = NO_GENERATION
        if self.state is not MemberState.UNJOINED:
            self._transition("reset")
        self.rejoin_needed = True
