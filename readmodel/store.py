"""Writing the read model: one batch of output records, one transaction, offsets included.

This is the transactional-consumer pattern: the rows a batch changes and the next offset
of every partition it read are committed together, so a process killed at any moment
resumes from exactly the records whose effects are not in the database. Every write is
also idempotent on its own (latest rows replaced only by a higher version, history rows
keyed by version, removals by event_id), so a batch applied twice changes nothing: the
pattern's exactness does not depend on that, but two API processes sharing one
PostgreSQL database do.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from processors import catalog

from .db import Database
from .schema import HISTORY_COLUMNS, MESSAGE_COLUMNS, REMOVAL_COLUMNS


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

    def advance(self, topic: str, partition: int, offset: int) -> None:
        key = (topic, partition)
        if offset + 1 > self.offsets.get(key, -1):
            self.offsets[key] = offset + 1
        self.records += 1

    def __bool__(self) -> bool:
        return bool(self.offsets)


def _placeholders(n: int) -> str:
    return ", ".join("?" * n)


def _update_set(columns: tuple[str, ...], key: str) -> str:
    return ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)


_CAMPAIGN_COLS = ("campaign_id", "version", "id_lc", "name_lc", "kind", "launched_at", "sent", "doc")
UPSERT_CAMPAIGN = (
    f"INSERT INTO campaigns ({', '.join(_CAMPAIGN_COLS)}) VALUES ({_placeholders(len(_CAMPAIGN_COLS))}) "
    f"ON CONFLICT (campaign_id) DO UPDATE SET {_update_set(_CAMPAIGN_COLS, 'campaign_id')} "
    "WHERE excluded.version > campaigns.version")
INSERT_CAMPAIGN_HISTORY = (
    "INSERT INTO campaign_history (campaign_id, version, updated_at, doc) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (campaign_id, version) DO NOTHING")
UPSERT_MESSAGE = (
    f"INSERT INTO messages ({', '.join(MESSAGE_COLUMNS)}) VALUES ({_placeholders(len(MESSAGE_COLUMNS))}) "
    f"ON CONFLICT (message_id) DO UPDATE SET {_update_set(MESSAGE_COLUMNS, 'message_id')} "
    "WHERE excluded.version > messages.version")
INSERT_MESSAGE_HISTORY = (
    f"INSERT INTO message_history ({', '.join(HISTORY_COLUMNS)}) VALUES ({_placeholders(len(HISTORY_COLUMNS))}) "
    "ON CONFLICT (message_id, version) DO NOTHING")
INSERT_REMOVAL = (
    f"INSERT INTO removals ({', '.join(REMOVAL_COLUMNS)}) VALUES ({_placeholders(len(REMOVAL_COLUMNS))}) "
    "ON CONFLICT (event_id) DO NOTHING")
UPSERT_OFFSET = (
    "INSERT INTO offsets (topic, part, next_offset) VALUES (?, ?, ?) "
    "ON CONFLICT (topic, part) DO UPDATE SET next_offset = excluded.next_offset "
    "WHERE excluded.next_offset > offsets.next_offset")


def _campaign_row(rec: dict) -> tuple:
    return (rec["campaign_id"], rec["version"], rec["campaign_id"].lower(), (rec.get("name") or "").lower(),
            rec.get("kind"), rec.get("launched_at"), rec["sent"], orjson.dumps(rec).decode())


def _message_row(rec: dict) -> tuple:
    return (rec["message_id"], rec["campaign_id"], rec["version"], rec.get("contact_id"), rec["phone"],
            rec["status"], rec["category"], rec.get("error_code"), rec.get("provider"),
            rec.get("not_sent_reason"), reason_key(rec), rec["sent_at"], rec["status_at"],
            1 if rec.get("phone_valid", True) else 0)


def _history_row(rec: dict) -> tuple:
    return (rec["message_id"], rec["campaign_id"], rec["version"], rec.get("contact_id"), rec["phone"],
            rec["status"], rec["category"], rec.get("error_code"), rec.get("provider"),
            rec.get("not_sent_reason"), rec["sent_at"], rec["status_at"], 1 if rec.get("phone_valid", True) else 0)


def _removal_row(rec: dict) -> tuple:
    return tuple(rec.get(c) for c in REMOVAL_COLUMNS)


class ReadModelWriter:
    def __init__(self, db: Database):
        self.db = db

    def apply(self, batch: Batch) -> None:
        """All of the batch and its offsets, or nothing."""
        if not batch:
            return
        try:
            self._write(batch, lambda row: row)
        except Exception as exc:  # psycopg's DataError; SQLite stores NUL as it is
            if not self.db.pg or "NUL" not in str(exc):
                raise
            # PostgreSQL refuses NUL in text, and a batch it refuses would be retried forever:
            # written again with U+FFFD instead (checked only then: it costs a third of a write).
            self._write(batch, _clean)

    def _write(self, batch: Batch, clean) -> None:
        with self.db.transaction() as c:
            cur = c.cursor()
            sql = self.db.sql

            def many(stmt: str, rows: list[tuple]) -> None:
                if rows:
                    cur.executemany(sql(stmt), rows)

            many(UPSERT_CAMPAIGN, [clean(_campaign_row(r)) for r in batch.campaigns.values()])
            many(INSERT_CAMPAIGN_HISTORY, [clean((cid, v, r["updated_at"], orjson.dumps(r).decode()))
                                           for (cid, v), r in batch.campaign_history.items()])
            many(UPSERT_MESSAGE, [clean(_message_row(r)) for r in batch.messages.values()])
            many(INSERT_MESSAGE_HISTORY, [clean(_history_row(r)) for r in batch.message_history.values()])
            many(INSERT_REMOVAL, [clean(_removal_row(r)) for r in batch.removals.values()])
            many(UPSERT_OFFSET, [(t, p, o) for (t, p), o in batch.offsets.items()])

    def offsets(self) -> dict[tuple[str, int], int]:
        return {(t, p): o for t, p, o in self.db.query("SELECT topic, part, next_offset FROM offsets")}
