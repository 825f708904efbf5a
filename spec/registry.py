"""The table of models the command line and the tests can check, with their variants and guards."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from spec import delivery, idempotence, kraft, replication, transactions
from spec.checker import Model
from spec.model import Guard, ModelEntry, SpecError


def _replication(variant: str, bounds: Mapping[str, int | str], disabled: frozenset[str]) -> Model[object]:
    return replication.ReplicationModel(variant, bounds, disabled)  # type: ignore[return-value]


def _idempotence(variant: str, bounds: Mapping[str, int | str], disabled: frozenset[str]) -> Model[object]:
    return idempotence.IdempotenceModel(variant, bounds, disabled)  # type: ignore[return-value]


def _delivery(variant: str, bounds: Mapping[str, int | str], disabled: frozenset[str]) -> Model[object]:
    return delivery.DeliveryModel(variant, bounds, disabled)  # type: ignore[return-value]


def _transactions(variant: str, bounds: Mapping[str, int | str], disabled: frozenset[str]) -> Model[object]:
    return transactions.TransactionsModel(variant, bounds, disabled)  # type: ignore[return-value]


def _kraft(variant: str, bounds: Mapping[str, int | str], disabled: frozenset[str]) -> Model[object]:
    return kraft.KraftModel(variant, bounds, disabled)  # type: ignore[return-value]


def _transactions_guards(variant: str) -> Sequence[Guard]:
    return [guard for name, guard in transactions.GUARDS.items()
            if variant != "pre-kip-890" or name not in transactions.KIP_890_GUARDS]


def _replication_guards(variant: str) -> Sequence[Guard]:
    """A variant's guards; the default mutant run (kip-966) also runs kip-497's own two, in kip-497."""
    names = replication.VARIANTS[variant]
    if variant == "kip-966":
        names += replication.ALTER_PARTITION_GUARDS
    return [replication.GUARDS[name] for name in names]


MODELS: dict[str, ModelEntry] = {
    "replication": ModelEntry(
        "replication", "one partition's leaders, followers, ISR and high watermark",
        replication.VARIANT_SUMMARIES, "kip-320", replication.BOUNDS, _replication, _replication_guards, "kip-966"),
    "idempotence": ModelEntry(
        "idempotence", "the idempotent producer against the broker's producer-state table",
        idempotence.VARIANTS, "default", idempotence.BOUNDS, _idempotence,
        lambda variant: list(idempotence.GUARDS.values()), "default"),
    "delivery": ModelEntry(
        "delivery", "consumer-group delivery: at-least-once and at-most-once",
        delivery.VARIANTS, "at-least-once", delivery.BOUNDS, _delivery,
        lambda variant: [delivery.GUARDS[name] for name in delivery.VARIANT_GUARDS[variant]], "at-most-once",
        ("at-least-once",)),
    "transactions": ModelEntry(
        "transactions", "coordinator, markers, last stable offset, read_committed readers, zombies",
        transactions.VARIANTS, "kip-890", transactions.BOUNDS, _transactions, _transactions_guards, "kip-890"),
    "kraft": ModelEntry(
        "kraft", "KRaft's quorum: elections with pre-vote, Fetch replication, the majority high watermark",
        kraft.VARIANTS, "kip-996", kraft.BOUNDS, _kraft, lambda variant: list(kraft.GUARDS.values()), "kip-996"),
}


def entry(name: str) -> ModelEntry:
    if name not in MODELS:
        raise SpecError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name]
