#!/usr/bin/env python3
"""The read side (``smstally api``) against the stream side, in one run.

    .venv/bin/python -m bench.readside                                   # the issue's figures (~8 min)
    .venv/bin/python -m bench.readside --messages 20000 --csv-rows 100000  # quick check (~3 min)
    .venv/bin/python -m bench.readside --skip-pg --json out.json
    .venv/bin/python -m bench.readside --profile /tmp/prof               # API processes under cProfile

One embedded broker (Tansu, in memory, 4 partitions), one throwaway PostgreSQL 15 cluster
(``tests.pgcluster.PgCluster``; not with ``--skip-pg``), and these phases:

1. **worker**: a simulated day (``simulator.scenario.generate``, ``--messages``) is published,
   then one ``smstally worker`` folds it (as ``bench/throughput.py``). Its *output rate* is the
   records it wrote to the three topics the read side reads (campaign-stats, message-status,
   address-book-removals) / its processing time (first folded event to correct totals).
2. **ingest**: ``smstally api`` on those finished topics from an empty database, SQLite then
   PostgreSQL, one at a time, the worker stopped: records on the three topics / time from the
   first committed batch (an ``offsets`` row visible in the database) to ``/health/ready``
   (caught up with the end offsets found at start); also from process start. Its
   ``/api/campaigns`` must then equal the simulator's expected totals. Target: >= 3x phase 1.
3. **latency**: the worker restarted (it resumes from its state), an API on the caught-up
   read model, an SSE client on ``/api/events?campaign_id=<probe>``; sends and DELIVRD
   receipts of one new campaign at a steady rate (see below) for ``--duration`` s. All probe message ids hash to one partition, so the
   worker folds receipts in production order and a CampaignStats whose
   ``status_counts["DELIVERED"]`` is >= k is exactly one that includes receipt k: its latency
   is the SSE event's arrival in this process minus the time receipt k was handed to the
   producer. The same receipts' first CampaignStats on the topic (broker timestamp) is
   reported beside it: the difference is what the read side adds. Target: p99 <= 1 s.
   The load is half of the worker's phase-1 rate (``--rate`` to choose another).
4. **CSV**: a read model filled directly with ``ReadModelWriter`` (``--csv-rows`` messages in
   one campaign, batches of 50 000), then ``smstally api`` on it (on empty topics, so the
   projector has nothing to do) and ``GET /api/campaigns/{id}/messages.csv`` streamed with
   httpx: rows/s, and the API process's RSS (``VmRSS``, sampled every 50 ms) during the
   export minus just before. No token (the default, loopback only): phone numbers are
   masked, the most work per row. Targets: >= 100k rows/s, RSS growth <= 50 MB.
5. **routes under ingest**: an API on an empty SQLite database over phase 1's topics (and the
   latency probe's records, if phase 3 ran); once the campaigns are in, ``--clients``
   concurrent clients (closed loop, no think time) alternate ``GET /api/campaigns`` and
   ``GET /api/campaigns/{id}`` until the projector is caught up (or ``--load-requests`` /
   ``--load-seconds``); then the same load on the caught-up API as the baseline. Twice, each on
   a fresh database: with httpx (one ``AsyncClient`` per client) and with a minimal asyncio
   HTTP/1.1 client, because httpx costs ~1.3-1.6 ms of CPU per request here, 3-4x what the
   API spends, on the same two cores. Target p99 <= 50 ms.

Every process (broker, PostgreSQL, workers, APIs) is stopped in ``finally``, on errors and on
Ctrl-C/SIGTERM too, and each is also registered with ``atexit``. Exit code 1 if a phase
could not produce its figure (wrong totals, a process that died); targets not met are
reported, not failures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from bench.throughput import (  # noqa: E402
    PARTITIONS,
    BenchFailure,
    SmstallyGroup,
    attribute_stops,
    cpu_seconds,
    message_ids,
    peak_rss_mb,
    probe_traffic,
    produce,
    say,
    timeout_for,
)

API_TOPICS = ("campaign_stats", "message_status", "removals")
TARGET_INGEST_X = 3.0
TARGET_P99_LATENCY_MS = 1000.0
TARGET_CSV_ROWS_S = 100_000
TARGET_CSV_RSS_MB = 50.0
TARGET_ROUTES_P99_MS = 50.0


# --------------------------------------------------------------------------------------
# processes, /proc, cleanup


class Cleanup:
    """Everything started, stopped in reverse order once (finally, atexit, SIGTERM)."""

    def __init__(self) -> None:
        self._stops: list[tuple[str, Callable[[], Any]]] = []
        self._lock = threading.Lock()

    def add(self, label: str, stop: Callable[[], Any]) -> None:
        with self._lock:
            self._stops.append((label, stop))

    def discard(self, stop: Callable[[], Any]) -> None:
        with self._lock:
            self._stops = [(lab, s) for lab, s in self._stops if s is not stop]

    def run(self) -> None:
        while True:
            with self._lock:
                if not self._stops:
                    return
                label, stop = self._stops.pop()
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - stop the others anyway
                print(f"[bench] stopping {label}: {exc!r}", file=sys.stderr, flush=True)


CLEANUP = Cleanup()


def vm_rss_mb(pid: int | None) -> float | None:
    with contextlib.suppress(OSError, TypeError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def group_cpu_seconds(pids: list[int]) -> dict[int, float]:
    return {p: c for p in pids if (c := cpu_seconds(p)) is not None}


class RssSampler(threading.Thread):
    """VmRSS of one process every ``interval`` s."""

    def __init__(self, pid: int, interval: float = 0.05):
        super().__init__(name="bench-rss", daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, float]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            v = vm_rss_mb(self.pid)
            if v is not None:
                self.samples.append((time.monotonic(), v))
            self._halt.wait(self.interval)

    def stop(self) -> float | None:
        self._halt.set()
        self.join(2)
        return max((v for _, v in self.samples), default=None)


class MachineCpu:
    """Busy cores of the whole machine between start and ``cores()``, from /proc/stat.

    The bench shares the machine with whatever else runs: a phase with other processes
    busy says so here (``busy`` minus this run's processes is the others' share).
    """

    def __init__(self) -> None:
        self.t0, self.b0 = time.monotonic(), self._busy()

    @staticmethod
    def _busy() -> float:
        with contextlib.suppress(OSError, ValueError, IndexError):
            f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
            return (sum(f[:8]) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
        return float("nan")

    def cores(self) -> float:
        return (self._busy() - self.b0) / max(time.monotonic() - self.t0, 1e-6)


def http_get(url: str, timeout: float = 2.0) -> tuple[int | None, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except Exception:  # noqa: BLE001 - not up, or busy
        return None, b""


def percentile(xs: list[float], q: float) -> float:
    """Nearest-rank percentile (as bench/throughput.py)."""
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s)) - 1))] if s else float("nan")


# --------------------------------------------------------------------------------------
# the API processes


@dataclass
class Api:
    label: str
    proc: Any  # streams.devtools.processes.ApiProcess
    read_db: str
    t_start: float  # time.time() just before the process was started

    @property
    def url(self) -> str:
        return self.proc.url

    @property
    def pid(self) -> int:
        return self.proc.proc.pid

    def check_alive(self) -> None:
        if not self.proc.running:
            raise BenchFailure(
                f"smstally api ({self.label}) exited with code {self.proc.proc.returncode}; "
                f"log {self.proc.log_path}:\n{self.proc.tail()}"
            )

    def stop(self) -> None:
        CLEANUP.discard(self.stop)
        self.proc.stop(grace=60)  # a profiled process writes its profile on the way out


def api_env(
    base_env: dict[str, str], read_db: str, data_dir: Path, topics: dict[str, str] | None = None, **extra: str
) -> dict[str, str]:
    from streams.devtools.broker import free_port

    env = dict(
        base_env,
        SMSTALLY_READ_DB=read_db,
        SMSTALLY_API_PORT=str(free_port()),
        SMSTALLY_DATA_DIR=str(data_dir),
        SMSTALLY_LOG_LEVEL="info",
    )
    env.pop("SMSTALLY_API_TOKEN", None)
    for kind, name in (topics or {}).items():
        env[f"SMSTALLY_TOPIC_{kind.upper()}"] = name
    env.update(extra)
    return env


def start_api(label: str, env: dict[str, str], work: Path, profile_dir: Path | None) -> Api:
    from streams.devtools.processes import ApiProcess

    slug = label.replace(" ", "-").replace("/", "-")
    proc = ApiProcess(env, work / f"api-{slug}.log")
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
        proc.module = ("bench.readside", "--profiled-api", str(profile_dir / f"{slug}.prof"))
    api = Api(label, proc, env["SMSTALLY_READ_DB"], time.time())
    proc.start()
    CLEANUP.add(f"api {label}", api.stop)
    return api


def wait_ready(api: Api, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        api.check_alive()
        if http_get(f"{api.url}/health/ready", 1.0)[0] == 200:
            return time.time()
        time.sleep(0.05)
    raise BenchFailure(
        f"smstally api ({api.label}) not ready after {timeout:.0f} s: {http_get(f'{api.url}/health/ready')[1][:300]!r}"
    )


def db_has_offsets(read_db: str, state: dict) -> bool:
    """True once a batch has been committed: an ``offsets`` row is visible from outside."""
    if read_db.startswith("sqlite:///"):
        path = read_db[len("sqlite:///") :]
        if not os.path.exists(path):
            return False
        try:
            c = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.2)
            try:
                return bool(c.execute("SELECT 1 FROM offsets LIMIT 1").fetchall())
            finally:
                c.close()
        except sqlite3.Error:
            return False
    import psycopg

    try:
        c = state.get("pg")
        if c is None or c.closed:
            c = state["pg"] = psycopg.connect(read_db, autocommit=True, connect_timeout=2)
        return bool(c.execute("SELECT 1 FROM offsets LIMIT 1").fetchall())
    except psycopg.Error:
        with contextlib.suppress(Exception):
            state.pop("pg").close()
        return False


class CatchUpWatcher(threading.Thread):
    """When the first batch is committed (DB polled every 10 ms) and when /health/ready says 200 (50 ms)."""

    def __init__(self, api: Api):
        super().__init__(name="bench-catchup", daemon=True)
        self.api = api
        self.first_commit: float | None = None
        self.ready: float | None = None
        self._halt = threading.Event()
        self._state: dict = {}

    def run(self) -> None:
        last_ready_check = 0.0
        try:
            while not self._halt.is_set() and self.ready is None:
                now = time.time()
                if self.first_commit is None and db_has_offsets(self.api.read_db, self._state):
                    self.first_commit = now
                if now - last_ready_check >= 0.05:
                    last_ready_check = now
                    if http_get(f"{self.api.url}/health/ready", 1.0)[0] == 200:
                        self.ready = time.time()
                        if self.first_commit is None:
                            self.first_commit = self.ready
                self._halt.wait(0.01)
        finally:
            with contextlib.suppress(Exception):
                if self._state.get("pg") is not None:
                    self._state["pg"].close()

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def api_records(api: Api) -> dict[str, float]:
    """smstally_api_records_total by topic, from the API's /metrics."""
    status, body = http_get(f"{api.url}/metrics", 5.0)
    out: dict[str, float] = {}
    if status != 200:
        return out
    for line in body.decode().splitlines():
        if line.startswith("smstally_api_records_total{"):
            topic = line.split('topic="', 1)[1].split('"', 1)[0]
            out[topic] = float(line.rsplit(" ", 1)[1])
    return out


