"""The matrix over several brokers: one row per test x client, one column per broker.

Input is one ``results.json`` per broker (the plugin's records: ``module``, ``test``, ``client``,
``outcome``, ``message``, ``behaviour``), or nothing for a broker that could not be run, with the
reason.  Output is ``peers.md`` and ``peers.html``:

1. per-broker totals (passed, failed, skipped, and not run: skipped by the liveness check
   (:mod:`conformance.liveness`), or absent from the broker's run), and a note per broker that did
   not run or whose process exited during the run;
2. each broker's failures grouped by cause: records whose messages are the same once the parts
   that differ from run to run (topic and group names, ports, ids, durations) are masked form one
   cause, and the parameter variants of one test whose messages differ only in numbers join it;
   one line names the tests and clients it covers and how Apache Kafka fared on the same cases; a
   cause that a peer's own documentation lists among its gaps (:mod:`conformance.peers.gaps`) is
   flagged with that entry and its source;
3. the brokers as they describe themselves (``target.json``: cluster id, ApiVersions ranges side by
   side) and the clients' versions;
4. the matrix itself, a cell reading ``pass``, ``FAIL``, ``skip`` or ``not run`` (blank: the
   broker's run did not collect that test x client, e.g. a narrower ``-k``).

Failed and errored records both count as failed, as in :mod:`conformance.report`.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.liveness import NOT_RUN_PREFIX
from conformance.peers import KAFKA
from conformance.peers.gaps import DocumentedGap, gap_covering_all
from conformance.report import CLIENT_ORDER

Row = tuple[str, str, str]  # (module, test, client)
FAILED = ("failed", "error")


@dataclass
class BrokerColumn:
    """One broker's run: its records, or why it did not run (``not_run``)."""

    name: str
    results: list[dict[str, Any]] = field(default_factory=list)
    target: str = ""
    not_run: str = ""  # why the broker's run did not happen at all
    note: str = ""  # what happened to the broker during its run (e.g. its process exited)
    info: dict[str, Any] = field(default_factory=dict)  # target.json: ApiVersions, cluster id, clients

    @classmethod
    def from_results_json(cls, name: str, path: Path) -> BrokerColumn:
        """The broker's records from ``results.json``, and ``target.json`` beside it when present."""
        data = json.loads(path.read_text())
        info_file = path.parent / "target.json"
        info = json.loads(info_file.read_text()) if info_file.exists() else {}
        return cls(name, data["results"], target=str(data.get("meta", {}).get("bootstrap") or ""), info=info)

    def counts(self) -> Counter[str]:
        """passed / failed (failed or errored) / skipped / not run (skipped by the liveness check)."""
        return Counter(outcome(record) for record in self.results)

    @property
    def failed(self) -> int:
        return self.counts()["failed"]


def outcome(record: dict[str, Any]) -> str:
    if record["outcome"] in FAILED:
        return "failed"
    if record["outcome"] == "skipped" and str(record.get("message", "")).startswith(NOT_RUN_PREFIX):
        return "not run"
    return str(record["outcome"])


@dataclass
class Cause:
    """Failures of one broker that share a message once run-specific parts are masked."""

    broker: str
    kind: str  # "failed" or "not run"
    message: str
    rows: list[Row]
    gap: DocumentedGap | None = None
    variants: int = 1  # distinct messages merged in (the same test's parameters, other numbers)
    kafka: str = ""  # how the same rows fared on Apache Kafka, when it is a column

    def tests(self, limit: int = 80) -> str:
        by_test: dict[str, list[str]] = {}
        for module, test, client in self.rows:
            name = f"{module}::{test}"
            by_test.setdefault(name if len(name) <= limit else name[: limit - 3] + "...", []).append(client)
        return "; ".join(f"{test} [{', '.join(clients)}]" for test, clients in by_test.items())


@dataclass
class PeerMatrix:
    brokers: list[BrokerColumn]
    rows: list[Row]
    behaviours: dict[tuple[str, str], str]
    cells: dict[tuple[str, str, str, str], dict[str, Any]]  # (module, test, client, broker) -> record
    causes: list[Cause]


# Parts of a failure message that change from run to run, masked before grouping.
_VOLATILE = [
    (re.compile(r"\b[A-Za-z]+-[A-Za-z0-9._-]*-[0-9a-f]{8}\b"), "<name>"),  # unique_name(): prefix-test-hex8
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<uuid>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}:\d+\b"), "<address>"),
    (re.compile(r"\b\d{10}\.\d+\b"), "<time>"),  # Unix time in librdkafka's log lines
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|s)\b"), "<duration>"),
    (re.compile(r"\b0x[0-9a-f]+\b"), "<hex>"),
    (re.compile(r"\bat 0x[0-9a-f]+>"), ">"),
]


