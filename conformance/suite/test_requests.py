"""Request validation and the fields of error answers, at every version both sides speak.

Each probe builds its request with refka's own codec (:mod:`conformance.speak`) and repeats at every
version of the API that the broker advertises and the codec declares, so that a broker that checks
at one version and forgets at another is caught.  The expected codes and messages are Apache
Kafka's (4.x, KRaft) as observed on the wire; where Kafka sets an ``error_message`` the probe
asserts it is set, and its text where the text is a fixed sentence.

Areas: CreateTopics / DeleteTopics / CreatePartitions request validation (duplicates, mutually
exclusive fields, internal topics), ApiVersions edge cases (KIP-511, KIP-584 features), DeleteRecords
policies (KIP-107), sensitive configs and synonyms (KIP-226), and the classic group error matrix
(DescribeGroups, DeleteGroups, ListGroups filters (KIP-518, KIP-848), OffsetDelete (KIP-496)).
"""

from __future__ import annotations

import pytest

from conformance import raw, speak
from reference.errors import Errors

CREATE_TOPICS, DELETE_TOPICS, CREATE_PARTITIONS = 19, 20, 37
API_VERSIONS, DELETE_RECORDS, DESCRIBE_CONFIGS = 18, 21, 32
DESCRIBE_GROUPS, LIST_GROUPS, DELETE_GROUPS, OFFSET_DELETE = 15, 16, 42, 47

BROKER_RESOURCE, TOPIC_RESOURCE = 4, 2
# DescribeConfigs ConfigSource values (KIP-226).
DYNAMIC_TOPIC_CONFIG, STATIC_BROKER_CONFIG, DEFAULT_CONFIG = 1, 4, 5

DUPLICATE_TOPIC = "Duplicate topic name."


def _new_topic(name, partitions=1, replication_factor=1, assignments=(), configs=None):
    return speak.item(CREATE_TOPICS, "CreatableTopic", name=name, num_partitions=partitions,
                      replication_factor=replication_factor, assignments=list(assignments),
                      configs=[speak.item(CREATE_TOPICS, "CreatableTopicConfig", name=k, value=v)
                               for k, v in (configs or {}).items()])


def _create_topics(bootstrap, version, topics, validate_only=False):
    with speak.bootstrap_speaker(bootstrap) as broker:
        return broker.call(CREATE_TOPICS, version, speak.body(CREATE_TOPICS, topics=topics, timeout_ms=20000,
                                                              validate_only=validate_only)).topics


def _delete_topics(bootstrap, version, names):
    if version >= 6:  # v6 names each topic in a struct that may carry a topic id instead (KIP-516)
        request = speak.body(DELETE_TOPICS, timeout_ms=20000, topics=[
            speak.item(DELETE_TOPICS, "DeleteTopicState", name=name) for name in names])
    else:
        request = speak.body(DELETE_TOPICS, timeout_ms=20000, topic_names=list(names))
    with speak.bootstrap_speaker(bootstrap) as broker:
        return broker.call(DELETE_TOPICS, version, request).responses


def _create_partitions(bootstrap, version, counts, validate_only=True):
    topics = [speak.item(CREATE_PARTITIONS, "CreatePartitionsTopic", name=name, count=count, assignments=None)
              for name, count in counts]
    with speak.bootstrap_speaker(bootstrap) as broker:
        return broker.call(CREATE_PARTITIONS, version, speak.body(
            CREATE_PARTITIONS, topics=topics, timeout_ms=20000, validate_only=validate_only)).results


def _exists(bootstrap, topic):
    with raw.Connection.to(bootstrap.split(",")[0].strip()) as conn:
        return raw.metadata(conn, [topic]).topics[topic].error_code == 0


def _answers(results):
    """(name, error code, error message) of each per-topic result, in name order."""
    return sorted((r.name, r.error_code, r.get("error_message")) for r in results)


