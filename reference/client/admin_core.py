"""The admin client without I/O: each admin operation is a generator of requests.

Theory of operation
-------------------
Kafka's ``KafkaAdminClient`` turns every user call (``createTopics``, ``describeConsumerGroups``,
...) into one or more ``Call`` objects, each with a *node provider* that says where it goes, and
runs them on one I/O thread with retries until ``default.api.timeout.ms``.  refka keeps the same
split, without a socket or a clock:

* An **operation** is a Python generator.  It *yields* a step -- a tuple of :class:`Call` (requests
  to send at once, each to a named node) or a :class:`Backoff` -- and is *sent back* the
  outcomes: for each call, in order, the response body or the exception that stopped it
  (:class:`~reference.client.exceptions.NodeDisconnectedError`, ``RequestTimedOutError``,
  ``UnsupportedVersionError``).  It *returns* the operation's result or raises a typed
  :class:`~reference.errors.KafkaError` with Kafka's name.
* A **driver** runs it: the asyncio shell (``reference.client.admin``) sends the calls through
  an ``OutboxTransport`` and bounds the whole operation by ``default.api.timeout.ms``; a test can
  drive the same generator with scripted answers.

Routing, as Kafka's admin client routes (its node providers):

=========================  =====================================================================
where                      which requests
=========================  =====================================================================
any broker                 Metadata, FindCoordinator, DescribeConfigs/IncrementalAlterConfigs of
                           topics (``LeastLoadedNodeProvider``; refka rotates over the known
                           brokers after a broken connection)
the controller             CreateTopics, DeleteTopics, CreatePartitions, ElectLeaders: the
                           ``ControllerId`` of the last Metadata answer.  Under KRaft a broker
                           names some live broker there and forwards the request to the active
                           controller (KIP-590); NOT_CONTROLLER (41) means ask Metadata again.
a given broker             DescribeConfigs/IncrementalAlterConfigs of broker ``N`` go to broker
                           ``N`` (only it knows its static configs); ListGroups goes to *every*
                           broker, since each lists only the groups it coordinates.
the group coordinator      DescribeGroups, OffsetFetch, OffsetCommit, DeleteGroups, OffsetDelete:
                           the node FindCoordinator(key_type 0 = group) names.  NOT_COORDINATOR,
                           COORDINATOR_NOT_AVAILABLE and COORDINATOR_LOAD_IN_PROGRESS mean find it
                           again after ``retry.backoff.ms``.
partition leaders          ListOffsets, DeleteRecords: one request per leader with its partitions;
                           NOT_LEADER_OR_FOLLOWER / LEADER_NOT_AVAILABLE mean refresh and retry.
=========================  =====================================================================

Retriable failures are retried after :class:`Backoff` without limit: the driver's deadline
(``default.api.timeout.ms``) is what ends an operation that cannot succeed, as in Java.  Anything
else raises at once.  The consumer-group operations live in ``admin_groups``.

Version tolerance: a request body carries the fields of every version refka may send (``Key``
and ``CoordinatorKeys`` of FindCoordinator, topic names and topic ids of OffsetFetch v10); the
encoder writes only those of the version the connection negotiated, and readers accept either
shape of the answer.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import ErrorCode, Errors, KafkaError, lookup
from ..protocol.apis import API_BY_KEY
from ..protocol.schema import Data
from .cluster import BrokerAddress, ClusterMetadata, TopicPartition
from .exceptions import NodeDisconnectedError, RequestTimedOutError, error_from_code

T = TypeVar("T")

LIST_OFFSETS_KEY = 2
METADATA_KEY = 3
CREATE_TOPICS_KEY = 19
DELETE_TOPICS_KEY = 20
DELETE_RECORDS_KEY = 21
DESCRIBE_CONFIGS_KEY = 32
CREATE_PARTITIONS_KEY = 37
ELECT_LEADERS_KEY = 43
INCREMENTAL_ALTER_CONFIGS_KEY = 44

ZERO_UUID = uuid.UUID(int=0)
NO_LEADER = -1
LATEST_TIMESTAMP = -1  # ListOffsets: the log end offset (the high watermark for READ_UNCOMMITTED)
EARLIEST_TIMESTAMP = -2  # ListOffsets: the log start offset
HIGH_WATERMARK = -1  # DeleteRecords: delete everything below the high watermark
DEFAULT_REQUEST_TIMEOUT_MS = 30_000  # request.timeout.ms, also the timeout put inside requests

# Errors after which an operation asks again rather than fails.
TRANSPORT_ERRORS = (NodeDisconnectedError, RequestTimedOutError)
COORDINATOR_ERRORS = frozenset({Errors.NOT_COORDINATOR, Errors.COORDINATOR_NOT_AVAILABLE,
                                Errors.COORDINATOR_LOAD_IN_PROGRESS})
LEADER_ERRORS = frozenset({Errors.NOT_LEADER_OR_FOLLOWER, Errors.LEADER_NOT_AVAILABLE,
                           Errors.FENCED_LEADER_EPOCH, Errors.UNKNOWN_LEADER_EPOCH,
                           Errors.REPLICA_NOT_AVAILABLE})
NOT_CONTROLLER = lookup(41)


# -- what an operation yields and is sent back ---------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request to send to node ``node`` (a broker id, or a negative bootstrap id)."""

    node: int
    api_key: int
    body: Data
    timeout_ms: int = DEFAULT_REQUEST_TIMEOUT_MS


