"""ListTransactions (key 66): the transactional ids a coordinator knows, with filters (KIP-664).

Sent to every broker (each is the transaction coordinator for some ``__transaction_state``
partitions); an admin client merges the answers.  Filters combine with AND, and an empty filter
list matches everything:

* ``StateFilters``: state names; names the broker does not know come back in
  ``UnknownStateFilters`` instead of failing the request;
* ``ProducerIdFilters``: producer ids;
* ``DurationFilter`` (v1): only transactions running longer than this many milliseconds (-1: no
  filter), for finding hanging transactions;
* ``TransactionalIdPattern`` (v2, KIP-1152): a regular expression on the transactional id (null:
  no filter).

Flexible from v0.
"""

from ..schema import INT16, INT32, INT64, STRING, Array, Field, Message, Struct

REQUEST = Message(
    "ListTransactionsRequest", api_key=66, valid_versions="0-2", flexible_versions="0+",
    fields=[
        Field("StateFilters", Array(STRING)),
        Field("ProducerIdFilters", Array(INT64)),
        Field("DurationFilter", INT64, versions="1+", default=-1),
        Field("TransactionalIdPattern", STRING, versions="2+", nullable="2+", default=None),
    ],
)

RESPONSE = Message(
    "ListTransactionsResponse", api_key=66, valid_versions="0-2", flexible_versions="0+",
    fields=[
        Field("ThrottleTimeMs", INT32),
        Field("ErrorCode", INT16),
        Field("UnknownStateFilters", Array(STRING)),
        Field("TransactionStates", Array(Struct("TransactionState", [
            Field("TransactionalId", STRING),
            Field("ProducerId", INT64),
            Field("TransactionState", STRING),
        ]))),
    ],
)
