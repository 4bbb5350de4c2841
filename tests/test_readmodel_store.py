"""The read model's store and queries (readmodel.store, readmodel.queries), on a real
SQLite file and a real PostgreSQL database (tests/pgcluster.py): no Kafka, no mocks.

* Writes: any records of the three output topics, split into batches, applied in any
  order, with some batches applied twice, give the tables of "the highest version per
  key" (latest tables) and "every distinct (key, version)" (history tables); stored
  offsets only move forward.
* Atomicity: a batch that fails in the middle of its transaction (a row the database
  refuses, a trigger that raises, an interrupted statement, the server closing the
  connection) leaves neither rows nor offsets behind, and the same batch goes in later.
* Queries: keyset paging in every sort, with rows arriving between pages; ``q`` is a
  literal substring; ``not_sent_reason=OTHER``; cursors checked when they come back.
"""

from __future__ import annotations

import base64

import orjson
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from readmodel.db import Database
from readmodel.queries import SORTS, BadRequest, ReadModel, encode_cursor
from readmodel.store import Batch, ReadModelWriter

PROPS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(PROPS, max_examples=25)

TABLES = ("offsets", "campaigns", "campaign_history", "messages", "message_history", "removals", "suppressions")
TOPICS = {
    "stats": "sms.campaign-stats",
    "status": "sms.message-status",
    "removal": "sms.address-book-removals",
    "suppression": "sms.suppressions",
}
STATUSES = (
    "PENDING",
    "PROVIDER_ACCEPTED",
    "DELIVERED",
    "SOFT_BOUNCE",
    "PROVIDER_ERROR",
    "HARD_BOUNCE",
    "UNKNOWN",
    "NOT_SENT",
)
CATEGORY = {
    "PENDING": "waiting",
    "PROVIDER_ACCEPTED": "receipt",
    "DELIVERED": "receipt",
    "SOFT_BOUNCE": "temporary_error",
    "PROVIDER_ERROR": "temporary_error",
    "HARD_BOUNCE": "permanent_error",
    "UNKNOWN": "unknown",
    "NOT_SENT": "not_sent",
}


# -- the database ---------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'readmodel.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_url")
    d = Database(url)
    d.create_schema()
    yield d
    d.close()


def reset(db: Database) -> None:
    """Empty every table (one hypothesis example = one empty read model)."""
    db.reset_thread()
    with db.transaction() as c:
        for t in TABLES:
            c.execute(f"DELETE FROM {t}")


def snapshot(db: Database) -> dict[str, list[tuple]]:
    """Every table's rows, in a canonical order, read on a fresh connection."""
    c = db.connect()
    try:
        out = {}
        for t in TABLES:
            rows = c.execute(f"SELECT * FROM {t}").fetchall()
            out[t] = sorted((tuple(r) for r in rows), key=repr)
        return out
    finally:
        c.close()


# -- records: the content is a function of (key, version), as the contract promises ---------
def stats_rec(cid: str, v: int) -> dict:
    return {
        "campaign_id": cid,
        "name": None if v % 5 == 0 else f"Campaign {cid.upper()} v{v}",
        "kind": ("BATCH", "AUTOMATED", None)[v % 3],
        "text": f"text {v}",
        "sender_id": "ACME",
        "sms_type": "marketing",
        "created_at": 1_700_000_000_000,
        "launched_at": None if v % 4 == 0 else 1_700_000_000_000 + v,
        "launch_list_size": 10 * v,
        "version": v,
        "updated_at": 1_700_000_000_000 + 1000 * v,
        "sent": 10 * v,
        "not_sent": v,
        "not_sent_by_reason": {"OTHER": v},
        "status_counts": {"DELIVERED": 7 * v, "PENDING": 3 * v},
        "unsubscribed": v // 2,
        "credits": 1.5 * v,
        "rates": {"delivery": 0.7, "receipt": 0.7},
        "first_sent_at": 1_700_000_000_000,
        "last_event_at": 1_700_000_000_000 + v,
    }


def status_rec(mid: str, v: int) -> dict:
    status = STATUSES[v % len(STATUSES)]
    reason = None
    if status == "NOT_SENT":
        reason = (None, "OPTED_OUT", "INVALID_NUMBER")[int(mid[1:]) % 3]
    return {
        "message_id": mid,
        "campaign_id": f"camp-{int(mid[1:]) % 2}",
        "contact_id": None if v == 3 else f"ct-{mid}",
        "phone": f"+3361234{int(mid[1:]):04d}",
        "status": status,
        "category": CATEGORY[status],
        "error_code": "E42" if status in ("HARD_BOUNCE", "SOFT_BOUNCE") else None,
        "provider": None if v % 2 else "prov",
        "sent_at": 1_700_000_000_000 + int(mid[1:]),
        "status_at": 1_700_000_000_000 + 100 * v,
        "version": v,
        "not_sent_reason": reason,
        "phone_valid": v % 7 != 6,
    }


def removal_rec(eid: str) -> dict:
    n = int(eid[1:])
    return {
        "event_id": eid,
        "phone": f"+3361234{n:04d}",
        "reason": ("PERMANENT_ERROR", "BLACKLISTED", "OTHER")[n % 3],
        "contact_id": f"ct-{n}",
        "campaign_id": f"camp-{n % 2}" if n % 2 else None,
        "message_id": f"m{n}",
        "status": "HARD_BOUNCE" if n % 3 == 0 else None,
        "error_code": None,
        "provider": "prov",
        "channel": "STOP_KEYWORD" if n % 3 == 1 else None,
        "at": 1_700_000_000_000 + n,
    }


