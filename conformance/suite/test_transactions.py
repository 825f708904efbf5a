"""Transactions through real clients (KIP-98): atomic commit and abort, offsets in a transaction, fencing.

Each test drives the client under test's own transactional producer (``transactional.id``,
init / begin / send / send offsets / commit / abort, see :class:`conformance.clients.TransactionalProducer`)
and judges the outcome twice: with that client's own consumer at ``isolation.level`` read_committed
and read_uncommitted, and with an *independent* reader -- another client library, never the one
under test -- so that a failure names its culprit.  Both readers seeing an aborted record means the
broker leaked it; only the client under test seeing it means the client filtered badly.

Every read_committed check comes after a read_uncommitted one that proves the aborted records were
really written (issue #11): a broker that never wrote them would otherwise pass.  Each scenario ends
with a committed transaction whose record is the last one written, so a reader knows how much to
read and every earlier transaction is decided (committed or aborted) before the readers start.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import pytest

from conformance import raw
from conformance.clients import Client, Message, TransactionalProducer, TransactionFenced, make_client

PARTITIONS = (0, 1)
READ_TIMEOUT = 20.0  # seconds a reader may wait for the records it expects (markers are asynchronous)


@pytest.fixture
def transactional(client, capabilities, lacks) -> Iterator[object]:
    """``transactional(transactional_id)``: the client under test's transactional producer, after
    init_transactions; every producer opened is closed at teardown."""
    capabilities.require_transactions()
    lacks("transactions")
    opened: list[TransactionalProducer] = []

    def open_producer(transactional_id: str) -> TransactionalProducer:
        producer = client.transactional_producer(transactional_id)
        opened.append(producer)
        return producer

    yield open_producer
    for producer in reversed(opened):
        producer.close()


@pytest.fixture
def independent(client, bootstrap) -> Iterator[Client]:
    """A reader from another client library than the one under test (librdkafka, or kafka-python
    when librdkafka is under test)."""
    reader = make_client("kafka-python" if client.name == "confluent-kafka" else "confluent-kafka", bootstrap)
    yield reader
    reader.close()


def _send_all(producer: TransactionalProducer, topic: str, records: Sequence[tuple[int, bytes]]) -> None:
    """Send (partition, value) records inside the open transaction; each must be acknowledged."""
    deliveries = producer.send(topic, [Message(None, value, partition=partition) for partition, value in records])
    assert all(d.error is None for d in deliveries), f"a transactional send failed: {deliveries}"


def _transaction(producer: TransactionalProducer, topic: str, records: Sequence[tuple[int, bytes]],
                 commit: bool) -> None:
    producer.begin()
    _send_all(producer, topic, records)
    producer.commit() if commit else producer.abort()


def _by_partition(messages: Sequence[Message]) -> dict[int, list[bytes | None]]:
    values: dict[int, list[bytes | None]] = {}
    for message in messages:
        values.setdefault(message.partition if message.partition is not None else -1, []).append(message.value)
    return values


def _check_reads(readers: Sequence[Client], topic: str, written: Mapping[int, list[bytes]],
                 committed: Mapping[int, list[bytes]]) -> None:
    """Each reader, read_uncommitted, sees ``written`` (every record, aborted ones included) and,
    read_committed, exactly ``committed``, per partition and in order."""
    for reader in readers:
        for level, expected in (("read_uncommitted", written), ("read_committed", committed)):
            partitions = sorted(expected)
            count = sum(len(values) for values in expected.values())
            observed = _by_partition(reader.consume(topic, partitions, count=count, timeout=READ_TIMEOUT,
                                                    isolation_level=level))
            assert observed == dict(expected), f"{reader.name} reading {level}: expected {dict(expected)}, " \
                f"observed {observed}"


# Orders of commits and aborts by one producer.  Each transaction is (commit?, values); its records
# alternate between the two partitions, so every transaction but the shortest spans both.
TRANSACTION_ORDERS = {
    "abort-then-commit": [(False, [b"a1", b"a2"]), (True, [b"c1", b"c2"])],
    "commit-then-abort": [(True, [b"c1", b"c2"]), (False, [b"a1", b"a2"])],
    "abort-abort-commit": [(False, [b"a1", b"a2", b"a3"]), (False, [b"a4"]), (True, [b"c1", b"c2"])],
    "commit-abort-commit": [(True, [b"c1"]), (False, [b"a1", b"a2"]), (True, [b"c2", b"c3"])],
}
END = [(0, b"end-0"), (1, b"end-1")]  # the closing committed transaction, on both partitions


@pytest.mark.parametrize("order", list(TRANSACTION_ORDERS))
def test_read_committed_sees_only_committed_transactions(client, transactional, independent, topics, order):
    """Transactions committed and aborted in several orders across two partitions: a
    read_uncommitted reader sees every record (so the aborted ones were written), a read_committed
    reader exactly the committed ones, in order -- with the client's own consumer and with an
    independent one."""
    topic = topics.create(partitions=2)
    producer = transactional(topics.name("txn"))
    written: dict[int, list[bytes]] = {p: [] for p in PARTITIONS}
    committed: dict[int, list[bytes]] = {p: [] for p in PARTITIONS}
    for commit, values in TRANSACTION_ORDERS[order] + [(True, [value for _, value in END])]:
        records = [(index % 2, value) for index, value in enumerate(values)]
        _transaction(producer, topic, records, commit)
        for partition, value in records:
            written[partition].append(value)
            if commit:
                committed[partition].append(value)
    _check_reads([client, independent], topic, written, committed)


def test_open_transaction_holds_back_read_committed(client, transactional, independent, topics, broker,
                                                    capabilities):
    """Producer A writes to both partitions and keeps its transaction open while producer B
    commits to both: the last stable offset (ListOffsets read_committed) stays at A's first record
    on each partition while A is open; after A aborts, read_committed readers see only B's records
    and read_uncommitted ones see A's too."""
    capabilities.require_api(raw.LIST_OFFSETS, 4)
    topic = topics.create(partitions=2)
    first, second = transactional(topics.name("txn-a")), transactional(topics.name("txn-b"))
    first.begin()
    _send_all(first, topic, [(0, b"a-0"), (1, b"a-1")])
    _transaction(second, topic, [(0, b"b-0"), (1, b"b-1")], commit=True)
    for partition in PARTITIONS:
        stable = raw.list_offset_isolated(broker.leader(topic, partition), topic, partition, raw.LATEST_TIMESTAMP,
                                          raw.READ_COMMITTED)
        assert (stable.error_code, stable.offset) == (0, 0), \
            f"partition {partition}: expected the open transaction's offset 0, observed {stable}"
    first.abort()
    _transaction(second, topic, END, commit=True)
    written = {p: [f"a-{p}".encode(), f"b-{p}".encode(), f"end-{p}".encode()] for p in PARTITIONS}
    committed = {p: [f"b-{p}".encode(), f"end-{p}".encode()] for p in PARTITIONS}
    _check_reads([client, independent], topic, written, committed)


