"""DescribeTransactions (key 65): the state of transactions by transactional id (KIP-664).

Sent to the transaction coordinator of each id, which answers from its transaction metadata:
the state (Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort, Dead,
PrepareEpochFence), the timeout, when the transaction started (-1 if none is open), the producer
id and epoch, and the partitions in the transaction.  Per id: ``TRANSACTIONAL_ID_NOT_FOUND``,
``NOT_COORDINATOR``, ``COORDINATOR_LOAD_IN_PROGRESS``, ``TRANSACTIONAL_ID_AUTHORIZATION_FAILED``.

One version, flexible.
"""

from ..schema import INT16, INT32, INT64, STRING, Array, Field, Message, Struct

REQUEST = Message(
    "DescribeTransactionsRequest", api_key=65, valid_versions="0", flexible_versions="0+",
    fields=[
        Field("TransactionalIds", Array(STRING)),
    ],
)

RESPONSE = Message(
    "DescribeTransactionsResponse", api_key=65, valid_versions="0", flexible_versions="0+",
    fields=[
        Field("ThrottleTimeMs", INT32),
        Field("TransactionStates", Array(Struct("TransactionState", [
            Field("ErrorCode", INT16),
            Field("TransactionalId", STRING),
            Field("TransactionState", STRING),
            Field("TransactionTimeoutMs", INT32),
            Field("TransactionStartTimeMs", INT64),
            Field("ProducerId", INT64),
            Field("ProducerEpoch", INT16),
            Field("Topics", Array(Struct("TopicData", [
                Field("Topic", STRING),
                Field("Partitions", Array(INT32)),
            ]))),
        ]))),
    ],
)
