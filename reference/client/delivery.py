"""Delivery futures: how a record's outcome gets back to the thread that sent it.

Theory of operation
-------------------
``Producer.send`` returns at once; the record is written later, as one of a batch, and the
broker answers for the whole batch: one base offset, or one error.  Java's producer keeps that
shape on the client side too: a batch has one ``ProduceRequestResult``, completed once, and each
record's ``FutureRecordMetadata`` is a *view* on it -- the batch's result plus the record's index
in the batch -- so completing a batch of 500 records is one completion, not 500.

refka does the same here:

1. **One answer per batch.**  The core answers a batch with a :class:`BatchAnswer` (topic,
   partition, base offset, log-append time, the records' own timestamps -- or an error) and
   :func:`answer` hands it to the batch's futures in one pass under one acquisition of the
   delivery lock.  A future stores only the shared answer and its index; its
   :class:`RecordMetadata` (offset ``base_offset + index``) is built when someone asks for it.
2. **A future exists before its batch.**  Unlike Java, where ``send`` appends on the caller's
   thread, refka's records reach their batch on the producer's I/O thread (see ``producer``), so
   a :class:`RecordFuture` starts unanswered and is answered later by that thread -- with its
   batch's answer, or alone (a record refused before it joined a batch, e.g. MESSAGE_TOO_LARGE,
   gets a one-record answer with the error).
3. **Nothing to wake unless someone waits.**  Most futures are never waited on (the caller
   flushes, or uses a callback).  So a future carries no lock: it makes a ``threading.Event``
   only when a thread actually blocks on it, under the delivery lock, and the answering pass
   sets only the events that exist.  A send costs one small object instead of a
   ``concurrent.futures.Future`` (a condition variable and its lock per record).
4. **Callbacks** run on the I/O thread right after their batch is answered, in record order,
   as Java runs them on its sender thread; a callback added to an answered future runs at once
   on the caller's thread, as ``concurrent.futures`` does.  A callback that raises is logged.

Invariants: a future is answered at most once (a second answer is ignored) and its outcome never
changes afterwards; every callback added to it runs exactly once; a future cannot be cancelled
(Java's ``FutureRecordMetadata.cancel`` returns false too: the record may already be on the wire).
The API is the part of ``concurrent.futures.Future`` a producer's caller uses: ``done``,
``result``, ``exception`` (both with a timeout, raising ``TimeoutError``), ``add_done_callback``.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

log = logging.getLogger("refka.client.producer")

# Guards the hand-over between the I/O thread (answering) and the threads that wait or add
# callbacks.  One lock for all futures: it is taken once per answered batch and once per wait,
# never per sent record, so it is never busy.
_DELIVERY_LOCK = threading.Lock()


@dataclass(frozen=True)
class RecordMetadata:
    """Where a record was written (what a delivery future resolves to)."""

    topic: str
    partition: int
    offset: int  # -1 when unknown (acks=0)
    timestamp: int


class BatchAnswer:
    """The outcome of one batch, shared by its records' futures (Java's ``ProduceRequestResult``).

    ``base_offset`` is -1 when unknown (acks=0); ``log_append_time`` is -1 unless the topic uses
    LogAppendTime, in which case it is every record's timestamp; ``timestamps`` are the records'
    own (CreateTime) timestamps, in batch order; ``error`` is set when the batch failed.
    """

    __slots__ = ("topic", "partition", "base_offset", "log_append_time", "timestamps", "error")

    def __init__(self, topic: str, partition: int, base_offset: int = -1, log_append_time: int = -1,
                 timestamps: Sequence[int] = (), error: BaseException | None = None) -> None:
        self.topic = topic
        self.partition = partition
        self.base_offset = base_offset
        self.log_append_time = log_append_time
        self.timestamps = timestamps
        self.error = error

    @classmethod
    def failed(cls, error: BaseException) -> BatchAnswer:
        """The answer for records that fail together (or alone) without a partition's answer."""
        return cls("", -1, error=error)

    def metadata(self, index: int) -> RecordMetadata:
        offset = -1 if self.base_offset < 0 else self.base_offset + index
        timestamp = self.log_append_time if self.log_append_time >= 0 else self.timestamps[index]
        return RecordMetadata(self.topic, self.partition, offset, timestamp)


class RecordFuture:
    """One record's delivery (Java's ``FutureRecordMetadata``): resolves to its
    :class:`RecordMetadata`, or fails with the error that ended it (see the module's theory)."""

    __slots__ = ("_answer", "_index", "_event", "_callbacks")

    def __init__(self) -> None:
        self._answer: BatchAnswer | None = None
        self._index = 0  # the record's position in its batch, once answered
        self._event: threading.Event | None = None  # made by the first thread that blocks
        self._callbacks: list[Callable[[RecordFuture], object]] | None = None

    def done(self) -> bool:
        return self._answer is not None

    def cancel(self) -> bool:
        """Always False: a record handed to the producer cannot be taken back."""
        return False

    def cancelled(self) -> bool:
        return False

    def running(self) -> bool:
        return self._answer is None

    def result(self, timeout: float | None = None) -> RecordMetadata:
        """The record's metadata; raises its error, or ``TimeoutError`` after ``timeout`` seconds."""
        answer = self._wait(timeout)
        if answer.error is not None:
            raise answer.error
        return answer.metadata(self._index)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The record's error, or None once it is written; ``TimeoutError`` after ``timeout``."""
        return self._wait(timeout).error

    def add_done_callback(self, callback: Callable[[RecordFuture], object]) -> None:
        """Call ``callback(future)`` when the record is answered (at once if it already is)."""
        with _DELIVERY_LOCK:
            if self._answer is None:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(callback)
                return
        _run_callback(callback, self)

    def _wait(self, timeout: float | None) -> BatchAnswer:
        answer = self._answer
        if answer is not None:
            return answer
        if timeout is not None and timeout <= 0:
            raise concurrent.futures.TimeoutError()
        with _DELIVERY_LOCK:  # the answer cannot slip in between this check and the event
            if self._answer is None and self._event is None:
                self._event = threading.Event()
            event = self._event
        if event is not None and not event.wait(timeout):
            raise concurrent.futures.TimeoutError()
        answer = self._answer
        assert answer is not None
        return answer


def answer(futures: Sequence[RecordFuture], outcome: BatchAnswer) -> None:
    """Answer a batch's futures (``futures[i]`` is record ``i``) with one outcome, then wake the
    threads waiting on them and run their callbacks.  Already answered futures are left alone."""
    to_notify = []
    with _DELIVERY_LOCK:
        for index, future in enumerate(futures):
            if future._answer is not None:
                continue
            future._answer = outcome
            future._index = index
            if future._event is not None or future._callbacks is not None:
                to_notify.append(future)
    # Outside the lock: an event's waiter and a callback may take the lock themselves.
    for future in to_notify:
        if future._event is not None:
            future._event.set()
        for callback in future._callbacks or ():
            _run_callback(callback, future)


def fail(futures: Sequence[RecordFuture], error: BaseException) -> None:
    """Fail records that end together without a partition's answer (expired, refused, closed)."""
    answer(futures, BatchAnswer.failed(error))


def _run_callback(callback: Callable[[RecordFuture], object], future: RecordFuture) -> None:
    try:
        callback(future)
    except Exception:
        log.exception("a delivery callback raised")


DeliveryFuture = RecordFuture
