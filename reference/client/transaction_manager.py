"""The transactional producer's state machine, without I/O (Java's ``TransactionManager``).

Theory of operation
-------------------
A producer with ``transactional.id`` writes to many partitions (and commits consumed offsets) so
that all of it becomes visible to ``read_committed`` consumers at once, or never (KIP-98).  The
partition leaders keep the records; one broker, the *transaction coordinator* of the id, keeps
the transaction's state in ``__transaction_state`` and writes the commit or abort markers.
:class:`TransactionManager` is the client's half of that conversation.  It never touches a socket
or a clock: it puts requests in the producer core's :class:`~reference.client.outbox.Outbox`,
reads the answers in callbacks, and is told the time in :meth:`TransactionManager.poll`.

The requests, in the order a transaction needs them (one in flight at a time, like Java's
``pendingRequests`` queue, so their effects reach the coordinator in order):

1. **FindCoordinator** with ``key_type=1`` (transaction) and the transactional id: which broker
   leads the id's partition of ``__transaction_state``.  NOT_COORDINATOR (16) or
   COORDINATOR_NOT_AVAILABLE (15) in any later answer, or a lost connection, forgets it and
   asks again.
2. **InitProducerId** (``init_transactions``) with the transactional id and
   ``transaction.timeout.ms``: the coordinator maps the id to one producer id, bumps its epoch
   (fencing every older instance of the same id, whose requests now fail with PRODUCER_FENCED)
   and aborts the transaction an older instance left open.
3. **AddPartitionsToTxn** (v3, the client's shape) before the first batch to each partition new
   to the transaction, so the coordinator knows where to write the markers.
4. **AddOffsetsToTxn** + **TxnOffsetCommit** (``send_offsets_to_transaction``): the first adds
   the group's ``__consumer_offsets`` partition to the transaction (to the transaction
   coordinator); the second, to the *group* coordinator (FindCoordinator ``key_type=0``), writes
   the offsets, which stay pending until the transaction's marker arrives.
5. **EndTxn** (``commit_transaction`` / ``abort_transaction``): the coordinator writes
   PrepareCommit/PrepareAbort, then the markers, then CompleteCommit/CompleteAbort.

**Transaction version.**  refka's producer speaks transaction version 1 (KIP-98 as amended by
KIP-890 part 1) against every broker, whatever ``transaction.version`` the broker's ApiVersions
answer finalizes: explicit AddPartitionsToTxn v3 and AddOffsetsToTxn, Produce v11,
TxnOffsetCommit v4 and EndTxn v4.  Those are the highest versions at which a broker knows
the client does *not* rely on transaction version 2 (KIP-890 part 2: Produce v12 adds the
partition implicitly, TxnOffsetCommit v5 the group, EndTxn v5 bumps the epoch per transaction).
Version 1 is the one whose every step is visible on the wire, which is what this module is for;
a broker with version 2 finalized serves it too (Kafka 4.x keeps version 1 for clients that ask
for it), and its partition leaders still verify each transactional write (KIP-890 part 1).

The states (:class:`TransactionState`, Java's names) move only by :data:`TRANSITIONS`, a table of
state -> event -> next state; an event the table has no entry for raises
:class:`~reference.client.exceptions.TransactionStateError` naming both.  FATAL_ERROR is
reachable from every state and left by none: the producer must be closed.

Errors, by what the producer can do about them (:func:`classify`):

* **Retriable.**  COORDINATOR_LOAD_IN_PROGRESS (14), CONCURRENT_TRANSACTIONS (51: the previous
  transaction's markers are still being written) and other retriable codes: the same request
  again after ``retry.backoff.ms``.  NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE: find the
  coordinator again first.
* **Fatal.**  PRODUCER_FENCED (90), INVALID_PRODUCER_EPOCH (47, what older coordinators answer
  for the same condition), TRANSACTIONAL_ID_AUTHORIZATION_FAILED (53), INVALID_TXN_STATE (48),
  INVALID_TRANSACTION_TIMEOUT (50), UNSUPPORTED_VERSION: every later call raises the error
  (:class:`~reference.client.exceptions.ProducerFencedError` for fencing).
* **Abortable.**  Anything else, and every record that failed for good: the transaction can only
  be aborted (ABORTABLE_ERROR); ``commit_transaction`` raises the error.  One exception to
  "fencing is fatal": INVALID_PRODUCER_EPOCH in a *Produce* answer is abortable (KIP-588), since
  it also means that the coordinator aborted this transaction for running past its timeout.

Invariants (tests carry these names):

* **No batch before its partition is added.**  :meth:`TransactionManager.is_send_to_partition_allowed`
  is true only for partitions whose AddPartitionsToTxn succeeded in the open transaction; the core
  drains nothing else.
* **EndTxn after every batch is acknowledged.**  :meth:`TransactionManager.poll` sends EndTxn only
  when the core reports no record waiting, queued or in flight, and no AddPartitionsToTxn is
  pending: a marker never overtakes a record of its own transaction.
* **Aborting sends nothing new.**  In ABORTING_TRANSACTION and ABORTABLE_ERROR the core fails the
  batches not yet sent (``TransactionAbortedError``) instead of draining them.
* **Sequences after a gap.**  A batch that failed after it was given a sequence leaves a gap the
  partition leader would refuse (OUT_OF_ORDER_SEQUENCE_NUMBER), so after the abort the producer
  bumps its epoch with InitProducerId carrying its current id and epoch (KIP-360) before it is
  READY again, and every partition's sequence starts again at 0.
* **An empty transaction costs nothing.**  Nothing added (no partition, no offsets): commit and
  abort complete without EndTxn (a coordinator would answer INVALID_TXN_STATE).
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from ..errors import ErrorCode, Errors, KafkaError, by_name, lookup
from ..protocol.apis import API_BY_KEY
from ..protocol.schema import Data
from ..records.batch import NO_PRODUCER_EPOCH, NO_PRODUCER_ID
from .cluster import ClusterMetadata, TopicPartition
from .coordinator import ConsumerGroupMetadata
from .exceptions import ProducerFencedError, TransactionStateError, error_from_code
from .outbox import OutboundRequest, Outbox

log = logging.getLogger("refka.client.transactions")

FIND_COORDINATOR_KEY = 10
INIT_PRODUCER_ID_KEY = 22
ADD_PARTITIONS_TO_TXN_KEY = 24
ADD_OFFSETS_TO_TXN_KEY = 25
END_TXN_KEY = 26
TXN_OFFSET_COMMIT_KEY = 28

# Transaction version 1 on the wire (see "Transaction version" above).
PRODUCE_VERSION = 11  # v12 would ask the leader to add the partition itself (KIP-890 part 2)
ADD_PARTITIONS_TO_TXN_VERSION = 3  # the last client shape; v4+ is the brokers' batched verification
END_TXN_VERSION = 4  # v5 bumps the epoch at the end of every transaction
TXN_OFFSET_COMMIT_VERSION = 4  # v5 adds the group to the transaction implicitly
INIT_PRODUCER_ID_VERSION = 5  # v3 brings the KIP-360 bump; v6 is two-phase commit (KIP-939)

GROUP_KEY_TYPE = 0  # FindCoordinator key_type
TRANSACTION_KEY_TYPE = 1

TransactionResult = concurrent.futures.Future[None]


class TransactionState(Enum):
    UNINITIALIZED = "UNINITIALIZED"
    INITIALIZING = "INITIALIZING"
    READY = "READY"
    IN_TRANSACTION = "IN_TRANSACTION"
    COMMITTING_TRANSACTION = "COMMITTING_TRANSACTION"
    ABORTING_TRANSACTION = "ABORTING_TRANSACTION"
    ABORTABLE_ERROR = "ABORTABLE_ERROR"
    FATAL_ERROR = "FATAL_ERROR"

    def __str__(self) -> str:
        return self.value


class Event(Enum):
    INIT_TRANSACTIONS = "init_transactions"
    PRODUCER_ID_RECEIVED = "receive a producer id"
    BEGIN_TRANSACTION = "begin_transaction"
    COMMIT_TRANSACTION = "commit_transaction"
    ABORT_TRANSACTION = "abort_transaction"
    TRANSACTION_ENDED = "end the transaction"
    BUMP_EPOCH = "bump the epoch after the abort"
    ABORTABLE_ERROR = "fail with an abortable error"
    FATAL_ERROR = "fail with a fatal error"

    def __str__(self) -> str:
        return self.value


S, E = TransactionState, Event

# state -> event -> next state.  FATAL_ERROR is in every row: a fenced producer is fenced wherever it is.
TRANSITIONS: dict[TransactionState, dict[Event, TransactionState]] = {
    S.UNINITIALIZED: {E.INIT_TRANSACTIONS: S.INITIALIZING, E.FATAL_ERROR: S.FATAL_ERROR},
    S.INITIALIZING: {E.PRODUCER_ID_RECEIVED: S.READY, E.FATAL_ERROR: S.FATAL_ERROR},
    S.READY: {E.BEGIN_TRANSACTION: S.IN_TRANSACTION, E.FATAL_ERROR: S.FATAL_ERROR},
    S.IN_TRANSACTION: {E.COMMIT_TRANSACTION: S.COMMITTING_TRANSACTION, E.ABORT_TRANSACTION: S.ABORTING_TRANSACTION,
                       E.ABORTABLE_ERROR: S.ABORTABLE_ERROR, E.FATAL_ERROR: S.FATAL_ERROR},
    S.COMMITTING_TRANSACTION: {E.TRANSACTION_ENDED: S.READY, E.ABORTABLE_ERROR: S.ABORTABLE_ERROR,
                               E.FATAL_ERROR: S.FATAL_ERROR},
    S.ABORTING_TRANSACTION: {E.TRANSACTION_ENDED: S.READY, E.BUMP_EPOCH: S.INITIALIZING,
                             E.FATAL_ERROR: S.FATAL_ERROR},
    S.ABORTABLE_ERROR: {E.ABORT_TRANSACTION: S.ABORTING_TRANSACTION, E.ABORTABLE_ERROR: S.ABORTABLE_ERROR,
                        E.FATAL_ERROR: S.FATAL_ERROR},
    S.FATAL_ERROR: {E.FATAL_ERROR: S.FATAL_ERROR},
}


class Outcome(Enum):
    """What a transactional request's error code asks the producer to do."""

    RETRY = "retry after retry.backoff.ms"
    FIND_COORDINATOR = "find the coordinator again, then retry"
    ABORTABLE = "abort the transaction"
    FATAL = "close the producer"


