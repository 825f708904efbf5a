"""The wire shapes of KRaft's quorum APIs: building and reading the request and response bodies.

Theory of operation
-------------------
:mod:`reference.controller.raft` decides *what* to say; this module says it in the shapes Kafka's
``RaftUtil`` builds, so the rules and the layouts can be read apart.  Every quorum API names one
topic-partition, the metadata log ``__cluster_metadata``-0 (by name, or from Fetch v13 by the fixed
topic id ``AAAAAAAAAAAAAAAAAAAAAQ``), and every answer carries the leader id and epoch the answering
node knows, so a stale node catches up from any reply.

=====================  ===  ================  ==================================================
API                    key  versions sent     what the partition data carries
=====================  ===  ================  ==================================================
Fetch                    1  17                fetch offset, last fetched epoch, leader epoch
Vote                    52  2 (PreVote)       candidate epoch and id, last (epoch, offset)
BeginQuorumEpoch        53  1                 the new leader and its epoch
EndQuorumEpoch          54  1                 the resigning leader, preferred successors
DescribeQuorum          55  (answered only)   leader, epoch, HW, each replica's end offset
FetchSnapshot           59  1                 snapshot id and byte position
=====================  ===  ================  ==================================================

A request naming another topic or more than one partition is ``INVALID_REQUEST`` (Kafka has one
Raft partition); a ``ClusterId`` that is set and not ours is ``INCONSISTENT_CLUSTER_ID``.  Both are
top-level errors, decided by :func:`single_partition` before any rule runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from reference.errors import ErrorCode, Errors, by_name
from reference.protocol.apis import API_BY_KEY
from reference.protocol.primitives import METADATA_TOPIC_UUID
from reference.protocol.schema import Data, Message

METADATA_TOPIC = "__cluster_metadata"
METADATA_PARTITION = 0
METADATA_TOPIC_ID = METADATA_TOPIC_UUID  # "AAAAAAAAAAAAAAAAAAAAAQ", fixed by Kafka
CONTROLLER_LISTENER = "CONTROLLER"

# Errors of the registry that its attribute table does not spell out.
INCONSISTENT_VOTER_SET: ErrorCode = by_name["INCONSISTENT_VOTER_SET"]
INCONSISTENT_CLUSTER_ID: ErrorCode = by_name["INCONSISTENT_CLUSTER_ID"]
SNAPSHOT_NOT_FOUND: ErrorCode = by_name["SNAPSHOT_NOT_FOUND"]
POSITION_OUT_OF_RANGE: ErrorCode = by_name["POSITION_OUT_OF_RANGE"]


class ApiKey(IntEnum):
    """The APIs a KRaft voter serves and sends."""

    FETCH = 1
    VOTE = 52
    BEGIN_QUORUM_EPOCH = 53
    END_QUORUM_EPOCH = 54
    DESCRIBE_QUORUM = 55
    FETCH_SNAPSHOT = 59


# The versions this node sends (the newest refka declares; Kafka 4.3 sends the same).
SEND_VERSION: dict[ApiKey, int] = {
    ApiKey.FETCH: 18,
    ApiKey.VOTE: 2,
    ApiKey.BEGIN_QUORUM_EPOCH: 1,
    ApiKey.END_QUORUM_EPOCH: 1,
    ApiKey.FETCH_SNAPSHOT: 1,
}


def message_for(api_key: int) -> tuple[Message, Message]:
    """``(request, response)`` schemas of a quorum API, from the protocol registry."""
    api = API_BY_KEY[api_key]
    return api.request, api.response


@dataclass(frozen=True)
class OffsetAndEpoch:
    """Kafka's ``OffsetAndEpoch``: a DivergingEpoch, a SnapshotId, an end offset for an epoch."""

    offset: int
    epoch: int


# -- reading requests and responses ------------------------------------------------------------------------


def single_partition(body: Data, cluster_id: str, topic_name_attribute: str = "topic_name") -> tuple[Data, ErrorCode | None]:
    """The one metadata partition of a Vote/BeginQuorumEpoch/EndQuorumEpoch/FetchSnapshot request,
    or the top-level error to answer instead."""
    if body.get("cluster_id") is not None and body.cluster_id != cluster_id:
        return Data(), INCONSISTENT_CLUSTER_ID
    topics = body.topics
    if len(topics) != 1 or getattr(topics[0], topic_name_attribute) != METADATA_TOPIC or len(topics[0].partitions) != 1:
        return Data(), Errors.INVALID_REQUEST
    partition: Data = topics[0].partitions[0]
    if partition.get("partition_index", partition.get("partition")) != METADATA_PARTITION:
        return Data(), Errors.INVALID_REQUEST
    return partition, None


