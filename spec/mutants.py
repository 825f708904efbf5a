"""Mutation testing of the models' guards: switch each off and see which invariant breaks.

Theory of operation
-------------------
Every guard in a model is a protocol rule written to prevent one known failure.  For each guard
the runner builds the model with that guard (and only that guard) switched off, at the guard's
*witness bounds*, and model-checks it.  The mutant is *killed* when an invariant fails; the
runner reports which, and how long the shortest counterexample is.  A mutant that *survives*
means the guard is unnecessary or the model is too weak to show why it is needed: both are
defects, and ``refka spec mutants`` exits non-zero.
"""

from __future__ import annotations

from dataclasses import dataclass

from spec.checker import check
from spec.model import Guard, ModelEntry


@dataclass(frozen=True)
class MutantResult:
    guard: Guard
    variant: str
    bounds: str
    violated: tuple[str, ...]
    steps: int
    states: int
    seconds: float

    @property
    def killed(self) -> bool:
        return bool(self.violated)


def run_mutant(model: ModelEntry, guard: Guard, variant: str) -> MutantResult:
    chosen = guard.witness_variant or variant
    built = model.build(chosen, dict(guard.witness), frozenset({guard.name}))
    result = check(built)
    return MutantResult(guard, chosen, built.describe_bounds(), result.violated,
                        len(result.trace) - 1 if result.trace else 0, result.statistics.states,
                        result.statistics.seconds)


def run_mutants(model: ModelEntry, variant: str | None = None) -> list[MutantResult]:
    """Every guard of ``variant``, or, by default, of each of the model's mutant variants."""
    chosen = (variant,) if variant else model.mutant_variants
    return [run_mutant(model, guard, v) for v in chosen for guard in model.guards(v)]


def format_table(results: list[MutantResult]) -> str:
    lines = ["| guard switched off | variant | violated invariant | steps | states | bounds |",
             "|---|---|---|---|---|---|"]
    for r in results:
        verdict = ", ".join(r.violated) if r.killed else "SURVIVED"
        lines.append(f"| {r.guard.name} | {r.variant} | {verdict} | {r.steps} | {r.states} | {r.bounds} |")
    return "\n".join(lines)
