"""Executable model of KRaft, Kafka's Raft: elections with pre-vote, Fetch replication, the high watermark.

Theory of operation
-------------------
A fixed set of ``voters`` (KIP-595: the controller quorum; observers are left out, they never vote
and never count toward the high watermark).  Each voter keeps:

* its *durable* state, which survives a crash: the log of ``(epoch, record)`` entries (the offset
  is the position) and the ``quorum-state`` file, holding the current epoch and the voter it voted
  for in that epoch (``votedId``);
* its volatile state, lost on a crash: its role, the leader it follows, its high watermark, the
  votes or pre-votes it has collected, whether it heard from a leader within the fetch timeout,
  and, as leader, each follower's fetch offset in the current epoch.

Roles (KIP-595 and KIP-996's names), as a table of who moves where:

=============  ==================================================  ==========================
role           becomes                                             on
=============  ==================================================  ==========================
follower       prospective (kip-996) / candidate (classic)         ``Timeout``
unattached     prospective (kip-996) / candidate (classic)         ``Timeout``
prospective    candidate (epoch + 1, votes for itself)             a majority of pre-votes
candidate      leader                                              a majority of votes
candidate      prospective / candidate in the next epoch           ``Timeout``
any            unattached in epoch E                               a request or answer naming
                                                                   a higher epoch E
any            follower of L in epoch E                            ``BeginQuorumEpoch`` from L
any            (crashed), then unattached, same epoch and vote     ``Crash``, ``Restart``
=============  ==================================================  ==========================

Actions (each request/response is one atomic step; what it loses is said below):

* ``Timeout(voter)``: the fetch or election timeout expires.  Under ``kip-996`` the voter becomes
  *prospective*: it asks for pre-votes without bumping its epoch, so a voter cut off from the
  quorum cannot disrupt a healthy leader by bumping the epoch again and again.  Under ``classic``
  it bumps its epoch, votes for itself and asks for votes at once.
* ``PreVote(prospective, voter)``: a voter grants a pre-vote if the prospective's log is at least
  as up to date and it has *not* heard from a leader within the fetch timeout (KIP-996); the
  ``heard_from_leader`` flag is set by a successful Fetch or a BeginQuorumEpoch and cleared by the
  voter's own timeout, which is how the model stands for the clock.  A majority makes the
  prospective a candidate.
* ``Vote(candidate, voter)``: a voter in a lower epoch moves to the candidate's epoch first.  It
  grants at most one vote per epoch (``one_vote_per_epoch``), only to a candidate whose log is at
  least as up to date, comparing the last epoch, then the end offset (``up_to_date_vote``), and
  writes the vote to ``quorum-state`` before answering (``vote_durable``).  A majority makes the
  candidate leader.
* ``BeginQuorumEpoch(leader, voter)``: the new leader tells a voter it leads the epoch.
* ``Append(leader)``: a client record (in KRaft, a metadata record) appended in the leader's epoch.
* ``Fetch(follower, leader)``: the follower sends its fetch offset (its log end offset) and the
  epoch of its last entry.  The leader checks them against its own log (KIP-595's
  ``DivergingEpoch``): it finds the largest epoch of its own not above the follower's last epoch
  and where that epoch ends; if that epoch differs or ends before the fetch offset, the logs
  diverge and the follower truncates to the smaller of that end and its own end of that epoch
  (``truncate_on_divergence``), fetching again afterwards.  Otherwise the leader records the fetch
  offset, returns everything after it, and advances its high watermark; the follower appends and
  takes ``min(leader high watermark, its end offset)``.
* ``Crash(voter)`` / ``Restart(voter)``: the log and ``quorum-state`` survive; the rest is lost.

The high watermark: the leader moves it to the largest offset a majority of voters have reached,
counting itself at its log end offset and each follower at its last fetch offset (``majority_hw``),
and only when the entry just below it was written in the leader's own epoch (``commit_own_epoch``;
Kafka waits until the high watermark passes the epoch start offset; the Raft paper's figure 8).
It never moves back while the voter leads.

Ghost state (history the invariants judge by): the *committed log*, every entry ever below a
leader's high watermark with the epoch of the leader that committed it, and whether a leader ever
committed a prefix that disagrees with it; and every (epoch, voter) that became leader.

Simplifications, chosen because they remove no failure a guard is about: requests and responses
are atomic (a reply to a stale request is modelled by the receiver stepping down when it sees a
higher epoch); a fetch returns every record after its offset; a new leader writes no
LeaderChange control record (a client record in its epoch plays that part for the high
watermark); no snapshots, observers or reconfiguration (KIP-853).

Pre-vote guards liveness, not safety: a voter that keeps timing out behind a partition bumps the
epoch in ``classic`` and deposes a healthy leader when it reconnects; in ``kip-996`` its pre-votes
are refused and the epoch stays.  Both variants are safe, so the refusal is not a guard a safety
checker can show necessary; it appears as the ``pre_vote_refused`` situation instead.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Iterator, Mapping
from typing import NamedTuple

from spec.checker import Invariant, Situation, Transition
from spec.model import BoundSpec, Guard, check_variant_and_guards, parse_bounds

NO_VOTER = -1

# Roles: a voter's volatile state machine (see the table above).
UNATTACHED = "unattached"  # knows an epoch but no leader in it
FOLLOWER = "follower"
PROSPECTIVE = "prospective"  # asking for pre-votes (KIP-996)
CANDIDATE = "candidate"
LEADER = "leader"


class Entry(NamedTuple):
    """One record in a voter's log; its offset is its position in the log."""

    epoch: int
    record: int


