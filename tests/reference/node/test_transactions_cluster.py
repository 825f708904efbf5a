"""Transactions on a 3-node reference cluster: a transaction over partitions led by different
nodes gets its markers through WriteTxnMarkers (the coordinator's outbox), and the transaction
coordinator moves with ``__transaction_state`` leadership: SIGKILL of the coordinator in the middle
of a transaction, and the new one still knows the transaction and can end it."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from reference.node.cluster import ReferenceCluster
from tests.reference.broker.conftest import RawClient

pytestmark = [pytest.mark.slow, pytest.mark.clients]
PARTITIONS = 3


def create_topic(bootstrap: str) -> str:
    name = f"txn-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, PARTITIONS, 3)])[name].result(90)
    return name


def leaders(bootstrap: str, topic: str) -> dict[int, int]:
    """Partition -> leader, once every partition has one (brokers learn a new topic a moment later)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    found: dict[int, int] = {}
    for _ in range(100):
        metadata = admin.list_topics(topic, timeout=10)
        found = {p.id: p.leader for p in metadata.topics[topic].partitions.values()}
        if len(found) == PARTITIONS and all(leader >= 0 for leader in found.values()):
            break
        time.sleep(0.2)
    return found


def read(bootstrap: str, topic: str, isolation: str, last: bytes, timeout: float = 60.0) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"r-{uuid.uuid4().hex[:6]}",
                         "isolation.level": isolation, "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while values.count(last) < PARTITIONS and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                values.append(message.value())
    finally:
        consumer.close()
    assert values.count(last) == PARTITIONS, f"{isolation}: read {values}"
    return sorted(values)


def transaction(producer: Producer, topic: str, value: bytes, commit: bool) -> None:
    producer.begin_transaction()
    for partition in range(PARTITIONS):
        producer.produce(topic, value, partition=partition)
    assert producer.flush(30) == 0
    if commit:
        producer.commit_transaction(60)
    else:
        producer.abort_transaction(60)


def test_a_transaction_over_partitions_led_by_every_node(reference_cluster: ReferenceCluster) -> None:
    bootstrap = reference_cluster.bootstrap_servers
    topic = create_topic(bootstrap)
    assert len(set(leaders(bootstrap, topic).values())) == 3, "the partitions' leaders are spread over the nodes"
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"t-{uuid.uuid4().hex[:6]}"})
    producer.init_transactions(60)
    transaction(producer, topic, b"aborted", commit=False)
    transaction(producer, topic, b"committed", commit=True)
    transaction(producer, topic, b"end", commit=True)
    assert read(bootstrap, topic, "read_uncommitted", b"end") == sorted([b"aborted", b"committed", b"end"] * 3)
    assert read(bootstrap, topic, "read_committed", b"end") == sorted([b"committed", b"end"] * 3)


def test_the_coordinator_moves_with_its_partition_and_keeps_the_open_transaction(reference_cluster: ReferenceCluster) -> None:
    bootstrap = reference_cluster.bootstrap_servers
    topic = create_topic(bootstrap)
    transactional_id = f"t-{uuid.uuid4().hex[:6]}"
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id})
    producer.init_transactions(60)
    producer.begin_transaction()
    for partition in range(PARTITIONS):
        producer.produce(topic, b"open", partition=partition)
    assert producer.flush(30) == 0
    coordinator = _find_transaction_coordinator(bootstrap, transactional_id)
    reference_cluster.kill(coordinator)
    try:
        survivors = ",".join(reference_cluster.address(n) for n in range(3) if n != coordinator)
        moved = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            moved = _describe(survivors, transactional_id)
            if moved is not None and moved.error_code == 0:
                break
            time.sleep(0.5)
        assert moved is not None and (moved.error_code, moved.transaction_state) == (0, "Ongoing"), moved
        producer.abort_transaction(60)  # the producer finds the new coordinator and ends the transaction
        transaction(producer, topic, b"end", commit=True)
        assert read(survivors, topic, "read_committed", b"end") == [b"end"] * 3
        assert read(survivors, topic, "read_uncommitted", b"end") == sorted([b"open", b"end"] * 3)
    finally:
        reference_cluster.restart(coordinator)


def _find_transaction_coordinator(bootstrap: str, transactional_id: str) -> int:
    with RawClient(bootstrap.split(",")[0]) as client:
        for _ in range(100):
            found = client.call("FindCoordinator", 4, key_type=1, coordinator_keys=[transactional_id]).coordinators[0]
            if found.error_code == 0:
                return int(found.node_id)
            time.sleep(0.2)
    raise AssertionError("no transaction coordinator")


def _describe(addresses: str, transactional_id: str):  # type: ignore[no-untyped-def]
    for address in addresses.split(","):
        try:
            with RawClient(address, timeout=5) as client:
                found = client.call("FindCoordinator", 4, key_type=1, coordinator_keys=[transactional_id]) \
                    .coordinators[0]
                if found.error_code != 0:
                    continue
            with RawClient(f"{found.host}:{found.port}", timeout=5) as coordinator:
                return coordinator.call("DescribeTransactions", 0, transactional_ids=[transactional_id]) \
                    .transaction_states[0]
        except OSError:
            continue
    return None


