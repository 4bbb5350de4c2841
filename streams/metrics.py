"""Prometheus metrics of one worker, served at ``/metrics`` on the web port."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

REGISTRY = CollectorRegistry()
EVENTS = Counter("smstally_events_total", "Input records folded", ["topic"], registry=REGISTRY)
DEAD_LETTERS = Counter(
    "smstally_dead_letters_total", "Records sent to the dead-letter topic", ["kind"], registry=REGISTRY
)
REMOVALS = Counter(
    "smstally_removals_total", "Address-book removals published (re-emissions included)", ["reason"], registry=REGISTRY
)
STATS_PUBLISHED = Counter(
    "smstally_campaign_stats_published_total", "CampaignStats records published", registry=REGISTRY
)
MISPARTITIONED = Counter(
    "smstally_input_mispartitioned_total",
    "Input records on another partition than murmur2(key) places them, or without a key (contract §1)",
    ["topic"],
    registry=REGISTRY,
)
REROUTED = Counter(
    "smstally_rerouted_messages_total",
    "Message inputs forwarded to the partition of their message (SMSTALLY_INPUT_PARTITIONING)",
    registry=REGISTRY,
)
LAG = Gauge(
    "smstally_consumer_lag_records",
    "Records on this worker's partitions not yet processed (its consumer lag, internal topics included)",
    registry=REGISTRY,
)
READY = Gauge("smstally_ready", "1 when the worker is recovered and processing", registry=REGISTRY)


def render() -> bytes:
    return generate_latest(REGISTRY)
