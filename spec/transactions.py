"""Executable model of Kafka transactions: coordinator, partition leaders, a transactional producer
with retries and zombies, and read_committed readers.

Theory of operation
-------------------
One transactional id, hence one producer id, whose epoch fences old incarnations.  A client runs
up to ``transactions`` transactions (numbered t0, t1, ... over all its incarnations); transaction
``k`` writes one record to each of ``partitions`` partitions, in order, waiting for each answer,
and then commits or aborts.  The actors:

* **The transaction coordinator** keeps the transaction as data: its state (``Empty``,
  ``Ongoing``, ``PrepareCommit``, ``PrepareAbort``, ``CompleteCommit``, ``CompleteAbort``,
  ``PrepareEpochFence``), the producer epoch, the partitions in the transaction and the markers
  still to write.  Its durable state is the latest record of ``__transaction_state`` (a compacted
  topic: only the latest record per transactional id is ever reloaded); a coordinator fail-over
  (``coordinator_failovers``) reloads it and forgets the rest, and a reloaded ``Prepare*`` state
  writes all its markers again.  ``PrepareEpochFence`` is in memory only, as in Kafka: a new
  incarnation's InitProducerId or the transaction timeout (``txn_timeouts``) bumps the epoch
  there, and the abort that follows is logged as ``PrepareAbort`` with the bumped epoch.
* **Partition leaders** hold a log of data batches (one record, tagged in the model with the
  client transaction it belongs to) and control batches (COMMIT/ABORT markers), a high watermark
  (``Replicate`` lets the follower catch up with the whole log), and the producer state: the
  latest epoch seen and the first offset of the producer's ongoing transaction.  The last stable
  offset is min(high watermark, first unstable offset); a transaction stays unstable until its
  marker is below the high watermark (Kafka completes it in the producer state only then).
  A read_committed reader reads below the LSO and drops the records of aborted transactions
  (the aborted-transaction index: first offset to ABORT marker).  Readers are not actions: the
  invariants judge what any read_committed reader would be given in each state.
* **The client** sends one request at a time.  Requests travel through an unordered set, so
  each may be handled at any later time.  Up to ``late_produces`` / ``late_end_txns`` times the
  client gives up on a request (request timeout) that stays in flight: a *delayed request*.  A
  produce it gave up on makes the transaction abortable: the client aborts.  An EndTxn it gave up
  on is sent again, identical (same epoch, same result).  Up to ``restarts`` times the client
  restarts as a new incarnation (InitProducerId); the old one's requests stay in flight, a
  *zombie*.  An error other than CONCURRENT_TRANSACTIONS (which is retried) stops the client.

Variants.  ``kip-890`` (default): Kafka 4 with transaction version 2.  The client does not send
AddPartitionsToTxn; the leader, before appending a producer's first batch of a transaction
(no ongoing transaction with this epoch at the partition: Kafka's ``hasOngoingTransaction(pid,
epoch)``), asks the coordinator, which checks the epoch and adds the partition (KIP-890 part 1,
with part 2's implicit add).  Every EndTxn bumps the epoch; markers carry the new epoch, the
client learns it from the EndTxn answer, and a repeated EndTxn of the previous epoch is
recognised as a retry (KIP-890 part 2).  An EndTxn(abort) with nothing registered bumps the epoch
too (a produce of that transaction may still be on its way).  ``pre-kip-890``: transaction
version 1; the client sends AddPartitionsToTxn before producing; no verification, no bump per
transaction; a repeated EndTxn is recognised by the coordinator's state alone.  There a delayed
produce or EndTxn lands in the *next* transaction (KAFKA-17754, reported by Jepsen).

Invariants judge against ghost history: each record's client transaction, each client
transaction's outcome as the client knows it (open, committing, aborting, committed, aborted,
fenced) and, on each marker, the client transaction whose EndTxn decided it (none for an abort
the coordinator started itself).

Guards, each necessary (``refka spec mutants transactions``): ``coordinator_epoch_fencing``,
``epoch_bump_per_txn``, ``partition_verification``, ``concurrent_transactions``,
``decision_logged_before_markers``, ``lso_bounded_by_first_unstable``,
``lso_bounded_by_high_watermark``, ``read_committed_filters_aborted``.  The leader's own epoch
check (INVALID_PRODUCER_EPOCH for a batch older than the partition's producer epoch) is always on
and is not a guard: with transaction version 2 the coordinator's answer to verification refuses
every batch it would refuse, so switching it off alone cannot show it necessary.

What it leaves out: offsets in transactions (AddOffsetsToTxn/TxnOffsetCommit), partition leader
fail-over (the replication model covers truncation), sequence numbers (the idempotence model),
more than one producer, marker fencing by coordinator epoch.  The last marker and the Complete
record are one step, and the high watermark moves to the log end in one step.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from typing import NamedTuple

from reference.errors import Errors
from spec.checker import Invariant, Situation, Transition
from spec.model import BoundSpec, Guard, check_variant_and_guards, parse_bounds

NONE = "NONE"
NOBODY = -1  # a marker decided by the coordinator itself (timeout or fencing), not by an EndTxn

EMPTY, ONGOING = "Empty", "Ongoing"
PREPARE_COMMIT, PREPARE_ABORT = "PrepareCommit", "PrepareAbort"
COMPLETE_COMMIT, COMPLETE_ABORT = "CompleteCommit", "CompleteAbort"
PREPARE_EPOCH_FENCE = "PrepareEpochFence"
ENDED = (EMPTY, COMPLETE_COMMIT, COMPLETE_ABORT)  # no transaction in progress

# What the client knows about each of its transactions (the ghost history the invariants use).
OPEN, COMMITTING, ABORTING, COMMITTED, ABORTED, FENCED = (
    "open", "committing", "aborting", "committed", "aborted", "fenced")


class Data(NamedTuple):
    """A transactional batch of one record, of client transaction ``txn``."""

    txn: int
    epoch: int


class Marker(NamedTuple):
    """A control batch: COMMIT or ABORT, the epoch it carries, and (ghost) whose EndTxn decided it."""

    commit: bool
    epoch: int
    decided_by: int


class Span(NamedTuple):
    """The producer's transaction at one partition: its first offset, its marker's offset (-1 while
    open), its records' client transactions, and the marker."""

    start: int
    end: int
    txns: tuple[int, ...]
    marker: Marker | None


