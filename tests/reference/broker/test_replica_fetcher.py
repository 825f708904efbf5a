"""The replica fetcher on its own: the Fetch it builds, and what it does with each kind of answer,
against a real follower partition and hand-written leader answers."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from reference.broker.log.clock import ManualClock
from reference.broker.log.files import TopicPartition
from reference.broker.partition import FetchIsolation, Partition
from reference.broker.replica_fetcher import (
    FetcherContext,
    InitialFetchState,
    ReplicaFetcherConfig,
    ReplicaFetcherManager,
    ReplicaState,
)
from reference.client.outbox import OutboundRequest, Outbox
from reference.errors import ErrorCode, Errors
from reference.protocol.apis import API_BY_NAME
from reference.protocol.schema import Data
from reference.records.batch import assign_offsets_in_place

from .log.helpers import T0, batch, headers, open_log

FETCH = API_BY_NAME["Fetch"]
LIST_OFFSETS = API_BY_NAME["ListOffsets"]
TOPIC_ID = uuid.UUID(int=42)
TP = TopicPartition("t", 0)
LEADER, FOLLOWER = 1, 2


class Follower:
    """Broker 2 following ``t-0`` on broker 1, with its outbox in view."""

    def __init__(self, root: Path) -> None:
        self.clock = ManualClock(T0)
        self.partition = Partition(open_log(root / "t-0", self.clock), FOLLOWER)
        self.outbox = Outbox()
        self.manager = ReplicaFetcherManager(FetcherContext(
            replica_id=FOLLOWER, broker_epoch=lambda: 77, outbox=self.outbox,
            partition=lambda tp: self.partition if tp == TP else None,
            topic_id=lambda name: TOPIC_ID if name == "t" else None,
            topic_name=lambda topic_id: "t" if topic_id == TOPIC_ID else None,
            config=ReplicaFetcherConfig(),
        ))

    def follow(self, leader_epoch: int = 0) -> None:
        self.partition.make_follower(leader_epoch, LEADER, [LEADER, FOLLOWER])
        self.manager.add_fetcher_for_partition(TP, InitialFetchState(LEADER, leader_epoch), self.partition, T0)

    def sent(self) -> list[OutboundRequest]:
        return self.outbox.drain()

    def one_fetch(self) -> tuple[OutboundRequest, Data]:
        requests = self.sent()
        assert len(requests) == 1 and requests[0].api_key == FETCH.key and requests[0].destination == LEADER
        wanted = requests[0].body.topics[0].partitions[0]
        return requests[0], wanted

    @property
    def state(self) -> ReplicaState:
        found = self.manager.fetch_state(TP)
        assert found is not None
        return found.state


def fetch_answer(error: ErrorCode | None = None, records: bytes = b"", high_watermark: int = 0, log_start: int = 0,
                 diverging: tuple[int, int] | None = None) -> Data:
    partition = FETCH.response.struct("PartitionData").make(
        partition_index=0, error_code=(error or Errors.NONE).code, high_watermark=high_watermark,
        log_start_offset=log_start, records=records)
    if diverging is not None:
        partition.diverging_epoch = FETCH.response.struct("EpochEndOffset").make(epoch=diverging[0],
                                                                                end_offset=diverging[1])
    topic = FETCH.response.struct("FetchableTopicResponse").make(topic_id=TOPIC_ID, partitions=[partition])
    return FETCH.response.make(responses=[topic])


def leader_batch(count: int, base_offset: int, epoch: int) -> bytes:
    """A batch as the leader stored it: offsets from ``base_offset``, stamped with ``epoch``."""
    stored = bytearray(batch(count))
    assign_offsets_in_place(stored, 0, base_offset, epoch)
    return bytes(stored)


@pytest.fixture
def follower(tmp_path: Path) -> Follower:
    return Follower(tmp_path)


def test_the_fetch_names_the_follower_its_epochs_and_its_log_end(follower: Follower) -> None:
    follower.partition.log.append_as_follower(leader_batch(3, 0, 0))
    follower.follow(leader_epoch=4)
    request, wanted = follower.one_fetch()
    body = request.body
    assert (body.replica_state.replica_id, body.replica_state.replica_epoch, body.replica_id) == (FOLLOWER, 77, FOLLOWER)
    assert (body.max_wait_ms, body.min_bytes, body.max_bytes, body.session_id, body.session_epoch) == (
        500, 1, 10_485_760, 0, -1)
    assert body.topics[0].topic_id == TOPIC_ID
    assert (wanted.current_leader_epoch, wanted.fetch_offset, wanted.last_fetched_epoch, wanted.log_start_offset,
            wanted.partition_max_bytes) == (4, 3, 0, 0, 1_048_576)


def test_one_fetch_in_flight_then_the_answer_is_appended_with_the_leaders_offsets_and_hw(follower: Follower) -> None:
    follower.follow()
    request, _ = follower.one_fetch()
    follower.manager.poll(T0)
    assert follower.sent() == []  # still in flight
    request.complete(fetch_answer(records=leader_batch(2, 0, 0), high_watermark=5), T0)
    assert follower.partition.log_end_offset == 2
    assert follower.partition.high_watermark == 2  # min(leader HW 5, own LEO 2)
    _, wanted = follower.one_fetch()  # the next fetch goes out at once, from the new LEO
    assert (wanted.fetch_offset, wanted.last_fetched_epoch) == (2, 0)


def test_a_diverging_epoch_truncates_to_where_the_leaders_epoch_ends(follower: Follower) -> None:
    log = follower.partition.log
    log.append_as_follower(leader_batch(2, 0, 0))
    for offset in (2, 3, 4):  # epoch 1 from offset 2; the new leader has it up to 3 only
        log.append_as_follower(leader_batch(1, offset, 1))
    follower.follow(leader_epoch=2)
    request, wanted = follower.one_fetch()
    assert (wanted.fetch_offset, wanted.last_fetched_epoch) == (5, 1)
    request.complete(fetch_answer(diverging=(1, 3), high_watermark=3), T0)
    assert follower.partition.log_end_offset == 3
    _, wanted = follower.one_fetch()
    assert (wanted.fetch_offset, wanted.last_fetched_epoch) == (3, 1)


def test_a_leader_epoch_unknown_to_the_follower_truncates_below_it_and_asks_again(follower: Follower) -> None:
    """KIP-279: the leader answers epoch 0 ending at 1; the follower has epochs 1 and 3 only from
    offset 2 on, so it cuts back to the end of its largest epoch below 0's successor."""
    log = follower.partition.log
    log.append_as_follower(leader_batch(2, 0, 1))
    log.append_as_follower(leader_batch(2, 2, 3))
    follower.follow(leader_epoch=4)
    request, _ = follower.one_fetch()
    request.complete(fetch_answer(diverging=(2, 3)), T0)  # epoch 2 is unknown here: our floor is 1, ending at 2
    assert follower.partition.log_end_offset == 2
    _, wanted = follower.one_fetch()
    assert (wanted.fetch_offset, wanted.last_fetched_epoch) == (2, 1)


