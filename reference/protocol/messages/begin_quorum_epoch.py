"""BeginQuorumEpoch (key 53): a newly elected KRaft leader announces itself to the voters (KIP-595).

Having won a majority in the Vote round, the leader tells every voter its id and epoch.  A voter
receiving it becomes a follower of that leader and starts fetching from it; the leader resends
until each voter acknowledges, since a voter that missed it would otherwise time out and start a
needless election.  Rules a voter applies: an epoch lower than its own is ``FENCED_LEADER_EPOCH``
(Raft allows at most one leader per epoch, so a lower epoch can only come from a deposed leader);
``ClusterId`` mismatch is ``INCONSISTENT_CLUSTER_ID``.  Every answer carries the leader and epoch
the voter knows.

v1 (KIP-853) is flexible, names the voter by id and directory id, and carries the leader's
listener endpoints so that a voter can reach a leader not in its static configuration.
"""

from ..schema import INT16, INT32, STRING, UINT16, UUID, Array, Field, Message, Struct

REQUEST = Message(
    "BeginQuorumEpochRequest", api_key=53, valid_versions="0-1", flexible_versions="1+",
    fields=[
        Field("ClusterId", STRING, nullable="0+", default=None),
        Field("VoterId", INT32, versions="1+", default=-1, ignorable=True),
        Field("Topics", Array(Struct("TopicData", [
            Field("TopicName", STRING),
            Field("Partitions", Array(Struct("PartitionData", [
                Field("PartitionIndex", INT32),
                Field("VoterDirectoryId", UUID, versions="1+", ignorable=True),
                Field("LeaderId", INT32),
                Field("LeaderEpoch", INT32),
            ]))),
        ]))),
        Field("LeaderEndpoints", Array(Struct("LeaderEndpoint", [
            Field("Name", STRING, versions="1+"),  # the listener name
            Field("Host", STRING, versions="1+"),
            Field("Port", UINT16, versions="1+"),
        ])), versions="1+", ignorable=True),
    ],
)

RESPONSE = Message(
    "BeginQuorumEpochResponse", api_key=53, valid_versions="0-1", flexible_versions="1+",
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
