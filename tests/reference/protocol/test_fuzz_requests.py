"""Hostile bytes never crash a request decoder (issue 2, "Bad input").

Property: for every declared API and every version, ``decode_request`` given random bytes, or a
valid frame mutated (bytes flipped, truncated, spliced, a length field blown up), returns a decoded
request or raises ``DecodeError`` (or one of its subclasses, which the broker maps to Kafka's
answer).  Nothing else escapes: no IndexError, no struct.error, no MemoryError, no hang.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference.protocol.apis import API_BY_KEY
from reference.protocol.frames import decode_request, encode_request
from reference.protocol.primitives import DecodeError

from .conftest import sample_value

VERSIONS = [
    (api.key, version)
    for api in API_BY_KEY.values()
    for version in range(api.request.valid.low, (api.request.valid.high or 0) + 1)
]


def valid_payload(api_key: int, version: int) -> bytes:
    api = API_BY_KEY[api_key]
    frame = encode_request(api, version, 42, "fuzz", sample_value(api.request, version))
    return frame[4:]  # without the size prefix


def decodes_or_refuses(payload: bytes) -> None:
    try:
        decode_request(payload)
    except DecodeError:
        pass


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    api_key, version = draw(st.sampled_from(VERSIONS))
    payload = bytearray(valid_payload(api_key, version))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "huge-length"]))
        if not payload:
            break
        at = draw(st.integers(0, len(payload) - 1))
        if kind == "flip":
            payload[at] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del payload[at:]
        elif kind == "insert":
            payload[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif at + 4 <= len(payload):
            payload[at:at + 4] = struct.pack(">i", draw(st.sampled_from([2**31 - 1, -2, 2**30, 65536])))
    return bytes(payload)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_frames_decode_or_raise_decode_error(payload: bytes) -> None:
    decodes_or_refuses(payload)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(VERSIONS), st.binary(max_size=200))
def test_random_bodies_behind_a_valid_header_decode_or_raise_decode_error(
    key_version: tuple[int, int], body: bytes
) -> None:
    api_key, version = key_version
    header = struct.pack(">hhih", api_key, version, 1, 0)
    flexible = API_BY_KEY[api_key].request.is_flexible(version)
    decodes_or_refuses(header + (b"\x00" if flexible else b"") + body)


@pytest.mark.parametrize(("api_key", "version"), VERSIONS)
def test_every_truncation_of_a_valid_frame_is_refused_cleanly(api_key: int, version: int) -> None:
    """Cutting a valid frame anywhere yields DecodeError (or, at field boundaries, a shorter value)."""
    payload = valid_payload(api_key, version)
    decoded = decode_request(payload)
    assert decoded.header.api_key == api_key
    for cut in range(len(payload)):
        decodes_or_refuses(payload[:cut])
