"""DeleteGroups (key 42): remove consumer groups and their committed offsets.

Sent to each group's coordinator.  Rules the coordinator applies, per group:

* a group with members is ``NON_EMPTY_GROUP``: only an Empty (or Dead) group can be deleted;
* an unknown group is ``GROUP_ID_NOT_FOUND``; a group held by another coordinator is
  ``NOT_COORDINATOR``; while the coordinator loads the group it is ``COORDINATOR_LOAD_IN_PROGRESS``;
* deletion writes tombstones for the group's metadata and every committed offset to
  ``__consumer_offsets``.

v1 is v0 again; v2 is flexible.
"""

from ..schema import INT16, INT32, STRING, Array, Field, Message, Struct

REQUEST = Message(
    "DeleteGroupsRequest", api_key=42, valid_versions="0-2", flexible_versions="2+",
    fields=[
        Field("GroupsNames", Array(STRING)),  # Kafka's spelling
    ],
)

RESPONSE = Message(
    "DeleteGroupsResponse", api_key=42, valid_versions="0-2", flexible_versions="2+",
    fields=[
        Field("ThrottleTimeMs", INT32),
        Field("Results", Array(Struct("DeletableGroupResult", [
            Field("GroupId", STRING),
            Field("ErrorCode", INT16),
        ]))),
    ],
)
