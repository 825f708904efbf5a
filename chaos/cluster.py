"""A cluster of broker containers on a private docker network, and the faults it can suffer.

Theory of operation
-------------------
:class:`DockerCluster` owns one user-defined bridge network and N broker containers on it, all
through the docker SDK.

1. **Network.**  ``refka-chaos-<subnet>`` with a fixed private subnet (default ``172.28.0.0/24``)
   that the harness creates in :meth:`DockerCluster.start` and removes in
   :meth:`DockerCluster.stop`.  It is ``internal``: docker gives it no route out of the machine,
   so brokers can reach each other and the host, and nothing else.  The host is the network's
   gateway (``.1``); on Linux the host reaches container addresses directly, so host-side clients
   use the same addresses the brokers use among themselves.
2. **Addresses.**  Node ``i`` (1-based ``node.id``) has the fixed address ``.(10 + i)`` and
   advertises ``PLAINTEXT://<that address>:9092`` (``advertised.listeners``), which resolves the
   same from every container and from the host: no DNS is involved.  Kafka's controllers listen
   on 9093 (``controller.quorum.voters`` lists every node).
3. **State.**  A broker keeps its log in its container's own filesystem.  ``kill`` (SIGKILL) and
   ``start_node`` keep the container, hence the log; :meth:`stop` removes containers and their
   data.  Containers carry the label ``refka.chaos.cluster=<network name>`` so a leftover of a
   crashed run is found and removed by the next :meth:`start`.
4. **Faults.**  Process faults use the engine: ``kill`` = SIGKILL, ``pause`` = cgroup freezer,
   ``restart`` = SIGTERM then start (graceful) or SIGKILL then start.  Network faults are
   iptables DROP rules inside the containers (they run with ``NET_ADMIN``), applied with
   ``exec_run``.  A *partition* is a list of groups: two nodes can talk iff some group holds both,
   so disjoint groups cut the cluster, and overlapping groups make a bridge.  *Client isolation*
   drops traffic between one broker and the gateway, where host-side clients come from.  A
   *replication cut* (:meth:`DockerCluster.cut_replication`) drops only the client-listener port
   (9092, which is also ``inter.broker.listener.name``) between one broker and the others: no
   replica fetches to or from it, while its controller traffic (9093: heartbeats, AlterPartition,
   the metadata log) and its clients go on.  :meth:`heal_network` flushes every rule.
5. **Readiness.**  A node is ready when it answers a Metadata request; the cluster is ready when
   every node lists all N brokers.  ``start_node`` and ``restart`` wait for the node they touched.

For ``target="reference"``, one node is refka's single-node broker; more nodes form a replicated
KRaft cluster of combined broker+controller nodes configured as the Kafka nodes are.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import docker
import docker.errors
from docker.models.containers import Container
from docker.types import IPAMConfig, IPAMPool

from chaos.images import TARGETS
from reference.protocol.primitives import random_uuid_string

CLIENT_PORT = 9092
CONTROLLER_PORT = 9093
FIRST_HOST_OCTET = 10
DEFAULT_SUBNET = "172.28.0.0/24"
LABEL = "refka.chaos.cluster"
READY_TIMEOUT_S = 120.0
NODE_READY_TIMEOUT_S = 90.0
GRACEFUL_STOP_S = 30
METADATA_TIMEOUT_S = 5.0


class ClusterError(RuntimeError):
    """The cluster cannot be made or driven as asked (bad arguments, engine refusal, timeout)."""


@dataclass(frozen=True)
class NodeAddress:
    """Where one broker lives on the chaos network."""

    node_id: int
    container_name: str
    ip: str

    @property
    def bootstrap(self) -> str:
        return f"{self.ip}:{CLIENT_PORT}"


# ---------------------------------------------------------------- pure planning (no engine)
def plan_addresses(subnet: str, nodes: int, prefix: str) -> list[NodeAddress]:
    """Fixed addresses ``.11``, ``.12``, ... of ``subnet`` for node ids 1..nodes."""
    network = ipaddress.ip_network(subnet)
    hosts = list(network.hosts())
    if nodes < 1 or FIRST_HOST_OCTET + nodes >= len(hosts):
        raise ClusterError(f"{nodes} nodes do not fit in {subnet}")
    return [NodeAddress(node_id, f"{prefix}-n{node_id}", str(hosts[FIRST_HOST_OCTET + node_id - 1]))
            for node_id in range(1, nodes + 1)]


def gateway_of(subnet: str) -> str:
    """The subnet's first address: the host's side of the bridge, where clients come from."""
    return str(next(ipaddress.ip_network(subnet).hosts()))


def network_name(subnet: str) -> str:
    return "refka-chaos-" + subnet.replace("/", "_").replace(".", "-")


def blocked_pairs(groups: Sequence[Sequence[int]], node_ids: Iterable[int]) -> set[frozenset[int]]:
    """Pairs of nodes that may not talk: those that share no group.

    A node named in no group is cut off from every other node.  Overlapping groups express a
    bridge: ``[[1, 2], [2, 3]]`` lets 2 talk to both 1 and 3, while 1 and 3 are cut apart.
    """
    ids = sorted(set(node_ids))
    unknown = {node for group in groups for node in group} - set(ids)
    if unknown:
        raise ClusterError(f"partition names unknown nodes {sorted(unknown)}; nodes are {ids}")
    membership = {node: {index for index, group in enumerate(groups) if node in group} for node in ids}
    return {frozenset((a, b)) for a in ids for b in ids
            if a < b and not (membership[a] & membership[b])}


def drop_rules(peer_ips: Iterable[str]) -> list[list[str]]:
    """iptables commands that drop all traffic to and from each of ``peer_ips``."""
    commands: list[list[str]] = []
    for ip in sorted(peer_ips):
        commands.append(["iptables", "-w", "-A", "INPUT", "-s", ip, "-j", "DROP"])
        commands.append(["iptables", "-w", "-A", "OUTPUT", "-d", ip, "-j", "DROP"])
    return commands


def replication_drop_rules(peer_ips: Iterable[str], port: int = CLIENT_PORT) -> list[list[str]]:
    """iptables commands that drop TCP on the inter-broker ``port`` to and from each of ``peer_ips``,
    whichever side listens: fetches from the peers to this broker and from this broker to them."""
    commands: list[list[str]] = []
    for ip in sorted(peer_ips):
        for chain, peer in (("INPUT", "-s"), ("OUTPUT", "-d")):
            for side in ("--dport", "--sport"):
                commands.append(["iptables", "-w", "-A", chain, peer, ip, "-p", "tcp", side, str(port), "-j", "DROP"])
    return commands


HEAL_RULES: list[list[str]] = [["iptables", "-w", "-F", "INPUT"], ["iptables", "-w", "-F", "OUTPUT"]]


def kafka_settings(nodes: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """server.properties beyond the KRaft basics the entrypoint writes (fast failover, replication of
    internal topics sized to the cluster, fast group start), then the caller's ``extra`` on top."""
    settings = {
        # failover in seconds rather than tens of seconds (defaults 9 s, 2 s, 30 s): the controller
        # fences a silent broker after broker.session.timeout.ms and moves its leaderships; a leader
        # drops a silent follower from the ISR after replica.lag.time.max.ms.  Durability settings
        # (acks, min.insync.replicas, unclean.leader.election.enable) are the workload's, untouched.
        "broker.session.timeout.ms": "3000",
        "broker.heartbeat.interval.ms": "500",
        "replica.lag.time.max.ms": "5000",
        "offsets.topic.replication.factor": str(min(nodes, 3)),
        "transaction.state.log.replication.factor": str(min(nodes, 3)),
        "transaction.state.log.min.isr": str(min(nodes, 2)),
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "auto.create.topics.enable": "false",
    }
    settings.update(extra or {})
    return settings


