"""Shared fixtures for the client tests that run against a real broker.

``bootstrap`` runs a test twice: against the module's own reference broker (each module defines a
``reference_broker`` fixture with the broker settings it needs) and against the Apache Kafka peer
(``kafka_peer``, tests/conftest.py).  Kafka is the ground truth: a client behaviour that passes on
the reference but not on Kafka is a client bug hidden by a broker bug.
"""

from __future__ import annotations

import pytest


@pytest.fixture(params=["reference", pytest.param("kafka", marks=[pytest.mark.kafka,
                                                                   pytest.mark.xdist_group("apache-kafka-peer")])])
def bootstrap(request: pytest.FixtureRequest) -> str:
    if request.param == "reference":
        return str(request.getfixturevalue("reference_broker"))
    host, port = request.getfixturevalue("kafka_peer")
    return f"{host}:{port}"
