"""Server-side charts: small, dependency-free inline SVG.

``rates_chart`` draws the campaign's rates over time from its successive
``CampaignStats`` versions. It is a pure function (no I/O, no clock): the same
history always gives the same bytes, which makes it cacheable and testable. All
text is escaped; the result is the only Markup the dashboard emits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup, escape

from . import format as fmt

MAX_POINTS = 300

#: (rate, legend label, colour): drawn in this order, the last on top.
SERIES: tuple[tuple[str, str, str], ...] = (
    ("unknown", "Unknown", "#8f99a6"),
    ("waiting", "Waiting", "#4f7fe0"),
    ("temporary_error", "Temporary error", "#d08a0c"),
    ("permanent_error", "Permanent error", "#d0453b"),
    ("receipt", "Receipt", "#1a8f5a"),
)
LEGEND_ORDER = ("receipt", "waiting", "temporary_error", "permanent_error", "unknown")

FONT = "-apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
INK = "#1c2430"
MUTED = "#667180"
GRID = "#e6e9ee"
AXIS = "#c9ced6"

_SEC = 1000
_MIN = 60 * _SEC
_HOUR = 60 * _MIN
_DAY = 24 * _HOUR
#: Candidate tick steps (ms), smallest first.
_STEPS = (
    1 * _SEC,
    2 * _SEC,
    5 * _SEC,
    10 * _SEC,
    15 * _SEC,
    30 * _SEC,
    1 * _MIN,
    2 * _MIN,
    5 * _MIN,
    10 * _MIN,
    15 * _MIN,
    30 * _MIN,
    1 * _HOUR,
    2 * _HOUR,
    3 * _HOUR,
    6 * _HOUR,
    12 * _HOUR,
    1 * _DAY,
    2 * _DAY,
    7 * _DAY,
    14 * _DAY,
    30 * _DAY,
    91 * _DAY,
    365 * _DAY,
)


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _f(x: float) -> str:
    """A coordinate, short: 12.0 -> "12", 12.345 -> "12.3"."""
    s = f"{x:.1f}"
    return s[:-2] if s.endswith(".0") else s


def _points(history: Iterable[Any]) -> list[tuple[int, dict[str, float]]]:
    pts: list[tuple[int, int, dict[str, float]]] = []
    for rec in history or ():
        if not isinstance(rec, Mapping):
            continue
        t = rec.get("updated_at")
        if not _num(t):
            continue
        v = rec.get("version")
        rates = {name: min(1.0, max(0.0, fmt.rate(rec, name))) for name, _, _ in SERIES}
        pts.append((int(t), int(v) if _num(v) else 0, rates))
    pts.sort(key=lambda p: (p[0], p[1]))
    return [(t, r) for t, _, r in pts]


def downsample(points: list[tuple[int, Any]], limit: int = MAX_POINTS) -> list[tuple[int, Any]]:
    """At most ``limit`` points: the first, then the last point of each of ``limit - 1``
    equal time buckets (a rate is a step function: the last value of a bucket is the
    state at its end, so nothing is invented)."""
    if len(points) <= limit:
        return list(points)
    t0, t1 = points[0][0], points[-1][0]
    if t1 == t0:
        return [points[0], points[-1]]
    buckets = limit - 1
    span = t1 - t0
    out = [points[0]]
    last_bucket = -1
    for i in range(1, len(points)):
        b = min(buckets - 1, (points[i][0] - t0) * buckets // span)
        if b == last_bucket:
            out[-1] = points[i]
        else:
            out.append(points[i])
            last_bucket = b
    return out


def _step(span: int, max_ticks: int) -> int:
    for s in _STEPS:
        if span / s <= max_ticks:
            return s
    return _STEPS[-1]


def _tick_label(ms: int, step: int, multi_day: bool) -> str:
    d = datetime.fromtimestamp(ms // 1000, tz=UTC)
    if step >= _DAY:
        return d.strftime("%b %d").replace(" 0", " ")
    if step < _MIN:
        return d.strftime("%H:%M:%S")
    if multi_day and d.hour == 0 and d.minute == 0:
        return d.strftime("%b %d").replace(" 0", " ")
    return d.strftime("%H:%M")


#: Rough advance widths (em) of a sans-serif system font: enough to lay out a legend.
_NARROW = set("fijlrtI.,:;'!|() ")
_WIDE = set("mwMW%\u2014")


def _text_width(s: str, size: float, bold: bool = False) -> float:
    em = 0.0
    for ch in s:
        if ch in _NARROW:
            em += 0.31
        elif ch in _WIDE:
            em += 0.88
        elif ch.isdigit():
            em += 0.57
        elif ch.isupper():
            em += 0.69
        else:
            em += 0.57
    return em * size * (1.07 if bold else 1.0)


def rates_chart(history: list[dict], width: int = 720, height: int = 240) -> Markup:
    """An SVG line chart of the receipt, waiting, temporary error, permanent error and
    unknown rates over ``updated_at`` (UTC), from a list of ``CampaignStats``."""
    width = max(int(width), 240)
    height = max(int(height), 140)
    pts = downsample(_points(history))

    left, right, top, bottom = 46, 18, 40, 30
    pw, ph = width - left - right, height - top - bottom
    out: list[str] = []
    e = lambda s: str(escape(s))  # noqa: E731

    if pts:
        t0, t1 = pts[0][0], pts[-1][0]
        desc = (
            f"{len(pts)} updates from {fmt.dt(t0)} to {fmt.dt(t1)}. Latest: "
            + ", ".join(f"{label.lower()} {fmt.pct(pts[-1][1][name])}" for name, label, _ in _legend())
            + "."
        )
    else:
        t0 = t1 = 0
        desc = "No figures yet."

    out.append(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="rates-chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="rates-chart-title rates-chart-desc" '
        f'font-family="{e(FONT)}" font-size="11">'
    )
    out.append('<title id="rates-chart-title">Reception rates over time (UTC)</title>')
    out.append(f'<desc id="rates-chart-desc">{e(desc)}</desc>')

    # Legend, with the latest value of each rate (two rows if one does not fit).
    items = []
    for name, label, colour in _legend():
        value = fmt.pct(pts[-1][1][name]) if pts else fmt.DASH
        items.append((label, colour, value, 19 + _text_width(label, 12) + 6 + _text_width(value, 12, bold=True)))
    gap = 18
    x0 = 14
    rows: list[list[tuple[str, str, str, float]]] = [[]]
    used = 0.0
    for it in items:
        if rows[-1] and used + gap + it[3] > width - x0 - right:
            rows.append([])
            used = 0.0
        used += (gap if rows[-1] else 0) + it[3]
        rows[-1].append(it)
    if len(rows) > 1:
        top += 18 * (len(rows) - 1)
        ph -= 18 * (len(rows) - 1)
    for r, row in enumerate(rows):
        x = x0
        for label, colour, value, w in row:
            out.append(
                f'<g class="legend-item" transform="translate({_f(x)},{14 + 18 * r})">'
                f'<rect x="0" y="-1.5" width="14" height="3" rx="1.5" fill="{colour}"/>'
                f'<text x="19" y="4" fill="{INK}" font-size="12">{e(label)}</text>'
                f'<text x="{_f(19 + _text_width(label, 12) + 6)}" y="4" fill="{MUTED}" '
                f'font-size="12" font-weight="600">{e(value)}</text></g>'
            )
            x += w + gap

    # Horizontal gridlines at 0, 25, 50, 75, 100 %.
    for i in range(5):
        frac = i / 4
        y = top + ph * (1 - frac)
        out.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{_f(y)}" y2="{_f(y)}" '
            f'stroke="{AXIS if i == 0 else GRID}" stroke-width="1"/>'
        )
        out.append(
            f'<text x="{left - 8}" y="{_f(y)}" text-anchor="end" dominant-baseline="middle" '
            f'fill="{MUTED}">{int(frac * 100)}%</text>'
        )

    if not pts:
        out.append(
            f'<text x="{_f(left + pw / 2)}" y="{_f(top + ph / 2)}" text-anchor="middle" '
            f'dominant-baseline="middle" fill="{MUTED}" font-size="13">No figures yet: the chart fills in as '
            f"messages are sent.</text>"
        )
        out.append("</svg>")
        return Markup("".join(out))

    if t1 == t0:
        d0, d1 = t0 - _MIN, t0 + _MIN
    else:
        d0, d1 = t0, t1
    span = d1 - d0

    def sx(t: int) -> float:
        return left + (t - d0) * pw / span

    def sy(r: float) -> float:
        return top + (1 - r) * ph

    # Time ticks, aligned on UTC multiples of a round step.
    step = _step(span, max(2, pw // 95))
    multi_day = (d1 // _DAY) != (d0 // _DAY)
    tick = -(-d0 // step) * step
    first = True
    while tick <= d1:
        xt = sx(tick)
        label = _tick_label(tick, step, multi_day) + (" UTC" if first else "")
        half = _text_width(label, 11) / 2
        xt_text = min(max(xt, half + 2), width - 2 - half)  # keep the label inside the image
        out.append(f'<line x1="{_f(xt)}" x2="{_f(xt)}" y1="{top + ph}" y2="{top + ph + 4}" stroke="{AXIS}"/>')
        out.append(f'<text x="{_f(xt_text)}" y="{top + ph + 17}" text-anchor="middle" fill="{MUTED}">{e(label)}</text>')
        tick += step
        first = False

    # A light area under the receipt line, then the lines.
    paths: dict[str, str] = {}
    for name, _, _ in SERIES:
        paths[name] = "M" + "L".join(f"{_f(sx(t))} {_f(sy(rates[name]))}" for t, rates in pts)

    if len(pts) > 1:
        area = paths["receipt"] + f"V{_f(top + ph)}H{_f(sx(pts[0][0]))}Z"
        out.append(f'<path d="{area}" fill="#1a8f5a" fill-opacity="0.07" stroke="none"/>')
    for name, label, colour in SERIES:
        if len(pts) > 1:
            out.append(
                f'<path class="series series-{name}" d="{paths[name]}" fill="none" stroke="{colour}" '
                f'stroke-width="2" stroke-linejoin="round" stroke-linecap="round"><title>{e(label)}</title></path>'
            )
    for name, label, colour in SERIES:
        t, rates = pts[-1]
        out.append(
            f'<circle cx="{_f(sx(t))}" cy="{_f(sy(rates[name]))}" r="3.5" fill="#fff" stroke="{colour}" '
            f'stroke-width="2"><title>{e(label)}: {e(fmt.pct(rates[name]))} at {e(fmt.dts(t))}</title></circle>'
        )
    out.append("</svg>")
    return Markup("".join(out))


def _legend() -> list[tuple[str, str, str]]:
    by = {name: (name, label, colour) for name, label, colour in SERIES}
    return [by[n] for n in LEGEND_ORDER]
