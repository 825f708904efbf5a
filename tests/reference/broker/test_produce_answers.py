"""What the Produce handler says about a refused write, as Apache Kafka 4.3.1 says it.

* ``error_message`` (Produce v8+) is filled only for a refusal judged record by record (Kafka's
  ``RecordValidationException``: the timestamp window, a key missing on a compacted topic); a
  refusal of the batch as a whole (its header, its magic, its partition) leaves it null.
* ``acks=0`` is never answered; when a partition failed, the broker closes the connection instead,
  after appending what succeeded.
(Both checked against Kafka by conformance/suite/test_validation.py.)
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from reference.broker.core import NO_RESPONSE, CloseConnection
from reference.errors import Errors
from reference.protocol.apis import API_BY_NAME
from reference.records import batch as layout
from reference.records.batch import SimpleRecord, build_batch

from .test_core import START_MS, Harness, batch, partition_result


@pytest.fixture
def harness(tmp_path: Path):
    h = Harness(tmp_path / "broker")
    yield h
    h.broker.shutdown()


def _with_control_bit(records: bytes) -> bytes:
    patched = bytearray(records)
    struct.pack_into(">h", patched, layout.ATTRIBUTES, layout.Attributes.CONTROL)
    struct.pack_into(">I", patched, layout.CRC, layout.compute_crc(patched))
    return bytes(patched)


def _produce_frame(harness: Harness, partition: int, records: bytes, acks: int) -> bytes:
    api = API_BY_NAME["Produce"]
    data = api.request.struct("PartitionProduceData").make(index=partition, records=records)
    return harness.frame("Produce", 9, acks=acks, timeout_ms=1000, topic_data=[
        api.request.struct("TopicProduceData").make(name="t", partition_data=[data])])


@pytest.mark.parametrize("records", [
    pytest.param(_with_control_bit(batch(b"x")), id="control bit"),
    pytest.param(batch(b"x", producer_id=4242, producer_epoch=0), id="producer id without sequence"),
])
def test_a_batch_refused_whole_has_no_error_message(harness: Harness, records: bytes) -> None:
    harness.create_topic("t")
    answer = partition_result(harness.produce("t", 0, records, version=9))
    assert (answer.error_code, answer.error_message, answer.record_errors) == (Errors.INVALID_RECORD.code, None, [])


def test_an_unknown_partition_has_no_error_message(harness: Harness) -> None:
    harness.create_topic("t")
    answer = partition_result(harness.produce("t", 5, batch(b"x"), version=9))
    assert (answer.error_code, answer.error_message) == (Errors.UNKNOWN_TOPIC_OR_PARTITION.code, None)


def test_records_refused_one_by_one_keep_their_messages(harness: Harness) -> None:
    harness.create_topic("t", message_timestamp_before_max_ms="1000")
    stale = build_batch([SimpleRecord(value=b"old", timestamp=START_MS - 60_000)])
    answer = partition_result(harness.produce("t", 0, stale, version=9))
    assert (answer.error_code, answer.error_message) == \
        (Errors.INVALID_TIMESTAMP.code, "One or more records have been rejected due to invalid timestamp")
    assert [e.batch_index for e in answer.record_errors] == [0]


@pytest.mark.parametrize(("partition", "records"), [
    pytest.param(5, batch(b"x"), id="unknown partition"),
    pytest.param(0, _with_control_bit(batch(b"x")), id="invalid record"),
])
def test_a_failed_acks_zero_produce_closes_the_connection(harness: Harness, partition: int, records: bytes) -> None:
    harness.create_topic("t")
    assert harness.broker.handle_frame(_produce_frame(harness, 0, batch(b"ok"), acks=0), harness.now_ms) is NO_RESPONSE
    with pytest.raises(CloseConnection):
        harness.broker.handle_frame(_produce_frame(harness, partition, records, acks=0), harness.now_ms)
    assert harness.broker.replicas.require("t", 0).log_end_offset == 1


def test_an_acks_zero_transactional_batch_without_transactional_id_closes_the_connection(harness: Harness) -> None:
    """Kafka's whole-request refusal has no acks=0 form (ProduceRequest.getErrorResponse is null)."""
    harness.create_topic("t")
    transactional = build_batch([SimpleRecord(value=b"x", timestamp=START_MS)], producer_id=1, producer_epoch=0,
                                base_sequence=0, transactional=True)
    with pytest.raises(CloseConnection):
        harness.broker.handle_frame(_produce_frame(harness, 0, transactional, acks=0), harness.now_ms)
    assert harness.broker.replicas.require("t", 0).log_end_offset == 0


def test_a_transactional_batch_without_producer_id_is_appended_outside_any_transaction(harness: Harness) -> None:
    """Kafka verifies (KIP-890) and tracks only transactional batches that have a producer id: with
    producer id -1 the batch is appended and the last stable offset moves with it."""
    harness.create_topic("t")
    transactional = bytearray(batch(b"x"))
    struct.pack_into(">h", transactional, layout.ATTRIBUTES, layout.Attributes.TRANSACTIONAL)
    struct.pack_into(">I", transactional, layout.CRC, layout.compute_crc(transactional))
    api = API_BY_NAME["Produce"]
    data = api.request.struct("PartitionProduceData").make(index=0, records=bytes(transactional))
    answer = partition_result(harness.call("Produce", 9, acks=-1, timeout_ms=1000, transactional_id="no-producer-id",
                                           topic_data=[api.request.struct("TopicProduceData").make(
                                               name="t", partition_data=[data])]))
    assert (answer.error_code, answer.base_offset) == (0, 0)
    replica = harness.broker.replicas.require("t", 0)
    assert (replica.log_end_offset, replica.last_stable_offset) == (1, 1)
