"""The connection's framing (reference.broker.connection): however the bytes are cut by the
network, the frames handed to the core are exactly the frames sent, in order, one at a time."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference.broker.connection import FIRST_CHUNK, HEAD_BYTES, FrameConnection, RequestTooLarge


class ScriptedTransport(asyncio.Transport):
    """Delivers scripted bytes to the protocol as a selector transport would, honouring pauses."""

    def __init__(self, protocol: FrameConnection, data: bytes, cuts: list[int]) -> None:
        super().__init__()
        self.protocol = protocol
        self.data = data
        self.cuts = cuts or [len(data) or 1]
        self.position = 0
        self.reading = True
        self.received_while_paused = 0
        self.closed = False

    def is_reading(self) -> bool:
        return self.reading

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default

    def close(self) -> None:
        self.closed = True
        self.protocol.connection_lost(None)

    async def deliver(self) -> None:
        index = 0
        while self.position < len(self.data):
            if not self.reading:
                await asyncio.sleep(0)
                continue
            buffer = self.protocol.get_buffer(-1)
            size = min(len(buffer), self.cuts[index % len(self.cuts)], len(self.data) - self.position)
            buffer[:size] = self.data[self.position : self.position + size]
            del buffer  # as asyncio's transport does: the view is gone before buffer_updated
            self.position += size
            index += 1
            self.protocol.buffer_updated(size)
            await asyncio.sleep(0)


def framed(frames: list[bytes]) -> bytes:
    return b"".join(struct.pack(">i", len(frame)) + frame for frame in frames)


async def receive_all(frames: list[bytes], cuts: list[int], limit: int = 1 << 30) -> tuple[list[bytes], list[int]]:
    protocol = FrameConnection(lambda: limit)
    transport = ScriptedTransport(protocol, framed(frames), cuts)
    protocol.connection_made(transport)
    feeding = asyncio.create_task(transport.deliver())
    received: list[bytes] = []
    pending_while_handled: list[int] = []
    try:
        for _ in frames:
            frame = await protocol.next_frame(idle_s=5)
            assert not transport.reading  # rule 2: nothing more is read while a frame is handled
            received.append(bytes(frame))
            pending_while_handled.append(transport.position)
            await asyncio.sleep(0)
    finally:
        feeding.cancel()
    return received, pending_while_handled


FRAMES = st.lists(
    st.one_of(st.binary(max_size=40), st.integers(0, 3 * FIRST_CHUNK).map(lambda n: bytes(range(256)) * (n // 256))),
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(frames=FRAMES, cuts=st.lists(st.integers(1, 2 * HEAD_BYTES), max_size=5))
def test_frames_come_out_as_they_went_in_whatever_the_cuts(frames: list[bytes], cuts: list[int]) -> None:
    received, _ = asyncio.run(receive_all(frames, cuts))
    assert received == frames


def test_a_size_over_the_limit_is_refused_before_the_body_is_read_and_the_rest_is_dropped() -> None:
    async def scenario() -> None:
        protocol = FrameConnection(lambda: 100)
        transport = ScriptedTransport(protocol, struct.pack(">i", 101) + b"x" * 5000, [7])
        protocol.connection_made(transport)
        feeding = asyncio.create_task(transport.deliver())
        with pytest.raises(RequestTooLarge, match="101 bytes"):
            await protocol.next_frame(idle_s=5)
        await feeding  # what followed the size was read (and dropped), so closing sends a FIN
        assert transport.position == len(transport.data)

    asyncio.run(scenario())


def test_a_connection_that_sends_nothing_times_out_as_idle() -> None:
    async def scenario() -> None:
        protocol = FrameConnection(lambda: 100)
        protocol.connection_made(ScriptedTransport(protocol, b"", []))
        with pytest.raises(TimeoutError):
            await protocol.next_frame(idle_s=0.01)

    asyncio.run(scenario())


def test_an_announced_size_allocates_only_what_arrived() -> None:
    """A client announcing 100 MiB and sending 10 bytes holds a buffer of FIRST_CHUNK."""
    async def scenario() -> FrameConnection:
        protocol = FrameConnection(lambda: 100 << 20)
        transport = ScriptedTransport(protocol, struct.pack(">i", 100 << 20) + b"0123456789", [])
        protocol.connection_made(transport)
        await transport.deliver()
        return protocol

    protocol = asyncio.run(scenario())
    assert protocol._frame is not None and len(protocol._frame) == FIRST_CHUNK
