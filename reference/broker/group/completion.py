"""The answer to "is this write committed?": a one-shot completion, and Kafka's error mapping.

Theory of operation
-------------------
Kafka's coordinator answers a write (an OffsetCommit, a stored assignment, a deleted group) only
when its records are *committed*: the high watermark of its ``__consumer_offsets`` partition has
reached the end of the appended batch (``CoordinatorRuntime`` keeps such answers in a deferred
event queue keyed by that offset).  The writer therefore returns a :class:`WriteCompletion` for
every append; it completes once, with ``Errors.NONE`` when the high watermark passes the batch, or
with the error that stopped it:

* the append itself failed (``NOT_LEADER_OR_FOLLOWER``, ``NOT_ENOUGH_REPLICAS``, ...);
* the broker resigned leadership before the batch was committed (``NOT_COORDINATOR``);
* ``offsets.commit.timeout.ms`` (default 5 s) passed first (``REQUEST_TIMED_OUT``).

Clients never see the append error itself: :func:`append_error_to_response_error` maps it the way
Kafka's ``CoordinatorOperationExceptionHelper.handleOperationException`` and
``GroupMetadataManager.appendGroupMetadataErrorToResponseError`` do.

Invariant: a completion completes at most once, and its callbacks run in registration order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from reference.errors import ErrorCode, Errors

CompletionCallback = Callable[[ErrorCode, int], None]  # (error, now_ms when it completed)

# Kafka's mapping of an append error to the coordinator's answer.
_APPEND_ERROR_TO_RESPONSE_ERROR: dict[ErrorCode, ErrorCode] = {
    Errors.UNKNOWN_TOPIC_OR_PARTITION: Errors.COORDINATOR_NOT_AVAILABLE,
    Errors.NOT_ENOUGH_REPLICAS: Errors.COORDINATOR_NOT_AVAILABLE,
    Errors.REQUEST_TIMED_OUT: Errors.COORDINATOR_NOT_AVAILABLE,
    Errors.NOT_LEADER_OR_FOLLOWER: Errors.NOT_COORDINATOR,
    Errors.KAFKA_STORAGE_ERROR: Errors.NOT_COORDINATOR,
    Errors.MESSAGE_TOO_LARGE: Errors.UNKNOWN_SERVER_ERROR,
    Errors.RECORD_LIST_TOO_LARGE: Errors.UNKNOWN_SERVER_ERROR,
    Errors.INVALID_FETCH_SIZE: Errors.UNKNOWN_SERVER_ERROR,
}


def append_error_to_response_error(error: ErrorCode) -> ErrorCode:
    """What a client is told when a coordinator write failed with ``error`` (others pass through)."""
    return _APPEND_ERROR_TO_RESPONSE_ERROR.get(error, error)


class WriteCompletion:
    """Completes once: ``Errors.NONE`` when the write is committed, else the error that stopped it."""

    __slots__ = ("_callbacks", "completed_ms", "error")

    def __init__(self) -> None:
        self.error: ErrorCode | None = None
        self.completed_ms = -1
        self._callbacks: list[CompletionCallback] = []

    @classmethod
    def committed(cls, now_ms: int) -> WriteCompletion:
        completion = cls()
        completion.complete(Errors.NONE, now_ms)
        return completion

    @classmethod
    def failed(cls, error: ErrorCode, now_ms: int) -> WriteCompletion:
        completion = cls()
        completion.complete(error, now_ms)
        return completion

    @property
    def done(self) -> bool:
        return self.error is not None

    @property
    def succeeded(self) -> bool:
        return self.error is Errors.NONE

    def complete(self, error: ErrorCode, now_ms: int) -> None:
        if self.error is not None:
            raise RuntimeError("a WriteCompletion completes exactly once")
        self.error = error
        self.completed_ms = now_ms
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(error, now_ms)

    def on_done(self, callback: CompletionCallback) -> None:
        """Call ``callback(error, now_ms)`` when done (at once if already done)."""
        if self.error is not None:
            callback(self.error, self.completed_ms)
        else:
            self._callbacks.append(callback)


def all_of(completions: Iterable[WriteCompletion], now_ms: int) -> WriteCompletion:
    """Completes when every one of ``completions`` has; with the first error among them, if any."""
    waiting = list(completions)
    combined = WriteCompletion()
    remaining = len(waiting)
    if remaining == 0:
        combined.complete(Errors.NONE, now_ms)
        return combined

    def one_done(_: ErrorCode, done_ms: int) -> None:
        nonlocal remaining
        remaining -= 1
        if remaining == 0:
            failures = [c.error for c in waiting if c.error is not None and c.error is not Errors.NONE]
            combined.complete(failures[0] if failures else Errors.NONE, done_ms)

    for completion in waiting:
        completion.on_done(one_done)
    return combined
