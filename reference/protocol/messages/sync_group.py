"""SyncGroup (key 14): distribute the group leader's assignment (classic protocol).

After JoinGroup every member sends SyncGroup; the leader's request carries the assignment of every
member (``Assignments``), the others send an empty list.  The coordinator waits for the leader's,
stores the group (generation, members, assignment) in ``__consumer_offsets``, and answers each
member with its own ``Assignment``.  Rules a coordinator applies:

* ILLEGAL_GENERATION (22) for a generation that is not current, UNKNOWN_MEMBER_ID (25) for an
  unknown member, REBALANCE_IN_PROGRESS (27) if a new rebalance started meanwhile.
* From v5 the ``ProtocolType`` and ``ProtocolName`` must match the group's, else
  INCONSISTENT_GROUP_PROTOCOL (23) (KIP-559).

Version history that matters: v1 adds throttle time; v3 adds ``GroupInstanceId`` (static
membership, KIP-345); v4 is flexible; v5 adds the protocol type and name (KIP-559).
"""

from ..schema import BYTES, INT16, INT32, STRING, Array, Field, Message, Struct

REQUEST = Message(
    "SyncGroupRequest", api_key=14, valid_versions="0-5", flexible_versions="4+",
    fields=[
        Field("GroupId", STRING),
        Field("GenerationId", INT32),
        Field("MemberId", STRING),
        Field("GroupInstanceId", STRING, versions="3+", nullable="3+", default=None),
        Field("ProtocolType", STRING, versions="5+", nullable="5+", default=None, ignorable=True),
        Field("ProtocolName", STRING, versions="5+", nullable="5+", default=None, ignorable=True),
        Field("Assignments", Array(Struct("SyncGroupRequestAssignment", [  # only the leader fills it
            Field("MemberId", STRING),
            Field("Assignment", BYTES),  # opaque to the broker (ConsumerProtocolAssignment)
        ]))),
    ],
)

RESPONSE = Message(
    "SyncGroupResponse", api_key=14, valid_versions="0-5", flexible_versions="4+",
    fields=[
        Field("ThrottleTimeMs", INT32, versions="1+", ignorable=True),
        Field("ErrorCode", INT16),
        Field("ProtocolType", STRING, versions="5+", nullable="5+", default=None, ignorable=True),
        Field("ProtocolName", STRING, versions="5+", nullable="5+", default=None, ignorable=True),
        Field("Assignment", BYTES),
    ],
)