def api_batches(api: Api) -> tuple[float, float, float]:
    """(batches written, seconds spent writing them, of them over 250 ms) from the API's /metrics."""
    status, body = http_get(f"{api.url}/metrics", 5.0)
    count = total = under = 0.0
    if status == 200:
        for line in body.decode().splitlines():
            if line.startswith("smstally_api_batch_write_seconds_count"):
                count = float(line.rsplit(" ", 1)[1])
            elif line.startswith("smstally_api_batch_write_seconds_sum"):
                total = float(line.rsplit(" ", 1)[1])
            elif line.startswith('smstally_api_batch_write_seconds_bucket{le="0.25"}'):
                under = float(line.rsplit(" ", 1)[1])
    return count, total, count - under


def api_campaigns(api: Api) -> dict[str, dict]:
    status, body = http_get(f"{api.url}/api/campaigns?limit=1000", 10.0)
    if status != 200:
        return {}
    return {c["campaign_id"]: c for c in orjson.loads(body)["items"]}


# --------------------------------------------------------------------------------------
# Kafka helpers


async def topic_records(bootstrap: str, topics: list[str]) -> dict[str, int]:
    """Records on each topic now: sum over partitions of end - beginning offsets."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await c.start()
    try:
        await c.topics()
        tps = [TopicPartition(t, p) for t in topics for p in sorted(c.partitions_for_topic(t) or ())]
        ends = await c.end_offsets(tps)
        try:
            begins = await c.beginning_offsets(tps)
        except Exception:  # noqa: BLE001 - an in-memory broker starts at 0
            begins = {tp: 0 for tp in tps}
        out = {t: 0 for t in topics}
        for tp in tps:
            out[tp.topic] += ends[tp] - begins[tp]
        return out
    finally:
        await c.stop()


def settled_records(bootstrap: str, topics: list[str], quiet_s: float = 2.0, timeout: float = 60.0) -> dict[str, int]:
    """Records on the topics once they have not grown for ``quiet_s``."""
    last, since = None, time.monotonic()
    deadline = time.monotonic() + timeout
    while True:
        now = asyncio.run(topic_records(bootstrap, topics))
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s or time.monotonic() > deadline:
            return now
        time.sleep(0.5)


async def create_topics(bootstrap: str, names: list[str], partitions: int = PARTITIONS) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    finally:
        await admin.close()


# --------------------------------------------------------------------------------------
# 1. the worker


@dataclass
class Day:
    messages: int
    events: int
    expected: dict
    group: SmstallyGroup
    outputs: dict[str, int] = field(default_factory=dict)  # topic -> records
    worker: dict[str, Any] = field(default_factory=dict)

    @property
    def output_records(self) -> int:
        return sum(self.outputs.values())

    @property
    def output_rate(self) -> float:
        return self.output_records / self.worker["processing_s"]

    @property
    def topics(self) -> dict[str, str]:
        t = self.group.settings.topics
        return {k: getattr(t, k) for k in API_TOPICS}


def run_worker_phase(args, broker, work: Path, base, keep_running: bool = False) -> Day:
    from simulator.scenario import generate

    t0 = time.monotonic()
    sc = generate(args.seed, args.messages, args.campaigns)
    phase2, fixed = attribute_stops(sc.phase1, sc.phase2)
    events = len(sc.phase1) + len(phase2)
    expected = sc.expected.stats
    say(
        f"generated {events} events ({args.messages} messages, {args.campaigns} campaigns, seed {args.seed}) in "
        f"{time.monotonic() - t0:.1f} s; {fixed} STOP replies given their campaign_id"
    )
    t1 = time.monotonic()
    n = asyncio.run(produce(base, (sc.phase1, phase2)))
    if n != events:
        raise BenchFailure(f"published {n} events, expected {events}")
    del sc, phase2
    gc.collect()
    say(f"published {n} events in {time.monotonic() - t1:.1f} s")

    group = SmstallyGroup(broker, work, 1)
    CLEANUP.add("worker group", group.stop)
    day = Day(args.messages, events, expected, group)
    say(f"worker: one smstally worker ({group.app_id}) on the day")
    machine = MachineCpu()
    group.start()
    elapsed = group.wait_expected(expected, timeout_for(events), "worker", events)
    busy = machine.cores()
    m = group.measure()
    first = m["first_event_s"] or 0.0
    day.outputs = settled_records(group.settings.bootstrap, list(day.topics.values()))
    group.check_alive()
    m = group.measure()  # CPU including the settle (idle)
    if not keep_running:
        group.stop()
        CLEANUP.discard(group.stop)
    day.worker = {
        "elapsed_s": elapsed,
        "first_event_s": first,
        "processing_s": elapsed - first,
        "events_per_s": events / (elapsed - first),
        "cpu_s": m["cpu_s"][0],
        "peak_rss_mb": m["peak_rss_mb"][0],
        "machine_busy_cores": busy,
    }
    say(
        f"worker: correct totals {elapsed:.1f} s after start, processing {elapsed - first:.1f} s "
        f"({events / (elapsed - first):,.0f} events/s); outputs {day.output_records} records "
        f"({', '.join(f'{k} {v}' for k, v in day.outputs.items())}) = {day.output_rate:,.0f} records/s"
    )
    return day


def restart_worker(day: Day) -> Any:
    """The phase-1 worker again (same app id and data dir: it resumes from its state)."""
    from streams.devtools.broker import free_port
    from streams.devtools.processes import WorkerProcess

    g = day.group
    env = dict(g.env, SMSTALLY_DATA_DIR=str(g.work / "data-0"), SMSTALLY_WEB_PORT=str(free_port()))
    w = WorkerProcess(env, g.work / "worker-0-latency.log").start()
    CLEANUP.add("worker (latency)", w.stop)
    try:
        w.wait_ready(120)
    except (RuntimeError, TimeoutError) as exc:
        raise BenchFailure(f"the restarted worker: {exc}") from None
    return w


# --------------------------------------------------------------------------------------
# 2. ingest


def measure_ingest(label: str, day: Day, read_db: str, work: Path, profile_dir: Path | None, pg=None) -> dict[str, Any]:
    from simulator.check import mismatches

    env = api_env(day.group.env, read_db, work / f"api-data-{label}")
    pg_before = group_cpu_seconds(pg.processes()) if pg is not None else {}
    machine = MachineCpu()
    api = start_api(f"ingest {label}", env, work, profile_dir)
    watcher = CatchUpWatcher(api)
    watcher.start()
    total = day.output_records
    timeout = 120 + total / 500
    deadline = time.monotonic() + timeout
    last_note = time.monotonic()
    try:
        while watcher.ready is None:
            api.check_alive()
            if time.monotonic() > deadline:
                raise BenchFailure(
                    f"ingest {label}: not caught up after {timeout:.0f} s; "
                    f"{http_get(f'{api.url}/health/ready')[1][:300]!r}"
                )
            if time.monotonic() - last_note >= 15:
                last_note = time.monotonic()
                done = sum(api_records(api).values())
                say(f"ingest {label}: {time.time() - api.t_start:5.0f} s, {done:,.0f} of {total:,} records")
            time.sleep(0.1)
    finally:
        watcher.stop()
    cpu = cpu_seconds(api.pid)
    rss = peak_rss_mb(api.pid)
    busy = machine.cores()
    pg_cpu = None
    if pg is not None:
        after = group_cpu_seconds(pg.processes())
        pg_cpu = sum(after.values()) - sum(v for p, v in pg_before.items() if p in after)
    got = api_records(api)
    diff = mismatches(day.expected, api_campaigns(api))
    api.stop()
    first, ready = watcher.first_commit, watcher.ready
    projected = int(sum(got.values()))
    if projected != total:
        raise BenchFailure(f"ingest {label}: the API projected {projected} records, the topics hold {total}")
    if diff:
        raise BenchFailure(
            f"ingest {label}: /api/campaigns differs from the expected totals:\n  " + "\n  ".join(diff[:20])
        )
    out = {
        "db": label,
        "records": total,
        "from_start_s": ready - api.t_start,
        "first_commit_s": first - api.t_start,
        "ingest_s": ready - first,
        "rate": total / max(ready - first, 1e-6),
        "rate_from_start": total / (ready - api.t_start),
        "api_cpu_s": cpu,
        "api_peak_rss_mb": rss,
        "pg_server_cpu_s": pg_cpu,
        "machine_busy_cores": busy,
    }
    out["vs_worker"] = out["rate"] / day.output_rate
    say(
        f"ingest {label}: {total} records, first commit {out['first_commit_s']:.1f} s after start, ready after "
        f"{out['from_start_s']:.1f} s: {out['rate']:,.0f} records/s ({out['vs_worker']:.2f}x the worker's output "
        f"rate); API CPU {cpu:.1f} s" + (f", PostgreSQL CPU {pg_cpu:.1f} s" if pg_cpu is not None else "")
    )
    return out


# --------------------------------------------------------------------------------------
# 3. latency


@dataclass
class LatencyRun:
    rate: float
    duration: float
    produced: int = 0
    achieved_rate: float = float("nan")
    sse_ms: list[float] = field(default_factory=list)
    topic_ms: list[float] = field(default_factory=list)
    sse_missing: int = 0
    topic_missing: int = 0
    sse_events: int = 0
    sse_gaps_ms: list[float] = field(default_factory=list)  # between successive SSE events of the probe


async def latency_load(
    s, api_url: str | None, rate: float, duration: float, receipt_delay: float = 0.5, settle: float = 30.0
) -> LatencyRun:
    """Steady sends and DELIVRD receipts of one new campaign; each receipt timed to its SSE event."""
    import httpx
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition

    from schemas.codec import AvroCodec
    from streams.topics import existing_partitions

    codec = AvroCodec()
    run = uuid.uuid4().hex[:6]
    cid = f"lat-{run}"
    parts = await existing_partitions(s.bootstrap)
    ids = message_ids(f"lat-{run}", parts[s.topics.message_sent])
    res = LatencyRun(rate, duration)
    produced: list[float] = []  # wall-clock time receipt k (index k-1) was handed to the producer
    sse_open = asyncio.Event()

    producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap, acks="all", linger_ms=5)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=s.bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=20
    )
    await producer.start()
    await consumer.start()
    tps = [TopicPartition(s.topics.campaign_stats, p) for p in range(parts[s.topics.campaign_stats])]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)

    async def produce_load() -> None:
        res.achieved_rate = await probe_traffic(producer, codec, s, cid, ids, rate, duration, receipt_delay, produced)

    def reflect(into: list[float], delivered: int, at: float) -> None:
        while len(into) < min(delivered, len(produced)):
            into.append((at - produced[len(into)]) * 1000)

    async def follow_sse() -> None:
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None)) as client:
            async with client.stream("GET", f"{api_url}/api/events", params={"campaign_id": cid}) as r:
                if r.status_code != 200:
                    raise BenchFailure(f"/api/events answered {r.status_code}")
                sse_open.set()
                last_at: list[float] = []
                async for line in r.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    at = time.time()
                    rec = orjson.loads(line[6:])
                    if rec.get("campaign_id") != cid:
                        continue
                    res.sse_events += 1
                    if last_at:
                        res.sse_gaps_ms.append((at - last_at[0]) * 1000)
                    last_at[:] = [at]
                    reflect(res.sse_ms, rec["status_counts"].get("DELIVERED", 0), at)

    async def follow_topic() -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=100, max_records=5000)
            for records in batches.values():
                for r in records:
                    _, v = codec.decode(r.value)
                    if v["campaign_id"] == cid:
                        reflect(res.topic_ms, v["status_counts"].get("DELIVERED", 0), r.timestamp / 1000)

    if api_url is None:  # the worker alone (a reference run): no SSE client
        sse_open.set()
        sse = asyncio.create_task(asyncio.sleep(1e9))
    else:
        sse = asyncio.create_task(follow_sse())
    topic = asyncio.create_task(follow_topic())
    try:
        await asyncio.wait_for(sse_open.wait(), 30)
        await produce_load()
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            if sse.done():
                sse.result()  # raises what stopped it
                break
            if (api_url is None or len(res.sse_ms) >= len(produced)) and len(res.topic_ms) >= len(produced):
                break
            await asyncio.sleep(0.1)
    finally:
        for t in (sse, topic):
            t.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sse
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await topic
        await producer.stop()
        await consumer.stop()
    res.produced = len(produced)
    res.sse_missing = res.produced - len(res.sse_ms)
    res.topic_missing = res.produced - len(res.topic_ms)
    return res


def run_latency_phase(args, day: Day, read_db: str, label: str, work: Path, profile_dir: Path | None) -> dict:
    worker = restart_worker(day)
    api = start_api(f"latency {label}", api_env(day.group.env, read_db, work / f"api-data-{label}"), work, profile_dir)
    try:
        wait_ready(api, 120)
        rate = args.rate or max(2.0, day.worker["events_per_s"] / 2)
        say(
            f"latency: worker and API ({label}) ready; {rate:,.0f} events/s ({rate / 2:,.0f} receipts/s) "
            f"for {args.duration:g} s"
        )
        cpu0 = time.process_time()
        w_cpu0, a_cpu0 = cpu_seconds(worker.proc.pid), cpu_seconds(api.pid)
        b0 = api_batches(api)
        machine = MachineCpu()
        res = asyncio.run(latency_load(day.group.settings, api.url, rate, args.duration))
        busy = machine.cores()
        batches = [x - y for x, y in zip(api_batches(api), b0)]
        load_cpu = time.process_time() - cpu0
        api.check_alive()
        if not worker.running:
            raise BenchFailure(f"the worker exited during the latency load:\n{worker.crash_report()}")
        w_cpu, a_cpu = cpu_seconds(worker.proc.pid) - w_cpu0, cpu_seconds(api.pid) - a_cpu0
    finally:
        api.stop()
        worker.stop(grace=15)
        CLEANUP.discard(worker.stop)
    if not res.sse_ms:
        raise BenchFailure(f"latency: none of {res.produced} receipts showed on /api/events")
    lat = res.sse_ms
    out = {
        "db": label,
        "rate": rate,
        "rate_from": "--rate" if args.rate else "worker",
        "worker_rate": day.worker["events_per_s"],
        "achieved_rate": res.achieved_rate,
        "duration_s": args.duration,
        "receipts": res.produced,
        "sse_events": res.sse_events,
        "missing": res.sse_missing,
        "p50_ms": percentile(lat, 50),
        "p95_ms": percentile(lat, 95),
        "p99_ms": percentile(lat, 99),
        "max_ms": max(lat),
        "mean_ms": statistics.fmean(lat),
        "topic_p50_ms": percentile(res.topic_ms, 50),
        "topic_p95_ms": percentile(res.topic_ms, 95),
        "topic_p99_ms": percentile(res.topic_ms, 99),
        "topic_max_ms": max(res.topic_ms, default=float("nan")),
        "topic_missing": res.topic_missing,
        "worker_cpu_s": w_cpu,
        "api_cpu_s": a_cpu,
        "load_cpu_s": load_cpu,
        "machine_busy_cores": busy,
        "batches": batches[0],
        "batch_write_ms": 1000 * batches[1] / batches[0] if batches[0] else float("nan"),
        "batches_over_250ms": batches[2],
        "sse_gap_p50_ms": percentile(res.sse_gaps_ms, 50),
        "sse_gap_max_ms": max(res.sse_gaps_ms, default=float("nan")),
    }
    n = len(lat)
    out["trend_ms"] = [statistics.median(lat[i * n // 6 : (i + 1) * n // 6]) for i in range(6)] if n >= 6 else []
    say(
        f"latency: {res.produced} receipts, SSE p50 {out['p50_ms']:.0f} p99 {out['p99_ms']:.0f} max "
        f"{out['max_ms']:.0f} ms; CampaignStats on the topic p99 {out['topic_p99_ms']:.0f} ms; "
        f"{res.sse_missing} missing"
    )
    if res.sse_missing:
        raise BenchFailure(f"latency: {res.sse_missing} of {res.produced} receipts never showed on /api/events")
    return out


# --------------------------------------------------------------------------------------
# 4. CSV export


CSV_CAMPAIGN = "csv-export-1"
_STATUS_MIX = (  # per 100 messages: status, error_code, not_sent_reason
    *[("DELIVERED", None, None)] * 80,
    *[("PROVIDER_ACCEPTED", None, None)] * 8,
    *[("SOFT_BOUNCE", "SB-21", None)] * 4,
    *[("HARD_BOUNCE", "HB-01", None)] * 3,
    *[("UNKNOWN", None, None)] * 2,
    ("PENDING", None, None),
    ("PROVIDER_ERROR", "PE-9", None),
    ("NOT_SENT", None, "OPTED_OUT"),
)


def csv_message(i: int, t0: int) -> dict:
    from processors import catalog

    status, err, reason = _STATUS_MIX[i % 100]
    return {
        "message_id": f"{CSV_CAMPAIGN}-{i:08d}",
        "campaign_id": CSV_CAMPAIGN,
        "contact_id": f"ct-{i:08d}",
        "phone": f"+336{10_000_000 + i:08d}",
        "status": status,
        "category": catalog.category(status),
        "error_code": err,
        "provider": None if status == "NOT_SENT" else "smpp",
        "sent_at": t0 + i * 20,
        "status_at": t0 + i * 20 + 4_000,
        "version": 1 if status in ("PENDING", "NOT_SENT") else 2,
        "not_sent_reason": reason,
        "phone_valid": True,
    }


def fill_csv_db(read_db: str, rows: int, batch_rows: int = 50_000) -> dict:
    """``rows`` MessageStatus rows of one campaign and its CampaignStats, with ReadModelWriter in big batches."""
    from readmodel.db import Database
    from readmodel.store import Batch, ReadModelWriter

    db = Database(read_db)
    db.create_schema()
    w = ReadModelWriter(db)
    t0 = int(time.time() * 1000) - 86_400_000
    start = time.monotonic()
    try:
        for lo in range(0, rows, batch_rows):
            b = Batch()
            for i in range(lo, min(rows, lo + batch_rows)):
                b.add_status(csv_message(i, t0))
            if lo == 0:
                b.add_stats(
                    {
                        "campaign_id": CSV_CAMPAIGN,
                        "name": "CSV export bench",
                        "kind": "BATCH",
                        "text": None,
                        "sender_id": None,
                        "sms_type": None,
                        "created_at": t0,
                        "launched_at": t0,
                        "launch_list_size": rows,
                        "version": 1,
                        "updated_at": t0,
                        "sent": rows,
                        "not_sent": 0,
                        "not_sent_by_reason": {},
                        "status_counts": {},
                        "unsubscribed": 0,
                        "credits": 0.0,
                        "rates": {},
                        "first_sent_at": t0,
                        "last_event_at": t0,
                    }
                )
            b.advance("bench.none", 0, lo)
            w.apply(b)
        n = db.query("SELECT COUNT(*) FROM messages WHERE campaign_id = ?", (CSV_CAMPAIGN,))[0][0]
        # The planner should know the table as the API will find it (PostgreSQL runs no autovacuum here).
        db.conn().execute("ANALYZE")
    finally:
        db.close()
    if n != rows:
        raise BenchFailure(f"CSV fill: {n} rows in the database, wrote {rows}")
    return {"rows": rows, "fill_s": time.monotonic() - start}


def stream_csv(api: Api, rows: int) -> dict:
    import httpx

    url = f"{api.url}/api/campaigns/{CSV_CAMPAIGN}/messages.csv"
    # One small request first: the process's connections, threads and code paths are warm.
    if http_get(f"{api.url}/api/campaigns/{CSV_CAMPAIGN}", 10.0)[0] != 200:
        raise BenchFailure(f"GET /api/campaigns/{CSV_CAMPAIGN} did not answer 200")
    time.sleep(0.5)
    base = vm_rss_mb(api.pid)
    sampler = RssSampler(api.pid)
    sampler.start()
    newlines, size, first_byte, cpu0 = 0, 0, None, cpu_seconds(api.pid)
    machine = MachineCpu()
    t0 = time.monotonic()
    try:
        with httpx.stream("GET", url, timeout=httpx.Timeout(30.0, read=300.0)) as r:
            if r.status_code != 200:
                r.read()
                raise BenchFailure(f"messages.csv answered {r.status_code}: {r.text[:300]}")
            for chunk in r.iter_raw(256 * 1024):
                if first_byte is None:
                    first_byte = time.monotonic() - t0
                newlines += chunk.count(b"\n")
                size += len(chunk)
        elapsed = time.monotonic() - t0
        busy = machine.cores()
    finally:
        peak = sampler.stop()
    cpu = cpu_seconds(api.pid) - cpu0
    got = newlines - 1
    if got != rows:
        raise BenchFailure(f"messages.csv: {got} data rows, the campaign has {rows}")
    return {
        "rows": got,
        "bytes": size,
        "export_s": elapsed,
        "rows_per_s": got / elapsed,
        "first_byte_s": first_byte,
        "rss_before_mb": base,
        "rss_peak_mb": peak,
        "rss_growth_mb": (peak or 0) - (base or 0),
        "api_cpu_s": cpu,
        "rss_samples": len(sampler.samples),
        "machine_busy_cores": busy,
    }


def fill_csv_dbs(dbs: dict[str, str], rows: int) -> dict[str, dict]:
    """Fill every database at once (one thread each: PostgreSQL's share runs in its server)."""
    say(
        f"CSV: filling {', '.join(dbs)} with {rows:,} messages of one campaign each"
        + (" (at the same time)" if len(dbs) > 1 else "")
    )
    out: dict[str, dict] = {}
    errors: list[BaseException] = []

    def fill(label: str, url: str) -> None:
        try:
            out[label] = fill_csv_db(url, rows)
            say(
                f"CSV ({label}): filled in {out[label]['fill_s']:.1f} s ({rows / out[label]['fill_s']:,.0f} rows/s "
                "with ReadModelWriter, messages and their history)"
            )
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=fill, args=item, daemon=True) for item in dbs.items()]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.5)  # a Ctrl-C still gets through
    if errors:
        raise errors[0]
    return out


