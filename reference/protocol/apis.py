"""The registry of APIs refka declares: key -> name, request schema, response schema.

Each API's schemas live in their own module under ``reference.protocol.messages``, named after
the API in snake_case, exposing ``REQUEST`` and ``RESPONSE``.  This table is the only list of them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from .schema import Message


@dataclass(frozen=True, repr=False)
class Api:
    key: int
    name: str
    request: Message
    response: Message

    def __repr__(self) -> str:
        return f"<Api {self.key} {self.name}>"


# key -> module name in reference.protocol.messages
MESSAGE_MODULES: dict[int, str] = {
    # -- keys 0 to 23 --
    0: "produce",
    1: "fetch",
    2: "list_offsets",
    3: "metadata",
    8: "offset_commit",
    9: "offset_fetch",
    10: "find_coordinator",
    11: "join_group",
    12: "heartbeat",
    13: "leave_group",
    14: "sync_group",
    15: "describe_groups",
    16: "list_groups",
    17: "sasl_handshake",
    18: "api_versions",
    19: "create_topics",
    20: "delete_topics",
    21: "delete_records",
    22: "init_producer_id",
    23: "offset_for_leader_epoch",
    # -- keys 24 and above --
    24: "add_partitions_to_txn",
    25: "add_offsets_to_txn",
    26: "end_txn",
    27: "write_txn_markers",
    28: "txn_offset_commit",
    32: "describe_configs",
    33: "alter_configs",
    37: "create_partitions",
    42: "delete_groups",
    43: "elect_leaders",
    44: "incremental_alter_configs",
    47: "offset_delete",
    52: "vote",
    53: "begin_quorum_epoch",
    54: "end_quorum_epoch",
    55: "describe_quorum",
    56: "alter_partition",
    59: "fetch_snapshot",
    60: "describe_cluster",
    61: "describe_producers",
    62: "broker_registration",
    63: "broker_heartbeat",
    65: "describe_transactions",
    66: "list_transactions",
    67: "allocate_producer_ids",
    68: "consumer_group_heartbeat",  # KIP-848
    69: "consumer_group_describe",  # KIP-848
}


def _load() -> dict[int, Api]:
    apis: dict[int, Api] = {}
    for key, module_name in sorted(MESSAGE_MODULES.items()):
        module = importlib.import_module(f"{__package__}.messages.{module_name}")
        request: Message = module.REQUEST
        response: Message = module.RESPONSE
        if request.api_key != key or response.api_key != key:
            raise AssertionError(f"{module_name} declares api key {request.api_key}, registry says {key}")
        apis[key] = Api(key, request.name.removesuffix("Request"), request, response)
    return apis


API_BY_KEY: dict[int, Api] = _load()
API_BY_NAME: dict[str, Api] = {api.name: api for api in API_BY_KEY.values()}