class Partition(NamedTuple):
    log: tuple[Data | Marker, ...] = ()
    high_watermark: int = 0
    producer_epoch: int = -1
    open_start: int = -1  # first offset of the producer's ongoing transaction here, -1: none


class Coordinator(NamedTuple):
    state: str = EMPTY
    epoch: int = 0
    last_epoch: int = -1  # the epoch before the last EndTxn bump: a request with it is a retry (v2)
    partitions: frozenset[int] = frozenset()
    pending: frozenset[int] = frozenset()  # markers not yet written (in memory only)
    decided_by: int = NOBODY  # ghost


class Request(NamedTuple):
    """A Produce to ``partition`` or an EndTxn (``partition`` -1), with the sender's epoch and
    transaction; ``live`` while the client still awaits the answer."""

    partition: int
    commit: bool
    epoch: int
    txn: int
    incarnation: int
    live: bool


class Client(NamedTuple):
    incarnation: int = 0
    epoch: int = 0
    phase: str = "idle"  # init, idle, open, must_abort, ending, stopped
    written: int = 0  # partitions written in the current transaction
    added: int = 0  # partitions added with AddPartitionsToTxn (transaction version 1)
    commit: bool = False  # the result asked for, while ending


class TransactionsState(NamedTuple):
    """One state of the whole system; ``outcomes`` and the markers' ``decided_by`` are ghosts."""

    coordinator: Coordinator
    durable: Coordinator  # the latest __transaction_state record
    partitions: tuple[Partition, ...]
    client: Client = Client()
    requests: frozenset[Request] = frozenset()
    waiting: Request | None = None  # an EndTxn decided in memory, answered once logged (mutant only)
    outcomes: tuple[str, ...] = ()  # ghost: per client transaction
    late_produces: int = 0
    late_end_txns: int = 0
    restarts: int = 0
    txn_timeouts: int = 0
    failovers: int = 0


KIP_890_GUARDS = ("epoch_bump_per_txn", "partition_verification")

GUARDS: dict[str, Guard] = {
    guard.name: guard
    for guard in (
        Guard("coordinator_epoch_fencing",
              "the coordinator refuses a request with an older epoch (PRODUCER_FENCED), "
              "except a retry of the last EndTxn (v2)",
              "a delayed EndTxn of the previous transaction decides the next one",
              {"partitions": 1, "transactions": 2, "late_produces": 0, "late_end_txns": 1, "restarts": 0,
               "txn_timeouts": 0, "coordinator_failovers": 0}),
        Guard("epoch_bump_per_txn", "every EndTxn bumps the producer epoch; markers carry the new one (KIP-890 part 2)",
              "a delayed produce of an aborted transaction lands in the next transaction",
              {"partitions": 1, "transactions": 2, "late_produces": 1, "late_end_txns": 0, "restarts": 0,
               "txn_timeouts": 0, "coordinator_failovers": 0}),
        Guard("partition_verification",
              "the leader appends a producer's first batch of a transaction only once the coordinator has "
              "accepted the partition into the ongoing transaction of that epoch (KIP-890 part 1)",
              "a delayed produce opens a transaction no coordinator knows; the next transaction joins it",
              {"partitions": 1, "transactions": 2, "late_produces": 1, "late_end_txns": 0, "restarts": 0,
               "txn_timeouts": 0, "coordinator_failovers": 0}),
        Guard("concurrent_transactions",
              "no partition joins while the previous transaction's markers are pending (CONCURRENT_TRANSACTIONS)",
              "the next transaction's record is decided by the previous transaction's marker",
              {"partitions": 1, "transactions": 2, "late_produces": 0, "late_end_txns": 0, "restarts": 0,
               "txn_timeouts": 0, "coordinator_failovers": 0}),
        Guard("decision_logged_before_markers",
              "markers are written only once PrepareCommit/PrepareAbort is in __transaction_state",
              "a coordinator fail-over forgets a commit already marked on one partition; the reloaded "
              "transaction times out and is aborted: a torn transaction",
              {"partitions": 2, "transactions": 1, "late_produces": 0, "late_end_txns": 0, "restarts": 0,
               "txn_timeouts": 1, "coordinator_failovers": 1}),
        Guard("lso_bounded_by_first_unstable",
              "the last stable offset stops at the first offset of an undecided transaction",
              "a read_committed reader sees a record of a transaction that is then aborted",
              {"partitions": 1, "transactions": 1, "late_produces": 0, "late_end_txns": 0, "restarts": 0,
               "txn_timeouts": 0, "coordinator_failovers": 0}),
        Guard("lso_bounded_by_high_watermark",
              "the LSO is min(first unstable offset, high watermark), and a transaction stays unstable until "
              "its marker is below the high watermark",
              "the LSO runs ahead of the high watermark: readers see a commit no follower holds yet",
              {"partitions": 1, "transactions": 1, "late_produces": 0, "late_end_txns": 0, "restarts": 0,
               "txn_timeouts": 0, "coordinator_failovers": 0}),
        Guard("read_committed_filters_aborted",
              "read_committed readers drop aborted transactions' records (the aborted-transaction index)",
              "an aborted record below the LSO is read",
              {"partitions": 1, "transactions": 1, "late_produces": 0, "late_end_txns": 0, "restarts": 0,
               "txn_timeouts": 0, "coordinator_failovers": 0}),
    )
}

