"""The producer without I/O: from ``send(record)`` to Produce requests in an outbox, and back.

Theory of operation
-------------------
This is Kafka's producer pipeline -- ``KafkaProducer.send`` -> ``RecordAccumulator`` -> ``Sender``
-> ``NetworkClient`` -- as one sans-IO object.  :class:`ProducerCore` never touches a socket or a
clock: the shell (``reference.client.producer``) calls :meth:`ProducerCore.send` with a record,
:meth:`ProducerCore.poll` with the time, and hands the requests the core puts in its
:class:`~reference.client.outbox.Outbox` to an ``OutboxTransport``, which calls back with answers.

What one :meth:`~ProducerCore.poll` does, in order (Java's ``Sender.runOnce``):

1. **Metadata.**  If the cache is stale (``cluster.ClusterMetadata`` rules), send Metadata.
2. **Producer id.**  An idempotent producer needs an id and epoch before its first batch
   (InitProducerId with a null transactional id); nothing is drained until it has one.
3. **Partition.**  Records wait here until their topic's partition count is known, then the
   partitioner picks a partition (``partitioners``) and the accumulator takes them.  A record
   whose topic is still unknown ``max.block.ms`` after it was sent fails with the topic's error
   (UNKNOWN_TOPIC_OR_PARTITION unless the broker named another); a non-retriable topic error
   (INVALID_TOPIC_EXCEPTION, TOPIC_AUTHORIZATION_FAILED) fails it at once.
4. **Expire.**  Batches still waiting ``delivery.timeout.ms`` after their first record fail with
   REQUEST_TIMED_OUT.
5. **Drain.**  For each partition with a ready batch and a known leader: at most
   ``max.in.flight.requests.per.connection`` Produce requests in flight per broker; one batch per
   partition per request, requests of at most ``max.request.size``.  acks=0 requests get no
   answer (the transport completes them when written) and resolve with offset -1.

Answers, per partition (Java's ``Sender.completeBatch``):

* NONE -> the batch is answered once (``delivery.answer``) and record ``i``'s future reads
  ``base_offset + i`` from that answer.  DUPLICATE_SEQUENCE_NUMBER is a success too (the broker
  already has the batch).
* A retriable error, or a lost connection or timed-out request -> the batch goes back to the front
  of its partition's queue after ``retry.backoff.ms``, unless ``retries`` or
  ``delivery.timeout.ms`` is spent.  NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE,
  UNKNOWN_TOPIC_OR_PARTITION, FENCED/UNKNOWN_LEADER_EPOCH and a lost connection also mark the
  metadata stale; a KIP-951 ``CurrentLeader`` hint moves the partition first.
* Anything else -> the records' futures fail with the typed error (``exceptions.error_from_code``).

Idempotence (KIP-98, KIP-360) -- the rules that make a retry harmless:

* **Sequences.**  A batch gets its producer id, epoch and ``base_sequence`` the first time it is
  drained; the partition's next sequence advances by its record count (wrapping after 2^31-1).
  A retry resends the *same* bytes, so the broker recognises a batch it already wrote (one of the
  last five) and answers with the original offset instead of writing it twice.
* **Order.**  A batch being retried is sent again only when nothing else of its partition is in
  flight, so sequences reach the broker in order; batches behind it that the broker refused with
  OUT_OF_ORDER_SEQUENCE_NUMBER (they arrived after a gap) are retried, not failed.
* **Epoch bump** (KIP-360).  OUT_OF_ORDER_SEQUENCE_NUMBER for a partition's *oldest* unacknowledged
  batch means the broker lost or never had the sequences before it: that batch fails with the
  error, as in Java.  UNKNOWN_PRODUCER_ID (the broker forgot the producer) is retried.  Either
  way, and whenever a batch that had a sequence fails for good (so the sequence has a gap), the
  producer bumps its epoch: once nothing is in flight it sends InitProducerId with its current id
  and epoch, gets epoch + 1, and every partition's sequence starts again at 0 -- batches waiting
  for a retry are re-stamped when drained.

Transactions (``transactional.id``) are the :class:`~reference.client.transaction_manager.
TransactionManager`'s; the core only calls it at four points: ``poll`` lets it send its next
request (with the count of unanswered batches, since EndTxn waits for all of them), an appended
record tells it the partition, ``_drain`` sends no batch to a partition it has not added (and
fails the unsent ones while aborting), and a batch that fails for good is reported to it.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ErrorCode, Errors, KafkaError, lookup
from ..protocol.apis import API_BY_KEY
from ..protocol.schema import Data
from ..records.batch import NO_PRODUCER_EPOCH, NO_PRODUCER_ID, SimpleRecord, increment_sequence
from ..records.record import Header
from . import delivery
from .accumulator import ProducerBatch, RecordAccumulator, estimate_size
from .cluster import ClusterMetadata, TopicPartition
from .delivery import BatchAnswer, DeliveryFuture
from .exceptions import NodeDisconnectedError, RequestTimedOutError, TransactionAbortedError, error_from_code
from .outbox import OutboundRequest, Outbox
from .partitioners import make_partitioner
from .producer_config import ProducerConfig
from .transaction_manager import PRODUCE_VERSION as TRANSACTIONAL_PRODUCE_VERSION
from .transaction_manager import TransactionManager

log = logging.getLogger("refka.client.producer")

PRODUCE_KEY = 0
INIT_PRODUCER_ID_KEY = 22
PRODUCE = API_BY_KEY[PRODUCE_KEY]
INIT_PRODUCER_ID = API_BY_KEY[INIT_PRODUCER_ID_KEY]
MAX_PRODUCER_EPOCH = 2**15 - 1  # an INT16; Java asks for a new producer id rather than wrap

# Errors after which the partition's leader is probably elsewhere: refresh metadata.
STALE_METADATA_ERRORS = frozenset({
    Errors.NOT_LEADER_OR_FOLLOWER, Errors.LEADER_NOT_AVAILABLE, Errors.UNKNOWN_TOPIC_OR_PARTITION,
    Errors.FENCED_LEADER_EPOCH, Errors.UNKNOWN_LEADER_EPOCH, Errors.UNKNOWN_TOPIC_ID,
})


@dataclass(eq=False, slots=True)
class _PendingRecord:
    """A record on its way to a batch: waiting for its topic's metadata (step 3), or not at all."""

    topic: str
    partition: int | None
    record: SimpleRecord
    future: DeliveryFuture
    arrived_ms: int
    size: int  # accumulator.estimate_size(record), which batch.size and the sticky partitioner count


