"""``refka conform`` and ``refka kafka`` command-line behaviour that needs no broker."""

from __future__ import annotations

import sys

from conformance.cli import pytest_command
from reference.cli import main


def test_conform_without_bootstrap_and_without_embedded_broker(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "reference.broker.embedded", None)  # makes the import fail
    assert main(["conform", "--report", str(tmp_path)]) == 2
    assert "embedded reference broker" in capsys.readouterr().err


def test_pytest_command_passes_options_and_extra_arguments(tmp_path):
    command = pytest_command("h:1", tmp_path, "kcat", None, ["--", "-k", "fetch"])
    assert command[command.index("--bootstrap-server") + 1] == "h:1"
    assert command[command.index("--clients") + 1] == "kcat"
    assert command[-2:] == ["-k", "fetch"]
    assert "conformance.plugin" in command and "conformance.suite" in command


def test_a_run_that_broke_is_never_reported_ok() -> None:
    """A module that fails to import makes pytest exit 2 over the tests that did run: the verdict
    line says FAILED and why, even when every collected test passed."""
    from conformance.cli import with_exit_status

    ok = "conformance OK: 3 passed, 0 failed, 0 skipped of 3 against h:1 in 2 s"
    assert with_exit_status(ok, 0) == ok
    assert with_exit_status(ok, 5) == ok  # nothing selected by -k: the counts say so
    broken = with_exit_status(ok, 2)
    assert broken.startswith("conformance FAILED: pytest exited with status 2 (interrupted, or a test module")
    assert broken.endswith("3 passed, 0 failed, 0 skipped of 3 against h:1 in 2 s")
