"""The CSV export formatted by the database (readmodel/web/csv_export.py) against a plain
Python formatter of contract §10, byte for byte, on SQLite and on a real PostgreSQL: hostile
cells, phones masked or not, times from year 1000 to 9999, rows in chunks mixing both paths.

Rows go into ``messages`` with plain INSERTs (no ReadModelWriter), so any text a column
can hold is tried, not only what the projector would write.
"""

from __future__ import annotations

import csv
import io
import itertools
import random
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from readmodel.db import Database
from readmodel.queries import ReadModel
from readmodel.schema import MESSAGE_COLUMNS
from readmodel.web import csv_export
from readmodel.web.csv_export import HEADER, csv_chunks, reference_chunks
from readmodel.web.privacy import mask_phone, neutralize_cell

T0 = 1_700_000_000_000
HOSTILE = [
    '=HYPERLINK("x")',
    "+1",
    "-1",
    "@x",
    "\tx",
    "\rx",
    "=1+2",
    '"',
    ",",
    "a,b",
    'he said "hi"',
    "l1\nl2",
    "cr\r\nlf",
    "\r",
    "\n",
    "",
    " ",
    "é ü 中文",
    "'",
    "+33612345678",
    "+1٣٣٣٣٣٣٣",
    "+١٢٣٤٥٦٧٨",
    "-٣",
    "\x01\x1f",
    "x=1",
    "+33*****5678",
    "+0612345678",
    "@",
    "=",
    "+",
]
PHONES = [
    "+33612345678",
    "+447700900123",
    "+12025550123",
    "+79161234567",
    "+97150123456",
    "+35212345678",
    "+0612345678",
    "+999123456789",
    "+3361234567890123456789",
    "+1234567",
    "+123456",
    "+12345",
    "+1234",
    "+1",
    "+",
    "",
    "06 98 11 22 33",
    "0612345678",
    "+33 6 12 34 56 78",
    "+33٦١٢٣٤٥٦٧٨",
    "+²³⁴⁵⁶⁷⁸⁹",
    "+" + "9" * 44,
    "+" + "9" * 45,
    "+" + "9" * 60,
    "=1+2",
    "-1",
    "\t+33612345678",
    "+33612345678\n",
    'x"y',
    "a,b",
]
MIN_MS, MAX_MS = -30_610_224_000_000, 253_402_300_799_999  # 1000-01-01 .. 9999-12-31T23:59:59.999Z
EDGE_MS = [
    0,
    1,
    999,
    1000,
    -1,
    -999,
    -1000,
    -1001,
    T0,
    T0 + 999,
    MAX_MS,
    MIN_MS,
    951_782_400_000,  # 2000-02-29
    86_400_000 - 1,
    4_102_444_800_000,
    32_503_680_000_000 - 1,
    72_000_000_000_000 + 123,
]


# -- the definition, written out plainly --------------------------------------------------------
def iso(ms: int) -> str:
    sec, frac = divmod(ms, 1000)
    return datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{frac:03d}Z"


def text_cell(value: str | None) -> str:
    return "" if value is None else neutralize_cell(value)


