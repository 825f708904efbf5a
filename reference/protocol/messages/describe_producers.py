"""DescribeProducers (key 61): the active idempotent and transactional producers of partitions (KIP-664).

An operator's tool for finding the producer that holds a transaction open and so pins a
partition's last stable offset (a "hanging transaction").  Sent to each partition's leader, which
answers from its producer-state table: per producer the epoch, the last sequence and timestamp
it wrote, the coordinator epoch of its last marker, and the first offset of its ongoing
transaction (-1 if none).  A partition this broker does not lead is ``NOT_LEADER_OR_FOLLOWER``.

One version, flexible.
"""

from ..schema import INT16, INT32, INT64, STRING, Array, Field, Message, Struct

REQUEST = Message(
    "DescribeProducersRequest", api_key=61, valid_versions="0", flexible_versions="0+",
    fields=[
        Field("Topics", Array(Struct("TopicRequest", [
            Field("Name", STRING),
            Field("PartitionIndexes", Array(INT32)),
        ]))),
    ],
)

RESPONSE = Message(
    "DescribeProducersResponse", api_key=61, valid_versions="0", flexible_versions="0+",
    fields=[
        Field("ThrottleTimeMs", INT32),
        Field("Topics", Array(Struct("TopicResponse", [
            Field("Name", STRING),
            Field("Partitions", Array(Struct("PartitionResponse", [
                Field("PartitionIndex", INT32),
                Field("ErrorCode", INT16),
                Field("ErrorMessage", STRING, nullable="0+", default=None),
                Field("ActiveProducers", Array(Struct("ProducerState", [
                    Field("ProducerId", INT64),
                    Field("ProducerEpoch", INT32),  # INT32 here, though epochs are INT16 elsewhere
                    Field("LastSequence", INT32, default=-1),
                    Field("LastTimestamp", INT64, default=-1),
                    Field("CoordinatorEpoch", INT32),
                    Field("CurrentTxnStartOffset", INT64, default=-1),  # -1: no open transaction
                ]))),
            ]))),
        ]))),
    ],
)
