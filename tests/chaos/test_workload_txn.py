"""The transactional workload end to end on one in-process reference broker, and its unsafe switch.

A short run must be valid with committed and aborted transactions whose aborted records really
reached the log (the read_uncommitted reader saw them); the same run with the broker's
read-committed-at-hw fault switched on must be invalid with aborted reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaos.checker import INVALID, VALID
from chaos.runner import LocalCluster, RunConfig, RunResult, run
from chaos.workload import UNSAFE_BROKER_ENVIRONMENT, WorkloadConfig
from reference.broker import partition
from reference.cli import main


def short_run(out: Path) -> RunResult:
    config = RunConfig(workload=WorkloadConfig(name="transactional", sends_per_second=50, delivery_timeout_ms=8000,
                                               final_read_timeout=15),
                       duration=5.0, seed=3, nodes=1, target="local", catch_up=1.0)
    cluster = LocalCluster()
    try:
        return run(cluster, [], config, out)
    finally:
        cluster.stop()


def aborted_values_read_uncommitted(out: Path) -> int:
    events = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    aborted = {r["value"] for e in events if e["f"] == "txn" and e["type"] == "ok" and e["value"]["outcome"] == "aborted"
               for r in e["value"]["records"]}
    read = {r["value"] for e in events if e["f"] == "poll" and e["type"] == "ok"
            and e["value"].get("isolation") == "read_uncommitted" for r in e["value"]["records"]}
    return len(aborted & read)


@pytest.mark.slow
def test_a_transactional_run_is_valid_and_its_aborted_records_were_written(tmp_path: Path) -> None:
    result = short_run(tmp_path)
    assert result.verdict.verdict == VALID, result.verdict.reasons
    stats = result.verdict.stats
    assert stats["committed_transactions"] > 0 and stats["aborted_transactions"] > 0
    assert aborted_values_read_uncommitted(tmp_path) > 0  # written, then hidden from read_committed
    assert not result.workload_errors


@pytest.mark.slow
def test_the_read_committed_at_hw_fault_is_caught_as_aborted_reads(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(partition, "UNSAFE_READ_COMMITTED_AT_HW", True)
    result = short_run(tmp_path)
    assert result.verdict.verdict == INVALID
    assert result.verdict.counts["aborted-read"] > 0 and "aborted-read" in result.verdict.failing


def test_the_unsafe_broker_switch_is_off_unless_its_variable_names_it() -> None:
    assert partition.UNSAFE_READ_COMMITTED_AT_HW is False
    assert UNSAFE_BROKER_ENVIRONMENT == {"read-committed-at-hw": {"REFKA_UNSAFE_TXN": "read-committed-at-hw"}}


def test_the_transactional_unsafe_mode_is_refused_off_its_workload_and_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chaos", "run", "--unsafe", "read-committed-at-hw", "--target", "reference"]) == 2
    assert "goes with --workload transactional" in capsys.readouterr().err
    assert main(["chaos", "run", "--unsafe", "read-committed-at-hw", "--workload", "transactional",
                 "--target", "kafka"]) == 2
    assert "reference-broker fault" in capsys.readouterr().err
    assert main(["chaos", "run", "--unsafe", "acks1", "--workload", "transactional", "--target", "kafka"]) == 2
