"""Split roles over real sockets, in one process: three controller-only nodes and two broker-only
nodes, each a :class:`~reference.node.server.NodeServer` on 127.0.0.1.  The brokers replicate the
metadata log as Raft observers through the voters' controller listeners and register."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from conformance.fixtures import free_port_block
from reference.node.broker_lifecycle import BrokerState
from reference.node.node import KRaftNode, format_log_dir
from reference.node.server import NodeServer, wall_clock_ms

from .harness import CLUSTER_ID

pytestmark = [pytest.mark.slow]
ROLES = ["controller", "controller", "controller", "broker", "broker"]
BROKERS = [3, 4]


def settings(node_id: int, base: int, data_dir: Path) -> dict[str, str]:
    voters = ",".join(f"{i}@127.0.0.1:{base + i}" for i, role in enumerate(ROLES) if role == "controller")
    listener = "CONTROLLER" if ROLES[node_id] == "controller" else "PLAINTEXT"
    return {
        "process.roles": ROLES[node_id],
        "node.id": str(node_id),
        "controller.quorum.voters": voters,
        "listeners": f"{listener}://127.0.0.1:{base + node_id}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        "offsets.topic.replication.factor": "2",
    }


async def run_cluster(tmp_path: Path) -> list[KRaftNode]:
    base = free_port_block(len(ROLES))
    servers: list[NodeServer] = []
    try:
        for node_id in range(len(ROLES)):
            data_dir = tmp_path / f"node-{node_id}"
            format_log_dir(data_dir, CLUSTER_ID, node_id)
            server = NodeServer(KRaftNode(settings(node_id, base, data_dir), wall_clock_ms()))
            await server.start()
            servers.append(server)
        nodes = [server.node for server in servers]

        def registered() -> bool:
            return all(nodes[broker].broker_state is BrokerState.RUNNING for broker in BROKERS) and all(
                sorted(node.image.brokers) == BROKERS and not any(r.fenced for r in node.image.brokers.values())
                for node in nodes)

        async with asyncio.timeout(45):
            while not registered():
                await asyncio.sleep(0.1)
        return nodes
    finally:
        for server in servers:
            await server.stop()


def test_controller_only_and_broker_only_nodes_form_a_cluster_over_sockets(tmp_path: Path) -> None:
    nodes = asyncio.run(run_cluster(tmp_path))
    leader = nodes[0].raft.leader_id
    assert leader in (0, 1, 2)
    for broker in BROKERS:
        assert not nodes[broker].raft.is_voter and nodes[broker].raft.leader_id == leader
        assert nodes[broker].raft.voted_id is None