def suppression_rec(phone: str, v: int) -> dict:
    """Suppressed at odd versions (both reasons at multiples of 3), lifted at even ones."""
    reasons = [] if v % 2 == 0 else (["PERMANENT_ERROR", "BLACKLISTED"] if v % 3 == 0 else ["BLACKLISTED"])
    return {
        "phone": phone,
        "suppressed": bool(reasons),
        "reasons": reasons,
        "blacklisted_at": 1_700_000_000_000 + v if reasons else None,
        "permanent_error_at": 1_700_000_000_000 if "PERMANENT_ERROR" in reasons else None,
        "contact_id": f"ct-{v}",
        "campaign_id": f"camp-{v % 2}" if v % 3 == 0 else None,
        "message_id": f"m{v}" if v % 3 == 0 else None,
        "version": v,
        "updated_at": 1_700_000_000_000 + 1000 * v,
    }


def make(kind: str, key: str, v: int) -> dict:
    return {
        "stats": lambda: stats_rec(key, v),
        "status": lambda: status_rec(key, v),
        "removal": lambda: removal_rec(key),
        "suppression": lambda: suppression_rec(key, v),
    }[kind]()


record_refs = st.one_of(
    st.tuples(st.just("stats"), st.sampled_from(["c1", "c2", "C3", "c-4"]), st.integers(1, 8)),
    st.tuples(st.just("status"), st.sampled_from([f"m{i}" for i in range(1, 7)]), st.integers(1, 9)),
    st.tuples(st.just("removal"), st.sampled_from([f"e{i}" for i in range(1, 6)]), st.just(0)),
    st.tuples(st.just("suppression"), st.sampled_from(["+33612340001", "+447700900002", "06 bad"]), st.integers(1, 9)),
)


def positioned(refs: list, parts: list[int]) -> list[tuple]:
    """(kind, key, version, topic, partition, offset): offsets grow per topic partition."""
    nxt: dict[tuple[str, int], int] = {}
    out = []
    for (kind, key, v), p in zip(refs, parts):
        tp = (TOPICS[kind], p)
        off = nxt.get(tp, 0) + (1 if len(out) % 3 == 0 else 0)  # some offsets skipped (compaction)
        nxt[tp] = off + 1
        out.append((kind, key, v, tp[0], p, off))
    return out


def to_batch(items: list[tuple]) -> Batch:
    b = Batch()
    for kind, key, v, topic, part, off in items:
        rec = make(kind, key, v)
        {
            "stats": b.add_stats,
            "status": b.add_status,
            "removal": b.add_removal,
            "suppression": b.add_suppression,
        }[kind](rec)
        b.advance(topic, part, off)
    return b


def reason_key(rec: dict) -> str | None:
    if rec["status"] == "NOT_SENT" and not rec["not_sent_reason"]:
        return "OTHER"
    return rec["not_sent_reason"]


def read_tables(db: Database) -> dict:
    """The tables by column name (not by position), decoded."""
    q = db.query
    return {
        "campaigns": {
            r[0]: (r[1], r[2], r[3], r[4], r[5], r[6], orjson.loads(r[7]))
            for r in q("SELECT campaign_id, version, id_lc, name_lc, kind, launched_at, sent, doc FROM campaigns")
        },
        "campaign_history": {
            (r[0], r[1]): (r[2], orjson.loads(r[3]))
            for r in q("SELECT campaign_id, version, updated_at, doc FROM campaign_history")
        },
        "messages": {
            r[0]: tuple(r[1:])
            for r in q(
                "SELECT message_id, campaign_id, version, contact_id, phone, status, category, error_code, provider, "
                "not_sent_reason, reason_key, sent_at, status_at, phone_valid FROM messages"
            )
        },
        "message_history": {
            (r[0], r[1]): tuple(r[2:])
            for r in q(
                "SELECT message_id, version, campaign_id, contact_id, phone, status, category, error_code, provider, "
                "not_sent_reason, sent_at, status_at, phone_valid FROM message_history"
            )
        },
        "removals": {
            r[0]: tuple(r)
            for r in q(
                "SELECT event_id, phone, reason, contact_id, campaign_id, message_id, status, error_code, provider, "
                "channel, at FROM removals"
            )
        },
        "suppressions": {
            r[0]: tuple(r[1:])
            for r in q(
                "SELECT phone, version, suppressed, reasons, blacklisted_at, permanent_error_at, contact_id, "
                "campaign_id, message_id, updated_at FROM suppressions"
            )
        },
        "offsets": {(r[0], r[1]): r[2] for r in q("SELECT topic, part, next_offset FROM offsets")},
    }


