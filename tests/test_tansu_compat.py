"""Tansu's quirks, measured on the real broker, and the layer that hides them.

The raw-behaviour assertions are deliberate: if a Tansu upgrade fixes a bug,
these tests fail and tell us a workaround in streams/compat/tansu.py can go.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from streams.compat import tansu
from streams.devtools.broker import EmbeddedBroker, free_port

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def no_patch():
    """Run a test without the end-offset patch, restoring the prior state."""
    was = tansu.installed()
    tansu.uninstall()
    try:
        yield
    finally:
        tansu.uninstall()
        if was:
            tansu.install()


def _tag() -> str:
    return uuid.uuid4().hex[:8]


async def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def _raw_and_true_end(bootstrap: str, tps) -> tuple[dict, dict]:
    """ListOffsets(latest) straight off the wire, and the Fetch high watermark."""
    from aiokafka.client import AIOKafkaClient
    from aiokafka.protocol.offset import OffsetRequest

    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        node = client.get_random_node()
        by_topic: dict[str, list] = {}
        for tp in tps:
            by_topic.setdefault(tp.topic, []).append((tp.partition, -1))
        response = await client.send(node, OffsetRequest(-1, 0, list(by_topic.items())))
        raw = {}
        for topic, parts in response.topics:
            for partition, error_code, *info in parts:
                assert error_code == 0
                raw[tansu._tp(topic, partition)] = info[-1]
        true = await tansu.log_end_offsets(client, node, {tp: 0 for tp in tps})
        return raw, true
    finally:
        await client.close()


# --------------------------------------------------------------------------
# settings and switches


def test_faust_settings_per_flavor():
    assert tansu.faust_settings("kafka") == {}
    assert tansu.faust_settings(None) == {}
    settings = tansu.faust_settings("tansu")
    assert settings["broker_session_timeout"] <= 2.0
    assert settings["broker_heartbeat_interval"] < settings["broker_session_timeout"]
    assert settings["broker_rebalance_timeout"] <= 2.0
    assert settings["processing_guarantee"] == "at_least_once"
    assert tansu.faust_settings(" TANSU ") == settings
    with pytest.raises(ValueError, match="unknown broker flavor"):
        tansu.faust_settings("redpanda")


def test_faust_accepts_the_settings():
    import faust

    app = faust.App(f"settings-{_tag()}", **tansu.faust_settings("tansu"))
    assert app.conf.broker_session_timeout == 2.0
    assert app.conf.processing_guarantee.value == "at_least_once"


def test_apply_only_patches_for_tansu(no_patch):
    from aiokafka.consumer.fetcher import Fetcher

    original = Fetcher._proc_offset_request
    tansu.apply("kafka")
    assert not tansu.installed()
    assert Fetcher._proc_offset_request is original

    tansu.apply("tansu")
    patched = Fetcher._proc_offset_request
    assert tansu.installed() and patched is not original
    tansu.apply("tansu")  # idempotent: no double wrapping
    assert Fetcher._proc_offset_request is patched
    assert patched.__wrapped__ is original

    tansu.uninstall()
    assert Fetcher._proc_offset_request is original


def test_unverified_aiokafka_warns_but_installs(no_patch, monkeypatch, caplog):
    import aiokafka

    monkeypatch.setattr(aiokafka, "__version__", "0.9.0")
    with caplog.at_level(logging.WARNING, logger="streams.compat.tansu"):
        assert tansu.install() is True
    assert "verified with aiokafka" in caplog.text
    assert tansu.installed()


def test_missing_hook_warns_and_leaves_aiokafka_alone(no_patch, monkeypatch, caplog):
    from aiokafka.consumer.fetcher import Fetcher

    monkeypatch.delattr(Fetcher, "_proc_offset_request")
    with caplog.at_level(logging.WARNING, logger="streams.compat.tansu"):
        assert tansu.install() is False
    assert "NOT installed" in caplog.text
    assert not tansu.installed()


# --------------------------------------------------------------------------
# the end-offset bug, measured


@pytest.mark.integration
def test_end_offsets_wrong_without_layer_right_with_it(broker, no_patch):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    topic = f"endoffsets-{_tag()}"
    tp = TopicPartition(topic, 0)
    sizes = [1, 3, 5, 1, 1, 4]

    async def scenario():
        await _create_topic(broker.bootstrap, topic, 1)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        await consumer.start()
        rows = []
        try:
            for size in sizes:
                batch = producer.create_batch()
                for i in range(size):
                    assert batch.append(key=None, value=b"v%d" % i, timestamp=None)
                batch.close()
                meta = await (await producer.send_batch(batch, topic, partition=0))
                raw, true = await _raw_and_true_end(broker.bootstrap, [tp])
                tansu.uninstall()
                unpatched = (await consumer.end_offsets([tp]))[tp]
                tansu.install()
                patched = (await consumer.end_offsets([tp]))[tp]
                rows.append((meta.offset, raw[tp], true[tp], unpatched, patched))
            # The position-reset path ("latest"), with the layer.
            consumer.assign([tp])
            await consumer.seek_to_end(tp)
            position = await consumer.position(tp)
        finally:
            await consumer.stop()
            await producer.stop()
        return rows, position

    rows, position = asyncio.run(scenario())
    bases = [r[0] for r in rows]
    assert bases == [0, 1, 4, 9, 10, 11]
    # Tansu's answer: base offset of the newest batch + 1 (the bug) ...
    assert [r[1] for r in rows] == [1, 2, 5, 10, 11, 12]
    # ... while the log really ends here (Fetch's high watermark).
    assert [r[2] for r in rows] == [1, 4, 9, 10, 11, 15]
    # aiokafka passes the wrong answer on; with the layer it is right.
    assert [r[3] for r in rows] == [r[1] for r in rows]
    assert [r[4] for r in rows] == [r[2] for r in rows]
    assert position == 15


@pytest.mark.integration
def test_an_uncorrected_end_offset_is_asked_again_never_passed_on(broker, no_patch, monkeypatch, caplog):
    """When the correcting Fetch leaves a partition out (or fails), Tansu's own answer may
    be low: the lookup is retried rather than answered with it."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    topic = f"endoffsets-retry-{_tag()}"
    tp = TopicPartition(topic, 0)
    real, calls = tansu.log_end_offsets, []

    async def flaky(client, node_id, start, **kw):
        calls.append(dict(start))
        if len(calls) == 1:
            return {}  # the broker left the partition out of its answer
        if len(calls) == 2:
            raise ConnectionError("connection reset")
        return await real(client, node_id, start, **kw)

    async def scenario():
        await _create_topic(broker.bootstrap, topic, 1)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, retry_backoff_ms=10)
        await producer.start()
        await consumer.start()
        try:
            batch = producer.create_batch()
            for i in range(5):
                assert batch.append(key=None, value=b"v%d" % i, timestamp=None)
            batch.close()
            await (await producer.send_batch(batch, topic, partition=0))
            tansu.install()
            monkeypatch.setattr(tansu, "log_end_offsets", flaky)
            return (await consumer.end_offsets([tp]))[tp]
        finally:
            await consumer.stop()
            await producer.stop()

    with caplog.at_level("WARNING", logger=tansu.__name__):
        end = asyncio.run(scenario())
    assert end == 5  # Tansu alone says 1 (one batch of five)
    assert len(calls) == 3
    assert "no high watermark for" in caplog.text and "fetch failed" in caplog.text


