"""The checker finds every anomaly planted in a synthetic history, and passes a clean one.

Histories are built with :class:`Story`, which stamps events in order the way the workload does:
``send`` is an invoke plus its completion, ``poll`` an invoke plus the records read.
"""

from __future__ import annotations

from typing import Any

import pytest

from chaos.checker import ANOMALY_KINDS, AT_LEAST_ONCE, IDEMPOTENT, INVALID, UNKNOWN, VALID, Verdict, check
from chaos.history import FAIL, INFO, INVOKE, OK, Event, read_history, write_history
from chaos.report import summary

TOPIC = "t"


class Story:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def _add(self, process: str, type: str, f: str, value: Any = None) -> None:
        self.events.append(Event(process, type, f, value, len(self.events) * 1_000_000, 0))

    def send(self, process: str, key: str, value: str, partition: int | None = None, offset: int | None = None,
             outcome: str = OK) -> Story:
        sent = {"topic": TOPIC, "key": key, "value": value}
        self._add(process, INVOKE, "send", sent)
        if outcome == OK:
            self._add(process, OK, "send", {**sent, "partition": partition, "offset": offset})
        elif outcome != INVOKE:
            self._add(process, outcome, "send", {**sent, "error": "_MSG_TIMED_OUT"})
        return self

    def poll(self, process: str, *records: tuple[int, int, str, str]) -> Story:
        """records: (partition, offset, key, value)"""
        self._add(process, INVOKE, "poll")
        self._add(process, OK, "poll", {"records": [
            {"topic": TOPIC, "partition": p, "offset": o, "key": k, "value": v} for p, o, k, v in records]})
        return self

    def assign(self, process: str, partitions: list[int]) -> Story:
        value = {"topic": TOPIC, "partitions": partitions, "seek": {str(p): "beginning" for p in partitions}}
        self._add(process, INVOKE, "assign", value)
        self._add(process, OK, "assign", value)
        return self

    def subscribe(self, process: str) -> Story:
        self._add(process, INVOKE, "subscribe", {"topic": TOPIC})
        self._add(process, OK, "subscribe", {"topic": TOPIC})
        return self

    def rebalance(self, process: str, assigned: list[int]) -> Story:
        self._add(process, INFO, "rebalance", {"assigned": [{"topic": TOPIC, "partition": p} for p in assigned]})
        return self

    def completion(self, process: str, key: str, value: str, partition: int | None = None,
                   offset: int | None = None, outcome: str = OK) -> Story:
        """The completion of a send invoked earlier with ``send(..., outcome=INVOKE)``."""
        sent = {"topic": TOPIC, "key": key, "value": value}
        extra = {"partition": partition, "offset": offset} if outcome == OK else {"error": "_TRANSPORT"}
        self._add(process, outcome, "send", {**sent, **extra})
        return self

    def epoch_bump(self, process: str, epoch: int, reason: str | None = "5 message(s) timed out on t [1]") -> Story:
        self._add(process, INFO, "epoch-bump", {"producer_id": 0, "epoch": epoch, "reason": reason})
        return self

    def final(self, complete: bool = True, **high_watermarks: int) -> Story:
        self._add("final-reader", INVOKE, "final-read")
        self._add("final-reader", OK, "final-read", {"topic": TOPIC, "high_watermarks": high_watermarks,
                                                       "positions": high_watermarks, "complete": complete})
        return self


def clean_story() -> Story:
    """Two producers, one partition each way, read by an assigner, a subscriber and the final read."""
    story = Story()
    story.send("p0", "a", "a0", 0, 0).send("p1", "b", "b0", 1, 0).send("p0", "a", "a1", 0, 1)
    story.send("p1", "b", "b1", 1, 1).send("p0", "c", "c0", 0, 2, outcome=INFO)  # maybe written: it was
    story.send("p1", "d", "d0", outcome=INFO)  # maybe written: it was not
    story.assign("c0", [0, 1]).poll("c0", (0, 0, "a", "a0"), (1, 0, "b", "b0")).poll("c0", (0, 1, "a", "a1"))
    story.subscribe("g0").rebalance("g0", [0]).poll("g0", (0, 0, "a", "a0"), (0, 1, "a", "a1"))
    story.assign("final-reader", [0, 1])
    story.poll("final-reader", (0, 0, "a", "a0"), (0, 1, "a", "a1"), (0, 2, "c", "c0"))
    story.poll("final-reader", (1, 0, "b", "b0"), (1, 1, "b", "b1"))
    return story.final()


