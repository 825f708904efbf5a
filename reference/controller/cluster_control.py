"""Broker registration, heartbeats, fencing and controlled shutdown: Kafka's ``ClusterControlManager``
and ``BrokerHeartbeatManager`` (KIP-631).

Theory of operation
-------------------
A broker joins with BrokerRegistration (key 62).  The controller writes a RegisterBrokerRecord;
the broker's *epoch* is the offset where the operation's records start, and every later heartbeat,
AlterPartition and AllocateProducerIds must carry it (else STALE_BROKER_EPOCH).  A new
registration is **fenced**: it leads nothing and may not join an ISR.  Registration checks, in
Kafka 4.3's order:

1. ``ClusterId`` is this cluster's (INCONSISTENT_CLUSTER_ID);
2. another *incarnation* of the broker id still has a live session (unfenced and heard from within
   ``broker.session.timeout.ms``): DUPLICATE_BROKER_REGISTRATION;
3. a ZooKeeper-migrating broker: BROKER_ID_NOT_REGISTERED;
4. log directories (JBOD, KIP-858, always on at metadata.version 4.3-IV0): at least one, none
   reserved (the first 100 uuids), no duplicate, none registered by another broker
   (INVALID_REGISTRATION);
5. every feature the broker announces supports the finalized level (UNSUPPORTED_VERSION),
   ``metadata.version`` is among them (INVALID_REGISTRATION), and every finalized feature it does
   not announce is at level 0 (UNSUPPORTED_VERSION).

A *new incarnation* first cleans up after the old one (``handleBrokerShutdown``): after a clean
shutdown (v3+ ``PreviousBrokerEpoch`` equals the registered epoch) or with ELR off, the broker leaves
every ISR as if fenced; after an unclean one, with ELR on, it leaves ISRs *and* ELRs (KIP-966: its
log may have lost records it once acknowledged).  The *same* incarnation re-registering keeps its
epoch and its fenced / controlled-shutdown state.

Heartbeats (key 63) drive a state machine per broker (``BrokerHeartbeatManager
.calculateNextBrokerState``); the table, where a condition row applies when the earlier ones of its
state did not:

===================  ==============================================  ===================
state                condition                                       next state
===================  ==============================================  ===================
FENCED               WantShutDown                                    SHUTDOWN_NOW
FENCED               not WantFence, caught up                        UNFENCED
FENCED               otherwise                                       FENCED
UNFENCED             WantFence and WantShutDown                      SHUTDOWN_NOW
UNFENCED             WantFence                                       FENCED
UNFENCED             WantShutDown, leads some partition              CONTROLLED_SHUTDOWN
UNFENCED             WantShutDown, leads nothing                     SHUTDOWN_NOW
UNFENCED             otherwise                                       UNFENCED
CONTROLLED_SHUTDOWN  leads some partition                            CONTROLLED_SHUTDOWN
CONTROLLED_SHUTDOWN  every active broker has replayed past the       SHUTDOWN_NOW
                     offset where the shutdown began
CONTROLLED_SHUTDOWN  otherwise                                       CONTROLLED_SHUTDOWN
===================  ==============================================  ===================

The state is the heartbeat manager's, not the registration's: CONTROLLED_SHUTDOWN while the
broker's session holds the offset where its shutdown records end (fencing clears it), else FENCED
or UNFENCED as registered.  "Caught up" is ``CurrentMetadataOffset >=`` the offset of the broker's
RegisterBrokerRecord.  (``tests/reference/controller/test_cluster_control_against_kafka.py`` checks
the table against Kafka 4.3.1's ``BrokerHeartbeatManager`` itself.)
Entering FENCED or SHUTDOWN_NOW writes a fence (BrokerRegistrationChangeRecord fenced=1) after the
PartitionChangeRecords that take the broker out of every ISR and leadership; UNFENCED writes the
unfence (fenced=-1) and then elects the broker where partitions had no leader; CONTROLLED_SHUTDOWN
writes in_controlled_shutdown=1 and moves leadership and ISR membership away.  Kafka 4.x expresses
fencing with BrokerRegistrationChangeRecord, not Fence/UnfenceBrokerRecord.

A broker's *session* expires ``broker.session.timeout.ms`` after its last heartbeat; the
controller's periodic task then fences it exactly as above.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from .. import guards
from ..errors import Errors, KafkaError, by_name
from ..protocol.messages import broker_heartbeat as heartbeat_api
from ..protocol.messages import broker_registration as registration_api
from ..protocol.schema import Data
from .controller_config import ControllerConfig, elr_enabled
from .metadata_records import (
    METADATA_VERSION_FEATURE,
    REGISTER_BROKER_RECORD,
    MetadataRecord,
    make,
    uuid_text,
)
from .replication_control import (
    check_broker_epoch,
    has_leaderships,
    leader_and_isr_updates,
    partitions_with_broker_in_elr,
    partitions_with_broker_in_isr,
    partitions_with_no_leader,
    uuid_from_text,
)

if TYPE_CHECKING:
    from .image import MetadataImage

INCONSISTENT_CLUSTER_ID = by_name["INCONSISTENT_CLUSTER_ID"]
DUPLICATE_BROKER_REGISTRATION = by_name["DUPLICATE_BROKER_REGISTRATION"]
BROKER_ID_NOT_REGISTERED = by_name["BROKER_ID_NOT_REGISTERED"]
INVALID_REGISTRATION = by_name["INVALID_REGISTRATION"]

FENCE, UNFENCE = 1, -1  # BrokerRegistrationFencingChange
IN_CONTROLLED_SHUTDOWN = 1  # BrokerRegistrationInControlledShutdownChange
RESERVED_DIRECTORY_IDS = 100  # DirectoryId.reserved: uuids (0, 0..99)

ENDPOINT = REGISTER_BROKER_RECORD.struct("BrokerEndpoint")
BROKER_FEATURE = REGISTER_BROKER_RECORD.struct("BrokerFeature")


class BrokerControlState(Enum):
    """Kafka's ``BrokerControlState``."""

    FENCED = "fenced"
    UNFENCED = "unfenced"
    CONTROLLED_SHUTDOWN = "controlled_shutdown"
    SHUTDOWN_NOW = "shutdown_now"

    @property
    def fenced(self) -> bool:
        return self in (BrokerControlState.FENCED, BrokerControlState.SHUTDOWN_NOW)

    @property
    def should_shut_down(self) -> bool:
        return self is BrokerControlState.SHUTDOWN_NOW