def run_csv_phase(args, label: str, read_db: str, fill: dict, broker, work: Path, profile_dir: Path | None) -> dict:
    prefix = f"bench-csv-{label}-{uuid.uuid4().hex[:4]}"
    topics = {k: f"{prefix}.{k.replace('_', '-')}" for k in API_TOPICS}
    asyncio.run(create_topics(broker.bootstrap, list(topics.values())))
    base_env = dict(
        os.environ, SMSTALLY_BROKER=broker.url, SMSTALLY_BROKER_FLAVOR="tansu", SMSTALLY_PARTITIONS=str(PARTITIONS)
    )
    api = start_api(
        f"csv {label}", api_env(base_env, read_db, work / f"api-data-csv-{label}", topics), work, profile_dir
    )
    try:
        wait_ready(api, 120)
        out = stream_csv(api, args.csv_rows)
        api.check_alive()
    finally:
        api.stop()
    out.update(fill, db=label)
    say(
        f"CSV ({label}): {out['rows']:,} rows, {out['bytes'] / 1e6:.0f} MB in {out['export_s']:.1f} s = "
        f"{out['rows_per_s']:,.0f} rows/s; RSS {out['rss_before_mb']:.0f} -> peak {out['rss_peak_mb']:.0f} MB "
        f"(+{out['rss_growth_mb']:.1f} MB); API CPU {out['api_cpu_s']:.1f} s"
    )
    return out


