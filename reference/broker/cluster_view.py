"""What a broker tells clients about the cluster: live brokers, the controller, partition leaders.

Theory of operation
-------------------
Metadata (3), DescribeCluster (60) and FindCoordinator (10) answer from the broker's view of the
cluster -- Kafka's ``MetadataCache``.  A broker has one of two views:

* :class:`SingleNodeView` -- refka's single-node mode (no ``process.roles``): this broker is the
  only broker and the controller, and it leads every partition as the only replica and ISR member.
* :class:`ImageView` -- a KRaft broker: everything comes from the metadata image the broker built
  by replaying the committed ``__cluster_metadata`` log (``reference.controller.image``).  As in
  Kafka (``KRaftMetadataCache``):

  - the live brokers are the registered, unfenced ones, each with its endpoint for the listener
    the client came in on (``advertised.listeners`` are what brokers register);
  - ``controller_id`` is a random live broker, not the active controller: in KRaft, clients never
    talk to controllers, and a broker forwards what needs one (Kafka's ``getRandomAliveBrokerId``);
  - a partition lists its replicas, ISR, leader and leader epoch as the controller last decided,
    and ``offline_replicas`` are the replicas on brokers that are not live.

Invariant: a view never invents state; what it answers is the image's (or the single node's).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class BrokerEndpoint:
    node_id: int
    host: str
    port: int
    rack: str | None = None


@dataclass(frozen=True)
class PartitionView:
    partition_index: int
    leader_id: int  # -1: no leader
    leader_epoch: int
    replica_nodes: list[int]
    isr_nodes: list[int]
    offline_replicas: list[int] = field(default_factory=list)
    eligible_leader_replicas: list[int] = field(default_factory=list)
    last_known_elr: list[int] = field(default_factory=list)


class ClusterView(Protocol):
    def alive_brokers(self) -> list[BrokerEndpoint]: ...

    def broker(self, node_id: int) -> BrokerEndpoint | None: ...

    def controller_id(self) -> int: ...

    def partitions(self, topic: str) -> list[PartitionView] | None: ...


class SingleNodeView:
    """One broker that leads every partition it hosts (refka's single-node mode)."""

    def __init__(self, endpoint: Callable[[], BrokerEndpoint], leader_epoch: Callable[[str, int], int | None],
                 partition_count: Callable[[str], int | None]) -> None:
        self._endpoint = endpoint
        self._leader_epoch = leader_epoch
        self._partition_count = partition_count

    def alive_brokers(self) -> list[BrokerEndpoint]:
        return [self._endpoint()]

    def broker(self, node_id: int) -> BrokerEndpoint | None:
        endpoint = self._endpoint()
        return endpoint if endpoint.node_id == node_id else None

    def controller_id(self) -> int:
        return self._endpoint().node_id

    def partitions(self, topic: str) -> list[PartitionView] | None:
        count = self._partition_count(topic)
        if count is None:
            return None
        node_id = self._endpoint().node_id
        return [PartitionView(index, node_id, self._leader_epoch(topic, index) or 0, [node_id], [node_id])
                for index in range(count)]


class ImageView:
    """A KRaft broker's view: the metadata image, seen through one listener name."""

    def __init__(self, image: Callable[[], Any], listener_name: str, rng: random.Random | None = None) -> None:
        self._image = image  # the current MetadataImage (replaced as records commit)
        self.listener_name = listener_name
        self._random = rng or random.Random()

    def _endpoint(self, registration: Any) -> BrokerEndpoint | None:
        for listener in registration.listeners:
            if listener.name == self.listener_name:
                return BrokerEndpoint(registration.broker_id, listener.host, listener.port, registration.rack)
        return None

    def _is_alive(self, registration: Any) -> bool:
        return not registration.fenced

    def alive_brokers(self) -> list[BrokerEndpoint]:
        alive = [self._endpoint(registration) for registration in self._image().brokers.values()
                 if self._is_alive(registration)]
        return sorted((endpoint for endpoint in alive if endpoint is not None), key=lambda endpoint: endpoint.node_id)

    def broker(self, node_id: int) -> BrokerEndpoint | None:
        registration = self._image().brokers.get(node_id)
        if registration is None or not self._is_alive(registration):
            return None
        return self._endpoint(registration)

    def controller_id(self) -> int:
        alive = self.alive_brokers()
        return self._random.choice(alive).node_id if alive else -1

    def partitions(self, topic: str) -> list[PartitionView] | None:
        image = self._image()
        found = image.topics.get(topic)
        if found is None:
            return None
        live = {node_id for node_id, registration in image.brokers.items() if self._is_alive(registration)}
        return [
            PartitionView(
                index, registration.leader, registration.leader_epoch, list(registration.replicas),
                list(registration.isr), [replica for replica in registration.replicas if replica not in live],
                list(registration.elr), list(registration.last_known_elr),
            )
            for index, registration in sorted(found.partitions.items())
        ]
