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
* **DescribeConfigs** on the broker resource gives intervals the slow tests depend on (retention
  check interval, log cleaner backoff) so that a test whose wait budget is shorter than the
  broker's own schedule skips with that reason instead of failing.

A test that needs something the target lacks calls :meth:`Capabilities.require_api` or
:meth:`Capabilities.require_brokers`, which skip with a reason naming what is missing.
"""

from __future__ import annotations

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
        capabilities.broker_configs = _broker_configs(bootstrap, min(cluster.brokers))
        return capabilities
    raise RuntimeError(f"no bootstrap broker answered: {'; '.join(errors)}")


def _broker_configs(bootstrap: str, broker_id: int) -> dict[str, str]:
    """Broker-level configs through DescribeConfigs (empty when the broker does not serve it)."""
    try:
        from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
        try:
            response = admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, str(broker_id))],
                                              config_filter="all")
            entries = response.get("broker", {}).get(str(broker_id), {})
            return {name: str(entry.get("value")) for name, entry in entries.items()}
        finally:
            admin.close()
    except Exception:  # discovery is best effort: tests that need a value skip without it
        return {}
