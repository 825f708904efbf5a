"""The one door to the disk's durability: fsync, directory fsync, truncation.

Theory of operation
-------------------
A ``write`` reaches the operating system's page cache: it survives the broker process dying
(``kill -9``) but not the machine losing power.  Only what was *fsynced* is on the disk:

* a file's contents up to its size when ``fsync(file)`` returned;
* a file's *name* (its creation, or a rename onto it) once the directory holding it was fsynced
  (``fsync_directory``), which is why Kafka's atomic rename (``Utils.atomicMoveWithFallback``)
  fsyncs the parent directory after the move.

Every place in ``reference/`` that makes data durable calls :func:`fsync` or
:func:`fsync_directory` -- a small file rewritten whole goes through :func:`write_atomically` --
and every place that cuts a file short calls :func:`truncate`.  In
production they are ``os.fsync`` and ``os.ftruncate``/``os.truncate`` and nothing more (one
dictionary test).  The deterministic simulator (:mod:`chaos.sim.disk`) *watches* a directory tree
with :func:`watch`: calls on files under it are reported to its observer instead, which records
what a real disk would hold, so that a simulated power loss can cut each file back to what was
durable plus any prefix of the rest.  The observer replaces the real fsync (the simulator's power
loss is simulated; the host's page cache needs no flushing for it), and truncations still happen.

Truncation is part of the door because it moves what is durable: a file fsynced at 1000 bytes and
cut to 500 has at most 500 durable bytes from then on (the model takes the cut as durable at once,
which a journaling file system may do; the bytes past it are gone from the page cache anyway).
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import Protocol


class HasFileno(Protocol):
    def fileno(self) -> int: ...


class DurabilityObserver(Protocol):
    """What a watcher (the simulator's disk model) is told, instead of the calls happening."""

    def synced(self, descriptor: int) -> None: ...

    def directory_synced(self, directory: Path) -> None: ...

    def truncated(self, path: Path, length: int) -> None: ...


# root directory -> observer.  Weak: a simulated cluster that is gone stops watching by itself.
_watchers: weakref.WeakValueDictionary[str, DurabilityObserver] = weakref.WeakValueDictionary()


def watch(root: Path, observer: DurabilityObserver) -> None:
    """Report fsyncs and truncations of files under ``root`` to ``observer`` (the simulator)."""
    _watchers[os.path.realpath(root) + os.sep] = observer


def unwatch(root: Path) -> None:
    _watchers.pop(os.path.realpath(root) + os.sep, None)


def _observer_of(path: str) -> DurabilityObserver | None:
    for root, observer in list(_watchers.items()):
        if path.startswith(root):
            return observer
    return None


def _path_of(descriptor: int) -> str:
    return os.readlink(f"/proc/self/fd/{descriptor}")


def fsync(file: int | HasFileno) -> None:
    """Make ``file``'s contents durable up to its current size (``os.fsync``).  A Python file
    object must have been flushed (``handle.flush()``) first, as for ``os.fsync``."""
    descriptor = file if isinstance(file, int) else file.fileno()
    if _watchers:
        observer = _observer_of(_path_of(descriptor))
        if observer is not None:
            observer.synced(descriptor)
            return
    os.fsync(descriptor)


def fsync_directory(directory: Path) -> None:
    """Make the names in ``directory`` durable: files created or renamed into it since."""
    if _watchers:
        observer = _observer_of(os.path.realpath(directory) + os.sep)
        if observer is not None:
            observer.directory_synced(Path(directory))
            return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def truncate(file: int | Path, length: int) -> None:
    """Cut ``file`` (an open descriptor or a path) to ``length`` bytes (``os.ftruncate``/``os.truncate``)."""
    if isinstance(file, int):
        os.ftruncate(file, length)
    else:
        os.truncate(file, length)
    if _watchers:
        path = _path_of(file) if isinstance(file, int) else os.path.realpath(file)
        observer = _observer_of(path)
        if observer is not None:
            observer.truncated(Path(path), length)


def write_atomically(path: Path, data: bytes, temporary: Path | None = None) -> None:
    """Replace ``path`` with ``data`` so that a crash or a power loss leaves the old file or the new
    one, never a mix: write ``temporary`` (default ``<name>.tmp``), fsync it, rename it over ``path``
    and fsync the directory, which makes the rename durable (Kafka's ``Utils.atomicMoveWithFallback``
    after the flush)."""
    temporary = temporary or path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        fsync(handle)
    os.replace(temporary, path)
    fsync_directory(path.parent)
