"""PartitionChangeBuilder's rules, partition by partition (Kafka 4.3, KIP-966)."""

from __future__ import annotations

from dataclasses import dataclass, field

from reference.controller.elections import (
    NO_LEADER,
    NO_LEADER_CHANGE,
    RECOVERING,
    Election,
    PartitionChange,
    build_partition_change,
)


@dataclass
class Partition:
    replicas: list[int]
    isr: list[int]
    leader: int
    leader_recovery_state: int = 0
    elr: list[int] = field(default_factory=list)
    last_known_elr: list[int] = field(default_factory=list)


def change(partition: Partition, alive: set[int], *, min_isr: int = 2, elr: bool = True,
           **options: object) -> PartitionChange | None:
    return build_partition_change(partition, is_acceptable_leader=alive.__contains__, min_isr=min_isr,
                                  elr_enabled=elr, **options)  # type: ignore[arg-type]


def test_nothing_to_change_is_no_record() -> None:
    assert change(Partition([1, 2, 3], [1, 2, 3], 1), {1, 2, 3}) is None


def test_a_follower_leaving_the_isr_keeps_the_leader() -> None:
    result = change(Partition([1, 2, 3], [1, 2, 3], 1), {1, 2, 3}, target_isr=[1, 2])
    assert result == PartitionChange(isr=[1, 2])


def test_a_dead_leader_is_replaced_by_the_first_live_isr_member_in_assignment_order() -> None:
    result = change(Partition([3, 1, 2], [1, 2, 3], 1), {2, 3}, target_isr=[2, 3])
    assert result is not None and result.leader == 3 and result.isr == [2, 3]


def test_the_isr_shrinking_below_min_isr_fills_the_elr() -> None:
    result = change(Partition([1, 2, 3], [1, 2], 1), {1}, target_isr=[1])
    assert result == PartitionChange(isr=[1], eligible_leader_replicas=[2])


def test_an_elr_member_is_elected_cleanly_when_the_isr_is_empty() -> None:
    partition = Partition([1, 2, 3], [], NO_LEADER, elr=[1, 2], last_known_elr=[1])
    result = change(partition, {2, 3})
    assert result == PartitionChange(isr=[2], leader=2, eligible_leader_replicas=[1], last_known_elr=[])


def test_without_elr_the_last_isr_member_stays_and_nothing_is_eligible() -> None:
    result = change(Partition([1, 2], [1], 1), {2}, elr=False, target_isr=[])
    assert result == PartitionChange(leader=NO_LEADER)


def test_an_unclean_election_takes_any_live_replica_and_marks_it_recovering() -> None:
    result = change(Partition([1, 2, 3], [1], 1), {3}, elr=False, target_isr=[], election=Election.UNCLEAN)
    assert result == PartitionChange(isr=[3], leader=3, leader_recovery_state=RECOVERING)


def test_an_unclean_election_clears_the_elr() -> None:
    partition = Partition([1, 2, 3], [], NO_LEADER, elr=[1], last_known_elr=[2])
    result = change(partition, {3}, election=Election.UNCLEAN)
    assert result is not None and result.leader == 3 and result.eligible_leader_replicas == []


def test_the_last_known_leader_is_elected_only_when_alive_and_isr_and_elr_are_empty() -> None:
    partition = Partition([1, 2], [], NO_LEADER, last_known_elr=[1])
    assert change(partition, {2}) is None
    result = change(partition, {1, 2})
    assert result is not None and result.leader == 1 and result.isr == [1]
    assert result.leader_recovery_state == RECOVERING and result.last_known_elr == []


def test_the_isr_emptying_records_the_last_known_leader() -> None:
    result = change(Partition([1, 2], [1], 1, elr=[2]), set(), target_isr=[])
    assert result == PartitionChange(isr=[], leader=NO_LEADER, eligible_leader_replicas=[1, 2], last_known_elr=[1])


def test_unclean_shutdown_replicas_are_not_eligible() -> None:
    result = change(Partition([1, 2, 3], [1, 2], 1), {1}, target_isr=[1], unclean_shutdown_replicas=[2])
    assert result == PartitionChange(isr=[1])


def test_preferred_election_moves_to_the_first_replica_if_in_sync_and_alive() -> None:
    partition = Partition([1, 2, 3], [1, 2, 3], 2)
    assert change(partition, {1, 2, 3}, election=Election.PREFERRED) == PartitionChange(leader=1)
    assert change(partition, {2, 3}, election=Election.PREFERRED) is None  # keeps the current leader
    assert change(partition, {1, 2, 3}) is None  # an online election keeps a valid leader


def test_record_fields_leave_unchanged_fields_at_their_sentinels() -> None:
    assert PartitionChange(isr=[1]).record_fields() == {"isr": [1]}
    assert PartitionChange().leader == NO_LEADER_CHANGE and PartitionChange().is_no_op()