class ProducerCore:
    """Kafka's producer pipeline without I/O (see the module's theory of operation)."""

    def __init__(self, config: ProducerConfig, now_ms: int) -> None:
        self.config = config
        self.metadata = ClusterMetadata(config.bootstrap, config.retry_backoff_ms, config.metadata_max_age_ms)
        self.accumulator = RecordAccumulator(config.batch_size, config.linger_ms)
        self.partitioner = make_partitioner(config.partitioner, config.batch_size)
        self.outbox = Outbox()
        self._waiting: deque[_PendingRecord] = deque()
        self._in_flight_per_node: dict[int, int] = {}
        self._in_flight_per_partition: dict[TopicPartition, list[ProducerBatch]] = {}
        self._attempt = 0  # rotates cluster-wide requests over the known nodes after failures
        self._available: dict[str, list[int]] = {}  # see _available_partitions
        self._available_as_of = -1  # the metadata.updates they were computed from
        self._topic_partitions: dict[tuple[str, int], TopicPartition] = {}
        # Idempotence state (KIP-98): the producer id and epoch, and per partition the sequences.
        self.producer_id = NO_PRODUCER_ID
        self.producer_epoch = NO_PRODUCER_EPOCH
        self._init_in_flight = False
        self._init_retry_at_ms = 0
        self._bump_requested = False
        self._next_sequence: dict[TopicPartition, int] = {}
        self._next_unacked_sequence: dict[TopicPartition, int] = {}
        self.transactions: TransactionManager | None = None
        if config.transactional_id is not None:
            self.transactions = TransactionManager(
                config.transactional_id, config.transaction_timeout_ms, config.retry_backoff_ms,
                config.request_timeout_ms, self.metadata, self.outbox, self._adopt_producer_id)

    # -- the user's side ---------------------------------------------------------------------------

    def send(self, topic: str, value: bytes | None, key: bytes | None, partition: int | None,
             headers: Sequence[Header], timestamp_ms: int | None, future: DeliveryFuture, now_ms: int) -> None:
        """Accept a record; its ``future`` resolves to a :class:`RecordMetadata` or a KafkaError."""
        record = SimpleRecord(value, key, now_ms if timestamp_ms is None else timestamp_ms, tuple(headers))
        size = estimate_size(record)
        if size > self.config.max_request_size:
            _fail(future, KafkaError(Errors.MESSAGE_TOO_LARGE, (
                f"the message is {size} bytes when serialized, larger than max.request.size "
                f"({self.config.max_request_size})")))
            return
        if topic not in self.metadata.wanted_topics:
            self.metadata.add_topics([topic])
        pending = _PendingRecord(topic, partition, record, future, now_ms, size)
        count = self.metadata.partition_count(topic)
        if count is not None and not self._waiting:  # the usual case: straight into its batch
            self._append(pending, count, now_ms)
            return
        self._waiting.append(pending)  # behind the records already waiting: send order is kept
        if count is not None:  # metadata came; the older waiting records go first, then this one
            self._partition_waiting(now_ms)
        # else: poll() places the waiting records once the metadata answer arrives (re-scanning the
        # whole queue here, once per record sent before it, would be quadratic)

    def unsent_batches(self) -> int:
        return len(self.accumulator) + len(self._waiting) + sum(self._in_flight_per_node.values())

    # -- one round of work (Java's Sender.runOnce) -------------------------------------------------

    def poll(self, now_ms: int) -> None:
        self._maybe_update_metadata(now_ms)
        self._maybe_init_producer_id(now_ms)
        self._partition_waiting(now_ms)
        self._expire_batches(now_ms)
        self._poll_transactions(now_ms)
        self._drain(now_ms)

    def next_wakeup_ms(self, now_ms: int) -> int | None:
        """When :meth:`poll` has timed work to do (linger, backoff, expiry, metadata age)."""
        times = [self.metadata.update_due_ms(now_ms), self.accumulator.next_ready_ms(now_ms)]
        if self._waiting:
            times.append(self._waiting[0].arrived_ms + self.config.max_block_ms)
        times.extend(b.created_ms + self.config.delivery_timeout_ms for b in self.accumulator.batches())
        if self.config.idempotence and not self._has_producer_id() and not self._init_in_flight:
            times.append(self._init_retry_at_ms)
        if self.transactions is not None:
            times.append(self.transactions.next_wakeup_ms(now_ms))
        # Only future times: whatever is due now was done by poll() or waits for an event (an
        # answer, a metadata update) that wakes the shell anyway -- a past time would make it spin.
        return min((t for t in times if t is not None and t > now_ms), default=None)

    # -- step 1: metadata ----------------------------------------------------------------------------

    def _maybe_update_metadata(self, now_ms: int) -> None:
        due = self.metadata.update_due_ms(now_ms)
        if due is None or due > now_ms:
            return
        body = self.metadata.metadata_request(now_ms)
        self.outbox.send(OutboundRequest(
            self.metadata.any_node(self._attempt), 3, body,
            on_response=self._on_metadata, on_failure=self._on_metadata_failure,
            timeout_ms=self.config.request_timeout_ms))

    def _on_metadata(self, body: Data, now_ms: int) -> None:
        self.metadata.update(body, now_ms)
        self._partition_waiting(now_ms)

    def _on_metadata_failure(self, error: Exception, now_ms: int) -> None:
        log.info("metadata request failed: %s", error)
        self._attempt += 1
        self.metadata.update_failed(now_ms)

    # -- step 2: the producer id (KIP-98) and its epoch bump (KIP-360) -------------------------------

    def _has_producer_id(self) -> bool:
        return self.producer_id != NO_PRODUCER_ID

    def _maybe_init_producer_id(self, now_ms: int) -> None:
        if not self.config.idempotence or self._init_in_flight or now_ms < self._init_retry_at_ms:
            return
        if self.transactions is not None:
            return  # the transaction coordinator gives the id (TransactionManager)
        if self._has_producer_id() and not self._bump_requested:
            return
        if self._bump_requested and any(self._in_flight_per_partition.values()):
            return  # bump only once every batch on the wire has its answer
        self._init_in_flight = True
        if self.producer_epoch >= MAX_PRODUCER_EPOCH:  # the epoch cannot grow: ask for a new id
            self.producer_id, self.producer_epoch = NO_PRODUCER_ID, NO_PRODUCER_EPOCH
        body = INIT_PRODUCER_ID.request.make(transactional_id=None, transaction_timeout_ms=60_000,
                                             producer_id=self.producer_id, producer_epoch=self.producer_epoch)
        self.outbox.send(OutboundRequest(
            self.metadata.any_node(self._attempt), INIT_PRODUCER_ID_KEY, body,
            on_response=self._on_init_producer_id, on_failure=self._on_init_producer_id_failure,
            timeout_ms=self.config.request_timeout_ms))

    def _on_init_producer_id(self, body: Data, now_ms: int) -> None:
        self._init_in_flight = False
        error = lookup(body.error_code)
        if error is not Errors.NONE:
            log.info("InitProducerId failed: %s", error)
            if not error.retriable:  # e.g. INVALID_PRODUCER_EPOCH: start again with a new id
                self.producer_id, self.producer_epoch = NO_PRODUCER_ID, NO_PRODUCER_EPOCH
            self._init_retry_at_ms = now_ms + self.config.retry_backoff_ms
            return
        bumped = self._has_producer_id()
        self.producer_id, self.producer_epoch = body.producer_id, body.producer_epoch
        self._bump_requested = False
        self._next_sequence.clear()
        self._next_unacked_sequence.clear()
        if bumped:
            log.info("producer epoch bumped to %d (KIP-360)", self.producer_epoch)
            for batch in self.accumulator.batches():
                batch.reset_producer_state()

    def _on_init_producer_id_failure(self, error: Exception, now_ms: int) -> None:
        self._init_in_flight = False
        self._attempt += 1
        self._init_retry_at_ms = now_ms + self.config.retry_backoff_ms

    def _adopt_producer_id(self, producer_id: int, producer_epoch: int) -> None:
        """The transaction coordinator gave an id or a new epoch: sequences start again at 0."""
        self.producer_id, self.producer_epoch = producer_id, producer_epoch
        self._next_sequence.clear()
        self._next_unacked_sequence.clear()
        for batch in self.accumulator.batches():
            batch.reset_producer_state()

    def _poll_transactions(self, now_ms: int) -> None:
        if self.transactions is None:
            return
        if self.transactions.is_aborting:  # nothing unsent of an aborted transaction goes out
            # The error that doomed the transaction, or (a plain abort_transaction) Java's
            # TransactionAbortedException.
            aborted = self.transactions.last_error or TransactionAbortedError(
                "failing the record since the transaction was aborted")
            for pending in self._waiting:
                _fail(pending.future, aborted)
            self._waiting.clear()
            for batch in self.accumulator.take_all():
                if batch.has_sequence:  # a retry never resent: its sequence is a gap now
                    self.transactions.epoch_bump_required = True
                delivery.fail(batch.futures, aborted)
        self.transactions.poll(now_ms, self.unsent_batches())

    # -- step 3: choosing partitions -----------------------------------------------------------------

    def _partition_waiting(self, now_ms: int) -> None:
        still_waiting: deque[_PendingRecord] = deque()
        for pending in self._waiting:
            count = self.metadata.partition_count(pending.topic)
            topic_error = self.metadata.topic_errors.get(pending.topic, Errors.NONE)
            if count is None:
                if topic_error is not Errors.NONE and not topic_error.retriable:
                    _fail(pending.future, KafkaError(topic_error, f"topic {pending.topic}"))
                elif now_ms - pending.arrived_ms >= self.config.max_block_ms:
                    _fail(pending.future, self._no_metadata_error(pending.topic, topic_error))
                else:
                    still_waiting.append(pending)
                continue
            self._append(pending, count, now_ms)
        self._waiting = still_waiting

    def _available_partitions(self, topic: str) -> list[int]:
        """The topic's partitions that have a leader, for the partitioner's random choices.  Asked
        for every record, so kept per topic until the next metadata answer or leader hint."""
        if self._available_as_of != self.metadata.updates:
            self._available.clear()
            self._available_as_of = self.metadata.updates
        available = self._available.get(topic)
        if available is None:
            available = self._available[topic] = self.metadata.available_partitions(topic)
        return available

    def _topic_partition(self, topic: str, partition: int) -> TopicPartition:
        """One TopicPartition per partition, made once: it keys the accumulator's queues."""
        tp = self._topic_partitions.get((topic, partition))
        if tp is None:
            tp = self._topic_partitions[(topic, partition)] = TopicPartition(topic, partition)
        return tp

    def _no_metadata_error(self, topic: str, topic_error: ErrorCode) -> KafkaError:
        """Why a record's topic is still unknown after ``max.block.ms``: no broker answered at all,
        or the cluster does not have the topic (Java says "not present in metadata" for both)."""
        waited = f"after {self.config.max_block_ms} ms"
        if self.metadata.last_update_ms < 0:
            servers = ",".join(f"{b.host}:{b.port}" for b in self.metadata.bootstrap.values())
            return NodeDisconnectedError(None, f"no broker of {servers} answered {waited}")
        error = topic_error if topic_error is not Errors.NONE else Errors.UNKNOWN_TOPIC_OR_PARTITION
        return KafkaError(error, f"topic {topic} not present in metadata {waited}")

    def _append(self, pending: _PendingRecord, partition_count: int, now_ms: int) -> None:
        partition = pending.partition
        if partition is None:
            partition = self.partitioner.partition(pending.topic, pending.record.key, partition_count,
                                                   self._available_partitions(pending.topic))
        elif not 0 <= partition < partition_count:
            _fail(pending.future, KafkaError(Errors.UNKNOWN_TOPIC_OR_PARTITION, (
                f"partition {partition} of topic {pending.topic} with partition count {partition_count}")))
            return
        tp = self._topic_partition(pending.topic, partition)
        self.accumulator.append(tp, pending.record, pending.future, now_ms, pending.size)
        self.partitioner.record_appended(pending.topic, partition, pending.size)
        if self.transactions is not None:
            self.transactions.maybe_add_partition(tp)

    # -- step 4: expiry ------------------------------------------------------------------------------

    def _expire_batches(self, now_ms: int) -> None:
        for batch in self.accumulator.expired(now_ms, self.config.delivery_timeout_ms):
            self._fail_batch(batch, RequestTimedOutError(
                f"expiring {len(batch.records)} record(s) for {batch.tp}: {now_ms - batch.created_ms} ms "
                "has passed since batch creation"))

    # -- step 5: draining into Produce requests ------------------------------------------------------

    def _drain(self, now_ms: int) -> None:
        if self.config.idempotence and (not self._has_producer_id() or self._bump_requested):
            return
        per_node: dict[int, list[ProducerBatch]] = {}
        sizes: dict[int, int] = {}
        for tp in self.accumulator.ready_partitions(now_ms):
            node = self.metadata.leader(tp)
            if node is None:
                self.metadata.request_update()
                continue
            if self._in_flight_per_node.get(node, 0) >= self.config.max_in_flight:
                continue
            batch = self.accumulator.peek(tp)
            assert batch is not None
            if batch.stale_metadata_update >= self.metadata.updates:
                continue  # still routed by the metadata that sent it to the wrong broker
            if self.config.idempotence and not self._may_send_idempotent(batch):
                continue
            if self.transactions is not None and not self.transactions.is_send_to_partition_allowed(tp):
                continue  # AddPartitionsToTxn has not added the partition yet
            if per_node.get(node) and sizes[node] + batch.size_in_bytes > self.config.max_request_size:
                continue
            self.accumulator.pop(tp)
            self._stamp(batch)
            per_node.setdefault(node, []).append(batch)
            sizes[node] = sizes.get(node, 0) + batch.size_in_bytes
        for node, batches in per_node.items():
            self._send_produce(node, batches)

    def _may_send_idempotent(self, batch: ProducerBatch) -> bool:
        """A retried batch goes again only when nothing of its partition is in flight (ordering)."""
        if batch.has_sequence and batch.producer_epoch != self.producer_epoch:
            batch.reset_producer_state()  # stamped under an epoch bumped since
        return not batch.has_sequence or not self._in_flight_per_partition.get(batch.tp)

    def _stamp(self, batch: ProducerBatch) -> None:
        """Give a batch its producer id, epoch and base sequence, the first time it is drained."""
        if not self.config.idempotence or batch.has_sequence:
            return
        sequence = self._next_sequence.get(batch.tp, 0)
        batch.producer_id, batch.producer_epoch, batch.base_sequence = self.producer_id, self.producer_epoch, sequence
        batch.transactional = self.transactions is not None
        self._next_sequence[batch.tp] = increment_sequence(sequence, len(batch.records))

    def _send_produce(self, node: int, batches: list[ProducerBatch]) -> None:
        topic_data_struct = PRODUCE.request.struct("TopicProduceData")
        partition_struct = PRODUCE.request.struct("PartitionProduceData")
        by_topic: dict[str, list[ProducerBatch]] = {}
        for batch in batches:
            by_topic.setdefault(batch.tp.topic, []).append(batch)
            batch.attempts += 1
            batch.in_flight = True
            self._in_flight_per_partition.setdefault(batch.tp, []).append(batch)
        topic_ids = {topic: self.metadata.topic_id(topic) for topic in by_topic}
        body = PRODUCE.request.make(
            transactional_id=self.config.transactional_id, acks=self.config.acks,
            timeout_ms=self.config.request_timeout_ms,
            topic_data=[topic_data_struct.make(
                name=topic, topic_id=topic_ids[topic],
                partition_data=[partition_struct.make(index=b.tp.partition, records=b.encode(self.config.compression))
                                for b in topic_batches])
                for topic, topic_batches in by_topic.items()])
        self._in_flight_per_node[node] = self._in_flight_per_node.get(node, 0) + 1

        def on_response(response: Data, now_ms: int) -> None:
            self._request_done(node)
            self._on_produce_response(batches, topic_ids, response, now_ms)

        def on_failure(error: Exception, now_ms: int) -> None:
            self._request_done(node)
            self._on_produce_failure(batches, error, now_ms)

        self.outbox.send(OutboundRequest(node, PRODUCE_KEY, body, on_response, on_failure,
                                         version=TRANSACTIONAL_PRODUCE_VERSION if self.transactions else None,
                                         timeout_ms=self.config.request_timeout_ms))

    def _request_done(self, node: int) -> None:
        self._in_flight_per_node[node] -= 1

    # -- answers -------------------------------------------------------------------------------------

    def _on_produce_response(self, batches: list[ProducerBatch], topic_ids: dict[str, uuid.UUID],
                             body: Data, now_ms: int) -> None:
        names = {topic_id: name for name, topic_id in topic_ids.items()}
        answers: dict[TopicPartition, Data] = {}
        for topic in body.get("responses", []):
            name = topic.name if topic.get("name") else names.get(topic.get("topic_id"), "")
            for partition in topic.partition_responses:
                answers[TopicPartition(name, partition.index)] = partition
        for batch in batches:
            self._leave_flight(batch)
            if self.config.acks == 0:
                self._complete_batch(batch, -1, -1)
                continue
            answer = answers.get(batch.tp)
            if answer is None:
                self._retry_or_fail(batch, KafkaError(Errors.UNKNOWN_SERVER_ERROR, "no answer for the partition"),
                                    now_ms)
                continue
            self._on_partition_answer(batch, answer, body, now_ms)

    def _on_partition_answer(self, batch: ProducerBatch, answer: Data, body: Data, now_ms: int) -> None:
        error = lookup(answer.error_code)
        if error in (Errors.NONE, Errors.DUPLICATE_SEQUENCE_NUMBER):
            self._complete_batch(batch, answer.base_offset, answer.get("log_append_time_ms", -1))
            return
        exception = error_from_code(answer.error_code, answer.get("error_message"))
        assert exception is not None
        if error in STALE_METADATA_ERRORS:
            self._available_as_of = -1  # a leader hint below may give a leaderless partition a leader
            leader = answer.get("current_leader")
            if leader is None or not self.metadata.apply_leader_hint(
                    batch.tp, leader.leader_id, leader.leader_epoch, body.get("node_endpoints") or ()):
                self.metadata.request_update()
                batch.stale_metadata_update = self.metadata.updates  # do not resend to the leader that refused it
        if self.transactions is not None and error in (Errors.OUT_OF_ORDER_SEQUENCE_NUMBER, Errors.UNKNOWN_PRODUCER_ID):
            self._fail_batch(batch, exception)  # the transaction is aborted and the epoch bumped after it
            return
        if error is Errors.OUT_OF_ORDER_SEQUENCE_NUMBER and self.config.idempotence:
            if batch.base_sequence != self._next_unacked_sequence.get(batch.tp, 0):
                self._retry_or_fail(batch, exception, now_ms, retriable=True)  # a batch before it is missing
            else:
                self._bump_requested = True  # KIP-360: the broker does not have what came before
                self._fail_batch(batch, exception)
            return
        if error is Errors.UNKNOWN_PRODUCER_ID and self.config.idempotence:
            self._bump_requested = True
            self._retry_or_fail(batch, exception, now_ms, retriable=True)
            return
        self._retry_or_fail(batch, exception, now_ms)

    def _on_produce_failure(self, batches: list[ProducerBatch], error: Exception, now_ms: int) -> None:
        """The request was lost: connection gone, timed out, or no usable version."""
        log.info("produce request failed: %s", error)
        self.metadata.request_update()
        for batch in batches:
            self._leave_flight(batch)
            batch.stale_metadata_update = self.metadata.updates
            self._retry_or_fail(batch, error, now_ms)

    def _leave_flight(self, batch: ProducerBatch) -> None:
        batch.in_flight = False
        in_flight = self._in_flight_per_partition.get(batch.tp, [])
        if batch in in_flight:
            in_flight.remove(batch)

    def _retry_or_fail(self, batch: ProducerBatch, error: Exception, now_ms: int, retriable: bool | None = None) -> None:
        if retriable is None:
            retriable = isinstance(error, KafkaError) and error.error.retriable
        in_time = now_ms - batch.created_ms < self.config.delivery_timeout_ms
        if retriable and in_time and batch.attempts <= self.config.retries:
            self.accumulator.reenqueue(batch, now_ms + self.config.retry_backoff_ms)
            return
        if retriable and not in_time:
            error = RequestTimedOutError(f"expiring {len(batch.records)} record(s) for {batch.tp}: "
                                         f"delivery.timeout.ms ({self.config.delivery_timeout_ms}) has passed")
        self._fail_batch(batch, error)

    def _complete_batch(self, batch: ProducerBatch, base_offset: int, log_append_time: int) -> None:
        if batch.has_sequence:
            self._next_unacked_sequence[batch.tp] = increment_sequence(batch.base_sequence, len(batch.records))
        # One answer for the whole batch; each future reads its offset (base + index) from it.
        delivery.answer(batch.futures, BatchAnswer(batch.tp.topic, batch.tp.partition, base_offset, log_append_time,
                                                   [record.timestamp for record in batch.records]))

    def _fail_batch(self, batch: ProducerBatch, error: Exception) -> None:
        if self.transactions is not None:
            self.transactions.on_batch_failed(error, batch.has_sequence)
        elif batch.has_sequence and self.config.idempotence:
            self._bump_requested = True  # the sequence now has a gap: start a new epoch
        delivery.fail(batch.futures, error)

    def fail_everything(self, error: Exception) -> None:
        """Close without flushing: every record not yet answered fails with ``error``."""
        for pending in self._waiting:
            _fail(pending.future, error)
        self._waiting.clear()
        for batch in self.accumulator.take_all():
            delivery.fail(batch.futures, error)


def _fail(future: DeliveryFuture, error: Exception) -> None:
    """Fail one record that never joined a batch (or leaves it alone)."""
    delivery.fail((future,), error)

