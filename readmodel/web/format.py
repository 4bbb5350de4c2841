"""Jinja filters and globals of the dashboard.

Every formatter here has a twin in ``static/live.js`` that must give the very same
text for the same input (the live updates rewrite server-rendered cells). Both work
on the same IEEE doubles with the same integer rounding, so they agree exactly:

- ``num``: 12345 -> ``"12,345"``; None -> ``"—"``
- ``pct``: a fraction -> ``"92.1%"``; 0 -> ``"0%"``, 1 -> ``"100%"``, tiny -> ``"<0.1%"``,
  almost all -> ``">99.9%"``; None -> ``"—"``
- ``credits``: 1234.5 -> ``"1,234.5"`` (at most 2 decimals)
- ``dt``: epoch ms -> ``"2026-12-01 14:03 UTC"``; ``dt_short`` without `` UTC``;
  ``dts`` with seconds
- ``reltime``: epoch ms -> ``"3 min ago"`` / ``"in 2 h"`` / ``"just now"``
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from processors import catalog, counters

from . import glossary as g

DASH = "\u2014"


# --------------------------------------------------------------------------- numbers


def _is_number(x: Any) -> bool:
    return (
        isinstance(x, (int, float)) and not isinstance(x, bool) and not (isinstance(x, float) and not math.isfinite(x))
    )


def _group(n: int) -> str:
    sign = "-" if n < 0 else ""
    s = str(abs(n))
    parts = []
    while len(s) > 3:
        parts.append(s[-3:])
        s = s[:-3]
    parts.append(s)
    return sign + ",".join(reversed(parts))


def num(x: Any) -> str:
    """An integer count with thousands separators."""
    if not _is_number(x):
        return DASH
    return _group(int(math.floor(x + 0.5)) if isinstance(x, float) else int(x))


def pct(x: Any) -> str:
    """A fraction as a percentage with one decimal (see the module doc for the edges)."""
    if not _is_number(x):
        return DASH
    if x <= 0:
        return "0%"
    if x >= 1:
        return "100%"
    p = int(math.floor(x * 1000 + 0.5))  # per mille, rounded half up (same in JS)
    if p <= 0:
        return "<0.1%"
    if p >= 1000:
        return ">99.9%"
    return f"{p // 10}.{p % 10}%"


def credits(x: Any) -> str:
    """A credit amount: at most two decimals, trailing zeros dropped."""
    if not _is_number(x):
        return DASH
    cents = int(math.floor(abs(x) * 100 + 0.5))
    sign = "-" if x < 0 and cents else ""
    whole, frac = divmod(cents, 100)
    out = sign + _group(whole)
    if frac:
        out += "." + f"{frac:02d}".rstrip("0")
    return out


def hours(x: Any) -> str:
    """A number of hours without a useless ``.0``: 72.0 -> ``"72"``, 1.5 -> ``"1.5"``."""
    if not _is_number(x):
        return DASH
    if float(x).is_integer():
        return str(int(x))
    return f"{x:.2f}".rstrip("0").rstrip(".")


def share(part: Any, whole: Any) -> float | None:
    """part / whole, 0 when whole is 0, None when either is not a number."""
    if not _is_number(part) or not _is_number(whole):
        return None
    return part / whole if whole else 0.0


# --------------------------------------------------------------------------- times


def _utc(ms: Any) -> datetime | None:
    if not _is_number(ms):
        return None
    try:
        return datetime.fromtimestamp(int(ms) // 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def dt(ms: Any) -> str:
    d = _utc(ms)
    return d.strftime("%Y-%m-%d %H:%M UTC") if d else DASH


def dt_short(ms: Any) -> str:
    d = _utc(ms)
    return d.strftime("%Y-%m-%d %H:%M") if d else DASH


def dts(ms: Any) -> str:
    d = _utc(ms)
    return d.strftime("%Y-%m-%d %H:%M:%S UTC") if d else DASH


def iso(ms: Any) -> str:
    """ISO 8601 UTC with milliseconds, for ``<time datetime=...>``."""
    if not _is_number(ms):
        return ""
    d = _utc(ms)
    if d is None:
        return ""
    return d.strftime("%Y-%m-%dT%H:%M:%S") + f".{int(ms) % 1000:03d}Z"


def reltime(ms: Any, now_ms: Any = None) -> str:
    if not _is_number(ms):
        return DASH
    now = time.time() * 1000 if now_ms is None else now_ms
    delta = (now - ms) / 1000.0
    future = delta < 0
    s = abs(delta)
    if s < 45:
        return "just now"
    if s < 3600:
        v, unit = int(math.floor(s / 60 + 0.5)) or 1, "min"
        if v >= 60:
            v, unit = 1, "h"
    elif s < 86400:
        v, unit = int(math.floor(s / 3600 + 0.5)), "h"
        if v >= 24:
            v, unit = 1, "d"
    else:
        v, unit = int(math.floor(s / 86400 + 0.5)), "d"
    return f"in {v} {unit}" if future else f"{v} {unit} ago"


# --------------------------------------------------------------------------- urls


def pathseg(value: Any) -> str:
    """One URL path segment: everything but unreserved characters percent-encoded."""
    return quote("" if value is None else str(value), safe="")


def qs(*maps: Mapping[str, Any] | None, **params: Any) -> str:
    """A query string (``"?a=1&b=2"``, or ``""`` when empty); None and "" are left out.

    Later arguments override earlier ones: ``qs(filters, cursor=c)``.
    """
    merged: dict[str, Any] = {}
    for m in maps:
        if m:
            merged.update(m)
    merged.update(params)
    pairs = [(k, str(v)) for k, v in merged.items() if v is not None and v != ""]
    return "?" + urlencode(pairs) if pairs else ""


# --------------------------------------------------------------------------- stats


def _get(c: Any, key: str, default: Any = None) -> Any:
    if c is None:
        return default
    if isinstance(c, Mapping):
        return c.get(key, default)
    return getattr(c, key, default)


def count(c: Any, status: str) -> int:
    counts = _get(c, "status_counts") or {}
    v = counts.get(status, 0)
    return int(v) if _is_number(v) else 0


def cat_count(c: Any, category: str) -> int:
    return sum(count(c, s) for s in catalog.STATUSES if catalog.STATUSES[s].category == category)


def reason_count(c: Any, reason: str) -> int:
    v = (_get(c, "not_sent_by_reason") or {}).get(reason, 0)
    return int(v) if _is_number(v) else 0


def contacts(c: Any) -> int:
    return int(_get(c, "sent") or 0) + int(_get(c, "not_sent") or 0)


def rate(c: Any, name: str) -> float:
    """A rate of contract §6 (from the record, else computed), plus ``errors`` =
    temporary_error + permanent_error."""
    if name == "errors":
        return rate(c, "temporary_error") + rate(c, "permanent_error")
    rates = _get(c, "rates") or {}
    v = rates.get(name)
    if _is_number(v):
        return float(v)
    sent = _get(c, "sent") or 0
    if not sent:
        return 0.0
    if name == "unsubscribe":
        return (_get(c, "unsubscribed") or 0) / sent
    return sum(count(c, s) for s in catalog.RATE_NUMERATORS.get(name, ())) / sent


#: The stacked progress bar: the final categories in this order, then the waiting rest.
PROGRESS_SEGMENTS: tuple[str, ...] = ("receipt", "temporary_error", "permanent_error", "unknown")


def progress(c: Any) -> dict[str, Any]:
    """``{"done": fraction no longer waiting, "segments": [(category, x, width)]}``,
    x and width in percent (0..100) for an SVG bar of width 100."""
    segs = []
    x = 0.0
    sent = _get(c, "sent") or 0
    for cat in PROGRESS_SEGMENTS:
        w = rate(c, cat) * 100 if sent else 0.0
        w = max(0.0, min(w, 100.0 - x))
        segs.append((cat, round(x, 3), round(w, 3)))
        x += w
    done = (1.0 - rate(c, "waiting")) if sent else 0.0
    return {"done": max(0.0, min(done, 1.0)), "segments": segs}


#: The columns of a breakdown table after its key and total: a share of the row's sent messages.
BREAKDOWN_CATEGORIES: tuple[str, ...] = ("receipt", "temporary_error", "permanent_error", "waiting")


def sorted_breakdown(m: Any) -> list[tuple[str, dict[str, int], int]]:
    """A ``by_provider``/``by_operator`` map as rows ``(key, counts, total)``, largest first."""
    rows = []
    for key, counts in (m or {}).items():
        counts = counts or {}
        total = sum(int(v) for v in counts.values() if _is_number(v))
        rows.append((str(key), counts, total))
    rows.sort(key=lambda r: (-r[2], r[0]))
    return rows


def breakdown_rows(m: Any) -> list[list[str]]:
    """A breakdown table's cells as text: key, sent, then each share of ``BREAKDOWN_CATEGORIES``
    (live.js builds the very same cells from a new record)."""
    out = []
    for key, counts, total in sorted_breakdown(m):
        rec = {"status_counts": counts}
        out.append([key, num(total), *(pct(share(cat_count(rec, cat), total)) for cat in BREAKDOWN_CATEGORIES)])
    return out


#: Delivery-time buckets (contract §11) and the thresholds the dashboard shows.
DELIVERY_BUCKETS: tuple[tuple[str, int | None], ...] = tuple(
    zip(counters.DELIVERY_BUCKETS, (*counters.DELIVERY_BOUNDS, None), strict=True)
)
DELIVERY_THRESHOLDS: tuple[tuple[int, str], ...] = ((10, "10 s"), (60, "1 min"), (600, "10 min"), (3600, "1 h"))
DELIVERY_PERCENTILES: tuple[int, ...] = (50, 95)


def duration(seconds: int) -> str:
    """A bucket bound in the largest unit it is a whole number of: 30 -> "30 s", 600 -> "10 min"."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _delivery_counts(c: Any) -> list[int]:
    """The ``delivery_seconds`` counts in bucket order (a missing bucket is an empty one)."""
    buckets = _get(c, "delivery_seconds") or {}
    return [int(v) if _is_number(v := buckets.get(name, 0)) else 0 for name, _ in DELIVERY_BUCKETS]


