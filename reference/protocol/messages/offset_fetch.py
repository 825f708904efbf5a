"""OffsetFetch (key 9): read a consumer group's committed positions.

A consumer asks for its committed offsets when it is assigned partitions, to know where to
resume; admin tools ask to show lag.  Rules a coordinator applies:

* A partition without a committed offset is answered with ``CommittedOffset`` -1 and no error.
* ``Topics`` null (v2+) means every partition the group has committed.
* With ``RequireStable`` (v7+, KIP-447) a partition that has a transactional commit still pending
  is answered UNSTABLE_OFFSET_COMMIT (88), so that a consumer does not start from an offset about
  to change.
* Group-level errors (NOT_COORDINATOR, 16; COORDINATOR_LOAD_IN_PROGRESS, 14; GROUP_ID_NOT_FOUND,
  69; ...) go in the top-level ``ErrorCode`` (v2-7) or the group's (v8+).

Version history that matters: Kafka 4.0 dropped v0, which read ZooKeeper (KIP-896); v2 adds the
null "all topics" list and the top-level error; v5 returns the committed leader epoch (KIP-320);
v6 is flexible; v7 ``RequireStable``; v8 asks for many groups at once, moving every field into
``Groups`` (KIP-709); v9 checks the member epoch of the new consumer protocol (KIP-848); v10 names
topics by id.
"""

from ..schema import BOOL, INT16, INT32, INT64, STRING, UUID, Array, Field, Message, Struct

REQUEST = Message(
    "OffsetFetchRequest", api_key=9, valid_versions="1-10", flexible_versions="6+",
    fields=[
        Field("GroupId", STRING, versions="0-7"),
        Field("Topics", Array(Struct("OffsetFetchRequestTopic", [
            Field("Name", STRING, versions="0-7"),
            Field("PartitionIndexes", Array(INT32), versions="0-7"),
        ])), versions="0-7", nullable="2-7"),  # null: all committed partitions
        Field("Groups", Array(Struct("OffsetFetchRequestGroup", [
            Field("GroupId", STRING, versions="8+"),
            Field("MemberId", STRING, versions="9+", nullable="9+", default=None, ignorable=True),
            Field("MemberEpoch", INT32, versions="9+", default=-1, ignorable=True),
            Field("Topics", Array(Struct("OffsetFetchRequestTopics", [
                Field("Name", STRING, versions="8-9", ignorable=True),
                Field("TopicId", UUID, versions="10+", ignorable=True),
                Field("PartitionIndexes", Array(INT32), versions="8+"),
            ])), versions="8+", nullable="8+"),
        ])), versions="8+"),
        Field("RequireStable", BOOL, versions="7+", default=False),
    ],
)

RESPONSE = Message(
    "OffsetFetchResponse", api_key=9, valid_versions="1-10", flexible_versions="6+",
    fields=[
        Field("ThrottleTimeMs", INT32, versions="3+", ignorable=True),
        Field("Topics", Array(Struct("OffsetFetchResponseTopic", [
            Field("Name", STRING, versions="0-7"),
            Field("Partitions", Array(Struct("OffsetFetchResponsePartition", [
                Field("PartitionIndex", INT32, versions="0-7"),
                Field("CommittedOffset", INT64, versions="0-7"),  # -1: nothing committed
                Field("CommittedLeaderEpoch", INT32, versions="5-7", default=-1, ignorable=True),
                Field("Metadata", STRING, versions="0-7", nullable="0-7"),
                Field("ErrorCode", INT16, versions="0-7"),
            ])), versions="0-7"),
        ])), versions="0-7"),
        Field("ErrorCode", INT16, versions="2-7", default=0, ignorable=True),
        Field("Groups", Array(Struct("OffsetFetchResponseGroup", [
            Field("GroupId", STRING, versions="8+"),
            Field("Topics", Array(Struct("OffsetFetchResponseTopics", [
                Field("Name", STRING, versions="8-9", ignorable=True),
                Field("TopicId", UUID, versions="10+", ignorable=True),
                Field("Partitions", Array(Struct("OffsetFetchResponsePartitions", [
                    Field("PartitionIndex", INT32, versions="8+"),
                    Field("CommittedOffset", INT64, versions="8+"),
                    Field("CommittedLeaderEpoch", INT32, versions="8+", default=-1, ignorable=True),
                    Field("Metadata", STRING, versions="8+", nullable="8+"),
                    Field("ErrorCode", INT16, versions="8+"),
                ])), versions="8+"),
            ])), versions="8+"),
            Field("ErrorCode", INT16, versions="8+", default=0),
        ])), versions="8+"),
    ],
)
