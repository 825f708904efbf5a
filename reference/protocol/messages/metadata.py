"""Metadata (key 3): the cluster as a client needs to see it.

A client asks for some topics (or all) and learns the brokers (id, host, port, rack), the cluster
id, the controller and, per topic, each partition's leader, leader epoch, replicas and in-sync
replicas.  It routes every Produce and Fetch by this answer and asks again after errors such as
NOT_LEADER_OR_FOLLOWER.  Rules a broker applies:

* ``Topics`` null (v1+) means all topics; an empty list means none.  In v0, where the list cannot
  be null, an empty list means all topics.
* An unknown topic gets UNKNOWN_TOPIC_OR_PARTITION (3), unless ``AllowAutoTopicCreation`` (v4+,
  always on before) and the broker's ``auto.create.topics.enable`` let it create the topic; it
  then answers LEADER_NOT_AVAILABLE (5) until the partitions have leaders.
* A partition whose leader is offline is listed with LEADER_NOT_AVAILABLE and ``LeaderId`` -1.

Version history that matters: v1 adds the controller, racks and internal topics; v2 the cluster
id; v5 offline replicas; v7 the leader epoch that clients use for fencing (KIP-320); v8 the ACL
operations the caller may perform, as a bit field, when asked (KIP-430; -2^31 means "not asked");
v9 is flexible; v10 adds topic ids (KIP-516), usable for lookup from v12; v11 moves the cluster's
authorized operations to DescribeCluster (KIP-700); v13 adds a top-level error code, used for
REBOOTSTRAP_REQUIRED (KIP-1102).
"""

from ..schema import BOOL, INT16, INT32, STRING, UUID, Array, Field, Message, Struct

# "Not requested": the value of an authorized-operations field that the client did not ask for.
AUTHORIZED_OPERATIONS_OMITTED = -(2**31)

REQUEST = Message(
    "MetadataRequest", api_key=3, valid_versions="0-13", flexible_versions="9+",
    fields=[
        Field("Topics", Array(Struct("MetadataRequestTopic", [
            Field("TopicId", UUID, versions="10+", ignorable=True),
            Field("Name", STRING, nullable="10+"),
        ])), nullable="1+"),  # null: all topics (v1+)
        Field("AllowAutoTopicCreation", BOOL, versions="4+", default=True),
        Field("IncludeClusterAuthorizedOperations", BOOL, versions="8-10"),
        Field("IncludeTopicAuthorizedOperations", BOOL, versions="8+"),
    ],
)

RESPONSE = Message(
    "MetadataResponse", api_key=3, valid_versions="0-13", flexible_versions="9+",
    fields=[
        Field("ThrottleTimeMs", INT32, versions="3+", ignorable=True),
        Field("Brokers", Array(Struct("MetadataResponseBroker", [
            Field("NodeId", INT32),
            Field("Host", STRING),
            Field("Port", INT32),
            Field("Rack", STRING, versions="1+", nullable="1+", default=None, ignorable=True),
        ]))),
        Field("ClusterId", STRING, versions="2+", nullable="2+", default=None, ignorable=True),
        Field("ControllerId", INT32, versions="1+", default=-1, ignorable=True),
        Field("Topics", Array(Struct("MetadataResponseTopic", [
            Field("ErrorCode", INT16),
            Field("Name", STRING, nullable="12+"),
            Field("TopicId", UUID, versions="10+", ignorable=True),
            Field("IsInternal", BOOL, versions="1+", default=False, ignorable=True),  # e.g. __consumer_offsets
            Field("Partitions", Array(Struct("MetadataResponsePartition", [
                Field("ErrorCode", INT16),
                Field("PartitionIndex", INT32),
                Field("LeaderId", INT32),  # -1: no leader right now
                Field("LeaderEpoch", INT32, versions="7+", default=-1, ignorable=True),
                Field("ReplicaNodes", Array(INT32)),
                Field("IsrNodes", Array(INT32)),
                Field("OfflineReplicas", Array(INT32), versions="5+", ignorable=True),
            ]))),
            Field("TopicAuthorizedOperations", INT32, versions="8+", default=AUTHORIZED_OPERATIONS_OMITTED),
        ]))),
        Field("ClusterAuthorizedOperations", INT32, versions="8-10", default=AUTHORIZED_OPERATIONS_OMITTED),
        Field("ErrorCode", INT16, versions="13+", ignorable=True),
    ],
)
