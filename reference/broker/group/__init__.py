"""The classic-protocol consumer group coordinator of the reference broker (sans-IO).

Start with :mod:`reference.broker.group.coordinator` (the theory of operation), then
:mod:`~reference.broker.group.state` (the state table), :mod:`~reference.broker.group.group` (one
group's data), :mod:`~reference.broker.group.offsets` (commit fence and retention) and
:mod:`~reference.broker.group.records` (the ``__consumer_offsets`` record formats),
:mod:`~reference.broker.group.ownership` (which partitions it serves) and
:mod:`~reference.broker.group.completion` (when a write counts as committed).
"""

from reference.broker.group.completion import WriteCompletion
from reference.broker.group.config import GroupCoordinatorConfig
from reference.broker.group.coordinator import GroupCoordinator, RecordWriter
from reference.broker.group.ownership import CoordinatorState, IllegalOwnershipTransition
from reference.broker.group.state import GroupEvent, GroupState, IllegalGroupTransition

__all__ = [
    "CoordinatorState",
    "GroupCoordinator",
    "GroupCoordinatorConfig",
    "GroupEvent",
    "GroupState",
    "IllegalGroupTransition",
    "IllegalOwnershipTransition",
    "RecordWriter",
    "WriteCompletion",
]
