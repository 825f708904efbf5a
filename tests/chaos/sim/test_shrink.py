"""Shrinking: ddmin over the fault schedule reaches a 1-minimal failing schedule, then shortens it;
on the real cluster with a switched-off guard it drops the faults that do not matter."""

from __future__ import annotations

import argparse
import shlex
from dataclasses import replace

import pytest

from chaos.checker import VALID, Verdict
from chaos.sim.cli import _config, add_arguments, replay_command
from chaos.sim.clients import BrokenConnections
from chaos.sim.faults import Fault
from chaos.sim.invariants import Violation
from chaos.sim.run import SimConfig, SimResult, simulate
from chaos.sim.shrink import describe, shrink
from reference.broker.partition import FollowerFetchState, Partition

from .test_invariants import LAGGING_FOLLOWER


def fake_runner(culprits: set[int], log: list[SimConfig]) -> object:
    """A run fails (LogMatching) iff its schedule holds every fault whose at_ms is in ``culprits``
    and each of them lasts at least 400 ms."""

    def run(config: SimConfig) -> SimResult:
        log.append(config)
        faults = list(config.faults or [])
        result = SimResult(config, None, faults)
        present = {fault.at_ms for fault in faults if fault.duration_ms >= 400}
        if culprits <= present:
            result.violations = [Violation("LogMatching", "planted", 0, "")]
        else:
            result.verdict = Verdict(VALID, "idempotent", {}, {}, [], [], {})
        return result

    return run


def test_ddmin_keeps_exactly_the_faults_that_matter_and_halves_their_durations() -> None:
    faults = [Fault(at, "crash", 1_000, (0,)) for at in range(100, 1_700, 100)]  # 16 faults
    log: list[SimConfig] = []
    runner = fake_runner({300, 1200}, log)
    failing = runner(SimConfig(seed=1, duration_ms=20_000, faults=faults))  # type: ignore[operator]
    shrunk = shrink(failing, runner)  # type: ignore[arg-type]
    assert [fault.at_ms for fault in shrunk.result.faults] == [300, 1200]
    assert all(400 <= fault.duration_ms < 800 for fault in shrunk.result.faults)
    assert shrunk.config.duration_ms < 20_000, "the run ends a second after the last fault heals"
    assert shrunk.runs == len(log) - 1 < 60
    assert "1. +300ms crash(0)" in describe(shrunk)


def test_a_passing_run_cannot_be_shrunk() -> None:
    runner = fake_runner({1}, [])
    passing = runner(SimConfig(seed=1, faults=[Fault(5, "pause", 10, (0,))]))  # type: ignore[operator]
    with pytest.raises(ValueError):
        shrink(passing, runner)  # type: ignore[arg-type]


def test_a_failure_from_a_switched_off_guard_shrinks_to_the_faults_that_cause_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def always_in_sync(self: Partition, follower: FollowerFetchState) -> bool:
        return True

    monkeypatch.setattr(Partition, "_is_follower_in_sync", always_in_sync)
    noise = Fault(9_000, "pause", 500, (2,))  # after the violation: it cannot matter
    config = SimConfig(seed=3, duration_ms=10_000, faults=[*LAGGING_FOLLOWER, noise])
    failing = simulate(config)
    assert failing.failed
    shrunk = shrink(failing, max_runs=4)  # ddmin's first steps: no faults, then each half
    assert shrunk.result.failure == failing.failure
    assert shrunk.result.faults == LAGGING_FOLLOWER
    replayed = simulate(replace(shrunk.config, keep_trace=False))
    assert replayed.failure == failing.failure, "the shrunk run replays from its own description"


def client_runner(log: list[SimConfig]) -> object:
    """A run fails (NoDuplicate) iff a new producer instance takes over at +700ms; the acks=1
    producer, the broken connections and the other instances do not matter."""

    def run(config: SimConfig) -> SimResult:
        log.append(config)
        result = SimResult(config, None, list(config.faults or []))
        drawn = ((300, 700, 1_100, 2_000), BrokenConnections(rate=0.3, read_first=0.9, max_delay_ms=200))
        result.producer_restarts = drawn[0] if config.producer_restarts is None else config.producer_restarts
        result.broken_connections = drawn[1] if config.broken_connections is None else config.broken_connections
        if 700 in result.producer_restarts:
            result.violations = [Violation("NoDuplicate", "planted", 0, "")]
        else:
            result.verdict = Verdict(VALID, "idempotent", {}, {}, [], [], {})
        return result

    return run


def test_the_clients_shrink_too_and_the_shrunk_run_carries_them() -> None:
    log: list[SimConfig] = []
    runner = client_runner(log)
    failing = runner(SimConfig(seed=5, faults=[Fault(100, "pause", 200, (1,))]))  # type: ignore[operator]
    shrunk = shrink(failing, runner)  # type: ignore[arg-type]
    config = shrunk.config
    assert shrunk.result.faults == []
    assert config.producer_restarts == (700,), "the one new instance that matters stays, pinned"
    assert config.broken_connections == BrokenConnections()
    assert not config.acks1_producer
    text = describe(shrunk)
    assert "a new instance takes over at +700ms" in text and "(no acks=1 producer)" in text
    assert "connections break" not in text


def test_a_shrunk_runs_replay_command_gives_back_its_clients() -> None:
    config = SimConfig(seed=9, duration_ms=4_000, faults=[Fault(100, "crash", 300, (2,))],
                       producer_restarts=(250, 900), acks1_producer=False,
                       broken_connections=BrokenConnections(rate=0.1, read_first=0.5, max_delay_ms=2_000))
    command = replay_command(SimResult(config, None, list(config.faults or [])))
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(shlex.split(command)[2:])
    assert _config(args, args.seed) == replace(config, faults=config.faults)
    never = replace(config, producer_restarts=(), broken_connections=BrokenConnections(), acks1_producer=True)
    args = parser.parse_args(shlex.split(replay_command(SimResult(never, None, [])))[2:])
    assert _config(args, args.seed) == replace(never, faults=[])
