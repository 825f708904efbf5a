"""The sans-IO client connection, driven by scripted bytes: what it sends, what it makes of answers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference.client.connection import (
    INT32_MAX,
    INT32_MIN,
    TRANSITIONS,
    Event,
    KafkaConnection,
    RequestFailed,
    Response,
    State,
)
from reference.client.exceptions import (
    ConnectionStateError,
    LocalProtocolError,
    RemoteProtocolError,
    RequestTimedOutError,
    UnsupportedVersionError,
    error_from_code,
    raise_for_error,
)
from reference.errors import Errors, KafkaError, by_code
from reference.protocol.apis import API_BY_KEY
from reference.protocol.frames import SIZE_PREFIX, Request, decode_request, encode_response
from reference.protocol.schema import Data

PRODUCE, FETCH, METADATA, API_VERSIONS, DESCRIBE_CLUSTER = 0, 1, 3, 18, 60
# A broker's ApiVersions list, Kafka 4.x-like, used unless a test needs another.
BROKER_RANGES = {PRODUCE: (3, 12), FETCH: (4, 17), METADATA: (0, 12), API_VERSIONS: (0, 4)}


def sent_requests(data: bytes) -> list[Request]:
    """Split the client's outgoing bytes into frames and decode each as the broker would."""
    requests = []
    while data:
        (size,) = SIZE_PREFIX.unpack_from(data)
        requests.append(decode_request(data[4:4 + size]))
        data = data[4 + size:]
    return requests


def api_versions_answer(correlation_id: int, version: int, ranges: dict[int, tuple[int, int]],
                        error: int = 0) -> bytes:
    api = API_BY_KEY[API_VERSIONS]
    entry = api.response.struct("ApiVersion")
    keys = [entry.make(api_key=k, min_version=low, max_version=high) for k, (low, high) in sorted(ranges.items())]
    return encode_response(api, version, correlation_id, api.response.make(error_code=error, api_keys=keys))


def negotiated(ranges: dict[int, tuple[int, int]] = BROKER_RANGES, **kwargs: int) -> KafkaConnection:
    """A connection that has finished negotiation against a broker with ``ranges``."""
    connection = KafkaConnection(**kwargs)  # type: ignore[arg-type]
    (hello,) = sent_requests(connection.data_to_send())
    assert connection.receive_data(api_versions_answer(hello.header.correlation_id, hello.version, ranges)) == []
    assert connection.state is State.READY
    return connection


def metadata_request() -> Data:
    return API_BY_KEY[METADATA].request.make(topics=None)


def metadata_answer(correlation_id: int, version: int, cluster_id: str = "c") -> bytes:
    api = API_BY_KEY[METADATA]
    return encode_response(api, version, correlation_id, api.response.make(cluster_id=cluster_id))


def acks_zero_produce() -> Data:
    return API_BY_KEY[PRODUCE].request.make(acks=0, timeout_ms=1000, topic_data=[])


# -- negotiation ----------------------------------------------------------------------------------


def test_a_connection_opens_with_api_versions_at_the_newest_version_refka_knows() -> None:
    connection = KafkaConnection(client_id="node-1")
    (hello,) = sent_requests(connection.data_to_send())
    assert (hello.api.key, hello.version) == (API_VERSIONS, API_BY_KEY[API_VERSIONS].request.valid.high)
    assert hello.header.client_id == "node-1"
    assert hello.body.client_software_name == "refka"
    assert connection.state is State.NEGOTIATING
    assert [(r.api_key, r.internal) for r in connection.in_flight] == [(API_VERSIONS, True)]


def test_a_request_without_version_goes_at_the_highest_version_both_sides_serve() -> None:
    connection = negotiated({METADATA: (0, 9), FETCH: (4, 99), API_VERSIONS: (0, 4)})
    connection.send(METADATA, metadata_request())
    connection.send(FETCH, API_BY_KEY[FETCH].request.make())
    metadata, fetch = sent_requests(connection.data_to_send())
    assert metadata.version == 9  # the broker's highest
    assert fetch.version == API_BY_KEY[FETCH].request.valid.high  # refka's highest (18)
    assert connection.broker_versions is not None and connection.broker_versions[METADATA] == (0, 9)


