"""The broker's own partition log and replica, driven side by side with the replication model.

Theory of operation
-------------------
``spec.replication`` says what a replicated partition may do; ``reference.broker.log`` is what the
broker does with one partition on one broker.  This test walks the model (variant ``kip-320``) as
``test_random_walks`` does, picking one enabled transition by index, and applies every step to
real brokers' storage: per model replica one :class:`LogDirectory` in its own temporary directory,
holding one :class:`PartitionLog` under a :class:`Partition`.  After every step it compares
what a client of each live replica can observe:

* the log: offset -> (leader epoch stamped in the batch, record id carried in the record value);
* the log end offset and the high watermark;
* the leader epoch cache (what OffsetForLeaderEpoch answers from);
* the role: leader or follower of whom, in which leader epoch; a leader's ISR and the fetch
  offset it holds for each follower.

Mapping, model action -> the broker's components (the way Kafka's broker would take the step):

==========================  ================================================================
Produce(leader, acks)       ``append_records_to_leader`` of a one-record batch; a rejection
                            (NOT_ENOUGH_REPLICAS) appends nothing, and the produce handler's
                            condition (ISR smaller than min.insync.replicas) must hold
BecomeLeader(r, epoch)      ``make_leader(epoch, isr)``
BecomeFollower(r, epoch)    ``make_follower``, then the follower computes its truncation offset
                            *itself* from OffsetForLeaderEpoch rounds against the leader's
                            ``last_offset_for_leader_epoch`` and its own epoch cache, as
                            Kafka's fetcher does (KIP-101, KIP-279 iteration), and truncates
FollowerFetch(f, leader)    the leader's Fetch epoch check (KIP-320), ``read`` at the
                            follower's LEO, ``append_as_follower``, follower HW =
                            min(leader HW, own LEO), ``update_follower_fetch_state``; an
                            OFFSET_OUT_OF_RANGE answer truncates the follower to the leader's LEO
                            (``handleOutOfRangeError``) and fetches again
FollowerFetchLost(f, l)     the leader records the fetch offset; the follower gets nothing
                            (with FollowerFetch: an ISR expansion the model's leader decided
                            while handling the fetch is written into its ISR, see below)
AdvanceHighWatermark(l)     ``maybe_increment_high_watermark``
LeaderShrinkIsr,            the ISR the model decided is written into the leader's
LeaderExpandIsr,            ``Partition.isr`` (the broker has no ISR management of its
ControllerShrinkIsr         own), then ``maybe_increment_high_watermark``
ElectLeader                 nothing: the controller is not part of a broker's storage
Crash(r)                    checkpoints written, files closed without flush (kill -9: the
                            page cache survives); the leaders forget the crashed follower's
                            fetch offset, as the model does (its fetch session is gone)
Restart(r)                  ``LogDirectory.open``: recovery of the unflushed tail
Flush(r)                    ``flush``
==========================  ================================================================

Where the two differ in granularity, not in behaviour:

1. **The leader advances its high watermark eagerly.**  ``make_leader``,
   ``append_records_to_leader`` and ``update_follower_fetch_state`` end with
   ``maybe_increment_high_watermark`` (so do Kafka's ``makeLeader``, ``appendRecordsToLeader``
   and ``updateFollowerFetchState``); the model makes it a step of its own.  So one implementation
   step is the model's step followed by every ``AdvanceHighWatermark`` the model then enables.
   The follower's HW comes from the fetch response, read *before* the leader records the fetch
   (Kafka's ``Partition.fetchRecords``), which is what the model's FollowerFetch does too.
2. **An epoch that started at the LEO and holds no record** stays in a replica's epoch cache
   after it stops leading (Kafka's cache keeps it too); the model's cache of a non-leader holds
   only epochs with records.  Such an entry names no record, only a leader answers
   OffsetForLeaderEpoch, and the next append, truncation, recovery or ``make_leader`` drops it, so
   the comparison leaves out a non-leader's entry that starts at its LEO.
3. **A restarted broker** knows no leader epoch (-1) until a LeaderAndIsr arrives; the model
   gives it the controller's epoch minus one.  Its epoch is compared once it applied one.
4. **The high-watermark checkpoint** is written at the crash, so the restarted replica finds the
   HW it had, as the model assumes (Kafka writes ``replication-offset-checkpoint`` every
   ``replica.high.watermark.checkpoint.interval.ms`` and may restart with an older one).

Not covered: power losses (``lossy_crashes`` stays 0), the acks=all purgatory and the model's
ghost state (acknowledgements, consumed prefix), which no component here holds.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from reference.broker.handlers.partitions import _check_leader_epoch
from reference.broker.log.clock import ManualClock
from reference.broker.log.files import TopicPartition
from reference.broker.log.log import LogAppendInfo
from reference.broker.log.log_manager import LogDirectory
from reference.broker.partition import FetchIsolation, Partition
from reference.errors import ErrorCode, Errors, KafkaError
from spec.checker import Transition
from spec.replication import NO_REPLICA, NOT_FETCHED, Entry, ReplicationModel, ReplicationState
from tests.reference.broker.log.helpers import T0, batch, decoded

PARTITION = TopicPartition("t", 0)
NO_LEADER = -1  # LeaderAndIsr's "no leader"
FETCH_MAX_BYTES = 1 << 20
MAX_OFFSET_FOR_LEADER_EPOCH_ROUNDS = 32  # each round lowers the follower's latest epoch


def record_value(record_id: int) -> bytes:
    return b"r%d" % record_id


def record_id(value: bytes | None) -> int:
    assert value is not None and value.startswith(b"r"), f"not a record written by this test: {value!r}"
    return int(value[1:])


class Observed(NamedTuple):
    """What a client of one replica can see of its log."""

    log: tuple[tuple[int, int, int], ...]  # (offset, leader epoch, record id)
    log_end_offset: int
    high_watermark: int
    epoch_cache: tuple[tuple[int, int], ...]  # (leader epoch, start offset)


# --- the brokers ----------------------------------------------------------------------------------


class Brokers:
    """One partition on ``count`` brokers: per broker a log directory and a Partition.

    Every method is one step a Kafka broker takes, written with the broker's own components; the
    harness below decides which step a model transition is."""

    def __init__(self, root: Path, count: int) -> None:
        self.root = root
        self.clock = ManualClock(T0)
        self.directories: list[LogDirectory | None] = [None] * count
        self.replicas: list[Partition | None] = [None] * count
        for broker_id in range(count):
            self._start(broker_id)

    def _start(self, broker_id: int) -> None:
        directory = LogDirectory.open(self.root / f"broker-{broker_id}", self.clock)
        self.directories[broker_id] = directory
        self.replicas[broker_id] = Partition(directory.get_or_create_log(PARTITION), broker_id)

    def replica(self, broker_id: int) -> Partition:
        replica = self.replicas[broker_id]
        assert replica is not None, f"broker {broker_id} is down"
        return replica

    def close(self) -> None:
        for directory in self.directories:
            if directory is not None:
                for log in directory.logs.values():
                    log.close_without_flush()

    # -- produce ---------------------------------------------------------------------------------

    def min_insync_replicas_error(self, leader: int, min_insync_replicas: int) -> ErrorCode | None:
        """The produce handler's acks=all check (``handlers.partitions._produce_partition``)."""
        if len(self.replica(leader).isr) < min_insync_replicas:
            return Errors.NOT_ENOUGH_REPLICAS
        return None

    def produce(self, leader: int, record: int) -> LogAppendInfo:
        self.clock.advance(1)
        return self.replica(leader).append_records_to_leader(batch(value=record_value(record), timestamp=self.clock.now_ms))

    # -- LeaderAndIsr ------------------------------------------------------------------------------

    def become_leader(self, broker_id: int, leader_epoch: int, isr: frozenset[int]) -> None:
        self.replica(broker_id).make_leader(leader_epoch, set(isr))

    def become_follower(self, broker_id: int, leader_epoch: int, leader: int) -> None:
        """Follow ``leader`` (or nobody) in ``leader_epoch``; with a leader, truncate first."""
        self.replica(broker_id).make_follower(leader_epoch, leader)
        if leader != NO_LEADER:
            self.truncate_as_new_follower(broker_id, leader, leader_epoch)

    def offset_for_leader_epoch(self, leader: int, current_leader_epoch: int, requested_epoch: int) -> tuple[int, int] | None:
        """The leader's side of OffsetForLeaderEpoch: (epoch, end offset), None for UNDEFINED.

        Fenced as the handler does (KIP-320): the leader must be in ``current_leader_epoch``."""
        source = self.replica(leader)
        if not source.is_leader:
            raise KafkaError(Errors.NOT_LEADER_OR_FOLLOWER, f"broker {leader} does not lead")
        _check_leader_epoch(source, current_leader_epoch)
        return source.last_offset_for_leader_epoch(requested_epoch)

    def truncate_as_new_follower(self, broker_id: int, leader: int, leader_epoch: int) -> None:
        """Kafka's fetcher truncation (``AbstractFetcherThread.getOffsetTruncationState``).

        Ask the leader where the follower's latest epoch ends.  If the follower knows the epoch
        the leader answers with, truncate to the smaller end offset and stop; if not (KIP-279),
        truncate to the end of the follower's largest epoch below it and ask again with the new
        latest epoch.  No epoch, or an UNDEFINED answer, falls back to the high watermark."""
        follower = self.replica(broker_id)
        log = follower.log
        for _ in range(MAX_OFFSET_FOR_LEADER_EPOCH_ROUNDS):
            requested = log.latest_epoch
            if requested is None:
                log.truncate_to(min(follower.high_watermark, log.log_end_offset))
                return
            answer = self.offset_for_leader_epoch(leader, leader_epoch, requested)
            if answer is None:
                log.truncate_to(min(follower.high_watermark, log.log_end_offset))
                return
            leader_answer_epoch, leader_end_offset = answer
            mine = log.end_offset_for_epoch(leader_answer_epoch)
            if mine is None:
                log.truncate_to(min(leader_end_offset, log.log_end_offset))
                return
            my_epoch, my_end_offset = mine
            if my_epoch != leader_answer_epoch:
                log.truncate_to(min(my_end_offset, log.log_end_offset))
                continue
            log.truncate_to(min(my_end_offset, leader_end_offset, log.log_end_offset))
            return
        raise AssertionError(f"OffsetForLeaderEpoch rounds did not converge for broker {broker_id}")

    # -- replication -----------------------------------------------------------------------------

    def _fetch_from(self, follower_id: int, leader: int) -> Partition:
        """The leader's checks of a follower's Fetch: it leads, in the follower's epoch (KIP-320)."""
        source = self.replica(leader)
        if not source.is_leader:
            raise KafkaError(Errors.NOT_LEADER_OR_FOLLOWER, f"broker {leader} does not lead")
        _check_leader_epoch(source, self.replica(follower_id).leader_epoch)
        return source

    def follower_fetch(self, follower_id: int, leader: int) -> ErrorCode | None:
        """One fetch round trip; returns OFFSET_OUT_OF_RANGE if the follower had to reset."""
        follower = self.replica(follower_id)
        source = self._fetch_from(follower_id, leader)
        error: ErrorCode | None = None
        fetch_offset = follower.log_end_offset
        high_watermark = source.high_watermark  # the response carries the HW read with the data
        try:
            data = source.read(fetch_offset, FETCH_MAX_BYTES, FetchIsolation.LOG_END)
        except KafkaError as refused:
            if refused.error is not Errors.OFFSET_OUT_OF_RANGE or source.log_end_offset >= fetch_offset:
                raise
            # ReplicaFetcherThread.handleOutOfRangeError: the leader's log is shorter than ours.
            error = refused.error
            fetch_offset = source.log_end_offset
            follower.log.truncate_to(fetch_offset)
            high_watermark = source.high_watermark
            data = source.read(fetch_offset, FETCH_MAX_BYTES, FetchIsolation.LOG_END)
        if data.records:
            follower.log.append_as_follower(data.records)
        follower.log.update_high_watermark(min(high_watermark, follower.log_end_offset))
        source.update_follower_fetch_state(follower_id, follower.log_end_offset)
        return error

    def follower_fetch_lost(self, follower_id: int, leader: int) -> None:
        """The leader handles a fetch whose response never arrives: only the fetch offset counts."""
        source = self._fetch_from(follower_id, leader)
        fetch_offset = self.replica(follower_id).log_end_offset
        source.read(fetch_offset, FETCH_MAX_BYTES, FetchIsolation.LOG_END)  # OFFSET_OUT_OF_RANGE raises
        source.update_follower_fetch_state(follower_id, fetch_offset)

    def advance_high_watermark(self, leader: int) -> None:
        self.replica(leader).maybe_increment_high_watermark()

    def set_isr(self, leader: int, isr: frozenset[int]) -> None:
        """Apply an ISR change decided elsewhere (the broker has no ISR management)."""
        replica = self.replica(leader)
        replica.isr = set(isr)
        replica.maybe_increment_high_watermark()

    # -- crashes ---------------------------------------------------------------------------------

    def crash(self, broker_id: int) -> None:
        """kill -9: checkpoints as last written (here: just now), files closed without flush."""
        directory = self.directories[broker_id]
        assert directory is not None
        directory.write_checkpoints()
        for log in directory.logs.values():
            log.close_without_flush()
        self.directories[broker_id] = None
        self.replicas[broker_id] = None
        for leader in self.replicas:
            if leader is not None and leader.is_leader and broker_id in leader.follower_log_end_offsets:
                # The crashed follower's fetch session is gone; 0 is the replica's own
                # "not fetched in this epoch" (make_leader starts ISR followers there).
                leader.follower_log_end_offsets[broker_id] = 0

    def restart(self, broker_id: int) -> None:
        assert self.replicas[broker_id] is None, f"broker {broker_id} is running"
        self._start(broker_id)

    def flush(self, broker_id: int) -> None:
        self.replica(broker_id).log.flush()

    # -- what a client sees ----------------------------------------------------------------------

    def observe(self, broker_id: int) -> Observed:
        replica = self.replica(broker_id)
        log = replica.log
        entries: list[tuple[int, int, int]] = []
        offset = log.log_start_offset
        while offset < log.log_end_offset:
            batches = decoded(log.read(offset, FETCH_MAX_BYTES, log.log_end_offset).records)
            assert batches, f"a read at {offset} below the LEO {log.log_end_offset} returned nothing"
            for found in batches:
                entries.extend((found.record_offset(record), found.partition_leader_epoch, record_id(record.value))
                               for record in found.records)
            offset = batches[-1].last_offset + 1
        cache = [(entry.epoch, entry.start_offset) for entry in log.leader_epoch_cache.entries]
        if not replica.is_leader and cache and cache[-1][1] == log.log_end_offset:
            cache.pop()  # an epoch with no record yet, left from leading (docstring, point 2)
        return Observed(tuple(entries), log.log_end_offset, log.high_watermark, tuple(cache))


