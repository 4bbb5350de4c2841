"""Settings from the environment (contract §9); the CLI's flags only fill the same names."""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, replace
from typing import Mapping


@dataclass(frozen=True)
class TopicNames:
    campaigns: str = "sms.campaigns"
    message_sent: str = "sms.message-sent"
    dlr: str = "sms.dlr"
    unsubscribes: str = "sms.unsubscribes"
    campaign_stats: str = "sms.campaign-stats"
    message_status: str = "sms.message-status"
    removals: str = "sms.address-book-removals"
    dead_letter: str = "sms.dead-letter"


_TOPIC_ENV = {
    "campaigns": "SMSTALLY_TOPIC_CAMPAIGNS", "message_sent": "SMSTALLY_TOPIC_MESSAGE_SENT",
    "dlr": "SMSTALLY_TOPIC_DLR", "unsubscribes": "SMSTALLY_TOPIC_UNSUBSCRIBES",
    "campaign_stats": "SMSTALLY_TOPIC_CAMPAIGN_STATS", "message_status": "SMSTALLY_TOPIC_MESSAGE_STATUS",
    "removals": "SMSTALLY_TOPIC_REMOVALS", "dead_letter": "SMSTALLY_TOPIC_DEAD_LETTER",
}


@dataclass(frozen=True)
class Settings:
    broker: str = "kafka://127.0.0.1:9092"
    data_dir: str = "./data"
    web_port: int = 6066
    web_host: str = "0.0.0.0"
    schema_registry_url: str | None = None
    default_region: str = "FR"
    partitions: int = 8
    broker_flavor: str = "kafka"  # "kafka", "tansu", or "auto" (detect)
    app_id: str = "smstally"
    store: str = "rocksdb"  # or "memory"
    replication_factor: int = 1
    stats_interval_ms: int = 100
    partial_interval_ms: int = 50
    pending_timeout_h: float = 72.0
    attribution_window_h: float = 72.0
    orphan_window_h: float = 24.0
    api_token: str | None = None  # required by endpoints that show phone numbers
    max_poll_records: int = 500  # records per fetched batch handed to the pipeline
    # Bytes a fetch may bring per partition. Prefetched responses sit in memory until read:
    # with Faust's 1 MB and ~30 partitions that was ~25 MB of a catching-up worker's heap.
    # Kafka returns a larger first record batch anyway (KIP-74), so this never blocks.
    max_fetch_partition_bytes: int = 256 * 1024
    fetch_max_wait_ms: int | None = None  # None: the broker flavor's (streams.app)
    log_level: str = "info"
    topics: TopicNames = field(default_factory=TopicNames)

    @property
    def bootstrap(self) -> str:
        """host:port list for raw clients (aiokafka) from Faust-style ``kafka://a:1;b:2`` URLs."""
        return ",".join(u.split("://", 1)[-1] for u in self.broker.replace(";", ",").split(","))

    @property
    def phone_events_topic(self) -> str:
        return f"{self.app_id}-phone-events"

    @property
    def campaign_events_topic(self) -> str:
        return f"{self.app_id}-campaign-events"

    def with_(self, **kw) -> "Settings":
        return replace(self, **kw)


def _get(env: Mapping[str, str], name: str) -> str | None:
    v = env.get(name)
    return v if v not in (None, "") else None


def from_env(env: Mapping[str, str] = os.environ) -> Settings:
    d = Settings()
    topics = TopicNames(**{k: _get(env, v) or getattr(TopicNames(), k) for k, v in _TOPIC_ENV.items()})
    data_dir = (_get(env, "SMSTALLY_DATA_DIR") or d.data_dir).replace("{hostname}", socket.gethostname())
    return Settings(
        broker=_get(env, "SMSTALLY_BROKER") or d.broker,
        data_dir=data_dir,
        web_port=int(_get(env, "SMSTALLY_WEB_PORT") or d.web_port),
        web_host=_get(env, "SMSTALLY_WEB_HOST") or d.web_host,
        schema_registry_url=_get(env, "SMSTALLY_SCHEMA_REGISTRY_URL"),
        default_region=(_get(env, "SMSTALLY_DEFAULT_REGION") or d.default_region).upper(),
        partitions=int(_get(env, "SMSTALLY_PARTITIONS") or d.partitions),
        broker_flavor=(_get(env, "SMSTALLY_BROKER_FLAVOR") or d.broker_flavor).lower(),
        app_id=_get(env, "SMSTALLY_APP_ID") or d.app_id,
        store=(_get(env, "SMSTALLY_STORE") or d.store).lower(),
        replication_factor=int(_get(env, "SMSTALLY_REPLICATION_FACTOR") or d.replication_factor),
        stats_interval_ms=int(_get(env, "SMSTALLY_STATS_INTERVAL_MS") or d.stats_interval_ms),
        partial_interval_ms=int(_get(env, "SMSTALLY_PARTIAL_INTERVAL_MS") or d.partial_interval_ms),
        pending_timeout_h=float(_get(env, "SMSTALLY_PENDING_TIMEOUT_H") or d.pending_timeout_h),
        attribution_window_h=float(_get(env, "SMSTALLY_ATTRIBUTION_WINDOW_H") or d.attribution_window_h),
        orphan_window_h=float(_get(env, "SMSTALLY_ORPHAN_WINDOW_H") or d.orphan_window_h),
        api_token=_get(env, "SMSTALLY_API_TOKEN"),
        max_poll_records=int(_get(env, "SMSTALLY_MAX_POLL_RECORDS") or d.max_poll_records),
        max_fetch_partition_bytes=int(_get(env, "SMSTALLY_MAX_FETCH_PARTITION_BYTES") or d.max_fetch_partition_bytes),
        fetch_max_wait_ms=int(_get(env, "SMSTALLY_FETCH_MAX_WAIT_MS") or 0) or None,
        log_level=(_get(env, "SMSTALLY_LOG_LEVEL") or d.log_level).lower(),
        topics=topics,
    )
