"""Under idempotent acks=all load, SIGKILL of each node in turn loses and duplicates nothing that
was acknowledged, and a restart of the whole cluster keeps everything."""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from reference.node.cluster import ReferenceCluster

from .readback import read_everything

pytestmark = [pytest.mark.slow, pytest.mark.clients]
TOPIC = "failover"
PARTITIONS = 3


class LoadProducer:
    """Sends unique values until stopped; remembers which ones were acknowledged."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                                  "message.timeout.ms": 60000, "linger.ms": 5})
        self.acknowledged: set[bytes] = set()
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.sent = 0

    def _delivered(self, error: object, message: object) -> None:
        if error is None:
            self.acknowledged.add(message.value())  # type: ignore[attr-defined]
        else:
            self.failed.append(str(error))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.producer.produce(TOPIC, f"v{self.sent}".encode(), on_delivery=self._delivered)
                self.sent += 1
            except BufferError:
                pass
            self.producer.poll(0.002)

    def __enter__(self) -> LoadProducer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.producer.flush(60)


def test_sigkill_of_each_node_under_idempotent_load_loses_and_duplicates_nothing(reference_cluster: ReferenceCluster) -> None:
    bootstrap = reference_cluster.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 3, config={"min.insync.replicas": "2"})])[TOPIC].result(30)
    with LoadProducer(bootstrap) as load:
        for victim in (0, 1, 2, 0):
            time.sleep(2)
            reference_cluster.kill(victim)
            # Fenced after broker.session.timeout.ms, leaders move, the load goes on: wait for new
            # acknowledgements with the node still down (no fixed window: a loaded machine is slow).
            before = len(load.acknowledged)
            deadline = time.monotonic() + 90
            while len(load.acknowledged) <= before + 100 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert len(load.acknowledged) > before + 100, f"no writes were acknowledged while node {victim} was down"
            reference_cluster.restart(victim, timeout=60)
        time.sleep(3)
    assert load.acknowledged and not load.failed, load.failed[:5]
    reference_cluster.stop()
    reference_cluster.start(timeout=60)  # the whole reference_cluster, from its disks
    values = read_everything(bootstrap, TOPIC, PARTITIONS)
    duplicates = len(values) - len(set(values))
    lost = load.acknowledged - set(values)
    assert not lost, f"{len(lost)} acknowledged records lost, e.g. {sorted(lost)[:5]}"
    assert duplicates == 0, f"{duplicates} records read twice"
