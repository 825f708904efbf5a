"""The structure-aware fuzzer (``conformance.fuzz``): its mutants, a short fixed-seed run against
the reference broker (and against Apache Kafka with the ``kafka`` marker), the sans-IO core under
the same mutants, and the regression tests for what it found."""

from __future__ import annotations

import random
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance import fuzz
from reference.broker.configs import BrokerConfig
from reference.broker.core import Broker, CloseConnection
from reference.broker.handlers import SUPPORTED_VERSIONS
from reference.protocol.apis import API_BY_NAME
from reference.protocol.primitives import ZERO_UUID
from tests.reference.broker.conftest import RawClient

FIXED_SEED = 20261207


def seeds() -> list[fuzz.Seed]:
    return fuzz.build_seeds(SUPPORTED_VERSIONS, "fuzz-t", "fuzz-group-t", random.Random(0))


def test_seeds_cover_every_advertised_version_of_every_api() -> None:
    built = {(s.api.key, s.version) for s in seeds()}
    advertised = {(key, v) for key, (low, high) in SUPPORTED_VERSIONS.items() for v in range(low, high + 1)
                  if v in API_BY_NAME[next(n for n, a in API_BY_NAME.items() if a.key == key)].request.valid}
    assert built == advertised


def test_the_same_seed_gives_the_same_mutants() -> None:
    first = [frame for _, _, frame in fuzz.mutants(seeds(), 300, random.Random(7))]
    second = [frame for _, _, frame in fuzz.mutants(seeds(), 300, random.Random(7))]
    assert first == second
    assert len(set(first)) > 250


def test_every_operator_is_used_and_outer_length_lies_about_the_size() -> None:
    produced = list(fuzz.mutants(seeds(), 2000, random.Random(3)))
    assert {operator for _, operator, _ in produced} == set(fuzz.OPERATORS)
    lying = [frame for _, operator, frame in produced if operator == "outer_length"]
    assert all(struct.unpack_from(">i", frame)[0] != len(frame) - 4 for frame in lying)
    honest = [frame for _, operator, frame in produced if operator != "outer_length"]
    assert all(struct.unpack_from(">i", frame)[0] == len(frame) - 4 for frame in honest)


def test_the_sans_io_core_answers_or_closes_for_every_mutant(tmp_path: Path) -> None:
    """The core raises nothing but CloseConnection for 5,000 mutants (a bug in a handler would be
    logged and cost the client its connection; here it fails the test)."""
    now_ms = int(time.time() * 1000)
    broker = Broker(BrokerConfig({"node.id": "1", "group.initial.rebalance.delay.ms": "0"}), tmp_path, now_ms)
    broker.set_listener("127.0.0.1", 9092)
    failures: list[str] = []
    try:
        for seed, operator, frame in fuzz.mutants(seeds(), 5000, random.Random(FIXED_SEED)):
            try:
                broker.handle_frame(frame[4:], now_ms)
            except CloseConnection:
                pass
            except Exception as error:  # noqa: BLE001 - every other exception is a finding
                failures.append(f"{seed.api.name} v{seed.version} {operator}: {error!r} frame {frame.hex()}")
    finally:
        broker.shutdown()
    assert failures == []


# -- over sockets: a subprocess reference broker, so its memory and descriptors are its own ---------------


@pytest.fixture
def broker_process(tmp_path: Path) -> Iterator[tuple[str, int, int]]:
    log_path = tmp_path / "broker.log"
    with open(log_path, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "reference.cli", "broker", "--listen", "127.0.0.1:0", "--data-dir",
             str(tmp_path / "data"), "--set", "group.initial.rebalance.delay.ms=0"],
            stdout=out, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            text = log_path.read_text(errors="replace")
            if "listening on" in text:
                break
            assert process.poll() is None, text
            time.sleep(0.05)
        port = int(text.split("listening on ", 1)[1].split()[0].rsplit(":", 1)[1])
        yield "127.0.0.1", port, process.pid
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0
        assert "clean shutdown complete" in log_path.read_text(errors="replace")


def test_a_short_fixed_seed_run_keeps_the_reference_broker_answering_and_bounded(
        broker_process: tuple[str, int, int]) -> None:
    host, port, pid = broker_process
    fuzzer = fuzz.Fuzzer(host, port, FIXED_SEED, pid=pid, answer_timeout_s=0.5, check_every=100)
    report = fuzzer.run(600)
    assert report.mutants == report.answered + report.closed + report.timed_out == 600
    assert report.health_failures == []
    assert report.acknowledged >= 6 and report.lost == []
    assert 0 < report.peak_rss_bytes <= 300 * 2**20
    # Two internal topics of 50 partitions each (__consumer_offsets, __transaction_state), three
    # descriptors per partition (log, index, time index): about 310 in steady state; a leak grows past.
    assert 0 < report.peak_descriptors <= 512


@pytest.mark.kafka
@pytest.mark.xdist_group("apache-kafka-peer")
def test_the_same_run_passes_against_apache_kafka(kafka_peer: tuple[str, int]) -> None:
    host, port = kafka_peer
    report = fuzz.Fuzzer(host, port, FIXED_SEED, answer_timeout_s=0.5, check_every=100).run(300)
    assert report.mutants == report.answered + report.closed + report.timed_out == 300
    assert report.health_failures == [] and report.lost == []


