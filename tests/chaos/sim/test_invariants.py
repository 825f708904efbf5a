"""The invariants fire on the real nodes when a guard of the implementation is switched off, and
stay quiet with the guard on (same seed, same schedule)."""

from __future__ import annotations

import pytest

from chaos.sim.faults import Fault
from chaos.sim.invariants import INVARIANTS
from chaos.sim.run import SimConfig, simulate
from reference.broker.partition import FollowerFetchState, Partition

# A follower paused past replica.lag.time.max.ms leaves the ISR; after it resumes, its link to the
# leader is slow (fetch answers take up to 1.5 s), so it stays behind for a while.
LAGGING_FOLLOWER = [Fault(1000, "pause", 5000, (1,)),
                    Fault(5500, "lossy", 4000, (0, 1), jitter_ms=1500)]


def lagging_follower_run() -> SimConfig:
    return SimConfig(seed=3, duration_ms=10_000, faults=LAGGING_FOLLOWER)


def test_a_lagging_follower_let_into_the_isr_breaks_the_isr_invariants(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kafka's isFollowerInSync (LEO >= HW and >= the leader epoch's start) switched off: the
    follower joins the ISR while it lacks committed records, which the model forbids."""

    def always_in_sync(self: Partition, follower: FollowerFetchState) -> bool:
        return True

    monkeypatch.setattr(Partition, "_is_follower_in_sync", always_in_sync)
    result = simulate(lagging_follower_run())
    assert result.failed
    # IsrJoinHoldsAcknowledged is the earliest of the three: it sees the leader's request to add the
    # follower, before the controller's ISR holds it, and the run stops at its first violation.
    assert {violation.invariant for violation in result.violations} & {"ValidHighWatermark", "StrongIsr",
                                                                         "IsrJoinHoldsAcknowledged"}
    assert all(violation.invariant in INVARIANTS for violation in result.violations)


def test_with_the_guard_on_the_same_run_keeps_every_invariant_and_the_checker_says_valid() -> None:
    result = simulate(lagging_follower_run())
    assert result.violations == []
    assert result.verdict is not None and result.verdict.verdict == "valid", result.verdict
    assert result.coverage["restart"] == 0 and result.coverage["fault:pause"] == 1


def test_a_power_lost_replica_is_back_only_when_a_newer_isr_takes_it_back() -> None:
    """The images the checker reads move between nodes, and a new active controller replays older
    ISRs while it loads (seed 157 at 20 s saw it): an older image leaving the node out and a newer
    one still holding it in the ISR must not end its lost-data exemption; a later ISR does."""
    from types import SimpleNamespace

    from chaos.sim.invariants import InvariantChecker

    def image(isr: list[int], partition_epoch: int) -> object:
        registration = SimpleNamespace(isr=isr, partition_epoch=partition_epoch)
        return SimpleNamespace(topics={"t": SimpleNamespace(partitions={0: registration})})

    checker = InvariantChecker({"t": 1}, list)
    cluster = SimpleNamespace(power_losses=[])
    checker._track_lost_data(cluster, image([0, 1, 2], 5))  # type: ignore[arg-type]
    cluster.power_losses.append(0)
    checker._track_lost_data(cluster, image([0, 1, 2], 5))  # type: ignore[arg-type]
    assert (0, "t", 0) in checker._lost_data
    for isr, epoch in (([1, 2], 3), ([0, 1, 2], 5), ([1, 2], 6), ([0, 1, 2], 6)):
        checker._track_lost_data(cluster, image(isr, epoch))  # type: ignore[arg-type]
        assert (0, "t", 0) in checker._lost_data, (isr, epoch)
    checker._track_lost_data(cluster, image([1, 2, 0], 7))  # type: ignore[arg-type]
    assert (0, "t", 0) not in checker._lost_data
