"""EndQuorumEpoch (key 54): a KRaft leader resigns so a new election starts at once (KIP-595).

Sent by a leader on graceful shutdown.  Without it the voters would wait for their fetch timeout
before electing anyone; with it they start an election right away.  The leader lists its
preferred successors, most caught-up first; a voter waits a backoff that grows with its position
in that list before becoming a candidate, so the best-placed voter usually wins.  Rules a voter
applies: an epoch lower than its own is ``FENCED_LEADER_EPOCH``; ``ClusterId`` mismatch is
``INCONSISTENT_CLUSTER_ID``; answers carry the leader and epoch it knows.

v1 (KIP-853) is flexible, names each preferred candidate by id and directory id in place of the
bare ids of v0, and carries the leader's endpoints.
"""

from ..schema import INT16, INT32, STRING, UINT16, UUID, Array, Field, Message, Struct

REQUEST = Message(
    "EndQuorumEpochRequest", api_key=54, valid_versions="0-1", flexible_versions="1+",
    fields=[
        Field("ClusterId", STRING, nullable="0+", default=None),
        Field("Topics", Array(Struct("TopicData", [
            Field("TopicName", STRING),
            Field("Partitions", Array(Struct("PartitionData", [
                Field("PartitionIndex", INT32),
                Field("LeaderId", INT32),
                Field("LeaderEpoch", INT32),
                Field("PreferredSuccessors", Array(INT32), versions="0", ignorable=True),
                Field("PreferredCandidates", Array(Struct("ReplicaInfo", [
                    Field("CandidateId", INT32, versions="1+"),
                    Field("CandidateDirectoryId", UUID, versions="1+"),
                ])), versions="1+", ignorable=True),
            ]))),
        ]))),
        Field("LeaderEndpoints", Array(Struct("LeaderEndpoint", [
            Field("Name", STRING, versions="1+"),
            Field("Host", STRING, versions="1+"),
            Field("Port", UINT16, versions="1+"),
        ])), versions="1+", ignorable=True),
    ],
)

RESPONSE = Message(
    "EndQuorumEpochResponse", api_key=54, valid_versions="0-1", flexible_versions="1+",
    fields=[
        Field("ErrorCode", INT16),
        Field("Topics", Array(Struct("TopicData", [
            Field("TopicName", STRING),
            Field("Partitions", Array(Struct("PartitionData", [
                Field("PartitionIndex", INT32),
                Field("ErrorCode", INT16),
                Field("LeaderId", INT32),
                Field("LeaderEpoch", INT32),
            ]))),
        ]))),
        Field("NodeEndpoints", Array(Struct("NodeEndpoint", [
            Field("NodeId", INT32, versions="1+"),
            Field("Host", STRING, versions="1+"),
            Field("Port", UINT16, versions="1+"),
        ])), versions="1+", tag=0, tagged_versions="1+"),
    ],
)
