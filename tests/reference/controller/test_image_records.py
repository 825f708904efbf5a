"""An image written as records (``MetadataImage.to_records``, a KIP-630 snapshot's content) replays,
into an empty image, to the same image: every field but the offset, which the snapshot id carries."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import invariant

from reference.controller import metadata_records as mr
from reference.controller.image import MetadataImage
from reference.controller.metadata_records import MetadataRecord, decode_record, encode_record, make
from reference.protocol.primitives import uuid_string

from .test_image import ORDERS, PAYMENTS, Replayer, create_topic, partition_changes, register
from .test_quorum_controller import ControllerMachine


def replayed(records: list[MetadataRecord], offset: int) -> MetadataImage:
    """``records`` through the log's own encoding, replayed into an empty image that ends at ``offset``."""
    image = MetadataImage()
    for index, record in enumerate(records):
        image.apply(decode_record(encode_record(record)), index)
    image.offset = offset
    image.check_valid()
    return image


def assert_round_trips(image: MetadataImage) -> None:
    assert replayed(image.to_records(), image.offset) == image


def test_an_empty_image_is_no_records() -> None:
    assert MetadataImage().to_records() == []


def test_every_part_of_the_image_round_trips() -> None:
    """Brokers fenced, unfenced and in controlled shutdown with log dirs and cordoned dirs; a
    controller; a topic mid-reassignment with an ELR and a recovering leader; configs; features;
    producer ids."""
    log = Replayer()
    log("FeatureLevelRecord", name="kraft.version", feature_level=1)  # before metadata.version on purpose
    log("FeatureLevelRecord", name="metadata.version", feature_level=mr.METADATA_VERSION)
    for broker_id in (1, 2, 3, 4):
        register(log, broker_id, epoch=10 + broker_id)
    directory, cordoned = uuid_string(uuid.UUID(int=77)), uuid_string(uuid.UUID(int=78))
    log("BrokerRegistrationChangeRecord", broker_id=1, broker_epoch=11, fenced=-1)
    log("BrokerRegistrationChangeRecord", broker_id=2, broker_epoch=12, fenced=-1, in_controlled_shutdown=1)
    log("BrokerRegistrationChangeRecord", broker_id=3, broker_epoch=13, log_dirs=[directory, cordoned],
        cordoned_log_dirs=[cordoned])
    endpoint = mr.REGISTER_CONTROLLER_RECORD.struct("ControllerEndpoint")
    feature = mr.REGISTER_CONTROLLER_RECORD.struct("ControllerFeature")
    log("RegisterControllerRecord", controller_id=3000, incarnation_id=uuid.UUID(int=3), zk_migration_ready=True,
        end_points=[endpoint.make(name="CONTROLLER", host="c", port=9093, security_protocol=0)],
        features=[feature.make(name="kraft.version", min_supported_version=0, max_supported_version=1)])
    create_topic(log, "orders", ORDERS, [[1, 2, 3], [2, 3, 4]])
    create_topic(log, "payments", PAYMENTS, [[3]])
    log("PartitionChangeRecord", partition_id=0, topic_id=ORDERS, isr=[1], leader=1, eligible_leader_replicas=[2],
        last_known_elr=[3])
    log("PartitionChangeRecord", partition_id=1, topic_id=ORDERS, replicas=[2, 3, 4, 1], isr=[2, 3, 4],
        removing_replicas=[4], adding_replicas=[1], leader_recovery_state=1,
        directories=[directory, mr.ZERO_UUID_TEXT, mr.ZERO_UUID_TEXT, mr.ZERO_UUID_TEXT])
    log("ConfigRecord", resource_type=mr.CONFIG_RESOURCE_TOPIC, resource_name="orders", name="min.insync.replicas",
        value="2")
    log("ConfigRecord", resource_type=mr.CONFIG_RESOURCE_BROKER, resource_name="", name="log.retention.ms",
        value="1000")
    log("ProducerIdsRecord", broker_id=1, broker_epoch=11, next_producer_id=2000)
    records = log.image.to_records()
    assert [record.name for record in records[:2]] == ["FeatureLevelRecord"] * 2
    assert records[0].data.name == "metadata.version", "metadata.version comes first, as Kafka writes it"
    assert records[-1] == make("ProducerIdsRecord", broker_id=-1, broker_epoch=-1, next_producer_id=2000)
    assert replayed(records, log.image.offset) == log.image
    assert replayed(records, log.image.offset).brokers[2].broker_epoch == 12, "the epoch is a field, not an offset"


def test_records_the_image_does_not_model_are_not_written() -> None:
    """ACLs (and SCRAM credentials, delegation tokens, client quotas) only move the offset: they are
    not in the image, so a snapshot of it does not hold them."""
    log = Replayer()
    log("FeatureLevelRecord", name="metadata.version", feature_level=mr.METADATA_VERSION)
    log("AccessControlEntryRecord", id=uuid.UUID(int=5), resource_type=2, resource_name="orders", pattern_type=3,
        principal="User:alice", host="*", operation=3, permission_type=3)
    assert [record.name for record in log.image.to_records()] == ["FeatureLevelRecord"]


def test_an_image_inside_a_metadata_transaction_is_not_written() -> None:
    log = Replayer()
    log("BeginTransactionRecord", name="bootstrap")
    log("FeatureLevelRecord", name="metadata.version", feature_level=mr.METADATA_VERSION)
    with pytest.raises(ValueError, match="inside a metadata transaction"):
        log.image.to_records()
    log("EndTransactionRecord")
    assert_round_trips(log.image)


@settings(max_examples=40, deadline=None)
@given(partition_changes())
def test_any_well_formed_partition_history_round_trips(records: list[MetadataRecord]) -> None:
    log = Replayer()
    create_topic(log, "orders", ORDERS, [[1, 2, 3]])
    for record in records:
        log.image.apply(record, log.image.offset + 1)
    assert_round_trips(log.image)


class SnapshotMachine(ControllerMachine):
    """The controller's random operations (registrations, fencing, controlled shutdown, topics,
    ISR changes, elections, configs, producer ids, failovers): after each, the image round-trips."""

    @invariant()
    def the_image_written_as_records_replays_to_itself(self) -> None:
        assert_round_trips(self.cluster.image)


SnapshotMachine.TestCase.settings = settings(max_examples=30, stateful_step_count=30, deadline=None,
                                             suppress_health_check=[HealthCheck.too_slow])
test_images_of_random_controller_operations_round_trip = SnapshotMachine.TestCase
