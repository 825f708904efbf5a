"""The transaction coordinator's rules (reference.broker.txn.coordinator), sans-IO: a recording log
writer, a recording marker writer and a counter for producer ids.  The error codes are those
Apache Kafka 4.3.1 answers (see test_transactions_wire.py for the same sequences on the wire)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from reference.broker.txn.coordinator import (
    MAX_EPOCH,
    TransactionCoordinator,
    TransactionCoordinatorConfig,
    TransactionMetadata,
)
from reference.broker.txn.state import (
    VALID_PREVIOUS_STATES,
    IllegalTransactionTransition,
    TransactionState,
    check_transition,
)
from reference.errors import ErrorCode, Errors

S = TransactionState
T0 = 1_000_000
TP = ("topic", 0)


class Recorder:
    """Log writer, marker writer and producer id source in one; ``refuse`` makes writes fail."""

    def __init__(self) -> None:
        self.log: list[tuple[str, TransactionState | None]] = []
        self.markers: list[tuple[int, int, bool, list[tuple[str, int]]]] = []
        self.refuse: ErrorCode | None = None
        self.hold_markers = False  # True: markers stay in flight until ``release``
        self.held: list[Callable[[int], None]] = []
        self.next_id = 100

    def release(self, now_ms: int) -> None:
        held, self.held = self.held, []
        for on_written in held:
            on_written(now_ms)

    def write(self, transactional_id: str, metadata: TransactionMetadata | None, now_ms: int) -> ErrorCode:
        if self.refuse is not None:
            return self.refuse
        self.log.append((transactional_id, None if metadata is None else metadata.state))
        return Errors.NONE

    def write_markers(self, producer_id: int, producer_epoch: int, commit: bool, coordinator_epoch: int,
                      partitions: Iterable[tuple[str, int]], now_ms: int, on_written: Callable[[int], None]) -> None:
        self.markers.append((producer_id, producer_epoch, commit, list(partitions)))
        if self.hold_markers:
            self.held.append(on_written)
        else:
            on_written(now_ms)

    def next_producer_id(self) -> int:
        self.next_id += 1
        return self.next_id


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def coordinator(recorder: Recorder) -> TransactionCoordinator:
    return TransactionCoordinator(TransactionCoordinatorConfig(), recorder, recorder, recorder)


def init(coordinator: TransactionCoordinator, txn: str = "t", pid: int = -1, epoch: int = -1) -> tuple[int, int]:
    result = coordinator.init_producer_id(txn, 60_000, pid, epoch, T0)
    assert result.error is Errors.NONE, result
    return result.producer_id, result.producer_epoch


def test_the_state_table_is_kafkas() -> None:
    assert VALID_PREVIOUS_STATES[S.PREPARE_COMMIT] == {S.ONGOING}
    assert S.EMPTY in VALID_PREVIOUS_STATES[S.PREPARE_ABORT], "transaction version 2 aborts empty transactions"
    with pytest.raises(IllegalTransactionTransition):
        check_transition("t", S.EMPTY, S.PREPARE_COMMIT)
    assert [s.id for s in S] == list(range(8))


def test_a_new_transactional_id_gets_a_fresh_producer_id_at_epoch_0(coordinator: TransactionCoordinator,
                                                                    recorder: Recorder) -> None:
    assert init(coordinator) == (101, 0)
    assert recorder.log == [("t", S.EMPTY)]


def test_init_again_bumps_the_epoch(coordinator: TransactionCoordinator) -> None:
    init(coordinator)
    assert init(coordinator) == (101, 1)


@pytest.mark.parametrize("timeout", [0, -1, 900_001])
def test_a_timeout_outside_the_maximum_is_invalid_transaction_timeout(coordinator: TransactionCoordinator,
                                                                      timeout: int) -> None:
    assert coordinator.init_producer_id("t", timeout, -1, -1, T0).error is Errors.INVALID_TRANSACTION_TIMEOUT


def test_kip_360_init_with_the_current_pair_bumps_with_an_older_one_is_fenced(
        coordinator: TransactionCoordinator) -> None:
    pid, epoch = init(coordinator)
    assert init(coordinator, pid=pid, epoch=epoch) == (pid, epoch + 1)
    assert init(coordinator, pid=pid, epoch=epoch) == (pid, epoch + 1), "a retry of the bump gets the same answer"
    assert coordinator.init_producer_id("t", 60_000, pid, epoch + 5, T0).error is Errors.PRODUCER_FENCED


def test_add_partitions_opens_the_transaction_once(coordinator: TransactionCoordinator, recorder: Recorder) -> None:
    pid, epoch = init(coordinator)
    assert coordinator.add_partitions("t", pid, epoch, [TP], T0 + 5) is Errors.NONE
    assert coordinator.add_partitions("t", pid, epoch, [TP], T0 + 6) is Errors.NONE
    assert recorder.log == [("t", S.EMPTY), ("t", S.ONGOING)], "partitions already in: nothing written"
    assert coordinator.transactions["t"].start_timestamp_ms == T0 + 5


def test_add_partitions_identity_errors(coordinator: TransactionCoordinator) -> None:
    pid, epoch = init(coordinator)
    assert coordinator.add_partitions("unknown", pid, epoch, [TP], T0) is Errors.INVALID_PRODUCER_ID_MAPPING
    assert coordinator.add_partitions("t", pid + 1, epoch, [TP], T0) is Errors.INVALID_PRODUCER_ID_MAPPING
    assert coordinator.add_partitions("t", pid, epoch + 1, [TP], T0) is Errors.PRODUCER_FENCED


def test_commit_writes_prepare_markers_then_complete(coordinator: TransactionCoordinator, recorder: Recorder) -> None:
    pid, epoch = init(coordinator)
    coordinator.add_partitions("t", pid, epoch, [TP, ("other", 3)], T0)
    result = coordinator.end_transaction("t", pid, epoch, True, 0, T0)
    assert result.error is Errors.NONE
    assert [state for _, state in recorder.log] == [S.EMPTY, S.ONGOING, S.PREPARE_COMMIT, S.COMPLETE_COMMIT]
    assert recorder.markers == [(pid, epoch, True, [("other", 3), TP])]
    assert not coordinator.transactions["t"].partitions
    coordinator.check_valid()


def test_end_txn_by_state(coordinator: TransactionCoordinator) -> None:
    pid, epoch = init(coordinator)
    assert coordinator.end_transaction("t", pid, epoch, True, 0, T0).error is Errors.INVALID_TXN_STATE
    assert coordinator.end_transaction("t", pid, epoch, False, 0, T0).error is Errors.INVALID_TXN_STATE
    coordinator.add_partitions("t", pid, epoch, [TP], T0)
    assert coordinator.end_transaction("t", pid, epoch, True, 0, T0).error is Errors.NONE
    assert coordinator.end_transaction("t", pid, epoch, True, 0, T0).error is Errors.NONE, "a retry"
    assert coordinator.end_transaction("t", pid, epoch, False, 0, T0).error is Errors.INVALID_TXN_STATE
    assert coordinator.end_transaction("t", pid, epoch - 1, True, 0, T0).error is Errors.PRODUCER_FENCED


def test_while_markers_are_in_flight_the_id_answers_concurrent_transactions(coordinator: TransactionCoordinator,
                                                                            recorder: Recorder) -> None:
    """As Kafka: EndTxn is answered once PrepareCommit is written; until the markers are written
    the next requests are told CONCURRENT_TRANSACTIONS (retriable), a retry of the other decision
    INVALID_TXN_STATE."""
    pid, epoch = init(coordinator)
    coordinator.add_partitions("t", pid, epoch, [TP], T0)
    recorder.hold_markers = True
    assert coordinator.end_transaction("t", pid, epoch, True, 0, T0).error is Errors.NONE
    assert coordinator.transactions["t"].state is S.PREPARE_COMMIT
    assert coordinator.add_partitions("t", pid, epoch, [TP], T0) is Errors.CONCURRENT_TRANSACTIONS
    assert coordinator.end_transaction("t", pid, epoch, True, 0, T0).error is Errors.CONCURRENT_TRANSACTIONS
    assert coordinator.end_transaction("t", pid, epoch, False, 0, T0).error is Errors.INVALID_TXN_STATE
    assert coordinator.init_producer_id("t", 60_000, -1, -1, T0).error is Errors.CONCURRENT_TRANSACTIONS
    recorder.release(T0 + 1)
    assert coordinator.transactions["t"].state is S.COMPLETE_COMMIT
    assert coordinator.add_partitions("t", pid, epoch, [TP], T0) is Errors.NONE


def test_transaction_version_2_bumps_the_epoch_at_every_end(coordinator: TransactionCoordinator,
                                                           recorder: Recorder) -> None:
    pid, epoch = init(coordinator)
    coordinator.add_partitions("t", pid, epoch, [TP], T0)
    result = coordinator.end_transaction("t", pid, epoch, True, 2, T0)
    assert (result.error, result.producer_id, result.producer_epoch) == (Errors.NONE, pid, epoch + 1)
    assert recorder.markers[-1][1] == epoch + 1, "the markers carry the new epoch, fencing late writes"
    again = coordinator.end_transaction("t", pid, epoch, True, 2, T0)
    assert (again.error, again.producer_epoch) == (Errors.NONE, epoch + 1), "a retry with the replaced epoch"
    assert coordinator.end_transaction("t", pid, epoch, False, 2, T0).error is Errors.INVALID_TXN_STATE


def test_transaction_version_2_may_abort_an_empty_transaction(coordinator: TransactionCoordinator) -> None:
    pid, epoch = init(coordinator)
    result = coordinator.end_transaction("t", pid, epoch, False, 2, T0)
    assert (result.error, result.producer_epoch) == (Errors.NONE, epoch + 1)


def test_an_exhausted_epoch_rotates_the_producer_id(coordinator: TransactionCoordinator) -> None:
    pid, _ = init(coordinator)
    coordinator.transactions["t"].producer_epoch = MAX_EPOCH - 1
    assert init(coordinator, pid=pid, epoch=MAX_EPOCH - 1) == (102, 0)
    coordinator.add_partitions("t", 102, 0, [TP], T0)
    coordinator.transactions["t"].producer_epoch = MAX_EPOCH - 1
    result = coordinator.end_transaction("t", 102, MAX_EPOCH - 1, True, 2, T0)
    assert (result.error, result.producer_id, result.producer_epoch) == (Errors.NONE, 103, 0)


def test_a_new_instance_fences_and_aborts_the_open_transaction(coordinator: TransactionCoordinator,
                                                               recorder: Recorder) -> None:
    pid, epoch = init(coordinator)
    coordinator.add_partitions("t", pid, epoch, [TP], T0)
    assert coordinator.init_producer_id("t", 60_000, -1, -1, T0).error is Errors.CONCURRENT_TRANSACTIONS
    assert recorder.markers == [(pid, epoch + 1, False, [TP])], "aborted with the fenced epoch"
    assert coordinator.transactions["t"].state is S.COMPLETE_ABORT
    assert init(coordinator) == (pid, epoch + 2)
    assert coordinator.end_transaction("t", pid, epoch, True, 0, T0).error is Errors.PRODUCER_FENCED


def test_a_timed_out_transaction_is_fenced_and_aborted(coordinator: TransactionCoordinator,
                                                       recorder: Recorder) -> None:
    pid, epoch = init(coordinator)
    coordinator.add_partitions("t", pid, epoch, [TP], T0)
    assert coordinator.abort_timed_out_transactions(T0 + 60_000) == []
    assert coordinator.abort_timed_out_transactions(T0 + 60_001) == ["t"]
    assert coordinator.transactions["t"].state is S.COMPLETE_ABORT
    assert coordinator.add_partitions("t", pid, epoch, [TP], T0) is Errors.PRODUCER_FENCED


def test_a_refused_write_changes_nothing(coordinator: TransactionCoordinator, recorder: Recorder) -> None:
    pid, epoch = init(coordinator)
    recorder.refuse = Errors.NOT_COORDINATOR
    assert coordinator.add_partitions("t", pid, epoch, [TP], T0) is Errors.NOT_COORDINATOR
    assert coordinator.transactions["t"].state is S.EMPTY, "memory follows the log"


def test_verification_answers_per_partition(coordinator: TransactionCoordinator) -> None:
    pid, epoch = init(coordinator)
    coordinator.add_partitions("t", pid, epoch, [TP], T0)
    assert coordinator.verify_partitions("t", pid, epoch, [TP, ("x", 1)]) == {
        TP: Errors.NONE, ("x", 1): Errors.INVALID_TXN_STATE}
    assert coordinator.verify_partitions("t", pid, epoch + 1, [TP]) == {TP: Errors.PRODUCER_FENCED}


def test_loading_completes_a_transaction_left_prepared(coordinator: TransactionCoordinator,
                                                       recorder: Recorder) -> None:
    prepared = TransactionMetadata("t", 7, 3, 60_000, S.PREPARE_ABORT, {TP}, T0, T0)
    coordinator.load([("gone", None), ("t", prepared.to_value())], T0)
    assert recorder.markers == [(7, 3, False, [TP])]
    assert coordinator.transactions["t"].state is S.COMPLETE_ABORT


def test_an_idle_transactional_id_expires_with_a_tombstone(coordinator: TransactionCoordinator,
                                                           recorder: Recorder) -> None:
    pid, epoch = init(coordinator)
    init(coordinator, "busy")
    coordinator.add_partitions("busy", *coordinator.transactions["busy"].producer_id_and_epoch(), [TP], T0)
    assert coordinator.expire_transactional_ids(T0 + 999, 1000) == []
    assert coordinator.expire_transactional_ids(T0 + 1000, 1000) == ["t"], "an open transaction keeps its id"
    assert recorder.log[-1] == ("t", None)
    assert init(coordinator) == (103, 0), "a new producer id after expiry"