@pytest.fixture(scope="module")
def consumer_offsets_exists(bootstrap):
    """__consumer_offsets is created by the first group request; the internal-topic probes need it."""
    raw.group_coordinator(bootstrap.split(",")[0], "refka-conformance-warmup", timeout=60).close()


# ---------------------------------------------------------------- CreateTopics / DeleteTopics / CreatePartitions
def test_create_topics_duplicate_name(topics, bootstrap, capabilities):
    """CreateTopics naming one topic twice: one result for that name, INVALID_REQUEST (42) with
    "Duplicate topic name.", and no topic (the whole entry is refused, not its first copy)."""
    capabilities.require_api(CREATE_TOPICS)
    for version in speak.versions(capabilities, CREATE_TOPICS, 2):
        name = topics.name(f"dup-v{version}")
        answers = _create_topics(bootstrap, version, [_new_topic(name), _new_topic(name)])
        assert _answers(answers) == [(name, Errors.INVALID_REQUEST.code, DUPLICATE_TOPIC)], \
            f"CreateTopics v{version}: observed {answers}"
        assert not _exists(bootstrap, name), f"CreateTopics v{version}: a duplicated topic was created"


@pytest.mark.parametrize(("partitions", "replication_factor", "message"), [
    (1, 1, "A manual partition assignment was specified, but replication factor was not set to -1."),
    (-1, 1, "A manual partition assignment was specified, but replication factor was not set to -1."),
    (1, -1, "A manual partition assignment was specified, but numPartitions was not set to -1."),
], ids=["both-set", "replication-factor-set", "partitions-set"])
def test_create_topics_assignments_exclude_counts(topics, bootstrap, capabilities, partitions, replication_factor,
                                                  message):
    """CreateTopics with explicit Assignments must give NumPartitions and ReplicationFactor as -1:
    otherwise INVALID_REQUEST (42) with a message naming the field (replication factor checked
    first); with both -1 the same assignment is valid."""
    capabilities.require_api(CREATE_TOPICS)
    broker_id = min(capabilities.broker_addresses)  # a registered broker, so only the shape can be wrong
    assignment = speak.item(CREATE_TOPICS, "CreatableReplicaAssignment", partition_index=0, broker_ids=[broker_id])
    for version in speak.versions(capabilities, CREATE_TOPICS, 2):
        name = topics.name(f"assign-v{version}")
        refused = _create_topics(bootstrap, version, [_new_topic(name, partitions, replication_factor, [assignment])],
                                 validate_only=True)
        assert _answers(refused) == [(name, Errors.INVALID_REQUEST.code, message)], \
            f"CreateTopics v{version}: observed {refused}"
        valid = _create_topics(bootstrap, version, [_new_topic(name, -1, -1, [assignment])], validate_only=True)
        assert _answers(valid) == [(name, 0, None)], f"CreateTopics v{version} with -1/-1: observed {valid}"


@pytest.mark.parametrize(("name", "message"), [
    ("", "Topic name is invalid: the empty string is not allowed"),
    ("bad name", "Topic name is invalid: 'bad name' contains one or more characters other than ASCII "
                 "alphanumerics, '.', '_' and '-'"),
    ("x" * 250, f"Topic name is invalid: the length of '{'x' * 250}' is longer than the max allowed length 249"),
], ids=["empty", "space", "250-chars"])
def test_create_topics_invalid_name_message(bootstrap, capabilities, name, message):
    """An illegal topic name is INVALID_TOPIC_EXCEPTION (17) with a message saying which rule it
    breaks (empty; characters outside [a-zA-Z0-9._-]; longer than 249)."""
    capabilities.require_api(CREATE_TOPICS)
    for version in speak.versions(capabilities, CREATE_TOPICS, 2):
        answers = _create_topics(bootstrap, version, [_new_topic(name)], validate_only=True)
        assert _answers(answers) == [(name, Errors.INVALID_TOPIC_EXCEPTION.code, message)], \
            f"CreateTopics v{version}: observed {answers}"


