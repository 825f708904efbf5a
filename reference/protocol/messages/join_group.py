"""JoinGroup (key 11): enter a consumer group's rebalance (the classic group protocol).

Every member of a group sends JoinGroup when it starts, when its subscription changes and when the
coordinator signals a rebalance (REBALANCE_IN_PROGRESS, 27, on a heartbeat).  The coordinator holds
the requests until every known member has rejoined or the rebalance timeout has passed, chooses a
protocol (assignor) that all members support, bumps the generation and answers everyone; only the
leader's answer lists the members and their subscriptions (``Metadata``), so that the leader
computes the assignment and sends it with SyncGroup.  Rules a coordinator applies:

* ``SessionTimeoutMs`` must lie within ``group.min.session.timeout.ms`` and
  ``group.max.session.timeout.ms``, else INVALID_SESSION_TIMEOUT (26).
* ``ProtocolType`` ("consumer") and at least one protocol name must match the group's, else
  INCONSISTENT_GROUP_PROTOCOL (23).
* An unknown non-empty ``MemberId`` is UNKNOWN_MEMBER_ID (25).  From v4, a first join with an empty
  member id is answered MEMBER_ID_REQUIRED (79) with a member id to rejoin with (KIP-394).
* A group already at ``group.max.size`` answers GROUP_MAX_SIZE_REACHED (81).

Version history that matters: v1 separates the rebalance timeout from the session timeout; v5
adds static membership, a ``GroupInstanceId`` that survives restarts (KIP-345); v6 is flexible;
v7 returns the protocol type (KIP-559); v8 carries the reason for rejoining (KIP-800); v9 lets a
restarted static leader skip computing an assignment (``SkipAssignment``, KIP-814).
"""

from ..schema import BOOL, BYTES, INT16, INT32, STRING, Array, Field, Message, Struct

REQUEST = Message(
    "JoinGroupRequest", api_key=11, valid_versions="0-9", flexible_versions="6+",
    fields=[
        Field("GroupId", STRING),
        Field("SessionTimeoutMs", INT32),
        # Absent in v0, where the session timeout is also the rebalance timeout.
        Field("RebalanceTimeoutMs", INT32, versions="1+", default=-1, ignorable=True),
        Field("MemberId", STRING),  # "" on the first join
        Field("GroupInstanceId", STRING, versions="5+", nullable="5+", default=None),
        Field("ProtocolType", STRING),  # "consumer" for consumer groups
        Field("Protocols", Array(Struct("JoinGroupRequestProtocol", [
            Field("Name", STRING),  # an assignor, e.g. "range" or "cooperative-sticky"
            Field("Metadata", BYTES),  # the member's subscription, opaque to the broker
        ]))),
        Field("Reason", STRING, versions="8+", nullable="8+", default=None, ignorable=True),
    ],
)

RESPONSE = Message(
    "JoinGroupResponse", api_key=11, valid_versions="0-9", flexible_versions="6+",
    fields=[
        Field("ThrottleTimeMs", INT32, versions="2+", ignorable=True),
        Field("ErrorCode", INT16),
        Field("GenerationId", INT32, default=-1),
        Field("ProtocolType", STRING, versions="7+", nullable="7+", default=None, ignorable=True),
        Field("ProtocolName", STRING, nullable="7+"),
        Field("Leader", STRING),  # the leader's member id
        Field("SkipAssignment", BOOL, versions="9+", default=False),
        Field("MemberId", STRING),
        Field("Members", Array(Struct("JoinGroupResponseMember", [  # empty except for the leader
            Field("MemberId", STRING),
            Field("GroupInstanceId", STRING, versions="5+", nullable="5+", default=None, ignorable=True),
            Field("Metadata", BYTES),
        ]))),
    ],
)
