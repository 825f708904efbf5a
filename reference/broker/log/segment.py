"""One log segment: a ``.log`` file of record batches plus its ``.index`` and ``.timeindex``.

Theory of operation
-------------------
Mirrors Kafka's ``LogSegment``.  A segment holds the batches whose offsets start at its *base
offset* (its file name) and end before the next segment's base offset.  Batches are stored exactly
as they were appended -- header, CRC, compressed payload -- after the log assigned their offsets in
place, so a fetch can hand out the stored bytes unchanged.  The grammar of a stored batch (see
:mod:`reference.records.batch`)::

    baseOffset int64 | batchLength int32 | partitionLeaderEpoch int32 | magic int8 (=2) | crc uint32
    | attributes int16 | lastOffsetDelta int32 | baseTimestamp int64 | maxTimestamp int64
    | producerId int64 | producerEpoch int16 | baseSequence int32 | recordCount int32 | records

Rules:

1. **Append** writes the batches at the end of the file in one ``write``.  After more than
   ``index.interval.bytes`` bytes since the last index entry, the next batch gets an offset index
   entry (its last offset -> its position) and a time index entry (largest timestamp so far ->
   offset of that timestamp's batch).  A segment's first batch is never indexed: a lookup below the
   first entry starts at position 0.
2. **Translate** an offset to a position: binary-search the index for the greatest entry <= offset,
   then scan batch headers forward to the first batch whose last offset >= offset.  That batch may
   begin before the offset: a fetch in the middle of a batch returns the whole batch.
3. **Read** returns whole batches only, beginning with the translated one, never more than
   ``max_size`` bytes -- except that with ``min_one_message`` the first batch is returned even when
   it alone is larger (Kafka's minOneMessage rule, so a consumer can always make progress).  Only
   batches wholly below ``max_offset`` (the high watermark or the last stable offset) are exposed.
   Kafka slices raw bytes and may end a response with a partial batch that clients skip; refka
   stops at the last whole batch, which clients accept equally.
4. **Roll** (decided by :meth:`should_roll`): the segment would exceed ``segment.bytes``; or it is
   non-empty and the new batch's timestamp is more than ``segment.ms`` after the first batch's
   timestamp (wall-clock age since creation when batches carry no timestamp); or an index is full;
   or the new offset no longer fits relative to the base offset.
5. **Recover** rebuilds both indexes from the ``.log`` and cuts the file at the first batch that is
   torn (shorter than its length field), has a bad length or magic, fails its CRC-32C, or whose base
   offset goes backwards.  Everything before it is kept; nothing after it is ever served.
6. **Truncate** to an offset removes the batch containing that offset and everything after it.

Invariants (``check_valid``): the file is a sequence of whole batches with increasing offsets, all
within ``[base_offset, next_offset)``; every index entry points at the start of the batch whose last
offset it names; both indexes satisfy their own invariants.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from reference import durability
from reference.broker.log import files
from reference.broker.log.config import LogConfig
from reference.broker.log.descriptors import LazyDescriptor
from reference.broker.log.index import NO_TIMESTAMP, OffsetIndex, TimeIndex, TimestampOffset
from reference.records.batch import LOG_OVERHEAD, RECORD_BATCH_OVERHEAD, BatchHeader, crc_is_valid
from reference.records.decode_errors import RecordsDecodeError

MAGIC_V2 = 2


@dataclass(frozen=True)
class BatchLocation:
    """A stored batch's header and where it starts in the ``.log`` file."""

    position: int
    header: BatchHeader

    @property
    def end_position(self) -> int:
        return self.position + self.header.size_in_bytes


@dataclass(frozen=True)
class SegmentRead:
    """Bytes of whole batches read from one segment; ``first`` is where the read began."""

    records: bytes
    first: BatchLocation


