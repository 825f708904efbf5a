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
  retried until acknowledged (``retries`` unbounded, no delivery timeout).  A plain producer keeps
  one batch in flight per partition.  An idempotent one (KIP-98, as the Java producer with
  ``enable.idempotence``) first asks for a producer id (InitProducerId v4), then keeps up to
  ``max_in_flight`` batches in flight per partition (``max.in.flight.requests.per.connection``; at
  most ``MAX_IN_FLIGHT`` = 5, the batches the broker remembers per producer; the run's producer
  uses 5) numbered with consecutive sequences from 0.  A retry -- after an error, a reset or a
  request timeout -- sends the batch again with its original epoch and sequence, so a copy the
  broker already holds reaches it whenever an answer was lost.  As the Java producer drains a
  partition, a retry goes only for the oldest unacknowledged batch and alone, so it never
  overtakes an earlier batch; and the first batch of an epoch goes alone too, because a leader
  that knows nothing of the producer accepts any sequence (a later batch overtaking a refused
  first one would be written ahead of it: Kafka allows that, no broker guard prevents it).
  Answers can come back out of order (an acks=all answer waits for replication), so a batch
  acknowledged before an earlier one waits for it: the application hears of its sends in order.

  Broken connections (:class:`BrokenConnections`, drawn per seed): a Produce attempt gets no
  answer, the producer retries after its request timeout, and the request itself is lost or,
  having been read by the broker, handled up to ``max_delay_ms`` later (a *zombie request*).

  The epoch (KIP-360).  ``OUT_OF_ORDER_SEQUENCE_NUMBER`` or ``UNKNOWN_PRODUCER_ID`` on the
  partition's *oldest* unacknowledged batch means the broker has a gap or lost the producer's
  state: once nothing is in flight the producer bumps its own epoch (the same producer id) and
  numbers every unacknowledged batch again from sequence 0, recording the ``epoch-bump`` the
  checker knows.  The same error on a later batch only means an earlier one has not arrived yet:
  that batch is retried.  :meth:`SimProducer.replaced` models a *new instance* of the producer
  (the application restarted under the same identity, as a ``transactional.id`` gives one): the
  new instance continues with the same producer id and the next epoch, and the old one becomes a
  zombie that keeps retrying the batches it had numbered until a broker answers
  ``INVALID_PRODUCER_EPOCH`` (it is fenced, and stops).  So batches of an old epoch reach the
  broker after the new epoch wrote, which is what epoch fencing is for.
* :class:`SimAdmin` creates the run's topics (CreateTopics v7) and retries until they exist.
* :class:`FinalReader` -- after the liveness phase, a fresh consumer reads every partition from
  offset 0 to the high watermark its fetches report (Fetch v12, ``read_uncommitted``), records each
  fetch as a ``poll`` and ends with a ``final-read`` per topic that says whether it was complete.

Invariants: a value is sent under one key at most once by one producer (values are unique), so
the checker can identify records; a producer's history has the invoke before the completion; a
producer instance numbers a partition's batches in send order, never reuses an (epoch, sequence)
for another record, and completes each send once, in send order.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

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
PRODUCE_TIMEOUT_MS = 2_500  # the Produce request's own timeout_ms (how long acks=all may wait)
PRODUCE_REQUEST_TIMEOUT_MS = 3_000  # the client's wait for a Produce answer (Kafka: request.timeout.ms)
LOST_PRODUCER_STATE = {Errors.OUT_OF_ORDER_SEQUENCE_NUMBER.code, Errors.UNKNOWN_PRODUCER_ID.code,
                       Errors.INVALID_PRODUCER_EPOCH.code}
NOT_WRITTEN = LOST_PRODUCER_STATE | {Errors.NOT_ENOUGH_REPLICAS.code, Errors.CORRUPT_MESSAGE.code}


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


MAX_IN_FLIGHT = 5  # max.in.flight.requests.per.connection with idempotence: the broker caches 5 batches


@dataclass(frozen=True)
class BrokenConnections:
    """How often the producer's connection breaks under a Produce request (drawn per seed).

    The broken attempt gets no answer: the producer learns of it by its request timeout and
    retries.  The request itself was written to the socket: with probability ``read_first`` the
    broker had read it and handles it later -- up to ``max_delay_ms`` later, after requests of
    the new connection (Kafka's request queue is shared by every connection and served by several
    handler threads: the *zombie requests* of ``spec/idempotence.py``) -- and its answer is lost;
    otherwise it is lost."""

    rate: float = 0.0  # per Produce attempt
    read_first: float = 0.5
    max_delay_ms: int = 0


