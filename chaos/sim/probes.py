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
``truncation-kip279-differs-from-kip101``
                                   a follower's log and its leader's are such that the leader's
                                   answer to the follower's last fetched epoch (KIP-595's diverging
                                   epoch: the largest epoch <= it the leader knows, and where that
                                   ends) truncates the follower to a different offset by KIP-101's
                                   rule (trust the leader's end) than by KIP-279's (also stop at the
                                   follower's own end of that epoch): the follower holds records of
                                   an epoch the leader never saw, starting before the leader's end
                                   of the epoch both share -- where ``match_epoch_lineage`` decides
``fetch-from-older-epoch``         a leader received a follower's Fetch naming an older leader
                                   epoch than its own (refused FENCED_LEADER_EPOCH, KIP-320; served
                                   by the ``fence_fetch_epoch`` mutant)
``fetch-from-newer-epoch``         ... naming a newer epoch than its own (UNKNOWN_LEADER_EPOCH: the
                                   leader has not learnt its own re-election yet)
``snapshot-load``                  a node loaded a metadata snapshot (KIP-630)
``restart``                        a node started again from its files
``power-loss``                     a node lost power (:meth:`SimCluster.power_loss`)
``torn-tail-recovered``            a node starting cut a partition's or the metadata log at a
                                   batch that was torn or failed its CRC (the power loss kept
                                   part of it): Kafka's log recovery above the recovery point
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
          "truncation-on-diverging-epoch", "follower-between-hw-and-epoch", "truncation-kip279-differs-from-kip101",
          "fetch-from-older-epoch", "fetch-from-newer-epoch", "snapshot-load", "restart", "power-loss",
          "torn-tail-recovered")


@dataclass
class CoverageProbes:
    topics: dict[str, int]
    counts: Counter[str] = field(default_factory=Counter)
    _raft_epoch: int = -1
    _partitions: dict[tuple[str, int], tuple[int, frozenset[int], frozenset[int]]] = field(default_factory=dict)
    _log_ends: dict[tuple[int, int, str, int], int] = field(default_factory=dict)
    _between: set[tuple[int, int, str, int, int, int]] = field(default_factory=set)  # counted once per epoch
    _lineage: dict[tuple[int, int, str, int], tuple[Any, ...]] = field(default_factory=dict)  # last state looked at
    _lineage_seen: set[tuple[int, int, str, int, int]] = field(default_factory=set)  # counted once per epoch
    _fetches_seen: dict[int, Any] = field(default_factory=dict)  # source node -> the Fetch looked at last
    _started: set[int] = field(default_factory=set)
    _power_losses: int = 0

    def node_started(self, node: KRaftNode) -> None:
        """A hook of :class:`SimCluster`: count restarts and snapshot loads -- the one a node makes
        from its files while it is built (before this hook runs), and any it fetches later."""
        if node.node_id in self._started:
            self.counts["restart"] += 1
        self._started.add(node.node_id)
        logs = [node.raft.log, *(node.broker.replicas.directory.logs.values() if node.broker is not None else ())]
        if any(log.recovered_bytes_truncated for log in logs):
            self.counts["torn-tail-recovered"] += 1
        self.counts["snapshot-load"] += node.snapshots_loaded
        load = node.handle_load_snapshot

        def counted(reader: Any) -> None:
            self.counts["snapshot-load"] += 1
            load(reader)

        node.handle_load_snapshot = counted  # type: ignore[method-assign]

    def __call__(self, cluster: SimCluster, event: str) -> None:
        if len(cluster.power_losses) != self._power_losses:
            self.counts["power-loss"] += len(cluster.power_losses) - self._power_losses
            self._power_losses = len(cluster.power_losses)
        leader = cluster.raft_leader()
        if leader is not None and leader.raft.epoch != self._raft_epoch:
            if self._raft_epoch >= 0:
                self.counts["raft-leader-change"] += 1
            self._raft_epoch = leader.raft.epoch
        # The newest *committed* image: the active controller's own image may hold decisions that a
        # failover discards, which would count changes twice.
        image = max((node.image for node in cluster.nodes.values()), key=lambda image: image.offset, default=None)
        if event.startswith("request ") and event.endswith(" Fetch"):
            self._observe_fetch(cluster, event)
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
            elif partition.leader_id is not None and partition.leader_id >= 0:
                self._observe_lineage(cluster, key, partition)

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

    def _observe_lineage(self, cluster: SimCluster, key: tuple[int, int, str, int], follower: Partition) -> None:
        """Would KIP-101's and KIP-279's rules truncate ``follower`` to different offsets on its leader's
        diverging-epoch answer (reference/broker/replica_fetcher.py, ``_truncate_on_diverging_epoch``)?
        Looked at again only when the follower's log end, its last epoch or either side's epoch moved."""
        leader_id = follower.leader_id
        node = cluster.nodes.get(leader_id) if leader_id is not None else None
        leader = node.broker.replicas.get(key[2], key[3]) if node is not None and node.broker is not None else None
        if leader_id is None or leader is None or not leader.is_leader or leader.leader_epoch != follower.leader_epoch:
            return  # no fetch of this follower would be answered (or fenced, KIP-320)
        log_end, last_epoch = follower.log_end_offset, follower.log.latest_epoch
        state = (log_end, last_epoch, follower.leader_epoch, leader_id, cluster.incarnation[leader_id],
                 leader.log.latest_epoch)
        if self._lineage.get(key) == state:
            return
        self._lineage[key] = state
        if last_epoch is None:
            return
        answer = leader.log.end_offset_for_epoch(last_epoch)
        if answer is None:
            return
        epoch, leader_end = answer
        if epoch >= last_epoch and leader_end >= log_end:
            return  # not diverging: the leader has our last epoch up to our log end
        kip_101 = min(leader_end, log_end)
        mine = follower.last_offset_for_leader_epoch(epoch)
        if mine is None:
            kip_279 = kip_101
        elif mine[0] != epoch:
            kip_279 = min(mine[1], log_end)
        else:
            kip_279 = min(mine[1], leader_end, log_end)
        seen = (*key, follower.leader_epoch)
        if kip_279 != kip_101 and seen not in self._lineage_seen:
            self._lineage_seen.add(seen)
            self.counts["truncation-kip279-differs-from-kip101"] += 1

    def _observe_fetch(self, cluster: SimCluster, event: str) -> None:
        """A follower's Fetch has just been handled by its destination (``request F->L Fetch``; the
        label is also a Raft fetch's, so the follower's replica fetcher for L says whether it is one):
        compare the epoch it names with the leader's, partition by partition."""
        source, _, destination = event[len("request "):-len(" Fetch")].partition("->")
        if not (source.isdigit() and destination.isdigit()):
            return  # a client's Fetch
        follower = cluster.nodes.get(int(source))
        leader = cluster.nodes.get(int(destination))
        if follower is None or leader is None or follower.broker is None or leader.broker is None:
            return
        fetcher = follower.broker.replicas.fetchers.fetchers.get(int(destination))
        request = fetcher.in_flight if fetcher is not None else None
        if request is None or self._fetches_seen.get(int(source)) is request:
            return
        self._fetches_seen[int(source)] = request
        for topic in request.body.topics:
            if topic.topic not in self.topics:
                continue
            for wanted in topic.partitions:
                partition = leader.broker.replicas.get(topic.topic, wanted.partition)
                if partition is None or not partition.is_leader or wanted.current_leader_epoch < 0:
                    continue
                if wanted.current_leader_epoch < partition.leader_epoch:
                    self.counts["fetch-from-older-epoch"] += 1
                elif wanted.current_leader_epoch > partition.leader_epoch:
                    self.counts["fetch-from-newer-epoch"] += 1

    def table(self) -> dict[str, int]:
        return {name: self.counts.get(name, 0) for name in (*PROBES, *sorted(set(self.counts) - set(PROBES)))}
