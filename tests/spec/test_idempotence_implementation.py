"""The reference broker's producer-state table against the idempotence model, step by step.

A Hypothesis machine walks ``spec.idempotence`` (one enabled transition picked by index, as in
``test_random_walks.py``) and drives two replicas of the reference broker's partition side by side:
:class:`Partition` over a real :class:`PartitionLog` in a temporary directory, each with its
:class:`ProducerStateManager`.  The model's steps map onto the broker as follows:

* ``HandleProduce`` / ``HandleZombie``: the leader appends the batch (producer id, epoch,
  sequence) through ``append_records_to_leader``, the path the broker's Produce handler takes.
  Its answer must be the model's :meth:`IdempotenceModel.judge`: appended at the log end offset,
  a duplicate answered with the original offset, or the same error code
  (OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH).
* ``Replicate``: the follower fetches one batch and appends it as a follower (replication origin:
  no sequence checks, state only moves forward); the leader learns the follower's log end offset
  and advances the high watermark.
* ``Failover``: the follower becomes leader of a new leader epoch with the producer state it
  built from replication; the old leader becomes its follower and truncates to the end offset the
  new leader answers to OffsetForLeaderEpoch (KIP-101), rebuilding its producer state from its
  snapshots and log.
* every other step is the client's or the network's and leaves the broker alone.

After every step both replicas must hold what the model says (leader: the model's log; follower:
the log below the high watermark), the leader's producer-state entry must be the model's table
(epoch and the last five (sequence, offset) pairs), the follower's the table the model rebuilds
from the follower's log, and both logs pass ``check_valid``.  Zombie requests are made to linger
(see :func:`pick`) so that the epoch fence is compared too; a seeded test checks that walks like
the machine's compare every kind of answer, and planted bugs show the comparison catches them.

The model runs with ``first_sequence_zero`` switched off: the broker implements Kafka's rule for
idempotent producers (``ProducerAppendInfo.checkSequence``: with no epoch known, any sequence is
accepted), not the stricter rule the model assumes by default.  A test below pins that difference.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections import Counter, deque
from dataclasses import replace
from pathlib import Path
from typing import cast

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from reference.broker.log.clock import ManualClock
from reference.broker.log.config import LogConfig
from reference.broker.log.log import PartitionLog
from reference.broker.log.producer_state import (
    NUM_BATCHES_TO_RETAIN,
    BatchMetadata,
    ProducerAppendInfo,
    ProducerStateEntry,
)
from reference.broker.partition import FetchIsolation, Partition
from reference.errors import KafkaError
from reference.records.batch import RecordBatch, SimpleRecord, build_batch, iter_batches
from spec.checker import Transition
from spec.idempotence import Batch, IdempotenceModel, IdempotenceState

PRODUCER_ID = 4242
# Two of this test's batches fill a segment: the log rolls often, and each roll snapshots the
# producer state, so a truncation rebuilds the table from a snapshot plus the batches after it.
CONFIG = LogConfig(segment_bytes=150)
T0 = 1_700_000_000_000
RECORD_VALUE = b"r%d"

IMPLEMENTED_RULES = frozenset({"first_sequence_zero"})  # switched off: see the module docstring
MODEL = IdempotenceModel(
    "default",
    {"records": 7, "window": NUM_BATCHES_TO_RETAIN, "losses": 4, "failovers": 2, "epoch_bumps": 2,
     "zombies": 2, "timeouts": 2},
    IMPLEMENTED_RULES,
)

# Logs live in memory when the machine has a tmpfs: each leader change writes the leader-epoch
# checkpoint with fsync, and this test is about producer state, not durability.
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None

Answer = tuple[str, int]  # ("append", offset) | ("duplicate", original offset) | (error name, -1)


def produce_request(batch: Batch) -> bytes:
    """The single-record batch a Produce request carries for the model's ``batch``."""
    record = SimpleRecord(RECORD_VALUE % batch.record, None, T0)
    return build_batch([record], producer_id=PRODUCER_ID, producer_epoch=batch.producer_epoch,
                       base_sequence=batch.sequence)


def log_contents(replica: Partition) -> list[Batch]:
    """Every batch in a replica's log, as the model writes them: (record, epoch, sequence).
    A read stops at a segment's end, so read on from where the last one stopped."""
    log = replica.log
    found: list[Batch] = []
    while log.log_start_offset + len(found) < log.log_end_offset:
        data = log.read(log.log_start_offset + len(found), 1 << 24, log.log_end_offset).records
        for position, header in iter_batches(data):
            (record,) = RecordBatch.decode(data, position).records
            assert record.value is not None and record.value.startswith(b"r")
            found.append(Batch(int(record.value[1:]), header.producer_epoch, header.base_sequence))
    return found


