"""The API process's Prometheus metrics, on a registry of its own (``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.records = Counter(
            "smstally_api_records_total", "Output records projected into the read model", ["topic"], registry=r
        )
        self.undecodable = Counter(
            "smstally_api_undecodable_total",
            "Records of the output topics that could not be decoded (skipped)",
            ["topic"],
            registry=r,
        )
        self.lag = Gauge(
            "smstally_api_lag_records", "Records on the topics not yet in the read model", ["topic"], registry=r
        )
        self.batch_seconds = Histogram(
            "smstally_api_batch_write_seconds",
            "Time to write one batch (one transaction)",
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.ready = Gauge(
            "smstally_api_ready", "1 when the read model is caught up and the broker answers", registry=r
        )
        self.sse_clients = Gauge("smstally_api_sse_clients", "Open /api/events streams", registry=r)
        self.requests = Counter(
            "smstally_api_requests_total", "HTTP requests by route and status", ["route", "status"], registry=r
        )