def expected_tables(items: list[tuple]) -> dict:
    """What the tables must hold, computed from the records alone."""
    latest: dict[tuple[str, str], int] = {}
    seen: set[tuple[str, str, int]] = set()
    offsets: dict[tuple[str, int], int] = {}
    for kind, key, v, topic, part, off in items:
        latest[(kind, key)] = max(v, latest.get((kind, key), v))
        seen.add((kind, key, v))
        offsets[(topic, part)] = max(off + 1, offsets.get((topic, part), 0))
    out: dict = {
        "campaigns": {},
        "campaign_history": {},
        "messages": {},
        "message_history": {},
        "removals": {},
        "suppressions": {},
        "offsets": offsets,
    }
    for (kind, key), v in latest.items():
        r = make(kind, key, v)
        if kind == "stats":
            out["campaigns"][key] = (
                v,
                key.lower(),
                (r["name"] or "").lower(),
                r["kind"],
                r["launched_at"],
                r["sent"],
                r,
            )
        elif kind == "status":
            out["messages"][key] = (
                r["campaign_id"],
                v,
                r["contact_id"],
                r["phone"],
                r["status"],
                r["category"],
                r["error_code"],
                r["provider"],
                r["not_sent_reason"],
                reason_key(r),
                r["sent_at"],
                r["status_at"],
                int(r["phone_valid"]),
            )
        elif kind == "suppression":
            out["suppressions"][key] = (
                v,
                int(r["suppressed"]),
                ",".join(r["reasons"]),
                r["blacklisted_at"],
                r["permanent_error_at"],
                r["contact_id"],
                r["campaign_id"],
                r["message_id"],
                r["updated_at"],
            )
        else:
            out["removals"][key] = tuple(r.values())
    for kind, key, v in seen:
        r = make(kind, key, v)
        if kind == "stats":
            out["campaign_history"][(key, v)] = (r["updated_at"], r)
        elif kind == "status":
            out["message_history"][(key, v)] = (
                r["campaign_id"],
                r["contact_id"],
                r["phone"],
                r["status"],
                r["category"],
                r["error_code"],
                r["provider"],
                r["not_sent_reason"],
                r["sent_at"],
                r["status_at"],
                int(r["phone_valid"]),
            )
    return out


@st.composite
def schedules(draw):
    """Records, cut into batches, then an application order with some batches twice."""
    refs = draw(st.lists(record_refs, min_size=1, max_size=40))
    parts = draw(st.lists(st.integers(0, 2), min_size=len(refs), max_size=len(refs)))
    items = positioned(refs, parts)
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(items) - 1)), max_size=8)))
    bounds = [0, *cuts, len(items)]
    batches = [items[a:b] for a, b in zip(bounds, bounds[1:]) if a < b]
    order = draw(st.permutations(range(len(batches))))
    for i in draw(st.lists(st.integers(0, len(batches) - 1), max_size=4)):  # applied again, anywhere
        order.insert(draw(st.integers(0, len(order))), i)
    return items, batches, order


# -- writes ---------------------------------------------------------------------------------
@PROPS
@given(schedule=schedules())
def test_batches_in_any_order_with_duplicates_give_the_latest_and_history_tables(db, schedule):
    items, batches, order = schedule
    reset(db)
    w = ReadModelWriter(db)
    seen_offsets: dict = {}
    for i in order:
        w.apply(to_batch(batches[i]))
        now = w.offsets()
        for tp, off in seen_offsets.items():
            assert now.get(tp, -1) >= off, f"offset of {tp} went back from {off} to {now.get(tp)}"
        seen_offsets = now
    assert read_tables(db) == expected_tables(items)

    model = ReadModel(db)
    for key, row in expected_tables(items)["messages"].items():
        m = model.message(key)
        assert m["version"] == row[1] and m["campaign_id"] == row[0]
        versions = sorted(v for (k, v) in expected_tables(items)["message_history"] if k == key)
        assert [h["version"] for h in m["history"]] == versions
        assert all(h["campaign_id"] == row[0] and h["message_id"] == key for h in m["history"])
        assert [h["status"] for h in m["history"]] == [status_rec(key, v)["status"] for v in versions]
    for phone, row in expected_tables(items)["suppressions"].items():
        assert model.suppression(phone) == suppression_rec(phone, row[0])


def test_a_batch_applied_twice_changes_nothing(db):
    items = positioned([("stats", "c1", 2), ("status", "m1", 3), ("removal", "e1", 0)], [0, 1, 0])
    w = ReadModelWriter(db)
    w.apply(to_batch(items))
    before = snapshot(db)
    w.apply(to_batch(items))
    assert snapshot(db) == before


def test_an_older_batch_never_moves_offsets_or_rows_back(db):
    w = ReadModelWriter(db)
    new = positioned([("stats", "c1", 5)] * 3, [0, 0, 0])
    w.apply(to_batch(new))
    old = Batch()
    old.add_stats(stats_rec("c1", 1))
    old.advance(TOPICS["stats"], 0, 0)
    w.apply(old)
    assert w.offsets()[(TOPICS["stats"], 0)] == new[-1][5] + 1
    assert ReadModel(db).campaign("c1")["version"] == 5
    assert {v for (k, v) in read_tables(db)["campaign_history"]} == {1, 5}


def put_suppressions(db: Database, recs: list[dict], first_offset: int = 0) -> None:
    """Each record in a transaction of its own, as consecutive offsets of one partition."""
    w = ReadModelWriter(db)
    for i, rec in enumerate(recs):
        b = Batch()
        b.add_suppression(rec)
        b.advance(TOPICS["suppression"], 0, first_offset + i)
        w.apply(b)


