"""Topic ids (KIP-516): a topic is known by a 16-byte UUID as well as its name.

A topic id is given once, when the topic is created, and never reused: a topic deleted and
created again under the same name is a new topic with a new id, so a client (or a follower) that
still holds the old id learns that its topic is gone instead of reading the new topic's records as
if they continued the old one.  The id is zero ("no id") only in versions that do not carry it.

* Metadata v10+ answers each topic's id; v12+ may ask for a topic by id alone (name null), and an
  unknown id is UNKNOWN_TOPIC_ID (100) with a null name.  Before v12 a request that gives any
  topic id is INVALID_REQUEST (42) for every topic in it.
* Fetch v13+ names topics by id only; an unknown id is UNKNOWN_TOPIC_ID per partition.
* DeleteTopics v6+ may name a topic by id.
* CreateTopics v7+ returns the new topic's id.

Requests are built with refka's codec (:mod:`conformance.speak`) at every version both sides speak.
"""

from __future__ import annotations

import time
import uuid

from conformance import raw, speak
from reference.errors import Errors

FETCH, METADATA, CREATE_TOPICS, DELETE_TOPICS = 1, 3, 19, 20
NO_TOPIC_ID = uuid.UUID(int=0)


def _metadata(address, version, *, name=None, topic_id=None):
    request = speak.body(METADATA, allow_auto_topic_creation=False, topics=[
        speak.item(METADATA, "MetadataRequestTopic", name=name, topic_id=topic_id or NO_TOPIC_ID)])
    with speak.Speaker(address) as conn:
        (topic,) = conn.call(METADATA, version, request).topics
    return topic


def _fetch(address, version, topic_id):
    request = speak.body(FETCH, max_wait_ms=0, min_bytes=0, topics=[speak.item(
        FETCH, "FetchTopic", topic_id=topic_id, partitions=[
            speak.item(FETCH, "FetchPartition", partition=0, fetch_offset=0, partition_max_bytes=1 << 20)])])
    with speak.Speaker(address) as conn:
        answer = conn.call(FETCH, version, request)
    return answer.error_code, [(t.topic_id, [(p.partition_index, p.error_code) for p in t.partitions])
                               for t in answer.responses]


def _topic_id(bootstrap, capabilities, topic):
    version = speak.versions(capabilities, METADATA, 10)[-1]
    return _metadata(bootstrap.split(",")[0], version, name=topic).topic_id


def _delete(bootstrap, version, *, name=None, topic_id=None):
    request = speak.body(DELETE_TOPICS, timeout_ms=20000, topics=[
        speak.item(DELETE_TOPICS, "DeleteTopicState", name=name, topic_id=topic_id or NO_TOPIC_ID)])
    with speak.bootstrap_speaker(bootstrap) as conn:
        return [(r.name, r.topic_id, r.error_code) for r in conn.call(DELETE_TOPICS, version, request).responses]


