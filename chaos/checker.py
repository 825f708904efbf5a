"""Judge a chaos history: did the cluster keep the promises Kafka makes to its clients?

Theory of operation
-------------------
The checker is sans-IO: it takes the list of events of ``chaos.history`` and returns a
:class:`Verdict`.  It trusts nothing but the clients' observations, in the vocabulary of Jepsen's
Kafka workload (``jepsen.tests.kafka``) and of Kafka's own ``replication_test``:

1. **The log as observed.**  Every acknowledged send (``ok`` with partition and offset) and every
   record a consumer read places a value at ``(topic, partition, offset)``.  Records are
   identified by ``(key, value)``: the workload never sends the same value twice under one key.
2. **inconsistent-offsets**: two different values observed at one offset.  Kafka gives each offset
   of a partition exactly one record, forever; two values mean two replicas disagreed (e.g. a
   leader elected without the truncated records, ``unclean.leader.election.enable``).
3. **duplicate**: one value at two offsets.  Expected now and then with retries and
   ``enable.idempotence=false`` (a retried batch whose first answer was lost); with idempotence
   (KIP-98's producer id + sequence numbers) the leader recognises a retry it already holds, so it
   must never happen -- with one exception the broker cannot help, counted apart as
   **duplicate-after-epoch-bump**: every copy is in one partition, and the value's producer
   recorded an ``epoch-bump`` (``chaos.history``) after the value's ``invoke`` and before its
   completion (``ok``/``info``/``fail``; the end of the history if none).  librdkafka's idempotent
   producer bumps its own epoch (KIP-360) after local message timeouts, an unknown producer id or
   a sequence error, and renumbers every partition from sequence 0 under the new epoch, including
   a batch whose first attempt failed "possibly persisted" (a leader killed before it answered).
   The retry reaches the new leader, which already holds the first copy, as a new batch: a new
   epoch starts a new sequence (KIP-360), so nothing on the wire lets the broker see a duplicate,
   and Kafka appends it again.  It is the client's doing (confluentinc/librdkafka#4953, open); only
   transactions avoid it (a bump aborts the transaction, and the first copy with it).  So it is
   shown but does not fail the idempotent workload; any other duplicate of an idempotent producer
   still does.  The window is judged in history order: the producer's thread records the bump
   when it polls, and records each invoke just before ``produce()``, so only a send invoked
   between the bump and the next poll can be counted in a window it is not in -- and that send's
   first attempt already carried the new epoch, so the bump cannot have duplicated it.
4. **lost-write**: an acknowledged value, at an offset *below* the highest offset anyone read in
   its partition, that no consumer (not even the final read) ever saw.  The log reached past it,
   so it should have been there: the acknowledgement was a lie (``acks=1`` with a leader kill).
5. **unseen**: an acknowledged value never read at all.  Every lost write is unseen; an unseen
   value above the highest offset read is loss only if the final read reached each partition's
   high watermark (the log was truncated under it); otherwise we cannot tell (verdict unknown).
6. **nonmonotonic-send**: one producer's acknowledged offsets in one partition go backwards (or
   repeat) in the order the acknowledgements arrived.
7. **order**: one producer's acknowledged values in one partition appear in the log in a different
   order than they were sent.  With idempotence the sequence numbers make the leader refuse an
   out-of-order batch, so it fails the idempotent workload.  Without idempotence it is the
   client's promise, not the cluster's, and librdkafka does not keep it across a leader change
   even with ``max.in.flight.requests.per.connection=1`` (seen on Apache Kafka: a batch queued for
   the old leader was retried after later ones reached the new leader), so for
   ``at-least-once`` it is counted and shown, like a duplicate, but does not fail the run.
8. **nonmonotonic-poll**: a consumer reads an offset at or below one it already read in that
   partition, with no assign/seek in between.  **poll-skip**: a consumer jumps over offsets that
   are known to hold records.  Both are expected for group subscribers across a rebalance (a new
   owner resumes from the committed offset), so those are counted separately, as
   ``nonmonotonic-poll-after-rebalance`` and ``poll-skip-after-rebalance``, and do not fail a run.
9. **phantom-read**: a consumer read a value that no producer ever tried to send.

Verdict: ``invalid`` if any failing anomaly was found (duplicates and reordering fail only the
idempotent workload, duplicates after the producer's own epoch bump not even that; duplicates
so in Kafka's system tests too); else ``unknown`` if nothing was acknowledged, if there was
no final read, or if unseen values remain above an incomplete final read; else ``valid``.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .history import FAIL, INFO, INVOKE, OK, Event

NS_PER_SECOND = 1_000_000_000

VALID, INVALID, UNKNOWN = "valid", "invalid", "unknown"

AT_LEAST_ONCE, IDEMPOTENT, TRANSACTIONAL = "at-least-once", "idempotent", "transactional"
WORKLOADS = (AT_LEAST_ONCE, IDEMPOTENT, TRANSACTIONAL)

# anomaly kind -> does it fail the verdict?  (duplicate and order depend on the workload: see failing_kinds)
ANOMALY_KINDS: dict[str, bool] = {
    "lost-write": True,
    "unseen": False,  # fails only when the final read was complete: see _verdict
    "duplicate": False,  # fails only the idempotent workload: see failing_kinds
    "duplicate-after-epoch-bump": False,  # the client's own epoch bump: see the theory of operation
    "inconsistent-offsets": True,
    "nonmonotonic-send": True,
    "order": False,  # fails only the idempotent workload: see failing_kinds
    "nonmonotonic-poll": True,
    "poll-skip": True,
    "nonmonotonic-poll-after-rebalance": False,
    "poll-skip-after-rebalance": False,
    "phantom-read": True,
}

EXAMPLES_PER_KIND = 8

Partition = tuple[str, int]  # (topic, partition)
RecordId = tuple[str | None, str]  # (key, value)


def failing_kinds(workload: str) -> set[str]:
    kinds = {kind for kind, fails in ANOMALY_KINDS.items() if fails}
    if workload == IDEMPOTENT:
        kinds |= {"duplicate", "order"}
    return kinds


@dataclass
class Verdict:
    """The checker's answer: ``valid``, ``invalid`` or ``unknown``, and why."""

    verdict: str
    workload: str
    counts: dict[str, int]
    examples: dict[str, list[dict[str, Any]]]
    failing: list[str]
    reasons: list[str]
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.verdict == VALID

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        return cls(**data)


