"""The models' invariants, checked on the real nodes after every event of the simulation.

Theory of operation
-------------------
``spec/replication.py`` states what replication must keep, over an abstract state: replicas'
logs, high watermarks, the controller's leader and ISR, the records acknowledged with acks=all.
:class:`InvariantChecker` reads the same state from the running nodes and checks the same
properties under the same names, after every event (it is an observer of
:class:`~chaos.sim.cluster.SimCluster`):

* the **controller's view** is the committed image of the active controller (else of the live
  node with the newest image): each partition's leader, ISR and leader epoch;
* a **replica** is a node's :class:`~reference.broker.partition.Partition`; its log is read as a
  list of batches ``(base offset, last offset, leader epoch, CRC)`` -- followers copy the leader's
  batches byte for byte, so two logs hold the same records at the same offsets exactly when they
  hold the same batches.  A crashed node keeps its files, so its last log counts as a replica's
  (also after a restart, until the node opens the partition again);
* the **acknowledged records** are what the acks=all producers were told: ``(partition, offset,
  value)``.

Replication (names of ``spec/replication.py``):

=========================  =====================================================================
LeaderInIsr                the controller's leader is none or a member of its ISR; and a
                           replica leading is in its own ISR (``Partition.check_valid``)
ValidHighWatermark         every live member of the controller's ISR holds as many records as
                           the true leader's high watermark; and locally ``log start <= LSO <=
                           HW <= LEO`` (``check_valid``)
LogMatching                two replicas agree on every batch below the smaller of their HWs
WeakIsr                    every live member of a leader's own ISR agrees with it below its HW
StrongIsr                  every live member of the controller's ISR agrees with any replica
                           presuming leadership below that replica's HW
LeaderCompleteness         the controller's leader, when up, holds every acknowledged record
NoCommittedRecordLost      every acknowledged record is in some replica's log (live or crashed)
EpochsMonotonic            leader epochs never decrease along a log
AckedOnMinIsr              when an acks=all producer receives an acknowledgement, at least the
                           topic's ``min.insync.replicas`` replicas (live or crashed) hold the
                           record at its offset
IsrJoinHoldsAcknowledged   while a leader asks to add a follower to the ISR (KIP-497's pending
                           expansion), the follower's fetch offset it acts on is past every
                           acknowledged record of the partition: the ISR is where the next
                           leader comes from.  StrongIsr's sharper, earlier form: it needs
                           neither the old leader alive nor the follower to stall until the
                           controller commits the change (KIP-320, KAFKA-7128)
=========================  =====================================================================

Idempotence (``spec/idempotence.py``; KIP-98, KIP-360), on the topics only idempotent producers
write:

=============================  =================================================================
NoDuplicateBelowHighWatermark  no value appears twice below a replica's high watermark -- except
                               a value the producer itself numbered again in a new epoch after an
                               attempt whose outcome it never learnt (``ambiguous``: the client's
                               doing, which the broker cannot see; see :mod:`chaos.checker`)
AcknowledgedInSendOrder        one producer instance's acknowledgements in one partition and one
                               producer epoch have increasing offsets in sequence order
NoWriteFromFencedEpoch         along any log, one producer id's batch epochs never decrease: once
                               a newer epoch wrote, the older one is fenced (INVALID_PRODUCER_EPOCH)
ProducerStateValid             the replica's producer-state table is valid (its ``check_valid``,
                               run by ``Partition.check_valid``: at most five cached batches per
                               producer, in sequence, at increasing offsets), on every topic
=============================  =================================================================

The *true leader* is the replica that the controller names and that knows it (it leads in the
controller's leader epoch); a deposed leader that has not heard yet only *presumes* leadership.

A replica that lost data in a power loss (:meth:`SimCluster.power_loss`) is, as in the spec,
held to WeakIsr, StrongIsr and ValidHighWatermark again only once the controller's ISR has left
it out and taken it back (``InvariantChecker._track_lost_data``).

Raft (KIP-595, Kafka's ``RaftEventSimulationTest`` invariants):

=============================  =================================================================
OneLeaderPerEpoch              no two nodes are ever leader of the quorum in the same epoch
MonotonicHighWatermark         a node's Raft high watermark never decreases (per process life)
CommittedMetadataIdentical     voters agree on every ``__cluster_metadata`` batch below the smaller
                               of their high watermarks
=============================  =================================================================

Checking after every event must not cost a pass over every log (that is quadratic in the run),
and must not assume what it checks.  So the checker works from what changed, by rules that hold
whatever the implementation does:

* a log's summary is extended by the batches appended since it was read, as long as the log's
  ``rewrites`` counter (moved by every truncation, raised log start, deletion or compaction
  swap) has not moved; otherwise the log is read again in full (:class:`_Summaries`);
* the cross-replica invariants of a partition are checked again only when something they read
  changed (summaries, high watermarks, roles, ISRs, the controller's registration, the number of
  acknowledged records); ``Partition.check_valid`` only when the replica's state changed;
* an acknowledged record found in a log stays found while that log only grows: each summary
  remembers how many of the acknowledgements, in order, it is known to hold.

A violated invariant is recorded once per name (the first occurrence is the interesting one)
with the simulated time and the event.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reference.broker.log.log import PartitionLog
from reference.broker.partition import Partition, PendingExpandIsr
from reference.controller.image import MetadataImage
from reference.errors import KafkaError
from reference.records.batch import iter_batches, iter_record_batches

from .clients import Acknowledgement as Acknowledged

if TYPE_CHECKING:
    from reference.node.node import KRaftNode

    from .cluster import SimCluster

Batch = tuple[int, int, int, int]  # base offset, last offset, partition leader epoch, CRC

REPLICATION_INVARIANTS = ("LeaderInIsr", "ValidHighWatermark", "LogMatching", "WeakIsr", "StrongIsr",
                          "LeaderCompleteness", "NoCommittedRecordLost", "EpochsMonotonic", "AckedOnMinIsr",
                          "IsrJoinHoldsAcknowledged", "IsrWithinReplicas")  # the last one is Partition.check_valid's own
IDEMPOTENCE_INVARIANTS = ("NoDuplicateBelowHighWatermark", "AcknowledgedInSendOrder", "NoWriteFromFencedEpoch",
                          "ProducerStateValid")  # the last one is the producer-state table's check_valid
RAFT_INVARIANTS = ("OneLeaderPerEpoch", "MonotonicHighWatermark", "CommittedMetadataIdentical")
INVARIANTS = REPLICATION_INVARIANTS + IDEMPOTENCE_INVARIANTS + RAFT_INVARIANTS


@dataclass(frozen=True)
class Violation:
    invariant: str
    detail: str
    at_ms: int
    event: str

    def describe(self) -> str:
        return f"{self.invariant} at t={self.at_ms}ms after '{self.event}': {self.detail}"


_serials = itertools.count()


@dataclass
class LogSummary:
    """A log's batches and, for a partition's log, the value at each offset, as read at one time.

    ``serial`` names the summary (a new one for every change of the log), so the checker can tell
    "nothing changed" by comparing serials.  ``ordered`` says the batches' base offsets increase
    (then :meth:`below` may bisect; a log breaking that is still compared in full), and
    ``epoch_drop`` whether a leader epoch ever decreases along the log (EpochsMonotonic).
    ``acks_held`` counts the partition's acknowledged records, in the order they were
    acknowledged, that this log is known to hold at their offsets (the checker advances it; an
    extended summary inherits it, as the records below the old LEO are unchanged)."""

    log_start_offset: int
    log_end_offset: int
    batches: tuple[Batch, ...]
    log: PartitionLog
    rewrites: int  # the log's ``rewrites`` when this was read
    values: dict[int, str] | None  # None: not decoded (the Raft log: no values are asked of it)
    ordered: bool
    epoch_drop: bool
    acks_held: int = 0
    producer_epochs: dict[int, int] = field(default_factory=dict)  # producer id -> highest epoch so far
    fenced_write: str = ""  # the first batch of a producer epoch older than one before it ('' if none)
    serial: int = field(default_factory=lambda: next(_serials))

    def below(self, offset: int, start: int = 0) -> tuple[Batch, ...]:
        """The batches whose base offset is in ``[start, offset)``."""
        if not self.ordered:
            return tuple(batch for batch in self.batches if start <= batch[0] < offset)
        # (x,) sorts before every batch whose base offset is x: the first batch at or above x.
        return self.batches[bisect.bisect_left(self.batches, (start,)):bisect.bisect_left(self.batches, (offset,))]

    def value_at(self, offset: int) -> str | None:
        assert self.values is not None, "values are decoded for partition logs only"
        return self.values.get(offset)


def _read_from(log: PartitionLog, offset: int) -> Iterable[bytes]:
    """The log's stored bytes from the batch holding ``offset`` up to the LEO, a read at a time."""
    while offset < log.log_end_offset:
        data = log.read(offset, 1 << 30).records
        if not data:
            return
        yield bytes(data)
        last = offset
        for _position, header in iter_batches(data):
            last = header.base_offset + header.last_offset_delta
        offset = last + 1