FENCED_ERRORS = frozenset({Errors.PRODUCER_FENCED, Errors.INVALID_PRODUCER_EPOCH})
FATAL_ERRORS = FENCED_ERRORS | {
    Errors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, Errors.INVALID_TXN_STATE, Errors.INVALID_TRANSACTION_TIMEOUT,
    Errors.UNSUPPORTED_VERSION, by_name["CLUSTER_AUTHORIZATION_FAILED"], Errors.TRANSACTIONAL_ID_NOT_FOUND}
COORDINATOR_GONE = frozenset({Errors.NOT_COORDINATOR, Errors.COORDINATOR_NOT_AVAILABLE})


def classify(error: ErrorCode) -> Outcome:
    """The outcome of a non-NONE error code in a coordinator's answer (see the module docstring)."""
    if error in COORDINATOR_GONE:
        return Outcome.FIND_COORDINATOR
    if error in FATAL_ERRORS:
        return Outcome.FATAL
    if error.retriable:  # COORDINATOR_LOAD_IN_PROGRESS, CONCURRENT_TRANSACTIONS, ...
        return Outcome.RETRY
    return Outcome.ABORTABLE


def classify_produce_error(error: Exception) -> Outcome:
    """The outcome of a record that failed for good inside a transaction."""
    if isinstance(error, KafkaError) and error.error in FATAL_ERRORS - {Errors.INVALID_PRODUCER_EPOCH}:
        return Outcome.FATAL  # INVALID_PRODUCER_EPOCH from a leader stays abortable (KIP-588)
    return Outcome.ABORTABLE


