"""Writing the read model: one batch of output records, one transaction, offsets included.

This is the transactional-consumer pattern: the rows a batch changes and the next offset
of every partition it read are committed together, so a process killed at any moment
resumes from exactly the records whose effects are not in the database. Every write is
also idempotent on its own (latest rows and suppressions replaced only by a higher
version, history rows keyed by version, removals by event_id), so a batch applied twice changes nothing: the
pattern's exactness does not depend on that, but two API processes sharing one
PostgreSQL database do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import orjson

from processors import catalog

from .db import Database
from .schema import HISTORY_COLUMNS, MESSAGE_COLUMNS, REMOVAL_COLUMNS, SUPPRESSION_COLUMNS, column_types


def _text(v):
    """PostgreSQL refuses NUL in text; one such value would stop the projector for good."""
    return v.replace("\x00", "\ufffd") if v.__class__ is str and "\x00" in v else v


def _clean(row: tuple) -> tuple:
    return tuple(_text(v) for v in row) if any(v.__class__ is str and "\x00" in v for v in row) else row


def reason_key(rec: dict) -> str | None:
    """The not-sent reason as the statistics count it: a not-sent message without one is OTHER."""
    if rec.get("not_sent_reason"):
        return rec["not_sent_reason"]
    return "OTHER" if rec.get("status") == catalog.NOT_SENT else None


@dataclass
class Batch:
    """The effect of consecutive records of the output topics, deduplicated in memory."""

    campaigns: dict[str, dict] = field(default_factory=dict)  # campaign_id -> highest version
    campaign_history: dict[tuple[str, int], dict] = field(default_factory=dict)
    messages: dict[str, dict] = field(default_factory=dict)
    message_history: dict[tuple[str, int], dict] = field(default_factory=dict)
    removals: dict[str, dict] = field(default_factory=dict)
    suppressions: dict[str, dict] = field(default_factory=dict)  # phone -> highest version
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)  # next offset to read
    records: int = 0

    def add_stats(self, rec: dict) -> None:
        cid = rec["campaign_id"]
        cur = self.campaigns.get(cid)
        if cur is None or rec["version"] > cur["version"]:
            self.campaigns[cid] = rec
        self.campaign_history.setdefault((cid, rec["version"]), rec)

    def add_status(self, rec: dict) -> None:
        mid = rec["message_id"]
        cur = self.messages.get(mid)
        if cur is None or rec["version"] > cur["version"]:
            self.messages[mid] = rec
        self.message_history.setdefault((mid, rec["version"]), rec)

    def add_removal(self, rec: dict) -> None:
        self.removals.setdefault(rec["event_id"], rec)

    def add_suppression(self, rec: dict) -> None:
        phone = rec["phone"]
        cur = self.suppressions.get(phone)
        if cur is None or rec["version"] > cur["version"]:
            self.suppressions[phone] = rec

    def advance(self, topic: str, partition: int, offset: int) -> None:
        key = (topic, partition)
        if offset + 1 > self.offsets.get(key, -1):
            self.offsets[key] = offset + 1
        self.records += 1

    def __bool__(self) -> bool:
        return bool(self.offsets)


@dataclass(frozen=True)
class _Table:
    """One table the writer fills, and how a row already there is treated: replaced by a
    higher ``guard`` (a version, an offset), or, without a guard, kept as it is."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    guard: str | None = None

    def _conflict(self) -> str:
        key = ", ".join(self.key)
        if self.guard is None:
            return f"ON CONFLICT ({key}) DO NOTHING"
        sets = ", ".join(f"{c} = excluded.{c}" for c in self.columns if c not in self.key)
        return f"ON CONFLICT ({key}) DO UPDATE SET {sets} WHERE excluded.{self.guard} > {self.name}.{self.guard}"

    @cached_property
    def row_sql(self) -> str:
        """One row per execution (SQLite: ``executemany`` steps it in C, with no round trips)."""
        return (
            f"INSERT INTO {self.name} ({', '.join(self.columns)}) "
            f"VALUES ({', '.join('?' * len(self.columns))}) {self._conflict()}"
        )

    @cached_property
    def unnest_sql(self) -> str:
        """Every row in one statement, one array per column (PostgreSQL): the server plans and
        runs one statement per table and batch instead of one per row, which was most of its
        CPU. A key may occur once per statement: ``Batch`` deduplicates, and so does
        ``_dedupe`` after NUL replacement."""
        types = column_types(self.name)
        arrays = ", ".join(f"%b::{types[c].lower()}[]" for c in self.columns)
        return f"INSERT INTO {self.name} ({', '.join(self.columns)}) SELECT * FROM unnest({arrays}) {self._conflict()}"


CAMPAIGNS = _Table(
    "campaigns",
    ("campaign_id", "version", "id_lc", "name_lc", "kind", "launched_at", "sent", "doc"),
    ("campaign_id",),
    "version",
)
CAMPAIGN_HISTORY = _Table(
    "campaign_history", ("campaign_id", "version", "updated_at", "doc"), ("campaign_id", "version")
)
MESSAGES = _Table("messages", MESSAGE_COLUMNS, ("message_id",), "version")
MESSAGE_HISTORY = _Table("message_history", HISTORY_COLUMNS, ("message_id", "version"))
REMOVALS = _Table("removals", REMOVAL_COLUMNS, ("event_id",))
SUPPRESSIONS = _Table("suppressions", SUPPRESSION_COLUMNS, ("phone",), "version")
OFFSETS = _Table("offsets", ("topic", "part", "next_offset"), ("topic", "part"), "next_offset")


