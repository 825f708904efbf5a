"""The transactional checker finds each anomaly planted in a synthetic history, and passes a clean one.

:class:`TxnStory` stamps events the way ``chaos.workload``'s transactional processes do: a ``txn``
invoke with its records, an ``end-txn`` invoke with the decision, the ``txn`` completion with the
outcome and each record's offset; polls carry the reader's isolation level.
"""

from __future__ import annotations

from typing import Any

from chaos.checker import INVALID, UNKNOWN, VALID, check
from chaos.checker_txn import TRANSACTIONAL, TXN_ANOMALY_KINDS
from chaos.history import INFO, INVOKE, OK, Event
from chaos.report import summary

TOPIC = "t"
RC, RU = "read_committed", "read_uncommitted"


class TxnStory:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def _add(self, process: str, type: str, f: str, value: Any = None) -> None:
        self.events.append(Event(process, type, f, value, len(self.events) * 1_000_000, 0))

    def begin(self, process: str, txn: str, *records: tuple[int, str]) -> TxnStory:
        """records: (partition, value)"""
        self._add(process, INVOKE, "txn", {"txn": txn, "records": [
            {"topic": TOPIC, "key": "k", "value": v, "partition": p} for p, v in records]})
        return self

    def decide(self, process: str, txn: str, commit: bool) -> TxnStory:
        self._add(process, INVOKE, "end-txn", {"txn": txn, "commit": commit})
        return self

    def end(self, process: str, txn: str, outcome: str, *records: tuple[int, int, str],
            consumed: list[tuple[int, int]] | None = None) -> TxnStory:
        """records: (partition, offset, value)"""
        value: dict[str, Any] = {"txn": txn, "outcome": outcome, "records": [
            {"topic": TOPIC, "key": "k", "value": v, "partition": p, "offset": o} for p, o, v in records]}
        if consumed is not None:
            value["consumed"] = [{"partition": p, "offset": o, "value": "?"} for p, o in consumed]
        self._add(process, INFO if outcome == "unknown" else OK, "txn", value)
        return self

    def txn(self, process: str, txn: str, outcome: str, *records: tuple[int, int, str],
            consumed: list[tuple[int, int]] | None = None) -> TxnStory:
        """A whole transaction: begin, decision (commit unless aborted), completion."""
        self.begin(process, txn, *[(p, v) for p, _o, v in records])
        self.decide(process, txn, outcome != "aborted")
        return self.end(process, txn, outcome, *records, consumed=consumed)

    def poll(self, process: str, isolation: str, *records: tuple[int, int, str]) -> TxnStory:
        self._add(process, INVOKE, "poll")
        self._add(process, OK, "poll", {"isolation": isolation, "records": [
            {"topic": TOPIC, "partition": p, "offset": o, "key": "k", "value": v} for p, o, v in records]})
        return self

    def assign(self, process: str) -> TxnStory:
        value = {"topic": TOPIC, "partitions": [0, 1], "seek": {"0": "beginning", "1": "beginning"}}
        self._add(process, INVOKE, "assign", value)
        self._add(process, OK, "assign", value)
        return self

    def final(self, *records: tuple[int, int, str], complete: bool = True) -> TxnStory:
        self.assign("final-reader").poll("final-reader", RC, *records)
        self._add("final-reader", INVOKE, "final-read")
        self._add("final-reader", OK, "final-read", {"topic": TOPIC, "complete": complete})
        return self


def clean() -> TxnStory:
    """p-0/t0 commits a0 (p0@0) and a1 (p1@0); p-0/t1 aborts a2 (p0@1); markers at p0@2/3 and p1@1."""
    return (TxnStory()
            .txn("p-0", "p-0/t0", "committed", (0, 0, "a0"), (1, 0, "a1"))
            .txn("p-0", "p-0/t1", "aborted", (0, 1, "a2"))
            .poll("ru", RU, (0, 0, "a0"), (0, 1, "a2"), (1, 0, "a1"))
            .poll("rc", RC, (0, 0, "a0"), (1, 0, "a1"))
            .final((0, 0, "a0"), (1, 0, "a1")))


