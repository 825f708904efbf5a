"""Producer ids in a KRaft cluster: blocks handed out by the active controller (KIP-730).

Theory of operation
-------------------
Mirrors Kafka's ``RPCProducerIdManager``.  On one node the broker may count producer ids itself
(``reference.broker.producer_ids``); in a cluster it must not, or two brokers would give two
producers the same id, and the partition leader would then take the second producer's first batch
for a retry of the first one's and drop it, answering success.  So:

1. A broker asks the active controller for a block (AllocateProducerIds, key 67, with its broker
   epoch); the controller answers with the next 1000 ids and records the move in the metadata log.
2. InitProducerId takes ids from the current block.  Once 90% of it is used, the next block is
   asked for ahead of time, so a busy broker rarely waits.
3. With the block used up and no next block yet, InitProducerId fails with
   COORDINATOR_LOAD_IN_PROGRESS ("Producer ID block is not available yet"): a retriable error the
   clients retry, as Kafka answers it.

Invariants: an id is handed out at most once in the cluster (blocks never overlap, the controller
guarantees that); at most one AllocateProducerIds is in flight.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..client.outbox import OutboundRequest, Outbox
from ..errors import Errors, KafkaError
from ..protocol.apis import API_BY_KEY
from ..protocol.schema import Data

log = logging.getLogger("refka.node.producer_ids")

ALLOCATE_PRODUCER_IDS = API_BY_KEY[67]
PREFETCH_FRACTION = 0.9  # Kafka asks for the next block once 90% of the current one is used


class ControllerProducerIdBlocks:
    def __init__(self, broker_id: int, broker_epoch: Callable[[], int], controller: Callable[[], int | None],
                 outbox: Outbox) -> None:
        self.broker_id = broker_id
        self.broker_epoch = broker_epoch
        self.controller = controller
        self.outbox = outbox
        self._next_id = 0
        self._block_end = 0  # the current block is [_next_id, _block_end)
        self._prefetch_at = 0
        self._next_block: tuple[int, int] | None = None
        self._in_flight = False

    def next_producer_id(self) -> int:
        """The next id of the current block; COORDINATOR_LOAD_IN_PROGRESS while none is available."""
        if self._next_id >= self._block_end and self._next_block is not None:
            start, length = self._next_block
            self._next_id, self._block_end = start, start + length
            self._prefetch_at = start + int(length * PREFETCH_FRACTION)
            self._next_block = None
        if self._next_id >= self._block_end:
            self._request_block()
            raise KafkaError(Errors.COORDINATOR_LOAD_IN_PROGRESS, "Producer ID block is not available yet")
        producer_id = self._next_id
        self._next_id += 1
        if self._next_id >= self._prefetch_at and self._next_block is None:
            self._request_block()
        return producer_id

    def _request_block(self) -> None:
        controller = self.controller()
        if self._in_flight or controller is None:
            return
        self._in_flight = True
        body = ALLOCATE_PRODUCER_IDS.request.make(broker_id=self.broker_id, broker_epoch=self.broker_epoch())
        self.outbox.send(OutboundRequest(controller, ALLOCATE_PRODUCER_IDS.key, body, self._on_block, self._on_failure))

    def _on_block(self, response: Data, now_ms: int) -> None:
        self._in_flight = False
        if response.error_code != Errors.NONE.code:
            log.info("broker %d: AllocateProducerIds refused with error %d", self.broker_id, response.error_code)
            return
        self._next_block = (response.producer_id_start, response.producer_id_len)

    def _on_failure(self, error: Exception, now_ms: int) -> None:
        self._in_flight = False