@dataclass(frozen=True)
class Backoff:
    """Wait ``ms`` milliseconds (``retry.backoff.ms``) before the next step."""

    ms: int


Outcome = Data | Exception
Step = tuple[Call, ...] | Backoff
Operation = Generator[Step, Sequence[Outcome], T]


def _make(api_key: int, **fields: Any) -> Data:
    return API_BY_KEY[api_key].request.make(**fields)


def _struct(api_key: int, struct_name: str, /, **fields: Any) -> Data:
    return API_BY_KEY[api_key].request.struct(struct_name).make(**fields)


def raise_error(code: int, message: str | None, subject: str) -> None:
    """Raise the typed error for ``code`` (nothing for NONE), naming what it is about."""
    error = error_from_code(code, f"{subject}: {message}" if message else subject)
    if error is not None:
        raise error


# -- what operations return ----------------------------------------------------------------------


@dataclass(frozen=True)
class NewTopic:
    """A topic to create; -1 partitions or replication factor means the broker's default
    (``num.partitions``, ``default.replication.factor``; CreateTopics v4+)."""

    name: str
    num_partitions: int = -1
    replication_factor: int = -1
    configs: Mapping[str, str] = field(default_factory=dict)
    assignments: Mapping[int, Sequence[int]] = field(default_factory=dict)  # partition -> broker ids


@dataclass(frozen=True)
class CreatedTopic:
    name: str
    topic_id: uuid.UUID
    num_partitions: int  # -1 before CreateTopics v5
    replication_factor: int


@dataclass(frozen=True)
class PartitionDescription:
    partition: int
    leader: int  # -1: no leader right now
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    offline_replicas: tuple[int, ...]


@dataclass(frozen=True)
class TopicDescription:
    name: str
    topic_id: uuid.UUID
    is_internal: bool
    partitions: tuple[PartitionDescription, ...]


class ResourceType(enum.IntEnum):
    """ConfigResource.Type as the wire numbers it (DescribeConfigs, IncrementalAlterConfigs)."""

    TOPIC = 2
    BROKER = 4
    BROKER_LOGGER = 8


class ConfigSource(enum.IntEnum):
    """DescribeConfigs ``ConfigSource`` (v1+): where a value comes from."""

    UNKNOWN = 0
    DYNAMIC_TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5
    DYNAMIC_BROKER_LOGGER_CONFIG = 6
    CLIENT_METRICS_CONFIG = 7
    GROUP_CONFIG = 8


class AlterConfigOp(enum.IntEnum):
    """IncrementalAlterConfigs ``ConfigOperation`` (KIP-339)."""

    SET = 0
    DELETE = 1
    APPEND = 2
    SUBTRACT = 3