class TruncatingToHighWatermark(Brokers):
    """Planted bug: a new follower truncates to its own high watermark (Kafka before KIP-101)."""

    def truncate_as_new_follower(self, broker_id: int, leader: int, leader_epoch: int) -> None:
        follower = self.replica(broker_id)
        follower.log.truncate_to(min(follower.high_watermark, follower.log_end_offset))


class SingleOffsetForLeaderEpochRound(Brokers):
    """Planted bug: KIP-101 without KIP-279: one OffsetForLeaderEpoch round, trusted as final."""

    def truncate_as_new_follower(self, broker_id: int, leader: int, leader_epoch: int) -> None:
        log = self.replica(broker_id).log
        requested = log.latest_epoch
        if requested is None:
            return
        answer = self.offset_for_leader_epoch(leader, leader_epoch, requested)
        if answer is not None:
            log.truncate_to(min(answer[1], log.log_end_offset))


# --- the model's side -----------------------------------------------------------------------------


def expected_observation(model: ReplicationModel, state: ReplicationState, r: int) -> Observed:
    """What the model says a client of replica ``r`` sees."""
    replica = state.replicas[r]
    cache: list[tuple[int, int]] = []
    for offset, entry in enumerate(replica.log):
        if not cache or cache[-1][0] != entry.leader_epoch:
            cache.append((entry.leader_epoch, offset))
    if model.presumes_leadership(state, r) and (not cache or cache[-1][0] != replica.leader_epoch):
        cache.append((replica.leader_epoch, replica.log_end_offset))  # a leader's epoch starts at its LEO
    log = tuple((offset, entry.leader_epoch, entry.record) for offset, entry in enumerate(replica.log))
    return Observed(log, replica.log_end_offset, replica.high_watermark, tuple(cache))


