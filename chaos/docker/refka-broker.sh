#!/bin/sh
# Entrypoint of the reference broker container. Configured by the chaos harness through env:
#   NODE_ID           node.id of this broker (default 1)
#   ADVERTISED_HOST   address clients and other brokers use (the container's fixed IP)
#   BROKER_PORT       client port (default 9092)
#   BROKER_SETTINGS   extra broker configs, one KEY=VALUE per line (e.g. num.partitions=3)
# Data lives in /var/lib/refka, in the container's own filesystem: a killed and restarted
# container keeps its log, a removed one loses it.
set -eu
NODE_ID=${NODE_ID:-1}
BROKER_PORT=${BROKER_PORT:-9092}
ADVERTISED_HOST=${ADVERTISED_HOST:-$(hostname -i | cut -d' ' -f1)}
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