# --------------------------------------------------------------------------------------
# 5. routes under load


@dataclass
class LoadResult:
    latencies_ms: list[float] = field(default_factory=list)
    by_route: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    seconds: float = 0.0
    client_cpu_s: float = 0.0
    machine_busy_cores: float = float("nan")

    def summary(self) -> dict:
        xs = self.latencies_ms
        return {
            "requests": len(xs),
            "seconds": self.seconds,
            "req_per_s": len(xs) / self.seconds if self.seconds else 0,
            "p50_ms": percentile(xs, 50),
            "p95_ms": percentile(xs, 95),
            "p99_ms": percentile(xs, 99),
            "max_ms": max(xs, default=float("nan")),
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "errors": self.errors,
            "client_cpu_s": self.client_cpu_s,
            "machine_busy_cores": self.machine_busy_cores,
            "by_route_p99_ms": {k: percentile(v, 99) for k, v in self.by_route.items()},
        }


async def route_load(
    api_url: str, campaign_ids: list[str], clients: int, max_requests: int, max_seconds: float, until_ready: bool
) -> tuple[LoadResult, bool]:
    """``clients`` closed-loop clients; returns the result and whether the API became ready meanwhile.

    With ``until_ready`` the load stops when /health/ready answers 200 and only requests that
    started before then are kept (they ran while the projector was ingesting).
    """
    import httpx

    res = LoadResult()
    stop = asyncio.Event()
    ready_at: list[float] = []
    started = [0]
    rng = random.Random(7)
    paths = ["/api/campaigns"] + [f"/api/campaigns/{c}" for c in campaign_ids]
    # One AsyncClient (one connection) per simulated user: a single client with a pool of 50
    # connections costs ~6 ms of CPU per request in httpcore's pool here (~1.3 ms this way),
    # and the load generator shares the two cores with the API.
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    users = [httpx.AsyncClient(base_url=api_url, limits=one, timeout=30.0) for _ in range(clients)]
    machine = MachineCpu()
    cpu0 = time.process_time()
    async with contextlib.AsyncExitStack() as stack:
        for u in users:
            await stack.enter_async_context(u)
        c = httpx.AsyncClient(base_url=api_url, timeout=30.0)
        await stack.enter_async_context(c)

        async def readiness() -> None:
            while not stop.is_set():
                try:
                    r = await c.get("/health/ready")
                    if r.status_code == 200:
                        ready_at.append(time.perf_counter())
                        stop.set()
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)

        async def client(i: int) -> None:
            c = users[i]
            n = i
            while not stop.is_set():
                if started[0] >= max_requests or time.perf_counter() - t0 > max_seconds:
                    stop.set()
                    return
                started[0] += 1
                path = paths[0] if n % 2 == 0 else rng.choice(paths[1:])
                route = "/api/campaigns" if n % 2 == 0 else "/api/campaigns/{id}"
                n += 1
                t = time.perf_counter()
                try:
                    r = await c.get(path)
                    await r.aread()
                    status = r.status_code
                except httpx.HTTPError:
                    res.errors += 1
                    continue
                end = time.perf_counter()
                if until_ready and ready_at and t >= ready_at[0]:
                    continue  # started after the projector caught up
                res.statuses[status] = res.statuses.get(status, 0) + 1
                ms = (end - t) * 1000
                res.latencies_ms.append(ms)
                res.by_route.setdefault(route, []).append(ms)

        t0 = time.perf_counter()
        tasks = [asyncio.create_task(client(i)) for i in range(clients)]
        if until_ready:
            tasks.append(asyncio.create_task(readiness()))
        await asyncio.gather(*tasks)
        end = ready_at[0] if (until_ready and ready_at) else time.perf_counter()
        res.seconds = end - t0
    res.client_cpu_s = time.process_time() - cpu0
    res.machine_busy_cores = machine.cores()
    return res, bool(ready_at)


