"""AllocateProducerIds (key 67): a KRaft broker fetches a block of producer ids from the controller (KIP-730).

InitProducerId hands out producer ids that must be unique in the whole cluster, so no broker may
invent them.  The active controller owns the counter: each AllocateProducerIds gives the asking
broker the next block of 1000 ids and writes a ProducerIdsRecord moving the counter past it, so a
new controller never hands the same block out again.  The broker's epoch must be current
(STALE_BROKER_EPOCH otherwise); a broker asks for its next block before the current one runs out.
v0 only, flexible.
"""

from ..schema import INT16, INT32, INT64, Field, Message

REQUEST = Message(
    "AllocateProducerIdsRequest", api_key=67, valid_versions="0", flexible_versions="0+",
    fields=[
        Field("BrokerId", INT32),
        Field("BrokerEpoch", INT64, default=-1),
    ],
)

RESPONSE = Message(
    "AllocateProducerIdsResponse", api_key=67, valid_versions="0", flexible_versions="0+",
    fields=[
        Field("ThrottleTimeMs", INT32),
        Field("ErrorCode", INT16),
        Field("ProducerIdStart", INT64),  # the first id of the block
        Field("ProducerIdLen", INT32),  # how many ids
    ],
)