def _until(predicate, what, timeout=20.0):
    """In a cluster a deletion reaches every broker through the metadata log a moment later."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.2)


def test_metadata_returns_stable_topic_id(topics, bootstrap, capabilities):
    """Metadata v10+ answers a nonzero topic id, the same at every version, from every broker and on
    every call; CreateTopics v7+ answered the same id when it created the topic."""
    versions = speak.versions(capabilities, METADATA, 10)
    topic = topics.create()
    seen = {(address, version): _metadata(address, version, name=topic).topic_id
            for address in bootstrap.split(",") for version in versions for _ in range(2)}
    ids = set(seen.values())
    assert len(ids) == 1 and NO_TOPIC_ID not in ids, f"topic ids by (broker, version): {seen}"
    if capabilities.api_versions.supports(CREATE_TOPICS, 7):
        request = speak.body(CREATE_TOPICS, timeout_ms=20000, validate_only=False, topics=[
            speak.item(CREATE_TOPICS, "CreatableTopic", name=topics.name("with-id"), num_partitions=1,
                       replication_factor=1)])
        with speak.bootstrap_speaker(bootstrap) as conn:
            (created,) = conn.call(CREATE_TOPICS, 7, request).topics
        assert created.error_code == 0 and created.topic_id != NO_TOPIC_ID, f"CreateTopics v7: observed {created}"
        topics.wait_for_leaders(created.name, 1)
        assert _topic_id(bootstrap, capabilities, created.name) == created.topic_id


def test_metadata_by_topic_id(topics, bootstrap, capabilities):
    """Metadata v12+ for a topic id alone (null name) answers that topic with its name and
    partitions; an unknown id is UNKNOWN_TOPIC_ID (100), null name, no partitions.  Before v12 a
    request giving any id is INVALID_REQUEST (42) for every topic it names."""
    versions = speak.versions(capabilities, METADATA, 10)
    topic = topics.create(partitions=2)
    topic_id = _topic_id(bootstrap, capabilities, topic)
    unknown = uuid.uuid4()
    address = bootstrap.split(",")[0]
    for version in versions:
        if version < 12:
            # Before v12 the name is not nullable (an id-only entry names ""); a request carrying
            # any id is refused for every topic in it, the one asked for by name too.
            request = speak.body(METADATA, allow_auto_topic_creation=False, topics=[
                speak.item(METADATA, "MetadataRequestTopic", name="", topic_id=topic_id),
                speak.item(METADATA, "MetadataRequestTopic", name=topic, topic_id=NO_TOPIC_ID)])
            with speak.Speaker(address) as conn:
                answers = conn.call(METADATA, version, request).topics
            observed = sorted((t.name, t.error_code, len(t.partitions)) for t in answers)
            assert observed == [("", Errors.INVALID_REQUEST.code, 0), (topic, Errors.INVALID_REQUEST.code, 0)], \
                f"Metadata v{version} by id: observed {observed}"
            continue
        found = _metadata(address, version, topic_id=topic_id)
        assert (found.error_code, found.name, found.topic_id, sorted(p.partition_index for p in found.partitions)) \
            == (0, topic, topic_id, [0, 1]), f"Metadata v{version} by id: observed {found}"
        missing = _metadata(address, version, topic_id=unknown)
        assert (missing.error_code, missing.name, missing.partitions) == (Errors.UNKNOWN_TOPIC_ID.code, None, []), \
            f"Metadata v{version} by unknown id: observed {missing}"


def test_fetch_by_topic_id(topics, broker, bootstrap, capabilities):
    """Fetch v13+ names topics by id: the topic's id reads the partition (error NONE); an unknown id
    is answered per partition with UNKNOWN_TOPIC_ID (100), echoing the id asked for."""
    versions = speak.versions(capabilities, FETCH, 13)
    topic = topics.create()
    topic_id = _topic_id(bootstrap, capabilities, topic)
    leader = broker.leader_address(topic)
    unknown = uuid.uuid4()
    for version in versions:
        assert _fetch(leader, version, topic_id) == (0, [(topic_id, [(0, 0)])]), f"Fetch v{version}"
        assert _fetch(leader, version, unknown) == (0, [(unknown, [(0, Errors.UNKNOWN_TOPIC_ID.code)])]), \
            f"Fetch v{version} of an unknown id"


def test_delete_topics_by_id(topics, bootstrap, capabilities):
    """DeleteTopics v6+ names a topic by id (null name): the answer carries the id and the topic's
    name, error NONE, and the topic is gone; deleting the same id again is UNKNOWN_TOPIC_ID (100)."""
    version = speak.versions(capabilities, DELETE_TOPICS, 6)[-1]
    topic = topics.create()
    topic_id = _topic_id(bootstrap, capabilities, topic)
    assert _delete(bootstrap, version, topic_id=topic_id) == [(topic, topic_id, 0)]
    _until(lambda: not any(_exists(address, topic) for address in bootstrap.split(",")), f"{topic} deleted")
    again = _delete(bootstrap, version, topic_id=topic_id)
    assert [(r[1], r[2]) for r in again] == [(topic_id, Errors.UNKNOWN_TOPIC_ID.code)], \
        f"DeleteTopics v{version} of a deleted id: observed {again}"


def _exists(address, topic):
    with raw.Connection.to(address.strip()) as conn:
        return raw.metadata(conn, [topic]).topics[topic].error_code == 0


def test_recreated_topic_gets_new_id(topics, broker, bootstrap, capabilities):
    """A topic deleted and created again under the same name has a new id; Fetch v13+ with the old
    id is then UNKNOWN_TOPIC_ID (100), while the new id reads the new topic."""
    capabilities.require_api(DELETE_TOPICS)
    fetch_versions = speak.versions(capabilities, FETCH, 13)
    topic = topics.create()
    old_id = _topic_id(bootstrap, capabilities, topic)
    version = speak.versions(capabilities, DELETE_TOPICS, 1)[-1]
    deleted = _delete(bootstrap, version, name=topic) if version >= 6 else None
    if version < 6:
        with raw.Connection.to(bootstrap.split(",")[0].strip()) as conn:
            deleted = raw.delete_topics(conn, [topic], version)
    assert deleted, "DeleteTopics answered nothing"
    _until(lambda: not any(_exists(address, topic) for address in bootstrap.split(",")), f"{topic} deleted")
    topics.create(name=topic)
    new_id = _topic_id(bootstrap, capabilities, topic)
    assert new_id not in (old_id, NO_TOPIC_ID), f"re-created {topic}: id {new_id}, before {old_id}"
    leader = broker.leader_address(topic)
    for fetch_version in fetch_versions:
        assert _fetch(leader, fetch_version, old_id) == (0, [(old_id, [(0, Errors.UNKNOWN_TOPIC_ID.code)])]), \
            f"Fetch v{fetch_version} with the deleted topic's id"
        assert _fetch(leader, fetch_version, new_id) == (0, [(new_id, [(0, 0)])]), f"Fetch v{fetch_version}"

