"""AlterConfigs (key 33): replace the dynamic configuration of resources, all keys at once.

The legacy, non-incremental form: the keys sent become the resource's whole set of dynamic
overrides, and every override not sent is removed.  A client that wants to change one key must
first describe the others and send them back, which races with other writers; that is why
IncrementalAlterConfigs (key 44, KIP-339) replaced it.  Rules a broker applies:

* it answers per resource (``UNKNOWN_TOPIC_OR_PARTITION``, ``INVALID_CONFIG``,
  ``INVALID_REQUEST`` for a key given twice, an authorisation error), never for the whole request;
* a null ``Value`` removes the override;
* with ``ValidateOnly`` it checks everything and changes nothing.

v1 is v0 again; v2 is flexible.
"""

from ..schema import BOOL, INT8, INT16, INT32, STRING, Array, Field, Message, Struct

REQUEST = Message(
    "AlterConfigsRequest", api_key=33, valid_versions="0-2", flexible_versions="2+",
    fields=[
        Field("Resources", Array(Struct("AlterConfigsResource", [
            Field("ResourceType", INT8),
            Field("ResourceName", STRING),
            Field("Configs", Array(Struct("AlterableConfig", [
                Field("Name", STRING),
                Field("Value", STRING, nullable="0+"),
            ]))),
        ]))),
        Field("ValidateOnly", BOOL),
    ],
)

RESPONSE = Message(
    "AlterConfigsResponse", api_key=33, valid_versions="0-2", flexible_versions="2+",
    fields=[
        Field("ThrottleTimeMs", INT32),
        Field("Responses", Array(Struct("AlterConfigsResourceResponse", [
            Field("ErrorCode", INT16),
            Field("ErrorMessage", STRING, nullable="0+"),
            Field("ResourceType", INT8),
            Field("ResourceName", STRING),
        ]))),
    ],
)
