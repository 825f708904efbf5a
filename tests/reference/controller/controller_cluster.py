"""A scripted KRaft cluster around one QuorumController, for the controller's tests.

The clock is manual (``now_ms``), brokers are ids 1..n, and every operation's result is checked
against the controller's invariants: the image is valid and ends where the controller's next
offset begins.
"""

from __future__ import annotations

import uuid
from typing import Any

from reference.controller.image import MetadataImage, PartitionRegistration
from reference.controller.metadata_records import CONFIG_RESOURCE_BROKER, CONFIG_RESOURCE_TOPIC
from reference.controller.quorum_controller import (
    ALLOCATE_PRODUCER_IDS_REQUEST,
    ControllerConfig,
    ControllerResult,
    QuorumController,
)
from reference.protocol.messages import alter_partition as alter_partition_api
from reference.protocol.messages import broker_heartbeat as heartbeat_api
from reference.protocol.messages import broker_registration as registration_api
from reference.protocol.messages import create_partitions as create_partitions_api
from reference.protocol.messages import create_topics as create_topics_api
from reference.protocol.messages import delete_topics as delete_topics_api
from reference.protocol.messages import elect_leaders as elect_leaders_api
from reference.protocol.messages import incremental_alter_configs as incremental_api
from reference.protocol.schema import Data

CLUSTER_ID = "refka-controller-test"
LISTENER = registration_api.REQUEST.struct("Listener")
FEATURE = registration_api.REQUEST.struct("Feature")
TOPIC = create_topics_api.REQUEST.struct("CreatableTopic")
ASSIGNMENT = create_topics_api.REQUEST.struct("CreatableReplicaAssignment")
TOPIC_CONFIG = create_topics_api.REQUEST.struct("CreatableTopicConfig")
AP_TOPIC = alter_partition_api.REQUEST.struct("TopicData")
AP_PARTITION = alter_partition_api.REQUEST.struct("PartitionData")
AP_BROKER_STATE = alter_partition_api.REQUEST.struct("BrokerState")
EL_TOPIC = elect_leaders_api.REQUEST.struct("TopicPartitions")
IAC_RESOURCE = incremental_api.REQUEST.struct("AlterConfigsResource")
IAC_CONFIG = incremental_api.REQUEST.struct("AlterableConfig")

# What a Kafka 4.3 broker announces: a range around every level a new cluster finalizes.
BROKER_FEATURES = {
    "metadata.version": (7, 31),
    "eligible.leader.replicas.version": (0, 1),
    "group.version": (0, 1),
    "share.version": (0, 1),
    "streams.version": (0, 1),
    "transaction.version": (0, 2),
}


