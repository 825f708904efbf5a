"""Request handlers: one function per API, and the versions of each that the broker advertises.

A handler has the signature ``handler(broker, request, now_ms) -> reply`` where ``request`` is a
decoded :class:`~reference.protocol.frames.Request` (``request.body`` holds the fields,
``request.version`` the API version) and the reply is a response body (``Data``), a
:class:`~reference.broker.pending.Pending` that completes with one, or
:data:`~reference.broker.core.NO_RESPONSE`.  A handler reports per-topic or per-partition errors
inside its response body, as Kafka does; it raises only for bugs.

``SUPPORTED_VERSIONS`` is what ApiVersions advertises.  The ranges are Apache Kafka 4.3's, so that
every client negotiates what it would negotiate with Kafka, with one deliberate quirk copied from
Kafka: Produce is advertised from v0 although v0-v2 (message format v0/v1) were removed in Kafka 4,
because librdkafka up to 2.11 enables compression only when the range includes v0 (KAFKA-18659).
A Produce v0-v2 request is then refused like any version the schemas do not declare.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import api_versions, configs, groups, metadata, partitions, producer_ids, topics, transactions

if TYPE_CHECKING:
    from ..core import Handler

HANDLERS: dict[int, Handler] = {
    0: partitions.handle_produce,
    1: partitions.handle_fetch,
    2: partitions.handle_list_offsets,
    3: metadata.handle_metadata,
    8: groups.handle_offset_commit,
    9: groups.handle_offset_fetch,
    10: groups.handle_find_coordinator,
    11: groups.handle_join_group,
    12: groups.handle_heartbeat,
    13: groups.handle_leave_group,
    14: groups.handle_sync_group,
    15: groups.handle_describe_groups,
    16: groups.handle_list_groups,
    18: api_versions.handle_api_versions,
    21: partitions.handle_delete_records,
    22: producer_ids.handle_init_producer_id,
    23: partitions.handle_offset_for_leader_epoch,
    42: groups.handle_delete_groups,
    47: groups.handle_offset_delete,
    # -- topic administration --
    19: topics.handle_create_topics,
    20: topics.handle_delete_topics,
    37: topics.handle_create_partitions,
    60: topics.handle_describe_cluster,
    # -- transactions --
    24: transactions.handle_add_partitions_to_txn,
    25: transactions.handle_add_offsets_to_txn,
    26: transactions.handle_end_txn,
    27: transactions.handle_write_txn_markers,
    28: transactions.handle_txn_offset_commit,
    61: transactions.handle_describe_producers,
    65: transactions.handle_describe_transactions,
    66: transactions.handle_list_transactions,
    # -- configs --
    32: configs.handle_describe_configs,
    33: configs.handle_alter_configs,
    44: configs.handle_incremental_alter_configs,
}

# API key -> (lowest, highest) version advertised in ApiVersions.
SUPPORTED_VERSIONS: dict[int, tuple[int, int]] = {
    0: (0, 13),  # Produce: v0-v2 advertised but refused, see above
    1: (4, 18),  # Fetch
    2: (1, 11),  # ListOffsets
    3: (0, 13),  # Metadata
    8: (2, 10),  # OffsetCommit
    9: (1, 10),  # OffsetFetch
    10: (0, 6),  # FindCoordinator
    11: (0, 9),  # JoinGroup
    12: (0, 4),  # Heartbeat
    13: (0, 5),  # LeaveGroup
    14: (0, 5),  # SyncGroup
    15: (0, 6),  # DescribeGroups
    16: (0, 5),  # ListGroups
    18: (0, 4),  # ApiVersions
    19: (2, 7),  # CreateTopics
    20: (1, 6),  # DeleteTopics
    21: (0, 2),  # DeleteRecords
    22: (0, 5),  # InitProducerId
    23: (2, 4),  # OffsetForLeaderEpoch
    24: (0, 5),  # AddPartitionsToTxn (v4+: broker to coordinator, KIP-890)
    25: (0, 4),  # AddOffsetsToTxn
    26: (0, 5),  # EndTxn (v5: transaction version 2)
    27: (1, 2),  # WriteTxnMarkers
    28: (0, 5),  # TxnOffsetCommit
    32: (1, 4),  # DescribeConfigs
    33: (0, 2),  # AlterConfigs
    37: (0, 3),  # CreatePartitions
    42: (0, 2),  # DeleteGroups
    44: (0, 1),  # IncrementalAlterConfigs
    47: (0, 0),  # OffsetDelete
    60: (0, 2),  # DescribeCluster
    61: (0, 0),  # DescribeProducers
    65: (0, 0),  # DescribeTransactions
    66: (0, 2),  # ListTransactions
}
