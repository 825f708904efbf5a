"""A whole chaos run without docker: one in-process reference broker, gracefully restarted.

The run must leave every output file behind, with a valid verdict (the reference broker keeps
every acknowledged write across a graceful restart), and ``refka chaos check`` must reach the
same verdict from the saved files.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from chaos.cli import EXIT_VALID
from chaos.history import Clock, FaultLog, read_faults, read_history
from chaos.runner import LocalCluster, LocalRestart, RunConfig, RunResult, _Schedule, run, save_broker_logs
from chaos.workload import WorkloadConfig
from reference.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    config = RunConfig(
        workload=WorkloadConfig(sends_per_second=50, delivery_timeout_ms=8000, final_read_timeout=15,
                                group_consumers=1),
        duration=4.0, seed=7, nodes=1, target="local", quiet=(0.5, 1.0), fault_length=(0.5, 1.0), catch_up=0.5)
    cluster = LocalCluster()
    try:
        return run(cluster, [LocalRestart(cluster)], config, tmp_path_factory.mktemp("chaos-run"))
    finally:
        cluster.stop()


@pytest.mark.slow
def test_a_short_run_with_graceful_restarts_is_valid_and_leaves_every_file(result: RunResult) -> None:
    out = result.out_dir
    assert result.workload_errors == []
    assert result.verdict.verdict == "valid", (out / "summary.txt").read_text()
    events = read_history(out / "history.jsonl")
    acknowledged = [e for e in events if e.f == "send" and e.type == "ok"]
    assert len(acknowledged) > 50 and all("offset" in e.value for e in acknowledged)
    assert any(e.f == "final-read" and e.type == "ok" and e.value["complete"] for e in events)
    faults = read_faults(out / "faults.jsonl")
    assert faults and all(f.nemesis == "restart" and f.end is not None and f.end > f.start for f in faults)
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["verdict"] == "valid" and verdict["stats"]["acknowledged"] == len(acknowledged)
    assert (out / "summary.txt").read_text().startswith("verdict: VALID")
    assert (out / "client.log").exists() and not list(out.glob("broker-*.log"))  # in-process: no broker logs
    png = (out / "timeline.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 10_000


@pytest.mark.slow
def test_chaos_check_judges_the_saved_history_again(result: RunResult, capsys: pytest.CaptureFixture[str]) -> None:
    (result.out_dir / "verdict.json").unlink()
    assert main(["chaos", "check", str(result.out_dir)]) == EXIT_VALID
    assert json.loads((result.out_dir / "verdict.json").read_text())["verdict"] == "valid"
    assert "verdict: VALID" in capsys.readouterr().out


def test_chaos_run_on_the_local_target_refuses_other_nemeses_and_more_nodes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chaos", "run", "--nemesis", "restart,meteor", "--target", "local", "--nodes", "1"]) == 2
    assert "unknown nemesis meteor; expected some of restart" in capsys.readouterr().err
    assert main(["chaos", "run", "--nemesis", "restart", "--target", "local", "--nodes", "3"]) == 2
    assert "in-process broker" in capsys.readouterr().err


def test_chaos_check_without_a_history_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chaos", "check", str(tmp_path)]) == 2
    assert "no history.jsonl" in capsys.readouterr().err


def test_unsafe_mode_needs_a_replicated_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chaos", "run", "--unsafe", "acks1", "--target", "reference", "--nodes", "1"]) == 2
    assert "--unsafe needs replication to lose" in capsys.readouterr().err
    assert main(["chaos", "run", "--unsafe", "acks1", "--target", "kafka", "--workload", "idempotent"]) == 2
    assert "cannot be idempotent" in capsys.readouterr().err
    assert main(["chaos", "run", "--unsafe", "unclean", "--target", "kafka", "--nodes", "1"]) == 2
    assert "--unsafe needs replication to lose" in capsys.readouterr().err


def test_each_unsafe_mode_has_its_own_nemeses_and_a_schedule_that_outlasts_the_broker_session() -> None:
    from chaos import cli
    from chaos.cluster import kafka_settings
    from chaos.nemesis import NEMESIS_NAMES
    from chaos.workload import UNSAFE_MODES

    assert set(cli.UNSAFE_RUNS) == set(UNSAFE_MODES)
    assert cli.UNSAFE_RUNS["acks1"][0] == "kill-leader,partition-leader"
    assert cli.UNSAFE_RUNS["unclean"][0] == "unclean-leader"
    session_s = int(kafka_settings(3)["broker.session.timeout.ms"]) / 1000
    for nemeses, quiet, fault_length in cli.UNSAFE_RUNS.values():
        assert set(nemeses.split(",")) <= set(NEMESIS_NAMES) and 0 < quiet[0] <= quiet[1]
        assert fault_length[0] > session_s  # the dead or cut-off leader is fenced before the heal


class _Recorder:
    """A nemesis that only notes when it runs."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def start(self, rng: random.Random) -> dict[str, str]:
        self.log.append(self.name)
        return {"fault": self.name}

    def heal(self) -> None:
        return None


def test_the_schedule_runs_every_nemesis_once_before_any_repeats(tmp_path: Path) -> None:
    log: list[str] = []
    names = sorted(["kill", "pause", "partition", "restart"])
    config = RunConfig(seed=3, quiet=(0.001, 0.002), fault_length=(0.001, 0.002))
    faults = FaultLog(tmp_path / "faults.jsonl", Clock())
    schedule = _Schedule([_Recorder(name, log) for name in names], config, faults)
    schedule.thread.start()
    deadline = time.monotonic() + 5
    while len(log) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    schedule.stop()
    assert sorted(log[:4]) == names and sorted(log[4:8]) == names
    assert all(fault.end is not None for fault in faults.faults)


class _LoggingCluster:
    """A cluster whose brokers keep logs (as DockerCluster's containers do); node 2's cannot be read."""

    def node_ids(self) -> list[int]:
        return [1, 2, 3]

    def logs(self, node_id: int, lines: int = 50) -> str:
        if node_id == 2:
            raise RuntimeError("container gone")
        return f"[2025-06-01 10:11:12,345] INFO node {node_id}, last {lines} lines"


def test_each_brokers_log_is_saved_beside_the_history_when_the_cluster_keeps_logs(tmp_path: Path) -> None:
    saved = save_broker_logs(_LoggingCluster(), tmp_path, lines=500)
    assert sorted(saved) == ["broker-1.log", "broker-2.log", "broker-3.log"]
    assert (tmp_path / "broker-3.log").read_text() == "[2025-06-01 10:11:12,345] INFO node 3, last 500 lines\n"
    assert "could not read the log of node 2" in (tmp_path / "broker-2.log").read_text()
    assert save_broker_logs(object(), tmp_path / "none") == {}  # LocalCluster and the like: nothing to save
