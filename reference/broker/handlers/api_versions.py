"""ApiVersions (18): tell the client which versions of which APIs this broker serves.

The advertised ranges are the table ``SUPPORTED_VERSIONS`` in ``handlers/__init__.py``.  The
feature flags of KIP-584 (``metadata.version`` and friends) belong to KRaft; a single reference
node advertises none, which clients read as "no finalized features" (and so, for a Java producer,
transaction version 1: EndTxn below v5, AddPartitionsToTxn for every partition).

KIP-511 rules: from v3 the request names the client software and its version, each matching
``[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?``; otherwise INVALID_REQUEST (42) with no API listed.
A version this broker does not serve is answered by the frame server (``core.py``) in the v0
layout with UNSUPPORTED_VERSION (35) and ApiVersions' own range alone.
"""

from __future__ import annotations

import re
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
    return api_versions_body(broker)
