"""The guard switches (reference/guards.py): on by default, switched off only by name, only known names,
named as the spec names them; and the simulator notices when some are switched off (refka sim mutants)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from dataclasses import replace

import pytest

from chaos.sim.mutants import MUTANT_SETTINGS, format_table, run_mutant
from chaos.sim.run import SimConfig, SimResult, simulate
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
    # The fault mix draws no power loss, so unclean_shutdown_leaves_isr is not caught
    # (chaos/sim/mutants.py): the survivor is reported, and fails the command.
    assert main(["sim", "mutants", "--seeds", "1", "--duration", "1", "--guard-off",
                 "unclean_shutdown_leaves_isr"]) == 1
    out = capsys.readouterr().out
    assert "| unclean_shutdown_leaves_isr | SURVIVED |" in out
    assert "SURVIVORS within 1 seeds: unclean_shutdown_leaves_isr" in out


# -- the idempotent producer's guards and min.insync.replicas (the simulated producer keeps five
# batches in flight, retries with the original sequence, meets broken connections whose requests
# arrive late, and is replaced by new instances with the next epoch: chaos/sim/clients.py) ------

def _mutant_and_unmodified(guard: str, seed: int, disabled: frozenset[str] = frozenset()) -> tuple[SimResult, SimResult]:
    """``seed`` (5 simulated seconds, safety phase only) with ``guard`` off, and the same seed with
    every guard on and the liveness phase too."""
    mutant = simulate(SimConfig(seed=seed, duration_ms=5_000, liveness=False, guards_off=frozenset({guard}),
                                disabled_invariants=disabled))
    assert guards.switched_off() == frozenset()
    unmodified = simulate(SimConfig(seed=seed, duration_ms=5_000, disabled_invariants=disabled))
    return mutant, unmodified


def test_without_the_sequence_check_a_later_batch_is_written_before_an_earlier_one() -> None:
    """sequence_check off: a batch refused (NOT_ENOUGH_REPLICAS) and retried lands after a later one
    that was in flight with it; the producer-state table breaks its own rule at once, and without
    that check the producer's acknowledgements come back out of sequence order."""
    mutant, unmodified = _mutant_and_unmodified("sequence_check", seed=3)
    assert mutant.failure == "ProducerStateValid" and "in sequence" in mutant.violations[0].detail
    assert unmodified.failure == ""
    mutant, unmodified = _mutant_and_unmodified("sequence_check", seed=3, disabled=frozenset({"ProducerStateValid"}))
    assert mutant.failure == "AcknowledgedInSendOrder"
    assert unmodified.failure == ""


def test_without_the_five_batch_window_a_retry_of_an_older_batch_is_written_twice() -> None:
    """five_batch_window off: only the last batch answers a retry, so the retry of an older in-flight
    batch (its first answer lost) is refused OUT_OF_ORDER_SEQUENCE_NUMBER; the producer bumps its
    epoch (KIP-360) and the batch is written a second time."""
    mutant, unmodified = _mutant_and_unmodified("five_batch_window", seed=9)
    assert mutant.failure == "NoDuplicateBelowHighWatermark"
    assert mutant.coverage["producer-epoch-bump"] >= 1
    assert unmodified.failure == ""


def test_without_epoch_fencing_a_zombie_instance_writes_after_its_successor() -> None:
    """epoch_fencing off: a batch of a replaced producer instance (an older epoch of the same producer
    id), still in flight, is appended after the new instance wrote with the next epoch."""
    mutant, unmodified = _mutant_and_unmodified("epoch_fencing", seed=11)
    assert mutant.failure == "NoWriteFromFencedEpoch"
    assert unmodified.failure == "" and unmodified.coverage["producer-new-instance"] >= 1


def test_without_min_insync_replicas_an_acks_all_record_is_acknowledged_on_one_replica() -> None:
    """min_insync_replicas off: with the ISR down to the leader, an acks=all Produce is answered once
    the leader alone holds the record (AckedOnMinIsr of spec/replication.py)."""
    mutant, unmodified = _mutant_and_unmodified("min_insync_replicas", seed=12)
    assert mutant.failure == "AckedOnMinIsr" and "min.insync.replicas=2" in mutant.violations[0].detail
    assert unmodified.failure == ""


# -- KIP-320's epoch-start rule for ISR expansion (the failover-while-lagging shape of the fault draw:
# chaos/sim/faults.py) -------------------------------------------------------------------------------

SEED_EPOCH_START = 28  # one of the seeds `refka sim mutants --guard-off expand_after_epoch_start --seeds 30` catches


