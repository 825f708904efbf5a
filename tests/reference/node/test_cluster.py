"""``refka cluster``: three reference processes form a KRaft quorum that survives losing its
active controller, and the node-control API is the one the suite drives Kafka with."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance.fixtures import free_port_block
from reference.node.cluster import ReferenceCluster
from reference.node.local_cluster import STATE_FILE, cluster_kind, metadata_broker_count
from reference.protocol.apis import API_BY_KEY
from reference.protocol.frames import SIZE_PREFIX, decode_response, encode_request

pytestmark = [pytest.mark.slow]
DESCRIBE_QUORUM = API_BY_KEY[55]


def describe_quorum(port: int) -> object:
    """DescribeQuorum straight to a controller listener: who leads, in which epoch."""
    import socket

    topic = DESCRIBE_QUORUM.request.struct("TopicData")
    partition = DESCRIBE_QUORUM.request.struct("PartitionData")
    body = DESCRIBE_QUORUM.request.make(topics=[topic.make(topic_name="__cluster_metadata",
                                                           partitions=[partition.make(partition_index=0)])])
    frame = encode_request(DESCRIBE_QUORUM, 1, 7, "test", body)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(frame)
        size = SIZE_PREFIX.unpack(conn.recv(4, socket.MSG_WAITALL))[0]
        payload = conn.recv(size, socket.MSG_WAITALL)
    return decode_response(DESCRIBE_QUORUM, 1, payload)[1].topics[0].partitions[0]


def wait_for(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


@pytest.fixture
def cluster(tmp_path: Path):  # type: ignore[no-untyped-def]
    started = ReferenceCluster(nodes=3, base_port=free_port_block(6), data_dir=tmp_path / "cluster")
    started.start(timeout=60)
    yield started
    started.stop()


def test_three_nodes_elect_one_controller_and_list_three_brokers(cluster: ReferenceCluster) -> None:
    state = json.loads((cluster.data_dir / STATE_FILE).read_text())
    assert cluster_kind(cluster.data_dir) == "reference" and len(state["nodes"]) == 3
    answers = {node.node_id: describe_quorum(node.controller_port) for node in cluster.nodes}
    # DescribeQuorum is answered by the leader only; the others say NOT_LEADER_OR_FOLLOWER (6).
    leading = [node_id for node_id, answer in answers.items() if answer.error_code == 0]  # type: ignore[attr-defined]
    assert len(leading) == 1 and answers[leading[0]].leader_id == leading[0]  # type: ignore[attr-defined]
    assert sorted(voter.replica_id for voter in answers[leading[0]].current_voters) == [0, 1, 2]  # type: ignore[attr-defined]
    assert {answer.error_code for node_id, answer in answers.items() if node_id not in leading} == {6}  # type: ignore[attr-defined]
    assert [metadata_broker_count("127.0.0.1", node.port) for node in cluster.nodes] == [3, 3, 3]


def active_controller(cluster: ReferenceCluster, among: list[int]) -> tuple[int, int] | None:
    for node in cluster.nodes:
        if node.node_id in among:
            answer = describe_quorum(node.controller_port)
            if answer.error_code == 0:  # type: ignore[attr-defined]
                return answer.leader_id, answer.leader_epoch  # type: ignore[attr-defined]
    return None


def test_killing_the_active_controller_elects_another_and_a_restart_rejoins(cluster: ReferenceCluster) -> None:
    found = active_controller(cluster, [0, 1, 2])
    assert found is not None
    leader, epoch = found
    cluster.kill(leader)
    others = [node.node_id for node in cluster.nodes if node.node_id != leader]
    survivor = cluster.nodes[others[0]]

    def new_leader() -> bool:
        now = active_controller(cluster, others)
        return now is not None and now[0] != leader and now[1] > epoch

    wait_for(new_leader)
    # The killed broker is fenced after broker.session.timeout.ms: the others stop listing it.
    wait_for(lambda: metadata_broker_count("127.0.0.1", survivor.port) == 2, timeout=30)
    cluster.restart(leader, timeout=60)
    wait_for(lambda: all(metadata_broker_count("127.0.0.1", node.port) == 3 for node in cluster.nodes))


def test_the_command_line_starts_kills_and_stops(tmp_path: Path) -> None:
    base = free_port_block(6)
    data_dir = tmp_path / "cli"
    refka = [sys.executable, "-m", "reference", "cluster"]
    started = subprocess.run([*refka, "start", "--nodes", "3", "--base-port", str(base), "--data-dir", str(data_dir)],
                             capture_output=True, text=True, timeout=120)
    try:
        assert started.returncode == 0, started.stderr
        assert started.stdout.strip() == f"127.0.0.1:{base},127.0.0.1:{base + 1},127.0.0.1:{base + 2}"
        killed = subprocess.run([*refka, "kill", "1", "--data-dir", str(data_dir)], capture_output=True, text=True)
        assert killed.returncode == 0
        assert json.loads((data_dir / STATE_FILE).read_text())["nodes"][1]["pid"] is None
        unknown = subprocess.run([*refka, "kill", "7", "--data-dir", str(data_dir)], capture_output=True, text=True)
        assert unknown.returncode == 2 and unknown.stderr.strip().startswith("refka cluster: no node 7")
    finally:
        stopped = subprocess.run([*refka, "stop", "--data-dir", str(data_dir)], capture_output=True, text=True)
    assert stopped.returncode == 0 and "stopped the reference cluster" in stopped.stdout


def test_stop_also_stops_a_node_another_process_restarted(tmp_path: Path) -> None:
    """The suite's node-control fixture restarts nodes from its own process; the cluster that started
    them must stop the new processes too, or they outlive the run."""
    started = ReferenceCluster(nodes=3, base_port=free_port_block(6), data_dir=tmp_path / "cluster")
    started.start(timeout=60)
    try:
        other = ReferenceCluster.attach(started.data_dir)
        other.restart(1, timeout=60)
        restarted = other.nodes[1].pid
        assert restarted is not None and restarted != started.nodes[1].pid
    finally:
        started.stop()
    assert not Path(f"/proc/{restarted}/cmdline").exists() or b"reference" not in Path(
        f"/proc/{restarted}/cmdline").read_bytes()