def test_a_suppression_version_not_above_the_stored_one_changes_nothing(db):
    phone = "+33612340001"
    put_suppressions(db, [suppression_rec(phone, 3)])
    before = snapshot(db)["suppressions"]
    # the same version with other content (a contract breach), then an older one: both ignored
    same = dict(suppression_rec(phone, 2), version=3)
    put_suppressions(db, [same, suppression_rec(phone, 1)], first_offset=1)
    assert snapshot(db)["suppressions"] == before
    assert ReadModel(db).suppression(phone) == suppression_rec(phone, 3)
    assert ReadModelWriter(db).offsets()[(TOPICS["suppression"], 0)] == 3, "the ignored records are consumed"
    put_suppressions(db, [suppression_rec(phone, 4)], first_offset=3)  # a higher one lifts it
    assert ReadModel(db).suppression(phone) == suppression_rec(phone, 4)
    assert ReadModel(db).suppressed_among([phone]) == {}


def test_one_batch_keeps_the_highest_suppression_version_whatever_the_order(db):
    b = Batch()
    for i, v in enumerate((5, 9, 2, 9, 7)):
        b.add_suppression(suppression_rec("+33612340001", v))
        b.advance(TOPICS["suppression"], 0, i)
    ReadModelWriter(db).apply(b)
    assert ReadModel(db).suppression("+33612340001")["version"] == 9


def test_suppressed_among_answers_only_the_phones_in_force(db, monkeypatch):
    import readmodel.queries as queries

    monkeypatch.setattr(queries, "CHECK_CHUNK", 7)  # several IN lists on SQLite
    recs = [suppression_rec(f"+336{i:08d}", 1 + i % 4) for i in range(60)]  # versions 1, 3 suppressed
    put_suppressions(db, recs)
    asked = [f"+336{i:08d}" for i in range(0, 80, 3)] + ["+33600000001", "never seen"]
    want = {r["phone"]: r["reasons"] for r in recs if r["suppressed"] and r["phone"] in asked}
    assert want and len(want) < len(asked)
    assert ReadModel(db).suppressed_among(asked) == want
    assert ReadModel(db).suppressed_among([]) == {}
    assert ReadModel(db).suppression("never seen") is None


# -- atomicity ------------------------------------------------------------------------------
WRITTEN_TABLES = ("campaigns", "campaign_history", "messages", "message_history", "removals", "suppressions", "offsets")


def add_failing_trigger(db: Database, table: str, kill: bool = False) -> None:
    c = db.conn()
    if db.pg:
        body = (
            "PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(5);"
            if kill
            else "RAISE EXCEPTION 'injected failure on %', TG_TABLE_NAME;"
        )
        c.execute(
            f"CREATE OR REPLACE FUNCTION test_fail() RETURNS trigger AS $$ BEGIN {body} RETURN NEW; END $$ "
            "LANGUAGE plpgsql"
        )
        c.execute(
            f"CREATE TRIGGER test_fail BEFORE INSERT OR UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION test_fail()"
        )
    else:
        c.execute(f"CREATE TRIGGER test_fail BEFORE INSERT ON {table} BEGIN SELECT RAISE(ABORT, 'injected'); END")


def drop_failing_trigger(db: Database, table: str) -> None:
    db.reset_thread()
    db.conn().execute("DROP TRIGGER IF EXISTS test_fail" + (f" ON {table}" if db.pg else ""))


#: invalid_row: a row the database refuses (NOT NULL) after the campaigns are written;
#: trigger: the database raises on one table; killed (PostgreSQL): the server closes the
#: connection from a trigger on one table; interrupt (SQLite): a statement aborted after N VM
#: steps (PostgreSQL: a trigger raises on one of three tables).
failures = st.sampled_from(["invalid_row", "trigger", "killed", "interrupt"]).flatmap(
    lambda mode: st.tuples(
        st.just(mode),
        {
            "invalid_row": st.just(""),
            "trigger": st.sampled_from(WRITTEN_TABLES),
            "killed": st.sampled_from(WRITTEN_TABLES),
            "interrupt": st.integers(1, 150),
        }[mode],
    )
)


