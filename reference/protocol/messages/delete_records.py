"""DeleteRecords (key 21): move a partition's log start offset forward.

An admin (``kafka-delete-records``) asks the leader of each partition to make every record below
``Offset`` unreadable; the leader raises its log start offset, followers follow, and the segments
wholly below it are deleted later.  Rules a broker applies, per partition:

* ``Offset`` -1 means the high watermark (delete everything committed so far).
* An offset above the high watermark, or below 0 other than -1, is OFFSET_OUT_OF_RANGE (1); only
  the leader answers (NOT_LEADER_OR_FOLLOWER, 6, elsewhere).
* Deleting records from a compacted-only topic is refused with POLICY_VIOLATION (44).
* The answer waits until the partition's low watermark (the smallest log start offset among its
  live replicas) has reached the offset, or ``TimeoutMs`` (REQUEST_TIMED_OUT, 7), and reports it
  in ``LowWatermark``.

Version history that matters: v1 returns responses before throttling; v2 is flexible.
"""

from ..schema import INT16, INT32, INT64, STRING, Array, Field, Message, Struct

REQUEST = Message(
    "DeleteRecordsRequest", api_key=21, valid_versions="0-2", flexible_versions="2+",
    fields=[
        Field("Topics", Array(Struct("DeleteRecordsTopic", [
            Field("Name", STRING),
            Field("Partitions", Array(Struct("DeleteRecordsPartition", [
                Field("PartitionIndex", INT32),
                Field("Offset", INT64),  # delete records before this offset; -1: the high watermark
            ]))),
        ]))),
        Field("TimeoutMs", INT32),
    ],
)

RESPONSE = Message(
    "DeleteRecordsResponse", api_key=21, valid_versions="0-2", flexible_versions="2+",
    fields=[
        Field("ThrottleTimeMs", INT32),
        Field("Topics", Array(Struct("DeleteRecordsTopicResult", [
            Field("Name", STRING),
            Field("Partitions", Array(Struct("DeleteRecordsPartitionResult", [
                Field("PartitionIndex", INT32),
                Field("LowWatermark", INT64),  # the smallest log start offset of the live replicas
                Field("ErrorCode", INT16),
            ]))),
        ]))),
    ],
)
