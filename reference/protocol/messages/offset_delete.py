"""OffsetDelete (key 47): delete a group's committed offsets for some partitions (KIP-496).

Lets an operator drop the offsets of topics a group no longer reads, without deleting the whole
group.  Rules the group coordinator applies:

* group-level errors go in the top-level ``ErrorCode``: ``GROUP_ID_NOT_FOUND``,
  ``NOT_COORDINATOR``, ``INVALID_GROUP_ID``, and ``NON_EMPTY_GROUP`` for a group with members
  whose subscriptions the coordinator cannot read (not a consumer-protocol group);
* a partition of a topic the group's live members are subscribed to is refused with
  ``GROUP_SUBSCRIBED_TO_TOPIC``: its offsets are still in use;
* otherwise each offset is removed by a tombstone in ``__consumer_offsets``, and a partition
  without a committed offset is simply reported as success.

One version, not flexible.
"""

from ..schema import INT16, INT32, STRING, Array, Field, Message, Struct

REQUEST = Message(
    "OffsetDeleteRequest", api_key=47, valid_versions="0", flexible_versions="none",
    fields=[
        Field("GroupId", STRING),
        Field("Topics", Array(Struct("OffsetDeleteRequestTopic", [
            Field("Name", STRING),
            Field("Partitions", Array(Struct("OffsetDeleteRequestPartition", [
                Field("PartitionIndex", INT32),
            ]))),
        ]))),
    ],
)

RESPONSE = Message(
    "OffsetDeleteResponse", api_key=47, valid_versions="0", flexible_versions="none",
    fields=[
        Field("ErrorCode", INT16),
        Field("ThrottleTimeMs", INT32, ignorable=True),
        Field("Topics", Array(Struct("OffsetDeleteResponseTopic", [
            Field("Name", STRING),
            Field("Partitions", Array(Struct("OffsetDeleteResponsePartition", [
                Field("PartitionIndex", INT32),
                Field("ErrorCode", INT16),
            ]))),
        ]))),
    ],
)
