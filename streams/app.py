"""Building the Faust app from settings: the only place that knows Faust's configuration."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from processors import campaign_stage

from . import metrics
from .compat import tansu
from .config import Settings
from .consumer import BatchConsumer
from .pipeline import Pipeline
from .topics import TopicPlan

log = logging.getLogger("smstally")
DEFAULT_FETCH_MAX_WAIT_MS = 500  # Kafka answers a fetch as soon as data is there: this only paces idle polls


def faust_config(s: Settings) -> dict[str, Any]:
    cfg: dict[str, Any] = dict(
        broker=s.broker,
        store="rocksdb://" if s.store == "rocksdb" else "memory://",
        datadir=s.data_dir,
        web_port=s.web_port,
        web_bind=s.web_host,
        web_host=s.web_host if s.web_host != "0.0.0.0" else "127.0.0.1",
        topic_partitions=s.partitions,
        topic_replication_factor=s.replication_factor,
        topic_allow_declare=True,
        topic_disable_leader=True,  # no leader-only work; saves a topic and a consumer
        processing_guarantee="at_least_once",
        broker_max_poll_records=s.max_poll_records,
        consumer_max_fetch_size=s.max_fetch_partition_bytes,
        table_standby_replicas=0,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        logging_config=None,
    )
    cfg.update(tansu.faust_settings(s.broker_flavor))
    return cfg


def build(s: Settings, plan: TopicPlan) -> tuple[faust.App, Pipeline]:
    tansu.apply(s.broker_flavor)
    app = faust.App(s.app_id, **faust_config(s))
    pipe = Pipeline(app, s, plan)
    app.transport.Consumer = BatchConsumer.with_handlers(
        pipe.handlers(), pipe.on_batch_error,
        s.fetch_max_wait_ms or tansu.fetch_max_wait_ms(s.broker_flavor) or DEFAULT_FETCH_MAX_WAIT_MS)
    _web(app, pipe)
    return app, pipe


def _web(app: faust.App, pipe: Pipeline) -> None:
    @app.page("/health/live")
    async def live(web: Any, request: Any) -> Any:
        return web.json({"alive": True})

    @app.page("/health/ready")
    async def ready(web: Any, request: Any) -> Any:
        ok = await pipe.ready() and app.tables.recovery.completed.is_set()
        metrics.READY.set(1 if ok else 0)
        body = {"ready": ok, "recovered": pipe.recovered, "rebalancing": bool(app.rebalancing),
                "lagging": await pipe.catchup.lagging(), "lag": pipe.catchup.lag()}
        return web.json(body, status=200 if ok else 503)

    @app.page("/debug/consumer")
    async def debug_consumer(web: Any, request: Any) -> Any:
        c = app.consumer
        ak = c._thread._ensure_consumer()
        out = {}
        for tp in sorted(c.assignment()):
            try:  # bounded: see CatchUp.lagging on why position() may wait for ever
                pos = await asyncio.wait_for(ak.position(tp), 0.5)
            except Exception as exc:  # noqa: BLE001
                pos = repr(exc)
            out[f"{tp.topic}[{tp.partition}]"] = {
                "position": pos, "highwater": ak.highwater(tp), "paused": tp in ak.paused(),
                "faust_paused": tp in c._paused_partitions, "active": tp in (c._active_partitions or ()),
                "read": c._read_offset.get(tp), "committed": c._committed_offset.get(tp),
                "next": c.next_offset(tp)}
        return web.json(out)

    @app.page("/metrics")
    async def prometheus(web: Any, request: Any) -> Any:
        return web.bytes(metrics.render(), content_type="text/plain; version=0.0.4")

    @app.page("/campaigns")
    async def campaigns(web: Any, request: Any) -> Any:
        # Campaign figures only (no phone numbers), for the campaigns this worker owns.
        return web.json({cid: campaign_stage.stats(st) for cid, st in sorted(pipe.campaigns.items())})