def int_arg(transition: Transition[ReplicationState], name: str) -> int:
    value = transition.arg(name)
    assert isinstance(value, int), f"{transition.label()}: {name} is not a replica id or epoch"
    return value


Step = Callable[[Transition[ReplicationState], ReplicationState], None]


class Harness:
    """Applies model transitions to :class:`Brokers` and compares after each one."""

    def __init__(self, model: ReplicationModel, brokers: Brokers) -> None:
        self.model = model
        self.brokers = brokers
        self.state = next(iter(model.initial_states()))
        self.steps: list[str] = []
        self.awaiting_leader_and_isr: set[int] = set()  # restarted, no LeaderAndIsr applied yet
        self.steps_by_action: dict[str, Step] = {
            "Produce": self._produce,
            "BecomeLeader": self._become_leader,
            "BecomeFollower": self._become_follower,
            "FollowerFetch": self._follower_fetch,
            "FollowerFetchLost": self._follower_fetch_lost,
            "AdvanceHighWatermark": lambda t, _: brokers.advance_high_watermark(int_arg(t, "leader")),
            "ElectLeader": lambda t, _: None,
            "ControllerShrinkIsr": self._apply_isr_changes,
            "LeaderShrinkIsr": self._apply_isr_changes,
            "LeaderExpandIsr": self._apply_isr_changes,
            "Crash": self._crash,
            "Restart": self._restart,
            "Flush": lambda t, _: brokers.flush(int_arg(t, "replica")),
        }
        self._initial_leader_and_isr()
        self.compare()

    def _initial_leader_and_isr(self) -> None:
        """The model starts with its first LeaderAndIsr applied everywhere; so do the brokers."""
        for r, replica in enumerate(self.state.replicas):
            if replica.leader == r:
                self.brokers.become_leader(r, replica.leader_epoch, replica.isr)
            else:
                self.brokers.replica(r).make_follower(replica.leader_epoch, replica.leader)

    def enabled(self) -> list[Transition[ReplicationState]]:
        return list(self.model.transitions(self.state))

    def find(self, action: str, **args: object) -> Transition[ReplicationState]:
        """The enabled transition ``action`` whose arguments include ``args`` (for fixed paths)."""
        for transition in self.enabled():
            if transition.action == action and all(transition.arg(k) == v for k, v in args.items()):
                return transition
        raise LookupError(f"{action}{args} is not enabled after {self.steps}")

    def take(self, transition: Transition[ReplicationState]) -> None:
        """One implementation step: the model's transition, then the HW advances it implies."""
        step = self.steps_by_action.get(transition.action)
        if step is None:
            raise AssertionError(f"no implementation step for the model's action {transition.label()}")
        self.steps.append(transition.label())
        before, self.state = self.state, transition.state
        step(transition, before)
        self._advance_high_watermarks_as_the_leader_did()
        self.compare()

    def _advance_high_watermarks_as_the_leader_did(self) -> None:
        """Granularity point 1: the leader's eager HW advance is the model's AdvanceHighWatermark."""
        while True:
            advance = next(iter(self.model.advance_high_watermark(self.state)), None)
            if advance is None:
                return
            self.steps.append("(with it) " + advance.label())
            self.state = advance.state

    # -- one method per model action ----------------------------------------------------------------

    def _produce(self, t: Transition[ReplicationState], before: ReplicationState) -> None:
        leader = int_arg(t, "leader")
        refusal = self.brokers.min_insync_replicas_error(leader, self.model.min_isr) if t.arg("acks") == "all" else None
        if t.state == before:
            assert Errors.NOT_ENOUGH_REPLICAS.name in t.note, t.label()
            assert refusal is Errors.NOT_ENOUGH_REPLICAS, f"the produce handler would append: {t.label()}"
            return
        assert refusal is None, f"the produce handler would answer {refusal}: {t.label()}"
        appended: Entry = t.state.replicas[leader].log[-1]
        info = self.brokers.produce(leader, appended.record)
        assert info.first_offset == info.last_offset == before.replicas[leader].log_end_offset, info

    def _become_leader(self, t: Transition[ReplicationState], before: ReplicationState) -> None:
        r = int_arg(t, "replica")
        self.brokers.become_leader(r, int_arg(t, "epoch"), t.state.replicas[r].isr)
        self.awaiting_leader_and_isr.discard(r)

    def _become_follower(self, t: Transition[ReplicationState], before: ReplicationState) -> None:
        r = int_arg(t, "replica")
        leader = t.state.replicas[r].leader
        self.brokers.become_follower(r, int_arg(t, "epoch"), NO_LEADER if leader == NO_REPLICA else leader)
        self.awaiting_leader_and_isr.discard(r)

    def _follower_fetch(self, t: Transition[ReplicationState], before: ReplicationState) -> None:
        error = self.brokers.follower_fetch(int_arg(t, "follower"), int_arg(t, "leader"))
        model_error = Errors.OFFSET_OUT_OF_RANGE if Errors.OFFSET_OUT_OF_RANGE.name in t.note else None
        assert error is model_error, f"the fetch answered {error}, the model {model_error}: {t.label()}"
        self._apply_isr_changes(t, before)

    def _follower_fetch_lost(self, t: Transition[ReplicationState], before: ReplicationState) -> None:
        self.brokers.follower_fetch_lost(int_arg(t, "follower"), int_arg(t, "leader"))
        self._apply_isr_changes(t, before)

    def _apply_isr_changes(self, t: Transition[ReplicationState], before: ReplicationState) -> None:
        """Write the ISR the model's leader decided into the broker (it has no ISR logic)."""
        for r, (old, new) in enumerate(zip(before.replicas, t.state.replicas, strict=True)):
            if new.alive and old.isr != new.isr:
                self.brokers.set_isr(r, new.isr)

    def _crash(self, t: Transition[ReplicationState], before: ReplicationState) -> None:
        assert t.arg("power_loss") is False, "power losses are not mapped (lossy_crashes must stay 0)"
        self.brokers.crash(int_arg(t, "replica"))

    def _restart(self, t: Transition[ReplicationState], before: ReplicationState) -> None:
        r = int_arg(t, "replica")
        self.brokers.restart(r)
        self.awaiting_leader_and_isr.add(r)

    # -- the comparison --------------------------------------------------------------------------------

    def compare(self) -> None:
        for r, replica in enumerate(self.state.replicas):
            implementation = self.brokers.replicas[r]
            self._check(r, (implementation is not None) == replica.alive, "alive")
            if implementation is None:
                continue
            implementation.check_valid()
            observed, expected = self.brokers.observe(r), expected_observation(self.model, self.state, r)
            for field in Observed._fields:
                self._check(r, getattr(observed, field) == getattr(expected, field),
                            f"{field}: implementation {getattr(observed, field)}, model {getattr(expected, field)}")
            self._compare_role(r, implementation)

    def _compare_role(self, r: int, implementation: Partition) -> None:
        replica = self.state.replicas[r]
        leads = self.model.presumes_leadership(self.state, r)
        self._check(r, implementation.is_leader == leads, f"leads: implementation {implementation.is_leader}, model {leads}")
        if r in self.awaiting_leader_and_isr:  # granularity point 3
            self._check(r, implementation.leader_epoch == -1 and implementation.leader_id is None, "restarted")
            return
        self._check(r, implementation.leader_epoch == replica.leader_epoch,
                    f"leader epoch: implementation {implementation.leader_epoch}, model {replica.leader_epoch}")
        leader_id = NO_REPLICA if implementation.leader_id in (None, NO_LEADER) else implementation.leader_id
        self._check(r, leader_id == replica.leader, f"leader: implementation {leader_id}, model {replica.leader}")
        if not leads:
            return
        self._check(r, implementation.isr == set(replica.isr),
                    f"ISR: implementation {implementation.isr}, model {set(replica.isr)}")
        for f, fetched in enumerate(replica.fetched):
            held = implementation.follower_log_end_offsets.get(f, 0)
            wanted = 0 if fetched == NOT_FETCHED else fetched
            self._check(r, f == r or held == wanted, f"fetch offset of {f}: implementation {held}, model {fetched}")

    def _check(self, r: int, holds: bool, what: str) -> None:
        if not holds:
            path = "\n  ".join(self.steps)
            raise AssertionError(f"replica {'ABCDEFGH'[r]} disagrees with the model, {what}\n"
                                 f"path:\n  {path}\nmodel state:\n{self.model.render(self.state)}")


