"""``refka spec``: exit codes, one-line errors, and what check and mutants print."""

from __future__ import annotations

import pytest

from reference.cli import main


def test_check_passes_with_exit_0_and_prints_statistics_and_coverage(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["spec", "check", "delivery", "--variant", "at-most-once"])
    out = capsys.readouterr().out
    assert code == 0
    assert "all 1 invariants hold" in out and "states/s" in out and "skip:" in out


def test_check_prints_the_trace_and_exits_1_on_a_violation(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["spec", "check", "replication", "--variant", "truncate-to-hw", "--bound", "replicas=2",
                 "--bound", "records=1", "--bound", "leader_changes=1", "--bound", "process_crashes=1"])
    out = capsys.readouterr().out
    assert code == 1
    assert "VIOLATED StrongIsr" in out and " 6. BecomeFollower(replica=1, epoch=0)" in out
    assert "B: epoch 0, follows A; HW 0; log [(empty)]" in out


@pytest.mark.parametrize("argv, message", [
    (["spec", "check", "nosuch"], "unknown model"),
    (["spec", "check", "replication", "--variant", "kip-999"], "unknown variant"),
    (["spec", "check", "replication", "--bound", "colour=3"], "unknown bound"),
    (["spec", "check", "replication", "--bound", "replicas"], "NAME=VALUE"),
    (["spec", "check", "replication", "--bound", "acks=2"], "must be one of"),
])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_mutants_prints_the_table_and_exits_0_when_all_are_killed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spec", "mutants", "delivery"]) == 0
    out = capsys.readouterr().out
    assert "| generation_fencing | at-most-once | NoDuplicate |" in out


def test_mutants_exits_1_when_a_guard_survives(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A guard the model never consults cannot be necessary: its mutant survives and the run fails."""
    import spec.idempotence
    from spec.model import Guard

    bounds = {"records": 1, "window": 1, "losses": 0, "failovers": 0, "epoch_bumps": 0, "zombies": 0, "timeouts": 0}
    monkeypatch.setitem(spec.idempotence.GUARDS, "never_consulted",
                        Guard("never_consulted", "a rule no action looks at", "nothing", bounds))
    assert main(["spec", "mutants", "idempotence"]) == 1
    assert "SURVIVED: never_consulted" in capsys.readouterr().out