def judged(story: TxnStory) -> Any:
    return check(story.events, TRANSACTIONAL)


def test_a_clean_history_with_an_aborted_transaction_hidden_from_read_committed_is_valid() -> None:
    verdict = judged(clean())
    assert verdict.verdict == VALID, verdict.reasons
    assert verdict.stats["committed_transactions"] == 1 and verdict.stats["aborted_transactions"] == 1


def test_a_read_committed_reader_seeing_an_aborted_record_is_an_aborted_read() -> None:
    verdict = judged(clean().poll("rc2", RC, (0, 1, "a2")))
    assert verdict.verdict == INVALID
    assert verdict.counts["aborted-read"] == 1 and verdict.examples["aborted-read"][0]["txn"] == "p-0/t1"


def test_a_read_uncommitted_reader_may_see_aborted_records() -> None:
    assert judged(clean().poll("ru2", RU, (0, 1, "a2"))).verdict == VALID


def test_reading_a_record_before_its_transaction_asked_to_commit_is_a_precommitted_read() -> None:
    story = (TxnStory().begin("p-0", "p-0/t0", (0, "a0"))
             .poll("rc", RC, (0, 0, "a0"))
             .decide("p-0", "p-0/t0", True).end("p-0", "p-0/t0", "committed", (0, 0, "a0"))
             .final((0, 0, "a0")))
    verdict = judged(story)
    assert verdict.failing == ["precommitted-read"]
    assert "aborted-read" not in verdict.counts


def test_a_committed_record_missing_below_what_read_committed_readers_read_is_a_lost_write() -> None:
    story = (TxnStory().txn("p-0", "p-0/t0", "committed", (0, 0, "a0"))
             .txn("p-0", "p-0/t1", "committed", (0, 1, "a1"))
             .final((0, 1, "a1")))
    verdict = judged(story)
    assert verdict.counts["lost-write"] == 1 and verdict.examples["lost-write"][0]["value"] == "a0"
    assert verdict.verdict == INVALID


def test_a_committed_transaction_visible_only_in_part_is_torn() -> None:
    story = (TxnStory().txn("p-0", "p-0/t0", "committed", (0, 0, "a0"), (1, 0, "a1"))
             .final((0, 0, "a0")))
    verdict = judged(story)
    assert verdict.counts["torn-transaction"] == 1
    assert verdict.examples["torn-transaction"][0]["missing"] == ["a1"]
    assert "torn-transaction" in verdict.failing


def test_a_transaction_of_unknown_outcome_must_still_be_all_or_nothing() -> None:
    half = (TxnStory().txn("p-0", "p-0/t0", "unknown", (0, 0, "a0"), (1, 0, "a1")).final((0, 0, "a0")))
    assert judged(half).counts["torn-transaction"] == 1
    none = (TxnStory().txn("p-0", "p-0/t0", "committed", (0, 0, "b0"))
            .txn("p-0", "p-0/t1", "unknown", (0, 1, "a0"), (1, 0, "a1")).final((0, 0, "b0")))
    assert judged(none).verdict == VALID


def test_an_input_consumed_by_two_committed_transform_transactions_is_a_double_consume() -> None:
    story = (TxnStory().txn("p-0", "p-0/t0", "committed", (0, 0, "a0"))
             .txn("x-0", "x-0/t0", "committed", (1, 0, "x0"), consumed=[(0, 0)])
             .txn("x-0", "x-0/t1", "committed", (1, 1, "x1"), consumed=[(0, 0)])
             .final((0, 0, "a0"), (1, 0, "x0"), (1, 1, "x1")))
    verdict = judged(story)
    assert verdict.counts["double-consume"] == 1
    assert verdict.examples["double-consume"][0]["txns"] == ["x-0/t0", "x-0/t1"]


