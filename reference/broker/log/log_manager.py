"""A log directory (``log.dirs``): every partition log in it, its checkpoints and shutdown marker.

Theory of operation
-------------------
Mirrors the parts of Kafka's ``LogManager`` and ``ReplicaManager`` that touch the disk.  A log
directory holds one sub-directory per partition and four files about all of them:

* ``recovery-point-offset-checkpoint`` -- per partition, the offset below which the log is fsynced;
  recovery after a crash validates only from there on.
* ``log-start-offset-checkpoint`` -- per partition, the log start offset (it can be above the first
  segment's base offset after DeleteRecords).
* ``replication-offset-checkpoint`` -- per partition, the high watermark (ReplicaManager's file).
* ``.kafka_cleanshutdown`` -- present only after a clean shutdown.

Start (:meth:`LogDirectory.open`): note whether the marker is there, read the checkpoints (a corrupt
checkpoint reads as empty: every log is then recovered from offset 0, which is slow but safe), open
every partition log (recovering those that need it), then delete the marker, so that a crash from
now on is recognised as unclean.  Clean shutdown (:meth:`LogDirectory.shutdown`): close (snapshot,
flush) every log, write the three checkpoints, write the marker last.  The broker should also call
:meth:`write_checkpoints` periodically (Kafka: ``log.flush.offset.checkpoint.interval.ms``,
``replica.high.watermark.checkpoint.interval.ms``).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from pathlib import Path

from reference.broker.log import dir_failure
from reference.broker.log.checkpoint import (
    LOG_START_OFFSET_CHECKPOINT,
    RECOVERY_POINT_CHECKPOINT,
    REPLICATION_OFFSET_CHECKPOINT,
    CleanShutdownFile,
    CorruptCheckpointError,
    OffsetCheckpointFile,
)
from reference.broker.log.clock import Clock
from reference.broker.log.config import LogConfig
from reference.broker.log.files import TopicPartition
from reference.broker.log.log import PartitionLog

METADATA_TOPIC = "__cluster_metadata"


def _read_or_empty(checkpoint: OffsetCheckpointFile) -> dict[TopicPartition, int]:
    try:
        return checkpoint.read()
    except CorruptCheckpointError:
        return {}


class LogDirectory:
    """The partition logs of one log directory."""

    def __init__(self, path: Path, clock: Clock, config_for: Callable[[TopicPartition], LogConfig]) -> None:
        self.path = path
        self.clock = clock
        self.config_for = config_for
        self.logs: dict[TopicPartition, PartitionLog] = {}
        self.had_clean_shutdown = False
        self.previous_broker_epoch = -1
        self.recovery_points = OffsetCheckpointFile(path / RECOVERY_POINT_CHECKPOINT)
        self.log_start_offsets = OffsetCheckpointFile(path / LOG_START_OFFSET_CHECKPOINT)
        self.high_watermarks = OffsetCheckpointFile(path / REPLICATION_OFFSET_CHECKPOINT)
        self.clean_shutdown_file = CleanShutdownFile(path)

    @classmethod
    def open(
        cls, path: Path, clock: Clock, config_for: Callable[[TopicPartition], LogConfig] | None = None
    ) -> LogDirectory:
        """Load every partition log under ``path`` (creating ``path`` if needed)."""
        path.mkdir(parents=True, exist_ok=True)
        dir_failure.mark_online(path)  # an offline directory comes back on restart, recovered below
        directory = cls(path, clock, config_for or (lambda _: LogConfig()))
        directory.had_clean_shutdown = directory.clean_shutdown_file.exists()
        # KIP-966: the broker epoch a clean shutdown wrote; the broker registers with it, so the
        # controller keeps it in the ELR (an unclean restart, -1, is taken out: its tail may be lost).
        directory.previous_broker_epoch = (directory.clean_shutdown_file.read_broker_epoch() or -1
                                           if directory.had_clean_shutdown else -1)
        recovery_points = _read_or_empty(directory.recovery_points)
        log_starts = _read_or_empty(directory.log_start_offsets)
        high_watermarks = _read_or_empty(directory.high_watermarks)
        for child in sorted(path.iterdir()):
            try:
                topic_partition = TopicPartition.from_directory_name(child.name)
            except ValueError:
                continue
            if not child.is_dir() or topic_partition.topic == METADATA_TOPIC:
                continue  # the KRaft metadata log belongs to the Raft layer (reference.controller.raft)
            directory.logs[topic_partition] = PartitionLog.open(
                child,
                directory.config_for(topic_partition),
                clock,
                recovery_point=recovery_points.get(topic_partition, 0),
                log_start_offset=log_starts.get(topic_partition, 0),
                high_watermark=high_watermarks.get(topic_partition),
                had_clean_shutdown=directory.had_clean_shutdown,
            )
        directory.clean_shutdown_file.delete()
        return directory

    def get_or_create_log(self, topic_partition: TopicPartition, config: LogConfig | None = None) -> PartitionLog:
        log = self.logs.get(topic_partition)
        if log is None:
            log = PartitionLog.open(
                self.path / topic_partition.directory_name,
                config or self.config_for(topic_partition),
                self.clock,
                had_clean_shutdown=True,
            )
            self.logs[topic_partition] = log
        return log

    def delete_log(self, topic_partition: TopicPartition) -> None:
        """Remove a partition's log and its directory (DeleteTopics)."""
        log = self.logs.pop(topic_partition, None)
        if log is not None:
            log.close_without_flush()
            shutil.rmtree(log.directory, ignore_errors=True)
        self.write_checkpoints()

    def write_checkpoints(self) -> None:
        self.recovery_points.write({tp: log.recovery_point for tp, log in self.logs.items()})
        self.log_start_offsets.write({tp: log.log_start_offset for tp, log in self.logs.items()})
        self.high_watermarks.write({tp: log.high_watermark for tp, log in self.logs.items()})

    def shutdown(self, broker_epoch: int = -1) -> None:
        """Clean shutdown: close every log, checkpoint, then write ``.kafka_cleanshutdown``.
        An offline directory (:mod:`.dir_failure`) is closed without either: it is recovered on restart."""
        if dir_failure.is_offline(self.path):
            for log in self.logs.values():
                with contextlib.suppress(OSError):
                    log.close()
            return
        for log in self.logs.values():
            log.close()
        self.write_checkpoints()
        self.clean_shutdown_file.write(broker_epoch)
