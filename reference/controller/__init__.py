"""The KRaft controller side of a refka cluster: what Kafka keeps in ``__cluster_metadata``.

In KRaft mode (KIP-500, KIP-631) the cluster's metadata (brokers, topics, partitions, configs,
features, producer id blocks) is a log of *metadata records* in the single-partition topic
``__cluster_metadata``.  The active controller decides and writes records; the Raft quorum
(KIP-595) replicates them; every node replays the committed records, in offset order, into an
in-memory *metadata image*.  Nothing else is authoritative: the image is a pure function of the log.

What lives here:

* ``metadata_records`` -- the record schemas in Apache Kafka's own formats (every version Kafka
  4.3.1 defines), the frame that wraps one record in a log record's value, and the RecordBatch v2
  batches of the metadata log, so Kafka's ``kafka-dump-log --cluster-metadata-decoder`` reads
  refka's log.  It also fixes the ``metadata.version`` refka announces and the record versions
  written at it.
* ``image`` -- :class:`~reference.controller.image.MetadataImage`: replaying records (Kafka's
  ``MetadataDelta`` applied in place) and its executable invariants (``check_valid``).
* The quorum controller (decisions -> records) and the Raft layer (replication, control records
  such as LeaderChangeMessage and the snapshot header/footer) live in their own modules here.
"""
