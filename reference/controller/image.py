"""The metadata image: the cluster's state as every KRaft node rebuilds it from ``__cluster_metadata``.

Theory of operation
-------------------
Mirrors Kafka's ``MetadataImage`` and ``MetadataDelta`` (``org.apache.kafka.image``), simplified: a
record is applied in place instead of into a delta that is later published.  Replaying the
committed records of the metadata log, in offset order, from an empty image gives every node the
same image; the active controller also applies its own records to a copy (:meth:`copy`) to see the
effect of an operation before the quorum commits it.

How each record changes the image (Kafka's ``*Delta.replay`` and ``ClusterControlManager.replay``):

* **RegisterBrokerRecord** replaces broker ``broker_id``'s registration (a restart re-registers with
  a new incarnation and a new epoch).  **UnregisterBrokerRecord** removes it.  **FenceBrokerRecord**,
  **UnfenceBrokerRecord** and **BrokerRegistrationChangeRecord** change it; the last one carries
  each change as "no change" by default: ``fenced`` -1 unfence / 0 none / 1 fence
  (``BrokerRegistrationFencingChange``), ``in_controlled_shutdown`` 0 none / 1 in it, ``log_dirs``
  [] none, ``cordoned_log_dirs`` null none.  All of them name the broker *and its epoch*; a record
  for an unknown broker or another epoch cannot follow the image (:class:`MetadataReplayError`).
  Fencing changes no partition: the controller writes the PartitionChangeRecords that take the
  broker out of ISRs itself.
* **TopicRecord** adds a topic without partitions; **PartitionRecord** adds a partition, complete.
  A PartitionRecord without directories (v0, or all ``MIGRATING``) gets one ``MIGRATING`` directory
  per replica, as ``PartitionRegistration`` does, so ``directories`` always matches ``replicas``.
* **PartitionChangeRecord** merges into the partition as ``PartitionRegistration.merge``: a null
  list (isr, replicas, removing/adding replicas, directories, ELR, last known ELR) means unchanged;
  ``leader`` -2 (NO_LEADER_CHANGE) keeps leader and leader epoch, any other value (-1 = no leader,
  or even the same leader) sets it and bumps the **leader epoch** by one; ``leader_recovery_state``
  -1 means unchanged.  Every PartitionChangeRecord bumps the **partition epoch** by one.
* **RemoveTopicRecord** removes the topic, its partitions and its topic configs.
* **ClearElrRecord** empties the ELR and last known ELR of one topic's partitions (all topics when
  ``topic_name`` is ""), each cleared partition getting a partition epoch bump, as Kafka replays it
  through a PartitionChangeRecord.
* **ConfigRecord** sets ``configs[(resource_type, resource_name)][name]``; a null value deletes the
  key, and a resource left without keys disappears.
* **FeatureLevelRecord** sets a finalized feature level; level 0 removes a feature (other than
  ``metadata.version``).
* **ProducerIdsRecord** moves ``next_producer_id`` forward (it never goes back).
* **RegisterControllerRecord** replaces a controller's registration (KIP-919).
* **BeginTransactionRecord** / **EndTransactionRecord** / **AbortTransactionRecord** (KIP-868): the
  records between Begin and End apply together; an Abort undoes everything since the Begin.
* **NoOpRecord** and the records of features refka does not model (ACLs, SCRAM credentials,
  delegation tokens, client quotas, ZooKeeper migration state) change nothing but :attr:`offset`.

Writing the image back as records (:meth:`MetadataImage.to_records`, Kafka's ``MetadataImage.write``
and the ``write`` / ``toRecord`` methods of its parts) gives what a KIP-630 snapshot holds: the
records that, replayed into an empty image, rebuild this one.  In Kafka's order: FeatureLevelRecords
(``metadata.version`` first, as it decides how the rest is read), a RegisterBrokerRecord per broker
(fencing, controlled shutdown, log dirs and the **broker epoch** are fields of it, so a snapshot keeps
the epoch although in the log it is the offset of the registration), a RegisterControllerRecord per
controller, per topic a TopicRecord then one complete PartitionRecord per partition (ISR, ELR,
leader and partition epochs as fields; an empty ELR is left out, as Kafka leaves the tagged field
unset), a ConfigRecord per key, and one ProducerIdsRecord (broker -1, epoch -1) once a block was
handed out.  What does not round-trip: :attr:`offset` (the snapshot's end offset carries it), the
records of features the image does not model (ACLs, SCRAM credentials, delegation tokens, client
quotas: they are not in the image, so they are not in the records either), and an open metadata
transaction (refused: only a whole transaction can be written).

Invariants (:meth:`MetadataImage.check_valid`): topics by name and by id are the same topics; per
partition: replicas without duplicates, ``isr`` a subset of the replicas without duplicates, the
leader in the ISR or -1 (NO_LEADER), the ELR within the replicas and disjoint from the ISR, removing
and adding replicas within the replicas and disjoint, one directory per replica, leader recovery
state 0 or 1; brokers and controllers keyed by their own id; no empty config resource; offsets only
increase.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from reference.controller.metadata_records import (
    CONFIG_RESOURCE_TOPIC,
    LEADER_RECOVERY_NO_CHANGE,
    METADATA_VERSION_FEATURE,
    NO_LEADER,
    NO_LEADER_CHANGE,
    REGISTER_BROKER_RECORD,
    REGISTER_CONTROLLER_RECORD,
    ZERO_UUID_TEXT,
    MetadataRecord,
    iter_metadata_batch,
    make,
)
from reference.protocol.schema import Data

MIGRATING_DIRECTORY: Final = ZERO_UUID_TEXT  # DirectoryId.MIGRATING: the replica's directory is not known yet
LEADER_RECOVERED: Final = 0  # LeaderRecoveryState.RECOVERED
LEADER_RECOVERING: Final = 1  # LeaderRecoveryState.RECOVERING: elected uncleanly, not yet recovered

# BrokerRegistrationFencingChange and BrokerRegistrationInControlledShutdownChange values.
FENCING_CHANGE: Final = {-1: False, 0: None, 1: True}  # value -> new ``fenced`` (None: unchanged)
CONTROLLED_SHUTDOWN_CHANGE: Final = {0: None, 1: True}


class MetadataReplayError(RuntimeError):
    """A record that cannot follow the image: a bug in the writer or a corrupt log.

    Kafka's replay throws a RuntimeException here and its fault handler stops the node; there is
    no error code, because nothing in a request caused it.
    """


# -- the parts of the image -------------------------------------------------------------------------


@dataclass
class Endpoint:
    """A listener of a broker or controller."""

    name: str
    host: str
    port: int
    security_protocol: int  # 0 PLAINTEXT, 1 SSL, 2 SASL_PLAINTEXT, 3 SASL_SSL


@dataclass
class BrokerRegistration:
    """Kafka's ``BrokerRegistration``: one registered broker, as of its latest registration."""

    broker_id: int
    incarnation_id: str
    broker_epoch: int
    listeners: list[Endpoint]
    rack: str | None
    fenced: bool
    in_controlled_shutdown: bool
    features: dict[str, tuple[int, int]]  # name -> (min supported, max supported)
    log_dirs: list[str] = field(default_factory=list)
    cordoned_log_dirs: list[str] = field(default_factory=list)

    def to_record(self) -> MetadataRecord:
        """The RegisterBrokerRecord that replays to this registration (``BrokerRegistration.toRecord``)."""
        endpoint = REGISTER_BROKER_RECORD.struct("BrokerEndpoint")
        feature = REGISTER_BROKER_RECORD.struct("BrokerFeature")
        return make(
            "RegisterBrokerRecord", broker_id=self.broker_id, incarnation_id=self.incarnation_id,
            broker_epoch=self.broker_epoch, rack=self.rack, fenced=self.fenced,
            in_controlled_shutdown=self.in_controlled_shutdown,
            end_points=[endpoint.make(name=e.name, host=e.host, port=e.port,
                                      security_protocol=e.security_protocol) for e in self.listeners],
            features=[feature.make(name=name, min_supported_version=low, max_supported_version=high)
                      for name, (low, high) in self.features.items()],
            log_dirs=list(self.log_dirs), cordoned_log_dirs=list(self.cordoned_log_dirs) or None,
        )


