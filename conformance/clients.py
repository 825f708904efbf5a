"""One small adapter per real Kafka client, so a conformance test is written once and run with each.

Theory of operation
-------------------
The suite checks the *broker*, through the clients people actually use.  Each adapter turns the
same few operations into that client's own API and reports what happened in plain data:

* :meth:`Client.produce` sends messages and returns one :class:`Delivery` per message (partition,
  offset, or the error the client surfaced, with its Kafka error code when the client exposes it);
* :meth:`Client.consume` reads a topic's partitions from a start position without a group
  (manual assignment), at an ``isolation.level`` (read_uncommitted unless asked: librdkafka's own
  default is read_committed), and returns :class:`Message` objects in the order the client
  delivered them;
* :meth:`Client.group_member` joins a consumer group by subscription (see :class:`GroupMember`);
* :meth:`Client.transactional_producer` gives a producer with a ``transactional.id``, already
  initialised (InitProducerId), that begins, sends, adds consumer offsets, commits and aborts
  transactions (see :class:`TransactionalProducer`).  Every library reports fencing -- a newer
  producer with the same transactional.id -- its own way; the adapters raise
  :class:`TransactionFenced` for all of them.

Clients differ in what they can express (kcat cannot send binary or report offsets, aiokafka
cannot send null header values, ...).  An adapter lists what it cannot do in ``lacks``; a test that
needs one of those skips with the reason, which then appears in the matrix.

Adapters: kafka-python (``KafkaPythonClient``), confluent-kafka / librdkafka
(``ConfluentClient``), aiokafka (``AioKafkaClient``, driven from a private event-loop thread),
kcat (``KcatClient``, the librdkafka command-line tool, when installed) and refka's own client
(``RefkaClient``, ``reference.client``), which takes Kafka's property names as the Java client does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

CLIENT_NAMES = ("kafka-python", "confluent-kafka", "aiokafka", "kcat", "refka")
DEFAULT_CLIENTS = ("kafka-python", "confluent-kafka", "aiokafka", "kcat", "refka")


@dataclass
class Message:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    partition: int | None = None
    offset: int | None = None
    timestamp: int | None = None


@dataclass
class Delivery:
    partition: int | None
    offset: int | None
    error: str | None = None
    error_code: int | None = None


class ClientLacks(Exception):
    """The client cannot express what a test needs; the test is skipped with this reason."""


class Client:
    name = "?"
    # Features the client cannot express: "binary", "null_header_value", "offsets", "headers",
    # "explicit_partition", "acks0_offset", "group", "transactions".
    lacks: frozenset[str] = frozenset()

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap

    def require(self, *features: str) -> None:
        missing = [feature for feature in features if feature in self.lacks]
        if missing:
            raise ClientLacks(f"{self.name} cannot express: {', '.join(missing)}")

    def produce(self, topic: str, messages: Sequence[Message], acks: str = "all",
                config: dict[str, Any] | None = None, timeout: float = 15.0) -> list[Delivery]:
        raise NotImplementedError

    def consume(self, topic: str, partitions: Sequence[int], count: int, timeout: float = 10.0,
                start: str = "earliest", isolation_level: str = "read_uncommitted") -> list[Message]:
        """Up to ``count`` records of ``partitions`` from ``start``; ``isolation_level`` is the
        consumer's ``isolation.level`` (``read_committed`` hides aborted and open transactions)."""
        raise NotImplementedError

    def group_member(self, topic: str, group_id: str, config: dict[str, Any] | None = None) -> GroupMember:
        raise ClientLacks(f"{self.name} has no group consumer adapter")

    def transactional_producer(self, transactional_id: str) -> TransactionalProducer:
        """A producer with ``transactional.id`` = ``transactional_id``, returned after its
        init_transactions (InitProducerId: which fences any older producer of the same id)."""
        raise ClientLacks(f"{self.name} cannot express: transactions")

    def close(self) -> None:
        """Release shared resources (event loops); clients are created per test."""


class GroupMember:
    """A consumer that joined a group by subscription."""

    def poll(self, timeout: float = 0.2) -> list[Message]:
        raise NotImplementedError

    def assignment(self) -> set[int]:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class TransactionFenced(Exception):
    """The client reported that a newer producer with the same transactional.id fenced this one."""


class TransactionalProducer:
    """A transactional producer (KIP-98) after ``init_transactions``: one transaction at a time.

    Each adapter maps its client's own fencing error (the coordinator answered PRODUCER_FENCED or
    INVALID_PRODUCER_EPOCH because a newer producer bumped the epoch) to :class:`TransactionFenced`."""

    def begin(self) -> None:
        raise NotImplementedError

    def send(self, topic: str, messages: Sequence[Message]) -> list[Delivery]:
        """Sends inside the open transaction and waits until each record is acknowledged
        (written to the log) before returning; raises TransactionFenced when fenced."""
        raise NotImplementedError

    def send_offsets(self, group_id: str, offsets: Mapping[tuple[str, int], int]) -> None:
        """Adds consumer offsets (topic, partition) -> next offset to the transaction."""
        raise NotImplementedError

    def commit(self) -> None:
        """Commits the open transaction; raises TransactionFenced when fenced."""
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


