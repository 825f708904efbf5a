"""AddPartitionsToTxn (key 24): register partitions with a transaction before writing to them (KIP-98).

A transactional producer must tell its transaction coordinator about every partition it is about
to write, so that the coordinator knows where to send commit or abort markers.  Rules the
coordinator applies:

* the producer id must map to the transactional id (``INVALID_PRODUCER_ID_MAPPING``) and the epoch
  must be current (an older one is ``PRODUCER_FENCED``, v2+; ``INVALID_PRODUCER_EPOCH`` before);
* while the previous transaction's markers are still being written it answers
  ``CONCURRENT_TRANSACTIONS`` and the producer retries;
* one failing partition fails the request: the others are answered
  ``OPERATION_NOT_ATTEMPTED``.

The request has two shapes.  Up to v3 it is the client's: one transaction, fields named
``V3AndBelow...``.  From v4 (KIP-890) it is the broker's: a partition leader batches several
transactions into one request, and with ``VerifyOnly`` asks only whether the partitions are
already in their transactions, so it can refuse a stray write from a producer whose transaction
has ended.  v5 may answer ``TRANSACTION_ABORTABLE`` (KIP-890).  v3 is the first flexible version.
"""

from ..schema import BOOL, INT16, INT32, INT64, STRING, Array, Field, Message, Struct

# Shared by both request shapes.
ADD_PARTITIONS_TO_TXN_TOPIC = Struct("AddPartitionsToTxnTopic", [
    Field("Name", STRING),
    Field("Partitions", Array(INT32)),
])

REQUEST = Message(
    "AddPartitionsToTxnRequest", api_key=24, valid_versions="0-5", flexible_versions="3+",
    fields=[
        Field("Transactions", Array(Struct("AddPartitionsToTxnTransaction", [
            Field("TransactionalId", STRING, versions="4+"),
            Field("ProducerId", INT64, versions="4+"),
            Field("ProducerEpoch", INT16, versions="4+"),
            Field("VerifyOnly", BOOL, versions="4+", default=False),
            Field("Topics", Array(ADD_PARTITIONS_TO_TXN_TOPIC), versions="4+"),
        ])), versions="4+"),
        Field("V3AndBelowTransactionalId", STRING, versions="0-3"),
        Field("V3AndBelowProducerId", INT64, versions="0-3"),
        Field("V3AndBelowProducerEpoch", INT16, versions="0-3"),
        Field("V3AndBelowTopics", Array(ADD_PARTITIONS_TO_TXN_TOPIC), versions="0-3"),
    ],
    common_structs=[ADD_PARTITIONS_TO_TXN_TOPIC],
)

ADD_PARTITIONS_TO_TXN_PARTITION_RESULT = Struct("AddPartitionsToTxnPartitionResult", [
    Field("PartitionIndex", INT32),
    Field("PartitionErrorCode", INT16),
])

ADD_PARTITIONS_TO_TXN_TOPIC_RESULT = Struct("AddPartitionsToTxnTopicResult", [
    Field("Name", STRING),
    Field("ResultsByPartition", Array(ADD_PARTITIONS_TO_TXN_PARTITION_RESULT)),
])

RESPONSE = Message(
    "AddPartitionsToTxnResponse", api_key=24, valid_versions="0-5", flexible_versions="3+",
    fields=[
        Field("ThrottleTimeMs", INT32),
        Field("ErrorCode", INT16, versions="4+", ignorable=True),  # a request-level failure
        Field("ResultsByTransaction", Array(Struct("AddPartitionsToTxnResult", [
            Field("TransactionalId", STRING, versions="4+"),
            Field("TopicResults", Array(ADD_PARTITIONS_TO_TXN_TOPIC_RESULT), versions="4+"),
        ])), versions="4+"),
        Field("ResultsByTopicV3AndBelow", Array(ADD_PARTITIONS_TO_TXN_TOPIC_RESULT), versions="0-3"),
    ],
    common_structs=[ADD_PARTITIONS_TO_TXN_TOPIC_RESULT, ADD_PARTITIONS_TO_TXN_PARTITION_RESULT],
)
