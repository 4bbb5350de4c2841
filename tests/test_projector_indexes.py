"""The read model keeps few indexes so that the projector can write fast (readmodel/schema.py):
every query ``readmodel/queries.py`` sends about messages and removals must still be served
by one, on SQLite and on PostgreSQL, as each query planner says (EXPLAIN QUERY PLAN, EXPLAIN).

The statements are the ones ``ReadModel`` really sends (recorded from ``Database.query`` and
``Database.stream``), on a table filled through ``ReadModelWriter`` and analysed, so that
PostgreSQL's planner chooses with statistics as it would in service.
"""

from __future__ import annotations

import random

import pytest

from readmodel.db import Database
from readmodel.queries import ReadModel
from readmodel.schema import INDEXES
from readmodel.store import Batch, ReadModelWriter

CAMPAIGNS = 20
PER_CAMPAIGN = 600
STATUSES = (
    ("PENDING", "waiting", None),
    ("DELIVERED", "receipt", None),
    ("HARD_BOUNCE", "permanent_error", "E42"),
    ("SOFT_BOUNCE", "temporary_error", "E7"),
    ("NOT_SENT", "not_sent", None),
)


def status_rec(i: int) -> dict:
    status, category, code = STATUSES[i % len(STATUSES)]
    return {
        "message_id": f"msg-{i:06d}",
        "campaign_id": f"cmp-{i // PER_CAMPAIGN:02d}",
        "contact_id": f"ct-{i}",
        "phone": f"+336{i:08d}",
        "status": status,
        "category": category,
        "error_code": code,
        "provider": "p",
        "sent_at": 1_700_000_000_000 + i,
        "status_at": 1_700_000_000_500 + i,
        "version": 1,
        "not_sent_reason": ("OPTED_OUT" if i % 2 else None) if status == "NOT_SENT" else None,
        "phone_valid": True,
    }


def removal_rec(i: int) -> dict:
    return {
        "event_id": f"ev-{i:05d}",
        "phone": f"+336{i % 500:08d}",
        "reason": ("PERMANENT_ERROR", "OTHER")[i % 2],
        "contact_id": None,
        "campaign_id": None,
        "message_id": None,
        "status": None,
        "error_code": None,
        "provider": None,
        "channel": None,
        "at": 1_700_000_000_000 + i,
    }


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def filled(request, tmp_path_factory):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('idx') / 'readmodel.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_cluster").new_database("projector_indexes")
    db = Database(url)
    db.create_schema()
    b = Batch()
    order = list(range(CAMPAIGNS * PER_CAMPAIGN))
    random.Random(7).shuffle(order)  # rows in no particular order on disk, as receipts come
    for n, i in enumerate(order):
        b.add_status(status_rec(i))
        b.advance("sms.message-status", 0, n)
    for i in range(2000):
        b.add_removal(removal_rec(i))
        b.advance("sms.address-book-removals", 0, i)
    ReadModelWriter(db).apply(b)
    db.conn().execute("ANALYZE")
    yield db
    db.close()


class Recorder:
    """The statements a ``ReadModel`` call sends, with their parameters."""

    def __init__(self, db: Database):
        self.db, self.sent = db, []
        self._query, self._stream = db.query, db.stream

    def __enter__(self):
        def query(sql, params=()):
            self.sent.append((sql, list(params)))
            return self._query(sql, params)

        def stream(sql, params=(), size=2000):
            self.sent.append((sql, list(params)))
            return self._stream(sql, params, size)

        self.db.query, self.db.stream = query, stream
        return self

    def __exit__(self, *exc):
        del self.db.query, self.db.stream


def plan(db: Database, sql: str, params: list) -> str:
    if db.pg:
        rows = db.conn().execute("EXPLAIN " + db.sql(sql), params).fetchall()
        return "\n".join(r[0] for r in rows)
    return "\n".join(r[3] for r in db.conn().execute("EXPLAIN QUERY PLAN " + sql, params).fetchall())


def sent_by(db: Database, call) -> list[tuple[str, list]]:
    with Recorder(db) as rec:
        out = call(ReadModel(db))
        if out is not None and not isinstance(out, (int, dict)) and not hasattr(out, "items"):
            for _ in out:  # a stream: its statement is sent when iterated
                pass
    return rec.sent


