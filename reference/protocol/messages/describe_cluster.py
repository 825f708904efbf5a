"""DescribeCluster (key 60): the cluster id, the controller and the live brokers (KIP-700).

The admin client's replacement for using Metadata to list brokers: it carries no topic data and
can report which operations the caller may perform on the cluster.  Rules a broker applies:

* ``ControllerId`` is -1 when unknown; a broker reports some live broker for admin clients to use
  as "the controller", since in KRaft clients never talk to the controller quorum directly;
* ``ClusterAuthorizedOperations`` is a bit set of ACL operations, and INT32_MIN when it was not
  asked for (``IncludeClusterAuthorizedOperations`` false);
* ``EndpointType`` (v1, KIP-919) says whose endpoints to list: 1 brokers, 2 controllers; a broker
  asked for controllers answers ``UNSUPPORTED_ENDPOINT_TYPE``;
* fenced brokers are left out unless ``IncludeFencedBrokers`` (v2, KIP-1073) is set.

Flexible from v0.
"""

from ..schema import BOOL, INT8, INT16, INT32, STRING, Array, Field, Message, Struct

REQUEST = Message(
    "DescribeClusterRequest", api_key=60, valid_versions="0-2", flexible_versions="0+",
    fields=[
        Field("IncludeClusterAuthorizedOperations", BOOL),
        Field("EndpointType", INT8, versions="1+", default=1),  # 1 brokers, 2 controllers
        Field("IncludeFencedBrokers", BOOL, versions="2+"),
    ],
)

RESPONSE = Message(
    "DescribeClusterResponse", api_key=60, valid_versions="0-2", flexible_versions="0+",
    fields=[
        Field("ThrottleTimeMs", INT32),
        Field("ErrorCode", INT16),
        Field("ErrorMessage", STRING, nullable="0+", default=None),
        Field("EndpointType", INT8, versions="1+", default=1),
        Field("ClusterId", STRING),
        Field("ControllerId", INT32, default=-1),
        Field("Brokers", Array(Struct("DescribeClusterBroker", [
            Field("BrokerId", INT32),
            Field("Host", STRING),
            Field("Port", INT32),
            Field("Rack", STRING, nullable="0+", default=None),
            Field("IsFenced", BOOL, versions="2+"),
        ]))),
        # INT32_MIN: not requested.
        Field("ClusterAuthorizedOperations", INT32, default=-2147483648),
    ],
)
