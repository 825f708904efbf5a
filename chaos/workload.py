"""The client side of a chaos run: producers and consumers that write down everything they see.

Theory of operation
-------------------
Two workloads, after Jepsen's Kafka workload and Kafka's ``replication_test``:

* ``at-least-once``: producers with ``acks=all``, ``retries`` unbounded within
  ``delivery.timeout.ms``, ``enable.idempotence=false`` and
  ``max.in.flight.requests.per.connection=1`` (so a retry cannot reorder a partition); the topic
  has replication factor 3 and ``min.insync.replicas=2`` (1 and 1 on a single node).  No
  acknowledged record may be lost; duplicates are allowed (a retried batch whose answer was lost).
* ``idempotent``: the same with ``enable.idempotence=true`` (KIP-98: producer id, epoch and
  per-partition sequence numbers let the leader drop a retried batch); zero duplicates allowed.

One deliberately *unsafe* variant (``WorkloadConfig.unsafe="acks1"``) exists to prove the checker
sees loss: producers send with ``acks=1`` (the leader acknowledges before any follower has the
record; idempotence off, since it requires ``acks=all``).  A leader that dies, or is cut off from the
other brokers while clients still reach it, takes its unreplicated tail with it: the new leader
never had those records, and the old one truncates them when it rejoins.  The topic keeps its safe
settings; they cannot help a producer that does not wait for them.

A second one (``unsafe="unclean"``) keeps ``acks=all`` producers and makes the *topic* unsafe:
``min.insync.replicas=1`` and ``unclean.leader.election.enable=true``.  A leader whose followers
fell out of the ISR (``replica.lag.time.max.ms``) is an ISR of one, which is enough for acks=all;
when it dies, only an unclean election can give the partition a leader again, and the replica it
elects never had what the lone leader acknowledged (``chaos.nemesis.UncleanLeader`` arranges
exactly that).  Unlike acks1, the loss here is the broker's promise given up, not the client's.

Processes (one thread, one client each), all recording into one :class:`~chaos.history.HistoryWriter`:

* producers send ``(key, value)`` pairs, values unique (``<process>/<n>``), at a bounded rate and
  with a bounded number in flight; each send is an ``invoke``, and its delivery report an ``ok``
  with partition and offset or an ``info`` (maybe written) with the error;
* assign consumers ``assign`` every partition and seek (to the beginning, or back to where they
  were), poll, and now and then re-assign;
* group consumers ``subscribe`` (the classic JoinGroup/SyncGroup group protocol) and commit
  synchronously after recording each poll (commit-after-process: at-least-once delivery);
  rebalances are recorded as they happen;
* the final read: after producers stopped and faults healed, a fresh consumer assigns every
  partition, seeks to the beginning and reads up to each partition's high watermark.

Every client talks only to the bootstrap servers the cluster gives it.  Everything is bounded:
in time (the run's duration, ``delivery.timeout.ms``, the final read's timeout) and in count
(``max_records``).

The clients' own account: ``client.log``
-----------------------------------------
The history says what each client was told; to explain an anomaly one also needs what the client
*did*: which broker a batch went to, which batches were retried, when the idempotent producer
bumped its epoch.  librdkafka says so in its log, which confluent-kafka hands to a Python logger
(``logger`` in the client's config; ``log.queue`` is turned on, so the lines are served, in
librdkafka's order and interleaved with the delivery reports, by the thread that calls ``poll``).
Every client logs to a child of :data:`CLIENT_LOG` named after its process, and
:class:`ClientLog` writes them to the run's ``client.log`` stamped with the run's clock (seconds
since the start, the ``time`` of ``history.jsonl``) and the UTC wall clock (the brokers' logs use
wall-clock time).  A line is stamped when the client hands it over, not when librdkafka wrote it:
a producer polls at least every 50 ms, a consumer every 500 ms, so a stamp may lag by that much.

Idempotent producers also turn on librdkafka's debug contexts :data:`IDEMPOTENT_PRODUCER_DEBUG`
(see librdkafka's CONFIGURATION.md, ``debug``): ``eos`` (producer id and epoch: ``GETPID``,
``DRAIN`` "bumped epoch to PID{...}", ``IDEMPSTATE``, and the idempotence error paths ``ERRSEQ``,
``DUPSEQ``, ``UNKPID``), ``msg`` (every batch built, with its broker, first MsgId, BaseSeq and PID:
``PRODUCE``; its outcome: ``MSGSET`` delivered / "encountered error ... (actions ...)"; timeouts)
and ``protocol`` (every request sent and response received, with its broker and correlation id).
Other clients log at librdkafka's default level (connection failures, errors).  Volume is bounded
by ``ClientLog.max_bytes``: past it, one line says so and the rest is dropped.

One fact from that log goes into the history too, because the checker needs it: an idempotent
producer's **epoch bump**.  librdkafka bumps its own epoch (KIP-360) after local message timeouts,
an unknown producer id or a sequence error; a batch that failed "possibly persisted" and is retried
after the bump carries the new epoch and a sequence restarted at 0, so the leader cannot recognise
it as a retry and may append it a second time (confluentinc/librdkafka#4953).  Each producer hangs an
:class:`EpochBumpRecorder` on its own logger; on ``DRAIN ... bumped epoch to PID{Id:I,Epoch:E}`` it
records ``info epoch-bump {"producer_id", "epoch", "reason"}`` for that producer (see
``chaos.history``).  It runs on the producer's own thread, the one that polls (``log.queue``), so
the event sits in the right place among that producer's invokes and delivery reports.  Locks: the
logging module holds the recorder's handler lock while it records, and the recorder takes the
history's lock inside it; nothing takes them in the other order (the history never logs), so
they cannot deadlock.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .checker import AT_LEAST_ONCE, IDEMPOTENT, TRANSACTIONAL, WORKLOADS
from .history import FAIL, INFO, OK, Clock, HistoryWriter

# Every client's librdkafka log goes to a child of this logger (one per process).  Outside a run it
# drops everything below CRITICAL and does not propagate: librdkafka logs every refused connection,
# thousands of lines on stderr during a fault.  During a run, ClientLog lowers the level and writes
# everything to client.log.
CLIENT_LOG = logging.getLogger("chaos.librdkafka")
CLIENT_LOG.setLevel(logging.CRITICAL)
CLIENT_LOG.propagate = False
CLIENT_LOG_FILE = "client.log"

# librdkafka debug contexts for the idempotent producer (CONFIGURATION.md, ``debug``): producer id,
# epoch bumps and the idempotence error paths (eos); each batch with its broker, MsgId, BaseSeq and
# PID, its retries and outcome (msg); each request and response with its broker (protocol).
IDEMPOTENT_PRODUCER_DEBUG = "eos,msg,protocol"
READ_COMMITTED, READ_UNCOMMITTED = "read_committed", "read_uncommitted"  # isolation.level


@dataclass(frozen=True)
class WorkloadConfig:
    name: str = AT_LEAST_ONCE
    topic: str = "chaos"
    partitions: int = 3
    keys: int = 12
    producers: int = 2
    assign_consumers: int = 1
    group_consumers: int = 2
    sends_per_second: float = 100.0  # per producer
    max_in_flight: int = 200  # per producer: sends invoked but not yet reported
    max_records: int = 1_000_000  # per producer
    delivery_timeout_ms: int = 30_000
    reassign_every: float = 5.0  # seconds between an assign consumer's re-assignments (mean)
    final_read_timeout: float = 60.0
    unsafe: str | None = None  # None (safe settings), or one of UNSAFE_MODES

    def __post_init__(self) -> None:
        if self.name not in WORKLOADS:
            raise ValueError(f"unknown workload {self.name!r}; expected one of {', '.join(WORKLOADS)}")
        if self.unsafe is not None and self.unsafe not in UNSAFE_MODES:
            raise ValueError(f"unknown unsafe mode {self.unsafe!r}; expected one of {', '.join(UNSAFE_MODES)}")

    @property
    def acks(self) -> str:
        return "1" if self.unsafe == UNSAFE_ACKS1 else "all"


UNSAFE_ACKS1 = "acks1"
UNSAFE_UNCLEAN = "unclean"
UNSAFE_READ_COMMITTED_AT_HW = "read-committed-at-hw"
UNSAFE_MODES = {
    UNSAFE_ACKS1: "acks=1 producers (the leader acknowledges before replicating)",
    UNSAFE_UNCLEAN: "acks=all producers on a topic with min.insync.replicas=1 and unclean.leader.election.enable=true",
    UNSAFE_READ_COMMITTED_AT_HW: "reference brokers serve read_committed fetches up to the high watermark, "
                                 "without aborted transactions (REFKA_UNSAFE_TXN; transactional workload only)",
}
# Environment given to every reference broker container under an unsafe mode that is a broker fault
# (reference.broker.partition reads it once at import); never set otherwise.
UNSAFE_BROKER_ENVIRONMENT: dict[str, dict[str, str]] = {
    UNSAFE_READ_COMMITTED_AT_HW: {"REFKA_UNSAFE_TXN": "read-committed-at-hw"},
}


def topic_settings(config: WorkloadConfig, nodes: int) -> tuple[int, dict[str, str]]:
    """Replication factor and topic configs: RF 3 and min ISR 2, or 1 and 1 on a single node.

    ``unsafe="unclean"``: min ISR 1 and unclean leader election allowed, whatever the size."""
    replication_factor = min(3, nodes)
    if config.unsafe == UNSAFE_UNCLEAN:
        return replication_factor, {"min.insync.replicas": "1", "unclean.leader.election.enable": "true"}
    min_insync = 2 if replication_factor >= 3 else 1
    return replication_factor, {"min.insync.replicas": str(min_insync), "unclean.leader.election.enable": "false"}


def producer_config(config: WorkloadConfig, bootstrap: str, logger: logging.Logger = CLIENT_LOG,
                    client_id: str = "rdkafka") -> dict[str, Any]:
    # idempotence needs acks=all (librdkafka refuses the combination otherwise)
    idempotent = config.name == IDEMPOTENT and config.acks == "all"
    debug = {"debug": IDEMPOTENT_PRODUCER_DEBUG} if idempotent else {}
    return {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,  # in the brokers' request logs, and in every client.log line
        "acks": config.acks,
        "retries": 2_147_483_647,
        "enable.idempotence": idempotent,
        "max.in.flight.requests.per.connection": 5 if idempotent else 1,
        "delivery.timeout.ms": config.delivery_timeout_ms,
        "request.timeout.ms": min(10_000, config.delivery_timeout_ms),
        "linger.ms": 5,
        "retry.backoff.ms": 100,
        "reconnect.backoff.max.ms": 1000,
        "logger": logger,
        **debug,
    }


def consumer_config(bootstrap: str, group: str, logger: logging.Logger = CLIENT_LOG,
                    client_id: str = "rdkafka", isolation: str = READ_COMMITTED) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": isolation,
        "fetch.wait.max.ms": 100,
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 1000,
        "reconnect.backoff.max.ms": 1000,
        "logger": logger,
    }


TRANSACTION_TIMEOUT_MS = 60_000  # transaction.timeout.ms: librdkafka wants it >= delivery.timeout.ms
END_TRANSACTION_TIMEOUT = 30.0  # seconds commit_transaction / abort_transaction may block


def transactional_producer_config(config: WorkloadConfig, bootstrap: str, transactional_id: str,
                                  logger: logging.Logger = CLIENT_LOG, client_id: str = "rdkafka") -> dict[str, Any]:
    """An idempotent producer with a ``transactional.id`` (KIP-98; librdkafka needs acks=all)."""
    return {**producer_config(config, bootstrap, logger, client_id), "acks": "all", "enable.idempotence": True,
            "max.in.flight.requests.per.connection": 5, "transactional.id": transactional_id,
            "transaction.timeout.ms": max(TRANSACTION_TIMEOUT_MS, config.delivery_timeout_ms)}


def client_logger(process: str) -> logging.Logger:
    """The logger a process's librdkafka client writes to (a child of CLIENT_LOG, named after it)."""
    return CLIENT_LOG.getChild(process)


