"""The partitions this broker hosts: opening their logs, appending, reading, and housekeeping.

Theory of operation
-------------------
Mirrors what Kafka's ``ReplicaManager`` and ``LogManager`` do for a broker that leads all of its
partitions (one node):

* Every partition of every topic in the registry is a :class:`Partition` over a
  :class:`PartitionLog` in the broker's log directory (``<data-dir>/<topic>-<partition>``).  New
  topics and partitions get logs when the registry announces them; deleted topics lose them.
* On one node this broker leads every partition.  The leader epoch starts at 0 when a partition is
  created and is kept across restarts (it is the newest epoch in the partition's leader-epoch
  checkpoint), since no other replica can have taken over.
* Appends from clients pass ``reference.records.validation`` first (offsets assigned in place or the
  batch rebuilt), then the log (producer-state check, write) and the explicit high-watermark step.
  After every append, parked fetches watching that partition are checked.
* Topic configs are resolved per partition from the topic's overrides and the broker defaults
  (``reference.broker.configs``); changing them reconfigures the logs.
* Housekeeping runs from :meth:`poll`: retention and producer-id expiry every
  ``log.retention.check.interval.ms`` (default 5 minutes), the compaction cleaner for compacted
  topics every ``log.cleaner.backoff.ms`` (default 15 s, unless ``log.cleaner.enable=false``), and
  the log directory's checkpoint files every minute.

Invariant: a partition in the registry has exactly one open log here, and vice versa.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..errors import Errors, KafkaError
from ..records.batch import TimestampType, iter_batches
from ..records.compression import TopicCompressionType
from ..records.validation import RecordValidationConfig, ValidatedBatch, validate_produce
from .configs import effective_topic_config, log_config_for
from .log.files import TopicPartition
from .log.log_manager import LogDirectory
from .log.producer_state import AppendOrigin
from .partition import Partition

if TYPE_CHECKING:
    from .core import Broker
    from .log.log import LogAppendInfo
    from .topics import Topic

log = logging.getLogger("refka.broker.replicas")


class RequestClock:
    """The time of the request being handled: the core sets it, the logs read it (sans-IO)."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def milliseconds(self) -> int:
        return self.now_ms


