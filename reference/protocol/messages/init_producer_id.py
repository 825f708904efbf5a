"""InitProducerId (key 22): give a producer its producer id and epoch.

An idempotent producer (the default since Kafka 3.0, KIP-679) sends it before its first Produce;
any broker can answer by allocating a fresh id.  A transactional producer sends it to its
transaction coordinator (found with FindCoordinator, key type 1), which maps the
``TransactionalId`` to one producer id across restarts, bumps the epoch to fence older instances
of the same producer, and aborts a transaction the old instance left open.  Rules a broker
applies:

* ``TransactionTimeoutMs`` above ``transaction.max.timeout.ms`` is INVALID_TRANSACTION_TIMEOUT (50).
* While the previous transaction of that id is still completing, CONCURRENT_TRANSACTIONS (51); the
  client retries.
* With ``ProducerId``/``ProducerEpoch`` (v3+, KIP-360) a producer asks to bump its own epoch after
  an error instead of starting over: no epoch given -> a new id or epoch; the current one -> bump;
  the one just before it -> the current one (a retry); anything else -> INVALID_PRODUCER_EPOCH
  (47), from v4 PRODUCER_FENCED (90).

Version history that matters: v2 is flexible; v3 adds the epoch bump (KIP-360); v4
PRODUCER_FENCED; v5 TRANSACTION_ABORTABLE (KIP-890); v6 two-phase commit with an external
transaction manager, returning the ongoing transaction's id and epoch (KIP-939).
"""

from ..schema import BOOL, INT16, INT32, INT64, STRING, Field, Message

REQUEST = Message(
    "InitProducerIdRequest", api_key=22, valid_versions="0-6", flexible_versions="2+",
    fields=[
        Field("TransactionalId", STRING, nullable="0+"),  # null: an idempotent, non-transactional producer
        Field("TransactionTimeoutMs", INT32),
        Field("ProducerId", INT64, versions="3+", default=-1),  # -1: no id yet
        Field("ProducerEpoch", INT16, versions="3+", default=-1),
        Field("Enable2Pc", BOOL, versions="6+", default=False),
        Field("KeepPreparedTxn", BOOL, versions="6+", default=False),
    ],
)

RESPONSE = Message(
    "InitProducerIdResponse", api_key=22, valid_versions="0-6", flexible_versions="2+",
    fields=[
        Field("ThrottleTimeMs", INT32, ignorable=True),
        Field("ErrorCode", INT16),
        Field("ProducerId", INT64, default=-1),
        Field("ProducerEpoch", INT16),
        Field("OngoingTxnProducerId", INT64, versions="6+", default=-1),
        Field("OngoingTxnProducerEpoch", INT16, versions="6+", default=-1),
    ],
)
