"""The one registry of Kafka error codes, shared by broker, client and conformance suite.

Theory of operation
-------------------
Every Kafka response carries errors as an int16 ``error_code``.  The numbers, their names and
whether a client may simply retry are fixed by Apache Kafka (``org.apache.kafka.common.protocol.
Errors``); the names here are Kafka's own, so a reader can grep Kafka's source for them.

"Retriable" follows Kafka's exception hierarchy: an error whose Java exception extends
``RetriableException`` (for example ``NOT_LEADER_OR_FOLLOWER``, ``NOT_ENOUGH_REPLICAS``,
``CORRUPT_MESSAGE``) may be retried by a client without any change of state on its side.

Two exception classes carry codes inside refka:

* :class:`KafkaError` is raised by broker logic ("the request is wrong in this Kafka-defined way")
  and turned into an ``error_code`` at the response boundary.
* :class:`KafkaProtocolError` is not raised here; decoders raise their own typed errors
  (see ``reference.protocol.primitives.DecodeError``) which the network boundary maps to a closed
  connection, as Kafka does for a frame it cannot parse.

Invariants
----------
* Codes are unique and names are unique; ``by_code`` and ``by_name`` are inverse.
* ``NONE`` is 0 and is the only code that means success.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorCode:
    """One Kafka error: its wire number, Kafka's name for it and whether clients retry it."""

    code: int
    name: str
    retriable: bool

    def __int__(self) -> int:
        return self.code

    def __str__(self) -> str:
        return f"{self.name}({self.code})"