def test_a_clean_history_is_valid_for_both_workloads() -> None:
    for workload in (AT_LEAST_ONCE, IDEMPOTENT):
        verdict = check(clean_story().events, workload)
        assert verdict.verdict == VALID, verdict
        assert verdict.counts == {}
        assert verdict.stats["acknowledged"] == 4 and verdict.stats["maybe_written"] == 2


def test_an_acknowledged_write_below_the_highest_read_offset_never_read_is_a_lost_write() -> None:
    story = Story().send("p0", "a", "a0", 0, 0).send("p0", "a", "a1", 0, 1).send("p0", "a", "a2", 0, 2)
    story.assign("final-reader", [0]).poll("final-reader", (0, 0, "a", "a0"), (0, 2, "a", "a2")).final(**{"0": 3})
    verdict = check(story.events)
    assert verdict.verdict == INVALID
    assert verdict.counts["lost-write"] == 1 and "lost-write" in verdict.failing
    assert verdict.examples["lost-write"][0]["value"] == "a1"
    assert verdict.examples["lost-write"][0]["highest_read"] == 2


def test_an_unseen_write_above_a_complete_final_read_fails_and_above_an_incomplete_one_is_unknown() -> None:
    def story(complete: bool) -> Story:
        s = Story().send("p0", "a", "a0", 0, 0).send("p0", "a", "a1", 0, 1)
        return s.assign("final-reader", [0]).poll("final-reader", (0, 0, "a", "a0")).final(complete, **{"0": 1})

    truncated = check(story(complete=True).events)
    assert truncated.verdict == INVALID and truncated.counts["unseen"] == 1 and "unseen" in truncated.failing
    assert "lost-write" not in truncated.counts  # nobody read past it: not provably lost
    cut_short = check(story(complete=False).events)
    assert cut_short.verdict == UNKNOWN and cut_short.counts["unseen"] == 1
    assert "final read stopped" in cut_short.reasons[0]


def test_one_value_at_two_offsets_is_a_duplicate_that_fails_only_the_idempotent_workload() -> None:
    story = Story().send("p0", "a", "a0", 0, 0).send("p0", "a", "a1", 0, 2)
    story.assign("final-reader", [0]).poll("final-reader", (0, 0, "a", "a0"), (0, 1, "a", "a0"), (0, 2, "a", "a1"))
    story.final(**{"0": 3})
    at_least_once = check(story.events, AT_LEAST_ONCE)
    assert at_least_once.verdict == VALID and at_least_once.counts["duplicate"] == 1
    idempotent = check(story.events, IDEMPOTENT)
    assert idempotent.verdict == INVALID and idempotent.failing == ["duplicate"]
    assert idempotent.examples["duplicate"][0]["at"] == ["t-0@0", "t-0@1"]


def test_two_values_at_one_offset_are_inconsistent_offsets() -> None:
    story = Story().send("p0", "a", "a0", 0, 0).send("p1", "b", "b0", 0, 0)  # both acknowledged at offset 0
    story.assign("final-reader", [0]).poll("final-reader", (0, 0, "a", "a0")).final(**{"0": 1})
    verdict = check(story.events)
    assert verdict.verdict == INVALID and "inconsistent-offsets" in verdict.failing
    assert verdict.examples["inconsistent-offsets"][0] == {"partition": "t-0", "offset": 0, "values": ["a0", "b0"]}