FILTERS = [
    {},
    {"status": "HARD_BOUNCE"},
    {"category": "receipt"},
    {"not_sent_reason": "OPTED_OUT"},
    {"not_sent_reason": "OTHER"},
    {"error_code": "E42"},
    {"status": "NOT_SENT", "not_sent_reason": "OPTED_OUT"},
]


def message_calls():
    for f in FILTERS:
        name = ",".join(f) or "no filter"
        yield f"list {name}", lambda m, f=f: m.messages("cmp-03", limit=50, **f)
        yield (
            f"next page {name}",
            lambda m, f=f: m.messages("cmp-03", limit=5, cursor=m.messages("cmp-03", limit=5, **f).next_cursor, **f),
        )
        yield f"count {name}", lambda m, f=f: m.count_messages("cmp-03", **f)
        yield f"csv {name}", lambda m, f=f: m.iter_messages("cmp-03", **f)


def ordered_plan(db: Database, sql: str, params: list) -> str:
    """PostgreSQL's plan when it may not sort: on a small result it rightly prefers a bitmap
    scan and a sort; this shows the index can hand the rows over in order (what a large
    campaign needs)."""
    c = db.conn()
    c.execute("SET enable_sort = off")
    c.execute("SET enable_bitmapscan = off")
    try:
        return plan(db, sql, params)
    finally:
        c.execute("RESET enable_sort")
        c.execute("RESET enable_bitmapscan")


def assert_listing_index(db: Database, sql: str, params: list) -> None:
    """Through messages_listing, and for a listing in its order (no sort of the rows)."""
    text = plan(db, sql, params)
    if not db.pg:
        assert "INDEX messages_listing" in text, text
        if "ORDER BY" in sql:
            assert "TEMP B-TREE" not in text, text
        return
    assert "messages_listing" in text and "Seq Scan" not in text, text
    # the filters are tested inside the index, not on rows read from the table
    cond = next(line for line in text.splitlines() if "Index Cond" in line)
    for col in ("status", "category", "reason_key", "error_code", "message_id"):
        if f"{col} = " in sql or f"{col} > " in sql:
            assert col in cond, f"{col} not an index condition:\n{text}"
    if "ORDER BY" in sql:
        text = ordered_plan(db, sql, params)
        assert "messages_listing" in text and "Sort" not in text, text


@pytest.mark.parametrize("label, call", list(message_calls()), ids=[c[0] for c in message_calls()])
def test_every_message_listing_count_and_csv_goes_through_the_listing_index(filled, label, call):
    sent = [s for s in sent_by(filled, call) if "FROM messages" in s[0]]
    assert sent, "no statement on messages"
    for sql, params in sent:
        assert_listing_index(filled, sql, params)


def test_one_message_and_its_history_by_primary_key(filled):
    sent = sent_by(filled, lambda m: m.message("msg-000042"))
    assert len(sent) == 2
    for sql, params in sent:
        text = plan(filled, sql, params)
        if filled.pg:
            assert "_pkey" in text and "Seq Scan" not in text, text
        else:
            assert "sqlite_autoindex_" in text and "TEMP B-TREE" not in text, text


@pytest.mark.parametrize(
    "kwargs, index",
    [
        ({}, "removals_by_time"),
        ({"reason": "OTHER"}, "removals_by_time"),
        ({"phone": "+33600000007"}, "removals_by_phone"),
    ],
)
def test_removal_listings_use_their_indexes(filled, kwargs, index):
    m = ReadModel(filled)
    cursor = m.removals(limit=3, **kwargs).next_cursor
    for c in (None, cursor):
        for sql, params in sent_by(filled, lambda m, c=c: m.removals(limit=3, cursor=c, **kwargs)):
            text = plan(filled, sql, params)
            assert index in text and "Seq Scan" not in text and "TEMP B-TREE" not in text, text


def test_messages_have_one_secondary_index():
    """The write cost is per index: one more on messages needs its own reason here."""
    on_messages = [i for i in INDEXES if " ON messages " in i]
    assert len(on_messages) == 1, on_messages
