"""The reference producer: a synchronous API over the sans-IO core and an asyncio I/O shell.

Theory of operation
-------------------
All of the producer's decisions live in :class:`~reference.client.producer_core.ProducerCore`
(accumulator, partitioners, routing, retries, idempotence); this module only moves time and bytes.

**The choice: asyncio.**  The I/O shell is the same ``OutboxTransport`` the broker uses to reach
other nodes -- one asyncio connection per broker, ApiVersions negotiation, request timeouts,
reconnect backoff -- so the client adds no second network stack.  Users call an ordinary
synchronous API (``send`` returns a :class:`concurrent.futures.Future`), so the event loop runs on
one background thread owned by the producer: the counterpart of the Java producer's I/O thread
(``kafka-producer-network-thread``).  Exactly one thread touches the core: the loop's.  The
user's thread only hands records over and waits on futures.  The hand-over is a queue
(``_handoff``) that the loop empties in one go; only a record that finds it empty wakes the
loop (``call_soon_threadsafe``), so a burst of sends costs one wake-up, not one per record.

The loop's one task, :meth:`Producer._run`, repeats: ``core.poll(now)``, then sleep until the core's
next timer (linger, backoff, expiry, metadata age) or until something wakes it (a new record, an
answer delivered by the transport, ``flush``).

Errors reach the user as typed exceptions from the registry, never as tracebacks from the loop:
configuration errors raise :class:`~reference.client.exceptions.ConfigException` from the
constructor; everything about a record (unknown topic, MESSAGE_TOO_LARGE, a broker that is gone
past ``delivery.timeout.ms``) fails that record's future with a
:class:`~reference.errors.KafkaError`, and ``on_delivery(error, metadata)`` callbacks see the same.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from ..records.record import Header
from .accumulator import DeliveryFuture, RecordMetadata
from .exceptions import ConfigException, LocalProtocolError, RequestTimedOutError
from .producer_config import ProducerConfig
from .producer_core import ProducerCore
from .transport import OutboxTransport

log = logging.getLogger("refka.client.producer")

DeliveryCallback = Callable[[Exception | None, RecordMetadata | None], None]
# One record on its way from the user's thread to the core:
# (topic, value, key, partition, headers, timestamp_ms, future).
_Handoff = tuple[str, bytes | None, bytes | None, int | None, list[Header], int | None, DeliveryFuture]


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class ProducerClosedError(LocalProtocolError):
    """``send`` after ``close`` (Java's ``IllegalStateException: Cannot perform operation after
    producer has been closed``): the caller's own mistake, so not a KafkaError."""

    def __init__(self) -> None:
        super().__init__("cannot perform operation after producer has been closed")