def test_requests_submitted_while_negotiating_are_held_then_sent_in_submission_order() -> None:
    connection = KafkaConnection()
    (hello,) = sent_requests(connection.data_to_send())
    first = connection.send(METADATA, metadata_request())
    second = connection.send(DESCRIBE_CLUSTER, API_BY_KEY[DESCRIBE_CLUSTER].request.make(), version=0)
    third = connection.send(METADATA, metadata_request(), version=4)
    assert connection.data_to_send() == b""  # nothing leaves before the broker's ranges are known
    assert [r.correlation_id for r in connection.held] == [first, second, third]

    ranges = dict(BROKER_RANGES) | {DESCRIBE_CLUSTER: (0, 2)}
    connection.receive_data(api_versions_answer(hello.header.correlation_id, hello.version, ranges))
    released = sent_requests(connection.data_to_send())
    assert [(r.header.correlation_id, r.api.key, r.version) for r in released] == [
        (first, METADATA, 12), (second, DESCRIBE_CLUSTER, 0), (third, METADATA, 4)]
    assert [r.correlation_id for r in connection.in_flight] == [first, second, third]


def test_kip_511_an_unsupported_api_versions_version_is_retried_at_the_brokers_highest() -> None:
    connection = KafkaConnection()
    (hello,) = sent_requests(connection.data_to_send())
    held = connection.send(METADATA, metadata_request())
    # An older broker knows ApiVersions up to v2: it answers in a v0 body with error 35 and its list.
    refusal = api_versions_answer(hello.header.correlation_id, 0, {API_VERSIONS: (0, 2), METADATA: (0, 8)},
                                  error=Errors.UNSUPPORTED_VERSION.code)
    assert connection.receive_data(refusal) == []
    (retry,) = sent_requests(connection.data_to_send())
    assert (retry.api.key, retry.version) == (API_VERSIONS, 2)
    assert connection.state is State.NEGOTIATING

    connection.receive_data(api_versions_answer(retry.header.correlation_id, 2, {API_VERSIONS: (0, 2), METADATA: (0, 8)}))
    assert connection.state is State.READY
    (metadata,) = sent_requests(connection.data_to_send())
    assert (metadata.header.correlation_id, metadata.version) == (held, 8)


def test_kip_511_a_refusal_without_api_versions_in_the_list_retries_at_v0() -> None:
    connection = KafkaConnection()
    (hello,) = sent_requests(connection.data_to_send())
    connection.receive_data(api_versions_answer(hello.header.correlation_id, 0, {}, error=Errors.UNSUPPORTED_VERSION.code))
    (retry,) = sent_requests(connection.data_to_send())
    assert retry.version == 0


def test_a_refusal_that_cannot_lead_lower_ends_the_connection_with_unsupported_version() -> None:
    connection = KafkaConnection()
    (hello,) = sent_requests(connection.data_to_send())
    # The broker refuses v4 yet claims to serve up to v4: retrying would loop.
    bogus = api_versions_answer(hello.header.correlation_id, 0, {API_VERSIONS: (0, 4)},
                                error=Errors.UNSUPPORTED_VERSION.code)
    with pytest.raises(UnsupportedVersionError):
        connection.receive_data(bogus)
    assert connection.state is State.ERROR


def test_an_api_versions_error_other_than_unsupported_version_ends_the_connection() -> None:
    connection = KafkaConnection()
    (hello,) = sent_requests(connection.data_to_send())
    answer = api_versions_answer(hello.header.correlation_id, hello.version, {}, error=Errors.INVALID_REQUEST.code)
    with pytest.raises(KafkaError) as raised:
        connection.receive_data(answer)
    assert raised.value.error is Errors.INVALID_REQUEST
    assert connection.state is State.ERROR


