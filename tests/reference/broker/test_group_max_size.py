"""``group.max.size`` caps a classic group: a member that would make the group larger is refused
with GROUP_MAX_SIZE_REACHED (81), while the members already in it carry on, on the reference broker
as on Apache Kafka (both started here with ``group.max.size=1``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.apache_kafka import KafkaCluster
from conformance.fixtures import free_port_block
from reference.broker.embedded import EmbeddedBroker
from reference.protocol.apis import API_BY_NAME

from .conftest import RawClient

CONFIG = {"group.max.size": "1", "group.initial.rebalance.delay.ms": "0", "num.partitions": "1"}
JOIN = API_BY_NAME["JoinGroup"].request
MEMBER_ID_REQUIRED, GROUP_MAX_SIZE_REACHED = 79, 81


@pytest.fixture(params=["refka", pytest.param("kafka", marks=[pytest.mark.kafka, pytest.mark.slow])])
def bootstrap(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "refka":
        with EmbeddedBroker(data_dir=tmp_path / "broker", config=dict(CONFIG)) as broker:
            yield broker.bootstrap
        return
    cluster = KafkaCluster(nodes=1, base_port=free_port_block(2), data_dir=tmp_path / "kafka", config=dict(CONFIG))
    cluster.start()
    try:
        yield cluster.bootstrap_servers
    finally:
        cluster.stop()


def join(client: RawClient, group: str, member_id: str) -> tuple[int, str, int]:
    """JoinGroup v5: (error code, member id, generation)."""
    body = client.call("JoinGroup", 5, group_id=group, session_timeout_ms=30000, rebalance_timeout_ms=30000,
                       member_id=member_id, group_instance_id=None, protocol_type="consumer",
                       protocols=[JOIN.struct("JoinGroupRequestProtocol").make(name="range", metadata=b"")])
    return body.error_code, body.member_id, body.generation_id


def test_a_member_beyond_group_max_size_is_refused_and_the_group_goes_on(bootstrap: str) -> None:
    group = f"max-size-{uuid.uuid4().hex[:8]}"
    with RawClient(bootstrap, timeout=60) as first, RawClient(bootstrap, timeout=60) as second:
        first.await_coordinator(group)
        code, member, _ = join(first, group, "")
        assert code == MEMBER_ID_REQUIRED and member
        code, joined, generation = join(first, group, member)
        assert (code, joined) == (0, member)
        synced = first.call("SyncGroup", 3, group_id=group, generation_id=generation, member_id=member,
                            group_instance_id=None, assignments=[])
        assert synced.error_code == 0

        # Kafka refuses at once, before handing out a member id (no MEMBER_ID_REQUIRED round).
        code, other, _ = join(second, group, "")
        assert (code, other) == (GROUP_MAX_SIZE_REACHED, "")

        beat = first.call("Heartbeat", 3, group_id=group, generation_id=generation, member_id=member,
                          group_instance_id=None)
        assert beat.error_code == 0, "the refused join disturbed the member already in the group"
