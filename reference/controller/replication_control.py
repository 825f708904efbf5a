"""ISR changes and leader elections over the image: Kafka's ``ReplicationControlManager`` (part).

Theory of operation
-------------------
Functions from (image, config, request) to PartitionChangeRecords and a response; none changes the
image (the quorum controller applies the records).  Every partition change goes through
:func:`reference.controller.elections.build_partition_change`.

* :func:`leader_and_isr_updates` is Kafka's ``generateLeaderAndIsrUpdates``: for each partition,
  remove ``broker_to_remove`` (fenced, shutting down) from the ISR and leadership, let
  ``broker_to_add`` (being unfenced) lead leaderless partitions, or strip a broker that shut down
  uncleanly from ISR and ELR (KIP-966: its log may be truncated, so it is no longer eligible).
  An active broker is registered, unfenced and not in controlled shutdown.  The election is
  UNCLEAN when the topic's ``unclean.leader.election.enable`` is true, else ONLINE.
* :func:`alter_partition` (AlterPartition, key 56) checks, per partition and in Kafka's order:
  unknown topic id UNKNOWN_TOPIC_ID; unknown partition UNKNOWN_TOPIC_OR_PARTITION; leader or
  partition epoch *above* the controller's NOT_CONTROLLER (this controller is behind, the leader
  should find the real one); leader epoch below FENCED_LEADER_EPOCH; sender not the leader
  INVALID_REQUEST; partition epoch below INVALID_UPDATE_VERSION; an ISR with a replica outside
  the assignment, a duplicate, or without the leader INVALID_REQUEST; a RECOVERING leader with an
  ISR of more than one, or RECOVERED -> RECOVERING, INVALID_REQUEST; a replica that is not
  registered, fenced, in controlled shutdown or (v3) with a stale broker epoch INELIGIBLE_REPLICA
  (KIP-903).  The request's own broker epoch must be current (STALE_BROKER_EPOCH, top level).
* :func:`elect_leaders` (ElectLeaders, key 43): ELECTION_NOT_NEEDED when the preferred replica
  already leads (preferred) or the partition has a leader (unclean); no change possible:
  PREFERRED_LEADER_NOT_AVAILABLE / ELIGIBLE_LEADERS_NOT_AVAILABLE.  A null partition list means
  every partition, and then partitions needing no election are left out of the answer.
* :func:`preferred_leader_elections` and :func:`unclean_leader_elections` are the periodic tasks
  (``auto.leader.rebalance.enable``; unclean elections for leaderless partitions of topics that
  allow them), each at most ``MAX_ELECTIONS_PER_IMBALANCE`` records per run.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from ..errors import ErrorCode, Errors, KafkaError, by_name
from ..protocol.messages import alter_partition as alter_partition_api
from ..protocol.messages import elect_leaders as elect_leaders_api
from ..protocol.schema import Data
from .controller_config import MAX_ELECTIONS_PER_IMBALANCE, ControllerConfig, elr_enabled
from .elections import NO_LEADER, RECOVERED, RECOVERING, Election, PartitionChange, build_partition_change
from .metadata_records import MetadataRecord, make, uuid_text

if TYPE_CHECKING:
    from .image import MetadataImage, PartitionRegistration, TopicImage

STALE_BROKER_EPOCH = by_name["STALE_BROKER_EPOCH"]
INVALID_UPDATE_VERSION = by_name["INVALID_UPDATE_VERSION"]
INELIGIBLE_REPLICA = by_name["INELIGIBLE_REPLICA"]
PREFERRED_LEADER_NOT_AVAILABLE = by_name["PREFERRED_LEADER_NOT_AVAILABLE"]
ELIGIBLE_LEADERS_NOT_AVAILABLE = by_name["ELIGIBLE_LEADERS_NOT_AVAILABLE"]
NEW_LEADER_ELECTED = by_name["NEW_LEADER_ELECTED"]

PREFERRED_ELECTION = 0  # ElectionType.PREFERRED
UNCLEAN_ELECTION = 1  # ElectionType.UNCLEAN

# Kafka's default messages (Errors.X.message()) for errors answered without a specific one.
DEFAULT_MESSAGES = {
    Errors.ELECTION_NOT_NEEDED.code: "Leader election not needed for topic partition.",
    PREFERRED_LEADER_NOT_AVAILABLE.code: "The preferred leader was not available.",
    ELIGIBLE_LEADERS_NOT_AVAILABLE.code: "Eligible topic partition leaders are not available.",
}

AP_TOPIC = alter_partition_api.RESPONSE.struct("TopicData")
AP_PARTITION = alter_partition_api.RESPONSE.struct("PartitionData")
EL_TOPIC = elect_leaders_api.RESPONSE.struct("ReplicaElectionResult")
EL_PARTITION = elect_leaders_api.RESPONSE.struct("PartitionResult")


def uuid_from_text(text: str) -> uuid.UUID:
    """Kafka's 22-character Uuid text as a :class:`uuid.UUID` (the wire type of request fields)."""
    return uuid.UUID(bytes=base64.urlsafe_b64decode(text + "=="))


