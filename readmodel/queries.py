"""Reading the read model: the lists of contract §10, filtered and keyset-paged.

Paging is by keyset, never by OFFSET: a cursor holds the sort key of the last row
returned, so page N costs what page 1 costs and rows arriving meanwhile neither repeat
nor vanish from a listing. Cursors are opaque to clients (base64url JSON) and checked
when they come back; a malformed one is the caller's error (``BadRequest``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from .db import Database
from .schema import MESSAGE_FIELDS, REMOVAL_COLUMNS, SUPPRESSION_COLUMNS

SORTS = ("launched_at", "-launched_at", "name", "-sent")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
#: Phones per ``IN (...)`` of a suppression check on SQLite. bench/suppression_check.py, 10 000
#: phones against 200 000 rows: 100 per list 42-52 ms, 900 40-45 ms, 5 000 33-36 ms, 10 000 34 ms, a
#: temporary table joined on the key 80-100 ms. Not more: SQLite allows 32 766
#: parameters per statement (since 3.32; 999 before, which this SQLite is not).
CHECK_CHUNK = 5000


class BadRequest(ValueError):
    """A query the caller got wrong (answered 400 with this text as ``detail``)."""


@dataclass(frozen=True)
class Page:
    items: list[dict]
    next_cursor: str | None


def encode_cursor(kind: str, key: list) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([kind, *key])).decode().rstrip("=")


_INT64 = (-(2**63), 2**63 - 1)


def decode_cursor(kind: str, cursor: str, types: tuple[type, ...]) -> list:
    """The key a cursor holds, each value of the type (and an int of the range) its listing sorts on."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise BadRequest("cursor is not one this API returned") from None
    if not isinstance(value, list) or len(value) != len(types) + 1 or value[0] != kind:
        raise BadRequest("cursor does not belong to this listing (it comes from another route or sort)")
    for v, t in zip(value[1:], types, strict=True):
        if type(v) is not t or (t is int and not _INT64[0] <= v <= _INT64[1]):
            raise BadRequest("cursor is not one this API returned")
    return value[1:]


def _like(text: str) -> str:
    return "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _message(row: tuple) -> dict:
    d = dict(zip(MESSAGE_FIELDS, row, strict=True))
    d["phone_valid"] = bool(d["phone_valid"])
    return d


def _reasons(joined: str) -> list[str]:
    return joined.split(",") if joined else []


def _suppression(row: tuple) -> dict:
    d = dict(zip(SUPPRESSION_COLUMNS, row, strict=True))
    d["suppressed"] = bool(d["suppressed"])
    d["reasons"] = _reasons(d["reasons"])
    return d


_MESSAGE_SELECT = (
    "SELECT message_id, campaign_id, contact_id, phone, status, category, error_code, provider, "
    "sent_at, status_at, version, not_sent_reason, phone_valid FROM "
)
# The order of the listing's covering index: pages and the export read it without sorting.
_MESSAGE_ORDER = " ORDER BY campaign_id, message_id"


