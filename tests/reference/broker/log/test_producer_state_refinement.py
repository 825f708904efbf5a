"""The producer-state table refines spec/idempotence.py: the broker drives, the model judges each step.

A Hypothesis machine sends the leader of a two-replica partition whatever an idempotent producer
(or a confused one) could send: batches with any producer epoch and sequence, retries of earlier
batches, the next batch in sequence, a batch of a bumped epoch.  It lets the follower catch up one
batch at a time and fails over to the follower.  After every step
:class:`~chaos.sim.refinement_idempotence.ProducerStateRefinement` checks that the step is the
model's (``HandleProduce`` with the same answer, ``Replicate``, ``Failover``) and that the
leader's table is the one the model derives from its log.  Planted bugs -- a guard of the
implementation switched off -- must make the check raise.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from chaos.sim.refinement_idempotence import Answer, ProducerStateRefinement, RefinementError
from reference import guards
from reference.broker.log.producer_state import NUM_BATCHES_TO_RETAIN
from spec.idempotence import Batch, IdempotenceModel
from tests.spec.test_idempotence_implementation import PRODUCER_ID, SCRATCH, TwoReplicas

# Kafka's rule for idempotent producers: with no state known any sequence is accepted, so the
# model's stricter first_sequence_zero (transactions v2) is off, as in the side-by-side test.
MODEL = IdempotenceModel("default", {"window": NUM_BATCHES_TO_RETAIN}, frozenset({"first_sequence_zero"}))

EPOCHS = st.integers(0, 3)
SEQUENCES = st.integers(0, 7)


class ProducerStateRefinesModel(RuleBasedStateMachine):
    """The broker's steps, drawn freely; the refinement check is the invariant."""

    @initialize()
    def start(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="refka-refinement-", dir=SCRATCH))
        self.partition = TwoReplicas(self.root)
        self.check = ProducerStateRefinement(MODEL, lambda: self.partition.leader, PRODUCER_ID)
        self.sent: list[Batch] = []
        self.epoch, self.next_sequence = 0, 0

    def produce(self, batch: Batch) -> None:
        answer: Answer = self.partition.produce(batch)
        self.check.produce(batch, answer)

    def new_batch(self, epoch: int, sequence: int) -> Batch:
        batch = Batch(len(self.sent), epoch, sequence)
        self.sent.append(batch)
        return batch

    @rule()
    def send_next_in_sequence(self) -> None:
        """What a well-behaved producer sends next."""
        self.produce(self.new_batch(self.epoch, self.next_sequence))
        self.next_sequence += 1

    @rule(epoch=EPOCHS, sequence=SEQUENCES)
    def send_any(self, epoch: int, sequence: int) -> None:
        """A batch with any epoch and sequence: a gap, a zombie of an old epoch, a new epoch."""
        self.produce(self.new_batch(epoch, sequence))

    @rule()
    def bump_epoch(self) -> None:
        """KIP-360: the producer bumps its epoch and starts again at sequence 0."""
        self.epoch += 1
        self.next_sequence = 0
        self.send_next_in_sequence()

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        """An earlier batch sent again, unchanged: a duplicate, or refused, or appended again."""
        self.produce(data.draw(st.sampled_from(self.sent), label="retried"))

    @rule()
    def replicate(self) -> None:
        if self.partition.follower.log_end_offset < self.partition.leader.log_end_offset:
            self.partition.replicate()
            self.check.step("the follower fetches one batch")

    @rule()
    def fail_over(self) -> None:
        self.partition.fail_over()
        self.check.step("the follower becomes leader")

    @invariant()
    def table_is_the_models(self) -> None:
        if hasattr(self, "check"):
            self.check.check_table("the last step")

    def teardown(self) -> None:
        if hasattr(self, "partition"):
            self.partition.close()
            shutil.rmtree(self.root, ignore_errors=True)


WALK = settings(max_examples=40, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ProducerStateRefinesModel.TestCase.settings = WALK
TestProducerStateRefinesModel = ProducerStateRefinesModel.TestCase

# A planted bug is found in the generate phase alone; shrinking would only make the test slower.
HUNT = settings(WALK, max_examples=200, database=None, phases=[Phase.generate], derandomize=True)


@pytest.mark.parametrize("guard", ["sequence_check", "epoch_fencing", "five_batch_window"])
def test_refinement_catches_a_switched_off_guard(guard: str) -> None:
    """With one of the producer-state guards switched off in the broker (the model keeps it), some
    broker answer is no step of the model: the refinement check raises."""
    with guards.switch_off([guard]), pytest.raises(RefinementError, match="no step of spec/idempotence.py"):
        run_state_machine_as_test(ProducerStateRefinesModel, settings=HUNT)


def test_the_walks_check_every_kind_of_answer() -> None:
    """Not vacuous: the machine's walks compare appends, duplicates and both errors."""
    seen: dict[str, int] = {}

    class Counting(ProducerStateRefinesModel):
        def teardown(self) -> None:
            if hasattr(self, "check"):
                for verdict, count in self.check.verdicts.items():
                    seen[verdict] = seen.get(verdict, 0) + count
            super().teardown()

    run_state_machine_as_test(Counting, settings=settings(HUNT, max_examples=40))
    assert {"append", "duplicate", "OUT_OF_ORDER_SEQUENCE_NUMBER", "INVALID_PRODUCER_EPOCH"} <= set(seen), seen
