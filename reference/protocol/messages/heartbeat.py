"""Heartbeat (key 12): a group member's "still alive" between rebalances (classic protocol).

A member sends it every ``heartbeat.interval.ms``; a member not heard from within its session
timeout is removed and the group rebalances.  The coordinator also uses the answer to tell members
to rejoin.  Rules a coordinator applies:

* REBALANCE_IN_PROGRESS (27) while the group is preparing a rebalance: the member must send
  JoinGroup.
* ILLEGAL_GENERATION (22) when ``GenerationId`` is not the current one, UNKNOWN_MEMBER_ID (25) for
  a member it does not know, FENCED_INSTANCE_ID (82) when a static member's ``GroupInstanceId``
  now belongs to another member id.

Version history that matters: v1 adds throttle time; v3 adds ``GroupInstanceId`` (static
membership, KIP-345); v4 is flexible.
"""

from ..schema import INT16, INT32, STRING, Field, Message

REQUEST = Message(
    "HeartbeatRequest", api_key=12, valid_versions="0-4", flexible_versions="4+",
    fields=[
        Field("GroupId", STRING),
        Field("GenerationId", INT32),
        Field("MemberId", STRING),
        Field("GroupInstanceId", STRING, versions="3+", nullable="3+", default=None),
    ],
)

RESPONSE = Message(
    "HeartbeatResponse", api_key=12, valid_versions="0-4", flexible_versions="4+",
    fields=[
        Field("ThrottleTimeMs", INT32, versions="1+", ignorable=True),
        Field("ErrorCode", INT16),
    ],
)
