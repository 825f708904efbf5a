"""DescribeConfigs (key 32): read the configuration of topics, brokers and other resources.

Each resource is named by a type and a name (``ResourceType``: 2 topic, 4 broker, 8 broker
logger, 16 client metrics, 32 group).  The broker answers per resource, never failing the whole
request: an unknown topic gets ``UNKNOWN_TOPIC_OR_PARTITION`` and an unauthorised one
``TOPIC_AUTHORIZATION_FAILED`` in that resource's ``ErrorCode``.  Rules a broker applies:

* a null ``ConfigurationKeys`` means every key; an empty list means none;
* a broker resource is named by the broker id (its own config) or "" (the cluster-wide default);
* a sensitive value (a password) is returned as null with ``IsSensitive`` set;
* ``ConfigSource`` tells where the effective value came from (1 dynamic topic, 2 dynamic broker,
  3 dynamic cluster default, 4 static server.properties, 5 Kafka's default, ...), and with
  ``IncludeSynonyms`` the broker lists every lower-precedence setting of the same key (KIP-226).

v0 was removed in Kafka 4.0 (KIP-896): v1, which added synonyms and ``ConfigSource`` in place of
``IsDefault``, is the baseline.  v2 is v1 again; v3 adds the value's type and documentation
(KIP-569); v4 is flexible.
"""

from ..schema import BOOL, INT8, INT16, INT32, STRING, Array, Field, Message, Struct

REQUEST = Message(
    "DescribeConfigsRequest", api_key=32, valid_versions="1-4", flexible_versions="4+",
    fields=[
        Field("Resources", Array(Struct("DescribeConfigsResource", [
            Field("ResourceType", INT8),
            Field("ResourceName", STRING),
            Field("ConfigurationKeys", Array(STRING), nullable="0+"),  # null: all keys
        ]))),
        Field("IncludeSynonyms", BOOL, versions="1+", default=False),
        Field("IncludeDocumentation", BOOL, versions="3+", default=False),
    ],
)

RESPONSE = Message(
    "DescribeConfigsResponse", api_key=32, valid_versions="1-4", flexible_versions="4+",
    fields=[
        Field("ThrottleTimeMs", INT32),
        Field("Results", Array(Struct("DescribeConfigsResult", [
            Field("ErrorCode", INT16),
            Field("ErrorMessage", STRING, nullable="0+"),
            Field("ResourceType", INT8),
            Field("ResourceName", STRING),
            Field("Configs", Array(Struct("DescribeConfigsResourceResult", [
                Field("Name", STRING),
                Field("Value", STRING, nullable="0+"),  # null for a sensitive config
                Field("ReadOnly", BOOL),
                Field("ConfigSource", INT8, versions="1+", default=-1, ignorable=True),
                # Only in the removed v0; kafka-python's copy of the definition still lists it.
                Field("IsDefault", BOOL, versions="0"),
                Field("IsSensitive", BOOL),
                Field("Synonyms", Array(Struct("DescribeConfigsSynonym", [
                    Field("Name", STRING, versions="1+"),
                    Field("Value", STRING, versions="1+", nullable="0+"),
                    Field("Source", INT8, versions="1+"),
                ])), versions="1+", ignorable=True),
                Field("ConfigType", INT8, versions="3+", default=0, ignorable=True),
                Field("Documentation", STRING, versions="3+", nullable="0+", ignorable=True),
            ]))),
        ]))),
    ],
)