def expected_csv(raw_chunks, masked: bool) -> bytes:
    """Contract §10 one row at a time, from the rows as ``ReadModel.iter_messages`` yields them."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(HEADER)
    for rows in raw_chunks:
        for r in rows:
            m = dict(
                zip(
                    (
                        "message_id",
                        "campaign_id",
                        "contact_id",
                        "phone",
                        "status",
                        "category",
                        "error_code",
                        "provider",
                        "sent_at",
                        "status_at",
                        "version",
                        "not_sent_reason",
                        "phone_valid",
                    ),
                    r,
                )
            )
            phone = mask_phone(m["phone"]) if masked else m["phone"]
            w.writerow(
                [
                    text_cell(m["message_id"]),
                    text_cell(m["contact_id"]),
                    neutralize_cell(phone),
                    m["status"],
                    m["category"],
                    text_cell(m["error_code"]),
                    text_cell(m["provider"]),
                    m["not_sent_reason"] or "",
                    iso(m["sent_at"]),
                    iso(m["status_at"]),
                ]
            )
    return buf.getvalue().encode("utf-8")


# -- databases ---------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def model(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'rm.sqlite3'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    db = Database(url)
    db.create_schema()
    yield ReadModel(db)
    db.close()


_campaigns = itertools.count()


def insert(model: ReadModel, messages: list[dict]) -> str:
    """The messages as the only rows of a campaign of their own; returns its id."""
    cid = f"csvfast-{next(_campaigns)}"
    rows = []
    for i, m in enumerate(messages):
        full = {
            "message_id": f"m{i:05d}",
            "contact_id": f"ct-{i}",
            "phone": "+33612345678",
            "status": "DELIVERED",
            "category": "receipt",
            "error_code": None,
            "provider": "smpp",
            "not_sent_reason": None,
            "sent_at": T0 + i,
            "status_at": T0 + 100 + i,
            **m,
        }
        full.update(campaign_id=cid, version=1, reason_key=full["not_sent_reason"], phone_valid=1)
        rows.append(tuple(full[c] for c in MESSAGE_COLUMNS))
    sql = model.db.sql(
        f"INSERT INTO messages ({', '.join(MESSAGE_COLUMNS)}) VALUES ({', '.join('?' for _ in MESSAGE_COLUMNS)})"
    )
    with model.db.transaction() as c:
        c.execute("DELETE FROM messages")  # message ids are unique across campaigns
        (c.cursor() if model.db.pg else c).executemany(sql, rows)
    return cid


def export(model: ReadModel, cid: str, masked: bool, **filters) -> bytes:
    return b"".join(csv_chunks(model.iter_messages(cid, **filters), masked))


def assert_same(model: ReadModel, cid: str, masked: bool, **filters) -> None:
    want = expected_csv(model.iter_messages(cid, **filters), masked)
    assert export(model, cid, masked, **filters) == want
    assert b"".join(reference_chunks(model.iter_messages(cid, **filters), masked)) == want


# -- properties ----------------------------------------------------------------------------------
hostile_text = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12),
)
nullable = st.one_of(st.none(), hostile_text)
phones = st.one_of(
    st.sampled_from(PHONES),
    hostile_text,
    st.builds(lambda d: "+" + d, st.text("0123456789", min_size=1, max_size=50)),
    st.builds(lambda d: "+" + d, st.text("0123456789٠١٢٣٤٥٦٧٨٩²³", min_size=1, max_size=16)),
)
times = st.one_of(st.sampled_from(EDGE_MS), st.integers(MIN_MS, MAX_MS), st.integers(0, 4_102_444_800_000))
message = st.fixed_dictionaries(
    {},
    optional={
        "message_id": hostile_text,
        "contact_id": nullable,
        "phone": phones,
        "error_code": nullable,
        "provider": nullable,
        "not_sent_reason": nullable,
        "status": hostile_text,
        "category": hostile_text,
        "sent_at": times,
        "status_at": times,
    },
)


def unique_ids(messages: list[dict]) -> list[dict]:
    seen: set = set()
    out = []
    for i, m in enumerate(messages):
        mid = m.get("message_id", f"m{i:05d}")
        if mid not in seen:
            seen.add(mid)
            out.append(m)
    return out


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=st.lists(message, max_size=12).map(unique_ids), masked=st.booleans())
@example(messages=[{"phone": p} for p in PHONES], masked=True)
@example(messages=[{"phone": p} for p in PHONES], masked=False)
@example(
    messages=[
        {"contact_id": v, "error_code": v, "provider": v, "message_id": f"h{i}-{v}"} for i, v in enumerate(HOSTILE)
    ],
    masked=True,
)
@example(messages=[{"sent_at": ms, "status_at": ms} for ms in EDGE_MS], masked=True)
def test_the_sql_formatted_export_is_byte_identical_to_the_definition(model, messages, masked):
    assert_same(model, insert(model, messages), masked)


def test_chunks_mixing_plain_quoted_and_python_rows(model, monkeypatch):
    """Chunk by chunk each path is taken on its own: plain chunks, a chunk with a quoted
    cell, a chunk with a row only Python can finish (a phone SQL does not mask, a time before 1970)."""
    monkeypatch.setattr(csv_export, "CHUNK_ROWS", 7)
    messages = [{} for _ in range(60)]
    messages[9] = {"contact_id": "a,b"}
    messages[23] = {"phone": "06 98 11 22 33"}
    messages[30] = {"sent_at": -5}
    messages[31] = {"error_code": '=x"'}
    messages[59] = {"provider": "+1٣٣٣٣٣٣٣"}
    cid = insert(model, messages)
    for masked in (True, False):
        assert_same(model, cid, masked)


def test_filters_and_an_empty_result(model):
    cid = insert(
        model,
        [
            {"status": "NOT_SENT", "category": "not_sent", "not_sent_reason": "OPTED_OUT"},
            {"status": "HARD_BOUNCE", "category": "permanent_error", "error_code": "HB-01"},
            {},
        ],
    )
    for filters in (
        {},
        {"status": "NOT_SENT"},
        {"category": "permanent_error"},
        {"error_code": "HB-01"},
        {"not_sent_reason": "OPTED_OUT"},
        {"status": "PENDING"},
    ):
        assert_same(model, cid, True, **filters)
    assert export(model, "no-such-campaign", True) == (",".join(HEADER) + "\r\n").encode()


def test_masked_phone_examples_of_the_contract(model):
    cid = insert(model, [{"phone": "+33612345678"}, {"phone": "+447700900123"}, {"phone": "06 98 11 22 33"}])
    rows = list(csv.reader(io.StringIO(export(model, cid, True).decode(), newline="")))
    assert [r[2] for r in rows[1:]] == ["'+33*****5678", "'+44******0123", "** ** ** 22 33"]
    rows = list(csv.reader(io.StringIO(export(model, cid, False).decode(), newline="")))
    assert [r[2] for r in rows[1:]] == ["+33612345678", "+447700900123", "06 98 11 22 33"]


def test_times_across_the_whole_range(model):
    """Many times at once: a formula that is off by a millisecond far from 1970 (PostgreSQL's
    interval * bigint passes through a double) shows up here, not in a dozen examples."""
    rng = random.Random(7)
    ms = (
        EDGE_MS
        + [rng.randint(MIN_MS, MAX_MS) for _ in range(1500)]
        + [MAX_MS - rng.randint(0, 10**9) for _ in range(300)]
    )
    cid = insert(model, [{"sent_at": a, "status_at": b} for a, b in zip(ms, reversed(ms))])
    assert_same(model, cid, True)


def test_the_export_reads_the_rows_in_index_order(model):
    """The SQL-formatted export has the listing's WHERE and ORDER BY, so a million rows are
    read in index order, never sorted first (``test_projector_indexes`` sees only ``db.stream``)."""
    cid = insert(model, [{} for _ in range(50)])
    db, rows = model.db, model.iter_messages(cid, status="DELIVERED")
    if not db.pg:
        c = db.conn()
        for name, fn in csv_export._sqlite_functions(True).items():
            c.create_function(name, 1, fn)
        sql = rows._sql(csv_export._sqlite_columns(True))
        text = "\n".join(r[3] for r in c.execute("EXPLAIN QUERY PLAN " + sql, rows.params))
        assert "INDEX" in text and "TEMP B-TREE" not in text, text
        return
    c = db.conn()
    c.execute("ANALYZE messages")
    c.execute("SET enable_sort = off")  # on 50 rows a sort is rightly cheaper; can the index do without?
    try:
        sql = rows._sql(csv_export._pg_columns(True).replace("%", "%%"))
        text = "\n".join(r[0] for r in c.execute("EXPLAIN " + sql, rows.params))
    finally:
        c.execute("RESET enable_sort")
    assert "Index" in text and "Sort" not in text, text
