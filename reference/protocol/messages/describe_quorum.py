"""DescribeQuorum (key 55): the state of a KRaft quorum (KIP-595).

Answered by the quorum leader, for the metadata log ``__cluster_metadata`` partition 0 (the only
Raft partition today).  It reports the leader id and epoch, the high watermark, and for each voter
and observer the log end offset it has reached, so an operator can see how far each replica lags.
Rules: a broker forwards the request to the active controller; a controller that is not the
leader answers ``NOT_LEADER_OR_FOLLOWER`` for the partition; a topic or partition other than the
metadata log is ``UNKNOWN_TOPIC_OR_PARTITION``.

v1 adds, per replica, the last fetch time and the time it last caught up with the leader
(KIP-836).  v2 adds the replicas' directory ids and the voters' endpoints, for dynamic quorum
membership (KIP-853), and error messages.  Flexible from v0.
"""

from ..schema import INT16, INT32, INT64, STRING, UINT16, UUID, Array, Field, Message, Struct

REQUEST = Message(
    "DescribeQuorumRequest", api_key=55, valid_versions="0-2", flexible_versions="0+",
    fields=[
        Field("Topics", Array(Struct("TopicData", [
            Field("TopicName", STRING),
            Field("Partitions", Array(Struct("PartitionData", [
                Field("PartitionIndex", INT32),
            ]))),
        ]))),
    ],
)

REPLICA_STATE = Struct("ReplicaState", [
    Field("ReplicaId", INT32),
    Field("ReplicaDirectoryId", UUID, versions="2+"),
    Field("LogEndOffset", INT64),  # -1 when the leader has not heard from the replica
    Field("LastFetchTimestamp", INT64, versions="1+", default=-1, ignorable=True),
    Field("LastCaughtUpTimestamp", INT64, versions="1+", default=-1, ignorable=True),
])

RESPONSE = Message(
    "DescribeQuorumResponse", api_key=55, valid_versions="0-2", flexible_versions="0+",
    fields=[
        Field("ErrorCode", INT16),
        Field("ErrorMessage", STRING, versions="2+", nullable="2+", ignorable=True),
        Field("Topics", Array(Struct("TopicData", [
            Field("TopicName", STRING),
            Field("Partitions", Array(Struct("PartitionData", [
                Field("PartitionIndex", INT32),
                Field("ErrorCode", INT16),
                Field("ErrorMessage", STRING, versions="2+", nullable="2+", ignorable=True),
                Field("LeaderId", INT32),
                Field("LeaderEpoch", INT32),
                Field("HighWatermark", INT64),
                Field("CurrentVoters", Array(REPLICA_STATE)),
                Field("Observers", Array(REPLICA_STATE)),
            ]))),
        ]))),
        Field("Nodes", Array(Struct("Node", [
            Field("NodeId", INT32, versions="2+"),
            Field("Listeners", Array(Struct("Listener", [
                Field("Name", STRING, versions="2+"),
                Field("Host", STRING, versions="2+"),
                Field("Port", UINT16, versions="2+"),
            ])), versions="2+"),
        ])), versions="2+"),
    ],
    common_structs=[REPLICA_STATE],
)
