"""The record accumulator: when a batch is ready, and in what order batches leave."""

from __future__ import annotations

from reference.client.accumulator import BATCH_HEADER_BYTES, RecordAccumulator, estimate_size
from reference.client.cluster import TopicPartition
from reference.client.delivery import RecordFuture
from reference.records.batch import SimpleRecord, iter_record_batches
from reference.records.compression import CompressionType

TP = TopicPartition("t", 0)


def future() -> RecordFuture:
    return RecordFuture()


def record(size: int = 10) -> SimpleRecord:
    return SimpleRecord(b"v" * size, None, 1000)


def test_records_share_a_batch_until_batch_size_then_a_new_one_opens() -> None:
    one = estimate_size(record())
    accumulator = RecordAccumulator(batch_size=BATCH_HEADER_BYTES + 3 * one, linger_ms=1000)
    batches = {id(accumulator.append(TP, record(), future(), now_ms=0)) for _ in range(4)}
    assert len(batches) == 2 and len(accumulator) == 2
    assert accumulator.ready_partitions(now_ms=0) == [TP], "a partition with a full batch is ready at once"


def test_a_batch_that_is_not_full_is_ready_after_linger_ms() -> None:
    accumulator = RecordAccumulator(batch_size=16384, linger_ms=5)
    accumulator.append(TP, record(), future(), now_ms=100)
    assert accumulator.ready_partitions(now_ms=104) == []
    assert accumulator.next_ready_ms(now_ms=104) == 105
    assert accumulator.ready_partitions(now_ms=105) == [TP]


def test_flushing_makes_every_batch_ready_now() -> None:
    accumulator = RecordAccumulator(batch_size=16384, linger_ms=10_000)
    accumulator.append(TP, record(), future(), now_ms=0)
    accumulator.flushing = True
    assert accumulator.ready_partitions(now_ms=0) == [TP]


def test_a_record_larger_than_batch_size_travels_alone() -> None:
    accumulator = RecordAccumulator(batch_size=100, linger_ms=0)
    big = accumulator.append(TP, record(500), future(), now_ms=0)
    assert len(big.records) == 1
    assert accumulator.append(TP, record(), future(), now_ms=0) is not big


def test_retried_batches_go_back_to_the_front_in_sequence_order() -> None:
    accumulator = RecordAccumulator(batch_size=BATCH_HEADER_BYTES + estimate_size(record()), linger_ms=0)
    first = accumulator.append(TP, record(), future(), now_ms=0)
    second = accumulator.append(TP, record(), future(), now_ms=0)
    assert accumulator.pop(TP) is first and accumulator.pop(TP) is second
    for sequence, batch in enumerate((first, second)):
        batch.base_sequence, batch.attempts = sequence, 1
    new = accumulator.append(TP, record(), future(), now_ms=0)
    accumulator.reenqueue(second, retry_at_ms=50)  # answers may come back in any order
    accumulator.reenqueue(first, retry_at_ms=50)
    assert [accumulator.pop(TP) for _ in range(3)] == [first, second, new]


def test_a_batch_in_backoff_is_not_ready() -> None:
    accumulator = RecordAccumulator(batch_size=16384, linger_ms=0)
    batch = accumulator.append(TP, record(), future(), now_ms=0)
    accumulator.pop(TP)
    batch.attempts = 1
    accumulator.reenqueue(batch, retry_at_ms=100)
    assert accumulator.ready_partitions(now_ms=99) == []
    assert accumulator.ready_partitions(now_ms=100) == [TP]


def test_batches_older_than_the_delivery_timeout_are_taken_out() -> None:
    accumulator = RecordAccumulator(batch_size=16384, linger_ms=0)
    old = accumulator.append(TP, record(), future(), now_ms=0)
    accumulator.append(TopicPartition("t", 1), record(), future(), now_ms=50)
    assert accumulator.expired(now_ms=120, delivery_timeout_ms=100) == [old]
    assert len(accumulator) == 1


def test_a_retry_encodes_the_same_bytes_and_every_codec_round_trips() -> None:
    accumulator = RecordAccumulator(batch_size=16384, linger_ms=0)
    batch = accumulator.append(TP, SimpleRecord(b"value" * 50, b"key", 1000), future(), now_ms=0)
    batch.producer_id, batch.producer_epoch, batch.base_sequence = 7, 0, 3
    for codec in CompressionType:
        encoded = batch.encode(codec)
        assert batch.encode(codec) is encoded
        (decoded,) = iter_record_batches(encoded)
        assert decoded.compression is codec and decoded.base_sequence == 3 and decoded.producer_id == 7
        assert [(r.key, r.value) for r in decoded.records] == [(b"key", b"value" * 50)]