@dataclass
class ControllerRegistration:
    """Kafka's ``ControllerRegistration`` (KIP-919)."""

    controller_id: int
    incarnation_id: str
    zk_migration_ready: bool
    listeners: list[Endpoint]
    features: dict[str, tuple[int, int]]

    def to_record(self) -> MetadataRecord:
        """The RegisterControllerRecord that replays to this registration."""
        endpoint = REGISTER_CONTROLLER_RECORD.struct("ControllerEndpoint")
        feature = REGISTER_CONTROLLER_RECORD.struct("ControllerFeature")
        return make(
            "RegisterControllerRecord", controller_id=self.controller_id, incarnation_id=self.incarnation_id,
            zk_migration_ready=self.zk_migration_ready,
            end_points=[endpoint.make(name=e.name, host=e.host, port=e.port,
                                      security_protocol=e.security_protocol) for e in self.listeners],
            features=[feature.make(name=name, min_supported_version=low, max_supported_version=high)
                      for name, (low, high) in self.features.items()],
        )


@dataclass
class PartitionRegistration:
    """Kafka's ``PartitionRegistration``: a partition's replicas, ISR, leader and epochs."""

    replicas: list[int]
    isr: list[int]
    removing_replicas: list[int]
    adding_replicas: list[int]
    leader: int
    leader_recovery_state: int
    leader_epoch: int
    partition_epoch: int
    elr: list[int]
    last_known_elr: list[int]
    directories: list[str]

    @classmethod
    def from_record(cls, record: Data) -> PartitionRegistration:
        """The registration a PartitionRecord describes."""
        _check_leader_recovery_state(record.leader_recovery_state)
        return cls(
            replicas=list(record.replicas),
            isr=list(record.isr),
            removing_replicas=list(record.removing_replicas),
            adding_replicas=list(record.adding_replicas),
            leader=record.leader,
            leader_recovery_state=record.leader_recovery_state,
            leader_epoch=record.leader_epoch,
            partition_epoch=record.partition_epoch,
            elr=list(record.eligible_leader_replicas or []),
            last_known_elr=list(record.last_known_elr or []),
            directories=_default_to_migrating(list(record.directories), len(record.replicas)),
        )

    def to_record(self, topic_id: str, partition_id: int) -> MetadataRecord:
        """The PartitionRecord that replays to this registration (``PartitionRegistration.toRecord``:
        the ELR and last known ELR, tagged fields, only when not empty)."""
        return make(
            "PartitionRecord", partition_id=partition_id, topic_id=topic_id, replicas=list(self.replicas),
            isr=list(self.isr), removing_replicas=list(self.removing_replicas),
            adding_replicas=list(self.adding_replicas), leader=self.leader,
            leader_recovery_state=self.leader_recovery_state, leader_epoch=self.leader_epoch,
            partition_epoch=self.partition_epoch, directories=list(self.directories),
            eligible_leader_replicas=list(self.elr) or None, last_known_elr=list(self.last_known_elr) or None,
        )

    def merge(self, change: Data) -> PartitionRegistration:
        """This registration with a PartitionChangeRecord applied (``PartitionRegistration.merge``)."""
        replicas = self.replicas if change.replicas is None else list(change.replicas)
        if (change.replicas is not None and change.directories
                and len(change.directories) != len(change.replicas)):
            raise MetadataReplayError(f"PartitionChangeRecord with {len(change.replicas)} replicas "
                                      f"but {len(change.directories)} directories")
        directories = self.directories if change.directories is None else list(change.directories)
        directories = _default_to_migrating(directories, len(replicas))
        if len(directories) != len(replicas):
            raise MetadataReplayError(f"{len(replicas)} replicas but {len(directories)} directories")
        if change.leader == NO_LEADER_CHANGE:
            leader, leader_epoch = self.leader, self.leader_epoch
        else:
            leader, leader_epoch = change.leader, self.leader_epoch + 1
        leader_recovery_state = self.leader_recovery_state
        if change.leader_recovery_state != LEADER_RECOVERY_NO_CHANGE:
            _check_leader_recovery_state(change.leader_recovery_state)
            leader_recovery_state = change.leader_recovery_state
        return PartitionRegistration(
            replicas=replicas,
            isr=self.isr if change.isr is None else list(change.isr),
            removing_replicas=(self.removing_replicas if change.removing_replicas is None
                               else list(change.removing_replicas)),
            adding_replicas=self.adding_replicas if change.adding_replicas is None else list(change.adding_replicas),
            leader=leader,
            leader_recovery_state=leader_recovery_state,
            leader_epoch=leader_epoch,
            partition_epoch=self.partition_epoch + 1,
            elr=self.elr if change.eligible_leader_replicas is None else list(change.eligible_leader_replicas),
            last_known_elr=self.last_known_elr if change.last_known_elr is None else list(change.last_known_elr),
            directories=directories,
        )

    def problems(self) -> list[str]:
        """The invariants this partition breaks (empty when valid)."""
        found = []
        replicas = set(self.replicas)
        if len(replicas) != len(self.replicas):
            found.append(f"duplicate replicas {self.replicas}")
        if len(set(self.isr)) != len(self.isr):
            found.append(f"duplicate ISR members {self.isr}")
        if not set(self.isr) <= replicas:
            found.append(f"ISR {self.isr} not a subset of replicas {self.replicas}")
        if self.leader != NO_LEADER and self.leader not in self.isr:
            found.append(f"leader {self.leader} neither in ISR {self.isr} nor -1")
        if not set(self.elr) <= replicas:
            found.append(f"ELR {self.elr} not a subset of replicas {self.replicas}")
        if set(self.elr) & set(self.isr):
            found.append(f"ELR {self.elr} overlaps ISR {self.isr}")
        if not set(self.removing_replicas) <= replicas or not set(self.adding_replicas) <= replicas:
            found.append(f"removing {self.removing_replicas} / adding {self.adding_replicas} outside replicas")
        if set(self.removing_replicas) & set(self.adding_replicas):
            found.append(f"replicas both removing and adding: {self.removing_replicas}, {self.adding_replicas}")
        if len(self.directories) != len(self.replicas):
            found.append(f"{len(self.directories)} directories for {len(self.replicas)} replicas")
        if self.leader_recovery_state not in (LEADER_RECOVERED, LEADER_RECOVERING):
            found.append(f"leader recovery state {self.leader_recovery_state}")
        return found