def test_create_internal_topic_already_exists(bootstrap, capabilities, consumer_offsets_exists):
    """CreateTopics of __consumer_offsets once it exists: TOPIC_ALREADY_EXISTS (36) with
    "Topic '__consumer_offsets' already exists." (internal topics are not special here)."""
    capabilities.require_api(CREATE_TOPICS)
    for version in speak.versions(capabilities, CREATE_TOPICS, 2):
        answers = _create_topics(bootstrap, version, [_new_topic("__consumer_offsets")], validate_only=True)
        assert _answers(answers) == [("__consumer_offsets", Errors.TOPIC_ALREADY_EXISTS.code,
                                      "Topic '__consumer_offsets' already exists.")], \
            f"CreateTopics v{version}: observed {answers}"


def test_delete_topics_duplicate_name(topics, bootstrap, capabilities):
    """DeleteTopics naming one topic twice: one answer for it, INVALID_REQUEST (42) ("Duplicate
    topic name." from v5), and the topic is not deleted."""
    capabilities.require_api(DELETE_TOPICS)
    topic = topics.create()
    for version in speak.versions(capabilities, DELETE_TOPICS, 1):
        answers = _delete_topics(bootstrap, version, [topic, topic])
        message = DUPLICATE_TOPIC if version >= 5 else None
        assert _answers(answers) == [(topic, Errors.INVALID_REQUEST.code, message)], \
            f"DeleteTopics v{version}: observed {answers}"
        assert _exists(bootstrap, topic), f"DeleteTopics v{version}: a duplicated topic was deleted"


def test_create_partitions_validation(topics, bootstrap, capabilities):
    """CreatePartitions (validate only): a topic named twice is INVALID_REQUEST (42) "Duplicate
    topic name."; fewer partitions than now, or the same count, INVALID_PARTITIONS (37) with a
    message giving the current count; an unknown topic UNKNOWN_TOPIC_OR_PARTITION (3) with no
    message."""
    capabilities.require_api(CREATE_PARTITIONS)
    topic = topics.create(partitions=2)
    missing = topics.name("missing")
    for version in speak.versions(capabilities, CREATE_PARTITIONS):
        duplicate = _create_partitions(bootstrap, version, [(topic, 3), (topic, 4)])
        assert _answers(duplicate) == [(topic, Errors.INVALID_REQUEST.code, DUPLICATE_TOPIC)], \
            f"CreatePartitions v{version}: observed {duplicate}"
        fewer = _create_partitions(bootstrap, version, [(topic, 1)])
        assert _answers(fewer) == [(topic, Errors.INVALID_PARTITIONS.code, f"The topic {topic} currently has 2 "
                                    "partition(s); 1 would not be an increase.")], f"v{version}: observed {fewer}"
        same = _create_partitions(bootstrap, version, [(topic, 2)])
        assert _answers(same) == [(topic, Errors.INVALID_PARTITIONS.code, "Topic already has 2 partition(s).")], \
            f"CreatePartitions v{version}: observed {same}"
        absent = _create_partitions(bootstrap, version, [(missing, 3)])
        assert _answers(absent) == [(missing, Errors.UNKNOWN_TOPIC_OR_PARTITION.code, None)], \
            f"CreatePartitions v{version}: observed {absent}"


# ---------------------------------------------------------------- ApiVersions (KIP-511, KIP-584)
@pytest.mark.parametrize(("software_name", "software_version"), [
    ("bad name!", "1.0"), ("refka", "1.0 beta"), ("", "1.0"), ("refka", ""),
], ids=["name-punctuation", "version-space", "empty-name", "empty-version"])
def test_api_versions_invalid_client_software(broker, capabilities, software_name, software_version):
    """KIP-511: ApiVersions v3+ carries client_software_name and _version, which must be non-empty
    and match [a-zA-Z0-9](?:[a-zA-Z0-9\\-.]*[a-zA-Z0-9])?; otherwise INVALID_REQUEST (42) and an
    empty API list (Kafka does not list its APIs to a request it refuses)."""
    for version in speak.versions(capabilities, API_VERSIONS, 3):
        with speak.Speaker(broker.bootstrap_address) as conn:
            answer = conn.call(API_VERSIONS, version, speak.body(
                API_VERSIONS, client_software_name=software_name, client_software_version=software_version))
        assert (answer.error_code, answer.api_keys) == (Errors.INVALID_REQUEST.code, []), \
            f"ApiVersions v{version}: observed error {answer.error_code}, {len(answer.api_keys)} APIs"