class ReplicaManager:
    def __init__(self, broker: Broker, now_ms: int) -> None:
        self.broker = broker
        self.clock = RequestClock(now_ms)
        self.directory = LogDirectory.open(broker.data_dir, self.clock, self._log_config)
        self.replicas: dict[TopicPartition, Partition] = {}
        for topic in broker.topics:
            self._open_topic(topic)
        for orphan in set(self.directory.logs) - set(self.replicas):
            self.directory.delete_log(orphan)  # a topic deleted while the broker was down
        broker.topics.subscribe(self._on_topic_event)
        self._next_retention_check = now_ms
        self._next_cleaning = now_ms
        self._next_checkpoint = now_ms

    # -- partitions --------------------------------------------------------------------------------

    def get(self, topic: str, partition: int) -> Partition | None:
        return self.replicas.get(TopicPartition(topic, partition))

    def require(self, topic: str, partition: int) -> Partition:
        replica = self.get(topic, partition)
        if replica is None:
            raise KafkaError(Errors.UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic-partition.")
        return replica

    def _log_config(self, topic_partition: TopicPartition):  # type: ignore[no-untyped-def]
        topic = self.broker.topics.get(topic_partition.topic)
        return log_config_for(self.broker.config, topic.configs if topic else {})

    def topic_config(self, topic: str) -> dict[str, str]:
        registered = self.broker.topics.get(topic)
        return effective_topic_config(self.broker.config, registered.configs if registered else {})

    def _open_topic(self, topic: Topic) -> None:
        for index in range(topic.partitions):
            topic_partition = TopicPartition(topic.name, index)
            if topic_partition in self.replicas:
                continue
            partition_log = self.directory.get_or_create_log(topic_partition)
            replica = Partition(partition_log, self.broker.node_id)
            epoch = partition_log.latest_epoch
            replica.make_leader(epoch if epoch is not None else 0)
            self.replicas[topic_partition] = replica

    def _on_topic_event(self, event: str, topic: Topic) -> None:
        if event in ("created", "partitions"):
            self._open_topic(topic)
        elif event == "deleted":
            for topic_partition in [tp for tp in self.replicas if tp.topic == topic.name]:
                del self.replicas[topic_partition]
                self.directory.delete_log(topic_partition)
        elif event == "configs":
            config = log_config_for(self.broker.config, topic.configs)
            for topic_partition, replica in self.replicas.items():
                if topic_partition.topic == topic.name:
                    replica.log.config = config

    # -- appends -----------------------------------------------------------------------------------

    def validation_config(self, topic: str) -> RecordValidationConfig:
        config = self.topic_config(topic)
        return RecordValidationConfig(
            compression_type=TopicCompressionType(config["compression.type"]),
            compacted="compact" in config["cleanup.policy"],
            message_timestamp_type=TimestampType.from_config(config["message.timestamp.type"]),
            message_timestamp_before_max_ms=int(config["message.timestamp.before.max.ms"]),
            message_timestamp_after_max_ms=int(config["message.timestamp.after.max.ms"]),
            max_message_bytes=int(config["max.message.bytes"]),
            segment_bytes=int(config["segment.bytes"]),
        )

    def append_from_client(
        self, topic: str, partition: int, records: bytes, produce_version: int, now_ms: int
    ) -> tuple[ValidatedBatch, LogAppendInfo]:
        """Validate and append one partition's records of a Produce request (raises KafkaError)."""
        self.clock.now_ms = now_ms
        replica = self.require(topic, partition)
        validated = validate_produce(
            bytearray(records), produce_version=produce_version, config=self.validation_config(topic),
            log_end_offset=replica.log_end_offset, partition_leader_epoch=replica.leader_epoch, now_ms=now_ms,
        )
        info = replica.append_records_to_leader(bytearray(validated.records))
        self.broker.fetch_purgatory.check(TopicPartition(topic, partition), now_ms)
        return validated, info

    def append_internal(self, topic: str, partition: int, batch: bytes, now_ms: int) -> LogAppendInfo:
        """Append a batch the broker itself wrote (``__consumer_offsets``): no client validation."""
        self.clock.now_ms = now_ms
        replica = self.require(topic, partition)
        info = replica.append_records_to_leader(bytearray(batch), AppendOrigin.COORDINATOR)
        self.broker.fetch_purgatory.check(TopicPartition(topic, partition), now_ms)
        return info

    def read_all(self, topic: str, partition: int) -> Iterator[bytes]:
        """Every stored batch of a partition, oldest first, in chunks (for replaying internal topics)."""
        replica = self.require(topic, partition)
        offset = replica.log_start_offset
        while offset < replica.log_end_offset:
            data = replica.log.read(offset, 1 << 20, replica.log_end_offset, True)
            if not data.records:
                return
            yield data.records
            last = offset
            for _, header in iter_batches(data.records, allow_partial_tail=True):
                last = header.next_offset
            if last <= offset:
                return
            offset = last

    # -- housekeeping ------------------------------------------------------------------------------

    def poll(self, now_ms: int) -> None:
        self.clock.now_ms = now_ms
        if now_ms >= self._next_retention_check:
            self._next_retention_check = now_ms + self.broker.config.get_int("log.retention.check.interval.ms")
            for replica in list(self.replicas.values()):
                replica.log.delete_old_segments()
                replica.log.remove_expired_producers()
        if now_ms >= self._next_cleaning and self.broker.config.get_bool("log.cleaner.enable"):
            self._next_cleaning = now_ms + self.broker.config.get_int("log.cleaner.backoff.ms")
            for replica in list(self.replicas.values()):
                if replica.log.config.compact_enabled:
                    self._clean(replica)
        if now_ms >= self._next_checkpoint:
            self._next_checkpoint = now_ms + 60_000
            self.directory.write_checkpoints()

    def _clean(self, replica: Partition) -> None:
        from .log.cleaner import clean_log

        try:
            clean_log(replica.log)
        except Exception:  # the cleaner must never take the broker down
            log.exception("log cleaner failed for %s", replica.log.topic_partition)

    def next_deadline(self) -> int | None:
        return min(self._next_retention_check, self._next_cleaning, self._next_checkpoint)

    def shutdown(self) -> None:
        self.directory.shutdown()
