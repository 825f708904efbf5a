"""chaos/workload.py: the client settings each workload promises (safe, idempotent, unsafe), and
client.log, where the clients' librdkafka logs land so that a run can be explained afterwards."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from chaos.cluster import kafka_settings
from chaos.history import Clock
from chaos.workload import (
    CLIENT_LOG,
    IDEMPOTENT_PRODUCER_DEBUG,
    ClientLog,
    WorkloadConfig,
    client_logger,
    consumer_config,
    producer_config,
    topic_settings,
)


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


# -- client.log ---------------------------------------------------------------------------------


def test_the_idempotent_producer_asks_librdkafka_for_its_epoch_batch_and_request_logs() -> None:
    logger = client_logger("producer-1")
    config = producer_config(WorkloadConfig(name="idempotent"), "b:9092", logger, client_id="producer-1")
    assert set(config["debug"].split(",")) == {"eos", "msg", "protocol"} == set(IDEMPOTENT_PRODUCER_DEBUG.split(","))
    assert config["logger"] is logger and config["client.id"] == "producer-1"
    assert logger.name == "chaos.librdkafka.producer-1"
    # the other clients keep librdkafka's default level: their debug output is not needed to explain a verdict
    assert "debug" not in producer_config(WorkloadConfig(), "b:9092")
    assert "debug" not in producer_config(WorkloadConfig(name="idempotent", unsafe="acks1"), "b:9092")
    assert "debug" not in consumer_config("b:9092", "g", logger)


def test_a_client_record_reaches_client_log_with_the_run_clock_and_the_process_name(tmp_path: Path) -> None:
    clock = Clock()
    before = CLIENT_LOG.level
    path = tmp_path / "client.log"
    with ClientLog(path, clock):
        time.sleep(0.02)
        client_logger("producer-1").log(logging.DEBUG, "%s [%s] %s", "DRAIN", "producer-1#producer-3",
                                        "All partitions drained, bumped epoch to PID{Id:0,Epoch:1}")
    client_logger("producer-1").critical("after the run: not in this file")
    assert CLIENT_LOG.level == before and not any(isinstance(h, ClientLog) for h in CLIENT_LOG.handlers)
    [line] = path.read_text().splitlines()
    seconds, wall, process, level, text = line.split(" ", 4)
    assert 0.02 <= float(seconds) < 5 and wall.endswith("Z") and "T" in wall
    assert (process, level) == ("producer-1", "DEBUG")
    assert text == "DRAIN [producer-1#producer-3] All partitions drained, bumped epoch to PID{Id:0,Epoch:1}"


def test_client_log_stops_at_its_byte_limit_and_says_how_much_it_dropped(tmp_path: Path) -> None:
    path = tmp_path / "client.log"
    with ClientLog(path, Clock(), max_bytes=400) as client_log:
        for n in range(20):
            client_logger("producer-0").debug("PRODUCE batch %d %s", n, "x" * 40)
    lines = path.read_text().splitlines()
    kept = [line for line in lines if "PRODUCE batch" in line]
    assert 0 < len(kept) < 20 and kept[-1].split()[-2] == str(len(kept) - 1)  # the first ones, in order
    assert client_log.bytes_written <= 400 and client_log.lines_dropped == 20 - len(kept)
    assert "reached its limit of 400 bytes" in lines[len(kept)]
    assert lines[-1].endswith(f"{20 - len(kept)} lines dropped past the limit")


def test_librdkafka_itself_writes_the_idempotent_producer_state_to_client_log(tmp_path: Path) -> None:
    """A real client, no broker: the eos context logs the idempotence state machine at once."""
    from confluent_kafka import Producer

    path = tmp_path / "client.log"
    with ClientLog(path, Clock()):
        producer = Producer(producer_config(WorkloadConfig(name="idempotent"), "127.0.0.1:9",
                                            client_logger("producer-7"), client_id="producer-7"))
        deadline = time.monotonic() + 5
        while "IDEMPSTATE" not in path.read_text() and time.monotonic() < deadline:
            producer.poll(0.05)  # the log queue is served by poll, like the delivery reports
        del producer
    text = path.read_text()
    assert any(" producer-7 DEBUG IDEMPSTATE [producer-7#producer-" in line and "Init -> RequestPID" in line
               for line in text.splitlines()), text[:2000]
