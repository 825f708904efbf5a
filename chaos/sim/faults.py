"""The fault schedule: what goes wrong, when, for how long; and swarm testing's draw of it.

Theory of operation
-------------------
A run's faults are *data*, a list of :class:`Fault` (start, kind, duration, targets), so that a
failing run can be replayed from its description and shrunk by removing faults
(:mod:`chaos.sim.shrink`).  :class:`FaultInjector` turns the list into events of the simulator:
each fault begins at ``safety start + at_ms`` and heals ``duration_ms`` later.

Kinds (the issue's nemeses; node ``-1`` in ``nodes`` means "the leader of the first data
partition when the fault begins", resolved from the committed metadata):

=================  ===========================================================================
``crash``          kill ``nodes[0]``; restart it from its files when the fault heals
``power-loss``     cut ``nodes[0]``'s power: kill it, keep only what reached its disk; restart it
                   when the fault heals and the controller has fenced it (drawn apart: see
                   *Power loss* below)
``pause``          stop ``nodes[0]`` (no polls, messages held): a long GC or ``docker pause``
``isolate``        cut ``nodes[0]`` from every other node, both ways
``split``          cut ``nodes`` (the minority) from the rest, both ways
``bridge``         ``nodes = (bridge, *side)``: ``side`` and the others cannot talk, the bridge
                   talks to both (Jepsen's bridge: two overlapping majorities)
``one-way``        messages from ``nodes[0]`` to ``nodes[1]`` are lost, the reverse still flows
``lossy``          every link between nodes (between ``nodes`` if given; to and from
                   ``nodes[0]`` if it is the only one) loses, duplicates, delays and
                   reorders messages at the fault's rates
=================  ===========================================================================

**Shapes.**  Some situations need faults in a precise relation to each other that independent
draws almost never produce; :func:`draw_failover_while_lagging` draws one such shape (a follower
fenced while paused, the leader isolated just before it resumes: KIP-320's epoch-start rule for
ISR expansion), for a part of the seeds whose mix pauses or isolates nodes;
:func:`draw_leader_without_the_followers_epoch` another (a leader elected without an epoch its
follower wrote in: KIP-279's truncation to the last shared epoch), for a part of those whose mix
neither crashes, pauses nor isolates nodes.

Faults may overlap: the network's cuts are the union of the active faults' cuts, and a link's
rates the largest of the active ``lossy`` faults'.  A crash of a node that is already down, or a
pause of one that is not up, does nothing (and its heal does nothing either).

**Swarm testing** (Groce et al., TigerBeetle's VOPR): :func:`draw_profile` lets each seed pick
its own mix -- which kinds are enabled, how often faults come, how long they last, how lossy the
links are -- so that across seeds some runs see only crashes, others only lossy links, others
everything at once.  :func:`draw_schedule` then draws the faults from the profile.  A slow disk
is not drawn yet (the simulator does not model it).

**Power loss** (``power-loss``: the node dies and its files are cut back to what was fsynced plus
a drawn prefix of the rest, :mod:`chaos.sim.disk`; it restarts when the fault heals, as after a
``crash``) is drawn apart, by :func:`draw_power_losses` from a ``Random`` of its own, at most
one per run (when ``SimConfig.power_losses``, which ``refka sim`` sets unless ``--no-power-loss``), so that every other draw of a seed stays as it was before power losses existed.
Node ``-2`` (``-3``) in ``nodes`` means the first (second) follower of that partition when the
fault begins, members of its ISR first.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .network import Link, LinkFaults

if TYPE_CHECKING:
    from .cluster import SimCluster

KINDS = ("crash", "pause", "isolate", "split", "bridge", "one-way", "lossy")  # what draw_profile picks from
POWER_LOSS = "power-loss"  # drawn on its own (draw_power_losses), so the draws above stay as they were
ALL_KINDS = (*KINDS, POWER_LOSS)
LEADER = -1  # in Fault.nodes: the partition leader when the fault begins
# in Fault.nodes: the first and second follower of that partition when the fault begins, members
# of its ISR first (FaultInjector._follower)
FOLLOWER, OTHER_FOLLOWER = -2, -3


@dataclass(frozen=True)
class Fault:
    """One fault of the schedule (times in simulated ms from the start of the safety phase)."""

    at_ms: int
    kind: str
    duration_ms: int
    nodes: tuple[int, ...] = ()
    loss: float = 0.0
    duplicate: float = 0.0
    jitter_ms: int = 0
    reorder: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ALL_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {', '.join(ALL_KINDS)}")

    def describe(self) -> str:
        who = ",".join(_NODE_NAMES.get(node, str(node)) for node in self.nodes)
        rates = (f" loss={self.loss:.2f} dup={self.duplicate:.2f} jitter={self.jitter_ms}ms"
                 f"{' reorder' if self.reorder else ''}") if self.kind == "lossy" else ""
        return f"+{self.at_ms}ms {self.kind}({who}) for {self.duration_ms}ms{rates}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        return cls(**{**data, "nodes": tuple(data.get("nodes", ()))})


_NODE_NAMES = {LEADER: "leader", FOLLOWER: "follower", OTHER_FOLLOWER: "other-follower"}


def schedule_to_json(faults: list[Fault]) -> str:
    return json.dumps([fault.to_dict() for fault in faults])


def schedule_from_json(text: str) -> list[Fault]:
    return [Fault.from_dict(item) for item in json.loads(text)]


@dataclass(frozen=True)
class Profile:
    """One seed's swarm draw: the enabled kinds and the rates of the fault schedule."""

    kinds: tuple[str, ...]
    mean_interval_ms: int  # between fault starts
    max_duration_ms: int
    loss: float
    duplicate: float
    jitter_ms: int
    reorder: bool

    def describe(self) -> str:
        return (f"kinds={'+'.join(self.kinds)} every~{self.mean_interval_ms}ms up to {self.max_duration_ms}ms "
                f"loss={self.loss:.2f} dup={self.duplicate:.2f} jitter={self.jitter_ms}ms reorder={self.reorder}")


