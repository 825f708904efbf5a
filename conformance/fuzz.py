"""A structure-aware protocol fuzzer: mutated real requests against any Kafka broker.

    refka fuzz --bootstrap-server HOST:PORT [--count 10000] [--seed 1] [--pid PID]

Theory of operation
-------------------
Random bytes die in the first two fields of a frame.  This fuzzer starts from well-formed requests
instead: it asks the broker which APIs and versions it serves (ApiVersions) and builds one request
of every advertised version of every API with refka's own codec (``reference.protocol``), filling
each field with a plausible value (the fuzzer's topic and group, partition 0, a real record batch
in Produce).  Each mutant is one of those seeds changed by one operator:

================  ==================================================================================
operator          what it changes
================  ==================================================================================
``extreme``       one integer field of the decoded request set to an extreme of its width (max,
                  min, -1, 0): partition counts, timeouts, epochs, replication factors, ...
``blow_up``       one array repeated up to 2,000 times, or one string made up to 30,000 characters
``version``       the body of one version sent under the header of another (in range or not)
``flip``          one to eight random bits flipped
``truncate``      the frame cut short at a random byte
``insert``        one to sixteen random bytes inserted at a random position
``int32``         four bytes at a random position (a length, a count, an int32 field) overwritten
                  with 0x7fffffff, 0xffffffff, 0x80000000 or a random value
``outer_length``  the right payload behind a wrong size prefix (short, long, 0, negative, huge)
================  ==================================================================================

After each mutant the fuzzer sends a *sentinel* (ApiVersions v0) on the same connection and reads
until the sentinel's answer arrives or the connection closes.  A broker answers a connection's
requests in order, so the sentinel's answer means the mutant was processed (answered, or silently
dropped as ``acks=0`` is).  When neither comes within ``answer_timeout_s`` (the mutant's outer
length promised more bytes, or it asked for a long poll) the fuzzer closes the connection itself
and counts a *timeout*.  Every ``check_every`` mutants it checks, on a fresh connection, that the
broker still answers; samples the broker process's resident memory and open descriptors from
``/proc`` (the process found by its listening port, or ``--pid``); produces one record with
``acks=all`` and remembers its offset; and deletes the topics mutants created, so that thousands
of created topics do not turn a fuzz run into a disk-filling run.  At the end every acknowledged
record must be readable at its offset.

A run passes when every health check was answered, the memory and descriptor peaks stayed under
the bounds given, and no acknowledged record was lost.  The mutants around a failure are written
to ``--findings`` (one hex line per frame) so that each finding can become a regression test.
Run against Apache Kafka the same way: an input that Kafka accepts is a legitimate input.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import struct
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reference.protocol.apis import API_BY_KEY, Api
from reference.protocol.frames import decode_response, encode_request
from reference.protocol.primitives import ZERO_UUID
from reference.protocol.schema import Array, Data, Field, Primitive, Struct
from reference.records.batch import SimpleRecord, build_batch, iter_record_batches

API_VERSIONS = API_BY_KEY[18]
PRODUCE = API_BY_KEY[0]
FETCH = API_BY_KEY[1]
METADATA = API_BY_KEY[3]
CREATE_TOPICS = API_BY_KEY[19]
DELETE_TOPICS = API_BY_KEY[20]

SENTINEL_CORRELATION_ID = 0x5E17
SEED_TIMESTAMP_MS = 1_700_000_000_000  # fixed, so that a seed always gives the same mutants
MAX_FRAME_BYTES = 1 << 20  # mutants are kept below this, so the fuzzer never tests its own memory
INT_LIMITS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64, "uint16": 16, "uint32": 32}
OPERATORS = ("extreme", "blow_up", "version", "flip", "truncate", "insert", "int32", "outer_length")


# -- seeds: one well-formed request of every advertised version ------------------------------------


@dataclass(frozen=True)
class Seed:
    api: Api
    version: int
    body: Data


class SeedBuilder:
    """Plausible values for every field, by the field's Kafka name and type."""

    def __init__(self, topic: str, group: str, rng: random.Random) -> None:
        self.topic = topic
        self.group = group
        self.rng = rng
        self.batch = build_batch([SimpleRecord(value=b"fuzz", key=b"k", timestamp=SEED_TIMESTAMP_MS)])

    def struct(self, struct: Struct) -> Data:
        return Data(**{f.attribute: self.value(f) for f in struct.fields})

    def value(self, f: Field) -> Any:
        kind, name = f.type, f.attribute
        if isinstance(kind, Array):
            element = kind.element
            if isinstance(element, Struct):
                return [self.struct(element)]
            return [self.primitive(element, name)] if isinstance(element, Primitive) else []
        if isinstance(kind, Struct):
            return self.struct(kind)
        assert isinstance(kind, Primitive)
        return self.primitive(kind, name)

    def primitive(self, kind: Primitive, name: str) -> Any:
        type_name = kind.kafka_name
        if type_name == "records":
            return self.batch
        if type_name == "bool":
            return False
        if type_name == "uuid":
            return ZERO_UUID
        if type_name == "bytes":
            return b""
        if type_name == "float64":
            return 0.0
        if type_name == "string":
            if "group" in name:
                return self.group
            if "topic" in name or name in ("name", "names", "resource_name"):
                return self.topic
            return "" if "member" in name else "fuzz"
        if "timeout" in name or "wait" in name:
            return 0
        if "epoch" in name or "producer_id" in name or "sequence" in name or name == "replica_id":
            return -1
        if name in ("acks", "replication_factor"):
            return 1
        if name in ("num_partitions", "count", "min_bytes"):
            return 1
        if "max_bytes" in name:
            return 1 << 20
        if "offset" in name or "partition" in name or "index" in name:
            return 0
        return self.rng.randint(0, 3)


