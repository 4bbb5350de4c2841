"""tests/pgcluster.py: the throwaway PostgreSQL cluster and its fixtures."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests import pgcluster
from tests.pgcluster import PgCluster, PgClusterError

REPO = Path(__file__).resolve().parents[1]


def _cluster_pids(data_dir: str) -> list[int]:
    """Every live process whose working directory is (or was) data_dir, or
    whose command line names it: what PostgreSQL's processes look like."""
    data_dir = os.path.realpath(data_dir)
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state == b"Z":
            continue
        if cwd in (data_dir, data_dir + " (deleted)") or data_dir in cmdline:
            pids.append(int(entry))
    return pids


def test_write_and_read_back(pg_url):
    assert pg_url.startswith("postgresql://postgres@127.0.0.1:")
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE campaign (id text PRIMARY KEY, sent bigint NOT NULL)")
        conn.execute("INSERT INTO campaign VALUES (%s, %s), (%s, %s)", ("c-1", 10, "c-2", 20))
        conn.commit()
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT id, sent FROM campaign ORDER BY id").fetchall()
        version = conn.execute("SHOW server_version_num").fetchone()[0]
    assert rows == [("c-1", 10), ("c-2", 20)]
    assert int(version) // 10000 == 15


def test_each_test_gets_a_fresh_database(pg_url, pg_cluster):
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()[0]
        name = conn.execute("SELECT current_database()").fetchone()[0]
    assert tables == 0
    assert name != "smstally" and pg_url.endswith("/" + name)
    # The session's own database exists too, and the server is loopback-only.
    assert pg_cluster.url.endswith("/smstally")
    with psycopg.connect(pg_cluster.url) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"
        assert conn.execute("SHOW fsync").fetchone()[0] == "off"


def test_stop_leaves_no_postgres_process(tmp_path):
    cluster = PgCluster(tmp_path)
    cluster.start()
    data_dir = str(cluster.data_dir)
    try:
        conn = psycopg.connect(cluster.url)  # a backend, left open on purpose
        conn.execute("SELECT 1")
        pids = _cluster_pids(data_dir)
        assert cluster.pid in pids and len(pids) > 2, pids  # postmaster, backend, helpers
        assert sorted(cluster.processes()) == sorted(pids)
        other = cluster.new_database("other_db")
        with psycopg.connect(other) as c2:
            assert c2.execute("SELECT current_database()").fetchone()[0] == "other_db"
    finally:
        cluster.stop()
    assert _cluster_pids(data_dir) == []
    assert not any(pgcluster._pid_alive(p) for p in pids)
    assert not Path(data_dir).exists(), "the cluster directory is removed"
    assert (tmp_path / "postgresql.log").is_file() and not (tmp_path / "postgresql.log").is_symlink()
    cluster.stop()  # idempotent
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")
    conn.close()


def test_a_killed_owner_takes_the_postmaster_down(tmp_path):
    """PR_SET_PDEATHSIG: SIGKILL the process that started the cluster (atexit
    cannot run) and the postmaster still shuts down."""
    code = (
        "import sys, time\n"
        "from tests.pgcluster import PgCluster\n"
        "c = PgCluster(sys.argv[1]); c.start()\n"
        "print(c.data_dir, flush=True)\n"
        "time.sleep(120)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    data_dir = None
    try:
        data_dir = owner.stdout.readline().strip()
        assert data_dir and _cluster_pids(data_dir), "the cluster did not start"
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _cluster_pids(data_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = _cluster_pids(data_dir)
        assert not left, f"postgres processes {left} outlived their owner"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        owner.stdout.close()
        if data_dir:
            for pid in _cluster_pids(data_dir):
                os.kill(pid, signal.SIGKILL)
            shutil.rmtree(Path(data_dir).parent, ignore_errors=True)


def test_missing_binaries_fail_with_a_clear_message(monkeypatch, tmp_path):
    monkeypatch.setattr(pgcluster.shutil, "which", lambda name: None)
    monkeypatch.setattr(pgcluster.glob, "glob", lambda pattern: [])
    with pytest.raises(PgClusterError, match="initdb"):
        PgCluster(tmp_path).start()


def test_database_names_are_checked(pg_cluster):
    with pytest.raises(ValueError):
        pg_cluster.new_database('x"; DROP DATABASE smstally; --')
