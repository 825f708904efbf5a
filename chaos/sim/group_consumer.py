"""Simulated group consumers: the reference client's consumer, unchanged, on the simulated network.

Theory of operation
-------------------
The producers of :mod:`chaos.sim.clients` are Kafka's delivery rules written out small; a group
consumer is too much protocol for that (FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
OffsetFetch, OffsetCommit, Fetch with sessions and KIP-320 validation).  So
:class:`SimGroupConsumer` runs the real one: :class:`reference.client.consumer_core.ConsumerCore`,
the sans-IO core behind ``reference.client.Consumer``, polled on every tick of the simulator
instead of by its asyncio shell.  Only two things are the simulator's own:

* **Addresses.**  The core names a destination by a connection id: a broker's node id, a
  bootstrap server's negative id, or a separate id for the group coordinator's connection
  (``ConsumerCore.address`` turns each into a host and port).  The simulator routes by node id,
  so each request leaves with the node id of the port it is for (``BASE_PORT + node id``).
* **The application.**  The consumer is the at-least-once loop of Kafka's documentation, with
  ``enable.auto.commit=false``: poll, process (record the poll in the history), commit what was
  processed, and poll again only when the commit is answered (``commitSync``).  A rebalance's
  callbacks are recorded (``rebalance``) and acknowledged at once.

What it checks (:data:`NO_SKIP`, the name ``spec/delivery.py`` gives the rule): when a commit of
``o`` for a partition is acknowledged, every offset below ``o`` was processed by some member of
the group (``sim-all`` holds only the idempotent producer's data records: no control records, no
compaction, so every offset below the high watermark holds a record).  A member commits only
what it processed, so a commit past an unprocessed offset means a broker handed out records with
a hole (a Fetch that skipped offsets) or resumed a member from an offset nobody committed.  Redelivery (a commit lost with
a coordinator, a revoked partition read again) is at-least-once's allowance, not a failure;
the history checker judges the reads as it does the docker runs' (phantom reads, two values at
one offset, reads going backwards without a rebalance).

Faults of the clients' own (:func:`draw_consumer_restarts`, per seed): a member stops, cleanly
(LeaveGroup) or by dying (its session times out), and a new member takes its place, so the group
rebalances and the new owner resumes from the committed offset.

Coverage: ``group-rebalance`` (an assignment given to a member), ``coordinator-failover`` (a
member moved to another coordinator), ``commit-refused`` (a commit answered with an error:
the generation moved on, or the coordinator went away).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

from chaos.history import FAIL, INFO, OK, HistoryWriter
from reference.client.cluster import TopicPartition
from reference.client.consumer_config import ConsumerConfig
from reference.client.consumer_core import ConsumerCore
from reference.client.fetcher import ConsumerRecord
from reference.client.offsets import CommitFuture
from reference.client.outbox import Outbox

from .cluster import BASE_PORT

NO_SKIP = "NoSkip"
GROUP = "sim-group"
COMMIT_TIMEOUT_MS = 10_000


class Processed:
    """The offsets the group's members processed, per partition, kept as the first offset not
    processed (everything below it was) and the processed offsets above it."""

    def __init__(self) -> None:
        self._prefix: dict[int, int] = {}
        self._above: dict[int, set[int]] = {}

    def add(self, partition: int, offset: int) -> None:
        prefix = self._prefix.get(partition, 0)
        if offset < prefix:
            return
        above = self._above.setdefault(partition, set())
        above.add(offset)
        while prefix in above:
            above.remove(prefix)
            prefix += 1
        self._prefix[partition] = prefix

    def first_unprocessed(self, partition: int) -> int:
        return self._prefix.get(partition, 0)


class SimGroupConsumer:
    """One member of the run's consumer group (see the module docstring)."""

    def __init__(self, name: str, nodes: list[int], topic: str, history: HistoryWriter,
                 processed: Processed, on_violation: Callable[[str, str, int], None]) -> None:
        self.name = name
        self.nodes = nodes
        self.topic = topic
        self.history = history
        self.processed = processed  # shared by the members: the group's work
        self.on_violation = on_violation
        self.outbox = Outbox()
        self.counts: Counter[str] = Counter()
        self.core = ConsumerCore(ConsumerConfig.from_properties({
            "bootstrap.servers": ",".join(f"127.0.0.1:{BASE_PORT + node}" for node in nodes),
            "client.id": name, "group.id": GROUP, "enable.auto.commit": "false",
            "auto.offset.reset": "earliest",
            # Shorter than Kafka's defaults, as the nodes' timeouts are (chaos.sim.run.NODE_SETTINGS).
            "session.timeout.ms": "6000", "heartbeat.interval.ms": "500", "request.timeout.ms": "5000",
            "partition.assignment.strategy": "range"}))
        self.core.subscribe([topic])
        self._commit: tuple[CommitFuture, dict[int, int]] | None = None
        self._coordinator: int | None = None
        self.stopped = False

    def stop(self, clean: bool, now_ms: int) -> None:
        """The application stops: ``clean`` closes the consumer (LeaveGroup: the group rebalances at
        once), else the process dies (the coordinator notices when the session times out).  A
        commit still in flight is abandoned either way; its answer reaches no one."""
        self.stopped = True
        if clean:
            self.core.unsubscribe()
            self._forward()

    def poll(self, now_ms: int) -> None:
        if self.stopped:
            return
        core = self.core
        core.poll(now_ms)
        self._record_rebalances()
        self._watch_coordinator()
        if self._commit is not None and self._commit[0].done():
            self._on_commit_answered(now_ms)
        if self._commit is None:
            self.counts["consumer-error"] += len(core.take_errors())  # for the application: nothing to undo
            records = core.take_records(500, now_ms)
            if records:
                self._process(records, now_ms)
        core.poll(now_ms)  # send what the steps above queued (a commit, a fetch)
        self._forward()

    def _forward(self) -> None:
        for request in self.core.outbox.drain():
            request.destination = self._node_of(request.destination)
            self.outbox.send(request)

    # -- the application ------------------------------------------------------------------------

    def _process(self, records: list[ConsumerRecord], now_ms: int) -> None:
        self.history.invoke(self.name, "poll")
        self.history.record(self.name, OK, "poll", {"records": [
            {"topic": r.topic, "partition": r.partition, "offset": r.offset,
             "key": None if r.key is None else r.key.decode(), "value": "" if r.value is None else r.value.decode()}
            for r in records]})
        for record in records:
            self.processed.add(record.partition, record.offset)
        offsets = {r.partition: r.offset + 1 for r in records}
        self.history.invoke(self.name, "commit", {str(p): o for p, o in sorted(offsets.items())})
        future = self.core.commit({TopicPartition(self.topic, p): o for p, o in offsets.items()},
                                  now_ms, COMMIT_TIMEOUT_MS, retry=True)
        self._commit = (future, offsets)

    def _on_commit_answered(self, now_ms: int) -> None:
        assert self._commit is not None
        future, offsets = self._commit
        self._commit = None
        error = future.exception()
        if error is not None:
            self.counts["commit-refused"] += 1
            self.history.record(self.name, FAIL, "commit", {"error": str(error)})
            return
        self.history.record(self.name, OK, "commit", {str(p): o for p, o in sorted(offsets.items())})
        for partition, offset in sorted(offsets.items()):
            first_gap = self.processed.first_unprocessed(partition)
            if offset > first_gap:
                self.on_violation(NO_SKIP, f"{self.name} committed {self.topic}-{partition} at {offset}, "
                                           f"but offset {first_gap} was never processed", now_ms)

    def _record_rebalances(self) -> None:
        calls = self.core.take_listener_calls()
        for call in calls:
            partitions = [{"topic": tp.topic, "partition": tp.partition}
                          for tp in sorted(call.partitions, key=lambda tp: (tp.topic, tp.partition))]
            change = "assigned" if call.kind == "assigned" else "revoked"  # lost: revoked, as the docker runs say
            self.history.record(self.name, INFO, "rebalance", {change: partitions})
            if call.kind == "assigned":
                self.counts["group-rebalance"] += 1
        if calls:
            self.core.ack_listener_calls(calls[-1].seq)

    def _watch_coordinator(self) -> None:
        coordinator = self.core.coordinator.coordinator_id
        if coordinator is not None and coordinator != self._coordinator:
            if self._coordinator is not None:
                self.counts["coordinator-failover"] += 1
            self._coordinator = coordinator

    # -- the network ----------------------------------------------------------------------------

    def _node_of(self, connection: int) -> int:
        address = self.core.address(connection)
        if address is None:
            raise ValueError(f"{self.name}: no address for connection {connection}")
        return address[1] - BASE_PORT


def draw_consumer_restarts(rng: random.Random, duration_ms: int) -> tuple[tuple[int, bool], ...]:
    """When (ms into the safety phase) a member is replaced, and whether it left cleanly: for half
    of the seeds none, for the others every ~2 to ~8 s.  (A dead member stays in the group until
    its session times out, and every joiner starts a rebalance that waits for it: restarts much
    more often than the session timeout keep the group rebalancing, as they would Kafka's.)"""
    if rng.random() < 0.5:
        return ()
    restarts: list[tuple[int, bool]] = []
    mean, at = rng.choice((2_000, 8_000)), 0
    while (at := at + 1 + int(rng.expovariate(1 / mean))) < duration_ms:
        restarts.append((at, rng.random() < 0.5))
    return tuple(restarts)