def test_api_versions_valid_client_software(broker, capabilities):
    """KIP-511: names with dots and dashes inside (``refka-client.x``, ``1.2-3``) are valid: error
    NONE and the same API ranges as v0."""
    for version in speak.versions(capabilities, API_VERSIONS, 3):
        with speak.Speaker(broker.bootstrap_address) as conn:
            answer = conn.call(API_VERSIONS, version, speak.body(
                API_VERSIONS, client_software_name="refka-client.x", client_software_version="1.2-3"))
        ranges = {a.api_key: (a.min_version, a.max_version) for a in answer.api_keys}
        assert answer.error_code == 0 and ranges == {
            k: (r.min_version, r.max_version) for k, r in capabilities.api_versions.apis.items()}, \
            f"ApiVersions v{version}: observed error {answer.error_code}, ranges {ranges}"


def test_api_versions_unsupported_version_lists_only_itself(broker, capabilities):
    """KIP-511: ApiVersions at a version the broker does not know is answered in the v0 layout with
    UNSUPPORTED_VERSION (35) and exactly one range, ApiVersions' own, so the client can retry at
    the highest version it shares with the broker."""
    capabilities.require_api(API_VERSIONS)
    answer = raw.api_versions_raw_version(broker.connect(), 999)
    own = capabilities.api_versions.apis[API_VERSIONS]
    assert answer.error_code == Errors.UNSUPPORTED_VERSION.code, f"expected 35, observed {answer.error_code}"
    assert {k: (r.min_version, r.max_version) for k, r in answer.apis.items()} == \
        {API_VERSIONS: (own.min_version, own.max_version)}, f"observed {answer.apis}"


def test_api_versions_features(broker, capabilities):
    """KIP-584: ApiVersions v3+ lists the features the broker supports and those finalized in the
    cluster with their epoch.  Every finalized feature is a supported one at a level inside its
    supported range, and the epoch is set (>= 0) when any is finalized.  KIP-1022: v3 omits the
    supported features whose range starts at 0 (an old client would misread them); v4 lists them."""
    for version in speak.versions(capabilities, API_VERSIONS, 3):
        with speak.Speaker(broker.bootstrap_address) as conn:
            answer = conn.call(API_VERSIONS, version, speak.body(
                API_VERSIONS, client_software_name="refka", client_software_version="1"))
        supported = {f.name: (f.min_version, f.max_version) for f in answer.supported_features}
        finalized = {f.name: (f.min_version_level, f.max_version_level) for f in answer.finalized_features}
        if not supported and not finalized:
            pytest.skip(f"ApiVersions v{version} advertises no features")
        if version == 3:
            assert all(low >= 1 for low, _ in supported.values()), f"v3 lists features starting at 0: {supported}"
        if finalized:
            assert answer.finalized_features_epoch >= 0, f"v{version}: finalized features without an epoch"
        for name, (low, high) in finalized.items():
            if version >= 4 or name in supported:
                assert name in supported, f"v{version}: {name} finalized but not supported: {supported}"
                assert supported[name][0] <= low <= high <= supported[name][1], \
                    f"v{version}: {name} finalized at {low}-{high} outside its supported {supported[name]}"


