"""What a client connection raises, and the one place where an ``error_code`` becomes an exception.

Theory of operation
-------------------
Kafka's error codes, their names and whether they are retriable live in one registry,
:mod:`reference.errors`.  This module does not repeat it; it adds the exceptions a *client* needs
and says who is at fault (h11's split):

* :class:`LocalProtocolError` -- refka's own caller broke a rule: sent on a closed connection
  (:class:`ConnectionStateError` names the state and the event), asked for an API refka has no
  schema for, gave a body that does not encode.  A bug to fix, never retried.
* :class:`RemoteProtocolError` -- the peer broke the wire protocol: a frame size below 0 or above
  the limit, a response to a request that is not the oldest in flight, a body that does not
  decode.  The connection is unusable afterwards; Kafka's ``NetworkClient`` closes it too.
* :class:`~reference.errors.KafkaError` -- a condition Kafka itself names with an error code.
  Three of them are raised by the client side rather than read from a response body, and get
  their own class so callers can catch them by type:

  - :class:`UnsupportedVersionError` (``UNSUPPORTED_VERSION``, 35): the broker does not serve the
    API, or no version both sides know, or the version asked for is outside the broker's range
    (Java's ``UnsupportedVersionException``).
  - :class:`NodeDisconnectedError` (``NETWORK_EXCEPTION``, 13, retriable): the connection failed
    or closed before the answer came (Java's ``DisconnectException``).
    :class:`UnknownNodeError` is the case where the node's address is not known at all.
  - :class:`RequestTimedOutError` (``REQUEST_TIMED_OUT``, 7, retriable): no answer within the
    request's ``request.timeout.ms``.

:func:`error_from_code` / :func:`raise_for_error` are the single translation from a response's
``error_code`` (and ``error_message``) to an exception; every client-side reader of a response
body goes through them, so ``KafkaError.error`` is always the registry's own entry.
"""

from __future__ import annotations

from typing import Any

from ..errors import ErrorCode, Errors, KafkaError, by_name, lookup


class LocalProtocolError(Exception):
    """refka's own code used a connection in a way the protocol does not allow."""


class ConnectionStateError(LocalProtocolError):
    """An operation the connection's state machine has no transition for."""

    def __init__(self, state: object, event: object) -> None:
        super().__init__(f"cannot {event} in state {state}")
        self.state = state
        self.event = event


class RemoteProtocolError(Exception):
    """The peer sent bytes that break Kafka's wire protocol; the connection is unusable.

    ``responses`` holds the answers decoded from the same received bytes before the fault (a
    transport still delivers them)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.responses: list[Any] = []


class UnsupportedVersionError(KafkaError):
    """No version of the API that both sides serve (or the one asked for is out of range)."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(Errors.UNSUPPORTED_VERSION, message)


NETWORK_EXCEPTION = by_name["NETWORK_EXCEPTION"]


class NodeDisconnectedError(KafkaError):
    """The connection to ``node_id`` failed or closed before the answer came (retriable)."""

    def __init__(self, node_id: int | None = None, message: str | None = None) -> None:
        where = "the node" if node_id is None else f"node {node_id}"
        super().__init__(NETWORK_EXCEPTION, f"{where}: {message}" if message else where)
        self.node_id = node_id


class UnknownNodeError(NodeDisconnectedError):
    """No address is known for the destination node (retriable once metadata knows it)."""

    def __init__(self, node_id: int) -> None:
        super().__init__(node_id, "no known address")


class RequestTimedOutError(KafkaError):
    """No answer within the request's timeout (``request.timeout.ms``)."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(Errors.REQUEST_TIMED_OUT, message)


def _unsupported_version(error: ErrorCode, message: str | None) -> KafkaError:
    return UnsupportedVersionError(message)


def _request_timed_out(error: ErrorCode, message: str | None) -> KafkaError:
    return RequestTimedOutError(message)


# Codes that have a class of their own; every other code is a plain KafkaError carrying its entry.
_TYPED = {
    Errors.UNSUPPORTED_VERSION.code: _unsupported_version,
    Errors.REQUEST_TIMED_OUT.code: _request_timed_out,
}


def error_from_code(code: int, message: str | None = None) -> KafkaError | None:
    """The exception for a response's ``error_code``, or ``None`` for ``NONE`` (0).

    An unknown code still gives a :class:`KafkaError` (its entry is the registry's synthetic
    ``UNKNOWN_ERROR_CODE_<n>``, non-retriable), so a newer broker cannot make a client crash.
    """
    if code == Errors.NONE.code:
        return None
    error = lookup(code)
    typed = _TYPED.get(code)
    return typed(error, message) if typed is not None else KafkaError(error, message)


def raise_for_error(code: int, message: str | None = None) -> None:
    """Raise :func:`error_from_code`'s exception unless ``code`` is ``NONE``."""
    error = error_from_code(code, message)
    if error is not None:
        raise error


class ProducerFencedError(KafkaError):
    """A newer producer with the same ``transactional.id`` bumped the epoch (Java's
    ``ProducerFencedException``): PRODUCER_FENCED (90), or INVALID_PRODUCER_EPOCH (47) from a
    coordinator that predates it.  Fatal: the producer can only be closed."""

    def __init__(self, error: ErrorCode = Errors.PRODUCER_FENCED, message: str | None = None) -> None:
        super().__init__(error, message)


class TransactionAbortedError(Exception):
    """A record of a transaction that was aborted before the record was sent (Java's
    ``TransactionAbortedException``, which has no error code: the broker never saw the record)."""


class TransactionStateError(LocalProtocolError):
    """A transactional call the producer's state does not allow (Java's ``IllegalStateException``,
    e.g. ``begin_transaction`` twice): names the transactional id, the state and the call."""

    def __init__(self, transactional_id: str, state: object, event: object) -> None:
        super().__init__(f"transactional id {transactional_id}: cannot {event} in state {state}")
        self.state = state
        self.event = event


class ConfigException(KafkaError):
    """A client configuration value that is missing, unknown or out of range (Java's
    ``ConfigException``); raised when the client is created, before anything is sent."""

    def __init__(self, message: str) -> None:
        super().__init__(Errors.INVALID_CONFIG, message)
