"""EndTxn (key 26): commit or abort the producer's ongoing transaction (KIP-98).

The transaction coordinator writes PrepareCommit or PrepareAbort to its transaction log, answers
the producer, and then sends WriteTxnMarkers to the leader of every partition in the transaction;
once all markers are written it records CompleteCommit / CompleteAbort.  Rules it applies:

* the producer id and epoch are checked as for AddPartitionsToTxn (``PRODUCER_FENCED`` /
  ``INVALID_PRODUCER_EPOCH``, ``INVALID_PRODUCER_ID_MAPPING``);
* while markers are still being written (PrepareCommit / PrepareAbort) it answers
  ``CONCURRENT_TRANSACTIONS``; a retry after the transaction completed the same way succeeds,
  and asking to commit what was aborted (or the reverse) is ``INVALID_TXN_STATE``.

v1 is v0 again; v2 may answer ``PRODUCER_FENCED``; v3 is flexible; v4 may answer
``TRANSACTION_ABORTABLE`` (KIP-890).  v5 (KIP-890 part 2) bumps the producer epoch at the end of
every transaction and returns the new producer id and epoch, which fences a late write from the
finished transaction.
"""

from ..schema import BOOL, INT16, INT32, INT64, STRING, Field, Message

REQUEST = Message(
    "EndTxnRequest", api_key=26, valid_versions="0-5", flexible_versions="3+",
    fields=[
        Field("TransactionalId", STRING),
        Field("ProducerId", INT64),
        Field("ProducerEpoch", INT16),
        Field("Committed", BOOL),  # true: commit, false: abort
    ],
)

RESPONSE = Message(
    "EndTxnResponse", api_key=26, valid_versions="0-5", flexible_versions="3+",
    fields=[
        Field("ThrottleTimeMs", INT32),
        Field("ErrorCode", INT16),
        Field("ProducerId", INT64, versions="5+", default=-1, ignorable=True),
        Field("ProducerEpoch", INT16, versions="5+", default=-1, ignorable=True),
    ],
)