def normalise(message: str, limit: int = 200) -> str:
    """The first line of a failure message with run-specific parts masked, cut to ``limit``."""
    first = next((line.strip() for line in str(message).splitlines() if line.strip()), "(no message)")
    for pattern, mask in _VOLATILE:
        first = pattern.sub(mask, first)
    return first if len(first) <= limit else first[: limit - 3] + "..."


def _client_key(client: str) -> tuple[int, str]:
    return (CLIENT_ORDER.index(client) if client in CLIENT_ORDER else len(CLIENT_ORDER), client)


def group_failures(column: BrokerColumn) -> list[Cause]:
    """The broker's failed and errored records, one :class:`Cause` per masked message, largest first."""
    causes: dict[tuple[str, str], Cause] = {}
    stranded = _stranded_failures(column)
    for record in column.results:
        kind = outcome(record)
        if kind not in ("failed", "not run"):
            continue
        key = stranded.get(id(record)) or normalise(record.get("message", ""))
        cause = causes.setdefault((kind, key), Cause(column.name, kind, key, []))
        cause.rows.append((record["module"], record["test"], record["client"]))
    for cause in causes.values():
        if cause.kind == "failed":
            cause.gap = gap_covering_all(column.name, cause.rows, cause.message)
    merged = _merge_parameter_variants(list(causes.values()))
    return sorted(merged, key=lambda c: (c.kind != "failed", -len(c.rows), c.message))


def _stranded_failures(column: BrokerColumn) -> dict[int, str]:
    """A client that passed nothing on this broker (e.g. it cannot even negotiate ApiVersions) is
    one cause: its failures that no other client shares get one key, named after the client and
    its first such failure.  Returns ``id(record) -> key`` for those records."""
    by_client: dict[str, list[dict[str, Any]]] = {}
    for record in column.results:
        by_client.setdefault(record["client"], []).append(record)
    clients_of: dict[str, set[str]] = {}
    for record in column.results:
        if outcome(record) == "failed":
            clients_of.setdefault(normalise(record.get("message", "")), set()).add(record["client"])
    keys: dict[int, str] = {}
    for client, records in by_client.items():
        outcomes = Counter(outcome(r) for r in records)
        if client == "broker" or outcomes["passed"] or outcomes["failed"] < 2:
            continue
        own = [r for r in records if outcome(r) == "failed"
               and clients_of[normalise(r.get("message", ""))] == {client}]
        if len(own) >= 2:
            key = (f"client {client} passed no case on this broker; its failures begin with: "
                   f"{normalise(own[0].get('message', ''))}")
            keys.update((id(r), key) for r in own)
    return keys


def _merge_parameter_variants(causes: list[Cause]) -> list[Cause]:
    """Causes that all come from one test (its parameters aside) and whose messages differ only in
    numbers are one cause: ``test_x[a]`` observing 7 and ``test_x[b]`` observing 8 fail alike."""
    merged: dict[tuple[str, str, str], Cause] = {}
    kept = []
    for cause in causes:
        bases = {(module, re.sub(r"\[.*\]$", "", test)) for module, test, _client in cause.rows}
        if len(bases) == 1:
            key = (cause.kind, "::".join(next(iter(bases))), re.sub(r"\d+", "N", cause.message))
            if key in merged:
                merged[key].rows += cause.rows
                merged[key].variants += 1
                continue
            merged[key] = cause
        kept.append(cause)
    return kept


def build(brokers: list[BrokerColumn]) -> PeerMatrix:
    rows: list[Row] = []
    seen: set[Row] = set()
    behaviours: dict[tuple[str, str], str] = {}
    cells: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for column in brokers:
        for record in column.results:
            row = (record["module"], record["test"], record["client"])
            if row not in seen:
                seen.add(row)
                rows.append(row)
            behaviours.setdefault(row[:2], record.get("behaviour", ""))
            cells[(*row, column.name)] = record
    # Keep the suite's order of tests, clients in the usual column order within a test.
    first_seen = {row[:2]: index for index, row in reversed(list(enumerate(rows)))}
    rows.sort(key=lambda row: (first_seen[row[:2]], _client_key(row[2])))
    causes = [cause for column in brokers for cause in group_failures(column)]
    kafka = next((column for column in brokers if column.name == KAFKA and not column.not_run), None)
    for cause in causes:
        if kafka is not None and cause.broker != KAFKA:
            outcomes = Counter(outcome(cells[(*row, KAFKA)]) if (*row, KAFKA) in cells else "not collected"
                               for row in cause.rows)
            cause.kafka = ", ".join(f"{count} {name}" for name, count in sorted(outcomes.items()))
    return PeerMatrix(brokers, rows, behaviours, cells, causes)


