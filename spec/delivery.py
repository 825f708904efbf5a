"""Executable model of consumer-group delivery semantics: at-least-once and at-most-once.

Theory of operation
-------------------
One partition holding ``records`` records, consumed by a group of ``consumers`` members.  The
group coordinator owns the generation (bumped on every rebalance), the assignment (which member
owns the partition) and the committed offset.  A member learns a new generation and its
assignment by joining (JoinGroup/SyncGroup); an owner starts from the committed offset
(OffsetFetch).  A member that has not yet heard of a rebalance still believes it owns the
partition: a zombie, exactly what session expiry produces.

Commits (OffsetCommit) carry the member's generation and travel through an unordered set, so
they are delayed and reordered; the coordinator refuses one whose generation is not current with
ILLEGAL_GENERATION (the ``generation_fencing`` guard) and otherwise overwrites the committed
offset.  Members crash (losing their position) and restart; up to ``rebalances`` rebalances
(session expiry, a member joining or leaving) hand the partition to any live member.

Variants:

* ``at-least-once``: process a record, then commit the next offset.  Promise: no offset below the
  committed one was left unprocessed (``NoSkip``).  Duplicates are expected and must be reached,
  but only of records no accepted commit had declared done: an owner resumes (OffsetFetch) past
  every record the committing member had processed when it sent the commit
  (``ResumeAfterProcessed``).  Committing before processing (the ``process_before_commit``
  mutant) breaks ``NoSkip``: a crash between the two leaves the record behind the committed
  offset for ever.
* ``at-most-once``: commit the next offset, wait for the commit to succeed, then process.
  Promise: no offset is processed twice (``NoDuplicate``).  Skips are expected and must be reached.
  Without generation fencing a zombie's delayed commit moves the offset back and a record is
  processed twice.

In both, the committed offset is the offset of the *next* record to read (the last processed plus
one), as OffsetCommit defines it.  Committing the last processed offset instead (the
``commit_next_offset`` mutant) hands that record out again on every restart or rebalance: a
duplicate, caught by ``NoDuplicate`` in at-most-once; in at-least-once, where duplicates are
allowed, only ``ResumeAfterProcessed`` can tell it from an honest redelivery, and it is there
for that.  Each commit carries (as ghost) the last offset its member had processed when it sent
it, so the invariant judges the commit by what it claimed, not by the offset it names.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import NamedTuple

from reference.errors import Errors
from spec.checker import Invariant, Situation, Transition
from spec.model import BoundSpec, Guard, check_variant_and_guards, parse_bounds

NO_MEMBER = -1
UNKNOWN = -1


class Commit(NamedTuple):
    """An OffsetCommit request on its way to the coordinator."""

    offset: int
    generation: int
    member: int
    processed_through: int  # ghost: the last offset the member had processed when it sent this (-1: none)


@dataclass(frozen=True, slots=True)
class Member:
    alive: bool = True
    generation: int = UNKNOWN  # the generation this member last joined
    owns: bool = False  # believes it owns the partition
    position: int = UNKNOWN  # next offset to process
    committing: int = UNKNOWN  # at-most-once: the offset whose commit it awaits
    commit_confirmed: bool = False


@dataclass(frozen=True, slots=True)
class DeliveryState:
    members: tuple[Member, ...]
    generation: int = 0
    owner: int = NO_MEMBER
    committed: int = 0
    commits: frozenset[Commit] = frozenset()
    processed: tuple[int, ...] = ()  # ghost: how many times each offset was processed
    committed_through: int = -1  # ghost: processed_through of the commit that set ``committed``
    resumed_before_processed: bool = False  # ghost: an owner resumed at or below committed_through
    rebalances: int = 0
    crashes: int = 0


VARIANTS = {
    "at-least-once": "process, then commit: may duplicate, never skips",
    "at-most-once": "commit (and wait), then process: may skip, never duplicates",
}

GUARDS: dict[str, Guard] = {
    "generation_fencing": Guard(
        "generation_fencing", "the coordinator refuses a commit from a stale generation (ILLEGAL_GENERATION)",
        "a zombie's delayed commit moves the committed offset back; the new owner processes a record again",
        {"records": 2, "consumers": 2, "rebalances": 2, "crashes": 0}, "at-most-once"),
    "process_before_commit": Guard(
        "process_before_commit", "at-least-once commits an offset only after processing every record below it",
        "the commit lands, the consumer crashes before processing, and the record is skipped for ever",
        {"records": 1, "consumers": 1, "rebalances": 0, "crashes": 1}, "at-least-once"),
    "commit_next_offset": Guard(
        "commit_next_offset", "the committed offset is the next record to read: the last processed offset plus one",
        "the last processed record is handed out again after a restart or a rebalance",
        {"records": 1, "consumers": 1, "rebalances": 0, "crashes": 1}),
}

# The guards each variant shows necessary: ``refka spec mutants delivery --variant V`` switches these off.
# Generation fencing is kept in both, but at-least-once does not need it for its promises: a
# zombie's commit only ever names a record it processed, so a stale commit can move the offset
# back (a duplicate, allowed) but never past an unprocessed record.
VARIANT_GUARDS: dict[str, tuple[str, ...]] = {
    "at-least-once": ("process_before_commit", "commit_next_offset"),
    "at-most-once": ("generation_fencing", "commit_next_offset"),
}

BOUNDS = (
    BoundSpec("records", 2, "records in the partition"),
    BoundSpec("consumers", 2, "members of the group", minimum=1),
    BoundSpec("rebalances", 2, "rebalances (session expiry, join, leave)"),
    BoundSpec("crashes", 1, "member crashes"),
)

SITUATIONS = (
    ("duplicate", "an offset was processed twice"),
    ("skip", "an offset below the committed one was never processed"),
    ("stale_commit_refused", f"a stale commit was refused with {Errors.ILLEGAL_GENERATION.name}"),
    ("handover_with_progress", "a rebalance moved the partition after records were processed"),
)


class DeliveryModel:
    name = "delivery"

    def __init__(self, variant: str = "at-least-once", bounds: Mapping[str, int | str] | None = None,
                 disabled: frozenset[str] = frozenset()) -> None:
        check_variant_and_guards(variant, VARIANTS, disabled, GUARDS)
        self.variant = variant
        self.commit_first = variant == "at-most-once"
        self.bounds = parse_bounds(BOUNDS, bounds or {})
        self.records = int(self.bounds["records"])
        self.consumers = int(self.bounds["consumers"])
        self.max_rebalances = int(self.bounds["rebalances"])
        self.max_crashes = int(self.bounds["crashes"])
        self.guards = frozenset(GUARDS) - disabled
        self.disabled = disabled

    def guarded(self, name: str) -> bool:
        return name in self.guards

    def describe_bounds(self) -> str:
        text = " ".join(f"{k}={v}" for k, v in self.bounds.items())
        return text + (" without " + ",".join(sorted(self.disabled)) if self.disabled else "")

    def initial_states(self) -> Iterator[DeliveryState]:
        """Generation 0 gives the partition to member 0, which has not joined yet."""
        yield DeliveryState(members=(Member(),) * self.consumers, owner=0, processed=(0,) * self.records)

    @staticmethod
    def _with(state: DeliveryState, m: int, member: Member) -> tuple[Member, ...]:
        members = list(state.members)
        members[m] = member
        return tuple(members)

    # --- actions --------------------------------------------------------------------------------

    def transitions(self, state: DeliveryState) -> Iterator[Transition[DeliveryState]]:
        yield from self.rebalance(state)
        yield from self.join(state)
        yield from self.consume(state)
        yield from self.handle_commit(state)
        yield from self.crash(state)
        yield from self.restart(state)

    def rebalance(self, state: DeliveryState) -> Iterator[Transition[DeliveryState]]:
        """Rebalance: the coordinator bumps the generation and assigns the partition to a live member."""
        if state.rebalances >= self.max_rebalances:
            return
        progress = any(state.processed)
        for m in range(self.consumers):
            if state.members[m].alive:
                yield Transition("Rebalance", (("owner", m),),
                                 replace(state, generation=state.generation + 1, owner=m,
                                         rebalances=state.rebalances + 1),
                                 f"generation {state.generation + 1}",
                                 ("handover_with_progress",) if progress else ())

    def join(self, state: DeliveryState) -> Iterator[Transition[DeliveryState]]:
        """Join: a member learns the current generation; the owner fetches the committed offset."""
        for m, member in enumerate(state.members):
            if not member.alive or member.generation == state.generation:
                continue
            owns = state.owner == m
            joined = Member(generation=state.generation, owns=owns, position=state.committed if owns else UNKNOWN)
            note = f"owns the partition from offset {state.committed}" if owns else "owns nothing"
            next_state = replace(state, members=self._with(state, m, joined))
            if owns and state.committed <= state.committed_through:
                next_state = replace(next_state, resumed_before_processed=True)
                note += ", which its committer had already processed"
            yield Transition("Join", (("member", m),), next_state, note)

    def consume(self, state: DeliveryState) -> Iterator[Transition[DeliveryState]]:
        """Process / Commit: the owner works through the partition in its variant's order."""
        for m, member in enumerate(state.members):
            if not member.alive or not member.owns or member.position == UNKNOWN or member.position >= self.records:
                continue
            offset = member.position
            # OffsetCommit names the next offset to read; the mutant names the record itself.
            next_offset = offset + 1 if self.guarded("commit_next_offset") else offset
            if not self.commit_first and self.guarded("process_before_commit"):
                yield self._process(state, m, member, Commit(next_offset, member.generation, m, offset))
            elif member.committing == UNKNOWN:
                commit = Commit(next_offset, member.generation, m, offset - 1)
                yield Transition("CommitOffset", (("member", m), ("offset", next_offset)),
                                 replace(state, members=self._with(state, m, replace(member, committing=next_offset)),
                                         commits=state.commits | {commit}), "commit before processing")
            elif member.commit_confirmed or not self.commit_first:
                # at-most-once waits for the commit to succeed; the at-least-once mutant does not wait
                yield self._process(state, m, replace(member, committing=UNKNOWN, commit_confirmed=False), None)

    def _process(self, state: DeliveryState, m: int, member: Member, commit: Commit | None) -> Transition[DeliveryState]:
        offset = member.position
        processed = list(state.processed)
        processed[offset] += 1
        moved = replace(member, position=offset + 1)
        commits = state.commits | {commit} if commit is not None else state.commits
        note = f"offset {offset}" + (f", then commit {commit.offset}" if commit is not None else "")
        return Transition("Process", (("member", m), ("offset", offset)),
                          replace(state, members=self._with(state, m, moved), processed=tuple(processed),
                                  commits=commits), note, ("duplicate",) if processed[offset] > 1 else ())

    def handle_commit(self, state: DeliveryState) -> Iterator[Transition[DeliveryState]]:
        """HandleCommit: the coordinator receives a (possibly delayed) OffsetCommit."""
        for commit in sorted(state.commits):
            rest = state.commits - {commit}
            member = state.members[commit.member]
            waiting = member.alive and member.committing == commit.offset and member.generation == commit.generation
            if commit.generation != state.generation and self.guarded("generation_fencing"):
                members = state.members
                if waiting:  # the member learns it was fenced and must rejoin
                    members = self._with(state, commit.member, replace(member, owns=False, committing=UNKNOWN))
                yield Transition("HandleCommit", (("member", commit.member), ("offset", commit.offset)),
                                 replace(state, commits=rest, members=members),
                                 f"{Errors.ILLEGAL_GENERATION.name} (generation {commit.generation})",
                                 ("stale_commit_refused",))
                continue
            members = state.members
            if waiting:
                members = self._with(state, commit.member, replace(member, commit_confirmed=True))
            next_state = replace(state, commits=rest, committed=commit.offset, members=members,
                                 committed_through=commit.processed_through)
            skipped = any(next_state.processed[o] == 0 for o in range(next_state.committed))
            yield Transition("HandleCommit", (("member", commit.member), ("offset", commit.offset)), next_state,
                             f"committed offset {state.committed} -> {commit.offset}", ("skip",) if skipped else ())

    def crash(self, state: DeliveryState) -> Iterator[Transition[DeliveryState]]:
        if state.crashes >= self.max_crashes:
            return
        for m, member in enumerate(state.members):
            if member.alive:
                yield Transition("Crash", (("member", m),),
                                 replace(state, members=self._with(state, m, Member(alive=False)),
                                         crashes=state.crashes + 1), "position lost")

    def restart(self, state: DeliveryState) -> Iterator[Transition[DeliveryState]]:
        for m, member in enumerate(state.members):
            if not member.alive:
                yield Transition("Restart", (("member", m),), replace(state, members=self._with(state, m, Member())))

    # --- checker interface --------------------------------------------------------------------

    def is_final(self, state: DeliveryState) -> bool:
        return True

    def canonical(self, state: DeliveryState) -> Hashable:
        return state

    def render(self, state: DeliveryState) -> str:
        lines = [f"coordinator: generation {state.generation}, owner {_name(state.owner)}, committed {state.committed}; "
                 f"commits in flight {sorted((c.offset, c.generation, _name(c.member)) for c in state.commits)}"]
        for m, member in enumerate(state.members):
            if not member.alive:
                lines.append(f"{_name(m)}: CRASHED")
                continue
            role = f"owns, position {member.position}" if member.owns else "owns nothing"
            lines.append(f"{_name(m)}: generation {member.generation}, {role}")
        lines.append("processed per offset: " + " ".join(f"{o}:{n}" for o, n in enumerate(state.processed)))
        return "\n".join(lines)

    @property
    def invariants(self) -> tuple[Invariant[DeliveryState], ...]:
        if self.commit_first:
            return (Invariant("NoDuplicate", "no offset is processed twice (at-most-once)", self.no_duplicate),)
        return (Invariant("NoSkip", "every offset below the committed offset was processed (at-least-once)",
                          self.no_skip),
                Invariant("ResumeAfterProcessed", "an owner resumes past every record the member whose commit it "
                          "read had processed when it committed (a commit names the next offset to read)",
                          self.resume_after_processed))

    @staticmethod
    def no_duplicate(state: DeliveryState) -> bool:
        return all(count <= 1 for count in state.processed)

    @staticmethod
    def no_skip(state: DeliveryState) -> bool:
        return all(state.processed[o] > 0 for o in range(state.committed))

    @staticmethod
    def resume_after_processed(state: DeliveryState) -> bool:
        return not state.resumed_before_processed

    @property
    def situations(self) -> tuple[Situation, ...]:
        applies = {
            "duplicate": not self.commit_first and self.max_rebalances + self.max_crashes > 0,
            "skip": self.commit_first and self.max_crashes > 0,
            "stale_commit_refused": self.max_rebalances > 0 and self.guarded("generation_fencing"),
            "handover_with_progress": self.max_rebalances > 0 and self.records > 0,
        }
        return tuple(Situation(name, text, applies[name]) for name, text in SITUATIONS)


def _name(m: int) -> str:
    return "none" if m == NO_MEMBER else f"c{m}"