# ---------------------------------------------------------------- DeleteRecords (KIP-107)
def _delete_records(address, version, topic, partition, offset):
    request = speak.body(DELETE_RECORDS, timeout_ms=20000, topics=[speak.item(
        DELETE_RECORDS, "DeleteRecordsTopic", name=topic, partitions=[
            speak.item(DELETE_RECORDS, "DeleteRecordsPartition", partition_index=partition, offset=offset)])])
    with speak.Speaker(address) as conn:
        answer = conn.call(DELETE_RECORDS, version, request)
    return [(p.partition_index, p.low_watermark, p.error_code) for t in answer.topics for p in t.partitions]


def _produce_five(broker, topic):
    conn = broker.leader(topic)
    for i in range(5):
        result = raw.produce(conn, topic, 0, raw.record_batch([raw.Record(b"k", f"v{i}".encode())]))
        assert result is not None and result.error_code == 0, f"setup: produce answered {result}"


def test_delete_records_offsets(topics, broker, capabilities):
    """DeleteRecords: offset -1 means the high watermark (all records, low watermark 5 after five
    records); an offset beyond the high watermark is OFFSET_OUT_OF_RANGE (1) with low watermark -1,
    as is -2; an offset below the current log start changes nothing (error NONE, the low watermark
    stays); an unknown partition is UNKNOWN_TOPIC_OR_PARTITION (3)."""
    capabilities.require_api(DELETE_RECORDS)
    for version in speak.versions(capabilities, DELETE_RECORDS):
        topic = topics.create()
        _produce_five(broker, topic)
        leader = broker.leader_address(topic)
        observed = {
            "beyond": _delete_records(leader, version, topic, 0, 6),
            "minus-two": _delete_records(leader, version, topic, 0, -2),
            "to-2": _delete_records(leader, version, topic, 0, 2),
            "hw": _delete_records(leader, version, topic, 0, -1),
            "back-to-1": _delete_records(leader, version, topic, 0, 1),
            "partition-7": _delete_records(leader, version, topic, 7, 1),
        }
        assert observed == {
            "beyond": [(0, -1, Errors.OFFSET_OUT_OF_RANGE.code)],
            "minus-two": [(0, -1, Errors.OFFSET_OUT_OF_RANGE.code)],
            "to-2": [(0, 2, 0)],
            "hw": [(0, 5, 0)],
            "back-to-1": [(0, 5, 0)],
            "partition-7": [(7, -1, Errors.UNKNOWN_TOPIC_OR_PARTITION.code)],
        }, f"DeleteRecords v{version}: observed {observed}"


@pytest.mark.parametrize(("policy", "expected"), [
    ("compact", (0, -1, Errors.POLICY_VIOLATION.code)),
    ("compact,delete", (0, 1, 0)),
])
def test_delete_records_cleanup_policy(topics, broker, capabilities, policy, expected):
    """DeleteRecords on a topic with cleanup.policy=compact only: POLICY_VIOLATION (44), low
    watermark -1, nothing deleted (the log start stays 0); with "compact,delete" it is allowed."""
    capabilities.require_api(DELETE_RECORDS)
    for version in speak.versions(capabilities, DELETE_RECORDS):
        topic = topics.create(configs={"cleanup.policy": policy})
        _produce_five(broker, topic)
        answer = _delete_records(broker.leader_address(topic), version, topic, 0, 1)
        assert answer == [expected], f"DeleteRecords v{version} on a {policy} topic: observed {answer}"
        start = raw.list_offset(broker.leader(topic), topic, 0, raw.EARLIEST_TIMESTAMP).offset
        assert start == (0 if expected[2] else 1), f"log start offset {start} after {answer}"


# ---------------------------------------------------------------- sensitive configs and synonyms (KIP-226)
def _describe_configs(address, version, resource_type, name, keys=None, synonyms=True):
    request = speak.body(DESCRIBE_CONFIGS, include_synonyms=synonyms, resources=[speak.item(
        DESCRIBE_CONFIGS, "DescribeConfigsResource", resource_type=resource_type, resource_name=name,
        configuration_keys=keys)])
    with speak.Speaker(address) as conn:
        (result,) = conn.call(DESCRIBE_CONFIGS, version, request).results
    assert result.error_code == 0, f"DescribeConfigs v{version} of {name}: observed {result}"
    return {entry.name: entry for entry in result.configs}


