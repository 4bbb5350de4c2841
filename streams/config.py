"""Settings from the environment (contract §9); the CLI's flags only fill the same names."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from processors.message_fold import HOUR_MS
from processors.message_stage import DEFAULT_ORPHAN_WINDOW_MS, DEFAULT_PENDING_TIMEOUT_MS
from processors.phone_stage import DEFAULT_ATTRIBUTION_WINDOW_MS
from processors.placement import PARTITIONING

#: Where the worker, the clients and the embedded broker look when SMSTALLY_BROKER is unset.
DEFAULT_BROKER_URL = "kafka://127.0.0.1:9092"
#: Kafka's port, for a broker URL that names none.
DEFAULT_KAFKA_PORT = 9092


@dataclass(frozen=True)
class BrokerAddress:
    """One broker of a broker URL."""

    host: str
    port: int

    @property
    def bootstrap(self) -> str:
        """``host:port``, what aiokafka's ``bootstrap_servers`` wants (IPv6 hosts bracketed)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """``kafka://host:port``, what Faust's ``broker`` setting wants."""
        return f"kafka://{self.bootstrap}"


def broker_addresses(url: str | Iterable[str]) -> list[BrokerAddress]:
    """The brokers of a URL as users write it in ``SMSTALLY_BROKER``, in order.

    The one parser of broker URLs. Accepted: ``kafka://h:p``, ``tcp://h:p`` or any other
    scheme (``tansu://``...), a bare ``h:p`` or ``h``, ``[v6]:p``, a trailing ``/``, and
    Faust's ``;`` or ``,`` separated lists of those (also an iterable of them). Blank entries
    are skipped; the host defaults to 127.0.0.1 and the port to Kafka's 9092. Raises
    ValueError for a URL without any broker or with a port that is not a number.
    """
    entries = [url] if isinstance(url, str) else list(url)
    out: list[BrokerAddress] = []
    for entry in entries:
        for part in entry.replace(",", ";").split(";"):
            part = part.strip()
            if not part:
                continue
            parts = urlsplit(part if "://" in part else "kafka://" + part)
            try:
                port = parts.port or DEFAULT_KAFKA_PORT
            except ValueError as exc:
                raise ValueError(f"bad port in broker URL {url!r}") from exc
            out.append(BrokerAddress(parts.hostname or "127.0.0.1", port))
    if not out:
        raise ValueError(f"empty broker URL: {url!r}")
    return out


def parse_broker_url(url: str) -> tuple[str, int]:
    """``(host, port)`` of the first broker of ``url`` (see :func:`broker_addresses`)."""
    first = broker_addresses(url)[0]
    return first.host, first.port


def bootstrap_servers(url: str | Iterable[str]) -> str:
    """``h1:p1,h2:p2`` for raw clients (aiokafka) from any broker URL."""
    return ",".join(a.bootstrap for a in broker_addresses(url))


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
    suppressions: str = "sms.suppressions"  # contract §11


_TOPIC_ENV = {
    "campaigns": "SMSTALLY_TOPIC_CAMPAIGNS",
    "message_sent": "SMSTALLY_TOPIC_MESSAGE_SENT",
    "dlr": "SMSTALLY_TOPIC_DLR",
    "unsubscribes": "SMSTALLY_TOPIC_UNSUBSCRIBES",
    "campaign_stats": "SMSTALLY_TOPIC_CAMPAIGN_STATS",
    "message_status": "SMSTALLY_TOPIC_MESSAGE_STATUS",
    "removals": "SMSTALLY_TOPIC_REMOVALS",
    "dead_letter": "SMSTALLY_TOPIC_DEAD_LETTER",
    "suppressions": "SMSTALLY_TOPIC_SUPPRESSIONS",
}


@dataclass(frozen=True)
class Settings:
    broker: str = DEFAULT_BROKER_URL
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
    # The domain's defaults (processors/), in the hours the environment speaks.
    pending_timeout_h: float = DEFAULT_PENDING_TIMEOUT_MS / HOUR_MS
    attribution_window_h: float = DEFAULT_ATTRIBUTION_WINDOW_MS / HOUR_MS
    orphan_window_h: float = DEFAULT_ORPHAN_WINDOW_MS / HOUR_MS
    max_poll_records: int = 500  # records per fetched batch handed to the pipeline
    # Bytes a fetch may bring per partition. Prefetched responses sit in memory until read:
    # with Faust's 1 MB and ~30 partitions that was ~25 MB of a catching-up worker's heap.
    # Kafka returns a larger first record batch anyway (KIP-74), so this never blocks.
    max_fetch_partition_bytes: int = 256 * 1024
    fetch_max_wait_ms: int | None = None  # None: the broker flavor's (streams.app)
    log_level: str = "info"
    # Inputs on another partition than murmur2(key) (contract §1, processors/placement).
    input_partitioning: str = PARTITIONING[0]
    # Contract §11's work (delivery time, breakdowns, suppressions): off only to measure it.
    insights: bool = True
    topics: TopicNames = field(default_factory=TopicNames)

    def __post_init__(self) -> None:
        if self.input_partitioning not in PARTITIONING:
            raise ValueError(
                f"SMSTALLY_INPUT_PARTITIONING must be one of {', '.join(PARTITIONING)}, not {self.input_partitioning!r}"
            )

    @property
    def bootstrap(self) -> str:
        """host:port list for raw clients (aiokafka) from Faust-style ``kafka://a:1;b:2`` URLs."""
        return bootstrap_servers(self.broker)

    @property
    def phone_events_topic(self) -> str:
        return f"{self.app_id}-phone-events"

    @property
    def campaign_events_topic(self) -> str:
        return f"{self.app_id}-campaign-events"

    @property
    def rerouted_messages_topic(self) -> str:
        """Message inputs forwarded to the partition of their message (processors/topology)."""
        return f"{self.app_id}-rerouted-messages"

    def with_(self, **kw: Any) -> Settings:
        return replace(self, **kw)


def _get(env: Mapping[str, str], name: str) -> str | None:
    v = env.get(name)
    return v if v not in (None, "") else None


def _on_off(env: Mapping[str, str], name: str, default: bool) -> bool:
    v = (_get(env, name) or "").lower()
    if not v:
        return default
    if v in ("on", "true", "1", "yes"):
        return True
    if v in ("off", "false", "0", "no"):
        return False
    raise ValueError(f"{name} must be on or off, not {v!r}")


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
        max_poll_records=int(_get(env, "SMSTALLY_MAX_POLL_RECORDS") or d.max_poll_records),
        max_fetch_partition_bytes=int(_get(env, "SMSTALLY_MAX_FETCH_PARTITION_BYTES") or d.max_fetch_partition_bytes),
        fetch_max_wait_ms=int(_get(env, "SMSTALLY_FETCH_MAX_WAIT_MS") or 0) or None,
        log_level=(_get(env, "SMSTALLY_LOG_LEVEL") or d.log_level).lower(),
        input_partitioning=(_get(env, "SMSTALLY_INPUT_PARTITIONING") or d.input_partitioning).lower(),
        insights=_on_off(env, "SMSTALLY_INSIGHTS", d.insights),
        topics=topics,
    )