@dataclass
class BrokerSession:
    """The controller's memory of a broker's heartbeats (not in the log: a new active controller
    starts every session afresh)."""

    last_contact_ms: int
    metadata_offset: int = -1  # CurrentMetadataOffset of the last heartbeat
    controlled_shutdown_offset: int = -1  # where its controlled shutdown records end, -1 before

    def expired(self, now_ms: int, session_timeout_ms: int) -> bool:
        return self.last_contact_ms + session_timeout_ms < now_ms


def current_state(image: MetadataImage, sessions: dict[int, BrokerSession], broker_id: int) -> BrokerControlState:
    """``BrokerHeartbeatManager.currentBrokerState``: in controlled shutdown while the session holds
    a shutdown offset (a fenced broker has none: fencing ends the shutdown), else fenced or not as
    registered."""
    session = sessions.get(broker_id)
    if session is not None and session.controlled_shutdown_offset >= 0:
        return BrokerControlState.CONTROLLED_SHUTDOWN
    return BrokerControlState.FENCED if image.brokers[broker_id].fenced else BrokerControlState.UNFENCED


def next_state(current: BrokerControlState, *, want_fence: bool, want_shut_down: bool, caught_up: bool,
               leads_partitions: bool, shutdown_offset_replayed: bool) -> BrokerControlState:
    """The heartbeat table of the module docstring."""
    state = BrokerControlState
    if current is state.FENCED:
        if want_shut_down:
            return state.SHUTDOWN_NOW
        return state.UNFENCED if not want_fence and caught_up else state.FENCED
    if current is state.UNFENCED:
        if want_fence:
            return state.SHUTDOWN_NOW if want_shut_down else state.FENCED
        if want_shut_down:
            return state.CONTROLLED_SHUTDOWN if leads_partitions else state.SHUTDOWN_NOW
        return state.UNFENCED
    if current is state.CONTROLLED_SHUTDOWN:
        if leads_partitions or not shutdown_offset_replayed:
            return state.CONTROLLED_SHUTDOWN
        return state.SHUTDOWN_NOW
    return state.SHUTDOWN_NOW