# The exception classes by which the Python clients report that the transaction coordinator or a
# partition leader answered PRODUCER_FENCED (90) or INVALID_PRODUCER_EPOCH (47) -- both mean "a
# newer producer with your transactional.id exists" (KIP-588 split the first from the second).
# kafka-python: ProducerFencedError / InvalidProducerEpochError; aiokafka: ProducerFenced /
# InvalidProducerEpoch.  Matched by name (and base class names) so both libraries share one test.
FENCING_ERROR_NAMES = frozenset({"ProducerFencedError", "InvalidProducerEpochError", "ProducerFenced",
                                 "InvalidProducerEpoch"})
TRANSACTION_TIMEOUT = 30.0  # seconds a transactional call may block (coordinator lookups, markers)


def _is_fencing(error: BaseException | None) -> bool:
    """Whether ``error``, or an exception it was raised from, is one of the fencing errors."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if any(cls.__name__ in FENCING_ERROR_NAMES for cls in type(error).__mro__):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


@contextlib.contextmanager
def _fencing_reported(client_name: str) -> Iterator[None]:
    """Re-raise a Python client's fencing error as :class:`TransactionFenced`, anything else as is."""
    try:
        yield
    except TransactionFenced:
        raise
    except Exception as error:
        if _is_fencing(error):
            raise TransactionFenced(f"{client_name}: {error!r}") from error
        raise


# ---------------------------------------------------------------- kafka-python
def _acks_value(acks: str) -> int | str:
    return "all" if acks == "all" else int(acks)


class KafkaPythonClient(Client):
    name = "kafka-python"
    lacks = frozenset({"null_header_value"})  # KafkaProducer.send insists on (str, bytes) headers

    def produce(self, topic: str, messages: Sequence[Message], acks: str = "all",
                config: dict[str, Any] | None = None, timeout: float = 15.0) -> list[Delivery]:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        settings: dict[str, Any] = {"bootstrap_servers": self.bootstrap, "acks": _acks_value(acks),
                                    "request_timeout_ms": int(timeout * 1000), "linger_ms": 5}
        if acks != "all":
            settings["enable_idempotence"] = False  # idempotence requires acks=all
        settings.update(config or {})
        producer = KafkaProducer(**settings)
        try:
            futures = [producer.send(topic, key=m.key, value=m.value, headers=m.headers or None,
                                     partition=m.partition) for m in messages]
            producer.flush(timeout=timeout)
            deliveries = []
            for future in futures:
                try:
                    metadata = future.get(timeout=timeout)
                    deliveries.append(Delivery(metadata.partition, metadata.offset))
                except KafkaError as error:
                    deliveries.append(Delivery(None, None, repr(error), getattr(error, "errno", None)))
            return deliveries
        finally:
            producer.close(timeout=5)

    def consume(self, topic: str, partitions: Sequence[int], count: int, timeout: float = 10.0,
                start: str = "earliest", isolation_level: str = "read_uncommitted") -> list[Message]:
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                 auto_offset_reset=start, isolation_level=isolation_level)
        try:
            consumer.assign([TopicPartition(topic, p) for p in partitions])
            received: list[Message] = []
            deadline = time.monotonic() + timeout
            while len(received) < count and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=200).values():
                    received.extend(_from_kafka_python(record) for record in records)
            return received
        finally:
            consumer.close()

    def group_member(self, topic: str, group_id: str, config: dict[str, Any] | None = None) -> GroupMember:
        from kafka import KafkaConsumer

        settings: dict[str, Any] = {"bootstrap_servers": self.bootstrap, "group_id": group_id,
                                    "auto_offset_reset": "earliest", "enable_auto_commit": False,
                                    "session_timeout_ms": 10000, "heartbeat_interval_ms": 1000}
        settings.update(config or {})
        return _KafkaPythonMember(lambda: KafkaConsumer(**settings), topic)

    def transactional_producer(self, transactional_id: str) -> TransactionalProducer:
        return _KafkaPythonTransactionalProducer(self.bootstrap, transactional_id)


def _from_kafka_python(record: Any) -> Message:
    return Message(record.key, record.value, list(record.headers or []), record.partition, record.offset,
                   record.timestamp)


