"""The Docker engine the chaos harness drives, and the base image every broker image starts from.

Theory of operation
-------------------
The harness never shells out to the ``docker`` command line: every container, network, image and
``exec`` goes through the Docker SDK for Python, so the same code drives a local engine or a remote
one.

1. **Which engine.**  :func:`ensure_engine` asks ``docker.from_env()``, which honours
   ``DOCKER_HOST`` (``unix://``, ``tcp://`` and ``ssh://user@host`` for an engine on another
   machine, so a cluster can outgrow this one), ``DOCKER_TLS_VERIFY`` and ``DOCKER_CERT_PATH``.
   Without ``DOCKER_HOST`` it is the local socket ``/var/run/docker.sock``.
2. **No engine yet.**  When the local socket does not answer, we are root and the host is Debian,
   the project's ``scripts/install-docker.sh`` installs Debian's ``docker.io`` and starts
   ``dockerd``; we then wait for ``/_ping``.  With ``DOCKER_HOST`` set, or as a non-root user, we
   never install anything: we raise :class:`EngineUnavailable` saying what was tried.
3. **The base image.**  Both broker Dockerfiles say ``FROM debian:bookworm-slim``.  A user whose
   engine reaches a registry pulls that image as usual.  Where no registry is reachable,
   :func:`build_base_image` (``refka chaos base-image``) makes an image of the same name locally:
   ``debootstrap --variant=minbase bookworm`` from Debian's package mirror into a temporary
   directory, then the SDK's image import of that root filesystem as a tarball.  Everything the
   Dockerfiles need at build time (Python 3 with venv and pip, Java 17, iptables, iproute2, procps)
   is included at debootstrap time, so image builds themselves need no network at all and run with
   ``network_mode="none"``.
4. **Idempotent.**  An existing ``debian:bookworm-slim`` is kept unless ``force=True``.

Debootstrap is a host command by necessity (it runs ``chroot`` and ``dpkg``), so it is the one
subprocess here; it needs root.  It runs on the machine that runs this code; with a remote
``DOCKER_HOST`` the resulting tarball is streamed to that engine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import docker
import docker.errors

BASE_IMAGE_REPOSITORY = "debian"
BASE_IMAGE_TAG = "bookworm-slim"
BASE_IMAGE = f"{BASE_IMAGE_REPOSITORY}:{BASE_IMAGE_TAG}"
DEBIAN_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"

# Packages the broker images need, installed into the base image at debootstrap time so that
# Dockerfile builds need no package mirror (see point 3 above).
BASE_PACKAGES: tuple[str, ...] = (
    "python3",
    "python3-venv",
    "python3-pip",
    "openjdk-17-jre-headless",
    "iptables",      # the partition nemesis: DROP rules inside each container
    "iproute2",      # `ip` for diagnosing a container's addresses
    "procps",        # `ps`, `pkill` inside containers
)

INSTALL_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "install-docker.sh"
ENGINE_WAIT_S = 90.0


class EngineUnavailable(RuntimeError):
    """No Docker engine answered, and none could be started here."""


# ---------------------------------------------------------------- the engine
def ensure_engine(install: bool = True, timeout: float = ENGINE_WAIT_S) -> docker.DockerClient:
    """Return a client for an engine that answers ``/_ping``.

    Uses ``DOCKER_HOST`` when set (never installs anything then); otherwise the local socket, and
    when that does not answer, runs ``scripts/install-docker.sh`` if ``install`` is true, we are
    root and the host is Debian.  Raises :class:`EngineUnavailable` with the reason otherwise.
    """
    first_error = _ping_error()
    if first_error is None:
        return docker.from_env()
    remote = os.environ.get("DOCKER_HOST")
    if remote:
        raise EngineUnavailable(f"the engine at DOCKER_HOST={remote} does not answer: {first_error}")
    reason = _why_not_install(install)
    if reason:
        raise EngineUnavailable(f"no Docker engine answers on the local socket ({first_error}); {reason}")
    subprocess.run(["bash", str(INSTALL_SCRIPT)], check=True)
    return wait_for_engine(timeout)


def wait_for_engine(timeout: float = ENGINE_WAIT_S) -> docker.DockerClient:
    """Poll ``/_ping`` until the engine answers or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    error = _ping_error()
    while error is not None:
        if time.monotonic() > deadline:
            raise EngineUnavailable(f"the Docker engine did not answer within {timeout:.0f} s: {error}")
        time.sleep(1.0)
        error = _ping_error()
    return docker.from_env()


