"""A deterministic in-test network of RaftNodes: seeded delivery order, drops, partitions, crashes,
a manual clock, and the Raft safety properties checked after every step.

Every request a node puts in its outbox is encoded and decoded with its schema (so what the node
builds is valid on the wire), delivered after a random delay of 1-5 ms through
``RaftNode.handle_request``, and its answer -- at once, or when the node completes the Pending --
comes back the same way.  A dropped or cut request fails at its ``timeout_ms``.  Ties between events
due at the same millisecond are broken by the seeded random generator, so a seed replays a run.

Properties checked after every step (:meth:`RaftNetwork.check`), in the words of the KRaft TLA+
specifications:

* **ElectionSafety** -- at most one leader per epoch, over the whole run.
* **HighWatermarkMonotonic** -- a node's high watermark never decreases (per incarnation).
* **LogMatching** -- every batch below a node's high watermark equals the batch at that offset on
  every other node (base offset, last offset, epoch, CRC).
* **NoCommittedRecordLost / LeaderCompleteness** -- a node that becomes leader holds every batch
  committed before (at or above its log start offset, the rest being in its snapshot).
* **Listener** -- every committed batch a listener receives equals the committed batch at that offset.
* each node's own ``check_valid()``.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from reference.broker.pending import Pending
from reference.client.outbox import OutboundRequest, Outbox
from reference.controller.quorum_state import Role
from reference.controller.raft import CommittedBatch, RaftConfig, RaftNode, SnapshotReader, message_for
from reference.protocol.schema import Data
from reference.records.batch import iter_batches

START_MS = 1_700_000_000_000


@dataclass
class RecordingListener:
    """A listener that remembers what it was told; its state is snapshot + commits."""

    snapshot: SnapshotReader | None = None
    committed: list[CommittedBatch] = field(default_factory=list)
    leader_changes: list[tuple[int | None, int]] = field(default_factory=list)
    on_commit: Callable[[CommittedBatch], None] | None = None
    checked: int = 0  # how many commits the network has compared already

    def handle_commit(self, batch: CommittedBatch) -> None:
        if self.committed:
            assert batch.base_offset > self.committed[-1].last_offset, "commits arrive in order, once"
        self.committed.append(batch)
        if self.on_commit is not None:
            self.on_commit(batch)

    def handle_load_snapshot(self, reader: SnapshotReader) -> None:
        self.snapshot = reader
        self.committed = []
        self.checked = 0

    def handle_leader_change(self, leader_id: int | None, epoch: int) -> None:
        self.leader_changes.append((leader_id, epoch))

    def values(self) -> list[bytes]:
        """The state machine's contents: the snapshot's records, then every committed record."""
        base = self.snapshot.records if self.snapshot is not None else []
        return base + [value for batch in self.committed for value in batch.records]


@dataclass(frozen=True)
class BatchFingerprint:
    last_offset: int
    epoch: int
    crc: int


class RaftNetwork:
    def __init__(self, directory: Path, voter_ids: list[int], seed: int, *, config: RaftConfig | None = None,
                 drop_rate: float = 0.0, check_every_step: bool = True, observer_ids: tuple[int, ...] = ()) -> None:
        self.directory = directory
        self.voters = {voter: ("localhost", 9000 + voter) for voter in voter_ids}
        self.members = sorted([*voter_ids, *observer_ids])  # observers: nodes not in the voter set
        self.seed = seed
        self.rng = random.Random(seed)
        self.config = config or RaftConfig()
        self.drop_rate = drop_rate
        self.check_every_step = check_every_step
        self.now = START_MS
        self.nodes: dict[int, RaftNode] = {}
        self.outboxes: dict[int, Outbox] = {}
        self.listeners: dict[int, RecordingListener] = {}
        self.cut: set[tuple[int, int]] = set()  # (from, to) links that lose everything
        self._events: list[tuple[int, float, int, Callable[[], None]]] = []
        self._sequence = 0
        self._incarnation: dict[int, int] = {}
        # history for the properties
        self.leader_of_epoch: dict[int, int] = {}
        self.committed: dict[int, BatchFingerprint] = {}  # base offset -> committed batch
        self.committed_values: dict[int, CommittedBatch] = {}
        self._high_watermarks: dict[int, int] = {}  # id(node) -> last HW seen
        self._verified_up_to: dict[int, int] = {}  # id(node) -> offset checked for LogMatching
        self._leaders_checked: set[tuple[int, int]] = set()
        self.steps = 0
        self._steps_at_same_time = 0
        for node_id in self.members:
            self.start(node_id)

    # -- nodes ----------------------------------------------------------------------------------------

    def start(self, node_id: int, listener: RecordingListener | None = None) -> RaftNode:
        incarnation = self._incarnation.get(node_id, 0) + 1
        self._incarnation[node_id] = incarnation
        outbox = Outbox()
        listener = listener or RecordingListener()
        node = RaftNode(
            node_id, self.voters, self.directory / f"node-{node_id}", "test-cluster-id", outbox, self.now,
            self.config, listener, rng=random.Random(f"{self.seed}/{node_id}/{incarnation}"),
        )
        self.nodes[node_id] = node
        self.outboxes[node_id] = outbox
        self.listeners[node_id] = listener
        self._drain(node_id)
        return node

    def crash(self, node_id: int) -> None:
        """kill -9: the node object is gone, its files stay as they are."""
        node = self.nodes.pop(node_id)
        node.log.close_without_flush()
        self.outboxes.pop(node_id)

    def restart(self, node_id: int) -> RaftNode:
        if node_id in self.nodes:
            self.crash(node_id)
        return self.start(node_id)

    def isolate(self, node_id: int) -> None:
        for other in self.members:
            if other != node_id:
                self.cut.add((node_id, other))
                self.cut.add((other, node_id))

    def partition(self, *groups: set[int]) -> None:
        for group in groups:
            for member in group:
                for other in self.members:
                    if other not in group:
                        self.cut.add((member, other))
                        self.cut.add((other, member))

    def heal(self) -> None:
        self.cut.clear()

    # -- delivery ------------------------------------------------------------------------------------

    def _schedule(self, at: int, action: Callable[[], None]) -> None:
        self._sequence += 1
        heapq.heappush(self._events, (at, self.rng.random(), self._sequence, action))

    def _delay(self) -> int:
        return self.rng.randint(1, 5)

    def _lost(self, source: int, destination: int) -> bool:
        return (source, destination) in self.cut or self.rng.random() < self.drop_rate

    def _drain(self, node_id: int) -> None:
        outbox = self.outboxes.get(node_id)
        if outbox is None:
            return
        node = self.nodes[node_id]
        for request in outbox.drain():
            self._send(node_id, node, request)

    def _send(self, source: int, node: RaftNode, request: OutboundRequest) -> None:
        sent_at = self.now
        self._schedule(sent_at + request.timeout_ms, lambda: self._fail(source, node, request))
        if self._lost(source, request.destination):
            return
        schema, _ = message_for(request.api_key)
        assert request.version is not None
        body = schema.decode(schema.encode(request.body, request.version), request.version)
        self._schedule(self.now + self._delay(), lambda: self._deliver(source, node, request, body))

    def _fail(self, source: int, node: RaftNode, request: OutboundRequest) -> None:
        if self.nodes.get(source) is node and not request.done:
            request.fail(TimeoutError(f"request {request.api_key} to {request.destination} timed out"), self.now)
            self._drain(source)

    def _deliver(self, source: int, sender: RaftNode, request: OutboundRequest, body: Data) -> None:
        destination = request.destination
        receiver = self.nodes.get(destination)
        if receiver is None:
            return  # the destination is down: the request times out
        assert request.version is not None
        version = request.version
        answer = receiver.handle_request(request.api_key, version, body, self.now)
        self._drain(destination)

        def respond(response: Data) -> None:
            if self.nodes.get(destination) is not receiver or self._lost(destination, source):
                return
            _, schema = message_for(request.api_key)
            decoded = schema.decode(schema.encode(response, version), version)
            self._schedule(self.now + self._delay(), lambda: self._complete(source, sender, request, decoded))

        if isinstance(answer, Pending):
            answer.on_done(respond)
        else:
            respond(answer)

    def _complete(self, source: int, sender: RaftNode, request: OutboundRequest, response: Data) -> None:
        if self.nodes.get(source) is sender:
            request.complete(response, self.now)
            self._drain(source)

    # -- running ----------------------------------------------------------------------------------------

    def step(self, max_advance_ms: int = 10_000) -> None:
        """Advance the clock to the next event or deadline and run everything due then."""
        deadlines = [node.next_deadline() for node in self.nodes.values()]
        candidates = [deadline for deadline in deadlines if deadline is not None]
        if self._events:
            candidates.append(self._events[0][0])
        target = min(candidates, default=self.now + max_advance_ms)
        advanced_to = max(self.now, min(target, self.now + max_advance_ms))
        self._steps_at_same_time = self._steps_at_same_time + 1 if advanced_to == self.now else 0
        assert self._steps_at_same_time < 10_000, f"livelock at {self.now} (seed {self.seed}): {list(self.nodes.values())}"
        self.now = advanced_to
        while self._events and self._events[0][0] <= self.now:
            _, _, _, action = heapq.heappop(self._events)
            action()
        for node_id in self.rng.sample(sorted(self.nodes), len(self.nodes)):
            node = self.nodes.get(node_id)
            if node is None:
                continue
            deadline = node.next_deadline()
            if deadline is not None and deadline <= self.now:
                node.poll(self.now)
                self._drain(node_id)
        self.steps += 1
        if self.check_every_step:
            self.check()

    def run_for(self, duration_ms: int) -> None:
        end = self.now + duration_ms
        while self.now < end:
            self.step(max_advance_ms=end - self.now)

    def run_until(self, condition: Callable[[], bool], max_ms: int = 60_000) -> bool:
        end = self.now + max_ms
        while not condition():
            if self.now >= end:
                return False
            self.step(max_advance_ms=end - self.now)
        return True

    # -- helpers for tests -------------------------------------------------------------------------------

    def leader(self) -> RaftNode | None:
        """The live leader of the highest epoch, if any."""
        leaders = [node for node in self.nodes.values() if node.role is Role.LEADER]
        return max(leaders, key=lambda node: node.epoch) if leaders else None

    def stable_leader(self) -> RaftNode | None:
        """A leader that every live node follows in its epoch."""
        leader = self.leader()
        if leader is None:
            return None
        if all(node.epoch == leader.epoch and node.leader_id == leader.node_id for node in self.nodes.values()):
            return leader
        return None

    def elect(self, max_ms: int = 60_000) -> RaftNode:
        assert self.run_until(lambda: self.stable_leader() is not None, max_ms), f"no leader elected (seed {self.seed})"
        leader = self.stable_leader()
        assert leader is not None
        return leader

    def append(self, values: list[bytes]) -> int | None:
        """Append on the current leader; None when there is none."""
        leader = self.leader()
        if leader is None:
            return None
        offset = leader.append(values, self.now)
        self._drain(leader.node_id)
        return offset

    def committed_everywhere(self, offset: int) -> bool:
        return all(node.high_watermark > offset for node in self.nodes.values())

    # -- the properties ----------------------------------------------------------------------------------

    def check(self) -> None:
        for node_id, node in self.nodes.items():
            node.check_valid()
            self._check_election_safety(node_id, node)
            self._check_high_watermark(node)
            self._check_log_matching(node)
            self._check_listener(node_id, node)

    def _check_election_safety(self, node_id: int, node: RaftNode) -> None:
        if node.role is not Role.LEADER:
            return
        previous = self.leader_of_epoch.setdefault(node.epoch, node_id)
        assert previous == node_id, f"two leaders in epoch {node.epoch}: {previous} and {node_id} (seed {self.seed})"
        if (node_id, node.epoch) not in self._leaders_checked:
            self._leaders_checked.add((node_id, node.epoch))
            self._check_leader_completeness(node)

    def _check_high_watermark(self, node: RaftNode) -> None:
        last = self._high_watermarks.get(id(node), node.high_watermark)
        assert node.high_watermark >= last, f"HW of {node!r} went from {last} to {node.high_watermark} (seed {self.seed})"
        self._high_watermarks[id(node)] = node.high_watermark

    def _batches(self, node: RaftNode, start: int, end: int) -> list[tuple[int, BatchFingerprint]]:
        if start >= end:
            return []
        data = node.log.read(start, 1 << 30, max_offset=end).records
        return [
            (header.base_offset, BatchFingerprint(header.last_offset, header.partition_leader_epoch, header.crc))
            for _, header in iter_batches(data)
        ]

    def _check_log_matching(self, node: RaftNode) -> None:
        start = max(self._verified_up_to.get(id(node), 0), node.log_start_offset)
        for base_offset, fingerprint in self._batches(node, start, node.high_watermark):
            known = self.committed.setdefault(base_offset, fingerprint)
            assert known == fingerprint, (
                f"{node!r} has {fingerprint} at {base_offset} below its HW, committed was {known} (seed {self.seed})"
            )
        self._verified_up_to[id(node)] = max(start, node.high_watermark)

    def _check_leader_completeness(self, leader: RaftNode) -> None:
        for base_offset, fingerprint in sorted(self.committed.items()):
            if base_offset < leader.log_start_offset:
                continue
            found = dict(self._batches(leader, base_offset, fingerprint.last_offset + 1))
            assert found.get(base_offset) == fingerprint, (
                f"new leader {leader!r} lacks committed batch {fingerprint} at {base_offset} (seed {self.seed})"
            )

    def _check_listener(self, node_id: int, node: RaftNode) -> None:
        listener = self.listeners[node_id]
        for batch in listener.committed[listener.checked :]:
            known = self.committed_values.setdefault(batch.base_offset, batch)
            assert known == batch, f"node {node_id} committed {batch}, others {known} (seed {self.seed})"
        listener.checked = len(listener.committed)