async def raw_route_load(
    api_url: str, campaign_ids: list[str], clients: int, max_requests: int, max_seconds: float, until_ready: bool
) -> tuple[LoadResult, bool]:
    """The same closed loop with a minimal asyncio HTTP/1.1 client (~0.1 ms of CPU per request).

    A reference for the API's own share: httpx costs ~1.3 ms of CPU per request here, and
    the load generator shares the two cores with the API.
    """
    from urllib.parse import urlsplit

    u = urlsplit(api_url)
    res = LoadResult()
    rng = random.Random(7)
    paths = ["/api/campaigns"] + [f"/api/campaigns/{c}" for c in campaign_ids]
    started = [0]
    ready_at: list[float] = []
    machine = MachineCpu()
    cpu0 = time.process_time()
    t0 = time.perf_counter()

    async def get(reader, writer, path: str) -> int:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {u.netloc}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        return int(head[9:12])

    async def readiness() -> None:
        reader, writer = await asyncio.open_connection(u.hostname, u.port)
        try:
            while not ready_at and started[0] < max_requests and time.perf_counter() - t0 < max_seconds:
                if await get(reader, writer, "/health/ready") == 200:
                    ready_at.append(time.perf_counter())
                    return
                await asyncio.sleep(0.1)
        finally:
            writer.close()

    async def client(i: int) -> None:
        reader, writer = await asyncio.open_connection(u.hostname, u.port)
        n = i
        try:
            while (
                started[0] < max_requests and time.perf_counter() - t0 < max_seconds and not (until_ready and ready_at)
            ):
                started[0] += 1
                path = paths[0] if n % 2 == 0 else rng.choice(paths[1:])
                route = "/api/campaigns" if n % 2 == 0 else "/api/campaigns/{id}"
                n += 1
                t = time.perf_counter()
                status = await get(reader, writer, path)
                ms = (time.perf_counter() - t) * 1000
                if until_ready and ready_at and t >= ready_at[0]:
                    continue  # started after the projector caught up
                res.statuses[status] = res.statuses.get(status, 0) + 1
                res.latencies_ms.append(ms)
                res.by_route.setdefault(route, []).append(ms)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            res.errors += 1
        finally:
            writer.close()

    tasks = [client(i) for i in range(clients)] + ([readiness()] if until_ready else [])
    await asyncio.gather(*tasks)
    res.seconds = (ready_at[0] if (until_ready and ready_at) else time.perf_counter()) - t0
    res.client_cpu_s = time.process_time() - cpu0
    res.machine_busy_cores = machine.cores()
    return res, bool(ready_at)


