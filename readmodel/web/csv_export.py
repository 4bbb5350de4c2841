"""The contact list of a campaign as CSV (contract §10), streamed in constant memory.

Rows come from the database in chunks and leave as chunks of bytes, so a million-row
export holds one chunk at a time; every cell a spreadsheet would evaluate is neutralized.

A row formatted in Python costs more than the database takes to read it, so the database
computes the cells: ``_columns`` is ``reference_cells`` in SQL, once for both databases
(a ``_Dialect`` each), and ``reference_cells`` stays the definition (``tests/test_csv_fast_path.py`` holds the
SQL to it byte for byte). SQL takes the common shapes only (an ASCII E.164 phone, a time
between 1970 and 9999) and hands the rest back to Python: through SQLite functions, or on
PostgreSQL, which cannot call Python, through a last column carrying the row's raw values.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from functools import lru_cache, partial

import orjson

from ..queries import MessageRows
from ..schema import MESSAGE_FIELDS
from .privacy import _COUNTRY_CODES, mask_phone, neutralize_cell

HEADER = (
    "message_id",
    "contact_id",
    "phone",
    "status",
    "category",
    "error_code",
    "provider",
    "not_sent_reason",
    "sent_at",
    "status_at",
)
_IDX = {f: i for i, f in enumerate(MESSAGE_FIELDS)}
_MID, _CONTACT, _PHONE, _STATUS, _CATEGORY, _CODE, _PROVIDER, _REASON, _SENT, _AT = (_IDX[f] for f in HEADER)
_RISKY_START = "=+-@\t\r"  # a first character that makes a spreadsheet evaluate the cell
_RISKY = frozenset(_RISKY_START)
_HEADER_LINE = (",".join(HEADER) + "\r\n").encode()
CHUNK_ROWS = 5000  # ~600 kB of CSV: few enough thread hops and sends, small against the RSS budget


def iso_utc(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


class _IsoClock:
    """``iso_utc`` with the seconds' text cached: a campaign's rows share their seconds, and
    formatting a datetime is the largest cost of a CSV row."""

    def __init__(self, size: int = 65536):
        self.size, self.seconds = size, {}

    def __call__(self, ms: int | None) -> str:
        if ms is None:
            return ""
        sec, frac = divmod(ms, 1000)
        head = self.seconds.get(sec)
        if head is None:
            if len(self.seconds) >= self.size:
                self.seconds.clear()
            head = self.seconds[sec] = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        return f"{head}{frac:03d}Z"


# -- the definition: one row in Python -----------------------------------------------------
def _cell(value: str | None) -> str:
    if value is None:
        return ""
    return value if value[:1] not in _RISKY else neutralize_cell(value)


def phone_cell(phone: str, masked: bool) -> str:
    return _cell(mask_phone(phone) if masked else phone)


def reference_cells(r: tuple, masked: bool, iso: Callable[[int | None], str] = iso_utc) -> tuple:
    """The CSV cells of one row in ``MESSAGE_FIELDS`` order. status and category are enum
    symbols and not_sent_reason an enum key, so they are never neutralized."""
    reason = r[_REASON]
    return (
        _cell(r[_MID]),
        _cell(r[_CONTACT]),
        phone_cell(r[_PHONE], masked),
        r[_STATUS],
        r[_CATEGORY],
        _cell(r[_CODE]),
        _cell(r[_PROVIDER]),
        "" if reason is None else reason,
        iso(r[_SENT]),
        iso(r[_AT]),
    )


def reference_chunks(chunks: Iterable[list[tuple]], masked: bool) -> Iterator[bytes]:
    """Rows in ``MESSAGE_FIELDS`` order formatted in Python: where the SQL forms cannot run."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    iso = _IsoClock()
    yield _HEADER_LINE
    for rows in chunks:
        w.writerows([reference_cells(r, masked, iso) for r in rows])
        yield buf.getvalue().encode("utf-8")
        buf.seek(0)
        buf.truncate()


def csv_chunks(chunks: Iterable[list[tuple]], masked: bool) -> Iterator[bytes]:
    """The export of ``ReadModel.iter_messages``'s rows: in SQL when they can take another
    SELECT list (``MessageRows``), else in Python."""
    if not isinstance(chunks, MessageRows):
        return reference_chunks(chunks, masked)
    if chunks.pg:
        if chunks.server_encoding() != "UTF8":  # the E.164 test's character class is in UTF-8
            return reference_chunks(chunks, masked)
        return _pg_chunks(chunks, masked)
    return _sqlite_chunks(chunks, masked)


# -- the cells in SQL, once for both databases -----------------------------------------------
_MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z; below 0 and above, Python formats the time


def _codes(n: int) -> str:
    return ",".join(f"'{c}'" for c in sorted(_COUNTRY_CODES) if len(c) == n)


