"""The transactions model: Kafka 4 (KIP-890) passes; without KIP-890 a delayed produce or EndTxn lands
in the next transaction (KAFKA-17754); each guard is needed; the canonical key is sound."""

from __future__ import annotations

import random

import pytest

from spec.checker import check
from spec.mutants import run_mutants
from spec.registry import entry
from spec.transactions import (
    COMMITTED,
    GUARDS,
    KIP_890_GUARDS,
    Data,
    Marker,
    TransactionsModel,
    TransactionsState,
)
from tests.spec.test_random_walks import WALK, walker

# The pre-KIP-890 anomalies need one partition, two transactions and one delayed request.
SMALL = {"partitions": 1, "transactions": 2, "late_produces": 1, "late_end_txns": 0, "restarts": 0,
         "txn_timeouts": 0, "coordinator_failovers": 0}


def _actions(result: object) -> list[str]:
    return [step.transition.label() for step in result.trace[1:]]  # type: ignore[attr-defined]


def test_kafka_4_passes_with_zombies_timeouts_and_every_situation_reached() -> None:
    """One partition, two transactions, a delayed produce and EndTxn, a restart, a transaction
    timeout and a coordinator fail-over.  (The two-partition default bounds: the slow test below.)"""
    result = check(TransactionsModel("kip-890", {"partitions": 1, "txn_timeouts": 1}))
    assert result.passed, result.violated
    assert result.unreached == ()
    assert result.coverage["late_produce_refused"] > 0 and result.coverage["late_end_txn_refused"] > 0
    assert result.coverage["zombie_fenced"] > 0 and result.coverage["abort_filtered"] > 0


@pytest.mark.slow
def test_kafka_4_passes_at_the_default_bounds() -> None:
    result = check(TransactionsModel())
    assert result.passed, result.violated
    assert result.unreached == ()
    assert result.statistics.states == 480711


def test_pre_kip_890_a_delayed_produce_of_an_aborted_transaction_lands_in_the_next_one() -> None:
    """KAFKA-17754's delayed produce: t0's record, given up on and aborted, is appended after t0's
    ABORT marker and shares a transaction at the partition with t1's record."""
    result = check(TransactionsModel("pre-kip-890", SMALL))
    assert result.violated == ("TransactionsDoNotMix",)
    assert len(result.trace) - 1 == 10
    labels = _actions(result)
    assert labels[2].startswith("GiveUp(partition=0, txn=0)")
    assert labels[-2] == "HandleProduce(partition=0, txn=0, epoch=0): appended at offset 1 (a delayed request)"
    final = result.trace[-1].state
    assert final.partitions[0].log == (Marker(False, 0, 0), Data(0, 0), Data(1, 0))
    assert check(TransactionsModel("pre-kip-890")).violated == ("TransactionsDoNotMix",)  # default bounds too


def test_pre_kip_890_the_late_write_becomes_an_aborted_read() -> None:
    """Jepsen's symptom: t1 commits, and its COMMIT marker exposes t0's aborted record."""
    model = TransactionsModel("pre-kip-890", SMALL)
    result = check(model, only=["NoAbortedRead"])
    assert result.violated == ("NoAbortedRead",)
    final = result.trace[-1].state
    assert final.outcomes[0] == "aborted" and 0 in model.visible(final.partitions[0])


def test_pre_kip_890_a_delayed_end_txn_commits_the_next_transaction() -> None:
    """KAFKA-17754's delayed EndTxn: t0's first commit request, given up on and sent again, arrives
    after t1 began and decides t1 (same epoch, and an Ongoing transaction to commit)."""
    bounds = {**SMALL, "late_produces": 0, "late_end_txns": 1}
    result = check(TransactionsModel("pre-kip-890", bounds))
    assert result.violated == ("TransactionsDoNotMix",)
    labels = _actions(result)
    assert any(label.startswith("GiveUp(partition=-1, txn=0)") for label in labels)
    assert labels[-2].startswith("HandleEndTxn(txn=0, commit=True, epoch=0): PrepareCommit")
    assert labels[-2].endswith("(a delayed request)")
    log = result.trace[-1].state.partitions[0].log
    assert log[-2:] == (Data(1, 0), Marker(True, 0, 0))


@pytest.mark.parametrize("late", [{"late_produces": 1, "late_end_txns": 0}, {"late_produces": 0, "late_end_txns": 1}])
def test_kip_890_refuses_the_same_delayed_requests(late: dict[str, int]) -> None:
    result = check(TransactionsModel("kip-890", {**SMALL, **late}))
    assert result.passed, result.violated
    situation = "late_produce_refused" if late["late_produces"] else "late_end_txn_refused"
    assert result.coverage[situation] > 0