def fatal_exception(error: ErrorCode, message: str) -> KafkaError:
    if error in FENCED_ERRORS:
        return ProducerFencedError(error, message)
    exception = error_from_code(error.code, message)
    assert exception is not None
    return exception


@dataclass(eq=False)
class _OffsetCommit:
    """One ``send_offsets_to_transaction``: AddOffsetsToTxn, then TxnOffsetCommit."""

    group: ConsumerGroupMetadata
    offsets: dict[TopicPartition, int]
    result: TransactionResult
    group_added: bool = False  # AddOffsetsToTxn answered NONE


@dataclass(eq=False)
class _Ending:
    committed: bool
    result: TransactionResult
    bump_epoch: bool = False  # KIP-360: the abort must be followed by an epoch bump


@dataclass
class TransactionManager:
    """The client half of a transaction (see the module's theory of operation).

    ``on_producer_id(producer_id, epoch)`` is the core's hook: it adopts a new id and epoch and
    starts every partition's sequence at 0."""

    transactional_id: str
    transaction_timeout_ms: int
    retry_backoff_ms: int
    request_timeout_ms: int
    metadata: ClusterMetadata
    outbox: Outbox
    on_producer_id: Callable[[int, int], None]
    state: TransactionState = TransactionState.UNINITIALIZED
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH
    coordinator: int | None = None
    group_coordinators: dict[str, int] = field(default_factory=dict)
    last_error: Exception | None = None
    # The open transaction: partitions the coordinator has, partitions waiting to be added, and
    # whether anything at all was added (else EndTxn is skipped).
    partitions_in_transaction: set[TopicPartition] = field(default_factory=set)
    new_partitions: set[TopicPartition] = field(default_factory=set)
    transaction_started: bool = False
    epoch_bump_required: bool = False
    _init_result: TransactionResult | None = None
    _offset_commits: deque[_OffsetCommit] = field(default_factory=deque)
    _ending: _Ending | None = None
    _in_flight: bool = False
    _retry_at_ms: int = 0
    _lookup_attempt: int = 0

    # -- the state table -----------------------------------------------------------------------------

    def _transition(self, event: Event) -> None:
        target = TRANSITIONS[self.state].get(event)
        if target is None:
            if self.state is S.FATAL_ERROR and self.last_error is not None:
                raise self.last_error
            raise TransactionStateError(self.transactional_id, self.state, event) from self.last_error
        log.debug("transactional id %s: %s -> %s (%s)", self.transactional_id, self.state, target, event)
        self.state = target
        if target is S.READY:
            self.last_error = None  # the error ended with the transaction it doomed

    # -- the user's calls (on the producer's I/O thread) ---------------------------------------------

    def init_transactions(self) -> TransactionResult:
        """Find the coordinator and get a producer id and epoch (fencing older instances)."""
        if self.state is S.INITIALIZING and self._init_result is not None:
            return self._init_result  # a retry of a call that timed out waits for the same answer
        self._transition(E.INIT_TRANSACTIONS)
        self._init_result = concurrent.futures.Future()
        return self._init_result

    def begin_transaction(self) -> None:
        self._transition(E.BEGIN_TRANSACTION)
        self.partitions_in_transaction.clear()
        self.new_partitions.clear()
        self.transaction_started = False

    def check_send_allowed(self) -> None:
        """Raise unless a record may be sent now (Java's ``failIfNotReadyForSend``)."""
        if self.state in (S.ABORTABLE_ERROR, S.FATAL_ERROR) and self.last_error is not None:
            raise self.last_error
        if self.state is not S.IN_TRANSACTION:
            raise TransactionStateError(self.transactional_id, self.state, "send")

    def maybe_add_partition(self, tp: TopicPartition) -> None:
        """The core appended a record to ``tp``: the coordinator must know it before it is sent."""
        if self.state is S.IN_TRANSACTION and tp not in self.partitions_in_transaction:
            self.new_partitions.add(tp)

    def send_offsets_to_transaction(self, offsets: Mapping[TopicPartition, int],
                                    group: ConsumerGroupMetadata) -> TransactionResult:
        if self.state is not S.IN_TRANSACTION:
            self.check_send_allowed()  # raises: the error, or the illegal state
        result: TransactionResult = concurrent.futures.Future()
        self._offset_commits.append(_OffsetCommit(group, dict(offsets), result))
        return result

    def begin_commit(self) -> TransactionResult:
        if self.state is S.COMMITTING_TRANSACTION and self._ending is not None:
            return self._ending.result
        if self.state is S.ABORTABLE_ERROR and self.last_error is not None:
            raise self.last_error  # only abort_transaction can end this transaction
        self._transition(E.COMMIT_TRANSACTION)
        self._ending = _Ending(True, concurrent.futures.Future())
        return self._ending.result

    def begin_abort(self) -> TransactionResult:
        if self.state is S.ABORTING_TRANSACTION and self._ending is not None:
            return self._ending.result
        self._transition(E.ABORT_TRANSACTION)
        self.new_partitions.clear()
        for commit in self._offset_commits:
            _fail(commit.result, KafkaError(Errors.TRANSACTION_ABORTABLE, "the transaction is being aborted"))
        self._offset_commits.clear()
        self._ending = _Ending(False, concurrent.futures.Future(), self.epoch_bump_required)
        return self._ending.result

    # -- what the core asks ----------------------------------------------------------------------------

    def is_send_to_partition_allowed(self, tp: TopicPartition) -> bool:
        """Invariant: no batch of a partition goes out before AddPartitionsToTxn added it."""
        return self.state in (S.IN_TRANSACTION, S.COMMITTING_TRANSACTION) and tp in self.partitions_in_transaction

    @property
    def is_aborting(self) -> bool:
        """Batches not yet sent must be failed rather than drained."""
        return self.state in (S.ABORTING_TRANSACTION, S.ABORTABLE_ERROR, S.FATAL_ERROR)

    def on_batch_failed(self, error: Exception, had_sequence: bool) -> None:
        """A record of the transaction failed for good (not by our own abort)."""
        if had_sequence:
            self.epoch_bump_required = True  # the partition's sequence now has a gap
        if self.state in (S.ABORTING_TRANSACTION, S.FATAL_ERROR):
            return
        if classify_produce_error(error) is Outcome.FATAL:
            assert isinstance(error, KafkaError)
            self._fatal(fatal_exception(error.error, f"Produce for transactional id {self.transactional_id}"))
        elif self.state in (S.IN_TRANSACTION, S.COMMITTING_TRANSACTION, S.ABORTABLE_ERROR):
            self._abortable(error)

    def next_wakeup_ms(self, now_ms: int) -> int | None:
        return self._retry_at_ms if self._retry_at_ms > now_ms and self._has_work() else None

    def poll(self, now_ms: int, incomplete_batches: int) -> None:
        """Send the next transactional request, if one is due (one in flight at a time)."""
        if self._in_flight or now_ms < self._retry_at_ms or not self._has_work():
            return
        if self.state in (S.COMMITTING_TRANSACTION, S.ABORTING_TRANSACTION) and not self.transaction_started \
                and not self._offset_commits and not self.new_partitions and incomplete_batches == 0:
            self._complete_ending()  # an empty transaction: nothing for the coordinator to end
            return
        if self.coordinator is None:
            self._find_coordinator(self.transactional_id, TRANSACTION_KEY_TYPE)
            return
        if self.metadata.address(self.coordinator) is None:
            self.metadata.request_update()  # FindCoordinator named a broker the metadata has not listed yet
            return
        if self.state is S.INITIALIZING:
            self._init_producer_id()
        elif self.new_partitions and self.state in (S.IN_TRANSACTION, S.COMMITTING_TRANSACTION):
            self._add_partitions()
        elif self._offset_commits:
            self._offset_commit_step(self._offset_commits[0])
        elif self._ending is not None and incomplete_batches == 0:
            self._end_txn(self._ending)  # invariant: every batch of the transaction has its answer

    def _has_work(self) -> bool:
        return (self.state is S.INITIALIZING or bool(self.new_partitions) or bool(self._offset_commits)
                or self._ending is not None)

    # -- the requests ----------------------------------------------------------------------------------

    def _send(self, destination: int, api_key: int, body: Data, on_answer: Callable[[Data, int], None],
              version: int | None = None, group_id: str | None = None) -> None:
        self._in_flight = True

        def on_response(response: Data, now_ms: int) -> None:
            self._in_flight = False
            on_answer(response, now_ms)

        def on_failure(error: Exception, now_ms: int) -> None:
            # A lost connection or timeout: the coordinator may have moved; ask again, then retry.
            self._in_flight = False
            log.info("transactional request %d failed: %s", api_key, error)
            self._forget_coordinator(group_id)
            self._retry_at_ms = now_ms + self.retry_backoff_ms

        self.outbox.send(OutboundRequest(destination, api_key, body, on_response, on_failure, version=version,
                                         timeout_ms=self.request_timeout_ms))

    def _forget_coordinator(self, group_id: str | None) -> None:
        self._lookup_attempt += 1
        if group_id is None:
            self.coordinator = None
        else:
            self.group_coordinators.pop(group_id, None)

    def _handle_error(self, error: ErrorCode, message: str, now_ms: int, group_id: str | None = None) -> Outcome:
        """Apply an error's outcome; the caller handles ABORTABLE (what fails depends on the request)."""
        outcome = classify(error)
        log.info("transactional id %s: %s answered %s (%s)", self.transactional_id, message, error, outcome.value)
        if outcome is Outcome.FIND_COORDINATOR:
            self._forget_coordinator(group_id)
        if outcome in (Outcome.RETRY, Outcome.FIND_COORDINATOR):
            self._retry_at_ms = now_ms + self.retry_backoff_ms
        elif outcome is Outcome.FATAL:
            self._fatal(fatal_exception(error, f"{message} for transactional id {self.transactional_id}"))
        return outcome

    def _find_coordinator(self, key: str, key_type: int) -> None:
        body = API_BY_KEY[FIND_COORDINATOR_KEY].request.make(key=key, key_type=key_type, coordinator_keys=[key])

        def on_answer(response: Data, now_ms: int) -> None:
            answer = response.coordinators[0] if response.get("coordinators") else response
            error = lookup(answer.error_code)
            if error is not Errors.NONE:
                self._lookup_attempt += 1
                outcome = self._handle_error(error, "FindCoordinator", now_ms)
                if outcome is Outcome.ABORTABLE:  # e.g. GROUP_AUTHORIZATION_FAILED for the offsets' group
                    self._abortable(KafkaError(error, f"FindCoordinator for {key}"))
                return
            if key_type == TRANSACTION_KEY_TYPE:
                self.coordinator = answer.node_id
            else:
                self.group_coordinators[key] = answer.node_id
            log.info("%s %s: coordinator is node %d", "transactional id" if key_type else "group", key,
                     answer.node_id)

        self._send(self.metadata.any_node(self._lookup_attempt), FIND_COORDINATOR_KEY, body, on_answer)

    def _init_producer_id(self) -> None:
        # KIP-360: after an abortable error the current id and epoch ask for a bump, not a new id.
        body = API_BY_KEY[INIT_PRODUCER_ID_KEY].request.make(
            transactional_id=self.transactional_id, transaction_timeout_ms=self.transaction_timeout_ms,
            producer_id=self.producer_id, producer_epoch=self.producer_epoch)
        assert self.coordinator is not None

        def on_answer(response: Data, now_ms: int) -> None:
            error = lookup(response.error_code)
            if error is not Errors.NONE:
                if self._handle_error(error, "InitProducerId", now_ms) is Outcome.ABORTABLE:
                    # Nothing to abort yet: an unexpected answer here ends the producer, as in Java.
                    self._fatal(fatal_exception(error, f"InitProducerId for {self.transactional_id}"))
                return
            self.producer_id, self.producer_epoch = response.producer_id, response.producer_epoch
            self.epoch_bump_required = False
            self.on_producer_id(self.producer_id, self.producer_epoch)
            self._transition(E.PRODUCER_ID_RECEIVED)
            log.info("transactional id %s: producer id %d, epoch %d", self.transactional_id,
                     self.producer_id, self.producer_epoch)
            for result in (self._init_result, self._ending.result if self._ending else None):
                if result is not None:
                    _resolve(result)
            self._init_result = self._ending = None

        self._send(self.coordinator, INIT_PRODUCER_ID_KEY, body, on_answer, version=INIT_PRODUCER_ID_VERSION)

    def _add_partitions(self) -> None:
        adding = set(self.new_partitions)
        request = API_BY_KEY[ADD_PARTITIONS_TO_TXN_KEY].request
        topic_struct = request.struct("AddPartitionsToTxnTopic")
        by_topic: dict[str, list[int]] = {}
        for tp in sorted(adding, key=lambda tp: (tp.topic, tp.partition)):
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        body = request.make(
            v3_and_below_transactional_id=self.transactional_id, v3_and_below_producer_id=self.producer_id,
            v3_and_below_producer_epoch=self.producer_epoch,
            v3_and_below_topics=[topic_struct.make(name=t, partitions=p) for t, p in by_topic.items()])
        assert self.coordinator is not None

        def on_answer(response: Data, now_ms: int) -> None:
            errors = {TopicPartition(topic.name, p.partition_index): lookup(p.partition_error_code)
                      for topic in response.results_by_topic_v3_and_below for p in topic.results_by_partition}
            failed = {tp: e for tp, e in errors.items() if e is not Errors.NONE}
            if not failed:
                self.partitions_in_transaction |= adding
                self.new_partitions -= adding
                self.transaction_started = True
                return
            # One partition's error fails the request; the others are OPERATION_NOT_ATTEMPTED.
            tp, error = next(((tp, e) for tp, e in failed.items() if e is not Errors.OPERATION_NOT_ATTEMPTED),
                             next(iter(failed.items())))
            if self._handle_error(error, f"AddPartitionsToTxn for {tp}", now_ms) is Outcome.ABORTABLE:
                self._abortable(KafkaError(error, f"AddPartitionsToTxn for {tp}"))

        self._send(self.coordinator, ADD_PARTITIONS_TO_TXN_KEY, body, on_answer,
                   version=ADD_PARTITIONS_TO_TXN_VERSION)

    def _offset_commit_step(self, commit: _OffsetCommit) -> None:
        group_id = commit.group.group_id
        if not commit.group_added:
            self._add_offsets(commit)
        elif group_id not in self.group_coordinators:
            self._find_coordinator(group_id, GROUP_KEY_TYPE)
        elif self.metadata.address(self.group_coordinators[group_id]) is None:
            self.metadata.request_update()
        else:
            self._txn_offset_commit(commit, self.group_coordinators[group_id])

    def _add_offsets(self, commit: _OffsetCommit) -> None:
        body = API_BY_KEY[ADD_OFFSETS_TO_TXN_KEY].request.make(
            transactional_id=self.transactional_id, producer_id=self.producer_id,
            producer_epoch=self.producer_epoch, group_id=commit.group.group_id)
        assert self.coordinator is not None

        def on_answer(response: Data, now_ms: int) -> None:
            error = lookup(response.error_code)
            if error is Errors.NONE:
                commit.group_added = True
                self.transaction_started = True
                return
            if self._handle_error(error, "AddOffsetsToTxn", now_ms) is Outcome.ABORTABLE:
                self._abortable(KafkaError(error, f"AddOffsetsToTxn for group {commit.group.group_id}"))

        self._send(self.coordinator, ADD_OFFSETS_TO_TXN_KEY, body, on_answer)

    def _txn_offset_commit(self, commit: _OffsetCommit, node: int) -> None:
        request = API_BY_KEY[TXN_OFFSET_COMMIT_KEY].request
        topic_struct = request.struct("TxnOffsetCommitRequestTopic")
        partition_struct = request.struct("TxnOffsetCommitRequestPartition")
        by_topic: dict[str, list[Data]] = {}
        for tp, offset in commit.offsets.items():
            by_topic.setdefault(tp.topic, []).append(partition_struct.make(
                partition_index=tp.partition, committed_offset=offset, committed_metadata=""))
        group = commit.group
        body = request.make(
            transactional_id=self.transactional_id, group_id=group.group_id, producer_id=self.producer_id,
            producer_epoch=self.producer_epoch, generation_id=group.generation_id, member_id=group.member_id,
            group_instance_id=group.group_instance_id,
            topics=[topic_struct.make(name=t, partitions=p) for t, p in by_topic.items()])

        def on_answer(response: Data, now_ms: int) -> None:
            errors = [lookup(p.error_code) for topic in response.topics for p in topic.partitions]
            error = next((e for e in errors if e is not Errors.NONE), Errors.NONE)
            if error is Errors.NONE:
                self._offset_commits.popleft()
                _resolve(commit.result)
                return
            outcome = self._handle_error(error, "TxnOffsetCommit", now_ms, group_id=group.group_id)
            if outcome is Outcome.ABORTABLE:  # ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, ...: a zombie
                self._abortable(KafkaError(error, f"TxnOffsetCommit for group {group.group_id}"))

        self._send(node, TXN_OFFSET_COMMIT_KEY, body, on_answer, version=TXN_OFFSET_COMMIT_VERSION,
                   group_id=group.group_id)

    def _end_txn(self, ending: _Ending) -> None:
        body = API_BY_KEY[END_TXN_KEY].request.make(
            transactional_id=self.transactional_id, producer_id=self.producer_id,
            producer_epoch=self.producer_epoch, committed=ending.committed)
        assert self.coordinator is not None

        def on_answer(response: Data, now_ms: int) -> None:
            error = lookup(response.error_code)
            if error is Errors.NONE:
                self._complete_ending()
                return
            if self._handle_error(error, "EndTxn", now_ms) is Outcome.ABORTABLE:
                if ending.committed:
                    self._abortable(KafkaError(error, "EndTxn (commit)"))
                else:  # an abort the coordinator refuses for no known reason: nothing left to try
                    self._fatal(fatal_exception(error, "EndTxn (abort)"))

        self._send(self.coordinator, END_TXN_KEY, body, on_answer, version=END_TXN_VERSION)

    # -- outcomes --------------------------------------------------------------------------------------

    def _complete_ending(self) -> None:
        ending = self._ending
        assert ending is not None
        self.partitions_in_transaction.clear()
        self.transaction_started = False
        if not ending.committed and (ending.bump_epoch or self.epoch_bump_required):
            self._transition(E.BUMP_EPOCH)  # the result completes after InitProducerId
            return
        self._transition(E.TRANSACTION_ENDED)
        self._ending = None
        _resolve(ending.result)

    def _abortable(self, error: Exception) -> None:
        self.last_error = error
        self._transition(E.ABORTABLE_ERROR)
        self.new_partitions.clear()
        for commit in self._offset_commits:
            _fail(commit.result, error)
        self._offset_commits.clear()
        if self._ending is not None and self._ending.committed:
            _fail(self._ending.result, error)
            self._ending = None

    def _fatal(self, error: Exception) -> None:
        log.warning("transactional id %s: fatal error: %s", self.transactional_id, error)
        self.last_error = error
        self._transition(E.FATAL_ERROR)
        self.new_partitions.clear()
        for result in [self._init_result, self._ending.result if self._ending else None,
                       *(commit.result for commit in self._offset_commits)]:
            if result is not None:
                _fail(result, error)
        self._init_result = self._ending = None
        self._offset_commits.clear()


def _resolve(result: TransactionResult) -> None:
    if not result.done():
        result.set_result(None)


def _fail(result: TransactionResult, error: Exception) -> None:
    if not result.done():
        result.set_exception(error)
