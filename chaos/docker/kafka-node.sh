#!/bin/sh
# Entrypoint of an Apache Kafka node container (KRaft, combined broker+controller).
# Configured by the chaos harness through env:
#   KAFKA_NODE_ID          node.id
#   KAFKA_QUORUM_VOTERS    controller.quorum.voters, e.g. 1@172.28.0.11:9093,2@172.28.0.12:9093
#   KAFKA_ADVERTISED_HOST  the container's fixed IP, advertised to clients and other brokers
#   KAFKA_CLUSTER_ID       cluster.id given to `kafka-storage format` (same on every node)
#   KAFKA_SETTINGS         extra server.properties lines, one KEY=VALUE a line
#   KAFKA_HEAP             JVM heap flags (default -Xms256m -Xmx512m)
#   KAFKA_HOME, KAFKA_DATA where the jars and the log live (default /opt/kafka, /var/lib/kafka)
# The log directory is formatted on first start only, so a restarted container
# (after a kill or a graceful stop) recovers its log instead of starting empty.
set -eu
: "${KAFKA_NODE_ID:?}" "${KAFKA_QUORUM_VOTERS:?}" "${KAFKA_ADVERTISED_HOST:?}" "${KAFKA_CLUSTER_ID:?}"
KAFKA_HOME=${KAFKA_HOME:-/opt/kafka}
KAFKA_DATA=${KAFKA_DATA:-/var/lib/kafka}
CONFIG="$KAFKA_HOME/server.properties"
CP="$KAFKA_HOME/libs/*"
LOG4J="-Dlog4j2.configurationFile=$KAFKA_HOME/log4j2.properties"
cat > "$CONFIG" <<PROPERTIES
process.roles=broker,controller
node.id=${KAFKA_NODE_ID}
controller.quorum.voters=${KAFKA_QUORUM_VOTERS}
listeners=PLAINTEXT://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093
advertised.listeners=PLAINTEXT://${KAFKA_ADVERTISED_HOST}:9092
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=${KAFKA_DATA}
${KAFKA_SETTINGS:-}
PROPERTIES
if [ ! -f "$KAFKA_DATA/meta.properties" ]; then
    java -Xmx256m "$LOG4J" -cp "$CP" kafka.tools.StorageTool format \
        --cluster-id "$KAFKA_CLUSTER_ID" --config "$CONFIG"
fi
# shellcheck disable=SC2086  # KAFKA_HEAP is a list of flags
exec java ${KAFKA_HEAP:--Xms256m -Xmx512m} -XX:+UseG1GC -Djava.awt.headless=true "$LOG4J" \
    -cp "$CP" kafka.Kafka "$CONFIG"
