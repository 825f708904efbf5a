"""The classic-protocol consumer group coordinator of the reference broker (sans-IO).

Start with :mod:`reference.broker.group.coordinator` (the theory of operation), then
:mod:`~reference.broker.group.state` (the state table), :mod:`~reference.broker.group.group` (one
group's data), :mod:`~reference.broker.group.offsets` (commit fence and retention) and
:mod:`~reference.broker.group.records` (the ``__consumer_offsets`` record formats).
"""

from reference.broker.group.config import GroupCoordinatorConfig
from reference.broker.group.coordinator import GroupCoordinator, RecordWriter
from reference.broker.group.state import GroupEvent, GroupState, IllegalGroupTransition

__all__ = [
    "GroupCoordinator",
    "GroupCoordinatorConfig",
    "GroupEvent",
    "GroupState",
    "IllegalGroupTransition",
    "RecordWriter",
]
