"""The two broker images the chaos harness runs: the reference broker and Apache Kafka.

Theory of operation
-------------------
Both images are built ``FROM debian:bookworm-slim`` (made locally by ``refka chaos base-image``
where no registry is reachable, see :mod:`chaos.engine`) through the docker SDK, from a build
context assembled in a temporary directory:

* **reference** (``refka-chaos/reference:latest``): a wheel of the project built on the host from
  the working tree (``pip wheel --no-deps``) and wheels of the broker's two native dependencies,
  ``crc32c`` and ``cramjam``; the Dockerfile installs them into a venv offline
  (``--no-index``).  The entrypoint ``refka-broker.sh`` runs ``refka broker`` on ``0.0.0.0:9092``
  and advertises the container's fixed address (``advertised.listeners``).
* **kafka** (``refka-chaos/kafka:<version>``): the jars that ``refka kafka`` resolves with Maven
  into ``$REFKA_CACHE/kafka-<version>/libs`` (:func:`conformance.apache_kafka.resolve_libs`), the
  log4j config, and the entrypoint ``kafka-node.sh``, which writes a KRaft ``server.properties``
  from environment variables (``KAFKA_NODE_ID``, ``KAFKA_QUORUM_VOTERS``,
  ``KAFKA_ADVERTISED_HOST``, ``KAFKA_CLUSTER_ID``, ``KAFKA_SETTINGS``) and formats the log
  directory on first start only.

Builds run with ``network_mode="none"``: everything the images need is in the base image or in
the build context, so a build never depends on a reachable mirror, and nothing leaves the machine.

The reference image is rebuilt whenever asked (the working tree changes often); its tag also
carries a digest of the wheel so :func:`ensure_image` can tell a stale image from a fresh one.
The Kafka image is keyed by the pinned Kafka version and built once.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import docker
import docker.errors

from chaos.engine import BASE_IMAGE, image_exists

IMAGE_REPOSITORY = "refka-chaos"
TARGETS = ("reference", "kafka")
REFERENCE_NATIVE_WHEELS = ("crc32c", "cramjam")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def working_tree() -> Path:
    """Where the reference image's source comes from: ``$REFKA_SOURCE``, else the tree this module
    was imported from (an editable install), else the current directory (a tox or pip-installed
    copy run from a checkout)."""
    import os

    for candidate in (os.environ.get("REFKA_SOURCE"), PROJECT_ROOT, Path.cwd()):
        if candidate and (Path(candidate) / "pyproject.toml").exists() and (Path(candidate) / "reference").is_dir():
            return Path(candidate)
    return PROJECT_ROOT


class ImageBuildError(RuntimeError):
    """An image could not be built; the message carries the build's last log lines."""


@dataclass(frozen=True)
class BuiltImage:
    """One image the harness can run: its tag, id and how long the build took (0 when reused)."""

    target: str
    tag: str
    image_id: str
    build_seconds: float


# ---------------------------------------------------------------- docker/ resources
def docker_resource(name: str) -> str:
    """The text of one file shipped in ``chaos/docker/`` (a Dockerfile or an entrypoint)."""
    return resources.files("chaos").joinpath("docker", name).read_text()


def _copy_resource(name: str, context: Path, mode: int = 0o644) -> None:
    destination = context / name
    destination.write_text(docker_resource(name))
    destination.chmod(mode)


# ---------------------------------------------------------------- build contexts
def reference_context(context: Path, project_root: Path | None = None) -> None:
    """Fill ``context`` with the reference broker's Dockerfile, entrypoint and wheels."""
    project_root = project_root or working_tree()
    if not (project_root / "pyproject.toml").exists():
        raise ImageBuildError(f"no working tree at {project_root} (pyproject.toml missing): "
                              "the reference image installs refka from its source")
    wheels = context / "wheels"
    wheels.mkdir()
    with tempfile.TemporaryDirectory(prefix="refka-source-") as source:
        # build from a copy so the working tree gets no build/ or egg-info litter
        _copy_source(project_root, Path(source))
        _pip_wheel([source], wheels)
    _pip_wheel(list(REFERENCE_NATIVE_WHEELS), wheels)
    _copy_resource("Dockerfile.reference", context)
    _copy_resource("refka-broker.sh", context, 0o755)


def kafka_context(context: Path, libs: Path) -> None:
    """Fill ``context`` with the Kafka Dockerfile, entrypoint, log4j config and ``libs`` jars."""
    jars = sorted(libs.glob("*.jar"))
    if not jars:
        raise ImageBuildError(f"no jars in {libs}: run `refka kafka resolve` first")
    target = context / "libs"
    target.mkdir()
    for jar in jars:
        shutil.copy2(jar, target / jar.name)
    _copy_resource("Dockerfile.kafka", context)
    _copy_resource("kafka-node.sh", context, 0o755)
    (context / "log4j2.properties").write_text(
        resources.files("conformance").joinpath("kafka-log4j2.properties").read_text())


