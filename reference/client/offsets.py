"""A consumer group's offsets: commits (sync, async, auto) and committed offsets (sans-IO).

Theory of operation
-------------------
Java's ``ConsumerCoordinator`` offset half, apart from membership (``reference.client.coordinator``,
whose rule 6 this is; it owns the coordinator connection and drives this object from its poll).

* **OffsetCommit** carries the member's generation and member id when it is a group member (manual
  assignment: -1 and "", which Kafka accepts for a group with no members), and per partition the
  next offset to read and the leader epoch of the record before it (KIP-320).  A group member that
  is rebalancing cannot commit (REBALANCE_IN_PROGRESS to the caller, who commits after the next
  poll).  ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID fail the commit with :class:`CommitFailedError`
  and reset the generation; NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE (the coordinator is looked
  up again) and COORDINATOR_LOAD_IN_PROGRESS are retried until the commit's deadline by a
  synchronous commit, and reported once by an asynchronous one.
* **Auto commit** (``enable.auto.commit``) commits every position each ``auto.commit.interval.ms``
  (asynchronously; a failure is logged), and the revoked partitions' positions before a revocation.
* **OffsetFetch** (``RequireStable``, KIP-447) gives partitions without a position their committed
  offset; none committed -> ``auto.offset.reset``; UNSTABLE_OFFSET_COMMIT (a transaction still
  open) -> ask again after ``retry.backoff.ms``.

* **Topic ids or names.**  From OffsetCommit v10 and OffsetFetch v10 a topic is named by its
  topic id (KIP-848's era), the older versions by its name.  A topic the metadata cache has no id
  for -- committed() of a topic never subscribed nor assigned -- would go as the zero id and be
  answered UNKNOWN_TOPIC_ID for ever, so such a request is capped at v9, which carries names
  (Java's ``Builder.forTopicNames``).

Invariant: each commit's future is resolved exactly once -- with the committed offsets, or the
error -- at the latest at its deadline.
"""

from __future__ import annotations

import concurrent.futures
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import Errors, KafkaError, lookup
from ..protocol.apis import API_BY_KEY
from ..protocol.primitives import ZERO_UUID
from ..protocol.schema import Data
from .cluster import TopicPartition
from .subscriptions import FetchState, Position

if TYPE_CHECKING:
    from .coordinator import ConsumerCoordinator

log = logging.getLogger("refka.client.consumer")

OFFSET_COMMIT_KEY, OFFSET_FETCH_KEY = 8, 9
LAST_VERSION_NAMING_TOPICS = 9  # OffsetCommit and OffsetFetch v10+ name topics by id only
NO_GENERATION = -1
COORDINATOR_GONE = frozenset({Errors.NOT_COORDINATOR, Errors.COORDINATOR_NOT_AVAILABLE})
RESET_GENERATION = frozenset({Errors.ILLEGAL_GENERATION, Errors.UNKNOWN_MEMBER_ID})

CommitFuture = concurrent.futures.Future[dict[TopicPartition, int]]  # the committed offsets, or an error


class CommitFailedError(KafkaError):
    """The group rebalanced and this member's generation is gone (Java's CommitFailedException)."""

    def __init__(self, error: KafkaError) -> None:
        super().__init__(error.error, "commit cannot be completed since the group has already rebalanced "
                                      f"and assigned the partitions to another member ({error.error.name})")


@dataclass(eq=False)
class _Commit:
    offsets: dict[TopicPartition, Position]
    future: CommitFuture
    deadline_ms: int
    retry: bool  # synchronous commits retry retriable errors until the deadline; others try once
    retry_at_ms: int = 0
    in_flight: bool = False


