"""Fetch (key 1): read record batches from partition logs, for consumers and follower replicas.

The same request serves a consumer (``ReplicaId`` -1) and a follower replicating from the leader
(its broker id; from v15 inside ``ReplicaState``, KIP-903).  Rules a broker applies:

* Long poll: it answers once ``MinBytes`` are available or ``MaxWaitMs`` has passed.
* It returns whole batches, so the first may start before ``FetchOffset``; clients skip those
  records.  At least one batch is returned even if it is larger than ``MaxBytes`` or
  ``PartitionMaxBytes`` (KIP-74), so a consumer can never get stuck.
* A consumer reads up to the high watermark; with ``IsolationLevel`` 1 (read_committed, KIP-98) only
  up to the last stable offset, and the response lists the aborted transactions in that range.
* An offset outside [log start, log end] fails with OFFSET_OUT_OF_RANGE (1).  A
  ``CurrentLeaderEpoch`` older than the leader's is FENCED_LEADER_EPOCH (74), newer is
  UNKNOWN_LEADER_EPOCH (75) (KIP-320).

Version history that matters: v4 is the floor (record batch v2, transactions); v5 adds the log
start offset; v7 adds incremental fetch sessions (KIP-227): ``SessionEpoch`` -1 is a full fetch
without a session, 0 opens one, and later requests list only changed partitions plus
``ForgottenTopicsData``; v9 adds leader-epoch fencing (KIP-320); v10 allows zstd (KIP-110);
v11 adds ``RackId`` and ``PreferredReadReplica`` for fetching from the closest replica (KIP-392);
v12 is flexible and lets a follower send ``LastFetchedEpoch`` so the leader can answer with a
``DivergingEpoch`` to truncate to (KIP-595); v13 names topics by id (KIP-516); v16 adds
``NodeEndpoints`` for leader discovery (KIP-951).
"""

from ..schema import INT8, INT16, INT32, INT64, RECORDS, STRING, UUID, Array, Field, Message, Struct

REQUEST = Message(
    "FetchRequest", api_key=1, valid_versions="4-18", flexible_versions="12+",
    fields=[
        Field("ClusterId", STRING, versions="12+", nullable="12+", default=None,
              tag=0, tagged_versions="12+", ignorable=True),
        Field("ReplicaId", INT32, versions="0-14", default=-1),  # -1: a consumer, not a follower
        Field("ReplicaState", Struct("ReplicaState", [
            Field("ReplicaId", INT32, versions="15+", default=-1),
            Field("ReplicaEpoch", INT64, versions="15+", default=-1),  # the follower's broker epoch
        ]), versions="15+", tag=1, tagged_versions="15+"),
        Field("MaxWaitMs", INT32),
        Field("MinBytes", INT32),
        Field("MaxBytes", INT32, versions="3+", default=0x7FFFFFFF, ignorable=True),
        Field("IsolationLevel", INT8, versions="4+", default=0, ignorable=True),  # 1: read_committed
        Field("SessionId", INT32, versions="7+", default=0, ignorable=True),
        Field("SessionEpoch", INT32, versions="7+", default=-1, ignorable=True),
        Field("Topics", Array(Struct("FetchTopic", [
            Field("Topic", STRING, versions="0-12", ignorable=True),
            Field("TopicId", UUID, versions="13+", ignorable=True),
            Field("Partitions", Array(Struct("FetchPartition", [
                Field("Partition", INT32),
                Field("CurrentLeaderEpoch", INT32, versions="9+", default=-1, ignorable=True),
                Field("FetchOffset", INT64),
                Field("LastFetchedEpoch", INT32, versions="12+", default=-1),
                Field("LogStartOffset", INT64, versions="5+", default=-1, ignorable=True),  # followers only
                Field("PartitionMaxBytes", INT32),
                Field("ReplicaDirectoryId", UUID, versions="17+", tag=0, tagged_versions="17+",
                      ignorable=True),
                Field("HighWatermark", INT64, versions="18+", default=0x7FFFFFFFFFFFFFFF,
                      tag=1, tagged_versions="18+", ignorable=True),
            ]))),
        ]))),
        Field("ForgottenTopicsData", Array(Struct("ForgottenTopic", [
            Field("Topic", STRING, versions="7-12", ignorable=True),
            Field("TopicId", UUID, versions="13+", ignorable=True),
            Field("Partitions", Array(INT32), versions="7+"),
        ])), versions="7+"),
        Field("RackId", STRING, versions="11+", default="", ignorable=True),
    ],
)

RESPONSE = Message(
    "FetchResponse", api_key=1, valid_versions="4-18", flexible_versions="12+",
    fields=[
        Field("ThrottleTimeMs", INT32, versions="1+", ignorable=True),
        Field("ErrorCode", INT16, versions="7+", ignorable=True),  # session-level errors
        Field("SessionId", INT32, versions="7+", default=0),  # 0: no session was created
        Field("Responses", Array(Struct("FetchableTopicResponse", [
            Field("Topic", STRING, versions="0-12", ignorable=True),
            Field("TopicId", UUID, versions="13+", ignorable=True),
            Field("Partitions", Array(Struct("PartitionData", [
                Field("PartitionIndex", INT32),
                Field("ErrorCode", INT16),
                Field("HighWatermark", INT64),
                Field("LastStableOffset", INT64, versions="4+", default=-1, ignorable=True),
                Field("LogStartOffset", INT64, versions="5+", default=-1, ignorable=True),
                # Where the follower's log diverges from the leader's: truncate to EndOffset (KIP-595).
                Field("DivergingEpoch", Struct("EpochEndOffset", [
                    Field("Epoch", INT32, versions="12+", default=-1),
                    Field("EndOffset", INT64, versions="12+", default=-1),
                ]), versions="12+", tag=0, tagged_versions="12+"),
                Field("CurrentLeader", Struct("LeaderIdAndEpoch", [
                    Field("LeaderId", INT32, versions="12+", default=-1),
                    Field("LeaderEpoch", INT32, versions="12+", default=-1),
                ]), versions="12+", tag=1, tagged_versions="12+"),
                Field("SnapshotId", Struct("SnapshotId", [  # KRaft: fetch this snapshot instead
                    Field("EndOffset", INT64, default=-1),
                    Field("Epoch", INT32, default=-1),
                ]), versions="12+", tag=2, tagged_versions="12+"),
                # Transactions aborted in the returned range, for read_committed consumers.
                Field("AbortedTransactions", Array(Struct("AbortedTransaction", [
                    Field("ProducerId", INT64, versions="4+"),
                    Field("FirstOffset", INT64, versions="4+"),
                ])), versions="4+", nullable="4+", ignorable=True),
                Field("PreferredReadReplica", INT32, versions="11+", default=-1),  # KIP-392
                Field("Records", RECORDS, nullable="0+"),
            ]))),
        ]))),
        Field("NodeEndpoints", Array(Struct("NodeEndpoint", [
            Field("NodeId", INT32, versions="16+"),
            Field("Host", STRING, versions="16+"),
            Field("Port", INT32, versions="16+"),
            Field("Rack", STRING, versions="16+", nullable="16+", default=None),
        ])), versions="16+", tag=0, tagged_versions="16+"),
    ],
)
