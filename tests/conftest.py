"""Fixtures shared by the whole test tree.

``kafka_peer``: a real Apache Kafka broker to compare behaviours with.  Apache Kafka is the ground
truth, so tests that compare with it never skip for want of it: they use the broker named by
``REFKA_KAFKA_BOOTSTRAP`` (a developer's long-running peer, e.g. ``refka kafka start``) when that
variable is set and the broker answers, and otherwise start a private one-node cluster on free ports (``conformance.apache_kafka``; Java 17 and
Maven, which ``.ci/run`` installs) for the session.  Tests using it carry
``@pytest.mark.xdist_group("apache-kafka-peer")`` so that under ``--dist loadgroup`` one worker
starts at most one JVM.

``reference_cluster``: a private 3-node reference KRaft cluster on free ports for one test, with
failure detection shortened (``FAST_FAILOVER``: a dead broker fenced after 3 s, a lagging follower
out of the ISR after 5 s) so that failover tests wait seconds, not Kafka's default half-minutes.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.apache_kafka import KafkaCluster
from conformance.fixtures import free_port_block
from reference.node.cluster import ReferenceCluster

FAST_FAILOVER = {"broker.session.timeout.ms": "3000", "broker.heartbeat.interval.ms": "500",
                 "replica.lag.time.max.ms": "5000"}


def _answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def kafka_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """(host, port) of an Apache Kafka broker: the running peer, or a private one started here."""
    # Never whatever happens to listen on a well-known port: only a peer someone named.
    named = os.environ.get("REFKA_KAFKA_BOOTSTRAP")
    if named:
        host, _, port = named.rpartition(":")
        if _answers(host, int(port)):
            yield host, int(port)
            return
    cluster = KafkaCluster(nodes=1, base_port=free_port_block(2), data_dir=Path(tmp_path_factory.mktemp("kafka")))
    cluster.start()
    try:
        yield "127.0.0.1", cluster.nodes[0].port
    finally:
        cluster.stop()


@pytest.fixture
def reference_cluster(tmp_path: Path) -> Iterator[ReferenceCluster]:
    started = ReferenceCluster(nodes=3, base_port=free_port_block(6), data_dir=tmp_path / "cluster",
                               config=FAST_FAILOVER)
    started.start(timeout=60)
    try:
        yield started
    finally:
        started.stop()
