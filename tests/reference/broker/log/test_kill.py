"""A real ``kill -9`` of a process appending to a log: every append it reported is there after
recovery, offsets are contiguous, and no torn batch is served."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from reference.broker.log.clock import ManualClock
from reference.broker.log.config import LogConfig
from reference.broker.log.log import PartitionLog

from .helpers import decoded

WRITER = r"""
import sys
from pathlib import Path
from reference.broker.log.clock import SystemClock
from reference.broker.log.config import LogConfig
from reference.broker.log.log import PartitionLog
from reference.records.batch import SimpleRecord, build_batch

log = PartitionLog.open(Path(sys.argv[1]), LogConfig(segment_bytes=20_000), SystemClock())
n = 0
while True:
    records = [SimpleRecord(b"value-%d-" % (n + i) + b"x" * 200, b"k", 1) for i in range(5)]
    info = log.append_as_leader(build_batch(records), 0)
    print(info.last_offset, flush=True)  # "acknowledged" once the write returned
    n += 5
"""


def test_kill_9_while_appending_loses_nothing_acknowledged(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(directory)], stdout=subprocess.PIPE, env=env)
    assert writer.stdout is not None
    deadline = time.monotonic() + 20
    acknowledged = -1
    while acknowledged < 2000 and time.monotonic() < deadline:
        line = writer.stdout.readline()
        if not line:
            break
        acknowledged = int(line)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    for line in writer.stdout.read().split():  # acknowledgements already in the pipe
        acknowledged = int(line)
    assert acknowledged >= 2000, "the writer made progress"
    log = PartitionLog.open(directory, LogConfig(segment_bytes=20_000), ManualClock())
    log.check_valid()
    assert log.log_end_offset > acknowledged
    values = []
    offset = 0
    while offset < log.log_end_offset:
        batches = decoded(log.read(offset, 1 << 20).records)
        values.extend(record.value for b in batches for record in b.records)
        offset = batches[-1].last_offset + 1
    assert [value.split(b"-")[1] for value in values] == [b"%d" % n for n in range(log.log_end_offset)]  # type: ignore[union-attr]
