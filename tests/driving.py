"""The production topology (processors.topology) in the in-memory driver (processors.driver),
configured as a fresh install is (the contract's topic names, the default internal ones),
fed with Avro records keyed as the contract says, read back by decoding its output topics.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from processors.driver import Driver, PartitionStore
from processors.partitioner import Partitioner
from processors.status_mapping import StatusMapper
from processors.topology import Stores, Topology
from schemas.codec import AvroCodec
from streams.config import Settings
from streams.pipeline import topology_names

SETTINGS = Settings()
NAMES = topology_names(SETTINGS)
CODEC = AvroCodec()
MAX_RECORD_BYTES = 1_048_576  # Kafka's default max.request.size (Faust's producer_max_request_size)
RECORD_OF = {
    NAMES.campaigns: "smstally.CampaignLaunched",
    NAMES.message_sent: "smstally.MessageSent",
    NAMES.dlr: "smstally.DeliveryReceipt",
    NAMES.unsubscribes: "smstally.Unsubscribe",
}
KEY_OF = {
    NAMES.campaigns: "campaign_id",
    NAMES.message_sent: "message_id",
    NAMES.dlr: "message_id",
    NAMES.unsubscribes: "phone",
}


def topology(
    partitions: int,
    stores: Stores | None = None,
    timeout: int | None = None,
    region: str = "FR",
    clock: Callable[[], int] | None = None,
    partitioning: str = "auto",
    insights: bool = True,
) -> Topology:
    kw: dict[str, Any] = {} if timeout is None else {"pending_timeout_ms": timeout}
    if clock is not None:
        kw["clock"] = clock
    return Topology(
        NAMES,
        CODEC,
        StatusMapper(),
        stores or Stores({}, {}, {}),
        campaign_event_partitions=partitions,
        input_partitions=dict.fromkeys(RECORD_OF, partitions),
        region=region,
        partitioning=partitioning,
        insights=insights,
        stats_interval_s=0.0,
        max_record_bytes=MAX_RECORD_BYTES,
        **kw,
    )


def driver(
    partitions: int,
    stores: Stores | None = None,
    timeout: int | None = None,
    partitioning: str = "auto",
    insights: bool = True,
) -> Driver:
    """Every topic with ``partitions`` partitions (the outputs included); stores per partition."""
    clock = _Clock()
    stores = stores or Stores(PartitionStore(), PartitionStore(), PartitionStore())
    t = topology(partitions, stores, timeout, clock=clock, partitioning=partitioning, insights=insights)
    return Driver(t, {}, default_partitions=partitions, clock=clock)


class _Clock:
    """Processing time for the driver: a counter (stats' updated_at is then deterministic)."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        self.now += 1
        return self.now


def key_of(topic: str, rec: dict) -> bytes:
    """The contract's key (§1); a broken record's key is whatever its field holds."""
    v = rec.get(KEY_OF[topic])
    return v.encode() if isinstance(v, str) else b""


def feed(d: Driver, topic: str, rec: dict, place: Partitioner | None = None) -> None:
    """A producer publishes ``rec`` to input ``topic`` (Avro, keyed by the contract) with
    Kafka's default partitioner or ``place``; the worker handles it."""
    d.send(topic, key_of(topic, rec), CODEC.encode(RECORD_OF[topic], rec), place)


def decoded(d: Driver, topic: str) -> list[tuple[str | None, dict]]:
    """The records of an output topic, decoded, partition by partition in offset order."""
    return [(None if r.key is None else r.key.decode(), CODEC.decode(r.value)[1]) for r in d.records(topic)]


def latest(d: Driver, topic: str) -> dict[str, dict]:
    """The compacted view of an output topic: the latest record per key."""
    return {k: v for k, v in decoded(d, topic) if k is not None}


@functools.cache
def _parser(region: str) -> Topology:
    return topology(1, region=region)


def decode(topic: str, raw: bytes | None) -> dict:
    """The topology's decode of a raw input value (DecodeError if it holds no record of the topic)."""
    return _parser("FR").decode(topic, raw)


def parse(topic: str, record: dict, region: str = "FR") -> Any:
    """The topology's parse of a decoded input record (InvalidEvent if it breaks the contract)."""
    return _parser(region).parse(topic, record)
