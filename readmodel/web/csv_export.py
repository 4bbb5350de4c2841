"""The contact list of a campaign as CSV (contract §10), streamed in constant memory.

Rows come from the database in chunks and leave as chunks of bytes, so a million-row
export holds one chunk at a time; every cell a spreadsheet would evaluate is neutralized.

A row formatted in Python costs more than the database takes to read it, so the database
computes the cells: ``_sqlite_columns`` and ``_pg_columns`` are SQL forms of
``reference_cells``, which stays the definition (``tests/test_csv_fast_path.py`` holds the
SQL to it byte for byte). SQL takes the common shapes only (an ASCII E.164 phone, a time
between 1970 and 9999) and hands the rest back to Python: through SQLite functions, or on
PostgreSQL, which cannot call Python, through a last column carrying the row's raw values.
"""
from __future__ import annotations

import csv
import io
import sys
from datetime import datetime, timezone
from functools import lru_cache
from typing import Callable, Iterable, Iterator

import orjson

from ..queries import MessageRows
from ..schema import MESSAGE_FIELDS
from .privacy import _COUNTRY_CODES, mask_phone, neutralize_cell

HEADER = ("message_id", "contact_id", "phone", "status", "category", "error_code", "provider",
          "not_sent_reason", "sent_at", "status_at")
_IDX = {f: i for i, f in enumerate(MESSAGE_FIELDS)}
_MID, _CONTACT, _PHONE, _STATUS, _CATEGORY, _CODE, _PROVIDER, _REASON, _SENT, _AT = (
    _IDX[f] for f in HEADER)
_RISKY = frozenset("=+-@\t\r")  # a first character that makes a spreadsheet evaluate the cell
_HEADER_LINE = (",".join(HEADER) + "\r\n").encode()
CHUNK_ROWS = 5000  # ~600 kB of CSV: few enough thread hops and sends, small against the RSS budget


