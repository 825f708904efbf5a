"""A follower's Fetch at the wire, refka against Apache Kafka (with the ``kafka`` marker): on a
one-broker cluster no other broker is a replica, so a follower fetch is refused the way Kafka's
``Partition.followerReplicaOrThrow`` refuses an unknown replica, and acks=all needs no follower."""

from __future__ import annotations

import time
import uuid

from reference.errors import Errors
from reference.protocol.apis import API_BY_NAME
from reference.protocol.schema import Data

from .conftest import RawClient
from .log.helpers import batch

CREATE_TOPICS = API_BY_NAME["CreateTopics"]
PRODUCE = API_BY_NAME["Produce"]
FETCH = API_BY_NAME["Fetch"]
NOT_A_REPLICA = 77  # no broker has this id


def create_topic(client: RawClient) -> tuple[str, uuid.UUID]:
    name = f"follower-fetch-{uuid.uuid4().hex[:8]}"
    body = client.call("CreateTopics", 7, timeout_ms=30000, validate_only=False, topics=[
        CREATE_TOPICS.request.struct("CreatableTopic").make(name=name, num_partitions=1, replication_factor=1,
                                                           assignments=[], configs=[])])
    assert body.topics[0].error_code == 0, body.topics[0]
    return name, body.topics[0].topic_id


def produce(client: RawClient, topic: str, acks: int) -> Data:
    """Produce one record, retrying (as a client does) while a new topic's leader is not known yet."""
    retriable = {Errors.NOT_LEADER_OR_FOLLOWER.code, Errors.UNKNOWN_TOPIC_OR_PARTITION.code,
                 Errors.LEADER_NOT_AVAILABLE.code}
    for _ in range(100):
        data = PRODUCE.request.struct("PartitionProduceData").make(index=0, records=batch(value=b"v"))
        body = client.call("Produce", 9, acks=acks, timeout_ms=30000, topic_data=[
            PRODUCE.request.struct("TopicProduceData").make(name=topic, partition_data=[data])])
        answer: Data = body.responses[0].partition_responses[0]
        if answer.error_code not in retriable:
            return answer
        time.sleep(0.05)
    raise AssertionError(f"{topic} got no leader")


def follower_fetch(client: RawClient, topic_id: uuid.UUID, replica_id: int, current_leader_epoch: int,
                   version: int = 16) -> Data:
    body = client.call(
        "Fetch", version, replica_id=replica_id,
        replica_state=FETCH.request.struct("ReplicaState").make(replica_id=replica_id, replica_epoch=-1),
        max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0, session_id=0, session_epoch=-1,
        topics=[FETCH.request.struct("FetchTopic").make(topic_id=topic_id, partitions=[
            FETCH.request.struct("FetchPartition").make(partition=0, current_leader_epoch=current_leader_epoch,
                                                        fetch_offset=0, last_fetched_epoch=-1, log_start_offset=0,
                                                        partition_max_bytes=1 << 20)])],
        forgotten_topics_data=[], rack_id="")
    answer: Data = body.responses[0].partitions[0]
    return answer


def test_acks_all_on_a_single_replica_is_answered_at_once(bootstrap: str) -> None:
    with RawClient(bootstrap, timeout=60) as client:
        topic, _ = create_topic(client)
        answer = produce(client, topic, acks=-1)
        assert (answer.error_code, answer.base_offset) == (0, 0)


def test_a_fetch_from_a_broker_that_is_not_a_replica_is_refused(bootstrap: str) -> None:
    with RawClient(bootstrap, timeout=60) as client:
        topic, topic_id = create_topic(client)
        produce(client, topic, acks=-1)
        with_epoch = follower_fetch(client, topic_id, NOT_A_REPLICA, current_leader_epoch=0)
        assert with_epoch.error_code == Errors.UNKNOWN_LEADER_EPOCH.code
        without_epoch = follower_fetch(client, topic_id, NOT_A_REPLICA, current_leader_epoch=-1)
        assert without_epoch.error_code == Errors.NOT_LEADER_OR_FOLLOWER.code
