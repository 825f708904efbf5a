"""Sending partition leaders' ISR changes to the controller: Kafka's ``AlterPartitionManager``.

Theory of operation
-------------------
A leader may not change its ISR itself (KIP-497): :class:`~reference.broker.partition.Partition`
decides that a follower caught up or fell behind, records a *pending* change, and submits it here.
This manager, like Kafka's ``DefaultAlterPartitionManager``:

1. keeps the submitted changes not yet sent, at most one per partition;
2. sends them all in one AlterPartition request (api 56, v2-v3) to the active controller
   (``controller_id()``; none known: look again after ``retry_backoff_ms``), with this broker's
   id and broker epoch, and per partition the leader epoch, the proposed ISR (v3: with each member's broker epoch as its last
   fetch carried it, KIP-903, -1 when unknown) and the partition epoch the change is based on;
3. has one request in flight at a time; a failed request (connection, timeout), a top-level
   error (NOT_CONTROLLER, ...) or a partition error the partition wants retried puts the changes
   back, and they go (with whatever was submitted meanwhile) after ``retry_backoff_ms``;
4. hands each partition's answer -- new ISR, leader epoch and partition epoch, or an error -- to
   :meth:`Partition.handle_alter_partition_response`, which applies it as Kafka's
   ``Partition.submitAlterPartition`` callback does and says whether to resubmit; a partition
   missing from the answer is resubmitted (Kafka fails it with UNKNOWN_SERVER_ERROR, retried).

Invariants: one request in flight; a change is sent to at most one request at a time; every
change sent is answered to its partition exactly once (or resubmitted).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..client.outbox import OutboundRequest, Outbox
from ..errors import Errors, lookup
from ..protocol.apis import API_BY_KEY
from ..protocol.schema import Data
from .log.files import TopicPartition

if TYPE_CHECKING:
    from .partition import Partition, PendingPartitionChange

log = logging.getLogger("refka.broker.alter_partition")

ALTER_PARTITION = API_BY_KEY[56]
TOPIC_DATA = ALTER_PARTITION.request.struct("TopicData")
PARTITION_DATA = ALTER_PARTITION.request.struct("PartitionData")
BROKER_STATE = ALTER_PARTITION.request.struct("BrokerState")
LEADER_RECOVERED = 0  # LeaderRecoveryState (KIP-704)
RETRY_BACKOFF_MS = 50  # Kafka's AlterPartitionManager retries quickly (its client backs off 50 ms)

Submitted = tuple["Partition", "PendingPartitionChange"]


class AlterPartitionManager:
    """Batches ISR changes into AlterPartition requests to the controller, one in flight."""

    def __init__(
        self,
        broker_id: int,
        broker_epoch: Callable[[], int],
        controller_id: Callable[[], int | None],
        outbox: Outbox,
        topic_id: Callable[[str], uuid.UUID | None],
        retry_backoff_ms: int = RETRY_BACKOFF_MS,
    ) -> None:
        self.broker_id = broker_id
        self.broker_epoch = broker_epoch
        self.controller_id = controller_id
        self.outbox = outbox
        self.topic_id = topic_id
        self.retry_backoff_ms = retry_backoff_ms
        self.unsent: dict[TopicPartition, Submitted] = {}
        self.in_flight: OutboundRequest | None = None
        self._retry_at: int | None = None  # set after a failure: nothing is sent before it
        self._last_now_ms = 0  # the latest time a poll or an answer brought

    def submit(self, partition: Partition, change: PendingPartitionChange) -> None:
        """Queue ``change`` (replacing an older unsent one of the partition) and send if possible."""
        self.unsent[partition.log.topic_partition] = (partition, change)
        self._maybe_send(None)

    def poll(self, now_ms: int) -> None:
        self._maybe_send(now_ms)

    def next_deadline(self) -> int | None:
        return self._retry_at if self.unsent and self.in_flight is None else None

    def _maybe_send(self, now_ms: int | None) -> None:
        if now_ms is not None:
            self._last_now_ms = max(self._last_now_ms, now_ms)
        if self.in_flight is not None or not self.unsent:
            return
        if self._retry_at is not None:
            if now_ms is None or now_ms < self._retry_at:
                return
            self._retry_at = None
        controller = self.controller_id()
        if controller is None:  # no active controller known yet: look again after the backoff
            self._retry_at = self._last_now_ms + self.retry_backoff_ms
            return
        batch, self.unsent = self.unsent, {}
        topics: dict[str, list[Data]] = {}
        for topic_partition, (partition, change) in batch.items():
            topics.setdefault(topic_partition.topic, []).append(PARTITION_DATA.make(
                partition_index=topic_partition.partition,
                leader_epoch=change.leader_epoch,
                new_isr=sorted(change.sent_isr),
                new_isr_with_epochs=[BROKER_STATE.make(broker_id=replica, broker_epoch=self._epoch_of(partition, replica))
                                     for replica in sorted(change.sent_isr)],
                leader_recovery_state=LEADER_RECOVERED,
                partition_epoch=change.partition_epoch,
            ))
        body = ALTER_PARTITION.request.make(
            broker_id=self.broker_id, broker_epoch=self.broker_epoch(),
            topics=[TOPIC_DATA.make(topic_id=self.topic_id(name) or uuid.UUID(int=0), partitions=partitions)
                    for name, partitions in topics.items()],
        )
        request = OutboundRequest(
            destination=controller, api_key=ALTER_PARTITION.key, body=body,
            on_response=lambda response, at: self._on_response(request, batch, response, at),
            on_failure=lambda error, at: self._on_failure(request, batch, error, at),
        )
        self.in_flight = request
        self.outbox.send(request)

    def _epoch_of(self, partition: Partition, replica: int) -> int:
        return self.broker_epoch() if replica == self.broker_id else partition.broker_epoch_of(replica)

    def _requeue(self, batch: dict[TopicPartition, Submitted], now_ms: int) -> None:
        for topic_partition, submitted in batch.items():
            self.unsent.setdefault(topic_partition, submitted)  # a newer submission wins
        self._retry_at = now_ms + self.retry_backoff_ms

    def _on_failure(self, request: OutboundRequest, batch: dict[TopicPartition, Submitted], error: Exception,
                    now_ms: int) -> None:
        log.info("AlterPartition failed (%s); retrying", error)
        if self.in_flight is request:
            self.in_flight = None
        self._requeue(batch, now_ms)

    def _on_response(self, request: OutboundRequest, batch: dict[TopicPartition, Submitted], response: Data,
                     now_ms: int) -> None:
        if self.in_flight is request:
            self.in_flight = None
        top_level = lookup(response.error_code)
        if top_level != Errors.NONE:
            log.info("AlterPartition answered %s; retrying", top_level)
            self._requeue(batch, now_ms)
            return
        by_id = {self.topic_id(tp.topic): tp.topic for tp in batch}
        answered: set[TopicPartition] = set()
        for topic in response.topics:
            name = by_id.get(topic.topic_id)
            for answer in topic.partitions:
                topic_partition = TopicPartition(name, answer.partition_index) if name is not None else None
                if topic_partition is None or topic_partition not in batch:
                    continue
                answered.add(topic_partition)
                partition, change = batch[topic_partition]
                retry = partition.handle_alter_partition_response(
                    change, lookup(answer.error_code), answer.leader_epoch, frozenset(answer.isr),
                    answer.partition_epoch, now_ms)
                if retry:
                    self.unsent.setdefault(topic_partition, (partition, change))
                    self._retry_at = now_ms + self.retry_backoff_ms
        for missing in set(batch) - answered:
            self.unsent.setdefault(missing, batch[missing])
            self._retry_at = now_ms + self.retry_backoff_ms
        self._maybe_send(now_ms)