class Acknowledgement(NamedTuple):
    """One acknowledged send, as the invariants read it (the first four fields name the record)."""

    topic: str
    partition: int
    offset: int
    value: str
    producer: str = ""  # the producer instance (its history process)
    producer_epoch: int = -1
    sequence: int = -1


@dataclass
class _Batch:
    """One send (a one-record batch): its place in send order and its current attempt."""

    value: str
    epoch: int = -1  # the producer epoch and sequence it carries; -1: not numbered yet
    sequence: int = -1
    attempt: OutboundRequest | None = None  # the request in flight, if any
    attempts: int = 0  # requests sent so far (in this epoch)
    retry_at_ms: int = 0
    offset: int | None = None  # acknowledged here, completed once every earlier send is
    outcome_unknown: bool = False  # an attempt ended without an answer: it may have been written


@dataclass
class _PartitionState:
    batches: deque[_Batch] = field(default_factory=deque)  # invoked, not completed, in send order
    next_sequence: int = 0
    needs_bump: bool = False  # its oldest unacknowledged batch was refused with a lost-state error


class SimProducer(_Client):
    """See the module docstring."""

    def __init__(self, name: str, topic: str, partitions: int, nodes: list[int], rng: random.Random,
                 history: HistoryWriter, acks: int = -1, idempotent: bool = True, interval_ms: int = 50,
                 acknowledged: list[Acknowledgement] | None = None, ambiguous: set[str] | None = None,
                 producer_id: int = -1, producer_epoch: int = -1,
                 broken_connections: BrokenConnections | None = None, max_in_flight: int = 1) -> None:
        super().__init__(name, nodes, rng)
        self.topic = topic
        self.partitions = partitions
        self.history = history
        self.acks = acks
        self.idempotent = idempotent
        # max.in.flight.requests.per.connection: more than one needs idempotence to keep order,
        # and at most MAX_IN_FLIGHT (the simulation's idempotent producer uses that many).
        self.window = min(max_in_flight, MAX_IN_FLIGHT) if idempotent else 1
        self.interval_ms = interval_ms
        self.metadata = _Metadata(self, topic)
        self.state = {p: _PartitionState() for p in range(partitions)}
        self.producer_id, self.producer_epoch = producer_id, producer_epoch
        self.init_in_flight = False
        self.sending = False
        self.superseded = False  # a newer instance took over: it retries what it numbered, nothing new
        self.fenced = False  # told its epoch is fenced (or it would have to bump as a zombie): stopped
        self.next_send_ms = 0
        self.sent = 0
        # every acknowledgement as it arrives (may be shared by instances); the history has them in send order
        self.acknowledged = acknowledged if acknowledged is not None else []
        self.ambiguous = ambiguous if ambiguous is not None else set()  # values a bump may write twice
        self.errors: dict[str, int] = {}
        self.situations: Counter[str] = Counter()  # coverage: duplicate-batch-answered, ...
        self.broken_connections = broken_connections or BrokenConnections()
        self._unanswered: list[tuple[int, OutboundRequest]] = []  # broken attempts: (times out at, attempt)
        self._read_late: list[tuple[int, OutboundRequest]] = []  # (handled at, request): zombie requests

    # -- the workload ------------------------------------------------------------------------------

    def poll(self, now_ms: int) -> None:
        self._broken_connection_events(now_ms)
        if self.fenced:
            return
        if self.sending and not self.superseded and now_ms >= self.next_send_ms:
            self._invoke(now_ms)
        self.metadata.poll(now_ms)
        if self.idempotent and self.producer_id < 0:
            self._init_producer_id()
            return
        if any(state.needs_bump for state in self.state.values()):
            if self.superseded:  # its epoch belongs to its successor now: it may not bump into it
                self._fenced("a zombie may not bump its epoch")
            else:
                self._maybe_bump_epoch()  # sends nothing until the bump
            return
        for partition, state in self.state.items():
            self._send_ready(partition, state, now_ms)

    def _broken_connection_events(self, now_ms: int) -> None:
        """Broken attempts whose request timeout passed fail; zombie requests due reach the broker."""
        while self._unanswered and self._unanswered[0][0] <= now_ms:
            _, attempt = self._unanswered.pop(0)
            attempt.fail(TimeoutError("no answer: the connection broke"), now_ms)
        due = [request for at_ms, request in self._read_late if at_ms <= now_ms]
        if due:
            self._read_late = [(at_ms, request) for at_ms, request in self._read_late if at_ms > now_ms]
            for request in due:
                self.situations["zombie-request"] += 1
                self.outbox.send(request)

    def _send_ready(self, partition: int, state: _PartitionState, now_ms: int) -> None:
        """Send the partition's batches that may go now, in send order, as the Java producer drains
        them: up to ``window`` in flight; a retry only for the oldest unacknowledged batch and alone
        (Java stops draining a partition behind a retried batch: "effectively reduces our in flight
        request count to 1"), so a retry never overtakes an earlier batch; and the first batch of an
        epoch alone too, because a leader that knows no state for the producer accepts any
        sequence (rule 5 of ``producer_state``): a second batch overtaking a refused first one
        would be written ahead of it, a reordering Kafka allows and no guard of the broker prevents."""
        oldest = self._oldest_unacknowledged(state)
        for batch in itertools.islice(state.batches, self.window):
            if batch.offset is not None:
                continue
            if batch.attempt is not None:
                if batch.sequence == 0:
                    return
                continue
            if now_ms < batch.retry_at_ms or (batch.attempts and batch is not oldest):
                return
            leader = self.metadata.leaders.get(partition)
            if leader is None:  # the last answer named no leader for it: ask again
                self.metadata.invalidate()
                return
            if batch.sequence < 0 and self.idempotent:
                if self.superseded:
                    return  # a replaced instance numbers no new batch
                batch.epoch, batch.sequence = self.producer_epoch, state.next_sequence
                state.next_sequence += 1
            self._produce(partition, batch, leader, now_ms)
            if batch.attempts > 1 or batch.sequence == 0:
                return

    @property
    def outstanding(self) -> int:
        return 0 if self.superseded or self.fenced else sum(len(state.batches) for state in self.state.values())

    def _invoke(self, now_ms: int) -> None:
        partition = self.sent % self.partitions
        value = f"{self.name}-{self.sent}"
        self.sent += 1
        self.next_send_ms = now_ms + self.interval_ms
        self.history.invoke(self.name, "send", {"topic": self.topic, "key": str(partition), "value": value})
        self.state[partition].batches.append(_Batch(value))

    def give_up(self, reason: str = "not acknowledged when the run ended") -> None:
        """What was never acknowledged may or may not have been written."""
        for partition, state in self.state.items():
            for batch in state.batches:
                self.history.record(self.name, INFO, "send", {"topic": self.topic, "key": str(partition),
                                                              "value": batch.value, "error": reason})
            state.batches.clear()

    def replaced(self) -> None:
        """A newer instance of this producer took over (with the next epoch): from now on this one is
        a zombie that only retries the batches it already numbered, until it is fenced."""
        self.superseded = True
        self.sending = False
        for partition, state in self.state.items():
            while state.batches and state.batches[-1].sequence < 0:
                batch = state.batches.pop()  # never sent: the application's send fails before it leaves
                self.history.record(self.name, FAIL, "send", {"topic": self.topic, "key": str(partition),
                                                              "value": batch.value, "error": "producer closed"})

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

    def _produce(self, partition: int, batch: _Batch, leader: int, now_ms: int) -> None:
        records = build_batch([SimpleRecord(value=batch.value.encode(), key=str(partition).encode(), timestamp=0)],
                              producer_id=self.producer_id if self.idempotent else -1,
                              producer_epoch=batch.epoch if self.idempotent else -1,
                              base_sequence=batch.sequence if self.idempotent else -1)
        topic_data = PRODUCE.request.struct("TopicProduceData")
        partition_data = PRODUCE.request.struct("PartitionProduceData")
        body = PRODUCE.request.make(transactional_id=None, acks=self.acks, timeout_ms=PRODUCE_TIMEOUT_MS,
                                    topic_data=[topic_data.make(name=self.topic, partition_data=[
                                        partition_data.make(index=partition, records=records)])])
        attempt: OutboundRequest | None = None

        def answered(response: Data, now_ms: int) -> None:
            if batch.attempt is attempt:
                self._on_produce(partition, batch, response.responses[0].partition_responses[0], now_ms)

        def failed(error: Exception, now_ms: int) -> None:
            if batch.attempt is attempt:
                batch.outcome_unknown = True
                self._retry(partition, batch, type(error).__name__, now_ms)

        attempt = OutboundRequest(leader, PRODUCE.key, body, answered, failed, version=PRODUCE_VERSION,
                                  timeout_ms=PRODUCE_REQUEST_TIMEOUT_MS)
        broken = self.broken_connections
        if broken.rate and self.rng.random() < broken.rate:
            self._unanswered.append((now_ms + PRODUCE_REQUEST_TIMEOUT_MS, attempt))
            if self.rng.random() < broken.read_first:
                late = OutboundRequest(leader, PRODUCE.key, body, _ignore_answer, _ignore_failure,
                                       version=PRODUCE_VERSION, timeout_ms=PRODUCE_REQUEST_TIMEOUT_MS)
                self._read_late.append((now_ms + self.rng.randint(0, broken.max_delay_ms), late))
        else:
            self.outbox.send(attempt)
        batch.attempt = attempt
        batch.attempts += 1

    def _on_produce(self, partition: int, batch: _Batch, answer: Data, now_ms: int) -> None:
        state = self.state[partition]
        batch.attempt = None
        if answer.error_code == 0:
            batch.offset = int(answer.base_offset)
            if batch.outcome_unknown and any(later.offset is not None for later in state.batches if later is not batch):
                # A retry answered with success while a later batch was already acknowledged: the
                # leader recognised a copy of a batch other than the producer's last (the window).
                self.situations["duplicate-batch-answered"] += 1
            # The invariants hear of it now (AckedOnMinIsr is about the moment of the answer); the
            # application in send order.
            self.acknowledged.append(Acknowledgement(self.topic, partition, batch.offset, batch.value, self.name,
                                                     batch.epoch, batch.sequence))
            self._complete_in_order(partition, state)
            return
        error = lookup(answer.error_code).name
        if answer.error_code not in NOT_WRITTEN:
            batch.outcome_unknown = True  # e.g. appended, then a timeout or a lost leadership
        if self.idempotent and answer.error_code == Errors.INVALID_PRODUCER_EPOCH.code:
            self._fenced(error)  # a newer instance wrote with a higher epoch: this one is a zombie
            return
        if self.idempotent and answer.error_code in LOST_PRODUCER_STATE and batch is self._oldest_unacknowledged(state):
            # KIP-360, as the Java producer does it: the oldest unanswered batch of the partition
            # is refused, so the broker has a gap (or lost our state): bump the epoch.  A later
            # batch refused so is only waiting for an earlier one, and is retried.
            state.needs_bump = True
        self._retry(partition, batch, error, now_ms)

    def _complete_in_order(self, partition: int, state: _PartitionState) -> None:
        """The application hears of its sends in the order it made them (one connection answers
        in order in Kafka; here an answer may overtake another, so later ones wait)."""
        while state.batches and state.batches[0].offset is not None:
            batch = state.batches.popleft()
            self.history.record(self.name, OK, "send", {"topic": self.topic, "key": str(partition),
                                                        "value": batch.value, "partition": partition,
                                                        "offset": batch.offset})

    @staticmethod
    def _oldest_unacknowledged(state: _PartitionState) -> _Batch | None:
        return next((batch for batch in state.batches if batch.offset is None), None)

    def _retry(self, partition: int, batch: _Batch, error: str, now_ms: int) -> None:
        batch.attempt = None
        batch.retry_at_ms = now_ms + RETRY_BACKOFF_MS
        self.errors[error] = self.errors.get(error, 0) + 1
        self.metadata.invalidate()

    def _fenced(self, reason: str) -> None:
        self.fenced = True
        self.situations["producer-fenced"] += 1
        for state in self.state.values():
            for batch in state.batches:
                batch.attempt = None
        self.give_up(f"fenced: {reason}")

    def _maybe_bump_epoch(self) -> None:
        """KIP-360's bump of an idempotent producer, once nothing is in flight (as the Java producer
        waits for its in-flight batches): the same producer id with the next epoch, and every
        unacknowledged batch numbered again from sequence 0.  A batch of a partition that did not
        ask for the bump and whose earlier attempt went unanswered may already be written: the
        new epoch can write it twice (the client's doing, see chaos.checker), so it is
        ``ambiguous``; in a partition whose oldest batch was refused, nothing unacknowledged was
        written (if the broker kept its rules)."""
        if any(batch.attempt is not None for state in self.state.values() for batch in state.batches):
            return
        self.history.record(self.name, INFO, "epoch-bump", {"producer_id": self.producer_id,
                                                           "epoch": self.producer_epoch, "reason": "sequence"})
        self.producer_epoch += 1
        for state in self.state.values():
            state.next_sequence = 0
            for batch in state.batches:
                if batch.offset is not None:
                    continue
                if batch.outcome_unknown and not state.needs_bump:
                    self.ambiguous.add(batch.value)
                batch.epoch, batch.sequence, batch.attempts = -1, -1, 0
            state.needs_bump = False


def _ignore_answer(response: Data, now_ms: int) -> None:
    """A zombie request's answer goes to a connection that no longer exists."""


def _ignore_failure(error: Exception, now_ms: int) -> None:
    """See :func:`_ignore_answer`."""


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