class Committed(NamedTuple):
    """Ghost: an entry of the committed log and the epoch of the leader that first committed it."""

    entry: Entry
    committed_in: int


class Voter(NamedTuple):
    # durable: the log and quorum-state (epoch, votedId)
    log: tuple[Entry, ...] = ()
    epoch: int = 0
    voted_for: int = NO_VOTER
    # volatile
    alive: bool = True
    role: str = UNATTACHED
    leader: int = NO_VOTER
    high_watermark: int = 0
    granted: frozenset[int] = frozenset()  # votes (candidate) or pre-votes (prospective), itself included
    heard_from_leader: bool = False
    fetched: tuple[int, ...] = ()  # leader only: each voter's last fetch offset in this epoch

    @property
    def last_epoch(self) -> int:
        return self.log[-1].epoch if self.log else 0


class KraftState(NamedTuple):
    voters: tuple[Voter, ...]
    committed: tuple[Committed, ...] = ()
    committed_rewritten: bool = False
    leaders: frozenset[tuple[int, int]] = frozenset()  # ghost: (epoch, voter) that became leader
    records_sent: int = 0
    elections: int = 0
    crashes: int = 0


VARIANTS = {
    "kip-996": "KIP-996: a voter asks for pre-votes before bumping its epoch",
    "classic": "KIP-595 as first shipped: a timed-out voter bumps its epoch and asks for votes at once",
}

