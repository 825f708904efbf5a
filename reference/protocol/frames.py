"""Whole frames: size prefix, header and body, for requests and responses.

This is the one place where bytes from the network become typed values and back.  It raises
exactly three kinds of error for a request frame, and the broker's network shell decides what
Kafka does with each:

* :class:`UnknownApiKey` - the key is not one refka declares; Kafka closes the connection.
* :class:`UnsupportedApiVersion` - a known key, a version outside the declared range; for
  ApiVersions the broker answers with a v0 body (KIP-511), for anything else Kafka closes the
  connection.
* :class:`~reference.protocol.primitives.DecodeError` - the bytes are malformed.

Both of the first two carry the parsed header so the caller can still answer with the right
correlation id.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .apis import API_BY_KEY, Api
from .headers import REQUEST_HEADER, RESPONSE_HEADER, request_header_version, response_header_version
from .primitives import DecodeError, Reader, Writer
from .schema import Data

SIZE_PREFIX = struct.Struct(">i")


@dataclass(frozen=True)
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


class UnknownApiKey(DecodeError):
    def __init__(self, header: RequestHeader) -> None:
        super().__init__(f"unknown API key {header.api_key}")
        self.header = header


class UnsupportedApiVersion(DecodeError):
    def __init__(self, header: RequestHeader, api: Api) -> None:
        super().__init__(f"{api.name} has no version {header.api_version} (valid: {api.request.valid})")
        self.header = header
        self.api = api


@dataclass(frozen=True)
class Request:
    header: RequestHeader
    api: Api
    body: Data

    @property
    def version(self) -> int:
        return self.header.api_version


def _peek_header(reader: Reader) -> RequestHeader:
    """The fixed start of every request header (v1 layout), before the version is known."""
    api_key = reader.int16()
    api_version = reader.int16()
    correlation_id = reader.int32()
    client_id = reader.string(compact=False)
    return RequestHeader(api_key, api_version, correlation_id, client_id)


def decode_request(payload: bytes | bytearray | memoryview) -> Request:
    """Decode a request frame *without* its size prefix.

    Record sets (Produce) are views of ``payload``, not copies: whoever passes a ``bytearray``
    hands it over, and the broker writes a batch's offsets into it before appending it."""
    reader = Reader(payload)
    reader.share_records = True
    header = _peek_header(reader)
    api = API_BY_KEY.get(header.api_key)
    if api is None:
        raise UnknownApiKey(header)
    if header.api_version not in api.request.valid:
        raise UnsupportedApiVersion(header, api)
    flexible = api.request.is_flexible(header.api_version)
    if request_header_version(header.api_key, flexible) >= 2:
        # Header v2 ends with its own tagged-field section, skipped as unknown tags.
        reader.position = 0
        REQUEST_HEADER.decode(reader, 2)
    body = api.request.decode(reader, header.api_version)
    return Request(header, api, body)


def encode_request(
    api: Api, version: int, correlation_id: int, client_id: str | None, body: Data
) -> bytes:
    """A request frame with its size prefix."""
    writer = Writer()
    writer.int32(0)  # size, patched below
    flexible = api.request.is_flexible(version)
    header = REQUEST_HEADER.make(
        request_api_key=api.key, request_api_version=version,
        correlation_id=correlation_id, client_id=client_id,
    )
    REQUEST_HEADER.write(header, request_header_version(api.key, flexible), writer)
    api.request.write(body, version, writer)
    SIZE_PREFIX.pack_into(writer.buffer, 0, len(writer.buffer) - 4)
    return bytes(writer.buffer)  # immutable: a request frame may be kept, compared and hashed


def encode_response(api: Api, version: int, correlation_id: int, body: Data) -> bytearray:
    """A response frame with its size prefix."""
    writer = Writer()
    writer.int32(0)
    flexible = api.response.is_flexible(version)
    header = RESPONSE_HEADER.make(correlation_id=correlation_id)
    RESPONSE_HEADER.write(header, response_header_version(api.key, flexible), writer)
    api.response.write(body, version, writer)
    SIZE_PREFIX.pack_into(writer.buffer, 0, len(writer.buffer) - 4)
    return writer.buffer  # the frame itself, not a copy: a fetched record set is copied once, into it


def decode_response(api: Api, version: int, payload: bytes | bytearray | memoryview) -> tuple[int, Data]:
    """Decode a response frame without its size prefix: (correlation id, body)."""
    reader = Reader(payload)
    flexible = api.response.is_flexible(version)
    header = RESPONSE_HEADER.decode(reader, response_header_version(api.key, flexible))
    return header.correlation_id, api.response.decode(reader, version)
