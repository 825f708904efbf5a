"""Vote (key 52): a KRaft candidate asks the other voters to elect it leader (KIP-595).

When a voter hears nothing from the leader for ``controller.quorum.fetch.timeout.ms``, it bumps
the epoch, votes for itself and sends Vote to every other voter.  A voter grants its vote when
all of these hold (Raft's election rules):

* the candidate's epoch is not lower than the voter's (lower: ``FENCED_LEADER_EPOCH``); a higher
  epoch makes the voter move to it first, forgetting any leader it had;
* the voter has not already voted for someone else in that epoch (one vote per epoch, persisted
  in the ``quorum-state`` file before answering);
* the candidate's log is at least as up to date: (``LastOffsetEpoch``, ``LastOffset``) compared
  as a pair is not behind the voter's own.

Every answer carries the leader and epoch the voter knows of, so a stale candidate catches up.
``ClusterId`` mismatch is ``INCONSISTENT_CLUSTER_ID``.  v1 (KIP-853) identifies voters by id and
directory id, so a replaced disk cannot vote twice (``INVALID_VOTER_KEY``), and returns the
leader's endpoints.  v2 (KIP-996) adds pre-vote: with ``PreVote`` the voter says whether it
would vote, without changing its state, so a partitioned node cannot disrupt a healthy leader by
bumping epochs.  Flexible from v0.
"""

from ..schema import BOOL, INT16, INT32, INT64, STRING, UINT16, UUID, Array, Field, Message, Struct

REQUEST = Message(
    "VoteRequest", api_key=52, valid_versions="0-2", flexible_versions="0+",
    fields=[
        Field("ClusterId", STRING, nullable="0+", default=None),
        Field("VoterId", INT32, versions="1+", default=-1, ignorable=True),  # the replica asked
        Field("Topics", Array(Struct("TopicData", [
            Field("TopicName", STRING),
            Field("Partitions", Array(Struct("PartitionData", [
                Field("PartitionIndex", INT32),
                Field("ReplicaEpoch", INT32),  # the candidate's epoch (or, for a pre-vote, its current one)
                Field("ReplicaId", INT32),  # the candidate
                Field("ReplicaDirectoryId", UUID, versions="1+", ignorable=True),
                Field("VoterDirectoryId", UUID, versions="1+", ignorable=True),
                Field("LastOffsetEpoch", INT32),
                Field("LastOffset", INT64),
                Field("PreVote", BOOL, versions="2+"),
            ]))),
        ]))),
    ],
)

RESPONSE = Message(
    "VoteResponse", api_key=52, valid_versions="0-2", flexible_versions="0+",
    fields=[
        Field("ErrorCode", INT16),
        Field("Topics", Array(Struct("TopicData", [
            Field("TopicName", STRING),
            Field("Partitions", Array(Struct("PartitionData", [
                Field("PartitionIndex", INT32),
                Field("ErrorCode", INT16),
                Field("LeaderId", INT32),  # -1 if the voter knows no leader
                Field("LeaderEpoch", INT32),
                Field("VoteGranted", BOOL),
            ]))),
        ]))),
        Field("NodeEndpoints", Array(Struct("NodeEndpoint", [
            Field("NodeId", INT32, versions="1+"),
            Field("Host", STRING, versions="1+"),
            Field("Port", UINT16, versions="1+"),
        ])), versions="1+", tag=0, tagged_versions="1+"),
    ],
)
