"""``__transaction_state`` records byte for byte: the golden values below were read off the log of an
Apache Kafka 4.3.1 broker (value version 1, transaction version 2 cluster, librdkafka producers);
refka decodes them and writes exactly the same bytes for the same metadata."""

from __future__ import annotations

import pytest

from reference.broker.txn.coordinator import TransactionMetadata
from reference.broker.txn.records import decode_key, decode_value, encode_key, encode_value
from reference.broker.txn.state import TransactionState

TXN_ID = "txn-test_read_committed_hides_aborted_records-interleaved--93ea0c62-b"
TOPIC = "conf-test_read_committed_hides_aborted_records-interleaved--f73275db"
KEY = "0000004574786e2d746573745f726561645f636f6d6d69747465645f68696465735f61626f727465645f7265636f7264732d696e74" \
      "65726c65617665642d2d39336561306336322d62"
TOPIC_HEX = TOPIC.encode().hex()
# (state, value bytes) as Kafka wrote them for producer id 50, epoch 0, timeout 60000.
GOLDEN = {
    TransactionState.EMPTY: "0001000000000000003200000000ea600000000001a25029639fffffffffffffffff0100080000000000000032",
    TransactionState.ONGOING: "0001000000000000003200000000ea60010245" + TOPIC_HEX + "020000000000000001a2502963a9"
                              "000001a2502963a90100080000000000000032",
    TransactionState.PREPARE_COMMIT: "0001000000000000003200000000ea60020245" + TOPIC_HEX + "020000000000000001a2502963"
                                     "af000001a2502963a90100080000000000000032",
    TransactionState.COMPLETE_COMMIT: "0001000000000000003200000000ea600401000001a2502963b0000001a2502963a901000800000000"
                                      "00000032",
}
START = 0x1a2502963a9
UPDATED = {TransactionState.EMPTY: 0x1a25029639f, TransactionState.ONGOING: 0x1a2502963a9,
           TransactionState.PREPARE_COMMIT: 0x1a2502963af, TransactionState.COMPLETE_COMMIT: 0x1a2502963b0}


def test_the_key_is_version_0_and_the_transactional_id() -> None:
    assert encode_key(TXN_ID).hex() == KEY
    assert decode_key(bytes.fromhex(KEY)) == TXN_ID


@pytest.mark.parametrize("state", list(GOLDEN), ids=str)
def test_kafka_values_decode_and_encode_to_the_same_bytes(state: TransactionState) -> None:
    data = bytes.fromhex(GOLDEN[state])
    value = decode_value(data)
    assert value is not None and value.state is state
    assert encode_value(value) == data


@pytest.mark.parametrize("state", list(GOLDEN), ids=str)
def test_the_coordinators_metadata_is_written_as_kafka_writes_it(state: TransactionState) -> None:
    """Empty has a null partition list and no start time; the Complete states an empty list and
    keep the start time; Kafka 4.3.1 writes PreviousProducerId (the producer id) in every record."""
    partitions = {(TOPIC, 0)} if state in (TransactionState.ONGOING, TransactionState.PREPARE_COMMIT) else set()
    metadata = TransactionMetadata(TXN_ID, 50, 0, 60000, state, partitions,
                                   start_timestamp_ms=-1 if state is TransactionState.EMPTY else START,
                                   last_update_timestamp_ms=UPDATED[state], previous_producer_id=50)
    assert encode_value(metadata.to_value()).hex() == GOLDEN[state]


def test_a_tombstone_decodes_to_none() -> None:
    assert decode_value(None) is None


def test_version_0_is_read_too() -> None:
    value = decode_value(bytes.fromhex(GOLDEN[TransactionState.ONGOING]))
    assert value is not None
    assert decode_value(encode_value(value, version=0)) == value.__class__(**{**vars(value), "previous_producer_id": -1})
