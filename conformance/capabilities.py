"""What the target broker can do, discovered from the broker itself.

Theory of operation
-------------------
The suite never asks a broker its name.  It asks what any Kafka client asks:

* **ApiVersions** (key 18, v0: every broker must answer it, KIP-35) gives the API keys and version
  ranges the broker serves.  Transactions need InitProducerId (22), AddPartitionsToTxn (24),
  AddOffsetsToTxn (25), EndTxn (26) and TxnOffsetCommit (28); the idempotent producer needs
  InitProducerId; admin tests need CreateTopics (19), DeleteTopics (20), DescribeConfigs (32),
  AlterConfigs (33) / IncrementalAlterConfigs (44) and CreatePartitions (37).
* **Metadata** (key 3) gives the number of live brokers, which gates the multi-node tests.
* **DescribeConfigs** on the broker resource (raw, at a version chosen from ApiVersions) gives
  intervals the slow tests depend on (retention check interval, log cleaner backoff) so that a test
  whose wait budget is shorter than the broker's own schedule skips with that reason instead of
  failing.  A broker that refuses DescribeConfigs fails those tests as a setup failure.

A test that needs something the target lacks calls :meth:`Capabilities.require_api` or
:meth:`Capabilities.require_brokers`, which skip with a reason naming what is missing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import pytest

from conformance import raw

TRANSACTION_APIS = {22: "InitProducerId", 24: "AddPartitionsToTxn", 25: "AddOffsetsToTxn", 26: "EndTxn",
                    28: "TxnOffsetCommit"}
API_NAMES = {0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit", 9: "OffsetFetch",
             10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat", 13: "LeaveGroup", 14: "SyncGroup",
             15: "DescribeGroups", 18: "ApiVersions", 19: "CreateTopics", 20: "DeleteTopics", 21: "DeleteRecords",
             22: "InitProducerId", 32: "DescribeConfigs", 33: "AlterConfigs", 37: "CreatePartitions",
             43: "ElectLeaders", 44: "IncrementalAlterConfigs", 45: "AlterPartitionReassignments"}


@dataclass
class Capabilities:
    bootstrap: str
    api_versions: raw.ApiVersionsResult
    broker_count: int
    broker_addresses: dict[int, str]
    broker_configs: dict[str, str] = field(default_factory=dict)
    broker_configs_error: str | None = None  # why DescribeConfigs of the broker gave nothing, if it failed

    @property
    def transactions(self) -> bool:
        return all(self.api_versions.supports(key) for key in TRANSACTION_APIS)

    def require_api(self, api_key: int, version: int | None = None) -> None:
        if not self.api_versions.supports(api_key, version):
            name = API_NAMES.get(api_key, f"API {api_key}")
            at = "" if version is None else f" v{version}"
            pytest.skip(f"broker does not advertise {name}{at}")

    def require_brokers(self, count: int) -> None:
        if self.broker_count < count:
            pytest.skip(f"needs {count} brokers, target has {self.broker_count}")

    def require_transactions(self) -> None:
        missing = [name for key, name in TRANSACTION_APIS.items() if not self.api_versions.supports(key)]
        if missing:
            pytest.skip(f"broker does not advertise transaction APIs: {', '.join(missing)}")

    def broker_config_ms(self, name: str) -> int | None:
        """A broker config in ms from DescribeConfigs; None when the broker does not report it.  A
        broker that refused DescribeConfigs fails the asking test as a setup failure instead."""
        if self.broker_configs_error is not None:
            raise raw.SetupFailed(f"reading broker config {name}: {self.broker_configs_error}")
        value = self.broker_configs.get(name)
        return int(value) if value is not None and value.lstrip("-").isdigit() else None


def discover(bootstrap: str) -> Capabilities:
    """Ask the first reachable bootstrap broker for its API versions and the cluster's brokers."""
    errors = []
    for address in bootstrap.split(","):
        try:
            with raw.Connection.to(address.strip(), timeout=10) as conn:
                versions = raw.api_versions(conn, 0)
                cluster = raw.metadata(conn, topics=[])
        except (OSError, raw.ConnectionClosed) as error:
            errors.append(f"{address}: {error}")
            continue
        addresses = {node_id: f"{b.host}:{b.port}" for node_id, b in cluster.brokers.items()}
        capabilities = Capabilities(bootstrap, versions, len(cluster.brokers), addresses)
        first = min(cluster.brokers)  # a broker describes its own configs (Kafka refuses other ids)
        capabilities.broker_configs, capabilities.broker_configs_error = _broker_configs(addresses[first], first)
        return capabilities
    raise RuntimeError(f"no bootstrap broker answered: {'; '.join(errors)}")


def _broker_configs(address: str, broker_id: int) -> tuple[dict[str, str], str | None]:
    """Broker-level configs through a raw DescribeConfigs, and why they are missing if they are:
    empty with no reason when the broker does not serve DescribeConfigs (tests needing a value
    skip), empty with the broker's answer when it refused or the answer could not be read."""
    version = None
    try:
        with raw.Connection.to(address, timeout=10) as conn:
            version = raw.negotiate(raw.api_versions(conn, 0), raw.DESCRIBE_CONFIGS)
            if version is None:
                return {}, None
            described = raw.describe_configs(conn, raw.BROKER_RESOURCE, str(broker_id), version)
    except (OSError, raw.ConnectionClosed, struct.error, UnicodeDecodeError) as unreadable:
        return {}, f"DescribeConfigs v{version} of broker {broker_id} at {address}: no readable answer ({unreadable!r})"
    if described.error.error_code != 0:
        return {}, f"DescribeConfigs v{version} of broker {broker_id} answered {described.error}"
    return {name: str(entry.value) for name, entry in described.entries.items()}, None
