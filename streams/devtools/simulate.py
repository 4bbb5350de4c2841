"""Publishing a simulated day in two phases, and reading the stats back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from simulator.check import mismatches, sends_counted
from simulator.scenario import Scenario

from ..config import Settings
from ..ops.clients import StatsView, publish
from ..topics import ensure_topics

GRACE_S = 1.0  # after the group is quiescent, a margin for the last partials


async def wait_quiescent(s: Settings, timeout: float = 120.0) -> bool:
    """Until the worker group has committed every record of its input and internal topics.

    Committed offsets trail processing by at most a commit interval, and Faust commits only
    after flushing what the records produced, so "committed == end" everywhere means every
    send has been folded and its phone index record published and folded too: the moment
    at which STOP replies can be published and attributed deterministically.
    """
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    from ..compat import tansu
    from ..topics import existing_partitions

    tansu.apply(s.broker_flavor)
    t = s.topics
    names = [
        t.message_sent,
        t.dlr,
        t.unsubscribes,
        t.campaigns,
        s.rerouted_messages_topic,
        s.phone_events_topic,
        s.campaign_events_topic,
    ]
    parts = await existing_partitions(s.bootstrap)
    tps = [TopicPartition(n, p) for n in names for p in range(parts.get(n, 0))]
    c = AIOKafkaConsumer(bootstrap_servers=s.bootstrap, group_id=s.app_id, enable_auto_commit=False)
    await c.start()
    try:
        deadline = time.monotonic() + timeout
        quiet = 0
        while time.monotonic() < deadline:
            ends = await c.end_offsets(tps)
            behind = 0
            for tp in tps:
                committed = await c.committed(tp) or 0
                behind += max(0, ends[tp] - committed)
            quiet = quiet + 1 if behind == 0 else 0
            if quiet >= 2:
                return True
            await asyncio.sleep(0.5)
        return False
    finally:
        await c.stop()


async def run_simulation(
    s: Settings,
    scenario: Scenario,
    wait: bool = True,
    timeout: float = 300.0,
    on_progress: Callable[[dict[str, dict[str, Any]]], None] | None = None,
    partitioners: Mapping[str, str] | None = None,
) -> bool:
    """Phase 1, then (once its sends are counted) phase 2: STOP replies come after sends.
    ``partitioners``: the producers' partitioner per topic (ops.clients.publish)."""
    await ensure_topics(s)
    n1 = await publish(s, scenario.phase1, partitioners=partitioners)
    print(f"published phase 1: {n1} records", flush=True)
    expected = scenario.expected.stats
    if wait:
        async with StatsView(s) as view:
            deadline = time.monotonic() + timeout
            while not sends_counted(expected, await view.refresh()):
                if time.monotonic() > deadline:
                    print("timed out waiting for the sends to be counted", flush=True)
                    return False
                if on_progress:
                    on_progress(view.latest)
            if not await wait_quiescent(s, timeout):
                print("timed out waiting for the workers to be idle", flush=True)
                return False
            await asyncio.sleep(GRACE_S)
    n2 = await publish(s, scenario.phase2, partitioners=partitioners)
    print(f"published phase 2: {n2} records", flush=True)
    return True


async def read_stats(s: Settings, idle_ms: int = 1500) -> dict[str, dict[str, Any]]:
    async with StatsView(s) as view:
        last_change, seen = time.monotonic(), -1
        while time.monotonic() - last_change < idle_ms / 1000:
            await view.refresh(100)
            count = sum(r["version"] for r in view.latest.values())
            if count != seen:
                seen, last_change = count, time.monotonic()
        return dict(view.latest)


async def wait_for_expected(
    s: Settings,
    expected: dict[str, dict[str, Any]],
    timeout: float,
    on_progress: Callable[[dict[str, dict[str, Any]], list[str]], None] | None = None,
    breakdowns: bool = True,
) -> tuple[bool, dict[str, dict[str, Any]], list[str]]:
    async with StatsView(s) as view:
        deadline = time.monotonic() + timeout
        while True:
            latest = await view.refresh()
            diff = mismatches(expected, latest, breakdowns=breakdowns)
            if on_progress:
                on_progress(latest, diff)
            if not diff:
                return True, latest, diff
            if time.monotonic() > deadline:
                return False, latest, diff