def test_a_producers_acknowledged_offsets_going_backwards_is_a_nonmonotonic_send() -> None:
    story = Story().send("p0", "a", "a0", 0, 5).send("p0", "a", "a1", 0, 3)
    story.assign("final-reader", [0]).poll("final-reader", (0, 3, "a", "a1"), (0, 5, "a", "a0")).final(**{"0": 6})
    verdict = check(story.events)
    assert verdict.counts["nonmonotonic-send"] == 1 and "nonmonotonic-send" in verdict.failing
    assert verdict.counts["order"] == 1  # a0 was sent first but sits after a1 in the log


def test_values_read_in_another_order_than_sent_are_a_per_partition_order_violation() -> None:
    # acknowledgements claim the send order, but the log as read holds them the other way round
    story = Story().send("p0", "a", "a0", 0, 0).send("p0", "a", "a1", 0, 1)
    story.assign("c0", [0]).poll("c0", (0, 0, "a", "a1")).poll("c0", (0, 1, "a", "a0"))
    story.assign("final-reader", [0]).poll("final-reader", (0, 0, "a", "a1"), (0, 1, "a", "a0")).final(**{"0": 2})
    verdict = check(story.events)
    assert verdict.verdict == INVALID
    assert verdict.counts["order"] == 1 and verdict.examples["order"][0]["sent_first"] == "a0"
    assert verdict.counts["inconsistent-offsets"] == 2


def test_reading_backwards_without_a_seek_is_a_nonmonotonic_poll_but_a_new_assignment_is_not() -> None:
    story = Story().send("p0", "a", "a0", 0, 0).send("p0", "a", "a1", 0, 1)
    story.assign("c0", [0]).poll("c0", (0, 0, "a", "a0"), (0, 1, "a", "a1")).poll("c0", (0, 0, "a", "a0"))
    story.assign("c0", [0]).poll("c0", (0, 0, "a", "a0"))  # re-assigned and sought: expected
    story.assign("final-reader", [0]).poll("final-reader", (0, 0, "a", "a0"), (0, 1, "a", "a1")).final(**{"0": 2})
    verdict = check(story.events)
    assert verdict.verdict == INVALID and verdict.failing == ["nonmonotonic-poll"]
    assert verdict.counts["nonmonotonic-poll"] == 1
    assert verdict.examples["nonmonotonic-poll"][0] == {"consumer": "c0", "partition": "t-0", "offsets": [1, 0]}


def test_skipping_offsets_that_exist_is_a_poll_skip() -> None:
    story = Story().send("p0", "a", "a0", 0, 0).send("p0", "a", "a1", 0, 1).send("p0", "a", "a2", 0, 2)
    story.assign("c0", [0]).poll("c0", (0, 0, "a", "a0")).poll("c0", (0, 2, "a", "a2"))
    story.assign("final-reader", [0])
    story.poll("final-reader", (0, 0, "a", "a0"), (0, 1, "a", "a1"), (0, 2, "a", "a2")).final(**{"0": 3})
    verdict = check(story.events)
    assert verdict.verdict == INVALID and verdict.failing == ["poll-skip"]
    assert verdict.examples["poll-skip"][0]["skipped"] == [1]


def test_a_gap_where_no_record_is_known_is_not_a_poll_skip() -> None:
    # offset 1 may be a control record or a compacted hole: nobody saw anything there
    story = Story().send("p0", "a", "a0", 0, 0).send("p0", "a", "a2", 0, 2)
    story.assign("c0", [0]).poll("c0", (0, 0, "a", "a0")).poll("c0", (0, 2, "a", "a2"))
    story.assign("final-reader", [0]).poll("final-reader", (0, 0, "a", "a0"), (0, 2, "a", "a2")).final(**{"0": 3})
    assert check(story.events).verdict == VALID


