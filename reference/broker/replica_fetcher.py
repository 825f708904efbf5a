"""Followers fetching from their partitions' leaders: Kafka's ``ReplicaFetcherThread``.

Theory of operation
-------------------
Mirrors Kafka's ``ReplicaFetcherManager``, ``AbstractFetcherThread`` and ``ReplicaFetcherThread``
without threads, sockets or a clock: a :class:`ReplicaFetcher` per leader broker keeps the fetch
state of the partitions this broker follows there, puts one Fetch request (api 1) at a time into
the broker's outbox (:mod:`reference.client.outbox`) and acts on the answer when the transport
completes it, with the transport's time.  Then it fetches again at once; the leader holds the
request (long poll) until data arrives or ``replica.fetch.wait.max.ms`` passes.

The request (Fetch v15+ semantics; the fields of older versions are filled too):

* ``ReplicaState``: this broker's id and broker epoch (KIP-903; before v15 ``ReplicaId``), which
  makes the leader treat the fetch as a follower's: read up to its log end offset and record how
  far this follower got (``Partition.update_follower_fetch_state``);
* ``MaxWaitMs`` = ``replica.fetch.wait.max.ms`` (500), ``MinBytes`` = ``replica.fetch.min.bytes``
  (1), ``MaxBytes`` = ``replica.fetch.response.max.bytes`` (10 MiB), per partition
  ``PartitionMaxBytes`` = ``replica.fetch.max.bytes`` (1 MiB); no fetch session (id 0, epoch -1);
* per partition: ``CurrentLeaderEpoch`` (KIP-320 fencing), ``FetchOffset`` = our log end offset,
  ``LastFetchedEpoch`` = the epoch of our last batch (KIP-595) and ``LogStartOffset``.

Each partition of the answer, as Kafka's ``processFetchRequest`` (answers for a partition whose
fetch offset or state changed meanwhile are dropped):

=========================  ================================================================
answer                     what the follower does
=========================  ================================================================
records                    append as follower (offsets, epochs and producer state as the
                           leader wrote them, so idempotent deduplication survives a failover);
                           HW = min(leader HW, own LEO); log start follows the leader's
DivergingEpoch(E, O)       truncate (Kafka's ``getOffsetTruncationState``): to min(O, our end
                           of E, our LEO) if we know E, else to the end of our largest epoch
                           below E (the next fetch may diverge again, KIP-279); no append
OFFSET_OUT_OF_RANGE        ask the leader's latest offset (ListOffsets -1): above it, truncate
                           to it; else ask its earliest (-2): if our LEO is below it, empty the
                           log and start there (Kafka's ``fetchOffsetAndTruncate``)
FENCED_LEADER_EPOCH        if we sent the epoch we still believe: stop fetching the partition
                           until new metadata re-adds it (Kafka's ``onPartitionFenced``)
any other error, or the    retry the partition after ``replica.fetch.backoff.ms`` (1 s):
request failed             UNKNOWN_LEADER_EPOCH, NOT_LEADER_OR_FOLLOWER (metadata is late)...
=========================  ================================================================

A partition starts (:meth:`ReplicaFetcherManager.add_fetcher_for_partitions`) at its log end
offset when its epoch cache knows an epoch, else it is truncated to its high watermark and starts
there (Kafka's ``initialFetchOffset`` and truncate-to-HW for logs without epochs).

Invariants: at most one Fetch in flight per leader; a partition is fetched by at most one fetcher
(the one of its current leader); an answer is applied only if the partition's fetch offset is
still the one that was requested, so the log end offset equals the fetch offset when appending.
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import guards
from ..client.outbox import OutboundRequest, Outbox
from ..errors import Errors, KafkaError, lookup
from ..protocol.apis import API_BY_KEY
from ..protocol.schema import Data
from .log.files import TopicPartition

if TYPE_CHECKING:
    from .configs import BrokerConfig
    from .partition import Partition

log = logging.getLogger("refka.broker.replica_fetcher")

FETCH = API_BY_KEY[1]
LIST_OFFSETS = API_BY_KEY[2]
FETCH_TOPIC = FETCH.request.struct("FetchTopic")
FETCH_PARTITION = FETCH.request.struct("FetchPartition")
REPLICA_STATE = FETCH.request.struct("ReplicaState")
LIST_TOPIC = LIST_OFFSETS.request.struct("ListOffsetsTopic")
LIST_PARTITION = LIST_OFFSETS.request.struct("ListOffsetsPartition")

UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1
NO_SESSION = 0
FINAL_SESSION_EPOCH = -1  # a full fetch that opens no session
LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2
READ_UNCOMMITTED = 0


@dataclass(frozen=True)
class ReplicaFetcherConfig:
    """The broker keys a follower fetches with (Kafka's defaults)."""

    max_bytes: int = 1_048_576  # replica.fetch.max.bytes
    response_max_bytes: int = 10_485_760  # replica.fetch.response.max.bytes
    max_wait_ms: int = 500  # replica.fetch.wait.max.ms
    min_bytes: int = 1  # replica.fetch.min.bytes
    backoff_ms: int = 1_000  # replica.fetch.backoff.ms

    @classmethod
    def from_broker_config(cls, config: BrokerConfig) -> ReplicaFetcherConfig:
        def key(name: str, default: int) -> int:
            value = config.get(name)
            return int(value) if value is not None else default

        return cls(
            max_bytes=key("replica.fetch.max.bytes", cls.max_bytes),
            response_max_bytes=key("replica.fetch.response.max.bytes", cls.response_max_bytes),
            max_wait_ms=key("replica.fetch.wait.max.ms", cls.max_wait_ms),
            min_bytes=key("replica.fetch.min.bytes", cls.min_bytes),
            backoff_ms=key("replica.fetch.backoff.ms", cls.backoff_ms),
        )


@dataclass(frozen=True)
class FetcherContext:
    """What a fetcher needs of its broker, passed in (no reaching through the broker object)."""

    replica_id: int  # this broker's id
    broker_epoch: Callable[[], int]
    outbox: Outbox
    partition: Callable[[TopicPartition], Partition | None]
    topic_id: Callable[[str], uuid.UUID | None]
    topic_name: Callable[[uuid.UUID], str | None]
    config: ReplicaFetcherConfig


class ReplicaState(enum.Enum):
    """Where one partition's fetching stands (Kafka's ``ReplicaState`` of a fetch state)."""

    FETCHING = "fetching"
    LOOKING_UP_OFFSET = "looking up offset"  # OFFSET_OUT_OF_RANGE: asking the leader's offsets
    FAILED = "failed"  # fenced or broken: waits for new metadata to re-add it


@dataclass(eq=False)
class PartitionFetchState:
    """One followed partition: where to fetch next and in which leader epoch."""

    fetch_offset: int
    current_leader_epoch: int
    last_fetched_epoch: int | None
    state: ReplicaState = ReplicaState.FETCHING
    delayed_until_ms: int = 0

    def is_ready_for_fetch(self, now_ms: int) -> bool:
        return self.state is ReplicaState.FETCHING and now_ms >= self.delayed_until_ms


@dataclass(frozen=True)
class InitialFetchState:
    leader_id: int
    current_leader_epoch: int


class ReplicaFetcher:
    """Fetches every partition this broker follows on one leader broker."""

    def __init__(self, leader_id: int, context: FetcherContext) -> None:
        self.leader_id = leader_id
        self.context = context
        self.partitions: dict[TopicPartition, PartitionFetchState] = {}
        self.in_flight: OutboundRequest | None = None

    # -- partitions ----------------------------------------------------------------------------

    def add_partition(self, topic_partition: TopicPartition, state: PartitionFetchState) -> None:
        self.partitions[topic_partition] = state

    def remove_partition(self, topic_partition: TopicPartition) -> None:
        self.partitions.pop(topic_partition, None)

    def next_deadline(self) -> int | None:
        """When a backed-off partition becomes fetchable again (None: nothing to wait for)."""
        if self.in_flight is not None:
            return None
        waiting = [s.delayed_until_ms for s in self.partitions.values() if s.state is ReplicaState.FETCHING]
        return min(waiting, default=None)

    def _delay(self, topic_partition: TopicPartition, state: PartitionFetchState, now_ms: int) -> None:
        if self.partitions.get(topic_partition) is state and state.delayed_until_ms <= now_ms:
            state.delayed_until_ms = now_ms + self.context.config.backoff_ms

    # -- the Fetch request -------------------------------------------------------------------------

    def maybe_fetch(self, now_ms: int) -> OutboundRequest | None:
        """Send a Fetch for every partition ready for it, unless one is already in flight."""
        if self.in_flight is not None:
            return None
        context = self.context
        topics: dict[str, list[Data]] = {}
        sent: dict[TopicPartition, PartitionFetchState] = {}
        for topic_partition, state in self.partitions.items():
            if not state.is_ready_for_fetch(now_ms):
                continue
            partition = context.partition(topic_partition)
            if partition is None or context.topic_id(topic_partition.topic) is None:
                self._delay(topic_partition, state, now_ms)
                continue
            topics.setdefault(topic_partition.topic, []).append(FETCH_PARTITION.make(
                partition=topic_partition.partition,
                current_leader_epoch=state.current_leader_epoch,
                fetch_offset=state.fetch_offset,
                last_fetched_epoch=UNDEFINED_EPOCH if state.last_fetched_epoch is None else state.last_fetched_epoch,
                log_start_offset=partition.log_start_offset,
                partition_max_bytes=context.config.max_bytes,
            ))
            sent[topic_partition] = state
        if not sent:
            return None
        config = context.config
        body = FETCH.request.make(
            replica_id=context.replica_id,
            replica_state=REPLICA_STATE.make(replica_id=context.replica_id, replica_epoch=context.broker_epoch()),
            max_wait_ms=config.max_wait_ms, min_bytes=config.min_bytes, max_bytes=config.response_max_bytes,
            isolation_level=READ_UNCOMMITTED, session_id=NO_SESSION, session_epoch=FINAL_SESSION_EPOCH,
            topics=[FETCH_TOPIC.make(topic=name, topic_id=context.topic_id(name), partitions=partitions)
                    for name, partitions in topics.items()],
            forgotten_topics_data=[],
        )
        request = OutboundRequest(
            destination=self.leader_id, api_key=FETCH.key, body=body,
            on_response=lambda response, at: self._on_fetch_response(request, sent, response, at),
            on_failure=lambda error, at: self._on_fetch_failure(request, sent, error, at),
        )
        self.in_flight = request
        context.outbox.send(request)
        return request

    def _on_fetch_failure(self, request: OutboundRequest, sent: dict[TopicPartition, PartitionFetchState],
                          error: Exception, now_ms: int) -> None:
        log.info("fetch from broker %d failed: %s", self.leader_id, error)
        if self.in_flight is request:
            self.in_flight = None
        for topic_partition, state in sent.items():
            self._delay(topic_partition, state, now_ms)

    def _on_fetch_response(self, request: OutboundRequest, sent: dict[TopicPartition, PartitionFetchState],
                           response: Data, now_ms: int) -> None:
        if self.in_flight is request:
            self.in_flight = None
        if response.error_code != Errors.NONE.code:
            for topic_partition, state in sent.items():
                self._delay(topic_partition, state, now_ms)
        else:
            requested = {tp: (state, state.fetch_offset) for tp, state in sent.items()}
            for topic in response.responses:
                name = self.context.topic_name(topic.topic_id) if topic.topic_id else None
                name = name or topic.topic
                for answer in topic.partitions:
                    topic_partition = TopicPartition(name, answer.partition_index)
                    if topic_partition not in requested:
                        continue
                    state, fetch_offset = requested[topic_partition]
                    if (self.partitions.get(topic_partition) is not state or state.fetch_offset != fetch_offset
                            or state.state is not ReplicaState.FETCHING):
                        continue  # removed, re-added or truncated while the request was out
                    self._process_partition(topic_partition, state, answer, now_ms)
        self.maybe_fetch(now_ms)

    # -- one partition of the answer ---------------------------------------------------------------

    def _process_partition(self, topic_partition: TopicPartition, state: PartitionFetchState, answer: Data,
                           now_ms: int) -> None:
        error = lookup(answer.error_code)
        if error == Errors.NONE:
            try:
                self._process_data(topic_partition, state, answer)
            except KafkaError as failed:  # a corrupt or odd batch: retry after the backoff
                log.warning("cannot append the fetch for %s: %s", topic_partition, failed)
                self._delay(topic_partition, state, now_ms)
            except Exception:
                log.exception("replication of %s stopped until new metadata", topic_partition)
                state.state = ReplicaState.FAILED
        elif error == Errors.OFFSET_OUT_OF_RANGE:
            self._look_up_offset(topic_partition, state, LATEST_TIMESTAMP, now_ms)
        elif error == Errors.FENCED_LEADER_EPOCH:
            self._on_partition_fenced(topic_partition, state, now_ms)
        else:
            log.info("fetch of %s from broker %d: %s; backing off", topic_partition, self.leader_id, error)
            self._delay(topic_partition, state, now_ms)

    def _on_partition_fenced(self, topic_partition: TopicPartition, state: PartitionFetchState, now_ms: int) -> None:
        """Our epoch is older than the leader's: wait for the metadata that says so."""
        log.info("%s is fenced at leader epoch %d; waiting for new metadata", topic_partition, state.current_leader_epoch)
        state.state = ReplicaState.FAILED

    def _process_data(self, topic_partition: TopicPartition, state: PartitionFetchState, answer: Data) -> None:
        partition = self.context.partition(topic_partition)
        if partition is None:
            raise KafkaError(Errors.UNKNOWN_TOPIC_OR_PARTITION, f"{topic_partition} is not hosted here")
        diverging = answer.diverging_epoch
        if diverging is not None and (diverging.epoch >= 0 or diverging.end_offset >= 0):
            self._truncate_on_diverging_epoch(partition, state, diverging.epoch, diverging.end_offset)
            return
        if state.fetch_offset != partition.log_end_offset:
            raise RuntimeError(f"{topic_partition}: fetched at {state.fetch_offset} but the LEO is {partition.log_end_offset}")
        if answer.records:
            partition.append_records_to_follower(answer.records)
            state.fetch_offset = partition.log_end_offset
            state.last_fetched_epoch = partition.log.latest_epoch
        partition.update_follower_high_watermark(answer.high_watermark)
        if answer.log_start_offset >= 0:
            partition.maybe_increment_log_start_offset(answer.log_start_offset)

    def _truncate_on_diverging_epoch(self, partition: Partition, state: PartitionFetchState, leader_epoch: int,
                                     leader_end_offset: int) -> None:
        """Kafka's ``getOffsetTruncationState`` for the leader's (epoch, end offset)."""
        log_end = partition.log_end_offset
        if leader_end_offset == UNDEFINED_OFFSET:
            target = min(state.fetch_offset, log_end)
        elif not guards.on("match_epoch_lineage"):  # spec guard match_epoch_lineage (KIP-279)
            target = min(leader_end_offset, log_end)  # KIP-101's rule: trust the leader's end of the epoch
        else:
            mine = partition.last_offset_for_leader_epoch(leader_epoch)
            if mine is None:
                target = min(leader_end_offset, log_end)
            elif mine[0] != leader_epoch:  # we do not know the leader's epoch: go below it, ask again
                target = min(mine[1], log_end)
            else:
                target = min(mine[1], leader_end_offset, log_end)
        log.info("truncating %s to %d (leader epoch %d ends at %d)", partition.log.topic_partition, target,
                 leader_epoch, leader_end_offset)
        partition.truncate_to(target)
        state.fetch_offset = partition.log_end_offset
        state.last_fetched_epoch = partition.log.latest_epoch

    # -- OFFSET_OUT_OF_RANGE: ask the leader where its log is ------------------------------------

    def _look_up_offset(self, topic_partition: TopicPartition, state: PartitionFetchState, timestamp: int,
                        now_ms: int) -> None:
        state.state = ReplicaState.LOOKING_UP_OFFSET
        body = LIST_OFFSETS.request.make(
            replica_id=self.context.replica_id, isolation_level=READ_UNCOMMITTED,
            topics=[LIST_TOPIC.make(name=topic_partition.topic, partitions=[LIST_PARTITION.make(
                partition_index=topic_partition.partition, current_leader_epoch=state.current_leader_epoch,
                timestamp=timestamp)])],
        )

        def on_response(response: Data, at: int) -> None:
            self._on_offset(topic_partition, state, timestamp, response, at)

        def on_failure(error: Exception, at: int) -> None:
            self._resume(topic_partition, state, at, delay=True)

        self.context.outbox.send(OutboundRequest(
            destination=self.leader_id, api_key=LIST_OFFSETS.key, body=body, on_response=on_response,
            on_failure=on_failure))

    def _resume(self, topic_partition: TopicPartition, state: PartitionFetchState, now_ms: int, delay: bool) -> None:
        if self.partitions.get(topic_partition) is not state or state.state is not ReplicaState.LOOKING_UP_OFFSET:
            return
        state.state = ReplicaState.FETCHING
        if delay:
            self._delay(topic_partition, state, now_ms)
        self.maybe_fetch(now_ms)

    def _on_offset(self, topic_partition: TopicPartition, state: PartitionFetchState, timestamp: int,
                   response: Data, now_ms: int) -> None:
        if self.partitions.get(topic_partition) is not state or state.state is not ReplicaState.LOOKING_UP_OFFSET:
            return
        partition = self.context.partition(topic_partition)
        answers = [p for t in response.topics for p in t.partitions if p.partition_index == topic_partition.partition]
        error = lookup(answers[0].error_code) if answers else Errors.UNKNOWN_TOPIC_OR_PARTITION
        if partition is None or error != Errors.NONE:
            if error == Errors.FENCED_LEADER_EPOCH:
                self._on_partition_fenced(topic_partition, state, now_ms)
                return
            self._resume(topic_partition, state, now_ms, delay=True)
            return
        offset = answers[0].offset
        log_end = partition.log_end_offset
        if timestamp == LATEST_TIMESTAMP:
            if offset < log_end:  # the leader's log is shorter (e.g. after an unclean election)
                partition.truncate_to(offset)
            else:
                self._look_up_offset(topic_partition, state, EARLIEST_TIMESTAMP, now_ms)
                return
        elif offset > log_end:  # everything we hold is older than the leader's log start
            partition.truncate_fully_and_start_at(offset)
        state.fetch_offset = partition.log_end_offset
        state.last_fetched_epoch = partition.log.latest_epoch
        self._resume(topic_partition, state, now_ms, delay=False)


class ReplicaFetcherManager:
    """One :class:`ReplicaFetcher` per leader broker (Kafka runs ``num.replica.fetchers`` = 1)."""

    def __init__(self, context: FetcherContext) -> None:
        self.context = context
        self.fetchers: dict[int, ReplicaFetcher] = {}

    def fetch_state(self, topic_partition: TopicPartition) -> PartitionFetchState | None:
        for fetcher in self.fetchers.values():
            found = fetcher.partitions.get(topic_partition)
            if found is not None:
                return found
        return None

    def add_fetcher_for_partition(self, topic_partition: TopicPartition, initial: InitialFetchState,
                                  partition: Partition, now_ms: int) -> None:
        """Start following ``partition`` on ``initial.leader_id`` (after removing any old fetch)."""
        self.remove_fetcher_for_partitions([topic_partition])
        last_epoch = partition.log.latest_epoch
        # spec guard truncate_by_leader_epoch (KIP-101): with epochs the leader judges our log on
        # the first fetch; truncating to our own high watermark could drop committed records.
        if last_epoch is None or not guards.on("truncate_by_leader_epoch"):
            partition.truncate_to(min(partition.high_watermark, partition.log_end_offset))
            last_epoch = partition.log.latest_epoch
        state = PartitionFetchState(partition.log_end_offset, initial.current_leader_epoch, last_epoch)
        fetcher = self.fetchers.get(initial.leader_id)
        if fetcher is None:
            fetcher = self.fetchers[initial.leader_id] = ReplicaFetcher(initial.leader_id, self.context)
        fetcher.add_partition(topic_partition, state)
        fetcher.maybe_fetch(now_ms)

    def remove_fetcher_for_partitions(self, topic_partitions: list[TopicPartition]) -> None:
        for fetcher in self.fetchers.values():
            for topic_partition in topic_partitions:
                fetcher.remove_partition(topic_partition)

    def poll(self, now_ms: int) -> None:
        for leader_id in [leader for leader, fetcher in self.fetchers.items() if not fetcher.partitions]:
            if self.fetchers[leader_id].in_flight is None:
                del self.fetchers[leader_id]
        for fetcher in list(self.fetchers.values()):
            fetcher.maybe_fetch(now_ms)

    def next_deadline(self) -> int | None:
        deadlines = [d for d in (f.next_deadline() for f in self.fetchers.values()) if d is not None]
        return min(deadlines, default=None)
