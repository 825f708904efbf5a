"""Pytest fixtures that start Apache Kafka peers (usable from tests/ and from the suite).

``apache_kafka`` starts a private 1-node cluster on free ports in a temporary directory for the
duration of a test module and stops it afterwards.  Tests using it should be marked
``@pytest.mark.kafka`` (they need Java 17 and Maven) and ``@pytest.mark.slow``.

``kafka_cluster_factory`` gives tests a ``start(nodes=N)`` function for other shapes; every
cluster it starts is stopped at the end of the test.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conformance.apache_kafka import KafkaCluster


def free_port_block(count: int) -> int:
    """A base port such that ``count`` consecutive ports are free on 127.0.0.1 (best effort)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + count >= 65535:
            continue
        sockets = []
        try:
            for offset in range(count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no block of free ports found")


@pytest.fixture
def kafka_cluster_factory(tmp_path: Path) -> Iterator[Callable[..., KafkaCluster]]:
    started: list[KafkaCluster] = []

    def start(nodes: int = 1) -> KafkaCluster:
        cluster = KafkaCluster(nodes=nodes, base_port=free_port_block(2 * nodes),
                               data_dir=tmp_path / f"kafka-{len(started)}")
        started.append(cluster)
        cluster.start()
        return cluster

    yield start
    for cluster in started:
        cluster.stop()


@pytest.fixture(scope="module")
def apache_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(nodes=1, base_port=free_port_block(2), data_dir=tmp_path_factory.mktemp("kafka"))
    cluster.start()
    yield cluster
    cluster.stop()
