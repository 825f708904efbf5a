"""ApiVersions' KIP-584 feature fields, through the broker's sans-IO core and a simulated cluster.

What Apache Kafka 4.3.1 answered (one combined node and each node of three, recorded live):
v3 lists only ``metadata.version`` 7-30 as supported, v4 every supported feature (ranges starting
at 0 too, KIP-1022); both list the finalized levels (min = max = the level, none at 0); the epoch
is the offset of the node's metadata image, the same on every node that has caught up.  refka
advertises the features it implements (``reference.controller.features``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference.broker.configs import BrokerConfig
from reference.broker.core import Broker
from reference.controller import metadata_records as mr
from reference.controller.features import SUPPORTED_FEATURES, finalized_features
from reference.controller.image import MetadataImage
from reference.controller.quorum_controller import ControllerConfig, QuorumController
from reference.node.publisher import MetadataPublisher
from reference.protocol.apis import API_BY_NAME
from reference.protocol.frames import decode_response, encode_request
from reference.protocol.schema import Data
from tests.reference.node.harness import SimulatedCluster
from tests.reference.node.test_kraft_node import create_topic

NOW_MS = 1_700_000_000_000
API = API_BY_NAME["ApiVersions"]
REFKA_SUPPORTED = {"eligible.leader.replicas.version": (0, 1), "metadata.version": (7, 30),
                   "transaction.version": (0, 2)}
SINGLE_NODE_FINALIZED = {"eligible.leader.replicas.version": 1, "metadata.version": 30, "transaction.version": 2}


def ask(broker: Broker, version: int) -> Data:
    """ApiVersions ``version`` as a client sends it, encoded and decoded with the wire codec."""
    body = API.request.make(client_software_name="refka-test", client_software_version="1")
    reply = broker.handle_frame(encode_request(API, version, 7, "test", body)[4:], NOW_MS)
    assert isinstance(reply, (bytes, bytearray))
    correlation_id, answer = decode_response(API, version, bytes(reply[4:]))
    assert correlation_id == 7 and answer.error_code == 0
    return answer


def supported(answer: Data) -> dict[str, tuple[int, int]]:
    return {feature.name: (feature.min_version, feature.max_version) for feature in answer.supported_features}


def finalized(answer: Data) -> dict[str, int]:
    levels = {}
    for feature in answer.finalized_features:
        assert feature.min_version_level == feature.max_version_level, "Kafka finalizes one level, min = max"
        levels[feature.name] = feature.max_version_level
    return levels


def single_node(tmp_path: Path, elr_enabled: bool = True) -> Broker:
    return Broker(BrokerConfig({"node.id": "1"}, elr_enabled=elr_enabled), tmp_path, NOW_MS)


# -- supported features ------------------------------------------------------------------------------


def test_v3_lists_only_supported_ranges_that_start_above_zero(tmp_path: Path) -> None:
    """KIP-1022: an older client reads a range starting at 0 as "unsupported", so v3 leaves those
    out; Kafka 4.3.1 answers v3 with metadata.version 7-30 alone."""
    assert supported(ask(single_node(tmp_path), 3)) == {"metadata.version": (7, 30)}


def test_v4_lists_every_feature_refka_implements_above_level_0(tmp_path: Path) -> None:
    """A feature refka serves only at level 0 (group.version: no KIP-848; kraft.version: static
    voters; share and streams groups) is left out, as Kafka leaves out a feature whose highest
    supported level is 0."""
    answer = supported(ask(single_node(tmp_path), 4))
    assert answer == REFKA_SUPPORTED
    assert not {"group.version", "kraft.version", "share.version", "streams.version"} & set(answer)
    assert SUPPORTED_FEATURES["group.version"] == (0, 0), "refka does not serve KIP-848 consumer groups"


# -- finalized features on a single node ---------------------------------------------------------------


@pytest.mark.parametrize("version", [3, 4])
def test_a_single_node_finalizes_a_fixed_table_at_epoch_0(tmp_path: Path, version: int) -> None:
    """No metadata log: what a one-node cluster would bootstrap (metadata.version 4.3-IV0,
    transaction version 2, ELR), listed whole in v3 too, dated 0."""
    answer = ask(single_node(tmp_path), version)
    assert finalized(answer) == SINGLE_NODE_FINALIZED
    assert answer.finalized_features_epoch == 0
    assert not answer.zk_migration_ready


def test_every_finalized_level_lies_inside_its_supported_range(tmp_path: Path) -> None:
    answer = ask(single_node(tmp_path), 4)
    ranges = supported(answer)
    for name, level in finalized(answer).items():
        low, high = ranges[name]
        assert low <= level <= high, f"{name} finalized at {level} outside {low}-{high}"


def test_a_single_node_without_elr_does_not_finalize_it(tmp_path: Path) -> None:
    answer = ask(single_node(tmp_path, elr_enabled=False), 4)
    assert finalized(answer) == {"metadata.version": 30, "transaction.version": 2}
    assert supported(answer)["eligible.leader.replicas.version"] == (0, 1), "still supported, just not finalized"


def test_a_single_node_finalizes_what_a_new_one_node_cluster_bootstraps(tmp_path: Path) -> None:
    """The fixed table and the controller's bootstrap follow one rule (Kafka's defaults capped at
    what refka implements), so the embedded broker and a refka cluster advertise the same levels."""
    controller = QuorumController(ControllerConfig(), MetadataImage())
    controller.bootstrap()
    assert finalized_features(controller.image).levels == SINGLE_NODE_FINALIZED
    assert finalized(ask(single_node(tmp_path), 4)) == SINGLE_NODE_FINALIZED


# -- finalized features in a KRaft cluster --------------------------------------------------------------


def kraft_broker(tmp_path: Path) -> Broker:
    config = BrokerConfig({"node.id": "1", "process.roles": "broker", "controller.quorum.voters": "1@127.0.0.1:9093"})
    return Broker(config, tmp_path, NOW_MS)


def test_a_kraft_broker_advertises_nothing_finalized_before_it_publishes_an_image(tmp_path: Path) -> None:
    answer = ask(kraft_broker(tmp_path), 4)
    assert supported(answer) == REFKA_SUPPORTED
    assert (finalized(answer), answer.finalized_features_epoch) == ({}, -1)


def test_a_kraft_broker_advertises_the_levels_and_offset_of_the_image_it_published(tmp_path: Path) -> None:
    """Kafka's ``KRaftMetadataCache.features()``: the published image's finalized levels, dated by
    the offset of its last record -- which any record moves, not only a FeatureLevelRecord; a
    level set to 0 is no longer finalized."""
    broker = kraft_broker(tmp_path)
    publisher = MetadataPublisher(broker)
    image = MetadataImage()
    for offset, (name, level) in enumerate([("metadata.version", 30), ("group.version", 1),
                                            ("transaction.version", 1)]):
        image.apply(mr.make("FeatureLevelRecord", name=name, feature_level=level), offset)
    image.apply(mr.make("NoOpRecord"), 3)
    assert (finalized(ask(broker, 4)), ask(broker, 4).finalized_features_epoch) == ({}, -1), "not published yet"
    publisher.publish(image, NOW_MS)
    answer = ask(broker, 3)
    assert finalized(answer) == {"metadata.version": 30, "group.version": 1, "transaction.version": 1}
    assert answer.finalized_features_epoch == 3
    image.apply(mr.make("FeatureLevelRecord", name="group.version", feature_level=0), 4)
    image.apply(mr.make("NoOpRecord"), 5)
    answer = ask(broker, 4)
    assert (finalized(answer), answer.finalized_features_epoch) == (
        {"metadata.version": 30, "group.version": 1, "transaction.version": 1}, 3), \
        "what was published, not the image being replayed since"
    publisher.publish(image, NOW_MS)
    answer = ask(broker, 4)
    assert (finalized(answer), answer.finalized_features_epoch) == ({"metadata.version": 30, "transaction.version": 1}, 5)


def test_every_node_of_a_cluster_advertises_its_bootstrapped_features_at_its_image_offset(tmp_path: Path) -> None:
    """Three combined nodes: each broker answers with the bootstrap's levels and the offset of
    its own published image, the same on all once they have caught up, growing with new records."""
    cluster = SimulatedCluster(tmp_path)

    def caught_up() -> bool:
        offsets = {node.image.offset for node in cluster.nodes.values()}
        return all(node.broker is not None and node.broker.finalized_features.epoch == node.image.offset >= 0
                   and len(node.image.brokers) == 3 for node in cluster.nodes.values()) and len(offsets) == 1

    cluster.run_until(caught_up)
    epochs = set()
    for node in cluster.nodes.values():
        assert node.broker is not None
        answer = ask(node.broker, 4)
        assert finalized(answer) == SINGLE_NODE_FINALIZED
        assert answer.finalized_features_epoch == node.image.offset
        epochs.add(answer.finalized_features_epoch)
    (first,) = epochs
    create_topic(cluster, via=1, name="orders", partitions=1, replication_factor=3)  # new metadata records
    cluster.run_until(lambda: caught_up() and cluster.nodes[0].image.offset > first)
    for node in cluster.nodes.values():
        assert node.broker is not None and ask(node.broker, 4).finalized_features_epoch > first
