"""Executable model of the idempotent producer against one partition's producer-state table.

Theory of operation
-------------------
One producer (one producer id) sends ``records`` single-record batches to one partition, with
retries and up to ``window`` requests in flight (``max.in.flight.requests.per.connection``, at
most 5 in Kafka because the broker remembers 5 batches).  Each batch carries the producer epoch
and a sequence number.  Up to ``losses`` times the connection breaks (or the leader refuses a
request with the retriable NOT_ENOUGH_REPLICAS), and a producer whose request got no answer sends
it again (a retry keeps the batch's epoch and sequence).  Requests share one connection, so the
broker reads them and answers them in the order they were sent (Kafka mutes a connection while
one of its requests is being handled); losing one means the connection broke, and everything not
yet read or answered on it is lost with it.

Zombie requests.  Up to ``zombies`` times, when the connection breaks, the leader had already
read the first queued request off the socket.  That request stays in the broker's request queue
and is still handled, at any later time, with its answer lost: Kafka's request queue is shared by
all connections and served by several handler threads, so nothing orders it with the requests of
the client's new connection.  A zombie request is the *old producer incarnation* of this model:
after an epoch bump it is a batch of the old epoch arriving after batches of the new one, which
is what ``epoch_fencing`` (INVALID_PRODUCER_EPOCH) is for.

Delivery timeouts.  Up to ``timeouts`` times the client gives up on its oldest unanswered batch
while that batch awaits its retry (``delivery.timeout.ms``): the send fails to the application
with its outcome unknown, and its sequence number becomes a gap.  The next batch is refused with
OUT_OF_ORDER_SEQUENCE_NUMBER (unless the expired batch was written after all), and the client
bumps its epoch (KIP-360) and sends its unanswered batches again from sequence 0.  The Java
producer tracks the gap as an "unresolved sequence" and bumps as soon as nothing is in flight,
without first sending into the gap; the outcome is the same.  After ``epoch_bumps`` bumps a
refused batch fails to the application instead.  An answer for a batch that already failed is
ignored (the Java producer completes a batch once).

The partition has a leader and one in-sync follower whose log is a prefix of the leader's; the
high watermark is the follower's end offset, and an acks=all answer is sent once a batch is below
it.  The broker's producer state follows ``shared/KAFKA-NOTES.md`` and Kafka's
``ProducerAppendInfo``:

* per producer: the current epoch and the last ``window`` batches (sequence, offset) written in
  it (a new epoch clears them);
* same epoch: a batch equal to a cached one is a duplicate, answered with its original offset
  and not appended; otherwise the sequence must be last + 1, else OUT_OF_ORDER_SEQUENCE_NUMBER;
* a lower epoch is refused with INVALID_PRODUCER_EPOCH; a new epoch must start at sequence 0;
* no state known (never written, or lost): any sequence is accepted; with the guard
  ``first_sequence_zero`` (Kafka 4's rule for transactions-v2 producers) only sequence 0.

The table is rebuilt from the log, so it is rolled back with the log when a leader change
truncates the unreplicated tail, and a follower that becomes leader has it (Kafka rebuilds it
from snapshots and the log).  Zombie requests die with a leader change (the deposed leader
refuses them with NOT_LEADER_OR_FOLLOWER).

The client bumps only when the refused batch is its oldest unanswered one; a later batch refused
because an earlier one is unresolved is simply retried.

Guards: ``five_batch_window``, ``in_flight_within_window``, ``sequence_check``,
``epoch_fencing``, ``bump_only_for_oldest``, ``first_sequence_zero``,
``followers_keep_producer_state``.  Each prevents a duplicate or a reordering (``refka spec
mutants idempotence``).

Known limit: the model has no clock.  With two zombie requests (``zombies=2``) the unmutated
model writes a record twice: the zombies fill the gap a delivery timeout left *after* the client
was refused with OUT_OF_ORDER_SEQUENCE_NUMBER and bumped, and before its first batch of the new
epoch is written, so no fence applies.  Kafka relies on timing here: ``delivery.timeout.ms``
(2 minutes) is far longer than a request waits in the broker's queue.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import NamedTuple

from reference.errors import Errors
from spec.checker import Invariant, Situation, Transition
from spec.model import BoundSpec, Guard, check_variant_and_guards, parse_bounds


class Batch(NamedTuple):
    """A produce request's batch: which record, under which producer epoch and sequence."""

    record: int
    producer_epoch: int
    sequence: int


