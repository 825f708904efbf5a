"""Judge a transactional chaos history: atomicity and isolation as read_committed readers see them.

Theory of operation
-------------------
``chaos.checker.check(events, "transactional")`` comes here.  The history (``chaos.workload``'s
transactional processes) has, per transaction, a ``txn`` invoke with its records (topic, key,
unique value, partition), an ``end-txn`` invoke with the decision (commit or abort) just before
``commit_transaction``/``abort_transaction``, and a ``txn`` completion: ``ok`` with ``outcome``
``committed`` or ``aborted`` and each record's acknowledged offset, or ``info`` with outcome
``unknown`` (a fatal error or a timeout: the transaction may have committed or not).  A
consume-transform-produce transaction also lists what it ``consumed`` (partition, offset, value).
Polls carry the reader's ``isolation`` (``read_committed`` or ``read_uncommitted``; the final read
is read_committed).

What the checker derives, in Jepsen's Kafka workload's names (``jepsen.tests.kafka``):

1. **aborted-read** (G1a): a read_committed reader saw a record of an aborted transaction.  Kafka
   hides them with the aborted-transaction list of the Fetch response and the LSO.
2. **precommitted-read**: a read_committed reader saw a record of a transaction before that
   transaction's commit was even asked for (the poll precedes the ``end-txn`` invoke in the
   history, or the transaction never asked to commit).  The LSO keeps an open transaction's records
   from read_committed readers until its marker is written.
3. **lost-write**: a record of a committed transaction that no read_committed reader saw, although
   read_committed readers read past its offset or the final read was complete.
4. **torn-transaction** (a lost write of part of a transaction): the final read (complete, and
   read_committed) holds some but not all of a transaction's records, for a committed transaction
   or one whose outcome is unknown (atomicity: all or nothing, whichever way it went).
5. **double-consume**: one input offset consumed by two committed consume-transform-produce
   transactions (the offsets committed inside the transaction are what make the copy exactly once).
6. From ``chaos.checker``, on the log every client observed: **inconsistent-offsets**,
   **duplicate** (a transactional producer is idempotent, so any duplicate fails),
   **nonmonotonic-send**, **phantom-read**; and **nonmonotonic-poll** / **poll-skip** per reader,
   where a read_committed reader may skip the offsets of aborted or undecided records (the control
   batches are never known offsets), so only offsets of committed records count as skipped.

Not derived: intermediate reads (Kafka records are never overwritten, so Jepsen's "intermediate"
is a precommitted read of a transaction's earlier write, counted as such) and G0/G1c cycles
(they need Jepsen's per-key list-append ordering across transactions; these histories do not
carry the write-read dependencies it infers).

Verdict: ``invalid`` if any failing kind was found; ``unknown`` if nothing committed or there was
no final read, or committed records lie above an incomplete final read; else ``valid``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .checker import (
    INVALID,
    UNKNOWN,
    VALID,
    Partition,
    Read,
    RecordId,
    Send,
    Verdict,
    _Findings,
    _judge_one_read,
    _label,
    _Observed,
    _records_of,
    find_duplicates,
    find_inconsistent_offsets,
    find_nonmonotonic_sends,
    find_phantom_reads,
)
from .history import INFO, INVOKE, OK, Event

TRANSACTIONAL = "transactional"
READ_COMMITTED, READ_UNCOMMITTED = "read_committed", "read_uncommitted"
COMMITTED, ABORTED, UNDECIDED = "committed", "aborted", "unknown"

# kind -> does it fail the transactional workload?
TXN_ANOMALY_KINDS: dict[str, bool] = {
    "aborted-read": True,
    "precommitted-read": True,
    "lost-write": True,
    "torn-transaction": True,
    "double-consume": True,
    "unseen": False,  # fails only when the final read was complete
    "duplicate": True,
    "inconsistent-offsets": True,
    "nonmonotonic-send": True,
    "nonmonotonic-poll": True,
    "poll-skip": True,
    "nonmonotonic-poll-after-rebalance": False,
    "poll-skip-after-rebalance": False,
    "phantom-read": True,
}


@dataclass
class Transaction:
    txn: str
    process: str
    records: list[RecordId]
    outcome: str = INVOKE  # committed / aborted / unknown; invoke if it never completed
    commit_asked_at: int | None = None  # history index of the end-txn invoke deciding to commit
    consumed: list[tuple[int, int]] = field(default_factory=list)  # (partition, offset) of its inputs


@dataclass
class _TxnObserved:
    base: _Observed
    transactions: dict[str, Transaction] = field(default_factory=dict)
    of_record: dict[RecordId, Transaction] = field(default_factory=dict)
    reads: dict[str, list[tuple[int, Read]]] = field(default_factory=lambda: defaultdict(list))  # isolation ->


def _record_id(record: dict[str, Any]) -> RecordId:
    return (None if record.get("key") is None else str(record["key"]), str(record["value"]))


def observe_transactions(events: Sequence[Event]) -> _TxnObserved:
    seen = _TxnObserved(_Observed())
    sequence: dict[str, int] = defaultdict(int)
    for index, event in enumerate(events):
        value = event.value or {}
        if event.f == "txn" and event.type == INVOKE:
            records = [_record_id(r) for r in value.get("records", [])]
            transaction = Transaction(str(value["txn"]), event.process, records)
            seen.transactions[transaction.txn] = transaction
            for r in value.get("records", []):
                record = _record_id(r)
                seen.of_record[record] = transaction
                seen.base.sends[record] = Send(event.process, str(r.get("topic", "")), record[0], record[1],
                                               sequence[event.process], invoked_at=index)
                sequence[event.process] += 1
        elif event.f == "end-txn" and event.type == INVOKE and value.get("commit"):
            if str(value["txn"]) in seen.transactions:
                seen.transactions[str(value["txn"])].commit_asked_at = index
        elif event.f == "txn" and event.type in (OK, INFO):
            _complete(seen, event, index)
        elif event.f == "poll" and event.type == OK:
            isolation = str(value.get("isolation", READ_COMMITTED))
            for read in _records_of(event):
                seen.base.reads.append(read)
                seen.base.log[read.where][read.offset].add(read.record)
                seen.reads[isolation].append((index, read))
        elif event.f == "final-read" and event.type == OK:
            seen.base.final_reads.append(value)
    return seen


def _complete(seen: _TxnObserved, event: Event, index: int) -> None:
    value = event.value or {}
    transaction = seen.transactions.get(str(value.get("txn")))
    if transaction is None:
        return
    transaction.outcome = str(value.get("outcome", UNDECIDED)) if event.type == OK else UNDECIDED
    transaction.consumed = [(int(c["partition"]), int(c["offset"])) for c in value.get("consumed", [])]
    for r in value.get("records", []):
        send = seen.base.sends.get(_record_id(r))
        if send is None:
            continue
        send.outcome, send.completed_at = (OK if transaction.outcome == COMMITTED else INFO), index
        if r.get("offset") is not None and int(r["offset"]) >= 0:
            send.partition, send.offset = int(r["partition"]), int(r["offset"])
            seen.base.log[(send.topic, send.partition)][send.offset].add((send.key, send.value))
            if transaction.outcome == COMMITTED:
                seen.base.acknowledged_in_order.append(send)


# -- the transactional anomalies ----------------------------------------------------------------


def find_aborted_and_precommitted_reads(seen: _TxnObserved, findings: _Findings) -> None:
    for index, read in seen.reads[READ_COMMITTED]:
        transaction = seen.of_record.get(read.record)
        if transaction is None:
            continue
        where = {"consumer": read.process, "partition": _label(read.where), "offset": read.offset,
                 "value": read.value, "txn": transaction.txn}
        if transaction.outcome == ABORTED:
            findings.add("aborted-read", **where)
        if transaction.commit_asked_at is None or index < transaction.commit_asked_at:
            findings.add("precommitted-read", **where, outcome=transaction.outcome)


def find_lost_and_torn(seen: _TxnObserved, findings: _Findings) -> int:
    """Returns how many committed records lie above the highest read_committed offset and were never
    read (lost only if the final read was complete)."""
    committed_reads = {read.record for _, read in seen.reads[READ_COMMITTED]}
    highest: dict[Partition, int] = {}
    for _, read in seen.reads[READ_COMMITTED]:
        highest[read.where] = max(highest.get(read.where, -1), read.offset)
    above = 0
    for send in seen.base.acknowledged_in_order:
        if send.partition is None or send.offset is None or (send.key, send.value) in committed_reads:
            continue
        where = (send.topic, send.partition)
        findings.add("unseen", value=send.value, partition=_label(where), offset=send.offset)
        if send.offset <= highest.get(where, -1):
            findings.add("lost-write", value=send.value, partition=_label(where), offset=send.offset,
                         highest_read=highest[where], txn=seen.of_record[(send.key, send.value)].txn)
        else:
            above += 1
    final = seen.base.final_reads[-1] if seen.base.final_reads else None
    if final is not None and final.get("complete"):
        final_records = {read.record for _, read in seen.reads[READ_COMMITTED] if read.process == "final-reader"}
        for transaction in seen.transactions.values():
            if transaction.outcome not in (COMMITTED, UNDECIDED) or not transaction.records:
                continue
            present = [record[1] for record in transaction.records if record in final_records]
            if present and len(present) < len(transaction.records):
                findings.add("torn-transaction", txn=transaction.txn, outcome=transaction.outcome,
                             visible=present, missing=[r[1] for r in transaction.records if r not in final_records])
    return above


def find_double_consumes(seen: _TxnObserved, findings: _Findings) -> None:
    consumed_by: dict[tuple[int, int], list[str]] = defaultdict(list)
    for transaction in seen.transactions.values():
        if transaction.outcome == COMMITTED:
            for position in transaction.consumed:
                consumed_by[position].append(transaction.txn)
    for (partition, offset), txns in sorted(consumed_by.items()):
        if len(txns) > 1:
            findings.add("double-consume", partition=partition, offset=offset, txns=txns)


def find_txn_poll_anomalies(events: Sequence[Event], seen: _TxnObserved, findings: _Findings) -> None:
    """chaos.checker's poll rules, with the known offsets each isolation level must not skip."""
    committed_offsets: dict[Partition, set[int]] = defaultdict(set)
    for send in seen.base.acknowledged_in_order:
        if send.partition is not None and send.offset is not None:
            committed_offsets[(send.topic, send.partition)].add(send.offset)
    known = {READ_COMMITTED: {where: sorted(offsets) for where, offsets in committed_offsets.items()},
             READ_UNCOMMITTED: {where: sorted(offsets) for where, offsets in seen.base.log.items()}}
    last: dict[str, dict[Partition, int]] = defaultdict(dict)
    rebalanced: dict[str, set[Partition]] = defaultdict(set)
    for event in events:
        process, value = event.process, event.value or {}
        if event.f == "assign" and event.type == OK:
            last[process].clear()
        elif event.f == "rebalance":
            for item in [*value.get("assigned", []), *value.get("revoked", [])]:
                rebalanced[process].add((str(item["topic"]), int(item["partition"])))
        elif event.f == "poll" and event.type == OK:
            offsets = known[READ_UNCOMMITTED if value.get("isolation") == READ_UNCOMMITTED else READ_COMMITTED]
            for read in _records_of(event):
                _judge_one_read(read, last[process], rebalanced[process], offsets, findings)