class _Summaries:
    """A summary per log, kept up to date with the least reading that is still exact.

    A log's ``rewrites`` counter (:class:`~reference.broker.log.log.PartitionLog`) moves on every
    change other than an append at its end.  So while it has not moved since a summary was read,
    the log holds that summary's batches unchanged below its LEO, and whatever lies from there to
    the new LEO was appended since: the summary is extended by reading only that.  Any other
    change (a truncation, even one followed by appends back to the same LEO and size; a raised log
    start; deleted or compacted segments; a reopened log) rereads the whole log."""

    def __init__(self) -> None:
        self._cache: dict[int, LogSummary] = {}

    def of(self, log: PartitionLog, values: bool = False) -> LogSummary | None:
        cached = self._cache.get(id(log))
        try:
            rewrites, start, end = log.rewrites, log.log_start_offset, log.log_end_offset
            if (cached is not None and cached.log is log and cached.rewrites == rewrites
                    and cached.log_start_offset == start and end >= cached.log_end_offset
                    and (cached.values is not None or not values)):
                if end == cached.log_end_offset:
                    return cached
                summary = _extend(cached, _read_from(log, cached.log_end_offset), end)
            else:
                empty = LogSummary(start, start, (), log, rewrites, {} if values else None, True, False)
                summary = _extend(empty, _read_from(log, start), end)
        except (KafkaError, OSError, ValueError):
            return None  # an offline or closed log is no replica to compare
        self._cache[id(log)] = summary
        return summary


