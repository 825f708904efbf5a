"""The group coordinator's place in the broker: its log, its clock, its partitions, its commits.

Theory of operation
-------------------
The classic-protocol coordinator itself (``reference.broker.group``) is sans-IO: it takes requests
with the time, and hands every state change to a writer as ``__consumer_offsets`` records.  This
service connects it to the broker the way Kafka's ``GroupCoordinatorService`` and
``CoordinatorRuntime`` do:

* ``__consumer_offsets`` is an ordinary compacted topic with ``offsets.topic.num.partitions``
  partitions (default 50).  A group lives in partition ``abs(java_hash(group_id)) % partitions``,
  and its coordinator is that partition's leader.
* **Where the topic lives** is the one thing that differs between one node and a cluster, and it
  is injected as an :class:`OffsetsTopicPlacement`:

  - ``None`` (one node, the default): the topic is created here the first time a client looks
    for a coordinator (FindCoordinator), this broker leads every partition, and on start the
    service replays every partition of the topic into the coordinator.
  - a placement (a KRaft cluster; a broker with ``process.roles`` gets :func:`kraft_placement`
    unless one is passed): ``leader_of(partition)`` names the leader's endpoint, or None
    while there is none; ``ensure_offsets_topic(partitions, replication_factor, now_ms)`` asks for
    the topic (``offsets.topic.replication.factor``, default 3) and may finish later.  Until it
    exists and the partition has a leader, FindCoordinator answers COORDINATOR_NOT_AVAILABLE
    (15), as Kafka's ``KafkaApis.getCoordinator``.  The coordinator owns no partition until the
    integration calls :meth:`GroupService.on_became_leader` (load the partition's log; requests
    meanwhile get COORDINATOR_LOAD_IN_PROGRESS) and :meth:`GroupService.on_resigned` (unload; its
    requests get NOT_COORDINATOR).

* **Writes answer when committed.**  Each batch of records the coordinator emits is appended to
  its partition as one record batch; the writer returns a ``WriteCompletion`` that
  :class:`HighWatermarkWatchers` completes when the partition's high watermark reaches the end of
  the batch (Kafka's deferred event queue).  The leader's own high watermark is read after every
  append, so on one node -- where the high watermark moves with every append -- each write is
  committed before the append returns and answers are given at once, as before.  In a cluster the
  replica side reports progress with :meth:`HighWatermarkWatchers.on_high_watermark`.
  A write that is refused (``NOT_LEADER_OR_FOLLOWER``, ``NOT_ENOUGH_REPLICAS``), outlived by the
  leadership (NOT_COORDINATOR) or not committed within ``offsets.commit.timeout.ms``
  (REQUEST_TIMED_OUT) fails; clients see Kafka's mapping of that error
  (``reference.broker.group.completion``).
* Request handlers that write ask :meth:`GroupService.when_committed` after calling the
  coordinator: it completes once everything written so far to the group's partition is
  committed (Kafka answers every write operation, even one that wrote nothing, at the partition's
  last written offset), or with the error an append of this request met.
* Topic deletions are passed on: the offsets of a deleted topic are removed (KIP-496 semantics).

* **Transactional offsets** (TxnOffsetCommit, KIP-98): the offsets are written at once, in a
  *transactional* batch carrying the producer id and epoch, but stay pending -- invisible to
  OffsetFetch -- until the transaction coordinator's marker reaches the partition
  (:meth:`GroupService.complete_transaction`): COMMIT makes them the group's offsets, ABORT drops
  them.  Loading a partition does the same with the batches and markers it replays; a transaction
  still open at the end of the log stays pending.

Invariant: no answer to a write leaves the broker before the high watermark of its partition has
passed every record the coordinator wrote to that partition before answering.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast

from ..errors import ErrorCode, Errors, KafkaError
from ..records.batch import SimpleRecord, build_batch, iter_record_batches
from ..records.control import decode_end_transaction_marker
from .group.completion import WriteCompletion
from .group.config import GroupCoordinatorConfig
from .group.coordinator import EncodedRecord, GroupCoordinator
from .group.group import ClassicGroup
from .group.offsets import OffsetAndMetadata, validate_offset_commit
from .group.records import OffsetCommitKey, decode_key, encode_record
from .log.files import TopicPartition

if TYPE_CHECKING:
    from .cluster_view import ClusterView
    from .core import Broker
    from .log.log import LogAppendInfo
    from .topics import Topic

log = logging.getLogger("refka.broker.groups")

OFFSETS_TOPIC = "__consumer_offsets"

# Topic configs Kafka gives the offsets topic (GroupCoordinatorConfig: offsets.topic.segment.bytes,
# cleanup.policy=compact, compression.type=producer).
OFFSETS_TOPIC_CONFIGS = {"cleanup.policy": "compact", "compression.type": "producer", "segment.bytes": "104857600"}

_COORDINATOR_KEYS = (
    "group.min.session.timeout.ms", "group.max.session.timeout.ms", "group.initial.rebalance.delay.ms",
    "group.max.size", "offset.metadata.max.bytes", "offsets.retention.minutes",
    "offsets.retention.check.interval.ms", "offsets.topic.num.partitions",
    "offsets.topic.replication.factor", "offsets.commit.timeout.ms",
)

Endpoint = tuple[int, str, int]  # (node_id, host, port)


class ReplicaOffsets(Protocol):
    @property
    def high_watermark(self) -> int: ...

    @property
    def log_end_offset(self) -> int: ...


class OffsetsTopicReplicas(Protocol):
    """What the service needs from the replica manager (``broker.replicas`` by default)."""

    def append_internal(self, topic: str, partition: int, batch: bytes, now_ms: int) -> LogAppendInfo: ...

    def read_all(self, topic: str, partition: int) -> Iterator[bytes]: ...

    def get(self, topic: str, partition: int) -> ReplicaOffsets | None: ...


class OffsetsTopicPlacement(Protocol):
    """Where ``__consumer_offsets`` lives in a cluster (None in :class:`GroupService`: one node)."""

    def leader_of(self, partition: int) -> Endpoint | None:
        """The endpoint of the partition's leader; None while the topic or a leader is missing."""
        ...

    def ensure_offsets_topic(self, partitions: int, replication_factor: int, now_ms: int) -> None:
        """Have the topic created if it does not exist; may complete later (a forwarded CreateTopics)."""
        ...