MAX_CLIENT_LOG_BYTES = 50_000_000


class ClientLog(logging.Handler):
    """Writes the records of :data:`CLIENT_LOG` and its children to ``path``, one line each::

        <s since the run began> <UTC wall clock> <process> <LEVEL> <facility> [<client>] [thrd:<thread>]: <text>

    for example ``35.001 2026-11-21T23:35:46.230Z producer-1 DEBUG MSGSET [producer-1#producer-14]
    [thrd:172.28.0.13:9092/3]: 172.28.0.13:9092/3: chaos [1]: MessageSet with 1 message(s) (MsgId
    876, BaseSeq 875) delivered`` (a batch of partition 1 acknowledged by node 3; librdkafka's MsgId
    counts per partition from 1).  While open, :data:`CLIENT_LOG` lets DEBUG through;
    :meth:`close` restores its level and detaches.  At most ``max_bytes`` are written: the line
    that would cross it is replaced by a note, and later lines are counted, not written.
    """

    def __init__(self, path: Path, clock: Clock, max_bytes: int = MAX_CLIENT_LOG_BYTES) -> None:
        super().__init__(logging.DEBUG)
        self.path = path
        self.clock = clock
        self.max_bytes = max_bytes
        self.bytes_written = 0
        self.lines_dropped = 0
        self._file: TextIO | None = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed in close)
        self._level_before = CLIENT_LOG.level
        CLIENT_LOG.addHandler(self)
        CLIENT_LOG.setLevel(logging.DEBUG)

    def line(self, record: logging.LogRecord) -> str:
        seconds = self.clock.now() / 1e9
        wall = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        millis = int(record.created * 1000) % 1000
        process = record.name[len(CLIENT_LOG.name) + 1:] or "-"
        text = record.getMessage().replace("\n", " ")
        return f"{seconds:.3f} {wall}.{millis:03d}Z {process} {record.levelname} {text}\n"

    def emit(self, record: logging.LogRecord) -> None:  # called with self.lock held
        if self._file is None:
            return
        try:
            line = self.line(record)
            if self.bytes_written + len(line) > self.max_bytes:
                if not self.lines_dropped:
                    self._file.write(f"{self.clock.now() / 1e9:.3f} client.log reached its limit of "
                                     f"{self.max_bytes} bytes: later lines are dropped\n")
                self.lines_dropped += 1
                return
            self._file.write(line)
            self._file.flush()  # as logging.StreamHandler does: a run killed mid-way keeps its last lines
            self.bytes_written += len(line)
        except Exception:  # a logging failure must not take a client down
            self.handleError(record)

    def close(self) -> None:
        CLIENT_LOG.removeHandler(self)
        CLIENT_LOG.setLevel(self._level_before)
        self.acquire()  # no emit half-way through while the file closes
        try:
            if self._file is not None:
                if self.lines_dropped:
                    self._file.write(f"{self.clock.now() / 1e9:.3f} {self.lines_dropped} lines dropped "
                                     "past the limit\n")
                self._file.close()
                self._file = None
        finally:
            self.release()
        super().close()

    def __enter__(self) -> ClientLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# librdkafka's epoch-bump lines (facility DRAIN, debug context ``eos``), as confluent-kafka hands
