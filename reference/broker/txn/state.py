"""The states of a transactional id and the transitions between them, kept as data.

Theory of operation
-------------------
Mirrors Kafka's ``TransactionState`` (transaction-coordinator module, Kafka 4.x).  A transactional
id is always in one state; the state is what ``__transaction_state`` records (``TransactionStatus``,
an INT8 id) and what DescribeTransactions and ListTransactions name (the string)::

    id  state               meaning
    0   Empty               no transaction open; the producer id/epoch are current
    1   Ongoing             partitions (or a group's offsets) were added: a transaction is open
    2   PrepareCommit       EndTxn(commit) is durable; commit markers are being written
    3   PrepareAbort        EndTxn(abort), a fence or a timeout is durable; abort markers are being written
    4   CompleteCommit      every commit marker is written
    5   CompleteAbort       every abort marker is written
    6   Dead                the id expired (transactional.id.expiration.ms); a tombstone follows
    7   PrepareEpochFence   a new InitProducerId or a timeout bumps the epoch before aborting

Each state lists the states it may be entered from (Kafka's ``validPreviousStates``);
:func:`check_transition` raises :class:`IllegalTransactionTransition` for any other pair.  KIP-890
(transaction version 2) lets an *empty* transaction be aborted, which is why PrepareAbort may follow
Empty and the Complete states.

Invariant: a transition the table does not list never reaches the log.
"""

from __future__ import annotations

import enum


class TransactionState(enum.Enum):
    EMPTY = (0, "Empty")
    ONGOING = (1, "Ongoing")
    PREPARE_COMMIT = (2, "PrepareCommit")
    PREPARE_ABORT = (3, "PrepareAbort")
    COMPLETE_COMMIT = (4, "CompleteCommit")
    COMPLETE_ABORT = (5, "CompleteAbort")
    DEAD = (6, "Dead")
    PREPARE_EPOCH_FENCE = (7, "PrepareEpochFence")

    @property
    def id(self) -> int:
        return self.value[0]

    @property
    def state_name(self) -> str:
        return self.value[1]

    @classmethod
    def from_id(cls, state_id: int) -> TransactionState:
        for state in cls:
            if state.id == state_id:
                return state
        raise ValueError(f"unknown transaction state id {state_id}")

    @classmethod
    def from_name(cls, name: str) -> TransactionState | None:
        return next((state for state in cls if state.state_name == name), None)

    def __str__(self) -> str:
        return self.state_name


S = TransactionState
_COMPLETE_OR_EMPTY = frozenset({S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT})

# state -> the states it may be entered from (Kafka's validPreviousStates).
VALID_PREVIOUS_STATES: dict[TransactionState, frozenset[TransactionState]] = {
    S.EMPTY: _COMPLETE_OR_EMPTY,
    S.ONGOING: _COMPLETE_OR_EMPTY | {S.ONGOING},
    S.PREPARE_COMMIT: frozenset({S.ONGOING}),
    S.PREPARE_ABORT: _COMPLETE_OR_EMPTY | {S.ONGOING, S.PREPARE_EPOCH_FENCE},
    S.COMPLETE_COMMIT: frozenset({S.PREPARE_COMMIT}),
    S.COMPLETE_ABORT: frozenset({S.PREPARE_ABORT}),
    S.DEAD: _COMPLETE_OR_EMPTY,
    S.PREPARE_EPOCH_FENCE: frozenset({S.ONGOING}),
}

# States whose transaction is decided but whose markers are not all written yet.
PREPARE_STATES = frozenset({S.PREPARE_COMMIT, S.PREPARE_ABORT})
COMPLETE_STATES = frozenset({S.COMPLETE_COMMIT, S.COMPLETE_ABORT})


class IllegalTransactionTransition(Exception):
    def __init__(self, transactional_id: str, state: TransactionState, new_state: TransactionState) -> None:
        super().__init__(f"transactional id {transactional_id!r}: {state} -> {new_state} is illegal")
        self.transactional_id = transactional_id
        self.state = state
        self.new_state = new_state


def check_transition(transactional_id: str, state: TransactionState, new_state: TransactionState) -> None:
    if state not in VALID_PREVIOUS_STATES[new_state]:
        raise IllegalTransactionTransition(transactional_id, state, new_state)