def run_load_phase(
    args, day: Day, read_db: str, label: str, work: Path, profile_dir: Path | None, client: str = "httpx"
) -> dict:
    # The latency phase, if it ran, added its probe campaign to these topics.
    total = sum(asyncio.run(topic_records(day.group.settings.bootstrap, list(day.topics.values()))).values())
    api = start_api(
        f"load {label} {client}",
        api_env(day.group.env, read_db, work / f"api-data-load-{label}-{client}"),
        work,
        profile_dir,
    )
    load = route_load if client == "httpx" else raw_route_load
    try:
        deadline = time.monotonic() + 120
        ids: list[str] = []
        while time.monotonic() < deadline:  # the campaigns come with the first batches
            api.check_alive()
            ids = sorted(api_campaigns(api))
            if len(ids) >= len(day.expected):
                break
            time.sleep(0.02)
        if not ids:
            raise BenchFailure(f"load ({label}): no campaign in the read model after 120 s")
        at = time.time() - api.t_start
        records0 = sum(api_records(api).values())
        say(
            f"load ({label}): {len(ids)} campaigns in after {at:.1f} s ({records0:,.0f} of {total:,} "
            f"records); {args.clients} clients until caught up"
        )
        a_cpu0 = cpu_seconds(api.pid)
        during, caught_up = asyncio.run(
            load(api.url, ids, args.clients, args.load_requests, args.load_seconds, until_ready=True)
        )
        a_cpu_during = cpu_seconds(api.pid) - a_cpu0
        if not caught_up:
            say(f"load ({label}): the request bound was reached before the projector caught up")
        wait_ready(api, 120 + total / 500)
        ready_s = time.time() - api.t_start
        time.sleep(1.0)
        a_cpu0 = cpu_seconds(api.pid)
        baseline, _ = asyncio.run(
            load(api.url, ids, args.clients, args.load_requests, args.baseline_seconds, until_ready=False)
        )
        a_cpu_base = cpu_seconds(api.pid) - a_cpu0
        api.check_alive()
    finally:
        api.stop()
    out = {
        "db": label,
        "client": client,
        "clients": args.clients,
        "campaigns": len(ids),
        "load_from_s": at,
        "ready_s": ready_s,
        "records_before_load": records0,
        "records": total,
        "caught_up_during_load": caught_up,
        "during": {**during.summary(), "api_cpu_s": a_cpu_during},
        "baseline": {**baseline.summary(), "api_cpu_s": a_cpu_base},
    }
    for k in ("during", "baseline"):
        d = out[k]
        say(
            f"load ({label}, {client}) {k}: {d['requests']} requests in {d['seconds']:.1f} s ({d['req_per_s']:,.0f}/s), "
            f"p50 {d['p50_ms']:.1f} p99 {d['p99_ms']:.1f} max {d['max_ms']:.1f} ms; statuses {d['statuses']}"
        )
    return out


# --------------------------------------------------------------------------------------
# the table


def code_state() -> str:
    """The commit measured, and the files of the code under test that differ from it."""
    import subprocess

    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "readmodel", "streams", "processors", "schemas"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    changed = [line[3:] for line in dirty if line.strip()]
    return head + (f" + uncommitted changes in {', '.join(changed)}" if changed else " (clean)")


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "NOT MET")


