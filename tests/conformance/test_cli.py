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
