"""Nemeses: the faults a chaos run injects into a :class:`~chaos.cluster.DockerCluster`, and their heals.

Theory of operation
-------------------
A nemesis (Jepsen's word for the adversary) has a ``name``, a ``start(rng)`` that injects one
fault and returns a JSON-able description of it, and a ``heal()`` that undoes it and returns what
it did.  The runner calls them in turn on a seeded schedule and records each fault with its start
and end time; every fault is healed before the run's final read.

Every random choice (which node, which partition shape) is drawn from the ``random.Random`` the
runner passes, so a run replays from its seed as far as the cluster's own timing allows.  The
shape of a partition is computed by pure functions (:func:`partition_groups`) that tests check
without an engine.

Faults, named as on the command line (``--nemesis kill,pause,...``):

=====================  ==========================================================================
``kill``               SIGKILL one broker; heal starts it again (log recovery from an unclean stop)
``pause``              freeze one broker (SIGSTOP-like, cgroup freezer); heal resumes it
``restart``            graceful restart (SIGTERM, controlled shutdown, start); heal is a no-op
``partition``          a random shape among those the cluster size allows (below); heal flushes
``partition-one``      isolate one node from every other broker
``partition-majority`` split into a majority and a minority (random membership)
``partition-bridge``   two halves cut apart, one node in both (it sees everyone, they see it)
``isolate-clients``    drop traffic between one broker and the clients; brokers still talk
``kill-leader``        ``kill`` aimed at the current leader of a partition (found through Metadata)
``pause-leader``       ``pause`` aimed at the leader
``partition-leader``   isolate the leader from the other brokers
``rolling-restart``    gracefully restart every broker in turn, each back before the next goes
``unclean-leader``     cut the leader's replication, let it acknowledge alone, kill it, have a
                       stale follower elected uncleanly (below); heal restarts the old leader
=====================  ==========================================================================

A leader-targeted fault looks up the leader of a partition of ``topic`` (chosen with the rng);
when no leader is known it falls back to a random node and says so in its description.

``unclean-leader``, step by step (:class:`UncleanLeader`; it loses acknowledged ``acks=all`` writes
only on a topic with ``min.insync.replicas=1`` and ``unclean.leader.election.enable=true``, which
is what ``--unsafe unclean`` sets up):

1. *cut*: drop replication traffic between the leader and the other brokers
   (``cut_replication``: the inter-broker port only; the leader still reaches the controller and
   the clients still reach the leader);
2. *shrink*: wait until DescribeTopics reports the ISR as the leader alone -- its followers have not
   fetched for ``replica.lag.time.max.ms`` and the leader's AlterPartition removed them.  With
   ``min.insync.replicas=1`` the leader now acknowledges acks=all writes that exist only on it;
3. *alone*: let it do so for a few seconds; 4. *kill* it (SIGKILL).  The partition's only ISR member
   is gone; the followers are live but stale, so no clean election exists (KIP-966 adds no eligible
   leader replica either: the ISR never went below ``min.insync.replicas``);

and at heal: 5. flush the network, wait for the controller to elect a leader (it runs an unclean
election when it fences the dead broker, if the topic allows it), and if the partition is still
leaderless send ElectLeaders with ElectionType UNCLEAN, as an operator would (the controller's own
periodic unclean-election check is minutes apart); 6. start the old leader: it rejoins as a
follower and truncates to the new leader's log, taking the writes it acknowledged alone with it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

Description = dict[str, Any]


class Cluster(Protocol):
    """What a nemesis needs of a cluster (DockerCluster provides it; tests give a recording fake)."""

    def node_ids(self) -> list[int]: ...
    def leader_of(self, topic: str, partition: int) -> int | None: ...
    def topics(self) -> list[str]: ...
    def partitions_of(self, topic: str) -> list[int]: ...
    def kill(self, node_id: int) -> None: ...
    def start_node(self, node_id: int, wait: bool = True) -> None: ...
    def pause(self, node_id: int) -> None: ...
    def unpause(self, node_id: int) -> None: ...
    def restart(self, node_id: int, graceful: bool = True, wait: bool = True) -> None: ...
    def partition(self, groups: Sequence[Sequence[int]]) -> Any: ...
    def isolate_clients(self, node_id: int) -> None: ...
    def heal_network(self) -> None: ...


class ReplicationCluster(Cluster, Protocol):
    """What ``unclean-leader`` needs besides: a replication cut, the ISR, and an unclean ElectLeaders."""

    def cut_replication(self, node_id: int) -> None: ...
    def isr_of(self, topic: str, partition: int) -> list[int] | None: ...
    def elect_unclean_leader(self, topic: str, partition: int) -> str: ...


# ---------------------------------------------------------------- partition shapes (pure)
PARTITION_SHAPES = ("one", "majority", "bridge")
MINIMUM_NODES = {"one": 2, "majority": 3, "bridge": 3}


def partition_groups(shape: str, node_ids: Sequence[int], rng: random.Random,
                     isolated: int | None = None) -> list[list[int]]:
    """The groups of one partition shape over ``node_ids`` (see DockerCluster.partition).

    ``one``: ``isolated`` (or a random node) alone, the rest together.  ``majority``: a random
    majority of ``n // 2 + 1`` nodes against the rest.  ``bridge``: the nodes shuffled, one in the
    middle belonging to both halves.
    """
    ids = sorted(node_ids)
    if len(ids) < MINIMUM_NODES[shape]:
        raise ValueError(f"partition shape {shape!r} needs at least {MINIMUM_NODES[shape]} nodes, have {len(ids)}")
    if shape == "one":
        alone = isolated if isolated is not None else rng.choice(ids)
        return [[alone], [node for node in ids if node != alone]]
    shuffled = ids[:]
    rng.shuffle(shuffled)
    if shape == "majority":
        size = len(ids) // 2 + 1
        return [sorted(shuffled[:size]), sorted(shuffled[size:])]
    middle = len(shuffled) // 2
    return [sorted(shuffled[:middle + 1]), sorted(shuffled[middle:])]


def shapes_for(nodes: int) -> list[str]:
    return [shape for shape in PARTITION_SHAPES if nodes >= MINIMUM_NODES[shape]]


# ---------------------------------------------------------------- choosing a target node
class Target:
    """Which node a fault hits: a random one, or the current leader of a partition of ``topic``."""

    def __init__(self, cluster: Cluster, leader: bool = False, topic: str | None = None) -> None:
        self.cluster = cluster
        self.leader = leader
        self.topic = topic

    def pick(self, rng: random.Random) -> tuple[int, Description]:
        if not self.leader:
            return rng.choice(self.cluster.node_ids()), {"target": "random"}
        topic = self.topic or self._some_topic(rng)
        partitions = self.cluster.partitions_of(topic) if topic else []
        partition = rng.choice(partitions) if partitions else 0
        leader = self.cluster.leader_of(topic, partition) if topic else None
        if leader is None:
            return rng.choice(self.cluster.node_ids()), {"target": "random (no leader known)",
                                                          "topic": topic, "partition": partition}
        return leader, {"target": "leader", "topic": topic, "partition": partition}

    def _some_topic(self, rng: random.Random) -> str | None:
        topics = self.cluster.topics()
        return rng.choice(topics) if topics else None


# ---------------------------------------------------------------- the nemeses
class Nemesis:
    """One kind of fault.  ``start`` injects it; ``heal`` undoes it (a no-op when nothing is held)."""

    name = "nemesis"

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def start(self, rng: random.Random) -> Description:
        raise NotImplementedError

    def heal(self) -> Description:
        return {}


class Kill(Nemesis):
    name = "kill"

    def __init__(self, cluster: Cluster, target: Target | None = None, name: str | None = None) -> None:
        super().__init__(cluster)
        self.target = target or Target(cluster)
        self.name = name or type(self).name
        self.killed: int | None = None

    def start(self, rng: random.Random) -> Description:
        node, why = self.target.pick(rng)
        self.cluster.kill(node)
        self.killed = node
        return {"fault": "kill", "signal": "SIGKILL", "node": node, **why}

    def heal(self) -> Description:
        if self.killed is None:
            return {}
        node, self.killed = self.killed, None
        self.cluster.start_node(node)
        return {"heal": "start", "node": node}


class Pause(Nemesis):
    name = "pause"

    def __init__(self, cluster: Cluster, target: Target | None = None, name: str | None = None) -> None:
        super().__init__(cluster)
        self.target = target or Target(cluster)
        self.name = name or type(self).name
        self.paused: int | None = None

    def start(self, rng: random.Random) -> Description:
        node, why = self.target.pick(rng)
        self.cluster.pause(node)
        self.paused = node
        return {"fault": "pause", "node": node, **why}

    def heal(self) -> Description:
        if self.paused is None:
            return {}
        node, self.paused = self.paused, None
        self.cluster.unpause(node)
        return {"heal": "unpause", "node": node}


class Restart(Nemesis):
    """A graceful restart: the broker shuts down cleanly (SIGTERM) and comes back at once."""

    name = "restart"

    def start(self, rng: random.Random) -> Description:
        node = rng.choice(self.cluster.node_ids())
        self.cluster.restart(node, graceful=True)
        return {"fault": "restart", "graceful": True, "node": node}


class RollingRestart(Nemesis):
    name = "rolling-restart"

    def start(self, rng: random.Random) -> Description:
        order = self.cluster.node_ids()
        rng.shuffle(order)
        for node in order:
            self.cluster.restart(node, graceful=True)
        return {"fault": "rolling-restart", "graceful": True, "order": order}


class Partition(Nemesis):
    """A network partition between brokers; ``shape`` None draws one per start."""

    def __init__(self, cluster: Cluster, shape: str | None = None, target: Target | None = None,
                 name: str | None = None) -> None:
        super().__init__(cluster)
        nodes = len(cluster.node_ids())
        allowed = shapes_for(nodes)
        if shape is not None and shape not in PARTITION_SHAPES:
            raise ValueError(f"unknown partition shape {shape!r}: expected one of {', '.join(PARTITION_SHAPES)}")
        if (shape is None and not allowed) or (shape is not None and shape not in allowed):
            raise ValueError(f"a partition needs at least {MINIMUM_NODES[shape or 'one']} brokers, "
                             f"the cluster has {nodes}: use isolate-clients on a single node")
        self.shape = shape
        self.target = target
        self.name = name or ("partition" if shape is None else f"partition-{shape}")
        self.active = False

    def start(self, rng: random.Random) -> Description:
        shape = self.shape or rng.choice(shapes_for(len(self.cluster.node_ids())))
        why: Description = {}
        isolated = None
        if self.target is not None:
            isolated, why = self.target.pick(rng)
        groups = partition_groups(shape, self.cluster.node_ids(), rng, isolated)
        self.cluster.partition(groups)
        self.active = True
        return {"fault": "partition", "shape": shape, "groups": groups, **why}

    def heal(self) -> Description:
        if not self.active:
            return {}
        self.active = False
        self.cluster.heal_network()
        return {"heal": "network"}


class IsolateClients(Nemesis):
    name = "isolate-clients"

    def __init__(self, cluster: Cluster, target: Target | None = None) -> None:
        super().__init__(cluster)
        self.target = target or Target(cluster)
        self.isolated: int | None = None

    def start(self, rng: random.Random) -> Description:
        node, why = self.target.pick(rng)
        self.cluster.isolate_clients(node)
        self.isolated = node
        return {"fault": "isolate-clients", "node": node, **why}

    def heal(self) -> Description:
        if self.isolated is None:
            return {}
        node, self.isolated = self.isolated, None
        self.cluster.heal_network()
        return {"heal": "network", "node": node}


@dataclass(frozen=True)
class UncleanTiming:
    """Seconds for :class:`UncleanLeader`'s steps (the ISR shrinks ``replica.lag.time.max.ms`` = 5 s
    after the cut, see ``chaos.cluster.kafka_settings``, plus up to half that between the leader's checks)."""

    leader_lookup: float = 10.0  # keep asking Metadata for a partition's leader this long
    isr_shrink_timeout: float = 30.0  # step 2: give up waiting for the ISR of one (and kill anyway)
    alone: float = 4.0  # step 3: the leader acknowledges alone this long before it is killed
    controller_election: float = 6.0  # step 5: wait this long for the controller's own election
    election_timeout: float = 60.0  # step 5: then keep asking ElectLeaders UNCLEAN this long
    poll: float = 0.5


