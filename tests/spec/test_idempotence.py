"""The idempotence model: the unmutated protocol passes; each guard is needed."""

from __future__ import annotations

import pytest

from spec.checker import check
from spec.idempotence import GUARDS, IdempotenceModel, IdempotenceState


def test_the_unmutated_producer_never_duplicates_or_reorders() -> None:
    result = check(IdempotenceModel())
    assert result.passed, result.violated
    assert result.unreached == ()
    assert result.coverage["duplicate_answered"] > 0 and result.coverage["out_of_order"] > 0
    # The default bounds reach a KIP-360 bump and a zombie request of the old epoch being fenced.
    assert result.coverage["epoch_bump"] > 0 and result.coverage["fenced_epoch"] > 0


@pytest.mark.parametrize("guard", sorted(GUARDS))
def test_switching_a_guard_off_yields_a_duplicate_or_a_reordering(guard: str) -> None:
    witness = GUARDS[guard].witness
    assert check(IdempotenceModel("default", witness)).passed
    result = check(IdempotenceModel("default", witness, frozenset({guard})))
    assert set(result.violated) & {"NoDuplicateBelowHighWatermark", "AcknowledgedInSendOrder"}


def test_six_in_flight_against_a_five_batch_window_duplicates() -> None:
    """The Kafka numbers themselves: window 5, six requests in flight."""
    bounds = {"records": 6, "window": 5, "losses": 0, "failovers": 1, "epoch_bumps": 1}
    assert check(IdempotenceModel("default", bounds)).passed
    result = check(IdempotenceModel("default", bounds, frozenset({"in_flight_within_window"})))
    assert "NoDuplicateBelowHighWatermark" in result.violated


def test_without_epoch_fencing_a_zombie_request_makes_the_client_write_a_record_twice() -> None:
    """The zombie request of epoch 0 (read before its connection broke) is handled after the
    client bumped to epoch 1 and wrote record 1; unfenced, it moves the broker back to epoch 0,
    and the client's retry of record 1 (epoch 1, sequence 0) is written a second time."""
    model = IdempotenceModel("default", GUARDS["epoch_fencing"].witness, frozenset({"epoch_fencing"}))
    result = check(model)
    assert result.violated == ("NoDuplicateBelowHighWatermark",)
    actions = [step.transition.action for step in result.trace if step.transition is not None]
    assert "HandleZombie" in actions and "Expire" in actions
    final = result.trace[-1].state
    assert [(b.record, b.producer_epoch) for b in final.log] == [(1, 1), (0, 0), (1, 1)]


def take(model: IdempotenceModel, state: IdempotenceState, label: str) -> tuple[IdempotenceState, str]:
    """The transition whose label (without its note) is ``label``: (next state, note)."""
    transition = next(t for t in model.transitions(state) if t.label().split(":")[0] == label)
    return transition.state, transition.note


def test_the_same_zombie_is_refused_with_invalid_producer_epoch_when_fenced() -> None:
    """The counterexample's first nine steps with the fence on: the zombie is refused; the retry
    of record 1 after a lost answer is a duplicate answered with its original offset."""
    model = IdempotenceModel("default", GUARDS["epoch_fencing"].witness)
    state = next(iter(model.initial_states()))
    notes = []
    for label in ("Send(record=0)", "Disconnect(zombie=0)", "Expire(record=0)", "Send(record=1)",
                  "HandleProduce(record=1, epoch=0, sequence=1)", "ReceiveResponse(record=1)", "Retry(record=1)",
                  "HandleProduce(record=1, epoch=1, sequence=0)", "HandleZombie(record=0, epoch=0, sequence=0)",
                  "Replicate(offset=0)", "Disconnect()", "Retry(record=1)",
                  "HandleProduce(record=1, epoch=1, sequence=0)"):
        state, note = take(model, state, label)
        notes.append(note)
    assert notes[8] == "INVALID_PRODUCER_EPOCH; the answer is lost"
    assert notes[12] == "duplicate of offset 0: answered with it"
    assert [(b.record, b.producer_epoch) for b in state.log] == [(1, 1)]


def test_two_zombie_requests_fill_the_gap_after_a_bump_a_known_limit_of_an_untimed_model() -> None:
    """Documented in the module docstring and spec/README.md: with ``zombies=2`` the unmutated
    model duplicates (Kafka relies on delivery.timeout.ms being far longer than a request waits
    in the broker's queue); the default ``zombies=1`` keeps the model honest about that."""
    bounds = {"records": 2, "window": 1, "losses": 2, "failovers": 0, "epoch_bumps": 1, "zombies": 2, "timeouts": 1}
    result = check(IdempotenceModel("default", bounds))
    assert result.violated == ("NoDuplicateBelowHighWatermark",)
    assert check(IdempotenceModel("default", {**bounds, "zombies": 1})).passed