def fetch_partition(body: Data, version: int, cluster_id: str) -> tuple[Data, ErrorCode | None]:
    """The metadata partition of a Fetch (named by topic id from v13), or the top-level error."""
    if body.get("cluster_id") is not None and body.cluster_id != cluster_id:
        return Data(), INCONSISTENT_CLUSTER_ID
    topics = body.topics
    if len(topics) != 1 or len(topics[0].partitions) != 1:
        return Data(), Errors.INVALID_REQUEST
    named = topics[0].topic_id == METADATA_TOPIC_ID if version >= 13 else topics[0].topic == METADATA_TOPIC
    partition: Data = topics[0].partitions[0]
    if not named or partition.partition != METADATA_PARTITION:
        return Data(), Errors.INVALID_REQUEST
    return partition, None


def fetch_replica_id(body: Data, version: int) -> int:
    """The fetching replica: in ``ReplicaState`` from v15 (KIP-903), ``ReplicaId`` before."""
    replica_id: int = body.replica_state.replica_id if version >= 15 else body.replica_id
    return replica_id


def response_partition(body: Data, topic_name_attribute: str = "topic_name") -> Data | None:
    """The metadata partition of a response; None for a top-level error or an unexpected shape."""
    if body.error_code != 0:
        return None
    topics = body.topics
    if len(topics) != 1 or getattr(topics[0], topic_name_attribute) != METADATA_TOPIC or len(topics[0].partitions) != 1:
        return None
    partition: Data = topics[0].partitions[0]
    return partition


# -- Vote -------------------------------------------------------------------------------------------------


def vote_request(cluster_id: str, voter_id: int, candidate_id: int, epoch: int, last: OffsetAndEpoch,
                 pre_vote: bool) -> Data:
    request, _ = message_for(ApiKey.VOTE)
    partition = request.struct("PartitionData").make(
        partition_index=METADATA_PARTITION, replica_epoch=epoch, replica_id=candidate_id,
        last_offset_epoch=last.epoch, last_offset=last.offset, pre_vote=pre_vote,
    )
    topic = request.struct("TopicData").make(topic_name=METADATA_TOPIC, partitions=[partition])
    return request.make(cluster_id=cluster_id, voter_id=voter_id, topics=[topic])


def vote_response(error: ErrorCode, leader_id: int, epoch: int, granted: bool) -> Data:
    _, response = message_for(ApiKey.VOTE)
    partition = response.struct("PartitionData").make(
        partition_index=METADATA_PARTITION, error_code=error.code, leader_id=leader_id, leader_epoch=epoch,
        vote_granted=granted,
    )
    topic = response.struct("TopicData").make(topic_name=METADATA_TOPIC, partitions=[partition])
    return response.make(error_code=0, topics=[topic])


def top_level_error(api_key: ApiKey, error: ErrorCode) -> Data:
    """A response that carries only a top-level error and no partitions."""
    _, response = message_for(api_key)
    if api_key is ApiKey.FETCH:
        return response.make(error_code=error.code, responses=[])
    return response.make(error_code=error.code, topics=[])


# -- BeginQuorumEpoch / EndQuorumEpoch ----------------------------------------------------------------------


def begin_quorum_epoch_request(cluster_id: str, voter_id: int, leader_id: int, epoch: int) -> Data:
    request, _ = message_for(ApiKey.BEGIN_QUORUM_EPOCH)
    partition = request.struct("PartitionData").make(
        partition_index=METADATA_PARTITION, leader_id=leader_id, leader_epoch=epoch
    )
    topic = request.struct("TopicData").make(topic_name=METADATA_TOPIC, partitions=[partition])
    return request.make(cluster_id=cluster_id, voter_id=voter_id, topics=[topic], leader_endpoints=[])


def end_quorum_epoch_request(cluster_id: str, leader_id: int, epoch: int, preferred: list[int]) -> Data:
    """EndQuorumEpoch: v0 lists ``PreferredSuccessors`` ids, v1 ``PreferredCandidates`` structs."""
    request, _ = message_for(ApiKey.END_QUORUM_EPOCH)
    candidates = [request.struct("ReplicaInfo").make(candidate_id=voter) for voter in preferred]
    partition = request.struct("PartitionData").make(
        partition_index=METADATA_PARTITION, leader_id=leader_id, leader_epoch=epoch,
        preferred_successors=list(preferred), preferred_candidates=candidates,
    )
    topic = request.struct("TopicData").make(topic_name=METADATA_TOPIC, partitions=[partition])
    return request.make(cluster_id=cluster_id, topics=[topic], leader_endpoints=[])