@FEW
@given(first=schedules(), failure=failures)
def test_a_batch_that_fails_mid_transaction_leaves_neither_rows_nor_offsets(db, first, failure):
    items, batches, order = first
    reset(db)
    w = ReadModelWriter(db)
    for i in order:
        w.apply(to_batch(batches[i]))
    # The second batch touches every table: new rows and newer versions of existing ones.
    base = max([off for *_, off in items] + [0]) + 1
    second_items = [
        ("stats", "c1", 20, TOPICS["stats"], 0, base),
        ("stats", "c9", 1, TOPICS["stats"], 1, base),
        ("status", "m1", 20, TOPICS["status"], 0, base),
        ("status", "m8", 2, TOPICS["status"], 2, base),
        ("removal", "e9", 0, TOPICS["removal"], 0, base),
        ("suppression", "+33612340001", 20, TOPICS["suppression"], 0, base),
        ("suppression", "+33612349999", 1, TOPICS["suppression"], 1, base),
    ]
    second = to_batch(second_items)
    mode, where = failure
    if mode == "invalid_row":
        bad = status_rec("m7", 1)
        bad["phone"] = None  # NOT NULL: the database refuses it after the campaigns are written
        second.add_status(bad)
    before = snapshot(db)
    tampered_table = None
    interrupted = []
    try:
        if mode in ("trigger", "killed"):
            if mode == "killed" and not db.pg:
                mode = "trigger"
            tampered_table = where
            add_failing_trigger(db, where, kill=(mode == "killed"))
        elif mode == "interrupt":
            if db.pg:  # the PostgreSQL counterpart: the server cancels the statement
                tampered_table = ("campaigns", "messages", "offsets")[where % 3]
                add_failing_trigger(db, tampered_table)
            else:
                steps = [0]

                def handler() -> int:
                    steps[0] += 1
                    if steps[0] == 1:
                        interrupted.append(True)
                        return 1
                    return 0

                db.conn().set_progress_handler(handler, where)
        try:
            w.apply(second)
        except Exception as exc:  # noqa: BLE001 - any failure is fine: what it leaves behind is the test
            event(f"{'pg' if db.pg else 'sqlite'} {mode}: {type(exc).__name__}")
        else:
            # Only an interrupt scheduled after the last statement may let it through.
            assert mode == "interrupt" and not db.pg and not interrupted, f"{failure}: the failing batch went in"
            event("sqlite interrupt: scheduled after the last statement")
            return
        db.reset_thread()  # what the projector does after a failed write
        assert snapshot(db) == before, f"{failure}: a failed batch left rows or offsets"
    finally:
        if tampered_table:
            drop_failing_trigger(db, tampered_table)
        db.reset_thread()
    # The same batch goes in once the trouble is gone (the projector retries it).
    if mode == "invalid_row":
        second = to_batch(second_items)
    w.apply(second)
    assert read_tables(db) == expected_tables(items + second_items)


def _nul_record_roundtrip(db: Database) -> None:
    """Free text from upstream (a campaign name, a contact id) may hold a NUL character; Avro
    strings allow it. The projector retries a failed batch forever, so a record the database
    refuses would stop the whole read model."""
    w = ReadModelWriter(db)
    stats = stats_rec("c1", 1)
    stats.update(name="Promo\x00 spring", text="a\x00b")
    status = status_rec("m1", 1)
    status.update(contact_id="ct\x001", provider="p\x00")
    b = Batch()
    b.add_stats(stats)
    b.add_status(status)
    b.advance(TOPICS["stats"], 0, 0)
    w.apply(b)
    m = ReadModel(db)
    assert m.campaign("c1")["name"].replace("\ufffd", "\x00") == "Promo\x00 spring"
    assert m.message("m1")["contact_id"].replace("\ufffd", "\x00") == "ct\x001"
    assert m.campaigns(q="promo").items


def test_text_with_a_nul_character_is_stored_sqlite(tmp_path):
    d = Database(f"sqlite:///{tmp_path / 'rm.sqlite3'}")
    d.create_schema()
    try:
        _nul_record_roundtrip(d)
    finally:
        d.close()


def test_text_with_a_nul_character_is_stored_postgresql(pg_url):
    d = Database(pg_url)
    d.create_schema()
    try:
        _nul_record_roundtrip(d)
    finally:
        d.close()


def test_keys_that_nul_replacement_makes_one_are_written_once_postgresql(pg_url):
    """PostgreSQL gets one statement per table and batch (``unnest``), which refuses a key
    twice; "m\x00" and "m\ufffd" are two keys in the batch and one once NUL is replaced:
    the row a row-by-row write would leave stays (the highest version; the first removal)."""
    d = Database(pg_url)
    d.create_schema()
    try:
        b = Batch()
        b.add_status(status_rec("m1", 2) | {"message_id": "m\x00"})
        b.add_status(status_rec("m1", 5) | {"message_id": "m\ufffd"})
        b.add_status(status_rec("m1", 3) | {"message_id": "m\x00x"})
        b.add_status(status_rec("m1", 1) | {"message_id": "m\ufffdx"})
        b.add_removal(removal_rec("e1") | {"event_id": "e\x00", "reason": "OTHER"})
        b.add_removal(removal_rec("e2") | {"event_id": "e\ufffd", "reason": "BLACKLISTED"})
        b.advance(TOPICS["status"], 0, 0)
        ReadModelWriter(d).apply(b)
        t = read_tables(d)
        assert {k: v[1] for k, v in t["messages"].items()} == {"m\ufffd": 5, "m\ufffdx": 3}
        assert sorted(t["message_history"]) == [("m\ufffd", 2), ("m\ufffd", 5), ("m\ufffdx", 1), ("m\ufffdx", 3)]
        assert {k: v[2] for k, v in t["removals"].items()} == {"e\ufffd": "OTHER"}
    finally:
        d.close()


@pytest.fixture
def pg_db(pg_url):
    d = Database(pg_url)
    d.create_schema()
    yield d
    d.close()


def test_a_connection_closed_by_the_server_mid_batch_is_replaced(pg_db):
    """PostgreSQL terminates the session between the campaigns and the offsets: nothing stays,
    and the writer's next attempt (after ``reset_thread``, as the projector does) succeeds.
    (SQLite has no server; its counterpart is the interrupted statement above.)"""
    db = pg_db
    w = ReadModelWriter(db)
    items = positioned([("stats", "c1", 1), ("status", "m1", 1), ("removal", "e1", 0)], [0, 0, 0])
    add_failing_trigger(db, "offsets", kill=True)
    with pytest.raises(Exception):
        w.apply(to_batch(items))
    drop_failing_trigger(db, "offsets")
    assert snapshot(db) == {t: [] for t in TABLES}
    w.apply(to_batch(items))
    assert read_tables(db) == expected_tables(items)


