"""Refinement: every step of the simulated cluster is a step of spec/replication.py, or a stutter.

Theory of operation
-------------------
The model checker shows that ``spec/replication.py`` keeps its invariants; the simulator runs the
real broker and controller cores.  This module ties the two: an *abstraction function* maps the
simulated cluster's state of one partition to a value of the model's state type
(:class:`spec.replication.ReplicationState`), and a *step check* (an observer of
:class:`~chaos.sim.cluster.SimCluster`) asks, after every event, whether the new abstract state is
the old one (a stutter) or one the model reaches from the old one by a short run of enabled
actions.  If it is neither, the implementation did something the model does not allow, and
:class:`RefinementError` names the event, both abstract states and the model's candidates.

The abstraction (model field <- implementation), per replica = per node id:

====================  ===============================================================================
``log``               the node's ``PartitionLog``, one :class:`~spec.replication.Entry` per offset:
                      the batch's partition leader epoch and a *record id*.  Record ids are given in
                      order of first sight to each distinct (offset, leader epoch, value): one
                      leader writes an offset once per epoch, and a follower's copy has the same
                      three, so the same id (the model's Produce numbers records the same way)
``high_watermark``    ``Partition.high_watermark``
``leader``            the node itself if ``Partition.is_leader``, else ``Partition.leader_id``
``leader_epoch``      ``Partition.leader_epoch``; a restarted broker knows none (-1) until metadata
                      names one, and the model gives it the controller's epoch - 1 at the restart
``isr``               a leader's committed ISR (``partition_state.isr``); empty on a follower.  If
                      the controller already changed the ISR of the leader's epoch (a newer
                      partition epoch), the controller's ISR: see *linearization* below
``pending_isr``       the ISR an in-flight AlterPartition proposes (``sent_isr``), else None; also
                      a proposal the leader forgot while its request is still on its way to the
                      controller (:meth:`ReplicationRefinement._proposal_in_flight`)
``fetched``           a leader's ``FollowerFetchState.log_end_offset`` per follower (-1: not fetched
                      in this epoch, the model's NOT_FETCHED)
``alive``             the node is up and has opened the partition; a crashed node keeps the log
                      and HW it had (its files), and a restarted one is crashed until it opens it
controller            the newest *committed* metadata image any node replayed: leader, leader epoch,
                      ISR (the ELR stays empty: see :func:`without_eligible_leader_replicas`)
notifications         the controller's decisions seen so far: per leader epoch, the leader and the
                      latest ISR of that epoch (the model's LeaderAndIsr set; a broker learns them
                      by replaying the metadata log, in any order relative to the others)
====================  ===============================================================================

The model variant is ``kip-497``: the implementation keeps the ISR change in flight (AlterPartition)
and computes the high watermark over the maximal ISR.

What is compared.  The *projection* (:func:`projection`) of a state is everything above but the
hidden bookkeeping: ``fetched``, a pending ISR *removal*, the notification set and the model's
ghost history (acknowledgements, consumed prefix, counters); a leader's ISR view counts as its
maximal ISR (committed plus a pending addition), so an ISR expansion must be the model's
``LeaderExpandIsr`` with its guards.  The hidden fields enter the search as the implementation
has them, and only their effects are compared: the model reads them in guards (the high
watermark's target, an ISR change), and whether the implementation took the same decision shows
in the compared fields.  This is weaker than a full refinement mapping: a hidden value is taken
afresh at every event, not carried from the model's previous step.  ``fetched`` is taken from the
state *after* the event: the model's ``fetched`` is "the offset the follower's next fetch, already
on its way, reports", so the leader handling a fetch is the moment it becomes known.

Linearization: where one model step is several events, the abstraction says at which event it
happens.

* FollowerFetch: when the answer reaches the follower, against the leader as it answered (below).
* BecomeFollower: the model truncates and follows in one step; the broker follows the new epoch
  at once and truncates later, on a DivergingEpoch answer, maybe over several fetches (KIP-279).
  A follower shows its last abstract state until a Fetch answer in the new epoch that neither
  diverges nor fails reaches it: then it has truncated, and the step is the model's.
* AlterPartition and ControllerShrinkIsr: the model changes the controller's and the leader's ISR
  in one step; the leader here learns it from the answer or the metadata a little later.  The
  step happens when the controller commits it; from then until the leader knows, its view is the
  controller's, as in the model.

Granularity.  One simulator event can be several model steps (a Fetch handled by the leader
records the offset, proposes an ISR change and advances the high watermark; a metadata answer
makes a restarted broker open the partition and follow a leader), so the check searches runs of
up to :data:`MAX_STEPS_PER_EVENT` model steps, keeping only steps that leave every already
matching part of the projection alone (so the search stays small).  And one model step can be
several events: the model's FollowerFetch is one atomic request and response, the simulator's a
request read by the leader at one time and answered at another.  The follower's side is checked
when the answer arrives, against the model's FollowerFetch from the leader *as it was when it
answered* (its log and the high watermark the answer carried): :meth:`ReplicationRefinement.install`
wraps the simulator's answer delivery to keep that view.

A mismatch is reported, never bent: the module docstring of the test lists what the model does not
allow and the implementation does (a controller fencing a live broker, for instance), and the
test's fault rules stay inside what the model describes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from unittest import mock

from reference.broker.partition import CommittedPartitionState, Partition
from reference.controller.controller_config import ControllerConfig
from reference.node.publisher import topic_uuid
from reference.protocol.apis import API_BY_KEY
from reference.protocol.frames import decode_response
from spec.checker import Transition
from spec.replication import (
    NO_REPLICA,
    NOT_FETCHED,
    Controller,
    Entry,
    Notification,
    Replica,
    ReplicationModel,
    ReplicationState,
)

from .invariants import LogSummary, _Summaries

if TYPE_CHECKING:
    from reference.broker.log.log import PartitionLog
    from reference.controller.image import MetadataImage

    from .cluster import SimCluster

FETCH = API_BY_KEY[1]
MAX_STEPS_PER_EVENT = 5
UNLIMITED = 1 << 30  # the model's bounds: the implementation is not bounded


class RefinementError(AssertionError):
    """An implementation step that is neither a stutter nor a run of enabled model steps."""


def model_for(replicas: int, min_insync_replicas: int) -> ReplicationModel:
    """The model the implementation refines: kip-497 (AlterPartition in flight), unbounded."""
    return ReplicationModel("kip-497", {"replicas": replicas, "records": UNLIMITED, "leader_changes": UNLIMITED,
                                        "process_crashes": UNLIMITED, "min_insync_replicas": min_insync_replicas})


@contextmanager
def without_eligible_leader_replicas() -> Iterator[None]:
    """Nodes started inside format their cluster with ``eligible.leader.replicas.version=0``.

    Kafka 4.1+ formats new clusters with KIP-966's ELR on (``kafka-storage format --feature
    eligible.leader.replicas.version=0`` turns it off); the model has ELR only in its kip-966
    variant, which commits ISR changes at once, and the ISR change in flight only in kip-497,
    without ELR.  The implementation has both, so it is checked against kip-497 with ELR off."""
    original = ControllerConfig.from_properties

    def from_properties(*args: Any, **kwargs: Any) -> ControllerConfig:
        return replace(original(*args, **kwargs), eligible_leader_replicas_version=0)

    with mock.patch.object(ControllerConfig, "from_properties", from_properties):
        yield


# --- the projection -------------------------------------------------------------------------------


PROJECTED_FIELDS = ("alive", "log", "high watermark", "leader", "leader epoch", "maximal ISR")


def replica_projection(replica: Replica) -> tuple[object, ...]:
    """A replica as compared: what it holds and whom it follows (a crashed one: only its files);
    a leader also its maximal ISR (committed ISR plus a pending addition): an ISR expansion must
    be the model's, guards included.  A pending *removal* is hidden: the model shrinks on an offset
    lag and Kafka on a time lag (``replica.lag.time.max.ms``), and a shrink is safe either way."""
    if not replica.alive:
        return False, replica.log, replica.high_watermark
    if not replica.fetched:  # not leading: the model keeps fetch offsets on leaders only
        return True, replica.log, replica.high_watermark, replica.leader, replica.leader_epoch
    maximal_isr = replica.isr | (replica.pending_isr or frozenset())
    return True, replica.log, replica.high_watermark, replica.leader, replica.leader_epoch, maximal_isr


def projection(state: ReplicationState) -> tuple[object, ...]:
    c = state.controller
    return (c.leader, c.leader_epoch, c.isr), *(replica_projection(r) for r in state.replicas)


# --- reading the cluster --------------------------------------------------------------------------


@dataclass
class _Crashed:
    """What is left of a replica whose node is down: its files' log and HW."""

    log: tuple[Entry, ...]
    high_watermark: int


