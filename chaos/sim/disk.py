"""The simulated disk under a node's files: what survives a power loss.

Theory of operation
-------------------
The simulated nodes write real files; everything they write is at once in "the page cache" (the
files themselves), which is what a *process* crash leaves (:meth:`SimCluster.crash`).  A *power
loss* leaves only what reached the disk.  :class:`DiskModel` learns that through the one seam the
reference code makes durable through (:mod:`reference.durability`, which reports to it instead of
fsyncing for the files under the simulation's root) and, at a power loss, cuts the node's files
back to a state a real disk could hold:

1. **Contents.**  ``fsync(file)`` makes the file durable up to its size at that moment.  A later
   truncation lowers that (``durable = min(durable, length)``).  At a power loss each file keeps
   its durable bytes plus a *prefix* of the rest, of a length drawn from the run's ``Random``: a
   quarter of the time none of the unfsynced tail, a quarter all of it, else a uniform prefix
   length.  A file never fsynced has nothing durable: it may be cut to empty.  The cut may fall in
   the middle of a record batch (a torn tail), which the log's recovery must find by its CRC.
2. **Names.**  ``fsync_directory(d)`` makes the names then in ``d`` durable.  At a power loss a
   regular file created in ``d`` since (its name absent from that listing) vanishes with
   probability 1/2; when it stays, rule 1 applies to it.
3. After the power loss, what is left is what the disk holds: every size and name is durable.

What the model keeps that a real disk might not (each a possible outcome, so the model is sound --
it never leaves what no disk could -- but it is not the most hostile disk):

* **Files rewritten in place.**  Only the size is tracked, not the bytes: bytes below the durable
  size that were overwritten after the fsync keep their new value.  refka writes its logs and
  indexes by appending only (Kafka mmaps and preallocates its indexes; refka does not), rewrites
  small files whole through a temporary file and a rename, and truncates through the seam, so no
  durable byte is ever overwritten in place.  Kafka also trusts no index above the recovery
  point: it rebuilds them from the log.
* **Renames without a directory fsync.**  A name that now points at another file than at the last
  directory fsync (a rename over it) keeps the new file: the old file's bytes are gone from the
  simulation, so it cannot come back.  Every atomic rename in refka fsyncs the directory after it,
  so this does not arise for them.
* **Inode numbers** identify files (a rename keeps what was fsynced).  A new file that reuses the
  number of a deleted one inherits its durable size: more kept, never less.
* **Directories** (and files in a directory never fsynced) are kept: the model has no listing to
  compare them with.  Deleted files do not come back.
* Pages reach the disk in file order (a prefix), not in any order with holes.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from reference import durability

FileKey = tuple[int, int]  # (st_dev, st_ino): a file, whatever its name


def _key(stat: os.stat_result) -> FileKey:
    return stat.st_dev, stat.st_ino


@dataclass
class PowerLossReport:
    """What one power loss did to a node's files (for the fault log and the tests)."""

    cut: dict[str, tuple[int, int]] = field(default_factory=dict)  # relative path -> (size before, kept)
    vanished: list[str] = field(default_factory=list)

    def describe(self) -> str:
        lost = sum(before - kept for before, kept in self.cut.values())
        return f"{len(self.cut)} files cut ({lost} bytes lost), {len(self.vanished)} files vanished"


class DiskModel:
    """Durable sizes and names of the files under ``root`` (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.realpath(root))
        self.durable_size: dict[FileKey, int] = {}
        self.durable_names: dict[Path, dict[str, FileKey]] = {}
        self.frozen = False  # a node losing power: nothing it does now reaches the disk
        durability.watch(self.root, self)

    # -- the seam's reports (reference.durability) ------------------------------------------------

    def synced(self, descriptor: int) -> None:
        if not self.frozen:
            stat = os.fstat(descriptor)
            self.durable_size[_key(stat)] = stat.st_size

    def directory_synced(self, directory: Path) -> None:
        if not self.frozen:
            real = Path(os.path.realpath(directory))
            self.durable_names[real] = {entry.name: _key(entry.stat(follow_symlinks=False))
                                        for entry in os.scandir(real) if entry.is_file(follow_symlinks=False)}

    def truncated(self, path: Path, length: int) -> None:
        key = _key(os.stat(path))
        if key in self.durable_size:
            self.durable_size[key] = min(self.durable_size[key], length)

    # -- the power loss ---------------------------------------------------------------------------

    def power_loss(self, directory: Path, rng: random.Random) -> PowerLossReport:
        """Cut every file under ``directory`` back to what a disk could hold (rules 1-3); draws from
        ``rng`` in a fixed order (sorted paths), so the outcome is a function of the seed."""
        report = PowerLossReport()
        for dirpath, dirnames, filenames in os.walk(directory):
            dirnames.sort()
            real = Path(os.path.realpath(dirpath))
            listing = self.durable_names.get(real)
            for name in sorted(filenames):
                path = real / name
                stat = os.stat(path)
                relative = str(path.relative_to(self.root))
                if listing is not None and name not in listing and rng.random() < 0.5:
                    path.unlink()
                    self.durable_size.pop(_key(stat), None)
                    report.vanished.append(relative)
                    continue
                durable = min(self.durable_size.get(_key(stat), 0), stat.st_size)
                kept = durable + _drawn_prefix(rng, stat.st_size - durable)
                if kept < stat.st_size:
                    os.truncate(path, kept)
                    report.cut[relative] = (stat.st_size, kept)
                self.durable_size[_key(stat)] = kept
            if listing is not None:
                self.directory_synced(real)
        return report


def _drawn_prefix(rng: random.Random, unsynced: int) -> int:
    """How many of ``unsynced`` bytes past the durable size a power loss keeps."""
    if unsynced <= 0:
        return 0
    draw = rng.random()
    if draw < 0.25:
        return 0
    if draw < 0.5:
        return unsynced
    return rng.randint(0, unsynced)
