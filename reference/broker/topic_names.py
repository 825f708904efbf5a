"""Topic names: which are legal, which collide, which are internal (Kafka's ``Topic`` class).

Theory of operation
-------------------
Kafka checks a topic name wherever one enters the broker (CreateTopics, Metadata auto-creation,
DescribeConfigs, AlterConfigs, ...) with ``org.apache.kafka.common.internals.Topic.validate``.
The rules, checked in this order, each refused with INVALID_TOPIC_EXCEPTION (17) and the message
Kafka 4.3 sends (checked against a live broker):

1. not empty: ``Topic name is invalid: the empty string is not allowed``;
2. not ``.`` or ``..`` (they would be directory names): ``Topic name is invalid: '.' is not allowed``;
3. at most 249 characters (a partition directory is ``<topic>-<partition>`` and, during deletion,
   gets a suffix; 255 is the usual file-name limit):
   ``Topic name is invalid: the length of '<name>' is longer than the max allowed length 249``;
4. only ASCII letters, digits, ``.``, ``_`` and ``-``:
   ``Topic name is invalid: '<name>' contains one or more characters other than ASCII
   alphanumerics, '.', '_' and '-'``.

Two more rules apply only when a topic is created:

* **Collisions.**  Kafka's metric names replace ``.`` with ``_``, so ``a.b`` and ``a_b`` would share
  metrics; creating one while the other exists is refused with INVALID_TOPIC_EXCEPTION,
  ``Topic 'a_b' collides with existing topic: a.b`` (see :func:`collides_with`).
* **The metadata log.**  ``__cluster_metadata`` is KRaft's own log, not a topic: creating it is
  INVALID_REQUEST (42), ``Creation of internal topic __cluster_metadata is prohibited.``

Internal topics (``__consumer_offsets``, ``__transaction_state``) are legal names; Metadata flags
them ``is_internal``.  A leading ``__`` alone does not make a topic internal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import Errors, KafkaError

MAX_NAME_LENGTH = 249
LEGAL_CHARACTERS = re.compile(r"[a-zA-Z0-9._-]+")

GROUP_METADATA_TOPIC = "__consumer_offsets"
TRANSACTION_STATE_TOPIC = "__transaction_state"
INTERNAL_TOPICS = frozenset({GROUP_METADATA_TOPIC, TRANSACTION_STATE_TOPIC})
METADATA_TOPIC = "__cluster_metadata"


def _invalid(reason: str) -> KafkaError:
    return KafkaError(Errors.INVALID_TOPIC_EXCEPTION, f"Topic name is invalid: {reason}")


def validate_topic_name(name: str) -> None:
    """Raise ``KafkaError(INVALID_TOPIC_EXCEPTION)`` with Kafka's message unless ``name`` is legal."""
    if not name:
        raise _invalid("the empty string is not allowed")
    if name in (".", ".."):
        raise _invalid(f"'{name}' is not allowed")
    if len(name) > MAX_NAME_LENGTH:
        raise _invalid(f"the length of '{name}' is longer than the max allowed length {MAX_NAME_LENGTH}")
    if not LEGAL_CHARACTERS.fullmatch(name):
        raise _invalid(f"'{name}' contains one or more characters other than ASCII alphanumerics, '.', '_' and '-'")


def check_creatable(name: str) -> None:
    """The checks CreateTopics adds to :func:`validate_topic_name` before looking at other topics."""
    validate_topic_name(name)
    if name == METADATA_TOPIC:
        raise KafkaError(Errors.INVALID_REQUEST, f"Creation of internal topic {METADATA_TOPIC} is prohibited.")


def is_internal(name: str) -> bool:
    return name in INTERNAL_TOPICS


def unify_collision_characters(name: str) -> str:
    """Kafka's ``Topic.unifyCollisionChars``: the name as metrics see it."""
    return name.replace(".", "_")


def collides_with(name: str, existing_names: Iterable[str]) -> str | None:
    """The existing topic that ``name`` would collide with ('.' versus '_'), or None.

    A topic never collides with itself: an existing identical name is TOPIC_ALREADY_EXISTS,
    which the caller checks first."""
    unified = unify_collision_characters(name)
    for existing in existing_names:
        if existing != name and unify_collision_characters(existing) == unified:
            return existing
    return None
