"""chaos/workload.py: the client settings each workload promises (safe, idempotent, unsafe),
client.log, where the clients' librdkafka logs land so that a run can be explained afterwards, and
the one fact taken from that log into the history: an idempotent producer's own epoch bump."""

from __future__ import annotations

import logging
import random
import re
import time
from pathlib import Path

import pytest

from chaos.cluster import kafka_settings
from chaos.history import INFO, Clock, HistoryWriter
from chaos.workload import (
    CLIENT_LOG,
    IDEMPOTENT_PRODUCER_DEBUG,
    ClientLog,
    Counters,
    EpochBumpRecorder,
    Producer,
    WorkloadConfig,
    client_logger,
    consumer_config,
    producer_config,
    recording_epoch_bumps,
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


def test_the_unsafe_unclean_mode_keeps_acks_all_on_a_topic_with_one_in_sync_and_unclean_election() -> None:
    config = producer_config(WorkloadConfig(unsafe="unclean"), "b:9092")
    assert config["acks"] == "all" and config["enable.idempotence"] is False
    assert producer_config(WorkloadConfig(name="idempotent", unsafe="unclean"), "b:9092")["enable.idempotence"] is True
    assert topic_settings(WorkloadConfig(unsafe="unclean"), 3) == (3, {"min.insync.replicas": "1",
                                                                       "unclean.leader.election.enable": "true"})


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


# -- epoch bumps: from librdkafka's log into the history ----------------------------------------

# Real lines of an idempotent producer that duplicated a batch (/tmp/dup-runs/bump3/client.log and
# bump2/client.log, librdkafka 2.16.0): (facility, client name, text) as confluent-kafka hands them
# to the logger ("%s [%s] %s").
PER_PARTITION_DRAIN = ("DRAIN", "producer#producer-14", "[thrd:172.28.0.11:9092/1]: bump [0] beginning partition "
                       "drain: drain before retrying")
DRAIN_FOR_BUMP = ("DRAIN", "producer#producer-14", "[thrd:172.28.0.12:9092/2]: Beginning partition drain in state "
                  "Assigned for PID{Id:0,Epoch:0} epoch bump for 0 partition(s) with in-flight requests: 263 "
                  "message(s) timed out on bump [1]")
BUMPED = ("DRAIN", "producer#producer-14", "[thrd:172.28.0.12:9092/2]: All partitions drained, bumped epoch to "
          "PID{Id:0,Epoch:1}")
NEWPID = ("NEWPID", "producer#producer-14", "[thrd:172.28.0.11:9092/1]: bump [0] changed PID{Id:0,Epoch:0} -> "
          "PID{Id:0,Epoch:1} with base MsgId 2333")
DRAIN_FOR_BUMP_SEQUENCE = ("DRAIN", "producer#producer-12", "[thrd:172.28.0.13:9092/3]: Beginning partition drain "
                           "in state Assigned for PID{Id:0,Epoch:8} epoch bump for 2 partition(s) with in-flight "
                           "requests: skipped sequence numbers")
BUMPED_AGAIN = ("DRAIN", "producer#producer-12", "[thrd:172.28.0.13:9092/3]: All partitions drained, bumped epoch "
                "to PID{Id:0,Epoch:9}")


def log_as_librdkafka(process: str, *lines: tuple[str, str, str]) -> None:
    for line in lines:
        client_logger(process).log(logging.DEBUG, "%s [%s] %s", *line)


def epoch_bumps(history: HistoryWriter) -> list[tuple[str, object]]:
    return [(event.process, event.value) for event in history.events if event.f == "epoch-bump"]


def test_librdkafkas_bumped_epoch_line_becomes_an_epoch_bump_event_with_the_drains_reason(tmp_path: Path) -> None:
    clock = Clock()
    history = HistoryWriter(None, clock)
    with ClientLog(tmp_path / "client.log", clock), recording_epoch_bumps(history, "producer-1"):
        log_as_librdkafka("producer-1", PER_PARTITION_DRAIN, DRAIN_FOR_BUMP, PER_PARTITION_DRAIN, BUMPED, NEWPID)
        log_as_librdkafka("producer-1", DRAIN_FOR_BUMP_SEQUENCE, BUMPED_AGAIN)
        log_as_librdkafka("producer-1", BUMPED)  # no drain line before it: no reason known
    assert epoch_bumps(history) == [
        ("producer-1", {"producer_id": 0, "epoch": 1, "reason": "263 message(s) timed out on bump [1]"}),
        ("producer-1", {"producer_id": 0, "epoch": 9, "reason": "skipped sequence numbers"}),
        ("producer-1", {"producer_id": 0, "epoch": 1, "reason": None}),
    ]
    assert {event.type for event in history.events} == {INFO}
    # client.log still gets every line, the recorder only reads them
    assert len((tmp_path / "client.log").read_text().splitlines()) == 8


def test_only_the_producers_own_bumps_are_recorded_and_only_while_recording(tmp_path: Path) -> None:
    history = HistoryWriter(None)
    log_as_librdkafka("producer-1", DRAIN_FOR_BUMP, BUMPED)  # before: not recorded
    with recording_epoch_bumps(history, "producer-1") as recorder:
        assert isinstance(recorder, EpochBumpRecorder)
        log_as_librdkafka("producer-2", DRAIN_FOR_BUMP, BUMPED)  # another producer's logger
        log_as_librdkafka("producer-1", BUMPED_AGAIN)
    log_as_librdkafka("producer-1", BUMPED)  # after: not recorded
    assert epoch_bumps(history) == [("producer-1", {"producer_id": 0, "epoch": 9, "reason": None})]


def test_recording_does_not_need_client_log_and_leaves_the_loggers_as_it_found_them() -> None:
    logger = client_logger("producer-3")
    before = (CLIENT_LOG.level, logger.level, list(CLIENT_LOG.handlers), list(logger.handlers))
    assert CLIENT_LOG.level > logging.DEBUG  # no ClientLog open: DEBUG would be dropped by default
    history = HistoryWriter(None)
    with recording_epoch_bumps(history, "producer-3"):
        log_as_librdkafka("producer-3", DRAIN_FOR_BUMP, BUMPED)
    assert [value for _process, value in epoch_bumps(history)] == [
        {"producer_id": 0, "epoch": 1, "reason": "263 message(s) timed out on bump [1]"}]
    assert (CLIENT_LOG.level, logger.level, list(CLIENT_LOG.handlers), list(logger.handlers)) == before


def test_the_older_drain_wording_and_other_facilities_are_understood_or_ignored() -> None:
    history = HistoryWriter(None)
    with recording_epoch_bumps(history, "producer-4"):
        # librdkafka before 2.x: no "in state ..." in the drain line
        log_as_librdkafka("producer-4", ("DRAIN", "producer-4#producer-1", "Beginning partition drain for "
                                         "PID{Id:7,Epoch:2} epoch bump for 1 partition(s) with in-flight requests: "
                                         "unknown producer id"))
        # the same words under another facility, or a reset (transactional) drain, are not bumps
        log_as_librdkafka("producer-4", ("PRODUCE", "producer-4#producer-1", "All partitions drained, bumped epoch "
                                         "to PID{Id:7,Epoch:5}"),
                          ("DRAIN", "producer-4#producer-1", "All partitions drained"))
        log_as_librdkafka("producer-4", ("DRAIN", "producer-4#producer-1", "All partitions drained, bumped epoch "
                                         "to PID{Id:7,Epoch:3}"))
    assert [value for _process, value in epoch_bumps(history)] == [
        {"producer_id": 7, "epoch": 3, "reason": "unknown producer id"}]


def test_a_real_idempotent_producer_records_its_epoch_bumps_among_its_sends() -> None:
    """The workload's Producer against librdkafka's mock cluster, answering slowly: queued messages
    time out locally (delivery.timeout.ms 500 ms, round trip 400 ms), and librdkafka bumps the
    epoch for it.  Proves the line format of the installed librdkafka, and that Producer.work
    records what it says, in place among the sends."""
    from confluent_kafka import Producer as KafkaProducer

    class Lines(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.lines: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.lines.append(record.getMessage())

    owner_log, lines = logging.getLogger("test.mock-cluster"), Lines()
    owner_log.addHandler(lines)
    owner_log.setLevel(logging.INFO)
    owner_log.propagate = False
    try:
        owner = KafkaProducer({"test.mock.num.brokers": 1, "test.mock.broker.rtt": 400, "logger": owner_log})
        deadline = time.monotonic() + 5
        while not any("Mock cluster enabled" in line for line in lines.lines) and time.monotonic() < deadline:
            owner.poll(0.05)
        [bootstrap] = [m[1] for line in lines.lines if (m := re.search(r"replaced with (\S+)", line))]
        history = HistoryWriter(None)
        config = WorkloadConfig(name="idempotent", delivery_timeout_ms=500, sends_per_second=500, partitions=1)
        producer = Producer("producer-0", config, bootstrap, history, Counters(), random.Random(1))
        producer.start()
        deadline = time.monotonic() + 20
        while not any(event.f == "epoch-bump" for event in history.events) and time.monotonic() < deadline:
            time.sleep(0.05)
        producer.stopping.set()
        producer.join(30)
        del owner  # the mock cluster lives as long as its owner
    finally:
        owner_log.removeHandler(lines)
    assert producer.error is None and not producer.is_alive()
    bumps = [event for event in history.events if event.f == "epoch-bump"]
    assert bumps, "no epoch bump recorded in 20 s"
    first = bumps[0].value
    assert bumps[0].process == "producer-0" and bumps[0].type == INFO
    assert first["epoch"] == 1 and first["producer_id"] >= 0
    assert re.fullmatch(r"\d+ message\(s\) timed out on chaos \[\d+\]", first["reason"]), first
    # in place: inside the flight (invoke .. completion) of sends that were in the producer's hands
    # when it bumped, which is what the checker looks for
    position = history.events.index(bumps[0])
    invoked = {event.value["value"] for event in history.events[:position]
               if event.f == "send" and event.type == "invoke"}
    completed_later = {event.value["value"] for event in history.events[position:]
                       if event.f == "send" and event.type != "invoke"}
    assert invoked & completed_later