def test_kip_890_fences_the_delayed_produce_with_the_bumped_epoch() -> None:
    """The pre-KIP-890 path replayed under Kafka 4: the abort bumps the epoch to 1, and t0's delayed
    produce (epoch 0) is refused by the coordinator during the leader's verification."""
    model = TransactionsModel("kip-890", SMALL)
    state = next(iter(model.initial_states()))
    notes = []
    for label in ("Produce(partition=0, txn=0)", "GiveUp(partition=0, txn=0)", "EndTxn(txn=0, commit=False)",
                  "HandleEndTxn(txn=0, commit=False, epoch=0)", "Produce(partition=0, txn=1)",
                  "HandleProduce(partition=0, txn=0, epoch=0)"):
        transition = next(t for t in model.transitions(state) if t.label().split(":")[0] == label)
        state = transition.state
        notes.append(transition.note)
    assert notes[3] == "nothing to abort: CompleteAbort, epoch 1"
    assert notes[5] == "verification: PRODUCER_FENCED"
    assert state.partitions[0].log == ()


@pytest.mark.parametrize("guard", sorted(GUARDS))
def test_switching_a_guard_off_breaks_an_invariant(guard: str) -> None:
    witness = GUARDS[guard].witness
    assert check(TransactionsModel("kip-890", witness)).passed
    result = check(TransactionsModel("kip-890", witness, frozenset({guard})))
    assert result.violated


def test_the_mutant_runner_kills_every_mutant_and_pre_kip_890_lacks_the_kip_890_guards() -> None:
    model = entry("transactions")
    results = run_mutants(model)
    assert [r.guard.name for r in results] == list(GUARDS)
    assert all(r.killed for r in results)
    assert {g.name for g in model.guards("pre-kip-890")} == set(GUARDS) - set(KIP_890_GUARDS)


def test_a_client_seeing_its_commit_means_every_record_is_committed_once_markers_are_written() -> None:
    """Atomicity bites: a committed transaction with a record still undecided after the markers."""
    model = TransactionsModel("kip-890", SMALL)
    state = next(iter(model.initial_states()))
    partition = state.partitions[0]._replace(log=(Data(0, 0),), open_start=0)
    hanging = state._replace(partitions=(partition,), outcomes=(COMMITTED,))
    assert not model.atomicity(hanging)


# --- the canonical key ------------------------------------------------------------------------------

def _random_walk(model: TransactionsModel, seed: int, steps: int) -> list[TransactionsState]:
    rng = random.Random(seed)
    state = next(iter(model.initial_states()))
    seen = [state]
    for _ in range(steps):
        options = list(model.transitions(state))
        if not options:
            break
        state = rng.choice(options).state
        seen.append(state)
    return seen


def _forgetful_twins(model: TransactionsModel, state: TransactionsState) -> list[TransactionsState]:
    """The same state with what the key forgets changed: the retry epoch and the deciding EndTxn,
    in the in-memory and the logged coordinator alike, wherever no rule reads them."""
    twins = []
    for field in ("coordinator", "durable"):
        coordinator = getattr(state, field)
        if not model.retry_matters(coordinator):
            twins.append(state._replace(**{field: coordinator._replace(last_epoch=coordinator.last_epoch + 7)}))
        if not model.decision_matters(coordinator):
            twins.append(state._replace(**{field: coordinator._replace(decided_by=coordinator.decided_by + 5)}))
    return twins


@pytest.mark.parametrize("variant", ["kip-890", "pre-kip-890"])
def test_what_the_canonical_key_forgets_changes_no_next_step_and_no_invariant(variant: str) -> None:
    model = TransactionsModel(variant, {"partitions": 2, "transactions": 3, "late_produces": 2, "late_end_txns": 2,
                                        "restarts": 1, "txn_timeouts": 1, "coordinator_failovers": 1})
    compared = 0
    for seed in range(40):
        for state in _random_walk(model, seed, 40):
            for twin in _forgetful_twins(model, state):
                compared += 1
                assert model.canonical(twin) == model.canonical(state)
                assert [inv.holds(twin) for inv in model.invariants] == [inv.holds(state) for inv in model.invariants]
                assert sorted(map(repr, (model.canonical(t.state) for t in model.transitions(twin)))) == \
                    sorted(map(repr, (model.canonical(t.state) for t in model.transitions(state))))
    assert compared > 100


def test_the_key_keeps_the_retry_epoch_where_a_retry_is_recognised() -> None:
    model = TransactionsModel("kip-890", SMALL)
    state = next(iter(model.initial_states()))
    for label in ("Produce(partition=0, txn=0)", "HandleProduce(partition=0, txn=0, epoch=0)",
                  "EndTxn(txn=0, commit=True)", "HandleEndTxn(txn=0, commit=True, epoch=0)"):
        state = next(t for t in model.transitions(state) if t.label().split(":")[0] == label).state
    assert state.coordinator.state == "PrepareCommit" and state.coordinator.last_epoch == 0
    changed = state._replace(coordinator=state.coordinator._replace(last_epoch=5))
    assert model.canonical(changed) != model.canonical(state)


# --- random walks far beyond the exhaustive bounds -------------------------------------------------

TransactionsWalk = walker(TransactionsModel("kip-890", {"partitions": 2, "transactions": 6, "late_produces": 3,
                                                        "late_end_txns": 3, "restarts": 3, "txn_timeouts": 2,
                                                        "coordinator_failovers": 3}))
TestTransactionsWalk = TransactionsWalk.TestCase
TestTransactionsWalk.settings = WALK