def node_environment(target: str, node: NodeAddress, addresses: Sequence[NodeAddress], cluster_id: str,
                     extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment variables the image's entrypoint turns into the broker's configuration."""
    if target == "reference":
        if len(addresses) == 1:  # refka's single-node broker, its own metadata
            lines = "\n".join(f"{key}={value}" for key, value in (extra or {}).items())
            return {"NODE_ID": str(node.node_id), "ADVERTISED_HOST": node.ip, "BROKER_SETTINGS": lines}
        voters = ",".join(f"{other.node_id}@{other.ip}:{CONTROLLER_PORT}" for other in addresses)
        settings = kafka_settings(len(addresses), extra)
        return {"NODE_ID": str(node.node_id), "ADVERTISED_HOST": node.ip, "QUORUM_VOTERS": voters,
                "CLUSTER_ID": cluster_id, "BROKER_SETTINGS": "\n".join(f"{k}={v}" for k, v in settings.items())}
    voters = ",".join(f"{other.node_id}@{other.ip}:{CONTROLLER_PORT}" for other in addresses)
    settings = kafka_settings(len(addresses), extra)
    return {
        "KAFKA_NODE_ID": str(node.node_id),
        "KAFKA_QUORUM_VOTERS": voters,
        "KAFKA_ADVERTISED_HOST": node.ip,
        "KAFKA_CLUSTER_ID": cluster_id,
        "KAFKA_SETTINGS": "\n".join(f"{key}={value}" for key, value in settings.items()),
    }


def new_cluster_id(seed: int | None) -> str:
    """A KRaft cluster id (16 bytes, base64url without padding), fixed by the seed when given."""
    return random_uuid_string(seed)


# ---------------------------------------------------------------- the cluster
class DockerCluster:
    """N broker containers of one target on a private network; see the module docstring."""

    def __init__(self, client: docker.DockerClient, target: str, nodes: int, subnet: str = DEFAULT_SUBNET,
                 seed: int | None = None, image: str | None = None,
                 broker_config: dict[str, str] | None = None, environment: dict[str, str] | None = None) -> None:
        if target not in TARGETS:
            raise ClusterError(f"unknown target {target!r}: expected one of {', '.join(TARGETS)}")
        self.client = client
        self.target = target
        self.subnet = subnet
        self.seed = seed
        self.image = image or f"refka-chaos/{target}:latest"
        self.broker_config = dict(broker_config or {})
        self.environment = dict(environment or {})  # extra variables for every node (an --unsafe broker fault)
        self.network_name = network_name(subnet)
        self.gateway = gateway_of(subnet)
        self.addresses = plan_addresses(subnet, nodes, self.network_name)
        self.cluster_id = new_cluster_id(seed)
        self._network_dirty: set[int] = set()   # nodes holding DROP rules
        self._heal_pending: set[int] = set()    # paused when heal_network ran: flush on unpause

    # ------------------------------------------------------------ topology
    def node_ids(self) -> list[int]:
        return [node.node_id for node in self.addresses]

    def address(self, node_id: int) -> NodeAddress:
        for node in self.addresses:
            if node.node_id == node_id:
                return node
        raise ClusterError(f"no node {node_id}; nodes are {self.node_ids()}")

    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap for node in self.addresses)

    # ------------------------------------------------------------ lifecycle
    def start(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Create the network and the containers, and wait until every node lists all brokers."""
        self._remove_leftovers()
        self._check_subnet_free()
        network = self.client.networks.create(
            self.network_name, driver="bridge", internal=True, labels={LABEL: self.network_name},
            ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=self.subnet, gateway=self.gateway)]),
        )
        # Containers name the network by id: a name can still resolve to a just-removed network
        # of the same name (seen when a cluster on this subnet was torn down a moment before).
        for node in self.addresses:
            self._create_container(node, network.id)
        for node in self.addresses:
            self._container(node.node_id).start()
        self.wait_ready(timeout)

    def stop(self) -> None:
        """Remove every container (with its data) and the network."""
        self._remove_leftovers()

    def __enter__(self) -> DockerCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _create_container(self, node: NodeAddress, network_id: str) -> None:
        environment = {**node_environment(self.target, node, self.addresses, self.cluster_id, self.broker_config),
                       **self.environment}
        endpoint = self.client.api.create_endpoint_config(ipv4_address=node.ip)
        networking = self.client.api.create_networking_config({network_id: endpoint})
        host_config = self.client.api.create_host_config(cap_add=["NET_ADMIN"], network_mode=network_id)
        self.client.api.create_container(
            self.image, name=node.container_name, hostname=node.container_name, environment=environment,
            labels={LABEL: self.network_name, "refka.chaos.node": str(node.node_id)},
            host_config=host_config, networking_config=networking,
        )

    def _remove_leftovers(self) -> None:
        for container in self.client.containers.list(all=True, filters={"label": f"{LABEL}={self.network_name}"}):
            container.remove(force=True, v=True)
        for network in self.client.networks.list(names=[self.network_name]):
            if network.name == self.network_name:
                network.remove()
        self._network_dirty.clear()
        self._heal_pending.clear()

    def _check_subnet_free(self) -> None:
        wanted = ipaddress.ip_network(self.subnet)
        for network in self.client.networks.list():
            for pool in (network.attrs.get("IPAM") or {}).get("Config") or []:
                taken = pool.get("Subnet")
                if taken and ":" not in taken and ipaddress.ip_network(taken).overlaps(wanted):
                    raise ClusterError(f"subnet {self.subnet} overlaps docker network {network.name} "
                                       f"({taken}): choose another with --subnet")

    def _container(self, node_id: int) -> Container:
        return self.client.containers.get(self.address(node_id).container_name)

    # ------------------------------------------------------------ readiness and metadata
    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        for node_id in self.node_ids():
            self.wait_node_ready(node_id, timeout, brokers_expected=len(self.addresses))

    def wait_node_ready(self, node_id: int, timeout: float = NODE_READY_TIMEOUT_S,
                        brokers_expected: int = 1) -> None:
        """Block until ``node_id`` answers Metadata listing at least ``brokers_expected`` brokers."""
        deadline = time.monotonic() + timeout
        node = self.address(node_id)
        while True:
            if self._brokers_seen_by(node) >= brokers_expected:
                return
            state = self.status(node_id)
            if state == "exited":
                raise ClusterError(f"node {node_id} exited: {self.logs(node_id, 15)}")
            if time.monotonic() > deadline:
                raise ClusterError(f"node {node_id} not ready after {timeout:.0f} s (container {state}): "
                                   f"{self.logs(node_id, 15)}")
            time.sleep(0.5)

    def _brokers_seen_by(self, node: NodeAddress) -> int:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": node.bootstrap, "socket.timeout.ms": 3000,
                             "log_level": 0})
        try:
            metadata = admin.list_topics(timeout=3.0)
        except Exception:  # KafkaException while the broker is down or starting
            return 0
        return len(metadata.brokers)

    def _admin(self) -> object:
        from confluent_kafka.admin import AdminClient

        return AdminClient({"bootstrap.servers": self.bootstrap_servers(), "socket.timeout.ms": 3000,
                            "log_level": 0})

    def leader_of(self, topic: str, partition: int) -> int | None:
        """The partition's current leader as Metadata reports it, or None (no leader, no answer)."""
        from confluent_kafka.admin import AdminClient

        admin: AdminClient = self._admin()  # type: ignore[assignment]
        try:
            metadata = admin.list_topics(topic, timeout=METADATA_TIMEOUT_S)
        except Exception:
            return None
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or partition not in found.partitions:
            return None
        leader = int(found.partitions[partition].leader)
        return leader if leader >= 0 else None

    def isr_of(self, topic: str, partition: int) -> list[int] | None:
        """The partition's ISR as DescribeTopics reports it, or None (no answer)."""
        from confluent_kafka import TopicCollection
        from confluent_kafka.admin import AdminClient

        admin: AdminClient = self._admin()  # type: ignore[assignment]
        try:
            described = admin.describe_topics(TopicCollection([topic]), request_timeout=METADATA_TIMEOUT_S)[topic]
            found = described.result(METADATA_TIMEOUT_S)
        except Exception:
            return None
        for info in found.partitions:
            if info.id == partition:
                return sorted(int(node.id) for node in info.isr)
        return None

    def elect_unclean_leader(self, topic: str, partition: int) -> str:
        """ElectLeaders with ElectionType UNCLEAN (1) for one partition, as an operator runs
        ``kafka-leader-election.sh --election-type unclean``; the partition's error name, or "NONE"."""
        from confluent_kafka import ElectionType, TopicPartition
        from confluent_kafka.admin import AdminClient

        admin: AdminClient = self._admin()  # type: ignore[assignment]
        wanted = TopicPartition(topic, partition)
        try:
            results = admin.elect_leaders(ElectionType.UNCLEAN, [wanted], request_timeout=METADATA_TIMEOUT_S
                                          ).result(METADATA_TIMEOUT_S * 2)
        except Exception as error:
            return f"request failed: {error}"
        for asked, refused in results.items():
            if (asked.topic, asked.partition) == (topic, partition):
                if refused is None:
                    return "NONE"
                kafka_error = refused.args[0] if refused.args else None  # KafkaException(KafkaError)
                return str(kafka_error.name()) if kafka_error is not None and hasattr(kafka_error, "name") \
                    else str(refused)
        return "no answer for the partition"

    def topics(self) -> list[str]:
        """Names of the user topics Metadata lists (internal topics left out)."""
        from confluent_kafka.admin import AdminClient

        admin: AdminClient = self._admin()  # type: ignore[assignment]
        try:
            metadata = admin.list_topics(timeout=METADATA_TIMEOUT_S)
        except Exception:
            return []
        return sorted(name for name in metadata.topics if not name.startswith("__"))

    def partitions_of(self, topic: str) -> list[int]:
        from confluent_kafka.admin import AdminClient

        admin: AdminClient = self._admin()  # type: ignore[assignment]
        try:
            metadata = admin.list_topics(topic, timeout=METADATA_TIMEOUT_S)
        except Exception:
            return []
        found = metadata.topics.get(topic)
        return sorted(found.partitions) if found is not None and found.error is None else []

    def create_topic(self, name: str, partitions: int, replication_factor: int,
                     configs: dict[str, str] | None = None, timeout: float = 30.0) -> None:
        """CreateTopics through the admin client; waits until every partition has a leader."""
        from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

        admin: AdminClient = self._admin()  # type: ignore[assignment]
        futures = admin.create_topics([NewTopic(name, num_partitions=partitions,
                                                replication_factor=replication_factor, config=configs or {})],
                                      operation_timeout=timeout)
        try:
            futures[name].result(timeout=timeout)
        except Exception as error:
            raise ClusterError(f"creating topic {name} failed: {error}") from error
        deadline = time.monotonic() + timeout
        while any(self.leader_of(name, p) is None for p in range(partitions)):
            if time.monotonic() > deadline:
                tails = "; ".join(f"node {n}: {self.logs(n, 5)!r}" for n in self.node_ids())
                raise ClusterError(f"topic {name} has partitions without a leader after {timeout:.0f} s ({tails})")
            time.sleep(0.2)

    def logs(self, node_id: int, lines: int = 50) -> str:
        try:
            raw = self._container(node_id).logs(tail=lines)
        except docker.errors.NotFound:
            return "(no container)"
        return str(raw.decode(errors="replace")).strip()

    # ------------------------------------------------------------ process faults
    def kill(self, node_id: int) -> None:
        """SIGKILL the broker; its container and log stay for :meth:`start_node`."""
        self._container(node_id).kill(signal="SIGKILL")
        self._wait_status(node_id, "exited")
        self._network_dirty.discard(node_id)  # a new network namespace comes with the next start

    def start_node(self, node_id: int, wait: bool = True) -> None:
        container = self._container(node_id)
        container.reload()
        if container.status != "running":
            container.start()
        if wait:
            self.wait_node_ready(node_id)

    def pause(self, node_id: int) -> None:
        """Freeze every process of the node (cgroup freezer): connections stay open, nothing answers."""
        self._container(node_id).pause()

    def unpause(self, node_id: int) -> None:
        container = self._container(node_id)
        container.reload()
        if container.status == "paused":
            container.unpause()
        if node_id in self._heal_pending:  # heal_network ran while this node was frozen
            self._heal_pending.discard(node_id)
            self._run(node_id, HEAL_RULES)
            self._network_dirty.discard(node_id)

    def restart(self, node_id: int, graceful: bool = True, wait: bool = True) -> None:
        """SIGTERM and wait for a clean shutdown (graceful), or SIGKILL; then start again."""
        container = self._container(node_id)
        if graceful:
            container.stop(timeout=GRACEFUL_STOP_S)
        else:
            container.kill(signal="SIGKILL")
        self._wait_status(node_id, "exited")
        self._network_dirty.discard(node_id)
        self.start_node(node_id, wait=wait)

    def status(self, node_id: int) -> str:
        container = self._container(node_id)
        container.reload()
        return str(container.status)

    def _wait_status(self, node_id: int, wanted: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.status(node_id) != wanted:
            if time.monotonic() > deadline:
                raise ClusterError(f"node {node_id} not {wanted} after {timeout:.0f} s")
            time.sleep(0.1)

    # ------------------------------------------------------------ network faults
    def partition(self, groups: Sequence[Sequence[int]]) -> set[frozenset[int]]:
        """Cut the network so that two nodes talk only if some group holds both; returns the cut pairs."""
        pairs = blocked_pairs(groups, self.node_ids())
        for node_id in self.node_ids():
            peers = [self.address(other).ip for pair in pairs if node_id in pair for other in pair if other != node_id]
            if peers:
                self._iptables(node_id, drop_rules(peers))
        return pairs

    def cut_replication(self, node_id: int) -> None:
        """Cut replication between the broker and every other one; controller and client traffic stay."""
        peers = [node.ip for node in self.addresses if node.node_id != node_id]
        self._iptables(node_id, replication_drop_rules(peers))

    def isolate_clients(self, node_id: int) -> None:
        """Drop traffic between the broker and the host side, where the workload's clients run."""
        self._iptables(node_id, drop_rules([self.gateway]))

    def heal_network(self) -> None:
        """Flush every DROP rule in every running node; a paused node is healed when unpaused."""
        for node_id in sorted(self._network_dirty):
            state = self.status(node_id)
            if state == "running":
                self._run(node_id, HEAL_RULES)
                self._network_dirty.discard(node_id)
            elif state == "paused":
                self._heal_pending.add(node_id)
            else:  # exited: its network namespace, rules included, is gone
                self._network_dirty.discard(node_id)

    def _iptables(self, node_id: int, commands: list[list[str]]) -> None:
        self._network_dirty.add(node_id)
        self._run(node_id, commands)

    def _run(self, node_id: int, commands: list[list[str]]) -> None:
        container = self._container(node_id)
        for command in commands:
            result = container.exec_run(command, user="root")
            if result.exit_code != 0:
                output = result.output.decode(errors="replace").strip()
                raise ClusterError(f"node {node_id}: {' '.join(command)} failed ({result.exit_code}): {output}")
