"""The record accumulator: records gathered into one batch per partition until it is worth sending.

Theory of operation
-------------------
Sending one request per record would cost a round trip per record; Kafka's producer instead
appends records to an open :class:`ProducerBatch` per partition (Java's ``RecordAccumulator``)
and hands batches to the sender when they are *ready*:

1. **Full.**  A batch accepts records while its estimated size stays within ``batch.size``
   (16 KiB); the record that would overflow it opens a new batch behind it, so the first one is
   full.  A batch always takes its first record, so a record bigger than ``batch.size`` travels
   alone; one bigger than ``max.request.size`` (1 MiB) is refused at once with
   MESSAGE_TOO_LARGE (Java's ``RecordTooLargeException``).
2. **Lingered.**  A batch that is not full is ready ``linger.ms`` (5 ms since Kafka 4.0, KIP-1030)
   after its first record arrived: a little latency bought for bigger batches.
3. **Flushing.**  ``flush()``/``close()`` make every batch ready now.
4. **Backing off.**  A batch put back for a retry is not ready before ``retry_at_ms``
   (``retry.backoff.ms`` after the failure).
5. **Order.**  Batches of a partition leave in the order they were created.  A retried batch goes
   back *to the front*, ordered by its producer sequence among other retried batches, so an
   idempotent producer resends them in sequence order (Java's ``insertInSequenceOrder``).
6. **Expiry.**  A batch still here ``delivery.timeout.ms`` (120 s) after its first record arrived
   fails with REQUEST_TIMED_OUT (Java's ``TimeoutException: Expiring N record(s)``); a batch on
   the wire is never expired here (its fate is unknown until its answer or timeout).

The size estimate is deliberately simple -- the 61-byte batch header plus, per record, its key,
value and headers and 21 bytes of varints and attributes at most -- and errs on the large side,
so a batch never exceeds ``batch.size`` by more than one record.  Compression is applied when a
batch is encoded for sending, not here, as librdkafka does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..records.batch import NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, SimpleRecord, build_batch
from ..records.compression import CompressionType
from .cluster import TopicPartition
from .delivery import DeliveryFuture

BATCH_HEADER_BYTES = 61
RECORD_OVERHEAD_BYTES = 21  # length, attributes, timestamp/offset deltas, key/value lengths, header count


def estimate_size(record: SimpleRecord) -> int:
    headers = sum(len(h.key) + len(h.value or b"") + 2 for h in record.headers) if record.headers else 0
    return len(record.key or b"") + len(record.value or b"") + headers + RECORD_OVERHEAD_BYTES


@dataclass(eq=False)
class ProducerBatch:
    """Records for one partition that travel together; ``futures[i]`` is ``records[i]``'s, and
    all of them get the batch's one answer (``delivery.answer``)."""

    tp: TopicPartition
    created_ms: int
    records: list[SimpleRecord] = field(default_factory=list)
    futures: list[DeliveryFuture] = field(default_factory=list)
    size_in_bytes: int = BATCH_HEADER_BYTES
    attempts: int = 0  # how many times it was sent
    retry_at_ms: int = 0
    # Idempotence: stamped when first drained, kept across retries (see ProducerCore).
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH
    base_sequence: int = NO_SEQUENCE
    transactional: bool = False  # the batch attribute bit 0x10: its records wait for a marker (KIP-98)
    in_flight: bool = False
    # Failed because its leader moved: not sent again until the metadata is newer than this update.
    stale_metadata_update: int = -1
    _encoded: tuple[tuple[int, int, int, CompressionType], bytes] | None = None

    def try_append(self, record: SimpleRecord, future: DeliveryFuture, batch_size: int, size: int) -> bool:
        """Take the record unless its ``size`` (:func:`estimate_size`) would overflow ``batch_size``."""
        if self.records and self.size_in_bytes + size > batch_size:
            return False
        self.records.append(record)
        self.futures.append(future)
        self.size_in_bytes += size
        return True

    @property
    def has_sequence(self) -> bool:
        return self.base_sequence != NO_SEQUENCE

    def reset_producer_state(self) -> None:
        """Forget the id, epoch and sequence (after an epoch bump: it gets new ones when drained)."""
        self.producer_id, self.producer_epoch, self.base_sequence = NO_PRODUCER_ID, NO_PRODUCER_EPOCH, NO_SEQUENCE

    def encode(self, compression: CompressionType) -> bytes:
        """The record batch v2 bytes; cached, since a retry must send exactly the same batch."""
        key = (self.producer_id, self.producer_epoch, self.base_sequence, compression)
        if self._encoded is None or self._encoded[0] != key:
            data = build_batch(self.records, compression=compression, producer_id=self.producer_id,
                               producer_epoch=self.producer_epoch, base_sequence=self.base_sequence,
                               transactional=self.transactional)
            self._encoded = (key, data)
        return self._encoded[1]


