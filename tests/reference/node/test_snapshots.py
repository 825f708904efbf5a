"""KRaft nodes write metadata snapshots (KIP-630) and start from them.

With ``metadata.log.max.record.bytes.between.snapshots`` at 1 every committed batch is followed by a
snapshot; a restart of every node then loads the latest snapshot into the image, which must be the
image the node had, and the cluster keeps deciding on it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reference.client.outbox import OutboundRequest
from reference.controller.image import MetadataImage
from reference.controller.metadata_records import decode_record, encode_record
from reference.controller.snapshot import SnapshotId, list_snapshots, read_snapshot
from reference.node.node import KRaftNode
from reference.protocol.frames import decode_response

from .harness import SimulatedCluster
from .test_kraft_node import CREATE_TOPICS, create_topic, running

SNAPSHOT_EVERY_BATCH = {"metadata.log.max.record.bytes.between.snapshots": "1"}


class CrashClosesConnections(SimulatedCluster):
    """A crashed node's connections are gone, so the answers to its requests in flight (a Fetch the
    leader parked) never reach it; the shared harness still hands them to the dead instance."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.in_flight: dict[int, list[OutboundRequest]] = {}
        super().__init__(*args, **kwargs)

    def _deliver(self, source_id: int, request: OutboundRequest, listener: Callable[[KRaftNode], Any]) -> None:
        self.in_flight[source_id] = [*(r for r in self.in_flight.get(source_id, []) if not r.done), request]
        super()._deliver(source_id, request, listener)

    def crash(self, node_id: int) -> None:
        for request in self.in_flight.pop(node_id, []):
            request.done = True
        super().crash(node_id)


def snapshots(node: KRaftNode) -> list[SnapshotId]:
    return list_snapshots(node.raft.metadata_log.directory)


def caught_up(cluster: SimulatedCluster) -> bool:
    """Every node was given the same committed batches and has the same image."""
    nodes = list(cluster.nodes.values())
    return (len({node.raft.delivered_end_offset for node in nodes}) == 1
            and all(node.image == nodes[0].image for node in nodes))


def create_and_wait(cluster: SimulatedCluster, via: int, name: str) -> int:
    """Create ``name`` (1 partition, 3 replicas) and return the error code once every node has it."""
    answers = create_topic(cluster, via=via, name=name, partitions=1, replication_factor=3)
    cluster.run_until(lambda: bool(answers))
    _, response = decode_response(CREATE_TOPICS, 7, answers[0][4:])  # type: ignore[index]
    error = int(response.topics[0].error_code)
    cluster.run_until(lambda: all(name in node.image.topics for node in cluster.nodes.values()))
    return error


def snapshotted_cluster(tmp_path: Path, kind: type[SimulatedCluster] = SimulatedCluster) -> SimulatedCluster:
    cluster = kind(tmp_path, extra=SNAPSHOT_EVERY_BATCH)
    cluster.run_until(lambda: running(cluster))
    assert create_and_wait(cluster, via=0, name="orders") == 0
    cluster.run_until(lambda: caught_up(cluster))
    return cluster


def test_the_defaults_are_kafkas() -> None:
    from reference.broker.configs import BrokerConfig

    config = BrokerConfig({})
    assert config.get_long("metadata.log.max.record.bytes.between.snapshots") == 20 * 1024 * 1024
    assert config.get_long("metadata.log.max.snapshot.interval.ms") == 3_600_000


def test_with_the_default_limits_a_small_cluster_writes_no_snapshot(tmp_path: Path) -> None:
    cluster = SimulatedCluster(tmp_path)
    cluster.run_until(lambda: running(cluster))
    assert all(snapshots(node) == [] for node in cluster.nodes.values())


def test_past_the_byte_limit_every_node_snapshots_its_image_at_the_end_of_a_committed_batch(tmp_path: Path) -> None:
    cluster = snapshotted_cluster(tmp_path)
    for node in cluster.nodes.values():
        latest = snapshots(node)[-1]
        assert (node.raft.metadata_log.directory / latest.file_name).exists()
        assert latest.end_offset <= node.raft.delivered_end_offset
        # The snapshot holds the image as it was at its end offset: replayed, it is the node's image
        # (nothing but control batches may have been committed after it).
        loaded = MetadataImage()
        for index, value in enumerate(read_snapshot(node.raft.metadata_log.directory, latest).records):
            loaded.apply(decode_record(value), index)
        loaded.offset = node.image.offset
        assert loaded == node.image
        assert "orders" in loaded.topics


def test_the_time_limit_alone_writes_a_snapshot_at_the_next_commit(tmp_path: Path) -> None:
    cluster = SimulatedCluster(tmp_path, extra={"metadata.log.max.snapshot.interval.ms": "5000"})
    cluster.run_until(lambda: running(cluster))
    cluster.run_until(lambda: cluster.now_ms >= 1_000_000 + 5000)
    assert create_and_wait(cluster, via=0, name="orders") == 0
    cluster.run_until(lambda: all(snapshots(node) for node in cluster.nodes.values()))


