"""The read side killed at random moments: ``smstally api`` is SIGKILLed again and again while
a messy day is published and processed, sometimes on a deleted (SQLite) or dropped
(PostgreSQL) read database, and in the end its read model is exactly what the output topics
say: no row lost, none applied twice, no version going back (contract §10: the consumed
offsets are committed in the rows' transaction; an empty database is rebuilt from the
topics).

Kill times come from a seeded random (printed); set SMSTALLY_READMODEL_CRASH_SEED to replay
one. Everything is real: the embedded broker, a worker process, the API processes and the
databases, which the final checks read directly.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from simulator.check import sends_counted
from simulator.scenario import generate
from streams.devtools.simulate import GRACE_S, wait_for_expected, wait_quiescent
from streams.ops.clients import StatsView, publish
from tests.harness import Cluster, ReadSide

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

MESSAGES = 3000
KILLS = 6  # while phase 1 is published and processed; one more during phase 2
WIPES = 2  # of those, restarts on a deleted / dropped database
CHUNK, CHUNK_PAUSE = 500, 0.35
DEFAULT_SEEDS = {"sqlite": 101, "postgresql": 202}
MESSAGE_COLS = (
    "message_id",
    "campaign_id",
    "version",
    "contact_id",
    "phone",
    "status",
    "category",
    "error_code",
    "provider",
    "not_sent_reason",
    "sent_at",
    "status_at",
    "phone_valid",
)
REMOVAL_COLS = (
    "event_id",
    "phone",
    "reason",
    "contact_id",
    "campaign_id",
    "message_id",
    "status",
    "error_code",
    "provider",
    "channel",
    "at",
)


class ReadDb:
    """The read model's database, read directly (and wiped) by the test."""

    def __init__(self, kind: str, tmp: Path, request, seed: int):
        self.kind = kind
        if kind == "sqlite":
            self.path = tmp / "read.sqlite3"
            self.url = f"sqlite:///{self.path}"
        else:
            self.pg = request.getfixturevalue("pg_cluster")
            self.name = f"readmodel_crash_{seed}_{os.getpid()}"
            self.pg.drop_database(self.name)
            self.url = self.pg.new_database(self.name)

    def query(self, sql: str) -> list[tuple]:
        if self.kind == "sqlite":
            if not self.path.exists():
                return []
            c = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
            try:
                return c.execute(sql).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []
                raise
            finally:
                c.close()
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as c:
            try:
                return c.execute(sql).fetchall()
            except psycopg.errors.UndefinedTable:
                return []

    def offsets(self) -> dict[tuple[str, int], int]:
        return {(t, p): o for t, p, o in self.query("SELECT topic, part, next_offset FROM offsets")}

    def wipe(self) -> None:
        """The database deleted under a dead API: the next one must rebuild it from the topics."""
        if self.kind == "sqlite":
            for suffix in ("", "-wal", "-shm", "-journal"):
                p = Path(str(self.path) + suffix)
                if p.exists():
                    p.unlink()
        else:
            self.pg.drop_database(self.name)
            self.pg.new_database(self.name)

    def drop(self) -> None:
        if self.kind == "postgresql":
            self.pg.drop_database(self.name)


