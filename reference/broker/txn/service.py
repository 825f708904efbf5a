"""The transaction coordinator's place in the broker: its topic, its writes, its markers.

Theory of operation
-------------------
Kafka's ``TransactionStateManager`` and ``TransactionMarkerChannelManager``.  On one node:

* ``__transaction_state`` is an ordinary compacted topic of ``transaction.state.log.num.partitions``
  partitions (default 50), created here the first time a client looks for a transaction
  coordinator (FindCoordinator key type 1) or initialises a transactional producer.  Kafka gives it
  ``cleanup.policy=compact``, ``compression.type=uncompressed``, ``min.insync.replicas`` =
  ``transaction.state.log.min.isr`` and ``unclean.leader.election.enable=false``; one node keeps a
  single replica, so its ``min.insync.replicas`` is 1.
* On start every partition of the topic is replayed into the coordinator (:meth:`load`): the newest
  record per transactional id wins, a tombstone removes the id, and a transaction the crash left
  in PrepareCommit/PrepareAbort has its markers written again and is completed.
* **Writes** (:class:`StateLogWriter`): one record, one batch, appended to the id's partition.
  On one node the high watermark follows every append, so a write is committed when the append
  returns.  Append errors become the coordinator errors Kafka maps them to
  (``TransactionStateManager.appendTransactionToLog``): UNKNOWN_TOPIC_OR_PARTITION,
  NOT_ENOUGH_REPLICAS(_AFTER_APPEND) and REQUEST_TIMED_OUT -> COORDINATOR_NOT_AVAILABLE;
  NOT_LEADER_OR_FOLLOWER and KAFKA_STORAGE_ERROR -> NOT_COORDINATOR; anything else ->
  UNKNOWN_SERVER_ERROR.
* **Markers** (:class:`MarkerChannel`): WriteTxnMarkers is what a coordinator sends to every
  partition leader; on one node the leader is here, so the marker batches are appended directly,
  the ``__consumer_offsets`` ones through the group service (which then makes the transaction's
  offsets visible or drops them).  A partition whose topic was deleted is skipped, as Kafka does.
* **Time**: :meth:`TransactionService.poll` runs two timers, as Kafka's ``TransactionStateManager``:
  every ``transaction.abort.timed.out.transaction.cleanup.interval.ms`` (default 10 s) it aborts the
  transactions open longer than their ``transaction.timeout.ms``; every
  ``transaction.remove.expired.transaction.cleanup.interval.ms`` (default one hour) it drops the
  transactional ids idle for ``transactional.id.expiration.ms``.  So an expired id can outlive its
  expiry by up to one interval -- as in Kafka.

In a KRaft cluster (``broker.kraft_mode``), as Kafka's ``TransactionStateManager``:

* the topic is asked of the controller (``transaction.state.log.replication.factor``,
  ``min.insync.replicas`` = ``transaction.state.log.min.isr``); FindCoordinator names the leader
  of the id's partition, COORDINATOR_NOT_AVAILABLE while there is none;
* the node's metadata publisher calls :meth:`TransactionService.on_became_leader` (the
  partition's ids are loaded from the local replica) and :meth:`TransactionService.on_resigned`
  (they are dropped); a request for an id of a partition not led here is NOT_COORDINATOR;
* a request that wrote is answered once the high watermark of its partition has passed the write
  (:meth:`TransactionService.when_committed`), failing with Kafka's mapping if it does not;
* markers for partitions led elsewhere go out as WriteTxnMarkers through the broker's
  transaction outbox (``txn_outbox``: connections of its own, never behind a follower's parked
  Fetch on the replica fetchers' connection to the same node), grouped by leader, and are sent again (at the next poll) to the current leader after a failure
  or a retriable error; UNKNOWN_TOPIC_OR_PARTITION drops the partition, as Kafka does;
* the KIP-890 verification of a transactional batch whose coordinator is on another node is a
  question over the network (:meth:`TransactionService.verify_remotely`: AddPartitionsToTxn v4+,
  ``VerifyOnly`` unless the producer is transaction version 2), sent through ``txn_outbox`` too;
  the Produce waits for the answer.

Invariant: a request that changed a transactional id is answered only after the change is below
the high watermark of the id's partition; Complete is written only after every marker is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, cast

from reference.errors import ErrorCode, Errors, KafkaError, lookup
from reference.protocol.apis import API_BY_KEY
from reference.protocol.schema import Data
from reference.records.batch import SimpleRecord, build_batch, iter_record_batches
from reference.records.control import (
    ControlRecordType,
    EndTransactionMarker,
    build_end_transaction_marker_batch,
)

from ..group_service import OFFSETS_TOPIC
from ..pending import Pending
from .coordinator import (
    TopicPartition,
    TransactionCoordinator,
    TransactionCoordinatorConfig,
    TransactionMetadata,
)
from .records import TransactionLogValue, decode_key, decode_value, encode_key, encode_value

if TYPE_CHECKING:
    from ..core import Broker

log = logging.getLogger("refka.broker.transactions")

TRANSACTION_STATE_TOPIC = "__transaction_state"
TRANSACTION_STATE_TOPIC_CONFIGS = {"cleanup.policy": "compact", "compression.type": "uncompressed",
                                   "min.insync.replicas": "1", "segment.bytes": "104857600",
                                   "unclean.leader.election.enable": "false"}
MARKER_RETRY_BACKOFF_MS = 100  # Kafka retries markers at once on its channel; refka at the next poll
TRANSACTION_WRITE_TIMEOUT_MS = 5_000  # Kafka's transaction.state.log request timeout (request.timeout.ms)
WRITE_TXN_MARKERS = API_BY_KEY[27]
ADD_PARTITIONS = API_BY_KEY[24]
ADD_PARTITIONS_FROM_BROKER_VERSION = 4  # the batched, broker-to-coordinator form (KIP-890)

_APPEND_ERRORS: dict[int, ErrorCode] = {
    Errors.UNKNOWN_TOPIC_OR_PARTITION.code: Errors.COORDINATOR_NOT_AVAILABLE,
    Errors.NOT_ENOUGH_REPLICAS.code: Errors.COORDINATOR_NOT_AVAILABLE,
    Errors.NOT_ENOUGH_REPLICAS_AFTER_APPEND.code: Errors.COORDINATOR_NOT_AVAILABLE,
    Errors.REQUEST_TIMED_OUT.code: Errors.COORDINATOR_NOT_AVAILABLE,
    Errors.NOT_LEADER_OR_FOLLOWER.code: Errors.NOT_COORDINATOR,
    Errors.KAFKA_STORAGE_ERROR.code: Errors.NOT_COORDINATOR,
}


def _verification_error(error: ErrorCode, abortable: bool) -> ErrorCode:
    """The coordinator's verdict as a Produce answer (Kafka's ``AddPartitionsToTxnManager``)."""
    if error is Errors.PRODUCER_FENCED:
        return Errors.INVALID_PRODUCER_EPOCH
    if error is Errors.INVALID_TXN_STATE and abortable:
        return Errors.TRANSACTION_ABORTABLE
    if error in (Errors.NOT_COORDINATOR, Errors.COORDINATOR_NOT_AVAILABLE, Errors.COORDINATOR_LOAD_IN_PROGRESS,
                 Errors.CONCURRENT_TRANSACTIONS):
        return Errors.NOT_ENOUGH_REPLICAS
    return error


def _replication_error(error: ErrorCode) -> ErrorCode:
    return _APPEND_ERRORS.get(error.code, error)


class _TopicCreator(Protocol):
    """The KRaft node's forwarder, as far as creating ``__transaction_state`` goes."""

    def create_topic(self, name: str, now_ms: int, partitions: int = -1, replication_factor: int = -1,
                     configs: dict[str, str] | None = None) -> None: ...