# -- versions -------------------------------------------------------------------------------------


def test_an_explicit_version_outside_the_brokers_range_is_a_typed_unsupported_version_error() -> None:
    connection = negotiated()
    with pytest.raises(UnsupportedVersionError) as raised:
        connection.send(METADATA, metadata_request(), version=13)  # refka knows 13, the broker 0-12
    assert raised.value.error is Errors.UNSUPPORTED_VERSION
    assert isinstance(raised.value, KafkaError)
    assert connection.data_to_send() == b"" and connection.in_flight == ()
    assert connection.state is State.READY  # refusing one request does not end the connection


def test_a_version_refka_does_not_know_is_refused_even_before_negotiation() -> None:
    connection = KafkaConnection()
    with pytest.raises(UnsupportedVersionError):
        connection.send(METADATA, metadata_request(), version=99)


def test_an_api_the_broker_does_not_list_or_no_common_version_is_unsupported() -> None:
    connection = negotiated({METADATA: (20, 30), API_VERSIONS: (0, 4)})
    with pytest.raises(UnsupportedVersionError, match="does not serve DescribeCluster"):
        connection.send(DESCRIBE_CLUSTER, API_BY_KEY[DESCRIBE_CLUSTER].request.make())
    with pytest.raises(UnsupportedVersionError, match="Metadata"):
        connection.send(METADATA, metadata_request())


def test_a_held_request_with_no_usable_version_comes_back_as_a_failure_event() -> None:
    connection = KafkaConnection()
    (hello,) = sent_requests(connection.data_to_send())
    doomed = connection.send(METADATA, metadata_request(), version=13)
    fine = connection.send(METADATA, metadata_request())
    events = connection.receive_data(api_versions_answer(hello.header.correlation_id, hello.version, BROKER_RANGES))
    assert len(events) == 1 and isinstance(events[0], RequestFailed)
    assert events[0].correlation_id == doomed and isinstance(events[0].error, UnsupportedVersionError)
    assert [r.header.correlation_id for r in sent_requests(connection.data_to_send())] == [fine]


def test_flexible_versions_use_request_header_v2_and_older_ones_v1() -> None:
    connection = negotiated()
    all_topics_empty = API_BY_KEY[METADATA].request.make(topics=[])  # compact array: first byte 1
    connection.send(METADATA, all_topics_empty, version=12)
    connection.send(METADATA, all_topics_empty, version=8)
    data = connection.data_to_send()
    flexible, classic = sent_requests(data)
    # api_key, api_version, correlation_id, client_id (INT16-prefixed in both header versions) ...
    header_v1_size = 2 + 2 + 4 + 2 + len("refka")
    first_frame = data[4:]
    assert first_frame[header_v1_size] == 0  # ... then header v2's empty tagged-field section
    assert first_frame[header_v1_size + 1] == 1  # ... then the v12 body: topics, compact length 0 + 1
    (first_size,) = SIZE_PREFIX.unpack_from(data)
    second_frame = data[4 + first_size + 4:]
    assert second_frame[header_v1_size:header_v1_size + 4] == b"\x00\x00\x00\x00"  # v8 body: INT32 count 0
    assert (flexible.version, classic.version) == (12, 8)
    # Both answers decode, with response header v1 and v0 respectively.
    events = connection.receive_data(metadata_answer(flexible.header.correlation_id, 12)
                                     + metadata_answer(classic.header.correlation_id, 8))
    assert [(e.correlation_id, e.version) for e in events if isinstance(e, Response)] == [(flexible.header.correlation_id, 12),
                                                               (classic.header.correlation_id, 8)]


# -- framing --------------------------------------------------------------------------------------


