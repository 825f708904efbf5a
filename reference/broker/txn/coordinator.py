"""The transaction coordinator's rules: sans-IO, one transactional id at a time.

Theory of operation
-------------------
Mirrors Kafka's ``TransactionCoordinator`` and ``TransactionMetadata`` (Kafka 4.x, transaction
version 2 for clients that speak EndTxn v5+, version 1 below).  A transactional producer talks to
the coordinator of its transactional id -- the leader of partition
``abs(java_hash(transactional.id)) % transaction.state.log.num.partitions`` of
``__transaction_state``.  Every change of an id's metadata is first written to that partition
(:class:`TransactionLogWriter`); only a write the log took changes memory, so memory never runs
ahead of the log (in a cluster the answer also waits for the write to be replicated, see
:mod:`.service`; Kafka changes memory only then, refka at the append -- a leader that loses the
partition before that drops the id's memory anyway).  Markers go to the partition leaders
through a :class:`MarkerWriter`.

The requests, in the order a producer sends them, and the rules kept (tests carry these names):

1. **InitProducerId** (transactional id set).  An unknown id gets a new producer id at epoch 0.
   Otherwise, by state: PrepareCommit/PrepareAbort -> CONCURRENT_TRANSACTIONS (retry later);
   Empty/Complete* -> the epoch is bumped (fencing an older instance); Ongoing -> the open
   transaction is *fenced*: PrepareEpochFence bumps the epoch, the transaction is aborted with it,
   and the answer is CONCURRENT_TRANSACTIONS so that the new instance retries and gets the next
   epoch.  With a producer id and epoch in the request (KIP-360, v3+): they must be the current
   pair (bump) or the previous pair (a retry: the current pair is answered), else
   PRODUCER_FENCED.  An epoch that would overflow starts a new producer id at epoch 0.
   ``transaction_timeout_ms`` must be in ``(0, transaction.max.timeout.ms]`` else
   INVALID_TRANSACTION_TIMEOUT.
2. **AddPartitionsToTxn / AddOffsetsToTxn.**  Unknown id or another producer id:
   INVALID_PRODUCER_ID_MAPPING; another epoch: PRODUCER_FENCED; PrepareCommit/PrepareAbort:
   CONCURRENT_TRANSACTIONS; partitions all in the open transaction: nothing written; else the
   state becomes Ongoing with the partitions added (a new transaction starts its clock).
3. **EndTxn.**  The same identity checks, then by state: Ongoing -> PrepareCommit/PrepareAbort
   (written), markers, then CompleteCommit/CompleteAbort (written); a retry of the decision
   already taken: NONE once complete, CONCURRENT_TRANSACTIONS while preparing; the other
   decision: INVALID_TXN_STATE; Empty: INVALID_TXN_STATE (transaction version 2 may abort it).
   Transaction version 2 (KIP-890 part 2): the prepare bumps the epoch, the markers carry the new
   epoch (so a late write of the finished transaction is refused by the partition), and the
   answer carries the new producer id and epoch; a retry with the epoch just replaced is
   recognised and answered again.
4. **Verification** (KIP-890 part 1, AddPartitionsToTxn v4 ``VerifyOnly``): a partition leader
   asks before appending a transactional batch whether its partition is in the producer's open
   transaction; INVALID_TXN_STATE if not, so a stray or late write never opens a transaction the
   coordinator does not know.
5. **Timeouts.**  :meth:`TransactionCoordinator.abort_timed_out_transactions` fences and aborts
   every Ongoing transaction older than its ``transaction_timeout_ms``;
   :meth:`TransactionCoordinator.expire_transactional_ids` removes ids idle for
   ``transactional.id.expiration.ms`` (Dead, then a tombstone in the log).

Markers are asynchronous, as in Kafka: EndTxn is answered once the Prepare state is written, and
the Complete state is written when the :class:`MarkerWriter` reports every marker written; in
between, the id answers CONCURRENT_TRANSACTIONS.  On one node the markers are local appends and
complete before EndTxn returns.

Invariants (``check_valid``): every state change follows :data:`.state.VALID_PREVIOUS_STATES`;
Empty and Complete* hold no partitions; Ongoing holds at least one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Protocol

from reference.errors import ErrorCode, Errors, KafkaError

from ..group.records import partition_for
from .records import NO_PRODUCER_ID, TransactionLogValue
from .state import COMPLETE_STATES, PREPARE_STATES, TransactionState, check_transition

NO_PRODUCER_EPOCH = -1
MAX_EPOCH = 32767  # Short.MAX_VALUE
TRANSACTION_VERSION_2 = 2  # clients speaking EndTxn v5+

S = TransactionState
TopicPartition = tuple[str, int]


@dataclass
class TransactionMetadata:
    """What the coordinator knows of one transactional id (Kafka's ``TransactionMetadata``)."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TransactionState = S.EMPTY
    partitions: set[TopicPartition] = field(default_factory=set)
    start_timestamp_ms: int = -1
    last_update_timestamp_ms: int = -1
    # The producer id of the last transaction: the producer id itself, or the one before a rotation
    # (epoch exhausted).  Kafka 4.3.1 writes it in every record (tagged field 0).
    previous_producer_id: int = NO_PRODUCER_ID
    next_producer_id: int = NO_PRODUCER_ID  # set between a KIP-890 rotation's prepare and its completion
    last_producer_epoch: int = NO_PRODUCER_EPOCH
    client_transaction_version: int = 0

    def to_value(self) -> TransactionLogValue:
        partitions: dict[str, list[int]] = {}
        for topic, partition in sorted(self.partitions):
            partitions.setdefault(topic, []).append(partition)
        return TransactionLogValue(
            producer_id=self.producer_id, producer_epoch=self.producer_epoch, transaction_timeout_ms=self.timeout_ms,
            state=self.state, partitions=partitions, last_update_timestamp_ms=self.last_update_timestamp_ms,
            start_timestamp_ms=self.start_timestamp_ms, previous_producer_id=self.previous_producer_id,
            next_producer_id=self.next_producer_id, client_transaction_version=self.client_transaction_version)

    @classmethod
    def from_value(cls, transactional_id: str, value: TransactionLogValue) -> TransactionMetadata:
        return cls(transactional_id, value.producer_id, value.producer_epoch, value.transaction_timeout_ms,
                   value.state, {(topic, p) for topic, ids in value.partitions.items() for p in ids},
                   value.start_timestamp_ms, value.last_update_timestamp_ms, value.previous_producer_id,
                   value.next_producer_id, NO_PRODUCER_EPOCH, value.client_transaction_version)

    def producer_id_and_epoch(self) -> tuple[int, int]:
        return self.producer_id, self.producer_epoch

    @property
    def epoch_exhausted(self) -> bool:
        """Kafka keeps the last epoch for the KIP-890 bump at the end of a transaction."""
        return self.producer_epoch >= MAX_EPOCH - 1

    def transition(self, new_state: TransactionState, now_ms: int, **changes: object) -> TransactionMetadata:
        """A copy in ``new_state`` (checked against the table) with ``changes`` applied."""
        check_transition(self.transactional_id, self.state, new_state)
        copy = replace(self, partitions=set(self.partitions), state=new_state, last_update_timestamp_ms=now_ms)
        for name, value in changes.items():
            setattr(copy, name, value)
        return copy


class TransactionLogWriter(Protocol):
    """Writes one id's new metadata (None: a tombstone) to its ``__transaction_state`` partition."""

    def write(self, transactional_id: str, metadata: TransactionMetadata | None, now_ms: int) -> ErrorCode: ...


class MarkerWriter(Protocol):
    """Writes the COMMIT/ABORT marker of a transaction to each of its partitions (WriteTxnMarkers)."""

    def write_markers(self, producer_id: int, producer_epoch: int, commit: bool, coordinator_epoch: int,
                      partitions: Iterable[TopicPartition], now_ms: int,
                      on_written: Callable[[int], None]) -> None:
        """Call ``on_written(now_ms)`` once every partition has the marker (or no longer exists)."""
        ...


class ProducerIds(Protocol):
    def next_producer_id(self) -> int: ...


@dataclass(frozen=True)
class InitProducerIdResult:
    error: ErrorCode
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH


@dataclass(frozen=True)
class EndTxnResult:
    error: ErrorCode
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH


@dataclass(frozen=True)
class TransactionCoordinatorConfig:
    transaction_max_timeout_ms: int = 900_000  # transaction.max.timeout.ms
    num_partitions: int = 50  # transaction.state.log.num.partitions
    offsets_topic_num_partitions: int = 50  # where a group's offsets live (AddOffsetsToTxn)


class TransactionCoordinator:
    """The transaction coordinator of the ``__transaction_state`` partitions this broker leads."""

    def __init__(self, config: TransactionCoordinatorConfig, writer: TransactionLogWriter, markers: MarkerWriter,
                 producer_ids: ProducerIds) -> None:
        self.config = config
        self.writer = writer
        self.markers = markers
        self.producer_ids = producer_ids
        self.transactions: dict[str, TransactionMetadata] = {}
        self.coordinator_epochs: dict[int, int] = {}  # __transaction_state partition -> its leader epoch

    def partition_for(self, transactional_id: str) -> int:
        return partition_for(transactional_id, self.config.num_partitions)

    def coordinator_epoch(self, transactional_id: str) -> int:
        return self.coordinator_epochs.get(self.partition_for(transactional_id), 0)

    # -- loading -------------------------------------------------------------------------------------

    def load(self, entries: Iterable[tuple[str, TransactionLogValue | None]], now_ms: int) -> None:
        """Replay ``__transaction_state`` records in log order; then finish what a crash left in a
        Prepare state (its markers are written again: a marker twice is harmless, none is not)."""
        for transactional_id, value in entries:
            if value is None:
                self.transactions.pop(transactional_id, None)
            else:
                self.transactions[transactional_id] = TransactionMetadata.from_value(transactional_id, value)
        for metadata in list(self.transactions.values()):
            if metadata.state in PREPARE_STATES:
                self._complete(metadata, metadata.state is S.PREPARE_COMMIT, now_ms)

    # -- InitProducerId (rule 1) -------------------------------------------------------------------

    def init_producer_id(self, transactional_id: str, timeout_ms: int, producer_id: int, producer_epoch: int,
                         now_ms: int) -> InitProducerIdResult:
        try:
            return self._init_producer_id(transactional_id, timeout_ms, producer_id, producer_epoch, now_ms)
        except KafkaError as unavailable:  # no producer id block yet (a cluster's controller-fed ids)
            return InitProducerIdResult(unavailable.error)

    def _init_producer_id(self, transactional_id: str, timeout_ms: int, producer_id: int, producer_epoch: int,
                          now_ms: int) -> InitProducerIdResult:
        if transactional_id == "":
            return InitProducerIdResult(Errors.INVALID_REQUEST)
        if not 0 < timeout_ms <= self.config.transaction_max_timeout_ms:
            return InitProducerIdResult(Errors.INVALID_TRANSACTION_TIMEOUT)
        metadata = self.transactions.get(transactional_id)
        if metadata is None:
            new_id = self.producer_ids.next_producer_id()
            created = TransactionMetadata(transactional_id, new_id, 0, timeout_ms, S.EMPTY, start_timestamp_ms=-1,
                                          last_update_timestamp_ms=now_ms, previous_producer_id=new_id)
            return self._answer_init(created, now_ms)
        if producer_id != NO_PRODUCER_ID and not self._is_current_or_previous(metadata, producer_id, producer_epoch):
            return InitProducerIdResult(Errors.PRODUCER_FENCED)
        if metadata.state in PREPARE_STATES or metadata.state is S.PREPARE_EPOCH_FENCE:
            return InitProducerIdResult(Errors.CONCURRENT_TRANSACTIONS)
        if metadata.state is S.ONGOING:
            self._fence_and_abort(metadata, now_ms)
            return InitProducerIdResult(Errors.CONCURRENT_TRANSACTIONS)
        if metadata.state is S.DEAD:
            return InitProducerIdResult(Errors.CONCURRENT_TRANSACTIONS)
        if producer_id != NO_PRODUCER_ID and (producer_id, producer_epoch) != (metadata.producer_id,
                                                                              metadata.producer_epoch):
            return InitProducerIdResult(Errors.NONE, metadata.producer_id, metadata.producer_epoch)  # a retry
        return self._answer_init(self._bumped(metadata, S.EMPTY, timeout_ms, now_ms), now_ms)

    def _is_current_or_previous(self, metadata: TransactionMetadata, producer_id: int, epoch: int) -> bool:
        """KIP-360: the pair the producer last got, or the one before it (its bump's answer was lost)."""
        if (producer_id, epoch) == (metadata.producer_id, metadata.producer_epoch):
            return True
        if producer_id == metadata.producer_id and epoch == metadata.last_producer_epoch:
            return True
        rotated = metadata.previous_producer_id not in (NO_PRODUCER_ID, metadata.producer_id)
        return rotated and producer_id == metadata.previous_producer_id \
            and metadata.state in (S.EMPTY, *COMPLETE_STATES) and epoch != NO_PRODUCER_EPOCH

    def _bumped(self, metadata: TransactionMetadata, state: TransactionState, timeout_ms: int,
                now_ms: int) -> TransactionMetadata:
        """The next epoch (a new producer id at epoch 0 when the epoch is exhausted)."""
        if metadata.epoch_exhausted:
            new_id = self.producer_ids.next_producer_id()
            return metadata.transition(state, now_ms, producer_id=new_id,
                                       producer_epoch=0, previous_producer_id=metadata.producer_id,
                                       last_producer_epoch=NO_PRODUCER_EPOCH, timeout_ms=timeout_ms,
                                       partitions=set(), start_timestamp_ms=-1)
        return metadata.transition(state, now_ms, producer_epoch=metadata.producer_epoch + 1,
                                   last_producer_epoch=metadata.producer_epoch, timeout_ms=timeout_ms,
                                   partitions=set(), start_timestamp_ms=-1)

    def _answer_init(self, metadata: TransactionMetadata, now_ms: int) -> InitProducerIdResult:
        error = self._write(metadata, now_ms)
        if error is not Errors.NONE:
            return InitProducerIdResult(error)
        return InitProducerIdResult(Errors.NONE, metadata.producer_id, metadata.producer_epoch)

    def _fence_and_abort(self, metadata: TransactionMetadata, now_ms: int) -> None:
        """PrepareEpochFence (epoch + 1), then abort the open transaction with the new epoch."""
        fenced_epoch = metadata.producer_epoch + 1 if not metadata.epoch_exhausted else metadata.producer_epoch
        fence = metadata.transition(S.PREPARE_EPOCH_FENCE, now_ms, producer_epoch=fenced_epoch,
                                    last_producer_epoch=NO_PRODUCER_EPOCH)
        self.transactions[metadata.transactional_id] = fence  # Kafka keeps the fence in memory only
        prepare = fence.transition(S.PREPARE_ABORT, now_ms)
        if self._write(prepare, now_ms) is Errors.NONE:
            self._complete(prepare, commit=False, now_ms=now_ms)
        else:
            self.transactions[metadata.transactional_id] = metadata

    # -- AddPartitionsToTxn / AddOffsetsToTxn (rule 2) ----------------------------------------------

    def add_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                       partitions: Iterable[TopicPartition], now_ms: int) -> ErrorCode:
        wanted = set(partitions)
        metadata, error = self._identified(transactional_id, producer_id, producer_epoch)
        if metadata is None:
            return error
        if metadata.state in PREPARE_STATES or metadata.state is S.PREPARE_EPOCH_FENCE:
            return Errors.CONCURRENT_TRANSACTIONS
        if metadata.state is S.DEAD:
            return Errors.INVALID_TXN_STATE
        if metadata.state is S.ONGOING and wanted <= metadata.partitions:
            return Errors.NONE
        start = metadata.start_timestamp_ms if metadata.state is S.ONGOING else now_ms
        ongoing = metadata.transition(S.ONGOING, now_ms, partitions=metadata.partitions | wanted,
                                      start_timestamp_ms=start)
        return self._write(ongoing, now_ms)

    def add_offsets(self, transactional_id: str, producer_id: int, producer_epoch: int, group_id: str,
                    now_ms: int) -> ErrorCode:
        """AddOffsetsToTxn: the group's ``__consumer_offsets`` partition joins the transaction."""
        from ..group_service import OFFSETS_TOPIC

        partition = partition_for(group_id, self.config.offsets_topic_num_partitions)
        return self.add_partitions(transactional_id, producer_id, producer_epoch, [(OFFSETS_TOPIC, partition)],
                                   now_ms)

    def verify_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                          partitions: Iterable[TopicPartition]) -> dict[TopicPartition, ErrorCode]:
        """Rule 4 (VerifyOnly): for each partition, NONE if it is in the open transaction."""
        wanted = list(partitions)
        metadata, error = self._identified(transactional_id, producer_id, producer_epoch)
        if metadata is None:
            return dict.fromkeys(wanted, error)
        if metadata.state in PREPARE_STATES or metadata.state is S.PREPARE_EPOCH_FENCE:
            return dict.fromkeys(wanted, Errors.CONCURRENT_TRANSACTIONS)
        return {tp: Errors.NONE if metadata.state is S.ONGOING and tp in metadata.partitions
                else Errors.INVALID_TXN_STATE for tp in wanted}

    def _identified(self, transactional_id: str, producer_id: int,
                    producer_epoch: int) -> tuple[TransactionMetadata | None, ErrorCode]:
        if not transactional_id:
            return None, Errors.INVALID_REQUEST
        metadata = self.transactions.get(transactional_id)
        if metadata is None or metadata.producer_id != producer_id:
            return None, Errors.INVALID_PRODUCER_ID_MAPPING
        if metadata.producer_epoch != producer_epoch:
            return None, Errors.PRODUCER_FENCED
        return metadata, Errors.NONE

    # -- EndTxn (rule 3) ----------------------------------------------------------------------------

    def end_transaction(self, transactional_id: str, producer_id: int, producer_epoch: int, commit: bool,
                        client_transaction_version: int, now_ms: int) -> EndTxnResult:
        try:
            return self._end_transaction(transactional_id, producer_id, producer_epoch, commit,
                                         client_transaction_version, now_ms)
        except KafkaError as unavailable:  # no producer id block for a rotation yet
            return EndTxnResult(unavailable.error)

    def _end_transaction(self, transactional_id: str, producer_id: int, producer_epoch: int, commit: bool,
                         client_transaction_version: int, now_ms: int) -> EndTxnResult:
        if not transactional_id:
            return EndTxnResult(Errors.INVALID_REQUEST)
        metadata = self.transactions.get(transactional_id)
        if metadata is None:
            return EndTxnResult(Errors.INVALID_PRODUCER_ID_MAPPING)
        version_2 = client_transaction_version >= TRANSACTION_VERSION_2
        # Transaction version 2: the epoch this transaction's EndTxn replaced (a retry, or a late EndTxn).
        replaced_epoch = version_2 and producer_epoch == metadata.last_producer_epoch != NO_PRODUCER_EPOCH \
            and producer_id in (metadata.producer_id, metadata.previous_producer_id)
        if metadata.producer_id != producer_id and not replaced_epoch:
            return EndTxnResult(Errors.INVALID_PRODUCER_ID_MAPPING)
        if metadata.producer_epoch != producer_epoch and not replaced_epoch:
            return EndTxnResult(Errors.PRODUCER_FENCED)
        decided = S.COMPLETE_COMMIT if commit else S.COMPLETE_ABORT
        preparing = S.PREPARE_COMMIT if commit else S.PREPARE_ABORT
        state = metadata.state
        if state is decided:
            return EndTxnResult(Errors.NONE, metadata.producer_id, metadata.producer_epoch)
        if state is preparing or state is S.PREPARE_EPOCH_FENCE:
            return EndTxnResult(Errors.CONCURRENT_TRANSACTIONS)
        if replaced_epoch:
            return EndTxnResult(Errors.INVALID_TXN_STATE)  # the other decision was taken with that epoch
        if state is S.ONGOING or (version_2 and not commit and state in (S.EMPTY, *COMPLETE_STATES)):
            return self._end(metadata, commit, version_2, client_transaction_version, now_ms)
        return EndTxnResult(Errors.INVALID_TXN_STATE)

    def _end(self, metadata: TransactionMetadata, commit: bool, version_2: bool, client_transaction_version: int,
             now_ms: int) -> EndTxnResult:
        preparing = S.PREPARE_COMMIT if commit else S.PREPARE_ABORT
        changes: dict[str, object] = {"client_transaction_version": client_transaction_version}
        if version_2:  # KIP-890: a new epoch for every transaction, carried by its markers
            if metadata.epoch_exhausted:
                changes.update(next_producer_id=self.producer_ids.next_producer_id())
            else:
                changes.update(producer_epoch=metadata.producer_epoch + 1, last_producer_epoch=metadata.producer_epoch)
        prepare = metadata.transition(preparing, now_ms, **changes)
        error = self._write(prepare, now_ms)
        if error is not Errors.NONE:
            return EndTxnResult(error)
        self._complete(prepare, commit, now_ms)
        if prepare.next_producer_id != NO_PRODUCER_ID:  # a rotation: the next transaction's pair
            return EndTxnResult(Errors.NONE, prepare.next_producer_id, 0)
        return EndTxnResult(Errors.NONE, prepare.producer_id, prepare.producer_epoch)

    def _complete(self, prepared: TransactionMetadata, commit: bool, now_ms: int) -> None:
        """Send the markers; once every partition has its marker, write CompleteCommit/CompleteAbort
        (:meth:`_markers_written`).  On one node that happens before this returns."""
        self.markers.write_markers(prepared.producer_id, prepared.producer_epoch, commit,
                                   self.coordinator_epoch(prepared.transactional_id), sorted(prepared.partitions),
                                   now_ms, lambda at: self._markers_written(prepared, commit, at))

    def _markers_written(self, prepared: TransactionMetadata, commit: bool, now_ms: int) -> None:
        """The Complete state (a rotated producer id takes over) -- unless the id moved on meanwhile
        (unloaded, or loaded again): then the newer metadata decides."""
        if self.transactions.get(prepared.transactional_id) is not prepared:
            return
        changes: dict[str, object] = {"partitions": set()}
        if prepared.next_producer_id != NO_PRODUCER_ID:  # the rotation prepared by _end
            changes.update(previous_producer_id=prepared.producer_id, producer_id=prepared.next_producer_id,
                           next_producer_id=NO_PRODUCER_ID, producer_epoch=0, last_producer_epoch=NO_PRODUCER_EPOCH)
        complete = prepared.transition(S.COMPLETE_COMMIT if commit else S.COMPLETE_ABORT, now_ms, **changes)
        self._write(complete, now_ms)  # if refused it stays prepared; loading the log again completes it

    # -- timeouts (rule 5) ----------------------------------------------------------------------------

    def abort_timed_out_transactions(self, now_ms: int) -> list[str]:
        """Fence and abort every Ongoing transaction older than its timeout; their ids."""
        expired = [m for m in self.transactions.values()
                   if m.state is S.ONGOING and m.start_timestamp_ms + m.timeout_ms < now_ms]
        for metadata in expired:
            self._fence_and_abort(metadata, now_ms)
        return [m.transactional_id for m in expired]

    def expire_transactional_ids(self, now_ms: int, expiration_ms: int) -> list[str]:
        """``transactional.id.expiration.ms``: an id idle that long with no transaction open
        (Empty or Complete*) becomes Dead and its record is deleted (a tombstone); its ids."""
        expired = [m for m in self.transactions.values()
                   if m.state in (S.EMPTY, *COMPLETE_STATES) and m.last_update_timestamp_ms + expiration_ms <= now_ms]
        removed = []
        for metadata in expired:
            check_transition(metadata.transactional_id, metadata.state, S.DEAD)
            if self.writer.write(metadata.transactional_id, None, now_ms) is Errors.NONE:
                del self.transactions[metadata.transactional_id]
                removed.append(metadata.transactional_id)
        return removed

    # -- writing --------------------------------------------------------------------------------------

    def _write(self, metadata: TransactionMetadata, now_ms: int) -> ErrorCode:
        """Write, and only if the log took it, make it the id's metadata (memory follows the log)."""
        error = self.writer.write(metadata.transactional_id, metadata, now_ms)
        if error is Errors.NONE:
            self.transactions[metadata.transactional_id] = metadata
        return error

    # -- invariants -----------------------------------------------------------------------------------

    def check_valid(self) -> None:
        for transactional_id, metadata in self.transactions.items():
            assert metadata.transactional_id == transactional_id
            if metadata.state in (S.EMPTY, *COMPLETE_STATES):
                assert not metadata.partitions, f"{transactional_id}: {metadata.state} holds no partitions"
            if metadata.state is S.ONGOING:
                assert metadata.partitions, f"{transactional_id}: an ongoing transaction has partitions"
            assert 0 <= metadata.producer_epoch <= MAX_EPOCH
