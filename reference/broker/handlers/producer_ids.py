"""InitProducerId (22): a producer id and epoch for an idempotent or transactional producer.

The rules are in ``reference.broker.producer_ids``.  What the wire adds: PRODUCER_FENCED exists
from v4 on; older clients are told INVALID_PRODUCER_EPOCH instead, as Kafka does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import Errors, KafkaError
from ...protocol.apis import API_BY_KEY
from ...protocol.frames import Request
from ...protocol.schema import Data

if TYPE_CHECKING:
    from ..core import Broker

API = API_BY_KEY[22]
PRODUCER_FENCED_VERSION = 4


def handle_init_producer_id(broker: Broker, request: Request, now_ms: int) -> Data:
    body = request.body
    try:
        producer_id, epoch = broker.producer_ids.init_producer_id(
            body.transactional_id, body.producer_id, body.producer_epoch
        )
    except KafkaError as error:
        code = error.error
        if code is Errors.PRODUCER_FENCED and request.version < PRODUCER_FENCED_VERSION:
            code = Errors.INVALID_PRODUCER_EPOCH
        return API.response.make(error_code=code.code, producer_id=-1, producer_epoch=-1)
    return API.response.make(error_code=Errors.NONE.code, producer_id=producer_id, producer_epoch=epoch)
