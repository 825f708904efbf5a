"""Kafka's RecordBatch v2: layout and codec (:mod:`.batch`, :mod:`.record`), compression
(:mod:`.compression`), control records (:mod:`.control`) and broker-side validation
(:mod:`.validation`).  Import from the submodules; this package re-exports nothing."""