def cell(matrix: PeerMatrix, row: Row, column: BrokerColumn) -> tuple[str, str]:
    """(css class, text) of one cell."""
    if column.not_run:
        return "none", "not run"
    record = matrix.cells.get((*row, column.name))
    if record is None:
        return "none", ""
    text = {"passed": "pass", "skipped": "skip", "failed": "FAIL", "not run": "not run"}[outcome(record)]
    return {"pass": "pass", "skip": "skip", "FAIL": "fail", "not run": "none"}[text], text


def totals(matrix: PeerMatrix) -> list[dict[str, Any]]:
    lines = []
    for column in matrix.brokers:
        counts = column.counts()
        ran = {(r["module"], r["test"], r["client"]) for r in column.results}
        lines.append({"broker": column.name, "target": column.target or f"not run: {column.not_run}",
                      "passed": counts["passed"], "failed": counts["failed"], "skipped": counts["skipped"],
                      "not run": counts["not run"] + len([row for row in matrix.rows if row not in ran]),
                      "documented": sum(len(c.rows) for c in matrix.causes
                                        if c.broker == column.name and c.kind == "failed" and c.gap)})
    return lines


def summary_line(matrix: PeerMatrix) -> str:
    parts = []
    for line in totals(matrix):
        if line["passed"] + line["failed"] + line["skipped"] == 0:
            parts.append(f"{line['broker']} not run")
        else:
            parts.append(f"{line['broker']} {line['passed']} passed, {line['failed']} failed, {line['skipped']} skipped"
                         + (f", {line['not run']} not run" if line["not run"] else ""))
    return "peers: " + "; ".join(parts)


def _cause_text(cause: Cause) -> str:
    if cause.kind == "not run":
        return f"{len(cause.rows)} case(s) {cause.message}. Tests: {cause.tests()}"
    flag = (f" — documented gap of {cause.broker}: {cause.gap.title} ({cause.gap.source})" if cause.gap
            else " — not among the broker's documented gaps")
    variants = f" (and {cause.variants - 1} variant(s) with other numbers)" if cause.variants > 1 else ""
    kafka = f" Apache Kafka on the same cases: {cause.kafka}." if cause.kafka else ""
    return f"{len(cause.rows)} case(s): {cause.message}{variants}{flag}.{kafka} Tests: {cause.tests()}"


def notes(matrix: PeerMatrix) -> list[str]:
    """One line per broker that did not run or that changed state during its run."""
    return [f"{column.name}: {column.not_run or column.note}" for column in matrix.brokers
            if column.not_run or column.note]


def api_version_table(matrix: PeerMatrix) -> tuple[list[str], list[list[str]]]:
    """(header, rows): each API any broker advertised, with each broker's ``min-max`` range."""
    targets = [column.info.get("target", {}) for column in matrix.brokers]
    keys = sorted({int(key) for target in targets for key in target.get("api_versions", {})})
    header = ["API"] + [column.name for column in matrix.brokers]
    rows = []
    for key in keys:
        name = next(t["api_versions"][str(key)]["name"] for t in targets if str(key) in t.get("api_versions", {}))
        ranges = [(f"{t['api_versions'][str(key)]['min']}-{t['api_versions'][str(key)]['max']}"
                   if str(key) in t.get("api_versions", {}) else ("-" if t.get("api_versions") else "?"))
                  for t in targets]
        rows.append([f"{key} {name}"] + ranges)
    identity = [["cluster id"] + [str(t.get("cluster_id", "?")) for t in targets],
                ["brokers (Metadata)"] + [str(t.get("brokers", "?")) for t in targets]]
    return header, identity + rows


def clients_line(matrix: PeerMatrix) -> str:
    clients: dict[str, str | None] = next(
        (column.info["clients"] for column in matrix.brokers if column.info.get("clients")), {})
    return ", ".join(f"{name} {version}" for name, version in clients.items() if version) or "(not recorded)"


