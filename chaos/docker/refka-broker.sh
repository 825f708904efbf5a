#!/bin/sh
# Entrypoint of the reference broker container. Configured by the chaos harness through env:
#   NODE_ID           node.id of this broker (default 1)
#   ADVERTISED_HOST   address clients and other brokers use (the container's fixed IP)
#   BROKER_PORT       client port (default 9092)
#   BROKER_SETTINGS   extra broker configs, one KEY=VALUE per line (e.g. num.partitions=3)
#   QUORUM_VOTERS     controller.quorum.voters (id@ip:9093,...): a replicated KRaft cluster; every
#                     node is a combined broker+controller, formatted on first start with CLUSTER_ID
#   CLUSTER_ID        the cluster id given to `refka storage format` (same on every node)
# Data lives in /var/lib/refka, in the container's own filesystem: a killed and restarted
# container keeps its log, a removed one loses it.
set -eu
NODE_ID=${NODE_ID:-1}
BROKER_PORT=${BROKER_PORT:-9092}
ADVERTISED_HOST=${ADVERTISED_HOST:-$(hostname -i | cut -d' ' -f1)}
if [ -n "${QUORUM_VOTERS:-}" ]; then
    : "${CLUSTER_ID:?}"
    CONFIG=/etc/refka-server.properties
    cat > "$CONFIG" <<PROPERTIES
process.roles=broker,controller
node.id=${NODE_ID}
controller.quorum.voters=${QUORUM_VOTERS}
listeners=PLAINTEXT://0.0.0.0:${BROKER_PORT},CONTROLLER://0.0.0.0:9093
advertised.listeners=PLAINTEXT://${ADVERTISED_HOST}:${BROKER_PORT}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=/var/lib/refka
${BROKER_SETTINGS:-}
PROPERTIES
    refka storage format --cluster-id "$CLUSTER_ID" --config "$CONFIG" --ignore-formatted
    exec refka broker --config "$CONFIG"
fi
set -- --listen "0.0.0.0:${BROKER_PORT}" --data-dir /var/lib/refka --node-id "$NODE_ID" \
    --set "advertised.listeners=PLAINTEXT://${ADVERTISED_HOST}:${BROKER_PORT}"
if [ -n "${BROKER_SETTINGS:-}" ]; then
    # one setting a line; `set --` appends without word-splitting on spaces inside values
    while IFS= read -r line; do
        [ -n "$line" ] && set -- "$@" --set "$line"
    done <<SETTINGS
${BROKER_SETTINGS}
SETTINGS
fi
exec refka broker "$@"