@dataclass
class _FetchAnswer:
    """A leader's answer to a follower's Fetch, as it was when the leader answered."""

    leader: int
    follower: int
    view: Replica  # the leader's replica, with the high watermark the answer carries
    leader_epoch: int  # the CurrentLeaderEpoch the follower fetched in
    reconciles: bool  # records or nothing, but no DivergingEpoch and no error: the follower's log is settled


@dataclass
class ReplicationRefinement:
    """The step check for one partition (see the module docstring); an observer of the cluster."""

    cluster: SimCluster
    topic: str
    index: int
    model: ReplicationModel
    steps: int = 0  # events that changed the abstract state and were matched
    stutters: int = 0
    model_steps: dict[str, int] = field(default_factory=dict)  # model actions used, by name
    _records: dict[tuple[int, int, str], int] = field(default_factory=dict)
    _summaries: _Summaries = field(default_factory=_Summaries)
    _crashed: dict[int, _Crashed] = field(default_factory=dict)
    _restart_epoch: dict[int, int] = field(default_factory=dict)  # a restarted replica's epoch until told one
    _notifications: dict[int, Notification] = field(default_factory=dict)  # leader epoch -> latest decision
    _settled: dict[int, int] = field(default_factory=dict)  # node -> the leader epoch its log is settled in
    _shown: dict[int, Replica] = field(default_factory=dict)  # node -> its abstract replica last shown
    # id(request) -> (the request, kept alive so its id is not reused; the leader's answer as it was)
    _answers: dict[int, tuple[Any, _FetchAnswer]] = field(default_factory=dict)
    _delivered: _FetchAnswer | None = None
    _state: ReplicationState | None = None
    _image: MetadataImage | None = None
    _proposals: dict[int, tuple[tuple[int, int, int], frozenset[int] | None]] = field(default_factory=dict)
    _trail: list[str] = field(default_factory=list)

    # -- wiring ------------------------------------------------------------------------------------

    def install(self) -> None:
        """Observe every event, and keep the leader's view of every Fetch answer (see above)."""
        cluster = self.cluster
        answer_later, answer = cluster._answer_later, cluster._answer

        def answering(destination: int, source: Any, request: Any, encoded: Any, api_name: str, version: int) -> None:
            if api_name == "Fetch" and isinstance(source, int) and not isinstance(encoded, BaseException):
                answered = self._fetch_answer(destination, source, request, encoded, version)
                if answered is not None:
                    if len(self._answers) > 256:  # answers lost on the way: their requests timed out
                        self._answers = {key: kept for key, kept in self._answers.items() if not kept[0].done}
                    self._answers[id(request)] = (request, answered)
            answer_later(destination, source, request, encoded, api_name, version)

        def delivering(source: Any, incarnation: Any, request: Any, encoded: Any, version: int) -> None:
            kept = self._answers.pop(id(request), None)
            self._delivered = kept[1] if kept is not None and kept[0] is request else None
            answer(source, incarnation, request, encoded, version)

        cluster._answer_later = answering  # type: ignore[method-assign]
        cluster._answer = delivering  # type: ignore[method-assign]
        cluster.observers.append(self)

    def _fetch_answer(self, leader: int, follower: int, request: Any, encoded: Any,
                      version: int) -> _FetchAnswer | None:
        """What the leader's answer says about this partition, and the leader as it answered."""
        node = self.cluster.nodes.get(leader)
        partition = node.broker.replicas.get(self.topic, self.index) if node is not None and node.broker else None
        asked = [p for t in request.body.topics for p in t.partitions
                 if self._is_our_topic(t.topic, t.topic_id) and p.partition == self.index]
        if partition is None or not asked:
            return None
        _, body = decode_response(FETCH, version, encoded[4:])
        for topic in body.responses:
            for answer in topic.partitions:
                if answer.partition_index != self.index or not self._is_our_topic(topic.topic, topic.topic_id):
                    continue
                replica = self._live_replica(leader, partition)
                if replica is None:
                    return None
                diverging = answer.diverging_epoch
                diverged = diverging is not None and (diverging.epoch >= 0 or diverging.end_offset >= 0)
                return _FetchAnswer(leader, follower, replica._replace(high_watermark=int(answer.high_watermark)),
                                    int(asked[0].current_leader_epoch), answer.error_code == 0 and not diverged)
        return None

    def _is_our_topic(self, name: str | None, topic_id: Any) -> bool:
        if name:
            return bool(name == self.topic)
        image = self._committed_image()
        topic = image.topics.get(self.topic) if image is not None else None
        return topic is not None and topic_id == topic_uuid(topic.topic_id)

    # -- the abstraction function ------------------------------------------------------------------

    def abstract(self) -> ReplicationState:
        """The model's state of the partition now (see the table in the module docstring)."""
        image = self._committed_image()
        registration = None
        if image is not None and self.topic in image.topics:
            registration = image.topics[self.topic].partitions.get(self.index)
        if registration is None:
            controller = Controller(NO_REPLICA, -1, frozenset())
        else:
            leader = registration.leader if registration.leader >= 0 else NO_REPLICA
            controller = Controller(leader, registration.leader_epoch, frozenset(registration.isr))
            self._notifications[controller.leader_epoch] = Notification(controller.leader, controller.leader_epoch,
                                                                        controller.isr)
        partition_epoch = -1 if registration is None else registration.partition_epoch
        replicas = tuple(self._replica(node_id, controller, partition_epoch)
                         for node_id in range(self.model.replica_count))
        return ReplicationState(replicas, controller, frozenset(self._notifications.values()),
                                records_sent=len(self._records))

    def _committed_image(self) -> MetadataImage | None:
        """The newest committed metadata any node has replayed, ever: the controller's decisions.

        Not the active controller's own image, which holds records not yet committed (a new
        quorum leader may never have them), and not only the live nodes' (committed metadata
        outlives the node that replayed it first)."""
        for node in self.cluster.nodes.values():
            if self._image is None or node.image.offset > self._image.offset:
                self._image = node.image
        return self._image

    def _replica(self, node_id: int, controller: Controller, partition_epoch: int) -> Replica:
        node = self.cluster.nodes.get(node_id)
        partition = node.broker.replicas.get(self.topic, self.index) if node is not None and node.broker else None
        replica = self._live_replica(node_id, partition) if partition is not None else None
        if (replica is not None and partition is not None and replica.leader == node_id
                and replica.leader_epoch == controller.leader_epoch and partition.partition_epoch < partition_epoch):
            # The controller changed the ISR of this leader's epoch (it committed the leader's own
            # AlterPartition, or removed a fenced follower); the news is on its way to the leader.
            # The model's AlterPartition and ControllerShrinkIsr hand the leader the new ISR in the
            # same step, and an AlterPartition still in flight is refused: the leader's view is the
            # controller's, with nothing pending.
            replica = replica._replace(isr=controller.isr, pending_isr=None)
        if replica is None:
            crashed = self._crashed.get(node_id, _Crashed((), 0))
            self._restart_epoch.pop(node_id, None)
            self._settled.pop(node_id, None)
            self._shown[node_id] = Replica(log=crashed.log, high_watermark=crashed.high_watermark, alive=False)
            return self._shown[node_id]
        self._crashed[node_id] = _Crashed(replica.log, replica.high_watermark)
        if replica.leader_epoch < 0 and replica.leader == NO_REPLICA:
            # Restarted, no leader epoch known yet: the model's Restart gives it the controller's - 1.
            epoch = self._restart_epoch.setdefault(node_id, controller.leader_epoch - 1)
            replica = replica._replace(leader_epoch=epoch)
        if replica.leader in (node_id, NO_REPLICA):
            self._settled[node_id] = replica.leader_epoch  # leading, or no leader: nothing to truncate
        elif self._settled.get(node_id) != replica.leader_epoch:
            # Following a new leader epoch, its log not yet settled against the leader's: the model's
            # BecomeFollower (truncation included) has not happened yet; show it as it was.
            shown = self._shown.get(node_id)
            if shown is not None:
                return shown
        self._shown[node_id] = replica
        return replica

    def _live_replica(self, node_id: int, partition: Partition) -> Replica | None:
        log = self._log(partition.log)
        if log is None:
            return None
        state = partition.partition_state
        leading = partition.is_leader
        fetched: tuple[int, ...] = ()
        if leading:
            fetched = tuple(partition.followers[r].log_end_offset if r in partition.followers else NOT_FETCHED
                            for r in range(self.model.replica_count))
        leader = node_id if leading else (NO_REPLICA if partition.leader_id is None or partition.leader_id < 0
                                          else partition.leader_id)
        pending = None if isinstance(state, CommittedPartitionState) else state.sent_isr
        pending = self._proposal_in_flight(node_id, partition, pending)
        return Replica(log=log, high_watermark=partition.high_watermark, leader=leader,
                       leader_epoch=partition.leader_epoch, isr=frozenset(state.isr) if leading else frozenset(),
                       fetched=fetched, alive=True, pending_isr=pending if leading else None)

    def _proposal_in_flight(self, node_id: int, partition: Partition, pending: frozenset[int] | None
                            ) -> frozenset[int] | None:
        """The ISR change this leader has in flight *in the cluster*, not only in its own state.

        A leader that learned an ISR from an AlterPartition answer may propose the next change at
        once; when the metadata record of the first change arrives later, with the partition epoch
        it already knows, ``make_leader`` resets its ISR state and forgets the new proposal (as
        Kafka's ``Partition.makeLeader`` does for an equal partition epoch).  The request is still
        on its way to the controller, which will decide it; the model has no step that forgets a
        proposal, so the abstraction keeps it pending until the leader's AlterPartition manager
        has no request in flight any more."""
        key = (node_id, partition.leader_epoch, partition.partition_epoch)
        if pending is not None or not partition.is_leader:
            self._proposals[node_id] = (key, pending)
            return pending
        remembered = self._proposals.get(node_id)
        sender = partition.alter_partition
        if remembered is not None and remembered[0] == key and getattr(sender, "in_flight", None) is not None:
            return remembered[1]
        self._proposals[node_id] = (key, None)
        return None

    def _log(self, log: PartitionLog) -> tuple[Entry, ...] | None:
        summary: LogSummary | None = self._summaries.of(log, values=True)
        if summary is None:
            return None
        entries = []
        for base, last, epoch, _crc in summary.batches:
            for offset in range(base, last + 1):
                key = (offset, epoch, summary.value_at(offset) or "")
                record = self._records.setdefault(key, len(self._records))
                entries.append(Entry(epoch, record))
        return tuple(entries)

    # -- the step check ----------------------------------------------------------------------------

    def note(self, line: str) -> None:
        """Put what the driver did into the trail a mismatch report ends with."""
        self._trail.append(f"t={self.cluster.now_ms} -- {line}")

    def __call__(self, cluster: SimCluster, event: str) -> None:
        delivered, self._delivered = self._delivered, None
        before = self._state
        if before is None:  # the start: every replica's log counts as settled in its epoch
            for node_id, running in cluster.nodes.items():
                partition = running.broker.replicas.get(self.topic, self.index) if running.broker else None
                if partition is not None:
                    self._settled[node_id] = partition.leader_epoch
        elif delivered is not None and delivered.reconciles:
            node = cluster.nodes.get(delivered.follower)
            partition = node.broker.replicas.get(self.topic, self.index) if node is not None and node.broker else None
            if partition is not None and partition.leader_epoch == delivered.leader_epoch:
                self._settled[delivered.follower] = delivered.leader_epoch
        after = self.abstract()
        self._state = after
        if before is None:
            return
        if projection(after) == projection(before):
            self.stutters += 1
            return
        start = self._search_start(before, after)
        path = self._search(start, after, delivered)
        if path is None:
            raise RefinementError(self._report(event, before, after, start, delivered))
        self.steps += 1
        for transition in path:
            self.model_steps[transition.action] = self.model_steps.get(transition.action, 0) + 1
        self._trail.append(f"t={cluster.now_ms} {event}: " + ", ".join(t.label() for t in path))
        del self._trail[:-40]

    def _search_start(self, before: ReplicationState, after: ReplicationState) -> ReplicationState:
        """``before`` with what the event taught the leaders about their followers (``fetched``)."""
        replicas = []
        for old, new in zip(before.replicas, after.replicas, strict=True):
            if old.alive and new.alive and old.fetched and new.fetched and old.leader_epoch == new.leader_epoch:
                old = old._replace(fetched=new.fetched)
            replicas.append(old)
        return before._replace(replicas=tuple(replicas))

    def _search(self, start: ReplicationState, after: ReplicationState,
                delivered: _FetchAnswer | None) -> list[Transition[ReplicationState]] | None:
        """The shortest run of enabled model steps from ``start`` whose end projects to ``after``.

        When the event delivered a Fetch answer, the answering leader is replaced by its view at
        the time of the answer and is compared apart: the answer changes nothing at the leader."""
        keep: int | None = None
        if delivered is not None and start.replicas[delivered.leader].alive:
            keep = delivered.leader
            if replica_projection(after.replicas[keep]) != replica_projection(start.replicas[keep]):
                return None
            replicas = list(start.replicas)
            replicas[keep] = delivered.view._replace(fetched=start.replicas[keep].fetched or delivered.view.fetched)
            start = start._replace(replicas=tuple(replicas))
        target = _parts(projection(after), keep)
        frontier: list[tuple[ReplicationState, list[Transition[ReplicationState]]]] = [(start, [])]
        seen = {start}
        for _ in range(MAX_STEPS_PER_EVENT):
            following: list[tuple[ReplicationState, list[Transition[ReplicationState]]]] = []
            for state, path in frontier:
                matched = _matching(_parts(projection(state), keep), target)
                for transition in self.model.transitions(state):
                    parts = _parts(projection(transition.state), keep)
                    if parts == target:
                        return path + [transition]
                    if any(parts[i] != target[i] for i in matched) or transition.state in seen:
                        continue  # undoes a part that already matched
                    seen.add(transition.state)
                    following.append((transition.state, path + [transition]))
            frontier = following
        return None

    def _report(self, event: str, before: ReplicationState, after: ReplicationState, start: ReplicationState,
                delivered: _FetchAnswer | None) -> str:
        changed = [("controller" if i == 0 else f"replica {'ABCDEFGH'[i - 1]}") + f": {old} -> {new}"
                   for i, (old, new) in enumerate(zip(projection(before), projection(after), strict=True))
                   if old != new and i == 0]
        changed += [f"replica {'ABCDEFGH'[r]}: " + ", ".join(
            f"{name} {a} -> {b}" for name, a, b in zip(PROJECTED_FIELDS, replica_projection(old), replica_projection(new),
                                                      strict=False) if a != b and name != "log")
                    + (" (log changed)" if old.log != new.log else "")
                    for r, (old, new) in enumerate(zip(before.replicas, after.replicas, strict=True))
                    if replica_projection(old) != replica_projection(new)]
        lines = [f"t={self.cluster.now_ms} the implementation's step '{event}' is no run of at most "
                 f"{MAX_STEPS_PER_EVENT} steps of spec/replication.py (variant {self.model.variant})",
                 "what changed:", *(f"  {line}" for line in changed),
                 "before:", self.model.render(before), "after (implementation):", self.model.render(after)]
        if delivered is not None:
            lines += [f"(a Fetch answer from {delivered.leader}, whose view was: HW {delivered.view.high_watermark}, "
                      f"log {[(e.leader_epoch, e.record) for e in delivered.view.log]})"]
        lines.append("enabled model steps from there:")
        lines += [f"  {t.label()}" for t in self.model.transitions(start)]
        lines.append("recent steps:")
        lines += [f"  {line}" for line in self._trail[-16:]]
        return "\n".join(lines)


def _parts(projected: tuple[object, ...], skip_replica: int | None) -> tuple[object, ...]:
    """The projection's parts, the replica ``skip_replica`` left out (as None)."""
    if skip_replica is None:
        return projected
    parts = list(projected)
    parts[1 + skip_replica] = None
    return tuple(parts)


def _matching(parts: tuple[object, ...], target: tuple[object, ...]) -> list[int]:
    return [i for i, (a, b) in enumerate(zip(parts, target, strict=True)) if a == b]
