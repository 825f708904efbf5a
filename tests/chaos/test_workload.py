"""chaos/workload.py: the client settings each workload promises (safe, idempotent, unsafe)."""

from __future__ import annotations

import pytest

from chaos.cluster import kafka_settings
from chaos.workload import WorkloadConfig, producer_config, topic_settings


def test_at_least_once_waits_for_every_in_sync_replica_and_keeps_one_request_in_flight() -> None:
    config = producer_config(WorkloadConfig(), "b:9092")
    assert config["acks"] == "all" and config["enable.idempotence"] is False
    assert config["max.in.flight.requests.per.connection"] == 1 and config["retries"] > 1_000_000


def test_idempotent_turns_on_idempotence_with_acks_all() -> None:
    config = producer_config(WorkloadConfig(name="idempotent"), "b:9092")
    assert config["acks"] == "all" and config["enable.idempotence"] is True


def test_the_unsafe_acks1_mode_acknowledges_on_the_leader_alone_without_idempotence() -> None:
    for name in ("at-least-once", "idempotent"):
        config = producer_config(WorkloadConfig(name=name, unsafe="acks1"), "b:9092")
        assert config["acks"] == "1" and config["enable.idempotence"] is False
    with pytest.raises(ValueError, match="unknown unsafe mode"):
        WorkloadConfig(unsafe="yolo")


def test_the_topic_is_replicated_three_times_with_two_in_sync_and_no_unclean_election() -> None:
    assert topic_settings(WorkloadConfig(), 3) == (3, {"min.insync.replicas": "2",
                                                       "unclean.leader.election.enable": "false"})
    assert topic_settings(WorkloadConfig(unsafe="acks1"), 3)[1]["min.insync.replicas"] == "2"
    assert topic_settings(WorkloadConfig(), 1) == (1, {"min.insync.replicas": "1",
                                                       "unclean.leader.election.enable": "false"})


def test_kafka_fails_over_fast_but_keeps_its_durability_defaults() -> None:
    settings = kafka_settings(3)
    assert int(settings["broker.session.timeout.ms"]) < 9000
    assert int(settings["broker.heartbeat.interval.ms"]) < int(settings["broker.session.timeout.ms"])
    assert not {"min.insync.replicas", "unclean.leader.election.enable", "acks"} & set(settings)
