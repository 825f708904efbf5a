"""Guard switches: the implementation's safety rules, each switchable off for mutation testing.

Theory of operation
-------------------
``spec/replication.py`` and ``spec/idempotence.py`` name every protocol rule that prevents a known
failure (a ``Guard``: ``clean_election``, ``hw_waits_for_isr``, ...) and show, by switching each
off in the model, which invariant it protects.  ``refka sim mutants`` does the same to the real
broker and controller code: every check site that keeps one of those rules reads::

    if guards.on("hw_waits_for_isr"):  # spec guard hw_waits_for_isr: ...

and the simulator switches one guard off at a time and must see an invariant break.

Rules:

1. **On unless switched off.**  The switched-off set is empty in production.  It is filled from
   the environment variable ``REFKA_SIM_GUARDS_OFF`` (comma-separated names, read once at import,
   as ``REFKA_UNSAFE_TXN`` is for the chaos harness) or, inside one process, by
   :func:`switch_off`, which is what the simulator uses.  Nothing else changes it.
2. **Only known names.**  A name outside :data:`KNOWN_GUARDS` raises ``ValueError`` wherever it
   appears -- in the environment, in :func:`switch_off` and in :func:`on` -- so a typo can
   neither silently keep a guard on in a mutant run nor silently switch one off.
3. **Cheap.**  :func:`on` is two set membership tests, no I/O and no environment lookup.

The names are the spec's; a guard here with no counterpart in the implementation is simply not in
the list.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

GUARDS_OFF_ENV = "REFKA_SIM_GUARDS_OFF"

# Each name is a Guard of spec/replication.py or spec/idempotence.py, with the site that keeps it.
KNOWN_GUARDS: dict[str, str] = {
    "clean_election": "reference/controller/elections.py: only an ISR (or ELR) member may lead",
    "hw_waits_for_isr": "reference/broker/partition.py: the HW is the smallest log end offset of the ISR",
    "expand_needs_caught_up": "reference/broker/partition.py: a follower joins the ISR at LEO >= HW",
    "expand_after_epoch_start": "reference/broker/partition.py: ... and at LEO >= the leader epoch's start",
    "min_insync_replicas": "reference/broker/partition.py: acks=all needs min.insync.replicas in the ISR",
    "maximal_isr_for_hw": "reference/broker/partition.py: a pending expansion's replica holds the HW back",
    "pending_removal_still_counted": "reference/broker/partition.py: a pending shrink's replica still "
                                     "holds the HW back",
    "truncate_by_leader_epoch": "reference/broker/replica_fetcher.py: a new follower keeps its log for the "
                                "leader to judge by epoch, instead of truncating to its HW",
    "match_epoch_lineage": "reference/broker/replica_fetcher.py: truncate to the end of the last shared epoch",
    "fence_fetch_epoch": "reference/broker/handlers/partitions.py: a follower fetch in another leader epoch "
                         "is refused (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH)",
    "elr_only_below_min_isr": "reference/controller/elections.py: the ELR is kept only below min.insync.replicas",
    "unclean_shutdown_leaves_isr": "reference/controller/cluster_control.py: a broker back from an unclean "
                                   "shutdown leaves the ISR and ELR (KIP-966)",
    "sequence_check": "reference/broker/log/producer_state.py: a batch's sequence follows the last one",
    "epoch_fencing": "reference/broker/log/producer_state.py: an older producer epoch is refused",
    "five_batch_window": "reference/broker/log/producer_state.py: duplicates are found among the last five batches",
}


def _validated(names: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(names)
    unknown = chosen - KNOWN_GUARDS.keys()
    if unknown:
        raise ValueError(f"unknown guard(s) {sorted(unknown)}; known: {sorted(KNOWN_GUARDS)}")
    return chosen


def _from_environment(value: str | None) -> frozenset[str]:
    return _validated(name.strip() for name in (value or "").split(",") if name.strip())


_off: frozenset[str] = _from_environment(os.environ.get(GUARDS_OFF_ENV))


def on(name: str) -> bool:
    """Whether the guard ``name`` is kept (always, outside a mutant run)."""
    if name in _off:
        return False
    if name not in KNOWN_GUARDS:
        raise ValueError(f"unknown guard {name!r}")
    return True


def switched_off() -> frozenset[str]:
    """The guards switched off now (empty in production)."""
    return _off


@contextmanager
def switch_off(names: Iterable[str]) -> Iterator[None]:
    """Switch ``names`` off in this process for the duration of the block (the simulator's mutants)."""
    global _off
    previous = _off
    _off = previous | _validated(names)
    try:
        yield
    finally:
        _off = previous
