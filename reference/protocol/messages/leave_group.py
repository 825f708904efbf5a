"""LeaveGroup (key 13): members leave a consumer group now instead of timing out (classic protocol).

A consumer that closes sends it so that the group rebalances at once rather than after the session
timeout.  The coordinator removes each member and, if the group is not empty, starts a rebalance.
Rules a coordinator applies:

* An unknown member is UNKNOWN_MEMBER_ID (25); from v3 this is reported per member, and the
  top-level error is kept for errors about the whole group (e.g. NOT_COORDINATOR, 16).
* A member named by ``GroupInstanceId`` whose member id does not match is FENCED_INSTANCE_ID (82).
  Static members normally do not leave on close, so a restart causes no rebalance (KIP-345); an
  admin removes them with this request.

Version history that matters: v3 replaces the single ``MemberId`` by a batch of ``Members``
identified by member id and/or group instance id (KIP-345); v4 is flexible; v5 adds the reason for
leaving (KIP-800).
"""

from ..schema import INT16, INT32, STRING, Array, Field, Message, Struct

REQUEST = Message(
    "LeaveGroupRequest", api_key=13, valid_versions="0-5", flexible_versions="4+",
    fields=[
        Field("GroupId", STRING),
        Field("MemberId", STRING, versions="0-2"),
        Field("Members", Array(Struct("MemberIdentity", [
            Field("MemberId", STRING, versions="3+"),
            Field("GroupInstanceId", STRING, versions="3+", nullable="3+", default=None),
            Field("Reason", STRING, versions="5+", nullable="5+", default=None, ignorable=True),
        ])), versions="3+"),
    ],
)

RESPONSE = Message(
    "LeaveGroupResponse", api_key=13, valid_versions="0-5", flexible_versions="4+",
    fields=[
        Field("ThrottleTimeMs", INT32, versions="1+", ignorable=True),
        Field("ErrorCode", INT16),
        Field("Members", Array(Struct("MemberResponse", [
            Field("MemberId", STRING, versions="3+"),
            Field("GroupInstanceId", STRING, versions="3+", nullable="3+"),
            Field("ErrorCode", INT16, versions="3+"),
        ])), versions="3+"),
    ],
)
