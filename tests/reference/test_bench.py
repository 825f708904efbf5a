"""``refka bench``: the report and its ratios (no figure is asserted: the machine decides those)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference.bench import Figures, Result, format_markdown, format_table, peak_rss_of
from reference.cli import main


def result(name: str, mb: float, p99_ms: float, rss_mib: int | None) -> Result:
    seconds = 2.0
    phases = {phase: Figures(records=int(mb * seconds * 1000), seconds=seconds, bytes=int(mb * seconds * 1_000_000),
                             p50_ms=p99_ms / 2, p99_ms=p99_ms)
              for phase in ("produce acks=1", "produce acks=all", "paced acks=1", "paced acks=all")}
    phases["consume"] = Figures(records=int(mb * seconds * 1000), seconds=seconds, bytes=int(mb * seconds * 1_000_000))
    return Result(name, phases, None if rss_mib is None else rss_mib * 1024 * 1024)


def test_every_target_gets_a_ratio_to_kafka_in_the_table_and_the_markdown_report() -> None:
    results = [result("reference", 80.0, 20.0, 40), result("kafka", 100.0, 25.0, 400), result("other", 50.0, 50.0, None)]
    markdown = format_markdown(results, {"nodes": "1"}, "refka bench", None)
    assert "| phase | figure | reference | kafka | other | reference/kafka | other/kafka |" in markdown
    assert "| produce acks=1 | MB/s | 80.0 | 100.0 | 50.0 | 0.80 | 0.50 |" in markdown
    assert "| paced acks=all | p99 ms | 20.0 | 25.0 | 50.0 | 0.80 | 2.00 |" in markdown
    assert "| memory | peak RSS MiB | 40 | 400 | - | 0.10 | - |" in markdown
    table = format_table(results).splitlines()
    consume = next(line for line in table if line.startswith("consume") and "MB/s" in line)
    assert consume.split()[-2:] == ["0.80", "0.50"]


def test_without_kafka_there_is_no_ratio_column() -> None:
    markdown = format_markdown([result("reference", 80.0, 20.0, 40)], {}, "refka bench --no-kafka", None)
    assert "| phase | figure | reference |" in markdown
    assert "/kafka" not in markdown


def test_targets_take_turns_so_none_always_goes_first() -> None:
    from reference.bench import PHASES, taking_turns

    orders = taking_turns(["reference", "kafka", "other"])
    assert len(orders) == len(PHASES)
    assert orders[0] == ["reference", "kafka", "other"] and orders[1] == ["other", "kafka", "reference"]
    firsts = {order[0] for order in orders}
    assert firsts == {"reference", "other"}  # alternating: the first and the last take turns to lead
    assert all(sorted(order) == ["kafka", "other", "reference"] for order in orders)


def test_peak_rss_is_read_from_proc_for_a_live_process_only() -> None:
    import os

    assert (peak_rss_of(os.getpid()) or 0) > 0
    assert peak_rss_of(2**22 + 12345) is None  # above pid_max: no such process


@pytest.mark.slow
@pytest.mark.clients
def test_a_one_second_bench_of_the_reference_broker_writes_its_report_and_plot(tmp_path: Path) -> None:
    report = tmp_path / "bench.md"
    assert main(["bench", "--seconds", "1", "--no-kafka", "--no-progress", "--report", str(report)]) == 0
    text = report.read_text()
    for phase in ("produce acks=1", "produce acks=all", "paced acks=1", "paced acks=all", "consume"):
        assert f"| {phase} | MB/s | " in text
    assert "| memory | peak RSS MiB | " in text
    assert "| memory | peak RSS MiB | - |" not in text  # the broker was started here: its memory is known
    assert (tmp_path / "bench.png").read_bytes().startswith(b"\x89PNG")