class Response(NamedTuple):
    batch: Batch
    error: str
    offset: int


@dataclass(frozen=True, slots=True)
class IdempotenceState:
    log: tuple[Batch, ...] = ()
    high_watermark: int = 0
    producer_state_lost: bool = False
    producer_epoch: int = 0
    next_record: int = 0
    next_sequence: int = 0
    assigned: tuple[Batch, ...] = ()  # each sent record's current (epoch, sequence)
    in_flight: frozenset[int] = frozenset()
    requests: tuple[Batch, ...] = ()  # one connection: processed in the order sent
    responses: tuple[Response, ...] = ()  # answered in the order the requests were read
    acknowledged: tuple[tuple[int, int], ...] = ()  # (record, offset), in the order answers arrived
    failed: frozenset[int] = frozenset()
    zombie_requests: tuple[Batch, ...] = ()  # read by the leader before their connection broke
    losses: int = 0
    failovers: int = 0
    epoch_bumps: int = 0
    zombies: int = 0
    timeouts: int = 0


GUARDS: dict[str, Guard] = {
    guard.name: guard
    for guard in (
        Guard("five_batch_window", "the broker remembers the last `window` batches, not only the last one",
              "a retry of an older in-flight batch is refused, the client bumps its epoch and writes it twice",
              {"records": 2, "window": 2, "losses": 0, "failovers": 1, "epoch_bumps": 1, "zombies": 0, "timeouts": 0}),
        Guard("in_flight_within_window", "the client keeps at most `window` requests in flight",
              "a retry arrives after the window moved past it and is written twice",
              {"records": 2, "window": 1, "losses": 0, "failovers": 1, "epoch_bumps": 1, "zombies": 0, "timeouts": 0}),
        Guard("sequence_check", "in one epoch, a batch's sequence must be the last one + 1",
              "a retried batch lands after a later one: acknowledged offsets out of send order",
              {"records": 3, "window": 2, "losses": 1, "failovers": 0, "epoch_bumps": 0, "zombies": 0, "timeouts": 0}),
        Guard("epoch_fencing", "a batch with an older producer epoch is refused (INVALID_PRODUCER_EPOCH)",
              "a zombie request from before an epoch bump is written and moves the broker back to the old epoch; "
              "the client's next retry then looks like a new epoch and is written twice",
              {"records": 2, "window": 1, "losses": 2, "failovers": 0, "epoch_bumps": 1, "zombies": 1, "timeouts": 1}),
        Guard("bump_only_for_oldest",
              "the client bumps its epoch on OUT_OF_ORDER_SEQUENCE_NUMBER only for its oldest unanswered batch",
              "a batch refused only because an earlier one is still in flight makes the client resend "
              "batches that were already written",
              {"records": 2, "window": 2, "losses": 1, "failovers": 0, "epoch_bumps": 1, "zombies": 0, "timeouts": 0}),
        Guard("first_sequence_zero",
              "with no producer state the broker accepts only sequence 0 (Kafka 4, transactions v2)",
              "the first batch is refused with a retriable error, the second is written first",
              {"records": 2, "window": 2, "losses": 1, "failovers": 0, "epoch_bumps": 1, "zombies": 0, "timeouts": 0}),
        Guard("followers_keep_producer_state", "a follower rebuilds the producer state from its log",
              "after a leader change the new leader accepts a retry of a batch it already holds",
              {"records": 1, "window": 1, "losses": 0, "failovers": 1, "epoch_bumps": 0, "zombies": 0, "timeouts": 0}),
    )
}

