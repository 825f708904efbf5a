"""Request and response headers, and which header version goes with which API version.

Every request frame is ``INT32 size`` followed by a request header and the body; every response
frame is ``INT32 size``, a response header and the body.  The header version is not sent: both
sides derive it from the API key and version, so they must agree on these rules (KIP-482, KIP-511):

* request header v1 for non-flexible API versions, v2 (adds a tagged-field section) for flexible
  ones.  (v0, without client id, only ever served ControlledShutdown v0, long removed; refka, like
  Kafka 4, does not declare it.)
* response header v0 for non-flexible API versions, v1 (adds tagged fields) for flexible ones,
  except ApiVersions, whose response header is always v0.
* In both request header versions ``client_id`` is an INT16-prefixed nullable string: header v2
  does not switch it to the compact form, so a broker can read it before knowing the version.
"""

from __future__ import annotations

from .schema import INT16, INT32, STRING, Field, Message

API_VERSIONS_KEY = 18

REQUEST_HEADER = Message(
    "RequestHeader", api_key=-1, valid_versions="1-2", flexible_versions="2+",
    fields=[
        Field("RequestApiKey", INT16),
        Field("RequestApiVersion", INT16),
        Field("CorrelationId", INT32),
        Field("ClientId", STRING, versions="1+", nullable="1+", flexible_versions="none"),
    ],
)

RESPONSE_HEADER = Message(
    "ResponseHeader", api_key=-1, valid_versions="0-1", flexible_versions="1+",
    fields=[
        Field("CorrelationId", INT32),
    ],
)


def request_header_version(api_key: int, flexible: bool) -> int:
    return 2 if flexible else 1


def response_header_version(api_key: int, flexible: bool) -> int:
    if api_key == API_VERSIONS_KEY:
        return 0
    return 1 if flexible else 0
