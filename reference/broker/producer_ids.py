"""Producer ids and epochs: what InitProducerId (22) hands out.

Theory of operation
-------------------
An idempotent producer is identified by a *producer id* (int64) and an *epoch* (int16).  The broker
uses the pair to deduplicate retried batches (``reference.broker.log.producer_state``).  Ids must never
be handed out twice, across restarts too.  Kafka's controller allocates ids in blocks of 1000 and
records each block in the metadata log before any id of it is used; refka does the same with a
small file, ``producer-ids.json``, written (and fsynced) before a new block is used.  A crash may
skip the rest of a block, never reuse an id.

InitProducerId without a transactional id gets a fresh producer id with epoch 0 from here.  An
idempotent producer that must reset (after OUT_OF_ORDER_SEQUENCE_NUMBER, say) bumps its epoch on its
own (KIP-360), so the broker never needs to remember it.  A transactional id is the transaction
coordinator's (``reference.broker.txn``): it binds the id to a producer id and fences by epoch in
``__transaction_state``, drawing its producer ids from here.

In a KRaft cluster the ids come from the controller instead (``block_source``, set by the node to
a :class:`reference.node.producer_id_blocks.ControllerProducerIdBlocks`): a broker that counted on
its own would hand out ids another broker hands out too.

Invariant: producer ids handed out are unique and increasing, across restarts too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

from reference import durability

BLOCK_SIZE = 1000
STATE_FILE = "producer-ids.json"


class ProducerIdSource(Protocol):
    def next_producer_id(self) -> int: ...


class ProducerIdManager:
    def __init__(self, data_dir: Path) -> None:
        self.block_source: ProducerIdSource | None = None  # a KRaft broker's controller-fed blocks
        self._path = data_dir / STATE_FILE
        self._next_id = 0
        self._block_end = 0  # first id not covered by the persisted block
        self._load()

    def next_producer_id(self) -> int:
        if self.block_source is not None:
            return self.block_source.next_producer_id()
        if self._next_id >= self._block_end:
            self._block_end = self._next_id + BLOCK_SIZE
            self._save()
        producer_id = self._next_id
        self._next_id += 1
        return producer_id

    def init_producer_id(self) -> tuple[int, int]:
        """Answer InitProducerId for an idempotent producer: a fresh (producer id, epoch 0)."""
        return self.next_producer_id(), 0

    def _load(self) -> None:
        if not self._path.exists():
            return
        document = json.loads(self._path.read_text("utf-8"))
        self._next_id = self._block_end = int(document["next_block_start"])

    def _save(self) -> None:
        document = {
            "version": 1,
            "next_block_start": self._block_end,
        }
        durability.write_atomically(self._path, json.dumps(document, sort_keys=True).encode("utf-8"),
                                    temporary=self._path.with_suffix(".tmp"))