def check_transactional(events: Sequence[Event]) -> Verdict:
    seen = observe_transactions(events)
    findings = _Findings()
    find_inconsistent_offsets(seen.base, findings)
    find_duplicates(seen.base, findings)
    find_nonmonotonic_sends(seen.base, findings)
    find_phantom_reads(seen.base, findings)
    find_aborted_and_precommitted_reads(seen, findings)
    unseen_above = find_lost_and_torn(seen, findings)
    find_double_consumes(seen, findings)
    find_txn_poll_anomalies(events, seen, findings)
    stats = _stats(events, seen)
    failing = sorted(kind for kind, fails in TXN_ANOMALY_KINDS.items() if fails and findings.counts.get(kind))
    if unseen_above and stats["final_read_complete"]:
        failing.append("unseen")
    reasons = [f"{findings.counts[kind]} {kind}" for kind in failing]
    verdict = INVALID if failing else VALID
    if not failing:
        if not stats["committed_transactions"]:
            reasons.append("no transaction committed")
        if stats["final_read_complete"] is None:
            reasons.append("there was no final read")
        elif unseen_above:
            reasons.append(f"{unseen_above} committed records above the highest offset read, "
                           "and the final read stopped before the high watermark")
        verdict = UNKNOWN if reasons else VALID
    return Verdict(verdict, TRANSACTIONAL, dict(sorted(findings.counts.items())),
                   {kind: findings.examples[kind] for kind in sorted(findings.examples)}, failing, reasons, stats)


def _stats(events: Sequence[Event], seen: _TxnObserved) -> dict[str, Any]:
    outcomes: dict[str, int] = defaultdict(int)
    for transaction in seen.transactions.values():
        outcomes[transaction.outcome] += 1
    final = seen.base.final_reads[-1] if seen.base.final_reads else None
    return {
        "events": len(events),
        "transactions": len(seen.transactions),
        "committed_transactions": outcomes[COMMITTED],
        "aborted_transactions": outcomes[ABORTED],
        "unknown_transactions": outcomes[UNDECIDED] + outcomes[INVOKE],
        "sends": len(seen.base.sends),
        "acknowledged": len(seen.base.acknowledged_in_order),
        "maybe_written": sum(len(t.records) for t in seen.transactions.values() if t.outcome in (UNDECIDED, INVOKE)),
        "failed": sum(len(t.records) for t in seen.transactions.values() if t.outcome == ABORTED),
        "records_read": len(seen.base.reads),
        "distinct_records_read": len({read.record for read in seen.base.reads}),
        "read_committed_reads": len(seen.reads[READ_COMMITTED]),
        "read_uncommitted_reads": len(seen.reads[READ_UNCOMMITTED]),
        "final_read_complete": None if final is None else bool(final.get("complete")),
    }
