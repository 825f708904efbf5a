"""What every refka model shares: named guards, bounds parsing and the model registry entry.

Theory of operation
-------------------
A *guard* is one protocol rule that prevents one known failure ("a follower fetches only in its
leader's epoch", KIP-320).  Models consult their guards by name (``model.guarded("...")``); a
model built with a guard in ``disabled`` behaves as if the rule had never been written.  The
mutant runner (``spec.mutants``) switches each guard off in turn: if no invariant breaks, either
the guard is unnecessary or the model is too weak to show why it is needed.  Both are defects.

Each guard carries the *witness bounds* at which its mutant is known to be caught, so the mutant
run stays small and its result repeatable.

Bounds are plain ``name=value`` pairs (``replicas=3``); each model declares their names, defaults
and meaning in a :class:`BoundSpec` table, and :func:`parse_bounds` turns command-line strings
into checked integers (or a few named choices, such as ``acks=all``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from spec.checker import Model

_Record = TypeVar("_Record", bound=type[NamedTuple])


def quick_replace(cls: _Record) -> _Record:
    """Give a NamedTuple state class a ``_replace`` about twice as fast as the standard one.

    A model's transitions build each next state by ``_replace``, several times per step: in the
    replication model that call was the largest single cost of a search.  The standard one pops
    each field from the keyword dictionary through ``_make``; this one builds the tuple in one
    pass, each field taking the given value or keeping its own (``changes.get(name, current)``).
    It gives the same value and, like the standard one, refuses a field the class does not have
    (mypy checks the names at every call as before: the signature is the standard one's).
    ``tests/spec/test_search_unchanged.py`` compares the two on every field.
    """
    fields = cls._fields
    known = frozenset(fields)

    def _replace(self: Any, **changes: Any) -> Any:
        if not known.issuperset(changes):
            raise ValueError(f"Got unexpected field names: {sorted(set(changes) - known)!r}")
        return tuple.__new__(cls, map(changes.get, fields, self))

    setattr(cls, "_replace", _replace)  # noqa: B010 -- typing.NamedTuple refuses a _replace in the class body
    return cls


class SpecError(ValueError):
    """Bad input to a model: an unknown variant, bound or guard, or a value out of range."""


@dataclass(frozen=True)
class Guard:
    """A named protocol rule that can be switched off to show it is necessary."""

    name: str
    rule: str
    prevents: str
    witness: Mapping[str, int | str] = field(default_factory=dict)
    witness_variant: str | None = None


@dataclass(frozen=True)
class BoundSpec:
    """One bound: its name, default, meaning, and the values it may take."""

    name: str
    default: int | str
    meaning: str
    minimum: int = 0
    choices: tuple[str, ...] = ()

    def parse(self, text: str) -> int | str:
        if self.choices:
            if text not in self.choices:
                raise SpecError(f"bound {self.name} must be one of {', '.join(self.choices)}, not {text!r}")
            return text
        try:
            value = int(text)
        except ValueError:
            raise SpecError(f"bound {self.name} must be an integer, not {text!r}") from None
        if value < self.minimum:
            raise SpecError(f"bound {self.name} must be at least {self.minimum}, not {value}")
        return value


def parse_bounds(specs: Sequence[BoundSpec], given: Mapping[str, int | str]) -> dict[str, int | str]:
    """Defaults overlaid with ``given`` (values may still be strings from the command line)."""
    table = {spec.name: spec for spec in specs}
    values: dict[str, int | str] = {spec.name: spec.default for spec in specs}
    for name, value in given.items():
        if name not in table:
            raise SpecError(f"unknown bound {name!r}; known: {', '.join(table)}")
        values[name] = table[name].parse(str(value))
    return values


@dataclass(frozen=True)
class ModelEntry:
    """How the command line and the tests find a model: its variants, bounds and guards."""

    name: str
    summary: str
    variants: Mapping[str, str]
    default_variant: str
    bounds: Sequence[BoundSpec]
    build: Callable[[str, Mapping[str, int | str], frozenset[str]], Model[object]]
    guards: Callable[[str], Sequence[Guard]]
    mutant_variant: str
    # When no single variant holds every guard (delivery: at-least-once and at-most-once each
    # need their own), the variants whose guards a plain ``refka spec mutants`` switches off.
    more_mutant_variants: tuple[str, ...] = ()

    @property
    def mutant_variants(self) -> tuple[str, ...]:
        return (self.mutant_variant, *self.more_mutant_variants)

    def check_variant(self, variant: str | None) -> str:
        chosen = self.default_variant if variant is None else variant
        if chosen not in self.variants:
            raise SpecError(f"unknown variant {chosen!r} of {self.name}; known: {', '.join(self.variants)}")
        return chosen


def check_variant_and_guards(
    variant: str, variants: Iterable[str], disabled: frozenset[str], guards: Iterable[str]
) -> None:
    """Refuse an unknown variant or an unknown guard name with a one-line :class:`SpecError`."""
    variants = list(variants)
    if variant not in variants:
        raise SpecError(f"unknown variant {variant!r}; known: {', '.join(variants)}")
    unknown = disabled - set(guards)
    if unknown:
        raise SpecError(f"unknown guard {', '.join(sorted(unknown))}")
