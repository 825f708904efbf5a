"""The matrix writer: cells, summary and exit decision from the plugin's per-test records."""

from __future__ import annotations

import json

from conformance.report import build_matrix, summary_line, to_html, to_markdown, write_reports


def _record(test, client, outcome, message="", module="test_x"):
    return {"nodeid": f"{module}.py::{test}[{client}]", "module": module, "test": test, "client": client,
            "outcome": outcome, "message": message, "behaviour": f"{test} checks a Kafka rule"}


RESULTS = [
    _record("test_round_trip", "kafka-python", "passed"),
    _record("test_round_trip", "kcat", "skipped", "kcat cannot express: binary"),
    _record("test_round_trip", "aiokafka", "failed", "AssertionError: expected 45, observed 0"),
    _record("test_unknown_api_key", "broker", "passed", module="test_protocol"),
]


def test_matrix_has_one_row_per_test_and_one_column_per_client_in_fixed_order():
    matrix = build_matrix(RESULTS)
    assert matrix.clients == ["broker", "kafka-python", "aiokafka", "kcat"]
    assert [row[1] for row in matrix.rows] == ["test_round_trip", "test_unknown_api_key"]
    assert matrix.failed == 1


def test_markdown_cells_show_pass_fail_with_observed_and_skip_reason():
    matrix = build_matrix(RESULTS)
    text = to_markdown(matrix, summary_line(matrix, "h:1"))
    row = next(line for line in text.splitlines() if "`test_round_trip`" in line)
    assert "FAIL: AssertionError: expected 45, observed 0" in row
    assert "skip: kcat cannot express: binary" in row
    assert "| pass |" in row
    assert "test_round_trip checks a Kafka rule" in text


def test_html_escapes_messages():
    matrix = build_matrix([_record("t", "kcat", "failed", "<script>")])
    page = to_html(matrix, "s")
    assert "&lt;script&gt;" in page and "<script>" not in page


def test_summary_counts_errors_as_failures():
    matrix = build_matrix(RESULTS + [_record("test_setup", "kcat", "error", "boom")])
    line = summary_line(matrix, "127.0.0.1:9092", 12.0)
    assert line == ("conformance FAILED: 2 passed, 2 failed, 1 skipped of 5 against 127.0.0.1:9092 in 12 s")


def test_summary_ok_when_nothing_fails():
    matrix = build_matrix([r for r in RESULTS if r["outcome"] != "failed"])
    assert summary_line(matrix, "b").startswith("conformance OK: 2 passed, 0 failed, 1 skipped")


def test_write_reports_creates_markdown_and_html(tmp_path):
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"meta": {"bootstrap": "b:1"}, "results": RESULTS}))
    matrix, summary = write_reports(results, tmp_path / "out")
    assert (tmp_path / "out" / "matrix.md").read_text().startswith("# Conformance matrix")
    assert (tmp_path / "out" / "matrix.html").exists()
    assert "against b:1" in summary


def test_pass_rate_by_area_counts_passed_against_decided_cases_per_module():
    from conformance.report import area_rates

    matrix = build_matrix(RESULTS + [_record("test_setup", "kcat", "error", "boom")])
    rates = {a.area: (a.passed, a.failed, a.skipped, a.rate_text()) for a in area_rates(matrix)}
    assert rates == {"x": (1, 2, 1, "33%"), "protocol": (1, 0, 0, "100%")}
    text = to_markdown(matrix, "s")
    assert "| x | 1 | 2 | 1 | 33% |" in text and "| protocol | 1 | 0 | 0 | 100% |" in text
    assert "<td>x</td><td>1</td><td>2</td><td>1</td><td>33%</td>" in to_html(matrix, "s")


def test_an_area_whose_cases_were_all_skipped_has_no_rate():
    from conformance.report import area_rates

    [only] = area_rates(build_matrix([_record("t", "kcat", "skipped", "kcat cannot express: group")]))
    assert (only.rate, only.rate_text()) == (None, "-")


def test_comparing_two_runs_lists_each_changed_cell_once():
    from conformance.report import compare_runs, comparison_markdown

    earlier = RESULTS + [_record("test_gone", "broker", "passed")]
    now = [
        _record("test_round_trip", "kafka-python", "failed", "AssertionError: expected 1, observed 2"),  # pass -> fail
        _record("test_round_trip", "kcat", "skipped", "kcat cannot express: binary"),  # unchanged
        _record("test_round_trip", "aiokafka", "passed"),  # fail -> pass
        _record("test_unknown_api_key", "broker", "error", "boom", module="test_protocol"),  # pass -> error
        _record("test_new", "refka", "passed"),
    ]
    comparison = compare_runs(earlier, now)
    assert [(cell[1], cell[2], was) for cell, was, _ in comparison.newly_failing] == [
        ("test_round_trip", "kafka-python", "passed"), ("test_unknown_api_key", "broker", "passed")]
    assert [(cell[2], was) for cell, was in comparison.newly_passing] == [("aiokafka", "failed")]
    assert [(cell[1], outcome) for cell, outcome in comparison.added] == [("test_new", "passed")]
    assert [cell[1] for cell, _ in comparison.removed] == ["test_gone"]
    assert comparison.unchanged == 1
    line = comparison.summary("old")
    assert line == "compared with old: 2 newly failing, 1 newly passing, 1 new, 1 gone, 1 unchanged"
    text = comparison_markdown(comparison, "old")
    assert "`test_x::test_round_trip` [kafka-python] (was passed): AssertionError: expected 1, observed 2" in text


def test_compare_reads_a_report_directory_or_its_results_json(tmp_path):
    from conformance.report import load_results

    (tmp_path / "results.json").write_text(json.dumps({"meta": {}, "results": RESULTS}))
    assert load_results(tmp_path) == load_results(tmp_path / "results.json") == RESULTS
    try:
        load_results(tmp_path / "nowhere")
    except FileNotFoundError as missing:
        assert "no results.json" in str(missing)
    else:
        raise AssertionError("a missing earlier run must be an error")
