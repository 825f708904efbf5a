"""The consumer without I/O: Java's ``KafkaConsumer`` as one object driven by ``poll(now_ms)``.

Theory of operation
-------------------
:class:`ConsumerCore` owns the pieces and the order in which they run; each piece keeps its own
rules (read their module docstrings):

* ``cluster.ClusterMetadata`` -- brokers, leaders and leader epochs of the subscribed topics;
* ``subscriptions.SubscriptionState`` -- subscription or manual assignment, positions, pause;
* ``coordinator.ConsumerCoordinator`` -- group membership, assignors, commits, committed offsets;
* ``fetcher.Fetcher`` -- resets, KIP-320 validation, Fetch with KIP-227 sessions, decoding.

Every request goes into one :class:`~reference.client.outbox.Outbox`; a transport (the asyncio
shell in ``reference.client.consumer``, or a test) sends it and calls back with ``now_ms``.  The
core never blocks and reads no clock.  :meth:`ConsumerCore.poll` runs, in order: metadata, the
coordinator, the fetcher; :meth:`ConsumerCore.next_wakeup_ms` says when it has timed work.

What reaches the application, from the application's ``poll`` (the shell's thread):
:meth:`take_listener_calls` (rebalance callbacks to run, acknowledged with
:meth:`ack_listener_calls`: an eager rebalance waits for the revocation callback, as Java's waits
for ``poll``), :meth:`take_errors` (errors the application must see: no offset under
``auto.offset.reset=none``, a fatal group error, an authorization failure) and
:meth:`take_records`.

Node ids: brokers by their id (bootstrap servers negative, see ``cluster``), the group
coordinator by ``2**31 - 1 - id`` so it has a connection of its own (:meth:`address`).
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Iterable

from ..errors import Errors, KafkaError, by_name
from ..protocol.schema import Data
from .cluster import ClusterMetadata, TopicPartition
from .consumer_config import ConsumerConfig
from .coordinator import ConsumerCoordinator, ListenerCall
from .fetcher import ConsumerRecord, Fetcher
from .offsets import CommitFuture
from .outbox import OutboundRequest, Outbox
from .subscriptions import FetchState, Position, SubscriptionState

log = logging.getLogger("refka.client.consumer")

METADATA_KEY = 3


class ConsumerCore:
    def __init__(self, config: ConsumerConfig) -> None:
        self.config = config
        self.metadata = ClusterMetadata(config.bootstrap, config.retry_backoff_ms, config.metadata_max_age_ms)
        self.subscriptions = SubscriptionState()
        self.outbox = Outbox()
        self.errors: list[Exception] = []
        self.fetcher = Fetcher(config, self.metadata, self.subscriptions, self.outbox, self._report)
        self.coordinator = ConsumerCoordinator(config, self.metadata, self.subscriptions, self.fetcher,
                                               self.outbox, self._report)
        self._attempt = 0

    def _report(self, error: Exception) -> None:
        log.info("consumer error for the application: %s", error)
        self.errors.append(error)
        self.fetcher.on_records()  # wake a waiting poll

    # -- addresses -----------------------------------------------------------------------------------

    def address(self, node_id: int) -> tuple[str, int] | None:
        return self.coordinator.coordinator_address(node_id) or self.metadata.address(node_id)

    # -- one round -----------------------------------------------------------------------------------

    def poll(self, now_ms: int) -> None:
        self._maybe_update_metadata(now_ms)
        self.coordinator.poll(now_ms)
        self._reset_initializing_without_group()
        self.fetcher.poll(now_ms)

    def _reset_initializing_without_group(self) -> None:
        """Without a ``group.id`` there is no committed offset to ask for: a manually assigned
        partition goes straight to ``auto.offset.reset`` (Java's ``resetInitializingPositions``)."""
        if self.config.group_id is not None:
            return
        for tp, state in self.subscriptions.assignment.items():
            if state.state is FetchState.INITIALIZING:
                self.fetcher.need_reset(tp, "no group.id, so no committed offset")

    def next_wakeup_ms(self, now_ms: int) -> int | None:
        times = [self.metadata.update_due_ms(now_ms), self.coordinator.next_wakeup_ms(now_ms),
                 self.fetcher.next_wakeup_ms(now_ms)]
        return min((t for t in times if t is not None and t > now_ms), default=None)

    def _maybe_update_metadata(self, now_ms: int) -> None:
        due = self.metadata.update_due_ms(now_ms)
        if due is None or due > now_ms or not self.metadata.wanted_topics:
            return
        body = self.metadata.metadata_request(now_ms)
        self.outbox.send(OutboundRequest(self.metadata.any_node(self._attempt), METADATA_KEY, body,
                                         self._on_metadata, self._on_metadata_failure,
                                         timeout_ms=self.config.request_timeout_ms))

    def _on_metadata(self, body: Data, now_ms: int) -> None:
        self.metadata.update(body, now_ms)
        for topic in self.subscriptions.topics:
            error = self.metadata.topic_errors.get(topic, Errors.NONE)
            if error is by_name["TOPIC_AUTHORIZATION_FAILED"]:
                self._report(KafkaError(error, f"topic {topic}"))
        self.fetcher.check_leader_changes()
        self.coordinator.check_metadata()

    def _on_metadata_failure(self, error: Exception, now_ms: int) -> None:
        self._attempt += 1
        self.metadata.update_failed(now_ms)

    # -- the application's operations ----------------------------------------------------------------

    def subscribe(self, topics: Iterable[str]) -> None:
        wanted = frozenset(topics)
        changed = wanted != self.subscriptions.topics
        self.subscriptions.subscribe(wanted)
        self.metadata.add_topics(wanted)
        if changed:
            self.coordinator.request_rejoin("the subscription changed")

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        wanted = set(partitions)
        self.subscriptions.assign_manually(wanted)
        self.metadata.add_topics({tp.topic for tp in wanted})
        for tp in list(self.fetcher.buffer):
            if tp not in wanted:
                self.fetcher.drop_buffered(tp)

    def unsubscribe(self) -> concurrent.futures.Future[None] | None:
        leaving = self.coordinator.leave_group("the consumer unsubscribed") if self.subscriptions.subscribed else None
        self.subscriptions.unsubscribe()
        self.fetcher.buffer.clear()
        return leaving

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Java's ``seek``: the next poll reads from ``offset`` (not validated against the leader)."""
        state = self.subscriptions.state(tp)
        epoch = self.metadata.topics[tp.topic].partitions[tp.partition].leader_epoch \
            if tp.topic in self.metadata.topics and tp.partition in self.metadata.topics[tp.topic].partitions else -1
        state.seek(Position(offset, -1, epoch))
        state.reset_policy = None
        self.fetcher.drop_buffered(tp)

    def seek_to(self, partitions: Iterable[TopicPartition], policy: str) -> None:
        """``seek_to_beginning`` (policy earliest) / ``seek_to_end`` (latest), evaluated lazily."""
        for tp in partitions:
            state = self.subscriptions.state(tp)
            state.move_to(FetchState.AWAIT_RESET)
            state.reset_policy = policy
            state.retry_at_ms = 0
            state.request_in_flight = False
            self.fetcher.drop_buffered(tp)

    def pause(self, partitions: Iterable[TopicPartition], paused: bool) -> None:
        for tp in partitions:
            self.subscriptions.state(tp).paused = paused

    def position(self, tp: TopicPartition) -> int | None:
        state = self.subscriptions.state(tp)
        if state.position is None or state.state is FetchState.AWAIT_RESET:
            return None
        return state.position.offset

    def commit(self, offsets: dict[TopicPartition, int] | None, now_ms: int, timeout_ms: int,
               retry: bool) -> CommitFuture:
        """Commit ``offsets`` (next offsets to read), or every consumed position when None."""
        if offsets is None:
            positions = self.subscriptions.consumed_positions()
        else:
            positions = {tp: self._commit_position(tp, offset) for tp, offset in offsets.items()}
        return self.coordinator.offsets.commit(positions, now_ms + timeout_ms, retry)

    def _commit_position(self, tp: TopicPartition, offset: int) -> Position:
        state = self.subscriptions.assignment.get(tp)
        if state is not None and state.position is not None and state.position.offset == offset:
            return state.position  # keeps the leader epoch of the last record (KIP-320)
        return Position(offset)

    def committed(self, partitions: set[TopicPartition]) -> concurrent.futures.Future[dict[TopicPartition, Position | None]]:
        return self.coordinator.offsets.fetch_committed(partitions)

    def take_records(self, max_records: int, now_ms: int) -> list[ConsumerRecord]:
        """The application's poll: records, and proof of life for ``max.poll.interval.ms``."""
        self.coordinator.application_polled(now_ms)
        return self.fetcher.take_records(max_records)

    def take_listener_calls(self) -> list[ListenerCall]:
        calls = list(self.coordinator.listener_calls)
        self.coordinator.listener_calls.clear()
        return calls

    def ack_listener_calls(self, seq: int) -> None:
        self.coordinator.ack_listener_calls(seq)

    def take_errors(self) -> list[Exception]:
        errors, self.errors = self.errors, []
        return errors

    def assignment(self) -> set[TopicPartition]:
        return {tp for tp, s in self.subscriptions.assignment.items() if not s.pending_revocation}
