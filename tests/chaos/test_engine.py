"""chaos/engine.py: finding a Docker engine, and the locally built debian:bookworm-slim base."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from chaos import engine


def test_debootstrap_makes_a_minbase_bookworm_with_everything_the_dockerfiles_need(tmp_path: Path) -> None:
    command = engine.debootstrap_command(tmp_path / "rootfs", "http://mirror.example/debian")
    assert command[:2] == ["debootstrap", "--variant=minbase"]
    included = command[2].removeprefix("--include=").split(",")
    for package in ("python3", "python3-venv", "openjdk-17-jre-headless", "iptables"):
        assert package in included
    assert command[3:] == ["bookworm", str(tmp_path / "rootfs"), "http://mirror.example/debian"]


def test_the_rootfs_tarball_holds_paths_relative_to_the_root_and_keeps_symlinks(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "usr" / "bin").mkdir(parents=True)
    (rootfs / "usr" / "bin" / "tool").write_text("#!/bin/sh\n")
    (rootfs / "bin").symlink_to("usr/bin")
    tarball = tmp_path / "rootfs.tar"
    engine._write_tarball(rootfs, tarball)
    with tarfile.open(tarball) as archive:
        members = {member.name: member for member in archive.getmembers()}
    assert "usr/bin/tool" in members
    assert members["bin"].issym() and members["bin"].linkname == "usr/bin"
    assert not any(name.startswith("/") or "rootfs" in name for name in members)


def test_a_remote_docker_host_that_does_not_answer_is_reported_and_nothing_is_installed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")  # nothing listens on port 1
    with pytest.raises(engine.EngineUnavailable, match=r"DOCKER_HOST=tcp://127.0.0.1:1 does not answer"):
        engine.ensure_engine()


def test_a_non_root_user_is_told_to_start_dockerd_rather_than_have_it_installed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine.os, "geteuid", lambda: 1000)
    assert "not root" in (engine._why_not_install(install=True) or "")
    assert "not asked" in (engine._why_not_install(install=False) or "")


def test_the_install_script_ships_with_the_working_tree() -> None:
    script = engine.INSTALL_SCRIPT.read_text()
    assert "docker.io" in script and "dockerd" in script and "debootstrap" in script


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.xdist_group("docker")
def test_the_base_image_is_built_once_and_then_reused() -> None:
    if not engine.engine_available():
        pytest.skip("no docker engine")
    client = engine.ensure_engine(install=False)
    image_id = engine.build_base_image(client, log=lambda line: None)  # debootstraps only if missing
    assert client.images.get(engine.BASE_IMAGE).id == image_id
    messages: list[str] = []
    assert engine.build_base_image(client, log=messages.append) == image_id
    assert messages == [f"{engine.BASE_IMAGE} already present: nothing to do"]
    output = client.containers.run(engine.BASE_IMAGE, ["sh", "-c", "python3 --version; java -version 2>&1; "
                                                       "iptables --version"], remove=True, network_mode="none")
    text = output.decode()
    assert "Python 3.11" in text and "17." in text and "iptables" in text
