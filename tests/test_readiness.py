"""Readiness and liveness of a real worker process, on the real embedded broker (no mocks).

``GET /health/live`` says the process is alive; ``GET /health/ready`` is 200 only once the
worker has recovered its tables, is not rebalancing and has processed the backlog its
partitions had when it got them (``streams.pipeline.Pipeline.ready``), 503 otherwise.

The endpoints are polled every 50 ms with generous deadlines, so the tests do not depend
on how fast the machine is; but each asserts something a wrong readiness would break: a
503 *from the worker's own web server* (not only from the pre-start responder that
answers while it waits for the broker) before the first 200, a 503 during a rebalance,
and, after a restart with a backlog, that the first 200 comes only once the whole backlog
has been processed (counted on ``/metrics``).
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from simulator.check import sends_counted
from simulator.scenario import generate
from streams.devtools.processes import WorkerProcess
from streams.ops.clients import StatsView
from tests.harness import get, processed

pytestmark = pytest.mark.integration

POLL_S = 0.05
#: Messages of the backlog scenario: ~2.9 input records per message, so phase 1 is ~12.7k
#: records, of which ~10.7k are published while the worker is down (~15 s of catching up).
BACKLOG_MESSAGES = 4500
HEAD = 2000  # records processed before the stop


def from_worker(status: int | None, body: bytes) -> bool:
    """A 503 of the worker's own /health/ready (Faust's web server: ``{"ready": false, ...}``).

    The pre-start responder of ``smstally worker`` (while it waits for the broker and
    creates its topics) also answers 503, with ``"starting"`` in the body: that one says
    nothing about recovery.
    """
    if status != 503:
        return False
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("ready") is False and "starting" not in doc


def fmt(timeline: list[tuple[float, int | None]]) -> str:
    """Runs of equal statuses: '0.0-1.2s None, 1.3-4.0s 503, 4.1s- 200'."""
    runs: list[list] = []
    for t, status in timeline:
        if runs and runs[-1][2] == status:
            runs[-1][1] = t
        else:
            runs.append([t, t, status])
    return ", ".join(f"{a:.2f}-{b:.2f}s {s}" for a, b, s in runs)


def watch_until_ready(w: WorkerProcess, timeout: float, on_first_ready=None) -> dict:
    """Poll /health/live and /health/ready from now until ready has been 200 for 1 s."""
    t0 = time.monotonic()
    live: list[tuple[float, int | None]] = []
    ready: list[tuple[float, int | None]] = []
    worker_503 = 0
    first_ready = None
    extra = None
    while True:
        assert w.running, f"worker exited with {w.proc.returncode}\n{w.tail()}"
        t = time.monotonic() - t0
        live.append((t, get(w.web_port, "/health/live")[0]))
        status, body = get(w.web_port, "/health/ready")
        ready.append((t, status))
        if first_ready is None:
            if status == 200:
                first_ready = t
                if on_first_ready is not None:
                    extra = on_first_ready()
            elif from_worker(status, body):
                worker_503 += 1
        else:
            assert status == 200, f"/health/ready went back to {status} {body!r} while idle: {fmt(ready)}"
            if t - first_ready >= 1.0:
                return dict(live=live, ready=ready, worker_503=worker_503, first_ready=first_ready, extra=extra)
        assert t < timeout, f"not ready after {timeout}s: {fmt(ready)}\n{w.tail()}"
        time.sleep(POLL_S)


def test_ready_false_until_recovered_and_during_a_rebalance_live_throughout(cluster):
    a = cluster.worker()
    start = watch_until_ready(a, timeout=90)
    print(f"\nworker A from process start: ready {fmt(start['ready'])}; live {fmt(start['live'])}")
    # Before its first 200, the worker's own web server said 503 (recovering), not just the
    # pre-start responder; once its web server answers, /health/live is 200 every time.
    assert start["worker_503"] > 0, fmt(start["ready"])
    assert all(s in (200, None) for _, s in start["live"]), fmt(start["live"])
    assert start["live"][-1][1] == 200

    # A second worker joins the group: A is revoked, recovers its new share, and is ready again.
    b = cluster.worker()
    t0 = time.monotonic()
    a_ready: list[tuple[float, int | None]] = []
    a_live: list[tuple[float, int | None]] = []
    went_unready = back = None
    while True:
        assert a.running and b.running, f"A:\n{a.tail()}\nB:\n{b.tail()}"
        t = time.monotonic() - t0
        a_live.append((t, get(a.web_port, "/health/live", timeout=3)[0]))
        status, body = get(a.web_port, "/health/ready")
        a_ready.append((t, status))
        if went_unready is None and status == 503:
            assert from_worker(status, body), body
            went_unready = t
        if went_unready is not None and back is None and status == 200:
            back = t
        if back is not None and b.ready():
            break
        assert t < 60, f"rebalance did not settle in 60 s: A ready {fmt(a_ready)}\nA:\n{a.tail()}\nB:\n{b.tail()}"
        time.sleep(POLL_S)
    print(f"worker A while B joins: ready {fmt(a_ready)}")
    assert went_unready is not None, f"A never reported not ready during the rebalance: {fmt(a_ready)}"
    assert all(s == 200 for _, s in a_live), f"A not live during the rebalance: {fmt(a_live)}"
    # Settled: both ready together for a second (the group may take one more round to settle).
    deadline = time.monotonic() + 60
    both_since = None
    while both_since is None or time.monotonic() - both_since < 1.0:
        assert time.monotonic() < deadline, (
            f"A and B not both ready for 1 s: {get(a.web_port, '/health/ready')} {get(b.web_port, '/health/ready')}"
        )
        both = all(get(w.web_port, "/health/ready")[0] == 200 for w in (a, b))
        both_since = (both_since or time.monotonic()) if both else None
        time.sleep(POLL_S)
    assert all(get(w.web_port, "/health/live")[0] == 200 for w in (a, b))


def test_ready_false_while_a_restarted_worker_catches_up_with_a_backlog(cluster):
    scenario = generate(seed=31, messages=BACKLOG_MESSAGES, campaigns=4)
    head, backlog = scenario.phase1[:HEAD], scenario.phase1[HEAD:]
    data = cluster.tmp / "data-a"
    a = cluster.worker(data_dir=data)
    a.wait_ready(90)
    cluster.publish(head)
    deadline = time.monotonic() + 60
    while processed(a.web_port) < len(head):
        assert time.monotonic() < deadline, f"head not processed: {processed(a.web_port)} < {len(head)}"
        time.sleep(0.2)
    a.stop()
    assert a.proc.returncode is not None

    t = time.monotonic()
    cluster.publish(backlog)
    print(f"\npublished a backlog of {len(backlog)} records in {time.monotonic() - t:.1f}s while the worker was down")

    a2 = cluster.worker(data_dir=data)
    seen = watch_until_ready(a2, timeout=120, on_first_ready=lambda: processed(a2.web_port))
    done_at_first_ready = seen["extra"]
    print(
        f"restarted worker: ready {fmt(seen['ready'])}; {done_at_first_ready} records processed "
        f"when /health/ready first said 200 (first at {seen['first_ready']:.1f}s)"
    )
    assert seen["worker_503"] > 0, fmt(seen["ready"])
    # Ready means caught up: the whole backlog was processed before the first 200.
    assert done_at_first_ready >= len(backlog), (
        f"ready after {done_at_first_ready} of the {len(backlog)} backlog records: {fmt(seen['ready'])}"
    )
    assert all(s in (200, None) for _, s in seen["live"]), fmt(seen["live"])

    # And what it did while not ready is right: every send of the day is counted.
    async def counted() -> bool:
        async with StatsView(cluster.settings) as view:
            deadline = time.monotonic() + 60
            while not sends_counted(scenario.expected.stats, await view.refresh()):
                if time.monotonic() > deadline:
                    return False
            return True

    assert asyncio.run(counted()), "the sends of the whole day were not counted after the restart"
