#!/usr/bin/env python3
"""How long a worker restarted on an EMPTY data dir takes to rebuild from the changelogs.

    .venv/bin/python scripts/rebuild_bench.py                     # 200 000 tracked messages
    .venv/bin/python scripts/rebuild_bench.py --messages 1000000 --partitions 8

Starts the embedded broker on a free port, creates the topics as the worker does
(``streams.topics.ensure_topics``), writes N synthetic message states straight into the
messages changelog (``<app>-messages-changelog``: key = message id, value =
``state_codec.encode_message``, on the partition the state names, as the worker itself
would have written them), then starts one real ``smstally worker`` on an empty data dir
and times:

- process start -> first ``/health/ready`` 200 (the whole restart, as an orchestrator sees it);
- Faust's changelog recovery, from the worker log ("Highwater for active changelog
  partitions" -> "Recovery complete": reading the changelog into RocksDB);
- our stage rebuild (the "message stages rebuilt ... in X s" log line: decoding every state
  and re-deriving counters, deadlines and orphan heaps).

States are realistic: a send (UUID ids, E.164 phone, provider, country, operator) and one
or two receipts (mostly DELIVRD, some ENROUTE-then-final, a few still pending, soft and
hard bounces), a few NOT_SENT / PROVIDER_ERROR sends. Only the messages changelog is
filled; the phones and campaigns changelogs stay empty (a real restart also restores one
phone state per distinct phone). Peak RSS is the worker's VmHWM from /proc. Prints one
summary line; every process it starts is stopped, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaProducer  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402

from bench.throughput import SHIP_EVERY, BenchOutbox  # noqa: E402
from processors import catalog  # noqa: E402
from processors.events import MessageSent  # noqa: E402
from processors.message_fold import HOUR_MS, FinalReceipt, MessageState  # noqa: E402
from processors.partitioner import partition_for  # noqa: E402
from processors.state_codec import decode_message, encode_message  # noqa: E402
from streams.compat import tansu  # noqa: E402
from streams.config import from_env  # noqa: E402
from streams.devtools.broker import EmbeddedBroker, free_port  # noqa: E402
from streams.devtools.processes import WorkerProcess  # noqa: E402
from streams.topics import COMPACTED, ensure_topics, existing_partitions  # noqa: E402

BASE_MS = 1_795_420_800_000  # 2026-11-23T08:00:00Z
MINUTE = 60_000
BATCH_BYTES = 512 * 1024
OPERATORS = ("Orange", "SFR", "Bouygues", "Free", None)
PROVIDERS = ("smpp", "smpp", "smpp", "twilio", "vonage")


def synthetic_states(n: int, partitions: int, seed: int):
    """(partition, key, value) for n realistic message states, deterministic per seed."""
    rng = random.Random(seed)
    rand, bits = rng.random, rng.getrandbits
    campaigns = [str(uuid.UUID(int=bits(128), version=4)) for _ in range(40)]
    day = 24 * HOUR_MS

    def uid() -> str:
        return str(uuid.UUID(int=bits(128), version=4))

    for i in range(n):
        mid = uid()
        sent_at = BASE_MS + int(rand() * day)
        provider = PROVIDERS[i % len(PROVIDERS)]
        r = rand()
        outcome = "NOT_SENT" if r < 0.02 else "PROVIDER_ERROR" if r < 0.03 else "SUBMITTED"
        send = MessageSent(
            uid(),
            campaigns[int(rand() * len(campaigns))],
            mid,
            f"ct-{bits(40):x}",
            f"+336{int(rand() * 1e8):08d}",
            True,
            sent_at,
            outcome,
            "OPTED_OUT" if outcome == "NOT_SENT" else None,
            1 + (rand() < 0.1),
            0.0 if outcome == "NOT_SENT" else 0.045,
            provider,
            "FR",
            OPERATORS[int(rand() * len(OPERATORS))],
        )
        receipts: list[str] = []
        best = None
        last_pending = None
        max_t = sent_at
        if outcome != "NOT_SENT":
            t = sent_at + int(rand() * 30_000) + 2_000
            if rand() < 0.3 or r < 0.03:  # an intermediate ENROUTE before the final one
                receipts.append(uid())
                last_pending = t
                max_t = max(max_t, t + 500)
                t += int(rand() * 10 * MINUTE)
            f = rand()
            if f < 0.05 and last_pending is not None:
                pass  # still pending: only the ENROUTE
            else:
                status = (
                    catalog.DELIVERED
                    if f < 0.85
                    else catalog.SOFT_BOUNCE
                    if f < 0.95
                    else catalog.HARD_BOUNCE
                    if f < 0.98
                    else catalog.UNKNOWN
                )
                code = (
                    None
                    if status in (catalog.DELIVERED, catalog.UNKNOWN)
                    else "001"
                    if status == catalog.HARD_BOUNCE
                    else "027"
                )
                eid = uid()
                receipts.append(eid)
                best = FinalReceipt(t, catalog.TIE_RANK[status], eid, status, code, provider)
                max_t = max(max_t, t + int(rand() * 5_000))
        p = partition_for(mid.encode(), partitions)
        state = MessageState(mid, p, send, frozenset({send.event_id}), frozenset(receipts), best, last_pending, max_t)
        yield p, mid.encode(), encode_message(state)


async def fill_changelog(bootstrap: str, topic: str, n: int, partitions: int, seed: int) -> tuple[int, float]:
    """Write the states with large per-partition batches; returns (bytes, seconds)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks=1,
        linger_ms=0,
        max_batch_size=BATCH_BYTES,
        max_request_size=2 * BATCH_BYTES,
        request_timeout_ms=120_000,
    )
    await producer.start()
    t0 = time.monotonic()
    total = 0
    try:
        outbox = BenchOutbox(producer)
        for i, (p, key, value) in enumerate(synthetic_states(n, partitions, seed), 1):
            total += len(key) + len(value)
            outbox.add(topic, key, value, partition=p)
            if i % SHIP_EVERY == 0:
                await outbox.ship()
        await outbox.drain()
    finally:
        await producer.stop()
    return total, time.monotonic() - t0


