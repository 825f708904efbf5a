"""A one-shot completion for answers that cannot be given at once, and the purgatory that keeps them.

Theory of operation
-------------------
Some Kafka requests wait before they are answered: a Fetch waits for ``min_bytes`` of data or
``max_wait_ms``; a JoinGroup waits for the rebalance to finish; a follower's SyncGroup waits for
the leader's assignment; a Produce with ``acks=all`` waits for the in-sync replicas.  Kafka parks
such requests in a *purgatory* (``DelayedOperationPurgatory``) keyed by what can complete them,
and completes each either when an event makes it complete or when its deadline passes.

refka keeps that model without threads or an event loop:

* :class:`Pending` is a one-shot result.  Broker logic creates it, hands it to the network shell,
  and later calls :meth:`Pending.complete` exactly once.  The shell registers a callback (the
  asyncio shell resolves a future from it; a test just reads ``.result``).
* :class:`Purgatory` holds delayed operations with a deadline and a ``try_complete`` check.
  Events call :meth:`Purgatory.check` for their key ("new data in topic-partition X");
  :meth:`Purgatory.expire` completes the ones whose deadline passed, given the time from outside.

Invariants: a Pending completes at most once; an operation leaves the purgatory exactly when its
Pending completes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any

Callback = Callable[[Any], None]


class Pending:
    """A result that will be available later; completed exactly once."""

    __slots__ = ("_callbacks", "done", "result")

    def __init__(self) -> None:
        self.done = False
        self.result: Any = None
        self._callbacks: list[Callback] = []

    def complete(self, result: Any) -> None:
        if self.done:
            raise RuntimeError("a Pending completes exactly once")
        self.done = True
        self.result = result
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(result)

    def on_done(self, callback: Callback) -> None:
        if self.done:
            callback(self.result)
        else:
            self._callbacks.append(callback)


class DelayedOperation:
    """A parked request: ``try_complete(now_ms, expired)`` returns the answer once it can be given.

    With ``expired=False`` it returns ``None`` while it must keep waiting; with ``expired=True``
    (the deadline has passed) it must return the answer it has.
    """

    def __init__(
        self,
        deadline_ms: int,
        try_complete: Callable[[int, bool], Any],
        keys: Iterable[Hashable],
    ) -> None:
        self.deadline_ms = deadline_ms
        self.try_complete = try_complete
        self.keys = tuple(keys)
        self.pending = Pending()


class Purgatory:
    """Delayed operations, watched by key and by deadline."""

    def __init__(self) -> None:
        self._watchers: dict[Hashable, list[DelayedOperation]] = {}
        self._operations: list[DelayedOperation] = []

    def __len__(self) -> int:
        return len(self._operations)

    def park(self, operation: DelayedOperation, now_ms: int) -> Pending:
        """Complete at once if possible, else keep ``operation`` until an event or its deadline."""
        answer = operation.try_complete(now_ms, False)
        if answer is not None:
            operation.pending.complete(answer)
            return operation.pending
        self._operations.append(operation)
        for key in operation.keys:
            self._watchers.setdefault(key, []).append(operation)
        return operation.pending

    def check(self, key: Hashable, now_ms: int) -> None:
        """Something happened to ``key``: complete the operations that now can be."""
        for operation in list(self._watchers.get(key, ())):
            answer = operation.try_complete(now_ms, False)
            if answer is not None:
                self._finish(operation, answer)

    def expire(self, now_ms: int) -> None:
        for operation in [op for op in self._operations if op.deadline_ms <= now_ms]:
            self._finish(operation, operation.try_complete(now_ms, True))

    def next_deadline(self) -> int | None:
        return min((op.deadline_ms for op in self._operations), default=None)

    def _finish(self, operation: DelayedOperation, answer: Any) -> None:
        self._operations.remove(operation)
        for key in operation.keys:
            watchers = self._watchers.get(key)
            if watchers is not None:
                watchers.remove(operation)
                if not watchers:
                    del self._watchers[key]
        operation.pending.complete(answer)
