"""``smstally demo``: the whole system on one machine, then a clean exit.

Starts the embedded broker and one worker (a subprocess, as in production), publishes a
simulated day and shows the live report until the published statistics equal the
simulator's expected totals. Whatever happens, both processes are stopped on the way out.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .broker import EmbeddedBroker, free_port
from .config import from_env
from .processes import WorkerProcess
from .report import render, render_brief


def run_demo(messages: int = 10000, seed: int = 1, campaigns: int = 5, timeout: float = 600.0,
             keep: bool = False) -> int:
    from simulator.scenario import generate

    from .simulate import run_simulation, wait_for_expected

    work = Path(tempfile.mkdtemp(prefix="smstally-demo-"))
    broker = EmbeddedBroker(f"kafka://127.0.0.1:{free_port()}", log_path=work / "broker.log")
    worker = None
    tty = sys.stdout.isatty()
    try:
        print(f"[demo] starting the embedded broker ({work}/broker.log)", flush=True)
        broker.start()
        env = dict(os.environ, SMSTALLY_BROKER=broker.url, SMSTALLY_BROKER_FLAVOR="tansu",
                   SMSTALLY_DATA_DIR=str(work / "data"), SMSTALLY_WEB_PORT=str(free_port()),
                   SMSTALLY_PARTITIONS=os.environ.get("SMSTALLY_PARTITIONS", "4"))
        s = from_env(env)
        print(f"[demo] starting a worker on {broker.url} ({work}/worker.log)", flush=True)
        worker = WorkerProcess(env, work / "worker.log").start()
        scenario = generate(seed=seed, messages=messages, campaigns=campaigns)
        print(scenario.summary(), flush=True)
        n_events = len(scenario.phase1) + len(scenario.phase2)
        last_draw = [0.0]

        def draw(latest: dict, diff: list | None = None) -> None:
            now = time.monotonic()
            if now - last_draw[0] < (0.5 if tty else 5.0) or not latest:
                return
            last_draw[0] = now
            if not worker.running:
                raise RuntimeError(f"the worker exited with code {worker.proc.returncode}; see {worker.log_path}")
            head = f"[demo] {time.monotonic() - t0:6.1f}s  live CampaignStats from {s.topics.campaign_stats}"
            tail = f"still different: {len(diff)} figure(s)" if diff else ""
            if tty:
                print("\033[2J\033[H" + head + "\n" + render_brief(latest) + "\n" + tail, flush=True)
            else:
                print(head + "\n" + render_brief(latest) + ("\n" + tail if tail else ""), flush=True)

        t0 = time.monotonic()

        async def go() -> tuple[bool, dict, list]:
            ok = await run_simulation(s, scenario, wait=True, timeout=timeout,
                                      on_progress=lambda latest: draw(latest))
            if not ok:
                return False, {}, ["phase 1 was not counted in time"]
            return await wait_for_expected(s, scenario.expected.stats, timeout, on_progress=draw)

        ok, latest, diff = asyncio.run(go())
        elapsed = time.monotonic() - t0
        print("\n".join(render(latest[c]) + "\n" for c in sorted(latest)))
        if ok:
            print(f"[demo] OK: the published statistics equal the simulator's expected totals for "
                  f"{len(latest)} campaigns; {n_events} events in {elapsed:.1f}s end to end "
                  f"({n_events / elapsed:,.0f} events/s, including the phase-2 wait)", flush=True)
            return 0
        print("[demo] FAILED: the statistics did not reach the expected totals:\n  " + "\n  ".join(diff[:20]),
              flush=True)
        return 1
    except KeyboardInterrupt:
        print("[demo] interrupted", flush=True)
        return 130
    except Exception as exc:  # noqa: BLE001 - reported, then everything is stopped
        print(f"[demo] error: {exc}", flush=True)
        return 1
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()
        if keep:
            print(f"[demo] work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
