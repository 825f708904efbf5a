"""reference.durability: a small file rewritten whole is replaced atomically and durably."""

from __future__ import annotations

from pathlib import Path

from reference import durability


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def synced(self, descriptor: int) -> None:
        self.calls.append(("synced", descriptor))

    def directory_synced(self, directory: Path) -> None:
        self.calls.append(("directory", directory))

    def truncated(self, path: Path, length: int) -> None:
        self.calls.append(("truncated", path))


def test_write_atomically_fsyncs_the_file_then_the_directory_and_leaves_no_temporary(tmp_path: Path) -> None:
    recorder = Recorder()
    durability.watch(tmp_path, recorder)
    try:
        target = tmp_path / "quorum-state"
        target.write_bytes(b"old")
        durability.write_atomically(target, b"new")
        assert target.read_bytes() == b"new"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["quorum-state"]
        assert [kind for kind, _ in recorder.calls] == ["synced", "directory"], "the rename is made durable"
        assert recorder.calls[1][1] == tmp_path
        durability.write_atomically(target, b"newer", temporary=tmp_path / "quorum-state.part")
        assert target.read_bytes() == b"newer" and not (tmp_path / "quorum-state.part").exists()
    finally:
        durability.unwatch(tmp_path)
