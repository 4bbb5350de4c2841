"""Phone numbers are personal data: masking in responses, scrubbing in logs, safe CSV cells.

Masking (contract §10, no token configured): every digit but the last four becomes ``*``,
except that an E.164 number keeps its ``+`` and country calling code, as in the
contract's example ``+33*******5678``: the country says where a campaign went without
saying to whom.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

import phonenumbers

_COUNTRY_CODES = {str(c) for c in phonenumbers.COUNTRY_CODE_TO_REGION_CODE}


def _country_code(digits: str) -> str:
    for n in (1, 2, 3):
        if digits[:n] in _COUNTRY_CODES:
            return digits[:n]
    return ""


@lru_cache(maxsize=4096)
def _e164_head(first_digits: str) -> int:
    return 1 + len(_country_code(first_digits))


def mask_phone(phone: str | None) -> str | None:
    if phone is None:
        return None
    n = len(phone)
    if n > 5 and phone[0] == "+" and phone[1:].isdigit():  # E.164: the common case, no loop
        head = min(_e164_head(phone[1:4]), n - 4)
        return phone[:head] + "*" * (n - 4 - head) + phone[-4:]
    keep_head = 0
    if phone.startswith("+") and phone[1:].isdigit():
        keep_head = 1 + len(_country_code(phone[1:]))
    positions = [i for i, ch in enumerate(phone) if ch.isdigit()]
    tail = set(positions[-4:])
    return "".join(ch if (i < keep_head or i in tail or not ch.isdigit()) else "*" for i, ch in enumerate(phone))


def mask_record(rec: dict) -> dict:
    if rec.get("phone") is None:
        return rec
    out = dict(rec)
    out["phone"] = mask_phone(rec["phone"])
    return out


# -- CSV ----------------------------------------------------------------------------------
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_E164 = re.compile(r"\+[1-9]\d{6,14}")  # E.164: a country code (never 0), at most 15 digits


def neutralize_cell(value: str) -> str:
    """Contract §10: a cell a spreadsheet would run is prefixed with ``'``; an E.164 number is not."""
    if value and value.startswith(_FORMULA_START) and not _E164.fullmatch(value):
        return "'" + value
    return value


# -- logs ---------------------------------------------------------------------------------
# Seven digits or more, possibly with the separators people write numbers with; the last
# four digits stay, so that an operator can still tell two log lines apart.
_PHONE_LIKE = re.compile(r"(?<!\d)(\+|%2B|00)?\d(?:[\d .\-]|%20){5,}\d")


def scrub(text: str) -> str:
    def repl(m: re.Match) -> str:
        s = m.group(0)
        digits = [i for i, ch in enumerate(s) if ch.isdigit()]
        if len(digits) < 7:
            return s
        keep = set(digits[-4:])
        return "".join("*" if (ch.isdigit() and i not in keep) else ch for i, ch in enumerate(s))

    return _PHONE_LIKE.sub(repl, text)


class ScrubPhones(logging.Filter):
    """On every handler of the API process: no log line carries a phone number in full."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = scrub(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


def install_log_scrubbing() -> None:
    f = ScrubPhones()
    root = logging.getLogger()
    for h in root.handlers:
        h.addFilter(f)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "aiokafka"):
        logging.getLogger(name).addFilter(f)
