"""Reading partitions: positions, Fetch requests per broker, and records out of batches (sans-IO).

Theory of operation
-------------------
Java's ``Fetcher`` + ``OffsetFetcher`` + ``CompletedFetch``.  Each :meth:`Fetcher.poll` does:

1. **Positions.**  Partitions in AWAIT_RESET get one ListOffsets per leader (timestamp -2
   EARLIEST or -1 LATEST, with the isolation level: under read_committed LATEST is the last
   stable offset).  ``auto.offset.reset=none`` makes such a partition an error
   (:class:`NoOffsetForPartitionError`) raised by the next ``poll``.
   AWAIT_VALIDATION partitions get OffsetForLeaderEpoch (KIP-320): "where did the epoch of my
   last record end on the current leader?"  An end offset below the position means the log was
   truncated under the consumer (an unclean election): it moves to that end offset, or with no
   reset policy raises :class:`LogTruncationError`.
2. **Fetch.**  For every broker with no Fetch in flight: the FETCHING partitions it should serve
   -- the leader, or the ``PreferredReadReplica`` the leader named (KIP-392, kept for
   ``metadata.max.age.ms``) -- that have no records waiting in the buffer.  One request per
   broker, built by its :class:`~reference.client.fetch_session.FetchSession` (KIP-227).
   *Pipelining*: the next Fetch to a broker goes out as soon as the previous answer is in, while
   the application is still working through the buffered records of the last one.
3. **Answers**, per partition (an answer whose fetch offset is no longer the position -- the
   application seeked meanwhile -- is dropped):

   * NONE: the batches are decoded (every codec, CRC checked with ``check.crcs``) into
     :class:`ConsumerRecord` s, skipping records before the fetch offset (a batch may start
     earlier), control batches, and under read_committed the records of aborted transactions
     (``AbortedTransactions`` lists the producer and first offset of each; its ABORT marker ends
     it).  The position after the buffer is drained is the last batch's next offset, so a
     partition ending in a control batch moves past it.
   * OFFSET_OUT_OF_RANGE (1): the reset policy, or with ``none`` an error to the application.
   * NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, FENCED/UNKNOWN_LEADER_EPOCH,
     REPLICA_NOT_AVAILABLE, ... : forget the preferred replica, take a KIP-951 leader hint when
     newer, else refresh metadata; the partition is fetched again once routed.
   * Anything else non-retriable (TOPIC_AUTHORIZATION_FAILED, CORRUPT_MESSAGE): an error raised
     by the next ``poll``.

Invariant: a partition has at most one Fetch in flight and at most one buffered completed fetch,
and records are handed out in offset order, each exactly once per position.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import Errors, KafkaError, lookup
from ..protocol.apis import API_BY_KEY
from ..protocol.schema import Data
from ..records.batch import RecordBatch, iter_batches
from ..records.control import ControlRecordType, decode_control_key
from .cluster import ZERO_UUID, ClusterMetadata, TopicPartition
from .consumer_config import READ_COMMITTED, ConsumerConfig
from .exceptions import error_from_code
from .fetch_session import FetchSession, PartitionRequest, SessionRequest
from .outbox import OutboundRequest, Outbox
from .subscriptions import FetchState, Position, SubscriptionState

log = logging.getLogger("refka.client.consumer")

FETCH_KEY = 1
LIST_OFFSETS_KEY = 2
OFFSET_FOR_LEADER_EPOCH_KEY = 23
FETCH = API_BY_KEY[FETCH_KEY]
LIST_OFFSETS = API_BY_KEY[LIST_OFFSETS_KEY]
OFFSET_FOR_LEADER_EPOCH = API_BY_KEY[OFFSET_FOR_LEADER_EPOCH_KEY]
EARLIEST_TIMESTAMP = -2
LATEST_TIMESTAMP = -1
CONSUMER_REPLICA_ID = -1

# Errors after which the partition should be routed again (metadata refresh).
REROUTE_ERRORS = frozenset({
    Errors.NOT_LEADER_OR_FOLLOWER, Errors.UNKNOWN_TOPIC_OR_PARTITION, Errors.UNKNOWN_TOPIC_ID,
    Errors.FENCED_LEADER_EPOCH, Errors.UNKNOWN_LEADER_EPOCH, Errors.REPLICA_NOT_AVAILABLE,
    Errors.KAFKA_STORAGE_ERROR, Errors.OFFSET_NOT_AVAILABLE, Errors.LEADER_NOT_AVAILABLE,
    Errors.INCONSISTENT_TOPIC_ID,
})


class NoOffsetForPartitionError(KafkaError):
    """No committed offset and ``auto.offset.reset=none`` (Java's NoOffsetForPartitionException);
    also raised for an out-of-range position under ``none``."""

    def __init__(self, tp: TopicPartition, why: str = "no committed offset") -> None:
        super().__init__(Errors.OFFSET_OUT_OF_RANGE, f"{tp}: {why} and auto.offset.reset is none")
        self.partition = tp


class LogTruncationError(KafkaError):
    """KIP-320: the log was truncated below the position and no reset policy is set."""

    def __init__(self, tp: TopicPartition, position: int, end_offset: int) -> None:
        super().__init__(Errors.OFFSET_OUT_OF_RANGE,
                         f"{tp}: truncation detected at offset {position}, the log diverges at {end_offset}")
        self.partition = tp


@dataclass(frozen=True)
class ConsumerRecord:
    topic: str
    partition: int
    offset: int
    timestamp: int
    timestamp_type: int  # 0 CreateTime, 1 LogAppendTime
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    leader_epoch: int


@dataclass
class CompletedFetch:
    """Records from one partition's answer, waiting to be handed to the application."""

    tp: TopicPartition
    fetch_offset: int
    records: deque[ConsumerRecord]
    next_fetch_offset: int  # the offset after the last batch returned
    last_epoch: int


@dataclass
class _InFlightFetch:
    node: int
    request: SessionRequest
    fetch_offsets: dict[TopicPartition, int] = field(default_factory=dict)


def decode_records(tp: TopicPartition, data: bytes | None, fetch_offset: int, read_committed: bool,
                   aborted: list[Data], check_crcs: bool) -> tuple[list[ConsumerRecord], int, int]:
    """The records at or after ``fetch_offset``; the next fetch offset; the last batch's epoch."""
    records: list[ConsumerRecord] = []
    next_offset, last_epoch = fetch_offset, -1
    if not data:
        return records, next_offset, last_epoch
    # read_committed: aborted transactions by first offset; a producer is "aborting" from its
    # first offset until its ABORT marker (Java's CompletedFetch.abortedProducerIds).
    pending_aborts = sorted((a.first_offset, a.producer_id) for a in aborted) if read_committed else []
    aborting: set[int] = set()
    for position, _header in iter_batches(data, allow_partial_tail=True):
        batch = RecordBatch.decode(data, position, verify_crc=check_crcs)
        while pending_aborts and pending_aborts[0][0] <= batch.last_offset:
            aborting.add(pending_aborts.pop(0)[1])
        next_offset = max(next_offset, batch.last_offset + 1)
        last_epoch = batch.partition_leader_epoch
        if batch.is_control:
            if read_committed and batch.records and decode_control_key(batch.records[0].key) is ControlRecordType.ABORT:
                aborting.discard(batch.producer_id)
            continue
        if read_committed and batch.is_transactional and batch.producer_id in aborting:
            continue
        for record in batch.records:
            offset = batch.record_offset(record)
            if offset < fetch_offset:
                continue
            records.append(ConsumerRecord(
                tp.topic, tp.partition, offset, batch.record_timestamp(record), int(batch.timestamp_type),
                record.key, record.value, tuple((h.key, h.value) for h in record.headers),
                batch.partition_leader_epoch))
    return records, next_offset, last_epoch


class Fetcher:
    def __init__(self, config: ConsumerConfig, metadata: ClusterMetadata, subscriptions: SubscriptionState,
                 outbox: Outbox, on_error: Callable[[Exception], None]) -> None:
        self.config = config
        self.metadata = metadata
        self.subscriptions = subscriptions
        self.outbox = outbox
        self.on_error = on_error  # an error for the application's next poll
        self.sessions: dict[int, FetchSession] = {}
        self.in_flight: dict[int, _InFlightFetch] = {}
        self.buffer: dict[TopicPartition, CompletedFetch] = {}
        self.on_records: Callable[[], None] = lambda: None  # the shell wakes a waiting poll

    # -- one round -----------------------------------------------------------------------------------

    def poll(self, now_ms: int) -> None:
        self._reset_positions(now_ms)
        self._validate_positions(now_ms)
        self._send_fetches(now_ms)

    def next_wakeup_ms(self, now_ms: int) -> int | None:
        times = [s.retry_at_ms for s in self.subscriptions.assignment.values()
                 if s.state in (FetchState.AWAIT_RESET, FetchState.AWAIT_VALIDATION) and not s.request_in_flight]
        return min((t for t in times if t > now_ms), default=None)

    # -- positions ----------------------------------------------------------------------------------

    def _leader_epoch(self, tp: TopicPartition) -> int:
        info = self.metadata.topics.get(tp.topic)
        partition = None if info is None else info.partitions.get(tp.partition)
        return -1 if partition is None else partition.leader_epoch

    def need_reset(self, tp: TopicPartition, why: str) -> None:
        state = self.subscriptions.state(tp)
        policy = state.reset_policy or self.config.auto_offset_reset
        if policy == "none":
            self.on_error(NoOffsetForPartitionError(tp, why))
            state.move_to(FetchState.AWAIT_RESET)
            state.retry_at_ms = 2**62  # stays until the application seeks
            return
        state.move_to(FetchState.AWAIT_RESET)
        state.reset_policy = policy
        state.retry_at_ms = 0

    def _reset_positions(self, now_ms: int) -> None:
        per_node: dict[int, list[TopicPartition]] = {}
        for tp, state in self.subscriptions.assignment.items():
            if state.state is not FetchState.AWAIT_RESET or state.request_in_flight or now_ms < state.retry_at_ms:
                continue
            leader = self.metadata.leader(tp)
            if leader is None:
                self.metadata.add_topics([tp.topic])
                self.metadata.request_update()
                continue
            per_node.setdefault(leader, []).append(tp)
        for node, partitions in per_node.items():
            self._send_list_offsets(node, partitions)

    def _send_list_offsets(self, node: int, partitions: list[TopicPartition]) -> None:
        topic_struct = LIST_OFFSETS.request.struct("ListOffsetsTopic")
        partition_struct = LIST_OFFSETS.request.struct("ListOffsetsPartition")
        timestamps: dict[TopicPartition, int] = {}
        by_topic: dict[str, list[Data]] = {}
        for tp in partitions:
            state = self.subscriptions.state(tp)
            state.request_in_flight = True
            timestamps[tp] = EARLIEST_TIMESTAMP if state.reset_policy == "earliest" else LATEST_TIMESTAMP
            by_topic.setdefault(tp.topic, []).append(partition_struct.make(
                partition_index=tp.partition, current_leader_epoch=self._leader_epoch(tp),
                timestamp=timestamps[tp]))
        body = LIST_OFFSETS.request.make(
            replica_id=CONSUMER_REPLICA_ID, isolation_level=self.config.isolation_level,
            topics=[topic_struct.make(name=t, partitions=ps) for t, ps in by_topic.items()],
            timeout_ms=self.config.request_timeout_ms)

        def on_response(response: Data, now_ms: int) -> None:
            answered = set()
            for topic in response.topics:
                for answer in topic.partitions:
                    tp = TopicPartition(topic.name, answer.partition_index)
                    answered.add(tp)
                    self._on_list_offset(tp, timestamps.get(tp), answer, now_ms)
            for tp in set(timestamps) - answered:
                self._retry_position(tp, now_ms)

        def on_failure(error: Exception, now_ms: int) -> None:
            for tp in timestamps:
                self._retry_position(tp, now_ms)

        self.outbox.send(OutboundRequest(node, LIST_OFFSETS_KEY, body, on_response, on_failure,
                                         timeout_ms=self.config.request_timeout_ms))

    def _on_list_offset(self, tp: TopicPartition, timestamp: int | None, answer: Data, now_ms: int) -> None:
        state = self.subscriptions.assignment.get(tp)
        if state is None or timestamp is None or state.state is not FetchState.AWAIT_RESET:
            return  # unassigned or seeked meanwhile
        state.request_in_flight = False
        error = lookup(answer.error_code)
        if error is not Errors.NONE:
            if not error.retriable and error not in REROUTE_ERRORS:
                self.on_error(KafkaError(error, f"ListOffsets for {tp}"))
            self._retry_position(tp, now_ms)
            return
        state.seek(Position(answer.offset, answer.get("leader_epoch", -1), self._leader_epoch(tp)))
        state.reset_policy = None
        log.info("reset the position of %s to %d", tp, answer.offset)

    def _retry_position(self, tp: TopicPartition, now_ms: int) -> None:
        state = self.subscriptions.assignment.get(tp)
        if state is None:
            return
        state.request_in_flight = False
        state.retry_at_ms = now_ms + self.config.retry_backoff_ms
        self.metadata.request_update()

    def check_leader_changes(self) -> None:
        """After a metadata update: positions taken under an older leader epoch are validated."""
        for tp, state in self.subscriptions.assignment.items():
            if state.state is not FetchState.FETCHING or state.position is None:
                continue
            epoch = self._leader_epoch(tp)
            if epoch > state.position.leader_epoch >= 0 and state.position.offset_epoch >= 0:
                state.move_to(FetchState.AWAIT_VALIDATION)
                state.retry_at_ms = 0
            elif epoch > state.position.leader_epoch:
                state.position = Position(state.position.offset, state.position.offset_epoch, epoch)

    def _validate_positions(self, now_ms: int) -> None:
        for tp, state in self.subscriptions.assignment.items():
            if state.state is not FetchState.AWAIT_VALIDATION or state.request_in_flight or now_ms < state.retry_at_ms:
                continue
            leader = self.metadata.leader(tp)
            if leader is None or state.position is None:
                self.metadata.request_update()
                continue
            self._send_offset_for_leader_epoch(leader, tp, state.position)

    def _send_offset_for_leader_epoch(self, node: int, tp: TopicPartition, position: Position) -> None:
        state = self.subscriptions.state(tp)
        state.request_in_flight = True
        current_epoch = self._leader_epoch(tp)
        request = OFFSET_FOR_LEADER_EPOCH.request
        body = request.make(replica_id=CONSUMER_REPLICA_ID, topics=[request.struct("OffsetForLeaderTopic").make(
            topic=tp.topic, partitions=[request.struct("OffsetForLeaderPartition").make(
                partition=tp.partition, current_leader_epoch=current_epoch, leader_epoch=position.offset_epoch)])])

        def on_response(response: Data, now_ms: int) -> None:
            answers = [p for t in response.topics if t.topic == tp.topic for p in t.partitions
                       if p.partition == tp.partition]
            live = self.subscriptions.assignment.get(tp)
            if live is None or live.state is not FetchState.AWAIT_VALIDATION or live.position != position:
                return
            live.request_in_flight = False
            error = lookup(answers[0].error_code) if answers else Errors.UNKNOWN_SERVER_ERROR
            if error is not Errors.NONE:
                self._retry_position(tp, now_ms)
                return
            end_offset = answers[0].end_offset
            if 0 <= end_offset < position.offset:
                if (live.reset_policy or self.config.auto_offset_reset) == "none":
                    self.on_error(LogTruncationError(tp, position.offset, end_offset))
                    live.retry_at_ms = 2**62
                    return
                log.warning("truncation detected for %s at offset %d; moving to %d", tp, position.offset, end_offset)
                live.seek(Position(end_offset, answers[0].leader_epoch, current_epoch))
                return
            live.seek(Position(position.offset, position.offset_epoch, current_epoch))

        def on_failure(error: Exception, now_ms: int) -> None:
            self._retry_position(tp, now_ms)

        self.outbox.send(OutboundRequest(node, OFFSET_FOR_LEADER_EPOCH_KEY, body, on_response, on_failure,
                                         timeout_ms=self.config.request_timeout_ms))

    # -- fetching ------------------------------------------------------------------------------------

    def _fetch_node(self, tp: TopicPartition, now_ms: int) -> int | None:
        state = self.subscriptions.state(tp)
        if state.preferred_read_replica is not None:
            if now_ms < state.preferred_read_replica_expires_ms and state.preferred_read_replica in self.metadata.brokers:
                return state.preferred_read_replica
            state.preferred_read_replica = None
        return self.metadata.leader(tp)

    def _send_fetches(self, now_ms: int) -> None:
        wanted: dict[int, dict[TopicPartition, PartitionRequest]] = {}
        for tp, state in self.subscriptions.assignment.items():
            if not state.fetchable or tp in self.buffer or state.position is None:
                continue
            node = self._fetch_node(tp, now_ms)
            if node is None:
                self.metadata.add_topics([tp.topic])
                self.metadata.request_update()
                continue
            if node in self.in_flight:
                continue
            wanted.setdefault(node, {})[tp] = PartitionRequest(
                state.position.offset, self._leader_epoch(tp), self.config.max_partition_fetch_bytes)
        for node, partitions in wanted.items():
            self._send_fetch(node, partitions)

    def _send_fetch(self, node: int, partitions: dict[TopicPartition, PartitionRequest]) -> None:
        session = self.sessions.setdefault(node, FetchSession(node))
        request = session.build(partitions)
        topic_struct = FETCH.request.struct("FetchTopic")
        partition_struct = FETCH.request.struct("FetchPartition")
        forgotten_struct = FETCH.request.struct("ForgottenTopic")
        by_topic: dict[str, list[Data]] = {}
        for tp, data in request.to_send.items():
            by_topic.setdefault(tp.topic, []).append(partition_struct.make(
                partition=tp.partition, current_leader_epoch=data.current_leader_epoch,
                fetch_offset=data.fetch_offset, partition_max_bytes=data.max_bytes))
        forgotten: dict[str, list[int]] = {}
        for tp in request.to_forget:
            forgotten.setdefault(tp.topic, []).append(tp.partition)
        body = FETCH.request.make(
            replica_id=CONSUMER_REPLICA_ID, max_wait_ms=self.config.fetch_max_wait_ms,
            min_bytes=self.config.fetch_min_bytes, max_bytes=self.config.fetch_max_bytes,
            isolation_level=self.config.isolation_level, session_id=request.session_id,
            session_epoch=request.epoch, rack_id=self.config.client_rack,
            topics=[topic_struct.make(topic=t, topic_id=self.metadata.topic_id(t), partitions=ps)
                    for t, ps in by_topic.items()],
            forgotten_topics_data=[forgotten_struct.make(topic=t, topic_id=self.metadata.topic_id(t), partitions=ps)
                                   for t, ps in forgotten.items()])
        in_flight = self.in_flight[node] = _InFlightFetch(
            node, request, {tp: data.fetch_offset for tp, data in partitions.items()})
        version = None
        if any(self.metadata.topic_id(tp.topic) == ZERO_UUID for tp in partitions):
            version = 12  # the last version naming topics; a cluster without topic ids serves it
        self.outbox.send(OutboundRequest(
            node, FETCH_KEY, body, lambda response, now_ms: self._on_fetch(in_flight, response, now_ms),
            lambda error, now_ms: self._on_fetch_failure(in_flight, error, now_ms),
            version=version, timeout_ms=self.config.request_timeout_ms + self.config.fetch_max_wait_ms))

    def _on_fetch_failure(self, fetch: _InFlightFetch, error: Exception, now_ms: int) -> None:
        self.in_flight.pop(fetch.node, None)
        self.sessions[fetch.node].handle_error()
        log.info("fetch from node %d failed: %s", fetch.node, error)
        self.metadata.request_update()

    def _on_fetch(self, fetch: _InFlightFetch, response: Data, now_ms: int) -> None:
        self.in_flight.pop(fetch.node, None)
        names = {self.metadata.topic_id(t): t for t in {tp.topic for tp in fetch.fetch_offsets}}
        answers: dict[TopicPartition, Data] = {}
        for topic in response.responses:
            name = topic.get("topic") or names.get(topic.get("topic_id"), "")
            for partition in topic.partitions:
                answers[TopicPartition(name, partition.partition_index)] = partition
        session = self.sessions[fetch.node]
        if not session.handle_response(fetch.request, response.get("error_code", 0),
                                       response.get("session_id", 0), set(answers)):
            log.info("fetch session with node %d restarts: %s", fetch.node, lookup(response.get("error_code", 0)))
            return
        for tp, answer in answers.items():
            fetch_offset = fetch.fetch_offsets.get(tp)
            if fetch_offset is None:  # an unchanged partition of an incremental session
                state = self.subscriptions.assignment.get(tp)
                fetch_offset = None if state is None or state.position is None else state.position.offset
            if fetch_offset is not None:
                self._on_partition(tp, fetch_offset, answer, response, now_ms)

    def _on_partition(self, tp: TopicPartition, fetch_offset: int, answer: Data, response: Data, now_ms: int) -> None:
        state = self.subscriptions.assignment.get(tp)
        if state is None or not state.fetchable or state.position is None or state.position.offset != fetch_offset:
            return  # unassigned, paused or seeked since the request: the data is stale
        error = lookup(answer.error_code)
        if error is Errors.NONE:
            state.high_watermark = answer.high_watermark
            state.last_stable_offset = answer.get("last_stable_offset", -1)
            state.log_start_offset = answer.get("log_start_offset", -1)
            replica = answer.get("preferred_read_replica", -1)
            if replica is not None and replica >= 0:
                state.preferred_read_replica = replica
                state.preferred_read_replica_expires_ms = now_ms + self.config.metadata_max_age_ms
            try:
                records, next_offset, last_epoch = decode_records(
                    tp, answer.records, fetch_offset, self.config.isolation_level == READ_COMMITTED,
                    answer.get("aborted_transactions") or [], self.config.check_crcs)
            except Exception as decode_error:  # a corrupt batch: Kafka's consumer raises KafkaException
                self.on_error(KafkaError(Errors.CORRUPT_MESSAGE, f"{tp} at offset {fetch_offset}: {decode_error}"))
                return
            if records or next_offset > fetch_offset:
                self.buffer[tp] = CompletedFetch(tp, fetch_offset, deque(records), next_offset, last_epoch)
                self.on_records()
            return
        if error is Errors.OFFSET_OUT_OF_RANGE:
            log.info("fetch offset %d of %s is out of range; resetting", fetch_offset, tp)
            self.need_reset(tp, f"offset {fetch_offset} is out of range")
            return
        if error in REROUTE_ERRORS:
            state.preferred_read_replica = None
            leader = answer.get("current_leader")
            if leader is None or not self.metadata.apply_leader_hint(
                    tp, leader.leader_id, leader.leader_epoch, response.get("node_endpoints") or ()):
                self.metadata.request_update()
            return
        exception = error_from_code(answer.error_code)
        if exception is not None and not error.retriable:
            self.on_error(exception)

    # -- handing records out -------------------------------------------------------------------------

    def take_records(self, max_records: int) -> list[ConsumerRecord]:
        """Up to ``max_records`` records, advancing positions (Java: records returned by poll)."""
        taken: list[ConsumerRecord] = []
        for tp in list(self.buffer):
            if len(taken) >= max_records:
                break
            completed = self.buffer[tp]
            state = self.subscriptions.assignment.get(tp)
            if state is None or state.position is None or state.position.offset != completed.fetch_offset:
                del self.buffer[tp]  # unassigned or seeked since the answer came: stale
                continue
            if state.paused or state.pending_revocation:
                continue
            while completed.records and len(taken) < max_records:
                record = completed.records.popleft()
                if record.offset < state.position.offset:
                    continue
                taken.append(record)
                state.position = Position(record.offset + 1, record.leader_epoch, state.position.leader_epoch)
            completed.fetch_offset = state.position.offset
            if not completed.records:
                if completed.next_fetch_offset > state.position.offset:
                    state.position = Position(completed.next_fetch_offset, completed.last_epoch,
                                              state.position.leader_epoch)
                del self.buffer[tp]
        return taken

    def drop_buffered(self, tp: TopicPartition) -> None:
        self.buffer.pop(tp, None)
