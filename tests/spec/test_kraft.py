"""The KRaft model: both variants are safe; each Raft rule, switched off, shows its classic failure;
pre-vote keeps a lone timed-out voter from deposing a healthy leader; the symmetric key is sound."""

from __future__ import annotations

import functools
import random

import pytest

from spec.checker import Result, check, format_result
from spec.kraft import GUARDS, NO_VOTER, KraftModel, KraftState, Voter
from tests.spec.test_random_walks import WALK, walker

SMALL = {"voters": 3, "records": 2, "elections": 1, "crashes": 1}


@functools.cache
def _mutant(guard: str) -> tuple[KraftModel, Result[KraftState]]:
    """The guard's mutant checked at its witness bounds (cached: several tests read the trace)."""
    model = KraftModel(GUARDS[guard].witness_variant or "kip-996", GUARDS[guard].witness, frozenset({guard}))
    return model, check(model)


def _labels(result: object) -> list[str]:
    return [step.transition.label() for step in result.trace[1:]]  # type: ignore[attr-defined]


@pytest.mark.parametrize("variant", ["kip-996", "classic"])
def test_both_variants_are_safe_with_one_election_and_a_crash(variant: str) -> None:
    result = check(KraftModel(variant, SMALL))
    assert result.passed, result.violated
    assert result.unreached == ()
    assert result.coverage["truncated_suffix"] > 0 and result.coverage["restart_after_vote"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["kip-996", "classic"])
def test_both_variants_are_safe_at_the_default_bounds(variant: str) -> None:
    result = check(KraftModel(variant))
    assert result.passed, result.violated
    assert result.unreached == ()
    assert result.statistics.states == {"kip-996": 180802, "classic": 107743}[variant]


# --- each guard, and the failure it prevents ------------------------------------------------------

@pytest.mark.parametrize("guard, invariant, steps", [
    ("one_vote_per_epoch", "ElectionSafety", 4),
    ("up_to_date_vote", "LeaderCompleteness", 5),
    ("vote_durable", "ElectionSafety", 6),
    ("commit_own_epoch", "LeaderCompleteness", 13),
    ("truncate_on_divergence", "Durability", 6),
    ("majority_hw", "Durability", 1),
])
def test_switching_a_guard_off_breaks_the_invariant_it_protects(guard: str, invariant: str, steps: int) -> None:
    witness, variant = GUARDS[guard].witness, GUARDS[guard].witness_variant or "kip-996"
    assert check(KraftModel(variant, witness)).passed
    model, result = _mutant(guard)
    print(format_result(model, result))
    assert result.violated == (invariant,)
    assert len(result.trace) - 1 == steps


def test_two_leaders_in_one_epoch_when_a_vote_is_forgotten_on_restart() -> None:
    _, result = _mutant("vote_durable")
    actions = [step.transition.action for step in result.trace[1:]]  # type: ignore[union-attr]
    assert sorted(actions) == sorted(["Timeout", "Timeout", "Vote", "Crash", "Restart", "Vote"])
    final = result.trace[-1].state
    assert sorted(epoch for epoch, _ in final.leaders) == [1, 2, 2]


def test_figure_8_an_old_epoch_entry_counted_on_a_majority_is_overwritten() -> None:
    """Raft's figure 8 with three voters: A's r0@e1 reaches a majority while A leads epoch 3; without
    the own-epoch rule A commits it, and B, whose last entry r1@e2 is newer, wins epoch 4 without r0."""
    _, result = _mutant("commit_own_epoch")
    final = result.trace[-1].state
    assert [c.entry for c in final.committed] == [(1, 0)]
    winner = next(v for v in final.voters if v.role == "leader" and v.epoch == 4)
    assert winner.log == ((2, 1),)
    assert any("leader's high watermark 1" in label for label in _labels(result))


def test_a_follower_that_skips_the_divergence_check_keeps_a_deposed_leaders_entry_below_its_hw() -> None:
    _, result = _mutant("truncate_on_divergence")
    final = result.trace[-1].state
    assert final.voters[0].log == ((1, 0),) and final.voters[0].high_watermark == 1
    assert [c.entry for c in final.committed] == [(2, 1)]


# --- pre-vote: liveness, not safety ----------------------------------------------------------------

