"""ConsumerGroupDescribe (key 69): the state of KIP-848 consumer groups, as their coordinator sees it.

The new protocol's counterpart of DescribeGroups.  Per group: its state ("Empty"; "Assigning" while
a new target assignment is pending; "Reconciling" while members converge on it; "Stable"), the
group epoch (bumped whenever a member joins, leaves or changes its subscription), the assignment
epoch (the group epoch the current target assignment was computed for), the server assignor in
use, and per member its epoch, client id and host, subscription, the partitions it owns now
(``Assignment``) and the ones the coordinator means it to own (``TargetAssignment``).  Rules a
coordinator applies:

* A group it does not know is GROUP_ID_NOT_FOUND (69) in that group's entry.
* A group that exists but is a classic group is not a consumer group: also GROUP_ID_NOT_FOUND,
  with a message saying so (describe it with DescribeGroups instead).
* A group it does not coordinate gets NOT_COORDINATOR (16) in that group's entry.

Version history that matters: v1 adds each member's ``MemberType`` (KIP-1099: 0 a classic member
of a consumer group, 1 a consumer-protocol member, -1 unknown).  Flexible from v0.
"""

from ..schema import BOOL, INT8, INT16, INT32, STRING, UUID, Array, Field, Message, Struct

REQUEST = Message(
    "ConsumerGroupDescribeRequest", api_key=69, valid_versions="0-1", flexible_versions="0+",
    fields=[
        Field("GroupIds", Array(STRING)),
        Field("IncludeAuthorizedOperations", BOOL),
    ],
)

TOPIC_PARTITIONS = Struct("TopicPartitions", [
    Field("TopicId", UUID),
    Field("TopicName", STRING),
    Field("Partitions", Array(INT32)),
])

ASSIGNMENT = Struct("Assignment", [
    Field("TopicPartitions", Array(TOPIC_PARTITIONS)),
])

RESPONSE = Message(
    "ConsumerGroupDescribeResponse", api_key=69, valid_versions="0-1", flexible_versions="0+",
    fields=[
        Field("ThrottleTimeMs", INT32),
        Field("Groups", Array(Struct("DescribedGroup", [
            Field("ErrorCode", INT16),
            Field("ErrorMessage", STRING, nullable="0+", default=None),
            Field("GroupId", STRING),
            Field("GroupState", STRING),  # "Empty", "Assigning", "Reconciling", "Stable"; "" with an error
            Field("GroupEpoch", INT32),
            Field("AssignmentEpoch", INT32),
            Field("AssignorName", STRING),
            Field("Members", Array(Struct("Member", [
                Field("MemberId", STRING),
                Field("InstanceId", STRING, nullable="0+", default=None),
                Field("RackId", STRING, nullable="0+", default=None),
                Field("MemberEpoch", INT32),
                Field("ClientId", STRING),
                Field("ClientHost", STRING),
                Field("SubscribedTopicNames", Array(STRING)),
                Field("SubscribedTopicRegex", STRING, nullable="0+", default=None),
                Field("Assignment", ASSIGNMENT),  # owned now
                Field("TargetAssignment", ASSIGNMENT),  # where the coordinator is taking the member
                Field("MemberType", INT8, versions="1+", default=-1, ignorable=True),  # KIP-1099
            ]))),
            Field("AuthorizedOperations", INT32, default=-(2**31)),  # -2^31: not asked
        ]))),
    ],
    common_structs=[TOPIC_PARTITIONS, ASSIGNMENT],
)
