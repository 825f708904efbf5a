"""KIP-227 fetch sessions as data (``reference.broker.fetch_session``), and the Fetch handler's use
of them on the sans-IO broker with a fake clock.  The rules are Kafka 4.3's ``FetchManager``,
``FetchSessionCacheShard`` and ``CachedPartition``; the wire tests beside this file compare them
with a live Kafka."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import pytest

from reference.broker.fetch_session import (
    FINAL_EPOCH,
    INITIAL_EPOCH,
    INT32_MAX,
    MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS,
    ZERO_UUID,
    FetchContext,
    FetchSessionCache,
    FullFetchContext,
    IncrementalFetchContext,
    PartitionFetch,
    PartitionResult,
    SessionErrorContext,
    SessionIdOutOfRange,
    SessionlessFetchContext,
    TopicIdPartition,
    next_epoch,
)
from reference.errors import Errors
from reference.protocol.apis import API_BY_NAME
from reference.records.batch import SimpleRecord, build_batch

from .test_core import Harness

FETCH = API_BY_NAME["Fetch"]
T0 = 1_700_000_000_000
TOPIC_ID = uuid.UUID(int=0xA1)


def by_name(partition: int, topic: str = "t") -> TopicIdPartition:
    return TopicIdPartition(ZERO_UUID, topic, partition)


def by_id(partition: int, topic_id: uuid.UUID = TOPIC_ID, topic: str | None = "t") -> TopicIdPartition:
    return TopicIdPartition(topic_id, topic, partition)


def wanted(*partitions: TopicIdPartition, offset: int = 0) -> dict[TopicIdPartition, PartitionFetch]:
    return {partition: PartitionFetch(fetch_offset=offset) for partition in partitions}


def quiet(high_watermark: int = 5, log_start_offset: int = 0) -> PartitionResult:
    """An answer with nothing new in it."""
    return PartitionResult(records_size=0, high_watermark=high_watermark, log_start_offset=log_start_offset)


def no_name(topic_id: uuid.UUID) -> str | None:
    return None


class Sessions:
    """A cache and the requests a client sends it: ``full``, ``incremental`` and ``respond``."""

    def __init__(self, slots: int = 1000, seed: int = 7) -> None:
        self.cache = FetchSessionCache(slots, rng=random.Random(seed))

    def context(self, session_id: int, epoch: int, fetch: dict[TopicIdPartition, PartitionFetch] | None = None,
                forget: list[TopicIdPartition] | None = None, version: int = 12, privileged: bool = False,
                now_ms: int = T0) -> FetchContext:
        return self.cache.new_context(version, session_id, epoch, privileged, fetch or {}, forget or [],
                                      no_name, now_ms)

    @staticmethod
    def respond(context: FetchContext, results: dict[TopicIdPartition, PartitionResult] | None = None,
                now_ms: int = T0) -> tuple[int, int, list[TopicIdPartition]]:
        """(error code, session id, partitions carried), every partition answered ``quiet()``
        unless ``results`` says otherwise."""
        results = results or {}
        answers = [(partition, results.get(partition, quiet())) for partition, _ in context.partitions()]
        response = context.respond(answers, lambda result: result, now_ms)
        return response.error.code, response.session_id, [partition for partition, _ in response.partitions]

    def open(self, *partitions: TopicIdPartition, version: int = 12, privileged: bool = False,
             now_ms: int = T0) -> int:
        context = self.context(0, INITIAL_EPOCH, wanted(*partitions), version=version, privileged=privileged,
                               now_ms=now_ms)
        _, session_id, _ = self.respond(context, now_ms=now_ms)
        return session_id


# -- epochs and contexts -------------------------------------------------------------------------


def test_the_next_epoch_counts_up_wraps_to_1_and_stays_final() -> None:
    assert [next_epoch(e) for e in (0, 1, 41, INT32_MAX, FINAL_EPOCH, -7)] == [1, 2, 42, 1, -1, -1]


def test_a_full_fetch_with_epoch_0_creates_a_session_whose_next_epoch_is_1() -> None:
    sessions = Sessions()
    context = sessions.context(0, INITIAL_EPOCH, wanted(by_name(0), by_name(1)))
    assert isinstance(context, FullFetchContext)
    error, session_id, carried = sessions.respond(context)
    assert (error, carried) == (0, [by_name(0), by_name(1)]) and session_id != 0
    session = sessions.cache.get(session_id)
    assert session is not None and session.epoch == 1 and list(session.partitions) == [("t", 0), ("t", 1)]
    assert isinstance(sessions.context(session_id, 1), IncrementalFetchContext)
    sessions.cache.check_valid()


def test_epoch_minus_one_closes_the_named_session_and_creates_none() -> None:
    sessions = Sessions()
    session_id = sessions.open(by_name(0))
    context = sessions.context(session_id, FINAL_EPOCH, wanted(by_name(0)))
    assert isinstance(context, SessionlessFetchContext)
    assert sessions.respond(context) == (0, 0, [by_name(0)])
    assert sessions.cache.get(session_id) is None and len(sessions.cache) == 0


def test_epoch_0_with_a_session_id_replaces_that_session() -> None:
    sessions = Sessions()
    first = sessions.open(by_name(0))
    _, second, _ = sessions.respond(sessions.context(first, INITIAL_EPOCH, wanted(by_name(1))))
    assert second not in (0, first) and sessions.cache.get(first) is None and len(sessions.cache) == 1


@pytest.mark.parametrize(("session_id", "epoch", "version", "error"), [
    (12345, 1, 12, Errors.FETCH_SESSION_ID_NOT_FOUND),  # no such session
    (-5, 1, 12, Errors.FETCH_SESSION_ID_NOT_FOUND),  # negative ids small enough fall in shard 0
    (None, 2, 12, Errors.INVALID_FETCH_SESSION_EPOCH),  # the session expects 1
    (None, 1, 13, Errors.FETCH_SESSION_TOPIC_ID_ERROR),  # made below v13, continued with ids
])
def test_a_session_error_is_answered_at_once_with_no_partitions_and_session_id_0(session_id, epoch, version,
                                                                                  error) -> None:
    sessions = Sessions()
    opened = sessions.open(by_name(0))
    context = sessions.context(opened if session_id is None else session_id, epoch, version=version)
    assert isinstance(context, SessionErrorContext) and context.error == error and context.partitions() == []
    assert sessions.respond(context) == (error.code, 0, [])
    assert sessions.cache.get(opened) is not None, "a session error leaves the session alone"


def test_a_session_made_with_topic_ids_refuses_a_fetch_naming_topics() -> None:
    sessions = Sessions()
    opened = sessions.open(by_id(0), version=13)
    context = sessions.context(opened, 1, version=12)
    assert isinstance(context, SessionErrorContext) and context.error == Errors.FETCH_SESSION_TOPIC_ID_ERROR


@pytest.mark.parametrize("session_id", [INT32_MAX, 8 * (INT32_MAX // 8), -(INT32_MAX // 8), -(1 << 31)])
def test_a_session_id_no_shard_owns_is_kafkas_failed_lookup(session_id: int) -> None:
    """Kafka finds a session's shard as id / (2^31-1) // 8; outside 0..7 its list lookup throws."""
    sessions = Sessions()
    for epoch in (INITIAL_EPOCH, FINAL_EPOCH, 1):
        with pytest.raises(SessionIdOutOfRange):
            sessions.context(session_id, epoch)


