"""The descriptor budget: files beyond it are closed least recently used and reopened on use."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reference.broker.log.descriptors import DescriptorBudget, LazyDescriptor


def test_at_most_limit_descriptors_are_open_and_evicted_files_reopen_with_their_contents(tmp_path: Path) -> None:
    budget = DescriptorBudget(limit=4)
    files = [LazyDescriptor(tmp_path / f"{n}.log", os.O_RDWR | os.O_APPEND | os.O_CREAT, budget) for n in range(10)]
    for round_ in range(3):
        for n, file in enumerate(files):
            os.write(file.fd, f"{round_}:{n};".encode())
            assert budget.open_count <= 4
    assert sum(file.is_open for file in files) == 4
    assert budget.reopened > 0
    for n, file in enumerate(files):
        assert os.pread(file.fd, 100, 0) == f"0:{n};1:{n};2:{n};".encode()
    for file in files:
        file.close()
    assert budget.open_count == 0


def test_a_file_deleted_while_evicted_is_not_recreated_by_a_reopen(tmp_path: Path) -> None:
    budget = DescriptorBudget(limit=1)
    first = LazyDescriptor(tmp_path / "first.log", os.O_RDWR | os.O_APPEND | os.O_CREAT, budget)
    second = LazyDescriptor(tmp_path / "second.log", os.O_RDWR | os.O_APPEND | os.O_CREAT, budget)
    first.fd, second.fd  # noqa: B018 - opening the second evicts the first
    assert not first.is_open
    (tmp_path / "first.log").unlink()
    with pytest.raises(FileNotFoundError):
        first.fd  # noqa: B018
    assert not (tmp_path / "first.log").exists()


def test_a_closed_descriptor_refuses_use(tmp_path: Path) -> None:
    file = LazyDescriptor(tmp_path / "x.log", os.O_RDWR | os.O_CREAT, DescriptorBudget(limit=2))
    file.close()
    with pytest.raises(ValueError):
        file.fd  # noqa: B018
