"""``refka sim``: a run prints its seed, faults, invariants, verdict, coverage and digest; a failing
run prints the command that replays it."""

from __future__ import annotations

import re

import pytest

from chaos.sim.faults import schedule_to_json
from reference.broker.partition import FollowerFetchState, Partition
from reference.cli import main

from .test_invariants import LAGGING_FOLLOWER


def test_a_run_prints_what_it_did_and_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--seed", "7", "--duration", "2", "--schedule", "[]"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("seed 7: 3 nodes, safety phase 2000 ms")
    for line in ("faults (0):", "LeaderInIsr                  ok", "OneLeaderPerEpoch            ok",
                 "checker (sim-all, idempotent acks=all): valid", "coverage: raft-leader-change=", "PASSED"):
        assert line in out
    assert re.search(r"^digest [0-9a-f]{64}$", out, re.MULTILINE)


def test_a_failing_run_prints_the_seed_and_the_command_to_replay_it(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def always_in_sync(self: Partition, follower: FollowerFetchState) -> bool:
        return True

    monkeypatch.setattr(Partition, "_is_follower_in_sync", always_in_sync)
    schedule = schedule_to_json(LAGGING_FOLLOWER)
    assert main(["sim", "run", "--seed", "3", "--duration", "10", "--schedule", schedule]) == 1
    out = capsys.readouterr().out
    assert "FAILED (" in out
    assert f"refka sim run --seed 3 --nodes 3 --duration 10 --schedule '{schedule}'" in out
