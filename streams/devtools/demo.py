"""``smstally demo``: the whole system on one machine, then a clean exit.

Starts the embedded broker and one worker (a subprocess, as in production), publishes a
simulated day and shows the live report until the published statistics equal the
simulator's expected totals. Whatever happens, both processes are stopped on the way out.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from readmodel.settings import DEFAULT_API_PORT

from ..config import from_env
from ..ops.report import render, render_brief
from .broker import EmbeddedBroker, free_port
from .processes import ApiProcess, WorkerProcess


def run_demo(
    messages: int = 10000, seed: int = 1, campaigns: int = 5, timeout: float = 600.0, keep: bool = False
) -> int:
    from simulator.scenario import generate

    from .simulate import run_simulation, wait_for_expected

    work = Path(tempfile.mkdtemp(prefix="smstally-demo-"))
    broker = EmbeddedBroker(f"kafka://127.0.0.1:{free_port()}", log_path=work / "broker.log")
    worker = api = None
    tty = sys.stdout.isatty()
    try:
        print(f"[demo] starting the embedded broker ({work}/broker.log)", flush=True)
        broker.start()
        env = dict(
            os.environ,
            SMSTALLY_BROKER=broker.url,
            SMSTALLY_BROKER_FLAVOR="tansu",
            SMSTALLY_DATA_DIR=str(work / "data"),
            SMSTALLY_WEB_PORT=str(free_port()),
            SMSTALLY_PARTITIONS=os.environ.get("SMSTALLY_PARTITIONS", "4"),
        )
        s = from_env(env)
        print(f"[demo] starting a worker on {broker.url} ({work}/worker.log)", flush=True)
        worker = WorkerProcess(env, work / "worker.log").start()
        token = secrets.token_urlsafe(18)
        api_env = dict(
            env,
            SMSTALLY_API_TOKEN=token,
            SMSTALLY_API_HOST="127.0.0.1",
            SMSTALLY_API_PORT=os.environ.get("SMSTALLY_API_PORT") or str(_api_port()),
            SMSTALLY_DATA_DIR=str(work / "api"),
        )
        api = ApiProcess(api_env, work / "api.log").start()
        print(
            f"[demo] starting smstally api ({work}/api.log)\n"
            f"[demo] dashboard: {api.url}/login?token={token}\n"
            f"[demo]   (or open {api.url}/login and paste the token {token})",
            flush=True,
        )
        scenario = generate(seed=seed, messages=messages, campaigns=campaigns)
        print(scenario.summary(), flush=True)
        n_events = len(scenario.phase1) + len(scenario.phase2)
        last_draw = [0.0]

        def draw(latest: dict[str, dict[str, Any]], diff: list[str] | None = None) -> None:
            now = time.monotonic()
            if now - last_draw[0] < (0.5 if tty else 5.0) or not latest:
                return
            last_draw[0] = now
            if not worker.running:
                raise RuntimeError(f"the worker exited with code {worker.returncode}; see {worker.log_path}")
            head = (
                f"[demo] {time.monotonic() - t0:6.1f}s  live CampaignStats from {s.topics.campaign_stats}"
                f"   dashboard: {api.url}/login?token={token}"
            )
            tail = f"still different: {len(diff)} figure(s)" if diff else ""
            if tty:
                print("\033[2J\033[H" + head + "\n" + render_brief(latest) + "\n" + tail, flush=True)
            else:
                print(head + "\n" + render_brief(latest) + ("\n" + tail if tail else ""), flush=True)

        t0 = time.monotonic()

        async def go() -> tuple[bool, dict[str, dict[str, Any]], list[str]]:
            ok = await run_simulation(s, scenario, wait=True, timeout=timeout, on_progress=lambda latest: draw(latest))
            if not ok:
                return False, {}, ["phase 1 was not counted in time"]
            return await wait_for_expected(s, scenario.expected.stats, timeout, on_progress=draw)

        ok, latest, diff = asyncio.run(go())
        if ok:
            api_diff = _wait_api(api, token, scenario.expected.stats, timeout=120)
            if api_diff:
                ok, diff = False, ["the API's /api/campaigns: " + d for d in api_diff]
        if ok:
            api_diff = _wait_suppressions(api, token, scenario, timeout=60)
            if api_diff:
                ok, diff = False, ["the API's /api/suppressions/check: " + d for d in api_diff]
        elapsed = time.monotonic() - t0
        print("\n".join(render(latest[c]) + "\n" for c in sorted(latest)))
        if ok:
            print(
                f"[demo] OK: the published statistics equal the simulator's expected totals for "
                f"{len(latest)} campaigns; {n_events} events in {elapsed:.1f}s end to end "
                f"({n_events / elapsed:,.0f} events/s, including the phase-2 wait); the API's "
                f"/api/campaigns equals them too, and its suppression check names the "
                f"{len(scenario.expected.suppressed)} phones in force at the end of the day, with their reasons",
                flush=True,
            )
            if tty and not keep_running_disabled():
                print(
                    f"[demo] the dashboard stays up: {api.url}/login?token={token}\n"
                    "[demo] press Ctrl-C to stop everything",
                    flush=True,
                )
                try:
                    while worker.running and api.running:
                        time.sleep(0.5)
                except KeyboardInterrupt:
                    print("\n[demo] stopping", flush=True)
            return 0
        print(
            "[demo] FAILED: the statistics did not reach the expected totals:\n  " + "\n  ".join(diff[:20]), flush=True
        )
        return 1
    except KeyboardInterrupt:
        print("[demo] interrupted", flush=True)
        return 130
    except Exception as exc:  # noqa: BLE001 - reported, then everything is stopped
        print(f"[demo] error: {exc}", flush=True)
        return 1
    finally:
        if api is not None:
            api.stop()
        if worker is not None:
            worker.stop()
        broker.stop()
        if keep:
            print(f"[demo] work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def keep_running_disabled() -> bool:
    """``SMSTALLY_DEMO_EXIT=1``: exit once the totals match, even on a terminal."""
    return os.environ.get("SMSTALLY_DEMO_EXIT") == "1"


def _api_port() -> int:
    """The API's default port (8080) when it is free, else any free port."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", DEFAULT_API_PORT))
            return DEFAULT_API_PORT
        except OSError:
            return free_port()