def _write_fully(descriptor: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(descriptor, view)
        view = view[written:]


class LogSegment:
    """A ``.log`` file with its two indexes; see the module docstring for the rules it keeps."""

    def __init__(self, directory: Path, base_offset: int, config: LogConfig, now_ms: int) -> None:
        self.directory = directory
        self.base_offset = base_offset
        self.index_interval_bytes = config.index_interval_bytes
        self.log_path = files.log_file(directory, base_offset)
        # opened lazily and closed when the descriptor budget needs room (.descriptors)
        self._file = LazyDescriptor(self.log_path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
        self.size = os.fstat(self._file.fd).st_size
        self.offset_index = OffsetIndex(files.index_file(directory, base_offset), base_offset, config.segment_index_bytes)
        self.time_index = TimeIndex(files.time_index_file(directory, base_offset), base_offset, config.segment_index_bytes)
        self.created_ms = now_ms
        self._bytes_since_last_index_entry = 0
        self._rolling_based_timestamp: int | None = None
        self.max_timestamp_and_offset = self.time_index.last_entry()
        self.next_offset = base_offset
        self._closed = False

    # -- reading the .log file -------------------------------------------------------------------

    def read_bytes(self, position: int, length: int) -> bytes:
        """``length`` bytes of the ``.log`` file from ``position`` (fewer at the end of the file)."""
        return os.pread(self._file.fd, length, position)

    def header_at(self, position: int) -> BatchHeader | None:
        """The header of the batch at ``position``, or None if no whole batch starts there."""
        if self.size - position < RECORD_BATCH_OVERHEAD:
            return None
        try:
            header = BatchHeader.decode(self.read_bytes(position, RECORD_BATCH_OVERHEAD), 0)
        except RecordsDecodeError:
            return None
        if header.size_in_bytes < RECORD_BATCH_OVERHEAD or position + header.size_in_bytes > self.size:
            return None
        return header

    def batches_from(self, position: int = 0, end_position: int | None = None) -> Iterator[BatchLocation]:
        """Headers of the whole batches from ``position``, stopping at the first that is not whole."""
        end = self.size if end_position is None else end_position
        while position < end:
            header = self.header_at(position)
            if header is None:
                return
            yield BatchLocation(position, header)
            position += header.size_in_bytes

    def _last_batch_from(self, position: int) -> BatchLocation | None:
        last = None
        for location in self.batches_from(position):
            last = location
        return last

    def translate_offset(self, offset: int, starting_position: int = 0) -> BatchLocation | None:
        """The first batch whose last offset is >= ``offset`` (rule 2), or None past the end."""
        start = max(self.offset_index.lookup(offset).position, starting_position)
        for location in self.batches_from(start):
            if location.header.last_offset >= offset:
                return location
        return None

    def read(self, start_offset: int, max_size: int, max_offset: int, min_one_message: bool) -> SegmentRead | None:
        """Whole batches from the one holding ``start_offset`` (rule 3); None if the segment ends before it."""
        first = self.translate_offset(start_offset)
        if first is None:
            return None
        budget = max(max_size, first.header.size_in_bytes) if min_one_message else max_size
        end = first.position
        for location in self.batches_from(first.position):
            if location.header.last_offset >= max_offset or location.end_position - first.position > budget:
                break
            end = location.end_position
        return SegmentRead(self.read_bytes(first.position, end - first.position), first)

    # -- appending --------------------------------------------------------------------------------

    def append(self, records: bytes | bytearray | memoryview, batches: list[BatchHeader]) -> None:
        """Write ``records`` (the batches described by ``batches``, offsets assigned) at the end (rule 1)."""
        if not batches:
            return
        if not self.offset_index.can_append_offset(batches[-1].last_offset):
            raise ValueError(f"offset {batches[-1].last_offset} does not fit in segment {self.base_offset}")
        position = self.size
        if position == 0:
            self._rolling_based_timestamp = batches[0].max_timestamp
        try:
            _write_fully(self._file.fd, records)
        except OSError:  # e.g. ENOSPC part-way: cut the torn tail off (best effort), then report
            with contextlib.suppress(OSError):
                durability.truncate(self._file.fd, position)
            raise
        self.size += len(records)
        for header in batches:
            self._index_batch(header, position)
            position += header.size_in_bytes
        self.next_offset = batches[-1].next_offset

    def _index_batch(self, header: BatchHeader, position: int) -> None:
        if header.max_timestamp > self.max_timestamp_and_offset.timestamp:
            self.max_timestamp_and_offset = TimestampOffset(header.max_timestamp, header.last_offset)
        if self._bytes_since_last_index_entry > self.index_interval_bytes:
            self.offset_index.append(header.last_offset, position)
            self.time_index.maybe_append(self.max_timestamp_and_offset.timestamp, self.max_timestamp_and_offset.offset)
            self._bytes_since_last_index_entry = 0
        self._bytes_since_last_index_entry += header.size_in_bytes

    # -- rolling ------------------------------------------------------------------------------------

    def should_roll(self, config: LogConfig, messages_size: int, max_timestamp: int, max_offset: int, now_ms: int) -> bool:
        """Rule 4: must a new segment start before appending ``messages_size`` more bytes?"""
        reached_roll_ms = self.time_waited_for_roll(now_ms, max_timestamp) > config.segment_ms
        return (
            self.size > config.segment_bytes - messages_size
            or (self.size > 0 and reached_roll_ms)
            or self.offset_index.is_full
            or self.time_index.is_full
            or not self.offset_index.can_append_offset(max_offset)
        )

    def time_waited_for_roll(self, now_ms: int, message_timestamp: int) -> int:
        """Kafka's rule: time since the first batch's timestamp, else since the segment was created."""
        if self._rolling_based_timestamp is None:
            first = next(self.batches_from(0), None)
            if first is not None:
                self._rolling_based_timestamp = first.header.max_timestamp
        if self._rolling_based_timestamp is not None and self._rolling_based_timestamp >= 0:
            return message_timestamp - self._rolling_based_timestamp
        return now_ms - self.created_ms

    def on_become_inactive(self) -> None:
        """When rolled: record the largest timestamp in the time index (Kafka reserves a slot for it)."""
        largest = self.max_timestamp_and_offset
        self.time_index.maybe_append(largest.timestamp, largest.offset, skip_full_check=True)

    # -- loading, recovery, truncation ----------------------------------------------------------------

    def load_without_recovery(self) -> bool:
        """Find the next offset of a segment trusted as whole (flushed, or shut down cleanly).

        Returns False if the batches after the last index entry do not end exactly at the end of
        the file (someone cut the file): the caller must then recover the segment."""
        start = self.offset_index.lookup(self.offset_index.last_offset).position
        last = self._last_batch_from(start)
        self.next_offset = last.header.next_offset if last else self.base_offset
        self.max_timestamp_and_offset = self._largest_timestamp_from(self.time_index.last_entry())
        return (last.end_position if last else start) == self.size

    def recover(self, on_batch: Callable[[BatchHeader], None] | None = None) -> int:
        """Rule 5: rebuild the indexes, cut the file after the last valid batch; bytes removed.

        ``on_batch`` sees every valid batch in order (the log uses it to rebuild the leader epoch
        cache and the producer state)."""
        self.offset_index.reset()
        self.time_index.reset()
        self.max_timestamp_and_offset = TimestampOffset(NO_TIMESTAMP, self.base_offset)
        self._bytes_since_last_index_entry = 0
        valid_bytes = 0
        next_offset = self.base_offset
        while True:
            header = self._valid_batch_at(valid_bytes, next_offset)
            if header is None:
                break
            self._index_batch(header, valid_bytes)
            if on_batch is not None:
                on_batch(header)
            valid_bytes += header.size_in_bytes
            next_offset = header.next_offset
        truncated = self.size - valid_bytes
        if truncated > 0:
            durability.truncate(self._file.fd, valid_bytes)
            self.size = valid_bytes
        self.next_offset = next_offset
        self.on_become_inactive()
        return truncated

    def _valid_batch_at(self, position: int, minimum_base_offset: int) -> BatchHeader | None:
        """The batch at ``position`` if it is whole and passes length, magic, CRC and offset checks."""
        if self.size - position < LOG_OVERHEAD:
            return None
        header = self.header_at(position)
        if header is None or header.magic != MAGIC_V2:
            return None
        if header.base_offset < minimum_base_offset or header.last_offset < header.base_offset:
            return None
        if not self.offset_index.can_append_offset(header.last_offset):
            return None
        if not crc_is_valid(self.read_bytes(position, header.size_in_bytes), 0):
            return None
        return header

    def truncate_to(self, offset: int, now_ms: int) -> int:
        """Rule 6: drop the batch holding ``offset`` and all later ones; returns the bytes removed."""
        location = self.translate_offset(offset)
        self.offset_index.truncate_to(offset)
        self.time_index.truncate_to(offset)
        if location is None:
            return 0
        truncated = self.size - location.position
        durability.truncate(self._file.fd, location.position)
        self.size = location.position
        if self.size == 0:
            self.created_ms = now_ms
            self._rolling_based_timestamp = None
        self._bytes_since_last_index_entry = 0
        last = self._last_batch_from(self.offset_index.lookup(offset).position)
        self.next_offset = last.header.next_offset if last else self.base_offset
        self.max_timestamp_and_offset = self._largest_timestamp_from(self.time_index.last_entry())
        return truncated

    def _largest_timestamp_from(self, indexed: TimestampOffset) -> TimestampOffset:
        """The largest timestamp: the last time index entry, unless a later batch is larger."""
        largest = indexed
        for location in self.batches_from(self.offset_index.lookup(indexed.offset).position):
            if location.header.max_timestamp > largest.timestamp:
                largest = TimestampOffset(location.header.max_timestamp, location.header.last_offset)
        return largest

    # -- time -------------------------------------------------------------------------------------------

    @property
    def largest_timestamp(self) -> int:
        """The largest batch timestamp, or the file's modification time if none (retention.ms uses it)."""
        if self.max_timestamp_and_offset.timestamp >= 0:
            return self.max_timestamp_and_offset.timestamp
        return int(os.stat(self.log_path).st_mtime * 1000)

    # -- durability and lifecycle --------------------------------------------------------------------------

    def flush(self) -> None:
        durability.fsync(self._file.fd)
        self.offset_index.flush()
        self.time_index.flush()

    def close(self) -> None:
        if not self._closed:
            self._file.close()
            self.offset_index.close()
            self.time_index.close()
            self._closed = True

    def delete(self) -> None:
        self.close()
        for suffix in files.SEGMENT_SUFFIXES:
            (self.directory / (files.filename_prefix(self.base_offset) + suffix)).unlink(missing_ok=True)

    def check_valid(self) -> None:
        """Assert the segment's invariants (see the module docstring); scans the whole file."""
        self.offset_index.check_valid()
        self.time_index.check_valid()
        starts: dict[int, BatchLocation] = {}
        expected_position, previous_next = 0, self.base_offset
        for location in self.batches_from(0):
            assert location.position == expected_position
            assert location.header.base_offset >= previous_next, f"offsets increase in segment {self.base_offset}"
            starts[location.position] = location
            expected_position, previous_next = location.end_position, location.header.next_offset
        assert expected_position == self.size, f"segment {self.base_offset} is whole batches ({expected_position} != {self.size})"
        assert previous_next == self.next_offset, f"segment {self.base_offset} next offset {self.next_offset} != {previous_next}"
        for n in range(self.offset_index.entries):
            entry = self.offset_index.entry(n)
            assert entry.position in starts, f"index entry {entry} points at a batch start"
            assert starts[entry.position].header.last_offset == entry.offset, f"index entry {entry} names its batch"
        if self.time_index.entries:
            assert self.time_index.last_entry().offset < max(self.next_offset, self.base_offset + 1)