def iso_utc(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


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
            head = self.seconds[sec] = datetime.fromtimestamp(sec, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
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
    return (_cell(r[_MID]), _cell(r[_CONTACT]), phone_cell(r[_PHONE], masked), r[_STATUS], r[_CATEGORY],
            _cell(r[_CODE]), _cell(r[_PROVIDER]), "" if reason is None else reason, iso(r[_SENT]), iso(r[_AT]))


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


# -- shared SQL pieces ---------------------------------------------------------------------
_MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z; below 0 and above, Python formats the time
_STARS = "*" * 40
_MAX_FAST_PHONE = len(_STARS) + 4  # the longest phone the star literal can mask


def _codes(n: int) -> str:
    return ",".join(f"'{c}'" for c in sorted(_COUNTRY_CODES) if len(c) == n)


def _masked_e164(stars: Callable[[str], str], left: Callable[[int], str], right4: str) -> str:
    """``mask_phone`` of '+' and 9 or more ASCII digits, neutralized: the head is '+' and a
    country code of 1 to 3 digits tried shortest first (``privacy._country_code``), at least
    one '*' follows, so the cell is never an E.164 number and always gets its "'"."""
    branches = " ".join(f"WHEN substr(phone, 2, {n}) IN ({_codes(n)}) THEN {left(1 + n)} || {stars(f'length(phone) - {5 + n}')}"
                        for n in (1, 2, 3))
    return f"'''' || CASE {branches} ELSE '+' || {stars('length(phone) - 5')} END || {right4}"


# -- SQLite ----------------------------------------------------------------------------------
_SQLITE_RISKY = "(61, 43, 45, 64, 9, 13)"  # unicode() of = + - @ tab CR


def _sqlite_cell(col: str) -> str:
    return f"CASE WHEN unicode({col}) IN {_SQLITE_RISKY} THEN csv_cell({col}) ELSE ifnull({col}, '') END"


def _sqlite_ascii_digits(col: str, first: str) -> str:
    return f"{col} GLOB '+{first}*' AND NOT substr({col}, 2) GLOB '*[^0-9]*'"


def _sqlite_phone(masked: bool) -> str:
    if masked:
        fast = _masked_e164(lambda n: f"substr('{_STARS}', 1, {n})", lambda n: f"substr(phone, 1, {n})",
                            "substr(phone, -4)")
        return (f"CASE WHEN length(phone) BETWEEN 9 AND {_MAX_FAST_PHONE} AND {_sqlite_ascii_digits('phone', '[0-9]')}"
                f" THEN {fast} ELSE csv_phone(phone) END")
    e164 = f"length(phone) BETWEEN 8 AND 16 AND {_sqlite_ascii_digits('phone', '[1-9]')}"
    return f"CASE WHEN unicode(phone) IN {_SQLITE_RISKY} AND NOT ({e164}) THEN csv_cell(phone) ELSE phone END"


def _sqlite_time(col: str) -> str:
    # unixepoch rounds seconds * 1000 to the millisecond and %f prints SS.SSS: exact for integers
    return (f"CASE WHEN {col} BETWEEN 0 AND {_MAX_MS} THEN strftime('%Y-%m-%dT%H:%M:%fZ', {col} / 1000.0, 'unixepoch')"
            f" ELSE csv_time({col}) END")


@lru_cache(maxsize=2)
def _sqlite_columns(masked: bool) -> str:
    return ", ".join((_sqlite_cell("message_id"), _sqlite_cell("contact_id"), _sqlite_phone(masked), "status",
                      "category", _sqlite_cell("error_code"), _sqlite_cell("provider"), "ifnull(not_sent_reason, '')",
                      _sqlite_time("sent_at"), _sqlite_time("status_at")))


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
# COPY ... (FORMAT csv) quotes a value exactly when csv.writer does (it holds the delimiter, the
# quote, CR or LF; quotes doubled) except the empty string, which it writes as "": cells are
# NULLIF'd to NULL, written empty. It ends lines with LF; the empty 11th column of a row
# formatted in SQL makes every such line end with ",\n", which becomes "\r\n".
_PG_RISKY = "('=', '+', '-', '@', chr(9), chr(13))"


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


def _pg_e164() -> str:
    return f"'^\\+[1-9]{_decimal_class()}{{6,14}}$'"


def _pg_cell(col: str) -> str:
    return f"NULLIF(CASE WHEN left({col}, 1) IN {_PG_RISKY} AND {col} !~ {_pg_e164()} THEN '''' || {col} ELSE {col} END, '')"


_PG_FAST_PHONE = "phone ~ '^\\+[0-9]{8,}$'"


def _pg_phone(masked: bool) -> str:
    if not masked:
        return _pg_cell("phone")
    fast = _masked_e164(lambda n: f"repeat('*', {n})", lambda n: f"left(phone, {n})", "right(phone, 4)")
    return f"CASE WHEN {_PG_FAST_PHONE} THEN {fast} END"


def _pg_in_range(col: str) -> str:
    return f"{col} BETWEEN 0 AND {_MAX_MS}"


def _pg_time(col: str) -> str:
    # seconds and milliseconds apart: interval * bigint goes through a double, exact only while
    # the product in microseconds has a 53-bit mantissa (seconds to 9999 do, milliseconds not)
    at = f"timestamp '1970-01-01' + ({col} / 1000) * interval '1 second' + ({col} % 1000) * interval '1 millisecond'"
    return f"CASE WHEN {_pg_in_range(col)} THEN to_char({at}, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') END"


@lru_cache(maxsize=2)
def _pg_columns(masked: bool) -> str:
    slow = f"NOT ({_pg_in_range('sent_at')}) OR NOT ({_pg_in_range('status_at')})"
    if masked:
        slow = f"NOT ({_PG_FAST_PHONE}) OR {slow}"
    return ", ".join((_pg_cell("message_id"), _pg_cell("contact_id"), _pg_phone(masked), "NULLIF(status, '')",
                      "NULLIF(category, '')", _pg_cell("error_code"), _pg_cell("provider"),
                      "NULLIF(not_sent_reason, '')", _pg_time("sent_at"), _pg_time("status_at"),
                      f"CASE WHEN {slow} THEN json_build_array(phone, sent_at, status_at)::text END"))


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