def _extend(summary: LogSummary, chunks: Iterable[bytes], log_end_offset: int) -> LogSummary:
    """A new summary: ``summary`` followed by the batches in ``chunks``."""
    batches = list(summary.batches)
    values = dict(summary.values) if summary.values is not None else None
    producer_epochs, fenced_write = dict(summary.producer_epochs), summary.fenced_write
    for data in chunks:
        for _position, header in iter_batches(data):
            batches.append((header.base_offset, header.base_offset + header.last_offset_delta,
                            header.partition_leader_epoch, header.crc))
            if header.producer_id >= 0:  # NoWriteFromFencedEpoch: a producer's epochs never go back
                newest = producer_epochs.get(header.producer_id, header.producer_epoch)
                if header.producer_epoch < newest and not fenced_write:
                    fenced_write = (f"producer {header.producer_id} epoch {header.producer_epoch} at offset "
                                    f"{header.base_offset}, after its epoch {newest}")
                producer_epochs[header.producer_id] = max(newest, header.producer_epoch)
        if values is not None:
            for batch in iter_record_batches(data):
                for record in batch.records:
                    values[record.offset(batch.base_offset)] = (record.value or b"").decode()
    ordered, epoch_drop = summary.ordered, summary.epoch_drop
    for i in range(max(len(summary.batches), 1), len(batches)):  # each new batch against the one before
        ordered = ordered and batches[i - 1][0] < batches[i][0]
        epoch_drop = epoch_drop or batches[i - 1][2] > batches[i][2]
    return LogSummary(summary.log_start_offset, log_end_offset, tuple(batches), summary.log, summary.rewrites,
                      values, ordered, epoch_drop, summary.acks_held, producer_epochs, fenced_write)