class _KafkaPythonMember(GroupMember):
    """A kafka-python group member polled by a thread of its own, as applications run consumers.

    kafka-python 3.0 cannot share one thread between members of the same group: a member whose
    ``poll()`` times out while its JoinGroup/SyncGroup is in flight drops the finished exchange and
    sends a new JoinGroup on its next poll.  When that member is the leader, the new JoinGroup
    starts another rebalance, which again outlasts the poll because the other member only rejoins
    when *its* poll runs -- a rebalance storm against any broker.  Here each member polls
    continuously on its own thread; the test thread reads what it buffered.  The consumer is only
    ever touched by that thread (KafkaConsumer is not thread-safe): commit and close are handed
    over as commands.
    """

    POLL_MS = 500

    def __init__(self, make_consumer: Callable[[], Any], topic: str) -> None:
        self._commands: queue.SimpleQueue[tuple[str, Future[None]]] = queue.SimpleQueue()
        self._received: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._assignment: frozenset[int] = frozenset()
        self._failure: BaseException | None = None
        started: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, args=(make_consumer, topic, started),
                                        name="kafka-python-member", daemon=True)
        self._thread.start()
        started.result(60)

    def _run(self, make_consumer: Callable[[], Any], topic: str, started: Future[None]) -> None:
        try:
            consumer = make_consumer()
            consumer.subscribe([topic])
            # kafka-python 3.0 also keeps a snapshot of the subscribed topics' partitions that only
            # a metadata answer arriving *after* subscribe() fills; a leader assigning before that
            # answer assigns from an empty snapshot and must rebalance again when it comes.
            # Fetching the cluster's topics after subscribing fills it before the first join, as an
            # application that looks up its topics first does.
            consumer.topics()
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            started.set_exception(error)
            return
        started.set_result(None)
        try:
            while True:
                while not self._commands.empty():
                    command, done = self._commands.get()
                    try:
                        if command == "close":
                            consumer.close(autocommit=False)
                            done.set_result(None)
                            return
                        consumer.commit()
                        done.set_result(None)
                    except BaseException as error:  # noqa: BLE001
                        done.set_exception(error)
                for records in consumer.poll(timeout_ms=self.POLL_MS).values():
                    for record in records:
                        self._received.put(_from_kafka_python(record))
                self._assignment = frozenset(tp.partition for tp in consumer.assignment())
        except BaseException as error:  # noqa: BLE001
            self._failure = error
            with contextlib.suppress(Exception):
                consumer.close(autocommit=False)

    def _command(self, command: str, timeout: float = 60.0) -> None:
        if self._failure is not None:
            raise self._failure
        done: Future[None] = Future()
        self._commands.put((command, done))
        done.result(timeout)

    def poll(self, timeout: float = 0.2) -> list[Message]:
        if self._failure is not None:
            raise self._failure
        messages: list[Message] = []
        with contextlib.suppress(queue.Empty):
            messages.append(self._received.get(timeout=timeout))
            while True:
                messages.append(self._received.get_nowait())
        return messages

    def assignment(self) -> set[int]:
        return set(self._assignment)

    def commit(self) -> None:
        self._command("commit")

    def close(self) -> None:
        if self._thread.is_alive():
            self._command("close")
        self._thread.join(10)


class _KafkaPythonTransactionalProducer(TransactionalProducer):
    """kafka-python 3.x: KafkaProducer(transactional_id=...); its transactional calls block."""

    def __init__(self, bootstrap: str, transactional_id: str) -> None:
        from kafka import KafkaProducer

        timeout_ms = int(TRANSACTION_TIMEOUT * 1000)
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=transactional_id, linger_ms=5,
                                      max_block_ms=timeout_ms, request_timeout_ms=timeout_ms)
        try:
            self.producer.init_transactions()
        except BaseException:
            self.producer.close(timeout=0)
            raise

    def begin(self) -> None:
        with _fencing_reported("kafka-python"):
            self.producer.begin_transaction()

    def send(self, topic: str, messages: Sequence[Message]) -> list[Delivery]:
        from kafka.errors import KafkaError

        with _fencing_reported("kafka-python"):
            futures = [self.producer.send(topic, key=m.key, value=m.value, headers=m.headers or None,
                                          partition=m.partition) for m in messages]
            self.producer.flush(timeout=TRANSACTION_TIMEOUT)
            deliveries = []
            for future in futures:
                try:
                    metadata = future.get(timeout=TRANSACTION_TIMEOUT)
                    deliveries.append(Delivery(metadata.partition, metadata.offset))
                except KafkaError as error:
                    if _is_fencing(error):
                        raise
                    deliveries.append(Delivery(None, None, repr(error), getattr(error, "errno", None)))
            return deliveries

    def send_offsets(self, group_id: str, offsets: Mapping[tuple[str, int], int]) -> None:
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata

        positions = {TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
                     for (topic, partition), offset in offsets.items()}
        with _fencing_reported("kafka-python"):
            self.producer.send_offsets_to_transaction(positions, group_id)

    def commit(self) -> None:
        with _fencing_reported("kafka-python"):
            self.producer.commit_transaction()

    def abort(self) -> None:
        with _fencing_reported("kafka-python"):
            self.producer.abort_transaction()

    def close(self) -> None:
        self.producer.close(timeout=5)


