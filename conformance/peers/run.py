"""``refka conform --peers``: the suite against each broker in turn, then one matrix over all.

Each broker gets the ordinary single-broker run (:func:`conformance.cli.run`) with its own report
directory ``<report>/<broker>/`` (junit.xml, results.json, target.json, matrix.md/html); the
brokers run one after the other, never at once, so the machine runs one suite at a time.  A third-
party peer whose process exits during the run is started afresh for the tests that did not run
(``<report>/<broker>/restart-N/``), so one crash does not hide the rest of its behaviour; the
matrix notes each exit and the test during which it happened.  Afterwards
:mod:`conformance.report_peers` writes ``<report>/peers.md`` and ``peers.html``.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from conformance import report_peers
from conformance.liveness import NOT_RUN_PREFIX
from conformance.peers import ALL_PEERS, KAFKA, KFAKE, MUST_PASS, REFERENCE, TANSU, brokers
from conformance.report_peers import BrokerColumn, outcome
from reference.cli import CommandError

MAX_RESTARTS = 3


def parse_peers(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in ALL_PEERS]
    if unknown or not names:
        raise CommandError(f"--peers takes a comma-separated list among {', '.join(ALL_PEERS)}; got {text!r}")
    return names


@contextlib.contextmanager
def _third_party(name: str, log_dir: Path) -> Iterator[brokers.RunningPeer]:
    starter = {KFAKE: brokers.kfake, TANSU: brokers.tansu}[name]
    with starter(log_dir) as peer:
        yield peer


def run_one(name: str, report_dir: Path, args: argparse.Namespace) -> BrokerColumn:
    """The suite against one broker; a peer that cannot be built or started is a column that says why."""
    from conformance import cli

    def conform(*where: str, report: Path = report_dir, deselect: tuple[str, ...] = ()) -> None:
        common = ["--report", str(report)] + (["--clients", args.clients] if args.clients else [])
        extra = [arg for arg in args.pytest_args if arg != "--"]
        parser = argparse.ArgumentParser()
        cli.add_arguments(parser)
        cli.run(parser.parse_args([*where, *common, "--", *extra,
                                   *[option for nodeid in deselect for option in ("--deselect", nodeid)]]))

    try:
        if name == KAFKA:
            conform("--apache-kafka", "1")
        elif name == REFERENCE:
            conform()
        else:
            return _run_third_party(name, report_dir, conform)
    except CommandError as unavailable:
        return BrokerColumn(name, not_run=str(unavailable))
    return _column(name, report_dir)


def _column(name: str, report_dir: Path) -> BrokerColumn:
    results = report_dir / "results.json"
    if not results.exists():
        raise CommandError(f"the suite wrote no {results}")
    return BrokerColumn.from_results_json(name, results)


def _run_third_party(name: str, report_dir: Path, conform: Callable[..., None]) -> BrokerColumn:
    """Run the suite against a fresh kfake or tansu; when the peer's process exits during the run
    (the liveness check then marks the rest "not run"), start a fresh one and run the tests not yet
    run, up to MAX_RESTARTS times.  The note names every exit."""
    column: BrokerColumn | None = None
    notes: list[str] = []
    for attempt in range(MAX_RESTARTS + 1):
        pass_dir = report_dir if attempt == 0 else report_dir / f"restart-{attempt}"
        done = tuple(r["nodeid"] for r in (column.results if column else []) if outcome(r) != "not run")
        with _third_party(name, pass_dir) as peer:
            conform("--bootstrap-server", peer.address, report=pass_dir, deselect=done)
            exit_note = peer.exit_note()
        this_pass = _column(name, pass_dir)
        if column is None:
            column = this_pass
        else:
            column.results = [r for r in column.results if outcome(r) != "not run"] + this_pass.results
        if not exit_note:
            break
        since = next((str(r["message"]).removeprefix(NOT_RUN_PREFIX).strip() for r in this_pass.results
                      if outcome(r) == "not run"), "")
        notes.append(f"{exit_note} (target unreachable {since})" if since else exit_note)
        if not since:
            break
    assert column is not None
    column.note = "; ".join(notes)
    if attempt > 0:
        column.note += f" (a fresh {name} ran the tests after each exit: {attempt} restart(s))"
    return column


def exit_status(columns: list[BrokerColumn]) -> int:
    """1 when a column that must pass (Kafka, the reference) failed or did not run, else 0.

    kfake and tansu are run to be compared: their failures are the matrix's content, not a
    failure of the command."""
    return 1 if any(c.name in MUST_PASS and (c.not_run or c.failed) for c in columns) else 0


def run_peers(args: argparse.Namespace) -> int:
    names = parse_peers(args.peers)
    report_dir = Path(args.report)
    columns = []
    for name in names:
        print(f"== peers: {name}", flush=True)
        column = run_one(name, report_dir / name, args)
        if column.not_run:
            print(f"== peers: {name} not run: {column.not_run}", flush=True)
        columns.append(column)
    _matrix, summary = report_peers.write(columns, report_dir)
    print(f"peer matrix: {report_dir / 'peers.md'}, {report_dir / 'peers.html'}")
    print(summary)
    return exit_status(columns)