SOURCE_FILES = ("pyproject.toml", "README.md", "LICENSE")
SOURCE_PACKAGES = ("reference", "spec", "conformance", "chaos")


def _copy_source(project_root: Path, destination: Path) -> None:
    """Copy what the sdist would hold: pyproject, README and the four import packages."""
    for name in SOURCE_FILES:
        if (project_root / name).exists():
            shutil.copy2(project_root / name, destination / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for package in SOURCE_PACKAGES:
        if (project_root / package).is_dir():
            shutil.copytree(project_root / package, destination / package, ignore=ignore)


def _pip_wheel(requirements: list[str], wheels: Path) -> None:
    """``pip wheel`` on the host (the build itself has no network); pip may fetch setuptools."""
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels)]
    done = subprocess.run([*command, *requirements], capture_output=True, text=True)
    if done.returncode != 0:
        raise ImageBuildError(f"pip wheel {' '.join(requirements)} failed: {done.stderr.strip()[-600:]}")


def context_digest(context: Path) -> str:
    """A short digest of every file in a build context: equal contexts give equal image tags."""
    digest = hashlib.sha256()
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(context)).encode())
        if path.suffix == ".whl":  # a wheel embeds timestamps: hash the files it carries instead
            digest.update(_wheel_content_digest(path))
        else:
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _wheel_content_digest(wheel: Path) -> bytes:
    import zipfile

    digest = hashlib.sha256()
    with zipfile.ZipFile(wheel) as archive:
        for name in sorted(archive.namelist()):
            digest.update(name.encode())
            digest.update(archive.read(name))
    return digest.digest()


# ---------------------------------------------------------------- building
def image_tag(target: str, version: str) -> str:
    return f"{IMAGE_REPOSITORY}/{target}:{version}"


def ensure_image(client: docker.DockerClient, target: str, log: Callable[[str], None] = print) -> BuiltImage:
    """Build (or reuse) the image for ``target`` ("reference" or "kafka") and return it."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}: expected one of {', '.join(TARGETS)}")
    if not image_exists(client, BASE_IMAGE):
        raise ImageBuildError(f"{BASE_IMAGE} is missing: run `refka chaos base-image` (or pull it)")
    with tempfile.TemporaryDirectory(prefix=f"refka-{target}-context-") as scratch:
        context = Path(scratch)
        if target == "reference":
            reference_context(context)
            tag = image_tag(target, context_digest(context))
        else:
            from conformance.apache_kafka import pinned_version, resolve_libs

            version = pinned_version()
            tag = image_tag(target, version)
            if image_exists(client, tag):
                return BuiltImage(target, tag, str(client.images.get(tag).id), 0.0)
            kafka_context(context, resolve_libs(version))
        if image_exists(client, tag):
            log(f"{tag} is up to date")
            return BuiltImage(target, tag, str(client.images.get(tag).id), 0.0)
        built = build_image(client, context, f"Dockerfile.{target}", tag, target, log)
        if target == "reference":
            remove_stale_images(client, target, keep=tag)
        return built


def remove_stale_images(client: docker.DockerClient, target: str, keep: str) -> list[str]:
    """Untag (and so delete) older ``refka-chaos/<target>:<digest>`` builds; each working-tree
    change makes a new one.  An image still used by a container is left alone.  Returns the tags removed."""
    repository = f"{IMAGE_REPOSITORY}/{target}"
    removed = []
    for image in client.images.list(name=repository):
        for tag in image.tags:
            if tag in (keep, f"{repository}:latest") or not tag.startswith(repository + ":"):
                continue
            try:
                client.images.remove(tag, noprune=False)
            except docker.errors.APIError:  # in use by a container (or already gone)
                continue
            removed.append(tag)
    return removed


def build_image(client: docker.DockerClient, context: Path, dockerfile: str, tag: str, target: str,
                log: Callable[[str], None] = print) -> BuiltImage:
    """Build ``context`` with no network; also tag the result ``<repository>:latest``."""
    log(f"building {tag} from {context}")
    started = time.monotonic()
    try:
        image, _ = client.images.build(path=str(context), dockerfile=dockerfile, tag=tag, rm=True,
                                       forcerm=True, network_mode="none", pull=False)
    except docker.errors.BuildError as error:
        lines = [str(step.get("stream", step.get("error", ""))).rstrip() for step in error.build_log]
        tail = "\n".join(line for line in lines if line)[-1500:]
        raise ImageBuildError(f"building {tag} failed: {error.msg}\n{tail}") from error
    image.tag(tag.rsplit(":", 1)[0], "latest")
    seconds = time.monotonic() - started
    log(f"built {tag} in {seconds:.0f} s")
    return BuiltImage(target, tag, str(image.id), seconds)
