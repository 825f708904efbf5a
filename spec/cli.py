"""``refka spec``: model-check refka's executable specifications from the command line.

    refka spec check MODEL [--variant V] [--bound NAME=VALUE ...] [--invariant NAME ...] [--workers N]
    refka spec mutants MODEL [--variant V]
    refka spec list

``check`` exits 0 when every invariant holds within the bounds and every applicable non-vacuity
situation was reached, 1 otherwise (printing the shortest counterexample).  ``--workers N``
searches with N forked processes (same result, sooner); the default is the usable CPUs, at most 8,
or 1 where processes cannot be forked.  ``mutants`` exits 1 when a guard's mutant survives; it
checks small models one at a time, on one process.  Bad input raises
:class:`reference.cli.CommandError`.
"""

from __future__ import annotations

import argparse

from reference.cli import CommandError, parse_assignments
from spec.checker import check, default_workers, fork_available, format_result
from spec.model import SpecError
from spec.mutants import format_table, run_mutants
from spec.registry import MODELS, entry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="spec_command", metavar="ACTION", required=True)
    checking = actions.add_parser("check", help="model-check one model within bounds")
    checking.add_argument("model", help=f"one of: {', '.join(MODELS)}")
    checking.add_argument("--variant", help="protocol variant (default: the model's default)")
    checking.add_argument("--bound", action="append", default=[], metavar="NAME=VALUE",
                          help="override one bound; repeatable")
    checking.add_argument("--invariant", action="append", default=[], metavar="NAME",
                          help="check only these invariants; repeatable")
    checking.add_argument("--max-states", type=int, default=None, help="stop after this many states")
    checking.add_argument("--workers", default=None, metavar="N",
                          help="processes searching in parallel (default: usable CPUs, at most 8)")
    mutants = actions.add_parser("mutants", help="switch off each guard and report the invariant it protects")
    mutants.add_argument("model", help=f"one of: {', '.join(MODELS)}")
    mutants.add_argument("--variant", help="variant whose guards are mutated (default: the strongest)")
    actions.add_parser("list", help="list models, variants, bounds and guards")


def run(args: argparse.Namespace) -> int:
    try:
        if args.spec_command == "list":
            return _list()
        model = entry(args.model)
        variant = model.check_variant(args.variant) if args.variant or args.spec_command == "check" else None
        if args.spec_command == "mutants":
            results = run_mutants(model, variant)
            print(f"mutants of {model.name} (each guard switched off alone, at its witness bounds):")
            print(format_table(results))
            survivors = [r.guard.name for r in results if not r.killed]
            if survivors:
                print(f"SURVIVED: {', '.join(survivors)}: these guards are not shown necessary")
                return 1
            print(f"all {len(results)} mutants killed")
            return 0
        assert variant is not None
        built = model.build(variant, parse_assignments(args.bound, "--bound", "NAME"), frozenset())
        result = check(built, max_states=args.max_states, only=args.invariant or None,
                       workers=_workers(args.workers))
    except (SpecError, ValueError) as error:
        raise CommandError(str(error)) from error
    print(format_result(built, result))
    if result.violated or not result.complete:
        return 1
    if result.unreached:
        print(f"VACUOUS: never reached {', '.join(result.unreached)}")
        return 1
    return 0


def _workers(text: str | None) -> int:
    """``--workers``: a positive integer; more than 1 needs the fork start method."""
    if text is None:
        return default_workers()
    try:
        workers = int(text)
    except ValueError:
        raise SpecError(f"--workers must be a positive integer, not {text!r}") from None
    if workers < 1:
        raise SpecError(f"--workers must be a positive integer, not {text!r}")
    if workers > 1 and not fork_available():
        raise SpecError("--workers above 1 needs the fork start method, unavailable on this platform")
    return workers


def _list() -> int:
    for model in MODELS.values():
        print(f"{model.name}: {model.summary}")
        for name, text in model.variants.items():
            marker = " (default)" if name == model.default_variant else ""
            print(f"  variant {name}{marker}: {text}")
        for bound in model.bounds:
            print(f"  bound {bound.name}={bound.default}: {bound.meaning}")
        listed: set[str] = set()
        for variant in model.mutant_variants:
            for guard in model.guards(variant):
                if guard.name not in listed:
                    listed.add(guard.name)
                    print(f"  guard {guard.name}: {guard.rule}")
    return 0
