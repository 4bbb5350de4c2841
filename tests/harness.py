"""A real cluster for integration tests: the embedded broker, worker processes, clients.

Nothing here is mocked: records go through the Tansu broker and real ``smstally worker``
processes, exactly as in the demo. Every process is stopped in ``close()``, which the
fixtures call even when a test fails.
"""

from __future__ import annotations

import asyncio
import http.client
import itertools
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from schemas.codec import AvroCodec
from streams.compat import tansu
from streams.config import Settings, from_env
from streams.devtools.broker import EmbeddedBroker, free_port
from streams.devtools.processes import WorkerProcess
from streams.ops.clients import ReadRecord, TopicReader, publish

_ids = itertools.count()


class Cluster:
    def __init__(self, tmp: Path, partitions: int = 4):
        self.tmp = tmp
        self.broker = EmbeddedBroker(f"kafka://127.0.0.1:{free_port()}", log_path=tmp / "broker.log")
        self.partitions = partitions
        self.workers: list[WorkerProcess] = []
        self.codec = AvroCodec()

    def start(self) -> Cluster:
        self.broker.start()
        tansu.apply("tansu")
        return self

    @property
    def env(self) -> dict[str, str]:
        return dict(
            os.environ,
            SMSTALLY_BROKER=self.broker.url,
            SMSTALLY_BROKER_FLAVOR="tansu",
            SMSTALLY_PARTITIONS=str(self.partitions),
            SMSTALLY_LOG_LEVEL="info",
        )

    @property
    def settings(self) -> Settings:
        return from_env(self.env)

    def worker(self, data_dir: Path | None = None, **extra: str) -> WorkerProcess:
        n = next(_ids)
        env = dict(
            self.env, SMSTALLY_DATA_DIR=str(data_dir or self.tmp / f"data-{n}"), SMSTALLY_WEB_PORT=str(free_port())
        )
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

    def suppression_mismatches(self, expected: dict[str, tuple[str, ...]], timeout: float = 30.0) -> list[str]:
        """``simulator.check.suppression_mismatches`` on sms.suppressions, read again until
        there are none or ``timeout`` passes: the phone stage may still be folding the last
        facts (a RESUBSCRIBE changes no figure, so converged stats do not say it is done)."""
        from simulator.check import suppression_mismatches

        deadline = time.monotonic() + timeout
        while True:
            records = [v for _, v, _, _ in self.read_topic(self.settings.topics.suppressions)]
            wrong = suppression_mismatches(expected, records)
            if not wrong or time.monotonic() > deadline:
                return wrong
            time.sleep(0.5)

    def read_topic(self, topic: str, idle_s: float = 1.0) -> list[ReadRecord]:
        """Everything on ``topic`` (until ``idle_s`` without new records): (key, value, partition,
        offset), the value decoded or, when it is not Avro, its bytes."""

        async def go() -> list[ReadRecord]:
            async with TopicReader(self.settings, topic, self.codec) as reader:
                return await reader.read_all(idle_s)

        return asyncio.run(go())

    def latest_by_version(self, topic: str, key_field: str) -> dict[str, dict]:
        """Latest record per key by version."""
        latest: dict[str, dict] = {}
        for _, v, _, _ in self.read_topic(topic):
            k = v[key_field]
            cur = latest.get(k)
            if cur is None or v["version"] >= cur["version"]:
                latest[k] = v
        return latest

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


def records_handled(page: str) -> int:
    """Input records a worker has handled (folded, or dead-lettered as bad input), from its
    /metrics page; orphan-receipt reports are not input records."""
    n = 0.0
    for line in page.splitlines():
        if line.startswith("smstally_events_total{") or (
            line.startswith("smstally_dead_letters_total{") and 'kind="orphan_receipt"' not in line
        ):
            n += float(line.split()[-1])
    return int(n)


def processed(port: int) -> int:
    """Input records this worker process has handled: folded, or dead-lettered as bad input."""
    status, body = get(port, "/metrics", timeout=5)
    assert status == 200, f"/metrics answered {status}"
    return records_handled(body.decode())