# ---------------------------------------------------------------- confluent-kafka (librdkafka)
class ConfluentClient(Client):
    name = "confluent-kafka"

    def produce(self, topic: str, messages: Sequence[Message], acks: str = "all",
                config: dict[str, Any] | None = None, timeout: float = 15.0) -> list[Delivery]:
        from confluent_kafka import Producer

        settings: dict[str, Any] = {"bootstrap.servers": self.bootstrap, "acks": acks, "linger.ms": 5,
                                    "message.timeout.ms": int(timeout * 1000)}
        settings.update(config or {})
        producer = Producer(settings)
        deliveries: list[Delivery | None] = [None] * len(messages)

        def recorder(index: int) -> Any:
            def on_delivery(error: Any, message: Any) -> None:
                if error is not None:
                    deliveries[index] = Delivery(None, None, str(error), error.code())
                else:
                    deliveries[index] = Delivery(message.partition(), message.offset())
            return on_delivery

        for index, m in enumerate(messages):
            extra = {} if m.partition is None else {"partition": m.partition}
            try:
                producer.produce(topic, key=m.key, value=m.value, headers=m.headers or None,
                                 on_delivery=recorder(index), **extra)
            except Exception as error:  # local failures (queue full, message too large) raise here
                deliveries[index] = Delivery(None, None, repr(error), _confluent_code(error))
            producer.poll(0)
        producer.flush(timeout)
        return [d or Delivery(None, None, "no delivery report before timeout") for d in deliveries]

    def consume(self, topic: str, partitions: Sequence[int], count: int, timeout: float = 10.0,
                start: str = "earliest", isolation_level: str = "read_uncommitted") -> list[Message]:
        from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

        # librdkafka defaults to read_committed, unlike the Java client: always say which.
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "refka-conformance-unused",
                             "enable.auto.commit": False, "enable.partition.eof": False,
                             "isolation.level": isolation_level})
        try:
            position = OFFSET_BEGINNING if start == "earliest" else OFFSET_END
            consumer.assign([TopicPartition(topic, p, position) for p in partitions])
            received: list[Message] = []
            deadline = time.monotonic() + timeout
            while len(received) < count and time.monotonic() < deadline:
                message = consumer.poll(0.2)
                if message is None or message.error():
                    continue
                received.append(_from_confluent(message))
            return received
        finally:
            consumer.close()

    def group_member(self, topic: str, group_id: str, config: dict[str, Any] | None = None) -> GroupMember:
        from confluent_kafka import Consumer

        settings: dict[str, Any] = {"bootstrap.servers": self.bootstrap, "group.id": group_id,
                                    "auto.offset.reset": "earliest", "enable.auto.commit": False,
                                    "session.timeout.ms": 10000, "heartbeat.interval.ms": 1000}
        settings.update(config or {})
        consumer = Consumer(settings)
        consumer.subscribe([topic])
        return _ConfluentMember(consumer)

    def transactional_producer(self, transactional_id: str) -> TransactionalProducer:
        return _ConfluentTransactionalProducer(self.bootstrap, transactional_id)


def _confluent_code(error: Exception) -> int | None:
    with contextlib.suppress(Exception):
        return int(error.args[0].code())
    return None


def _from_confluent(message: Any) -> Message:
    timestamp = message.timestamp()[1] if message.timestamp() else None
    return Message(message.key(), message.value(), list(message.headers() or []), message.partition(),
                   message.offset(), timestamp)


def _confluent_fenced(error: Any) -> bool:
    """librdkafka reports fencing as a *fatal* error, _FENCED (-144), which it raises for the
    coordinator's or a leader's PRODUCER_FENCED / INVALID_PRODUCER_EPOCH."""
    from confluent_kafka import KafkaError

    fencing_codes = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}
    return bool(error is not None and error.fatal() and error.code() in fencing_codes)


@contextlib.contextmanager
def _confluent_fencing_reported() -> Iterator[None]:
    from confluent_kafka import KafkaException

    try:
        yield
    except KafkaException as error:
        if error.args and _confluent_fenced(error.args[0]):
            raise TransactionFenced(f"confluent-kafka: {error.args[0]}") from error
        raise