def has_valid_session(image: MetadataImage, sessions: dict[int, BrokerSession], broker_id: int, now_ms: int,
                      session_timeout_ms: int) -> bool:
    """``BrokerHeartbeatManager.hasValidSession``: unfenced and heard from recently."""
    registration = image.brokers.get(broker_id)
    session = sessions.get(broker_id)
    if registration is None or registration.fenced or session is None:
        return False
    return not session.expired(now_ms, session_timeout_ms)


def lowest_active_offset(image: MetadataImage, sessions: dict[int, BrokerSession]) -> int | None:
    """The lowest metadata offset replayed by an active broker: unfenced and not shutting down
    (None: no active broker)."""
    offsets = [session.metadata_offset for broker_id, session in sessions.items()
               if broker_id in image.brokers and not image.brokers[broker_id].fenced
               and session.controlled_shutdown_offset < 0]
    return min(offsets) if offsets else None


# -- records for a broker's transitions ---------------------------------------------------------------


def fence_records(image: MetadataImage, config: ControllerConfig, broker_id: int) -> list[MetadataRecord]:
    """``handleBrokerFenced``: out of every ISR and leadership, then the fence."""
    registration = image.brokers[broker_id]
    records = leader_and_isr_updates(image, config, partitions_with_broker_in_isr(image, broker_id),
                                     broker_to_remove=broker_id)
    records.append(make("BrokerRegistrationChangeRecord", broker_id=broker_id,
                        broker_epoch=registration.broker_epoch, fenced=FENCE))
    return records


def unfence_records(image: MetadataImage, config: ControllerConfig, broker_id: int) -> list[MetadataRecord]:
    """``handleBrokerUnfenced``: the unfence, then leaderless partitions may elect this broker."""
    registration = image.brokers[broker_id]
    records = [make("BrokerRegistrationChangeRecord", broker_id=broker_id,
                    broker_epoch=registration.broker_epoch, fenced=UNFENCE)]
    records += leader_and_isr_updates(image, config, partitions_with_no_leader(image), broker_to_add=broker_id)
    return records


def controlled_shutdown_records(image: MetadataImage, config: ControllerConfig,
                                broker_id: int) -> list[MetadataRecord]:
    """``handleBrokerInControlledShutdown``: mark it, then move leadership and ISR membership away."""
    registration = image.brokers[broker_id]
    records = []
    if not registration.in_controlled_shutdown:
        records.append(make("BrokerRegistrationChangeRecord", broker_id=broker_id,
                            broker_epoch=registration.broker_epoch, in_controlled_shutdown=IN_CONTROLLED_SHUTDOWN))
    records += leader_and_isr_updates(image, config, partitions_with_broker_in_isr(image, broker_id),
                                      broker_to_remove=broker_id)
    return records


