"""FindCoordinator (key 10): which broker coordinates a consumer group or a transactional id.

Group state lives in a partition of ``__consumer_offsets`` and transaction state in a partition of
``__transaction_state``; the partition is ``abs(hash(key)) % partition count`` (the Java
``String.hashCode``) and its leader is the coordinator.  A client asks once, then sends all group
(JoinGroup, SyncGroup, Heartbeat, OffsetCommit, ...) or transaction requests there, and asks again
after NOT_COORDINATOR (16).  Rules a broker applies:

* ``KeyType`` 0 is a group id, 1 a transactional id, 2 a share group (v6, KIP-932).
* While the internal topic does not exist yet or its partition has no leader, the answer is
  COORDINATOR_NOT_AVAILABLE (15); the broker creates the internal topic on first use.

Version history that matters: v1 adds ``KeyType`` (transactions, KIP-98) and an error message; v3
is flexible; v4 looks up many keys at once (KIP-699): ``CoordinatorKeys`` replaces ``Key`` and the
single answer becomes a list of ``Coordinators``, each with its own error.
"""

from ..schema import INT8, INT16, INT32, STRING, Array, Field, Message, Struct

REQUEST = Message(
    "FindCoordinatorRequest", api_key=10, valid_versions="0-6", flexible_versions="3+",
    fields=[
        Field("Key", STRING, versions="0-3"),
        Field("KeyType", INT8, versions="1+", default=0),  # 0 group, 1 transaction, 2 share group
        Field("CoordinatorKeys", Array(STRING), versions="4+"),
    ],
)

RESPONSE = Message(
    "FindCoordinatorResponse", api_key=10, valid_versions="0-6", flexible_versions="3+",
    fields=[
        Field("ThrottleTimeMs", INT32, versions="1+", ignorable=True),
        Field("ErrorCode", INT16, versions="0-3"),
        Field("ErrorMessage", STRING, versions="1-3", nullable="1-3", ignorable=True),
        Field("NodeId", INT32, versions="0-3"),
        Field("Host", STRING, versions="0-3"),
        Field("Port", INT32, versions="0-3"),
        Field("Coordinators", Array(Struct("Coordinator", [
            Field("Key", STRING, versions="4+"),
            Field("NodeId", INT32, versions="4+"),
            Field("Host", STRING, versions="4+"),
            Field("Port", INT32, versions="4+"),
            Field("ErrorCode", INT16, versions="4+"),
            Field("ErrorMessage", STRING, versions="4+", nullable="4+", ignorable=True),
        ])), versions="4+"),
    ],
)
