"""What a KRaft node is, read from Kafka's own config keys: roles, listeners, the voter set.

Theory of operation
-------------------
Apache Kafka 4 runs only in KRaft mode.  A node is configured with ``node.id`` and
``process.roles``: ``broker`` (serves clients, hosts partition replicas), ``controller`` (a voter
of the metadata quorum, possibly the active controller) or both (a *combined* node).  The same
keys configure a refka node, given with ``refka broker --set KEY=VALUE`` or in a properties file
(``refka broker --config server.properties``), so a Kafka ``server.properties`` works as it is:

=====================================  ============================================================
key                                    meaning
=====================================  ============================================================
``process.roles``                      ``broker``, ``controller`` or ``broker,controller``
``node.id``                            this node's id, unique among brokers and controllers
``listeners``                          ``NAME://host:port`` entries; port 0 picks a free port
``advertised.listeners``               what brokers tell clients, when it differs from the bound one
``controller.listener.names``          which listener names are the controller's
``listener.security.protocol.map``     NAME:PROTOCOL pairs (refka speaks PLAINTEXT only)
``inter.broker.listener.name``         the listener brokers use to reach each other
``controller.quorum.voters``           the static voter set: ``id@host:port,...``
=====================================  ============================================================

Rules Kafka applies at start (``KafkaConfig`` validation), and so does :func:`node_config`; each
failure is a :class:`NodeConfigError` with one line to show:

1. ``process.roles`` is empty (refka's single-node mode: one broker that is its own metadata,
   today's behaviour), or a non-empty subset of {broker, controller}.
2. A node with the controller role is in ``controller.quorum.voters``; a broker-only node is not.
3. A controller has at least one listener named in ``controller.listener.names``; a broker-only
   node has none of those among its listeners (it reaches the controllers through the voters'
   addresses instead).
4. A broker has a listener that is not a controller listener, and ``inter.broker.listener.name``
   (default: the first such listener) is one of them.

The result, :class:`NodeConfig`, is plain data; nothing here opens a socket.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

BROKER = "broker"
CONTROLLER = "controller"


class NodeConfigError(ValueError):
    """A node configuration Kafka would refuse to start with (one line, for the command line)."""


@dataclass(frozen=True)
class Listener:
    name: str  # e.g. PLAINTEXT, CONTROLLER
    host: str
    port: int  # 0: pick a free port at bind time

    def __str__(self) -> str:
        return f"{self.name}://{self.host}:{self.port}"


@dataclass(frozen=True)
class Voter:
    node_id: int
    host: str
    port: int


@dataclass(frozen=True)
class NodeConfig:
    node_id: int
    roles: frozenset[str]
    listeners: tuple[Listener, ...]
    controller_listener_names: tuple[str, ...]
    inter_broker_listener_name: str | None
    voters: tuple[Voter, ...]
    advertised: Mapping[str, tuple[str, int]] = field(default_factory=dict)

    @property
    def is_kraft(self) -> bool:
        """False for refka's single-node mode (no ``process.roles``): one broker, its own metadata."""
        return bool(self.roles)

    @property
    def is_broker(self) -> bool:
        return not self.roles or BROKER in self.roles

    @property
    def is_controller(self) -> bool:
        return CONTROLLER in self.roles

    @property
    def broker_listeners(self) -> tuple[Listener, ...]:
        return tuple(listener for listener in self.listeners if listener.name not in self.controller_listener_names)

    @property
    def controller_listeners(self) -> tuple[Listener, ...]:
        return tuple(listener for listener in self.listeners if listener.name in self.controller_listener_names)

    def voter(self, node_id: int) -> Voter | None:
        return next((voter for voter in self.voters if voter.node_id == node_id), None)


