"""KIP-227 on the client side, and turning fetched batches into records (no sockets).

The session rules are checked against Apache Kafka end to end in test_consumer.py; here each rule
of ``fetch_session`` and of ``fetcher.decode_records`` is driven directly.
"""

from __future__ import annotations

from reference.client.cluster import TopicPartition
from reference.client.fetch_session import FINAL_EPOCH, FetchSession, PartitionRequest
from reference.client.fetcher import decode_records
from reference.errors import Errors
from reference.protocol.schema import Data
from reference.records.batch import SimpleRecord, build_batch
from reference.records.compression import CompressionType
from reference.records.control import (
    ControlRecordType,
    EndTransactionMarker,
    build_end_transaction_marker_batch,
)

A0, A1, B0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)


def want(**offsets: int) -> dict[TopicPartition, PartitionRequest]:
    names = {"a0": A0, "a1": A1, "b0": B0}
    return {names[k]: PartitionRequest(v, 0, 1024) for k, v in offsets.items()}


def test_a_full_fetch_opens_a_session_and_later_ones_send_only_changes() -> None:
    session = FetchSession(node_id=1)
    first = session.build(want(a0=0, a1=0, b0=0))
    assert (first.session_id, first.epoch, first.full) == (0, 0, True)
    assert set(first.to_send) == {A0, A1, B0}
    assert session.handle_response(first, 0, 77, {A0, A1, B0})
    second = session.build(want(a0=5, a1=0))  # a0 moved on, b0 is no longer wanted
    assert (second.session_id, second.epoch) == (77, 1)
    assert set(second.to_send) == {A0} and second.to_forget == [B0]
    assert session.handle_response(second, 0, 77, {A0})
    assert session.build(want(a0=5, a1=0)).epoch == 2


def test_a_broker_that_makes_no_session_gets_full_fetches_every_time() -> None:
    session = FetchSession(node_id=1)
    for _ in range(3):
        request = session.build(want(a0=0))
        assert request.full and request.session_id == 0 and set(request.to_send) == {A0}
        assert session.handle_response(request, 0, 0, {A0})


def test_session_id_not_found_starts_again_without_the_old_id() -> None:
    session = FetchSession(node_id=1)
    session.handle_response(session.build(want(a0=0)), 0, 9, {A0})
    request = session.build(want(a0=1))
    assert not session.handle_response(request, Errors.FETCH_SESSION_ID_NOT_FOUND.code, 0, set())
    retry = session.build(want(a0=1))
    assert (retry.session_id, retry.epoch, set(retry.to_send)) == (0, 0, {A0})


def test_an_invalid_epoch_or_a_lost_request_closes_the_old_session_with_a_full_fetch() -> None:
    session = FetchSession(node_id=1)
    session.handle_response(session.build(want(a0=0)), 0, 9, {A0})
    request = session.build(want(a0=1))
    assert not session.handle_response(request, Errors.INVALID_FETCH_SESSION_EPOCH.code, 0, set())
    assert (session.build(want(a0=1)).session_id, session.epoch) == (9, 0)
    session.handle_error()
    assert session.build(want(a0=1)).full


def test_an_incremental_answer_naming_a_partition_outside_the_session_is_refused() -> None:
    session = FetchSession(node_id=1)
    session.handle_response(session.build(want(a0=0)), 0, 9, {A0})
    request = session.build(want(a0=1))
    assert not session.handle_response(request, 0, 9, {B0})
    assert session.build(want(a0=1)).full


def test_sessionless_fetches_use_the_final_epoch() -> None:
    session = FetchSession(node_id=1, use_sessions=False)
    request = session.build(want(a0=0))
    assert request.epoch == FINAL_EPOCH and request.full
    assert session.handle_response(request, 0, 0, {A0})
    assert session.build(want(a0=3)).epoch == FINAL_EPOCH


# -- decoding ------------------------------------------------------------------------------------


def records(values: list[bytes], base_offset: int, **kwargs: object) -> bytes:
    return build_batch([SimpleRecord(v, timestamp=1000) for v in values], base_offset=base_offset, **kwargs)  # type: ignore[arg-type]


def test_records_before_the_fetch_offset_are_skipped_and_codecs_decoded() -> None:
    data = records([b"r0", b"r1", b"r2"], 0, compression=CompressionType.ZSTD, partition_leader_epoch=4) \
        + records([b"r3"], 3, compression=CompressionType.GZIP, partition_leader_epoch=5)
    found, next_offset, epoch = decode_records(A0, data, 1, False, [], True)
    assert [(r.offset, r.value, r.leader_epoch) for r in found] == [(1, b"r1", 4), (2, b"r2", 4), (3, b"r3", 5)]
    assert (next_offset, epoch) == (4, 5)


def test_a_partial_batch_at_the_end_of_a_fetch_is_left_for_the_next_fetch() -> None:
    data = records([b"r0"], 0) + records([b"r1"], 1)[:-3]
    found, next_offset, _ = decode_records(A0, data, 0, False, [], True)
    assert [r.offset for r in found] == [0] and next_offset == 1


def test_read_committed_drops_aborted_transactions_and_every_level_skips_markers() -> None:
    pid, epoch = 42, 0

    def marker(kind: ControlRecordType, offset: int) -> bytes:
        return build_end_transaction_marker_batch(EndTransactionMarker(kind, 0), producer_id=pid,
                                                  producer_epoch=epoch, timestamp=1000, base_offset=offset)

    data = (records([b"aborted-0", b"aborted-1"], 0, producer_id=pid, producer_epoch=epoch, base_sequence=0,
                    transactional=True)
            + marker(ControlRecordType.ABORT, 2)
            + records([b"committed"], 3, producer_id=pid, producer_epoch=epoch, base_sequence=2, transactional=True)
            + marker(ControlRecordType.COMMIT, 4))
    aborted = [Data(producer_id=pid, first_offset=0)]
    committed, next_offset, _ = decode_records(A0, data, 0, True, aborted, True)
    assert [r.value for r in committed] == [b"committed"] and next_offset == 5
    everything, _, _ = decode_records(A0, data, 0, False, aborted, True)
    assert [r.value for r in everything] == [b"aborted-0", b"aborted-1", b"committed"]
