"""Offline log directories: a write that fails for want of disk takes its directory offline.

Theory of operation
-------------------
Kafka's ``LogDirFailureChannel``: when an ``IOException`` escapes a log operation (a full disk:
ENOSPC; a failing device: EIO), the broker marks the whole log directory offline rather than
carrying on with a log whose in-memory state (LEO, indexes, producer state) may no longer match
its files.  From then on every partition in that directory answers produce and fetch with
``56 KAFKA_STORAGE_ERROR`` (retriable: clients retry, and in a cluster move to the new leader).
The directory comes back only when the broker restarts, and its logs are then recovered from
disk like after a crash.  (Kafka 4.3.1 with a single log directory goes further and halts the
broker; the reference broker keeps serving everything else, which is what a one-node teaching
broker is for.)

What is never lost: a batch is acknowledged only after its bytes were written (``write``
returned) to the segment.  A write that fails part-way is cut back to the previous end of the
segment (:meth:`~reference.broker.log.segment.LogSegment.append`), and recovery after the restart
validates batch by batch, so nothing torn is ever read and every acknowledged batch is still
there.

The registry is keyed by the directory's resolved path, so several brokers in one process (tests)
do not see each other's failures.  Invariant: a directory once offline stays offline until
:func:`mark_online` (called when a broker opens it again).
"""

from __future__ import annotations

import logging
from pathlib import Path

from reference.errors import Errors, KafkaError

log = logging.getLogger("refka.broker.log")

_OFFLINE: dict[Path, str] = {}  # log directory -> why it went offline


def mark_offline(log_dir: Path, error: BaseException) -> KafkaError:
    """Take ``log_dir`` offline after ``error``; returns the KAFKA_STORAGE_ERROR to raise."""
    key = log_dir.resolve()
    if key not in _OFFLINE:
        _OFFLINE[key] = str(error)
        log.error("log directory %s is offline after %r; its partitions answer KAFKA_STORAGE_ERROR "
                  "until the broker restarts", log_dir, error)
    return storage_error(log_dir)


def mark_online(log_dir: Path) -> None:
    _OFFLINE.pop(log_dir.resolve(), None)


def is_offline(log_dir: Path) -> bool:
    return bool(_OFFLINE) and log_dir.resolve() in _OFFLINE


def storage_error(log_dir: Path) -> KafkaError:
    return KafkaError(Errors.KAFKA_STORAGE_ERROR, f"Log directory {log_dir} is offline: {_OFFLINE.get(log_dir.resolve())}")


def check_online(log_dir: Path) -> None:
    """Raise KAFKA_STORAGE_ERROR when ``log_dir`` is offline."""
    if is_offline(log_dir):
        raise storage_error(log_dir)