class _ConfluentTransactionalProducer(TransactionalProducer):
    """confluent-kafka: Producer with transactional.id; send_offsets_to_transaction takes the
    group's ConsumerGroupMetadata, which only a Consumer configured with that group.id gives."""

    def __init__(self, bootstrap: str, transactional_id: str) -> None:
        from confluent_kafka import Producer

        self.bootstrap = bootstrap
        self.producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
                                  "linger.ms": 5})
        self.producer.init_transactions(TRANSACTION_TIMEOUT)

    def begin(self) -> None:
        with _confluent_fencing_reported():
            self.producer.begin_transaction()

    def send(self, topic: str, messages: Sequence[Message]) -> list[Delivery]:
        deliveries: list[Delivery | None] = [None] * len(messages)
        fenced: list[Any] = []

        def recorder(index: int) -> Any:
            def on_delivery(error: Any, message: Any) -> None:
                if error is None:
                    deliveries[index] = Delivery(message.partition(), message.offset())
                    return
                if _confluent_fenced(error):
                    fenced.append(error)
                deliveries[index] = Delivery(None, None, str(error), error.code())
            return on_delivery

        with _confluent_fencing_reported():
            for index, m in enumerate(messages):
                extra = {} if m.partition is None else {"partition": m.partition}
                self.producer.produce(topic, key=m.key, value=m.value, headers=m.headers or None,
                                      on_delivery=recorder(index), **extra)
                self.producer.poll(0)
            self.producer.flush(TRANSACTION_TIMEOUT)
        if fenced:
            raise TransactionFenced(f"confluent-kafka: {fenced[0]}")
        return [d or Delivery(None, None, "no delivery report before timeout") for d in deliveries]

    def send_offsets(self, group_id: str, offsets: Mapping[tuple[str, int], int]) -> None:
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group_id,
                             "enable.auto.commit": False})
        try:
            group_metadata = consumer.consumer_group_metadata()
        finally:
            consumer.close()
        positions = [TopicPartition(topic, partition, offset) for (topic, partition), offset in offsets.items()]
        with _confluent_fencing_reported():
            self.producer.send_offsets_to_transaction(positions, group_metadata, TRANSACTION_TIMEOUT)

    def commit(self) -> None:
        with _confluent_fencing_reported():
            self.producer.commit_transaction(TRANSACTION_TIMEOUT)

    def abort(self) -> None:
        with _confluent_fencing_reported():
            self.producer.abort_transaction(TRANSACTION_TIMEOUT)

    def close(self) -> None:
        # confluent-kafka's Producer has no close (dropping it destroys the handle); serve the last
        # callbacks.  A fenced producer raises its fatal error again here, which is no news.
        with contextlib.suppress(Exception):
            self.producer.flush(0)


class _ConfluentMember(GroupMember):
    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer

    def poll(self, timeout: float = 0.2) -> list[Message]:
        from confluent_kafka import KafkaError

        message = self.consumer.poll(timeout)
        if message is None:
            return []
        if message.error():
            if message.error().code() == KafkaError._AUTO_OFFSET_RESET:
                raise RuntimeError(f"confluent-kafka: {message.error()}")  # auto.offset.reset=none
            return []
        return [_from_confluent(message)]

    def assignment(self) -> set[int]:
        return {tp.partition for tp in self.consumer.assignment()}

    def commit(self) -> None:
        self.consumer.commit(asynchronous=False)

    def close(self) -> None:
        self.consumer.close()


