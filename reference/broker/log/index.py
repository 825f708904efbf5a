"""The two sparse per-segment indexes: ``.index`` (offset -> position) and ``.timeindex`` (time -> offset).

Theory of operation
-------------------
Mirrors Kafka's ``OffsetIndex`` and ``TimeIndex`` (storage/internals/log).  Both are sorted arrays of
fixed-size big-endian entries whose offsets are stored *relative* to the segment's base offset, so
that four bytes suffice::

    .index      entry = relative_offset int32, position int32          (8 bytes)
    .timeindex  entry = timestamp int64, relative_offset int32         (12 bytes)

An offset index entry ``(offset, position)`` says: the batch whose *last* offset is ``offset``
starts at byte ``position`` of the ``.log`` file (Kafka indexes a batch by its last offset).  A time
index entry ``(timestamp, offset)`` says: no record with a timestamp greater than ``timestamp``
lies before ``offset``.  The segment adds one entry of each after every ``index.interval.bytes``
of appended batches, so a lookup is a binary search followed by a short scan of the log.

Kafka preallocates index files to ``segment.index.bytes`` and memory-maps them; refka does not
preallocate: the file is exactly ``entries * entry_size`` bytes long, the entries are also held in
a Python list, and an append is one ``write`` of one entry.  ``segment.index.bytes`` still bounds
the number of entries, and a full index makes the segment roll, as in Kafka.

Invariants (``check_valid``)
----------------------------
* offsets strictly increase in ``.index``; positions strictly increase too;
* timestamps and offsets never decrease in ``.timeindex`` (Kafka appends only a larger timestamp);
* every offset is >= the segment's base offset and fits in an int32 once made relative.

Neither file is checksummed: a missing or implausible index is rebuilt from the ``.log``
(:class:`CorruptIndexError` from :meth:`sanity_check` tells the loader to do so).
"""

from __future__ import annotations

import bisect
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from reference import durability
from reference.broker.log.descriptors import LazyDescriptor

INT32_MAX = (1 << 31) - 1
NO_TIMESTAMP = -1  # Kafka's RecordBatch.NO_TIMESTAMP

OFFSET_ENTRY = struct.Struct(">ii")  # relative_offset, position
TIME_ENTRY = struct.Struct(">qi")  # timestamp, relative_offset


class CorruptIndexError(Exception):
    """The index file cannot be trusted; the segment must be recovered and its indexes rebuilt."""


@dataclass(frozen=True)
class OffsetPosition:
    """An offset index entry: the batch whose last offset is ``offset`` starts at ``position``."""

    offset: int
    position: int


@dataclass(frozen=True)
class TimestampOffset:
    """A time index entry: records after ``offset`` may have timestamps above ``timestamp``."""

    timestamp: int
    offset: int


