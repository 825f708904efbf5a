"""What the reference code makes durable, and how it comes back, when the simulated disk loses power
(chaos/sim/disk.py): each test is a rule of Kafka's that a power loss would break without it."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from chaos.sim import run
from chaos.sim.cluster import SimCluster
from chaos.sim.disk import DiskModel
from chaos.sim.faults import LEADER, Fault
from chaos.sim.run import SimConfig, simulate
from reference import durability
from reference.broker.log.clock import ManualClock
from reference.broker.log.config import LogConfig
from reference.broker.log.log import PartitionLog
from reference.node.node import META_PROPERTIES, format_log_dir
from reference.records.batch import SimpleRecord, build_batch, iter_batches

TRIALS = 40


def _batches(log: PartitionLog) -> list[tuple[int, int]]:
    """(base offset, CRC) of every batch from the log start to the LEO."""
    found: list[tuple[int, int]] = []
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        records = bytes(log.read(offset, 1 << 20, max_offset=log.log_end_offset).records)
        headers = [header for _, header in iter_batches(records)]
        found += [(header.base_offset, header.crc) for header in headers]
        offset = headers[-1].next_offset
    return found


def test_a_log_keeps_everything_below_its_recovery_point_and_cuts_a_torn_tail(tmp_path: Path) -> None:
    """Rolled segments are fsynced (and their names, by the directory fsync Kafka's LocalLog.flush
    does), so a power loss keeps every batch below the recovery point; above it, recovery keeps a
    prefix of whole batches and cuts a torn one (CRC, length)."""
    torn = 0
    for trial in range(TRIALS):
        directory = tmp_path / f"trial-{trial}" / "sim-all-0"
        directory.mkdir(parents=True)
        disk = DiskModel(directory.parent)
        clock = ManualClock(0)
        config = LogConfig(segment_bytes=1_500)
        log = PartitionLog.open(directory, config, clock)
        for n in range(40):
            log.append_as_leader(build_batch([SimpleRecord(b"value-%d" % n + b"x" * 100, b"k", n)]), 0)
        written, recovery_point = _batches(log), log.recovery_point
        assert recovery_point > 0 and len(log.segments) > 3
        log.close_without_flush()
        disk.power_loss(directory.parent, random.Random(trial))
        recovered = PartitionLog.open(directory, config, clock, recovery_point=recovery_point)
        recovered.check_valid()
        assert recovered.log_end_offset >= recovery_point, f"trial {trial}: fsynced records lost"
        assert _batches(recovered) == written[:len(_batches(recovered))]
        torn += recovered.recovered_bytes_truncated > 0
        recovered.close_without_flush()
        durability.unwatch(directory.parent)
    assert torn > 0, "some power loss tore a batch"


def test_a_voter_flushes_its_metadata_log_before_its_end_offset_counts() -> None:
    """KafkaRaftClient: the leader flushes before its own end offset counts toward the high
    watermark, a voter before its next Fetch reports the new end offset to the leader -- so a
    committed metadata record is on a majority's disks."""
    import tempfile

    with tempfile.TemporaryDirectory() as root:
        cluster = SimCluster(Path(root), nodes=3, seed=1)
        cluster.run_for(3_000)
        voters = list(cluster.nodes.values())
        assert max(node.raft.high_watermark for node in voters) > 0
        for node in voters:
            assert node.raft.log.recovery_point == node.raft.log.log_end_offset, node.raft


def test_a_restarted_leader_that_lost_its_tail_does_not_lead_before_its_registration(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Kafka's broker publishes no metadata before it has replayed its own registration: the leader,
    back from a power loss with a shorter log, would otherwise serve it in its old epoch and its
    followers would truncate acknowledged records to match (LeaderCompleteness).  The node boots
    here before the controller fenced it (the fault draw waits for that)."""
    monkeypatch.setattr(run, "_fenced", lambda cluster, node: True)
    faults = [Fault(4_866, "power-loss", 1_769, (LEADER,))]
    result = simulate(SimConfig(seed=14, duration_ms=8_000, liveness=False, faults=faults))
    assert result.coverage["power-loss"] == 1
    assert result.failure == "", result.violations


def test_meta_properties_survives_a_power_loss(tmp_path: Path) -> None:
    """kafka-storage format fsyncs meta.properties: a node cannot start without it."""
    for trial in range(TRIALS // 4):
        root = tmp_path / f"trial-{trial}"
        disk = DiskModel(tmp_path)
        format_log_dir(root, "MkU3OEVBNTcwNTJENDM2Qg", 1)
        written = (root / META_PROPERTIES).read_text()
        disk.power_loss(root, random.Random(trial))
        assert (root / META_PROPERTIES).read_text() == written