class _Dialect:
    """What SQLite and PostgreSQL spell differently, so that each cell rule is written once:
    each subclass spells ``risky``, ``e164``, ``neutralized`` and ``text`` (of a column),
    ``maskable`` and ``stars`` (for ``_masked_e164``) and ``iso`` (a time).

    ``e164`` may match fewer values than ``privacy._E164`` (never more): a number it misses
    goes through ``neutralized``, which must then know the rest of ``neutralize_cell``. A
    cell SQL does not take gets ``otherwise`` (a function of ``_sqlite_functions``) or, where
    the database cannot call Python, stays NULL for ``leftover`` to hand the row back."""

    def otherwise(self, function: str, col: str) -> str:
        return ""

    def leftover(self, fast: list[str]) -> tuple[str, ...]:
        return ()


class _Sqlite(_Dialect):
    """Python functions are registered on the connection, so SQL only does the cheap cases."""

    RISKY = "(" + ", ".join(str(ord(c)) for c in _RISKY_START) + ")"  # unicode() of the characters
    STARS = "*" * 40
    MAX_MASKABLE = len(STARS) + 4  # the longest phone the star literal can mask

    @staticmethod
    def _plus_ascii_digits(col: str, first: str, lo: int, hi: int) -> str:
        return (
            f"length({col}) BETWEEN {lo} AND {hi} AND {col} GLOB '+{first}*' AND NOT substr({col}, 2) GLOB '*[^0-9]*'"
        )

    def risky(self, col: str) -> str:
        return f"unicode({col}) IN {self.RISKY}"

    def e164(self, col: str) -> str:
        # ASCII digits only (GLOB has no \d): other digits go to csv_cell, which knows them
        return self._plus_ascii_digits(col, "[1-9]", 8, 16)

    def neutralized(self, col: str) -> str:
        return f"csv_cell({col})"

    def text(self, expr: str) -> str:
        return f"ifnull({expr}, '')"

    def maskable(self, col: str) -> str:
        return self._plus_ascii_digits(col, "[0-9]", 9, self.MAX_MASKABLE)

    def stars(self, n: str) -> str:
        return f"substr('{self.STARS}', 1, {n})"

    def iso(self, col: str) -> str:
        # unixepoch rounds seconds * 1000 to the millisecond and %f prints SS.SSS: exact for integers
        return f"strftime('%Y-%m-%dT%H:%M:%fZ', {col} / 1000.0, 'unixepoch')"

    def otherwise(self, function: str, col: str) -> str:
        return f" ELSE {function}({col})"


@lru_cache(maxsize=1)
def _decimal_class() -> str:
    """What ``\\d`` matches in Python (str.isdecimal: every script's digits), as a bracket
    expression of PostgreSQL's regular expressions, for ``privacy._E164`` in SQL."""
    ranges: list[list[int]] = []
    for c in range(sys.maxunicode + 1):
        if chr(c).isdecimal():
            if ranges and ranges[-1][1] == c - 1:
                ranges[-1][1] = c
            else:
                ranges.append([c, c])
    return "[" + "".join(f"{chr(a)}-{chr(b)}" for a, b in ranges) + "]"


# COPY ... (FORMAT csv) quotes a value exactly when csv.writer does (it holds the delimiter, the
# quote, CR or LF; quotes doubled) except the empty string, which it writes as "": cells are
# NULLIF'd to NULL, written empty. It ends lines with LF; the empty 11th column of a row
# formatted in SQL makes every such line end with ",\n", which becomes "\r\n".
class _Postgres(_Dialect):
    """Cannot call Python: a cell it does not take is NULL, and the row's raw values come in a
    last column (``leftover``) for ``_pg_line`` to finish."""

    RISKY = "(" + ", ".join(f"'{c}'" if c.isprintable() else f"chr({ord(c)})" for c in _RISKY_START) + ")"

    def risky(self, col: str) -> str:
        return f"left({col}, 1) IN {self.RISKY}"

    def e164(self, col: str) -> str:
        return f"{col} ~ '^\\+[1-9]{_decimal_class()}{{6,14}}$'"

    def neutralized(self, col: str) -> str:
        return f"'''' || {col}"  # e164 is exact here, so this is all neutralize_cell does

    def text(self, expr: str) -> str:
        return f"NULLIF({expr}, '')"

    def maskable(self, col: str) -> str:
        return f"{col} ~ '^\\+[0-9]{{8,}}$'"

    def stars(self, n: str) -> str:
        return f"repeat('*', {n})"

    def iso(self, col: str) -> str:
        # seconds and milliseconds apart: interval * bigint goes through a double, exact only while
        # the product in microseconds has a 53-bit mantissa (seconds to 9999 do, milliseconds not)
        at = (
            f"timestamp '1970-01-01' + ({col} / 1000) * interval '1 second' + ({col} % 1000) * interval '1 millisecond'"
        )
        return f'to_char({at}, \'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"\')'

    def leftover(self, fast: list[str]) -> tuple[str, ...]:
        slow = " OR ".join(f"NOT ({f})" for f in fast)
        return (f"CASE WHEN {slow} THEN json_build_array(phone, sent_at, status_at)::text END",)


_SQLITE, _PG = _Sqlite(), _Postgres()