# -- incremental fetches -------------------------------------------------------------------------


def test_an_incremental_fetch_reads_every_session_partition_with_its_cached_parameters() -> None:
    sessions = Sessions()
    opened = sessions.open(by_name(0), by_name(1))
    context = sessions.context(opened, 1, {by_name(1): PartitionFetch(fetch_offset=9, partition_max_bytes=10)})
    assert context.partitions() == [(by_name(0), PartitionFetch(fetch_offset=0)),
                                    (by_name(1), PartitionFetch(fetch_offset=9, partition_max_bytes=10))]
    assert sessions.cache.get(opened).epoch == 2  # type: ignore[union-attr]


@pytest.mark.parametrize(("change", "carried"), [
    ({}, False),  # nothing new
    ({"records_size": 10}, True),
    ({"high_watermark": 6}, True),
    ({"log_start_offset": 1}, True),
    ({"preferred_read_replica": 2}, True),  # KIP-392
    ({"error": Errors.NOT_LEADER_OR_FOLLOWER}, True),
    ({"diverging_epoch": 3}, True),  # KIP-595
])
def test_an_incremental_response_carries_a_partition_only_when_something_changed(change, carried) -> None:
    sessions = Sessions()
    opened = sessions.open(by_name(0))
    sessions.respond(sessions.context(opened, 1))  # the session now remembers HW 5, log start 0
    answer = PartitionResult(**{"records_size": 0, "high_watermark": 5, "log_start_offset": 0, **change})
    _, session_id, partitions = sessions.respond(sessions.context(opened, 2), {by_name(0): answer})
    assert (session_id, partitions) == (opened, [by_name(0)] if carried else [])