def _campaign_row(rec: dict) -> tuple:
    return (
        rec["campaign_id"],
        rec["version"],
        rec["campaign_id"].lower(),
        (rec.get("name") or "").lower(),
        rec.get("kind"),
        rec.get("launched_at"),
        rec["sent"],
        orjson.dumps(rec).decode(),
    )


def _message_row(rec: dict) -> tuple:
    return (
        rec["message_id"],
        rec["campaign_id"],
        rec["version"],
        rec.get("contact_id"),
        rec["phone"],
        rec["status"],
        rec["category"],
        rec.get("error_code"),
        rec.get("provider"),
        rec.get("not_sent_reason"),
        reason_key(rec),
        rec["sent_at"],
        rec["status_at"],
        1 if rec.get("phone_valid", True) else 0,
    )


def _history_row(rec: dict) -> tuple:
    return (
        rec["message_id"],
        rec["campaign_id"],
        rec["version"],
        rec.get("contact_id"),
        rec["phone"],
        rec["status"],
        rec["category"],
        rec.get("error_code"),
        rec.get("provider"),
        rec.get("not_sent_reason"),
        rec["sent_at"],
        rec["status_at"],
        1 if rec.get("phone_valid", True) else 0,
    )


def _removal_row(rec: dict) -> tuple:
    return tuple(rec.get(c) for c in REMOVAL_COLUMNS)


def _suppression_row(rec: dict) -> tuple:
    return (
        rec["phone"],
        rec["version"],
        1 if rec["suppressed"] else 0,
        ",".join(rec.get("reasons") or ()),
        rec.get("blacklisted_at"),
        rec.get("permanent_error_at"),
        rec.get("contact_id"),
        rec.get("campaign_id"),
        rec.get("message_id"),
        rec["updated_at"],
    )


def _table_rows(batch: Batch) -> list[tuple[_Table, list[tuple]]]:
    return [
        (CAMPAIGNS, [_campaign_row(r) for r in batch.campaigns.values()]),
        (
            CAMPAIGN_HISTORY,
            [(cid, v, r["updated_at"], orjson.dumps(r).decode()) for (cid, v), r in batch.campaign_history.items()],
        ),
        (MESSAGES, [_message_row(r) for r in batch.messages.values()]),
        (MESSAGE_HISTORY, [_history_row(r) for r in batch.message_history.values()]),
        (REMOVALS, [_removal_row(r) for r in batch.removals.values()]),
        (SUPPRESSIONS, [_suppression_row(r) for r in batch.suppressions.values()]),
        (OFFSETS, [(t, p, o) for (t, p), o in batch.offsets.items()]),
    ]


def _dedupe(table: _Table, rows: list[tuple]) -> list[tuple]:
    """One row per key, the one a row-by-row write would leave (the highest guard, else the
    first): replacing NUL can make two keys one, and PostgreSQL refuses a key twice in one
    ``INSERT ... ON CONFLICT DO UPDATE``."""
    key = [table.columns.index(c) for c in table.key]
    guard = table.columns.index(table.guard) if table.guard else None
    out: dict[tuple, tuple] = {}
    for row in rows:
        k = tuple(row[i] for i in key)
        cur = out.get(k)
        if cur is None or (guard is not None and row[guard] > cur[guard]):
            out[k] = row
    return list(out.values())


def _refused_nul(exc: Exception) -> bool:
    """Text parameters: psycopg refuses NUL itself; binary arrays: the server does (22021)."""
    return getattr(exc, "sqlstate", None) == "22021" or "NUL" in str(exc)


def _cleaned(table: _Table, rows: list[tuple]) -> list[tuple]:
    return _dedupe(table, [_clean(r) for r in rows])


def _columns(rows: list[tuple]) -> list[list]:
    return [list(col) for col in zip(*rows, strict=True)]


class ReadModelWriter:
    def __init__(self, db: Database):
        self.db = db

    def apply(self, batch: Batch) -> None:
        """All of the batch and its offsets, or nothing."""
        if not batch:
            return
        tables = _table_rows(batch)
        try:
            self._write(tables)
        except Exception as exc:  # psycopg's DataError; SQLite stores NUL as it is
            if not self.db.pg or not _refused_nul(exc):
                raise
            # PostgreSQL refuses NUL in text, and a batch it refuses would be retried forever:
            # written again with U+FFFD instead (checked only then: it costs a third of a write).
            self._write([(t, _cleaned(t, rows)) for t, rows in tables])

    def _write(self, tables: list[tuple[_Table, list[tuple]]]) -> None:
        with self.db.transaction() as c:
            self.db.tune_for_writing(c)  # each time: a reconnect gets it too, and it costs microseconds
            cur = c.cursor()
            for table, rows in tables:
                if not rows:
                    continue
                if self.db.pg:
                    cur.execute(table.unnest_sql, _columns(rows))
                else:
                    cur.executemany(table.row_sql, rows)

    def offsets(self) -> dict[tuple[str, int], int]:
        return {(t, p): o for t, p, o in self.db.query("SELECT topic, part, next_offset FROM offsets")}
