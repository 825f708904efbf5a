"""Delivery futures: one answer per batch, read by each record's future; waits and callbacks."""

from __future__ import annotations

import threading

import pytest

from reference.client.delivery import BatchAnswer, RecordFuture, RecordMetadata, answer, fail
from reference.errors import Errors, KafkaError

# How long a test lets a thread take to notice an answer before calling the wake-up lost.  Not a
# speed requirement: a correct wake-up takes microseconds, a lost one never comes.
LOST_WAKE_UP_S = 10


def test_each_record_of_a_batch_reads_base_offset_plus_its_index_and_its_own_timestamp() -> None:
    futures = [RecordFuture() for _ in range(3)]
    answer(futures, BatchAnswer("orders", 2, base_offset=100, timestamps=[7, 8, 9]))
    assert [f.result(timeout=0) for f in futures] == [
        RecordMetadata("orders", 2, 100, 7), RecordMetadata("orders", 2, 101, 8), RecordMetadata("orders", 2, 102, 9)]


def test_log_append_time_is_every_records_timestamp_and_acks_0_has_no_offset() -> None:
    futures = [RecordFuture(), RecordFuture()]
    answer(futures, BatchAnswer("orders", 0, base_offset=-1, log_append_time=5000, timestamps=[1, 2]))
    assert [f.result(timeout=0) for f in futures] == [RecordMetadata("orders", 0, -1, 5000)] * 2


def test_a_failed_batch_fails_every_record_with_the_same_error() -> None:
    futures = [RecordFuture(), RecordFuture()]
    error = KafkaError(Errors.NOT_ENOUGH_REPLICAS)
    fail(futures, error)
    assert all(f.done() and f.exception(timeout=0) is error for f in futures)
    with pytest.raises(KafkaError):
        futures[0].result(timeout=0)


def test_the_first_answer_stays_a_later_one_is_ignored() -> None:
    future = RecordFuture()
    answer([future], BatchAnswer("orders", 0, base_offset=3, timestamps=[1]))
    fail([future], KafkaError(Errors.REQUEST_TIMED_OUT))
    assert future.result(timeout=0) == RecordMetadata("orders", 0, 3, 1)


def test_an_unanswered_future_times_out_and_cannot_be_cancelled() -> None:
    future = RecordFuture()
    with pytest.raises(TimeoutError):
        future.result(timeout=0)
    with pytest.raises(TimeoutError):
        future.exception(timeout=0.01)
    assert not future.cancel() and not future.cancelled() and not future.done()


def test_callbacks_run_once_each_whether_added_before_or_after_the_answer() -> None:
    future = RecordFuture()
    calls: list[str] = []

    def raises(done: RecordFuture) -> None:
        calls.append("raises")
        raise RuntimeError("a user's bug: logged, and the other callbacks still run")

    future.add_done_callback(lambda f: calls.append("before"))
    future.add_done_callback(raises)
    answer([future], BatchAnswer("orders", 0, base_offset=0, timestamps=[0]))
    future.add_done_callback(lambda f: calls.append("after"))
    answer([future], BatchAnswer("orders", 0, base_offset=9, timestamps=[0]))  # ignored: no second run
    assert calls == ["before", "raises", "after"]


def test_a_thread_blocked_on_a_record_wakes_when_its_batch_is_answered() -> None:
    future = RecordFuture()
    seen: list[RecordMetadata] = []
    waiter = threading.Thread(target=lambda: seen.append(future.result(LOST_WAKE_UP_S)), daemon=True)
    waiter.start()
    while future._event is None and waiter.is_alive():  # until the waiter is really blocked
        threading.Event().wait(0.001)
    answer([RecordFuture(), future], BatchAnswer("orders", 1, base_offset=10, timestamps=[0, 4]))
    waiter.join(LOST_WAKE_UP_S)
    assert not waiter.is_alive(), "the answer did not wake the waiting thread"
    assert seen == [RecordMetadata("orders", 1, 11, 4)]


def test_answers_racing_waits_and_callbacks_lose_no_wake_up_and_run_each_callback_once() -> None:
    """The I/O thread answers batches while another thread waits on and adds callbacks to the
    same futures: every wait returns and every callback runs exactly once."""
    batches = [[RecordFuture() for _ in range(50)] for _ in range(200)]
    calls = [0] * (len(batches) * 50)
    lock = threading.Lock()

    def count(index: int) -> None:
        with lock:
            calls[index] += 1

    def user() -> None:
        for b, batch in enumerate(batches):
            for i, future in enumerate(batch):
                future.add_done_callback(lambda f, index=b * 50 + i: count(index))
            batch[-1].result(LOST_WAKE_UP_S)  # raises TimeoutError (ending this thread) if not woken

    def io() -> None:
        for b, batch in enumerate(batches):
            answer(batch, BatchAnswer("orders", 0, base_offset=b * 50, timestamps=[0] * 50))

    threads = [threading.Thread(target=user, daemon=True), threading.Thread(target=io, daemon=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(LOST_WAKE_UP_S)
    assert not any(thread.is_alive() for thread in threads)
    assert calls == [1] * len(calls)
