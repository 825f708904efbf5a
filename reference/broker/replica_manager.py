"""The partitions this broker hosts: opening their logs, appending, reading, replicating, housekeeping.

Theory of operation
-------------------
Mirrors what Kafka's ``ReplicaManager`` and ``LogManager`` do.  Two modes:

* **Single node** (no ``controller.quorum.voters`` nor ``controller.quorum.bootstrap.servers``,
  what every single-node test runs): every partition of every topic in the registry is a
  :class:`Partition` over a :class:`PartitionLog` in the broker's log directory
  (``<data-dir>/<topic>-<partition>``), led by this broker alone (replication factor 1, ISR
  {this broker}).  New topics and partitions get logs when the registry announces them; deleted
  topics lose them.  The leader epoch starts at 0 when a partition is created and is kept across
  restarts (the newest epoch in the partition's leader-epoch checkpoint).
* **Cluster** (a controller quorum configured): a partition exists here once the metadata names
  this broker among its replicas.  The node calls :meth:`apply_partition_state` for every change
  of leader, leader epoch, ISR or partition epoch (Kafka's ``applyDelta``): the log is created if
  needed, then the partition becomes leader (it stops being fetched) or follower (the
  :class:`~reference.broker.replica_fetcher.ReplicaFetcherManager` fetches it from the new leader
  when the leader epoch is new).  Leaders send their ISR changes to the controller named by the
  ``controller_id`` hook through the :class:`~reference.broker.alter_partition_manager.AlterPartitionManager`;
  ``broker_epoch`` is the epoch the controller gave this broker at registration.

Both modes share the rest:

* Appends from clients pass ``reference.records.validation`` first (offsets assigned in place or the
  batch rebuilt), then the partition (acks=all: NOT_ENOUGH_REPLICAS below ``min.insync.replicas``),
  the log (producer-state check, write) and the explicit high-watermark step.  After every append,
  parked fetches and acks=all produces watching that partition are checked; so they are whenever a
  partition's high watermark moves for another reason (a follower fetch, an ISR change) and when
  it stops leading.
* acks=all produces wait in ``produce_purgatory`` (Kafka's ``DelayedProduce``) until the HW passes
  their last offset, or their ``timeout_ms`` passes (REQUEST_TIMED_OUT); the broker's own appends
  (``append_internal``) can wait the same way through :meth:`await_replication`.
* Topic configs are resolved per partition from the topic's overrides and the broker defaults
  (``reference.broker.configs``); changing them reconfigures the logs.  ``min.insync.replicas`` is
  read again at every append.
* Housekeeping runs from :meth:`poll`: retention and producer-id expiry every
  ``log.retention.check.interval.ms`` (default 5 minutes), the compaction cleaner for compacted
  topics every ``log.cleaner.backoff.ms`` (default 15 s, unless ``log.cleaner.enable=false``), the
  log directory's checkpoint files every minute, the ISR shrink check every half
  ``replica.lag.time.max.ms`` (Kafka's ``isr-expiration`` task), the follower fetchers and the
  AlterPartition retries.

Invariants: a partition in the registry (single node) or assigned here by the metadata (cluster)
has exactly one open log here, and vice versa (in a cluster, once the metadata is applied: logs
found at startup wait for it); a partition this broker follows is fetched by
exactly one fetcher, the one of its leader, and a partition it leads by none.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..errors import ErrorCode, Errors, KafkaError
from ..records.batch import TimestampType, iter_batches
from ..records.compression import TopicCompressionType
from ..records.validation import RecordValidationConfig, ValidatedBatch, validate_produce
from .alter_partition_manager import AlterPartitionManager
from .configs import effective_topic_config, log_config_for
from .log.files import TopicPartition
from .log.log_manager import LogDirectory
from .log.producer_state import AppendOrigin
from .partition import Partition
from .pending import DelayedOperation, Pending, Purgatory
from .replica_fetcher import FetcherContext, InitialFetchState, ReplicaFetcherConfig, ReplicaFetcherManager

if TYPE_CHECKING:
    from .core import Broker
    from .log.log import LogAppendInfo
    from .topics import Topic

log = logging.getLogger("refka.broker.replicas")


def _no_controller() -> int | None:
    """The default ``controller_id`` hook: no controller known (single node)."""
    return None


class RequestClock:
    """The time of the request being handled: the core sets it, the logs read it (sans-IO)."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def milliseconds(self) -> int:
        return self.now_ms


