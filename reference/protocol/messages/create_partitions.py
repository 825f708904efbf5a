"""CreatePartitions (key 37): add partitions to existing topics (KIP-195).

``Count`` is the new total number of partitions, not the number to add.  Rules the controller
applies, per topic:

* a count not larger than the current one is ``INVALID_PARTITIONS`` (partitions are never removed,
  since that would lose data and move keys);
* an unknown topic is ``UNKNOWN_TOPIC_OR_PARTITION``; a topic named twice is ``INVALID_REQUEST``;
* ``Assignments``, when given, holds one replica list per new partition and must match the
  topic's replication factor and name live brokers (``INVALID_REPLICA_ASSIGNMENT``); when null the
  controller places the replicas itself;
* ``ValidateOnly`` checks without creating; ``TimeoutMs`` bounds the wait for the new partitions'
  metadata to propagate (``REQUEST_TIMED_OUT`` after it, though they are still created).

v1 is v0 again; v2 is flexible; v3 may answer ``THROTTLING_QUOTA_EXCEEDED`` when the controller
mutation quota is exhausted (KIP-599).
"""

from ..schema import BOOL, INT16, INT32, STRING, Array, Field, Message, Struct

REQUEST = Message(
    "CreatePartitionsRequest", api_key=37, valid_versions="0-3", flexible_versions="2+",
    fields=[
        Field("Topics", Array(Struct("CreatePartitionsTopic", [
            Field("Name", STRING),
            Field("Count", INT32),  # the new total, not the increment
            Field("Assignments", Array(Struct("CreatePartitionsAssignment", [
                Field("BrokerIds", Array(INT32)),
            ])), nullable="0+"),  # null: let the controller place the new replicas
        ]))),
        Field("TimeoutMs", INT32),
        Field("ValidateOnly", BOOL),
    ],
)

RESPONSE = Message(
    "CreatePartitionsResponse", api_key=37, valid_versions="0-3", flexible_versions="2+",
    fields=[
        Field("ThrottleTimeMs", INT32),
        Field("Results", Array(Struct("CreatePartitionsTopicResult", [
            Field("Name", STRING),
            Field("ErrorCode", INT16),
            Field("ErrorMessage", STRING, nullable="0+", default=None),
        ]))),
    ],
)