GUARDS: dict[str, Guard] = {
    guard.name: guard
    for guard in (
        Guard("one_vote_per_epoch", "a voter grants at most one vote per epoch (votedId in quorum-state)",
              "two candidates win the same epoch: two leaders",
              {"voters": 3, "records": 0, "elections": 2, "crashes": 0}, "classic"),
        Guard("up_to_date_vote",
              "a voter grants a (pre-)vote only to a candidate whose log is at least as up to date: last epoch, "
              "then end offset",
              "a voter missing a committed entry is elected",
              {"voters": 3, "records": 1, "elections": 1, "crashes": 0}, "classic"),
        Guard("vote_durable", "the vote is written to quorum-state before it is granted, and survives a restart",
              "a voter votes, restarts, and votes again in the same epoch: two leaders",
              {"voters": 3, "records": 0, "elections": 2, "crashes": 1}, "classic"),
        Guard("commit_own_epoch",
              "the leader advances the high watermark only over an entry of its own epoch (Raft figure 8)",
              "an entry of an older epoch is committed, then overwritten by a leader that never had it",
              {"voters": 3, "records": 2, "elections": 3, "crashes": 0}, "classic"),
        Guard("truncate_on_divergence",
              "the leader answers a fetch whose offset and last epoch disagree with its log with DivergingEpoch, "
              "and the follower truncates",
              "a follower keeps an entry of a deposed leader under one it fetches: logs disagree below the HW",
              {"voters": 3, "records": 2, "elections": 1, "crashes": 0}, "classic"),
        Guard("majority_hw", "the high watermark is the offset a majority of voters have fetched",
              "an entry only the leader holds is committed and lost with it",
              {"voters": 3, "records": 1, "elections": 0, "crashes": 0}),
    )
}

BOUNDS = (
    BoundSpec("voters", 3, "voters in the quorum (controller.quorum.voters)", minimum=1),
    BoundSpec("records", 2, "records appended by leaders in total"),
    BoundSpec("elections", 2, "epoch bumps by candidates after the first leader"),
    BoundSpec("crashes", 1, "voter crashes (log and quorum-state survive)"),
)

SITUATIONS = (
    ("committed_with_quorum", "a high watermark above 0"),
    ("leader_change_over_data", "a leader elected over a non-empty log"),
    ("truncated_suffix", "a follower truncated a non-empty suffix on a DivergingEpoch answer"),
    ("vote_refused_stale_log", "a vote refused because the candidate's log was behind"),
    ("vote_refused_already_voted", "a vote refused because the voter had voted for another in this epoch"),
    ("restart_after_vote", "a voter restarted holding a vote in its epoch"),
    ("pre_vote_refused", "a pre-vote refused because the voter heard from a leader within the fetch timeout"),
)