def shutdown_records(image: MetadataImage, config: ControllerConfig, broker_id: int,
                     clean: bool) -> list[MetadataRecord]:
    """``handleBrokerShutdown``: a previous incarnation is gone (see the module docstring)."""
    # spec guard unclean_shutdown_leaves_isr (KIP-966): a broker back from an unclean shutdown may
    # have lost its unflushed tail, so it leaves the ISR and the ELR instead of being elected.
    if elr_enabled(image) and not clean and guards.on("unclean_shutdown_leaves_isr"):
        records = leader_and_isr_updates(image, config, partitions_with_broker_in_isr(image, broker_id),
                                         unclean_shutdown_broker=broker_id)
        records += leader_and_isr_updates(image, config, partitions_with_broker_in_elr(image, broker_id),
                                          unclean_shutdown_broker=broker_id)
        return records
    return leader_and_isr_updates(image, config, partitions_with_broker_in_isr(image, broker_id),
                                  broker_to_remove=broker_id)


# -- BrokerRegistration (62) ------------------------------------------------------------------------------


def register_broker(image: MetadataImage, config: ControllerConfig, sessions: dict[int, BrokerSession],
                    request: Data, version: int, broker_epoch: int,
                    now_ms: int) -> tuple[list[MetadataRecord], Data]:
    """Validate a registration and write its records; ``broker_epoch`` is the offset the operation's
    first record will take.  The caller installs the session once the records are applied."""
    response = registration_api.RESPONSE.make()
    try:
        records = _registration_records(image, config, sessions, request, version, broker_epoch, now_ms)
    except KafkaError as refused:
        response.error_code = refused.error.code
        return [], response
    response.broker_epoch = records[-1].data.broker_epoch
    return records, response


def _registration_records(image: MetadataImage, config: ControllerConfig, sessions: dict[int, BrokerSession],
                          request: Data, version: int, broker_epoch: int, now_ms: int) -> list[MetadataRecord]:
    if request.cluster_id != config.cluster_id:
        raise KafkaError(INCONSISTENT_CLUSTER_ID,
                         f"Expected cluster ID {config.cluster_id}, but got cluster ID {request.cluster_id}")
    broker_id = request.broker_id
    incarnation = uuid_text(request.incarnation_id)
    existing = image.brokers.get(broker_id)
    if (existing is not None and existing.incarnation_id != incarnation
            and has_valid_session(image, sessions, broker_id, now_ms, config.broker_session_timeout_ms)):
        raise KafkaError(DUPLICATE_BROKER_REGISTRATION, "Another broker is registered with that broker id. If "
                         "the broker was recently restarted this should self-resolve once the heartbeat "
                         "manager expires the broker's session.")
    if request.is_migrating_zk_broker:
        raise KafkaError(BROKER_ID_NOT_REGISTERED, "Controller does not support registering ZK brokers.")
    log_dirs = _checked_log_dirs(image, broker_id, request.log_dirs if version >= 2 else [])
    features = _checked_features(image, request.features)
    record_fields = dict(
        broker_id=broker_id, incarnation_id=incarnation, rack=request.rack, log_dirs=log_dirs,
        end_points=[ENDPOINT.make(name=listener.name, host=listener.host, port=listener.port,
                                  security_protocol=listener.security_protocol) for listener in request.listeners],
        features=features)
    records: list[MetadataRecord] = []
    if existing is None or existing.incarnation_id != incarnation:
        previous_epoch = request.previous_broker_epoch if version >= 3 else -1
        clean = existing is not None and existing.broker_epoch == previous_epoch
        records += shutdown_records(image, config, broker_id, clean)
        records.append(make("RegisterBrokerRecord", broker_epoch=broker_epoch, fenced=True, **record_fields))
    else:  # the same process registering again: an amendment, same epoch, same state
        records.append(make("RegisterBrokerRecord", broker_epoch=existing.broker_epoch, fenced=existing.fenced,
                            in_controlled_shutdown=existing.in_controlled_shutdown, **record_fields))
    return records