def test_a_subscriber_skipping_or_rereading_across_a_rebalance_is_noted_but_allowed() -> None:
    story = Story().send("p0", "a", "a0", 0, 0).send("p0", "a", "a1", 0, 1).send("p0", "a", "a2", 0, 2)
    story.subscribe("g0").rebalance("g0", [0]).poll("g0", (0, 0, "a", "a0"))
    story.rebalance("g0", [0]).poll("g0", (0, 2, "a", "a2"))  # another member read and committed a1
    story.rebalance("g0", [0]).poll("g0", (0, 1, "a", "a1"))  # resumed from an older commit
    story.assign("final-reader", [0])
    story.poll("final-reader", (0, 0, "a", "a0"), (0, 1, "a", "a1"), (0, 2, "a", "a2")).final(**{"0": 3})
    verdict = check(story.events)
    assert verdict.verdict == VALID
    assert verdict.counts == {"poll-skip-after-rebalance": 1, "nonmonotonic-poll-after-rebalance": 1}


def test_the_same_skip_by_a_subscriber_without_a_rebalance_fails() -> None:
    story = Story().send("p0", "a", "a0", 0, 0).send("p0", "a", "a1", 0, 1).send("p0", "a", "a2", 0, 2)
    story.subscribe("g0").rebalance("g0", [0]).poll("g0", (0, 0, "a", "a0")).poll("g0", (0, 2, "a", "a2"))
    story.assign("final-reader", [0])
    story.poll("final-reader", (0, 0, "a", "a0"), (0, 1, "a", "a1"), (0, 2, "a", "a2")).final(**{"0": 3})
    assert check(story.events).failing == ["poll-skip"]


def test_a_value_nobody_sent_is_a_phantom_read() -> None:
    story = Story().send("p0", "a", "a0", 0, 0)
    story.assign("final-reader", [0]).poll("final-reader", (0, 0, "a", "a0"), (0, 1, "a", "zz")).final(**{"0": 2})
    verdict = check(story.events)
    assert verdict.failing == ["phantom-read"]


def test_a_failed_send_never_counts_as_acknowledged() -> None:
    story = Story().send("p0", "a", "a0", 0, 0).send("p0", "a", "a1", outcome=FAIL)
    story.assign("final-reader", [0]).poll("final-reader", (0, 0, "a", "a0")).final(**{"0": 1})
    verdict = check(story.events)
    assert verdict.verdict == VALID and verdict.stats["failed"] == 1


def test_nothing_acknowledged_or_no_final_read_is_unknown() -> None:
    assert check(Story().send("p0", "a", "a0", outcome=INFO).final().events).verdict == UNKNOWN
    no_final = check(Story().send("p0", "a", "a0", 0, 0).poll("c0", (0, 0, "a", "a0")).events)
    assert no_final.verdict == UNKNOWN and no_final.reasons == ["there was no final read"]


def test_an_unknown_workload_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown workload"):
        check([], "exactly-once")


def test_a_history_survives_the_file_round_trip_including_a_torn_last_line(tmp_path: Any) -> None:
    path = tmp_path / "history.jsonl"
    events = clean_story().events
    write_history(path, events)
    with open(path, "a") as out:
        out.write('{"process": "p0", "type": "inv')
    assert read_history(path) == events
    assert check(read_history(path)).verdict == VALID


def test_a_reordering_with_consistent_offsets_fails_only_the_idempotent_workload() -> None:
    # a1 was sent after a0 but acknowledged, and read, at the lower offset: the client reordered them
    story = Story().send("p0", "a", "a0", outcome=INVOKE).send("p0", "a", "a1", outcome=INVOKE)
    story._add("p0", OK, "send", {"topic": TOPIC, "key": "a", "value": "a1", "partition": 0, "offset": 0})
    story._add("p0", OK, "send", {"topic": TOPIC, "key": "a", "value": "a0", "partition": 0, "offset": 1})
    story.assign("final-reader", [0]).poll("final-reader", (0, 0, "a", "a1"), (0, 1, "a", "a0")).final(**{"0": 2})
    at_least_once = check(story.events, AT_LEAST_ONCE)
    assert at_least_once.verdict == VALID and at_least_once.counts["order"] == 1
    idempotent = check(story.events, IDEMPOTENT)
    assert idempotent.verdict == INVALID and idempotent.failing == ["order"]


# -- duplicates and the producer's own epoch bump (librdkafka, KIP-360) ---------------------------