def test_loading_a_snapshot_sets_the_image_offset_to_the_snapshots_last_offset(tmp_path: Path) -> None:
    """Records count from 0 inside the snapshot file; the image must end where the snapshot ends,
    so that the log after it (``end_offset`` on) can follow."""
    cluster = snapshotted_cluster(tmp_path)
    node = cluster.nodes[0]
    latest = snapshots(node)[-1]
    node.handle_load_snapshot(read_snapshot(node.raft.metadata_log.directory, latest))
    assert node.image.offset == latest.end_offset - 1


def test_after_a_restart_of_every_node_the_image_is_the_snapshots_and_the_cluster_keeps_working(
        tmp_path: Path) -> None:
    cluster = snapshotted_cluster(tmp_path)
    before = {node_id: node.image.copy() for node_id, node in cluster.nodes.items()}
    latest = {node_id: snapshots(node)[-1] for node_id, node in cluster.nodes.items()}
    for node_id in list(cluster.nodes):
        cluster.nodes.pop(node_id).shutdown()
    for node_id in range(3):
        node = cluster.start(node_id)
        # Started from the snapshot alone: the log below it is gone, the image is the one it had.
        assert node.raft.log_start_offset == latest[node_id].end_offset
        assert node.image.offset == latest[node_id].end_offset - 1
        node.image.offset = before[node_id].offset
        assert node.image == before[node_id]
        node.image.offset = latest[node_id].end_offset - 1
    cluster.run_until(lambda: running(cluster))
    assert create_and_wait(cluster, via=1, name="orders") == 36  # TOPIC_ALREADY_EXISTS: it knows the image
    assert create_and_wait(cluster, via=2, name="payments") == 0
    cluster.run_until(lambda: caught_up(cluster))
    for node in cluster.nodes.values():
        assert sorted(node.image.topics) == ["orders", "payments"]
        # The same topic (leaders and ISRs move while the brokers register again).
        assert node.image.topics["orders"].topic_id == before[0].topics["orders"].topic_id
        node.image.check_valid()
    assert all(snapshots(node)[-1] > latest[node_id] for node_id, node in cluster.nodes.items())


def test_a_node_behind_the_leaders_log_start_catches_up_from_a_fetched_snapshot(tmp_path: Path) -> None:
    """Node 2 is down while a topic is created; the others restart, so their logs now start at their
    latest snapshot, past node 2's log end.  Node 2 fetches the leader's snapshot (FetchSnapshot),
    loads it as its image and follows the log from its end offset."""
    cluster = snapshotted_cluster(tmp_path, CrashClosesConnections)
    cluster.crash(2)
    answers = create_topic(cluster, via=0, name="payments", partitions=1, replication_factor=2)
    cluster.run_until(lambda: bool(answers) and all("payments" in node.image.topics
                                                    for node in cluster.nodes.values()))
    behind = cluster.root / "node-2"
    for node_id in (0, 1):
        cluster.nodes.pop(node_id).shutdown()
    for node_id in (0, 1):
        cluster.start(node_id)
    cluster.run_until(lambda: cluster.leader() is not None)
    leader = cluster.leader()
    assert leader is not None and leader.raft.log_start_offset > 0
    node = cluster.start(2)
    assert node.raft.log_end_offset < leader.raft.log_start_offset, f"{behind} is behind the leader's log start"
    cluster.run_until(lambda: running(cluster))
    assert "payments" in node.image.topics
    assert node.raft.log_start_offset >= leader.raft.log_start_offset, "it started again from the snapshot"
    assert create_and_wait(cluster, via=2, name="refunds") == 0
    cluster.run_until(lambda: caught_up(cluster))
    node.image.check_valid()


DUMP_LOG_SEGMENTS = "org.apache.kafka.tools.DumpLogSegments"
RECORD_LINE = re.compile(r"^\| offset: (\d+) .*? payload: (.*)$")


@pytest.mark.kafka
def test_kafkas_dump_log_segments_decodes_a_snapshot_a_node_wrote(tmp_path: Path) -> None:
    from conformance.apache_kafka import KafkaTools

    from ..controller.test_dump_log import _kafka_libs, kafka_json

    libs = _kafka_libs()
    cluster = snapshotted_cluster(tmp_path / "cluster")
    node = cluster.nodes[0]
    latest = snapshots(node)[-1]
    path = node.raft.metadata_log.directory / latest.file_name
    written = [decode_record(value) for value in read_snapshot(node.raft.metadata_log.directory, latest).records]
    assert [encode_record(record) for record in node.image.to_records()] == [encode_record(r) for r in written]
    result = KafkaTools(libs).run(DUMP_LOG_SEGMENTS, ["--cluster-metadata-decoder", "--files", str(path)])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert not [line for line in lines if "Error" in line or "skipping" in line], result.stdout
    decoded = [json.loads(m[2]) for m in map(RECORD_LINE.match, lines) if m]
    data = [printed for printed in decoded if printed.get("type") not in ("SNAPSHOT_HEADER", "SNAPSHOT_FOOTER")]
    assert data == [kafka_json(record) for record in written]
    types = {printed["type"] for printed in data}
    assert {"FEATURE_LEVEL_RECORD", "REGISTER_BROKER_RECORD", "TOPIC_RECORD", "PARTITION_RECORD"} <= types
