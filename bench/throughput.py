#!/usr/bin/env python3
"""Throughput (and latency) of smstally against a raw-client ceiling and a naive Faust app.

    .venv/bin/python -m bench.throughput --events 50000
    .venv/bin/python -m bench.throughput --events 1000000 --workers 1,2 --json out.json
    .venv/bin/python -m bench.throughput --latency --duration 60 [--rate 600]

One run, one embedded broker (Tansu, in memory, 4 partitions), one pre-produced workload:

1. A simulated campaign day (``simulator.scenario.generate``) of about ``--events`` records
   is published to the four input topics before anything reads them.
2. **ceiling**: a bare aiokafka consumer reads the four topics, decodes every value with
   fastavro and folds a few counters: what one Python process can do at all.
3. **smstally**: ``--workers`` real ``smstally worker`` processes (fresh app id, fresh
   data dirs, outputs on topics of their own) are started, and the clock runs from
   their start until the latest ``CampaignStats`` of every campaign equals the
   simulator's expected totals. Startup (group join, topic creation) is included; the
   time to the first folded event is reported apart.
4. **naive Faust** (``bench/naive_faust.py``): one agent per topic, one table write per
   event; timed from its start until it has counted every event.

``--partitioning trust,auto`` runs step 3 once per input-partitioning mode (contract §1),
alternating, on the same correctly placed input: what the placement check costs.
``--mixed`` then publishes the same day again, to input topics of its own, with every
receipt placed by librdkafka's CRC32 partitioner (sends by murmur2), and runs step 3 under
``auto`` on it: what forwarding the misplaced receipts costs, in events/s and in records
on the internal rerouted-messages topic per input event.

``--insights on,off`` runs step 3 once per value of ``SMSTALLY_INSIGHTS`` (for each worker
count and partitioning mode): what contract §11's work (delivery time, breakdowns,
suppressions) costs. With ``off`` the stats carry no §11 figures, so those are left out of
the comparison with the expected totals. Every smstally run also reports the traffic on
its internal phone-events topic, by record type and per message: the records §11 adds
there (hard-bounce facts) are work the phone stage does too.

``--latency`` instead runs a warm-up measurement, then a steady real-time load of sends
and DELIVRD receipts for fresh messages of one new campaign against the caught-up worker,
and reports how long each receipt takes to show in a published ``CampaignStats``.

Every process it starts (broker, workers, naive app) is stopped in ``finally``. Exit code
1 (with the remaining differences) if smstally never reaches the expected totals.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import io
import itertools
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402

from processors.partitioner import PARTITIONERS, Partitioner, partition_for  # noqa: E402
from processors.records import decode_phone_event  # noqa: E402
from schemas.codec import SINGLE_OBJECT_MAGIC, AvroCodec, compile_schema, fingerprint, load_schemas  # noqa: E402
from simulator.reference import stop_campaign  # noqa: E402
from simulator.scenario import Emit, generate, normalize  # noqa: E402
from streams.compat import tansu  # noqa: E402
from streams.config import Settings, from_env  # noqa: E402
from streams.devtools.broker import EmbeddedBroker, free_port  # noqa: E402
from streams.devtools.processes import WorkerProcess  # noqa: E402
from streams.devtools.simulate import wait_for_expected  # noqa: E402
from streams.ops.clients import topic_for  # noqa: E402
from streams.outbox import Outbox  # noqa: E402
from streams.topics import ensure_topics, existing_partitions  # noqa: E402
from tests.harness import records_handled  # noqa: E402

PARTITIONS = 4
STUCK_S = 120.0  # all events folded, figures unchanged this long: the run cannot converge
OUTPUT_TOPIC_ENV = (
    "SMSTALLY_TOPIC_CAMPAIGN_STATS",
    "SMSTALLY_TOPIC_MESSAGE_STATUS",
    "SMSTALLY_TOPIC_REMOVALS",
    "SMSTALLY_TOPIC_DEAD_LETTER",
)
PRODUCE_BATCH_BYTES = 512 * 1024
SHIP_EVERY = 20_000  # records queued before they are shipped (a few full batches per partition)


class BenchFailure(RuntimeError):
    """A phase did not finish correctly: the run's figures would be meaningless."""


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------------------
# processes and /proc


