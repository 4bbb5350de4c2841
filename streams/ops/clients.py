"""Plain aiokafka clients for the CLI: publishing a scenario, reading the output topics.

These are the tools of an upstream producer and a downstream consumer, not of the worker,
so they use aiokafka directly (no consumer group: they read from the beginning).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from processors.partitioner import PARTITIONERS
from schemas.codec import AvroCodec, DecodeError

from ..compat import tansu
from ..config import Settings

if TYPE_CHECKING:
    from simulator.scenario import Emit


def topic_for(s: Settings, default_name: str) -> str:
    t = s.topics
    return {
        "sms.campaigns": t.campaigns,
        "sms.message-sent": t.message_sent,
        "sms.dlr": t.dlr,
        "sms.unsubscribes": t.unsubscribes,
    }.get(default_name, default_name)


AiokafkaPartitioner = Callable[[bytes | None, Sequence[int], Sequence[int]], int]


def aiokafka_partitioner(name: str) -> AiokafkaPartitioner | None:
    """An aiokafka ``partitioner=`` placing keys as the named client library does
    (processors.partitioner.PARTITIONERS; None: aiokafka's own default, murmur2)."""
    if name not in PARTITIONERS:
        raise ValueError(f"unknown partitioner {name!r}: one of {', '.join(PARTITIONERS)}")
    if name == "murmur2":
        return None
    place = PARTITIONERS[name]

    def partitioner(key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
        if key is None:  # as librdkafka's consistent_random and Sarama do
            return random.choice(list(available or all_partitions))
        return sorted(all_partitions)[place(key, len(all_partitions))]

    return partitioner


async def publish(
    s: Settings,
    emits: Iterable[Emit],
    codec: AvroCodec | None = None,
    partitioners: Mapping[str, str] | None = None,
) -> int:
    """Publish simulator ``Emit`` records in order; returns how many were sent.

    ``partitioners`` maps a topic (its contract name) to the partitioner of the producer
    that publishes it (``crc32``: a librdkafka client): one producer per partitioner, as
    two upstream services on two client libraries would. The others use murmur2."""
    codec = codec or AvroCodec(s.schema_registry_url)
    by_topic = {topic_for(s, t): name for t, name in (partitioners or {}).items()}
    producers: dict[str, AIOKafkaProducer] = {}
    for name in {"murmur2", *by_topic.values()}:
        kw: dict[str, Any] = {}
        place = aiokafka_partitioner(name)
        if place is not None:
            kw["partitioner"] = place
        producers[name] = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024, **kw
        )
    n = 0
    try:
        for producer in producers.values():
            await producer.start()
        pending = []
        for e in emits:
            topic = topic_for(s, e.topic)
            value = codec.encode(e.record_name, e.value, subject=f"{topic}-value")
            producer = producers[by_topic.get(topic, "murmur2")]
            pending.append(await producer.send(topic, key=e.key.encode(), value=value))
            n += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        for producer in producers.values():
            await producer.flush()
    finally:
        for producer in producers.values():
            await producer.stop()
    return n


class ReadRecord(NamedTuple):
    """One record read back: the value decoded, or its raw bytes when it is not Avro."""

    key: bytes | None
    value: dict[str, Any] | bytes
    partition: int
    offset: int


class TopicReader:
    """Reads a whole output topic from the beginning and keeps following it."""

    def __init__(self, s: Settings, topic: str, codec: AvroCodec | None = None):
        tansu.apply(s.broker_flavor)
        self.s, self.topic = s, topic
        self.codec = codec or AvroCodec(s.schema_registry_url)
        self.consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=s.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            group_id=None,
            fetch_max_wait_ms=100,
        )

    async def start(self) -> None:
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()

    async def __aenter__(self) -> TopicReader:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def poll_records(self, timeout_ms: int = 200) -> list[ReadRecord]:
        """What the next fetch brings, undecodable values (internal topics' JSON) as raw bytes."""
        out = []
        batches = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=10000)
        for records in batches.values():
            for r in records:
                value: dict[str, Any] | bytes
                try:
                    _, value = self.codec.decode(r.value)
                except DecodeError:
                    value = r.value
                out.append(ReadRecord(r.key, value, r.partition, r.offset))
        return out

    async def poll(self, timeout_ms: int = 200) -> list[tuple[bytes | None, dict[str, Any]]]:
        """(key, decoded value) of what the next fetch brings; values that are not Avro are skipped."""
        return [(r.key, r.value) for r in await self.poll_records(timeout_ms) if isinstance(r.value, dict)]

    async def read_all(self, idle_s: float = 1.0) -> list[ReadRecord]:
        """Everything until ``idle_s`` passes without a new record."""
        out: list[ReadRecord] = []
        last = time.monotonic()
        while time.monotonic() - last < idle_s:
            got = await self.poll_records()
            if got:
                last = time.monotonic()
                out += got
        return out


class StatsView:
    """The latest CampaignStats per campaign, by version (what a downstream consumer keeps)."""

    def __init__(self, s: Settings):
        self.reader = TopicReader(s, s.topics.campaign_stats)
        self.latest: dict[str, dict[str, Any]] = {}
        self.regressions = 0

    async def __aenter__(self) -> StatsView:
        await self.reader.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.reader.stop()

    async def refresh(self, timeout_ms: int = 200) -> dict[str, dict[str, Any]]:
        for _, rec in await self.reader.poll(timeout_ms):
            cur = self.latest.get(rec["campaign_id"])
            if cur is None or rec["version"] >= cur["version"]:
                self.latest[rec["campaign_id"]] = rec
            else:
                self.regressions += 1  # a redelivery of an older version: ignored, as downstream should
        return self.latest
