"""WriteTxnMarkers (key 27): the transaction coordinator asks partition leaders to end a transaction.

Broker to broker.  For each marker the leader appends a control batch (transactional, control
bit set) holding one COMMIT or ABORT control record for the producer, in every partition listed.
The marker is what moves a partition's last stable offset past the transaction, making its
records visible to read_committed consumers (or hiding them, on abort).  Rules a leader applies:

* it answers per partition (``NOT_LEADER_OR_FOLLOWER``, ``UNKNOWN_TOPIC_OR_PARTITION``, ...);
  the coordinator retries until every partition has its marker;
* ``CoordinatorEpoch`` fences a stale coordinator: a marker with an epoch lower than the one the
  partition last saw for this producer is refused (``TRANSACTION_COORDINATOR_FENCED``);
* for a ``__consumer_offsets`` partition the marker also makes the transaction's pending offset
  commits visible (commit) or drops them (abort).

v0 was removed in Kafka 4.0 (KIP-896); v1 is flexible; v2 adds the transaction version the
marker belongs to (KIP-1228).
"""

from ..schema import BOOL, INT8, INT16, INT32, INT64, STRING, Array, Field, Message, Struct

REQUEST = Message(
    "WriteTxnMarkersRequest", api_key=27, valid_versions="1-2", flexible_versions="1+",
    fields=[
        Field("Markers", Array(Struct("WritableTxnMarker", [
            Field("ProducerId", INT64),
            Field("ProducerEpoch", INT16),
            Field("TransactionResult", BOOL),  # true: COMMIT marker, false: ABORT marker
            Field("Topics", Array(Struct("WritableTxnMarkerTopic", [
                Field("Name", STRING),
                Field("PartitionIndexes", Array(INT32)),
            ]))),
            Field("CoordinatorEpoch", INT32),
            Field("TransactionVersion", INT8, versions="2+", default=0, ignorable=True),
        ]))),
    ],
)

RESPONSE = Message(
    "WriteTxnMarkersResponse", api_key=27, valid_versions="1-2", flexible_versions="1+",
    fields=[
        Field("Markers", Array(Struct("WritableTxnMarkerResult", [
            Field("ProducerId", INT64),
            Field("Topics", Array(Struct("WritableTxnMarkerTopicResult", [
                Field("Name", STRING),
                Field("Partitions", Array(Struct("WritableTxnMarkerPartitionResult", [
                    Field("PartitionIndex", INT32),
                    Field("ErrorCode", INT16),
                ]))),
            ]))),
        ]))),
    ],
)