# ---------------------------------------------------------------- aiokafka
class _LoopThread:
    """An asyncio loop on a daemon thread, so synchronous tests can drive aiokafka."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 60.0) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class AioKafkaClient(Client):
    name = "aiokafka"
    lacks = frozenset({"null_header_value"})

    def __init__(self, bootstrap: str) -> None:
        super().__init__(bootstrap)
        self.loop = _LoopThread()

    def close(self) -> None:
        self.loop.stop()

    def produce(self, topic: str, messages: Sequence[Message], acks: str = "all",
                config: dict[str, Any] | None = None, timeout: float = 15.0) -> list[Delivery]:
        return list(self.loop.run(self._produce(topic, messages, acks, config or {}, timeout), timeout + 30))

    async def _produce(self, topic: str, messages: Sequence[Message], acks: str, config: dict[str, Any],
                       timeout: float) -> list[Delivery]:
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import KafkaError

        settings: dict[str, Any] = {"bootstrap_servers": self.bootstrap, "acks": _acks_value(acks),
                                    "request_timeout_ms": int(timeout * 1000), "linger_ms": 5}
        settings.update(config)
        producer = AIOKafkaProducer(**settings)
        await producer.start()
        try:
            futures = []
            for m in messages:
                try:
                    futures.append(await producer.send(topic, key=m.key, value=m.value,
                                                       headers=m.headers or None, partition=m.partition))
                except KafkaError as error:
                    futures.append(error)
            deliveries = []
            for future in futures:
                if isinstance(future, Exception):
                    deliveries.append(Delivery(None, None, repr(future), getattr(future, "errno", None)))
                    continue
                try:
                    metadata = await asyncio.wait_for(future, timeout)
                    if metadata is None:  # acks=0: aiokafka resolves the future without metadata
                        deliveries.append(Delivery(None, None))
                    else:
                        deliveries.append(Delivery(metadata.partition, metadata.offset))
                except KafkaError as error:
                    deliveries.append(Delivery(None, None, repr(error), getattr(error, "errno", None)))
            return deliveries
        finally:
            await producer.stop()

    def consume(self, topic: str, partitions: Sequence[int], count: int, timeout: float = 10.0,
                start: str = "earliest", isolation_level: str = "read_uncommitted") -> list[Message]:
        return list(self.loop.run(self._consume(topic, partitions, count, timeout, start, isolation_level),
                                  timeout + 30))

    async def _consume(self, topic: str, partitions: Sequence[int], count: int, timeout: float,
                       start: str, isolation_level: str) -> list[Message]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset=start, isolation_level=isolation_level)
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, p) for p in partitions])
            received: list[Message] = []
            deadline = time.monotonic() + timeout
            while len(received) < count and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    received.extend(_from_kafka_python(record) for record in records)
            return received
        finally:
            await consumer.stop()

    def group_member(self, topic: str, group_id: str, config: dict[str, Any] | None = None) -> GroupMember:
        from aiokafka import AIOKafkaConsumer

        settings: dict[str, Any] = {"bootstrap_servers": self.bootstrap, "group_id": group_id,
                                    "auto_offset_reset": "earliest", "enable_auto_commit": False,
                                    "session_timeout_ms": 10000, "heartbeat_interval_ms": 1000}
        settings.update(config or {})

        async def started() -> Any:
            consumer = AIOKafkaConsumer(topic, **settings)
            await consumer.start()
            return consumer

        return _AioKafkaMember(self.loop, self.loop.run(started()))

    def transactional_producer(self, transactional_id: str) -> TransactionalProducer:
        return _AioKafkaTransactionalProducer(self.loop, self.bootstrap, transactional_id)


class _AioKafkaMember(GroupMember):
    def __init__(self, loop: _LoopThread, consumer: Any) -> None:
        self.loop = loop
        self.consumer = consumer

    def poll(self, timeout: float = 0.2) -> list[Message]:
        batches = self.loop.run(self.consumer.getmany(timeout_ms=int(timeout * 1000)))
        return [_from_kafka_python(record) for records in batches.values() for record in records]

    def assignment(self) -> set[int]:
        return {tp.partition for tp in self.consumer.assignment()}

    def commit(self) -> None:
        self.loop.run(self.consumer.commit())

    def close(self) -> None:
        self.loop.run(self.consumer.stop())


class _AioKafkaTransactionalProducer(TransactionalProducer):
    """aiokafka: AIOKafkaProducer(transactional_id=...), whose start() initialises the transactions;
    every call runs on the adapter's event-loop thread."""

    def __init__(self, loop: _LoopThread, bootstrap: str, transactional_id: str) -> None:
        self.loop = loop
        self.producer = self.loop.run(self._started(bootstrap, transactional_id))

    @staticmethod
    async def _started(bootstrap: str, transactional_id: str) -> Any:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=transactional_id, linger_ms=5,
                                    request_timeout_ms=int(TRANSACTION_TIMEOUT * 1000))
        await producer.start()
        return producer

    def _run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        with _fencing_reported("aiokafka"):
            return self.loop.run(coroutine, TRANSACTION_TIMEOUT + 30)

    def begin(self) -> None:
        self._run(self.producer.begin_transaction())

    def send(self, topic: str, messages: Sequence[Message]) -> list[Delivery]:
        return list(self._run(self._send(topic, messages)))

    async def _send(self, topic: str, messages: Sequence[Message]) -> list[Delivery]:
        from aiokafka.errors import KafkaError

        futures = [await self.producer.send(topic, key=m.key, value=m.value, headers=m.headers or None,
                                            partition=m.partition) for m in messages]
        deliveries = []
        for future in futures:
            try:
                metadata = await asyncio.wait_for(future, TRANSACTION_TIMEOUT)
                deliveries.append(Delivery(metadata.partition, metadata.offset))
            except KafkaError as error:
                if _is_fencing(error):
                    raise
                deliveries.append(Delivery(None, None, repr(error), getattr(error, "errno", None)))
        return deliveries

    def send_offsets(self, group_id: str, offsets: Mapping[tuple[str, int], int]) -> None:
        from aiokafka import TopicPartition

        positions = {TopicPartition(topic, partition): offset for (topic, partition), offset in offsets.items()}
        self._run(self.producer.send_offsets_to_transaction(positions, group_id))

    def commit(self) -> None:
        self._run(self.producer.commit_transaction())

    def abort(self) -> None:
        self._run(self.producer.abort_transaction())

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a fenced producer may fail to stop cleanly
            self.loop.run(self.producer.stop(), 15)


