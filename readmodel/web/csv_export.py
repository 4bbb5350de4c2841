"""The contact list of a campaign as CSV (contract §10), streamed in constant memory.

Rows come from the database in chunks and leave as chunks of text, so a million-row
export holds one chunk at a time; every cell a spreadsheet would evaluate is neutralized.
"""
from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from typing import Iterable, Iterator

from ..schema import MESSAGE_FIELDS
from .privacy import mask_phone, neutralize_cell

HEADER = ("message_id", "contact_id", "phone", "status", "category", "error_code", "provider",
          "not_sent_reason", "sent_at", "status_at")
_IDX = {f: i for i, f in enumerate(MESSAGE_FIELDS)}
_TEXT_COLS = tuple(_IDX[f] for f in ("message_id", "contact_id", "phone", "status", "category",
                                     "error_code", "provider", "not_sent_reason"))
_PHONE = _IDX["phone"]
_SENT, _AT = _IDX["sent_at"], _IDX["status_at"]


def iso_utc(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def csv_chunks(chunks: Iterable[list[tuple]], masked: bool) -> Iterator[bytes]:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(HEADER)
    for rows in chunks:
        out = []
        for r in rows:
            cells = ["" if r[i] is None else neutralize_cell(
                mask_phone(r[i]) if (masked and i == _PHONE) else r[i]) for i in _TEXT_COLS]
            cells.append(iso_utc(r[_SENT]))
            cells.append(iso_utc(r[_AT]))
            out.append(cells)
        w.writerows(out)
        yield buf.getvalue().encode("utf-8")
        buf.seek(0)
        buf.truncate()
    rest = buf.getvalue()
    if rest:
        yield rest.encode("utf-8")
