"""The aborted-transaction index of one segment: ``<base offset>.txnindex``.

Theory of operation
-------------------
Mirrors Kafka's ``TransactionIndex`` and ``AbortedTxn`` (storage/internals/log, KIP-98).  A
read_committed consumer must drop the records of aborted transactions, but the records themselves
carry no verdict: the verdict is the ABORT marker written later.  So the leader keeps, per segment,
the list of transactions that were *aborted by a marker in that segment*, and a read_committed
Fetch answers, beside the records, the aborted transactions that overlap them
(``aborted_transactions``: producer id and first offset).  The consumer then skips, per producer,
the records from that first offset up to the producer's ABORT marker.

One entry per aborted transaction, appended when its ABORT marker is appended (so entries are in
the order of their markers: ``last_offset`` increases), 34 bytes, big-endian::

    version int16 (=0) | producerId int64 | firstOffset int64 | lastOffset int64 | lastStableOffset int64

``first_offset`` is the transaction's first record in this partition, ``last_offset`` the offset of
its ABORT marker, ``last_stable_offset`` the LSO right after the marker was written (Kafka uses it
to stop a search early; refka records it the same way so that ``kafka-dump-log`` reads the same).

The file is never rewritten, only appended to, truncated (with its segment) and deleted (with its
segment).  A crash may leave a torn last entry: :meth:`TransactionIndex.load` drops it, and the log
re-adds any entry the replay of its markers finds missing.

Invariants (``check_valid``): ``first_offset <= last_offset``; ``last_offset`` strictly increases.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from reference import durability

ABORTED_TXN_VERSION = 0
_ENTRY = struct.Struct(">hqqqq")  # version, producerId, firstOffset, lastOffset, lastStableOffset
ENTRY_SIZE = _ENTRY.size  # 34


@dataclass(frozen=True)
class AbortedTxn:
    """One aborted transaction of one producer in this partition."""

    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int

    def encode(self) -> bytes:
        return _ENTRY.pack(ABORTED_TXN_VERSION, self.producer_id, self.first_offset, self.last_offset,
                           self.last_stable_offset)


class TransactionIndex:
    """The aborted transactions whose ABORT marker lies in one segment, in marker order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: list[AbortedTxn] = []
        self.load()

    def load(self) -> None:
        """Read the file; a torn last entry (a crash mid-write) is cut off the file too."""
        self.entries = []
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        whole = len(data) - len(data) % ENTRY_SIZE
        for version, producer_id, first, last, stable in _ENTRY.iter_unpack(data[:whole]):
            if version != ABORTED_TXN_VERSION:
                break
            self.entries.append(AbortedTxn(producer_id, first, last, stable))
        if len(self.entries) * ENTRY_SIZE != len(data):
            self._rewrite()

    @property
    def last_offset(self) -> int:
        """The last marker offset indexed, or -1."""
        return self.entries[-1].last_offset if self.entries else -1

    def append(self, aborted: AbortedTxn) -> None:
        """Index one aborted transaction; its marker must come after every one indexed."""
        if aborted.last_offset <= self.last_offset:
            raise ValueError(f"aborted transaction ending at {aborted.last_offset} is not after {self.last_offset}")
        with open(self.path, "ab") as handle:
            handle.write(aborted.encode())
        self.entries.append(aborted)

    def collect(self, fetch_offset: int, upper_bound_offset: int) -> list[AbortedTxn]:
        """Kafka's ``collectAbortedTxns``: entries that overlap ``[fetch_offset, upper_bound_offset)``."""
        return [e for e in self.entries if e.last_offset >= fetch_offset and e.first_offset < upper_bound_offset]

    def truncate_to(self, offset: int) -> None:
        """Forget the entries whose marker is at or above ``offset`` (the segment was truncated)."""
        kept = [e for e in self.entries if e.last_offset < offset]
        if len(kept) != len(self.entries):
            self.entries = kept
            self._rewrite()

    def flush(self) -> None:
        if self.path.exists():
            with open(self.path, "ab") as handle:
                durability.fsync(handle)

    def delete(self) -> None:
        self.entries = []
        self.path.unlink(missing_ok=True)

    def _rewrite(self) -> None:
        write_entries(self.path, self.entries)

    def check_valid(self) -> None:
        for entry in self.entries:
            assert entry.first_offset <= entry.last_offset, f"aborted transaction {entry} starts after its marker"
        for earlier, later in zip(self.entries, self.entries[1:], strict=False):
            assert earlier.last_offset < later.last_offset, "aborted transactions are indexed in marker order"


def write_entries(path: Path, entries: Iterable[AbortedTxn]) -> None:
    data = b"".join(entry.encode() for entry in entries)
    if not data:
        path.unlink(missing_ok=True)
        return
    path.write_bytes(data)