# --- the random walk --------------------------------------------------------------------------------

MODEL = ReplicationModel("kip-320", {"replicas": 3, "records": 5, "leader_changes": 4, "process_crashes": 2})


class BrokersAgainstModel(RuleBasedStateMachine):
    """Random walks of the kip-320 model, every step applied to three brokers' logs."""

    @initialize()
    def start(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="refka-replication-"))
        self.harness = Harness(MODEL, Brokers(self.root, MODEL.replica_count))

    @rule(data=st.data())
    def step(self, data: st.DataObject) -> None:
        choices = self.harness.enabled()
        if not choices:
            return
        self.harness.take(choices[data.draw(st.integers(0, len(choices) - 1), label="transition")])

    def teardown(self) -> None:
        if hasattr(self, "harness"):
            self.harness.brokers.close()
        if hasattr(self, "root"):
            shutil.rmtree(self.root, ignore_errors=True)


TestBrokersAgainstModel = BrokersAgainstModel.TestCase
TestBrokersAgainstModel.settings = settings(max_examples=25, stateful_step_count=50, deadline=None,
                                            suppress_health_check=[HealthCheck.too_slow])


# --- known paths: the comparison catches planted bugs --------------------------------------------------

KnownPath = list[tuple[str, dict[str, object]]]

RESTARTED_FOLLOWER = ReplicationModel("kip-320", {"replicas": 2, "records": 1, "leader_changes": 1,
                                                  "process_crashes": 1})