def bumped_story(bump: str | None, *, bumper: str = "p0", copies_in: tuple[int, int] = (0, 0)) -> Story:
    """p0 sends a0 (acknowledged at t-0@0) and a1; a1's first copy lands at ``copies_in[0]``@1 but its
    answer is lost, the retry is acknowledged at ``copies_in[1]``@2 -- as in librdkafka#4953, where
    the retry went out under a new epoch with its sequence restarted at 0.  ``bump`` places
    ``bumper``'s epoch-bump event: "before" a1's invoke, "in-flight" (between invoke and ok),
    "after" its ok, or None for no bump at all."""
    story = Story().send("p0", "a", "a0", 0, 0)
    if bump == "before":
        story.epoch_bump(bumper, 1)
    story.send("p0", "a", "a1", outcome=INVOKE)
    if bump == "in-flight":
        story.epoch_bump(bumper, 1, "263 message(s) timed out on t [1]")
    story.completion("p0", "a", "a1", copies_in[1], 2)
    if bump == "after":
        story.epoch_bump(bumper, 1)
    first, retry = copies_in
    story.assign("final-reader", sorted({0, first, retry}))
    story.poll("final-reader", (0, 0, "a", "a0"), (first, 1, "a", "a1"), (retry, 2, "a", "a1"))
    return story.final(**{str(p): 3 for p in {0, first, retry}})


def test_a_duplicate_whose_producer_bumped_its_epoch_while_it_was_in_flight_is_noted_but_passes() -> None:
    story = bumped_story("in-flight")
    for workload in (IDEMPOTENT, AT_LEAST_ONCE):
        verdict = check(story.events, workload)
        assert verdict.verdict == VALID, verdict
        assert verdict.counts == {"duplicate-after-epoch-bump": 1}
    [example] = verdict.examples["duplicate-after-epoch-bump"]
    bump_time = next(event.time for event in story.events if event.f == "epoch-bump")
    assert example == {"key": "a", "value": "a1", "at": ["t-0@1", "t-0@2"], "producer": "p0",
                       "epoch_bumps": [{"time_s": round(bump_time / 1e9, 3), "producer_id": 0, "epoch": 1,
                                        "reason": "263 message(s) timed out on t [1]"}]}


def test_the_same_duplicate_without_an_epoch_bump_fails_the_idempotent_workload() -> None:
    verdict = check(bumped_story(None).events, IDEMPOTENT)
    assert verdict.verdict == INVALID and verdict.failing == ["duplicate"]
    assert verdict.counts == {"duplicate": 1}
    assert verdict.examples["duplicate"] == [{"key": "a", "value": "a1", "at": ["t-0@1", "t-0@2"]}]


@pytest.mark.parametrize(("bump", "bumper"), [("in-flight", "p1"), ("before", "p0"), ("after", "p0")],
                         ids=["another-producers-bump", "bump-before-the-invoke", "bump-after-the-ok"])
def test_a_bump_of_another_producer_or_outside_the_values_flight_does_not_excuse_a_duplicate(
        bump: str, bumper: str) -> None:
    verdict = check(bumped_story(bump, bumper=bumper).events, IDEMPOTENT)
    assert verdict.verdict == INVALID and verdict.failing == ["duplicate"]
    assert verdict.counts == {"duplicate": 1}


def test_copies_in_two_partitions_are_a_duplicate_even_with_a_bump_a_retry_keeps_its_partition() -> None:
    verdict = check(bumped_story("in-flight", copies_in=(0, 1)).events, IDEMPOTENT)
    assert verdict.failing == ["duplicate"] and verdict.counts == {"duplicate": 1}
    assert verdict.examples["duplicate"][0]["at"] == ["t-0@1", "t-1@2"]


