"""The broker goes away under a caught-up ``smstally api`` (contract §10: ready = caught up and
the broker answering; a read model without its broker keeps serving what it has).

Real embedded broker frozen with SIGSTOP (clients see a broker that accepts nothing and
answers nothing, as test_broker_trouble does), real worker, real API process on SQLite.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from simulator.check import mismatches
from simulator.scenario import generate
from streams.devtools.simulate import run_simulation, wait_for_expected
from tests.harness import Cluster, ReadSide

pytestmark = pytest.mark.integration

NOT_READY_WITHIN_S = 20.0  # the API checks the broker every second, with a 5 s timeout
HOLD_S = 4.0  # how long it keeps serving while the broker is frozen (checked all along)


def day(cluster: Cluster, seed: int, messages: int, before: dict | None = None):
    """A day published and processed; ``before``: the expected stats of the days before it."""
    scenario = generate(seed=seed, messages=messages, campaigns=3)
    s = cluster.settings
    assert asyncio.run(run_simulation(s, scenario, wait=True, timeout=120))
    ok, _, diff = asyncio.run(wait_for_expected(s, {**(before or {}), **scenario.expected.stats}, timeout=120))
    assert ok, "\n".join(diff)
    return scenario


@pytest.mark.timeout(300)
def test_broker_frozen_api_not_ready_but_serving_then_ready_with_new_figures(tmp_path):
    cluster = Cluster(tmp_path).start()
    rs = ReadSide(cluster)
    try:
        w = cluster.worker()
        w.wait_ready(90)
        first = day(cluster, seed=31, messages=600)
        rs.start()
        assert rs.wait_ready(90)["broker"] is True
        assert rs.wait_campaigns(first.expected.stats, timeout=60) == []
        status, before = rs.get_json("/api/campaigns?limit=1000")
        assert status == 200
        _, removals_before = rs.get_json("/api/removals?limit=1000")
        cid = before["items"][0]["campaign_id"]
        _, one_before = rs.get_json(f"/api/campaigns/{cid}")

        cluster.broker.pause()
        t_pause = time.monotonic()
        not_ready_after = None
        answers: list[tuple[float, int | None]] = []
        try:
            while True:
                elapsed = time.monotonic() - t_pause
                status, body = rs.get_json("/api/campaigns?limit=1000", timeout=5)
                answers.append((elapsed, status))
                assert status == 200, f"/api/campaigns answered {status} {elapsed:.1f}s into the pause"
                assert body == before, "the read model changed while the broker is frozen"
                ready_status, _, ready_body = rs.request("/health/ready", auth=False, timeout=5)
                assert rs.request("/health/live", auth=False, timeout=5)[0] == 200
                if ready_status == 503 and not_ready_after is None:
                    not_ready_after = elapsed
                    ready = json.loads(ready_body)
                    assert ready["broker"] is False and ready["ready"] is False, ready
                    assert ready["database"] is True and ready["caught_up"] is True, ready
                    assert ready.get("last_error", "").startswith("broker"), ready
                if not_ready_after is None:
                    assert ready_status == 200, (ready_status, ready_body)
                    assert elapsed < NOT_READY_WITHIN_S, f"still ready {elapsed:.1f}s after the broker froze"
                elif elapsed > not_ready_after + HOLD_S:
                    break
                else:  # once not ready, it stays so while the broker is frozen
                    assert ready_status == 503, (elapsed, ready_status, ready_body)
                time.sleep(0.25)
            assert rs.get_json(f"/api/campaigns/{cid}") == (200, one_before)
            assert rs.get_json("/api/removals?limit=1000") == (200, removals_before)
            status, page = rs.get_json(f"/api/campaigns/{cid}/messages?limit=5")
            assert status == 200 and len(page["items"]) == 5
            assert rs.api.running and w.running
        finally:
            cluster.broker.resume()
        t_resume = time.monotonic()

        # Back: ready again, and the next day's figures come through.
        rs.wait_ready(90)
        ready_again = time.monotonic() - t_resume
        second = day(cluster, seed=32, messages=400, before=first.expected.stats)
        expected = {**first.expected.stats, **second.expected.stats}
        assert len(expected) == 6, "two days, six distinct campaigns"
        diff = rs.wait_campaigns(expected, timeout=90)
        assert diff == [], "\n".join(diff)
        status, after = rs.get_json("/api/campaigns?limit=1000")
        assert mismatches(expected, {c["campaign_id"]: c for c in after["items"]}) == []
        status, body = rs.request("/health/ready", auth=False)[::2]
        assert status == 200 and json.loads(body)["broker"] is True
        assert len(rs.apis) == 1 and rs.api.running, "the same API process throughout"
        print(
            f"\nbroker frozen: /health/ready 503 after {not_ready_after:.1f}s, /api/campaigns answered "
            f"{len(answers)} times meanwhile (all 200, unchanged); ready again {ready_again:.1f}s after "
            f"the resume; the second day's figures through the same process"
        )
    finally:
        rs.close()
        cluster.close()
