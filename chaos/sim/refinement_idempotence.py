"""Refinement of the producer-state table: every step the broker takes is a step of spec/idempotence.py.

Theory of operation
-------------------
``spec/idempotence.py`` models one idempotent producer against one partition; its *broker side*
is the leader's log of single-record batches ``(record, producer epoch, sequence)``, the high
watermark, and a flag saying the producer state was lost.  The producer-state table itself is not
a field of the model: it is a function of the log (:meth:`IdempotenceModel.producer_state`: the
epoch of the last batch and the last five ``(sequence, offset)`` pairs of that epoch).

Here the *implementation* drives and the model judges, the converse of
``tests/spec/test_idempotence_implementation.py`` (which walks the model and replays each step on
the broker).  The abstraction function :func:`abstract` maps a broker's leader
:class:`~reference.broker.partition.Partition` to the model's broker side, field by field:

=======================  ==========================================================================
model field              read from the implementation
=======================  ==========================================================================
``log``                  the leader's ``PartitionLog``, batch by batch: the record id is the number
                         in the record's value ``r<id>``, epoch and sequence from the batch header
                         (``producer_epoch``, ``base_sequence``)
``high_watermark``       ``Partition.high_watermark``
``producer_state_lost``  always False: the broker rebuilds the table from snapshots and the log
                         (the guard ``followers_keep_producer_state`` is what it implements)
the table (derived)      ``ProducerStateManager.last_entry(pid)``: ``producer_epoch`` and each cached
                         ``BatchMetadata`` as ``(last_seq, last_offset)`` -- compared with
                         ``model.producer_state(abstract state)``, the model's own derivation
=======================  ==========================================================================

The model's client and network (requests in flight, retries, epoch bumps, zombies, timeouts) are
not the broker's: they are existential.  A batch the implementation receives is placed at the head
of the model's request queue, and the broker's step must then be the model's ``HandleProduce`` of
it: same verdict (appended at the same offset, a duplicate answered with the same original
offset, or the same error code), and the same broker side afterwards.  The other broker steps are
searched among the model's broker actions (:data:`BROKER_ACTIONS`): the follower catching up is
``Replicate`` (one model step per batch), a leader change is ``Failover``, and a restart that
rebuilds the table from its files must be a stutter (the abstract state unchanged).

A mismatch raises :class:`RefinementError` with the event, both abstract states and the model's
candidates; after every step the implementation's table must equal the model's derivation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import NoReturn

from reference.broker.partition import Partition
from reference.records.batch import RecordBatch, iter_batches
from spec.checker import Transition
from spec.idempotence import Batch, IdempotenceModel, IdempotenceState

Table = tuple[int, tuple[tuple[int, int], ...]] | None  # the model's producer_state(): epoch, (sequence, offset)
Answer = tuple[str, int]  # ("append", offset) | ("duplicate", original offset) | (error name, -1)

# The model's actions that belong to the broker; the rest are the client's and the network's.
BROKER_ACTIONS = ("Replicate", "Failover")
MAX_STEPS_PER_EVENT = 8  # a catch-up of several batches is one Replicate each


class RefinementError(AssertionError):
    """An implementation step that no enabled model step (or stutter) explains."""


def record_value(record: int) -> bytes:
    """The value carrying the model's record id, as the abstraction reads it back."""
    return b"r%d" % record


def log_batches(partition: Partition) -> tuple[Batch, ...]:
    """Every batch of ``partition``'s log as the model writes it: (record, epoch, sequence).
    A read stops at a segment's end, so it reads on from where the last one stopped."""
    log = partition.log
    found: list[Batch] = []
    while log.log_start_offset + len(found) < log.log_end_offset:
        data = log.read(log.log_start_offset + len(found), 1 << 24, log.log_end_offset).records
        for position, header in iter_batches(data):
            (record,) = RecordBatch.decode(data, position).records  # the model's batches hold one record
            assert record.value is not None and record.value.startswith(b"r"), f"not a model record: {record.value!r}"
            found.append(Batch(int(record.value[1:]), header.producer_epoch, header.base_sequence))
    return tuple(found)


def abstract(leader: Partition) -> IdempotenceState:
    """The model's broker side of the leader ``leader`` (see the table in the module docstring)."""
    return IdempotenceState(log=log_batches(leader), high_watermark=leader.high_watermark, producer_state_lost=False)