def _two_metadata_exchanges() -> tuple[KafkaConnection, bytes, list[int]]:
    connection = negotiated()
    ids = [connection.send(METADATA, metadata_request()), connection.send(METADATA, metadata_request())]
    connection.data_to_send()
    stream = metadata_answer(ids[0], 12, "first") + metadata_answer(ids[1], 12, "second")
    return connection, stream, ids


def test_an_answer_delivered_byte_by_byte_completes_on_its_last_byte() -> None:
    connection, stream, ids = _two_metadata_exchanges()
    first_length = len(metadata_answer(ids[0], 12, "first"))
    events: list[object] = []
    for position in range(len(stream)):
        events.extend(connection.receive_data(stream[position:position + 1]))
        if position == first_length - 2:
            assert events == []  # one byte short of the first frame
        if position == first_length - 1:
            assert len(events) == 1
    assert [(e.correlation_id, e.body.cluster_id) for e in events] == [(ids[0], "first"), (ids[1], "second")]  # type: ignore[attr-defined]


def test_several_frames_in_one_chunk_all_come_out_in_order() -> None:
    connection, stream, ids = _two_metadata_exchanges()
    events = connection.receive_data(stream)
    assert all(isinstance(e, Response) for e in events)
    assert [(e.correlation_id, e.api_key, e.body.cluster_id) for e in events] == [  # type: ignore[union-attr]
        (ids[0], METADATA, "first"), (ids[1], METADATA, "second")]
    assert connection.in_flight == ()


