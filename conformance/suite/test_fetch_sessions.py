"""Incremental fetch sessions (KIP-227, Fetch v7+), checked on the wire.

A Fetch carries ``SessionId`` and ``SessionEpoch``: epoch 0 asks for a session (the answer's
non-zero session id names it), the next requests carry that id and epochs 1, 2, ... and list only
the partitions that changed; the answers carry only partitions with something new.  Epoch -1 is
a fetch without a session.  Errors: FETCH_SESSION_ID_NOT_FOUND (70), INVALID_FETCH_SESSION_EPOCH
(71), FETCH_SESSION_TOPIC_ID_ERROR (106) when a session made with topic names is used with ids
(Fetch v13+, KIP-516) or the other way round.

Each test runs at every Fetch version with sessions (v7 on) that the broker advertises and the
suite speaks (:data:`conformance.raw.FETCH_SESSION_VERSIONS`, v7-v18), each version with a session
of its own on a topic of its own; from v13 the topic is named by its id.  The naming test pairs
every version naming topics with every version using ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from conformance import raw, speak
from reference.errors import Errors


def _session_versions(capabilities) -> list[int]:
    """Every Fetch version with sessions the broker advertises and the suite speaks (skips when none)."""
    return speak.versions(capabilities, raw.FETCH, raw.FETCH_SESSION_VERSIONS.start, raw.FETCH_SESSION_VERSIONS.stop - 1)


@dataclass
class Answer:
    """A session fetch's answer, its partitions numbered as the test numbers them (see Session)."""

    error_code: int
    session_id: int
    partitions: dict[int, raw.SessionFetchPartition]


class Session:
    """One consumer's fetch session with one broker: the id, the next epoch, and the partitions of
    the test topic that broker leads (numbered 0, 1, ... in the tests, whatever their index)."""

    def __init__(self, conn: raw.Connection, version: int, topic: str, key: str | bytes, partitions: list[int]):
        self.conn, self.version, self.topic, self.key, self.partitions = conn, version, topic, key, partitions
        self.session_id, self.epoch = 0, raw.INITIAL_EPOCH

    def fetch(self, wanted: list[tuple[int, int]], forgotten: list[int] | None = None,
              epoch: int | None = None) -> Answer:
        result = raw.fetch_in_session(
            self.conn, self.version, self.session_id, self.epoch if epoch is None else epoch,
            [(self.key, [(self.partitions[number], offset) for number, offset in wanted])] if wanted else [],
            [(self.key, [self.partitions[number] for number in forgotten])] if forgotten else [])
        assert {topic for topic, _ in result.partitions} <= {self.key}, f"unexpected topics in {result}"
        return Answer(result.error_code, result.session_id,
                      {self.partitions.index(partition): part for (_, partition), part in result.partitions.items()})

    def open(self, wanted: list[tuple[int, int]]) -> Answer:
        answer = self.fetch(wanted)
        self.session_id, self.epoch = answer.session_id, 1
        return answer

    def next(self, wanted: list[tuple[int, int]], forgotten: list[int] | None = None) -> Answer:
        answer = self.fetch(wanted, forgotten)
        self.epoch += 1
        return answer

    def one_record(self, number: int, value: bytes) -> None:
        batch = raw.record_batch([raw.Record(None, value)])
        assert raw.produce(self.conn, self.topic, self.partitions[number], batch).error_code == 0


def _session(topics, broker, capabilities, version: int, partitions: int) -> Session:
    """A session on a broker that leads ``partitions`` partitions of a new topic (with several
    brokers the topic gets that many per broker, so one of them leads at least that many)."""
    topic = topics.create(partitions=partitions * capabilities.broker_count)
    cluster = raw.metadata(broker.connect(), [topic])
    led_by: dict[int, list[int]] = {}
    for index, found in sorted(cluster.topics[topic].partitions.items()):
        led_by.setdefault(found.leader, []).append(index)
    leader = max(led_by, key=lambda node: len(led_by[node]))
    endpoint = cluster.brokers[leader]
    conn = broker.connect(f"{endpoint.host}:{endpoint.port}")
    key = raw.topic_id(conn, topic) if version >= 13 else topic
    return Session(conn, version, topic, key, led_by[leader][:partitions])