def delivered_within(c: Any, seconds: int) -> float | None:
    """Share of the delivered messages delivered within ``seconds`` (None without data)."""
    counts = _delivery_counts(c)
    total = sum(counts)
    if not total:
        return None
    within = sum(
        n for n, (_, bound) in zip(counts, DELIVERY_BUCKETS, strict=True) if bound is not None and bound <= seconds
    )
    return within / total


def delivery_percentile(c: Any, percent: int) -> str:
    """``"≤ 30 s"``: the upper bound of the first bucket where the cumulative share of the
    delivered messages reaches ``percent``; ``"> 3 d"`` for the last bucket; ``"—"`` without
    data. Only a bucket is known, never the time itself, hence a bound and not a value.
    Integer arithmetic, so that live.js (which has the same function) cannot round
    differently."""
    counts = _delivery_counts(c)
    total = sum(counts)
    if not total:
        return DASH
    cumulative = 0
    for n, (_, bound) in zip(counts, DELIVERY_BUCKETS, strict=True):
        cumulative += n
        if cumulative * 100 >= percent * total:
            return "\u2264 " + duration(bound) if bound is not None else "> " + duration(counters.DELIVERY_BOUNDS[-1])
    raise AssertionError("unreachable: the last bucket holds the rest")


def meter_width(fraction: Any) -> str:
    """A share as an SVG width out of 100, two decimals, written as live.js writes it."""
    w = math.floor(fraction * 10000 + 0.5) / 100 if _is_number(fraction) else 0.0
    return str(int(w)) if w.is_integer() else repr(w)