@pytest.mark.integration
def test_fetch_without_wait_returns_nothing(broker):
    """Why the layer's Fetch waits >= 1 ms (and detect_flavor's probe)."""
    from aiokafka.client import AIOKafkaClient
    from aiokafka.protocol.fetch import FetchRequest

    topic = f"nowait-{_tag()}"

    async def scenario():
        await _create_topic(broker.bootstrap, topic, 1)
        client = AIOKafkaClient(bootstrap_servers=broker.bootstrap)
        await client.bootstrap()
        try:
            node = client.get_random_node()
            answers = {}
            for wait_ms in (0, 1):
                req = FetchRequest(wait_ms, 1, 1, 0, [(topic, [(0, 0, 1)])])
                answers[wait_ms] = (await client.send(node, req)).topics
            return answers
        finally:
            await client.close()

    answers = asyncio.run(scenario())
    assert answers[0] == []
    assert [(t, [p[:3] for p in parts]) for t, parts in answers[1]] == [(topic, [(0, 0, 0)])]


@pytest.mark.integration
def test_transactions_are_not_supported(broker):
    """Why faust_settings("tansu") forces at_least_once."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    async def scenario():
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=f"tx-{_tag()}")
        try:
            with pytest.raises(KafkaError):
                await asyncio.wait_for(producer.start(), 20)
        finally:
            await producer.stop()

    asyncio.run(scenario())


# --------------------------------------------------------------------------
# detection


@pytest.mark.integration
def test_detect_flavor_says_tansu_for_the_embedded_broker(broker):
    assert asyncio.run(tansu.detect_flavor(broker.bootstrap)) == "tansu"
    assert asyncio.run(tansu.detect_flavor(broker.url)) == "tansu"


@pytest.mark.integration
def test_detect_flavor_by_behaviour_when_cluster_id_differs():
    with EmbeddedBroker(f"kafka://127.0.0.1:{free_port()}", cluster_id="prod-like") as b:
        # No topic yet: no evidence either way, so the default.
        assert asyncio.run(tansu.detect_flavor(b.bootstrap)) == "kafka"
        asyncio.run(_create_topic(b.bootstrap, "anything", 1))
        assert asyncio.run(tansu.detect_flavor(b.bootstrap)) == "tansu"


def test_detect_flavor_unreachable_falls_back_to_default():
    url = f"127.0.0.1:{free_port()}"
    assert asyncio.run(tansu.detect_flavor(url, timeout=2)) == "kafka"
    assert asyncio.run(tansu.detect_flavor(url, timeout=2, default="tansu")) == "tansu"


# --------------------------------------------------------------------------
# Faust with a RocksDB table, restarted


FAUST_APP = textwrap.dedent(
    '''
    """Counts events per key in a RocksDB table; reports to $STATUS."""
    import json, os, sys

    from streams.compat import tansu

    if os.environ["COMPAT"] == "1":
        tansu.apply("tansu")

    import faust

    app = faust.App(
        os.environ["APP_ID"],
        broker=os.environ["BROKER"],
        store="rocksdb://",
        datadir=os.environ["DATA_DIR"],
        topic_partitions=2,
        # Several changelog records per batch: the case Tansu gets wrong.
        producer_linger=0.2,
        **tansu.faust_settings("tansu"),
    )
    events = app.topic(os.environ["TOPIC"], key_type=str, value_type=str)
    counts = app.Table("counts", default=int)

    @app.agent(events)
    async def count(stream):
        async for key, _ in stream.items():
            counts[key] += 1

    @app.timer(0.1)
    async def report():
        tmp = os.environ["STATUS"] + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(dict(counts.items()), fh)
        os.replace(tmp, os.environ["STATUS"])

    if __name__ == "__main__":
        sys.argv[1:] = ["worker", "--without-web", "-l", "info"]
        app.main()
    '''
)


class FaustRun:
    """Workers of one Faust app, as subprocesses, against the session broker."""

    def __init__(self, broker, tmp_path: Path, *, compat: bool) -> None:
        self.broker = broker
        self.tmp = tmp_path
        tag = _tag()
        self.app_id = f"compat-{tag}"
        self.topic = f"compat-events-{tag}"
        self.script = tmp_path / "table_app.py"
        self.script.write_text(FAUST_APP)
        self.compat = compat
        self.procs: list[subprocess.Popen] = []
        self.n = 0
        asyncio.run(_create_topic(broker.bootstrap, self.topic, 2))

    def produce(self, keys) -> None:
        from aiokafka import AIOKafkaProducer

        async def go():
            producer = AIOKafkaProducer(bootstrap_servers=self.broker.bootstrap, linger_ms=50)
            await producer.start()
            try:
                futs = [await producer.send(self.topic, b'"x"', key=k.encode()) for k in keys]
                for fut in futs:
                    await fut
            finally:
                await producer.stop()

        asyncio.run(go())

    def start(self, data_dir: str):
        self.n += 1
        status = self.tmp / f"status-{self.n}.json"
        log = self.tmp / f"worker-{self.n}.log"
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            BROKER=self.broker.url,
            APP_ID=self.app_id,
            TOPIC=self.topic,
            DATA_DIR=str(self.tmp / data_dir),
            STATUS=str(status),
            COMPAT="1" if self.compat else "0",
        )
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, str(self.script)],
                env=env,
                cwd=self.tmp,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc.status, proc.log = status, log
        self.procs.append(proc)
        return proc

    @staticmethod
    def wait_for(proc, predicate, timeout: float = 30.0):
        """The worker's table once ``predicate`` holds; None if it exited."""
        deadline = time.monotonic() + timeout
        table = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return None
            try:
                table = json.loads(proc.status.read_text())
            except (FileNotFoundError, ValueError):
                table = None
            if table is not None and predicate(table):
                return table
            time.sleep(0.1)
        raise AssertionError(
            f"worker never reached the expected state; last table {table}\n" + proc.log.read_text()[-3000:]
        )

    @staticmethod
    def stop(proc) -> int:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            return proc.wait()

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _keys(n: int) -> list[str]:
    return ["abc"[i % 3] for i in range(n)]


