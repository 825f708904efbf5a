"""Build, start and stop the third-party peers (kfake, tansu) on free loopback ports.

Each peer is a context manager yielding a :class:`RunningPeer` (its address is ``127.0.0.1:PORT``)
once the broker answers ApiVersions v0; leaving the context stops the process (SIGTERM, then SIGKILL after 10 s)
and keeps its output in ``<log_dir>/<name>.log``.  Builds are cached under ``$REFKA_CACHE/peers``
and guarded by a lock file, so two runs never build the same peer at once:

* kfake: ``go build`` of ``conformance/peers/kfake`` into ``kfake-<sha256 of main.go, go.mod,
  go.sum>/refka-kfake``: changing the pinned version gives a new directory, never a stale binary.
* tansu: ``cargo install tansu --version TANSU_VERSION --features dynostore --locked --root
  tansu/``; cargo records the installed version and features in ``tansu/.crates2.json``, which is
  what decides whether the cached build fits.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from conformance import raw
from conformance.apache_kafka import cache_root
from reference.cli import CommandError

KFAKE_SOURCES = ("main.go", "go.mod", "go.sum")
KFAKE_BINARY = "refka-kfake"
TANSU_VERSION = "0.6.0"
TANSU_FEATURES = ("dynostore",)  # the memory:// storage engine lives behind this feature
TANSU_STORAGE = "memory://tansu/"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class PeerUnavailable(CommandError):
    """A peer could not be built or did not start; the message says which step failed and why."""


def peers_cache() -> Path:
    return cache_root() / "peers"


@contextlib.contextmanager
def _build_lock(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a racing run waits here, then finds the finished build
        yield


def _last_lines(text: str, count: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-count:]) or "(no output)"


# ---------------------------------------------------------------- kfake
def kfake_sources() -> dict[str, bytes]:
    """The Go program's files, read from the package (works from a wheel as from the tree)."""
    folder = resources.files("conformance.peers").joinpath("kfake")
    return {name: folder.joinpath(name).read_bytes() for name in KFAKE_SOURCES}


def kfake_build_dir(sources: dict[str, bytes] | None = None) -> Path:
    digest = hashlib.sha256()
    for name, content in sorted((sources or kfake_sources()).items()):
        digest.update(name.encode() + b"\0" + content + b"\0")
    return peers_cache() / f"kfake-{digest.hexdigest()[:12]}"


def build_kfake() -> Path:
    """The kfake binary, built with ``go build`` on first use (modules come from the Go module proxy)."""
    sources = kfake_sources()
    home = kfake_build_dir(sources)
    binary = home / KFAKE_BINARY
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        raise PeerUnavailable("kfake: `go` not found: install Go 1.26+ (see kfake/go.mod)")
    with _build_lock(home):
        if binary.exists():
            return binary
        with tempfile.TemporaryDirectory(prefix="src-", dir=home) as work:
            for name, content in sources.items():
                (Path(work) / name).write_bytes(content)
            # -mod=readonly: build exactly what go.mod and go.sum pin, never edit them.
            done = subprocess.run([go, "build", "-mod=readonly", "-o", str(Path(work) / KFAKE_BINARY), "."],
                                  cwd=work, capture_output=True, text=True)
            if done.returncode != 0:
                raise PeerUnavailable(f"kfake: go build failed: {_last_lines(done.stdout + done.stderr)}")
            (Path(work) / KFAKE_BINARY).rename(binary)
    return binary


# ---------------------------------------------------------------- tansu
def tansu_root() -> Path:
    return peers_cache() / "tansu"


def tansu_installed(root: Path) -> bool:
    """True when cargo's own record says ``root`` holds tansu TANSU_VERSION with TANSU_FEATURES."""
    record = root / ".crates2.json"
    if not (root / "bin" / "tansu").exists() or not record.exists():
        return False
    installs = json.loads(record.read_text()).get("installs", {})
    return any(key.startswith(f"tansu {TANSU_VERSION} ") and set(TANSU_FEATURES) <= set(value.get("features", []))
               for key, value in installs.items())


