#!/usr/bin/env python3
"""``POST /api/suppressions/check`` of a full send list (contract §11), and what it costs.

    .venv/bin/python -m bench.suppression_check                       # 200 000 rows, 10 000 phones
    .venv/bin/python -m bench.suppression_check --rows 1000000 --runs 31

Target: 10 000 phones in one call in <= 200 ms on SQLite. The figure a sender sees is the
whole HTTP round trip, so it is measured through a real ``smstally api`` process (uvicorn,
the production event loop and parser) on an SQLite read model filled beforehand with
``ReadModelWriter``:

1. **fill**: ``--rows`` Suppression rows (three in four in force, the rest lifted by a
   resubscribe), in batches of 50 000.
2. **lookup** (in this process, no HTTP): ``ReadModel.suppressed_among`` of the same list
   with ``IN (...)`` lists of several sizes and with a temporary table joined on the
   primary key, median of ``--runs``: why ``readmodel.queries.CHECK_CHUNK`` is what it is.
3. **http**: the API started on that file (no broker: the projector waits for one, the HTTP
   side serves the database), then, with one keep-alive httpx client, ``--runs`` checks of
   ``--phones`` phones (half of them in force, a quarter lifted, a quarter never seen,
   shuffled) after two warm-up calls, and as the baseline, measured in the same run, ``GET
   /health/live`` (the cheapest route) and ``GET /api/suppressions/{phone}`` (one lookup).
   Printed: median and p90 of each, and the check's median as a multiple of the baselines'.

No token (the default, loopback only): the phones of the answer are masked, the most work
per phone. The API process is stopped in ``finally``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from readmodel import queries  # noqa: E402
from readmodel.db import Database  # noqa: E402
from readmodel.queries import ReadModel  # noqa: E402
from readmodel.store import Batch, ReadModelWriter  # noqa: E402

T0 = 1_700_000_000_000
FILL_BATCH = 50_000


def phone(i: int) -> str:
    return f"+336{i:08d}"


def record(i: int) -> dict:
    suppressed = i % 4 != 3
    return {
        "phone": phone(i),
        "suppressed": suppressed,
        "reasons": (["PERMANENT_ERROR"] if i % 2 else ["BLACKLISTED"]) if suppressed else [],
        "blacklisted_at": T0 if suppressed and not i % 2 else None,
        "permanent_error_at": T0 if suppressed and i % 2 else None,
        "contact_id": f"ct-{i}",
        "campaign_id": "camp-1" if i % 2 else None,
        "message_id": f"msg-{i}" if i % 2 else None,
        "version": 2,
        "updated_at": T0 + i,
    }


def fill(db: Database, rows: int) -> float:
    t0 = time.perf_counter()
    w = ReadModelWriter(db)
    for start in range(0, rows, FILL_BATCH):
        b = Batch()
        for i in range(start, min(rows, start + FILL_BATCH)):
            b.add_suppression(record(i))
            b.advance("sms.suppressions", 0, i)
        w.apply(b)
    return time.perf_counter() - t0


def send_list(rows: int, n: int, seed: int = 7) -> list[str]:
    """Half in force, a quarter lifted, a quarter never seen, in no order."""
    rnd = random.Random(seed)
    in_force = [i for i in rnd.sample(range(rows), min(rows, 4 * n)) if i % 4 != 3][: n // 2]
    lifted = rnd.sample(range(3, rows, 4), n // 4)
    never = [rows + i for i in range(n - len(in_force) - len(lifted))]
    out = [phone(i) for i in in_force + lifted + never]
    rnd.shuffle(out)
    return out


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def ms(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"median {statistics.median(xs) * 1000:7.2f} ms  p90 {xs[int(0.9 * (len(xs) - 1))] * 1000:7.2f} ms"


def temp_table_lookup(db: Database, phones: list[str]) -> dict[str, list[str]]:
    """The alternative to ``IN`` lists: the phones into a temporary table, one join."""
    c = db.conn()
    c.execute("CREATE TEMP TABLE IF NOT EXISTS asked (phone TEXT PRIMARY KEY)")
    c.execute("BEGIN")  # one transaction: the connection is in autocommit mode
    try:
        c.execute("DELETE FROM asked")
        c.executemany("INSERT OR IGNORE INTO asked VALUES (?)", [(p,) for p in phones])
        rows = c.execute(
            "SELECT s.phone, s.reasons FROM asked a JOIN suppressions s ON s.phone = a.phone WHERE s.suppressed = 1"
        ).fetchall()
    finally:
        c.execute("COMMIT")
    return {p: r.split(",") if r else [] for p, r in rows}


def lookups(db: Database, phones: list[str], runs: int) -> None:
    model = ReadModel(db)
    want = model.suppressed_among(phones)
    default = queries.CHECK_CHUNK
    try:
        for chunk in sorted({100, 500, 900, 2000, 5000, 10_000, default}):
            queries.CHECK_CHUNK = chunk
            assert model.suppressed_among(phones) == want
            print(
                f"  IN lists of {chunk:>6} phones{' (CHECK_CHUNK)' if chunk == default else '':14} {ms(timed(lambda: model.suppressed_among(phones), runs))}"
            )
    finally:
        queries.CHECK_CHUNK = default
    assert temp_table_lookup(db, phones) == want
    print(f"  temporary table + join{'':17} {ms(timed(lambda: temp_table_lookup(db, phones), runs))}")


def start_api(db_path: Path, tmp: Path):
    from streams.devtools.broker import free_port
    from streams.devtools.processes import ApiProcess

    env = dict(
        os.environ,
        SMSTALLY_READ_DB=f"sqlite:///{db_path}",
        SMSTALLY_DATA_DIR=str(tmp),
        SMSTALLY_API_PORT=str(free_port()),
        SMSTALLY_BROKER=f"kafka://127.0.0.1:{free_port()}",  # nobody there: the projector waits
        SMSTALLY_LOG_LEVEL="warning",
    )
    env.pop("SMSTALLY_API_TOKEN", None)
    return ApiProcess(env, tmp / "api.log").start()


def wait_serving(client, url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.get(url + "/health/live").status_code == 200:
                return
        except Exception:  # noqa: BLE001 - not listening yet
            pass
        time.sleep(0.2)
    raise TimeoutError(f"smstally api not serving at {url} after {timeout}s")


def http(db_path: Path, tmp: Path, phones: list[str], expect: int, runs: int) -> None:
    import httpx

    api = start_api(db_path, tmp)
    try:
        with httpx.Client(timeout=30.0) as client:
            wait_serving(client, api.url)

            def check() -> None:
                r = client.post(api.url + "/api/suppressions/check", json={"phones": phones})
                assert r.status_code == 200 and len(r.json()["suppressed"]) == expect, r.text[:300]

            def live() -> None:
                assert client.get(api.url + "/health/live").status_code == 200

            def one() -> None:
                assert client.get(api.url + "/api/suppressions/" + phones[0]).status_code == 200

            timed(check, 2)
            timed(live, 20)
            timed(one, 20)
            # interleaved, so that a slower moment of the machine weighs on all three alike
            checks, lives, ones = [], [], []
            for _ in range(runs):
                checks += timed(check, 1)
                lives += timed(live, 5)
                ones += timed(one, 5)
        print(f"  POST /api/suppressions/check ({len(phones)} phones, {expect} in force) {ms(checks)}")
        print(f"  GET /health/live{'':37} {ms(lives)}")
        print(f"  GET /api/suppressions/{{phone}}{'':23} {ms(ones)}")
        check_ms = statistics.median(checks)
        print(
            f"  check / live = {check_ms / statistics.median(lives):.1f}x, check / one lookup = "
            f"{check_ms / statistics.median(ones):.1f}x; target <= 200 ms: " + ("met" if check_ms <= 0.2 else "NOT met")
        )
    finally:
        api.stop(grace=5)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=200_000, help="suppression rows in the read model")
    ap.add_argument("--phones", type=int, default=10_000, help="phones per check (the contract's maximum)")
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="smstally-suppr-") as d:
        tmp = Path(d)
        db_path = tmp / "readmodel.sqlite3"
        db = Database(f"sqlite:///{db_path}")
        db.create_schema()
        print(f"fill: {args.rows} rows in {fill(db, args.rows):.1f}s")
        phones = send_list(args.rows, args.phones)
        expect = len(ReadModel(db).suppressed_among(phones))
        print(f"lookup of {len(phones)} phones ({expect} in force), in process:")
        lookups(db, phones, args.runs)
        db.close()
        print("http, through smstally api:")
        http(db_path, tmp, phones, expect, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
