"""The history of a chaos run: what every client asked for, what it was told, and which faults ran.

Theory of operation
-------------------
A chaos run is judged only from its history, never from the brokers' own logs, the way Jepsen
judges a database: the clients are the witnesses.  Every client operation is written twice, as an
``invoke`` event when it starts and as a completion when it ends, one JSON object a line in
``history.jsonl``::

    {"process": "producer-0", "type": "invoke", "f": "send", "value": {...}, "time": 1234, "wall": 1700000000000}

* ``process`` names the client (one thread, one Kafka client object); a process runs one operation
  at a time, except producers, whose sends overlap (one in flight per record).
* ``type`` is ``invoke``, then one of ``ok`` (it happened), ``fail`` (it certainly did not happen)
  or ``info`` (we cannot know: a send that timed out may or may not have been written; Kafka's
  ``delivery.timeout.ms`` expiry and a broken connection both leave it "maybe written").
* ``f`` is the operation: ``send``, ``poll``, ``assign``, ``subscribe``, ``commit``,
  ``final-read``; or a fact a client observed about itself, recorded once as ``info`` with no
  invoke: ``rebalance`` (a group consumer's assignment changed) or ``epoch-bump`` (an idempotent
  producer's epoch changed).
* ``time`` is nanoseconds on the monotonic clock since the run began (faults use the same origin,
  so the plot can shade fault windows); ``wall`` is milliseconds since the epoch, for people.

Values, by ``f`` (every record is identified by its value, which is unique per key):

* send: ``{"topic", "key", "value"}``; on ``ok`` also ``"partition"`` and ``"offset"`` (the base
  offset Kafka acknowledged); on ``info``/``fail`` an ``"error"`` string.
* poll: invoke ``null``; ok ``{"records": [{"topic", "partition", "offset", "key", "value"}, ...]}``.
* assign: ``{"topic", "partitions": [...], "seek": {partition: offset or "beginning"}}``.
* subscribe: ``{"topic"}``; rebalance (type ``info``, no invoke): ``{"assigned": [...], "revoked": [...]}``.
* epoch-bump (type ``info``, no invoke; idempotent producers only): ``{"producer_id", "epoch",
  "reason"}`` -- librdkafka bumped this producer's own epoch (KIP-360: after local message timeouts,
  an unknown producer id or a sequence error), so every partition's sequence restarts at 0.  Read
  from librdkafka's log line ``DRAIN ... All partitions drained, bumped epoch to
  PID{Id:<producer_id>,Epoch:<epoch>}``; ``reason`` is the text after ``with in-flight requests:``
  of the ``Beginning partition drain ... epoch bump ...`` line before it (``null`` if none was seen).
  It lands in the history in the order the producer's thread saw it, among that producer's own
  invokes and delivery reports (librdkafka serves its log and its delivery reports on one queue).
* final-read: ``{"topic", "high_watermarks": {partition: offset}, "positions": {...}, "complete": bool}``
  -- the last, fresh consumer's report of how far it read.

``faults.jsonl`` holds one object per fault: ``{"nemesis", "start", "end", "description"}``, with
``start``/``end`` on the same clock as ``time`` (``end`` is ``null`` if it was never healed).

Invariants kept here: events are appended in the order they happen (one lock, one clock), so a
file is a linearisation of what the clients observed; JSON keys in ``value`` are strings, so
partition numbers used as keys (``seek``, ``high_watermarks``) are strings in the file.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

HISTORY_FILE = "history.jsonl"
FAULTS_FILE = "faults.jsonl"

INVOKE, OK, FAIL, INFO = "invoke", "ok", "fail", "info"
EVENT_TYPES = (INVOKE, OK, FAIL, INFO)


@dataclass(frozen=True)
class Event:
    """One line of ``history.jsonl``."""

    process: str
    type: str
    f: str
    value: Any
    time: int  # ns since the run's origin, monotonic
    wall: int  # ms since the epoch

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        if data.get("type") not in EVENT_TYPES:
            raise ValueError(f"unknown event type {data.get('type')!r}")
        return cls(str(data["process"]), data["type"], str(data["f"]), data.get("value"),
                   int(data["time"]), int(data.get("wall", 0)))


@dataclass(frozen=True)
class Fault:
    """One line of ``faults.jsonl``: a nemesis's fault, from start to heal."""

    nemesis: str
    start: int  # ns, same clock as Event.time
    end: int | None
    description: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        end = data.get("end")
        return cls(str(data["nemesis"]), int(data["start"]), None if end is None else int(end),
                   dict(data.get("description") or {}))


class Clock:
    """The run's clock: monotonic nanoseconds since construction, plus wall-clock milliseconds."""

    def __init__(self) -> None:
        self._origin = time.monotonic_ns()

    def now(self) -> int:
        return time.monotonic_ns() - self._origin

    @staticmethod
    def wall() -> int:
        return time.time_ns() // 1_000_000


class HistoryWriter:
    """Appends events to ``history.jsonl`` (and keeps them in memory for the checker).

    Thread-safe: every client thread shares one writer, and the lock makes the file order the
    order in which events were stamped.
    """

    def __init__(self, path: Path | None, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.events: list[Event] = []
        self._lock = threading.Lock()
        self._file: TextIO | None = open(path, "w", encoding="utf-8") if path is not None else None  # noqa: SIM115

    def record(self, process: str, type: str, f: str, value: Any = None) -> Event:
        with self._lock:
            event = Event(process, type, f, value, self.clock.now(), self.clock.wall())
            self.events.append(event)
            if self._file is not None:
                self._file.write(event.to_json() + "\n")
            return event

    def invoke(self, process: str, f: str, value: Any = None) -> Event:
        return self.record(process, INVOKE, f, value)

    def flush(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class FaultLog:
    """Appends faults to ``faults.jsonl`` when they are healed (or abandoned at the end)."""

    def __init__(self, path: Path | None, clock: Clock) -> None:
        self.clock = clock
        self.path = path
        self.faults: list[Fault] = []
        self._lock = threading.Lock()

    def begin(self, nemesis: str, description: dict[str, Any]) -> int:
        with self._lock:
            self.faults.append(Fault(nemesis, self.clock.now(), None, description))
            return len(self.faults) - 1

    def describe(self, index: int, description: dict[str, Any]) -> None:
        with self._lock:
            fault = self.faults[index]
            self.faults[index] = Fault(fault.nemesis, fault.start, fault.end, description)

    def end(self, index: int) -> None:
        with self._lock:
            fault = self.faults[index]
            self.faults[index] = Fault(fault.nemesis, fault.start, self.clock.now(), fault.description)

    def write(self) -> None:
        if self.path is None:
            return
        with self._lock, open(self.path, "w", encoding="utf-8") as out:
            for fault in self.faults:
                out.write(fault.to_json() + "\n")


def _json_lines(path: Path) -> Iterator[dict[str, Any]]:
    """Parsed lines; a torn *last* line (a run killed mid-write) is dropped, any other bad line raises."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for number, line in enumerate(lines, 1):
        try:
            yield json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):
                return
            raise ValueError(f"{path}:{number}: not JSON ({error.msg})") from error


def read_history(path: Path) -> list[Event]:
    return [Event.from_dict(data) for data in _json_lines(path)]


def read_faults(path: Path) -> list[Fault]:
    if not path.exists():
        return []
    return [Fault.from_dict(data) for data in _json_lines(path)]


def write_history(path: Path, events: Iterable[Event]) -> None:
    with open(path, "w", encoding="utf-8") as out:
        for event in events:
            out.write(event.to_json() + "\n")