def preferred_successors(partition: Data, version: int) -> list[int]:
    if version >= 1:
        return [candidate.candidate_id for candidate in partition.preferred_candidates]
    return list(partition.preferred_successors)


def quorum_epoch_response(api_key: ApiKey, error: ErrorCode, leader_id: int, epoch: int) -> Data:
    """The answer to BeginQuorumEpoch or EndQuorumEpoch (the two share a layout)."""
    _, response = message_for(api_key)
    partition = response.struct("PartitionData").make(
        partition_index=METADATA_PARTITION, error_code=error.code, leader_id=leader_id, leader_epoch=epoch
    )
    topic = response.struct("TopicData").make(topic_name=METADATA_TOPIC, partitions=[partition])
    return response.make(error_code=0, topics=[topic])


# -- Fetch ---------------------------------------------------------------------------------------------------


def fetch_request(cluster_id: str, replica_id: int, epoch: int, fetch_offset: int, last_fetched_epoch: int,
                  log_start_offset: int, max_wait_ms: int, max_bytes: int, high_watermark: int = -1) -> Data:
    """``high_watermark``: the HW the fetching replica knows, -1 if none (v18, KIP-1166)."""
    request, _ = message_for(ApiKey.FETCH)
    partition = request.struct("FetchPartition").make(
        partition=METADATA_PARTITION, current_leader_epoch=epoch, fetch_offset=fetch_offset,
        last_fetched_epoch=last_fetched_epoch, log_start_offset=log_start_offset, partition_max_bytes=max_bytes,
        high_watermark=high_watermark,
    )
    topic = request.struct("FetchTopic").make(topic=METADATA_TOPIC, topic_id=METADATA_TOPIC_ID, partitions=[partition])
    return request.make(
        cluster_id=cluster_id,
        replica_id=replica_id,
        replica_state=request.struct("ReplicaState").make(replica_id=replica_id, replica_epoch=-1),
        max_wait_ms=max_wait_ms,
        min_bytes=0,
        max_bytes=max_bytes,
        topics=[topic],
        forgotten_topics_data=[],
    )


def fetch_response(error: ErrorCode, leader_id: int, epoch: int, *, high_watermark: int = -1, log_start_offset: int = -1,
                   records: bytes = b"", diverging: OffsetAndEpoch | None = None,
                   snapshot: OffsetAndEpoch | None = None) -> Data:
    """A Fetch answer for the metadata partition: records, or a DivergingEpoch, or a SnapshotId."""
    _, response = message_for(ApiKey.FETCH)
    partition = response.struct("PartitionData").make(
        partition_index=METADATA_PARTITION,
        error_code=error.code,
        high_watermark=high_watermark,
        last_stable_offset=-1,
        log_start_offset=log_start_offset,
        diverging_epoch=response.struct("EpochEndOffset").make(
            epoch=diverging.epoch if diverging else -1, end_offset=diverging.offset if diverging else -1
        ),
        current_leader=response.struct("LeaderIdAndEpoch").make(leader_id=leader_id, leader_epoch=epoch),
        snapshot_id=response.struct("SnapshotId").make(
            end_offset=snapshot.offset if snapshot else -1, epoch=snapshot.epoch if snapshot else -1
        ),
        aborted_transactions=None,
        records=records,
    )
    topic = response.struct("FetchableTopicResponse").make(
        topic=METADATA_TOPIC, topic_id=METADATA_TOPIC_ID, partitions=[partition]
    )
    return response.make(error_code=0, session_id=0, responses=[topic])


def fetch_response_partition(body: Data) -> Data | None:
    if body.error_code != 0 or len(body.responses) != 1 or len(body.responses[0].partitions) != 1:
        return None
    partition: Data = body.responses[0].partitions[0]
    return partition


def diverging_epoch(partition: Data) -> OffsetAndEpoch | None:
    diverging = partition.diverging_epoch
    return OffsetAndEpoch(diverging.end_offset, diverging.epoch) if diverging.epoch >= 0 else None


def snapshot_id(partition: Data) -> OffsetAndEpoch | None:
    snapshot = partition.snapshot_id
    if snapshot.epoch < 0 or snapshot.end_offset < 0:
        return None
    return OffsetAndEpoch(snapshot.end_offset, snapshot.epoch)