def print_table(args, day: Day | None, res: dict) -> None:
    rows: list[tuple[str, str, str, str]] = []
    if day is not None:
        w = day.worker
        rows.append(
            (
                "worker output rate (1 worker)",
                f"{day.output_rate:,.0f} rec/s",
                f"{day.output_records:,} records / {w['processing_s']:.1f} s processing",
                "",
            )
        )
    for r in res.get("ingest", []):
        target = TARGET_INGEST_X * day.output_rate
        rows.append(
            (
                f"projector {r['db']}: first commit -> ready",
                f"{r['rate']:,.0f} rec/s",
                f">= {target:,.0f} (3x) : {r['vs_worker']:.2f}x",
                verdict(r["vs_worker"] >= TARGET_INGEST_X),
            )
        )
        rows.append(
            (
                f"projector {r['db']}: from process start",
                f"{r['rate_from_start']:,.0f} rec/s",
                f"{r['from_start_s']:.1f} s; {r['rate_from_start'] / day.output_rate:.2f}x",
                "",
            )
        )
    lat = res.get("latency")
    if lat:
        load = f"half of the worker's {lat['worker_rate']:,.0f} alone" if lat["rate_from"] == "worker" else "--rate"
        rows.append((f"latency load: {lat['rate']:,.0f} events/s", load, "half of the maximum", ""))
        rows.append(
            (
                f"receipt -> SSE /api/events ({lat['db']})",
                f"p50 {lat['p50_ms']:.0f} / p95 {lat['p95_ms']:.0f} / p99 {lat['p99_ms']:.0f} / "
                f"max {lat['max_ms']:.0f} ms",
                f"p99 <= {TARGET_P99_LATENCY_MS:.0f} ms",
                verdict(lat["p99_ms"] <= TARGET_P99_LATENCY_MS),
            )
        )
        rows.append(
            (
                "  same receipts -> CampaignStats on topic",
                f"p50 {lat['topic_p50_ms']:.0f} / p95 {lat['topic_p95_ms']:.0f} / p99 {lat['topic_p99_ms']:.0f} / "
                f"max {lat['topic_max_ms']:.0f} ms",
                "(worker only, reference)",
                "",
            )
        )
    for r in res.get("csv", []):
        rows.append(
            (
                f"CSV export {r['rows']:,} rows ({r['db']})",
                f"{r['rows_per_s']:,.0f} rows/s",
                f">= {TARGET_CSV_ROWS_S:,}",
                verdict(r["rows_per_s"] >= TARGET_CSV_ROWS_S),
            )
        )
        rows.append(
            (
                f"  API RSS growth during it ({r['db']})",
                f"{r['rss_growth_mb']:+.1f} MB",
                f"<= {TARGET_CSV_RSS_MB:.0f} MB",
                verdict(r["rss_growth_mb"] <= TARGET_CSV_RSS_MB),
            )
        )
    for r in res.get("load", []):
        d, b = r["during"], r["baseline"]
        who = "httpx clients" if r["client"] == "httpx" else "raw asyncio clients"
        rows.append(
            (
                f"campaign routes, {r['clients']} {who}, ingesting ({r['db']})",
                f"p99 {d['p99_ms']:.1f} ms (p50 {d['p50_ms']:.1f}, {d['req_per_s']:,.0f} req/s)",
                f"p99 <= {TARGET_ROUTES_P99_MS:.0f} ms",
                verdict(d["p99_ms"] <= TARGET_ROUTES_P99_MS),
            )
        )
        rows.append(
            (
                "  same, caught up (baseline)",
                f"p99 {b['p99_ms']:.1f} ms (p50 {b['p50_ms']:.1f}, {b['req_per_s']:,.0f} req/s)",
                f"p99 <= {TARGET_ROUTES_P99_MS:.0f} ms",
                verdict(b["p99_ms"] <= TARGET_ROUTES_P99_MS),
            )
        )
    print()
    if day is not None:
        print(
            f"read side: {day.messages:,} messages, {day.events:,} input events -> {day.output_records:,} output "
            f"records ({', '.join(f'{k.rsplit(chr(46), 1)[-1]} {v:,}' for k, v in day.outputs.items())}); "
            f"{PARTITIONS} partitions, embedded Tansu, {os.cpu_count()} cores (machine busy = all processes, "
            f"this run's and others')"
        )
    print(f"code: {res.get('code', code_state())}")
    wa = max(len(r[0]) for r in rows) + 2
    wb = max(len(r[1]) for r in rows) + 2
    wc = max(len(r[2]) for r in rows) + 2
    print(f"{'what':<{wa}}{'figure':<{wb}}{'target / ratio':<{wc}}verdict")
    for a, b, c, d in rows:
        print(f"{a:<{wa}}{b:<{wb}}{c:<{wc}}{d}")
    for r in res.get("ingest", []):
        pg = f", PostgreSQL server CPU {r['pg_server_cpu_s']:.1f} s" if r.get("pg_server_cpu_s") is not None else ""
        print(
            f"ingest {r['db']}: first commit {r['first_commit_s']:.1f} s after start, ready {r['from_start_s']:.1f} s;"
            f" API CPU {r['api_cpu_s']:.1f} s ({r['records'] / r['api_cpu_s']:,.0f} rec/CPU-s){pg}; "
            f"peak RSS {r['api_peak_rss_mb']:.0f} MB; machine busy {r['machine_busy_cores']:.1f} cores"
        )
    if day is not None:
        w = day.worker
        print(
            f"worker: {day.events / w['processing_s']:,.0f} events/s processing only, {w['cpu_s']:.1f} CPU-s "
            f"({day.output_records / w['cpu_s']:,.0f} output rec/CPU-s), peak RSS {w['peak_rss_mb']:.0f} MB; "
            f"machine busy {w['machine_busy_cores']:.1f} cores"
        )
    if lat:
        print(
            f"latency: {lat['rate']:,.0f} events/s asked, {lat['achieved_rate']:,.0f} produced, {lat['duration_s']:g} s, "
            f"{lat['receipts']} receipts, {lat['sse_events']} SSE events; median by sixth "
            f"{' '.join(f'{x:.0f}' for x in lat['trend_ms'])} ms; CPU worker {lat['worker_cpu_s']:.1f} s, "
            f"API {lat['api_cpu_s']:.1f} s, load generator {lat['load_cpu_s']:.1f} s; machine busy "
            f"{lat['machine_busy_cores']:.1f} cores"
        )
        print(
            f"latency: the API wrote {lat['batches']:.0f} batches meanwhile, {lat['batch_write_ms']:.0f} ms each on "
            f"average ({lat['batches_over_250ms']:.0f} over 250 ms); SSE events of the probe every "
            f"{lat['sse_gap_p50_ms']:.0f} ms (median), at most {lat['sse_gap_max_ms']:.0f} ms apart"
        )
    together = ", both filled at once" if len(res.get("csv", [])) > 1 else ""
    for r in res.get("csv", []):
        print(
            f"CSV {r['db']}: fill {r['fill_s']:.1f} s ({r['rows'] / r['fill_s']:,.0f} rows/s{together}); export "
            f"{r['bytes'] / 1e6:.0f} MB, first byte {r['first_byte_s']:.2f} s, API CPU {r['api_cpu_s']:.1f} s "
            f"({r['rows'] / r['api_cpu_s']:,.0f} rows/CPU-s), RSS {r['rss_before_mb']:.0f} -> {r['rss_peak_mb']:.0f} MB; "
            f"machine busy {r['machine_busy_cores']:.1f} cores"
        )
    for r in res.get("load", []):
        for k in ("during", "baseline"):
            d = r[k]
            per = 1000 * d["api_cpu_s"] / d["requests"] if d["requests"] else float("nan")
            cper = 1000 * d["client_cpu_s"] / d["requests"] if d["requests"] else float("nan")
            print(
                f"load {r['db']} {r['client']} {k}: {d['requests']} requests in {d['seconds']:.1f} s, statuses {d['statuses']}, "
                f"errors {d['errors']}; CPU per request: API {per:.2f} ms (with the projector's while ingesting), "
                f"client {cper:.2f} ms"
            )
            print(
                f"load {r['db']} {r['client']} {k}: "
                f"p99 by route {', '.join(f'{a} {b:.1f}' for a, b in d['by_route_p99_ms'].items())} ms; "
                f"API CPU {d['api_cpu_s']:.1f} s, client CPU {d['client_cpu_s']:.1f} s; machine busy "
                f"{d['machine_busy_cores']:.1f} cores"
            )
        print(
            f"load {r['db']} {r['client']}: load from {r['load_from_s']:.1f} s ({r['records_before_load']:,.0f} records in) to "
            f"ready at {r['ready_s']:.1f} s" + ("" if r["caught_up_during_load"] else " (bound reached first)")
        )
    print(flush=True)


# --------------------------------------------------------------------------------------
# --profiled-api: smstally api under cProfile, every thread


def profiled_api(out: str) -> int:
    """``smstally api`` with a cProfile.Profile per thread; on exit one .prof per thread kind.

    cProfile alone sees only the thread that enables it: the projector's writer thread and
    FastAPI's handler threads would be missing. Run by the bench (``--profile DIR``), stopped
    by SIGTERM (uvicorn's graceful exit, so the profiles are written).
    """
    import cProfile
    import pstats

    profiles: list[tuple[str, cProfile.Profile]] = []
    lock = threading.Lock()

    def boot(frame, event, arg):  # the first profile event of a new thread
        sys.setprofile(None)
        p = cProfile.Profile()
        with lock:
            profiles.append((threading.current_thread().name, p))
        p.enable()

    # uvicorn re-raises the SIGTERM it caught once it has shut down: exit through the finally below.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    threading.setprofile(boot)
    main = cProfile.Profile()
    profiles.append(("MainThread", main))
    main.enable()
    try:
        from streams.cli import main as cli

        rc = cli(["api"])
    finally:
        main.disable()
        threading.setprofile(None)
        groups: dict[str, pstats.Stats] = {}
        with lock:
            items = list(profiles)
        for name, p in items:
            kind = (
                "event-loop"
                if name == "MainThread"
                else "writer"
                if name.startswith("readmodel-writer")
                else "handlers"
                if "AnyIO" in name or "anyio" in name.lower()
                else "asyncio-to-thread"
                if name.startswith("asyncio")
                else "other"
            )
            try:
                st = pstats.Stats(p)
            except (TypeError, ValueError):  # never enabled, nothing recorded
                continue
            if kind in groups:
                groups[kind].add(st)
            else:
                groups[kind] = st
        for kind, st in groups.items():
            st.dump_stats(f"{out}.{kind}")
    return rc


# Waiting, not working: thread hand-offs, epoll, and uvloop's own loop (its C code, idle time included).
_IDLE = (
    "'acquire' of '_thread.lock'",
    "'get' of '_queue.SimpleQueue'",
    "'poll' of 'select.epoll'",
    "threading.py",
    "queue.py:",
    "selectors.py",
    "asyncio/runners.py:86(run)",
)


