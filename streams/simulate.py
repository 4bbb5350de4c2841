"""Publishing a simulated day in two phases, and reading the stats back."""
from __future__ import annotations

import asyncio
import time

from simulator.check import mismatches, sends_counted

from .clients import StatsView, publish
from .config import Settings
from .topics import ensure_topics

GRACE_S = 2.0  # after the sends are counted, let the phone index catch up (same path length)


async def run_simulation(s: Settings, scenario, wait: bool = True, timeout: float = 300.0,
                         on_progress=None) -> bool:
    """Phase 1, then (once its sends are counted) phase 2: STOP replies come after sends."""
    await ensure_topics(s)
    n1 = await publish(s, scenario.phase1)
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
            await asyncio.sleep(GRACE_S)
    n2 = await publish(s, scenario.phase2)
    print(f"published phase 2: {n2} records", flush=True)
    return True


async def read_stats(s: Settings, idle_ms: int = 1500) -> dict[str, dict]:
    async with StatsView(s) as view:
        last_change, seen = time.monotonic(), -1
        while time.monotonic() - last_change < idle_ms / 1000:
            await view.refresh(100)
            count = sum(r["version"] for r in view.latest.values())
            if count != seen:
                seen, last_change = count, time.monotonic()
        return dict(view.latest)


async def wait_for_expected(s: Settings, expected: dict, timeout: float, on_progress=None) -> tuple[bool, dict, list]:
    async with StatsView(s) as view:
        deadline = time.monotonic() + timeout
        while True:
            latest = await view.refresh()
            diff = mismatches(expected, latest)
            if on_progress:
                on_progress(latest, diff)
            if not diff:
                return True, latest, diff
            if time.monotonic() > deadline:
                return False, latest, diff
