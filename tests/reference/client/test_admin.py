"""The reference admin client against real brokers: the embedded reference broker and Apache Kafka.

Every test runs on both with the same assertions (Kafka is the ground truth).  Group members are
librdkafka consumers (confluent-kafka), a client refka did not write.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Consumer

from reference.broker.embedded import EmbeddedBroker
from reference.client.admin import Admin, AlterConfigOp, ConfigResource, ElectionType, NewTopic, ResourceType
from reference.client.admin_core import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, ConfigSource
from reference.client.admin_groups import ShiftBy, ToDatetime, ToEarliest, ToLatest, ToOffset
from reference.client.cluster import TopicPartition
from reference.client.exceptions import RequestTimedOutError, UnsupportedVersionError
from reference.client.producer import Producer
from reference.errors import Errors, KafkaError

pytestmark = pytest.mark.clients

FAST_GROUPS = {"group.initial.rebalance.delay.ms": "0", "auto.create.topics.enable": "false"}


@pytest.fixture(scope="module")
def reference_broker() -> Iterator[str]:
    embedded = EmbeddedBroker(config=FAST_GROUPS)
    yield embedded.start()
    embedded.stop()


@pytest.fixture
def admin(bootstrap: str) -> Iterator[Admin]:
    client = Admin({"bootstrap.servers": bootstrap, "default.api.timeout.ms": "20000"})
    yield client
    client.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{time.time_ns()}"


def kafka_error(call: object) -> KafkaError:
    with pytest.raises(KafkaError) as raised:
        call()  # type: ignore[operator]
    return raised.value


def partition_count(admin: Admin, topic: str) -> int:
    """How many partitions the topic has, all with a leader (0: not there, or not led yet)."""
    try:
        (described,) = admin.describe_topics([topic])
    except KafkaError as error:
        if error.error is not Errors.UNKNOWN_TOPIC_OR_PARTITION:
            raise
        return 0
    return len(described.partitions) if all(p.leader >= 0 for p in described.partitions) else 0


def eventually(check: Callable[[], bool], what: str) -> None:
    """A KRaft broker learns a topic change from the metadata log a little after the controller
    answered; wait for it (bounded), so that the assertions that follow never depend on time."""
    deadline = time.monotonic() + 15
    while not check():
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.1)


def wait_for_topic(admin: Admin, topic: str, partitions: int | None = None) -> None:
    eventually(lambda: partition_count(admin, topic) > 0 if partitions is None
               else partition_count(admin, topic) == partitions, f"topic {topic} with {partitions} partitions")


def wait_until_deleted(admin: Admin, topic: str) -> None:
    eventually(lambda: partition_count(admin, topic) == 0, f"topic {topic} deleted")


def produce(bootstrap: str, topic: str, per_partition: dict[int, int]) -> None:
    with Producer({"bootstrap.servers": bootstrap, "linger.ms": 0}) as producer:
        futures = [producer.send(topic, f"{p}-{i}".encode(), partition=p)
                   for p, count in per_partition.items() for i in range(count)]
        producer.flush(30)
        for future in futures:
            future.result(0)


# -- topics ----------------------------------------------------------------------------------------


def test_a_topic_is_created_described_grown_and_deleted(admin: Admin) -> None:
    topic = unique("admin-topic")
    (created,) = admin.create_topics([NewTopic(topic, 3, 1, {"retention.ms": "123456"})])
    assert created.name == topic and created.num_partitions == 3 and created.replication_factor == 1
    wait_for_topic(admin, topic)
    (described,) = admin.describe_topics([topic])
    assert described.topic_id == created.topic_id
    assert [p.partition for p in described.partitions] == [0, 1, 2]
    for partition in described.partitions:
        assert len(partition.replicas) == 1 and partition.isr == partition.replicas
        assert partition.leader == partition.replicas[0] and partition.offline_replicas == ()
    assert topic in admin.list_topics()

    admin.create_partitions({topic: 5})
    wait_for_topic(admin, topic, 5)
    (grown,) = admin.describe_topics([topic])
    assert grown.topic_id == created.topic_id and [p.partition for p in grown.partitions] == [0, 1, 2, 3, 4]

    admin.delete_topics([topic])
    wait_until_deleted(admin, topic)
    assert kafka_error(lambda: admin.describe_topics([topic])).error is Errors.UNKNOWN_TOPIC_OR_PARTITION
    assert kafka_error(lambda: admin.delete_topics([topic])).error is Errors.UNKNOWN_TOPIC_OR_PARTITION


def test_what_create_topics_refuses(admin: Admin) -> None:
    topic = unique("admin-refused")
    admin.create_topics([NewTopic(topic, 1, 1)])
    assert kafka_error(lambda: admin.create_topics([NewTopic(topic, 1, 1)])).error is Errors.TOPIC_ALREADY_EXISTS
    assert kafka_error(lambda: admin.create_topics([NewTopic(unique("zero"), 0, 1)])).error is Errors.INVALID_PARTITIONS
    assert kafka_error(lambda: admin.create_topics(
        [NewTopic(unique("rf"), 1, 5)])).error is Errors.INVALID_REPLICATION_FACTOR
    assert kafka_error(lambda: admin.create_topics(
        [NewTopic(unique("cfg"), 1, 1, {"no.such.config": "1"})])).error is Errors.INVALID_CONFIG
    assert kafka_error(lambda: admin.create_topics(
        [NewTopic("bad/name", 1, 1)])).error is Errors.INVALID_TOPIC_EXCEPTION
    wait_for_topic(admin, topic)
    assert kafka_error(lambda: admin.create_partitions({topic: 1})).error is Errors.INVALID_PARTITIONS
    assert kafka_error(lambda: admin.create_partitions(
        {unique("absent"): 2})).error is Errors.UNKNOWN_TOPIC_OR_PARTITION
    assert len(admin.describe_topics([topic])[0].partitions) == 1  # still there, unchanged


# -- configs ---------------------------------------------------------------------------------------


def dynamic_configs(admin: Admin, resource: ConfigResource) -> set[str]:
    return {e.name for e in admin.describe_configs(resource) if e.source is ConfigSource.DYNAMIC_TOPIC_CONFIG}


def test_topic_configs_are_set_described_and_deleted(admin: Admin) -> None:
    topic = unique("admin-configs")
    admin.create_topics([NewTopic(topic, 1, 1)])
    wait_for_topic(admin, topic)
    resource = ConfigResource(ResourceType.TOPIC, topic)
    admin.incremental_alter_configs(resource, [("retention.ms", AlterConfigOp.SET, "98765"),
                                               ("cleanup.policy", AlterConfigOp.SET, "compact")])
    eventually(lambda: dynamic_configs(admin, resource) == {"retention.ms", "cleanup.policy"}, "the new configs")
    entries = {e.name: e for e in admin.describe_configs(resource)}
    assert entries["retention.ms"].value == "98765"
    assert entries["retention.ms"].source is ConfigSource.DYNAMIC_TOPIC_CONFIG
    assert entries["cleanup.policy"].value == "compact"
    assert entries["max.message.bytes"].source is not ConfigSource.DYNAMIC_TOPIC_CONFIG

    admin.incremental_alter_configs(resource, [("retention.ms", AlterConfigOp.DELETE, None)])
    eventually(lambda: dynamic_configs(admin, resource) == {"cleanup.policy"}, "retention.ms deleted")
    after = {e.name: e for e in admin.describe_configs(resource)}
    assert after["retention.ms"].source is not ConfigSource.DYNAMIC_TOPIC_CONFIG
    assert after["retention.ms"].value != "98765"

    assert kafka_error(lambda: admin.incremental_alter_configs(
        resource, [("no.such.config", AlterConfigOp.SET, "1")])).error is Errors.INVALID_CONFIG
    assert kafka_error(lambda: admin.incremental_alter_configs(
        resource, [("retention.ms", AlterConfigOp.SET, "soon")])).error is Errors.INVALID_CONFIG
    assert kafka_error(lambda: admin.describe_configs(
        ConfigResource(ResourceType.TOPIC, unique("absent")))).error is Errors.UNKNOWN_TOPIC_OR_PARTITION


def test_broker_configs_are_described_by_that_broker(admin: Admin) -> None:
    assert admin.describe_topics([]) == []  # Metadata for no topic: only the brokers
    node = min(admin.core.metadata.brokers)
    entries = {e.name: e for e in admin.describe_configs(ConfigResource(ResourceType.BROKER, str(node)))}
    assert entries["num.partitions"].value is not None
    assert entries["log.retention.hours"].source in (ConfigSource.DEFAULT_CONFIG, ConfigSource.STATIC_BROKER_CONFIG)
    for entry in entries.values():
        if entry.is_sensitive:
            assert entry.value is None  # a sensitive value never leaves the broker


# -- records and leaders ---------------------------------------------------------------------------


def test_delete_records_moves_the_log_start_offset(admin: Admin, bootstrap: str) -> None:
    topic = unique("admin-records")
    admin.create_topics([NewTopic(topic, 1, 1)])
    wait_for_topic(admin, topic)
    produce(bootstrap, topic, {0: 5})
    tp = TopicPartition(topic, 0)
    assert admin.delete_records({tp: 3}) == {tp: 3}
    assert admin.list_offsets({tp: EARLIEST_TIMESTAMP})[tp][0] == 3
    assert admin.list_offsets({tp: LATEST_TIMESTAMP})[tp][0] == 5
    assert kafka_error(lambda: admin.delete_records({tp: 6})).error is Errors.OFFSET_OUT_OF_RANGE
    assert admin.delete_records({tp: -1}) == {tp: 5}  # -1: up to the high watermark


def test_preferred_leader_election_is_not_needed_on_one_node(admin: Admin) -> None:
    """On one node every leader is already the preferred replica.  A broker that does not serve
    ElectLeaders (the reference, today) is told apart by its ApiVersions, not by its name."""
    topic = unique("admin-elect")
    admin.create_topics([NewTopic(topic, 2, 1)])
    wait_for_topic(admin, topic)
    try:
        results = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition(topic, 0), TopicPartition(topic, 1)])
    except UnsupportedVersionError:
        versions = admin.broker_versions(min(admin.core.metadata.brokers))
        assert versions is not None and 43 not in versions  # ElectLeaders (43) is not advertised
        return
    assert {tp: error.error if error else None for tp, error in results.items()} == {
        TopicPartition(topic, 0): Errors.ELECTION_NOT_NEEDED, TopicPartition(topic, 1): Errors.ELECTION_NOT_NEEDED}


# -- consumer groups -------------------------------------------------------------------------------


def join(bootstrap: str, group: str, topic: str, expected: int) -> Consumer:
    """A librdkafka member that consumed and committed ``expected`` records."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": "admin-test-member",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "session.timeout.ms": 10000})
    consumer.subscribe([topic])
    consumed = 0
    deadline = time.monotonic() + 30
    while consumed < expected and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            consumed += 1
    assert consumed == expected
    consumer.commit(asynchronous=False)
    return consumer