def _check_leader_recovery_state(value: int) -> None:
    if value not in (LEADER_RECOVERED, LEADER_RECOVERING):
        raise MetadataReplayError(f"unknown leader recovery state {value}")  # LeaderRecoveryState.of


def _default_to_migrating(directories: list[str], replica_count: int) -> list[str]:
    """No directories, or only MIGRATING ones: one MIGRATING per replica (defaultToMigrating)."""
    if all(directory == MIGRATING_DIRECTORY for directory in directories):
        return [MIGRATING_DIRECTORY] * replica_count
    return directories


@dataclass
class TopicImage:
    """A topic: its name, id and partitions by partition id."""

    name: str
    topic_id: str  # Kafka's text form of the Uuid
    partitions: dict[int, PartitionRegistration] = field(default_factory=dict)


# -- the image ---------------------------------------------------------------------------------------


def _endpoints(entries: Iterable[Data]) -> list[Endpoint]:
    return [Endpoint(e.name, e.host, e.port, e.security_protocol) for e in entries]


def _features(entries: Iterable[Data]) -> dict[str, tuple[int, int]]:
    return {f.name: (f.min_supported_version, f.max_supported_version) for f in entries}


@dataclass
class MetadataImage:
    """The cluster metadata after replaying the log up to :attr:`offset`."""

    features: dict[str, int] = field(default_factory=dict)  # finalized levels: "metadata.version" -> 30
    brokers: dict[int, BrokerRegistration] = field(default_factory=dict)
    controllers: dict[int, ControllerRegistration] = field(default_factory=dict)
    topics: dict[str, TopicImage] = field(default_factory=dict)
    topics_by_id: dict[str, TopicImage] = field(default_factory=dict)
    # (resource type: 2 topic, 4 broker; resource name) -> key -> value
    configs: dict[tuple[int, str], dict[str, str]] = field(default_factory=dict)
    next_producer_id: int = 0  # the first id of the next block (0 before any block was handed out)
    offset: int = -1  # offset of the last applied record
    # The image as it was before a BeginTransactionRecord, restored by an AbortTransactionRecord.
    _before_transaction: MetadataImage | None = field(default=None, repr=False, compare=False)

    # -- replay --------------------------------------------------------------------------------------

    def apply(self, record: MetadataRecord, offset: int) -> None:
        """Replay ``record``, found at ``offset`` of the metadata log (offsets must increase).

        Raises :class:`MetadataReplayError` for a record that cannot follow this image.
        """
        if offset <= self.offset:
            raise MetadataReplayError(f"{record.name} at offset {offset} does not follow offset {self.offset}")
        replay = _REPLAY.get(record.name)
        if replay is None:
            raise MetadataReplayError(f"no replay rule for {record.name}")
        replay(self, record.data)
        self.offset = offset

    def apply_batch(self, batch: bytes | bytearray | memoryview) -> None:
        """Replay every metadata record of a ``__cluster_metadata`` batch (control batches skipped)."""
        for offset, record in iter_metadata_batch(batch):
            self.apply(record, offset)

    def copy(self) -> MetadataImage:
        """A deep copy, for the controller to apply records to speculatively."""
        return copy.deepcopy(self)

    @property
    def in_transaction(self) -> bool:
        """Whether a metadata transaction (KIP-868) has begun and not yet ended."""
        return self._before_transaction is not None

    @property
    def metadata_version(self) -> int | None:
        return self.features.get(METADATA_VERSION_FEATURE)

    # -- writing the image as records (a snapshot's content) -----------------------------------------

    def to_records(self) -> list[MetadataRecord]:
        """The records that, replayed into an empty image, rebuild this one (all but :attr:`offset`),
        in the order of Kafka's ``MetadataImage.write`` (see the module docstring).

        Raises ``ValueError`` inside a metadata transaction (KIP-868), whose end is not known yet.
        """
        if self.in_transaction:
            raise ValueError("the image is inside a metadata transaction: write it once the transaction ends")
        # metadata.version first: it says how the records after it are read.
        features = sorted(self.features.items(), key=lambda item: item[0] != METADATA_VERSION_FEATURE)
        records = [make("FeatureLevelRecord", name=name, feature_level=level) for name, level in features]
        records += [broker.to_record() for broker in self.brokers.values()]
        records += [controller.to_record() for controller in self.controllers.values()]
        for topic in self.topics.values():
            records.append(make("TopicRecord", name=topic.name, topic_id=topic.topic_id))
            records += [partition.to_record(topic.topic_id, partition_id)
                        for partition_id, partition in topic.partitions.items()]
        records += [make("ConfigRecord", resource_type=resource_type, resource_name=resource_name,
                         name=name, value=value)
                    for (resource_type, resource_name), keys in self.configs.items()
                    for name, value in keys.items()]
        if self.next_producer_id > 0:  # ProducerIdsImage.write: the block's owner is not kept
            records.append(make("ProducerIdsRecord", broker_id=-1, broker_epoch=-1,
                                next_producer_id=self.next_producer_id))
        return records

    # -- brokers and controllers --------------------------------------------------------------------

    def _replay_register_broker(self, record: Data) -> None:
        self.brokers[record.broker_id] = BrokerRegistration(
            broker_id=record.broker_id,
            incarnation_id=record.incarnation_id,
            broker_epoch=record.broker_epoch,
            listeners=_endpoints(record.end_points),
            rack=record.rack,
            fenced=record.fenced,
            in_controlled_shutdown=record.in_controlled_shutdown,
            features=_features(record.features),
            log_dirs=list(record.log_dirs),
            cordoned_log_dirs=list(record.cordoned_log_dirs or []),
        )

    def _registration(self, what: str, broker_id: int, broker_epoch: int) -> BrokerRegistration:
        registration = self.brokers.get(broker_id)
        if registration is None:
            raise MetadataReplayError(f"{what}: no broker registration for broker {broker_id}")
        if registration.broker_epoch != broker_epoch:
            raise MetadataReplayError(f"{what}: broker {broker_id} is registered with epoch "
                                      f"{registration.broker_epoch}, not {broker_epoch}")
        return registration

    def _replay_unregister_broker(self, record: Data) -> None:
        self._registration("UnregisterBrokerRecord", record.broker_id, record.broker_epoch)
        del self.brokers[record.broker_id]

    def _replay_fence_broker(self, record: Data) -> None:
        self._registration("FenceBrokerRecord", record.id, record.epoch).fenced = True

    def _replay_unfence_broker(self, record: Data) -> None:
        self._registration("UnfenceBrokerRecord", record.id, record.epoch).fenced = False

    def _replay_broker_registration_change(self, record: Data) -> None:
        registration = self._registration("BrokerRegistrationChangeRecord", record.broker_id, record.broker_epoch)
        if record.fenced not in FENCING_CHANGE or record.in_controlled_shutdown not in CONTROLLED_SHUTDOWN_CHANGE:
            raise MetadataReplayError(f"BrokerRegistrationChangeRecord with fenced={record.fenced}, "
                                      f"in_controlled_shutdown={record.in_controlled_shutdown}")
        fenced = FENCING_CHANGE[record.fenced]
        if fenced is not None:
            registration.fenced = fenced
        if CONTROLLED_SHUTDOWN_CHANGE[record.in_controlled_shutdown]:
            registration.in_controlled_shutdown = True
        if record.log_dirs:
            registration.log_dirs = list(record.log_dirs)
        if record.cordoned_log_dirs is not None:
            registration.cordoned_log_dirs = list(record.cordoned_log_dirs)

    def _replay_register_controller(self, record: Data) -> None:
        self.controllers[record.controller_id] = ControllerRegistration(
            controller_id=record.controller_id,
            incarnation_id=record.incarnation_id,
            zk_migration_ready=record.zk_migration_ready,
            listeners=_endpoints(record.end_points),
            features=_features(record.features),
        )

    # -- topics and partitions ----------------------------------------------------------------------

    def _topic_by_id(self, what: str, topic_id: str) -> TopicImage:
        topic = self.topics_by_id.get(topic_id)
        if topic is None:
            raise MetadataReplayError(f"{what}: no topic with id {topic_id}")
        return topic

    def _replay_topic(self, record: Data) -> None:
        if record.name in self.topics or record.topic_id in self.topics_by_id:
            raise MetadataReplayError(f"TopicRecord: topic {record.name} / id {record.topic_id} already exists")
        topic = TopicImage(record.name, record.topic_id)
        self.topics[topic.name] = topic
        self.topics_by_id[topic.topic_id] = topic

    def _replay_partition(self, record: Data) -> None:
        topic = self._topic_by_id("PartitionRecord", record.topic_id)
        topic.partitions[record.partition_id] = PartitionRegistration.from_record(record)

    def _replay_partition_change(self, record: Data) -> None:
        topic = self._topic_by_id("PartitionChangeRecord", record.topic_id)
        partition = topic.partitions.get(record.partition_id)
        if partition is None:
            raise MetadataReplayError(f"PartitionChangeRecord: {topic.name} has no partition {record.partition_id}")
        topic.partitions[record.partition_id] = partition.merge(record)

    def _replay_remove_topic(self, record: Data) -> None:
        topic = self._topic_by_id("RemoveTopicRecord", record.topic_id)
        del self.topics_by_id[topic.topic_id]
        del self.topics[topic.name]
        self.configs.pop((CONFIG_RESOURCE_TOPIC, topic.name), None)

    def _replay_clear_elr(self, record: Data) -> None:
        if record.topic_name:
            topic = self.topics.get(record.topic_name)
            if topic is None:
                raise MetadataReplayError(f"ClearElrRecord: no topic named {record.topic_name}")
            topics = [topic]
        else:
            topics = list(self.topics.values())
        for topic in topics:
            for partition_id, partition in topic.partitions.items():
                if partition.elr or partition.last_known_elr:
                    clear = Data(replicas=None, directories=None, isr=None, removing_replicas=None,
                                 adding_replicas=None, leader=NO_LEADER_CHANGE,
                                 leader_recovery_state=LEADER_RECOVERY_NO_CHANGE,
                                 eligible_leader_replicas=[], last_known_elr=[])
                    topic.partitions[partition_id] = partition.merge(clear)

    # -- configs, features, producer ids ------------------------------------------------------------

    def _replay_config(self, record: Data) -> None:
        resource = (record.resource_type, record.resource_name)
        if record.value is None:
            keys = self.configs.get(resource)
            if keys is not None:
                keys.pop(record.name, None)
                if not keys:
                    del self.configs[resource]
        else:
            self.configs.setdefault(resource, {})[record.name] = record.value

    def _replay_feature_level(self, record: Data) -> None:
        if record.feature_level == 0 and record.name != METADATA_VERSION_FEATURE:
            self.features.pop(record.name, None)
        else:
            self.features[record.name] = record.feature_level

    def _replay_producer_ids(self, record: Data) -> None:
        if record.next_producer_id <= self.next_producer_id:
            raise MetadataReplayError(f"ProducerIdsRecord: next producer id {record.next_producer_id} does not "
                                      f"move past {self.next_producer_id}")
        self.next_producer_id = record.next_producer_id

    # -- metadata transactions (KIP-868) and records without effect ---------------------------------

    def _replay_begin_transaction(self, record: Data) -> None:
        if self._before_transaction is not None:
            raise MetadataReplayError("BeginTransactionRecord inside a transaction")
        self._before_transaction = self.copy()

    def _replay_end_transaction(self, record: Data) -> None:
        if self._before_transaction is None:
            raise MetadataReplayError("EndTransactionRecord without a transaction")
        self._before_transaction = None

    def _replay_abort_transaction(self, record: Data) -> None:
        before = self._before_transaction
        if before is None:
            raise MetadataReplayError("AbortTransactionRecord without a transaction")
        for name in ("features", "brokers", "controllers", "topics", "topics_by_id", "configs", "next_producer_id"):
            setattr(self, name, getattr(before, name))
        self._before_transaction = None

    def _replay_nothing(self, record: Data) -> None:
        """NoOpRecord, and records of features the image does not model."""

    # -- invariants ----------------------------------------------------------------------------------

    def check_valid(self) -> None:
        """Raise ``AssertionError`` naming every invariant (see the module docstring) the image breaks."""
        problems: list[str] = []
        if {id(t) for t in self.topics.values()} != {id(t) for t in self.topics_by_id.values()}:
            problems.append("topics by name and by id differ")
        for name, topic in self.topics.items():
            if topic.name != name or self.topics_by_id.get(topic.topic_id) is not topic:
                problems.append(f"topic {name} filed under the wrong name or id")
            for partition_id, partition in topic.partitions.items():
                problems.extend(f"{name}-{partition_id}: {p}" for p in partition.problems())
        for broker_id, broker in self.brokers.items():
            if broker.broker_id != broker_id:
                problems.append(f"broker {broker.broker_id} filed under id {broker_id}")
        for controller_id, controller in self.controllers.items():
            if controller.controller_id != controller_id:
                problems.append(f"controller {controller.controller_id} filed under id {controller_id}")
        problems.extend(f"config resource {resource} has no keys" for resource, keys in self.configs.items()
                        if not keys)
        if problems:
            raise AssertionError("invalid metadata image:\n" + "\n".join(problems))


