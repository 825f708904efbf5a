"""The clock the storage layer reads: injected, so tests and the simulator decide what time it is.

Nothing under :mod:`reference.broker.log` calls ``time.time()``; every component that needs the time
holds a :class:`Clock`.  :class:`SystemClock` is the real one, :class:`ManualClock` a settable one.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Anything that can say the current time in milliseconds since the epoch."""

    def milliseconds(self) -> int: ...


class SystemClock:
    """Wall-clock time."""

    def milliseconds(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, now_ms: int = 1_700_000_000_000) -> None:
        self.now_ms = now_ms

    def milliseconds(self) -> int:
        return self.now_ms

    def advance(self, delta_ms: int) -> None:
        self.now_ms += delta_ms
