"""The client's view of the cluster: brokers, partitions, leaders and leader epochs (sans-IO).

Theory of operation
-------------------
A Kafka client never asks "who leads partition 3?" per record.  It keeps a *metadata cache*
(Java's ``Metadata``/``Cluster``) filled from Metadata responses and routes every partition's
requests to the leader the cache names.  This module is that cache plus the rules for keeping it
fresh; it owns no socket and reads no clock (``now_ms`` comes in as an argument), so the producer
core, tests and a simulator drive it the same way.

Addresses.  Before the first answer the client only knows ``bootstrap.servers``; each gets a
*negative* node id (-1, -2, ..., as Java's ``ClientUtils`` does) so that one id space names every
destination.  After an answer the brokers it lists are the only addresses used; the bootstrap
ones are kept as a fallback should every known broker disappear.

Rules it keeps:

1. **Leader epochs only go forward** (KIP-320).  A partition's entry is replaced by a Metadata
   answer only if the answer's ``LeaderEpoch`` is not older than the cached one: a stale broker
   (one that has not yet heard of an election) cannot move a leader back.
2. **Leader hints** (KIP-951, Produce v10+/Fetch v12+).  A NOT_LEADER_OR_FOLLOWER answer may carry
   ``CurrentLeader`` (id, epoch) and the new leader's endpoint; a hint with a *newer* epoch updates
   the partition at once, so the retry goes to the right broker without a Metadata round trip.
3. **When to ask again.**  The cache is marked stale (:meth:`ClusterMetadata.request_update`) on
   NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION, a broken connection,
   a topic it has never seen, and every ``metadata.max.age.ms`` (5 minutes).  Updates are at least
   ``retry.backoff.ms`` (100 ms) apart so a flapping cluster is not hammered.
4. **Topic errors are remembered**, so a producer can fail a record for a topic that does not
   exist with Kafka's own error (UNKNOWN_TOPIC_OR_PARTITION, INVALID_TOPIC_EXCEPTION, ...).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..errors import ErrorCode, Errors, lookup
from ..protocol.apis import API_BY_KEY
from ..protocol.schema import Data

METADATA_KEY = 3
METADATA_MAX_AGE_MS = 300_000  # metadata.max.age.ms
RETRY_BACKOFF_MS = 100  # retry.backoff.ms
NO_LEADER = -1
NO_EPOCH = -1
ZERO_UUID = uuid.UUID(int=0)


@dataclass(frozen=True)
class BrokerAddress:
    node_id: int
    host: str
    port: int
    rack: str | None = None


@dataclass(frozen=True)
class TopicPartition:
    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}-{self.partition}"


@dataclass(frozen=True)
class PartitionInfo:
    """One partition as the last accepted Metadata answer (or leader hint) described it."""

    leader_id: int  # NO_LEADER (-1) when the partition has none right now
    leader_epoch: int  # NO_EPOCH (-1) when the broker does not say (Metadata < v7)
    replicas: tuple[int, ...] = ()
    isr: tuple[int, ...] = ()


@dataclass
class TopicInfo:
    name: str
    topic_id: uuid.UUID = ZERO_UUID
    partitions: dict[int, PartitionInfo] = field(default_factory=dict)


def parse_bootstrap(servers: str) -> list[BrokerAddress]:
    """``host1:port1,host2:port2`` as bootstrap addresses with node ids -1, -2, ...

    Raises ``ValueError`` for an entry without a port or with a port that is not a number.
    """
    addresses = []
    for index, entry in enumerate(s.strip() for s in servers.split(",") if s.strip()):
        host, separator, port = entry.rpartition(":")
        if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"invalid bootstrap server {entry!r}: expected HOST:PORT")
        addresses.append(BrokerAddress(-(index + 1), host.strip("[]"), int(port)))
    if not addresses:
        raise ValueError("bootstrap.servers is empty")
    return addresses


class ClusterMetadata:
    """The metadata cache (see the module's theory of operation)."""

    def __init__(self, bootstrap: Sequence[BrokerAddress], retry_backoff_ms: int = RETRY_BACKOFF_MS,
                 metadata_max_age_ms: int = METADATA_MAX_AGE_MS) -> None:
        self.bootstrap = {address.node_id: address for address in bootstrap}
        self.brokers: dict[int, BrokerAddress] = {}
        self.topics: dict[str, TopicInfo] = {}
        self.topic_errors: dict[str, ErrorCode] = {}  # the last answer's error per topic
        self.cluster_id: str | None = None
        self.retry_backoff_ms = retry_backoff_ms
        self.metadata_max_age_ms = metadata_max_age_ms
        self.wanted_topics: set[str] = set()  # the topics the client asks about
        self.last_update_ms = -1  # when the last answer was accepted; -1 = never
        self.updates = 0  # how many answers were accepted (a generation number for "newer than")
        self.last_attempt_ms = -1
        self._update_requested = True
        self.update_in_flight = False
        self._requested_topics: frozenset[str] = frozenset()

    # -- addresses ---------------------------------------------------------------------------------

    def address(self, node_id: int) -> tuple[str, int] | None:
        """Where ``node_id`` listens: a broker from the last answer, or a bootstrap server."""
        broker = self.brokers.get(node_id) or self.bootstrap.get(node_id)
        return None if broker is None else (broker.host, broker.port)

    def any_node(self, attempt: int = 0) -> int:
        """A node to send cluster-wide requests (Metadata, InitProducerId) to: a known broker, or
        a bootstrap server, rotating with ``attempt`` so a dead one is not chosen forever."""
        candidates = sorted(self.brokers) or sorted(self.bootstrap, reverse=True)
        return candidates[attempt % len(candidates)]

    # -- lookups -------------------------------------------------------------------------------------

    def partition_count(self, topic: str) -> int | None:
        info = self.topics.get(topic)
        return len(info.partitions) if info is not None and info.partitions else None

    def available_partitions(self, topic: str) -> list[int]:
        info = self.topics.get(topic)
        if info is None:
            return []
        return sorted(p for p, part in info.partitions.items() if part.leader_id != NO_LEADER)

    def leader(self, tp: TopicPartition) -> int | None:
        """The leader's node id, or None when unknown or leaderless (the caller should wait)."""
        info = self.topics.get(tp.topic)
        partition = None if info is None else info.partitions.get(tp.partition)
        if partition is None or partition.leader_id == NO_LEADER or partition.leader_id not in self.brokers:
            return None
        return partition.leader_id

    def topic_id(self, topic: str) -> uuid.UUID:
        info = self.topics.get(topic)
        return ZERO_UUID if info is None else info.topic_id

    # -- staleness -----------------------------------------------------------------------------------

    def add_topics(self, topics: Iterable[str]) -> None:
        new = set(topics) - self.wanted_topics
        if new:
            self.wanted_topics |= new
            self._update_requested = True

    def request_update(self) -> None:
        """Rule 3: ask the cluster again at the next opportunity."""
        self._update_requested = True

    def update_due_ms(self, now_ms: int) -> int | None:
        """When a Metadata request should go out: ``now_ms`` or later, or None if in flight."""
        if self.update_in_flight:
            return None
        if self._update_requested:
            return max(now_ms, self.last_attempt_ms + self.retry_backoff_ms) if self.last_attempt_ms >= 0 else now_ms
        return self.last_update_ms + self.metadata_max_age_ms

    def metadata_request(self, now_ms: int) -> Data:
        """The Metadata request for the wanted topics; marks an update in flight."""
        self.update_in_flight = True
        self.last_attempt_ms = now_ms
        self._requested_topics = frozenset(self.wanted_topics)
        request = API_BY_KEY[METADATA_KEY].request
        topic = request.struct("MetadataRequestTopic")
        return request.make(
            topics=[topic.make(name=name, topic_id=ZERO_UUID) for name in sorted(self.wanted_topics)],
            allow_auto_topic_creation=True,  # as Java's producer: the broker's auto.create.topics.enable decides
        )

    def update_failed(self, now_ms: int) -> None:
        self.update_in_flight = False
        self._update_requested = True

    # -- applying answers ----------------------------------------------------------------------------

    def update(self, body: Data, now_ms: int) -> None:
        """Accept a Metadata answer (rules 1 and 4)."""
        self.update_in_flight = False
        self._update_requested = bool(self.wanted_topics - self._requested_topics)  # topics added meanwhile
        self.last_update_ms = now_ms
        self.updates += 1
        if body.brokers:
            self.brokers = {b.node_id: BrokerAddress(b.node_id, b.host, b.port, b.rack) for b in body.brokers}
        self.cluster_id = body.get("cluster_id", self.cluster_id)
        for topic in body.topics:
            error = lookup(topic.error_code)
            self.topic_errors[topic.name] = error
            if error is not Errors.NONE:
                if error.retriable:  # LEADER_NOT_AVAILABLE while a new topic is created, ...
                    self._update_requested = True
                continue
            self._update_topic(topic)

    def _update_topic(self, topic: Data) -> None:
        info = self.topics.get(topic.name)
        topic_id = topic.get("topic_id") or ZERO_UUID
        if info is None or (topic_id != ZERO_UUID and info.topic_id != topic_id):
            info = self.topics[topic.name] = TopicInfo(topic.name, topic_id)  # new, or deleted and recreated
        for partition in topic.partitions:
            new = PartitionInfo(partition.leader_id, partition.get("leader_epoch", NO_EPOCH),
                                tuple(partition.replica_nodes), tuple(partition.isr_nodes))
            old = info.partitions.get(partition.partition_index)
            if old is not None and new.leader_epoch != NO_EPOCH and new.leader_epoch < old.leader_epoch:
                self._update_requested = True  # rule 1: a stale broker; keep ours, ask again
                continue
            info.partitions[partition.partition_index] = new
            if partition.leader_id == NO_LEADER:
                self._update_requested = True

    def apply_leader_hint(self, tp: TopicPartition, leader_id: int, leader_epoch: int,
                          endpoints: Iterable[Data] = ()) -> bool:
        """Rule 2 (KIP-951): move ``tp`` to a newer leader named in an error answer.

        Returns True when the hint was newer than the cache and was applied."""
        for endpoint in endpoints:
            if endpoint.node_id not in self.brokers:
                self.brokers[endpoint.node_id] = BrokerAddress(endpoint.node_id, endpoint.host,
                                                               endpoint.port, endpoint.get("rack"))
        info = self.topics.get(tp.topic)
        old = None if info is None else info.partitions.get(tp.partition)
        if info is None or old is None or leader_id < 0 or leader_epoch <= old.leader_epoch:
            return False
        if leader_id not in self.brokers:
            return False
        info.partitions[tp.partition] = PartitionInfo(leader_id, leader_epoch, old.replicas, old.isr)
        return True
