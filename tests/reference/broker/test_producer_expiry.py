"""Producer ids expire: a partition leader forgets an idle idempotent producer after
``producer.id.expiration.ms``, checked every ``producer.id.expiration.check.interval.ms`` (KIP-854),
on the reference broker as on Apache Kafka.

How it is observed at the wire, without refreshing the producer's state: a batch whose sequence
skips ahead. While the leader remembers the producer, the gap is refused with
OUT_OF_ORDER_SEQUENCE_NUMBER (45), and a refused batch is not appended, so probing does not keep the
producer alive. Once the leader has forgotten it, the producer is unknown and Kafka accepts its
batch whatever the first sequence (since KIP-360 the leader no longer answers UNKNOWN_PRODUCER_ID
there; Apache Kafka 4.3 answers 0), and the reference does the same.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.apache_kafka import KafkaCluster
from conformance.fixtures import free_port_block
from reference.broker.embedded import EmbeddedBroker
from reference.records.batch import SimpleRecord, build_batch

from .conftest import RawClient

EXPIRY = {"producer.id.expiration.ms": "2000", "producer.id.expiration.check.interval.ms": "500",
          "num.partitions": "1"}
OUT_OF_ORDER_SEQUENCE_NUMBER = 45


@pytest.fixture(params=["refka", pytest.param("kafka", marks=[pytest.mark.kafka, pytest.mark.slow])])
def bootstrap(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "refka":
        with EmbeddedBroker(data_dir=tmp_path / "broker", config=dict(EXPIRY)) as broker:
            yield broker.bootstrap
        return
    cluster = KafkaCluster(nodes=1, base_port=free_port_block(2), data_dir=tmp_path / "kafka", config=dict(EXPIRY))
    cluster.start()
    try:
        yield cluster.bootstrap_servers
    finally:
        cluster.stop()


def idempotent_batch(producer_id: int, epoch: int, sequence: int) -> bytes:
    return build_batch([SimpleRecord(value=b"v", timestamp=int(time.time() * 1000))],
                       producer_id=producer_id, producer_epoch=epoch, base_sequence=sequence)


def test_an_idle_producer_is_forgotten_after_producer_id_expiration_ms(bootstrap: str) -> None:
    topic = f"expiry-{uuid.uuid4().hex[:8]}"
    with RawClient(bootstrap, timeout=30) as client:
        assert client.create_topic(topic).error_code == 0
        for _ in range(100):  # COORDINATOR_LOAD_IN_PROGRESS (14) while a new node loads, as clients retry
            ids = client.call("InitProducerId", 4, transactional_id=None, transaction_timeout_ms=60000,
                              producer_id=-1, producer_epoch=-1)
            if ids.error_code != 14:
                break
            time.sleep(0.2)
        assert ids.error_code == 0
        pid, epoch = ids.producer_id, ids.producer_epoch
        for _ in range(100):  # a new partition may need a moment to get its leader
            written = client.produce(topic, 0, idempotent_batch(pid, epoch, 0)).error_code
            if written == 0:
                break
            time.sleep(0.1)
        assert written == 0
        written_at = time.monotonic()
        assert client.produce(topic, 0, idempotent_batch(pid, epoch, 5)).error_code == OUT_OF_ORDER_SEQUENCE_NUMBER

        codes = []
        while time.monotonic() - written_at < 30:
            codes.append(client.produce(topic, 0, idempotent_batch(pid, epoch, 5)).error_code)
            if codes[-1] != OUT_OF_ORDER_SEQUENCE_NUMBER:
                break
            time.sleep(0.25)
        forgotten_after = time.monotonic() - written_at
    assert codes[-1] == 0, f"the producer was never forgotten: answers {sorted(set(codes))}"
    # Not before producer.id.expiration.ms has passed (the batch's own timestamp is the clock).
    assert forgotten_after >= 2.0 - 0.3, f"forgotten after {forgotten_after:.1f} s, before its expiration"