def _step(model: KraftModel, state: KraftState, label: str) -> tuple[KraftState, str]:
    transition = next(t for t in model.transitions(state) if t.label().split(":")[0] == label)
    return transition.state, transition.note


def test_pre_vote_keeps_a_lone_timed_out_voter_from_deposing_a_healthy_leader() -> None:
    """KIP-996: C times out (say, behind a partition) while A leads and B hears from A.  Classic
    Raft bumps the epoch and A, asked for its vote, steps down; with pre-vote both refuse and the
    epoch stays 1.  Both variants are safe: what pre-vote protects is availability."""
    classic = KraftModel("classic", SMALL)
    state = next(iter(classic.initial_states()))
    state, _ = _step(classic, state, "Timeout(voter=2)")
    state, _ = _step(classic, state, "Vote(candidate=2, voter=0)")
    assert state.voters[0].role != "leader" and state.voters[0].epoch == 2

    pre_vote = KraftModel("kip-996", SMALL)
    state = next(iter(pre_vote.initial_states()))
    state, _ = _step(pre_vote, state, "Timeout(voter=2)")
    for voter in (0, 1):
        state, note = _step(pre_vote, state, f"PreVote(prospective=2, voter={voter})")
        assert note == "refused: heard from a leader within the fetch timeout"
    assert state.voters[0].role == "leader" and {v.epoch for v in state.voters} == {1}
    assert not any(t.action == "Vote" for t in pre_vote.transitions(state))


# --- the canonical key ----------------------------------------------------------------------------

def _renamed(state: KraftState, perm: tuple[int, ...]) -> KraftState:
    """The same state with voter ``v`` called ``perm[v]``."""
    def name(v: int) -> int:
        return NO_VOTER if v == NO_VOTER else perm[v]

    voters: list[Voter] = [Voter()] * len(perm)
    for old, voter in enumerate(state.voters):
        fetched = list(voter.fetched)
        for who, offset in enumerate(voter.fetched):
            fetched[perm[who]] = offset
        voters[perm[old]] = voter._replace(voted_for=name(voter.voted_for), leader=name(voter.leader),
                                           granted=frozenset(perm[g] for g in voter.granted), fetched=tuple(fetched))
    return state._replace(voters=tuple(voters), leaders=frozenset((e, perm[v]) for e, v in state.leaders))


@pytest.mark.parametrize("variant", ["kip-996", "classic"])
def test_renaming_voters_changes_no_key_no_invariant_and_no_next_step(variant: str) -> None:
    model = KraftModel(variant, {"voters": 3, "records": 3, "elections": 4, "crashes": 2})
    compared = 0
    for seed in range(30):
        rng = random.Random(seed)
        state = next(iter(model.initial_states()))
        for _ in range(30):
            perm = tuple(rng.sample(range(3), 3))
            twin = _renamed(state, perm)
            compared += 1
            assert model.canonical(twin) == model.canonical(state)
            assert [inv.holds(twin) for inv in model.invariants] == [inv.holds(state) for inv in model.invariants]
            assert sorted(map(repr, (model.canonical(t.state) for t in model.transitions(twin)))) == \
                sorted(map(repr, (model.canonical(t.state) for t in model.transitions(state))))
            options = list(model.transitions(state))
            if not options:
                break
            state = rng.choice(options).state
    assert compared > 500


# --- random walks far beyond the exhaustive bounds -------------------------------------------------

KraftWalk = walker(KraftModel("kip-996", {"voters": 5, "records": 6, "elections": 6, "crashes": 4}))
TestKraftWalk = KraftWalk.TestCase
TestKraftWalk.settings = WALK
ClassicKraftWalk = walker(KraftModel("classic", {"voters": 3, "records": 6, "elections": 6, "crashes": 4}))
TestClassicKraftWalk = ClassicKraftWalk.TestCase
TestClassicKraftWalk.settings = WALK


def test_refka_spec_check_kraft_runs_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    from reference.cli import main

    assert main(["spec", "check", "kraft", "--bound", "elections=1", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "model kraft, variant kip-996" in out and "all 4 invariants hold" in out
    assert main(["spec", "check", "kraft", "--variant", "classic", "--bound", "elections=0", "--workers", "1"]) == 0