@given(st.data())
def test_any_chunking_of_the_same_bytes_gives_the_same_responses(data: st.DataObject) -> None:
    connection, stream, _ = _two_metadata_exchanges()
    cuts = sorted(data.draw(st.sets(st.integers(1, len(stream) - 1), max_size=12)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    events = [event for piece in pieces for event in connection.receive_data(piece)]

    whole, same_stream, _ = _two_metadata_exchanges()
    assert same_stream == stream
    assert events == whole.receive_data(stream)


def test_an_answer_that_is_not_for_the_oldest_request_in_flight_is_a_remote_protocol_error() -> None:
    connection, _, ids = _two_metadata_exchanges()
    with pytest.raises(RemoteProtocolError, match="oldest"):
        connection.receive_data(metadata_answer(ids[1], 12))
    assert connection.state is State.ERROR


def test_answers_decoded_before_a_fault_in_the_same_bytes_are_kept_on_the_error() -> None:
    connection, _, ids = _two_metadata_exchanges()
    with pytest.raises(RemoteProtocolError) as raised:
        connection.receive_data(metadata_answer(ids[0], 12, "good") + metadata_answer(ids[0], 12))
    assert [(r.correlation_id, r.body.cluster_id) for r in raised.value.responses] == [(ids[0], "good")]


@pytest.mark.parametrize("size", [-1, 1001])
def test_a_frame_size_below_zero_or_above_the_limit_is_refused_before_its_body(size: int) -> None:
    connection = negotiated(max_response_bytes=1000)
    connection.send(METADATA, metadata_request())
    with pytest.raises(RemoteProtocolError, match="size"):
        connection.receive_data(SIZE_PREFIX.pack(size))  # only the size: nothing else is awaited
    assert connection.state is State.ERROR


def test_a_body_that_does_not_decode_is_a_remote_protocol_error() -> None:
    connection = negotiated()
    correlation_id = connection.send(METADATA, metadata_request())
    truncated = metadata_answer(correlation_id, 12)[4:-3]
    with pytest.raises(RemoteProtocolError, match="does not decode"):
        connection.receive_data(SIZE_PREFIX.pack(len(truncated)) + truncated)


def test_an_answer_with_nothing_in_flight_is_a_remote_protocol_error() -> None:
    connection = negotiated()
    with pytest.raises(RemoteProtocolError, match="nothing in flight"):
        connection.receive_data(metadata_answer(7, 12))


# -- requests without answers, ids, states ------------------------------------------------------


def test_produce_with_acks_zero_is_sent_but_never_in_flight() -> None:
    connection = negotiated()
    correlation_id = connection.send(PRODUCE, acks_zero_produce(), expect_response=False)
    (produce,) = sent_requests(connection.data_to_send())
    assert (produce.header.correlation_id, produce.body.acks) == (correlation_id, 0)
    assert connection.in_flight == ()
    # The next answer belongs to the next request, not to the produce.
    following = connection.send(METADATA, metadata_request())
    (event,) = connection.receive_data(metadata_answer(following, 12))
    assert event.correlation_id == following


def test_expect_response_must_match_whether_kafka_answers() -> None:
    connection = negotiated()
    with pytest.raises(LocalProtocolError):
        connection.send(PRODUCE, acks_zero_produce())  # would wait forever for an answer
    with pytest.raises(LocalProtocolError):
        connection.send(METADATA, metadata_request(), expect_response=False)


def test_correlation_ids_increase_and_wrap_around_the_int32_range() -> None:
    connection = negotiated(first_correlation_id=INT32_MAX - 1)  # ApiVersions took INT32_MAX - 1
    ids = [connection.send(METADATA, metadata_request()) for _ in range(3)]
    assert ids == [INT32_MAX, INT32_MIN, INT32_MIN + 1]
    assert [r.header.correlation_id for r in sent_requests(connection.data_to_send())] == ids


def test_after_an_error_every_operation_but_close_is_refused_naming_state_and_event() -> None:
    connection, _, ids = _two_metadata_exchanges()
    with pytest.raises(RemoteProtocolError):
        connection.receive_data(metadata_answer(ids[1], 12))
    with pytest.raises(ConnectionStateError) as raised:
        connection.send(METADATA, metadata_request())
    assert (raised.value.state, raised.value.event) == (State.ERROR, Event.SEND)
    assert "ERROR" in str(raised.value) and "send" in str(raised.value)
    connection.close()
    assert connection.state is State.CLOSED


def test_close_lists_the_requests_that_will_never_be_answered() -> None:
    connection = KafkaConnection()
    (hello,) = sent_requests(connection.data_to_send())
    held = connection.send(METADATA, metadata_request())
    assert [r.correlation_id for r in connection.close()] == [held]  # ApiVersions is the connection's own
    with pytest.raises(ConnectionStateError):
        connection.receive_data(b"")

    ready, _, ids = _two_metadata_exchanges()
    assert [r.correlation_id for r in ready.close()] == ids


def test_the_state_table_allows_only_close_after_an_error() -> None:
    assert set(TRANSITIONS[State.ERROR]) == {Event.CLOSE}
    assert set(TRANSITIONS[State.CLOSED]) == {Event.CLOSE}
    assert TRANSITIONS[State.NEGOTIATING][Event.NEGOTIATED] is State.READY


# -- error codes ----------------------------------------------------------------------------------


def test_every_registry_code_maps_to_a_kafka_error_carrying_the_registry_entry() -> None:
    assert error_from_code(Errors.NONE.code) is None
    for code, entry in by_code.items():
        if code == 0:
            continue
        error = error_from_code(code, "detail")
        assert isinstance(error, KafkaError)
        assert error.error is entry and error.message == "detail"
    assert isinstance(error_from_code(35), UnsupportedVersionError)
    assert isinstance(error_from_code(7), RequestTimedOutError)
    not_leader = error_from_code(6)
    assert not_leader is not None and not_leader.error.retriable


def test_an_unknown_code_still_gives_a_kafka_error_and_raise_for_error_raises_it() -> None:
    unknown = error_from_code(9999)
    assert isinstance(unknown, KafkaError) and unknown.error.code == 9999 and not unknown.error.retriable
    raise_for_error(0)
    with pytest.raises(KafkaError) as raised:
        raise_for_error(Errors.NOT_LEADER_OR_FOLLOWER.code, "moved")
    assert raised.value.error is Errors.NOT_LEADER_OR_FOLLOWER