# --------------------------------------------------------------------------- registration

FILTERS = {
    "num": num,
    "pct": pct,
    "credits": credits,
    "hours": hours,
    "dt": dt,
    "dt_short": dt_short,
    "dts": dts,
    "iso": iso,
    "reltime": reltime,
    "pathseg": pathseg,
    "status_label": g.status_label,
    "status_category": g.status_category,
    "category_label": g.category_label,
    "reason_label": g.reason_label,
    "removal_reason_label": g.removal_reason_label,
    "channel_label": g.channel_label,
    "kind_label": g.kind_label,
}

GLOBALS = {
    "qs": qs,
    "share": share,
    "count": count,
    "cat_count": cat_count,
    "reason_count": reason_count,
    "contacts_total": contacts,
    "rate": rate,
    "progress": progress,
    "sorted_breakdown": sorted_breakdown,
    "breakdown_rows": breakdown_rows,
    "delivered_within": delivered_within,
    "delivery_percentile": delivery_percentile,
    "meter_width": meter_width,
    "DELIVERY_THRESHOLDS": DELIVERY_THRESHOLDS,
    "DELIVERY_PERCENTILES": DELIVERY_PERCENTILES,
    "status_glossary": g.GLOSSARY,
    "glossary_by_status": g.BY_STATUS,
    "STATUS_ORDER": g.STATUS_ORDER,
    "SENT_STATUS_ORDER": g.SENT_STATUS_ORDER,
    "CATEGORY_ORDER": g.CATEGORY_ORDER,
    "statuses_of": g.statuses_of,
    "NOT_SENT_REASONS": g.NOT_SENT_REASONS,
    "NOT_SENT_REASON_HINTS": g.NOT_SENT_REASON_HINTS,
    "REMOVAL_REASON_LABELS": g.REMOVAL_REASON_LABELS,
    "SUPPRESSION_REASONS": g.SUPPRESSION_REASONS,
    "RATE_LABELS": g.RATE_LABELS,
    "RATE_HINTS": g.RATE_HINTS,
    "RATE_CATEGORY": g.RATE_CATEGORY,
    "PROGRESS_SEGMENTS": PROGRESS_SEGMENTS,
}


def register(env: Any) -> Any:
    """Add the dashboard's filters and globals to a Jinja environment; returns it."""
    env.filters.update(FILTERS)
    env.globals.update(GLOBALS)
    return env