BOUNDS = (
    BoundSpec("partitions", 2, "partitions each transaction writes one record to", minimum=1),
    BoundSpec("transactions", 2, "client transactions, over all incarnations"),
    BoundSpec("late_produces", 1, "produce requests the client gives up on that stay in flight (delayed)"),
    BoundSpec("late_end_txns", 1, "EndTxn requests the client gives up on (and sends again) that stay in flight"),
    BoundSpec("restarts", 1, "new producer incarnations (InitProducerId fences the previous one: a zombie)"),
    BoundSpec("txn_timeouts", 0, "transactions the coordinator aborts on transaction.timeout.ms"),
    BoundSpec("coordinator_failovers", 1, "transaction coordinator fail-overs (state reloaded from its log)"),
)

VARIANTS = {
    "kip-890": "Kafka 4, transaction version 2: partition verification, epoch bump per transaction",
    "pre-kip-890": "transaction version 1: the client adds partitions; no verification, no bump per transaction",
}

SITUATIONS = (
    ("late_produce_refused", "a delayed produce was refused by the partition leader"),
    ("late_end_txn_refused", "a delayed EndTxn was refused or answered as a retry, deciding nothing"),
    ("commit_visible", "a record of a transaction the client saw committed became visible to read_committed"),
    ("abort_filtered", "the aborted-transaction index hid a record below the LSO"),
    ("unstable_held_back", "the LSO held back a record below the high watermark"),
    ("concurrent_transactions", f"a request was refused with {Errors.CONCURRENT_TRANSACTIONS.name}"),
    ("zombie_fenced", "a new incarnation fenced the previous one's transaction"),
    ("markers_resumed", "a coordinator fail-over in PrepareCommit/PrepareAbort wrote the markers again"),
)