# ---------------------------------------------------------------- kcat
class KcatClient(Client):
    """kcat (librdkafka's CLI).  Text only; produce reports no offsets."""

    name = "kcat"
    lacks = frozenset({"binary", "null_header_value", "offsets", "group", "acks0_offset", "transactions"})
    KEY_DELIMITER = "\t"

    def __init__(self, bootstrap: str) -> None:
        super().__init__(bootstrap)
        path = shutil.which("kcat") or shutil.which("kafkacat")
        if path is None:
            raise ClientLacks("kcat is not installed")
        self.kcat = path

    def produce(self, topic: str, messages: Sequence[Message], acks: str = "all",
                config: dict[str, Any] | None = None, timeout: float = 15.0) -> list[Delivery]:
        deliveries = []
        # One kcat run per (partition, headers) group keeps headers per message exact.
        for m in messages:
            command = [self.kcat, "-P", "-b", self.bootstrap, "-t", topic, "-K", self.KEY_DELIMITER, "-Z",
                       "-X", f"acks={-1 if acks == 'all' else acks}", "-X", f"message.timeout.ms={int(timeout * 1000)}"]
            for key, value in (config or {}).items():
                command += ["-X", f"{key}={value}"]
            if m.partition is not None:
                command += ["-p", str(m.partition)]
            for header_key, header_value in m.headers:
                command += ["-H", f"{header_key}={(header_value or b'').decode()}"]
            line = ((m.key or b"").decode() + self.KEY_DELIMITER + (m.value or b"").decode()).encode()
            done = subprocess.run(command, input=line + b"\n", capture_output=True, timeout=timeout + 10)
            stderr = done.stderr.decode(errors="replace").strip()
            failed = done.returncode != 0 or "ERROR" in stderr or "Delivery failed" in stderr
            deliveries.append(Delivery(None, None, stderr or f"exit {done.returncode}") if failed else Delivery(None, None))
        return deliveries

    def consume(self, topic: str, partitions: Sequence[int], count: int, timeout: float = 10.0,
                start: str = "earliest", isolation_level: str = "read_uncommitted") -> list[Message]:
        received: list[Message] = []
        for partition in partitions:
            command = [self.kcat, "-C", "-b", self.bootstrap, "-t", topic, "-p", str(partition), "-J", "-e",
                       "-o", "beginning" if start == "earliest" else "end", "-X", f"isolation.level={isolation_level}"]
            try:
                done = subprocess.run(command, capture_output=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                continue
            for line in done.stdout.decode(errors="replace").splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    received.append(_from_kcat(json.loads(line)))
        return received


def _from_kcat(event: dict[str, Any]) -> Message:
    flat_headers = event.get("headers") or []
    headers = [(flat_headers[i], None if flat_headers[i + 1] is None else flat_headers[i + 1].encode())
               for i in range(0, len(flat_headers), 2)]
    key = event.get("key")
    payload = event.get("payload")
    return Message(None if key is None else key.encode(), None if payload is None else payload.encode(), headers,
                   event.get("partition"), event.get("offset"), event.get("ts"))


# ---------------------------------------------------------------- refka (reference.client)
class RefkaClient(Client):
    """refka's own client (``reference.client``): Producer, Consumer; Kafka's property names.

    It expresses everything the suite asks of a client -- binary keys and values, headers with
    null values, offsets on delivery, explicit partitions, partitioners by name (``partitioner``:
    Java's default or librdkafka's names), idempotence, groups, static membership, isolation
    levels and transactions (``transactional.id``, ``reference.client.transaction_manager``).
    """

    name = "refka"
    lacks = frozenset({"acks0_offset"})  # acks=0: no answer, so no offset (as every client)

    def produce(self, topic: str, messages: Sequence[Message], acks: str = "all",
                config: dict[str, Any] | None = None, timeout: float = 15.0) -> list[Delivery]:
        from reference.client.producer import Producer

        timeout_ms = int(timeout * 1000)
        settings: dict[str, Any] = {"bootstrap.servers": self.bootstrap, "acks": acks, "linger.ms": 5,
                                    "request.timeout.ms": timeout_ms, "delivery.timeout.ms": timeout_ms + 5}
        settings.update(config or {})
        producer = Producer(settings)
        try:
            futures = [producer.send(topic, m.value, key=m.key, partition=m.partition, headers=m.headers)
                       for m in messages]
            producer.flush(timeout)
            return [_refka_delivery(future) for future in futures]
        finally:
            producer.close(timeout=5)

    def consume(self, topic: str, partitions: Sequence[int], count: int, timeout: float = 10.0,
                start: str = "earliest", isolation_level: str = "read_uncommitted") -> list[Message]:
        from reference.client.consumer import Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.bootstrap, "auto.offset.reset": start,
                             "enable.auto.commit": False, "isolation.level": isolation_level})
        try:
            consumer.assign([TopicPartition(topic, p) for p in partitions])
            received: list[Message] = []
            deadline = time.monotonic() + timeout
            while len(received) < count and (remaining := deadline - time.monotonic()) > 0:
                received.extend(_from_refka(record) for record in consumer.poll(min(0.2, remaining)))
            return received
        finally:
            consumer.close()

    def group_member(self, topic: str, group_id: str, config: dict[str, Any] | None = None) -> GroupMember:
        from reference.client.consumer import Consumer

        settings: dict[str, Any] = {"bootstrap.servers": self.bootstrap, "group.id": group_id,
                                    "auto.offset.reset": "earliest", "enable.auto.commit": False,
                                    "session.timeout.ms": 10000, "heartbeat.interval.ms": 1000}
        settings.update(config or {})
        consumer = Consumer(settings)
        try:
            consumer.subscribe([topic])
        except BaseException:
            consumer.close()
            raise
        return _RefkaMember(consumer)

    def transactional_producer(self, transactional_id: str) -> TransactionalProducer:
        return _RefkaTransactionalProducer(self.bootstrap, transactional_id)


