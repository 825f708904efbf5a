"""The descriptor budget: segment and index files are opened lazily and closed least recently used.

Theory of operation
-------------------
Every segment is three files (``.log``, ``.index``, ``.timeindex``).  Kafka keeps all of them open
and asks the operator for a large ``ulimit -n``; a broker that hosts 10,000 partitions (one
CreateTopics may legally ask for 9,999) then holds 30,000 descriptors, and when the limit is
lower it fails in the middle of creating partitions, and then cannot accept connections either.
The reference broker keeps a *budget* instead:

1. A :class:`LazyDescriptor` names a file and the flags to open it with.  Its :attr:`fd` opens the
   file on first use (with ``O_CREAT`` only the first time: a file deleted meanwhile is an error,
   not silently recreated) and marks it most recently used.
2. The :class:`DescriptorBudget` holds at most ``limit`` open descriptors.  Opening one more closes
   the least recently used one; it is reopened, by path, the next time it is used.  Closing loses
   nothing: writes reached the page cache when ``write`` returned, and an fsync after a reopen
   flushes the file's dirty pages whatever descriptor wrote them.
3. The default budget is half the process's soft ``RLIMIT_NOFILE`` (at least 16), leaving the other
   half to client connections, checkpoints and the interpreter.

Invariants: ``len(open) <= limit`` after every :meth:`DescriptorBudget.use`; a descriptor is in the
budget's table exactly while it is open.  Single-threaded use (the broker's event loop) is assumed
for the table itself; each call is short and holds a lock.
"""

from __future__ import annotations

import os
import resource
import threading
from collections import OrderedDict
from pathlib import Path


class DescriptorBudget:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a descriptor budget needs at least one descriptor")
        self.limit = limit
        self._open: OrderedDict[LazyDescriptor, None] = OrderedDict()
        self._lock = threading.Lock()
        self.reopened = 0  # how often an evicted file was opened again (for tests and curiosity)

    @property
    def open_count(self) -> int:
        return len(self._open)

    def use(self, descriptor: LazyDescriptor) -> None:
        """Mark ``descriptor`` (just opened or used) most recent; close the oldest beyond the limit."""
        with self._lock:
            self._open[descriptor] = None
            self._open.move_to_end(descriptor)
            while len(self._open) > self.limit:
                oldest, _ = self._open.popitem(last=False)
                oldest._release()

    def forget(self, descriptor: LazyDescriptor) -> None:
        with self._lock:
            self._open.pop(descriptor, None)


def default_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 16
    return max(16, soft // 2)


DEFAULT_BUDGET = DescriptorBudget(default_limit())


class LazyDescriptor:
    """A file opened on demand under a :class:`DescriptorBudget` (rule 1 above)."""

    def __init__(self, path: Path, flags: int, budget: DescriptorBudget | None = None, mode: int = 0o644) -> None:
        self.path = path
        self.flags = flags
        self.mode = mode
        self.budget = budget if budget is not None else DEFAULT_BUDGET
        self._fd: int | None = None
        self._created = False
        self.closed = False

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    @property
    def fd(self) -> int:
        if self.closed:
            raise ValueError(f"{self.path} is closed")
        if self._fd is None:
            flags = self.flags if not self._created else self.flags & ~os.O_CREAT
            if self._created:
                self.budget.reopened += 1
            self._fd = os.open(self.path, flags, self.mode)
            self._created = True
        self.budget.use(self)
        assert self._fd is not None
        return self._fd

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def _release(self) -> None:
        """Close the descriptor only (the budget evicted it); the next :attr:`fd` reopens it."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def close(self) -> None:
        """Close for good."""
        self.closed = True
        self.budget.forget(self)
        self._release()
