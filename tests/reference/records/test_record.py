"""Records inside a batch: varints, the record layout, and the record-count contract."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.record.util import decode_varint as kafka_python_decode_varint
from kafka.record.util import encode_varint as kafka_python_encode_varint

from reference.records.decode_errors import InvalidRecordsError
from reference.records.record import (
    Header,
    Record,
    RecordColumns,
    decode_record,
    decode_records,
    encode_records,
    read_varint,
    read_varlong,
    scan_common_records,
    scan_records,
    scan_records_plain,
    write_varint,
)

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)


def kafka_python_varint(value: int) -> bytes:
    out = bytearray()
    kafka_python_encode_varint(value, out.append)
    return bytes(out)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (-1, b"\x01"),
        (1, b"\x02"),
        (63, b"\x7e"),
        (-64, b"\x7f"),
        (64, b"\x80\x01"),
        (300, b"\xd8\x04"),
    ],
)
def test_varints_are_zigzag_base_128(value: int, encoded: bytes) -> None:
    assert write_varint(value) == encoded
    assert read_varint(memoryview(encoded), 0) == (value, len(encoded))


@given(INT64)
def test_varint_bytes_equal_kafka_python_and_read_back(value: int) -> None:
    encoded = write_varint(value)
    assert encoded == kafka_python_varint(value)
    assert read_varlong(memoryview(encoded), 0) == (value, len(encoded))


def test_the_one_and_two_byte_short_forms_write_what_the_general_loop_writes() -> None:
    """write_varint unrolls the 1- and 2-byte encodings (nearly every varint a producer writes);
    every value up to and across both bounds is held to kafka-python's encoder."""
    for value in range(-8200, 8200):
        assert write_varint(value) == kafka_python_varint(value), value


@given(INT32)
def test_int32_varints_take_at_most_five_bytes(value: int) -> None:
    encoded = write_varint(value)
    assert len(encoded) <= 5
    assert read_varint(memoryview(encoded), 0) == (value, len(encoded))
    assert kafka_python_decode_varint(encoded, 0)[0] == value


def test_a_varint_longer_than_five_bytes_is_invalid() -> None:
    with pytest.raises(InvalidRecordsError, match="longer than 5"):
        read_varint(memoryview(b"\x80\x80\x80\x80\x80\x01"), 0)


def test_a_varlong_longer_than_ten_bytes_is_invalid() -> None:
    with pytest.raises(InvalidRecordsError, match="longer than 10"):
        read_varlong(memoryview(b"\x80" * 10 + b"\x01"), 0)


def test_a_varint_cut_short_is_invalid() -> None:
    with pytest.raises(InvalidRecordsError):
        read_varint(memoryview(b"\x80\x80"), 0)


def test_record_layout_matches_the_kip_98_grammar() -> None:
    record = Record(offset_delta=1, timestamp_delta=2, key=b"k", value=None, headers=(Header("h", b"v"),))
    body = bytes([0]) + b"\x04" + b"\x02" + b"\x02k" + b"\x01" + b"\x02" + b"\x02h" + b"\x02v"
    assert record.encode() == write_varint(len(body)) + body


records_strategy = st.lists(
    st.builds(
        Record,
        offset_delta=INT32,
        timestamp_delta=INT64,
        key=st.none() | st.binary(max_size=20),
        value=st.none() | st.binary(max_size=50),
        headers=st.lists(
            st.builds(Header, key=st.text(max_size=8), value=st.none() | st.binary(max_size=8)), max_size=3
        ).map(tuple),
        attributes=st.integers(0, 255),
    ),
    max_size=8,
)


@given(records_strategy)
def test_records_round_trip(records: list[Record]) -> None:
    assert decode_records(encode_records(records), len(records)) == records


def test_header_keys_that_are_not_utf8_round_trip_byte_for_byte() -> None:
    """Kafka reads header keys as UTF-8 strings; bytes that are not UTF-8 still survive a round trip."""
    raw = Record(0, 0, None, None, (Header("x", None),)).encode().replace(b"\x02x", b"\x02\xff")
    (record,) = decode_records(raw, 1)
    assert record.encode() == raw


