"""KIP-227 fetch sessions on the wire, the same raw requests against the reference broker and
Apache Kafka 4.3.1 (``kafka`` marker): which partitions each answer carries, in which order, and
the session errors.  The expectations were read off Kafka; the reference must give the same."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.apache_kafka import KafkaCluster
from conformance.fixtures import free_port_block
from reference.broker.embedded import EmbeddedBroker
from reference.errors import Errors
from reference.protocol.apis import API_BY_NAME
from reference.protocol.schema import Data
from reference.records.batch import SimpleRecord, build_batch

from .conftest import FAST_BROKER_CONFIG, RawClient

FETCH = API_BY_NAME["Fetch"]
METADATA = API_BY_NAME["Metadata"]
BY_NAME, BY_ID = 12, 17  # the newest Fetch naming topics, and one naming them by id
SESSION_ID_RANGE = (2**31 - 1) // 8  # ids per fetch-session cache shard
UNKNOWN_SERVER_ERROR = -1

Topic = str | uuid.UUID


def fetch(client: RawClient, version: int, session_id: int, epoch: int,
          topics: list[tuple[Topic, list[tuple[int, int]]]] = (),  # type: ignore[assignment]
          forgotten: list[tuple[Topic, list[int]]] = ()) -> Data:  # type: ignore[assignment]
    """A consumer's Fetch at ``version``; topics are names below v13 and ids from v13."""
    key = "topic_id" if version >= 13 else "topic"
    wanted = [FETCH.request.struct("FetchTopic").make(**{key: topic}, partitions=[
        FETCH.request.struct("FetchPartition").make(partition=p, fetch_offset=offset, partition_max_bytes=1 << 20)
        for p, offset in partitions]) for topic, partitions in topics]
    dropped = [FETCH.request.struct("ForgottenTopic").make(**{key: topic}, partitions=list(partitions))
               for topic, partitions in forgotten]
    return client.call("Fetch", version, replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20,
                       isolation_level=0, session_id=session_id, session_epoch=epoch, topics=wanted,
                       forgotten_topics_data=dropped)


def carried(body: Data, version: int) -> list[tuple[Topic, int, int, int, int, int]]:
    """(topic, partition, error, high watermark, log start offset, records size) in answer order."""
    return [(topic.topic_id if version >= 13 else topic.topic, p.partition_index, p.error_code, p.high_watermark,
             p.log_start_offset, len(p.records or b"")) for topic in body.responses for p in topic.partitions]


def topic_id(client: RawClient, name: str) -> uuid.UUID:
    wanted = METADATA.request.struct("MetadataRequestTopic").make(topic_id=uuid.UUID(int=0), name=name)
    body = client.call("Metadata", 12, topics=[wanted], allow_auto_topic_creation=False,
                       include_topic_authorized_operations=False)
    return uuid.UUID(str(body.topics[0].topic_id))


def new_topic(client: RawClient, partitions: int) -> tuple[str, uuid.UUID]:
    name = f"sessions-{uuid.uuid4().hex[:10]}"
    assert client.create_topic(name, partitions=partitions).error_code == 0
    for _ in range(100):  # Kafka's new partitions may need a moment to get their leader
        if all(fetch(client, BY_NAME, 0, -1, [(name, [(p, 0)])]).responses[0].partitions[0].error_code == 0
               for p in range(partitions)):
            return name, topic_id(client, name)
        time.sleep(0.1)
    raise AssertionError(f"{name} never became readable")


def one_record(client: RawClient, topic: str, partition: int) -> None:
    batch = build_batch([SimpleRecord(value=b"v", timestamp=int(time.time() * 1000))])
    assert client.produce(topic, partition, batch).error_code == 0