def engine_available() -> bool:
    """True when an engine answers now (used by tests to decide whether to skip)."""
    return _ping_error() is None


def _ping_error() -> str | None:
    try:
        client = docker.from_env(timeout=10)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as error:  # the SDK raises DockerException, requests' and paramiko's errors
        return f"{type(error).__name__}: {error}"
    return None


def _why_not_install(install: bool) -> str | None:
    if not install:
        return "installing an engine was not asked for"
    if os.geteuid() != 0:
        return "not root, so scripts/install-docker.sh cannot run: start dockerd or set DOCKER_HOST"
    if not Path("/etc/debian_version").exists():
        return "not a Debian host: install Docker and start it, or set DOCKER_HOST"
    if not INSTALL_SCRIPT.exists():
        return f"{INSTALL_SCRIPT} is missing (an installed copy of refka has no scripts/): start dockerd"
    return None


# ---------------------------------------------------------------- the base image
def image_exists(client: docker.DockerClient, name: str) -> bool:
    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    return True


def debootstrap_command(target: Path, mirror: str = DEFAULT_MIRROR,
                        packages: Sequence[str] = BASE_PACKAGES) -> list[str]:
    """The debootstrap invocation that makes the base root filesystem in ``target``."""
    return [
        "debootstrap", "--variant=minbase", f"--include={','.join(packages)}",
        DEBIAN_SUITE, str(target), mirror,
    ]


def build_base_image(client: docker.DockerClient, force: bool = False, mirror: str | None = None,
                     log: Callable[[str], None] = print) -> str:
    """Make ``debian:bookworm-slim`` locally (debootstrap + import) unless it already exists.

    Returns the image id.  Needs root and ``debootstrap`` (installed by the engine script).
    """
    if image_exists(client, BASE_IMAGE) and not force:
        log(f"{BASE_IMAGE} already present: nothing to do")
        return str(client.images.get(BASE_IMAGE).id)
    if shutil.which("debootstrap") is None:
        raise EngineUnavailable("debootstrap not found: apt-get install debootstrap (scripts/install-docker.sh does)")
    mirror = mirror or os.environ.get("REFKA_DEBIAN_MIRROR") or DEFAULT_MIRROR
    with tempfile.TemporaryDirectory(prefix="refka-base-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        started = time.monotonic()
        log(f"debootstrap {DEBIAN_SUITE} from {mirror} into {rootfs} (a few minutes)")
        subprocess.run(debootstrap_command(rootfs, mirror), check=True)
        _slim_rootfs(rootfs)
        tarball = Path(scratch) / "rootfs.tar"
        _write_tarball(rootfs, tarball)
        log(f"root filesystem ready in {time.monotonic() - started:.0f} s; importing as {BASE_IMAGE}")
        client.api.import_image_from_file(str(tarball), repository=BASE_IMAGE_REPOSITORY, tag=BASE_IMAGE_TAG,
                                          changes=['CMD ["/bin/bash"]'])
    image = client.images.get(BASE_IMAGE)
    log(f"{BASE_IMAGE} imported: {image.short_id}")
    return str(image.id)


def _slim_rootfs(rootfs: Path) -> None:
    """Drop the package cache and lists: they are not needed at run time."""
    for leftovers in (rootfs / "var/cache/apt/archives", rootfs / "var/lib/apt/lists"):
        for entry in leftovers.glob("*"):
            if entry.is_file():
                entry.unlink()


def _write_tarball(rootfs: Path, tarball: Path) -> None:
    """Tar the root filesystem with numeric owners, paths relative to its top."""
    with tarfile.open(tarball, "w") as archive:
        for entry in sorted(rootfs.iterdir()):
            archive.add(entry, arcname=entry.name, recursive=True)