def _require_session(opened: Answer) -> None:
    """The tests below need a session to exist. KIP-227 lets a broker decline one (session id 0),
    as Kafka does when its cache is full; a broker that never creates one fails
    ``test_full_fetch_with_epoch_0_creates_a_session`` once, and these are skipped, not failed
    again for the same cause."""
    if opened.error_code == 0 and opened.session_id == 0:
        pytest.skip("the broker declined to create a fetch session "
                    "(test_full_fetch_with_epoch_0_creates_a_session reports it)")
    assert opened.error_code == 0 and opened.session_id != 0


def test_full_fetch_with_epoch_0_creates_a_session(topics, broker, capabilities):
    """A full fetch with session id 0 and epoch 0 answers every partition it names and creates a
    session: the answer carries a non-zero session id."""
    for version in _session_versions(capabilities):
        session = _session(topics, broker, capabilities, version, partitions=2)
        answer = session.open([(0, 0), (1, 0)])
        assert answer.error_code == 0, f"Fetch v{version}"
        assert answer.session_id != 0, f"Fetch v{version}: a full fetch with epoch 0 must create a fetch session"
        assert list(answer.partitions) == [0, 1], f"Fetch v{version}"


def test_incremental_fetch_carries_only_partitions_that_changed(topics, broker, capabilities):
    """Incremental fetches (the session's id, epochs 1, 2, ...) name no partition and still read
    every partition of the session; the answer leaves out the partitions with no records and an
    unchanged high watermark and log start offset, and carries the one that got a record."""
    for version in _session_versions(capabilities):
        session = _session(topics, broker, capabilities, version, partitions=3)
        for number in range(3):
            session.one_record(number, b"before")
        opened = session.open([(0, 1), (1, 1), (2, 1)])  # at the log end: nothing to read
        _require_session(opened)
        assert {number: part.high_watermark for number, part in opened.partitions.items()} == {0: 1, 1: 1, 2: 1}, f"Fetch v{version}"

        quiet = session.next([])
        assert (quiet.error_code, quiet.session_id, quiet.partitions) == (0, opened.session_id, {}), f"Fetch v{version}"

        session.one_record(1, b"after")
        changed = session.next([])
        assert (changed.error_code, changed.session_id) == (0, opened.session_id), f"Fetch v{version}"
        assert list(changed.partitions) == [1], f"Fetch v{version}: expected only partition 1, got {changed.partitions}"
        assert (changed.partitions[1].high_watermark, changed.partitions[1].record_count) == (2, 1), f"Fetch v{version}"


def test_an_incremental_fetch_updates_and_forgets_partitions(topics, broker, capabilities):
    """An incremental fetch may move a partition's fetch offset (it is answered with the records
    from there) and forget partitions (``ForgottenTopicsData``: never answered again); forgetting
    the last one closes the session and that fetch is answered without one (session id 0)."""
    for version in _session_versions(capabilities):
        session = _session(topics, broker, capabilities, version, partitions=2)
        session.one_record(0, b"zero")
        opened = session.open([(0, 1), (1, 0)])
        _require_session(opened)
        rewound = session.next([(0, 0)], forgotten=[1])
        assert list(rewound.partitions) == [0] and rewound.partitions[0].record_count == 1, f"Fetch v{version}"
        session.one_record(1, b"one")
        assert list(session.next([]).partitions) == [0], f"Fetch v{version}: a forgotten partition came back"
        closed = session.next([], forgotten=[0])
        assert (closed.error_code, closed.session_id, closed.partitions) == (0, 0, {}), f"Fetch v{version}"
        gone = session.next([])
        assert gone.error_code == Errors.FETCH_SESSION_ID_NOT_FOUND.code, f"Fetch v{version}"


