"""One error for a whole request: the answer Kafka builds with ``AbstractRequest.getErrorResponse``.

When a request cannot be served at all -- a broker found no active controller to forward it to
before its timeout (REQUEST_TIMED_OUT), or a controller that is not the active one was asked
(NOT_CONTROLLER) -- Kafka answers every entity the request names with the same error, in the
request's own shape.  This module does that for the requests a KRaft node forwards or serves as a
controller.  Each builder reads the request body and returns the response body; the caller encodes
it in the request's version.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ErrorCode
from ..protocol.apis import API_BY_KEY
from ..protocol.schema import Data

CREATE_TOPICS, DELETE_TOPICS, CREATE_PARTITIONS = API_BY_KEY[19], API_BY_KEY[20], API_BY_KEY[37]
ALTER_CONFIGS, INCREMENTAL_ALTER_CONFIGS, ELECT_LEADERS = API_BY_KEY[33], API_BY_KEY[44], API_BY_KEY[43]
DESCRIBE_QUORUM = API_BY_KEY[55]

Builder = Callable[[Data, ErrorCode, str | None], Data]


def _create_topics(body: Data, error: ErrorCode, message: str | None) -> Data:
    result = CREATE_TOPICS.response.struct("CreatableTopicResult")
    return CREATE_TOPICS.response.make(topics=[
        result.make(name=topic.name, error_code=error.code, error_message=message) for topic in body.topics])


def _delete_topics(body: Data, error: ErrorCode, message: str | None) -> Data:
    result = DELETE_TOPICS.response.struct("DeletableTopicResult")
    names = list(body.topic_names or []) or [topic.name for topic in body.topics or []]
    return DELETE_TOPICS.response.make(responses=[
        result.make(name=name, error_code=error.code, error_message=message) for name in names])


def _create_partitions(body: Data, error: ErrorCode, message: str | None) -> Data:
    result = CREATE_PARTITIONS.response.struct("CreatePartitionsTopicResult")
    return CREATE_PARTITIONS.response.make(results=[
        result.make(name=topic.name, error_code=error.code, error_message=message) for topic in body.topics])


def _alter_configs(api_body: Data, error: ErrorCode, message: str | None, incremental: bool) -> Data:
    api = INCREMENTAL_ALTER_CONFIGS if incremental else ALTER_CONFIGS
    result = api.response.struct("AlterConfigsResourceResponse")
    return api.response.make(responses=[
        result.make(error_code=error.code, error_message=message, resource_type=resource.resource_type,
                     resource_name=resource.resource_name) for resource in api_body.resources])


def _elect_leaders(body: Data, error: ErrorCode, message: str | None) -> Data:
    topic_result = ELECT_LEADERS.response.struct("ReplicaElectionResult")
    partition_result = ELECT_LEADERS.response.struct("PartitionResult")
    return ELECT_LEADERS.response.make(error_code=error.code, replica_election_results=[
        topic_result.make(topic=topic.topic, partition_result=[
            partition_result.make(partition_id=partition, error_code=error.code, error_message=message)
            for partition in topic.partitions])
        for topic in body.topic_partitions or []])


def _describe_quorum(body: Data, error: ErrorCode, message: str | None) -> Data:
    return DESCRIBE_QUORUM.response.make(error_code=error.code, error_message=message, topics=[], nodes=[])


BUILDERS: dict[int, Builder] = {
    DESCRIBE_QUORUM.key: _describe_quorum,
    CREATE_TOPICS.key: _create_topics,
    DELETE_TOPICS.key: _delete_topics,
    CREATE_PARTITIONS.key: _create_partitions,
    ALTER_CONFIGS.key: lambda body, error, message: _alter_configs(body, error, message, incremental=False),
    INCREMENTAL_ALTER_CONFIGS.key: lambda body, error, message: _alter_configs(body, error, message, incremental=True),
    ELECT_LEADERS.key: _elect_leaders,
}


def error_response(api_key: int, body: Data, error: ErrorCode, message: str | None = None) -> Data:
    """Every entity of ``body`` answered with ``error`` (KeyError for an API without a builder)."""
    return BUILDERS[api_key](body, error, message)
