"""Node control through the user's own command: the suite's fault tests on any cluster.

Theory of operation
-------------------
The fault tests (``test_cluster``, ``test_replication``) crash a node and start it again; they
ask a ``cluster_control`` fixture for three things: ``kill(node)``, ``restart(node)`` and
``alive(node)``.  For a cluster the project started itself, the fixture attaches to its
``cluster.json`` (``--cluster-state``).  Anyone else's cluster -- docker containers, systemd
units, machines behind ssh, a managed service's API -- is reached through ``--node-control CMD``,
a command line that this module runs once per action::

    --node-control 'docker {action} kafka-{node}'          # docker kill kafka-2, docker restart kafka-2
    --node-control 'ssh ops@host sudo systemctl {action} kafka@{node}'
    --node-control './my-nodes.sh'                          # run as ./my-nodes.sh kill 2

``{action}`` becomes ``kill`` or ``restart`` and ``{node}`` the node id as Metadata names it; a
template without placeholders gets the two appended as arguments.  The command is split like a
shell would split it (no shell runs it, so no quoting surprises), must exit 0, and is given
``COMMAND_TIMEOUT_S``; its stderr is quoted when it fails.

What the suite does not take on trust from the command:

* Addresses come from the broker, not the user: Metadata at attach time (every node must be up
  then) maps node ids to host:port.
* ``alive(node)`` is a protocol probe -- the node answers ApiVersions within ``PROBE_TIMEOUT_S`` --
  so a paused node counts as dead, as it does for the cluster.
* ``kill`` returns once the node stops answering, ``restart`` once it answers ApiVersions again
  (bounded waits): commands that return before the effect (``docker restart`` is one) are fine.
"""

from __future__ import annotations

import shlex
import subprocess
import time

from conformance import raw

COMMAND_TIMEOUT_S = 120.0
PROBE_TIMEOUT_S = 2.0
SETTLE_TIMEOUT_S = 60.0


class NodeControlError(RuntimeError):
    """The node-control command failed, or the node did not reach the state it was sent to."""


class CommandNodeControl:
    """``kill``/``restart``/``alive`` for the fault tests, through a user-supplied command."""

    KIND = "command"

    def __init__(self, template: str, addresses: dict[int, str], settle_timeout: float = SETTLE_TIMEOUT_S) -> None:
        if not template.strip():
            raise NodeControlError("--node-control needs a command")
        self.template = template
        self.addresses = addresses  # node id -> host:port
        self.settle_timeout = settle_timeout

    @classmethod
    def for_cluster(cls, template: str, bootstrap: str) -> CommandNodeControl:
        """Attach to the cluster behind ``bootstrap``: its nodes' addresses from Metadata."""
        for address in (a.strip() for a in bootstrap.split(",")):
            try:
                with raw.Connection.to(address, timeout=10) as conn:
                    brokers = raw.metadata(conn, []).brokers
            except (OSError, raw.ConnectionClosed):
                continue
            return cls(template, {node_id: f"{info.host}:{info.port}" for node_id, info in brokers.items()})
        raise NodeControlError(f"no bootstrap broker of {bootstrap} answered Metadata")

    def command(self, action: str, node_id: int) -> list[str]:
        """The argument vector run for ``action`` on ``node_id``."""
        if "{action}" in self.template or "{node}" in self.template:
            return shlex.split(self.template.replace("{action}", action).replace("{node}", str(node_id)))
        return [*shlex.split(self.template), action, str(node_id)]

    def _run(self, action: str, node_id: int) -> None:
        if node_id not in self.addresses:
            raise NodeControlError(f"no node {node_id} in the cluster's Metadata (nodes {sorted(self.addresses)})")
        argv = self.command(action, node_id)
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as failed:
            raise NodeControlError(f"node control `{shlex.join(argv)}`: {failed}") from failed
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise NodeControlError(f"node control `{shlex.join(argv)}` exited {done.returncode}"
                                   + (f": {detail[-1]}" if detail else ""))

    def alive(self, node_id: int) -> bool:
        try:
            with raw.Connection.to(self.addresses[node_id], timeout=PROBE_TIMEOUT_S) as conn:
                raw.api_versions(conn)
            return True
        except (OSError, raw.ConnectionClosed):
            return False

    def _await(self, node_id: int, alive: bool, what: str) -> None:
        deadline = time.monotonic() + self.settle_timeout
        while self.alive(node_id) != alive:
            if time.monotonic() > deadline:
                raise NodeControlError(f"node {node_id} did not {what} within {self.settle_timeout:.0f} s")
            time.sleep(0.2)

    def kill(self, node_id: int) -> None:
        self._run("kill", node_id)
        self._await(node_id, alive=False, what="stop answering after kill")

    def restart(self, node_id: int) -> None:
        self._run("restart", node_id)
        self._await(node_id, alive=True, what="answer again after restart")
