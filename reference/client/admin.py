"""The reference admin client: a synchronous API over the sans-IO operations and an asyncio shell.

Theory of operation
-------------------
Every decision (what to send, where, what an answer means, when to retry) is in the operation
generators of ``admin_core`` and ``admin_groups``.  This module is the I/O shell, shaped like the
producer's (``reference.client.producer``): one asyncio event loop on a background thread
(``refka-admin-network-thread``), the same ``OutboxTransport`` for the connections, and a
synchronous API for the user.

:meth:`Admin._drive` runs one operation: it takes the operation's step, puts each :class:`Call`
into the outbox as an ``OutboundRequest`` and waits for all their outcomes (an answer or the
transport's typed failure), sleeps through a :class:`Backoff`, and sends the outcomes back.  The
whole operation is bounded by ``default.api.timeout.ms`` (60 s, as Java's admin client): when it
runs out the caller gets :class:`RequestTimedOutError` naming the last failure seen, so "a broker
that is gone" is one typed error, not a hang.

Properties (Kafka's names): ``bootstrap.servers`` (required), ``client.id``,
``request.timeout.ms`` (30000), ``default.api.timeout.ms`` (60000), ``retry.backoff.ms`` (100).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from ..errors import KafkaError
from .admin_core import (
    AdminCore,
    AlterConfigOp,
    Backoff,
    Call,
    ConfigEntry,
    ConfigResource,
    CreatedTopic,
    ElectionType,
    NewTopic,
    Operation,
    Outcome,
    ResourceType,
    TopicDescription,
)
from .admin_groups import (
    GroupDescription,
    GroupListing,
    PartitionLag,
    ResetSpec,
    commit_offsets,
    committed_offsets,
    delete_group_offsets,
    delete_groups,
    describe_group,
    describe_offsets,
    list_groups,
    reset_offsets,
)
from .cluster import TopicPartition, parse_bootstrap
from .exceptions import ConfigException, RequestTimedOutError
from .outbox import OutboundRequest, Outbox
from .transport import OutboxTransport

log = logging.getLogger("refka.client.admin")
T = TypeVar("T")

DEFAULTS = {"client.id": "refka-admin", "request.timeout.ms": "30000", "default.api.timeout.ms": "60000",
            "retry.backoff.ms": "100"}


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def _positive_int(properties: Mapping[str, str], name: str) -> int:
    text = properties[name]
    if not text.strip().isdigit() or int(text) <= 0:
        raise ConfigException(f"Invalid value {text} for configuration {name}: must be a positive integer")
    return int(text)


class Admin:
    """A Kafka admin client.  ``Admin({"bootstrap.servers": "host:9092"})``; close it when done."""

    def __init__(self, properties: Mapping[str, object], clock_ms: Callable[[], int] = wall_clock_ms) -> None:
        settings = {**DEFAULTS, **{k: str(v) for k, v in properties.items()}}
        if "bootstrap.servers" not in settings:
            raise ConfigException("Missing required configuration \"bootstrap.servers\" which has no default value.")
        try:
            bootstrap = parse_bootstrap(settings["bootstrap.servers"])
        except ValueError as error:
            raise ConfigException(str(error)) from error
        self.client_id = settings["client.id"]
        self.default_api_timeout_ms = _positive_int(settings, "default.api.timeout.ms")
        self.core = AdminCore(bootstrap, _positive_int(settings, "retry.backoff.ms"),
                              _positive_int(settings, "request.timeout.ms"))
        self._clock_ms = clock_ms
        self._outbox = Outbox()  # the calls of running operations, for the transport
        self._loop = asyncio.new_event_loop()
        self._transport: OutboxTransport | None = None
        self._started = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._thread_main, name="refka-admin-network-thread", daemon=True)
        self._thread.start()
        self._started.wait()

    # -- topics ------------------------------------------------------------------------------------

    def create_topics(self, topics: Sequence[NewTopic], validate_only: bool = False) -> list[CreatedTopic]:
        return self._run(self.core.create_topics(topics, validate_only))

    def delete_topics(self, names: Sequence[str]) -> None:
        self._run(self.core.delete_topics(names))

    def list_topics(self, include_internal: bool = True) -> list[str]:
        return self._run(self.core.list_topics(include_internal))

    def describe_topics(self, names: Sequence[str] | None = None) -> list[TopicDescription]:
        return self._run(self.core.describe_topics(names))

    def create_partitions(self, counts: Mapping[str, int], validate_only: bool = False) -> None:
        self._run(self.core.create_partitions(counts, validate_only))

    # -- configs -----------------------------------------------------------------------------------

    def describe_configs(self, resource: ConfigResource, names: Sequence[str] | None = None) -> list[ConfigEntry]:
        return self._run(self.core.describe_configs(resource, names))

    def incremental_alter_configs(self, resource: ConfigResource,
                                  operations: Sequence[tuple[str, AlterConfigOp, str | None]],
                                  validate_only: bool = False) -> None:
        self._run(self.core.incremental_alter_configs(resource, operations, validate_only))

    # -- records and leaders -----------------------------------------------------------------------

    def list_offsets(self, specs: Mapping[TopicPartition, int]) -> dict[TopicPartition, tuple[int, int]]:
        return self._run(self.core.list_offsets(specs))

    def delete_records(self, before: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
        return self._run(self.core.delete_records(before))

    def elect_leaders(self, election_type: ElectionType,
                      partitions: Sequence[TopicPartition] | None = None) -> dict[TopicPartition, KafkaError | None]:
        return self._run(self.core.elect_leaders(election_type, partitions))

    # -- consumer groups ---------------------------------------------------------------------------

    def list_groups(self) -> list[GroupListing]:
        return self._run(list_groups(self.core))

    def describe_group(self, group_id: str) -> GroupDescription:
        return self._run(describe_group(self.core, group_id))

    def committed_offsets(self, group_id: str) -> dict[TopicPartition, int]:
        return self._run(committed_offsets(self.core, group_id))

    def describe_offsets(self, group_id: str) -> tuple[GroupDescription | None, list[PartitionLag]]:
        return self._run(describe_offsets(self.core, group_id))

    def reset_offsets(self, group_id: str, partitions: Sequence[TopicPartition], spec: ResetSpec,
                      execute: bool = True) -> dict[TopicPartition, int]:
        return self._run(reset_offsets(self.core, group_id, partitions, spec, execute))

    def alter_group_offsets(self, group_id: str, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit ``offsets`` for the group as Kafka's ``alterConsumerGroupOffsets`` does (no checks
        of the group's state here: the coordinator refuses it while the group has members)."""
        self._run(commit_offsets(self.core, group_id, offsets))

    def delete_groups(self, group_ids: Sequence[str]) -> None:
        self._run(delete_groups(self.core, group_ids))

    def delete_group_offsets(self, group_id: str, partitions: Sequence[TopicPartition]) -> None:
        self._run(delete_group_offsets(self.core, group_id, partitions))

    # -- lifecycle ---------------------------------------------------------------------------------

    def broker_versions(self, node_id: int) -> dict[int, tuple[int, int]] | None:
        """The API ranges node ``node_id`` advertised (ApiVersions), once connected to it."""
        connection = None if self._transport is None else self._transport.connection(node_id)
        return None if connection is None else connection.broker_versions

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the I/O thread ----------------------------------------------------------------------------

    def _thread_main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._started.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def _start(self) -> None:
        self._transport = OutboxTransport(self._outbox, self.core.metadata.address, self.client_id,
                                          self._clock_ms)
        await self._transport.start()

    async def _stop(self) -> None:
        if self._transport is not None:
            await self._transport.stop()

    def _run(self, operation: Operation[T]) -> T:
        if self._closed:
            raise RuntimeError("the admin client is closed")
        return asyncio.run_coroutine_threadsafe(self._drive(operation), self._loop).result()

    async def _drive(self, operation: Operation[T]) -> T:
        """Run one operation to its end (see the module's theory of operation)."""
        last_failure: list[Exception] = []
        try:
            async with asyncio.timeout(self.default_api_timeout_ms / 1000):
                outcomes: Sequence[Outcome] = ()
                first = True
                while True:
                    self.core.now_ms = self._clock_ms()
                    try:
                        step = next(operation) if first else operation.send(outcomes)
                    except StopIteration as done:
                        return done.value  # type: ignore[no-any-return]
                    first = False
                    if isinstance(step, Backoff):
                        await asyncio.sleep(step.ms / 1000)
                        outcomes = ()
                        continue
                    outcomes = await asyncio.gather(*(self._send(call) for call in step))
                    last_failure[:] = [o for o in outcomes if isinstance(o, Exception)][-1:] or last_failure
        except TimeoutError:
            operation.close()
            cause = f"; last error: {last_failure[0]}" if last_failure else ""
            raise RequestTimedOutError(
                f"the operation did not complete within default.api.timeout.ms ({self.default_api_timeout_ms}){cause}"
            ) from None

    def _send(self, call: Call) -> asyncio.Future[Outcome]:
        future: asyncio.Future[Outcome] = self._loop.create_future()

        def answered(body: object, now_ms: int) -> None:
            if not future.done():
                future.set_result(body)  # type: ignore[arg-type]

        def failed(error: Exception, now_ms: int) -> None:
            if not future.done():
                future.set_result(error)

        self._outbox.send(OutboundRequest(call.node, call.api_key, call.body, answered, failed,
                                              timeout_ms=call.timeout_ms))
        return future


__all__ = ["Admin", "AlterConfigOp", "ConfigResource", "ElectionType", "NewTopic", "ResourceType"]