class StateLogWriter:
    """Appends one transactional id's record to its ``__transaction_state`` partition."""

    def __init__(self, service: TransactionService) -> None:
        self.service = service

    def write(self, transactional_id: str, metadata: TransactionMetadata | None, now_ms: int) -> ErrorCode:
        service = self.service
        service.ensure_topic(now_ms)
        value = None if metadata is None else encode_value(metadata.to_value())
        batch = build_batch([SimpleRecord(value=value, key=encode_key(transactional_id), timestamp=now_ms)])
        partition = service.coordinator.partition_for(transactional_id)
        try:
            info = service.broker.replicas.append_internal(TRANSACTION_STATE_TOPIC, partition, batch, now_ms)
        except KafkaError as refused:
            log.warning("writing %r to %s-%d failed: %s", transactional_id, TRANSACTION_STATE_TOPIC, partition,
                        refused)
            return _APPEND_ERRORS.get(refused.error.code, Errors.UNKNOWN_SERVER_ERROR)
        service.last_written[partition] = info.last_offset + 1
        return Errors.NONE


@dataclass
class _MarkerJob:
    """One transaction's markers still to be written, and what to do when none is left."""

    producer_id: int
    producer_epoch: int
    commit: bool
    coordinator_epoch: int
    remaining: set[TopicPartition]
    on_written: Callable[[int], None]
    in_flight: set[TopicPartition] = field(default_factory=set)


