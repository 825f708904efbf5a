"""InitProducerId (22): a producer id and epoch for an idempotent or transactional producer.

Without a transactional id the producer id comes from ``reference.broker.producer_ids``; with one,
the transaction coordinator of the id decides (``reference.broker.txn.coordinator``, rule 1;
NOT_COORDINATOR on another broker), and answers once its write is replicated.  What the wire adds: PRODUCER_FENCED exists from v4 on; older clients are told
INVALID_PRODUCER_EPOCH instead, as Kafka does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import ErrorCode, Errors, KafkaError
from ...protocol.apis import API_BY_KEY
from ...protocol.frames import Request
from ...protocol.schema import Data
from ..pending import Pending
from ..txn.coordinator import InitProducerIdResult

if TYPE_CHECKING:
    from ..core import Broker

API = API_BY_KEY[22]
PRODUCER_FENCED_VERSION = 4


def handle_init_producer_id(broker: Broker, request: Request, now_ms: int) -> Data | Pending:
    body = request.body
    if body.transactional_id is not None:
        service = broker.transactions
        error = service.coordinator_error(body.transactional_id)
        result = InitProducerIdResult(error)
        if error is Errors.NONE:
            result = service.coordinator.init_producer_id(
                body.transactional_id, body.transaction_timeout_ms, body.producer_id, body.producer_epoch, now_ms)

        def answer(code: ErrorCode) -> Data:
            if code is Errors.PRODUCER_FENCED and request.version < PRODUCER_FENCED_VERSION:
                code = Errors.INVALID_PRODUCER_EPOCH
            if code is not Errors.NONE:
                return API.response.make(error_code=code.code, producer_id=-1, producer_epoch=-1)
            return API.response.make(error_code=code.code, producer_id=result.producer_id,
                                     producer_epoch=result.producer_epoch)

        return service.answer_when_committed(body.transactional_id, result.error, answer, now_ms)
    try:
        producer_id, epoch = broker.producer_ids.init_producer_id()
    except KafkaError as error:  # COORDINATOR_LOAD_IN_PROGRESS while a KRaft broker awaits its id block
        return API.response.make(error_code=error.error.code, producer_id=-1, producer_epoch=-1)
    return API.response.make(error_code=Errors.NONE.code, producer_id=producer_id, producer_epoch=epoch)
