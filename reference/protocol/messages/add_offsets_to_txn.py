"""AddOffsetsToTxn (key 25): make a consumer group's offset commit part of a transaction (KIP-98).

Before a transactional producer commits consumed offsets with TxnOffsetCommit, it tells its
transaction coordinator about the group.  The coordinator adds the ``__consumer_offsets``
partition that holds the group to the transaction, so the commit or abort marker also reaches
it and the offsets become visible only if the transaction commits.  The coordinator applies the
same producer checks as AddPartitionsToTxn (``INVALID_PRODUCER_ID_MAPPING``,
``PRODUCER_FENCED`` / ``INVALID_PRODUCER_EPOCH``, ``CONCURRENT_TRANSACTIONS``).

v1 is v0 again; v2 may answer ``PRODUCER_FENCED``; v3 is flexible; v4 may answer
``TRANSACTION_ABORTABLE`` (KIP-890).  With transactions v2 (KIP-890 part 2) the client skips
this call: TxnOffsetCommit v5 adds the partition implicitly.
"""

from ..schema import INT16, INT32, INT64, STRING, Field, Message

REQUEST = Message(
    "AddOffsetsToTxnRequest", api_key=25, valid_versions="0-4", flexible_versions="3+",
    fields=[
        Field("TransactionalId", STRING),
        Field("ProducerId", INT64),
        Field("ProducerEpoch", INT16),
        Field("GroupId", STRING),
    ],
)

RESPONSE = Message(
    "AddOffsetsToTxnResponse", api_key=25, valid_versions="0-4", flexible_versions="3+",
    fields=[
        Field("ThrottleTimeMs", INT32),
        Field("ErrorCode", INT16),
    ],
)