@dataclass
class CallablePlacement:
    """An :class:`OffsetsTopicPlacement` made of two plain callables."""

    leader: Callable[[int], Endpoint | None]
    create: Callable[[int, int, int], None]

    def leader_of(self, partition: int) -> Endpoint | None:
        return self.leader(partition)

    def ensure_offsets_topic(self, partitions: int, replication_factor: int, now_ms: int) -> None:
        self.create(partitions, replication_factor, now_ms)


@dataclass
class ClusterViewPlacement:
    """Kafka's ``KafkaApis.getCoordinator`` over the broker's metadata view: the partition's leader,
    if it has one and that broker is alive.  ``cluster`` is read at each call (late binding, so the
    broker may replace its view); ``create`` asks the controller for the topic."""

    cluster: Callable[[], ClusterView]
    create: Callable[[int, int, int], None]

    def leader_of(self, partition: int) -> Endpoint | None:
        view = self.cluster()
        partitions = view.partitions(OFFSETS_TOPIC)
        found = next((p for p in partitions or [] if p.partition_index == partition), None)
        if found is None or found.leader_id < 0:
            return None
        endpoint = view.broker(found.leader_id)
        return None if endpoint is None else (endpoint.node_id, endpoint.host, endpoint.port)

    def ensure_offsets_topic(self, partitions: int, replication_factor: int, now_ms: int) -> None:
        self.create(partitions, replication_factor, now_ms)