_REPLAY: Final[dict[str, Callable[[MetadataImage, Data], Any]]] = {
    "RegisterBrokerRecord": MetadataImage._replay_register_broker,
    "UnregisterBrokerRecord": MetadataImage._replay_unregister_broker,
    "FenceBrokerRecord": MetadataImage._replay_fence_broker,
    "UnfenceBrokerRecord": MetadataImage._replay_unfence_broker,
    "BrokerRegistrationChangeRecord": MetadataImage._replay_broker_registration_change,
    "RegisterControllerRecord": MetadataImage._replay_register_controller,
    "TopicRecord": MetadataImage._replay_topic,
    "PartitionRecord": MetadataImage._replay_partition,
    "PartitionChangeRecord": MetadataImage._replay_partition_change,
    "RemoveTopicRecord": MetadataImage._replay_remove_topic,
    "ClearElrRecord": MetadataImage._replay_clear_elr,
    "ConfigRecord": MetadataImage._replay_config,
    "FeatureLevelRecord": MetadataImage._replay_feature_level,
    "ProducerIdsRecord": MetadataImage._replay_producer_ids,
    "BeginTransactionRecord": MetadataImage._replay_begin_transaction,
    "EndTransactionRecord": MetadataImage._replay_end_transaction,
    "AbortTransactionRecord": MetadataImage._replay_abort_transaction,
    "NoOpRecord": MetadataImage._replay_nothing,
    # Not modelled by refka's image: kept in the log, no effect here.
    "AccessControlEntryRecord": MetadataImage._replay_nothing,
    "RemoveAccessControlEntryRecord": MetadataImage._replay_nothing,
    "UserScramCredentialRecord": MetadataImage._replay_nothing,
    "RemoveUserScramCredentialRecord": MetadataImage._replay_nothing,
    "DelegationTokenRecord": MetadataImage._replay_nothing,
    "RemoveDelegationTokenRecord": MetadataImage._replay_nothing,
    "ClientQuotaRecord": MetadataImage._replay_nothing,
    "ZkMigrationStateRecord": MetadataImage._replay_nothing,
}
