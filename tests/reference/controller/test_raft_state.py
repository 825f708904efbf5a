"""The pieces under the Raft node: the roles table, the quorum-state file, the control records and
the snapshot files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reference.controller.control_records import (
    LEADER_CHANGE_MESSAGE,
    build_control_batch,
    decode_value,
    encode_value,
    leader_change_message,
)
from reference.controller.quorum_state import (
    OBSERVER_TRANSITIONS,
    TRANSITIONS,
    CorruptQuorumStateError,
    ElectionState,
    Event,
    FileQuorumStateStore,
    IllegalTransitionError,
    Role,
    next_role,
)
from reference.controller.snapshot import (
    CorruptSnapshotError,
    SnapshotId,
    decode_snapshot,
    encode_snapshot,
    list_snapshots,
    read_snapshot,
    write_snapshot,
)
from reference.records.batch import RecordBatch, iter_record_batches
from reference.records.control import ControlRecordType, decode_control_key

# -- the roles table --------------------------------------------------------------------------------


def test_a_follower_whose_fetch_timer_expires_becomes_prospective_not_candidate() -> None:
    """KIP-996: the fetch timeout leads to a pre-vote, never straight to a new epoch."""
    assert next_role(Role.FOLLOWER, Event.FETCH_TIMEOUT) is Role.PROSPECTIVE
    assert next_role(Role.UNATTACHED, Event.ELECTION_TIMEOUT) is Role.PROSPECTIVE
    assert next_role(Role.PROSPECTIVE, Event.PRE_VOTE_WON) is Role.CANDIDATE
    assert next_role(Role.CANDIDATE, Event.VOTE_WON) is Role.LEADER


def test_an_illegal_transition_raises_a_typed_error_naming_role_and_event() -> None:
    with pytest.raises(IllegalTransitionError) as raised:
        next_role(Role.FOLLOWER, Event.VOTE_WON)
    assert raised.value.role is Role.FOLLOWER and raised.value.event is Event.VOTE_WON
    assert "Follower" in str(raised.value) and "VOTE_WON" in str(raised.value)


def test_only_a_candidate_can_become_leader_and_only_a_leader_can_resign() -> None:
    leaders = {role for role, events in TRANSITIONS.items() if events.get(Event.VOTE_WON) is Role.LEADER}
    resigners = {role for role, events in TRANSITIONS.items() if Event.RESIGN in events}
    assert leaders == {Role.CANDIDATE}
    assert resigners == {Role.LEADER}


def test_every_role_moves_to_unattached_on_a_higher_epoch() -> None:
    assert all(next_role(role, Event.HIGHER_EPOCH) is Role.UNATTACHED for role in Role)


def test_an_observer_only_learns_epochs_and_leaders_and_never_stands() -> None:
    """A node outside the voter set is Unattached or Follower; timers never make it Prospective."""
    targets = {role for events in OBSERVER_TRANSITIONS.values() for role in events.values()}
    assert set(OBSERVER_TRANSITIONS) == targets == {Role.UNATTACHED, Role.FOLLOWER}
    assert next_role(Role.UNATTACHED, Event.LEADER_DISCOVERED, observer=True) is Role.FOLLOWER
    for event in (Event.FETCH_TIMEOUT, Event.ELECTION_TIMEOUT, Event.VOTE_GRANTED):
        with pytest.raises(IllegalTransitionError):
            next_role(Role.FOLLOWER if event is Event.FETCH_TIMEOUT else Role.UNATTACHED, event, observer=True)


# -- the quorum-state file --------------------------------------------------------------------------


def test_quorum_state_file_uses_kafkas_json_layout(tmp_path: Path) -> None:
    store = FileQuorumStateStore(tmp_path / "quorum-state", [3, 1, 2])
    store.write(ElectionState(epoch=5, leader_id=-1, voted_id=2))
    document = json.loads((tmp_path / "quorum-state").read_text())
    assert document == {
        "clusterId": "",
        "leaderId": -1,
        "leaderEpoch": 5,
        "votedId": 2,
        "appliedOffset": 0,
        "currentVoters": [{"voterId": 1}, {"voterId": 2}, {"voterId": 3}],
        "data_version": 0,
    }
    assert store.read() == ElectionState(5, -1, 2)
    assert not (tmp_path / "quorum-state.tmp").exists()


def test_quorum_state_text_is_what_kafka_4_3_writes(tmp_path: Path) -> None:
    """The line a one-voter Kafka 4.3.1 controller wrote after its third election, character for character."""
    store = FileQuorumStateStore(tmp_path / "quorum-state", [0])
    store.write(ElectionState(epoch=5, leader_id=0, voted_id=-1))
    assert (tmp_path / "quorum-state").read_text() == (
        '{"clusterId":"","leaderId":0,"leaderEpoch":5,"votedId":-1,"appliedOffset":0,'
        '"currentVoters":[{"voterId":0}],"data_version":0}'
    )


def test_quorum_state_reads_kafkas_version_1_layout(tmp_path: Path) -> None:
    path = tmp_path / "quorum-state"
    path.write_text('{"leaderId":3,"leaderEpoch":7,"votedId":-1,"votedDirectoryId":"AAAAAAAAAAAAAAAAAAAAAA","data_version":1}')
    assert FileQuorumStateStore(path, [1, 2, 3]).read() == ElectionState(7, 3, -1)


@pytest.mark.parametrize("content", ["not json", '{"leaderEpoch": 1}', '{"leaderEpoch": 1, "data_version": 9}'])
def test_a_malformed_quorum_state_file_is_rejected(tmp_path: Path, content: str) -> None:
    path = tmp_path / "quorum-state"
    path.write_text(content)
    with pytest.raises(CorruptQuorumStateError):
        FileQuorumStateStore(path, [1]).read()


# -- control records --------------------------------------------------------------------------------


def test_leader_change_message_value_is_the_flexible_encoding_with_its_version_first() -> None:
    message = leader_change_message(leader_id=2, voters=[3, 1, 2], granting_voters=[2, 1])
    value = encode_value(LEADER_CHANGE_MESSAGE, message)
    # Version int16 0, LeaderId int32 2, Voters compact array (3 + 1) of {VoterId, tagged fields}, ...
    assert value[:6] == bytes([0, 0, 0, 0, 0, 2])
    assert value[6] == 4  # compact array length 3 + 1
    decoded = decode_value(LEADER_CHANGE_MESSAGE, value)
    assert decoded.leader_id == 2
    assert [voter.voter_id for voter in decoded.voters] == [1, 2, 3]
    assert [voter.voter_id for voter in decoded.granting_voters] == [1, 2]


def test_leader_change_batch_is_byte_for_byte_the_one_kafka_4_3_writes() -> None:
    """A one-voter Kafka 4.3.1 controller's LeaderChangeMessage batch for epoch 5 at offset 45."""
    kafka = bytes.fromhex(
        "000000000000002d0000004f0000000502c0db0463002000000000000001a24f7cc3f6000001a24f7cc3f6"
        "ffffffffffffffffffffffffffff000000013a0000000800000002260000000000000200000000000200000000000000"
    )
    ours = build_control_batch(ControlRecordType.LEADER_CHANGE, leader_change_message(0, [0], [0]),
                               timestamp=1796629906422, base_offset=45, partition_leader_epoch=5)
    assert ours == kafka


