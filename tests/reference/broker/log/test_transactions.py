"""Transactions in the partition log: the last stable offset, markers, the aborted-transaction index
(``.txnindex``), read_committed reads and their recovery (rules 6-8 of producer_state, rule 6 of log)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference.broker.log.clock import ManualClock
from reference.broker.log.config import LogConfig
from reference.broker.log.log import PartitionLog
from reference.broker.log.producer_state import AppendOrigin
from reference.broker.log.txn_index import ENTRY_SIZE, AbortedTxn
from reference.errors import Errors, KafkaError
from reference.records.batch import SimpleRecord, build_batch
from reference.records.control import (
    ControlRecordType,
    EndTransactionMarker,
    build_end_transaction_marker_batch,
)

from .helpers import T0, open_log

A, B = 1000, 2000


def txn_batch(pid: int, sequence: int, count: int = 2, epoch: int = 0, transactional: bool = True) -> bytes:
    return build_batch([SimpleRecord(f"v{sequence + n}".encode(), None, T0) for n in range(count)],
                       producer_id=pid, producer_epoch=epoch, base_sequence=sequence, transactional=transactional)


def marker(pid: int, commit: bool, epoch: int = 0, coordinator_epoch: int = 0) -> bytes:
    kind = ControlRecordType.COMMIT if commit else ControlRecordType.ABORT
    return build_end_transaction_marker_batch(EndTransactionMarker(kind, coordinator_epoch), producer_id=pid,
                                              producer_epoch=epoch, timestamp=T0)


def write(log: PartitionLog, records: bytes, origin: AppendOrigin = AppendOrigin.CLIENT) -> int:
    info = log.append_as_leader(records, 0, origin)
    log.update_high_watermark(log.log_end_offset)  # one replica: the HW follows the LEO
    return info.first_offset


def end(log: PartitionLog, pid: int, commit: bool, epoch: int = 0) -> int:
    return write(log, marker(pid, commit, epoch), AppendOrigin.COORDINATOR)


@pytest.fixture
def log(tmp_path: Path) -> PartitionLog:
    return open_log(tmp_path / "t-0", ManualClock(T0))


def test_an_open_transaction_holds_the_last_stable_offset_at_its_first_offset(log: PartitionLog) -> None:
    write(log, txn_batch(A, 0))
    write(log, txn_batch(A, 2))
    assert (log.high_watermark, log.last_stable_offset) == (4, 0)
    end(log, A, commit=True)
    assert log.last_stable_offset == log.high_watermark == 5
    log.check_valid()


def test_the_oldest_open_transaction_of_any_producer_bounds_the_last_stable_offset(log: PartitionLog) -> None:
    write(log, txn_batch(A, 0))  # 0-1
    write(log, txn_batch(B, 0))  # 2-3
    end(log, A, commit=False)  # 4
    assert log.last_stable_offset == 2
    end(log, B, commit=True)  # 5
    assert log.last_stable_offset == 6


def test_an_abort_marker_is_indexed_with_the_transaction_span_and_the_next_open_transaction(log: PartitionLog) -> None:
    write(log, txn_batch(A, 0))  # 0-1
    write(log, txn_batch(B, 0))  # 2-3
    end(log, A, commit=False)  # 4
    end(log, B, commit=True)  # 5: commits are not indexed
    assert log.collect_aborted_transactions(0, 6) == [AbortedTxn(A, 0, 4, 2)]
    assert (log.directory / "00000000000000000000.txnindex").stat().st_size == ENTRY_SIZE


def test_a_transaction_ending_above_the_high_watermark_stays_unstable(log: PartitionLog) -> None:
    log.append_as_leader(txn_batch(A, 0), 0)
    log.append_as_leader(marker(A, commit=True), 0, AppendOrigin.COORDINATOR)
    assert log.last_stable_offset == 0, "the HW has not passed the marker: undecided for readers"
    log.update_high_watermark(2)
    assert log.last_stable_offset == 0, "records replicated, the marker not yet"
    log.update_high_watermark(3)
    assert log.last_stable_offset == 3


def test_read_committed_answers_the_aborted_transactions_overlapping_the_records(log: PartitionLog) -> None:
    write(log, txn_batch(A, 0))  # 0-1
    end(log, A, commit=False)  # 2
    write(log, txn_batch(A, 2))  # 3-4
    end(log, A, commit=True)  # 5
    read = log.read(0, 1 << 20, log.last_stable_offset, aborted_transactions=True)
    assert [(t.producer_id, t.first_offset) for t in read.aborted_transactions] == [(A, 0)]
    later = log.read(3, 1 << 20, log.last_stable_offset, aborted_transactions=True)
    assert later.aborted_transactions == ()
    assert log.read(0, 1 << 20, log.last_stable_offset).aborted_transactions == ()


def test_a_marker_with_an_older_epoch_is_refused(log: PartitionLog) -> None:
    write(log, txn_batch(A, 0, epoch=3))
    with pytest.raises(KafkaError) as refused:
        end(log, A, commit=True, epoch=2)
    assert refused.value.error is Errors.INVALID_PRODUCER_EPOCH
    assert log.last_stable_offset == 0, "the transaction is still open"


def test_a_bumped_epoch_marker_fences_the_old_epoch(log: PartitionLog) -> None:
    """KIP-890: the coordinator ends each transaction with the epoch bumped; a late write of the
    finished transaction's epoch is then INVALID_PRODUCER_EPOCH."""
    write(log, txn_batch(A, 0, epoch=0))
    end(log, A, commit=True, epoch=1)
    with pytest.raises(KafkaError) as refused:
        write(log, txn_batch(A, 2, epoch=0))
    assert refused.value.error is Errors.INVALID_PRODUCER_EPOCH