# them to the logger: "%s [%s] %s" % (facility, client name, text).  From rdkafka_idempotence.c:
#   rd_kafka_idemp_drain_epoch_bump*(): "Beginning partition drain in state %s for %s epoch bump for %d
#     partition(s) with in-flight requests: <reason>"  (older versions: no "in state %s")
#   rd_kafka_idemp_drain_done(), idempotent (not transactional) producer only:
#     "All partitions drained, bumped epoch to PID{Id:%ld,Epoch:%hd}"
# The per-partition "<topic> [<n>] beginning partition drain: <why>" lines (lower case) are not
# bumps: a partition waits for its in-flight requests before changing leader or retrying.
_EPOCH_BUMP_DRAIN = re.compile(r"^DRAIN \[[^\]]*\] .*Beginning partition drain\b.* epoch bump for -?\d+ "
                               r"partition\(s\) with in-flight requests: (?P<reason>.*)$")
_EPOCH_BUMPED = re.compile(r"^DRAIN \[[^\]]*\] .*All partitions drained, bumped epoch to "
                           r"PID\{Id:(?P<producer_id>-?\d+),Epoch:(?P<epoch>-?\d+)\}")


class EpochBumpRecorder(logging.Handler):
    """Records each epoch bump of one producer's librdkafka as ``info epoch-bump`` in the history.

    Attach it to that producer's logger (:func:`client_logger`); it remembers the reason of the last
    "Beginning partition drain ... epoch bump" line and records it with the bump that follows.
    :func:`recording_epoch_bumps` attaches and detaches it.
    """

    def __init__(self, history: HistoryWriter, process: str) -> None:
        super().__init__(logging.DEBUG)
        self.history = history
        self.process = process
        self.pending_reason: str | None = None

    def emit(self, record: logging.LogRecord) -> None:  # called with self.lock held
        try:
            text = record.getMessage()
            if not text.startswith("DRAIN "):  # cheap: most lines are PRODUCE/MSGSET/SEND/RECV
                return
            if (drain := _EPOCH_BUMP_DRAIN.match(text)) is not None:
                self.pending_reason = drain["reason"]
            elif (bumped := _EPOCH_BUMPED.match(text)) is not None:
                self.history.record(self.process, INFO, "epoch-bump", {
                    "producer_id": int(bumped["producer_id"]), "epoch": int(bumped["epoch"]),
                    "reason": self.pending_reason})
                self.pending_reason = None
        except Exception:  # a logging failure must not take a client down
            self.handleError(record)