def test_negative_key_and_value_lengths_read_as_null_as_in_kafka() -> None:
    body = b"\x00\x00\x00" + write_varint(-7) + write_varint(-2) + b"\x00"
    record, end = decode_record(memoryview(write_varint(len(body)) + body), 0)
    assert (record.key, record.value) == (None, None)


def test_fewer_records_than_the_declared_count_is_premature_eof() -> None:
    section = encode_records([Record(0, 0, None, b"a")])
    with pytest.raises(InvalidRecordsError, match="premature EOF"):
        decode_records(section, 2)


def test_bytes_after_the_declared_count_are_records_still_remaining() -> None:
    section = encode_records([Record(0, 0, None, b"a"), Record(1, 0, None, b"b")])
    with pytest.raises(InvalidRecordsError, match="records still remaining"):
        decode_records(section, 1)


def test_a_negative_record_count_is_invalid() -> None:
    with pytest.raises(InvalidRecordsError, match="invalid record count"):
        decode_records(b"", -1)


def test_a_record_length_running_past_the_section_is_invalid() -> None:
    section = bytearray(encode_records([Record(0, 0, None, b"abc")]))
    section[0] = 0x7E  # length 63
    with pytest.raises(InvalidRecordsError, match="Invalid record size"):
        decode_records(section, 1)


def test_a_record_whose_fields_do_not_fill_its_length_is_invalid() -> None:
    record = Record(0, 0, None, b"abc").encode()
    padded = write_varint(len(record) - 1 + 1) + record[1:] + b"\x00"
    with pytest.raises(InvalidRecordsError, match="expected to read"):
        decode_records(padded, 1)


def test_a_negative_header_count_is_invalid() -> None:
    body = b"\x00\x00\x00\x01\x01" + write_varint(-1)
    with pytest.raises(InvalidRecordsError, match="invalid number of record headers"):
        decode_records(write_varint(len(body)) + body, 1)


def test_a_header_count_larger_than_the_bytes_left_is_invalid() -> None:
    body = b"\x00\x00\x00\x01\x01" + write_varint(1000)
    with pytest.raises(InvalidRecordsError, match="larger than the remaining size"):
        decode_records(write_varint(len(body)) + body, 1)


def test_a_negative_header_key_length_is_invalid() -> None:
    body = b"\x00\x00\x00\x01\x01\x02" + write_varint(-1) + b"\x01"
    with pytest.raises(InvalidRecordsError, match="negative header key size"):
        decode_records(write_varint(len(body)) + body, 1)


def test_an_empty_batch_section_is_not_read_as_kafka_does() -> None:
    """Kafka's iterator returns nothing for recordCount 0 without looking at the bytes."""
    assert decode_records(b"\x99\x99", 0) == []


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200), count=st.integers(-5, 2**31 - 1))
def test_any_bytes_decode_to_records_or_raise_invalid_records(data: bytes, count: int) -> None:
    """Never another exception, and a huge declared count allocates nothing up front."""
    try:
        records = decode_records(data, count)
    except InvalidRecordsError:
        return
    assert len(records) == count


# --- scan_records: the produce path's walk, held to decode_records ------------------------------


def scan_or_error(section: bytes, count: int) -> RecordColumns | str:
    try:
        return scan_records(section, count)
    except InvalidRecordsError as error:
        return f"error: {error}"


def decode_or_error(section: bytes, count: int) -> RecordColumns | str:
    try:
        return RecordColumns.of(decode_records(section, count))
    except InvalidRecordsError as error:
        return f"error: {error}"


@given(records_strategy)
def test_scanning_valid_records_gives_their_offset_and_timestamp_deltas_and_null_keys(records: list[Record]) -> None:
    columns = scan_records(encode_records(records), len(records))
    assert columns.offset_deltas == [record.offset_delta for record in records]
    assert columns.timestamp_deltas == [record.timestamp_delta for record in records]
    assert columns.null_key_indexes == [index for index, record in enumerate(records) if record.key is None]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200), count=st.integers(-5, 40))
