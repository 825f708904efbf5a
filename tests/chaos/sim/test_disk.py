"""The simulated disk (chaos/sim/disk.py): a power loss keeps what was fsynced and any prefix of the
rest, never less and never anything else; and the seam (reference/durability.py) is a plain fsync
when nothing watches."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from chaos.sim.disk import DiskModel
from chaos.sim.faults import LEADER, Fault
from chaos.sim.run import SimConfig, simulate
from reference import durability

TRIALS = 64  # power losses per property, each from its own seed


def _write(path: Path, data: bytes, sync: bool = False) -> None:
    with open(path, "ab") as handle:
        handle.write(data)
        handle.flush()
        if sync:
            durability.fsync(handle)


def _outcomes(tmp_path: Path, prepare, name: str) -> list[bytes | None]:
    """Prepare a fresh directory ``TRIALS`` times, lose power, and read ``name`` back (None: gone)."""
    outcomes: list[bytes | None] = []
    for trial in range(TRIALS):
        root = tmp_path / f"trial-{trial}"
        root.mkdir()
        disk = DiskModel(root)
        prepare(root)
        disk.power_loss(root, random.Random(trial))
        path = root / name
        outcomes.append(path.read_bytes() if path.exists() else None)
        durability.unwatch(root)
    return outcomes


def test_fsynced_bytes_survive_and_the_unfsynced_tail_is_cut_to_any_prefix(tmp_path: Path) -> None:
    durable, tail = b"D" * 100, bytes(range(200))

    def prepare(root: Path) -> None:
        _write(root / "log", durable, sync=True)
        durability.fsync_directory(root)
        _write(root / "log", tail)

    outcomes = _outcomes(tmp_path, prepare, "log")
    assert all(outcome is not None and (durable + tail).startswith(outcome) and len(outcome) >= len(durable)
               for outcome in outcomes), "a prefix of what was written, never below what was fsynced"
    kept = {len(outcome) - len(durable) for outcome in outcomes if outcome is not None}
    assert 0 in kept and len(tail) in kept, "none of the tail, or all of it"
    assert any(0 < length < len(tail) for length in kept), "or a torn part of it"


def test_a_never_fsynced_new_file_may_vanish_or_be_cut_to_any_prefix(tmp_path: Path) -> None:
    def prepare(root: Path) -> None:
        durability.fsync_directory(root)  # the directory was made durable before the file existed
        _write(root / "new", b"x" * 64)

    outcomes = _outcomes(tmp_path, prepare, "new")
    assert None in outcomes, "its name never reached the disk: it may be gone"
    assert any(outcome == b"" for outcome in outcomes) and any(outcome == b"x" * 64 for outcome in outcomes)
    assert all(outcome is None or b"x" * 64 == outcome.ljust(64, b"x") for outcome in outcomes)


def test_a_rename_made_durable_by_a_directory_fsync_survives_whole(tmp_path: Path) -> None:
    """write_atomically's sequence (reference/broker/log/checkpoint.py): tmp, fsync, rename, fsync dir."""
    from reference.broker.log.checkpoint import write_atomically

    def prepare(root: Path) -> None:
        durability.fsync_directory(root)
        write_atomically(root / "checkpoint", b"0\n1\nsim-all 0 42\n")

    assert set(_outcomes(tmp_path, prepare, "checkpoint")) == {b"0\n1\nsim-all 0 42\n"}


def test_a_rename_without_the_directory_fsync_may_vanish(tmp_path: Path) -> None:
    def prepare(root: Path) -> None:
        durability.fsync_directory(root)
        _write(root / "state.tmp", b"state", sync=True)
        os.replace(root / "state.tmp", root / "state")

    outcomes = _outcomes(tmp_path, prepare, "state")
    assert None in outcomes and b"state" in outcomes
    assert set(outcomes) <= {None, b"state"}, "its contents were fsynced: whole, if there at all"


def test_a_truncation_lowers_what_is_durable(tmp_path: Path) -> None:
    """A follower's truncation (KIP-101) then new records: the new ones were never fsynced."""
    def prepare(root: Path) -> None:
        _write(root / "log", b"A" * 100, sync=True)
        durability.fsync_directory(root)
        with open(root / "log", "r+b") as handle:
            durability.truncate(handle.fileno(), 40)
        _write(root / "log", b"B" * 60)

    outcomes = _outcomes(tmp_path, prepare, "log")
    assert all(outcome is not None and len(outcome) >= 40 and (b"A" * 40 + b"B" * 60).startswith(outcome)
               for outcome in outcomes)
    assert any(outcome == b"A" * 40 for outcome in outcomes), "the records written after the cut may all be lost"


def test_what_a_power_loss_left_is_durable_from_then_on(tmp_path: Path) -> None:
    disk = DiskModel(tmp_path)
    _write(tmp_path / "log", b"x" * 50)
    durability.fsync_directory(tmp_path)
    disk.power_loss(tmp_path, random.Random(3))
    left = (tmp_path / "log").read_bytes()
    disk.power_loss(tmp_path, random.Random(4))
    assert (tmp_path / "log").read_bytes() == left


def test_nothing_watched_is_a_plain_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", lambda descriptor: synced.append(descriptor))
    with open(tmp_path / "file", "wb") as handle:
        durability.fsync(handle)
        assert synced == [handle.fileno()]
    durability.fsync_directory(tmp_path)
    assert len(synced) == 2


def test_a_watched_fsync_is_reported_instead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", lambda descriptor: synced.append(descriptor))
    disk = DiskModel(tmp_path)
    _write(tmp_path / "file", b"abc", sync=True)
    assert synced == [] and list(disk.durable_size.values()) == [3]


def test_a_run_with_a_power_loss_replays_to_the_same_digest() -> None:
    faults = [Fault(1_000, "power-loss", 1_000, (LEADER,))]
    config = SimConfig(seed=7, duration_ms=4_000, swarm=False, faults=faults)
    first, second = simulate(config), simulate(config)
    assert first.failure == "" and first.coverage["fault:power-loss"] == 1
    assert any("bytes lost" in line for line in first.fault_log)
    assert first.digest == second.digest and first.events == second.events