@dataclass(frozen=True)
class ConfigResource:
    type: ResourceType
    name: str  # a topic name, a broker id ("1"), or "" for the cluster-wide broker default


@dataclass(frozen=True)
class ConfigEntry:
    """One config as DescribeConfigs reports it.  A sensitive value (a password) is never sent by
    the broker: ``value`` is None and ``is_sensitive`` True."""

    name: str
    value: str | None
    source: ConfigSource
    is_sensitive: bool
    read_only: bool
    synonyms: tuple[tuple[str, str | None, ConfigSource], ...] = ()

    @property
    def is_default(self) -> bool:
        return self.source is ConfigSource.DEFAULT_CONFIG


class ElectionType(enum.IntEnum):
    """ElectLeaders ``ElectionType`` (v1+, KIP-460)."""

    PREFERRED = 0
    UNCLEAN = 1


# -- the core --------------------------------------------------------------------------------------


def error_codes(data: Any) -> set[ErrorCode]:
    """Every ``error_code`` anywhere in a response body (for routing decisions only)."""
    found: set[ErrorCode] = set()
    if isinstance(data, Data):
        for name, value in vars(data).items():
            if name == "error_code" and isinstance(value, int):
                found.add(lookup(value))
            else:
                found |= error_codes(value)
    elif isinstance(data, list):
        for item in data:
            found |= error_codes(item)
    return found