# -- brokers -------------------------------------------------------------------------------------------


def is_active(image: MetadataImage, broker_id: int) -> bool:
    """``ClusterControlManager.isActive``: registered, unfenced and not in controlled shutdown."""
    registration = image.brokers.get(broker_id)
    return registration is not None and not registration.fenced and not registration.in_controlled_shutdown


def check_broker_epoch(image: MetadataImage, broker_id: int, broker_epoch: int) -> None:
    """``ClusterControlManager.checkBrokerEpoch``: STALE_BROKER_EPOCH unless ``broker_epoch`` is the
    broker's current registration epoch."""
    registration = image.brokers.get(broker_id)
    if registration is None:
        raise KafkaError(STALE_BROKER_EPOCH, f"No broker registration found for broker id {broker_id}")
    if registration.broker_epoch != broker_epoch:
        raise KafkaError(STALE_BROKER_EPOCH,
                         f"Expected broker epoch {registration.broker_epoch}, but got broker epoch {broker_epoch}")


# -- partitions ----------------------------------------------------------------------------------------


def all_partitions(image: MetadataImage) -> Iterator[tuple[TopicImage, int, PartitionRegistration]]:
    for topic in list(image.topics.values()):
        for partition_id in sorted(topic.partitions):
            yield topic, partition_id, topic.partitions[partition_id]


def partitions_with_broker_in_isr(image: MetadataImage, broker_id: int) -> list[tuple[TopicImage, int]]:
    return [(t, p) for t, p, part in all_partitions(image) if broker_id in part.isr]


def partitions_with_broker_in_elr(image: MetadataImage, broker_id: int) -> list[tuple[TopicImage, int]]:
    return [(t, p) for t, p, part in all_partitions(image) if broker_id in part.elr]


def partitions_with_no_leader(image: MetadataImage) -> list[tuple[TopicImage, int]]:
    return [(t, p) for t, p, part in all_partitions(image) if part.leader == NO_LEADER]


def has_leaderships(image: MetadataImage, broker_id: int) -> bool:
    return any(part.leader == broker_id for _t, _p, part in all_partitions(image))


def change_record(topic: TopicImage, partition_id: int, change: PartitionChange) -> MetadataRecord:
    return make("PartitionChangeRecord", topic_id=topic.topic_id, partition_id=partition_id,
                **change.record_fields())


