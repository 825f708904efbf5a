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
from reference.broker.partition import (
    CommittedPartitionState,
    FetchIsolation,
    Partition,
    PendingExpandIsr,
    PendingPartitionChange,
    PendingShrinkIsr,
)
from reference.errors import Errors, KafkaError, by_name

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


# -- replication: ISR changes, the high watermark, acks=all, follower reads ------------------------


class RecordingSender:
    """Stands in for the AlterPartition manager: keeps what the partition submitted."""

    def __init__(self) -> None:
        self.submitted: list[PendingPartitionChange] = []

    def submit(self, partition: Partition, change: PendingPartitionChange) -> None:
        self.submitted.append(change)


def _replicated_leader(tmp_path: Path, isr: set[int], min_insync_replicas: int = 1) -> tuple[Partition, RecordingSender]:
    """Broker 1 leading epoch 3 over replicas 1, 2, 3 with ``isr``, ISR changes going to a recorder."""
    sender = RecordingSender()
    replica = Partition(open_log(tmp_path / "t-0", ManualClock(T0)), broker_id=1, alter_partition=sender,
                        min_insync_replicas=min_insync_replicas)
    replica.make_leader(3, isr, [1, 2, 3], partition_epoch=5, now_ms=T0)
    return replica, sender


def test_a_follower_joins_the_isr_once_it_reaches_the_high_watermark_and_the_epoch_start(tmp_path: Path) -> None:
    replica, sender = _replicated_leader(tmp_path, {1, 2})
    replica.append_records_to_leader(batch(4))
    replica.update_follower_fetch_state(2, 4, now_ms=T0)
    assert replica.high_watermark == 4
    replica.update_follower_fetch_state(3, 2, now_ms=T0)  # behind the HW: not in sync yet
    assert sender.submitted == []
    replica.update_follower_fetch_state(3, 4, now_ms=T0)
    [change] = sender.submitted
    assert isinstance(change, PendingExpandIsr) and change.sent_isr == {1, 2, 3}
    assert (change.leader_epoch, change.partition_epoch) == (3, 5)
    assert replica.isr == {1, 2} and replica.maximal_isr == {1, 2, 3}
    replica.append_records_to_leader(batch(1))
    replica.update_follower_fetch_state(2, 5, now_ms=T0 + 40_000)  # 3 is no longer "caught up" by time
    assert replica.high_watermark == 4  # but as a pending member it holds the HW back
    replica.check_valid()


def test_a_follower_below_the_current_epochs_start_does_not_join_the_isr(tmp_path: Path) -> None:
    """Kafka's isFollowerInSync: LEO >= HW is not enough when the epoch began later (KAFKA-7128)."""
    sender = RecordingSender()
    replica = Partition(open_log(tmp_path / "t-0", ManualClock(T0)), broker_id=1, alter_partition=sender)
    replica.make_leader(0, {1}, [1, 2], partition_epoch=0, now_ms=T0)
    replica.append_records_to_leader(batch(4))  # HW 4 at once: the ISR is the leader alone
    replica.make_leader(1, {1}, [1, 2], partition_epoch=1, now_ms=T0)  # epoch 1 starts at 4
    replica.log.update_high_watermark(2)  # as if the HW had lagged (a new leader's HW may)
    replica.update_follower_fetch_state(2, 3, now_ms=T0)
    assert sender.submitted == []
    replica.update_follower_fetch_state(2, 4, now_ms=T0)
    assert len(sender.submitted) == 1


def test_the_controllers_answer_commits_the_isr_and_the_partition_epoch(tmp_path: Path) -> None:
    replica, sender = _replicated_leader(tmp_path, {1, 2})
    replica.update_follower_fetch_state(3, 0, now_ms=T0)
    [change] = sender.submitted
    assert not replica.handle_alter_partition_response(change, Errors.NONE, 3, frozenset({1, 2, 3}), 6, T0)
    assert replica.isr == {1, 2, 3} and replica.partition_epoch == 6
    assert isinstance(replica.partition_state, CommittedPartitionState)
    assert not replica.handle_alter_partition_response(change, Errors.NONE, 3, frozenset({1}), 7, T0)  # once only
    assert replica.isr == {1, 2, 3}


@pytest.mark.parametrize(("error", "retry", "state"), [
    ("INVALID_UPDATE_VERSION", False, "pending"),
    ("FENCED_LEADER_EPOCH", False, "pending"),
    ("OPERATION_NOT_ATTEMPTED", False, "committed"),
    ("INELIGIBLE_REPLICA", False, "committed"),
    ("UNKNOWN_SERVER_ERROR", True, "pending"),
])
def test_alter_partition_errors_are_handled_as_kafka_does(tmp_path: Path, error: str, retry: bool, state: str) -> None:
    replica, sender = _replicated_leader(tmp_path, {1, 2})
    replica.update_follower_fetch_state(3, 0, now_ms=T0)
    [change] = sender.submitted
    assert replica.handle_alter_partition_response(change, by_name[error]) is retry
    assert (replica.partition_state is change) is (state == "pending")
    assert replica.isr == {1, 2}
    replica.update_follower_fetch_state(3, 0, now_ms=T0)
    assert len(sender.submitted) == (2 if state == "committed" else 1)  # pending: nothing new is proposed


