"""Fixtures shared by the whole test tree.

``kafka_peer``: a real Apache Kafka broker to compare behaviours with.  Apache Kafka is the ground
truth, so tests that compare with it never skip for want of it: they use the broker named by
``REFKA_KAFKA_BOOTSTRAP`` (a developer's long-running peer, e.g. ``refka kafka start``) when that
variable is set and the broker answers, and otherwise start a private one-node cluster on free ports (``conformance.apache_kafka``; Java 17 and
Maven, which ``.ci/run`` installs) for the session.  Tests using it carry
``@pytest.mark.xdist_group("apache-kafka-peer")`` so that under ``--dist loadgroup`` one worker
starts at most one JVM.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.apache_kafka import KafkaCluster
from conformance.fixtures import free_port_block


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