# -- queries: keyset paging -----------------------------------------------------------------
def sort_key(sort: str, c: dict):
    if sort in ("launched_at", "-launched_at"):
        return (c["launched_at"] if c["launched_at"] is not None else -1, c["campaign_id"])
    if sort == "name":
        return ((c["name"] or "").lower(), c["campaign_id"])
    return (c["sent"], c["campaign_id"])


def campaign(cid: str, name: str | None, launched_at: int | None, sent: int, version: int = 1) -> dict:
    r = stats_rec(cid, version)
    r.update(name=name, launched_at=launched_at, sent=sent, kind="BATCH" if sent % 2 else "AUTOMATED")
    return r


def put_campaigns(db: Database, recs: list[dict], offset: int = 0) -> None:
    b = Batch()
    for i, r in enumerate(recs):
        b.add_stats(r)
        b.advance(TOPICS["stats"], 0, offset + i)
    ReadModelWriter(db).apply(b)


ids = st.text(alphabet="abAB_%-9é", min_size=1, max_size=4)
campaign_specs = st.lists(
    st.tuples(
        ids,
        st.one_of(st.none(), st.text(alphabet="aAbB %_", max_size=3)),
        st.one_of(st.none(), st.integers(0, 3)),
        st.integers(0, 3),
    ),
    min_size=0,
    max_size=25,
    unique_by=lambda t: t[0],
)


@PROPS
@given(specs=campaign_specs, sort=st.sampled_from(SORTS), data=st.data())
def test_keyset_paging_returns_every_campaign_once_and_in_order_with_inserts_between_pages(db, specs, sort, data):
    reset(db)
    originals = [campaign(*s) for s in specs]
    put_campaigns(db, originals)
    model = ReadModel(db)
    taken = {c["campaign_id"] for c in originals}
    inserted: set[str] = set()
    got: list[dict] = []
    cursor = None
    for page_no in range(200):
        limit = data.draw(st.integers(1, 6), label="limit")
        page = model.campaigns(sort=sort, limit=limit, cursor=cursor)
        assert len(page.items) <= limit
        assert (page.next_cursor is None) or len(page.items) == limit
        got += page.items
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        new = data.draw(
            st.lists(
                st.tuples(
                    ids,
                    st.one_of(st.none(), st.text(alphabet="aAbB %_", max_size=3)),
                    st.one_of(st.none(), st.integers(0, 3)),
                    st.integers(0, 3),
                ),
                max_size=3,
            ),
            label="inserted between pages",
        )
        fresh = [campaign(*s) for s in new if s[0] not in taken]
        for c in fresh:
            taken.add(c["campaign_id"])
            inserted.add(c["campaign_id"])
        if fresh:
            put_campaigns(db, fresh, offset=1000 + page_no * 10)
    else:
        pytest.fail("paging did not end")
    got_ids = [c["campaign_id"] for c in got]
    assert len(got_ids) == len(set(got_ids)), "a campaign came twice"
    assert {c["campaign_id"] for c in originals} <= set(got_ids), "a campaign was skipped"
    assert set(got_ids) <= {c["campaign_id"] for c in originals} | inserted
    keys = [sort_key(sort, c) for c in got]
    expected = sorted(keys, reverse=sort.startswith("-"))
    assert keys == expected, f"not in {sort} order"


def test_campaign_filters_kind_and_launch_window(db):
    put_campaigns(
        db,
        [campaign("a", "A", 10, 1), campaign("b", "B", 20, 2), campaign("c", "C", None, 3), campaign("d", "D", 30, 5)],
    )
    m = ReadModel(db)
    assert {c["campaign_id"] for c in m.campaigns(kind="BATCH").items} == {"a", "c", "d"}
    assert {c["campaign_id"] for c in m.campaigns(launched_from=15, launched_to=30).items} == {"b", "d"}
    assert [c["campaign_id"] for c in m.campaigns(sort="-launched_at").items] == ["d", "b", "a", "c"]
    assert [c["campaign_id"] for c in m.campaigns(sort="-sent").items] == ["d", "c", "b", "a"]


# -- queries: q is a literal, case-insensitive substring ------------------------------------
NAME_ALPHABET = "aB%_\\x"


@PROPS
@given(
    specs=st.lists(
        st.tuples(
            st.text(alphabet=NAME_ALPHABET, min_size=1, max_size=4),
            st.one_of(st.none(), st.text(alphabet=NAME_ALPHABET, max_size=6)),
        ),
        max_size=15,
        unique_by=lambda t: t[0],
    ),
    q=st.text(alphabet=NAME_ALPHABET, min_size=1, max_size=3),
)
def test_q_is_a_literal_case_insensitive_substring_of_name_or_id(db, specs, q):
    reset(db)
    put_campaigns(db, [campaign(cid, name, 1, 1) for cid, name in specs])
    got = {c["campaign_id"] for c in ReadModel(db).campaigns(q=q, limit=1000).items}
    want = {cid for cid, name in specs if q.lower() in (name or "").lower() or q.lower() in cid.lower()}
    assert got == want


