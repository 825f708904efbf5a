"""A KRaft node's identity, read from Kafka's own keys, refused where Kafka refuses to start."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference.node.config import Listener, NodeConfigError, Voter, node_config, read_properties

COMBINED = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "listeners": "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
    "controller.listener.names": "CONTROLLER",
    "controller.quorum.voters": "1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097",
}


def test_a_combined_node_has_both_roles_its_listeners_split_and_the_voters_parsed() -> None:
    config = node_config(COMBINED)
    assert config.is_kraft and config.is_broker and config.is_controller
    assert config.broker_listeners == (Listener("PLAINTEXT", "127.0.0.1", 9092),)
    assert config.controller_listeners == (Listener("CONTROLLER", "127.0.0.1", 9093),)
    assert config.voters[1] == Voter(2, "127.0.0.1", 9095)
    assert config.inter_broker_listener_name == "PLAINTEXT"


def test_without_process_roles_the_node_is_refkas_single_broker() -> None:
    config = node_config({"listeners": "PLAINTEXT://:9092"})
    assert not config.is_kraft and config.is_broker and not config.is_controller


@pytest.mark.parametrize(("change", "message"), [
    ({"process.roles": "broker,router"}, "unknown role 'router'"),
    ({"controller.quorum.voters": ""}, "controller.quorum.voters must name the voters"),
    ({"controller.listener.names": ""}, "controller.listener.names must be set"),
    ({"node.id": "4"}, "node 4 has the controller role but is not in controller.quorum.voters"),
    ({"listeners": "PLAINTEXT://127.0.0.1:9092"}, "the controller listener CONTROLLER must be in listeners"),
    ({"process.roles": "broker"}, "node 1 is in controller.quorum.voters but has only the broker role"),
    ({"inter.broker.listener.name": "CONTROLLER"}, "inter.broker.listener.name CONTROLLER is not one of"),
    ({"controller.quorum.voters": "1@127.0.0.1"}, "expected id@host:port"),
    ({"listeners": "PLAINTEXT://127.0.0.1:9092,PLAINTEXT://127.0.0.1:9094"}, "appears twice"),
])
def test_a_configuration_kafka_refuses_is_one_line_naming_the_key(change: dict[str, str], message: str) -> None:
    with pytest.raises(NodeConfigError, match=message):
        node_config({**COMBINED, **change})


def test_a_broker_only_node_must_not_listen_on_a_controller_listener() -> None:
    settings = {**COMBINED, "process.roles": "broker", "node.id": "4"}
    with pytest.raises(NodeConfigError, match="must not listen on a controller listener"):
        node_config(settings)
    settings["listeners"] = "PLAINTEXT://127.0.0.1:9092"
    assert node_config(settings).is_broker


def test_properties_files_read_as_java_writes_them(tmp_path: Path) -> None:
    path = tmp_path / "server.properties"
    path.write_text("# a comment\n! another\n\nnode.id = 3\nlisteners=PLAINTEXT://:9092\nlog.dirs: /tmp/x\n")
    assert read_properties(path) == {"node.id": "3", "listeners": "PLAINTEXT://:9092", "log.dirs": "/tmp/x"}
    path.write_text("no separator here\n")
    with pytest.raises(NodeConfigError, match="server.properties:1: expected key=value"):
        read_properties(path)
