"""The topic registry: which topics exist, their ids, partition counts and config overrides.

Theory of operation
-------------------
In Apache Kafka 4 (KRaft) this is cluster metadata: records in the ``__cluster_metadata`` log
(TopicRecord, PartitionRecord, ConfigRecord, RemoveTopicRecord) replayed by every broker.  A single
reference node keeps the same facts in one small JSON document, ``refka-metadata.json`` in its data
directory, rewritten atomically (write a temporary file, fsync, rename) on every change, so a crash
leaves either the old or the new document, never a torn one.  The replicated cluster will replace
this file with a metadata log; the registry's interface stays.

What it records, per topic: name, topic id (a random UUID, as Kafka assigns at creation and
returns in Metadata v10+), partition count, replication factor, and only the config keys set on the
topic (the rest come from broker configs at read time, see ``reference.broker.configs``).

Rules it enforces (each with Kafka's error code):

* names: ``reference.broker.topic_names`` (INVALID_TOPIC_EXCEPTION);
* an existing name: TOPIC_ALREADY_EXISTS; a name that differs from an existing one only by '.'
  versus '_': INVALID_TOPIC_EXCEPTION (the two would share metric names);
* partitions >= 1 (INVALID_PARTITIONS) and replication factor between 1 and the live brokers
  (INVALID_REPLICATION_FACTOR), with -1 meaning the broker default (KIP-464);
* partition counts only grow (CreatePartitions: INVALID_PARTITIONS otherwise).

Listeners are told of every change so that the replica manager creates or deletes logs and the
group coordinator forgets offsets of deleted topics.

In a KRaft cluster the registry is not the source of truth but a read model: the controller
decides, the committed ``__cluster_metadata`` records say what it decided, and the node's metadata
publisher (``reference.node.publisher``) mirrors topics into the registry with the ``apply_*``
methods, which neither validate nor write ``refka-metadata.json`` (``persist=False``).

Invariants: names and ids are unique; a topic's partition count never decreases.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reference import durability

from ..errors import Errors, KafkaError
from .configs import BrokerConfig, validate_topic_config
from .topic_names import check_creatable, collides_with

METADATA_FILE = "refka-metadata.json"
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})


@dataclass
class Topic:
    name: str
    topic_id: uuid.UUID
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)

    @property
    def is_internal(self) -> bool:
        return self.name in INTERNAL_TOPICS


TopicListener = Callable[[str, Topic], None]  # (event, topic): "created", "deleted", "partitions", "configs"


class TopicRegistry:
    def __init__(self, data_dir: Path, config: BrokerConfig, persist: bool = True) -> None:
        self._persist = persist
        self._path = data_dir / METADATA_FILE
        self._config = config
        self._topics: dict[str, Topic] = {}
        self._by_id: dict[uuid.UUID, Topic] = {}
        self._listeners: list[TopicListener] = []
        if persist:
            self._load()

    # -- queries -------------------------------------------------------------------------------------

    def __contains__(self, name: object) -> bool:
        return name in self._topics

    def __iter__(self) -> Iterator[Topic]:
        return iter(list(self._topics.values()))

    def get(self, name: str) -> Topic | None:
        return self._topics.get(name)

    def by_id(self, topic_id: uuid.UUID) -> Topic | None:
        return self._by_id.get(topic_id)

    def subscribe(self, listener: TopicListener) -> None:
        self._listeners.append(listener)

    # -- changes -------------------------------------------------------------------------------------

    def check_new_topic(
        self, name: str, partitions: int, replication_factor: int, configs: Mapping[str, str | None]
    ) -> tuple[int, int, dict[str, str]]:
        """Validate a CreateTopics entry; returns the resolved (partitions, rf, configs)."""
        check_creatable(name)
        if name in self._topics:
            raise KafkaError(Errors.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
        clash = collides_with(name, self._topics.keys())
        if clash is not None:
            raise KafkaError(
                Errors.INVALID_TOPIC_EXCEPTION,
                f"Topic '{name}' collides with existing topic: {clash}",
            )
        if partitions == -1:
            partitions = self._config.get_int("num.partitions")
        if replication_factor == -1:
            replication_factor = self._config.get_int("default.replication.factor")
        if partitions < 1:
            raise KafkaError(Errors.INVALID_PARTITIONS, "Number of partitions was set to an invalid non-positive value.")
        if replication_factor < 1:
            raise KafkaError(Errors.INVALID_REPLICATION_FACTOR,
                             "Replication factor must be larger than 0, or -1 to use the default value.")
        live_brokers = 1
        if replication_factor > live_brokers:
            raise KafkaError(
                Errors.INVALID_REPLICATION_FACTOR,
                f"Unable to replicate the partition {replication_factor} time(s): The target replication "
                f"factor of {replication_factor} cannot be reached because only {live_brokers} broker(s) "
                "are registered.",
            )
        return partitions, replication_factor, validate_topic_config(configs, self._config)

    def create(
        self, name: str, partitions: int, replication_factor: int, configs: Mapping[str, str | None]
    ) -> Topic:
        partitions, replication_factor, checked = self.check_new_topic(name, partitions, replication_factor, configs)
        topic = Topic(name, uuid.uuid4(), partitions, replication_factor, checked)
        self._topics[name] = topic
        self._by_id[topic.topic_id] = topic
        self._save()
        self._notify("created", topic)
        return topic

    def delete(self, name: str) -> Topic:
        topic = self._topics.get(name)
        if topic is None:
            raise KafkaError(Errors.UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic-partition.")
        del self._topics[name]
        del self._by_id[topic.topic_id]
        self._save()
        self._notify("deleted", topic)
        return topic

    def check_partition_increase(self, name: str, count: int) -> Topic:
        topic = self._topics.get(name)
        if topic is None:
            raise KafkaError(Errors.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist.")
        if count < topic.partitions:
            raise KafkaError(Errors.INVALID_PARTITIONS,
                             f"The topic {name} currently has {topic.partitions} partition(s); {count} would "
                             "not be an increase.")
        if count == topic.partitions:
            raise KafkaError(Errors.INVALID_PARTITIONS, f"Topic already has {topic.partitions} partition(s).")
        return topic

    def add_partitions(self, name: str, count: int) -> Topic:
        topic = self.check_partition_increase(name, count)
        topic.partitions = count
        self._save()
        self._notify("partitions", topic)
        return topic

    def set_configs(self, name: str, configs: Mapping[str, str]) -> Topic:
        """Replace the topic's config overrides (already validated by the caller)."""
        topic = self._topics.get(name)
        if topic is None:
            raise KafkaError(Errors.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist.")
        topic.configs = dict(configs)
        self._save()
        self._notify("configs", topic)
        return topic

    # -- a KRaft broker's read model: what the committed metadata says ---------------------------------

    def apply_topic(self, name: str, topic_id: uuid.UUID, partitions: int, replication_factor: int,
                    configs: Mapping[str, str]) -> None:
        """Mirror a topic as the metadata image has it (created, grown or reconfigured)."""
        topic = self._topics.get(name)
        if topic is None or topic.topic_id != topic_id:
            if topic is not None:
                self.apply_removed(name)
            topic = Topic(name, topic_id, partitions, replication_factor, dict(configs))
            self._topics[name] = topic
            self._by_id[topic_id] = topic
            self._notify("created", topic)
            return
        if partitions > topic.partitions:
            topic.partitions = partitions
            self._notify("partitions", topic)
        if dict(configs) != topic.configs:
            topic.configs = dict(configs)
            self._notify("configs", topic)

    def apply_removed(self, name: str) -> None:
        """Mirror a RemoveTopicRecord."""
        topic = self._topics.pop(name, None)
        if topic is not None:
            del self._by_id[topic.topic_id]
            self._notify("deleted", topic)

    # -- persistence ---------------------------------------------------------------------------------

    def _notify(self, event: str, topic: Topic) -> None:
        for listener in self._listeners:
            listener(event, topic)

    def _load(self) -> None:
        if not self._path.exists():
            return
        document = json.loads(self._path.read_text("utf-8"))
        for entry in document["topics"]:
            topic = Topic(entry["name"], uuid.UUID(entry["topic_id"]), entry["partitions"],
                          entry["replication_factor"], dict(entry["configs"]))
            self._topics[topic.name] = topic
            self._by_id[topic.topic_id] = topic

    def _save(self) -> None:
        if not self._persist:
            return
        document = {
            "version": 1,
            "topics": [
                {"name": t.name, "topic_id": str(t.topic_id), "partitions": t.partitions,
                 "replication_factor": t.replication_factor, "configs": t.configs}
                for t in self._topics.values()
            ],
        }
        durability.write_atomically(self._path, json.dumps(document, indent=1, sort_keys=True).encode("utf-8"),
                                    temporary=self._path.with_suffix(".tmp"))