class _TopicCreator(Protocol):
    """The KRaft node's forwarder, as far as creating ``__consumer_offsets`` goes."""

    def create_topic(self, name: str, now_ms: int, partitions: int = -1, replication_factor: int = -1,
                     configs: dict[str, str] | None = None) -> None: ...


def kraft_placement(broker: Broker) -> ClusterViewPlacement:
    """The placement of a KRaft broker (``process.roles`` set): leaders from ``broker.cluster``, the
    topic created by a CreateTopics the broker's forwarder sends to the active controller."""

    def create(partitions: int, replication_factor: int, now_ms: int) -> None:
        forwarder = cast("_TopicCreator | None", broker.forwarder)
        if forwarder is not None:
            forwarder.create_topic(OFFSETS_TOPIC, now_ms, partitions, replication_factor, OFFSETS_TOPIC_CONFIGS)

    return ClusterViewPlacement(lambda: broker.cluster, create)


@dataclass
class _Waiter:
    end_offset: int  # committed once high_watermark >= end_offset
    deadline_ms: int
    completion: WriteCompletion


class HighWatermarkWatchers:
    """Writes to ``__consumer_offsets`` partitions waiting for the high watermark to pass them.

    The replica side calls :meth:`on_high_watermark` with ``(topic_partition, high_watermark,
    now_ms)`` whenever it learns a partition's high watermark (after an append, after a follower
    fetch); other topics are ignored.  :meth:`expire` fails the waiters whose
    ``offsets.commit.timeout.ms`` passed with REQUEST_TIMED_OUT.
    """

    def __init__(self, timeout_ms: int, topic: str = OFFSETS_TOPIC) -> None:
        self.timeout_ms = timeout_ms
        self.topic = topic
        self._high_watermarks: dict[int, int] = {}
        self._waiting: dict[int, list[_Waiter]] = {}

    def high_watermark(self, partition: int) -> int | None:
        return self._high_watermarks.get(partition)

    def watch(self, partition: int, end_offset: int, now_ms: int) -> WriteCompletion:
        """A completion that completes once the high watermark of ``partition`` >= ``end_offset``."""
        if self._high_watermarks.get(partition, -1) >= end_offset:
            return WriteCompletion.committed(now_ms)
        completion = WriteCompletion()
        self._waiting.setdefault(partition, []).append(_Waiter(end_offset, now_ms + self.timeout_ms, completion))
        return completion

    def on_high_watermark(self, topic_partition: TopicPartition, high_watermark: int, now_ms: int) -> None:
        if topic_partition.topic != self.topic:
            return
        partition = topic_partition.partition
        self._high_watermarks[partition] = max(high_watermark, self._high_watermarks.get(partition, -1))
        self._finish(partition, lambda w: w.end_offset <= high_watermark, Errors.NONE, now_ms)

    def fail_all(self, partition: int, error: ErrorCode, now_ms: int) -> None:
        """The leadership ended: every waiter of ``partition`` fails with ``error``; forget its HW."""
        self._high_watermarks.pop(partition, None)
        self._finish(partition, lambda w: True, error, now_ms)

    def expire(self, now_ms: int) -> None:
        for partition in list(self._waiting):
            self._finish(partition, lambda w: w.deadline_ms <= now_ms, Errors.REQUEST_TIMED_OUT, now_ms)

    def next_deadline(self) -> int | None:
        return min((w.deadline_ms for ws in self._waiting.values() for w in ws), default=None)

    def waiting_partitions(self) -> list[int]:
        return sorted(self._waiting)

    def _finish(self, partition: int, done: Callable[[_Waiter], bool], error: ErrorCode, now_ms: int) -> None:
        waiters = self._waiting.get(partition, [])
        finished = [w for w in waiters if done(w)]
        if not finished:
            return
        remaining = [w for w in waiters if not done(w)]
        if remaining:
            self._waiting[partition] = remaining
        else:
            del self._waiting[partition]
        for waiter in finished:  # in append order
            waiter.completion.complete(error, now_ms)


