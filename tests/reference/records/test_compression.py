"""Compression of the records section: the five codecs as Kafka's clients write them, bounded
decompression, and the topic's ``compression.type``."""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
import textwrap

import pytest
from aiokafka import codec as aiokafka_codec
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka import codec as kafka_python_codec

from reference.records.compression import (
    XERIAL_HEADER,
    CompressionType,
    TopicCompressionType,
    compress,
    compress_snappy_raw,
    decompress,
)
from reference.records.decode_errors import DecompressionError, DecompressionLimitError

# Compressible, but not trivially: repeated text with a counter.
PAYLOAD = b"".join(b"record-%06d the quick brown fox jumps over the lazy dog\n" % i for i in range(2000))
CODECS = list(CompressionType)
COMPRESSED_CODECS = [codec for codec in CompressionType if codec is not CompressionType.NONE]


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec.name)
def test_every_codec_round_trips(codec: CompressionType) -> None:
    """What compress() writes, decompress() reads back exactly."""
    assert decompress(codec, compress(codec, PAYLOAD), len(PAYLOAD)) == PAYLOAD


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec.name)
def test_empty_records_section_round_trips(codec: CompressionType) -> None:
    assert decompress(codec, compress(codec, b""), 0) == b""


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec.name)
def test_output_of_exactly_max_output_bytes_is_accepted(codec: CompressionType) -> None:
    """The limit is inclusive: max_output bytes are fine, one more is not."""
    data = compress(codec, PAYLOAD)
    assert decompress(codec, data, len(PAYLOAD)) == PAYLOAD
    with pytest.raises(DecompressionLimitError):
        decompress(codec, data, len(PAYLOAD) - 1)


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec.name)
def test_decompress_accepts_memoryview_and_bytearray(codec: CompressionType) -> None:
    data = compress(codec, PAYLOAD)
    assert decompress(codec, memoryview(data), len(PAYLOAD)) == PAYLOAD
    assert decompress(codec, bytearray(data), len(PAYLOAD)) == PAYLOAD


# --- snappy: both framings ------------------------------------------------------------------------


def test_snappy_is_written_with_the_xerial_framing_of_java_clients() -> None:
    """Kafka's Java client (snappy-java SnappyOutputStream) writes the 16-byte xerial header and
    blocks of at most 32 KiB input; our bytes equal the xerial stream the Python clients write."""
    ours = compress(CompressionType.SNAPPY, PAYLOAD)
    assert ours.startswith(XERIAL_HEADER)
    assert ours == aiokafka_codec.snappy_encode(PAYLOAD, xerial_compatible=True)