def build_change(image: MetadataImage, config: ControllerConfig, topic: TopicImage, partition_id: int,
                 *, election: Election | None = None, target_isr: list[int] | None = None,
                 acceptable: set[int] | None = None, unclean_shutdown_replicas: Iterable[int] = (),
                 target_leader_recovery_state: int | None = None) -> PartitionChange | None:
    """One partition through the builder, with the topic's min ISR, unclean setting and ELR flag.

    ``election`` None: UNCLEAN when the topic allows it, else ONLINE.  ``acceptable`` None: the
    active brokers may lead."""
    if election is None:
        election = (Election.UNCLEAN if config.unclean_leader_election_enabled(image, topic.name)
                    else Election.ONLINE)

    def is_acceptable_leader(broker_id: int) -> bool:
        return broker_id in acceptable if acceptable is not None else is_active(image, broker_id)

    return build_partition_change(
        topic.partitions[partition_id], is_acceptable_leader=is_acceptable_leader,
        min_isr=config.effective_min_isr(image, topic.name), elr_enabled=elr_enabled(image),
        target_isr=target_isr, election=election, unclean_shutdown_replicas=list(unclean_shutdown_replicas),
        target_leader_recovery_state=target_leader_recovery_state)


def leader_and_isr_updates(image: MetadataImage, config: ControllerConfig,
                           partitions: Iterable[tuple[TopicImage, int]], *, broker_to_remove: int = NO_LEADER,
                           broker_to_add: int = NO_LEADER,
                           unclean_shutdown_broker: int = NO_LEADER) -> list[MetadataRecord]:
    """Kafka's ``generateLeaderAndIsrUpdates`` (see the module docstring)."""
    acceptable = {broker_id for broker_id in image.brokers
                  if broker_id not in (broker_to_remove, unclean_shutdown_broker)
                  and (broker_id == broker_to_add or is_active(image, broker_id))}
    removed = {broker_to_remove, unclean_shutdown_broker}
    records = []
    for topic, partition_id in partitions:
        partition = topic.partitions[partition_id]
        change = build_change(
            image, config, topic, partition_id, acceptable=acceptable,
            target_isr=[r for r in partition.isr if r not in removed],
            unclean_shutdown_replicas=[] if unclean_shutdown_broker == NO_LEADER else [unclean_shutdown_broker])
        if change is not None:
            records.append(change_record(topic, partition_id, change))
    return records


# -- AlterPartition (56) ---------------------------------------------------------------------------------


def alter_partition(image: MetadataImage, config: ControllerConfig, request: Data,
                    version: int) -> tuple[list[MetadataRecord], Data]:
    """AlterPartition v2-3 from a partition leader (see the module docstring for the checks)."""
    response = alter_partition_api.RESPONSE.make(topics=[])
    try:
        check_broker_epoch(image, request.broker_id, request.broker_epoch)
    except KafkaError as refused:
        response.error_code = refused.error.code
        return [], response
    records: list[MetadataRecord] = []
    for topic_data in request.topics:
        topic_result = AP_TOPIC.make(topic_id=topic_data.topic_id, partitions=[])
        response.topics.append(topic_result)
        topic = image.topics_by_id.get(uuid_text(topic_data.topic_id))
        for partition_data in topic_data.partitions:
            result = AP_PARTITION.make(partition_index=partition_data.partition_index)
            topic_result.partitions.append(result)
            if topic is None:
                result.error_code = Errors.UNKNOWN_TOPIC_ID.code
                continue
            isr_with_epochs = (_isr_with_epochs(partition_data) if version >= 3
                               else [(broker_id, -1) for broker_id in partition_data.new_isr])
            error = _validate_alter_partition(image, request.broker_id, topic, partition_data, isr_with_epochs)
            if error is not None:
                result.error_code = error.code
                continue
            partition = topic.partitions[partition_data.partition_index]
            change = build_change(image, config, topic, partition_data.partition_index,
                                  target_isr=[broker_id for broker_id, _ in isr_with_epochs],
                                  target_leader_recovery_state=partition_data.leader_recovery_state)
            leader, leader_epoch, isr, recovery, partition_epoch = _merged(partition, change)
            if change is not None:
                records.append(change_record(topic, partition_data.partition_index, change))
                if change.leader not in (request.broker_id, -2):
                    # Kafka: the change completed a reassignment that moved leadership away (refka
                    # does no reassignment, so this stays a safeguard).
                    result.error_code = NEW_LEADER_ELECTED.code
                    continue
            result.leader_id, result.leader_epoch, result.isr = leader, leader_epoch, isr
            result.leader_recovery_state, result.partition_epoch = recovery, partition_epoch
    return records, response


