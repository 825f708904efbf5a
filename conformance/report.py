"""The conformance matrix: test x client, written as Markdown and HTML, plus a one-line summary.

Input is the JSON the plugin writes with ``--results-json`` (one record per test and client:
``test``, ``module``, ``client``, ``outcome`` in passed/failed/error/skipped, ``message`` and the
``behaviour`` line from the test's docstring).  Tests that do not go through a client (raw
protocol probes, admin) appear in the ``broker`` column.

A cell reads ``pass``, ``FAIL: <observed vs expected>`` or ``skip: <reason>``; a blank cell means
the test does not run with that client.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLIENT_ORDER = ("broker", "kafka-python", "confluent-kafka", "aiokafka", "kcat", "refka")


@dataclass
class Matrix:
    clients: list[str]
    rows: list[tuple[str, str, str]]  # (module, test, behaviour)
    cells: dict[tuple[str, str, str], dict[str, Any]]  # (module, test, client) -> record
    counts: Counter[str]

    @property
    def failed(self) -> int:
        return self.counts["failed"] + self.counts["error"]


def build_matrix(results: list[dict[str, Any]]) -> Matrix:
    clients = sorted({r["client"] for r in results},
                     key=lambda c: (CLIENT_ORDER.index(c) if c in CLIENT_ORDER else len(CLIENT_ORDER), c))
    rows: list[tuple[str, str, str]] = []
    cells: dict[tuple[str, str, str], dict[str, Any]] = {}
    for record in results:
        row = (record["module"], record["test"], record.get("behaviour", ""))
        if not any(existing[:2] == row[:2] for existing in rows):
            rows.append(row)
        cells[(record["module"], record["test"], record["client"])] = record
    counts = Counter(r["outcome"] for r in results)
    return Matrix(clients, rows, cells, counts)


def summary_line(matrix: Matrix, target: str | None, seconds: float | None = None) -> str:
    total = sum(matrix.counts.values())
    verdict = "FAILED" if matrix.failed else "OK"
    timing = f" in {seconds:.0f} s" if seconds is not None else ""
    return (f"conformance {verdict}: {matrix.counts['passed']} passed, {matrix.failed} failed, "
            f"{matrix.counts['skipped']} skipped of {total} against {target or '?'}{timing}")


def _cell_text(record: dict[str, Any] | None) -> tuple[str, str]:
    """(css class, text) of one cell."""
    if record is None:
        return "none", ""
    message = " ".join(str(record.get("message", "")).split())
    if len(message) > 300:
        message = message[:297] + "..."
    if record["outcome"] == "passed":
        return "pass", "pass"
    if record["outcome"] == "skipped":
        return "skip", f"skip: {message}"
    return "fail", f"FAIL: {message}"


def to_markdown(matrix: Matrix, summary: str) -> str:
    lines = ["# Conformance matrix", "", summary, "",
             "| module | test | " + " | ".join(matrix.clients) + " |",
             "|---|---|" + "---|" * len(matrix.clients)]
    for module, test, _behaviour in matrix.rows:
        cells = [_cell_text(matrix.cells.get((module, test, client)))[1].replace("|", "\\|")
                 for client in matrix.clients]
        lines.append(f"| {module} | `{test}` | " + " | ".join(cells) + " |")
    lines += ["", "## What each test checks", ""]
    for module, test, behaviour in matrix.rows:
        lines.append(f"- `{module}::{test}`: {behaviour or '(no docstring)'}")
    return "\n".join(lines) + "\n"


def to_html(matrix: Matrix, summary: str) -> str:
    style = ("body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
             "padding:3px 6px;vertical-align:top;font-size:13px}.pass{background:#dfd}.fail{background:#fdd}"
             ".skip{background:#eee;color:#555}.none{background:#fff}")
    head = "".join(f"<th>{html.escape(c)}</th>" for c in matrix.clients)
    body = []
    for module, test, behaviour in matrix.rows:
        cells = []
        for client in matrix.clients:
            css, text = _cell_text(matrix.cells.get((module, test, client)))
            cells.append(f'<td class="{css}">{html.escape(text)}</td>')
        body.append(f'<tr><td>{html.escape(module)}</td><td title="{html.escape(behaviour)}"><code>'
                    f"{html.escape(test)}</code></td>{''.join(cells)}</tr>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Conformance matrix</title>"
            f"<style>{style}</style></head><body><h1>Conformance matrix</h1><p>{html.escape(summary)}</p>"
            f"<table><tr><th>module</th><th>test</th>{head}</tr>{''.join(body)}</table></body></html>\n")


def write_reports(results_json: Path, report_dir: Path, seconds: float | None = None) -> tuple[Matrix, str]:
    """Read the plugin's JSON, write matrix.md and matrix.html into ``report_dir``; returns the
    matrix and the summary line."""
    data = json.loads(results_json.read_text())
    matrix = build_matrix(data["results"])
    summary = summary_line(matrix, data.get("meta", {}).get("bootstrap"), seconds)
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "matrix.md").write_text(to_markdown(matrix, summary))
    (report_dir / "matrix.html").write_text(to_html(matrix, summary))
    return matrix, summary
