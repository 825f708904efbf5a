"""The feature levels refka supports (KIP-584): what a refka broker announces and finalizes.

A KRaft cluster *finalizes* one level per feature (FeatureLevelRecord); a broker registers the
range of levels it supports for each feature it knows, and the controller refuses a broker that
cannot run at a finalized level (UNSUPPORTED_VERSION) or that does not announce
``metadata.version`` (INVALID_REGISTRATION).  A new cluster is bootstrapped at Kafka's default
level of each feature, capped at what refka supports, so a refka cluster never finalizes a feature
its brokers do not implement:

==================================  =========  =====================================================
feature                             supported  meaning of the highest level
==================================  =========  =====================================================
``metadata.version``                7 - 30     30 is 4.3-IV0, the metadata format refka writes
``kraft.version``                   0          a static voter set (``controller.quorum.voters``)
``eligible.leader.replicas.version`` 0 - 1     KIP-966 eligible leader replicas
``group.version``                   0          only the classic group protocol (no KIP-848)
``transaction.version``             0 - 2      2: KIP-890 part 2 -- Produce v12 adds the partition
                                               to the transaction itself, EndTxn v5 bumps the
                                               producer epoch at the end of every transaction
``share.version``                   0          no share groups (KIP-932)
``streams.version``                 0          no streams groups (KIP-1071)
==================================  =========  =====================================================

Kafka 4.3.1 supports ``kraft.version`` 0-1, ``group.version``, ``share.version`` and
``streams.version`` 0-1 and finalizes every one of them but ``kraft.version`` at 1 on a new
cluster; refka stays at 0 for those, which the Java clients read as "use the classic protocols".

What ApiVersions (v3+) says about features, as Kafka's ``ApiVersionManager`` builds it:

* **supported** -- :func:`advertised_supported_features`: the features whose highest supported
  level is above 0 (Kafka's ``BrokerFeatures.defaultSupportedFeatures`` leaves out a feature it
  supports only at level 0, so refka's ``group.version`` is absent rather than ``0-0``);
* **finalized** -- :class:`FinalizedFeatures`: in a cluster the levels of the node's published
  metadata image, plus ``kraft.version`` from the Raft layer (always 0 here, a static voter set);
  a level 0 is not finalized and is not listed;
* **epoch** -- the offset of the last record of that image
  (``MetadataImage.highestOffsetAndEpoch().offset``), so it grows with every committed metadata
  record, not only with feature changes; -1 while no image has been published.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from .controller_config import ELR_FEATURE
from .metadata_records import METADATA_VERSION, METADATA_VERSION_FEATURE

if TYPE_CHECKING:
    from .image import MetadataImage

SUPPORTED_FEATURES: Final[dict[str, tuple[int, int]]] = {
    "metadata.version": (7, 30),
    "kraft.version": (0, 0),
    "eligible.leader.replicas.version": (0, 1),
    "group.version": (0, 0),
    "transaction.version": (0, 2),
    "share.version": (0, 0),
    "streams.version": (0, 0),
}

# The features Kafka 4.3.1 finalizes by default on a new cluster at metadata.version 4.3-IV0
# (Feature.defaultLevel; kraft.version belongs to the Raft layer's own records).  Capped by
# supported_level() before anything is finalized.
DEFAULT_FEATURE_LEVELS: Final[dict[str, int]] = {
    "group.version": 1,  # GroupVersion.GV_1: the new consumer group protocol (KIP-848)
    "share.version": 1,  # ShareVersion.SV_1: share groups (KIP-932)
    "streams.version": 1,  # StreamsVersion.SV_1: streams groups (KIP-1071)
    "transaction.version": 2,  # TransactionVersion.TV_2: transactions v2 (KIP-890)
}

NO_EPOCH: Final = -1  # ApiVersions' FinalizedFeaturesEpoch when no metadata image is known


def supported_level(name: str, wanted: int) -> int:
    """``wanted`` capped at the highest level refka supports (0 for a feature it does not know)."""
    low, high = SUPPORTED_FEATURES.get(name, (0, 0))
    return max(low, min(wanted, high))


def bootstrap_levels(eligible_leader_replicas_version: int) -> dict[str, int]:
    """The level of each feature a new refka cluster finalizes: ``metadata.version`` 4.3-IV0,
    Kafka 4.3.1's defaults and ELR at ``eligible_leader_replicas_version``, each capped at what
    refka supports (a level 0 means "not finalized")."""
    wanted = {METADATA_VERSION_FEATURE: METADATA_VERSION, **DEFAULT_FEATURE_LEVELS,
              ELR_FEATURE: eligible_leader_replicas_version}
    return {name: supported_level(name, level) for name, level in wanted.items()}


def advertised_supported_features() -> dict[str, tuple[int, int]]:
    """The supported ranges ApiVersions lists: those whose highest level is above 0."""
    return {name: (low, high) for name, (low, high) in SUPPORTED_FEATURES.items() if high > 0}


@dataclass(frozen=True)
class FinalizedFeatures:
    """The finalized feature levels a broker advertises, and the epoch that dates them.

    ``levels`` holds only levels above 0 (Kafka drops a finalized level 0 from ApiVersions).
    """

    levels: Mapping[str, int] = field(default_factory=dict)
    epoch: int = NO_EPOCH

    @classmethod
    def of(cls, levels: Mapping[str, int], epoch: int) -> FinalizedFeatures:
        return cls({name: level for name, level in levels.items() if level > 0}, epoch)


UNKNOWN_FEATURES: Final = FinalizedFeatures()  # before a KRaft broker has published an image


def finalized_features(image: MetadataImage) -> FinalizedFeatures:
    """What a KRaft broker advertises from its published ``image`` (Kafka's
    ``KRaftMetadataCache.features()``): the image's finalized levels, ``kraft.version`` 0 (refka's
    voter set is static, so it adds nothing), dated by the offset of the image's last record."""
    return FinalizedFeatures.of(image.features, image.offset)
