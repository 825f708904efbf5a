"""ApiVersions (18): tell the client which versions of which APIs, and which features, this broker serves.

The advertised ranges are the table ``SUPPORTED_VERSIONS`` in ``handlers/__init__.py``.

KIP-511 rules: from v3 the request names the client software and its version, each matching
``[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?``; otherwise INVALID_REQUEST (42) with no API listed.
A version this broker does not serve is answered by the frame server (``core.py``) in the v0
layout with UNSUPPORTED_VERSION (35) and ApiVersions' own range alone.

Features (KIP-584, fields of v3+)
---------------------------------
The answer also carries three feature fields, built as Kafka's ``ApiVersionManager`` builds them
(the rules and refka's levels are in :mod:`reference.controller.features`):

* ``SupportedFeatures``: each feature refka implements above level 0, with its range
  (``metadata.version`` 7-30, ``eligible.leader.replicas.version`` 0-1, ``transaction.version``
  0-2).  KIP-1022: a v3 client may read a range starting at 0 as "not supported", so **v3 omits
  every range whose minimum is 0** and v4 lists them all.
* ``FinalizedFeatures``: the level each feature runs at (min = max = that level), levels 0 left
  out.  Both versions list them all, also those whose supported range v3 omitted.
* ``FinalizedFeaturesEpoch``: the metadata offset the finalized levels were read at.  Clients
  compare it between brokers to keep the newest answer (the Java producer re-reads
  ``transaction.version`` when it grows).

Where the finalized levels come from (``Broker.finalized_features``):

* **In a KRaft cluster** from the node's metadata image, each time the node publishes it
  (:mod:`reference.node.publisher`): the image's FeatureLevelRecords, dated by the image's offset,
  as Kafka's ``KRaftMetadataCache.features()``.  Before the first publication the broker knows
  none: an empty list and epoch -1.
* **On a single embedded node** there is no metadata log, so the levels are a fixed table: what a
  one-node refka cluster would finalize at bootstrap, which is what a one-node combined-mode Kafka
  4.3.1 finalizes wherever refka implements the level -- ``metadata.version`` 30 (4.3-IV0),
  ``transaction.version`` 2, ``eligible.leader.replicas.version`` 1 unless the broker was made
  without ELR (``BrokerConfig(elr_enabled=False)``), and no ``group.version``, ``share.version``,
  ``streams.version`` (Kafka finalizes them at 1; refka serves none of KIP-848, -932, -1071).  Its
  epoch is :data:`SINGLE_NODE_FEATURES_EPOCH`, 0: the table is "finalized" when the node starts and
  never changes, and 0 is the smallest epoch that still says "known" (-1 means unknown).

What a Java producer does with this: ``transaction.version`` >= 2 switches it to transactions v2
(KIP-890 part 2): Produce v12 without AddPartitionsToTxn, EndTxn v5 with an epoch bump per
transaction, both served here (``handlers/partitions.py``, ``handlers/transactions.py``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ...controller.features import (
    UNKNOWN_FEATURES,
    FinalizedFeatures,
    advertised_supported_features,
    bootstrap_levels,
)
from ...errors import Errors
from ...protocol.apis import API_BY_KEY
from ...protocol.frames import Request
from ...protocol.schema import Data

if TYPE_CHECKING:
    from ..configs import BrokerConfig
    from ..core import Broker

API = API_BY_KEY[18]

FEATURES_FROM = 3  # the first ApiVersions version with feature fields (KIP-584)
ZERO_MIN_FEATURES_FROM = 4  # KIP-1022: the first version that lists supported ranges starting at 0
SINGLE_NODE_FEATURES_EPOCH = 0


def initial_features(config: BrokerConfig, kraft_mode: bool) -> FinalizedFeatures:
    """The finalized features a broker advertises when it starts: the fixed single-node table, or
    none in KRaft mode (the node's metadata publisher sets them from each image it publishes)."""
    if kraft_mode:
        return UNKNOWN_FEATURES
    return FinalizedFeatures.of(bootstrap_levels(1 if config.elr_enabled else 0), SINGLE_NODE_FEATURES_EPOCH)


def api_versions_body(broker: Broker, error: int = Errors.NONE.code, version: int = 0) -> Data:
    """The answer to ApiVersions ``version`` (the feature fields matter from v3 on)."""
    entry = API.response.struct("ApiVersion")
    keys = [
        entry.make(api_key=key, min_version=low, max_version=high)
        for key, (low, high) in sorted(broker.supported_versions.items())
        if broker.serves(key)
    ]
    body = API.response.make(error_code=error, api_keys=keys)
    if version >= FEATURES_FROM:
        _add_features(body, broker.finalized_features, version)
    return body


def _add_features(body: Data, finalized: FinalizedFeatures, version: int) -> None:
    supported_key = API.response.struct("SupportedFeatureKey")
    finalized_key = API.response.struct("FinalizedFeatureKey")
    body.supported_features = [
        supported_key.make(name=name, min_version=low, max_version=high)
        for name, (low, high) in sorted(advertised_supported_features().items())
        # KIP-1022: a v3 reader takes min 0 for "unsupported"; such ranges wait for v4.
        if low > 0 or version >= ZERO_MIN_FEATURES_FROM
    ]
    body.finalized_features = [
        finalized_key.make(name=name, min_version_level=level, max_version_level=level)
        for name, level in sorted(finalized.levels.items())
    ]
    body.finalized_features_epoch = finalized.epoch


# KIP-511: what a client may call itself (ApiVersionsRequest.isValid): letters and digits, with
# dots and dashes inside, never empty.
CLIENT_SOFTWARE = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?")


def handle_api_versions(broker: Broker, request: Request, now_ms: int) -> Data:
    body = request.body
    if request.version >= 3 and not all(
            CLIENT_SOFTWARE.fullmatch(value or "") for value in (body.client_software_name,
                                                                 body.client_software_version)):
        # Kafka refuses the request and lists no APIs at all.
        return API.response.make(error_code=Errors.INVALID_REQUEST.code, api_keys=[])
    return api_versions_body(broker, version=request.version)
