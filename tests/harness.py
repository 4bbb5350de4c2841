"""A real cluster for integration tests: the embedded broker, worker processes, clients.

Nothing here is mocked: records go through the Tansu broker and real ``smstally worker``
processes, exactly as in the demo. Every process is stopped in ``close()``, which the
fixtures call even when a test fails.
"""
from __future__ import annotations

import asyncio
import http.client
import urllib.error
import urllib.request
import itertools
import os
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from schemas.codec import AvroCodec, DecodeError
from streams.broker import EmbeddedBroker, free_port
from streams.clients import publish
from streams.compat import tansu
from streams.config import Settings, from_env
from streams.metrics import records_handled
from streams.processes import WorkerProcess

_ids = itertools.count()


class Cluster:
    def __init__(self, tmp: Path, partitions: int = 4):
        self.tmp = tmp
        self.broker = EmbeddedBroker(f"kafka://127.0.0.1:{free_port()}", log_path=tmp / "broker.log")
        self.partitions = partitions
        self.workers: list[WorkerProcess] = []
        self.codec = AvroCodec()

    def start(self) -> "Cluster":
        self.broker.start()
        tansu.apply("tansu")
        return self

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, SMSTALLY_BROKER=self.broker.url, SMSTALLY_BROKER_FLAVOR="tansu",
                    SMSTALLY_PARTITIONS=str(self.partitions), SMSTALLY_LOG_LEVEL="info")

    @property
    def settings(self) -> Settings:
        return from_env(self.env)

    def worker(self, data_dir: Path | None = None, **extra: str) -> WorkerProcess:
        n = next(_ids)
        env = dict(self.env, SMSTALLY_DATA_DIR=str(data_dir or self.tmp / f"data-{n}"),
                   SMSTALLY_WEB_PORT=str(free_port()))
        env.update(extra)
        w = WorkerProcess(env, self.tmp / f"worker-{n}.log").start()
        self.workers.append(w)
        return w

    def publish(self, emits) -> int:
        return asyncio.run(publish(self.settings, emits, self.codec))

    def produce_raw(self, topic: str, items: list[tuple[bytes | None, bytes]]) -> None:
        from aiokafka import AIOKafkaProducer

        async def go() -> None:
            p = AIOKafkaProducer(bootstrap_servers=self.broker.bootstrap)
            await p.start()
            try:
                for k, v in items:
                    await p.send_and_wait(topic, key=k, value=v)
            finally:
                await p.stop()
        asyncio.run(go())

    def read_topic(self, topic: str, idle_s: float = 1.0) -> list[tuple[bytes | None, dict | bytes, int, int]]:
        """Everything on ``topic`` (until ``idle_s`` without new records): (key, value, partition, offset)."""
        async def go() -> list:
            c = AIOKafkaConsumer(topic, bootstrap_servers=self.broker.bootstrap, group_id=None,
                                 auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_wait_ms=100)
            await c.start()
            out: list = []
            try:
                last = time.monotonic()
                while time.monotonic() - last < idle_s:
                    batch = await c.getmany(timeout_ms=200)
                    for records in batch.values():
                        last = time.monotonic()
                        for r in records:
                            try:
                                out.append((r.key, self.codec.decode(r.value)[1], r.partition, r.offset))
                            except DecodeError:
                                out.append((r.key, r.value, r.partition, r.offset))
            finally:
                await c.stop()
            return out
        return asyncio.run(go())

    def latest_by_version(self, topic: str, key_field: str) -> tuple[dict[str, dict], list[str]]:
        """Latest record per key by version, and any version that went back for a key."""
        latest: dict[str, dict] = {}
        for _, v, _, _ in self.read_topic(topic):
            k = v[key_field]
            cur = latest.get(k)
            if cur is None or v["version"] >= cur["version"]:
                latest[k] = v
        return latest, []

    def close(self) -> None:
        for w in self.workers:
            w.stop(grace=5)
        self.broker.stop()


def get(port: int, path: str, timeout: float = 1.0) -> tuple[int | None, bytes]:
    """(HTTP status, body), or (None, b"") when nothing answers on the port."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (OSError, http.client.HTTPException):
        return None, b""


def processed(port: int) -> int:
    """Input records this worker process has handled: folded, or dead-lettered as bad input."""
    status, body = get(port, "/metrics", timeout=5)
    assert status == 200, f"/metrics answered {status}"
    return records_handled(body.decode())
