"""Per-topic log configuration: the subset of Kafka's ``LogConfig`` the partition log obeys.

Every field carries Kafka's topic-level key (``segment.bytes``) and Kafka's default; the broker-level
``log.``-prefixed keys (``log.segment.bytes``) feed the same fields.  :meth:`LogConfig.from_properties`
turns a ``{"segment.bytes": "1024"}`` mapping into a config, so the broker can pass what a
CreateTopics or AlterConfigs request carried.

What is deliberately absent: ``preallocate`` (refka never preallocates segment or index files, so
an index file's length is always exactly its entries), ``segment.jitter.ms`` (no jitter: a simulator
wants deterministic rolls), message-format and compression keys (the validator's business, not the
log's), and the tiered-storage keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

# Kafka's "never" for flush.messages / flush.ms and max.compaction.lag.ms is Long.MAX_VALUE.
LONG_MAX = (1 << 63) - 1

CLEANUP_POLICY_DELETE = "delete"
CLEANUP_POLICY_COMPACT = "compact"


@dataclass(frozen=True)
class LogConfig:
    """The knobs of one partition log, named after Kafka's topic config keys (dots become underscores)."""

    segment_bytes: int = 1024 * 1024 * 1024  # segment.bytes: roll when the active segment would exceed it
    segment_ms: int = 7 * 24 * 60 * 60 * 1000  # segment.ms: roll when the active segment is this old
    segment_index_bytes: int = 10 * 1024 * 1024  # segment.index.bytes: max size of .index/.timeindex
    index_interval_bytes: int = 4096  # index.interval.bytes: bytes between sparse index entries
    retention_ms: int = 7 * 24 * 60 * 60 * 1000  # retention.ms: -1 keeps forever
    retention_bytes: int = -1  # retention.bytes: -1 means no size limit
    cleanup_policy: frozenset[str] = frozenset({CLEANUP_POLICY_DELETE})  # cleanup.policy
    delete_retention_ms: int = 24 * 60 * 60 * 1000  # delete.retention.ms: how long tombstones survive
    min_cleanable_dirty_ratio: float = 0.5  # min.cleanable.dirty.ratio
    min_compaction_lag_ms: int = 0  # min.compaction.lag.ms
    flush_messages: int = LONG_MAX  # flush.messages: fsync after this many unflushed messages
    flush_ms: int = LONG_MAX  # flush.ms: fsync when the last flush is this old
    max_message_bytes: int = 1048588  # max.message.bytes: checked by the validator, kept here for it
    producer_id_expiration_ms: int = 24 * 60 * 60 * 1000  # producer.id.expiration.ms (broker key, KIP-854)

    @property
    def delete_enabled(self) -> bool:
        """``cleanup.policy`` contains ``delete``: retention.ms / retention.bytes apply."""
        return CLEANUP_POLICY_DELETE in self.cleanup_policy

    @property
    def compact_enabled(self) -> bool:
        """``cleanup.policy`` contains ``compact``: the cleaner keeps the newest record per key."""
        return CLEANUP_POLICY_COMPACT in self.cleanup_policy

    @property
    def max_offset_index_entries(self) -> int:
        return self.segment_index_bytes // 8

    @property
    def max_time_index_entries(self) -> int:
        return self.segment_index_bytes // 12

    @classmethod
    def from_properties(cls, properties: Mapping[str, str], base: LogConfig | None = None) -> LogConfig:
        """A config from Kafka-style keys (``segment.bytes`` or ``log.segment.bytes``); unknown keys are
        ignored (they belong to other components); a malformed value raises ``ValueError``."""
        known = {field.name: field for field in fields(cls)}
        changes: dict[str, object] = {}
        for key, raw in properties.items():
            name = key.removeprefix("log.").replace(".", "_")
            if name not in known:
                continue
            if name == "cleanup_policy":
                policies = frozenset(part.strip() for part in raw.split(",") if part.strip())
                if not policies or not policies <= {CLEANUP_POLICY_DELETE, CLEANUP_POLICY_COMPACT}:
                    raise ValueError(f"invalid cleanup.policy {raw!r}")
                changes[name] = policies
            elif name == "min_cleanable_dirty_ratio":
                changes[name] = float(raw)
            else:
                changes[name] = int(raw)
        return replace(base or cls(), **changes)  # type: ignore[arg-type]