class AdminCore:
    """The admin client's routing and its topic, config, record and election operations.

    ``metadata`` is the same cache the producer uses; operations refresh it as they need.
    """

    def __init__(self, bootstrap: Sequence[BrokerAddress], retry_backoff_ms: int = 100,
                 request_timeout_ms: int = DEFAULT_REQUEST_TIMEOUT_MS) -> None:
        self.metadata = ClusterMetadata(bootstrap, retry_backoff_ms)
        self.retry_backoff_ms = retry_backoff_ms
        self.request_timeout_ms = request_timeout_ms
        self.controller_id: int | None = None
        self.now_ms = 0  # set by the driver before each step; the core reads no clock
        self._rotation = 0  # which known broker "any broker" means; moves on after a failure

    # -- sending ---------------------------------------------------------------------------------

    def send(self, node: int, api_key: int, body: Data) -> Operation[Data]:
        """One request to ``node``; its answer, or the exception that stopped it raised here."""
        outcomes = yield (Call(node, api_key, body, self.request_timeout_ms),)
        outcome = outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def send_all(self, calls: Sequence[Call]) -> Operation[list[Outcome]]:
        """Several requests at once (one per leader or broker); their outcomes in order."""
        if not calls:
            return []
        outcomes = yield tuple(calls)
        return list(outcomes)

    def any_node(self) -> int:
        return self.metadata.any_node(self._rotation)

    def send_any(self, api_key: int, body: Data) -> Operation[Data]:
        """To any broker; a broken connection or a timeout moves on to the next one."""
        while True:
            try:
                return (yield from self.send(self.any_node(), api_key, body))
            except TRANSPORT_ERRORS:
                self._rotation += 1
                yield Backoff(self.retry_backoff_ms)

    def send_to_controller(self, api_key: int, body: Data) -> Operation[Data]:
        """To the controller the last Metadata answer named (see the routing table)."""
        while True:
            if self.controller_id is None:
                yield from self.fetch_metadata([])
            controller = self.controller_id
            node = controller if controller is not None and controller in self.metadata.brokers else self.any_node()
            try:
                response = yield from self.send(node, api_key, body)
            except TRANSPORT_ERRORS:
                self.controller_id = None
                self._rotation += 1
                yield Backoff(self.retry_backoff_ms)
                continue
            if NOT_CONTROLLER in error_codes(response):
                self.controller_id = None
                yield Backoff(self.retry_backoff_ms)
                continue
            return response

    # -- metadata --------------------------------------------------------------------------------

    def fetch_metadata(self, topics: Sequence[str] | None) -> Operation[Data]:
        """Metadata for ``topics`` (None: every topic; []: none, only brokers and controller)."""
        topic = API_BY_KEY[METADATA_KEY].request.struct("MetadataRequestTopic")
        body = _make(METADATA_KEY, topics=None if topics is None else [
            topic.make(name=name, topic_id=ZERO_UUID) for name in topics],
            allow_auto_topic_creation=False)
        response = yield from self.send_any(METADATA_KEY, body)
        self.metadata.update(response, self.now_ms)
        self.controller_id = response.get("controller_id", -1)
        if self.controller_id is not None and self.controller_id < 0:
            self.controller_id = None
        return response

    def topic_names_by_id(self) -> Operation[dict[uuid.UUID, str]]:
        response = yield from self.fetch_metadata(None)
        return {t.topic_id: t.name for t in response.topics if t.get("topic_id", ZERO_UUID) != ZERO_UUID}

    # -- topics ----------------------------------------------------------------------------------

    def create_topics(self, topics: Sequence[NewTopic], validate_only: bool = False) -> Operation[list[CreatedTopic]]:
        """CreateTopics at the controller.  Raises the first topic's error: TOPIC_ALREADY_EXISTS
        (36), INVALID_PARTITIONS (37), INVALID_REPLICATION_FACTOR (38), INVALID_CONFIG (40),
        INVALID_TOPIC_EXCEPTION (17), POLICY_VIOLATION (44), ..."""
        body = _make(CREATE_TOPICS_KEY, timeout_ms=self.request_timeout_ms, validate_only=validate_only, topics=[
            _struct(CREATE_TOPICS_KEY, "CreatableTopic", name=t.name, num_partitions=t.num_partitions,
                    replication_factor=t.replication_factor,
                    assignments=[_struct(CREATE_TOPICS_KEY, "CreatableReplicaAssignment", partition_index=p,
                                         broker_ids=list(brokers)) for p, brokers in sorted(t.assignments.items())],
                    configs=[_struct(CREATE_TOPICS_KEY, "CreatableTopicConfig", name=k, value=v)
                             for k, v in t.configs.items()])
            for t in topics])
        response = yield from self.send_to_controller(CREATE_TOPICS_KEY, body)
        for result in response.topics:
            raise_error(result.error_code, result.get("error_message"), f"topic {result.name}")
        return [CreatedTopic(r.name, r.get("topic_id", ZERO_UUID), r.get("num_partitions", -1),
                             r.get("replication_factor", -1)) for r in response.topics]

    def delete_topics(self, names: Sequence[str]) -> Operation[None]:
        """DeleteTopics at the controller; UNKNOWN_TOPIC_OR_PARTITION (3) for a topic that is not there."""
        state = API_BY_KEY[DELETE_TOPICS_KEY].request.struct("DeleteTopicState")
        body = _make(DELETE_TOPICS_KEY, timeout_ms=self.request_timeout_ms, topic_names=list(names),
                     topics=[state.make(name=name, topic_id=ZERO_UUID) for name in names])
        response = yield from self.send_to_controller(DELETE_TOPICS_KEY, body)
        for result in response.responses:
            raise_error(result.error_code, result.get("error_message"), f"topic {result.name}")

    def list_topics(self, include_internal: bool = True) -> Operation[list[str]]:
        response = yield from self.fetch_metadata(None)
        return sorted(t.name for t in response.topics
                      if t.error_code == Errors.NONE.code and (include_internal or not t.get("is_internal", False)))

    def describe_topics(self, names: Sequence[str] | None = None) -> Operation[list[TopicDescription]]:
        """Partitions with leader, replicas, ISR and offline replicas (every topic when ``names`` is
        None).  A topic that does not exist raises UNKNOWN_TOPIC_OR_PARTITION (3)."""
        response = yield from self.fetch_metadata(None if names is None else list(names))
        described = []
        for topic in sorted(response.topics, key=lambda t: t.name):
            raise_error(topic.error_code, None, f"topic {topic.name}")
            partitions = tuple(sorted((
                PartitionDescription(p.partition_index, p.leader_id, p.get("leader_epoch", -1),
                                     tuple(p.replica_nodes), tuple(p.isr_nodes),
                                     tuple(p.get("offline_replicas", [])))
                for p in topic.partitions), key=lambda p: p.partition))
            described.append(TopicDescription(topic.name, topic.get("topic_id", ZERO_UUID),
                                               topic.get("is_internal", False), partitions))
        return described

    def create_partitions(self, counts: Mapping[str, int], validate_only: bool = False) -> Operation[None]:
        """Grow topics to ``counts[topic]`` partitions (CreatePartitions at the controller).
        INVALID_PARTITIONS (37) when the count is not larger than the current one."""
        body = _make(CREATE_PARTITIONS_KEY, timeout_ms=self.request_timeout_ms, validate_only=validate_only,
                     topics=[_struct(CREATE_PARTITIONS_KEY, "CreatePartitionsTopic", name=name, count=count,
                                     assignments=None) for name, count in counts.items()])
        response = yield from self.send_to_controller(CREATE_PARTITIONS_KEY, body)
        for result in response.results:
            raise_error(result.error_code, result.get("error_message"), f"topic {result.name}")

    # -- configs ---------------------------------------------------------------------------------

    def _config_node(self, resource: ConfigResource) -> Operation[int]:
        """Broker N's configs are answered by broker N; everything else by any broker."""
        if resource.type in (ResourceType.BROKER, ResourceType.BROKER_LOGGER) and resource.name:
            if not resource.name.isdigit():
                raise KafkaError(Errors.INVALID_REQUEST, f"broker id must be a number, not {resource.name!r}")
            node = int(resource.name)
            if node not in self.metadata.brokers:
                yield from self.fetch_metadata([])
            if node not in self.metadata.brokers:
                raise KafkaError(Errors.BROKER_NOT_AVAILABLE, f"no broker {node} in the cluster")
            return node
        if not self.metadata.brokers:
            yield from self.fetch_metadata([])
        return self.any_node()

    def describe_configs(self, resource: ConfigResource,
                         names: Sequence[str] | None = None) -> Operation[list[ConfigEntry]]:
        """DescribeConfigs of one resource, with the source of each value (synonyms asked for)."""
        node = yield from self._config_node(resource)
        request = _make(DESCRIBE_CONFIGS_KEY, include_synonyms=True, include_documentation=False, resources=[
            _struct(DESCRIBE_CONFIGS_KEY, "DescribeConfigsResource", resource_type=int(resource.type),
                    resource_name=resource.name, configuration_keys=None if names is None else list(names))])
        response = yield from self.send(node, DESCRIBE_CONFIGS_KEY, request)
        (result,) = response.results
        raise_error(result.error_code, result.get("error_message"), f"{resource.type.name.lower()} {resource.name}")
        return sorted((ConfigEntry(c.name, c.value, _source(c.get("config_source", 0)), c.is_sensitive, c.read_only,
                                   tuple((s.name, s.value, _source(s.source)) for s in c.get("synonyms", [])))
                       for c in result.configs), key=lambda entry: entry.name)

    def incremental_alter_configs(self, resource: ConfigResource,
                                  operations: Sequence[tuple[str, AlterConfigOp, str | None]],
                                  validate_only: bool = False) -> Operation[None]:
        """Set, delete, append to or subtract from configs of one resource (KIP-339).
        INVALID_CONFIG (40) for an unknown name or a bad value, UNKNOWN_TOPIC_OR_PARTITION (3)."""
        node = yield from self._config_node(resource)
        request = _make(INCREMENTAL_ALTER_CONFIGS_KEY, validate_only=validate_only, resources=[
            _struct(INCREMENTAL_ALTER_CONFIGS_KEY, "AlterConfigsResource", resource_type=int(resource.type),
                    resource_name=resource.name, configs=[
                        _struct(INCREMENTAL_ALTER_CONFIGS_KEY, "AlterableConfig", name=name,
                                config_operation=int(op), value=value)
                        for name, op, value in operations])])
        response = yield from self.send(node, INCREMENTAL_ALTER_CONFIGS_KEY, request)
        for result in response.responses:
            raise_error(result.error_code, result.get("error_message"),
                        f"{resource.type.name.lower()} {resource.name}")

    # -- partition leaders: offsets and records ---------------------------------------------------

    def leaders(self, partitions: Iterable[TopicPartition]) -> Operation[dict[int, list[TopicPartition]]]:
        """The partitions grouped by their leader.  UNKNOWN_TOPIC_OR_PARTITION (3) for a topic or a
        partition the cluster does not have; a partition without a leader is waited for."""
        wanted = sorted(set(partitions), key=lambda tp: (tp.topic, tp.partition))
        while True:
            response = yield from self.fetch_metadata(sorted({tp.topic for tp in wanted}))
            errors = {t.name: t.error_code for t in response.topics}
            by_leader: dict[int, list[TopicPartition]] = {}
            leaderless = False
            for tp in wanted:
                code = errors.get(tp.topic, Errors.UNKNOWN_TOPIC_OR_PARTITION.code)
                if lookup(code) is Errors.LEADER_NOT_AVAILABLE:
                    leaderless = True
                    continue
                raise_error(code, None, f"topic {tp.topic}")
                info = self.metadata.topics.get(tp.topic)
                if info is None or tp.partition not in info.partitions:
                    raise KafkaError(Errors.UNKNOWN_TOPIC_OR_PARTITION, f"partition {tp}")
                leader = self.metadata.leader(tp)
                if leader is None:
                    leaderless = True
                else:
                    by_leader.setdefault(leader, []).append(tp)
            if not leaderless:
                return by_leader
            yield Backoff(self.retry_backoff_ms)

    def list_offsets(self, specs: Mapping[TopicPartition, int],
                     isolation_level: int = 0) -> Operation[dict[TopicPartition, tuple[int, int]]]:
        """ListOffsets at each leader: ``specs[tp]`` is a timestamp, or LATEST_TIMESTAMP (-1) /
        EARLIEST_TIMESTAMP (-2).  Returns ``tp -> (offset, timestamp)``; offset -1 when no record
        has a timestamp at or after the one asked for."""
        found: dict[TopicPartition, tuple[int, int]] = {}
        remaining = dict(specs)
        while remaining:
            by_leader = yield from self.leaders(remaining)
            calls = [Call(leader, LIST_OFFSETS_KEY, _list_offsets_request(tps, remaining, isolation_level),
                          self.request_timeout_ms) for leader, tps in by_leader.items()]
            outcomes = yield from self.send_all(calls)
            retry = False
            for outcome in outcomes:
                if isinstance(outcome, Exception):
                    if not isinstance(outcome, TRANSPORT_ERRORS):
                        raise outcome
                    retry = True
                    continue
                for topic in outcome.topics:
                    for p in topic.partitions:
                        tp = TopicPartition(topic.name, p.partition_index)
                        error = lookup(p.error_code)
                        if error in LEADER_ERRORS:
                            retry = True
                            continue
                        raise_error(p.error_code, None, f"partition {tp}")
                        found[tp] = (p.offset, p.timestamp)
                        remaining.pop(tp, None)
            if remaining and retry:
                yield Backoff(self.retry_backoff_ms)
        return found

    def delete_records(self, before: Mapping[TopicPartition, int]) -> Operation[dict[TopicPartition, int]]:
        """DeleteRecords at each leader: drop everything below ``before[tp]`` (HIGH_WATERMARK, -1:
        below the high watermark).  Returns each partition's new low watermark.  OFFSET_OUT_OF_RANGE
        (1) for an offset above the high watermark."""
        low_watermarks: dict[TopicPartition, int] = {}
        remaining = dict(before)
        while remaining:
            by_leader = yield from self.leaders(remaining)
            calls = []
            for leader, tps in by_leader.items():
                topics: dict[str, list[Data]] = {}
                for tp in tps:
                    topics.setdefault(tp.topic, []).append(_struct(
                        DELETE_RECORDS_KEY, "DeleteRecordsPartition", partition_index=tp.partition, offset=remaining[tp]))
                calls.append(Call(leader, DELETE_RECORDS_KEY, _make(
                    DELETE_RECORDS_KEY, timeout_ms=self.request_timeout_ms, topics=[
                        _struct(DELETE_RECORDS_KEY, "DeleteRecordsTopic", name=name, partitions=parts)
                        for name, parts in topics.items()]), self.request_timeout_ms))
            outcomes = yield from self.send_all(calls)
            for outcome in outcomes:
                if isinstance(outcome, Exception):
                    if not isinstance(outcome, TRANSPORT_ERRORS):
                        raise outcome
                    continue
                for topic in outcome.topics:
                    for p in topic.partitions:
                        tp = TopicPartition(topic.name, p.partition_index)
                        if lookup(p.error_code) in LEADER_ERRORS:
                            continue
                        raise_error(p.error_code, None, f"partition {tp}")
                        low_watermarks[tp] = p.low_watermark
                        remaining.pop(tp, None)
            if remaining:
                yield Backoff(self.retry_backoff_ms)
        return low_watermarks

    def elect_leaders(self, election_type: ElectionType,
                      partitions: Iterable[TopicPartition] | None = None) -> Operation[dict[TopicPartition, KafkaError | None]]:
        """ElectLeaders at the controller (KIP-460); ``None`` means every partition.  Returns each
        partition's outcome: None (elected), or ELECTION_NOT_NEEDED (84, the right leader is
        already in place), PREFERRED_LEADER_NOT_AVAILABLE (80), ELIGIBLE_LEADERS_NOT_AVAILABLE (83),
        UNKNOWN_TOPIC_OR_PARTITION (3), ...  A whole-request error is raised."""
        topic_partitions = None
        if partitions is not None:
            grouped: dict[str, list[int]] = {}
            for tp in partitions:
                grouped.setdefault(tp.topic, []).append(tp.partition)
            topic_partitions = [_struct(ELECT_LEADERS_KEY, "TopicPartitions", topic=topic, partitions=sorted(ps))
                                for topic, ps in sorted(grouped.items())]
        body = _make(ELECT_LEADERS_KEY, election_type=int(election_type), topic_partitions=topic_partitions,
                     timeout_ms=self.request_timeout_ms)
        response = yield from self.send_to_controller(ELECT_LEADERS_KEY, body)
        raise_error(response.get("error_code", 0), None, "ElectLeaders")
        return {TopicPartition(result.topic, p.partition_id): error_from_code(p.error_code, p.get("error_message"))
                for result in response.replica_election_results for p in result.partition_result}


