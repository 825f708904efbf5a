"""``--node-control CMD``: the suite's fault tests driven through a user's own command, shown on a
3-node reference cluster whose nodes the command ``refka cluster kill|restart N`` controls."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.node_control import CommandNodeControl, NodeControlError
from reference.node.cluster import ReferenceCluster


def test_placeholders_are_filled_and_a_bare_command_gets_action_and_node_appended() -> None:
    docker = CommandNodeControl("docker {action} 'kafka {node}'", {2: "h:1"})
    assert docker.command("kill", 2) == ["docker", "kill", "kafka 2"]
    script = CommandNodeControl("./nodes.sh --cluster a", {2: "h:1"})
    assert script.command("restart", 2) == ["./nodes.sh", "--cluster", "a", "restart", "2"]


def test_a_failing_command_is_reported_with_its_exit_status_and_last_stderr_line() -> None:
    control = CommandNodeControl(f"{shlex.quote(sys.executable)} -c 'import sys; sys.exit(\"no such node\")'",
                                 {1: "127.0.0.1:1"})
    with pytest.raises(NodeControlError, match=r"exited 1: no such node"):
        control.kill(1)
    with pytest.raises(NodeControlError, match="no node 7"):
        control.kill(7)


def _template(reference_cluster: ReferenceCluster) -> str:
    return f"{shlex.quote(sys.executable)} -m reference cluster {{action}} {{node}} --data-dir {shlex.quote(str(reference_cluster.data_dir))}"


@pytest.mark.slow
def test_kill_and_restart_through_the_command_are_seen_at_the_protocol(reference_cluster: ReferenceCluster) -> None:
    control = CommandNodeControl.for_cluster(_template(reference_cluster), reference_cluster.bootstrap_servers)
    assert sorted(control.addresses) == [0, 1, 2]
    assert all(control.alive(node) for node in control.addresses)
    control.kill(1)
    assert not control.alive(1) and not ReferenceCluster.attach(reference_cluster.data_dir).alive(1), "the process is gone"
    control.restart(1)
    assert control.alive(1) and ReferenceCluster.attach(reference_cluster.data_dir).alive(1)


@pytest.mark.slow
def test_a_command_that_reports_success_without_killing_is_caught(reference_cluster: ReferenceCluster) -> None:
    """The suite does not take a command's exit status on trust: a node still answering after
    ``kill`` fails the action (a fault test would otherwise pass without a fault)."""
    control = CommandNodeControl("true", CommandNodeControl.for_cluster("true", reference_cluster.bootstrap_servers).addresses,
                                 settle_timeout=2)
    with pytest.raises(NodeControlError, match="node 1 did not stop answering after kill"):
        control.kill(1)


@pytest.mark.slow
def test_a_suite_fault_test_runs_on_any_cluster_through_node_control(reference_cluster: ReferenceCluster, tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conformance.plugin", "-p", "no:cacheprovider", "--pyargs",
         "conformance.suite", "--bootstrap-server", reference_cluster.bootstrap_servers, "--node-control", _template(reference_cluster),
         "--results-json", str(results), "-q", "-k", "test_isr_drops_a_dead_follower_and_readmits_it"],
        capture_output=True, text=True, timeout=300)
    outcomes = [(r["test"], r["outcome"]) for r in json.loads(results.read_text())["results"]]
    assert outcomes == [("test_isr_drops_a_dead_follower_and_readmits_it", "passed")], done.stdout[-2000:]