RESTARTED_FOLLOWER_PATH: KnownPath = [  # KIP-101 scenario 1
    ("Produce", {"leader": 0}),
    ("FollowerFetch", {"follower": 1}),  # A's HW moves to 1 with it; B's stays 0
    ("Crash", {"replica": 1}),
    ("Restart", {"replica": 1}),
    ("BecomeFollower", {"replica": 1}),  # B must keep r0 although its HW is 0
]

FAST_LEADER_CHANGES = ReplicationModel("kip-320", {"replicas": 2, "records": 2, "leader_changes": 2,
                                                   "process_crashes": 0})
FAST_LEADER_CHANGES_PATH: KnownPath = [  # KAFKA-6361 shape: two leaders write at offset 0 in turn
    ("ElectLeader", {"replica": 1}),
    ("ElectLeader", {"replica": 0}),
    ("BecomeLeader", {"replica": 1, "epoch": 1}),
    ("Produce", {"leader": 0}),  # A, still in epoch 0, writes r0@e0
    ("BecomeLeader", {"replica": 0, "epoch": 2}),
    ("Produce", {"leader": 1}),  # B, leading epoch 1, writes r1@e1 at the same offset
    # B asks where epoch 1 ended; A never had it and answers (epoch 0, offset 1).  Only the second
    # round (KIP-279: B's own end of epoch 0 is offset 0) removes r1.
    ("BecomeFollower", {"replica": 1, "epoch": 2}),
]


