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


def test_the_mutant_runner_covers_both_variants_guards() -> None:
    from spec.mutants import run_mutants
    from spec.registry import entry

    results = run_mutants(entry("delivery"))
    assert [(r.guard.name, r.variant, r.violated) for r in results] == [
        ("generation_fencing", "at-most-once", ("NoDuplicate",)),
        ("commit_next_offset", "at-most-once", ("NoDuplicate",)),
        ("process_before_commit", "at-least-once", ("NoSkip",)),
        ("commit_next_offset", "at-least-once", ("ResumeAfterProcessed",)),
    ]


def test_committing_before_processing_leaves_a_record_behind_the_committed_offset_after_a_crash() -> None:
    """At-least-once with the commit sent first: the commit lands (the committed offset now claims a
    record that was never processed: NoSkip), the consumer crashes before processing, and the
    restarted owner resumes past the record, which no one will ever process."""
    bounds = GUARDS["process_before_commit"].witness
    assert check(DeliveryModel("at-least-once", bounds)).passed
    model = DeliveryModel("at-least-once", bounds, frozenset({"process_before_commit"}))
    result = check(model)
    assert result.violated == ("NoSkip",)
    assert [s.transition.label() for s in result.trace[1:]] == [  # type: ignore[union-attr]
        "Join(member=0): owns the partition from offset 0",
        "CommitOffset(member=0, offset=1): commit before processing",
        "HandleCommit(member=0, offset=1): committed offset 0 -> 1"]
    state = result.trace[-1].state
    for action in ("Crash", "Restart", "Join"):
        state = next(t.state for t in model.transitions(state) if t.action == action)
    assert state.members[0].position == 1 and state.processed == (0,)
    assert not any(t.action == "Process" for t in model.transitions(state))


def test_an_off_by_one_commit_redelivers_the_last_processed_record_on_restart() -> None:
    """Committing the last processed offset instead of the next one: after a restart the owner
    resumes at a record its own accepted commit had declared done.  At-least-once allows
    duplicates, so only ResumeAfterProcessed tells this one from an honest redelivery; in
    at-most-once the same slip is a duplicate, caught by NoDuplicate."""
    bounds = GUARDS["commit_next_offset"].witness
    for variant, invariant, steps in (("at-least-once", "ResumeAfterProcessed", 6), ("at-most-once", "NoDuplicate", 10)):
        assert check(DeliveryModel(variant, bounds)).passed
        result = check(DeliveryModel(variant, bounds, frozenset({"commit_next_offset"})))
        assert result.violated == (invariant,)
        assert len(result.trace) - 1 == steps
        labels = [s.transition.action for s in result.trace[1:]]  # type: ignore[union-attr]
        assert labels[labels.index("Crash"):labels.index("Crash") + 3] == ["Crash", "Restart", "Join"]