class Cluster:
    """A bootstrapped controller with ``brokers`` registered and unfenced brokers."""

    def __init__(self, brokers: int = 3, racks: dict[int, str] | None = None, elr: bool = True,
                 **config: Any) -> None:
        config.setdefault("cluster_id", CLUSTER_ID)
        config.setdefault("eligible_leader_replicas_version", 1 if elr else 0)
        self.controller = QuorumController(ControllerConfig(**config), MetadataImage())
        self.now_ms = 0
        self.incarnations: dict[int, uuid.UUID] = {}
        self.log_dirs: dict[int, uuid.UUID] = {}
        self.checked(self.controller.bootstrap())
        for broker_id in range(1, brokers + 1):
            self.register(broker_id, rack=(racks or {}).get(broker_id))
            self.heartbeat(broker_id)

    @property
    def image(self) -> MetadataImage:
        return self.controller.image

    def checked(self, result: ControllerResult) -> ControllerResult:
        self.image.check_valid()
        assert self.image.offset == self.controller.next_offset - 1
        return result

    # -- brokers ------------------------------------------------------------------------------------

    def registration_request(self, broker_id: int, *, rack: str | None = None, incarnation: uuid.UUID | None = None,
                             features: dict[str, tuple[int, int]] | None = None,
                             log_dirs: list[uuid.UUID] | None = None, previous_broker_epoch: int = -1,
                             cluster_id: str = CLUSTER_ID) -> Data:
        incarnation = incarnation or uuid.uuid4()
        if log_dirs is None:
            log_dirs = [self.log_dirs.setdefault(broker_id, uuid.uuid4())]
        return registration_api.REQUEST.make(
            broker_id=broker_id, cluster_id=cluster_id, incarnation_id=incarnation,
            listeners=[LISTENER.make(name="PLAINTEXT", host="localhost", port=9090 + broker_id, security_protocol=0)],
            features=[FEATURE.make(name=name, min_supported_version=low, max_supported_version=high)
                      for name, (low, high) in (features or BROKER_FEATURES).items()],
            rack=rack, log_dirs=log_dirs, previous_broker_epoch=previous_broker_epoch)

    def register(self, broker_id: int, **options: Any) -> ControllerResult:
        request = self.registration_request(broker_id, **options)
        result = self.checked(self.controller.register_broker(request, self.now_ms))
        if result.response is not None and result.response.error_code == 0:
            self.incarnations[broker_id] = request.incarnation_id
        return result

    def heartbeat(self, broker_id: int, *, epoch: int | None = None, offset: int | None = None,
                  want_fence: bool = False, want_shut_down: bool = False) -> ControllerResult:
        """A heartbeat; by default with the current epoch and caught up with the whole log."""
        registration = self.image.brokers.get(broker_id)
        request = heartbeat_api.REQUEST.make(
            broker_id=broker_id,
            broker_epoch=epoch if epoch is not None else (registration.broker_epoch if registration else -1),
            current_metadata_offset=self.image.offset if offset is None else offset,
            want_fence=want_fence, want_shut_down=want_shut_down)
        return self.checked(self.controller.broker_heartbeat(request, self.now_ms))

    def heartbeat_all(self, *, except_for: tuple[int, ...] = ()) -> None:
        for broker_id in sorted(self.image.brokers):
            if broker_id not in except_for:
                self.heartbeat(broker_id)

    def advance(self, ms: int) -> ControllerResult:
        self.now_ms += ms
        return self.checked(self.controller.poll(self.now_ms))

    def tick(self, ms: int, *, except_for: tuple[int, ...] = (), step_ms: int = 2000) -> None:
        """Let ``ms`` pass in heartbeat-interval steps, every registered broker but ``except_for``
        heartbeating (fenced ones too: a fenced broker that heartbeats is unfenced), polling."""
        end = self.now_ms + ms
        while self.now_ms < end:
            self.heartbeat_all(except_for=except_for)
            self.advance(min(step_ms, end - self.now_ms))

    def fence(self, broker_id: int) -> ControllerResult:
        return self.heartbeat(broker_id, want_fence=True)

    # -- topics ---------------------------------------------------------------------------------------

    def create_topics(self, *topics: Data, validate_only: bool = False, version: int = 7) -> ControllerResult:
        request = create_topics_api.REQUEST.make(topics=list(topics), validate_only=validate_only)
        return self.checked(self.controller.create_topics(request, version))

    def create_topic(self, name: str, partitions: int = 1, replication_factor: int = -1, *,
                     configs: dict[str, str | None] | None = None, validate_only: bool = False) -> ControllerResult:
        return self.create_topics(new_topic(name, partitions, replication_factor, configs=configs),
                                  validate_only=validate_only)

    def partition(self, topic: str, partition_id: int = 0) -> PartitionRegistration:
        return self.image.topics[topic].partitions[partition_id]

    def create_partitions(self, name: str, count: int, assignments: list[list[int]] | None = None) -> ControllerResult:
        entry = create_partitions_api.REQUEST.struct("CreatePartitionsTopic").make(
            name=name, count=count,
            assignments=None if assignments is None else [
                create_partitions_api.REQUEST.struct("CreatePartitionsAssignment").make(broker_ids=a)
                for a in assignments])
        return self.checked(self.controller.create_partitions(create_partitions_api.REQUEST.make(topics=[entry])))

    def create_partitions_many(self, counts: dict[str, int]) -> ControllerResult:
        entry = create_partitions_api.REQUEST.struct("CreatePartitionsTopic")
        request = create_partitions_api.REQUEST.make(topics=[entry.make(name=name, count=count, assignments=None)
                                                             for name, count in counts.items()])
        return self.checked(self.controller.create_partitions(request))

    def delete_topics(self, names: list[str | None], ids: list[uuid.UUID] | None = None) -> ControllerResult:
        state = delete_topics_api.REQUEST.struct("DeleteTopicState")
        topics = [state.make(name=name, topic_id=(ids or [])[i] if ids else uuid.UUID(int=0))
                  for i, name in enumerate(names)]
        return self.checked(self.controller.delete_topics(delete_topics_api.REQUEST.make(topics=topics)))

    def topic_uuid(self, name: str) -> uuid.UUID:
        from reference.controller.replication_control import uuid_from_text

        return uuid_from_text(self.image.topics[name].topic_id)

    # -- partitions -------------------------------------------------------------------------------------

    def alter_partition(self, topic: str, partition_id: int, new_isr: list[int], *, sender: int | None = None,
                        leader_epoch: int | None = None, partition_epoch: int | None = None,
                        broker_epochs: dict[int, int] | None = None, leader_recovery_state: int = 0,
                        broker_epoch: int | None = None, topic_id: uuid.UUID | None = None) -> ControllerResult:
        partitions = self.image.topics[topic].partitions if topic in self.image.topics else {}
        partition = partitions.get(partition_id)
        sender = sender if sender is not None else (partition.leader if partition else 1)
        request = alter_partition_api.REQUEST.make(
            broker_id=sender,
            broker_epoch=broker_epoch if broker_epoch is not None else self.image.brokers[sender].broker_epoch,
            topics=[AP_TOPIC.make(topic_id=topic_id or self.topic_uuid(topic), partitions=[AP_PARTITION.make(
                partition_index=partition_id,
                leader_epoch=leader_epoch if leader_epoch is not None else (partition.leader_epoch if partition else 0),
                partition_epoch=(partition_epoch if partition_epoch is not None
                                 else (partition.partition_epoch if partition else 0)),
                leader_recovery_state=leader_recovery_state,
                new_isr_with_epochs=[AP_BROKER_STATE.make(broker_id=b, broker_epoch=(broker_epochs or {}).get(b, -1))
                                     for b in new_isr])])])
        return self.checked(self.controller.alter_partition(request, 3))

    def elect_leaders(self, election_type: int, partitions: dict[str, list[int]] | None) -> ControllerResult:
        request = elect_leaders_api.REQUEST.make(
            election_type=election_type,
            topic_partitions=None if partitions is None else [EL_TOPIC.make(topic=t, partitions=p)
                                                               for t, p in partitions.items()])
        return self.checked(self.controller.elect_leaders(request, 2))

    # -- configs and producer ids ------------------------------------------------------------------------

    def alter_configs(self, resource_type: int, name: str, *operations: tuple[str, int, str | None],
                      validate_only: bool = False) -> ControllerResult:
        request = incremental_api.REQUEST.make(validate_only=validate_only, resources=[IAC_RESOURCE.make(
            resource_type=resource_type, resource_name=name,
            configs=[IAC_CONFIG.make(name=key, config_operation=op, value=value) for key, op, value in operations])])
        return self.checked(self.controller.incremental_alter_configs(request))

    def set_topic_config(self, topic: str, key: str, value: str) -> ControllerResult:
        return self.alter_configs(CONFIG_RESOURCE_TOPIC, topic, (key, 0, value))

    def set_cluster_config(self, key: str, value: str) -> ControllerResult:
        return self.alter_configs(CONFIG_RESOURCE_BROKER, "", (key, 0, value))

    def allocate_producer_ids(self, broker_id: int, broker_epoch: int | None = None) -> ControllerResult:
        epoch = broker_epoch if broker_epoch is not None else self.image.brokers[broker_id].broker_epoch
        request = ALLOCATE_PRODUCER_IDS_REQUEST.make(broker_id=broker_id, broker_epoch=epoch)
        return self.checked(self.controller.allocate_producer_ids(request))


def new_topic(name: str, partitions: int = 1, replication_factor: int = -1, *,
              configs: dict[str, str | None] | None = None,
              assignments: list[list[int]] | None = None) -> Data:
    return TOPIC.make(
        name=name, num_partitions=-1 if assignments else partitions,
        replication_factor=-1 if assignments else replication_factor,
        assignments=[ASSIGNMENT.make(partition_index=i, broker_ids=a) for i, a in enumerate(assignments or [])],
        configs=[TOPIC_CONFIG.make(name=k, value=v) for k, v in (configs or {}).items()])


def names(result: ControllerResult) -> list[str]:
    return [record.name for record in result.records]
