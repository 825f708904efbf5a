"""File names inside a log directory, as Kafka's ``LogFileUtils`` spells them.

A log directory (``log.dirs``) holds one directory per partition, named ``<topic>-<partition>``.
Inside it every file that belongs to a segment is named by the segment's base offset written as
20 zero-padded decimal digits::

    00000000000000000000.log          record batches, offsets assigned, exactly as appended
    00000000000000000000.index        sparse offset index: int32 relative offset, int32 position
    00000000000000000000.timeindex    sparse time index: int64 timestamp, int32 relative offset
    00000000000000001234.snapshot     producer-state snapshot taken at offset 1234
    leader-epoch-checkpoint           epoch -> start offset, Kafka's text checkpoint format

Suffixes appended to those names mark files in flight: ``.cleaned`` (a compacted segment being
written), ``.swap`` (a compacted segment complete and about to replace the original), ``.deleted``
(Kafka's asynchronous delete; refka deletes synchronously and only removes leftovers).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
SNAPSHOT_SUFFIX = ".snapshot"
TXN_INDEX_SUFFIX = ".txnindex"  # aborted transactions whose marker is in the segment (txn_index)
CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
DELETED_SUFFIX = ".deleted"
LEADER_EPOCH_CHECKPOINT = "leader-epoch-checkpoint"

SEGMENT_SUFFIXES = (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX)


@dataclass(frozen=True, order=True)
class TopicPartition:
    """A partition of a topic; its directory name is ``<topic>-<partition>``."""

    topic: str
    partition: int

    @property
    def directory_name(self) -> str:
        return f"{self.topic}-{self.partition}"

    @classmethod
    def from_directory_name(cls, name: str) -> TopicPartition:
        """Parse ``orders-3``; topic names may themselves contain ``-``, the partition is after the last."""
        topic, sep, partition = name.rpartition("-")
        if not sep or not topic or not partition.isdigit():
            raise ValueError(f"not a partition directory name: {name!r}")
        return cls(topic, int(partition))

    def __str__(self) -> str:
        return self.directory_name


def filename_prefix(offset: int) -> str:
    """The 20-digit zero-padded decimal form Kafka uses for segment and snapshot file names."""
    return f"{offset:020d}"


def log_file(directory: Path, base_offset: int) -> Path:
    return directory / (filename_prefix(base_offset) + LOG_SUFFIX)


def index_file(directory: Path, base_offset: int) -> Path:
    return directory / (filename_prefix(base_offset) + INDEX_SUFFIX)


def time_index_file(directory: Path, base_offset: int) -> Path:
    return directory / (filename_prefix(base_offset) + TIME_INDEX_SUFFIX)


def txn_index_file(directory: Path, base_offset: int) -> Path:
    return directory / (filename_prefix(base_offset) + TXN_INDEX_SUFFIX)


def snapshot_file(directory: Path, offset: int) -> Path:
    return directory / (filename_prefix(offset) + SNAPSHOT_SUFFIX)


def offset_from_file(path: Path) -> int:
    """The offset a segment or snapshot file is named after (``00000000000000000042.log`` -> 42)."""
    return int(path.name.split(".", 1)[0])


def is_offset_named(path: Path, suffix: str) -> bool:
    """True for ``<20 digits><suffix>`` exactly."""
    stem, dot, rest = path.name.partition(".")
    return len(stem) == 20 and stem.isdigit() and dot == "." and "." + rest == suffix
