"""ApiVersions (18): tell the client which versions of which APIs this broker serves.

The advertised ranges are the table ``SUPPORTED_VERSIONS`` in ``handlers/__init__.py``.  The
feature flags of KIP-584 (``metadata.version`` and friends) belong to KRaft; a single reference
node advertises none, which clients read as "no finalized features" (and so, for a Java producer,
transaction version 1: EndTxn below v5, AddPartitionsToTxn for every partition).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import Errors
from ...protocol.apis import API_BY_KEY
from ...protocol.frames import Request
from ...protocol.schema import Data

if TYPE_CHECKING:
    from ..core import Broker

API = API_BY_KEY[18]


def api_versions_body(broker: Broker, error: int = Errors.NONE.code) -> Data:
    entry = API.response.struct("ApiVersion")
    keys = [
        entry.make(api_key=key, min_version=low, max_version=high)
        for key, (low, high) in sorted(broker.supported_versions.items())
        if broker.serves(key)
    ]
    return API.response.make(error_code=error, api_keys=keys)


def handle_api_versions(broker: Broker, request: Request, now_ms: int) -> Data:
    return api_versions_body(broker)