@contextmanager
def recording_epoch_bumps(history: HistoryWriter, process: str) -> Iterator[EpochBumpRecorder]:
    """While open, ``process``'s epoch bumps are recorded in ``history``, whether or not
    :class:`ClientLog` is open: the producer's logger lets DEBUG through to the recorder (and on to
    :data:`CLIENT_LOG`, which without a ClientLog has no handler and drops it)."""
    logger = client_logger(process)
    recorder = EpochBumpRecorder(history, process)
    level_before = logger.level
    logger.addHandler(recorder)
    logger.setLevel(logging.DEBUG)
    try:
        yield recorder
    finally:
        logger.removeHandler(recorder)
        logger.setLevel(level_before)
        recorder.close()


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "replace")


def _records(messages: list[Any]) -> list[dict[str, Any]]:
    return [{"topic": m.topic(), "partition": m.partition(), "offset": m.offset(),
             "key": _text(m.key()), "value": _text(m.value())}
            for m in messages if m.error() is None]


class Counters:
    """Live totals for the progress display (approximate: read without a lock)."""

    def __init__(self) -> None:
        self.sent = 0
        self.acknowledged = 0
        self.maybe = 0
        self.read = 0


class _Process(threading.Thread):
    """One client of the workload on a thread of its own; what it does is recorded in ``history``."""

    def __init__(self, name: str, config: WorkloadConfig, bootstrap: str, history: HistoryWriter,
                 counters: Counters) -> None:
        super().__init__(name=f"chaos-{name}", daemon=True)
        self.process = name
        self.config = config
        self.bootstrap = bootstrap
        self.history = history
        self.counters = counters
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self.isolation: str | None = None  # recorded in each poll (transactional workload)

    def run(self) -> None:
        try:
            self.work()
        except BaseException as error:  # reported by Workload.stop
            self.error = error

    def work(self) -> None:
        raise NotImplementedError

    def poll_and_record(self, consumer: Any) -> list[dict[str, Any]] | None:
        """One recorded poll: invoke, consume, then ok with the records read (None on a client
        error, recorded as info: nothing is known to have been read)."""
        from confluent_kafka import KafkaException

        self.history.invoke(self.process, "poll")
        try:
            messages = consumer.consume(num_messages=500, timeout=0.5)
        except KafkaException as error:
            self.history.record(self.process, INFO, "poll", {"error": str(error)})
            return None
        records = _records(messages)
        value: dict[str, Any] = {"records": records}
        if self.isolation is not None:
            value["isolation"] = self.isolation
        self.history.record(self.process, OK, "poll", value)
        self.counters.read += len(records)
        return records


