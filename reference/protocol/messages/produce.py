"""Produce (key 0): append record batches to partition logs.

A producer sends, per topic and partition, one record batch (``Records``).  The broker validates
each batch (magic, CRC, offsets, codec, producer id and sequence), assigns offsets, appends it to
the partition leader's log and answers, per partition, with the offset of the first record
(``BaseOffset``) or an error code.  Rules a broker applies:

* ``Acks`` decides when it answers: 0 = never (no response is sent at all), 1 = once the leader
  has appended, -1 = once every in-sync replica has it; with -1 a partition whose ISR is smaller
  than ``min.insync.replicas`` fails with NOT_ENOUGH_REPLICAS (19).
* Exactly one batch per partition; a batch with a producer id is checked against the idempotent
  producer state (duplicate -> original offsets, gap -> OUT_OF_ORDER_SEQUENCE_NUMBER (45)).
* A transactional batch needs ``TransactionalId`` (v3+), which is also what authorization checks.

Version history that matters: Kafka 4.0 dropped v0-2 (KIP-896), so v3, the first to carry record
batch v2 (KIP-98), is the baseline; the broker still advertises 0 as the minimum because
librdkafka turns compression on only when v0 is in the range (KAFKA-18659).  v5 returns the
log start offset; v7 allows zstd (KIP-110); v8 reports which records made a batch fail
(``RecordErrors``, KIP-467); v9 is flexible; v10 tells the client the new leader with
``CurrentLeader`` and ``NodeEndpoints`` on NOT_LEADER_OR_FOLLOWER (KIP-951); v11-12 bring
TRANSACTION_ABORTABLE and implicit partition registration (KIP-890); v13 names topics by id
(KIP-516).
"""

from ..schema import INT16, INT32, INT64, RECORDS, STRING, UUID, Array, Field, Message, Struct

REQUEST = Message(
    "ProduceRequest", api_key=0, valid_versions="3-13", flexible_versions="9+",
    fields=[
        Field("TransactionalId", STRING, versions="3+", nullable="3+", default=None),
        Field("Acks", INT16),  # 0: no response; 1: leader only; -1: all in-sync replicas (acks=all)
        Field("TimeoutMs", INT32),
        Field("TopicData", Array(Struct("TopicProduceData", [
            Field("Name", STRING, versions="0-12", ignorable=True),
            Field("TopicId", UUID, versions="13+", ignorable=True),
            Field("PartitionData", Array(Struct("PartitionProduceData", [
                Field("Index", INT32),
                Field("Records", RECORDS, nullable="0+"),  # one record batch, decoded by reference.records
            ]))),
        ]))),
    ],
)

RESPONSE = Message(
    "ProduceResponse", api_key=0, valid_versions="3-13", flexible_versions="9+",
    fields=[
        Field("Responses", Array(Struct("TopicProduceResponse", [
            Field("Name", STRING, versions="0-12", ignorable=True),
            Field("TopicId", UUID, versions="13+", ignorable=True),
            Field("PartitionResponses", Array(Struct("PartitionProduceResponse", [
                Field("Index", INT32),
                Field("ErrorCode", INT16),
                Field("BaseOffset", INT64),
                # -1 unless the topic uses message.timestamp.type=LogAppendTime.
                Field("LogAppendTimeMs", INT64, versions="2+", default=-1, ignorable=True),
                Field("LogStartOffset", INT64, versions="5+", default=-1, ignorable=True),
                Field("RecordErrors", Array(Struct("BatchIndexAndErrorMessage", [
                    Field("BatchIndex", INT32, versions="8+"),  # index of the bad record in the batch
                    Field("BatchIndexErrorMessage", STRING, versions="8+", nullable="8+", default=None),
                ])), versions="8+", ignorable=True),
                Field("ErrorMessage", STRING, versions="8+", nullable="8+", default=None, ignorable=True),
                Field("CurrentLeader", Struct("LeaderIdAndEpoch", [
                    Field("LeaderId", INT32, versions="10+", default=-1),
                    Field("LeaderEpoch", INT32, versions="10+", default=-1),
                ]), versions="10+", tag=0, tagged_versions="10+"),
            ]))),
        ]))),
        Field("ThrottleTimeMs", INT32, versions="1+", default=0, ignorable=True),
        Field("NodeEndpoints", Array(Struct("NodeEndpoint", [
            Field("NodeId", INT32, versions="10+"),
            Field("Host", STRING, versions="10+"),
            Field("Port", INT32, versions="10+"),
            Field("Rack", STRING, versions="10+", nullable="10+", default=None),
        ])), versions="10+", tag=0, tagged_versions="10+"),
    ],
)