@dataclass
class Send:
    """A send as the producer saw it, from invoke to completion."""

    process: str
    topic: str
    key: str | None
    value: str
    sequence: int  # the producer's n-th send (invoke order)
    outcome: str = INVOKE  # becomes ok / fail / info
    partition: int | None = None
    offset: int | None = None
    invoked_at: int | None = None  # index in the history of its invoke (None: completion without invoke)
    completed_at: int | None = None  # index of its first completion (None: never completed)


@dataclass(frozen=True)
class EpochBump:
    """A producer's own epoch bump, as it recorded it (``info epoch-bump``)."""

    process: str
    index: int  # position in the history
    time: int  # ns, the history's clock
    producer_id: int | None
    epoch: int | None
    reason: str | None

    def describe(self) -> dict[str, Any]:
        return {"time_s": round(self.time / NS_PER_SECOND, 3), "producer_id": self.producer_id,
                "epoch": self.epoch, "reason": self.reason}


@dataclass(frozen=True)
class Read:
    process: str
    topic: str
    partition: int
    offset: int
    key: str | None
    value: str

    @property
    def where(self) -> Partition:
        return (self.topic, self.partition)

    @property
    def record(self) -> RecordId:
        return (self.key, self.value)


class _Findings:
    """Anomalies by kind: a count and the first few examples."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = defaultdict(int)
        self.examples: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def add(self, kind: str, **detail: Any) -> None:
        self.counts[kind] += 1
        if len(self.examples[kind]) < EXAMPLES_PER_KIND:
            self.examples[kind].append(detail)


@dataclass
class _Observed:
    """Everything the checker derives from the events, before judging."""

    sends: dict[RecordId, Send] = field(default_factory=dict)
    acknowledged_in_order: list[Send] = field(default_factory=list)  # order of ok events
    reads: list[Read] = field(default_factory=list)
    log: dict[Partition, dict[int, set[RecordId]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(set)))
    final_reads: list[dict[str, Any]] = field(default_factory=list)
    epoch_bumps: dict[str, list[EpochBump]] = field(default_factory=lambda: defaultdict(list))  # by process


def _label(where: Partition) -> str:
    return f"{where[0]}-{where[1]}"


def _records_of(event: Event) -> list[Read]:
    value = event.value or {}
    return [Read(event.process, str(r["topic"]), int(r["partition"]), int(r["offset"]),
                 None if r.get("key") is None else str(r["key"]), str(r["value"]))
            for r in value.get("records", [])]


def observe(events: Iterable[Event]) -> _Observed:
    seen = _Observed()
    sequence: dict[str, int] = defaultdict(int)
    for index, event in enumerate(events):
        if event.f == "send":
            value = event.value or {}
            record: RecordId = (None if value.get("key") is None else str(value["key"]), str(value["value"]))
            if event.type == INVOKE:
                seen.sends[record] = Send(event.process, str(value.get("topic", "")), record[0], record[1],
                                          sequence[event.process], invoked_at=index)
                sequence[event.process] += 1
                continue
            send = seen.sends.get(record)
            if send is None:  # a completion without its invoke: keep it, as an invoke-less send
                send = seen.sends[record] = Send(event.process, str(value.get("topic", "")), record[0], record[1],
                                                 sequence[event.process])
                sequence[event.process] += 1
            send.outcome = event.type
            if send.completed_at is None:
                send.completed_at = index
            if event.type == OK and value.get("offset") is not None:
                send.partition, send.offset = int(value["partition"]), int(value["offset"])
                seen.log[(send.topic, send.partition)][send.offset].add(record)
                seen.acknowledged_in_order.append(send)
        elif event.f == "poll" and event.type == OK:
            for read in _records_of(event):
                seen.reads.append(read)
                seen.log[read.where][read.offset].add(read.record)
        elif event.f == "final-read" and event.type == OK:
            seen.final_reads.append(event.value or {})
        elif event.f == "epoch-bump":
            value = event.value or {}
            seen.epoch_bumps[event.process].append(EpochBump(
                event.process, index, event.time, _optional_int(value.get("producer_id")),
                _optional_int(value.get("epoch")), None if value.get("reason") is None else str(value["reason"])))
    return seen


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


# -- the anomalies, one function each ------------------------------------------------------------


def find_inconsistent_offsets(seen: _Observed, findings: _Findings) -> None:
    for where, offsets in seen.log.items():
        for offset, records in sorted(offsets.items()):
            if len(records) > 1:
                findings.add("inconsistent-offsets", partition=_label(where), offset=offset,
                             values=sorted(value for _key, value in records))


def find_duplicates(seen: _Observed, findings: _Findings) -> None:
    positions: dict[RecordId, set[tuple[Partition, int]]] = defaultdict(set)
    for where, offsets in seen.log.items():
        for offset, records in offsets.items():
            for record in records:
                positions[record].add((where, offset))
    for record, places in positions.items():
        if len(places) <= 1:
            continue
        at = [f"{_label(where)}@{offset}" for where, offset in sorted(places)]
        send = seen.sends.get(record)
        bumps = _epoch_bumps_while_in_flight(send, seen) if len({where for where, _ in places}) == 1 else []
        if send is not None and bumps:
            findings.add("duplicate-after-epoch-bump", key=record[0], value=record[1], at=at, producer=send.process,
                         epoch_bumps=[bump.describe() for bump in bumps])
        else:
            findings.add("duplicate", key=record[0], value=record[1], at=at)


def _epoch_bumps_while_in_flight(send: Send | None, seen: _Observed) -> list[EpochBump]:
    """The epoch bumps ``send``'s producer recorded after its invoke and before its completion
    (or the end of the history).  None for a send without an invoke: no window is known."""
    if send is None or send.invoked_at is None:
        return []
    end = send.completed_at if send.completed_at is not None else float("inf")
    return [bump for bump in seen.epoch_bumps.get(send.process, []) if send.invoked_at < bump.index < end]


def highest_read_offsets(seen: _Observed) -> dict[Partition, int]:
    highest: dict[Partition, int] = {}
    for read in seen.reads:
        highest[read.where] = max(highest.get(read.where, -1), read.offset)
    return highest


def find_lost_and_unseen(seen: _Observed, findings: _Findings) -> int:
    """Returns how many unseen values lie above the highest offset read (not provably lost)."""
    read_records = {read.record for read in seen.reads}
    highest = highest_read_offsets(seen)
    above_highest = 0
    for send in seen.acknowledged_in_order:
        if send.offset is None or send.partition is None or (send.key, send.value) in read_records:
            continue
        where = (send.topic, send.partition)
        findings.add("unseen", key=send.key, value=send.value, partition=_label(where), offset=send.offset)
        if send.offset <= highest.get(where, -1):
            findings.add("lost-write", key=send.key, value=send.value, partition=_label(where),
                         offset=send.offset, highest_read=highest[where], producer=send.process)
        else:
            above_highest += 1
    return above_highest


def find_nonmonotonic_sends(seen: _Observed, findings: _Findings) -> None:
    last: dict[tuple[str, Partition], Send] = {}
    for send in seen.acknowledged_in_order:
        assert send.partition is not None and send.offset is not None
        slot = (send.process, (send.topic, send.partition))
        previous = last.get(slot)
        if previous is not None and previous.offset is not None and send.offset <= previous.offset:
            findings.add("nonmonotonic-send", producer=send.process, partition=_label(slot[1]),
                         values=[previous.value, send.value], offsets=[previous.offset, send.offset])
        last[slot] = send


def find_order_violations(seen: _Observed, findings: _Findings) -> None:
    first_read_offset: dict[RecordId, int] = {}
    for read in seen.reads:
        first_read_offset[read.record] = min(first_read_offset.get(read.record, read.offset), read.offset)
    by_producer: dict[tuple[str, Partition], list[Send]] = defaultdict(list)
    for send in seen.acknowledged_in_order:
        assert send.partition is not None
        by_producer[(send.process, (send.topic, send.partition))].append(send)
    for (producer, where), sends in by_producer.items():
        latest: tuple[int, Send] | None = None  # highest log offset among earlier sends
        for send in sorted(sends, key=lambda s: s.sequence):
            offset = first_read_offset.get((send.key, send.value))
            if offset is None:
                continue
            if latest is not None and offset < latest[0]:
                findings.add("order", producer=producer, partition=_label(where),
                             sent_first=latest[1].value, at=latest[0], sent_later=send.value, later_at=offset)
            if latest is None or offset > latest[0]:
                latest = (offset, send)


def find_poll_anomalies(events: Sequence[Event], seen: _Observed, findings: _Findings) -> None:
    known = {where: sorted(offsets) for where, offsets in seen.log.items()}
    last: dict[str, dict[Partition, int]] = defaultdict(dict)
    rebalanced: dict[str, set[Partition]] = defaultdict(set)
    for event in events:
        process = event.process
        if event.f == "assign" and event.type == OK:
            last[process].clear()  # a new assignment (with its seeks) restarts every position
        elif event.f == "rebalance":
            value = event.value or {}
            for item in [*value.get("assigned", []), *value.get("revoked", [])]:
                rebalanced[process].add((str(item["topic"]), int(item["partition"])))
        elif event.f == "poll" and event.type == OK:
            for read in _records_of(event):
                _judge_one_read(read, last[process], rebalanced[process], known, findings)


def _judge_one_read(read: Read, last: dict[Partition, int], rebalanced: set[Partition],
                    known: dict[Partition, list[int]], findings: _Findings) -> None:
    where = read.where
    previous = last.get(where)
    suffix = "-after-rebalance" if where in rebalanced else ""
    if previous is not None:
        if read.offset <= previous:
            findings.add("nonmonotonic-poll" + suffix, consumer=read.process, partition=_label(where),
                         offsets=[previous, read.offset])
        else:
            offsets = known.get(where, [])
            skipped = offsets[bisect.bisect_right(offsets, previous):bisect.bisect_left(offsets, read.offset)]
            if skipped:
                findings.add("poll-skip" + suffix, consumer=read.process, partition=_label(where),
                             offsets=[previous, read.offset], skipped=skipped[:10], skipped_count=len(skipped))
    last[where] = read.offset
    rebalanced.discard(where)


def find_phantom_reads(seen: _Observed, findings: _Findings) -> None:
    for read in seen.reads:
        if read.record not in seen.sends:
            findings.add("phantom-read", consumer=read.process, partition=_label(read.where), offset=read.offset,
                         key=read.key, value=read.value)


# -- the verdict ----------------------------------------------------------------------------------


def _stats(events: Sequence[Event], seen: _Observed) -> dict[str, Any]:
    outcomes: dict[str, int] = defaultdict(int)
    for send in seen.sends.values():
        outcomes[send.outcome] += 1
    final = seen.final_reads[-1] if seen.final_reads else None
    return {
        "events": len(events),
        "sends": len(seen.sends),
        "acknowledged": outcomes[OK],
        "maybe_written": outcomes[INFO] + outcomes[INVOKE],
        "failed": outcomes[FAIL],
        "records_read": len(seen.reads),
        "distinct_records_read": len({read.record for read in seen.reads}),
        "partitions": sorted(_label(where) for where in seen.log),
        "final_read_complete": None if final is None else bool(final.get("complete")),
    }


def check(events: Sequence[Event], workload: str = AT_LEAST_ONCE) -> Verdict:
    """Judge ``events`` (in file order) for ``workload`` (``at-least-once`` or ``idempotent``)."""
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}; expected one of {', '.join(WORKLOADS)}")
    if workload == TRANSACTIONAL:
        from .checker_txn import check_transactional

        return check_transactional(events)
    seen = observe(events)
    findings = _Findings()
    find_inconsistent_offsets(seen, findings)
    find_duplicates(seen, findings)
    unseen_above_reads = find_lost_and_unseen(seen, findings)
    find_nonmonotonic_sends(seen, findings)
    find_order_violations(seen, findings)
    find_poll_anomalies(events, seen, findings)
    find_phantom_reads(seen, findings)
    stats = _stats(events, seen)
    verdict, failing, reasons = _verdict(findings, workload, stats, unseen_above_reads)
    return Verdict(verdict, workload, dict(sorted(findings.counts.items())),
                   {kind: findings.examples[kind] for kind in sorted(findings.examples)}, failing, reasons, stats)


def _verdict(findings: _Findings, workload: str, stats: dict[str, Any],
             unseen_above_reads: int) -> tuple[str, list[str], list[str]]:
    final_complete = stats["final_read_complete"]
    failing = sorted(kind for kind in failing_kinds(workload) if findings.counts.get(kind))
    if unseen_above_reads and final_complete:
        failing.append("unseen")  # the final read reached the high watermark, and they were not there
    if failing:
        return INVALID, failing, [f"{findings.counts[kind]} {kind}" for kind in failing]
    reasons = []
    if not stats["acknowledged"]:
        reasons.append("no send was acknowledged")
    if final_complete is None:
        reasons.append("there was no final read")
    elif unseen_above_reads:
        reasons.append(f"{unseen_above_reads} acknowledged values above the highest offset read, "
                       "and the final read stopped before the high watermark")
    return (UNKNOWN if reasons else VALID), [], reasons