SENSITIVE_BROKER_CONFIGS = ["ssl.keystore.password", "ssl.key.password", "ssl.truststore.password",
                            "sasl.jaas.config"]


def test_sensitive_broker_configs_hidden(capabilities):
    """DescribeConfigs of a broker: password-type configs (ssl.*.password, sasl.jaas.config) are
    listed with is_sensitive true and a null value whether or not they are set, so a secret never
    crosses the wire; asked for by name they are answered the same way."""
    capabilities.require_api(DESCRIBE_CONFIGS)
    broker_id = min(capabilities.broker_addresses)
    address = capabilities.broker_addresses[broker_id]
    for version in speak.versions(capabilities, DESCRIBE_CONFIGS, 1):
        every = _describe_configs(address, version, BROKER_RESOURCE, str(broker_id))
        leaked = {name: e.value for name, e in every.items() if name.endswith(".password") and e.value is not None}
        assert not leaked, f"DescribeConfigs v{version}: password configs with values: {leaked}"
        named = _describe_configs(address, version, BROKER_RESOURCE, str(broker_id), keys=SENSITIVE_BROKER_CONFIGS)
        observed = {name: (e.value, e.is_sensitive) for name, e in named.items()}
        assert observed == {name: (None, True) for name in SENSITIVE_BROKER_CONFIGS}, \
            f"DescribeConfigs v{version}: observed {observed}"


def test_config_source_and_synonyms(topics, capabilities):
    """DescribeConfigs with include_synonyms of a topic: an override has source
    DYNAMIC_TOPIC_CONFIG (1) and its first synonym is itself (the topic's own name and value); a
    config left at the default takes its value and source from its first synonym, the broker
    config (log.cleanup.policy for cleanup.policy) with source STATIC_BROKER_CONFIG (4) or
    DEFAULT_CONFIG (5), the last synonym being the default.  Without include_synonyms none are
    listed."""
    capabilities.require_api(DESCRIBE_CONFIGS)
    topic = topics.create(configs={"retention.ms": "123456"})
    address = capabilities.broker_addresses[min(capabilities.broker_addresses)]
    for version in speak.versions(capabilities, DESCRIBE_CONFIGS, 1):
        described = _describe_configs(address, version, TOPIC_RESOURCE, topic, ["retention.ms", "cleanup.policy"])
        retention, policy = described["retention.ms"], described["cleanup.policy"]
        assert (retention.value, retention.config_source) == ("123456", DYNAMIC_TOPIC_CONFIG), f"observed {retention}"
        assert [(s.name, s.value, s.source) for s in retention.synonyms[:1]] == \
            [("retention.ms", "123456", DYNAMIC_TOPIC_CONFIG)], f"v{version}: observed {retention.synonyms}"
        synonyms = [(s.name, s.value, s.source) for s in policy.synonyms]
        assert synonyms and {name for name, _, _ in synonyms} == {"log.cleanup.policy"}, \
            f"v{version}: cleanup.policy synonyms {synonyms}"
        assert (policy.value, policy.config_source) == synonyms[0][1:], f"v{version}: {policy} vs {synonyms}"
        assert synonyms[0][2] in (STATIC_BROKER_CONFIG, DEFAULT_CONFIG) and synonyms[-1][2] == DEFAULT_CONFIG, \
            f"v{version}: synonyms {synonyms}"
        bare = _describe_configs(address, version, TOPIC_RESOURCE, topic, ["retention.ms"], synonyms=False)
        assert bare["retention.ms"].synonyms == [], f"v{version}: synonyms without include_synonyms"


# ---------------------------------------------------------------- classic groups: describe, list, delete, offsets
def _subscription(topic):
    """ConsumerProtocolSubscription v0: the topics a member subscribes to, which the coordinator
    reads to know which topics a classic consumer group uses (OffsetDelete, KIP-496)."""
    return raw.Writer().int16(0).int32(1).string(topic).int32_bytes(None).bytes()