async def prepare_topics(s, changelog: str) -> int:
    """Topics as the worker creates them, plus the messages changelog sized like the table."""
    plan = await ensure_topics(s)
    admin = AIOKafkaAdminClient(bootstrap_servers=s.bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(changelog, plan.message_partitions, s.replication_factor, topic_configs=dict(COMPACTED))]
        )
    finally:
        await admin.close()
    got = (await existing_partitions(s.bootstrap)).get(changelog)
    if got != plan.message_partitions:
        raise RuntimeError(f"{changelog} has {got} partitions, expected {plan.message_partitions}")
    return plan.message_partitions


_TS = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def _log_times(path: Path) -> dict[str, float | int]:
    """Epoch seconds of the recovery milestones in a worker log, and the rebuild figures."""
    out: dict[str, float | int] = {}
    marks = {
        "recovery_start": "Highwater for active changelog partitions",
        "recovery_done": "[^---Recovery]: Recovery complete",
    }
    for line in path.read_text(errors="replace").splitlines():
        m = _TS.match(line)
        if not m:
            continue
        t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        for name, needle in marks.items():
            if needle in line and name not in out:
                out[name] = t
        r = re.search(r"message stages rebuilt for partitions .*\((\d+) messages\)(?: in ([\d.]+) s)?", line)
        if r and "rebuilt_messages" not in out:
            out["rebuilt_messages"] = int(r.group(1))
            if r.group(2):
                out["rebuild_s"] = float(r.group(2))
            out["rebuild_logged"] = t
    return out


