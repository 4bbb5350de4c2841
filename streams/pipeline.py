"""The Faust wiring: topics -> codec -> pure stage -> tables -> output topics.

Everything with a rule in it lives in ``processors``; this module only decodes, routes the
records of a fetched batch (``streams.consumer``) to the stage that owns their partition,
persists what the stage wrote to its store (a changelogged table, each key written once
per batch) and ships what it returned (``streams.outbox``). Per-partition stages are
rebuilt from their table after every recovery, which is what makes derived counters safe.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Awaitable, Callable, Sequence

import faust
from faust.types import TP

from processors import campaign_stage, state_codec
from processors.events import CampaignLaunched, DeliveryReceipt, InvalidEvent, MessageSent, Unsubscribe
from processors.message_fold import HOUR_MS
from processors.message_stage import MessageStage
from processors.outputs import CAMPAIGN_EVENT, DEAD_LETTER, MESSAGE_STATUS, PHONE_EVENT, REMOVAL, Out
from processors.phone_stage import PhoneStage
from processors.phones import mask
from processors.records import (
    Launch,
    SendIndexed,
    decode_campaign_event,
    decode_phone_event,
    encode_campaign_event,
    encode_internal,
    encode_phone_event,
)
from processors.stats_throttle import StatsThrottle
from processors.status_mapping import StatusMapper
from schemas.codec import AvroCodec, DecodeError

from . import metrics
from .config import Settings
from .heap import settle_after_recovery
from .outbox import Outbox
from .partitioner import partition_for
from .readiness import CatchUp
from .stores import TableStore
from .topics import TopicPlan

log = logging.getLogger("smstally")


# Faust's RocksDB defaults (64 MB x 3 write buffers, a 2 GB block cache, per partition and
# table) are sized for a dedicated host; twelve databases per worker then take gigabytes.
# Values are small JSON documents read mostly right after they were written.
ROCKSDB_OPTIONS = {"write_buffer_size": 4 * 1024**2, "max_write_buffer_number": 2,
                   "block_cache_size": 2 * 1024**2, "target_file_size_base": 16 * 1024**2}


def _now_ms() -> int:
    return int(time.time() * 1000)


class Pipeline:
    """Holds the app, its topics and tables, and the stages of the partitions it owns."""

    def __init__(self, app: faust.App, s: Settings, plan: TopicPlan):
        self.app, self.s, self.plan = app, s, plan
        t = s.topics
        self.codec = AvroCodec(s.schema_registry_url)
        self.mapper = StatusMapper.from_env()
        raw = dict(key_serializer="raw", value_serializer="raw")
        self.src_messages = app.topic(t.message_sent, t.dlr, partitions=plan.message_partitions, **raw)
        self.src_unsubscribes = app.topic(t.unsubscribes, partitions=plan.unsubscribe_partitions, **raw)
        self.src_campaigns = app.topic(t.campaigns, partitions=plan.campaign_partitions, **raw)
        self.phone_events = app.topic(s.phone_events_topic, partitions=plan.phone_partitions, **raw)
        self.campaign_events = app.topic(s.campaign_events_topic, partitions=plan.campaign_event_partitions, **raw)
        self.out_stats = app.topic(t.campaign_stats, **raw)
        tbl = dict(default=None, key_type=bytes, value_type=bytes, options=ROCKSDB_OPTIONS)
        self.t_messages = app.Table("messages", partitions=plan.message_partitions, **tbl)
        self.t_phones = app.Table("phones", partitions=plan.phone_partitions, **tbl)
        self.t_campaigns = app.Table("campaigns", partitions=plan.campaign_event_partitions, **tbl)
        pid = os.getpid()

        def writer() -> bytes:
            return b"pid %d gen %d" % (pid, app.consumer_generation_id)
        self.messages = TableStore(self.t_messages, state_codec.encode_message, state_codec.decode_message, writer)
        self.phones = TableStore(self.t_phones, state_codec.encode_phone, state_codec.decode_phone, writer)
        self.campaigns_store = TableStore(self.t_campaigns, state_codec.encode_campaign, state_codec.decode_campaign,
                                          writer)
        producer = app.producer._ensure_producer  # started by Faust after the app is built
        self.outbox = Outbox(producer)  # what the batch being handled produces
        self.dead_in_batch = 0
        self.timer_outbox = Outbox(producer)  # what the partial and stats timers produce
        self.names = {MESSAGE_STATUS: t.message_status, REMOVAL: t.removals, PHONE_EVENT: s.phone_events_topic,
                      CAMPAIGN_EVENT: s.campaign_events_topic}
        self.msg_stages: dict[int, MessageStage] = {}
        self.phone_stages: dict[int, PhoneStage] = {}
        self.campaigns: dict[str, campaign_stage.CampaignState] = {}
        self.stats_throttle = StatsThrottle(s.stats_interval_ms / 1000)
        self.recovered = False
        self.catchup = CatchUp(app)
        self.expected_record = {
            t.message_sent: "smstally.MessageSent", t.dlr: "smstally.DeliveryReceipt",
            t.unsubscribes: "smstally.Unsubscribe", t.campaigns: "smstally.CampaignLaunched",
        }
        self._wire()

    # -- wiring -------------------------------------------------------------------
    def _wire(self) -> None:
        app = self.app
        # No agents: the consumer (streams.consumer) hands these topics' batches to handlers().
        for topic in (self.src_messages, self.src_unsubscribes, self.src_campaigns, self.phone_events,
                      self.campaign_events):
            app.topics.add(topic)
        app.timer(self.s.partial_interval_ms / 1000, name="flush-partials")(self._flush_partials)
        app.timer(0.05, name="publish-stats")(self._publish_stats)
        self.t_messages.on_recover(self._recover_messages)
        self.t_phones.on_recover(self._recover_phones)
        self.t_campaigns.on_recover(self._recover_campaigns)
        app.on_partitions_revoked.connect(self._on_revoked)

    def _assigned(self, topic: str) -> set[int]:
        return {tp.partition for tp in self.app.consumer.assignment() if tp.topic == topic}

    async def _on_revoked(self, sender: Any = None, revoked: Any = None, **kw: Any) -> None:
        # Eager rebalancing: whatever we keep is rebuilt from the tables after recovery.
        self.recovered = False
        self.catchup.reset()
        self.msg_stages.clear()
        self.phone_stages.clear()
        self.campaigns.clear()
        self.stats_throttle.clear()

    @staticmethod
    def _rebuild(store: TableStore, assigned: set[int], make: Callable[[int], Any],
                 watermark_of: Callable[[bytes], int] | None = None) -> tuple[dict[int, Any], int]:
        """One stage per assigned partition, re-derived from that partition's stored states.

        States are streamed one partition at a time, never all held (a million messages
        would take gigabytes as objects); with ``watermark_of`` a first pass over the raw
        states finds the partition's watermark.
        """
        stages, n = {}, 0

        def counted(states: Any) -> Any:
            nonlocal n
            for st in states:
                n += 1
                yield st

        for p in sorted(assigned):
            stages[p] = stage = make(p)
            if watermark_of is None or not store.partitioned:
                stage.rebuild(counted(store.states(p)))
            else:
                watermark = max((watermark_of(raw) for raw in store.raw_states(p)), default=0)
                stage.rebuild(counted(store.states(p)), watermark)
        return stages, n

    async def _recover_messages(self) -> None:
        started = time.perf_counter()
        assigned = self._assigned(self.s.topics.message_sent)
        self.msg_stages, n = self._rebuild_messages(assigned)
        log.info("message stages rebuilt for partitions %s (%d messages) in %.3f s", sorted(assigned),
                 n, time.perf_counter() - started)
        t = self.s.topics
        self._tell_restored(self.messages, (t.message_sent, t.dlr), assigned)
        self.catchup.track(t.message_sent, t.dlr, t.unsubscribes, t.campaigns)
        settle_after_recovery()  # the rebuilt stages: out of every later full collection
        self.recovered = True

    def _rebuild_messages(self, partitions: set[int]) -> tuple[dict[int, MessageStage], int]:
        return self._rebuild(self.messages, partitions, self._message_stage, state_codec.message_event_time)

    def _message_stage(self, p: int) -> MessageStage:
        return MessageStage(p, self.messages, self.mapper, int(self.s.pending_timeout_h * HOUR_MS),
                            int(self.s.orphan_window_h * HOUR_MS))

    def _phone_stage(self, p: int) -> PhoneStage:
        return PhoneStage(p, self.phones, int(self.s.attribution_window_h * HOUR_MS))

    async def _recover_phones(self) -> None:
        assigned = self._assigned(self.s.phone_events_topic)
        self.phone_stages, _ = self._rebuild(self.phones, assigned, self._phone_stage)
        self._tell_restored(self.phones, (self.s.phone_events_topic,), assigned)
        self.catchup.track(self.s.phone_events_topic)

    async def _recover_campaigns(self) -> None:
        assigned = self._assigned(self.s.campaign_events_topic)
        n = self.plan.campaign_event_partitions
        self.campaigns = {st.campaign_id: st for st in self.campaigns_store.states()
                          if partition_for(st.campaign_id.encode(), n) in assigned}
        # A stats record may have been lost with the crash that preceded this recovery: publish
        # every campaign again, but only once the log has been replayed up to where it was, so
        # that no version older than one already published goes out (contract §6).
        for cid in self.campaigns:
            self.stats_throttle.mark(cid)
        self._tell_restored(self.campaigns_store, (self.s.campaign_events_topic,), assigned)
        self.catchup.track(self.s.campaign_events_topic)

    def _tell_restored(self, store: TableStore, topics: Sequence[str], partitions: set[int]) -> None:
        """Where each input partition's restored state ends, for the seek after recovery."""
        consumer = self.app.consumer
        for topic in topics:
            for p in partitions:
                last = store.progress(topic, p)
                consumer.restored_up_to(TP(topic, p), 0 if last is None else last + 1)

    async def ready(self) -> bool:
        """Recovered, not rebalancing, and caught up with the backlog found at assignment."""
        return bool(self.recovered and not self.app.rebalancing and await self.catchup.caught_up())

    # -- handlers (one call per fetched batch of one partition) --------------------
    def handlers(self) -> dict[str, Callable[[Any, Sequence[Any]], Awaitable[None]]]:
        t = self.s.topics
        return {t.message_sent: self._fold_messages, t.dlr: self._fold_messages,
                t.unsubscribes: self._route_unsubscribes, t.campaigns: self._route_campaigns,
                self.s.phone_events_topic: self._fold_phones, self.s.campaign_events_topic: self._fold_campaigns}

    def on_batch_error(self, tp: Any) -> None:
        """A handler failed half way: forget its held writes and re-derive what it touched.

        The consumer then re-reads the batch from its first offset (states are idempotent
        under replay), so a bug costs a retry and a loud log line, never a count.
        """
        for store in (self.messages, self.phones, self.campaigns_store):
            store.discard_pending()
        self.outbox.clear()
        self.dead_in_batch = 0
        if tp.topic in (self.s.topics.message_sent, self.s.topics.dlr):
            self.msg_stages.update(self._rebuild_messages({tp.partition})[0])
        elif tp.topic == self.s.phone_events_topic:
            self.phone_stages.update(self._rebuild(self.phones, {tp.partition}, self._phone_stage)[0])
        elif tp.topic == self.s.campaign_events_topic:
            n = self.plan.campaign_event_partitions
            for cid in [c for c in self.campaigns if partition_for(c.encode(), n) == tp.partition]:
                st = self.campaigns_store.get(cid)
                if st is not None:
                    self.campaigns[cid] = st

    def _decode(self, rec: Any, parse: Callable[[dict], Any]) -> Any | None:
        try:
            _, value = self.codec.decode(rec.value, expected=self.expected_record[rec.topic])
            return parse(value)
        except DecodeError as exc:
            self._dead_letter(rec, exc.kind, exc.reason)
        except InvalidEvent as exc:
            self._dead_letter(rec, exc.kind, exc.reason, exc.event_id)
        return None

    def _parse_message(self, rec: dict) -> MessageSent | DeliveryReceipt:
        if "outcome" in rec:
            return MessageSent.from_record(rec, self.s.default_region)
        return DeliveryReceipt.from_record(rec)

    async def _fold_messages(self, tp: Any, records: Sequence[Any]) -> None:
        stage = self.msg_stages.get(tp.partition)
        if stage is None:  # assigned but not yet rebuilt: cannot happen after recovery
            stage = self.msg_stages[tp.partition] = self._message_stage(tp.partition)
        decode, parse, emit = self._decode, self._parse_message, self._emit
        with self.messages.for_batch(tp.partition):
            for rec in records:
                ev = decode(rec, parse)
                if ev is not None:
                    emit(stage.process(ev))
            self.messages.flush(self.outbox, tp, records[-1].offset)
        await self._ship(tp, records)

    async def _route_unsubscribes(self, tp: Any, records: Sequence[Any]) -> None:
        for rec in records:
            u = self._decode(rec, lambda r: Unsubscribe.from_record(r, self.s.default_region))
            if u is not None:
                self.outbox.add(self.names[PHONE_EVENT], u.phone.encode(), encode_phone_event(u))
        await self._ship(tp, records)

    async def _route_campaigns(self, tp: Any, records: Sequence[Any]) -> None:
        for rec in records:
            c = self._decode(rec, CampaignLaunched.from_record)
            if c is not None:
                # "at" is when the summary came in (like a partial's), not the launch's
                # event time: CampaignStats.updated_at is one clock, processing time.
                value = encode_campaign_event(Launch.of(c, _now_ms()))
                self.outbox.add(self.names[CAMPAIGN_EVENT], c.campaign_id.encode(), value)
        await self._ship(tp, records)

    async def _fold_phones(self, tp: Any, records: Sequence[Any]) -> None:
        stage = self.phone_stages.get(tp.partition)
        if stage is None:
            stage = self.phone_stages[tp.partition] = self._phone_stage(tp.partition)
        with self.phones.for_batch(tp.partition):
            for rec in records:
                ev = decode_phone_event(rec.value)
                if isinstance(ev, SendIndexed):
                    stage.index_send(ev.phone, ev.campaign_id, ev.message_id, ev.sent_at)
                else:
                    self._emit(stage.process_unsubscribe(ev))
            self.phones.flush(self.outbox, tp, records[-1].offset)
        await self._ship(tp, records)

    async def _fold_campaigns(self, tp: Any, records: Sequence[Any]) -> None:
        with self.campaigns_store.for_batch(tp.partition):
            for rec in records:
                cid = rec.key.decode()
                old = self.campaigns.get(cid)
                if old is None:
                    old = self.campaigns_store.get(cid)
                new = campaign_stage.fold(old, cid, decode_campaign_event(rec.value), rec.offset)
                if new is old:  # a replay: written again, as in MessageStage (the changelog may lack it)
                    self.campaigns_store[cid] = old
                    continue
                self.campaigns_store[cid] = new
                self.campaigns[cid] = new
                if old is None or new.parts is not old.parts or new.summary is not old.summary:
                    self.stats_throttle.mark(cid)
            self.campaigns_store.flush(self.outbox, tp, records[-1].offset)
        await self._ship(tp, records)

    async def _ship(self, tp: Any, records: Sequence[Any]) -> None:
        if tp.topic in self.expected_record:  # input records folded (dead letters are counted apart)
            metrics.EVENTS.labels(tp.topic).inc(len(records) - self.dead_in_batch)
        self.dead_in_batch = 0
        await self.outbox.ship()

    # -- timers -------------------------------------------------------------------
    async def _flush_partials(self) -> None:
        now = _now_ms()
        outbox = self.timer_outbox
        for stage in list(self.msg_stages.values()) + list(self.phone_stages.values()):
            outs = stage.flush_partials(now)
            try:
                self._emit(outs, outbox)
                await outbox.ship()
            except Exception:  # noqa: BLE001 - a timer must not take the worker down
                outbox.clear()
                stage.dirty.update(o.key for o in outs)  # try again on the next tick
                log.exception("publishing partials failed; will retry")
                return

    async def _publish_stats(self) -> None:
        """Throttled per campaign, and always after the last change (processors/stats_throttle)."""
        throttle = self.stats_throttle
        try:
            if not throttle.dirty or not await self.catchup.caught_up(self.s.campaign_events_topic):
                return
        except Exception:  # noqa: BLE001 - e.g. a rebalance under our feet: retried next tick
            log.exception("checking the campaign-events backlog failed; will retry")
            return
        for cid in throttle.take_due(time.monotonic()):  # taken before any await: see the module
            st = self.campaigns.get(cid)
            if st is None:
                continue
            try:
                value = self.codec.encode("smstally.CampaignStats", campaign_stage.stats(st))
                await self.out_stats.send(key=cid.encode(), value=value)
            except Exception:  # noqa: BLE001 - e.g. a rebalance under our feet: retried next tick
                throttle.failed(cid)
                log.exception("publishing the stats of %s failed; will retry", cid)
                continue
            metrics.STATS_PUBLISHED.inc()

    # -- outputs ------------------------------------------------------------------
    def _emit(self, outs: list[Out], outbox: Outbox | None = None) -> None:
        add = (self.outbox if outbox is None else outbox).add
        for o in outs:
            key, value = o.key.encode(), o.value
            if not isinstance(value, dict):  # a typed internal record: PHONE_EVENT, CAMPAIGN_EVENT
                add(self.names[o.kind], key, encode_internal(value))
            elif o.kind == MESSAGE_STATUS:
                add(self.names[MESSAGE_STATUS], key, self.codec.encode("smstally.MessageStatus", value))
            elif o.kind == REMOVAL:
                add(self.names[REMOVAL], key, self.codec.encode("smstally.AddressBookRemoval", value))
                log.debug("removal %s %s (%s)", value["reason"], mask(o.key), value["event_id"])
                metrics.REMOVALS.labels(value["reason"]).inc()
            elif o.kind == DEAD_LETTER:
                self._report_orphan(o.key, value, add)

    def _report_orphan(self, key: str, v: dict[str, Any], add: Callable[..., None]) -> None:
        log.warning("orphan receipts: %s", v["reason"])
        metrics.DEAD_LETTERS.labels(v["error_kind"]).inc()
        rec = {"topic": self.s.topics.dlr, "partition": v["partition"], "offset": -1, "key": key.encode(),
               "value": None, "reason": v["reason"], "error_kind": v["error_kind"], "event_id": None, "at": _now_ms()}
        add(self.s.topics.dead_letter, key.encode(), self.codec.encode("smstally.DeadLetter", rec))

    def _dead_letter(self, msg: Any, kind: str, reason: str, event_id: str | None = None) -> None:
        log.warning("dead letter %s[%d]@%d: %s: %s", msg.topic, msg.partition, msg.offset, kind, reason)
        metrics.DEAD_LETTERS.labels(kind).inc()
        self.dead_in_batch += 1
        key, value = msg.key, msg.value
        # A copy of a record near the size limit cannot fit in a dead letter (key twice, value,
        # reason): sending it would fail and crash the agent. Drop the copy, say where it is.
        limit = self.app.conf.producer_max_request_size - 4096
        if 2 * len(key or b"") + len(value or b"") + len(reason.encode()) > limit:
            reason += (f" (raw value of {len(value or b'')} bytes not copied: too large for a dead letter; "
                       f"read it at {msg.topic}[{msg.partition}]@{msg.offset})")
            value = None
            if 2 * len(key or b"") + len(reason.encode()) > limit:
                key = None
        rec = {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset,
               "key": key, "value": value, "reason": reason, "error_kind": kind,
               "event_id": event_id, "at": _now_ms()}
        self.outbox.add(self.s.topics.dead_letter, msg.key if len(msg.key or b"") < limit // 2 else None,
                        self.codec.encode("smstally.DeadLetter", rec))