class _RefkaTransactionalProducer(TransactionalProducer):
    """The reference producer with ``transactional.id``; ProducerFencedError is its fencing error
    (PRODUCER_FENCED, or INVALID_PRODUCER_EPOCH from a coordinator that predates it)."""

    def __init__(self, bootstrap: str, transactional_id: str) -> None:
        from reference.client.producer import Producer

        self.producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
                                  "linger.ms": 5})
        try:
            self.producer.init_transactions(TRANSACTION_TIMEOUT)
        except BaseException:
            self.producer.close(timeout=0)
            raise

    def begin(self) -> None:
        with _fencing_reported("refka"):
            self.producer.begin_transaction()

    def send(self, topic: str, messages: Sequence[Message]) -> list[Delivery]:
        from reference.client.exceptions import ProducerFencedError

        with _fencing_reported("refka"):
            futures = [self.producer.send(topic, m.value, key=m.key, partition=m.partition, headers=m.headers)
                       for m in messages]
            self.producer.flush(TRANSACTION_TIMEOUT)
        fenced = [f.exception() for f in futures if f.done() and isinstance(f.exception(), ProducerFencedError)]
        if fenced:
            raise TransactionFenced(f"refka: {fenced[0]}")
        return [_refka_delivery(future) for future in futures]

    def send_offsets(self, group_id: str, offsets: Mapping[tuple[str, int], int]) -> None:
        with _fencing_reported("refka"):
            self.producer.send_offsets_to_transaction(offsets, group_id, TRANSACTION_TIMEOUT)

    def commit(self) -> None:
        with _fencing_reported("refka"):
            self.producer.commit_transaction(TRANSACTION_TIMEOUT)

    def abort(self) -> None:
        with _fencing_reported("refka"):
            self.producer.abort_transaction(TRANSACTION_TIMEOUT)

    def close(self) -> None:
        self.producer.close(timeout=5)


def _refka_delivery(future: Any) -> Delivery:
    from reference.errors import KafkaError

    if not future.done():
        return Delivery(None, None, "no delivery report before timeout")
    error = future.exception()
    if error is None:
        metadata = future.result()
        return Delivery(metadata.partition, None if metadata.offset < 0 else metadata.offset)
    code = error.error.code if isinstance(error, KafkaError) else None
    return Delivery(None, None, repr(error), code)


def _from_refka(record: Any) -> Message:
    return Message(record.key, record.value, list(record.headers), record.partition, record.offset, record.timestamp)


class _RefkaMember(GroupMember):
    """The reference consumer is safe to poll from the test thread: its own network thread keeps
    heartbeating and fetching between polls, and ``poll`` runs the rebalance callbacks."""

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer

    def poll(self, timeout: float = 0.2) -> list[Message]:
        return [_from_refka(record) for record in self.consumer.poll(timeout)]

    def assignment(self) -> set[int]:
        return {tp.partition for tp in self.consumer.assignment()}

    def commit(self) -> None:
        self.consumer.commit_sync()

    def close(self) -> None:
        self.consumer.close()


ADAPTERS: dict[str, type[Client]] = {
    "kafka-python": KafkaPythonClient,
    "confluent-kafka": ConfluentClient,
    "aiokafka": AioKafkaClient,
    "kcat": KcatClient,
    "refka": RefkaClient,
}


def make_client(name: str, bootstrap: str) -> Client:
    return ADAPTERS[name](bootstrap)
