"""The projector: the output topics, read from the offsets in the database, into the read model.

No consumer group: the database, not Kafka, remembers where this read model is (the
offsets are committed with the rows), and every API process reads every partition.
Fetching and decoding overlap with writing: while the writer thread commits one batch,
the records fetched meanwhile are decoded (in a thread of their own) into the next, which
the writer takes as a whole when it is free. A batch is thus everything that arrived during
the previous write (up to ``MAX_PENDING_RECORDS``): small when the projector keeps up, so
the live feed waits for no more than one write, and large while it catches up, when fewer,
larger transactions cost less per record (SQLite writes each dirty page once per commit).
Each batch is deduplicated in memory, written in one transaction with its offsets, and only
then announced to the live feed.

Readiness (contract §10): caught up with the end offsets found at start, and the broker
answering now. A broker that goes away leaves the read model serving what it has.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from schemas.codec import AvroCodec, DecodeError

from .db import Database
from .hub import Hub
from .metrics import ApiMetrics
from .settings import ApiSettings
from .store import Batch, ReadModelWriter

log = logging.getLogger("smstally.api.projector")

#: Decoded records that wait for the writer, at most (then fetching pauses): bounds memory
#: (~1 kB a record) and the size of one transaction.
MAX_PENDING_RECORDS = 20_000

_RECORD = {
    "campaign_stats": "smstally.CampaignStats",
    "message_status": "smstally.MessageStatus",
    "removals": "smstally.AddressBookRemoval",
    "suppressions": "smstally.Suppression",
}


@dataclass
class ProjectorStatus:
    started: float = field(default_factory=time.monotonic)
    topics_found: bool = False
    start_ends: dict = field(default_factory=dict)  # TopicPartition -> end offset at start
    positions: dict = field(default_factory=dict)  # TopicPartition -> next offset committed
    caught_up: bool = False
    broker_ok: bool = False
    broker_checked: float = 0.0
    db_ok: bool = True
    generation: int = 0  # committed batches: what read caches are valid for
    last_error: str | None = None

    def lagging(self) -> dict[str, int]:
        return {
            f"{tp.topic}/{tp.partition}": end - self.positions.get(tp, 0)
            for tp, end in self.start_ends.items()
            if self.positions.get(tp, 0) < end
        }

    @property
    def ready(self) -> bool:
        return self.caught_up and self.broker_ok and self.db_ok

    def body(self) -> dict:
        out: dict = {"ready": self.ready, "caught_up": self.caught_up, "broker": self.broker_ok, "database": self.db_ok}
        if not self.topics_found:
            out["waiting"] = "for the output topics to exist"
        lag = self.lagging()
        if lag:
            out["lagging"] = lag
        if self.last_error:
            out["last_error"] = self.last_error
        return out


class Projector:
    def __init__(
        self, s: ApiSettings, db: Database, hub: Hub, metrics: ApiMetrics, status: ProjectorStatus | None = None
    ):
        self.s, self.db, self.hub, self.metrics = s, db, hub, metrics
        self.status = status or ProjectorStatus()
        self.writer = ReadModelWriter(db)
        self.codec = AvroCodec(s.stream.schema_registry_url)
        t = s.stream.topics
        self.kinds = {
            t.campaign_stats: "campaign_stats",
            t.message_status: "message_status",
            t.removals: "removals",
            t.suppressions: "suppressions",
        }
        self._stopping = asyncio.Event()
        # One thread writes, so it keeps one connection (and one SQLite writer).
        self._write_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readmodel-writer")
        # One thread decodes, off the event loop the requests share (a 5 000-record fetch takes
        # ~50 ms), and owns ``_pending``: decoding into it and taking it are serialised there.
        self._decode_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readmodel-decoder")
        self._pending = Batch()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        from aiokafka import AIOKafkaConsumer

        from streams.compat import tansu

        tansu.apply(self.s.stream.broker_flavor)
        wait_ms = tansu.fetch_max_wait_ms(self.s.stream.broker_flavor) or 100
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.s.stream.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=wait_ms,
            max_partition_fetch_bytes=1024 * 1024,
            request_timeout_ms=10000,
            retry_backoff_ms=200,
        )
        while not self._stopping.is_set():
            try:
                await consumer.start()
                break
            except Exception as exc:  # noqa: BLE001 - broker not there yet: wait, serve what we have
                self.status.broker_ok = False
                self.status.last_error = f"broker: {exc}"
                log.warning("waiting for the broker at %s: %s", self.s.stream.broker, exc)
                await self._sleep(2.0)
        if self._stopping.is_set():
            return
        try:
            tps = await self._assign(consumer)
            if tps is None:
                return
            health = asyncio.create_task(self._watch_broker(consumer, tps))
            try:
                await self._consume(consumer)
            finally:
                health.cancel()
        finally:
            await consumer.stop()
            self._write_thread.shutdown(wait=True)
            self._decode_thread.shutdown(wait=True)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass

    async def _assign(self, consumer) -> list | None:
        from aiokafka.structs import TopicPartition

        while not self._stopping.is_set():
            try:
                existing = await consumer.topics()
                missing = [t for t in self.kinds if t not in existing]
                if not missing:
                    break
                log.info("waiting for the output topics %s to exist", ", ".join(missing))
            except Exception as exc:  # noqa: BLE001
                log.warning("cannot read the topic list: %s", exc)
            await self._sleep(1.0)
        else:
            return None
        tps = [TopicPartition(t, p) for t in self.kinds for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(tps)
        stored = await asyncio.to_thread(self.writer.offsets)
        for tp in tps:
            pos = stored.get((tp.topic, tp.partition))
            if pos is None:
                await consumer.seek_to_beginning(tp)
                # The log's start, not 0: a partition whose records all expired is caught up.
                pos = await consumer.position(tp)
            else:
                consumer.seek(tp, pos)
            self.status.positions[tp] = pos
        ends = await consumer.end_offsets(tps)
        self.status.start_ends = dict(ends)
        self.status.topics_found = True
        self.status.broker_ok = True
        self.status.broker_checked = time.monotonic()
        self._check_caught_up()
        log.info(
            "projecting %d partitions of %s into %s (resuming at %d stored offsets)",
            len(tps),
            ", ".join(self.kinds),
            self.db.target.display,
            len(stored),
        )
        return tps

    async def _watch_broker(self, consumer, tps: list) -> None:
        """The broker answers or not; the lag for /metrics comes with the answer."""
        while True:
            try:
                ends = await asyncio.wait_for(consumer.end_offsets(tps), 5.0)
                self.status.broker_ok = True
                self.status.broker_checked = time.monotonic()
                lag: dict[str, int] = {}
                for tp, end in ends.items():
                    lag[tp.topic] = lag.get(tp.topic, 0) + max(0, end - self.status.positions.get(tp, 0))
                for topic, n in lag.items():
                    self.metrics.lag.labels(topic).set(n)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - no answer: not ready, keep serving
                if self.status.broker_ok:
                    log.warning("the broker does not answer (%s); serving the read model as it is", type(exc).__name__)
                self.status.broker_ok = False
                self.status.last_error = f"broker: {type(exc).__name__}"
            await asyncio.sleep(1.0)

    def _check_caught_up(self) -> None:
        if not self.status.caught_up and not self.status.lagging():
            self.status.caught_up = True
            log.info(
                "caught up with the topics' end offsets found at start (%.1fs after start)",
                time.monotonic() - self.status.started,
            )

    async def _consume(self, consumer) -> None:
        fed, room = asyncio.Event(), asyncio.Event()
        tasks = {asyncio.create_task(self._fetch(consumer, fed, room)), asyncio.create_task(self._write(fed, room))}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()  # the fetcher ends when stopping; anything else is an error to raise
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _fetch(self, consumer, fed: asyncio.Event, room: asyncio.Event) -> None:
        """Fetch and decode into the pending batch, until it is full: then wait for the writer."""
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            # Cleared before the check, and set by the writer after every take: a take the check
            # did not see sets it again, so no wake-up is lost.
            room.clear()
            if self._pending.records >= MAX_PENDING_RECORDS:
                await self._until_set(room)
                continue
            got = await consumer.getmany(timeout_ms=200, max_records=5000)
            if got:
                await loop.run_in_executor(self._decode_thread, self._decode, got)
                fed.set()

    async def _write(self, fed: asyncio.Event, room: asyncio.Event) -> None:
        """Take whatever is decoded, commit it, repeat: one transaction in flight at a time."""
        loop = asyncio.get_running_loop()
        while True:
            await fed.wait()
            fed.clear()
            batch = await loop.run_in_executor(self._decode_thread, self._take)
            room.set()  # ``_pending`` is empty again
            if batch:
                await self._apply(batch)
                self._committed(batch)

    async def _until_set(self, event: asyncio.Event) -> None:
        """Until ``event`` is set, or stopping."""
        waits = {asyncio.ensure_future(event.wait()), asyncio.ensure_future(self._stopping.wait())}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    def _take(self) -> Batch:
        batch, self._pending = self._pending, Batch()
        return batch

    def _committed(self, batch: Batch) -> None:
        from aiokafka.structs import TopicPartition

        self.status.generation += 1
        for (topic, partition), nxt in batch.offsets.items():
            self.status.positions[TopicPartition(topic, partition)] = nxt
        self._check_caught_up()
        if batch.campaigns:
            self.hub.publish(list(batch.campaigns.values()))

    def _decode(self, got: dict) -> None:
        batch = self._pending
        m = self.metrics
        for tp, records in got.items():
            kind = self.kinds[tp.topic]
            add = {
                "campaign_stats": batch.add_stats,
                "message_status": batch.add_status,
                "removals": batch.add_removal,
                "suppressions": batch.add_suppression,
            }[kind]
            n_bad = 0
            for r in records:
                try:
                    _, value = self.codec.decode(r.value, _RECORD[kind]) if r.value is not None else (None, None)
                    if value is not None:
                        add(value)
                except (DecodeError, KeyError, TypeError) as exc:
                    n_bad += 1
                    log.warning(
                        "skipping an undecodable record at %s/%d offset %d: %s",
                        tp.topic,
                        tp.partition,
                        r.offset,
                        type(exc).__name__ if not isinstance(exc, DecodeError) else exc,
                    )
                batch.advance(tp.topic, tp.partition, r.offset)
            m.records.labels(tp.topic).inc(len(records) - n_bad)
            if n_bad:
                m.undecodable.labels(tp.topic).inc(n_bad)

    async def _apply(self, batch: Batch) -> None:
        """Until it is in: a database that fails is retried, never skipped (that would lose rows)."""
        delay = 0.5
        while True:
            t0 = time.perf_counter()
            try:
                await asyncio.get_running_loop().run_in_executor(self._write_thread, self.writer.apply, batch)
                self.metrics.batch_seconds.observe(time.perf_counter() - t0)
                if not self.status.db_ok:
                    log.info("the read model's database is writable again")
                self.status.db_ok = True
                return
            except Exception as exc:  # noqa: BLE001 - reported, retried
                self.status.db_ok = False
                self.status.last_error = f"database: {type(exc).__name__}: {exc}"[:300]
                log.error(
                    "cannot write to %s (%s); retrying in %.1fs", self.db.target.display, type(exc).__name__, delay
                )
                await asyncio.get_running_loop().run_in_executor(self._write_thread, self.db.reset_thread)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