def test_an_aborted_transform_transaction_does_not_count_as_a_consume() -> None:
    story = (TxnStory().txn("p-0", "p-0/t0", "committed", (0, 0, "a0"))
             .txn("x-0", "x-0/t0", "aborted", (1, 0, "x0"), consumed=[(0, 0)])
             .txn("x-0", "x-0/t1", "committed", (1, 1, "x1"), consumed=[(0, 0)])
             .final((0, 0, "a0"), (1, 1, "x1")))
    assert judged(story).verdict == VALID


def test_a_transactional_duplicate_and_inconsistent_offsets_fail() -> None:
    duplicate = (TxnStory().txn("p-0", "p-0/t0", "committed", (0, 0, "a0"))
                 .poll("ru", RU, (0, 0, "a0"), (0, 3, "a0")).final((0, 0, "a0"), (0, 3, "a0")))
    assert "duplicate" in judged(duplicate).failing
    inconsistent = (TxnStory().txn("p-0", "p-0/t0", "committed", (0, 0, "a0"))
                    .txn("p-1", "p-1/t0", "committed", (0, 0, "b0")).final((0, 0, "a0"), (0, 0, "b0")))
    assert "inconsistent-offsets" in judged(inconsistent).failing


def test_read_committed_may_skip_aborted_offsets_but_not_committed_ones() -> None:
    base = (TxnStory().txn("p-0", "p-0/t0", "committed", (0, 0, "a0"))
            .txn("p-0", "p-0/t1", "aborted", (0, 1, "a1"))
            .txn("p-0", "p-0/t2", "committed", (0, 3, "a2"))
            .txn("p-0", "p-0/t3", "committed", (0, 5, "a3")))
    skipping_aborted = base.poll("rc", RC, (0, 0, "a0"), (0, 3, "a2"), (0, 5, "a3"))
    assert "poll-skip" not in judged(skipping_aborted).counts
    skipping_committed = TxnStory()
    skipping_committed.events = [*base.events]
    skipping_committed.poll("rc", RC, (0, 0, "a0"), (0, 5, "a3"))
    assert judged(skipping_committed).counts["poll-skip"] == 1


def test_a_read_uncommitted_reader_may_not_skip_an_aborted_record() -> None:
    story = (TxnStory().txn("p-0", "p-0/t0", "committed", (0, 0, "a0"))
             .txn("p-0", "p-0/t1", "aborted", (0, 1, "a1"))
             .txn("p-0", "p-0/t2", "committed", (0, 3, "a2"))
             .poll("ru", RU, (0, 0, "a0"), (0, 3, "a2")))
    assert judged(story).counts["poll-skip"] == 1


def test_a_reader_going_backwards_without_a_seek_is_a_nonmonotonic_poll() -> None:
    story = clean().poll("rc", RC, (0, 0, "a0"))
    assert judged(story).counts["nonmonotonic-poll"] == 1
    assert "nonmonotonic-poll" not in judged(clean().assign("rc").poll("rc", RC, (0, 0, "a0"))).counts


def test_a_read_of_a_record_nobody_wrote_is_a_phantom_read() -> None:
    assert "phantom-read" in judged(clean().poll("rc2", RC, (0, 9, "ghost"))).failing


def test_nothing_committed_or_no_final_read_is_unknown() -> None:
    no_final = TxnStory().txn("p-0", "p-0/t0", "committed", (0, 0, "a0")).poll("rc", RC, (0, 0, "a0"))
    assert judged(no_final).verdict == UNKNOWN
    only_aborted = TxnStory().txn("p-0", "p-0/t0", "aborted", (0, 0, "a0")).final()
    assert judged(only_aborted).verdict == UNKNOWN


def test_the_summary_lists_the_transactional_kinds() -> None:
    text = summary(judged(clean().poll("rc2", RC, (0, 1, "a2"))), [], {})
    assert "FAIL aborted-read" in text and "transactions 2: committed 1, aborted 1" in text
    assert all(kind in text for kind in TXN_ANOMALY_KINDS)