def _vm(pid: int, field: str) -> int | None:
    """A /proc/PID/status field in kB (VmHWM = peak resident set)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, TypeError):
        return float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=200_000, help="message states in the changelog")
    ap.add_argument("--partitions", type=int, default=8, help="SMSTALLY_PARTITIONS (message partitions)")
    ap.add_argument("--store", default="rocksdb", choices=("rocksdb", "memory"), help="SMSTALLY_STORE")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=1800, help="seconds to wait for /health/ready")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs, data dir)")
    args = ap.parse_args(argv)
    os.chdir(ROOT)  # the worker runs as `python -m streams.cli worker`

    work = Path(tempfile.mkdtemp(prefix="smstally-rebuild-"))
    broker = EmbeddedBroker(f"kafka://127.0.0.1:{free_port()}", log_path=work / "broker.log")
    worker: WorkerProcess | None = None
    try:
        broker.start()
        tansu.apply("tansu")
        data_dir = work / "data"
        env = dict(
            os.environ,
            SMSTALLY_BROKER=broker.url,
            SMSTALLY_BROKER_FLAVOR="tansu",
            SMSTALLY_PARTITIONS=str(args.partitions),
            SMSTALLY_DATA_DIR=str(data_dir),
            SMSTALLY_WEB_PORT=str(free_port()),
            SMSTALLY_STORE=args.store,
            SMSTALLY_LOG_LEVEL="info",
        )
        s = from_env(env)
        changelog = f"{s.app_id}-messages-changelog"
        partitions = asyncio.run(prepare_topics(s, changelog))
        nbytes, produce_s = asyncio.run(fill_changelog(s.bootstrap, changelog, args.messages, partitions, args.seed))
        sample = next(synthetic_states(1, partitions, args.seed))
        decode_message(sample[2])  # the bytes are what the worker's codec reads
        print(
            f"changelog {changelog}: {args.messages} states, {partitions} partitions, "
            f"{nbytes / 1e6:.1f} MB ({nbytes / max(args.messages, 1):.0f} B/state), written in {produce_s:.1f} s",
            flush=True,
        )

        assert not data_dir.exists() or not any(data_dir.iterdir()), "data dir must be empty"
        worker = WorkerProcess(env, work / "worker.log")
        broker_cpu0 = _cpu_s(broker.pid)
        t_start = time.time()
        worker.start()
        deadline = time.monotonic() + args.timeout
        rss: list[tuple[float, int]] = []  # (epoch s, VmRSS kB) every 50 ms
        while True:
            if not worker.running:
                raise RuntimeError(f"worker exited with {worker.proc.returncode}:\n{worker.tail()}")
            if worker.ready():
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker not ready after {args.timeout:g} s:\n{worker.tail()}")
            rss.append((time.time(), _vm(worker.proc.pid, "VmRSS") or 0))
            time.sleep(0.05)
        ready_s = time.time() - t_start
        hwm = _vm(worker.proc.pid, "VmHWM") or max(r for _, r in rss)
        rss_ready = _vm(worker.proc.pid, "VmRSS") or 0
        worker_cpu, broker_cpu = _cpu_s(worker.proc.pid), _cpu_s(broker.pid) - broker_cpu0
        marks = _log_times(worker.log_path)
        if marks.get("rebuilt_messages") != args.messages:
            raise RuntimeError(f"worker rebuilt {marks.get('rebuilt_messages')} messages, expected {args.messages}")
        recovery_s = marks["recovery_done"] - marks["recovery_start"]
        rss_recovered = max((r for t, r in rss if t <= marks["recovery_done"]), default=0)
        rebuild_s = marks.get("rebuild_s", float("nan"))
        per_m = 1e6 / args.messages
        print(
            f"rebuild {args.messages} messages ({partitions} partitions, {args.store}, empty data dir): "
            f"ready {ready_s:.1f} s after start ({ready_s * per_m:.1f} s/M); "
            f"faust changelog recovery {recovery_s:.1f} s ({recovery_s * per_m:.1f} s/M); "
            f"stage rebuild {rebuild_s:.1f} s ({rebuild_s * per_m:.1f} s/M); "
            f"start->recovery start {marks['recovery_start'] - t_start:.1f} s; "
            f"worker peak RSS {hwm / 1024:.0f} MB ({rss_recovered / 1024:.0f} MB at the end of Faust's recovery, "
            f"{rss_ready / 1024:.0f} MB when ready); "
            f"CPU until ready: worker {worker_cpu:.1f} s, broker {broker_cpu:.1f} s",
            flush=True,
        )
        return 0
    finally:
        if worker is not None:
            worker.stop(grace=10)
        broker.stop()
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
