"""Whole runs: the same seed gives the same trace digest; a short swarm passes every invariant, the
liveness phase and the checker; acknowledged records are all read back."""

from __future__ import annotations

from chaos.history import Event
from chaos.sim.faults import Fault
from chaos.sim.run import ACKS1_TOPIC, SAFE_TOPIC, SimConfig, simulate, topic_history

SHORT = 3_000


def test_two_runs_of_one_seed_have_the_same_event_trace_and_another_seed_does_not() -> None:
    faults = [Fault(500, "crash", 1_500, (-1,)), Fault(800, "lossy", 2_000, (), 0.1, 0.1, 20, True)]
    first = simulate(SimConfig(seed=21, duration_ms=SHORT, faults=faults, keep_trace=True))
    second = simulate(SimConfig(seed=21, duration_ms=SHORT, faults=faults, keep_trace=True))
    assert first.trace == second.trace and first.digest == second.digest
    assert first.events == second.events > 1_000
    other = simulate(SimConfig(seed=22, duration_ms=SHORT, faults=faults, liveness=False))
    assert other.digest != first.digest


def test_a_short_swarm_passes_and_every_acknowledged_record_is_read_back() -> None:
    for seed in (2, 4):
        result = simulate(SimConfig(seed=seed, duration_ms=5_000))
        assert not result.failed, (seed, [v.describe() for v in result.violations], result.verdict)
        assert result.verdict is not None and result.verdict.stats["acknowledged"] > 0
        assert result.verdict.stats["final_read_complete"] is True
        assert result.verdict.stats["distinct_records_read"] >= result.verdict.stats["acknowledged"]


def test_a_topic_history_keeps_that_topic_only() -> None:
    events = [
        Event("p", "invoke", "send", {"topic": SAFE_TOPIC, "key": "0", "value": "a"}, 1, 1),
        Event("q", "invoke", "send", {"topic": ACKS1_TOPIC, "key": "0", "value": "b"}, 2, 2),
        Event("r", "ok", "poll", {"records": [{"topic": SAFE_TOPIC, "partition": 0, "offset": 0, "key": "0",
                                               "value": "a"},
                                              {"topic": ACKS1_TOPIC, "partition": 0, "offset": 0, "key": "0",
                                               "value": "b"}]}, 3, 3),
    ]
    kept = topic_history(events, SAFE_TOPIC)
    assert [event.process for event in kept] == ["p", "r"]
    assert [record["value"] for record in kept[1].value["records"]] == ["a"]
