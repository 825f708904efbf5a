"""``refka chaos``: run the fault-injection harness, build its images, re-check a saved history.

Sub-commands::

    refka chaos run --target reference|kafka|local --nodes N --workload at-least-once|idempotent|transactional \\
                    --nemesis kill,pause,partition,restart --duration SECONDS --seed S --out DIR
                    [--unsafe acks1|unclean|read-committed-at-hw]
    refka chaos check DIR          # judge DIR/history.jsonl again, rewrite verdict/summary/plot
    refka chaos base-image         # build debian:bookworm-slim locally (no registry needed)
    refka chaos images [TARGET...] # build (or reuse) the reference and/or kafka broker images
    refka chaos engine             # make sure a docker engine answers (install/start dockerd)

``--target local`` runs one reference broker in this process with the ``restart`` nemesis only:
the whole pipeline without docker.  Exit status of ``run`` and ``check``: 0 valid, 1 invalid,
3 unknown (2 is a usage or setup error, as everywhere in ``refka``).

The docker side lives in ``chaos.engine`` (``ensure_engine() -> docker.DockerClient``,
``build_base_image(client)``), ``chaos.images`` (``ensure_image(client, target)``),
``chaos.cluster`` (``DockerCluster``, a :class:`chaos.runner.Cluster`) and ``chaos.nemesis``
(``build_nemeses(names, cluster, topic)``, :class:`chaos.runner.Nemesis` objects); each is
imported only when needed, so ``check`` and ``--target local`` work without the docker SDK.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any

from reference.cli import CommandError

from .checker import AT_LEAST_ONCE, INVALID, VALID, WORKLOADS
from .history import FAULTS_FILE, HISTORY_FILE, read_faults, read_history
from .workload import UNSAFE_MODES

TARGETS = ("reference", "kafka", "local")
NEMESES = ("kill", "pause", "partition", "restart")
DEFAULT_NEMESES = "kill,pause,restart"
# --unsafe acks1: hit the leader, and cut it off from its followers while the clients still reach it
# (an acks=1 leader keeps acknowledging what no follower will ever have)
UNSAFE_NEMESES = "kill-leader,partition-leader"
UNSAFE_QUIET = (1.0, 3.0)  # seconds between faults
UNSAFE_FAULT_LENGTH = (6.0, 10.0)  # longer than broker.session.timeout.ms: a new leader is elected
# --unsafe unclean: a leader left alone in the ISR acknowledges acks=all writes, dies, and a stale
# follower is elected uncleanly (chaos.nemesis.UncleanLeader; the fault itself takes 10-20 s)
UNCLEAN_NEMESES = "unclean-leader"
UNCLEAN_QUIET = (3.0, 5.0)
UNCLEAN_FAULT_LENGTH = (4.0, 6.0)  # the old leader stays dead this long: longer than broker.session.timeout.ms
# per --unsafe mode: default nemeses, then the schedule's quiet and fault_length (RunConfig's fields)
UNSAFE_RUNS: dict[str, tuple[str, tuple[float, float], tuple[float, float]]] = {
    "acks1": (UNSAFE_NEMESES, UNSAFE_QUIET, UNSAFE_FAULT_LENGTH),
    "unclean": (UNCLEAN_NEMESES, UNCLEAN_QUIET, UNCLEAN_FAULT_LENGTH),
    # --unsafe read-committed-at-hw: the fault is in the broker (REFKA_UNSAFE_TXN); faults as usual
    "read-committed-at-hw": ("kill,pause,partition", (5.0, 10.0), (4.0, 6.0)),
}
EXIT_VALID, EXIT_INVALID, EXIT_UNKNOWN = 0, 1, 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="chaos_command", metavar="SUBCOMMAND", required=True)
    run = commands.add_parser("run", help="run a workload against a cluster under faults and judge it")
    run.add_argument("--target", choices=TARGETS, default="reference")
    run.add_argument("--nodes", type=int, default=3)
    run.add_argument("--workload", choices=WORKLOADS, default=AT_LEAST_ONCE)
    run.add_argument("--nemesis", default=None,
                     help="comma-separated nemeses (kill, pause, partition, restart, ... as chaos.nemesis names them; "
                          f"'none' for no faults); default {DEFAULT_NEMESES}, or {UNSAFE_NEMESES} with "
                          f"--unsafe acks1, {UNCLEAN_NEMESES} with --unsafe unclean")
    run.add_argument("--unsafe", choices=tuple(UNSAFE_MODES), default=None,
                     help="a deliberately unsafe configuration that must lose acknowledged writes, to prove the "
                          "checker sees loss. acks1: acks=1 producers, faults aimed at leaders, back to back. "
                          "unclean: acks=all producers, topic with min.insync.replicas=1 and "
                          "unclean.leader.election.enable=true; the leader's replication is cut until it is "
                          "alone in the ISR, it is killed, and a stale follower is elected uncleanly. "
                          "read-committed-at-hw (reference, --workload transactional): the brokers serve "
                          "read_committed fetches up to the high watermark without the aborted transactions")
    run.add_argument("--duration", type=float, default=60.0, help="seconds of load under faults")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--out", type=Path, default=Path("chaos-out"))
    run.add_argument("--partitions", type=int, default=3)
    run.add_argument("--rate", type=float, default=100.0, help="sends per second per producer")
    run.add_argument("--no-progress", action="store_true", help="no live progress bar")
    check = commands.add_parser("check", help="judge a saved history again")
    check.add_argument("history_dir", type=Path, metavar="HISTORY_DIR")
    check.add_argument("--workload", choices=WORKLOADS, default=None, help="default: the one recorded in run.json")
    commands.add_parser("base-image", help="build the debian:bookworm-slim base image locally")
    build = commands.add_parser("images", help="build (or reuse) the broker images")
    build.add_argument("targets", nargs="*", choices=("reference", "kafka"), default=["reference", "kafka"],
                       metavar="TARGET", help="reference and/or kafka (default both)")
    commands.add_parser("engine", help="make sure a docker engine is running")


def run(args: argparse.Namespace) -> int:
    command = args.chaos_command
    if command == "run":
        return _run(args)
    if command == "check":
        return _check(args.history_dir, args.workload)
    if command == "base-image":
        engine = _import("chaos.engine", "the docker engine support")
        engine.build_base_image(_ensure_engine(engine))
        return 0
    if command == "images":
        client = _ensure_engine(_import("chaos.engine", "the docker engine support"))
        images = _import("chaos.images", "the broker images")
        for target in args.targets:
            try:
                built = images.ensure_image(client, target)
            except (ValueError, RuntimeError) as error:
                raise CommandError(str(error)) from error
            print(f"{target}: {built.tag} ({built.image_id[:19]})")
        return 0
    if command == "engine":
        client = _ensure_engine(_import("chaos.engine", "the docker engine support"))
        version = client.version() if hasattr(client, "version") else {}
        print(f"docker engine ready: {version.get('Version', '?')} ({version.get('Os', '?')}/{version.get('Arch', '?')})")
        return 0
    raise CommandError(f"unknown sub-command {command!r}")


def _import(module: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as missing:
        if missing.name in (module, "docker"):
            raise CommandError(f"{what} ({module}) is not available: {missing}") from missing
        raise


def _ensure_engine(engine: Any) -> Any:
    try:
        return engine.ensure_engine()
    except CommandError:
        raise
    except Exception as error:
        raise CommandError(f"no docker engine: {error}") from error


def exit_code(verdict: str) -> int:
    return {VALID: EXIT_VALID, INVALID: EXIT_INVALID}.get(verdict, EXIT_UNKNOWN)


def _nemesis_names(text: str, known: tuple[str, ...] = NEMESES) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip() and name.strip() != "none"]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise CommandError(f"unknown nemesis {', '.join(unknown)}; expected some of {', '.join(known)}")
    return names


def _open_cluster(args: argparse.Namespace, topic: str) -> tuple[Any, list[Any]]:
    """The cluster and its nemeses: in-process for ``local``, else containers through chaos.cluster."""
    from .runner import LocalCluster, LocalRestart

    if args.target == "local":
        names = _nemesis_names(args.nemesis_list, ("restart",))
        if args.nodes != 1:
            raise CommandError("--target local is one in-process broker: use --nodes 1 (and --nemesis restart or none)")
        local = LocalCluster()
        return local, [LocalRestart(local) for _ in names]
    engine = _import("chaos.engine", "the docker engine support")
    images = _import("chaos.images", "the broker images")
    cluster_module = _import("chaos.cluster", "the docker cluster support")
    nemesis_module = _import("chaos.nemesis", "the fault injection support")
    names = _nemesis_names(args.nemesis_list, tuple(getattr(nemesis_module, "NEMESIS_NAMES", NEMESES)))
    client = _ensure_engine(engine)
    try:
        image = images.ensure_image(client, args.target)
        from .workload import UNSAFE_BROKER_ENVIRONMENT

        environment = UNSAFE_BROKER_ENVIRONMENT.get(args.unsafe or "", {})
        cluster = cluster_module.DockerCluster(client, args.target, args.nodes, seed=args.seed, image=image.tag,
                                               environment=environment)
    except (ValueError, RuntimeError) as error:  # ClusterError, ImageBuildError: bad input or setup
        raise CommandError(str(error)) from error
    try:
        cluster.start()
        return cluster, list(nemesis_module.build_nemeses(names, cluster, topic))
    except BaseException:
        cluster.stop()
        raise


def _run(args: argparse.Namespace) -> int:
    from .runner import RunConfig
    from .runner import run as run_chaos
    from .workload import WorkloadConfig

    if args.nodes < 1 or args.duration <= 0:
        raise CommandError("--nodes must be at least 1 and --duration positive")
    if args.unsafe and (args.target == "local" or args.nodes < 3):
        raise CommandError("--unsafe needs replication to lose: use --nodes 3 (--target kafka or reference)")
    if (args.unsafe == "read-committed-at-hw" and args.workload != "transactional") or \
            (args.workload == "transactional" and args.unsafe not in (None, "read-committed-at-hw")):
        raise CommandError("--unsafe read-committed-at-hw goes with --workload transactional (and the transactional "
                           "workload with no other unsafe mode)")
    if args.unsafe == "read-committed-at-hw" and args.target != "reference":
        raise CommandError("--unsafe read-committed-at-hw is a reference-broker fault: use --target reference")
    if args.unsafe == "acks1" and args.workload != AT_LEAST_ONCE:
        raise CommandError("--unsafe acks1 cannot be idempotent (idempotence needs acks=all): use --workload at-least-once")
    args.nemesis_list = args.nemesis or (UNSAFE_RUNS[args.unsafe][0] if args.unsafe else DEFAULT_NEMESES)
    config = RunConfig(workload=WorkloadConfig(name=args.workload, partitions=args.partitions,
                                               sends_per_second=args.rate, unsafe=args.unsafe),
                       duration=args.duration, seed=args.seed, nodes=args.nodes, target=args.target)
    if args.unsafe:
        _, quiet, fault_length = UNSAFE_RUNS[args.unsafe]
        config = dataclasses.replace(config, quiet=quiet, fault_length=fault_length)
    cluster, nemeses = _open_cluster(args, config.workload.topic)
    progress = None if args.no_progress else _ProgressBar(args.duration)
    try:
        result = run_chaos(cluster, nemeses, config, args.out, on_progress=progress)
    finally:
        if progress is not None:
            progress.close()
        cluster.stop()
    print((args.out / "summary.txt").read_text(), end="")
    for error in result.workload_errors:
        print(f"workload error: {error}")
    print(f"history, faults, verdict, summary and timeline in {args.out}")
    return exit_code(result.verdict.verdict)


class _ProgressBar:
    """A tqdm bar over the run's seconds, with live totals."""

    def __init__(self, duration: float) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=round(duration, 1), unit="s", desc="chaos", bar_format=(
            "{desc} {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f}s {postfix}"))

    def __call__(self, progress: Any) -> None:
        counters = progress.counters
        self.bar.n = round(min(progress.elapsed, progress.duration), 1)
        self.bar.set_postfix_str(f"acked {counters.acknowledged} maybe {counters.maybe} read {counters.read} "
                                 f"faults {progress.faults}{' [' + progress.active + ']' if progress.active else ''}")

    def close(self) -> None:
        self.bar.close()


def _check(directory: Path, workload: str | None) -> int:
    from .checker import check
    from .runner import RUN_FILE, write_outputs

    history_path = directory / HISTORY_FILE
    if not history_path.exists():
        raise CommandError(f"no {HISTORY_FILE} in {directory}")
    metadata: dict[str, Any] = {}
    if (directory / RUN_FILE).exists():
        metadata = json.loads((directory / RUN_FILE).read_text())
    workload = workload or metadata.get("workload", {}).get("name") or AT_LEAST_ONCE
    events = read_history(history_path)
    verdict = check(events, workload)
    write_outputs(directory, verdict, events, read_faults(directory / FAULTS_FILE), metadata)
    print((directory / "summary.txt").read_text(), end="")
    return exit_code(verdict.verdict)
