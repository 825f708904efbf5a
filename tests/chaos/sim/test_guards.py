"""The guard switches (reference/guards.py): on by default, switched off only by name, only known names,
named as the spec names them; and the simulator notices when some are switched off (refka sim mutants)."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from chaos.sim.mutants import format_table, run_mutant
from chaos.sim.run import SimConfig, simulate
from reference import guards
from reference.cli import main
from spec import idempotence, replication


def test_every_guard_is_on_unless_switched_off() -> None:
    assert guards.switched_off() == frozenset()
    assert all(guards.on(name) for name in guards.KNOWN_GUARDS)


def test_switching_off_is_scoped_to_the_block_and_to_the_names_given() -> None:
    with guards.switch_off({"hw_waits_for_isr"}):
        assert not guards.on("hw_waits_for_isr")
        assert guards.on("clean_election")
    assert guards.on("hw_waits_for_isr")


@pytest.mark.parametrize("typo", ["hw_wait_for_isr", "clean-election", ""])
def test_an_unknown_guard_name_is_refused_everywhere(typo: str) -> None:
    with pytest.raises(ValueError, match="unknown guard"):
        with guards.switch_off({typo}):
            pass
    with pytest.raises(ValueError, match="unknown guard"):
        guards.on(typo)


def test_every_switchable_guard_is_a_guard_of_the_spec_under_the_same_name() -> None:
    spec_names = set(replication.GUARDS) | set(idempotence.GUARDS)
    assert set(guards.KNOWN_GUARDS) <= spec_names


def test_the_environment_variable_switches_guards_off_and_rejects_a_typo() -> None:
    probe = "from reference import guards; print(sorted(guards.switched_off()))"
    env = {"REFKA_SIM_GUARDS_OFF": "sequence_check, clean_election", "PATH": ""}
    answer = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert answer.stdout.strip() == "['clean_election', 'sequence_check']"
    unset = subprocess.run([sys.executable, "-c", probe], env={"PATH": ""}, capture_output=True, text=True, check=True)
    assert unset.stdout.strip() == "[]"
    typo = subprocess.run([sys.executable, "-c", probe], env={"REFKA_SIM_GUARDS_OFF": "sequence_chek", "PATH": ""},
                          capture_output=True, text=True)
    assert typo.returncode != 0 and "unknown guard" in typo.stderr


# -- the simulator catches a guard switched off (refka sim mutants) ----------------------------------

def _caught_at(guard: str, seed: int, duration_ms: int, liveness: bool = False) -> tuple[str, str]:
    """Run ``seed`` with ``guard`` off (shrinking a little), and with every guard on; both failures."""
    base = SimConfig(seed=seed, duration_ms=duration_ms, liveness=liveness)
    outcome = run_mutant(guard, base, [seed], shrink_runs=6)
    assert outcome.failing is not None, f"{guard} switched off survived seed {seed}"
    assert outcome.shrunk is not None and outcome.shrunk.result.failure == outcome.failing.failure
    assert guard in format_table([outcome]) and "SURVIVED" not in format_table([outcome])
    assert guards.switched_off() == frozenset()  # switched back on after the run
    unmodified = simulate(base)
    return outcome.failing.failure, unmodified.failure


def test_the_simulator_catches_a_high_watermark_that_does_not_wait_for_the_isr() -> None:
    """hw_waits_for_isr off: the leader's HW is its own LEO, and an ISR member lacks records below it."""
    mutant, unmodified = _caught_at("hw_waits_for_isr", seed=1, duration_ms=10_000)
    assert mutant in {"WeakIsr", "StrongIsr", "ValidHighWatermark"}
    assert unmodified == ""


def test_the_simulator_catches_a_follower_that_truncates_to_its_own_high_watermark() -> None:
    """truncate_by_leader_epoch off (before KIP-101): a follower starting to fetch truncates to its HW,
    which lags the leader's, and drops records the leader counts as committed in its ISR."""
    # It shows when the faults heal: the restarted node truncates as it starts to follow.
    mutant, unmodified = _caught_at("truncate_by_leader_epoch", seed=1, duration_ms=10_000, liveness=True)
    assert mutant in {"WeakIsr", "StrongIsr", "LeaderCompleteness", "NoCommittedRecordLost"}
    assert unmodified == ""


def test_refka_sim_mutants_prints_the_catching_invariant_and_a_replay_that_fails_again(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "mutants", "--seeds", "1", "--duration", "3", "--guard-off", "hw_waits_for_isr",
                 "--shrink-runs", "3"]) == 0
    out = capsys.readouterr().out
    assert "baseline (guards on), seeds 1..1: all passed" in out
    row = next(line for line in out.splitlines() if line.startswith("| hw_waits_for_isr |"))
    assert row.split("|")[2].strip() in {"WeakIsr", "StrongIsr", "ValidHighWatermark"}
    replay = next(line.strip() for line in out.splitlines() if line.strip().startswith("refka sim run "))
    assert "--guard-off hw_waits_for_isr" in replay and "--set replica.fetch.max.bytes=1" in replay
    assert guards.switched_off() == frozenset()
    assert main(shlex.split(replay)[1:]) == 1, "the shrunk run replays from its command, guard off"
    assert "FAILED (" in capsys.readouterr().out


def test_refka_sim_mutants_exits_1_when_a_guard_survives(capsys: pytest.CaptureFixture[str]) -> None:
    # The simulated producer keeps one batch in flight, so it never sends a batch out of order and
    # sequence_check cannot be caught (chaos/sim/mutants.py): the survivor is reported, and fails.
    assert main(["sim", "mutants", "--seeds", "1", "--duration", "1", "--guard-off", "sequence_check"]) == 1
    out = capsys.readouterr().out
    assert "| sequence_check | SURVIVED |" in out and "SURVIVORS within 1 seeds: sequence_check" in out