def build_seeds(versions: dict[int, tuple[int, int]], topic: str, group: str, rng: random.Random) -> list[Seed]:
    builder = SeedBuilder(topic, group, rng)
    seeds = []
    for key, (low, high) in sorted(versions.items()):
        api = API_BY_KEY.get(key)
        if api is None:
            continue
        for version in range(low, high + 1):
            if version not in api.request.valid:
                continue
            body = builder.struct(api.request.body)
            try:
                encode_request(api, version, 1, "refka-fuzz", body)
            except (ValueError, TypeError, AttributeError, struct.error):
                continue  # a field combination the codec refuses to write; skip the version
            seeds.append(Seed(api, version, body))
    return seeds


# -- mutation operators ----------------------------------------------------------------------------


def _walk(value: Any, kind: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """(path, field type) of every field inside a request body, for the value-level operators."""
    if isinstance(kind, Struct):
        for f in kind.fields:
            child = getattr(value, f.attribute, None)
            yield (*path, f.attribute), f.type
            if child is not None:
                yield from _walk(child, f.type, (*path, f.attribute))
    elif isinstance(kind, Array) and isinstance(value, list) and value:
        yield from _walk(value[0], kind.element, (*path, 0))


def _get(root: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        root = root[step] if isinstance(step, int) else getattr(root, step)
    return root


def _set(root: Any, path: tuple[Any, ...], value: Any) -> None:
    parent = _get(root, path[:-1])
    if isinstance(path[-1], int):
        parent[path[-1]] = value
    else:
        setattr(parent, path[-1], value)


def _copy(value: Any) -> Any:
    if isinstance(value, Data):
        return Data(**{k: _copy(v) for k, v in vars(value).items()})
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


class Mutator:
    """Turns a seed into one mutant frame (size prefix included) with a fixed random stream."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def mutate(self, seed: Seed, operator: str, correlation_id: int) -> bytes:
        if operator in ("extreme", "blow_up"):
            body = _copy(seed.body)
            getattr(self, operator)(seed, body)
            frame = self._encode(seed.api, seed.version, seed.version, correlation_id, body)
            return frame if frame is not None else self._encode_seed(seed, correlation_id)
        frame = self._encode_seed(seed, correlation_id)
        if operator == "version":
            header_version = self.rng.choice([seed.version - 1, seed.version + 1, self.rng.randint(-2, 40)])
            return self._encode(seed.api, seed.version, header_version, correlation_id, seed.body) or frame
        if operator == "outer_length":
            payload = frame[4:]
            size = self.rng.choice([len(payload) - self.rng.randint(1, 8), len(payload) + self.rng.randint(1, 64),
                                    0, -1, -(1 << 31), (1 << 31) - 1, 100 * 1024 * 1024 + 1])
            return struct.pack(">i", size) + payload
        body = bytearray(frame[4:])
        getattr(self, operator)(body)
        del body[MAX_FRAME_BYTES:]
        return struct.pack(">i", len(body)) + bytes(body)

    def _encode_seed(self, seed: Seed, correlation_id: int) -> bytes:
        return encode_request(seed.api, seed.version, correlation_id, "refka-fuzz", seed.body)

    def _encode(self, api: Api, body_version: int, header_version: int, correlation_id: int, body: Data) -> bytes | None:
        try:
            frame = encode_request(api, body_version, correlation_id, "refka-fuzz", body)
        except (ValueError, TypeError, AttributeError, struct.error, OverflowError):
            return None
        if len(frame) > MAX_FRAME_BYTES:
            return None
        if header_version != body_version:  # the header's api_version is bytes 6-7 of the frame
            frame = frame[:6] + struct.pack(">h", max(-(1 << 15), min(header_version, (1 << 15) - 1))) + frame[8:]
        return frame

    # value-level operators
    def extreme(self, seed: Seed, body: Data) -> None:
        fields = [(path, kind) for path, kind in _walk(body, seed.api.request.body)
                  if isinstance(kind, Primitive) and kind.kafka_name in INT_LIMITS]
        if not fields:
            return
        path, kind = self.rng.choice(fields)
        bits = INT_LIMITS[kind.kafka_name]
        signed = not kind.kafka_name.startswith("uint")
        high = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
        low = -(1 << (bits - 1)) if signed else 0
        _set(body, path, self.rng.choice([high, low, -1 if signed else 0, 0, high - 1, 10_001]))

    def blow_up(self, seed: Seed, body: Data) -> None:
        fields = [(path, kind) for path, kind in _walk(body, seed.api.request.body)
                  if isinstance(kind, Array) or (isinstance(kind, Primitive) and kind.kafka_name == "string")]
        if not fields:
            return
        path, kind = self.rng.choice(fields)
        current = _get(body, path)
        if isinstance(kind, Array):
            if current:
                times = self.rng.choice([2, 10, 100, 2_000])
                _set(body, path, [_copy(current[0]) for _ in range(times)])
        else:
            _set(body, path, "x" * self.rng.choice([250, 256, 4_097, 30_000]))

    # byte-level operators
    def flip(self, payload: bytearray) -> None:
        for _ in range(self.rng.randint(1, 8)):
            position = self.rng.randrange(len(payload))
            payload[position] ^= 1 << self.rng.randrange(8)

    def truncate(self, payload: bytearray) -> None:
        del payload[self.rng.randrange(len(payload)):]

    def insert(self, payload: bytearray) -> None:
        position = self.rng.randrange(len(payload) + 1)
        payload[position:position] = self.rng.randbytes(self.rng.randint(1, 16))

    def int32(self, payload: bytearray) -> None:
        if len(payload) < 4:
            return
        position = self.rng.randrange(len(payload) - 3)
        value = self.rng.choice([0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, self.rng.getrandbits(32)])
        payload[position:position + 4] = struct.pack(">I", value)


def mutants(seeds: list[Seed], count: int, rng: random.Random) -> Iterator[tuple[Seed, str, bytes]]:
    """``count`` mutants (seed, operator, frame with its size prefix), the same for the same ``rng``
    state; correlation ids count from 0."""
    mutator = Mutator(rng)
    for number in range(count):
        seed = rng.choice(seeds)
        operator = rng.choice(OPERATORS)
        yield seed, operator, mutator.mutate(seed, operator, correlation_id=number & 0x7FFFFFFF)


# -- talking to the broker -------------------------------------------------------------------------


class Closed(Exception):
    """The broker closed the connection."""


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(min(size - len(chunks), 1 << 20))
        if not chunk:
            raise Closed
        chunks += chunk
    return bytes(chunks)


def read_frame(sock: socket.socket) -> bytes:
    (size,) = struct.unpack(">i", _read_exactly(sock, 4))
    return _read_exactly(sock, size)


def call(address: tuple[str, int], api: Api, version: int, body: Data, timeout: float = 30.0) -> Data:
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(encode_request(api, version, 1, "refka-fuzz", body))
        return decode_response(api, version, read_frame(sock))[1]


def api_versions(address: tuple[str, int]) -> dict[int, tuple[int, int]]:
    body = call(address, API_VERSIONS, 3, API_VERSIONS.request.make(
        client_software_name="refka-fuzz", client_software_version="1"))
    return {a.api_key: (a.min_version, a.max_version) for a in body.api_keys}


SENTINEL = encode_request(API_VERSIONS, 0, SENTINEL_CORRELATION_ID, "refka-fuzz", API_VERSIONS.request.make())


# -- the broker process, seen from /proc -----------------------------------------------------------


def pid_listening_on(port: int) -> int | None:
    """The pid of the local process listening on ``port`` (Linux), or None."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            columns = line.split()
            if columns[3] == "0A" and int(columns[1].rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                inodes.add(f"socket:[{columns[9]}]")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return int(pid)
        except OSError:
            continue
    return None


def process_usage(pid: int) -> tuple[int, int] | None:
    """(resident bytes, open descriptors) of ``pid``, or None when it cannot be read."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        descriptors = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024, descriptors
    return None


# -- the run -----------------------------------------------------------------------------------------


@dataclass
class FuzzReport:
    mutants: int = 0
    answered: int = 0  # the sentinel was answered: the broker processed the mutant and carried on
    closed: int = 0  # the broker closed the connection
    timed_out: int = 0  # neither within answer_timeout_s: the fuzzer closed the connection
    by_operator: Counter[str] = field(default_factory=Counter)
    health_checks: int = 0
    health_failures: list[str] = field(default_factory=list)
    peak_rss_bytes: int = 0
    peak_descriptors: int = 0
    acknowledged: int = 0
    unacknowledged: int = 0
    lost: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0
    seeds: int = 0

    @property
    def frames_per_second(self) -> float:
        return self.mutants / self.seconds if self.seconds else 0.0

    def passed(self, max_rss_bytes: int | None = None, max_descriptors: int | None = None) -> bool:
        # At least one write acknowledged: a durability check over nothing would prove nothing.
        return (not self.health_failures and not self.lost and self.acknowledged > 0
                and (max_rss_bytes is None or self.peak_rss_bytes <= max_rss_bytes)
                and (max_descriptors is None or self.peak_descriptors <= max_descriptors))

    def summary(self) -> str:
        operators = ", ".join(f"{name} {count}" for name, count in sorted(self.by_operator.items()))
        return (f"{self.mutants} mutants from {self.seeds} seeds in {self.seconds:.1f} s "
                f"({self.frames_per_second:.0f} frames/s): answered {self.answered}, closed {self.closed}, "
                f"timed out {self.timed_out}\n"
                f"operators: {operators}\n"
                f"health checks {self.health_checks}, failed {len(self.health_failures)}; "
                f"peak RSS {self.peak_rss_bytes / 2**20:.1f} MiB, peak descriptors {self.peak_descriptors}; "
                f"acknowledged records {self.acknowledged} (refused {self.unacknowledged}), lost {len(self.lost)}")


class Fuzzer:
    def __init__(self, host: str, port: int, seed: int = 1, *, pid: int | None = None,
                 answer_timeout_s: float = 1.0, check_every: int = 200, findings: Path | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.address = (host, port)
        self.rng = random.Random(seed)
        self.pid = pid if pid is not None else pid_listening_on(port)
        self.answer_timeout_s = answer_timeout_s
        self.check_every = check_every
        self.findings = findings
        self.log = log or (lambda line: None)
        self.topic = f"fuzz-{seed}"
        self.acked_topic = f"fuzz-acked-{seed}"
        self.group = f"fuzz-group-{seed}"
        self.report = FuzzReport()
        self._sock: socket.socket | None = None
        self._recent: deque[bytes] = deque(maxlen=50)
        self._acked: list[tuple[int, str]] = []  # (offset, value) in the acked topic's partition 0
        self._keep_topics: set[str] = set()

    # setup and checks
    def setup(self) -> list[Seed]:
        versions = api_versions(self.address)
        seeds = build_seeds(versions, self.topic, self.group, self.rng)
        self.report.seeds = len(seeds)
        for name in (self.topic, self.acked_topic):
            self._create_topic(name)
        self._keep_topics = {t for t in self._topic_names()} | {self.topic, self.acked_topic}
        return seeds

    def _create_topic(self, name: str) -> None:
        """One partition, replicated as widely as the cluster allows (up to 3), so that on a
        cluster the durability check covers replication too."""
        brokers = len(call(self.address, METADATA, 1, METADATA.request.make(topics=[])).brokers)
        topic = CREATE_TOPICS.request.struct("CreatableTopic").make(
            name=name, num_partitions=1, replication_factor=max(1, min(brokers, 3)))
        call(self.address, CREATE_TOPICS, 5, CREATE_TOPICS.request.make(topics=[topic], timeout_ms=30000))

    def _leader_of_acked_topic(self) -> tuple[str, int]:
        """The address of partition 0's leader (the node mutants go to, on one node); falls back to
        that node while no leader is known."""
        body = call(self.address, METADATA, 1, METADATA.request.make(topics=[
            METADATA.request.struct("MetadataRequestTopic").make(name=self.acked_topic)]))
        brokers = {broker.node_id: (broker.host, broker.port) for broker in body.brokers}
        for topic in body.topics:
            for partition in topic.partitions:
                if partition.partition_index == 0 and partition.leader_id in brokers:
                    return brokers[partition.leader_id]
        return self.address

    def _topic_names(self) -> list[str]:
        body = call(self.address, METADATA, 1, METADATA.request.make(topics=None))
        return [t.name for t in body.topics]

    def _drop_created_topics(self) -> None:
        # internal topics (``__consumer_offsets``, ...) stay: the broker creates them on demand,
        # and deleting them would test the fuzzer's housekeeping rather than the mutants
        extra = [name for name in self._topic_names() if name not in self._keep_topics and not name.startswith("__")]
        for start in range(0, len(extra), 500):
            call(self.address, DELETE_TOPICS, 4, DELETE_TOPICS.request.make(
                topic_names=extra[start:start + 500], timeout_ms=30000), timeout=120)

    def _housekeeping(self) -> None:
        try:
            self._drop_created_topics()
        except (OSError, Closed) as error:
            self.report.health_failures.append(f"deleting created topics after mutant {self.report.mutants}: {error!r}")
            self._save_findings("housekeeping")

    def _produce_acknowledged(self) -> None:
        value = f"acked-{self.report.acknowledged}-{self.rng.getrandbits(32):08x}"
        data = PRODUCE.request.struct("PartitionProduceData").make(
            index=0, records=build_batch([SimpleRecord(value=value.encode(), timestamp=int(time.time() * 1000))]))
        body = call(self._leader_of_acked_topic(), PRODUCE, 9, PRODUCE.request.make(acks=-1, timeout_ms=30000, topic_data=[
            PRODUCE.request.struct("TopicProduceData").make(name=self.acked_topic, partition_data=[data])]))
        answer = body.responses[0].partition_responses[0]
        if answer.error_code == 0:
            self._acked.append((answer.base_offset, value))
            self.report.acknowledged += 1
        else:
            self.report.unacknowledged += 1  # e.g. a leader moving; the summary shows how often

    def _health_check(self) -> None:
        self.report.health_checks += 1
        try:
            api_versions(self.address)
            self._produce_acknowledged()
        except (OSError, Closed) as error:
            self.report.health_failures.append(f"after mutant {self.report.mutants}: {error!r}")
            self._save_findings("health")
        if self.pid is not None:
            usage = process_usage(self.pid)
            if usage is not None:
                self.report.peak_rss_bytes = max(self.report.peak_rss_bytes, usage[0])
                self.report.peak_descriptors = max(self.report.peak_descriptors, usage[1])

    def verify_acknowledged(self) -> None:
        """Every acknowledged record is read back at its offset (Fetch v12 from offset 0)."""
        found: dict[int, str] = {}
        offset = 0
        while self._acked and offset <= self._acked[-1][0]:
            wanted = FETCH.request.struct("FetchPartition").make(
                partition=0, fetch_offset=offset, partition_max_bytes=1 << 20, current_leader_epoch=-1,
                last_fetched_epoch=-1, log_start_offset=-1)
            body = call(self._leader_of_acked_topic(), FETCH, 12, FETCH.request.make(
                replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                session_id=0, session_epoch=-1, topics=[FETCH.request.struct("FetchTopic").make(
                    topic=self.acked_topic, partitions=[wanted])], forgotten_topics_data=[], rack_id=""))
            records = body.responses[0].partitions[0].records or b""
            before = offset
            for batch in iter_record_batches(records):
                for record in batch.records:
                    found[record.offset(batch.base_offset)] = (record.value or b"").decode(errors="replace")
                offset = max(offset, batch.base_offset + batch.last_offset_delta + 1)
            if offset == before:
                break
        self.report.lost = [(o, v) for o, v in self._acked if found.get(o) != v]

    # mutants
    def run(self, count: int) -> FuzzReport:
        seeds = self.setup()
        started = time.monotonic()
        self._health_check()
        for number, (_, operator, frame) in enumerate(mutants(seeds, count, self.rng)):
            self.report.by_operator[operator] += 1
            self._send(frame)
            self.report.mutants += 1
            if (number + 1) % self.check_every == 0:
                self._health_check()
                if (number + 1) % (self.check_every * 5) == 0:
                    self._housekeeping()
                self.log(f"{number + 1} mutants, {self.report.answered} answered, {self.report.closed} closed, "
                         f"{self.report.timed_out} timed out")
        self._close()
        self._health_check()
        self._drop_created_topics()
        self.verify_acknowledged()
        self.report.seconds = time.monotonic() - started
        return self.report

    def _send(self, frame: bytes) -> None:
        """Send one mutant and the sentinel; return once the sentinel is answered or the
        connection is closed (by the broker, or by us after ``answer_timeout_s``)."""
        self._recent.append(frame)
        try:
            sock = self._connection()
            sock.sendall(frame + SENTINEL)
            deadline = time.monotonic() + self.answer_timeout_s
            while True:
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                answer = read_frame(sock)
                if struct.unpack_from(">i", answer)[0] == SENTINEL_CORRELATION_ID:
                    self.report.answered += 1
                    return
        except (Closed, ConnectionError):
            self.report.closed += 1
        except TimeoutError:
            self.report.timed_out += 1
        self._close()

    def _connection(self) -> socket.socket:
        if self._sock is None:
            self._sock = socket.create_connection(self.address, timeout=10)
        return self._sock

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _save_findings(self, why: str) -> None:
        if self.findings is None:
            return
        self.findings.mkdir(parents=True, exist_ok=True)
        path = self.findings / f"{why}-after-{self.report.mutants}.hex"
        path.write_text("".join(frame.hex() + "\n" for frame in self._recent))


def replay(address: tuple[str, int], frames: list[bytes], timeout_s: float = 1.0) -> bool:
    """Send recorded mutants one by one (each followed by the sentinel); True when the broker
    still answers a fresh connection afterwards.  Regression tests replay findings with this."""
    fuzzer = Fuzzer(address[0], address[1], answer_timeout_s=timeout_s, pid=-1)
    for frame in frames:
        fuzzer._send(frame)
    fuzzer._close()
    try:
        api_versions(address)
    except (OSError, Closed):
        return False
    return True


# -- command line ------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap-server", required=True, metavar="HOST:PORT")
    parser.add_argument("--count", type=int, default=10_000, help="mutants to send (default 10000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--pid", type=int, default=None,
                        help="broker process for memory/descriptor figures (default: found by its port)")
    parser.add_argument("--answer-timeout", type=float, default=1.0, help="seconds to wait per mutant (default 1)")
    parser.add_argument("--check-every", type=int, default=200, help="health check interval in mutants")
    parser.add_argument("--max-rss-mb", type=float, default=None, help="fail when the broker's RSS exceeds this")
    parser.add_argument("--max-fds", type=int, default=None, help="fail when the broker's descriptors exceed this")
    parser.add_argument("--findings", type=Path, default=None, help="directory for the frames around a failure")


def run(args: argparse.Namespace) -> int:
    from reference.cli import CommandError

    host, _, port = args.bootstrap_server.rpartition(":")
    if not host or not port.isdigit():
        raise CommandError(f"--bootstrap-server expects HOST:PORT, got {args.bootstrap_server!r}")
    fuzzer = Fuzzer(host, int(port), args.seed, pid=args.pid, answer_timeout_s=args.answer_timeout,
                    check_every=args.check_every, findings=args.findings, log=print)
    try:
        report = fuzzer.run(args.count)
    except (OSError, Closed) as error:
        raise CommandError(f"cannot fuzz {args.bootstrap_server}: {error!r}") from error
    print(report.summary())
    for failure in report.health_failures[:10]:
        print(f"health check failed {failure}")
    for offset, value in report.lost[:10]:
        print(f"acknowledged record lost: offset {offset} value {value}")
    max_rss = None if args.max_rss_mb is None else int(args.max_rss_mb * 2**20)
    return 0 if report.passed(max_rss, args.max_fds) else 1
