#!/bin/sh
# Creates the topics of smstally's contract (CONTRACT.md, section 1), idempotently:
# a topic that already exists is left as it is (--if-not-exists), whatever its
# partition count, so re-running this script, or running it against a cluster
# where the platform already created some inputs, is safe.
#
# Runs in the apache/kafka image (the `topics` service of docker-compose.yml), or
# anywhere kafka-topics.sh is available:
#   BOOTSTRAP_SERVER=broker:9092 KAFKA_BIN=/path/to/kafka/bin sh deploy/create-topics.sh
#
# Environment:
#   BOOTSTRAP_SERVER          host:port of a broker              (default kafka:9092)
#   SMSTALLY_PARTITIONS       partitions of every topic created   (default 8)
#   TOPIC_REPLICATION_FACTOR  replicas of every topic created     (default 1)
#   LONG_RETENTION_MS         retention of address-book removals and dead letters
#                             (default 2592000000 = 30 days; -1 = forever)
#   KAFKA_BIN                 folder of kafka-topics.sh           (default /opt/kafka/bin)
#   WAIT_SECONDS              how long to wait for the broker     (default 120)
#
# Exit status: 0 when every topic exists, non-zero otherwise (the worker does not
# start), including when sms.message-sent and sms.dlr exist with different partition
# counts: the contract requires them to be co-partitioned.
set -eu

BOOTSTRAP_SERVER="${BOOTSTRAP_SERVER:-kafka:9092}"
PARTITIONS="${SMSTALLY_PARTITIONS:-8}"
REPLICATION_FACTOR="${TOPIC_REPLICATION_FACTOR:-1}"
LONG_RETENTION_MS="${LONG_RETENTION_MS:-2592000000}"
KAFKA_BIN="${KAFKA_BIN:-/opt/kafka/bin}"
WAIT_SECONDS="${WAIT_SECONDS:-120}"
KAFKA_TOPICS="$KAFKA_BIN/kafka-topics.sh"

log() { echo "[create-topics] $*" >&2; }

case "$PARTITIONS" in
  ''|*[!0-9]*|0) log "SMSTALLY_PARTITIONS must be a positive integer, got '$PARTITIONS'"; exit 2 ;;
esac

# The broker may be reachable before it accepts admin requests: retry listing.
waited=0
until "$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP_SERVER" --list >/dev/null 2>&1; do
  if [ "$waited" -ge "$WAIT_SECONDS" ]; then
    log "broker $BOOTSTRAP_SERVER not reachable after ${WAIT_SECONDS}s"
    exit 1
  fi
  sleep 2
  waited=$((waited + 2))
done

# create_topic NAME PARTITIONS [--config key=value ...]
create_topic() {
  name="$1"
  partitions="$2"
  shift 2
  log "ensuring $name (partitions=$partitions, replication-factor=$REPLICATION_FACTOR${*:+, $*})"
  "$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP_SERVER" \
    --create --if-not-exists \
    --topic "$name" \
    --partitions "$partitions" \
    --replication-factor "$REPLICATION_FACTOR" \
    "$@"
}

# partition_count NAME: the partition count of an existing topic.
partition_count() {
  "$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP_SERVER" --describe --topic "$1" \
    | sed -n 's/.*PartitionCount:[[:space:]]*\([0-9][0-9]*\).*/\1/p' \
    | head -n 1
}

# Inputs. sms.message-sent and sms.dlr are co-partitioned: same partition count.
create_topic sms.campaigns "$PARTITIONS"
create_topic sms.message-sent "$PARTITIONS"
create_topic sms.dlr "$PARTITIONS"
create_topic sms.unsubscribes "$PARTITIONS"

# Outputs. The latest record per key is the state: compacted.
create_topic sms.campaign-stats "$PARTITIONS" --config cleanup.policy=compact
create_topic sms.message-status "$PARTITIONS" --config cleanup.policy=compact
create_topic sms.suppressions "$PARTITIONS" --config cleanup.policy=compact

# Outputs. A stream of events for downstream consumers: deleted after a long retention.
create_topic sms.address-book-removals "$PARTITIONS" --config cleanup.policy=delete --config retention.ms="$LONG_RETENTION_MS"
create_topic sms.dead-letter "$PARTITIONS" --config cleanup.policy=delete --config retention.ms="$LONG_RETENTION_MS"

# Topics created earlier by someone else keep their partition count: check the
# co-partitioning promise instead of assuming it.
sent_partitions="$(partition_count sms.message-sent)"
dlr_partitions="$(partition_count sms.dlr)"
if [ -z "$sent_partitions" ] || [ "$sent_partitions" != "$dlr_partitions" ]; then
  log "sms.message-sent has '${sent_partitions}' partitions but sms.dlr has '${dlr_partitions}':"
  log "the contract requires the same partition count (co-partitioned inputs)"
  exit 1
fi

log "all topics present (sms.message-sent and sms.dlr: $sent_partitions partitions)"
