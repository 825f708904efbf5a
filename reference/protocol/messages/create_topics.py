"""CreateTopics (key 19): create topics with a partition count, replication factor and configs.

Any broker accepts it and has the controller carry it out.  Each topic gives either a partition
count and replication factor, or an explicit replica assignment per partition, plus topic configs
that override the broker's defaults.  Rules the broker applies, per topic:

* A name already in use is TOPIC_ALREADY_EXISTS (36); an illegal name (empty, ".", "..", longer
  than 249 characters, characters outside ``[a-zA-Z0-9._-]``) is INVALID_TOPIC_EXCEPTION (17).
* ``NumPartitions`` below 1 is INVALID_PARTITIONS (37); a replication factor below 1 or above the
  number of live brokers is INVALID_REPLICATION_FACTOR (38); -1 for either means the broker's
  ``num.partitions`` / ``default.replication.factor`` (v4+, KIP-464).  With ``Assignments`` both
  must be -1, and a bad assignment is INVALID_REPLICA_ASSIGNMENT (39).
* An unknown config or bad value is INVALID_CONFIG (40).
* ``validateOnly`` runs every check and creates nothing; ``timeoutMs`` bounds how long the broker
  waits for the creation to complete (REQUEST_TIMED_OUT, 7, when it does not).

Version history that matters: Kafka 4.0 dropped v0-1 (KIP-896); v5 is flexible and returns the
topic's partition count, replication factor and effective configs (KIP-525); v6 may answer
THROTTLING_QUOTA_EXCEEDED (89) (KIP-599); v7 returns the topic id (KIP-516).
"""

from ..schema import BOOL, INT8, INT16, INT32, STRING, UUID, Array, Field, Message, Struct

REQUEST = Message(
    "CreateTopicsRequest", api_key=19, valid_versions="2-7", flexible_versions="5+",
    fields=[
        Field("Topics", Array(Struct("CreatableTopic", [
            Field("Name", STRING),
            Field("NumPartitions", INT32),  # -1: num.partitions (or taken from Assignments)
            Field("ReplicationFactor", INT16),  # -1: default.replication.factor
            Field("Assignments", Array(Struct("CreatableReplicaAssignment", [
                Field("PartitionIndex", INT32),
                Field("BrokerIds", Array(INT32)),  # the first is the preferred leader
            ]))),
            Field("Configs", Array(Struct("CreatableTopicConfig", [
                Field("Name", STRING),
                Field("Value", STRING, nullable="0+"),
            ]))),
        ]))),
        Field("timeoutMs", INT32, default=60000),
        Field("validateOnly", BOOL, versions="1+", default=False),
    ],
)

RESPONSE = Message(
    "CreateTopicsResponse", api_key=19, valid_versions="2-7", flexible_versions="5+",
    fields=[
        Field("ThrottleTimeMs", INT32, versions="2+", ignorable=True),
        Field("Topics", Array(Struct("CreatableTopicResult", [
            Field("Name", STRING),
            Field("TopicId", UUID, versions="7+", ignorable=True),
            Field("ErrorCode", INT16),
            Field("ErrorMessage", STRING, versions="1+", nullable="0+", ignorable=True),
            # Set when the topic was created but describing its configs failed.
            Field("TopicConfigErrorCode", INT16, versions="5+", tag=0, tagged_versions="5+", ignorable=True),
            Field("NumPartitions", INT32, versions="5+", default=-1, ignorable=True),
            Field("ReplicationFactor", INT16, versions="5+", default=-1, ignorable=True),
            Field("Configs", Array(Struct("CreatableTopicConfigs", [
                Field("Name", STRING, versions="5+"),
                Field("Value", STRING, versions="5+", nullable="5+"),
                Field("ReadOnly", BOOL, versions="5+"),
                Field("ConfigSource", INT8, versions="5+", default=-1, ignorable=True),
                Field("IsSensitive", BOOL, versions="5+"),
            ])), versions="5+", nullable="5+", ignorable=True),
        ]))),
    ],
)