@pytest.mark.timeout(420)
@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_api_killed_at_random_moments_read_model_stays_exact(db, tmp_path, request):
    seed = int(os.environ.get("SMSTALLY_READMODEL_CRASH_SEED") or DEFAULT_SEEDS[db])
    print(f"\n[{db}] seed {seed} (SMSTALLY_READMODEL_CRASH_SEED={seed} to replay)")
    rng = random.Random(seed)
    cluster = Cluster(tmp_path).start()
    rdb = rs = None
    try:
        rdb = ReadDb(db, tmp_path, request, seed)
        rs = ReadSide(cluster, read_db=rdb.url)
        cluster.worker().wait_ready(90)
        s = cluster.settings
        t = s.topics
        scenario = generate(seed=seed, messages=MESSAGES, campaigns=4)
        rs.start()

        published = threading.Event()
        errors: list[BaseException] = []

        def publisher() -> None:
            try:
                for i in range(0, len(scenario.phase1), CHUNK):
                    asyncio.run(publish(s, scenario.phase1[i : i + CHUNK]))
                    time.sleep(CHUNK_PAUSE)
            except BaseException as exc:  # noqa: BLE001 - raised by the test below
                errors.append(exc)
            finally:
                published.set()

        # Versions seen through /api/campaigns, per database generation (a wiped database
        # starts over from the topics, so its versions may be lower than before the wipe).
        generation = 0
        seen: dict[int, dict[str, int]] = {0: {}}
        observations = 0
        regressions: list[str] = []

        def observe_for(seconds: float) -> None:
            nonlocal observations
            end = time.monotonic() + seconds
            while True:
                status, body = rs.get_json("/api/campaigns?limit=1000", timeout=2)
                if status == 200:
                    observations += 1
                    mine = seen[generation]
                    for c in body["items"]:
                        before = mine.get(c["campaign_id"], -1)
                        if c["version"] < before:
                            regressions.append(
                                f"{c['campaign_id']}: version {c['version']} after {before} "
                                f"(database generation {generation}, api #{len(rs.apis)})"
                            )
                        mine[c["campaign_id"]] = max(before, c["version"])
                if time.monotonic() >= end:
                    return
                time.sleep(0.15)

        kills, wiped = 0, 0
        wipe_at = set(rng.sample(range(1, KILLS), WIPES))
        resumed: list[str] = []
        committed_at_start = {id(rs.api): (0, True)}  # api -> (partitions committed when it started, wiped)

        def check_resume(api) -> None:
            """Its log says where it resumed: from every partition committed before (or none)."""
            m = re.search(r"resuming at (\d+) stored offsets", api.log_path.read_text(errors="replace"))
            if m:  # (a process killed early never got that far)
                n = int(m.group(1))
                before, fresh = committed_at_start[id(api)]
                resumed.append(f"{n}{'*' if fresh else ''}")
                assert (n == 0) if fresh else (n >= before), (n, before, fresh, api.log_path)

        def kill_and_restart(wipe: bool) -> None:
            nonlocal kills, wiped, generation
            api = rs.api
            api.kill()
            kills += 1
            check_resume(api)
            if wipe:
                rdb.wipe()
                wiped += 1
                generation += 1
                seen[generation] = {}
            stored = len(rdb.offsets())
            committed_at_start[id(rs.start())] = (stored, wipe)
            print(
                f"kill {kills} at +{time.monotonic() - t0:.1f}s: {stored} partitions committed"
                f"{'; database deleted' if wipe else ''}",
                flush=True,
            )

        t0 = time.monotonic()
        threading.Thread(target=publisher, daemon=True).start()

        def wait_serving(timeout: float = 60.0) -> None:
            """Until the newest API answers HTTP (its projector is then at work)."""
            deadline = time.monotonic() + timeout
            while rs.request("/health/live", auth=False, timeout=2)[0] != 200:
                assert rs.api.running, f"smstally api exited:\n{rs.api.tail()}"
                assert time.monotonic() < deadline, f"smstally api does not answer:\n{rs.api.tail()}"
                time.sleep(0.05)

        while kills < KILLS or not published.is_set():
            wait_serving()
            observe_for(rng.uniform(0.05, 1.5))
            kill_and_restart(wipe=kills + 1 in wipe_at)
        assert not errors, errors
        print(f"phase 1 published and {kills} kills after {time.monotonic() - t0:.1f}s", flush=True)

        async def phase2() -> None:  # STOP replies once the sends are counted (as run_simulation)
            async with StatsView(s) as view:
                deadline = time.monotonic() + 120
                while not sends_counted(scenario.expected.stats, await view.refresh()):
                    assert time.monotonic() < deadline, "phase 1 not counted by the worker"
            assert await wait_quiescent(s, 120), "the worker is not idle"
            await asyncio.sleep(GRACE_S)
            await publish(s, scenario.phase2)

        asyncio.run(phase2())
        wait_serving()
        observe_for(rng.uniform(0.1, 0.8))
        kill_and_restart(wipe=False)  # while the STOP replies are processed
        ok, _, diff = asyncio.run(wait_for_expected(s, scenario.expected.stats, timeout=120))
        assert ok, "the worker's stats: " + "\n".join(diff)
        worker_done = time.monotonic()

        # The last API catches up with everything on the topics (its own readiness only
        # covers the end offsets found at its start).
        topics = [t.campaign_stats, t.message_status, t.removals, t.suppressions]
        ends = {k: v for k, v in rs.settled_end_offsets(topics, quiet_s=1.0).items() if v > 0}  # worker done
        deadline = time.monotonic() + 120
        while True:
            observe_for(0.3)
            committed = rdb.offsets()
            if all(committed.get(k) == v for k, v in ends.items()):
                break
            assert rs.api.running, f"smstally api exited:\n{rs.api.tail()}"
            assert time.monotonic() < deadline, f"the read model does not catch up: {committed} vs {ends}"
        rs.wait_ready(60)
        assert rs.wait_campaigns(scenario.expected.stats, timeout=30) == []
        caught_up = time.monotonic() - worker_done
        observe_for(0)
        check_resume(rs.api)
        assert regressions == [], "\n".join(regressions)
        assert set(committed) == set(ends), "offsets of partitions that do not exist"

        # ------------------------------------------------------------ the topics
        stats_recs = rs.topic_records(t.campaign_stats)
        status_recs = rs.topic_records(t.message_status)
        removal_recs = rs.topic_records(t.removals)
        suppression_recs = rs.topic_records(t.suppressions)
        for topic, recs in (
            (t.campaign_stats, stats_recs),
            (t.message_status, status_recs),
            (t.removals, removal_recs),
            (t.suppressions, suppression_recs),
        ):
            assert len(recs) == sum(v for k, v in ends.items() if k[0] == topic), f"{topic} grew after the end"

        def latest(recs: list[dict], key: str) -> dict[str, dict]:
            out: dict[str, dict] = {}
            for v in recs:
                if v[key] not in out or v["version"] >= out[v[key]]["version"]:
                    out[v[key]] = v
            return out

        latest_msgs = latest(status_recs, "message_id")
        latest_stats = latest(stats_recs, "campaign_id")
        by_version: dict[tuple[str, int], dict] = {}
        for v in status_recs:
            by_version.setdefault((v["message_id"], v["version"]), v)
        stats_versions = {(v["campaign_id"], v["version"]): v for v in stats_recs}
        removals = {r["event_id"]: r for r in removal_recs}

        # ----------------------------------------------------------- the read model
        def message_tuple(v: dict) -> tuple:
            return tuple(int(v[c]) if c == "phone_valid" else v[c] for c in MESSAGE_COLS)

        cols = ", ".join(MESSAGE_COLS)
        rows = {r[0]: r for r in rdb.query(f"SELECT {cols} FROM messages")}
        assert set(rows) == set(latest_msgs), (
            f"{len(set(latest_msgs) - set(rows))} messages missing, {len(set(rows) - set(latest_msgs))} unexpected"
        )
        wrong = [m for m, v in latest_msgs.items() if rows[m] != message_tuple(v)]
        assert wrong == [], (
            f"{len(wrong)} messages differ from their latest version, e.g. "
            f"{[(rows[m], message_tuple(latest_msgs[m])) for m in wrong[:2]]}"
        )
        reasons = dict(rdb.query("SELECT message_id, reason_key FROM messages"))
        for m, v in latest_msgs.items():
            want = v["not_sent_reason"] or ("OTHER" if v["status"] == "NOT_SENT" else None)
            assert reasons[m] == want, m
        assert {m: v["status"] for m, v in latest_msgs.items()} == scenario.expected.message_status

        dup = rdb.query(
            "SELECT message_id, version, COUNT(*) FROM message_history GROUP BY message_id, version HAVING COUNT(*) > 1"
        )
        assert dup == [], f"history rows applied twice: {dup[:5]}"
        hist = {(r[0], r[2]): r for r in rdb.query(f"SELECT {cols} FROM message_history")}
        assert set(hist) == set(by_version), (
            f"{len(set(by_version) - set(hist))} published versions missing "
            f"from the history, {len(set(hist) - set(by_version))} unexpected"
        )
        wrong = [k for k, v in by_version.items() if hist[k] != message_tuple(v)]
        assert wrong == [], f"history rows differ from the topic: {wrong[:3]}"

        docs = {
            cid: (ver, json.loads(doc))
            for cid, ver, doc in rdb.query("SELECT campaign_id, version, doc FROM campaigns")
        }
        assert set(docs) == set(latest_stats)
        for cid, rec in latest_stats.items():
            assert docs[cid] == (rec["version"], rec), f"{cid}: not the latest CampaignStats"
        dup = rdb.query(
            "SELECT campaign_id, version, COUNT(*) FROM campaign_history GROUP BY campaign_id, version "
            "HAVING COUNT(*) > 1"
        )
        assert dup == []
        chist = {
            (cid, ver): json.loads(doc)
            for cid, ver, doc in rdb.query("SELECT campaign_id, version, doc FROM campaign_history")
        }
        assert set(chist) == set(stats_versions)
        assert all(chist[k] == v for k, v in stats_versions.items())

        got = {r[0]: dict(zip(REMOVAL_COLS, r)) for r in rdb.query(f"SELECT {', '.join(REMOVAL_COLS)} FROM removals")}
        assert got == removals, (
            f"{len(set(removals) - set(got))} removals missing, {len(set(got) - set(removals))} unexpected"
        )
        status, body = rs.get_json("/api/removals?limit=1000")
        assert status == 200 and len(body["items"]) == len(removals) and body["next_cursor"] is None

        # contract §11: the latest version of every phone, and the check answers from it
        latest_suppressions = latest(suppression_recs, "phone")
        assert latest_suppressions, "the day suppresses phones"
        versions = dict(rdb.query("SELECT phone, version FROM suppressions"))
        assert versions == {p: v["version"] for p, v in latest_suppressions.items()}
        phones = sorted(latest_suppressions)
        status, answer = rs.post_json("/api/suppressions/check", {"phones": phones})
        assert status == 200, answer
        assert {phones[h["index"]]: h["reasons"] for h in answer["suppressed"]} == {
            p: v["reasons"] for p, v in latest_suppressions.items() if v["suppressed"]
        }

        assert kills >= KILLS + 1 and wiped >= WIPES
        print(
            f"[{db}] seed {seed}: {kills} kills ({wiped} on a deleted database), {observations} observations of "
            f"/api/campaigns, {len(status_recs)} status / {len(stats_recs)} stats / {len(removal_recs)} removal "
            f"records; resumed at stored offsets: {resumed}; read model caught up {caught_up:.1f}s after the "
            f"worker; {time.monotonic() - t0:.1f}s in all"
        )
    finally:
        if rs is not None:
            rs.close()
        cluster.close()
        if rdb is not None:
            rdb.drop()
