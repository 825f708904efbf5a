"""Speak any API at any version through refka's own codec, for the raw conformance probes.

Theory of operation
-------------------
:mod:`conformance.raw` hand-writes a few requests at a few versions.  The newer probes
(``test_requests``, ``test_topic_ids``) instead build requests from the message declarations in
``reference.protocol.messages`` (the same codec :mod:`conformance.fuzz` uses), so that one probe can
run at *every* version both sides support instead of one hand-picked version:

* :func:`versions` is the intersection of what the broker advertises in ApiVersions and what the
  codec declares, optionally from a first version (the one that introduced the feature probed).
  An empty intersection skips the test with a reason naming the API and the range missing.
* :class:`Speaker` owns one :class:`conformance.raw.Connection`; :meth:`Speaker.call` sends a
  request body (a :class:`~reference.protocol.schema.Data` built with :func:`body`) through
  :func:`conformance.raw.call` -- request header v1 or v2 as the version's flexibility demands --
  and decodes the answer at the same version.  A closed connection raises
  :class:`conformance.raw.ConnectionClosed`, as in the rest of the suite.

Field names are the codec's: Kafka's JSON names in snake_case (``ErrorMessage`` ->
``error_message``).  Nested values are built with :func:`item` from the struct's Kafka name.
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance import raw
from conformance.capabilities import API_NAMES, Capabilities
from reference.protocol.apis import API_BY_KEY, Api
from reference.protocol.schema import Data


def api(api_key: int) -> Api:
    return API_BY_KEY[api_key]


def versions(capabilities: Capabilities, api_key: int, first: int = 0, last: int | None = None) -> list[int]:
    """Every version of ``api_key`` from ``first`` (to ``last``) that the broker advertises and the
    codec declares; skips the test when there is none."""
    advertised = capabilities.api_versions.apis.get(api_key)
    declared = api(api_key).request.valid
    spoken: list[int] = []
    if advertised is not None:
        top = advertised.max_version if last is None else min(last, advertised.max_version)
        spoken = [v for v in range(max(first, advertised.min_version), top + 1) if v in declared]
    if not spoken:
        name = API_NAMES.get(api_key, api(api_key).name)
        theirs = "nothing" if advertised is None else f"v{advertised.min_version}-v{advertised.max_version}"
        wanted = f"v{first}+" if last is None else f"v{first}-v{last}"
        pytest.skip(f"broker advertises {theirs} of {name}; the probe needs {wanted} ({declared} declared)")
    return spoken


def body(api_key: int, **fields: Any) -> Data:
    """A request body of ``api_key``: the given fields, the others at their declared defaults."""
    return api(api_key).request.make(**fields)


def item(api_key: int, struct_name: str, **fields: Any) -> Data:
    """One element of a nested request struct, named as Kafka names it (``CreatableTopic``)."""
    return api(api_key).request.struct(struct_name).make(**fields)


class Speaker:
    """One connection to one broker (:class:`conformance.raw.Connection`), answering requests in
    order (Kafka's per-connection rule), spoken through :func:`conformance.raw.call`."""

    def __init__(self, address: str, timeout: float = 30.0) -> None:
        self.conn = raw.Connection.to(address.strip(), timeout)

    def __enter__(self) -> Speaker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()

    def call(self, api_key: int, version: int, request: Data) -> Data:
        answer: Data = raw.call(self.conn, api_key, version, request)
        return answer


def bootstrap_speaker(bootstrap: str) -> Speaker:
    return Speaker(bootstrap.split(",")[0])