class TransactionsModel:
    name = "transactions"

    def __init__(self, variant: str = "kip-890", bounds: Mapping[str, int | str] | None = None,
                 disabled: frozenset[str] = frozenset()) -> None:
        check_variant_and_guards(variant, VARIANTS, disabled, GUARDS)
        self.variant = variant
        self.bounds = parse_bounds(BOUNDS, bounds or {})
        self.partition_count = int(self.bounds["partitions"])
        self.transactions = int(self.bounds["transactions"])
        self.max_late_produces = int(self.bounds["late_produces"])
        self.max_late_end_txns = int(self.bounds["late_end_txns"])
        self.max_restarts = int(self.bounds["restarts"])
        self.max_txn_timeouts = int(self.bounds["txn_timeouts"])
        self.max_failovers = int(self.bounds["coordinator_failovers"])
        self.disabled = disabled
        self.guards = frozenset(GUARDS) - disabled
        if variant == "pre-kip-890":
            self.guards -= set(KIP_890_GUARDS)
        self.client_adds_partitions = variant == "pre-kip-890"
        self._derived: dict[Partition, tuple[tuple[Span, ...], int, tuple[int, ...]]] = {}

    def guarded(self, name: str) -> bool:
        return name in self.guards

    def describe_bounds(self) -> str:
        text = " ".join(f"{k}={v}" for k, v in self.bounds.items())
        return text + (" without " + ",".join(sorted(self.disabled)) if self.disabled else "")

    def initial_states(self) -> Iterator[TransactionsState]:
        """The first incarnation has called InitProducerId: epoch 0, coordinator Empty."""
        yield TransactionsState(Coordinator(), Coordinator(), (Partition(),) * self.partition_count)

    # --- the coordinator's rules -----------------------------------------------------------------

    def add_partition(self, coordinator: Coordinator, partition: int,
                      epoch: int) -> tuple[str, Coordinator]:
        """AddPartitionsToTxn (from the v1 client, or from the leader's verification in v2):
        (error or NONE, coordinator after it, to be logged)."""
        if self.guarded("coordinator_epoch_fencing") and epoch != coordinator.epoch:
            return Errors.PRODUCER_FENCED.name, coordinator
        if coordinator.state in ENDED:
            return NONE, coordinator._replace(state=ONGOING, partitions=frozenset({partition}), decided_by=NOBODY)
        if coordinator.state == ONGOING:
            return NONE, coordinator._replace(partitions=coordinator.partitions | {partition})
        if self.guarded("concurrent_transactions"):
            return Errors.CONCURRENT_TRANSACTIONS.name, coordinator
        # Without the guard: the partition joins the transaction being completed.
        pending = coordinator.pending | ({partition} if coordinator.state != PREPARE_EPOCH_FENCE else set())
        return NONE, coordinator._replace(partitions=coordinator.partitions | {partition}, pending=pending)

    def end_txn(self, coordinator: Coordinator, request: Request) -> tuple[str, Coordinator, str]:
        """EndTxn: (error or NONE, coordinator after it, note).  With the bump (v2) the answer
        carries the coordinator's new epoch."""
        commit = request.commit
        prepare, complete = (PREPARE_COMMIT, COMPLETE_COMMIT) if commit else (PREPARE_ABORT, COMPLETE_ABORT)
        bump = self.guarded("epoch_bump_per_txn")
        if self.guarded("coordinator_epoch_fencing") and request.epoch != coordinator.epoch:
            if bump and request.epoch == coordinator.last_epoch and coordinator.state in (prepare, complete):
                return NONE, coordinator, "a retry of the last EndTxn: answered, nothing decided"
            return Errors.PRODUCER_FENCED.name, coordinator, ""
        if coordinator.state == ONGOING:
            epoch = coordinator.epoch + 1 if bump else coordinator.epoch
            decided = coordinator._replace(state=prepare, epoch=epoch,
                                           last_epoch=coordinator.epoch if bump else coordinator.last_epoch,
                                           pending=coordinator.partitions, decided_by=request.txn)
            return NONE, decided, f"{prepare}, epoch {epoch}, markers to {sorted(coordinator.partitions)}"
        if coordinator.state == complete and not bump:
            return NONE, coordinator, "a retry (same epoch, already complete): answered, nothing decided"
        if bump and not commit and coordinator.state in ENDED:
            # v2: nothing registered, but a produce of this transaction may be on its way: bump.
            aborted = coordinator._replace(state=COMPLETE_ABORT, epoch=coordinator.epoch + 1,
                                           last_epoch=coordinator.epoch, partitions=frozenset(), pending=frozenset(),
                                           decided_by=request.txn)
            return NONE, aborted, f"nothing to abort: {COMPLETE_ABORT}, epoch {coordinator.epoch + 1}"
        if coordinator.state in (PREPARE_COMMIT, PREPARE_ABORT, PREPARE_EPOCH_FENCE):
            return Errors.CONCURRENT_TRANSACTIONS.name, coordinator, ""
        return Errors.INVALID_TXN_STATE.name, coordinator, ""

    # --- actions ---------------------------------------------------------------------------------

    def transitions(self, state: TransactionsState) -> Iterator[Transition[TransactionsState]]:
        yield from self.add_partitions_to_txn(state)
        yield from self.send_produce(state)
        yield from self.send_end_txn(state)
        yield from self.give_up(state)
        yield from self.handle_produce(state)
        yield from self.handle_end_txn(state)
        yield from self.log_decision(state)
        yield from self.write_txn_marker(state)
        yield from self.replicate(state)
        yield from self.restart(state)
        yield from self.init_producer_id(state)
        yield from self.transaction_timeout(state)
        yield from self.abort_fenced(state)
        yield from self.coordinator_failover(state)

    def _live(self, state: TransactionsState) -> bool:
        """Whether the client awaits an answer."""
        client = state.client
        return (any(r.live and r.incarnation == client.incarnation for r in state.requests)
                or (state.waiting is not None and state.waiting.live
                    and state.waiting.incarnation == client.incarnation))

    def _begins(self, state: TransactionsState) -> tuple[Client, tuple[str, ...]] | None:
        """The client starting its next transaction or continuing the current one: (client, outcomes)."""
        client = state.client
        if client.phase == "open":
            return client, state.outcomes
        if client.phase == "idle" and len(state.outcomes) < self.transactions:
            return client._replace(phase="open", written=0, added=0), state.outcomes + (OPEN,)
        return None

    def add_partitions_to_txn(self, state: TransactionsState) -> Iterator[Transition[TransactionsState]]:
        """AddPartitionsToTxn (transaction version 1 only): the client registers its next partition."""
        if not self.client_adds_partitions or self._live(state):
            return
        begun = self._begins(state)
        if begun is None or begun[0].added > begun[0].written or begun[0].written >= self.partition_count:
            return
        client, outcomes = begun
        partition = client.written
        error, coordinator = self.add_partition(state.coordinator, partition, client.epoch)
        args = (("partition", partition), ("txn", len(outcomes) - 1))
        if error == NONE:
            yield Transition("AddPartitionsToTxn", args,
                             state._replace(client=client._replace(added=client.added + 1), outcomes=outcomes,
                                     coordinator=coordinator, durable=coordinator._replace(pending=frozenset())),
                             f"{coordinator.state}, partitions {sorted(coordinator.partitions)}")
        elif error == Errors.PRODUCER_FENCED.name:
            yield Transition("AddPartitionsToTxn", args,
                             state._replace(client=_stopped(client), outcomes=outcomes), error)

    def send_produce(self, state: TransactionsState) -> Iterator[Transition[TransactionsState]]:
        """Produce: the client sends its record for the next partition."""
        if self._live(state):
            return
        begun = self._begins(state)
        if begun is None or begun[0].written >= self.partition_count:
            return
        client, outcomes = begun
        if self.client_adds_partitions and client.added <= client.written:
            return
        request = Request(client.written, False, client.epoch, len(outcomes) - 1, client.incarnation, True)
        yield Transition("Produce", (("partition", request.partition), ("txn", request.txn)),
                         state._replace(client=client, outcomes=outcomes, requests=state.requests | {request}),
                         f"epoch {client.epoch}")

    def send_end_txn(self, state: TransactionsState) -> Iterator[Transition[TransactionsState]]:
        """EndTxn: commit or abort once every partition is written; abort after a failed produce;
        the same EndTxn again after giving up on it or after CONCURRENT_TRANSACTIONS."""
        client = state.client
        if self._live(state):
            return
        if client.phase == "ending":
            choices = [client.commit]
        elif client.phase == "open" and client.written == self.partition_count:
            choices = [True, False]
        elif client.phase == "must_abort":
            choices = [False]
        else:
            return
        txn = len(state.outcomes) - 1
        for commit in choices:
            request = Request(-1, commit, client.epoch, txn, client.incarnation, True)
            outcomes = list(state.outcomes)
            if outcomes[txn] == OPEN:
                outcomes[txn] = COMMITTING if commit else ABORTING
            yield Transition("EndTxn", (("txn", txn), ("commit", commit)),
                             state._replace(client=client._replace(phase="ending", commit=commit),
                                     requests=state.requests | {request}, outcomes=tuple(outcomes)),
                             f"epoch {client.epoch}" + (", sent again" if client.phase == "ending" else ""))

    def give_up(self, state: TransactionsState) -> Iterator[Transition[TransactionsState]]:
        """GiveUp: the request times out at the client and stays in flight, delayed."""
        for request in sorted(state.requests):
            if not request.live:
                continue
            orphan = _orphan(request)
            requests = (state.requests - {request}) | {orphan}
            args = (("partition", request.partition), ("txn", request.txn))
            if request.partition >= 0 and state.late_produces < self.max_late_produces:
                yield Transition("GiveUp", args,
                                 state._replace(requests=requests, client=state.client._replace(phase="must_abort"),
                                         late_produces=state.late_produces + 1),
                                 "produce timed out: the transaction must abort; the request is delayed")
            if request.partition < 0 and state.late_end_txns < self.max_late_end_txns:
                yield Transition("GiveUp", args, state._replace(requests=requests,
                                                         late_end_txns=state.late_end_txns + 1),
                                 "EndTxn timed out: it will be sent again; the request is delayed")

    def handle_produce(self, state: TransactionsState) -> Iterator[Transition[TransactionsState]]:
        """HandleProduce: the partition leader checks the batch's epoch, verifies a new transaction
        with the coordinator (v2) and appends."""
        for request in sorted(state.requests):
            if request.partition < 0:
                continue
            p = request.partition
            partition = state.partitions[p]
            rest = state._replace(requests=state.requests - {request})
            args = (("partition", p), ("txn", request.txn), ("epoch", request.epoch))
            late = () if request.live else ("late_produce_refused",)
            if request.epoch < partition.producer_epoch:
                error = Errors.INVALID_PRODUCER_EPOCH.name
                yield Transition("HandleProduce", args, self._answer(rest, request, error), error, late)
                continue
            coordinator = state.coordinator
            note = ""
            ongoing = partition.open_start >= 0 and partition.producer_epoch == request.epoch
            if not self.client_adds_partitions and not ongoing:
                error, verified = self.add_partition(coordinator, p, request.epoch)
                if error != NONE and self.guarded("partition_verification"):
                    situations = late + (("concurrent_transactions",)
                                         if error == Errors.CONCURRENT_TRANSACTIONS.name else ())
                    yield Transition("HandleProduce", args, self._answer(rest, request, error),
                                     f"verification: {error}", situations)
                    continue
                if error == NONE:
                    coordinator = verified
                    note = f"verified, coordinator {verified.state} {sorted(verified.partitions)}; "
                else:
                    note = f"verification answered {error}, appended anyway; "
            offset = len(partition.log)
            appended = partition._replace(log=partition.log + (Data(request.txn, request.epoch),),
                                          producer_epoch=request.epoch,
                                          open_start=offset if partition.open_start < 0 else partition.open_start)
            after = rest._replace(partitions=_with(state.partitions, p, appended), coordinator=coordinator,
                            durable=coordinator._replace(pending=frozenset()) if coordinator != state.coordinator
                            else state.durable)
            yield Transition("HandleProduce", args, self._answer(after, request, NONE),
                             f"{note}appended at offset {offset}" + ("" if request.live else " (a delayed request)"))

    def _answer(self, state: TransactionsState, request: Request, error: str,
                epoch: int | None = None) -> TransactionsState:
        """The client's reaction to an answer; an answer to a request it gave up on is ignored."""
        client = state.client
        if not request.live or request.incarnation != client.incarnation:
            return state
        if error == Errors.CONCURRENT_TRANSACTIONS.name:
            return state  # retried: the client sends it again
        if error != NONE:
            return state._replace(client=_stopped(client))
        if request.partition >= 0:
            return state._replace(client=client._replace(written=client.written + 1))
        outcomes = list(state.outcomes)
        outcomes[request.txn] = COMMITTED if request.commit else ABORTED
        return state._replace(client=client._replace(phase="idle", epoch=client.epoch if epoch is None else epoch),
                       outcomes=tuple(outcomes))

    def handle_end_txn(self, state: TransactionsState) -> Iterator[Transition[TransactionsState]]:
        """HandleEndTxn: the coordinator decides, logs PrepareCommit/PrepareAbort and answers."""
        for request in sorted(state.requests):
            if request.partition >= 0:
                continue
            rest = state._replace(requests=state.requests - {request})
            error, coordinator, note = self.end_txn(state.coordinator, request)
            args = (("txn", request.txn), ("commit", request.commit), ("epoch", request.epoch))
            late = () if request.live or coordinator != state.coordinator else ("late_end_txn_refused",)
            if error != NONE or coordinator == state.coordinator:
                situations = late + (("concurrent_transactions",) if error == Errors.CONCURRENT_TRANSACTIONS.name
                                     else ())
                yield Transition("HandleEndTxn", args, self._answer(rest, request, error, coordinator.epoch),
                                 note or error, situations)
                continue
            if coordinator.state in (PREPARE_COMMIT, PREPARE_ABORT) and not self.guarded(
                    "decision_logged_before_markers"):
                yield Transition("HandleEndTxn", args, rest._replace(coordinator=coordinator, waiting=request),
                                 f"{note} (in memory only: not yet logged)")
                continue
            yield Transition("HandleEndTxn", args,
                             self._answer(rest._replace(coordinator=coordinator,
                                                  durable=coordinator._replace(pending=frozenset())),
                                          request, NONE, coordinator.epoch),
                             note + ("" if request.live else " (a delayed request)"))

    def log_decision(self, state: TransactionsState) -> Iterator[Transition[TransactionsState]]:
        """LogDecision (only without ``decision_logged_before_markers``): the decision reaches
        __transaction_state after markers may already have been written; then the answer."""
        if state.waiting is None:
            return
        coordinator = state.coordinator
        if not coordinator.pending:
            coordinator = _completed(coordinator)
        after = state._replace(coordinator=coordinator, durable=coordinator._replace(pending=frozenset()),
                        waiting=None)
        yield Transition("LogDecision", (), self._answer(after, state.waiting, NONE, coordinator.epoch),
                         f"{state.coordinator.state} logged")

    def write_txn_marker(self, state: TransactionsState) -> Iterator[Transition[TransactionsState]]:
        """WriteTxnMarkers: the coordinator writes its decision to one partition; after the last one
        it logs CompleteCommit/CompleteAbort."""
        coordinator = state.coordinator
        if coordinator.state not in (PREPARE_COMMIT, PREPARE_ABORT):
            return
        logged = state.durable.state == coordinator.state and state.waiting is None
        if not logged and self.guarded("decision_logged_before_markers"):
            return
        commit = coordinator.state == PREPARE_COMMIT
        for p in sorted(coordinator.pending):
            partition = state.partitions[p]
            offset = len(partition.log)
            marked = Partition(partition.log + (Marker(commit, coordinator.epoch, coordinator.decided_by),),
                               partition.high_watermark, max(partition.producer_epoch, coordinator.epoch), -1)
            after = coordinator._replace(pending=coordinator.pending - {p})
            durable = state.durable
            note = f"{'COMMIT' if commit else 'ABORT'} at offset {offset}, epoch {coordinator.epoch}"
            if not after.pending and logged:
                after = _completed(after)
                durable = after
                note += f"; {after.state} logged"
            yield Transition("WriteTxnMarker", (("partition", p),),
                             state._replace(coordinator=after, durable=durable,
                                     partitions=_with(state.partitions, p, marked)), note)

    def replicate(self, state: TransactionsState) -> Iterator[Transition[TransactionsState]]:
        """Replicate: the follower catches up; the high watermark moves to the log end."""
        for p, partition in enumerate(state.partitions):
            if partition.high_watermark == len(partition.log):
                continue
            moved = partition._replace(high_watermark=len(partition.log))
            after = state._replace(partitions=_with(state.partitions, p, moved))
            situations = []
            visible = self.visible(moved)
            if any(state.outcomes[k] == COMMITTED for k in visible):
                situations.append("commit_visible")
            lso = self.last_stable_offset(moved)
            if any(s.marker is not None and not s.marker.commit and s.txns and s.end < lso
                   for s in self.derived(moved)[0]):
                situations.append("abort_filtered")
            if lso < moved.high_watermark:
                situations.append("unstable_held_back")
            yield Transition("Replicate", (("partition", p),), after,
                             f"high watermark {len(partition.log)}, LSO {lso}", tuple(situations))

    def restart(self, state: TransactionsState) -> Iterator[Transition[TransactionsState]]:
        """Restart: a new incarnation starts; the old one's requests stay in flight (a zombie)."""
        if state.restarts >= self.max_restarts:
            return
        requests = frozenset(_orphan(r) for r in state.requests)
        waiting = _orphan(state.waiting) if state.waiting is not None else None
        yield Transition("Restart", (), state._replace(client=Client(state.client.incarnation + 1, -1, "init"),
                                                requests=requests, waiting=waiting, restarts=state.restarts + 1),
                         f"incarnation {state.client.incarnation + 1}")

    def init_producer_id(self, state: TransactionsState) -> Iterator[Transition[TransactionsState]]:
        """InitProducerId: fences the previous incarnation.  An ongoing transaction is first aborted
        (PrepareEpochFence, answered CONCURRENT_TRANSACTIONS); otherwise the epoch is bumped."""
        client = state.client
        coordinator = state.coordinator
        if client.phase != "init":
            return
        if coordinator.state == ONGOING:
            fence = coordinator._replace(state=PREPARE_EPOCH_FENCE, epoch=coordinator.epoch + 1)
            yield Transition("InitProducerId", (), state._replace(coordinator=fence),
                             f"{PREPARE_EPOCH_FENCE}, epoch {fence.epoch}: "
                             f"{Errors.CONCURRENT_TRANSACTIONS.name}", ("concurrent_transactions", "zombie_fenced"))
        elif coordinator.state in ENDED and state.waiting is None:
            bumped = Coordinator(EMPTY, coordinator.epoch + 1)
            yield Transition("InitProducerId", (),
                             state._replace(coordinator=bumped, durable=bumped,
                                     client=client._replace(epoch=bumped.epoch, phase="idle"),
                                     outcomes=_fence(state.outcomes)), f"epoch {bumped.epoch}")

    def transaction_timeout(self, state: TransactionsState) -> Iterator[Transition[TransactionsState]]:
        """TransactionTimeout: transaction.timeout.ms passes; the coordinator fences and aborts."""
        coordinator = state.coordinator
        if state.txn_timeouts >= self.max_txn_timeouts or coordinator.state != ONGOING:
            return
        fence = coordinator._replace(state=PREPARE_EPOCH_FENCE, epoch=coordinator.epoch + 1)
        yield Transition("TransactionTimeout", (), state._replace(coordinator=fence, txn_timeouts=state.txn_timeouts + 1),
                         f"{PREPARE_EPOCH_FENCE}, epoch {fence.epoch}")

    def abort_fenced(self, state: TransactionsState) -> Iterator[Transition[TransactionsState]]:
        """AbortFenced: the fenced transaction's abort is logged (PrepareAbort, bumped epoch)."""
        coordinator = state.coordinator
        if coordinator.state != PREPARE_EPOCH_FENCE:
            return
        # A fence is no EndTxn: there is no request of the previous epoch to recognise as its retry.
        abort = coordinator._replace(state=PREPARE_ABORT, last_epoch=-1, pending=coordinator.partitions,
                                     decided_by=NOBODY)
        yield Transition("AbortFenced", (), state._replace(coordinator=abort, durable=abort._replace(pending=frozenset()),
                                                    outcomes=_fence(state.outcomes)),
                         f"{PREPARE_ABORT} logged, epoch {abort.epoch}")

    def coordinator_failover(self, state: TransactionsState) -> Iterator[Transition[TransactionsState]]:
        """CoordinatorFailover: a new coordinator loads the latest __transaction_state record; what
        was only in memory is gone; a Prepare* state writes all its markers again."""
        if state.failovers >= self.max_failovers:
            return
        loaded = state.durable
        if loaded.state in (PREPARE_COMMIT, PREPARE_ABORT):
            loaded = loaded._replace(pending=loaded.partitions)
        situations = ("markers_resumed",) if loaded.pending and state.coordinator.pending != loaded.partitions else ()
        yield Transition("CoordinatorFailover", (), state._replace(coordinator=loaded, waiting=None,
                                                            failovers=state.failovers + 1),
                         f"reloaded {loaded.state}, epoch {loaded.epoch}", situations)

    # --- what readers see ------------------------------------------------------------------------

    def derived(self, partition: Partition) -> tuple[tuple[Span, ...], int, tuple[int, ...]]:
        """(spans, last stable offset, transactions a read_committed reader is given), computed
        once per distinct partition value: the search meets the same partition in many states."""
        known = self._derived.get(partition)
        if known is None:
            found = tuple(spans(partition))
            lso = self._last_stable_offset(partition, found)
            known = found, lso, self._visible(partition, found, lso)
            self._derived[partition] = known
        return known

    def last_stable_offset(self, partition: Partition) -> int:
        return self.derived(partition)[1]

    def visible(self, partition: Partition) -> tuple[int, ...]:
        """The client transactions of the records a read_committed reader is given."""
        return self.derived(partition)[2]

    def _last_stable_offset(self, partition: Partition, found: tuple[Span, ...]) -> int:
        """min(high watermark, first unstable offset): a transaction is unstable until its marker
        is below the high watermark (Kafka keeps it among the "unreplicated" transactions)."""
        replicated = self.guarded("lso_bounded_by_high_watermark")
        first_unstable = next((s.start for s in found
                               if s.marker is None or (replicated and s.end >= partition.high_watermark)), None)
        if not self.guarded("lso_bounded_by_first_unstable"):
            first_unstable = None
        if not replicated:
            return len(partition.log) if first_unstable is None else first_unstable
        return partition.high_watermark if first_unstable is None else min(first_unstable, partition.high_watermark)

    def _visible(self, partition: Partition, found: tuple[Span, ...], lso: int) -> tuple[int, ...]:
        aborted: set[int] = set()
        if self.guarded("read_committed_filters_aborted"):
            for span in found:
                if span.marker is not None and not span.marker.commit:
                    aborted.update(range(span.start, span.end))
        return tuple(entry.txn for offset, entry in enumerate(partition.log[:lso])
                     if isinstance(entry, Data) and offset not in aborted)

    # --- checker interface -----------------------------------------------------------------------

    def is_final(self, state: TransactionsState) -> bool:
        return True

    def canonical(self, state: TransactionsState) -> Hashable:
        """The state, forgetting two coordinator fields no rule reads in the current state: the
        epoch before the last EndTxn bump (read only in PrepareX/CompleteX with the bump, to
        recognise a retry) and the EndTxn that decided (read only by markers, in PrepareX).
        Every transition that enters those states sets them afresh.
        ``tests/spec/test_transactions.py`` checks along random walks that twins differing only
        there have the same invariants and successors with the same keys."""
        return state._replace(coordinator=self._forget(state.coordinator), durable=self._forget(state.durable))

    def retry_matters(self, coordinator: Coordinator) -> bool:
        """Whether a rule may read ``last_epoch`` in this state (the v2 retry check)."""
        return self.guarded("epoch_bump_per_txn") and coordinator.state in (
            PREPARE_COMMIT, PREPARE_ABORT, COMPLETE_COMMIT, COMPLETE_ABORT)

    @staticmethod
    def decision_matters(coordinator: Coordinator) -> bool:
        """Whether a rule may read ``decided_by`` in this state (markers carry it)."""
        return coordinator.state in (PREPARE_COMMIT, PREPARE_ABORT)

    def _forget(self, coordinator: Coordinator) -> Coordinator:
        return coordinator._replace(last_epoch=coordinator.last_epoch if self.retry_matters(coordinator) else -1,
                                    decided_by=coordinator.decided_by if self.decision_matters(coordinator)
                                    else NOBODY)

    def render(self, state: TransactionsState) -> str:
        c, d = state.coordinator, state.durable
        lines = [f"coordinator: {c.state}, epoch {c.epoch}, partitions {sorted(c.partitions)}, "
                 f"markers pending {sorted(c.pending)}; logged: {d.state}, epoch {d.epoch}"]
        for p, partition in enumerate(state.partitions):
            log = " ".join(_entry(e) for e in partition.log) or "(empty)"
            lines.append(f"p{p}: log [{log}]; HW {partition.high_watermark}, "
                         f"LSO {self.last_stable_offset(partition)}; producer epoch {partition.producer_epoch}; "
                         f"read_committed [{' '.join(f't{k}' for k in self.visible(partition))}]")
        client = state.client
        lines.append(f"client: incarnation {client.incarnation}, epoch {client.epoch}, {client.phase}; "
                     f"transactions {' '.join(f't{k}:{o}' for k, o in enumerate(state.outcomes)) or '(none)'}")
        lines.append(f"in flight: {', '.join(_request(r) for r in sorted(state.requests)) or '(none)'}")
        return "\n".join(lines)

    @property
    def invariants(self) -> tuple[Invariant[TransactionsState], ...]:
        return (
            Invariant("TransactionsDoNotMix",
                      "a delayed produce or EndTxn cannot land in the next transaction: each of the producer's "
                      "transactions at a partition holds records of one client transaction, and a marker an "
                      "EndTxn decided closes only that transaction's records", self.do_not_mix),
            Invariant("Atomicity", "a transaction is all or nothing: no transaction has a record committed and "
                      "another aborted, and once the client saw its commit succeed and every marker is written, "
                      "each of its records is committed", self.atomicity),
            Invariant("NoAbortedRead", "read_committed readers never see a record of a transaction the client "
                      "aborted", self.no_aborted_read),
            Invariant("NoFencedWrite", "read_committed readers never see a record of a transaction fenced "
                      "before it asked to commit", self.no_fenced_write),
            Invariant("LsoWithinHighWatermark", "the last stable offset is never above the high watermark",
                      self.lso_within_high_watermark),
        )

    def do_not_mix(self, state: TransactionsState) -> bool:
        for partition in state.partitions:
            for span in self.derived(partition)[0]:
                if len(set(span.txns)) > 1:
                    return False
                if span.marker is not None and span.marker.decided_by != NOBODY and any(
                        k != span.marker.decided_by for k in span.txns):
                    return False
        return True

    def atomicity(self, state: TransactionsState) -> bool:
        decisions: dict[int, set[bool]] = {}
        undecided: set[int] = set()
        for partition in state.partitions:
            for span in self.derived(partition)[0]:
                for k in span.txns:
                    if span.marker is None:
                        undecided.add(k)
                    else:
                        decisions.setdefault(k, set()).add(span.marker.commit)
        if any(len(d) > 1 for d in decisions.values()):
            return False
        markers_written = state.coordinator.state not in (PREPARE_COMMIT, PREPARE_ABORT, PREPARE_EPOCH_FENCE)
        for k, outcome in enumerate(state.outcomes):
            if outcome == COMMITTED and (False in decisions.get(k, set()) or (markers_written and k in undecided)):
                return False
        return True

    def no_aborted_read(self, state: TransactionsState) -> bool:
        return not any(state.outcomes[k] in (ABORTING, ABORTED)
                       for partition in state.partitions for k in self.visible(partition))

    def no_fenced_write(self, state: TransactionsState) -> bool:
        return not any(state.outcomes[k] == FENCED for partition in state.partitions for k in self.visible(partition))

    def lso_within_high_watermark(self, state: TransactionsState) -> bool:
        return all(self.last_stable_offset(p) <= p.high_watermark for p in state.partitions)

    @property
    def situations(self) -> tuple[Situation, ...]:
        applies = {
            "late_produce_refused": self.max_late_produces > 0 and self.transactions > 0,
            "late_end_txn_refused": self.max_late_end_txns > 0 and self.transactions > 0,
            "commit_visible": self.transactions > 0,
            "abort_filtered": self.transactions > 0,
            "unstable_held_back": self.transactions > 0,
            "concurrent_transactions": self.transactions > 1,
            "zombie_fenced": self.max_restarts > 0 and self.transactions > 0,
            "markers_resumed": self.max_failovers > 0 and self.transactions > 0 and self.partition_count > 1,
        }
        return tuple(Situation(name, text, applies[name]) for name, text in SITUATIONS)


