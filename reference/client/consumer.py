"""The reference consumer: a synchronous API over the sans-IO core and an asyncio I/O shell.

Theory of operation
-------------------
Every decision lives in :class:`~reference.client.consumer_core.ConsumerCore`; this module moves
time and bytes, the same way ``reference.client.producer`` does: one asyncio event loop on a
background thread (``refka-consumer-network-thread``) owns the core and an ``OutboxTransport``
(one connection per broker plus one to the group coordinator).  Exactly one thread touches the
core: the loop's.  The application's thread reaches it only through :meth:`Consumer._call`,
which runs a function on the loop and waits for its result.

Unlike Java's consumer, fetching and heartbeats go on while the application is busy between
polls (Java's background thread only heartbeats); what stays on the application's thread, as in
Java, is everything the application can see happen: :meth:`Consumer.poll` runs the rebalance
listener's callbacks, raises the errors the core reported, and hands out records (advancing
positions).  An eager rebalance waits for ``on_partitions_revoked`` to have run in a ``poll``,
so a listener can commit what it processed before its partitions move.

Errors are typed: bad configuration raises :class:`~reference.client.exceptions.ConfigException`
from the constructor; ``poll`` raises :class:`~reference.errors.KafkaError` subclasses such as
:class:`~reference.client.fetcher.NoOffsetForPartitionError`; ``commit_sync`` raises
:class:`~reference.client.offsets.CommitFailedError` when the group moved on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from ..errors import Errors, KafkaError
from .cluster import TopicPartition
from .consumer_config import ConsumerConfig
from .consumer_core import ConsumerCore
from .coordinator import ConsumerGroupMetadata, ListenerCall
from .exceptions import ConfigException, LocalProtocolError
from .fetcher import ConsumerRecord, LogTruncationError, NoOffsetForPartitionError
from .offsets import CommitFailedError
from .subscriptions import Position, SubscriptionError
from .transport import OutboxTransport

log = logging.getLogger("refka.client.consumer")

T = TypeVar("T")
CommitCallback = Callable[[Exception | None, dict[TopicPartition, int] | None], None]


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class ConsumerClosedError(LocalProtocolError):
    def __init__(self) -> None:
        super().__init__("this consumer has already been closed")


class RebalanceListener:
    """Java's ``ConsumerRebalanceListener``; override what you need.  Runs inside ``poll``."""

    def on_partitions_revoked(self, partitions: set[TopicPartition]) -> None:
        """Before partitions move away (commit what was processed here)."""

    def on_partitions_assigned(self, partitions: set[TopicPartition]) -> None:
        """After a rebalance: the partitions newly assigned (all of them for eager assignors)."""

    def on_partitions_lost(self, partitions: set[TopicPartition]) -> None:
        """The member fell out of the group: the partitions may already be someone else's."""
        self.on_partitions_revoked(partitions)


