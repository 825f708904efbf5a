"""The storage layer of the reference broker: one partition's log on disk, and the replica view.

Modules, bottom up: :mod:`.files` (names), :mod:`.config` (LogConfig), :mod:`.clock`,
:mod:`.index` (``.index``/``.timeindex``), :mod:`.segment`, :mod:`.checkpoint` (Kafka's text
checkpoints, the clean-shutdown marker), :mod:`.epoch_cache` (``leader-epoch-checkpoint``),
:mod:`.log` (PartitionLog: append, read, roll, retention, truncation, recovery), :mod:`.cleaner`
(compaction), :mod:`.replica` (high watermark, leader epoch, ListOffsets/OffsetForLeaderEpoch) and
:mod:`.log_manager` (a log directory: loading every partition, checkpoints, clean shutdown).
The idempotent producer's table lives beside them in :mod:`reference.broker.log.producer_state`.
"""
