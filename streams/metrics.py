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
READY = Gauge("smstally_ready", "1 when the worker is recovered and processing", registry=REGISTRY)


def render() -> bytes:
    return generate_latest(REGISTRY)
