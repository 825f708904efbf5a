"""What a person reads after a chaos run: ``summary.txt`` and ``timeline.png``.

The summary states the verdict first, then why (each anomaly kind with its count and a few
examples), then what the run did (records sent, acknowledged, maybe written, read; each fault with
its time window).  The timeline has two panels over the run's seconds: throughput (sends
acknowledged, sends that ended "maybe written", records read, per second) and send latency
(invoke to delivery report, every send as a dot, the per-second 99th percentile as a line), with
every fault window shaded and labelled by its nemesis, so a reader can see what each fault did to
the clients; a dashed line marks the start of the final read.  matplotlib draws with the Agg backend: no display needed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .checker import ANOMALY_KINDS, Verdict
from .checker_txn import TRANSACTIONAL, TXN_ANOMALY_KINDS
from .history import INFO, INVOKE, OK, Event, Fault

SUMMARY_FILE = "summary.txt"
TIMELINE_FILE = "timeline.png"
NS = 1_000_000_000


def summary(verdict: Verdict, faults: Sequence[Fault], metadata: dict[str, Any]) -> str:
    lines = [f"verdict: {verdict.verdict.upper()}  (workload {verdict.workload})"]
    if verdict.failing:
        lines.append("failed by: " + ", ".join(verdict.failing))
    lines += [f"  - {reason}" for reason in verdict.reasons]
    lines.append("")
    if metadata:
        lines.append(f"target {metadata.get('target')} with {metadata.get('nodes')} node(s), seed {metadata.get('seed')}, "
                     f"{metadata.get('duration')} s, nemeses {', '.join(metadata.get('nemeses', [])) or 'none'}")
        unsafe = (metadata.get("workload") or {}).get("unsafe")
        if unsafe:
            lines.append(f"UNSAFE configuration {unsafe}: loss is expected here")
    stats = verdict.stats
    lines.append(f"sends {stats.get('sends', 0)}: acknowledged {stats.get('acknowledged', 0)}, "
                 f"maybe written {stats.get('maybe_written', 0)}, failed {stats.get('failed', 0)}")
    lines.append(f"records read {stats.get('records_read', 0)} ({stats.get('distinct_records_read', 0)} distinct); "
                 f"final read complete: {stats.get('final_read_complete')}")
    if "transactions" in stats:
        lines.append(f"transactions {stats['transactions']}: committed {stats.get('committed_transactions', 0)}, "
                     f"aborted {stats.get('aborted_transactions', 0)}, unknown {stats.get('unknown_transactions', 0)}; "
                     f"reads read_committed {stats.get('read_committed_reads', 0)}, "
                     f"read_uncommitted {stats.get('read_uncommitted_reads', 0)}")
    lines.append("")
    lines.append("anomalies:")
    for kind in TXN_ANOMALY_KINDS if verdict.workload == TRANSACTIONAL else ANOMALY_KINDS:
        count = verdict.counts.get(kind, 0)
        marker = "FAIL" if kind in verdict.failing else ("    " if count == 0 else "note")
        lines.append(f"  {marker} {kind:<36} {count}")
        for example in verdict.examples.get(kind, [])[:3]:
            lines.append(f"         e.g. {json.dumps(example, sort_keys=True)}")
    lines.append("")
    lines.append(f"faults ({len(faults)}):")
    for fault in faults:
        end = "never healed" if fault.end is None else f"{fault.end / NS:7.2f}s"
        lines.append(f"  {fault.start / NS:7.2f}s .. {end}  {fault.nemesis:<10} {json.dumps(fault.description, sort_keys=True)}")
    return "\n".join(lines) + "\n"


def _send_latencies(events: Sequence[Event]) -> list[tuple[float, float, str]]:
    """(completion second, latency ms, outcome) for every completed send."""
    invoked: dict[tuple[str, str], int] = {}
    latencies = []
    for event in events:
        if event.f != "send":
            continue
        value = event.value or {}
        slot = (event.process, str(value.get("value")))
        if event.type == INVOKE:
            invoked[slot] = event.time
        elif slot in invoked:
            latencies.append((event.time / NS, (event.time - invoked.pop(slot)) / 1e6, event.type))
    return latencies


def _per_second(events: Sequence[Event]) -> dict[str, dict[int, int]]:
    series: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for event in events:
        second = int(event.time // NS)
        if event.f == "send" and event.type == OK:
            series["acknowledged"][second] += 1
        elif event.f == "send" and event.type == INFO:
            series["maybe written"][second] += 1
        elif event.f == "poll" and event.type == OK:
            series["read"][second] += len((event.value or {}).get("records", []))
    return series


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def plot_timeline(events: Sequence[Event], faults: Sequence[Fault], path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    end = max([e.time for e in events] + [f.end or f.start for f in faults] + [NS]) / NS
    figure, (throughput, latency) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True)
    seconds = range(int(end) + 1)
    for name, per_second in _per_second(events).items():
        throughput.plot([s + 0.5 for s in seconds], [per_second.get(s, 0) for s in seconds], label=name, linewidth=1.2)
    throughput.set_ylabel("per second")
    throughput.legend(loc="upper right", fontsize="small")
    latencies = _send_latencies(events)
    for outcome, colour in ((OK, "tab:blue"), (INFO, "tab:orange")):
        points = [(t, ms) for t, ms, kind in latencies if kind == outcome]
        if points:
            latency.scatter([t for t, _ in points], [ms for _, ms in points], s=3, alpha=0.4, color=colour,
                            label="acknowledged" if outcome == OK else "maybe written")
    buckets: dict[int, list[float]] = defaultdict(list)
    for t, ms, _kind in latencies:
        buckets[int(t)].append(ms)
    if buckets:
        latency.plot([s + 0.5 for s in sorted(buckets)], [_p99(buckets[s]) for s in sorted(buckets)],
                     color="black", linewidth=1, label="p99")
        latency.set_yscale("log")
        latency.legend(loc="upper right", fontsize="small")
    latency.set_ylabel("send latency (ms)")
    latency.set_xlabel("seconds since start")
    _shade_faults(faults, (throughput, latency), end)
    final = [e.time / NS for e in events if e.process == "final-reader" and e.f == "assign" and e.type == OK]
    for axis in (throughput, latency) if final else ():
        axis.axvline(final[0], color="grey", linestyle="--", linewidth=1)
    if final:
        throughput.text(final[0], 1.0, " final read", transform=throughput.get_xaxis_transform(),
                        fontsize="x-small", color="grey", va="bottom")
    throughput.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _shade_faults(faults: Sequence[Fault], axes: Sequence[Any], end: float) -> None:
    palette = ["tab:red", "tab:purple", "tab:green", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]
    colours: dict[str, str] = {}
    for fault in faults:
        colour = colours.setdefault(fault.nemesis, palette[len(colours) % len(palette)])
        start, stop = fault.start / NS, (fault.end / NS if fault.end is not None else end)
        for axis in axes:
            axis.axvspan(start, stop, color=colour, alpha=0.15, linewidth=0)
        axes[0].text(start, 1.0, fault.nemesis, transform=axes[0].get_xaxis_transform(), fontsize="x-small",
                     color=colour, va="bottom")