def test_a_plain_batch_inside_an_open_transaction_is_invalid_txn_state(log: PartitionLog) -> None:
    write(log, txn_batch(A, 0))
    with pytest.raises(KafkaError) as refused:
        write(log, txn_batch(A, 2, transactional=False))
    assert refused.value.error is Errors.INVALID_TXN_STATE
    assert log.log_end_offset == 2


def test_open_transactions_and_the_index_survive_a_clean_restart(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    log = open_log(tmp_path / "t-0", clock)
    write(log, txn_batch(A, 0))
    end(log, A, commit=False)
    write(log, txn_batch(B, 0))  # open at 3
    log.close()
    again = open_log(tmp_path / "t-0", clock, had_clean_shutdown=True, high_watermark=5)
    assert again.last_stable_offset == 3
    assert again.collect_aborted_transactions(0, 5) == [AbortedTxn(A, 0, 2, 3)]
    end(again, B, commit=True)
    assert again.last_stable_offset == 6
    again.check_valid()


def test_kill_9_replays_markers_into_the_index_and_reopens_transactions(tmp_path: Path) -> None:
    """After a crash the producer state is rebuilt from the last snapshot plus the log; an abort
    marker whose index entry was lost is indexed again, and an open transaction is open again."""
    clock = ManualClock(T0)
    log = open_log(tmp_path / "t-0", clock)
    write(log, txn_batch(A, 0))
    end(log, A, commit=False)
    write(log, txn_batch(B, 0))
    log.close_without_flush()
    (tmp_path / "t-0" / "00000000000000000000.txnindex").unlink()  # as if the entry never reached the disk
    for snapshot in (tmp_path / "t-0").glob("*.snapshot"):
        snapshot.unlink()
    again = open_log(tmp_path / "t-0", clock, high_watermark=5)
    assert again.collect_aborted_transactions(0, 5) == [AbortedTxn(A, 0, 2, 3)]
    assert again.last_stable_offset == 3
    again.check_valid()


def test_the_index_lives_in_the_segment_of_the_marker_and_goes_with_it(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    config = LogConfig(segment_bytes=2 * len(txn_batch(A, 0)))
    log = open_log(tmp_path / "t-0", clock, config)
    write(log, txn_batch(A, 0))
    write(log, txn_batch(A, 2))
    end(log, A, commit=False)  # rolls: the marker opens the second segment
    assert [s.base_offset for s in log.segments] == [0, 4]
    assert log.collect_aborted_transactions(0, 5) == [AbortedTxn(A, 0, 4, 5)]
    assert (tmp_path / "t-0" / "00000000000000000004.txnindex").exists()
    log.truncate_to(4)
    assert log.collect_aborted_transactions(0, 5) == []
    log.check_valid()


# -- compaction (cleaner) ------------------------------------------------------------------------------


def keyed_txn_batch(pid: int, sequence: int, key: bytes, value: bytes) -> bytes:
    return build_batch([SimpleRecord(value, key, T0)], producer_id=pid, producer_epoch=0, base_sequence=sequence,
                       transactional=True)


def test_compaction_drops_aborted_records_without_letting_them_hide_committed_ones(tmp_path: Path) -> None:
    """An aborted record of a key is not the key's newest record: the committed one survives, the
    aborted one goes, the markers stay while a batch of their transaction is left (a compacted topic
    such as __consumer_offsets relies on it).  Without the rule the aborted record would be the newest
    for its key and the committed one removed."""
    from reference.broker.log.cleaner import clean_log

    config = LogConfig(segment_bytes=1 << 20, cleanup_policy=frozenset({"compact"}))
    log = open_log(tmp_path / "t-0", ManualClock(T0), config)
    write(log, keyed_txn_batch(A, 0, b"k", b"committed"))  # 0
    end(log, A, commit=True)  # 1
    write(log, keyed_txn_batch(A, 1, b"k", b"aborted"))  # 2
    end(log, A, commit=False)  # 3
    log.roll()
    write(log, txn_batch(B, 0, transactional=False))  # 4-5, the active segment
    clean_log(log)
    stored = [(b.base_offset, b.is_control, [r.value for r in b.records] if not b.is_control else "marker")
              for b in _batches(log)]
    assert stored[:4] == [(0, False, [b"committed"]), (1, True, "marker"), (2, False, []), (3, True, "marker")], \
        "the aborted batch is kept empty: its producer's last batch (Kafka's RETAIN_EMPTY)"
    log.check_valid()


def _stored(log: PartitionLog) -> list[tuple[int, str]]:
    """(base offset, what) of every batch left: a marker's kind and whether it carries a delete horizon."""
    from reference.records.control import decode_end_transaction_marker

    found = []
    for b in _batches(log):
        if b.is_control:
            kind = "commit" if decode_end_transaction_marker(b).is_commit else "abort"
            found.append((b.base_offset, kind + (" +horizon" if b.has_delete_horizon else "")))
        else:
            found.append((b.base_offset, ",".join(r.value.decode() for r in b.records if r.value is not None)))
    return found


def test_compaction_removes_a_marker_delete_retention_ms_after_its_transaction_is_gone(tmp_path: Path) -> None:
    """Kafka's LogCleaner with CleanedTransactionMetadata: a marker stays while its transaction has a
    batch in the log.  A cleaning that finds none gives the marker a delete horizon (now +
    delete.retention.ms, as a tombstone), a cleaning after it removes the marker; the ABORT's
    .txnindex entry goes as soon as the aborted batches are gone, so a read_committed fetch is not
    told of an aborted transaction whose marker may vanish (a consumer would then skip the
    producer's later committed batches waiting for it), also after a restart."""
    from reference.broker.log.cleaner import clean_log

    clock = ManualClock(T0)
    config = LogConfig(segment_bytes=1 << 20, cleanup_policy=frozenset({"compact"}), delete_retention_ms=1000)
    log = open_log(tmp_path / "t-0", clock, config)
    write(log, keyed_txn_batch(A, 0, b"k", b"aborted"))  # 0
    end(log, A, commit=False)  # 1
    write(log, keyed_txn_batch(A, 1, b"j", b"superseded"))  # 2
    end(log, A, commit=True)  # 3
    write(log, keyed_txn_batch(A, 2, b"j", b"newest"))  # 4
    end(log, A, commit=True)  # 5
    log.roll()
    write(log, txn_batch(B, 0, transactional=False))  # 6-7, the active segment
    assert [t.last_offset for t in log.collect_aborted_transactions(0, 8)] == [1]

    clean_log(log)  # the batches at 0 and 2 go; their transactions' markers were seen with them
    assert _stored(log)[:3] == [(1, "abort"), (3, "commit"), (4, "newest")]
    assert [t.last_offset for t in log.collect_aborted_transactions(0, 8)] == [1], "its data was seen: entry kept"

    stats = clean_log(log)  # nothing of either transaction left: the markers get a delete horizon
    assert _stored(log)[:4] == [(1, "abort +horizon"), (3, "commit +horizon"), (4, "newest"), (5, "commit")]
    assert log.collect_aborted_transactions(0, 8) == [], "no aborted data left to skip"
    assert stats.markers_removed == 0

    clock.advance(999)
    clean_log(log)
    assert [offset for offset, _ in _stored(log)][:2] == [1, 3], "inside delete.retention.ms"
    clock.advance(1)
    stats = clean_log(log)
    assert stats.markers_removed == 2
    assert _stored(log)[:2] == [(4, "newest"), (5, "commit")], "the last transaction keeps its marker"
    committed = log.read(0, 1 << 20, log.last_stable_offset)
    assert committed.records, "a read from offset 0 reaches the surviving records"
    log.check_valid()

    log.close()
    reopened = open_log(tmp_path / "t-0", clock, config)
    assert _stored(reopened)[:2] == [(4, "newest"), (5, "commit")]
    assert reopened.collect_aborted_transactions(0, 8) == []
    reopened.check_valid()


def test_an_open_transaction_is_not_compacted(tmp_path: Path) -> None:
    from reference.broker.log.cleaner import cleanable_segments

    config = LogConfig(segment_bytes=1 << 20, cleanup_policy=frozenset({"compact"}))
    log = open_log(tmp_path / "t-0", ManualClock(T0), config)
    write(log, keyed_txn_batch(A, 0, b"k", b"open"))  # 0, undecided
    log.roll()
    write(log, txn_batch(B, 0, transactional=False))
    assert log.last_stable_offset == 0
    assert cleanable_segments(log, T0) == [], "below the last stable offset only"


def _batches(log: PartitionLog) -> list:  # type: ignore[type-arg]
    from reference.records.batch import iter_record_batches

    found = []
    for segment in log.segments:
        found.extend(iter_record_batches(segment.read_bytes(0, segment.size)))
    return found
