"""The active controller's configuration, its result type, and config resolution over the image.

Theory of operation
-------------------
:class:`ControllerConfig` holds the Kafka keys the quorum controller decides with, under Kafka's
names and defaults (``KafkaConfig`` / ``QuorumController.Builder`` of Kafka 4.3.1):

=============================================  ==========  ============================================
key                                            default     used for
=============================================  ==========  ============================================
``broker.session.timeout.ms``                  9000        fence a broker not heard from for this long
``broker.heartbeat.interval.ms``               2000        (the brokers' pace; informative here)
``num.partitions``                             1           CreateTopics with NumPartitions -1
``default.replication.factor``                 1           CreateTopics with ReplicationFactor -1
``min.insync.replicas``                        1           ELR threshold when no topic/dynamic value
``unclean.leader.election.enable``             false       elections outside the ISR (topic overrides)
``auto.leader.rebalance.enable``               true        periodic preferred-leader elections
``leader.imbalance.check.interval.seconds``    300         their period
``delete.topic.enable``                        true        DeleteTopics, else TOPIC_DELETION_DISABLED
=============================================  ==========  ============================================

Eligible leader replicas (KIP-966) are not a config key: the finalized feature
``eligible.leader.replicas.version`` gates them.  Kafka 4.1+ formats new clusters with level 1
(``EligibleLeaderReplicasVersion.ELRV_1`` is bootstrapped from metadata.version 4.1-IV0), so
:attr:`ControllerConfig.eligible_leader_replicas_version` (the level ``bootstrap()`` writes) is 1;
the controller then reads the level from the image, as Kafka's ``FeatureControlManager`` does.

A topic's effective value of a key resolves as Kafka's ``ConfigurationControlManager.getTopicConfig``:
the topic's ConfigRecord, else the controller node's own dynamic broker config, else the
cluster-wide dynamic default (resource name ""), else the static config, else Kafka's default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..broker.configs import BrokerConfig
from ..protocol.schema import Data
from .metadata_records import CONFIG_RESOURCE_BROKER, CONFIG_RESOURCE_TOPIC, MetadataRecord

if TYPE_CHECKING:
    from .image import MetadataImage

# QuorumController.MAX_RECORDS_PER_USER_OP (= MAX_RECORDS_PER_BATCH): one user operation may not
# produce more records than fit one atomic batch.
MAX_RECORDS_PER_USER_OP = 10_000
# ReplicationControlManager's cap on preferred/unclean elections per periodic run.
MAX_ELECTIONS_PER_IMBALANCE = 1_000
ELR_FEATURE = "eligible.leader.replicas.version"


@dataclass(frozen=True)
class ControllerResult:
    """What one controller operation decided: the records to append (in order, atomically) and
    the response body for the caller (None for internal operations such as ``poll``)."""

    records: list[MetadataRecord]
    response: Data | None


@dataclass(frozen=True)
class ControllerConfig:
    """The configuration the quorum controller needs; field names are Kafka's keys in snake_case."""

    node_id: int = 1  # node.id of this controller
    cluster_id: str = ""
    broker_session_timeout_ms: int = 9000
    broker_heartbeat_interval_ms: int = 2000
    num_partitions: int = 1
    default_replication_factor: int = 1
    min_insync_replicas: int = 1
    unclean_leader_election_enable: bool = False
    auto_leader_rebalance_enable: bool = True
    leader_imbalance_check_interval_seconds: int = 300
    delete_topic_enable: bool = True
    # QuorumController.Builder's uncleanLeaderElectionCheckIntervalMs (5 minutes)
    unclean_leader_election_check_interval_ms: int = 300_000
    # the level bootstrap() finalizes for eligible.leader.replicas.version (0 turns ELR off)
    eligible_leader_replicas_version: int = 1
    placement_seed: int = 0  # seeds the replica placer's Random (a simulator replays it)
    static_properties: Mapping[str, str] = field(default_factory=dict)  # every static key, as given

    @classmethod
    def from_properties(cls, properties: Mapping[str, str], *, cluster_id: str = "",
                        placement_seed: int = 0) -> ControllerConfig:
        """Read the keys above from Kafka-style properties (parsed and validated as Kafka does)."""
        broker = BrokerConfig(properties)
        return cls(
            node_id=broker.get_int("node.id"),
            cluster_id=cluster_id,
            broker_session_timeout_ms=int(properties.get("broker.session.timeout.ms", "9000")),
            broker_heartbeat_interval_ms=int(properties.get("broker.heartbeat.interval.ms", "2000")),
            num_partitions=broker.get_int("num.partitions"),
            default_replication_factor=broker.get_int("default.replication.factor"),
            min_insync_replicas=broker.get_int("min.insync.replicas"),
            unclean_leader_election_enable=broker.get_bool("unclean.leader.election.enable"),
            auto_leader_rebalance_enable=properties.get("auto.leader.rebalance.enable", "true").strip().lower()
            == "true",
            leader_imbalance_check_interval_seconds=int(properties.get("leader.imbalance.check.interval.seconds",
                                                                       "300")),
            delete_topic_enable=broker.get_bool("delete.topic.enable"),
            placement_seed=placement_seed,
            static_properties=dict(properties),
        )

    def static_broker_config(self) -> dict[str, str]:
        """The static layer as BrokerConfig reads it: the properties plus the typed fields."""
        static = dict(self.static_properties)
        static.update({
            "node.id": str(self.node_id),
            "num.partitions": str(self.num_partitions),
            "default.replication.factor": str(self.default_replication_factor),
            "min.insync.replicas": str(self.min_insync_replicas),
            "unclean.leader.election.enable": "true" if self.unclean_leader_election_enable else "false",
            "delete.topic.enable": "true" if self.delete_topic_enable else "false",
        })
        return static

    def broker_config(self, image: MetadataImage) -> BrokerConfig:
        """This controller's broker-style config with the image's dynamic layers installed."""
        broker = BrokerConfig(self.static_broker_config(), elr_enabled=False)
        broker.replace_dynamic_layer(False, image.configs.get((CONFIG_RESOURCE_BROKER, ""), {}))
        broker.replace_dynamic_layer(True, image.configs.get((CONFIG_RESOURCE_BROKER, str(self.node_id)), {}))
        return broker

    def topic_config_value(self, image: MetadataImage, topic: str, key: str) -> str | None:
        """The effective value of topic key ``key`` (whose broker synonym has the same name)."""
        for resource in ((CONFIG_RESOURCE_TOPIC, topic), (CONFIG_RESOURCE_BROKER, str(self.node_id)),
                         (CONFIG_RESOURCE_BROKER, "")):
            value = image.configs.get(resource, {}).get(key)
            if value is not None:
                return value
        return self.static_broker_config().get(key)

    def unclean_leader_election_enabled(self, image: MetadataImage, topic: str) -> bool:
        value = self.topic_config_value(image, topic, "unclean.leader.election.enable")
        return value is not None and value.strip().lower() == "true"

    def effective_min_isr(self, image: MetadataImage, topic: str) -> int:
        """``ReplicationControlManager.getTopicEffectiveMinIsr``: min.insync.replicas capped at the
        topic's replication factor (that of partition 0)."""
        value = self.topic_config_value(image, topic, "min.insync.replicas")
        min_isr = int(value.strip()) if value is not None else 1
        partitions = image.topics[topic].partitions
        if partitions:
            first = partitions[min(partitions)]
            min_isr = min(min_isr, len(first.replicas))
        return min_isr


def elr_enabled(image: MetadataImage) -> bool:
    """``FeatureControlManager.isElrFeatureEnabled``: the finalized ELR feature level is >= 1."""
    return image.features.get(ELR_FEATURE, 0) >= 1