def to_markdown(matrix: PeerMatrix) -> str:
    def escape(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["# Conformance matrix over brokers", "", summary_line(matrix), "",
             "| broker | target | passed | failed | skipped | not run | failed, documented gap |",
             "|---|---|---|---|---|---|---|"]
    for line in totals(matrix):
        lines.append(f"| {line['broker']} | {escape(line['target'])} | {line['passed']} | {line['failed']} | "
                     f"{line['skipped']} | {line['not run']} | {line['documented']} |")
    lines += [""] + [f"- {note}" for note in notes(matrix)]
    lines += ["", "## Failures by cause", ""]
    if not matrix.causes:
        lines.append("No failures.")
    for cause in matrix.causes:
        lines.append(f"- **{cause.broker}** {escape(_cause_text(cause))}")
    header, version_rows = api_version_table(matrix)
    lines += ["", "## The brokers as they describe themselves", "", f"Clients: {clients_line(matrix)}", "",
              "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in version_rows]
    names = [column.name for column in matrix.brokers]
    lines += ["", "## Matrix", "", "| module | test | client | " + " | ".join(names) + " |",
              "|---|---|---|" + "---|" * len(names)]
    for row in matrix.rows:
        texts = [cell(matrix, row, column)[1] for column in matrix.brokers]
        lines.append(f"| {row[0]} | `{row[1]}` | {row[2]} | " + " | ".join(texts) + " |")
    lines += ["", "## What each test checks", ""]
    for (module, test), behaviour in matrix.behaviours.items():
        lines.append(f"- `{module}::{test}`: {behaviour or '(no docstring)'}")
    return "\n".join(lines) + "\n"


def to_html(matrix: PeerMatrix) -> str:
    style = ("body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
             "padding:3px 6px;vertical-align:top;font-size:13px}.pass{background:#dfd}.fail{background:#fdd}"
             ".skip{background:#eee;color:#555}.none{background:#fff}.gap{color:#555}")
    total_rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(line[key]))}</td>" for key in
                         ("broker", "target", "passed", "failed", "skipped", "not run", "documented")) + "</tr>"
        for line in totals(matrix))
    causes = "".join(f"<li><b>{html.escape(c.broker)}</b> {html.escape(_cause_text(c))}</li>"
                     for c in matrix.causes) or "<li>No failures.</li>"
    header, version_rows = api_version_table(matrix)
    versions = ("<h2>The brokers as they describe themselves</h2>"
                f"<p>Clients: {html.escape(clients_line(matrix))}</p><table><tr>"
                + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"
                + "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in version_rows)
                + "</table>")
    head = "".join(f"<th>{html.escape(column.name)}</th>" for column in matrix.brokers)
    body = []
    for row in matrix.rows:
        tds = []
        for column in matrix.brokers:
            css, text = cell(matrix, row, column)
            record = matrix.cells.get((*row, column.name), {})
            tds.append(f'<td class="{css}" title="{html.escape(str(record.get("message", "")))}">'
                       f"{html.escape(text)}</td>")
        behaviour = matrix.behaviours.get(row[:2], "")
        body.append(f'<tr><td>{html.escape(row[0])}</td><td title="{html.escape(behaviour)}"><code>'
                    f"{html.escape(row[1])}</code></td><td>{html.escape(row[2])}</td>{''.join(tds)}</tr>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Conformance matrix over brokers</title>"
            f"<style>{style}</style></head><body><h1>Conformance matrix over brokers</h1>"
            f"<p>{html.escape(summary_line(matrix))}</p><table><tr><th>broker</th><th>target</th><th>passed</th>"
            f"<th>failed</th><th>skipped</th><th>not run</th><th>failed, documented gap</th></tr>{total_rows}"
            f"</table><ul>{''.join(f'<li>{html.escape(note)}</li>' for note in notes(matrix))}</ul>"
            f"<h2>Failures by cause</h2><ul>{causes}</ul>{versions}<h2>Matrix</h2>"
            f"<table><tr><th>module</th><th>test</th><th>client</th>{head}</tr>{''.join(body)}</table>"
            "</body></html>\n")


def write(brokers: list[BrokerColumn], report_dir: Path) -> tuple[PeerMatrix, str]:
    """Write ``peers.md`` and ``peers.html`` into ``report_dir``; returns the matrix and summary line."""
    matrix = build(brokers)
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "peers.md").write_text(to_markdown(matrix))
    (report_dir / "peers.html").write_text(to_html(matrix))
    return matrix, summary_line(matrix)