def test_out_of_range_below_the_leaders_log_start_restarts_the_log_there(follower: Follower) -> None:
    follower.partition.log.append_as_follower(leader_batch(2, 0, 0))
    follower.follow()
    request, _ = follower.one_fetch()
    request.complete(fetch_answer(Errors.OFFSET_OUT_OF_RANGE), T0)
    assert follower.state is ReplicaState.LOOKING_UP_OFFSET
    latest = follower.sent()
    assert [r.api_key for r in latest] == [LIST_OFFSETS.key]
    assert latest[0].body.replica_id == FOLLOWER and latest[0].body.topics[0].partitions[0].timestamp == -1
    latest[0].complete(list_offsets_answer(50), T0)
    earliest = follower.sent()
    assert earliest[0].body.topics[0].partitions[0].timestamp == -2
    earliest[0].complete(list_offsets_answer(40), T0)
    assert (follower.partition.log_start_offset, follower.partition.log_end_offset) == (40, 40)
    _, wanted = follower.one_fetch()
    assert wanted.fetch_offset == 40


def test_out_of_range_above_the_leaders_log_end_truncates_to_it(follower: Follower) -> None:
    for offset in range(5):
        follower.partition.log.append_as_follower(leader_batch(1, offset, 0))
    follower.follow()
    request, _ = follower.one_fetch()
    request.complete(fetch_answer(Errors.OFFSET_OUT_OF_RANGE), T0)
    follower.sent()[0].complete(list_offsets_answer(3), T0)
    assert follower.partition.log_end_offset == 3
    _, wanted = follower.one_fetch()
    assert wanted.fetch_offset == 3