def test_a_session_by_topic_id_carries_errors_last_and_changed_partitions_only(bootstrap: str) -> None:
    """A full fetch answers the partitions it read in request order, then those the metadata lacks
    (unknown topic id: UNKNOWN_TOPIC_ID; unknown partition: UNKNOWN_TOPIC_OR_PARTITION), repeating a
    topic when its partitions are no longer adjacent.  Incremental fetches then carry partitions
    with records, with a moved high watermark, or with an error, and nothing else."""
    with RawClient(bootstrap, timeout=60) as client:
        name, three = new_topic(client, 3)
        _, one = new_topic(client, 1)
        for partition in range(3):
            one_record(client, name, partition)
        unknown = uuid.uuid4()
        opened = fetch(client, BY_ID, 0, 0, [(three, [(0, 0), (1, 1), (2, 0)]), (unknown, [(0, 0)]),
                                              (one, [(0, 0), (5, 0)])])
        assert opened.error_code == 0 and opened.session_id != 0
        batch = carried(opened, BY_ID)[0][5]
        unknown_topic_id = (unknown, 0, Errors.UNKNOWN_TOPIC_ID.code, -1, -1, 0)
        no_partition_5 = (one, 5, Errors.UNKNOWN_TOPIC_OR_PARTITION.code, -1, -1, 0)
        assert carried(opened, BY_ID) == [(three, 0, 0, 1, 0, batch), (three, 1, 0, 1, 0, 0), (three, 2, 0, 1, 0, batch),
                                          (one, 0, 0, 0, 0, 0), unknown_topic_id, no_partition_5]
        session = opened.session_id

        again = fetch(client, BY_ID, session, 1)  # p0 and p2 still read from 0: records again
        assert (again.error_code, again.session_id) == (0, session)
        assert carried(again, BY_ID) == [(three, 0, 0, 1, 0, batch), (three, 2, 0, 1, 0, batch),
                                         unknown_topic_id, no_partition_5]
        assert fetch(client, BY_ID, session, 1).error_code == Errors.INVALID_FETCH_SESSION_EPOCH.code

        moved = fetch(client, BY_ID, session, 2, [(three, [(0, 1)])])  # p0 moves to its log end
        assert carried(moved, BY_ID) == [(three, 2, 0, 1, 0, batch), unknown_topic_id, no_partition_5]
        one_record(client, name, 1)
        grown = fetch(client, BY_ID, session, 3)
        assert carried(grown, BY_ID) == [(three, 1, 0, 2, 0, batch), (three, 2, 0, 1, 0, batch),
                                         unknown_topic_id, no_partition_5]

        switched = fetch(client, BY_NAME, session, 4, [(name, [(0, 1)])])
        assert (switched.error_code, switched.session_id, switched.responses) == (
            Errors.FETCH_SESSION_TOPIC_ID_ERROR.code, 0, [])
        emptied = fetch(client, BY_ID, session, 4, forgotten=[(three, [0, 1, 2]), (unknown, [0]), (one, [0, 5])])
        assert (emptied.error_code, emptied.session_id, emptied.responses) == (0, 0, [])
        assert fetch(client, BY_ID, session, 5).error_code == Errors.FETCH_SESSION_ID_NOT_FOUND.code


def test_sessions_by_name_close_replace_and_survive_errors(bootstrap: str) -> None:
    """Below v13: a full fetch naming an existing session with epoch 0 replaces it; epoch -1 closes
    it and answers without a session; a session of no partitions is created, and the incremental
    fetch that finds it empty closes it and answers sessionless."""
    with RawClient(bootstrap, timeout=60) as client:
        name, _ = new_topic(client, 3)
        one_record(client, name, 0)
        one_record(client, name, 1)
        one_record(client, name, 1)
        opened = fetch(client, BY_NAME, 0, 0, [(name, [(0, 0), (1, 0)]), ("no-such-topic-here", [(0, 0)])])
        batch = carried(opened, BY_NAME)[0][5]
        assert carried(opened, BY_NAME) == [(name, 0, 0, 1, 0, batch), (name, 1, 0, 2, 0, 2 * batch),
                                            ("no-such-topic-here", 0, Errors.UNKNOWN_TOPIC_OR_PARTITION.code, -1, -1, 0)]
        first = opened.session_id
        assert fetch(client, BY_ID, first, 1).error_code == Errors.FETCH_SESSION_TOPIC_ID_ERROR.code
        assert [row[:2] for row in carried(fetch(client, BY_NAME, first, 1), BY_NAME)] == [
            (name, 0), (name, 1), ("no-such-topic-here", 0)]

        replaced = fetch(client, BY_NAME, first, 0, [(name, [(2, 0)])])
        assert replaced.session_id not in (0, first) and carried(replaced, BY_NAME) == [(name, 2, 0, 0, 0, 0)]
        assert fetch(client, BY_NAME, first, 2).error_code == Errors.FETCH_SESSION_ID_NOT_FOUND.code
        closed = fetch(client, BY_NAME, replaced.session_id, -1, [(name, [(2, 0)])])
        assert (closed.error_code, closed.session_id, carried(closed, BY_NAME)) == (0, 0, [(name, 2, 0, 0, 0, 0)])
        assert fetch(client, BY_NAME, replaced.session_id, 1).error_code == Errors.FETCH_SESSION_ID_NOT_FOUND.code
        assert fetch(client, BY_NAME, 0, 7).error_code == Errors.FETCH_SESSION_ID_NOT_FOUND.code

        empty = fetch(client, BY_NAME, 0, 0)
        assert (empty.error_code, empty.responses) == (0, []) and empty.session_id != 0
        after = fetch(client, BY_NAME, empty.session_id, 1)
        assert (after.error_code, after.session_id, after.responses) == (0, 0, [])