class ReadModel:
    def __init__(self, db: Database):
        self.db = db

    # -- campaigns ------------------------------------------------------------------------
    def campaigns(
        self,
        q: str | None = None,
        kind: str | None = None,
        launched_from: int | None = None,
        launched_to: int | None = None,
        sort: str = "-launched_at",
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page:
        if sort not in SORTS:
            raise BadRequest(f"sort must be one of {', '.join(SORTS)}")
        where, params = [], []
        if q:
            where.append("(name_lc LIKE ? ESCAPE '\\' OR id_lc LIKE ? ESCAPE '\\')")
            params += [_like(q), _like(q)]
        if kind:
            where.append("kind = ?")
            params.append(kind)
        if launched_from is not None:
            where.append("launched_at >= ?")
            params.append(launched_from)
        if launched_to is not None:
            where.append("launched_at <= ?")
            params.append(launched_to)
        # Sort key: a value (never NULL, so keyset comparisons hold) and campaign_id.
        key_sql, desc = {
            "launched_at": ("COALESCE(launched_at, -1)", False),
            "-launched_at": ("COALESCE(launched_at, -1)", True),
            "name": ("name_lc", False),
            "-sent": ("sent", True),
        }[sort]
        if cursor:
            k, cid = decode_cursor("c" + sort, cursor, (str if sort == "name" else int, str))
            op = "<" if desc else ">"
            where.append(f"({key_sql} {op} ? OR ({key_sql} = ? AND campaign_id {op} ?))")
            params += [k, k, cid]
        order = "DESC" if desc else "ASC"
        sql = (
            f"SELECT doc, {key_sql} FROM campaigns"
            + (" WHERE " + " AND ".join(where) if where else "")
            + f" ORDER BY {key_sql} {order}, campaign_id {order} LIMIT ?"
        )
        rows = self.db.query(sql, params + [limit + 1])
        items = [orjson.loads(r[0]) for r in rows[:limit]]
        nxt = None
        if len(rows) > limit:
            last = rows[limit - 1]
            nxt = encode_cursor("c" + sort, [last[1], items[-1]["campaign_id"]])
        return Page(items, nxt)

    def campaign(self, campaign_id: str) -> dict | None:
        rows = self.db.query("SELECT doc FROM campaigns WHERE campaign_id = ?", (campaign_id,))
        return orjson.loads(rows[0][0]) if rows else None

    def campaign_history(self, campaign_id: str, limit: int = 5000) -> list[dict]:
        """Versions in order; at most ``limit``, the newest ones (the chart downsamples)."""
        rows = self.db.query(
            "SELECT doc FROM campaign_history WHERE campaign_id = ? ORDER BY version DESC LIMIT ?", (campaign_id, limit)
        )
        return [orjson.loads(r[0]) for r in reversed(rows)]

    # -- messages -------------------------------------------------------------------------
    @staticmethod
    def _message_filters(
        campaign_id: str,
        status: str | None,
        category: str | None,
        not_sent_reason: str | None,
        error_code: str | None,
        after: str | None = None,
    ) -> tuple[str, list[Any]]:
        """``messages WHERE ...`` and its parameters: one definition of the rows a listing, its
        count and the CSV export hold, so the export is the listing's pages end to end."""
        where, params = ["campaign_id = ?"], [campaign_id]
        for col, value in (
            ("status", status),
            ("category", category),
            ("reason_key", not_sent_reason),
            ("error_code", error_code),
        ):
            if value is not None:
                where.append(f"{col} = ?")
                params.append(value)
        if after is not None:  # a page's cursor: the rows after it in _MESSAGE_ORDER
            where.append("message_id > ?")
            params.append(after)
        return "messages WHERE " + " AND ".join(where), params

    def messages(
        self,
        campaign_id: str,
        status: str | None = None,
        category: str | None = None,
        not_sent_reason: str | None = None,
        error_code: str | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page:
        (after,) = decode_cursor("m", cursor, (str,)) if cursor else (None,)
        source, params = self._message_filters(campaign_id, status, category, not_sent_reason, error_code, after)
        rows = self.db.query(_MESSAGE_SELECT + source + _MESSAGE_ORDER + " LIMIT ?", params + [limit + 1])
        items = [_message(r) for r in rows[:limit]]
        nxt = encode_cursor("m", [items[-1]["message_id"]]) if len(rows) > limit else None
        return Page(items, nxt)

    def count_messages(self, campaign_id: str, **filters: str | None) -> int:
        source, params = self._message_filters(
            campaign_id,
            filters.get("status"),
            filters.get("category"),
            filters.get("not_sent_reason"),
            filters.get("error_code"),
        )
        return self.db.query("SELECT COUNT(*) FROM " + source, params)[0][0]

    def iter_messages(
        self,
        campaign_id: str,
        status: str | None = None,
        category: str | None = None,
        not_sent_reason: str | None = None,
        error_code: str | None = None,
        chunk: int = 2000,
    ) -> MessageRows:
        """Every matching row as tuples in ``MESSAGE_FIELDS`` order, in chunks (the CSV export)."""
        source, params = self._message_filters(campaign_id, status, category, not_sent_reason, error_code)
        return MessageRows(self.db, source + _MESSAGE_ORDER, params, chunk)

    def message(self, message_id: str) -> dict | None:
        rows = self.db.query(_MESSAGE_SELECT + "messages WHERE message_id = ?", (message_id,))
        if not rows:
            return None
        m = _message(rows[0])
        hist = self.db.query(_MESSAGE_SELECT + "message_history WHERE message_id = ? ORDER BY version", (message_id,))
        m["history"] = [_message(r) for r in hist]
        return m

    # -- removals -------------------------------------------------------------------------
    def removals(
        self, reason: str | None = None, phone: str | None = None, limit: int = DEFAULT_LIMIT, cursor: str | None = None
    ) -> Page:
        where, params = [], []
        if reason:
            where.append("reason = ?")
            params.append(reason)
        if phone:
            where.append("phone = ?")
            params.append(phone)
        if cursor:
            at, eid = decode_cursor("r", cursor, (int, str))
            where.append("(at < ? OR (at = ? AND event_id < ?))")
            params += [at, at, eid]
        rows = self.db.query(
            f"SELECT {', '.join(REMOVAL_COLUMNS)} FROM removals"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY at DESC, event_id DESC LIMIT ?",
            params + [limit + 1],
        )
        items = [dict(zip(REMOVAL_COLUMNS, r, strict=True)) for r in rows[:limit]]
        nxt = encode_cursor("r", [items[-1]["at"], items[-1]["event_id"]]) if len(rows) > limit else None
        return Page(items, nxt)

    # -- suppressions (contract §11) --------------------------------------------------------
    def suppression(self, phone: str) -> dict | None:
        rows = self.db.query(f"SELECT {', '.join(SUPPRESSION_COLUMNS)} FROM suppressions WHERE phone = ?", (phone,))
        return _suppression(rows[0]) if rows else None

    def suppressed_among(self, phones: list[str]) -> dict[str, list[str]]:
        """phone -> reasons, for the given phones that are suppressed now.

        PostgreSQL takes the whole list as one array parameter (``= ANY``); SQLite has no
        arrays, so it gets ``IN (...)`` lists of ``CHECK_CHUNK`` phones, each a few primary
        key lookups in one statement."""
        wanted = list(dict.fromkeys(phones))
        if not wanted:
            return {}
        if self.db.pg:
            sql = "SELECT phone, reasons FROM suppressions WHERE suppressed = 1 AND phone = ANY(?)"
            return {p: _reasons(r) for p, r in self.db.query(sql, (wanted,))}
        out: dict[str, list[str]] = {}
        for i in range(0, len(wanted), CHECK_CHUNK):
            chunk = wanted[i : i + CHECK_CHUNK]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT phone, reasons FROM suppressions WHERE suppressed = 1 AND phone IN ({marks})"
            out.update((p, _reasons(r)) for p, r in self.db.query(sql, chunk))
        return out

    # -- totals, for readiness and the benchmark --------------------------------------------
    def counts(self) -> dict[str, int]:
        return {
            t: self.db.query(f"SELECT COUNT(*) FROM {t}")[0][0]
            for t in ("campaigns", "campaign_history", "messages", "message_history", "removals", "suppressions")
        }


class MessageRows:
    """The rows of one export, read lazily, like ``Database.stream``: iterated, chunks of
    ``MESSAGE_FIELDS`` tuples. The CSV reads the same rows, same filter and order (``source``,
    from ``ReadModel._message_filters``), through a SELECT list of its own (``select``,
    ``copy_csv``): a row formatted by the database costs a fraction of one formatted in Python."""

    def __init__(self, db: Database, source: str, params: list, chunk: int):
        self.db, self.source, self.params, self.chunk = db, source, params, chunk

    @property
    def pg(self) -> bool:
        return self.db.pg

    def _sql(self, columns: str) -> str:
        # only our own SQL gets "?" -> "%s": a "?" in the SELECT list is the caller's text
        return f"SELECT {columns} FROM {self.db.sql(self.source)}"

    def __iter__(self) -> Iterator[list[tuple]]:
        return self.db.stream(_MESSAGE_SELECT + self.source, self.params, size=self.chunk)

    def select(
        self, columns: str, functions: dict[str, Callable] | None = None, size: int = 5000
    ) -> Iterator[list[tuple]]:
        """SQLite: the rows through ``columns``, which may call ``functions`` (one argument each)."""
        c = self.db.connect(shared=True)
        try:
            for name, fn in (functions or {}).items():
                c.create_function(name, 1, fn, deterministic=True)
            cur = c.execute(self._sql(columns), self.params)
            while rows := cur.fetchmany(size):
                yield rows
        finally:
            c.close()

    def server_encoding(self) -> str:
        return self.db.query("SHOW server_encoding")[0][0]

    def copy_csv(self, columns: str, size: int = 5000) -> Iterator[list]:
        """PostgreSQL: the rows through ``columns`` as ``COPY ... (FORMAT csv)`` lines (UTF-8,
        each ending with LF), ``size`` a chunk. COPY streams from one snapshot, like a
        server-side cursor, without a Python tuple per row."""
        c = self.db.connect(shared=True)
        try:
            c.execute("SET client_encoding TO 'UTF8'")
            with c.cursor() as cur:
                sql = self._sql(columns.replace("%", "%%"))  # psycopg merges the parameters here
                with cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)", self.params) as cp:
                    read, lines = cp.read, []
                    while line := read():
                        lines.append(line)
                        if len(lines) >= size:
                            yield lines
                            lines = []
                    if lines:
                        yield lines
        finally:
            c.close()