class MarkerChannel:
    """WriteTxnMarkers to the partition leaders (Kafka's ``TransactionMarkerChannelManager``): a
    local leader's marker is appended at once; the others go through the transaction outbox, one
    request per leader, and are retried at the next poll until written or their partition is gone."""

    def __init__(self, service: TransactionService) -> None:
        self.service = service
        self.jobs: list[_MarkerJob] = []

    def write_markers(self, producer_id: int, producer_epoch: int, commit: bool, coordinator_epoch: int,
                      partitions: Iterable[TopicPartition], now_ms: int,
                      on_written: Callable[[int], None]) -> None:
        job = _MarkerJob(producer_id, producer_epoch, commit, coordinator_epoch, set(partitions), on_written)
        self.jobs.append(job)
        self._send(job, now_ms)

    def retry(self, now_ms: int) -> None:
        for job in list(self.jobs):
            self._send(job, now_ms)

    def _send(self, job: _MarkerJob, now_ms: int) -> None:
        by_leader: dict[int, list[TopicPartition]] = {}
        for topic_partition in sorted(job.remaining - job.in_flight):
            leader = self.service.leader_of(*topic_partition)
            if leader is None:
                if self.service.broker.topics.get(topic_partition[0]) is None:
                    job.remaining.discard(topic_partition)  # the topic is gone: no marker needed
                continue  # no leader now: the next poll tries again
            if leader == self.service.broker.node_id:
                error = self.service.write_marker(*topic_partition, job.producer_id, job.producer_epoch, job.commit,
                                                  job.coordinator_epoch, now_ms)
                self._settle(job, topic_partition, error)
            else:
                by_leader.setdefault(leader, []).append(topic_partition)
        for leader, partitions in by_leader.items():
            self._send_remote(job, leader, partitions)
        self._maybe_done(job, now_ms)

    def _send_remote(self, job: _MarkerJob, leader: int, partitions: list[TopicPartition]) -> None:
        from ...client.outbox import OutboundRequest

        job.in_flight.update(partitions)
        topics: dict[str, list[int]] = {}
        for topic, partition in partitions:
            topics.setdefault(topic, []).append(partition)
        marker = WRITE_TXN_MARKERS.request.struct("WritableTxnMarker").make(
            producer_id=job.producer_id, producer_epoch=job.producer_epoch, transaction_result=job.commit,
            coordinator_epoch=job.coordinator_epoch, topics=[
                WRITE_TXN_MARKERS.request.struct("WritableTxnMarkerTopic").make(name=name, partition_indexes=ids)
                for name, ids in topics.items()])

        def answered(response: Data, now_ms: int) -> None:
            job.in_flight.difference_update(partitions)
            for result in response.markers:
                for topic in result.topics:
                    for answer in topic.partitions:
                        self._settle(job, (topic.name, answer.partition_index), lookup(answer.error_code))
            self._maybe_done(job, now_ms)

        def failed(error: Exception, now_ms: int) -> None:
            job.in_flight.difference_update(partitions)  # the next poll sends them again

        self.service.broker.txn_outbox.send(OutboundRequest(leader, WRITE_TXN_MARKERS.key,
                                                        WRITE_TXN_MARKERS.request.make(markers=[marker]),
                                                        answered, failed))

    @staticmethod
    def _settle(job: _MarkerJob, topic_partition: TopicPartition, error: ErrorCode) -> None:
        if error is Errors.NONE or error is Errors.UNKNOWN_TOPIC_OR_PARTITION:
            job.remaining.discard(topic_partition)
        elif error in (Errors.INVALID_PRODUCER_EPOCH, Errors.TRANSACTION_COORDINATOR_FENCED):
            # The partition has seen a newer epoch or coordinator: this marker can never be written.
            log.warning("marker for producer %d on %s-%d refused: %s", job.producer_id, *topic_partition, error)
            job.remaining.discard(topic_partition)
        else:
            log.info("marker for producer %d on %s-%d: %s, will retry", job.producer_id, *topic_partition, error)

    def _maybe_done(self, job: _MarkerJob, now_ms: int) -> None:
        if not job.remaining and job in self.jobs:
            self.jobs.remove(job)
            job.on_written(now_ms)