class GroupOffsets:
    """Commits and committed offsets of one consumer's group (see the module docstring)."""

    def __init__(self, membership: ConsumerCoordinator) -> None:
        self.membership = membership
        self.config = membership.config
        self.group_id = membership.group_id
        self.metadata = membership.metadata
        self.subscriptions = membership.subscriptions
        self.fetcher = membership.fetcher
        self._commits: list[_Commit] = []
        self._offset_fetch_in_flight: set[TopicPartition] = set()
        self._offset_fetch_retry_at_ms = 0
        self._next_auto_commit_ms: int | None = None

    def wakeup_times(self) -> list[int]:
        times = [self._offset_fetch_retry_at_ms]
        if self._next_auto_commit_ms is not None:
            times.append(self._next_auto_commit_ms)
        times.extend(c.retry_at_ms for c in self._commits if not c.in_flight)
        times.extend(c.deadline_ms for c in self._commits if not c.in_flight)
        return times

    def commit(self, offsets: dict[TopicPartition, Position], deadline_ms: int, retry: bool,
               during_revocation: bool = False) -> CommitFuture:
        """Queue an OffsetCommit that fails at ``deadline_ms``; ``retry``: retry retriable errors
        until then (synchronous commits), else try once (asynchronous and auto commits)."""
        future: CommitFuture = concurrent.futures.Future()
        if self.group_id is None:
            future.set_exception(KafkaError(Errors.INVALID_GROUP_ID, "committing offsets needs a group.id"))
            return future
        if not offsets:
            future.set_result({})
            return future
        if self.subscriptions.subscribed and not self.membership.stable and not during_revocation:
            future.set_exception(KafkaError(Errors.REBALANCE_IN_PROGRESS,
                                            "the group is rebalancing; commit after the next poll"))
            return future
        self._commits.append(_Commit(dict(offsets), future, deadline_ms, retry))
        return future

    def send_commits(self, now_ms: int) -> None:
        for commit in list(self._commits):
            if commit.in_flight or now_ms < commit.retry_at_ms:
                continue
            commit.in_flight = True
            self._send_offset_commit(commit)

    def _send_offset_commit(self, commit: _Commit) -> None:
        request = API_BY_KEY[OFFSET_COMMIT_KEY].request
        topic_struct = request.struct("OffsetCommitRequestTopic")
        partition_struct = request.struct("OffsetCommitRequestPartition")
        by_topic: dict[str, list[Data]] = {}
        for tp, position in sorted(commit.offsets.items(), key=lambda item: (item[0].topic, item[0].partition)):
            by_topic.setdefault(tp.topic, []).append(partition_struct.make(
                partition_index=tp.partition, committed_offset=position.offset,
                committed_leader_epoch=position.offset_epoch, committed_metadata=""))
        member = self.subscriptions.subscribed
        body = request.make(
            group_id=self.group_id, generation_id_or_member_epoch=self.membership.generation_id if member else NO_GENERATION,
            member_id=self.membership.member_id if member else "", group_instance_id=self.config.group_instance_id,
            topics=[topic_struct.make(name=t, topic_id=self.metadata.topic_id(t), partitions=ps)
                    for t, ps in by_topic.items()])

        def on_response(response: Data, now_ms: int) -> None:
            commit.in_flight = False
            names = {self.metadata.topic_id(tp.topic): tp.topic for tp in commit.offsets}
            errors = [(TopicPartition(t.get("name") or names.get(t.get("topic_id"), ""), p.partition_index),
                       lookup(p.error_code)) for t in response.topics for p in t.partitions]
            failed = [(tp, e) for tp, e in errors if e is not Errors.NONE]
            if not failed:
                self._finish_commit(commit, None)
                return
            error = failed[0][1]
            if error in COORDINATOR_GONE:
                self.membership.coordinator_unknown(error)
            if error in RESET_GENERATION:
                self.membership.reset_generation(f"OffsetCommit: {error.name}")
                self._finish_commit(commit, CommitFailedError(KafkaError(error)))
            elif error is Errors.REBALANCE_IN_PROGRESS:
                self.membership.request_rejoin("OffsetCommit: REBALANCE_IN_PROGRESS")
                self._finish_commit(commit, KafkaError(error, "the group is rebalancing"))
            elif error.retriable:
                self._retry_commit(commit, KafkaError(error, f"OffsetCommit for {failed[0][0]}"), now_ms)
            else:
                self._finish_commit(commit, KafkaError(error, f"OffsetCommit for {failed[0][0]}"))

        def on_failure(error: Exception, now_ms: int) -> None:
            commit.in_flight = False
            self.membership.coordinator_unknown(error)
            self._retry_commit(commit, error, now_ms)

        self.membership.send(OFFSET_COMMIT_KEY, body, on_response, on_failure,
                             max_version=self._version_cap(by_topic))

    def _retry_commit(self, commit: _Commit, error: Exception, now_ms: int) -> None:
        if not commit.retry or now_ms + self.config.retry_backoff_ms >= commit.deadline_ms:
            self._finish_commit(commit, error)
        else:
            commit.retry_at_ms = now_ms + self.config.retry_backoff_ms

    def _finish_commit(self, commit: _Commit, error: Exception | None) -> None:
        if commit in self._commits:
            self._commits.remove(commit)
        if commit.future.done():
            return
        if error is None:
            commit.future.set_result({tp: p.offset for tp, p in commit.offsets.items()})
        else:
            commit.future.set_exception(error)

    def expire_commits(self, now_ms: int) -> None:
        """Commits still waiting (no coordinator, backing off) at their deadline fail."""
        for commit in list(self._commits):
            if not commit.in_flight and commit.deadline_ms <= now_ms:
                self._finish_commit(commit, KafkaError(Errors.REQUEST_TIMED_OUT, "the offset commit timed out"))

    def maybe_auto_commit(self, now_ms: int) -> None:
        if not self.config.enable_auto_commit:
            return
        if self._next_auto_commit_ms is None:
            self._next_auto_commit_ms = now_ms + self.config.auto_commit_interval_ms
            return
        if now_ms < self._next_auto_commit_ms:
            return
        self._next_auto_commit_ms = now_ms + self.config.auto_commit_interval_ms
        positions = {tp: p for tp, p in self.subscriptions.consumed_positions().items()
                     if not self.subscriptions.assignment[tp].pending_revocation}
        if positions and (not self.subscriptions.subscribed or self.membership.stable):
            future = self.commit(positions, now_ms + self.config.request_timeout_ms, retry=False)
            future.add_done_callback(_log_auto_commit)

    def fetch_committed(self, partitions: set[TopicPartition]) -> concurrent.futures.Future[dict[TopicPartition, Position | None]]:
        """The committed offsets of ``partitions`` (None where nothing is committed)."""
        future: concurrent.futures.Future[dict[TopicPartition, Position | None]] = concurrent.futures.Future()
        if self.group_id is None:
            future.set_exception(KafkaError(Errors.INVALID_GROUP_ID, "committed offsets need a group.id"))
            return future
        if self.membership.coordinator_id is None:
            future.set_exception(KafkaError(Errors.COORDINATOR_NOT_AVAILABLE, "no group coordinator yet"))
            return future
        self._send_offset_fetch(partitions, future)
        return future

    def fetch_committed_offsets(self, now_ms: int) -> None:
        wanted = {tp for tp, s in self.subscriptions.assignment.items()
                  if s.state is FetchState.INITIALIZING and not s.pending_revocation}
        wanted -= self._offset_fetch_in_flight
        if not wanted or now_ms < self._offset_fetch_retry_at_ms:
            return
        future: concurrent.futures.Future[dict[TopicPartition, Position | None]] = concurrent.futures.Future()
        self._offset_fetch_in_flight |= wanted

        def done(result: concurrent.futures.Future[dict[TopicPartition, Position | None]]) -> None:
            self._offset_fetch_in_flight -= wanted
            if result.exception() is not None:
                self._offset_fetch_retry_at_ms = now_ms + self.config.retry_backoff_ms
                return
            for tp, position in result.result().items():
                state = self.subscriptions.assignment.get(tp)
                if state is None or state.state is not FetchState.INITIALIZING:
                    continue
                if position is None:
                    self.fetcher.need_reset(tp, "no committed offset")
                else:
                    state.seek(position)

        future.add_done_callback(done)
        self._send_offset_fetch(wanted, future)

    def _send_offset_fetch(self, partitions: set[TopicPartition],
                           future: concurrent.futures.Future[dict[TopicPartition, Position | None]]) -> None:
        request = API_BY_KEY[OFFSET_FETCH_KEY].request
        by_topic: dict[str, list[int]] = {}
        for tp in partitions:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        old_topic = request.struct("OffsetFetchRequestTopic")
        new_topic = request.struct("OffsetFetchRequestTopics")
        body = request.make(
            group_id=self.group_id, require_stable=True,
            topics=[old_topic.make(name=t, partition_indexes=sorted(ps)) for t, ps in by_topic.items()],
            groups=[request.struct("OffsetFetchRequestGroup").make(
                group_id=self.group_id, topics=[new_topic.make(name=t, topic_id=self.metadata.topic_id(t),
                                                               partition_indexes=sorted(ps))
                                                for t, ps in by_topic.items()])])

        def on_response(response: Data, now_ms: int) -> None:
            groups = response.get("groups") or []
            top = groups[0] if groups else response
            topics = top.topics if groups else response.topics
            error = lookup(top.get("error_code", 0) or 0)
            if error is not Errors.NONE:
                if error in COORDINATOR_GONE:
                    self.membership.coordinator_unknown(error)
                future.set_exception(KafkaError(error, "OffsetFetch"))
                return
            names = {self.metadata.topic_id(t): t for t in by_topic}
            result: dict[TopicPartition, Position | None] = {}
            for topic in topics:
                name = topic.get("name") or names.get(topic.get("topic_id"), "")
                for p in topic.partitions:
                    partition_error = lookup(p.error_code)
                    if partition_error is not Errors.NONE:  # UNSTABLE_OFFSET_COMMIT: ask again later
                        future.set_exception(KafkaError(partition_error, f"OffsetFetch for {name}-{p.partition_index}"))
                        return
                    tp = TopicPartition(name, p.partition_index)
                    result[tp] = None if p.committed_offset < 0 else Position(
                        p.committed_offset, p.get("committed_leader_epoch", -1))
            future.set_result(result)

        def on_failure(error: Exception, now_ms: int) -> None:
            self.membership.coordinator_unknown(error)
            future.set_exception(error)

        self.membership.send(OFFSET_FETCH_KEY, body, on_response, on_failure,
                             max_version=self._version_cap(by_topic))

    def _version_cap(self, topics: dict[str, list[Data]] | dict[str, list[int]]) -> int | None:
        """None when every topic's id is known; otherwise the last version that names topics."""
        if all(self.metadata.topic_id(topic) != ZERO_UUID for topic in topics):
            return None
        return LAST_VERSION_NAMING_TOPICS


def _log_auto_commit(future: CommitFuture) -> None:
    error = future.exception()
    if error is not None:
        log.warning("auto commit failed: %s", error)
