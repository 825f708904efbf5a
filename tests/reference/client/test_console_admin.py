"""``refka topics``, ``refka groups`` and ``refka configs`` end to end, on the reference broker and
on Apache Kafka, compared line by line with what Kafka's own tools (TopicCommand,
ConsumerGroupCommand, from the cached jars) print about the same cluster."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.apache_kafka import KafkaTools
from conformance.fixtures import free_port_block
from reference.cli import main
from reference.client.admin import Admin, ConfigResource, ResourceType
from reference.node.cluster import ReferenceCluster
from tests.reference.client.test_admin import (
    FAST_GROUPS,
    dynamic_configs,
    eventually,
    join,
    produce,
    unique,
    wait_for_topic,
    wait_until_deleted,
)

pytestmark = pytest.mark.clients
TOPIC_COMMAND = "org.apache.kafka.tools.TopicCommand"
GROUP_COMMAND = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"


@pytest.fixture(scope="module")
def reference_broker() -> Iterator[str]:
    from reference.broker.embedded import EmbeddedBroker
    embedded = EmbeddedBroker(config=FAST_GROUPS)
    yield embedded.start()
    embedded.stop()


@pytest.fixture
def admin(bootstrap: str) -> Iterator[Admin]:
    client = Admin({"bootstrap.servers": bootstrap, "default.api.timeout.ms": "20000"})
    yield client
    client.close()


@pytest.fixture(scope="module")
def kafka_tools() -> KafkaTools:
    return KafkaTools()


def refka(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def fields(line: str) -> dict[str, str]:
    """``Topic: t<TAB>Partition: 0<TAB>...`` as a dict."""
    pairs = {}
    for item in line.strip("\t").split("\t"):
        name, _, value = item.partition(": ")
        pairs[name.rstrip(":")] = value
    return pairs


def describe_lines(output: str) -> list[dict[str, str]]:
    """The kafka-topics --describe lines of an output (Kafka's tool also logs to stdout)."""
    described = [fields(line) for line in output.splitlines() if re.match(r"\t?Topic: ", line)]
    for line in described:
        line.pop("Elr", None)  # KIP-966's eligible leader replicas: not in Metadata
        line.pop("LastKnownElr", None)
        if "Configs" in line:
            line["Configs"] = ",".join(sorted(line["Configs"].split(",")))
    return described


def test_topics_tool_creates_describes_alters_and_deletes(capsys: pytest.CaptureFixture[str], bootstrap: str,
                                                        admin: Admin, kafka_tools: KafkaTools) -> None:
    topic = unique("console-topic")
    B = ("--bootstrap-server", bootstrap)
    assert refka(capsys, "topics", *B, "--create", "--topic", topic, "--partitions", "2",
                 "--replication-factor", "1", "--config", "retention.ms=4321") == (0, f"Created topic {topic}.\n", "")
    code, out, err = refka(capsys, "topics", *B, "--create", "--topic", topic, "--partitions", "2")
    assert code == 1 and out == "" and err.count("\n") == 1 and "TOPIC_ALREADY_EXISTS(36)" in err
    code, out, err = refka(capsys, "topics", *B, "--alter", "--topic", topic, "--partitions", "1")
    assert code == 1 and "INVALID_PARTITIONS(37)" in err and err.count("\n") == 1
    wait_for_topic(admin, topic)
    assert refka(capsys, "topics", *B, "--alter", "--topic", topic, "--partitions", "3")[0] == 0
    wait_for_topic(admin, topic, 3)

    code, ours, _ = refka(capsys, "topics", *B, "--describe", "--topic", topic)
    assert code == 0
    theirs = kafka_tools.run(TOPIC_COMMAND, [*B, "--describe", "--topic", topic])
    assert theirs.returncode == 0, theirs.stderr[-500:]
    assert describe_lines(ours) == describe_lines(theirs.stdout)  # same fields, ids, leaders, configs
    head, *partitions = describe_lines(ours)
    assert list(head) == ["Topic", "TopicId", "PartitionCount", "ReplicationFactor", "Configs"]
    assert head["PartitionCount"] == "3" and "retention.ms=4321" in head["Configs"].split(",")
    assert [list(p) for p in partitions] == [["Topic", "Partition", "Leader", "Replicas", "Isr"]] * 3

    code, out, _ = refka(capsys, "topics", *B, "--list")
    assert code == 0 and topic in out.splitlines()
    assert refka(capsys, "topics", *B, "--delete", "--topic", topic)[0] == 0
    wait_until_deleted(admin, topic)
    code, out, err = refka(capsys, "topics", *B, "--describe", "--topic", topic)
    assert code == 1 and "UNKNOWN_TOPIC_OR_PARTITION(3)" in err
    assert refka(capsys, "topics", *B, "--delete", "--topic", topic, "--if-exists")[0] == 0


def group_rows(output: str, group: str) -> list[list[str]]:
    return [line.split() for line in output.splitlines() if line.startswith(("GROUP ", f"{group} "))]


def test_groups_tool_describes_resets_and_deletes(capsys: pytest.CaptureFixture[str], bootstrap: str,
                                                  admin: Admin, kafka_tools: KafkaTools) -> None:
    topic, group = unique("console-group-topic"), unique("console-group")
    B = ("--bootstrap-server", bootstrap)
    assert refka(capsys, "topics", *B, "--create", "--topic", topic, "--partitions", "2")[0] == 0
    wait_for_topic(admin, topic)
    produce(bootstrap, topic, {0: 3, 1: 1})
    member = join(bootstrap, group, topic, 4)
    try:
        code, ours, _ = refka(capsys, "groups", *B, "--describe", "--group", group)
        assert code == 0
        theirs = kafka_tools.run(GROUP_COMMAND, [*B, "--describe", "--group", group])
        assert group_rows(ours, group) == group_rows(theirs.stdout, group)
        header, *rows = group_rows(ours, group)
        assert header == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID",
                          "HOST", "CLIENT-ID"]
        assert [row[:6] + row[8:] for row in rows] == [[group, topic, "0", "3", "3", "0", "admin-test-member"],
                                                       [group, topic, "1", "1", "1", "0", "admin-test-member"]]
        code, out, err = refka(capsys, "groups", *B, "--reset-offsets", "--group", group, "--topic", topic,
                               "--to-earliest", "--execute")
        assert code == 1 and "NON_EMPTY_GROUP(68)" in err and "inactive" in err and err.count("\n") == 1
        code, out, err = refka(capsys, "groups", *B, "--delete", "--group", group)
        assert code == 1 and "NON_EMPTY_GROUP(68)" in err
    finally:
        member.close()

    code, out, _ = refka(capsys, "groups", *B, "--reset-offsets", "--group", group, "--topic", f"{topic}:0",
                         "--shift-by", "-2", "--execute")
    assert code == 0 and group_rows(out, group) == [["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], [group, topic, "0", "1"]]
    code, ours, err = refka(capsys, "groups", *B, "--describe", "--group", group)
    assert err == f"Consumer group '{group}' has no active members.\n"
    theirs = kafka_tools.run(GROUP_COMMAND, [*B, "--describe", "--group", group])
    assert group_rows(ours, group) == group_rows(theirs.stdout, group)
    assert [row[3:] for row in group_rows(ours, group)[1:]] == [["1", "3", "2", "-", "-", "-"],
                                                                 ["1", "1", "0", "-", "-", "-"]]
    code, out, _ = refka(capsys, "groups", *B, "--list")
    assert code == 0 and group in out.splitlines()
    assert refka(capsys, "groups", *B, "--delete", "--group", group) == (
        0, f"Deletion of requested consumer groups ('{group}') was successful.\n", "")
    code, _, err = refka(capsys, "groups", *B, "--describe", "--group", group)
    assert code == 1 and "GROUP_ID_NOT_FOUND(69)" in err


def test_configs_tool_alters_and_describes_topic_configs(capsys: pytest.CaptureFixture[str], bootstrap: str,
                                                        admin: Admin) -> None:
    topic = unique("console-configs")
    B = ("--bootstrap-server", bootstrap)
    assert refka(capsys, "topics", *B, "--create", "--topic", topic, "--partitions", "1")[0] == 0
    wait_for_topic(admin, topic)
    entity = ("--entity-type", "topics", "--entity-name", topic)
    assert refka(capsys, "configs", *B, *entity, "--alter", "--add-config",
                 "retention.ms=5555,cleanup.policy=[compact,delete]") == (
        0, f"Completed updating config for topic {topic}.\n", "")
    resource = ConfigResource(ResourceType.TOPIC, topic)
    eventually(lambda: dynamic_configs(admin, resource) == {"retention.ms", "cleanup.policy"}, "the new configs")
    code, out, _ = refka(capsys, "configs", *B, *entity, "--describe")
    assert code == 0
    assert out.splitlines() == [
        f"Dynamic configs for topic {topic} are:",
        "  cleanup.policy=compact,delete sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:cleanup.policy=compact,delete, "
        "DEFAULT_CONFIG:log.cleanup.policy=delete}",
        "  retention.ms=5555 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=5555}"]
    assert refka(capsys, "configs", *B, *entity, "--alter", "--delete-config", "retention.ms,cleanup.policy")[0] == 0
    eventually(lambda: dynamic_configs(admin, resource) == set(), "the configs deleted")
    assert refka(capsys, "configs", *B, *entity, "--describe")[1] == f"Dynamic configs for topic {topic} are:\n"
    code, _, err = refka(capsys, "configs", *B, *entity, "--alter", "--add-config", "retention.ms=soon")
    assert code == 1 and "INVALID_CONFIG(40)" in err and err.count("\n") == 1
    code, out, _ = refka(capsys, "configs", *B, "--entity-type", "brokers", "--entity-name", "999", "--describe")
    assert code == 1


def test_bad_input_and_an_unreachable_broker_are_one_line_errors(capsys: pytest.CaptureFixture[str],
                                                                 tmp_path: Path) -> None:
    code, out, err = refka(capsys, "topics", "--bootstrap-server", "127.0.0.1:1", "--create")
    assert code == 2 and err == "refka topics: --topic is required with --create, --alter and --delete\n"
    code, _, err = refka(capsys, "groups", "--bootstrap-server", "127.0.0.1:1", "--reset-offsets", "--group", "g",
                         "--topic", "t")
    assert code == 2 and "--to-earliest" in err
    code, _, err = refka(capsys, "topics", "--bootstrap-server", "nonsense", "--list")
    assert code == 2 and "HOST:PORT" in err
    properties = tmp_path / "admin.properties"
    properties.write_text("# fail fast\ndefault.api.timeout.ms=1500\n")
    code, out, err = refka(capsys, "topics", "--bootstrap-server", "127.0.0.1:1", "--command-config",
                           str(properties), "--list")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert err.startswith("refka topics: REQUEST_TIMED_OUT(7)") and "NETWORK_EXCEPTION" in err


@pytest.mark.slow
def test_describe_on_a_three_node_reference_cluster_shows_leaders_and_isr(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, kafka_tools: KafkaTools) -> None:
    cluster = ReferenceCluster(nodes=3, base_port=free_port_block(6), data_dir=tmp_path / "cluster")
    cluster.start(timeout=60)
    try:
        bootstrap = cluster.bootstrap_servers
        topic = unique("console-replicated")
        B = ("--bootstrap-server", bootstrap)
        assert refka(capsys, "topics", *B, "--create", "--topic", topic, "--partitions", "3",
                     "--replication-factor", "3")[0] == 0
        admin = Admin({"bootstrap.servers": bootstrap})
        try:
            wait_for_topic(admin, topic)
            deadline = time.monotonic() + 30  # followers join the ISR once they have caught up
            while any(len(p.isr) < 3 for p in admin.describe_topics([topic])[0].partitions):
                assert time.monotonic() < deadline, "the ISR never grew to 3"
                time.sleep(0.2)
        finally:
            admin.close()
        code, ours, _ = refka(capsys, "topics", *B, "--describe", "--topic", topic)
        head, *partitions = describe_lines(ours)
        assert head["ReplicationFactor"] == "3"
        leaders = {p["Leader"] for p in partitions}
        for p in partitions:
            replicas = p["Replicas"].split(",")
            assert sorted(replicas) == sorted(p["Isr"].split(",")) and len(replicas) == 3
            assert p["Leader"] in replicas
        assert len(leaders) > 1  # leadership is spread over the nodes
        theirs = kafka_tools.run(TOPIC_COMMAND, [*B, "--describe", "--topic", topic])
        assert describe_lines(ours) == describe_lines(theirs.stdout)
    finally:
        cluster.stop()
