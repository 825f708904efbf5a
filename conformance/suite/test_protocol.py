"""Protocol robustness: what a broker does with requests it cannot serve (checked on the wire)."""

from __future__ import annotations

import struct

import pytest

from conformance import raw, speak
from reference.errors import Errors

# Versions that a record batch v2 client needs (protocol guide; librdkafka and Kafka 4 clients):
# Produce v3 and Fetch v4 carry record batches v2, ListOffsets v1 offsets by timestamp.
RECORD_BATCH_V2_VERSIONS = {0: 3, 1: 4, 2: 1, 3: 0, 18: 0}


def test_api_versions_v0_lists_core_apis(broker):
    """KIP-35 ApiVersions: every broker answers v0 with error NONE and its API ranges; Produce,
    Fetch, ListOffsets, Metadata and ApiVersions itself are always present, with ranges that hold
    the versions a record batch v2 client uses (Produce v3, Fetch v4, ListOffsets v1); ApiVersions'
    own range starts at v0 (the request just answered) and every version in it is answered with
    error NONE and the same ranges."""
    versions = raw.api_versions(broker.connect(), 0)
    assert versions.error_code == 0
    ranges = {key: (r.min_version, r.max_version) for key, r in versions.apis.items()}
    assert all(low <= high for low, high in ranges.values()), f"inverted ranges in {ranges}"
    for api_key, needed in RECORD_BATCH_V2_VERSIONS.items():
        assert api_key in ranges, f"API {api_key} missing from ApiVersions"
        assert versions.supports(api_key, needed), f"API {api_key} range {ranges[api_key]} lacks v{needed}"
    low, high = ranges[raw.API_VERSIONS]
    assert low == 0, f"ApiVersions was answered at v0 but advertises {ranges[raw.API_VERSIONS]}"
    for version in range(low, high + 1):
        answered = raw.api_versions(broker.connect(), version)
        assert answered.error_code == 0, f"ApiVersions v{version}: error {answered.error_code}"
        assert {k: (r.min_version, r.max_version) for k, r in answered.apis.items()} == ranges, \
            f"ApiVersions v{version} advertises other ranges than v0"


def test_api_versions_flexible_v3(broker, capabilities):
    """KIP-511: ApiVersions v3 (flexible request, compact arrays) carries the same API ranges, and
    the response uses response header v0 even though the request used header v2."""
    capabilities.require_api(18, 3)
    versions = raw.api_versions(broker.connect(), 3)
    assert versions.error_code == 0
    assert {k: (v.min_version, v.max_version) for k, v in versions.apis.items()} == \
        {k: (v.min_version, v.max_version) for k, v in capabilities.api_versions.apis.items()}


def test_api_versions_fallback_on_unsupported_version(broker):
    """KIP-511: an ApiVersions request at a version the broker does not know is answered with a v0
    body carrying UNSUPPORTED_VERSION (35) and the API list, so the client can retry lower."""
    result = raw.api_versions_raw_version(broker.connect(), 999)
    assert result.error_code == Errors.UNSUPPORTED_VERSION.code, f"expected 35, observed {result.error_code}"
    assert 18 in result.apis, "the fallback answer must still list ApiVersions' own range"


def test_unsupported_version_of_other_api_closes_connection(broker, capabilities):
    """A request whose version is outside the advertised range (here Metadata v999) is not
    answered: Kafka closes the connection (SocketServer / RequestContext: InvalidRequestException)."""
    conn = broker.connect(timeout=5)
    conn.send(3, 999, b"", flexible=True)
    with pytest.raises((raw.ConnectionClosed, TimeoutError)) as outcome:
        conn.receive(conn.correlation_id, flexible_header=True)
    assert outcome.type is raw.ConnectionClosed, "expected the connection to be closed, observed a timeout"


def test_unknown_api_key_closes_connection(broker):
    """An unknown API key (here 9999) cannot even be parsed as a request header: Kafka closes the
    connection without a response; a new connection works normally."""
    conn = broker.connect(timeout=5)
    conn.send(9999, 0, b"", flexible=False)
    with pytest.raises((raw.ConnectionClosed, TimeoutError)) as outcome:
        conn.receive(conn.correlation_id, flexible_header=False)
    assert outcome.type is raw.ConnectionClosed, "expected the connection to be closed, observed a timeout"
    assert raw.api_versions(broker.connect(), 0).error_code == 0


def test_pipelined_requests_answered_in_order(broker):
    """Protocol guide, "Network": the server answers requests on one connection in the order they
    were sent; correlation ids let the client match them."""
    conn = broker.connect()
    sent = [conn.send(18, 0, b"", flexible=False) for _ in range(5)]
    for correlation_id in sent:
        assert conn.receive(correlation_id, flexible_header=False).int16() == 0


def _produce_versions(capabilities):
    """Every Produce version both sides speak from v3, the first that carries record batches v2."""
    return speak.versions(capabilities, raw.PRODUCE, 3)


def test_corrupt_crc_rejected(topics, broker, capabilities):
    """Record batch v2 CRC-32C covers attributes..end; a batch whose CRC does not match is refused
    with CORRUPT_MESSAGE (2) and nothing is appended, at every Produce version from v3."""
    topic = topics.create()
    batch = bytearray(raw.record_batch([raw.Record(None, b"payload")]))
    crc_position = 8 + 4 + 4 + 1  # baseOffset, batchLength, partitionLeaderEpoch, magic
    (crc,) = struct.unpack_from(">I", batch, crc_position)
    struct.pack_into(">I", batch, crc_position, crc ^ 0xFFFF)
    conn = broker.leader(topic)
    for version in _produce_versions(capabilities):
        result = speak.produce(conn, topic, bytes(batch), version)
        assert result is not None
        assert speak.produce_answer(result, version) == \
            speak.produce_expected(version, error_code=Errors.CORRUPT_MESSAGE.code), \
            f"Produce v{version}: expected CORRUPT_MESSAGE(2), observed {result}"
    list_version = speak.versions(capabilities, raw.LIST_OFFSETS, 1)[-1]
    assert speak.list_offsets(conn, topic, raw.LATEST_TIMESTAMP, list_version).offset == 0


def test_produce_to_unknown_partition(topics, broker, capabilities):
    """Produce to a partition that does not exist: UNKNOWN_TOPIC_OR_PARTITION (3), at every Produce
    version from v3."""
    topic = topics.create(partitions=1)
    conn = broker.leader(topic)
    for version in _produce_versions(capabilities):
        result = speak.produce(conn, topic, raw.record_batch([raw.Record(None, b"x")]), version, partition=7)
        assert result is not None
        assert speak.produce_answer(result, version) == \
            speak.produce_expected(version, error_code=Errors.UNKNOWN_TOPIC_OR_PARTITION.code), \
            f"Produce v{version}: expected UNKNOWN_TOPIC_OR_PARTITION(3), observed {result}"
