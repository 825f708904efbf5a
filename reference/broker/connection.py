"""One client connection as whole request frames: the bytes land straight in each frame's buffer.

Theory of operation
-------------------
Kafka's ``NetworkReceive`` reads a request as ``INT32 size`` then that many bytes into one
buffer, and the request handler decodes that buffer.  :class:`FrameConnection` is an asyncio
``BufferedProtocol`` that does the same with ``recv_into``: the kernel copies a request's bytes
into the ``bytearray`` the broker then decodes, validates and appends from, and nothing copies
them again on the way in (a stream reader would copy each byte three more times).

1. **Where bytes land.**  Between frames, :meth:`get_buffer` hands the socket a small scratch
   buffer (:data:`HEAD_BYTES`): it receives the next size prefix and whatever follows, often a
   whole small request, which is moved into that frame's buffer.  Once a frame is under way and
   its buffer holds what arrived so far, the socket receives the rest directly into it, so a
   large frame (a produced batch) is copied by the kernel and by nothing else.  Bytes after a
   frame wait in the scratch for the next one.
2. **One request at a time.**  A whole frame stops reading (``pause_reading``) until the server
   asks for the next frame, which it does after answering this one: requests on a connection
   are handled and answered in order, and at most one is held in memory beyond the scratch
   (Kafka mutes the channel while a request is in flight).
3. **Size first.**  A size below 0 or above ``socket.request.max.bytes`` is refused
   (:class:`RequestTooLarge`) before anything is allocated for it; what the client sends after
   it is read and dropped, so closing sends a clean FIN.  A frame's buffer grows as its bytes
   arrive, doubling from :data:`FIRST_CHUNK` up to the announced size, so a client that
   announces 100 MiB and sends nothing holds 64 KiB.
4. **Idle.**  :meth:`next_frame` raises ``TimeoutError`` when no byte arrives for the given time,
   between requests or inside one (``connections.max.idle.ms``).
5. **Writes.**  :meth:`send` queues a response and waits while the transport holds more than its
   high-water mark (``pause_writing``), so a client that stops reading holds up only its own
   connection; others are served meanwhile.
6. **End.**  The client closing, or the connection failing, wakes every waiter with a
   ``ConnectionError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Callable

FIRST_CHUNK = 64 * 1024  # a frame's buffer starts this large (or at its size, if smaller)
HEAD_BYTES = 16 * 1024  # the scratch that receives bytes between frames
_SIZE = struct.Struct(">i")


class RequestTooLarge(Exception):
    """A size prefix below 0 or above ``socket.request.max.bytes``: Kafka closes the connection."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"request of {size} bytes (socket.request.max.bytes={limit})")
        self.size = size
        self.limit = limit


class FrameConnection(asyncio.BufferedProtocol):
    """Request frames in (:meth:`next_frame`), response frames out (:meth:`send`)."""

    def __init__(self, max_request_bytes: Callable[[], int]) -> None:
        self._max_request_bytes = max_request_bytes
        self.transport: asyncio.Transport | None = None
        self._scratch = bytearray(HEAD_BYTES)  # rule 1: receives bytes between frames
        self._ahead = bytearray()  # received bytes not yet in a frame: a size prefix, or more
        self._frame: bytearray | None = None  # the frame being received, once its size is known
        self._frame_size = 0
        self._received = 0  # bytes of the frame received so far
        self._whole: bytearray | None = None  # a received frame not yet taken
        self._refused: RequestTooLarge | None = None
        self._closed = False
        self._loop = asyncio.get_running_loop()
        self._last_byte_at = self._loop.time()  # rule 4
        self._arrived = asyncio.Event()  # a whole frame, a refused size, or the end of the connection
        self._writable = asyncio.Event()
        self._writable.set()
        self._lost: asyncio.Future[None] = self._loop.create_future()

    # -- asyncio's side --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        frame = self._frame
        if frame is None or self._refused is not None:
            return memoryview(self._scratch)
        if self._received == len(frame):  # rule 3: grow towards the announced size
            wanted = min(self._frame_size, 2 * len(frame))
            try:
                frame += bytes(wanted - len(frame))  # in place: asyncio let go of the last view
            except BufferError:  # a view of it is still held somewhere: move to a new buffer
                grown = bytearray(wanted)
                grown[: self._received] = frame
                frame = self._frame = grown
        return memoryview(frame)[self._received:]

    def buffer_updated(self, nbytes: int) -> None:
        self._last_byte_at = self._loop.time()
        if self._refused is not None:
            return  # rule 3: dropped
        if self._frame is None:
            self._ahead += memoryview(self._scratch)[:nbytes]
        else:
            self._received += nbytes
        self._take_ahead()

    def _take_ahead(self) -> None:
        """Move received bytes into the frame they belong to; stop reading once it is whole."""
        while self._whole is None and self._refused is None:
            if self._frame is None:
                if len(self._ahead) < _SIZE.size:
                    return
                (size,) = _SIZE.unpack_from(self._ahead)
                del self._ahead[: _SIZE.size]
                limit = self._max_request_bytes()
                if size < 0 or size > limit:
                    self._refused = RequestTooLarge(size, limit)
                    self._ahead.clear()
                    self._arrived.set()
                    return
                self._frame = bytearray(min(size, max(FIRST_CHUNK, len(self._ahead))))
                self._frame_size, self._received = size, 0
            taken = min(len(self._ahead), self._frame_size - self._received)
            if taken:
                self._frame[self._received : self._received + taken] = memoryview(self._ahead)[:taken]
                del self._ahead[:taken]
                self._received += taken
            if self._received < self._frame_size:
                return
            self._whole, self._frame, self._received = self._frame, None, 0
            self._pause()  # rule 2
            self._arrived.set()

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._arrived.set()
        self._writable.set()
        if not self._lost.done():
            self._lost.set_result(None)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # -- the server's side -----------------------------------------------------------------------

    async def next_frame(self, idle_s: float) -> bytearray:
        """The next request frame without its size prefix, after the previous one was answered.

        Raises :class:`RequestTooLarge`, ``ConnectionError`` once the client is gone, and
        ``TimeoutError`` when no byte arrives for ``idle_s`` seconds."""
        self._take_ahead()  # the scratch may hold the next frame already
        if self._whole is None and self._refused is None and self.transport is not None:
            self.transport.resume_reading()
        self._last_byte_at = self._loop.time()  # the idle clock starts now
        while True:
            if self._whole is not None:
                frame, self._whole = self._whole, None
                return frame
            if self._refused is not None:
                raise self._refused
            if self._closed:
                raise ConnectionResetError("the client closed the connection")
            # Woken for a whole frame only, not for every chunk of one; bytes arriving push the
            # idle deadline back, and it is checked again when the wait times out.
            remaining = self._last_byte_at + idle_s - self._loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no byte for {idle_s} s")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._arrived.wait()

    async def send(self, frame: bytes | bytearray) -> None:
        """Queue ``frame``; return once the transport is below its high-water mark again."""
        if self._closed or self.transport is None:
            raise ConnectionResetError("the client closed the connection")
        self.transport.write(frame)
        await self._writable.wait()
        if self._closed:
            raise ConnectionResetError("the client closed the connection")

    @property
    def peer(self) -> object:
        return self.transport.get_extra_info("peername") if self.transport is not None else None

    async def close(self) -> None:
        """Close the socket and wait until asyncio has released it."""
        if self.transport is not None:
            self.transport.close()
            await self._lost

    def _pause(self) -> None:
        if self.transport is not None and self.transport.is_reading():
            self.transport.pause_reading()