@pytest.mark.parametrize("outcome", [INFO, FAIL, None], ids=["maybe-written", "failed", "never-completed"])
def test_the_window_ends_at_any_completion_or_else_at_the_end_of_the_history(outcome: str | None) -> None:
    def story(bump_inside: bool) -> Story:
        s = Story().send("p0", "a", "a0", 0, 0).send("p0", "a", "a1", outcome=INVOKE)
        if bump_inside:
            s.epoch_bump("p0", 1)
        if outcome is not None:
            s.completion("p0", "a", "a1", outcome=outcome)
        if not bump_inside:
            s.epoch_bump("p0", 1)
        s.assign("final-reader", [0]).poll("final-reader", (0, 0, "a", "a0"), (0, 1, "a", "a1"), (0, 2, "a", "a1"))
        return s.final(**{"0": 3})

    assert check(story(bump_inside=True).events, IDEMPOTENT).counts == {"duplicate-after-epoch-bump": 1}
    after = check(story(bump_inside=False).events, IDEMPOTENT)
    # with no completion, a bump anywhere after the invoke is inside the window
    expected = {"duplicate-after-epoch-bump": 1} if outcome is None else {"duplicate": 1}
    assert after.counts == expected


def test_every_bump_in_the_window_is_listed_and_a_missing_reason_is_null() -> None:
    story = Story().send("p0", "a", "a0", outcome=INVOKE).epoch_bump("p0", 1, None).epoch_bump("p0", 2, "x")
    story.completion("p0", "a", "a0", 0, 1)
    story.assign("final-reader", [0]).poll("final-reader", (0, 0, "a", "a0"), (0, 1, "a", "a0")).final(**{"0": 2})
    [example] = check(story.events, IDEMPOTENT).examples["duplicate-after-epoch-bump"]
    assert [(b["epoch"], b["reason"]) for b in example["epoch_bumps"]] == [(1, None), (2, "x")]


def test_an_epoch_bump_alone_changes_nothing_and_survives_the_file_round_trip(tmp_path: Any) -> None:
    plain = clean_story()
    bumped = clean_story().epoch_bump("p0", 1)
    assert check(bumped.events, IDEMPOTENT).to_dict() | {"stats": None} == \
        check(plain.events, IDEMPOTENT).to_dict() | {"stats": None}
    path = tmp_path / "history.jsonl"
    write_history(path, bumped_story("in-flight").events)
    assert read_history(path) == bumped_story("in-flight").events
    assert check(read_history(path), IDEMPOTENT).counts == {"duplicate-after-epoch-bump": 1}


def _anomaly_rows(text: str) -> list[list[str]]:
    """The rows of summary.txt's anomaly table, split into words (marker if any, kind, count)."""
    lines = text.splitlines()
    table = lines[lines.index("anomalies:") + 1:]
    return [line.split() for line in table[:table.index("")] if "e.g." not in line]


def test_the_summary_lists_the_tolerated_kind_right_after_duplicate_and_marks_it_note_not_fail() -> None:
    kinds = list(ANOMALY_KINDS)
    assert kinds.index("duplicate-after-epoch-bump") == kinds.index("duplicate") + 1
    verdict = check(bumped_story("in-flight").events, IDEMPOTENT)
    text = summary(Verdict.from_dict(verdict.to_dict()), [], {})
    assert text.startswith("verdict: VALID")
    rows = _anomaly_rows(text)
    assert [row[-2] for row in rows] == kinds
    assert [row for row in rows if "duplicate" in row[-2]] == [["duplicate", "0"],
                                                               ["note", "duplicate-after-epoch-bump", "1"]]
    rows = _anomaly_rows(summary(check(bumped_story(None).events, IDEMPOTENT), [], {}))
    assert [row for row in rows if "duplicate" in row[-2]] == [["FAIL", "duplicate", "1"],
                                                               ["duplicate-after-epoch-bump", "0"]]


def test_a_duplicate_whose_invoke_is_missing_has_no_known_window_and_stays_a_duplicate() -> None:
    story = Story().epoch_bump("p0", 1).completion("p0", "a", "a0", 0, 1)  # the ok alone, no invoke
    story.assign("final-reader", [0]).poll("final-reader", (0, 0, "a", "a0"), (0, 1, "a", "a0")).final(**{"0": 2})
    assert check(story.events, IDEMPOTENT).failing == ["duplicate"]
