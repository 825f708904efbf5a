"""The idempotent producer's state table, rule by rule, through the partition log's append path."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference.broker.log.clock import ManualClock
from reference.broker.log.config import LogConfig
from reference.broker.log.log import PartitionLog
from reference.broker.log.producer_state import (
    NUM_BATCHES_TO_RETAIN,
    BatchMetadata,
    CorruptSnapshotError,
    ProducerStateEntry,
    ProducerStateManager,
    decode_snapshot,
    encode_snapshot,
)
from reference.errors import Errors, KafkaError

from .helpers import T0, batch, open_log

PID = 4242
INT32_MAX = 2**31 - 1


def produce(log: PartitionLog, sequence: int, count: int = 2, epoch: int = 0, pid: int = PID, timestamp: int = T0):  # type: ignore[no-untyped-def]
    return log.append_as_leader(
        batch(count, producer_id=pid, producer_epoch=epoch, base_sequence=sequence, timestamp=timestamp), 0
    )


def rejected(log: PartitionLog, sequence: int, count: int = 2, epoch: int = 0) -> int:
    end_before = log.log_end_offset
    with pytest.raises(KafkaError) as raised:
        produce(log, sequence, count, epoch)
    assert log.log_end_offset == end_before, "a rejected batch is not appended"
    return raised.value.error.code


@pytest.fixture
def log(tmp_path: Path) -> PartitionLog:
    return open_log(tmp_path / "t-0", ManualClock(T0), LogConfig(segment_bytes=4 * len(batch(2, producer_id=PID))))


def test_an_unknown_producer_may_start_at_any_sequence(log: PartitionLog) -> None:
    assert produce(log, sequence=17).first_offset == 0
    assert produce(log, sequence=19).first_offset == 2


def test_the_next_batch_must_continue_the_sequence(log: PartitionLog) -> None:
    produce(log, 0)
    produce(log, 2)
    assert rejected(log, 5) == Errors.OUT_OF_ORDER_SEQUENCE_NUMBER.code  # a gap
    produce(log, 4)


def test_a_duplicate_batch_within_the_last_five_is_answered_with_its_original_offset(log: PartitionLog) -> None:
    originals = [produce(log, sequence) for sequence in range(0, 10, 2)]
    end = log.log_end_offset
    for sequence, original in zip(range(0, 10, 2), originals, strict=True):
        again = produce(log, sequence)
        assert again.duplicate
        assert (again.first_offset, again.last_offset) == (original.first_offset, original.last_offset)
    assert log.log_end_offset == end, "duplicates are not appended"


def test_a_sixth_older_batch_is_out_of_order(log: PartitionLog) -> None:
    for sequence in range(0, 12, 2):  # six batches: the first falls out of the window
        produce(log, sequence)
    assert rejected(log, 0) == Errors.OUT_OF_ORDER_SEQUENCE_NUMBER.code
    assert produce(log, 2).duplicate


def test_a_batch_matching_only_the_first_sequence_is_not_a_duplicate(log: PartitionLog) -> None:
    produce(log, 0, count=2)
    assert rejected(log, 0, count=3) == Errors.OUT_OF_ORDER_SEQUENCE_NUMBER.code


def test_a_lower_epoch_is_invalid_producer_epoch(log: PartitionLog) -> None:
    produce(log, 0, epoch=3)
    assert rejected(log, 2, epoch=2) == Errors.INVALID_PRODUCER_EPOCH.code


def test_a_new_epoch_must_start_at_sequence_zero(log: PartitionLog) -> None:
    produce(log, 0, epoch=0)
    assert rejected(log, 2, epoch=1) == Errors.OUT_OF_ORDER_SEQUENCE_NUMBER.code
    produce(log, 0, epoch=1)


def test_a_new_epoch_forgets_the_cached_batches_of_the_old_one(log: PartitionLog) -> None:
    produce(log, 0, epoch=0)
    produce(log, 0, epoch=1)
    entry = log.producer_state.last_entry(PID)
    assert entry is not None and entry.producer_epoch == 1 and len(entry.batches) == 1
    assert rejected(log, 0, epoch=0) == Errors.INVALID_PRODUCER_EPOCH.code  # the old epoch is fenced


def test_the_sequence_wraps_from_int32_max_to_zero(log: PartitionLog) -> None:
    produce(log, INT32_MAX - 1, count=2)  # sequences 2^31-2, 2^31-1
    assert produce(log, 0, count=2).first_offset == 2  # 0 follows 2^31-1
    assert produce(log, INT32_MAX - 1, count=2).duplicate
    assert rejected(log, 3) == Errors.OUT_OF_ORDER_SEQUENCE_NUMBER.code


def test_a_batch_crossing_the_wrap_has_last_sequence_past_zero(log: PartitionLog) -> None:
    produce(log, INT32_MAX - 1, count=4)  # sequences 2^31-2, 2^31-1, 0, 1
    entry = log.producer_state.last_entry(PID)
    assert entry is not None and entry.last_seq == 1
    produce(log, 2)
    assert produce(log, INT32_MAX - 1, count=4).duplicate


def test_producers_are_independent(log: PartitionLog) -> None:
    produce(log, 0, pid=1)
    produce(log, 7, pid=2)
    produce(log, 2, pid=1)
    assert produce(log, 7, pid=2).duplicate


def test_the_table_keeps_at_most_five_batches(log: PartitionLog) -> None:
    for sequence in range(0, 40, 2):
        produce(log, sequence)
    entry = log.producer_state.last_entry(PID)
    assert entry is not None and len(entry.batches) == NUM_BATCHES_TO_RETAIN
    log.producer_state.check_valid()


def test_deduplication_survives_a_clean_restart_for_all_five_batches(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log = open_log(tmp_path / "t-0", clock)
    originals = [produce(log, sequence) for sequence in range(0, 14, 2)]
    log.close()
    again = open_log(tmp_path / "t-0", clock, had_clean_shutdown=True)
    for original, sequence in zip(originals[-5:], range(4, 14, 2), strict=True):
        answer = produce(again, sequence)
        assert answer.duplicate and answer.first_offset == original.first_offset
    produce(again, 14)


def test_deduplication_survives_kill_9_by_replaying_the_log_after_the_last_snapshot(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    config = LogConfig(segment_bytes=3 * len(batch(2, producer_id=PID)))
    log = open_log(tmp_path / "t-0", clock, config)
    originals = [produce(log, sequence) for sequence in range(0, 20, 2)]
    assert log.producer_state.snapshot_offsets(), "rolls wrote snapshots"
    log.close_without_flush()
    again = open_log(tmp_path / "t-0", clock, config)
    for original, sequence in zip(originals[-5:], range(10, 20, 2), strict=True):
        answer = produce(again, sequence)
        assert answer.duplicate and answer.first_offset == original.first_offset
    assert rejected(again, 8) == Errors.OUT_OF_ORDER_SEQUENCE_NUMBER.code
    again.check_valid()


def test_a_corrupt_snapshot_is_skipped_and_the_log_replayed(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log = open_log(tmp_path / "t-0", clock)
    for sequence in range(0, 10, 2):
        produce(log, sequence)
    log.close()
    snapshot = tmp_path / "t-0" / "00000000000000000010.snapshot"
    data = bytearray(snapshot.read_bytes())
    data[-1] ^= 1
    snapshot.write_bytes(bytes(data))
    again = open_log(tmp_path / "t-0", clock, had_clean_shutdown=True)
    assert produce(again, 0).duplicate


def test_truncation_removes_producer_state_beyond_the_truncation_point(log: PartitionLog) -> None:
    for sequence in range(0, 10, 2):
        produce(log, sequence)  # offsets 0-9
    log.truncate_to(6)
    entry = log.producer_state.last_entry(PID)
    assert entry is not None and entry.last_seq == 5
    produce(log, 6)  # the next sequence after the truncation point is accepted again
    log.check_valid()


def test_truncating_everything_forgets_the_producer(log: PartitionLog) -> None:
    produce(log, 0)
    log.truncate_to(0)
    assert log.producer_state.last_entry(PID) is None
    produce(log, 9)


def test_expired_producers_are_forgotten_after_producer_id_expiration_ms(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log = open_log(tmp_path / "t-0", clock, LogConfig(producer_id_expiration_ms=1000))
    produce(log, 0, count=1, timestamp=T0)  # last timestamp = the batch's max timestamp
    clock.advance(999)
    assert log.remove_expired_producers() == []
    clock.advance(1)
    assert log.remove_expired_producers() == [PID]
    produce(log, 40)  # unknown again: any sequence


def test_snapshot_layout_is_kafkas_producer_snapshot_v1(tmp_path: Path) -> None:
    entry = ProducerStateEntry(7, producer_epoch=2)
    entry.add_batch(2, BatchMetadata(last_seq=9, last_offset=109, offset_delta=9, timestamp=T0))
    data = encode_snapshot([entry])
    assert data[:2] == (1).to_bytes(2, "big")  # version 1
    assert len(data) == 2 + 4 + 4 + 46  # version, crc, count, one 46-byte entry
    restored = decode_snapshot(data)[7]
    assert restored.batches == entry.batches and restored.producer_epoch == 2


def test_snapshot_with_five_batches_round_trips_all_of_them() -> None:
    entry = ProducerStateEntry(7, producer_epoch=0)
    for n in range(5):
        entry.add_batch(0, BatchMetadata(last_seq=2 * n + 1, last_offset=10 * n + 1, offset_delta=1, timestamp=T0 + n))
    assert decode_snapshot(encode_snapshot([entry]))[7].batches == entry.batches


def test_snapshot_with_a_bad_crc_is_rejected() -> None:
    data = bytearray(encode_snapshot([ProducerStateEntry(1, producer_epoch=0)]))
    data[10] ^= 0x01
    with pytest.raises(CorruptSnapshotError):
        decode_snapshot(bytes(data))


def test_manager_check_valid_catches_an_overfull_window(tmp_path: Path) -> None:
    manager = ProducerStateManager(tmp_path)
    manager.producers[1] = ProducerStateEntry(1, 0, [BatchMetadata(n, n, 0, T0) for n in range(6)])
    manager.map_end_offset = 10
    with pytest.raises(AssertionError):
        manager.check_valid()
