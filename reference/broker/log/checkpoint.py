"""Kafka's small text checkpoint files and the clean-shutdown marker.

Theory of operation
-------------------
Kafka keeps a few facts about its logs in plain text files (server-common ``CheckpointFile``)::

    <version>            one integer line, 0 for all the files here
    <count>              the number of entry lines that follow
    <entry>              one line per entry, fields separated by single spaces

Entries differ per file:

* ``leader-epoch-checkpoint`` (one per partition directory): ``<epoch> <start offset>``.
* ``recovery-point-offset-checkpoint``, ``log-start-offset-checkpoint`` (LogManager) and
  ``replication-offset-checkpoint`` (ReplicaManager's high watermarks), one each per log directory:
  ``<topic> <partition> <offset>``.

A write goes to ``<name>.tmp``, is fsynced, then renamed over the file, so a reader sees either the
old or the new checkpoint, never half of one.  A file that does not parse raises
:class:`CorruptCheckpointError` (Kafka raises an IOException and marks the log dir offline; the
caller decides).

The clean-shutdown marker ``.kafka_cleanshutdown`` sits in each log directory.  Kafka writes it after
flushing every log on a controlled shutdown and deletes it once the logs are loaded again; its
presence at start means no log needs recovery.  Kafka 3.7+ stores JSON in it
(``{"version":0,"brokerEpoch":N}``, KIP-966); so does refka.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from reference import durability
from reference.broker.log.files import TopicPartition

CHECKPOINT_VERSION = 0
RECOVERY_POINT_CHECKPOINT = "recovery-point-offset-checkpoint"
LOG_START_OFFSET_CHECKPOINT = "log-start-offset-checkpoint"
REPLICATION_OFFSET_CHECKPOINT = "replication-offset-checkpoint"  # high watermarks
CLEAN_SHUTDOWN_FILE = ".kafka_cleanshutdown"

Entry = TypeVar("Entry")


class CorruptCheckpointError(Exception):
    """A checkpoint file exists but does not follow the format."""


write_atomically = durability.write_atomically  # see reference.durability
fsync_directory = durability.fsync_directory  # make a rename or a new file in a directory durable


class CheckpointFile(Generic[Entry]):
    """Version line, count line, one formatted entry per line."""

    def __init__(
        self,
        path: Path,
        to_line: Callable[[Entry], str],
        from_fields: Callable[[list[str]], Entry],
        version: int = CHECKPOINT_VERSION,
    ) -> None:
        self.path = path
        self.version = version
        self._to_line = to_line
        self._from_fields = from_fields

    def write(self, entries: Iterable[Entry]) -> None:
        lines = [self._to_line(entry) for entry in entries]
        text = "\n".join([str(self.version), str(len(lines)), *lines]) + "\n"
        write_atomically(self.path, text.encode("utf-8"))

    def read(self) -> list[Entry]:
        """The entries; an absent or empty file reads as no entries, as in Kafka."""
        if not self.path.exists():
            return []
        lines = self.path.read_text("utf-8").splitlines()
        if not lines:
            return []
        try:
            version = int(lines[0])
            if version != self.version:
                raise CorruptCheckpointError(f"{self.path}: unrecognised version {version}, expected {self.version}")
            if len(lines) == 1:
                return []
            expected = int(lines[1])
            entries = [self._from_fields(line.split()) for line in lines[2:]]
        except (ValueError, IndexError) as error:
            raise CorruptCheckpointError(f"{self.path}: malformed line ({error})") from error
        if len(entries) != expected:
            raise CorruptCheckpointError(f"{self.path}: expected {expected} entries, found {len(entries)}")
        return entries


@dataclass(frozen=True, order=True)
class EpochEntry:
    """A leader epoch and the first offset written in it."""

    epoch: int
    start_offset: int


def _epoch_from_fields(fields: list[str]) -> EpochEntry:
    if len(fields) != 2:
        raise ValueError(f"expected 'epoch startOffset', got {fields}")
    return EpochEntry(int(fields[0]), int(fields[1]))


def leader_epoch_checkpoint(path: Path) -> CheckpointFile[EpochEntry]:
    """The ``leader-epoch-checkpoint`` file of a partition directory."""
    return CheckpointFile(path, lambda entry: f"{entry.epoch} {entry.start_offset}", _epoch_from_fields)


def _partition_offset_from_fields(fields: list[str]) -> tuple[TopicPartition, int]:
    if len(fields) != 3:
        raise ValueError(f"expected 'topic partition offset', got {fields}")
    return TopicPartition(fields[0], int(fields[1])), int(fields[2])


class OffsetCheckpointFile:
    """A per-log-dir ``topic partition offset`` checkpoint (recovery points, log start offsets, HWs)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: CheckpointFile[tuple[TopicPartition, int]] = CheckpointFile(
            path, lambda item: f"{item[0].topic} {item[0].partition} {item[1]}", _partition_offset_from_fields
        )

    def write(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._file.write(sorted(offsets.items()))

    def read(self) -> dict[TopicPartition, int]:
        return dict(self._file.read())


class CleanShutdownFile:
    """The ``.kafka_cleanshutdown`` marker of a log directory."""

    def __init__(self, log_dir: Path) -> None:
        self.path = log_dir / CLEAN_SHUTDOWN_FILE

    def write(self, broker_epoch: int = -1) -> None:
        write_atomically(self.path, json.dumps({"version": 0, "brokerEpoch": broker_epoch}).encode("utf-8"))

    def exists(self) -> bool:
        return self.path.exists()

    def read_broker_epoch(self) -> int | None:
        try:
            content = json.loads(self.path.read_text("utf-8"))
            return int(content["brokerEpoch"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)