def parse_listeners(value: str) -> tuple[Listener, ...]:
    """``PLAINTEXT://127.0.0.1:9092,CONTROLLER://:9093`` as listeners (an empty host means all)."""
    listeners: list[Listener] = []
    for entry in filter(None, (part.strip() for part in value.split(","))):
        name, separator, address = entry.partition("://")
        host, colon, port = address.rpartition(":")
        if not separator or not colon or not port.isdigit() or not name:
            raise NodeConfigError(f"listeners: cannot read {entry!r}; expected NAME://host:port")
        if any(existing.name == name.upper() for existing in listeners):
            raise NodeConfigError(f"listeners: the listener name {name.upper()} appears twice")
        listeners.append(Listener(name.upper(), host.strip("[]"), int(port)))
    return tuple(listeners)


def parse_voters(value: str) -> tuple[Voter, ...]:
    """``controller.quorum.voters``: ``1@host:9093,2@host:9094`` (KIP-595's static voter set)."""
    voters: list[Voter] = []
    for entry in filter(None, (part.strip() for part in value.split(","))):
        node, at, address = entry.partition("@")
        host, colon, port = address.rpartition(":")
        if not at or not colon or not node.isdigit() or not port.isdigit():
            raise NodeConfigError(f"controller.quorum.voters: cannot read {entry!r}; expected id@host:port")
        if any(voter.node_id == int(node) for voter in voters):
            raise NodeConfigError(f"controller.quorum.voters: node {node} appears twice")
        voters.append(Voter(int(node), host.strip("[]"), int(port)))
    return tuple(voters)


def node_config(settings: Mapping[str, str]) -> NodeConfig:
    """Read and check the node-identity keys of a broker/controller configuration."""
    node_id = int(settings.get("node.id", "1"))
    roles = frozenset(role.strip() for role in settings.get("process.roles", "").split(",") if role.strip())
    unknown = roles - {BROKER, CONTROLLER}
    if unknown:
        raise NodeConfigError(f"process.roles: unknown role {sorted(unknown)[0]!r} (expected broker, controller)")
    listeners = parse_listeners(settings.get("listeners", "PLAINTEXT://:9092"))
    controller_names = tuple(name.strip().upper() for name in settings.get("controller.listener.names", "").split(",")
                             if name.strip())
    voters = parse_voters(settings.get("controller.quorum.voters", ""))
    advertised = {listener.name: (listener.host, listener.port)
                  for listener in parse_listeners(settings.get("advertised.listeners", ""))}
    config = NodeConfig(node_id, roles, listeners, controller_names, None, voters, advertised)
    if not roles:
        return config
    if not voters:
        raise NodeConfigError("controller.quorum.voters must name the voters of a KRaft node (id@host:port,...)")
    if not controller_names:
        raise NodeConfigError("controller.listener.names must be set on a KRaft node")
    if config.is_controller:
        if config.voter(node_id) is None:
            raise NodeConfigError(f"node {node_id} has the controller role but is not in controller.quorum.voters")
        if not config.controller_listeners:
            raise NodeConfigError(f"the controller listener {controller_names[0]} must be in listeners")
    elif config.voter(node_id) is not None:
        raise NodeConfigError(f"node {node_id} is in controller.quorum.voters but has only the broker role")
    elif config.controller_listeners:
        raise NodeConfigError("a broker-only node must not listen on a controller listener")
    if config.is_broker:
        broker_listeners = config.broker_listeners
        if not broker_listeners:
            raise NodeConfigError("a broker needs a listener that is not a controller listener")
        inter_broker = settings.get("inter.broker.listener.name", broker_listeners[0].name).upper()
        if inter_broker not in {listener.name for listener in broker_listeners}:
            raise NodeConfigError(f"inter.broker.listener.name {inter_broker} is not one of the broker's listeners")
        config = NodeConfig(node_id, roles, listeners, controller_names, inter_broker, voters, advertised)
    return config


def read_properties(path: Path) -> dict[str, str]:
    """A Java properties file, as Kafka's ``server.properties`` are written: ``key=value`` lines,
    ``#`` or ``!`` comments, ``key: value`` also accepted, surrounding blanks ignored."""
    properties: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        cut = min((index for index in (line.find("="), line.find(":")) if index >= 0), default=-1)
        if cut <= 0:
            raise NodeConfigError(f"{path}:{number}: expected key=value, got {line!r}")
        properties[line[:cut].strip()] = line[cut + 1:].strip()
    return properties
