"""Every model's mutants: each guard, switched off alone at its witness bounds, breaks an invariant.

One test per model, so a new model is covered by adding its name (and its guard table) below.  A
guard listed in a model's ``GUARDS`` but never mutated, or mutated and surviving, fails the test:
either the rule is unnecessary or the model is too weak to show why Kafka needs it.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from spec import delivery, idempotence, kraft, replication, transactions
from spec.model import Guard
from spec.mutants import format_table, run_mutants
from spec.registry import MODELS, entry

GUARD_TABLES: dict[str, Mapping[str, Guard]] = {
    "replication": replication.GUARDS,
    "idempotence": idempotence.GUARDS,
    "delivery": delivery.GUARDS,
    "transactions": transactions.GUARDS,
    "kraft": kraft.GUARDS,
}


def test_every_registered_model_is_covered_here() -> None:
    assert set(GUARD_TABLES) == set(MODELS)


@pytest.mark.parametrize("name", sorted(GUARD_TABLES))
def test_every_guard_of_the_model_is_killed_at_its_witness_bounds(name: str) -> None:
    results = run_mutants(entry(name))
    print(format_table(results))
    assert {r.guard.name for r in results} == set(GUARD_TABLES[name]), "a guard is never mutated"
    survivors = [f"{r.guard.name} ({r.variant})" for r in results if not r.killed]
    assert not survivors, f"mutants survived: {survivors}"
    assert all(r.steps > 0 for r in results)
