"""DeleteTopics (key 20): delete topics, by name or (v6+) by topic id.

Any broker accepts it and has the controller carry it out; the partitions' logs are removed
afterwards, asynchronously.  Rules the broker applies, per topic:

* An unknown name is UNKNOWN_TOPIC_OR_PARTITION (3), an unknown id UNKNOWN_TOPIC_ID (100).
* With ``delete.topic.enable=false`` every topic fails with TOPIC_DELETION_DISABLED (73).
* Internal topics such as ``__consumer_offsets`` cannot be deleted.
* ``TimeoutMs`` bounds how long the broker waits for the deletion to complete (REQUEST_TIMED_OUT,
  7, when it does not; the deletion still goes on).

Version history that matters: Kafka 4.0 dropped v0 (KIP-896); v4 is flexible; v5 adds an error
message and THROTTLING_QUOTA_EXCEEDED (89) (KIP-599); v6 replaces the list of names with
``Topics`` entries that give a name or a topic id (KIP-516).
"""

from ..schema import INT16, INT32, STRING, UUID, Array, Field, Message, Struct

REQUEST = Message(
    "DeleteTopicsRequest", api_key=20, valid_versions="1-6", flexible_versions="4+",
    fields=[
        Field("Topics", Array(Struct("DeleteTopicState", [
            Field("Name", STRING, versions="6+", nullable="6+", default=None),  # null: use TopicId
            Field("TopicId", UUID, versions="6+"),
        ])), versions="6+"),
        Field("TopicNames", Array(STRING), versions="0-5", ignorable=True),
        Field("TimeoutMs", INT32),
    ],
)

RESPONSE = Message(
    "DeleteTopicsResponse", api_key=20, valid_versions="1-6", flexible_versions="4+",
    fields=[
        Field("ThrottleTimeMs", INT32, versions="1+", ignorable=True),
        Field("Responses", Array(Struct("DeletableTopicResult", [
            Field("Name", STRING, nullable="6+"),
            Field("TopicId", UUID, versions="6+", ignorable=True),
            Field("ErrorCode", INT16),
            Field("ErrorMessage", STRING, versions="5+", nullable="5+", default=None, ignorable=True),
        ]))),
    ],
)
