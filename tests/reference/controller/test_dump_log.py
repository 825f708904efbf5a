"""Kafka's own tools read refka's metadata log, and refka reads Kafka's.

``kafka-dump-log --cluster-metadata-decoder`` (``org.apache.kafka.tools.DumpLogSegments`` in Kafka
4.3.1's ``kafka-tools`` jar) decodes each record of a ``__cluster_metadata`` segment with Kafka's
``MetadataRecordSerde`` and prints it as JSON (``MetadataJsonConverters``): the record type in upper
snake case, its version, and every field present in that version in lowerCamelCase, tagged fields
only when they differ from their default.  A record it cannot read is printed as "Error at <offset>,
skipping."  The test writes a segment with refka's ``PartitionLog`` (as a Raft follower appends:
batches with the leader's offsets and epochs), runs the tool and compares every decoded record with
what refka wrote, field by field.

In the other direction, ``kafka-storage format`` writes the bootstrap snapshot
(``bootstrap.checkpoint``: a SnapshotHeader control batch, the FeatureLevelRecords, a SnapshotFooter),
which refka decodes and replays.

Both need Java 17+ and the Kafka jars (``conformance.apache_kafka`` resolves them); they skip, saying
so, only when those are absent.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from conformance.apache_kafka import KafkaTools, cache_root, pinned_version, require_java
from reference.broker.log.clock import ManualClock
from reference.broker.log.config import LogConfig
from reference.broker.log.log import PartitionLog
from reference.cli import CommandError
from reference.controller import metadata_records as mr
from reference.controller.image import MetadataImage
from reference.controller.metadata_records import (
    MetadataRecord,
    build_metadata_batch,
    iter_metadata_batch,
    make,
)
from reference.protocol.primitives import uuid_string
from reference.protocol.schema import Array, Data, Field, Struct, snake_case

DUMP_LOG_SEGMENTS = "org.apache.kafka.tools.DumpLogSegments"
STORAGE_TOOL = "kafka.tools.StorageTool"


def _kafka_libs() -> Path:
    try:
        require_java()
    except CommandError as missing:
        pytest.skip(f"Kafka's tools need Java: {missing}")
    version = pinned_version()
    libs = cache_root() / f"kafka-{version}" / "libs"
    if not (libs / f"kafka-tools-{version}.jar").exists():
        pytest.skip(f"Apache Kafka {version} jars not found in {libs} (conformance.apache_kafka.resolve_libs())")
    return libs


# -- what Kafka's JSON converter prints for a record ---------------------------------------------------


def _json_name(field: Field) -> str:
    return field.name[0].lower() + field.name[1:]


def _json_value(field_type: Any, value: Any, version: int) -> Any:
    if value is None:
        return None
    if isinstance(field_type, Array):
        return [_json_value(field_type.element, item, version) for item in value]
    if isinstance(field_type, Struct):
        return _json_struct(field_type.fields, value, version)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def _json_struct(fields: Any, data: Data, version: int) -> dict[str, Any]:
    printed = {}
    for field in fields:
        if version not in field.version_range:
            continue
        value = getattr(data, field.attribute)
        if field.tag is not None and version in field.tagged_range and value == field.default_value():
            continue  # a tagged field at its default is neither written nor printed
        printed[_json_name(field)] = _json_value(field.type, value, version)
    return printed


def kafka_json(record: MetadataRecord) -> dict[str, Any]:
    """The JSON DumpLogSegments prints for ``record`` (MetadataJsonConverters.writeJson)."""
    message = mr.record_type(record.name)
    return {"type": snake_case(record.name).upper(), "version": record.version,
            "data": _json_struct(message.fields, record.data, record.version)}


# -- a realistic metadata log -----------------------------------------------------------------------------

def _topic_id(n: int) -> str:
    return uuid_string(uuid.UUID(int=(0x5EED << 64) + n))


ORDERS = _topic_id(1)
DIRECTORY = [_topic_id(100 + broker) for broker in range(3)]


def _broker(broker_id: int, epoch: int) -> MetadataRecord:
    endpoint = mr.REGISTER_BROKER_RECORD.struct("BrokerEndpoint")
    feature = mr.REGISTER_BROKER_RECORD.struct("BrokerFeature")
    return make(
        "RegisterBrokerRecord", broker_id=broker_id, incarnation_id=_topic_id(50 + broker_id), broker_epoch=epoch,
        end_points=[endpoint.make(name="PLAINTEXT", host=f"broker-{broker_id}", port=9092, security_protocol=0)],
        features=[feature.make(name="metadata.version", min_supported_version=7, max_supported_version=30)],
        rack=f"rack-{broker_id % 2}" if broker_id else None, log_dirs=[DIRECTORY[broker_id]],
    )


def _partition(partition_id: int, replicas: list[int]) -> MetadataRecord:
    return make("PartitionRecord", partition_id=partition_id, topic_id=ORDERS, replicas=replicas, isr=replicas,
                leader=replicas[0], leader_epoch=0, partition_epoch=0,
                directories=[DIRECTORY[r] for r in replicas], eligible_leader_replicas=[], last_known_elr=[])


# (leader epoch, records), one batch each, offsets following on.
LOG: list[tuple[int, list[MetadataRecord]]] = [
    (1, [make("FeatureLevelRecord", name="metadata.version", feature_level=mr.METADATA_VERSION),
         make("FeatureLevelRecord", name="eligible.leader.replicas.version", feature_level=1)]),
    (1, [_broker(0, 2), _broker(1, 3), _broker(2, 4)]),
    (1, [make("BrokerRegistrationChangeRecord", broker_id=b, broker_epoch=2 + b, fenced=-1) for b in range(3)]),
    (2, [make("TopicRecord", name="orders", topic_id=ORDERS),
         _partition(0, [0, 1, 2]), _partition(1, [1, 2, 0]), _partition(2, [2, 0, 1]),
         make("ConfigRecord", resource_type=mr.CONFIG_RESOURCE_TOPIC, resource_name="orders",
              name="min.insync.replicas", value="2")]),
    (2, [make("PartitionChangeRecord", partition_id=0, topic_id=ORDERS, isr=[0, 1]),
         make("FenceBrokerRecord", id=2, epoch=4),
         make("PartitionChangeRecord", partition_id=2, topic_id=ORDERS, leader=0, isr=[0, 1],
              eligible_leader_replicas=[2]),
         make("ProducerIdsRecord", broker_id=1, broker_epoch=3, next_producer_id=1000),
         make("ConfigRecord", resource_type=mr.CONFIG_RESOURCE_TOPIC, resource_name="orders",
              name="min.insync.replicas", value=None),
         make("BrokerRegistrationChangeRecord", broker_id=1, broker_epoch=3, in_controlled_shutdown=1),
         make("NoOpRecord"),
         make("RemoveTopicRecord", topic_id=ORDERS)]),
]


def write_segment(directory: Path) -> tuple[Path, list[tuple[int, MetadataRecord]]]:
    """The LOG as ``__cluster_metadata-0`` under ``directory``; the segment and (offset, record)s."""
    log = PartitionLog.open(directory / "__cluster_metadata-0", LogConfig(), ManualClock())
    written: list[tuple[int, MetadataRecord]] = []
    for epoch, records in LOG:
        base = log.log_end_offset
        log.append_as_follower(build_metadata_batch(records, base, epoch, timestamp_ms=1_700_000_000_000 + base))
        written.extend((base + i, record) for i, record in enumerate(records))
    log.close()
    segment = directory / "__cluster_metadata-0" / "00000000000000000000.log"
    assert segment.exists()
    return segment, written


RECORD_LINE = re.compile(r"^\| offset: (\d+) .*? payload: (.*)$")
BATCH_LINE = re.compile(r"^baseOffset: (\d+) lastOffset: (\d+) count: (\d+) .*partitionLeaderEpoch: (-?\d+) "
                        r".*isvalid: (\w+)")


def test_the_sequence_is_a_valid_history() -> None:
    """The log the tool reads is one a controller could have written: it replays into a valid image."""
    image = MetadataImage()
    offset = 0
    for _, records in LOG:
        for record in records:
            image.apply(record, offset)
            image.check_valid()
            offset += 1
    assert image.topics == {} and image.brokers[2].fenced and image.brokers[1].in_controlled_shutdown


@pytest.mark.kafka
def test_kafkas_dump_log_segments_decodes_every_record_refka_wrote(tmp_path: Path) -> None:
    libs = _kafka_libs()
    segment, written = write_segment(tmp_path)
    result = KafkaTools(libs).run(DUMP_LOG_SEGMENTS, ["--cluster-metadata-decoder", "--files", str(segment)])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert not [line for line in lines if "Error" in line or "skipping" in line], result.stdout

    batches = [BATCH_LINE.match(line) for line in lines if line.startswith("baseOffset:")]
    assert [(int(m[1]), int(m[2]), int(m[3]), int(m[4]), m[5]) for m in batches if m] == [
        (offset, offset + len(records) - 1, len(records), epoch, "true")
        for offset, (epoch, records) in zip(_base_offsets(), LOG, strict=True)
    ]
    decoded = [(int(m[1]), json.loads(m[2])) for m in map(RECORD_LINE.match, lines) if m]
    assert [offset for offset, _ in decoded] == [offset for offset, _ in written]
    for (offset, printed), (_, record) in zip(decoded, written, strict=True):
        assert printed == kafka_json(record), f"offset {offset}: Kafka decoded {printed}"
    names = {printed["type"] for _, printed in decoded}
    assert {"FEATURE_LEVEL_RECORD", "REGISTER_BROKER_RECORD", "TOPIC_RECORD", "PARTITION_RECORD", "CONFIG_RECORD",
            "PARTITION_CHANGE_RECORD", "FENCE_BROKER_RECORD", "REMOVE_TOPIC_RECORD"} <= names


def _base_offsets() -> list[int]:
    offsets, next_offset = [], 0
    for _, records in LOG:
        offsets.append(next_offset)
        next_offset += len(records)
    return offsets


@pytest.mark.kafka
def test_refka_reads_the_bootstrap_snapshot_kafkas_format_command_writes(tmp_path: Path) -> None:
    libs = _kafka_libs()
    data_dir = tmp_path / "data"
    properties = tmp_path / "server.properties"
    properties.write_text("\n".join([
        "process.roles=broker,controller", "node.id=1", "controller.quorum.voters=1@127.0.0.1:9093",
        "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093", "controller.listener.names=CONTROLLER",
        f"log.dirs={data_dir}", "",
    ]))
    result = KafkaTools(libs).run(STORAGE_TOOL, ["format", "-t", uuid_string(uuid.UUID(int=9)), "-c", str(properties)])
    assert result.returncode == 0, result.stdout + result.stderr
    checkpoint = (data_dir / "bootstrap.checkpoint").read_bytes()

    records = list(iter_metadata_batch(checkpoint))  # the snapshot header/footer control batches are skipped
    assert records[0][1] == make("FeatureLevelRecord", name="metadata.version", feature_level=mr.METADATA_VERSION)
    assert {record.name for _, record in records} == {"FeatureLevelRecord"}
    image = MetadataImage()
    for offset, record in records:
        image.apply(record, offset)
    assert image.metadata_version == 30  # Kafka 4.3.1's default is the level refka announces
    assert image.features["eligible.leader.replicas.version"] == 1


TOPIC_COMMAND = "org.apache.kafka.tools.TopicCommand"


@pytest.mark.kafka
@pytest.mark.slow
def test_refka_replays_the_metadata_log_a_real_kafka_node_wrote(tmp_path: Path) -> None:
    """A 1-node Kafka 4.3.1 cluster registers, creates topics with a config, deletes one; its
    ``__cluster_metadata`` log (control batches included) decodes and replays into a valid image."""
    libs = _kafka_libs()
    from conformance.apache_kafka import KafkaCluster
    from conformance.fixtures import free_port_block

    cluster = KafkaCluster(nodes=1, base_port=free_port_block(2), data_dir=tmp_path / "kafka")
    cluster.start()
    try:
        tools = KafkaTools(libs)
        bootstrap = cluster.bootstrap_servers
        for topic, config in (("orders", ["--config", "retention.ms=60000"]), ("scratch", [])):
            done = tools.run(TOPIC_COMMAND, ["--bootstrap-server", bootstrap, "--create", "--topic", topic,
                                             "--partitions", "3", "--replication-factor", "1", *config])
            assert done.returncode == 0, done.stdout + done.stderr
        done = tools.run(TOPIC_COMMAND, ["--bootstrap-server", bootstrap, "--delete", "--topic", "scratch"])
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        cluster.stop()

    metadata_log = cluster.node_dir(0) / "data" / "__cluster_metadata-0"
    image = MetadataImage()
    names: set[str] = set()
    for segment in sorted(metadata_log.glob("*.log")):
        for offset, record in iter_metadata_batch(segment.read_bytes()):
            names.add(record.name)
            # Kafka wrote it at the version refka writes at the same metadata.version.
            assert record.version == mr.written_version(record.name, vars(record.data)), (offset, record)
            image.apply(record, offset)
            image.check_valid()
    assert {"FeatureLevelRecord", "RegisterBrokerRecord", "RegisterControllerRecord", "BrokerRegistrationChangeRecord",
            "TopicRecord", "PartitionRecord", "ConfigRecord", "RemoveTopicRecord"} <= names
    assert image.metadata_version == mr.METADATA_VERSION
    assert set(image.brokers) == {0}
    assert "scratch" not in image.topics
    orders = image.topics["orders"]
    assert sorted(orders.partitions) == [0, 1, 2]
    for partition in orders.partitions.values():
        assert partition.replicas == [0] and partition.directories == image.brokers[0].log_dirs
        # Led by broker 0 while it ran; its controlled shutdown (SIGTERM) leaves no leader, an empty
        # ISR and broker 0 as the eligible leader replica (KIP-966), one leader change later.
        assert (partition.leader, partition.isr, partition.elr, partition.leader_epoch) in (
            (0, [0], [], 0), (-1, [], [0], 1)), partition
        assert partition.partition_epoch == partition.leader_epoch