class Producer:
    """A Kafka producer.  ``Producer({"bootstrap.servers": "host:9092", "acks": "all"})``."""

    def __init__(self, properties: Mapping[str, object], clock_ms: Callable[[], int] = wall_clock_ms) -> None:
        self.config = ProducerConfig.from_properties(properties)
        self._clock_ms = clock_ms
        self.core = ProducerCore(self.config, clock_ms())
        self._closed = False
        # Both lists are guarded by _handoff_lock.  _handoff: records sent by the user, not yet given
        # to the core.  _unanswered: the futures flush() may have to wait for; answered ones are
        # dropped when it has doubled in size since the last pruning (amortised O(1) per send).
        self._handoff: list[_Handoff] = []
        self._unanswered: list[DeliveryFuture] = []
        self._prune_at = 1024
        self._handoff_lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._wake: asyncio.Event | None = None
        self._started = threading.Event()
        self._stop_requested = False
        self._thread = threading.Thread(target=self._thread_main, name="refka-producer-network-thread", daemon=True)
        self._thread.start()
        self._started.wait()

    # -- the public API ------------------------------------------------------------------------------

    def send(self, topic: str, value: bytes | None, key: bytes | None = None, partition: int | None = None,
             headers: Sequence[tuple[str, bytes | None]] = (), timestamp_ms: int | None = None,
             on_delivery: DeliveryCallback | None = None) -> DeliveryFuture:
        """Queue a record; the returned future resolves to its :class:`RecordMetadata`.

        ``on_delivery(error, metadata)`` is called on the producer's I/O thread once the record
        is written or has failed.  Raises ``TypeError`` for a key or value that is not bytes and
        :class:`ProducerClosedError` after :meth:`close`.
        """
        if self._closed:
            raise ProducerClosedError()
        for name, data in (("key", key), ("value", value)):
            if data is not None and not isinstance(data, bytes | bytearray):
                raise TypeError(f"the record {name} must be bytes or None, not {type(data).__name__}")
        if not isinstance(topic, str) or not topic:
            raise TypeError("the topic must be a non-empty string")
        future: DeliveryFuture = concurrent.futures.Future()
        if on_delivery is not None:
            future.add_done_callback(lambda done: _call_back(on_delivery, done))
        record_headers = [Header(k, v) for k, v in headers]
        with self._handoff_lock:
            self._handoff.append((topic, None if value is None else bytes(value), None if key is None else bytes(key),
                                  partition, record_headers, timestamp_ms, future))
            first = len(self._handoff) == 1
            self._unanswered.append(future)
            if len(self._unanswered) > self._prune_at:
                self._unanswered = [f for f in self._unanswered if not f.done()]
                self._prune_at = 2 * len(self._unanswered) + 1024
        if first:  # the loop has not been asked to take the queue yet
            self._loop.call_soon_threadsafe(self._take_handoff)
        return future

    def flush(self, timeout: float | None = None) -> int:
        """Send everything now and wait for every record's outcome; returns how many are still
        unanswered when ``timeout`` (seconds) ran out (0 when all are done), like librdkafka."""
        with self._handoff_lock:
            self._unanswered = [f for f in self._unanswered if not f.done()]
            waiting = list(self._unanswered)  # later sends are not this flush's business
        if waiting:
            self._loop.call_soon_threadsafe(self._set_flushing, True)
            # One future at a time: concurrent.futures.wait() would hang a waiter on every future,
            # which the I/O thread then has to update as each record is answered.
            deadline = None if timeout is None else time.monotonic() + timeout
            for future in waiting:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    future.exception(remaining)
                except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
                    if not future.cancelled():
                        break
            self._loop.call_soon_threadsafe(self._set_flushing, False)
        return sum(1 for future in waiting if not future.done())

    def close(self, timeout: float | None = None) -> None:
        """Flush (up to ``timeout`` seconds), then stop; records still unanswered fail."""
        if self._closed:
            return
        self._closed = True
        self.flush(timeout)
        self._loop.call_soon_threadsafe(self._request_stop)
        self._thread.join()

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the I/O thread --------------------------------------------------------------------------------

    def _thread_main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._run())
        finally:
            self._loop.close()

    async def _run(self) -> None:
        self._wake = asyncio.Event()
        transport = OutboxTransport(self.core.outbox, self.core.metadata.address, self.config.client_id,
                                    self._clock_ms, on_delivered=self._wake.set)
        await transport.start()
        self._started.set()
        try:
            while not self._stop_requested:
                now_ms = self._clock_ms()
                try:
                    self.core.poll(now_ms)
                except Exception:  # a bug in the core must not leave the user's futures hanging forever
                    log.exception("producer core")
                next_ms = self.core.next_wakeup_ms(self._clock_ms())
                delay = None if next_ms is None else max(0.0, (next_ms - self._clock_ms()) / 1000)
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=delay if delay is None else max(delay, 0.001))
                except TimeoutError:
                    pass
        finally:
            await transport.stop()  # requests on the wire fail back into the accumulator ...
            self.core.fail_everything(RequestTimedOutError("the producer was closed before the record was sent"))

    def _take_handoff(self) -> None:
        with self._handoff_lock:
            records, self._handoff = self._handoff, []
        now_ms = self._clock_ms()
        for topic, value, key, partition, headers, timestamp_ms, future in records:
            self.core.send(topic, value, key, partition, headers, timestamp_ms, future, now_ms)
        self._poke()

    def _set_flushing(self, flushing: bool) -> None:
        self.core.accumulator.flushing = flushing
        self._poke()

    def _request_stop(self) -> None:
        self._stop_requested = True
        self._poke()

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()


def _call_back(on_delivery: DeliveryCallback, future: DeliveryFuture) -> None:
    error = future.exception()
    try:
        on_delivery(error if isinstance(error, Exception) else None, None if error else future.result())
    except Exception:
        log.exception("a delivery callback raised")


__all__ = ["ConfigException", "DeliveryCallback", "Producer", "ProducerClosedError", "RecordMetadata"]
