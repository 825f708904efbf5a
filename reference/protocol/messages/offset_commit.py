"""OffsetCommit (key 8): store a consumer group's positions.

A consumer commits, per partition, the offset of the next record it will read, optionally with
the leader epoch of the last record consumed and a metadata string.  The group coordinator writes
them to ``__consumer_offsets`` and answers per partition once they are replicated.  Rules a
coordinator applies:

* A commit for a group with members must come from a member of the current generation:
  ILLEGAL_GENERATION (22), UNKNOWN_MEMBER_ID (25), REBALANCE_IN_PROGRESS (27) otherwise; with the
  KIP-848 protocol (v9+) the field carries the member epoch and a stale one is STALE_MEMBER_EPOCH
  (113).  A commit with generation -1 and an empty member id is a "simple" commit, accepted only
  while the group has no members.
* ``CommittedMetadata`` longer than ``offset.metadata.max.bytes`` is OFFSET_METADATA_TOO_LARGE (12).
* How long offsets are kept is the broker's ``offsets.retention.minutes``; the per-request
  ``RetentionTimeMs`` of v2-4 was dropped in v5 (KIP-211).

Version history that matters: Kafka 4.0 dropped v0-1 (KIP-896; ``CommitTimestamp`` was v1 only);
v6 adds the committed leader epoch (KIP-320); v7 ``GroupInstanceId`` (KIP-345); v8 is flexible;
v9 works with the new consumer group protocol (KIP-848); v10 names topics by id.
"""

from ..schema import INT16, INT32, INT64, STRING, UUID, Array, Field, Message, Struct

REQUEST = Message(
    "OffsetCommitRequest", api_key=8, valid_versions="2-10", flexible_versions="8+",
    fields=[
        Field("GroupId", STRING),
        # The generation (classic protocol) or member epoch (KIP-848); -1 for a simple commit.
        Field("GenerationIdOrMemberEpoch", INT32, versions="1+", default=-1, ignorable=True),
        Field("MemberId", STRING, versions="1+", ignorable=True),
        Field("GroupInstanceId", STRING, versions="7+", nullable="7+", default=None),
        Field("RetentionTimeMs", INT64, versions="2-4", default=-1, ignorable=True),  # -1: broker default
        Field("Topics", Array(Struct("OffsetCommitRequestTopic", [
            Field("Name", STRING, versions="0-9", ignorable=True),
            Field("TopicId", UUID, versions="10+", ignorable=True),
            Field("Partitions", Array(Struct("OffsetCommitRequestPartition", [
                Field("PartitionIndex", INT32),
                Field("CommittedOffset", INT64),  # the next offset to consume
                Field("CommittedLeaderEpoch", INT32, versions="6+", default=-1, ignorable=True),
                Field("CommitTimestamp", INT64, versions="1", default=-1),
                Field("CommittedMetadata", STRING, nullable="0+"),
            ]))),
        ]))),
    ],
)

RESPONSE = Message(
    "OffsetCommitResponse", api_key=8, valid_versions="2-10", flexible_versions="8+",
    fields=[
        Field("ThrottleTimeMs", INT32, versions="3+", ignorable=True),
        Field("Topics", Array(Struct("OffsetCommitResponseTopic", [
            Field("Name", STRING, versions="0-9", ignorable=True),
            Field("TopicId", UUID, versions="10+", ignorable=True),
            Field("Partitions", Array(Struct("OffsetCommitResponsePartition", [
                Field("PartitionIndex", INT32),
                Field("ErrorCode", INT16),
            ]))),
        ]))),
    ],
)
