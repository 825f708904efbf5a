"""ListGroups (key 16): the groups a broker coordinates.

Admin tools send it to every broker and merge the answers (``kafka-consumer-groups --list``); each
broker lists only the groups whose ``__consumer_offsets`` partition it leads.  Rules a broker
applies:

* ``StatesFilter`` (v4+, KIP-518) and ``TypesFilter`` (v5+, KIP-848) keep only groups in one of the
  given states or of one of the given types ("classic", "consumer", "share"); an empty filter keeps
  all.
* While a coordinator partition is still loading the answer is COORDINATOR_LOAD_IN_PROGRESS (14).

Version history that matters: v1 adds throttle time; v3 is flexible; v4 the state filter and
each group's state; v5 the type filter and each group's type.
"""

from ..schema import INT16, INT32, STRING, Array, Field, Message, Struct

REQUEST = Message(
    "ListGroupsRequest", api_key=16, valid_versions="0-5", flexible_versions="3+",
    fields=[
        Field("StatesFilter", Array(STRING), versions="4+"),  # empty: all states
        Field("TypesFilter", Array(STRING), versions="5+"),  # empty: all types
    ],
)

RESPONSE = Message(
    "ListGroupsResponse", api_key=16, valid_versions="0-5", flexible_versions="3+",
    fields=[
        Field("ThrottleTimeMs", INT32, versions="1+", ignorable=True),
        Field("ErrorCode", INT16),
        Field("Groups", Array(Struct("ListedGroup", [
            Field("GroupId", STRING),
            Field("ProtocolType", STRING),  # "consumer" for consumer groups, "" for others
            Field("GroupState", STRING, versions="4+", ignorable=True),
            Field("GroupType", STRING, versions="5+", ignorable=True),
        ]))),
    ],
)