@pytest.mark.parametrize("session_id", [2**31 - 1, 8 * SESSION_ID_RANGE, -SESSION_ID_RANGE])
@pytest.mark.parametrize("epoch", [0, -1, 1])
def test_a_session_id_outside_every_cache_shard_fails_the_whole_request(bootstrap: str, session_id: int,
                                                                        epoch: int) -> None:
    """Kafka finds a session's cache shard as id / ((2^31-1) // 8); ids beyond the eighth shard (or
    that far below zero) throw, and the request is answered UNKNOWN_SERVER_ERROR with the session
    id echoed, below v13 also in every partition."""
    with RawClient(bootstrap, timeout=60) as client:
        name, ident = new_topic(client, 1)
        named = fetch(client, BY_NAME, session_id, epoch, [(name, [(0, 0)])])
        assert (named.error_code, named.session_id) == (UNKNOWN_SERVER_ERROR, session_id)
        assert carried(named, BY_NAME) == [(name, 0, UNKNOWN_SERVER_ERROR, -1, -1, 0)]
        by_id = fetch(client, BY_ID, session_id, epoch, [(ident, [(0, 0)])])
        assert (by_id.error_code, by_id.session_id, by_id.responses) == (UNKNOWN_SERVER_ERROR, session_id, [])
        just_inside = fetch(client, BY_NAME, 8 * SESSION_ID_RANGE - 1, 1)
        assert just_inside.error_code == Errors.FETCH_SESSION_ID_NOT_FOUND.code


# -- a full cache ---------------------------------------------------------------------------------

SMALL_CACHE = {"max.incremental.fetch.session.cache.slots": "8"}


@pytest.fixture(params=["refka", pytest.param("kafka", marks=[pytest.mark.kafka, pytest.mark.slow])])
def small_cache(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh broker with 8 fetch-session slots: one per cache shard."""
    if request.param == "refka":
        with EmbeddedBroker(data_dir=tmp_path / "broker", config={**FAST_BROKER_CONFIG, **SMALL_CACHE}) as embedded:
            yield embedded.bootstrap
        return
    cluster = KafkaCluster(nodes=1, base_port=free_port_block(2), data_dir=tmp_path / "kafka", config=SMALL_CACHE)
    cluster.start()
    try:
        yield f"127.0.0.1:{cluster.nodes[0].port}"
    finally:
        cluster.stop()


def test_a_full_cache_answers_full_fetches_without_a_session(small_cache: str) -> None:
    """8 slots over 8 shards: the first 8 full fetches get sessions, one in each shard in turn; the
    9th finds shard 0 full (no session is stale or evictable yet) and is answered with session id
    0; a closed session frees its shard's slot for the full fetch whose turn it is."""
    with RawClient(small_cache, timeout=60) as client:
        name, _ = new_topic(client, 1)
        opened = [fetch(client, BY_NAME, 0, 0, [(name, [(0, 0)])]).session_id for _ in range(8)]
        assert [session_id // SESSION_ID_RANGE for session_id in opened] == list(range(8))
        refused = fetch(client, BY_NAME, 0, 0, [(name, [(0, 0)])])
        assert (refused.error_code, refused.session_id, len(carried(refused, BY_NAME))) == (0, 0, 1)
        assert fetch(client, BY_NAME, opened[1], -1, [(name, [(0, 0)])]).session_id == 0  # shard 1 is next
        assert fetch(client, BY_NAME, 0, 0, [(name, [(0, 0)])]).session_id // SESSION_ID_RANGE == 1
        assert fetch(client, BY_NAME, 0, 0, [(name, [(0, 0)])]).session_id == 0
        assert fetch(client, BY_NAME, opened[0], 1).error_code == 0, "the full cache kept its sessions"


# -- a real client -------------------------------------------------------------------------------


@pytest.mark.clients
def test_kafka_python_reads_everything_through_one_incremental_fetch_session(broker: EmbeddedBroker) -> None:
    """kafka-python 3 fetches with a session (v7+): the reference broker keeps one session for its
    three partitions, serves the later records through incremental fetches, and nothing is lost or
    read twice."""
    from kafka import KafkaConsumer, TopicPartition

    with RawClient(broker.bootstrap, timeout=60) as client:
        name, _ = new_topic(client, 3)
        for partition in range(3):
            one_record(client, name, partition)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, fetch_max_wait_ms=100)
    try:
        consumer.assign([TopicPartition(name, partition) for partition in range(3)])
        read: list[tuple[int, int]] = []

        def poll_until(count: int) -> None:
            deadline = time.monotonic() + 30
            while len(read) < count and time.monotonic() < deadline:
                for records in consumer.poll(200).values():
                    read.extend((record.partition, record.offset) for record in records)

        poll_until(3)
        with RawClient(broker.bootstrap, timeout=60) as client:
            one_record(client, name, 1)
            one_record(client, name, 1)
        poll_until(5)
    finally:
        consumer.close()
    assert sorted(read) == [(0, 0), (1, 0), (1, 1), (1, 2), (2, 0)]
    assert broker.broker is not None
    ours = [session for shard in broker.broker.fetch_sessions.shards for session in shard.sessions.values()
            if {cached.topic for cached in session.partitions.values()} == {name}]
    assert len(ours) == 1 and len(ours[0]) == 3
    assert ours[0].epoch >= 2, "the later records came through an incremental fetch of the session"