def _sql_cell(d: _Dialect, col: str) -> str:
    return d.text(f"CASE WHEN {d.risky(col)} AND NOT ({d.e164(col)}) THEN {d.neutralized(col)} ELSE {col} END")


def _masked_e164(d: _Dialect) -> str:
    """``mask_phone`` of '+' and 9 or more ASCII digits, neutralized: the head is '+' and a
    country code of 1 to 3 digits tried shortest first (``privacy._country_code``), at least
    one '*' follows, so the cell is never an E.164 number and always gets its "'"."""
    # substr(s, i, n) and substr(s, i) mean the same in both databases; only the stars differ
    branches = " ".join(
        f"WHEN substr(phone, 2, {n}) IN ({_codes(n)}) "
        f"THEN substr(phone, 1, {1 + n}) || {d.stars(f'length(phone) - {5 + n}')}"
        for n in (1, 2, 3)
    )
    return f"'''' || CASE {branches} ELSE '+' || {d.stars('length(phone) - 5')} END || substr(phone, length(phone) - 3)"


def _sql_phone(d: _Dialect, masked: bool) -> str:
    if not masked:
        return _sql_cell(d, "phone")
    return f"CASE WHEN {d.maskable('phone')} THEN {_masked_e164(d)}{d.otherwise('csv_phone', 'phone')} END"


def _in_range(col: str) -> str:
    return f"{col} BETWEEN 0 AND {_MAX_MS}"


def _sql_time(d: _Dialect, col: str) -> str:
    return f"CASE WHEN {_in_range(col)} THEN {d.iso(col)}{d.otherwise('csv_time', col)} END"


@lru_cache(maxsize=4)
def _columns(d: _Dialect, masked: bool) -> str:
    # fast: what the cells test before they take a value, so that ``leftover`` hands back the
    # rows with a cell left to Python and no others
    fast = ([d.maskable("phone")] if masked else []) + [_in_range("sent_at"), _in_range("status_at")]
    return ", ".join(
        (
            _sql_cell(d, "message_id"),
            _sql_cell(d, "contact_id"),
            _sql_phone(d, masked),
            d.text("status"),
            d.text("category"),
            _sql_cell(d, "error_code"),
            _sql_cell(d, "provider"),
            d.text("not_sent_reason"),
            _sql_time(d, "sent_at"),
            _sql_time(d, "status_at"),
            *d.leftover(fast),
        )
    )


_sqlite_columns = partial(_columns, _SQLITE)  # by these names the tests EXPLAIN the export
_pg_columns = partial(_columns, _PG)


# -- SQLite ----------------------------------------------------------------------------------
def _sqlite_functions(masked: bool) -> dict[str, Callable]:
    return {"csv_cell": neutralize_cell, "csv_phone": lambda p: phone_cell(p, masked), "csv_time": _IsoClock()}


def _sqlite_chunks(rows, masked: bool) -> Iterator[bytes]:
    yield _HEADER_LINE
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    for chunk in rows.select(_sqlite_columns(masked), _sqlite_functions(masked), CHUNK_ROWS):
        text = _plain_lines(chunk)
        if text is None:  # a cell to quote: the csv module does it
            w.writerows(chunk)
            text = buf.getvalue()
            buf.seek(0)
            buf.truncate()
        yield text.encode("utf-8")


def _plain_lines(chunk: list[tuple]) -> str | None:
    """The chunk's CSV when no cell needs quotes (no quote, comma, CR or LF in one), else None:
    then joining is all csv.writer would do, at a tenth of its cost."""
    n = len(chunk)
    text = "\r\n".join([",".join(r) for r in chunk]) + "\r\n"
    if '"' in text or text.count(",") != 9 * n or text.count("\r") != n or text.count("\n") != n:
        return None
    return text


# -- PostgreSQL ------------------------------------------------------------------------------
def _pg_chunks(rows, masked: bool) -> Iterator[bytes]:
    yield _HEADER_LINE
    iso = _IsoClock()
    for lines in rows.copy_csv(_pg_columns(masked), CHUNK_ROWS):
        data = b"".join(lines)
        if b'"' in data or data.count(b",\n") != len(lines):  # quoted cells, or rows Python finishes
            data = b"".join([_pg_line(line, masked, iso) for line in lines])
        else:  # unquoted: every LF ends a line, and every line's last column is empty
            data = data.replace(b",\n", b"\r\n")
        yield data


def _pg_line(line, masked: bool, iso: _IsoClock) -> bytes:
    line = bytes(line)
    if line.endswith(b",\n"):  # the last column is empty (not a quoted JSON array): done in SQL
        return line[:-2] + b"\r\n"
    cells = next(csv.reader(io.StringIO(line.decode("utf-8"), newline="")))
    phone, sent_at, status_at = orjson.loads(cells.pop())
    cells[2], cells[8], cells[9] = phone_cell(phone, masked), iso(sent_at), iso(status_at)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(cells)
    return buf.getvalue().encode("utf-8")
