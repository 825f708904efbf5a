"""The reference broker in-process: for tests, and for ``refka conform`` with no target.

:class:`EmbeddedBroker` runs the asyncio server (``reference.broker.server``) on its own event
loop in a background thread, so synchronous code (pytest, a client library) can talk to it over
real sockets.  ``start`` returns the bootstrap address; ``stop`` shuts down cleanly (logs flushed,
checkpoints and clean-shutdown markers written); ``restart`` keeps the data directory and port.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

from .configs import BrokerConfig
from .core import Broker
from .server import BrokerServer, wall_clock_ms


class EmbeddedBroker:
    def __init__(
        self,
        data_dir: str | Path | None = None,
        config: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._owns_data_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="refka-broker-"))
        self.config = dict(config or {})
        self.host = host
        self.port = port
        self.broker: Broker | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> str:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(ready))
            except BaseException as error:  # reported to the starting thread
                failure.append(error)
                ready.set()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="refka-embedded-broker", daemon=True)
        self._thread.start()
        ready.wait(60)
        if failure:
            raise RuntimeError(f"the embedded broker failed to start: {failure[0]}") from failure[0]
        return self.bootstrap

    async def _serve(self, ready: threading.Event) -> None:
        broker = Broker(BrokerConfig(self.config), self.data_dir, wall_clock_ms())
        self.broker = broker
        server = BrokerServer(broker, self.host, self.port)
        self.host, self.port = await server.start()
        self._stop = asyncio.Event()
        ready.set()
        try:
            await self._stop.wait()
        finally:
            await server.stop()
            broker.shutdown()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(30)
        self._thread = None
        self._stop = None

    def restart(self) -> str:
        self.stop()
        time.sleep(0.05)
        return self.start()

    def close(self) -> None:
        self.stop()
        if self._owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None) -> None:
        self.close()
