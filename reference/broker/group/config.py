"""The broker settings the group coordinator reads, with Kafka's names and defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class GroupCoordinatorConfig:
    """Field ``x_y_z`` is Kafka's ``x.y.z`` (``GroupCoordinatorConfig``); defaults are Kafka 4.x's."""

    group_min_session_timeout_ms: int = 6_000
    group_max_session_timeout_ms: int = 1_800_000
    group_initial_rebalance_delay_ms: int = 3_000
    group_max_size: int = INT32_MAX
    offset_metadata_max_bytes: int = 4_096
    offsets_retention_minutes: int = 7 * 24 * 60
    offsets_retention_check_interval_ms: int = 600_000
    offsets_topic_num_partitions: int = 50
    offsets_topic_replication_factor: int = 3  # used when a cluster creates the topic
    offsets_commit_timeout_ms: int = 5_000  # how long a write may wait to be committed
    # Not configurable in Kafka (CLASSIC_GROUP_NEW_MEMBER_JOIN_TIMEOUT_MS): how long a brand-new
    # member's parked JoinGroup may wait before the member is dropped.
    group_new_member_join_timeout_ms: int = 5 * 60 * 1_000

    @property
    def offsets_retention_ms(self) -> int:
        return self.offsets_retention_minutes * 60 * 1_000

    @classmethod
    def from_properties(cls, properties: Mapping[str, str]) -> GroupCoordinatorConfig:
        """Read the dotted Kafka keys this coordinator knows from ``properties``; ignore the rest."""
        known = {field.name.replace("_", "."): field.name for field in fields(cls)}
        values = {known[key]: int(value) for key, value in properties.items() if key in known}
        return cls(**values)