class KraftModel:
    """The KRaft model for one variant, bounds and set of disabled guards."""

    name = "kraft"

    def __init__(self, variant: str = "kip-996", bounds: Mapping[str, int | str] | None = None,
                 disabled: frozenset[str] = frozenset()) -> None:
        check_variant_and_guards(variant, VARIANTS, disabled, GUARDS)
        self.variant = variant
        self.pre_vote = variant == "kip-996"
        self.bounds = parse_bounds(BOUNDS, bounds or {})
        self.voter_count = int(self.bounds["voters"])
        self.max_records = int(self.bounds["records"])
        self.max_elections = int(self.bounds["elections"])
        self.max_crashes = int(self.bounds["crashes"])
        self.majority = self.voter_count // 2 + 1
        self.ids = tuple(range(self.voter_count))
        self.permutations = tuple(itertools.permutations(self.ids))
        self.guards = frozenset(GUARDS) - disabled
        self.disabled = disabled

    def guarded(self, name: str) -> bool:
        return name in self.guards

    def describe_bounds(self) -> str:
        text = " ".join(f"{k}={v}" for k, v in self.bounds.items())
        return text + (" without " + ",".join(sorted(self.disabled)) if self.disabled else "")

    def initial_states(self) -> Iterator[KraftState]:
        """Voter 0 leads epoch 1, elected by everyone, and every voter knows it; the logs are empty."""
        voters = tuple(
            Voter(epoch=1, voted_for=0, role=LEADER if v == 0 else FOLLOWER, leader=0, heard_from_leader=v != 0,
                  fetched=(0,) * self.voter_count if v == 0 else ())
            for v in self.ids
        )
        yield KraftState(voters, leaders=frozenset({(1, 0)}))

    # --- helpers --------------------------------------------------------------------------------

    @staticmethod
    def _with(state: KraftState, changes: Mapping[int, Voter]) -> tuple[Voter, ...]:
        return tuple(changes.get(v, voter) for v, voter in enumerate(state.voters))

    @staticmethod
    def _unattached(voter: Voter, epoch: int) -> Voter:
        """A voter that saw a higher epoch: it joins that epoch with no leader and no vote cast."""
        return voter._replace(epoch=epoch, voted_for=NO_VOTER, role=UNATTACHED, leader=NO_VOTER,
                              granted=frozenset(), fetched=())

    def _log_is_up_to_date(self, candidate: Voter, voter: Voter) -> bool:
        """KIP-595's vote rule: the candidate's (last epoch, end offset) is at least the voter's."""
        if not self.guarded("up_to_date_vote"):
            return True
        return (candidate.last_epoch, len(candidate.log)) >= (voter.last_epoch, len(voter.log))

    def _become_candidate(self, voter: Voter, v: int) -> Voter:
        return voter._replace(epoch=voter.epoch + 1, voted_for=v, role=CANDIDATE, leader=NO_VOTER,
                              granted=frozenset({v}), heard_from_leader=False)

    def _become_leader(self, state: KraftState, c: int, candidate: Voter) -> tuple[Voter, frozenset[tuple[int, int]]]:
        leader = candidate._replace(role=LEADER, leader=c, granted=frozenset(), fetched=(0,) * self.voter_count)
        return leader, state.leaders | {(candidate.epoch, c)}

    def _advance_high_watermark(self, state: KraftState, leader: Voter) -> tuple[Voter, KraftState, bool]:
        """The leader's new high watermark, and the committed log it extends (ghost)."""
        if self.guarded("majority_hw"):
            reached = sorted((len(leader.log) if v == leader.leader else leader.fetched[v] for v in self.ids),
                             reverse=True)
            candidate = reached[self.majority - 1]
        else:
            candidate = len(leader.log)  # the mutant: the leader's own copy is enough
        if candidate <= leader.high_watermark:
            return leader, state, False
        if self.guarded("commit_own_epoch") and leader.log[candidate - 1].epoch != leader.epoch:
            return leader, state, False
        leader = leader._replace(high_watermark=candidate)
        prefix = leader.log[:candidate]
        committed = state.committed
        known = tuple(c.entry for c in committed)
        if prefix[: len(known)] != known[: len(prefix)]:
            return leader, state._replace(committed_rewritten=True), True
        if len(prefix) > len(known):
            committed += tuple(Committed(e, leader.epoch) for e in prefix[len(known):])
        return leader, state._replace(committed=committed), True

    # --- actions --------------------------------------------------------------------------------

    def transitions(self, state: KraftState) -> Iterator[Transition[KraftState]]:
        yield from self.timeout(state)
        yield from self.request_pre_vote(state)
        yield from self.request_vote(state)
        yield from self.begin_quorum_epoch(state)
        yield from self.append(state)
        yield from self.fetch(state)
        yield from self.crash(state)
        yield from self.restart(state)

    def timeout(self, state: KraftState) -> Iterator[Transition[KraftState]]:
        """Timeout: no word from a leader (or no election won) within the timeout."""
        if state.elections >= self.max_elections:
            return
        for v, voter in enumerate(state.voters):
            if not voter.alive or voter.role in (LEADER, PROSPECTIVE):
                continue
            if self.pre_vote:
                prospective = voter._replace(role=PROSPECTIVE, leader=NO_VOTER, granted=frozenset({v}),
                                             heard_from_leader=False)
                yield Transition("Timeout", (("voter", v),), state._replace(voters=self._with(state, {v: prospective})),
                                 f"prospective in epoch {voter.epoch}, asks for pre-votes")
            else:
                candidate = self._become_candidate(voter, v)
                yield Transition("Timeout", (("voter", v),),
                                 state._replace(voters=self._with(state, {v: candidate}), elections=state.elections + 1),
                                 f"candidate in epoch {candidate.epoch}, votes for itself")

    def request_pre_vote(self, state: KraftState) -> Iterator[Transition[KraftState]]:
        """PreVote: a prospective asks a voter whether it would vote for it in the next epoch (KIP-996)."""
        for p, prospective in enumerate(state.voters):
            if not prospective.alive or prospective.role != PROSPECTIVE:
                continue
            for v, voter in enumerate(state.voters):
                if v == p or not voter.alive or v in prospective.granted:
                    continue
                args = (("prospective", p), ("voter", v))
                if voter.epoch > prospective.epoch:
                    stepped = self._unattached(prospective, voter.epoch)
                    yield Transition("PreVote", args, state._replace(voters=self._with(state, {p: stepped})),
                                     f"refused: voter is in epoch {voter.epoch}; prospective steps down")
                    continue
                if voter.heard_from_leader or voter.role == LEADER:
                    yield Transition("PreVote", args, state, "refused: heard from a leader within the fetch timeout",
                                     ("pre_vote_refused",))
                    continue
                if not self._log_is_up_to_date(prospective, voter):
                    yield Transition("PreVote", args, state, "refused: candidate's log is behind",
                                     ("vote_refused_stale_log",))
                    continue
                granted = prospective.granted | {v}
                if len(granted) < self.majority:
                    yield Transition("PreVote", args,
                                     state._replace(voters=self._with(state, {p: prospective._replace(granted=granted)})),
                                     "granted")
                elif state.elections < self.max_elections:
                    candidate = self._become_candidate(prospective, p)
                    yield Transition("PreVote", args,
                                     state._replace(voters=self._with(state, {p: candidate}),
                                                    elections=state.elections + 1),
                                     f"granted: majority of pre-votes, candidate in epoch {candidate.epoch}")

    def request_vote(self, state: KraftState) -> Iterator[Transition[KraftState]]:
        """Vote: a candidate asks a voter for its vote in the candidate's epoch."""
        for c, candidate in enumerate(state.voters):
            if not candidate.alive or candidate.role != CANDIDATE:
                continue
            for v, voter in enumerate(state.voters):
                if v == c or not voter.alive or v in candidate.granted:
                    continue
                args = (("candidate", c), ("voter", v))
                if voter.epoch > candidate.epoch:
                    stepped = self._unattached(candidate, voter.epoch)
                    yield Transition("Vote", args, state._replace(voters=self._with(state, {c: stepped})),
                                     f"refused: voter is in epoch {voter.epoch}; candidate steps down")
                    continue
                note = ""
                if voter.epoch < candidate.epoch:
                    voter = self._unattached(voter, candidate.epoch)
                    note = f"voter moves to epoch {candidate.epoch}; "
                already = voter.voted_for not in (NO_VOTER, c)
                if already and self.guarded("one_vote_per_epoch"):
                    moved = state._replace(voters=self._with(state, {v: voter}))
                    yield Transition("Vote", args, moved, note + f"refused: already voted for {_name(voter.voted_for)}",
                                     ("vote_refused_already_voted",))
                    continue
                if not self._log_is_up_to_date(candidate, voter):
                    moved = state._replace(voters=self._with(state, {v: voter}))
                    yield Transition("Vote", args, moved, note + "refused: candidate's log is behind",
                                     ("vote_refused_stale_log",))
                    continue
                voter = voter._replace(voted_for=c)
                granted = candidate.granted | {v}
                if len(granted) < self.majority:
                    yield Transition("Vote", args,
                                     state._replace(voters=self._with(state, {v: voter, c: candidate._replace(granted=granted)})),
                                     note + "granted")
                    continue
                leader, leaders = self._become_leader(state, c, candidate)
                situations = ("leader_change_over_data",) if leader.log else ()
                yield Transition("Vote", args,
                                 state._replace(voters=self._with(state, {v: voter, c: leader}), leaders=leaders),
                                 note + f"granted: leader of epoch {leader.epoch}", situations)

    def begin_quorum_epoch(self, state: KraftState) -> Iterator[Transition[KraftState]]:
        """BeginQuorumEpoch: a leader tells a voter that it leads the epoch."""
        for leader_id, leader in enumerate(state.voters):
            if not leader.alive or leader.role != LEADER:
                continue
            for v, voter in enumerate(state.voters):
                if v == leader_id or not voter.alive or (voter.epoch == leader.epoch and voter.role == FOLLOWER):
                    continue
                args = (("leader", leader_id), ("voter", v))
                if voter.epoch > leader.epoch:
                    stepped = self._unattached(leader, voter.epoch)
                    yield Transition("BeginQuorumEpoch", args, state._replace(voters=self._with(state, {leader_id: stepped})),
                                     f"FENCED_LEADER_EPOCH: voter is in epoch {voter.epoch}; leader resigns")
                    continue
                if voter.epoch < leader.epoch:
                    voter = self._unattached(voter, leader.epoch)
                follower = voter._replace(role=FOLLOWER, leader=leader_id, granted=frozenset(), heard_from_leader=True)
                yield Transition("BeginQuorumEpoch", args, state._replace(voters=self._with(state, {v: follower})),
                                 f"follows {_name(leader_id)} in epoch {leader.epoch}")

    def append(self, state: KraftState) -> Iterator[Transition[KraftState]]:
        """Append: the leader writes a record in its epoch."""
        if state.records_sent >= self.max_records:
            return
        for leader_id, leader in enumerate(state.voters):
            if not leader.alive or leader.role != LEADER:
                continue
            record = state.records_sent
            grown = leader._replace(log=leader.log + (Entry(leader.epoch, record),))
            next_state = state._replace(records_sent=record + 1)
            grown, next_state, advanced = self._advance_high_watermark(next_state, grown)
            next_state = next_state._replace(voters=self._with(next_state, {leader_id: grown}))
            note = f"r{record} at offset {len(leader.log)}" + (f", high watermark {grown.high_watermark}" if advanced else "")
            yield Transition("Append", (("leader", leader_id),), next_state, note,
                             ("committed_with_quorum",) if advanced else ())

    def fetch(self, state: KraftState) -> Iterator[Transition[KraftState]]:
        """Fetch: a follower fetches from the leader it follows, in the same epoch."""
        for f, follower in enumerate(state.voters):
            if not follower.alive or follower.role != FOLLOWER or follower.leader == NO_VOTER:
                continue
            leader_id = follower.leader
            leader = state.voters[leader_id]
            if not leader.alive or leader.role != LEADER or leader.epoch != follower.epoch:
                continue
            args = (("follower", f), ("leader", leader_id))
            fetch_offset, last_epoch = len(follower.log), follower.last_epoch
            if self.guarded("truncate_on_divergence"):
                # The leader's end of the largest epoch not above the follower's last epoch.
                shared = [e for e in leader.log if e.epoch <= last_epoch]
                diverging_epoch = shared[-1].epoch if shared else 0
                diverging_end = len(shared)  # epochs only grow along a log, so these are a prefix
                if diverging_epoch != last_epoch or diverging_end < fetch_offset:
                    own_end = sum(1 for e in follower.log if e.epoch <= diverging_epoch)
                    offset = min(diverging_end, own_end)
                    truncated = follower._replace(log=follower.log[:offset],
                                                  high_watermark=min(follower.high_watermark, offset),
                                                  heard_from_leader=True)
                    yield Transition("Fetch", args, state._replace(voters=self._with(state, {f: truncated})),
                                     f"DivergingEpoch(epoch {diverging_epoch}, end offset {diverging_end}): "
                                     f"truncate to offset {offset}", ("truncated_suffix",) if offset < fetch_offset else ())
                    continue
            if fetch_offset > len(leader.log):
                continue  # OFFSET_OUT_OF_RANGE: only reachable without the divergence check
            fetched = list(leader.fetched)
            fetched[f] = fetch_offset
            updated, next_state, advanced = self._advance_high_watermark(state, leader._replace(fetched=tuple(fetched)))
            log = follower.log + leader.log[fetch_offset:]
            caught_up = follower._replace(log=log, high_watermark=max(follower.high_watermark,
                                                                      min(updated.high_watermark, len(log))),
                                          heard_from_leader=True)
            next_state = next_state._replace(voters=self._with(next_state, {f: caught_up, leader_id: updated}))
            note = f"fetch offset {fetch_offset}, +{len(leader.log) - fetch_offset} records"
            if advanced:
                note += f", leader's high watermark {updated.high_watermark}"
            yield Transition("Fetch", args, next_state, note, ("committed_with_quorum",) if advanced else ())

    def crash(self, state: KraftState) -> Iterator[Transition[KraftState]]:
        if state.crashes >= self.max_crashes:
            return
        for v, voter in enumerate(state.voters):
            if voter.alive:
                crashed = Voter(log=voter.log, epoch=voter.epoch, voted_for=voter.voted_for, alive=False)
                yield Transition("Crash", (("voter", v),),
                                 state._replace(voters=self._with(state, {v: crashed}), crashes=state.crashes + 1),
                                 "log and quorum-state kept")

    def restart(self, state: KraftState) -> Iterator[Transition[KraftState]]:
        """Restart: the voter reads its log and quorum-state and waits, unattached, in its epoch."""
        for v, voter in enumerate(state.voters):
            if voter.alive:
                continue
            voted_for = voter.voted_for if self.guarded("vote_durable") else NO_VOTER
            restarted = Voter(log=voter.log, epoch=voter.epoch, voted_for=voted_for)
            situations = ("restart_after_vote",) if voter.voted_for not in (NO_VOTER, v) else ()
            yield Transition("Restart", (("voter", v),), state._replace(voters=self._with(state, {v: restarted})),
                             f"epoch {voter.epoch}, voted for {_name(voted_for)}", situations)

    # --- checker interface --------------------------------------------------------------------

    def is_final(self, state: KraftState) -> bool:
        return True

    def canonical(self, state: KraftState) -> Hashable:
        """The smallest encoding over every renaming of the voters (they are interchangeable)."""
        return min(self._encode(state, perm) for perm in self.permutations)

    @staticmethod
    def _encode(state: KraftState, perm: tuple[int, ...]) -> tuple[object, ...]:
        def rename(v: int) -> int:
            return NO_VOTER if v == NO_VOTER else perm[v]

        slots: list[tuple[object, ...]] = [()] * len(perm)
        for old, voter in enumerate(state.voters):
            fetched: tuple[int, ...] = ()
            if voter.fetched:
                moved = [0] * len(perm)
                for who, offset in enumerate(voter.fetched):
                    moved[perm[who]] = offset
                fetched = tuple(moved)
            slots[perm[old]] = (voter.log, voter.epoch, rename(voter.voted_for), voter.alive, voter.role,
                                rename(voter.leader), voter.high_watermark,
                                tuple(sorted(perm[g] for g in voter.granted)), voter.heard_from_leader, fetched)
        leaders = tuple(sorted((epoch, perm[v]) for epoch, v in state.leaders))
        return (tuple(slots), state.committed, state.committed_rewritten, leaders, state.records_sent,
                state.elections, state.crashes)

    def render(self, state: KraftState) -> str:
        lines = []
        for v, voter in enumerate(state.voters):
            if not voter.alive:
                role = "CRASHED"
            elif voter.role == FOLLOWER:
                role = f"follows {_name(voter.leader)}"
            elif voter.role in (PROSPECTIVE, CANDIDATE):
                role = f"{voter.role}, granted {_names(voter.granted)}"
            else:
                role = voter.role
            log = " ".join(f"r{e.record}@e{e.epoch}" for e in voter.log) or "(empty)"
            lines.append(f"{_name(v)}: epoch {voter.epoch}, voted {_name(voter.voted_for)}, {role}; "
                         f"HW {voter.high_watermark}; log [{log}]")
        committed = " ".join(f"r{c.entry.record}@e{c.entry.epoch}" for c in state.committed) or "(empty)"
        leaders = ", ".join(f"e{epoch}:{_name(v)}" for epoch, v in sorted(state.leaders))
        lines.append(f"committed [{committed}]; leaders {leaders}")
        return "\n".join(lines)

    # --- invariants -----------------------------------------------------------------------------

    @property
    def invariants(self) -> tuple[Invariant[KraftState], ...]:
        return (
            Invariant("ElectionSafety", "at most one voter ever becomes leader in an epoch", self.election_safety),
            Invariant("LogMatching", "two logs holding an entry of the same epoch at the same offset agree on "
                      "every entry up to it", self.log_matching),
            Invariant("LeaderCompleteness", "every leader holds every entry committed in its epoch or before",
                      self.leader_completeness),
            Invariant("Durability", "the committed log is never rewritten, each committed entry is held by a "
                      "majority of voters, and below every voter's high watermark lies only committed log",
                      self.durability),
        )

    @staticmethod
    def election_safety(state: KraftState) -> bool:
        epochs = [epoch for epoch, _ in state.leaders]
        return len(epochs) == len(set(epochs))

    @staticmethod
    def log_matching(state: KraftState) -> bool:
        for a, b in itertools.combinations(state.voters, 2):
            common = min(len(a.log), len(b.log))
            last_match = max((o for o in range(common) if a.log[o].epoch == b.log[o].epoch), default=-1)
            if a.log[: last_match + 1] != b.log[: last_match + 1]:
                return False
        return True

    @staticmethod
    def leader_completeness(state: KraftState) -> bool:
        for voter in state.voters:
            if not voter.alive or voter.role != LEADER:
                continue
            for offset, committed in enumerate(state.committed):
                if committed.committed_in <= voter.epoch and (
                        offset >= len(voter.log) or voter.log[offset] != committed.entry):
                    return False
        return True

    def durability(self, state: KraftState) -> bool:
        if state.committed_rewritten:
            return False
        for offset, committed in enumerate(state.committed):
            holders = sum(1 for voter in state.voters if offset < len(voter.log) and voter.log[offset] == committed.entry)
            if holders < self.majority:
                return False
        known = tuple(c.entry for c in state.committed)
        return all(voter.high_watermark <= len(known) and voter.log[: voter.high_watermark] == known[: voter.high_watermark]
                   for voter in state.voters)

    @property
    def situations(self) -> tuple[Situation, ...]:
        several = self.voter_count >= 2
        applies = {
            "committed_with_quorum": self.max_records > 0,
            "leader_change_over_data": self.max_records > 0 and self.max_elections > 0 and several,
            "truncated_suffix": self.max_records > 1 and self.max_elections > 0 and self.voter_count >= 3,
            "vote_refused_stale_log": self.max_records > 0 and self.max_elections > 0 and several,
            "vote_refused_already_voted": self.max_elections > 1 and self.voter_count >= 3,
            "restart_after_vote": self.max_elections > 0 and self.max_crashes > 0 and several,
            "pre_vote_refused": self.pre_vote and self.max_elections > 0 and self.voter_count >= 3,
        }
        return tuple(Situation(name, text, applies[name]) for name, text in SITUATIONS)


def _name(v: int) -> str:
    return "none" if v == NO_VOTER else "ABCDEFGH"[v]


def _names(members: frozenset[int]) -> str:
    return "{" + ",".join(_name(m) for m in sorted(members)) + "}"