def _first_run(run: FaustRun):
    """30 events, then 15 more while running, then a clean stop.

    Two rounds make the changelog end with a batch of several records that
    does not start at offset 0: the shape Tansu's ListOffsets gets wrong
    (at offset 0 Faust's consistency check happens to skip the partition).
    """
    run.produce(_keys(30))
    w1 = run.start("data-a")
    assert run.wait_for(w1, lambda t: sum(t.values()) == 30) == {"a": 10, "b": 10, "c": 10}
    run.produce(_keys(15))
    assert run.wait_for(w1, lambda t: sum(t.values()) == 45) == {"a": 15, "b": 15, "c": 15}
    assert run.stop(w1) == 0
    run.produce(_keys(15))  # processed by the next worker only


@pytest.mark.integration
def test_faust_rocksdb_table_recovers_with_the_layer(broker, tmp_path):
    from aiokafka import TopicPartition

    run = FaustRun(broker, tmp_path, compat=True)
    try:
        _first_run(run)
        # Precondition: the changelog is in the shape that trips Faust.
        changelog = f"{run.app_id}-counts-changelog"
        tps = [TopicPartition(changelog, p) for p in (0, 1)]
        raw, true = asyncio.run(_raw_and_true_end(broker.bootstrap, tps))
        assert any(raw[tp] < true[tp] for tp in tps), (raw, true)

        # Restart on the same data dir: RocksDB offsets vs changelog end.
        w2 = run.start("data-a")
        table = run.wait_for(w2, lambda t: sum(t.values()) == 60)
        assert table == {"a": 20, "b": 20, "c": 20}, w2.log.read_text()[-3000:]
        assert run.stop(w2) == 0
        assert "ConsistencyError" not in w2.log.read_text()

        # A worker with no local state (as after a rebalance onto a new
        # machine) rebuilds the table from the changelog alone. A sentinel
        # event proves recovery is over (agents wait for it).
        w3 = run.start("data-b")
        run.produce(["z"])
        table = run.wait_for(w3, lambda t: "z" in t)
        assert table == {"a": 20, "b": 20, "c": 20, "z": 1}, w3.log.read_text()[-3000:]
        assert run.stop(w3) == 0
    finally:
        run.close()


@pytest.mark.integration
def test_faust_rocksdb_table_breaks_without_the_layer(broker, tmp_path):
    """The bug the layer exists for; fails (good news) once Tansu fixes it."""
    run = FaustRun(broker, tmp_path, compat=False)
    try:
        _first_run(run)
        w2 = run.start("data-a")
        assert run.wait_for(w2, lambda t: sum(t.values()) == 60, timeout=30) is None, (
            "worker survived a restart without the compat layer: has Tansu "
            "fixed ListOffsets? Then streams/compat/tansu.py point 1 can go."
        )
        log = w2.log.read_text()
        assert "ConsistencyError" in log and "is higher" in log, log[-3000:]
    finally:
        run.close()