def test_an_error_clears_the_remembered_high_watermark_so_recovery_is_sent() -> None:
    sessions = Sessions()
    opened = sessions.open(by_name(0))
    failed = PartitionResult(0, high_watermark=5, log_start_offset=0, error=Errors.NOT_LEADER_OR_FOLLOWER)
    assert sessions.respond(sessions.context(opened, 1), {by_name(0): failed})[2] == [by_name(0)]
    assert sessions.respond(sessions.context(opened, 2))[2] == [by_name(0)]  # back: HW 5 again
    assert sessions.respond(sessions.context(opened, 3))[2] == []


def test_a_partition_sent_with_records_moves_to_the_end_of_the_session() -> None:
    sessions = Sessions()
    opened = sessions.open(by_name(0), by_name(1), by_name(2))
    with_records = PartitionResult(records_size=100, high_watermark=5, log_start_offset=0)
    sessions.respond(sessions.context(opened, 1), {by_name(0): with_records})
    assert [p for p, _ in sessions.context(opened, 2).partitions()] == [by_name(1), by_name(2), by_name(0)]


def test_forgotten_partitions_leave_the_session_and_an_empty_session_closes() -> None:
    sessions = Sessions()
    opened = sessions.open(by_name(0), by_name(1))
    context = sessions.context(opened, 1, forget=[by_name(1), by_name(7)])
    assert [p for p, _ in context.partitions()] == [by_name(0)]
    last = sessions.context(opened, 2, wanted(by_name(3)), forget=[by_name(0), by_name(3)])
    assert isinstance(last, SessionlessFetchContext), "added and forgotten at once: the session is empty"
    assert sessions.respond(last) == (0, 0, [by_name(3)])
    assert sessions.cache.get(opened) is None


def test_a_partition_added_to_a_session_is_answered_in_full_once() -> None:
    sessions = Sessions()
    opened = sessions.open(by_name(0))
    assert sessions.respond(sessions.context(opened, 1, wanted(by_name(1))))[2] == [by_name(1)]
    assert sessions.respond(sessions.context(opened, 2))[2] == []


def test_a_request_answered_after_its_session_moved_on_is_invalid_fetch_session_epoch() -> None:
    """Two requests in flight with consecutive epochs: the first, answered last (it waited in
    purgatory), finds the session's epoch moved on and is refused with the session's id."""
    sessions = Sessions()
    opened = sessions.open(by_name(0))
    parked = sessions.context(opened, 1)
    sessions.respond(sessions.context(opened, 2))
    assert sessions.respond(parked) == (Errors.INVALID_FETCH_SESSION_EPOCH.code, opened, [])


def test_the_session_epoch_wraps_from_int32_max_to_1() -> None:
    sessions = Sessions()
    opened = sessions.open(by_name(0))
    session = sessions.cache.get(opened)
    assert session is not None
    session.epoch = INT32_MAX
    assert isinstance(sessions.context(opened, INT32_MAX), IncrementalFetchContext) and session.epoch == 1


def test_a_partition_of_an_unknown_topic_id_stays_in_the_session_and_gets_its_name_later() -> None:
    sessions = Sessions()
    unknown = by_id(0, uuid.UUID(int=0xB2), topic=None)
    opened = sessions.open(by_id(0), unknown, version=13)
    names = {uuid.UUID(int=0xB2): "late"}
    context = sessions.cache.new_context(13, opened, 1, False, {}, [], names.get, T0)
    assert [p for p, _ in context.partitions()] == [by_id(0), by_id(0, uuid.UUID(int=0xB2), topic="late")]


# -- the cache: slots, shards, eviction ----------------------------------------------------------