def test_a_wrong_session_epoch_is_invalid_fetch_session_epoch(topics, broker, capabilities):
    """An incremental fetch whose epoch is not the session's next one gets INVALID_FETCH_SESSION_EPOCH
    (71), session id 0 and no partitions; the session itself survives and the right epoch works."""
    for version in _session_versions(capabilities):
        session = _session(topics, broker, capabilities, version, partitions=1)
        opened = session.open([(0, 0)])
        _require_session(opened)
        for wrong in (2, 7):
            refused = session.fetch([], epoch=wrong)
            assert (refused.error_code, refused.session_id, refused.partitions) == (
                Errors.INVALID_FETCH_SESSION_EPOCH.code, 0, {}), f"Fetch v{version}"
        assert (session.next([]).error_code, session.next([]).error_code) == (0, 0), f"Fetch v{version}"
        replayed = session.fetch([], epoch=session.epoch - 1)  # a duplicate of the last request
        assert replayed.error_code == Errors.INVALID_FETCH_SESSION_EPOCH.code, f"Fetch v{version}"


def test_an_unknown_session_id_is_fetch_session_id_not_found(topics, broker, capabilities):
    """An incremental fetch naming a session the broker does not have (here one closed with epoch -1)
    gets FETCH_SESSION_ID_NOT_FOUND (70), session id 0 and no partitions."""
    for version in _session_versions(capabilities):
        session = _session(topics, broker, capabilities, version, partitions=1)
        opened = session.open([(0, 0)])
        _require_session(opened)
        closing = session.fetch([(0, 0)], epoch=raw.FINAL_EPOCH)  # close it: answered without a session
        assert (closing.error_code, closing.session_id, list(closing.partitions)) == (0, 0, [0]), f"Fetch v{version}"
        missing = session.fetch([], epoch=1)
        assert (missing.error_code, missing.session_id, missing.partitions) == (
            Errors.FETCH_SESSION_ID_NOT_FOUND.code, 0, {}), f"Fetch v{version}"


def test_epoch_minus_one_with_session_id_0_is_a_fetch_without_session(topics, broker, capabilities):
    """Session id 0 with epoch -1 (FINAL_EPOCH) is a plain full fetch: every partition answered,
    no session created (session id 0)."""
    for version in _session_versions(capabilities):
        session = _session(topics, broker, capabilities, version, partitions=2)
        session.one_record(1, b"one")
        answer = session.fetch([(0, 0), (1, 0)], epoch=raw.FINAL_EPOCH)
        assert (answer.error_code, answer.session_id) == (0, 0), f"Fetch v{version}"
        assert {number: part.record_count for number, part in answer.partitions.items()} == {0: 0, 1: 1}, f"Fetch v{version}"


def test_a_session_keeps_the_topic_naming_it_was_made_with(topics, broker, capabilities):
    """A session created by a fetch naming topics (below v13) cannot be continued with topic ids
    (v13+), nor the other way round: FETCH_SESSION_TOPIC_ID_ERROR (106), no partitions.  Every
    version naming topics is paired with every version using ids, both ways round."""
    versions = _session_versions(capabilities)
    by_name, by_id = [v for v in versions if v < 13], [v for v in versions if v >= 13]
    if not by_name or not by_id:
        pytest.skip(f"the broker's Fetch versions with sessions ({versions}) do not include both namings")
    topic = topics.create()
    conn = broker.leader(topic)
    topic_uuid = raw.topic_id(conn, topic)
    pairs = [(name, ids) for name in by_name for ids in by_id]
    for made_with, continued_with in pairs + [(ids, name) for name, ids in pairs]:
        key = topic if made_with < 13 else topic_uuid
        opened = raw.fetch_in_session(conn, made_with, 0, raw.INITIAL_EPOCH, [(key, [(0, 0)])])
        _require_session(opened)
        switched = raw.fetch_in_session(conn, continued_with, opened.session_id, 1, [])
        assert (switched.error_code, switched.session_id, switched.partitions) == (
            Errors.FETCH_SESSION_TOPIC_ID_ERROR.code, 0, {}), f"session made with Fetch v{made_with}, continued v{continued_with}"
