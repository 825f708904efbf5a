"""The checker: breadth-first search, shortest counterexamples, deadlocks and non-vacuity."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from spec.checker import DEADLOCK, Invariant, Situation, Transition, check, format_result


@dataclass
class Counter:
    """A toy model: a counter that may add 1 or 2 up to a limit; 'odd' is reached at 1, 3..."""

    limit: int
    forbidden: int = -1
    final_only_at_limit: bool = False
    name: str = "counter"
    variant: str = "toy"

    @property
    def invariants(self) -> tuple[Invariant[int], ...]:
        return (Invariant("NotForbidden", "the counter never equals the forbidden value", lambda s: s != self.forbidden),)

    @property
    def situations(self) -> tuple[Situation, ...]:
        return (Situation("odd", "an odd value"), Situation("never", "never reached", applies=False))

    def initial_states(self) -> Iterator[int]:
        yield 0

    def transitions(self, state: int) -> Iterator[Transition[int]]:
        for step in (1, 2):
            if state + step <= self.limit:
                yield Transition("Add", (("amount", step),), state + step,
                                 situations=("odd",) if (state + step) % 2 else ())

    def canonical(self, state: int) -> int:
        return state

    def is_final(self, state: int) -> bool:
        return not self.final_only_at_limit or state == self.limit

    def render(self, state: int) -> str:
        return f"value {state}"

    def describe_bounds(self) -> str:
        return f"limit={self.limit}"


def test_a_passing_model_visits_every_state_and_counts_situations() -> None:
    result = check(Counter(limit=6))
    assert result.passed
    assert result.statistics.states == 7
    assert result.coverage["odd"] > 0
    assert result.unreached == ()


def test_the_counterexample_is_a_shortest_one() -> None:
    """6 is reachable in 3 steps (2+2+2), never fewer; BFS must not return a longer path."""
    result = check(Counter(limit=10, forbidden=6))
    assert result.violated == ("NotForbidden",)
    assert len(result.trace) - 1 == 3
    assert [step.state for step in result.trace] == [0, 2, 4, 6]


def test_a_state_without_successors_that_is_not_final_is_a_deadlock() -> None:
    model = Counter(limit=3, final_only_at_limit=True)
    model.limit = 3
    result = check(model)
    assert result.passed  # 3 is final; nothing else is a dead end
    stuck = Counter(limit=3, final_only_at_limit=True)
    stuck.is_final = lambda state: False  # type: ignore[method-assign]
    assert check(stuck).violated == (DEADLOCK,)


def test_the_report_prints_numbered_steps_statistics_and_coverage() -> None:
    model = Counter(limit=10, forbidden=3)
    text = format_result(model, check(model))
    assert "VIOLATED NotForbidden" in text
    assert " 1. Add(amount=" in text
    assert "states/s" in text
    assert "odd: an odd value" in text
    assert "not required" in text


def test_a_state_limit_marks_the_result_incomplete() -> None:
    result = check(Counter(limit=100), max_states=5)
    assert not result.complete and not result.passed