class Consumer:
    """A Kafka consumer.  ``Consumer({"bootstrap.servers": "host:9092", "group.id": "g"})``."""

    def __init__(self, properties: Mapping[str, object], clock_ms: Callable[[], int] = wall_clock_ms) -> None:
        self.config = ConsumerConfig.from_properties(properties)
        self._clock_ms = clock_ms
        self.core = ConsumerCore(self.config)
        self.listener: RebalanceListener = RebalanceListener()
        self._closed = False
        self._data_ready = threading.Event()
        self.core.fetcher.on_records = self._data_ready.set
        self.core.coordinator.on_listener_call = self._data_ready.set
        self._loop = asyncio.new_event_loop()
        self._wake: asyncio.Event | None = None
        self._started = threading.Event()
        self._stop_requested = False
        self._thread = threading.Thread(target=self._thread_main, name="refka-consumer-network-thread", daemon=True)
        self._thread.start()
        self._started.wait()

    # -- subscription and assignment -----------------------------------------------------------------

    def subscribe(self, topics: Iterable[str], listener: RebalanceListener | None = None) -> None:
        """Join the group (``group.id``) for ``topics``; raises ConfigException without a group.id."""
        if self.config.group_id is None:
            raise ConfigException("subscribe() needs a group.id (use assign() without a group)")
        topics = list(topics)
        if not topics or any(not isinstance(t, str) or not t for t in topics):
            raise ValueError("subscribe() needs a non-empty list of topic names")
        if listener is not None:
            self.listener = listener
        self._call(self.core.subscribe, topics)

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        self._call(self.core.assign, list(partitions))

    def assignment(self) -> set[TopicPartition]:
        return self._call(self.core.assignment)

    def group_metadata(self) -> ConsumerGroupMetadata:
        """This member's group identity -- group id, generation, member id, static instance id --
        for ``Producer.send_offsets_to_transaction`` (Java's ``groupMetadata()``): the group
        coordinator then refuses the offsets of a member whose generation has moved on (KIP-447)."""
        if self.config.group_id is None:
            raise KafkaError(Errors.INVALID_GROUP_ID, "group_metadata needs a group.id")
        return self._call(self.core.coordinator.group_metadata)

    def unsubscribe(self) -> None:
        """Leave the group (running ``on_partitions_revoked``, or ``..._lost`` when the member's
        generation is gone or a rebalance is under way, as Java's ``onLeavePrepare``)."""
        self._hand_back_partitions()
        leaving = self._call(self.core.unsubscribe)
        if leaving is not None:
            leaving.result(self.config.request_timeout_ms / 1000)

    def _hand_back_partitions(self) -> None:
        if not self.core.subscriptions.subscribed:
            return
        owned, member_in_good_standing = self._call(
            lambda: (self.core.assignment(), self.core.coordinator.in_stable_generation()))
        if owned:
            if member_in_good_standing:
                self.listener.on_partitions_revoked(owned)
            else:
                self.listener.on_partitions_lost(owned)

    # -- reading -------------------------------------------------------------------------------------

    def poll(self, timeout: float = 0.0) -> list[ConsumerRecord]:
        """Records fetched since the last poll (at most ``max.poll.records``), waiting up to
        ``timeout`` seconds for some.  Runs rebalance callbacks; raises the consumer's errors."""
        self._check_open()
        if not self._call(lambda: self.core.subscriptions.subscribed or bool(self.core.subscriptions.assignment)):
            raise SubscriptionError("consumer is not subscribed to any topics or assigned any partitions")
        deadline = time.monotonic() + timeout
        while True:
            self._data_ready.clear()
            self._run_listener_calls()
            errors = self._call(self.core.take_errors)
            if errors:
                raise errors[0]
            records = self._call(self.core.take_records, self.config.max_poll_records, self._clock_ms())
            if records:
                return records
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            self._data_ready.wait(remaining)

    def _run_listener_calls(self) -> None:
        calls: list[ListenerCall] = self._call(self.core.take_listener_calls)
        failure: Exception | None = None
        for call in calls:
            method = {"revoked": self.listener.on_partitions_revoked, "assigned": self.listener.on_partitions_assigned,
                      "lost": self.listener.on_partitions_lost}[call.kind]
            try:
                method(set(call.partitions))
            except Exception as error:  # Java rethrows the first one from poll, after all ran
                log.exception("rebalance listener %s", call.kind)
                failure = failure or error
        if calls:
            self._call(self.core.ack_listener_calls, calls[-1].seq)
        if failure is not None:
            raise failure

    def position(self, tp: TopicPartition, timeout: float | None = None) -> int:
        """The offset of the next record ``poll`` returns for ``tp`` (waits until known)."""
        deadline = time.monotonic() + (self.config.default_api_timeout_ms / 1000 if timeout is None else timeout)
        while True:
            errors = self._call(self.core.take_errors)
            if errors:
                raise errors[0]
            position = self._call(self.core.position, tp)
            if position is not None:
                return position
            if time.monotonic() >= deadline:
                raise KafkaError(Errors.REQUEST_TIMED_OUT, f"the position of {tp} is not known yet")
            self._data_ready.wait(0.05)
            self._data_ready.clear()

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if offset < 0:
            raise ValueError("seek offset must not be a negative number")
        self._call(self.core.seek, tp, offset)

    def seek_to_beginning(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        self._call(self.core.seek_to, self._or_assignment(partitions), "earliest")

    def seek_to_end(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        self._call(self.core.seek_to, self._or_assignment(partitions), "latest")

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        self._call(self.core.pause, list(partitions), True)

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        self._call(self.core.pause, list(partitions), False)

    def paused(self) -> set[TopicPartition]:
        return self._call(lambda: {tp for tp, s in self.core.subscriptions.assignment.items() if s.paused})

    def _or_assignment(self, partitions: Iterable[TopicPartition] | None) -> list[TopicPartition]:
        return list(partitions) if partitions is not None else sorted(
            self.assignment(), key=lambda tp: (tp.topic, tp.partition))

    # -- offsets -------------------------------------------------------------------------------------

    def commit_sync(self, offsets: Mapping[TopicPartition, int] | None = None, timeout: float | None = None) -> None:
        """Commit ``offsets`` (the next offsets to read) or every position; retries retriable
        errors until ``timeout`` (``default.api.timeout.ms``)."""
        timeout_ms = self.config.default_api_timeout_ms if timeout is None else int(timeout * 1000)
        future = self._call(self.core.commit, None if offsets is None else dict(offsets), self._clock_ms(),
                            timeout_ms, True)
        future.result()

    def commit_async(self, offsets: Mapping[TopicPartition, int] | None = None,
                     callback: CommitCallback | None = None) -> concurrent.futures.Future[dict[TopicPartition, int]]:
        future = self._call(self.core.commit, None if offsets is None else dict(offsets), self._clock_ms(),
                            self.config.request_timeout_ms, False)
        if callback is not None:
            def done(f: concurrent.futures.Future[dict[TopicPartition, int]]) -> None:
                error = f.exception()
                callback(error if isinstance(error, Exception) else None, None if error else f.result())
            future.add_done_callback(done)
        return future

    def committed(self, partitions: Iterable[TopicPartition], timeout: float | None = None) -> dict[TopicPartition, int | None]:
        """The group's committed offsets (None where nothing is committed)."""
        deadline = time.monotonic() + (self.config.default_api_timeout_ms / 1000 if timeout is None else timeout)
        wanted = set(partitions)
        while True:
            future = self._call(self.core.committed, wanted)
            try:
                result: dict[TopicPartition, Position | None] = future.result(max(0.0, deadline - time.monotonic()))
                return {tp: None if p is None else p.offset for tp, p in result.items()}
            except KafkaError as error:
                if not error.error.retriable or time.monotonic() >= deadline:
                    raise
            time.sleep(self.config.retry_backoff_ms / 1000)

    # -- closing -------------------------------------------------------------------------------------

    def close(self, timeout: float = 30.0) -> None:
        """Commit (auto commit), run ``on_partitions_revoked``, leave the group (not when static),
        and stop."""
        if self._closed:
            return
        deadline = time.monotonic() + timeout
        try:
            if self.config.enable_auto_commit:
                try:
                    self.commit_sync(timeout=max(0.1, deadline - time.monotonic()))
                except KafkaError as error:
                    log.warning("the final auto commit failed: %s", error)
            if self.core.subscriptions.subscribed:
                self._hand_back_partitions()
                leaving = self._call(self.core.unsubscribe)
                if leaving is not None:
                    try:
                        leaving.result(max(0.1, deadline - time.monotonic()))
                    except concurrent.futures.TimeoutError:
                        log.warning("LeaveGroup got no answer")
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._request_stop)
            self._thread.join()

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the I/O thread ------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ConsumerClosedError()

    def _call(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(*args)`` on the loop's thread and return its result."""
        if self._closed:
            raise ConsumerClosedError()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(function(*args))
            except BaseException as error:
                future.set_exception(error)
            self._poke()

        self._loop.call_soon_threadsafe(run)
        return future.result()

    def _thread_main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._run())
        finally:
            self._loop.close()

    async def _run(self) -> None:
        self._wake = asyncio.Event()
        transport = OutboxTransport(self.core.outbox, self.core.address, self.config.client_id,
                                    self._clock_ms, on_delivered=self._wake.set)
        await transport.start()
        self._started.set()
        try:
            while not self._stop_requested:
                try:
                    self.core.poll(self._clock_ms())
                except Exception:  # a bug in the core must not stop the consumer silently
                    log.exception("consumer core")
                next_ms = self.core.next_wakeup_ms(self._clock_ms())
                delay = None if next_ms is None else max(0.001, (next_ms - self._clock_ms()) / 1000)
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
                except TimeoutError:
                    pass
        finally:
            await transport.stop()

    def _request_stop(self) -> None:
        self._stop_requested = True
        self._poke()

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()


__all__ = ["CommitFailedError", "ConfigException", "Consumer", "ConsumerClosedError", "ConsumerGroupMetadata", "ConsumerRecord",
           "LogTruncationError", "NoOffsetForPartitionError", "RebalanceListener", "SubscriptionError",
           "TopicPartition"]
