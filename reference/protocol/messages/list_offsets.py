"""ListOffsets (key 2): find an offset in a partition by timestamp.

A consumer uses it to reset its position (``auto.offset.reset``) and to seek by time.  The
``Timestamp`` is either a real time, answered with the first offset whose record timestamp is at
or after it (from the time index), or one of these sentinels:

* -1 LATEST: the log end offset (with ``IsolationLevel`` 1, read_committed, the last stable
  offset instead);
* -2 EARLIEST: the log start offset;
* -3 MAX_TIMESTAMP: the offset of the record with the largest timestamp (v7+, KIP-734);
* -4 EARLIEST_LOCAL (v8+, KIP-405) and -5 LATEST_TIERED (v9+, KIP-1005): tiered-storage positions;
  v11 adds a sentinel for the earliest offset not yet uploaded to remote storage (KIP-1023).

Rules a broker applies: only the partition leader answers (NOT_LEADER_OR_FOLLOWER, 6, elsewhere);
a ``CurrentLeaderEpoch`` that does not match is fenced as in Fetch (KIP-320); no record at or
after the timestamp yields ``Offset`` -1 and ``Timestamp`` -1.  ``ReplicaId`` is -1 for
consumers.

Version history that matters: Kafka 4.0 dropped v0 (KIP-896), whose "up to N offsets" form
(``MaxNumOffsets``, ``OldStyleOffsets``) is still declared so the fields read as Kafka's do; v2
adds the isolation level; v4 the leader epoch; v6 is flexible; v10 adds ``TimeoutMs`` for
answers that wait on remote storage (KIP-1075).
"""

from ..schema import INT8, INT16, INT32, INT64, STRING, Array, Field, Message, Struct

REQUEST = Message(
    "ListOffsetsRequest", api_key=2, valid_versions="1-11", flexible_versions="6+",
    fields=[
        Field("ReplicaId", INT32),  # -1: a consumer
        Field("IsolationLevel", INT8, versions="2+"),  # 1: read_committed, LATEST means last stable offset
        Field("Topics", Array(Struct("ListOffsetsTopic", [
            Field("Name", STRING),
            Field("Partitions", Array(Struct("ListOffsetsPartition", [
                Field("PartitionIndex", INT32),
                Field("CurrentLeaderEpoch", INT32, versions="4+", default=-1, ignorable=True),
                Field("Timestamp", INT64),  # a time in ms, or -1 latest, -2 earliest, -3 max timestamp
                Field("MaxNumOffsets", INT32, versions="0", default=1),
            ]))),
        ]))),
        Field("TimeoutMs", INT32, versions="10+", ignorable=True),
    ],
)

RESPONSE = Message(
    "ListOffsetsResponse", api_key=2, valid_versions="1-11", flexible_versions="6+",
    fields=[
        Field("ThrottleTimeMs", INT32, versions="2+", ignorable=True),
        Field("Topics", Array(Struct("ListOffsetsTopicResponse", [
            Field("Name", STRING),
            Field("Partitions", Array(Struct("ListOffsetsPartitionResponse", [
                Field("PartitionIndex", INT32),
                Field("ErrorCode", INT16),
                Field("OldStyleOffsets", Array(INT64), versions="0"),
                Field("Timestamp", INT64, versions="1+", default=-1),
                Field("Offset", INT64, versions="1+", default=-1),
                Field("LeaderEpoch", INT32, versions="4+", default=-1),
            ]))),
        ]))),
    ],
)