def implementation_table(partition: Partition, producer_id: int) -> Table:
    """The partition's producer-state entry in the model's terms, None when it has none."""
    entry = partition.log.producer_state.last_entry(producer_id)
    if entry is None:
        return None
    return entry.producer_epoch, tuple((batch.last_seq, batch.last_offset) for batch in entry.batches)


def broker_side(state: IdempotenceState) -> tuple[object, ...]:
    """What the abstraction maps: the model's broker fields."""
    return state.log, state.high_watermark, state.producer_state_lost


class ProducerStateRefinement:
    """Checks each step of a leader against ``model``; ``leader()`` names the current leader."""

    def __init__(self, model: IdempotenceModel, leader: Callable[[], Partition], producer_id: int) -> None:
        self.model = model
        self.leader = leader
        self.producer_id = producer_id
        self.state = abstract(leader())
        self.steps: list[str] = []
        self.verdicts: dict[str, int] = {}  # how many answers of each kind were checked
        self.check_table("the start")

    def produce(self, batch: Batch, answer: Answer) -> None:
        """The leader answered ``answer`` to ``batch``: the model's HandleProduce must agree."""
        event = f"produce {tuple(batch)} -> {answer}"
        incoming = replace(self.state, requests=(batch,))
        (handled,) = self.model.handle_request(incoming)  # the head of the queue: exactly one step
        response = handled.state.responses[-1]
        verdict = "append" if handled.state.log != self.state.log else "duplicate"
        expected: Answer = (verdict, response.offset) if response.error == "NONE" else (response.error, -1)
        after = abstract(self.leader())
        if answer != expected or broker_side(after) != broker_side(handled.state):
            self.fail(event, after, [handled], f"the model answers {expected}")
        self.verdicts[expected[0]] = self.verdicts.get(expected[0], 0) + 1
        self.advance(event, after)

    def step(self, event: str) -> None:
        """Any other broker step: a stutter, or a short run of the model's broker actions."""
        after = abstract(self.leader())
        if broker_side(after) != broker_side(self.state):
            path = self.search(after)
            if path is None:
                self.fail(event, after, list(self.broker_transitions(self.state)), "no run of broker steps reaches it")
            event += " = " + ", ".join(t.label() for t in path)
        self.advance(event, after)

    def search(self, after: IdempotenceState) -> list[Transition[IdempotenceState]] | None:
        """The shortest run of broker steps from the current abstract state to ``after``'s broker side."""
        target = broker_side(after)
        frontier: list[tuple[IdempotenceState, list[Transition[IdempotenceState]]]] = [(self.state, [])]
        for _ in range(MAX_STEPS_PER_EVENT):
            following = []
            for state, path in frontier:
                for transition in self.broker_transitions(state):
                    if broker_side(transition.state) == target:
                        return path + [transition]
                    following.append((transition.state, path + [transition]))
            frontier = following
        return None

    def broker_transitions(self, state: IdempotenceState) -> Iterator[Transition[IdempotenceState]]:
        yield from self.model.replicate(state)
        yield from self.model.failover(state)

    def advance(self, event: str, after: IdempotenceState) -> None:
        self.steps.append(event)
        # Only the broker side is the implementation's; the model's counters stay where they were.
        self.state = replace(self.state, log=after.log, high_watermark=after.high_watermark,
                             producer_state_lost=after.producer_state_lost)
        self.check_table(event)

    def check_table(self, event: str) -> None:
        table, expected = implementation_table(self.leader(), self.producer_id), self.model.producer_state(self.state)
        if table != expected:
            raise RefinementError(f"after {event}: the leader's producer state {table} is not the model's {expected}"
                                  f"\n{self.model.render(self.state)}\nsteps:{self.trail()}")

    def fail(self, event: str, after: IdempotenceState, candidates: list[Transition[IdempotenceState]],
             why: str) -> NoReturn:
        lines = [f"the implementation's step '{event}' is no step of spec/idempotence.py ({why})",
                 "before:", self.model.render(self.state), "after (implementation):", self.model.render(after),
                 "model candidates:"]
        lines += [f"  {t.label()} -> log {list(t.state.log)}, HW {t.state.high_watermark}" for t in candidates]
        raise RefinementError("\n".join(lines) + f"\nsteps:{self.trail()}")

    def trail(self) -> str:
        return "".join(f"\n  {step}" for step in self.steps[-20:])
