"""Coverage probes (chaos/sim/probes.py) for the two situations of the last surviving guards, on real
partitions placed in a stand-in for the simulated cluster (only what the probes read of it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from chaos.sim.probes import CoverageProbes
from reference.broker.log.clock import ManualClock
from reference.broker.partition import Partition
from reference.records.batch import assign_offsets_in_place
from tests.reference.broker.log.helpers import T0, batch, open_log

TOPIC = "sim-all"
KEY = (0, 0, TOPIC, 0)  # node 0, its first life, sim-all-0


def written(partition: Partition, epochs: list[int]) -> None:
    """One batch per entry of ``epochs``, at the partition's log end, as a leader of that epoch wrote it."""
    for epoch in epochs:
        stored = bytearray(batch(1))
        assign_offsets_in_place(stored, 0, partition.log_end_offset, epoch)
        partition.log.append_as_follower(bytes(stored))


def node(partition: Partition, fetchers: dict[int, Any] | None = None) -> SimpleNamespace:
    replicas = SimpleNamespace(get=lambda topic, index: partition if (topic, index) == (TOPIC, 0) else None,
                               fetchers=SimpleNamespace(fetchers=fetchers or {}))
    return SimpleNamespace(broker=SimpleNamespace(replicas=replicas))


@pytest.fixture
def partitions(tmp_path: Path) -> Iterator[dict[int, Partition]]:
    clock = ManualClock(T0)
    made = {node_id: Partition(open_log(tmp_path / f"{node_id}" / "sim-all-0", clock), node_id) for node_id in (0, 1)}
    yield made
    for partition in made.values():
        partition.log.close()


def cluster(nodes: dict[int, Any]) -> SimpleNamespace:
    return SimpleNamespace(nodes=nodes, incarnation={node_id: 0 for node_id in nodes})


def test_the_lineage_probe_counts_a_follower_whose_two_truncation_rules_disagree(
        partitions: dict[int, Partition]) -> None:
    """Leader 1 in epoch 2: epoch 0 up to 5.  Follower 0: epoch 0 up to 2, then epoch 1 up to 6.
    Leader's answer for epoch 1: epoch 0 ends at 5.  KIP-101: truncate to 5; KIP-279: to 2."""
    leader, follower = partitions[1], partitions[0]
    written(leader, [0] * 5)
    leader.make_leader(2, {0, 1}, [1, 0], now_ms=T0)
    written(follower, [0, 0, 1, 1, 1, 1])
    follower.make_follower(2, 1, [1, 0], now_ms=T0)
    probes = CoverageProbes({TOPIC: 1})
    for _ in range(2):
        probes._observe_lineage(cluster({0: node(follower), 1: node(leader)}), KEY, follower)  # type: ignore[arg-type]
    assert probes.counts["truncation-kip279-differs-from-kip101"] == 1, "once per follower and epoch"


def test_the_lineage_probe_ignores_a_divergence_both_rules_truncate_alike(partitions: dict[int, Partition]) -> None:
    """Follower 0 has epoch 0 up to 5 as the leader does, then epoch 1: both rules truncate to 5."""
    leader, follower = partitions[1], partitions[0]
    written(leader, [0] * 5)
    leader.make_leader(2, {0, 1}, [1, 0], now_ms=T0)
    written(follower, [0] * 5 + [1])
    follower.make_follower(2, 1, [1, 0], now_ms=T0)
    probes = CoverageProbes({TOPIC: 1})
    probes._observe_lineage(cluster({0: node(follower), 1: node(leader)}), KEY, follower)  # type: ignore[arg-type]
    assert probes.counts["truncation-kip279-differs-from-kip101"] == 0


@pytest.mark.parametrize(("fetch_epoch", "probe"), [(1, "fetch-from-older-epoch"), (3, "fetch-from-newer-epoch"),
                                                     (2, None)])
def test_the_fetch_probes_compare_the_epoch_a_follower_fetch_names_with_its_leaders(
        partitions: dict[int, Partition], fetch_epoch: int, probe: str | None) -> None:
    leader, follower = partitions[1], partitions[0]
    leader.make_leader(2, {0, 1}, [1, 0], now_ms=T0)
    follower.make_follower(fetch_epoch, 1, [1, 0], now_ms=T0)
    fetch = SimpleNamespace(body=SimpleNamespace(topics=[SimpleNamespace(
        topic=TOPIC, partitions=[SimpleNamespace(partition=0, current_leader_epoch=fetch_epoch)])]))
    nodes = {0: node(follower, {1: SimpleNamespace(in_flight=fetch)}), 1: node(leader)}
    probes = CoverageProbes({TOPIC: 1})
    for event in ("request 0->1 Fetch", "request 0->1 Fetch", "request final-reader->1 Fetch"):
        if event.startswith("request ") and event.endswith(" Fetch"):  # as CoverageProbes.__call__ picks them
            probes._observe_fetch(cluster(nodes), event)  # type: ignore[arg-type]
    counted = {name: count for name, count in probes.counts.items() if name.startswith("fetch-from")}
    assert counted == ({probe: 1} if probe else {}), "once per request, and only a follower's"
