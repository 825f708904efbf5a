"""Keyed deadlines for a sans-IO core: the coordinator's only notion of time passing.

Kafka's coordinator runtime schedules timeouts by key (``timer.schedule(key, delay, ...)``):
scheduling a key again replaces its deadline, cancelling a key forgets it.  This module does the
same without a clock.  The owner asks :meth:`Timers.next_deadline` when it must be woken and, when
the caller's clock reaches it, pops what is due with :meth:`Timers.pop_due` and runs it.  Due
timers come out in deadline order (ties in scheduling order), so a run is reproducible.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable
from dataclasses import dataclass

TimerAction = Callable[[int], None]  # called with the caller's now_ms


@dataclass(frozen=True)
class Timer:
    deadline_ms: int
    sequence: int
    action: TimerAction


class Timers:
    def __init__(self) -> None:
        self._timers: dict[Hashable, Timer] = {}
        self._sequence = itertools.count()

    def schedule(self, key: Hashable, deadline_ms: int, action: TimerAction) -> None:
        self._timers[key] = Timer(deadline_ms, next(self._sequence), action)

    def cancel(self, key: Hashable) -> None:
        self._timers.pop(key, None)

    def deadline_of(self, key: Hashable) -> int | None:
        timer = self._timers.get(key)
        return None if timer is None else timer.deadline_ms

    def next_deadline(self) -> int | None:
        return min((timer.deadline_ms for timer in self._timers.values()), default=None)

    def pop_due(self, now_ms: int) -> TimerAction | None:
        """Remove and return the earliest timer due at ``now_ms``, or None if none is due."""
        due = [
            (timer.deadline_ms, timer.sequence, key)
            for key, timer in self._timers.items()
            if timer.deadline_ms <= now_ms
        ]
        if not due:
            return None
        _, _, key = min(due, key=lambda entry: (entry[0], entry[1]))
        return self._timers.pop(key).action

    def keys(self) -> list[Hashable]:
        return list(self._timers)

    def __len__(self) -> int:
        return len(self._timers)