@pytest.mark.parametrize(
    "q, want",
    [
        ("%", {"pct"}),
        ("_", {"under"}),
        ("\\", {"back"}),
        ("0% OFF", {"pct"}),
        ("a_b", {"under"}),
        ("\\s", {"back"}),
        ("\\%", set()),
        ("%%", set()),
        ("__", set()),
        ("SUMMER", {"pct", "under", "back"}),
        ("summer s", set()),
    ],
)
def test_q_with_like_metacharacters(db, q, want):
    put_campaigns(
        db,
        [
            campaign("pct", "Summer 100% off", 1, 1),
            campaign("under", "summer a_b", 2, 1),
            campaign("back", "Summer back\\slash", 3, 1),
            campaign("plain", "winter", 4, 1),
        ],
    )
    assert {c["campaign_id"] for c in ReadModel(db).campaigns(q=q).items} == want


# -- queries: messages --------------------------------------------------------------------
def put_messages(db: Database, recs: list[dict]) -> None:
    b = Batch()
    for i, r in enumerate(recs):
        b.add_status(r)
        b.advance(TOPICS["status"], 0, i)
    ReadModelWriter(db).apply(b)


def msg(mid: str, status: str, reason: str | None = None, campaign_id: str = "K", error_code: str | None = None):
    return {
        "message_id": mid,
        "campaign_id": campaign_id,
        "contact_id": f"ct-{mid}",
        "phone": "+33612340000",
        "status": status,
        "category": CATEGORY[status],
        "error_code": error_code,
        "provider": "p",
        "sent_at": 1,
        "status_at": 2,
        "version": 1,
        "not_sent_reason": reason,
        "phone_valid": True,
    }


def test_not_sent_reason_other_matches_not_sent_without_a_reason(db):
    put_messages(
        db,
        [
            msg("n1", "NOT_SENT"),
            msg("n2", "NOT_SENT", ""),
            msg("n3", "NOT_SENT", "OTHER"),
            msg("n4", "NOT_SENT", "OPTED_OUT"),
            msg("d1", "DELIVERED"),
            msg("h1", "HARD_BOUNCE"),
            msg("x1", "NOT_SENT", campaign_id="other-campaign"),
        ],
    )
    m = ReadModel(db)
    other = {x["message_id"] for x in m.messages("K", not_sent_reason="OTHER").items}
    assert other == {"n1", "n2", "n3"}
    assert m.count_messages("K", not_sent_reason="OTHER") == 3
    assert {r[0] for rows in m.iter_messages("K", not_sent_reason="OTHER") for r in rows} == {"n1", "n2", "n3"}
    assert {x["message_id"] for x in m.messages("K", not_sent_reason="OPTED_OUT").items} == {"n4"}
    assert {x["message_id"] for x in m.messages("K", status="NOT_SENT").items} == {"n1", "n2", "n3", "n4"}
    # the row shows what was published, not the statistics' bucket
    assert {x["message_id"]: x["not_sent_reason"] for x in m.messages("K", not_sent_reason="OTHER").items} == {
        "n1": None,
        "n2": "",
        "n3": "OTHER",
    }


@FEW
@given(n=st.integers(0, 30), limit=st.integers(1, 7), status=st.sampled_from([None, *STATUSES]))
def test_message_paging_returns_every_matching_message_once(db, n, limit, status):
    reset(db)
    recs = [msg(f"m{i:02d}", STATUSES[i % len(STATUSES)], campaign_id="K" if i % 4 else "Z") for i in range(n)]
    put_messages(db, recs)
    m = ReadModel(db)
    got, cursor = [], None
    while True:
        page = m.messages("K", status=status, limit=limit, cursor=cursor)
        got += [x["message_id"] for x in page.items]
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    want = sorted(r["message_id"] for r in recs if r["campaign_id"] == "K" and status in (None, r["status"]))
    assert got == want
    assert m.count_messages("K", status=status) == len(want)


def test_removal_paging_newest_first(db):
    b = Batch()
    for i in range(1, 12):
        r = removal_rec(f"e{i}")
        r["at"] = 1000 + i // 3  # ties on time: event_id breaks them
        b.add_removal(r)
        b.advance(TOPICS["removal"], 0, i)
    ReadModelWriter(db).apply(b)
    m = ReadModel(db)
    got, cursor = [], None
    while True:
        page = m.removals(limit=4, cursor=cursor)
        got += [(x["at"], x["event_id"]) for x in page.items]
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert got == sorted(got, reverse=True) and len(got) == len(set(got)) == 11


# -- queries: cursors are checked -----------------------------------------------------------
def fill_for_cursors(db: Database) -> None:
    put_campaigns(db, [campaign(f"c{i}", f"n{i}", i, i) for i in range(5)])
    put_messages(db, [msg(f"m{i}", "DELIVERED") for i in range(5)])
    b = Batch()
    for i in range(1, 6):
        b.add_removal(removal_rec(f"e{i}"))
        b.advance(TOPICS["removal"], 0, i)
    ReadModelWriter(db).apply(b)