@dataclass(frozen=True, slots=True)
class _TopicSettings:
    """A topic's effective configs and what the produce path derives from them, with the config
    layers they were resolved from (:meth:`ReplicaManager._topic_settings`)."""

    layers: tuple[tuple[tuple[str, str], ...], ...]
    effective: dict[str, str]
    validation: RecordValidationConfig
    min_insync_replicas: int
    per_partition: dict[int, RecordValidationConfig] = field(default_factory=dict)  # validation_config's

    @classmethod
    def resolve(cls, layers: tuple[tuple[tuple[str, str], ...], ...], config: dict[str, str]) -> _TopicSettings:
        validation = RecordValidationConfig(
            compression_type=TopicCompressionType(config["compression.type"]),
            compacted="compact" in config["cleanup.policy"],
            message_timestamp_type=TimestampType.from_config(config["message.timestamp.type"]),
            message_timestamp_before_max_ms=int(config["message.timestamp.before.max.ms"]),
            message_timestamp_after_max_ms=int(config["message.timestamp.after.max.ms"]),
            max_message_bytes=int(config["max.message.bytes"]),
            segment_bytes=int(config["segment.bytes"]),
        )
        return cls(layers, config, validation, int(config["min.insync.replicas"]))


class ReplicaManager:
    def __init__(self, broker: Broker, now_ms: int) -> None:
        self.broker = broker
        self._settings: dict[str, _TopicSettings] = {}  # topic -> resolved configs (see _topic_settings)
        self.clock = RequestClock(now_ms)
        self.directory = LogDirectory.open(broker.data_dir, self.clock, self._log_config)
        self.replicas: dict[TopicPartition, Partition] = {}
        self.cluster_mode = bool(broker.config.get("controller.quorum.voters")
                                 or broker.config.get("controller.quorum.bootstrap.servers"))
        self.broker_epoch = -1  # set by the node once the controller registered this broker
        self.controller_id: Callable[[], int | None] = _no_controller  # where AlterPartition goes
        # Whether a broker may be in an ISR (registered, unfenced, not shutting down); the node sets it.
        self.replica_eligible: Callable[[int], bool] = lambda broker_id: True
        self.produce_purgatory = Purgatory()  # acks=all produces waiting for the high watermark
        self.alter_partition = AlterPartitionManager(
            broker.node_id, lambda: self.broker_epoch, lambda: self.controller_id(), broker.outbox, self._topic_id)
        self.fetchers = ReplicaFetcherManager(FetcherContext(
            replica_id=broker.node_id, broker_epoch=lambda: self.broker_epoch, outbox=broker.outbox,
            partition=self.replicas.get, topic_id=self._topic_id, topic_name=self._topic_name,
            config=ReplicaFetcherConfig.from_broker_config(broker.config),
        ))
        if not self.cluster_mode:
            for topic in broker.topics:
                self._open_topic(topic)
            for orphan in set(self.directory.logs) - set(self.replicas):
                self.directory.delete_log(orphan)  # a topic deleted while the broker was down
        broker.topics.subscribe(self._on_topic_event)
        self._next_retention_check = now_ms
        self._next_producer_expiration = now_ms + self.broker.config.get_int("producer.id.expiration.check.interval.ms")
        self._next_cleaning = now_ms
        self._next_checkpoint = now_ms
        self._next_isr_expiration = now_ms + self._replica_lag_time_max_ms() // 2

    # -- partitions --------------------------------------------------------------------------------

    def get(self, topic: str, partition: int) -> Partition | None:
        return self.replicas.get(TopicPartition(topic, partition))

    def require(self, topic: str, partition: int) -> Partition:
        """The local replica; NOT_LEADER_OR_FOLLOWER for a partition of a known topic that this broker
        holds no replica of (Kafka's ``getPartitionOrError``), else UNKNOWN_TOPIC_OR_PARTITION."""
        replica = self.get(topic, partition)
        if replica is None:
            registered = self.broker.topics.get(topic)
            if registered is not None and 0 <= partition < registered.partitions:
                raise KafkaError(Errors.NOT_LEADER_OR_FOLLOWER,
                                 f"Broker {self.broker.node_id} holds no replica of {topic}-{partition}")
            raise KafkaError(Errors.UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic-partition.")
        return replica

    def _log_config(self, topic_partition: TopicPartition):  # type: ignore[no-untyped-def]
        topic = self.broker.topics.get(topic_partition.topic)
        return log_config_for(self.broker.config, topic.configs if topic else {})

    def topic_config(self, topic: str) -> dict[str, str]:
        return dict(self._topic_settings(topic).effective)

    def _topic_settings(self, topic: str) -> _TopicSettings:
        """The topic's resolved configs, computed again only when a layer they come from changed
        (the topic's overrides, the broker's dynamic and static configs): every Produce reads them."""
        registered = self.broker.topics.get(topic)
        overrides = registered.configs if registered else {}
        config = self.broker.config
        layers = (tuple(overrides.items()), tuple(config.dynamic_broker.items()),
                  tuple(config.dynamic_default.items()), tuple(config.static.items()))
        cached = self._settings.get(topic)
        if cached is None or cached.layers != layers:
            cached = _TopicSettings.resolve(layers, effective_topic_config(config, overrides))
            self._settings[topic] = cached
        return cached

    def _topic_id(self, topic: str) -> uuid.UUID | None:
        registered = self.broker.topics.get(topic)
        return registered.topic_id if registered is not None else None

    def _topic_name(self, topic_id: uuid.UUID) -> str | None:
        registered = self.broker.topics.by_id(topic_id)
        return registered.name if registered is not None else None

    def _replica_lag_time_max_ms(self) -> int:
        return self.broker.config.get_long("replica.lag.time.max.ms")

    def _new_partition(self, topic_partition: TopicPartition) -> Partition:
        """The Partition of ``topic_partition`` over its (possibly new) log, wired to this broker."""
        replica = Partition(self.directory.get_or_create_log(topic_partition), self.broker.node_id)
        replica.replica_lag_time_max_ms = self._replica_lag_time_max_ms()
        replica.delayed_operations = lambda: self._complete_delayed_requests(topic_partition)
        self._refresh_min_insync_replicas(replica)
        if self.cluster_mode:
            replica.alter_partition = self.alter_partition
            replica.replica_eligible = lambda broker_id: self.replica_eligible(broker_id)
        self.replicas[topic_partition] = replica
        return replica

    def _refresh_min_insync_replicas(self, replica: Partition) -> None:
        replica.min_insync_replicas = self._topic_settings(replica.log.topic_partition.topic).min_insync_replicas

    def _complete_delayed_requests(self, topic_partition: TopicPartition) -> None:
        """The HW moved or leadership changed: parked fetches, acks=all produces and the group
        coordinator's writes waiting for replication may complete."""
        self.broker.fetch_purgatory.check(topic_partition, self.clock.now_ms)
        self.produce_purgatory.check(topic_partition, self.clock.now_ms)
        groups = getattr(self.broker, "groups", None)  # None while the broker is being built
        if groups is not None:
            groups.on_partition_change(topic_partition, self.clock.now_ms)

    def _open_topic(self, topic: Topic) -> None:
        """Single node: lead every partition of ``topic`` (RF 1), keeping the newest cached epoch."""
        for index in range(topic.partitions):
            topic_partition = TopicPartition(topic.name, index)
            if topic_partition in self.replicas:
                continue
            replica = self._new_partition(topic_partition)
            epoch = replica.log.latest_epoch
            replica.make_leader(epoch if epoch is not None else 0, now_ms=self.clock.now_ms)

    def _on_topic_event(self, event: str, topic: Topic) -> None:
        if event in ("created", "partitions"):
            if not self.cluster_mode:  # in a cluster the metadata says which partitions are ours
                self._open_topic(topic)
        elif event == "deleted":
            for topic_partition in [tp for tp in self.replicas if tp.topic == topic.name]:
                self.fetchers.remove_fetcher_for_partitions([topic_partition])
                del self.replicas[topic_partition]
                self.directory.delete_log(topic_partition)
        elif event == "configs":
            config = log_config_for(self.broker.config, topic.configs)
            for topic_partition, replica in self.replicas.items():
                if topic_partition.topic == topic.name:
                    replica.log.config = config
                    self._refresh_min_insync_replicas(replica)

    # -- metadata (cluster mode) -------------------------------------------------------------------

    def apply_partition_state(
        self,
        topic: str,
        partition: int,
        replicas: list[int],
        isr: list[int],
        leader: int,
        leader_epoch: int,
        partition_epoch: int,
        now_ms: int,
    ) -> Partition | None:
        """The metadata changed one partition: lead it, follow ``leader``, or drop it.

        ``leader`` -1 means no leader (the follower stops fetching).  A replica set without this
        broker deletes the local replica (Kafka deletes a partition reassigned away).  Returns the
        partition, or None once it is not hosted here."""
        self.clock.now_ms = now_ms
        topic_partition = TopicPartition(topic, partition)
        node_id = self.broker.node_id
        if node_id not in replicas:
            self.fetchers.remove_fetcher_for_partitions([topic_partition])
            dropped = self.replicas.get(topic_partition)
            if dropped is not None:  # waiting produces learn NOT_LEADER_OR_FOLLOWER first
                dropped.make_follower(leader_epoch, leader, list(replicas), partition_epoch, now_ms)
                del self.replicas[topic_partition]
                self.directory.delete_log(topic_partition)
            return None
        replica = self.replicas.get(topic_partition) or self._new_partition(topic_partition)
        if partition_epoch < replica.partition_epoch:
            return replica  # older than what an AlterPartition answer already told us
        self._refresh_min_insync_replicas(replica)
        if leader == node_id:
            self.fetchers.remove_fetcher_for_partitions([topic_partition])
            replica.make_leader(leader_epoch, set(isr), list(replicas), partition_epoch, now_ms)
            return replica
        was_fetching = self.fetchers.fetch_state(topic_partition) is not None
        new_epoch = replica.make_follower(leader_epoch, leader if leader >= 0 else None, list(replicas),
                                          partition_epoch, now_ms)
        if leader < 0:
            self.fetchers.remove_fetcher_for_partitions([topic_partition])
        elif new_epoch or not was_fetching:
            self.fetchers.add_fetcher_for_partition(
                topic_partition, InitialFetchState(leader, leader_epoch), replica, now_ms)
        return replica

    # -- appends -----------------------------------------------------------------------------------

    def validation_config(self, topic: str, partition: int) -> RecordValidationConfig:
        """The topic's validation config naming ``<topic>-<partition>`` (LogValidator's record errors
        do), made once per partition and kept with the resolved settings it derives from."""
        settings = self._topic_settings(topic)
        config = settings.per_partition.get(partition)
        if config is None:
            config = settings.per_partition[partition] = replace(settings.validation,
                                                                 topic_partition=f"{topic}-{partition}")
        return config

    def check_append_allowed(self, topic: str, partition: int, required_acks: int) -> Partition:
        """The partition, if a Produce with ``required_acks`` may append to it here (raises
        UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS)."""
        replica = self.require(topic, partition)
        self._refresh_min_insync_replicas(replica)
        replica.check_append_allowed(required_acks)
        return replica

    def append_from_client(
        self, topic: str, partition: int, records: bytes | bytearray | memoryview, produce_version: int, now_ms: int,
        required_acks: int = 1,
    ) -> tuple[ValidatedBatch, LogAppendInfo]:
        """Validate and append one partition's records of a Produce request (raises KafkaError:
        NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS for acks=all, then validation errors).

        Writable ``records`` (a view of the request frame) are validated and given their offsets
        in place, so the caller hands them over; read-only ones are copied first."""
        self.clock.now_ms = now_ms
        replica = self.check_append_allowed(topic, partition, required_acks)
        validated = validate_produce(
            records, produce_version=produce_version,
            config=self.validation_config(topic, partition),
            log_end_offset=replica.log_end_offset, partition_leader_epoch=replica.leader_epoch, now_ms=now_ms,
        )
        info = replica.append_records_to_leader(validated.records, required_acks=required_acks)
        self._complete_delayed_requests(TopicPartition(topic, partition))
        return validated, info

    def append_internal(self, topic: str, partition: int, batch: bytes, now_ms: int) -> LogAppendInfo:
        """Append a batch the broker itself wrote (``__consumer_offsets``): no client validation."""
        self.clock.now_ms = now_ms
        replica = self.require(topic, partition)
        info = replica.append_records_to_leader(bytearray(batch), AppendOrigin.COORDINATOR)
        self._complete_delayed_requests(TopicPartition(topic, partition))
        return info

    def await_replication(self, topic: str, partition: int, required_offset: int, timeout_ms: int,
                          now_ms: int) -> Pending:
        """A Pending completed with an ``ErrorCode`` once the HW reaches ``required_offset`` (NONE,
        or NOT_ENOUGH_REPLICAS_AFTER_APPEND), leadership is lost (NOT_LEADER_OR_FOLLOWER) or
        ``timeout_ms`` passes (REQUEST_TIMED_OUT): acks=all for the broker's own appends, e.g. the
        group coordinator's offset commits (Kafka appends those with acks=-1 too)."""
        topic_partition = TopicPartition(topic, partition)

        def attempt(now: int, expired: bool) -> ErrorCode | None:
            replica = self.replicas.get(topic_partition)
            if replica is None:
                return Errors.UNKNOWN_TOPIC_OR_PARTITION
            reached, error = replica.check_enough_replicas_reach_offset(required_offset)
            if reached or error != Errors.NONE:
                return error
            return Errors.REQUEST_TIMED_OUT if expired else None

        return self.produce_purgatory.park(DelayedOperation(now_ms + timeout_ms, attempt, [topic_partition]), now_ms)

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
        if now_ms >= self._next_producer_expiration:  # Kafka's PeriodicProducerExpirationCheck
            self._next_producer_expiration = now_ms + self.broker.config.get_int(
                "producer.id.expiration.check.interval.ms")
            for replica in list(self.replicas.values()):
                replica.log.remove_expired_producers()
        if now_ms >= self._next_cleaning and self.broker.config.get_bool("log.cleaner.enable"):
            self._next_cleaning = now_ms + self.broker.config.get_int("log.cleaner.backoff.ms")
            for replica in list(self.replicas.values()):
                if replica.log.config.compact_enabled:
                    self._clean(replica)
        if now_ms >= self._next_checkpoint:
            self._next_checkpoint = now_ms + 60_000
            self.directory.write_checkpoints()
        self.produce_purgatory.expire(now_ms)
        if now_ms >= self._next_isr_expiration:
            self._next_isr_expiration = now_ms + self._replica_lag_time_max_ms() // 2
            self.maybe_shrink_isrs(now_ms)
        self.alter_partition.poll(now_ms)
        self.fetchers.poll(now_ms)

    def maybe_shrink_isrs(self, now_ms: int) -> None:
        """Kafka's ``isr-expiration`` task: leaders drop followers lagging ``replica.lag.time.max.ms``."""
        for replica in list(self.replicas.values()):
            if replica.is_leader:
                replica.maybe_shrink_isr(now_ms)

    def _clean(self, replica: Partition) -> None:
        from .log.cleaner import clean_log

        try:
            clean_log(replica.log)
        except Exception:  # the cleaner must never take the broker down
            log.exception("log cleaner failed for %s", replica.log.topic_partition)

    def next_deadline(self) -> int | None:
        deadlines = [self._next_retention_check, self._next_producer_expiration, self._next_cleaning,
                     self._next_checkpoint]
        if self.cluster_mode:
            deadlines.append(self._next_isr_expiration)
        for other in (self.produce_purgatory.next_deadline(), self.alter_partition.next_deadline(),
                      self.fetchers.next_deadline()):
            if other is not None:
                deadlines.append(other)
        return min(deadlines)

    def shutdown(self) -> None:
        """Close every log; the clean-shutdown marker keeps the broker epoch (KIP-966)."""
        self.directory.shutdown(self.broker_epoch)
