"""A full disk takes the log directory offline (KAFKA_STORAGE_ERROR), and nothing acknowledged is
lost: after space is freed and the broker restarts, every acknowledged batch is read back.

Two ways to fill the disk:

* a real one: a 6 MiB ext2 image on a loop device (``mount -o loop``, needs root; skipped, with
  the reason, where mounting is impossible);
* a fault-injection seam that runs everywhere: the segment's write writes half of the bytes and
  then raises ``OSError(ENOSPC)``, as ``write`` does on a file system that fills up mid-batch.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reference.broker.log import segment
from reference.records.batch import iter_record_batches

from .test_core import Harness, batch

STORAGE_ERROR = 56


def read_back(harness: Harness, topic: str) -> dict[int, bytes]:
    """offset -> value of everything stored in partition 0, read from offset 0."""
    found: dict[int, bytes] = {}
    offset = 0
    while True:
        answer = harness.call("Fetch", 12, **harness.fetch_request(topic, 0, offset)).responses[0].partitions[0]
        assert answer.error_code == 0
        before = offset
        for stored in iter_record_batches(answer.records or b""):
            for record in stored.records:
                found[record.offset(stored.base_offset)] = record.value or b""
            offset = stored.base_offset + stored.last_offset_delta + 1
        if offset == before:
            return found


def fill_until_refused(harness: Harness, topic: str, value_size: int) -> tuple[dict[int, bytes], int]:
    """Produce distinct values until the broker refuses one: (acknowledged offset -> value, error)."""
    acknowledged: dict[int, bytes] = {}
    for number in range(10_000):
        value = f"{number:08d}".encode() + os.urandom(value_size // 2).hex().encode()[:value_size]
        answer = harness.produce(topic, 0, batch(value)).responses[0].partition_responses[0]
        if answer.error_code != 0:
            return acknowledged, answer.error_code
        acknowledged[answer.base_offset] = value
    pytest.fail("the disk never filled up")


def check_offline_then_recovered(harness: Harness, topic: str, acknowledged: dict[int, bytes],
                                 free_space: Iterator[None] | None = None) -> None:
    # offline: produce and fetch of every partition in the directory answer KAFKA_STORAGE_ERROR
    assert harness.produce(topic, 0, batch(b"small")).responses[0].partition_responses[0].error_code == STORAGE_ERROR
    fetched = harness.call("Fetch", 12, **harness.fetch_request(topic, 0, 0)).responses[0].partitions[0]
    assert fetched.error_code == STORAGE_ERROR
    # the broker itself still answers
    assert harness.call("Metadata", 12, topics=None, allow_auto_topic_creation=False).topics
    # space freed, broker restarted: the directory is back, recovered, with every acknowledged batch
    if free_space is not None:
        next(free_space, None)
    harness.restart()
    assert read_back(harness, topic) == acknowledged
    assert harness.produce(topic, 0, batch(b"after")).responses[0].partition_responses[0].error_code == 0


def test_enospc_mid_batch_takes_the_directory_offline_and_loses_nothing_acknowledged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    harness = Harness(tmp_path / "broker")
    try:
        assert harness.create_topic("disk").topics[0].error_code == 0
        assert harness.create_topic("other").topics[0].error_code == 0
        acknowledged = {}
        for number in range(5):
            answer = harness.produce("disk", 0, batch(f"acked-{number}".encode())).responses[0].partition_responses[0]
            assert answer.error_code == 0
            acknowledged[answer.base_offset] = f"acked-{number}".encode()
        write = segment._write_fully

        def half_then_enospc(descriptor: int, data: bytes | bytearray | memoryview) -> None:
            write(descriptor, memoryview(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(segment, "_write_fully", half_then_enospc)
        assert harness.produce("disk", 0, batch(b"refused")).responses[0].partition_responses[0].error_code == STORAGE_ERROR
        other = harness.produce("other", 0, batch(b"same dir")).responses[0].partition_responses[0]
        assert other.error_code == STORAGE_ERROR  # the whole directory is offline, not one log
        monkeypatch.setattr(segment, "_write_fully", write)
        check_offline_then_recovered(harness, "disk", acknowledged)
    finally:
        harness.broker.shutdown()


@pytest.fixture
def tiny_file_system(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a loop device needs root")
    mkfs = shutil.which("mkfs.ext2")
    if mkfs is None:
        pytest.skip("mkfs.ext2 is not installed")
    image, mount_point = tmp_path / "disk.img", tmp_path / "mnt"
    mount_point.mkdir()
    with open(image, "wb") as out:
        out.truncate(6 * 1024 * 1024)
    subprocess.run([mkfs, "-q", "-F", "-m", "0", str(image)], check=True, capture_output=True)
    mounted = subprocess.run(["mount", "-o", "loop", str(image), str(mount_point)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a loop device here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False, capture_output=True)


def test_a_really_full_file_system_takes_the_directory_offline_and_loses_nothing_acknowledged(
        tiny_file_system: Path) -> None:
    ballast = tiny_file_system / "ballast"
    ballast.write_bytes(b"\0" * (512 * 1024))  # what the operator deletes to free space

    def free_space() -> Iterator[None]:
        ballast.unlink()
        yield

    harness = Harness(tiny_file_system / "broker")
    try:
        assert harness.create_topic("disk").topics[0].error_code == 0
        acknowledged, error = fill_until_refused(harness, "disk", value_size=64 * 1024)
        assert error == STORAGE_ERROR
        assert len(acknowledged) >= 10
        check_offline_then_recovered(harness, "disk", acknowledged, free_space())
    finally:
        harness.broker.shutdown()
