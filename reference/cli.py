"""The ``refka`` command line: one entry point, one sub-command per part of the project.

Each sub-command lives beside the code it drives and exposes two functions:

* ``add_arguments(parser)`` declares its options on an ``argparse`` sub-parser;
* ``run(args) -> int`` does the work and returns the process exit code.

The table below maps a sub-command to its module.  Modules are imported only when their
sub-command runs, so ``refka spec ...`` never pays for importing the broker or the docker SDK.

Errors meant for the person at the terminal are raised as :class:`CommandError`; ``main`` prints
them as one line on stderr and exits 2.  Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# sub-command -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "broker": ("reference.broker.main", "run the reference broker in the foreground"),
    "storage": ("reference.node.storage", "format a KRaft node's log directories (kafka-storage format)"),
    "cluster": ("reference.node.cluster", "start, stop, kill or restart a local replicated reference cluster"),
    "conform": ("conformance.cli", "run the conformance suite against a broker"),
    "kafka": ("conformance.apache_kafka", "start or stop a local Apache Kafka cluster (KRaft)"),
    "bench": ("reference.bench", "produce/consume throughput, latency and memory against Apache Kafka"),
    "fuzz": ("conformance.fuzz", "send structure-aware mutated requests to a broker and check it survives"),
    "chaos": ("chaos.cli", "run the fault-injection harness on docker"),
    "spec": ("spec.cli", "model-check the executable specifications"),
    "sim": ("chaos.sim.cli", "run the deterministic cluster simulator (one seed, a swarm, or shrink a failure)"),
    "produce": ("reference.client.console_producer", "send lines from stdin to a topic (kafka-console-producer)"),
    "consume": ("reference.client.console_consumer", "print a topic's records on stdout (kafka-console-consumer)"),
    "topics": ("reference.client.console_topics", "create, list, describe, alter and delete topics (kafka-topics)"),
    "groups": ("reference.client.console_groups", "list, describe, reset and delete consumer groups (kafka-consumer-groups)"),
    "configs": ("reference.client.console_configs", "describe and alter topic and broker configs (kafka-configs)"),
}


class CommandError(Exception):
    """A failure to report as one line on the command line (bad input, missing tool, ...)."""


def parse_assignments(pairs: Sequence[str], option: str, name: str = "KEY") -> dict[str, str]:
    """Repeated ``option NAME=VALUE`` arguments as a dict; a malformed one is a CommandError."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise CommandError(f"{option} expects {name}=VALUE, got {pair!r}")
        parsed[key.strip()] = value.strip()
    return parsed


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="refka", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = argv[0] if argv else None
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(_module=module_name)
        if name == wanted:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as missing:
                if missing.name != module_name:
                    raise
                print(f"refka {name}: not available in this build", file=sys.stderr)
                return 2
            module.add_arguments(sub)
    args = parser.parse_args(argv)
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args) or 0)
    except CommandError as error:
        print(f"refka {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