def test_cursors_from_one_sort_or_listing_are_rejected_by_another(db):
    fill_for_cursors(db)
    m = ReadModel(db)
    cursors = {("campaigns", s): m.campaigns(sort=s, limit=1).next_cursor for s in SORTS}
    cursors[("messages", None)] = m.messages("K", limit=1).next_cursor
    cursors[("removals", None)] = m.removals(limit=1).next_cursor
    assert all(cursors.values())

    def use(listing, sort, cursor):
        if listing == "campaigns":
            return m.campaigns(sort=sort, cursor=cursor)
        if listing == "messages":
            return m.messages("K", cursor=cursor)
        return m.removals(cursor=cursor)

    for (listing, sort), cursor in cursors.items():
        use(listing, sort, cursor)  # its own listing takes it
        for other_listing, other_sort in cursors:
            if (other_listing, other_sort) != (listing, sort):
                with pytest.raises(BadRequest):
                    use(other_listing, other_sort, cursor)


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "!",
        "not base64 at all",
        "%%%",
        "AAAA",
        "e30",
        "W10",
        "bnVsbA",
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        "a" * 2048,
        encode_cursor("c-sent", [1]),
        encode_cursor("c-sent", [1, "x", 3]),
        encode_cursor("c-sent", [True, "x"]),
        encode_cursor("c-sent", [1.5, "x"]),
        encode_cursor("c-sent", [None, "x"]),
        encode_cursor("c-sent", [[1], "x"]),
    ],
)
def test_garbage_cursors_are_a_bad_request(db, garbage):
    fill_for_cursors(db)
    m = ReadModel(db)
    if garbage == "":  # no cursor at all: the first page
        assert m.campaigns(sort="-sent", cursor=garbage).items
        return
    with pytest.raises(BadRequest):
        m.campaigns(sort="-sent", cursor=garbage)


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.integers(-3, 3),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.just(2**63),
    st.just(-(2**63) - 1),
)


LISTINGS = [("c", s) for s in SORTS] + [("m", None), ("r", None)]


@st.composite
def forged_cursors(draw):
    """A listing, and a cursor for it: mostly its own kind and arity, values of any JSON type."""
    listing, sort = draw(st.sampled_from(LISTINGS))
    own = "c" + sort if listing == "c" else listing
    kind = draw(st.one_of(st.just(own), st.just(own), st.just(own), st.sampled_from([k for k, _ in LISTINGS])))
    arity = 1 if listing == "m" else 2
    values = draw(st.one_of(st.lists(json_scalars, min_size=arity, max_size=arity), st.lists(json_scalars, max_size=3)))
    return listing, sort, [kind, *values]


@PROPS
@given(forged=forged_cursors())
@example(forged=("c", "-sent", ["c-sent", 2**63, "c1"]))  # SQLite: OverflowError
@example(forged=("c", "-sent", ["c-sent", "abc", "c1"]))  # PostgreSQL: invalid input syntax for type bigint
def test_a_forged_cursor_is_a_bad_request_or_a_page_never_a_database_error(db, forged):
    """A cursor is opaque but comes from the client: decoded, well-formed, with values of the
    wrong type or out of range for the database (a text where the sort key is a number, a
    number past 64 bits), it must be refused as a bad request, never reach the database."""
    listing, sort, value = forged
    if not hasattr(db, "_filled"):
        fill_for_cursors(db)
        db._filled = True
    m = ReadModel(db)
    try:
        raw = orjson.dumps(value)
    except orjson.JSONEncodeError:  # past 64 bits: orjson does not write it; a client can
        import json

        raw = json.dumps(value).encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    try:
        if listing == "c":
            m.campaigns(sort=sort, cursor=cursor)
        elif listing == "m":
            m.messages("K", cursor=cursor)
        else:
            m.removals(cursor=cursor)
    except BadRequest:
        pass
    except Exception as exc:  # noqa: BLE001 - any other error is an HTTP 500
        db.reset_thread()
        pytest.fail(
            f"cursor {raw!r} on listing {listing} sort {sort}: {type(exc).__name__}: {exc} (an HTTP 500, not a 400)"
        )


@pytest.mark.parametrize(
    "listing, sort, value",
    [
        ("c", "-sent", ["c-sent", "abc", "c1"]),  # PostgreSQL: invalid input syntax for type bigint
        ("c", "name", ["cname", 5, "c1"]),  # PostgreSQL: operator does not exist: text > smallint
        ("c", "-launched_at", ["c-launched_at", 1, 7]),  # an int where the campaign_id goes
        ("m", None, ["m", 5]),  # PostgreSQL: text > smallint
        ("r", None, ["r", "late", "e1"]),
        ("c", "-sent", ["c-sent", 2**63, "c1"]),  # SQLite: OverflowError (past a 64-bit signed integer)
        ("r", None, ["r", 2**64 - 1, "e1"]),
    ],
)
def test_well_formed_cursors_with_values_of_the_wrong_type_are_a_bad_request(db, listing, sort, value):
    fill_for_cursors(db)
    m = ReadModel(db)
    cursor = base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")
    call = {
        "c": lambda: m.campaigns(sort=sort, cursor=cursor),
        "m": lambda: m.messages("K", cursor=cursor),
        "r": lambda: m.removals(cursor=cursor),
    }[listing]
    try:
        call()
    except BadRequest:
        return
    except Exception as exc:  # noqa: BLE001
        db.reset_thread()
        pytest.fail(f"{value!r}: {type(exc).__name__}: {str(exc).splitlines()[0]} (an HTTP 500, not a 400)")
    pytest.fail(f"{value!r} was taken as a cursor of listing {listing} sort {sort}")
