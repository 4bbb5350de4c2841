"""Connections to the read model's database: SQLite (embedded default) or PostgreSQL.

The SQL elsewhere is written once, with ``?`` placeholders and the ``INSERT ... ON CONFLICT
... DO UPDATE ... WHERE`` upsert both databases understand; this module is the only place
that knows which one is behind a URL (except the writer's PostgreSQL statements, one array
per column: ``readmodel/store.py``). Every thread gets its own connection (SQLite
connections and psycopg connections are not for sharing between threads).

SQLite runs in WAL mode with ``synchronous=NORMAL``: a commit is not fsynced, so a power
loss (not a killed process: the WAL is in the OS's page cache then) may take the last
transactions away, never half of one. That is safe here because the consumed offsets
commit in the rows' transaction: a lost transaction loses its offsets too, and the
projector reads those records again. Exactness needs atomicity, not durability.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .schema import INDEXES, SCHEMA_VERSION, TABLES

WRITER_CACHE_KIB = 64 * 1024


class DatabaseError(RuntimeError):
    """The read model's database cannot be used (bad URL, unreachable, newer schema)."""


@dataclass(frozen=True)
class Target:
    kind: str  # "sqlite" or "postgresql"
    location: str  # a file path, or a libpq URL

    @property
    def display(self) -> str:
        """The URL without its password, for logs."""
        if self.kind == "sqlite":
            return f"sqlite:///{self.location}"
        from urllib.parse import urlsplit, urlunsplit

        u = urlsplit(self.location)
        if u.password:
            netloc = f"{u.username}:***@{u.hostname}" + (f":{u.port}" if u.port else "")
            u = u._replace(netloc=netloc)
        return urlunsplit(u)


def parse_url(url: str) -> Target:
    if url.startswith("sqlite:///"):
        return Target("sqlite", url[len("sqlite:///") :] or ":memory:")
    if url.startswith(("postgresql://", "postgres://")):
        return Target("postgresql", url)
    raise DatabaseError(f"SMSTALLY_READ_DB must be sqlite:///PATH or postgresql://...; got {url.split('://')[0]}://...")


class Database:
    """One read-model database; ``conn()`` is this thread's connection."""

    def __init__(self, url: str):
        self.target = parse_url(url)
        self.pg = self.target.kind == "postgresql"
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        if not self.pg:
            Path(self.target.location).parent.mkdir(parents=True, exist_ok=True)

    # -- connections ------------------------------------------------------------------
    def connect(self, *, shared: bool = False) -> Any:
        """A new connection; ``shared``: usable from several threads in turn (a stream)."""
        if self.pg:
            import psycopg

            try:
                return psycopg.connect(self.target.location, autocommit=True)
            except psycopg.OperationalError as exc:
                raise DatabaseError(f"cannot connect to {self.target.display}: {exc}") from exc
        c = sqlite3.connect(self.target.location, timeout=30.0, isolation_level=None, check_same_thread=not shared)
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")
        c.execute("PRAGMA busy_timeout=30000")
        return c

    def tune_for_writing(self, c: Any) -> None:
        """SQLite: a page cache that holds the hot part of the tables and indexes. With the
        default 2 MB, a batch of upserts at random keys rereads most of its pages from the
        OS; only the one writer connection gets it (every reader thread has a connection)."""
        if not self.pg:
            c.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")

    def conn(self) -> Any:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = self._local.conn = self.connect()
            with self._lock:
                self._all.append(c)
        return c

    def reset_thread(self) -> None:
        """Drop this thread's connection (after an error: the next use reconnects)."""
        c = getattr(self._local, "conn", None)
        self._local.conn = None
        if c is not None:
            with self._lock:
                if c in self._all:
                    self._all.remove(c)
            try:
                c.close()
            except Exception:  # noqa: BLE001 - it is broken already
                pass

    def close(self) -> None:
        with self._lock:
            for c in self._all:
                try:
                    c.close()
                except Exception:  # noqa: BLE001 - closing what may already be broken
                    pass
            self._all.clear()
        self._local = threading.local()

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """This thread's connection inside one transaction: all of it, or none of it."""
        c = self.conn()
        if self.pg:
            with c.transaction():
                yield c
            return
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")

    # -- SQL ----------------------------------------------------------------------------
    def sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.pg else text

    def query(self, text: str, params: tuple | list = ()) -> list[tuple]:
        cur = self.conn().execute(self.sql(text), params)
        return cur.fetchall()

    def stream(self, text: str, params: tuple | list = (), size: int = 2000) -> Iterator[list[tuple]]:
        """Rows in chunks, from a connection of their own, in constant memory.

        PostgreSQL: a server-side cursor inside a read-only transaction (a plain cursor
        would fetch the whole result first). SQLite: its cursor steps the statement lazily.
        """
        c = self.connect(shared=True)
        try:
            if self.pg:
                with c.transaction():
                    with c.cursor(name="smstally_stream") as cur:
                        cur.itersize = size
                        cur.execute(self.sql(text), params)
                        while rows := cur.fetchmany(size):
                            yield rows
            else:
                cur = c.execute(text, params)
                while rows := cur.fetchmany(size):
                    yield rows
        finally:
            c.close()

    # -- schema -------------------------------------------------------------------------
    def create_schema(self) -> None:
        c = self.conn()
        for stmt in TABLES + INDEXES:
            c.execute(stmt)
        rows = c.execute(self.sql("SELECT v FROM meta WHERE k = ?"), ("schema_version",)).fetchall()
        if not rows:
            c.execute(
                self.sql("INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO NOTHING"),
                ("schema_version", str(SCHEMA_VERSION)),
            )
        elif int(rows[0][0]) > SCHEMA_VERSION:
            raise DatabaseError(
                f"{self.target.display} holds read-model schema {rows[0][0]}, newer than "
                f"this smstally's {SCHEMA_VERSION}"
            )

    def ping(self) -> bool:
        try:
            self.query("SELECT 1")
            return True
        except Exception:  # noqa: BLE001 - any failure: not usable now
            self.reset_thread()  # a broken connection is not reused
            return False
