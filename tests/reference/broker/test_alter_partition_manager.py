"""The AlterPartition manager: what it sends to the controller, one request at a time, and how it
hands answers back to the partitions and retries what failed."""

from __future__ import annotations

import uuid
from pathlib import Path

from reference.broker.alter_partition_manager import AlterPartitionManager
from reference.broker.log.clock import ManualClock
from reference.broker.partition import Partition
from reference.client.outbox import OutboundRequest, Outbox
from reference.errors import Errors
from reference.protocol.apis import API_BY_KEY
from reference.protocol.schema import Data

from .log.helpers import T0, open_log

ALTER_PARTITION = API_BY_KEY[56]
TOPIC_ID = uuid.UUID(int=7)
CONTROLLER = 3000


class Setup:
    def __init__(self, root: Path) -> None:
        self.outbox = Outbox()
        self.controller: int | None = CONTROLLER
        self.manager = AlterPartitionManager(1, lambda: 101, lambda: self.controller, self.outbox,
                                             lambda name: TOPIC_ID if name == "t" else None)
        self.partitions = []
        for index in (0, 1):
            partition = Partition(open_log(root / f"t-{index}", ManualClock(T0)), 1, alter_partition=self.manager)
            partition.make_leader(2, {1}, [1, 2], partition_epoch=4, now_ms=T0)
            self.partitions.append(partition)

    def expand(self, index: int) -> None:
        """Follower 2 catches up on partition ``index``: its leader proposes it for the ISR."""
        self.partitions[index].update_follower_fetch_state(2, 0, now_ms=T0, broker_epoch=202)


def answer(request: OutboundRequest, error: int = 0, partition_errors: dict[int, int] | None = None) -> Data:
    response = ALTER_PARTITION.response
    partitions = []
    for wanted in request.body.topics[0].partitions:
        code = (partition_errors or {}).get(wanted.partition_index, 0)
        partitions.append(response.struct("PartitionData").make(
            partition_index=wanted.partition_index, error_code=code, leader_id=1, leader_epoch=wanted.leader_epoch,
            isr=[s.broker_id for s in wanted.new_isr_with_epochs], partition_epoch=wanted.partition_epoch + 1))
    return response.make(error_code=error, topics=[response.struct("TopicData").make(topic_id=TOPIC_ID,
                                                                                     partitions=partitions)])


def test_a_change_goes_to_the_controller_with_epochs_and_the_answer_commits_it(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    setup.expand(0)
    [request] = setup.outbox.drain()
    assert (request.destination, request.api_key) == (CONTROLLER, 56)
    body = request.body
    assert (body.broker_id, body.broker_epoch, body.topics[0].topic_id) == (1, 101, TOPIC_ID)
    wanted = body.topics[0].partitions[0]
    assert (wanted.partition_index, wanted.leader_epoch, wanted.partition_epoch) == (0, 2, 4)
    assert [(s.broker_id, s.broker_epoch) for s in wanted.new_isr_with_epochs] == [(1, 101), (2, 202)]
    request.complete(answer(request), T0)
    assert setup.partitions[0].isr == {1, 2} and setup.partitions[0].partition_epoch == 5


def test_one_request_in_flight_and_changes_made_meanwhile_go_together_next(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    setup.expand(0)
    [first] = setup.outbox.drain()
    setup.expand(1)
    assert setup.outbox.drain() == []
    first.complete(answer(first), T0)
    [second] = setup.outbox.drain()
    assert [p.partition_index for p in second.body.topics[0].partitions] == [1]


def test_a_failed_request_or_a_top_level_error_is_retried_after_the_backoff(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    setup.expand(0)
    [request] = setup.outbox.drain()
    request.fail(ConnectionError("controller moved"), T0)
    setup.manager.poll(T0 + 10)
    assert setup.outbox.drain() == []
    assert setup.manager.next_deadline() == T0 + 50
    setup.manager.poll(T0 + 50)
    [again] = setup.outbox.drain()
    again.complete(answer(again, error=Errors.NOT_CONTROLLER.code), T0 + 60)
    assert setup.partitions[0].isr == {1}
    setup.manager.poll(T0 + 110)
    [third] = setup.outbox.drain()
    third.complete(answer(third), T0 + 120)
    assert setup.partitions[0].isr == {1, 2}


def test_a_partition_error_goes_to_its_partition_and_only_retriable_ones_are_resent(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    setup.expand(0)
    [first] = setup.outbox.drain()
    setup.expand(1)
    first.complete(answer(first, partition_errors={0: Errors.UNKNOWN_SERVER_ERROR.code}), T0)
    assert setup.outbox.drain() == []  # a retry waits the backoff, and what queued meanwhile with it
    setup.manager.poll(T0 + 50)
    [second] = setup.outbox.drain()
    assert sorted(p.partition_index for p in second.body.topics[0].partitions) == [0, 1]
    second.complete(answer(second, partition_errors={1: Errors.FENCED_LEADER_EPOCH.code}), T0 + 51)
    setup.manager.poll(T0 + 200)
    assert setup.outbox.drain() == []  # the fenced change waits for new metadata
    assert setup.partitions[0].isr == {1, 2} and setup.partitions[1].isr == {1}
    assert setup.partitions[1].maximal_isr == {1, 2}  # still pending


def test_without_a_known_controller_the_change_waits_and_is_sent_once_one_is_known(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    setup.controller = None
    setup.manager.poll(T0)
    setup.expand(0)
    assert setup.outbox.drain() == [] and setup.manager.next_deadline() == T0 + 50
    setup.controller = CONTROLLER
    setup.manager.poll(T0 + 50)
    assert len(setup.outbox.drain()) == 1
