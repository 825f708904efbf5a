"""ElectLeaders (key 43): ask the controller to elect partition leaders now.

Started as preferred-replica election (KIP-183): move leadership back to the first replica of
each partition's assignment, which rebalances load after broker restarts.  KIP-460 (v1) adds
``ElectionType``: 0 preferred, 1 unclean (choose a live replica outside the ISR when no ISR member
is alive, accepting the loss of committed records).  Rules the controller applies:

* a null ``TopicPartitions`` means every partition in the cluster;
* per partition: ``ELECTION_NOT_NEEDED`` when the preferred replica already leads (or, for
  unclean, an ISR member is alive), ``PREFERRED_LEADER_NOT_AVAILABLE`` /
  ``ELIGIBLE_LEADERS_NOT_AVAILABLE`` when no candidate qualifies, ``UNKNOWN_TOPIC_OR_PARTITION``;
* a request-level failure (v1+: ``ErrorCode``), such as ``CLUSTER_AUTHORIZATION_FAILED``, applies
  to all partitions.

v2 is flexible.
"""

from ..schema import INT8, INT16, INT32, STRING, Array, Field, Message, Struct

REQUEST = Message(
    "ElectLeadersRequest", api_key=43, valid_versions="0-2", flexible_versions="2+",
    fields=[
        Field("ElectionType", INT8, versions="1+"),  # 0 preferred, 1 unclean
        Field("TopicPartitions", Array(Struct("TopicPartitions", [
            Field("Topic", STRING),
            Field("Partitions", Array(INT32)),
        ])), nullable="0+"),  # null: all partitions
        Field("TimeoutMs", INT32, default=60000),
    ],
)

RESPONSE = Message(
    "ElectLeadersResponse", api_key=43, valid_versions="0-2", flexible_versions="2+",
    fields=[
        Field("ThrottleTimeMs", INT32),
        Field("ErrorCode", INT16, versions="1+"),
        Field("ReplicaElectionResults", Array(Struct("ReplicaElectionResult", [
            Field("Topic", STRING),
            Field("PartitionResult", Array(Struct("PartitionResult", [
                Field("PartitionId", INT32),
                Field("ErrorCode", INT16),
                Field("ErrorMessage", STRING, nullable="0+"),
            ]))),
        ]))),
    ],
)