class ReadSide:
    """``smstally api`` processes beside a Cluster, and an HTTP client for them.

    The API reads the output topics the cluster's workers write, into ``read_db`` (an SQLite
    file under its data dir by default, or a PostgreSQL URL).
    """

    def __init__(self, cluster: Cluster, read_db: str | None = None, token: str | None = None):
        self.cluster = cluster
        self.read_db = read_db
        self.token = token
        self.apis: list = []
        self.data_dir = cluster.tmp / f"api-data-{next(_ids)}"

    def start(self, **extra: str):
        from streams.devtools.processes import ApiProcess

        env = dict(self.cluster.env, SMSTALLY_DATA_DIR=str(self.data_dir), SMSTALLY_API_PORT=str(free_port()))
        if self.read_db:
            env["SMSTALLY_READ_DB"] = self.read_db
        if self.token:
            env["SMSTALLY_API_TOKEN"] = self.token
        env.update(extra)
        api = ApiProcess(env, self.cluster.tmp / f"api-{next(_ids)}.log").start()
        self.apis.append(api)
        return api

    @property
    def api(self):
        return self.apis[-1]

    def get_json(self, path: str, timeout: float = 10.0):
        """(status, parsed JSON body) from the newest API process, with the token if any."""
        import json

        status, body = self.get(path, timeout)
        return status, (json.loads(body) if body else None)

    def get(self, path: str, timeout: float = 10.0) -> tuple[int | None, bytes]:
        req = urllib.request.Request(f"{self.api.url}{path}")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (OSError, http.client.HTTPException):
            return None, b""

    def all_items(self, path: str, limit: int = 1000) -> list[dict]:
        """Every item of a paged listing, following next_cursor."""
        from urllib.parse import quote

        sep = "&" if "?" in path else "?"
        items, cursor = [], None
        while True:
            url = f"{path}{sep}limit={limit}" + (f"&cursor={quote(cursor)}" if cursor else "")
            status, body = self.get_json(url)
            assert status == 200, f"GET {url} answered {status}: {body}"
            items += body["items"]
            cursor = body["next_cursor"]
            if not cursor:
                return items

    def wait_campaigns(self, expected: dict, timeout: float = 120.0) -> list[str]:
        """Until /api/campaigns equals the expected totals; returns the last differences."""
        from simulator.check import mismatches

        deadline = time.monotonic() + timeout
        diff = ["no answer"]
        while time.monotonic() < deadline:
            status, body = self.get_json("/api/campaigns?limit=1000")
            if status == 200:
                diff = mismatches(expected, {c["campaign_id"]: c for c in body["items"]})
                if not diff:
                    return []
            time.sleep(0.3)
        return diff

    def close(self) -> None:
        for a in self.apis:
            a.stop(grace=5)

    # -- helpers for the read-model tests (test_readmodel_*.py) ------------------------------
    def post_json(self, path: str, body: object, timeout: float = 10.0) -> tuple[int, object]:
        """(status, parsed JSON answer) of a POST to the newest API process, with the token if any."""
        import json

        req = urllib.request.Request(
            f"{self.api.url}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def request(self, path: str, *, auth: bool = True, timeout: float = 10.0) -> tuple[int | None, dict, bytes]:
        """(status, lower-cased headers, body) from the newest API; ``auth=False``: without the token."""
        req = urllib.request.Request(f"{self.api.url}{path}")
        if auth and self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()
        except (OSError, http.client.HTTPException):
            return None, {}, b""

    def wait_ready(self, timeout: float = 90.0) -> dict:
        """Until the newest API's /health/ready answers 200; returns its body (fails with the log)."""
        import json

        deadline = time.monotonic() + timeout
        body: bytes = b""
        while time.monotonic() < deadline:
            if not self.api.running:
                raise RuntimeError(
                    f"smstally api exited with {self.api.proc.returncode}; log {self.api.log_path}:\n{self.api.tail()}"
                )
            status, _, body = self.request("/health/ready", auth=False, timeout=3)
            if status == 200:
                return json.loads(body)
            time.sleep(0.2)
        raise TimeoutError(f"smstally api not ready after {timeout}s: {body[:300]!r}\n{self.api.tail()}")

    def end_offsets(self, topics: list[str]) -> dict[tuple[str, int], int]:
        """(topic, partition) -> end offset, for every partition of ``topics``."""
        from aiokafka.structs import TopicPartition

        async def go() -> dict:
            c = AIOKafkaConsumer(bootstrap_servers=self.cluster.broker.bootstrap, group_id=None)
            await c.start()
            try:
                await c.topics()
                tps = [TopicPartition(t, p) for t in topics for p in sorted(c.partitions_for_topic(t) or ())]
                return {(tp.topic, tp.partition): o for tp, o in (await c.end_offsets(tps)).items()}
            finally:
                await c.stop()

        return asyncio.run(go())

    def topic_records(self, topic: str, timeout: float = 60.0) -> list[dict]:
        """Every decoded record of an output topic, read until there are as many as its end
        offsets say (``Cluster.read_topic`` alone stops at the first idle second)."""
        deadline = time.monotonic() + timeout
        while True:
            want = sum(self.end_offsets([topic]).values())
            got = [v for _, v, _, _ in self.cluster.read_topic(topic, idle_s=0.5)]
            if len(got) >= want:
                return got
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: read {len(got)} records of {want}")

    def settled_end_offsets(self, topics: list[str], quiet_s: float = 1.5, timeout: float = 60.0) -> dict:
        """The end offsets of ``topics`` once they have not moved for ``quiet_s`` (the workers are done)."""
        deadline = time.monotonic() + timeout
        ends = self.end_offsets(topics)
        while True:
            time.sleep(quiet_s)
            now = self.end_offsets(topics)
            if now == ends:
                return now
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topics} still growing after {timeout}s")
            ends = now