DEFAULT_PROFILE = Profile(KINDS, 3_000, 8_000, 0.05, 0.05, 20, True)


def draw_profile(rng: random.Random) -> Profile:
    """Each kind enabled with probability 1/2 (at least one), and rates drawn per seed."""
    kinds = tuple(kind for kind in KINDS if rng.random() < 0.5) or (rng.choice(KINDS),)
    return Profile(kinds, rng.choice((1_000, 2_000, 4_000, 8_000)), rng.choice((2_000, 5_000, 10_000)),
                   rng.choice((0.0, 0.01, 0.05, 0.2)), rng.choice((0.0, 0.02, 0.1)), rng.choice((0, 5, 50)),
                   rng.random() < 0.5)


def draw_schedule(rng: random.Random, profile: Profile, nodes: int, duration_ms: int) -> list[Fault]:
    """The profile's independent faults, then (for 3/4 of the mixes that pause or isolate nodes)
    the failover-while-lagging shape.  The shape is drawn last so that adding it left every
    other draw of a seed as it was."""
    faults = draw_independent_faults(rng, profile, nodes, duration_ms)
    if {"isolate", "pause"} & set(profile.kinds) and nodes >= 3 and rng.random() < 0.75:
        faults += draw_failover_while_lagging(rng, nodes, duration_ms)
    # Then, for 3/4 of the mixes that neither crash, pause nor isolate nodes (their own crashes, or
    # the shape above, upset its timing), the leader-without-the-follower's-epoch shape -- again
    # last, so every earlier draw of a seed stays as it was.
    if not {"crash", "isolate", "pause"} & set(profile.kinds) and nodes >= 3 and rng.random() < 0.75:
        faults += draw_leader_without_the_followers_epoch(rng, duration_ms)
    return faults