class Producer(_Process):
    def __init__(self, name: str, config: WorkloadConfig, bootstrap: str, history: HistoryWriter,
                 counters: Counters, rng: random.Random) -> None:
        super().__init__(name, config, bootstrap, history, counters)
        self.rng = rng
        self.in_flight: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def _delivered(self, error: Any, message: Any) -> None:
        value = _text(message.value()) or ""
        with self._lock:
            sent = self.in_flight.pop(value, None)
        if sent is None:
            return
        if error is None:
            self.history.record(self.process, OK, "send",
                                {**sent, "partition": message.partition(), "offset": message.offset()})
            self.counters.acknowledged += 1
        else:
            self.history.record(self.process, INFO, "send", {**sent, "error": str(error.name())})
            self.counters.maybe += 1

    def work(self) -> None:
        from confluent_kafka import KafkaException
        from confluent_kafka import Producer as KafkaProducer

        with recording_epoch_bumps(self.history, self.process):
            producer = KafkaProducer(producer_config(self.config, self.bootstrap, client_logger(self.process),
                                                     client_id=self.process))
            self._send_until_stopped(producer, KafkaException)

    def _send_until_stopped(self, producer: Any, kafka_exception: type[Exception]) -> None:
        interval = 1.0 / self.config.sends_per_second
        next_send = time.monotonic()
        count = 0
        while not self.stopping.is_set() and count < self.config.max_records:
            producer.poll(max(0.0, min(0.05, next_send - time.monotonic())))
            if time.monotonic() < next_send or len(self.in_flight) >= self.config.max_in_flight:
                continue
            next_send += interval
            sent = {"topic": self.config.topic, "key": f"k{self.rng.randrange(self.config.keys)}",
                    "value": f"{self.process}/{count}"}
            count += 1
            with self._lock:
                self.in_flight[sent["value"]] = sent
            self.history.invoke(self.process, "send", sent)
            self.counters.sent += 1
            try:
                producer.produce(sent["topic"], key=sent["key"], value=sent["value"], on_delivery=self._delivered)
            except (BufferError, kafka_exception) as error:  # never left the client: certainly not written
                with self._lock:
                    self.in_flight.pop(sent["value"], None)
                self.history.record(self.process, FAIL, "send", {**sent, "error": str(error)})
        producer.flush(self.config.delivery_timeout_ms / 1000 + 5)
        with self._lock:
            leftovers, self.in_flight = list(self.in_flight.values()), {}
        for sent in leftovers:
            self.history.record(self.process, INFO, "send", {**sent, "error": "no delivery report before the end"})


def _partition_list(partitions: list[Any]) -> list[dict[str, Any]]:
    return [{"topic": p.topic, "partition": p.partition} for p in partitions]