def test_leader_change_control_batch_has_the_control_bit_and_key_type_2() -> None:
    message = leader_change_message(1, [1, 2, 3], [1, 2])
    batch = RecordBatch.decode(build_control_batch(ControlRecordType.LEADER_CHANGE, message, timestamp=10,
                                                   base_offset=7, partition_leader_epoch=4))
    assert batch.is_control and not batch.is_transactional
    assert batch.base_offset == 7 and batch.partition_leader_epoch == 4
    assert batch.producer_id == -1 and batch.base_sequence == -1
    assert decode_control_key(batch.records[0].key) is ControlRecordType.LEADER_CHANGE


# -- snapshot files ---------------------------------------------------------------------------------


def test_snapshot_file_name_is_20_digit_offset_and_10_digit_epoch() -> None:
    snapshot_id = SnapshotId(end_offset=1234, epoch=5)
    assert snapshot_id.file_name == "00000000000000001234-0000000005.checkpoint"
    assert SnapshotId.from_file_name(snapshot_id.file_name) == snapshot_id
    assert SnapshotId.from_file_name("00000000000000001234.log") is None


def test_snapshot_holds_header_records_footer_and_reads_back(tmp_path: Path) -> None:
    snapshot_id = SnapshotId(42, 3)
    write_snapshot(tmp_path, snapshot_id, [b"a", b"b", b"c"], last_contained_log_timestamp=99)
    content = (tmp_path / snapshot_id.file_name).read_bytes()
    batches = list(iter_record_batches(content))
    assert decode_control_key(batches[0].records[0].key) is ControlRecordType.SNAPSHOT_HEADER
    assert decode_control_key(batches[-1].records[0].key) is ControlRecordType.SNAPSHOT_FOOTER
    assert all(batch.partition_leader_epoch == 3 for batch in batches)
    reader = read_snapshot(tmp_path, snapshot_id)
    assert reader.records == [b"a", b"b", b"c"]
    assert reader.last_contained_log_timestamp == 99
    assert list_snapshots(tmp_path) == [snapshot_id]


def test_a_snapshot_without_footer_is_corrupt() -> None:
    content = encode_snapshot(SnapshotId(5, 1), [b"x"], 0)
    footer = list(iter_record_batches(content))[-1].encode()
    assert content.endswith(footer)
    with pytest.raises(CorruptSnapshotError):
        decode_snapshot(SnapshotId(5, 1), content[: -len(footer)])


def test_listing_snapshots_removes_partial_files(tmp_path: Path) -> None:
    (tmp_path / "00000000000000000010-0000000001.checkpoint.part").write_bytes(b"half")
    write_snapshot(tmp_path, SnapshotId(20, 2), [b"v"], 0)
    assert list_snapshots(tmp_path) == [SnapshotId(20, 2)]
    assert not (tmp_path / "00000000000000000010-0000000001.checkpoint.part").exists()
