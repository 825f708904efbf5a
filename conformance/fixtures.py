"""Pytest fixtures that start Apache Kafka peers (usable from tests/ and from the suite).

``apache_kafka`` starts a private 1-node cluster on free ports in a temporary directory for the
duration of a test module and stops it afterwards.  Tests using it should be marked
``@pytest.mark.kafka`` (they need Java 17 and Maven) and ``@pytest.mark.slow``.

``kafka_cluster_factory`` gives tests a ``start(nodes=N)`` function for other shapes; every
cluster it starts is stopped at the end of the test.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conformance.apache_kafka import KafkaCluster


def _ephemeral_range_start() -> int:
    """The first port the kernel hands out to outgoing connections (Linux: 32768 by default)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as ranges:
            return int(ranges.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_block(count: int) -> int:
    """A base port such that ``count`` consecutive ports are free on 127.0.0.1 (best effort).

    Blocks are drawn at random *below* the kernel's ephemeral range: a port inside it that is free
    now can be taken a moment later as the source port of any outgoing connection (a broker's own
    connections to its peers), and the node meant to listen there then fails with "Address
    already in use"."""
    top = min(_ephemeral_range_start(), 65535) - count
    rng = random.SystemRandom()
    for _ in range(200):
        base = rng.randrange(10000, max(top, 10001))
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
