"""The feature levels refka supports (KIP-584): what a refka broker announces when it registers.

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
``transaction.version``             0          no transactions yet
``share.version``                   0          no share groups (KIP-932)
``streams.version``                 0          no streams groups (KIP-1071)
==================================  =========  =====================================================
"""

from __future__ import annotations

from typing import Final

SUPPORTED_FEATURES: Final[dict[str, tuple[int, int]]] = {
    "metadata.version": (7, 30),
    "kraft.version": (0, 0),
    "eligible.leader.replicas.version": (0, 1),
    "group.version": (0, 0),
    "transaction.version": (0, 0),
    "share.version": (0, 0),
    "streams.version": (0, 0),
}


def supported_level(name: str, wanted: int) -> int:
    """``wanted`` capped at the highest level refka supports (0 for a feature it does not know)."""
    low, high = SUPPORTED_FEATURES.get(name, (0, 0))
    return max(low, min(wanted, high))
