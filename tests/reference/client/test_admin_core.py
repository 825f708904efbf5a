"""The admin operations without I/O: where each request goes and what each answer makes them do.

The operations are generators; :func:`run_scripted` answers their calls from a script, so routing
and retries are checked exactly, with no socket and no clock.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest

from reference.client.admin_core import AdminCore, Call, NewTopic, Outcome, run_scripted
from reference.client.admin_groups import decode_consumer_assignment, describe_group
from reference.client.cluster import BrokerAddress, TopicPartition
from reference.client.exceptions import NodeDisconnectedError
from reference.errors import Errors, KafkaError
from reference.protocol.apis import API_BY_KEY
from reference.protocol.schema import Data


def response(api_key: int, **fields: Any) -> Data:
    return API_BY_KEY[api_key].response.make(**fields)


def struct_of(api_key: int, struct_name: str, /, **fields: Any) -> Data:
    return API_BY_KEY[api_key].response.struct(struct_name).make(**fields)


def metadata(controller_id: int) -> Data:
    brokers = [struct_of(3, "MetadataResponseBroker", node_id=n, host="h", port=9000 + n, rack=None) for n in (1, 2, 3)]
    return response(3, brokers=brokers, controller_id=controller_id, cluster_id="c", topics=[])


def core() -> AdminCore:
    return AdminCore([BrokerAddress(-1, "bootstrap", 9092)], retry_backoff_ms=10)


def test_create_topics_goes_to_the_controller_and_follows_it_after_not_controller() -> None:
    admin = core()
    seen: list[tuple[int, int]] = []
    controllers = iter([2, 3])

    def answer(call: Call) -> Outcome:
        seen.append((call.api_key, call.node))
        if call.api_key == 3:
            return metadata(next(controllers))
        code = 41 if call.node == 2 else 0  # NOT_CONTROLLER from the stale one
        return response(19, topics=[struct_of(19, "CreatableTopicResult", name="t", error_code=code,
                                              num_partitions=1, replication_factor=1)])

    (created,) = run_scripted(admin.create_topics([NewTopic("t", 1, 1)]), answer)
    assert created.name == "t"
    assert seen == [(3, -1), (19, 2), (3, 1), (19, 3)]  # bootstrap, stale controller, a known broker, new controller


def test_any_broker_requests_move_on_after_a_broken_connection() -> None:
    admin = core()
    admin.metadata.update(metadata(1), 0)
    tried: list[int] = []

    def answer(call: Call) -> Outcome:
        tried.append(call.node)
        return NodeDisconnectedError(call.node, "gone") if call.node == 1 else metadata(2)

    assert run_scripted(admin.list_topics(), answer) == []
    assert tried == [1, 2]


def test_describe_group_finds_the_coordinator_again_after_not_coordinator() -> None:
    admin = core()
    coordinators = iter([1, 2])
    asked: list[tuple[int, int]] = []

    def answer(call: Call) -> Outcome:
        asked.append((call.api_key, call.node))
        if call.api_key == 10:
            node = next(coordinators)
            return response(10, error_code=0, node_id=node, host="h", port=9000 + node, coordinators=[])
        group = struct_of(15, "DescribedGroup", group_id="g", group_state="Empty", protocol_type="consumer",
                          protocol_data="", members=[], error_code=16 if call.node == 1 else 0)
        return response(15, groups=[group])

    description = run_scripted(describe_group(admin, "g"), answer)
    assert description.state == "Empty"
    assert asked == [(10, -1), (15, 1), (10, 1), (15, 2)]  # FindCoordinator again, at a known broker now


def test_an_unknown_group_is_group_id_not_found_whatever_the_version() -> None:
    """DescribeGroups v6 says GROUP_ID_NOT_FOUND; older versions describe the group as Dead."""
    for code, state in ((69, ""), (0, "Dead")):
        def answer(call: Call, code: int = code, state: str = state) -> Outcome:
            if call.api_key == 10:
                return response(10, error_code=0, node_id=1, host="h", port=1, coordinators=[])
            return response(15, groups=[struct_of(15, "DescribedGroup", group_id="g", error_code=code,
                                                  group_state=state, members=[])])

        with pytest.raises(KafkaError) as raised:
            run_scripted(describe_group(core(), "g"), answer)
        assert raised.value.error is Errors.GROUP_ID_NOT_FOUND


def consumer_assignment(version: int, topics: dict[str, list[int]], user_data: bytes | None) -> bytes:
    """ConsumerProtocolAssignment built field by field from its grammar."""
    out = struct.pack(">hi", version, len(topics))
    for topic, partitions in topics.items():
        out += struct.pack(">h", len(topic)) + topic.encode() + struct.pack(">i", len(partitions))
        out += b"".join(struct.pack(">i", p) for p in partitions)
    return out + (struct.pack(">i", -1) if user_data is None else struct.pack(">i", len(user_data)) + user_data)


@pytest.mark.parametrize("version", [0, 1, 3])
def test_member_assignments_are_decoded_from_the_consumer_protocol(version: int) -> None:
    data = consumer_assignment(version, {"b": [2, 0], "a": [1]}, b"sticky")
    assert decode_consumer_assignment(data) == (TopicPartition("a", 1), TopicPartition("b", 0), TopicPartition("b", 2))
    assert decode_consumer_assignment(b"") == ()
    assert decode_consumer_assignment(data[:9]) == ()  # cut short: undecodable, not a crash
