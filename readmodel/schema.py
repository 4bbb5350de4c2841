"""The read model's tables: one DDL for SQLite and PostgreSQL.

Each output topic becomes a *latest* table (one row per key, replaced only by a higher
version) and, where the dashboard needs the past, a *history* table keyed by
(key, version), so a redelivered record lands on the row it already wrote. ``offsets``
holds, per topic partition, the next offset to read: it is written in the same
transaction as the rows, which is what makes a killed API process resume exactly.

Indexes are few on purpose: the projector must ingest several times the rate a worker
publishes, and on ``messages`` index upkeep was most of a write (78 us per record with one
index per filter, 23.5 us with none). ``INDEXES`` says why each one exists;
``tests/test_projector_indexes.py`` checks with the query planners that every query of
``readmodel/queries.py`` still goes through one.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

TABLES = (
    """CREATE TABLE IF NOT EXISTS offsets (
        topic TEXT NOT NULL,
        part INTEGER NOT NULL,
        next_offset BIGINT NOT NULL,
        PRIMARY KEY (topic, part))""",
    """CREATE TABLE IF NOT EXISTS meta (
        k TEXT PRIMARY KEY,
        v TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS campaigns (
        campaign_id TEXT PRIMARY KEY,
        version BIGINT NOT NULL,
        id_lc TEXT NOT NULL,
        name_lc TEXT NOT NULL,
        kind TEXT,
        launched_at BIGINT,
        sent BIGINT NOT NULL,
        doc TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS campaign_history (
        campaign_id TEXT NOT NULL,
        version BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY (campaign_id, version))""",
    """CREATE TABLE IF NOT EXISTS messages (
        message_id TEXT PRIMARY KEY,
        campaign_id TEXT NOT NULL,
        version BIGINT NOT NULL,
        contact_id TEXT,
        phone TEXT NOT NULL,
        status TEXT NOT NULL,
        category TEXT NOT NULL,
        error_code TEXT,
        provider TEXT,
        not_sent_reason TEXT,
        reason_key TEXT,
        sent_at BIGINT NOT NULL,
        status_at BIGINT NOT NULL,
        phone_valid SMALLINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS message_history (
        message_id TEXT NOT NULL,
        version BIGINT NOT NULL,
        campaign_id TEXT NOT NULL,
        contact_id TEXT,
        phone TEXT NOT NULL,
        status TEXT NOT NULL,
        category TEXT NOT NULL,
        error_code TEXT,
        provider TEXT,
        not_sent_reason TEXT,
        sent_at BIGINT NOT NULL,
        status_at BIGINT NOT NULL,
        phone_valid SMALLINT NOT NULL,
        PRIMARY KEY (message_id, version))""",
    """CREATE TABLE IF NOT EXISTS removals (
        event_id TEXT PRIMARY KEY,
        phone TEXT NOT NULL,
        reason TEXT NOT NULL,
        contact_id TEXT,
        campaign_id TEXT,
        message_id TEXT,
        status TEXT,
        error_code TEXT,
        provider TEXT,
        channel TEXT,
        at BIGINT NOT NULL)""",
    # Contract §11: one row per phone, its latest Suppression. ``reasons`` is the record's
    # array joined with commas ("" for none): the symbols are identifiers, and a column of
    # its own per reason would need a schema change for every symbol the enum gains.
    """CREATE TABLE IF NOT EXISTS suppressions (
        phone TEXT PRIMARY KEY,
        version BIGINT NOT NULL,
        suppressed SMALLINT NOT NULL,
        reasons TEXT NOT NULL,
        blacklisted_at BIGINT,
        permanent_error_at BIGINT,
        contact_id TEXT,
        campaign_id TEXT,
        message_id TEXT,
        updated_at BIGINT NOT NULL)""",
)

INDEXES = (
    # Every message listing, count and CSV export: equality on campaign_id, any of the four
    # filters, keyset order on message_id. The filters are key columns, so both planners test
    # them inside the index (a row is read only if it matches) instead of one index per
    # filter: on a status change (most updates) one index entry moves, not four.
    "CREATE INDEX IF NOT EXISTS messages_listing ON messages "
    "(campaign_id, message_id, status, category, reason_key, error_code)",
    # /api/removals newest first, and by phone.
    "CREATE INDEX IF NOT EXISTS removals_by_time ON removals (at, event_id)",
    "CREATE INDEX IF NOT EXISTS removals_by_phone ON removals (phone, at, event_id)",
    # suppressions: none; both routes look phones up by the primary key.
)


def column_types(table: str) -> dict[str, str]:
    """Column -> SQL type, read from the DDL above, so PostgreSQL's array casts (one array
    per column, see ``readmodel/store.py``) cannot drift from the tables."""
    ddl = next(t for t in TABLES if t.startswith(f"CREATE TABLE IF NOT EXISTS {table} ("))
    body = ddl[ddl.index("(") + 1 :]
    out = {}
    for line in body.splitlines():
        words = line.strip().split()
        if len(words) >= 2 and words[0].isidentifier() and words[0].upper() != "PRIMARY":
            out[words[0]] = words[1].rstrip(",)")
    return out


#: Message columns in table order (the history table has the same minus reason_key).
MESSAGE_COLUMNS = (
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
    "reason_key",
    "sent_at",
    "status_at",
    "phone_valid",
)
HISTORY_COLUMNS = tuple(c for c in MESSAGE_COLUMNS if c != "reason_key")
REMOVAL_COLUMNS = (
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
#: Suppression columns in table order; also the record's fields (contract §11).
SUPPRESSION_COLUMNS = (
    "phone",
    "version",
    "suppressed",
    "reasons",
    "blacklisted_at",
    "permanent_error_at",
    "contact_id",
    "campaign_id",
    "message_id",
    "updated_at",
)
#: What a MessageStatus record carries, in JSON order (contract §6 plus the schema's extras).
MESSAGE_FIELDS = (
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
)
