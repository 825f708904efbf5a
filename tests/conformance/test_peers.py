"""``refka conform --peers``: the matrix over brokers, its causes and verdict, the liveness check,
and kfake built from the Go module proxy, started on a free port and answering ApiVersions."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import textwrap

import pytest

from conformance import raw
from conformance.liveness import NOT_RUN_PREFIX, Liveness
from conformance.peers import brokers
from conformance.peers.gaps import documented_gap
from conformance.peers.run import exit_status, parse_peers
from conformance.report_peers import BrokerColumn, build, normalise, to_html, to_markdown, totals, write
from conformance.target_info import describe_target
from reference.cli import CommandError

pytest_plugins = ["pytester"]


def _record(test, client, outcome, message="", module="test_x"):
    return {"nodeid": f"{module}.py::{test}[{client}]", "module": module, "test": test, "client": client,
            "outcome": outcome, "message": message, "behaviour": f"{test} checks a Kafka rule"}


KAFKA = BrokerColumn("kafka", [
    _record("test_round_trip", "kafka-python", "passed"),
    _record("test_round_trip", "kcat", "passed"),
    _record("test_invalid_topic_name", "broker", "passed", module="test_admin"),
    _record("test_compacted_topic_rejects_null_key", "broker", "passed", module="test_retention"),
    _record("test_unknown_api_key", "broker", "passed", module="test_protocol"),
], target="127.0.0.1:1")

KFAKE = BrokerColumn("kfake", [
    _record("test_round_trip", "kafka-python", "passed"),
    _record("test_round_trip", "kcat", "skipped", "kcat cannot express: binary"),
    # the same refusal for two topics: one cause once the topic names are masked
    _record("test_invalid_topic_name", "broker", "failed",
            "AssertionError: expected 17 for 'conf-test_invalid_topic_name-0a1b2c3d', observed NONE(0)",
            module="test_admin"),
    _record("test_invalid_topic_name", "broker", "error",
            "AssertionError: expected 17 for 'conf-test_invalid_topic_name-99aabbcc', observed NONE(0)",
            module="test_admin"),
    _record("test_compacted_topic_rejects_null_key", "broker", "failed", "AssertionError: expected 87, observed 0",
            module="test_retention"),
    _record("test_unknown_api_key", "broker", "skipped",
            f"{NOT_RUN_PREFIX} since conformance/suite/test_protocol.py::test_pipelined", module="test_protocol"),
], target="127.0.0.1:2", note="the kfake process exited with status 2 during the run: panic: nil pointer")

TANSU = BrokerColumn("tansu", not_run="tansu: cargo install failed (exit 101)")


def test_one_row_per_test_and_client_one_column_per_broker():
    matrix = build([KAFKA, KFAKE, TANSU])
    assert [column.name for column in matrix.brokers] == ["kafka", "kfake", "tansu"]
    # kfake's two records of one test x client are one row (the last record wins the cell)
    assert matrix.rows == [("test_x", "test_round_trip", "kafka-python"), ("test_x", "test_round_trip", "kcat"),
                           ("test_admin", "test_invalid_topic_name", "broker"),
                           ("test_retention", "test_compacted_topic_rejects_null_key", "broker"),
                           ("test_protocol", "test_unknown_api_key", "broker")]
    kcat_row = next(line for line in to_markdown(matrix).splitlines() if "`test_round_trip` | kcat" in line)
    assert kcat_row.endswith("| pass | skip | not run |")


def test_totals_count_failed_and_errored_as_failed_and_liveness_skips_as_not_run():
    by_broker = {line["broker"]: line for line in totals(build([KAFKA, KFAKE, TANSU]))}
    assert (by_broker["kafka"]["passed"], by_broker["kafka"]["failed"], by_broker["kafka"]["not run"]) == (5, 0, 0)
    kfake = by_broker["kfake"]
    assert (kfake["passed"], kfake["failed"], kfake["skipped"], kfake["not run"]) == (1, 3, 1, 1)
    assert by_broker["tansu"]["not run"] == 5 and by_broker["tansu"]["target"].startswith("not run: tansu: cargo")


def test_failures_with_the_same_masked_message_are_one_cause():
    causes = [c for c in build([KAFKA, KFAKE]).causes if c.broker == "kfake" and c.kind == "failed"]
    assert len(causes) == 2
    assert causes[0].message == "AssertionError: expected 17 for '<name>', observed NONE(0)"
    assert len(causes[0].rows) == 2


def test_a_documented_gap_is_flagged_and_an_undocumented_one_is_not():
    causes = {c.message: c for c in build([KFAKE]).causes if c.kind == "failed"}
    null_key = causes["AssertionError: expected 87, observed 0"]
    assert null_key.gap is not None and "per-record errors" in null_key.gap.title
    assert causes["AssertionError: expected 17 for '<name>', observed NONE(0)"].gap is None
    text = to_markdown(build([KFAKE]))
    assert "documented gap of kfake: Produce ErrorRecords" in text
    assert "not among the broker's documented gaps" in text


def test_a_gap_names_its_peer_only():
    assert documented_gap("kfake", "test_retention", "test_compacted_topic_rejects_null_key", "x") is not None
    assert documented_gap("kafka", "test_retention", "test_compacted_topic_rejects_null_key", "x") is None


def test_not_run_rows_and_the_crash_note_are_reported():
    text = to_markdown(build([KAFKA, KFAKE, TANSU]))
    assert "- kfake: the kfake process exited with status 2 during the run: panic: nil pointer" in text
    assert "- tansu: tansu: cargo install failed (exit 101)" in text
    assert re.search(r"\*\*kfake\*\* 1 case\(s\) not run: target unreachable since .*test_pipelined", text)


def test_normalise_masks_what_changes_between_runs():
    message = ("SetupFailed: no broker answered CreateTopics for 'conf-test_a-0011aabb': "
               "[\"127.0.0.1:52999: refused\"] within 20 s\nsecond line")
    assert normalise(message) == ("SetupFailed: no broker answered CreateTopics for '<name>': "
                                  "[\"<address>: refused\"] within <duration>")


def test_html_is_written_beside_markdown_and_escapes_messages(tmp_path):
    column = BrokerColumn("kfake", [_record("test_a", "broker", "failed", "expected <b> & observed")])
    _matrix, summary = write([column], tmp_path)
    assert summary == "peers: kfake 0 passed, 1 failed, 0 skipped"
    page = (tmp_path / "peers.html").read_text()
    assert "expected &lt;b&gt; &amp; observed" in page and "<b> &" not in page
    assert (tmp_path / "peers.md").exists()
    assert "expected &lt;b&gt;" in to_html(build([column]))


def test_reads_a_results_json(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"meta": {"bootstrap": "127.0.0.1:9"}, "results": KAFKA.results}))
    column = BrokerColumn.from_results_json("kafka", path)
    assert column.target == "127.0.0.1:9" and column.counts()["passed"] == 5


def test_target_json_beside_results_gives_the_api_versions_table(tmp_path):
    for name, api_max in (("kafka", 4), ("kfake", 5)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps({"meta": {}, "results": KAFKA.results[:1]}))
        (tmp_path / name / "target.json").write_text(json.dumps({
            "target": {"cluster_id": f"id-{name}", "brokers": 1,
                       "api_versions": {"18": {"name": "ApiVersions", "min": 0, "max": api_max}}},
            "clients": {"kafka-python": "3.0", "kcat": None}}))
    columns = [BrokerColumn.from_results_json(name, tmp_path / name / "results.json") for name in ("kafka", "kfake")]
    text = to_markdown(build(columns + [TANSU]))
    assert "| cluster id | id-kafka | id-kfake | ? |" in text
    assert "| 18 ApiVersions | 0-4 | 0-5 | ? |" in text
    assert "Clients: kafka-python 3.0" in text


def test_exit_status_follows_kafka_and_the_reference_only():
    failing_kafka = BrokerColumn("kafka", [_record("test_a", "broker", "failed")])
    passing_reference = BrokerColumn("reference", [_record("test_a", "broker", "passed")])
    assert exit_status([KAFKA, passing_reference, KFAKE, TANSU]) == 0
    assert exit_status([failing_kafka, passing_reference, KFAKE]) == 1
    assert exit_status([KAFKA, BrokerColumn("reference", not_run="embedded broker missing")]) == 1


def test_parse_peers_refuses_unknown_names():
    assert parse_peers("kafka, kfake") == ["kafka", "kfake"]
    with pytest.raises(CommandError, match="redpanda"):
        parse_peers("kafka,redpanda")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_liveness_declares_a_silent_target_unreachable_naming_the_last_test():
    liveness = Liveness(f"127.0.0.1:{_closed_port()}")
    liveness.check(grace=0)
    assert liveness.unreachable_since == "before the first test (pre-flight check)"
    liveness = Liveness(f"127.0.0.1:{_closed_port()}", last_test="suite/test_protocol.py::test_x")
    liveness.check(grace=0)
    assert liveness.unreachable_since == "since suite/test_protocol.py::test_x"


def test_an_unreachable_target_makes_every_test_not_run(pytester, monkeypatch):
    monkeypatch.setattr("conformance.liveness.LIVENESS_GRACE_S", 0)
    pytester.makepyfile(test_two=textwrap.dedent("""
        def test_one():
            assert False, "must not run"

        def test_two():
            assert False, "must not run"
    """))
    results = pytester.path / "results.json"
    outcome = pytester.runpytest_inprocess("-p", "conformance.plugin", "-p", "conformance.liveness",
                                           "--bootstrap-server", f"127.0.0.1:{_closed_port()}",
                                           "--results-json", str(results))
    outcome.assert_outcomes(skipped=2)
    records = json.loads(results.read_text())["results"]
    assert [r["message"] for r in records] == [
        f"{NOT_RUN_PREFIX} before the first test (pre-flight check)"] * 2


@pytest.mark.slow
def test_kfake_is_built_from_the_module_proxy_started_and_answers_api_versions(tmp_path, monkeypatch):
    monkeypatch.setenv("REFKA_CACHE", str(tmp_path / "cache"))  # a real build, not a cached binary
    try:
        binary = brokers.build_kfake()
    except brokers.PeerUnavailable as failed:
        if re.search(r"dial tcp|proxy\.golang\.org|no such host|i/o timeout|connection refused", str(failed)):
            pytest.skip(f"Go cannot reach the module proxy: {failed}")
        raise
    assert binary.parent == brokers.kfake_build_dir()
    assert brokers.build_kfake() == binary  # the second call reuses the build
    with brokers.kfake(tmp_path / "logs") as peer:
        with raw.Connection.to(peer.address) as conn:
            versions = raw.api_versions(conn, 0)
        assert versions.error_code == 0 and versions.supports(raw.API_VERSIONS, 0)
        assert Liveness(peer.address).unreachable_since is None and peer.exit_note() == ""
        identity = describe_target(peer.address)
        assert identity["brokers"] == 1 and identity["api_versions"]["18"]["min"] == 0
        process = peer.process
    assert process.poll() is not None  # stopped when the context ended
    assert (tmp_path / "logs" / "kfake.log").read_text().startswith(f"listening {peer.address}")


def test_parameter_variants_of_one_test_differing_in_numbers_are_one_cause():
    column = BrokerColumn("kfake", [
        _record("test_session[oldest]", "broker", "failed", "assert (0, 7, {}) == (0, 0, {})"),
        _record("test_session[names]", "broker", "failed", "assert (0, 8, {}) == (0, 0, {})"),
        _record("test_other", "broker", "failed", "assert (0, 9, {}) == (0, 0, {})"),
    ])
    causes = build([column]).causes
    assert [(len(c.rows), c.variants) for c in causes] == [(2, 2), (1, 1)]
    assert "(and 1 variant(s) with other numbers)" in to_markdown(build([column]))


def test_each_peer_cause_says_how_kafka_fared_on_the_same_cases():
    causes = [c for c in build([KAFKA, KFAKE]).causes if c.kind == "failed"]
    assert {c.kafka for c in causes} == {"2 passed", "1 passed"}
    assert "Apache Kafka on the same cases: 2 passed." in to_markdown(build([KAFKA, KFAKE]))


def test_a_peer_that_exits_is_restarted_for_the_tests_that_did_not_run(tmp_path, monkeypatch):
    """First pass: test_a passes, the peer dies, test_b is "not run".  The second pass, on a fresh
    peer, is asked to leave test_a out and runs test_b; the column holds both real outcomes."""
    from conformance.peers import run as peers_run

    passes = []

    class FakePeer:
        address = "127.0.0.1:1"

        def __init__(self, dies):
            self.dies = dies

        def exit_note(self):
            return "the kfake process exited with status 2 during the run: panic: boom" if self.dies else ""

    @contextlib.contextmanager
    def fake_peer(name, log_dir):
        yield FakePeer(dies=not passes)

    def conform(*where, report, deselect=()):
        first = not passes
        passes.append(deselect)
        records = ([_record("test_a", "broker", "passed"),
                    _record("test_b", "broker", "skipped", f"{NOT_RUN_PREFIX} since suite::test_a")] if first
                   else [_record("test_b", "broker", "failed", "expected 17")])
        report.mkdir(parents=True, exist_ok=True)
        (report / "results.json").write_text(json.dumps({"meta": {}, "results": records}))

    monkeypatch.setattr(peers_run, "_third_party", fake_peer)
    column = peers_run._run_third_party("kfake", tmp_path, conform)
    assert passes == [(), ("test_x.py::test_a[broker]",)]
    assert [(r["test"], r["outcome"]) for r in column.results] == [("test_a", "passed"), ("test_b", "failed")]
    assert "panic: boom (target unreachable since suite::test_a)" in column.note and "1 restart(s)" in column.note


def test_a_client_that_passes_nothing_is_one_cause_beside_the_causes_it_shares():
    column = BrokerColumn("tansu", [
        _record("test_a", "kcat", "failed", "ApiVersionRequest failed at 1796643575.658: Read underflow"),
        _record("test_b", "kcat", "failed", "expected 20 deliveries: ApiVersionRequest failed: Read underflow"),
        _record("test_g", "kcat", "error", "the coordinator kept answering error 69"),
        _record("test_g", "aiokafka", "error", "the coordinator kept answering error 69"),
        _record("test_a", "aiokafka", "passed"),
    ])
    causes = {c.message: c for c in build([column]).causes}
    stranded = next(c for message, c in causes.items() if message.startswith("client kcat passed no case"))
    assert [row[1] for row in stranded.rows] == ["test_a", "test_b"]
    assert "ApiVersionRequest failed at <time>: Read underflow" in stranded.message
    assert len(causes["the coordinator kept answering error 69"].rows) == 2


def test_a_gap_flags_a_cause_only_when_it_covers_every_failure_in_it():
    column = BrokerColumn("kfake", [
        _record("test_compacted_topic_rejects_null_key", "broker", "failed", "observed 0", module="test_retention"),
        _record("test_other", "broker", "failed", "observed 0", module="test_retention"),
    ])
    assert [c.gap for c in build([column]).causes] == [None]


def test_every_documented_gap_compiles_and_names_tests_the_suite_has() -> None:
    """A gap whose pattern does not compile crashes the peer report (a global flag inside a pattern
    did), and one naming no test of the suite (the test was renamed) silently flags nothing."""
    from pathlib import Path

    from conformance.peers.gaps import GAPS

    suite = Path(__file__).resolve().parents[2] / "conformance" / "suite"
    names = [f"{path.stem}::{name}" for path in sorted(suite.glob("test_*.py"))
             for name in re.findall(r"^def (test_\w+)", path.read_text(), re.MULTILINE)]
    for gap in GAPS:
        re.compile(gap.tests)
        if gap.message:
            re.compile(gap.message)
        assert any(re.search(gap.tests, name) for name in names), f"{gap.peer}: {gap.title!r} names no test ({gap.tests})"