def test_kip_890_verification_asks_the_coordinator_on_another_node(reference_cluster: ReferenceCluster) -> None:
    """A transactional batch for a partition led by a node that is not the coordinator: the leader
    asks the coordinator (AddPartitionsToTxn v4+) before appending -- INVALID_TXN_STATE and nothing
    appended while the partition is not in the transaction; Produce v12 adds it instead."""
    from tests.reference.broker.test_transactions_wire import batch, init

    bootstrap = reference_cluster.bootstrap_servers
    topic = create_topic(bootstrap)
    led_by = leaders(bootstrap, topic)
    transactional_id = f"t-{uuid.uuid4().hex[:6]}"
    coordinator = _find_transaction_coordinator(bootstrap, transactional_id)
    stray, implicit = [p for p, leader in sorted(led_by.items()) if leader != coordinator][:2]
    with RawClient(reference_cluster.address(coordinator)) as at_coordinator:
        ids = init(at_coordinator, transactional_id)
        assert ids.error_code == 0
        pid, epoch = ids.producer_id, ids.producer_epoch
    with RawClient(reference_cluster.address(led_by[stray])) as leader:
        refused = _produce_to(leader, topic, stray, batch(pid, epoch, 0, [b"stray"]), transactional_id, 9)
        assert refused == 48
        assert _log_end(leader, topic, stray) == 0, "nothing appended"
    with RawClient(reference_cluster.address(coordinator)) as at_coordinator:
        assert _add(at_coordinator, transactional_id, pid, epoch, topic, stray) == 0
    with RawClient(reference_cluster.address(led_by[stray])) as leader:
        assert _produce_to(leader, topic, stray, batch(pid, epoch, 0, [b"in"]), transactional_id, 9) == 0
    with RawClient(reference_cluster.address(led_by[implicit])) as leader:
        assert _produce_to(leader, topic, implicit, batch(pid, epoch, 0, [b"v12"]), transactional_id, 12) == 0
    with RawClient(reference_cluster.address(coordinator)) as at_coordinator:
        described = at_coordinator.call("DescribeTransactions", 0, transactional_ids=[transactional_id]) \
            .transaction_states[0]
        assert sorted(p for t in described.topics for p in t.partitions) == sorted([stray, implicit])


def _produce_to(client: RawClient, topic: str, partition: int, records: bytes, transactional_id: str,
                version: int) -> int:
    from reference.protocol.apis import API_BY_NAME

    api = API_BY_NAME["Produce"].request
    for _ in range(50):  # NOT_ENOUGH_REPLICAS (19) while the coordinator's answer cannot be had yet
        body = client.call("Produce", version, transactional_id=transactional_id, acks=-1, timeout_ms=10000,
                           topic_data=[api.struct("TopicProduceData").make(name=topic, partition_data=[
                               api.struct("PartitionProduceData").make(index=partition, records=records)])])
        code = int(body.responses[0].partition_responses[0].error_code)
        if code != 19:
            return code
        time.sleep(0.2)
    return code


def _log_end(client: RawClient, topic: str, partition: int) -> int:
    from reference.protocol.apis import API_BY_NAME

    api = API_BY_NAME["ListOffsets"].request
    wanted = api.struct("ListOffsetsPartition").make(partition_index=partition, timestamp=-1)
    body = client.call("ListOffsets", 7, replica_id=-1, isolation_level=0,
                       topics=[api.struct("ListOffsetsTopic").make(name=topic, partitions=[wanted])])
    return int(body.topics[0].partitions[0].offset)


def _add(client: RawClient, transactional_id: str, pid: int, epoch: int, topic: str, partition: int) -> int:
    from reference.protocol.apis import API_BY_NAME

    entry = API_BY_NAME["AddPartitionsToTxn"].request.struct("AddPartitionsToTxnTopic")
    body = client.call("AddPartitionsToTxn", 3, v3_and_below_transactional_id=transactional_id,
                       v3_and_below_producer_id=pid, v3_and_below_producer_epoch=epoch,
                       v3_and_below_topics=[entry.make(name=topic, partitions=[partition])])
    return int(body.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code)


def _find_group_coordinator(bootstrap: str, group: str) -> int:
    with RawClient(bootstrap.split(",")[0]) as client:
        for _ in range(100):
            found = client.call("FindCoordinator", 4, key_type=0, coordinator_keys=[group]).coordinators[0]
            if found.error_code == 0:
                return int(found.node_id)
            time.sleep(0.2)
    raise AssertionError("no group coordinator")