def test_a_consumer_group_is_described_reset_and_deleted(admin: Admin, bootstrap: str) -> None:
    topic, group = unique("admin-group-topic"), unique("admin-group")
    admin.create_topics([NewTopic(topic, 2, 1)])
    wait_for_topic(admin, topic)
    produce(bootstrap, topic, {0: 3, 1: 2})
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    member = join(bootstrap, group, topic, 5)
    try:
        assert group in [g.group_id for g in admin.list_groups()]
        description = admin.describe_group(group)
        assert description.state == "Stable" and description.protocol_type == "consumer"
        (described_member,) = description.members
        assert described_member.client_id == "admin-test-member"
        assert described_member.assignment == (p0, p1)  # decoded from ConsumerProtocolAssignment
        _, rows = admin.describe_offsets(group)
        assert [(r.partition, r.committed_offset, r.log_end_offset, r.lag, r.member) for r in rows] == [
            (p0, 3, 3, 0, described_member), (p1, 2, 2, 0, described_member)]

        active = kafka_error(lambda: admin.reset_offsets(group, [p0, p1], ToEarliest()))
        assert active.error is Errors.NON_EMPTY_GROUP
        assert kafka_error(lambda: admin.delete_groups([group])).error is Errors.NON_EMPTY_GROUP
        # Without the admin's own check, the coordinator refuses a commit from outside the group:
        assert kafka_error(lambda: admin.alter_group_offsets(group, {p0: 0})).error is Errors.UNKNOWN_MEMBER_ID
        assert admin.committed_offsets(group) == {p0: 3, p1: 2}  # nothing was reset
    finally:
        member.close()

    assert admin.reset_offsets(group, [p0, p1], ToEarliest(), execute=False) == {p0: 0, p1: 0}
    assert admin.committed_offsets(group) == {p0: 3, p1: 2}  # a dry run commits nothing
    assert admin.reset_offsets(group, [p0, p1], ToEarliest()) == {p0: 0, p1: 0}
    assert admin.committed_offsets(group) == {p0: 0, p1: 0}
    assert admin.reset_offsets(group, [p0, p1], ShiftBy(2)) == {p0: 2, p1: 2}
    assert admin.reset_offsets(group, [p0, p1], ShiftBy(-5)) == {p0: 0, p1: 0}  # clamped to the log start
    assert admin.reset_offsets(group, [p0, p1], ToOffset(9)) == {p0: 3, p1: 2}  # clamped to the log end
    assert admin.reset_offsets(group, [p0], ToOffset(1)) == {p0: 1}
    assert admin.reset_offsets(group, [p0, p1], ToDatetime(0)) == {p0: 0, p1: 0}
    assert admin.reset_offsets(group, [p0, p1], ToDatetime(2**62)) == {p0: 3, p1: 2}  # none that late: the end
    assert admin.reset_offsets(group, [p1], ToEarliest()) == {p1: 0}
    _, rows = admin.describe_offsets(group)
    assert [(r.partition, r.committed_offset, r.lag, r.member) for r in rows] == [(p0, 3, 0, None), (p1, 0, 2, None)]
    assert admin.describe_group(group).state == "Empty"
    assert admin.reset_offsets(group, [p0, p1], ToLatest()) == {p0: 3, p1: 2}

    admin.delete_group_offsets(group, [p1])
    assert admin.committed_offsets(group) == {p0: 3}
    admin.delete_groups([group])
    assert kafka_error(lambda: admin.describe_group(group)).error is Errors.GROUP_ID_NOT_FOUND
    assert kafka_error(lambda: admin.delete_groups([group])).error is Errors.GROUP_ID_NOT_FOUND


def test_an_unreachable_cluster_is_a_typed_timeout() -> None:
    admin = Admin({"bootstrap.servers": "127.0.0.1:1", "default.api.timeout.ms": "1500"})
    try:
        with pytest.raises(RequestTimedOutError, match="NETWORK_EXCEPTION"):
            admin.list_topics()
    finally:
        admin.close()
