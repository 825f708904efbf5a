"""chaos/images.py and chaos/docker/: build contexts, entrypoints, and the images themselves."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from chaos import engine, images


def _fake_command(bin_dir: Path, name: str) -> None:
    """A stand-in for ``name`` that prints its arguments one a line, so an entrypoint's exec shows."""
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    path.chmod(0o755)


def _run_entrypoint(tmp_path: Path, script: str, fake: str, env: dict[str, str]) -> list[str]:
    entry = tmp_path / script
    entry.write_text(images.docker_resource(script))
    entry.chmod(0o755)
    _fake_command(tmp_path / "bin", fake)
    environment = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", **env}
    done = subprocess.run([str(entry)], env=environment, capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


def test_the_reference_entrypoint_advertises_the_fixed_address_and_passes_each_setting(tmp_path: Path) -> None:
    arguments = _run_entrypoint(tmp_path, "refka-broker.sh", "refka", {
        "NODE_ID": "1", "ADVERTISED_HOST": "172.28.0.11",
        "BROKER_SETTINGS": "num.partitions=3\nlog.message.timestamp.type=LogAppendTime"})
    assert arguments == ["broker", "--listen", "0.0.0.0:9092", "--data-dir", "/var/lib/refka", "--node-id", "1",
                         "--set", "advertised.listeners=PLAINTEXT://172.28.0.11:9092",
                         "--set", "num.partitions=3", "--set", "log.message.timestamp.type=LogAppendTime"]


def test_the_kafka_entrypoint_writes_a_kraft_config_formats_once_and_execs_the_broker(tmp_path: Path) -> None:
    home, data = tmp_path / "kafka", tmp_path / "data"
    home.mkdir()
    env = {"KAFKA_NODE_ID": "2", "KAFKA_QUORUM_VOTERS": "1@172.28.0.11:9093,2@172.28.0.12:9093",
           "KAFKA_ADVERTISED_HOST": "172.28.0.12", "KAFKA_CLUSTER_ID": "abc",
           "KAFKA_SETTINGS": "min.insync.replicas=2", "KAFKA_HOME": str(home), "KAFKA_DATA": str(data)}
    calls = _run_entrypoint(tmp_path, "kafka-node.sh", "java", env)
    properties = dict(line.split("=", 1) for line in (home / "server.properties").read_text().splitlines() if line)
    assert properties["node.id"] == "2"
    assert properties["controller.quorum.voters"] == "1@172.28.0.11:9093,2@172.28.0.12:9093"
    assert properties["advertised.listeners"] == "PLAINTEXT://172.28.0.12:9092"
    assert properties["process.roles"] == "broker,controller"
    assert properties["log.dirs"] == str(data) and properties["min.insync.replicas"] == "2"
    # no meta.properties yet: StorageTool format runs first (the fake java returns at once), then the broker
    assert "kafka.tools.StorageTool" in calls and calls[-2:] == ["kafka.Kafka", str(home / "server.properties")]
    data.mkdir()
    (data / "meta.properties").write_text("formatted\n")
    again = _run_entrypoint(tmp_path, "kafka-node.sh", "java", env)
    assert "kafka.tools.StorageTool" not in again and again[-2] == "kafka.Kafka"


def test_the_kafka_context_carries_every_jar_the_dockerfile_and_an_executable_entrypoint(tmp_path: Path) -> None:
    libs = tmp_path / "libs"
    libs.mkdir()
    for name in ("kafka_2.13-4.0.0.jar", "kafka-clients-4.0.0.jar"):
        (libs / name).write_bytes(b"PK")
    context = tmp_path / "context"
    context.mkdir()
    images.kafka_context(context, libs)
    assert sorted(p.name for p in (context / "libs").iterdir()) == ["kafka-clients-4.0.0.jar", "kafka_2.13-4.0.0.jar"]
    assert (context / "Dockerfile.kafka").read_text().startswith("#")
    assert "FROM debian:bookworm-slim" in (context / "Dockerfile.kafka").read_text()
    assert os.stat(context / "kafka-node.sh").st_mode & stat.S_IXUSR
    assert (context / "log4j2.properties").exists()


def test_a_kafka_context_without_jars_says_how_to_get_them(tmp_path: Path) -> None:
    (tmp_path / "libs").mkdir()
    with pytest.raises(images.ImageBuildError, match="refka kafka resolve"):
        images.kafka_context(tmp_path, tmp_path / "libs")


def test_the_context_digest_changes_with_content_only(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_text("one")
    first = images.context_digest(tmp_path)
    assert images.context_digest(tmp_path) == first
    (tmp_path / "a" / "f").write_text("two")
    assert images.context_digest(tmp_path) != first


def test_an_unknown_target_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown target 'redpanda'"):
        images.ensure_image(None, "redpanda")  # type: ignore[arg-type]


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.xdist_group("docker")
def test_the_reference_image_runs_the_broker_installed_from_the_working_tree() -> None:
    if not engine.engine_available():
        pytest.skip("no docker engine")
    client = engine.ensure_engine(install=False)
    engine.build_base_image(client, log=lambda line: None)
    built = images.ensure_image(client, "reference", log=lambda line: None)
    output = client.containers.run(built.tag, ["--help"], entrypoint=["refka", "broker"], remove=True,
                                   network_mode="none")
    assert b"--data-dir" in output


def test_the_reference_source_is_found_from_an_installed_copy_run_in_a_checkout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REFKA_SOURCE", raising=False)
    monkeypatch.setattr(images, "PROJECT_ROOT", tmp_path / "site-packages")  # no pyproject.toml there
    monkeypatch.chdir(Path(__file__).resolve().parent.parent.parent)
    assert (images.working_tree() / "reference").is_dir()
    monkeypatch.setenv("REFKA_SOURCE", str(tmp_path))
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "reference").mkdir()
    assert images.working_tree() == tmp_path