class TransactionService:
    """Connects the sans-IO :class:`TransactionCoordinator` to a single-node broker."""

    def __init__(self, broker: Broker, now_ms: int) -> None:
        self.broker = broker
        config = broker.config
        self.config = TransactionCoordinatorConfig(
            transaction_max_timeout_ms=config.get_int("transaction.max.timeout.ms"),
            num_partitions=config.get_int("transaction.state.log.num.partitions"),
            offsets_topic_num_partitions=config.get_int("offsets.topic.num.partitions"))
        self.markers = MarkerChannel(self)
        self.coordinator = TransactionCoordinator(self.config, StateLogWriter(self), self.markers,
                                                  broker.producer_ids)
        self.cluster_mode = broker.kraft_mode
        self.owned: dict[int, int] = {}  # cluster: __transaction_state partition -> leader epoch led here
        self.last_written: dict[int, int] = {}  # partition -> end offset of our last write
        self._replication_factor = config.get_int("transaction.state.log.replication.factor")
        self._min_isr = config.get_int("transaction.state.log.min.isr")
        self._id_expiration_ms = config.get_int("transactional.id.expiration.ms")
        self._timeout_check_interval_ms = config.get_int("transaction.abort.timed.out.transaction.cleanup.interval.ms")
        self._expiry_check_interval_ms = config.get_int("transaction.remove.expired.transaction.cleanup.interval.ms")
        self._next_timeout_check = now_ms + self._timeout_check_interval_ms
        self._next_expiry_check = now_ms + self._expiry_check_interval_ms
        self._next_marker_retry = now_ms
        if not self.cluster_mode and TRANSACTION_STATE_TOPIC in broker.topics:
            self.load(now_ms)

    # -- the topic ------------------------------------------------------------------------------------

    def ensure_topic(self, now_ms: int = 0) -> None:
        if TRANSACTION_STATE_TOPIC in self.broker.topics:
            return
        if not self.cluster_mode:
            self.broker.topics.create(TRANSACTION_STATE_TOPIC, self.config.num_partitions, 1,
                                      TRANSACTION_STATE_TOPIC_CONFIGS)
            return
        forwarder = cast("_TopicCreator | None", self.broker.forwarder)
        if forwarder is not None:
            configs = {**TRANSACTION_STATE_TOPIC_CONFIGS, "min.insync.replicas": str(self._min_isr)}
            forwarder.create_topic(TRANSACTION_STATE_TOPIC, now_ms, self.config.num_partitions,
                                   self._replication_factor, configs)

    def find_coordinator(self, transactional_id: str, now_ms: int = 0) -> tuple[ErrorCode, tuple[int, str, int] | None]:
        self.ensure_topic(now_ms)
        if not self.cluster_mode:
            return Errors.NONE, (self.broker.node_id, self.broker.host, self.broker.port)
        leader = self.leader_of(TRANSACTION_STATE_TOPIC, self.coordinator.partition_for(transactional_id))
        endpoint = self.broker.cluster.broker(leader) if leader is not None else None
        if endpoint is None:
            return Errors.COORDINATOR_NOT_AVAILABLE, None
        return Errors.NONE, (endpoint.node_id, endpoint.host, endpoint.port)

    def leader_of(self, topic: str, partition: int) -> int | None:
        """The partition's leader as this broker's metadata knows it (itself on one node)."""
        if not self.cluster_mode:
            return self.broker.node_id if self.broker.replicas.get(topic, partition) is not None else None
        found = next((p for p in self.broker.cluster.partitions(topic) or [] if p.partition_index == partition), None)
        return found.leader_id if found is not None and found.leader_id >= 0 else None

    def coordinator_error(self, transactional_id: str) -> ErrorCode:
        """NONE if this broker coordinates ``transactional_id`` now, else NOT_COORDINATOR."""
        if not self.cluster_mode or self.coordinator.partition_for(transactional_id) in self.owned:
            return Errors.NONE
        return Errors.NOT_COORDINATOR

    # -- leadership (a cluster's metadata publisher calls these) ---------------------------------------

    def on_became_leader(self, partition: int, leader_epoch: int, now_ms: int) -> None:
        """This broker leads ``__transaction_state-partition``: load its ids (Kafka's ``onElection``)."""
        if self.owned.get(partition, -1) >= leader_epoch:
            return
        self._drop_partition(partition)
        self.owned[partition] = leader_epoch
        self.coordinator.coordinator_epochs[partition] = leader_epoch
        replica = self.broker.replicas.get(TRANSACTION_STATE_TOPIC, partition)
        if replica is not None:
            self.last_written[partition] = replica.log_end_offset
        self.coordinator.load(self._read_partition(partition), now_ms)

    def on_resigned(self, partition: int) -> None:
        """Another broker leads the partition now (or it is gone): forget its ids."""
        self.owned.pop(partition, None)
        self._drop_partition(partition)

    def _drop_partition(self, partition: int) -> None:
        for transactional_id in [t for t in self.coordinator.transactions
                                 if self.coordinator.partition_for(t) == partition]:
            del self.coordinator.transactions[transactional_id]
        self.last_written.pop(partition, None)

    # -- answers wait for replication ------------------------------------------------------------------

    def answer_when_committed(self, transactional_id: str, error: ErrorCode, answer: Callable[[ErrorCode], Data],
                              now_ms: int) -> Data | Pending:
        """``answer(error)`` now if the request failed, else once its write is replicated (with
        Kafka's mapping of a replication failure to a coordinator error)."""
        if error is not Errors.NONE:
            return answer(error)
        waiting = self.when_committed(transactional_id, now_ms)
        if waiting.done:
            return answer(_replication_error(waiting.result))
        answered = Pending()
        waiting.on_done(lambda result: answered.complete(answer(_replication_error(result))))
        return answered

    def when_committed(self, transactional_id: str, now_ms: int) -> Pending:
        """A Pending completed with an ErrorCode once everything written to the id's partition is
        below its high watermark (at once on one node)."""
        partition = self.coordinator.partition_for(transactional_id)
        end_offset = self.last_written.get(partition)
        if end_offset is None or self.broker.replicas.get(TRANSACTION_STATE_TOPIC, partition) is None:
            done = Pending()
            done.complete(Errors.NONE)
            return done
        return self.broker.replicas.await_replication(TRANSACTION_STATE_TOPIC, partition, end_offset,
                                                      TRANSACTION_WRITE_TIMEOUT_MS, now_ms)

    def load(self, now_ms: int) -> None:
        """One node: replay every partition of ``__transaction_state`` (log order within a partition)."""
        topic = self.broker.topics.get(TRANSACTION_STATE_TOPIC)
        assert topic is not None
        entries = []
        for partition in range(topic.partitions):
            replica = self.broker.replicas.get(TRANSACTION_STATE_TOPIC, partition)
            if replica is not None:
                self.coordinator.coordinator_epochs[partition] = max(0, replica.leader_epoch)
            entries.extend(self._read_partition(partition))
        self.coordinator.load(entries, now_ms)

    def _read_partition(self, partition: int) -> list[tuple[str, TransactionLogValue | None]]:
        entries: list[tuple[str, TransactionLogValue | None]] = []
        if self.broker.replicas.get(TRANSACTION_STATE_TOPIC, partition) is None:
            return entries
        for chunk in self.broker.replicas.read_all(TRANSACTION_STATE_TOPIC, partition):
            for batch in iter_record_batches(chunk):
                if batch.is_control:
                    continue
                for record in batch.records:
                    if record.key is not None:
                        entries.append((decode_key(record.key), decode_value(record.value)))
        return entries

    # -- Produce: the KIP-890 verification ------------------------------------------------------------

    def verify_produce(self, transactional_id: str, topic: str, partition: int, producer_id: int,
                       producer_epoch: int, implicit_add: bool, abortable: bool, now_ms: int) -> ErrorCode:
        """Before a transactional batch is appended (or transactional offsets written): is the
        partition in the producer's open transaction?  Skipped when the partition already holds an
        open transaction of that producer and epoch (Kafka asks only then).  With ``implicit_add``
        (Produce v12+, TxnOffsetCommit v5+: transaction version 2, KIP-890 part 2) the partition
        is added instead.  The coordinator's answer becomes what a producer understands (Kafka's
        ``AddPartitionsToTxnManager``, checked against Kafka 4.3.1): PRODUCER_FENCED ->
        INVALID_PRODUCER_EPOCH; INVALID_TXN_STATE -> TRANSACTION_ABORTABLE when the client knows
        it (``abortable``: Produce v11, TxnOffsetCommit v4); a coordinator that cannot answer now
        -> the retriable NOT_ENOUGH_REPLICAS."""
        if self.needs_remote_verification(transactional_id, topic, partition, producer_id, producer_epoch):
            return Errors.NONE  # the caller asks the coordinator's node (verify_remotely)
        if self._in_open_transaction(topic, partition, producer_id, producer_epoch):
            return Errors.NONE
        wanted = (topic, partition)
        if implicit_add:
            error = self.coordinator.add_partitions(transactional_id, producer_id, producer_epoch, [wanted], now_ms)
        else:
            error = self.coordinator.verify_partitions(transactional_id, producer_id, producer_epoch, [wanted])[wanted]
        return _verification_error(error, abortable)

    def _in_open_transaction(self, topic: str, partition: int, producer_id: int, producer_epoch: int) -> bool:
        """Kafka asks the coordinator only when the partition has no open transaction of the producer."""
        replica = self.broker.replicas.get(topic, partition)
        entry = replica.log.producer_state.last_entry(producer_id) if replica is not None else None
        return entry is not None and entry.current_txn_first_offset is not None \
            and entry.producer_epoch == producer_epoch

    def needs_remote_verification(self, transactional_id: str, topic: str, partition: int, producer_id: int,
                                  producer_epoch: int) -> bool:
        return self.coordinator_error(transactional_id) is not Errors.NONE \
            and not self._in_open_transaction(topic, partition, producer_id, producer_epoch)

    def verify_remotely(self, transactional_id: str, topic: str, partition: int, producer_id: int,
                        producer_epoch: int, implicit_add: bool, abortable: bool, now_ms: int) -> Pending:
        """Ask the node coordinating ``transactional_id`` (Kafka's ``AddPartitionsToTxnManager``): a
        Pending completed with the ErrorCode the Produce is to answer (NONE: append)."""
        from ...client.outbox import OutboundRequest

        verdict = Pending()
        coordinator = self.leader_of(TRANSACTION_STATE_TOPIC, self.coordinator.partition_for(transactional_id))
        if coordinator is None:
            verdict.complete(Errors.NOT_ENOUGH_REPLICAS)
            return verdict
        request = ADD_PARTITIONS.request
        body = request.make(transactions=[request.struct("AddPartitionsToTxnTransaction").make(
            transactional_id=transactional_id, producer_id=producer_id, producer_epoch=producer_epoch,
            verify_only=not implicit_add, topics=[request.struct("AddPartitionsToTxnTopic").make(
                name=topic, partitions=[partition])])])

        def answered(response: Data, now: int) -> None:
            error = lookup(response.error_code)
            for result in response.results_by_transaction:
                for topic_result in result.topic_results:
                    for answer in topic_result.results_by_partition:
                        if error is Errors.NONE:
                            error = lookup(answer.partition_error_code)
            verdict.complete(_verification_error(error, abortable))

        def failed(problem: Exception, now: int) -> None:
            verdict.complete(Errors.NOT_ENOUGH_REPLICAS)

        self.broker.txn_outbox.send(OutboundRequest(coordinator, ADD_PARTITIONS.key, body, answered, failed,
                                                version=ADD_PARTITIONS_FROM_BROKER_VERSION if not implicit_add
                                                else None))
        return verdict

    # -- markers --------------------------------------------------------------------------------------

    def write_marker(self, topic: str, partition: int, producer_id: int, producer_epoch: int, commit: bool,
                     coordinator_epoch: int, now_ms: int) -> ErrorCode:
        """Append one COMMIT/ABORT marker to a partition this broker leads (WriteTxnMarkers)."""
        kind = ControlRecordType.COMMIT if commit else ControlRecordType.ABORT
        batch = build_end_transaction_marker_batch(EndTransactionMarker(kind, coordinator_epoch),
                                                   producer_id=producer_id, producer_epoch=producer_epoch,
                                                   timestamp=now_ms)
        try:
            self.broker.replicas.append_internal(topic, partition, batch, now_ms)
        except KafkaError as refused:
            return refused.error
        if topic == OFFSETS_TOPIC:
            self.broker.groups.complete_transaction(partition, producer_id, commit)
        return Errors.NONE

    # -- time -----------------------------------------------------------------------------------------

    def poll(self, now_ms: int) -> None:
        if self.markers.jobs and now_ms >= self._next_marker_retry:
            self._next_marker_retry = now_ms + MARKER_RETRY_BACKOFF_MS
            self.markers.retry(now_ms)
        if now_ms >= self._next_timeout_check:
            self._next_timeout_check = now_ms + self._timeout_check_interval_ms
            for transactional_id in self.coordinator.abort_timed_out_transactions(now_ms):
                log.info("aborted the timed-out transaction of %r", transactional_id)
        if now_ms >= self._next_expiry_check:
            self._next_expiry_check = now_ms + self._expiry_check_interval_ms
            for transactional_id in self.coordinator.expire_transactional_ids(now_ms, self._id_expiration_ms):
                log.info("transactional id %r expired", transactional_id)

    def next_deadline(self) -> int:
        deadline = min(self._next_timeout_check, self._next_expiry_check)
        if self.markers.jobs:
            return min(deadline, self._next_marker_retry)
        return deadline
