"""The reference producer: a synchronous API over the sans-IO core and an asyncio I/O shell.

Theory of operation
-------------------
All of the producer's decisions live in :class:`~reference.client.producer_core.ProducerCore`
(accumulator, partitioners, routing, retries, idempotence); this module only moves time and bytes.

**The choice: asyncio.**  The I/O shell is the same ``OutboxTransport`` the broker uses to reach
other nodes -- one asyncio connection per broker, ApiVersions negotiation, request timeouts,
reconnect backoff -- so the client adds no second network stack.  Users call an ordinary
synchronous API (``send`` returns a :class:`~reference.client.delivery.RecordFuture`), so the
event loop runs on one background thread owned by the producer: the counterpart of the Java
producer's I/O thread (``kafka-producer-network-thread``).  Exactly one thread touches the core:
the loop's.  The user's thread only hands records over and waits on futures.  The hand-over is a
queue (``_handoff``) that the loop empties in one go; only a record that finds it empty wakes the
loop (``call_soon_threadsafe``), so a burst of sends costs one wake-up, not one per record.

What a send costs the caller's thread is the point of that split: a few checks, one small
future (no lock of its own: ``delivery``), and one lock acquisition to queue the record.  The
rest -- partitioning, encoding, batching -- is the I/O thread's, and a batch's records are
answered together there, one answer per batch (``delivery.answer``).

The loop's one task, :meth:`Producer._run`, repeats: ``core.poll(now)``, then sleep until the core's
next timer (linger, backoff, expiry, metadata age) or until something wakes it (a new record, an
answer delivered by the transport, ``flush``).

Transactions (``transactional.id``) are the core's
:class:`~reference.client.transaction_manager.TransactionManager`; the five methods
``init_transactions`` ... ``abort_transaction`` hand a call to the loop and wait, up to their
``timeout`` (seconds; ``max.block.ms`` when ``None``), for the result the manager completes.

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
from .cluster import TopicPartition
from .coordinator import ConsumerGroupMetadata
from .delivery import DeliveryFuture, RecordFuture, RecordMetadata
from .exceptions import ConfigException, LocalProtocolError, RequestTimedOutError, TransactionStateError
from .producer_config import ProducerConfig
from .producer_core import ProducerCore
from .transaction_manager import TransactionManager, TransactionResult
from .transport import OutboxTransport

log = logging.getLogger("refka.client.producer")

DeliveryCallback = Callable[[Exception | None, RecordMetadata | None], None]
# One record on its way from the user's thread to the core:
# (topic, value, key, partition, headers, timestamp_ms, future).
_Handoff = tuple[str, bytes | None, bytes | None, int | None, tuple[Header, ...], int | None, DeliveryFuture]


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
        if self.core.transactions is not None:
            self.core.transactions.check_send_allowed()  # only inside a transaction
        _check_bytes("key", key)
        _check_bytes("value", value)
        if not isinstance(topic, str) or not topic:
            raise TypeError("the topic must be a non-empty string")
        future = RecordFuture()
        if on_delivery is not None:
            future.add_done_callback(lambda done: _call_back(on_delivery, done))
        record_headers = tuple(Header(k, v) for k, v in headers) if headers else ()
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
            # One future at a time, in send order.  A batch's records are answered together, so
            # after the first record of a batch the rest are done already and need no waiting
            # (a future makes its Event only when a thread has to block on it).
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

    # -- transactions (KIP-98): the rules are in transaction_manager -------------------------------------

    def init_transactions(self, timeout: float | None = None) -> None:
        """Get the producer id and epoch of ``transactional.id`` from its coordinator, fencing every
        older producer of the same id and aborting what it left open.  Raises
        :class:`~reference.client.exceptions.ProducerFencedError` and other KafkaErrors, and
        :class:`RequestTimedOutError` after ``timeout`` (calling again waits for the same answer)."""
        self._wait(self._on_loop(lambda manager: manager.init_transactions()), timeout, "init_transactions")

    def begin_transaction(self) -> None:
        """Start a transaction (no request: the coordinator learns of it with the first partition)."""
        self._on_loop(lambda manager: manager.begin_transaction())

    def send_offsets_to_transaction(self, offsets: Mapping[TopicPartition, int] | Mapping[tuple[str, int], int],
                                    group_metadata: str | ConsumerGroupMetadata, timeout: float | None = None) -> None:
        """Commit consumer offsets (partition -> next offset to consume) with the transaction:
        visible to the group only if the transaction commits."""
        group = (group_metadata if isinstance(group_metadata, ConsumerGroupMetadata)
                 else ConsumerGroupMetadata(group_metadata))
        positions = {tp if isinstance(tp, TopicPartition) else TopicPartition(*tp): int(offset)
                     for tp, offset in offsets.items()}
        result = self._on_loop(lambda manager: manager.send_offsets_to_transaction(positions, group))
        self._wait(result, timeout, "send_offsets_to_transaction")

    def commit_transaction(self, timeout: float | None = None) -> None:
        """Flush, then commit: returns once the coordinator has decided (EndTxn answered).  After a
        failed record raises its error; the transaction can then only be aborted."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self.flush(timeout)
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        self._wait(self._on_loop(lambda manager: manager.begin_commit()), remaining, "commit_transaction")

    def abort_transaction(self, timeout: float | None = None) -> None:
        """Abort: records not yet sent fail with TransactionAbortedError; the rest are hidden from
        read_committed consumers by the abort markers."""
        self._wait(self._on_loop(lambda manager: manager.begin_abort()), timeout, "abort_transaction")

    def _on_loop(self, call: Callable[[TransactionManager], TransactionResult | None]) -> TransactionResult | None:
        """Run ``call`` with the transaction manager on the I/O thread, and return what it returns."""
        if self._closed:
            raise ProducerClosedError()
        manager = self.core.transactions
        if manager is None:
            raise TransactionStateError("(none)", "a producer without transactional.id", "use transactions")
        answer: concurrent.futures.Future[TransactionResult | None] = concurrent.futures.Future()

        def run() -> None:
            try:
                answer.set_result(call(manager))
            except Exception as error:
                answer.set_exception(error)
            self._poke()

        self._loop.call_soon_threadsafe(run)
        return answer.result()

    def _wait(self, result: TransactionResult | None, timeout: float | None, what: str) -> None:
        if result is None:
            return
        if timeout is None:
            timeout = self.config.max_block_ms / 1000
        try:
            result.result(timeout)
        except concurrent.futures.TimeoutError:
            raise RequestTimedOutError(f"{what} did not complete within {timeout} s") from None

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


def _check_bytes(name: str, data: object) -> None:
    if data is not None and not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"the record {name} must be bytes or None, not {type(data).__name__}")


def _call_back(on_delivery: DeliveryCallback, future: DeliveryFuture) -> None:
    error = future.exception()
    try:
        on_delivery(error if isinstance(error, Exception) else None, None if error else future.result())
    except Exception:
        log.exception("a delivery callback raised")


__all__ = ["ConfigException", "ConsumerGroupMetadata", "DeliveryCallback", "Producer", "ProducerClosedError",
           "RecordMetadata"]
