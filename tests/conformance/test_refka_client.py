"""The ``refka`` adapter: refka's own client as one of the conformance kit's clients.

These check the adapter itself against the embedded reference broker -- that it is registered,
states only what the client truly lacks, and reports what the client saw in the kit's plain data
(offsets on delivery, binary keys, null header values, the broker's error code on a failed
delivery, a group member's assignment).  The suite then runs every conformance test through it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from conformance.clients import CLIENT_NAMES, DEFAULT_CLIENTS, Message, RefkaClient, make_client
from reference.broker.embedded import EmbeddedBroker
from reference.client.admin import Admin
from reference.client.admin_core import NewTopic
from reference.errors import Errors

_names = itertools.count()


@pytest.fixture(scope="module")
def bootstrap() -> Iterator[str]:
    with EmbeddedBroker(config={"group.initial.rebalance.delay.ms": "0"}) as broker:
        yield broker.bootstrap


def _topic(bootstrap: str, partitions: int = 2, configs: dict[str, str] | None = None) -> str:
    name = f"refka-adapter-{next(_names)}"
    with Admin({"bootstrap.servers": bootstrap}) as admin:
        admin.create_topics([NewTopic(name, partitions, 1, configs or {})])
    return name


def test_refka_is_a_client_of_the_kit_and_lacks_only_acks0_offsets() -> None:
    assert "refka" in CLIENT_NAMES and "refka" in DEFAULT_CLIENTS
    client = make_client("refka", "127.0.0.1:1")
    assert isinstance(client, RefkaClient)
    assert client.lacks == {"acks0_offset"}  # acks=0 is answered by no offset, for every client


def test_binary_keys_null_header_values_and_offsets_round_trip(bootstrap: str) -> None:
    topic = _topic(bootstrap)
    client = RefkaClient(bootstrap)
    sent = [Message(b"\x00\xff", b"\x80\x00binary", [("h", None), ("h", b"\x01")], partition=1),
            Message(None, None, partition=1)]
    deliveries = client.produce(topic, sent)
    assert [(d.partition, d.offset, d.error) for d in deliveries] == [(1, 0, None), (1, 1, None)]
    received = client.consume(topic, [0, 1], count=2)
    assert [(m.key, m.value, m.headers, m.partition, m.offset) for m in received] == [
        (b"\x00\xff", b"\x80\x00binary", [("h", None), ("h", b"\x01")], 1, 0), (None, None, [], 1, 1)]


def test_a_broker_error_reaches_the_delivery_with_its_code(bootstrap: str) -> None:
    topic = _topic(bootstrap, 1, {"max.message.bytes": "2048"})
    (delivery,) = RefkaClient(bootstrap).produce(topic, [Message(None, b"x" * 8000, partition=0)],
                                                 config={"max.request.size": 10_000_000}, timeout=10)
    assert delivery.error_code == Errors.MESSAGE_TOO_LARGE.code, delivery


def test_a_group_member_is_assigned_every_partition_and_commits(bootstrap: str) -> None:
    topic = _topic(bootstrap)
    client = RefkaClient(bootstrap)
    client.produce(topic, [Message(None, b"a", partition=0), Message(None, b"b", partition=1)])
    member = client.group_member(topic, f"{topic}-group")
    try:
        received: list[Message] = []
        for _ in range(150):
            received.extend(member.poll(0.2))
            if len(received) == 2:
                break
        assert sorted(m.value or b"" for m in received) == [b"a", b"b"]
        assert member.assignment() == {0, 1}
        member.commit()
    finally:
        member.close()
    with Admin({"bootstrap.servers": bootstrap}) as admin:
        committed = admin.committed_offsets(f"{topic}-group")
    assert {tp.partition: offset for tp, offset in committed.items()} == {0: 1, 1: 1}
