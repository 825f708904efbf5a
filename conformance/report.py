"""The conformance matrix: test x client, written as Markdown and HTML, plus a one-line summary.

Input is the JSON the plugin writes with ``--results-json`` (one record per test and client:
``test``, ``module``, ``client``, ``outcome`` in passed/failed/error/skipped, ``message`` and the
``behaviour`` line from the test's docstring).  Tests that do not go through a client (raw
protocol probes, admin) appear in the ``broker`` column.

A cell reads ``pass``, ``FAIL: <observed vs expected>`` or ``skip: <reason>``; a blank cell means
the test does not run with that client.  Above the matrix, a table of pass rates per *area* (the
suite module a test lives in: ``test_groups`` is the area "groups"); a rate counts passed against
passed + failed, since a skip says what a client cannot express, not what the broker does.

Two runs compare (:func:`compare_runs`, ``refka conform --compare EARLIER``) cell by cell, a cell
being one test with one client: what newly fails, what newly passes, what appeared and what is gone,
so a change to a broker (or to the suite) shows as a short list instead of two matrices to diff.
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


def area_of(module: str) -> str:
    return module.removeprefix("test_")


@dataclass(frozen=True)
class AreaRate:
    area: str
    passed: int
    failed: int
    skipped: int

    @property
    def rate(self) -> float | None:
        """Passed / (passed + failed); None when every case of the area was skipped."""
        decided = self.passed + self.failed
        return self.passed / decided if decided else None

    def rate_text(self) -> str:
        return "-" if self.rate is None else f"{100 * self.rate:.0f}%"


def area_rates(matrix: Matrix) -> list[AreaRate]:
    """One line per area, in the order the areas first appear in the matrix."""
    tallies: dict[str, Counter[str]] = {}
    for (module, _test, _client), record in matrix.cells.items():
        outcome = "failed" if record["outcome"] == "error" else record["outcome"]
        tallies.setdefault(area_of(module), Counter())[outcome] += 1
    return [AreaRate(area, t["passed"], t["failed"], t["skipped"]) for area, t in tallies.items()]


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
    lines = ["# Conformance matrix", "", summary, "", "## Pass rate by area", "",
             "| area | passed | failed | skipped | pass rate |", "|---|---|---|---|---|"]
    lines += [f"| {a.area} | {a.passed} | {a.failed} | {a.skipped} | {a.rate_text()} |" for a in area_rates(matrix)]
    lines += ["", "## Tests", "",
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
    areas = "".join(f"<tr><td>{html.escape(a.area)}</td><td>{a.passed}</td><td>{a.failed}</td><td>{a.skipped}</td>"
                    f"<td>{a.rate_text()}</td></tr>" for a in area_rates(matrix))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Conformance matrix</title>"
            f"<style>{style}</style></head><body><h1>Conformance matrix</h1><p>{html.escape(summary)}</p>"
            f"<h2>Pass rate by area</h2><table><tr><th>area</th><th>passed</th><th>failed</th><th>skipped</th>"
            f"<th>pass rate</th></tr>{areas}</table><h2>Tests</h2>"
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


# ---------------------------------------------------------------- comparing two runs
Cell = tuple[str, str, str]  # (module, test, client)


@dataclass
class Comparison:
    newly_failing: list[tuple[Cell, str, str]]  # (cell, earlier outcome, message now)
    newly_passing: list[tuple[Cell, str]]  # (cell, earlier outcome)
    added: list[tuple[Cell, str]]  # (cell, outcome now)
    removed: list[tuple[Cell, str]]  # (cell, earlier outcome)
    unchanged: int

    def summary(self, earlier: str) -> str:
        return (f"compared with {earlier}: {len(self.newly_failing)} newly failing, {len(self.newly_passing)} newly "
                f"passing, {len(self.added)} new, {len(self.removed)} gone, {self.unchanged} unchanged")


def _outcome(record: dict[str, Any]) -> str:
    return "failed" if record["outcome"] == "error" else record["outcome"]


def compare_runs(earlier: list[dict[str, Any]], now: list[dict[str, Any]]) -> Comparison:
    """Cell-by-cell differences between two runs' ``results`` lists (the plugin's JSON records)."""
    before = {(r["module"], r["test"], r["client"]): r for r in earlier}
    after = {(r["module"], r["test"], r["client"]): r for r in now}
    comparison = Comparison([], [], [], [], 0)
    for cell, record in after.items():
        old = before.get(cell)
        outcome = _outcome(record)
        if old is None:
            comparison.added.append((cell, outcome))
        elif outcome == "failed" and _outcome(old) != "failed":
            comparison.newly_failing.append((cell, _outcome(old), " ".join(str(record.get("message", "")).split())))
        elif outcome == "passed" and _outcome(old) != "passed":
            comparison.newly_passing.append((cell, _outcome(old)))
        else:
            comparison.unchanged += 1
    comparison.removed = [(cell, _outcome(record)) for cell, record in before.items() if cell not in after]
    return comparison


def load_results(path: Path) -> list[dict[str, Any]]:
    """The ``results`` of a run, given its ``results.json`` or the report directory holding it."""
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"no results.json at {path}")
    results: list[dict[str, Any]] = json.loads(path.read_text())["results"]
    return results


def comparison_markdown(comparison: Comparison, earlier: str) -> str:
    def name(cell: Cell) -> str:
        module, test, client = cell
        return f"`{module}::{test}` [{client}]"

    lines = ["# Compared with an earlier run", "", comparison.summary(earlier), ""]
    sections = [
        ("Newly failing", [f"- {name(c)} (was {was}): {message[:300]}" for c, was, message in comparison.newly_failing]),
        ("Newly passing", [f"- {name(c)} (was {was})" for c, was in comparison.newly_passing]),
        ("New in this run", [f"- {name(c)}: {outcome}" for c, outcome in comparison.added]),
        ("Gone from this run", [f"- {name(c)} (was {was})" for c, was in comparison.removed]),
    ]
    for title, items in sections:
        if items:
            lines += [f"## {title}", "", *items, ""]
    return "\n".join(lines) + "\n"
