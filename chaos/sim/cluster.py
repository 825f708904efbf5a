"""The simulator core: real KRaft nodes on a seeded network, driven by one event queue.

Theory of operation
-------------------
A FoundationDB-style deterministic simulation of ``refka cluster``: the *same* sans-IO cores
(:class:`reference.node.node.KRaftNode`: Raft, the controller, the broker) run in one process,
and everything that would be I/O or time is an event in one queue ordered by
``(simulated time, sequence number)``.  The sequence number breaks ties in the order events were
scheduled, so the run is a pure function of the seed, the node settings and the fault schedule.

Events (each a closure with a label that goes into the trace):

* **tick** every ``tick_ms``: every live, unpaused node is polled (its timers: elections, fetch
  timeouts, heartbeats, ISR shrinks, purgatory expiry) and so are the clients.
* **arrival** of a request at its destination's listener: the request is *encoded to a frame*
  and handed to ``handle_frame`` of the broker (broker plane) or of the node's
  :class:`~reference.node.node.ControllerApis` (quorum and controller planes), so the wire codec
  runs as over sockets.  The answer -- at once, or later when a ``Pending`` completes -- is sent
  back over the network as another message.
* **answer** of a request at its source: decoded and handed to ``OutboundRequest.complete``.
* **timeout**: ``timeout_ms`` after a request left the outbox, it fails if nothing came back
  (Kafka's ``NetworkClient`` request timeout); a lost message ends this way.
* **reset**: a request sent to a node that crashed, or restarted, since fails after one hop (the
  connection was reset or refused).
* the fault schedule and the clients add their own events (:mod:`chaos.sim.faults`,
  :mod:`chaos.sim.clients`).

After every event the outboxes of nodes and clients are drained (in node-id, then client order)
and every *observer* is called (the invariants and coverage probes); the event's label is hashed
into :attr:`SimCluster.digest`, the fingerprint of the whole run.

Node lifecycle: :meth:`crash` drops the node object (its files stay: Kafka's process crash keeps
the page cache), marks its outgoing requests done so no answer reaches the dead instance, and
resets the requests others had parked on it; :meth:`start` builds a new incarnation from the
node's files; :meth:`pause` holds every message to and from the node and its polls until
:meth:`resume` (a long GC pause: timers fire late, all at once).

A :meth:`power_loss` drops the node the same way, but closes nothing cleanly, and then cuts its
files back to what reached the disk plus a prefix of the rest, drawn from the run's ``Random``
(:class:`~chaos.sim.disk.DiskModel`, told of every fsync through :mod:`reference.durability`);
the next :meth:`start` recovers from that, as Kafka after an unclean shutdown.

Not modelled (yet): the order of requests on one connection (a Kafka listener answers one
connection's requests in order; here requests are independent), a slow disk.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from reference.broker.core import NO_RESPONSE, CloseConnection, FrameServer
from reference.broker.pending import Pending
from reference.client.outbox import OutboundRequest, Outbox
from reference.node.node import ControllerApis, KRaftNode, format_log_dir
from reference.protocol.apis import API_BY_KEY
from reference.protocol.frames import decode_response, encode_request

from .disk import DiskModel, PowerLossReport
from .network import Endpoint, Network

log = logging.getLogger("refka.sim")

CLUSTER_ID = "MkU3OEVBNTcwNTJENDM2Qg"
BASE_PORT = 40000  # addresses are names only here: nothing listens
START_MS = 1_000_000
TICK_MS = 10
COMBINED = "broker,controller"

Listener = Callable[[KRaftNode], Any]  # picks the listener core of the destination node


def node_settings(node_id: int, nodes: int, data_dir: Path, extra: dict[str, str] | None = None,
                  roles: list[str] | None = None) -> dict[str, str]:
    """Node ``node_id``'s properties; ``roles[i]`` is node i's ``process.roles`` (all combined by
    default).  The voters are the nodes with the controller role; broker-only nodes are observers."""
    roles = roles or [COMBINED] * nodes
    voters = ",".join(f"{i}@127.0.0.1:{BASE_PORT + nodes + i}" for i in range(nodes) if "controller" in roles[i])
    listeners = []
    if "broker" in roles[node_id]:
        listeners.append(f"PLAINTEXT://127.0.0.1:{BASE_PORT + node_id}")
    if "controller" in roles[node_id]:
        listeners.append(f"CONTROLLER://127.0.0.1:{BASE_PORT + nodes + node_id}")
    brokers = sum("broker" in role for role in roles)
    return {
        "process.roles": roles[node_id],
        "node.id": str(node_id),
        "controller.quorum.voters": voters,
        "listeners": ",".join(listeners),
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        "offsets.topic.replication.factor": str(max(1, min(brokers, 3))),
        "group.initial.rebalance.delay.ms": "0",
        **(extra or {}),
    }


class SimTimeLogHandler(logging.Handler):
    """Every ``refka.*`` log line of a run, stamped with the simulated time (the nodes have no clock)."""

    def __init__(self, cluster: SimCluster, stream: Any) -> None:
        super().__init__(logging.INFO)
        self.cluster = cluster
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        elapsed = (self.cluster.now_ms - START_MS) / 1000
        print(f"[t={elapsed:9.3f}s] {record.name}: {record.getMessage()}", file=self.stream)

    def __enter__(self) -> SimTimeLogHandler:
        logger = logging.getLogger("refka")
        self._level = logger.level
        logger.setLevel(logging.INFO)
        logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logger = logging.getLogger("refka")
        logger.removeHandler(self)
        logger.setLevel(self._level)


@dataclass(order=True)
class _Scheduled:
    at_ms: int
    sequence: int
    label: str = field(compare=False)
    action: Callable[[], None] = field(compare=False)
    idle: Callable[[], bool] | None = field(compare=False, default=None)  # True: the action would do nothing


class EventQueue:
    """Events by ``(time, sequence)``: equal times run in the order they were scheduled."""

    def __init__(self) -> None:
        self._heap: list[_Scheduled] = []
        self._sequence = 0

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, at_ms: int, label: str, action: Callable[[], None], idle: Callable[[], bool] | None = None) -> None:
        heapq.heappush(self._heap, _Scheduled(at_ms, self._sequence, label, action, idle))
        self._sequence += 1

    def pop(self) -> _Scheduled:
        return heapq.heappop(self._heap)

    def peek_time(self) -> int | None:
        return self._heap[0].at_ms if self._heap else None


class SimClient(Protocol):
    """What the simulator needs of a client: a name, an outbox and a poll (see clients.py)."""

    name: str
    outbox: Outbox

    def poll(self, now_ms: int) -> None: ...


class SimCluster:
    """N KRaft nodes, clients and a network under one event queue (see the module docstring)."""

    def __init__(self, root: Path, nodes: int = 3, extra: dict[str, str] | None = None, seed: int = 0,
                 roles: list[str] | None = None, tick_ms: int = TICK_MS) -> None:
        if roles is not None and len(roles) != nodes:
            raise ValueError(f"{len(roles)} roles for {nodes} nodes")
        self.root = root
        self.count = nodes
        self.extra = extra
        self.roles = roles or [COMBINED] * nodes
        self.seed = seed
        self.rng = random.Random(seed)
        self.network = Network(self.rng)
        self.queue = EventQueue()
        self.now_ms = START_MS
        self.tick_ms = tick_ms
        self.nodes: dict[int, KRaftNode] = {}
        self.incarnation: dict[int, int] = {}
        self.paused: set[int] = set()
        self.clients: list[SimClient] = []
        self.observers: list[Callable[[SimCluster, str], None]] = []
        self.started_hooks: list[Callable[[KRaftNode], None]] = []
        self.events = 0
        self.messages = 0
        self._digest = hashlib.sha256()
        self.trace: list[str] | None = None  # every label, when asked for (replays, shrinking)
        self._held: dict[int, list[Callable[[], None]]] = {}
        self._outgoing: dict[int, list[OutboundRequest]] = {}  # per node: sent, maybe unanswered
        self._parked: dict[int, list[tuple[Endpoint, OutboundRequest]]] = {}  # Pending answers per node
        self._apis: dict[int, ControllerApis] = {}
        self.disk = DiskModel(root)  # what an fsync made durable, for power losses
        self.power_losses: list[int] = []  # the nodes that lost power, in order (for the invariants)
        for node_id in range(nodes):
            self.start(node_id)
        self.queue.push(self.now_ms + tick_ms, "tick", self._tick)

    # -- the run ---------------------------------------------------------------------------------

    @property
    def digest(self) -> str:
        return self._digest.hexdigest()

    def at(self, at_ms: int, label: str, action: Callable[[], None], idle: Callable[[], bool] | None = None) -> None:
        self.queue.push(max(at_ms, self.now_ms), label, action, idle)

    def step(self) -> None:
        """Run the next event, drain every outbox, tell the observers.

        An event whose ``idle()`` says it would do nothing (the timeout of a request already
        answered) still happens -- it is counted and in the trace and digest -- but nothing runs:
        the outboxes were drained after the previous event, and no state changed for the
        observers to see."""
        event = self.queue.pop()
        self.now_ms = event.at_ms
        idle = event.idle is not None and event.idle()
        if not idle:
            event.action()
            self._drain()
        self.events += 1
        line = f"{self.now_ms} {event.label}"
        self._digest.update(line.encode() + b"\n")
        if self.trace is not None:
            self.trace.append(line)
        if not idle:
            for observe in self.observers:
                observe(self, event.label)

    def run_until(self, condition: Callable[[], bool], limit_ms: int) -> bool:
        """Run events until ``condition()`` holds (True) or ``limit_ms`` of simulated time pass (False)."""
        end = self.now_ms + limit_ms
        while not condition():
            next_at = self.queue.peek_time()
            if next_at is None or next_at > end:
                self.now_ms = end
                return condition()
            self.step()
        return True

    def run_for(self, ms: int) -> None:
        end = self.now_ms + ms
        while (next_at := self.queue.peek_time()) is not None and next_at <= end:
            self.step()
        self.now_ms = end

    def _tick(self) -> None:
        for node_id, node in list(self.nodes.items()):
            if node_id not in self.paused:
                node.poll(self.now_ms)
        for client in self.clients:
            client.poll(self.now_ms)
        self.queue.push(self.now_ms + self.tick_ms, "tick", self._tick)

    # -- nodes -----------------------------------------------------------------------------------

    def start(self, node_id: int) -> KRaftNode:
        """Start node ``node_id`` from its files (formatting them the first time)."""
        data_dir = self.root / f"node-{node_id}"
        format_log_dir(data_dir, CLUSTER_ID, node_id)
        node = KRaftNode(node_settings(node_id, self.count, data_dir, self.extra, self.roles), self.now_ms,
                         rng=random.Random(self.rng.random()))
        if node.broker is not None:
            node.broker.host, node.broker.port = "127.0.0.1", BASE_PORT + node_id
            node.start_lifecycle([("PLAINTEXT", "127.0.0.1", BASE_PORT + node_id)], self.now_ms)
        self.nodes[node_id] = node
        self.incarnation[node_id] = self.incarnation.get(node_id, -1) + 1
        self.paused.discard(node_id)
        for hook in self.started_hooks:
            hook(node)
        log.info("node %d started (incarnation %d)", node_id, self.incarnation[node_id])
        return node

    def crash(self, node_id: int) -> None:
        """Kill the process: its files stay, its connections break."""
        node = self._drop(node_id)
        if node.broker is not None:
            node.broker.replicas.directory.shutdown()
        node.raft.close()
        log.info("node %d crashed", node_id)

    def power_loss(self, node_id: int) -> PowerLossReport:
        """The machine loses power: the process dies without closing anything, and its files are
        cut back to what reached the disk plus a drawn prefix of the rest (:mod:`chaos.sim.disk`).
        No clean-shutdown marker is written, so the node recovers its logs when it starts again."""
        node = self._drop(node_id)
        self.disk.frozen = True  # the descriptors close, but nothing more reaches the disk
        try:
            if node.broker is not None:
                for partition_log in node.broker.replicas.directory.logs.values():
                    partition_log.close_without_flush()
            node.raft.log.close_without_flush()
        finally:
            self.disk.frozen = False
        report = self.disk.power_loss(self.root / f"node-{node_id}", self.rng)
        self.power_losses.append(node_id)
        log.info("node %d lost power: %s", node_id, report.describe())
        return report

    def _drop(self, node_id: int) -> KRaftNode:
        """Forget the process of ``node_id``: its requests, the ones parked on it, its pause."""
        node = self.nodes.pop(node_id)
        self.paused.discard(node_id)
        self._held.pop(node_id, None)
        for request in self._outgoing.pop(node_id, []):
            request.done = True  # its callbacks belong to the dead instance
        for source, request in self._parked.pop(node_id, []):
            self._reset_later(source, request, f"node {node_id} crashed")
        return node

    def pause(self, node_id: int) -> None:
        if node_id in self.nodes:
            self.paused.add(node_id)

    def resume(self, node_id: int) -> None:
        if node_id not in self.paused:
            return
        self.paused.discard(node_id)
        for action in self._held.pop(node_id, []):
            self.at(self.now_ms, f"release to node {node_id}", action)

    def is_up(self, node_id: int) -> bool:
        return node_id in self.nodes

    def _controller_apis(self, node: KRaftNode) -> ControllerApis:
        if id(node) not in self._apis:
            self._apis[id(node)] = ControllerApis(node)
        return self._apis[id(node)]

    # -- messages --------------------------------------------------------------------------------

    def _planes(self, node: KRaftNode) -> list[tuple[Outbox, Listener]]:
        planes: list[tuple[Outbox, Listener]] = [(node.raft_outbox, self._controller_apis),
                                                 (node.controller_outbox, self._controller_apis)]
        if node.broker is not None:
            planes.append((node.broker.outbox, _broker_plane))
            planes.append((node.broker.txn_outbox, _broker_plane))
        return planes

    def _drain(self) -> None:
        for node_id, node in list(self.nodes.items()):
            if node_id in self.paused:
                continue
            for outbox, listener in self._planes(node):
                for request in outbox.drain():
                    pending = self._outgoing.setdefault(node_id, [])
                    if len(pending) > 64:
                        pending[:] = [r for r in pending if not r.done]
                    pending.append(request)
                    self._send(node_id, request, listener)
        for client in self.clients:
            for request in client.outbox.drain():
                self._send(client.name, request, _broker_plane)

    def _send(self, source: Endpoint, request: OutboundRequest, listener: Listener) -> None:
        self.messages += 1
        destination = request.destination
        api = API_BY_KEY[request.api_key].name
        self.at(self.now_ms + request.timeout_ms, f"timeout {source}->{destination} {api}",
                lambda: request.fail(TimeoutError(f"no answer from node {destination}"), self.now_ms),
                idle=lambda: request.done)  # OutboundRequest.fail does nothing to a done request
        incarnation = self.incarnation.get(destination)
        for arrival in self.network.transmit(source, destination, self.now_ms):
            self.at(arrival, f"request {source}->{destination} {api}",
                    lambda: self._arrive(source, request, listener, incarnation))

    def _reset_later(self, source: Endpoint, request: OutboundRequest, why: str) -> None:
        self.at(self.now_ms + self.network.base_delay_ms, f"reset {source}->{request.destination}",
                lambda: request.fail(ConnectionResetError(why), self.now_ms))

    def _arrive(self, source: Endpoint, request: OutboundRequest, listener: Listener, incarnation: int | None) -> None:
        destination = request.destination
        target = self.nodes.get(destination)
        if target is None or self.incarnation.get(destination) != incarnation:
            self._reset_later(source, request, f"node {destination} is not the process the request was sent to")
            return
        if destination in self.paused:
            self._held.setdefault(destination, []).append(lambda: self._arrive(source, request, listener, incarnation))
            return
        frames: FrameServer | None = listener(target)
        if frames is None:
            self._reset_later(source, request, f"node {destination} has no such listener")
            return
        api = API_BY_KEY[request.api_key]
        version = request.version
        if version is None:
            _, high = frames.supported_versions.get(request.api_key, (0, -1))
            version = min(high, api.request.valid.high if api.request.valid.high is not None else high)
            if request.max_version is not None:  # the core asked for no newer (e.g. one naming topics)
                version = min(version, request.max_version)
        frame = encode_request(api, version, 1, f"sim-{source}", request.body)
        try:
            reply = frames.handle_frame(frame[4:], self.now_ms)
        except CloseConnection as closed:
            self._answer_later(destination, source, request, closed, api.name, version)
            return
        if reply is NO_RESPONSE:
            return
        if isinstance(reply, Pending):
            parked = self._parked.setdefault(destination, [])
            parked.append((source, request))
            answered_by = self.incarnation[destination]

            def on_done(encoded: Any) -> None:
                if self.incarnation.get(destination) == answered_by and destination in self.nodes:
                    if (source, request) in parked:
                        parked.remove((source, request))
                    self._answer_later(destination, source, request, encoded, api.name, version)

            reply.on_done(on_done)
        else:
            self._answer_later(destination, source, request, reply, api.name, version)

    def _answer_later(self, destination: int, source: Endpoint, request: OutboundRequest, encoded: Any,
                      api_name: str, version: int) -> None:
        source_incarnation = self.incarnation.get(source) if isinstance(source, int) else None
        for arrival in self.network.transmit(destination, source, self.now_ms):
            self.at(arrival, f"answer {destination}->{source} {api_name}",
                    lambda: self._answer(source, source_incarnation, request, encoded, version))

    def _answer(self, source: Endpoint, incarnation: int | None, request: OutboundRequest, encoded: Any,
                version: int) -> None:
        if isinstance(source, int):
            if source not in self.nodes or self.incarnation.get(source) != incarnation:
                return  # the connection died with the process that opened it
            if source in self.paused:
                self._held.setdefault(source, []).append(
                    lambda: self._answer(source, incarnation, request, encoded, version))
                return
        if request.done:
            return
        if isinstance(encoded, CloseConnection):
            request.fail(encoded, self.now_ms)
            return
        _, body = decode_response(API_BY_KEY[request.api_key], version, encoded[4:])
        request.complete(body, self.now_ms)

    # -- reading the cluster ---------------------------------------------------------------------

    def raft_leader(self) -> KRaftNode | None:
        """The live node that leads the quorum in the newest epoch and whose controller is active, if
        any (a deposed leader that has not heard of the new epoch still believes it leads)."""
        newest = self.newest_raft_leader()
        if newest is not None and newest.controller is not None and newest.controller.state.value == "ACTIVE":
            return newest
        return None

    def newest_raft_leader(self) -> KRaftNode | None:
        """The live node that leads the quorum in the highest epoch any live node knows, if any (a
        deposed leader, paused or cut off, still believes it leads its older epoch)."""
        newest = max((node.raft.epoch for node in self.nodes.values()), default=-1)
        return next((node for node in self.nodes.values()
                     if node.raft.leader_id == node.node_id and node.raft.epoch == newest), None)


def _broker_plane(node: KRaftNode) -> Any:
    return node.broker
