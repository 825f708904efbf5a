"""TxnOffsetCommit (key 28): commit consumed offsets as part of a transaction (KIP-98).

Sent to the group coordinator (not the transaction coordinator).  The offsets are written to
``__consumer_offsets`` as transactional records and stay pending until the transaction's marker
arrives: committed with the transaction, or discarded with its abort.  This is how
consume-transform-produce gets exactly-once.  Rules the group coordinator applies:

* with v3+ (KIP-447) the request carries the consumer's group generation, member id and
  instance id, and the coordinator fences a zombie: a stale generation is
  ``ILLEGAL_GENERATION``, an unknown member ``UNKNOWN_MEMBER_ID``, a replaced static member
  ``FENCED_INSTANCE_ID``;
* the producer must have added the group with AddOffsetsToTxn first, unless transactions v2 is on.

v1 is v0 again; v2 adds the committed leader epoch (KIP-320); v3 adds the group metadata above
and is flexible; v4 may answer ``TRANSACTION_ABORTABLE`` (KIP-890); v5 is v4 again, and with
transactions v2 (KIP-890 part 2) it also adds the offsets partition to the transaction itself.
"""

from ..schema import INT16, INT32, INT64, STRING, Array, Field, Message, Struct

REQUEST = Message(
    "TxnOffsetCommitRequest", api_key=28, valid_versions="0-5", flexible_versions="3+",
    fields=[
        Field("TransactionalId", STRING),
        Field("GroupId", STRING),
        Field("ProducerId", INT64),
        Field("ProducerEpoch", INT16),
        Field("GenerationId", INT32, versions="3+", default=-1),
        Field("MemberId", STRING, versions="3+", default=""),
        Field("GroupInstanceId", STRING, versions="3+", nullable="3+", default=None),
        Field("Topics", Array(Struct("TxnOffsetCommitRequestTopic", [
            Field("Name", STRING),
            Field("Partitions", Array(Struct("TxnOffsetCommitRequestPartition", [
                Field("PartitionIndex", INT32),
                Field("CommittedOffset", INT64),  # the next offset to consume
                Field("CommittedLeaderEpoch", INT32, versions="2+", default=-1, ignorable=True),
                Field("CommittedMetadata", STRING, nullable="0+"),
            ]))),
        ]))),
    ],
)

RESPONSE = Message(
    "TxnOffsetCommitResponse", api_key=28, valid_versions="0-5", flexible_versions="3+",
    fields=[
        Field("ThrottleTimeMs", INT32),
        Field("Topics", Array(Struct("TxnOffsetCommitResponseTopic", [
            Field("Name", STRING),
            Field("Partitions", Array(Struct("TxnOffsetCommitResponsePartition", [
                Field("PartitionIndex", INT32),
                Field("ErrorCode", INT16),
            ]))),
        ]))),
    ],
)
