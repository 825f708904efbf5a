"""Transactions on the wire: the same raw requests against the reference broker and Apache Kafka 4.3.1
(``kafka`` marker).  Every expected code below was read off Kafka first; the reference must give the
same.  Sequences whose answer depends on Kafka's asynchronous marker writing (an EndTxn retried
before the markers are written answers CONCURRENT_TRANSACTIONS on Kafka) are left out."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from reference.broker.embedded import EmbeddedBroker
from reference.protocol.apis import API_BY_NAME
from reference.protocol.schema import Data
from reference.records.batch import SimpleRecord, build_batch, iter_record_batches

from .conftest import RawClient

PRODUCE = API_BY_NAME["Produce"]
FETCH = API_BY_NAME["Fetch"]
LIST_OFFSETS = API_BY_NAME["ListOffsets"]
RETRIABLE_COORDINATOR = (14, 15, 16, 51)


@pytest.fixture(params=["refka", pytest.param("kafka", marks=[pytest.mark.kafka,
                                                             pytest.mark.xdist_group("apache-kafka-peer")])])
def client(request: pytest.FixtureRequest, broker: EmbeddedBroker) -> Iterator[RawClient]:
    if request.param == "kafka":
        host, port = request.getfixturevalue("kafka_peer")
        bootstrap = f"{host}:{port}"
    else:
        bootstrap = broker.bootstrap
    with RawClient(bootstrap) as raw:
        yield raw


def new_topic(client: RawClient) -> str:
    name = f"txn-{uuid.uuid4().hex[:10]}"
    assert client.create_topic(name).error_code == 0
    for _ in range(100):  # Kafka's new partition may need a moment to get its leader
        if list_offset(client, name, -1, 0)[0] == 0:
            return name
        time.sleep(0.1)
    raise AssertionError(f"{name} never got a leader")


def retry(call, attempts: int = 150):  # type: ignore[no-untyped-def]
    """Repeat while a coordinator is loading, moving or finishing markers (as clients do)."""
    for _ in range(attempts):
        answer = call()
        if answer.error_code not in RETRIABLE_COORDINATOR:
            return answer
        time.sleep(0.1)
    return answer


def init(client: RawClient, txn: str, timeout_ms: int = 60_000, pid: int = -1, epoch: int = -1,
         version: int = 5) -> Data:
    for _ in range(150):
        found = client.call("FindCoordinator", 4, key_type=1, coordinator_keys=[txn]).coordinators[0]
        if found.error_code == 0:
            break
        time.sleep(0.1)
    return retry(lambda: client.call("InitProducerId", version, transactional_id=txn, transaction_timeout_ms=timeout_ms,
                                     producer_id=pid, producer_epoch=epoch))


def producer(client: RawClient) -> tuple[str, int, int]:
    txn = f"t-{uuid.uuid4().hex[:10]}"
    answer = init(client, txn)
    assert answer.error_code == 0, answer
    return txn, answer.producer_id, answer.producer_epoch


def batch(pid: int, epoch: int, sequence: int, values: list[bytes], transactional: bool = True) -> bytes:
    now = int(time.time() * 1000)
    return build_batch([SimpleRecord(v, None, now) for v in values], producer_id=pid, producer_epoch=epoch,
                       base_sequence=sequence, transactional=transactional)


def produce(client: RawClient, topic: str, records: bytes, txn: str | None, version: int = 9) -> int:
    data = PRODUCE.request.struct("PartitionProduceData").make(index=0, records=records)
    body = client.call("Produce", version, transactional_id=txn, acks=-1, timeout_ms=10000, topic_data=[
        PRODUCE.request.struct("TopicProduceData").make(name=topic, partition_data=[data])])
    return int(body.responses[0].partition_responses[0].error_code)


def add(client: RawClient, txn: str, pid: int, epoch: int, topic: str, version: int = 3) -> list[int]:
    topic_entry = API_BY_NAME["AddPartitionsToTxn"].request.struct("AddPartitionsToTxnTopic")
    body = retry(lambda: _add_once(client, txn, pid, epoch, topic, version, topic_entry))
    return [p.partition_error_code for t in body.results_by_topic_v3_and_below for p in t.results_by_partition]


def _add_once(client: RawClient, txn: str, pid: int, epoch: int, topic: str, version: int, entry) -> Data:  # type: ignore[no-untyped-def]
    body = client.call("AddPartitionsToTxn", version, v3_and_below_transactional_id=txn, v3_and_below_producer_id=pid,
                       v3_and_below_producer_epoch=epoch, v3_and_below_topics=[entry.make(name=topic, partitions=[0])])
    body.error_code = body.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
    return body


def end(client: RawClient, txn: str, pid: int, epoch: int, commit: bool, version: int = 4) -> Data:
    return client.call("EndTxn", version, transactional_id=txn, producer_id=pid, producer_epoch=epoch,
                       committed=commit)


def list_offset(client: RawClient, topic: str, timestamp: int, isolation: int) -> tuple[int, int]:
    wanted = LIST_OFFSETS.request.struct("ListOffsetsPartition").make(partition_index=0, timestamp=timestamp)
    body = client.call("ListOffsets", 7, replica_id=-1, isolation_level=isolation, topics=[
        LIST_OFFSETS.request.struct("ListOffsetsTopic").make(name=topic, partitions=[wanted])])
    answer = body.topics[0].partitions[0]
    return answer.error_code, answer.offset


def fetch(client: RawClient, topic: str, isolation: int) -> Data:
    wanted = FETCH.request.struct("FetchPartition").make(partition=0, fetch_offset=0, partition_max_bytes=1 << 20)
    body = client.call("Fetch", 12, replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20,
                       isolation_level=isolation, session_id=0, session_epoch=-1,
                       topics=[FETCH.request.struct("FetchTopic").make(topic=topic, partitions=[wanted])])
    return body.responses[0].partitions[0]


def wait_for_stable(client: RawClient, topic: str) -> int:
    """Kafka writes markers after answering EndTxn: wait until the LSO reaches the log end."""
    for _ in range(150):
        end_offset = list_offset(client, topic, -1, 0)[1]
        if list_offset(client, topic, -1, 1)[1] == end_offset:
            return end_offset
        time.sleep(0.1)
    raise AssertionError("the last stable offset never reached the log end")


# -- InitProducerId and fencing ---------------------------------------------------------------------


def test_a_transaction_timeout_outside_the_bounds_is_invalid_transaction_timeout(client: RawClient) -> None:
    assert init(client, f"t-{uuid.uuid4().hex}", timeout_ms=0).error_code == 50
    assert init(client, f"t-{uuid.uuid4().hex}", timeout_ms=10**9).error_code == 50


def test_init_with_an_old_producer_epoch_is_fenced_by_version(client: RawClient) -> None:
    """KIP-360/588: PRODUCER_FENCED (90) from v4, INVALID_PRODUCER_EPOCH (47) before."""
    txn, pid, epoch = producer(client)
    bumped = init(client, txn, pid=pid, epoch=epoch)
    assert (bumped.error_code, bumped.producer_id, bumped.producer_epoch) == (0, pid, epoch + 1)
    again = init(client, txn)
    assert (again.error_code, again.producer_epoch) == (0, epoch + 2)
    assert init(client, txn, pid=pid, epoch=epoch).error_code == 90
    assert init(client, txn, pid=pid, epoch=epoch, version=3).error_code == 47


# -- AddPartitionsToTxn / EndTxn errors --------------------------------------------------------------


def test_add_partitions_identity_errors(client: RawClient) -> None:
    topic = new_topic(client)
    txn, pid, epoch = producer(client)
    assert add(client, txn, pid, epoch, "missing-" + topic) == [3]
    assert add(client, txn, pid + 1000, epoch, topic) == [49]
    assert add(client, "unknown-" + txn, pid, epoch, topic) == [49]
    assert add(client, txn, pid, epoch + 1, topic) == [90]
    assert add(client, txn, pid, epoch + 1, topic, version=1) == [47]


def test_ending_an_empty_transaction(client: RawClient) -> None:
    """Transaction version 1 (EndTxn v4): INVALID_TXN_STATE; version 2 (v5) may abort it, which
    bumps the epoch (KIP-890)."""
    txn, pid, epoch = producer(client)
    assert end(client, txn, pid, epoch, True).error_code == 48
    assert end(client, txn, pid, epoch, False).error_code == 48
    aborted = end(client, txn, pid, epoch, False, version=5)
    assert (aborted.error_code, aborted.producer_id, aborted.producer_epoch) == (0, pid, epoch + 1)


# -- Produce: KIP-890 verification ---------------------------------------------------------------------


def test_a_transactional_batch_without_a_transactional_id_is_refused(client: RawClient) -> None:
    topic = new_topic(client)
    _, pid, epoch = producer(client)
    assert produce(client, topic, batch(pid, epoch, 0, [b"x"]), None) == 53
    assert list_offset(client, topic, -1, 0) == (0, 0), "nothing appended"


@pytest.mark.parametrize(("version", "expected"), [(9, 48), (10, 48), (11, 120)])
def test_a_transactional_batch_outside_a_transaction_is_refused(client: RawClient, version: int,
                                                                expected: int) -> None:
    """KIP-890 part 1: INVALID_TXN_STATE, TRANSACTION_ABORTABLE from Produce v11; not appended."""
    topic = new_topic(client)
    txn, pid, epoch = producer(client)
    assert produce(client, topic, batch(pid, epoch, 0, [b"x"]), txn, version) == expected
    assert list_offset(client, topic, -1, 0) == (0, 0), "nothing appended"


def test_produce_v12_adds_the_partition_to_the_transaction(client: RawClient) -> None:
    """KIP-890 part 2 (transaction version 2): the leader adds the partition itself."""
    topic = new_topic(client)
    txn, pid, epoch = producer(client)
    assert produce(client, topic, batch(pid, epoch, 0, [b"x"]), txn, 12) == 0
    described = client.call("DescribeTransactions", 0, transactional_ids=[txn]).transaction_states[0]
    assert (described.transaction_state, [(t.topic, list(t.partitions)) for t in described.topics]) == \
        ("Ongoing", [(topic, [0])])


def test_a_plain_batch_inside_a_transaction_is_invalid_txn_state(client: RawClient) -> None:
    topic = new_topic(client)
    txn, pid, epoch = producer(client)
    assert add(client, txn, pid, epoch, topic) == [0]
    assert produce(client, topic, batch(pid, epoch, 0, [b"t"]), txn) == 0
    assert produce(client, topic, batch(pid, epoch, 1, [b"p"], transactional=False), txn) == 48


def test_a_late_write_of_a_finished_transaction_version_2_is_fenced(client: RawClient) -> None:
    topic = new_topic(client)
    txn, pid, epoch = producer(client)
    assert add(client, txn, pid, epoch, topic) == [0]
    assert produce(client, topic, batch(pid, epoch, 0, [b"t"]), txn) == 0
    ended = end(client, txn, pid, epoch, True, version=5)
    assert (ended.error_code, ended.producer_id, ended.producer_epoch) == (0, pid, epoch + 1)
    wait_for_stable(client, topic)
    assert produce(client, topic, batch(pid, epoch, 1, [b"late"]), txn) == 47
    assert end(client, txn, pid, epoch, False, version=5).error_code == 48


# -- the log: LSO, aborted transactions, read_committed -----------------------------------------------


def test_read_committed_stops_at_the_open_transaction_and_lists_aborted_ones(client: RawClient) -> None:
    topic = new_topic(client)
    txn, pid, epoch = producer(client)
    assert add(client, txn, pid, epoch, topic) == [0]
    assert produce(client, topic, batch(pid, epoch, 0, [b"a1", b"a2"]), txn) == 0  # offsets 0-1
    assert list_offset(client, topic, -1, 1) == (0, 0), "the open transaction holds the LSO at its first offset"
    assert list_offset(client, topic, -1, 0) == (0, 2)
    open_read = fetch(client, topic, 1)
    assert (open_read.last_stable_offset, open_read.records or b"") == (0, b"")
    assert end(client, txn, pid, epoch, False).error_code == 0  # ABORT marker at 2
    wait_for_stable(client, topic)
    assert add(client, txn, pid, epoch, topic) == [0]
    assert produce(client, topic, batch(pid, epoch, 2, [b"c1"]), txn) == 0  # offset 3
    assert end(client, txn, pid, epoch, True).error_code == 0  # COMMIT marker at 4
    assert wait_for_stable(client, topic) == 5
    committed = fetch(client, topic, 1)
    assert committed.last_stable_offset == committed.high_watermark == 5
    assert [(a.producer_id, a.first_offset) for a in committed.aborted_transactions] == [(pid, 0)]
    batches = list(iter_record_batches(committed.records))
    assert [(b.base_offset, b.is_transactional, b.is_control) for b in batches] == [
        (0, True, False), (2, True, True), (3, True, False), (4, True, True)], "the aborted records were written"
    uncommitted = fetch(client, topic, 0)
    assert uncommitted.aborted_transactions is None


def test_describe_producers_shows_the_open_transaction(client: RawClient) -> None:
    topic = new_topic(client)
    txn, pid, epoch = producer(client)
    assert add(client, txn, pid, epoch, topic) == [0]
    assert produce(client, topic, batch(pid, epoch, 0, [b"x"]), txn) == 0
    request = API_BY_NAME["DescribeProducers"].request.struct("TopicRequest").make(name=topic, partition_indexes=[0])
    answer = client.call("DescribeProducers", 0, topics=[request]).topics[0].partitions[0]
    assert answer.error_code == 0
    assert [(p.producer_id, p.producer_epoch, p.last_sequence, p.coordinator_epoch, p.current_txn_start_offset)
            for p in answer.active_producers] == [(pid, epoch, 0, -1, 0)]
    listed = client.call("ListTransactions", 1, state_filters=["Ongoing", "Bogus"], producer_id_filters=[pid],
                         duration_filter=-1)
    assert (listed.error_code, list(listed.unknown_state_filters)) == (0, ["Bogus"])
    assert [(s.transactional_id, s.producer_id, s.transaction_state) for s in listed.transaction_states] == [
        (txn, pid, "Ongoing")]
    described = client.call("DescribeTransactions", 0, transactional_ids=[txn, "missing-" + txn]).transaction_states
    assert [(d.error_code, d.transaction_state, d.producer_id, d.producer_epoch, d.transaction_timeout_ms)
            for d in described] == [(0, "Ongoing", pid, epoch, 60_000), (105, "", 0, 0, 0)]


# -- offsets in a transaction ------------------------------------------------------------------------


def txn_offset_commit(client: RawClient, version: int, txn: str, group: str, pid: int, epoch: int, topic: str,
                      offset: int, generation: int = -1, member: str = "") -> int:
    api = API_BY_NAME["TxnOffsetCommit"].request
    partition = api.struct("TxnOffsetCommitRequestPartition").make(partition_index=0, committed_offset=offset,
                                                                   committed_metadata="")
    body = client.call("TxnOffsetCommit", version, transactional_id=txn, group_id=group, producer_id=pid,
                       producer_epoch=epoch, generation_id=generation, member_id=member, group_instance_id=None,
                       topics=[api.struct("TxnOffsetCommitRequestTopic").make(name=topic, partitions=[partition])])
    return int(body.topics[0].partitions[0].error_code)


def offset_fetch(client: RawClient, group: str, topic: str, require_stable: bool) -> tuple[int, int]:
    api = API_BY_NAME["OffsetFetch"].request
    wanted = api.struct("OffsetFetchRequestGroup").make(group_id=group, topics=[
        api.struct("OffsetFetchRequestTopics").make(name=topic, partition_indexes=[0])])
    partition = client.call("OffsetFetch", 8, require_stable=require_stable, groups=[wanted]).groups[0].topics[0] \
        .partitions[0]
    return partition.committed_offset, partition.error_code


def test_transactional_offsets_are_pending_until_the_commit(client: RawClient) -> None:
    topic = new_topic(client)
    txn, pid, epoch = producer(client)
    group = f"g-{uuid.uuid4().hex[:8]}"
    client.await_coordinator(group)
    assert txn_offset_commit(client, 3, txn, group, pid, epoch, topic, 7) == 48, "not in the transaction"
    assert txn_offset_commit(client, 4, txn, group, pid, epoch, topic, 7) == 120
    assert client.call("AddOffsetsToTxn", 3, transactional_id=txn, producer_id=pid, producer_epoch=epoch,
                       group_id=group).error_code == 0
    assert txn_offset_commit(client, 3, txn, group, pid, epoch, topic, 7, generation=3, member="m") == 22, \
        "no group yet: ILLEGAL_GENERATION"
    assert txn_offset_commit(client, 5, txn, group, pid, epoch + 1, topic, 7) == 47
    assert txn_offset_commit(client, 3, txn, group, pid, epoch, topic, 7) == 0
    assert txn_offset_commit(client, 3, txn, group, pid, epoch, topic, 7, generation=3, member="m") == 25, \
        "the pending offsets made an empty group, which has no member m"
    assert offset_fetch(client, group, topic, require_stable=False) == (-1, 0)
    assert offset_fetch(client, group, topic, require_stable=True) == (-1, 88)
    assert end(client, txn, pid, epoch, True).error_code == 0
    for _ in range(150):
        if offset_fetch(client, group, topic, require_stable=True) == (7, 0):
            break
        time.sleep(0.1)
    assert offset_fetch(client, group, topic, require_stable=True) == (7, 0)


def test_txn_offset_commit_v5_adds_the_offsets_partition_itself(client: RawClient) -> None:
    topic = new_topic(client)
    txn, pid, epoch = producer(client)
    group = f"g-{uuid.uuid4().hex[:8]}"
    client.await_coordinator(group)
    assert txn_offset_commit(client, 5, txn, group, pid, epoch, topic, 3) == 0
    assert end(client, txn, pid, epoch, False).error_code == 0
    for _ in range(150):
        if offset_fetch(client, group, topic, require_stable=True)[1] == 0:
            break
        time.sleep(0.1)
    assert offset_fetch(client, group, topic, require_stable=True) == (-1, 0), "aborted offsets are dropped"