def test_a_follower_lagging_for_the_lag_time_is_proposed_for_removal(tmp_path: Path) -> None:
    replica, sender = _replicated_leader(tmp_path, {1, 2, 3})
    replica.append_records_to_leader(batch(2))
    replica.update_follower_fetch_state(2, 2, now_ms=T0 + 1_000)
    replica.update_follower_fetch_state(3, 0, now_ms=T0 + 1_000)
    assert not replica.maybe_shrink_isr(T0 + 30_000)  # caught up at T0 (make_leader): 30 s is not over
    replica.update_follower_fetch_state(2, 2, now_ms=T0 + 30_001)
    assert replica.maybe_shrink_isr(T0 + 30_001)
    [change] = sender.submitted
    assert isinstance(change, PendingShrinkIsr) and change.out_of_sync_replica_ids == {3} and change.sent_isr == {1, 2}
    assert replica.maximal_isr == {1, 2, 3} and replica.high_watermark == 0  # not assumed before confirmed
    replica.handle_alter_partition_response(change, Errors.NONE, 3, frozenset({1, 2}), 6, T0 + 30_002)
    assert replica.high_watermark == 2


def test_the_high_watermark_does_not_move_while_the_isr_is_below_min_insync_replicas(tmp_path: Path) -> None:
    replica, _ = _replicated_leader(tmp_path, {1}, min_insync_replicas=2)
    replica.append_records_to_leader(batch(3))
    assert replica.high_watermark == 0
    with pytest.raises(KafkaError) as refused:
        replica.append_records_to_leader(batch(1), required_acks=-1)
    assert refused.value.error == Errors.NOT_ENOUGH_REPLICAS and replica.log_end_offset == 3


def test_acks_all_waits_for_the_hw_and_checks_the_isr_when_it_is_reached(tmp_path: Path) -> None:
    replica, _ = _replicated_leader(tmp_path, {1, 2, 3}, min_insync_replicas=2)
    replica.append_records_to_leader(batch(2), required_acks=-1)
    assert replica.check_enough_replicas_reach_offset(2) == (False, Errors.NONE)
    replica.update_follower_fetch_state(2, 2, now_ms=T0)
    replica.update_follower_fetch_state(3, 2, now_ms=T0)
    assert replica.check_enough_replicas_reach_offset(2) == (True, Errors.NONE)
    replica.make_leader(3, {1}, [1, 2, 3], partition_epoch=6, now_ms=T0)  # the controller shrank the ISR
    assert replica.check_enough_replicas_reach_offset(2) == (True, Errors.NOT_ENOUGH_REPLICAS_AFTER_APPEND)
    replica.make_follower(4, 2, [1, 2, 3], partition_epoch=7, now_ms=T0)
    assert replica.check_enough_replicas_reach_offset(2) == (False, Errors.NOT_LEADER_OR_FOLLOWER)


def test_a_partition_change_older_than_the_partition_epoch_is_ignored(tmp_path: Path) -> None:
    replica, _ = _replicated_leader(tmp_path, {1, 2})
    assert not replica.make_follower(4, 2, [1, 2, 3], partition_epoch=4, now_ms=T0)
    assert replica.is_leader and replica.leader_epoch == 3
    assert replica.make_follower(4, 2, [1, 2, 3], partition_epoch=5, now_ms=T0)
    assert not replica.is_leader and replica.isr == set()


def test_a_new_leader_epoch_forgets_the_followers_offsets_so_the_hw_waits_for_their_next_fetch(tmp_path: Path) -> None:
    replica, _ = _replicated_leader(tmp_path, {1, 2})
    replica.append_records_to_leader(batch(2))
    replica.update_follower_fetch_state(2, 2, now_ms=T0)
    replica.make_leader(4, {1, 2}, [1, 2, 3], partition_epoch=6, now_ms=T0)
    replica.append_records_to_leader(batch(1))
    assert replica.high_watermark == 2 and replica.follower_log_end_offsets[2] == 0
    replica.update_follower_fetch_state(2, 3, now_ms=T0)
    assert replica.high_watermark == 3


def test_a_followers_read_reports_where_its_last_epoch_diverges(tmp_path: Path) -> None:
    replica, _ = _replicated_leader(tmp_path, {1, 2})
    replica.append_records_to_leader(batch(2))  # epoch 3 from 0
    replica.make_leader(5, {1, 2}, [1, 2, 3], partition_epoch=6, now_ms=T0)
    replica.append_records_to_leader(batch(1))  # epoch 5 from 2
    assert replica.read_for_follower(3, 5, 1000).diverging_epoch is None
    diverged = replica.read_for_follower(4, 4, 1000)  # epoch 4 never led here: our floor is 3, ending at 2
    assert diverged.diverging_epoch == (3, 2) and diverged.records == b""
    assert replica.read_for_follower(2, 3, 1000).diverging_epoch is None
    assert headers(replica.read_for_follower(2, 3, 1000).records)[0].base_offset == 2
    with pytest.raises(KafkaError) as unknown:
        replica.read_for_follower(3, 9, 1000)
    assert unknown.value.error == Errors.OFFSET_OUT_OF_RANGE


def test_check_valid_names_the_broken_invariant(tmp_path: Path) -> None:
    replica, _ = _replicated_leader(tmp_path, {1, 2})
    replica.isr = {2, 3}
    with pytest.raises(AssertionError, match="LeaderInIsr"):
        replica.check_valid()