def _isr_with_epochs(partition_data: Data) -> list[tuple[int, int]]:
    return [(state.broker_id, state.broker_epoch) for state in partition_data.new_isr_with_epochs]


def _validate_alter_partition(image: MetadataImage, broker_id: int, topic: TopicImage, data: Data,
                              isr_with_epochs: list[tuple[int, int]]) -> ErrorCode | None:
    partition = topic.partitions.get(data.partition_index)
    if partition is None:
        return Errors.UNKNOWN_TOPIC_OR_PARTITION
    if data.leader_epoch > partition.leader_epoch or data.partition_epoch > partition.partition_epoch:
        return Errors.NOT_CONTROLLER  # the leader knows a newer state than this controller
    if data.leader_epoch < partition.leader_epoch:
        return Errors.FENCED_LEADER_EPOCH
    if broker_id != partition.leader:
        return Errors.INVALID_REQUEST
    if data.partition_epoch < partition.partition_epoch:
        return INVALID_UPDATE_VERSION
    new_isr = [member for member, _ in isr_with_epochs]
    if len(set(new_isr)) != len(new_isr) or not set(new_isr) <= set(partition.replicas):
        return Errors.INVALID_REQUEST  # Replicas.validateIsr
    if partition.leader not in new_isr:
        return Errors.INVALID_REQUEST  # the ISR always holds the leader
    if data.leader_recovery_state == RECOVERING and len(new_isr) > 1:
        return Errors.INVALID_REQUEST  # a recovering leader may not grow the ISR (KIP-704)
    if partition.leader_recovery_state == RECOVERED and data.leader_recovery_state == RECOVERING:
        return Errors.INVALID_REQUEST
    for member, member_epoch in isr_with_epochs:
        registration = image.brokers.get(member)
        if (registration is None or registration.in_controlled_shutdown or registration.fenced
                or (member_epoch != -1 and registration.broker_epoch != member_epoch)):
            return INELIGIBLE_REPLICA
    return None


def _merged(partition: PartitionRegistration,
            change: PartitionChange | None) -> tuple[int, int, list[int], int, int]:
    """(leader, leader epoch, ISR, recovery state, partition epoch) after ``change`` (Kafka's
    ``PartitionRegistration.merge``: a leader change bumps the leader epoch, any change the
    partition epoch)."""
    if change is None:
        return (partition.leader, partition.leader_epoch, list(partition.isr), partition.leader_recovery_state,
                partition.partition_epoch)
    leader_changed = change.leader != -2
    return (change.leader if leader_changed else partition.leader,
            partition.leader_epoch + 1 if leader_changed else partition.leader_epoch,
            list(change.isr) if change.isr is not None else list(partition.isr),
            change.leader_recovery_state if change.leader_recovery_state != -1 else partition.leader_recovery_state,
            partition.partition_epoch + 1)


# -- ElectLeaders (43) -----------------------------------------------------------------------------------