BOUNDS = (
    BoundSpec("records", 3, "records the producer sends, one batch each"),
    BoundSpec("window", 5, "batches the broker remembers per producer = max in flight (Kafka: 5)", minimum=1),
    BoundSpec("losses", 2, "faults: broken connections or retriable rejections (NOT_ENOUGH_REPLICAS)"),
    BoundSpec("failovers", 1, "leader changes (the follower takes over)"),
    BoundSpec("epoch_bumps", 1, "client epoch bumps after OUT_OF_ORDER_SEQUENCE_NUMBER (KIP-360)"),
    BoundSpec("zombies", 1, "requests the leader had already read when their connection broke: handled later, "
              "answer lost"),
    BoundSpec("timeouts", 1, "delivery timeouts: the client gives up on a batch awaiting its retry "
              "(delivery.timeout.ms)"),
)

VARIANTS = {"default": "Kafka's producer-state rules with the KIP-360 client"}

SITUATIONS = (
    ("duplicate_answered", "a retried batch was recognised as a duplicate and answered with its offset"),
    ("out_of_order", "a batch was refused with OUT_OF_ORDER_SEQUENCE_NUMBER"),
    ("epoch_bump", "the client bumped its epoch"),
    ("fenced_epoch", "a stale batch was refused with INVALID_PRODUCER_EPOCH"),
    ("failover_with_data", "a leader change truncated or kept a non-empty log"),
)


