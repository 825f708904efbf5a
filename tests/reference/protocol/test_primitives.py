"""Kafka's primitive types: exact encodings, and typed errors for every kind of bad input."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference.protocol.primitives import DecodeError, Reader, Writer, random_uuid_string, uuid_string


def encoded(method: str, *args: object) -> bytes:
    writer = Writer()
    getattr(writer, method)(*args)
    return writer.getvalue()


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, "00"), (1, "01"), (127, "7f"), (128, "8001"), (300, "ac02"), (2**32 - 1, "ffffffff0f")],
)
def test_unsigned_varint_layout(value: int, expected: str) -> None:
    """Seven bits per byte, low groups first, high bit set while more bytes follow."""
    assert encoded("unsigned_varint", value).hex() == expected
    assert Reader(bytes.fromhex(expected)).unsigned_varint() == value


@pytest.mark.parametrize(("value", "expected"), [(0, "00"), (-1, "01"), (1, "02"), (-2, "03"), (63, "7e"), (-64, "7f")])
def test_varint_is_zigzag(value: int, expected: str) -> None:
    """Signed varints zigzag: 0, -1, 1, -2 ... become 0, 1, 2, 3 ..."""
    assert encoded("varint", value).hex() == expected
    assert Reader(bytes.fromhex(expected)).varint() == value


@given(st.integers(-(2**31), 2**31 - 1))
def test_varint_round_trip(value: int) -> None:
    assert Reader(encoded("varint", value)).varint() == value


@given(st.integers(-(2**63), 2**63 - 1))
def test_varlong_round_trip(value: int) -> None:
    assert Reader(encoded("varlong", value)).varlong() == value


def test_a_varint_longer_than_five_bytes_is_refused() -> None:
    """A run of continuation bytes cannot make the reader loop or build a huge integer."""
    with pytest.raises(DecodeError, match="longer than 5"):
        Reader(b"\xff" * 6 + b"\x01").varint()
    with pytest.raises(DecodeError, match="longer than 10"):
        Reader(b"\xff" * 11).varlong()


def test_strings_classic_and_compact() -> None:
    """STRING has an INT16 length (-1 null); COMPACT_STRING a varint of length + 1 (0 null)."""
    assert encoded("string", "ab").hex() == "00026162"
    assert encoded("string", None).hex() == "ffff"
    assert encoded("string", "ab", True).hex() == "036162"
    assert encoded("string", None, True).hex() == "00"
    assert Reader(bytes.fromhex("036162")).string(compact=True) == "ab"
    assert Reader(bytes.fromhex("00")).string(compact=True) is None


def test_bytes_classic_and_compact() -> None:
    assert encoded("bytes_", b"\x01").hex() == "0000000101"
    assert encoded("bytes_", None).hex() == "ffffffff"
    assert encoded("bytes_", b"\x01", True).hex() == "0201"


def test_a_length_beyond_the_buffer_is_refused_before_allocating() -> None:
    """An INT32 length of 2 GiB in a 10-byte frame is an error, not an allocation."""
    with pytest.raises(DecodeError, match="exceeds"):
        Reader(bytes.fromhex("7fffffff") + b"abc").bytes_()
    with pytest.raises(DecodeError, match="exceeds"):
        Reader(bytes.fromhex("7fffffff")).array_length()


def test_a_negative_length_other_than_minus_one_is_refused() -> None:
    with pytest.raises(DecodeError, match="negative"):
        Reader(bytes.fromhex("fffe")).string()


def test_invalid_utf8_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="UTF-8"):
        Reader(bytes.fromhex("0002c328")).string()


def test_fixed_width_types_and_uuid() -> None:
    writer = Writer()
    value = uuid.UUID("12345678-1234-5678-1234-567812345678")
    writer.int8(-1)
    writer.int16(-2)
    writer.int32(-3)
    writer.int64(-4)
    writer.uint16(65535)
    writer.uint32(2**32 - 1)
    writer.float64(1.5)
    writer.boolean(True)
    writer.uuid(value)
    reader = Reader(writer.getvalue())
    assert [reader.int8(), reader.int16(), reader.int32(), reader.int64()] == [-1, -2, -3, -4]
    assert [reader.uint16(), reader.uint32(), reader.float64(), reader.boolean()] == [65535, 2**32 - 1, 1.5, True]
    assert reader.uuid() == value
    assert reader.remaining() == 0


def test_reading_past_the_end_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="need 4 bytes"):
        Reader(b"\x00\x01").int32()


@given(st.binary(max_size=64))
def test_any_bytes_give_a_value_or_a_decode_error(data: bytes) -> None:
    """Every reader method on arbitrary bytes returns or raises DecodeError, nothing else."""
    for method in ("int8", "int16", "int32", "int64", "unsigned_varint", "varint", "varlong", "uuid",
                   "string", "bytes_", "array_length"):
        try:
            getattr(Reader(data), method)()
        except DecodeError:
            pass
    for compact_method in ("string", "bytes_", "array_length"):
        try:
            getattr(Reader(data), compact_method)(True)
        except DecodeError:
            pass


def test_uuid_string_is_base64url_without_padding() -> None:
    # Kafka prints topic id 0x00..01 (the metadata topic) as AAAAAAAAAAAAAAAAAAAAAQ.
    assert uuid_string(uuid.UUID(int=1)) == "AAAAAAAAAAAAAAAAAAAAAQ"
    assert uuid_string(uuid.UUID(int=(0xF8 << 120))).startswith("-")


def test_random_uuid_string_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # The first draws would print as "-..." and as the reserved metadata-topic id: both redrawn.
    draws = iter([uuid.UUID(int=0xF8 << 120), uuid.UUID(int=1), uuid.UUID(int=0), uuid.UUID(int=5 << 120)])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(draws))
    assert random_uuid_string() == uuid_string(uuid.UUID(int=5 << 120))


def test_seeded_random_uuid_strings_are_reproducible_and_valid() -> None:
    ids = [random_uuid_string(seed) for seed in range(2000)]
    assert ids == [random_uuid_string(seed) for seed in range(2000)]
    assert len(set(ids)) == 2000
    assert all(len(text) == 22 and not text.startswith("-") for text in ids)