class AssignConsumer(_Process):
    """assign + seek: re-assigns every partition now and then, from the beginning or where it was."""

    def __init__(self, name: str, config: WorkloadConfig, bootstrap: str, history: HistoryWriter,
                 counters: Counters, rng: random.Random, isolation: str | None = None) -> None:
        super().__init__(name, config, bootstrap, history, counters)
        self.rng = rng
        self.isolation = isolation

    def work(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        consumer = Consumer(consumer_config(self.bootstrap, f"chaos-assign-{self.process}",
                                            client_logger(self.process), client_id=self.process,
                                            isolation=self.isolation or READ_COMMITTED))
        positions: dict[int, int] = {}
        try:
            while not self.stopping.is_set():
                seek: dict[str, Any] = {}
                assignment = []
                from_beginning = not positions or self.rng.random() < 0.3
                for partition in range(self.config.partitions):
                    offset = OFFSET_BEGINNING if from_beginning or partition not in positions else positions[partition]
                    seek[str(partition)] = "beginning" if offset == OFFSET_BEGINNING else offset
                    assignment.append(TopicPartition(self.config.topic, partition, offset))
                value = {"topic": self.config.topic, "partitions": list(range(self.config.partitions)), "seek": seek}
                self.history.invoke(self.process, "assign", value)
                consumer.assign(assignment)
                self.history.record(self.process, OK, "assign", value)
                until = time.monotonic() + self.rng.expovariate(1 / self.config.reassign_every)
                while not self.stopping.is_set() and time.monotonic() < until:
                    records = self.poll_and_record(consumer)
                    for record in records or ():
                        positions[record["partition"]] = record["offset"] + 1
        finally:
            consumer.close()


class GroupConsumer(_Process):
    """subscribe, then poll / record / commit synchronously (commit-after-process)."""

    def __init__(self, name: str, config: WorkloadConfig, bootstrap: str, history: HistoryWriter,
                 counters: Counters, group: str) -> None:
        super().__init__(name, config, bootstrap, history, counters)
        self.group = group

    def _rebalance(self, change: str) -> Callable[[Any, list[Any]], None]:
        def note(_consumer: Any, partitions: list[Any]) -> None:
            self.history.record(self.process, INFO, "rebalance", {change: _partition_list(partitions)})
        return note

    def work(self) -> None:
        from confluent_kafka import Consumer, KafkaException

        consumer = Consumer(consumer_config(self.bootstrap, self.group, client_logger(self.process),
                                            client_id=self.process))
        try:
            value = {"topic": self.config.topic}
            self.history.invoke(self.process, "subscribe", value)
            consumer.subscribe([self.config.topic], on_assign=self._rebalance("assigned"),
                               on_revoke=self._rebalance("revoked"), on_lost=self._rebalance("revoked"))
            self.history.record(self.process, OK, "subscribe", value)
            while not self.stopping.is_set():
                if self.poll_and_record(consumer):
                    self._commit(consumer, KafkaException)
        finally:
            consumer.close()

    def _commit(self, consumer: Any, kafka_exception: type[Exception]) -> None:
        self.history.invoke(self.process, "commit")
        try:
            committed = consumer.commit(asynchronous=False)
        except kafka_exception as error:
            self.history.record(self.process, INFO, "commit", {"error": str(error)})
            return
        self.history.record(self.process, OK, "commit", {"offsets": [
            {"topic": p.topic, "partition": p.partition, "offset": p.offset} for p in committed or []]})


# -- the transactional workload (issue #11) -------------------------------------------------------


class _TransactionOutcome(Exception):
    """Raised inside a transaction attempt to end it with ``outcome`` (``aborted`` or ``unknown``)."""

    def __init__(self, outcome: str, error: str) -> None:
        super().__init__(error)
        self.outcome = outcome
        self.error = error


class _Transactor(_Process):
    """A transactional producer's life: init (fencing any zombie of its ``transactional.id``), then
    transactions one at a time, each recorded as ``txn`` (invoke with its records; ``ok`` with
    ``outcome`` committed or aborted, ``info`` with outcome unknown) around an ``end-txn`` (the
    decision, invoked just before ``commit_transaction``/``abort_transaction``).

    confluent-kafka's error classes decide the outcome: a retriable error retries the same call; an
    abortable one (``txn_requires_abort``) aborts, and an abort that completes makes the outcome
    ``aborted``; anything else (fatal, fenced, a timeout that does not clear) makes it ``unknown``
    and the producer is replaced: the new one's InitProducerId fences the old epoch and completes or
    aborts what it left (KIP-98), so nothing it did may still change."""

    def __init__(self, name: str, config: WorkloadConfig, bootstrap: str, history: HistoryWriter,
                 counters: Counters, rng: random.Random, transactional_id: str, commit_ratio: float) -> None:
        super().__init__(name, config, bootstrap, history, counters)
        self.rng = rng
        self.transactional_id = transactional_id
        self.commit_ratio = commit_ratio
        self.producer: Any = None
        self.transactions = 0
        self.sends = 0
        self.delivered: dict[str, dict[str, Any]] = {}

    def _delivered(self, error: Any, message: Any) -> None:
        value = _text(message.value()) or ""
        self.delivered[value] = ({"error": str(error.name())} if error is not None else
                                 {"partition": message.partition(), "offset": message.offset()})

    def _producer(self) -> Any:
        """The current producer, or a new one once InitProducerId succeeded (None while it cannot)."""
        from confluent_kafka import KafkaException
        from confluent_kafka import Producer as KafkaProducer

        if self.producer is None:
            producer = KafkaProducer(transactional_producer_config(
                self.config, self.bootstrap, self.transactional_id, client_logger(self.process), self.process))
            try:
                producer.init_transactions(END_TRANSACTION_TIMEOUT)
            except KafkaException:
                return None
            self.producer = producer
        return self.producer

    def _call(self, operation: Callable[[], object], what: str) -> None:
        """One transactional call with confluent-kafka's error classes (retriable: again, up to 3 times)."""
        from confluent_kafka import KafkaException

        for attempt in range(3):
            try:
                operation()
                return
            except KafkaException as raised:
                error = raised.args[0]
                if error.retriable() and attempt < 2:
                    continue
                if error.txn_requires_abort():
                    raise _TransactionOutcome("abort", f"{what}: {error.name()}") from raised
                raise _TransactionOutcome("unknown", f"{what}: {error.name()}") from raised

    def transaction(self, records: list[dict[str, Any]], extra: dict[str, Any],
                    in_transaction: Callable[[Any], None] | None = None) -> str:
        """Write ``records`` in one transaction (committed at random); returns the outcome."""
        producer = self.producer
        txn = f"{self.process}/t{self.transactions}"
        self.transactions += 1
        self.history.invoke(self.process, "txn", {"txn": txn, "records": records, **extra})
        commit = self.rng.random() < self.commit_ratio
        outcome, error = "unknown", None
        try:
            self._call(producer.begin_transaction, "begin")
            for record in records:
                self.counters.sent += 1
                self._call(lambda r=record: producer.produce(r["topic"], key=r["key"], value=r["value"],  # type: ignore[misc]
                                                             partition=r["partition"], on_delivery=self._delivered),
                           "produce")
            if in_transaction is not None:
                in_transaction(producer)
            # every record delivered (in the log) before the decision: an aborted transaction's
            # records are then really there for read_uncommitted readers to see, and to hide
            producer.flush(END_TRANSACTION_TIMEOUT)
            self.history.invoke(self.process, "end-txn", {"txn": txn, "commit": commit})
            if commit:
                self._call(lambda: producer.commit_transaction(END_TRANSACTION_TIMEOUT), "commit")
            else:
                self._call(lambda: producer.abort_transaction(END_TRANSACTION_TIMEOUT), "abort")
            outcome = "committed" if commit else "aborted"
        except _TransactionOutcome as ended:
            error = ended.error
            outcome = self._abort_after(ended)
        except BufferError as full:
            error = f"produce: {full}"
            outcome = self._abort_after(_TransactionOutcome("abort", error))
        done = [{**record, **self.delivered.pop(record["value"], {})} for record in records]
        value = {"txn": txn, "outcome": outcome, "records": done, **extra}
        if error is not None:
            value["error"] = error
        self.history.record(self.process, INFO if outcome == "unknown" else OK, "txn", value)
        if outcome == "committed":
            self.counters.acknowledged += len(records)
        elif outcome == "unknown":
            self.counters.maybe += len(records)
        return outcome

    def _abort_after(self, ended: _TransactionOutcome) -> str:
        if ended.outcome == "abort":
            try:
                self._call(lambda: self.producer.abort_transaction(END_TRANSACTION_TIMEOUT), "abort")
                return "aborted"
            except _TransactionOutcome:
                pass
        self.producer = None  # replaced: the next InitProducerId fences this one
        return "unknown"

    def next_value(self) -> str:
        value = f"{self.process}/{self.sends}"
        self.sends += 1
        return value


class TransactionalProducer(_Transactor):
    """Transactions of 1-5 records over random partitions, committed (80 %) or aborted at random."""

    def work(self) -> None:
        interval = 1.0 / self.config.sends_per_second
        while not self.stopping.is_set() and self.sends < self.config.max_records:
            if self._producer() is None:
                self.stopping.wait(0.5)
                continue
            records = [{"topic": self.config.topic, "key": f"k{self.rng.randrange(self.config.keys)}",
                        "value": self.next_value(), "partition": self.rng.randrange(self.config.partitions)}
                       for _ in range(self.rng.randint(1, 5))]
            self.transaction(records, {})
            self.stopping.wait(interval * len(records))
        if self.producer is not None:
            self.producer.flush(5)


class TransformWorker(_Transactor):
    """Consume-transform-produce: reads (read_committed, in a group) what the producers wrote, and
    writes one copy of each input in a transaction that also commits the consumer's offsets
    (``send_offsets_to_transaction``, AddOffsetsToTxn + TxnOffsetCommit).  Its own outputs (values
    starting with its name) are not inputs.  After an abort it seeks back to the group's committed
    offsets (recorded as an ``assign`` with those seeks), as an exactly-once application must."""

    def work(self) -> None:
        from confluent_kafka import Consumer

        self.isolation = READ_COMMITTED
        consumer = Consumer({**consumer_config(self.bootstrap, f"chaos-transform-{self.transactional_id}",
                                               client_logger(self.process), client_id=self.process),
                             "enable.partition.eof": False})
        try:
            consumer.subscribe([self.config.topic], on_assign=self._rebalance("assigned"),
                               on_revoke=self._rebalance("revoked"), on_lost=self._rebalance("revoked"))
            while not self.stopping.is_set():
                if self._producer() is None:
                    self.stopping.wait(0.5)
                    continue
                records = self.poll_and_record(consumer)
                inputs = [r for r in records or () if not str(r["value"]).startswith("transform-")]
                if not inputs:
                    continue
                outputs = [{"topic": self.config.topic, "key": r["key"], "value": self.next_value(),
                            "partition": r["partition"]} for r in inputs]
                consumed = [{"partition": r["partition"], "offset": r["offset"], "value": r["value"]} for r in inputs]

                def commit_offsets(producer: Any) -> None:
                    positions = consumer.position(consumer.assignment())
                    self._call(lambda: producer.send_offsets_to_transaction(
                        positions, consumer.consumer_group_metadata(), END_TRANSACTION_TIMEOUT), "send-offsets")

                if self.transaction(outputs, {"consumed": consumed}, commit_offsets) != "committed":
                    self._rewind(consumer)
        finally:
            consumer.close()

    def _rebalance(self, change: str) -> Callable[[Any, list[Any]], None]:
        def note(_consumer: Any, partitions: list[Any]) -> None:
            self.history.record(self.process, INFO, "rebalance", {change: _partition_list(partitions)})
        return note

    def _rewind(self, consumer: Any) -> None:
        from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

        try:
            committed = consumer.committed(consumer.assignment(), timeout=10)
        except KafkaException:
            committed = [TopicPartition(p.topic, p.partition, OFFSET_BEGINNING) for p in consumer.assignment()]
        seek = {str(p.partition): (p.offset if p.offset >= 0 else "beginning") for p in committed}
        value = {"topic": self.config.topic, "partitions": sorted(p.partition for p in committed), "seek": seek}
        self.history.invoke(self.process, "assign", value)
        for position in committed:
            offset = position.offset if position.offset >= 0 else OFFSET_BEGINNING
            try:
                consumer.seek(TopicPartition(position.topic, position.partition, offset))
            except KafkaException:
                pass  # not fetching yet: it starts from the committed offset anyway
        self.history.record(self.process, OK, "assign", value)


def final_read(config: WorkloadConfig, bootstrap: str, history: HistoryWriter, counters: Counters,
               process: str = "final-reader") -> dict[str, Any]:
    """A fresh consumer reads every partition from the beginning up to its high watermark."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

    deadline = time.monotonic() + config.final_read_timeout
    consumer = Consumer(consumer_config(bootstrap, f"chaos-{process}", client_logger(process), client_id=process))
    high_watermarks: dict[int, int] = {}
    positions: dict[int, int] = {}
    try:
        for partition in range(config.partitions):
            while partition not in high_watermarks and time.monotonic() < deadline:
                try:
                    _low, high = consumer.get_watermark_offsets(TopicPartition(config.topic, partition), timeout=5)
                    high_watermarks[partition] = high
                except KafkaException:
                    time.sleep(0.5)
        value = {"topic": config.topic, "partitions": list(range(config.partitions)),
                 "seek": {str(p): "beginning" for p in range(config.partitions)}}
        history.invoke(process, "assign", value)
        consumer.assign([TopicPartition(config.topic, p, OFFSET_BEGINNING) for p in range(config.partitions)])
        history.record(process, OK, "assign", value)

        def done() -> bool:
            return all(positions.get(p, 0) >= high_watermarks.get(p, 0) for p in range(config.partitions))

        while not done() and time.monotonic() < deadline:
            history.invoke(process, "poll")
            try:
                messages = consumer.consume(num_messages=1000, timeout=0.5)
            except KafkaException as error:
                history.record(process, INFO, "poll", {"error": str(error)})
                continue
            records = _records(messages)
            history.record(process, OK, "poll", {"records": records, "isolation": READ_COMMITTED})
            counters.read += len(records)
            for record in records:
                positions[record["partition"]] = record["offset"] + 1
            # the consumer's position also moves past control batches (transaction markers), which
            # are never returned as records: a read_committed log may end with one
            try:
                for position in consumer.position(consumer.assignment()):
                    if position.offset >= 0:
                        positions[position.partition] = max(positions.get(position.partition, 0), position.offset)
            except KafkaException:
                pass
    finally:
        consumer.close()
    report = {"topic": config.topic, "high_watermarks": {str(p): o for p, o in high_watermarks.items()},
              "positions": {str(p): o for p, o in positions.items()},
              "complete": len(high_watermarks) == config.partitions and done()}
    history.invoke(process, "final-read")
    history.record(process, OK, "final-read", report)
    return report


class Workload:
    """Starts the producers and consumers, stops them, and runs the final read."""

    def __init__(self, config: WorkloadConfig, bootstrap: str, history: HistoryWriter, seed: int) -> None:
        self.config = config
        self.bootstrap = bootstrap
        self.history = history
        self.counters = Counters()
        rng = random.Random(seed)
        if config.name == TRANSACTIONAL:
            self._transactional(rng, seed)
            return
        self.producers: list[_Process] = [Producer(f"producer-{i}", config, bootstrap, history, self.counters,
                                   random.Random(rng.random())) for i in range(config.producers)]
        group = f"chaos-group-{seed}"
        self.consumers: list[_Process] = [
            *(AssignConsumer(f"assign-consumer-{i}", config, bootstrap, history, self.counters,
                             random.Random(rng.random())) for i in range(config.assign_consumers)),
            *(GroupConsumer(f"group-consumer-{i}", config, bootstrap, history, self.counters, group)
              for i in range(config.group_consumers)),
        ]

    def _transactional(self, rng: random.Random, seed: int) -> None:
        """Transactional producers and one consume-transform-produce worker; read_committed and
        read_uncommitted assign readers (the final read is read_committed)."""
        config, bootstrap, history, counters = self.config, self.bootstrap, self.history, self.counters
        self.producers = [
            *(TransactionalProducer(f"producer-{i}", config, bootstrap, history, counters, random.Random(rng.random()),
                                    f"chaos-txn-{seed}-{i}", commit_ratio=0.8) for i in range(config.producers)),
            TransformWorker("transform-0", config, bootstrap, history, counters, random.Random(rng.random()),
                            f"chaos-transform-{seed}", commit_ratio=0.9),
        ]
        self.consumers = [
            AssignConsumer("committed-reader-0", config, bootstrap, history, counters, random.Random(rng.random()),
                           isolation=READ_COMMITTED),
            AssignConsumer("uncommitted-reader-0", config, bootstrap, history, counters, random.Random(rng.random()),
                           isolation=READ_UNCOMMITTED),
        ]

    def start(self) -> None:
        for process in [*self.producers, *self.consumers]:
            process.start()

    def stop_producers(self) -> None:
        """Stop sending; waits for outstanding delivery reports (bounded by ``delivery.timeout.ms``)."""
        for producer in self.producers:
            producer.stopping.set()
        for producer in self.producers:
            producer.join(self.config.delivery_timeout_ms / 1000 + 15)

    def stop_consumers(self) -> None:
        for consumer in self.consumers:
            consumer.stopping.set()
        for consumer in self.consumers:
            consumer.join(30)

    def errors(self) -> list[str]:
        return [f"{p.process}: {p.error!r}" for p in [*self.producers, *self.consumers] if p.error is not None]

    def final_read(self) -> dict[str, Any]:
        return final_read(self.config, self.bootstrap, self.history, self.counters)
