"""The Apache Kafka peer: configuration, command-line errors, and (marked kafka) a real start."""

from __future__ import annotations

import pytest

from conformance import apache_kafka, raw
from conformance.apache_kafka import KafkaCluster, pinned_version
from conformance.fixtures import kafka_cluster_factory  # noqa: F401
from reference.cli import CommandError
from reference.node.local_cluster import NodeState, node_properties


def test_pinned_version_is_a_4x_release():
    assert pinned_version().startswith("4.")


def test_node_properties_for_three_combined_nodes(tmp_path):
    nodes = [NodeState(i, 19192 + i, 19195 + i) for i in range(3)]
    properties = node_properties(nodes[1], nodes, tmp_path)
    assert properties["process.roles"] == "broker,controller"
    assert properties["controller.quorum.voters"] == "0@127.0.0.1:19195,1@127.0.0.1:19196,2@127.0.0.1:19197"
    assert properties["listeners"] == "PLAINTEXT://127.0.0.1:19193,CONTROLLER://127.0.0.1:19196"
    assert properties["offsets.topic.replication.factor"] == "3"
    assert properties["transaction.state.log.min.isr"] == "2"
    assert properties["group.initial.rebalance.delay.ms"] == "0"
    assert "auto.create.topics.enable" not in properties, "Kafka's default is kept"


def test_single_node_replication_factors_are_one(tmp_path):
    nodes = [NodeState(0, 19092, 19093)]
    properties = node_properties(nodes[0], nodes, tmp_path)
    assert properties["offsets.topic.replication.factor"] == "1"
    assert properties["transaction.state.log.min.isr"] == "1"


def test_ports_layout():
    cluster = KafkaCluster(nodes=3, base_port=19192, data_dir="/nonexistent")
    assert cluster.bootstrap_servers == "127.0.0.1:19192,127.0.0.1:19193,127.0.0.1:19194"
    assert [n.controller_port for n in cluster.nodes] == [19195, 19196, 19197]


def test_missing_java_is_one_line_error(monkeypatch):
    monkeypatch.setattr(apache_kafka.shutil, "which", lambda name: None)
    with pytest.raises(CommandError, match="install a Java 17"):
        apache_kafka.require_java()


def test_stop_without_state_file_is_one_line_error(tmp_path):
    with pytest.raises(CommandError, match="no Kafka cluster recorded"):
        KafkaCluster.attach(tmp_path)


@pytest.mark.kafka
@pytest.mark.slow
def test_one_node_cluster_answers_metadata_and_stops(kafka_cluster_factory):  # noqa: F811
    cluster = kafka_cluster_factory(nodes=1)
    with raw.Connection.to(cluster.bootstrap_servers) as conn:
        assert list(raw.metadata(conn, topics=[]).brokers) == [0]
        assert raw.api_versions(conn, 0).supports(0)
    cluster.stop()
    assert not cluster.alive(0)
