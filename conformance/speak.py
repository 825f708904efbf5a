"""Speak any API at any version through refka's own codec, for the raw conformance probes.

Theory of operation
-------------------
:mod:`conformance.raw` hand-writes a few requests at a few versions.  The newer probes
(``test_requests``, ``test_topic_ids``) instead build requests from the message declarations in
``reference.protocol.messages`` (the same codec :mod:`conformance.fuzz` uses), so that one probe can
run at *every* version both sides support instead of one hand-picked version:

* :func:`versions` is the intersection of what the broker advertises in ApiVersions and what the
  codec declares, optionally from a first version (the one that introduced the feature probed).
  An empty intersection skips the test with a reason naming the API and the range missing.
* :class:`Speaker` owns one :class:`conformance.raw.Connection`; :meth:`Speaker.call` sends a
  request body (a :class:`~reference.protocol.schema.Data` built with :func:`body`) through
  :func:`conformance.raw.call` -- request header v1 or v2 as the version's flexibility demands --
  and decodes the answer at the same version.  A closed connection raises
  :class:`conformance.raw.ConnectionClosed`, as in the rest of the suite.

* The data path -- :func:`produce`, :func:`fetch` (and :func:`send_fetch` / :func:`receive_fetch`
  for a fetch parked in purgatory), :func:`list_offsets`, :func:`offset_for_leader_epoch`,
  :func:`metadata` -- asks about one partition at a given version and returns that partition's
  decoded answer, after checking the broker answered exactly it.  Topics are named by id where
  the version demands (Produce and Fetch v13+, KIP-516).  The older probes loop over
  :func:`versions` with these instead of the one version :mod:`conformance.raw` hand-writes.
  :func:`produce_answer` / :func:`produce_expected` compare a whole Produce partition answer,
  each field from the version that introduced it.

Field names are the codec's: Kafka's JSON names in snake_case (``ErrorMessage`` ->
``error_message``).  Nested values are built with :func:`item` from the struct's Kafka name.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from conformance import raw
from conformance.capabilities import API_NAMES, Capabilities
from reference.protocol.apis import API_BY_KEY, Api
from reference.protocol.schema import Data


def api(api_key: int) -> Api:
    return API_BY_KEY[api_key]


def versions(capabilities: Capabilities, api_key: int, first: int = 0, last: int | None = None) -> list[int]:
    """Every version of ``api_key`` from ``first`` (to ``last``) that the broker advertises and the
    codec declares; skips the test when there is none."""
    advertised = capabilities.api_versions.apis.get(api_key)
    declared = api(api_key).request.valid
    spoken: list[int] = []
    if advertised is not None:
        top = advertised.max_version if last is None else min(last, advertised.max_version)
        spoken = [v for v in range(max(first, advertised.min_version), top + 1) if v in declared]
    if not spoken:
        name = API_NAMES.get(api_key, api(api_key).name)
        theirs = "nothing" if advertised is None else f"v{advertised.min_version}-v{advertised.max_version}"
        wanted = f"v{first}+" if last is None else f"v{first}-v{last}"
        pytest.skip(f"broker advertises {theirs} of {name}; the probe needs {wanted} ({declared} declared)")
    return spoken


def body(api_key: int, **fields: Any) -> Data:
    """A request body of ``api_key``: the given fields, the others at their declared defaults."""
    return api(api_key).request.make(**fields)


def item(api_key: int, struct_name: str, **fields: Any) -> Data:
    """One element of a nested request struct, named as Kafka names it (``CreatableTopic``)."""
    return api(api_key).request.struct(struct_name).make(**fields)


class Speaker:
    """One connection to one broker (:class:`conformance.raw.Connection`), answering requests in
    order (Kafka's per-connection rule), spoken through :func:`conformance.raw.call`."""

    def __init__(self, address: str, timeout: float = 30.0) -> None:
        self.conn = raw.Connection.to(address.strip(), timeout)

    def __enter__(self) -> Speaker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()

    def call(self, api_key: int, version: int, request: Data) -> Data:
        answer: Data = raw.call(self.conn, api_key, version, request)
        return answer


def bootstrap_speaker(bootstrap: str) -> Speaker:
    return Speaker(bootstrap.split(",")[0])


# ---------------------------------------------------------------- the data path at any version
# Produce, Fetch, ListOffsets and Metadata of one partition, built with the codec at the version
# asked, so that the older probes (test_fetch, test_offsets, ...) can run their check at every
# version instead of the one :mod:`conformance.raw` hand-writes.  Each returns the decoded answer of
# the one partition asked about, after checking that the broker answered exactly that partition.
# Topics are named by id where the version demands it (Produce v13+, Fetch v13+; KIP-516).
def topic_uuid(conn: raw.Connection, topic: str) -> uuid.UUID:
    """The topic's id, from Metadata v12 (:func:`conformance.raw.topic_id`)."""
    return uuid.UUID(bytes=raw.topic_id(conn, topic))


def _only(items: list[Data], what: str) -> Data:
    assert len(items) == 1, f"expected the answer for one {what}, observed {items}"
    return items[0]


def _endpoints(answer: Data) -> dict[int, tuple[str, int]]:
    """The (host, port) of each node in a Produce v10+ / Fetch v16+ answer's ``node_endpoints``
    (KIP-951: where the leader named in ``current_leader`` is reached); empty below those versions."""
    return {node.node_id: (node.host, node.port) for node in answer.get("node_endpoints") or []}


def produce_request(conn: raw.Connection, topic: str, records: bytes, version: int, partition: int = 0,
                    acks: int = -1, timeout_ms: int = 30_000, transactional_id: str | None = None) -> Data:
    """A Produce body of one batch to one partition: by topic name up to v12, by topic id from v13."""
    key: dict[str, Any] = {"topic_id": topic_uuid(conn, topic)} if version >= 13 else {"name": topic}
    data = item(raw.PRODUCE, "PartitionProduceData", index=partition, records=records)
    return body(raw.PRODUCE, transactional_id=transactional_id, acks=acks, timeout_ms=timeout_ms,
                topic_data=[item(raw.PRODUCE, "TopicProduceData", partition_data=[data], **key)])


def produce(conn: raw.Connection, topic: str, records: bytes, version: int, partition: int = 0,
            acks: int = -1, **options: Any) -> Data | None:
    """Produce one batch at ``version``; the partition's answer, or None for acks=0 (Kafka sends no
    response at all then, so nothing is read)."""
    request = produce_request(conn, topic, records, version, partition, acks, **options)
    if acks == 0:
        raw.send_body(conn, raw.PRODUCE, version, request)
        return None
    answer = raw.call(conn, raw.PRODUCE, version, request)
    answered = _only(_only(answer.responses, "topic").partition_responses, "partition")
    assert answered.index == partition, f"Produce v{version}: asked partition {partition}, answered {answered}"
    answered.node_endpoints = _endpoints(answer)
    return answered


def send_fetch(conn: raw.Connection, topic: str, version: int, offset: int, partition: int = 0,
               max_wait_ms: int = 500, min_bytes: int = 1, max_bytes: int = 1024 * 1024,
               isolation_level: int = raw.READ_UNCOMMITTED, current_leader_epoch: int = -1,
               rack_id: str = "") -> int:
    """Send a consumer's sessionless Fetch (session id 0, epoch -1: a full fetch that opens no
    session, KIP-227) of one partition without waiting for the answer; its correlation id.
    ``current_leader_epoch`` travels from v9 (KIP-320), ``rack_id`` from v11 (KIP-392)."""
    key: dict[str, Any] = {"topic_id": topic_uuid(conn, topic)} if version >= 13 else {"topic": topic}
    wanted = item(raw.FETCH, "FetchPartition", partition=partition, fetch_offset=offset, partition_max_bytes=max_bytes,
                  current_leader_epoch=current_leader_epoch)
    request = body(raw.FETCH, replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=min_bytes, max_bytes=max_bytes,
                   isolation_level=isolation_level, session_id=0, session_epoch=raw.FINAL_EPOCH, rack_id=rack_id,
                   topics=[item(raw.FETCH, "FetchTopic", partitions=[wanted], **key)])
    return raw.send_body(conn, raw.FETCH, version, request)


def receive_fetch(conn: raw.Connection, version: int, correlation_id: int) -> Data:
    """The one partition of the Fetch answer to :func:`send_fetch`, with ``batches`` added (the
    header of each whole record batch in ``records``, :class:`conformance.raw.BatchSummary`), their
    ``record_count``, and the answer's top-level ``fetch_error_code`` and ``session_id`` (v7+)."""
    answer = raw.receive_body(conn, raw.FETCH, version, correlation_id)
    answered = _only(_only(answer.responses, "topic").partitions, "partition")
    answered.fetch_error_code, answered.session_id = answer.error_code, answer.session_id
    answered.node_endpoints = _endpoints(answer)
    answered.batches = raw.summarise_batches(bytes(answered.records or b""))
    answered.record_count = sum(batch.record_count for batch in answered.batches)
    return answered


def fetch(conn: raw.Connection, topic: str, version: int, offset: int, **options: Any) -> Data:
    """A sessionless Fetch of one partition at ``version`` (:func:`send_fetch`, :func:`receive_fetch`)."""
    return receive_fetch(conn, version, send_fetch(conn, topic, version, offset, **options))


def list_offsets(conn: raw.Connection, topic: str, timestamp: int, version: int, partition: int = 0,
                 isolation_level: int = raw.READ_UNCOMMITTED, current_leader_epoch: int = -1) -> Data:
    """ListOffsets of one partition at ``version`` (v1+: one offset per partition; v0's list of
    offsets is another layout): timestamp -1 latest, -2 earliest, else the first offset at/after."""
    wanted = item(raw.LIST_OFFSETS, "ListOffsetsPartition", partition_index=partition, timestamp=timestamp,
                  current_leader_epoch=current_leader_epoch)
    request = body(raw.LIST_OFFSETS, replica_id=-1, isolation_level=isolation_level, timeout_ms=30_000,
                   topics=[item(raw.LIST_OFFSETS, "ListOffsetsTopic", name=topic, partitions=[wanted])])
    answer = raw.call(conn, raw.LIST_OFFSETS, version, request)
    answered = _only(_only(answer.topics, "topic").partitions, "partition")
    assert answered.partition_index == partition, f"ListOffsets v{version}: asked {partition}, answered {answered}"
    return answered


def offset_for_leader_epoch(conn: raw.Connection, topic: str, leader_epoch: int, version: int, partition: int = 0,
                            current_leader_epoch: int = -1) -> Data:
    """A consumer's OffsetForLeaderEpoch (replica id -1) of one partition at ``version``: the end
    offset of ``leader_epoch``, with ``current_leader_epoch`` (v2+) fenced as in KIP-320."""
    wanted = item(raw.OFFSET_FOR_LEADER_EPOCH, "OffsetForLeaderPartition", partition=partition,
                  current_leader_epoch=current_leader_epoch, leader_epoch=leader_epoch)
    request = body(raw.OFFSET_FOR_LEADER_EPOCH, replica_id=-1,
                   topics=[item(raw.OFFSET_FOR_LEADER_EPOCH, "OffsetForLeaderTopic", topic=topic, partitions=[wanted])])
    answer = raw.call(conn, raw.OFFSET_FOR_LEADER_EPOCH, version, request)
    answered = _only(_only(answer.topics, "topic").partitions, "partition")
    assert answered.partition == partition, f"OffsetForLeaderEpoch v{version}: asked {partition}, answered {answered}"
    return answered


def metadata(conn: raw.Connection, topics: list[str], version: int) -> Data:
    """Metadata of the named topics at ``version`` (no auto-creation; an empty list asks for no
    topic from v1, for every topic at v0)."""
    request = body(raw.METADATA, allow_auto_topic_creation=False,
                   topics=[item(raw.METADATA, "MetadataRequestTopic", name=name) for name in topics])
    answer: Data = raw.call(conn, raw.METADATA, version, request)
    return answer


# The fields of a Produce partition answer, and the version that added each (ProduceResponse.json):
# log_append_time_ms v2 (KIP-32), log_start_offset v5 (KIP-107), record_errors and error_message v8
# (KIP-467).  A probe compares the whole answer a version carries, not only its error code.
PRODUCE_ANSWER_SINCE = {"error_code": 0, "base_offset": 0, "log_append_time_ms": 2, "log_start_offset": 5,
                        "record_errors": 8, "error_message": 8}


def produce_answer(answered: Data, version: int) -> dict[str, Any]:
    """The fields of a Produce partition answer that ``version`` carries; record errors as
    (batch_index, message) pairs."""
    fields = {name: getattr(answered, name) for name in PRODUCE_ANSWER_SINCE}
    fields["record_errors"] = [(e.batch_index, e.batch_index_error_message) for e in answered.record_errors]
    return {name: value for name, value in fields.items() if version >= PRODUCE_ANSWER_SINCE[name]}


def produce_expected(version: int, error_code: int = 0, base_offset: int = -1, log_append_time_ms: int = -1,
                     log_start_offset: int = -1, record_errors: list[tuple[int, str | None]] | None = None,
                     error_message: str | None = None) -> dict[str, Any]:
    """What :func:`produce_answer` should be at ``version``; the defaults are Kafka's for a refused
    batch (no offsets, no append time, no per-record errors or message)."""
    fields = {"error_code": error_code, "base_offset": base_offset, "log_append_time_ms": log_append_time_ms,
              "log_start_offset": log_start_offset, "record_errors": record_errors or [], "error_message": error_message}
    return {name: value for name, value in fields.items() if version >= PRODUCE_ANSWER_SINCE[name]}
