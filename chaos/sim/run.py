"""One simulated run: bootstrap, a safety phase with faults, a liveness phase, the verdicts.

Theory of operation
-------------------
:func:`simulate` is a pure function of a :class:`SimConfig` (seed, nodes, durations, schedule):

1. **Bootstrap** (no faults): the nodes elect a quorum leader, register, and an admin client
   creates two topics: ``sim-all`` (acks=all, ``min.insync.replicas=2``) and ``sim-one``
   (acks=1).  If this does not finish in ``BOOTSTRAP_BUDGET_MS`` the run fails as ``Bootstrap``.
2. **Safety phase** (``duration_ms``): an idempotent acks=all producer writes to ``sim-all`` and
   a plain acks=1 producer to ``sim-one`` while the fault schedule runs -- drawn from the seed
   (swarm testing: :func:`~chaos.sim.faults.draw_profile`) unless given.  In a swarm the seed
   also draws the idempotent producer's own faults (:func:`draw_producer_faults`): new instances
   that take over with the next epoch, and broken connections whose requests arrive late.  With
   ``group_consumers`` (opt-in, so that the seeds' runs without them stay as they were), members
   of one consumer group read ``sim-all`` and commit what they processed, restarted at drawn
   times (:mod:`chaos.sim.group_consumer`).  The invariants (:mod:`chaos.sim.invariants`, and
   the group's NoSkip) and the coverage probes watch every event.
3. **Liveness phase**: every fault is healed (crashed nodes restart, paused ones resume, the
   network is quiet), producers stop sending new records; within ``liveness_budget_ms`` every
   partition must have a leader and its full ISR, every producer must have its records
   acknowledged, and a fresh reader must read every partition to its high watermark.  Else the
   run fails as ``Liveness``.
4. **Verdicts**: the history of ``sim-all`` is judged by :func:`chaos.checker.check` as the
   ``idempotent`` workload -- the same checker as the docker runs; anything but ``valid`` fails
   the run.  ``sim-one``'s history is judged as ``at-least-once`` and only reported: acks=1
   promises nothing across a leader change.

A run *fails* if an invariant is violated, bootstrap or liveness does not complete, or the
checker does not say ``valid``.  The digest of the event trace identifies the run: the same seed,
configuration and code give the same digest.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from chaos.checker import AT_LEAST_ONCE, IDEMPOTENT, VALID, Verdict, check
from chaos.history import Event, HistoryWriter
from reference import guards

from .clients import (
    MAX_IN_FLIGHT,
    Acknowledgement,
    BrokenConnections,
    FinalReader,
    SimAdmin,
    SimClock,
    SimProducer,
)
from .cluster import SimCluster, SimTimeLogHandler
from .faults import (
    DEFAULT_PROFILE,
    Fault,
    FaultInjector,
    Profile,
    draw_power_losses,
    draw_profile,
    draw_schedule,
)
from .group_consumer import Processed, SimGroupConsumer, draw_consumer_restarts
from .invariants import InvariantChecker, Violation, controller_image
from .probes import CoverageProbes

SAFE_TOPIC, ACKS1_TOPIC = "sim-all", "sim-one"
BOOTSTRAP_BUDGET_MS = 60_000
NODE_SETTINGS = {
    # Shorter than Kafka's defaults so a run of simulated seconds sees failovers and ISR changes;
    # the rules are the same.
    "broker.session.timeout.ms": "3000",
    "broker.heartbeat.interval.ms": "500",
    "replica.lag.time.max.ms": "3000",
    "controller.quorum.fetch.timeout.ms": "2000",
    "controller.quorum.election.timeout.ms": "1000",
}


@dataclass
class SimConfig:
    seed: int
    nodes: int = 3
    duration_ms: int = 20_000
    liveness_budget_ms: int = 120_000
    partitions: int = 2
    swarm: bool = True  # each seed draws its own fault mix; False: DEFAULT_PROFILE
    faults: list[Fault] | None = None  # an explicit schedule (a replay, or a shrink step)
    produce_interval_ms: int = 50
    disabled_invariants: frozenset[str] = frozenset()
    keep_trace: bool = False
    liveness: bool = True  # False: stop after the safety phase, judge by the invariants only (shrinking)
    log_stream: Any = None  # a stream for every node's log lines, stamped with simulated time
    guards_off: frozenset[str] = frozenset()  # implementation guards switched off (refka sim mutants)
    node_settings: dict[str, str] = field(default_factory=dict)  # over NODE_SETTINGS, for every node
    # The idempotent producer's own faults (None: drawn from the seed in a swarm, by
    # draw_producer_faults; none otherwise): when (ms into the safety phase) a new instance takes
    # over, and how often its connection breaks under a Produce request.
    producer_restarts: tuple[int, ...] | None = None
    broken_connections: BrokenConnections | None = None
    # A swarm seed may draw a power loss (chaos.sim.faults.draw_power_losses).  Opt-in here, so that
    # the seeds that tests pin keep their runs; `refka sim` draws them unless --no-power-loss.
    power_losses: bool = False
    acks1_producer: bool = True  # False: no acks=1 producer (a shrink step: fewer clients)
    group_consumers: int = 0  # members of a consumer group reading sim-all (chaos.sim.group_consumer)
    # When a member is replaced, and whether it left cleanly (None: drawn from the seed in a swarm).
    consumer_restarts: tuple[tuple[int, bool], ...] | None = None


@dataclass
class SimResult:
    config: SimConfig
    profile: Profile | None
    faults: list[Fault]
    digest: str = ""
    events: int = 0
    messages: int = 0
    simulated_ms: int = 0
    wall_seconds: float = 0.0
    violations: list[Violation] = field(default_factory=list)
    verdict: Verdict | None = None
    acks1_verdict: Verdict | None = None
    coverage: dict[str, int] = field(default_factory=dict)
    fault_log: list[str] = field(default_factory=list)
    # The idempotent producer's own faults as the run used them (drawn or given), so that a
    # shrink can pin them and then take them away one by one.
    producer_restarts: tuple[int, ...] = ()
    broken_connections: BrokenConnections = field(default_factory=BrokenConnections)
    consumer_restarts: tuple[tuple[int, bool], ...] = ()
    group_processed: dict[int, int] = field(default_factory=dict)  # partition -> first offset no member processed
    trace: list[str] | None = None

    @property
    def failed(self) -> bool:
        return bool(self.failure)

    @property
    def failure(self) -> str:
        """The first reason the run failed ('' if it passed)."""
        if self.violations:
            return self.violations[0].invariant
        if not self.config.liveness:
            return ""  # a safety-only run is judged by its invariants
        if self.verdict is None:
            return "NoVerdict"
        return "" if self.verdict.verdict == VALID else f"checker:{self.verdict.verdict}"


def simulate(config: SimConfig, root: Path | None = None) -> SimResult:
    """Run one simulation (see the module docstring) in ``root`` (a temporary directory if None)."""
    if root is None:
        with tempfile.TemporaryDirectory(prefix="refka-sim-") as directory:
            return simulate(config, Path(directory))
    started = time.perf_counter()
    plan_rng = random.Random(f"faults/{config.seed}")  # the schedule's draws, apart from the run's
    profile: Profile | None = None
    if config.faults is not None:
        faults = list(config.faults)
    else:
        profile = draw_profile(plan_rng) if config.swarm else DEFAULT_PROFILE
        faults = draw_schedule(plan_rng, profile, config.nodes, config.duration_ms)
        if config.swarm and config.power_losses:  # from a Random of its own: the draws above stay as they were
            power_losses = draw_power_losses(random.Random(f"power-loss/{config.seed}"), config.nodes,
                                             config.duration_ms)
            if power_losses:  # and no process crash with it (see draw_power_losses)
                faults = [fault for fault in faults if fault.kind != "crash"] + power_losses
    result = SimResult(config, profile, faults)
    # The guards are switched off in this process only, for this run (see reference/guards.py).
    with guards.switch_off(config.guards_off):
        cluster = SimCluster(root, config.nodes, extra={**NODE_SETTINGS, **config.node_settings}, seed=config.seed)
        if config.log_stream is None:
            return _simulate(config, cluster, result, started)
        with SimTimeLogHandler(cluster, config.log_stream):
            return _simulate(config, cluster, result, started)


def _simulate(config: SimConfig, cluster: SimCluster, result: SimResult, started: float) -> SimResult:
    topics = {SAFE_TOPIC: config.partitions, ACKS1_TOPIC: config.partitions}
    faults = result.faults
    if config.keep_trace:
        cluster.trace = []
    probes = CoverageProbes(topics)
    cluster.started_hooks.append(probes.node_started)
    for node in cluster.nodes.values():
        probes.node_started(node)
    history = HistoryWriter(None, clock=SimClock(lambda: cluster.now_ms))
    nodes = list(range(config.nodes))
    factor = min(3, config.nodes)
    admin = SimAdmin(nodes, random.Random(cluster.rng.random()), {
        SAFE_TOPIC: (config.partitions, factor, {"min.insync.replicas": str(min(2, factor))}),
        ACKS1_TOPIC: (config.partitions, factor, {"min.insync.replicas": "1"})})
    cluster.clients.append(admin)
    acknowledged: list[Acknowledgement] = []  # every instance of the idempotent producer's
    ambiguous: set[str] = set()
    safe = SimProducer("producer-all", SAFE_TOPIC, config.partitions, nodes, random.Random(cluster.rng.random()),
                       history, acks=-1, idempotent=True, interval_ms=config.produce_interval_ms,
                       acknowledged=acknowledged, ambiguous=ambiguous, max_in_flight=MAX_IN_FLIGHT)
    restarts, broken = draw_producer_faults(random.Random(f"producers/{config.seed}"), config.duration_ms) \
        if config.swarm else ((), BrokenConnections())
    restarts = restarts if config.producer_restarts is None else config.producer_restarts
    safe.broken_connections = broken if config.broken_connections is None else config.broken_connections
    result.producer_restarts, result.broken_connections = restarts, safe.broken_connections
    acks1 = SimProducer("producer-one", ACKS1_TOPIC, config.partitions, nodes, random.Random(cluster.rng.random()),
                        history, acks=1, idempotent=False, interval_ms=config.produce_interval_ms)
    instances = [safe]
    checker = InvariantChecker(topics, lambda: acknowledged, min_insync_replicas={SAFE_TOPIC: min(2, factor)},
                               idempotent_topics=frozenset({SAFE_TOPIC}), ambiguous=ambiguous)
    checker.enabled -= config.disabled_invariants
    cluster.observers += [checker, probes]

    def topics_ready() -> bool:
        image = controller_image(cluster)
        return admin.done and image is not None and all(
            topic in image.topics and all(
                registration.leader >= 0 and all(_replica_ready(cluster, topic, index, member)
                                                 for member in registration.isr)
                for index, registration in image.topics[topic].partitions.items())
            for topic in topics)

    if not cluster.run_until(topics_ready, BOOTSTRAP_BUDGET_MS):
        result.violations.append(Violation("Bootstrap", "the topics were not ready", cluster.now_ms, ""))
        return _finish(result, cluster, checker, probes, [safe, acks1], history, started)
    cluster.clients.remove(admin)
    cluster.clients += [safe, acks1] if config.acks1_producer else [safe]
    processed = Processed()

    def violated(invariant: str, detail: str, now_ms: int) -> None:
        checker.violations.append(Violation(invariant, detail, now_ms, "commit acknowledged"))

    consumers = [SimGroupConsumer(f"consumer-{index}", nodes, SAFE_TOPIC, history, processed, violated)
                 for index in range(config.group_consumers)]
    cluster.clients += consumers
    if config.group_consumers:
        drawn = draw_consumer_restarts(random.Random(f"consumers/{config.seed}"), config.duration_ms) \
            if config.swarm else ()
        result.consumer_restarts = drawn if config.consumer_restarts is None else config.consumer_restarts
    for number, (at_ms, clean) in enumerate(result.consumer_restarts, 1):
        cluster.at(cluster.now_ms + at_ms, f"consumer {'leaves' if clean else 'dies'}",
                   partial(_replace_consumer, cluster, consumers, number, clean, history, processed, violated))
    safe.sending = True
    acks1.sending = config.acks1_producer
    injector = FaultInjector(cluster, faults, cluster.now_ms, lambda: _leader_of(cluster, SAFE_TOPIC, 0),
                             lambda: _isr_of(cluster, SAFE_TOPIC, 0), lambda node: _fenced(cluster, node))
    for at_ms in restarts:
        cluster.at(cluster.now_ms + at_ms, "producer new instance",
                   lambda: _new_instance(cluster, instances, config, history, acknowledged, ambiguous))
    cluster.run_until(lambda: not checker.ok, config.duration_ms)  # a violation ends the run
    if checker.ok and config.liveness:
        for instance in instances:
            instance.broken_connections = BrokenConnections()  # healed with the network
        _liveness(cluster, config, injector, topics, instances[-1], acks1, history, checker)
    result.fault_log = injector.log
    result.coverage.update({f"fault:{kind}": count for kind, count in sorted(injector.counts.items())})
    for consumer in consumers:
        probes.counts.update(consumer.counts)
    if consumers:
        result.group_processed = {p: processed.first_unprocessed(p) for p in range(config.partitions)}
    return _finish(result, cluster, checker, probes, [*instances, acks1], history, started)


def draw_producer_faults(rng: random.Random, duration_ms: int) -> tuple[tuple[int, ...], BrokenConnections]:
    """Swarm testing for the idempotent producer, each half of the seeds on its own: new instances
    take over at random times, every ~300 ms to ~3 s, so that batches of a fenced epoch are still
    in flight; and its connections break under some Produce requests, which the broker may still
    handle later (zombie requests), so that retries and stale copies reach it out of order."""
    times: list[int] = []
    if rng.random() < 0.5:
        mean, at = rng.choice((300, 1_000, 3_000)), 0
        while (at := at + 1 + int(rng.expovariate(1 / mean))) < duration_ms:
            times.append(at)
    broken = BrokenConnections()
    if rng.random() < 0.5:
        broken = BrokenConnections(rate=rng.choice((0.02, 0.1, 0.3)), read_first=rng.choice((0.5, 0.9)),
                                   max_delay_ms=rng.choice((0, 200, 2_000)))
    return tuple(times), broken


def _new_instance(cluster: SimCluster, instances: list[SimProducer], config: SimConfig, history: HistoryWriter,
                  acknowledged: list[Acknowledgement], ambiguous: set[str]) -> None:
    """A new instance of the idempotent producer takes over with the same producer id and the next
    epoch (as a transactional.id's InitProducerId gives it); the old one becomes a zombie."""
    old = instances[-1]
    if not old.sending:
        return  # the safety phase is over
    epoch = old.producer_epoch + 1 if old.producer_id >= 0 else -1
    new = SimProducer(f"producer-all#{len(instances)}", SAFE_TOPIC, config.partitions, old.nodes,
                      random.Random(cluster.rng.random()), history, acks=-1, idempotent=True,
                      interval_ms=config.produce_interval_ms, acknowledged=acknowledged, ambiguous=ambiguous,
                      producer_id=old.producer_id if old.producer_id >= 0 else -1, producer_epoch=epoch,
                      broken_connections=old.broken_connections, max_in_flight=MAX_IN_FLIGHT)
    old.replaced()
    new.sending = True
    instances.append(new)
    cluster.clients.append(new)


def _replace_consumer(cluster: SimCluster, consumers: list[SimGroupConsumer], number: int, clean: bool,
                      history: HistoryWriter, processed: Processed,
                      violated: Callable[[str, str, int], None]) -> None:
    """Restart ``number``: the member in slot ``number mod members`` stops and a new one joins."""
    slot = number % len(consumers)
    old = consumers[slot]
    old.stop(clean, cluster.now_ms)
    new = SimGroupConsumer(f"consumer-{slot}#{number}", old.nodes, old.topic, history, processed, violated)
    new.counts = old.counts  # one tally per slot
    consumers[slot] = new
    cluster.clients.append(new)


def _liveness(cluster: SimCluster, config: SimConfig, injector: FaultInjector, topics: dict[str, int],
              safe: SimProducer, acks1: SimProducer, history: HistoryWriter, checker: InvariantChecker) -> None:
    safe.sending = acks1.sending = False
    injector.heal_all()
    cluster.network.heal()
    deadline = cluster.now_ms + config.liveness_budget_ms

    def healthy() -> bool:
        if len(cluster.nodes) < cluster.count or cluster.paused or safe.outstanding or acks1.outstanding:
            return False
        image = controller_image(cluster)
        return image is not None and all(
            topic in image.topics and all(
                registration.leader >= 0 and sorted(registration.isr) == sorted(registration.replicas)
                for registration in image.topics[topic].partitions.values())
            for topic in topics)

    if not cluster.run_until(lambda: healthy() or not checker.ok, deadline - cluster.now_ms) or not checker.ok:
        if checker.ok:
            checker.violations.append(Violation(
                "Liveness", f"not healthy within {config.liveness_budget_ms}ms of healing "
                            f"(outstanding sends {safe.outstanding}+{acks1.outstanding}, nodes up {sorted(cluster.nodes)})",
                cluster.now_ms, "liveness"))
        return
    reader = FinalReader(list(range(cluster.count)), random.Random(cluster.rng.random()), history, topics)
    cluster.clients.append(reader)
    if not cluster.run_until(lambda: reader.done or not checker.ok, max(1, deadline - cluster.now_ms)) \
            and checker.ok:
        checker.violations.append(Violation("Liveness", "the final read did not reach every high watermark",
                                            cluster.now_ms, "liveness"))
    if not reader.reported:
        reader.report(complete=reader.done)


def _finish(result: SimResult, cluster: SimCluster, checker: InvariantChecker, probes: CoverageProbes,
            producers: list[SimProducer], history: HistoryWriter, started: float) -> SimResult:
    for producer in producers:
        producer.give_up()
        for error, count in producer.errors.items():
            if error in {"NOT_ENOUGH_REPLICAS", "NOT_ENOUGH_REPLICAS_AFTER_APPEND"}:
                probes.counts["not-enough-replicas"] += count
            if error == "OUT_OF_ORDER_SEQUENCE_NUMBER":
                probes.counts["out-of-order-sequence"] += count
        probes.counts.update(producer.situations)
    probes.counts["producer-new-instance"] += sum(1 for producer in producers if producer.superseded)
    probes.counts["producer-epoch-bump"] += sum(1 for e in history.events if e.f == "epoch-bump")
    result.violations = list(checker.violations)
    result.verdict = check(topic_history(history.events, SAFE_TOPIC), IDEMPOTENT)
    result.acks1_verdict = check(topic_history(history.events, ACKS1_TOPIC), AT_LEAST_ONCE)
    result.coverage = {**probes.table(), **result.coverage}
    result.digest = cluster.digest
    result.events, result.messages = cluster.events, cluster.messages
    result.simulated_ms = cluster.now_ms
    result.trace = cluster.trace
    result.wall_seconds = time.perf_counter() - started
    for node in list(cluster.nodes.values()):
        node.shutdown()
    return result


def topic_history(events: list[Event], topic: str) -> list[Event]:
    """The events of one topic: its sends, the records read from it, its final read."""
    kept = []
    for event in events:
        value: Any = event.value
        if event.f == "send" or event.f == "final-read":
            if isinstance(value, dict) and value.get("topic") == topic:
                kept.append(event)
        elif event.f == "poll":
            if event.type == "ok":
                records = [r for r in (value or {}).get("records", []) if r["topic"] == topic]
                if records:
                    kept.append(Event(event.process, event.type, event.f, {"records": records}, event.time, event.wall))
        else:
            kept.append(event)
    return kept


def _replica_ready(cluster: SimCluster, topic: str, index: int, member: int) -> bool:
    node = cluster.nodes.get(member)
    return node is not None and node.broker is not None and node.broker.replicas.get(topic, index) is not None


def _leader_of(cluster: SimCluster, topic: str, index: int) -> int:
    image = controller_image(cluster)
    registration = image.topics[topic].partitions.get(index) if image and topic in image.topics else None
    return registration.leader if registration is not None and registration.leader >= 0 else 0


def _isr_of(cluster: SimCluster, topic: str, index: int) -> list[int]:
    image = controller_image(cluster)
    registration = image.topics[topic].partitions.get(index) if image and topic in image.topics else None
    return list(registration.isr) if registration is not None else []


def _fenced(cluster: SimCluster, node: int) -> bool:
    image = controller_image(cluster)
    registration = image.brokers.get(node) if image is not None else None
    return registration is None or registration.fenced
