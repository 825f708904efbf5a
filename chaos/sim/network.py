"""The simulated network: which messages arrive, when, and how many times.

Theory of operation
-------------------
Every message of the simulation -- a request from a node's outbox or a client, or its answer --
crosses one directed *link* ``(source, destination)``; endpoints are node ids (ints) or client
names (strings).  :meth:`Network.transmit` decides, with the simulation's one ``random.Random``,
what becomes of a message sent now: a list of arrival times (empty: it is lost; two: it is
duplicated).  Nothing here knows Kafka; the simulator (:mod:`chaos.sim.cluster`) turns arrivals
into deliveries and a lost message into the sender's request timeout, as a dead TCP peer would.

The faults it keeps, each one of the issue's nemeses:

* **partition**: a set of *cut* directed links.  A cut link loses every message (``iptables
  DROP``: no reset, the sender only times out).  A cut in one direction only is a one-way
  partition; the shapes (one node alone, majority/minority, a bridge) are sets of cuts, built by
  :mod:`chaos.sim.faults`.  Clients are never cut off: partitions are between nodes.
* **loss, duplication, delay** per link (:class:`LinkFaults`): each message is lost with
  probability ``loss``, sent twice with probability ``duplicate``, and arrives after
  ``base_delay_ms`` plus a uniform extra delay in ``[0, jitter_ms]``.
* **reordering**: messages on one link arrive in the order sent (a TCP connection) unless the
  link has ``reorder``; then each arrival time is drawn on its own, so later messages can
  overtake earlier ones (as requests do across a reconnect).

Invariants: every arrival is strictly after the send (at least 1 ms), so a request never answers
itself at the same instant; without ``reorder`` a link's arrivals never decrease; the random
draws happen in a fixed order for a given call sequence, so a run replays from its seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

Endpoint = int | str  # a node id or a client's name
Link = tuple[Endpoint, Endpoint]

BASE_DELAY_MS = 1  # one hop on a quiet network


@dataclass(frozen=True)
class LinkFaults:
    """The fault rates of one link (all zero: a quiet link)."""

    loss: float = 0.0
    duplicate: float = 0.0
    jitter_ms: int = 0
    reorder: bool = False

    @property
    def quiet(self) -> bool:
        return self == QUIET


QUIET = LinkFaults()


@dataclass
class Network:
    """Links, their faults and the cuts between nodes (see the module docstring)."""

    rng: random.Random
    base_delay_ms: int = BASE_DELAY_MS
    cut: set[Link] = field(default_factory=set)
    faults: dict[Link, LinkFaults] = field(default_factory=dict)
    _last_arrival: dict[Link, int] = field(default_factory=dict)

    def faults_of(self, source: Endpoint, destination: Endpoint) -> LinkFaults:
        return self.faults.get((source, destination), QUIET)

    def transmit(self, source: Endpoint, destination: Endpoint, now_ms: int) -> list[int]:
        """The arrival times of a message sent now on ``source -> destination`` (empty: lost)."""
        link = (source, destination)
        if link in self.cut:
            return []
        faults = self.faults_of(source, destination)
        if faults.quiet:  # the common case draws nothing, so quiet runs stay cheap
            return [self._in_order(link, now_ms + self.base_delay_ms)]
        if faults.loss and self.rng.random() < faults.loss:
            return []
        copies = 2 if faults.duplicate and self.rng.random() < faults.duplicate else 1
        arrivals = []
        for _ in range(copies):
            at = now_ms + self.base_delay_ms + (self.rng.randint(0, faults.jitter_ms) if faults.jitter_ms else 0)
            arrivals.append(at if faults.reorder else self._in_order(link, at))
        return arrivals

    def _in_order(self, link: Link, at: int) -> int:
        at = max(at, self._last_arrival.get(link, 0))
        self._last_arrival[link] = at
        return at

    def heal(self) -> None:
        """No cuts and quiet links (the liveness phase)."""
        self.cut.clear()
        self.faults.clear()
