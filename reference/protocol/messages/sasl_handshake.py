"""SaslHandshake (key 17): choose the SASL mechanism for a connection.

On a SASL listener the client's first requests are ApiVersions and SaslHandshake, naming a
mechanism such as "PLAIN", "SCRAM-SHA-256" or "OAUTHBEARER".  Rules a broker applies:

* A mechanism not enabled on the listener (``sasl.enabled.mechanisms``) is
  UNSUPPORTED_SASL_MECHANISM (33); the response lists the enabled ones either way.
* A handshake at the wrong point of the exchange is ILLEGAL_SASL_STATE (34).
* After a v0 handshake the SASL tokens follow as raw size-prefixed frames, outside Kafka's
  request format; after v1 they are wrapped in SaslAuthenticate requests (key 36, KIP-152).

The API is never flexible: the version cannot be raised without breaking the version negotiation
of clients up to 2.4 (KAFKA-9577).
"""

from ..schema import INT16, STRING, Array, Field, Message

REQUEST = Message(
    "SaslHandshakeRequest", api_key=17, valid_versions="0-1", flexible_versions="none",
    fields=[
        Field("Mechanism", STRING),
    ],
)

RESPONSE = Message(
    "SaslHandshakeResponse", api_key=17, valid_versions="0-1", flexible_versions="none",
    fields=[
        Field("ErrorCode", INT16),
        Field("Mechanisms", Array(STRING)),  # the mechanisms the listener has enabled
    ],
)
