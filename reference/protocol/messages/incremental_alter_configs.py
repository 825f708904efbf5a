"""IncrementalAlterConfigs (key 44): change individual configuration keys of resources (KIP-339).

Unlike AlterConfigs, each key carries its own operation and keys not mentioned are left alone:
``ConfigOperation`` 0 SET, 1 DELETE (back to the next lower-precedence value), 2 APPEND and
3 SUBTRACT (for list-valued keys such as ``cleanup.policy``).  Rules a broker applies:

* the answer is per resource: ``UNKNOWN_TOPIC_OR_PARTITION``, ``INVALID_CONFIG`` (unknown key,
  bad value, APPEND/SUBTRACT on a non-list key), ``INVALID_REQUEST`` for a key given twice in one
  resource, or an authorisation error;
* a resource's changes are applied all or none;
* with ``ValidateOnly`` it checks everything and changes nothing.

v1 is flexible.
"""

from ..schema import BOOL, INT8, INT16, INT32, STRING, Array, Field, Message, Struct

REQUEST = Message(
    "IncrementalAlterConfigsRequest", api_key=44, valid_versions="0-1", flexible_versions="1+",
    fields=[
        Field("Resources", Array(Struct("AlterConfigsResource", [
            Field("ResourceType", INT8),
            Field("ResourceName", STRING),
            Field("Configs", Array(Struct("AlterableConfig", [
                Field("Name", STRING),
                Field("ConfigOperation", INT8),  # 0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT
                Field("Value", STRING, nullable="0+"),
            ]))),
        ]))),
        Field("ValidateOnly", BOOL),
    ],
)

RESPONSE = Message(
    "IncrementalAlterConfigsResponse", api_key=44, valid_versions="0-1", flexible_versions="1+",
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
