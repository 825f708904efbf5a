"""ApiVersions (key 18): which APIs, and which versions of each, the broker serves.

A client sends it first on every connection and then speaks, per API, the highest version both
sides support.  Two rules make it the one API that must always be understood (KIP-511):

* its response always uses response header v0, even in flexible versions, because a client that
  sent a version the broker does not know cannot know which header the broker will answer with;
* a request with a version the broker does not know is answered with a v0 body carrying
  ``UNSUPPORTED_VERSION`` and the full API list, so the client can retry with a version it finds
  there.

v3 (flexible) adds the client's software name and version, and the broker's feature flags as
tagged fields (KIP-584).
"""

from ..schema import BOOL, INT16, INT32, INT64, STRING, Array, Field, Message, Struct

REQUEST = Message(
    "ApiVersionsRequest", api_key=18, valid_versions="0-4", flexible_versions="3+",
    fields=[
        Field("ClientSoftwareName", STRING, versions="3+", ignorable=True),
        Field("ClientSoftwareVersion", STRING, versions="3+", ignorable=True),
    ],
)

RESPONSE = Message(
    "ApiVersionsResponse", api_key=18, valid_versions="0-4", flexible_versions="3+",
    fields=[
        Field("ErrorCode", INT16),
        Field("ApiKeys", Array(Struct("ApiVersion", [
            Field("ApiKey", INT16),
            Field("MinVersion", INT16),
            Field("MaxVersion", INT16),
        ]))),
        Field("ThrottleTimeMs", INT32, versions="1+", ignorable=True),
        Field("SupportedFeatures", Array(Struct("SupportedFeatureKey", [
            Field("Name", STRING, versions="3+"),
            Field("MinVersion", INT16, versions="3+"),
            Field("MaxVersion", INT16, versions="3+"),
        ])), versions="3+", tag=0, tagged_versions="3+", ignorable=True),
        Field("FinalizedFeaturesEpoch", INT64, versions="3+", tag=1, tagged_versions="3+",
              default=-1, ignorable=True),
        Field("FinalizedFeatures", Array(Struct("FinalizedFeatureKey", [
            Field("Name", STRING, versions="3+"),
            Field("MaxVersionLevel", INT16, versions="3+"),
            Field("MinVersionLevel", INT16, versions="3+"),
        ])), versions="3+", tag=2, tagged_versions="3+", ignorable=True),
        Field("ZkMigrationReady", BOOL, versions="3+", tag=3, tagged_versions="3+",
              default=False, ignorable=True),
    ],
)
