"""Other Kafka-compatible brokers as peers of the conformance suite (``refka conform --peers``).

Theory of operation
-------------------
The suite is meant to be a kit anyone can point at a broker.  To show that it tells brokers apart,
``refka conform --peers kafka,reference,kfake,tansu`` runs it against four of them, one after the
other, and writes one matrix with a column per broker (:mod:`conformance.report_peers`).

1. **Kafka and the reference** run exactly as ``refka conform --apache-kafka 1`` and plain
   ``refka conform`` do (a private 1-node Apache Kafka; the embedded reference broker).  They are
   the columns that must pass: Kafka is the ground truth, the reference is the project's own broker.
2. **kfake** is franz-go's fake in-process cluster.  ``kfake/main.go`` (beside this file, version
   pinned in ``kfake/go.mod``) wraps it into a program that listens on the ports it is given and
   prints ``listening ADDR``.  :mod:`conformance.peers.brokers` builds it with ``go build`` into
   ``$REFKA_CACHE/peers/kfake-<hash of the Go sources>/`` once, and reuses that binary after.
3. **tansu** is a Rust broker with pluggable storage.  ``cargo install tansu --features dynostore``
   compiles it once into ``$REFKA_CACHE/peers/tansu/`` (its memory storage engine, ``memory://``,
   needs the ``dynostore`` feature); later runs reuse the binary.  The compile is long, so it runs
   niced on one job.
4. **Readiness.**  A peer counts as started only when it answers ApiVersions v0 (every broker must,
   KIP-35) on its advertised address; a peer that cannot be built or started gets a column that
   says why, and the run goes on with the others.
5. **Verdict.**  Failures on kfake and tansu are what the matrix is for, so they never make the
   command fail; it exits 1 only when the Kafka or the reference column has a failure or did not
   run (see :func:`conformance.peers.run.exit_status`).

``REFKA_CACHE`` defaults to ``~/.cache/refka``, as for the Apache Kafka jars.
"""

from __future__ import annotations

KAFKA = "kafka"
REFERENCE = "reference"
KFAKE = "kfake"
TANSU = "tansu"

# The order of the matrix's columns; the first two are the ones that must pass.
ALL_PEERS = (KAFKA, REFERENCE, KFAKE, TANSU)
MUST_PASS = (KAFKA, REFERENCE)