def test_eight_slots_give_one_session_per_shard_in_round_robin_and_then_none() -> None:
    sessions = Sessions(slots=8)
    opened = [sessions.open(by_name(p)) for p in range(8)]
    session_id_range = INT32_MAX // 8
    assert [session_id // session_id_range for session_id in opened] == list(range(8))
    assert sessions.open(by_name(8)) == 0, "the cache is full: the full fetch is answered without a session"
    sessions.cache.check_valid()
    sessions.respond(sessions.context(opened[1], FINAL_EPOCH))  # frees shard 1, next in turn
    assert sessions.open(by_name(9)) // session_id_range == 1


def test_fewer_slots_than_shards_means_no_session_at_all() -> None:
    assert Sessions(slots=7).open(by_name(0)) == 0


def test_a_session_unused_for_more_than_the_eviction_time_makes_room() -> None:
    sessions = Sessions(slots=8)
    for partition in range(8):
        sessions.open(by_name(partition))
    first_shard = sessions.cache.shards[0]
    (stale,) = first_shard.sessions
    assert sessions.open(by_name(8), now_ms=T0 + MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS) == 0  # not more
    for _ in range(7):  # turn the round robin back to shard 0
        sessions.open(by_name(9), now_ms=T0 + 1)
    replacement = sessions.open(by_name(8), now_ms=T0 + MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS + 1)
    assert replacement != 0 and list(first_shard.sessions) == [replacement] and stale != replacement


def test_a_followers_session_evicts_a_consumers_but_not_the_other_way_round() -> None:
    sessions = Sessions(slots=8)
    consumer = sessions.open(by_name(0))
    for partition in range(7):
        sessions.open(by_name(partition), privileged=True)
    follower = sessions.open(by_name(0), privileged=True)  # shard 0 again: takes the consumer's place
    assert follower != 0 and sessions.cache.get(consumer) is None
    for _ in range(7):
        sessions.open(by_name(1))
    assert sessions.open(by_name(0), by_name(1), by_name(2)) == 0, "a consumer never evicts a follower"
    sessions.cache.check_valid()


def test_a_followers_session_is_evicted_by_another_follower_only_once_old() -> None:
    sessions = Sessions(slots=8)
    first = sessions.open(by_name(0), privileged=True)
    for partition in range(7):
        sessions.open(by_name(partition), privileged=True)
    assert sessions.open(by_name(0), by_name(1), privileged=True, now_ms=T0 + 1) == 0, "young: not evictable"
    later = T0 + MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS + 1
    sessions.context(first, 1, now_ms=later)  # used now: not stale, but older than the eviction time
    for _ in range(7):
        sessions.open(by_name(0), privileged=True, now_ms=later)
    assert sessions.open(by_name(0), by_name(1), privileged=True, now_ms=later) != 0
    assert sessions.cache.get(first) is None


def test_a_consumer_evicts_an_older_consumer_session_only_with_more_partitions() -> None:
    """A consumer's session is evictable by other consumers once it is older than the eviction time
    (as of its last use), and then only by a session with strictly more partitions."""
    sessions = Sessions(slots=8)
    old = sessions.open(by_name(0), by_name(1))
    for partition in range(7):
        sessions.open(by_name(partition), now_ms=T0)
    later = T0 + MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS + 1
    sessions.context(old, 1, now_ms=later)  # used now: not stale, but older than the eviction time
    for size in (1, 2):  # fewer or as many partitions: no room (each try is shard 0's turn)
        assert sessions.open(*[by_name(p) for p in range(size)], now_ms=later) == 0
        for _ in range(7):
            sessions.open(by_name(0), now_ms=later)
    assert sessions.open(by_name(0), by_name(1), by_name(2), now_ms=later) != 0
    assert sessions.cache.get(old) is None


def test_a_young_consumer_session_is_not_evicted_by_a_bigger_one() -> None:
    sessions = Sessions(slots=8)
    young = sessions.open(by_name(0))
    for partition in range(7):
        sessions.open(by_name(partition))
    assert sessions.open(*[by_name(p) for p in range(50)], now_ms=T0 + 1000) == 0
    assert sessions.cache.get(young) is not None


def test_the_cache_counts_the_partitions_it_holds() -> None:
    sessions = Sessions()
    first = sessions.open(by_name(0), by_name(1))
    sessions.open(by_name(2))
    assert sessions.cache.total_partitions == 3
    sessions.context(first, 1, wanted(by_name(5)))
    assert sessions.cache.total_partitions == 4
    sessions.cache.check_valid()


# -- the Fetch handler on the sans-IO broker -----------------------------------------------------


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    harness = Harness(tmp_path, **{"num.partitions": "2"})
    harness.call("CreateTopics", 5, topics=[API_BY_NAME["CreateTopics"].request.struct("CreatableTopic").make(
        name="t", num_partitions=2, replication_factor=1, configs=[])], timeout_ms=1000, validate_only=False)
    return harness


def fetch_frame(harness: Harness, session_id: int, epoch: int, partitions: list[tuple[int, int]],
                max_wait_ms: int = 0) -> bytes:
    topics = [FETCH.request.struct("FetchTopic").make(topic="t", partitions=[
        FETCH.request.struct("FetchPartition").make(partition=p, fetch_offset=o, partition_max_bytes=1 << 20)
        for p, o in partitions])] if partitions else []
    return harness.frame("Fetch", 12, replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=1, max_bytes=1 << 20,
                         isolation_level=0, session_id=session_id, session_epoch=epoch, topics=topics,
                         forgotten_topics_data=[])


def carried(body) -> list[int]:  # type: ignore[no-untyped-def]
    return [p.partition_index for topic in body.responses for p in topic.partitions]


def produce(harness: Harness, partition: int) -> None:
    batch = build_batch([SimpleRecord(value=b"v", timestamp=T0)])
    produce_api = API_BY_NAME["Produce"]
    harness.call("Produce", 9, acks=-1, timeout_ms=1000, topic_data=[produce_api.request.struct(
        "TopicProduceData").make(name="t", partition_data=[produce_api.request.struct(
            "PartitionProduceData").make(index=partition, records=batch)])])


def test_the_handler_opens_a_session_and_answers_incremental_fetches_with_changes_only(harness: Harness) -> None:
    opened = harness.decode("Fetch", 12, harness.broker.handle_frame(fetch_frame(harness, 0, 0, [(0, 0), (1, 0)]),
                                                                      harness.now_ms).result)
    assert opened.session_id != 0 and carried(opened) == [0, 1]
    quiet_body = harness.decode("Fetch", 12, harness.broker.handle_frame(
        fetch_frame(harness, opened.session_id, 1, []), harness.now_ms).result)
    assert (quiet_body.error_code, quiet_body.session_id, carried(quiet_body)) == (0, opened.session_id, [])
    produce(harness, 1)
    changed = harness.decode("Fetch", 12, harness.broker.handle_frame(
        fetch_frame(harness, opened.session_id, 2, []), harness.now_ms).result)
    assert carried(changed) == [1] and changed.responses[0].partitions[0].high_watermark == 1


def test_a_parked_incremental_fetch_wakes_on_new_data_in_a_session_partition(harness: Harness) -> None:
    opened = harness.decode("Fetch", 12, harness.broker.handle_frame(fetch_frame(harness, 0, 0, [(0, 0), (1, 0)]),
                                                                      harness.now_ms).result)
    parked = harness.broker.handle_frame(fetch_frame(harness, opened.session_id, 1, [], max_wait_ms=5000),
                                         harness.now_ms)
    assert not parked.done, "nothing to read: the incremental fetch waits in purgatory"
    parked_id = harness.correlation_id
    duplicate = harness.decode("Fetch", 12, harness.broker.handle_frame(
        fetch_frame(harness, opened.session_id, 1, []), harness.now_ms).result)
    assert duplicate.error_code == Errors.INVALID_FETCH_SESSION_EPOCH.code  # epoch 1 was taken on arrival
    produce(harness, 0)
    assert parked.done
    woken = harness.decode("Fetch", 12, parked.result, correlation_id=parked_id)
    assert (woken.error_code, carried(woken)) == (0, [0])


def test_a_parked_fetch_whose_session_moved_on_is_refused_with_the_session_id(harness: Harness) -> None:
    opened = harness.decode("Fetch", 12, harness.broker.handle_frame(fetch_frame(harness, 0, 0, [(0, 0)]),
                                                                      harness.now_ms).result)
    parked = harness.broker.handle_frame(fetch_frame(harness, opened.session_id, 1, [], max_wait_ms=5000),
                                         harness.now_ms)
    parked_id = harness.correlation_id
    harness.broker.handle_frame(fetch_frame(harness, opened.session_id, 2, []), harness.now_ms)
    harness.advance(5000)
    refused = harness.decode("Fetch", 12, parked.result, correlation_id=parked_id)
    assert (refused.error_code, refused.session_id, refused.responses) == (
        Errors.INVALID_FETCH_SESSION_EPOCH.code, opened.session_id, [])


def test_the_handler_takes_the_cache_size_from_the_broker_config(tmp_path: Path) -> None:
    harness = Harness(tmp_path, **{"max.incremental.fetch.session.cache.slots": "7"})
    body = harness.call("Fetch", 12, replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20,
                        isolation_level=0, session_id=0, session_epoch=0, topics=[], forgotten_topics_data=[])
    assert (body.error_code, body.session_id) == (0, 0)
