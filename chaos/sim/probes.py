"""Coverage probes: how often a run reached the rare situations that make faults interesting.

Theory of operation
-------------------
A green swarm says little unless it also says what it exercised (the model checker's
``SITUATIONS`` do the same for ``spec/``).  :class:`CoverageProbes` is an observer of the
simulation that counts named situations as they happen, from the nodes' own state:

=================================  ===========================================================
``raft-leader-change``             a quorum leader in a new Raft epoch
``leader-change``                  a data partition's leader epoch moved in the controller's image
``unclean-election``               its new leader was in neither the ISR nor the ELR (KIP-966)
                                   before (an unclean election)
``elected-from-last-known-elr``    ISR and ELR were empty and the leader came from the last
                                   known ELR (KIP-966, after an unclean shutdown emptied them)
``isr-down-to-one``                a data partition's ISR (with its ELR) shrank to one member
``isr-expanded``                   a data partition's ISR (with its ELR) grew
``truncation-on-diverging-epoch``  a follower's log end went down while it handled a Fetch
                                   answer (KIP-595/KIP-320: the leader said where its epoch ends)
``follower-between-hw-and-epoch``  a leader saw a follower outside its ISR fetch from at or above
                                   the leader's high watermark but below the start of the
                                   leader's epoch: the follower holds every record the new leader
                                   knows committed, yet may lack records the previous leader
                                   acknowledged -- where ``expand_after_epoch_start`` (KIP-320)
                                   keeps it out of the ISR
``snapshot-load``                  a node loaded a metadata snapshot (KIP-630)
``restart``                        a node started again from its files
=================================  ===========================================================

The clients add theirs at the end of a run:

=================================  ===========================================================
``not-enough-replicas``            the acks=all producers were refused NOT_ENOUGH_REPLICAS(_AFTER_APPEND)
``out-of-order-sequence``          an idempotent producer was refused OUT_OF_ORDER_SEQUENCE_NUMBER
``producer-epoch-bump``            an idempotent producer bumped its own epoch (KIP-360)
``producer-new-instance``          a new instance of the idempotent producer took over with the
                                   next epoch, leaving the old one a zombie
``producer-fenced``                a zombie instance was refused INVALID_PRODUCER_EPOCH and stopped
``zombie-request``                 a Produce request from a broken connection reached a broker late
``duplicate-batch-answered``       a retried batch was answered with success while a later batch
                                   of its partition was already acknowledged: the leader found a
                                   copy of a batch other than the producer's last (the five-batch
                                   window)
=================================  ===========================================================
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reference.broker.partition import Partition
    from reference.node.node import KRaftNode

    from .cluster import SimCluster

PROBES = ("raft-leader-change", "leader-change", "unclean-election", "elected-from-last-known-elr",
          "isr-down-to-one", "isr-expanded",
          "truncation-on-diverging-epoch", "follower-between-hw-and-epoch", "snapshot-load", "restart")


@dataclass
class CoverageProbes:
    topics: dict[str, int]
    counts: Counter[str] = field(default_factory=Counter)
    _raft_epoch: int = -1
    _partitions: dict[tuple[str, int], tuple[int, frozenset[int], frozenset[int]]] = field(default_factory=dict)
    _log_ends: dict[tuple[int, int, str, int], int] = field(default_factory=dict)
    _between: set[tuple[int, int, str, int, int, int]] = field(default_factory=set)  # counted once per epoch
    _started: set[int] = field(default_factory=set)

    def node_started(self, node: KRaftNode) -> None:
        """A hook of :class:`SimCluster`: count restarts and wrap the snapshot loader."""
        if node.node_id in self._started:
            self.counts["restart"] += 1
        self._started.add(node.node_id)
        load = node.handle_load_snapshot

        def counted(reader: Any) -> None:
            self.counts["snapshot-load"] += 1
            load(reader)

        node.handle_load_snapshot = counted  # type: ignore[method-assign]

    def __call__(self, cluster: SimCluster, event: str) -> None:
        leader = cluster.raft_leader()
        if leader is not None and leader.raft.epoch != self._raft_epoch:
            if self._raft_epoch >= 0:
                self.counts["raft-leader-change"] += 1
            self._raft_epoch = leader.raft.epoch
        # The newest *committed* image: the active controller's own image may hold decisions that a
        # failover discards, which would count changes twice.
        image = max((node.image for node in cluster.nodes.values()), key=lambda image: image.offset, default=None)
        for topic, count in self.topics.items():
            for index in range(count):
                registration = image.topics[topic].partitions.get(index) if image and topic in image.topics else None
                if registration is not None:
                    self._observe_registration((topic, index), registration.leader_epoch, registration.leader,
                                               frozenset(registration.isr) | frozenset(registration.elr),
                                               frozenset(registration.last_known_elr))
                self._observe_logs(cluster, event, topic, index)

    def _observe_registration(self, where: tuple[str, int], epoch: int, leader: int, isr: frozenset[int],
                              last_known_elr: frozenset[int]) -> None:
        before = self._partitions.get(where)
        self._partitions[where] = (epoch, isr, last_known_elr)
        if before is None:
            return
        old_epoch, old_isr, old_last_known = before
        if epoch > old_epoch:
            self.counts["leader-change"] += 1
            if leader >= 0 and leader not in old_isr:
                self.counts["elected-from-last-known-elr" if leader in old_last_known else "unclean-election"] += 1
        if len(isr) == 1 and len(old_isr) > 1:
            self.counts["isr-down-to-one"] += 1
        if len(isr) > len(old_isr):
            self.counts["isr-expanded"] += 1

    def _observe_logs(self, cluster: SimCluster, event: str, topic: str, index: int) -> None:
        for node_id, node in cluster.nodes.items():
            partition = node.broker.replicas.get(topic, index) if node.broker is not None else None
            if partition is None:
                continue
            key = (node_id, cluster.incarnation[node_id], topic, index)
            end = partition.log_end_offset
            before = self._log_ends.get(key)
            if before is not None and end < before and event.startswith("answer") and event.endswith("Fetch"):
                self.counts["truncation-on-diverging-epoch"] += 1
            self._log_ends[key] = end
            if partition.is_leader:
                self._observe_followers(key, partition)

    def _observe_followers(self, key: tuple[int, int, str, int], leader: Partition) -> None:
        """Only while a new leader's HW is still below its epoch's start (its first fetches) is there
        anything to look at, so the common case costs two attribute reads."""
        start, high_watermark = leader.leader_epoch_start_offset, leader.high_watermark
        if start is None or high_watermark >= start:
            return
        isr = leader.isr
        for follower in leader.followers.values():
            if follower.broker_id not in isr and high_watermark <= follower.log_end_offset < start:
                seen = (*key, leader.leader_epoch, follower.broker_id)
                if seen not in self._between:
                    self._between.add(seen)
                    self.counts["follower-between-hw-and-epoch"] += 1

    def table(self) -> dict[str, int]:
        return {name: self.counts.get(name, 0) for name in (*PROBES, *sorted(set(self.counts) - set(PROBES)))}
