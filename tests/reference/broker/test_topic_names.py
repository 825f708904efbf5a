"""Topic names: Kafka's Topic.validate rules and messages, collisions, internal topics.

The expected messages are the ones Apache Kafka 4.3.1 sends (recorded from a live broker)."""

from __future__ import annotations

import pytest

from reference.broker.topic_names import (
    check_creatable,
    collides_with,
    is_internal,
    validate_topic_name,
)
from reference.errors import Errors, KafkaError


@pytest.mark.parametrize("name", ["a", "_", "-", "...", "a..b", "__foo", "Topic-1_x.y", "a" * 249,
                                  "__consumer_offsets", "__transaction_state"])
def test_legal_names_pass(name: str) -> None:
    validate_topic_name(name)


@pytest.mark.parametrize(("name", "message"), [
    ("", "Topic name is invalid: the empty string is not allowed"),
    (".", "Topic name is invalid: '.' is not allowed"),
    ("..", "Topic name is invalid: '..' is not allowed"),
    ("a" * 250, f"Topic name is invalid: the length of '{'a' * 250}' is longer than the max allowed length 249"),
    ("bad name", "Topic name is invalid: 'bad name' contains one or more characters other than ASCII "
                 "alphanumerics, '.', '_' and '-'"),
    ("ünï", "Topic name is invalid: 'ünï' contains one or more characters other than ASCII alphanumerics, "
            "'.', '_' and '-'"),
    ("a/b", "Topic name is invalid: 'a/b' contains one or more characters other than ASCII alphanumerics, "
            "'.', '_' and '-'"),
])
def test_illegal_names_are_invalid_topic_exception_with_kafkas_message(name: str, message: str) -> None:
    with pytest.raises(KafkaError) as refused:
        validate_topic_name(name)
    assert refused.value.error is Errors.INVALID_TOPIC_EXCEPTION
    assert refused.value.message == message


def test_length_is_checked_before_characters() -> None:
    with pytest.raises(KafkaError, match="longer than the max allowed length"):
        validate_topic_name("!" * 250)


def test_dot_and_underscore_collide_both_ways() -> None:
    assert collides_with("cfg_dot", ["cfg.dot", "other"]) == "cfg.dot"
    assert collides_with("cfg.dot", ["cfg_dot"]) == "cfg_dot"
    assert collides_with("a.b_c", ["a_b.c"]) == "a_b.c"


def test_a_name_does_not_collide_with_itself_or_unrelated_names() -> None:
    assert collides_with("cfg.dot", ["cfg.dot"]) is None
    assert collides_with("cfg_dot2", ["cfg.dot"]) is None
    assert collides_with("x", []) is None


def test_the_metadata_log_cannot_be_created() -> None:
    with pytest.raises(KafkaError) as refused:
        check_creatable("__cluster_metadata")
    assert refused.value.error is Errors.INVALID_REQUEST
    assert refused.value.message == "Creation of internal topic __cluster_metadata is prohibited."
    check_creatable("__transaction_state")


def test_only_the_two_coordinator_topics_are_internal() -> None:
    assert is_internal("__consumer_offsets") and is_internal("__transaction_state")
    assert not is_internal("__foo") and not is_internal("__cluster_metadata")
