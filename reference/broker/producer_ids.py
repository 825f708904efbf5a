"""Producer ids and epochs: what InitProducerId (22) hands out.

Theory of operation
-------------------
An idempotent producer is identified by a *producer id* (int64) and an *epoch* (int16).  The broker
uses the pair to deduplicate retried batches (``reference.broker.log.producer_state``).  Ids must never
be handed out twice, across restarts too.  Kafka's controller allocates ids in blocks of 1000 and
records each block in the metadata log before any id of it is used; refka does the same with a
small file, ``producer-ids.json``, written (and fsynced) before a new block is used.  A crash may
skip the rest of a block, never reuse an id.

InitProducerId, by what the request carries (KIP-98, KIP-360):

* no transactional id: a fresh producer id with epoch 0.  An idempotent producer that must reset
  (after OUT_OF_ORDER_SEQUENCE_NUMBER, say) bumps its epoch on its own (KIP-360), so the broker
  never needs to remember it here.
* a transactional id: the id is bound to one producer id.  With no producer id and epoch in the
  request, the epoch is bumped (fencing any older instance).  With them (v3+, KIP-360):
  given == current -> bump; given == the previous one -> return the current (a retry of a bump whose
  answer was lost); anything else -> PRODUCER_FENCED (which the handler answers as
  INVALID_PRODUCER_EPOCH to clients older than InitProducerId v4, as Kafka does).  When the epoch
  would overflow, a new producer id starts at epoch 0.

In a KRaft cluster the ids come from the controller instead (``block_source``, set by the node to
a :class:`reference.node.producer_id_blocks.ControllerProducerIdBlocks`): a broker that counted on
its own would hand out ids another broker hands out too.

Invariants: producer ids handed out are unique and increasing; a transactional id's epoch never
goes back.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import Errors, KafkaError

BLOCK_SIZE = 1000
MAX_EPOCH = 32767  # Short.MAX_VALUE
NO_PRODUCER_ID = -1
NO_EPOCH = -1
STATE_FILE = "producer-ids.json"


@dataclass
class TransactionalIdEntry:
    producer_id: int
    epoch: int
    previous_producer_id: int = NO_PRODUCER_ID
    previous_epoch: int = NO_EPOCH


class ProducerIdSource(Protocol):
    def next_producer_id(self) -> int: ...


class ProducerIdManager:
    def __init__(self, data_dir: Path) -> None:
        self.block_source: ProducerIdSource | None = None  # a KRaft broker's controller-fed blocks
        self._path = data_dir / STATE_FILE
        self._next_id = 0
        self._block_end = 0  # first id not covered by the persisted block
        self._transactional: dict[str, TransactionalIdEntry] = {}
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

    def init_producer_id(
        self, transactional_id: str | None, producer_id: int = NO_PRODUCER_ID, epoch: int = NO_EPOCH
    ) -> tuple[int, int]:
        """Answer InitProducerId: the (producer id, epoch) to use, or raise KafkaError."""
        if transactional_id is None:
            return self.next_producer_id(), 0
        entry = self._transactional.get(transactional_id)
        if entry is None:
            entry = TransactionalIdEntry(self.next_producer_id(), 0)
            self._transactional[transactional_id] = entry
            self._save()
            return entry.producer_id, entry.epoch
        if producer_id != NO_PRODUCER_ID:
            if (producer_id, epoch) == (entry.previous_producer_id, entry.previous_epoch):
                return entry.producer_id, entry.epoch  # a retried bump
            if (producer_id, epoch) != (entry.producer_id, entry.epoch):
                raise KafkaError(Errors.PRODUCER_FENCED,
                                 "There is a newer producer with the same transactional id.")
        self._bump(entry)
        self._save()
        return entry.producer_id, entry.epoch

    def _bump(self, entry: TransactionalIdEntry) -> None:
        entry.previous_producer_id, entry.previous_epoch = entry.producer_id, entry.epoch
        if entry.epoch >= MAX_EPOCH - 1:
            entry.producer_id, entry.epoch = self.next_producer_id(), 0
        else:
            entry.epoch += 1

    def _load(self) -> None:
        if not self._path.exists():
            return
        document = json.loads(self._path.read_text("utf-8"))
        self._next_id = self._block_end = int(document["next_block_start"])
        for name, entry in document.get("transactional_ids", {}).items():
            self._transactional[name] = TransactionalIdEntry(**entry)

    def _save(self) -> None:
        document = {
            "version": 1,
            "next_block_start": self._block_end,
            "transactional_ids": {name: vars(entry) for name, entry in self._transactional.items()},
        }
        temporary = self._path.with_suffix(".tmp")
        with open(temporary, "w", encoding="utf-8") as out:
            json.dump(document, out, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self._path)
