"""The delivery model: at-least-once duplicates but never skips; at-most-once the reverse."""

from __future__ import annotations

from spec.checker import check
from spec.delivery import GUARDS, DeliveryModel


def test_at_least_once_never_skips_and_does_duplicate() -> None:
    result = check(DeliveryModel("at-least-once"))
    assert result.passed and result.unreached == ()
    assert result.coverage["duplicate"] > 0
    assert result.coverage["skip"] == 0


def test_at_most_once_never_duplicates_and_does_skip() -> None:
    result = check(DeliveryModel("at-most-once"))
    assert result.passed and result.unreached == ()
    assert result.coverage["skip"] > 0
    assert result.coverage["duplicate"] == 0


def test_at_most_once_without_generation_fencing_processes_a_record_twice() -> None:
    guard = GUARDS["generation_fencing"]
    result = check(DeliveryModel("at-most-once", guard.witness, frozenset({"generation_fencing"})))
    assert result.violated == ("NoDuplicate",)
    assert len(result.trace) - 1 == 9