def test_scanning_any_bytes_agrees_with_decoding_them_errors_included(data: bytes, count: int) -> None:
    assert scan_or_error(data, count) == decode_or_error(data, count)


@settings(max_examples=500, deadline=None)
@given(
    records=records_strategy.filter(bool),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3),
    cut=st.integers(0, 10_000),
    extra=st.integers(-1, 1),
)
def test_scanning_damaged_records_agrees_with_decoding_them_errors_included(
    records: list[Record], edits: list[tuple[int, int]], cut: int, extra: int
) -> None:
    """Valid sections with bytes changed, cut short, or a wrong count: the walk fails where and
    how the decoder fails (same message), or both read the same records."""
    section = bytearray(encode_records(records))
    for position, value in edits:
        section[position % len(section)] = value
    section = section[: len(section) - cut % 4]
    count = len(records) + extra
    assert scan_or_error(bytes(section), count) == decode_or_error(bytes(section), count)


# The produce path's fast walk answers only for ordinary sections and then as the plain walk does.

ordinary_records = st.lists(
    st.builds(
        Record,
        offset_delta=st.integers(-8192, 8191),
        timestamp_delta=st.integers(-(2**20), 2**20 - 1),
        key=st.none() | st.binary(max_size=20),
        value=st.none() | st.binary(max_size=3000),
        headers=st.lists(
            st.builds(Header, key=st.text(max_size=8), value=st.none() | st.binary(max_size=8)), max_size=2
        ).map(tuple),
        attributes=st.integers(0, 255),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(ordinary_records)
def test_the_fast_walk_answers_for_ordinary_records_and_agrees_with_the_plain_walk(records: list[Record]) -> None:
    """Short varints (a 3-byte timestamp delta), values up to 3000 bytes, headers or none: the fast
    walk decides on its own, so the produce path really takes it."""
    section = encode_records(records)
    fast = scan_common_records(section, len(records))
    assert fast is not None
    assert fast == scan_records_plain(section, len(records))


@settings(max_examples=500, deadline=None)
@given(
    records=ordinary_records,
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3),
    cut=st.integers(0, 10_000),
    extra=st.integers(-1, 1),
)
def test_the_fast_walk_never_accepts_what_the_plain_walk_refuses(
    records: list[Record], edits: list[tuple[int, int]], cut: int, extra: int
) -> None:
    """On damaged sections the fast walk either steps aside (None) or gives the plain walk's columns."""
    section = bytearray(encode_records(records))
    for position, value in edits:
        section[position % len(section)] = value
    section = section[: len(section) - cut % 4]
    count = len(records) + extra
    fast = scan_common_records(bytes(section), count)
    if fast is not None:
        assert fast == scan_records_plain(bytes(section), count)


def test_a_record_without_its_headers_count_is_left_to_the_plain_walk() -> None:
    """The body ends right after the value: the plain walk refuses it, so the fast one must not answer."""
    section = bytearray(encode_records([Record(offset_delta=0, timestamp_delta=0, key=None, value=b"v")]))
    assert section[-1] == 0  # headersCount
    section[0] -= 2  # length 1 shorter (zigzag: 2 per step)
    del section[-1]
    assert scan_common_records(bytes(section), 1) is None
    with pytest.raises(InvalidRecordsError):
        scan_records(bytes(section), 1)


@pytest.mark.parametrize("value", [0, 63, 64, 8191, 8192, -8193, 2**31 - 1, -(2**31)])
def test_short_varint_forms_read_like_the_general_loop(value: int) -> None:
    """The one- and two-byte shortcuts of read_varint/read_varlong give the loop's answer."""
    encoded = write_varint(value)
    assert read_varint(memoryview(encoded), 0) == (value, len(encoded))
    assert read_varlong(memoryview(encoded), 0) == (value, len(encoded))
    assert read_varint(memoryview(b"\x00" + encoded), 1) == (value, len(encoded) + 1)
