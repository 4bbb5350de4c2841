"""The worker's HTTP endpoints: health, readiness, metrics, its campaigns' figures, and a
consumer debug view. No endpoint here shows a phone number."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import faust
from faust.tables.manager import TableManager

from processors import campaign_stage

from . import metrics
from .adapters import faust_internals
from .consumer import BatchConsumer
from .pipeline import Pipeline


def add_endpoints(app: faust.App, pipe: Pipeline) -> None:
    @app.page("/health/live")
    async def live(web: Any, request: Any) -> Any:
        return web.json({"alive": True})

    async def is_ready() -> bool:
        ok = await pipe.ready() and cast(TableManager, app.tables).recovery.completed.is_set()
        metrics.READY.set(1 if ok else 0)
        return ok

    @app.page("/health/ready")
    async def ready(web: Any, request: Any) -> Any:
        ok = await is_ready()
        body = {
            "ready": ok,
            "recovered": pipe.recovered,
            "rebalancing": bool(app.rebalancing),
            "lagging": await pipe.catchup.lagging(),
            "lag": pipe.catchup.lag(),
            # Inputs not where murmur2 places their key (contract §1): folded anyway unless "trust".
            "input_partitioning": pipe.s.input_partitioning,
            "mispartitioned": pipe.topology.placement.report(),
        }
        return web.json(body, status=200 if ok else 503)

    @app.page("/debug/consumer")
    async def debug_consumer(web: Any, request: Any) -> Any:
        c = cast(BatchConsumer, app.consumer)
        ak = faust_internals.aiokafka_consumer(c)
        out = {}
        for tp in sorted(c.assignment()):
            try:  # bounded: see CatchUp.lagging on why position() may wait for ever
                pos = await asyncio.wait_for(ak.position(tp), 0.5)
            except Exception as exc:  # noqa: BLE001
                pos = repr(exc)
            out[f"{tp.topic}[{tp.partition}]"] = {
                "position": pos,
                "highwater": ak.highwater(tp),
                "paused": tp in ak.paused(),
                "faust_paused": tp in faust_internals.paused_partitions(c),
                "active": tp in faust_internals.active_partitions(c),
                "read": faust_internals.read_offset(c, tp),
                "committed": faust_internals.committed_offset(c, tp),
                "next": c.next_offset(tp),
            }
        return web.json(out)

    @app.page("/metrics")
    async def prometheus(web: Any, request: Any) -> Any:
        # The gauges a scrape alone must keep true (the alert rules of deploy/prometheus).
        try:
            metrics.LAG.set(pipe.catchup.lag())
            await asyncio.wait_for(is_ready(), 2.0)
        except Exception:  # noqa: BLE001 - e.g. mid-rebalance: not ready, and the scrape still answers
            metrics.READY.set(0)
        return web.bytes(metrics.render(), content_type="text/plain; version=0.0.4")

    @app.page("/campaigns")
    async def campaigns(web: Any, request: Any) -> Any:
        # Campaign figures only (no phone numbers), for the campaigns this worker owns.
        return web.json({cid: campaign_stage.stats(st) for cid, st in sorted(pipe.campaigns.items())})
