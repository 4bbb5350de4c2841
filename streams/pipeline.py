"""The Faust runtime of the topology: topics -> topology -> tables -> output topics.

Everything with a rule in it lives in ``processors`` (the routes, the stages, the output
records: ``processors.topology``); this module only hands each fetched batch of one
partition (``streams.consumer``) to the topology's route for its topic, persists what the
batch wrote to its store (a changelogged table, each key written once per batch), ships
what it produced (``streams.outbox``), and runs the topology's timers and recovery entry
points. Per-partition stages are rebuilt from their table after every recovery, which is
what makes derived counters safe.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, cast

import faust
from faust.types import TP

from processors import state_codec
from processors.campaign_stage import CampaignState
from processors.message_fold import HOUR_MS, MessageState
from processors.phone_stage import PhoneState
from processors.status_mapping import StatusMapper
from processors.topology import Names, Record, Route, Stores, Topology
from schemas.codec import AvroCodec

from . import metrics
from .adapters import faust_internals
from .config import Settings
from .consumer import BatchConsumer
from .heap import settle_after_recovery
from .outbox import Outbox
from .readiness import CatchUp
from .stores import TableStore
from .topics import TopicPlan

log = logging.getLogger("smstally")


# Faust's RocksDB defaults (64 MB x 3 write buffers, a 2 GB block cache, per partition and
# table) are sized for a dedicated host; twelve databases per worker then take gigabytes.
# Values are small JSON documents read mostly right after they were written.
ROCKSDB_OPTIONS = {
    "write_buffer_size": 4 * 1024**2,
    "max_write_buffer_number": 2,
    "block_cache_size": 2 * 1024**2,
    "target_file_size_base": 16 * 1024**2,
}


def topology_names(s: Settings) -> Names:
    """The configured topic names, as the topology routes by them."""
    return Names(
        **dataclasses.asdict(s.topics),
        phone_events=s.phone_events_topic,
        campaign_events=s.campaign_events_topic,
        rerouted_messages=s.rerouted_messages_topic,
    )


class TableStores(Stores):
    """The topology's stores as changelogged tables: a partition's states are read from its
    own RocksDB database, streamed (a million messages would take gigabytes as objects)."""

    messages: TableStore
    phones: TableStore
    campaigns: TableStore

    def message_states(self, partition: int) -> Iterable[MessageState]:
        return self.messages.states(partition)

    def message_watermark(self, partition: int) -> int | None:
        if not self.messages.partitioned:
            return None
        return max((state_codec.message_event_time(raw) for raw in self.messages.raw_states(partition)), default=0)

    def phone_states(self, partition: int) -> Iterable[PhoneState]:
        return self.phones.states(partition)

    def campaign_states(self) -> Iterable[CampaignState]:
        return self.campaigns.states()


class Pipeline:
    """Holds the app, its topics and tables, and the topology of the partitions it owns."""

    def __init__(self, app: faust.App, s: Settings, plan: TopicPlan):
        self.app, self.s, self.plan = app, s, plan
        t = s.topics
        self.codec = AvroCodec(s.schema_registry_url)
        self.mapper = StatusMapper.from_env()
        raw: dict[str, Any] = dict(key_serializer="raw", value_serializer="raw")
        self.src_messages = app.topic(t.message_sent, t.dlr, partitions=plan.message_partitions, **raw)
        self.src_unsubscribes = app.topic(t.unsubscribes, partitions=plan.unsubscribe_partitions, **raw)
        self.src_campaigns = app.topic(t.campaigns, partitions=plan.campaign_partitions, **raw)
        self.phone_events = app.topic(s.phone_events_topic, partitions=plan.phone_partitions, **raw)
        self.campaign_events = app.topic(s.campaign_events_topic, partitions=plan.campaign_event_partitions, **raw)
        # Partition p with the message inputs' p and the message table's p (processors/topology).
        self.rerouted_messages = app.topic(s.rerouted_messages_topic, partitions=plan.message_partitions, **raw)
        self.out_stats = app.topic(t.campaign_stats, **raw)
        tbl: dict[str, Any] = dict(default=None, key_type=bytes, value_type=bytes, options=ROCKSDB_OPTIONS)
        self.t_messages = app.Table("messages", partitions=plan.message_partitions, **tbl)
        self.t_phones = app.Table("phones", partitions=plan.phone_partitions, **tbl)
        self.t_campaigns = app.Table("campaigns", partitions=plan.campaign_event_partitions, **tbl)
        pid = os.getpid()

        def writer() -> bytes:
            return b"pid %d gen %d" % (pid, app.consumer_generation_id)

        self.messages = TableStore(self.t_messages, state_codec.encode_message, state_codec.decode_message, writer)
        self.phones = TableStore(self.t_phones, state_codec.encode_phone, state_codec.decode_phone, writer)
        self.campaigns_store = TableStore(
            self.t_campaigns, state_codec.encode_campaign, state_codec.decode_campaign, writer
        )
        self.stores = {"messages": self.messages, "phones": self.phones, "campaigns": self.campaigns_store}
        producer = faust_internals.aiokafka_producer(app)  # started by Faust after the app is built
        self.outbox = Outbox(producer)  # what the batch being handled produces
        self.timer_outbox = Outbox(producer)  # what the partial and stats timers produce
        self.topology = Topology(
            topology_names(s),
            self.codec,
            self.mapper,
            TableStores(self.messages, self.phones, self.campaigns_store),
            campaign_event_partitions=plan.campaign_event_partitions,
            input_partitions={
                t.message_sent: plan.message_partitions,
                t.dlr: plan.message_partitions,
                t.unsubscribes: plan.unsubscribe_partitions,
                t.campaigns: plan.campaign_partitions,
            },
            partitioning=s.input_partitioning,
            insights=s.insights,
            region=s.default_region,
            stats_interval_s=s.stats_interval_ms / 1000,
            max_record_bytes=app.conf.producer_max_request_size,
            pending_timeout_ms=int(s.pending_timeout_h * HOUR_MS),
            orphan_window_ms=int(s.orphan_window_h * HOUR_MS),
            attribution_window_ms=int(s.attribution_window_h * HOUR_MS),
            on_removal=lambda reason: metrics.REMOVALS.labels(reason).inc(),
            on_dead_letter=lambda kind: metrics.DEAD_LETTERS.labels(kind).inc(),
            on_mispartitioned=lambda topic, n: metrics.MISPARTITIONED.labels(topic).inc(n),
            on_rerouted=metrics.REROUTED.inc,
        )
        self.recovered = False
        self.catchup = CatchUp(app)
        self._wire()

    @property
    def campaigns(self) -> dict[str, CampaignState]:
        """The campaigns held by this worker (the stats endpoint)."""
        return self.topology.campaigns()

    # -- wiring -------------------------------------------------------------------
    def _wire(self) -> None:
        app = self.app
        # No agents: the consumer (streams.consumer) hands these topics' batches to handlers().
        for topic in (
            self.src_messages,
            self.src_unsubscribes,
            self.src_campaigns,
            self.phone_events,
            self.campaign_events,
            self.rerouted_messages,
        ):
            app.topics.add(topic)
        app.timer(self.s.partial_interval_ms / 1000, name="flush-partials")(self._flush_partials)
        app.timer(0.05, name="publish-stats")(self._publish_stats)
        self.t_messages.on_recover(self._recover_messages)
        self.t_phones.on_recover(self._recover_phones)
        self.t_campaigns.on_recover(self._recover_campaigns)
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]  # faust-streaming's stub

    def _assigned(self, topic: str) -> set[int]:
        return {tp.partition for tp in self.app.consumer.assignment() if tp.topic == topic}

    async def _on_revoked(self, sender: Any, *args: Any, **kw: Any) -> None:
        # Eager rebalancing: whatever we keep is rebuilt from the tables after recovery.
        self.recovered = False
        self.catchup.reset()
        self.topology.revoke()

    async def _recover_messages(self) -> None:
        started = time.perf_counter()
        assigned = self._assigned(self.s.topics.message_sent)
        n = self.topology.rebuild_messages(assigned)
        log.info(
            "message stages rebuilt for partitions %s (%d messages) in %.3f s",
            sorted(assigned),
            n,
            time.perf_counter() - started,
        )
        t, rerouted = self.s.topics, self.s.rerouted_messages_topic
        self._tell_restored(self.messages, (t.message_sent, t.dlr, rerouted), assigned)
        self.catchup.track(t.message_sent, t.dlr, rerouted, t.unsubscribes, t.campaigns)
        settle_after_recovery()  # the rebuilt stages: out of every later full collection
        self.recovered = True

    async def _recover_phones(self) -> None:
        assigned = self._assigned(self.s.phone_events_topic)
        self.topology.rebuild_phones(assigned)
        self._tell_restored(self.phones, (self.s.phone_events_topic,), assigned)
        self.catchup.track(self.s.phone_events_topic)

    async def _recover_campaigns(self) -> None:
        assigned = self._assigned(self.s.campaign_events_topic)
        # Every campaign is published again, once the log has been replayed (processors/campaign_stage).
        self.topology.rebuild_campaigns(assigned)
        self._tell_restored(self.campaigns_store, (self.s.campaign_events_topic,), assigned)
        self.catchup.track(self.s.campaign_events_topic)

    def _tell_restored(self, store: TableStore, topics: Sequence[str], partitions: set[int]) -> None:
        """Where each input partition's restored state ends, for the seek after recovery."""
        consumer = cast(BatchConsumer, self.app.consumer)
        for topic in topics:
            for p in partitions:
                last = store.progress(topic, p)
                consumer.restored_up_to(TP(topic, p), 0 if last is None else last + 1)

    async def ready(self) -> bool:
        """Recovered, not rebalancing, and caught up with the backlog found at assignment."""
        return bool(self.recovered and not self.app.rebalancing and await self.catchup.caught_up())

    # -- handlers (one call per fetched batch of one partition) --------------------
    def handlers(self) -> dict[str, Callable[[TP, Sequence[Record]], Awaitable[None]]]:
        return {topic: self._handler(route) for topic, route in self.topology.routes.items()}

    def _handler(self, route: Route) -> Callable[[TP, Sequence[Record]], Awaitable[None]]:
        """Decode and fold (the topology's route), persist (the store's batch), ship (the outbox)."""
        process, counted, outbox = route.process, route.input, self.outbox
        add = outbox.add
        store = None if route.store is None else self.stores[route.store]

        async def ship(tp: TP, folded: int) -> None:
            if counted:  # input records folded (dead letters are counted apart)
                metrics.EVENTS.labels(tp.topic).inc(folded)
            await outbox.ship()

        if store is None:

            async def handle(tp: TP, records: Sequence[Record]) -> None:
                dead = process(tp.partition, records, add)
                await ship(tp, len(records) - dead)

            return handle

        async def handle_and_persist(tp: TP, records: Sequence[Record]) -> None:
            with store.for_batch(tp.partition):
                dead = process(tp.partition, records, add)
                store.flush(outbox, tp, records[-1].offset)
            await ship(tp, len(records) - dead)

        return handle_and_persist

    def on_batch_error(self, tp: TP) -> None:
        """A handler failed half way: forget its held writes and re-derive what it touched.

        The consumer then re-reads the batch from its first offset (states are idempotent
        under replay), so a bug costs a retry and a loud log line, never a count.
        """
        for store in self.stores.values():
            store.discard_pending()
        self.outbox.clear()
        self.topology.on_batch_error(tp.topic, tp.partition)

    # -- timers -------------------------------------------------------------------
    async def _flush_partials(self) -> None:
        outbox = self.timer_outbox
        for flush in self.topology.flush_partials(int(time.time() * 1000)):
            try:
                self.topology.emit(flush.outs, outbox.add)
                await outbox.ship()
            except Exception:  # noqa: BLE001 - a timer must not take the worker down
                outbox.clear()
                flush.retry()  # try again on the next tick
                log.exception("publishing partials failed; will retry")
                return

    async def _publish_stats(self) -> None:
        """Throttled per campaign, and always after the last change (processors/stats_throttle)."""
        topology = self.topology
        try:
            if not topology.stats_waiting() or not await self.catchup.caught_up(self.s.campaign_events_topic):
                return
        except Exception:  # noqa: BLE001 - e.g. a rebalance under our feet: retried next tick
            log.exception("checking the campaign-events backlog failed; will retry")
            return
        for cid in topology.take_due_stats(time.monotonic()):  # taken before any await: see the module
            try:
                out = topology.stats_record(cid)
                if out is None:
                    continue
                await self.out_stats.send(key=out[0], value=out[1])
            except Exception:  # noqa: BLE001 - e.g. a rebalance under our feet: retried next tick
                topology.stats_failed(cid)
                log.exception("publishing the stats of %s failed; will retry", cid)
                continue
            metrics.STATS_PUBLISHED.inc()