class UncleanLeader(Nemesis):
    """Lose acknowledged acks=all writes through an unclean leader election; see the module docstring."""

    name = "unclean-leader"

    def __init__(self, cluster: ReplicationCluster, target: Target, timing: UncleanTiming | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(cluster)
        self.cluster: ReplicationCluster = cluster
        self.target = target
        self.timing = timing or UncleanTiming()
        self.sleep = sleep
        self.clock = clock
        self.cut: int | None = None  # the node whose replication is cut
        self.killed: tuple[int, str, int] | None = None  # (old leader, topic, partition)

    def start(self, rng: random.Random) -> Description:
        node, why = self._wait_for(lambda: self.target.pick(rng), lambda picked: picked[1].get("target") == "leader",
                                   self.timing.leader_lookup)
        topic, partition = why.get("topic"), why.get("partition", 0)
        if why.get("target") != "leader" or topic is None:
            return {"fault": "unclean-leader", "skipped": "no leader known", **why}
        self.cluster.cut_replication(node)  # step 1
        self.cut = node
        began = self.clock()
        isr = self._wait_for(lambda: self.cluster.isr_of(topic, partition), lambda found: found == [node],
                             self.timing.isr_shrink_timeout)  # step 2
        shrunk_after = round(self.clock() - began, 1) if isr == [node] else None
        self.sleep(self.timing.alone)  # step 3
        self.cluster.kill(node)  # step 4
        self.killed = (node, topic, partition)
        return {"fault": "unclean-leader", "node": node, **why, "isr_alone_after_s": shrunk_after,
                "isr_at_kill": isr, "alone_s": self.timing.alone if shrunk_after is not None else 0.0}

    def heal(self) -> Description:
        healed: Description = {}
        if self.cut is not None:
            self.cut = None
            self.cluster.heal_network()  # step 5: the stale followers may lead
            healed["heal"] = "network"
        if self.killed is None:
            return healed
        node, topic, partition = self.killed
        self.killed = None
        healed.update(self._elect(node, topic, partition))
        self.cluster.start_node(node)  # step 6: the old leader truncates to the new one
        healed.update({"heal": "network, election, start", "node": node})
        return healed

    def _elect(self, old_leader: int, topic: str, partition: int) -> Description:
        def elected(leader: int | None) -> bool:
            return leader is not None and leader != old_leader

        leader = self._wait_for(lambda: self.cluster.leader_of(topic, partition), elected,
                                self.timing.controller_election)
        if elected(leader):
            return {"new_leader": leader, "elected_by": "controller"}
        answers: list[str] = []
        deadline = self.clock() + self.timing.election_timeout
        while True:
            answers.append(self.cluster.elect_unclean_leader(topic, partition))
            leader = self.cluster.leader_of(topic, partition)
            if elected(leader) or self.clock() >= deadline:
                break
            self.sleep(self.timing.poll)
        return {"new_leader": leader if elected(leader) else None, "elected_by": "ElectLeaders UNCLEAN",
                "elect_leaders_answers": sorted(set(answers))}

    def _wait_for(self, read: Callable[[], Any], done: Callable[[Any], bool], timeout: float) -> Any:
        """Read until ``done`` holds or ``timeout`` seconds pass; the last value read."""
        deadline = self.clock() + timeout
        while True:
            value = read()
            if done(value) or self.clock() >= deadline:
                return value
            self.sleep(self.timing.poll)


# ---------------------------------------------------------------- names on the command line
NEMESIS_NAMES = ("kill", "pause", "restart", "partition", "partition-one", "partition-majority",
                 "partition-bridge", "isolate-clients", "kill-leader", "pause-leader", "partition-leader",
                 "rolling-restart", "unclean-leader")


def build_nemesis(name: str, cluster: Cluster, topic: str | None = None) -> Nemesis:
    """One nemesis by its command-line name; ``topic`` is where leader-targeted faults look."""
    leader = Target(cluster, leader=True, topic=topic)
    builders: dict[str, Any] = {
        "kill": lambda: Kill(cluster),
        "pause": lambda: Pause(cluster),
        "restart": lambda: Restart(cluster),
        "rolling-restart": lambda: RollingRestart(cluster),
        "partition": lambda: Partition(cluster),
        "partition-one": lambda: Partition(cluster, "one"),
        "partition-majority": lambda: Partition(cluster, "majority"),
        "partition-bridge": lambda: Partition(cluster, "bridge"),
        "partition-leader": lambda: Partition(cluster, "one", target=leader, name="partition-leader"),
        "isolate-clients": lambda: IsolateClients(cluster),
        "kill-leader": lambda: Kill(cluster, leader, name="kill-leader"),
        "pause-leader": lambda: Pause(cluster, leader, name="pause-leader"),
        "unclean-leader": lambda: UncleanLeader(cluster, leader),  # type: ignore[arg-type]
    }
    if name not in builders:
        raise ValueError(f"unknown nemesis {name!r}: expected one of {', '.join(NEMESIS_NAMES)}")
    nemesis: Nemesis = builders[name]()
    return nemesis


def build_nemeses(names: Sequence[str], cluster: Cluster, topic: str | None = None) -> list[Nemesis]:
    """The nemeses for ``--nemesis a,b,c`` (names stripped, empty ones ignored, order kept)."""
    return [build_nemesis(name.strip(), cluster, topic) for name in names if name.strip()]
