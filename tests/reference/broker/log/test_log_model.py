"""Stateful property test: the on-disk log against a plain Python list of batches.

Hypothesis drives random appends, reads, rolls, clean restarts, crashes (with and without a torn
tail), truncations and DeleteRecords; after every step the on-disk log must agree with the model
and pass ``check_valid``."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from reference.broker.log.clock import ManualClock
from reference.broker.log.config import LogConfig
from reference.broker.log.log import PartitionLog

from .helpers import T0, batch, decoded, headers

CONFIG = LogConfig(segment_bytes=400, index_interval_bytes=120)


@dataclass(frozen=True)
class ModelBatch:
    base_offset: int
    values: tuple[bytes, ...]

    @property
    def last_offset(self) -> int:
        return self.base_offset + len(self.values) - 1


class LogAgainstModel(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="refka-log-model-"))
        self.clock = ManualClock(T0)
        self.log = PartitionLog.open(self.root / "t-0", CONFIG, self.clock)
        self.model: list[ModelBatch] = []
        self.log_start = 0
        self.counter = 0

    def teardown(self) -> None:
        self.log.close_without_flush()
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def model_end(self) -> int:
        return self.model[-1].last_offset + 1 if self.model else self.log_start

    @rule(count=st.integers(1, 4), width=st.integers(0, 40))
    def append(self, count: int, width: int) -> None:
        values = tuple(b"%d:" % (self.counter + n) + b"x" * width for n in range(count))
        self.counter += count
        self.clock.advance(10)
        info = self.log.append_as_leader(batch(keys=[b"k"] * count, values=list(values), timestamp=self.clock.now_ms), 0)
        assert info.first_offset == self.model_end
        self.model.append(ModelBatch(info.first_offset, values))
        self.log.update_high_watermark(self.log.log_end_offset)

    @rule(data=st.data(), max_bytes=st.integers(1, 600))
    def read(self, data: st.DataObject, max_bytes: int) -> None:
        offset = data.draw(st.integers(self.log_start, self.model_end))
        got = decoded(self.log.read(offset, max_bytes).records)
        expected = [b for b in self.model if b.last_offset >= offset]
        if not expected:
            assert got == []
            return
        assert got, "a read below the LEO returns at least one batch"
        for found, wanted in zip(got, expected, strict=False):
            assert found.base_offset == wanted.base_offset
            assert tuple(record.value for record in found.records) == wanted.values
        assert len(got) <= len(expected)

    @rule()
    def roll(self) -> None:
        self.log.roll()

    @rule()
    def clean_restart(self) -> None:
        self.log.close()
        self.log = PartitionLog.open(
            self.root / "t-0", CONFIG, self.clock, recovery_point=self.log.recovery_point,
            log_start_offset=self.log_start, high_watermark=self.log.high_watermark, had_clean_shutdown=True,
        )

    @rule(torn=st.integers(0, 60), stale_recovery_point=st.booleans())
    def crash(self, torn: int, stale_recovery_point: bool) -> None:
        recovery_point = 0 if stale_recovery_point else self.log.recovery_point
        active = self.log.active_segment.log_path
        self.log.close_without_flush()
        if torn:
            with open(active, "ab") as handle:  # the start of a batch that was being written
                handle.write(batch(3, value=b"torn")[:torn])
        self.log = PartitionLog.open(
            self.root / "t-0", CONFIG, self.clock, recovery_point=recovery_point, log_start_offset=self.log_start,
        )
        self.log.update_high_watermark(self.log.log_end_offset)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        target = data.draw(st.integers(self.log_start, self.model_end))
        self.log.truncate_to(target)
        self.model = [b for b in self.model if b.last_offset < target]
        self.log_start = min(self.log_start, self.model_end if self.model else target)
        if not self.model:
            self.log_start = self.log.log_start_offset

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete_records(self, data: st.DataObject) -> None:
        target = data.draw(st.integers(self.log_start, self.model_end))
        self.log.delete_records(target)
        self.log_start = max(self.log_start, target)
        self.model = [b for b in self.model if b.last_offset >= self.log_start]

    @invariant()
    def agrees_with_the_model(self) -> None:
        if not hasattr(self, "log"):
            return
        self.log.check_valid()
        assert self.log.log_end_offset == self.model_end
        assert self.log.log_start_offset == self.log_start
        offset, seen = self.log_start, []
        while offset < self.log.log_end_offset:
            found = headers(self.log.read(offset, 1 << 20).records)
            seen.extend(found)
            offset = found[-1].next_offset
        assert [h.base_offset for h in seen if h.last_offset >= self.log_start] == [b.base_offset for b in self.model]
        assert not [p for p in os.listdir(self.root / "t-0") if p.endswith((".swap", ".cleaned"))]


LogAgainstModel.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
test_log_against_model = LogAgainstModel.TestCase
