"""The checker finds every anomaly planted in a synthetic history, and passes a clean one.

Histories are built with :class:`Story`, which stamps events in order the way the workload does:
``send`` is an invoke plus its completion, ``poll`` an invoke plus the records read.
"""

from __future__ import annotations

from typing import Any

import pytest

from chaos.checker import AT_LEAST_ONCE, IDEMPOTENT, INVALID, UNKNOWN, VALID, check
from chaos.history import FAIL, INFO, INVOKE, OK, Event, read_history, write_history

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
