"""Three real broker cores wired in-process: the test transport for replication.

Each :class:`~reference.broker.core.Broker` runs as in production (own data directory, topic
registry, replica manager) but nothing has a socket.  :meth:`Cluster.deliver` takes every request
the cores put in their outboxes and hands it to the destination: a Fetch or ListOffsets is encoded
into a request frame, given to the destination core's ``handle_frame``, and the response frame
(at once, or when its ``Pending`` completes) is decoded and given back through the request's
callbacks; an AlterPartition goes to :class:`FakeController`.  Time is a manual clock that moves
only in :meth:`Cluster.advance`.  The metadata a KRaft controller would publish is applied by
calling each replica's ``apply_partition_state``, as the node's metadata publisher does.

Faults: a broker in ``Cluster.isolated`` neither sends nor receives (its requests fail, requests to
it fail), like a network partition or a stopped process; ``FakeController.hold`` keeps
AlterPartition requests unanswered.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reference.broker.configs import BrokerConfig
from reference.broker.core import NO_RESPONSE, Broker, CloseConnection
from reference.broker.pending import Pending
from reference.client.outbox import OutboundRequest
from reference.errors import Errors, by_name
from reference.protocol.apis import API_BY_KEY, API_BY_NAME
from reference.protocol.frames import decode_response, encode_request
from reference.protocol.schema import Data

T0 = 1_700_000_000_000
CONTROLLER_ID = 3000  # a controller-only node, as in Kafka's combined-mode-free clusters
ALTER_PARTITION = API_BY_KEY[56]
PRODUCE = API_BY_NAME["Produce"]
PRODUCE_VERSION = 11


@dataclass
class PartitionRecord:
    """What the controller holds for one partition (Kafka's ``PartitionRegistration``)."""

    replicas: list[int]
    isr: list[int]
    leader: int
    leader_epoch: int = 0
    partition_epoch: int = 0


@dataclass
class FakeController:
    """Answers AlterPartition by Kafka's controller rules (``ReplicationControlManager``):
    unknown partition UNKNOWN_TOPIC_OR_PARTITION; a sender that is not the leader or an older leader
    epoch FENCED_LEADER_EPOCH; a partition epoch that is not the current one INVALID_UPDATE_VERSION;
    else the ISR is committed with the next partition epoch."""

    partitions: dict[tuple[str, int], PartitionRecord] = field(default_factory=dict)
    topic_ids: dict[uuid.UUID, str] = field(default_factory=dict)
    requests: list[Data] = field(default_factory=list)
    hold: bool = False  # keep requests unanswered (a slow or unreachable controller)
    held: list[OutboundRequest] = field(default_factory=list)
    on_commit: Callable[[str, int], None] | None = None  # publish the committed change

    def receive(self, request: OutboundRequest, now_ms: int) -> None:
        if self.hold:
            self.held.append(request)
            return
        request.complete(self.alter_partition(request.body), now_ms)

    def release(self, now_ms: int) -> None:
        self.hold = False
        held, self.held = self.held, []
        for request in held:
            request.complete(self.alter_partition(request.body), now_ms)

    def alter_partition(self, body: Data) -> Data:
        self.requests.append(body)
        response = ALTER_PARTITION.response
        topics = []
        for topic in body.topics:
            name = self.topic_ids.get(topic.topic_id)
            partitions = []
            for wanted in topic.partitions:
                partitions.append(self._alter(name, body.broker_id, wanted))
            topics.append(response.struct("TopicData").make(topic_id=topic.topic_id, partitions=partitions))
        return response.make(error_code=0, topics=topics)

    def _alter(self, name: str | None, broker_id: int, wanted: Data) -> Data:
        answer = ALTER_PARTITION.response.struct("PartitionData").make(partition_index=wanted.partition_index)
        record = self.partitions.get((name, wanted.partition_index)) if name is not None else None
        if name is None or record is None:
            answer.error_code = Errors.UNKNOWN_TOPIC_OR_PARTITION.code
        elif record.leader != broker_id or wanted.leader_epoch != record.leader_epoch:
            answer.error_code = Errors.FENCED_LEADER_EPOCH.code
        elif wanted.partition_epoch != record.partition_epoch:
            answer.error_code = by_name["INVALID_UPDATE_VERSION"].code
        else:
            record.isr = sorted(state.broker_id for state in wanted.new_isr_with_epochs) or sorted(wanted.new_isr)
            record.partition_epoch += 1
            answer.leader_id, answer.leader_epoch = record.leader, record.leader_epoch
            answer.isr, answer.partition_epoch = list(record.isr), record.partition_epoch
            if self.on_commit is not None:
                self.on_commit(name, wanted.partition_index)
        return answer


class ProduceCall:
    """A Produce request sent to one broker: ``done`` once answered, ``partition`` its result."""

    def __init__(self, reply: Any, version: int) -> None:
        self.version = version
        self.response: Data | None = None
        if isinstance(reply, Pending):
            reply.on_done(self._answered)
        else:
            self._answered(reply)

    def _answered(self, payload: Any) -> None:
        assert not isinstance(payload, CloseConnection), payload
        _, self.response = decode_response(PRODUCE, self.version, payload[4:])

    @property
    def done(self) -> bool:
        return self.response is not None

    @property
    def partition(self) -> Data:
        assert self.response is not None, "not answered yet"
        answer: Data = self.response.responses[0].partition_responses[0]
        return answer


class Cluster:
    """``count`` brokers (ids 1..count) and a fake controller, on one manual clock."""

    def __init__(self, root: Path, count: int = 3, configs: dict[str, str] | None = None) -> None:
        self.now_ms = T0
        self.controller = FakeController()
        self.controller.on_commit = self._on_commit
        self.brokers: dict[int, Broker] = {}
        self.isolated: set[int] = set()
        self.publish_alter_partition = True  # committed ISR changes reach the brokers' metadata too
        self._pending_publications: list[tuple[str, int]] = []
        self._correlation = 0
        self._root = root
        self._configs = configs or {}
        for broker_id in range(1, count + 1):
            self.start(broker_id)

    # -- brokers ---------------------------------------------------------------------------------

    def start(self, broker_id: int) -> Broker:
        """Start (or restart, over the same data directory) broker ``broker_id``."""
        config = BrokerConfig({
            "node.id": str(broker_id), "process.roles": "broker",
            "controller.quorum.voters": f"{CONTROLLER_ID}@localhost:9093", **self._configs,
        })
        broker = Broker(config, self._root / f"broker-{broker_id}", self.now_ms)
        broker.replicas.broker_epoch = 100 + broker_id
        broker.replicas.controller_id = lambda: CONTROLLER_ID
        broker.outbox.drain()
        broker.txn_outbox.drain()
        self.brokers[broker_id] = broker
        for (topic, partition), record in self.controller.partitions.items():
            topic_id = self._topic_id(topic)
            broker.topics.apply_topic(topic, topic_id, partition + 1, len(record.replicas), {})
        return broker

    def crash(self, broker_id: int) -> None:
        """kill -9: files closed without flush (the page cache survives), no clean shutdown."""
        broker = self.brokers.pop(broker_id)
        for log in broker.replicas.directory.logs.values():
            log.close_without_flush()

    def _topic_id(self, topic: str) -> uuid.UUID:
        return next(topic_id for topic_id, name in self.controller.topic_ids.items() if name == topic)

    # -- metadata --------------------------------------------------------------------------------

    def create_topic(self, name: str, replicas: list[int], leader: int | None = None,
                     configs: dict[str, str] | None = None) -> None:
        """One partition on ``replicas``, led by ``leader`` (default: the first) in epoch 0."""
        topic_id = uuid.uuid4()
        self.controller.topic_ids[topic_id] = name
        self.controller.partitions[(name, 0)] = PartitionRecord(list(replicas), list(replicas),
                                                                leader if leader is not None else replicas[0])
        for broker in self.brokers.values():
            broker.topics.apply_topic(name, topic_id, 1, len(replicas), configs or {})
        self.publish(name)

    def record(self, topic: str, partition: int = 0) -> PartitionRecord:
        return self.controller.partitions[(topic, partition)]

    def publish(self, topic: str, partition: int = 0, to: list[int] | None = None) -> None:
        """Every (or the given) live replica applies the controller's current partition state."""
        record = self.record(topic, partition)
        for broker_id in to if to is not None else record.replicas:
            broker = self.brokers.get(broker_id)
            if broker is not None:
                broker.replicas.apply_partition_state(topic, partition, list(record.replicas), list(record.isr),
                                                      record.leader, record.leader_epoch, record.partition_epoch,
                                                      self.now_ms)

    def elect(self, topic: str, leader: int, isr: list[int] | None = None, partition: int = 0) -> None:
        """The controller moves leadership (a new leader epoch) and publishes it."""
        record = self.record(topic, partition)
        record.leader = leader
        if isr is not None:
            record.isr = list(isr)
        record.leader_epoch += 1
        record.partition_epoch += 1
        self.publish(topic, partition)

    def _on_commit(self, topic: str, partition: int) -> None:
        if self.publish_alter_partition:
            self._pending_publications.append((topic, partition))

    # -- the transport -----------------------------------------------------------------------------

    def deliver(self) -> int:
        """Deliver every request waiting in an outbox (and what that causes); returns how many."""
        delivered = 0
        while True:
            batch = [(source, request) for source, broker in list(self.brokers.items())
                     for request in [*broker.outbox.drain(), *broker.txn_outbox.drain()]]
            if not batch:
                break
            for source, request in batch:
                delivered += 1
                self._deliver(source, request)
            self._publish_committed()
        return delivered

    def _publish_committed(self) -> None:
        publications, self._pending_publications = self._pending_publications, []
        for topic, partition in publications:
            self.publish(topic, partition)

    def _deliver(self, source: int, request: OutboundRequest) -> None:
        if source in self.isolated or request.destination in self.isolated:
            request.fail(ConnectionError(f"{source} -> {request.destination} is cut"), self.now_ms)
            return
        if request.destination == CONTROLLER_ID:
            self.controller.receive(request, self.now_ms)
            return
        destination = self.brokers.get(request.destination)
        if destination is None:
            request.fail(ConnectionError(f"broker {request.destination} is down"), self.now_ms)
            return
        api = API_BY_KEY[request.api_key]
        version = request.version if request.version is not None else destination.supported_versions[api.key][1]
        self._correlation += 1
        frame = encode_request(api, version, self._correlation, f"broker-{source}", request.body)
        reply = destination.handle_frame(frame[4:], self.now_ms)

        def answered(payload: Any) -> None:
            cut = source in self.isolated or request.destination in self.isolated  # cut while parked
            if isinstance(payload, CloseConnection) or source not in self.brokers or cut:
                request.fail(ConnectionError(str(payload)), self.now_ms)
                return
            _, body = decode_response(api, version, payload[4:])
            request.complete(body, self.now_ms)

        if isinstance(reply, Pending):
            reply.on_done(answered)
        elif reply is not NO_RESPONSE:
            answered(reply)

    def advance(self, delta_ms: int) -> None:
        """Let ``delta_ms`` pass: every broker polls (expiring long polls, checking ISRs)."""
        self.now_ms += delta_ms
        for broker in list(self.brokers.values()):
            broker.poll(self.now_ms)
        self.deliver()

    def run_until(self, condition: Callable[[], bool], step_ms: int = 100, max_ms: int = 60_000) -> None:
        """Deliver and let time pass in ``step_ms`` steps until ``condition`` holds (bounded)."""
        self.deliver()
        waited = 0
        while not condition():
            assert waited <= max_ms, f"condition not reached within {max_ms} ms of cluster time"
            self.advance(step_ms)
            waited += step_ms

    def settle(self, duration_ms: int = 2_000, step_ms: int = 100) -> None:
        """Run for ``duration_ms`` whatever happens (the replication of everything there is)."""
        self.deliver()
        for _ in range(duration_ms // step_ms):
            self.advance(step_ms)

    # -- clients ------------------------------------------------------------------------------------

    def produce(self, broker_id: int, topic: str, records: bytes, acks: int = -1, timeout_ms: int = 30_000,
                partition: int = 0) -> ProduceCall:
        data = PRODUCE.request.struct("PartitionProduceData").make(index=partition, records=records)
        body = PRODUCE.request.make(acks=acks, timeout_ms=timeout_ms, topic_data=[
            PRODUCE.request.struct("TopicProduceData").make(name=topic, partition_data=[data])])
        self._correlation += 1
        frame = encode_request(PRODUCE, PRODUCE_VERSION, self._correlation, "producer", body)
        call = ProduceCall(self.brokers[broker_id].handle_frame(frame[4:], self.now_ms), PRODUCE_VERSION)
        self.deliver()
        return call

    def replica(self, broker_id: int, topic: str, partition: int = 0) -> Any:
        return self.brokers[broker_id].replicas.require(topic, partition)

    # -- invariants across brokers (``spec/replication.py``'s, on the real cores) -----------------

    def logs(self, topic: str, partition: int = 0) -> dict[int, list[tuple[int, int, bytes | None]]]:
        """Each running replica's log as (offset, leader epoch, value) triples."""
        from .log.helpers import decoded

        found: dict[int, list[tuple[int, int, bytes | None]]] = {}
        for broker_id in self.record(topic, partition).replicas:
            if broker_id not in self.brokers:
                continue
            log = self.replica(broker_id, topic, partition).log
            entries: list[tuple[int, int, bytes | None]] = []
            if log.log_end_offset > log.log_start_offset:
                for stored in decoded(log.read(log.log_start_offset, 1 << 24, log.log_end_offset).records):
                    entries += [(stored.record_offset(r), stored.partition_leader_epoch, r.value) for r in stored.records]
            found[broker_id] = entries
        return found

    def check_invariants(self, topic: str, acknowledged: dict[int, bytes], partition: int = 0) -> None:
        """LeaderInIsr, LeaderCompleteness, LogMatching, WeakIsr and ValidHighWatermark as the
        replication model states them, plus every partition's own ``check_valid``."""
        record = self.record(topic, partition)
        logs = self.logs(topic, partition)
        assert record.leader in record.isr, f"LeaderInIsr: {record.leader} not in {record.isr}"
        leader_log = {offset: value for offset, _, value in logs[record.leader]}
        lost = {offset: value for offset, value in acknowledged.items() if leader_log.get(offset) != value}
        assert not lost, f"LeaderCompleteness: the leader {record.leader} lacks acknowledged {lost}"
        high_watermarks = {b: self.replica(b, topic, partition).high_watermark for b in logs}
        for a in logs:
            for b in logs:
                below = min(high_watermarks[a], high_watermarks[b])
                assert logs[a][:below] == logs[b][:below], f"LogMatching: {a} and {b} differ below {below}"
        leader = self.replica(record.leader, topic, partition)
        for member in leader.isr:
            if member in logs:
                below = leader.high_watermark
                assert logs[member][:below] == logs[record.leader][:below], f"WeakIsr: {member} below {below}"
        for member in record.isr:
            if member in self.brokers:
                end = self.replica(member, topic, partition).log_end_offset
                assert end >= leader.high_watermark, f"ValidHighWatermark: {member} ends at {end} < HW"
        for broker_id in logs:
            self.replica(broker_id, topic, partition).check_valid()
