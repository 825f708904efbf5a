"""The replica view: the high watermark follows the LEO through an explicit step, leader epochs,
fetch isolation, ListOffsets and OffsetForLeaderEpoch, the log directory and its checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference.broker.log.clock import ManualClock
from reference.broker.log.config import LogConfig
from reference.broker.log.files import TopicPartition
from reference.broker.log.log import LATEST_TIMESTAMP
from reference.broker.log.log_manager import LogDirectory
from reference.broker.partition import FetchIsolation, Partition
from reference.errors import Errors, KafkaError

from .log.helpers import T0, batch, headers, open_log


def _leader(tmp_path: Path, isr: set[int] | None = None) -> Partition:
    replica = Partition(open_log(tmp_path / "t-0", ManualClock(T0)), broker_id=1)
    replica.make_leader(leader_epoch=3, isr=isr)
    return replica


def test_on_one_node_the_high_watermark_follows_the_log_end_offset(tmp_path: Path) -> None:
    replica = _leader(tmp_path)
    replica.append_records_to_leader(batch(4))
    assert replica.high_watermark == replica.log_end_offset == 4
    replica.check_valid()


def test_the_log_alone_does_not_advance_the_high_watermark(tmp_path: Path) -> None:
    replica = _leader(tmp_path)
    replica.log.append_as_leader(batch(4), 3)
    assert replica.high_watermark == 0
    assert replica.maybe_increment_high_watermark()
    assert replica.high_watermark == 4


def test_with_a_follower_in_the_isr_the_high_watermark_waits_for_it(tmp_path: Path) -> None:
    replica = _leader(tmp_path, isr={1, 2})
    replica.append_records_to_leader(batch(4))
    assert replica.high_watermark == 0
    replica.update_follower_fetch_state(2, 4)
    assert replica.high_watermark == 4


def test_consumers_read_below_the_high_watermark_followers_to_the_end(tmp_path: Path) -> None:
    replica = _leader(tmp_path, isr={1, 2})
    replica.append_records_to_leader(batch(4))
    assert replica.read(0, 1000, FetchIsolation.HIGH_WATERMARK).records == b""
    assert headers(replica.read(0, 1000, FetchIsolation.LOG_END).records)[0].base_offset == 0


def test_make_leader_records_the_epoch_start_and_batches_carry_it(tmp_path: Path) -> None:
    replica = _leader(tmp_path)
    replica.append_records_to_leader(batch(2))
    replica.make_leader(leader_epoch=5)
    replica.append_records_to_leader(batch(2))
    assert headers(replica.read(2, 1000, FetchIsolation.HIGH_WATERMARK).records)[0].partition_leader_epoch == 5
    assert replica.last_offset_for_leader_epoch(3) == (3, 2)
    assert replica.last_offset_for_leader_epoch(5) == (5, 4)
    assert replica.last_offset_for_leader_epoch(4) == (3, 2)
    assert replica.last_offset_for_leader_epoch(9) is None


def test_list_offsets_latest_is_the_high_watermark_for_consumers(tmp_path: Path) -> None:
    replica = _leader(tmp_path, isr={1, 2})
    replica.append_records_to_leader(batch(4))
    latest = replica.fetch_offset_for_timestamp(LATEST_TIMESTAMP, FetchIsolation.HIGH_WATERMARK)
    assert latest is not None and latest.offset == 0 and latest.leader_epoch == 3
    assert replica.fetch_offset_for_timestamp(T0, FetchIsolation.HIGH_WATERMARK) is None
    replica.update_follower_fetch_state(2, 4)
    found = replica.fetch_offset_for_timestamp(T0 + 1, FetchIsolation.HIGH_WATERMARK)
    assert found is not None and found.offset == 1


def test_a_follower_cannot_take_produce_requests(tmp_path: Path) -> None:
    replica = Partition(open_log(tmp_path / "t-0", ManualClock(T0)), broker_id=1)
    replica.make_follower(leader_epoch=2, leader_id=7)
    with pytest.raises(KafkaError) as raised:
        replica.append_records_to_leader(batch(1))
    assert raised.value.error == Errors.NOT_LEADER_OR_FOLLOWER


def test_delete_records_minus_one_means_up_to_the_high_watermark(tmp_path: Path) -> None:
    replica = _leader(tmp_path)
    replica.append_records_to_leader(batch(4))
    assert replica.delete_records(-1) == 4
    replica.check_valid()


def test_log_directory_shutdown_writes_checkpoints_and_marker_and_restart_trusts_them(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    directory = LogDirectory.open(tmp_path / "data", clock, lambda _: LogConfig(segment_bytes=400))
    orders = directory.get_or_create_log(TopicPartition("orders", 0))
    replica = Partition(orders, broker_id=1)
    replica.make_leader(0)
    for _ in range(10):
        replica.append_records_to_leader(batch(3))
    directory.get_or_create_log(TopicPartition("my-topic", 2))
    directory.shutdown(broker_epoch=12)
    files = {path.name for path in (tmp_path / "data").iterdir()}
    assert {".kafka_cleanshutdown", "recovery-point-offset-checkpoint", "log-start-offset-checkpoint",
            "replication-offset-checkpoint", "orders-0", "my-topic-2"} <= files
    assert (tmp_path / "data" / "replication-offset-checkpoint").read_text() == "0\n2\nmy-topic 2 0\norders 0 30\n"
    again = LogDirectory.open(tmp_path / "data", clock, lambda _: LogConfig(segment_bytes=400))
    assert again.had_clean_shutdown
    assert not (tmp_path / "data" / ".kafka_cleanshutdown").exists(), "deleted once the logs are loaded"
    reopened = again.logs[TopicPartition("orders", 0)]
    assert reopened.log_end_offset == reopened.high_watermark == reopened.recovery_point == 30
    reopened.check_valid()


def test_log_directory_after_a_crash_recovers_from_the_recovery_point(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    directory = LogDirectory.open(tmp_path / "data", clock)
    log = directory.get_or_create_log(TopicPartition("orders", 0))
    for _ in range(5):
        log.append_as_leader(batch(2), 0)
    directory.write_checkpoints()
    log.close_without_flush()  # kill -9: no marker
    again = LogDirectory.open(tmp_path / "data", clock)
    assert not again.had_clean_shutdown
    assert again.logs[TopicPartition("orders", 0)].log_end_offset == 10