@pytest.fixture
def stable_group(topics, bootstrap):
    """A classic consumer group with one member subscribed to a 2-partition topic, in Stable state,
    with offsets committed for that topic and for another one; yields (group, topic, other, conn)."""
    topic, other = topics.create(partitions=2), topics.create()
    group = topics.name("group")
    conn = raw.group_coordinator(bootstrap.split(",")[0], group, timeout=60)
    protocols = (("range", _subscription(topic)),)
    first = raw.join_group(conn, group, protocols=protocols)
    joined = raw.join_group(conn, group, member_id=first.member_id, protocols=protocols)
    assert joined.error_code == 0, f"setup failed: JoinGroup answered {joined.error_code}"
    synced = raw.sync_group(conn, group, joined.generation_id, joined.member_id, {joined.member_id: b""})
    assert synced == 0, f"setup failed: SyncGroup answered {synced}"
    for name, partitions in ((topic, {0: 1, 1: 1}), (other, {0: 1})):
        committed = raw.offset_commit(conn, group, joined.generation_id, joined.member_id, name, partitions)
        assert set(committed.values()) == {0}, f"setup failed: OffsetCommit answered {committed}"
    yield group, topic, other, conn
    conn.close()


def _coordinator_address(conn):
    host, port = conn.sock.getpeername()[:2]
    return f"{host}:{port}"


def _coordinator_of(bootstrap, group):
    """The address of ``group``'s coordinator: in a cluster each group has its own, and any other
    broker answers NOT_COORDINATOR (16)."""
    with raw.group_coordinator(bootstrap.split(",")[0], group, timeout=60) as conn:
        return _coordinator_address(conn)


def test_describe_unknown_group(bootstrap, capabilities, topics):
    """DescribeGroups of a group that never existed: state Dead, empty protocol fields, no members;
    error NONE up to v5, and from v6 (KIP-1043) GROUP_ID_NOT_FOUND (69) with "Group G not found."."""
    capabilities.require_api(DESCRIBE_GROUPS)
    group = topics.name("no-such-group")
    address = _coordinator_of(bootstrap, group)
    for version in speak.versions(capabilities, DESCRIBE_GROUPS):
        with speak.Speaker(address) as conn:
            (described,) = conn.call(DESCRIBE_GROUPS, version, speak.body(DESCRIBE_GROUPS, groups=[group])).groups
        expected_error = (Errors.GROUP_ID_NOT_FOUND.code, f"Group {group} not found.") if version >= 6 else (0, None)
        assert (described.group_id, described.error_code, described.error_message, described.group_state,
                described.protocol_type, described.protocol_data, described.members) == \
            (group, *expected_error, "Dead", "", "", []), f"DescribeGroups v{version}: observed {described}"


def test_delete_groups_errors(stable_group, capabilities, topics, bootstrap):
    """DeleteGroups: a group with members is NON_EMPTY_GROUP (68) and stays; a group that does not
    exist is GROUP_ID_NOT_FOUND (69) (each asked of its own coordinator)."""
    capabilities.require_api(DELETE_GROUPS)
    group, _, _, conn = stable_group
    missing = topics.name("no-such-group")

    def delete(address, version, group_id):
        with speak.Speaker(address) as admin:
            (result,) = admin.call(DELETE_GROUPS, version, speak.body(DELETE_GROUPS, groups_names=[group_id])).results
        return result.group_id, result.error_code

    missing_coordinator = _coordinator_of(bootstrap, missing)
    for version in speak.versions(capabilities, DELETE_GROUPS):
        observed = [delete(_coordinator_address(conn), version, group), delete(missing_coordinator, version, missing)]
        assert observed == [(group, Errors.NON_EMPTY_GROUP.code), (missing, Errors.GROUP_ID_NOT_FOUND.code)], \
            f"DeleteGroups v{version}: observed {observed}"
    with speak.Speaker(_coordinator_address(conn)) as admin:
        (still,) = admin.call(DESCRIBE_GROUPS, 0, speak.body(DESCRIBE_GROUPS, groups=[group])).groups
    assert (still.group_state, len(still.members)) == ("Stable", 1), f"after DeleteGroups: {still}"


