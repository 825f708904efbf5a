"""Simulated clients: producers, an admin and a final reader that speak Kafka to the nodes.

Theory of operation
-------------------
The clients are the witnesses of a run, as in the docker harness (:mod:`chaos.history`): what
they were told is the history the checker (:mod:`chaos.checker`) judges.  They are sans-IO like
the cores: each puts :class:`~reference.client.outbox.OutboundRequest` s in its own outbox, the
simulator encodes them as real request frames to a node's broker listener, and answers come back
through the request's callbacks.  ``poll(now_ms)`` is called on every tick.

* :class:`SimProducer` -- Kafka's producer reduced to its delivery rules: metadata from any node
  (Metadata v12), then each record as a one-record batch (Produce v9) to the partition's leader,
  one batch in flight per partition, retried until acknowledged (``retries`` unbounded, no
  delivery timeout).  With ``idempotent`` it first asks for a producer id (InitProducerId v4) and
  numbers each partition's batches from 0 (KIP-98); a retry reuses the sequence.  An answer that
  says the broker lost the producer's state (OUT_OF_ORDER_SEQUENCE_NUMBER, UNKNOWN_PRODUCER_ID,
  INVALID_PRODUCER_EPOCH) makes it take a new producer id and restart every sequence at 0, and it
  records the ``epoch-bump`` the checker knows (KIP-360's bump, as librdkafka does it).  Every
  other error, a timeout or a reset refreshes the metadata and retries after ``RETRY_BACKOFF_MS``.
* :class:`SimAdmin` creates the run's topics (CreateTopics v7) and retries until they exist.
* :class:`FinalReader` -- after the liveness phase, a fresh consumer reads every partition from
  offset 0 to the high watermark its fetches report (Fetch v12, ``read_uncommitted``), records each
  fetch as a ``poll`` and ends with a ``final-read`` per topic that says whether it was complete.

Invariants: a value is sent under one key at most once by one producer (values are unique), so
the checker can identify records; a producer's history has the invoke before the completion.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chaos.history import FAIL, INFO, OK, Clock, HistoryWriter
from reference.client.outbox import OutboundRequest, Outbox
from reference.errors import Errors, lookup
from reference.protocol.apis import API_BY_KEY
from reference.protocol.schema import Data
from reference.records.batch import SimpleRecord, build_batch, iter_record_batches

PRODUCE, FETCH, METADATA, CREATE_TOPICS, INIT_PRODUCER_ID = (API_BY_KEY[key] for key in (0, 1, 3, 19, 22))
PRODUCE_VERSION, FETCH_VERSION, METADATA_VERSION, CREATE_TOPICS_VERSION, INIT_PRODUCER_ID_VERSION = 9, 12, 12, 7, 4
RETRY_BACKOFF_MS = 100  # Kafka's retry.backoff.ms
REQUEST_TIMEOUT_MS = 10_000  # shorter than Kafka's 30 s request.timeout.ms, to keep runs short
PRODUCE_TIMEOUT_MS = 5_000  # the Produce request's own timeout_ms (how long acks=all may wait)
LOST_PRODUCER_STATE = {Errors.OUT_OF_ORDER_SEQUENCE_NUMBER.code, Errors.UNKNOWN_PRODUCER_ID.code,
                       Errors.INVALID_PRODUCER_EPOCH.code}
NOT_ENOUGH_REPLICAS = {Errors.NOT_ENOUGH_REPLICAS.code, Errors.NOT_ENOUGH_REPLICAS_AFTER_APPEND.code}


class SimClock(Clock):
    """The history's clock is the simulation's: ``time`` in ns, ``wall`` in ms of simulated time."""

    def __init__(self, now_ms: Callable[[], int]) -> None:
        self._now_ms = now_ms

    def now(self) -> int:
        return self._now_ms() * 1_000_000

    def wall(self) -> int:  # type: ignore[override]
        return self._now_ms()


class _Client:
    """Shared by the clients: an outbox, a random node to ask, and a request helper."""

    def __init__(self, name: str, nodes: list[int], rng: random.Random) -> None:
        self.name = name
        self.nodes = nodes
        self.rng = rng
        self.outbox = Outbox()

    def request(self, destination: int, api_key: int, version: int, body: Data,
                on_response: Callable[[Data, int], None], on_failure: Callable[[Exception, int], None],
                timeout_ms: int = REQUEST_TIMEOUT_MS) -> OutboundRequest:
        return self.outbox.send(OutboundRequest(destination, api_key, body, on_response, on_failure,
                                                version=version, timeout_ms=timeout_ms))

    def any_node(self) -> int:
        return self.rng.choice(self.nodes)


class _Metadata:
    """Partition leaders as the last Metadata answer said, refreshed on demand."""

    def __init__(self, client: _Client, topic: str) -> None:
        self.client = client
        self.topic = topic
        self.leaders: dict[int, int] = {}
        self.stale = True
        self.in_flight = False
        self.not_before_ms = 0

    def poll(self, now_ms: int) -> None:
        if not self.stale or self.in_flight or now_ms < self.not_before_ms:
            return
        self.in_flight = True
        body = METADATA.request.make(topics=[METADATA.request.struct("MetadataRequestTopic").make(name=self.topic)],
                                     allow_auto_topic_creation=False)
        self.client.request(self.client.any_node(), METADATA.key, METADATA_VERSION, body, self._on_answer, self._on_failure)

    def _on_answer(self, body: Data, now_ms: int) -> None:
        self.in_flight = False
        leaders = {}
        for topic in body.topics:
            if topic.name == self.topic and topic.error_code == 0:
                leaders = {int(p.partition_index): int(p.leader_id) for p in topic.partitions
                           if p.error_code == 0 and p.leader_id >= 0}
        self.leaders = leaders
        self.stale = not leaders
        self.not_before_ms = now_ms + RETRY_BACKOFF_MS

    def _on_failure(self, error: Exception, now_ms: int) -> None:
        self.in_flight = False
        self.not_before_ms = now_ms + RETRY_BACKOFF_MS

    def invalidate(self) -> None:
        self.stale = True


@dataclass
class _PartitionState:
    queue: deque[str] = field(default_factory=deque)  # values invoked, not yet acknowledged
    in_flight: OutboundRequest | None = None
    sequence: int = 0
    retry_at_ms: int = 0


class SimProducer(_Client):
    """See the module docstring."""

    def __init__(self, name: str, topic: str, partitions: int, nodes: list[int], rng: random.Random,
                 history: HistoryWriter, acks: int = -1, idempotent: bool = True, interval_ms: int = 50) -> None:
        super().__init__(name, nodes, rng)
        self.topic = topic
        self.partitions = partitions
        self.history = history
        self.acks = acks
        self.idempotent = idempotent
        self.interval_ms = interval_ms
        self.metadata = _Metadata(self, topic)
        self.state = {p: _PartitionState() for p in range(partitions)}
        self.producer_id, self.producer_epoch = -1, -1
        self.init_in_flight = False
        self.sending = False
        self.next_send_ms = 0
        self.sent = 0
        self.acknowledged: list[tuple[int, int, str]] = []  # (partition, offset, value)
        self.errors: dict[str, int] = {}

    # -- the workload ------------------------------------------------------------------------------

    def poll(self, now_ms: int) -> None:
        if self.sending and now_ms >= self.next_send_ms:
            self._invoke(now_ms)
        self.metadata.poll(now_ms)
        if self.idempotent and self.producer_id < 0:
            self._init_producer_id()
            return
        for partition, state in self.state.items():
            if state.queue and state.in_flight is None and now_ms >= state.retry_at_ms:
                leader = self.metadata.leaders.get(partition)
                if leader is not None:
                    self._produce(partition, state, leader)
                else:  # the last answer named no leader for it: ask again
                    self.metadata.invalidate()

    @property
    def outstanding(self) -> int:
        return sum(len(state.queue) for state in self.state.values())

    def _invoke(self, now_ms: int) -> None:
        partition = self.sent % self.partitions
        value = f"{self.name}-{self.sent}"
        self.sent += 1
        self.next_send_ms = now_ms + self.interval_ms
        self.history.invoke(self.name, "send", {"topic": self.topic, "key": str(partition), "value": value})
        self.state[partition].queue.append(value)

    def give_up(self) -> None:
        """The run is over: what was never acknowledged may or may not have been written."""
        for partition, state in self.state.items():
            for value in state.queue:
                self.history.record(self.name, INFO, "send", {"topic": self.topic, "key": str(partition), "value": value,
                                                              "error": "not acknowledged when the run ended"})
            state.queue.clear()

    # -- requests ----------------------------------------------------------------------------------

    def _init_producer_id(self) -> None:
        if self.init_in_flight:
            return
        self.init_in_flight = True
        body = INIT_PRODUCER_ID.request.make(transactional_id=None, transaction_timeout_ms=60_000,
                                             producer_id=-1, producer_epoch=-1)

        def answered(response: Data, now_ms: int) -> None:
            self.init_in_flight = False
            if response.error_code == 0:
                self.producer_id, self.producer_epoch = int(response.producer_id), int(response.producer_epoch)

        def failed(error: Exception, now_ms: int) -> None:
            self.init_in_flight = False

        self.request(self.any_node(), INIT_PRODUCER_ID.key, INIT_PRODUCER_ID_VERSION, body, answered, failed)

    def _produce(self, partition: int, state: _PartitionState, leader: int) -> None:
        value = state.queue[0]
        batch = build_batch([SimpleRecord(value=value.encode(), key=str(partition).encode(), timestamp=0)],
                            producer_id=self.producer_id if self.idempotent else -1,
                            producer_epoch=self.producer_epoch if self.idempotent else -1,
                            base_sequence=state.sequence if self.idempotent else -1)
        topic_data = PRODUCE.request.struct("TopicProduceData")
        partition_data = PRODUCE.request.struct("PartitionProduceData")
        body = PRODUCE.request.make(transactional_id=None, acks=self.acks, timeout_ms=PRODUCE_TIMEOUT_MS,
                                    topic_data=[topic_data.make(name=self.topic, partition_data=[
                                        partition_data.make(index=partition, records=batch)])])
        request = self.request(leader, PRODUCE.key, PRODUCE_VERSION, body,
                               lambda response, now_ms: self._on_produce(partition, value, response, now_ms),
                               lambda error, now_ms: self._retry(partition, type(error).__name__, now_ms))
        state.in_flight = request

    def _on_produce(self, partition: int, value: str, response: Data, now_ms: int) -> None:
        state = self.state[partition]
        state.in_flight = None
        answer = response.responses[0].partition_responses[0]
        if answer.error_code == 0 and state.queue and state.queue[0] == value:
            state.queue.popleft()
            state.sequence += 1
            offset = int(answer.base_offset)
            self.acknowledged.append((partition, offset, value))
            self.history.record(self.name, OK, "send", {"topic": self.topic, "key": str(partition), "value": value,
                                                        "partition": partition, "offset": offset})
            return
        error = lookup(answer.error_code).name if answer.error_code else "stale answer"
        if self.idempotent and answer.error_code in LOST_PRODUCER_STATE:
            self._bump_epoch(error)
        self._retry(partition, error, now_ms)

    def _retry(self, partition: int, error: str, now_ms: int) -> None:
        state = self.state[partition]
        state.in_flight = None
        state.retry_at_ms = now_ms + RETRY_BACKOFF_MS
        self.errors[error] = self.errors.get(error, 0) + 1
        self.metadata.invalidate()

    def _bump_epoch(self, reason: str) -> None:
        """The broker no longer knows our sequence: a new producer id, every sequence from 0."""
        self.history.record(self.name, INFO, "epoch-bump", {"producer_id": self.producer_id,
                                                           "epoch": self.producer_epoch, "reason": reason})
        self.producer_id, self.producer_epoch = -1, -1
        for state in self.state.values():
            state.sequence = 0


class SimAdmin(_Client):
    """Creates topics (name -> (partitions, replication factor, configs)) until each exists."""

    def __init__(self, nodes: list[int], rng: random.Random, topics: dict[str, tuple[int, int, dict[str, str]]]) -> None:
        super().__init__("admin", nodes, rng)
        self.wanted = dict(topics)
        self.created: set[str] = set()
        self.in_flight = False
        self.not_before_ms = 0

    @property
    def done(self) -> bool:
        return self.created == set(self.wanted)

    def poll(self, now_ms: int) -> None:
        if self.done or self.in_flight or now_ms < self.not_before_ms:
            return
        topic = CREATE_TOPICS.request.struct("CreatableTopic")
        config = CREATE_TOPICS.request.struct("CreatableTopicConfig")
        body = CREATE_TOPICS.request.make(topics=[
            topic.make(name=name, num_partitions=partitions, replication_factor=factor, assignments=[],
                       configs=[config.make(name=key, value=value) for key, value in configs.items()])
            for name, (partitions, factor, configs) in sorted(self.wanted.items()) if name not in self.created],
            timeout_ms=REQUEST_TIMEOUT_MS, validate_only=False)
        self.in_flight = True
        self.request(self.any_node(), CREATE_TOPICS.key, CREATE_TOPICS_VERSION, body, self._on_answer, self._on_failure)

    def _on_answer(self, body: Data, now_ms: int) -> None:
        self.in_flight = False
        for topic in body.topics:
            if topic.error_code in (0, Errors.TOPIC_ALREADY_EXISTS.code):
                self.created.add(topic.name)
        self.not_before_ms = now_ms + RETRY_BACKOFF_MS

    def _on_failure(self, error: Exception, now_ms: int) -> None:
        self.in_flight = False
        self.not_before_ms = now_ms + RETRY_BACKOFF_MS


class FinalReader(_Client):
    """Reads every partition of ``topics`` (name -> partitions) from 0 to its high watermark."""

    def __init__(self, nodes: list[int], rng: random.Random, history: HistoryWriter, topics: dict[str, int]) -> None:
        super().__init__("final-reader", nodes, rng)
        self.history = history
        self.metadata = {topic: _Metadata(self, topic) for topic in topics}
        self.position = {(topic, p): 0 for topic, count in topics.items() for p in range(count)}
        self.high_watermark: dict[tuple[str, int], int] = {}
        self.finished: set[tuple[str, int]] = set()
        self.in_flight: set[tuple[str, int]] = set()
        self.retry_at: dict[tuple[str, int], int] = {}
        self.reported = False

    @property
    def done(self) -> bool:
        return self.finished == set(self.position)

    def poll(self, now_ms: int) -> None:
        for metadata in self.metadata.values():
            metadata.poll(now_ms)
        for where in sorted(self.position):
            if where in self.finished or where in self.in_flight or now_ms < self.retry_at.get(where, 0):
                continue
            leader = self.metadata[where[0]].leaders.get(where[1])
            if leader is not None:
                self._fetch(where, leader)
            else:
                self.metadata[where[0]].invalidate()
        if self.done and not self.reported:
            self.report(complete=True)

    def report(self, complete: bool) -> None:
        self.reported = True
        for topic in sorted(self.metadata):
            marks = {str(p): hw for (t, p), hw in sorted(self.high_watermark.items()) if t == topic}
            positions = {str(p): offset for (t, p), offset in sorted(self.position.items()) if t == topic}
            self.history.record(self.name, OK, "final-read", {"topic": topic, "high_watermarks": marks,
                                                             "positions": positions, "complete": complete})

    def _fetch(self, where: tuple[str, int], leader: int) -> None:
        topic, partition = where
        body = FETCH.request.make(
            replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0, session_id=0,
            session_epoch=-1, forgotten_topics_data=[], rack_id="",
            topics=[FETCH.request.struct("FetchTopic").make(topic=topic, partitions=[
                FETCH.request.struct("FetchPartition").make(
                    partition=partition, current_leader_epoch=-1, fetch_offset=self.position[where],
                    last_fetched_epoch=-1, log_start_offset=-1, partition_max_bytes=1 << 20)])])
        self.in_flight.add(where)
        self.history.invoke(self.name, "poll", None)
        self.request(leader, FETCH.key, FETCH_VERSION, body,
                     lambda response, now_ms: self._on_fetch(where, response, now_ms),
                     lambda error, now_ms: self._on_failure(where, now_ms))

    def _on_fetch(self, where: tuple[str, int], response: Data, now_ms: int) -> None:
        self.in_flight.discard(where)
        answer = response.responses[0].partitions[0]
        if answer.error_code != 0:
            self.history.record(self.name, FAIL, "poll", {"error": lookup(answer.error_code).name})
            self._on_failure(where, now_ms)
            return
        records: list[dict[str, Any]] = []
        start = self.position[where]
        for batch in iter_record_batches(answer.records or b""):
            for record in batch.records:
                offset = record.offset(batch.base_offset)
                if offset >= start:
                    records.append({"topic": where[0], "partition": where[1], "offset": offset,
                                    "key": None if record.key is None else record.key.decode(),
                                    "value": "" if record.value is None else record.value.decode()})
                    self.position[where] = offset + 1
        self.history.record(self.name, OK, "poll", {"records": records})
        self.high_watermark[where] = int(answer.high_watermark)
        if self.position[where] >= answer.high_watermark:
            self.finished.add(where)

    def _on_failure(self, where: tuple[str, int], now_ms: int) -> None:
        self.in_flight.discard(where)
        self.retry_at[where] = now_ms + RETRY_BACKOFF_MS
        self.metadata[where[0]].invalidate()
