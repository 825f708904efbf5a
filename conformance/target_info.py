"""What a report records about the run: the target's ApiVersions and cluster id, and the clients.

``refka conform`` writes :func:`describe_run` as ``target.json`` beside ``results.json`` before the
suite starts, so a reader of the report knows which broker answered (its cluster id, broker count
and the API version ranges it advertised) and which client libraries spoke to it.  The peer matrix
(:mod:`conformance.report_peers`) puts the ApiVersions ranges of all brokers side by side.

The cluster id comes from Metadata v4 (KIP-78 added ``cluster_id`` in v2): the request asks for no
topics, and the response is read up to ``cluster_id`` and ``controller_id``.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import shutil
import subprocess
from typing import Any

from conformance import raw
from conformance.capabilities import API_NAMES

METADATA_VERSION = 4


def cluster_identity(conn: raw.Connection) -> dict[str, Any]:
    """Metadata v4 with an empty topic list: broker count, cluster id, controller id."""
    body = raw.Writer().int32(0).boolean(False).bytes()  # topics: [] (none), allow_auto_topic_creation
    reader = conn.request(raw.METADATA, METADATA_VERSION, body, flexible=False)
    reader.int32()  # throttle_time_ms
    brokers = reader.array_length()
    for _ in range(max(brokers, 0)):
        reader.int32(), reader.string(), reader.int32(), reader.string()  # node_id, host, port, rack
    return {"brokers": brokers, "cluster_id": reader.string(), "controller_id": reader.int32()}


def describe_target(bootstrap: str) -> dict[str, Any]:
    """ApiVersions v0 and the Metadata identity of the first bootstrap address that answers; on no
    answer, ``{"error": ...}`` (the liveness check then reports every test as not run)."""
    problems = []
    for address in (a.strip() for a in bootstrap.split(",") if a.strip()):
        try:
            with raw.Connection.to(address, timeout=5) as conn:
                versions = raw.api_versions(conn, 0)
                identity = cluster_identity(conn)
        except (OSError, raw.ConnectionClosed, AssertionError) as problem:
            problems.append(f"{address}: {problem!r}")
            continue
        apis = {str(key): {"name": API_NAMES.get(key, f"api {key}"), "min": r.min_version, "max": r.max_version}
                for key, r in sorted(versions.apis.items())}
        return {"address": address, "api_versions_error": versions.error_code, "api_versions": apis, **identity}
    return {"error": "; ".join(problems)}


def _module_version(module: str, attribute: str = "__version__") -> str | None:
    try:
        return str(getattr(importlib.import_module(module), attribute))
    except (ImportError, AttributeError):
        return None


def client_versions() -> dict[str, str | None]:
    """Each client library's version (None when not installed); librdkafka twice, as linked by
    confluent-kafka and by kcat, since the two may differ."""
    versions: dict[str, str | None] = {"kafka-python": _module_version("kafka"),
                                       "aiokafka": _module_version("aiokafka")}
    with contextlib.suppress(ImportError):
        import confluent_kafka

        versions["confluent-kafka"] = _module_version("confluent_kafka")
        versions["librdkafka (confluent-kafka)"] = str(confluent_kafka.libversion()[0])
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            text = subprocess.run([kcat, "-V"], capture_output=True, text=True, timeout=10).stdout
            found = re.search(r"Version (\S+) .*?librdkafka (\S+)", text)
            versions["kcat"] = found.group(1) if found else None
            versions["librdkafka (kcat)"] = found.group(2) if found else None
    return versions


def describe_run(bootstrap: str) -> dict[str, Any]:
    return {"target": describe_target(bootstrap), "clients": client_versions()}
