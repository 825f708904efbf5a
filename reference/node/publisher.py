"""From committed metadata to a broker that acts on it: Kafka's ``BrokerMetadataPublisher``.

Theory of operation
-------------------
Every node replays the committed ``__cluster_metadata`` records into a
:class:`~reference.controller.image.MetadataImage`.  A broker then has to *act* on what changed,
and this module is where that happens, after each committed batch:

1. **Topics** are mirrored into the broker's topic registry (``TopicRegistry.apply_topic`` /
   ``apply_removed``), with their config overrides from ConfigRecords; the registry's listeners
   open and delete logs and tell the group coordinator about deleted topics, as on one node.
2. **Partitions** whose replica set contains this broker are handed to the replica manager with
   their leader, leader epoch, ISR and partition epoch (``apply_partition_state``): it becomes leader
   or follower and starts or stops fetching (Kafka's ``ReplicaManager.applyDelta``).  Only
   partitions whose state changed since the last publication are passed on.
3. **Features**: the image's finalized feature levels and its offset become what the broker's
   ApiVersions advertises (``Broker.finalized_features``, KIP-584).
4. **Broker configs** from ConfigRecords (resource type BROKER): the cluster default (name "")
   becomes the dynamic default layer, this broker's own entry its dynamic broker layer.
5. **Group coordination** follows ``__consumer_offsets`` leadership: becoming its leader loads the
   partition's groups, losing it unloads them (``GroupService.on_became_leader`` / ``on_resigned``);
   transaction coordination follows ``__transaction_state`` leadership the same way
   (``TransactionService.on_became_leader`` / ``on_resigned``).

Kafka computes a delta per batch; refka compares the image with what it last published, which is
simpler to read and fast enough for the partition counts a teaching cluster has.

Invariant: the broker never acts on metadata that is not committed; it acts on each committed change
exactly once, in log order.
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..controller.features import finalized_features

if TYPE_CHECKING:
    from ..broker.core import Broker
    from ..controller.image import MetadataImage, PartitionRegistration

log = logging.getLogger("refka.node.publisher")

TOPIC_RESOURCE = 2
BROKER_RESOURCE = 4
OFFSETS_TOPIC = "__consumer_offsets"
TRANSACTION_STATE_TOPIC = "__transaction_state"


def topic_uuid(text: str) -> uuid.UUID:
    """Kafka's text form of a Uuid (22 characters of URL-safe base64) as a :class:`uuid.UUID`."""
    return uuid.UUID(bytes=base64.urlsafe_b64decode(text + "=="))


@dataclass(frozen=True)
class PublishedPartition:
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int
    leader_epoch: int
    partition_epoch: int

    @classmethod
    def of(cls, registration: PartitionRegistration) -> PublishedPartition:
        return cls(tuple(registration.replicas), tuple(registration.isr), registration.leader,
                   registration.leader_epoch, registration.partition_epoch)


class MetadataPublisher:
    def __init__(self, broker: Broker, on_partition_change: Callable[[str, int, PublishedPartition, int], None]
                 | None = None) -> None:
        self.broker = broker
        self.node_id = broker.node_id
        self._published: dict[tuple[str, int], PublishedPartition] = {}
        self._broker_configs: tuple[dict[str, str], dict[str, str]] = ({}, {})
        self.on_partition_change = on_partition_change

    def publish(self, image: MetadataImage, now_ms: int) -> None:
        # The feature levels ApiVersions advertises, dated by this image's offset (KIP-584).
        self.broker.finalized_features = finalized_features(image)
        self._publish_broker_configs(image)
        self._publish_topics(image)
        self._publish_partitions(image, now_ms)

    def _publish_broker_configs(self, image: MetadataImage) -> None:
        default = dict(image.configs.get((BROKER_RESOURCE, ""), {}))
        own = dict(image.configs.get((BROKER_RESOURCE, str(self.node_id)), {}))
        if (default, own) == self._broker_configs:
            return
        self._broker_configs = (default, own)
        config = self.broker.config
        config.dynamic_default.clear()
        config.dynamic_default.update(default)
        config.dynamic_broker.clear()
        config.dynamic_broker.update(own)

    def _publish_topics(self, image: MetadataImage) -> None:
        registry = self.broker.topics
        for gone in [registered.name for registered in registry if registered.name not in image.topics]:
            registry.apply_removed(gone)
        for name, topic in image.topics.items():
            if not topic.partitions:
                continue  # the TopicRecord came without its PartitionRecords yet (same batch follows)
            first = topic.partitions[min(topic.partitions)]
            configs = dict(image.configs.get((TOPIC_RESOURCE, name), {}))
            registry.apply_topic(name, topic_uuid(topic.topic_id), len(topic.partitions), len(first.replicas), configs)

    def _publish_partitions(self, image: MetadataImage, now_ms: int) -> None:
        current: dict[tuple[str, int], PublishedPartition] = {}
        for name, topic in image.topics.items():
            for index, registration in topic.partitions.items():
                if self.node_id in registration.replicas:
                    current[(name, index)] = PublishedPartition.of(registration)
        for key, state in current.items():
            if self._published.get(key) != state:
                self._apply(key[0], key[1], state, now_ms)
        for key in set(self._published) - set(current):
            # No longer a replica here (the topic was deleted, or the replica reassigned away).
            old = self._published[key]
            self._apply(key[0], key[1], PublishedPartition(old.replicas, (), -1, old.leader_epoch,
                                                           old.partition_epoch), now_ms, removed=True)
        self._published = current

    def _apply(self, topic: str, partition: int, state: PublishedPartition, now_ms: int, removed: bool = False) -> None:
        if not removed:
            self.broker.replicas.apply_partition_state(topic, partition, list(state.replicas), list(state.isr),
                                                       state.leader, state.leader_epoch, state.partition_epoch, now_ms)
        if topic == OFFSETS_TOPIC:
            self._publish_coordinator(partition, state, now_ms, removed)
        elif topic == TRANSACTION_STATE_TOPIC:
            self._publish_transaction_coordinator(partition, state, now_ms, removed)
        if self.on_partition_change is not None:
            self.on_partition_change(topic, partition, state, now_ms)

    def _publish_transaction_coordinator(self, partition: int, state: PublishedPartition, now_ms: int,
                                         removed: bool) -> None:
        """The transaction coordinator follows ``__transaction_state`` leadership the same way."""
        transactions = self.broker.transactions
        leads = state.leader == self.node_id and not removed
        previous = self._published.get((TRANSACTION_STATE_TOPIC, partition))
        led = previous is not None and previous.leader == self.node_id
        if leads and (not led or previous is None or previous.leader_epoch != state.leader_epoch):
            transactions.on_became_leader(partition, state.leader_epoch, now_ms)
        elif led and not leads:
            transactions.on_resigned(partition)

    def _publish_coordinator(self, partition: int, state: PublishedPartition, now_ms: int, removed: bool) -> None:
        """Kafka's ``onElection`` / ``onResignation`` of the group coordinator."""
        groups = self.broker.groups
        leads = state.leader == self.node_id and not removed
        previous = self._published.get((OFFSETS_TOPIC, partition))
        led = previous is not None and previous.leader == self.node_id
        if leads and (not led or previous is None or previous.leader_epoch != state.leader_epoch):
            groups.on_became_leader(partition, state.leader_epoch, now_ms)
        elif led and not leads:
            # A replica removed (the topic deleted) resigns whatever epoch it held: None, as Kafka.
            groups.on_resigned(partition, None if removed else state.leader_epoch, now_ms)
