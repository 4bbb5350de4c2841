"""A table restored behind its committed offsets is replayed, not trusted (real broker, no mocks).

Faust commits an input offset only after flushing the changelog writes of what it covers,
so a table restored from a complete changelog is never behind its commits. When the restore
is not complete (a recovery cut short, a changelog that lost its tail), trusting the commit
would skip the input folded into the missing part: counts lost for good, and a stats
version going back. Each batch therefore writes a progress mark through the changelog
(streams.stores), and the seek after a recovery goes back to the mark when it is behind.

The extreme case is reproduced for real: the worker's local state is wiped *and* the
changelogs are deleted, while the group's commits stay at the end of the input. The next
worker finds no mark, replays every input from the start, and the day's figures are exact.
"""

from __future__ import annotations

import asyncio
import shutil
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from simulator.check import sends_counted
from simulator.scenario import generate
from streams.devtools.simulate import wait_for_expected, wait_quiescent
from streams.ops.clients import StatsView

pytestmark = pytest.mark.integration


async def _delete_changelogs(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = sorted(t for t in await admin.list_topics() if t.endswith("-changelog"))
        if names:
            await admin.delete_topics(names)
        return names
    finally:
        await admin.close()


async def _counted(s, expected, timeout: float) -> bool:
    async with StatsView(s) as view:
        deadline = time.monotonic() + timeout
        while not sends_counted(expected, await view.refresh()):
            if time.monotonic() > deadline:
                return False
        return True


def test_state_lost_with_its_changelog_is_rebuilt_from_the_inputs(cluster):
    scenario = generate(seed=43, messages=1200, campaigns=3)
    s = cluster.settings
    data = cluster.tmp / "data-a"
    a = cluster.worker(data_dir=data)
    a.wait_ready(90)
    cluster.publish(scenario.phase1)
    assert asyncio.run(_counted(s, scenario.expected.stats, 120)), "phase 1 not counted"
    assert asyncio.run(wait_quiescent(s, 120)), "phase 1 not committed"
    a.stop()

    deleted = asyncio.run(_delete_changelogs(cluster.broker.bootstrap))
    assert deleted == [f"{s.app_id}-{t}-changelog" for t in ("campaigns", "messages", "phones")], deleted
    shutil.rmtree(data)

    b = cluster.worker()
    b.wait_ready(120)
    cluster.publish(scenario.phase2)
    ok, stats, diff = asyncio.run(wait_for_expected(s, scenario.expected.stats, timeout=120))
    log = b.tail(100000)
    assert ok, f"figures differ after the restore: {diff[:10]}\n{b.tail()}"
    # It got there by replaying, and said so.
    assert "replaying from 0" in log, b.tail()
