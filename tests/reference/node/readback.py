"""Reading a whole topic back after a failover test, with confluent-kafka: every partition from
offset 0 to its end (librdkafka's _PARTITION_EOF event says when one is reached)."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, TopicPartition

PARTITION_EOF = -191  # librdkafka's _PARTITION_EOF


def read_everything(bootstrap: str, topic: str, partitions: int, timeout_s: float = 60,
                    isolation_level: str = "read_uncommitted") -> list[bytes]:
    """Every value of ``topic`` a reader at ``isolation_level`` gets, partition by partition in
    offset order; fails unless each partition's end was reached within ``timeout_s``."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "enable.partition.eof": True,
                         "isolation.level": isolation_level})
    consumer.assign([TopicPartition(topic, partition, 0) for partition in range(partitions)])
    values: list[bytes] = []
    ended: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while len(ended) < partitions and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            if message.error().code() == PARTITION_EOF:
                ended.add(message.partition())
            continue
        values.append(message.value())
    consumer.close()
    assert len(ended) == partitions, "the reader did not reach the end of every partition"
    return values
