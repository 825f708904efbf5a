"""FetchSnapshot (key 59): a KRaft follower downloads the leader's snapshot (KIP-630).

When a follower's fetch offset is below the leader's log start offset (the log before it was
replaced by a snapshot), or its log is empty and the leader has a snapshot, the leader answers the
Fetch with a ``SnapshotId`` instead of records.  The follower then asks for that snapshot's bytes,
chunk by chunk from ``Position``, and once it has ``Size`` bytes it installs the snapshot and
resumes fetching the log at the snapshot's end offset.  Rules the leader applies: the usual
leader-epoch checks (``FENCED_LEADER_EPOCH`` / ``UNKNOWN_LEADER_EPOCH`` /
``NOT_LEADER_OR_FOLLOWER``), an unknown snapshot id is ``SNAPSHOT_NOT_FOUND``, a position outside
the file is ``POSITION_OUT_OF_RANGE``; ``ClusterId`` mismatch is ``INCONSISTENT_CLUSTER_ID``.
The chunk (``UnalignedRecords``) need not end on a batch boundary.

v1 (KIP-853) adds the follower's directory id and the leader's endpoints.  Flexible from v0.
"""

from ..schema import INT16, INT32, INT64, RECORDS, STRING, UINT16, UUID, Array, Field, Message, Struct

REQUEST = Message(
    "FetchSnapshotRequest", api_key=59, valid_versions="0-1", flexible_versions="0+",
    fields=[
        Field("ClusterId", STRING, nullable="0+", default=None, tag=0, tagged_versions="0+"),
        Field("ReplicaId", INT32, default=-1),
        Field("MaxBytes", INT32, default=0x7FFFFFFF),
        Field("Topics", Array(Struct("TopicSnapshot", [
            Field("Name", STRING),
            Field("Partitions", Array(Struct("PartitionSnapshot", [
                Field("Partition", INT32),
                Field("CurrentLeaderEpoch", INT32),
                Field("SnapshotId", Struct("SnapshotId", [
                    Field("EndOffset", INT64),
                    Field("Epoch", INT32),
                ])),
                Field("Position", INT64),  # byte position in the snapshot file
                Field("ReplicaDirectoryId", UUID, versions="1+", tag=0, tagged_versions="1+", ignorable=True),
            ]))),
        ]))),
    ],
)

RESPONSE = Message(
    "FetchSnapshotResponse", api_key=59, valid_versions="0-1", flexible_versions="0+",
    fields=[
        Field("ThrottleTimeMs", INT32, ignorable=True),
        Field("ErrorCode", INT16),
        Field("Topics", Array(Struct("TopicSnapshot", [
            Field("Name", STRING),
            Field("Partitions", Array(Struct("PartitionSnapshot", [
                Field("Index", INT32),
                Field("ErrorCode", INT16),
                Field("SnapshotId", Struct("SnapshotId", [
                    Field("EndOffset", INT64),
                    Field("Epoch", INT32),
                ])),
                Field("CurrentLeader", Struct("LeaderIdAndEpoch", [
                    Field("LeaderId", INT32),  # -1 if unknown; Kafka declares no default (0)
                    Field("LeaderEpoch", INT32),
                ]), tag=0, tagged_versions="0+"),
                Field("Size", INT64),  # the whole snapshot's size in bytes
                Field("Position", INT64),  # where UnalignedRecords starts in the file
                Field("UnalignedRecords", RECORDS),
            ]))),
        ]))),
        Field("NodeEndpoints", Array(Struct("NodeEndpoint", [
            Field("NodeId", INT32, versions="1+"),
            Field("Host", STRING, versions="1+"),
            Field("Port", UINT16, versions="1+"),
        ])), versions="1+", tag=0, tagged_versions="1+"),
    ],
)