def producer_table(replica: Partition) -> tuple[int, tuple[tuple[int, int], ...]] | None:
    """The replica's producer-state entry in the model's terms: (epoch, ((sequence, offset), ...))."""
    entry = replica.log.producer_state.last_entry(PRODUCER_ID)
    if entry is None:
        return None
    return entry.producer_epoch, tuple((batch.last_seq, batch.last_offset) for batch in entry.batches)


class TwoReplicas:
    """Two replicas of one partition, leader and in-sync follower, as the model has them."""

    def __init__(self, root: Path) -> None:
        clock = ManualClock(T0)
        self.replicas = [
            Partition(PartitionLog.open(root / f"broker-{broker}" / "t-0", CONFIG, clock), broker)
            for broker in (0, 1)
        ]
        self.leader_epoch = 0
        self.leader, self.follower = self.replicas
        self.leader.make_leader(self.leader_epoch, {0, 1})
        self.follower.make_follower(self.leader_epoch, self.leader.broker_id)

    def produce(self, batch: Batch) -> Answer:
        try:
            info = self.leader.append_records_to_leader(produce_request(batch))
        except KafkaError as error:
            return error.error.name, -1
        return ("duplicate" if info.duplicate else "append"), info.first_offset

    def replicate(self) -> None:
        """The follower fetches one batch (max_bytes=1: the first batch only) and appends it."""
        fetched = self.leader.read(self.follower.log_end_offset, 1, FetchIsolation.LOG_END).records
        self.follower.log.append_as_follower(fetched)
        self.leader.update_follower_fetch_state(self.follower.broker_id, self.follower.log_end_offset)
        self.follower.log.update_high_watermark(min(self.leader.high_watermark, self.follower.log_end_offset))

    def fail_over(self) -> int:
        """The follower leads a new epoch; the old leader follows it, truncating as KIP-101 says.
        Returns the offset the old leader truncated to."""
        old, new = self.leader, self.follower
        self.leader_epoch += 1
        new.make_leader(self.leader_epoch, {0, 1})
        old.make_follower(self.leader_epoch, new.broker_id)
        truncate_to = old.log_end_offset
        latest = old.log.latest_epoch
        if latest is not None:
            answer = new.last_offset_for_leader_epoch(latest)  # OffsetForLeaderEpoch
            truncate_to = min(answer[1], old.log_end_offset) if answer is not None else 0
        old.log.truncate_to(truncate_to)
        old.log.update_high_watermark(min(new.high_watermark, old.log_end_offset))
        self.leader, self.follower = new, old
        return truncate_to

    def close(self) -> None:
        for replica in self.replicas:
            replica.log.close_without_flush()


def expected_answer(model: IdempotenceModel, state: IdempotenceState, batch: Batch) -> Answer:
    verdict, offset = model.judge(state, batch)
    return verdict, (len(state.log) if verdict == "append" else offset)


class SideBySide:
    """Applies each model transition to the broker's replicas and checks that they agree."""

    def __init__(self, model: IdempotenceModel, root: Path) -> None:
        self.model = model
        self.state = next(iter(model.initial_states()))
        self.partition = TwoReplicas(root)
        self.steps: list[str] = []
        self.compared: Counter[str] = Counter()  # which kinds of answer were compared

    def step(self, transition: Transition[IdempotenceState]) -> None:
        self.steps.append(transition.label())
        if transition.action in ("HandleProduce", "HandleZombie"):
            batch = Batch(cast(int, transition.arg("record")), cast(int, transition.arg("epoch")),
                          cast(int, transition.arg("sequence")))
            expected = expected_answer(self.model, self.state, batch)
            answer = self.partition.produce(batch)
            assert answer == expected, f"broker answered {answer}, model {expected}, after {self.trail()}"
            self.compared[expected[0]] += 1
        elif transition.action == "Replicate":
            self.partition.replicate()
        elif transition.action == "Failover":
            truncated_to = self.partition.fail_over()
            assert truncated_to == self.state.high_watermark, f"truncated to {truncated_to} after {self.trail()}"
            if len(self.state.log) > truncated_to:
                self.compared["truncation"] += 1
        self.state = transition.state
        self.check_agreement()

    def check_agreement(self) -> None:
        state, leader, follower = self.state, self.partition.leader, self.partition.follower
        assert log_contents(leader) == list(state.log), f"leader log differs after {self.trail()}"
        assert log_contents(follower) == list(state.log[: state.high_watermark]), \
            f"follower log differs after {self.trail()}"
        assert leader.high_watermark == state.high_watermark, f"high watermark differs after {self.trail()}"
        expected = self.model.producer_state(state)
        assert producer_table(leader) == expected, \
            f"leader producer state {producer_table(leader)} != model {expected} after {self.trail()}"
        # The follower's table is the one the model would rebuild from the follower's log.
        expected = self.model.producer_state(replace(state, log=state.log[: state.high_watermark]))
        assert producer_table(follower) == expected, \
            f"follower producer state {producer_table(follower)} != model {expected} after {self.trail()}"
        leader.check_valid()
        follower.check_valid()

    def trail(self) -> str:
        return "\n  " + "\n  ".join(self.steps)


