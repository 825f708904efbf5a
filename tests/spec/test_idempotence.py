"""The idempotence model: the unmutated protocol passes; each guard is needed."""

from __future__ import annotations

import pytest

from spec.checker import check
from spec.idempotence import GUARDS, IdempotenceModel


def test_the_unmutated_producer_never_duplicates_or_reorders() -> None:
    result = check(IdempotenceModel())
    assert result.passed, result.violated
    assert result.unreached == ()
    assert result.coverage["duplicate_answered"] > 0 and result.coverage["out_of_order"] > 0


KILLED = sorted(set(GUARDS) - {"epoch_fencing"})


@pytest.mark.parametrize("guard", KILLED)
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


def test_epoch_fencing_is_a_known_survivor_of_this_model() -> None:
    """A known weakness, reported by ``refka spec mutants idempotence``: with one producer
    incarnation, one ordered connection and no spurious bump, no request from an older epoch
    can reach the broker after a newer one, so removing the fence changes nothing here."""
    witness = GUARDS["epoch_fencing"].witness
    assert check(IdempotenceModel("default", witness, frozenset({"epoch_fencing"}))).passed
