"""The peers' own documented gaps, so the matrix can say which failures their authors already list.

A failure on a peer is either a deviation its authors document (kfake's ``skipped_features`` file
beside its sources; tansu's ``compat/*/FINDINGS.md`` sweep notes) or one they do not list.  Each
:class:`DocumentedGap` names one such entry, where it is written, and which of the suite's tests
fall inside it (a regular expression over ``module::test``, optionally also over the failure
message).  Only gaps that fall inside the suite's areas are listed; the wording is a summary, the
source says where to read the original.

A cause is flagged only when one entry covers every failure in it (a cause spanning many tests is
not explained by a gap that names one of them).  An entry flags a failure; it never hides one:
the cell still reads FAIL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KFAKE_SKIPPED = "kfake skipped_features (franz-go pkg/kfake, the pinned version)"
TANSU_LIBRDKAFKA = "tansu compat/librdkafka/FINDINGS.md (upstream, after 0.6.0)"
TANSU_FRANZ = "tansu compat/franz-go/FINDINGS.md (upstream, after 0.6.0)"


@dataclass(frozen=True)
class DocumentedGap:
    peer: str
    title: str
    source: str
    tests: str  # regex searched in "module::test"
    message: str = ""  # regex searched in the failure message; empty: any message

    def covers(self, peer: str, module: str, test: str, message: str) -> bool:
        return (peer == self.peer and re.search(self.tests, f"{module}::{test}") is not None
                and (not self.message or re.search(self.message, message) is not None))


GAPS = (
    # kfake: skipped_features lists what it deliberately leaves out.
    DocumentedGap("kfake", "Produce ErrorRecords (v8+): no per-record errors, validation at batch level only",
                  KFAKE_SKIPPED, r"test_compacted_topic_rejects_null_key"),
    DocumentedGap("kfake", "Produce: no timestamp range validation", KFAKE_SKIPPED, r"timestamp", r"timestamp"),
    DocumentedGap("kfake", "Fetch LastFetchedEpoch/DivergingEpoch: no log truncation detection",
                  KFAKE_SKIPPED, r"test_leader_epoch|test_stale_leader_epoch"),
    DocumentedGap("kfake", "Fetch PreferredReadReplica/Rack (KIP-392) not implemented", KFAKE_SKIPPED,
                  r"rack"),
    DocumentedGap("kfake", "JoinGroup: no initial rebalance delay", KFAKE_SKIPPED,
                  r"test_groups::.*rebalance", r"rebalance delay"),
    # tansu: the sweep notes of its upstream repository (open gaps, and those fixed after 0.6.0).
    DocumentedGap("tansu", "Produce does not reject keyless records on compacted topics (INVALID_RECORD)",
                  TANSU_LIBRDKAFKA, r"test_compacted_topic_rejects_null_key"),
    DocumentedGap("tansu", "ListOffsets by timestamp returns wrong or no offsets", TANSU_LIBRDKAFKA,
                  r"test_list_offsets_by_timestamp"),
    DocumentedGap("tansu", "CreatePartitions answers an empty topics array", TANSU_LIBRDKAFKA,
                  r"test_create_partitions"),
    DocumentedGap("tansu", "OffsetCommit metadata is not round-tripped by OffsetFetch", TANSU_LIBRDKAFKA,
                  r"test_commit_then_fetch_offsets", r"metadata"),
    DocumentedGap("tansu", "DescribeConfigs returns no config entries", TANSU_LIBRDKAFKA,
                  r"test_describe_and_alter_configs|test_time_retention|test_compaction_keeps", r"KeyError|no entr"),
    DocumentedGap("tansu", "CreateTopics with mixed valid/invalid configs: metadata never catches up", TANSU_LIBRDKAFKA,
                  r"test_invalid_topic_config", r"(?i)metadata"),
    DocumentedGap("tansu", "Group coordinator edge cases (extra rebalances, UNKNOWN_MEMBER_ID, commit error codes)",
                  TANSU_LIBRDKAFKA + "; " + TANSU_FRANZ,
                  r"test_groups::(test_rebalance|test_static|test_generation|test_leave|test_session_timeout)",
                  r"UNKNOWN_MEMBER_ID|\b25\b|(?i:rebalance)"),
    DocumentedGap("tansu", "Aborted transactional records visible to read_committed consumers", TANSU_FRANZ,
                  r"test_transactions::test_(read_committed_sees_only|open_transaction_holds_back)"),
    DocumentedGap("tansu", "max.message.bytes is not enforced on Produce (MESSAGE_TOO_LARGE)", TANSU_FRANZ,
                  r"test_message_too_large"),
    DocumentedGap("tansu", "Fetch inside a batch skipped that batch (fixed upstream after 0.6.0)", TANSU_FRANZ,
                  r"test_fetch_from_middle_of_batch"),
)


def documented_gap(peer: str, module: str, test: str, message: str) -> DocumentedGap | None:
    """The first documented gap of ``peer`` that covers this failure, if any."""
    return next((gap for gap in GAPS if gap.covers(peer, module, test, message)), None)


def gap_covering_all(peer: str, rows: list[tuple[str, str, str]], message: str) -> DocumentedGap | None:
    """The first documented gap of ``peer`` that covers every (module, test, client) row, if any."""
    return next((gap for gap in GAPS if rows and all(gap.covers(peer, module, test, message)
                                                     for module, test, _client in rows)), None)
