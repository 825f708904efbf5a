"""The producer's configuration: Kafka's property names, defaults and validation rules.

Properties are given as Kafka spells them (``acks``, ``linger.ms``, ``enable.idempotence``, ...),
as strings or Python values, so a ``--producer-property`` from the command line and a dict in code
read the same.  Every bad value is a :class:`~reference.client.exceptions.ConfigException` raised
when the producer is created (Java's ``ProducerConfig`` does the same), never a failure later.

Defaults are Apache Kafka 4.x's: ``acks=all`` and ``enable.idempotence=true`` (KIP-679),
``linger.ms=5`` (KIP-1030), ``batch.size=16384``, ``delivery.timeout.ms=120000``,
``request.timeout.ms=30000``, ``retries=2147483647``, ``max.in.flight.requests.per.connection=5``.

The idempotence rules (``ProducerConfig.postProcessAndValidateIdempotenceConfigs``):

* idempotence needs ``acks=all``, ``retries > 0`` and ``max.in.flight... <= 5`` (the broker keeps
  the metadata of the last five batches per producer and partition);
* when ``enable.idempotence`` was *not* set and ``acks``/``retries``/``max.in.flight`` conflict
  with it, idempotence is switched off quietly; when it *was* set to true, the conflict is a
  ConfigException.

Transactions (KIP-98): ``transactional.id`` (default none) makes the producer transactional, and
``transaction.timeout.ms`` (60000) is how long the coordinator lets a transaction stay open before
it aborts it.  A transactional producer is idempotent: setting ``transactional.id`` with
``enable.idempotence=false`` is a ConfigException, and so are ``acks`` other than ``all`` and more
than five requests in flight, whether or not idempotence was set explicitly (Java: "Cannot set a
transactional.id without also enabling idempotence").

``delivery.timeout.ms`` must be at least ``linger.ms + request.timeout.ms``, as Java checks.

refka's one addition is ``partitioner``: ``default`` (Java's built-in partitioner) or one of
librdkafka's names (``consistent_random``, ``murmur2_random``, ...; see ``partitioners``).  Keys
this producer does not know are logged and ignored, as Java does ("supplied but isn't a known
config"), so Java configurations carry over.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from ..records.compression import CompressionType
from .cluster import BrokerAddress
from .config import bootstrap_servers, integer, with_defaults
from .exceptions import ConfigException
from .partitioners import JAVA_DEFAULT, LIBRDKAFKA_PARTITIONERS

log = logging.getLogger("refka.client.producer")

INT32_MAX = 2**31 - 1
MAX_IN_FLIGHT_FOR_IDEMPOTENCE = 5  # the broker's window of cached batches per producer and partition

ACKS = {"all": -1, "-1": -1, "0": 0, "1": 1}

DEFAULTS: dict[str, str] = {
    "bootstrap.servers": "",
    "client.id": "refka-producer",
    "acks": "all",
    "batch.size": "16384",
    "linger.ms": "5",
    "compression.type": "none",
    "retries": str(INT32_MAX),
    "retry.backoff.ms": "100",
    "delivery.timeout.ms": "120000",
    "request.timeout.ms": "30000",
    "max.in.flight.requests.per.connection": "5",
    "max.request.size": "1048576",
    "max.block.ms": "60000",
    "metadata.max.age.ms": "300000",
    "enable.idempotence": "true",
    "partitioner": JAVA_DEFAULT,
    "transactional.id": "",
    "transaction.timeout.ms": "60000",
}


@dataclass(frozen=True)
class ProducerConfig:
    bootstrap: tuple[BrokerAddress, ...]
    client_id: str
    acks: int  # -1 (all), 0 or 1
    batch_size: int
    linger_ms: int
    compression: CompressionType
    retries: int
    retry_backoff_ms: int
    delivery_timeout_ms: int
    request_timeout_ms: int
    max_in_flight: int
    max_request_size: int
    max_block_ms: int
    metadata_max_age_ms: int
    idempotence: bool
    partitioner: str
    transactional_id: str | None = None
    transaction_timeout_ms: int = 60_000

    @classmethod
    def from_properties(cls, properties: Mapping[str, object]) -> ProducerConfig:
        """Parse Kafka-named properties; raises ConfigException for any bad value."""
        values = with_defaults(properties, DEFAULTS)
        bootstrap = bootstrap_servers(values)
        acks = ACKS.get(values["acks"].lower())
        if acks is None:
            raise ConfigException(f"invalid value {values['acks']} for configuration acks: "
                                  "string must be one of: all, -1, 0, 1")
        codec_name = values["compression.type"].lower()
        if codec_name.upper() not in CompressionType.__members__:
            raise ConfigException(f"invalid value {values['compression.type']} for configuration "
                                  "compression.type: string must be one of: none, gzip, snappy, lz4, zstd")
        partitioner = values["partitioner"]
        if partitioner != JAVA_DEFAULT and partitioner not in LIBRDKAFKA_PARTITIONERS:
            raise ConfigException(f"invalid value {partitioner} for configuration partitioner: one of "
                                  f"{JAVA_DEFAULT}, {', '.join(LIBRDKAFKA_PARTITIONERS)}")
        idempotence_value = values["enable.idempotence"].lower()
        if idempotence_value not in ("true", "false"):
            raise ConfigException(f"invalid value {values['enable.idempotence']} for configuration "
                                  "enable.idempotence: expected true or false")
        config = cls(
            bootstrap=bootstrap,
            client_id=values["client.id"],
            acks=acks,
            batch_size=integer(values, "batch.size", 0),
            linger_ms=integer(values, "linger.ms", 0),
            compression=CompressionType[codec_name.upper()],
            retries=integer(values, "retries", 0),
            retry_backoff_ms=integer(values, "retry.backoff.ms", 0),
            delivery_timeout_ms=integer(values, "delivery.timeout.ms", 0),
            request_timeout_ms=integer(values, "request.timeout.ms", 0),
            max_in_flight=integer(values, "max.in.flight.requests.per.connection", 1),
            max_request_size=integer(values, "max.request.size", 0),
            max_block_ms=integer(values, "max.block.ms", 0),
            metadata_max_age_ms=integer(values, "metadata.max.age.ms", 0),
            idempotence=idempotence_value == "true",
            partitioner=partitioner,
            transactional_id=values["transactional.id"] or None,
            transaction_timeout_ms=integer(values, "transaction.timeout.ms", 1),
        )
        if config.delivery_timeout_ms < config.linger_ms + config.request_timeout_ms:
            raise ConfigException("delivery.timeout.ms should be equal to or larger than "
                                  "linger.ms + request.timeout.ms")
        if config.transactional_id is not None and not config.idempotence:
            raise ConfigException("cannot set a transactional.id without also enabling idempotence")
        # A transactional producer needs idempotence: its conflicts are errors, never a quiet switch-off.
        explicitly_set = "enable.idempotence" in properties or config.transactional_id is not None
        return config._with_idempotence_rules(explicitly_set)

    def _with_idempotence_rules(self, explicitly_set: bool) -> ProducerConfig:
        if not self.idempotence:
            return self
        conflicts = []
        if self.acks != -1:
            conflicts.append("acks must be set to 'all'")
        if self.retries == 0:
            conflicts.append("retries must be greater than 0")
        if self.max_in_flight > MAX_IN_FLIGHT_FOR_IDEMPOTENCE:
            conflicts.append(f"max.in.flight.requests.per.connection must be at most {MAX_IN_FLIGHT_FOR_IDEMPOTENCE}")
        if conflicts and explicitly_set:
            raise ConfigException("to use the idempotent producer, " + "; ".join(conflicts))
        if conflicts:
            log.info("idempotence disabled: %s", "; ".join(conflicts))
            return dataclasses.replace(self, idempotence=False)
        return self

