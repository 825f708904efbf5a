"""Shared helpers for the protocol tests: sample values that exercise every field of a message.

``sample_value(message, version)`` builds a value of ``message`` in which every field present in
``version`` holds a deterministic value different from its default.  A round trip of such a value
proves that every field is really written and read back: a field left at its default could vanish
from the wire (a tagged field is not even written then) and the round trip would still pass.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from itertools import count
from typing import Any

import pytest

from reference.protocol.schema import (
    BOOL,
    BYTES,
    FLOAT64,
    INT8,
    INT16,
    INT32,
    INT64,
    RECORDS,
    STRING,
    UINT16,
    UINT32,
    UUID,
    Array,
    Data,
    Field,
    FieldType,
    Message,
    Primitive,
    Struct,
)

# Each integer type draws from a base that needs its full width (INT64 above 2**32, ...).
_INT_BASE = {INT8: 10, INT16: 1_000, UINT16: 40_000, INT32: 100_000, UINT32: 3_000_000_000, INT64: 2**40}


def is_present(f: Field, version: int, flexible: bool) -> bool:
    """Whether ``f`` is on the wire in ``version``: as a regular field, or as a tagged one."""
    if f.tag is not None:
        return flexible and version in f.tagged_range
    return version in f.version_range


def _primitive_sample(kind: Primitive, serial: int, name: str) -> Any:
    if kind is BOOL:
        return serial % 2 == 0
    if kind in _INT_BASE:
        return _INT_BASE[kind] + serial % 100
    if kind is FLOAT64:
        return serial + 0.5
    if kind is UUID:
        return uuid.UUID(int=(serial + 1) * 0x0101_0101_0101_0101)
    if kind is STRING:
        return f"{name}-{serial}"
    if kind is BYTES or kind is RECORDS:
        return f"{name}:{serial}".encode()
    raise AssertionError(f"no sample for primitive {kind!r}")


def _sample(kind: FieldType, name: str, version: int, flexible: bool, serials: count[int]) -> Any:
    if isinstance(kind, Struct):
        return sample_struct(kind, version, flexible, serials)
    if isinstance(kind, Array):
        return [_sample(kind.element, name, version, flexible, serials) for _ in range(2)]
    assert isinstance(kind, Primitive)
    return _primitive_sample(kind, next(serials), name)


def sample_struct(struct: Struct, version: int, flexible: bool, serials: count[int] | None = None) -> Data:
    """A value of ``struct`` with a non-default value in every field present in ``version``."""
    serials = serials if serials is not None else count()
    value = struct.default()
    for f in struct.fields:
        if not is_present(f, version, flexible):
            continue
        sample = _sample(f.type, f.name, version, flexible, serials)
        if sample == f.default_value():  # e.g. a BOOL that defaults to true
            sample = not sample if isinstance(sample, bool) else _sample(f.type, f.name, version, flexible, serials)
        assert sample != f.default_value(), f"{struct.name}.{f.name}: sample equals the default"
        setattr(value, f.attribute, sample)
    return value


def null_every_nullable(struct: Struct, value: Data, version: int, flexible: bool) -> int:
    """Set every nullable field present in ``version`` to null, at every depth; return how many."""
    nulled = 0
    for f in struct.fields:
        if not is_present(f, version, flexible):
            continue
        if version in f.nullable_range:
            setattr(value, f.attribute, None)
            nulled += 1
            continue
        element = f.type.element if isinstance(f.type, Array) else f.type
        if isinstance(element, Struct):
            current = getattr(value, f.attribute)
            for item in current if isinstance(f.type, Array) else [current]:
                nulled += null_every_nullable(element, item, version, flexible)
    return nulled


def sample_value(message: Message, version: int) -> Data:
    """A value of ``message`` with a non-default value in every field present in ``version``."""
    return sample_struct(message.body, version, message.is_flexible(version))


@pytest.fixture(name="sample_value")
def sample_value_fixture() -> Callable[[Message, int], Data]:
    """The :func:`sample_value` helper, for tests that take it as a fixture."""
    return sample_value


def message_versions(api_keys: list[int]) -> list[Any]:
    """One pytest case per (message, version) of the requests and responses of ``api_keys``."""
    from reference.protocol.apis import API_BY_KEY

    cases: list[Any] = []
    for key in api_keys:
        api = API_BY_KEY[key]
        for message in (api.request, api.response):
            assert message.valid.high is not None
            for version in range(message.valid.low, message.valid.high + 1):
                cases.append(pytest.param(message, version, id=f"{message.name}-v{version}"))
    return cases


def round_trip(message: Message, value: Data, version: int) -> bytes:
    """Encode, decode and re-encode ``value``: the same value, the same bytes, nothing left over."""
    from reference.protocol.primitives import Reader

    encoded = message.encode(value, version)
    reader = Reader(encoded)
    decoded = message.decode(reader, version)
    assert reader.remaining() == 0, f"{reader.remaining()} bytes left after decoding"
    assert decoded == value
    assert message.encode(decoded, version) == encoded
    return encoded