class GroupService:
    def __init__(
        self,
        broker: Broker,
        now_ms: int,
        placement: OffsetsTopicPlacement | None = None,
        replicas: OffsetsTopicReplicas | None = None,
    ) -> None:
        self.broker = broker
        if placement is None and broker.kraft_mode:
            placement = kraft_placement(broker)
        self.placement = placement
        self.replicas: OffsetsTopicReplicas = replicas if replicas is not None else broker.replicas
        properties = {key: value for key in _COORDINATOR_KEYS if (value := broker.config.get(key)) is not None}
        self.config = GroupCoordinatorConfig.from_properties(properties)
        self.coordinator = GroupCoordinator(self, self.config, tracks_leadership=placement is not None)
        self.high_watermarks = HighWatermarkWatchers(self.config.offsets_commit_timeout_ms)
        self._last_written: dict[int, int] = {}  # partition -> end offset of what is in its log
        # (producer id, partition) -> offset commit records of an open transaction (TxnOffsetCommit)
        self._pending_txn_offsets: dict[tuple[int, int], list[EncodedRecord]] = {}
        self._append_errors: dict[int, ErrorCode] = {}  # appends refused during the current request
        broker.topics.subscribe(self._on_topic_event)
        if placement is None and OFFSETS_TOPIC in broker.topics:
            topic = broker.topics.get(OFFSETS_TOPIC)
            assert topic is not None
            loaded = [record for partition in range(topic.partitions) for record in self._read_partition(partition)]
            self.coordinator.load(loaded, now_ms)
        self._now_ms = now_ms

    @property
    def replicated(self) -> bool:
        return self.placement is not None

    # -- FindCoordinator -----------------------------------------------------------------------------

    def find_coordinator(self, group_id: str, now_ms: int) -> tuple[ErrorCode, Endpoint | None]:
        """The group's coordinator: NONE and its endpoint, or COORDINATOR_NOT_AVAILABLE and None."""
        if self.placement is None:
            self.ensure_offsets_topic()
            return Errors.NONE, (self.broker.node_id, self.broker.host, self.broker.port)
        if OFFSETS_TOPIC not in self.broker.topics:
            self.placement.ensure_offsets_topic(
                self.config.offsets_topic_num_partitions, self.config.offsets_topic_replication_factor, now_ms
            )
        leader = self.placement.leader_of(self.coordinator.partition_for(group_id))
        if leader is None:
            return Errors.COORDINATOR_NOT_AVAILABLE, None
        return Errors.NONE, leader

    def ensure_offsets_topic(self) -> None:
        """One node: create the topic here, now (a cluster asks its placement instead)."""
        if self.placement is None and OFFSETS_TOPIC not in self.broker.topics:
            partitions = self.config.offsets_topic_num_partitions
            self.broker.topics.create(OFFSETS_TOPIC, partitions, 1, OFFSETS_TOPIC_CONFIGS)

    # -- leadership (called by the cluster integration) ----------------------------------------------

    def on_became_leader(self, partition: int, leader_epoch: int, now_ms: int) -> None:
        """This broker leads ``__consumer_offsets-partition``: load its groups and offsets."""
        if not self.coordinator.on_became_leader(partition, leader_epoch):
            return
        self._last_written.pop(partition, None)
        try:
            self.coordinator.complete_load(partition, self._read_partition(partition), now_ms)
        except (KafkaError, ValueError) as error:  # no local replica; a record that does not decode
            log.error("loading __consumer_offsets-%d failed: %s", partition, error)
            self.coordinator.fail_load(partition, now_ms)
            return
        replica = self.replicas.get(OFFSETS_TOPIC, partition)
        if replica is not None:
            # Kafka: after loading, the last written offset is the log end; answers wait for it.
            self._last_written[partition] = replica.log_end_offset
            self._observe_local_high_watermark(partition, now_ms)

    def on_resigned(self, partition: int, leader_epoch: int | None, now_ms: int | None = None) -> None:
        """Another broker leads the partition from ``leader_epoch`` (None: the partition is gone from
        this broker): unload it.  ``now_ms`` defaults to the time of the last request or poll."""
        now_ms = self._now_ms if now_ms is None else now_ms
        if self.coordinator.on_resigned(partition, leader_epoch, now_ms):
            self._last_written.pop(partition, None)
            self.high_watermarks.fail_all(partition, Errors.NOT_COORDINATOR, now_ms)

    # -- the coordinator's writer ----------------------------------------------------------------------

    def append(self, partition: int, records: list[EncodedRecord], now_ms: int) -> WriteCompletion:
        """One batch of records into ``__consumer_offsets-partition``; completes when committed."""
        self.ensure_offsets_topic()
        batch = build_batch([SimpleRecord(value=value, key=key, timestamp=now_ms) for key, value in records])
        try:
            info = self.replicas.append_internal(OFFSETS_TOPIC, partition, batch, now_ms)
        except KafkaError as error:
            self._append_errors[partition] = error.error
            return WriteCompletion.failed(error.error, now_ms)
        end_offset = info.last_offset + 1
        self._last_written[partition] = end_offset
        completion = self.high_watermarks.watch(partition, end_offset, now_ms)
        self._observe_local_high_watermark(partition, now_ms)
        return completion

    def when_committed(self, group_id: str, now_ms: int) -> WriteCompletion:
        """Completes when all written so far to ``group_id``'s partition is committed (or failed)."""
        partition = self.coordinator.partition_for(group_id)
        if (error := self._append_errors.get(partition)) is not None:
            return WriteCompletion.failed(error, now_ms)
        end_offset = self._last_written.get(partition)
        if end_offset is None:
            return WriteCompletion.committed(now_ms)
        return self.high_watermarks.watch(partition, end_offset, now_ms)

    def on_partition_change(self, topic_partition: TopicPartition, now_ms: int) -> None:
        """The replica manager's word that a partition's high watermark may have moved."""
        if topic_partition.topic == OFFSETS_TOPIC:
            self._observe_local_high_watermark(topic_partition.partition, now_ms)

    def _observe_local_high_watermark(self, partition: int, now_ms: int) -> None:
        replica = self.replicas.get(OFFSETS_TOPIC, partition)
        if replica is not None:
            topic_partition = TopicPartition(OFFSETS_TOPIC, partition)
            self.high_watermarks.on_high_watermark(topic_partition, replica.high_watermark, now_ms)

    def _read_partition(self, partition: int) -> list[EncodedRecord]:
        """The partition's records in log order, a transaction's at the place of its COMMIT marker
        (aborted ones left out); those of transactions still open become pending again."""
        loaded: list[EncodedRecord] = []
        open_transactions: dict[int, list[EncodedRecord]] = {}
        for chunk in self.replicas.read_all(OFFSETS_TOPIC, partition):
            for batch in iter_record_batches(chunk):
                if batch.is_control:
                    if batch.is_transactional:
                        written = open_transactions.pop(batch.producer_id, [])
                        if decode_end_transaction_marker(batch).is_commit:
                            loaded.extend(written)
                    continue
                target = open_transactions.setdefault(batch.producer_id, []) if batch.is_transactional else loaded
                for record in batch.records:
                    if record.key is not None:
                        target.append((record.key, record.value))
        for producer_id, written in open_transactions.items():
            self._pending_txn_offsets[(producer_id, partition)] = written
        return loaded

    # -- transactional offsets (TxnOffsetCommit) ------------------------------------------------------

    def txn_offset_commit(self, group_id: str, producer_id: int, producer_epoch: int, generation_id: int,
                          member_id: str, group_instance_id: str | None,
                          offsets: list[tuple[str, int, OffsetAndMetadata]], now_ms: int) -> ErrorCode:
        """Write a transaction's offsets for ``group_id``; pending until the marker (see above).

        Errors for the whole request: the coordinator's (NOT_COORDINATOR...), the group fence of
        an OffsetCommit (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID) when the group
        exists, or the append's."""
        self.tick(now_ms)
        if (error := self.coordinator.coordinator_error(group_id)) is not Errors.NONE:
            return error
        group = self.coordinator.groups.get(group_id)
        if group is not None:
            error = validate_offset_commit(group, member_id, group_instance_id, generation_id)
            if error is not Errors.NONE:
                return error
        elif generation_id >= 0:  # no group (checked against Kafka 4.3.1)
            return Errors.ILLEGAL_GENERATION
        partition = self.coordinator.partition_for(group_id)
        encoded = [encode_record(OffsetCommitKey(group_id, topic, index), offset.to_record())
                   for topic, index, offset in offsets]
        if not encoded:
            return Errors.NONE
        self.ensure_offsets_topic()
        batch = build_batch([SimpleRecord(value=value, key=key, timestamp=now_ms) for key, value in encoded],
                            producer_id=producer_id, producer_epoch=producer_epoch, transactional=True)
        try:
            self.replicas.append_internal(OFFSETS_TOPIC, partition, batch, now_ms)
        except KafkaError as error:
            return error.error
        self._pending_txn_offsets.setdefault((producer_id, partition), []).extend(encoded)
        if group is None:  # Kafka creates the (simple, empty) group with the pending offsets
            self.coordinator.groups[group_id] = ClassicGroup(group_id, current_state_timestamp=now_ms)
        return Errors.NONE

    def complete_transaction(self, partition: int, producer_id: int, commit: bool) -> None:
        """The transaction's marker is in ``__consumer_offsets-partition``: apply or drop its offsets."""
        written = self._pending_txn_offsets.pop((producer_id, partition), [])
        if commit and written:
            self.coordinator.apply_records(written, self._now_ms)

    def pending_transactional_offsets(self, group_id: str) -> set[tuple[str, int]]:
        """The (topic, partition)s an open transaction has offsets for in ``group_id`` (KIP-447:
        OffsetFetch with ``require_stable`` answers them UNSTABLE_OFFSET_COMMIT)."""
        partition = self.coordinator.partition_for(group_id)
        found = set()
        for (_, p), written in self._pending_txn_offsets.items():
            if p != partition:
                continue
            for key, _ in written:
                decoded = decode_key(key)
                if isinstance(decoded, OffsetCommitKey) and decoded.group == group_id:
                    found.add((decoded.topic, decoded.partition))
        return found

    def _on_topic_event(self, event: str, topic: Topic) -> None:
        if event != "deleted":
            return
        if topic.name == OFFSETS_TOPIC and self.placement is not None:
            for partition in range(topic.partitions):
                self.on_resigned(partition, None, self._now_ms)
            return
        self.coordinator.on_topics_deleted([topic.name], self._now_ms)

    # -- time ----------------------------------------------------------------------------------------

    def tick(self, now_ms: int) -> None:
        """A request begins: remember its time; forget append errors of earlier requests."""
        self._now_ms = now_ms
        self._append_errors.clear()

    def poll(self, now_ms: int) -> None:
        self.tick(now_ms)
        # The replica side should report every HW move; reading the leader's HW here as well bounds
        # the wait by the poll interval if a report is missed.
        for partition in self.high_watermarks.waiting_partitions():
            self._observe_local_high_watermark(partition, now_ms)
        self.high_watermarks.expire(now_ms)
        self.coordinator.poll(now_ms)

    def next_deadline(self) -> int | None:
        deadlines = [d for d in (self.coordinator.next_deadline(), self.high_watermarks.next_deadline())
                     if d is not None]
        return min(deadlines, default=None)

    def shutdown(self) -> None:
        """Nothing to flush: every change was appended to the log when it happened."""
