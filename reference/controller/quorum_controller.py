"""The active KRaft controller's decisions, sans I/O: Kafka's ``QuorumController`` (KIP-500, KIP-631).

Theory of operation
-------------------
The controller is a function from (request, time) to (metadata records, response).  It does not
replicate anything: the Raft layer appends the records to ``__cluster_metadata`` and every node
replays them once committed.  So that consecutive operations see each other before the quorum
commits, the controller applies its own records at once to its *speculative* image (Kafka keeps
the same uncommitted state in its timeline data structures); a new active controller starts from
the image replayed from the committed log, and the brokers' sessions start afresh.

Each operation returns a :class:`ControllerResult`: the records, in order, to append atomically
(one batch), and the response body (a ``Data`` of the API's response schema in
``reference.protocol.messages``).  The records of one result occupy consecutive offsets from
:attr:`QuorumController.next_offset`; when the Raft layer appends anything in between (its own
control records, or records of a previous leader), it tells the controller with
:meth:`QuorumController.advance_to`.  A broker's epoch is the offset of the first record of its
registration's batch, as in Kafka.

The operations and where their rules live:

=====================================  ====  ===============================================
operation                              key   module
=====================================  ====  ===============================================
:meth:`~QuorumController.bootstrap`    --    here (``ActivationRecordsGenerator``)
BrokerRegistration                     62    :mod:`.cluster_control`
BrokerHeartbeat                        63    :mod:`.cluster_control`
:meth:`~QuorumController.poll`         --    session expiry, periodic elections
CreateTopics                           19    :mod:`.topic_control`
DeleteTopics                           20    :mod:`.topic_control`
CreatePartitions                       37    :mod:`.topic_control`
AlterPartition                         56    :mod:`.replication_control`
ElectLeaders                           43    :mod:`.replication_control`
IncrementalAlterConfigs / AlterConfigs 44/33 :mod:`.config_control`
AllocateProducerIds                    67    here (``ProducerIdControlManager``)
=====================================  ====  ===============================================

Rules kept here for every user operation: an operation producing more than
``MAX_RECORDS_PER_USER_OP`` (10,000) records fails whole, writing nothing, with POLICY_VIOLATION
"Unable to perform excessively large batch operation." (Kafka's ``BoundedList`` overflow as
``EventHandlerExceptionInfo`` reports it), and that holds for ``validate_only`` requests too,
since Kafka generates their records before dropping them; a refused operation writes nothing.
(CreatePartitions bounds its records topic by topic instead: see :mod:`.topic_control`.)

The periodic tasks run from :meth:`~QuorumController.poll`: fencing every broker whose session
expired (``broker.session.timeout.ms`` after its last heartbeat; a new controller first grants
every unfenced broker a full session), the preferred-leader election every
``leader.imbalance.check.interval.seconds`` when ``auto.leader.rebalance.enable``, and unclean
elections of leaderless partitions whose topic allows them every 5 minutes.

Bootstrap (a new cluster's empty log, Kafka 4.3 with metadata transactions): BeginTransactionRecord
"Bootstrap records", one FeatureLevelRecord per finalized feature (``metadata.version`` 30 =
4.3-IV0 first, then the features Kafka 4.3 enables by default at that level, capped at the levels
refka implements, :mod:`.features`; a level 0 is not written), with ELR on the cluster-wide
``min.insync.replicas`` ConfigRecord (the "ELR safety" record), EndTransactionRecord.

AllocateProducerIds (KIP-730): the broker's epoch must be current (STALE_BROKER_EPOCH); it gets the
next block of 1000 ids and a ProducerIdsRecord moves ``next_producer_id`` past it.

Invariant: after every operation ``image.check_valid()`` holds and ``image.offset ==
next_offset - 1``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from ..errors import ErrorCode, Errors, KafkaError
from ..protocol.messages import allocate_producer_ids
from ..protocol.schema import Data
from . import cluster_control, config_control, replication_control, topic_control
from .cluster_control import BrokerControlState, BrokerSession
from .controller_config import (
    ELR_FEATURE,
    MAX_RECORDS_PER_USER_OP,
    ControllerConfig,
    ControllerResult,
    elr_enabled,
)
from .features import bootstrap_levels
from .image import MetadataImage
from .metadata_records import (
    CONFIG_RESOURCE_BROKER,
    METADATA_VERSION_FEATURE,
    MetadataRecord,
    make,
)

__all__ = ["ALLOCATE_PRODUCER_IDS_REQUEST", "ALLOCATE_PRODUCER_IDS_RESPONSE", "ControllerConfig", "ControllerResult",
           "QuorumController"]

# AllocateProducerIds (key 67, KIP-730): brokers fetch blocks of producer ids from the controller.
ALLOCATE_PRODUCER_IDS_REQUEST = allocate_producer_ids.REQUEST
ALLOCATE_PRODUCER_IDS_RESPONSE = allocate_producer_ids.RESPONSE
PRODUCER_ID_BLOCK_SIZE = 1000  # ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE
LONG_MAX = (1 << 63) - 1

TOO_LARGE_BATCH = "Unable to perform excessively large batch operation."


class QuorumController:
    """The active controller: requests and time in, records (applied to :attr:`image`) and responses out."""

    def __init__(self, config: ControllerConfig, image: MetadataImage) -> None:
        self.config = config
        self.image = image
        self.rng = random.Random(config.placement_seed)
        self.sessions: dict[int, BrokerSession] = {}
        # broker id -> offset of its RegisterBrokerRecord (Kafka's registerBrokerRecordOffset); a
        # controller built from a replayed image falls back to the epoch, which is at most that.
        self.register_offsets: dict[int, int] = {}
        self.next_offset = image.offset + 1
        self._next_rebalance_ms: int | None = None
        self._next_unclean_check_ms: int | None = None

    # -- offsets and applying ---------------------------------------------------------------------------

    def advance_to(self, offset: int) -> None:
        """The Raft layer wrote up to ``offset - 1`` itself: our next record goes at ``offset``."""
        if offset < self.next_offset:
            raise ValueError(f"offset {offset} is behind the next offset {self.next_offset}")
        self.next_offset = offset

    def _apply(self, records: list[MetadataRecord]) -> None:
        for record in records:
            self.image.apply(record, self.next_offset)
            if record.name == "RegisterBrokerRecord":
                self.register_offsets[record.data.broker_id] = self.next_offset
            self.next_offset += 1

    def _commit(self, records: list[MetadataRecord], response: Data | None,
                validate_only: bool = False) -> ControllerResult:
        """Apply a user operation's records, unless there are too many (then refuse it whole) or
        it only validates (the cap still applies: Kafka generates the records either way)."""
        if len(records) > MAX_RECORDS_PER_USER_OP:
            if response is not None:
                _fail_every_result(response, Errors.POLICY_VIOLATION, TOO_LARGE_BATCH)
            return ControllerResult([], response)
        if validate_only:
            return ControllerResult([], response)
        self._apply(records)
        return ControllerResult(records, response)

    # -- bootstrap ----------------------------------------------------------------------------------------

    def bootstrap(self) -> ControllerResult:
        """The records that start a new cluster's metadata log (nothing if it has a metadata.version)."""
        if METADATA_VERSION_FEATURE in self.image.features:
            return ControllerResult([], None)
        # Kafka's defaults, capped at what refka's brokers implement (reference.controller.features).
        levels = bootstrap_levels(self.config.eligible_leader_replicas_version)
        records = [make("BeginTransactionRecord", name="Bootstrap records")]
        records += [make("FeatureLevelRecord", name=name, feature_level=level)
                    for name, level in levels.items() if level > 0 or name == METADATA_VERSION_FEATURE]
        if levels[ELR_FEATURE] > 0:  # the ELR safety record: a cluster-wide min.insync.replicas
            records.append(config_control.config_record(CONFIG_RESOURCE_BROKER, "", "min.insync.replicas",
                                                        str(self.config.min_insync_replicas)))
        records.append(make("EndTransactionRecord"))
        self._apply(records)
        return ControllerResult(records, None)

    # -- brokers --------------------------------------------------------------------------------------------

    def register_broker(self, request: Data, now_ms: int, version: int = 4,
                        broker_epoch: int | None = None) -> ControllerResult:
        """BrokerRegistration (62).  ``broker_epoch`` defaults to :attr:`next_offset`."""
        epoch = self.next_offset if broker_epoch is None else broker_epoch
        previous = self.image.brokers.get(request.broker_id)
        records, response = cluster_control.register_broker(self.image, self.config, self.sessions, request,
                                                             version, epoch, now_ms)
        result = self._commit(records, response)
        if result.records:
            new_incarnation = previous is None or previous.incarnation_id != records[-1].data.incarnation_id
            if new_incarnation or request.broker_id not in self.sessions:
                self.sessions[request.broker_id] = BrokerSession(now_ms)
        return result

    def broker_heartbeat(self, request: Data, now_ms: int, version: int = 2) -> ControllerResult:
        """BrokerHeartbeat (63)."""
        registration = self.image.brokers.get(request.broker_id)
        register_offset = self.register_offsets.get(
            request.broker_id, registration.broker_epoch if registration is not None else 0)
        records, response, state = cluster_control.heartbeat(self.image, self.config, self.sessions, request,
                                                             register_offset, now_ms)
        result = self._commit(records, response)
        session = self.sessions.get(request.broker_id)
        if session is not None and state is not None:
            if state is BrokerControlState.CONTROLLED_SHUTDOWN and session.controlled_shutdown_offset < 0:
                session.controlled_shutdown_offset = self.next_offset - 1  # the end of its shutdown batch
            elif state.fenced:
                session.controlled_shutdown_offset = -1
        return result

    def poll(self, now_ms: int) -> ControllerResult:
        """The periodic tasks: fence brokers whose session expired (one at a time, as Kafka's
        ``fenceStaleBroker``), preferred-leader rebalance, unclean elections."""
        records: list[MetadataRecord] = []
        for broker_id in sorted(self.image.brokers):
            if self.image.brokers[broker_id].fenced:
                continue
            session = self.sessions.setdefault(broker_id, BrokerSession(now_ms))  # a new controller's grace
            if session.expired(now_ms, self.config.broker_session_timeout_ms):
                fenced = cluster_control.fence_records(self.image, self.config, broker_id)
                self._apply(fenced)
                session.controlled_shutdown_offset = -1
                records += fenced
        if self.config.auto_leader_rebalance_enable:
            interval_ms = self.config.leader_imbalance_check_interval_seconds * 1000
            if self._next_rebalance_ms is None:
                self._next_rebalance_ms = now_ms + interval_ms
            elif now_ms >= self._next_rebalance_ms:
                self._next_rebalance_ms = now_ms + interval_ms
                records += self._run(replication_control.preferred_leader_elections)
        if self._next_unclean_check_ms is None:
            self._next_unclean_check_ms = now_ms + self.config.unclean_leader_election_check_interval_ms
        elif now_ms >= self._next_unclean_check_ms:
            self._next_unclean_check_ms = now_ms + self.config.unclean_leader_election_check_interval_ms
            records += self._run(replication_control.unclean_leader_elections)
        return ControllerResult(records, None)

    def _run(self, task: Callable[[MetadataImage, ControllerConfig], list[MetadataRecord]]) -> list[MetadataRecord]:
        records = task(self.image, self.config)
        self._apply(records)
        return records

    def preferred_leader_rebalance(self) -> ControllerResult:
        """One run of the preferred-leader election task, now (``maybeBalancePartitionLeaders``)."""
        return ControllerResult(self._run(replication_control.preferred_leader_elections), None)

    # -- topics and partitions ---------------------------------------------------------------------------

    def create_topics(self, request: Data, version: int = 7) -> ControllerResult:
        """CreateTopics (19)."""
        return self._commit(*topic_control.create_topics(self.image, self.config, self.rng, request, version),
                            validate_only=request.validate_only)

    def create_partitions(self, request: Data, version: int = 3) -> ControllerResult:
        """CreatePartitions (37)."""
        return self._commit(*topic_control.create_partitions(self.image, self.config, self.rng, request),
                            validate_only=request.validate_only)

    def delete_topics(self, request: Data, version: int = 6) -> ControllerResult:
        """DeleteTopics (20)."""
        return self._commit(*topic_control.delete_topics(self.image, self.config, request, version))

    def alter_partition(self, request: Data, version: int = 3) -> ControllerResult:
        """AlterPartition (56), from a partition leader."""
        return self._commit(*replication_control.alter_partition(self.image, self.config, request, version))

    def elect_leaders(self, request: Data, version: int = 2) -> ControllerResult:
        """ElectLeaders (43)."""
        return self._commit(*replication_control.elect_leaders(self.image, self.config, request, version))

    # -- configs and producer ids -----------------------------------------------------------------------

    def incremental_alter_configs(self, request: Data, version: int = 1) -> ControllerResult:
        """IncrementalAlterConfigs (44) for TOPIC and BROKER resources."""
        return self._commit(*config_control.incremental_alter_configs(self.image, self.config, request),
                            validate_only=request.validate_only)

    def alter_configs(self, request: Data, version: int = 2) -> ControllerResult:
        """AlterConfigs (33) for TOPIC and BROKER resources."""
        return self._commit(*config_control.legacy_alter_configs(self.image, self.config, request),
                            validate_only=request.validate_only)

    def allocate_producer_ids(self, request: Data, version: int = 0) -> ControllerResult:
        """AllocateProducerIds (67): the next block of 1000 producer ids for a broker."""
        response = ALLOCATE_PRODUCER_IDS_RESPONSE.make()
        try:
            replication_control.check_broker_epoch(self.image, request.broker_id, request.broker_epoch)
            first = self.image.next_producer_id
            if first > LONG_MAX - PRODUCER_ID_BLOCK_SIZE:
                raise KafkaError(Errors.UNKNOWN_SERVER_ERROR, "Exhausted all producerIds as the next block's end "
                                 "producerId has exceeded the int64 type limit")
        except KafkaError as refused:
            response.error_code = refused.error.code
            return ControllerResult([], response)
        response.producer_id_start, response.producer_id_len = first, PRODUCER_ID_BLOCK_SIZE
        record = make("ProducerIdsRecord", broker_id=request.broker_id, broker_epoch=request.broker_epoch,
                      next_producer_id=first + PRODUCER_ID_BLOCK_SIZE)
        return self._commit([record], response)

    # -- one entry point ----------------------------------------------------------------------------------

    def handle(self, api_key: int, version: int, request: Data, now_ms: int) -> ControllerResult:
        """Dispatch a controller request body by API key (the integration's single entry point)."""
        handlers: dict[int, Callable[[], ControllerResult]] = {
            19: lambda: self.create_topics(request, version),
            20: lambda: self.delete_topics(request, version),
            33: lambda: self.alter_configs(request, version),
            37: lambda: self.create_partitions(request, version),
            43: lambda: self.elect_leaders(request, version),
            44: lambda: self.incremental_alter_configs(request, version),
            56: lambda: self.alter_partition(request, version),
            62: lambda: self.register_broker(request, now_ms, version),
            63: lambda: self.broker_heartbeat(request, now_ms, version),
            67: lambda: self.allocate_producer_ids(request, version),
        }
        handler = handlers.get(api_key)
        if handler is None:
            raise KafkaError(Errors.UNSUPPORTED_VERSION, f"the controller does not serve API key {api_key}")
        return handler()

    def elr_enabled(self) -> bool:
        return elr_enabled(self.image)


def _fail_every_result(response: Data, error: ErrorCode, message: str) -> None:
    """Set ``error`` on every per-resource result of a response (the whole operation failed)."""
    for attribute in ("topics", "results", "responses"):
        entries: Any = response.get(attribute)
        for entry in entries or []:
            entry.error_code, entry.error_message = error.code, message
    for topic in response.get("replica_election_results") or []:
        for partition in topic.partition_result:
            partition.error_code, partition.error_message = error.code, message
    if hasattr(response, "error_code") and not any(response.get(a) for a in ("topics", "results", "responses",
                                                                                "replica_election_results")):
        response.error_code = error.code
