"""The transaction coordinator (KIP-98, KIP-360, KIP-588, KIP-890): its states, its log records in
``__transaction_state``, the sans-IO coordinator and its place in the broker.

* :mod:`.state` -- the transaction states and the legal transitions, as a table.
* :mod:`.records` -- ``TransactionLogKey`` / ``TransactionLogValue``, byte for byte as Kafka.
* :mod:`.metadata` -- one transactional id's metadata and the transitions it may prepare.
* :mod:`.coordinator` -- the request rules (InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn,
  EndTxn, verification, timeouts), with no socket and no clock.
* :mod:`.service` -- the broker side: the topic, loading it, writing it, writing the markers.
"""