# --- the machine -------------------------------------------------------------------------------------

ZOMBIE_WAKES = 16  # a zombie request is handled at a step with probability 1/16: it lingers


def pick(choices: list[Transition[IdempotenceState]], zombie_wakes: bool, index: int) -> Transition[IdempotenceState]:
    """The ``index``-th transition among the zombie handlings (when ``zombie_wakes``) or among
    the other transitions.  Picking uniformly, a zombie request would nearly always be handled
    long before the client bumps its epoch, and the fence would hardly ever be compared."""
    pool = [t for t in choices if (t.action == "HandleZombie") == zombie_wakes] or choices
    return pool[index % len(pool)]


class ProducerStateAgainstModel(RuleBasedStateMachine):
    model = MODEL

    @initialize()
    def start(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="refka-idempotence-", dir=SCRATCH))
        self.pair = SideBySide(self.model, self.root)

    @rule(data=st.data())
    def step(self, data: st.DataObject) -> None:
        choices = list(self.model.transitions(self.pair.state))
        if not choices:
            return
        zombie_wakes = data.draw(st.integers(0, ZOMBIE_WAKES - 1), label="zombie wakes") == 0
        self.pair.step(pick(choices, zombie_wakes, data.draw(st.integers(0, len(choices) - 1), label="transition")))

    def teardown(self) -> None:
        if hasattr(self, "pair"):
            self.pair.partition.close()
            shutil.rmtree(self.root, ignore_errors=True)


WALK = settings(max_examples=50, stateful_step_count=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ProducerStateAgainstModel.TestCase.settings = WALK
TestProducerStateAgainstModel = ProducerStateAgainstModel.TestCase


# --- scripted paths, coverage and non-vacuity ---------------------------------------------------------


def shortest_path(model: IdempotenceModel, wanted: str) -> list[Transition[IdempotenceState]]:
    """The shortest run of ``model`` ending in a transition that reaches situation ``wanted``."""
    start = next(iter(model.initial_states()))
    paths: dict[IdempotenceState, list[Transition[IdempotenceState]]] = {start: []}
    frontier = deque([start])
    while frontier:
        state = frontier.popleft()
        for transition in model.transitions(state):
            path = paths[state] + [transition]
            if wanted in transition.situations:
                return path
            if transition.state not in paths:
                paths[transition.state] = path
                frontier.append(transition.state)
    raise AssertionError(f"situation {wanted} is unreachable")


SMALL = IdempotenceModel("default", {"records": 2, "window": NUM_BATCHES_TO_RETAIN, "losses": 2, "failovers": 1,
                                     "epoch_bumps": 1, "zombies": 1, "timeouts": 1}, IMPLEMENTED_RULES)


def run(model: IdempotenceModel, path: list[Transition[IdempotenceState]], root: Path) -> SideBySide:
    """Apply ``path`` to the model and to a fresh partition under ``root``, comparing at each step."""
    pair = SideBySide(model, root)
    try:
        for transition in path:
            pair.step(transition)
    finally:
        pair.partition.close()
    return pair


@pytest.mark.parametrize("situation, answer", [
    ("duplicate_answered", "duplicate"),
    ("out_of_order", "OUT_OF_ORDER_SEQUENCE_NUMBER"),
    ("fenced_epoch", "INVALID_PRODUCER_EPOCH"),
])
def test_the_broker_gives_the_models_answer_on_the_shortest_path_to(
    situation: str, answer: str, tmp_path: Path
) -> None:
    pair = run(SMALL, shortest_path(SMALL, situation), tmp_path)
    assert pair.compared[answer] >= 1


def test_seeded_walks_compare_every_kind_of_answer_and_a_truncating_failover() -> None:
    """The machine's comparisons are not vacuous: walks like its own reach every verdict."""
    compared: Counter[str] = Counter()
    for seed in range(40):
        chooser = random.Random(seed)
        root = Path(tempfile.mkdtemp(prefix="refka-idempotence-", dir=SCRATCH))
        pair = SideBySide(MODEL, root)
        try:
            for _ in range(60):
                choices = list(MODEL.transitions(pair.state))
                if not choices:
                    break
                pair.step(pick(choices, chooser.randrange(ZOMBIE_WAKES) == 0, chooser.randrange(len(choices))))
        finally:
            pair.partition.close()
            shutil.rmtree(root, ignore_errors=True)
        compared += pair.compared
    for kind in ("append", "duplicate", "OUT_OF_ORDER_SEQUENCE_NUMBER", "INVALID_PRODUCER_EPOCH", "truncation"):
        assert compared[kind] > 0, f"no {kind} compared in {dict(compared)}"


# Planted bugs: each must be caught by the same comparison.

def _wrong_original_offset(self: ProducerStateEntry, producer_epoch: int, first_seq: int,
                           last_seq: int) -> BatchMetadata | None:
    found = _ORIGINAL_FIND_DUPLICATE(self, producer_epoch, first_seq, last_seq)
    return None if found is None else BatchMetadata(found.last_seq, found.last_offset + 1, found.offset_delta,
                                                    found.timestamp)


_ORIGINAL_FIND_DUPLICATE = ProducerStateEntry.find_duplicate


def test_a_planted_wrong_duplicate_offset_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ProducerStateEntry, "find_duplicate", _wrong_original_offset)
    with pytest.raises(AssertionError, match="broker answered"):
        run(SMALL, shortest_path(SMALL, "duplicate_answered"), tmp_path)


