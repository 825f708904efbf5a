"""BrokerRegistration (key 62): a broker joins a KRaft cluster by registering with the controller (KIP-631).

Sent at startup to the active controller.  The controller writes a registration record to the
metadata log; the offset of that record becomes the broker's epoch, which the broker then sends
in every heartbeat and AlterPartition and which fences requests from its earlier lives.  Rules the
controller applies:

* ``ClusterId`` must match (``INCONSISTENT_CLUSTER_ID``);
* ``IncarnationId`` is a random id per process start: a second registration with the same broker
  id and a different incarnation while the old one's session is alive is
  ``DUPLICATE_BROKER_REGISTRATION`` (two processes configured with one ``node.id``);
* every finalized feature level must lie within the broker's supported range
  (``UNSUPPORTED_VERSION`` otherwise);
* a registered broker stays fenced, holding no leadership, until its heartbeats report it has
  caught up with the metadata log.

v1 adds the ZooKeeper-migration flag (KIP-866); v2 the broker's log directory ids (KIP-858,
JBOD); v3 the previous broker epoch, which lets the controller tell a clean restart from an
unclean one and keep the eligible-leader-replica set sound (KIP-966); v4 is v3 with a response
fix (KAFKA-17011).  Flexible from v0.
"""

from ..schema import BOOL, INT16, INT32, INT64, STRING, UINT16, UUID, Array, Field, Message, Struct

REQUEST = Message(
    "BrokerRegistrationRequest", api_key=62, valid_versions="0-4", flexible_versions="0+",
    fields=[
        Field("BrokerId", INT32),
        Field("ClusterId", STRING),
        Field("IncarnationId", UUID),  # random per process start
        Field("Listeners", Array(Struct("Listener", [
            Field("Name", STRING),
            Field("Host", STRING),
            Field("Port", UINT16),
            Field("SecurityProtocol", INT16),
        ]))),
        Field("Features", Array(Struct("Feature", [
            Field("Name", STRING),
            Field("MinSupportedVersion", INT16),
            Field("MaxSupportedVersion", INT16),
        ]))),
        Field("Rack", STRING, nullable="0+"),
        Field("IsMigratingZkBroker", BOOL, versions="1+", default=False),
        Field("LogDirs", Array(UUID), versions="2+", ignorable=True),
        # -1: no previous epoch (first start, or the broker did not shut down cleanly).
        Field("PreviousBrokerEpoch", INT64, versions="3+", default=-1, ignorable=True),
    ],
)

RESPONSE = Message(
    "BrokerRegistrationResponse", api_key=62, valid_versions="0-4", flexible_versions="0+",
    fields=[
        Field("ThrottleTimeMs", INT32),
        Field("ErrorCode", INT16),
        Field("BrokerEpoch", INT64, default=-1),  # the offset of the registration record
    ],
)
