"""Several KRaft nodes in one process on a scripted network and a manual clock.

Each node's outboxes are delivered by encoding the request to a frame, handing it to the
destination's listener core (``ControllerApis`` for the controller plane, the broker for the
broker plane), and decoding the answer, so the wire codec is exercised as over sockets.  Answers
that are ``Pending`` are delivered when they complete.  Nothing here is random unless a seed is
given; time moves only when the test says so.  The node settings are the simulator's
(:mod:`chaos.sim.cluster`), which runs the same nodes under an event queue, a seeded network and
faults; this harness stays the simplest way to drive a few nodes step by step.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chaos.sim.cluster import BASE_PORT, CLUSTER_ID, COMBINED, node_settings
from reference.broker.core import NO_RESPONSE, CloseConnection
from reference.broker.pending import Pending
from reference.client.outbox import OutboundRequest, Outbox
from reference.node.node import ControllerApis, KRaftNode, format_log_dir
from reference.protocol.apis import API_BY_KEY
from reference.protocol.frames import decode_response, encode_request


class SimulatedCluster:
    def __init__(self, root: Path, nodes: int = 3, extra: dict[str, str] | None = None, seed: int = 0,
                 roles: list[str] | None = None) -> None:
        """``roles``: each node's ``process.roles`` (``"controller"``, ``"broker"`` or
        ``"broker,controller"``), as many as ``nodes``; every node is combined when None."""
        if roles is not None and len(roles) != nodes:
            raise ValueError(f"{len(roles)} roles for {nodes} nodes")
        self.root = root
        self.count = nodes
        self.extra = extra
        self.roles = roles or [COMBINED] * nodes
        self.now_ms = 1_000_000
        self.rng = random.Random(seed)
        self.nodes: dict[int, KRaftNode] = {}
        self.down: set[int] = set()
        self.cut: set[frozenset[int]] = set()  # pairs that cannot talk
        self._apis: dict[int, ControllerApis] = {}
        for node_id in range(nodes):
            self.start(node_id)

    def start(self, node_id: int) -> KRaftNode:
        data_dir = self.root / f"node-{node_id}"
        format_log_dir(data_dir, CLUSTER_ID, node_id)
        node = KRaftNode(node_settings(node_id, self.count, data_dir, self.extra, self.roles), self.now_ms,
                         rng=random.Random(self.rng.random()))
        if node.broker is not None:
            node.broker.host, node.broker.port = "127.0.0.1", BASE_PORT + node_id
            node.start_lifecycle([("PLAINTEXT", "127.0.0.1", BASE_PORT + node_id)], self.now_ms)
        self.nodes[node_id] = node
        self.down.discard(node_id)
        return node

    def crash(self, node_id: int) -> None:
        node = self.nodes.pop(node_id)
        node.broker and node.broker.replicas.directory.shutdown()  # type: ignore[func-returns-value]
        node.raft.close()
        self.down.add(node_id)

    def _controller_apis(self, node: KRaftNode) -> ControllerApis:
        if id(node) not in self._apis:
            self._apis[id(node)] = ControllerApis(node)
        return self._apis[id(node)]

    # -- delivery --------------------------------------------------------------------------------------

    def _outboxes(self, node: KRaftNode) -> list[tuple[Outbox, Callable[[KRaftNode], Any]]]:
        planes: list[tuple[Outbox, Callable[[KRaftNode], Any]]] = [(node.raft_outbox, self._controller_apis),
                                                                   (node.controller_outbox, self._controller_apis)]
        if node.broker is not None:
            planes.append((node.broker.outbox, lambda target: target.broker))
            planes.append((node.broker.txn_outbox, lambda target: target.broker))
        return planes

    def deliver_all(self) -> int:
        delivered = 0
        for source_id, node in list(self.nodes.items()):
            for outbox, listener in self._outboxes(node):
                for request in outbox.drain():
                    self._deliver(source_id, request, listener)
                    delivered += 1
        return delivered

    def _deliver(self, source_id: int, request: OutboundRequest, listener: Callable[[KRaftNode], Any]) -> None:
        target = self.nodes.get(request.destination)
        if target is None or frozenset((source_id, request.destination)) in self.cut:
            request.fail(ConnectionError(f"node {request.destination} unreachable"), self.now_ms)
            return
        frames = listener(target)
        api = API_BY_KEY[request.api_key]
        version = request.version
        if version is None:
            low, high = frames.supported_versions.get(request.api_key, (0, -1))
            version = min(high, api.request.valid.high if api.request.valid.high is not None else high)
        frame = encode_request(api, version, 1, f"node-{source_id}", request.body)
        try:
            reply = frames.handle_frame(frame[4:], self.now_ms)
        except CloseConnection as closed:
            request.fail(closed, self.now_ms)
            return

        def answer(encoded: Any) -> None:
            if isinstance(encoded, CloseConnection):
                request.fail(encoded, self.now_ms)
                return
            _, body = decode_response(api, version, encoded[4:])
            request.complete(body, self.now_ms)

        if reply is NO_RESPONSE:
            return
        if isinstance(reply, Pending):
            reply.on_done(answer)
        else:
            answer(reply)

    # -- time ------------------------------------------------------------------------------------------

    def step(self, ms: int = 10) -> None:
        """Deliver everything pending, advance the clock by ``ms``, poll every node."""
        for _ in range(50):
            if not self.deliver_all():
                break
        self.now_ms += ms
        for node in list(self.nodes.values()):
            node.poll(self.now_ms)
            if node.broker is not None:
                node.broker.fetch_purgatory.expire(self.now_ms)
        self.deliver_all()

    def run_until(self, condition: Callable[[], bool], limit_ms: int = 60_000, step_ms: int = 10) -> int:
        start = self.now_ms
        while not condition():
            if self.now_ms - start > limit_ms:
                raise AssertionError(f"not reached within {limit_ms} simulated ms")
            self.step(step_ms)
        return self.now_ms - start

    def leader(self) -> KRaftNode | None:
        for node in self.nodes.values():
            if node.raft.leader_id == node.node_id and node.controller is not None \
                    and node.controller.state.value == "ACTIVE":
                return node
        return None