def draw_independent_faults(rng: random.Random, profile: Profile, nodes: int, duration_ms: int) -> list[Fault]:
    """Faults of the profile's kinds, with exponential gaps of mean ``profile.mean_interval_ms``
    within ``duration_ms``."""
    faults: list[Fault] = []
    at = 0
    while True:
        at += max(1, int(rng.expovariate(1 / profile.mean_interval_ms)))
        if at >= duration_ms:
            return faults
        kind = rng.choice(profile.kinds)
        duration = rng.randint(profile.max_duration_ms // 10, profile.max_duration_ms)
        faults.append(_draw_fault(rng, profile, kind, at, duration, nodes))


# replica.lag.time.max.ms and broker.session.timeout.ms of the simulator's nodes (chaos/sim/run.py):
# how long a follower must be away to leave the ISR, and a leader to be fenced and replaced.
REPLICA_LAG_TIME_MAX_MS = 3_000
BROKER_SESSION_TIMEOUT_MS = 3_000
CATCH_UP_MS = 4_000  # for the resumed follower to catch up from the new leader and rejoin the ISR


def draw_failover_while_lagging(rng: random.Random, nodes: int, duration_ms: int) -> list[Fault]:
    """The *failover while lagging* shape, repeated through the safety phase (KAFKA-7128):

    1. a node (a follower, mostly) is paused long enough to be fenced and leave the ISR;
    2. shortly (0-400 ms) before it resumes, the partition leader is isolated, long enough to be
       fenced and replaced; for 100-500 ms before that, half the messages to and from it are
       lost; and from then on the paused node's links delay messages by up to 10-100 ms.

    The new leader's high watermark lags its log end when the old leader's answer that would
    have carried it forward was lost.  The resumed follower catches up from it a batch per
    fetch (``replica.fetch.max.bytes=1`` in mutant runs) and so passes through the offsets from
    that high watermark up to the new epoch's start, where it holds every record the new leader
    knows committed and yet lacks records the old leader acknowledged -- and the old leader,
    isolated, still presumes it leads with the higher high watermark.  KIP-320's rule
    (``expand_after_epoch_start``: join the ISR only past the start of the leader's epoch) keeps
    it out of the ISR there; the delays give the ISR change a chance to be decided before the
    follower's next fetch answer arrives.  A pause rather than an isolation: a paused node's
    requests are held, not lost, so it fetches again as soon as it resumes instead of waiting
    out the request timeout (30 s) of a fetch lost in the partition.  Independent faults
    almost never line these events up within a few hundred milliseconds.

    A shape is drawn only if the new leader is elected and followed well within the phase
    (``CATCH_UP_MS`` to spare), so runs of ten simulated seconds or less draw none."""
    faults: list[Fault] = []
    at = 1 + rng.randrange(2_000)
    while at < duration_ms:
        follower = rng.randrange(nodes)
        away = rng.randint(REPLICA_LAG_TIME_MAX_MS + 500, REPLICA_LAG_TIME_MAX_MS + 2_000)
        ahead = rng.randint(0, 400)
        leader_away = rng.randint(BROKER_SESSION_TIMEOUT_MS + 1_000, BROKER_SESSION_TIMEOUT_MS + 3_000)
        jitter = rng.choice((10, 30, 100))
        lossy_before = rng.randint(100, 500)
        isolated = at + away - ahead
        if isolated + BROKER_SESSION_TIMEOUT_MS + CATCH_UP_MS >= duration_ms:
            return faults  # the new leader would not be elected and followed within the phase
        faults += [Fault(at, "pause", away, (follower,)),
                   Fault(isolated - lossy_before, "lossy", lossy_before, (LEADER,), 0.5, 0.0, 0, False),
                   Fault(isolated, "isolate", leader_away, (LEADER,)),
                   Fault(isolated, "lossy", leader_away, (follower,), 0.0, 0.0, jitter, False)]
        at = isolated + leader_away + rng.randint(0, 2_000)
    return faults


POWER_LOSS_SEEDS = 1 / 3  # the part of the seeds that see a power loss
BOOT_LIMIT_MS = 60_000  # a node back from a power loss boots once fenced, or after this (FaultInjector)


def draw_power_losses(rng: random.Random, nodes: int, duration_ms: int) -> list[Fault]:
    """A third of the seeds see one power loss (:meth:`SimCluster.power_loss`): three quarters of
    them in the *lost tail, then failover* shape (:func:`draw_lost_tail_failover`) when it fits;
    the others (and those where it does not) at a random time, of the partition leader or a
    follower, for 0.1-5 s.

    One, and then no process crash either (the caller drops the seed's ``crash`` faults), because
    that is the bound under which Kafka promises anything: KIP-966 keeps an acknowledged record
    while one member of the ISR or ELR shut down cleanly, and a crashed broker registers again
    with no clean-shutdown epoch, as unclean as a power loss to the controller (``spec/replication.py``
    checks ``kip-966`` with ``lossy_crashes=1``, its process crashes keeping their place).  A power
    loss with a crash of the other ISR member was seen to lose acknowledged records through the
    last-known-ELR election -- outside the promise, not a bug.  The caller draws ``rng`` from the
    seed apart from the other fault draws, so a seed without a power loss runs exactly as before
    power losses were modelled."""
    if rng.random() >= POWER_LOSS_SEEDS:
        return []
    if nodes >= 3 and rng.random() < 0.75:
        shape = draw_lost_tail_failover(rng, duration_ms)
        if shape:
            return shape
    target = rng.choice((LEADER, FOLLOWER, OTHER_FOLLOWER)) if nodes >= 3 else rng.randrange(nodes)
    return [Fault(rng.randrange(max(1, duration_ms - 1_000)), POWER_LOSS, rng.randint(100, 5_000), (target,))]


def draw_lost_tail_failover(rng: random.Random, duration_ms: int) -> list[Fault]:
    """The *lost tail, then failover* shape (KIP-966's unclean shutdown, three nodes):

    1. messages from the other follower to the leader are lost (one-way) until the leader is
       back, so that follower leaves the ISR (``replica.lag.time.max.ms``) and the ISR is
       {leader, follower}: every acknowledged record is on both, and the quorum (the follower
       and the other one) stays whole through what follows;
    2. the follower loses power and the unflushed tail of its log.  Its session expires and the
       controller fences it: it leaves the ISR for the ELR (the ISR is now below
       ``min.insync.replicas``).  It boots again (:meth:`FaultInjector._boot_once_fenced`) and
       registers with no clean-shutdown epoch;
    3. 1-2.5 s after it could have registered, the leader is isolated, for longer than the
       session timeout, so the controller must elect from the ISR and ELR.  Isolated, not
       crashed: a crashed broker registers again with no clean-shutdown epoch too, and KIP-966
       promises nothing once every member of the ISR shut down uncleanly.

    With ``unclean_shutdown_leaves_isr`` the follower left the ELR when it registered and cannot
    be elected: the partition waits for the leader.  Without it the follower, still in the ELR, is
    elected, and the records it lost are gone (LeaderCompleteness).  Drawn only if it ends with
    ``CATCH_UP_MS`` of the phase left."""
    at = 1 + rng.randrange(2_000)
    power_at = at + REPLICA_LAG_TIME_MAX_MS + rng.randint(1_000, 2_000)
    dark = rng.randint(100, 1_500)
    leader_at = power_at + BROKER_SESSION_TIMEOUT_MS + rng.randint(1_000, 2_500)
    leader_away = rng.randint(BROKER_SESSION_TIMEOUT_MS + 2_000, BROKER_SESSION_TIMEOUT_MS + 4_000)
    if leader_at + leader_away + CATCH_UP_MS >= duration_ms:
        return []
    return [Fault(at, "one-way", leader_at + leader_away - at, (OTHER_FOLLOWER, LEADER)),
            Fault(power_at, POWER_LOSS, dark, (FOLLOWER,)),
            Fault(leader_at, "isolate", leader_away, (LEADER,))]


LEADER_CRASH_STEP_MS = 250  # between the crash attempts of the second failover


def draw_leader_without_the_followers_epoch(rng: random.Random, duration_ms: int) -> list[Fault]:
    """The *leader without the follower's epoch* shape (KIP-279), three nodes: a follower ``B``
    leads an epoch and writes in it, and then a replica ``C`` that never fetched from ``B``
    leads the next one, holding more of the epoch before than ``B`` did.

    1. a follower (either one: whichever the controller will elect next) is paused for 0.8-2 s
       and the partition leader ``A`` crashes just before it resumes (0-300 ms), so ``B`` holds
       less of ``A``'s epoch than the other follower ``C`` when it takes over;
    2. ``A`` stays down for the whole second step (it must not rejoin the ISR first);
    3. from 2.5 s after ``A``'s crash, for 2-7 s, the partition leader is crashed every 250 ms:
       while ``A`` still leads (down) an attempt does nothing, the first one after the failover
       crashes ``B`` a moment after it took over and wrote, the next ones find ``B`` down;
       ``B`` stays down 6-9 s, so once ``A`` is back the quorum fences ``B`` and elects ``C``
       (``B`` could not shrink the ISR);
    4. meanwhile the links between the two followers lose 30-50 % of their messages, so ``C``'s
       first Fetch from ``B`` is often lost, and a lost Fetch is retried only after the request
       timeout (30 s) -- else ``C`` fetches from ``B`` and truncates to ``B``'s log at once.

    ``B`` restarts as ``C``'s follower holding ``B``'s epoch from an offset below ``C``'s end of
    the epoch before: ``C``'s diverging-epoch answer names that end, and KIP-279 truncates ``B``
    to its own end of it, KIP-101 only to ``C``'s (the probe ``truncation-kip279-differs-from-
    kip101``; without ``match_epoch_lineage`` the follower then livelocks).  The durations make
    the crashes of ``C`` after its election rare, not impossible; the swarm covers the rest."""
    at = 1 + rng.randrange(2_000)
    lagging = rng.choice((FOLLOWER, OTHER_FOLLOWER))
    pause = rng.randint(800, 2_000)
    crashed = at + pause - rng.randint(0, 300)
    attempts_from, span = crashed + 2_500, rng.randint(2_000, 7_000)
    if attempts_from + span >= duration_ms:
        return []
    faults = [Fault(at, "pause", pause, (lagging,)),
              Fault(crashed, "crash", attempts_from + span - crashed + rng.randint(0, 1_500), (LEADER,)),
              Fault(crashed + 500, "lossy", span + 2_000, (FOLLOWER, OTHER_FOLLOWER), rng.choice((0.3, 0.5)),
                    0.0, 0, False)]
    down = rng.randint(6_000, 9_000)
    faults += [Fault(attempt, "crash", down, (LEADER,))
               for attempt in range(attempts_from, attempts_from + span, LEADER_CRASH_STEP_MS)]
    return faults


def _draw_fault(rng: random.Random, profile: Profile, kind: str, at: int, duration: int, nodes: int) -> Fault:
    everyone = list(range(nodes))
    one = LEADER if rng.random() < 0.5 else rng.randrange(nodes)
    if kind in ("crash", "pause", "isolate"):
        return Fault(at, kind, duration, (one,))
    if kind == "split":
        minority = tuple(sorted(rng.sample(everyone, max(1, (nodes - 1) // 2))))
        return Fault(at, kind, duration, minority)
    if kind == "bridge":
        shuffled = rng.sample(everyone, nodes)
        return Fault(at, kind, duration, (shuffled[0], *sorted(shuffled[1:1 + (nodes - 1) // 2])))
    if kind == "one-way":
        source, destination = rng.sample(everyone, 2) if nodes > 1 else (0, 0)
        return Fault(at, kind, duration, (source, destination))
    return Fault(at, kind, duration, (), profile.loss or 0.01, profile.duplicate, profile.jitter_ms, profile.reorder)


# -- injection -----------------------------------------------------------------------------------


@dataclass
class _Active:
    fault: Fault
    cuts: set[Link] = field(default_factory=set)
    target: int | None = None  # the node crashed or paused by this fault


class FaultInjector:
    """Schedules ``faults`` on ``cluster`` from ``start_ms``; ``resolve_leader`` names ``LEADER``,
    ``resolve_isr`` the ISR that ``FOLLOWER`` and ``OTHER_FOLLOWER`` are picked from."""

    def __init__(self, cluster: SimCluster, faults: list[Fault], start_ms: int,
                 resolve_leader: Callable[[], int] | None = None,
                 resolve_isr: Callable[[], list[int]] | None = None,
                 fenced: Callable[[int], bool] | None = None) -> None:
        self.cluster = cluster
        self.faults = faults
        self.resolve_leader: Callable[[], int] = resolve_leader or (lambda: 0)
        self.resolve_isr: Callable[[], list[int]] = resolve_isr or (lambda: [])
        self.fenced: Callable[[int], bool] = fenced or (lambda node: True)
        self.active: list[_Active] = []
        self.log: list[str] = []
        self.counts: dict[str, int] = {}
        self.stopped = False  # after heal_all, scheduled faults no longer begin
        for fault in faults:
            cluster.at(start_ms + fault.at_ms, f"fault {fault.describe()}", self._beginning(fault))

    def _beginning(self, fault: Fault) -> Callable[[], None]:
        return lambda: self._begin(fault)

    def _resolve(self, node: int) -> int:
        if node in (FOLLOWER, OTHER_FOLLOWER):
            return self._follower(LEADER - node - 1)
        return self.resolve_leader() if node == LEADER else node

    def _follower(self, rank: int) -> int:
        """The ``rank``-th follower when the fault begins: the ISR's members other than the leader
        first (by id), then the other nodes -- so that ``FOLLOWER`` is in the ISR while it has one."""
        leader = self.resolve_leader()
        in_sync = sorted(node for node in self.resolve_isr() if node != leader)
        order = in_sync + [node for node in range(self.cluster.count) if node != leader and node not in in_sync]
        return order[rank] if rank < len(order) else (leader + 1 + rank) % self.cluster.count

    def _begin(self, fault: Fault) -> None:
        if self.stopped:
            return
        cluster = self.cluster
        active = _Active(fault)
        nodes = [self._resolve(node) for node in fault.nodes]
        others = [n for n in range(cluster.count) if n not in nodes]
        if fault.kind == "crash" and cluster.is_up(nodes[0]):
            cluster.crash(nodes[0])
            active.target = nodes[0]
        elif fault.kind == POWER_LOSS and cluster.is_up(nodes[0]):
            report = cluster.power_loss(nodes[0])
            active.target = nodes[0]
            self.log.append(f"t={cluster.now_ms} power loss of node {nodes[0]}: {report.describe()}")
        elif fault.kind == "pause" and cluster.is_up(nodes[0]) and nodes[0] not in cluster.paused:
            cluster.pause(nodes[0])
            active.target = nodes[0]
        elif fault.kind in ("isolate", "split"):
            active.cuts = {(a, b) for a in nodes for b in others} | {(b, a) for a in nodes for b in others}
        elif fault.kind == "bridge":
            side, rest = nodes[1:], [n for n in others]
            active.cuts = {(a, b) for a in side for b in rest} | {(b, a) for a in side for b in rest}
        elif fault.kind == "one-way" and nodes[0] != nodes[1]:
            active.cuts = {(nodes[0], nodes[1])}
        self.counts[fault.kind] = self.counts.get(fault.kind, 0) + 1
        self.active.append(active)
        self.log.append(f"t={cluster.now_ms} begin {fault.describe()} on {nodes}")
        self._apply_network()
        cluster.at(cluster.now_ms + fault.duration_ms, f"heal {fault.describe()}", lambda: self._end(active))

    def _end(self, active: _Active) -> None:
        if active not in self.active:
            return
        self.active.remove(active)
        cluster = self.cluster
        if active.fault.kind == "crash" and active.target is not None and not cluster.is_up(active.target):
            cluster.start(active.target)
        elif active.fault.kind == POWER_LOSS and active.target is not None:
            self._boot_once_fenced(active.target, cluster.now_ms + BOOT_LIMIT_MS)
        elif active.fault.kind == "pause" and active.target is not None:
            cluster.resume(active.target)
        self.log.append(f"t={cluster.now_ms} heal {active.fault.describe()}")
        self._apply_network()

    def _boot_once_fenced(self, node: int, limit_ms: int) -> None:
        """Start a node back from a power loss once the controller has fenced it (or ``limit_ms``).

        A machine's reboot outlasts the broker session timeout, and Kafka refuses a new incarnation's
        registration while the old one's session lasts (DUPLICATE_BROKER_REGISTRATION).  A process
        up again before that only waits -- but its old registration, unfenced, in the ISR, may still
        be elected (a controller failover even renews its session), and then records it lost are
        gone with no second unclean shutdown needed: outside what KIP-966 promises, as the spec's
        Restart (a former leader comes back only after the controller handled its failure)."""
        cluster = self.cluster
        if cluster.is_up(node):
            return
        if self.fenced(node) or cluster.now_ms >= limit_ms:
            cluster.start(node)
            return
        cluster.at(cluster.now_ms + cluster.tick_ms * 10, f"boot node {node} once fenced",
                   lambda: self._boot_once_fenced(node, limit_ms))

    def _apply_network(self) -> None:
        network = self.cluster.network
        network.cut = set().union(*(active.cuts for active in self.active)) if self.active else set()
        network.faults = {}
        for active in self.active:
            fault = active.fault
            if fault.kind != "lossy":
                continue
            for link in self._lossy_links([self._resolve(node) for node in fault.nodes]):
                old = network.faults.get(link, LinkFaults())
                network.faults[link] = LinkFaults(max(old.loss, fault.loss), max(old.duplicate, fault.duplicate),
                                                  max(old.jitter_ms, fault.jitter_ms), old.reorder or fault.reorder)

    def _lossy_links(self, chosen: list[int]) -> list[Link]:
        """One node: its links to and from every other node; several: the links between them; none:
        every link between nodes."""
        everyone = range(self.cluster.count)
        if len(chosen) == 1:
            return [link for other in everyone if other != chosen[0] for link in ((chosen[0], other), (other, chosen[0]))]
        among = chosen or list(everyone)
        return [(a, b) for a in among for b in among if a != b]

    def heal_all(self) -> None:
        """End every active fault now (the liveness phase begins)."""
        self.stopped = True
        for active in list(self.active):
            self._end(active)