def elect_leaders(image: MetadataImage, config: ControllerConfig, request: Data,
                  version: int) -> tuple[list[MetadataRecord], Data]:
    election_type = request.election_type if version >= 1 else PREFERRED_ELECTION
    response = elect_leaders_api.RESPONSE.make(replica_election_results=[])
    if election_type not in (PREFERRED_ELECTION, UNCLEAN_ELECTION):
        response.error_code = Errors.INVALID_REQUEST.code
        return [], response
    records: list[MetadataRecord] = []
    if request.topic_partitions is None:
        for name in list(image.topics):
            result = EL_TOPIC.make(topic=name, partition_result=[])
            response.replica_election_results.append(result)
            for partition_id in sorted(image.topics[name].partitions):
                outcome = elect_leader(image, config, name, partition_id, election_type, records)
                if outcome[0] is not Errors.ELECTION_NOT_NEEDED:
                    result.partition_result.append(_partition_result(partition_id, outcome))
        return records, response
    for wanted in request.topic_partitions:
        result = EL_TOPIC.make(topic=wanted.topic, partition_result=[])
        response.replica_election_results.append(result)
        for partition_id in wanted.partitions:
            outcome = elect_leader(image, config, wanted.topic, partition_id, election_type, records)
            result.partition_result.append(_partition_result(partition_id, outcome))
    return records, response


def _partition_result(partition_id: int, outcome: tuple[ErrorCode, str | None]) -> Data:
    error, message = outcome
    return EL_PARTITION.make(partition_id=partition_id, error_code=error.code,
                             error_message=message if message is not None else DEFAULT_MESSAGES.get(error.code))


def elect_leader(image: MetadataImage, config: ControllerConfig, topic_name: str, partition_id: int,
                 election_type: int, records: list[MetadataRecord]) -> tuple[ErrorCode, str | None]:
    """Kafka's ``ReplicationControlManager.electLeader``: the outcome (error, specific message or
    None for the error's default); appends the change to ``records``."""
    topic = image.topics.get(topic_name)
    if topic is None:
        return Errors.UNKNOWN_TOPIC_OR_PARTITION, f"No such topic as {topic_name}"
    partition = topic.partitions.get(partition_id)
    if partition is None:
        return Errors.UNKNOWN_TOPIC_OR_PARTITION, f"No such partition as {topic_name}-{partition_id}"
    if election_type == PREFERRED_ELECTION and partition.replicas and partition.leader == partition.replicas[0]:
        return Errors.ELECTION_NOT_NEEDED, None
    if election_type == UNCLEAN_ELECTION and partition.leader != NO_LEADER:
        return Errors.ELECTION_NOT_NEEDED, None
    election = Election.PREFERRED if election_type == PREFERRED_ELECTION else Election.UNCLEAN
    change = build_change(image, config, topic, partition_id, election=election)
    if change is None:
        refusal = PREFERRED_LEADER_NOT_AVAILABLE if election_type == PREFERRED_ELECTION else ELIGIBLE_LEADERS_NOT_AVAILABLE
        return refusal, None
    records.append(change_record(topic, partition_id, change))
    return Errors.NONE, None


# -- periodic elections ------------------------------------------------------------------------------------


def preferred_leader_elections(image: MetadataImage, config: ControllerConfig) -> list[MetadataRecord]:
    """``maybeBalancePartitionLeaders``: a preferred election for each imbalanced partition (its
    leader is not its first replica), at most MAX_ELECTIONS_PER_IMBALANCE."""
    records: list[MetadataRecord] = []
    for topic, partition_id, partition in all_partitions(image):
        if len(records) >= MAX_ELECTIONS_PER_IMBALANCE:
            break
        if partition.replicas and partition.leader != partition.replicas[0]:
            change = build_change(image, config, topic, partition_id, election=Election.PREFERRED)
            if change is not None:
                records.append(change_record(topic, partition_id, change))
    return records


def unclean_leader_elections(image: MetadataImage, config: ControllerConfig) -> list[MetadataRecord]:
    """``maybeElectUncleanLeaders``: unclean elections for leaderless partitions of topics whose
    ``unclean.leader.election.enable`` is true."""
    records: list[MetadataRecord] = []
    for topic, partition_id in partitions_with_no_leader(image):
        if len(records) >= MAX_ELECTIONS_PER_IMBALANCE:
            break
        if config.unclean_leader_election_enabled(image, topic.name):
            elect_leader(image, config, topic.name, partition_id, UNCLEAN_ELECTION, records)
    return records
