"""Broker trouble, on the real embedded broker with a real worker process (no mocks).

* The broker freezes (SIGSTOP) for 30 s in the middle of the traffic and comes back
  (SIGCONT): the worker rides it out in the same process and loses nothing.
* The broker is not there when the worker starts: the worker says so clearly, keeps
  waiting (no crash loop), answers its liveness probe meanwhile, and proceeds when the
  broker appears on that address.
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from processors.removals import removal_id
from simulator.check import mismatches, sends_counted
from simulator.scenario import generate
from streams.devtools.simulate import GRACE_S, run_simulation, wait_for_expected
from streams.ops.clients import StatsView, publish
from tests.harness import Cluster, get, processed

pytestmark = pytest.mark.integration

PAUSE_S = 30.0
POLL_S = 0.1
STARTED = "worker starting:"  # logged once per process, just before Faust starts
#: What mode/Faust log when a service or an agent crashes, and when a supervisor restarts one.
CRASHED = ("Crashed reason=", "Restarting dead")


def log_text(w) -> str:
    return w.log_path.read_text(errors="replace")


def summarize(log: str) -> str:
    """Distinct log messages (numbers blanked) with their count and first occurrence."""
    seen: dict[str, list] = {}
    for line in log.splitlines():
        m = re.search(r"\[(\d{4}-[^\]]+)\] (\w+ [\w.]+: .*)", line)
        if not m:
            continue
        key = re.sub(r"\d+(\.\d+)?", "N", m.group(2))[:140]
        seen.setdefault(key, [0, m.group(1)])[0] += 1
    return "\n".join(f"  {n:4d}x from {first}: {k}" for k, (n, first) in seen.items()) or "  (nothing)"


def assert_removals_complete(cluster: Cluster, scenario) -> None:
    got: dict[str, tuple[str, str]] = {}
    for _, r, _, _ in cluster.read_topic(cluster.settings.topics.removals):
        got[r["event_id"]] = (r["reason"], r["phone"])
    expected = {removal_id(reason, cause): (reason, phone) for reason, phone, cause in scenario.expected.removals}
    assert got == expected, (
        f"missing {len(set(expected) - set(got))}, unexpected {len(set(got) - set(expected))} removals"
    )


def test_broker_paused_30s_mid_traffic_worker_recovers_and_loses_nothing(tmp_path):
    cluster = Cluster(tmp_path).start()
    try:
        w = cluster.worker()
        w.wait_ready(90)
        pid = w.proc.pid
        s = cluster.settings
        # Enough traffic that the batch consumer (~20k records/s) is still at it when the
        # pause comes: with 1 500 messages it sometimes had read everything already.
        scenario = generate(seed=23, messages=4000, campaigns=4)
        cut = len(scenario.phase1) * 2 // 3
        asyncio.run(publish(s, scenario.phase1[:cut]))

        # Freeze the broker while the worker is busy with that traffic.
        deadline = time.monotonic() + 60
        while (at_pause := processed(w.web_port)) < 1:
            assert time.monotonic() < deadline, "the worker does not process anything"
            time.sleep(0.02)
        log_before = len(log_text(w))
        cluster.broker.pause()
        t_pause = time.monotonic()
        live, ready = [], []
        try:
            assert at_pause < cut, "the pause must come in the middle of the traffic (publish more)"
            while time.monotonic() - t_pause < PAUSE_S:
                assert w.running, f"the worker exited during the pause ({w.proc.returncode})\n{w.tail()}"
                live.append(get(w.web_port, "/health/live", timeout=3)[0])
                ready.append(get(w.web_port, "/health/ready")[0])
                time.sleep(0.5)
        finally:
            cluster.broker.resume()
        t_resume = time.monotonic()
        during = log_text(w)[log_before:]
        # The process is alive and says so, broker or not.
        assert set(live) == {200}, live

        # After the resume it goes on where it was, without being restarted.
        deadline = t_resume + 90
        while (n := processed(w.web_port)) < cut:
            assert w.running, f"the worker exited after the pause ({w.proc.returncode})\n{w.tail()}"
            assert time.monotonic() < deadline, f"stalled after the resume: {n} of {cut} records\n{w.tail()}"
            time.sleep(POLL_S)
        caught_up = time.monotonic() - t_resume

        # The rest of the day, then the STOP replies once the sends are counted.
        asyncio.run(publish(s, scenario.phase1[cut:]))

        async def sends() -> bool:
            async with StatsView(s) as view:
                deadline = time.monotonic() + 120
                while not sends_counted(scenario.expected.stats, await view.refresh()):
                    if time.monotonic() > deadline:
                        return False
                return True

        assert asyncio.run(sends()), "phase 1 not counted after the pause"
        time.sleep(GRACE_S)
        asyncio.run(publish(s, scenario.phase2))
        ok, stats, diff = asyncio.run(wait_for_expected(s, scenario.expected.stats, timeout=120))
        assert diff == [], "\n".join(diff)
        assert mismatches(scenario.expected.stats, stats) == []
        assert_removals_complete(cluster, scenario)

        # One process from start to end: never exited, never restarted.
        assert w.running and w.proc.pid == pid
        text = log_text(w)
        assert text.count(STARTED) == 1, text.count(STARTED)
        crashes = [ln for ln in text.splitlines() if any(m in ln for m in CRASHED)]
        assert crashes == [], "\n".join(crashes)
        print(
            f"\nprocessed {at_pause} of {cut} records when the broker was paused for {PAUSE_S:.0f}s; "
            f"/health/live during the pause: {sorted(set(live))}, /health/ready: {sorted(set(ready), key=str)}; "
            f"caught up {caught_up:.1f}s after the resume; worker log during the pause and until the "
            f"resume was noticed:\n{summarize(during)}"
        )
    finally:
        cluster.close()


def test_broker_unreachable_at_start_worker_waits_then_proceeds(tmp_path):
    cluster = Cluster(tmp_path)  # its broker's address is known, but nothing listens there yet
    try:
        w = cluster.worker()
        pid = w.proc.pid
        t0 = time.monotonic()
        waiting = re.compile(re.escape(f"waiting for the broker at {cluster.broker.url}"))

        # A clear line soon, then another: it keeps waiting in the same process.
        deadline = t0 + 10
        while len(waiting.findall(log_text(w))) < 1:
            assert w.running, f"the worker exited with {w.proc.returncode}\n{w.tail()}"
            assert time.monotonic() < deadline, f"no 'waiting for the broker' line after 10 s\n{w.tail()}"
            time.sleep(POLL_S)
        first_line = time.monotonic() - t0
        # Meanwhile the probes get an answer: alive, not ready.
        assert get(w.web_port, "/health/live")[0] == 200
        assert get(w.web_port, "/health/ready")[0] == 503
        deadline = time.monotonic() + 15
        while len(waiting.findall(log_text(w))) < 2:
            assert w.running, f"the worker exited with {w.proc.returncode}\n{w.tail()}"
            assert time.monotonic() < deadline, f"a single 'waiting' line: is it still waiting?\n{w.tail()}"
            time.sleep(POLL_S)
        assert w.running and w.proc.pid == pid
        assert get(w.web_port, "/health/live")[0] == 200
        assert STARTED not in log_text(w)  # has not gone ahead without a broker
        waited = time.monotonic() - t0

        # The broker appears on that address: the worker proceeds by itself.
        cluster.start()
        t1 = time.monotonic()
        w.wait_ready(90)
        became_ready = time.monotonic() - t1
        s = cluster.settings
        scenario = generate(seed=5, messages=300, campaigns=3)
        assert asyncio.run(run_simulation(s, scenario, wait=True, timeout=120))
        ok, stats, diff = asyncio.run(wait_for_expected(s, scenario.expected.stats, timeout=120))
        assert diff == [], "\n".join(diff)
        assert_removals_complete(cluster, scenario)
        assert w.running and w.proc.pid == pid
        assert log_text(w).count(STARTED) == 1
        lines = [ln for ln in log_text(w).splitlines() if waiting.search(ln)]
        print(
            f"\nfirst 'waiting' line {first_line:.1f}s after the start; broker started after {waited:.1f}s; "
            f"ready {became_ready:.1f}s later; {len(lines)} waiting lines, e.g.:\n{lines[0]}"
        )
    finally:
        cluster.close()
