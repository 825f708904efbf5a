"""Round trips of every version of the APIs with keys 0 to 23 (batch A).

For each declared version of each request and response, a value with a non-default value in every
field present in that version (see ``conftest.sample_value``) is encoded, decoded and encoded again:
the two encodings are the same bytes, the decoded value equals the original, and decoding uses up
the whole body.  The same holds with every nullable field set to null.  kafka-python's codec, an
independent implementation of the same definitions, reads refka's bytes and writes back the very
same bytes.  Together with ``test_schema_parity`` (the declarations say what Kafka says) this shows
that the interpreter reads and writes every field of these messages as Kafka does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kafka.protocol.admin
import kafka.protocol.consumer
import kafka.protocol.metadata
import kafka.protocol.producer
import kafka.protocol.sasl
import pytest

from reference.protocol.apis import API_BY_KEY
from reference.protocol.schema import Data, Message

from .conftest import message_versions, null_every_nullable, round_trip

BATCH_A_KEYS = [0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 19, 20, 21, 22, 23]




def test_every_batch_a_api_is_registered() -> None:
    """Every API of batch A is in the registry under its key."""
    assert set(BATCH_A_KEYS) <= set(API_BY_KEY), f"missing: {sorted(set(BATCH_A_KEYS) - set(API_BY_KEY))}"


@pytest.mark.parametrize(("message", "version"), message_versions(BATCH_A_KEYS))
def test_every_field_survives_around_trip(
    message: Message, version: int, sample_value: Callable[[Message, int], Data],
) -> None:
    """A value with every field of the version set survives encode -> decode -> encode unchanged."""
    round_trip(message, sample_value(message, version), version)


@pytest.mark.parametrize(("message", "version"), message_versions(BATCH_A_KEYS))
def test_nulls_survive_around_trip(
    message: Message, version: int, sample_value: Callable[[Message, int], Data],
) -> None:
    """Every nullable field set to null survives the round trip (and the rest is still set)."""
    value = sample_value(message, version)
    if null_every_nullable(message.body, value, version, message.is_flexible(version)) == 0:
        return  # nothing nullable in this version; the plain round trip covers it
    round_trip(message, value, version)


_KAFKA_PYTHON_PACKAGES = (kafka.protocol.producer, kafka.protocol.consumer, kafka.protocol.metadata,
                          kafka.protocol.admin, kafka.protocol.sasl)


def _kafka_python_class(name: str) -> Any:
    for package in _KAFKA_PYTHON_PACKAGES:
        if hasattr(package, name):
            return getattr(package, name)
    raise AssertionError(f"kafka-python has no class {name}")


@pytest.mark.parametrize(("message", "version"), message_versions(BATCH_A_KEYS))
def test_kafka_python_reads_and_rewrites_the_same_bytes(
    message: Message, version: int, sample_value: Callable[[Message, int], Data],
) -> None:
    """kafka-python's codec decodes refka's encoding and re-encodes it to identical bytes."""
    encoded = message.encode(sample_value(message, version), version)
    theirs = _kafka_python_class(message.name).decode(encoded, version=version)
    theirs._header = None  # decode() skips __init__, leaving unset a slot that encode() reads
    assert theirs.encode(version=version) == encoded
