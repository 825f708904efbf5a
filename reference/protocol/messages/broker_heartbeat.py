"""BrokerHeartbeat (key 63): a KRaft broker's periodic liveness and lifecycle report (KIP-631).

Sent to the active controller every ``broker.heartbeat.interval.ms``.  A broker not heard from for
``broker.session.timeout.ms`` is fenced: its leaderships move elsewhere.  The heartbeat also
drives the broker's lifecycle, with the controller's verdict in the response:

* a newly registered broker is fenced; it is unfenced (``IsFenced`` false) once
  ``CurrentMetadataOffset`` shows it has replayed the metadata log up to where the controller
  registered it (``IsCaughtUp``);
* ``WantFence`` asks to stay or become fenced; ``WantShutDown`` starts a controlled shutdown, in
  which the controller moves leadership away and then answers ``ShouldShutDown``;
* a stale ``BrokerEpoch`` (an earlier registration) is ``STALE_BROKER_EPOCH``; an unknown broker
  ``BROKER_ID_NOT_REGISTERED``.

v1 reports failed log directories (tagged, KIP-858); v2 the cordoned ones (tagged, null before the
broker reaches its recovery state).  Flexible from v0.
"""

from ..schema import BOOL, INT16, INT32, INT64, UUID, Array, Field, Message

REQUEST = Message(
    "BrokerHeartbeatRequest", api_key=63, valid_versions="0-2", flexible_versions="0+",
    fields=[
        Field("BrokerId", INT32),
        Field("BrokerEpoch", INT64, default=-1),
        Field("CurrentMetadataOffset", INT64),  # how far the broker has replayed the metadata log
        Field("WantFence", BOOL),
        Field("WantShutDown", BOOL),
        Field("OfflineLogDirs", Array(UUID), versions="1+", tag=0, tagged_versions="1+"),
        Field("CordonedLogDirs", Array(UUID), versions="2+", nullable="2+", tag=1, tagged_versions="2+",
              default=None),
    ],
)

RESPONSE = Message(
    "BrokerHeartbeatResponse", api_key=63, valid_versions="0-2", flexible_versions="0+",
    fields=[
        Field("ThrottleTimeMs", INT32),
        Field("ErrorCode", INT16),
        Field("IsCaughtUp", BOOL, default=False),
        Field("IsFenced", BOOL, default=True),
        Field("ShouldShutDown", BOOL),
    ],
)
