"""DescribeGroups (key 15): the state, protocol and members of consumer groups.

Admin tools (``kafka-consumer-groups --describe``) send it to each group's coordinator.  For each
group the coordinator answers its state ("Empty", "PreparingRebalance", "CompletingRebalance",
"Stable", "Dead"), protocol type and chosen protocol (assignor), and per member its client id,
host, subscription (``MemberMetadata``) and assignment (``MemberAssignment``).  Rules a coordinator
applies:

* A group it does not know is described with state "Dead" and no error before v6; from v6 it is
  GROUP_ID_NOT_FOUND (69) (KIP-1043).
* A group it does not coordinate gets NOT_COORDINATOR (16) in that group's entry.

Version history that matters: v3 can return the ACL operations the caller may perform on the group
(KIP-430; -2^31 means "not asked"); v4 adds each member's ``GroupInstanceId`` (KIP-345); v5 is
flexible; v6 adds an error message and GROUP_ID_NOT_FOUND.
"""

from ..schema import BOOL, BYTES, INT16, INT32, STRING, Array, Field, Message, Struct

REQUEST = Message(
    "DescribeGroupsRequest", api_key=15, valid_versions="0-6", flexible_versions="5+",
    fields=[
        Field("Groups", Array(STRING)),
        Field("IncludeAuthorizedOperations", BOOL, versions="3+"),
    ],
)

RESPONSE = Message(
    "DescribeGroupsResponse", api_key=15, valid_versions="0-6", flexible_versions="5+",
    fields=[
        Field("ThrottleTimeMs", INT32, versions="1+", ignorable=True),
        Field("Groups", Array(Struct("DescribedGroup", [
            Field("ErrorCode", INT16),
            Field("ErrorMessage", STRING, versions="6+", nullable="6+", default=None),
            Field("GroupId", STRING),
            Field("GroupState", STRING),  # e.g. "Stable", "Empty", "Dead"
            Field("ProtocolType", STRING),
            Field("ProtocolData", STRING),  # the chosen assignor's name
            Field("Members", Array(Struct("DescribedGroupMember", [
                Field("MemberId", STRING),
                Field("GroupInstanceId", STRING, versions="4+", nullable="4+", default=None, ignorable=True),
                Field("ClientId", STRING),
                Field("ClientHost", STRING),
                Field("MemberMetadata", BYTES),
                Field("MemberAssignment", BYTES),
            ]))),
            Field("AuthorizedOperations", INT32, versions="3+", default=-(2**31)),  # -2^31: not asked
        ]))),
    ],
)
