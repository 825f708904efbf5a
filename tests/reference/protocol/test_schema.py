"""The schema interpreter: versions, nullability, compact forms and tagged fields (KIP-482)."""

from __future__ import annotations

import pytest

from reference.protocol.primitives import DecodeError, Reader, Writer
from reference.protocol.schema import INT32, STRING, Array, Field, Message, Struct, Versions, snake_case

EXAMPLE = Message(
    "ExampleRequest", api_key=999, valid_versions="0-3", flexible_versions="2+",
    fields=[
        Field("Name", STRING),
        Field("Count", INT32, versions="1+"),
        Field("Note", STRING, versions="0+", nullable="1+", default=None),
        Field("Items", Array(Struct("Item", [Field("Id", INT32)]))),
        Field("Hint", STRING, versions="2+", tag=0, tagged_versions="2+"),
        Field("Extra", Struct("Extra", [Field("Level", INT32)]), versions="3+", nullable="3+", default=None),
    ],
)


def test_versions_parse_like_kafka() -> None:
    assert 5 in Versions.parse("3+") and 2 not in Versions.parse("3+")
    assert 8 in Versions.parse("0-8") and 9 not in Versions.parse("0-8")
    assert 0 not in Versions.parse("none")
    assert str(Versions.parse("4")) == "4"


def test_snake_case_of_kafka_names() -> None:
    assert snake_case("ThrottleTimeMs") == "throttle_time_ms"
    assert snake_case("ISRNodes") == "isr_nodes"
    assert snake_case("TopicId") == "topic_id"


def test_fields_absent_from_a_version_are_skipped_and_decode_to_defaults() -> None:
    value = EXAMPLE.make(name="a", count=7, note="n", items=[])
    encoded = EXAMPLE.encode(value, 0)
    assert encoded.hex() == "0001610001" + "6e" + "00000000"
    decoded = EXAMPLE.decode(encoded, 0)
    assert decoded.count == 0 and decoded.name == "a"


def test_null_where_the_version_forbids_it_is_refused_both_ways() -> None:
    with pytest.raises(ValueError, match="not nullable"):
        EXAMPLE.encode(EXAMPLE.make(name="a", note=None), 0)
    with pytest.raises(DecodeError, match="not nullable"):
        EXAMPLE.decode(bytes.fromhex("0001" "61" "ffff" "00000000"), 0)


def test_flexible_versions_use_compact_forms_and_end_structs_with_tags() -> None:
    value = EXAMPLE.make(name="a", count=1, note=None, items=[EXAMPLE.struct("Item").make(id=5)])
    encoded = EXAMPLE.encode(value, 2)
    # name: compact "a"; count; note: compact null; items: 1 element (id, empty tags); top tags: none
    assert encoded.hex() == "0261" "00000001" "00" "02" "00000005" "00" "00"


def test_a_tagged_field_is_written_only_when_not_default() -> None:
    with_hint = EXAMPLE.encode(EXAMPLE.make(name="", hint="hi"), 2)
    assert with_hint.endswith(bytes.fromhex("01" "00" "03" "036869"))
    assert EXAMPLE.decode(with_hint, 2).hint == "hi"


def test_unknown_tags_survive_a_round_trip_byte_for_byte() -> None:
    """A newer peer's tagged field that we do not know is kept and re-encoded unchanged."""
    plain = EXAMPLE.encode(EXAMPLE.make(name=""), 2)
    with_unknown = plain[:-1] + bytes.fromhex("01" "07" "02" "beef")
    decoded = EXAMPLE.decode(with_unknown, 2)
    assert decoded._unknown_tags == {7: bytes.fromhex("beef")}
    assert EXAMPLE.encode(decoded, 2) == with_unknown


def test_tags_out_of_order_are_refused() -> None:
    plain = EXAMPLE.encode(EXAMPLE.make(name=""), 2)
    bad = plain[:-1] + bytes.fromhex("02" "07" "00" "01" "00")
    with pytest.raises(DecodeError, match="out of order"):
        EXAMPLE.decode(bad, 2)


def test_a_nullable_struct_carries_a_presence_byte() -> None:
    absent = EXAMPLE.encode(EXAMPLE.make(name=""), 3)
    present = EXAMPLE.encode(EXAMPLE.make(name="", extra=EXAMPLE.struct("Extra").make(level=9)), 3)
    assert absent[-2:] == bytes.fromhex("ff00")
    assert EXAMPLE.decode(present, 3).extra.level == 9
    assert EXAMPLE.decode(absent, 3).extra is None


def test_make_refuses_unknown_fields() -> None:
    with pytest.raises(TypeError, match="no field"):
        EXAMPLE.make(nmae="typo")


def test_a_version_outside_the_valid_range_is_refused() -> None:
    with pytest.raises(DecodeError):
        EXAMPLE.decode(b"", 4)
    with pytest.raises(ValueError):
        EXAMPLE.encode(EXAMPLE.make(), 4)


def test_reader_and_writer_share_positions_when_messages_are_chained() -> None:
    writer = Writer()
    EXAMPLE.write(EXAMPLE.make(name="x"), 1, writer)
    EXAMPLE.write(EXAMPLE.make(name="y"), 1, writer)
    reader = Reader(writer.getvalue())
    assert [EXAMPLE.decode(reader, 1).name, EXAMPLE.decode(reader, 1).name] == ["x", "y"]
    assert reader.remaining() == 0