def spans(partition: Partition) -> list[Span]:
    """The producer's transactions at one partition, in log order, the last possibly open."""
    result: list[Span] = []
    start, txns = -1, []
    for offset, entry in enumerate(partition.log):
        if isinstance(entry, Data):
            if start < 0:
                start = offset
            txns.append(entry.txn)
        else:
            if start >= 0:
                result.append(Span(start, offset, tuple(txns), entry))
            start, txns = -1, []
    if start >= 0:
        result.append(Span(start, -1, tuple(txns), None))
    return result


def _stopped(client: Client) -> Client:
    """A client stopped by a fatal error: only its incarnation still matters (it awaits nothing)."""
    return Client(client.incarnation, -1, "stopped")


def _orphan(request: Request) -> Request:
    """A request nobody awaits any more: whose it was no longer matters, its answer is dropped."""
    return request._replace(incarnation=-1, live=False)


def _completed(coordinator: Coordinator) -> Coordinator:
    state = COMPLETE_COMMIT if coordinator.state == PREPARE_COMMIT else COMPLETE_ABORT
    return coordinator._replace(state=state, partitions=frozenset(), pending=frozenset())


def _fence(outcomes: tuple[str, ...]) -> tuple[str, ...]:
    """Ghost: every transaction still open when the epoch moves past it is fenced."""
    return tuple(FENCED if o == OPEN else o for o in outcomes)


def _with(partitions: tuple[Partition, ...], p: int, partition: Partition) -> tuple[Partition, ...]:
    return partitions[:p] + (partition,) + partitions[p + 1:]


def _request(request: Request) -> str:
    kind = f"Produce p{request.partition}" if request.partition >= 0 else (
        f"EndTxn {'commit' if request.commit else 'abort'}")
    return f"{kind} t{request.txn} e{request.epoch}{'' if request.live else ' (delayed)'}"


def _entry(entry: Data | Marker) -> str:
    if isinstance(entry, Data):
        return f"t{entry.txn}@e{entry.epoch}"
    by = "" if entry.decided_by == NOBODY else f" by t{entry.decided_by}"
    return f"{'COMMIT' if entry.commit else 'ABORT'}@e{entry.epoch}{by}"