def test_a_planted_missing_epoch_fence_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ProducerAppendInfo, "_check_epoch", lambda self, producer_epoch, offset: None)
    with pytest.raises(AssertionError, match="INVALID_PRODUCER_EPOCH"):
        run(SMALL, shortest_path(SMALL, "fenced_epoch"), tmp_path)


def test_a_planted_producer_state_that_survives_truncation_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A truncation that keeps the table (no rebuild from the log) leaves the old leader with a
    batch it no longer holds: the follower's table differs from the model's right after the
    leader change.  The same path agrees without the plant."""
    model = IdempotenceModel("default", {"records": 1, "window": 5, "losses": 0, "failovers": 1, "epoch_bumps": 0,
                                         "zombies": 0, "timeouts": 0}, IMPLEMENTED_RULES)
    path, state = [], next(iter(model.initial_states()))
    for label in ("Send(record=0)", "HandleProduce(record=0, epoch=0, sequence=0)", "Failover()"):
        transition = next(t for t in model.transitions(state) if t.label().split(":")[0] == label)
        path.append(transition)
        state = transition.state
    assert run(model, path, tmp_path / "honest").compared["truncation"] == 1
    monkeypatch.setattr(PartitionLog, "_rebuild_producer_state",
                        lambda self, log_end_offset: self.producer_state.update_map_end_offset(log_end_offset))
    with pytest.raises(AssertionError, match="follower producer state"):
        run(model, path, tmp_path / "planted")


def test_a_planted_bug_is_found_by_the_machine_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Hypothesis machine, not only the scripted paths, detects a planted wrong answer."""
    monkeypatch.setattr(ProducerStateEntry, "find_duplicate", _wrong_original_offset)
    quick = settings(WALK, max_examples=25, database=None, phases=[Phase.generate], derandomize=True)
    with pytest.raises(AssertionError, match="broker answered"):
        run_state_machine_as_test(ProducerStateAgainstModel, settings=quick)


def test_with_no_producer_state_the_broker_accepts_any_sequence_unlike_the_models_default(tmp_path: Path) -> None:
    """A pinned difference: the broker follows Kafka's idempotent-producer rule (no epoch known:
    any sequence is accepted); the model's default guard ``first_sequence_zero`` refuses it."""
    partition = TwoReplicas(tmp_path)
    try:
        assert partition.produce(Batch(1, 0, 1)) == ("append", 0)
    finally:
        partition.close()
    strict = IdempotenceModel()
    assert strict.judge(next(iter(strict.initial_states())), Batch(1, 0, 1))[0] == "OUT_OF_ORDER_SEQUENCE_NUMBER"
    assert MODEL.judge(next(iter(MODEL.initial_states())), Batch(1, 0, 1))[0] == "append"