# -- regression tests for the fuzzer's findings, each checked against Apache Kafka -------------------------

OFFSET_FETCH = API_BY_NAME["OffsetFetch"]
METADATA = API_BY_NAME["Metadata"]


@pytest.fixture(params=["refka", pytest.param("kafka", marks=[pytest.mark.kafka,
                                                             pytest.mark.xdist_group("apache-kafka-peer")])])
def bootstrap(request: pytest.FixtureRequest, broker: object) -> Iterator[str]:
    if request.param == "kafka":
        host, port = request.getfixturevalue("kafka_peer")
        yield f"{host}:{port}"
    else:
        yield broker.bootstrap  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from reference.broker.embedded import EmbeddedBroker

    with EmbeddedBroker(data_dir=tmp_path_factory.mktemp("broker")) as embedded:
        yield embedded


def test_offset_fetch_v10_for_an_unknown_topic_id_is_unknown_topic_id(bootstrap: str) -> None:
    """Found by the fuzzer: refka crashed encoding this answer and closed the connection."""
    group = f"fuzz-regression-{uuid.uuid4().hex[:8]}"
    topic_id = uuid.uuid4()
    with RawClient(bootstrap) as client:
        client.await_coordinator(group)
        body = client.call("OffsetFetch", 10, require_stable=False, groups=[
            OFFSET_FETCH.request.struct("OffsetFetchRequestGroup").make(
                group_id=group, member_id=None, member_epoch=-1, topics=[
                    OFFSET_FETCH.request.struct("OffsetFetchRequestTopics").make(
                        name="", topic_id=topic_id, partition_indexes=[0, 3])])])
    (answered,) = body.groups
    assert answered.error_code == 0
    (topic,) = answered.topics
    assert topic.topic_id == topic_id
    assert [(p.partition_index, p.committed_offset, p.error_code) for p in topic.partitions] == [
        (0, -1, 100), (3, -1, 100)]


def test_offset_fetch_v10_answers_each_group_with_its_own_unknown_topic_ids(bootstrap: str) -> None:
    """Found by the fuzzer: 2,000 groups naming one unknown id each were answered with every
    group's ids in every group (4,000,000 entries; the broker's loop was blocked for 50 s)."""
    groups = [OFFSET_FETCH.request.struct("OffsetFetchRequestGroup").make(
        group_id=f"fuzz-regression-{index}", member_id=None, member_epoch=-1, topics=[
            OFFSET_FETCH.request.struct("OffsetFetchRequestTopics").make(
                name="", topic_id=uuid.UUID(int=index + 1), partition_indexes=[0])])
        for index in range(2000)]
    with RawClient(bootstrap, timeout=60) as client:
        body = client.call("OffsetFetch", 10, require_stable=False, groups=groups)
    assert len(body.groups) == 2000
    for index, group in enumerate(body.groups):
        assert [t.topic_id for t in group.topics] == ([uuid.UUID(int=index + 1)] if group.error_code == 0 else [])


@pytest.mark.parametrize("version", [10, 11])
def test_metadata_v10_and_v11_with_a_topic_without_a_name_is_invalid_request(bootstrap: str, version: int) -> None:
    """Found by the fuzzer: refka crashed encoding a null name where v10-11 answers cannot carry one."""
    with RawClient(bootstrap) as client:
        body = client.call("Metadata", version, allow_auto_topic_creation=False, topics=[
            METADATA.request.struct("MetadataRequestTopic").make(name=None, topic_id=ZERO_UUID)])
    assert [(t.name, t.error_code) for t in body.topics] == [("", 42)]


def test_offset_commit_v3_accepts_the_largest_and_smallest_retention_times(bootstrap: str) -> None:
    """Found by the fuzzer: now + Long.MAX_VALUE overflowed refka's int64 encoder; Kafka computes
    the expiry in Java long arithmetic (it wraps) and commits."""
    group, topic = f"fuzz-regression-{uuid.uuid4().hex[:8]}", f"fuzz-retention-{uuid.uuid4().hex[:8]}"
    commit = API_BY_NAME["OffsetCommit"].request
    with RawClient(bootstrap) as client:
        assert client.create_topic(topic).error_code == 0
        client.await_coordinator(group)
        for retention_ms in ((1 << 63) - 1, -(1 << 63)):
            body = client.call("OffsetCommit", 3, group_id=group, generation_id_or_member_epoch=-1, member_id="",
                               retention_time_ms=retention_ms, topics=[commit.struct("OffsetCommitRequestTopic").make(
                                   name=topic, partitions=[commit.struct("OffsetCommitRequestPartition").make(
                                       partition_index=0, committed_offset=7, committed_metadata="")])])
            assert body.topics[0].partitions[0].error_code == 0


def test_a_recorded_mutant_replays_against_a_broker(bootstrap: str) -> None:
    """``replay`` (how findings become tests) sends frames and checks the broker still answers."""
    host, _, port = bootstrap.rpartition(":")
    frames = [frame for _, _, frame in fuzz.mutants(seeds(), 20, random.Random(FIXED_SEED))]
    assert fuzz.replay((host, int(port)), frames, timeout_s=0.5)
