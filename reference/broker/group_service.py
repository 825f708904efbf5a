"""The group coordinator's place in the broker: its log, its clock, and the topic it lives in.

Theory of operation
-------------------
The classic-protocol coordinator itself (``reference.broker.group``) is sans-IO: it takes requests
with the time, and hands every state change to a writer as ``__consumer_offsets`` records.  This
service connects it to the broker the way Kafka does:

* ``__consumer_offsets`` is an ordinary compacted topic with ``offsets.topic.num.partitions``
  partitions (default 50), created the first time a client looks for a group coordinator
  (FindCoordinator), as Kafka does.  A group lives in partition
  ``abs(java_hash(group_id)) % partitions``.
* Each batch of records the coordinator emits is appended to that partition as one record batch
  (Kafka writes them the same way, with the broker's own producer); on one node the append is
  committed at once.
* On start the service reads every partition of ``__consumer_offsets`` from its log start and
  replays the records into the coordinator, so groups and committed offsets survive restarts.
* Topic deletions are passed on: the offsets of a deleted topic are removed (KIP-496 semantics).

Invariant: whatever the coordinator answered as committed is in the log before the answer is sent
(the append is synchronous and precedes the response).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..records.batch import SimpleRecord, build_batch, iter_record_batches
from .group.config import GroupCoordinatorConfig
from .group.coordinator import EncodedRecord, GroupCoordinator

if TYPE_CHECKING:
    from .core import Broker
    from .topics import Topic

OFFSETS_TOPIC = "__consumer_offsets"

# Topic configs Kafka gives the offsets topic (GroupCoordinatorConfig: offsets.topic.segment.bytes,
# cleanup.policy=compact, compression.type=producer).
OFFSETS_TOPIC_CONFIGS = {"cleanup.policy": "compact", "compression.type": "producer", "segment.bytes": "104857600"}

_COORDINATOR_KEYS = (
    "group.min.session.timeout.ms", "group.max.session.timeout.ms", "group.initial.rebalance.delay.ms",
    "group.max.size", "offset.metadata.max.bytes", "offsets.retention.minutes",
    "offsets.retention.check.interval.ms", "offsets.topic.num.partitions",
)


class GroupService:
    def __init__(self, broker: Broker, now_ms: int) -> None:
        self.broker = broker
        properties = {key: value for key in _COORDINATOR_KEYS if (value := broker.config.get(key)) is not None}
        self.coordinator = GroupCoordinator(self, GroupCoordinatorConfig.from_properties(properties))
        broker.topics.subscribe(self._on_topic_event)
        if OFFSETS_TOPIC in broker.topics:
            self.coordinator.load(self._read_offsets_topic(), now_ms)
        self._now_ms = now_ms

    # -- the offsets topic -------------------------------------------------------------------------

    def ensure_offsets_topic(self) -> None:
        if OFFSETS_TOPIC not in self.broker.topics:
            partitions = self.coordinator.config.offsets_topic_num_partitions
            self.broker.topics.create(OFFSETS_TOPIC, partitions, 1, OFFSETS_TOPIC_CONFIGS)

    def append(self, partition: int, records: list[EncodedRecord]) -> None:
        """The coordinator's writer: one batch of records into ``__consumer_offsets-partition``."""
        self.ensure_offsets_topic()
        batch = build_batch(
            [SimpleRecord(value=value, key=key, timestamp=self._now_ms) for key, value in records]
        )
        self.broker.replicas.append_internal(OFFSETS_TOPIC, partition, batch, self._now_ms)

    def _read_offsets_topic(self) -> list[EncodedRecord]:
        loaded: list[EncodedRecord] = []
        topic = self.broker.topics.get(OFFSETS_TOPIC)
        assert topic is not None
        for partition in range(topic.partitions):
            for chunk in self.broker.replicas.read_all(OFFSETS_TOPIC, partition):
                for batch in iter_record_batches(chunk):
                    if batch.is_control:
                        continue
                    for record in batch.records:
                        if record.key is not None:
                            loaded.append((record.key, record.value))
        return loaded

    def _on_topic_event(self, event: str, topic: Topic) -> None:
        if event == "deleted":
            self.coordinator.on_topics_deleted([topic.name], self._now_ms)

    # -- time ----------------------------------------------------------------------------------------

    def tick(self, now_ms: int) -> None:
        """Remember the time of the request being handled (record timestamps use it)."""
        self._now_ms = now_ms

    def poll(self, now_ms: int) -> None:
        self._now_ms = now_ms
        self.coordinator.poll(now_ms)

    def next_deadline(self) -> int | None:
        return self.coordinator.next_deadline()

    def shutdown(self) -> None:
        """Nothing to flush: every change was appended to the log when it happened."""