def peak_rss_mb(pid: int | None) -> float | None:
    """VmHWM (peak resident set) of a live process, in MB."""
    with contextlib.suppress(OSError, TypeError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a live process: on a shared 2-core box, the fairer figure."""
    with contextlib.suppress(OSError, IndexError, ValueError, TypeError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return None


def disk_usage_mb(path: Path) -> float:
    """What ``du`` says (allocated blocks), in MB."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total / 1e6


# --------------------------------------------------------------------------------------
# the workload


@dataclass
class Workload:
    """What was pre-produced, and what smstally must report for it."""

    events: int
    messages: int
    by_topic: dict[str, int]
    expected: dict[str, dict]
    produce_s: float = 0.0
    generate_s: float = 0.0
    stops_attributed: int = 0


def messages_for(events: int, seed: int, campaigns: int) -> int:
    """Messages giving about ``events`` records: the events/message ratio of a small sample."""
    sample = generate(seed, 4000, campaigns)
    ratio = (len(sample.phase1) + len(sample.phase2)) / 4000
    return max(campaigns, round(events / ratio))


def attribute_stops(phase1: list[Emit], phase2: list[Emit]) -> tuple[list[Emit], int]:
    """Phase 2 with each attributable STOP reply carrying the campaign_id it is due.

    Contract §6: a STOP without campaign_id goes to the campaign of the phone's latest
    SUBMITTED send *indexed when the STOP is processed*. The simulator therefore publishes
    phase 2 only once phase 1 is processed; a benchmark that pre-produces everything
    cannot, so a worker would see the STOPs long before most sends and attribute them
    differently, and the expected totals would never be reached. Writing the campaign the
    rule gives (computed here as ``simulator.reference`` does, over all sends) into the
    record makes the outcome independent of processing order; a STOP with no candidate
    send stays without campaign_id and stays unattributed in any order.
    """
    latest: dict[str, list[tuple[int, str]]] = {}
    seen: set[str] = set()
    for e in phase1:
        v = e.value
        if e.topic != "sms.message-sent" or v["message_id"] in seen:
            continue
        seen.add(v["message_id"])
        if v["outcome"] == "SUBMITTED":
            latest.setdefault(normalize(v["phone"]), []).append((v["sent_at"], v["campaign_id"]))
    out, fixed = [], 0
    for e in phase2:
        v = e.value
        if e.topic == "sms.unsubscribes" and v["campaign_id"] is None and v["channel"] == "STOP_KEYWORD":
            campaign = stop_campaign(latest.get(normalize(v["phone"]), ()), v["at"])
            if campaign is not None:
                e = Emit(e.topic, e.key, e.record_name, dict(v, campaign_id=campaign))
                fixed += 1
        out.append(e)
    return out, fixed


class BenchOutbox(Outbox):
    """The worker's own outbox (``streams.outbox.Outbox``) on the load generator's producer.

    ``producer.send`` costs tens of microseconds per record in Python; on two cores the load
    generator's share is CPU the measured system does not get, so records are queued and
    shipped as one batch per destination partition, placed with the production partitioner
    as the sending platform's Kafka client would place them. The only difference: a batch
    the producer gives up on fails the run (``drain`` raises it) where the worker exits."""

    def __init__(self, producer: Any):
        super().__init__(lambda: producer)
        self.producer = producer
        self.failure: BaseException | None = None

    def _exit_on_failure(self, topic: str, partition: int, exc: BaseException) -> None:  # type: ignore[override]
        self.failure = self.failure or exc

    async def drain(self) -> None:
        """Ship what is queued and wait until the broker has every batch shipped."""
        await self.ship()
        await self.producer.flush()
        if self.failure is not None:
            raise self.failure


async def produce(s: Settings, phases: Iterable[list[Emit]], places: dict[str, Partitioner] | None = None) -> int:
    """Publish each phase in order (all of one before the next), in large per-partition batches.
    ``places``: a partitioner per contract topic name other than murmur2 (``--mixed``)."""
    places = {topic_for(s, t): place for t, place in (places or {}).items()}
    codec = AvroCodec()
    producer = AIOKafkaProducer(
        bootstrap_servers=s.bootstrap,
        acks="all",
        linger_ms=0,
        max_batch_size=PRODUCE_BATCH_BYTES,
        max_request_size=2 * PRODUCE_BATCH_BYTES,
        request_timeout_ms=120_000,
    )
    await producer.start()
    n = 0
    try:
        for emits in phases:
            sends = BenchOutbox(producer)
            for e in emits:
                topic, key = topic_for(s, e.topic), e.key.encode()
                place = places.get(topic)
                sends.add(
                    topic, key, codec.encode(e.record_name, e.value), None if place is None else place(key, PARTITIONS)
                )
                n += 1
                if n % SHIP_EVERY == 0:
                    await sends.ship()
            await sends.drain()
    finally:
        await producer.stop()
    return n


def prepare_workload(
    s: Settings, events: int, seed: int, campaigns: int, places: dict[str, Partitioner] | None = None
) -> Workload:
    """Generate, fix STOP attribution, publish phase 1 then phase 2; keep only the expectations."""
    t0 = time.monotonic()
    messages = messages_for(events, seed, campaigns)
    sc = generate(seed, messages, campaigns)
    phase2, fixed = attribute_stops(sc.phase1, sc.phase2)
    by_topic: dict[str, int] = {}
    for e in (*sc.phase1, *phase2):
        name = topic_for(s, e.topic)
        by_topic[name] = by_topic.get(name, 0) + 1
    wl = Workload(
        events=sum(by_topic.values()),
        messages=messages,
        by_topic=by_topic,
        expected=sc.expected.stats,
        generate_s=time.monotonic() - t0,
        stops_attributed=fixed,
    )
    say(
        f"generated {wl.events} events ({messages} messages, {campaigns} campaigns, seed {seed}) "
        f"in {wl.generate_s:.1f} s; {fixed} STOP replies given their campaign_id"
    )
    t1 = time.monotonic()
    n = asyncio.run(produce(s, (sc.phase1, phase2), places))
    wl.produce_s = time.monotonic() - t1
    if n != wl.events:
        raise BenchFailure(f"published {n} events, expected {wl.events}")
    del sc, phase2
    gc.collect()
    say(
        f"published {n} events in {wl.produce_s:.1f} s ({n / wl.produce_s:,.0f}/s): "
        + ", ".join(f"{t} {c}" for t, c in sorted(by_topic.items()))
    )
    return wl


# --------------------------------------------------------------------------------------
# results


@dataclass
class Result:
    path: str
    events: int
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def eps(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")


# --------------------------------------------------------------------------------------
# (a) the ceiling


def fast_decoder() -> Callable[[bytes], dict]:
    """fastavro straight on the body: the cheapest correct decode of our single-object frames."""
    from fastavro import schemaless_reader

    by_header = {
        SINGLE_OBJECT_MAGIC + fingerprint(name): compile_schema(schema) for name, schema in load_schemas().items()
    }

    def decode(value: bytes) -> dict:
        bio = io.BytesIO(value)
        bio.seek(10)
        return schemaless_reader(bio, by_header[value[:10]], None)

    return decode


async def measure_ceiling(s: Settings, total: int, timeout: float) -> Result:
    """A raw consumer that reads the four input topics from the start, decodes and folds everything.

    Partitions are assigned directly (no group): a group join on Tansu is held for half
    the session timeout, which says nothing about reading speed. The clock starts at the
    first poll, not at the first record, because at small sizes a single fetch response
    holds most of the data and would otherwise be read "for free".
    """
    from aiokafka.structs import TopicPartition

    decode = fast_decoder()
    t = s.topics
    sends: dict[str, int] = {}
    status: dict[str, str] = {}
    names: dict[str, str] = {}
    optouts: dict[str, str] = {}
    parts = await existing_partitions(s.bootstrap)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=s.bootstrap, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    n = 0
    try:
        consumer.assign(
            [
                TopicPartition(topic, p)
                for topic in (t.campaigns, t.message_sent, t.dlr, t.unsubscribes)
                for p in range(parts[topic])
            ]
        )
        await consumer.seek_to_beginning()
        start, cpu0 = time.monotonic(), time.process_time()
        deadline = start + timeout
        while n < total:
            if time.monotonic() > deadline:
                raise BenchFailure(f"ceiling consumer read {n} of {total} events in {timeout:.0f} s")
            batches = await consumer.getmany(timeout_ms=500, max_records=20000)
            for tp, records in batches.items():
                topic = tp.topic
                for r in records:
                    v = decode(r.value)
                    if topic == t.dlr:
                        status[v["message_id"]] = v["status"]
                    elif topic == t.message_sent:
                        sends[v["campaign_id"]] = sends.get(v["campaign_id"], 0) + 1
                    elif topic == t.unsubscribes:
                        optouts[v["phone"]] = v["action"]
                    else:
                        names[v["campaign_id"]] = v["name"]
                n += len(records)
        end, cpu = time.monotonic(), time.process_time() - cpu0
    finally:
        await consumer.stop()
    return Result(
        "ceiling (raw aiokafka)",
        n,
        end - start,
        {"cpu_s": [cpu], "campaigns": len(sends), "messages_with_receipts": len(status), "phones": len(optouts)},
    )


# --------------------------------------------------------------------------------------
# (b) smstally


def folded(port: int) -> int | None:
    """Input records a worker has handled (folded or dead-lettered), from its /metrics page."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            body = r.read().decode()
    except Exception:  # noqa: BLE001 - not up yet, or busy
        return None
    return records_handled(body)


class MetricsWatcher(threading.Thread):
    """Polls the workers' /metrics once a second: when the first event was folded, and progress."""

    def __init__(self, ports: list[int]):
        super().__init__(name="bench-metrics", daemon=True)
        self.ports = ports
        self.counts = {p: 0 for p in ports}
        self.first_event: float | None = None
        self._halt = threading.Event()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def run(self) -> None:
        while not self._halt.is_set():
            for p in self.ports:
                n = folded(p)
                if n is not None:
                    self.counts[p] = max(self.counts[p], n)
            if self.first_event is None and self.total > 0:
                self.first_event = time.time()
            self._halt.wait(1.0 if self.first_event else 0.2)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


class SmstallyGroup:
    """``n`` smstally workers in one fresh group, with outputs on topics of their own.

    A fresh app id means fresh internal topics and changelogs and a group that reads the
    inputs from the start; own output topics mean a StatsView cannot see an earlier run's
    (higher-versioned) stats for the same campaigns.
    """

    def __init__(self, broker: EmbeddedBroker, work: Path, n: int, env: dict[str, str] | None = None):
        self.n = n
        self.app_id = f"bench-{n}w-{uuid.uuid4().hex[:6]}"
        self.work = work / self.app_id
        self.work.mkdir(parents=True)
        self.env = dict(
            os.environ,
            SMSTALLY_BROKER=broker.url,
            SMSTALLY_BROKER_FLAVOR="tansu",
            SMSTALLY_PARTITIONS=str(PARTITIONS),
            SMSTALLY_APP_ID=self.app_id,
            SMSTALLY_LOG_LEVEL="info",
        )
        for var in OUTPUT_TOPIC_ENV:
            self.env[var] = f"{self.app_id}.{var.removeprefix('SMSTALLY_TOPIC_').lower().replace('_', '-')}"
        self.env.update(env or {})
        self.settings = from_env(self.env)
        self.workers: list[WorkerProcess] = []
        self.watcher: MetricsWatcher | None = None
        self.t0 = 0.0

    def start(self) -> None:
        asyncio.run(ensure_topics(self.settings))  # so the stats reader never auto-creates its topic
        self.t0 = time.time()
        for i in range(self.n):
            env = dict(self.env, SMSTALLY_DATA_DIR=str(self.work / f"data-{i}"), SMSTALLY_WEB_PORT=str(free_port()))
            self.workers.append(WorkerProcess(env, self.work / f"worker-{i}.log").start())
        self.watcher = MetricsWatcher([w.web_port for w in self.workers])
        self.watcher.start()

    def check_alive(self) -> None:
        for w in self.workers:
            if not w.running:
                raise BenchFailure(f"worker exited with code {w.proc.returncode}:\n{w.crash_report()}")

    def wait_expected(
        self, expected: dict, timeout: float, label: str, events: int, *, breakdowns: bool = True
    ) -> float:
        """Seconds from the workers' start until the published stats equal ``expected``
        (without §11's figures if not ``breakdowns``: ``SMSTALLY_INSIGHTS=off`` leaves them empty).

        Fails early when every event has been folded and the published figures have not
        moved for ``STUCK_S``: a run that cannot converge (a lost stats update, found so)
        says so in minutes instead of waiting out the timeout (an hour at 1M events).
        """
        last = [time.monotonic()]
        still: list[Any] = [None, time.monotonic()]  # (last diff, since when) once all is folded

        def progress(latest: dict, diff: list) -> None:
            self.check_alive()
            now = time.monotonic()
            if diff and self.watcher.total >= events:
                if diff != still[0]:
                    still[0], still[1] = diff, now
                elif now - still[1] >= STUCK_S:
                    raise BenchFailure(
                        f"{label}: all {events} events folded, and the published stats have "
                        f"not changed for {STUCK_S:.0f} s; {len(diff)} differences:\n  " + "\n  ".join(diff[:40])
                    )
            if diff and now - last[0] >= 15:
                last[0] = now
                say(
                    f"{label}: {time.time() - self.t0:5.0f} s, {self.watcher.total} events folded, "
                    f"{len(diff)} figures still different"
                )

        ok, latest, diff = asyncio.run(
            wait_for_expected(self.settings, expected, timeout, on_progress=progress, breakdowns=breakdowns)
        )
        elapsed = time.time() - self.t0
        if not ok:
            raise BenchFailure(
                f"{label}: the stats did not reach the expected totals in {timeout:.0f} s "
                f"({self.watcher.total} events folded); {len(diff)} differences:\n  " + "\n  ".join(diff[:40])
            )
        return elapsed

    def measure(self) -> dict[str, Any]:
        """Peak RSS and CPU of each live worker: read before stopping them."""
        pids = [w.proc.pid for w in self.workers]
        return {
            "peak_rss_mb": [peak_rss_mb(p) for p in pids],
            "cpu_s": [cpu_seconds(p) for p in pids],
            "first_event_s": (self.watcher.first_event - self.t0) if self.watcher.first_event else None,
            "folded": self.watcher.total,
            "rerouted": sum(_metric(p, "smstally_rerouted_messages_total") for p in self.watcher.ports),
        }

    def stop(self) -> float:
        """Stops everything; returns the state on disk (MB), measured once RocksDB has flushed."""
        if self.watcher is not None:
            self.watcher.stop()
        for w in self.workers:
            w.stop(grace=15)
        return sum(disk_usage_mb(self.work / f"data-{i}") for i in range(self.n))


def _metric(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            page = r.read().decode()
    except OSError:
        return float("nan")
    return sum(float(line.split()[-1]) for line in page.splitlines() if line.startswith(name))


async def count_phone_events(s: Settings, timeout: float = 120.0) -> tuple[int, dict[str, int]]:
    """Records on the group's internal phone-events topic: in all, and by record type.

    The total is the sum of the end offsets, asked through aiokafka once the Tansu patch is
    in (``tansu.apply``: Tansu's own ListOffsets answer is too low whenever the newest batch
    holds several records). Only reading the records gives the split by type; they are
    read up to those offsets, so the two figures describe the same log.
    """
    import msgspec
    from aiokafka.structs import TopicPartition

    tansu.apply(s.broker_flavor)
    topic = s.phone_events_topic
    parts = await existing_partitions(s.bootstrap)
    tps = [TopicPartition(topic, p) for p in range(parts.get(topic, 0))]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=s.bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=tansu.fetch_max_wait_ms(s.broker_flavor) or 500,
    )
    await consumer.start()
    by_type: dict[str, int] = {}
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning()
        pending = [tp for tp in tps if ends[tp] > 0]
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise BenchFailure(f"{topic}: read {sum(by_type.values())} of {sum(ends.values())} records")
            batches = await consumer.getmany(*pending, timeout_ms=500, max_records=20000)
            for tp, records in batches.items():
                for r in records:
                    if r.offset >= ends[tp]:
                        break
                    try:
                        kind = type(decode_phone_event(r.value or b"")).__name__
                    except (ValueError, msgspec.DecodeError):
                        kind = "undecodable"
                    by_type[kind] = by_type.get(kind, 0) + 1
            pending = [tp for tp in pending if await consumer.position(tp) < ends[tp]]
    finally:
        await consumer.stop()
    return sum(ends.values()), dict(sorted(by_type.items()))


def measure_smstally(
    broker: EmbeddedBroker,
    work: Path,
    wl: Workload,
    n: int,
    timeout: float,
    env: dict[str, str] | None = None,
    label: str = "",
) -> Result:
    group = SmstallyGroup(broker, work, n, env)
    insights = group.settings.insights
    say(f"smstally: starting {n} worker(s), app id {group.app_id}")
    details: dict[str, Any] = {}
    try:
        group.start()
        elapsed = group.wait_expected(wl.expected, timeout, f"smstally {n}w", wl.events, breakdowns=insights)
        details = group.measure()
    finally:
        disk = group.stop()
    details["insights"] = "on" if insights else "off"
    details["disk_mb"] = disk
    details["disk_mb_per_m_messages"] = disk * 1e6 / wl.messages
    # Counted once the workers are stopped: a clean stop flushes what they still held back.
    details["phone_events"], details["phone_events_by_type"] = asyncio.run(count_phone_events(group.settings))
    details["phone_events_per_message"] = details["phone_events"] / wl.messages
    if sum(details["phone_events_by_type"].values()) != details["phone_events"]:
        say(
            f"{group.app_id}: phone events read {details['phone_events_by_type']}, end offsets {details['phone_events']}"
        )
    if not insights and details["phone_events_by_type"].get("HardBounce"):
        say(f"{group.app_id}: hard-bounce facts on the phone-events topic although SMSTALLY_INSIGHTS=off")
    first = details.get("first_event_s")
    if first is not None:
        details["processing_s"] = elapsed - first
    return Result(f"smstally ({n} worker{'s' if n > 1 else ''}{label})", wl.events, elapsed, details)


# --------------------------------------------------------------------------------------
# (c) naive Faust


def measure_naive(broker: EmbeddedBroker, work: Path, total: int, timeout: float) -> Result:
    """``bench.naive_faust`` as a subprocess, timed from its start until it has counted ``total``."""
    app_id = f"bench-naive-{uuid.uuid4().hex[:6]}"
    progress = work / f"{app_id}.json"
    env = dict(
        os.environ,
        SMSTALLY_BROKER=broker.url,
        SMSTALLY_BROKER_FLAVOR="tansu",
        SMSTALLY_PARTITIONS=str(PARTITIONS),
        SMSTALLY_APP_ID=app_id,
        SMSTALLY_DATA_DIR=str(work / app_id),
        SMSTALLY_LOG_LEVEL="warning",
        BENCH_NAIVE_TARGET=str(total),
        BENCH_NAIVE_PROGRESS=str(progress),
    )
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH"))))
    child = WorkerProcess(env, work / f"{app_id}.log", module=("bench.naive_faust",))
    say(f"naive Faust: starting, app id {app_id}")
    t0 = time.time()
    child.start()
    try:
        deadline, last_note, state = time.monotonic() + timeout, time.monotonic(), {}
        while True:
            with contextlib.suppress(OSError, ValueError):
                state = json.loads(progress.read_text())
            if state.get("done"):
                break
            if not child.running:
                raise BenchFailure(f"naive Faust exited with code {child.proc.returncode}:\n{child.tail()}")
            if time.monotonic() > deadline:
                raise BenchFailure(f"naive Faust counted {state.get('count')} of {total} events in {timeout:.0f} s")
            if time.monotonic() - last_note >= 15:
                last_note = time.monotonic()
                say(f"naive Faust: {time.time() - t0:5.0f} s, {state.get('count', 0)} events")
            time.sleep(0.1)
        details = {
            "peak_rss_mb": [peak_rss_mb(child.proc.pid)],
            "cpu_s": [cpu_seconds(child.proc.pid)],
            "first_event_s": state["first"] - t0,
            "processing_s": state["done"] - state["first"],
        }
    finally:
        child.stop()
    return Result("naive Faust", total, state["done"] - t0, details)


# --------------------------------------------------------------------------------------
# --latency


@dataclass
class LatencyResult:
    rate: float
    duration: float
    produced: int
    latencies_ms: list[float]
    missing: int
    achieved_rate: float  # events/s really produced (sends + receipts)

    def trend(self, parts: int = 6) -> list[float]:
        """Median latency of each successive slice of receipts: a rising trend means a backlog."""
        xs, n = self.latencies_ms, len(self.latencies_ms)
        return (
            [statistics.median(xs[i * n // parts : (i + 1) * n // parts]) for i in range(parts)] if n >= parts else []
        )

    def percentile(self, q: float) -> float:
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, max(0, round(q / 100 * len(xs)) - 1))] if xs else float("nan")


def message_ids(prefix: str, partitions: int, target: int = 0):
    """Fresh message ids that all hash to one partition.

    One partition keeps receipts processed in the order they were produced, so a stats
    record whose DELIVERED count is >= k is exactly the first that reflects receipt k.
    """
    i = 0
    while True:
        mid = f"{prefix}-{i:08d}"
        i += 1
        if partition_for(mid.encode(), partitions) == target:
            yield mid


async def latency_load(
    s: Settings, rate: float, duration: float, receipt_delay: float = 0.5, settle: float = 30.0
) -> LatencyResult:
    """Steady sends and DELIVRD receipts of one new campaign; time each receipt to its stats.

    ``rate`` counts both kinds of events, so rate/2 messages per second. A receipt is
    produced ``receipt_delay`` after its send. Its latency is the broker timestamp of the
    first CampaignStats record of the campaign whose DELIVERED count reaches its rank,
    minus the wall-clock time at which it was handed to the producer.
    """
    codec = AvroCodec()
    run = uuid.uuid4().hex[:6]
    cid = f"lat-{run}"
    parts = await existing_partitions(s.bootstrap)
    ids = message_ids(f"lat-{run}", parts[s.topics.message_sent])
    produced: list[float] = []  # wall-clock produce time of receipt k (index k-1)
    reflected: list[float] = []  # latency of receipt k, seconds
    done_producing = asyncio.Event()
    achieved: list[float] = []

    # linger 5 ms, as streams.ops.clients.publish. With 0 every record is a request of its own and
    # Tansu burns CPU the worker needs (measured at 2 000 events/s for 30 s: broker 31 CPU-s
    # with linger 0, 6 with 5 ms; stats latency spiking to 6 s vs a steady ~0.8 s).
    producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap, acks="all", linger_ms=5)
    consumer = AIOKafkaConsumer(
        s.topics.campaign_stats,
        bootstrap_servers=s.bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=20,
    )
    await producer.start()
    await consumer.start()

    async def produce_load() -> None:
        achieved.append(await probe_traffic(producer, codec, s, cid, ids, rate, duration, receipt_delay, produced))
        done_producing.set()

    async def follow_stats() -> None:
        settle_deadline = None
        while True:
            if done_producing.is_set():
                if len(reflected) >= len(produced):
                    return
                settle_deadline = settle_deadline or time.monotonic() + settle
                if time.monotonic() > settle_deadline:
                    return
            batches = await consumer.getmany(timeout_ms=100, max_records=5000)
            for records in batches.values():
                for r in records:
                    _, v = codec.decode(r.value)
                    if v["campaign_id"] != cid:
                        continue
                    delivered = v["status_counts"].get("DELIVERED", 0)
                    while len(reflected) < min(delivered, len(produced)):
                        reflected.append(r.timestamp / 1000 - produced[len(reflected)])

    try:
        await asyncio.gather(produce_load(), follow_stats())
    finally:
        await producer.stop()
        await consumer.stop()
    return LatencyResult(
        rate,
        duration,
        len(produced),
        [x * 1000 for x in reflected],
        len(produced) - len(reflected),
        achieved[0] if achieved else float("nan"),
    )


def run_latency(args: argparse.Namespace, broker: EmbeddedBroker, work: Path, base: Settings) -> dict[str, Any]:
    """Warm-up measurement (gives the default rate), then the steady load on the same worker."""
    warm = min(args.events, args.warmup_events)
    wl = prepare_workload(base, warm, args.seed, args.campaigns)
    group = SmstallyGroup(broker, work, 1)
    say(f"latency: warm-up, one worker ({group.app_id}) on {wl.events} events")
    try:
        group.start()
        elapsed = group.wait_expected(wl.expected, timeout_for(wl.events), "warm-up", wl.events)
        first = group.measure()["first_event_s"] or 0.0
        # The load hits a running worker: its capacity is the processing-only rate, not
        # one diluted by startup (which dominates a small warm-up).
        warm_eps = wl.events / (elapsed - first)
        rate = args.rate or max(2.0, warm_eps / 2)
        say(
            f"latency: warm-up done, {wl.events / elapsed:,.0f} events/s from start, {warm_eps:,.0f} events/s "
            f"processing only; load {rate:,.0f} events/s ({rate / 2:,.0f} messages/s) for {args.duration:g} s"
        )
        cpu0 = time.process_time()
        res = asyncio.run(latency_load(group.settings, rate, args.duration))
        load_cpu = (time.process_time() - cpu0) / args.duration
        group.check_alive()
        details = group.measure()
    finally:
        group.stop()
    lat = res.latencies_ms
    out = {
        "mode": "latency",
        "warmup_events": wl.events,
        "warmup_events_per_s": warm_eps,
        "rate": rate,
        "achieved_rate": res.achieved_rate,
        "duration_s": args.duration,
        "receipts": res.produced,
        "missing": res.missing,
        "p50_ms": res.percentile(50),
        "p95_ms": res.percentile(95),
        "p99_ms": res.percentile(99),
        "max_ms": max(lat) if lat else float("nan"),
        "mean_ms": statistics.fmean(lat) if lat else float("nan"),
        "trend_ms": res.trend(),
        "load_generator_cpu": load_cpu,
        "peak_rss_mb": details["peak_rss_mb"][0],
    }
    print()
    print(
        f"latency, receipt produced -> first CampaignStats reflecting it (1 worker, {rate:,.0f} events/s "
        f"asked, {res.achieved_rate:,.0f} produced, for {args.duration:g} s, {res.produced} receipts; "
        f"stats interval {group.settings.stats_interval_ms} ms)"
    )
    print(
        f"  p50 {out['p50_ms']:.0f} ms   p95 {out['p95_ms']:.0f} ms   p99 {out['p99_ms']:.0f} ms   "
        f"max {out['max_ms']:.0f} ms   mean {out['mean_ms']:.0f} ms"
    )
    print(
        f"  median by sixth of the run: {' '.join(f'{x:.0f}' for x in out['trend_ms'])} ms; "
        f"load generator used {load_cpu:.0%} of a core"
    )
    if res.missing:
        print(f"  {res.missing} receipts never reflected within the settle time")
    print(
        f"SUMMARY latency: p50 {out['p50_ms']:.0f} ms, p99 {out['p99_ms']:.0f} ms, max {out['max_ms']:.0f} ms at "
        f"{rate:,.0f} events/s ({rate / warm_eps:.0%} of the warm-up throughput), {res.missing} missing"
    )
    if res.missing:
        raise BenchFailure(f"{res.missing} of {res.produced} receipts never showed in the stats")
    return out


# --------------------------------------------------------------------------------------
# reporting


def timeout_for(events: int, floor_eps: float = 250.0) -> float:
    """Proportional to the work, assuming no path is slower than ``floor_eps`` events/s."""
    return 120.0 + events / floor_eps


def cpu_total(r: Result) -> float | None:
    return sum(c for c in r.details.get("cpu_s", []) if c) or None


def phone_events_text(r: Result) -> str:
    d = r.details
    split = ", ".join(f"{kind} {n}" for kind, n in d["phone_events_by_type"].items())
    return f"{d['phone_events']} phone events ({split or 'none'}), {d['phone_events_per_message']:.2f} per message"


def run_line(r: Result) -> str:
    return f"{r.path}: {r.eps:,.0f} events/s ({r.seconds:.1f} s); {phone_events_text(r)}"


def insights_cost(on: Result, off: Result) -> dict[str, Any]:
    """On / off, both per second and per CPU-second: on a shared 2-core box the wall clock
    also measures the neighbours, the CPU time mostly not."""
    cpu_on, cpu_off = cpu_total(on), cpu_total(off)
    return {
        "on": on.path,
        "off": off.path,
        "events_per_s": on.eps / off.eps,
        "events_per_cpu_s": (on.events / cpu_on) / (off.events / cpu_off) if cpu_on and cpu_off else float("nan"),
    }


def insights_text(c: dict[str, Any]) -> str:
    return (
        f"{c['on']} vs {c['off']}: {c['events_per_s']:.2f}x events/s, "
        f"{c['events_per_cpu_s']:.2f}x events per CPU-second"
    )


def ratio(a: Result | None, b: Result | None) -> str:
    if not (a and b):
        return "-"
    r = a.eps / b.eps
    return f"{r:.3f}x" if r < 0.1 else f"{r:.2f}x"


def print_table(
    wl: Workload,
    ceiling: Result | None,
    smstally: list[Result],
    naive: Result | None,
    insights: Iterable[dict[str, Any]] = (),
) -> None:
    print()
    print(
        f"{wl.events} events ({wl.messages} messages), {PARTITIONS} partitions, embedded Tansu broker, "
        f"{os.cpu_count()} cores"
    )
    rows = [x for x in (ceiling, *smstally, naive) if x is not None]
    width = max(26, *(len(r.path) + 2 for r in rows))
    print(
        f"{'path':<{width}}{'events/s':>10}{'vs ceiling':>12}{'vs naive':>10}{'elapsed s':>11}{'CPU s':>8}"
        f"{'events/CPU-s':>14}{'phone ev/msg':>14}"
    )
    for r in rows:
        cpu = cpu_total(r)
        cpu_s, per_cpu = (f"{cpu:8.1f}", f"{r.events / cpu:14,.0f}") if cpu else (f"{'-':>8}", f"{'-':>14}")
        per_msg = r.details.get("phone_events_per_message")
        print(
            f"{r.path:<{width}}{r.eps:10,.0f}{ratio(r, ceiling) if r is not ceiling else '':>12}"
            f"{ratio(r, naive) if r is not naive else '':>10}{r.seconds:11.1f}{cpu_s}{per_cpu}"
            f"{'-' if per_msg is None else f'{per_msg:.2f}':>14}"
        )
    for r in smstally:
        d = r.details
        rss = "/".join(f"{x:.0f}" for x in d.get("peak_rss_mb", []) if x)
        print(
            f"peak RSS {r.path}: {rss} MB; state on disk: {d['disk_mb']:.1f} MB "
            f"({d['disk_mb_per_m_messages']:.0f} MB per 1M messages)"
        )
    for r in (*smstally, naive):
        if r is not None and r.details.get("first_event_s") is not None:
            d = r.details
            print(
                f"{r.path}: first event {d['first_event_s']:.1f} s after start; processing only "
                f"{d['processing_s']:.1f} s = {r.events / d['processing_s']:,.0f} events/s"
            )
    for r in smstally:
        print(f"{r.path}: {phone_events_text(r)}")
    for r in smstally:
        if r.details.get("rerouted"):
            print(
                f"{r.path}: {r.details['rerouted']:,.0f} records forwarded ({r.details['rerouted'] / r.events:.2f} per event)"
            )
    if len(smstally) > 1:
        base = smstally[0]
        for r in smstally[1:]:
            print(f"{r.path} vs {base.path}: {r.eps / base.eps:.2f}x")
    for c in insights:
        print(insights_text(c))


def summary_line(
    wl: Workload,
    ceiling: Result | None,
    smstally: list[Result],
    naive: Result | None,
    insights: Iterable[dict[str, Any]] = (),
) -> str:
    parts = [f"{wl.events} events"]
    if ceiling:
        parts.append(f"ceiling {ceiling.eps:,.0f}/s")
    for r in smstally:
        parts.append(
            f"{r.path} {r.eps:,.0f}/s"
            + (f" ({r.eps / ceiling.eps:.1%} of ceiling)" if ceiling else "")
            + (f" ({r.eps / naive.eps:.2f}x naive)" if naive else "")
        )
    if naive:
        parts.append(f"naive Faust {naive.eps:,.0f}/s")
    parts.extend(insights_text(c) for c in insights)
    if smstally:
        parts.append(
            f"peak RSS {max(x for x in smstally[0].details['peak_rss_mb'] if x):.0f} MB, "
            f"{smstally[0].details['disk_mb_per_m_messages']:.0f} MB disk per 1M messages"
        )
    return "SUMMARY " + "; ".join(parts)


def as_json(r: Result | None) -> dict[str, Any] | None:
    return (
        None
        if r is None
        else {"path": r.path, "events": r.events, "seconds": r.seconds, "events_per_s": r.eps, **r.details}
    )


# --------------------------------------------------------------------------------------
# main


def run_throughput(args: argparse.Namespace, broker: EmbeddedBroker, work: Path, base: Settings) -> dict[str, Any]:
    wl = prepare_workload(base, args.events, args.seed, args.campaigns)
    ceiling = naive = None
    smstally: list[Result] = []
    if not args.skip_ceiling:
        say("ceiling: raw aiokafka consumer")
        ceiling = asyncio.run(measure_ceiling(base, wl.events, timeout_for(wl.events, 2000)))
        say(f"ceiling: {ceiling.eps:,.0f} events/s")
    insights: list[dict[str, Any]] = []
    for n in args.workers:
        for mode in args.partitioning:
            by_insights: dict[str, Result] = {}
            for value in args.insights:
                label = variant("", mode, args.partitioning, "auto") + variant("insights ", value, args.insights, "on")
                env = {"SMSTALLY_INPUT_PARTITIONING": mode, "SMSTALLY_INSIGHTS": value}
                r = by_insights[value] = measure_smstally(broker, work, wl, n, timeout_for(wl.events), env, label)
                smstally.append(r)
                say(run_line(r))
            if len(by_insights) == 2:
                insights.append(insights_cost(by_insights["on"], by_insights["off"]))
                say(insights_text(insights[-1]))
    if args.mixed:
        smstally.append(measure_mixed(args, broker, work, base))
    if not args.skip_naive:
        naive = measure_naive(broker, work, wl.events, timeout_for(wl.events))
        say(f"naive Faust: {naive.eps:,.0f} events/s ({naive.seconds:.1f} s)")
    print_table(wl, ceiling, smstally, naive, insights)
    print(summary_line(wl, ceiling, smstally, naive, insights), flush=True)
    return {
        "mode": "throughput",
        "events": wl.events,
        "messages": wl.messages,
        "by_topic": wl.by_topic,
        "partitions": PARTITIONS,
        "seed": args.seed,
        "campaigns": args.campaigns,
        "generate_s": wl.generate_s,
        "produce_s": wl.produce_s,
        "stops_attributed": wl.stops_attributed,
        "ceiling": as_json(ceiling),
        "smstally": [as_json(r) for r in smstally],
        "naive": as_json(naive),
        "insights_cost": insights,
    }


def variant(name: str, value: str, values: list[str], default: str) -> str:
    """A setting's part of a run's path: named when runs compare values, or it is not the default."""
    return f", {name}{value}" if len(values) > 1 or value != default else ""


MIXED_INPUT_ENV = {
    "SMSTALLY_TOPIC_CAMPAIGNS": "mixed.sms.campaigns",
    "SMSTALLY_TOPIC_MESSAGE_SENT": "mixed.sms.message-sent",
    "SMSTALLY_TOPIC_DLR": "mixed.sms.dlr",
    "SMSTALLY_TOPIC_UNSUBSCRIBES": "mixed.sms.unsubscribes",
}


def measure_mixed(args: argparse.Namespace, broker: EmbeddedBroker, work: Path, base: Settings) -> Result:
    """The same day on input topics of its own, every receipt placed by CRC32, under auto (and
    the first ``--insights`` value: with ``off`` alone, §11's work stays out of every run)."""
    s = from_env(dict(os.environ, SMSTALLY_BROKER=base.broker, SMSTALLY_PARTITIONS=str(PARTITIONS), **MIXED_INPUT_ENV))
    asyncio.run(ensure_topics(s))
    wl = prepare_workload(s, args.events, args.seed, args.campaigns, {"sms.dlr": PARTITIONERS["crc32"]})
    n = args.workers[0]
    insights = args.insights[0]
    env = dict(MIXED_INPUT_ENV, SMSTALLY_INSIGHTS=insights)
    label = ", auto, CRC32 receipts" + variant("insights ", insights, [insights], "on")
    r = measure_smstally(broker, work, wl, n, timeout_for(wl.events), env, label)
    r.details["rerouted_per_event"] = r.details["rerouted"] / wl.events
    say(
        f"{run_line(r)}; {r.details['rerouted']:.0f} records forwarded, "
        f"{r.details['rerouted_per_event']:.2f} per input event"
    )
    return r


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000, help="about this many input events")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--campaigns", type=int, default=8)
    ap.add_argument("--workers", default="1", help="comma-separated worker counts, each a fresh group (e.g. 1,2)")
    ap.add_argument(
        "--partitioning", default="auto", help="comma-separated SMSTALLY_INPUT_PARTITIONING modes (e.g. trust,auto)"
    )
    ap.add_argument("--insights", default="on", help="comma-separated SMSTALLY_INSIGHTS values (e.g. on,off)")
    ap.add_argument("--mixed", action="store_true", help="also: every receipt on a CRC32 partition, under auto")
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--skip-ceiling", action="store_true")
    ap.add_argument("--latency", action="store_true", help="latency mode instead of throughput")
    ap.add_argument("--rate", type=float, help="latency load, events/s (default: half the warm-up throughput)")
    ap.add_argument("--duration", type=float, default=60.0, help="latency load duration, s")
    ap.add_argument("--warmup-events", type=int, default=50_000, help="latency mode: warm-up workload size")
    ap.add_argument("--json", type=Path, help="write the figures there")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs, data dirs)")
    args = ap.parse_args(argv)
    try:
        args.workers = [int(x) for x in str(args.workers).split(",") if x.strip()]
    except ValueError:
        ap.error("--workers takes comma-separated integers, e.g. 1,2")
    if not args.workers or min(args.workers) < 1:
        ap.error("--workers needs counts >= 1")
    args.partitioning = [x.strip() for x in args.partitioning.split(",") if x.strip()]
    if not args.partitioning or set(args.partitioning) - {"auto", "repartition", "trust"}:
        ap.error("--partitioning takes comma-separated modes among auto, repartition, trust")
    args.insights = list(dict.fromkeys(x.strip() for x in args.insights.split(",") if x.strip()))
    if not args.insights or set(args.insights) - {"on", "off"}:
        ap.error("--insights takes on, off or on,off")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)  # workers run as `python -m streams.cli worker`, the naive app as `-m bench.naive_faust`
    work = Path(tempfile.mkdtemp(prefix="smstally-bench-"))
    broker = EmbeddedBroker(f"kafka://127.0.0.1:{free_port()}", log_path=work / "broker.log")
    failed = False
    try:
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
        say(f"broker {broker.url}, work dir {work}")
        out = run_latency(args, broker, work, base) if args.latency else run_throughput(args, broker, work, base)
        if args.json:
            args.json.write_text(json.dumps(out, indent=2))
        return 0
    except BenchFailure as exc:
        failed = True
        print(f"BENCH FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        broker.stop()
        if args.keep or failed:
            print(f"work dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


async def probe_traffic(
    producer, codec, s, cid: str, ids, rate: float, duration: float, receipt_delay: float, produced: list[float]
) -> float:
    """The latency probe's traffic: a launch, then sends at rate/2 and each one's receipt
    ``receipt_delay`` s later, for ``duration`` s; the time every receipt was handed to the
    producer goes to ``produced``. Returns the events/s achieved. Shared by both benchmarks'
    latency runs.

    Every record is encoded before the load starts, with the event times it is planned to be
    sent at, and what is due is handed over every 5 ms as one batch per partition
    (``BenchOutbox``): the generator shares the two cores with what it measures, and
    encoding on the fly took about a third of a core at 6 000 events/s."""
    interval = 2.0 / rate
    n = max(1, int(duration / interval))
    mids = list(itertools.islice(ids, n))
    start = time.time() + 1.0 + n * 40e-6  # the planned start: after the encoding below
    t = [int((start + k * interval) * 1000) for k in range(n)]
    r = [int((start + k * interval + receipt_delay) * 1000) for k in range(n)]
    sends = [
        codec.encode(
            "smstally.MessageSent",
            {
                "event_id": f"{mid}-s",
                "campaign_id": cid,
                "message_id": mid,
                "contact_id": None,
                "phone": f"+336{10_000_000 + k % 89_999_999:08d}",
                "sent_at": t[k],
                "outcome": "SUBMITTED",
                "not_sent_reason": None,
                "segments": 1,
                "credits": 0.05,
                "provider": "smpp",
                "country": "FR",
                "operator": "Orange",
            },
        )
        for k, mid in enumerate(mids)
    ]
    receipts = [
        codec.encode(
            "smstally.DeliveryReceipt",
            {
                "event_id": f"{mid}-r",
                "message_id": mid,
                "campaign_id": cid,
                "provider": "smpp",
                "status": "DELIVRD",
                "error_code": None,
                "done_at": r[k],
                "received_at": r[k],
            },
        )
        for k, mid in enumerate(mids)
    ]
    keys = [mid.encode() for mid in mids]
    now_ms = int(time.time() * 1000)
    await producer.send_and_wait(
        s.topics.campaigns,
        key=cid.encode(),
        value=codec.encode(
            "smstally.CampaignLaunched",
            {
                "event_id": f"{cid}-launch",
                "campaign_id": cid,
                "name": "latency probe",
                "kind": "AUTOMATED",
                "text": "BENCH: latency probe. STOP au 36111",
                "sender_id": "BENCH",
                "sms_type": "transactional",
                "created_at": now_ms,
                "launched_at": now_ms,
                "launch_list_size": 0,
            },
        ),
    )
    outbox = BenchOutbox(producer)
    await asyncio.sleep(max(0.0, start - time.time()))
    sent = received = 0
    while received < n:
        now = time.time()
        while sent < n and t[sent] <= now * 1000:
            outbox.add(s.topics.message_sent, keys[sent], sends[sent])
            sent += 1
        due = received
        while due < sent and r[due] <= now * 1000:
            outbox.add(s.topics.dlr, keys[due], receipts[due])
            due += 1
        await outbox.ship()
        produced.extend([time.time()] * (due - received))  # handed to the producer now
        received = due
        await asyncio.sleep(0.005)
    await outbox.drain()
    return 2 * n / max((t[-1] - t[0]) / 1000, interval)


if __name__ == "__main__":
    sys.exit(main())