class IdempotenceModel:
    name = "idempotence"

    def __init__(self, variant: str = "default", bounds: Mapping[str, int | str] | None = None,
                 disabled: frozenset[str] = frozenset()) -> None:
        check_variant_and_guards(variant, VARIANTS, disabled, GUARDS)
        self.variant = variant
        self.bounds = parse_bounds(BOUNDS, bounds or {})
        self.records = int(self.bounds["records"])
        self.window = int(self.bounds["window"])
        self.max_losses = int(self.bounds["losses"])
        self.max_failovers = int(self.bounds["failovers"])
        self.max_bumps = int(self.bounds["epoch_bumps"])
        self.max_zombies = int(self.bounds["zombies"])
        self.max_timeouts = int(self.bounds["timeouts"])
        self.guards = frozenset(GUARDS) - disabled
        self.disabled = disabled
        self.cached_batches = self.window if self.guarded("five_batch_window") else 1
        self.max_in_flight = self.window if self.guarded("in_flight_within_window") else self.window + 1

    def guarded(self, name: str) -> bool:
        return name in self.guards

    def describe_bounds(self) -> str:
        text = " ".join(f"{k}={v}" for k, v in self.bounds.items())
        return text + (" without " + ",".join(sorted(self.disabled)) if self.disabled else "")

    def initial_states(self) -> Iterator[IdempotenceState]:
        yield IdempotenceState()

    # --- the broker's producer state, rebuilt from the log ------------------------------------

    def producer_state(self, state: IdempotenceState) -> tuple[int, tuple[tuple[int, int], ...]] | None:
        """(current epoch, last cached (sequence, offset) pairs), or None when no state is known."""
        if state.producer_state_lost or not state.log:
            return None
        epoch = state.log[-1].producer_epoch
        cached: list[tuple[int, int]] = []  # the batches since the last epoch change: a new epoch clears them
        for offset in range(len(state.log) - 1, -1, -1):
            if state.log[offset].producer_epoch != epoch or len(cached) == self.cached_batches:
                break
            cached.insert(0, (state.log[offset].sequence, offset))
        return epoch, tuple(cached)

    # --- actions ---------------------------------------------------------------------------------

    def transitions(self, state: IdempotenceState) -> Iterator[Transition[IdempotenceState]]:
        yield from self.send(state)
        yield from self.retry(state)
        yield from self.handle_request(state)
        yield from self.handle_zombie_request(state)
        yield from self.replicate(state)
        yield from self.receive_response(state)
        yield from self.lose(state)
        yield from self.expire(state)
        yield from self.reject_retriable(state)
        yield from self.failover(state)

    def send(self, state: IdempotenceState) -> Iterator[Transition[IdempotenceState]]:
        """Send: the next record goes out as a new batch, if the in-flight limit allows."""
        if state.next_record >= self.records:
            return
        if state.in_flight and state.next_record - min(state.in_flight) >= self.max_in_flight:
            return  # the oldest unanswered batch must stay among the broker's cached ones
        if any(self._needs_retry(state, record) for record in state.in_flight):
            return  # batches go out in sequence order: a batch awaiting its retry goes first
        batch = Batch(state.next_record, state.producer_epoch, state.next_sequence)
        yield Transition("Send", (("record", batch.record),),
                         replace(state, next_record=batch.record + 1, next_sequence=batch.sequence + 1,
                                 assigned=state.assigned + (batch,), in_flight=state.in_flight | {batch.record},
                                 requests=state.requests + (batch,)),
                         f"epoch {batch.producer_epoch}, sequence {batch.sequence}")

    def retry(self, state: IdempotenceState) -> Iterator[Transition[IdempotenceState]]:
        """Retry: the oldest batch with no request or answer on its way is sent again, unchanged."""
        for record in sorted(state.in_flight):
            batch = state.assigned[record]
            if not self._needs_retry(state, record):
                continue
            yield Transition("Retry", (("record", record),), replace(state, requests=state.requests + (batch,)),
                             f"epoch {batch.producer_epoch}, sequence {batch.sequence}")
            return

    @staticmethod
    def _needs_retry(state: IdempotenceState, record: int) -> bool:
        batch = state.assigned[record]
        return batch not in state.requests and not any(r.batch == batch for r in state.responses)

    def handle_request(self, state: IdempotenceState) -> Iterator[Transition[IdempotenceState]]:
        """HandleProduce: the leader checks the next request's batch against the producer state."""
        if state.requests:
            batch = state.requests[0]
            answer, next_state, note, situations = self._handle(replace(state, requests=state.requests[1:]), batch)
            next_state = replace(next_state, responses=next_state.responses + (answer,))
            yield Transition("HandleProduce", (("record", batch.record), ("epoch", batch.producer_epoch),
                                               ("sequence", batch.sequence)), next_state, note, situations)

    def handle_zombie_request(self, state: IdempotenceState) -> Iterator[Transition[IdempotenceState]]:
        """HandleZombie: the leader handles a request read before its connection broke; the answer
        goes to a closed connection.  Kafka's request queue is shared by every connection and
        served by several handler threads, so such a request may be handled after requests of the
        client's new connection, even after the client bumped its epoch."""
        for position, batch in enumerate(state.zombie_requests):
            rest = state.zombie_requests[:position] + state.zombie_requests[position + 1:]
            answer, next_state, note, situations = self._handle(replace(state, zombie_requests=rest), batch)
            yield Transition("HandleZombie", (("record", batch.record), ("epoch", batch.producer_epoch),
                                              ("sequence", batch.sequence)), next_state,
                             f"{note}; the answer is lost", situations)

    def _handle(self, state: IdempotenceState, batch: Batch) -> tuple[Response, IdempotenceState, str, tuple[str, ...]]:
        """The leader's decision on one batch: (answer, state after it, note, situations)."""
        verdict, offset = self.judge(state, batch)
        if verdict == "append":
            offset = len(state.log)  # the answer is sent once the high watermark passes it
            return (Response(batch, "NONE", offset),
                    replace(state, log=state.log + (batch,), producer_state_lost=False),
                    f"appended at offset {offset}", ())
        if verdict == "duplicate":
            return (Response(batch, "NONE", offset), state, f"duplicate of offset {offset}: answered with it",
                    ("duplicate_answered",))
        situation = "out_of_order" if verdict == Errors.OUT_OF_ORDER_SEQUENCE_NUMBER.name else "fenced_epoch"
        return Response(batch, verdict, -1), state, verdict, (situation,)

    def judge(self, state: IdempotenceState, batch: Batch) -> tuple[str, int]:
        """The leader's verdict on ``batch``: ("append", -1), ("duplicate", original offset), or an
        error name (OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH) with -1.  Kafka looks for
        a duplicate first, then checks the epoch and the sequence; a duplicate needs the current
        epoch, so checking the epoch first, as here, gives the same verdicts.
        ``tests/spec/test_idempotence_implementation.py`` compares the reference broker's answers
        with this function."""
        known = self.producer_state(state)
        if known is None:
            if batch.sequence != 0 and self.guarded("first_sequence_zero"):
                return Errors.OUT_OF_ORDER_SEQUENCE_NUMBER.name, -1
            return "append", -1  # no state: any sequence is accepted
        epoch, cached = known
        if batch.producer_epoch < epoch and self.guarded("epoch_fencing"):
            return Errors.INVALID_PRODUCER_EPOCH.name, -1
        if batch.producer_epoch == epoch:
            for sequence, offset in cached:
                if sequence == batch.sequence:
                    return "duplicate", offset
            if batch.sequence == cached[-1][0] + 1 or not self.guarded("sequence_check"):
                return "append", -1
            return Errors.OUT_OF_ORDER_SEQUENCE_NUMBER.name, -1
        # a new epoch (or, without fencing, an older one treated as new) starts at sequence 0
        if batch.sequence == 0 or not self.guarded("sequence_check"):
            return "append", -1
        return Errors.OUT_OF_ORDER_SEQUENCE_NUMBER.name, -1

    def replicate(self, state: IdempotenceState) -> Iterator[Transition[IdempotenceState]]:
        """Replicate: the follower fetches one more batch; the high watermark passes it; acks=all answered."""
        if state.high_watermark >= len(state.log):
            return
        offset = state.high_watermark
        batch = state.log[offset]
        yield Transition("Replicate", (("offset", offset),), replace(state, high_watermark=offset + 1),
                         f"high watermark {offset + 1} (record {batch.record} committed)")

    def receive_response(self, state: IdempotenceState) -> Iterator[Transition[IdempotenceState]]:
        """ReceiveResponse: the client learns the outcome of one request."""
        if state.responses and (state.responses[0].error != "NONE"
                                or state.responses[0].offset < state.high_watermark):
            response = state.responses[0]  # acks=all: a success leaves once the high watermark passes it
            rest = replace(state, responses=state.responses[1:])
            record = response.batch.record
            current = record in state.in_flight and state.assigned[record] == response.batch
            if record in state.failed:
                # The send already failed to the application (delivery timeout, or no bump left);
                # the Java producer completes a batch once and ignores later answers.
                yield Transition("ReceiveResponse", (("record", record),), rest,
                                 f"{response.error}: the send already failed, answer ignored")
            elif response.error == "NONE":
                acknowledged = state.acknowledged
                if (record, response.offset) not in acknowledged:
                    acknowledged = acknowledged + ((record, response.offset),)
                yield Transition("ReceiveResponse", (("record", record),),
                                 replace(rest, in_flight=rest.in_flight - {record}, acknowledged=acknowledged),
                                 f"acknowledged at offset {response.offset}")
            elif not current or response.error in (Errors.INVALID_PRODUCER_EPOCH.name,
                                                    Errors.NOT_ENOUGH_REPLICAS.name):
                yield Transition("ReceiveResponse", (("record", record),), rest, f"{response.error}: retry later")
            elif record != min(state.in_flight) and self.guarded("bump_only_for_oldest"):
                # An earlier batch is unresolved: this one is out of order because of it.  The
                # client retries it later instead of bumping (as the Java producer does).
                yield Transition("ReceiveResponse", (("record", record),), rest,
                                 f"{response.error}: an earlier batch is unresolved, retry later")
            elif state.epoch_bumps < self.max_bumps:
                yield Transition("ReceiveResponse", (("record", record),), self._bump_epoch(rest),
                                 f"{response.error}: bump epoch to {state.producer_epoch + 1} (KIP-360), "
                                 "resend unanswered batches from sequence 0", ("epoch_bump",))
            else:
                yield Transition("ReceiveResponse", (("record", record),),
                                 replace(rest, in_flight=rest.in_flight - {record}, failed=rest.failed | {record}),
                                 f"{response.error}: the send fails to the application")

    def _bump_epoch(self, state: IdempotenceState) -> IdempotenceState:
        epoch = state.producer_epoch + 1
        assigned = list(state.assigned)
        for sequence, record in enumerate(sorted(state.in_flight)):
            assigned[record] = Batch(record, epoch, sequence)
        return replace(state, producer_epoch=epoch, next_sequence=len(state.in_flight), assigned=tuple(assigned),
                       epoch_bumps=state.epoch_bumps + 1)

    def lose(self, state: IdempotenceState) -> Iterator[Transition[IdempotenceState]]:
        """Disconnect: the connection breaks; requests not yet read and answers not yet received are lost.

        Up to ``zombies`` times the leader had already read the first queued request off the socket:
        it stays in the broker's request queue as a *zombie request* and is handled later
        (HandleZombie), its answer lost with the connection."""
        if state.losses >= self.max_losses or not (state.requests or state.responses):
            return
        broken = replace(state, requests=(), responses=(), losses=state.losses + 1)
        yield Transition("Disconnect", (), broken,
                         f"lost {len(state.requests)} requests and {len(state.responses)} responses")
        if state.requests and state.zombies < self.max_zombies:
            zombie = state.requests[0]
            yield Transition("Disconnect", (("zombie", zombie.record),),
                             replace(broken, zombie_requests=state.zombie_requests + (zombie,),
                                     zombies=state.zombies + 1),
                             f"the leader had read record {zombie.record}'s request (epoch {zombie.producer_epoch}, "
                             f"sequence {zombie.sequence}); lost {len(state.requests) - 1} requests and "
                             f"{len(state.responses)} responses")

    def expire(self, state: IdempotenceState) -> Iterator[Transition[IdempotenceState]]:
        """Expire: delivery.timeout.ms passes for the oldest unanswered batch while it awaits its
        retry; the send fails to the application (its outcome unknown).  Its sequence is now a gap:
        the next batch is refused with OUT_OF_ORDER_SEQUENCE_NUMBER unless the expired one was
        written after all, and the client bumps its epoch (KIP-360; the Java producer tracks the
        gap as an "unresolved sequence" and bumps as soon as nothing is in flight: same outcome)."""
        if state.timeouts >= self.max_timeouts or not state.in_flight:
            return
        record = min(state.in_flight)
        if not self._needs_retry(state, record):
            return
        yield Transition("Expire", (("record", record),),
                         replace(state, in_flight=state.in_flight - {record}, failed=state.failed | {record},
                                 timeouts=state.timeouts + 1),
                         "delivery timeout: the send fails to the application, outcome unknown")

    def reject_retriable(self, state: IdempotenceState) -> Iterator[Transition[IdempotenceState]]:
        """RejectRetriable: the leader refuses the next request without appending it
        (NOT_ENOUGH_REPLICAS, a transient error the client retries); requests behind it go on."""
        if state.losses >= self.max_losses or not state.requests:
            return
        batch = state.requests[0]
        answer = Response(batch, Errors.NOT_ENOUGH_REPLICAS.name, -1)
        yield Transition("RejectRetriable", (("record", batch.record),),
                         replace(state, requests=state.requests[1:], responses=state.responses + (answer,),
                                 losses=state.losses + 1), Errors.NOT_ENOUGH_REPLICAS.name)

    def failover(self, state: IdempotenceState) -> Iterator[Transition[IdempotenceState]]:
        """Failover: the follower becomes leader; the unreplicated tail is truncated away."""
        if state.failovers >= self.max_failovers:
            return
        lost_state = not self.guarded("followers_keep_producer_state")
        situations = ("failover_with_data",) if state.log else ()
        # The connection to the old leader dies with it: queued requests and answers are lost
        # (the client sees NOT_LEADER_OR_FOLLOWER or a timeout and retries at the new leader).
        # Zombie requests die too: the deposed leader refuses them with NOT_LEADER_OR_FOLLOWER.
        yield Transition("Failover", (), replace(state, log=state.log[: state.high_watermark], requests=(),
                                                 responses=(), zombie_requests=(),
                                                 producer_state_lost=lost_state, failovers=state.failovers + 1),
                         f"new leader keeps offsets below {state.high_watermark}", situations)

    # --- checker interface --------------------------------------------------------------------

    def is_final(self, state: IdempotenceState) -> bool:
        return True

    def canonical(self, state: IdempotenceState) -> Hashable:
        return state

    def render(self, state: IdempotenceState) -> str:
        log = " ".join(f"r{b.record}(e{b.producer_epoch},s{b.sequence})" for b in state.log) or "(empty)"
        known = self.producer_state(state)
        table = "none" if known is None else f"epoch {known[0]}, last sequences {[s for s, _ in known[1]]}"
        return "\n".join((
            f"leader log [{log}]; HW {state.high_watermark}; producer state: {table}",
            f"producer: epoch {state.producer_epoch}, in flight {sorted(state.in_flight)}, "
            f"acknowledged {[f'r{record}@{offset}' for record, offset in state.acknowledged]}",
            f"network: requests {[tuple(b) for b in state.requests]}, "
            f"responses {[(r.batch.record, r.error, r.offset) for r in state.responses]}, "
            f"zombie requests {[tuple(b) for b in state.zombie_requests]}",
        ))

    @property
    def invariants(self) -> tuple[Invariant[IdempotenceState], ...]:
        return (
            Invariant("NoDuplicateBelowHighWatermark", "no record appears twice below the high watermark",
                      self.no_duplicate),
            Invariant("AcknowledgedInSendOrder", "acknowledged offsets increase in the order records were sent",
                      self.in_send_order),
            Invariant("AcknowledgedAtItsOffset", "an acknowledged record is in the log at the offset it was "
                      "acknowledged with, and only one offset", self.at_its_offset),
        )

    def no_duplicate(self, state: IdempotenceState) -> bool:
        records = [b.record for b in state.log[: state.high_watermark]]
        return len(records) == len(set(records))

    def in_send_order(self, state: IdempotenceState) -> bool:
        offsets = [offset for _, offset in sorted(state.acknowledged)]
        return all(a < b for a, b in zip(offsets, offsets[1:], strict=False))

    def at_its_offset(self, state: IdempotenceState) -> bool:
        records = [record for record, _ in state.acknowledged]
        if len(records) != len(set(records)):
            return False
        return all(offset < len(state.log) and state.log[offset].record == record
                   for record, offset in state.acknowledged)

    @property
    def situations(self) -> tuple[Situation, ...]:
        applies = {
            "duplicate_answered": self.max_losses > 0 and self.records > 0,
            "out_of_order": self.max_losses > 0 and self.records > 1,
            # A bump needs a gap in the sequence: a delivery timeout (and a lost request, as only a
            # batch awaiting its retry expires) before a second record.  A fenced request needs,
            # besides, a zombie request from before the bump.
            "epoch_bump": self.records > 1 and self.max_losses > 0 and self.max_timeouts > 0 and self.max_bumps > 0,
            "fenced_epoch": (self.records > 1 and self.max_losses > 0 and self.max_timeouts > 0 and self.max_bumps > 0
                             and self.max_zombies > 0),
            "failover_with_data": self.max_failovers > 0 and self.records > 0,
        }
        return tuple(Situation(name, text, applies[name]) for name, text in SITUATIONS)
