"""A KRaft node: the broker and the controller roles of one process, without sockets or clocks.

Theory of operation
-------------------
Mirrors Kafka's ``KafkaRaftServer``, which runs a ``ControllerServer`` and a ``BrokerServer`` side
by side over one ``KafkaRaftManager``.  A refka node is assembled from sans-IO parts, each with its
own module:

* the **Raft layer** (:mod:`reference.controller.raft`) replicates ``__cluster_metadata`` among the
  voters; this node is its listener: each committed batch is replayed into the node's committed
  :class:`~reference.controller.image.MetadataImage`;
* the **controller role** (:mod:`reference.node.controller_role`) serves the controller listener
  and, while this node leads the quorum, decides as the active controller;
* the **broker role** is refka's :class:`~reference.broker.core.Broker` in KRaft mode: its view of
  the cluster is the image (:class:`~reference.broker.cluster_view.ImageView`), what changes
  metadata is forwarded to the active controller (:mod:`reference.node.forwarder`), committed
  changes are acted on by the publisher (:mod:`reference.node.publisher`), and it registers and
  heartbeats (:mod:`reference.node.broker_lifecycle`).

Four outboxes leave the node, each sent over connections of its own, as Kafka keeps the Raft
client's channel apart from the broker-to-controller channel, the replica fetchers and the
transaction coordinator's channels:

* the *quorum plane* (Vote, Fetch of ``__cluster_metadata``, BeginQuorumEpoch, ...) and
* the *controller plane* (registration, heartbeats, AlterPartition, forwarded requests) both reach
  voters on their controller listener (``controller.quorum.voters``);
* the *broker plane* (follower fetches) and the *transaction plane* (WriteTxnMarkers, a leader's
  AddPartitionsToTxn verification) reach brokers on the inter-broker listener they registered.

Sharing one connection would deadlock or stall: a listener answers a connection's requests in
order, and a BrokerRegistration waits for its records to commit, which needs the follower's Fetch
queued behind it on that same connection; a transaction's marker or verification queued behind a
follower's parked Fetch would wait out ``replica.fetch.wait.max.ms``.

Snapshots (KIP-630, Kafka's ``SnapshotGenerator``): after a committed batch is applied, once the
committed record bytes since the latest snapshot reach
``metadata.log.max.record.bytes.between.snapshots`` or ``metadata.log.max.snapshot.interval.ms`` has
passed since it, the node writes its image
(:meth:`~reference.controller.image.MetadataImage.to_records`) as a snapshot ending after that batch.
Loading a snapshot (at start, or one fetched from the leader) rebuilds the image and resets both
counters.  The log before a snapshot is not deleted here (Kafka's ``metadata.max.retention.*``).

Time enters through :meth:`KRaftNode.poll` and every request; :meth:`KRaftNode.next_deadline` says
when to call ``poll`` next.  Storage must be formatted first: ``meta.properties`` in the log
directory names the cluster id (``refka cluster start`` writes it, as ``kafka-storage format``
does for Kafka).

Roles (``process.roles``): a combined node (``broker,controller``) has all of the above; a
controller-only node is a voter with no broker role (``broker`` is None, its listener serves only
the controller APIs); a broker-only node is not in ``controller.quorum.voters`` and its Raft layer
runs as an *observer* (rule 10 of :mod:`reference.controller.raft`): it replicates the metadata
log from the leader without voting, and has no controller role.
"""

from __future__ import annotations

import base64
import logging
import random
import uuid
from collections.abc import Mapping
from pathlib import Path