def test_without_the_epoch_start_rule_a_follower_lacking_acknowledged_records_is_proposed_for_the_isr() -> None:
    """expand_after_epoch_start off (KAFKA-7128): a follower fenced while paused resumes and catches
    up, a batch per fetch, from a leader just elected in place of an isolated one, whose high
    watermark still lags its log end (the old leader's last answers were lost).  At an offset
    between that high watermark and the new epoch's start the leader asks to add the follower to
    the ISR while it lacks records the old leader acknowledged.  With the rule the follower joins
    only past the epoch's start, in the same run."""
    base = SimConfig(seed=SEED_EPOCH_START, duration_ms=20_000, liveness=False, node_settings=dict(MUTANT_SETTINGS))
    mutant = simulate(replace(base, guards_off=frozenset({"expand_after_epoch_start"})))
    assert guards.switched_off() == frozenset()
    assert mutant.failure in {"IsrJoinHoldsAcknowledged", "StrongIsr"}, mutant.violations
    assert mutant.coverage["follower-between-hw-and-epoch"] >= 1
    unmodified = simulate(replace(base, liveness=True))
    assert unmodified.failure == ""
    assert unmodified.coverage["follower-between-hw-and-epoch"] >= 1, "the situation arises with the rule on too"


# -- KIP-966's unclean shutdown (a power loss, chaos/sim/disk.py; the lost-tail-then-failover shape of
# the fault draw, chaos/sim/faults.py) ----------------------------------------------------------------

SEED_UNCLEAN_SHUTDOWN = 12  # one of the seeds `refka sim mutants --guard-off unclean_shutdown_leaves_isr --seeds 30` catches


def test_without_leaving_the_isr_after_an_unclean_shutdown_a_follower_that_lost_its_tail_is_elected() -> None:
    """unclean_shutdown_leaves_isr off (KIP-966): with the other follower out of the ISR, a follower
    in the ISR loses power and the unflushed tail of its log; fenced, it leaves the ISR for the ELR
    (the ISR is below min.insync.replicas), boots and registers without a clean-shutdown epoch, and
    stays in the ELR; the leader is isolated, and the follower is elected from the ELR without records
    that were acknowledged.  With the rule it leaves the ELR when it registers, and the partition
    waits for the leader, in the same run."""
    base = SimConfig(seed=SEED_UNCLEAN_SHUTDOWN, duration_ms=20_000, liveness=False,
                     node_settings=dict(MUTANT_SETTINGS), power_losses=True)
    mutant = simulate(replace(base, guards_off=frozenset({"unclean_shutdown_leaves_isr"})))
    assert guards.switched_off() == frozenset()
    assert mutant.failure in {"LeaderCompleteness", "StrongIsr", "NoCommittedRecordLost"}, mutant.violations
    assert mutant.coverage["power-loss"] == 1
    unmodified = simulate(replace(base, liveness=True))
    assert unmodified.failure == ""
    assert unmodified.coverage["power-loss"] == 1 and unmodified.coverage["torn-tail-recovered"] >= 1


# -- KIP-279's truncation to the last epoch both logs share (the leader-without-the-follower's-epoch
# shape of the fault draw, chaos/sim/faults.py) --------------------------------------------------------

SEED_EPOCH_LINEAGE = 7  # the first seed `refka sim mutants --guard-off match_epoch_lineage` catches


@pytest.mark.slow  # the mutant's livelock runs the whole liveness budget
def test_without_the_epoch_lineage_rule_a_follower_holding_an_epoch_its_leader_lacks_never_catches_up() -> None:
    """match_epoch_lineage off (KIP-279): a follower that led an epoch from a shorter log than the
    next leader's, and wrote in it, restarts as that leader's follower.  The leader answers its
    Fetch with where the epoch before ends (KIP-595's diverging epoch); KIP-101's rule truncates only
    to there, keeping records of an epoch the leader never had below it, so the next Fetch gets the
    same answer, for ever: the follower never rejoins the ISR (Liveness; no record is lost, as
    tests/chaos/sim/test_guard_situations.py shows step by step).  With the rule the same run heals;
    without the shape the mutant passes the same seed."""
    import random

    from chaos.sim.faults import (
        draw_independent_faults,
        draw_leader_without_the_followers_epoch,
        draw_profile,
    )

    base = SimConfig(seed=SEED_EPOCH_LINEAGE, duration_ms=20_000, liveness_budget_ms=30_000,
                     node_settings=dict(MUTANT_SETTINGS))
    mutant = simulate(replace(base, guards_off=frozenset({"match_epoch_lineage"})))
    assert guards.switched_off() == frozenset()
    assert mutant.failure == "Liveness", mutant.violations
    assert mutant.coverage["truncation-kip279-differs-from-kip101"] >= 1
    unmodified = simulate(base)
    assert unmodified.failure == ""
    assert unmodified.coverage["truncation-kip279-differs-from-kip101"] >= 1, "the situation arises with the rule on too"
    rng = random.Random(f"faults/{SEED_EPOCH_LINEAGE}")
    profile = draw_profile(rng)  # one that neither crashes, pauses nor isolates: no other shape, then this one
    draw_independent_faults(rng, profile, 3, 20_000)
    rng.random()
    shape = draw_leader_without_the_followers_epoch(rng, 20_000)
    assert shape and all(fault in mutant.faults for fault in shape)
    without_shape = simulate(replace(base, faults=[fault for fault in mutant.faults if fault not in shape],
                                     guards_off=frozenset({"match_epoch_lineage"})))
    assert without_shape.failure == "" and without_shape.coverage["truncation-kip279-differs-from-kip101"] == 0