# (code, name, retriable), in code order.  Source of the facts: Kafka's Errors enum and the
# exception each entry names.
_TABLE: tuple[tuple[int, str, bool], ...] = (
    (-1, "UNKNOWN_SERVER_ERROR", False),
    (0, "NONE", False),
    (1, "OFFSET_OUT_OF_RANGE", False),
    (2, "CORRUPT_MESSAGE", True),
    (3, "UNKNOWN_TOPIC_OR_PARTITION", True),
    (4, "INVALID_FETCH_SIZE", False),
    (5, "LEADER_NOT_AVAILABLE", True),
    (6, "NOT_LEADER_OR_FOLLOWER", True),
    (7, "REQUEST_TIMED_OUT", True),
    (8, "BROKER_NOT_AVAILABLE", False),
    (9, "REPLICA_NOT_AVAILABLE", True),
    (10, "MESSAGE_TOO_LARGE", False),
    (11, "STALE_CONTROLLER_EPOCH", False),
    (12, "OFFSET_METADATA_TOO_LARGE", False),
    (13, "NETWORK_EXCEPTION", True),
    (14, "COORDINATOR_LOAD_IN_PROGRESS", True),
    (15, "COORDINATOR_NOT_AVAILABLE", True),
    (16, "NOT_COORDINATOR", True),
    (17, "INVALID_TOPIC_EXCEPTION", False),
    (18, "RECORD_LIST_TOO_LARGE", False),
    (19, "NOT_ENOUGH_REPLICAS", True),
    (20, "NOT_ENOUGH_REPLICAS_AFTER_APPEND", True),
    (21, "INVALID_REQUIRED_ACKS", False),
    (22, "ILLEGAL_GENERATION", False),
    (23, "INCONSISTENT_GROUP_PROTOCOL", False),
    (24, "INVALID_GROUP_ID", False),
    (25, "UNKNOWN_MEMBER_ID", False),
    (26, "INVALID_SESSION_TIMEOUT", False),
    (27, "REBALANCE_IN_PROGRESS", False),
    (28, "INVALID_COMMIT_OFFSET_SIZE", False),
    (29, "TOPIC_AUTHORIZATION_FAILED", False),
    (30, "GROUP_AUTHORIZATION_FAILED", False),
    (31, "CLUSTER_AUTHORIZATION_FAILED", False),
    (32, "INVALID_TIMESTAMP", False),
    (33, "UNSUPPORTED_SASL_MECHANISM", False),
    (34, "ILLEGAL_SASL_STATE", False),
    (35, "UNSUPPORTED_VERSION", False),
    (36, "TOPIC_ALREADY_EXISTS", False),
    (37, "INVALID_PARTITIONS", False),
    (38, "INVALID_REPLICATION_FACTOR", False),
    (39, "INVALID_REPLICA_ASSIGNMENT", False),
    (40, "INVALID_CONFIG", False),
    (41, "NOT_CONTROLLER", True),
    (42, "INVALID_REQUEST", False),
    (43, "UNSUPPORTED_FOR_MESSAGE_FORMAT", False),
    (44, "POLICY_VIOLATION", False),
    (45, "OUT_OF_ORDER_SEQUENCE_NUMBER", False),
    (46, "DUPLICATE_SEQUENCE_NUMBER", False),
    (47, "INVALID_PRODUCER_EPOCH", False),
    (48, "INVALID_TXN_STATE", False),
    (49, "INVALID_PRODUCER_ID_MAPPING", False),
    (50, "INVALID_TRANSACTION_TIMEOUT", False),
    (51, "CONCURRENT_TRANSACTIONS", True),
    (52, "TRANSACTION_COORDINATOR_FENCED", False),
    (53, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", False),
    (54, "SECURITY_DISABLED", False),
    (55, "OPERATION_NOT_ATTEMPTED", False),
    (56, "KAFKA_STORAGE_ERROR", True),
    (57, "LOG_DIR_NOT_FOUND", False),
    (58, "SASL_AUTHENTICATION_FAILED", False),
    (59, "UNKNOWN_PRODUCER_ID", False),
    (60, "REASSIGNMENT_IN_PROGRESS", False),
    (61, "DELEGATION_TOKEN_AUTH_DISABLED", False),
    (62, "DELEGATION_TOKEN_NOT_FOUND", False),
    (63, "DELEGATION_TOKEN_OWNER_MISMATCH", False),
    (64, "DELEGATION_TOKEN_REQUEST_NOT_ALLOWED", False),
    (65, "DELEGATION_TOKEN_AUTHORIZATION_FAILED", False),
    (66, "DELEGATION_TOKEN_EXPIRED", False),
    (67, "INVALID_PRINCIPAL_TYPE", False),
    (68, "NON_EMPTY_GROUP", False),
    (69, "GROUP_ID_NOT_FOUND", False),
    (70, "FETCH_SESSION_ID_NOT_FOUND", True),
    (71, "INVALID_FETCH_SESSION_EPOCH", True),
    (72, "LISTENER_NOT_FOUND", True),
    (73, "TOPIC_DELETION_DISABLED", False),
    (74, "FENCED_LEADER_EPOCH", True),
    (75, "UNKNOWN_LEADER_EPOCH", True),
    (76, "UNSUPPORTED_COMPRESSION_TYPE", False),
    (77, "STALE_BROKER_EPOCH", False),
    (78, "OFFSET_NOT_AVAILABLE", True),
    (79, "MEMBER_ID_REQUIRED", False),
    (80, "PREFERRED_LEADER_NOT_AVAILABLE", True),
    (81, "GROUP_MAX_SIZE_REACHED", False),
    (82, "FENCED_INSTANCE_ID", False),
    (83, "ELIGIBLE_LEADERS_NOT_AVAILABLE", True),
    (84, "ELECTION_NOT_NEEDED", True),
    (85, "NO_REASSIGNMENT_IN_PROGRESS", False),
    (86, "GROUP_SUBSCRIBED_TO_TOPIC", False),
    (87, "INVALID_RECORD", False),
    (88, "UNSTABLE_OFFSET_COMMIT", True),
    (89, "THROTTLING_QUOTA_EXCEEDED", True),
    (90, "PRODUCER_FENCED", False),
    (91, "RESOURCE_NOT_FOUND", False),
    (92, "DUPLICATE_RESOURCE", False),
    (93, "UNACCEPTABLE_CREDENTIAL", False),
    (94, "INCONSISTENT_VOTER_SET", False),
    (95, "INVALID_UPDATE_VERSION", False),
    (96, "FEATURE_UPDATE_FAILED", False),
    (97, "PRINCIPAL_DESERIALIZATION_FAILURE", False),
    (98, "SNAPSHOT_NOT_FOUND", False),
    (99, "POSITION_OUT_OF_RANGE", False),
    (100, "UNKNOWN_TOPIC_ID", True),
    (101, "DUPLICATE_BROKER_REGISTRATION", False),
    (102, "BROKER_ID_NOT_REGISTERED", False),
    (103, "INCONSISTENT_TOPIC_ID", True),
    (104, "INCONSISTENT_CLUSTER_ID", False),
    (105, "TRANSACTIONAL_ID_NOT_FOUND", False),
    (106, "FETCH_SESSION_TOPIC_ID_ERROR", True),
    (107, "INELIGIBLE_REPLICA", False),
    (108, "NEW_LEADER_ELECTED", False),
    (109, "OFFSET_MOVED_TO_TIERED_STORAGE", False),
    (110, "FENCED_MEMBER_EPOCH", False),
    (111, "UNRELEASED_INSTANCE_ID", False),
    (112, "UNSUPPORTED_ASSIGNOR", False),
    (113, "STALE_MEMBER_EPOCH", False),
    (114, "MISMATCHED_ENDPOINT_TYPE", False),
    (115, "UNSUPPORTED_ENDPOINT_TYPE", False),
    (116, "UNKNOWN_CONTROLLER_ID", False),
    (117, "UNKNOWN_SUBSCRIPTION_ID", False),
    (118, "TELEMETRY_TOO_LARGE", False),
    (119, "INVALID_REGISTRATION", False),
    (120, "TRANSACTION_ABORTABLE", False),
)

by_code: dict[int, ErrorCode] = {code: ErrorCode(code, name, retriable) for code, name, retriable in _TABLE}
by_name: dict[str, ErrorCode] = {error.name: error for error in by_code.values()}


def lookup(code: int) -> ErrorCode:
    """The registry entry for ``code``; an unknown code maps to a synthetic non-retriable entry."""
    found = by_code.get(code)
    if found is None:
        return ErrorCode(code, f"UNKNOWN_ERROR_CODE_{code}", False)
    return found


class Errors:
    """Attribute access to the registry: ``Errors.NOT_LEADER_OR_FOLLOWER.code == 6``."""

    UNKNOWN_SERVER_ERROR = by_name["UNKNOWN_SERVER_ERROR"]
    NONE = by_name["NONE"]
    OFFSET_OUT_OF_RANGE = by_name["OFFSET_OUT_OF_RANGE"]
    CORRUPT_MESSAGE = by_name["CORRUPT_MESSAGE"]
    UNKNOWN_TOPIC_OR_PARTITION = by_name["UNKNOWN_TOPIC_OR_PARTITION"]
    INVALID_FETCH_SIZE = by_name["INVALID_FETCH_SIZE"]
    LEADER_NOT_AVAILABLE = by_name["LEADER_NOT_AVAILABLE"]
    NOT_LEADER_OR_FOLLOWER = by_name["NOT_LEADER_OR_FOLLOWER"]
    REQUEST_TIMED_OUT = by_name["REQUEST_TIMED_OUT"]
    BROKER_NOT_AVAILABLE = by_name["BROKER_NOT_AVAILABLE"]
    REPLICA_NOT_AVAILABLE = by_name["REPLICA_NOT_AVAILABLE"]
    MESSAGE_TOO_LARGE = by_name["MESSAGE_TOO_LARGE"]
    OFFSET_METADATA_TOO_LARGE = by_name["OFFSET_METADATA_TOO_LARGE"]
    COORDINATOR_LOAD_IN_PROGRESS = by_name["COORDINATOR_LOAD_IN_PROGRESS"]
    COORDINATOR_NOT_AVAILABLE = by_name["COORDINATOR_NOT_AVAILABLE"]
    NOT_COORDINATOR = by_name["NOT_COORDINATOR"]
    INVALID_TOPIC_EXCEPTION = by_name["INVALID_TOPIC_EXCEPTION"]
    RECORD_LIST_TOO_LARGE = by_name["RECORD_LIST_TOO_LARGE"]
    NOT_ENOUGH_REPLICAS = by_name["NOT_ENOUGH_REPLICAS"]
    NOT_ENOUGH_REPLICAS_AFTER_APPEND = by_name["NOT_ENOUGH_REPLICAS_AFTER_APPEND"]
    INVALID_REQUIRED_ACKS = by_name["INVALID_REQUIRED_ACKS"]
    ILLEGAL_GENERATION = by_name["ILLEGAL_GENERATION"]
    INCONSISTENT_GROUP_PROTOCOL = by_name["INCONSISTENT_GROUP_PROTOCOL"]
    INVALID_GROUP_ID = by_name["INVALID_GROUP_ID"]
    UNKNOWN_MEMBER_ID = by_name["UNKNOWN_MEMBER_ID"]
    INVALID_SESSION_TIMEOUT = by_name["INVALID_SESSION_TIMEOUT"]
    REBALANCE_IN_PROGRESS = by_name["REBALANCE_IN_PROGRESS"]
    INVALID_COMMIT_OFFSET_SIZE = by_name["INVALID_COMMIT_OFFSET_SIZE"]
    INVALID_TIMESTAMP = by_name["INVALID_TIMESTAMP"]
    UNSUPPORTED_VERSION = by_name["UNSUPPORTED_VERSION"]
    TOPIC_ALREADY_EXISTS = by_name["TOPIC_ALREADY_EXISTS"]
    INVALID_PARTITIONS = by_name["INVALID_PARTITIONS"]
    INVALID_REPLICATION_FACTOR = by_name["INVALID_REPLICATION_FACTOR"]
    INVALID_REPLICA_ASSIGNMENT = by_name["INVALID_REPLICA_ASSIGNMENT"]
    INVALID_CONFIG = by_name["INVALID_CONFIG"]
    NOT_CONTROLLER = by_name["NOT_CONTROLLER"]
    INVALID_REQUEST = by_name["INVALID_REQUEST"]
    UNSUPPORTED_FOR_MESSAGE_FORMAT = by_name["UNSUPPORTED_FOR_MESSAGE_FORMAT"]
    POLICY_VIOLATION = by_name["POLICY_VIOLATION"]
    OUT_OF_ORDER_SEQUENCE_NUMBER = by_name["OUT_OF_ORDER_SEQUENCE_NUMBER"]
    DUPLICATE_SEQUENCE_NUMBER = by_name["DUPLICATE_SEQUENCE_NUMBER"]
    INVALID_PRODUCER_EPOCH = by_name["INVALID_PRODUCER_EPOCH"]
    INVALID_TXN_STATE = by_name["INVALID_TXN_STATE"]
    INVALID_PRODUCER_ID_MAPPING = by_name["INVALID_PRODUCER_ID_MAPPING"]
    CONCURRENT_TRANSACTIONS = by_name["CONCURRENT_TRANSACTIONS"]
    INVALID_TRANSACTION_TIMEOUT = by_name["INVALID_TRANSACTION_TIMEOUT"]
    TRANSACTION_COORDINATOR_FENCED = by_name["TRANSACTION_COORDINATOR_FENCED"]
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED = by_name["TRANSACTIONAL_ID_AUTHORIZATION_FAILED"]
    TRANSACTIONAL_ID_NOT_FOUND = by_name["TRANSACTIONAL_ID_NOT_FOUND"]
    TRANSACTION_ABORTABLE = by_name["TRANSACTION_ABORTABLE"]
    OPERATION_NOT_ATTEMPTED = by_name["OPERATION_NOT_ATTEMPTED"]
    KAFKA_STORAGE_ERROR = by_name["KAFKA_STORAGE_ERROR"]
    UNKNOWN_PRODUCER_ID = by_name["UNKNOWN_PRODUCER_ID"]
    TOPIC_DELETION_DISABLED = by_name["TOPIC_DELETION_DISABLED"]
    NON_EMPTY_GROUP = by_name["NON_EMPTY_GROUP"]
    GROUP_ID_NOT_FOUND = by_name["GROUP_ID_NOT_FOUND"]
    FETCH_SESSION_ID_NOT_FOUND = by_name["FETCH_SESSION_ID_NOT_FOUND"]
    INVALID_FETCH_SESSION_EPOCH = by_name["INVALID_FETCH_SESSION_EPOCH"]
    FETCH_SESSION_TOPIC_ID_ERROR = by_name["FETCH_SESSION_TOPIC_ID_ERROR"]
    FENCED_LEADER_EPOCH = by_name["FENCED_LEADER_EPOCH"]
    UNKNOWN_LEADER_EPOCH = by_name["UNKNOWN_LEADER_EPOCH"]
    UNSUPPORTED_COMPRESSION_TYPE = by_name["UNSUPPORTED_COMPRESSION_TYPE"]
    OFFSET_NOT_AVAILABLE = by_name["OFFSET_NOT_AVAILABLE"]
    MEMBER_ID_REQUIRED = by_name["MEMBER_ID_REQUIRED"]
    GROUP_MAX_SIZE_REACHED = by_name["GROUP_MAX_SIZE_REACHED"]
    FENCED_INSTANCE_ID = by_name["FENCED_INSTANCE_ID"]
    ELECTION_NOT_NEEDED = by_name["ELECTION_NOT_NEEDED"]
    GROUP_SUBSCRIBED_TO_TOPIC = by_name["GROUP_SUBSCRIBED_TO_TOPIC"]
    INVALID_RECORD = by_name["INVALID_RECORD"]
    UNSTABLE_OFFSET_COMMIT = by_name["UNSTABLE_OFFSET_COMMIT"]
    PRODUCER_FENCED = by_name["PRODUCER_FENCED"]
    RESOURCE_NOT_FOUND = by_name["RESOURCE_NOT_FOUND"]
    UNKNOWN_TOPIC_ID = by_name["UNKNOWN_TOPIC_ID"]
    INCONSISTENT_TOPIC_ID = by_name["INCONSISTENT_TOPIC_ID"]
    UNRELEASED_INSTANCE_ID = by_name["UNRELEASED_INSTANCE_ID"]
    STALE_BROKER_EPOCH = by_name["STALE_BROKER_EPOCH"]
    BROKER_ID_NOT_REGISTERED = by_name["BROKER_ID_NOT_REGISTERED"]
    INELIGIBLE_REPLICA = by_name["INELIGIBLE_REPLICA"]
    INCONSISTENT_CLUSTER_ID = by_name["INCONSISTENT_CLUSTER_ID"]
    DUPLICATE_BROKER_REGISTRATION = by_name["DUPLICATE_BROKER_REGISTRATION"]


class KafkaError(Exception):
    """A condition that Kafka reports to the client as ``error``; raised by broker logic and
    converted to an ``error_code`` (plus optional ``error_message``) at the response boundary."""

    def __init__(self, error: ErrorCode, message: str | None = None) -> None:
        super().__init__(f"{error}: {message}" if message else str(error))
        self.error = error
        self.message = message