def list_offsets_answer(offset: int, error: ErrorCode | None = None) -> Data:
    partition = LIST_OFFSETS.response.struct("ListOffsetsPartitionResponse").make(
        partition_index=0, error_code=(error or Errors.NONE).code, offset=offset)
    return LIST_OFFSETS.response.make(topics=[LIST_OFFSETS.response.struct("ListOffsetsTopicResponse").make(
        name="t", partitions=[partition])])


def test_fenced_by_a_newer_leader_epoch_the_partition_waits_for_metadata(follower: Follower) -> None:
    follower.follow(leader_epoch=0)
    request, _ = follower.one_fetch()
    request.complete(fetch_answer(Errors.FENCED_LEADER_EPOCH), T0)
    assert follower.state is ReplicaState.FAILED
    follower.manager.poll(T0 + 60_000)
    assert follower.sent() == []
    follower.follow(leader_epoch=1)  # the metadata arrives
    _, wanted = follower.one_fetch()
    assert wanted.current_leader_epoch == 1


@pytest.mark.parametrize("error", [Errors.UNKNOWN_LEADER_EPOCH, Errors.NOT_LEADER_OR_FOLLOWER, None])
def test_other_errors_and_failed_requests_back_off_for_replica_fetch_backoff_ms(
    follower: Follower, error: ErrorCode | None
) -> None:
    follower.follow()
    request, _ = follower.one_fetch()
    if error is None:
        request.fail(ConnectionError("gone"), T0)
    else:
        request.complete(fetch_answer(error), T0)
    assert follower.sent() == []
    assert follower.manager.next_deadline() == T0 + 1_000
    follower.manager.poll(T0 + 999)
    assert follower.sent() == []
    follower.manager.poll(T0 + 1_000)
    assert len(follower.sent()) == 1


def test_an_answer_for_a_fetch_offset_that_moved_meanwhile_is_dropped(follower: Follower) -> None:
    follower.partition.log.append_as_follower(leader_batch(2, 0, 0))
    follower.follow(leader_epoch=0)
    stale, _ = follower.one_fetch()
    follower.follow(leader_epoch=1)  # new metadata: the fetch restarts (same offset, new state)
    follower.sent()
    stale.complete(fetch_answer(records=leader_batch(1, 2, 0), high_watermark=3), T0)
    assert follower.partition.log_end_offset == 2


def test_a_follower_append_rebuilds_the_producer_state(follower: Follower) -> None:
    follower.follow()
    request, _ = follower.one_fetch()
    stored = bytearray(batch(2, producer_id=9, producer_epoch=3, base_sequence=0))
    assign_offsets_in_place(stored, 0, 0, 0)
    request.complete(fetch_answer(records=bytes(stored), high_watermark=2), T0)
    entry = follower.partition.log.producer_state.last_entry(9)
    assert entry is not None and entry.producer_epoch == 3 and entry.last_seq == 1
    assert [h.base_offset for h in headers(follower.partition.read(0, 1000, FetchIsolation.LOG_END).records)] == [0]
