"""What one batch produces, shipped to Kafka as one record batch per destination partition.

Faust's ``Topic.send`` costs tens of microseconds per record (futures, callbacks, its own
buffer); aiokafka's ``send_batch`` takes a whole list at once. The producer is Faust's own
aiokafka producer, so Faust's commit, which flushes that producer before it commits
offsets, still waits for everything a batch produced: at least once is unchanged.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable
from typing import Any

from processors.partitioner import partition_for

from .adapters import aiokafka_internals

log = logging.getLogger("smstally")


class Outbox:
    def __init__(self, producer: Callable[[], Any]):
        self._producer = producer  # Faust starts its producer after the app is built
        self._records: dict[tuple[str, int | None], list[tuple[bytes | None, bytes]]] = {}
        self._partitions: dict[str, list[int]] = {}
        self._on_delivered: dict[str, Callable[[int, int], None]] = {}

    def on_delivered(self, topic: str, callback: Callable[[int, int], None]) -> None:
        """Call ``callback(partition, last_offset)`` once each batch sent to ``topic`` is written."""
        self._on_delivered[topic] = callback

    def add(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> None:
        """Queue a record; keyed records go where Kafka's default partitioner puts them."""
        self._records.setdefault((topic, partition), []).append((key, value))

    def clear(self) -> None:
        self._records.clear()

    async def ship(self) -> None:
        records, self._records = self._records, {}
        if not records:
            return
        producer = self._producer()
        by_tp: dict[tuple[str, int], list[tuple[bytes | None, bytes]]] = {}
        for (topic, partition), items in records.items():
            if partition is not None:
                by_tp.setdefault((topic, partition), []).extend(items)
                continue
            parts = self._partitions.get(topic)
            if parts is None:
                parts = self._partitions[topic] = sorted(
                    await aiokafka_internals.wait_for_partitions(producer.client, topic)
                )
            n = len(parts)
            for key, value in items:  # a dead letter may have no key: any partition, as aiokafka
                p = parts[partition_for(key, n)] if key is not None else random.choice(parts)
                by_tp.setdefault((topic, p), []).append((key, value))
        for (topic, partition), items in by_tp.items():
            callback = self._on_delivered.get(topic)
            batch, n = producer.create_batch(), 0
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    await self._send(producer, batch, n, topic, partition, callback)
                    batch, n = producer.create_batch(), 0
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        raise ValueError(f"a record of {len(value)} bytes does not fit in a batch for {topic}")
                n += 1
            await self._send(producer, batch, n, topic, partition, callback)

    async def _send(
        self, producer: Any, batch: Any, n: int, topic: str, partition: int, callback: Callable[[int, int], None] | None
    ) -> None:
        future = await producer.send_batch(batch, topic, partition=partition)

        def done(f: Any) -> None:
            if f.cancelled():
                return
            if f.exception() is not None:
                self._exit_on_failure(topic, partition, f.exception())
            elif callback is not None:
                callback(partition, f.result().offset + n - 1)

        future.add_done_callback(done)

    @staticmethod
    def _exit_on_failure(topic: str, partition: int, exc: BaseException) -> None:
        """A batch the producer gave up on (after its retries) must never be committed past.

        Faust commits after flushing the producer, and a flush does not fail when a batch
        did. This callback runs before the flush returns: ``send_batch`` hands back a
        shield of the batch's future, created in the same step as the batch, so the
        shield's callback is on the batch future before any flush can wait on it; asyncio
        runs callbacks in the order they were added, and each hop (shield -> this callback,
        flush's wait -> the flushing task) is one ``call_soon``, queued in that order. So
        exiting here means the offsets that produced the batch are never committed: the
        restarted worker replays them.
        """
        log.critical("could not deliver a batch to %s[%d]: %r; exiting so that it is replayed", topic, partition, exc)
        logging.shutdown()
        os._exit(70)