def print_profiles(profile_dir: Path, top: int) -> None:
    """Per profiled process and thread kind: busy time and the top functions by own time (waits left out)."""
    import pstats

    for f in sorted(profile_dir.glob("*.prof.*")):
        st = pstats.Stats(str(f))
        rows = [(pstats.func_std_string(k), v) for k, v in st.stats.items()]
        idle = sum(v[2] for name, v in rows if any(x in name for x in _IDLE))
        busy = st.total_tt - idle
        if busy < 0.5:
            continue
        print(
            f"\n===== {f.name}: {busy:.1f} s busy (+{idle:.1f} s waiting), cProfile: ~2x slower than unprofiled ====="
        )
        print(f"{'own s':>8}{'own %':>7}{'cum s':>8}{'calls':>10}  function")
        busy_rows = sorted((r for r in rows if not any(x in r[0] for x in _IDLE)), key=lambda r: -r[1][2])
        for name, (cc, nc, tt, ct, _) in busy_rows[:top]:
            print(f"{tt:8.2f}{tt / busy:7.1%}{ct:8.2f}{nc:10d}  {name.replace(str(ROOT) + '/', '')[-110:]}")
    print(flush=True)


# --------------------------------------------------------------------------------------
# main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=100_000, help="messages of the simulated day (phase 1, 2, 5)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--campaigns", type=int, default=8)
    ap.add_argument("--csv-rows", type=int, default=1_000_000, help="messages of the CSV campaign (phase 4)")
    ap.add_argument("--skip-pg", action="store_true", help="SQLite only (no PostgreSQL cluster)")
    ap.add_argument(
        "--rate", type=float, help="latency load, events/s (default: half the worker's processing rate of phase 1)"
    )
    ap.add_argument("--duration", type=float, default=30.0, help="latency load, s")
    ap.add_argument("--latency-db", choices=["sqlite", "pg"], default="sqlite", help="the API of the latency phase")
    ap.add_argument("--clients", type=int, default=50, help="concurrent clients of phase 5")
    ap.add_argument("--load-requests", type=int, default=50_000, help="phase 5: at most this many requests per part")
    ap.add_argument("--load-seconds", type=float, default=90.0, help="phase 5: at most this long during ingest")
    ap.add_argument("--baseline-seconds", type=float, default=15.0, help="phase 5: the baseline's duration")
    ap.add_argument("--load-db", default="sqlite", help="phase 5 databases: sqlite, pg or sqlite,pg")
    ap.add_argument(
        "--load-client",
        default="httpx,raw",
        help="phase 5 load generators, each on a fresh database: httpx (one AsyncClient per user), "
        "raw (a minimal asyncio HTTP/1.1 client: the API's own share)",
    )
    ap.add_argument("--skip", default="", help="phases to skip: comma-separated of ingest,latency,csv,load")
    ap.add_argument(
        "--profile",
        type=Path,
        help="run every API process under cProfile (all threads); write "
        "DIR/<phase>.prof.<thread kind> and print the top functions. "
        "Distorts the figures (~2x slower Python)",
    )
    ap.add_argument("--profile-top", type=int, default=25)
    ap.add_argument("--json", type=Path, help="write the figures there")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs, databases)")
    args = ap.parse_args(argv)
    args.skip = {x.strip() for x in args.skip.split(",") if x.strip()}
    bad = args.skip - {"ingest", "latency", "csv", "load"}
    if bad:
        ap.error(f"--skip: unknown phase(s) {', '.join(sorted(bad))}")
    args.load_db = [x.strip() for x in args.load_db.split(",") if x.strip()]
    if set(args.load_db) - {"sqlite", "pg"}:
        ap.error("--load-db takes sqlite, pg or sqlite,pg")
    args.load_client = [x.strip() for x in args.load_client.split(",") if x.strip()]
    if not args.load_client or set(args.load_client) - {"httpx", "raw"}:
        ap.error("--load-client takes httpx, raw or httpx,raw")
    if args.skip_pg:
        args.load_db = [x for x in args.load_db if x != "pg"]
        if args.latency_db == "pg":
            args.latency_db = "sqlite"
    return args


def _on_sigterm(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--profiled-api"]:
        return profiled_api(argv[1])
    args = parse_args(argv)
    os.chdir(ROOT)  # the processes run as `python -m streams.cli ...`
    signal.signal(signal.SIGTERM, _on_sigterm)
    import atexit

    atexit.register(CLEANUP.run)

    from streams.compat import tansu
    from streams.config import from_env
    from streams.devtools.broker import EmbeddedBroker, free_port
    from streams.topics import ensure_topics

    work = Path(tempfile.mkdtemp(prefix="smstally-readside-"))
    failed = False
    day: Day | None = None
    res: dict[str, Any] = {
        "args": {
            k: (sorted(v) if isinstance(v, set) else str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
        }
    }
    t_run = time.monotonic()
    res["code"] = code_state()
    try:
        broker = EmbeddedBroker(f"kafka://127.0.0.1:{free_port()}", log_path=work / "broker.log")
        CLEANUP.add("broker", broker.stop)
        broker.start()
        tansu.apply("tansu")
        base = from_env(
            dict(
                os.environ,
                SMSTALLY_BROKER=broker.url,
                SMSTALLY_BROKER_FLAVOR="tansu",
                SMSTALLY_PARTITIONS=str(PARTITIONS),
            )
        )
        asyncio.run(ensure_topics(base))
        pg = None
        if not args.skip_pg:
            from tests.pgcluster import PgCluster, PgClusterError

            pg = PgCluster(work / "postgres")
            CLEANUP.add("postgres", pg.stop)
            try:
                pg.start()
            except PgClusterError as exc:
                raise BenchFailure(f"PostgreSQL: {exc} (use --skip-pg)") from None
        say(f"broker {broker.url}" + (f", PostgreSQL on port {pg.port}" if pg else "") + f", work dir {work}")

        def db_url(kind: str, name: str) -> str:
            return pg.new_database(name) if kind == "pg" else f"sqlite:///{work / name}.sqlite3"

        # 1. + 2.
        day = run_worker_phase(args, broker, work, base)
        res["worker"] = {
            "messages": day.messages,
            "events": day.events,
            "outputs": day.outputs,
            "output_records": day.output_records,
            "output_rate": day.output_rate,
            **day.worker,
        }
        ingest_dbs: dict[str, str] = {}
        if "ingest" not in args.skip:
            res["ingest"] = []
            for kind in ("sqlite",) + (() if pg is None else ("pg",)):
                url = ingest_dbs[kind] = db_url(kind, "ingest")
                label = "SQLite" if kind == "sqlite" else "PostgreSQL"
                res["ingest"].append(measure_ingest(label, day, url, work, args.profile, pg if kind == "pg" else None))
        # 3.
        if "latency" not in args.skip:
            url = ingest_dbs.get(args.latency_db) or db_url(args.latency_db, "latency")
            res["latency"] = run_latency_phase(
                args, day, url, "SQLite" if args.latency_db == "sqlite" else "PostgreSQL", work, args.profile
            )
        # 4.
        if "csv" not in args.skip:
            res["csv"] = []
            dbs = {
                ("SQLite" if kind == "sqlite" else "PostgreSQL"): db_url(kind, "csv")
                for kind in ("sqlite",) + (() if pg is None else ("pg",))
            }
            fills = fill_csv_dbs(dbs, args.csv_rows)
            for label, url in dbs.items():
                res["csv"].append(run_csv_phase(args, label, url, fills[label], broker, work, args.profile))
        # 5.
        if "load" not in args.skip:
            res["load"] = []
            for kind in args.load_db:
                label = "SQLite" if kind == "sqlite" else "PostgreSQL"
                for client in args.load_client:
                    res["load"].append(
                        run_load_phase(args, day, db_url(kind, f"load_{client}"), label, work, args.profile, client)
                    )
        res["run_s"] = time.monotonic() - t_run
        print_table(args, day, res)
        say(f"run took {res['run_s']:.0f} s")
        if args.json:
            args.json.write_text(json.dumps(res, indent=2, default=str))
        return 0
    except BenchFailure as exc:
        failed = True
        print(f"BENCH FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt as exc:
        failed = True
        print(f"BENCH INTERRUPTED ({exc or 'Ctrl-C'}): stopping everything", file=sys.stderr, flush=True)
        return 130
    finally:
        CLEANUP.run()
        if args.profile is not None and args.profile.exists():
            print_profiles(args.profile, args.profile_top)
        if args.keep or failed:
            print(f"work dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