from .. import durability
from ..broker.cluster_view import ImageView
from ..broker.configs import BrokerConfig
from ..broker.core import Broker, FrameServer, Reply
from ..broker.pending import Pending
from ..client.outbox import Outbox
from ..controller.controller_config import ControllerConfig
from ..controller.features import SUPPORTED_FEATURES
from ..controller.image import MetadataImage
from ..controller.metadata_records import decode_record, encode_record
from ..controller.raft import RaftConfig, RaftNode
from ..controller.snapshot import CommittedBatch, SnapshotReader
from ..errors import Errors
from ..protocol.apis import API_BY_KEY
from ..protocol.frames import Request
from ..protocol.primitives import random_uuid_string
from ..protocol.schema import Data
from .broker_lifecycle import BrokerLifecycleManager, BrokerState, RegistrationInfo
from .config import NodeConfig, NodeConfigError, node_config
from .controller_role import CONTROLLER_APIS, QUORUM_APIS, ControllerRole
from .forwarder import ControllerForwarder
from .producer_id_blocks import ControllerProducerIdBlocks
from .publisher import MetadataPublisher

log = logging.getLogger("refka.node")

META_PROPERTIES = "meta.properties"


def read_meta_properties(log_dir: Path) -> dict[str, str]:
    """``meta.properties`` as formatting wrote it: cluster.id, node.id, directory.id (KIP-858)."""
    meta = log_dir / META_PROPERTIES
    if not meta.exists():
        raise NodeConfigError(f"{log_dir} is not formatted: {META_PROPERTIES} is missing "
                              "(refka cluster start formats it)")
    properties = dict(line.split("=", 1) for line in meta.read_text().splitlines() if "=" in line and line[0] != "#")
    if "cluster.id" not in properties or "directory.id" not in properties:
        raise NodeConfigError(f"{meta} lacks cluster.id or directory.id")
    return {key.strip(): value.strip() for key, value in properties.items()}