def test_xerial_snappy_has_one_block_per_32_kib() -> None:
    ours = compress(CompressionType.SNAPPY, PAYLOAD)
    position, blocks = len(XERIAL_HEADER), 0
    while position < len(ours):
        (length,) = struct.unpack_from(">i", ours, position)
        position += 4 + length
        blocks += 1
    assert position == len(ours)
    assert blocks == -(-len(PAYLOAD) // (32 * 1024))


def test_raw_snappy_as_librdkafka_writes_it_is_read() -> None:
    """librdkafka writes one raw snappy block without the xerial header; snappy-java reads that too."""
    raw = compress_snappy_raw(PAYLOAD)
    assert not raw.startswith(XERIAL_HEADER[:8])
    assert decompress(CompressionType.SNAPPY, raw, len(PAYLOAD)) == PAYLOAD
    assert (
        decompress(CompressionType.SNAPPY, aiokafka_codec.snappy_encode(PAYLOAD, False), len(PAYLOAD))
        == PAYLOAD
    )


def test_xerial_snappy_written_by_the_python_clients_is_read() -> None:
    framed = aiokafka_codec.snappy_encode(PAYLOAD, xerial_compatible=True, xerial_blocksize=4096)
    assert decompress(CompressionType.SNAPPY, framed, len(PAYLOAD)) == PAYLOAD


def test_xerial_block_length_running_past_the_payload_is_an_error() -> None:
    framed = bytearray(compress(CompressionType.SNAPPY, PAYLOAD))
    struct.pack_into(">i", framed, len(XERIAL_HEADER), 1 << 30)
    with pytest.raises(DecompressionError):
        decompress(CompressionType.SNAPPY, framed, len(PAYLOAD))


def test_snappy_block_declaring_four_gigabytes_is_refused_before_allocating() -> None:
    """A raw snappy block starts with its length; it is checked against the limit first."""
    bomb = b"\xff\xff\xff\xff\x0f" + b"\x00" * 16
    with pytest.raises(DecompressionLimitError):
        decompress(CompressionType.SNAPPY, bomb, 1 << 20)


# --- lz4, zstd, gzip as the clients write them ----------------------------------------------------


def test_lz4_frame_has_independent_blocks_as_kafka_requires() -> None:
    """Kafka's Lz4BlockInputStream refuses linked blocks (KIP-57): FLG bit 5 must be set."""
    frame = compress(CompressionType.LZ4, PAYLOAD)
    assert frame[:4] == b"\x04\x22\x4d\x18"  # LZ4 frame magic
    flags = frame[4]
    assert flags >> 6 == 0b01  # version 1
    assert flags & 0x20  # block independence
    assert not flags & 0x08  # no content size


def test_lz4_and_zstd_bytes_equal_what_aiokafka_writes() -> None:
    """Same library, same parameters (Kafka's default levels): byte-identical frames."""
    assert compress(CompressionType.LZ4, PAYLOAD) == aiokafka_codec.lz4_encode(PAYLOAD)
    assert compress(CompressionType.ZSTD, PAYLOAD) == aiokafka_codec.zstd_encode(PAYLOAD)


@pytest.mark.parametrize(
    "encode",
    [kafka_python_codec.gzip_encode, aiokafka_codec.gzip_encode, lambda data: gzip.compress(data, mtime=0)],
    ids=["kafka-python", "aiokafka", "stdlib"],
)
def test_gzip_from_the_python_clients_is_read(encode: object) -> None:
    assert callable(encode)
    assert decompress(CompressionType.GZIP, encode(PAYLOAD), len(PAYLOAD)) == PAYLOAD


def test_gzip_with_several_members_is_read_whole() -> None:
    """Java's GZIPInputStream reads concatenated members; so do we."""
    data = gzip.compress(PAYLOAD[:1000]) + gzip.compress(PAYLOAD[1000:])
    assert decompress(CompressionType.GZIP, data, len(PAYLOAD)) == PAYLOAD


@pytest.mark.parametrize("codec", COMPRESSED_CODECS, ids=lambda codec: codec.name)
def test_garbage_is_a_decompression_error(codec: CompressionType) -> None:
    with pytest.raises(DecompressionError) as raised:
        decompress(codec, b"this is not compressed data at all" * 3, 1 << 20)
    assert not isinstance(raised.value, DecompressionLimitError)


@pytest.mark.parametrize("codec", COMPRESSED_CODECS, ids=lambda codec: codec.name)
def test_truncated_payload_is_a_decompression_error(codec: CompressionType) -> None:
    data = compress(codec, os.urandom(5000))
    with pytest.raises(DecompressionError):
        decompress(codec, data[: len(data) // 2], 1 << 20)


# --- decompression bombs --------------------------------------------------------------------------

_BOMB_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    import cramjam
    from reference.records.compression import CompressionType, decompress
    from reference.records.decode_errors import DecompressionLimitError

    MIB = 1 << 20
    zeros = b"\\0" * MIB

    def streamed(compressor):
        for _ in range(512):
            compressor.compress(zeros)
        return bytes(compressor.finish())

    block = bytes(cramjam.snappy.compress_raw(b"\\0" * 32768))
    xerial = (b"\\x82SNAPPY\\x00" + (1).to_bytes(4, "big") * 2
              + (len(block).to_bytes(4, "big") + block) * (512 * 32))
    bombs = {
        CompressionType.GZIP: streamed(cramjam.gzip.Compressor(level=1)),
        CompressionType.LZ4: streamed(cramjam.lz4.Compressor(level=1, block_linked=False)),
        CompressionType.ZSTD: streamed(cramjam.zstd.Compressor(level=1)),
        CompressionType.SNAPPY: xerial,
    }
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for codec, bomb in bombs.items():
        try:
            decompress(codec, bomb, MIB)
        except DecompressionLimitError:
            pass
        else:
            sys.exit(f"{codec.name}: no DecompressionLimitError")
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) / 1024
    print(grown_mib)
    """
)


def test_decompression_bombs_stop_at_the_limit_without_allocating_their_size() -> None:
    """512 MiB of zeros in each codec, limit 1 MiB: each raises DecompressionLimitError and the
    process's peak memory grows by a few MiB, not by hundreds (checked in a fresh interpreter)."""
    result = subprocess.run(
        [sys.executable, "-c", _BOMB_SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert float(result.stdout.strip()) < 64


@settings(max_examples=150, deadline=None)
@given(codec=st.sampled_from(CODECS), data=st.binary(max_size=300), max_output=st.integers(0, 4096))
def test_any_bytes_decompress_or_raise_a_decompression_error(
    codec: CompressionType, data: bytes, max_output: int
) -> None:
    try:
        out = decompress(codec, data, max_output)
    except DecompressionError:
        return
    assert len(out) <= max_output


@settings(max_examples=100, deadline=None)
@given(
    codec=st.sampled_from(COMPRESSED_CODECS),
    payload=st.binary(max_size=2000),
    position=st.integers(0, 10_000),
    byte=st.integers(0, 255),
)
def test_mutated_compressed_payloads_decompress_or_raise_a_decompression_error(
    codec: CompressionType, payload: bytes, position: int, byte: int
) -> None:
    data = bytearray(compress(codec, payload))
    data[position % len(data)] = byte
    try:
        decompress(codec, data, 4096)
    except DecompressionError:
        pass


# --- compression.type -----------------------------------------------------------------------------


def test_topic_compression_type_values_are_kafkas() -> None:
    assert [member.value for member in TopicCompressionType] == [
        "producer",
        "uncompressed",
        "gzip",
        "snappy",
        "lz4",
        "zstd",
    ]
    assert TopicCompressionType.from_config("ZSTD") is TopicCompressionType.ZSTD
    with pytest.raises(ValueError, match="compression.type"):
        TopicCompressionType.from_config("brotli")


@pytest.mark.parametrize("producer_codec", CODECS, ids=lambda codec: codec.name)
def test_producer_compression_type_keeps_the_batch_codec(producer_codec: CompressionType) -> None:
    assert TopicCompressionType.PRODUCER.target_codec(producer_codec) is producer_codec
    assert TopicCompressionType.UNCOMPRESSED.target_codec(producer_codec) is CompressionType.NONE
    assert TopicCompressionType.LZ4.target_codec(producer_codec) is CompressionType.LZ4


def test_gzip_we_write_is_a_standard_gzip_stream() -> None:
    """Java's GZIPInputStream reads RFC 1952 gzip; so does Python's gzip module."""
    assert gzip.decompress(compress(CompressionType.GZIP, PAYLOAD)) == PAYLOAD
