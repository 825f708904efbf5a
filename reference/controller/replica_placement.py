"""Where a new partition's replicas go: Kafka's ``StripedReplicaPlacer`` (KIP-631).

Theory of operation
-------------------
The controller places the replicas of new partitions (CreateTopics without explicit assignments,
CreatePartitions) on the *usable* brokers: every registered broker that is not in controlled
shutdown, fenced or not.  Two constraints are hard, and their failures are Kafka's
``InvalidReplicationFactorException`` (INVALID_REPLICATION_FACTOR):

* no broker holds two replicas of one partition, so the replication factor is at most the number
  of usable brokers ("The target replication factor of N cannot be reached because only M
  broker(s) are registered or some brokers have all their log directories cordoned.");
* the first replica (the preferred leader) is unfenced ("All brokers are currently fenced, or have
  all their log directories cordoned.").

(Kafka 4.3's messages mention cordoned log directories, KIP-1066; refka's placer has no cordoned
directories to skip, but answers with the same words.)

Three goals are soft, in priority order:

1. spread each partition's replicas over as many racks as possible (``broker.rack``);
2. spread replicas, and preferred leaders, evenly over the brokers;
3. prefer unfenced brokers to fenced ones.

The algorithm "stripes": racks sit in a sorted list (racks without a rack name first, ``None``),
each with a sorted list of unfenced and of fenced brokers.  Each partition starts at the next rack
(a rotating offset, random at first) and takes one broker from each rack in turn, round robin
inside the rack (unfenced before fenced), skipping racks that are exhausted in this round.  Its
leader comes from the first rack, from that rack's *unfenced* brokers.  After as many partitions
as there are unfenced brokers the rack and broker orders are shuffled, so that the same replica
sets do not repeat.  With racks A, B, C of three brokers each and all offsets 0::

    partition 0: A0 B0 C0
    partition 1: B1 C1 A1
    partition 2: C2 A2 B2

The randomness comes from a :class:`random.Random` the caller seeds (a simulator replays it); the
placer only calls ``randrange(n)`` and ``shuffle(list)``, in the order Kafka's placer calls
``nextInt(n)`` and ``Collections.shuffle``, so a ``java.util.Random`` work-alike reproduces Kafka's
placements exactly (``tests/reference/controller/test_replica_placement.py`` checks that against
Kafka's own class).  Racks draw their numbers in name order, which is Kafka's ``HashMap`` order for
the short rack names of those tests.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import Errors, KafkaError


@dataclass(frozen=True)
class UsableBroker:
    """A broker the placer may use: registered and not in controlled shutdown."""

    broker_id: int
    rack: str | None
    fenced: bool


def invalid_replication_factor(reason: str) -> KafkaError:
    return KafkaError(Errors.INVALID_REPLICATION_FACTOR, reason)


@dataclass
class _BrokerList:
    """Brokers handed out round robin from a rotating offset, once each per iteration epoch."""

    brokers: list[int] = field(default_factory=list)
    index: int = 0  # how many were handed out in this epoch
    offset: int = 0
    epoch: int = 0

    def initialize(self, rng: random.Random) -> None:
        if self.brokers:
            self.brokers.sort()
            self.offset = rng.randrange(len(self.brokers))

    def next(self, epoch: int) -> int:
        """The next broker in this epoch, or -1 when every broker was handed out."""
        if not self.brokers:
            return -1
        if self.epoch != epoch:
            self.epoch, self.index = epoch, 0
            self.offset = (self.offset + 1) % len(self.brokers)
        if self.index >= len(self.brokers):
            return -1
        broker = self.brokers[(self.index + self.offset) % len(self.brokers)]
        self.index += 1
        return broker


@dataclass
class _Rack:
    unfenced: _BrokerList = field(default_factory=_BrokerList)
    fenced: _BrokerList = field(default_factory=_BrokerList)

    def next(self, epoch: int) -> int:
        broker = self.unfenced.next(epoch)
        return broker if broker >= 0 else self.fenced.next(epoch)


class _RackList:
    def __init__(self, rng: random.Random, brokers: Iterable[UsableBroker]) -> None:
        self.rng = rng
        self.racks: dict[str | None, _Rack] = {}
        self.total = self.unfenced = 0
        for broker in brokers:
            rack = self.racks.setdefault(broker.rack, _Rack())
            (rack.fenced if broker.fenced else rack.unfenced).brokers.append(broker.broker_id)
            self.total += 1
            self.unfenced += 0 if broker.fenced else 1
        # Kafka's OptionalStringComparator: the absent rack sorts first.
        self.rack_names: list[str | None] = sorted(self.racks, key=lambda name: (name is not None, name or ""))
        self.rack_order = list(self.rack_names)  # the order racks draw their random numbers in
        for name in self.rack_order:
            self.racks[name].fenced.initialize(rng)
            self.racks[name].unfenced.initialize(rng)
        self.epoch = 0
        self.offset = rng.randrange(len(self.rack_names)) if self.rack_names else 0

    def place(self, replication_factor: int) -> list[int]:
        if self.epoch == self.unfenced and self.unfenced > 1:
            self._shuffle()
            self.epoch = 0
        if self.offset == len(self.rack_names):
            self.offset = 0
        replicas: list[int] = []
        first_rack = self.offset
        while True:  # the leader: an unfenced broker, from the first rack that has one left
            leader = self.racks[self.rack_names[first_rack]].unfenced.next(self.epoch)
            if leader >= 0:
                replicas.append(leader)
                break
            first_rack = (first_rack + 1) % len(self.rack_names)
        rack_index = self.offset
        for _ in range(1, replication_factor):
            broker = -1
            while broker < 0:
                if rack_index == first_rack:
                    first_rack = -1  # its turn in this round was the leader's
                else:
                    broker = self.racks[self.rack_names[rack_index]].next(self.epoch)
                rack_index = (rack_index + 1) % len(self.rack_names)
            replicas.append(broker)
        self.epoch += 1
        self.offset += 1
        return replicas

    def _shuffle(self) -> None:
        self.rng.shuffle(self.rack_names)
        for name in self.rack_order:
            self.rng.shuffle(self.racks[name].fenced.brokers)
            self.rng.shuffle(self.racks[name].unfenced.brokers)


def place_replicas(brokers: Iterable[UsableBroker], partitions: int, replication_factor: int,
                   rng: random.Random) -> list[list[int]]:
    """Replica lists (preferred leader first) for ``partitions`` new partitions.

    Raises ``KafkaError(INVALID_REPLICATION_FACTOR)`` with Kafka's reason when the constraints
    cannot be met.
    """
    racks = _RackList(rng, brokers)
    if replication_factor <= 0:
        raise invalid_replication_factor(
            f"Invalid replication factor {replication_factor}: the replication factor must be positive.")
    if racks.unfenced == 0:
        raise invalid_replication_factor("All brokers are currently fenced, or have all their log directories cordoned.")
    if replication_factor > racks.total:
        raise invalid_replication_factor(
            f"The target replication factor of {replication_factor} cannot be reached because only "
            f"{racks.total} broker(s) are registered or some brokers have all their log directories cordoned.")
    return [racks.place(replication_factor) for _ in range(partitions)]
