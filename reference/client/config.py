"""What the producer's and the consumer's configurations share: Kafka-named properties parsed the
way Java's ``ConfigDef`` does it.

Properties arrive as strings keyed by Kafka's dotted names (``bootstrap.servers``, ``linger.ms``).
Unknown names are logged, not refused (Java's "was supplied but isn't a known config"); every value
is checked once, when the client is created, and a bad one raises :class:`ConfigException` naming
the key and the value, before anything is sent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from .cluster import BrokerAddress, parse_bootstrap
from .exceptions import ConfigException

log = logging.getLogger("refka.client.config")


def with_defaults(properties: Mapping[str, object], defaults: Mapping[str, str]) -> dict[str, str]:
    """The given properties (stripped strings) over ``defaults``; unknown names are logged."""
    given = {key: str(value).strip() for key, value in properties.items()}
    for key in sorted(set(given) - set(defaults)):
        log.warning("the configuration '%s' was supplied but isn't a known config", key)
    return {**defaults, **given}


def bootstrap_servers(values: Mapping[str, str]) -> tuple[BrokerAddress, ...]:
    """``bootstrap.servers``: required, a comma-separated list of host:port."""
    if not values["bootstrap.servers"]:
        raise ConfigException("missing required configuration \"bootstrap.servers\"")
    try:
        return tuple(parse_bootstrap(values["bootstrap.servers"]))
    except ValueError as error:
        raise ConfigException(str(error)) from error


def integer(values: Mapping[str, str], key: str, minimum: int) -> int:
    """An integer config with Java's ``atLeast(minimum)`` validator."""
    try:
        value = int(values[key])
    except ValueError:
        raise ConfigException(f"invalid value {values[key]} for configuration {key}: not a number") from None
    if value < minimum:
        raise ConfigException(f"invalid value {value} for configuration {key}: value must be at least {minimum}")
    return value


def boolean(values: Mapping[str, str], key: str) -> bool:
    """A boolean config: ``true`` or ``false``, any case."""
    value = values[key].lower()
    if value not in ("true", "false"):
        raise ConfigException(f"invalid value {values[key]} for configuration {key}: expected true or false")
    return value == "true"