def test_list_groups_filters(stable_group, capabilities):
    """ListGroups v4+ filters by state (KIP-518; matched case-insensitively) and reports each
    group's state; v5+ filters by type (KIP-848: "classic" or "consumer", case-insensitive) and
    reports it.  A filter that matches nothing, or an unknown state, gives an empty list and
    error NONE."""
    capabilities.require_api(LIST_GROUPS, 4)
    group, _, _, conn = stable_group

    def listed(version, **filters):
        with speak.Speaker(_coordinator_address(conn)) as admin:
            answer = admin.call(LIST_GROUPS, version, speak.body(LIST_GROUPS, **filters))
        assert answer.error_code == 0, f"ListGroups v{version} {filters}: error {answer.error_code}"
        return [(g.protocol_type, g.group_state) + ((g.group_type,) if version >= 5 else ())
                for g in answer.groups if g.group_id == group]

    for version in speak.versions(capabilities, LIST_GROUPS, 4):
        mine = [("consumer", "Stable") + (("classic",) if version >= 5 else ())]
        observed = {states[0]: listed(version, states_filter=states) for states in (["Stable"], ["stable"],
                                                                                     ["Empty"], ["Bogus"])}
        assert observed == {"Stable": mine, "stable": mine, "Empty": [], "Bogus": []}, \
            f"ListGroups v{version}: observed {observed}"
        if version >= 5:
            by_type = {types[0]: listed(version, types_filter=types) for types in (["classic"], ["Classic"],
                                                                                    ["consumer"])}
            assert by_type == {"classic": mine, "Classic": mine, "consumer": []}, \
                f"ListGroups v{version}: observed {by_type}"


def test_offset_delete_subscribed_topic(stable_group, capabilities, topics, bootstrap):
    """OffsetDelete (KIP-496) of a topic the group's members subscribe to is refused per partition
    with GROUP_SUBSCRIBED_TO_TOPIC (86); another topic's offsets are deleted (error NONE, and
    OffsetFetch then answers -1); an unknown group is GROUP_ID_NOT_FOUND (69) at the top level."""
    capabilities.require_api(OFFSET_DELETE)
    group, topic, other, conn = stable_group

    def offset_delete(version, group_id, name):
        request = speak.body(OFFSET_DELETE, group_id=group_id, topics=[speak.item(
            OFFSET_DELETE, "OffsetDeleteRequestTopic", name=name,
            partitions=[speak.item(OFFSET_DELETE, "OffsetDeleteRequestPartition", partition_index=0)])])
        address = _coordinator_address(conn) if group_id == group else _coordinator_of(bootstrap, group_id)
        with speak.Speaker(address) as admin:
            answer = admin.call(OFFSET_DELETE, version, request)
        return answer.error_code, [(t.name, [(p.partition_index, p.error_code) for p in t.partitions])
                                   for t in answer.topics]

    for version in speak.versions(capabilities, OFFSET_DELETE):
        assert offset_delete(version, group, topic) == (0, [(topic, [(0, Errors.GROUP_SUBSCRIBED_TO_TOPIC.code)])])
        assert offset_delete(version, group, other) == (0, [(other, [(0, 0)])])
        assert raw.offset_fetch(conn, group, other, [0])[0].offset == -1, "the deleted offset is still there"
        assert raw.offset_fetch(conn, group, topic, [0])[0].offset == 1, "a refused deletion removed an offset"
        missing = topics.name("no-such-group")
        assert offset_delete(version, missing, topic) == (Errors.GROUP_ID_NOT_FOUND.code, [])