# -- FetchSnapshot ---------------------------------------------------------------------------------------------


def fetch_snapshot_request(cluster_id: str, replica_id: int, epoch: int, snapshot: OffsetAndEpoch, position: int,
                           max_bytes: int) -> Data:
    request, _ = message_for(ApiKey.FETCH_SNAPSHOT)
    partition = request.struct("PartitionSnapshot").make(
        partition=METADATA_PARTITION,
        current_leader_epoch=epoch,
        snapshot_id=request.struct("SnapshotId").make(end_offset=snapshot.offset, epoch=snapshot.epoch),
        position=position,
    )
    topic = request.struct("TopicSnapshot").make(name=METADATA_TOPIC, partitions=[partition])
    return request.make(cluster_id=cluster_id, replica_id=replica_id, max_bytes=max_bytes, topics=[topic])


def fetch_snapshot_response(error: ErrorCode, leader_id: int, epoch: int, snapshot: OffsetAndEpoch, *, size: int = 0,
                            position: int = 0, chunk: bytes = b"") -> Data:
    _, response = message_for(ApiKey.FETCH_SNAPSHOT)
    data = response.struct("PartitionSnapshot").make(
        index=METADATA_PARTITION,
        error_code=error.code,
        snapshot_id=response.struct("SnapshotId").make(end_offset=snapshot.offset, epoch=snapshot.epoch),
        current_leader=response.struct("LeaderIdAndEpoch").make(leader_id=leader_id, leader_epoch=epoch),
        size=size,
        position=position,
        unaligned_records=chunk,
    )
    topic = response.struct("TopicSnapshot").make(name=METADATA_TOPIC, partitions=[data])
    return response.make(error_code=0, topics=[topic])


# -- DescribeQuorum ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicaDescription:
    """One row of DescribeQuorum (KIP-836 timestamps; -1 when unknown)."""

    replica_id: int
    log_end_offset: int
    last_fetch_timestamp: int = -1
    last_caught_up_timestamp: int = -1


def describe_quorum_unknown_partitions(body: Data) -> Data:
    """UNKNOWN_TOPIC_OR_PARTITION for every partition asked that is not the metadata log's."""
    _, response = message_for(ApiKey.DESCRIBE_QUORUM)
    topics = [
        response.struct("TopicData").make(topic_name=topic.topic_name, partitions=[
            _describe_partition(response, partition.partition_index, Errors.UNKNOWN_TOPIC_OR_PARTITION)
            for partition in topic.partitions
        ])
        for topic in body.topics
    ]
    return response.make(error_code=0, topics=topics, nodes=[])


def is_metadata_partition_only(body: Data) -> bool:
    topics = body.topics
    return (len(topics) == 1 and topics[0].topic_name == METADATA_TOPIC
            and [partition.partition_index for partition in topics[0].partitions] == [METADATA_PARTITION])


def describe_quorum_response(error: ErrorCode, voters_endpoints: dict[int, tuple[str, int]], *, leader_id: int = -1,
                             epoch: int = -1, high_watermark: int = -1, voters: list[ReplicaDescription] | None = None,
                             observers: list[ReplicaDescription] | None = None) -> Data:
    _, response = message_for(ApiKey.DESCRIBE_QUORUM)
    state = response.struct("ReplicaState")

    def row(replica: ReplicaDescription) -> Data:
        return state.make(replica_id=replica.replica_id, log_end_offset=replica.log_end_offset,
                          last_fetch_timestamp=replica.last_fetch_timestamp,
                          last_caught_up_timestamp=replica.last_caught_up_timestamp)

    partition = _describe_partition(response, METADATA_PARTITION, error)
    partition.leader_id, partition.leader_epoch, partition.high_watermark = leader_id, epoch, high_watermark
    partition.current_voters = [row(replica) for replica in voters or []]
    partition.observers = [row(replica) for replica in observers or []]
    nodes = [
        response.struct("Node").make(node_id=voter, listeners=[
            response.struct("Listener").make(name=CONTROLLER_LISTENER, host=host, port=port)
        ])
        for voter, (host, port) in sorted(voters_endpoints.items())
    ]
    topic = response.struct("TopicData").make(topic_name=METADATA_TOPIC, partitions=[partition])
    return response.make(error_code=0, topics=[topic], nodes=nodes)


def _describe_partition(response: Message, index: int, error: ErrorCode) -> Data:
    return response.struct("PartitionData").make(
        partition_index=index, error_code=error.code, leader_id=-1, leader_epoch=-1, high_watermark=-1,
        current_voters=[], observers=[],
    )