@dataclass
class InvariantChecker:
    """An observer of the simulation; ``violations`` holds the first failure of each invariant."""

    topics: dict[str, int]  # name -> partitions
    acknowledged: Callable[[], Sequence[Acknowledged]]  # acks=all acknowledgements so far (only ever grows)
    min_insync_replicas: dict[str, int] = field(default_factory=dict)  # topic -> its min.insync.replicas
    idempotent_topics: frozenset[str] = frozenset()  # written by idempotent producers only
    ambiguous: set[str] = field(default_factory=set)  # values a producer's own epoch bump may write twice
    violations: list[Violation] = field(default_factory=list)
    checks: int = 0
    enabled: set[str] = field(default_factory=lambda: set(INVARIANTS))
    _summaries: _Summaries = field(default_factory=_Summaries)
    _last_known: dict[tuple[int, str, int], LogSummary] = field(default_factory=dict)
    _raft_leaders: dict[int, int] = field(default_factory=dict)  # epoch -> leader
    _raft_high_watermarks: dict[tuple[int, int], int] = field(default_factory=dict)
    _failed: set[str] = field(default_factory=set)
    _fingerprints: dict[tuple[str, int], Any] = field(default_factory=dict)
    _local_states: dict[tuple[int, str, int], Any] = field(default_factory=dict)
    _acked: dict[tuple[str, int], list[tuple[int, str]]] = field(default_factory=dict)  # per partition
    _acked_read: int = 0  # how many of ``acknowledged()`` are in ``_acked``
    # (sequence, offset) of each acknowledgement, sorted, per producer instance, partition and epoch
    _acked_sequences: dict[tuple[str, str, int, int], list[tuple[int, int]]] = field(default_factory=dict)
    _duplicate_scans: dict[tuple[int, str, int], tuple[int, int, int, dict[str, int]]] = field(default_factory=dict)
    _acked_top: dict[tuple[str, int], int] = field(default_factory=dict)  # the highest acknowledged offset
    _event: str = ""
    _now: int = 0
    # (node, topic, partition) of replicas that lost data in a power loss and have not been back in
    # the controller's ISR since: spec/replication.py's ``lost_data`` (see _track_lost_data)
    _lost_data: set[tuple[int, str, int]] = field(default_factory=set)
    # ... and the partition epoch of the controller's ISR that first left it out since the loss
    _out_of_isr_since_loss: dict[tuple[int, str, int], int] = field(default_factory=dict)
    _epoch_at_loss: dict[tuple[int, str, int], int] = field(default_factory=dict)  # the partition's, then
    _power_losses_seen: int = 0

    def __call__(self, cluster: SimCluster, event: str) -> None:
        self.checks += 1
        self._event, self._now = event, cluster.now_ms
        acknowledged = self.acknowledged()
        for ack in acknowledged[self._acked_read:]:
            self._acked.setdefault((ack.topic, ack.partition), []).append((ack.offset, ack.value))
            top = self._acked_top.get((ack.topic, ack.partition), -1)
            self._acked_top[(ack.topic, ack.partition)] = max(top, ack.offset)
            self._check_acknowledgement(cluster, ack)
        self._acked_read = len(acknowledged)
        self._check_raft(cluster)
        image = controller_image(cluster)
        self._track_lost_data(cluster, image)
        for topic, count in self.topics.items():
            for partition in range(count):
                self._check_partition(cluster, image, topic, partition)

    def _track_lost_data(self, cluster: SimCluster, image: MetadataImage | None) -> None:
        """A node that lost power (``cluster.power_losses``) has *lost data* on every partition, as
        ``spec/replication.py``'s replicas do, until the controller's ISR has left it out and taken it
        back (a leader adds a follower only once it caught up) -- judged by partition epoch, since
        the image read may be an older one than the last.  WeakIsr, StrongIsr and
        ValidHighWatermark do not hold it to the leader's log meanwhile: keeping it out of the ISR is
        ``unclean_shutdown_leaves_isr``'s job, and what it protects -- the records it lost -- is
        LeaderCompleteness's and NoCommittedRecordLost's to notice."""
        for node_id in cluster.power_losses[self._power_losses_seen:]:
            for topic, count in self.topics.items():
                for index in range(count):
                    self._lost_data.add((node_id, topic, index))
                    self._out_of_isr_since_loss.pop((node_id, topic, index), None)
                    known = image.topics[topic].partitions.get(index) \
                        if image is not None and topic in image.topics else None
                    self._epoch_at_loss[(node_id, topic, index)] = -1 if known is None else known.partition_epoch
        self._power_losses_seen = len(cluster.power_losses)
        if not self._lost_data or image is None:
            return
        for key in list(self._lost_data):
            node_id, topic, index = key
            registration = image.topics[topic].partitions.get(index) if topic in image.topics else None
            if registration is None:
                continue
            # By partition epoch, not by the order images are seen in: the image consulted moves
            # from node to node (controller_image), and a new active controller's image replays
            # older ISRs while it loads, which must not count as the node taken back.
            left_out_at = self._out_of_isr_since_loss.get(key)
            if registration.partition_epoch < self._epoch_at_loss.get(key, -1):
                continue  # an image older than the loss
            if node_id not in registration.isr:
                if left_out_at is None or registration.partition_epoch < left_out_at:
                    self._out_of_isr_since_loss[key] = registration.partition_epoch
            elif left_out_at is not None and registration.partition_epoch > left_out_at:
                self._lost_data.discard(key)

    @property
    def ok(self) -> bool:
        return not self.violations

    def _fail(self, invariant: str, detail: str) -> None:
        if invariant in self._failed or invariant not in self.enabled:
            return
        self._failed.add(invariant)
        self.violations.append(Violation(invariant, detail, self._now, self._event))

    # -- replication ------------------------------------------------------------------------------

    def _replicas(self, cluster: SimCluster, topic: str, index: int) -> dict[int, tuple[Partition | None, LogSummary]]:
        """node id -> (its live Partition or None if crashed, its log summary)."""
        found: dict[int, tuple[Partition | None, LogSummary]] = {}
        for node_id in range(cluster.count):
            node = cluster.nodes.get(node_id)
            partition = node.broker.replicas.get(topic, index) if node is not None and node.broker else None
            if partition is not None:
                summary = self._summaries.of(partition.log, values=True)  # decoded now: a crash closes the files
                if summary is not None:
                    self._last_known[(node_id, topic, index)] = summary
                    found[node_id] = (partition, summary)
                    continue
            if (node_id, topic, index) in self._last_known:  # crashed, or restarted and not yet opened
                found[node_id] = (None, self._last_known[(node_id, topic, index)])
        return found

    def _check_partition(self, cluster: SimCluster, image: MetadataImage | None, topic: str, index: int) -> None:
        replicas = self._replicas(cluster, topic, index)
        live: dict[int, tuple[Partition | None, LogSummary]] = {
            node_id: (p, s) for node_id, (p, s) in replicas.items() if p is not None}
        for node_id, (partition, summary) in live.items():
            assert partition is not None
            self._check_locally(node_id, topic, index, partition, summary)
            self._check_isr_join(node_id, topic, index, partition)
        registration = image.topics[topic].partitions.get(index) if image and topic in image.topics else None
        fingerprint = (tuple((node_id, summary.serial, p is None, p and p.high_watermark, p and p.is_leader,
                              p and p.leader_epoch, p and frozenset(p.isr)) for node_id, (p, summary) in replicas.items()),
                       registration and (registration.leader, tuple(registration.isr), registration.leader_epoch),
                       len(self._acked.get((topic, index), ())))
        if self._fingerprints.get((topic, index)) == fingerprint:
            return  # nothing the cross-replica invariants read has changed since the last event
        self._fingerprints[(topic, index)] = fingerprint
        self._check_replicas(topic, index, replicas, live, registration)

    def _check_isr_join(self, node_id: int, topic: str, index: int, partition: Partition) -> None:
        """IsrJoinHoldsAcknowledged, on every event (an acknowledgement may arrive while the change is
        in flight); the common case is one isinstance test."""
        change = partition.partition_state
        if not isinstance(change, PendingExpandIsr) or not partition.is_leader:
            return
        top = self._acked_top.get((topic, index))
        joining = partition.followers.get(change.new_in_sync_replica_id)
        if top is not None and joining is not None and joining.log_end_offset <= top:
            self._fail("IsrJoinHoldsAcknowledged", f"node {node_id} (leader, epoch {partition.leader_epoch}) of "
                                                   f"{topic}-{index} adds {joining.broker_id} to the ISR at fetch "
                                                   f"offset {joining.log_end_offset}, but offset {top} was acknowledged")

    def _check_locally(self, node_id: int, topic: str, index: int, partition: Partition, summary: LogSummary) -> None:
        """``Partition.check_valid`` (which re-reads the log) whenever the partition's state changed."""
        state = (summary.serial, partition.high_watermark, partition.last_stable_offset, id(partition.partition_state),
                 partition.leader_id, partition.leader_epoch,
                 tuple(f.log_end_offset for f in partition.followers.values()))
        key = (node_id, topic, index)
        if self._local_states.get(key) == (id(partition), state):
            return
        self._local_states[key] = (id(partition), state)
        try:
            partition.check_valid()
        except AssertionError as error:
            name, _, detail = str(error).partition(": ")
            if name not in INVARIANTS:  # check_valid's own: the producer-state table's, or the partition's
                name = "ProducerStateValid" if str(error).startswith("producer ") else "IsrWithinReplicas"
            self._fail(name, f"node {node_id} {topic}-{index}: {error}")
        if summary.epoch_drop:
            self._fail("EpochsMonotonic", f"node {node_id} {topic}-{index} batch epochs "
                                          f"{[batch[2] for batch in summary.batches]}")
        if summary.fenced_write:
            self._fail("NoWriteFromFencedEpoch", f"node {node_id} {topic}-{index}: {summary.fenced_write}")
        if topic in self.idempotent_topics:
            self._check_duplicates(node_id, topic, index, partition, summary)

    def _check_duplicates(self, node_id: int, topic: str, index: int, partition: Partition,
                          summary: LogSummary) -> None:
        """NoDuplicateBelowHighWatermark on one replica, reading only the offsets the HW passed since
        the last look (from scratch when the log was rewritten: a truncation may have removed any)."""
        key = (node_id, topic, index)
        scanned = self._duplicate_scans.get(key)
        if scanned is None or scanned[0] != id(summary.log) or scanned[1] != summary.rewrites:
            scanned = (id(summary.log), summary.rewrites, summary.log_start_offset, {})
        log_id, rewrites, checked_to, seen = scanned
        bound = min(partition.high_watermark, summary.log_end_offset)
        for offset in range(checked_to, bound):
            value = summary.value_at(offset)
            if value is None:
                continue
            first = seen.setdefault(value, offset)
            if first != offset and value not in self.ambiguous:
                self._fail("NoDuplicateBelowHighWatermark", f"node {node_id} {topic}-{index}: {value!r} at "
                                                            f"offsets {first} and {offset}, below HW {bound}")
        self._duplicate_scans[key] = (log_id, rewrites, max(checked_to, bound), seen)

    def _check_acknowledgement(self, cluster: SimCluster, ack: Acknowledged) -> None:
        """What is decided when an acknowledgement arrives: AckedOnMinIsr (enough replicas hold the
        record now) and AcknowledgedInSendOrder (within one producer epoch, a later sequence is
        acknowledged at a higher offset: the sequence check orders a producer's batches).  The
        acknowledgements seen so far are in order, so a new one is in order with all of them when it
        is with its neighbours by sequence."""
        required = self.min_insync_replicas.get(ack.topic)
        if required is not None:
            holders = sorted(node_id for node_id, (_, summary) in self._replicas(cluster, ack.topic, ack.partition).items()
                             if summary.value_at(ack.offset) == ack.value)
            if len(holders) < required:
                self._fail("AckedOnMinIsr", f"{ack.topic}-{ack.partition}: {ack.value!r} acknowledged at "
                                            f"{ack.offset} while only nodes {holders} hold it "
                                            f"(min.insync.replicas={required})")
        if ack.topic not in self.idempotent_topics or not ack.producer:
            return
        acked = self._acked_sequences.setdefault((ack.producer, ack.topic, ack.partition, ack.producer_epoch), [])
        place = bisect.bisect_left(acked, (ack.sequence,))
        neighbours = acked[max(place - 1, 0):place + 1]
        for sequence, offset in neighbours:
            if sequence != ack.sequence and (sequence < ack.sequence) != (offset < ack.offset):
                self._fail("AcknowledgedInSendOrder", f"{ack.topic}-{ack.partition}: {ack.producer} epoch "
                                                      f"{ack.producer_epoch} sequence {sequence} acknowledged at "
                                                      f"{offset}, sequence {ack.sequence} at {ack.offset}")
        acked.insert(place, (ack.sequence, ack.offset))

    def _check_replicas(self, topic: str, index: int, replicas: dict[int, tuple[Partition | None, LogSummary]],
                        live: dict[int, tuple[Partition | None, LogSummary]], registration: Any) -> None:
        ids = sorted(live)
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                pa, sa = live[a]
                pb, sb = live[b]
                assert pa is not None and pb is not None
                bound = min(pa.high_watermark, pb.high_watermark)
                start = max(sa.log_start_offset, sb.log_start_offset)
                if sa.below(bound, start) != sb.below(bound, start):
                    self._fail("LogMatching", f"{topic}-{index}: nodes {a} and {b} differ below HW {bound}: "
                                              f"{sa.below(bound, start)} vs {sb.below(bound, start)}")
        leaders = {node_id: p for node_id, (p, _) in live.items() if p is not None and p.is_leader}
        for leader_id, leader in leaders.items():
            self._isr_agrees("WeakIsr", topic, index, leader_id, leader, replicas, leader.isr)
            if registration is not None:
                self._isr_agrees("StrongIsr", topic, index, leader_id, leader, replicas, set(registration.isr))
        if registration is None:
            return
        if registration.leader >= 0 and registration.leader not in registration.isr:
            self._fail("LeaderInIsr", f"{topic}-{index}: controller's leader {registration.leader} "
                                      f"not in ISR {registration.isr}")
        true_leader = leaders.get(registration.leader)
        if true_leader is not None and true_leader.leader_epoch == registration.leader_epoch:
            high_watermark = true_leader.high_watermark
            for member in registration.isr:
                if (member, topic, index) in self._lost_data:
                    continue  # see _track_lost_data
                if member in live and live[member][1].log_end_offset < high_watermark:
                    self._fail("ValidHighWatermark", f"{topic}-{index}: ISR member {member} has LEO "
                                                     f"{live[member][1].log_end_offset} < leader "
                                                     f"{registration.leader}'s HW {high_watermark}")
        self._check_acknowledged(topic, index, registration.leader, replicas)

    def _isr_agrees(self, invariant: str, topic: str, index: int, leader_id: int, leader: Partition,
                    replicas: dict[int, tuple[Partition | None, LogSummary]], isr: set[int]) -> None:
        mine = replicas[leader_id][1]
        bound = leader.high_watermark
        for member in sorted(isr - {leader_id}):
            if member not in replicas or replicas[member][0] is None:
                continue  # not live
            if (member, topic, index) in self._lost_data:
                continue  # lost its tail in a power loss and not back in the ISR since (_track_lost_data)
            theirs = replicas[member][1]
            start = max(mine.log_start_offset, theirs.log_start_offset)
            if theirs.log_end_offset < bound or theirs.below(bound, start) != mine.below(bound, start):
                self._fail(invariant, f"{topic}-{index}: member {member} of {sorted(isr)} disagrees with "
                                      f"leader {leader_id} (epoch {leader.leader_epoch}) below its HW {bound}")

    def _check_acknowledged(self, topic: str, index: int, leader: int,
                            replicas: dict[int, tuple[Partition | None, LogSummary]]) -> None:
        """Each summary's ``acks_held`` prefix is known held, so only the acknowledgements after it
        are looked up: after the leader's for LeaderCompleteness, after the longest for
        NoCommittedRecordLost (the first record each misses is the one reported, as a full scan would)."""
        acknowledged = self._acked.get((topic, index))
        if not acknowledged:
            return
        for _, summary in replicas.values():
            held = summary.acks_held
            while held < len(acknowledged) and summary.value_at(acknowledged[held][0]) == acknowledged[held][1]:
                held += 1
            summary.acks_held = held
        leader_log = replicas[leader][1] if leader in replicas and replicas[leader][0] is not None else None
        if leader_log is not None:
            for offset, value in acknowledged[leader_log.acks_held:]:
                if leader_log.value_at(offset) != value:
                    self._fail("LeaderCompleteness", f"{topic}-{index}: leader {leader} lacks {value!r} at {offset} "
                                                     f"(holds {leader_log.value_at(offset)!r})")
                    break
        for offset, value in acknowledged[max((summary.acks_held for _, summary in replicas.values()), default=0):]:
            if not any(summary.value_at(offset) == value for _, summary in replicas.values()):
                self._fail("NoCommittedRecordLost", f"{topic}-{index}: {value!r} acknowledged at {offset} "
                                                    "is in no replica's log")
                break

    # -- raft -------------------------------------------------------------------------------------

    def _check_raft(self, cluster: SimCluster) -> None:
        voters: list[KRaftNode] = []
        for node_id, node in cluster.nodes.items():
            raft = node.raft
            if raft.leader_id == node_id:
                known = self._raft_leaders.setdefault(raft.epoch, node_id)
                if known != node_id:
                    self._fail("OneLeaderPerEpoch", f"nodes {known} and {node_id} both led epoch {raft.epoch}")
            life = (node_id, cluster.incarnation[node_id])
            previous = self._raft_high_watermarks.get(life, -1)
            if raft.high_watermark < previous:
                self._fail("MonotonicHighWatermark", f"node {node_id}'s Raft HW went from {previous} to "
                                                     f"{raft.high_watermark}")
            self._raft_high_watermarks[life] = max(previous, raft.high_watermark)
            if raft.is_voter:
                voters.append(node)
        for i, a in enumerate(voters):
            for b in voters[i + 1:]:
                sa, sb = self._summaries.of(a.raft.log), self._summaries.of(b.raft.log)
                if sa is None or sb is None:
                    continue
                bound = min(a.raft.high_watermark, b.raft.high_watermark)
                start = max(sa.log_start_offset, sb.log_start_offset)
                if sa.below(bound, start) != sb.below(bound, start):
                    self._fail("CommittedMetadataIdentical", f"voters {a.node_id} and {b.node_id} differ "
                                                             f"below the Raft HW {bound}")


def controller_image(cluster: SimCluster) -> MetadataImage | None:
    """The model's controller: the active controller's own image (its decisions, which it answers
    only once committed), else the newest committed image of a live node.  A node's committed image
    lags: the controller answers an AlterPartition when the Raft HW passes its records, and the node
    replays them into its image afterwards."""
    leader = cluster.raft_leader()
    if leader is not None and leader.controller is not None and leader.controller.controller is not None:
        image: MetadataImage = leader.controller.controller.image
        return image
    images = [node.image for node in cluster.nodes.values()]
    return max(images, key=lambda image: image.offset, default=None)
