"""Apache Kafka's own command-line tools against a 3-node reference cluster: kafka-topics
--describe shows leaders and ISR, kafka-metadata-quorum describes the quorum, kafka-leader-election
runs a preferred election, and kafka-dump-log decodes the reference's metadata log."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from conformance.apache_kafka import KafkaTools
from conformance.fixtures import free_port_block
from reference.node.cluster import ReferenceCluster

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

TOPICS = "org.apache.kafka.tools.TopicCommand"
QUORUM = "org.apache.kafka.tools.MetadataQuorumCommand"
ELECTION = "org.apache.kafka.tools.LeaderElectionCommand"
DUMP_LOG = "org.apache.kafka.tools.DumpLogSegments"


@pytest.fixture(scope="module")
def tools() -> KafkaTools:
    try:
        return KafkaTools()
    except Exception as missing:  # no java or maven on this machine
        pytest.skip(f"Apache Kafka's tools are not available: {missing}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceCluster]:
    started = ReferenceCluster(nodes=3, base_port=free_port_block(6), data_dir=tmp_path_factory.mktemp("tools"))
    started.start(timeout=60)
    yield started
    started.stop()


def run(tools: KafkaTools, main_class: str, *arguments: str) -> str:
    result = tools.run(main_class, list(arguments), timeout=90)
    assert result.returncode == 0, f"{main_class} failed: {result.stdout[-500:]} {result.stderr[-1500:]}"
    return result.stdout


def test_kafka_topics_creates_and_describes_leaders_replicas_and_isr(tools: KafkaTools,
                                                                      cluster: ReferenceCluster) -> None:
    bootstrap = cluster.bootstrap_servers
    run(tools, TOPICS, "--bootstrap-server", bootstrap, "--create", "--topic", "described",
        "--partitions", "3", "--replication-factor", "3")
    described = ""
    for _ in range(40):  # brokers learn the new topic from the metadata log a moment later
        described = run(tools, TOPICS, "--bootstrap-server", bootstrap, "--describe", "--topic", "described")
        if described.count("Leader: ") == 3 and "Leader: -1" not in described:
            break
        time.sleep(0.25)
    rows = re.findall(r"Partition: (\d+)\s+Leader: (\d+)\s+Replicas: ([\d,]+)\s+Isr: ([\d,]+)", described)
    assert sorted(int(partition) for partition, *_ in rows) == [0, 1, 2], described
    for _partition, leader, replicas, isr in rows:
        assert sorted(replicas.split(",")) == ["0", "1", "2"] and leader in isr.split(",")
    assert "ReplicationFactor: 3" in described


def test_kafka_metadata_quorum_describes_the_leader_and_three_voters(tools: KafkaTools,
                                                                     cluster: ReferenceCluster) -> None:
    status = run(tools, QUORUM, "--bootstrap-server", cluster.bootstrap_servers, "describe", "--status")
    leader = int(re.search(r"LeaderId:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    assert leader in (0, 1, 2)
    assert re.search(r"CurrentVoters:\s+\[.*0.*1.*2.*\]", status), status
    assert int(re.search(r"HighWatermark:\s+(\d+)", status).group(1)) > 0  # type: ignore[union-attr]


def test_kafka_leader_election_runs_a_preferred_election(tools: KafkaTools, cluster: ReferenceCluster) -> None:
    bootstrap = cluster.bootstrap_servers
    run(tools, TOPICS, "--bootstrap-server", bootstrap, "--create", "--topic", "elected",
        "--partitions", "1", "--replication-factor", "3")
    time.sleep(1)
    result = tools.run(ELECTION, ["--bootstrap-server", bootstrap, "--election-type", "preferred",
                                  "--topic", "elected", "--partition", "0"], timeout=90)
    # The preferred replica already leads a new partition: Kafka's tool reports that no election
    # was needed (ELECTION_NOT_NEEDED), which is the controller's answer, not a failure to talk.
    text = result.stdout + result.stderr
    assert "Valid replica already elected for partitions elected-0" in text, text[-1500:]


def test_kafka_dump_log_decodes_the_reference_metadata_log(tools: KafkaTools, cluster: ReferenceCluster) -> None:
    segments = sorted((cluster.node_dir(0) / "data" / "__cluster_metadata-0").glob("*.log"))
    assert segments
    dumped = run(tools, DUMP_LOG, "--cluster-metadata-decoder", "--files", str(segments[0]))
    assert '"type":"FEATURE_LEVEL_RECORD"' in dumped.replace(" ", "")
    assert '"type":"REGISTER_BROKER_RECORD"' in dumped.replace(" ", "")
    assert "LeaderChange" in dumped
    assert "Exception" not in dumped


