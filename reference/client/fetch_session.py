"""The client half of KIP-227 incremental fetch sessions, one per broker (sans-IO).

Theory of operation
-------------------
A consumer fetching hundreds of partitions from a broker would send all of them in every Fetch,
though most have not changed.  With a *fetch session* the broker remembers the partitions and the
client sends only what changed.  Java's ``FetchSessionHandler``; the wire fields are Fetch v7+'s
``SessionId`` and ``SessionEpoch``:

    SessionId 0, SessionEpoch -1   sessionless full fetch (FINAL_EPOCH without a session)
    SessionId 0, SessionEpoch 0    full fetch, please create a session (INITIAL)
    SessionId S, SessionEpoch 0    full fetch, close session S and create a new one
    SessionId S, SessionEpoch n>0  incremental fetch in session S: only partitions added or
                                   changed (fetch offset, leader epoch, max bytes), plus
                                   ``ForgottenTopicsData`` for those the client no longer wants

Rules kept by :class:`FetchSession`:

1. A full request lists every wanted partition; an incremental one lists the added and altered
   ones and forgets the removed ones.  Either way the session's partition map becomes the wanted
   set once the request is *built* (the broker applies it when it reads the request).
2. An answer to a full request with ``SessionId`` 0 means the broker made no session (the
   reference broker may not serve sessions): the next request is full again.  A non-zero id opens
   a session at epoch 1.  An answer to an incremental request moves the epoch on (after
   2**31-1 comes 1, never 0); ``SessionId`` 0 there means the broker closed it: full next.
3. ``FETCH_SESSION_ID_NOT_FOUND`` (70): the broker forgot the session -> next full, id 0.
   ``INVALID_FETCH_SESSION_EPOCH`` (71) or any other top-level error, a lost connection or a
   timeout -> next full, closing the old id (epoch 0).  The answer's partitions are not used.
4. An incremental answer may omit partitions (no new data); a partition in an answer that is not
   in the session is a broken answer, treated as rule 3.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import Errors
from .cluster import TopicPartition

INVALID_SESSION_ID = 0
INITIAL_EPOCH = 0
FINAL_EPOCH = -1  # also the sessionless epoch
MAX_EPOCH = 2**31 - 1


@dataclass(frozen=True)
class PartitionRequest:
    """What one partition asks for in a Fetch (the fields that make it "altered" when changed)."""

    fetch_offset: int
    current_leader_epoch: int
    max_bytes: int


@dataclass(frozen=True)
class SessionRequest:
    session_id: int
    epoch: int
    to_send: dict[TopicPartition, PartitionRequest]
    to_forget: list[TopicPartition]

    @property
    def full(self) -> bool:
        return self.epoch in (INITIAL_EPOCH, FINAL_EPOCH)


class FetchSession:
    def __init__(self, node_id: int, use_sessions: bool = True) -> None:
        self.node_id = node_id
        self.use_sessions = use_sessions
        self.session_id = INVALID_SESSION_ID
        self.epoch = INITIAL_EPOCH if use_sessions else FINAL_EPOCH
        self.partitions: dict[TopicPartition, PartitionRequest] = {}
        self.full_requests = 0  # counters, for tests and logs
        self.incremental_requests = 0

    def build(self, wanted: dict[TopicPartition, PartitionRequest]) -> SessionRequest:
        """Rule 1: the request for the ``wanted`` partitions."""
        if self.epoch in (INITIAL_EPOCH, FINAL_EPOCH):
            self.full_requests += 1
            self.partitions = dict(wanted)
            return SessionRequest(self.session_id, self.epoch, dict(wanted), [])
        self.incremental_requests += 1
        to_send = {tp: data for tp, data in wanted.items() if self.partitions.get(tp) != data}
        to_forget = [tp for tp in self.partitions if tp not in wanted]
        self.partitions = dict(wanted)
        return SessionRequest(self.session_id, self.epoch, to_send, to_forget)

    def handle_response(self, request: SessionRequest, error_code: int, session_id: int,
                        answered: set[TopicPartition]) -> bool:
        """Rules 2-4; returns False when the answer's partitions must not be used."""
        if error_code != Errors.NONE.code:
            if error_code == Errors.FETCH_SESSION_ID_NOT_FOUND.code:
                self._start_over(close_existing=False)
            else:
                self._start_over(close_existing=True)
            return False
        if not self.use_sessions:
            return True
        if not request.full and not answered <= set(self.partitions):
            self._start_over(close_existing=True)
            return False
        if session_id == INVALID_SESSION_ID:
            self._start_over(close_existing=False)  # no session was made, or it was closed
        elif request.full:
            self.session_id, self.epoch = session_id, 1
        else:
            self.epoch = 1 if self.epoch >= MAX_EPOCH else self.epoch + 1
        return True

    def handle_error(self) -> None:
        """Rule 3: the request was lost; the broker's idea of the session is unknown."""
        self._start_over(close_existing=True)

    def _start_over(self, close_existing: bool) -> None:
        if not self.use_sessions:
            return
        if not close_existing:
            self.session_id = INVALID_SESSION_ID
        self.epoch = INITIAL_EPOCH