class RecordAccumulator:
    """Open and waiting batches per partition (see the module's theory of operation)."""

    def __init__(self, batch_size: int, linger_ms: int) -> None:
        self.batch_size = batch_size
        self.linger_ms = linger_ms
        self._batches: dict[TopicPartition, deque[ProducerBatch]] = {}
        self.flushing = False

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._batches.values())

    def append(self, tp: TopicPartition, record: SimpleRecord, future: DeliveryFuture, now_ms: int,
               size: int | None = None) -> ProducerBatch:
        """Add a record to the partition's open batch, or open a new one (rule 1).  ``size`` is the
        record's :func:`estimate_size`, if the caller has it already."""
        if size is None:
            size = estimate_size(record)
        queue = self._batches.get(tp)
        if queue is None:
            queue = self._batches[tp] = deque()
        if queue:
            last = queue[-1]  # open unless it was sent already (a retry waiting here) or stamped
            if not last.has_sequence and last.attempts == 0 and last.try_append(record, future, self.batch_size, size):
                return last
        batch = ProducerBatch(tp, now_ms)
        batch.try_append(record, future, self.batch_size, size)
        queue.append(batch)
        return batch

    def _is_ready(self, queue: deque[ProducerBatch], now_ms: int) -> bool:
        head = queue[0]
        if head.retry_at_ms > now_ms:
            return False  # rule 4
        full = len(queue) > 1 or head.size_in_bytes >= self.batch_size or head.attempts > 0
        return full or self.flushing or now_ms - head.created_ms >= self.linger_ms

    def ready_partitions(self, now_ms: int) -> list[TopicPartition]:
        return [tp for tp, queue in self._batches.items() if queue and self._is_ready(queue, now_ms)]

    def next_ready_ms(self, now_ms: int) -> int | None:
        """The earliest time a waiting batch becomes ready by lingering or backoff (for a timer)."""
        times = []
        for queue in self._batches.values():
            if queue:
                head = queue[0]
                times.append(head.retry_at_ms if head.retry_at_ms > now_ms else head.created_ms + self.linger_ms)
        return min(times, default=None)

    def peek(self, tp: TopicPartition) -> ProducerBatch | None:
        queue = self._batches.get(tp)
        return queue[0] if queue else None

    def pop(self, tp: TopicPartition) -> ProducerBatch:
        return self._batches[tp].popleft()

    def reenqueue(self, batch: ProducerBatch, retry_at_ms: int) -> None:
        """Put a batch back for a retry, at the front, in sequence order (rule 5)."""
        batch.retry_at_ms = retry_at_ms
        queue = self._batches.setdefault(batch.tp, deque())
        position = 0
        while (position < len(queue) and queue[position].has_sequence and batch.has_sequence
               and queue[position].base_sequence < batch.base_sequence):
            position += 1
        queue.insert(position, batch)

    def expired(self, now_ms: int, delivery_timeout_ms: int) -> list[ProducerBatch]:
        """Take out the batches older than ``delivery.timeout.ms`` (rule 6)."""
        taken = []
        for queue in self._batches.values():
            for batch in [b for b in queue if now_ms - b.created_ms >= delivery_timeout_ms]:
                queue.remove(batch)
                taken.append(batch)
        return taken

    def batches(self) -> Iterator[ProducerBatch]:
        for queue in self._batches.values():
            yield from queue

    def take_all(self) -> list[ProducerBatch]:
        taken = list(self.batches())
        self._batches.clear()
        return taken