def test_txn_offset_commit_v5_on_another_node_adds_the_offsets_partition_there(
        reference_cluster: ReferenceCluster) -> None:
    """Transaction version 2 (KIP-890 part 2): no AddOffsetsToTxn; the group coordinator adds the
    group's offsets partition to the transaction by asking the transaction coordinator, here on
    another node.  Without that add, EndTxn writes no marker to the offsets partition and the
    offsets stay pending for ever (a Java TransactionalMessageCopier hung on exactly that)."""
    from tests.reference.broker.test_transactions_wire import end, init, offset_fetch, txn_offset_commit

    bootstrap = reference_cluster.bootstrap_servers
    topic = create_topic(bootstrap)
    transactional_id = f"t-{uuid.uuid4().hex[:6]}"
    coordinator = _find_transaction_coordinator(bootstrap, transactional_id)
    group, group_node = "", coordinator
    while group_node == coordinator:  # a group whose offsets partition another node leads
        group = f"g-{uuid.uuid4().hex[:8]}"
        group_node = _find_group_coordinator(bootstrap, group)
    with RawClient(reference_cluster.address(coordinator)) as at_coordinator:
        ids = init(at_coordinator, transactional_id)
        assert ids.error_code == 0
        pid, epoch = ids.producer_id, ids.producer_epoch
    with RawClient(reference_cluster.address(group_node)) as at_group:
        for _ in range(50):  # NOT_ENOUGH_REPLICAS (19) while the coordinator's answer cannot be had yet
            committed = txn_offset_commit(at_group, 5, transactional_id, group, pid, epoch, topic, 7)
            if committed != 19:
                break
            time.sleep(0.2)
        assert committed == 0
        assert offset_fetch(at_group, group, topic, require_stable=True) == (-1, 88), "pending: UNSTABLE_OFFSET_COMMIT"
    with RawClient(reference_cluster.address(coordinator)) as at_coordinator:
        described = at_coordinator.call("DescribeTransactions", 0, transactional_ids=[transactional_id]) \
            .transaction_states[0]
        assert [t.topic for t in described.topics] == ["__consumer_offsets"], "the offsets partition was added"
        assert end(at_coordinator, transactional_id, pid, epoch, True, version=5).error_code == 0
    with RawClient(reference_cluster.address(group_node)) as at_group:
        for _ in range(150):
            if offset_fetch(at_group, group, topic, require_stable=True) == (7, 0):
                break
            time.sleep(0.1)
        assert offset_fetch(at_group, group, topic, require_stable=True) == (7, 0), "the commit marker reached it"


def test_transaction_requests_do_not_queue_behind_a_parked_follower_fetch(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A leader's AddPartitionsToTxn check goes to the coordinator on connections of its own (the
    transaction plane), as Kafka's AddPartitionsToTxnManager has its own network client.  On the
    replica fetchers' connection it would wait behind that node's parked Fetch: with
    ``replica.fetch.wait.max.ms`` at 60 s, past the check's own 30 s request timeout, so the Produce
    would be refused NOT_ENOUGH_REPLICAS (19) instead of appended."""
    from conformance.fixtures import free_port_block
    from tests.reference.broker.test_transactions_wire import batch, init

    cluster = ReferenceCluster(nodes=3, base_port=free_port_block(6), data_dir=tmp_path / "cluster",
                               config={"replica.fetch.wait.max.ms": "60000", "replica.lag.time.max.ms": "120000",
                                       "replica.socket.timeout.ms": "120000"})
    cluster.start(timeout=60)
    try:
        bootstrap = cluster.bootstrap_servers
        topic = create_topic(bootstrap)
        led_by = leaders(bootstrap, topic)
        transactional_id = f"t-{uuid.uuid4().hex[:6]}"
        coordinator = _find_transaction_coordinator(bootstrap, transactional_id)
        elsewhere = next(p for p, leader in sorted(led_by.items()) if leader != coordinator)
        with RawClient(cluster.address(coordinator)) as at_coordinator:
            ids = init(at_coordinator, transactional_id)
            assert ids.error_code == 0
            assert _add(at_coordinator, transactional_id, ids.producer_id, ids.producer_epoch, topic, elsewhere) == 0
        time.sleep(1)  # setup: the followers' Fetches of the new topic are now parked at its leaders
        with RawClient(cluster.address(led_by[elsewhere])) as leader:
            records = batch(ids.producer_id, ids.producer_epoch, 0, [b"in"])
            assert _produce_once(leader, topic, elsewhere, records, transactional_id) == (0, 0)
    finally:
        cluster.stop()


def _produce_once(client: RawClient, topic: str, partition: int, records: bytes,
                  transactional_id: str) -> tuple[int, int]:
    """One Produce v9 with acks=1 (the followers' Fetches of this new topic are still parked): the
    error code and base offset."""
    from reference.protocol.apis import API_BY_NAME

    api = API_BY_NAME["Produce"].request
    body = client.call("Produce", 9, transactional_id=transactional_id, acks=1, timeout_ms=10000,
                       topic_data=[api.struct("TopicProduceData").make(name=topic, partition_data=[
                           api.struct("PartitionProduceData").make(index=partition, records=records)])])
    answer = body.responses[0].partition_responses[0]
    return int(answer.error_code), int(answer.base_offset)