def test_offsets_in_a_transaction_commit_only_with_it(client, transactional, independent, topics, bootstrap):
    """Consume-transform-produce: offsets added with send_offsets_to_transaction (AddOffsetsToTxn,
    TxnOffsetCommit) are not the group's committed offsets while the transaction is open, become
    them when it commits, and are discarded when it aborts -- the group keeps its previous offset
    (OffsetFetch) and the aborted output is hidden from read_committed readers."""
    source, sink, group = topics.create(), topics.create(), topics.name("group")
    inputs = [Message(None, f"in-{i}".encode(), partition=0) for i in range(6)]
    assert all(d.error is None for d in client.produce(source, inputs)), "could not write the input records"
    consumed = client.consume(source, [0], count=len(inputs), timeout=READ_TIMEOUT)
    assert [m.value for m in consumed] == [m.value for m in inputs]
    outputs = [(0, (m.value or b"").replace(b"in", b"out")) for m in consumed]
    producer = transactional(topics.name("txn"))

    producer.begin()
    _send_all(producer, sink, outputs[:3])
    producer.send_offsets(group, {(source, 0): 3})
    pending = raw.committed_offset(bootstrap, group, source)
    assert (pending.error_code, pending.offset) == (0, -1), \
        f"offsets of an open transaction must not be committed yet: observed {pending}"
    producer.commit()
    after_commit = raw.committed_offset_once(bootstrap, group, source, 3, READ_TIMEOUT)
    assert (after_commit.error_code, after_commit.offset) == (0, 3), \
        f"expected offset 3 committed with the transaction, observed {after_commit}"

    producer.begin()
    _send_all(producer, sink, outputs[3:])
    producer.send_offsets(group, {(source, 0): 6})
    producer.abort()
    # The next transaction can only add a partition once the abort's markers are all written
    # (CONCURRENT_TRANSACTIONS until then), __consumer_offsets' included; its record read
    # read_committed below therefore means the abort is complete.
    _transaction(producer, sink, [(0, b"end")], commit=True)
    written = {0: [value for _, value in outputs] + [b"end"]}
    _check_reads([client, independent], sink, written, {0: [value for _, value in outputs[:3]] + [b"end"]})
    after_abort = raw.committed_offset(bootstrap, group, source)
    assert (after_abort.error_code, after_abort.offset) == (0, 3), \
        f"the aborted transaction's offset 6 must be discarded, the group keeping 3: observed {after_abort}"


def test_newer_producer_fences_older(client, transactional, independent, topics):
    """Fencing (transactional.id): a second producer's init_transactions bumps the epoch and aborts
    the first producer's open transaction; the first producer's commit then fails as fenced
    (PRODUCER_FENCED), its record stays in the log (read_uncommitted) but is aborted
    (read_committed), and the second producer commits."""
    topic = topics.create()
    transactional_id = topics.name("txn")
    first = transactional(transactional_id)
    first.begin()
    _send_all(first, topic, [(0, b"from-first")])
    second = transactional(transactional_id)
    with pytest.raises(TransactionFenced):
        first.commit()
    _transaction(second, topic, [(0, b"from-second")], commit=True)
    _check_reads([client, independent], topic, {0: [b"from-first", b"from-second"]}, {0: [b"from-second"]})
