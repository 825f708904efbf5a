"""Incremental fetch sessions (KIP-227; sessions name topics by id from Fetch v13, KIP-516).

Theory of operation
-------------------
A consumer or follower that fetches a thousand partitions, most of them idle, would send and get
back a thousand partition entries on every Fetch.  A *fetch session* lets the broker remember the
partition list and each partition's fetch parameters, so that later requests name only what
changed and responses carry only the partitions with something new.  Kafka keeps the rules in
``FetchManager.newContext``, ``FetchSession``, ``FetchSessionCacheShard`` and the ``FetchContext``
classes; this module keeps the same rules as data, with no socket and no clock (``now_ms`` is
always an argument).

**Request metadata.**  Fetch v7+ carries ``SessionId`` and ``SessionEpoch``; older versions act
as (0, -1).  Each request becomes a *fetch context* (:meth:`FetchSessionCache.new_context`):

==============================================  ==================================================
request                                          context
==============================================  ==================================================
any id, epoch -1 (``FINAL_EPOCH``)              sessionless: the named session (id != 0) is
                                                closed; every partition is answered; session id 0
any id, epoch 0 (``INITIAL_EPOCH``)             full: the named session is closed; every
                                                partition is answered, then a new session is
                                                cached if there is room; its id (or 0) is answered
id, epoch > 0, no such session                  error FETCH_SESSION_ID_NOT_FOUND (70)
id, epoch != the session's                      error INVALID_FETCH_SESSION_EPOCH (71)
v13+ on a session made below v13, or the        error FETCH_SESSION_TOPIC_ID_ERROR (106)
other way round
id, the session's epoch                         incremental: the request's partitions are added or
                                                updated, the forgotten ones removed, the epoch
                                                advanced; a session left empty is closed and the
                                                fetch answered sessionless
==============================================  ==================================================

An error context is answered at once: the error at the top level, session id 0, no partitions.
A session id that no cache shard owns (see below) makes Kafka's shard lookup fail with an index
error; Kafka then answers the whole request UNKNOWN_SERVER_ERROR (-1) the way it answers any
unexpected exception, echoing the session id (:class:`SessionIdOutOfRange`).

**Epochs.**  A new session has epoch 1: the client's next request carries 1, the one after 2, and
so on (:func:`next_epoch`: after 2^31-1 comes 1, never 0 again, which would mean "create").
The epoch advances when the incremental request is accepted, not when it is answered; a request
parked in purgatory whose session moved on meanwhile (a duplicate sent with the same epoch) is
answered INVALID_FETCH_SESSION_EPOCH with the session's id and no partitions.

**Which partitions an incremental response carries** (``CachedPartition.maybeUpdateResponseData``).
For each partition of the session the broker remembers the high watermark and log start offset it
last sent.  A partition is in the response when it has records, its high watermark or log start
offset changed (the remembered values are updated), it names a preferred read replica (KIP-392),
it has an error (the remembered high watermark becomes -1, so the partition is sent again once the
error clears) or a diverging epoch (KIP-595).  Nothing else counts: a change of the last stable
offset alone does not.  A partition that was sent with records moves to the end of the session's
order, so the next read serves the others first under ``max_bytes``.

**The cache** (``FetchSessionCacheShard``).  It is split into 8 shards; each holds at most
``max.incremental.fetch.session.cache.slots // 8`` sessions (fewer than 8 slots: no sessions at
all) and owns the ids ``[max(1, k*R), (k+1)*R)`` with ``R = (2^31-1) // 8``.  A full fetch asks the
next shard in round-robin order; the new session's id is random in that shard's range and unique.
A session is found through shard ``id / R`` (Java's division, truncating toward zero).

When the shard is full, the new session may take the place of one that is
1. stale: the least recently used session, if unused for more than 120000 ms
   (Kafka's constant ``MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS``; not a config in Kafka 4.3), else
2. less valuable: sessions compare by (privileged, partition count, id); a follower's session is
   privileged, a consumer's is not; the newcomer counts with id 0, so it must be privileged where
   the other is not, or hold strictly more partitions.  Only *evictable* sessions are candidates:
   a consumer's session is always evictable by a follower's; any session older than 120000 ms is
   evictable by all.  Both are decided when the session was last used (created or touched).
Otherwise no session is created and the full fetch is answered with session id 0.

Invariants (:meth:`FetchSessionCache.check_valid`): session ids are non-zero, unique and inside
their shard's range; no shard holds more than its share of slots; the count of cached partitions
is the sum of the sessions' sizes as last touched.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ..errors import ErrorCode, Errors

INVALID_SESSION_ID = 0
INITIAL_EPOCH = 0  # "create a session"
FINAL_EPOCH = -1  # "no session": close the named one, create none
SESSIONS_FROM_VERSION = 7  # KIP-227
TOPIC_IDS_FROM_VERSION = 13  # KIP-516
MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS = 120_000
CACHE_SHARDS = 8  # Kafka's NumFetchSessionCacheShards
INT32_MAX = (1 << 31) - 1
ZERO_UUID = uuid.UUID(int=0)
NO_PREFERRED_REPLICA = -1
NO_DIVERGING_EPOCH = -1


def next_epoch(epoch: int) -> int:
    """The epoch after ``epoch`` (Kafka's ``FetchMetadata.nextEpoch``)."""
    if epoch < 0:
        return FINAL_EPOCH
    if epoch == INT32_MAX:
        return 1
    return epoch + 1


def session_metadata(version: int, session_id: int, epoch: int) -> tuple[int, int]:
    """(session id, epoch) of a Fetch: before v7 there are none, which reads as (0, -1)."""
    return (session_id, epoch) if version >= SESSIONS_FROM_VERSION else (INVALID_SESSION_ID, FINAL_EPOCH)


class SessionIdOutOfRange(Exception):
    """A session id no shard owns: Kafka's lookup throws, and the request is UNKNOWN_SERVER_ERROR."""


# -- what a request asks and what an answer says -------------------------------------------------


@dataclass(frozen=True)
class TopicIdPartition:
    """A partition as a Fetch names it: by id from v13 (``topic`` None when the id is unknown here),
    by name before (``topic_id`` is then the zero UUID)."""

    topic_id: uuid.UUID
    topic: str | None
    partition: int


@dataclass(frozen=True)
class PartitionFetch:
    """One partition's fetch parameters (Kafka's ``FetchRequest.PartitionData``)."""

    fetch_offset: int
    log_start_offset: int = -1  # the follower's; -1 from consumers
    partition_max_bytes: int = 1 << 20
    current_leader_epoch: int = -1
    last_fetched_epoch: int = -1


@dataclass(frozen=True)
class PartitionResult:
    """What the session needs to know of one partition's answer."""

    records_size: int
    high_watermark: int
    log_start_offset: int
    error: ErrorCode = Errors.NONE
    preferred_read_replica: int = NO_PREFERRED_REPLICA
    diverging_epoch: int = NO_DIVERGING_EPOCH


SessionKey = tuple[uuid.UUID | str | None, int]


def session_key(topic_id: uuid.UUID, topic: str | None, partition: int) -> SessionKey:
    """How a session finds a partition: by topic id when there is one, else by name."""
    return (topic_id, partition) if topic_id != ZERO_UUID else (topic, partition)


@dataclass
class CachedPartition:
    """A partition of a session: its last request parameters and what was last sent for it."""

    topic_id: uuid.UUID
    topic: str | None
    partition: int
    request: PartitionFetch
    high_watermark: int = -1
    local_log_start_offset: int = -1

    @property
    def key(self) -> SessionKey:
        return session_key(self.topic_id, self.topic, self.partition)

    @property
    def topic_id_partition(self) -> TopicIdPartition:
        return TopicIdPartition(self.topic_id, self.topic, self.partition)

    def must_respond(self, result: PartitionResult, update: bool) -> bool:
        """Whether an incremental response carries this partition (``maybeUpdateResponseData``);
        with ``update`` the remembered high watermark and log start offset follow the answer."""
        must = result.records_size > 0
        if self.high_watermark != result.high_watermark:
            must = True
            if update:
                self.high_watermark = result.high_watermark
        if self.local_log_start_offset != result.log_start_offset:
            must = True
            if update:
                self.local_log_start_offset = result.log_start_offset
        if result.preferred_read_replica != NO_PREFERRED_REPLICA:
            must = True
        if result.error != Errors.NONE:
            must = True
            if update:
                self.high_watermark = -1  # sent again once the error clears
        if result.diverging_epoch >= 0:
            must = True
        return must


@dataclass(eq=False)
class FetchSession:
    """One cached session.  ``cached_size`` and the two ``evictable_*`` flags are the values the
    cache recorded when it last touched the session; eviction uses those, as Kafka's trees do."""

    id: int
    privileged: bool  # created by a follower
    uses_topic_ids: bool  # created by Fetch v13+
    creation_ms: int
    last_used_ms: int
    epoch: int
    partitions: dict[SessionKey, CachedPartition] = field(default_factory=dict)
    cached_size: int = -1  # -1: not in the cache
    evictable_by_all: bool = False
    evictable_by_privileged: bool = False

    def __len__(self) -> int:
        return len(self.partitions)

    @property
    def eviction_key(self) -> tuple[bool, int, int]:
        """Least valuable first: unprivileged before privileged, then fewer partitions, then id."""
        return (self.privileged, self.cached_size, self.id)

    def update(self, fetch_data: Mapping[TopicIdPartition, PartitionFetch],
               to_forget: Sequence[TopicIdPartition]) -> tuple[list[SessionKey], list[SessionKey], list[SessionKey]]:
        """Apply an incremental request: (added, updated, removed) partitions."""
        added, updated, removed = [], [], []
        for wanted, request in fetch_data.items():
            key = session_key(wanted.topic_id, wanted.topic, wanted.partition)
            cached = self.partitions.get(key)
            if cached is None:
                self.partitions[key] = CachedPartition(wanted.topic_id, wanted.topic, wanted.partition, request)
                added.append(key)
            else:
                cached.request = request
                updated.append(key)
        for forgotten in to_forget:
            key = session_key(forgotten.topic_id, forgotten.topic, forgotten.partition)
            if self.partitions.pop(key, None) is not None:
                removed.append(key)
        return added, updated, removed

    def move_to_end(self, key: SessionKey) -> None:
        self.partitions[key] = self.partitions.pop(key)


# -- the cache -----------------------------------------------------------------------------------


class FetchSessionCacheShard:
    """A share of the cache: its sessions, its id range and Kafka's eviction rule."""

    def __init__(self, max_entries: int, eviction_ms: int, session_id_range: int, shard_number: int,
                 rng: random.Random) -> None:
        self.max_entries = max_entries
        self.eviction_ms = eviction_ms
        self.session_id_range = session_id_range
        self.shard_number = shard_number
        self.sessions: dict[int, FetchSession] = {}
        self.total_partitions = 0
        self._random = rng

    @property
    def first_id(self) -> int:
        return max(1, self.shard_number * self.session_id_range)

    @property
    def end_id(self) -> int:
        return (self.shard_number + 1) * self.session_id_range

    def __len__(self) -> int:
        return len(self.sessions)

    def get(self, session_id: int) -> FetchSession | None:
        return self.sessions.get(session_id)

    def new_session_id(self) -> int:
        while True:
            session_id = self._random.randrange(self.first_id, self.end_id)
            if session_id not in self.sessions and session_id != INVALID_SESSION_ID:
                return session_id

    def maybe_create_session(self, now_ms: int, privileged: bool, size: int, uses_topic_ids: bool,
                             partitions: Callable[[], dict[SessionKey, CachedPartition]]) -> int:
        """A new session's id, or INVALID_SESSION_ID when there is no room (even after eviction)."""
        if len(self.sessions) >= self.max_entries and not self._try_evict(privileged, size, now_ms):
            return INVALID_SESSION_ID
        session = FetchSession(self.new_session_id(), privileged, uses_topic_ids, now_ms, now_ms,
                               next_epoch(INITIAL_EPOCH), partitions())
        self.sessions[session.id] = session
        self.touch(session, now_ms)
        return session.id

    def _try_evict(self, privileged: bool, size: int, now_ms: int) -> bool:
        """Make room for a session of ``size`` partitions: evict a stale session, else the least
        valuable evictable one if the newcomer is worth at least as much."""
        if not self.sessions:
            return False
        stalest = min(self.sessions.values(), key=lambda session: (session.last_used_ms, session.id))
        if now_ms - stalest.last_used_ms > self.eviction_ms:
            self.remove(stalest)
            return True
        candidates = [session for session in self.sessions.values()
                      if (session.evictable_by_privileged if privileged else session.evictable_by_all)]
        if not candidates:
            return False
        weakest = min(candidates, key=lambda session: session.eviction_key)
        if (privileged, size, 0) < weakest.eviction_key:
            return False
        self.remove(weakest)
        return True

    def remove(self, session: FetchSession) -> FetchSession | None:
        if self.sessions.get(session.id) is not session:
            return None
        del self.sessions[session.id]
        self.total_partitions -= session.cached_size
        session.cached_size = -1
        return session

    def touch(self, session: FetchSession, now_ms: int) -> None:
        """Record a use: last-used time, size and evictability as of now."""
        session.last_used_ms = now_ms
        if session.cached_size != -1:
            self.total_partitions -= session.cached_size
        session.cached_size = len(session)
        old_enough = now_ms - session.creation_ms > self.eviction_ms
        session.evictable_by_privileged = not session.privileged or old_enough
        session.evictable_by_all = old_enough
        self.total_partitions += session.cached_size


class FetchSessionCache:
    """Every fetch session of a broker, in ``CACHE_SHARDS`` shards (Kafka's ``FetchSessionCache``
    plus ``FetchManager.newContext``)."""

    def __init__(self, slots: int = 1000, eviction_ms: int = MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS,
                 shards: int = CACHE_SHARDS, rng: random.Random | None = None) -> None:
        self._random = rng or random.Random()
        self.session_id_range = INT32_MAX // shards
        self.shards = [FetchSessionCacheShard(slots // shards, eviction_ms, self.session_id_range, number,
                                              self._random) for number in range(shards)]
        self._next_shard = 0

    def __len__(self) -> int:
        return sum(len(shard) for shard in self.shards)

    @property
    def total_partitions(self) -> int:
        return sum(shard.total_partitions for shard in self.shards)

    def shard_for(self, session_id: int) -> FetchSessionCacheShard:
        """The shard that owns ``session_id`` (``SessionIdOutOfRange`` if none does)."""
        quotient = abs(session_id) // self.session_id_range
        number = -quotient if session_id < 0 else quotient  # Java's int division truncates toward zero
        if not 0 <= number < len(self.shards):
            raise SessionIdOutOfRange(f"no fetch session cache shard owns session id {session_id}")
        return self.shards[number]

    def next_shard(self) -> FetchSessionCacheShard:
        """Shards take new sessions in turn, one turn per full fetch."""
        shard = self.shards[self._next_shard % len(self.shards)]
        self._next_shard += 1
        return shard

    def get(self, session_id: int) -> FetchSession | None:
        return self.shard_for(session_id).get(session_id)

    def new_context(self, version: int, session_id: int, epoch: int, privileged: bool,
                    fetch_data: Mapping[TopicIdPartition, PartitionFetch], to_forget: Sequence[TopicIdPartition],
                    topic_name: Callable[[uuid.UUID], str | None], now_ms: int) -> FetchContext:
        """The fetch context of one request (Kafka's ``FetchManager.newContext``; see the table in
        the module docstring).  Raises :class:`SessionIdOutOfRange` as Kafka's lookup fails."""
        if epoch in (INITIAL_EPOCH, FINAL_EPOCH):
            if session_id != INVALID_SESSION_ID:
                shard = self.shard_for(session_id)
                named = shard.get(session_id)
                if named is not None:
                    shard.remove(named)
            if epoch == FINAL_EPOCH:
                return SessionlessFetchContext(fetch_data)
            return FullFetchContext(self, fetch_data, version >= TOPIC_IDS_FROM_VERSION, privileged)
        shard = self.shard_for(session_id)
        session = shard.get(session_id)
        if session is None:
            return SessionErrorContext(Errors.FETCH_SESSION_ID_NOT_FOUND)
        if session.epoch != epoch:
            return SessionErrorContext(Errors.INVALID_FETCH_SESSION_EPOCH)
        if session.uses_topic_ids != (version >= TOPIC_IDS_FROM_VERSION):
            return SessionErrorContext(Errors.FETCH_SESSION_TOPIC_ID_ERROR)
        session.update(fetch_data, to_forget)
        if not session.partitions:
            shard.remove(session)
            return SessionlessFetchContext(fetch_data)
        shard.touch(session, now_ms)
        session.epoch = next_epoch(session.epoch)
        return IncrementalFetchContext(epoch, session, topic_name)

    def check_valid(self) -> None:
        """Assert the cache's invariants (see the module docstring)."""
        seen: set[int] = set()
        for shard in self.shards:
            assert len(shard.sessions) <= max(shard.max_entries, 0), f"shard {shard.shard_number} over its slots"
            for session_id, session in shard.sessions.items():
                assert session_id == session.id != INVALID_SESSION_ID
                assert shard.first_id <= session_id < shard.end_id, f"session {session_id} outside its shard"
                assert session_id not in seen
                seen.add(session_id)
                assert session.epoch > 0 and session.cached_size >= 0
            assert shard.total_partitions == sum(s.cached_size for s in shard.sessions.values())


# -- fetch contexts ------------------------------------------------------------------------------

Answer = TypeVar("Answer")  # the handler's answer for one partition


@dataclass
class ContextResponse(Generic[Answer]):
    """The top of a Fetch response and the partitions it carries, in order."""

    error: ErrorCode
    session_id: int
    partitions: list[tuple[TopicIdPartition, Answer]]


class FetchContext:
    """What to read for one Fetch, and what to answer once read (Kafka's ``FetchContext``)."""

    error: ErrorCode | None = None  # set by a session error: answered at once, nothing read

    def partitions(self) -> list[tuple[TopicIdPartition, PartitionFetch]]:
        raise NotImplementedError

    def respond(self, answers: list[tuple[TopicIdPartition, Answer]], result: Callable[[Answer], PartitionResult],
                now_ms: int) -> ContextResponse[Answer]:
        """The response for the answers read (every partition of :meth:`partitions`, in order)."""
        raise NotImplementedError


class SessionErrorContext(FetchContext):
    def __init__(self, error: ErrorCode) -> None:
        self.error = error

    def partitions(self) -> list[tuple[TopicIdPartition, PartitionFetch]]:
        return []

    def respond(self, answers: list[tuple[TopicIdPartition, Answer]], result: Callable[[Answer], PartitionResult],
                now_ms: int) -> ContextResponse[Answer]:
        assert self.error is not None
        return ContextResponse(self.error, INVALID_SESSION_ID, [])


class SessionlessFetchContext(FetchContext):
    def __init__(self, fetch_data: Mapping[TopicIdPartition, PartitionFetch]) -> None:
        self.fetch_data = dict(fetch_data)

    def partitions(self) -> list[tuple[TopicIdPartition, PartitionFetch]]:
        return list(self.fetch_data.items())

    def respond(self, answers: list[tuple[TopicIdPartition, Answer]], result: Callable[[Answer], PartitionResult],
                now_ms: int) -> ContextResponse[Answer]:
        return ContextResponse(Errors.NONE, INVALID_SESSION_ID, answers)


class FullFetchContext(FetchContext):
    """Every partition is answered; then a session remembering them is created if there is room."""

    def __init__(self, cache: FetchSessionCache, fetch_data: Mapping[TopicIdPartition, PartitionFetch],
                 uses_topic_ids: bool, privileged: bool) -> None:
        self.cache = cache
        self.fetch_data = dict(fetch_data)
        self.uses_topic_ids = uses_topic_ids
        self.privileged = privileged

    def partitions(self) -> list[tuple[TopicIdPartition, PartitionFetch]]:
        return list(self.fetch_data.items())

    def respond(self, answers: list[tuple[TopicIdPartition, Answer]], result: Callable[[Answer], PartitionResult],
                now_ms: int) -> ContextResponse[Answer]:
        def cached_partitions() -> dict[SessionKey, CachedPartition]:
            cached = {}
            for wanted, answer in answers:
                read = result(answer)
                partition = CachedPartition(wanted.topic_id, wanted.topic, wanted.partition, self.fetch_data[wanted],
                                            read.high_watermark, read.log_start_offset)
                cached[partition.key] = partition
            return cached

        session_id = self.cache.next_shard().maybe_create_session(now_ms, self.privileged, len(answers),
                                                                  self.uses_topic_ids, cached_partitions)
        return ContextResponse(Errors.NONE, session_id, answers)


class IncrementalFetchContext(FetchContext):
    """Every partition of the session is read; the response keeps those with news."""

    def __init__(self, request_epoch: int, session: FetchSession, topic_name: Callable[[uuid.UUID], str | None]) -> None:
        self.request_epoch = request_epoch
        self.session = session
        self.topic_name = topic_name

    def partitions(self) -> list[tuple[TopicIdPartition, PartitionFetch]]:
        read = []
        for cached in self.session.partitions.values():
            if self.session.uses_topic_ids and cached.topic is None:  # the id may have become known
                cached.topic = self.topic_name(cached.topic_id)
            read.append((cached.topic_id_partition, cached.request))
        return read

    def respond(self, answers: list[tuple[TopicIdPartition, Answer]], result: Callable[[Answer], PartitionResult],
                now_ms: int) -> ContextResponse[Answer]:
        session = self.session
        if session.epoch != next_epoch(self.request_epoch):  # a duplicate request moved the session on
            return ContextResponse(Errors.INVALID_FETCH_SESSION_EPOCH, session.id, [])
        carried = []
        for wanted, answer in answers:
            key = session_key(wanted.topic_id, wanted.topic, wanted.partition)
            cached = session.partitions.get(key)
            read = result(answer)
            if cached is not None and cached.must_respond(read, update=True):
                carried.append((wanted, answer))
                if read.records_size > 0:
                    session.move_to_end(key)
        return ContextResponse(Errors.NONE, session.id, carried)
