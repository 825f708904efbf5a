"""CreateTopics and CreatePartitions size caps (Kafka's ``MAX_PARTITIONS_PER_BATCH`` and
``MAX_RECORDS_PER_USER_OP``): one request cannot make the broker create unbounded partitions.

Each case runs against the reference broker and, with the ``kafka`` marker, against Apache Kafka,
with the same assertion.  All CreateTopics cases use ``validate_only`` so they create nothing on
either broker; the CreatePartitions cases grow topics of their own, named per broker run.
"""

from __future__ import annotations

import uuid

from reference.protocol.apis import API_BY_NAME

from .conftest import RawClient

CREATE_TOPICS = API_BY_NAME["CreateTopics"]
CREATE_PARTITIONS = API_BY_NAME["CreatePartitions"]
TOPIC = CREATE_TOPICS.request.struct("CreatableTopic")
TOPIC_CONFIG = CREATE_TOPICS.request.struct("CreatableTopicConfig")
PARTITIONS_TOPIC = CREATE_PARTITIONS.request.struct("CreatePartitionsTopic")
INT32_MAX = (1 << 31) - 1

EXCESSIVE_PARTITIONS = (44, "Excessively large number of partitions per request.")
EXCESSIVE_BATCH = (44, "Unable to perform excessively large batch operation.")
UNKNOWN_SERVER_ERROR = (-1, None)
NONE = (0, None)


def create_topics(bootstrap: str, *topics: tuple[str, int, int]) -> list[tuple[int, str | None]]:
    """validate_only CreateTopics v7 of (name, partitions, configs set): [(error_code, message)]."""
    with RawClient(bootstrap, timeout=60) as client:
        body = client.call("CreateTopics", 7, timeout_ms=30000, validate_only=True, topics=[
            TOPIC.make(name=name, num_partitions=partitions, replication_factor=1,
                       configs=[TOPIC_CONFIG.make(name="retention.ms", value="100000")][:configs])
            for name, partitions, configs in topics])
    return [(t.error_code, t.error_message) for t in body.topics]


def create_partitions(bootstrap: str, *topics: tuple[str, int], validate_only: bool = False) -> dict[str, tuple[int, str | None]]:
    with RawClient(bootstrap, timeout=60) as client:
        body = client.call("CreatePartitions", 3, timeout_ms=30000, validate_only=validate_only, topics=[
            PARTITIONS_TOPIC.make(name=name, count=count, assignments=None) for name, count in topics])
    return {r.name: (r.error_code, r.error_message) for r in body.results}


def test_create_topics_over_ten_thousand_partitions_is_a_policy_violation_for_every_topic(bootstrap: str) -> None:
    assert create_topics(bootstrap, ("cap-a", 10_001, 0)) == [EXCESSIVE_PARTITIONS]
    assert create_topics(bootstrap, ("cap-a", INT32_MAX, 0)) == [EXCESSIVE_PARTITIONS]
    assert create_topics(bootstrap, ("cap-a", 3, 0), ("bad/name", -5, 0), ("cap-b", 10_000, 0)) == [
        EXCESSIVE_PARTITIONS] * 3


def test_create_topics_partition_sum_that_wraps_a_java_int_is_an_unknown_server_error(bootstrap: str) -> None:
    assert create_topics(bootstrap, ("cap-a", INT32_MAX, 0), ("cap-b", 2, 0)) == [UNKNOWN_SERVER_ERROR] * 2


def test_create_topics_over_ten_thousand_metadata_records_is_refused_as_a_whole(bootstrap: str) -> None:
    """One TopicRecord + one record per partition + one per config: 10,000 fit, 10,001 do not."""
    assert create_topics(bootstrap, ("cap-a", 9_999, 0)) == [NONE]
    assert create_topics(bootstrap, ("cap-a", 9_998, 1)) == [NONE]
    assert create_topics(bootstrap, ("cap-a", 10_000, 0)) == [EXCESSIVE_BATCH]
    assert create_topics(bootstrap, ("cap-a", 9_999, 1)) == [EXCESSIVE_BATCH]
    assert create_topics(bootstrap, ("cap-a", 5_000, 0), ("cap-b", 4_999, 0)) == [EXCESSIVE_BATCH] * 2


def test_create_partitions_beyond_ten_thousand_new_partitions_is_an_unknown_server_error(bootstrap: str) -> None:
    name = f"grow-{uuid.uuid4().hex[:8]}"
    with RawClient(bootstrap) as client:
        assert client.create_topic(name, partitions=1).error_code == 0
    assert create_partitions(bootstrap, (name, 10_002), validate_only=True) == {name: UNKNOWN_SERVER_ERROR}
    assert create_partitions(bootstrap, (name, INT32_MAX), validate_only=True) == {name: UNKNOWN_SERVER_ERROR}
    assert create_partitions(bootstrap, (name, 10_001), validate_only=True) == {name: NONE}


def test_create_partitions_counts_new_partitions_across_the_request(bootstrap: str) -> None:
    """5,001 new partitions fit; 5,001 more on a second topic do not, and only that one is refused."""
    first, second = f"grow-{uuid.uuid4().hex[:8]}", f"grow-{uuid.uuid4().hex[:8]}"
    with RawClient(bootstrap) as client:
        assert client.create_topic(first, partitions=1).error_code == 0
        assert client.create_topic(second, partitions=1).error_code == 0
    answers = create_partitions(bootstrap, (first, 5_002), (second, 5_002), validate_only=True)
    assert sorted(answers.values()) == [UNKNOWN_SERVER_ERROR, NONE]
    assert create_partitions(bootstrap, (first, 5_001), (second, 5_001), validate_only=True) == {
        first: NONE, second: NONE}