def _source(value: int) -> ConfigSource:
    try:
        return ConfigSource(value)
    except ValueError:
        return ConfigSource.UNKNOWN


def _list_offsets_request(tps: Sequence[TopicPartition], specs: Mapping[TopicPartition, int],
                          isolation_level: int) -> Data:
    topics: dict[str, list[Data]] = {}
    for tp in tps:
        topics.setdefault(tp.topic, []).append(_struct(
            LIST_OFFSETS_KEY, "ListOffsetsPartition", partition_index=tp.partition, current_leader_epoch=-1,
            timestamp=specs[tp], max_num_offsets=1))
    return _make(LIST_OFFSETS_KEY, replica_id=-1, isolation_level=isolation_level, timeout_ms=DEFAULT_REQUEST_TIMEOUT_MS,
                 topics=[_struct(LIST_OFFSETS_KEY, "ListOffsetsTopic", name=name, partitions=parts)
                         for name, parts in topics.items()])


def run_scripted(operation: Operation[T], answer: Callable[[Call], Outcome]) -> T:
    """Drive ``operation`` with answers from ``answer(call)`` and no waiting (tests, simulations)."""
    outcomes: Sequence[Outcome] = ()
    first = True
    while True:
        try:
            step = next(operation) if first else operation.send(outcomes)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        first = False
        outcomes = () if isinstance(step, Backoff) else [answer(call) for call in step]