def _open_for_append(path: Path) -> LazyDescriptor:
    """Created now; closed when the descriptor budget needs room and reopened by the next write
    (:mod:`.descriptors`)."""
    file = LazyDescriptor(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    file.fd  # noqa: B018 - create the file now, as Kafka does when it opens an index
    return file


def _write_entry(file: LazyDescriptor, entry: bytes) -> None:
    if os.write(file.fd, entry) != len(entry):
        raise OSError(f"short write of an index entry to {file.path}")


class OffsetIndex:
    """Sparse map from offsets to ``.log`` file positions, persisted as Kafka's ``.index`` layout."""

    entry_size = OFFSET_ENTRY.size

    def __init__(self, path: Path, base_offset: int, max_index_size: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self.max_entries = max_index_size // self.entry_size
        raw = path.read_bytes() if path.exists() else b""
        self._length = len(raw)
        usable = len(raw) - len(raw) % self.entry_size
        self._offsets: list[int] = []
        self._positions: list[int] = []
        for relative_offset, position in OFFSET_ENTRY.iter_unpack(raw[:usable]):
            self._offsets.append(base_offset + relative_offset)
            self._positions.append(position)
        self._file = _open_for_append(path)

    @property
    def entries(self) -> int:
        return len(self._offsets)

    @property
    def is_full(self) -> bool:
        return self.entries >= self.max_entries

    @property
    def last_offset(self) -> int:
        """The last indexed offset, or the base offset for an empty index (Kafka's ``lastOffset``)."""
        return self._offsets[-1] if self._offsets else self.base_offset

    def entry(self, n: int) -> OffsetPosition:
        return OffsetPosition(self._offsets[n], self._positions[n])

    def can_append_offset(self, offset: int) -> bool:
        """The offset is representable relative to the base offset (Kafka's ``canAppendOffset``)."""
        return 0 <= offset - self.base_offset <= INT32_MAX

    def lookup(self, target_offset: int) -> OffsetPosition:
        """The entry with the largest offset <= ``target_offset``; ``(base_offset, 0)`` if none."""
        slot = bisect.bisect_right(self._offsets, target_offset) - 1
        if slot < 0:
            return OffsetPosition(self.base_offset, 0)
        return self.entry(slot)

    def append(self, offset: int, position: int) -> None:
        """Add ``offset -> position``; offsets must increase (a repeat of the last one is ignored)."""
        if self.is_full:
            raise ValueError(f"attempt to append to a full index {self.path} ({self.entries} entries)")
        if self._offsets and offset <= self._offsets[-1]:
            if offset == self._offsets[-1]:
                return
            raise ValueError(f"offset {offset} is not larger than the last indexed offset {self._offsets[-1]}")
        if not self.can_append_offset(offset):
            raise ValueError(f"offset {offset} does not fit relative to base offset {self.base_offset}")
        _write_entry(self._file, OFFSET_ENTRY.pack(offset - self.base_offset, position))
        self._length += self.entry_size
        self._offsets.append(offset)
        self._positions.append(position)

    def truncate_to(self, offset: int) -> None:
        """Remove every entry whose offset is >= ``offset`` (Kafka's ``truncateTo``)."""
        self._truncate_to_entries(bisect.bisect_left(self._offsets, offset))

    def reset(self) -> None:
        """Remove all entries (before a rebuild)."""
        self._truncate_to_entries(0)

    def _truncate_to_entries(self, entries: int) -> None:
        del self._offsets[entries:]
        del self._positions[entries:]
        self._length = entries * self.entry_size
        durability.truncate(self.path, self._length)

    def sanity_check(self, log_size: int) -> None:
        """Raise :class:`CorruptIndexError` if the file cannot be trusted.

        Kafka checks the length is a whole number of entries and the last offset is not below the
        base offset; refka also checks that offsets and positions increase and positions lie inside
        the ``.log`` file, since it reads the index into memory anyway."""
        if self._length % self.entry_size != 0:
            raise CorruptIndexError(f"{self.path}: length {self._length} is not a multiple of {self.entry_size}")
        if any(later <= earlier for earlier, later in zip(self._offsets, self._offsets[1:], strict=False)):
            raise CorruptIndexError(f"{self.path}: offsets do not increase")
        if any(later <= earlier for earlier, later in zip(self._positions, self._positions[1:], strict=False)):
            raise CorruptIndexError(f"{self.path}: positions do not increase")
        if self._offsets and (self._offsets[0] < self.base_offset or self._positions[-1] >= log_size):
            raise CorruptIndexError(f"{self.path}: entries outside the segment")

    def check_valid(self) -> None:
        assert all(a < b for a, b in zip(self._offsets, self._offsets[1:], strict=False)), "index offsets increase"
        assert all(a < b for a, b in zip(self._positions, self._positions[1:], strict=False)), "index positions increase"
        assert all(self.can_append_offset(offset) for offset in self._offsets), "index offsets fit in int32"
        assert self._length == self.entries * self.entry_size, "index file holds exactly its entries"

    def flush(self) -> None:
        durability.fsync(self._file.fd)

    def close(self) -> None:
        self._file.close()


class TimeIndex:
    """Sparse map from timestamps to offsets, persisted as Kafka's ``.timeindex`` layout."""

    entry_size = TIME_ENTRY.size

    def __init__(self, path: Path, base_offset: int, max_index_size: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self.max_entries = max_index_size // self.entry_size
        raw = path.read_bytes() if path.exists() else b""
        self._length = len(raw)
        usable = len(raw) - len(raw) % self.entry_size
        self._timestamps: list[int] = []
        self._offsets: list[int] = []
        for timestamp, relative_offset in TIME_ENTRY.iter_unpack(raw[:usable]):
            self._timestamps.append(timestamp)
            self._offsets.append(base_offset + relative_offset)
        self._file = _open_for_append(path)

    @property
    def entries(self) -> int:
        return len(self._timestamps)

    @property
    def is_full(self) -> bool:
        """Kafka reserves the last slot for the entry written when the segment rolls."""
        return self.entries >= self.max_entries - 1

    def last_entry(self) -> TimestampOffset:
        """The last entry, or ``(NO_TIMESTAMP, base_offset)`` for an empty index."""
        if not self._timestamps:
            return TimestampOffset(NO_TIMESTAMP, self.base_offset)
        return TimestampOffset(self._timestamps[-1], self._offsets[-1])

    def entry(self, n: int) -> TimestampOffset:
        return TimestampOffset(self._timestamps[n], self._offsets[n])

    def lookup(self, target_timestamp: int) -> TimestampOffset:
        """The entry with the largest timestamp <= target; ``(NO_TIMESTAMP, base_offset)`` if none."""
        slot = bisect.bisect_right(self._timestamps, target_timestamp) - 1
        if slot < 0:
            return TimestampOffset(NO_TIMESTAMP, self.base_offset)
        return self.entry(slot)

    def maybe_append(self, timestamp: int, offset: int, skip_full_check: bool = False) -> None:
        """Append ``(timestamp, offset)`` if ``timestamp`` is larger than the last one (Kafka's rule)."""
        if not skip_full_check and self.is_full:
            raise ValueError(f"attempt to append to a full time index {self.path}")
        last = self.last_entry()
        if self._timestamps and offset < last.offset:
            raise ValueError(f"offset {offset} is smaller than the last time-indexed offset {last.offset}")
        if timestamp <= last.timestamp:
            return
        _write_entry(self._file, TIME_ENTRY.pack(timestamp, offset - self.base_offset))
        self._length += self.entry_size
        self._timestamps.append(timestamp)
        self._offsets.append(offset)

    def truncate_to(self, offset: int) -> None:
        """Remove every entry whose offset is >= ``offset``."""
        self._truncate_to_entries(bisect.bisect_left(self._offsets, offset))

    def reset(self) -> None:
        self._truncate_to_entries(0)

    def _truncate_to_entries(self, entries: int) -> None:
        del self._timestamps[entries:]
        del self._offsets[entries:]
        self._length = entries * self.entry_size
        durability.truncate(self.path, self._length)

    def sanity_check(self, next_offset: int) -> None:
        """Raise :class:`CorruptIndexError` if the file cannot be trusted (Kafka's checks plus order)."""
        if self._length % self.entry_size != 0:
            raise CorruptIndexError(f"{self.path}: length {self._length} is not a multiple of {self.entry_size}")
        if any(b < a for a, b in zip(self._timestamps, self._timestamps[1:], strict=False)):
            raise CorruptIndexError(f"{self.path}: timestamps decrease")
        if any(b < a for a, b in zip(self._offsets, self._offsets[1:], strict=False)):
            raise CorruptIndexError(f"{self.path}: offsets decrease")
        if self._offsets and (self._offsets[0] < self.base_offset or self._offsets[-1] >= next_offset):
            raise CorruptIndexError(f"{self.path}: entries outside the segment")

    def check_valid(self) -> None:
        assert all(a < b for a, b in zip(self._timestamps, self._timestamps[1:], strict=False)), "time index timestamps increase"
        assert all(a <= b for a, b in zip(self._offsets, self._offsets[1:], strict=False)), "time index offsets never decrease"
        assert self._length == self.entries * self.entry_size, "time index file holds exactly its entries"

    def flush(self) -> None:
        durability.fsync(self._file.fd)

    def close(self) -> None:
        self._file.close()