def _walk(brokers_class: type[Brokers], root: Path, model: ReplicationModel, path: KnownPath) -> Harness:
    harness = Harness(model, brokers_class(root, model.replica_count))
    try:
        for action, args in path:
            harness.take(harness.find(action, **args))
    finally:
        harness.brokers.close()
    return harness


def test_a_restarted_follower_keeps_a_record_above_its_high_watermark(tmp_path: Path) -> None:
    """KIP-101 scenario 1 on the real log: truncation by leader epoch keeps what the leader has."""
    harness = _walk(Brokers, tmp_path, RESTARTED_FOLLOWER, RESTARTED_FOLLOWER_PATH)
    follower = harness.state.replicas[1]
    assert follower.high_watermark == 0 and [e.record for e in follower.log] == [0]
    assert harness.brokers.replicas[1] is not None and harness.brokers.replicas[1].log_end_offset == 1


def test_a_follower_drops_a_record_of_an_epoch_its_leader_never_had(tmp_path: Path) -> None:
    """KIP-279 on the real log: the second OffsetForLeaderEpoch round truncates to offset 0."""
    harness = _walk(Brokers, tmp_path, FAST_LEADER_CHANGES, FAST_LEADER_CHANGES_PATH)
    assert harness.steps[-1].endswith("truncate to offset 0, dropping 1")
    assert harness.brokers.replicas[1] is not None and harness.brokers.replicas[1].log_end_offset == 0


@pytest.mark.parametrize(("planted", "model", "path", "disagreement"), [
    pytest.param(TruncatingToHighWatermark, RESTARTED_FOLLOWER, RESTARTED_FOLLOWER_PATH,
                 r"replica B disagrees with the model, log: implementation \(\), model \(\(0, 0, 0\),\)",
                 id="truncate-to-high-watermark"),
    pytest.param(SingleOffsetForLeaderEpochRound, FAST_LEADER_CHANGES, FAST_LEADER_CHANGES_PATH,
                 r"replica B disagrees with the model, log: implementation \(\(0, 1, 1\),\), model \(\)",
                 id="single-offset-for-leader-epoch-round"),
])
def test_a_planted_truncation_bug_is_caught_by_the_comparison(
    tmp_path: Path, planted: type[Brokers], model: ReplicationModel, path: KnownPath, disagreement: str
) -> None:
    """Non-vacuity: the same path, with an older Kafka's truncation planted, fails the comparison."""
    with pytest.raises(AssertionError, match=disagreement):
        _walk(planted, tmp_path, model, path)