def build_tansu() -> Path:
    """The tansu binary, compiled from crates.io on first use (a long compile: niced, one job)."""
    root = tansu_root()
    binary = root / "bin" / "tansu"
    if tansu_installed(root):
        return binary
    cargo = shutil.which("cargo")
    if cargo is None:
        raise PeerUnavailable("tansu: `cargo` not found: install a Rust toolchain (rustup)")
    with _build_lock(root):
        if tansu_installed(root):
            return binary
        command = ["nice", "-n", "19", cargo, "install", "tansu", "--version", TANSU_VERSION,
                   "--features", ",".join(TANSU_FEATURES), "--locked", "--root", str(root), "-j", "1"]
        with open(root / "build.log", "w") as log:
            done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
        if done.returncode != 0 or not tansu_installed(root):
            raise PeerUnavailable(f"tansu: cargo install failed (exit {done.returncode}): "
                                  f"{_last_lines((root / 'build.log').read_text())}; see {root / 'build.log'}")
    return binary


# ---------------------------------------------------------------- running a peer
def wait_until_answers(address: str, process: subprocess.Popen[bytes], name: str,
                       timeout: float = READY_TIMEOUT_S) -> raw.ApiVersionsResult:
    """Poll ``address`` with ApiVersions v0 until the broker answers with error NONE."""
    deadline = time.monotonic() + timeout
    last_problem = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PeerUnavailable(f"{name}: exited with status {process.returncode} before answering ApiVersions")
        try:
            with raw.Connection.to(address, timeout=2) as conn:
                answer = raw.api_versions(conn, 0)
            if answer.error_code == 0:
                return answer
            last_problem = f"ApiVersions v0 answered error {answer.error_code}"
        except (OSError, raw.ConnectionClosed) as problem:
            last_problem = repr(problem)
        time.sleep(0.1)
    raise PeerUnavailable(f"{name}: no ApiVersions answer on {address} within {timeout:.0f} s ({last_problem})")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the peer's process group; SIGKILL it if it has not exited after STOP_TIMEOUT_S."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@dataclass
class RunningPeer:
    name: str
    address: str
    process: subprocess.Popen[bytes]
    log_file: Path

    def exit_note(self) -> str:
        """Empty while the process runs; once it has exited, its status and the first line of a Go
        panic or Rust panic in its output (else its last line)."""
        if self.process.poll() is None:
            return ""
        lines = [line.strip() for line in self.log_file.read_text(errors="replace").splitlines() if line.strip()]
        panic = next((line for line in lines if line.startswith("panic:") or "panicked at" in line), None)
        detail = panic or (lines[-1] if lines else "no output")
        return f"the {self.name} process exited with status {self.process.returncode} during the run: {detail}"


@contextlib.contextmanager
def running(name: str, command: list[str], address: str, log_dir: Path,
            cwd: Path | None = None) -> Iterator[RunningPeer]:
    """Run ``command`` in its own process group until the context ends; yields the peer once it
    answers ApiVersions on ``address``.  Output goes to ``<log_dir>/<name>.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"{name}.log"
    with open(log_file, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   cwd=cwd, start_new_session=True)
        try:
            wait_until_answers(address, process, name)
            yield RunningPeer(name, address, process, log_file)
        finally:
            stop(process)


def _free_address() -> tuple[int, str]:
    from conformance.fixtures import free_port_block

    port = free_port_block(1)
    return port, f"127.0.0.1:{port}"


@contextlib.contextmanager
def kfake(log_dir: Path) -> Iterator[RunningPeer]:
    """One kfake broker (in memory, empty) on a free port."""
    binary = build_kfake()
    port, address = _free_address()
    with running("kfake", [str(binary), "-ports", str(port)], address, log_dir) as peer:
        yield peer


@contextlib.contextmanager
def tansu(log_dir: Path) -> Iterator[RunningPeer]:
    """One tansu broker with the memory storage engine on a free port, advertising 127.0.0.1.

    tansu reads a ``.env`` file from its working directory, so it runs in an empty temporary one.
    """
    binary = build_tansu()
    port, address = _free_address()
    url = f"tcp://{address}"
    command = [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
               "--storage-engine", TANSU_STORAGE, "--cluster-id", "refka-peers"]
    with tempfile.TemporaryDirectory(prefix="refka-tansu-") as work:
        with running("tansu", command, address, log_dir, cwd=Path(work)) as peer:
            yield peer
