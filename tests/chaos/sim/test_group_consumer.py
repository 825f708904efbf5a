"""Group consumers in the simulator: the reference client's consumer core on the simulated network,
the group's reads judged by the history checker, and NoSkip catching a coordinator that resumes a
member past what was processed."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace

import pytest

import reference.broker.group.coordinator as group_coordinator
from chaos.checker import VALID
from chaos.sim.group_consumer import Processed, draw_consumer_restarts
from chaos.sim.run import SimConfig, simulate
from chaos.sim.shrink import describe, shrink

RESTARTS_SEED = 4  # draws a member that dies 3.4 s into the safety phase


def test_the_processed_prefix_advances_only_over_contiguous_offsets() -> None:
    processed = Processed()
    for offset in (0, 1, 3, 4):
        processed.add(0, offset)
    assert processed.first_unprocessed(0) == 2
    processed.add(0, 2)
    assert processed.first_unprocessed(0) == 5
    processed.add(0, 1)  # a redelivery changes nothing
    assert processed.first_unprocessed(0) == 5
    assert processed.first_unprocessed(1) == 0


def test_consumer_restarts_are_drawn_per_seed_and_only_within_the_safety_phase() -> None:
    draws = [draw_consumer_restarts(random.Random(f"consumers/{seed}"), 10_000) for seed in range(40)]
    assert any(not draw for draw in draws) and any(draw for draw in draws)
    assert all(0 < at < 10_000 for draw in draws for at, _ in draw)
    assert {clean for draw in draws for _, clean in draw} == {True, False}


def test_without_faults_the_group_reads_every_acknowledged_record_and_commits_it() -> None:
    result = simulate(SimConfig(seed=1, duration_ms=3_000, swarm=False, faults=[], group_consumers=2))
    assert not result.failed, result.failure
    assert result.verdict is not None and result.verdict.verdict == VALID
    assert result.coverage["group-rebalance"] == 2, "each of the two members was given a partition"
    # Every acknowledged record was processed by a member, not only read by the final reader (which
    # alone would make the verdict valid): one record an offset, none unacknowledged without faults.
    acknowledged = result.verdict.stats["acknowledged"]
    assert acknowledged > 0
    assert sum(result.group_processed.values()) == acknowledged


@pytest.fixture
def resumes_one_past_the_commit() -> Iterator[None]:
    """A planted coordinator bug: OffsetFetch answers the committed offset + 1."""
    original = group_coordinator._fetched

    def planted(partition_index: int, offset: object) -> object:
        fetched = original(partition_index, offset)  # type: ignore[arg-type]
        return fetched if offset is None else replace(fetched, committed_offset=fetched.committed_offset + 1)

    group_coordinator._fetched = planted  # type: ignore[assignment]
    yield
    group_coordinator._fetched = original


def test_no_skip_catches_a_coordinator_resuming_a_member_past_the_commit(resumes_one_past_the_commit: None) -> None:
    config = SimConfig(seed=RESTARTS_SEED, duration_ms=6_000, group_consumers=2)
    failing = simulate(config)
    assert failing.failure == "NoSkip", failing.failure
    shrunk = shrink(failing, max_runs=12)
    assert shrunk.result.failure == "NoSkip"
    assert shrunk.config.consumer_restarts, "the member's restart is what makes the new owner resume"
    assert "consumer: a member" in describe(shrunk)


def test_the_same_seed_passes_with_the_coordinator_unmodified_and_rebalances() -> None:
    result = simulate(SimConfig(seed=RESTARTS_SEED, duration_ms=6_000, group_consumers=2))
    assert not result.failed, result.failure
    assert result.consumer_restarts, "the seed draws a member restart"
    assert result.coverage["group-rebalance"] > 2, "a new owner resumed from a committed offset"