def _checked_log_dirs(image: MetadataImage, broker_id: int, requested: list[uuid.UUID]) -> list[str]:
    log_dirs = [uuid_text(directory) for directory in requested]
    if not log_dirs:
        raise KafkaError(INVALID_REGISTRATION, "No directories specified in request")
    if any(_is_reserved_directory(directory) for directory in log_dirs):
        raise KafkaError(INVALID_REGISTRATION, "Reserved directory ID in request")
    if len(set(log_dirs)) != len(log_dirs):
        raise KafkaError(INVALID_REGISTRATION, "Duplicate directory ID in request")
    for other in image.brokers.values():
        if other.broker_id != broker_id:
            for directory in log_dirs:
                if directory in other.log_dirs:
                    raise KafkaError(INVALID_REGISTRATION,
                                     f"Broker {other.broker_id} is already registered with directory {directory}")
    return log_dirs


def _is_reserved_directory(text: str) -> bool:
    return uuid_from_text(text).int < RESERVED_DIRECTORY_IDS


def _unsupported(name: str, finalized: int, low: int, high: int) -> KafkaError:
    return KafkaError(Errors.UNSUPPORTED_VERSION, f"Unable to register because the broker does not support "
                      f"finalized version {finalized} of {name}. The broker wants a version between {low} and "
                      f"{high}, inclusive.")


def _checked_features(image: MetadataImage, requested: list[Data]) -> list[Data]:
    """``processRegistrationFeature`` for each announced feature, then the unannounced ones."""
    features = []
    for feature in requested:
        default = 1 if feature.name == METADATA_VERSION_FEATURE else 0
        finalized = image.features.get(feature.name, default)
        if not feature.min_supported_version <= finalized <= feature.max_supported_version:
            raise _unsupported(feature.name, finalized, feature.min_supported_version, feature.max_supported_version)
        features.append(BROKER_FEATURE.make(name=feature.name, min_supported_version=feature.min_supported_version,
                                            max_supported_version=feature.max_supported_version))
    announced = {feature.name for feature in requested}
    if METADATA_VERSION_FEATURE not in announced:
        raise KafkaError(INVALID_REGISTRATION, "Request features do not contain 'metadata.version'")
    for name, level in image.features.items():
        if name not in announced and level != 0:
            raise _unsupported(name, level, 0, 0)
    return features


# -- BrokerHeartbeat (63) ---------------------------------------------------------------------------------


def heartbeat(image: MetadataImage, config: ControllerConfig, sessions: dict[int, BrokerSession],
              request: Data, register_offset: int,
              now_ms: int) -> tuple[list[MetadataRecord], Data, BrokerControlState | None]:
    """Process one heartbeat: (records, response, the broker's next state or None if refused).

    Updates the broker's session (contact time, replayed offset); ``register_offset`` is the offset
    of the broker's RegisterBrokerRecord."""
    response = heartbeat_api.RESPONSE.make()
    try:
        check_broker_epoch(image, request.broker_id, request.broker_epoch)
    except KafkaError as refused:
        response.error_code = refused.error.code
        return [], response, None
    broker_id = request.broker_id
    session = sessions.setdefault(broker_id, BrokerSession(now_ms))
    current = current_state(image, sessions, broker_id)
    lowest = lowest_active_offset(image, sessions)
    replayed = session.controlled_shutdown_offset >= 0 and (lowest is None
                                                            or session.controlled_shutdown_offset <= lowest)
    caught_up = request.current_metadata_offset >= register_offset
    target = next_state(current, want_fence=request.want_fence, want_shut_down=request.want_shut_down,
                        caught_up=caught_up, leads_partitions=has_leaderships(image, broker_id),
                        shutdown_offset_replayed=replayed)
    records: list[MetadataRecord] = []
    if target is not current:
        if target.fenced:
            records = fence_records(image, config, broker_id)
        elif target is BrokerControlState.UNFENCED:
            records = unfence_records(image, config, broker_id)
        else:
            records = controlled_shutdown_records(image, config, broker_id)
    session.last_contact_ms = now_ms
    session.metadata_offset = request.current_metadata_offset
    response.is_caught_up = caught_up
    response.is_fenced = target.fenced
    response.should_shut_down = target.should_shut_down
    return records, response, target