def _wait_suppressions(api: ApiProcess, token: str, scenario: Any, timeout: float) -> list[str]:
    """Until ``POST /api/suppressions/check`` of every phone of the day (10 000 a call)
    answers exactly the phones in force and their reasons (contract §11); the last
    differences if never."""
    from processors.phones import normalize

    phones = sorted(
        {normalize(e.value["phone"])[0] for e in (*scenario.phase1, *scenario.phase2) if "phone" in e.value}
    )
    expected = scenario.expected.suppressed

    def differences() -> list[str]:
        got: dict[str, tuple[str, ...]] = {}
        for i in range(0, len(phones), 10_000):
            chunk = phones[i : i + 10_000]
            answer = _api_json(api, token, "/api/suppressions/check", {"phones": chunk})
            got.update((chunk[h["index"]], tuple(h["reasons"])) for h in answer["suppressed"])
        wrong = sorted(p for p in set(got) | set(expected) if got.get(p) != expected.get(p))
        return [f"{p[:4]}…: expected {expected.get(p)} got {got.get(p)}" for p in wrong[:5]]

    return _poll_api(api, timeout, differences)


def _wait_api(api: ApiProcess, token: str, expected: dict[str, dict[str, Any]], timeout: float) -> list[str]:
    """Until the read model's campaigns equal the expected totals; the last differences if never."""
    from simulator.check import mismatches

    def differences() -> list[str]:
        items = _api_json(api, token, "/api/campaigns?limit=1000")["items"]
        return mismatches(expected, {c["campaign_id"]: c for c in items})

    return _poll_api(api, timeout, differences)


def _poll_api(api: ApiProcess, timeout: float, differences: Callable[[], list[str]]) -> list[str]:
    """``differences()`` every 0.3 s until it finds none (then []), or the last ones found."""
    deadline = time.monotonic() + timeout
    diff = ["no answer from the API"]
    while time.monotonic() < deadline:
        if not api.running:
            return [f"smstally api exited with code {api.returncode}; see {api.log_path}"]
        try:
            diff = differences()
            if not diff:
                return []
        except Exception as exc:  # noqa: BLE001 - not up yet
            diff = [f"no answer from the API: {exc}"]
        time.sleep(0.3)
    return diff


def _api_json(api: ApiProcess, token: str, path: str, body: object = None) -> Any:
    """A GET (or, with ``body``, a JSON POST) to the demo's API with its token."""
    import json
    import urllib.request

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{api.url}{path}", data, headers), timeout=5) as r:
        return json.loads(r.read())
