"""OffsetForLeaderEpoch (key 23): where did a leader epoch end?

For a requested ``LeaderEpoch`` the leader answers the end offset of that epoch in its own log:
the start offset of the first epoch after it, or its log end offset if that epoch is its current
one.  A follower that restarts or changes leader uses it to truncate its log exactly where it
diverges from the leader's, instead of to its high watermark, which could lose acknowledged
records or let logs diverge (KIP-101, refined by KIP-279).  Consumers use it to detect that their
position was truncated away after an unclean election (KIP-320).  Rules a leader applies:

* It answers from its leader-epoch cache: for an epoch it never saw, the largest epoch below it
  and that epoch's end offset; for an epoch below all it knows, ``LeaderEpoch`` -1 and
  ``EndOffset`` -1 (UNDEFINED).
* ``CurrentLeaderEpoch`` (v2+) fences the request as in Fetch: older is FENCED_LEADER_EPOCH (74),
  newer UNKNOWN_LEADER_EPOCH (75).
* ``ReplicaId`` (v3+, added with KIP-392) is the follower's broker id, or -1 for a consumer; its
  default -2 is Kafka's conventional "debug" reader id.

Version history that matters: Kafka 4.0 dropped v0-1 (KIP-896); v2 adds ``CurrentLeaderEpoch``
(KIP-320); v3 adds ``ReplicaId``; v4 is flexible.  Followers that fetch with v12+ no longer send
it: they learn divergence from the Fetch response's ``DivergingEpoch`` (KIP-595).
"""

from ..schema import INT16, INT32, INT64, STRING, Array, Field, Message, Struct

REQUEST = Message(
    "OffsetForLeaderEpochRequest", api_key=23, valid_versions="2-4", flexible_versions="4+",
    fields=[
        Field("ReplicaId", INT32, versions="3+", default=-2, ignorable=True),  # -1 consumer, -2 debug
        Field("Topics", Array(Struct("OffsetForLeaderTopic", [
            Field("Topic", STRING),
            Field("Partitions", Array(Struct("OffsetForLeaderPartition", [
                Field("Partition", INT32),
                Field("CurrentLeaderEpoch", INT32, versions="2+", default=-1, ignorable=True),
                Field("LeaderEpoch", INT32),  # the epoch whose end offset is wanted
            ]))),
        ]))),
    ],
)

RESPONSE = Message(
    "OffsetForLeaderEpochResponse", api_key=23, valid_versions="2-4", flexible_versions="4+",
    fields=[
        Field("ThrottleTimeMs", INT32, versions="2+", ignorable=True),
        Field("Topics", Array(Struct("OffsetForLeaderTopicResult", [
            Field("Topic", STRING),
            Field("Partitions", Array(Struct("EpochEndOffset", [
                Field("ErrorCode", INT16),
                Field("Partition", INT32),
                Field("LeaderEpoch", INT32, versions="1+", default=-1, ignorable=True),
                Field("EndOffset", INT64, default=-1),
            ]))),
        ]))),
    ],
)
