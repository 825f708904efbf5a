"""KRaft's own control records: LeaderChangeMessage, snapshot header and footer, KRaft version, voters.

Theory of operation
-------------------
The metadata log ``__cluster_metadata`` carries, besides the controller's records, control batches
that only the Raft layer writes and reads (attribute bit 5 set, one record each, no producer id).
Each record's key is the control key of :mod:`reference.records.control` (``version int16 = 0,
type int16``); its value is a Kafka "data" message in the flexible encoding, without a version
prefix (Kafka's ``MessageUtil.toByteBuffer``), whose first field is its own ``Version``:

=====================  ====  =========================================================
message                type  where it is written
=====================  ====  =========================================================
LeaderChangeMessage       2  by every new leader, first thing in its epoch (KIP-595)
SnapshotHeaderRecord      3  first batch of every snapshot file (KIP-630)
SnapshotFooterRecord      4  last batch of every snapshot file
KRaftVersionRecord        5  dynamic quorums only (KIP-853); declared, not written here
VotersRecord              6  dynamic quorums only (KIP-853); declared, not written here
=====================  ====  =========================================================

The layouts follow kafka-clients 4.3.1 ``common/message/{LeaderChangeMessage,SnapshotHeaderRecord,
SnapshotFooterRecord,KRaftVersionRecord,VotersRecord}.json``.  refka writes LeaderChangeMessage at
version 0 (no directory ids), as Kafka does with ``kraft.version`` 0.
"""

from __future__ import annotations

from typing import Any

from reference.protocol.primitives import Reader, Writer
from reference.protocol.schema import INT16, INT32, INT64, STRING, UINT16, UUID, Array, Data, Field, Struct
from reference.records.batch import NO_PARTITION_LEADER_EPOCH
from reference.records.control import ControlRecordType, build_control_batch_of, encode_control_key

LEADER_CHANGE_VERSION = 0
SNAPSHOT_HEADER_VERSION = 0
SNAPSHOT_FOOTER_VERSION = 0

VOTER = Struct("Voter", [
    Field("VoterId", INT32),
    Field("VoterDirectoryId", UUID, versions="1+"),
])

LEADER_CHANGE_MESSAGE = Struct("LeaderChangeMessage", [
    Field("Version", INT16),
    Field("LeaderId", INT32),  # the newly elected leader
    Field("Voters", Array(VOTER)),  # the voter set of this epoch
    Field("GrantingVoters", Array(VOTER)),  # the voters that elected it
])

SNAPSHOT_HEADER_RECORD = Struct("SnapshotHeaderRecord", [
    Field("Version", INT16),
    Field("LastContainedLogTimestamp", INT64),  # append time of the last log record in the snapshot
])

SNAPSHOT_FOOTER_RECORD = Struct("SnapshotFooterRecord", [
    Field("Version", INT16),
])

KRAFT_VERSION_RECORD = Struct("KRaftVersionRecord", [
    Field("Version", INT16),
    Field("KRaftVersion", INT16),
])

VOTERS_RECORD = Struct("VotersRecord", [
    Field("Version", INT16),
    Field("Voters", Array(Struct("Voter", [
        Field("VoterId", INT32),
        Field("VoterDirectoryId", UUID),
        Field("Endpoints", Array(Struct("Endpoint", [
            Field("Name", STRING),
            Field("Host", STRING),
            Field("Port", UINT16),
        ]))),
        Field("KRaftVersionFeature", Struct("KRaftVersionFeature", [
            Field("MinSupportedVersion", INT16),
            Field("MaxSupportedVersion", INT16),
        ])),
    ]))),
])

SCHEMA_BY_TYPE: dict[ControlRecordType, Struct] = {
    ControlRecordType.LEADER_CHANGE: LEADER_CHANGE_MESSAGE,
    ControlRecordType.SNAPSHOT_HEADER: SNAPSHOT_HEADER_RECORD,
    ControlRecordType.SNAPSHOT_FOOTER: SNAPSHOT_FOOTER_RECORD,
    ControlRecordType.KRAFT_VERSION: KRAFT_VERSION_RECORD,
    ControlRecordType.KRAFT_VOTERS: VOTERS_RECORD,
}


def encode_value(schema: Struct, value: Data, version: int = 0) -> bytes:
    """A control record value: the message in the flexible encoding, no version prefix."""
    writer = Writer()
    schema.write(writer, value, version, True)
    return writer.getvalue()


def decode_value(schema: Struct, value: bytes, version: int | None = None) -> Data:
    """Decode a control record value; its own leading ``Version`` field picks the layout."""
    if version is None:
        version = Reader(value).int16()
    return schema.read(Reader(value), version, True)


def leader_change_message(leader_id: int, voters: list[int], granting_voters: list[int]) -> Data:
    return LEADER_CHANGE_MESSAGE.make(
        version=LEADER_CHANGE_VERSION,
        leader_id=leader_id,
        voters=[VOTER.make(voter_id=voter) for voter in sorted(voters)],
        granting_voters=[VOTER.make(voter_id=voter) for voter in sorted(granting_voters)],
    )


def build_control_batch(
    control_type: ControlRecordType,
    message: Data,
    *,
    timestamp: int,
    base_offset: int = 0,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
) -> bytes:
    """One control batch holding one KRaft control record (Kafka's ``MemoryRecords.with*`` for
    LeaderChangeMessage, SnapshotHeaderRecord, SnapshotFooterRecord): not transactional, no
    producer id, no sequence, uncompressed, CreateTime."""
    schema = SCHEMA_BY_TYPE[control_type]
    return build_control_batch_of(encode_control_key(control_type), encode_value(schema, message, int(message.version)),
                                  timestamp=timestamp, base_offset=base_offset,
                                  partition_leader_epoch=partition_leader_epoch)


def describe(control_type: ControlRecordType, value: bytes) -> dict[str, Any]:
    """A decoded control record as a plain dict (for logs and tests)."""
    schema = SCHEMA_BY_TYPE[control_type]
    return dict(vars(decode_value(schema, value)))