def format_log_dir(log_dir: Path, cluster_id: str, node_id: int) -> None:
    """Kafka's ``kafka-storage format`` for one log directory: ``meta.properties`` v1 with the
    cluster id, the node id and a random directory id (Kafka's Uuid text, never a reserved one)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    meta = log_dir / META_PROPERTIES
    if not meta.exists():
        with open(meta, "w", encoding="utf-8") as out:
            out.write(f"version=1\ncluster.id={cluster_id}\nnode.id={node_id}\ndirectory.id={random_uuid_string()}\n")
            out.flush()
            durability.fsync(out)  # Kafka's storage tool fsyncs it: a node cannot start without it
        durability.fsync_directory(log_dir)


def raft_config(config: BrokerConfig) -> RaftConfig:
    return RaftConfig(
        election_timeout_ms=config.get_int("controller.quorum.election.timeout.ms"),
        fetch_timeout_ms=config.get_int("controller.quorum.fetch.timeout.ms"),
        election_backoff_max_ms=config.get_int("controller.quorum.election.backoff.max.ms"),
        request_timeout_ms=config.get_int("controller.quorum.request.timeout.ms"),
        retry_backoff_ms=config.get_int("controller.quorum.retry.backoff.ms"),
    )


class KRaftNode:
    """One KRaft node (see the module docstring)."""

    def __init__(self, settings: Mapping[str, str], now_ms: int, rng: random.Random | None = None) -> None:
        self.settings = dict(settings)
        self.node: NodeConfig = node_config(self.settings)
        self.node_id = self.node.node_id
        self.config = BrokerConfig(self.settings)
        log_dirs = self.config.get_list("log.dirs") or self.config.get_list("log.dir")
        self.data_dir = Path(self.settings.get("metadata.log.dir") or log_dirs[0])
        meta = read_meta_properties(self.data_dir)
        self.cluster_id = meta["cluster.id"]
        self.directory_id = uuid.UUID(bytes=base64.urlsafe_b64decode(meta["directory.id"] + "=="))
        self.now_ms = now_ms
        self.image = MetadataImage()  # the committed metadata, replayed from the log
        self.raft_outbox = Outbox()  # the quorum's own requests: Vote, Fetch, BeginQuorumEpoch, ...
        self.controller_outbox = Outbox()  # a broker's requests to the active controller
        self.controller: ControllerRole | None = None
        self.broker: Broker | None = None
        self.lifecycle: BrokerLifecycleManager | None = None
        self.forwarder: ControllerForwarder | None = None
        self.publisher: MetadataPublisher | None = None
        self.snapshot_max_bytes = self.config.get_long("metadata.log.max.record.bytes.between.snapshots")
        self.snapshot_max_interval_ms = self.config.get_long("metadata.log.max.snapshot.interval.ms")
        self.bytes_since_snapshot = 0  # committed record bytes not in the latest snapshot
        self.last_snapshot_ms = now_ms
        self._caught_up = False  # see _metadata_caught_up
        voters = {voter.node_id: (voter.host, voter.port) for voter in self.node.voters}
        self.rng = rng
        self.snapshots_loaded = 0  # by this incarnation: at start (from its files) or fetched from the leader
        self.raft = RaftNode(self.node_id, voters, self.data_dir, self.cluster_id, self.raft_outbox,
                             now_ms, raft_config(self.config), listener=self, rng=rng)
        if self.node.is_controller:
            from ..controller.quorum_controller import QuorumController

            controller_config = ControllerConfig.from_properties(self.settings, cluster_id=self.cluster_id)
            self.controller = ControllerRole(self.raft, controller_config, lambda: self.image, QuorumController)
        if self.node.is_broker:
            self._start_broker(now_ms)
        self._publish_on_commit = True

    def _start_broker(self, now_ms: int) -> None:
        broker = Broker(self.config, self.data_dir, now_ms)
        if (rng := self.rng) is not None:  # a simulation: group member ids from the run's Random, so a seed replays
            broker.groups.coordinator.member_id_suffix = lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4))
        listener_name = self.node.inter_broker_listener_name or self.node.broker_listeners[0].name
        broker.cluster = ImageView(lambda: self.image, listener_name)
        self.forwarder = ControllerForwarder(self.controller_outbox, self.active_controller)
        broker.forwarder = self.forwarder
        broker.supported_versions = {**broker.supported_versions, **self.forwarder.forwarded_only_versions}
        self.publisher = MetadataPublisher(broker)
        # The replica manager's requests to the controller (AlterPartition) take the controller
        # plane; follower fetches stay on the broker plane (broker.outbox).
        broker.replicas.controller_id = self.active_controller
        broker.replicas.alter_partition.outbox = self.controller_outbox
        broker.replicas.replica_eligible = self._isr_eligible
        broker.producer_ids.block_source = ControllerProducerIdBlocks(
            self.node_id, lambda: broker.replicas.broker_epoch, self.active_controller, self.controller_outbox)
        self.broker = broker

    def start_lifecycle(self, listeners: list[tuple[str, str, int]], now_ms: int) -> None:
        """Once the broker's listeners are bound (ports known), begin registering."""
        assert self.broker is not None
        info = RegistrationInfo(
            broker_id=self.node_id, cluster_id=self.cluster_id, listeners=listeners,
            rack=self.config.get("broker.rack"),
            features=dict(SUPPORTED_FEATURES),
            log_dir_ids=[self.directory_id],
            previous_broker_epoch=self.broker.replicas.directory.previous_broker_epoch,
        )
        self.lifecycle = BrokerLifecycleManager(info, self.controller_outbox, self.active_controller,
                                                lambda: self.image.offset,
                                                self.config.get_int("broker.heartbeat.interval.ms"), now_ms)
        self.lifecycle.on_state_change = self._on_broker_state

    def _on_broker_state(self, state: BrokerState) -> None:
        """The broker epoch of the latest registration goes with every AlterPartition and follower fetch."""
        assert self.broker is not None and self.lifecycle is not None
        self.broker.replicas.broker_epoch = self.lifecycle.broker_epoch

    def _isr_eligible(self, broker_id: int) -> bool:
        """Kafka's ``isReplicaIsrEligible``: registered, unfenced, not in controlled shutdown."""
        registration = self.image.brokers.get(broker_id)
        return registration is not None and not registration.fenced and not registration.in_controlled_shutdown

    # -- who leads ---------------------------------------------------------------------------------------

    def active_controller(self) -> int | None:
        return self.raft.leader_id

    # -- the Raft listener ----------------------------------------------------------------------------------

    def handle_commit(self, batch: CommittedBatch) -> None:
        for index, value in enumerate(batch.records):
            self.image.apply(decode_record(value), batch.base_offset + index)
        self.bytes_since_snapshot += sum(len(value) for value in batch.records)
        if self.publisher is not None and self._metadata_caught_up(batch.last_offset + 1):
            self.publisher.publish(self.image, self.now_ms)
        if self.controller is not None:
            self.controller.on_commit(self.now_ms)
        # The Raft layer's delivered end moves past this batch only once this call returns.
        self._maybe_snapshot(batch.last_offset + 1)

    def _maybe_snapshot(self, end_offset: int) -> None:
        """Write the image as the snapshot ending at ``end_offset`` (the end of the last applied batch)
        when a limit is reached; not inside a metadata transaction, whose end is not committed yet."""
        due_by_time = (self.snapshot_max_interval_ms > 0
                       and self.now_ms - self.last_snapshot_ms >= self.snapshot_max_interval_ms)
        due_by_bytes = self.bytes_since_snapshot >= self.snapshot_max_bytes
        if not (due_by_bytes or due_by_time) or self.image.in_transaction:
            return
        records = [encode_record(record) for record in self.image.to_records()]
        snapshot_id = self.raft.create_snapshot(end_offset, records, self.now_ms)
        log.info("node %d wrote snapshot %s (%d bytes since the last)", self.node_id, snapshot_id,
                 self.bytes_since_snapshot)
        self.bytes_since_snapshot, self.last_snapshot_ms = 0, self.now_ms

    def handle_load_snapshot(self, reader: SnapshotReader) -> None:
        """The image becomes the snapshot's: its records replayed (at their offsets in the file), then
        the image's offset set to the last one the snapshot covers, so the log after it follows."""
        self.snapshots_loaded += 1
        self.image = MetadataImage()
        for batch in reader.batches:
            for index, value in enumerate(batch.records):
                self.image.apply(decode_record(value), batch.base_offset + index)
        self.image.offset = reader.snapshot_id.end_offset - 1
        self.bytes_since_snapshot, self.last_snapshot_ms = 0, self.now_ms
        if self.publisher is not None and self._metadata_caught_up(reader.snapshot_id.end_offset):
            self.publisher.publish(self.image, self.now_ms)

    def _maybe_finish_catching_up(self) -> None:
        """The last committed batches may be control batches (a LeaderChange), never handed to
        ``handle_commit``: once everything below the HW is delivered, the image has caught up."""
        if (not self._caught_up and self.publisher is not None
                and self._metadata_caught_up(self.raft.delivered_end_offset)):
            self.publisher.publish(self.image, self.now_ms)

    def _metadata_caught_up(self, end_offset: int) -> bool:
        """Kafka's ``MetadataLoader`` publishes nothing while it is catching up: not until the image
        has reached the high watermark learnt from a quorum leader once.  A restarted broker replays its whole metadata log;
        publishing each intermediate image would act on stale decisions -- e.g. make itself leader
        in an old leader epoch and write that epoch into its leader epoch cache over newer ones, so
        that its next fetch truncates committed records (found by ``refka sim``)."""
        if not self._caught_up and self.raft.high_watermark_known and end_offset >= self.raft.high_watermark \
                and self._registration_replayed(end_offset):
            self._caught_up = True
        return self._caught_up

    def _registration_replayed(self, end_offset: int) -> bool:
        """After an unclean shutdown a broker also waits for its own registration to be replayed
        (Kafka's ``initialCatchUpFuture``): the controller's answer to it -- KIP-966, leaving the
        ISR, the ELR and any leadership -- must be in the first image it acts on, not a stale image
        in which it still leads with a log that a power loss cut short (found by ``refka sim``'s
        power loss: the restarted leader served its shorter log, and its followers truncated
        acknowledged records to match).  Kafka waits after every start; refka only when the log
        directory has no clean-shutdown marker, where the logs may have lost a tail."""
        lifecycle = self.lifecycle
        if lifecycle is None or self.broker is None or self.broker.replicas.directory.had_clean_shutdown:
            return True
        return lifecycle.broker_epoch >= 0 and end_offset > lifecycle.broker_epoch

    def handle_leader_change(self, leader_id: int | None, epoch: int) -> None:
        if self.controller is not None:
            self.controller.on_leader_change(leader_id, epoch)

    # -- requests ------------------------------------------------------------------------------------------

    def handle_controller_request(self, api_key: int, version: int, body: Data, now_ms: int) -> Data | Pending:
        self.now_ms = now_ms
        if api_key in QUORUM_APIS:
            return self.raft.handle_request(api_key, version, body, now_ms)
        assert self.controller is not None
        return self.controller.handle(api_key, version, body, now_ms)

    # -- time ----------------------------------------------------------------------------------------------

    def poll(self, now_ms: int) -> None:
        self.now_ms = now_ms
        self.raft.poll(now_ms)
        self._maybe_finish_catching_up()
        if self.controller is not None:
            self.controller.on_commit(now_ms)
            self.controller.poll(now_ms)
        if self.lifecycle is not None:
            self.lifecycle.poll(now_ms)
        if self.forwarder is not None:
            self.forwarder.poll(now_ms)
        if self.broker is not None:
            self.broker.poll(now_ms)

    def next_deadline(self) -> int | None:
        parts = [self.raft.next_deadline()]
        if not self._caught_up and self.raft.high_watermark_known \
                and self.raft.delivered_end_offset >= self.raft.high_watermark:
            parts.append(self.now_ms)  # poll now: the image is ready to publish
        if self.controller is not None:
            parts.append(self.controller.next_deadline())
        if self.lifecycle is not None:
            parts.append(self.lifecycle.next_deadline())
        if self.forwarder is not None:
            parts.append(self.forwarder.next_deadline())
        if self.broker is not None:
            parts.append(self.broker.next_deadline())
        return min((deadline for deadline in parts if deadline is not None), default=None)

    @property
    def broker_state(self) -> BrokerState | None:
        return self.lifecycle.state if self.lifecycle is not None else None

    def shutdown(self) -> None:
        if self.broker is not None:
            self.broker.shutdown()
        self.raft.close()


class ControllerApis(FrameServer):
    """The controller listener of a node: Kafka's ``ControllerApis``.  It serves ApiVersions, the
    quorum APIs and the controller APIs, in the version ranges refka declares."""

    def __init__(self, node: KRaftNode) -> None:
        self.node = node
        served = {18} | set(QUORUM_APIS) | (set(CONTROLLER_APIS) if node.controller is not None else set())
        self.supported_versions = {}
        for key in sorted(served):
            valid = API_BY_KEY[key].request.valid
            self.supported_versions[key] = (valid.low, valid.high if valid.high is not None else valid.low)

    def serves(self, api_key: int) -> bool:
        return api_key in self.supported_versions

    def serve(self, request: Request, now_ms: int) -> Reply:
        if request.header.api_key == 18:
            return self.api_versions_body()
        return self.node.handle_controller_request(request.header.api_key, request.version, request.body, now_ms)

    def api_versions_body(self, error: int = Errors.NONE.code) -> Data:
        api = API_BY_KEY[18]
        entry = api.response.struct("ApiVersion")
        return api.response.make(error_code=error, api_keys=[
            entry.make(api_key=key, min_version=low, max_version=high)
            for key, (low, high) in sorted(self.supported_versions.items())])
