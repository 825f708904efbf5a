"""The metadata image replays records as Kafka's MetadataDelta does, and keeps its invariants."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference.controller import metadata_records as mr
from reference.controller.image import (
    MIGRATING_DIRECTORY,
    BrokerRegistration,
    Endpoint,
    MetadataImage,
    MetadataReplayError,
    PartitionRegistration,
)
from reference.controller.metadata_records import MetadataRecord, build_metadata_batch, make
from reference.protocol.primitives import uuid_string

ORDERS = uuid_string(uuid.UUID(int=0xA1))
PAYMENTS = uuid_string(uuid.UUID(int=0xB2))


class Replayer:
    """An image and the next offset, so that a test reads as the log it replays."""

    def __init__(self) -> None:
        self.image = MetadataImage()

    def __call__(self, record_name: str, /, **fields: Any) -> MetadataImage:
        self.image.apply(make(record_name, **fields), self.image.offset + 1)
        self.image.check_valid()
        return self.image


def register(log: Replayer, broker_id: int, epoch: int, incarnation: int = 0) -> None:
    endpoint = mr.REGISTER_BROKER_RECORD.struct("BrokerEndpoint")
    feature = mr.REGISTER_BROKER_RECORD.struct("BrokerFeature")
    log("RegisterBrokerRecord", broker_id=broker_id, broker_epoch=epoch,
        incarnation_id=uuid.UUID(int=1000 * broker_id + incarnation), rack="r1",
        end_points=[endpoint.make(name="PLAINTEXT", host="h", port=9092 + broker_id, security_protocol=0)],
        features=[feature.make(name="metadata.version", min_supported_version=7, max_supported_version=30)])


def create_topic(log: Replayer, name: str, topic_id: str, assignments: list[list[int]]) -> None:
    log("TopicRecord", name=name, topic_id=topic_id)
    for partition_id, replicas in enumerate(assignments):
        log("PartitionRecord", partition_id=partition_id, topic_id=topic_id, replicas=replicas, isr=replicas,
            leader=replicas[0], leader_epoch=0, partition_epoch=0)


@pytest.fixture
def log() -> Replayer:
    replayer = Replayer()
    replayer("FeatureLevelRecord", name="metadata.version", feature_level=mr.METADATA_VERSION)
    for broker_id in (1, 2, 3):
        register(replayer, broker_id, epoch=10 + broker_id)
    return replayer


# -- brokers -------------------------------------------------------------------------------------------


def test_a_registered_broker_starts_fenced_with_its_listeners_rack_and_features(log: Replayer) -> None:
    assert log.image.brokers[1] == BrokerRegistration(
        broker_id=1, incarnation_id=uuid_string(uuid.UUID(int=1000)), broker_epoch=11,
        listeners=[Endpoint("PLAINTEXT", "h", 9093, 0)], rack="r1", fenced=True, in_controlled_shutdown=False,
        features={"metadata.version": (7, 30)})


def test_a_brokers_life_register_unfence_fence_unfence_reregister(log: Replayer) -> None:
    image = log("BrokerRegistrationChangeRecord", broker_id=1, broker_epoch=11, fenced=-1)  # unfence
    assert not image.brokers[1].fenced
    image = log("FenceBrokerRecord", id=1, epoch=11)
    assert image.brokers[1].fenced
    image = log("UnfenceBrokerRecord", id=1, epoch=11)
    assert not image.brokers[1].fenced
    image = log("BrokerRegistrationChangeRecord", broker_id=1, broker_epoch=11, fenced=1)
    assert image.brokers[1].fenced
    image = log("BrokerRegistrationChangeRecord", broker_id=1, broker_epoch=11, in_controlled_shutdown=1)
    assert image.brokers[1].in_controlled_shutdown and image.brokers[1].fenced  # 0 = no change to fencing

    register(log, 1, epoch=40, incarnation=1)  # the broker restarted: a new incarnation and epoch
    assert (log.image.brokers[1].broker_epoch, log.image.brokers[1].fenced) == (40, True)
    assert not log.image.brokers[1].in_controlled_shutdown
    with pytest.raises(MetadataReplayError, match="epoch 40, not 11"):
        log("UnfenceBrokerRecord", id=1, epoch=11)  # a record for the old life cannot follow
    log("UnregisterBrokerRecord", broker_id=1, broker_epoch=40)
    assert 1 not in log.image.brokers


@pytest.mark.parametrize(("name", "fields"), [
    ("FenceBrokerRecord", {"id": 9, "epoch": 1}),
    ("UnfenceBrokerRecord", {"id": 9, "epoch": 1}),
    ("UnregisterBrokerRecord", {"broker_id": 9, "broker_epoch": 1}),
    ("BrokerRegistrationChangeRecord", {"broker_id": 9, "broker_epoch": 1, "fenced": 1}),
])
def test_a_change_to_an_unknown_broker_cannot_be_replayed(log: Replayer, name: str, fields: dict[str, int]) -> None:
    before = log.image.copy()
    with pytest.raises(MetadataReplayError, match="no broker registration for broker 9"):
        log(name, **fields)
    assert log.image == before  # nothing applied, offset not advanced


def test_a_fencing_change_outside_minus_one_zero_one_is_refused(log: Replayer) -> None:
    with pytest.raises(MetadataReplayError, match="fenced=2"):
        log("BrokerRegistrationChangeRecord", broker_id=1, broker_epoch=11, fenced=2)


def test_log_dirs_change_only_when_the_record_carries_them(log: Replayer) -> None:
    directory = uuid_string(uuid.UUID(int=77))
    log("BrokerRegistrationChangeRecord", broker_id=2, broker_epoch=12, log_dirs=[directory])
    log("BrokerRegistrationChangeRecord", broker_id=2, broker_epoch=12, fenced=-1)
    assert log.image.brokers[2].log_dirs == [directory]


def test_a_controller_registers(log: Replayer) -> None:
    endpoint = mr.REGISTER_CONTROLLER_RECORD.struct("ControllerEndpoint")
    log("RegisterControllerRecord", controller_id=3000, incarnation_id=uuid.UUID(int=3),
        end_points=[endpoint.make(name="CONTROLLER", host="c", port=9093, security_protocol=0)])
    assert log.image.controllers[3000].listeners == [Endpoint("CONTROLLER", "c", 9093, 0)]


# -- a topic's life --------------------------------------------------------------------------------------


def test_a_topics_life_create_shrink_isr_change_leader_lose_leader_delete(log: Replayer) -> None:
    create_topic(log, "orders", ORDERS, [[1, 2, 3], [2, 3, 1]])
    topic = log.image.topics["orders"]
    assert log.image.topics_by_id[ORDERS] is topic
    assert topic.partitions[0] == PartitionRegistration(
        replicas=[1, 2, 3], isr=[1, 2, 3], removing_replicas=[], adding_replicas=[], leader=1,
        leader_recovery_state=0, leader_epoch=0, partition_epoch=0, elr=[], last_known_elr=[],
        directories=[MIGRATING_DIRECTORY] * 3)

    # ISR shrink: only the partition epoch moves (isLeaderEpochBumpRequiredOnIsrShrink is false at 4.3-IV0).
    log("PartitionChangeRecord", partition_id=0, topic_id=ORDERS, isr=[1, 2])
    p0 = log.image.topics["orders"].partitions[0]
    assert (p0.isr, p0.leader, p0.leader_epoch, p0.partition_epoch) == ([1, 2], 1, 0, 1)

    # Leader change: the leader epoch moves too.
    log("PartitionChangeRecord", partition_id=0, topic_id=ORDERS, leader=2, isr=[2])
    p0 = log.image.topics["orders"].partitions[0]
    assert (p0.isr, p0.leader, p0.leader_epoch, p0.partition_epoch) == ([2], 2, 1, 2)

    # No leader left (-1 is a leader change too), with the last ISR member kept in the ELR.
    log("PartitionChangeRecord", partition_id=0, topic_id=ORDERS, leader=mr.NO_LEADER, isr=[],
        eligible_leader_replicas=[2])
    p0 = log.image.topics["orders"].partitions[0]
    assert (p0.isr, p0.leader, p0.leader_epoch, p0.partition_epoch, p0.elr) == ([], -1, 2, 3, [2])
    assert log.image.topics["orders"].partitions[1].partition_epoch == 0  # the other partition is untouched

    log("ConfigRecord", resource_type=mr.CONFIG_RESOURCE_TOPIC, resource_name="orders", name="retention.ms",
        value="1000")
    log("RemoveTopicRecord", topic_id=ORDERS)
    assert log.image.topics == {} and log.image.topics_by_id == {}
    assert (mr.CONFIG_RESOURCE_TOPIC, "orders") not in log.image.configs  # its configs go with it


def test_naming_the_same_leader_still_bumps_the_leader_epoch(log: Replayer) -> None:
    """PartitionRegistration.merge bumps on any leader other than -2 (NO_LEADER_CHANGE)."""
    create_topic(log, "orders", ORDERS, [[1, 2]])
    log("PartitionChangeRecord", partition_id=0, topic_id=ORDERS, leader=1)
    p0 = log.image.topics["orders"].partitions[0]
    assert (p0.leader, p0.leader_epoch, p0.partition_epoch) == (1, 1, 1)


def test_a_change_that_changes_nothing_still_bumps_the_partition_epoch(log: Replayer) -> None:
    create_topic(log, "orders", ORDERS, [[1, 2]])
    before = log.image.topics["orders"].partitions[0]
    log("PartitionChangeRecord", partition_id=0, topic_id=ORDERS)
    assert log.image.topics["orders"].partitions[0] == replace(before, partition_epoch=1)


def test_reassignment_fields_and_leader_recovery_state_merge(log: Replayer) -> None:
    create_topic(log, "orders", ORDERS, [[1, 2]])
    log("PartitionChangeRecord", partition_id=0, topic_id=ORDERS, replicas=[1, 2, 3], adding_replicas=[3])
    p0 = log.image.topics["orders"].partitions[0]
    assert (p0.replicas, p0.adding_replicas, p0.directories) == ([1, 2, 3], [3], [MIGRATING_DIRECTORY] * 3)
    log("PartitionChangeRecord", partition_id=0, topic_id=ORDERS, leader=2, isr=[2], leader_recovery_state=1)
    assert log.image.topics["orders"].partitions[0].leader_recovery_state == 1
    log("PartitionChangeRecord", partition_id=0, topic_id=ORDERS, isr=[2, 3])  # -1: recovery state unchanged
    assert log.image.topics["orders"].partitions[0].leader_recovery_state == 1
    log("PartitionChangeRecord", partition_id=0, topic_id=ORDERS, leader_recovery_state=0)
    assert log.image.topics["orders"].partitions[0].leader_recovery_state == 0


def test_directories_follow_the_replicas(log: Replayer) -> None:
    dirs = [uuid_string(uuid.UUID(int=n)) for n in (11, 12)]
    log("TopicRecord", name="orders", topic_id=ORDERS)
    log("PartitionRecord", partition_id=0, topic_id=ORDERS, replicas=[1, 2], isr=[1, 2], leader=1,
        leader_epoch=0, partition_epoch=0, directories=dirs)
    assert log.image.topics["orders"].partitions[0].directories == dirs
    with pytest.raises(MetadataReplayError, match="3 replicas but 2 directories"):
        log("PartitionChangeRecord", partition_id=0, topic_id=ORDERS, replicas=[1, 2, 3])


def test_clear_elr_clears_only_partitions_that_have_one(log: Replayer) -> None:
    create_topic(log, "orders", ORDERS, [[1, 2, 3], [1, 2, 3]])
    create_topic(log, "payments", PAYMENTS, [[1, 2, 3]])
    log("PartitionChangeRecord", partition_id=0, topic_id=ORDERS, isr=[1], eligible_leader_replicas=[2],
        last_known_elr=[3])
    log("PartitionChangeRecord", partition_id=0, topic_id=PAYMENTS, isr=[1], eligible_leader_replicas=[2])
    log("ClearElrRecord", topic_name="orders")
    orders = log.image.topics["orders"].partitions
    assert (orders[0].elr, orders[0].last_known_elr, orders[0].partition_epoch, orders[0].leader_epoch) == ([], [], 2, 0)
    assert orders[1].partition_epoch == 0  # had no ELR: untouched
    assert log.image.topics["payments"].partitions[0].elr == [2]
    log("ClearElrRecord", topic_name="")  # every topic
    assert log.image.topics["payments"].partitions[0].elr == []
    with pytest.raises(MetadataReplayError, match="no topic named gone"):
        log("ClearElrRecord", topic_name="gone")


def test_records_for_unknown_topics_or_partitions_cannot_be_replayed(log: Replayer) -> None:
    with pytest.raises(MetadataReplayError, match="no topic with id"):
        log("PartitionRecord", partition_id=0, topic_id=ORDERS, replicas=[1], isr=[1], leader=1)
    create_topic(log, "orders", ORDERS, [[1]])
    with pytest.raises(MetadataReplayError, match="no partition 5"):
        log("PartitionChangeRecord", partition_id=5, topic_id=ORDERS, isr=[1])
    with pytest.raises(MetadataReplayError, match="already exists"):
        log("TopicRecord", name="orders", topic_id=PAYMENTS)


# -- configs, features, producer ids ---------------------------------------------------------------------


def test_a_null_config_value_deletes_the_key_and_an_empty_resource_disappears(log: Replayer) -> None:
    broker = (mr.CONFIG_RESOURCE_BROKER, "1")
    log("ConfigRecord", resource_type=mr.CONFIG_RESOURCE_BROKER, resource_name="1", name="a", value="x")
    log("ConfigRecord", resource_type=mr.CONFIG_RESOURCE_BROKER, resource_name="1", name="b", value="y")
    log("ConfigRecord", resource_type=mr.CONFIG_RESOURCE_BROKER, resource_name="1", name="a", value=None)
    assert log.image.configs[broker] == {"b": "y"}
    log("ConfigRecord", resource_type=mr.CONFIG_RESOURCE_BROKER, resource_name="1", name="b", value=None)
    assert broker not in log.image.configs


def test_feature_levels_and_level_zero_removes_a_feature(log: Replayer) -> None:
    log("FeatureLevelRecord", name="group.version", feature_level=1)
    assert log.image.features == {"metadata.version": 30, "group.version": 1}
    log("FeatureLevelRecord", name="group.version", feature_level=0)
    assert log.image.features == {"metadata.version": 30}
    assert log.image.metadata_version == 30


def test_producer_id_blocks_only_move_forward(log: Replayer) -> None:
    assert log.image.next_producer_id == 0
    log("ProducerIdsRecord", broker_id=1, broker_epoch=11, next_producer_id=1000)
    assert log.image.next_producer_id == 1000
    with pytest.raises(MetadataReplayError, match="does not move past 1000"):
        log("ProducerIdsRecord", broker_id=1, broker_epoch=11, next_producer_id=1000)


# -- offsets, transactions, batches, copies -----------------------------------------------------------------


def test_offsets_must_increase(log: Replayer) -> None:
    offset = log.image.offset
    with pytest.raises(MetadataReplayError, match="does not follow"):
        log.image.apply(make("NoOpRecord"), offset)
    log.image.apply(make("NoOpRecord"), offset + 5)  # gaps are fine (control records sit between)
    assert log.image.offset == offset + 5


def test_an_aborted_metadata_transaction_leaves_no_trace(log: Replayer) -> None:
    before = log.image.copy()
    log("BeginTransactionRecord", name="create orders")
    create_topic(log, "orders", ORDERS, [[1, 2]])
    assert log.image.in_transaction and "orders" in log.image.topics
    log("AbortTransactionRecord", reason="failed")
    assert log.image == replace(before, offset=log.image.offset)
    log("BeginTransactionRecord")
    create_topic(log, "orders", ORDERS, [[1, 2]])
    log("EndTransactionRecord")
    assert not log.image.in_transaction and "orders" in log.image.topics


def test_replaying_batches_equals_replaying_records(log: Replayer) -> None:
    records = [make("TopicRecord", name="orders", topic_id=ORDERS),
               make("PartitionRecord", partition_id=0, topic_id=ORDERS, replicas=[1, 2], isr=[1, 2], leader=1,
                    leader_epoch=0, partition_epoch=0),
               make("PartitionChangeRecord", partition_id=0, topic_id=ORDERS, isr=[1])]
    by_batch = log.image.copy()
    base = log.image.offset + 1
    by_batch.apply_batch(build_metadata_batch(records, base_offset=base, leader_epoch=3, timestamp_ms=0))
    for i, record in enumerate(records):
        log.image.apply(record, base + i)
    assert by_batch == log.image and by_batch.offset == base + 2


def test_a_copy_is_deep(log: Replayer) -> None:
    create_topic(log, "orders", ORDERS, [[1, 2]])
    speculative = log.image.copy()
    speculative.apply(make("PartitionChangeRecord", partition_id=0, topic_id=ORDERS, isr=[1]), speculative.offset + 1)
    speculative.apply(make("FenceBrokerRecord", id=2, epoch=12), speculative.offset + 1)
    assert log.image.topics["orders"].partitions[0].isr == [1, 2]
    assert log.image.brokers[2].fenced is True and speculative.topics_by_id[ORDERS] is speculative.topics["orders"]
    log("UnfenceBrokerRecord", id=2, epoch=12)
    assert speculative.brokers[2].fenced


def test_records_the_image_does_not_model_only_move_the_offset(log: Replayer) -> None:
    before = log.image.copy()
    log("AccessControlEntryRecord", id=uuid.UUID(int=1), resource_type=2, resource_name="t", pattern_type=3,
        principal="User:a", host="*", operation=2, permission_type=3)
    log("NoOpRecord")
    assert log.image == replace(before, offset=before.offset + 2)


# -- invariants ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "broken"), [
    ({"isr": [2, 3]}, "leader 1 neither in ISR"),
    ({"isr": [1, 4]}, "not a subset of replicas"),
    ({"isr": [1, 1]}, "duplicate ISR"),
    ({"eligible_leader_replicas": [1]}, "ELR [1] overlaps ISR"),
    ({"replicas": [1, 2, 2]}, "duplicate replicas"),
    ({"adding_replicas": [3], "removing_replicas": [3]}, "both removing and adding"),
])
def test_check_valid_names_the_broken_invariant(log: Replayer, change: dict[str, Any], broken: str) -> None:
    create_topic(log, "orders", ORDERS, [[1, 2, 3]])
    log.image.apply(make("PartitionChangeRecord", partition_id=0, topic_id=ORDERS, **change), log.image.offset + 1)
    with pytest.raises(AssertionError, match=broken.replace("[", r"\[").replace("]", r"\]")):
        log.image.check_valid()


def test_check_valid_sees_topics_filed_apart(log: Replayer) -> None:
    create_topic(log, "orders", ORDERS, [[1]])
    log.image.topics_by_id.clear()
    with pytest.raises(AssertionError, match="by name and by id differ"):
        log.image.check_valid()


# -- a property: any well-formed sequence of changes keeps the partition valid --------------------------------


@st.composite
def partition_changes(draw: st.DrawFn) -> list[MetadataRecord]:
    """PartitionChangeRecords a controller could write for partition 0 of ORDERS (replicas 1-3)."""
    records = []
    for _ in range(draw(st.integers(1, 12))):
        isr = draw(st.lists(st.sampled_from([1, 2, 3]), unique=True))
        leader = draw(st.sampled_from([*isr, mr.NO_LEADER]) if isr else st.just(mr.NO_LEADER))
        outside = [r for r in (1, 2, 3) if r not in isr]
        elr = draw(st.lists(st.sampled_from(outside), unique=True)) if outside else []
        records.append(make("PartitionChangeRecord", partition_id=0, topic_id=ORDERS, isr=isr, leader=leader,
                            eligible_leader_replicas=elr))
    return records


@settings(max_examples=60, deadline=None)
@given(partition_changes())
def test_well_formed_changes_keep_the_image_valid_and_epochs_count_changes(records: list[MetadataRecord]) -> None:
    log = Replayer()
    create_topic(log, "orders", ORDERS, [[1, 2, 3]])
    for record in records:
        log.image.apply(record, log.image.offset + 1)
        log.image.check_valid()
    partition = log.image.topics["orders"].partitions[0]
    assert partition.partition_epoch == len(records)
    assert partition.leader_epoch == len(records)  # every record named a leader
    assert (partition.isr, partition.leader) == (records[-1].data.isr, records[-1].data.leader)
