"""AlterPartition (key 56): a partition leader asks the controller to change the ISR (KIP-497).

The leader decides when a follower has fallen behind (``replica.lag.time.max.ms``) or caught up,
but only the controller may change the ISR, so that every broker sees one history of it.  Until
the controller answers, the leader treats the ISR as the union of the old and proposed ones when
advancing the high watermark, which is safe either way.  Rules the controller applies, per
partition:

* ``PartitionEpoch`` is optimistic concurrency: it must equal the controller's current partition
  epoch, else ``INVALID_UPDATE_VERSION`` (someone else changed the partition first);
* the sender must be the leader in the current ``LeaderEpoch``: else ``FENCED_LEADER_EPOCH``;
* a replica that is fenced, shutting down, or (v3, KIP-903) whose ``BrokerEpoch`` is not its
  current one, cannot join the ISR: ``INELIGIBLE_REPLICA``; this stops a broker that restarted
  with a truncated log from being counted as in sync;
* on success the answer carries the ISR and partition epoch now committed, which the leader
  adopts; ``NEW_LEADER_ELECTED`` means the change was committed but completed a reassignment that
  removed the sender, so it is leader no longer and waits for the metadata that says so.

``LeaderRecoveryState`` (KIP-704) is 0 when the partition is recovered and 1 while a leader
chosen by unclean election is still recovering; such a leader must not grow the ISR.  Versions
0-1 were removed in Kafka 4.0; v2 identifies topics by id (KIP-841); v3 replaces ``NewIsr`` with
``NewIsrWithEpochs``.  Flexible from v0.
"""

from ..schema import INT8, INT16, INT32, INT64, UUID, Array, Field, Message, Struct

REQUEST = Message(
    "AlterPartitionRequest", api_key=56, valid_versions="2-3", flexible_versions="0+",
    fields=[
        Field("BrokerId", INT32),  # the leader sending the request
        Field("BrokerEpoch", INT64, default=-1),
        Field("Topics", Array(Struct("TopicData", [
            Field("TopicId", UUID, versions="2+", ignorable=True),
            Field("Partitions", Array(Struct("PartitionData", [
                Field("PartitionIndex", INT32),
                Field("LeaderEpoch", INT32),
                Field("NewIsr", Array(INT32), versions="0-2"),
                Field("NewIsrWithEpochs", Array(Struct("BrokerState", [
                    Field("BrokerId", INT32, versions="3+"),
                    Field("BrokerEpoch", INT64, versions="3+", default=-1),
                ])), versions="3+"),
                Field("LeaderRecoveryState", INT8, versions="1+", default=0),  # 0 recovered, 1 recovering
                Field("PartitionEpoch", INT32),
            ]))),
        ]))),
    ],
)

RESPONSE = Message(
    "AlterPartitionResponse", api_key=56, valid_versions="2-3", flexible_versions="0+",
    fields=[
        Field("ThrottleTimeMs", INT32),
        Field("ErrorCode", INT16),
        Field("Topics", Array(Struct("TopicData", [
            Field("TopicId", UUID, versions="2+", ignorable=True),
            Field("Partitions", Array(Struct("PartitionData", [
                Field("PartitionIndex", INT32),
                Field("ErrorCode", INT16),
                Field("LeaderId", INT32),
                Field("LeaderEpoch", INT32),
                Field("Isr", Array(INT32)),
                Field("LeaderRecoveryState", INT8, versions="1+", default=0, ignorable=True),
                Field("PartitionEpoch", INT32),
            ]))),
        ]))),
    ],
)
